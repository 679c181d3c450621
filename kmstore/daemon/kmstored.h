/* kmstored.h - what the parts of kmstored share.
 *
 * kmstored holds one configuration (a snapshot, replaced whole on reload),
 * listens on a UNIX socket and serves each client connection on a thread
 * of its own, so a KME that is slow for one profile never holds up another
 * client. Who may ask for what is decided per profile from the client's
 * SO_PEERCRED credentials (access.c). */
#ifndef KMSTORED_H
#define KMSTORED_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "kmstore.h"
#include "allow.h"
#include "error.h"

/* log.c: stderr (the journal, with <N> priority prefixes when it reads
 * it) or syslog once detached; the library's warnings too. */
enum kmsd_log_target { KMSD_LOG_STDERR, KMSD_LOG_SYSLOG };
void kmsd_log_setup(enum kmsd_log_target target, kms_log_level max);
void kmsd_log(kms_log_level level, const char *fmt, ...) KMS_PRINTF(2, 3);
/* While on, a line (kmstored's or the library's) that was logged already
 * since it was turned on is not logged again. */
void kmsd_log_once(int on);
/* A line a client's own act causes (a refusal, a bad request): at most a
 * few per user in a window, then one line with the count left out; not
 * limited for root and kmstored's own user (c->admin). */
struct kmsd_client;
void kmsd_log_client(const struct kmsd_client *c, kms_log_level level,
		     const char *fmt, ...) KMS_PRINTF(3, 4);
/* For the main loop: a descriptor readable when a summary line may be due,
 * and kmsd_log_tick, which writes those due (all pending, at shutdown) and
 * returns the milliseconds until the next (-1: none pending). */
int kmsd_log_fd(void);
int kmsd_log_tick(int all);

/* access.c: a client, as the kernel vouches for it. */
struct kmsd_client {
	pid_t pid;
	uid_t uid;
	gid_t gid;
	gid_t *groups; /* supplementary, SO_PEERGROUPS */
	size_t n_groups;
	char user[64]; /* the number; the name once kmsd_client_user has it */
	int named;     /* kmsd_client_user has looked the name up */
	int admin;     /* root or kmstored's own user: every profile, reload */
};

/* Who is at the other end (SO_PEERCRED only: cheap, for a refusal);
 * kmsd_client_groups adds its supplementary groups (SO_PEERGROUPS). */
kms_rc kmsd_client_peer(int fd, struct kmsd_client *c, kms_error *err);
void kmsd_client_groups(int fd, struct kmsd_client *c);
/* The user's name for messages and the log (the number without one),
 * looked up the first time it is asked for and kept a minute for every
 * connection of that user. Access never depends on it. It may wait for a
 * directory service: only the client's own thread asks for it, never the
 * one that accepts connections. */
const char *kmsd_client_user(struct kmsd_client *c);
void kmsd_client_clear(struct kmsd_client *c);

/* A profile's allow-users and allow-groups, resolved to numbers at load
 * by the library (allow.h: kms_allow_load, kms_allow_clear). */
int kmsd_rule_allows(const struct kms_allow *r, const struct kmsd_client *c);

/* conf.c: the configuration in force. Requests hold a reference for
 * their whole duration; a reload swaps in a new one only if it loads. */
struct kmsd_pool;

struct kmsd_conf {
	atomic_int refs;
	kms_store *store;
	struct kms_allow *rules; /* one per profile, same order */
	struct kmsd_pool **pools; /* one per profile, NULL without prefetch */
	time_t loaded;
};

/* Loads the configuration at start; on failure *by_lookup says whether a
 * user or group lookup failed in a way that may pass later. */
kms_rc kmsd_conf_init(const char *path, int *by_lookup, kms_error *err);
/* Starts the pools' refills, once kmstored can serve: a start that fails
 * after kmsd_conf_init leaves no thread to race exit's cleanup. */
void kmsd_conf_start(void);
struct kmsd_conf *kmsd_conf_get(void);
void kmsd_conf_put(struct kmsd_conf *c);
/* Reads the file again; on failure the old configuration stays and err
 * says why. summary (may be NULL) gets a line for the log and the client. */
