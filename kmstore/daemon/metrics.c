/* metrics.c - what kmstored counts, in the Prometheus text exposition
 * (version 0.0.4): keys served, failures by cause, every KME request's
 * outcome and latency, the pools, each KME's health and its own
 * stored_key_count. Served on request (METRICS, `kmstore metrics`) and,
 * with --metrics, over HTTP (libmicrohttpd) on a loopback address or a
 * UNIX socket: never on a network interface. */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <microhttpd.h>

#include "clock.h"
#include "kmstored.h"
#include "qkd.h"

#define SERIES_MAX 4096
#define LABELS_MAX 384

/* Seconds: a KME on the same site answers in milliseconds, one across a
 * WAN in tens. */
static const double buckets[] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
};
#define N_BUCKETS (sizeof(buckets) / sizeof(buckets[0]))

enum family {
	F_KEYS, F_UNDELIVERED, F_FAILED, F_KME_REQUESTS, F_KME_SECONDS,
	F_POOL_EXPIRED, F_POOL_DROPPED, F_POOL_OUTAGE, F_REFUSED, F_RELOADS,
	F_KME_STORED, F_N
};

static const struct {
	const char *name, *type, *help;
} families[F_N] = {
	[F_KEYS] = { "kmstore_keys_served_total", "counter",
		     "Keys served to clients, by profile, kind (new: a key for use "
		     "now; by_id: the key with an ID) and source (pool, kme, or "
		     "static: a static profile's key)." },
	[F_UNDELIVERED] = { "kmstore_keys_undelivered_total", "counter",
			    "Keys taken for clients that had gone when the reply "
			    "was written (not counted as served), by profile, kind "
			    "and source; those from a pool went back to it." },
	[F_FAILED] = { "kmstore_requests_failed_total", "counter",
		       "Client requests that failed, by profile and cause (the "
		       "kmstore result code)." },
	[F_KME_REQUESTS] = { "kmstore_kme_requests_total", "counter",
			     "Requests to KMEs (each attempt), by profile, KME, "
			     "operation and outcome." },
	[F_KME_SECONDS] = { "kmstore_kme_request_duration_seconds", "histogram",
			    "Duration of requests to KMEs (each attempt)." },
	[F_POOL_EXPIRED] = { "kmstore_pool_expired_total", "counter",
			     "Prefetched keys dropped unused after "
			     "prefetch-max-age." },
	[F_POOL_DROPPED] = { "kmstore_pool_dropped_total", "counter",
			     "Prefetched keys dropped unused before "
			     "prefetch-max-age: fetched for a profile a reload "
			     "removed or changed, or with no room in the pool." },
	[F_POOL_OUTAGE] = { "kmstore_pool_served_in_outage_total", "counter",
			    "Keys served from the pool while every KME of the "
			    "profile was down." },
	[F_REFUSED] = { "kmstore_clients_refused_total", "counter",
			"Requests refused by the access rules, and connections "
			"refused over a connection cap." },
	[F_RELOADS] = { "kmstore_config_reloads_total", "counter",
			"Reloads of the configuration, by result." },
	[F_KME_STORED] = { "kmstore_kme_stored_key_count", "gauge",
			   "The KME's own stored_key_count from its status, by "
			   "profile and the KME's ID (polled every 30 s and at a "
			   "reload); none where the last poll got no answer." },
};

