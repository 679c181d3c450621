/* test_config.c - parsing kmstore.conf: every field of both profile types,
 * the comment and line-ending forms, and every error with its line; the
 * result codes' names and descriptions. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "profile.h"
#include "qkd.h"
#include "store.h"
#include "util.h"

#define HEX32 "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define B64_32 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define X8(s) s s s s s s s s
#define A64 X8("aaaaaaaa")
#define STATIC_HEAD "[a]\ntype = static\nkey-id = id-1\n"   /* lines 1-3 */
#define QKD_NO_URL "[q]\ntype = qkd\nlocal-sae-id = SAE_A\npeer-sae-id = SAE_B\n" \
	"certificate = a.crt\nprivate-key = a.key\nca = ca.crt\n" /* lines 1-7 */
#define QKD_HEAD QKD_NO_URL "url = https://kme.example:8443\n"   /* lines 1-8 */

static const char valid_conf[] =
	"# kmstore test configuration\n"
	"; the other comment style\n"
	"\n"
	"[west-east-static]   # trailing comment on a header\n"
	"type    = static\n"
	"key-id  = PPK_ID_1             # what is sent as the PPK_ID\n"
	"key     = hex:" HEX32 "   ; trailing comment\n"
	"\n"
	"  [ b64 ]\n"
	"\ttype = static\n"
	"\tkey-id = id#1;x\n"
	"\tkey = base64:" B64_32 "\n"
	"[from-file]\n"
	"type = static\n"
	"key-id = file-id\n"
	"key = file:keys/west.key\n"
	"[west-east-qkd]\n"
	"type         = qkd             # ETSI GS QKD 014\n"
	"url          = https://kme-a.example:8443\n"
	"local-sae-id = SAE_A\n"
	"peer-sae-id  = SAE_B\n"
	"certificate  = /etc/kmstore/sae-a.crt   # client certificate\n"
	"private-key  = sae-a.key\n"
	"ca           = /etc/kmstore/kme-ca.crt\n"
	"key-size     = 512             # bits\n"
	"timeout      = 2.5\n";

static char *to_crlf(const char *text)
{
	char *out = malloc(2 * strlen(text) + 1), *o = out;

	assert_non_null(out);
	for (; *text != '\0'; text++) {
		if (*text == '\n')
			*o++ = '\r';
		*o++ = *text;
	}
	*o = '\0';
	return out;
}

static void check_valid_store(kms_store *st)
{
	static const uint8_t want[32] = {
		0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17,
		18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
	};
	const char *names[] = { "west-east-static", "b64", "from-file", "west-east-qkd" };
	kms_profile *p;
	kms_error err;
	kms_key *key;

	assert_int_equal(kms_store_profile_count(st), 4);
	for (size_t i = 0; i < 4; i++)
		assert_string_equal(kms_profile_name(kms_store_profile_at(st, i)), names[i]);
	assert_null(kms_store_profile_at(st, 4));
	assert_string_equal(kms_store_path(st), TEST_CONF);

	p = kms_store_profile_at(st, 0);
	assert_string_equal(kms_profile_type(p), "static");
	assert_string_equal(kms_profile_setting(p, "type"), "static");
	assert_string_equal(kms_profile_setting(p, "key-id"), "PPK_ID_1");
	assert_null(kms_profile_setting(p, "key")); /* secrets are not settings */
	assert_int_equal(kms_profile_key_size(p), 32);
	assert_int_equal(kms_profile_get_key(p, &key, &err), KMS_OK);
	assert_memory_equal(kms_key_bytes(key), want, 32);
	assert_string_equal(kms_key_id(key), "PPK_ID_1");
	kms_key_free(key);

	p = kms_store_profile_at(st, 1);
	assert_string_equal(kms_profile_setting(p, "key-id"), "id#1;x");
	assert_int_equal(kms_profile_key_size(p), 32);
	assert_int_equal(kms_profile_get_key_by_id(p, "id#1;x", &key, &err), KMS_OK);
	assert_memory_equal(kms_key_bytes(key), want, 32);
	kms_key_free(key);

	p = kms_store_profile_at(st, 2);
	assert_int_equal(kms_profile_key_size(p), 0); /* the file is not there */
	assert_int_equal(kms_profile_get_key(p, &key, &err), KMS_ERR_CONFIG);
	assert_contains(err.message, TEST_CONF ":16: profile 'from-file': key:");
	assert_contains(err.message, "/cfg/keys/west.key");

	p = kms_store_profile_at(st, 3);
	assert_string_equal(kms_profile_type(p), "qkd");
	assert_string_equal(kms_profile_setting(p, "url"), "https://kme-a.example:8443");
	assert_string_equal(kms_profile_setting(p, "local-sae-id"), "SAE_A");
	assert_string_equal(kms_profile_setting(p, "peer-sae-id"), "SAE_B");
	assert_string_equal(kms_profile_setting(p, "certificate"), "/etc/kmstore/sae-a.crt");
	assert_string_equal(kms_profile_setting(p, "private-key"), "sae-a.key");
	assert_string_equal(kms_profile_setting(p, "ca"), "/etc/kmstore/kme-ca.crt");
	assert_string_equal(kms_profile_setting(p, "key-size"), "512");
	assert_string_equal(kms_profile_setting(p, "timeout"), "2.5");
	assert_null(kms_profile_setting(p, "no-such-setting"));
	assert_int_equal(kms_profile_key_size(p), 64);

	assert_int_equal(kms_store_find_profile(st, "b64", &p, &err), KMS_OK);
	assert_string_equal(kms_profile_name(p), "b64");
	assert_int_equal(kms_store_find_profile(st, "nope", &p, &err), KMS_ERR_NOT_FOUND);
	assert_null(p);
	assert_contains(err.message, "'nope'");
}

