/*
 * keymgmt.c - the "HMAC" key manager that holds kmstore keys.
 *
 * It is named HMAC because OpenSSL 3.0's EVP_DigestSign only moves a key to
 * the provider of the HMAC signature through a key manager of the same
 * name; export() hands the bytes over then, and for
 * EVP_PKEY_get_raw_private_key. The store passes keys by reference to
 * load(). Since any provider-unaware "HMAC" fetch may land here, it is also
 * a complete HMAC key manager: keys imported or generated from raw bytes.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/params.h>

#include "provider.h"

static void *km_new(void *provctx)
{
	(void)provctx;
	return kmsp_key_new();
}

static void km_free(void *keydata)
{
	kmsp_key_free(keydata);
}

static void *km_dup(const void *keydata, int selection)
{
	(void)selection; /* a symmetric key is all or nothing */
	return kmsp_key_dup(keydata);
}

/* The store's reference is the address of a key; we take it over. */
static void *km_load(const void *reference, size_t reference_sz)
{
	kmsp_key *k;

	if (reference == NULL || reference_sz != sizeof(k))
		return NULL;
	memcpy(&k, reference, sizeof(k));
	if (!kmsp_key_is_valid(k))
		return NULL;
	memset((void *)reference, 0, sizeof(k));
	return k;
}

static int km_has(const void *keydata, int selection)
{
	if (keydata == NULL)
		return 0;
	/* No domain parameters, no public half: only the secret counts. */
	if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0)
		return kmsp_key_has_secret(keydata);
	return 1;
}

static int km_match(const void *a, const void *b, int selection)
{
	if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) == 0)
		return 1;
	return kmsp_key_equal(a, b);
}

static int import_priv(kmsp_key *k, const OSSL_PARAM params[])
{
	const OSSL_PARAM *p = OSSL_PARAM_locate_const(params, OSSL_PKEY_PARAM_PRIV_KEY);

	if (p == NULL || p->data_type != OSSL_PARAM_OCTET_STRING)
		return 0;
	return kmsp_key_set_bytes(k, p->data, p->data_size);
}

static int km_import(void *keydata, int selection, const OSSL_PARAM params[])
{
	if (keydata == NULL || (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) == 0)
		return 0;
	return import_priv(keydata, params);
}

static const OSSL_PARAM key_types[] = {
	OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PRIV_KEY, NULL, 0),
	OSSL_PARAM_END
};

static const OSSL_PARAM *km_imexport_types(int selection)
{
	return (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0 ? key_types : NULL;
}

/* The bytes go straight from locked memory to the callback, which copies
 * them (into the HMAC implementation's key, or the caller's buffer). */
static int km_export(void *keydata, int selection, OSSL_CALLBACK *cb, void *cbarg)
{
	const kmsp_key *k = keydata;
	OSSL_PARAM params[2];

	if (k == NULL || (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) == 0 ||
	    !kmsp_key_has_secret(k))
		return 0;
	params[0] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PRIV_KEY,
						      (void *)kmsp_key_bytes(k),
						      kmsp_key_size(k));
	params[1] = OSSL_PARAM_construct_end();
	return cb(params, cbarg);
}

static int set_utf8(OSSL_PARAM params[], const char *name, const char *value)
{
	OSSL_PARAM *p = OSSL_PARAM_locate(params, name);

	if (p == NULL)
		return 1;
	if (value == NULL)
		return 0; /* an imported key has no profile or key ID */
	return OSSL_PARAM_set_utf8_string(p, value);
}

static int km_get_params(void *keydata, OSSL_PARAM params[])
{
	const kmsp_key *k = keydata;
	int bits = (int)(8 * kmsp_key_size(k));
	OSSL_PARAM *p;

	if ((p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_BITS)) != NULL &&
	    !OSSL_PARAM_set_int(p, bits))
		return 0;
	if ((p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_SECURITY_BITS)) != NULL &&
	    !OSSL_PARAM_set_int(p, bits < 256 ? bits : 256))
		return 0;
	/* The core asks for bits when it makes every EVP_PKEY: compute the
	 * check value (an HMAC) only for a caller that wants it. */
	if (OSSL_PARAM_locate(params, KMSP_PARAM_CHECK_VALUE) != NULL &&
	    !set_utf8(params, KMSP_PARAM_CHECK_VALUE, kmsp_key_check_value(k)))
		return 0;
	return set_utf8(params, KMSP_PARAM_KEY_ID, kmsp_key_id(k)) &&
	       set_utf8(params, KMSP_PARAM_PROFILE, kmsp_key_profile(k)) &&
	       set_utf8(params, KMSP_PARAM_SOURCE, kmsp_key_source(k));
}

