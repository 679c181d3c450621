/* serve.c - one client connection of kmstored: read a request (bounded in
 * size, and in time once it has begun), answer it from the configuration
 * in force, repeat until the client goes. Replies that hold a key are
 * built in locked memory and wiped once sent. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "kmstored.h"
#include "qkd.h"
#include "secmem.h"
#include "store.h"
#include "wire.h"

#define IO_TIMEOUT_MS 5000 /* the rest of a request once begun; a reply */

atomic_int kmsd_stopping;

/* Non-secret settings a client may see of a profile it may use: what
 * `kmstore profiles` shows, and the timeout its wait is bounded by. */
static const char *const shown[] = {
	"key-id", "url", "local-sae-id", "peer-sae-id", "key-size", "timeout",
};

/* Reads len bytes by *deadline; with *deadline 0 the first may take as
 * long as the client likes (an idle connection), and sets it to
 * IO_TIMEOUT_MS after that byte: one deadline for a whole request, header
 * and body, from its first byte. 0, or -1 when the client went away or
 * stalled. */
static int read_full(int fd, uint8_t *p, size_t len, int64_t *deadline)
{
	int forever = *deadline == 0;

	while (len > 0) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int64_t left = *deadline - kms_now_ms();
		ssize_t n;

		if (!forever && left <= 0)
			return -1;
		if (poll(&pfd, 1, forever ? -1 : (int)left) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		n = recv(fd, p, len, MSG_DONTWAIT);
		if (n == 0)
			return -1;
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
		if (forever) {
			forever = 0;
			*deadline = kms_now_ms() + IO_TIMEOUT_MS;
		}
	}
	return 0;
}

/* 0, or -1 with errno set (ETIMEDOUT: the client read nothing for
 * IO_TIMEOUT_MS); *sent says how many bytes went out either way. */