struct series {
	enum family f;
	char labels[LABELS_MAX];
	double value;
	unsigned long bucket[N_BUCKETS], count;
	double sum;
	int stale; /* marked by mark(): dropped by sweep() unless set again */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct series *series;
static size_t n_series;
static struct MHD_Daemon *httpd;
static char *metrics_socket;

/* A label value as the exposition format wants it: \\, \" and \n. */
static size_t escape(char *out, size_t size, const char *v)
{
	size_t o = 0;

	for (; *v != '\0' && o + 3 < size; v++) {
		if (*v == '\\' || *v == '"') {
			out[o++] = '\\';
			out[o++] = *v;
		} else if (*v == '\n') {
			out[o++] = '\\';
			out[o++] = 'n';
		} else {
			out[o++] = *v;
		}
	}
	out[o] = '\0';
	return o;
}

/* name="value",... from pairs of strings ending with NULL. */
static void labels(char *out, size_t size, va_list ap)
{
	size_t o = 0;
	const char *k;

	out[0] = '\0';
	while ((k = va_arg(ap, const char *)) != NULL && o + 8 < size) {
		const char *v = va_arg(ap, const char *);

		o += (size_t)snprintf(out + o, size - o, "%s%s=\"", o ? "," : "", k);
		if (o >= size)
			break;
		o += escape(out + o, size - o, v != NULL ? v : "");
		if (o + 2 < size)
			out[o++] = '"', out[o] = '\0';
	}
}

/* The series of family f with these labels; made on first use. The lock
 * is held. */
static struct series *find(enum family f, const char *l)
{
	for (size_t i = 0; i < n_series; i++)
		if (series[i].f == f && strcmp(series[i].labels, l) == 0)
			return &series[i];
	if (n_series == SERIES_MAX)
		return NULL;
	if (n_series % 64 == 0) {
		struct series *grown = realloc(series, (n_series + 64) * sizeof(*grown));

		if (grown == NULL)
			return NULL;
		series = grown;
	}
	memset(&series[n_series], 0, sizeof(series[0]));
	series[n_series].f = f;
	snprintf(series[n_series].labels, LABELS_MAX, "%s", l);
	return &series[n_series++];
}

static void add(enum family f, double v, ...)
{
	char l[LABELS_MAX];
	struct series *s;
	va_list ap;

	va_start(ap, v);
	labels(l, sizeof(l), ap);
	va_end(ap);
	pthread_mutex_lock(&lock);
	s = find(f, l);
	if (s != NULL)
		s->value += v;
	pthread_mutex_unlock(&lock);
}

static void set(enum family f, double v, ...)
{
	char l[LABELS_MAX];
	struct series *s;
	va_list ap;

	va_start(ap, v);
	labels(l, sizeof(l), ap);
	va_end(ap);
	pthread_mutex_lock(&lock);
	s = find(f, l);
	if (s != NULL) {
		s->value = v;
		s->stale = 0;
	}
	pthread_mutex_unlock(&lock);
}

/* Every series of family f is stale until set() sets it again. */
static void mark(enum family f)
{
	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < n_series; i++)
		if (series[i].f == f)
			series[i].stale = 1;
	pthread_mutex_unlock(&lock);
}

/* Drops the series of family f still stale, keeping the others' order. */
static void sweep(enum family f)
{
	size_t kept = 0;

	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < n_series; i++)
		if (series[i].f != f || !series[i].stale)
			series[kept++] = series[i];
	n_series = kept;
	pthread_mutex_unlock(&lock);
}

void kmsd_metric_key(const char *profile, int by_id, const char *source)
{
	add(F_KEYS, 1, "profile", profile, "kind", by_id ? "by_id" : "new",
	    "source", source, NULL);
}

void kmsd_metric_undelivered(const char *profile, int by_id, const char *source)
{
	add(F_UNDELIVERED, 1, "profile", profile, "kind", by_id ? "by_id" : "new",
	    "source", source, NULL);
}

void kmsd_metric_failed(const char *profile, kms_rc rc)
{
	add(F_FAILED, 1, "profile", profile, "cause", kms_rc_name(rc), NULL);
}

void kmsd_metric_refused(void)
{
	add(F_REFUSED, 1, NULL);
}

void kmsd_metric_reload(int ok)
{
	add(F_RELOADS, 1, "result", ok ? "ok" : "failed", NULL);
}

void kmsd_metric_pool_expired(const char *profile, long n)
{
	add(F_POOL_EXPIRED, (double)n, "profile", profile, NULL);
}

void kmsd_metric_pool_dropped(const char *profile, long n)
{
	add(F_POOL_DROPPED, (double)n, "profile", profile, NULL);
}

void kmsd_metric_pool_outage(const char *profile)
{
	add(F_POOL_OUTAGE, 1, "profile", profile, NULL);
}

void kmsd_metric_stored(const char *profile, const char *kme_id, long count)
{
	set(F_KME_STORED, (double)count, "profile", profile, "kme_id",
	    kme_id[0] != '\0' ? kme_id : "?", NULL);
}