static void test_valid(void **state)
{
	kms_store *st;
	kms_error err;

	(void)state;
	assert_int_equal(test_parse(valid_conf, &st, &err), KMS_OK);
	check_valid_store(st);
	kms_store_free(st);
}

static void test_valid_crlf(void **state)
{
	char *text = to_crlf(valid_conf);
	kms_store *st;
	kms_error err;

	(void)state;
	assert_int_equal(test_parse(text, &st, &err), KMS_OK);
	check_valid_store(st);
	kms_store_free(st);
	free(text);
}

/* A UTF-8 byte-order mark at the start, as some editors write: skipped,
 * so the first line is read (and its columns counted) as shown. */
static void test_valid_bom(void **state)
{
	char *text = malloc(sizeof(valid_conf) + 3);
	kms_store *st;
	kms_error err;

	(void)state;
	assert_non_null(text);
	memcpy(text, "\xef\xbb\xbf", 3);
	memcpy(text + 3, valid_conf, sizeof(valid_conf));
	assert_int_equal(test_parse(text, &st, &err), KMS_OK);
	check_valid_store(st);
	kms_store_free(st);
	assert_int_equal(test_parse("\xef\xbb\xbf" "Key = x\n", &st, &err),
			 KMS_ERR_CONFIG);
	assert_contains(err.message, ":1: the text before '=' is not a setting name: column 1 ");
	free(text);
}

/* prefetch-low = 0 without a pool was always taken: a file that loaded
 * before still does. */
static void test_prefetch_low_zero_alone(void **state)
{
	kms_store *st;
	kms_error err;

	(void)state;
	assert_int_equal(test_parse(QKD_HEAD "prefetch = 0\nprefetch-low = 0\n",
				    &st, &err), KMS_OK);
	kms_store_free(st);
	assert_int_equal(test_parse(QKD_HEAD "prefetch-low = 0\n", &st, &err),
			 KMS_OK);
	kms_store_free(st);
}

/* The QKD settings as parsed: each default the man page gives
 * (kmstore.conf(5): key-size 256, timeout 5 s, no pool, prefetch-low half
 * of prefetch rounded up, prefetch-max-age 300 s, outage drain), and each
 * setting as written. Nothing else reads them before kmstored's pool. */
static const struct kms_qkd_config *qkd_of(const char *text, kms_store **st)
{
	kms_error err;

	if (test_parse(text, st, &err) != KMS_OK)
		fail_msg("%s", err.message);
	return kms_store_profile_at(*st, 0)->state;
}

