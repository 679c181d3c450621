/* pool.c - kmstored's prefetched keys: per QKD profile with prefetch = N,
 * up to N keys taken from the KME ahead of need (several per enc_keys
 * request where the KME allows), refilled once fewer than prefetch-low
 * remain, and dropped (wiped) when older than prefetch-max-age. "A key for
 * use now" is then a key from the pool, without a KME round trip.
 *
 * Each pool has a thread that does the refills and the expiry, and holds a
 * reference to its configuration snapshot; a reload hands the keys of a
 * pool to the new snapshot's pool of the same profile (its heir) when the
 * profile still names the same KMEs, SAEs and key size, and stops the old
 * thread. A refill under way then brings its keys to the heir, which
 * counts them as coming and asks for no more meanwhile; the old pool holds
 * a reference to the heir's snapshot for as long as it exists. A pool
 * stopped without an heir (its profile removed or changed, kmstored
 * stopping) drops its keys, logged and counted: each waits unused at the
 * peer's KME.
 * Keys stay in locked memory (kms_key); none is ever written anywhere.
 *
 * Locks: only a reload holds two pool locks, the old pool's, then its
 * heir's; every other path holds one at a time (lock_heir). */
#include <errno.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "kmstored.h"
#include "qkd.h"
#include "secmem.h"

#define RETRY_FIRST_MS 1000
#define RETRY_MAX_MS 30000
#define FAIL_LOG_EVERY_MS 60000
#define PROBE_MIN_MS 1000 /* between two statuses of a pool's outage */

struct pooled {
	kms_key *key;
	int64_t born_ms;
};

struct kmsd_pool {
	kms_profile *p;
	struct kms_qkd_config *c;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct pooled *keys; /* oldest first */
	size_t n;
	int stopping, running;
	int filling;         /* below prefetch-low: refill up to prefetch */
	long failures;
	int64_t retry_at_ms, failure_logged_ms;
	int64_t probe_at_ms; /* every KME down: ask a status then; 0: none */
	struct kmsd_conf *conf; /* held while the thread runs */
	size_t in_flight;       /* keys the refill under way asked for */
	long incoming;          /* keys a predecessor's refill brings */
	struct kmsd_pool *heir; /* the pool that adopted this one */
	struct kmsd_conf *heir_conf; /* its snapshot, held by this pool */
};

static pthread_mutex_t threads_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t threads_gone = PTHREAD_COND_INITIALIZER;
static int threads;

struct kmsd_pool *kmsd_pool_new(kms_profile *p)
{
	struct kms_qkd_config *c;
	struct kmsd_pool *pl;

	if (strcmp(kms_profile_type(p), "qkd") != 0)
		return NULL;
	c = p->state;
	if (c->prefetch <= 0)
		return NULL;
	pl = calloc(1, sizeof(*pl));
	if (pl == NULL)
		return NULL;
	pl->keys = calloc((size_t)c->prefetch, sizeof(*pl->keys));
	if (pl->keys == NULL) {
		free(pl);
		return NULL;
	}
	pl->p = p;
	pl->c = c;
	pthread_mutex_init(&pl->lock, NULL);
	/* Deadlines are on the monotonic clock (next_wake). */
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&pl->wake, &ca);
		pthread_condattr_destroy(&ca);
	}
	return pl;
}

void kmsd_pool_free(struct kmsd_pool *pl)
{
	if (pl == NULL)
		return;
	for (size_t i = 0; i < pl->n; i++)
		kms_key_free(pl->keys[i].key);
	free(pl->keys);
	pthread_mutex_destroy(&pl->lock);
	pthread_cond_destroy(&pl->wake);
	kmsd_conf_put(pl->heir_conf);
	free(pl);
}

/* Puts a key in its place by age, the keys staying oldest first (as
 * expire() needs): ahead of those as old as it (a key put back), or after
 * them (a key fetched). The lock is held and there is room. */
static void place(struct kmsd_pool *pl, kms_key *key, int64_t born_ms, int ahead)
{
	size_t at = pl->n;

	while (at > 0 && (pl->keys[at - 1].born_ms > born_ms ||
			  (ahead && pl->keys[at - 1].born_ms == born_ms)))
		at--;
	memmove(pl->keys + at + 1, pl->keys + at, (pl->n - at) * sizeof(*pl->keys));
	pl->keys[at].key = key;
	pl->keys[at].born_ms = born_ms;
	pl->n++;
}

