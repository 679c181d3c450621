/*
 * test_check_value.c - a check value asked for before the default provider
 * is loaded. libkmstore computes it (HMAC-SHA256) in libcrypto's default
 * library context, which here has only the kmstore provider at first: the
 * kmstore-check-value parameter must then fail with an error naming the
 * cause, not give a value-shaped string; once "default" is loaded, the
 * same key and a key loaded afterwards must give the real value.
 *
 * usage: test_check_value PROVIDER_DIR URI EXPECTED_CHECK_VALUE
 * Prints TAP lines (check.h).
 */
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/provider.h>
#include <openssl/store.h>

#include "check.h"

static EVP_PKEY *load_key(const char *uri)
{
	OSSL_STORE_CTX *st = OSSL_STORE_open(uri, NULL, NULL, NULL, NULL);
	OSSL_STORE_INFO *info = st != NULL ? OSSL_STORE_load(st) : NULL;
	EVP_PKEY *pkey = info != NULL ? OSSL_STORE_INFO_get1_PKEY(info) : NULL;

	OSSL_STORE_INFO_free(info);
	OSSL_STORE_close(st);
	return pkey;
}

/* The parameter, or "" with the error queue kept when it fails. */
static int check_value(EVP_PKEY *pkey, char *buf, size_t size)
{
	buf[0] = '\0';
	return EVP_PKEY_get_utf8_string_param(pkey, "kmstore-check-value", buf,
					      size, NULL);
}

static void without_default(EVP_PKEY *pkey, const char *when)
{
	char kcv[64], desc[160];
	int got = check_value(pkey, kcv, sizeof(kcv));
	int named = error_names("HMAC-SHA256 is not available");

	if (got)
		printf("# %s: kmstore-check-value gave '%s'\n", when, kcv);
	snprintf(desc, sizeof(desc), "%s: kmstore-check-value fails", when);
	check(!got, desc);
	snprintf(desc, sizeof(desc), "%s: the error names HMAC-SHA256 as the cause", when);
	check(named, desc);
}

static void with_default(EVP_PKEY *pkey, const char *want, const char *when)
{
	char kcv[64], desc[160];
	int got = check_value(pkey, kcv, sizeof(kcv));

	printf("# %s: kmstore-check-value '%s'\n", when, kcv);
	snprintf(desc, sizeof(desc), "%s: the real check value", when);
	check(got && strcmp(kcv, want) == 0, desc);
}

int main(int argc, char **argv)
{
	OSSL_PROVIDER *kms = NULL, *dflt = NULL;
	EVP_PKEY *before = NULL, *after = NULL;

	if (argc != 4) {
		fprintf(stderr, "usage: %s PROVIDER_DIR URI EXPECTED_CHECK_VALUE\n",
			argv[0]);
		return 2;
	}
	/* Loading a provider explicitly keeps "default" from loading itself. */
	if (OSSL_PROVIDER_set_default_search_path(NULL, argv[1]))
		kms = OSSL_PROVIDER_load(NULL, "kmstore");
	check(kms != NULL, "kmstore provider loaded, default not");
	check(kms != NULL && !OSSL_PROVIDER_available(NULL, "default"),
	      "default provider not available");
	before = load_key(argv[2]);
	check(before != NULL, "key loaded without the default provider");
	if (before != NULL) {
		without_default(before, "no default provider");
		without_default(before, "no default provider, asked again");
	}
	dflt = OSSL_PROVIDER_load(NULL, "default");
	check(dflt != NULL, "default provider loaded");
	if (before != NULL && dflt != NULL)
		with_default(before, argv[3], "the same key, default loaded since");
	after = dflt != NULL ? load_key(argv[2]) : NULL;
	check(after != NULL, "key loaded with the default provider");
	if (after != NULL)
		with_default(after, argv[3], "a key loaded afterwards");
	EVP_PKEY_free(after);
	EVP_PKEY_free(before);
	OSSL_PROVIDER_unload(dflt);
	OSSL_PROVIDER_unload(kms);
	return failures == 0 ? 0 : 1;
}
