/*
 * engine.c - the kmstore ENGINE, for applications that still load keys
 * through engines (OpenSSL 1.1-style code running on 3.x):
 *
 *   ENGINE_load_private_key(e, "kmstore:profile=P;key-id=K", NULL, NULL)
 *   ENGINE_load_private_key(e, "P:K", NULL, NULL)   the same key
 *   ENGINE_load_private_key(e, "P", NULL, NULL)     a key for use now
 *
 * The key comes back as an HMAC EVP_PKEY (the key ID is not part of an
 * HMAC key; applications that need it use the provider). Control command
 * CONFIG names the kmstore.conf; else $KMSTORE_CONF or the default.
 * DAEMON names kmstored's socket instead: the profiles are the daemon's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/engine.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include <kmstore.h>

static const char engine_id[] = "kmstore";
static const char engine_name[] =
	"kmstore key store: PPKs as HMAC keys (kmstore: URIs or PROFILE[:KEYID])";

#define CMD_CONFIG ENGINE_CMD_BASE
#define CMD_DAEMON (ENGINE_CMD_BASE + 1)

static const ENGINE_CMD_DEFN commands[] = {
	{ CMD_CONFIG, "CONFIG",
	  "kmstore.conf to read (default: $KMSTORE_CONF, else the built-in path)",
	  ENGINE_CMD_FLAG_STRING },
	{ CMD_DAEMON, "DAEMON",
	  "kmstored's socket: the profiles are the daemon's, not a file's",
	  ENGINE_CMD_FLAG_STRING },
	{ 0, NULL, NULL, 0 }
};

/* Set by the CONFIG and DAEMON commands; one engine per process in
 * practice. */
static char *config_path, *daemon_path;

/* Our error library: messages are the library's, reasons its kms_rc with
 * its descriptions (filled by load_error_strings). */
static int err_lib;
static ERR_STRING_DATA reasons[KMS_ERR_SYSTEM - KMS_ERR_USAGE + 1 + 1];
static ERR_STRING_DATA lib_name[] = {
	{ 0, "kmstore engine" },
	{ 0, NULL }
};

static void load_error_strings(void)
{
	if (err_lib != 0)
		return;
	err_lib = ERR_get_next_error_library();
	/* The error codes are KMS_ERR_USAGE..KMS_ERR_SYSTEM, no gaps
	 * (tests/unit/test_config.c checks it); the last entry stays {0}. */
	for (int rc = KMS_ERR_USAGE; rc <= KMS_ERR_SYSTEM; rc++) {
		reasons[rc - KMS_ERR_USAGE].error = (unsigned long)rc;
		reasons[rc - KMS_ERR_USAGE].string = kms_rc_describe((kms_rc)rc);
	}
	lib_name[0].error = ERR_PACK(err_lib, 0, 0);
	ERR_load_strings(err_lib, reasons);
	ERR_load_strings(err_lib, lib_name);
}

/* As ERR_raise_data, with the file name alone as OpenSSL's own errors. */
#ifdef __FILE_NAME__
#define KMSE_FILE __FILE_NAME__
#else
#define KMSE_FILE __FILE__
#endif
#define RAISE(reason, ...)                                                 \
	(ERR_new(), ERR_set_debug(KMSE_FILE, __LINE__, __func__),          \
	 ERR_set_error(err_lib, (reason), __VA_ARGS__))
#define RAISE_KMS(err) RAISE((int)(err)->code, "%s", (err)->message)

/* "kmstore:..." is a URI; otherwise PROFILE[:KEYID]. Profile names
 * cannot hold ':', so the first one separates the key ID. */