/* Fetched keys into the pool, as many as there is room for; the rest are
 * dropped, counted and logged. The lock is held. */
static void keep(struct kmsd_pool *pl, kms_key **fresh, size_t got, int64_t t)
{
	size_t i = 0, gone;

	for (; i < got && pl->n < (size_t)pl->c->prefetch; i++)
		place(pl, fresh[i], t, 0);
	for (gone = got - i; i < got; i++)
		kms_key_free(fresh[i]);
	if (gone == 0)
		return;
	kmsd_metric_pool_dropped(kms_profile_name(pl->p), (long)gone);
	kmsd_log(KMS_LOG_INFO, "profile '%s': %zu prefetched key%s dropped unused: "
		 "no room in the pool (prefetch = %ld)", kms_profile_name(pl->p),
		 gone, gone == 1 ? "" : "s", pl->c->prefetch);
}

/* The pool that keys for pl go to now, locked: pl, or the pool that
 * adopted it at a reload (and so on, reload after reload); NULL when the
 * last of them stopped without an heir (its profile removed or changed,
 * or kmstored stopping). One lock at a time; each pool holds its heir's
 * snapshot, so the chain stays while the caller holds pl's. */
static struct kmsd_pool *lock_heir(struct kmsd_pool *pl)
{
	pthread_mutex_lock(&pl->lock);
	while (pl->stopping) {
		struct kmsd_pool *next = pl->heir;

		pthread_mutex_unlock(&pl->lock);
		if (next == NULL)
			return NULL;
		pl = next;
		pthread_mutex_lock(&pl->lock);
	}
	return pl;
}

static size_t coming(const struct kmsd_pool *pl)
{
	return pl->incoming > 0 ? (size_t)pl->incoming : 0;
}

/* The keys of a refill that a reload overtook (pl is stopping, its lock
 * not held): to the pool that adopted pl, which counted want of them as
 * coming; dropped, counted and logged when there is none. */
static void hand_over(struct kmsd_pool *pl, struct kmsd_pool *heir,
		      size_t want, kms_key **fresh, size_t got, int64_t t)
{
	struct kmsd_pool *to = heir != NULL ? lock_heir(heir) : NULL;
	const char *name = kms_profile_name(pl->p);
	size_t before;

	if (to == NULL) {
		for (size_t i = 0; i < got; i++)
			kms_key_free(fresh[i]);
		if (got == 0)
			return;
		kmsd_metric_pool_dropped(name, (long)got);
		kmsd_log(KMS_LOG_INFO, "%zu key%s fetched for profile '%s' %s, dropped",
			 got, got == 1 ? "" : "s", name,
			 atomic_load(&kmsd_stopping) ? "as kmstored stops" :
			 "after it was removed or changed by a reload");
		return;
	}
	to->incoming -= (long)want;
	before = to->n;
	keep(to, fresh, got, t);
	before = to->n - before;
	pthread_cond_signal(&to->wake); /* fewer coming: it may refill */
	pthread_mutex_unlock(&to->lock);
	if (before > 0)
		kmsd_log(KMS_LOG_INFO, "profile '%s': a refill under way at a reload "
			 "brought %zu key%s to the new pool", name, before,
			 before == 1 ? "" : "s");
}

/* Drops the keys past their age; the lock is held. */
static void expire(struct kmsd_pool *pl, int64_t now)
{
	size_t gone = 0;

	while (gone < pl->n && now - pl->keys[gone].born_ms >= pl->c->prefetch_max_age_ms)
		kms_key_free(pl->keys[gone++].key);
	if (gone == 0)
		return;
	memmove(pl->keys, pl->keys + gone, (pl->n - gone) * sizeof(*pl->keys));
	pl->n -= gone;
	kmsd_metric_pool_expired(kms_profile_name(pl->p), (long)gone);
	kmsd_log(KMS_LOG_INFO, "profile '%s': %zu prefetched key%s older than "
		 "prefetch-max-age (%ld s) dropped unused, %zu left",
		 kms_profile_name(pl->p), gone, gone == 1 ? "" : "s",
		 pl->c->prefetch_max_age_ms / 1000, pl->n);
}

