/* qkd.h - a QKD profile's settings, shared by the profile (qkd.c) and its
 * ETSI GS QKD 014 client (etsi014.c); internal. */
#ifndef KMS_QKD_H
#define KMS_QKD_H

#include <stdint.h>

#include "profile.h"

struct kms_qkd_client;

/* What a profile does when every KME is down (kmstored, with a pool):
 * serve the pool until it is empty, or refuse at once. */
enum kms_outage { KMS_OUTAGE_DRAIN, KMS_OUTAGE_FAIL };

struct kms_qkd_config {
	const char *url;       /* the setting as written: one URL or more */
	char *urls[KMS_KMES_MAX]; /* each, in order of preference */
	size_t n_urls;
	const char *local_sae; /* points into the profile's settings */
	const char *peer_sae;
	char *certificate;     /* absolute paths */
	char *private_key;
	char *ca;
	long key_bits;
	long timeout_ms;       /* bounds one whole request, retries and
				* failover included */
	/* kmstored's pool (kmstore/daemon/pool.c); in-process, unused. */
	long prefetch;         /* keys kept ready; 0: no pool */
	long prefetch_low;     /* refill below this */
	long prefetch_max_age_ms;
	enum kms_outage outage;
	struct kms_qkd_client *client;
};

/* The SAE's TLS private key (PEM), read whole into locked memory through
 * the descriptor whose owner and mode were checked; free with
 * kms_secmem_free(*pem, KMS_TLS_KEY_MAX + 1). */
#define KMS_TLS_KEY_MAX 16384
kms_rc kms_qkd_read_tls_key(const struct kms_qkd_config *c, uint8_t **pem,
			    size_t *len, kms_error *err);
/* KMS_ERR_CONFIG, naming the file, if that key is encrypted: kmstore has
 * no passphrase to give it. */
kms_rc kms_qkd_tls_key_plain(const struct kms_qkd_config *c, const uint8_t *pem,
			     size_t len, kms_error *err);

/* The client of a profile: created by configure (no I/O), freed with the
 * profile. */
kms_rc kms_qkd_client_new(kms_profile *p, kms_error *err);
void kms_qkd_client_free(struct kms_qkd_client *client);

kms_rc kms_qkd_get_key(kms_profile *p, kms_key **out, kms_error *err);
/* Up to n new keys in one enc_keys request (number = n, or as many as
 * the KME was found to take: its status, a refusal; at most 16); *got of
 * them in out[]. A refusal as a bad request (400, 413) is asked again with
 * fewer, and the number given is kept as the KME's limit; a 5xx once, for
 * as many as the KME holds. For kmstored's pool. */
kms_rc kms_qkd_get_keys(kms_profile *p, size_t n, kms_key **out, size_t *got,
			kms_error *err);
/* Whether every KME of the profile is down now: each failed its last
 * request. */
int kms_qkd_all_down(const kms_profile *p);
/* When the first of the profile's KMEs is back from its back-off
 * (monotonic ms; past if one is). */
int64_t kms_qkd_back_at(const kms_profile *p);
/* Each KME's health into out (n_kmes, kmes), asking none of them. */
void kms_qkd_health(const kms_profile *p, kms_status *out);

/* Every KME request of every profile, as it ends, for kmstored's metrics:
 * the profile, the KME's URL, the operation ("enc_keys", "dec_keys",
 * "status"), its duration and what came of it: "ok", or the cause of the
 * failure ("timeout", "refused", "tls", "dropped", "http_4xx",
 * "http_5xx", "malformed", "other"). One observer per process; set it
 * before the first request. */
struct kms_kme_event {
	const char *profile, *url, *op, *outcome;
	int64_t us;       /* microseconds */
	long http_status; /* 0 if none */
};
typedef void kms_kme_observer(void *ctx, const struct kms_kme_event *ev);
void kms_qkd_set_observer(kms_kme_observer *fn, void *ctx);
kms_rc kms_qkd_get_key_by_id(kms_profile *p, const char *id, kms_key **out,
			     kms_error *err);
kms_rc kms_qkd_status(kms_profile *p, kms_status *out, kms_error *err);

#endif
