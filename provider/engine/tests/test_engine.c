/*
 * test_engine.c - a legacy application: loads a key through the kmstore
 * ENGINE (ENGINE_load_private_key) and computes HMAC-SHA256 with it.
 *
 * usage: test_engine CONFIG KEY MESSAGE [KEYFILE]
 *   KEY      kmstore:profile=P[;key-id=K] or P[:K]
 *   KEYFILE  raw key to compare EVP_PKEY_get_raw_private_key with
 * The engine is found through $OPENSSL_ENGINES. Prints raw=match and
 * digestsign=HEX; exit 1 on failure with the error queue on stderr.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/engine.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "proc.h"

static int check_raw(EVP_PKEY *pkey, const char *keyfile)
{
	unsigned char raw[1024], expected[1024];
	size_t rawlen = sizeof(raw), explen = read_file(keyfile, expected, sizeof(expected));
	int same;

	if (!EVP_PKEY_get_raw_private_key(pkey, raw, &rawlen))
		return 0;
	same = rawlen == explen && CRYPTO_memcmp(raw, expected, rawlen) == 0;
	printf("raw=%s\n", same ? "match" : "mismatch");
	OPENSSL_cleanse(raw, sizeof(raw));
	OPENSSL_cleanse(expected, sizeof(expected));
	return same;
}

static int hmac(EVP_PKEY *pkey, const char *msg)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char sig[EVP_MAX_MD_SIZE];
	size_t siglen = sizeof(sig);
	int ok;

	ok = md != NULL && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, pkey) == 1 &&
	     EVP_DigestSignUpdate(md, msg, strlen(msg)) == 1 &&
	     EVP_DigestSignFinal(md, sig, &siglen) == 1;
	EVP_MD_CTX_free(md);
	if (!ok)
		return 0;
	printf("digestsign=");
	for (size_t i = 0; i < siglen; i++)
		printf("%02x", sig[i]);
	printf("\n");
	return 1;
}

int main(int argc, char **argv)
{
	ENGINE *e;
	EVP_PKEY *pkey = NULL;
	int ok = 0, initialised = 0;

	if (argc != 4 && argc != 5) {
		fprintf(stderr, "usage: %s CONFIG KEY MESSAGE [KEYFILE]\n", argv[0]);
		return 2;
	}
	e = ENGINE_by_id("kmstore");
	initialised = e != NULL && ENGINE_init(e);
	if (!initialised) {
		fprintf(stderr, "test_engine: cannot load the kmstore engine\n");
	} else if (!ENGINE_ctrl_cmd_string(e, "CONFIG", argv[1], 0)) {
		fprintf(stderr, "test_engine: CONFIG command refused\n");
	} else if ((pkey = ENGINE_load_private_key(e, argv[2], NULL, NULL)) == NULL) {
		fprintf(stderr, "test_engine: cannot load key %s\n", argv[2]);
	} else {
		printf("type=%s\n", EVP_PKEY_is_a(pkey, "HMAC") ? "HMAC" : "other");
		ok = (argc < 5 || check_raw(pkey, argv[4])) && hmac(pkey, argv[3]);
	}
	ERR_print_errors_fp(stderr);
	EVP_PKEY_free(pkey);
	if (initialised)
		ENGINE_finish(e);
	ENGINE_free(e);
	return ok ? 0 : 1;
}