/* One enc_keys request for up to want keys, the lock released meanwhile
 * (a reload may adopt the pool then: hand_over). */
static void refill(struct kmsd_pool *pl, size_t want)
{
	size_t got = 0;
	kms_key **fresh = calloc(want, sizeof(*fresh));
	struct kmsd_pool *heir;
	kms_error err;
	int64_t t;
	kms_rc rc;

	if (fresh == NULL)
		return;
	pl->in_flight = want;
	pthread_mutex_unlock(&pl->lock);
	rc = kms_qkd_get_keys(pl->p, want, fresh, &got, &err);
	kms_scrub_registers(); /* this thread now sleeps for minutes */
	pthread_mutex_lock(&pl->lock);
	pl->in_flight = 0;
	t = kms_now_ms();
	if (rc != KMS_OK)
		got = 0;
	if (pl->stopping) {
		heir = pl->heir;
		pthread_mutex_unlock(&pl->lock);
		hand_over(pl, heir, want, fresh, got, t);
		free(fresh);
		pthread_mutex_lock(&pl->lock);
		return;
	}
	if (rc == KMS_OK) {
		keep(pl, fresh, got, t);
		if (pl->failures > 0)
			kmsd_log(KMS_LOG_INFO, "profile '%s': the pool is refilled "
				 "again (%zu keys)", kms_profile_name(pl->p), pl->n);
		pl->failures = 0;
		pl->retry_at_ms = 0;
	} else {
		long wait = RETRY_FIRST_MS << (pl->failures < 5 ? pl->failures : 5);

		pl->failures++;
		pl->retry_at_ms = t + (wait < RETRY_MAX_MS ? wait : RETRY_MAX_MS);
		if (t - pl->failure_logged_ms >= FAIL_LOG_EVERY_MS || pl->failures == 1) {
			kmsd_log(KMS_LOG_WARNING, "profile '%s': pool refill failed "
				 "(%zu keys left of %ld): %s",
				 kms_profile_name(pl->p), pl->n, pl->c->prefetch,
				 err.message);
			pl->failure_logged_ms = t;
		}
	}
	free(fresh);
}

/* Every KME down and nothing to refill: nothing else may ask a KME but
 * the watcher, every 30 s. So a status as the first is back from its
 * back-off, and the outage (its policy) ends when a KME answers. 1 when
 * the lock was let go meanwhile (what it guards may have changed). */
static int probe(struct kmsd_pool *pl, int64_t now)
{
	int64_t at;
	kms_status st;
	kms_error err;

	pl->probe_at_ms = 0;
	if (pl->filling || !kms_qkd_all_down(pl->p))
		return 0;
	at = kms_qkd_back_at(pl->p);
	if (now < at) {
		pl->probe_at_ms = at;
		return 0;
	}
	pthread_mutex_unlock(&pl->lock);
	if (kms_qkd_status(pl->p, &st, &err) == KMS_OK)
		kmsd_log(KMS_LOG_INFO, "profile '%s': a KME answers again (its "
			 "status): the outage is over", kms_profile_name(pl->p));
	pthread_mutex_lock(&pl->lock);
	pl->probe_at_ms = 0;
	if (kms_qkd_all_down(pl->p)) {
		at = kms_qkd_back_at(pl->p);
		pl->probe_at_ms = at > now + PROBE_MIN_MS ? at : now + PROBE_MIN_MS;
	}
	return 1;
}

