/*
 * skeymgmt.c - kmstore keys as opaque symmetric keys (EVP_SKEY), where
 * OpenSSL has them (SKEYMGMT, 3.5 and later; compiled by feature test).
 *
 * Named GENERIC-SECRET like the default provider's, so a key can move
 * there with EVP_SKEY_to_provider; applications select this one with the
 * property query "provider=kmstore":
 *
 *   EVP_SKEY_generate(libctx, "GENERIC-SECRET", "provider=kmstore",
 *                     { "kmstore-uri": "kmstore:profile=P" })   a key for use now
 *   EVP_SKEY_import(..., { "kmstore-uri": "kmstore:profile=P;key-id=K" })
 *   EVP_SKEY_get0_key_id()   the key ID (the IKE PPK_ID)
 *
 * and on the command line: openssl skeyutl -skeymgmt GENERIC-SECRET
 *   -propquery provider=kmstore -skeyopt kmstore-uri:URI -genkey
 */
#include <openssl/core_dispatch.h>

#ifdef OSSL_OP_SKEYMGMT

#include <openssl/core_names.h>
#include <openssl/params.h>

#include "provider.h"

static void skm_free(void *keydata)
{
	kmsp_key_free(keydata);
}

static kmsp_key *from_uri_param(void *provctx, const OSSL_PARAM params[])
{
	const OSSL_PARAM *p = OSSL_PARAM_locate_const(params, KMSP_PARAM_URI);
	const char *uri = NULL;

	if (p == NULL)
		return NULL;
	if (!OSSL_PARAM_get_utf8_string_ptr(p, &uri)) {
		KMSP_RAISE(provctx, KMS_ERR_USAGE, "%s must be a string", KMSP_PARAM_URI);
		return NULL;
	}
	return kmsp_key_from_uri(provctx, uri);
}

/* From the store (kmstore-uri), or raw bytes moved here from elsewhere. */
static void *skm_import(void *provctx, int selection, const OSSL_PARAM params[])
{
	const OSSL_PARAM *raw;
	kmsp_key *k;

	if ((selection & OSSL_SKEYMGMT_SELECT_SECRET_KEY) == 0)
		return NULL;
	if (OSSL_PARAM_locate_const(params, KMSP_PARAM_URI) != NULL)
		return from_uri_param(provctx, params);
	raw = OSSL_PARAM_locate_const(params, OSSL_SKEY_PARAM_RAW_BYTES);
	if (raw == NULL || raw->data_type != OSSL_PARAM_OCTET_STRING)
		return NULL;
	k = kmsp_key_new();
	if (k == NULL || !kmsp_key_set_bytes(k, raw->data, raw->data_size)) {
		kmsp_key_free(k);
		return NULL;
	}
	return k;
}

/* "Generating" a key is asking the profile for a key for use now. */
static void *skm_generate(void *provctx, const OSSL_PARAM params[])
{
	if (OSSL_PARAM_locate_const(params, KMSP_PARAM_URI) == NULL) {
		KMSP_RAISE(provctx, KMS_ERR_USAGE,
			   "a kmstore key needs the %s parameter (kmstore:profile=NAME)",
			   KMSP_PARAM_URI);
		return NULL;
	}
	return from_uri_param(provctx, params);
}

static int skm_export(void *keydata, int selection, OSSL_CALLBACK *cb, void *cbarg)
{
	const kmsp_key *k = keydata;
	OSSL_PARAM params[2];

	if (k == NULL || (selection & OSSL_SKEYMGMT_SELECT_SECRET_KEY) == 0 ||
	    !kmsp_key_has_secret(k))
		return 0;
	params[0] = OSSL_PARAM_construct_octet_string(OSSL_SKEY_PARAM_RAW_BYTES,
						      (void *)kmsp_key_bytes(k),
						      kmsp_key_size(k));
	params[1] = OSSL_PARAM_construct_end();
	return cb(params, cbarg);
}

static const char *skm_get_key_id(void *keydata)
{
	return kmsp_key_id(keydata);
}

static const OSSL_PARAM *skm_imp_settable_params(void *provctx)
{
	static const OSSL_PARAM params[] = {
		OSSL_PARAM_utf8_string(KMSP_PARAM_URI, NULL, 0),
		OSSL_PARAM_octet_string(OSSL_SKEY_PARAM_RAW_BYTES, NULL, 0),
		OSSL_PARAM_END
	};

	(void)provctx;
	return params;
}

static const OSSL_PARAM *skm_gen_settable_params(void *provctx)
{
	static const OSSL_PARAM params[] = {
		OSSL_PARAM_utf8_string(KMSP_PARAM_URI, NULL, 0),
		OSSL_PARAM_END
	};

	(void)provctx;
	return params;
}

const OSSL_DISPATCH kmsp_skeymgmt_functions[] = {
	{ OSSL_FUNC_SKEYMGMT_FREE, (void (*)(void))skm_free },
	{ OSSL_FUNC_SKEYMGMT_IMPORT, (void (*)(void))skm_import },
	{ OSSL_FUNC_SKEYMGMT_EXPORT, (void (*)(void))skm_export },
	{ OSSL_FUNC_SKEYMGMT_GENERATE, (void (*)(void))skm_generate },
	{ OSSL_FUNC_SKEYMGMT_GET_KEY_ID, (void (*)(void))skm_get_key_id },
	{ OSSL_FUNC_SKEYMGMT_IMP_SETTABLE_PARAMS,
	  (void (*)(void))skm_imp_settable_params },
	{ OSSL_FUNC_SKEYMGMT_GEN_SETTABLE_PARAMS,
	  (void (*)(void))skm_gen_settable_params },
	{ 0, NULL }
};

#else
/* No EVP_SKEY in this OpenSSL; keep the unit non-empty. */
typedef int kmsp_no_skeymgmt;
#endif /* OSSL_OP_SKEYMGMT */
