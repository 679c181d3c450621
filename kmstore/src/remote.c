/* remote.c - remote profiles: a store whose profiles are kmstored's, so
 * that every face (the command, the OpenSSL provider and engine, the
 * PKCS#11 module) reaches the daemon through the library's own API.
 *
 * The client end of the protocol (wire.h). A process keeps a few idle
 * connections to each daemon, for every store it opens (the OpenSSL
 * provider opens one per OSSL_STORE_open); each request takes one (or
 * opens one), so the threads of one process (pluto's helpers) ask in
 * parallel. Few are kept, and not for long: kmstored serves a user at most
 * 16 connections, and a process that kept what a burst opened would leave
 * the user's other processes none. A connection found closed while idle
 * (kmstored restarted) is replaced without a word;
 * one that closes during a request is an error, and is never retried: a
 * "key for use now" may have been consumed. Every wait is bounded by the
 * profile's timeout and a margin, as kmstored has it: a reload may raise
 * it under a running process (pluto), which learns so when its wait ends.
 * No threads are created here (the PKCS#11 module may not), no signal is
 * raised (MSG_NOSIGNAL), and key bytes are read into locked memory only. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "remote.h"
#include "secmem.h"
#include "store.h"

/* Idle connections, in the whole process: well under kmstored's 16 per
 * user (CLIENTS_PER_USER), which a burst of 16 threads would otherwise
 * keep open for as long as the process lives. One idle for IDLE_MS is
 * closed, when the process next takes or gives back a connection (no
 * thread or timer here). Opening one again is a UNIX connect: cheap. */
#define IDLE_MAX 4
#define IDLE_MS 5000
#define DEFAULT_WAIT_MS 5000 /* requests that name no profile */
#define PROFILE_TIMEOUT_MS 5000 /* a profile without "timeout" */
#define MARGIN_MS 1000          /* beyond the daemon's own deadline */
#define RELOAD_WAIT_MS 30000
#define RENEW_WAIT_MS 500 /* a profile's settings, asked again */

#define PATH_SIZE sizeof(((struct sockaddr_un *)0)->sun_path)

struct kms_remote {
	atomic_int refs;
	char path[PATH_SIZE];
};

/* Idle connections to the daemon at path, oldest first. pid: whose they
 * are; a child forks with none (idle_child), and an entry of another
 * process (a fork that ran no pthread_atfork handler) is forgotten, never
 * closed: its number may be the child's own descriptor by now. */
static struct idle {
	char path[PATH_SIZE];
	int fd;
	pid_t pid;
	int64_t since; /* kms_now_ms() when given back */
} idle[IDLE_MAX];
static size_t n_idle;
static pthread_mutex_t idle_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t idle_once = PTHREAD_ONCE_INIT;
static pid_t forking; /* the parent, from idle_before_fork to idle_child */

struct remote_profile {
	struct kms_remote *r;
	atomic_long wait_ms; /* raised by wait_longer() after a reload */
};

/* How long an exchange may wait for kmstored, until when; for a
 * profile's request, once (renewed), as long as kmstored says the
 * profile's timeout is now. */
struct wait {
	int64_t deadline;
	long wait_ms;
	const char *profile; /* NULL: no renewal */
	atomic_long *shared; /* the profile's wait, for its other requests */
	int renewed;
};

static long renewed_wait(struct kms_remote *r, const char *name);

void kms_remote_unref(struct kms_remote *r)
{
	if (r == NULL || atomic_fetch_sub(&r->refs, 1) != 1)
		return;
	free(r);
}

/* When the library is unloaded (a module's dlclose), its connections go. */
__attribute__((destructor)) static void close_idle(void)
{
	pthread_mutex_lock(&idle_lock);
	for (size_t i = 0; i < n_idle; i++)
		if (idle[i].pid == getpid())
			close(idle[i].fd);
	n_idle = 0;
	pthread_mutex_unlock(&idle_lock);
}

static kms_rc remote_new(const char *path, struct kms_remote **out,
			 kms_error *err)
{
	struct kms_remote *r;

	*out = NULL;
	if (path == NULL || *path == '\0')
		return kms_fail(err, KMS_ERR_USAGE, "no kmstored socket given");
	if (strlen(path) >= sizeof(r->path))
		return kms_fail(err, KMS_ERR_USAGE,
				"kmstored socket path is longer than %zu bytes",
				sizeof(r->path) - 1);
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return kms_fail(err, KMS_ERR_SYSTEM, "out of memory");
	atomic_init(&r->refs, 1);
	strcpy(r->path, path);
	*out = r;
	return KMS_OK;
}

