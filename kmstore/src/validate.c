/* validate.c - the rules for key IDs and profile names, one place for
 * every face (config, URIs, KME answers, a peer's PPK_ID). */
#include <string.h>

#include "error.h"
#include "validate.h"

kms_rc kms_check_token(const char *what, const char *s, size_t len,
		       size_t max, kms_error *err)
{
	if (len == 0)
		return kms_fail(err, KMS_ERR_USAGE, "%s is empty", what);
	if (len > max)
		return kms_fail(err, KMS_ERR_USAGE,
				"%s is %zu bytes; at most %zu are allowed", what,
				len, max);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		/* Printable ASCII without space: key IDs travel as IKE
		 * PPK_IDs, in URIs, JSON and logs. The byte is named, never
		 * echoed. */
		if (c < 0x21 || c > 0x7e)
			return kms_fail(err, KMS_ERR_USAGE,
					"%s has byte 0x%02x at offset %zu; only "
					"printable ASCII without spaces is allowed",
					what, c, i);
	}
	return KMS_OK;
}

kms_rc kms_check_key_id(const char *id, size_t len, kms_error *err)
{
	return kms_check_token("key ID", id, len, KMS_KEY_ID_MAX, err);
}

kms_rc kms_check_profile_name(const char *name, kms_error *err)
{
	size_t len = strlen(name);

	if (len == 0)
		return kms_fail(err, KMS_ERR_USAGE, "profile name is empty");
	if (len > KMS_PROFILE_NAME_MAX)
		return kms_fail(err, KMS_ERR_USAGE,
				"profile name '%.*s...' is longer than %d characters "
				"(it becomes a PKCS#11 token label)",
				KMS_PROFILE_NAME_MAX, name, KMS_PROFILE_NAME_MAX);
	for (size_t i = 0; i < len; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'))
			return kms_fail(err, KMS_ERR_USAGE,
					"profile name has byte 0x%02x at offset %zu; "
					"use letters, digits, '-', '_' and '.'",
					(unsigned char)c, i);
	}
	return KMS_OK;
}

int kms_is_decimal(const char *s, int fraction)
{
	size_t whole = strspn(s, "0123456789"), part = 0;

	if (fraction && s[whole] == '.')
		part = 1 + strspn(s + whole + 1, "0123456789");
	/* a digit on one side of the '.' at least: ".5" and "2." */
	return whole + part > (part > 0 ? 1u : 0u) && s[whole + part] == '\0';
}