/* The library's observer: every KME request. */
static void on_kme(void *ctx, const struct kms_kme_event *ev)
{
	char l[LABELS_MAX];
	struct series *s;
	double secs = ev->us / 1e6;

	(void)ctx;
	add(F_KME_REQUESTS, 1, "profile", ev->profile, "kme", ev->url, "op", ev->op,
	    "outcome", ev->outcome, NULL);
	snprintf(l, sizeof(l), "profile=\"");
	escape(l + strlen(l), sizeof(l) - strlen(l) - 64, ev->profile);
	snprintf(l + strlen(l), sizeof(l) - strlen(l), "\",kme=\"");
	escape(l + strlen(l), sizeof(l) - strlen(l) - 32, ev->url);
	snprintf(l + strlen(l), sizeof(l) - strlen(l), "\",op=\"%s\"", ev->op);
	pthread_mutex_lock(&lock);
	s = find(F_KME_SECONDS, l);
	if (s != NULL) {
		for (size_t i = 0; i < N_BUCKETS; i++)
			if (secs <= buckets[i])
				s->bucket[i]++;
		s->count++;
		s->sum += secs;
	}
	pthread_mutex_unlock(&lock);
}

void kmsd_metrics_init(void)
{
	kms_qkd_set_observer(on_kme, NULL);
}

/* A growing text buffer, of KMSD_METRICS_MAX bytes at most (what one
 * reply to `kmstore metrics` holds). */
struct text {
	char *s;
	size_t len, cap;
	int failed; /* EFBIG: past KMSD_METRICS_MAX; ENOMEM */
};

__attribute__((format(printf, 2, 3)))
static void put(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = t->failed ? 0 : vsnprintf(t->s + t->len, t->cap - t->len, fmt, ap);
		va_end(ap);
		if (t->failed || n < 0)
			return;
		if ((size_t)n < t->cap - t->len) {
			t->len += (size_t)n;
			return;
		}
		if (t->cap >= KMSD_METRICS_MAX) {
			t->failed = EFBIG;
			return;
		}
		/* Doubled, but the last step only up to the limit itself: a
		 * text of 600 KiB is served, not refused at half of it. */
		size_t want = t->cap < KMSD_METRICS_MAX / 2 ? t->cap * 2 :
			      KMSD_METRICS_MAX;
		char *grown = realloc(t->s, want);

		if (grown == NULL) {
			t->failed = ENOMEM;
			return;
		}
		t->s = grown;
		t->cap = want;
	}
}

