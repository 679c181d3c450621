/* conf.c - the configuration kmstored serves, and reloading it.
 *
 * A snapshot (store and access rules) is reference-counted: a request
 * holds the snapshot it started with, so a reload never pulls a profile
 * from under a KME request in flight; the old snapshot (and its KME
 * connections) goes when its last request ends. A file that does not load
 * leaves the running configuration in force. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kmstored.h"
#include "store.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
/* One reload at a time: SIGHUP and "kmstore reload" may meet. */
static pthread_mutex_t reload_lock = PTHREAD_MUTEX_INITIALIZER;
static struct kmsd_conf *current;
static char *conf_path;

static void conf_free(struct kmsd_conf *c)
{
	size_t n;

	if (c == NULL)
		return;
	n = c->store != NULL ? kms_store_profile_count(c->store) : 0;
	for (size_t i = 0; c->rules != NULL && i < n; i++)
		kms_allow_clear(&c->rules[i]);
	for (size_t i = 0; c->pools != NULL && i < n; i++)
		kmsd_pool_free(c->pools[i]);
	free(c->pools);
	free(c->rules);
	kms_store_free(c->store);
	free(c);
}

/* A certificate that expired fails the profile's requests, not the
 * others': time, not an edit, broke it, so a start or reload goes on. */
static void warn_dates(kms_profile *p)
{
	kms_error e;

	if (kms_profile_check_dates(p, &e) != KMS_OK)
		kmsd_log(KMS_LOG_WARNING, "%s (the other profiles are served)",
			 e.message);
}

/* *by_lookup (may be NULL) is set when a user or group lookup failed in a
 * way that may pass: the world's doing (sssd or LDAP not up yet), maybe,
 * not the file's. The profiles after it are checked still: an error of
 * the file's is the one told, else a start would wait on the lookup and
 * hide it. */
static kms_rc conf_load(const char *path, struct kmsd_conf **out,
			int *by_lookup, kms_error *err)
{
	struct kmsd_conf *c = calloc(1, sizeof(*c));
	kms_error waiting = { KMS_OK, "" }; /* the first lookup that may pass */
	size_t n;
	kms_rc rc;
	int later;

	*out = NULL;
	if (c == NULL)
		return kms_fail(err, KMS_ERR_SYSTEM, "out of memory");
	atomic_init(&c->refs, 1);
	c->loaded = time(NULL);
	rc = kms_store_load(path, &c->store, err);
	if (rc == KMS_OK && kms_store_daemon(c->store) != NULL)
		rc = kms_fail(err, KMS_ERR_CONFIG,
			      "%s is a client configuration (daemon = %s): kmstored "
			      "needs the profiles themselves",
			      kms_store_path(c->store), kms_store_daemon(c->store));
	n = rc == KMS_OK ? kms_store_profile_count(c->store) : 0;
	if (rc == KMS_OK && n > 0 &&
	    ((c->rules = calloc(n, sizeof(*c->rules))) == NULL ||
	     (c->pools = calloc(n, sizeof(*c->pools))) == NULL))
		rc = kms_fail(err, KMS_ERR_SYSTEM, "out of memory");
	for (size_t i = 0; rc == KMS_OK && i < n; i++) {
		kms_profile *p = kms_store_profile_at(c->store, i);

		/* Its files as kmstore check reads them, as kmstored's user: a
		 * key file it cannot read would fail every key, after a reload
		 * that said all was well. Then its users and groups, looked up
		 * as kmstore check looks them up (that part of check is the
		 * load, so a lookup that may pass later is known as such). */
		later = 0;
		rc = kms_profile_check_files(p, err);
		if (rc == KMS_OK)
			warn_dates(p);
		if (rc == KMS_OK)
			rc = kms_allow_load(p, &c->rules[i], &later, err);
		if (rc != KMS_OK && later) {
			if (waiting.code == KMS_OK)
				waiting = *err;
			rc = KMS_OK;
			continue;
		}
		if (rc == KMS_OK && (c->pools[i] = kmsd_pool_new(p)) == NULL &&
		    strcmp(kms_profile_type(p), "qkd") == 0 &&
		    kms_profile_setting(p, "prefetch") != NULL &&
		    strcmp(kms_profile_setting(p, "prefetch"), "0") != 0)
			rc = kms_fail(err, KMS_ERR_SYSTEM, "out of memory");
	}
	if (rc == KMS_OK && waiting.code != KMS_OK) {
		*err = waiting;
		rc = waiting.code;
		if (by_lookup != NULL)
			*by_lookup = 1;
	}
	if (rc != KMS_OK) {
		conf_free(c);
		return rc;
	}
	*out = c;
	return KMS_OK;
}

static void start_pools(struct kmsd_conf *c)
{
	for (size_t i = 0; i < kms_store_profile_count(c->store); i++)
		if (c->pools[i] != NULL)
			kmsd_pool_start(c->pools[i], c);
}

static void stop_pools(struct kmsd_conf *c)
{
	for (size_t i = 0; i < kms_store_profile_count(c->store); i++)
		kmsd_pool_stop(c->pools[i]);
}

/* A reload keeps prefetched keys whose profile still names the same KMEs,
 * SAEs and key size, and those of a refill under way (kmsd_pool_adopt). */
static void adopt_pools(struct kmsd_conf *to, struct kmsd_conf *from)
{
	for (size_t i = 0; i < kms_store_profile_count(to->store); i++) {
		const char *name = kms_profile_name(kms_store_profile_at(to->store, i));

		for (size_t j = 0; to->pools[i] != NULL &&
				   j < kms_store_profile_count(from->store); j++)
			if (strcmp(name, kms_profile_name(kms_store_profile_at(
						 from->store, j))) == 0)
				kmsd_pool_adopt(to->pools[i], to, from->pools[j]);
	}
}

