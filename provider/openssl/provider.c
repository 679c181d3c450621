/*
 * provider.c - the kmstore OpenSSL provider: entry point, parameters,
 * the algorithms it offers, and errors raised through the core.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/opensslv.h>
#include <openssl/params.h>

#include "provider.h"

/* Core functions, the same for every instance in a process. */
static OSSL_FUNC_core_get_params_fn *c_get_params;
static OSSL_FUNC_core_new_error_fn *c_new_error;
static OSSL_FUNC_core_set_error_debug_fn *c_set_error_debug;
static OSSL_FUNC_core_vset_error_fn *c_vset_error;
static OSSL_FUNC_BIO_write_ex_fn *c_bio_write_ex;

void kmsp_raise_at(const kmsp_provctx *pc, const char *file, int line,
		   const char *func, int reason, const char *fmt, ...)
{
	va_list ap;

	if (pc == NULL || c_new_error == NULL || c_vset_error == NULL)
		return;
	c_new_error(pc->handle);
	if (c_set_error_debug != NULL)
		c_set_error_debug(pc->handle, file, line, func);
	va_start(ap, fmt);
	c_vset_error(pc->handle, (uint32_t)reason, fmt, ap);
	va_end(ap);
}

int kmsp_bio_printf(OSSL_CORE_BIO *bio, const char *fmt, ...)
{
	char buf[1024];
	size_t written = 0;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || c_bio_write_ex == NULL)
		return 0;
	if ((size_t)n >= sizeof(buf))
		n = sizeof(buf) - 1; /* lines we print are short; cut, never overflow */
	return c_bio_write_ex(bio, buf, (size_t)n, &written) && written == (size_t)n;
}

static const OSSL_ALGORITHM store_algs[] = {
	{ "kmstore", KMSP_PROPERTIES, kmsp_store_functions,
	  "kmstore: URIs (profiles and keys of a kmstore.conf)" },
	{ NULL, NULL, NULL, NULL }
};

static const OSSL_ALGORITHM keymgmt_algs[] = {
	{ KMSP_PKEY_TYPE, KMSP_PROPERTIES, kmsp_keymgmt_functions,
	  "kmstore keys as HMAC keys" },
	{ NULL, NULL, NULL, NULL }
};

static const OSSL_ALGORITHM encoder_algs[] = {
	{ KMSP_PKEY_TYPE, KMSP_PROPERTIES ",output=text",
	  kmsp_text_encoder_functions,
	  "kmstore key description (never the secret)" },
	{ NULL, NULL, NULL, NULL }
};

#ifdef OSSL_OP_SKEYMGMT
static const OSSL_ALGORITHM skeymgmt_algs[] = {
	{ KMSP_SKEY_TYPE, KMSP_PROPERTIES, kmsp_skeymgmt_functions,
	  "kmstore keys as opaque symmetric keys" },
	{ NULL, NULL, NULL, NULL }
};
#endif

static const OSSL_ALGORITHM *query_operation(void *provctx, int id,
					     int *no_cache)
{
	(void)provctx;
	*no_cache = 0;
	switch (id) {
	case OSSL_OP_STORE:
		return store_algs;
	case OSSL_OP_KEYMGMT:
		return keymgmt_algs;
	case OSSL_OP_ENCODER:
		return encoder_algs;
#ifdef OSSL_OP_SKEYMGMT
	case OSSL_OP_SKEYMGMT:
		return skeymgmt_algs;
#endif
	}
	return NULL;
}

static const OSSL_PARAM *gettable_params(void *provctx)
{
	static const OSSL_PARAM params[] = {
		OSSL_PARAM_utf8_ptr(OSSL_PROV_PARAM_NAME, NULL, 0),
		OSSL_PARAM_utf8_ptr(OSSL_PROV_PARAM_VERSION, NULL, 0),
		OSSL_PARAM_utf8_ptr(OSSL_PROV_PARAM_BUILDINFO, NULL, 0),
		OSSL_PARAM_int(OSSL_PROV_PARAM_STATUS, NULL),
		OSSL_PARAM_utf8_ptr(KMSP_PARAM_CONFIG, NULL, 0),
		OSSL_PARAM_utf8_ptr(KMSP_PARAM_DAEMON, NULL, 0),
		OSSL_PARAM_END
	};

	(void)provctx;
	return params;
}

static int get_params(void *provctx, OSSL_PARAM params[])
{
	const kmsp_provctx *pc = provctx;
	OSSL_PARAM *p;

	p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_NAME);
	if (p != NULL && !OSSL_PARAM_set_utf8_ptr(p, "kmstore key store"))
		return 0;
	p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_VERSION);
	if (p != NULL && !OSSL_PARAM_set_utf8_ptr(p, kms_version()))
		return 0;
	p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_BUILDINFO);
	if (p != NULL && !OSSL_PARAM_set_utf8_ptr(p, "built with " OPENSSL_VERSION_TEXT))
		return 0;
	p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_STATUS);
	if (p != NULL && !OSSL_PARAM_set_int(p, 1))
		return 0;
	/* The configuration file that will be read, after the fallbacks. */
	p = OSSL_PARAM_locate(params, KMSP_PARAM_CONFIG);
	if (p != NULL &&
	    !OSSL_PARAM_set_utf8_ptr(p, pc->config_path != NULL ?
				     pc->config_path :
				     kms_default_config_path()))
		return 0;
	p = OSSL_PARAM_locate(params, KMSP_PARAM_DAEMON);
	if (p != NULL && pc->daemon_path != NULL &&
	    !OSSL_PARAM_set_utf8_ptr(p, pc->daemon_path))
		return 0;
	return 1;
}

