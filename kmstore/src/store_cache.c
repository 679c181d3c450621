/* store_cache.c - a store that follows its file (kms_store_cache): parsed
 * once and shared, with its KME connections, by every caller and thread;
 * parsed again when the file has changed.
 *
 * Each get stats the path (a microsecond, against tens for reading and
 * parsing the file and milliseconds for a new TLS connection to a KME) and
 * compares what identifies the file's content (kms_file_same).
 *
 * Until the file is quiet (kms_file_quiet: its times too recent to tell a
 * second write within one tick), each get reads it again and compares its
 * SHA-256 with that of the parsed text (as git treats "racily clean" index
 * entries), and parses it only if it differs. Reading is cheap; what is
 * kept (the store, its connections) is kept.
 *
 * A get gives what kms_store_open would give at that moment: the same
 * profiles, or the same error (a file now unreadable, refused for its
 * permissions, or invalid drops the cached store).
 *
 * kmstored's store (a client configuration, "daemon = PATH", or a cache
 * made with kms_store_cache_new_daemon) has no file to follow: its profiles
 * are what the daemon lists, and a reload there may change them. It is
 * kept for DAEMON_KEEP_MS and then listed again (one round trip), so a get
 * sees a reload within that time; its connections belong to the process
 * (remote.c) and outlive any one store. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/evp.h>

#include "error.h"
#include "fileio.h"
#include "remote.h"
#include "store.h"

#define DAEMON_KEEP_MS 1000

struct kms_store_cache {
	pthread_mutex_t lock;
	char *path;          /* as given; NULL: the default path at each get */
	kms_store *store;    /* the current store, or NULL */
	char *read_path;     /* the path it was read by (before resolving) */
	unsigned char digest[EVP_MAX_MD_SIZE]; /* of the text it was parsed from */
	unsigned int digest_len;                /* 0: none (hashing failed) */
	struct stat id;      /* the file as stat saw it before that read */
	int trusted;         /* id is old enough to tell a change */
	char *daemon_only;   /* kms_store_cache_new_daemon's socket, or NULL */
	kms_store *remote;   /* kmstored's store, for store's or daemon_only's socket */
	char *remote_socket; /* the socket it was listed from */
	struct timespec remote_at; /* when (monotonic) */
	long list_wait_ms;   /* 0: kms_store_open_daemon's */
};

kms_rc kms_store_cache_new(const char *path, kms_store_cache **out,
			   kms_error *err)
{
	kms_store_cache *c = calloc(1, sizeof(*c));

	*out = NULL;
	if (c == NULL || (path != NULL && (c->path = strdup(path)) == NULL)) {
		free(c);
		return kms_fail(err, KMS_ERR_SYSTEM, "out of memory");
	}
	pthread_mutex_init(&c->lock, NULL);
	*out = c;
	return KMS_OK;
}

kms_rc kms_store_cache_new_daemon(const char *socket_path,
				  kms_store_cache **out, kms_error *err)
{
	kms_store_cache *c = calloc(1, sizeof(*c));

	*out = NULL;
	if (c == NULL || (c->daemon_only = strdup(socket_path)) == NULL) {
		free(c);
		return kms_fail(err, KMS_ERR_SYSTEM, "out of memory");
	}
	pthread_mutex_init(&c->lock, NULL);
	*out = c;
	return KMS_OK;
}

void kms_store_cache_set_list_wait(kms_store_cache *c, long ms)
{
	pthread_mutex_lock(&c->lock);
	c->list_wait_ms = ms > 0 ? ms : 0;
	pthread_mutex_unlock(&c->lock);
}

void kms_store_cache_free(kms_store_cache *c)
{
	if (c == NULL)
		return;
	kms_store_free(c->store);
	kms_store_free(c->remote);
	free(c->remote_socket);
	free(c->daemon_only);
	pthread_mutex_destroy(&c->lock);
	free(c->read_path);
	free(c->path);
	free(c);
}

static int fresh_enough(const kms_store_cache *c, const char *path,
			const struct stat *st)
{
	return c->store != NULL && c->trusted && strcmp(c->read_path, path) == 0 &&
	       kms_file_same(&c->id, st);
}

static void drop(kms_store_cache *c, kms_store **old)
{
	*old = c->store;
	c->store = NULL;
	c->trusted = 0;
}

