/* test_wire.c - kmstored's protocol (kmstore/src/wire.h) at its bounds:
 * the header's body length at the limit and one past it, a request as
 * built by one end and parsed by the other, what a parser refuses and the
 * words it says so with. The fuzz targets find crashes; these pin what a
 * parser accepts. */
#include <string.h>

#include "error.h"
#include "util.h"
#include "wire.h"

/* A header as a client sends it, with body length len. */
static void header(uint8_t h[KMS_WIRE_HEADER], int kind, uint32_t len)
{
	memcpy(h, "KMSD", 4);
	h[4] = KMS_WIRE_VERSION;
	h[5] = (uint8_t)kind;
	h[6] = h[7] = 0;
	h[8] = (uint8_t)(len >> 24);
	h[9] = (uint8_t)(len >> 16);
	h[10] = (uint8_t)(len >> 8);
	h[11] = (uint8_t)len;
}

static void header_at_the_limit(void **state)
{
	uint8_t h[KMS_WIRE_HEADER];
	char why[128] = "";
	uint32_t len = 0;
	int kind = 0;

	(void)state;
	header(h, KMS_WIRE_KEY, KMS_WIRE_REQUEST_MAX);
	assert_int_equal(kms_wire_header(h, KMS_WIRE_REQUEST_MAX, &kind, &len, why,
					 sizeof(why)), 0);
	assert_int_equal(kind, KMS_WIRE_KEY);
	assert_int_equal(len, KMS_WIRE_REQUEST_MAX);

	header(h, KMS_WIRE_KEY, KMS_WIRE_REQUEST_MAX + 1);
	assert_int_equal(kms_wire_header(h, KMS_WIRE_REQUEST_MAX, &kind, &len, why,
					 sizeof(why)), -1);
	assert_string_equal(why, "a body of 4097 bytes; at most 4096 are allowed");

	/* a length whose top byte is set: not read as a small number */
	header(h, KMS_WIRE_KEY, 0x80000010u);
	assert_int_equal(kms_wire_header(h, KMS_WIRE_REQUEST_MAX, &kind, &len, why,
					 sizeof(why)), -1);
	assert_contains(why, "a body of 2147483664 bytes");
}

static void header_refusals(void **state)
{
	uint8_t h[KMS_WIRE_HEADER];
	char why[128];
	uint32_t len;
	int kind;

	(void)state;
	header(h, KMS_WIRE_KEY, 0);
	h[0] = 'k';
	assert_int_equal(kms_wire_header(h, 64, &kind, &len, why, sizeof(why)), -1);
	assert_string_equal(why, "not a kmstored message (no \"KMSD\")");
	header(h, KMS_WIRE_KEY, 0);
	h[4] = KMS_WIRE_VERSION + 1;
	assert_int_equal(kms_wire_header(h, 64, &kind, &len, why, sizeof(why)), -1);
	assert_string_equal(why, "protocol version 2, but this end speaks version 1");
	for (int i = 6; i <= 7; i++) {
		header(h, KMS_WIRE_KEY, 0);
		h[i] = 1;
		assert_int_equal(kms_wire_header(h, 64, &kind, &len, why,
						 sizeof(why)), -1);
		assert_string_equal(why, "reserved header bytes are not zero");
	}
}

/* A KEY request built as the library's remote profiles build it, read as
 * kmstored reads it. */
static void request_round_trip(void **state)
{
	struct kms_wire_request q;
	struct kms_wire_buf b;
	uint8_t h[KMS_WIRE_HEADER];
	char why[128];
	uint32_t len;
	int kind;
	kms_error err;

	(void)state;
	assert_int_equal(kms_wire_init(&b, KMS_WIRE_REQUEST_MAX, 0, KMS_WIRE_KEY), 0);
	kms_wire_put_str(&b, KMS_T_PROFILE, "qkd-west");
	kms_wire_put_str(&b, KMS_T_KEY_ID, "0a1b2c3d-0000-4000-8000-000000000001");
	assert_int_equal(kms_wire_finish(&b), 0);
	memcpy(h, b.data, KMS_WIRE_HEADER);
	assert_int_equal(kms_wire_header(h, KMS_WIRE_REQUEST_MAX, &kind, &len, why,
					 sizeof(why)), 0);
	assert_int_equal(kind, KMS_WIRE_KEY);
	assert_int_equal(len, b.len - KMS_WIRE_HEADER);
	assert_int_equal(kms_wire_parse_request(kind, b.data + KMS_WIRE_HEADER, len,
						&q, &err), KMS_OK);
	assert_true(q.has_profile && q.has_key_id);
	assert_string_equal(q.profile, "qkd-west");
	assert_string_equal(q.key_id, "0a1b2c3d-0000-4000-8000-000000000001");
	kms_wire_free(&b);
}

