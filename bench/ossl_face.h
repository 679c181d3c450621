/* ossl_face.h - the OpenSSL provider as an application uses it, for the
 * benchmarks (soak.c, keyfetch.c): its own library context with kmstore
 * and default loaded, and one IKE round trip through OSSL_STORE. */
#ifndef BENCH_OSSL_FACE_H
#define BENCH_OSSL_FACE_H

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/provider.h>

struct ossl_face {
	OSSL_LIB_CTX *ctx;
	OSSL_PROVIDER *kmstore, *deflt;
};

/* A library context with the providers kmstore (from dir; NULL:
 * $KMSTORE_PROVIDER_DIR, else OpenSSL's modules directory) and default,
 * the provider reading conf (as KMSTORE_CONF). -1 with a message on
 * stderr on failure. */
int ossl_face_open(struct ossl_face *f, const char *conf, const char *dir);
/* 0 when both providers unloaded cleanly. */
int ossl_face_close(struct ossl_face *f);

/* The key a kmstore: URI names, as an application loads it; NULL with the
 * error queue on failure. */
EVP_PKEY *ossl_face_load(OSSL_LIB_CTX *ctx, const char *uri);

/* What a round trip came to. */
enum ossl_round {
	OSSL_ROUND_SERVED,   /* the same key at both profiles */
	OSSL_ROUND_MISMATCH, /* two different keys */
	OSSL_ROUND_ENC,      /* no key for use now (error queue) */
	OSSL_ROUND_KEY_ID,   /* no kmstore-key-id on it */
	OSSL_ROUND_DEC,      /* no key by that ID (error queue) */
};

/* A key for use now from profile west, then the key with its ID from
 * profile east (its URI made by the library, as the provider lists it),
 * and the two compared byte for byte, as an IKE initiator and responder
 * do. */
enum ossl_round ossl_face_round(OSSL_LIB_CTX *ctx, const char *west,
				const char *east);

#endif