static void test_qkd_settings(void **state)
{
	const struct kms_qkd_config *c;
	kms_store *st;

	(void)state;
	c = qkd_of(QKD_HEAD, &st);
	assert_int_equal(c->key_bits, 256);
	assert_int_equal(c->timeout_ms, 5000);
	assert_int_equal(c->prefetch, 0);
	assert_int_equal(c->prefetch_max_age_ms, 300 * 1000);
	assert_int_equal(c->outage, KMS_OUTAGE_DRAIN);
	assert_int_equal(c->n_urls, 1);
	assert_string_equal(c->urls[0], "https://kme.example:8443");
	kms_store_free(st);
	c = qkd_of(QKD_HEAD "prefetch = 5\n", &st);
	assert_int_equal(c->prefetch, 5);
	assert_int_equal(c->prefetch_low, 3); /* half, rounded up */
	kms_store_free(st);
	c = qkd_of(QKD_HEAD "prefetch = 4\n", &st);
	assert_int_equal(c->prefetch_low, 2);
	kms_store_free(st);
	c = qkd_of(QKD_HEAD "prefetch = 1\n", &st);
	assert_int_equal(c->prefetch_low, 1);
	kms_store_free(st);
	c = qkd_of(QKD_NO_URL "url = https://a.example https://b.example:8443\n"
		   "key-size = 512\ntimeout = 2.5\nprefetch = 8\nprefetch-low = 7\n"
		   "prefetch-max-age = 60\noutage = fail\n", &st);
	assert_int_equal(c->n_urls, 2);
	assert_string_equal(c->urls[0], "https://a.example");
	assert_string_equal(c->urls[1], "https://b.example:8443");
	assert_int_equal(c->key_bits, 512);
	assert_int_equal(c->timeout_ms, 2500);
	assert_int_equal(c->prefetch, 8);
	assert_int_equal(c->prefetch_low, 7);
	assert_int_equal(c->prefetch_max_age_ms, 60 * 1000);
	assert_int_equal(c->outage, KMS_OUTAGE_FAIL);
	kms_store_free(st);
	c = qkd_of(QKD_HEAD "outage = drain\n", &st);
	assert_int_equal(c->outage, KMS_OUTAGE_DRAIN);
	kms_store_free(st);
}

static void quiet(void *ctx, kms_log_level level, const char *message)
{
	(void)ctx;
	(void)level;
	(void)message;
}

static void keep_warning(void *ctx, kms_log_level level, const char *message)
{
	if (level == KMS_LOG_WARNING)
		snprintf(ctx, 512, "%s", message);
}

/* What strtol and strtod took before 0.1.0-3 (a sign, "0x10", "1e1") still
 * loads, as it was read, with a warning that says how; ".5" and "2." are
 * decimals. */
static void test_lenient_numbers(void **state)
{
	static const struct {
		const char *line, *warned; /* NULL: no warning */
	} cases[] = {
		{ "key-size = +256\n", "key-size: '+256' is read as 256; write plain decimal digits" },
		{ "prefetch = -0\n", "prefetch: '-0' is read as 0" },
		{ "timeout = 0x10\n", "timeout: '0x10' is read as 16 s" },
		{ "timeout = 1e1\n", "timeout: '1e1' is read as 10 s" },
		{ "timeout = 2.\n", NULL },
		{ "timeout = .5\n", NULL },
	};
	char text[1024], warning[512];
	kms_store *st;
	kms_error err;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), "%s%s", QKD_HEAD, cases[i].line);
		warning[0] = '\0';
		kms_set_logger(keep_warning, warning);
		assert_int_equal(test_parse(text, &st, &err), KMS_OK);
		kms_set_logger(NULL, NULL);
		kms_store_free(st);
		if (cases[i].warned == NULL) {
			assert_string_equal(warning, "");
		} else {
			assert_contains(warning, ":9: profile 'q': ");
			assert_contains(warning, cases[i].warned);
		}
	}
}

