/*
 * key.c - the key object behind the provider's EVP_PKEYs and EVP_SKEYs.
 *
 * A key from the store is a kms_key: its bytes stay in the library's
 * locked memory and are wiped when it is freed. A key that an application
 * imports (EVP_PKEY_new_raw_private_key and the like reach us when this
 * provider's HMAC key manager is fetched first) is a plain HMAC key in
 * OpenSSL's secure heap, with no profile or key ID.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "provider.h"

#define KEY_MAGIC 0x6b6d736bu /* "kmsk": tells our objects from others */
#define SOURCE_MAX 320

struct kmsp_key {
	uint32_t magic;
	kms_key *key;             /* from the store, or NULL */
	unsigned char *raw;       /* imported bytes, or NULL */
	size_t raw_len;
	char kcv[KMS_KCV_LEN + 1];  /* computed when first asked for */
	atomic_int kcv_ready;
	const kmsp_provctx *pc;   /* raises its errors; NULL if imported */
	char source[SOURCE_MAX];  /* where it came from; never the secret */
};

/* Serializes the first computation of a check value: a key may be shared
 * by threads (an EVP_PKEY is), and it is rare. */
static pthread_mutex_t kcv_lock = PTHREAD_MUTEX_INITIALIZER;

kmsp_key *kmsp_key_new(void)
{
	kmsp_key *k = calloc(1, sizeof(*k));

	if (k != NULL)
		k->magic = KEY_MAGIC;
	return k;
}

static void clear_secret(kmsp_key *k)
{
	kms_key_free(k->key);
	k->key = NULL;
	OPENSSL_secure_clear_free(k->raw, k->raw_len);
	k->raw = NULL;
	k->raw_len = 0;
	k->kcv[0] = '\0';
	atomic_store(&k->kcv_ready, 0);
}

void kmsp_key_free(kmsp_key *k)
{
	if (k == NULL)
		return;
	clear_secret(k);
	k->magic = 0;
	free(k);
}

kmsp_key *kmsp_key_wrap(const kmsp_provctx *pc, kms_key *key,
			const char *source)
{
	kmsp_key *k = kmsp_key_new();

	if (k == NULL) {
		kms_key_free(key);
		return NULL;
	}
	k->pc = pc;
	k->key = key;
	snprintf(k->source, sizeof(k->source), "%s", source);
	return k;
}

int kmsp_key_set_bytes(kmsp_key *k, const unsigned char *bytes, size_t len)
{
	/* At least one byte, to tell an empty key from no key. */
	unsigned char *copy = OPENSSL_secure_malloc(len > 0 ? len : 1);

	if (copy == NULL)
		return 0;
	if (len > 0)
		memcpy(copy, bytes, len);
	clear_secret(k);
	k->raw = copy;
	k->raw_len = len;
	snprintf(k->source, sizeof(k->source), "imported by the application");
	return 1;
}

kmsp_key *kmsp_key_dup(const kmsp_key *k)
{
	kmsp_key *d = kmsp_key_new();
	kms_error err;

	if (d == NULL)
		return NULL;
	if ((k->key != NULL && kms_key_dup(k->key, &d->key, &err) != KMS_OK) ||
	    (k->raw != NULL && !kmsp_key_set_bytes(d, k->raw, k->raw_len))) {
		kmsp_key_free(d);
		return NULL;
	}
	if (atomic_load(&k->kcv_ready)) {
		memcpy(d->kcv, k->kcv, sizeof(d->kcv));
		atomic_store(&d->kcv_ready, 1);
	}
	memcpy(d->source, k->source, sizeof(d->source));
	d->pc = k->pc;
	return d;
}

int kmsp_key_is_valid(const kmsp_key *k)
{
	return k != NULL && k->magic == KEY_MAGIC;
}

int kmsp_key_has_secret(const kmsp_key *k)
{
	return k->key != NULL || k->raw != NULL;
}

const unsigned char *kmsp_key_bytes(const kmsp_key *k)
{
	return k->key != NULL ? kms_key_bytes(k->key) : k->raw;
}

size_t kmsp_key_size(const kmsp_key *k)
{
	return k->key != NULL ? kms_key_size(k->key) : k->raw_len;
}

const char *kmsp_key_id(const kmsp_key *k)
{
	return k->key != NULL ? kms_key_id(k->key) : NULL;
}

const char *kmsp_key_profile(const kmsp_key *k)
{
	return k->key != NULL ? kms_key_profile(k->key) : NULL;
}

/* An HMAC with its method fetches costs a third of a load: only when
 * asked for (the text encoder, the kmstore-check-value parameter). Only a
 * value is kept: a failure (no default provider yet) is asked again. */
const char *kmsp_key_check_value(const kmsp_key *k)
{
	kmsp_key *m = (kmsp_key *)k; /* the value is cached, not changed */
	kms_error err = { 0 };
	kms_rc rc = KMS_OK;

	if (k->key == NULL)
		return NULL;
	if (!atomic_load(&m->kcv_ready)) {
		pthread_mutex_lock(&kcv_lock);
		if (!atomic_load(&m->kcv_ready)) {
			rc = kms_key_check_value_ex(k->key, m->kcv, &err);
			atomic_store(&m->kcv_ready, rc == KMS_OK);
		}
		pthread_mutex_unlock(&kcv_lock);
	}
	if (rc != KMS_OK) {
		KMSP_RAISE_KMS(k->pc, &err);
		return NULL;
	}
	return k->kcv;
}