/* An idle connection is dead when it reads as closed (or has anything to
 * read: the daemon never speaks first). */
static int still_open(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	return poll(&pfd, 1, 0) == 0;
}

/* connect() on a UNIX socket fails with EAGAIN while kmstored's queue of
 * connections not yet accepted is full: a moment's backlog (a burst of
 * clients, a user refused at its cap who keeps trying). So it is tried
 * again, after 1 ms, then twice as long each time up to 50 ms, until the
 * request's deadline: short sleeps, no thread, no signal. */
#define CONNECT_RETRY_MIN_MS 1
#define CONNECT_RETRY_MAX_MS 50

static kms_rc dial(struct kms_remote *r, const struct wait *w, int *fd_out,
		   kms_error *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	long pause = CONNECT_RETRY_MIN_MS;
	int64_t left;
	int fd, e;

	strcpy(sa.sun_path, r->path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return kms_fail(err, KMS_ERR_SYSTEM, "kmstored at %s: socket: %s",
				r->path, strerror(errno));
	for (;;) {
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			*fd_out = fd;
			return KMS_OK;
		}
		e = errno;
		if (e == EINTR)
			continue;
		left = w->deadline - kms_now_ms();
		if (e != EAGAIN || left <= 0)
			break;
		/* A failed connect leaves the socket unconnected: it is
		 * tried again as it is. */
		poll(NULL, 0, (int)(pause < left ? pause : left));
		if (pause < CONNECT_RETRY_MAX_MS)
			pause = pause * 2 < CONNECT_RETRY_MAX_MS ?
					pause * 2 : CONNECT_RETRY_MAX_MS;
	}
	close(fd);
	if (e == EACCES || e == EPERM)
		return kms_fail(err, KMS_ERR_PERMISSION,
				"kmstored at %s: cannot connect: %s", r->path,
				strerror(e));
	if (e == EAGAIN)
		return kms_fail(err, KMS_ERR_UNREACHABLE,
				"kmstored at %s is not accepting connections (its "
				"queue stayed full for %.1f s)", r->path,
				w->wait_ms / 1000.0);
	return kms_fail(err, KMS_ERR_UNREACHABLE,
			"kmstored at %s: cannot connect: %s (is kmstored running?)",
			r->path, strerror(e));
}

/* fork(): the lock is taken around it, so a child never inherits it held
 * by a thread that the child does not have; the child closes its copies
 * of the idle connections at once, before it can open anything that would
 * take their numbers (the parent's stay open), and starts with none. */
static void idle_before_fork(void)
{
	pthread_mutex_lock(&idle_lock);
	forking = getpid();
}

static void idle_parent(void)
{
	pthread_mutex_unlock(&idle_lock);
}

static void idle_child(void)
{
	for (size_t i = 0; i < n_idle; i++)
		if (idle[i].pid == forking)
			close(idle[i].fd);
	n_idle = 0;
	pthread_mutex_unlock(&idle_lock);
}

/* glibc unregisters the handlers when the library is unloaded (dlclose). */
static void register_atfork(void)
{
	pthread_atfork(idle_before_fork, idle_parent, idle_child);
}

/* Under idle_lock: takes out the entries idle for IDLE_MS, and those of
 * another process; the descriptors to close (after the lock) go to out. */
static size_t take_stale(int64_t now, pid_t me, int out[IDLE_MAX])
{
	size_t kept = 0, n = 0;

	for (size_t i = 0; i < n_idle; i++) {
		if (idle[i].pid == me && now - idle[i].since < IDLE_MS)
			idle[kept++] = idle[i];
		else if (idle[i].pid == me)
			out[n++] = idle[i].fd;
	}
	n_idle = kept;
	return n;
}

static void close_all(const int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		close(fds[i]);
}

/* The connection given back last, if still open: the older ones are the
 * first to go idle for IDLE_MS. Checked outside the lock. */
