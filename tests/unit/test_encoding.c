/* test_encoding.c - the strict hex and base64 codecs: round trips for
 * every length from 0 to 300, and each rejection with its offset. */
#include <stdlib.h>
#include <string.h>

#include "encoding.h"
#include "util.h"

#define MAX_LEN 300

static void fill(uint8_t *b, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++) {
		seed = seed * 1664525u + 1013904223u;
		b[i] = (uint8_t)(seed >> 24);
	}
}

static void test_hex_round_trip(void **state)
{
	uint8_t in[MAX_LEN], out[MAX_LEN];
	char text[2 * MAX_LEN + 1];
	size_t where = 0;

	(void)state;
	for (size_t len = 0; len <= MAX_LEN; len++) {
		fill(in, len, (unsigned)len);
		kms_hex_encode(in, len, text);
		assert_int_equal(strlen(text), 2 * len);
		assert_int_equal(kms_hex_decoded_len(2 * len), len);
		assert_int_equal(kms_hex_decode(text, 2 * len, out, &where), 0);
		assert_memory_equal(in, out, len);
	}
	/* Upper case decodes too. */
	assert_int_equal(kms_hex_decode("ABcdEf", 6, out, &where), 0);
	assert_int_equal(out[0], 0xab);
	assert_int_equal(out[2], 0xef);
}

static void test_base64_round_trip(void **state)
{
	uint8_t in[MAX_LEN], out[MAX_LEN];
	char text[4 * ((MAX_LEN + 2) / 3) + 1];
	size_t where = 0, n;

	(void)state;
	for (size_t len = 0; len <= MAX_LEN; len++) {
		fill(in, len, (unsigned)len + 1000);
		kms_base64_encode(in, len, text);
		n = strlen(text);
		assert_int_equal(n, 4 * ((len + 2) / 3));
		assert_int_equal(kms_base64_decoded_len(text, n), len);
		assert_int_equal(kms_base64_decode(text, n, out, &where), 0);
		assert_memory_equal(in, out, len);
	}
	kms_base64_encode((const uint8_t *)"foobar", 6, text);
	assert_string_equal(text, "Zm9vYmFy");
	kms_base64_encode((const uint8_t *)"fo", 2, text);
	assert_string_equal(text, "Zm8=");
	kms_base64_encode((const uint8_t *)"f", 1, text);
	assert_string_equal(text, "Zg==");
}

static void hex_bad(const char *in, size_t want_where)
{
	uint8_t out[64];
	size_t where = 9999;

	assert_int_equal(kms_hex_decode(in, strlen(in), out, &where), -1);
	assert_int_equal(where, want_where);
}

static void test_hex_rejects(void **state)
{
	(void)state;
	assert_int_equal(kms_hex_decoded_len(3), SIZE_MAX);
	hex_bad("abc", 3);    /* odd length: the offset is the length */
	hex_bad("0g", 1);
	hex_bad("g0", 0);
	hex_bad("0011 233", 4);
	hex_bad("0011223\n", 7);
	hex_bad("001122-3", 6);
	hex_bad("0x0011", 1);
}

static void b64_bad(const char *in, size_t want_where)
{
	uint8_t out[64];
	size_t where = 9999;

	assert_int_equal(kms_base64_decode(in, strlen(in), out, &where), -1);
	assert_int_equal(where, want_where);
}

static void test_base64_rejects(void **state)
{
	(void)state;
	assert_int_equal(kms_base64_decoded_len("Zm9", 3), SIZE_MAX);
	b64_bad("Zm9", 3);         /* not a multiple of 4 */
	b64_bad("Zm9vY", 5);
	b64_bad("Zg", 2);          /* padding left out */
	b64_bad("Zm*v", 2);        /* not in the alphabet */
	b64_bad("Zm9v-mFy", 4);    /* base64url is not accepted */
	b64_bad("Zm9v_mFy", 4);
	b64_bad("Zm 9", 2);        /* white space */
	b64_bad("Zm9v\nYmF", 4);
	b64_bad("Zm=v", 2);        /* padding in the middle */
	b64_bad("Zg==Zg==", 2);
	b64_bad("Z===", 1);        /* too much padding */
	b64_bad("====", 0);
	b64_bad("Zh==", 1);        /* non-zero bits after the last byte */
	b64_bad("Zm9=", 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hex_round_trip),
		cmocka_unit_test(test_base64_round_trip),
		cmocka_unit_test(test_hex_rejects),
		cmocka_unit_test(test_base64_rejects),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