const char *kmsp_key_source(const kmsp_key *k)
{
	return k->source;
}

int kmsp_key_equal(const kmsp_key *a, const kmsp_key *b)
{
	size_t n = kmsp_key_size(a);

	if (!kmsp_key_has_secret(a) || !kmsp_key_has_secret(b))
		return kmsp_key_has_secret(a) == kmsp_key_has_secret(b);
	return n == kmsp_key_size(b) &&
	       CRYPTO_memcmp(kmsp_key_bytes(a), kmsp_key_bytes(b), n) == 0;
}

/* Where a key comes from, as the text encoder shows it. */
static void describe_source(char *buf, size_t size, const kms_store *store,
			    const kms_profile *p, const char *key_id)
{
	const char *type = kms_profile_type(p);
	const char *url = kms_profile_setting(p, "url");

	if (strcmp(type, "static") == 0)
		snprintf(buf, size, "static key in %s", kms_store_path(store));
	else if (url != NULL)
		snprintf(buf, size, "%s profile, KME %s (%s)", type, url,
			 key_id != NULL ? "dec_keys: the key with this ID" :
					  "enc_keys: a new key");
	else
		snprintf(buf, size, "%s profile in %s", type,
			 kms_store_path(store));
}

kmsp_key *kmsp_key_fetch(const kmsp_provctx *pc, const kms_store *store,
			 kms_profile *p, const char *key_id)
{
	char source[SOURCE_MAX];
	kms_key *key = NULL;
	kms_error err = { 0 };
	kmsp_key *k;
	kms_rc rc;

	rc = key_id != NULL ? kms_profile_get_key_by_id(p, key_id, &key, &err) :
			      kms_profile_get_key(p, &key, &err);
	if (rc != KMS_OK) {
		KMSP_RAISE_KMS(pc, &err);
		return NULL;
	}
	describe_source(source, sizeof(source), store, p, key_id);
	k = kmsp_key_wrap(pc, key, source);
	if (k == NULL)
		KMSP_RAISE(pc, KMS_ERR_SYSTEM, "out of memory");
	return k;
}

kms_store *kmsp_store_get(const kmsp_provctx *pc)
{
	kms_store *store = NULL;
	kms_error err = { 0 };

	if (kms_store_cache_get(pc->stores, &store, &err) != KMS_OK) {
		KMSP_RAISE_KMS(pc, &err);
		return NULL;
	}
	return store;
}

kmsp_key *kmsp_key_from_uri(const kmsp_provctx *pc, const char *uri)
{
	kms_uri parsed = { 0 };
	kms_error err = { 0 };
	kms_store *store = NULL;
	kms_profile *p = NULL;
	kmsp_key *k = NULL;

	if (kms_uri_parse(uri, &parsed, &err) != KMS_OK) {
		KMSP_RAISE_KMS(pc, &err);
		return NULL;
	}
	if (parsed.profile == NULL) {
		KMSP_RAISE(pc, KMS_ERR_URI,
			   "'%s' names the whole store, not a key; use kmstore:profile=NAME",
			   uri);
		goto out;
	}
	store = kmsp_store_get(pc);
	if (store == NULL)
		goto out;
	if (kms_store_find_profile(store, parsed.profile, &p, &err) != KMS_OK) {
		KMSP_RAISE_KMS(pc, &err);
		goto out;
	}
	k = kmsp_key_fetch(pc, store, p, parsed.key_id);
out:
	kms_store_free(store);
	kms_uri_clear(&parsed);
	return k;
}

int kmsp_key_print(OSSL_CORE_BIO *out, const kmsp_key *k)
{
	size_t bits = 8 * kmsp_key_size(k);
	const char *kcv;

	if (!kmsp_key_has_secret(k))
		return kmsp_bio_printf(out, "HMAC key without key material\n");
	if (k->key == NULL)
		return kmsp_bio_printf(out, "HMAC key (%zu bits), %s\n", bits,
				       k->source);
	/* Without a value the line says so (the raised error says why), in
	 * words no one could compare as a value; the rest still describes
	 * the key. */
	kcv = kmsp_key_check_value(k);
	if (kcv == NULL)
		kcv = "none (HMAC-SHA256 unavailable: load the default provider)";
	return kmsp_bio_printf(out, "kmstore key (HMAC, %zu bits)\n", bits) &&
	       kmsp_bio_printf(out, "profile:     %s\n", kmsp_key_profile(k)) &&
	       kmsp_bio_printf(out, "key-id:      %s\n", kmsp_key_id(k)) &&
	       kmsp_bio_printf(out, "bits:        %zu\n", bits) &&
	       kmsp_bio_printf(out, "check-value: %s\n", kcv) &&
	       kmsp_bio_printf(out, "source:      %s\n", k->source);
}
