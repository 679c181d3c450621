/* fetch.c - keys from libkmstore. Called without the module lock: a QKD
 * fetch is an HTTPS round trip to the KME, bounded by the profile's
 * timeout. Failures are logged here with libkmstore's message (profile,
 * KME, HTTP status; never key bytes) and become PKCS#11 return values. */
#include "module.h"

/* The check value lets the two peers' logs be compared: the same key ID
 * must show the same value (non-secret, see kms_key_check_value_ex). */
static void log_served(const kms_profile *p, const kms_key *key,
		       const char *how)
{
	char kcv[KMS_KCV_LEN + 1];
	const char *shown = kcv;
	kms_error err;

	if (!p11_log_enabled(KMS_LOG_INFO))
		return; /* no HMAC for a line nobody reads */
	if (kms_key_check_value_ex(key, kcv, &err) != KMS_OK) {
		/* "none": nothing the peer's log could seem to agree with */
		p11_log(KMS_LOG_WARNING, "token %s: key %s: %s",
			kms_profile_name(p), kms_key_id(key), err.message);
		shown = "none";
	}
	p11_log(KMS_LOG_INFO, "token %s: key %s %s (check value %s)",
		kms_profile_name(p), kms_key_id(key), how, shown);
}

CK_RV p11_fetch_now(kms_profile *p, kms_key **out, CK_ULONG *kms_code)
{
	kms_error err;
	kms_rc rc = kms_profile_get_key(p, out, &err);

	*kms_code = rc;
	if (rc != KMS_OK) {
		p11_log(KMS_LOG_ERROR, "token %s: no key for use now: %s",
			kms_profile_name(p), err.message);
		return p11_rv_from_kms(rc);
	}
	log_served(p, *out, "for use now");
	return CKR_OK;
}

/* An unknown key ID is not an error for a search: *out stays NULL and the
 * search finds nothing. */
CK_RV p11_fetch_by_id(kms_profile *p, const char *id, kms_key **out,
		      CK_ULONG *kms_code)
{
	kms_error err;
	kms_rc rc = kms_profile_get_key_by_id(p, id, out, &err);

	*kms_code = rc;
	switch (rc) {
	case KMS_OK:
		log_served(p, *out, "found");
		return CKR_OK;
	case KMS_ERR_NOT_FOUND:
	case KMS_ERR_USAGE:
		p11_log(KMS_LOG_WARNING, "token %s: no key %s: %s",
			kms_profile_name(p), id, err.message);
		return CKR_OK;
	default:
		p11_log(KMS_LOG_ERROR, "token %s: key %s not fetched: %s",
			kms_profile_name(p), id, err.message);
		return p11_rv_from_kms(rc);
	}
}
