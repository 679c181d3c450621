/*
 * store.c - the OSSL_STORE loader for kmstore: URIs.
 *
 *   kmstore:                       every profile, as NAME objects whose data
 *                                  is the loadable URI of the profile
 *   kmstore:profile=P              a key for use now (QKD: a new key)
 *   kmstore:profile=P;key-id=K     that key (QKD: dec_keys)
 *
 * A key is passed by reference to our own key manager (keymgmt.c), so the
 * secret never travels through the core. open() only keeps the URI: every
 * failure (bad URI, unreadable configuration, unknown profile, KME down) is
 * raised by the first load(), which then reports end of data; so
 * `openssl storeutl` prints the error and "Total found: 0" alike for all.
 * The store comes from the provider's cache (kms_store_cache): parsed once,
 * again when the file changes; an open keeps the store it started with
 * until it is closed, so a listing stays whole across a reload. There is
 * nothing to search (OSSL_STORE_find): the URI names the key.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/core_object.h>
#include <openssl/params.h>
#include <openssl/store.h>

#include "provider.h"

enum state { START, LISTING, DONE };

typedef struct store_ctx {
	const kmsp_provctx *pc;
	char *uri;
	int expect;         /* OSSL_STORE_INFO_* the caller wants; 0: any */
	enum state state;
	kms_store *store;   /* a reference, from the first load() to close() */
	size_t next;        /* next profile to list */
} store_ctx;

static void *store_open(void *provctx, const char *uri)
{
	store_ctx *ctx;

	if (!kms_uri_is_kmstore(uri))
		return NULL;
	ctx = calloc(1, sizeof(*ctx));
	if (ctx == NULL || (ctx->uri = strdup(uri)) == NULL) {
		free(ctx);
		KMSP_RAISE(provctx, KMS_ERR_SYSTEM, "out of memory");
		return NULL;
	}
	ctx->pc = provctx;
	ctx->state = START;
	return ctx;
}

static const OSSL_PARAM *store_settable_ctx_params(void *provctx)
{
	static const OSSL_PARAM params[] = {
		OSSL_PARAM_int(OSSL_STORE_PARAM_EXPECT, NULL),
		OSSL_PARAM_utf8_string(OSSL_STORE_PARAM_PROPERTIES, NULL, 0),
		OSSL_PARAM_END
	};

	(void)provctx;
	return params;
}

/* The search OSSL_STORE_find asked for, by the parameter that carries
 * it, or NULL for none. */
static const char *search_asked(const OSSL_PARAM params[])
{
	static const struct {
		const char *param, *search;
	} searches[] = {
		{ OSSL_STORE_PARAM_SUBJECT, "subject" },
		{ OSSL_STORE_PARAM_ISSUER, "issuer and serial" },
		{ OSSL_STORE_PARAM_SERIAL, "issuer and serial" },
		{ OSSL_STORE_PARAM_FINGERPRINT, "key fingerprint" },
		{ OSSL_STORE_PARAM_DIGEST, "key fingerprint" },
		{ OSSL_STORE_PARAM_ALIAS, "alias" },
	};

	for (size_t i = 0; i < sizeof(searches) / sizeof(searches[0]); i++)
		if (OSSL_PARAM_locate_const(params, searches[i].param) != NULL)
			return searches[i].search;
	return NULL;
}

static int store_set_ctx_params(void *vctx, const OSSL_PARAM params[])
{
	store_ctx *ctx = vctx;
	const char *search = search_asked(params);
	const OSSL_PARAM *p;

	/* A URI names one key, or the whole store; there is nothing to search.
	 * Ignoring the search would hand out what the URI names instead of
	 * what matches (nothing), and for a QKD profile consume a key at the
	 * KME: the open loads nothing more, even for a caller that goes on
	 * after the failed OSSL_STORE_find. */
	if (search != NULL) {
		ctx->state = DONE;
		KMSP_RAISE(ctx->pc, KMS_ERR_UNSUPPORTED,
			   "search by %s is not supported: a kmstore: URI names its "
			   "key (kmstore:profile=P;key-id=K); nothing is loaded",
			   search);
		return 0;
	}
	p = OSSL_PARAM_locate_const(params, OSSL_STORE_PARAM_EXPECT);
	if (p != NULL && !OSSL_PARAM_get_int(p, &ctx->expect))
		return 0;
	/* Properties would steer fetches; the loader makes none. */
	return 1;
}