static void header(struct text *t, const char *name, const char *type,
		   const char *help)
{
	put(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void put_value(struct text *t, double v)
{
	if (v == floor(v) && fabs(v) < 1e15)
		put(t, "%.0f\n", v);
	else
		put(t, "%g\n", v);
}

static void recorded(struct text *t)
{
	pthread_mutex_lock(&lock);
	for (int f = 0; f < F_N; f++) {
		int any = 0;

		for (size_t i = 0; i < n_series; i++) {
			const struct series *s = &series[i];

			if (s->f != (enum family)f)
				continue;
			if (!any++)
				header(t, families[f].name, families[f].type,
				       families[f].help);
			if (f != F_KME_SECONDS) {
				put(t, "%s%s%s%s ", families[f].name,
				    s->labels[0] ? "{" : "", s->labels,
				    s->labels[0] ? "}" : "");
				put_value(t, s->value);
				continue;
			}
			for (size_t b = 0; b < N_BUCKETS; b++)
				put(t, "%s_bucket{%s,le=\"%g\"} %lu\n",
				    "kmstore_kme_request_duration_seconds", s->labels,
				    buckets[b], s->bucket[b]);
			put(t, "kmstore_kme_request_duration_seconds_bucket{%s,"
			    "le=\"+Inf\"} %lu\n", s->labels, s->count);
			put(t, "kmstore_kme_request_duration_seconds_sum{%s} %g\n",
			    s->labels, s->sum);
			put(t, "kmstore_kme_request_duration_seconds_count{%s} %lu\n",
			    s->labels, s->count);
		}
	}
	pthread_mutex_unlock(&lock);
}

/* What is read at the time of asking: pools and KME health. */
static void current(struct text *t)
{
	struct kmsd_conf *c = kmsd_conf_get();
	char e1[128], e2[KMS_URL_MAX * 2];
	size_t n = kms_store_profile_count(c->store);
	int any;

	header(t, "kmstore_profiles", "gauge", "Profiles in the configuration in force.");
	put(t, "kmstore_profiles %zu\n", n);
	header(t, "kmstore_config_loaded_timestamp_seconds", "gauge",
	       "When the configuration in force was loaded (Unix time).");
	put(t, "kmstore_config_loaded_timestamp_seconds %ld\n", (long)c->loaded);
	header(t, "kmstore_connections", "gauge", "Client connections open now.");
	put(t, "kmstore_connections %zu\n", kmsd_connections());
	for (int target_too = 0; target_too < 2; target_too++) {
		any = 0;
		for (size_t i = 0; i < n; i++) {
			long keys, target;

			if (c->pools[i] == NULL)
				continue;
			if (!any++)
				header(t, target_too ? "kmstore_pool_target" : "kmstore_pool_keys",
				       "gauge", target_too ? "The pool's target (prefetch)." :
				       "Prefetched keys ready now.");
			kmsd_pool_figures(c->pools[i], &keys, &target);
			escape(e1, sizeof(e1),
			       kms_profile_name(kms_store_profile_at(c->store, i)));
			put(t, "%s{profile=\"%s\"} %ld\n", target_too ?
			    "kmstore_pool_target" : "kmstore_pool_keys", e1,
			    target_too ? target : keys);
		}
	}
	any = 0;
	for (size_t i = 0; i < n; i++) {
		kms_profile *p = kms_store_profile_at(c->store, i);
		kms_status st;

		if (strcmp(kms_profile_type(p), "qkd") != 0)
			continue;
		memset(&st, 0, sizeof(st));
		kms_qkd_health(p, &st);
		if (!any++)
			header(t, "kmstore_kme_up", "gauge",
			       "1 if the KME answered its last request (or was not "
			       "asked yet), 0 if it failed it.");
		escape(e1, sizeof(e1), kms_profile_name(p));
		for (size_t k = 0; k < st.n_kmes; k++) {
			escape(e2, sizeof(e2), st.kmes[k].url);
			put(t, "kmstore_kme_up{profile=\"%s\",kme=\"%s\"} %d\n", e1, e2,
			    strcmp(st.kmes[k].state, "down") != 0);
		}
	}
	kmsd_conf_put(c);
}

/* The exposition over the limit is no passing shortage: every scrape
 * fails until the configuration shrinks. Said in the log too (a scraper
 * shows only "HTTP 500"), once in 10 minutes. */
static kms_rc too_big(kms_error *err)
{
	static pthread_mutex_t told_lock = PTHREAD_MUTEX_INITIALIZER;
	static int64_t told_ms;
	int64_t now = kms_now_ms();
	int tell;

	pthread_mutex_lock(&told_lock);
	tell = told_ms == 0 || now - told_ms >= 600000;
	if (tell)
		told_ms = now;
	pthread_mutex_unlock(&told_lock);
	if (tell)
		kmsd_log(KMS_LOG_WARNING, "the metrics exceed %d bytes, the most "
			 "kmstored serves: every scrape fails (HTTP 500) until the "
			 "configuration has fewer profiles or KMEs", KMSD_METRICS_MAX);
	return kms_fail(err, KMS_ERR_SYSTEM, "kmstored: the metrics exceed %d "
			"bytes, the most it serves (fewer profiles or KMEs would "
			"fit)", KMSD_METRICS_MAX);
}

char *kmsd_metrics_text(kms_error *err)
{
	struct text t = { .cap = 8192 };

	t.s = malloc(t.cap);
	if (t.s == NULL) {
		kms_fail(err, KMS_ERR_SYSTEM, "kmstored: out of memory");
		return NULL;
	}
	t.s[0] = '\0';
	current(&t);
	recorded(&t);
	if (t.failed) {
		free(t.s);
		if (t.failed == EFBIG)
			too_big(err);
		else
			kms_fail(err, KMS_ERR_SYSTEM, "kmstored: out of memory");
		return NULL;
	}
	return t.s;
}

/* ---- HTTP ---- */

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn,
			      const char *url, const char *method,
			      const char *version, const char *upload,
			      size_t *upload_size, void **state)
{
	struct MHD_Response *r;
	enum MHD_Result rc;
	unsigned status = MHD_HTTP_OK;
	char *text = NULL;
	const char *body;
	kms_error err;

	(void)cls;
	(void)version;
	(void)upload;
	(void)upload_size;
	(void)state;
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		status = MHD_HTTP_METHOD_NOT_ALLOWED;
		body = "GET /metrics\n";
	} else if (strcmp(url, "/metrics") != 0) {
		status = MHD_HTTP_NOT_FOUND;
		body = "kmstored serves /metrics only\n";
	} else if ((text = kmsd_metrics_text(&err)) == NULL) {
		status = MHD_HTTP_INTERNAL_SERVER_ERROR;
		/* why, for whoever reads the answer with curl */
		if (asprintf(&text, "%s\n", err.message) < 0)
			text = NULL;
		body = text != NULL ? text : "kmstored: out of memory\n";
	} else {
		body = text;
	}
	r = MHD_create_response_from_buffer(strlen(body), (void *)body,
					    text != NULL ? MHD_RESPMEM_MUST_FREE :
							   MHD_RESPMEM_PERSISTENT);
	if (r == NULL) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type",
				status == MHD_HTTP_OK ?
					"text/plain; version=0.0.4; charset=utf-8" :
					"text/plain");
	rc = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return rc;
}