/* The limits themselves are accepted. */
static void test_limits(void **state)
{
	static const char text[] =
		"[k16]\ntype = static\nkey-id = " A64 "\n"
		"key = hex:000102030405060708090a0b0c0d0e0f\n"
		"[k256]\ntype = static\nkey-id = !~\n"
		"key = hex:" X8(HEX32) "\n"
		"[q128]\n" "type = qkd\nurl = https://[::1]:8443/api\n"
		"local-sae-id = A\npeer-sae-id = B\ncertificate = c\n"
		"private-key = k\nca = a\nkey-size = 128\ntimeout = 0.1\n"
		"[q2048]\ntype = qkd\nurl = https://kme\nlocal-sae-id = A\n"
		"peer-sae-id = B\ncertificate = c\nprivate-key = k\nca = a\n"
		"key-size = 2048\ntimeout = 300\n"
		"[" "abcdefghijklmnopqrstuvwxyz_.-012" "]\n"
		"type = static\nkey-id = x\nkey = base64:AAECAwQFBgcICQoLDA0ODw==\n";
	kms_store *st;
	kms_error err;

	(void)state;
	kms_set_logger(quiet, NULL);
	assert_int_equal(test_parse(text, &st, &err), KMS_OK);
	kms_set_logger(NULL, NULL);
	assert_int_equal(kms_store_profile_count(st), 5);
	assert_int_equal(kms_profile_key_size(kms_store_profile_at(st, 0)), 16);
	assert_int_equal(kms_profile_key_size(kms_store_profile_at(st, 1)), 256);
	assert_int_equal(kms_profile_key_size(kms_store_profile_at(st, 2)), 16);
	assert_int_equal(kms_profile_key_size(kms_store_profile_at(st, 3)), 256);
	assert_int_equal(kms_profile_key_size(kms_store_profile_at(st, 4)), 16);
	kms_store_free(st);
}

static void test_empty_and_comments_only(void **state)
{
	kms_store *st;
	kms_error err;

	(void)state;
	assert_int_equal(test_parse("", &st, &err), KMS_OK);
	assert_int_equal(kms_store_profile_count(st), 0);
	kms_store_free(st);
	assert_int_equal(test_parse("# a\n  ; b\r\n\n\t\n", &st, &err), KMS_OK);
	assert_int_equal(kms_store_profile_count(st), 0);
	kms_store_free(st);
}

static void test_line_length(void **state)
{
	char *text = malloc(4200);
	kms_store *st;
	kms_error err;

	(void)state;
	assert_non_null(text);
	/* A comment line of exactly 4096 bytes is fine... */
	strcpy(text, "# first\n#");
	memset(text + 9, 'x', 4095);
	strcpy(text + 9 + 4095, "\n");
	assert_int_equal(test_parse(text, &st, &err), KMS_OK);
	kms_store_free(st);
	/* ...and so with a CRLF line end: the limit is on the line's
	 * content, not its end (the CR made it 4097, refused)... */
	strcpy(text + 9 + 4095, "\r\n");
	assert_int_equal(test_parse(text, &st, &err), KMS_OK);
	kms_store_free(st);
	/* ...one more byte is not, whatever the line end. */
	strcpy(text + 9 + 4095, "x\n");
	assert_int_equal(test_parse(text, &st, &err), KMS_ERR_CONFIG);
	assert_contains(err.message, TEST_CONF ":2: line is longer than 4096 bytes");
	assert_null(st);
	strcpy(text + 9 + 4095, "x\r\n");
	assert_int_equal(test_parse(text, &st, &err), KMS_ERR_CONFIG);
	assert_contains(err.message, TEST_CONF ":2: line is longer than 4096 bytes");
	assert_null(st);
	free(text);
}

static void test_nul_byte(void **state)
{
	static const char text[] = "[a]\ntype = static\nkey-id = a\0b\nkey = hex:00\n";
	kms_store *st = NULL;
	kms_error err;

	(void)state;
	assert_int_equal(kms_store_parse(text, sizeof(text) - 1, TEST_CONF, &st, &err),
			 KMS_ERR_CONFIG);
	assert_contains(err.message, TEST_CONF ":3: ");
	assert_contains(err.message, "NUL byte");
	assert_null(st);
}

struct bad {
	const char *text;
	unsigned line;
	const char *want[2];
	const char *secret; /* must not be in the message */
};