static const OSSL_PARAM *km_gettable_params(void *provctx)
{
	static const OSSL_PARAM params[] = {
		OSSL_PARAM_int(OSSL_PKEY_PARAM_BITS, NULL),
		OSSL_PARAM_int(OSSL_PKEY_PARAM_SECURITY_BITS, NULL),
		OSSL_PARAM_utf8_string(KMSP_PARAM_KEY_ID, NULL, 0),
		OSSL_PARAM_utf8_string(KMSP_PARAM_PROFILE, NULL, 0),
		OSSL_PARAM_utf8_string(KMSP_PARAM_CHECK_VALUE, NULL, 0),
		OSSL_PARAM_utf8_string(KMSP_PARAM_SOURCE, NULL, 0),
		OSSL_PARAM_END
	};

	(void)provctx;
	return params;
}

/* Generation, as the default HMAC key manager has it: the caller supplies
 * the key ("priv"). Keys from the store come through the store instead. */
static void *km_gen_init(void *provctx, int selection, const OSSL_PARAM params[])
{
	kmsp_key *k;

	(void)provctx;
	if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) == 0)
		return NULL;
	k = kmsp_key_new();
	if (k != NULL && params != NULL &&
	    OSSL_PARAM_locate_const(params, OSSL_PKEY_PARAM_PRIV_KEY) != NULL &&
	    !import_priv(k, params)) {
		kmsp_key_free(k);
		return NULL;
	}
	return k;
}

static int km_gen_set_params(void *genctx, const OSSL_PARAM params[])
{
	if (OSSL_PARAM_locate_const(params, OSSL_PKEY_PARAM_PRIV_KEY) == NULL)
		return 1;
	return import_priv(genctx, params);
}

static const OSSL_PARAM *km_gen_settable_params(void *genctx, void *provctx)
{
	(void)genctx;
	(void)provctx;
	return key_types;
}

static void *km_gen(void *genctx, OSSL_CALLBACK *cb, void *cbarg)
{
	(void)cb;
	(void)cbarg;
	if (genctx == NULL || !kmsp_key_has_secret(genctx))
		return NULL;
	return kmsp_key_dup(genctx);
}

static void km_gen_cleanup(void *genctx)
{
	kmsp_key_free(genctx);
}

const OSSL_DISPATCH kmsp_keymgmt_functions[] = {
	{ OSSL_FUNC_KEYMGMT_NEW, (void (*)(void))km_new },
	{ OSSL_FUNC_KEYMGMT_FREE, (void (*)(void))km_free },
	{ OSSL_FUNC_KEYMGMT_DUP, (void (*)(void))km_dup },
	{ OSSL_FUNC_KEYMGMT_LOAD, (void (*)(void))km_load },
	{ OSSL_FUNC_KEYMGMT_HAS, (void (*)(void))km_has },
	{ OSSL_FUNC_KEYMGMT_MATCH, (void (*)(void))km_match },
	{ OSSL_FUNC_KEYMGMT_IMPORT, (void (*)(void))km_import },
	{ OSSL_FUNC_KEYMGMT_IMPORT_TYPES, (void (*)(void))km_imexport_types },
	{ OSSL_FUNC_KEYMGMT_EXPORT, (void (*)(void))km_export },
	{ OSSL_FUNC_KEYMGMT_EXPORT_TYPES, (void (*)(void))km_imexport_types },
	{ OSSL_FUNC_KEYMGMT_GET_PARAMS, (void (*)(void))km_get_params },
	{ OSSL_FUNC_KEYMGMT_GETTABLE_PARAMS, (void (*)(void))km_gettable_params },
	{ OSSL_FUNC_KEYMGMT_GEN_INIT, (void (*)(void))km_gen_init },
	{ OSSL_FUNC_KEYMGMT_GEN_SET_PARAMS, (void (*)(void))km_gen_set_params },
	{ OSSL_FUNC_KEYMGMT_GEN_SETTABLE_PARAMS,
	  (void (*)(void))km_gen_settable_params },
	{ OSSL_FUNC_KEYMGMT_GEN, (void (*)(void))km_gen },
	{ OSSL_FUNC_KEYMGMT_GEN_CLEANUP, (void (*)(void))km_gen_cleanup },
	{ 0, NULL }
};