kms_rc kmsd_conf_reload(char *summary, size_t size, kms_error *err);
void kmsd_conf_fini(void);
int kmsd_conf_has_pools(void);
/* The profile named, if the client may use it: KMS_ERR_NOT_FOUND,
 * KMS_ERR_PERMISSION otherwise (logged). */
kms_rc kmsd_conf_profile(const struct kmsd_conf *c, struct kmsd_client *cl,
			 const char *name,
			 kms_profile **p, size_t *index, kms_error *err);

/* pool.c: prefetched keys of a QKD profile with prefetch = N. */
struct kmsd_pool *kmsd_pool_new(kms_profile *p); /* NULL: no pool wanted */
int kmsd_pool_start(struct kmsd_pool *pl, struct kmsd_conf *c);
/* Stops the refills; the keys no pool adopted (kmsd_pool_adopt) are
 * dropped, logged and counted now, not wiped unseen with the snapshot. */
void kmsd_pool_stop(struct kmsd_pool *pl);
void kmsd_pool_free(struct kmsd_pool *pl);
/* At a reload, if from and to take keys from the same KMEs: moves the keys
 * of from into to (of snapshot to_conf, not started yet), and stops from,
 * whose refill under way then brings its keys to to. */
void kmsd_pool_adopt(struct kmsd_pool *to, struct kmsd_conf *to_conf,
		     struct kmsd_pool *from);
/* The oldest key and when the pool got it; NULL when empty. */
kms_key *kmsd_pool_take(struct kmsd_pool *pl, int64_t *born_ms);
/* A key taken but not delivered, back in its place by age (in the pool
 * that adopted pl, after a reload); NULL, or why not (the key is then
 * dropped, and counted). Takes the key either way. */
const char *kmsd_pool_put_back(struct kmsd_pool *pl, kms_key *key,
			       int64_t born_ms);
/* Every KME is down: the pool asks a status as the first is back from its
 * back-off, so that the outage ends when a KME answers. */
void kmsd_pool_outage(struct kmsd_pool *pl);
void kmsd_pool_figures(struct kmsd_pool *pl, long *keys, long *target);
/* At shutdown: until every pool thread has ended (1), or seconds (0). */
int kmsd_pools_wait(int seconds);

/* metrics.c */
#define KMSD_METRICS_MAX (1024 * 1024 - 64)
void kmsd_metrics_init(void);
/* source: "pool", "kme" (a QKD profile's), or the profile's type
 * ("static"). */
void kmsd_metric_key(const char *profile, int by_id, const char *source);
void kmsd_metric_undelivered(const char *profile, int by_id, const char *source);
void kmsd_metric_failed(const char *profile, kms_rc rc);
void kmsd_metric_refused(void);
void kmsd_metric_reload(int ok);
void kmsd_metric_pool_expired(const char *profile, long n);
void kmsd_metric_pool_dropped(const char *profile, long n);
void kmsd_metric_pool_outage(const char *profile);
void kmsd_metric_stored(const char *profile, const char *kme_id, long count);
/* malloc'ed; NULL when out of memory or over KMSD_METRICS_MAX, err
 * saying which. */
char *kmsd_metrics_text(kms_error *err);
kms_rc kmsd_metrics_serve(const char *addr, kms_error *err);
/* The status poller: every 30 s, each QKD profile with a pool (every QKD
 * profile when the metrics are served over HTTP). */
void kmsd_watch_start(int all_profiles);
/* A poll now (a reload: the gauges follow the new profiles at once). */
void kmsd_watch_now(void);
/* Asks the poller to stop: it ends once its status in flight, if any, is
 * answered or times out. kmsd_watch_wait: until it has ended (1), or
 * seconds (0: it is still in a KME request). */
void kmsd_watch_stop(void);
int kmsd_watch_wait(int seconds);
/* Stops serving the metrics (before the configuration goes: a scrape
 * reads it); kmsd_metrics_fini also frees the series. */
void kmsd_metrics_stop(void);
void kmsd_metrics_fini(void);

/* main.c */
size_t kmsd_connections(void);

/* serve.c: one client connection, until it closes. */
void kmsd_serve(int fd, struct kmsd_client *c);
/* Set at shutdown: connections end after their request in progress. */
extern atomic_int kmsd_stopping;

/* notify.c: systemd's readiness protocol (no-op without it). */
void kmsd_notify(const char *state);

#endif
