/*
 * kmstore.h - the kmstore key store: post-quantum preshared keys (RFC 8784
 * PPKs) from static profiles and from QKD Key Management Entities
 * (ETSI GS QKD 014), for libreswan, OpenSSL and NSS.
 *
 * A store is one parsed configuration file. Each section of it is a
 * profile; a profile hands out keys: "a key for use now" (static: its one
 * key; QKD: a fresh key from the KME) or "the key with this ID".
 *
 * Every function that can fail returns a kms_rc and, when err is not NULL,
 * fills it with a one-line message naming the file:line, profile or field at
 * fault. Messages never contain key material.
 */
#ifndef KMSTORE_H
#define KMSTORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define KMS_API __attribute__((visibility("default")))
#else
#define KMS_API
#endif

/* Result codes; stable, used as exit statuses by the kmstore command. */
typedef enum kms_rc {
	KMS_OK = 0,
	KMS_ERR_USAGE = 2,       /* bad argument from the caller */
	KMS_ERR_CONFIG = 3,      /* configuration file or key source invalid */
	KMS_ERR_PERMISSION = 4,  /* file readable by others / wrong owner */
	KMS_ERR_NOT_FOUND = 5,   /* no such profile or key */
	KMS_ERR_URI = 6,         /* malformed kmstore: URI */
	KMS_ERR_KME = 7,         /* the KME refused or answered badly */
	KMS_ERR_UNREACHABLE = 8, /* KME down, TLS failure, timeout; kmstored down */
	KMS_ERR_UNSUPPORTED = 9, /* operation not available for this profile */
	KMS_ERR_SYSTEM = 10,     /* out of memory, I/O error */
} kms_rc;

#define KMS_ERROR_MAX 512

typedef struct kms_error {
	kms_rc code;
	char message[KMS_ERROR_MAX];
} kms_error;

/* Limits shared by every face of the store. */
#define KMS_KEY_ID_MAX 64        /* libreswan's PPK_ID_MAXLEN */
#define KMS_KEY_MIN 16           /* bytes */
#define KMS_KEY_MAX 256          /* bytes */
#define KMS_KEY_WEAK 32          /* below this a warning is logged */
#define KMS_PROFILE_NAME_MAX 32  /* a PKCS#11 token label is 32 bytes */
#define KMS_KCV_LEN 6            /* hex digits of the key check value */

typedef struct kms_store kms_store;
typedef struct kms_profile kms_profile;
typedef struct kms_key kms_key;

/* Warnings (a short key, memory that could not be locked) go to a logger;
 * the default writes "kmstore: warning: ..." to stderr. Set it once, before
 * other threads use the library; NULL restores the default. */
typedef enum kms_log_level { KMS_LOG_ERROR, KMS_LOG_WARNING, KMS_LOG_INFO } kms_log_level;
typedef void kms_log_fn(void *ctx, kms_log_level level, const char *message);
KMS_API void kms_set_logger(kms_log_fn *fn, void *ctx);

KMS_API const char *kms_version(void);
KMS_API const char *kms_rc_name(kms_rc rc);
/* A short human reason ("KME unreachable"), as OpenSSL's errors show it. */
KMS_API const char *kms_rc_describe(kms_rc rc);

/* The configuration path used when kms_store_open gets NULL: $KMSTORE_CONF
 * if set and not empty (ignored in set-ID programs: secure_getenv), else
 * the compiled-in default. */
KMS_API const char *kms_default_config_path(void);

/* Reads a configuration file. One whose only setting is "daemon = PATH"
 * (a client configuration) opens kmstored's store, as below. */
KMS_API kms_rc kms_store_open(const char *path, kms_store **out, kms_error *err);
/* A store whose profiles are kmstored's (the key manager process listening
 * on socket_path): those this process's user may use, with their type, key
 * size and non-secret settings. Keys, status and checks are asked of the
 * daemon, which holds the configuration, the SAE credentials and the KME
 * connections; results and messages are the same as in-process. */
KMS_API kms_rc kms_store_open_daemon(const char *socket_path, kms_store **out,
				     kms_error *err);
