/* test_etsi_json.c - ETSI GS QKD 014 bodies: requests as the standard
 * shows them, and every malformed answer a KME could send. */
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "etsi014_json.h"
#include "secmem.h"
#include "util.h"

/* 32 bytes 00..1f in base64; two more keys: 40..5f and 80..9f. */
#define KEY32 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define KEY32_B "QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8="
#define KEY32_C "gIGCg4SFhoeIiYqLjI2Oj5CRkpOUlZaXmJmam5ydnp8="

/* Heap blocks freed while keys are watched are searched for any 12
 * characters of them in a row (tests/hygiene's window): json-c frees what
 * it built, and a key text it held unwiped shows here. Volatile: the
 * compiler takes free() for a function that reads and writes no global. */
static const char *const *volatile watched; /* NULL-terminated */
static volatile int leaked;

static void look(const void *p, size_t size)
{
	for (const char *const *w = watched; w != NULL && *w != NULL; w++)
		for (size_t i = 0; i + 12 <= strlen(*w); i++)
			if (memmem(p, size, *w + i, 12) != NULL) {
				leaked++;
				return;
			}
}

#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif

#ifdef TEST_ASAN
/* ASan's free would be replaced by ours: its hooks instead. A chunk being
 * freed has no size any more, so the sizes come from the malloc hook. */
/* As <sanitizer/allocator_interface.h> has it: clang ships that header,
 * gcc only the runtime. */
int __sanitizer_install_malloc_and_free_hooks(
	void (*malloc_hook)(const volatile void *, size_t),
	void (*free_hook)(const volatile void *));

#define TRACKED 4096
static struct {
	const volatile void *p;
	size_t size;
} tracked[TRACKED];

static void on_malloc(const volatile void *p, size_t size)
{
	for (size_t i = 0; watched != NULL && i < TRACKED; i++)
		if (tracked[i].p == NULL) {
			tracked[i].p = p;
			tracked[i].size = size;
			return;
		}
}

static void on_free(const volatile void *p)
{
	for (size_t i = 0; p != NULL && i < TRACKED; i++)
		if (tracked[i].p == p) {
			tracked[i].p = NULL;
			look((const void *)p, tracked[i].size);
			return;
		}
}

static void watch_frees(void)
{
	static int installed;

	memset(tracked, 0, sizeof(tracked));
	if (!installed++)
		__sanitizer_install_malloc_and_free_hooks(on_malloc, on_free);
}
#else
/* Every free of the process, json-c's included, passes here first. */
void __libc_free(void *p);

void free(void *p)
{
	if (p != NULL && watched != NULL)
		look(p, malloc_usable_size(p));
	__libc_free(p);
}

static void watch_frees(void)
{
}
#endif

static void watch(const char *const *keys)
{
	watch_frees();
	leaked = 0;
	watched = keys;
}

static int unwatch(void)
{
	watched = NULL;
	return leaked;
}

struct parsed {
	kms_rc rc;
	char id[KMS_KEY_ID_MAX + 1];
	uint8_t key[64];
	kms_error err;
};

static struct parsed parse_keys(const char *body, const char *want_id,
				size_t key_len)
{
	struct parsed r;

	memset(&r, 0, sizeof(r));
	r.rc = kms_etsi_parse_key_container(body, strlen(body), want_id, key_len,
					    r.id, r.key, &r.err);
	return r;
}

static void assert_refused(const char *body, const char *want_id,
			   const char *words)
{
	struct parsed r = parse_keys(body, want_id, 32);

	assert_int_equal(r.rc, KMS_ERR_KME);
	if (strstr(r.err.message, words) == NULL)
		fail_msg("message '%s' lacks '%s'", r.err.message, words);
	/* Never key material in a message. */
	assert_null(strstr(r.err.message, "AAECAwQF"));
}

static void test_requests(void **state)
{
	const char *one[] = { "id/with\"quote" }, *two[] = { "a", "b" };
	char *enc = kms_etsi_enc_keys_request(1, 256);
	char *dec = kms_etsi_dec_keys_request(one, 1);
	char *dec2 = kms_etsi_dec_keys_request(two, 2);

	(void)state;
	assert_string_equal(enc, "{\"number\":1,\"size\":256}");
	assert_string_equal(dec,
		"{\"key_IDs\":[{\"key_ID\":\"id/with\\\"quote\"}]}");
	assert_string_equal(dec2,
		"{\"key_IDs\":[{\"key_ID\":\"a\"},{\"key_ID\":\"b\"}]}");
	free(enc);
	free(dec);
	free(dec2);
}

static void test_valid_container(void **state)
{
	struct parsed r;

	(void)state;
	r = parse_keys("{\"keys\":[{\"key_ID\":\"bc490419-7d60-487f-adc1-4ddcc177c139\","
		       "\"key\":\"" KEY32 "\"}]}\n", NULL, 32);
	assert_int_equal(r.rc, KMS_OK);
	assert_string_equal(r.id, "bc490419-7d60-487f-adc1-4ddcc177c139");
	for (int i = 0; i < 32; i++)
		assert_int_equal(r.key[i], i);
	/* Extensions are allowed and ignored; non-UUID IDs are fine. */
	r = parse_keys("{\"keys\":[{\"key_ID\":\"K-1\",\"key\":\"" KEY32 "\","
		       "\"key_ID_extension\":{\"a\":1},\"key_extension\":[1]}],"
		       "\"key_container_extension\":null}", "K-1", 32);
	assert_int_equal(r.rc, KMS_OK);
	assert_string_equal(r.id, "K-1");
}

