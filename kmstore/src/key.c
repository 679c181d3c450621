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
 * module unloaded and loaded again leaves one context behind). */
static pthread_once_t kcv_once = PTHREAD_ONCE_INIT;
static EVP_MAC_CTX *kcv_template;

static void kcv_setup(void)
{
	static const unsigned char zeros[32];
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
		OSSL_PARAM_construct_end(),
	};
	EVP_MAC *mac;

	ERR_set_mark();
	mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	kcv_template = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;
	if (kcv_template != NULL &&
	    !EVP_MAC_init(kcv_template, zeros, sizeof(zeros), params)) {
		EVP_MAC_CTX_free(kcv_template);
		kcv_template = NULL;
	}
	EVP_MAC_free(mac);
	ERR_pop_to_mark(); /* not the application's error */
}

static int kcv_mac(const kms_key *key, const unsigned char *data, size_t len,
		   unsigned char mac[EVP_MAX_MD_SIZE])
{
	EVP_MAC_CTX *ctx;
	size_t mac_len = 0;
	int ok;

	pthread_once(&kcv_once, kcv_setup);
	ERR_set_mark();
	ctx = kcv_template != NULL ? EVP_MAC_CTX_dup(kcv_template) : NULL;
	ok = ctx != NULL && EVP_MAC_init(ctx, key->bytes, key->len, NULL) &&
	     EVP_MAC_update(ctx, data, len) &&
	     EVP_MAC_final(ctx, mac, &mac_len, EVP_MAX_MD_SIZE) &&
	     mac_len * 2 >= KMS_KCV_LEN;
	EVP_MAC_CTX_free(ctx);
	ERR_pop_to_mark();
	return ok;
}

void kms_key_check_value(const kms_key *key, char out[KMS_KCV_LEN + 1])
{
	static const char label[] = "kmstore-kcv";
	unsigned char mac[EVP_MAX_MD_SIZE];
	char hex[2 * EVP_MAX_MD_SIZE + 1];

	if (!kcv_mac(key, (const unsigned char *)label, sizeof(label) - 1, mac)) {
		/* Only if libcrypto cannot run HMAC-SHA-256 at all. */
		memset(out, '?', KMS_KCV_LEN);
		out[KMS_KCV_LEN] = '\0';
		return;
	}
	kms_hex_encode(mac, KMS_KCV_LEN / 2, hex);
	memcpy(out, hex, KMS_KCV_LEN + 1);
	kms_wipe(mac, sizeof(mac));
}