/* Reads the file; parses it unless it is the text the store came from. */
static kms_rc refresh(kms_store_cache *c, const char *path, kms_store **old,
		      kms_error *err)
{
	char resolved[PATH_MAX], *copy;
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int dlen = 0;
	kms_store *fresh = NULL;
	uint8_t *text;
	size_t len;
	kms_rc rc;

	rc = kms_store_read(path, resolved, &text, &len, err);
	if (rc != KMS_OK) {
		drop(c, old);
		return rc;
	}
	/* Where the application's default library context has no SHA-256
	 * the text is parsed each time, as without the cache. */
	ERR_set_mark();
	if (!EVP_Digest(text, len, digest, &dlen, EVP_sha256(), NULL))
		dlen = 0;
	ERR_pop_to_mark(); /* not the application's error */
	if (c->store != NULL && strcmp(c->read_path, path) == 0 &&
	    strcmp(kms_store_path(c->store), resolved) == 0 && dlen > 0 &&
	    dlen == c->digest_len && memcmp(c->digest, digest, dlen) == 0) {
		kms_store_text_free(text, len);
		return KMS_OK; /* touched, not changed: keep it */
	}
	rc = kms_store_parse((const char *)text, len, resolved, &fresh, err);
	kms_store_text_free(text, len);
	copy = rc == KMS_OK ? strdup(path) : NULL;
	if (rc == KMS_OK && copy == NULL) {
		kms_store_free(fresh);
		rc = kms_fail(err, KMS_ERR_SYSTEM, "out of memory");
	}
	drop(c, old);
	if (rc != KMS_OK)
		return rc;
	free(c->read_path);
	c->read_path = copy;
	memcpy(c->digest, digest, dlen);
	c->digest_len = dlen;
	c->store = fresh;
	return KMS_OK;
}

/* In int64_t: seconds * 1000 in a 32-bit time_t overflow after 24.8 days. */
static int64_t ms_since(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (int64_t)(now.tv_sec - t->tv_sec) * 1000 +
	       (now.tv_nsec - t->tv_nsec) / 1000000;
}

/* kmstored's store at socket, listed again when it is older than
 * DAEMON_KEEP_MS or from another socket; under the lock. A failed listing
 * drops it: the get fails as kms_store_open would. */
static kms_rc remote_get(kms_store_cache *c, const char *socket,
			 kms_store **out, kms_store **old, kms_error *err)
{
	kms_store *fresh = NULL;
	char *copy;
	kms_rc rc;

	if (c->remote != NULL && strcmp(c->remote_socket, socket) == 0 &&
	    ms_since(&c->remote_at) < DAEMON_KEEP_MS) {
		*out = kms_store_ref(c->remote);
		return KMS_OK;
	}
	*old = c->remote;
	c->remote = NULL;
	rc = kms_remote_open_store(socket, c->list_wait_ms, &fresh, err);
	if (rc != KMS_OK)
		return rc;
	copy = strdup(socket);
	if (copy == NULL) {
		kms_store_free(fresh);
		return kms_fail(err, KMS_ERR_SYSTEM, "out of memory");
	}
	free(c->remote_socket);
	c->remote_socket = copy;
	c->remote = fresh;
	clock_gettime(CLOCK_MONOTONIC, &c->remote_at);
	*out = kms_store_ref(fresh);
	return KMS_OK;
}

kms_rc kms_store_cache_get(kms_store_cache *c, kms_store **out, kms_error *err)
{
	kms_store *old_remote = NULL;
	const char *path = c->path != NULL ? c->path : kms_default_config_path();
	kms_store *old = NULL;
	struct timespec now;
	struct stat st;
	int have;
	kms_rc rc = KMS_OK;

	*out = NULL;
	if (c->daemon_only != NULL) {
		pthread_mutex_lock(&c->lock);
		rc = remote_get(c, c->daemon_only, out, &old_remote, err);
		pthread_mutex_unlock(&c->lock);
		kms_store_free(old_remote);
		return rc;
	}
	/* The clock before the stat: a change after it cannot predate now. */
	clock_gettime(CLOCK_REALTIME, &now);
	have = kms_file_stat(path, &st) == 0;
	pthread_mutex_lock(&c->lock);
	if (!have || !fresh_enough(c, path, &st)) {
		rc = refresh(c, path, &old, err);
		if (rc == KMS_OK) {
			c->id = st;
			c->trusted = have && kms_file_quiet(&st, &now);
		}
	}
	if (rc == KMS_OK && kms_store_daemon(c->store) != NULL)
		rc = remote_get(c, kms_store_daemon(c->store), out, &old_remote,
				err);
	else if (rc == KMS_OK)
		*out = kms_store_ref(c->store);
	pthread_mutex_unlock(&c->lock);
	/* Outside the lock: the last reference closes KME connections. */
	kms_store_free(old);
	kms_store_free(old_remote);
	return rc;
}