/* Frees a store; one of kms_store_cache_get's stores: drops a reference. */
KMS_API void kms_store_free(kms_store *store);
KMS_API const char *kms_store_path(const kms_store *store);

/* A store that follows its file, for a process that opens the store again
 * and again (the OpenSSL provider: every OSSL_STORE_open). Each get gives
 * the store as the file is now: the one parsed before, with its KME
 * connections, while the file is unchanged, else a newly parsed one, or
 * the error kms_store_open would give. path NULL: kms_default_config_path()
 * at each get. Thread-safe. The caller owns a reference to the store it
 * gets and releases it with kms_store_free: a store that a newer one
 * replaces lives until its last user lets it go, and keys taken from it
 * stay valid (keys are independent of their store). */
typedef struct kms_store_cache kms_store_cache;
KMS_API kms_rc kms_store_cache_new(const char *path, kms_store_cache **out,
				   kms_error *err);
KMS_API kms_rc kms_store_cache_get(kms_store_cache *cache, kms_store **out,
				   kms_error *err);
/* The same for kmstored's store at socket_path (as a client configuration
 * naming it gives): listed again at a get a second after the last listing,
 * so a reload in the daemon is seen within a second. */
KMS_API kms_rc kms_store_cache_new_daemon(const char *socket_path,
					  kms_store_cache **out,
					  kms_error *err);
/* How long a get waits for kmstored's listing, in ms (default, or 0:
 * 5000): a caller on an event loop (pluto's PKCS#11 module, on pluto's
 * main thread) gives it less; kmstored lists from memory. */
KMS_API void kms_store_cache_set_list_wait(kms_store_cache *cache, long ms);
KMS_API void kms_store_cache_free(kms_store_cache *cache);

KMS_API size_t kms_store_profile_count(const kms_store *store);
KMS_API kms_profile *kms_store_profile_at(const kms_store *store, size_t index);
KMS_API kms_rc kms_store_find_profile(const kms_store *store, const char *name,
			      kms_profile **out, kms_error *err);

KMS_API const char *kms_profile_name(const kms_profile *p);
KMS_API const char *kms_profile_type(const kms_profile *p);    /* "static", "qkd" */
KMS_API size_t kms_profile_key_size(const kms_profile *p);     /* bytes, 0 = unknown yet */
/* 1 when the profile's source hands each key out once (QKD: the KME
 * deletes a key once it is retrieved): a face that keeps keys must then
 * hand each out once too, or a used key could serve again. */
KMS_API int kms_profile_single_use(const kms_profile *p);
/* 1 when this process asks for the profile's keys without waiting on a
 * network or another process (a static profile read in-process: memory or
 * a local file): a caller may ask on a thread that must not block. */
KMS_API int kms_profile_local(const kms_profile *p);
/* A non-secret setting as configured (e.g. "url", "local-sae-id",
 * "peer-sae-id", "key-id", "timeout"), or NULL. */
KMS_API const char *kms_profile_setting(const kms_profile *p, const char *name);

/* Deep validation: reads key files, checks certificate and key paths, and
 * looks up the users and groups of allow-users and allow-groups as
 * kmstored does at start and reload (a number is not looked up): a name
 * it cannot find is KMS_ERR_CONFIG naming the file, line, setting and
 * name; a lookup that failed (the directory service unreachable) is
 * KMS_ERR_SYSTEM with the reason. */
KMS_API kms_rc kms_profile_check(kms_profile *p, kms_error *err);
/* Whether the profile's certificates (QKD: the SAE's and the CA) are valid
 * now: KMS_ERR_CONFIG naming one that expired or is not valid yet; a
 * warning (kms_log) for one that expires within 30 days. Apart from
 * kms_profile_check because time, not an edit, breaks it: "kmstore check"
 * fails on it, a running service only warns. */
KMS_API kms_rc kms_profile_check_dates(kms_profile *p, kms_error *err);

/* "A key for use now". For a QKD profile every call consumes a new key. */
KMS_API kms_rc kms_profile_get_key(kms_profile *p, kms_key **out, kms_error *err);
/* "The key with this ID" (QKD: dec_keys, retrievable once at the KME). */
KMS_API kms_rc kms_profile_get_key_by_id(kms_profile *p, const char *key_id,
				 kms_key **out, kms_error *err);

