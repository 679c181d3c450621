/* key.c - key objects: an ID, and bytes in locked memory. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "encoding.h"
#include "error.h"
#include "secmem.h"

struct kms_key {
	char profile[KMS_PROFILE_NAME_MAX + 1];
	char id[KMS_KEY_ID_MAX + 1];
	uint8_t *bytes; /* secmem */
	size_t len;
};

kms_rc kms_key_new(const char *profile, const char *key_id,
		   const uint8_t *bytes, size_t len, kms_key **out,
		   kms_error *err)
{
	kms_key *key;
	kms_rc rc;

	*out = NULL;
	if (len < KMS_KEY_MIN || len > KMS_KEY_MAX)
		return kms_fail(err, KMS_ERR_USAGE,
				"key is %zu bytes; it must be %d to %d bytes",
				len, KMS_KEY_MIN, KMS_KEY_MAX);
	rc = kms_check_key_id(key_id, strlen(key_id), err);
	if (rc != KMS_OK)
		return rc;
	if (profile == NULL)
		profile = "";
	if (strlen(profile) > KMS_PROFILE_NAME_MAX)
		return kms_fail(err, KMS_ERR_USAGE, "profile name too long");
	key = calloc(1, sizeof(*key));
	if (key == NULL || (key->bytes = kms_secmem_alloc(len)) == NULL) {
		free(key);
		return kms_fail(err, KMS_ERR_SYSTEM, "out of memory for a key");
	}
	strcpy(key->profile, profile);
	strcpy(key->id, key_id);
	memcpy(key->bytes, bytes, len);
	key->len = len;
	*out = key;
	return KMS_OK;
}

kms_rc kms_key_dup(const kms_key *key, kms_key **out, kms_error *err)
{
	return kms_key_new(key->profile, key->id, key->bytes, key->len, out, err);
}

void kms_key_free(kms_key *key)
{
	if (key == NULL)
		return;
	kms_secmem_free(key->bytes, key->len);
	free(key);
}

const char *kms_key_id(const kms_key *key)
{
	return key->id;
}

const uint8_t *kms_key_bytes(const kms_key *key)
{
	return key->bytes;
}

size_t kms_key_size(const kms_key *key)
{
	return key->len;
}

const char *kms_key_profile(const kms_key *key)
{
	return key->profile;
}

/* HMAC's and SHA-256's implementations are looked up in libcrypto's
 * method store (under its locks) at every HMAC() call; kmstored logs a
 * check value for each key it serves. So one context, keyed with zeros, is
 * set up once and copied for each key: the copy is keyed with the key and
 * freed (and so wiped) at once. The template is never freed: at exit
 * libcrypto may be cleaned up before this library's destructors run (a
 * module unloaded and loaded again leaves one context behind).
 * A setup that failed is tried again at the next call: the default
 * library context may get its default provider later (a program that
 * loads only the kmstore provider first), and a failure must not stay for
 * the life of the process. */
static pthread_mutex_t kcv_lock = PTHREAD_MUTEX_INITIALIZER;
static EVP_MAC_CTX *kcv_template;

static EVP_MAC_CTX *kcv_setup(void)
{
	static const unsigned char zeros[32];
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
		OSSL_PARAM_construct_end(),
	};
	EVP_MAC_CTX *ctx;
	EVP_MAC *mac;

	ERR_set_mark();
	mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	ctx = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;
	if (ctx != NULL && !EVP_MAC_init(ctx, zeros, sizeof(zeros), params)) {
		EVP_MAC_CTX_free(ctx);
		ctx = NULL;
	}
	EVP_MAC_free(mac);
	ERR_pop_to_mark(); /* not the application's error */
	return ctx;
}

/* The template, set up now if it is not yet; NULL if it cannot be. */
static const EVP_MAC_CTX *kcv_get_template(void)
{
	const EVP_MAC_CTX *t;

	pthread_mutex_lock(&kcv_lock);
	if (kcv_template == NULL)
		kcv_template = kcv_setup();
	t = kcv_template;
	pthread_mutex_unlock(&kcv_lock);
	return t;
}

static kms_rc kcv_mac(const kms_key *key, const unsigned char *data, size_t len,
		      unsigned char mac[EVP_MAX_MD_SIZE], kms_error *err)
{
	const EVP_MAC_CTX *t = kcv_get_template();
	EVP_MAC_CTX *ctx;
	size_t mac_len = 0;
	int ok;

	if (t == NULL)
		return kms_fail(err, KMS_ERR_UNSUPPORTED,
				"no check value: HMAC-SHA256 is not available in "
				"libcrypto's default library context (load the "
				"default provider there)");
	ERR_set_mark();
	ctx = EVP_MAC_CTX_dup(t);
	ok = ctx != NULL && EVP_MAC_init(ctx, key->bytes, key->len, NULL) &&
	     EVP_MAC_update(ctx, data, len) &&
	     EVP_MAC_final(ctx, mac, &mac_len, EVP_MAX_MD_SIZE) &&
	     mac_len * 2 >= KMS_KCV_LEN;
	EVP_MAC_CTX_free(ctx);
	ERR_pop_to_mark();
	if (!ok)
		return kms_fail(err, KMS_ERR_SYSTEM,
				"no check value: HMAC-SHA256 of the key failed "
				"in libcrypto");
	return KMS_OK;
}

kms_rc kms_key_check_value_ex(const kms_key *key, char out[KMS_KCV_LEN + 1],
			      kms_error *err)
{
	static const char label[] = "kmstore-kcv";
	unsigned char mac[EVP_MAX_MD_SIZE];
	char hex[2 * EVP_MAX_MD_SIZE + 1];
	kms_rc rc;

	/* On failure "": nothing a caller that prints it anyway could take
	 * for a value (the old "??????" matched at both sites). */
	out[0] = '\0';
	rc = kcv_mac(key, (const unsigned char *)label, sizeof(label) - 1, mac, err);
	if (rc == KMS_OK) {
		kms_hex_encode(mac, KMS_KCV_LEN / 2, hex);
		memcpy(out, hex, KMS_KCV_LEN + 1);
	}
	kms_wipe(mac, sizeof(mac));
	return rc;
}

void kms_key_check_value(const kms_key *key, char out[KMS_KCV_LEN + 1])
{
	(void)kms_key_check_value_ex(key, out, NULL);
}