static kms_rc take_connection(struct kms_remote *r, const struct wait *w,
			      int *fd, kms_error *err)
{
	pid_t me = getpid();
	int stale[IDLE_MAX];
	size_t n_stale;
	int found;

	pthread_once(&idle_once, register_atfork);
	do {
		found = -1;
		pthread_mutex_lock(&idle_lock);
		n_stale = take_stale(kms_now_ms(), me, stale);
		for (size_t i = n_idle; found < 0 && i-- > 0;) {
			if (strcmp(idle[i].path, r->path) != 0)
				continue;
			found = idle[i].fd;
			memmove(&idle[i], &idle[i + 1],
				(--n_idle - i) * sizeof(idle[0]));
		}
		pthread_mutex_unlock(&idle_lock);
		close_all(stale, n_stale);
		if (found >= 0 && still_open(found)) {
			*fd = found;
			return KMS_OK;
		}
		if (found >= 0)
			close(found);
	} while (found >= 0);
	return dial(r, w, fd, err);
}

static void give_back(struct kms_remote *r, int fd)
{
	pid_t me = getpid();
	int stale[IDLE_MAX];
	size_t n_stale;
	int64_t now = kms_now_ms();

	pthread_mutex_lock(&idle_lock);
	n_stale = take_stale(now, me, stale);
	if (n_idle < IDLE_MAX) {
		strcpy(idle[n_idle].path, r->path);
		idle[n_idle].fd = fd;
		idle[n_idle].pid = me;
		idle[n_idle++].since = now;
		fd = -1;
	}
	pthread_mutex_unlock(&idle_lock);
	close_all(stale, n_stale);
	if (fd >= 0)
		close(fd);
}

/* Waits for fd to be ready for events until deadline: 0, or -1 with the
 * reason in err. */
/* Whether kmstored, still working on a profile's request when its wait
 * ends, gets longer: a reload may have raised the profile's timeout since
 * this process listed it, and kmstored answers within the new one. Giving
 * up first would lose the key it fetches (consumed at the KME). */
static int wait_longer(struct kms_remote *r, struct wait *w)
{
	long now_ms;

	if (w->profile == NULL || w->renewed)
		return 0;
	w->renewed = 1;
	/* What another request of the profile learnt is taken as it is, not
	 * asked again on a connection of its own (kmstored counts a user's
	 * connections); the larger wait is kept for the later requests. */
	now_ms = atomic_load(w->shared);
	if (now_ms <= w->wait_ms)
		now_ms = renewed_wait(r, w->profile);
	if (now_ms <= w->wait_ms)
		return 0;
	for (long was = atomic_load(w->shared);
	     was < now_ms && !atomic_compare_exchange_weak(w->shared, &was, now_ms);)
		;
	w->deadline += now_ms - w->wait_ms;
	w->wait_ms = now_ms;
	return 1;
}

static int wait_fd(struct kms_remote *r, int fd, short events, struct wait *w,
		   kms_error *err)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	int64_t left;
	int n;

	for (;;) {
		left = w->deadline - kms_now_ms();
		if (left <= 0 && events == POLLIN && wait_longer(r, w))
			continue;
		if (left <= 0) {
			kms_fail(err, KMS_ERR_UNREACHABLE,
				 "kmstored at %s did not answer within %.1f s",
				 r->path, w->wait_ms / 1000.0);
			return -1;
		}
		n = poll(&pfd, 1, (int)left);
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR) {
			kms_fail(err, KMS_ERR_SYSTEM, "kmstored at %s: poll: %s",
				 r->path, strerror(errno));
			return -1;
		}
	}
}

static int send_all(struct kms_remote *r, int fd, const uint8_t *p,
		    size_t len, struct wait *w, kms_error *err)
{
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n > 0) {
			p += n;
			len -= (size_t)n;
		} else if (errno == EAGAIN) {
			if (wait_fd(r, fd, POLLOUT, w, err) != 0)
				return -1;
		} else if (errno != EINTR) {
			kms_fail(err, KMS_ERR_UNREACHABLE,
				 "kmstored at %s: the request could not be sent: %s "
				 "(did it stop?)", r->path, strerror(errno));
			return -1;
		}
	}
	return 0;
}

static int recv_all(struct kms_remote *r, int fd, uint8_t *p,
		    size_t len, struct wait *w, kms_error *err)
{
	while (len > 0) {
		ssize_t n = recv(fd, p, len, 0);

		if (n > 0) {
			p += n;
			len -= (size_t)n;
		} else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
			kms_fail(err, KMS_ERR_UNREACHABLE,
				 "kmstored at %s closed the connection before it "
				 "answered%s%s (did it stop or restart?)", r->path,
				 n == 0 ? "" : ": ", n == 0 ? "" : strerror(errno));
			return -1;
		} else if (wait_fd(r, fd, POLLIN, w, err) != 0) {
			return -1;
		}
	}
	return 0;
}

/* A reply: its kind, and its body in *body (locked memory when secret;
 * free with reply_free). */