static kms_rc parse_target(const char *s, kms_uri *out, kms_error *err)
{
	const char *colon;
	kms_rc rc;

	memset(out, 0, sizeof(*out));
	if (kms_uri_is_kmstore(s)) {
		rc = kms_uri_parse(s, out, err);
		if (rc == KMS_OK && out->profile == NULL) {
			kms_uri_clear(out);
			err->code = KMS_ERR_URI;
			snprintf(err->message, sizeof(err->message),
				 "'%s' names the whole store, not a key", s);
			return KMS_ERR_URI;
		}
		return rc;
	}
	colon = strchr(s, ':');
	out->profile = colon != NULL ? strndup(s, (size_t)(colon - s)) : strdup(s);
	out->key_id = colon != NULL ? strdup(colon + 1) : NULL;
	if (out->profile == NULL || (colon != NULL && out->key_id == NULL)) {
		kms_uri_clear(out);
		err->code = KMS_ERR_SYSTEM;
		snprintf(err->message, sizeof(err->message), "out of memory");
		return KMS_ERR_SYSTEM;
	}
	return KMS_OK;
}

static kms_rc fetch_key(const kms_uri *target, kms_key **key, kms_error *err)
{
	kms_store *store = NULL;
	kms_profile *p = NULL;
	kms_rc rc;

	rc = daemon_path != NULL ? kms_store_open_daemon(daemon_path, &store, err) :
				   kms_store_open(config_path, &store, err);
	if (rc == KMS_OK)
		rc = kms_store_find_profile(store, target->profile, &p, err);
	if (rc == KMS_OK)
		rc = target->key_id != NULL ?
			     kms_profile_get_key_by_id(p, target->key_id, key, err) :
			     kms_profile_get_key(p, key, err);
	kms_store_free(store);
	return rc;
}

static EVP_PKEY *load_privkey(ENGINE *e, const char *key_id, UI_METHOD *ui,
			      void *cb_data)
{
	kms_uri target;
	kms_error err = { 0 };
	kms_key *key = NULL;
	EVP_PKEY *pkey = NULL;

	(void)e;
	(void)ui; /* no passphrases: file permissions protect the keys */
	(void)cb_data;
	if (key_id == NULL) {
		RAISE(KMS_ERR_USAGE, "no key named");
		return NULL;
	}
	if (parse_target(key_id, &target, &err) != KMS_OK) {
		RAISE_KMS(&err);
		return NULL;
	}
	if (fetch_key(&target, &key, &err) != KMS_OK)
		RAISE_KMS(&err);
	else
		pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_HMAC, NULL,
						    kms_key_bytes(key),
						    kms_key_size(key));
	kms_key_free(key);
	kms_uri_clear(&target);
	return pkey;
}

static int ctrl(ENGINE *e, int cmd, long i, void *p, void (*f)(void))
{
	char *copy, **field;

	(void)e;
	(void)i;
	(void)f;
	if (cmd != CMD_CONFIG && cmd != CMD_DAEMON) {
		RAISE(KMS_ERR_UNSUPPORTED, "unknown control command %d", cmd);
		return 0;
	}
	field = cmd == CMD_CONFIG ? &config_path : &daemon_path;
	copy = p != NULL ? strdup(p) : NULL;
	if (p != NULL && copy == NULL)
		return 0;
	free(*field);
	*field = copy;
	return 1;
}

static int destroy(ENGINE *e)
{
	(void)e;
	free(config_path);
	config_path = NULL;
	free(daemon_path);
	daemon_path = NULL;
	return 1;
}

static int engine_bind(ENGINE *e, const char *id)
{
	if (id != NULL && strcmp(id, engine_id) != 0)
		return 0;
	load_error_strings();
	return ENGINE_set_id(e, engine_id) && ENGINE_set_name(e, engine_name) &&
	       ENGINE_set_load_privkey_function(e, load_privkey) &&
	       ENGINE_set_ctrl_function(e, ctrl) &&
	       ENGINE_set_cmd_defns(e, commands) &&
	       ENGINE_set_destroy_function(e, destroy);
}

IMPLEMENT_DYNAMIC_CHECK_FN()
IMPLEMENT_DYNAMIC_BIND_FN(engine_bind)
