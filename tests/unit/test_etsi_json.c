/* test_etsi_json.c - ETSI GS QKD 014 bodies: requests as the standard
 * shows them, and every malformed answer a KME could send. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "etsi014_json.h"

/* 32 bytes 00..1f in base64. */
#define KEY32 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

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
	assert_refused("", NULL, "not valid JSON");
	assert_refused("{\"keys\":[{\"key_ID\":\"a\",\"key\":\"" KEY32 "\"}]",
		       NULL, "ends too early");
	assert_refused("{\"keys\":[{\"key_ID\":\"a\",\"key\":\"" KEY32 "\"}]}{}",
		       NULL, "unexpected character");
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
		       NULL, "not valid JSON");
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
	char out[64];
	static const char json[] = "{\"message\":\"key not found\\n\\tat all\","
				   "\"details\":[{\"x\":1}]}";
	static const char html[] = "<html>\r\n<head><title>503 Service "
				   "Unavailable</title></head></html>";

	(void)state;
	kms_etsi_error_text(json, strlen(json), out, sizeof(out));
	assert_string_equal(out, "key not found at all");
	kms_etsi_error_text(html, strlen(html), out, sizeof(out));
	assert_string_equal(out, "<html> <head><title>503 Service Unavailable</title"
				 "></head></htm");
	kms_etsi_error_text("", 0, out, sizeof(out));
	assert_string_equal(out, "");
	kms_etsi_error_text("{\"details\":[]}", 14, out, sizeof(out));
	assert_string_equal(out, "");
	kms_etsi_error_text("\x01\x02\xff", 3, out, sizeof(out));
	assert_string_equal(out, "");
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_requests),
		cmocka_unit_test(test_valid_container),
		cmocka_unit_test(test_malformed_containers),
		cmocka_unit_test(test_status),
		cmocka_unit_test(test_error_text),
		cmocka_unit_test(test_batch),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
