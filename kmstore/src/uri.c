/* uri.c - kmstore: URIs, in the attribute syntax of RFC 7512 (pkcs11:)
 * with RFC 3986 percent-encoding, so "kmstore:profile=P;key-id=K" reads
 * like the "pkcs11:token=P;id=K" that names the same key through NSS. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "encoding.h"
#include "error.h"
#include "uri.h"

#define SCHEME "kmstore:"
#define URI_MAX 4096

/* RFC 7512 p11-pchar without the separators: unreserved and p11-res-avail. */
static int plain_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || strchr("-._~:[]@!$'()*+,=&", c) != NULL;
}

int kms_uri_is_kmstore(const char *s)
{
	return s != NULL && strncasecmp(s, SCHEME, sizeof(SCHEME) - 1) == 0;
}

/* Decodes the value in [s, s+len) into a new string; off is the value's
 * offset in the URI, for messages. */
static kms_rc decode_value(const char *s, size_t len, size_t off,
			   char **out, kms_error *err)
{
	char *v = malloc(len + 1);
	size_t o = 0;

	if (v == NULL)
		return kms_fail(err, KMS_ERR_SYSTEM, "out of memory");
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '%') {
			int hi = i + 2 < len ? kms_hex_digit(s[i + 1]) : -1;
			int lo = hi >= 0 ? kms_hex_digit(s[i + 2]) : -1;

			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
				free(v);
				return kms_fail(err, KMS_ERR_URI,
						"bad percent-encoding at offset %zu "
						"(want %%XX with two hex digits, not %%00)",
						off + i);
			}
			v[o++] = (char)(hi << 4 | lo);
			i += 2;
		} else if (plain_char(s[i])) {
			v[o++] = s[i];
		} else {
			free(v);
			return kms_fail(err, KMS_ERR_URI,
					"byte 0x%02x at offset %zu must be "
					"percent-encoded (%%%02X)",
					(unsigned char)s[i], off + i,
					(unsigned char)s[i]);
		}
	}
	v[o] = '\0';
	*out = v;
	return KMS_OK;
}

static kms_rc set_attribute(kms_uri *uri, const char *name, size_t name_len,
			    const char *value, size_t value_len, size_t off,
			    kms_error *err)
{
	char **slot;
	kms_rc rc;

	if (name_len == 7 && memcmp(name, "profile", 7) == 0)
		slot = &uri->profile;
	else if (name_len == 6 && memcmp(name, "key-id", 6) == 0)
		slot = &uri->key_id;
	else
		return kms_fail(err, KMS_ERR_URI,
				"unknown attribute '%.*s' at offset %zu "
				"(kmstore: URIs take profile= and key-id=)",
				(int)(name_len > 32 ? 32 : name_len), name, off);
	if (*slot != NULL)
		return kms_fail(err, KMS_ERR_URI,
				"attribute '%.*s' given twice", (int)name_len, name);
	if (value_len == 0)
		return kms_fail(err, KMS_ERR_URI,
				"attribute '%.*s' has an empty value",
				(int)name_len, name);
	rc = decode_value(value, value_len, off + name_len + 1, slot, err);
	if (rc != KMS_OK)
		return rc;
	if (slot == &uri->profile)
		rc = kms_check_profile_name(*slot, err);
	else
		rc = kms_check_key_id(*slot, strlen(*slot), err);
	if (rc != KMS_OK) {
		kms_error_prefix(err, "in the URI's %.*s", (int)name_len, name);
		if (err != NULL)
			err->code = KMS_ERR_URI;
		return KMS_ERR_URI;
	}
	return KMS_OK;
}

static kms_rc parse_path(const char *s, size_t off, kms_uri *out,
			 kms_error *err)
{
	while (*s != '\0') {
		size_t len = strcspn(s, ";");
		const char *eq = memchr(s, '=', len);
		kms_rc rc;

		if (eq == NULL)
			return kms_fail(err, KMS_ERR_URI,
					"attribute at offset %zu has no '=' "
					"(want name=value)", off);
		rc = set_attribute(out, s, (size_t)(eq - s), eq + 1,
				   len - (size_t)(eq - s) - 1, off, err);
		if (rc != KMS_OK)
			return rc;
		if (s[len] == ';' && s[len + 1] == '\0')
			return kms_fail(err, KMS_ERR_URI,
					"URI ends with ';' (an empty attribute)");
		off += len + (s[len] == ';');
		s += len + (s[len] == ';');
	}
	return KMS_OK;
}

kms_rc kms_uri_parse(const char *s, kms_uri *out, kms_error *err)
{
	size_t len;
	kms_rc rc;

	out->profile = out->key_id = NULL;
	if (s == NULL || !kms_uri_is_kmstore(s))
		return kms_fail(err, KMS_ERR_URI,
				"not a kmstore: URI (it must start with \"kmstore:\")");
	len = strlen(s);
	if (len > URI_MAX)
		return kms_fail(err, KMS_ERR_URI,
				"URI is %zu bytes; at most %d are allowed",
				len, URI_MAX);
	if (strpbrk(s, "?#") != NULL)
		return kms_fail(err, KMS_ERR_URI,
				"query ('?') and fragment ('#') parts are not "
				"supported in kmstore: URIs");
	rc = parse_path(s + sizeof(SCHEME) - 1, sizeof(SCHEME) - 1, out, err);
	if (rc == KMS_OK && out->key_id != NULL && out->profile == NULL)
		rc = kms_fail(err, KMS_ERR_URI,
			      "key-id= needs profile= (a key ID is only "
			      "meaningful within a profile)");
	if (rc != KMS_OK)
		kms_uri_clear(out);
	return rc;
}

void kms_uri_clear(kms_uri *uri)
{
	free(uri->profile);
	free(uri->key_id);
	uri->profile = uri->key_id = NULL;
}

static size_t put_encoded(char *buf, size_t size, size_t o, const char *v)
{
	static const char digits[] = "0123456789ABCDEF";

	for (; *v != '\0'; v++) {
		/* '=' and '&' are legal in values but confuse readers; '['
		 * and ']' are not allowed in a URL path segment. */
		if (plain_char(*v) && strchr("=&[]", *v) == NULL) {
			if (o + 1 < size)
				buf[o] = *v;
			o++;
		} else {
			if (o + 3 < size) {
				buf[o] = '%';
				buf[o + 1] = digits[(unsigned char)*v >> 4];
				buf[o + 2] = digits[*v & 15];
			}
			o += 3;
		}
	}
	return o;
}

static size_t put_plain(char *buf, size_t size, size_t o, const char *v)
{
	for (; *v != '\0'; v++, o++)
		if (o + 1 < size)
			buf[o] = *v;
	return o;
}

size_t kms_uri_format(char *buf, size_t size, const char *profile,
		      const char *key_id)
{
	size_t o;

	/* Like snprintf, a short buffer gets a terminated prefix. */
	if (size > 0)
		memset(buf, 0, size);
	o = put_plain(buf, size, 0, SCHEME);

	if (profile != NULL) {
		o = put_plain(buf, size, o, "profile=");
		o = put_encoded(buf, size, o, profile);
	}
	if (key_id != NULL) {
		o = put_plain(buf, size, o, ";key-id=");
		o = put_encoded(buf, size, o, key_id);
	}
	if (size > 0)
		buf[o < size ? o : size - 1] = '\0';
	return o;
}

size_t kms_percent_encode(char *buf, size_t size, const char *value)
{
	size_t o;

	if (size > 0)
		memset(buf, 0, size);
	o = put_encoded(buf, size, 0, value);
	if (size > 0)
		buf[o < size ? o : size - 1] = '\0';
	return o;
}