/* The time to wake up next: the oldest key's expiry, a retry, a probe. */
static void next_wake(const struct kmsd_pool *pl, struct timespec *ts)
{
	int64_t at = -1;

	if (pl->n > 0)
		at = pl->keys[0].born_ms + pl->c->prefetch_max_age_ms;
	if (pl->filling && pl->retry_at_ms > 0 && (at < 0 || pl->retry_at_ms < at))
		at = pl->retry_at_ms;
	if (pl->probe_at_ms > 0 && (at < 0 || pl->probe_at_ms < at))
		at = pl->probe_at_ms;
	clock_gettime(CLOCK_MONOTONIC, ts);
	if (at < 0) {
		ts->tv_sec += 3600;
		return;
	}
	at -= kms_now_ms();
	if (at < 1)
		at = 1;
	ts->tv_sec += (time_t)(at / 1000);
	ts->tv_nsec += (long)((at % 1000) * 1000000);
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

static void *pool_main(void *arg)
{
	struct kmsd_pool *pl = arg;
	struct kmsd_conf *conf = pl->conf;

	pthread_mutex_lock(&pl->lock);
	while (!pl->stopping) {
		int64_t t = kms_now_ms();
		size_t target = (size_t)pl->c->prefetch, have;
		struct timespec ts;

		expire(pl, t);
		/* Below the low-water mark (or empty): up to the target, with
		 * the keys a predecessor's refill brings. */
		have = pl->n + coming(pl);
		if (have < (size_t)pl->c->prefetch_low || have == 0)
			pl->filling = 1;
		if (have >= target)
			pl->filling = 0;
		if (pl->filling && t >= pl->retry_at_ms) {
			refill(pl, target - have);
			if (pl->stopping)
				break;
			if (pl->n + coming(pl) >= target)
				pl->filling = 0;
			else if (pl->retry_at_ms == 0)
				continue;
		}
		/* Anything said while the status was asked: look again. */
		if (!pl->stopping && (pl->probe_at_ms == 0 || t >= pl->probe_at_ms) &&
		    probe(pl, t))
			continue;
		next_wake(pl, &ts);
		pthread_cond_timedwait(&pl->wake, &pl->lock, &ts);
	}
	pl->running = 0;
	pthread_mutex_unlock(&pl->lock);
	kmsd_conf_put(conf);
	/* Its OpenSSL state (the thread's random generator) freed now, not
	 * by a destructor after it is counted gone: kmstored may exit then. */
	OPENSSL_thread_stop();
	pthread_mutex_lock(&threads_lock);
	threads--;
	pthread_cond_broadcast(&threads_gone);
	pthread_mutex_unlock(&threads_lock);
	return NULL;
}

int kmsd_pool_start(struct kmsd_pool *pl, struct kmsd_conf *conf)
{
	pthread_attr_t attr;
	pthread_t t;
	int rc;

	pl->conf = conf;
	atomic_fetch_add(&conf->refs, 1);
	pl->running = 1;
	pthread_mutex_lock(&threads_lock);
	threads++;
	pthread_mutex_unlock(&threads_lock);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&t, &attr, pool_main, pl);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		pl->running = 0;
		pthread_mutex_lock(&threads_lock);
		threads--;
		pthread_mutex_unlock(&threads_lock);
		atomic_fetch_sub(&conf->refs, 1);
		kmsd_log(KMS_LOG_ERROR, "profile '%s': no pool thread: %s",
			 kms_profile_name(pl->p), strerror(rc));
		return -1;
	}
	return 0;
}

/* The keys of a pool that stops with no heir. Each was taken from the KME
 * and waits, unused, at the peer's KME: told and counted, as the keys of
 * its refill under way are (hand_over). The lock is held. */
static void drop_all(struct kmsd_pool *pl)
{
	size_t gone = pl->n;

	for (size_t i = 0; i < pl->n; i++)
		kms_key_free(pl->keys[i].key);
	pl->n = 0;
	if (gone == 0)
		return;
	kmsd_metric_pool_dropped(kms_profile_name(pl->p), (long)gone);
	kmsd_log(KMS_LOG_INFO, "profile '%s': %zu prefetched key%s dropped unused: %s",
		 kms_profile_name(pl->p), gone, gone == 1 ? "" : "s",
		 atomic_load(&kmsd_stopping) ? "kmstored stops" :
		 "the reload removed or changed the profile");
}

void kmsd_pool_stop(struct kmsd_pool *pl)
{
	if (pl == NULL)
		return;
	pthread_mutex_lock(&pl->lock);
	pl->stopping = 1;
	if (pl->heir == NULL)
		drop_all(pl);
	pthread_cond_signal(&pl->wake);
	pthread_mutex_unlock(&pl->lock);
}

int kmsd_pools_wait(int seconds)
{
	struct timespec until;
	int all;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += seconds;
	pthread_mutex_lock(&threads_lock);
	while (threads > 0 &&
	       pthread_cond_timedwait(&threads_gone, &threads_lock, &until) == 0)
		;
	all = threads == 0;
	pthread_mutex_unlock(&threads_lock);
	return all;
}