static int write_full(int fd, const uint8_t *p, size_t len, size_t *sent)
{
	int64_t deadline = kms_now_ms() + IO_TIMEOUT_MS;

	*sent = 0;
	while (len > 0) {
		struct pollfd pfd = { .fd = fd, .events = POLLOUT };
		int64_t left = deadline - kms_now_ms();
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n > 0) {
			p += n;
			len -= (size_t)n;
			*sent += (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -1;
		if (left <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR)
			return -1;
	}
	return 0;
}

/* 0, or -1 with errno set (as write_full; ENOMEM: not built). */
static int send_reply(int fd, struct kms_wire_buf *b, size_t *sent)
{
	int rc = -1, e = ENOMEM;

	*sent = 0;
	if (kms_wire_finish(b) == 0 && (rc = write_full(fd, b->data, b->len,
							 sent)) != 0)
		e = errno;
	kms_wire_free(b);
	errno = e;
	return rc;
}

static int send_error(int fd, const kms_error *e)
{
	struct kms_wire_buf b;
	size_t sent;

	if (kms_wire_init(&b, KMS_WIRE_HEADER + 32 + KMS_ERROR_MAX, 0,
			  KMS_WIRE_ERROR) != 0)
		return -1;
	kms_wire_put_error(&b, e);
	return send_reply(fd, &b, &sent);
}

static kms_rc ok_reply(struct kms_wire_buf *b, size_t cap, int secret,
		       kms_error *err)
{
	if (kms_wire_init(b, cap, secret, KMS_WIRE_OK) != 0)
		return kms_fail(err, KMS_ERR_SYSTEM, "out of memory");
	return KMS_OK;
}

/* All the profiles open to the client, or the one it names (a client's
 * store asks so about a name it was not given: kmstored says why). */
static kms_rc do_profiles(struct kmsd_client *c,
			  const struct kms_wire_request *q,
			  struct kms_wire_buf *b, kms_error *err)
{
	struct kmsd_conf *conf = kmsd_conf_get();
	kms_store *st = conf->store;
	size_t open = 0, only = 0;
	kms_profile *one;
	kms_rc rc = KMS_OK;

	if (q->has_profile)
		rc = kmsd_conf_profile(conf, c, q->profile, &one, &only, err);
	if (rc == KMS_OK)
		rc = ok_reply(b, KMS_WIRE_REPLY_MAX, 0, err);
	if (rc == KMS_OK)
		kms_wire_put_str(b, KMS_T_CONFIG, kms_store_path(st));
	for (size_t i = 0; rc == KMS_OK && i < kms_store_profile_count(st); i++) {
		const kms_profile *p = kms_store_profile_at(st, i);

		if (!kmsd_rule_allows(&conf->rules[i], c) ||
		    (q->has_profile && i != only))
			continue;
		open++;
		kms_wire_put_str(b, KMS_T_PROFILE, kms_profile_name(p));
		kms_wire_put_str(b, KMS_T_TYPE, kms_profile_type(p));
		kms_wire_put_u32(b, KMS_T_KEY_SIZE, (uint32_t)kms_profile_key_size(p));
		for (size_t k = 0; k < sizeof(shown) / sizeof(shown[0]); k++) {
			const char *v = kms_profile_setting(p, shown[k]);
			char s[KMS_WIRE_SETTING_MAX + 1];

			if (v != NULL && (size_t)snprintf(s, sizeof(s), "%s=%s", shown[k],
							  v) < sizeof(s))
				kms_wire_put_str(b, KMS_T_SETTING, s);
		}
	}
	if (rc == KMS_OK && open == 0 && !c->admin && kms_store_profile_count(st) > 0) {
		kms_wire_free(b);
		kmsd_metric_refused();
		kmsd_log_client(c, KMS_LOG_WARNING, "refused %s (uid %u, "
				"pid %d): no profile is open to it",
				kmsd_client_user(c), (unsigned)c->uid,
				(int)c->pid);
		rc = kms_fail(err, KMS_ERR_PERMISSION,
			      "kmstored: no profile is open to user %s (uid %u); see "
			      "allow-users and allow-groups in kmstore.conf(5)",
			      kmsd_client_user(c), (unsigned)c->uid);
	}
	kmsd_conf_put(conf);
	return rc;
}

/* The key's check value for a log line; "none" (with the reason logged)
 * when libcrypto cannot compute it: nothing to compare with the peer's. */
static const char *check_value(const kms_key *key, char kcv[KMS_KCV_LEN + 1])
{
	kms_error err;

	if (kms_key_check_value_ex(key, kcv, &err) == KMS_OK)
		return kcv;
	kmsd_log(KMS_LOG_WARNING, "key %s: %s", kms_key_id(key), err.message);
	return "none";
}

static void log_key(struct kmsd_client *c, const kms_key *key,
		    const char *how)
{
	char buf[KMS_KCV_LEN + 1];
	const char *kcv = check_value(key, buf);

	kmsd_log(KMS_LOG_INFO, "%s (uid %u, pid %d): profile '%s': key %s %s "
		 "(check value %s)", kmsd_client_user(c), (unsigned)c->uid,
		 (int)c->pid, kms_key_profile(key), kms_key_id(key), how, kcv);
}

/* "A key for use now" from the profile's pool, if it has one, following
 * its outage policy; *key NULL when the KME must be asked. */
static kms_rc from_pool(kms_profile *p, struct kmsd_pool *pool, kms_key **key,
			int64_t *born_ms, int *in_outage, kms_error *err)
{
	const struct kms_qkd_config *qc = p->state;
	int down = kms_qkd_all_down(p);
	long left, target;

	*key = NULL;
	if (down)
		kmsd_pool_outage(pool);
	if (down && qc->outage == KMS_OUTAGE_FAIL) {
		kmsd_pool_figures(pool, &left, &target);
		return kms_fail(err, KMS_ERR_UNREACHABLE,
				"profile '%s': every KME is down and its outage "
				"policy is 'fail': no key (%ld prefetched keys kept "
				"unused)", kms_profile_name(p), left);
	}
	*key = kmsd_pool_take(pool, born_ms);
	*in_outage = *key != NULL && down;
	return KMS_OK;
}

/* A key on its way to a client. It is counted and logged once its reply
 * is written (key_sent), not before: a client may have gone meanwhile (it
 * gave up after its own timeout), and a key from the pool then goes back
 * to the pool. */
struct key_out {
	kms_key *key;           /* NULL: no key in the reply */
	struct kmsd_conf *conf; /* held until then: the pool's snapshot */
	struct kmsd_pool *pool; /* the key's pool; NULL: from its profile */
	const char *source;     /* the metrics' label: pool, kme, static */
	int64_t born_ms;        /* when the pool got it */
	int by_id;
	int in_outage;          /* from the pool, every KME down */
};

static kms_rc do_key(struct kmsd_client *c,
		     const struct kms_wire_request *q, struct kms_wire_buf *b,
		     struct key_out *out, kms_error *err)
{
	struct kmsd_conf *conf = kmsd_conf_get();
	kms_key *key = NULL;
	kms_profile *p = NULL;
	size_t i = 0;
	int64_t born = 0;
	int refused;
	kms_rc rc;

	rc = kmsd_conf_profile(conf, c, q->profile, &p, &i, err);
	/* A refusal by the access rules, logged and counted there; the
	 * library's KMS_ERR_PERMISSION (a key file or the SAE's TLS key of a
	 * loose mode or another owner) fails every request: told below. */
	refused = rc == KMS_ERR_PERMISSION;
	if (rc == KMS_OK && !q->has_key_id && conf->pools[i] != NULL) {
		rc = from_pool(p, conf->pools[i], &key, &born, &out->in_outage,
			       err);
		if (key != NULL)
			out->pool = conf->pools[i];
	}
	if (rc == KMS_OK && key == NULL) {
		rc = q->has_key_id ? kms_profile_get_key_by_id(p, q->key_id, &key, err) :
				     kms_profile_get_key(p, &key, err);
	}
	if (rc != KMS_OK && !refused) {
		/* a name from the configuration, not one a client made up:
		 * each would be a series of its own */
		kmsd_metric_failed(p != NULL ? kms_profile_name(p) : "", rc);
		kmsd_log_client(c, rc == KMS_ERR_NOT_FOUND ?
				KMS_LOG_WARNING : KMS_LOG_ERROR,
				"%s (uid %u, pid %d): %s: %s",
				kmsd_client_user(c), (unsigned)c->uid,
				(int)c->pid, q->has_key_id ? "key by ID" :
				"key for use now", err->message);
	}
	if (rc != KMS_OK) {
		kmsd_conf_put(conf);
		return rc;
	}
	out->key = key;
	out->conf = conf;
	/* A static key is no KME's: counted under its type's name. */
	out->source = out->pool != NULL ? "pool" :
		      strcmp(kms_profile_type(p), "qkd") == 0 ? "kme" :
		      kms_profile_type(p);
	out->born_ms = born;
	out->by_id = q->has_key_id;
	rc = ok_reply(b, KMS_WIRE_KEY_REPLY_MAX, 1, err);
	if (rc == KMS_OK) {
		kms_wire_put_str(b, KMS_T_PROFILE, kms_key_profile(key));
		kms_wire_put_str(b, KMS_T_KEY_ID, kms_key_id(key));
		kms_wire_put(b, KMS_T_KEY, kms_key_bytes(key), kms_key_size(key));
	}
	return rc;
}

/* After the reply to a KEY request: the key served, counted and logged;
 * or not delivered (why: the client has gone, ...), and then back in its
 * pool, unless some of the reply went out or the pool has no room. The
 * key is never logged, its ID and check value are. */
static void key_sent(struct kmsd_client *c, struct key_out *o,
		     size_t sent, const char *why)
{
	char kcv_buf[KMS_KCV_LEN + 1], id[KMS_KEY_ID_MAX + 1];
	char profile[KMS_PROFILE_NAME_MAX + 1], fate[96];
	const char *not_back = NULL, *kcv;
	kms_log_level level = KMS_LOG_WARNING;

	if (why == NULL) {
		if (o->in_outage) {
			long left, target;

			kmsd_pool_figures(o->pool, &left, &target);
			kmsd_metric_pool_outage(kms_key_profile(o->key));
			kmsd_log(KMS_LOG_WARNING, "profile '%s': every KME is down: "
				 "key %s served from the pool, %ld left",
				 kms_key_profile(o->key), kms_key_id(o->key), left);
		}
		kmsd_metric_key(kms_key_profile(o->key), o->by_id, o->source);
		log_key(c, o->key, o->by_id ? "found" : o->pool != NULL ?
			"for use now, from the pool" : "for use now");
		kms_key_free(o->key);
		kmsd_conf_put(o->conf);
		return;
	}
	/* Copied first: once back in the pool, another client may take it. */
	kcv = check_value(o->key, kcv_buf);
	snprintf(id, sizeof(id), "%s", kms_key_id(o->key));
	snprintf(profile, sizeof(profile), "%s", kms_key_profile(o->key));
	kmsd_metric_undelivered(profile, o->by_id, o->source);
	if (o->pool == NULL && strcmp(o->source, "kme") != 0) {
		kms_key_free(o->key);
		level = KMS_LOG_INFO;
		snprintf(fate, sizeof(fate), "nothing lost (a %s key)", o->source);
	} else if (o->pool == NULL) {
		kms_key_free(o->key);
		snprintf(fate, sizeof(fate), "consumed at the KME, lost");
	} else if (sent > 0) {
		kms_key_free(o->key);
		kmsd_metric_pool_dropped(profile, 1);
		snprintf(fate, sizeof(fate), "dropped, part of the reply went out");
	} else if ((not_back = kmsd_pool_put_back(o->pool, o->key,
						  o->born_ms)) != NULL) {
		snprintf(fate, sizeof(fate), "dropped, %s", not_back);
	} else {
		level = KMS_LOG_INFO;
		snprintf(fate, sizeof(fate), "back in the pool");
	}
	o->key = NULL;
	kmsd_log(level, "%s (uid %u, pid %d): profile '%s': key %s %s not "
		 "delivered (%s): %s (check value %s)", kmsd_client_user(c),
		 (unsigned)c->uid, (int)c->pid, profile, id,
		 o->by_id ? "by ID" : o->pool != NULL ?
		 "for use now, from the pool," : "for use now", why, fate, kcv);
	kmsd_conf_put(o->conf);
}

/* A status that failed (every KME down) still says what an operator
 * needs then: each KME's health and what the pool holds; an ERROR reply
 * carrying them. */
static kms_rc do_status(struct kmsd_client *c,
			const struct kms_wire_request *q, struct kms_wire_buf *b,
			kms_error *err)
{
	struct kmsd_conf *conf = kmsd_conf_get();
	kms_profile *p;
	kms_status st;
	size_t i = 0;
	kms_rc rc, asked;

	rc = kmsd_conf_profile(conf, c, q->profile, &p, &i, err);
	if (rc != KMS_OK) {
		kmsd_conf_put(conf);
		return rc;
	}
	asked = kms_profile_status(p, &st, err);
	if (conf->pools[i] != NULL)
		kmsd_pool_figures(conf->pools[i], &st.pool_keys, &st.pool_target);
	kmsd_conf_put(conf);
	if (asked != KMS_OK && st.n_kmes == 0 && st.pool_target < 0)
		return asked;
	if (kms_wire_init(b, KMS_WIRE_REPLY_MAX, 0,
			  asked == KMS_OK ? KMS_WIRE_OK : KMS_WIRE_ERROR) != 0)
		return kms_fail(err, KMS_ERR_SYSTEM, "out of memory");
	if (asked != KMS_OK)
		kms_wire_put_error(b, err);
	kms_wire_put_status(b, &st);
	return KMS_OK;
}

static kms_rc do_check(struct kmsd_client *c,
		       const struct kms_wire_request *q, struct kms_wire_buf *b,
		       kms_error *err)
{
	struct kmsd_conf *conf = kmsd_conf_get();
	kms_profile *p;
	kms_rc rc;

	/* The profile as loaded: its users and groups were looked up then,
	 * and those numbers are the rule in force (a client's check makes
	 * no directory lookups, which a down sssd would hold). */
	rc = kmsd_conf_profile(conf, c, q->profile, &p, NULL, err);
	if (rc == KMS_OK)
		rc = kms_profile_check_files(p, err);
	if (rc == KMS_OK)
		rc = kms_profile_check_dates(p, err);
	kmsd_conf_put(conf);
	return rc == KMS_OK ? ok_reply(b, KMS_WIRE_HEADER, 0, err) : rc;
}

static kms_rc admin_only(struct kmsd_client *c, const char *what,
			 kms_error *err)
{
	if (c->admin)
		return KMS_OK;
	kmsd_metric_refused();
	kmsd_log_client(c, KMS_LOG_WARNING, "refused %s (uid %u, pid %d): "
			"%s is for root", kmsd_client_user(c), (unsigned)c->uid,
			(int)c->pid, what);
	return kms_fail(err, KMS_ERR_PERMISSION,
			"kmstored: %s is for root and kmstored's own user, not %s "
			"(uid %u)", what, kmsd_client_user(c),
			(unsigned)c->uid);
}

static kms_rc do_metrics(struct kmsd_client *c, struct kms_wire_buf *b,
			 kms_error *err)
{
	kms_rc rc = admin_only(c, "the metrics", err);
	char *text;

	if (rc != KMS_OK)
		return rc;
	text = kmsd_metrics_text(err);
	if (text == NULL)
		return err->code;
	rc = ok_reply(b, KMS_WIRE_REPLY_MAX, 0, err);
	if (rc == KMS_OK)
		kms_wire_put_str(b, KMS_T_TEXT, text);
	free(text);
	return rc;
}

static kms_rc do_reload(struct kmsd_client *c, struct kms_wire_buf *b,
			kms_error *err)
{
	char summary[KMS_ERROR_MAX];
	kms_rc rc = admin_only(c, "a reload", err);

	if (rc != KMS_OK)
		return rc;
	kmsd_notify("RELOADING=1");
	rc = kmsd_conf_reload(summary, sizeof(summary), err);
	kmsd_notify("READY=1");
	if (rc != KMS_OK) {
		kmsd_log(KMS_LOG_ERROR, "%s (asked by %s, pid %d)", err->message,
			 kmsd_client_user(c), (int)c->pid);
		return rc;
	}
	kmsd_log(KMS_LOG_INFO, "%s (asked by %s, pid %d)", summary,
		 kmsd_client_user(c), (int)c->pid);
	rc = ok_reply(b, KMS_WIRE_HEADER + 8 + sizeof(summary), 0, err);
	if (rc == KMS_OK)
		kms_wire_put_str(b, KMS_T_TEXT, summary);
	return rc;
}

static kms_rc handle(struct kmsd_client *c,
		     const struct kms_wire_request *q, struct kms_wire_buf *b,
		     struct key_out *out, kms_error *err)
{
	switch (q->kind) {
	case KMS_WIRE_PROFILES:
		return do_profiles(c, q, b, err);
	case KMS_WIRE_KEY:
		return do_key(c, q, b, out, err);
	case KMS_WIRE_STATUS:
		return do_status(c, q, b, err);
	case KMS_WIRE_CHECK:
		return do_check(c, q, b, err);
	case KMS_WIRE_RELOAD:
		return do_reload(c, b, err);
	case KMS_WIRE_METRICS:
		return do_metrics(c, b, err);
	default:
		return kms_fail(err, KMS_ERR_UNSUPPORTED,
				"kmstored: this request is not served here");
	}
}

/* One request and its reply: 0 to go on, -1 to close the connection. */
static int serve_one(int fd, struct kmsd_client *c)
{
	uint8_t h[KMS_WIRE_HEADER], body[KMS_WIRE_REQUEST_MAX];
	struct kms_wire_request q;
	struct kms_wire_buf b = { 0 };
	struct key_out out = { 0 };
	char why[160];
	kms_error err;
	uint32_t len;
	size_t sent = 0;
	int64_t deadline = 0; /* set by the request's first byte */
	int kind, rc;

	if (read_full(fd, h, sizeof(h), &deadline) != 0)
		return -1;
	if (kms_wire_header(h, KMS_WIRE_REQUEST_MAX, &kind, &len, why,
			    sizeof(why)) != 0) {
		kms_fail(&err, KMS_ERR_USAGE, "kmstored: bad request: %s", why);
		kmsd_log_client(c, KMS_LOG_WARNING, "%s (uid %u, pid %d): "
				"%s", kmsd_client_user(c), (unsigned)c->uid,
				(int)c->pid, err.message);
		send_error(fd, &err);
		return -1;
	}
	if (read_full(fd, body, len, &deadline) != 0)
		return -1;
	if (kms_wire_parse_request(kind, body, len, &q, &err) != KMS_OK) {
		kms_error_prefix(&err, "kmstored: bad request");
		kmsd_log_client(c, KMS_LOG_WARNING, "%s (uid %u, pid %d): "
				"%s", kmsd_client_user(c), (unsigned)c->uid,
				(int)c->pid, err.message);
		send_error(fd, &err);
		return -1;
	}
	if (handle(c, &q, &b, &out, &err) != KMS_OK) {
		rc = send_error(fd, &err);
		if (out.key != NULL) /* the reply could not be built */
			key_sent(c, &out, 0, err.message);
	} else {
		rc = send_reply(fd, &b, &sent);
		if (out.key != NULL)
			key_sent(c, &out, sent, rc == 0 ? NULL :
				 errno == EPIPE || errno == ECONNRESET ?
				 "the client is gone" : errno == ETIMEDOUT ?
				 "the client did not read it in 5 s" : strerror(errno));
	}
	/* The thread may now wait for a long while: no key in its registers. */
	if (q.kind == KMS_WIRE_KEY)
		kms_scrub_registers();
	return rc;
}

void kmsd_serve(int fd, struct kmsd_client *c)
{
	while (!atomic_load(&kmsd_stopping) && serve_one(fd, c) == 0)
		;
}
