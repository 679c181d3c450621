/*
 * provider.h - what the parts of the kmstore OpenSSL provider share.
 *
 * The provider only translates between OpenSSL's provider interface and
 * libkmstore: profiles, keys, URIs, check values and error messages all
 * come from the library.
 */
#ifndef KMSP_PROVIDER_H
#define KMSP_PROVIDER_H

#include <stddef.h>

#include <openssl/core.h>
#include <openssl/core_dispatch.h>

#include <kmstore.h>

/* The one algorithm name under which keys are served as EVP_PKEYs: the
 * default provider's HMAC signature and MAC only take a key from a key
 * manager of the same name (see docs/openssl.md). */
#define KMSP_PKEY_TYPE "HMAC"
/* EVP_SKEY type: the default provider's generic secret, so that keys can
 * move there with EVP_SKEY_to_provider. */
#define KMSP_SKEY_TYPE "GENERIC-SECRET"
#define KMSP_PROPERTIES "provider=kmstore"

/* Key parameters beyond OpenSSL's own (EVP_PKEY_get_utf8_string_param). */
#define KMSP_PARAM_KEY_ID "kmstore-key-id"
#define KMSP_PARAM_PROFILE "kmstore-profile"
#define KMSP_PARAM_CHECK_VALUE "kmstore-check-value"
#define KMSP_PARAM_SOURCE "kmstore-source"
/* EVP_SKEY import/generate parameter: the key's kmstore: URI. */
#define KMSP_PARAM_URI "kmstore-uri"
/* Provider parameters from openssl.cnf: the kmstore.conf to use, or
 * kmstored's socket (the profiles are then the daemon's). */
#define KMSP_PARAM_CONFIG "kmstore-config"
#define KMSP_PARAM_DAEMON "kmstore-daemon"

/* Reason codes: the library's kms_rc values, plus our own. */
#define KMSP_R_INTERNAL 100

/* One per provider instance (per OSSL_LIB_CTX that loads kmstore). The
 * store is parsed once and shared by every open in every thread, with its
 * KME connections; it is parsed again when the file changes. kmstored's
 * store is listed again a second after its last listing. */
typedef struct kmsp_provctx {
	const OSSL_CORE_HANDLE *handle;
	char *config_path; /* NULL: $KMSTORE_CONF or the default */
	char *daemon_path; /* kmstored's socket, or NULL */
	kms_store_cache *stores; /* of config_path, or of daemon_path */
} kmsp_provctx;

/* Errors go through the core, so applications print them with the
 * provider's name and our reason strings. */
void kmsp_raise_at(const kmsp_provctx *pc, const char *file, int line,
		   const char *func, int reason, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));
/* The source file without the build's directories, as OpenSSL's own. */
#ifdef __FILE_NAME__
#define KMSP_FILE __FILE_NAME__
#else
#define KMSP_FILE __FILE__
#endif
#define KMSP_RAISE(pc, reason, ...)                                        \
	kmsp_raise_at((pc), KMSP_FILE, __LINE__, __func__, (reason), __VA_ARGS__)
/* Raises a library error with its own message and code. */
#define KMSP_RAISE_KMS(pc, err)                                            \
	KMSP_RAISE((pc), (int)(err)->code, "%s", (err)->message)

/* Writes to a BIO handed to us by the core (encoders). */
int kmsp_bio_printf(OSSL_CORE_BIO *bio, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* A key as the provider holds it: either from the store (bytes in the
 * library's locked memory, with profile and key ID), or imported by an
 * application through the key managers (a plain HMAC key). */
typedef struct kmsp_key kmsp_key;

kmsp_key *kmsp_key_new(void);
void kmsp_key_free(kmsp_key *k);
kmsp_key *kmsp_key_dup(const kmsp_key *k);
/* Takes ownership of key; source says where it came from; pc raises the
 * key's errors. */
kmsp_key *kmsp_key_wrap(const kmsp_provctx *pc, kms_key *key,
			const char *source);
int kmsp_key_set_bytes(kmsp_key *k, const unsigned char *bytes, size_t len);
int kmsp_key_is_valid(const kmsp_key *k);
int kmsp_key_has_secret(const kmsp_key *k);
const unsigned char *kmsp_key_bytes(const kmsp_key *k);
size_t kmsp_key_size(const kmsp_key *k);
/* NULL for imported keys. */
const char *kmsp_key_id(const kmsp_key *k);
const char *kmsp_key_profile(const kmsp_key *k);
/* NULL for an imported key, and when libkmstore cannot compute it (no
 * HMAC-SHA256 in the default library context): that error is raised. */
const char *kmsp_key_check_value(const kmsp_key *k);
const char *kmsp_key_source(const kmsp_key *k);
int kmsp_key_equal(const kmsp_key *a, const kmsp_key *b);

/* "A key for use now" (key_id NULL) or "that key" from a profile; raises
 * the library's error and returns NULL on failure. */
kmsp_key *kmsp_key_fetch(const kmsp_provctx *pc, const kms_store *store,
			 kms_profile *p, const char *key_id);
/* The same for a kmstore:profile=...[;key-id=...] URI. */
kmsp_key *kmsp_key_from_uri(const kmsp_provctx *pc, const char *uri);
/* The store as its file is now (a reference: release it with
 * kms_store_free); raises the library's error and returns NULL on
 * failure. */
kms_store *kmsp_store_get(const kmsp_provctx *pc);

/* Prints the non-secret description of a key (the text encoder). */
int kmsp_key_print(OSSL_CORE_BIO *out, const kmsp_key *k);

extern const OSSL_DISPATCH kmsp_store_functions[];
extern const OSSL_DISPATCH kmsp_keymgmt_functions[];
extern const OSSL_DISPATCH kmsp_text_encoder_functions[];
#ifdef OSSL_OP_SKEYMGMT
extern const OSSL_DISPATCH kmsp_skeymgmt_functions[];
#endif

#endif