struct reply {
	int kind;
	uint8_t *body;
	size_t len, cap;
	int secret;
	int keep_error; /* an ERROR reply's body is the caller's too */
};

static void reply_free(struct reply *rep)
{
	if (rep->body == NULL)
		return;
	if (rep->secret) {
		kms_secmem_free(rep->body, rep->cap);
	} else {
		kms_wipe(rep->body, rep->len);
		free(rep->body);
	}
	rep->body = NULL;
}

/* Sends req and reads its reply into rep, waiting as w says (its deadline
 * set here from its wait_ms, which a renewal raises). */
static kms_rc exchange(struct kms_remote *r, struct kms_wire_buf *req,
		       struct wait *w, struct reply *rep, kms_error *err)
{
	uint8_t h[KMS_WIRE_HEADER];
	size_t max = rep->secret ? KMS_WIRE_KEY_REPLY_MAX : KMS_WIRE_REPLY_MAX;
	char why[160];
	uint32_t len;
	int fd = -1;
	kms_rc rc;

	if (kms_wire_finish(req) != 0)
		return kms_fail(err, KMS_ERR_SYSTEM, "a request too large to send");
	w->deadline = kms_now_ms() + w->wait_ms;
	rc = take_connection(r, w, &fd, err);
	if (rc != KMS_OK)
		return rc;
	if (send_all(r, fd, req->data, req->len, w, err) != 0 ||
	    recv_all(r, fd, h, sizeof(h), w, err) != 0) {
		close(fd);
		return err != NULL ? err->code : KMS_ERR_UNREACHABLE;
	}
	if (kms_wire_header(h, max, &rep->kind, &len, why, sizeof(why)) != 0) {
		close(fd);
		return kms_fail(err, KMS_ERR_SYSTEM,
				"kmstored at %s sent a malformed reply: %s", r->path,
				why);
	}
	rep->cap = len > 0 ? len : 1;
	rep->body = rep->secret ? kms_secmem_alloc(rep->cap) : malloc(rep->cap);
	if (rep->body == NULL) {
		close(fd);
		return kms_fail(err, KMS_ERR_SYSTEM, "out of memory");
	}
	rep->len = len;
	if (recv_all(r, fd, rep->body, len, w, err) != 0) {
		close(fd);
		reply_free(rep);
		return err != NULL ? err->code : KMS_ERR_UNREACHABLE;
	}
	give_back(r, fd);
	rc = kms_wire_parse_error(rep->kind, rep->body, rep->len, err);
	if (rc != KMS_OK && !(rep->keep_error && rep->kind == KMS_WIRE_ERROR))
		reply_free(rep);
	return rc;
}

/* ---- the profile type ---- */

static kms_rc profile_request(kms_profile *p, enum kms_wire_kind kind,
			      const char *key_id, struct reply *rep,
			      kms_error *err)
{
	struct remote_profile *rp = p->state;
	struct wait w = { .wait_ms = atomic_load(&rp->wait_ms), .profile = p->name,
			  .shared = &rp->wait_ms };
	struct kms_wire_buf req;
	kms_rc rc;

	if (kms_wire_init(&req, KMS_WIRE_REQUEST_MAX, 0, kind) != 0)
		return kms_fail(err, KMS_ERR_SYSTEM, "out of memory");
	kms_wire_put_str(&req, KMS_T_PROFILE, p->name);
	if (key_id != NULL)
		kms_wire_put_str(&req, KMS_T_KEY_ID, key_id);
	rc = exchange(rp->r, &req, &w, rep, err);
	kms_wire_free(&req);
	return rc;
}

static kms_rc remote_key(kms_profile *p, const char *id, kms_key **out,
			 kms_error *err)
{
	struct reply rep = { .secret = 1 };
	struct kms_wire_key k;
	kms_rc rc;

	rc = profile_request(p, KMS_WIRE_KEY, id, &rep, err);
	if (rc != KMS_OK)
		return rc;
	rc = kms_wire_parse_key(rep.body, rep.len, &k, err);
	if (rc == KMS_OK && (strcmp(k.profile, p->name) != 0 ||
			     (id != NULL && strcmp(k.key_id, id) != 0)))
		rc = kms_fail(err, KMS_ERR_SYSTEM,
			      "kmstored sent a malformed reply: a key of another "
			      "profile or ID than asked");
	if (rc == KMS_OK)
		rc = kms_key_new(p->name, k.key_id, k.key, k.key_len, out, err);
	reply_free(&rep);
	return rc;
}