/* A body of fields, each tag and value as given. */
static size_t body_of(uint8_t *out, size_t n, const int *tags,
		      const char *const *values)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(values[i]);

		out[o] = (uint8_t)tags[i];
		out[o + 1] = out[o + 2] = 0;
		out[o + 3] = (uint8_t)(l >> 8);
		out[o + 4] = (uint8_t)l;
		memcpy(out + o + 5, values[i], l);
		o += 5 + l;
	}
	return o;
}

static void request_expect(int kind, const uint8_t *body, size_t len,
			   const char *message)
{
	struct kms_wire_request q;
	kms_error err;

	assert_int_equal(kms_wire_parse_request(kind, body, len, &q, &err),
			 KMS_ERR_USAGE);
	assert_contains(err.message, message);
}

static void request_refusals(void **state)
{
	static const int twice[] = { KMS_T_PROFILE, KMS_T_PROFILE };
	static const char *const two[] = { "a", "b" };
	static const int id_only[] = { KMS_T_KEY_ID };
	static const char *const id[] = { "ID_1" };
	static const int profile_only[] = { KMS_T_PROFILE };
	static const char *const bad_name[] = { "no spaces" };
	uint8_t body[KMS_WIRE_REQUEST_MAX];
	size_t n;

	(void)state;
	n = body_of(body, 2, twice, two);
	request_expect(KMS_WIRE_KEY, body, n, "field 1 given twice");
	n = body_of(body, 1, id_only, id);
	request_expect(KMS_WIRE_KEY, body, n, "no profile named");
	request_expect(KMS_WIRE_STATUS, body, n, "field 2 is not part of request 3");
	n = body_of(body, 1, profile_only, bad_name);
	request_expect(KMS_WIRE_KEY, body, n,
		       "profile name has byte 0x20 at offset 2");
	request_expect(KMS_WIRE_OK, body, 0, "unknown request 128");
	/* a field whose length runs one byte past the body */
	n = body_of(body, 1, id_only, id);
	request_expect(KMS_WIRE_KEY, body, n - 1, "a field runs past the end");
	/* a field header cut short */
	request_expect(KMS_WIRE_KEY, body, 4, "a field runs past the end");
}

/* A message is built whole or not at all: a field past max fails it. */
static void build_within_max(void **state)
{
	struct kms_wire_buf b;
	char big[KMS_WIRE_REQUEST_MAX];

	(void)state;
	/* header + field header + value: exactly the maximum */
	memset(big, 'a', sizeof(big));
	assert_int_equal(kms_wire_init(&b, KMS_WIRE_HEADER + 5 + 100, 0,
				       KMS_WIRE_KEY), 0);
	kms_wire_put(&b, KMS_T_TEXT, big, 100);
	assert_int_equal(kms_wire_finish(&b), 0);
	assert_int_equal(b.len, KMS_WIRE_HEADER + 5 + 100);
	kms_wire_free(&b);

	assert_int_equal(kms_wire_init(&b, KMS_WIRE_HEADER + 5 + 100, 0,
				       KMS_WIRE_KEY), 0);
	kms_wire_put(&b, KMS_T_TEXT, big, 101);
	assert_int_equal(kms_wire_finish(&b), -1);
	kms_wire_free(&b);

	/* grown past its first allocation, up to the maximum */
	assert_int_equal(kms_wire_init(&b, KMS_WIRE_REPLY_MAX, 0, KMS_WIRE_OK), 0);
	for (int i = 0; i < 8; i++)
		kms_wire_put(&b, KMS_T_TEXT, big, sizeof(big));
	assert_int_equal(kms_wire_finish(&b), 0);
	assert_int_equal(b.len, KMS_WIRE_HEADER + 8 * (5 + sizeof(big)));
	kms_wire_free(&b);

	/* grown to exactly its maximum, and not a byte more */
	assert_int_equal(kms_wire_init(&b, KMS_WIRE_HEADER + 2 * (5 + sizeof(big)), 0,
				       KMS_WIRE_OK), 0);
	kms_wire_put(&b, KMS_T_TEXT, big, sizeof(big));
	kms_wire_put(&b, KMS_T_MESSAGE, big, sizeof(big));
	assert_int_equal(kms_wire_finish(&b), 0);
	assert_int_equal(b.len, b.max);
	kms_wire_put(&b, KMS_T_CODE, NULL, 0);
	assert_int_equal(kms_wire_finish(&b), -1);
	kms_wire_free(&b);
}

