/*
 * encoder.c - the text encoder for kmstore keys (output=text).
 *
 * `openssl storeutl -text` and `openssl pkey -text -noout` print a key
 * through it: profile, key ID, bits, check value and source. The secret is
 * never printed; there is deliberately no PEM or DER encoder either.
 */
#include <openssl/core_names.h>
#include <openssl/core_object.h>
#include <openssl/params.h>

#include "provider.h"

static void *enc_newctx(void *provctx)
{
	return provctx; /* no state of its own */
}

static void enc_freectx(void *ctx)
{
	(void)ctx;
}

static int enc_does_selection(void *provctx, int selection)
{
	(void)provctx;
	(void)selection; /* the description is the same for any part */
	return 1;
}

/* A key of another provider's HMAC key manager arrives as parameters. */
static void *enc_import_object(void *ctx, int selection, const OSSL_PARAM params[])
{
	kmsp_key *k = kmsp_key_new();
	const OSSL_PARAM *p;

	(void)ctx;
	(void)selection;
	p = OSSL_PARAM_locate_const(params, OSSL_PKEY_PARAM_PRIV_KEY);
	if (k == NULL || p == NULL || p->data_type != OSSL_PARAM_OCTET_STRING ||
	    !kmsp_key_set_bytes(k, p->data, p->data_size)) {
		kmsp_key_free(k);
		return NULL;
	}
	return k;
}

static void enc_free_object(void *obj)
{
	kmsp_key_free(obj);
}

static int enc_encode(void *ctx, OSSL_CORE_BIO *out, const void *obj_raw,
		      const OSSL_PARAM obj_abstract[], int selection,
		      OSSL_PASSPHRASE_CALLBACK *cb, void *cbarg)
{
	kmsp_key *imported = NULL;
	int ok;

	(void)selection;
	(void)cb;
	(void)cbarg;
	if (obj_raw == NULL && obj_abstract != NULL)
		obj_raw = imported = enc_import_object(ctx, selection, obj_abstract);
	if (!kmsp_key_is_valid(obj_raw))
		return 0;
	ok = kmsp_key_print(out, obj_raw);
	kmsp_key_free(imported);
	return ok;
}

const OSSL_DISPATCH kmsp_text_encoder_functions[] = {
	{ OSSL_FUNC_ENCODER_NEWCTX, (void (*)(void))enc_newctx },
	{ OSSL_FUNC_ENCODER_FREECTX, (void (*)(void))enc_freectx },
	{ OSSL_FUNC_ENCODER_DOES_SELECTION, (void (*)(void))enc_does_selection },
	{ OSSL_FUNC_ENCODER_IMPORT_OBJECT, (void (*)(void))enc_import_object },
	{ OSSL_FUNC_ENCODER_FREE_OBJECT, (void (*)(void))enc_free_object },
	{ OSSL_FUNC_ENCODER_ENCODE, (void (*)(void))enc_encode },
	{ 0, NULL }
};