static struct bad outside_section = {
	"# no section yet\ntype = static\n", 2, { "'type'", "outside a [profile] section" }, NULL };
static struct bad header_unclosed = {
	"[a\ntype = static\n", 1, { "section header", "[name]" }, NULL };
static struct bad header_trailing = {
	"[a] x\n", 1, { "section header", "alone on its line" }, NULL };
static struct bad name_space = {
	"[a b]\n", 1, { "section [a b]", "byte 0x20" }, NULL };
static struct bad name_empty = {
	"\n[ ]\n", 2, { "profile name is empty", NULL }, NULL };
static struct bad name_long = {
	"[abcdefghijklmnopqrstuvwxyz0123456]\n", 1, { "longer than 32", NULL }, NULL };
static struct bad profile_twice = {
	STATIC_HEAD "key = hex:" HEX32 "\n\n[a]\n", 6,
	{ "profile 'a'", "defined twice (first at line 1)" }, NULL };
static struct bad setting_twice = {
	STATIC_HEAD "key-id = id-2\n", 4,
	{ "profile 'a'", "'key-id' is set twice (first at line 3)" }, NULL };
static struct bad no_equals = {
	"[a]\ntype static\n", 2, { "expected \"name = value\"", NULL }, NULL };
static struct bad bad_setting_name = {
	"[a]\nKey-ID = x\n", 2, { "not a setting name", "column 1" }, NULL };
/* The '=' found is base64 padding: what comes before it is most of the
 * key, and must not be quoted. */
static struct bad key_missing_equals = {
	STATIC_HEAD "key base64:" B64_32 "\n", 4,
	{ "not a setting name", "column 4" }, "AAECAwQFBgcI" };
static struct bad no_type = {
	"[a]\nkey-id = x\nkey = hex:" HEX32 "\n", 1, { "profile 'a'", "no 'type'" }, NULL };
static struct bad unknown_type = {
	"[a]\n# c\ntype = dynamic\n", 3,
	{ "profile 'a': type:", "unknown type 'dynamic'" }, NULL };
static struct bad unknown_setting = {
	STATIC_HEAD "key = hex:" HEX32 "\ncolour = blue\n", 5,
	{ "profile 'a': colour:", "not a setting of a static profile" }, NULL };
static struct bad qkd_setting_in_static = {
	STATIC_HEAD "key = hex:" HEX32 "\nurl = https://kme\n", 5,
	{ "profile 'a': url:", "not a setting of a static profile" }, NULL };
static struct bad static_setting_in_qkd = {
	QKD_HEAD "key = hex:" HEX32 "\n", 9,
	{ "profile 'q': key:", "not a setting of a qkd profile" }, HEX32 };
static struct bad missing_key = {
	STATIC_HEAD, 1, { "profile 'a'", "'key' is required for a static profile" }, NULL };
static struct bad missing_key_id = {
	"[a]\ntype = static\nkey = hex:" HEX32 "\n", 1,
	{ "profile 'a'", "'key-id' is required" }, HEX32 };
static struct bad missing_ca = {
	"[q]\ntype = qkd\nurl = https://kme\nlocal-sae-id = A\npeer-sae-id = B\n"
	"certificate = c\nprivate-key = k\n", 1,
	{ "profile 'q'", "'ca' is required for a qkd profile" }, NULL };
static struct bad empty_value = {
	"[a]\ntype = static\nkey-id =\n", 3, { "'key-id' has no value", NULL }, NULL };
static struct bad empty_value_comment = {
	"[a]\ntype = static\nkey-id =   # none\n", 3, { "'key-id' has no value", NULL }, NULL };
static struct bad key_id_space = {
	"[a]\ntype = static\nkey-id = PPK 1\nkey = hex:" HEX32 "\n", 3,
	{ "profile 'a': key-id:", "byte 0x20 at offset 3" }, HEX32 };
static struct bad key_id_control = {
	"[a]\ntype = static\nkey-id = PPK\x01" "1\nkey = hex:" HEX32 "\n", 3,
	{ "profile 'a': key-id:", "byte 0x01" }, NULL };
static struct bad key_id_long = {
	"[a]\ntype = static\nkey-id = " A64 "a\nkey = hex:" HEX32 "\n", 3,
	{ "profile 'a': key-id:", "65 bytes" }, NULL };
