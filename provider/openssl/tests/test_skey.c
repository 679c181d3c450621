/*
 * test_skey.c - kmstore keys as opaque symmetric keys (EVP_SKEY), where
 * OpenSSL has them; exits 77 (skip) where it does not.
 *
 * usage: test_skey PROVIDER_DIR URI_NOW URI_BY_ID KEYFILE KEY_ID BAD_URI
 * Checks: EVP_SKEY_generate (a key for use now) and EVP_SKEY_import (that
 * key) through the provider give the key ID and the bytes of KEYFILE;
 * the key moves to the default provider (EVP_SKEY_to_provider) and
 * encrypts there as the raw key does; where OSSL_STORE has EVP_SKEYs (4.0)
 * the same through OSSL_STORE; BAD_URI fails with a readable error.
 * Prints one "ok"/"not ok" line per check.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/provider.h>
#include <openssl/store.h>

#include "proc.h"

#ifndef OSSL_OP_SKEYMGMT
int main(void)
{
	puts("this OpenSSL has no EVP_SKEY");
	return 77;
}
#else

#define SKEY_TYPE "GENERIC-SECRET"
#define PROPQ "provider=kmstore"

#include "check.h" /* (its check() and counter would be unused above) */

static OSSL_PARAM *uri_params(OSSL_PARAM params[2], const char *uri)
{
	params[0] = OSSL_PARAM_construct_utf8_string("kmstore-uri", (char *)uri, 0);
	params[1] = OSSL_PARAM_construct_end();
	return params;
}

static int same_bytes(const EVP_SKEY *skey, const unsigned char *key, size_t len)
{
	const unsigned char *raw = NULL;
	size_t rawlen = 0;

	return EVP_SKEY_get0_raw_key(skey, &raw, &rawlen) && rawlen == len &&
	       CRYPTO_memcmp(raw, key, len) == 0;
}

static void check_key(EVP_SKEY *skey, const char *how, const char *key_id,
		      const unsigned char *key, size_t len)
{
	char what[128];
	const char *id = EVP_SKEY_get0_key_id(skey);
	const char *prov = EVP_SKEY_get0_provider_name(skey);

	snprintf(what, sizeof(what), "%s: provider kmstore", how);
	check(prov != NULL && strcmp(prov, "kmstore") == 0, what);
	snprintf(what, sizeof(what), "%s: key ID %s", how, key_id);
	check(id != NULL && strcmp(id, key_id) == 0, what);
	snprintf(what, sizeof(what), "%s: the key's bytes", how);
	check(same_bytes(skey, key, len), what);
}

/* Moved to the default provider, the key works in its ciphers as the raw
 * key does (EVP_CipherInit_SKEY wants a key of the cipher's provider). */
static void check_cipher(OSSL_LIB_CTX *libctx, EVP_SKEY *skey,
			 const unsigned char *key)
{
	static const unsigned char block[16] = "kmstore skey tst";
	unsigned char a[32], b[32];
	int alen = 0, blen = 0;
	EVP_CIPHER *aes = EVP_CIPHER_fetch(libctx, "AES-256-ECB", "provider=default");
	EVP_CIPHER_CTX *c1 = EVP_CIPHER_CTX_new(), *c2 = EVP_CIPHER_CTX_new();
	int ok;

	ok = aes != NULL && c1 != NULL && c2 != NULL &&
	     EVP_CipherInit_SKEY(c1, aes, skey, NULL, 0, 1, NULL) == 1 &&
	     EVP_CIPHER_CTX_set_padding(c1, 0) == 1 &&
	     EVP_CipherUpdate(c1, a, &alen, block, sizeof(block)) == 1 &&
	     EVP_EncryptInit_ex2(c2, aes, key, NULL, NULL) == 1 &&
	     EVP_CIPHER_CTX_set_padding(c2, 0) == 1 &&
	     EVP_CipherUpdate(c2, b, &blen, block, sizeof(block)) == 1 &&
	     alen == blen && memcmp(a, b, (size_t)alen) == 0;
	check(ok, "AES-256 with the EVP_SKEY equals AES-256 with the raw key");
	EVP_CIPHER_CTX_free(c1);
	EVP_CIPHER_CTX_free(c2);
	EVP_CIPHER_free(aes);
}

#ifdef OSSL_STORE_INFO_SKEY
/* OpenSSL 4.0: an EVP_SKEY straight from OSSL_STORE. The store hands the
 * bytes over and OpenSSL imports them into the GENERIC-SECRET key manager
 * that a fetch with the caller's properties finds: with default loaded
 * first, default's, and the key works in default's ciphers as it is;
 * otherwise it may be kmstore's, and moves to default as any kmstore
 * EVP_SKEY does. */
static EVP_SKEY *store_skey(OSSL_LIB_CTX *libctx, const char *uri)
{
	OSSL_STORE_CTX *st = OSSL_STORE_open_ex(uri, libctx, NULL, NULL, NULL,
						NULL, NULL, NULL);
	EVP_SKEY *skey = NULL;

	if (st == NULL || !OSSL_STORE_expect(st, OSSL_STORE_INFO_SKEY)) {
		OSSL_STORE_close(st);
		return NULL;
	}
	while (skey == NULL && !OSSL_STORE_eof(st)) {
		OSSL_STORE_INFO *info = OSSL_STORE_load(st);

		if (info == NULL)
			break;
		if (OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_SKEY)
			skey = OSSL_STORE_INFO_get1_SKEY(info);
		OSSL_STORE_INFO_free(info);
	}
	OSSL_STORE_close(st);
	return skey;
}