static void test_malformed_containers(void **state)
{
	(void)state;
	assert_refused("", NULL, "not valid JSON (it is empty)");
	assert_refused(" \r\n", NULL, "not valid JSON (it is empty)");
	assert_refused("{\"keys\":[{\"key_ID\":\"a\",\"key\":\"" KEY32 "\"}]",
		       NULL, "ends too early, after 77 bytes");
	assert_refused("{\"keys\":[{\"key_ID\":\"a\",\"key\":\"" KEY32 "\"}]}{}",
		       NULL, "unexpected byte 0x7b at offset 78, after the document");
	/* The byte and where, never the answer's text. */
	assert_refused("<html>", NULL, "not valid JSON (unexpected byte 0x3c at offset 0)");
	assert_refused("{\"keys\":[{\"key_ID\":\"a\",\"key\":'" KEY32 "'}]}",
		       NULL, "unexpected byte 0x27 at offset 29");
	assert_refused("{\"keys\":[{\"key_ID\":\"a\",\"key\":\"AAEC\nAwQF\"}]}",
		       NULL, "control byte 0x0a in a string at offset 34");
	assert_refused("{\"keys\":[{\"key_ID\":\"a\",\"key\":\"AAEC\\xAwQF\"}]}",
		       NULL, "bad escape in a string at offset 34");
	assert_refused("{\"keys\":[{\"key_ID\":\"a\",\"key\":\"AAEC\\u00gA\"}]}",
		       NULL, "bad escape in a string at offset 34");
	assert_refused("{\"keys\":[{\"key_ID\":\"a\",\"key\":\"AAEC\\u00", NULL,
		       "ends too early");
	assert_refused("{\"keys\":[{\"key_ID\":\"a\",\"key\":\"" KEY32 "\",}]}",
		       NULL, "unexpected byte 0x7d");
	assert_refused("{\"keys\":[{\"key_ID\":\"a\",\"key\":\"" KEY32 "\"},]}",
		       NULL, "unexpected byte 0x5d");
	assert_refused("{\"keys\":[{\"key_ID\":\"a\",\"key\":\"" KEY32 "\"}],"
		       "\"n\":01}", NULL, "unexpected byte 0x31");
	assert_refused("{\"keys\":[{\"key_ID\":\"a\",\"key\":\"" KEY32 "\"}],"
		       "\"n\":tru}", NULL, "unexpected byte 0x7d");
	assert_refused("[]", NULL, "not a key container");
	assert_refused("{\"key\":[]}", NULL, "not a key container");
	assert_refused("{\"keys\":{}}", NULL, "not a key container");
	assert_refused("{\"keys\":[]}", NULL, "sent 0 keys");
	assert_refused("{\"keys\":[{\"key_ID\":\"a\",\"key\":\"" KEY32 "\"},"
		       "{\"key_ID\":\"b\",\"key\":\"" KEY32 "\"}]}", NULL,
		       "sent 2 keys");
	assert_refused("{\"keys\":[7]}", NULL, "no key_ID");
	assert_refused("{\"keys\":[{\"key\":\"" KEY32 "\"}]}", NULL, "no key_ID");
	assert_refused("{\"keys\":[{\"key_ID\":5,\"key\":\"" KEY32 "\"}]}", NULL,
		       "no key_ID");
	assert_refused("{\"keys\":[{\"key_ID\":\"\",\"key\":\"" KEY32 "\"}]}",
		       NULL, "empty");
	assert_refused("{\"keys\":[{\"key_ID\":\"a b\",\"key\":\"" KEY32 "\"}]}",
		       NULL, "0x20");
	assert_refused("{\"keys\":[{\"key_ID\":\"a\\u0000b\",\"key\":\"" KEY32 "\"}]}",
		       NULL, "NUL");
	assert_refused("{\"keys\":[{\"key_ID\":\"a\\nb\",\"key\":\"" KEY32 "\"}]}",
		       NULL, "0x0a");
	assert_refused("{\"keys\":[{\"key_ID\":\"0123456789012345678901234567890123"
		       "456789012345678901234567890123456789\",\"key\":\"" KEY32
		       "\"}]}", NULL, "at most 64");
	assert_refused("{\"keys\":[{\"key_ID\":\"a\"}]}", NULL, "no key string");
	assert_refused("{\"keys\":[{\"key_ID\":\"a\",\"key\":null}]}", NULL,
		       "no key string");
	/* 16 bytes where 32 were asked for. */
	assert_refused("{\"keys\":[{\"key_ID\":\"a\",\"key\":\"AAECAwQFBgcICQoLDA0ODw==\"}]}",
		       NULL, "not 32 bytes");
	assert_refused("{\"keys\":[{\"key_ID\":\"a\",\"key\":\"" KEY32 "AAAA\"}]}",
		       NULL, "not 32 bytes");
	/* 32 bytes without the '=' of base64's padding (43 characters): the
	 * message says so, for the vendor; so for the URL-safe alphabet,
	 * padded or not. */
	assert_refused("{\"keys\":[{\"key_ID\":\"a\",\"key\":"
		       "\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\"}]}",
		       NULL, "is unpadded base64 (43 characters, no '='): "
		       "ETSI GS QKD 014 asks for base64 (RFC 4648 section 4), "
		       "44 characters for 32 bytes");
	assert_refused("{\"keys\":[{\"key_ID\":\"a\",\"key\":"
		       "\"-_ECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\"}]}",
		       NULL, "is unpadded base64url (43 characters, no '='; '-' "
		       "or '_', the URL-safe alphabet)");
	assert_refused("{\"keys\":[{\"key_ID\":\"a\",\"key\":"
		       "\"-_ECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"}]}",
		       NULL, "is base64url (the URL-safe alphabet: '-' or '_')");
	/* Neither alphabet, or a length that is not 32 bytes unpadded: as
	 * before. */
	assert_refused("{\"keys\":[{\"key_ID\":\"a\",\"key\":"
		       "\"+_ECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\"}]}",
		       NULL, "is not 32 bytes of base64 (43 characters)");
	assert_refused("{\"keys\":[{\"key_ID\":\"a\",\"key\":"
		       "\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh\"}]}",
		       NULL, "is not 32 bytes of base64 (42 characters)");
	/* Right length, bad alphabet, non-canonical tail bits. */
	assert_refused("{\"keys\":[{\"key_ID\":\"a\",\"key\":"
		       "\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh*=\"}]}",
		       NULL, "not valid base64");
	assert_refused("{\"keys\":[{\"key_ID\":\"a\",\"key\":"
		       "\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9=\"}]}",
		       NULL, "not valid base64");
	/* dec_keys answered with another key than the one asked for. */
	assert_refused("{\"keys\":[{\"key_ID\":\"other\",\"key\":\"" KEY32 "\"}]}",
		       "mine", "not the 'mine' asked for");
	/* Nesting bomb: json-c's depth limit, no stack exhaustion. */
	assert_refused("[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
		       NULL, "not valid JSON (nested deeper than 16 levels at offset 16)");
	/* 16 levels are fine (and not a key container). */
	assert_refused("[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]", NULL, "not a key container");
	assert_refused("null", NULL, "not a key container");
}