static struct bad hex_odd = {
	STATIC_HEAD "key = hex:" HEX32 "0\n", 4,
	{ "profile 'a': key:", "length (65)" }, HEX32 };
static struct bad hex_bad_char = {
	STATIC_HEAD "key = hex:000102030g0405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e\n", 4,
	{ "profile 'a': key:", "character 10 after 'hex:' is 'g', not a hex digit" }, "000102030g04" };
/* A key copied with its separators: named, not taken for a bad length. */
static struct bad hex_colons = {
	STATIC_HEAD "key = hex:00:01:02:03:04:05:06:07:08:09:0a:0b:0c:0d:0e:0f:"
	"10:11:12:13:14:15:16:17:18:19:1a:1b:1c:1d:1e:1f\n", 4,
	{ "profile 'a': key:", "character 3 after 'hex:' is ':', not a hex digit" },
	"00:01:02" };
static struct bad hex_control = {
	STATIC_HEAD "key = hex:" HEX32 "\x01\n", 4,
	{ "profile 'a': key:", "character 65 after 'hex:' is byte 0x01, not a hex digit" },
	HEX32 };
static struct bad b64_bad_char = {
	STATIC_HEAD "key = base64:AAECAwQFBgcICQoLDA0O*xAREhMUFRYXGBkaGxwdHh8=\n", 4,
	{ "profile 'a': key:", "invalid base64 at character 21" }, "AAECAwQFBgcICQoLDA0O" };
static struct bad b64_bad_length = {
	STATIC_HEAD "key = base64:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\n", 4,
	{ "profile 'a': key:", "length (43)" }, "AAECAwQFBgcICQoLDA0O" };
static struct bad b64_bad_padding = {
	STATIC_HEAD "key = base64:AAECAwQFBgcICQoLDA0ODw=A\n", 4,
	{ "profile 'a': key:", "invalid base64 at character 23" }, "AAECAwQFBgcICQoLDA0O" };
static struct bad b64_trailing_bits = {
	STATIC_HEAD "key = base64:AAECAwQFBgcICQoLDA0ODx==\n", 4,
	{ "profile 'a': key:", "invalid base64 at character 22" }, "AAECAwQFBgcICQoLDA0O" };
static struct bad key_short = {
	STATIC_HEAD "key = hex:000102030405060708090a0b0c0d0e\n", 4,
	{ "profile 'a': key:", "the key is 15 bytes; it must be 16 to 256" },
	"000102030405060708090a0b0c0d0e" };
static struct bad key_long = {
	STATIC_HEAD "key = hex:" X8(HEX32) "ff\n", 4,
	{ "profile 'a': key:", "the key is 257 bytes" }, HEX32 };
static struct bad key_short_b64 = {
	STATIC_HEAD "key = base64:AAECAwQFBgcICQoLDA0O\n", 4,
	{ "profile 'a': key:", "the key is 15 bytes" }, "AAECAwQFBgcICQoLDA0O" };
static struct bad key_no_prefix = {
	STATIC_HEAD "key = " HEX32 "\n", 4,
	{ "profile 'a': key:", "must start with hex:, base64: or file:" }, HEX32 };
static struct bad key_empty_file = {
	STATIC_HEAD "key = file:\n", 4, { "profile 'a': key:", "file:PATH" }, NULL };
static struct bad url_http = {
	QKD_NO_URL "url = http://kme.example:8443\n", 8,
	{ "profile 'q': url:", "must be an https:// URL" }, NULL };
static struct bad url_query = {
	QKD_NO_URL "url = https://kme.example/api?x=1\n", 8,
	{ "profile 'q': url:", "query or fragment" }, NULL };
static struct bad url_fragment = {
	QKD_NO_URL "url = https://kme.example/api#x\n", 8,
	{ "profile 'q': url:", "query or fragment" }, NULL };
static struct bad url_credentials = {
	QKD_NO_URL "url = https://sae:s3cr3t@kme.example/\n", 8,
	{ "profile 'q': url:", "user name or password" }, NULL };