/* A description of a profile for the listing: type, key size, origin. */
static void describe_profile(char *buf, size_t size, const kms_profile *p)
{
	const char *type = kms_profile_type(p);
	const char *url = kms_profile_setting(p, "url");
	const char *key_id = kms_profile_setting(p, "key-id");
	size_t bits = 8 * kms_profile_key_size(p);
	char size_text[32];

	if (bits > 0)
		snprintf(size_text, sizeof(size_text), "%zu bits", bits);
	else
		snprintf(size_text, sizeof(size_text), "key size unknown");
	if (url != NULL)
		snprintf(buf, size, "%s, %s, KME %s", type, size_text, url);
	else if (key_id != NULL)
		snprintf(buf, size, "%s, %s, key-id %s", type, size_text, key_id);
	else
		snprintf(buf, size, "%s, %s", type, size_text);
}

static int list_next(store_ctx *ctx, OSSL_CALLBACK *cb, void *cbarg)
{
	const kms_profile *p = kms_store_profile_at(ctx->store, ctx->next++);
	int type = OSSL_OBJECT_NAME;
	char desc[512], *uri;
	size_t len;
	int ok;
	OSSL_PARAM params[4];

	if (ctx->next >= kms_store_profile_count(ctx->store))
		ctx->state = DONE;
	len = kms_uri_format(NULL, 0, kms_profile_name(p), NULL);
	uri = malloc(len + 1);
	if (uri == NULL) {
		KMSP_RAISE(ctx->pc, KMS_ERR_SYSTEM, "out of memory");
		return 0;
	}
	kms_uri_format(uri, len + 1, kms_profile_name(p), NULL);
	describe_profile(desc, sizeof(desc), p);
	params[0] = OSSL_PARAM_construct_int(OSSL_OBJECT_PARAM_TYPE, &type);
	params[1] = OSSL_PARAM_construct_utf8_string(OSSL_OBJECT_PARAM_DATA, uri, 0);
	params[2] = OSSL_PARAM_construct_utf8_string(OSSL_OBJECT_PARAM_DESC, desc, 0);
	params[3] = OSSL_PARAM_construct_end();
	ok = cb(params, cbarg);
	free(uri);
	return ok;
}

/* Which object type to hand out a key as, or 0 if the caller wants none. */
static int key_object_type(const store_ctx *ctx)
{
	switch (ctx->expect) {
	case 0:
	case OSSL_STORE_INFO_PKEY:
		return OSSL_OBJECT_PKEY;
#if defined(OSSL_STORE_INFO_SKEY) && defined(OSSL_OBJECT_SKEY)
	case OSSL_STORE_INFO_SKEY:
		return OSSL_OBJECT_SKEY;
#endif
	}
	return 0;
}

static int pass_pkey(kmsp_key *key, OSSL_CALLBACK *cb, void *cbarg)
{
	int type = OSSL_OBJECT_PKEY;
	kmsp_key *ref = key; /* our key manager's load() takes it and NULLs it */
	OSSL_PARAM params[4];
	int ok;

	params[0] = OSSL_PARAM_construct_int(OSSL_OBJECT_PARAM_TYPE, &type);
	params[1] = OSSL_PARAM_construct_utf8_string(OSSL_OBJECT_PARAM_DATA_TYPE,
						     (char *)KMSP_PKEY_TYPE, 0);
	params[2] = OSSL_PARAM_construct_octet_string(OSSL_OBJECT_PARAM_REFERENCE,
						      &ref, sizeof(ref));
	params[3] = OSSL_PARAM_construct_end();
	ok = cb(params, cbarg);
	kmsp_key_free(ref);
	return ok;
}

#if defined(OSSL_STORE_INFO_SKEY) && defined(OSSL_OBJECT_SKEY)
/* OpenSSL 4.0 builds an EVP_SKEY from the bytes with the skey manager that
 * the caller's property query picks (ours with "provider=kmstore"). */