/* Escapes decode as json-c decodes them; so do numbers and literals. */
static void test_json_values(void **state)
{
	static const char body[] =
		" {\"s\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0041\\u00e9\\u20ac"
		"\\ud83d\\ude00\\ud800x\\udc00\",\"n\":[0,-0,12,-12,9223372036854775807,"
		"18446744073709551615,-9223372036854775808,1.5,-2.5e-3,1E2],"
		"\"l\":[true,false,null],\"\":{}}\r\n";
	json_object *doc, *v;
	kms_error err;

	(void)state;
	assert_int_equal(kms_etsi_read(body, strlen(body), &doc, &err), KMS_OK);
	assert_true(json_object_object_get_ex(doc, "s", &v));
	assert_int_equal(json_object_get_string_len(v), 25);
	assert_memory_equal(json_object_get_string(v),
			    "\"\\/\b\f\n\r\tA\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"
			    "\xef\xbf\xbdx\xef\xbf\xbd", 25);
	assert_true(json_object_object_get_ex(doc, "n", &v));
	assert_int_equal(json_object_array_length(v), 10);
	assert_int_equal(json_object_get_int64(json_object_array_get_idx(v, 2)), 12);
	assert_int_equal(json_object_get_int64(json_object_array_get_idx(v, 3)), -12);
	assert_true(json_object_get_int64(json_object_array_get_idx(v, 4)) == INT64_MAX);
	assert_true(json_object_get_uint64(json_object_array_get_idx(v, 5)) == UINT64_MAX);
	assert_true(json_object_get_int64(json_object_array_get_idx(v, 6)) == INT64_MIN);
	assert_true(json_object_is_type(json_object_array_get_idx(v, 7), json_type_double));
	assert_true(json_object_get_double(json_object_array_get_idx(v, 7)) == 1.5);
	assert_true(json_object_get_double(json_object_array_get_idx(v, 8)) == -2.5e-3);
	assert_true(json_object_get_double(json_object_array_get_idx(v, 9)) == 100.0);
	assert_true(json_object_object_get_ex(doc, "l", &v));
	assert_true(json_object_get_boolean(json_object_array_get_idx(v, 0)));
	assert_false(json_object_get_boolean(json_object_array_get_idx(v, 1)));
	assert_null(json_object_array_get_idx(v, 2));
	assert_true(json_object_object_get_ex(doc, "", &v));
	kms_etsi_drop(doc);
	assert_int_equal(kms_etsi_read("null", 4, &doc, &err), KMS_OK);
	assert_null(doc);
}

static void test_status(void **state)
{
	static const char body[] =
		"{\"source_KME_ID\":\"KME_A\",\"target_KME_ID\":\"KME_B\","
		"\"master_SAE_ID\":\"SAE_A\",\"slave_SAE_ID\":\"SAE_B\","
		"\"key_size\":256,\"stored_key_count\":25000,\"max_key_count\":100000,"
		"\"max_key_per_request\":128,\"max_key_size\":1024,"
		"\"min_key_size\":64,\"max_SAE_ID_count\":0}";
	kms_status st = { .key_size_bits = -1, .stored_key_count = -1 };
	kms_error err;

	(void)state;
	assert_int_equal(kms_etsi_parse_status(body, strlen(body), &st, &err), KMS_OK);
	assert_string_equal(st.source_kme_id, "KME_A");
	assert_string_equal(st.target_kme_id, "KME_B");
	assert_int_equal(st.key_size_bits, 256);
	assert_int_equal(st.stored_key_count, 25000);
	assert_int_equal(st.max_key_count, 100000);
	assert_int_equal(st.max_key_per_request, 128);
	assert_int_equal(st.min_key_size_bits, 64);
	assert_int_equal(st.max_key_size_bits, 1024);
	assert_int_equal(kms_etsi_parse_status("[1]", 3, &st, &err), KMS_ERR_KME);
	assert_int_equal(kms_etsi_parse_status("{", 1, &st, &err), KMS_ERR_KME);
}