static struct bad url_not_url = {
	QKD_NO_URL "url = kme.example\n", 8, { "profile 'q': url:", NULL }, NULL };
static struct bad same_sae = {
	"[q]\ntype = qkd\nurl = https://kme\nlocal-sae-id = SAE_A\npeer-sae-id = SAE_A\n"
	"certificate = c\nprivate-key = k\nca = a\n", 5,
	{ "profile 'q': peer-sae-id:", "same as local-sae-id" }, NULL };
static struct bad sae_space = {
	"[q]\ntype = qkd\nurl = https://kme\nlocal-sae-id = SAE A\npeer-sae-id = SAE_B\n"
	"certificate = c\nprivate-key = k\nca = a\n", 4,
	{ "profile 'q': local-sae-id:", "byte 0x20" }, NULL };
static struct bad key_size_not_bytes = {
	QKD_HEAD "key-size = 260\n", 9, { "profile 'q': key-size:", "not a whole number of bytes" }, NULL };
static struct bad key_size_small = {
	QKD_HEAD "key-size = 120\n", 9, { "profile 'q': key-size:", "from 128 to 2048" }, NULL };
static struct bad key_size_large = {
	QKD_HEAD "key-size = 2056\n", 9, { "profile 'q': key-size:", "from 128 to 2048" }, NULL };
static struct bad key_size_text = {
	QKD_HEAD "key-size = 256bits\n", 9, { "profile 'q': key-size:", "'256bits'" }, NULL };
/* Not a number to strtol at all (it stops at the 'x'). */
static struct bad key_size_hex = {
	QKD_HEAD "key-size = 0x100\n", 9,
	{ "profile 'q': key-size:", "'0x100' is not a whole number in decimal digits" }, NULL };
/* A prefetch-low without a pool to refill. */
static struct bad prefetch_low_alone = {
	QKD_HEAD "prefetch-low = 3\n", 9,
	{ "profile 'q': prefetch-low:", "needs prefetch" }, NULL };
/* A mark further on is not skipped. */
static struct bad bom_later = {
	"# c\n\xef\xbb\xbf[a]\n", 2, { "expected \"name = value\"", NULL }, NULL };
static struct bad timeout_zero = {
	QKD_HEAD "timeout = 0\n", 9, { "profile 'q': timeout:", "0.1 to 300" }, NULL };
static struct bad timeout_large = {
	QKD_HEAD "timeout = 301\n", 9, { "profile 'q': timeout:", "0.1 to 300" }, NULL };
static struct bad timeout_text = {
	QKD_HEAD "timeout = 3s\n", 9, { "profile 'q': timeout:", "'3s'" }, NULL };

static void check_bad(const struct bad *b, const char *text)
{
	char where[64];
	kms_store *st;
	kms_error err;

	snprintf(where, sizeof(where), "%s:%u: ", TEST_CONF, b->line);
	kms_set_logger(quiet, NULL);
	assert_int_equal(test_parse(text, &st, &err), KMS_ERR_CONFIG);
	kms_set_logger(NULL, NULL);
	assert_null(st);
	assert_int_equal(err.code, KMS_ERR_CONFIG);
	assert_contains(err.message, where);
	for (int i = 0; i < 2; i++)
		if (b->want[i] != NULL)
			assert_contains(err.message, b->want[i]);
	if (b->secret != NULL)
		assert_lacks(err.message, b->secret);
	assert_lacks(err.message, "\n");
}

/* Each case as written and with CRLF line ends: same line, same error. */
static void test_bad(void **state)
{
	const struct bad *b = *state;
	char *crlf = to_crlf(b->text);

	check_bad(b, b->text);
	check_bad(b, crlf);
	free(crlf);
}

/* A password in the url must not reach the message either. */
static void test_url_password_not_echoed(void **state)
{
	kms_store *st;
	kms_error err;

	(void)state;
	assert_int_equal(test_parse(QKD_NO_URL "url = https://sae:s3cr3t@kme/\n",
				    &st, &err), KMS_ERR_CONFIG);
	assert_null(strstr(err.message, "s3cr3t"));
	assert_non_null(strstr(err.message, "user name or password"));
}