int kmsd_conf_has_pools(void)
{
	struct kmsd_conf *c = kmsd_conf_get();
	int any = 0;

	for (size_t i = 0; i < kms_store_profile_count(c->store); i++)
		any |= c->pools[i] != NULL;
	kmsd_conf_put(c);
	return any;
}

kms_rc kmsd_conf_init(const char *path, int *by_lookup, kms_error *err)
{
	kms_rc rc;

	*by_lookup = 0;
	free(conf_path); /* (called again while a lookup may pass) */
	conf_path = strdup(path);
	if (conf_path == NULL)
		return kms_fail(err, KMS_ERR_SYSTEM, "out of memory");
	rc = conf_load(conf_path, &current, by_lookup, err);
	if (rc != KMS_OK)
		return rc;
	if (kms_store_profile_count(current->store) == 0)
		kmsd_log(KMS_LOG_WARNING, "%s defines no profile",
			 kms_store_path(current->store));
	return KMS_OK;
}

void kmsd_conf_start(void)
{
	start_pools(current);
}

struct kmsd_conf *kmsd_conf_get(void)
{
	struct kmsd_conf *c;

	pthread_mutex_lock(&lock);
	c = current;
	atomic_fetch_add(&c->refs, 1);
	pthread_mutex_unlock(&lock);
	return c;
}

void kmsd_conf_put(struct kmsd_conf *c)
{
	if (c != NULL && atomic_fetch_sub(&c->refs, 1) == 1)
		conf_free(c);
}

kms_rc kmsd_conf_reload(char *summary, size_t size, kms_error *err)
{
	struct kmsd_conf *fresh, *old;
	kms_rc rc;

	pthread_mutex_lock(&reload_lock);
	rc = conf_load(conf_path, &fresh, NULL, err);
	if (rc != KMS_OK) {
		char when[32];
		struct tm tm;

		old = kmsd_conf_get();
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S",
			 localtime_r(&old->loaded, &tm));
		kms_error_prefix(err, "reload refused, the configuration loaded at "
				 "%s stays in force", when);
		kmsd_conf_put(old);
		pthread_mutex_unlock(&reload_lock);
		kmsd_metric_reload(0);
		return rc;
	}
	/* The old pools' keys go to the new ones, and so do those of their
	 * refills under way; then every old pool stops. */
	adopt_pools(fresh, current);
	stop_pools(current);
	pthread_mutex_lock(&lock);
	old = current;
	current = fresh;
	pthread_mutex_unlock(&lock);
	start_pools(fresh);
	kmsd_conf_put(old);
	/* Not 30 s of counts for profiles that are gone or changed. */
	kmsd_watch_now();
	if (summary != NULL)
		snprintf(summary, size, "reloaded %s: %zu profile%s",
			 kms_store_path(fresh->store),
			 kms_store_profile_count(fresh->store),
			 kms_store_profile_count(fresh->store) == 1 ? "" : "s");
	pthread_mutex_unlock(&reload_lock);
	kmsd_metric_reload(1);
	return KMS_OK;
}

void kmsd_conf_fini(void)
{
	stop_pools(current);
	kmsd_conf_put(current);
	current = NULL;
	if (!kmsd_pools_wait(30))
		kmsd_log(KMS_LOG_WARNING, "a pool thread is still in a KME request");
	free(conf_path);
	conf_path = NULL;
}

/* What a client is told of a profile it may not use, or that is not there. */
static kms_rc not_open(struct kmsd_client *cl, const char *name,
		       kms_error *err)
{
	return kms_fail(err, KMS_ERR_PERMISSION, "kmstored: profile '%s' is not "
			"open to user %s (uid %u); see kmstore profiles, and "
			"allow-users and allow-groups in kmstore.conf(5)", name,
			kmsd_client_user(cl), (unsigned)cl->uid);
}

kms_rc kmsd_conf_profile(const struct kmsd_conf *c, struct kmsd_client *cl,
			 const char *name, kms_profile **p, size_t *index,
			 kms_error *err)
{
	for (size_t i = 0; i < kms_store_profile_count(c->store); i++) {
		kms_profile *q = kms_store_profile_at(c->store, i);

		if (strcmp(kms_profile_name(q), name) != 0)
			continue;
		if (!kmsd_rule_allows(&c->rules[i], cl)) {
			kmsd_metric_refused();
			kmsd_log_client(cl, KMS_LOG_WARNING,
					"refused %s (uid %u, pid %d): profile '%s' "
					"is not open to it",
					kmsd_client_user(cl), (unsigned)cl->uid,
					(int)cl->pid, name);
			return not_open(cl, name, err);
		}
		*p = q;
		if (index != NULL)
			*index = i;
		return KMS_OK;
	}
	if (cl->admin)
		return kms_fail(err, KMS_ERR_NOT_FOUND, "no such profile '%s' in %s",
				name, kms_store_path(c->store));
	/* To others, a profile that is not there is one not open to them:
	 * which names exist, and the file's path, are not theirs to learn
	 * (their listing shows only their own profiles). */
	kmsd_metric_refused();
	kmsd_log_client(cl, KMS_LOG_WARNING, "refused %s (uid %u, pid %d): "
			"no profile '%s'", kmsd_client_user(cl),
			(unsigned)cl->uid, (int)cl->pid, name);
	return not_open(cl, name, err);
}