static void test_error_text(void **state)
{
	char out[200];
	static const char json[] = "{\"message\":\"key not found\\n\\tat all\","
				   "\"details\":[{\"x\":1}]}";
	static const char sim[] =
		"{\"message\":\"key 3a1a63c2 not found or already retrieved\","
		"\"details\":[{\"key_ID\":\"3a1a63c2\",\"KME_ID\":\"KME_B\"},"
		"\"more\",{\"n\":-1,\"d\":0.5,\"b\":true,\"z\":null,\"a\":[1]}]}";
	static const char html[] = "<html>\r\n<head><title>503 Service "
				   "Unavailable</title></head></html>";

	(void)state;
	assert_int_equal(kms_etsi_error_text(json, strlen(json), out, sizeof(out)), 1);
	assert_string_equal(out, "key not found at all (details: x=1)");
	assert_int_equal(kms_etsi_error_text(sim, strlen(sim), out, sizeof(out)), 1);
	assert_string_equal(out, "key 3a1a63c2 not found or already retrieved (details: "
				 "key_ID=3a1a63c2, KME_ID=KME_B; more; n=-1, d=0.5, "
				 "b=true, z=null, a=...)");
	/* Cut to the room given. */
	assert_int_equal(kms_etsi_error_text(sim, strlen(sim), out, 20), 1);
	assert_string_equal(out, "key 3a1a63c2 not fo");
	/* An HTML page (a proxy's) is described, not quoted. */
	assert_int_equal(kms_etsi_error_text(html, strlen(html), out, sizeof(out)), 0);
	assert_string_equal(out, "(the body is not an ETSI error message: 66 bytes of "
				 "HTML or XML; not quoted)");
	assert_int_equal(kms_etsi_error_text("", 0, out, sizeof(out)), 0);
	assert_string_equal(out, "");
	assert_int_equal(kms_etsi_error_text(" \r\n", 3, out, sizeof(out)), 0);
	assert_string_equal(out, "");
	assert_int_equal(kms_etsi_error_text("{\"message\":\" \"}", 15, out,
					     sizeof(out)), 0);
	assert_string_equal(out, "");
	assert_int_equal(kms_etsi_error_text("{\"details\":[]}", 14, out, sizeof(out)),
			 0);
	assert_string_equal(out, "(the body is not an ETSI error message: JSON without "
				 "a \"message\" string; not quoted)");
	assert_int_equal(kms_etsi_error_text("\x01\x02\xff", 3, out, sizeof(out)), 0);
	assert_string_equal(out, "(the body is not an ETSI error message: not valid "
				 "JSON, unexpected byte 0x01 at offset 0; not quoted)");
	assert_int_equal(kms_etsi_error_text("{\"message\":\"a\",\"message\":\"b\"}",
					     29, out, sizeof(out)), 0);
	assert_string_equal(out, "(the body is not an ETSI error message: it has member "
				 "\"message\" twice in one object, at offset 15; not "
				 "quoted)");
}

/* A member named twice: json-c kept the last and freed the first unwiped,
 * a key among them. Refused, wherever it is, escaped or not. */
static void test_duplicate_members(void **state)
{
	struct parsed r;

	(void)state;
	assert_refused("{\"keys\":[{\"key_ID\":\"a\",\"key\":\"" KEY32_B "\","
		       "\"key\":\"" KEY32 "\"}]}", NULL, "\"key\" twice");
	assert_refused("{\"keys\":[{\"key_ID\":\"a\",\"k\\u0065y\":\"" KEY32_B "\","
		       "\"key\":\"" KEY32 "\"}]}", NULL, "\"key\" twice");
	assert_refused("{\"keys\":[{\"key_ID\":\"a\",\"key\":\"" KEY32 "\"}],"
		       "\"keys\":[{\"key_ID\":\"b\",\"key\":\"" KEY32_B "\"}]}",
		       NULL, "\"keys\" twice");
	assert_refused("{\"keys\":[{\"key_ID\":\"a\",\"key_ID\":\"b\",\"key\":\""
		       KEY32 "\"}]}", NULL, "\"key_ID\" twice");
	/* A name kmstore does not know is not quoted: it may be anything. */
	r = parse_keys("{\"keys\":[{\"key_ID\":\"a\",\"key\":\"" KEY32 "\","
		       "\"key_extension\":{\"" KEY32_B "\":1,\"" KEY32_B "\":2}}]}",
		       NULL, 32);
	assert_int_equal(r.rc, KMS_ERR_KME);
	assert_contains(r.err.message, "twice");
	assert_lacks(r.err.message, "QEFCQ0RF");
	/* The same name in two objects is no repetition. */
	r = parse_keys("{\"keys\":[{\"key_ID\":\"a\",\"key\":\"" KEY32 "\","
		       "\"key_extension\":{\"key\":1,\"key_ID\":2}}]}", NULL, 32);
	assert_int_equal(r.rc, KMS_OK);
}

/* Whatever json-c held of an answer is wiped before it is freed: on
 * success, on every refusal, and for an error body. */
