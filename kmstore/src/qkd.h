/* qkd.h - a QKD profile's settings, shared by the profile (qkd.c) and its
 * ETSI GS QKD 014 client (etsi014.c); internal. */
#ifndef KMS_QKD_H
#define KMS_QKD_H

#include "profile.h"

struct kms_qkd_client;

struct kms_qkd_config {
	const char *url;       /* points into the profile's settings */
	const char *local_sae;
	const char *peer_sae;
	char *certificate;     /* absolute paths */
	char *private_key;
	char *ca;
	long key_bits;
	long timeout_ms;       /* bounds one whole request, retries included */
	struct kms_qkd_client *client;
};

/* The SAE's TLS private key (PEM), read whole into locked memory through
 * the descriptor whose owner and mode were checked; free with
 * kms_secmem_free(*pem, KMS_TLS_KEY_MAX + 1). */
#define KMS_TLS_KEY_MAX 16384
kms_rc kms_qkd_read_tls_key(const struct kms_qkd_config *c, uint8_t **pem,
			    size_t *len, kms_error *err);

/* The client of a profile: created by configure (no I/O), freed with the
 * profile. */
kms_rc kms_qkd_client_new(kms_profile *p, kms_error *err);
void kms_qkd_client_free(struct kms_qkd_client *client);

kms_rc kms_qkd_get_key(kms_profile *p, kms_key **out, kms_error *err);
kms_rc kms_qkd_get_key_by_id(kms_profile *p, const char *id, kms_key **out,
			     kms_error *err);
kms_rc kms_qkd_status(kms_profile *p, kms_status *out, kms_error *err);

#endif
