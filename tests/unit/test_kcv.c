/* test_kcv.c - the key check value: the first 6 hex digits of
 * HMAC-SHA256(key, "kmstore-kcv"). The expected values were computed apart
 * from the library, with the openssl command:
 *   printf kmstore-kcv | openssl dgst -sha256 -mac HMAC -macopt hexkey:KEY */
#include <string.h>

#include <openssl/provider.h>

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
	char old[KMS_KCV_LEN + 1];

	assert_int_equal(kms_key_check_value_ex(key, out, NULL), KMS_OK);
	kms_key_check_value(key, old); /* 0.1.0's form: the same value */
	assert_string_equal(old, out);
	kms_key_free(key);
}

/* First in this process: libcrypto's default library context with only
 * the base provider (a program that loaded providers, not "default") has
 * no HMAC. The check value then fails, saying why, with nothing that could
 * pass for a value; once "default" is loaded the next call computes it. */
static void test_unavailable_then_retried(void **state)
{
	uint8_t seq[32];
	char kcv[KMS_KCV_LEN + 1] = "xxxxxx";
	kms_error err = { 0 };
	OSSL_PROVIDER *base, *dflt;
	kms_key *key;

	(void)state;
	for (int i = 0; i < 32; i++)
		seq[i] = (uint8_t)i;
	key = make("a", seq, sizeof(seq));
	base = OSSL_PROVIDER_load(NULL, "base");
	assert_non_null(base);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(kms_key_check_value_ex(key, kcv, &err), KMS_ERR_UNSUPPORTED);
		assert_string_equal(kcv, "");
		assert_non_null(strstr(err.message, "HMAC-SHA256 is not available"));
		assert_non_null(strstr(err.message, "default provider"));
		strcpy(kcv, "xxxxxx");
		kms_key_check_value(key, kcv); /* 0.1.0's form: "" too */
		assert_string_equal(kcv, "");
	}
	dflt = OSSL_PROVIDER_load(NULL, "default");
	assert_non_null(dflt);
	assert_int_equal(kms_key_check_value_ex(key, kcv, &err), KMS_OK);
	assert_string_equal(kcv, KCV_SEQ32);
	kms_key_free(key);
	/* The other tests use "default" too; the template keeps its own
	 * references, so these can go. */
	OSSL_PROVIDER_unload(base);
	OSSL_PROVIDER_unload(dflt);
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
	assert_int_equal(kms_key_check_value_ex(dup, kb, NULL), KMS_OK);
	assert_string_equal(ka, kb);
	assert_string_equal(kms_key_id(dup), "x");
	kms_key_free(key);
	kms_key_free(dup);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unavailable_then_retried),
		cmocka_unit_test(test_known_answers),
		cmocka_unit_test(test_different_keys),
		cmocka_unit_test(test_id_does_not_matter),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