/* "127.0.0.1:PORT", "[::1]:PORT", "localhost:PORT", or a UNIX socket's
 * absolute path: nothing a remote host could reach. */
static kms_rc bind_metrics(const char *addr, int *out, kms_error *err)
{
	struct sockaddr_storage ss;
	socklen_t len;
	const char *colon = strrchr(addr, ':');
	char host[64];
	char *end;
	long port;
	int fd, one = 1;

	memset(&ss, 0, sizeof(ss));
	if (addr[0] == '/') {
		struct sockaddr_un *u = (struct sockaddr_un *)&ss;

		if (strlen(addr) >= sizeof(u->sun_path))
			return kms_fail(err, KMS_ERR_USAGE, "--metrics: %s is too long",
					addr);
		u->sun_family = AF_UNIX;
		strcpy(u->sun_path, addr);
		len = sizeof(*u);
		unlink(addr);
	} else {
		if (colon == NULL || (size_t)(colon - addr) >= sizeof(host))
			return kms_fail(err, KMS_ERR_USAGE, "--metrics: '%s' is not "
					"ADDRESS:PORT or a socket path", addr);
		memcpy(host, addr, (size_t)(colon - addr));
		host[colon - addr] = '\0';
		port = strtol(colon + 1, &end, 10);
		if (*end != '\0' || port < 1 || port > 65535)
			return kms_fail(err, KMS_ERR_USAGE, "--metrics: bad port in '%s'",
					addr);
		if (strcmp(host, "127.0.0.1") == 0 || strcmp(host, "localhost") == 0) {
			struct sockaddr_in *a = (struct sockaddr_in *)&ss;

			a->sin_family = AF_INET;
			a->sin_port = htons((uint16_t)port);
			a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
			len = sizeof(*a);
		} else if (strcmp(host, "[::1]") == 0) {
			struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

			a->sin6_family = AF_INET6;
			a->sin6_port = htons((uint16_t)port);
			a->sin6_addr = in6addr_loopback;
			len = sizeof(*a);
		} else {
			return kms_fail(err, KMS_ERR_USAGE, "--metrics: '%s' is not a "
					"loopback address (127.0.0.1, [::1], localhost) "
					"or a UNIX socket path", host);
		}
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return kms_fail(err, KMS_ERR_SYSTEM, "--metrics: socket: %s",
				strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) != 0 ||
	    (addr[0] == '/' && chmod(addr, 0660) != 0) || listen(fd, 16) != 0) {
		kms_rc rc = kms_fail(err, KMS_ERR_SYSTEM,
				     "--metrics: cannot listen on %s: %s", addr,
				     strerror(errno));
		close(fd);
		return rc;
	}
	*out = fd;
	return KMS_OK;
}

kms_rc kmsd_metrics_serve(const char *addr, kms_error *err)
{
	int fd = -1;
	kms_rc rc = bind_metrics(addr, &fd, err);

	if (rc != KMS_OK)
		return rc;
	httpd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
				 MHD_USE_ERROR_LOG,
				 0, NULL, NULL, answer, NULL,
				 MHD_OPTION_LISTEN_SOCKET, fd,
				 MHD_OPTION_CONNECTION_TIMEOUT, 10u,
				 MHD_OPTION_CONNECTION_LIMIT, 16u,
				 MHD_OPTION_END);
	if (httpd == NULL) {
		close(fd);
		return kms_fail(err, KMS_ERR_SYSTEM,
				"--metrics: the HTTP server does not start on %s", addr);
	}
	if (addr[0] == '/')
		metrics_socket = strdup(addr);
	return KMS_OK;
}

