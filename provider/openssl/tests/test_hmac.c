/*
 * test_hmac.c - what an application does with a kmstore key: load it
 * through OSSL_STORE, read its key ID, get the raw bytes, and compute
 * HMAC-SHA256 with it through EVP_DigestSign and EVP_MAC.
 *
 * usage: test_hmac PROVIDER_DIR ORDER URI KEYFILE MESSAGE
 *   ORDER    kmstore-first | default-first (which provider loads first)
 *   URI      a kmstore: URI, or "raw": an ordinary HMAC key made from
 *            KEYFILE's bytes (EVP_PKEY_new_raw_private_key_ex), which must
 *            keep working when kmstore's HMAC key manager is fetched
 *   KEYFILE  the raw key, to compare EVP_PKEY_get_raw_private_key with
 * Prints key-id=, raw=match, digestsign=HEX and mac=HEX; the shell test
 * compares the HMACs with `openssl dgst -mac HMAC`. Exit 1 on any failure,
 * with OpenSSL's error queue on stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/provider.h>
#include <openssl/store.h>

#include "proc.h"

#define MAX_KEY 1024

static int fail(const char *what)
{
	fprintf(stderr, "test_hmac: %s failed\n", what);
	ERR_print_errors_fp(stderr);
	return 0;
}

static void print_hex(const char *label, const unsigned char *buf, size_t len)
{
	printf("%s=", label);
	for (size_t i = 0; i < len; i++)
		printf("%02x", buf[i]);
	printf("\n");
}

static EVP_PKEY *load_key(OSSL_LIB_CTX *libctx, const char *uri)
{
	OSSL_STORE_CTX *store;
	EVP_PKEY *pkey = NULL;

	store = OSSL_STORE_open_ex(uri, libctx, NULL, NULL, NULL, NULL, NULL, NULL);
	if (store == NULL)
		return NULL;
	while (pkey == NULL && !OSSL_STORE_eof(store)) {
		OSSL_STORE_INFO *info = OSSL_STORE_load(store);

		if (info != NULL && OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_PKEY)
			pkey = OSSL_STORE_INFO_get1_PKEY(info);
		OSSL_STORE_INFO_free(info);
		if (info == NULL && OSSL_STORE_error(store))
			break;
	}
	OSSL_STORE_close(store);
	return pkey;
}

static int digest_sign(OSSL_LIB_CTX *libctx, EVP_PKEY *pkey, const char *msg)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char sig[EVP_MAX_MD_SIZE];
	size_t siglen = sizeof(sig);
	int ok;

	ok = md != NULL &&
	     EVP_DigestSignInit_ex(md, NULL, "SHA256", libctx, NULL, pkey, NULL) == 1 &&
	     EVP_DigestSignUpdate(md, msg, strlen(msg)) == 1 &&
	     EVP_DigestSignFinal(md, sig, &siglen) == 1;
	EVP_MD_CTX_free(md);
	if (!ok)
		return fail("EVP_DigestSign with HMAC-SHA256");
	print_hex("digestsign", sig, siglen);
	return 1;
}

static int mac(OSSL_LIB_CTX *libctx, const unsigned char *key, size_t keylen,
	       const char *msg)
{
	EVP_MAC *m = EVP_MAC_fetch(libctx, "HMAC", NULL);
	EVP_MAC_CTX *ctx = m != NULL ? EVP_MAC_CTX_new(m) : NULL;
	unsigned char out[EVP_MAX_MD_SIZE];
	size_t outlen = 0;
	OSSL_PARAM params[] = {
		OSSL_PARAM_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
		OSSL_PARAM_END
	};
	int ok;

	ok = ctx != NULL && EVP_MAC_init(ctx, key, keylen, params) == 1 &&
	     EVP_MAC_update(ctx, (const unsigned char *)msg, strlen(msg)) == 1 &&
	     EVP_MAC_final(ctx, out, &outlen, sizeof(out)) == 1;
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(m);
	if (!ok)
		return fail("EVP_MAC HMAC-SHA256");
	print_hex("mac", out, outlen);
	return 1;
}

static EVP_PKEY *raw_key(OSSL_LIB_CTX *libctx, const char *keyfile)
{
	unsigned char key[MAX_KEY];
	size_t len = read_file(keyfile, key, sizeof(key));
	EVP_PKEY *pkey = EVP_PKEY_new_raw_private_key_ex(libctx, "HMAC", NULL, key, len);

	OPENSSL_cleanse(key, sizeof(key));
	return pkey;
}

static int use_key(OSSL_LIB_CTX *libctx, EVP_PKEY *pkey, int from_store,
		   const char *keyfile, const char *msg)
{
	unsigned char raw[MAX_KEY], expected[MAX_KEY];
	size_t rawlen = sizeof(raw), explen;
	char id[128];
	size_t idlen = 0;
	int ok = 1;

	if (EVP_PKEY_get_utf8_string_param(pkey, "kmstore-key-id", id, sizeof(id),
					   &idlen))
		printf("key-id=%s\n", id);
	else if (from_store)
		ok = fail("the kmstore-key-id parameter");
	printf("type=%s bits=%d\n", EVP_PKEY_get0_type_name(pkey), EVP_PKEY_get_bits(pkey));
	if (EVP_PKEY_get0_provider(pkey) != NULL)
		printf("provider=%s\n", OSSL_PROVIDER_get0_name(EVP_PKEY_get0_provider(pkey)));
	explen = read_file(keyfile, expected, sizeof(expected));
	if (!EVP_PKEY_get_raw_private_key(pkey, raw, &rawlen)) {
		ok = fail("EVP_PKEY_get_raw_private_key");
		rawlen = 0;
	} else {
		printf("raw=%s\n", rawlen == explen && explen > 0 &&
			       CRYPTO_memcmp(raw, expected, rawlen) == 0 ?
			       "match" : "mismatch");
	}
	ok &= digest_sign(libctx, pkey, msg);
	if (rawlen > 0)
		ok &= mac(libctx, raw, rawlen, msg);
	OPENSSL_cleanse(raw, sizeof(raw));
	OPENSSL_cleanse(expected, sizeof(expected));
	return ok;
}

int main(int argc, char **argv)
{
	OSSL_LIB_CTX *libctx;
	OSSL_PROVIDER *first = NULL, *second = NULL;
	EVP_PKEY *pkey = NULL;
	int kmstore_first, from_store, ok = 0;

	if (argc != 6) {
		fprintf(stderr, "usage: %s PROVIDER_DIR kmstore-first|default-first "
				"URI KEYFILE MESSAGE\n", argv[0]);
		return 2;
	}
	kmstore_first = strcmp(argv[2], "kmstore-first") == 0;
	from_store = strcmp(argv[3], "raw") != 0;
	libctx = OSSL_LIB_CTX_new();
	if (libctx == NULL || !OSSL_PROVIDER_set_default_search_path(libctx, argv[1])) {
		fail("library context");
		return 1;
	}
	first = OSSL_PROVIDER_load(libctx, kmstore_first ? "kmstore" : "default");
	second = OSSL_PROVIDER_load(libctx, kmstore_first ? "default" : "kmstore");
	if (first == NULL || second == NULL) {
		fail("loading the providers");
	} else if (from_store && (pkey = load_key(libctx, argv[3])) == NULL) {
		fail("loading the key");
	} else if (!from_store && (pkey = raw_key(libctx, argv[4])) == NULL) {
		fail("EVP_PKEY_new_raw_private_key_ex");
	} else {
		ok = use_key(libctx, pkey, from_store, argv[4], argv[5]);
	}
	EVP_PKEY_free(pkey);
	OSSL_PROVIDER_unload(second);
	OSSL_PROVIDER_unload(first);
	OSSL_LIB_CTX_free(libctx);
	return ok ? 0 : 1;
}