static int pass_skey(kmsp_key *key, OSSL_CALLBACK *cb, void *cbarg)
{
	int type = OSSL_OBJECT_SKEY;
	OSSL_PARAM params[4];
	int ok;

	params[0] = OSSL_PARAM_construct_int(OSSL_OBJECT_PARAM_TYPE, &type);
	params[1] = OSSL_PARAM_construct_utf8_string(OSSL_OBJECT_PARAM_DATA_TYPE,
						     (char *)KMSP_SKEY_TYPE, 0);
	params[2] = OSSL_PARAM_construct_octet_string(OSSL_OBJECT_PARAM_DATA,
						      (void *)kmsp_key_bytes(key),
						      kmsp_key_size(key));
	params[3] = OSSL_PARAM_construct_end();
	ok = cb(params, cbarg);
	kmsp_key_free(key);
	return ok;
}
#endif

static int load_key(store_ctx *ctx, const kms_uri *uri, OSSL_CALLBACK *cb,
		    void *cbarg)
{
	int type = key_object_type(ctx);
	kms_profile *p = NULL;
	kms_error err = { 0 };
	kmsp_key *key;

	ctx->state = DONE;
	if (kms_store_find_profile(ctx->store, uri->profile, &p, &err) != KMS_OK) {
		KMSP_RAISE_KMS(ctx->pc, &err);
		return 0;
	}
	/* Not what the caller looks for: consume no QKD key for nothing. */
	if (type == 0)
		return 1;
	key = kmsp_key_fetch(ctx->pc, ctx->store, p, uri->key_id);
	if (key == NULL)
		return 0;
#if defined(OSSL_STORE_INFO_SKEY) && defined(OSSL_OBJECT_SKEY)
	if (type == OSSL_OBJECT_SKEY)
		return pass_skey(key, cb, cbarg);
#endif
	return pass_pkey(key, cb, cbarg);
}

/* The first load() parses the URI and reads the configuration. */
static int start(store_ctx *ctx, OSSL_CALLBACK *cb, void *cbarg)
{
	kms_uri uri = { 0 };
	kms_error err = { 0 };
	int ok;

	ctx->state = DONE;
	if (kms_uri_parse(ctx->uri, &uri, &err) != KMS_OK) {
		KMSP_RAISE_KMS(ctx->pc, &err);
		return 0;
	}
	ctx->store = kmsp_store_get(ctx->pc);
	if (ctx->store == NULL) {
		ok = 0;
	} else if (uri.profile != NULL) {
		ok = load_key(ctx, &uri, cb, cbarg);
	} else if (kms_store_profile_count(ctx->store) > 0) {
		ctx->state = LISTING;
		ok = list_next(ctx, cb, cbarg);
	} else {
		ok = 1; /* an empty store lists nothing */
	}
	kms_uri_clear(&uri);
	return ok;
}

static int store_load(void *vctx, OSSL_CALLBACK *object_cb, void *object_cbarg,
		      OSSL_PASSPHRASE_CALLBACK *pw_cb, void *pw_cbarg)
{
	store_ctx *ctx = vctx;

	(void)pw_cb; /* no passphrases: file permissions protect the keys */
	(void)pw_cbarg;
	switch (ctx->state) {
	case START:
		return start(ctx, object_cb, object_cbarg);
	case LISTING:
		return list_next(ctx, object_cb, object_cbarg);
	case DONE:
		break;
	}
	return 0;
}

static int store_eof(void *vctx)
{
	const store_ctx *ctx = vctx;

	return ctx->state == DONE;
}

static int store_close(void *vctx)
{
	store_ctx *ctx = vctx;

	if (ctx == NULL)
		return 1;
	kms_store_free(ctx->store);
	free(ctx->uri);
	free(ctx);
	return 1;
}

const OSSL_DISPATCH kmsp_store_functions[] = {
	{ OSSL_FUNC_STORE_OPEN, (void (*)(void))store_open },
	{ OSSL_FUNC_STORE_SETTABLE_CTX_PARAMS,
	  (void (*)(void))store_settable_ctx_params },
	{ OSSL_FUNC_STORE_SET_CTX_PARAMS, (void (*)(void))store_set_ctx_params },
	{ OSSL_FUNC_STORE_LOAD, (void (*)(void))store_load },
	{ OSSL_FUNC_STORE_EOF, (void (*)(void))store_eof },
	{ OSSL_FUNC_STORE_CLOSE, (void (*)(void))store_close },
	{ 0, NULL }
};
