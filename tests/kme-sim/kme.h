/*
 * kme-sim: the KME / QKD-link model.
 *
 * Every pair of KMEs in one process is joined by a simulated QKD link. A
 * link has a pool of key material (counted in keys of the default key size)
 * that starts full and refills at a fixed rate, and a list of keys already
 * delivered to a master SAE by enc_keys and waiting to be retrieved, exactly
 * once, by the slave SAE through dec_keys at the other KME.
 *
 * The KME table and the settings are fixed once the model is built; the
 * links are shared between the connection threads and live under one mutex.
 */
#ifndef KME_SIM_KME_H
#define KME_SIM_KME_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

/* Longest SAE ID, KME ID or key ID the simulator accepts. */
#define KME_ID_MAX 128
/* A UUID in its canonical text form plus the terminator. */
#define KME_UUID_LEN 37

struct kme_settings {
	unsigned pool_size;            /* max_key_count of every link */
	double key_rate;               /* keys/s added to a pool; 0 never, inf: always full */
	unsigned key_size;             /* default key size, bits */
	unsigned min_key_size;         /* bits */
	unsigned max_key_size;         /* bits */
	unsigned max_keys_per_request; /* max_key_per_request */
	unsigned max_pending;          /* delivered keys kept per link */
	bool sequential_ids;           /* key_IDs count up instead of random UUIDs */
};

struct kme {
	char *id;
	char **saes;   /* SAE IDs attached to this KME */
	size_t n_saes;
};

struct kme_link;

struct kme_model {
	struct kme *kmes;
	size_t n_kmes;
	struct kme_settings set;
	struct kme_link *links; /* one per unordered pair of KMEs */
	size_t n_links;
	pthread_mutex_t lock;   /* guards everything inside links */
	atomic_ulong n_ids;     /* key_IDs made, for sequential_ids */
};

/* An outcome: HTTP status and, for errors, the message and one detail. */
struct kme_result {
	int status;
	char message[256];
	char detail_name[32];
	char detail_value[KME_ID_MAX + 64];
};

struct kme_key {
	char id[KME_ID_MAX + 1];
	unsigned char *bytes;
	size_t len;
};

struct kme_keys {
	struct kme_key *v;
	size_t n;
};

struct kme_status {
	const char *source_kme, *target_kme, *master_sae, *slave_sae;
	unsigned key_size;
	unsigned long stored_key_count;
	unsigned max_key_count, max_key_per_request, max_key_size, min_key_size;
};

/* Build the links for kmes[0..n) (ownership of kmes moves to the model). */
int kme_model_init(struct kme_model *m, struct kme *kmes, size_t n,
		   const struct kme_settings *set);
void kme_model_free(struct kme_model *m);

/* Index of the KME the SAE is attached to, or -1. */
int kme_home_of(const struct kme_model *m, const char *sae);
bool kme_has_sae(const struct kme *k, const char *sae);

/* The three ETSI operations at KME `at`, called by SAE `caller`. Each fills
 * `res` (status 200 on success) and returns res->status. */
int kme_status_of(struct kme_model *m, size_t at, const char *caller,
		  const char *slave, struct kme_status *out,
		  struct kme_result *res);
int kme_enc_keys(struct kme_model *m, size_t at, const char *caller,
		 const char *slave, unsigned number, unsigned bits,
		 struct kme_keys *out, struct kme_result *res);
int kme_dec_keys(struct kme_model *m, size_t at, const char *caller,
		 const char *master, const char *const *ids, size_t n_ids,
		 struct kme_keys *out, struct kme_result *res);

/* Fresh key material and identifiers, for the model and for faults. */
int kme_random_key(struct kme_key *k, const char *id, size_t len);
void kme_new_uuid(char out[KME_UUID_LEN]);
void kme_keys_free(struct kme_keys *keys);

#endif