static void test_wiped_on_every_path(void **state)
{
	static const char *const keys[] = { KEY32, KEY32_B, KEY32_C, NULL };
	static const char *const bodies[] = {
		/* A valid container and then a stray byte. */
		"{\"keys\":[{\"key_ID\":\"a\",\"key\":\"" KEY32 "\"}]}x",
		/* Cut off after the key. */
		"{\"keys\":[{\"key_ID\":\"a\",\"key\":\"" KEY32 "\"",
		"{\"keys\":[{\"key\":\"" KEY32 "\",\"key_ID\":",
		/* Nested too deep after the key. */
		"{\"keys\":[{\"key\":\"" KEY32 "\",\"key_ID\":[[[[[[[[[[[[[[[[[[[[1]]]]"
		"]]]]]]]]]]]]]]]]}]}",
		/* The key named twice; the container named twice. */
		"{\"keys\":[{\"key_ID\":\"a\",\"key\":\"" KEY32_B "\",\"key\":\"" KEY32 "\"}]}",
		"{\"keys\":[{\"key_ID\":\"a\",\"key\":\"" KEY32 "\"}],"
		"\"keys\":[{\"key_ID\":\"b\",\"key\":\"" KEY32_B "\"}]}",
		/* An escaped key (\u0042 is its 9th character), then a stray byte. */
		"{\"keys\":[{\"key_ID\":\"a\",\"key\":\"AAECAwQF\\u0042gcICQoLDA0ODxAREhMU"
		"FRYXGBkaGxwdHh8=\"}]} x",
		/* Two keys where one was asked for; a key of another size. */
		"{\"keys\":[{\"key_ID\":\"a\",\"key\":\"" KEY32 "\"},"
		"{\"key_ID\":\"b\",\"key\":\"" KEY32_B "\"}]}",
		"{\"keys\":[{\"key_ID\":\"a\",\"key\":\"" KEY32 KEY32_C "\"}]}",
		/* A key where none belongs. */
		"{\"key\":\"" KEY32_C "\",\"keys\":[]}",
		/* Valid, and taken. */
		"{\"keys\":[{\"key_ID\":\"a\",\"key\":\"" KEY32 "\"}]}",
	};
	size_t n = sizeof(bodies) / sizeof(bodies[0]), in_use = kms_secmem_in_use();
	char out[200], bad[600] = "";
	kms_status st;
	kms_error err;

	(void)state;
	/* The watch sees a key freed unwiped. */
	watch(keys);
	{
		char *volatile copy = strdup("x" KEY32 "x");

		free(copy);
	}
	assert_int_equal(unwatch(), 1);
	for (size_t i = 0; i < n; i++) {
		struct parsed r;
		int in_parse, in_rest;

		watch(keys);
		r = parse_keys(bodies[i], NULL, 32);
		in_parse = unwatch();
		watch(keys);
		kms_etsi_error_text(bodies[i], strlen(bodies[i]), out, sizeof(out));
		(void)kms_etsi_parse_status(bodies[i], strlen(bodies[i]), &st, &err);
		in_rest = unwatch();
		if (in_parse != 0 || in_rest != 0 ||
		    r.rc != (i + 1 < n ? KMS_ERR_KME : KMS_OK))
			snprintf(bad + strlen(bad), sizeof(bad) - strlen(bad),
				 " %zu%s%s%s", i, in_parse ? " (parse)" : "",
				 in_rest ? " (error text or status)" : "",
				 r.rc == KMS_OK && i + 1 < n ? " (taken)" : "");
	}
	if (bad[0] != '\0')
		fail_msg("key text freed unwiped or answer taken, bodies:%s", bad);
	assert_int_equal(kms_secmem_in_use(), in_use); /* the scratch is freed */
}

/* An error body is quoted only when it is an ETSI error object: never a
 * body that holds a key, nor one that is not JSON. */
