/* ossl_face.c - the OpenSSL provider as an application uses it, for the
 * benchmarks (see ossl_face.h). */
#include <stdio.h>
#include <stdlib.h>

#include <openssl/err.h>
#include <openssl/store.h>

#include "kmstore.h"
#include "ossl_face.h"

int ossl_face_open(struct ossl_face *f, const char *conf, const char *dir)
{
	if (dir == NULL)
		dir = getenv("KMSTORE_PROVIDER_DIR");
	/* OpenSSL 3.0 passes a provider parameter (kmstore-config) only from
	 * an openssl.cnf; the environment is the provider's other way. */
	if (setenv("KMSTORE_CONF", conf, 1) != 0)
		return -1;
	f->ctx = OSSL_LIB_CTX_new();
	if (f->ctx == NULL ||
	    (dir != NULL && !OSSL_PROVIDER_set_default_search_path(f->ctx, dir))) {
		fprintf(stderr, "cannot make an OpenSSL library context\n");
		return -1;
	}
	/* Both, as docs/openssl.md says: an application computes with the
	 * keys in the default provider. */
	f->kmstore = OSSL_PROVIDER_load(f->ctx, "kmstore");
	f->deflt = OSSL_PROVIDER_load(f->ctx, "default");
	if (f->kmstore == NULL || f->deflt == NULL) {
		fprintf(stderr, "cannot load the providers kmstore (from %s) and "
			"default\n", dir ? dir : "OpenSSL's modules directory");
		ERR_print_errors_fp(stderr);
		return -1;
	}
	return 0;
}

int ossl_face_close(struct ossl_face *f)
{
	int ok = OSSL_PROVIDER_unload(f->deflt) == 1 &&
		 OSSL_PROVIDER_unload(f->kmstore) == 1;

	OSSL_LIB_CTX_free(f->ctx);
	return ok ? 0 : -1;
}

EVP_PKEY *ossl_face_load(OSSL_LIB_CTX *ctx, const char *uri)
{
	OSSL_STORE_CTX *st;
	EVP_PKEY *pkey = NULL;

	st = OSSL_STORE_open_ex(uri, ctx, NULL, NULL, NULL, NULL, NULL, NULL);
	if (st == NULL)
		return NULL;
	while (pkey == NULL && !OSSL_STORE_eof(st)) {
		OSSL_STORE_INFO *info = OSSL_STORE_load(st);

		if (info != NULL && OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_PKEY)
			pkey = OSSL_STORE_INFO_get1_PKEY(info);
		OSSL_STORE_INFO_free(info);
		if (info == NULL && OSSL_STORE_error(st))
			break;
	}
	OSSL_STORE_close(st);
	return pkey;
}

/* The bytes of both keys, as EVP_PKEY_get_raw_private_key copies them. */
static int same_key(EVP_PKEY *a, EVP_PKEY *b)
{
	unsigned char x[KMS_KEY_MAX], y[KMS_KEY_MAX];
	size_t xl = sizeof(x), yl = sizeof(y);
	int eq;

	eq = EVP_PKEY_get_raw_private_key(a, x, &xl) == 1 &&
	     EVP_PKEY_get_raw_private_key(b, y, &yl) == 1 && xl == yl &&
	     CRYPTO_memcmp(x, y, xl) == 0;
	OPENSSL_cleanse(x, sizeof(x));
	OPENSSL_cleanse(y, sizeof(y));
	return eq;
}

enum ossl_round ossl_face_round(OSSL_LIB_CTX *ctx, const char *west,
				const char *east)
{
	char id[KMS_KEY_ID_MAX + 1], uri[512];
	enum ossl_round r;
	EVP_PKEY *a, *b;

	kms_uri_format(uri, sizeof(uri), west, NULL);
	a = ossl_face_load(ctx, uri);
	if (a == NULL)
		return OSSL_ROUND_ENC;
	if (EVP_PKEY_get_utf8_string_param(a, "kmstore-key-id", id, sizeof(id),
					   NULL) != 1 ||
	    kms_uri_format(uri, sizeof(uri), east, id) >= sizeof(uri)) {
		EVP_PKEY_free(a);
		return OSSL_ROUND_KEY_ID;
	}
	b = ossl_face_load(ctx, uri);
	if (b == NULL)
		r = OSSL_ROUND_DEC;
	else
		r = same_key(a, b) ? OSSL_ROUND_SERVED : OSSL_ROUND_MISMATCH;
	EVP_PKEY_free(b);
	EVP_PKEY_free(a);
	return r;
}