/* An ERROR reply: the code and message, made printable. */
static void error_round_trip(void **state)
{
	struct kms_wire_buf b;
	kms_error sent, got;

	(void)state;
	kms_fail(&sent, KMS_ERR_KME, "KME down\n\x1b[31mred\x1f~\x7f");
	assert_int_equal(kms_wire_init(&b, KMS_WIRE_REPLY_MAX, 0, KMS_WIRE_ERROR), 0);
	kms_wire_put_error(&b, &sent);
	assert_int_equal(kms_wire_finish(&b), 0);
	assert_int_equal(kms_wire_parse_error(KMS_WIRE_ERROR, b.data + KMS_WIRE_HEADER,
					      b.len - KMS_WIRE_HEADER, &got),
			 KMS_ERR_KME);
	assert_string_equal(got.message, "KME down??[31mred?~?");
	assert_int_equal(kms_wire_parse_error(KMS_WIRE_OK, NULL, 0, &got), KMS_OK);
	assert_int_equal(kms_wire_parse_error(KMS_WIRE_KEY, NULL, 0, &got),
			 KMS_ERR_SYSTEM);
	assert_string_equal(got.message, "kmstored sent a malformed reply: not an answer");
	kms_wire_free(&b);
}

/* A KEY reply, in locked memory, and the key sizes a client takes. */
static void key_reply(void **state)
{
	uint8_t key[KMS_KEY_MAX + 1];
	size_t sizes[] = { KMS_KEY_MIN - 1, KMS_KEY_MIN, KMS_KEY_MAX, KMS_KEY_MAX + 1 };

	(void)state;
	memset(key, 0x5a, sizeof(key));
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		int fits = sizes[i] >= KMS_KEY_MIN && sizes[i] <= KMS_KEY_MAX;
		struct kms_wire_key k;
		struct kms_wire_buf b;
		kms_error err;

		assert_int_equal(kms_wire_init(&b, KMS_WIRE_KEY_REPLY_MAX, 1,
					       KMS_WIRE_OK), 0);
		kms_wire_put_str(&b, KMS_T_PROFILE, "static");
		kms_wire_put_str(&b, KMS_T_KEY_ID, "STATIC_PPK_1");
		kms_wire_put(&b, KMS_T_KEY, key, sizes[i]);
		assert_int_equal(kms_wire_finish(&b), 0);
		assert_int_equal(kms_wire_parse_key(b.data + KMS_WIRE_HEADER,
						    b.len - KMS_WIRE_HEADER, &k, &err),
				 fits ? KMS_OK : KMS_ERR_SYSTEM);
		if (fits) {
			assert_string_equal(k.profile, "static");
			assert_string_equal(k.key_id, "STATIC_PPK_1");
			assert_int_equal(k.key_len, sizes[i]);
			assert_memory_equal(k.key, key, sizes[i]);
		} else {
			assert_contains(err.message, "a key of a size out of bounds");
		}
		kms_wire_free(&b);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(header_at_the_limit),
		cmocka_unit_test(header_refusals),
		cmocka_unit_test(request_round_trip),
		cmocka_unit_test(request_refusals),
		cmocka_unit_test(build_within_max),
		cmocka_unit_test(error_round_trip),
		cmocka_unit_test(key_reply),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