static void check_store_skey(OSSL_LIB_CTX *kmstore_first, const char *dir,
			     const char *uri, const unsigned char *key, size_t len)
{
	OSSL_LIB_CTX *default_first = OSSL_LIB_CTX_new();
	OSSL_PROVIDER *d, *k;
	EVP_SKEY *a, *b, *moved = NULL;

	OSSL_PROVIDER_set_default_search_path(default_first, dir);
	d = OSSL_PROVIDER_load(default_first, "default");
	k = OSSL_PROVIDER_load(default_first, "kmstore");

	b = store_skey(default_first, uri);
	check(b != NULL && strcmp(EVP_SKEY_get0_provider_name(b), "default") == 0 &&
	      same_bytes(b, key, len),
	      "OSSL_STORE EVP_SKEY, default provider first: default's, the key's bytes");
	if (b != NULL)
		check_cipher(default_first, b, key);

	/* Which provider's key manager a fetch without properties finds first
	 * is OpenSSL's choice: with kmstore loaded first it is often kmstore's. */
	a = store_skey(kmstore_first, uri);
	printf("# OSSL_STORE EVP_SKEY with kmstore loaded first: held by %s\n",
	       a != NULL ? EVP_SKEY_get0_provider_name(a) : "(none)");
	check(a != NULL && same_bytes(a, key, len),
	      "OSSL_STORE EVP_SKEY, kmstore first: the key's bytes");
	if (a != NULL)
		moved = EVP_SKEY_to_provider(a, kmstore_first, NULL, "provider=default");
	check(moved != NULL && same_bytes(moved, key, len),
	      "... moved to the default provider: same bytes");
	EVP_SKEY_free(moved);
	EVP_SKEY_free(a);
	EVP_SKEY_free(b);
	OSSL_PROVIDER_unload(k);
	OSSL_PROVIDER_unload(d);
	OSSL_LIB_CTX_free(default_first);
}
#endif

static void check_bad_uri(OSSL_LIB_CTX *libctx, const char *uri)
{
	OSSL_PARAM params[2];
	EVP_SKEY *skey = EVP_SKEY_generate(libctx, SKEY_TYPE, PROPQ,
					   uri_params(params, uri));
	char msg[512] = "";
	const char *data = NULL;
	unsigned long e = ERR_peek_last_error_data(&data, NULL);

	if (data != NULL)
		snprintf(msg, sizeof(msg), "%s", data);
	printf("# %s: %s\n", uri, msg);
	check(skey == NULL && e != 0 && strstr(msg, "no such profile") != NULL,
	      "unknown profile: a readable error");
	EVP_SKEY_free(skey);
}

int main(int argc, char **argv)
{
	unsigned char key[1024];
	size_t len;
	OSSL_LIB_CTX *libctx;
	OSSL_PROVIDER *kmstore, *deflt;
	OSSL_PARAM params[2];
	EVP_SKEY *now = NULL, *byid = NULL, *moved = NULL;

	if (argc != 7) {
		fprintf(stderr, "usage: %s PROVIDER_DIR URI_NOW URI_BY_ID KEYFILE KEY_ID BAD_URI\n",
			argv[0]);
		return 2;
	}
	len = read_file(argv[4], key, sizeof(key));
	libctx = OSSL_LIB_CTX_new();
	OSSL_PROVIDER_set_default_search_path(libctx, argv[1]);
	kmstore = OSSL_PROVIDER_load(libctx, "kmstore");
	deflt = OSSL_PROVIDER_load(libctx, "default");
	check(kmstore != NULL && deflt != NULL && len > 0, "providers and key file");

	now = EVP_SKEY_generate(libctx, SKEY_TYPE, PROPQ, uri_params(params, argv[2]));
	check(now != NULL, "EVP_SKEY_generate with kmstore-uri (a key for use now)");
	if (now != NULL)
		check_key(now, "generate", argv[5], key, len);
	byid = EVP_SKEY_import(libctx, SKEY_TYPE, PROPQ, OSSL_SKEYMGMT_SELECT_ALL,
			       uri_params(params, argv[3]));
	check(byid != NULL, "EVP_SKEY_import with kmstore-uri (that key)");
	if (byid != NULL) {
		check_key(byid, "import", argv[5], key, len);
		moved = EVP_SKEY_to_provider(byid, libctx, deflt, NULL);
		check(moved != NULL && strcmp(EVP_SKEY_get0_provider_name(moved),
					      "default") == 0 &&
		      same_bytes(moved, key, len),
		      "EVP_SKEY_to_provider(default): same bytes");
		if (moved != NULL)
			check_cipher(libctx, moved, key);
	}
#ifdef OSSL_STORE_INFO_SKEY
	check_store_skey(libctx, argv[1], argv[2], key, len);
#else
	puts("# this OpenSSL has no EVP_SKEY in OSSL_STORE (4.0 has)");
#endif
	check_bad_uri(libctx, argv[6]);

	EVP_SKEY_free(moved);
	EVP_SKEY_free(byid);
	EVP_SKEY_free(now);
	OSSL_PROVIDER_unload(deflt);
	OSSL_PROVIDER_unload(kmstore);
	OSSL_LIB_CTX_free(libctx);
	OPENSSL_cleanse(key, sizeof(key));
	return failures == 0 ? 0 : 1;
}
#endif
