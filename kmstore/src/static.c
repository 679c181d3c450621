/* static.c - static profiles: one key ID and one key, configured inline
 * (hex:, base64:) or in a file of raw bytes (file:). */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "encoding.h"
#include "fileio.h"
#include "profile.h"
#include "secmem.h"

struct static_state {
	const char *key_id;
	uint8_t *inline_key; /* secmem, KMS_KEY_MAX bytes, or NULL */
	size_t inline_len;
	char *key_file;      /* absolute path, or NULL */
	unsigned key_line;
};

static const struct kms_field static_fields[] = {
	{ "key-id", KMS_FIELD_REQUIRED },
	{ "key", KMS_FIELD_REQUIRED | KMS_FIELD_SECRET },
	{ NULL, 0 },
};

static kms_rc check_size(const kms_profile *p, const struct kms_setting *s,
			 size_t len, kms_error *err)
{
	if (len < KMS_KEY_MIN || len > KMS_KEY_MAX)
		return kms_setting_fail(p, s, err, KMS_ERR_CONFIG,
					"the key is %zu bytes; it must be %d to %d "
					"bytes (%d recommended)", len, KMS_KEY_MIN,
					KMS_KEY_MAX, KMS_KEY_WEAK);
	return KMS_OK;
}

/* The first character of a hex: value that is not a hex digit, before
 * its length is looked at: "00:11:..." is most often a key copied with
 * its separators. Not key material, so it is named. */
static kms_rc check_hex_digits(const kms_profile *p, const struct kms_setting *s,
			       const char *text, kms_error *err)
{
	for (size_t i = 0; text[i] != '\0'; i++) {
		unsigned char c = (unsigned char)text[i];

		if (kms_hex_digit(text[i]) >= 0)
			continue;
		if (c > 0x20 && c < 0x7f)
			return kms_setting_fail(p, s, err, KMS_ERR_CONFIG,
						"character %zu after 'hex:' is '%c', "
						"not a hex digit", i + 1, c);
		return kms_setting_fail(p, s, err, KMS_ERR_CONFIG,
					"character %zu after 'hex:' is byte 0x%02x, "
					"not a hex digit", i + 1, c);
	}
	return KMS_OK;
}

static kms_rc decode_inline(kms_profile *p, const struct kms_setting *s,
			    struct static_state *st, kms_error *err)
{
	int is_hex = strncmp(s->value, "hex:", 4) == 0;
	const char *text = s->value + (is_hex ? 4 : 7);
	size_t len = strlen(text), where = 0, n;
	int bad;

	if (is_hex && check_hex_digits(p, s, text, err) != KMS_OK)
		return KMS_ERR_CONFIG;
	n = is_hex ? kms_hex_decoded_len(len) : kms_base64_decoded_len(text, len);
	if (n == SIZE_MAX)
		return kms_setting_fail(p, s, err, KMS_ERR_CONFIG,
					"%s value has a length (%zu) that is not "
					"a whole number of %s", is_hex ? "hex" : "base64",
					len, is_hex ? "bytes" : "4-character groups");
	if (check_size(p, s, n, err) != KMS_OK)
		return KMS_ERR_CONFIG;
	st->inline_key = kms_secmem_alloc(KMS_KEY_MAX);
	if (st->inline_key == NULL)
		return kms_fail(err, KMS_ERR_SYSTEM, "out of memory for a key");
	bad = is_hex ? kms_hex_decode(text, len, st->inline_key, &where)
		     : kms_base64_decode(text, len, st->inline_key, &where);
	if (bad)
		return kms_setting_fail(p, s, err, KMS_ERR_CONFIG,
					"invalid %s at character %zu of the value",
					is_hex ? "hex" : "base64", where + 1);
	st->inline_len = n;
	return KMS_OK;
}

static kms_rc static_configure(kms_profile *p, kms_error *err)
{
	const struct kms_setting *id = kms_profile_find(p, "key-id");
	const struct kms_setting *key = kms_profile_find(p, "key");
	struct static_state *st;
	kms_error why;
	struct stat sb;

	if (kms_check_key_id(id->value, strlen(id->value), &why) != KMS_OK)
		return kms_setting_fail(p, id, err, KMS_ERR_CONFIG, "%s",
					why.message);
	st = calloc(1, sizeof(*st));
	if (st == NULL)
		return kms_fail(err, KMS_ERR_SYSTEM, "out of memory");
	p->state = st;
	st->key_id = id->value;
	st->key_line = key->line;
	if (strncmp(key->value, "hex:", 4) == 0 ||
	    strncmp(key->value, "base64:", 7) == 0) {
		kms_rc rc = decode_inline(p, key, st, err);

		if (rc == KMS_OK && st->inline_len < KMS_KEY_WEAK)
			kms_log(KMS_LOG_WARNING,
				"%s:%u: profile '%s': the key is only %zu bits; "
				"RFC 8784 asks for at least 256", p->file, key->line,
				p->name, st->inline_len * 8);
		p->key_size = st->inline_len;
		return rc;
	}
	if (strncmp(key->value, "file:", 5) != 0 || key->value[5] == '\0')
		return kms_setting_fail(p, key, err, KMS_ERR_CONFIG,
					"must start with hex:, base64: or file:PATH");
	st->key_file = kms_profile_path(p, key->value + 5);
	if (st->key_file == NULL)
		return kms_fail(err, KMS_ERR_SYSTEM, "out of memory");
	/* The size for listings; the file itself is read at each use. */
	if (stat(st->key_file, &sb) == 0 && sb.st_size >= KMS_KEY_MIN &&
	    sb.st_size <= KMS_KEY_MAX)
		p->key_size = (size_t)sb.st_size;
	return KMS_OK;
}

