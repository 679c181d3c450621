/* test_uri.c - kmstore: URIs: parsing (valid, percent-encoded, malformed),
 * formatting, and the round trip between the two. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static void expect(const char *s, const char *profile, const char *key_id)
{
	kms_uri uri;
	kms_error err;

	if (kms_uri_parse(s, &uri, &err) != KMS_OK)
		fail_msg("%s: %s", s, err.message);
	if (profile == NULL)
		assert_null(uri.profile);
	else
		assert_string_equal(uri.profile, profile);
	if (key_id == NULL)
		assert_null(uri.key_id);
	else
		assert_string_equal(uri.key_id, key_id);
	kms_uri_clear(&uri);
	assert_null(uri.profile);
	assert_null(uri.key_id);
}

static void test_valid(void **state)
{
	(void)state;
	expect("kmstore:", NULL, NULL);
	expect("kmstore:profile=a", "a", NULL);
	expect("kmstore:profile=a;key-id=b", "a", "b");
	expect("kmstore:key-id=b;profile=a", "a", "b");
	expect("KMSTORE:profile=a", "a", NULL);
	expect("KmStore:profile=west-east_1.x;key-id=PPK_ID_1", "west-east_1.x", "PPK_ID_1");
	/* RFC 7512 characters that need no encoding in a value. */
	expect("kmstore:profile=p;key-id=:[]@!$'()*+,=&-._~", "p", ":[]@!$'()*+,=&-._~");
	assert_true(kms_uri_is_kmstore("KMSTORE:x"));
	assert_false(kms_uri_is_kmstore("kmstor"));
	assert_false(kms_uri_is_kmstore(NULL));
}

static void test_percent_encoded(void **state)
{
	(void)state;
	expect("kmstore:profile=a;key-id=a%2Fb", "a", "a/b");
	expect("kmstore:profile=a;key-id=a%3Bb", "a", "a;b");
	expect("kmstore:profile=a;key-id=a%3bb", "a", "a;b");
	expect("kmstore:profile=a;key-id=%25%3D%22%3F%23", "a", "%=\"?#");
	expect("kmstore:profile=%61%2D%62", "a-b", NULL);
	expect("kmstore:profile=a;key-id=%7E%21", "a", "~!");
}

static void expect_bad(const char *s, const char *want)
{
	kms_uri uri = { (char *)"stale", (char *)"stale" };
	kms_error err;

	memset(&err, 0, sizeof(err));
	if (kms_uri_parse(s, &uri, &err) != KMS_ERR_URI)
		fail_msg("'%.80s' was accepted or gave the wrong code", s);
	assert_int_equal(err.code, KMS_ERR_URI);
	assert_null(uri.profile);
	assert_null(uri.key_id);
	assert_contains(err.message, want);
	assert_lacks(err.message, "\n");
}

static void test_malformed(void **state)
{
	(void)state;
	expect_bad("pkcs11:token=a", "not a kmstore: URI");
	expect_bad("kmstore", "not a kmstore: URI");
	expect_bad("", "not a kmstore: URI");
	expect_bad(NULL, "not a kmstore: URI");
	expect_bad("kmstore:profile", "no '='");
	expect_bad("kmstore:profile=a;key-id", "no '='");
	expect_bad("kmstore:;", "no '='");
	expect_bad("kmstore:token=a", "unknown attribute 'token'");
	expect_bad("kmstore:profile=a;id=b", "unknown attribute 'id'");
	expect_bad("kmstore:Profile=a", "unknown attribute 'Profile'");
	expect_bad("kmstore:profile=a;profile=b", "'profile' given twice");
	expect_bad("kmstore:profile=a;key-id=b;key-id=b", "'key-id' given twice");
	expect_bad("kmstore:profile=", "'profile' has an empty value");
	expect_bad("kmstore:profile=a;key-id=", "'key-id' has an empty value");
	expect_bad("kmstore:profile=a;", "ends with ';'");
	expect_bad("kmstore:profile=a;;key-id=b", "no '='");
	expect_bad("kmstore:profile=a%G1", "bad percent-encoding at offset 17");
	expect_bad("kmstore:profile=a%2", "bad percent-encoding");
	expect_bad("kmstore:profile=a%", "bad percent-encoding");
	expect_bad("kmstore:profile=a;key-id=b%00c", "bad percent-encoding");
	expect_bad("kmstore:profile=a;key-id=b c", "0x20");
	expect_bad("kmstore:profile=a;key-id=b/c", "0x2f");
	expect_bad("kmstore:profile=a;key-id=b\"c", "0x22");
	expect_bad("kmstore:profile=a;key-id=b\x01", "0x01");
	expect_bad("kmstore:profile=a;key-id=b\xc3\xa9", "0xc3");
	expect_bad("kmstore:profile=a?x=1", "query ('?')");
	expect_bad("kmstore:profile=a#frag", "fragment ('#')");
	expect_bad("kmstore:key-id=b", "key-id= needs profile=");
	expect_bad("kmstore:profile=a%20b", "profile name has byte 0x20");
	expect_bad("kmstore:profile=a%2Fb", "profile name has byte 0x2f");
	expect_bad("kmstore:profile=abcdefghijklmnopqrstuvwxyz0123456", "longer than 32");
	expect_bad("kmstore:profile=a;key-id=%20", "key ID has byte 0x20");
	expect_bad("kmstore:profile=a;key-id=%C3%A9", "key ID has byte 0xc3");
}

