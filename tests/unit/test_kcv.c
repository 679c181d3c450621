/* test_kcv.c - the key check value: the first 6 hex digits of
 * HMAC-SHA256(key, "kmstore-kcv"). The expected values were computed apart
 * from the library, with the openssl command:
 *   printf kmstore-kcv | openssl dgst -sha256 -mac HMAC -macopt hexkey:KEY */
#include <string.h>

#include "util.h"

/* 00 01 .. 1f */
#define KCV_SEQ32 "3e5103"
/* 16 bytes of ff */
#define KCV_FF16 "29048a"

static kms_key *make(const char *id, const uint8_t *bytes, size_t len)
{
	kms_error err;
	kms_key *key;

	if (kms_key_new("p", id, bytes, len, &key, &err) != KMS_OK)
		fail_msg("%s", err.message);
	return key;
}

static void kcv_of(const uint8_t *bytes, size_t len, const char *id,
		   char out[KMS_KCV_LEN + 1])
{
	kms_key *key = make(id, bytes, len);

	kms_key_check_value(key, out);
	kms_key_free(key);
}

static void test_known_answers(void **state)
{
	uint8_t seq[32], ff[16];
	char kcv[KMS_KCV_LEN + 1];

	(void)state;
	for (int i = 0; i < 32; i++)
		seq[i] = (uint8_t)i;
	memset(ff, 0xff, sizeof(ff));
	kcv_of(seq, sizeof(seq), "a", kcv);
	assert_string_equal(kcv, KCV_SEQ32);
	kcv_of(ff, sizeof(ff), "a", kcv);
	assert_string_equal(kcv, KCV_FF16);
	assert_int_equal(strlen(kcv), KMS_KCV_LEN);
}

static void test_different_keys(void **state)
{
	uint8_t a[32] = { 0 }, b[32] = { 0 };
	char ka[KMS_KCV_LEN + 1], kb[KMS_KCV_LEN + 1], kc[KMS_KCV_LEN + 1];

	(void)state;
	b[31] = 1;
	kcv_of(a, 32, "same", ka);
	kcv_of(b, 32, "same", kb);
	assert_string_not_equal(ka, kb);
	/* A prefix of a key is a different key... */
	memset(a, 0x11, sizeof(a));
	kcv_of(a, 32, "same", ka);
	kcv_of(a, 31, "same", kc);
	assert_string_not_equal(ka, kc);
	/* ...except that HMAC pads a key with zeros to its block size, so
	 * keys that differ only in trailing zero bytes share a check value.
	 * A property of the definition, asserted so it stays documented. */
	memset(a, 0, sizeof(a));
	kcv_of(a, 32, "same", ka);
	kcv_of(a, 31, "same", kc);
	assert_string_equal(ka, kc);
}

static void test_id_does_not_matter(void **state)
{
	uint8_t k[32];
	char ka[KMS_KCV_LEN + 1], kb[KMS_KCV_LEN + 1];
	kms_key *key, *dup;
	kms_error err;

	(void)state;
	for (int i = 0; i < 32; i++)
		k[i] = (uint8_t)(i * 7);
	kcv_of(k, 32, "PPK_ID_1", ka);
	kcv_of(k, 32, "other-id", kb);
	assert_string_equal(ka, kb);
	/* A duplicate has the same value, and the same ID. */
	key = make("x", k, 32);
	assert_int_equal(kms_key_dup(key, &dup, &err), KMS_OK);
	kms_key_check_value(dup, kb);
	assert_string_equal(ka, kb);
	assert_string_equal(kms_key_id(dup), "x");
	kms_key_free(key);
	kms_key_free(dup);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_known_answers),
		cmocka_unit_test(test_different_keys),
		cmocka_unit_test(test_id_does_not_matter),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