static kms_rc remote_get_key(kms_profile *p, kms_key **out, kms_error *err)
{
	return remote_key(p, NULL, out, err);
}

static kms_rc remote_get_key_by_id(kms_profile *p, const char *id,
				   kms_key **out, kms_error *err)
{
	return remote_key(p, id, out, err);
}

/* A failed status may carry the KMEs' health and the pool (an outage):
 * into out beside the error, if whole. */
static kms_rc remote_status(kms_profile *p, kms_status *out, kms_error *err)
{
	struct reply rep = { .keep_error = 1 };
	kms_rc rc = profile_request(p, KMS_WIRE_STATUS, NULL, &rep, err);
	kms_status partial = *out;

	if (rc == KMS_OK)
		rc = kms_wire_parse_status(rep.body, rep.len, out, err);
	else if (rep.body != NULL &&
		 kms_wire_parse_status(rep.body, rep.len, &partial, NULL) == KMS_OK)
		*out = partial;
	reply_free(&rep);
	return rc;
}

static kms_rc remote_check(kms_profile *p, kms_error *err)
{
	struct reply rep = { 0 };
	kms_rc rc = profile_request(p, KMS_WIRE_CHECK, NULL, &rep, err);

	reply_free(&rep);
	return rc;
}

static void remote_release(kms_profile *p)
{
	struct remote_profile *rp = p->state;

	kms_remote_unref(rp->r);
	free(rp);
	p->state = NULL;
}

static const struct kms_field no_fields[] = { { NULL, 0 } };

/* Not in the store's table of types: no configuration names it. */
static const struct kms_profile_type remote_type = {
	.name = "remote",
	.fields = no_fields,
	.check = remote_check,
	.get_key = remote_get_key,
	.get_key_by_id = remote_get_key_by_id,
	.status = remote_status,
	.release = remote_release,
};

/* ---- the store ---- */

struct listing {
	struct kms_remote *r;
	kms_store *store;
};

/* A profile's own deadline (its "timeout" setting t, seconds) and a
 * margin: kmstored answers within the first. */
static long wait_for(const char *t)
{
	double s = t != NULL ? strtod(t, NULL) : 0;

	if (!(s > 0 && s <= 300))
		return PROFILE_TIMEOUT_MS + MARGIN_MS;
	return (long)(s * 1000) + MARGIN_MS;
}

/* The "timeout" among a listed profile's settings, or NULL. */
static const char *listed_timeout(const struct kms_wire_profile *wp)
{
	for (size_t i = 0; i < wp->n_settings; i++)
		if (strncmp(wp->settings[i], "timeout=", 8) == 0)
			return wp->settings[i] + 8;
	return NULL;
}

static kms_rc add_listed(void *ctx, const char *config,
			 const struct kms_wire_profile *wp, kms_error *err)
{
	struct listing *l = ctx;
	struct remote_profile *rp;
	kms_profile *p;
	kms_rc rc;

	if (wp == NULL)
		return l->store == NULL ? kms_store_new(config, &l->store, err) :
					  KMS_OK;
	rc = kms_store_add_profile(l->store, wp->name, &p, err);
	if (rc == KMS_OK)
		rc = kms_profile_add_setting(p, "type", wp->type, 0, err);
	for (size_t i = 0; rc == KMS_OK && i < wp->n_settings; i++) {
		char *eq = strchr(wp->settings[i], '=');

		*eq = '\0';
		rc = kms_profile_add_setting(p, wp->settings[i], eq + 1, 0, err);
		*eq = '=';
	}
	if (rc != KMS_OK)
		return kms_error_prefix(err, "kmstored's profile '%s'", wp->name);
	rp = calloc(1, sizeof(*rp));
	if (rp == NULL)
		return kms_fail(err, KMS_ERR_SYSTEM, "out of memory");
	p->type = &remote_type;
	p->state = rp;
	p->key_size = wp->key_size;
	rp->r = l->r;
	atomic_fetch_add(&l->r->refs, 1);
	atomic_init(&rp->wait_ms, wait_for(listed_timeout(wp)));
	return KMS_OK;
}