/* Every kms_rc has its own description; other values get the fallback.
 * The OpenSSL provider and engine build their reason tables over
 * KMS_ERR_USAGE..KMS_ERR_SYSTEM: the scan of 0..255 fails if a new code
 * falls outside that range or leaves a gap, until they are updated. */
static void test_rc_describe(void **state)
{
	static const kms_rc all[] = {
		KMS_OK, KMS_ERR_USAGE, KMS_ERR_CONFIG, KMS_ERR_PERMISSION,
		KMS_ERR_NOT_FOUND, KMS_ERR_URI, KMS_ERR_KME,
		KMS_ERR_UNREACHABLE, KMS_ERR_UNSUPPORTED, KMS_ERR_SYSTEM,
	};
	const size_t n = sizeof(all) / sizeof(all[0]);
	const char *fallback = kms_rc_describe((kms_rc)-1);

	(void)state;
	assert_non_null(fallback);
	assert_string_not_equal(fallback, "");
	for (size_t i = 0; i < n; i++) {
		const char *d = kms_rc_describe(all[i]);

		assert_non_null(d);
		assert_string_not_equal(d, "");
		assert_string_not_equal(d, fallback);
		assert_string_not_equal(kms_rc_name(all[i]), "unknown");
		for (size_t j = 0; j < i; j++)
			assert_string_not_equal(d, kms_rc_describe(all[j]));
	}
	/* What OpenSSL's error output shows, and tests grep for. */
	assert_string_equal(kms_rc_describe(KMS_ERR_KME), "KME error");
	assert_string_equal(kms_rc_describe(KMS_ERR_UNREACHABLE),
			    "KME unreachable");
	for (int v = 0; v < 256; v++) {
		int known = v == KMS_OK ||
			    (v >= KMS_ERR_USAGE && v <= KMS_ERR_SYSTEM);

		if (known)
			assert_string_not_equal(kms_rc_describe((kms_rc)v),
						fallback);
		else
			assert_string_equal(kms_rc_describe((kms_rc)v),
					    fallback);
	}
	assert_int_equal(KMS_ERR_SYSTEM - KMS_ERR_USAGE + 2, (int)n);
}

#define BAD(name) { #name, test_bad, NULL, NULL, &name }

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_valid_crlf),
		cmocka_unit_test(test_valid_bom),
		cmocka_unit_test(test_prefetch_low_zero_alone),
		cmocka_unit_test(test_qkd_settings),
		cmocka_unit_test(test_lenient_numbers),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_empty_and_comments_only),
		cmocka_unit_test(test_line_length),
		cmocka_unit_test(test_nul_byte),
		cmocka_unit_test(test_url_password_not_echoed),
		cmocka_unit_test(test_rc_describe),
		BAD(outside_section), BAD(header_unclosed), BAD(header_trailing),
		BAD(name_space), BAD(name_empty), BAD(name_long),
		BAD(profile_twice), BAD(setting_twice), BAD(no_equals),
		BAD(bad_setting_name), BAD(key_missing_equals), BAD(no_type), BAD(unknown_type),
		BAD(unknown_setting), BAD(qkd_setting_in_static),
		BAD(static_setting_in_qkd), BAD(missing_key), BAD(missing_key_id),
		BAD(missing_ca), BAD(empty_value), BAD(empty_value_comment),
		BAD(key_id_space), BAD(key_id_control), BAD(key_id_long),
		BAD(hex_odd), BAD(hex_bad_char), BAD(b64_bad_char),
		BAD(b64_bad_length), BAD(b64_bad_padding), BAD(b64_trailing_bits),
		BAD(key_short), BAD(key_long), BAD(key_short_b64),
		BAD(key_no_prefix), BAD(key_empty_file), BAD(url_http),
		BAD(url_query), BAD(url_fragment), BAD(url_credentials),
		BAD(url_not_url), BAD(same_sae), BAD(sae_space),
		BAD(key_size_not_bytes), BAD(key_size_small), BAD(key_size_large),
		BAD(key_size_text), BAD(timeout_zero), BAD(timeout_large),
		BAD(timeout_text), BAD(key_size_hex),
		BAD(bom_later), BAD(hex_colons),
		BAD(hex_control), BAD(prefetch_low_alone),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