static void test_long(void **state)
{
	char uri[5001];
	int n;

	(void)state;
	/* A 65-byte key ID, 64 is fine. */
	n = snprintf(uri, sizeof(uri), "kmstore:profile=a;key-id=");
	memset(uri + n, 'k', 64);
	uri[n + 64] = '\0';
	expect(uri, "a", uri + n);
	strcpy(uri + n + 64, "k");
	expect_bad(uri, "65 bytes");
	/* 65 bytes once decoded: every one encoded. */
	n = snprintf(uri, sizeof(uri), "kmstore:profile=a;key-id=");
	for (int i = 0; i < 65; i++)
		n += snprintf(uri + n, sizeof(uri) - (size_t)n, "%%41");
	expect_bad(uri, "65 bytes");
	/* 5000 bytes. */
	n = snprintf(uri, sizeof(uri), "kmstore:profile=a;key-id=");
	memset(uri + n, 'k', sizeof(uri) - 1 - (size_t)n);
	uri[5000] = '\0';
	expect_bad(uri, "5000 bytes");
}

static void round_trip(const char *profile, const char *key_id)
{
	char buf[1024];
	size_t n = kms_uri_format(buf, sizeof(buf), profile, key_id);

	assert_int_equal(n, strlen(buf));
	expect(buf, profile, key_id);
}

static void test_round_trip(void **state)
{
	char every[0x7f - 0x21 + 1];

	(void)state;
	round_trip(NULL, NULL);
	round_trip("a", NULL);
	round_trip("west-east_1.x", "PPK_ID_1");
	round_trip("p", "a;b");
	round_trip("p", "100%");
	round_trip("p", "a=b&c");
	round_trip("p", "a/b/c");
	round_trip("p", "%3B");
	round_trip("p", "[x]?#\"'<>\\^`{|}");
	/* Every byte a key ID may hold, 94 bytes: two 47-byte IDs. */
	for (int c = 0x21; c < 0x7f; c++)
		every[c - 0x21] = (char)c;
	every[94] = '\0';
	round_trip("p", every + 47);
	every[47] = '\0';
	round_trip("p", every);
}

static void test_format(void **state)
{
	char buf[128];

	(void)state;
	assert_int_equal(kms_uri_format(buf, sizeof(buf), NULL, NULL), 8);
	assert_string_equal(buf, "kmstore:");
	kms_uri_format(buf, sizeof(buf), "a", "x/y;z=%");
	assert_string_equal(buf, "kmstore:profile=a;key-id=x%2Fy%3Bz%3D%25");
}

/* Like snprintf: the return value is the length needed, and whatever the
 * size the buffer holds a terminated prefix of the full URI. */
static void test_truncation(void **state)
{
	const char *profile = "west", *id = "a;b/c=d%e";
	char full[128], buf[128];
	size_t n = kms_uri_format(full, sizeof(full), profile, id);

	(void)state;
	assert_int_equal(n, strlen(full));
	assert_int_equal(kms_uri_format(NULL, 0, profile, id), n);
	for (size_t size = 1; size <= n + 1; size++) {
		memset(buf, 'X', sizeof(buf));
		assert_int_equal(kms_uri_format(buf, size, profile, id), n);
		assert_non_null(memchr(buf, '\0', size));
		assert_true(strlen(buf) < size);
		assert_memory_equal(buf, full, strlen(buf));
		assert_int_equal(buf[size], 'X'); /* nothing past size */
	}
	assert_string_equal(buf, full);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_percent_encoded),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_long),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_truncation),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