/* Reason strings for the codes we raise: the library's kms_rc values, with
 * its descriptions, and our own. Built in OSSL_provider_init, which the core
 * always calls before it asks for them; under pthread_once because several
 * library contexts may load the provider at once, from different threads,
 * and pthread_once also makes the filled table visible to each of them. */
static OSSL_ITEM reasons[KMS_ERR_SYSTEM - KMS_ERR_USAGE + 1 + 2];
static pthread_once_t reasons_once = PTHREAD_ONCE_INIT;

static void build_reasons(void)
{
	size_t n = 0;

	/* The error codes are KMS_ERR_USAGE..KMS_ERR_SYSTEM, no gaps
	 * (tests/unit/test_config.c checks it). */
	for (int rc = KMS_ERR_USAGE; rc <= KMS_ERR_SYSTEM; rc++) {
		reasons[n].id = (unsigned int)rc;
		reasons[n++].ptr = (void *)kms_rc_describe((kms_rc)rc);
	}
	reasons[n].id = KMSP_R_INTERNAL;
	reasons[n++].ptr = "internal error";
	reasons[n].id = 0; /* the end */
	reasons[n].ptr = NULL;
}

static const OSSL_ITEM *get_reason_strings(void *provctx)
{
	(void)provctx;
	return reasons;
}

static void teardown(void *provctx)
{
	kmsp_provctx *pc = provctx;

	if (pc == NULL)
		return;
	kms_store_cache_free(pc->stores);
	free(pc->config_path);
	free(pc->daemon_path);
	free(pc);
}

static const OSSL_DISPATCH provider_functions[] = {
	{ OSSL_FUNC_PROVIDER_TEARDOWN, (void (*)(void))teardown },
	{ OSSL_FUNC_PROVIDER_GETTABLE_PARAMS, (void (*)(void))gettable_params },
	{ OSSL_FUNC_PROVIDER_GET_PARAMS, (void (*)(void))get_params },
	{ OSSL_FUNC_PROVIDER_QUERY_OPERATION, (void (*)(void))query_operation },
	{ OSSL_FUNC_PROVIDER_GET_REASON_STRINGS,
	  (void (*)(void))get_reason_strings },
	{ 0, NULL }
};

static void take_core_functions(const OSSL_DISPATCH *in)
{
	for (; in->function_id != 0; in++) {
		switch (in->function_id) {
		case OSSL_FUNC_CORE_GET_PARAMS:
			c_get_params = OSSL_FUNC_core_get_params(in);
			break;
		case OSSL_FUNC_CORE_NEW_ERROR:
			c_new_error = OSSL_FUNC_core_new_error(in);
			break;
		case OSSL_FUNC_CORE_SET_ERROR_DEBUG:
			c_set_error_debug = OSSL_FUNC_core_set_error_debug(in);
			break;
		case OSSL_FUNC_CORE_VSET_ERROR:
			c_vset_error = OSSL_FUNC_core_vset_error(in);
			break;
		case OSSL_FUNC_BIO_WRITE_EX:
			c_bio_write_ex = OSSL_FUNC_BIO_write_ex(in);
			break;
		}
	}
}

/* The kmstore-config and kmstore-daemon parameters of the provider's
 * openssl.cnf section. */
static int read_config_param(kmsp_provctx *pc)
{
	const char *path = NULL, *daemon = NULL;
	OSSL_PARAM params[] = {
		OSSL_PARAM_utf8_ptr(KMSP_PARAM_CONFIG, (char **)&path, 0),
		OSSL_PARAM_utf8_ptr(KMSP_PARAM_DAEMON, (char **)&daemon, 0),
		OSSL_PARAM_END
	};

	if (c_get_params == NULL || !c_get_params(pc->handle, params))
		return 1;
	if (path != NULL && *path != '\0' &&
	    (pc->config_path = strdup(path)) == NULL)
		return 0;
	if (daemon != NULL && *daemon != '\0' &&
	    (pc->daemon_path = strdup(daemon)) == NULL)
		return 0;
	return 1;
}

/* The one symbol the module exports (the rest is hidden by the build). */
__attribute__((visibility("default")))
int OSSL_provider_init(const OSSL_CORE_HANDLE *handle, const OSSL_DISPATCH *in,
		       const OSSL_DISPATCH **out, void **provctx)
{
	kmsp_provctx *pc;

	if (pthread_once(&reasons_once, build_reasons) != 0)
		return 0;
	take_core_functions(in);
	pc = calloc(1, sizeof(*pc));
	if (pc == NULL)
		return 0;
	pc->handle = handle;
	if (!read_config_param(pc) ||
	    (pc->daemon_path != NULL ?
		     kms_store_cache_new_daemon(pc->daemon_path, &pc->stores, NULL) :
		     kms_store_cache_new(pc->config_path, &pc->stores, NULL)) != KMS_OK) {
		teardown(pc);
		return 0;
	}
	*out = provider_functions;
	*provctx = pc;
	return 1;
}