void kmsd_metrics_stop(void)
{
	if (httpd != NULL)
		MHD_stop_daemon(httpd);
	httpd = NULL;
	if (metrics_socket != NULL)
		unlink(metrics_socket);
	free(metrics_socket);
	metrics_socket = NULL;
}

void kmsd_metrics_fini(void)
{
	kmsd_metrics_stop();
	pthread_mutex_lock(&lock);
	free(series);
	series = NULL;
	n_series = 0;
	pthread_mutex_unlock(&lock);
}

/* ---- the status poller ---- */

#define WATCH_EVERY_S 30

static pthread_t watcher;
static int watching, watch_all, watch_stop, watch_now;
static pthread_mutex_t watch_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t watch_wake = PTHREAD_COND_INITIALIZER;

static int stop_asked(void)
{
	int stop;

	pthread_mutex_lock(&watch_lock);
	stop = watch_stop;
	pthread_mutex_unlock(&watch_lock);
	return stop;
}

/* Each QKD profile's status (no key is consumed): the KME's
 * stored_key_count for the metrics; as side effects, each KME's health
 * and (libkmstore) its max_key_per_request for the requests. The gauge
 * holds what this poll got and nothing older: a profile whose status
 * fails, or that a reload removed (or left without a pool, when only
 * pools are polled), loses its series rather than showing a count no KME
 * vouches for any more. A stop ends the poll after the status in flight:
 * each may take its profile's whole timeout (a KME that does not answer),
 * and kmstored, its socket gone, would wait for them all. */
static void poll_once(void)
{
	struct kmsd_conf *c = kmsd_conf_get();

	mark(F_KME_STORED);
	for (size_t i = 0; i < kms_store_profile_count(c->store) && !stop_asked();
	     i++) {
		kms_profile *p = kms_store_profile_at(c->store, i);
		kms_status st;
		kms_error err;

		if (strcmp(kms_profile_type(p), "qkd") != 0 ||
		    (!watch_all && c->pools[i] == NULL))
			continue;
		if (kms_profile_status(p, &st, &err) != KMS_OK)
			continue; /* the KME's health says it; sweep drops its count */
		if (st.stored_key_count >= 0)
			kmsd_metric_stored(kms_profile_name(p), st.source_kme_id,
					   st.stored_key_count);
	}
	sweep(F_KME_STORED);
	kmsd_conf_put(c);
}

static void *watch_main(void *arg)
{
	struct timespec until;

	(void)arg;
	pthread_mutex_lock(&watch_lock);
	while (!watch_stop) {
		watch_now = 0;
		pthread_mutex_unlock(&watch_lock);
		poll_once();
		pthread_mutex_lock(&watch_lock);
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += WATCH_EVERY_S;
		while (!watch_stop && !watch_now &&
		       pthread_cond_timedwait(&watch_wake, &watch_lock, &until) == 0)
			;
	}
	pthread_mutex_unlock(&watch_lock);
	return NULL;
}

void kmsd_watch_start(int all_profiles)
{
	watch_all = all_profiles;
	if (pthread_create(&watcher, NULL, watch_main, NULL) == 0)
		watching = 1;
	else
		kmsd_log(KMS_LOG_WARNING, "no status poller thread");
}

/* Said during a poll, it is not lost: watch_now is cleared before each
 * poll and looked at after it. */
void kmsd_watch_now(void)
{
	pthread_mutex_lock(&watch_lock);
	watch_now = 1;
	pthread_cond_signal(&watch_wake);
	pthread_mutex_unlock(&watch_lock);
}

void kmsd_watch_stop(void)
{
	pthread_mutex_lock(&watch_lock);
	watch_stop = 1;
	pthread_cond_signal(&watch_wake);
	pthread_mutex_unlock(&watch_lock);
}

int kmsd_watch_wait(int seconds)
{
	struct timespec until;

	if (!watching)
		return 1;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += seconds;
	if (pthread_timedjoin_np(watcher, NULL, &until) != 0)
		return 0;
	watching = 0;
	return 1;
}