/* The settings a pool's keys depend on: the same KMEs, SAEs and size. */
static int same_source(const kms_profile *a, const kms_profile *b)
{
	static const char *const names[] = {
		"url", "local-sae-id", "peer-sae-id", "key-size",
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const char *x = kms_profile_setting(a, names[i]);
		const char *y = kms_profile_setting(b, names[i]);

		if ((x == NULL) != (y == NULL) || (x != NULL && strcmp(x, y) != 0))
			return 0;
	}
	return strcmp(kms_profile_name(a), kms_profile_name(b)) == 0;
}

void kmsd_pool_adopt(struct kmsd_pool *to, struct kmsd_conf *to_conf,
		     struct kmsd_pool *from)
{
	size_t moved = 0, gone;

	if (to == NULL || from == NULL || !same_source(to->p, from->p))
		return;
	/* The old pool first (the lock order); the new one runs no thread
	 * yet. Stopping and the heir are set together: a refill that ends
	 * meanwhile finds either both or neither. */
	pthread_mutex_lock(&from->lock);
	pthread_mutex_lock(&to->lock);
	if (from->heir == NULL) {
		while (moved < from->n && to->n < (size_t)to->c->prefetch) {
			place(to, from->keys[moved].key, from->keys[moved].born_ms, 0);
			moved++;
		}
		for (size_t i = moved; i < from->n; i++)
			kms_key_free(from->keys[i].key);
		gone = from->n - moved;
		from->n = 0;
		if (gone > 0) {
			kmsd_metric_pool_dropped(kms_profile_name(to->p), (long)gone);
			kmsd_log(KMS_LOG_INFO, "profile '%s': %zu prefetched key%s "
				 "dropped unused: no room in the pool (prefetch = "
				 "%ld)", kms_profile_name(to->p), gone,
				 gone == 1 ? "" : "s", to->c->prefetch);
		}
		to->incoming += (long)from->in_flight + from->incoming;
		from->stopping = 1;
		from->heir = to;
		from->heir_conf = to_conf;
		atomic_fetch_add(&to_conf->refs, 1);
		pthread_cond_signal(&from->wake);
	}
	pthread_mutex_unlock(&to->lock);
	pthread_mutex_unlock(&from->lock);
}

void kmsd_pool_outage(struct kmsd_pool *pl)
{
	pthread_mutex_lock(&pl->lock);
	if (pl->probe_at_ms == 0)
		pthread_cond_signal(&pl->wake);
	pthread_mutex_unlock(&pl->lock);
}

kms_key *kmsd_pool_take(struct kmsd_pool *pl, int64_t *born_ms)
{
	kms_key *key = NULL;

	pthread_mutex_lock(&pl->lock);
	expire(pl, kms_now_ms());
	if (pl->n > 0) {
		key = pl->keys[0].key;
		*born_ms = pl->keys[0].born_ms;
		memmove(pl->keys, pl->keys + 1, (pl->n - 1) * sizeof(*pl->keys));
		pl->n--;
	}
	if (pl->n < (size_t)pl->c->prefetch_low || key == NULL)
		pthread_cond_signal(&pl->wake);
	pthread_mutex_unlock(&pl->lock);
	return key;
}

const char *kmsd_pool_put_back(struct kmsd_pool *pl, kms_key *key,
			       int64_t born_ms)
{
	struct kmsd_pool *to = lock_heir(pl);
	const char *why = NULL;

	if (to == NULL) {
		why = atomic_load(&kmsd_stopping) ? "kmstored stops" :
		      "its profile was removed or changed by a reload";
	} else if (to->n >= (size_t)to->c->prefetch) {
		why = "no room in the pool";
	} else {
		place(to, key, born_ms, 1);
		expire(to, kms_now_ms());
		pthread_cond_signal(&to->wake); /* its oldest key may be older */
	}
	if (to != NULL)
		pthread_mutex_unlock(&to->lock);
	if (why != NULL) {
		kmsd_metric_pool_dropped(kms_profile_name(pl->p), 1);
		kms_key_free(key);
	}
	return why;
}

void kmsd_pool_figures(struct kmsd_pool *pl, long *keys, long *target)
{
	pthread_mutex_lock(&pl->lock);
	*keys = (long)pl->n;
	*target = pl->c->prefetch;
	pthread_mutex_unlock(&pl->lock);
}
