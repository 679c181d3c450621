/* etsi014.c - the ETSI GS QKD 014 client of QKD profiles.
 *
 * Not built yet: the network client is its own piece of work (issue 3).
 * Until then a QKD profile parses and checks, and its key requests fail
 * with KMS_ERR_UNSUPPORTED. */
#include "qkd.h"

kms_rc kms_qkd_client_new(kms_profile *p, kms_error *err)
{
	(void)p;
	(void)err;
	return KMS_OK;
}

void kms_qkd_client_free(struct kms_qkd_client *client)
{
	(void)client;
}

static kms_rc not_built(const kms_profile *p, kms_error *err)
{
	return kms_fail(err, KMS_ERR_UNSUPPORTED,
			"profile '%s': the ETSI GS QKD 014 client is not built "
			"into this kmstore yet", p->name);
}

kms_rc kms_qkd_get_key(kms_profile *p, kms_key **out, kms_error *err)
{
	(void)out;
	return not_built(p, err);
}

kms_rc kms_qkd_get_key_by_id(kms_profile *p, const char *id, kms_key **out,
			     kms_error *err)
{
	(void)id;
	(void)out;
	return not_built(p, err);
}

kms_rc kms_qkd_status(kms_profile *p, kms_status *out, kms_error *err)
{
	(void)out;
	return not_built(p, err);
}