/* PROFILES, of one name or (NULL) all this client may use. */
static kms_rc ask_profiles(struct kms_remote *r, const char *name,
			   long wait_ms, struct reply *rep, kms_error *err)
{
	struct wait w = { .wait_ms = wait_ms };
	struct kms_wire_buf req;
	kms_rc rc;

	if (kms_wire_init(&req, KMS_WIRE_REQUEST_MAX, 0, KMS_WIRE_PROFILES) != 0)
		return kms_fail(err, KMS_ERR_SYSTEM, "out of memory");
	if (name != NULL)
		kms_wire_put_str(&req, KMS_T_PROFILE, name);
	rc = exchange(r, &req, &w, rep, err);
	kms_wire_free(&req);
	return rc;
}

struct renewal {
	const char *name;
	long wait_ms;
};

static kms_rc renew_one(void *ctx, const char *config,
			const struct kms_wire_profile *wp, kms_error *err)
{
	struct renewal *rn = ctx;

	(void)config;
	(void)err;
	if (wp != NULL && strcmp(wp->name, rn->name) == 0)
		rn->wait_ms = wait_for(listed_timeout(wp));
	return KMS_OK;
}

/* The wait kmstored's profile name has now (0 if it cannot tell): its
 * settings asked again, on another connection. */
static long renewed_wait(struct kms_remote *r, const char *name)
{
	struct renewal rn = { .name = name };
	struct reply rep = { 0 };
	kms_error err;

	if (ask_profiles(r, name, RENEW_WAIT_MS, &rep, &err) == KMS_OK)
		kms_wire_parse_profiles(rep.body, rep.len, renew_one, &rn, &err);
	reply_free(&rep);
	return rn.wait_ms;
}

kms_rc kms_remote_miss(struct kms_remote *r, const char *name, kms_error *err)
{
	struct reply rep = { 0 };
	kms_error why;
	kms_rc rc;

	if (kms_check_profile_name(name, &why) != KMS_OK)
		return kms_fail(err, KMS_ERR_NOT_FOUND, "no such profile: %s",
				why.message);
	rc = ask_profiles(r, name, DEFAULT_WAIT_MS, &rep, err);
	reply_free(&rep);
	if (rc != KMS_OK)
		return rc;
	return kms_fail(err, KMS_ERR_NOT_FOUND,
			"profile '%s' is new in kmstored at %s since this process "
			"opened its store: open it again (restart the application)",
			name, r->path);
}

static kms_rc list_profiles(struct listing *l, long wait_ms, kms_error *err)
{
	struct reply rep = { 0 };
	kms_rc rc;

	rc = ask_profiles(l->r, NULL, wait_ms, &rep, err);
	if (rc != KMS_OK)
		return rc;
	rc = kms_wire_parse_profiles(rep.body, rep.len, add_listed, l, err);
	reply_free(&rep);
	return rc;
}

kms_rc kms_store_open_daemon(const char *socket_path, kms_store **out,
			     kms_error *err)
{
	return kms_remote_open_store(socket_path, 0, out, err);
}

kms_rc kms_remote_open_store(const char *socket_path, long wait_ms,
			     kms_store **out, kms_error *err)
{
	struct listing l = { 0 };
	kms_rc rc;

	*out = NULL;
	rc = remote_new(socket_path, &l.r, err);
	if (rc != KMS_OK)
		return rc;
	rc = list_profiles(&l, wait_ms > 0 ? wait_ms : DEFAULT_WAIT_MS, err);
	if (rc != KMS_OK) {
		kms_store_free(l.store);
		kms_remote_unref(l.r);
		return rc;
	}
	kms_store_set_remote(l.store, l.r); /* the profiles hold their own */
	*out = l.store;
	return KMS_OK;
}

kms_rc kms_daemon_text(const char *socket_path, enum kms_wire_kind kind,
		       char **text, kms_error *err)
{
	struct kms_remote *r;
	struct kms_wire_buf req;
	struct reply rep = { 0 };
	struct wait w = { 0 };
	kms_rc rc;

	*text = NULL;
	rc = remote_new(socket_path, &r, err);
	if (rc != KMS_OK)
		return rc;
	if (kms_wire_init(&req, KMS_WIRE_HEADER, 0, kind) != 0) {
		kms_remote_unref(r);
		return kms_fail(err, KMS_ERR_SYSTEM, "out of memory");
	}
	w.wait_ms = kind == KMS_WIRE_RELOAD ? RELOAD_WAIT_MS : DEFAULT_WAIT_MS;
	rc = exchange(r, &req, &w, &rep, err);
	kms_wire_free(&req);
	if (rc == KMS_OK)
		rc = kms_wire_parse_text(rep.body, rep.len, KMS_T_TEXT, text, err);
	reply_free(&rep);
	kms_remote_unref(r);
	return rc;
}