static void test_error_text_secrets(void **state)
{
	static const char *const bodies[] = {
		/* An HTTP 500 whose body is a cut-off key container. */
		"{\"keys\":[{\"key_ID\":\"a\",\"key\":\"" KEY32 "\"",
		"{\"keys\":[{\"key_ID\":\"a\",\"key\":\"" KEY32,
		/* A whole key container under an error status. */
		"{\"keys\":[{\"key_ID\":\"a\",\"key\":\"" KEY32 "\"}]}",
		/* An error object that also holds a key, at any depth. */
		"{\"message\":\"oops\",\"key\":\"" KEY32 "\"}",
		"{\"message\":\"oops\",\"details\":[{\"key\":\"" KEY32 "\"}]}",
		/* A message that wraps an upstream's key container. */
		"{\"message\":\"upstream: {\\\"keys\\\":[{\\\"key\\\":\\\"" KEY32
		"\\\"}]}\"}",
		/* Not JSON at all. */
		KEY32,
		"key=" KEY32,
	};
	char out[200];
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		memset(out, 'x', sizeof(out));
		kms_etsi_error_text(bodies[i], strlen(bodies[i]), out, sizeof(out));
		if (strstr(out, "AAECAwQF") != NULL || strstr(out, "HR8=") != NULL ||
		    strstr(out, "not quoted") == NULL) {
			print_error("body %zu: '%s'\n", i, out);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

/* A key in an ETSI error object under a name kmstore does not know, or in
 * its message, in the forms a KME might write it: not shown, wherever it
 * is; the message, names, UUIDs, short IDs and numbers around it are. */
#define HEX32 "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define UUID "550e8400-e29b-41d4-a716-446655440000"
/* 16 bytes f0..ff, base64url without padding. */
#define KEY16_URL "8PHy8_T19vf4-fr7_P3-_w"
#define COLON_HEX "00:01:02:03:04:05:06:07:08:09:0a:0b:0c:0d:0e:0f:" \
		  "10:11:12:13:14:15:16:17:18:19:1a:1b:1c:1d:1e:1f"
/* Java's Arrays.toString of f0..ff 00..0f (signed bytes). */
#define SIGNED "[-16, -15, -14, -13, -12, -11, -10, -9, -8, -7, -6, -5, -4, " \
	       "-3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]"
/* 64 bytes 40..7f in base64, wrapped at 76 characters as MIME does. */
#define KEY64_L1 "QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl9gYWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4"
#define KEY64_L2 "eXp7fH1+fw=="

/* No 8 characters in a row of secret are in out. */
static int shows(const char *out, const char *secret)
{
	for (size_t i = 0; i + 8 <= strlen(secret); i++)
		if (memmem(out, strlen(out), secret + i, 8) != NULL)
			return 1;
	return 0;
}

static void test_error_text_key_material(void **state)
{
	static const struct {
		const char *body, *want;
	} cases[] = {
		{ "{\"message\":\"x\",\"details\":[{\"k\":\"" KEY32 "\"}]}",
		  "x (details: k=<44 characters, not shown>)" },
		{ "{\"message\":\"bad key " HEX32 "\",\"details\":[{\"hex\":\""
		  HEX32 "\",\"size\":256}]}",
		  "bad key <64 characters, not shown> (details: hex=<64 characters, "
		  "not shown>, size=256)" },
		{ "{\"message\":\"key " UUID " not found\",\"details\":[{\"key_ID\":\""
		  UUID "\",\"KME_ID\":\"KME_B\",\"max_key_per_request\":4}]}",
		  "key " UUID " not found (details: key_ID=" UUID ", KME_ID=KME_B, "
		  "max_key_per_request=4)" },
		/* The smallest key kmstore takes, in base64url, in a name. */
		{ "{\"message\":\"x\",\"details\":[{\"" KEY16_URL "\":1}]}",
		  "x (details: <23 characters, not shown>1)" },
		/* Inside a word, a path, a JSON text in a string. */
		{ "{\"message\":\"k=" KEY32 ";/keys/" KEY16_URL "/x {\\\"k\\\":\\\""
		  KEY32 "\\\"}\"}",
		  "k=<44 characters, not shown>;<30 characters, not shown> {\"k\":\"<44 "
		  "characters, not shown>\"}" },
		{ "{\"message\":\"bytes " COLON_HEX ".\"}",
		  "bytes <95 characters, not shown>." },
		{ "{\"message\":\"x\",\"details\":[{\"k\":\"" SIGNED "\"}]}",
		  "x (details: k=[<123 characters, not shown>])" },
		{ "{\"message\":\"b'\\\\xf0\\\\xf1\\\\xf2\\\\xf3\\\\xf4\\\\xf5\\\\xf6\\\\xf7"
		  "\\\\xf8\\\\xf9\\\\xfa\\\\xfb\\\\xfc\\\\xfd\\\\xfe\\\\xff'\"}",
		  "<66 characters, not shown>'" },
		/* Wrapped: the short last line goes with the rest. */
		{ "{\"message\":\"key:\\n" KEY64_L1 "\\r\\n" KEY64_L2 "\\n\"}",
		  "key: <90 characters, not shown>" },
		/* A key spread over the values of "details": seen whole. */
		{ "{\"message\":\"bad\",\"details\":[240,241,242,243,244,245,246,"
		  "247,248,249,250,251,252,253,254,255]}",
		  "bad (details: <16 values, not shown>)" },
		{ "{\"message\":\"bad\",\"details\":[\"f0\",\"f1\",\"f2\",\"f3\","
		  "\"f4\",\"f5\",\"f6\",\"f7\",\"f8\",\"f9\",\"fa\",\"fb\",\"fc\","
		  "\"fd\",\"fe\",\"ff\"]}",
		  "bad (details: <16 values, not shown>)" },
		/* ... one byte per member, or per object: the names between the
		 * bytes do not hide them. */
		{ "{\"message\":\"bad\",\"details\":[{\"b0\":240,\"b1\":241,\"b2\":242,"
		  "\"b3\":243,\"b4\":244,\"b5\":245,\"b6\":246,\"b7\":247,\"b8\":248,"
		  "\"b9\":249,\"b10\":250,\"b11\":251,\"b12\":252,\"b13\":253,"
		  "\"b14\":254,\"b15\":255}]}",
		  "bad (details: <16 values, not shown>)" },
		{ "{\"message\":\"bad\",\"details\":[{\"k\":\"f0\"},{\"k\":\"f1\"},"
		  "{\"k\":\"f2\"},{\"k\":\"f3\"},{\"k\":\"f4\"},{\"k\":\"f5\"},"
		  "{\"k\":\"f6\"},{\"k\":\"f7\"},{\"k\":\"f8\"},{\"k\":\"f9\"},"
		  "{\"k\":\"fa\"},{\"k\":\"fb\"},{\"k\":\"fc\"},{\"k\":\"fd\"},"
		  "{\"k\":\"fe\"},{\"k\":\"ff\"}]}",
		  "bad (details: <16 values, not shown>)" },
		/* ... each byte dressed: "\xf0", "f0:", "[240]", "byte 240", or
		 * after a word hidden in place. */
		{ "{\"message\":\"bad\",\"details\":[{\"b0\":\"\\\\xf0\",\"b1\":\"\\\\x"
		  "f1\",\"b2\":\"\\\\xf2\",\"b3\":\"\\\\xf3\",\"b4\":\"\\\\xf4\",\"b5"
		  "\":\"\\\\xf5\",\"b6\":\"\\\\xf6\",\"b7\":\"\\\\xf7\",\"b8\":\"\\\\x"
		  "f8\",\"b9\":\"\\\\xf9\",\"b10\":\"\\\\xfa\",\"b11\":\"\\\\xfb\",\""
		  "b12\":\"\\\\xfc\",\"b13\":\"\\\\xfd\",\"b14\":\"\\\\xfe\",\"b15\":"
		  "\"\\\\xff\"}]}",
		  "bad (details: <16 values, not shown>)" },
		{ "{\"message\":\"bad\",\"details\":[{\"b0\":\"f0:\",\"b1\":\"f1:\",\""
		  "b2\":\"f2:\",\"b3\":\"f3:\",\"b4\":\"f4:\",\"b5\":\"f5:\",\"b6\":\""
		  "f6:\",\"b7\":\"f7:\",\"b8\":\"f8:\",\"b9\":\"f9:\",\"b10\":\"fa:\""
		  ",\"b11\":\"fb:\",\"b12\":\"fc:\",\"b13\":\"fd:\",\"b14\":\"fe:\",\""
		  "b15\":\"ff:\"}]}",
		  "bad (details: <16 values, not shown>)" },
		{ "{\"message\":\"bad\",\"details\":[{\"b0\":\"[240]\",\"b1\":\"[241]"
		  "\",\"b2\":\"[242]\",\"b3\":\"[243]\",\"b4\":\"[244]\",\"b5\":\"[24"
		  "5]\",\"b6\":\"[246]\",\"b7\":\"[247]\",\"b8\":\"[248]\",\"b9\":\"["
		  "249]\",\"b10\":\"[250]\",\"b11\":\"[251]\",\"b12\":\"[252]\",\"b13"
		  "\":\"[253]\",\"b14\":\"[254]\",\"b15\":\"[255]\"}]}",
		  "bad (details: <16 values, not shown>)" },
		{ "{\"message\":\"bad\",\"details\":[{\"b0\":\"byte 240\",\"b1\":\"by"
		  "te 241\",\"b2\":\"byte 242\",\"b3\":\"byte 243\",\"b4\":\"byte 244"
		  "\",\"b5\":\"byte 245\",\"b6\":\"byte 246\",\"b7\":\"byte 247\",\"b"
		  "8\":\"byte 248\",\"b9\":\"byte 249\",\"b10\":\"byte 250\",\"b11\":"
		  "\"byte 251\",\"b12\":\"byte 252\",\"b13\":\"byte 253\",\"b14\":\"b"
		  "yte 254\",\"b15\":\"byte 255\"}]}",
		  "bad (details: <16 values, not shown>)" },
		{ "{\"message\":\"bad\",\"details\":[{\"b0\":\"AAAAAAAAAAAAAAAAAAAAAA"
		  "AAAAAA 240\",\"b1\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAA 241\",\"b2\":\""
		  "AAAAAAAAAAAAAAAAAAAAAAAAAAAA 242\",\"b3\":\"AAAAAAAAAAAAAAAAAAAAAA"
		  "AAAAAA 243\",\"b4\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAA 244\",\"b5\":\""
		  "AAAAAAAAAAAAAAAAAAAAAAAAAAAA 245\",\"b6\":\"AAAAAAAAAAAAAAAAAAAAAA"
		  "AAAAAA 246\",\"b7\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAA 247\",\"b8\":\""
		  "AAAAAAAAAAAAAAAAAAAAAAAAAAAA 248\",\"b9\":\"AAAAAAAAAAAAAAAAAAAAAA"
		  "AAAAAA 249\",\"b10\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAA 250\",\"b11\":"
		  "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAA 251\",\"b12\":\"AAAAAAAAAAAAAAAAAAA"
		  "AAAAAAAAA 252\",\"b13\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAA 253\",\"b14"
		  "\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAA 254\",\"b15\":\"AAAAAAAAAAAAAAAA"
		  "AAAAAAAAAAAA 255\"}]}",
		  "bad (details: <16 values, not shown>)" },
		/* A KME's limits in details, numbers under their names: shown. */
		{ "{\"message\":\"too many\",\"details\":[{\"max_key_count\":100000,"
		  "\"max_key_per_request\":128,\"max_key_size\":1024,"
		  "\"stored_key_count\":25000,\"number\":256}]}",
		  "too many (details: max_key_count=100000, max_key_per_request=128, "
		  "max_key_size=1024, stored_key_count=25000, number=256)" },
		/* "=" ends a word: the key ID after it is a UUID, shown. */
		{ "{\"message\":\"no key_ID=" UUID "\"}", "no key_ID=" UUID },
		/* Short words, numbers and hex-looking prose stay. */
		{ "{\"message\":\"a bad decade: 10.0.0.1:443, sizes 128, 256, 512\","
		  "\"details\":[{\"additional\":\"sae-0001/enc_keys\"}]}",
		  "a bad decade: 10.0.0.1:443, sizes 128, 256, 512 (details: "
		  "additional=sae-0001/enc_keys)" },
	};
	static const char *const secrets[] = {
		KEY32, HEX32, KEY16_URL, COLON_HEX, SIGNED, KEY64_L1, KEY64_L2,
		"f0\\xf1\\xf2\\xf3", "240; 241; 242", "f0; f1; f2", "b1=241, b2=242",
		"k=f1; k=f2", NULL,
	};
	char out[200];
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int quoted = kms_etsi_error_text(cases[i].body, strlen(cases[i].body),
						 out, sizeof(out));

		for (const char *const *s = secrets; *s != NULL; s++)
			if (shows(out, *s)) {
				print_error("case %zu shows a key: '%s'\n", i, out);
				bad++;
			}
		if (!quoted || strcmp(out, cases[i].want) != 0) {
			print_error("case %zu: '%s', not '%s'\n", i, out, cases[i].want);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

/* A very long string is judged whole, not by the part that fits: here
 * only 9 characters of it would. */
static void test_error_text_long(void **state)
{
	char body[8192], out[200];
	size_t n = (size_t)snprintf(body, sizeof(body), "{\"message\":\"");

	(void)state;
	for (int i = 0; i < 95; i++)
		n += (size_t)snprintf(body + n, sizeof(body) - n, ". ");
	for (int i = 0; i < 135; i++, n += strlen(KEY32) - 1)
		memcpy(body + n, KEY32, strlen(KEY32) - 1); /* 5805 characters */
	n += (size_t)snprintf(body + n, sizeof(body) - n, "\"}");
	assert_int_equal(kms_etsi_error_text(body, n, out, sizeof(out)), 1);
	assert_int_equal(strlen(out), sizeof(out) - 1);
	/* (the text is cut at 4096 bytes before it is judged) */
	assert_string_equal(out + 190, "<3906 cha");
}

/* enc_keys with number > 1 (kmstored's pool): 1 to max keys, distinct
 * IDs, each checked as one. */
static void test_batch(void **state)
{
	char ids[4][KMS_KEY_ID_MAX + 1];
	uint8_t keys[4 * 32];
	kms_error err;
	size_t n = 99;
	const char *three = "{\"keys\":[{\"key_ID\":\"a\",\"key\":\"" KEY32 "\"},"
			    "{\"key_ID\":\"b\",\"key\":\"" KEY32 "\"},"
			    "{\"key_ID\":\"c\",\"key\":\"" KEY32 "\"}]}";

	(void)state;
	assert_int_equal(kms_etsi_parse_key_batch(three, strlen(three), 4, 32, ids,
						  keys, &n, &err), KMS_OK);
	assert_int_equal(n, 3);
	assert_string_equal(ids[0], "a");
	assert_string_equal(ids[2], "c");
	assert_int_equal(keys[2 * 32 + 31], 31);
	/* More than asked for. */
	assert_int_equal(kms_etsi_parse_key_batch(three, strlen(three), 2, 32, ids,
						  keys, &n, &err), KMS_ERR_KME);
	assert_non_null(strstr(err.message, "the KME sent 3 keys; 1 to 2 were asked for"));
	assert_int_equal(n, 0);
	for (size_t i = 0; i < 2 * 32; i++)
		assert_int_equal(keys[i], 0); /* the room for max keys, wiped */
	/* The same ID twice: the same PPK would be handed out twice. */
	{
		const char *twice = "{\"keys\":[{\"key_ID\":\"a\",\"key\":\"" KEY32 "\"},"
				    "{\"key_ID\":\"a\",\"key\":\"" KEY32 "\"}]}";

		assert_int_equal(kms_etsi_parse_key_batch(twice, strlen(twice), 4, 32,
							  ids, keys, &n, &err),
				 KMS_ERR_KME);
		assert_non_null(strstr(err.message, "key_ID 'a' twice"));
	}
	/* One bad key spoils the batch. */
	{
		const char *bad = "{\"keys\":[{\"key_ID\":\"a\",\"key\":\"" KEY32 "\"},"
				  "{\"key_ID\":\"b\",\"key\":\"AAAA\"}]}";

		assert_int_equal(kms_etsi_parse_key_batch(bad, strlen(bad), 4, 32, ids,
							  keys, &n, &err), KMS_ERR_KME);
		assert_int_equal(n, 0);
	}
}

/* A KME that keeps key_IDs as UUIDs may write one back in another case
 * than it was made (RFC 9562: case insensitive on input): still the key
 * asked for, under the ID as asked, which both peers use as the PPK_ID.
 * Other key_IDs are opaque: byte for byte. */
static void test_key_id_case(void **state)
{
	struct parsed r;

	(void)state;
	r = parse_keys("{\"keys\":[{\"key_ID\":\"BC490419-7D60-487F-ADC1-4DDCC177C139\","
		       "\"key\":\"" KEY32 "\"}]}", "bc490419-7d60-487f-adc1-4ddcc177c139", 32);
	assert_int_equal(r.rc, KMS_OK);
	assert_string_equal(r.id, "bc490419-7d60-487f-adc1-4ddcc177c139");
	r = parse_keys("{\"keys\":[{\"key_ID\":\"bc490419-7d60-487f-adc1-4ddcc177c139\","
		       "\"key\":\"" KEY32 "\"}]}", "BC490419-7D60-487F-ADC1-4DDCC177C139", 32);
	assert_int_equal(r.rc, KMS_OK);
	assert_string_equal(r.id, "BC490419-7D60-487F-ADC1-4DDCC177C139");
	assert_refused("{\"keys\":[{\"key_ID\":\"K-1\",\"key\":\"" KEY32 "\"}]}",
		       "k-1", "not the 'k-1' asked for");
	/* One UUID in two cases is one key, twice. */
	{
		const char *twice = "{\"keys\":[{\"key_ID\":\"bc490419-7d60-487f-adc1-4ddcc177c139\","
				    "\"key\":\"" KEY32 "\"},{\"key_ID\":"
				    "\"BC490419-7D60-487F-ADC1-4DDCC177C139\",\"key\":\"" KEY32 "\"}]}";
		char ids[2][KMS_KEY_ID_MAX + 1];
		uint8_t keys[64];
		kms_error err;
		size_t n;

		assert_int_equal(kms_etsi_parse_key_batch(twice, strlen(twice), 2, 32,
							  ids, keys, &n, &err),
				 KMS_ERR_KME);
		assert_non_null(strstr(err.message, "twice"));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_requests),
		cmocka_unit_test(test_valid_container),
		cmocka_unit_test(test_malformed_containers),
		cmocka_unit_test(test_json_values),
		cmocka_unit_test(test_status),
		cmocka_unit_test(test_error_text),
		cmocka_unit_test(test_batch),
		cmocka_unit_test(test_duplicate_members),
		cmocka_unit_test(test_wiped_on_every_path),
		cmocka_unit_test(test_error_text_secrets),
		cmocka_unit_test(test_error_text_key_material),
		cmocka_unit_test(test_error_text_long),
		cmocka_unit_test(test_key_id_case),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
