/*
 * test_search.c - a search the loader cannot honour: OSSL_STORE_find with
 * each kind of OSSL_STORE_SEARCH on a kmstore: URI. The loader supports
 * none, so each must fail with an error naming the search, and a load
 * after it (an application that ignored the failure) must return nothing:
 * a key for use now would consume a QKD key at the KME for a search that
 * matched nothing.
 *
 * usage: test_search PROVIDER_DIR URI
 * Prints TAP lines (check.h); the shell test counts the KME's requests.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/provider.h>
#include <openssl/store.h>
#include <openssl/x509.h>

#include "check.h"

static void try_search(OSSL_LIB_CTX *libctx, const char *uri,
		       OSSL_STORE_SEARCH *search, const char *what)
{
	OSSL_STORE_CTX *st = OSSL_STORE_open_ex(uri, libctx, NULL, NULL, NULL,
						 NULL, NULL, NULL);
	int type = OSSL_STORE_SEARCH_get_type(search);
	OSSL_STORE_INFO *info;
	char desc[160], named[80];
	int found, named_it;

	snprintf(desc, sizeof(desc), "search by %s: store opens", what);
	check(st != NULL, desc);
	if (st == NULL) {
		OSSL_STORE_SEARCH_free(search);
		return;
	}
	snprintf(desc, sizeof(desc), "search by %s: not announced as supported", what);
	check(!OSSL_STORE_supports_search(st, type), desc);
	found = OSSL_STORE_find(st, search);
	snprintf(named, sizeof(named), "search by %s", what);
	named_it = error_names(named);
	snprintf(desc, sizeof(desc), "search by %s: OSSL_STORE_find fails", what);
	check(found == 0, desc);
	snprintf(desc, sizeof(desc), "search by %s: the error names it", what);
	check(named_it, desc);
	/* An application that went on regardless: nothing is loaded. */
	info = OSSL_STORE_load(st);
	snprintf(desc, sizeof(desc), "search by %s: a load after it returns nothing", what);
	check(info == NULL, desc);
	OSSL_STORE_INFO_free(info);
	snprintf(desc, sizeof(desc), "search by %s: end of data", what);
	check(OSSL_STORE_eof(st), desc);
	OSSL_STORE_close(st);
	OSSL_STORE_SEARCH_free(search);
}

int main(int argc, char **argv)
{
	static const unsigned char fp[32];
	OSSL_LIB_CTX *libctx;
	OSSL_PROVIDER *kms = NULL, *dflt = NULL;
	X509_NAME *name = X509_NAME_new();
	ASN1_INTEGER *serial = ASN1_INTEGER_new();

	if (argc != 3) {
		fprintf(stderr, "usage: %s PROVIDER_DIR URI\n", argv[0]);
		return 2;
	}
	libctx = OSSL_LIB_CTX_new();
	if (libctx != NULL && OSSL_PROVIDER_set_default_search_path(libctx, argv[1])) {
		kms = OSSL_PROVIDER_load(libctx, "kmstore");
		dflt = OSSL_PROVIDER_load(libctx, "default");
	}
	check(kms != NULL && dflt != NULL, "providers loaded");
	check(name != NULL && serial != NULL &&
	      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
					 (const unsigned char *)"some-other-key",
					 -1, -1, 0) &&
	      ASN1_INTEGER_set(serial, 1),
	      "search criteria made");
	if (failures == 0) {
		try_search(libctx, argv[2],
			   OSSL_STORE_SEARCH_by_alias("some-other-key"), "alias");
		try_search(libctx, argv[2], OSSL_STORE_SEARCH_by_name(name),
			   "subject");
		try_search(libctx, argv[2],
			   OSSL_STORE_SEARCH_by_issuer_serial(name, serial),
			   "issuer and serial");
		try_search(libctx, argv[2],
			   OSSL_STORE_SEARCH_by_key_fingerprint(EVP_sha256(), fp,
								sizeof(fp)),
			   "key fingerprint");
	}
	ASN1_INTEGER_free(serial);
	X509_NAME_free(name);
	OSSL_PROVIDER_unload(dflt);
	OSSL_PROVIDER_unload(kms);
	OSSL_LIB_CTX_free(libctx);
	return failures == 0 ? 0 : 1;
}