#define KMS_KMES_MAX 8            /* KMEs of one QKD profile (url = A B ...) */
#define KMS_URL_MAX 256

/* What this process knows of one KME of a profile: its health after the
 * requests made so far (a long-lived process, such as kmstored, knows
 * more than a one-shot command). */
typedef struct kms_kme_health {
	char url[KMS_URL_MAX];
	char state[16];              /* "up", "down" or "unknown" (not asked yet) */
	long failures;               /* in a row */
	long retry_in_ms;            /* down: until it is asked first again; 0 */
	char last_error[200];        /* down: its last failure's message; "" */
} kms_kme_health;

typedef struct kms_status {
	char state[32];              /* "ready", ... */
	char source_kme_id[KMS_KEY_ID_MAX + 1];
	char target_kme_id[KMS_KEY_ID_MAX + 1];
	long key_size_bits;          /* -1 where not applicable */
	long stored_key_count;
	long max_key_count;
	long max_key_per_request;
	long min_key_size_bits;
	long max_key_size_bits;
	long pool_keys;              /* kmstored's prefetched keys; -1: no pool */
	long pool_target;            /* prefetch =; -1: no pool */
	size_t n_kmes;               /* QKD: the profile's KMEs, in order */
	kms_kme_health kmes[KMS_KMES_MAX];
} kms_status;

KMS_API kms_rc kms_profile_status(kms_profile *p, kms_status *out, kms_error *err);

/* Keys: the bytes live in locked memory that is wiped when the key is
 * freed. Keys are independent of the store they came from. */
KMS_API const char *kms_key_id(const kms_key *key);
KMS_API const uint8_t *kms_key_bytes(const kms_key *key);
KMS_API size_t kms_key_size(const kms_key *key);
KMS_API const char *kms_key_profile(const kms_key *key);
/* Non-secret fingerprint: the first KMS_KCV_LEN hex digits of
 * HMAC-SHA256(key, "kmstore-kcv"), so two sites can compare keys. It is
 * computed by libcrypto's default library context: where that has no
 * HMAC-SHA256 (a program that loaded other providers but not "default")
 * it fails with KMS_ERR_UNSUPPORTED, out is "" and err says why; a later
 * call tries again. */
KMS_API kms_rc kms_key_check_value_ex(const kms_key *key,
				      char out[KMS_KCV_LEN + 1], kms_error *err);
/* The same without the reason (out "" on failure): 0.1.0's signature,
 * kept for programs built against it. */
KMS_API void kms_key_check_value(const kms_key *key, char out[KMS_KCV_LEN + 1]);
KMS_API kms_rc kms_key_new(const char *profile, const char *key_id,
		   const uint8_t *bytes, size_t len, kms_key **out,
		   kms_error *err);
KMS_API kms_rc kms_key_dup(const kms_key *key, kms_key **out, kms_error *err);
KMS_API void kms_key_free(kms_key *key);

/* kmstore: URIs (RFC 7512 attribute syntax, RFC 3986 percent-encoding):
 * "kmstore:" (every profile), "kmstore:profile=P", and
 * "kmstore:profile=P;key-id=K". Decoded values are validated as profile
 * names and key IDs. */
typedef struct kms_uri {
	char *profile; /* NULL: the whole store */
	char *key_id;  /* NULL: a key for use now */
} kms_uri;

KMS_API int kms_uri_is_kmstore(const char *s);
KMS_API kms_rc kms_uri_parse(const char *s, kms_uri *out, kms_error *err);
KMS_API void kms_uri_clear(kms_uri *uri);
/* Writes the URI for profile (and key_id if not NULL), percent-encoding
 * what needs it. Returns the length it needs, like snprintf. */
KMS_API size_t kms_uri_format(char *buf, size_t size, const char *profile,
		      const char *key_id);

/* Validation rules, exported so every face applies the same ones. */
KMS_API kms_rc kms_check_key_id(const char *id, size_t len, kms_error *err);
KMS_API kms_rc kms_check_profile_name(const char *name, kms_error *err);

#ifdef __cplusplus
}
#endif
#endif