/* A setting-like handle for messages about the (removed) key setting. */
static struct kms_setting key_setting(const struct static_state *st)
{
	struct kms_setting s = { .name = "key", .line = st->key_line };

	return s;
}

static kms_rc load_key(kms_profile *p, kms_key **out, kms_error *err)
{
	struct static_state *st = p->state;
	struct kms_setting ks = key_setting(st);
	kms_error why;
	uint8_t *buf;
	size_t len;
	kms_rc rc;

	if (st->inline_key != NULL)
		return kms_key_new(p->name, st->key_id, st->inline_key,
				   st->inline_len, out, err);
	rc = kms_read_private(st->key_file, "key file", KMS_KEY_MAX, 1, &buf,
			      &len, &why);
	if (rc != KMS_OK)
		return kms_setting_fail(p, &ks, err, rc, "%s", why.message);
	rc = check_size(p, &ks, len, err);
	if (rc == KMS_OK)
		rc = kms_key_new(p->name, st->key_id, buf, len, out, err);
	kms_secmem_free(buf, KMS_KEY_MAX + 1);
	return rc;
}

/* Whether a key file holds hex text (openssl rand -hex, xxd -p) rather
 * than raw bytes: nothing but hex digits and line ends. 16 random bytes
 * or more look so with odds under 1e-16. Every byte is looked at, so the
 * time says nothing of where a key stops looking like text. */
static int looks_like_hex_text(const uint8_t *b, size_t len)
{
	size_t other = 0;

	for (size_t i = 0; i < len; i++)
		other += kms_hex_digit((char)b[i]) < 0 && b[i] != '\n' &&
			 b[i] != '\r';
	return len > 0 && other == 0;
}

static kms_rc static_check(kms_profile *p, kms_error *err)
{
	struct static_state *st = p->state;
	kms_key *key;
	kms_rc rc = load_key(p, &key, err);

	if (rc != KMS_OK)
		return rc;
	/* Inline keys were warned about when the file was parsed. */
	if (st->key_file != NULL && kms_key_size(key) < KMS_KEY_WEAK)
		kms_log(KMS_LOG_WARNING,
			"profile '%s': key file %s holds only %zu bits; RFC 8784 "
			"asks for at least 256", p->name, st->key_file,
			kms_key_size(key) * 8);
	/* Not refused: both peers may be using it so already. Named, never
	 * shown. */
	if (st->key_file != NULL &&
	    looks_like_hex_text(kms_key_bytes(key), kms_key_size(key)))
		kms_log(KMS_LOG_WARNING,
			"profile '%s': key file %s looks like hex text (only hex "
			"digits and line ends): its %zu bytes are the key as they "
			"are, not decoded from hex (a key file is raw bytes); for a "
			"key in hex, write key = hex:... in the profile, or convert "
			"the file with xxd -r -p, on both peers at once "
			"(kmstore.conf(5))", p->name, st->key_file,
			kms_key_size(key));
	kms_key_free(key);
	return KMS_OK;
}

static kms_rc static_get_key(kms_profile *p, kms_key **out, kms_error *err)
{
	return load_key(p, out, err);
}

static kms_rc static_get_key_by_id(kms_profile *p, const char *id,
				   kms_key **out, kms_error *err)
{
	struct static_state *st = p->state;

	if (strcmp(id, st->key_id) != 0)
		return kms_fail(err, KMS_ERR_NOT_FOUND,
				"profile '%s' has no key with ID '%s' (its key ID "
				"is '%s')", p->name, id, st->key_id);
	return load_key(p, out, err);
}

static kms_rc static_status(kms_profile *p, kms_status *out, kms_error *err)
{
	kms_key *key;
	kms_rc rc = load_key(p, &key, err);

	if (rc != KMS_OK)
		return rc;
	strcpy(out->state, "ready");
	out->key_size_bits = (long)kms_key_size(key) * 8;
	out->stored_key_count = 1;
	kms_key_free(key);
	return KMS_OK;
}

static void static_release(kms_profile *p)
{
	struct static_state *st = p->state;

	kms_secmem_free(st->inline_key, KMS_KEY_MAX);
	free(st->key_file);
	free(st);
	p->state = NULL;
}

const struct kms_profile_type kms_static_type = {
	.name = "static",
	.fields = static_fields,
	.configure = static_configure,
	.check = static_check,
	.get_key = static_get_key,
	.get_key_by_id = static_get_key_by_id,
	.status = static_status,
	.release = static_release,
	.local = 1,
};
