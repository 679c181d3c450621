/* etsi014.c - the ETSI GS QKD 014 client of QKD profiles: libcurl, HTTPS
 * with mutual TLS, one deadline for the whole call.
 *
 * Four constraints shape it:
 * - It runs inside NSS's PKCS#11 module, which may not create threads
 *   (CKF_LIBRARY_CANT_CREATE_OS_THREADS), and curl's threaded resolver
 *   would. So the host is resolved here, in the caller's thread, within
 *   the call's deadline (resolve.c), kept for the answer's TTL, and handed
 *   to curl with CURLOPT_RESOLVE: curl never resolves (an address in the
 *   URL it takes as it is).
 * - Several threads may fetch keys at once (pluto's helpers, a PKCS#11
 *   application, the OpenSSL provider's threads sharing one store). libcurl
 *   does not support one connection cache shared by concurrent threads
 *   (CURLSHOPT_SHARE(3); curl 8.21 crashes in its connection pool), so a
 *   profile keeps a pool of easy handles per KME, each with its own
 *   connection: a call takes an idle one (or makes one) and puts it back,
 *   so keep-alive works across calls and threads, one connection per
 *   concurrent call. TLS sessions, which libcurl does share between
 *   threads, are in the KME's CURLSH, so a new handle resumes a session.
 * - The answer becomes an IKE PPK: the body is size-limited, held in locked
 *   memory and checked strictly (etsi014_json.c).
 * - A profile may name several KMEs (url = A B ...): a request goes to the
 *   first that is up, and on to the next when one is unreachable or
 *   answers 5xx, all within the profile's one deadline; a KME that failed
 *   is asked first again only after a back-off. Each KME has its own
 *   pool of handles (connections), TLS sessions and health. */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/ssl.h>

#include "clock.h"
#include "etsi014_json.h"
#include "fileio.h"
#include "qkd.h"
#include "resolve.h"
#include "secmem.h"
#include "uri.h"

#define BODY_MAX 16384
#define KMS_RESOLVE_MAX 1024 /* a few addresses, as CURLOPT_RESOLVE has them */
#define BACKOFF_FIRST_MS 50
#define BACKOFF_MAX_MS 1000
/* A retry needs this much of the deadline left after its wait: one that
 * starts with less mostly ends in a timeout of its own, and its message
 * would hide the cause of the attempts before it. */
#define RETRY_MIN_MS 250
#define DOWN_FIRST_MS 1000   /* a failed KME's first back-off, doubling */
#define DOWN_MAX_MS 60000
#define BUSY_MS 1000        /* a KME that answered 503: asked after the others */
#define IDLE_MAX 16     /* idle handles (and connections) kept per KME */
/* A KME's addresses are looked up again after their DNS TTL, or this
 * long at most: a KME that moves is found within a minute, and at once
 * once it stops answering (kme_down). */
#define ADDRS_KEEP_MAX_S 60

/* One KME of a profile: its connections, and its health. */
struct kme {
	CURLSH *share;  /* TLS sessions */
	pthread_mutex_t locks[CURL_LOCK_DATA_LAST];
	pthread_mutex_t idle_lock;
	CURL *idle[IDLE_MAX]; /* handles not in use, each with its connection */
	curl_socket_t idle_fd[IDLE_MAX]; /* its socket, CURL_SOCKET_BAD if none */
	size_t n_idle;
	pid_t pid;      /* the process the idle handles belong to */
	struct kme *next, *prev; /* in kmes, every process's KME (fork) */
	const char *url; /* the profile's copy */
	char *host;     /* as in the URL, without brackets */
	long port;
	char *base;     /* the URL without a trailing '/' */
	pthread_mutex_t health_lock;
	int asked;      /* any request ended yet */
	long failures;  /* in a row */
	int64_t retry_at_ms; /* monotonic; 0: up */
	char last_error[200];
	char addrs[KMS_RESOLVE_MAX]; /* the host's, as the last lookup gave */
	int64_t addrs_until_ms; /* monotonic: addrs hold until then; 0: look up */
};

enum op { OP_STATUS, OP_ENC_KEYS, OP_DEC_KEYS };

/* Threads asking for keys of one operation, see "keys asked for
 * together". */
struct key_queue {
	enum op op;             /* OP_ENC_KEYS or OP_DEC_KEYS */
	pthread_mutex_t lock;
	pthread_cond_t ended;   /* a request ended (CLOCK_MONOTONIC) */
	struct key_wait *head;  /* oldest first */
	unsigned in_flight;
	int64_t alone_until_ms; /* one key per request until then */
	size_t most;            /* keys per request the KME takes ... */
	int64_t most_until_ms;  /* ... until then; QUEUE_BATCH after */
};

struct kms_qkd_client {
	struct kme kmes[KMS_KMES_MAX];
	size_t n;
	struct key_queue enc, dec;
	/* The SAE's TLS key, read at the first request and again when the
	 * file changes (a loosened mode is refused at the next request, a
	 * rotated key used for the next new connection, as before), not at
	 * every request: curl needs it only for a new connection. */
	struct kms_kept_file *tls_key;
};

static const char *const op_names[] = {
	[OP_STATUS] = "status",
	[OP_ENC_KEYS] = "enc_keys",
	[OP_DEC_KEYS] = "dec_keys",
};

struct body {
	char *data; /* secmem, BODY_MAX + 1 */
	size_t len;
	size_t high; /* the most bytes any attempt wrote: what to wipe */
	int overflow;
	long status; /* the last attempt's HTTP status, 0 if none */
};

/* One request in flight at one KME: what failed is described relative to
 * it. */
struct call {
	kms_profile *p;
	struct kms_qkd_config *c;
	struct kme *kme;
	enum op op;
	const char *sae; /* the SAE ID in the path */
	int64_t deadline_ms; /* monotonic: this KME's share of the deadline */
	int64_t given_ms;    /* that share when it began */
	int timed_out;    /* the last attempt ran out of time */
	int attempts;
	int max_attempts; /* 0: as many as the deadline allows */
	long http_status; /* of the last attempt, 0 if none */
	size_t keys;      /* asked for: 0 for a status */
	char lost[160];   /* an earlier attempt's answer lost on the way: how */
	int n_lost;       /* answers lost, in this call and the ones before it */
	char location[160]; /* a 3xx answer's Location, cleaned */
	int big;          /* the last answer's body was beyond BODY_MAX, not read */
	int tls_stalled;  /* the last attempt connected, and ran out of time in
			   * the TLS handshake */
	int os_errno;     /* the last attempt's CURLINFO_OS_ERRNO */
	/* The last failure's words after "... for SAE 'X': ", or a briefer
	 * form of them: the KME's part of a failover's error (run()). */
	char why[KMS_ERROR_MAX];
	struct curl_blob tls_key; /* the SAE's PEM key, in locked memory */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;
static const char *tls_backend; /* curl's, as it names it */
static kms_kme_observer *observer;
static void *observer_ctx;

void kms_qkd_set_observer(kms_kme_observer *fn, void *ctx)
{
	observer = fn;
	observer_ctx = ctx;
}

static void curl_init(void)
{
	const curl_version_info_data *v;

	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
	v = curl_version_info(CURLVERSION_NOW);
	tls_backend = v->ssl_version != NULL ? v->ssl_version : "no TLS";
}

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access a,
		       void *ctx)
{
	struct kme *cl = ctx;

	(void)h;
	(void)a;
	pthread_mutex_lock(&cl->locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *ctx)
{
	struct kme *cl = ctx;

	(void)h;
	pthread_mutex_unlock(&cl->locks[data]);
}

static kms_rc split_url(struct kme *cl, const char *url, kms_error *err)
{
	CURLU *u = curl_url();
	char *host = NULL, *port = NULL;
	size_t n;
	kms_rc rc = KMS_OK;

	if (u == NULL || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
		rc = kms_fail(err, KMS_ERR_CONFIG, "cannot parse the KME URL %s", url);
		goto out;
	}
	n = strlen(host);
	if (host[0] == '[' && n > 2)
		cl->host = strndup(host + 1, n - 2);
	else
		cl->host = strdup(host);
	cl->port = strtol(port, NULL, 10);
	n = strlen(url);
	while (n > 0 && url[n - 1] == '/')
		n--;
	cl->base = strndup(url, n);
	if (cl->host == NULL || cl->base == NULL)
		rc = kms_fail(err, KMS_ERR_SYSTEM, "out of memory");
out:
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	return rc;
}

/* Every KME of the process, for fork(). */
static struct kme *kmes;
static pthread_mutex_t kmes_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t kmes_once = PTHREAD_ONCE_INIT;
static pid_t forking; /* the parent, from kmes_before_fork to kmes_child */

/* fork(), as for kmstored's idle connections (remote.c): every KME's idle
 * lock is taken around it, so a child never inherits one held by a thread
 * it does not have. In the child the idle handles are the parent's: their
 * TLS connections are the parent's too, with the parent's keys and record
 * sequence numbers. A request of the child on one would reach the KME in
 * the parent's session (the parent's next request on it then fails as a
 * bad record MAC, or reads the child's answer), and a curl_easy_cleanup()
 * would send the parent's close_notify. So the child closes its copies
 * of their sockets at once, before it can open anything that would take
 * their numbers, and forgets the handles (their memory is the parent's
 * pages, copied on write); the parent's connections stay open. */
static void kmes_before_fork(void)
{
	pthread_mutex_lock(&kmes_lock);
	for (struct kme *k = kmes; k != NULL; k = k->next)
		pthread_mutex_lock(&k->idle_lock);
	forking = getpid();
}

static void kmes_parent(void)
{
	for (struct kme *k = kmes; k != NULL; k = k->next)
		pthread_mutex_unlock(&k->idle_lock);
	pthread_mutex_unlock(&kmes_lock);
}

static void kmes_child(void)
{
	pid_t me = getpid();

	for (struct kme *k = kmes; k != NULL; k = k->next) {
		for (size_t i = 0; k->pid == forking && i < k->n_idle; i++)
			if (k->idle_fd[i] != CURL_SOCKET_BAD)
				close(k->idle_fd[i]);
		k->n_idle = 0;
		k->pid = me;
		pthread_mutex_unlock(&k->idle_lock);
	}
	pthread_mutex_unlock(&kmes_lock);
}

/* glibc unregisters the handlers when the library is unloaded (dlclose). */
static void kmes_register_atfork(void)
{
	pthread_atfork(kmes_before_fork, kmes_parent, kmes_child);
}

static void kmes_add(struct kme *k)
{
	pthread_once(&kmes_once, kmes_register_atfork);
	pthread_mutex_lock(&kmes_lock);
	k->prev = NULL;
	k->next = kmes;
	if (kmes != NULL)
		kmes->prev = k;
	kmes = k;
	pthread_mutex_unlock(&kmes_lock);
}

static void kmes_remove(struct kme *k)
{
	pthread_mutex_lock(&kmes_lock);
	if (k->prev != NULL)
		k->prev->next = k->next;
	else
		kmes = k->next;
	if (k->next != NULL)
		k->next->prev = k->prev;
	pthread_mutex_unlock(&kmes_lock);
}

static kms_rc kme_init(struct kme *k, const char *url, kms_error *err)
{
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&k->locks[i], NULL);
	pthread_mutex_init(&k->idle_lock, NULL);
	pthread_mutex_init(&k->health_lock, NULL);
	k->pid = getpid();
	kmes_add(k);
	k->url = url;
	k->share = curl_share_init();
	if (k->share == NULL)
		return kms_fail(err, KMS_ERR_SYSTEM, "out of memory");
	curl_share_setopt(k->share, CURLSHOPT_LOCKFUNC, share_lock);
	curl_share_setopt(k->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
	curl_share_setopt(k->share, CURLSHOPT_USERDATA, k);
	curl_share_setopt(k->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
	return split_url(k, url, err);
}

static void queue_init(struct key_queue *q, enum op op);
static void queue_destroy(struct key_queue *q);
static void idle_after_fork(struct kme *cl);

kms_rc kms_qkd_client_new(kms_profile *p, kms_error *err)
{
	struct kms_qkd_config *c = p->state;
	struct kms_qkd_client *cl;
	kms_rc rc = KMS_OK;

	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != CURLE_OK)
		return kms_fail(err, KMS_ERR_SYSTEM, "libcurl cannot start: %s",
				curl_easy_strerror(curl_init_rc));
	cl = calloc(1, sizeof(*cl));
	if (cl == NULL)
		return kms_fail(err, KMS_ERR_SYSTEM, "out of memory");
	c->client = cl;
	queue_init(&cl->enc, OP_ENC_KEYS);
	queue_init(&cl->dec, OP_DEC_KEYS);
	rc = kms_kept_file_new(c->private_key, "TLS private key", KMS_TLS_KEY_MAX,
			       &cl->tls_key, err);
	for (size_t i = 0; rc == KMS_OK && i < c->n_urls; i++, cl->n++)
		rc = kme_init(&cl->kmes[i], c->urls[i], err);
	return rc;
}

void kms_qkd_client_free(struct kms_qkd_client *cl)
{
	if (cl == NULL)
		return;
	for (size_t k = 0; k < cl->n; k++) {
		struct kme *e = &cl->kmes[k];

		/* The handles first: they use the share. A child of fork()
		 * leaves the parent's connections alone. */
		kmes_remove(e);
		idle_after_fork(e);
		for (size_t i = 0; i < e->n_idle; i++)
			curl_easy_cleanup(e->idle[i]);
		if (e->share != NULL)
			curl_share_cleanup(e->share);
		for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
			pthread_mutex_destroy(&e->locks[i]);
		pthread_mutex_destroy(&e->idle_lock);
		pthread_mutex_destroy(&e->health_lock);
		free(e->host);
		free(e->base);
	}
	queue_destroy(&cl->enc);
	queue_destroy(&cl->dec);
	kms_kept_file_free(cl->tls_key);
	free(cl);
}

static kms_rc call_fail(struct call *k, kms_error *err, kms_rc code,
			const char *fmt, ...) KMS_PRINTF(4, 5);

/* "profile 'P': KME URL: enc_keys for SAE 'X': ...", the "..." kept in
 * k->why too. */
static kms_rc call_fail(struct call *k, kms_error *err, kms_rc code,
			const char *fmt, ...)
{
	char msg[KMS_ERROR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	memcpy(k->why, msg, sizeof(k->why));
	return kms_fail(err, code, "profile '%s': KME %s: %s for SAE '%s': %s",
			k->p->name, k->kme->url, op_names[k->op], k->sae, msg);
}

/* The KME's addresses from its last lookup while their TTL lasts: a
 * lookup per request was a DNS round trip per key. Under health_lock,
 * which guards what this process knows of the KME. */
static int kept_addrs(struct kme *cl, char *out, size_t size)
{
	int kept;

	pthread_mutex_lock(&cl->health_lock);
	kept = cl->addrs_until_ms > kms_now_ms();
	if (kept)
		snprintf(out, size, "%s", cl->addrs);
	pthread_mutex_unlock(&cl->health_lock);
	return kept;
}

static void keep_addrs(struct kme *cl, const char *addrs, long ttl_s)
{
	if (ttl_s <= 0)
		return; /* /etc/hosts: read each time */
	if (ttl_s > ADDRS_KEEP_MAX_S)
		ttl_s = ADDRS_KEEP_MAX_S;
	pthread_mutex_lock(&cl->health_lock);
	snprintf(cl->addrs, sizeof(cl->addrs), "%s", addrs);
	cl->addrs_until_ms = kms_now_ms() + ttl_s * 1000;
	pthread_mutex_unlock(&cl->health_lock);
}

/* How long k had to run out of: the timeout, or the part of it k was
 * given (a share of several KMEs', or what its wait in the queue left). */
static const char *time_given(const struct call *k, char *buf, size_t size)
{
	if (k->given_ms < k->c->timeout_ms * 9 / 10)
		snprintf(buf, size, "in the %.1f s it was given of the timeout of "
			 "%.1f s", k->given_ms / 1000.0, k->c->timeout_ms / 1000.0);
	else
		snprintf(buf, size, "within the timeout of %.1f s",
			 k->c->timeout_ms / 1000.0);
	return buf;
}

/* The addresses curl will connect to: kept ones, or looked up in this
 * thread (see top) within the call's deadline (resolve.c); none for an
 * address in the URL, which curl 7.88 would not take in a CURLOPT_RESOLVE
 * entry when it is IPv6 ("[::1]:443:[::1]"). */
static kms_rc resolve(struct call *k, struct curl_slist **list,
		      kms_error *err)
{
	struct kme *cl = k->kme;
	char addrs[KMS_RESOLVE_MAX], entry[KMS_RESOLVE_MAX + 300], given[80];
	enum kms_resolve_result r = KMS_RESOLVED;
	const char *why = NULL;
	long ttl_s;

	*list = NULL;
	if (!kept_addrs(cl, addrs, sizeof(addrs))) {
		r = kms_resolve(cl->host, k->deadline_ms - kms_now_ms(), addrs,
				sizeof(addrs), &ttl_s, &why);
		if (r == KMS_RESOLVED)
			keep_addrs(cl, addrs, ttl_s);
	}
	switch (r) {
	case KMS_RESOLVED:
		break;
	case KMS_RESOLVE_ADDRESS:
		return KMS_OK;
	case KMS_RESOLVE_TIMEOUT:
		k->timed_out = 1;
		return call_fail(k, err, KMS_ERR_UNREACHABLE,
				 "cannot resolve '%s' %s: %s", cl->host,
				 time_given(k, given, sizeof(given)), why);
	default:
		return call_fail(k, err, KMS_ERR_UNREACHABLE,
				 "cannot resolve '%s': %s", cl->host, why);
	}
	snprintf(entry, sizeof(entry), "%s:%ld:%s", cl->host, cl->port, addrs);
	*list = curl_slist_append(NULL, entry);
	if (*list == NULL)
		return kms_fail(err, KMS_ERR_SYSTEM, "out of memory");
	return KMS_OK;
}

static size_t on_data(char *ptr, size_t size, size_t n, void *ctx)
{
	struct body *b = ctx;

	(void)size; /* always 1 */
	if (n > BODY_MAX - b->len) {
		/* Not taken, but it may be most of a key container: curl
		 * frees its buffer unwiped, as below. */
		kms_wipe(ptr, n);
		b->overflow = 1;
		return 0; /* curl aborts the transfer */
	}
	memcpy(b->data + b->len, ptr, n);
	b->len += n;
	if (b->len > b->high)
		b->high = b->len;
	/* curl's download buffer is freed unwiped: wipe what was taken. */
	kms_wipe(ptr, n);
	return n;
}

/* curl's TLS context, before its handshake:
 * - OpenSSL keeps the last TLS record it decrypted (here: keys in base64)
 *   in its read buffer, unwiped, until the next one or the connection's
 *   end; SSL_OP_CLEANSE_PLAINTEXT wipes it as soon as curl has read it.
 * - With SSLKEYLOGFILE in the environment curl logs every connection's
 *   TLS secrets to that file, and with a capture of the SAE-KME link they
 *   decrypt the keys: the callback it installed is removed. */
static CURLcode tune_ssl_ctx(CURL *h, void *ssl_ctx, void *arg)
{
	(void)h;
	(void)arg;
	SSL_CTX_set_options(ssl_ctx, SSL_OP_CLEANSE_PLAINTEXT);
	SSL_CTX_set_keylog_callback(ssl_ctx, NULL);
	return CURLE_OK;
}

/* The KME connection's socket, closed on exec: libcurl 7.88 makes its
 * sockets without SOCK_CLOEXEC, so every program the host process runs
 * (pluto's updown scripts, a shell of an application) would inherit the
 * SAE's open TLS connection to the KME and keep it up as long as it
 * lives. */
static curl_socket_t open_socket(void *ctx, curlsocktype purpose,
				 struct curl_sockaddr *a)
{
	(void)ctx;
	(void)purpose;
	return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

/* The callback gets the backend's context: an SSL_CTX only with OpenSSL. */
static int curl_uses_openssl(void)
{
	return strncmp(tls_backend, "OpenSSL/", 8) == 0;
}

static int set_options(CURL *h, const struct call *k, const char *url,
		       const char *request, struct curl_slist *headers,
		       struct curl_slist *resolved, struct body *b,
		       char *errbuf, long budget_ms)
{
	const struct kms_qkd_config *c = k->c;
	CURLcode rc = CURLE_OK;

#define SET(opt, val) if (rc == CURLE_OK) rc = curl_easy_setopt(h, opt, val)
	SET(CURLOPT_URL, url);
	SET(CURLOPT_SHARE, k->kme->share);
	SET(CURLOPT_RESOLVE, resolved);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_NOPROXY, "*");
	SET(CURLOPT_PROTOCOLS_STR, "https");
	/* HTTP/1.1 only, even to a KME that offers h2 in ALPN: over HTTP/2
	 * the body passes through nghttp2's and curl's own buffers, which
	 * on_data() cannot wipe (tests/hygiene scans the heap for the key). */
	SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	SET(CURLOPT_SSL_VERIFYPEER, 1L);
	SET(CURLOPT_SSL_VERIFYHOST, 2L);
	SET(CURLOPT_CAINFO, c->ca);
	SET(CURLOPT_CAPATH, NULL); /* only the configured CA, not the system's */
	SET(CURLOPT_SSLCERT, c->certificate);
	/* The key that perform() read through the checked descriptor: a path
	 * would be opened again, by name. */
	SET(CURLOPT_SSLKEY_BLOB, &k->tls_key);
	/* never a prompt, nor libcurl 7.88's crash, for a key whose
	 * encryption kms_qkd_tls_key_plain() did not see */
	SET(CURLOPT_KEYPASSWD, "");
	SET(CURLOPT_TIMEOUT_MS, budget_ms);
	SET(CURLOPT_CONNECTTIMEOUT_MS, budget_ms);
	SET(CURLOPT_HTTPHEADER, headers);
	SET(CURLOPT_WRITEFUNCTION, on_data);
	SET(CURLOPT_WRITEDATA, b);
	SET(CURLOPT_ERRORBUFFER, errbuf);
	SET(CURLOPT_USERAGENT, "kmstore/" KMS_VERSION);
	SET(CURLOPT_SSL_CTX_FUNCTION, tune_ssl_ctx);
	SET(CURLOPT_OPENSOCKETFUNCTION, open_socket);
	if (request != NULL) {
		SET(CURLOPT_POSTFIELDS, request);
	}
#undef SET
	return rc == CURLE_OK ? 0 : -1;
}

static int tls_failure(CURLcode rc, const char *errbuf)
{
	switch (rc) {
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
		return 1;
	case CURLE_RECV_ERROR:
		/* TLS 1.3 reports a refused client certificate as an alert on
		 * the first read after the handshake. */
		return strstr(errbuf, "alert") != NULL;
	default:
		return 0;
	}
}

/* A send error on a fresh connection is not among these: under TLS 1.3 a
 * KME that refuses the client certificate sends its alert after the
 * client's handshake is done, and when the request is written first the
 * client sees only a broken pipe. curl itself retries a reused connection
 * that turned out dead. */
static int transient(CURLcode rc)
{
	return rc == CURLE_GOT_NOTHING || rc == CURLE_RECV_ERROR ||
	       rc == CURLE_PARTIAL_FILE;
}

/* Each enc_keys answer lost on the way may have taken keys at the KME,
 * and the peer's KME keeps them for a dec_keys that never comes: after
 * this many, a request for keys is not sent again (the KME's key store
 * is scarce; a KME that cuts every answer would otherwise lose a batch
 * at each retry until the deadline). */
#define ENC_LOST_MAX 2

/* Whether k may not be sent again, its answers lost too often. */
static int lost_enough(const struct call *k)
{
	return k->op == OP_ENC_KEYS && k->n_lost >= ENC_LOST_MAX;
}

/* Waits before the next attempt; 0 if the deadline leaves no room. */
static int backoff(struct call *k)
{
	long wait = BACKOFF_FIRST_MS << (k->attempts < 6 ? k->attempts - 1 : 5);
	int64_t left = k->deadline_ms - kms_now_ms();
	struct timespec ts;

	if (wait > BACKOFF_MAX_MS)
		wait = BACKOFF_MAX_MS;
	if (left <= wait + RETRY_MIN_MS)
		return 0;
	ts.tv_sec = wait / 1000;
	ts.tv_nsec = (wait % 1000) * 1000000;
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
	return 1;
}

/* What a 401 is likely to mean, after the KME's own words. ETSI GS QKD
 * 014 has 401 for an SAE the KME does not accept; KMEs also answer it for
 * a key they do not hold for this SAE (one open simulator does for an
 * unknown or already retrieved key ID). */
static const char *likely_401(enum op op)
{
	return op == OP_DEC_KEYS
		       ? " (likely: the KME holds no such key for this SAE: "
			 "unknown, already retrieved or expired, as some KMEs "
			 "answer 401 for that; or it does not accept this SAE's "
			 "certificate)"
		       : " (likely: the KME does not accept this SAE's "
			 "certificate, or not for this peer SAE)";
}

static kms_rc http_failure(struct call *k, long status, const struct body *b,
			   kms_error *err)
{
	char text[200];
	kms_rc code = KMS_ERR_KME;
	/* "HTTP 400: the KME's words", or "HTTP 500 (kmstore's words about
	 * a body it does not quote)". */
	int quoted = kms_etsi_error_text(b->data, b->len, text, sizeof(text));

	char more[400] = "";
	size_t m = 0;

	if (k->op == OP_DEC_KEYS && (status == 400 || status == 404))
		code = KMS_ERR_NOT_FOUND;
	if (k->big)
		snprintf(text, sizeof(text), "(its body is larger than %d bytes; "
			 "not read)", BODY_MAX);
	if (status >= 300 && status < 400)
		m += (size_t)snprintf(more + m, sizeof(more) - m,
				      " (a redirect%s%s: kmstore follows none; "
				      "set url to where the KME answers)",
				      k->location[0] ? " to " : "", k->location);
	/* The request may have been served before: its answer was lost. A
	 * KME gives a key once, so "no such key" now may mean that the
	 * answer that carried it was cut off, not that the peer asked for
	 * a key it never had. */
	if (k->lost[0] && m < sizeof(more))
		snprintf(more + m, sizeof(more) - m, " (after an earlier "
			 "attempt whose answer was lost: %s%s)", k->lost,
			 k->op == OP_DEC_KEYS ? "; the KME may have given the key "
			 "then, and gives a key once" : "");
	return call_fail(k, err, code, "HTTP %ld%s%s%s%s", status,
			 !text[0] ? "" : quoted ? ": " : " ", text,
			 status == 401 ? likely_401(k->op) : "", more);
}

static kms_rc transfer_failure(struct call *k, CURLcode rc, const char *errbuf,
			       const struct body *b, kms_error *err)
{
	const char *detail = errbuf[0] ? errbuf : curl_easy_strerror(rc);
	char given[80];

	if (b->overflow)
		return call_fail(k, err, KMS_ERR_KME,
				 "the answer is larger than %d bytes", BODY_MAX);
	k->timed_out = rc == CURLE_OPERATION_TIMEDOUT ||
		       kms_now_ms() >= k->deadline_ms;
	if (k->timed_out && k->tls_stalled) {
		call_fail(k, err, KMS_ERR_UNREACHABLE,
			  "TLS handshake did not finish %s: TCP connected, the "
			  "KME's TLS did not answer (%d attempt%s; last: %s)",
			  time_given(k, given, sizeof(given)), k->attempts,
			  k->attempts == 1 ? "" : "s", detail);
		snprintf(k->why, sizeof(k->why), "TLS handshake did not finish "
			 "within %.1f s (TCP connected)", k->given_ms / 1000.0);
		return KMS_ERR_UNREACHABLE;
	}
	if (k->timed_out) {
		call_fail(k, err, KMS_ERR_UNREACHABLE,
			  "no answer %s (%d attempt%s; last: %s)",
			  time_given(k, given, sizeof(given)), k->attempts,
			  k->attempts == 1 ? "" : "s", detail);
		snprintf(k->why, sizeof(k->why), "no answer within %.1f s",
			 k->given_ms / 1000.0);
		return KMS_ERR_UNREACHABLE;
	}
	/* This SAE's own certificate, key or CA file: no KME would take
	 * them, and none is to blame. */
	if (rc == CURLE_SSL_CERTPROBLEM || rc == CURLE_SSL_CACERT_BADFILE)
		return call_fail(k, err, KMS_ERR_CONFIG,
				 "this SAE's TLS credentials cannot be used: %s "
				 "(check certificate, private-key and ca)", detail);
	if (tls_failure(rc, errbuf))
		return call_fail(k, err, KMS_ERR_UNREACHABLE, "TLS failure: %s",
				 detail);
	if (rc == CURLE_COULDNT_CONNECT) {
		call_fail(k, err, KMS_ERR_UNREACHABLE, "cannot connect: %s",
			  detail);
		if (k->os_errno != 0) /* curl 7.88's words have the address */
			snprintf(k->why, sizeof(k->why), "cannot connect: %s",
				 strerror(k->os_errno));
		return KMS_ERR_UNREACHABLE;
	}
	if (rc == CURLE_SEND_ERROR)
		return call_fail(k, err, KMS_ERR_UNREACHABLE,
				 "TLS failure? the KME closed the connection while "
				 "the request was sent (%s); a KME refusing this "
				 "SAE's client certificate under TLS 1.3 looks like "
				 "this", detail);
	if (rc == CURLE_GOT_NOTHING)
		return call_fail(k, err, KMS_ERR_UNREACHABLE,
				 "the KME closed the connection without an answer, "
				 "%d time%s (does it accept this SAE's client "
				 "certificate?)", k->attempts,
				 k->attempts == 1 ? "" : "s");
	return call_fail(k, err, KMS_ERR_UNREACHABLE, "%s (after %d attempt%s)",
			 detail, k->attempts, k->attempts == 1 ? "" : "s");
}

/* What came of an attempt, for the observer (metrics). */
static const char *outcome(CURLcode rc, long status, const char *errbuf,
			   const struct body *b, kms_rc out)
{
	if (out == KMS_OK)
		return "ok";
	if (rc == CURLE_OPERATION_TIMEDOUT)
		return "timeout";
	if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST)
		return "refused";
	if (rc != CURLE_OK && tls_failure(rc, errbuf))
		return "tls";
	if (rc == CURLE_GOT_NOTHING || rc == CURLE_RECV_ERROR ||
	    rc == CURLE_SEND_ERROR || rc == CURLE_PARTIAL_FILE)
		return "dropped";
	if (b->overflow)
		return "malformed";
	if (status >= 500)
		return "http_5xx";
	if (status >= 400)
		return "http_4xx";
	return "other";
}

static void observe(const struct call *k, int64_t t0_us, const char *what)
{
	struct kms_kme_event ev = {
		.profile = k->p->name, .url = k->kme->url, .op = op_names[k->op],
		.outcome = what, .us = kms_now_us() - t0_us, .http_status = k->http_status,
	};

	if (observer != NULL)
		observer(observer_ctx, &ev);
}

/* Idle handles of another process (a fork that ran no pthread_atfork
 * handler, see kmes_child) are forgotten, never closed: their numbers
 * may be this process's own descriptors by now. Under the idle lock, or
 * with no other thread. */
static void idle_after_fork(struct kme *cl)
{
	pid_t me = getpid();

	if (cl->pid == me)
		return;
	cl->n_idle = 0;
	cl->pid = me;
}

/* Where a 3xx answer points, as printable ASCII (it is the KME's text). */
static void redirect_to(CURL *h, char *out, size_t size)
{
	char *loc = NULL;
	size_t o = 0;

	out[0] = '\0';
	if (curl_easy_getinfo(h, CURLINFO_REDIRECT_URL, &loc) != CURLE_OK ||
	    loc == NULL)
		return;
	for (; *loc != '\0' && o + 4 < size; loc++)
		out[o++] = *loc > 0x20 && *loc < 0x7f ? *loc : '?';
	if (*loc != '\0')
		memcpy(out + o, "...", 3), o += 3;
	out[o] = '\0';
}

/* An easy handle for one call: an idle one, with its connection, or new. */
static CURL *take_handle(struct kme *cl)
{
	CURL *h = NULL;

	pthread_mutex_lock(&cl->idle_lock);
	idle_after_fork(cl);
	if (cl->n_idle > 0)
		h = cl->idle[--cl->n_idle];
	pthread_mutex_unlock(&cl->idle_lock);
	return h != NULL ? h : curl_easy_init();
}

static void give_back(struct kme *cl, CURL *h)
{
	curl_socket_t fd = CURL_SOCKET_BAD;

	if (h == NULL)
		return;
	if (curl_easy_getinfo(h, CURLINFO_ACTIVESOCKET, &fd) != CURLE_OK)
		fd = CURL_SOCKET_BAD;
	/* The options (pointers into the call's memory) go; the connection
	 * stays. */
	curl_easy_reset(h);
	pthread_mutex_lock(&cl->idle_lock);
	idle_after_fork(cl);
	if (cl->n_idle < IDLE_MAX) {
		cl->idle_fd[cl->n_idle] = fd;
		cl->idle[cl->n_idle++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&cl->idle_lock);
	curl_easy_cleanup(h); /* beyond the pool: closes its connection */
}

/* Whether a transfer that timed out did so in the TLS handshake: a new
 * connection was made in it (a reused one is not counted) to the KME's
 * address, and no handshake finished. libcurl 7.88 sets
 * CURLINFO_CONNECT_TIME_T only once TLS is up too, so it cannot tell;
 * these do: a SYN unanswered leaves no connection and no address, a
 * handshake done sets CURLINFO_APPCONNECT_TIME_T. */
static int tls_stalled(CURL *h)
{
	curl_off_t tls = 0;
	long made = 0;
	char *ip = NULL;

	if (curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &made) != CURLE_OK ||
	    curl_easy_getinfo(h, CURLINFO_PRIMARY_IP, &ip) != CURLE_OK ||
	    curl_easy_getinfo(h, CURLINFO_APPCONNECT_TIME_T, &tls) != CURLE_OK)
		return 0;
	return made > 0 && ip != NULL && ip[0] != '\0' && tls == 0;
}

/* One attempt; *again is set when a retry may help. */
static kms_rc attempt(struct call *k, const char *url, const char *request,
		      struct curl_slist *headers, struct curl_slist *resolved,
		      struct body *b, int *again, kms_error *err)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	long status = 0, os_errno = 0; /* curl's type */
	int64_t t0 = kms_now_us(), budget = k->deadline_ms - kms_now_ms();
	kms_rc out;
	CURLcode rc;
	CURL *h;

	*again = 0;
	b->len = 0;
	b->overflow = 0;
	k->attempts++;
	k->http_status = 0;
	k->timed_out = 0;
	k->big = 0;
	k->tls_stalled = 0;
	k->os_errno = 0;
	k->location[0] = '\0';
	k->why[0] = '\0';
	h = take_handle(k->kme);
	if (h == NULL || set_options(h, k, url, request, headers, resolved, b,
				     errbuf, (long)(budget > 1 ? budget : 1)) != 0) {
		give_back(k->kme, h);
		return kms_fail(err, KMS_ERR_SYSTEM, "cannot set up libcurl");
	}
	rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	if (rc == CURLE_OPERATION_TIMEDOUT)
		k->tls_stalled = tls_stalled(h);
	if (curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &os_errno) == CURLE_OK)
		k->os_errno = (int)os_errno;
	if (status >= 300 && status < 400)
		redirect_to(h, k->location, sizeof(k->location));
	give_back(k->kme, h);
	k->http_status = status;
	/* An error status whose body is too large to read (a proxy's or a
	 * web server's HTML page): an answer still, which its status tells. */
	if (rc == CURLE_WRITE_ERROR && b->overflow && status >= 300) {
		rc = CURLE_OK;
		b->overflow = 0;
		b->len = 0;
		k->big = 1;
	}
	if (rc != CURLE_OK) {
		*again = transient(rc) && !tls_failure(rc, errbuf) && !b->overflow;
		out = transfer_failure(k, rc, errbuf, b, err);
		if (*again && k->lost[0] == '\0')
			snprintf(k->lost, sizeof(k->lost), "%.*s",
				 (int)sizeof(k->lost) - 1,
				 errbuf[0] ? errbuf : curl_easy_strerror(rc));
		if (*again)
			k->n_lost++;
		if (*again && lost_enough(k)) {
			size_t l = err != NULL ? strlen(err->message) : 0;

			*again = 0;
			if (err != NULL)
				snprintf(err->message + l, sizeof(err->message) - l,
					 "; %d answers lost, not asked again: each "
					 "may have taken keys at the KME", k->n_lost);
			l = strlen(k->why);
			snprintf(k->why + l, sizeof(k->why) - l, "; %d answers "
				 "lost, not asked again", k->n_lost);
		}
	} else if (status == 200) {
		out = KMS_OK;
	} else {
		/* A 5xx to several keys may say the KME holds fewer: the
		 * caller asks for fewer, rather than for as many again. */
		*again = (status == 502 || status == 503 || status == 504) &&
			 k->keys <= 1;
		out = http_failure(k, status, b, err);
	}
	observe(k, t0, outcome(rc, status, errbuf, b, out));
	return out;
}

static kms_rc perform(struct call *k, const char *url, const char *request,
		      struct body *b, kms_error *err)
{
	struct curl_slist *headers = NULL, *h2, *resolved = NULL;
	const struct kms_file_copy *pem;
	kms_rc rc;
	int again;

	/* tune_ssl_ctx() is what keeps TLS secrets out of SSLKEYLOGFILE and
	 * decrypted keys out of OpenSSL's buffers: no other backend. */
	if (!curl_uses_openssl())
		return call_fail(k, err, KMS_ERR_UNSUPPORTED,
				 "libcurl does not do TLS with OpenSSL (%s): "
				 "kmstore needs libcurl built with OpenSSL",
				 tls_backend);
	/* curl would read an over-exposed key as happily as a private one,
	 * so it gets the key read from the descriptor that was checked. */
	rc = kms_kept_file_get(k->c->client->tls_key, &pem, err);
	if (rc != KMS_OK)
		return call_fail(k, err, rc, "%s", err != NULL ? err->message : "");
	rc = kms_qkd_tls_key_plain(k->c, pem->data, pem->len, err);
	if (rc != KMS_OK) {
		kms_file_copy_put(pem);
		return call_fail(k, err, rc, "%s", err != NULL ? err->message : "");
	}
	k->tls_key = (struct curl_blob){ .data = (void *)pem->data, .len = pem->len,
					 .flags = CURL_BLOB_NOCOPY };
	headers = curl_slist_append(NULL, "Accept: application/json");
	h2 = headers ? curl_slist_append(headers, "Content-Type: application/json") : NULL;
	if (h2 == NULL) {
		rc = kms_fail(err, KMS_ERR_SYSTEM, "out of memory");
		goto out;
	}
	rc = resolve(k, &resolved, err);
	if (rc != KMS_OK) {
		observe(k, kms_now_us(), "refused");
		goto out;
	}
	do {
		rc = attempt(k, url, request, headers, resolved, b, &again, err);
	} while (rc != KMS_OK && again &&
		 (k->max_attempts == 0 || k->attempts < k->max_attempts) &&
		 backoff(k));
out:
	curl_slist_free_all(resolved);
	curl_slist_free_all(headers);
	kms_file_copy_put(pem);
	return rc;
}

/* ---- KME health and failover ---- */

/* Worth asking the next KME: this one is unreachable or overloaded. A
 * 4xx, a bad answer or a local problem would be the same elsewhere. */
static int fails_over(kms_rc rc, long http_status)
{
	return rc == KMS_ERR_UNREACHABLE ||
	       (rc == KMS_ERR_KME && http_status >= 500);
}

/* Whether a request that ran out of time had too little of it to blame
 * the KME: less than half what the first KME of a profile gets, because
 * its caller waited in the queue behind others, or it came late in a
 * round. Requests sent with their whole share still mark a black-holed
 * KME down, and a KME that is slow for all is slow for them too. */
static int cut_short(const struct call *k)
{
	return k->timed_out &&
	       k->given_ms < k->c->timeout_ms / (long)k->c->client->n / 2;
}

/* It answers: its last error is past, and beside "up" in a status it
 * would read as the KME's trouble now. */
static void kme_up(struct kme *e)
{
	pthread_mutex_lock(&e->health_lock);
	e->asked = 1;
	e->failures = 0;
	e->retry_at_ms = 0;
	e->last_error[0] = '\0';
	pthread_mutex_unlock(&e->health_lock);
}

/* A 503: the KME answered, busy or out of keys, so it is up (kmstored's
 * outage policy); but the next requests ask the others first for a while
 * rather than each pay it a round trip before them. */
static void kme_busy(struct kme *e)
{
	pthread_mutex_lock(&e->health_lock);
	e->asked = 1;
	e->failures = 0;
	e->retry_at_ms = kms_now_ms() + BUSY_MS;
	e->last_error[0] = '\0';
	pthread_mutex_unlock(&e->health_lock);
}

static void kme_down(struct kme *e, const kms_error *err)
{
	long wait;

	pthread_mutex_lock(&e->health_lock);
	e->asked = 1;
	/* Requests in flight together fail together: one failure of the
	 * KME, not one each, lest one blip send it away for a minute. */
	if (e->failures == 0 || kms_now_ms() >= e->retry_at_ms) {
		e->failures++;
		wait = DOWN_FIRST_MS << (e->failures < 7 ? e->failures - 1 : 6);
		e->retry_at_ms = kms_now_ms() + (wait < DOWN_MAX_MS ? wait : DOWN_MAX_MS);
	}
	snprintf(e->last_error, sizeof(e->last_error), "%.*s",
		 (int)sizeof(e->last_error) - 1, err != NULL ? err->message : "failed");
	e->addrs_until_ms = 0; /* it may have moved */
	pthread_mutex_unlock(&e->health_lock);
}

static int64_t kme_retry_at(struct kme *e)
{
	int64_t t;

	pthread_mutex_lock(&e->health_lock);
	t = e->retry_at_ms;
	pthread_mutex_unlock(&e->health_lock);
	return t;
}

static int kme_failed(struct kme *e)
{
	int failed;

	pthread_mutex_lock(&e->health_lock);
	failed = e->asked && e->failures > 0;
	pthread_mutex_unlock(&e->health_lock);
	return failed;
}

/* The KMEs in the order to ask them: those up (or not asked yet) as
 * configured, then those busy (a 503 in the last second), then those in
 * their back-off, soonest back first. */
static size_t kme_order(struct kms_qkd_client *cl, size_t order[KMS_KMES_MAX])
{
	int64_t now = kms_now_ms(), at[KMS_KMES_MAX];
	size_t n = 0, down[KMS_KMES_MAX], n_down = 0, busy[KMS_KMES_MAX], n_busy = 0;

	for (size_t i = 0; i < cl->n; i++) {
		at[i] = kme_retry_at(&cl->kmes[i]);
		if (at[i] <= now)
			order[n++] = i;
		else if (!kme_failed(&cl->kmes[i]))
			busy[n_busy++] = i;
		else
			down[n_down++] = i;
	}
	for (size_t i = 0; i < n_busy; i++)
		order[n++] = busy[i];
	for (size_t i = 1; i < n_down; i++)
		for (size_t j = i; j > 0 && at[down[j]] < at[down[j - 1]]; j--) {
			size_t t = down[j];

			down[j] = down[j - 1];
			down[j - 1] = t;
		}
	for (size_t i = 0; i < n_down; i++)
		order[n++] = down[i];
	return n;
}

int kms_qkd_all_down(const kms_profile *p)
{
	const struct kms_qkd_config *c = p->state;

	for (size_t i = 0; i < c->client->n; i++)
		if (!kme_failed(&c->client->kmes[i]))
			return 0;
	return 1;
}

int64_t kms_qkd_back_at(const kms_profile *p)
{
	const struct kms_qkd_config *c = p->state;
	int64_t at = INT64_MAX;

	for (size_t i = 0; i < c->client->n; i++) {
		int64_t t = kme_retry_at(&c->client->kmes[i]);

		if (t < at)
			at = t;
	}
	return at;
}

static void health_of(struct kme *e, kms_kme_health *h)
{
	int64_t now = kms_now_ms();

	pthread_mutex_lock(&e->health_lock);
	snprintf(h->url, sizeof(h->url), "%.*s", (int)sizeof(h->url) - 1, e->url);
	snprintf(h->state, sizeof(h->state), "%s",
		 !e->asked ? "unknown" : e->failures == 0 ? "up" : "down");
	h->failures = e->failures;
	/* A long in the API: DOWN_MAX_MS at most. */
	h->retry_in_ms = e->retry_at_ms > now ? (long)(e->retry_at_ms - now) : 0;
	snprintf(h->last_error, sizeof(h->last_error), "%.*s",
		 (int)sizeof(h->last_error) - 1, e->last_error);
	pthread_mutex_unlock(&e->health_lock);
}

void kms_qkd_health(const kms_profile *p, kms_status *out)
{
	const struct kms_qkd_config *c = p->state;

	out->n_kmes = c->client->n;
	for (size_t i = 0; i < c->client->n; i++)
		health_of(&c->client->kmes[i], &out->kmes[i]);
}

/* Runs op at one KME until ms_left, leaving the answer in b. */
static kms_rc run_at(struct call *k, const char *path_tail, const char *request,
		     struct body *b, kms_error *err)
{
	char *url;
	kms_rc rc;

	if (asprintf(&url, "%s/api/v1/keys/%s", k->kme->base, path_tail) < 0)
		return kms_fail(err, KMS_ERR_SYSTEM, "out of memory");
	rc = perform(k, url, request, b, err);
	free(url);
	/* A 503 says the KME is busy or out of keys: it answered, and is
	 * not down (kmstored's outage policy). Another 5xx to several keys
	 * may say only that it holds fewer, or that a proxy cannot reach
	 * it: one key tells. Nor does this SAE's own credentials' problem,
	 * nor a request given too little time. */
	if (rc == KMS_ERR_CONFIG || cut_short(k) ||
	    (k->http_status >= 500 && k->http_status != 503 && k->keys > 1))
		return rc;
	if (k->http_status == 503)
		kme_busy(k->kme);
	else if (rc == KMS_OK || !fails_over(rc, k->http_status))
		kme_up(k->kme); /* it answered */
	else
		kme_down(k->kme, err);
	return rc;
}

/* The length of s cut to at most n bytes, not inside a UTF-8 sequence
 * (curl's words and kmstore's are ASCII; a URL may not be). */
static size_t cut_at(const char *s, size_t n)
{
	size_t len = strlen(s);

	if (len <= n)
		return len;
	while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
		n--;
	return n;
}

/* Each KME's last failure, in the order they were asked: what a failover
 * that failed says, "every KME of profile 'P' failed enc_keys for SAE 'X'
 * (3 tries): URL: why; URL: why" ("2 of the 3 KMEs ... (2 tries; the
 * rest not asked)" when the round ended before the last: an answer no
 * other KME would change, or no time left). When they do not all fit in a
 * message, each gets an equal share of what is left, cut with "..." (what
 * one does not use, the next may). asked: how many of the n KMEs were. */
static void failover_error(kms_error *err, const kms_profile *p, enum op op,
			   const char *sae, size_t tries, const struct kme *kme,
			   const size_t *order, char (*why)[KMS_ERROR_MAX],
			   size_t n, size_t asked)
{
	char *m = err->message;
	size_t size = sizeof(err->message), o;

	if (asked == n)
		o = (size_t)snprintf(m, size, "every KME of profile '%s' failed "
				     "%s for SAE '%s' (%zu tr%s):", p->name,
				     op_names[op], sae, tries,
				     tries == 1 ? "y" : "ies");
	else
		o = (size_t)snprintf(m, size, "%zu of the %zu KMEs of profile "
				     "'%s' failed %s for SAE '%s' (%zu tr%s; the "
				     "rest not asked):", asked, n, p->name,
				     op_names[op], sae, tries,
				     tries == 1 ? "y" : "ies");
	if (o >= size) {
		o = cut_at(m, size - 1);
		m[o] = '\0';
	}
	for (size_t i = 0; i < n; i++) {
		const char *url = kme[order[i]].url;
		size_t share, avail, u, w, left = size - 1 - o;
		int cut, u_cut;

		if (why[i][0] == '\0')
			continue;
		share = left / asked--;
		if (share < 24)
			break;
		/* " URL: why;": the URL and why in avail, "..." after either
		 * when cut; the URL whole unless that leaves the why less than
		 * 12 bytes. */
		avail = share - 3 - (asked > 0);
		u = strlen(url);
		w = strlen(why[i]);
		if (u + w > avail && u + 12 > avail) {
			u = cut_at(url, avail - 15);
			u_cut = 1;
		} else {
			u_cut = 0;
		}
		avail -= u + 3 * u_cut;
		cut = w > avail;
		if (cut)
			w = cut_at(why[i], avail - 3);
		o += (size_t)snprintf(m + o, size - o, " %.*s%s: %.*s%s%s", (int)u,
				      url, u_cut ? "..." : "", (int)w, why[i],
				      cut ? "..." : "", asked > 0 ? ";" : "");
	}
}

/* Runs op for the SAE sae with request (NULL: GET) until deadline
 * (monotonic ms) and leaves the answer in b (secmem). With one KME it
 * has the whole deadline, retries included; with several, they take
 * turns, one attempt each with an equal share of the time left in the
 * round, rounds separated by the usual back-off, until one answers or
 * the deadline passes. */
static kms_rc run(kms_profile *p, enum op op, const char *sae,
		  const char *request, size_t keys, int64_t deadline,
		  struct body *b, kms_error *err)
{
	struct kms_qkd_config *c = p->state;
	struct kms_qkd_client *cl = c->client;
	char path_sae[3 * 64 + 1], tail[3 * 64 + 32];
	size_t order[KMS_KMES_MAX], n, tried = 0, kmes_tried = 0;
	char why[KMS_KMES_MAX][KMS_ERROR_MAX]; /* by turn % n: the last failure */
	kms_rc rc = KMS_ERR_UNREACHABLE;
	int lost = 0;

	kms_percent_encode(path_sae, sizeof(path_sae), sae);
	snprintf(tail, sizeof(tail), "%s/%s", path_sae, op_names[op]);
	b->data = kms_secmem_alloc(BODY_MAX + 1);
	if (b->data == NULL)
		return kms_fail(err, KMS_ERR_SYSTEM, "out of memory");
	n = kme_order(cl, order);
	for (size_t i = 0; i < n; i++)
		why[i][0] = '\0';
	for (size_t turn = 0;; turn++) {
		size_t i = turn % n;
		int64_t left = deadline - kms_now_ms();
		struct call k = { .p = p, .c = c, .kme = &cl->kmes[order[i]],
				  .op = op, .sae = sae, .keys = keys,
				  .deadline_ms = kms_now_ms() + left / (int64_t)(n - i),
				  .given_ms = left / (int64_t)(n - i),
				  .max_attempts = n > 1, .n_lost = lost };

		if (turn > 0 && left <= 10)
			break;
		if (left <= 0) { /* spent waiting for its turn: not the KME's fault */
			rc = kms_fail(err, KMS_ERR_UNREACHABLE, "profile '%s': %s: "
				      "no time left of the timeout of %ld ms",
				      p->name, op_names[op], c->timeout_ms);
			break;
		}
		rc = run_at(&k, tail, request, b, err);
		b->status = k.http_status;
		tried++;
		kmes_tried += why[i][0] == '\0';
		if (rc != KMS_OK)
			snprintf(why[i], sizeof(why[i]), "%s", k.why[0] ? k.why :
				 err != NULL && err->message[0] ? err->message
								: "failed");
		lost = k.n_lost;
		if (n == 1 || rc == KMS_OK || !fails_over(rc, k.http_status) ||
		    lost_enough(&k))
			break;
		k.attempts = (int)(turn / n) + 1;
		k.deadline_ms = deadline;
		if (i == n - 1 && !backoff(&k))
			break;
	}
	if (rc != KMS_OK) {
		kms_secmem_free_used(b->data, BODY_MAX + 1, b->high);
		b->data = NULL;
		/* Each KME's last failure, the error's code the last one's.
		 * One KME asked: its answer (a 4xx, a bad answer) is no
		 * failover's, and its own message says it all. */
		if (n > 1 && kmes_tried > 1 && err != NULL)
			failover_error(err, p, op, sae, tried, cl->kmes, order,
				       why, n, kmes_tried);
	}
	return rc;
}

/* n keys (enc_keys, number = n; or dec_keys of want_id, n = 1) into
 * out[], *got of them, by deadline; the HTTP status of the last answer
 * into *status (0: none), if status is not NULL. */
static kms_rc fetch_keys(kms_profile *p, enum op op, const char *want_id,
			 size_t n, int64_t deadline, kms_key **out, size_t *got,
			 long *status, kms_error *err)
{
	struct kms_qkd_config *c = p->state;
	size_t key_len = (size_t)c->key_bits / 8, taken = 0;
	char (*ids)[KMS_KEY_ID_MAX + 1];
	struct body b = { 0 };
	uint8_t *keys;
	char *request;
	kms_rc rc;

	*got = 0;
	if (n < 1 || n * key_len > KMS_SECMEM_MAX)
		return kms_fail(err, KMS_ERR_USAGE, "cannot take %zu keys at once", n);
	request = op == OP_ENC_KEYS ? kms_etsi_enc_keys_request((long)n, c->key_bits)
				    : kms_etsi_dec_keys_request(&want_id, 1);
	ids = calloc(n, sizeof(*ids));
	if (request == NULL || ids == NULL) {
		free(request);
		free(ids);
		return kms_fail(err, KMS_ERR_SYSTEM, "out of memory");
	}
	/* enc_keys names the peer (slave) SAE; dec_keys names the peer as the
	 * master that asked for the key. */
	rc = run(p, op, c->peer_sae, request, n, deadline, &b, err);
	free(request);
	if (status != NULL)
		*status = b.status;
	if (rc != KMS_OK) {
		free(ids);
		return rc;
	}
	keys = kms_secmem_alloc(n * key_len);
	if (keys == NULL) {
		kms_secmem_free_used(b.data, BODY_MAX + 1, b.high);
		free(ids);
		return kms_fail(err, KMS_ERR_SYSTEM, "out of memory");
	}
	if (want_id != NULL)
		rc = kms_etsi_parse_key_container(b.data, b.len, want_id, key_len,
						  ids[0], keys, err);
	else
		rc = kms_etsi_parse_key_batch(b.data, b.len, n, key_len, ids, keys,
					      &taken, err);
	if (want_id != NULL && rc == KMS_OK)
		taken = 1;
	kms_secmem_free_used(b.data, BODY_MAX + 1, b.high);
	for (size_t i = 0; rc == KMS_OK && i < taken; i++, (*got)++)
		rc = kms_key_new(p->name, ids[i], keys + i * key_len, key_len,
				 &out[i], err);
	if (rc != KMS_OK) {
		for (size_t i = 0; i < *got; i++)
			kms_key_free(out[i]);
		*got = 0;
		kms_error_prefix(err, "profile '%s': KME %s: %s", p->name, c->url,
				 op_names[op]);
	}
	kms_secmem_free(keys, n * key_len);
	free(ids);
	return rc;
}

static int64_t deadline_of(const kms_profile *p)
{
	return kms_now_ms() + ((const struct kms_qkd_config *)p->state)->timeout_ms;
}

/* The KME's status, nothing else, by deadline. */
static kms_rc ask_status(kms_profile *p, int64_t deadline, kms_status *out,
			 kms_error *err)
{
	struct kms_qkd_config *c = p->state;
	struct body b = { 0 };
	kms_rc rc;

	rc = run(p, OP_STATUS, c->peer_sae, NULL, 0, deadline, &b, err);
	if (rc != KMS_OK)
		return rc;
	rc = kms_etsi_parse_status(b.data, b.len, out, err);
	kms_secmem_free_used(b.data, BODY_MAX + 1, b.high);
	if (rc != KMS_OK)
		kms_error_prefix(err, "profile '%s': KME %s: status", p->name,
				 c->url);
	return rc;
}

/* ---- keys asked for together ----
 *
 * A burst of IKE SAs has an initiator ask for many new keys at once and a
 * responder for many keys by ID, a thread each (pluto's helpers, kmstored's
 * clients). Asked one by one, each key costs an HTTPS exchange at both
 * ends, and each concurrent one a TLS connection of its own. So requests
 * queue per profile and operation and go out carrying up to QUEUE_BATCH
 * keys each (ETSI 014 enc_keys takes a number of keys, dec_keys a list of
 * key_IDs): a request goes when fewer than QUEUE_IN_FLIGHT are in flight,
 * or when a whole batch is waiting, so no caller waits much longer than
 * one round trip. A request alone goes at once, as before. No thread is
 * made: a waiting caller sends the next request itself.
 *
 * ETSI 014 answers all of a request or none. When a KME refuses a request
 * of several keys (dec_keys: one ID unknown, a peer's bogus PPK_ID or a
 * key already taken; either: more keys than it gives at once), or leaves
 * some out, each caller without a key asks again alone, so only its own
 * request fails, and the profile asks one key at a time for QUEUE_PAUSE_MS,
 * lest a peer sending bogus IDs cost every honest one a round trip more.
 * When every one of them gets its key alone after a refusal as a bad
 * request (refused_keys()), the KME takes fewer keys per request: as many
 * as it gave, else as many as its status says (max_key_per_request), else
 * half as many; so many for QUEUE_LIMIT_MS, and a warning. A status asked
 * for otherwise (kmstored's watcher, every 30 s) lowers it too. When a
 * request fails as unreachable or 5xx within the earliest deadline of its
 * callers, those with time left ask again alone, within their own. The
 * same ID twice in one dec_keys would be refused: the second waits for the
 * next. */
#define QUEUE_BATCH 16
#define QUEUE_IN_FLIGHT 4 /* tests/qkd/client_threads.c PLUGS */
#define QUEUE_PAUSE_MS 10000
#define QUEUE_LIMIT_MS 600000

enum wait_state { W_QUEUED, W_SENT, W_DONE, W_ALONE };

/* A caller's request, on its stack. The state changes under the queue's
 * lock only; rc, key and err are written by the thread that sent it
 * before the state says W_DONE, and read by the caller after. */
struct key_wait {
	const char *id; /* dec_keys: the key ID; enc_keys: NULL */
	int64_t deadline_ms;
	struct key_wait *next; /* queued */
	enum wait_state state;
	enum wait_state ended;  /* the sender's verdict, W_DONE or W_ALONE */
	kms_rc rc;
	kms_key *key;
	kms_error err;
	struct key_retry *retry; /* W_ALONE after a refusal: shared */
};

/* The requests of one refused (or cut short) request, each without a key
 * asking again alone. */
struct key_retry {
	size_t asked;   /* keys in the request */
	size_t given;   /* keys its answer held: 0 if refused */
	long status;    /* its HTTP status */
	size_t left;    /* still asking */
	int failed;     /* one of them got no key */
};

static void queue_init(struct key_queue *q, enum op op)
{
	pthread_condattr_t a;

	q->op = op;
	pthread_mutex_init(&q->lock, NULL);
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(&q->ended, &a);
	pthread_condattr_destroy(&a);
}

static void queue_destroy(struct key_queue *q)
{
	pthread_cond_destroy(&q->ended);
	pthread_mutex_destroy(&q->lock);
}

static void queue_unlink(struct key_queue *q, struct key_wait *w)
{
	struct key_wait **pp = &q->head;

	while (*pp != w)
		pp = &(*pp)->next;
	*pp = w->next;
}

static size_t queue_count(const struct key_queue *q)
{
	size_t n = 0;

	for (const struct key_wait *w = q->head; w != NULL && n < QUEUE_BATCH; w = w->next)
		n++;
	return n;
}

/* Keys per request the KME takes, as far as is known; the lock is held. */
static size_t queue_limit_of(const struct key_queue *q, int64_t now)
{
	return now < q->most_until_ms ? q->most : QUEUE_BATCH;
}

/* Keys one request carries now; the lock is held. */
static size_t queue_most(const struct key_queue *q, int64_t now)
{
	return now < q->alone_until_ms ? 1 : queue_limit_of(q, now);
}

/* Whether a queued caller sends the next request now: with fewer keys
 * per request, as many requests as whole batches would have carried. */
static int queue_may_send(const struct key_queue *q)
{
	size_t most = queue_most(q, kms_now_ms());

	if (q->in_flight < QUEUE_IN_FLIGHT * (QUEUE_BATCH / most))
		return 1;
	return most > 1 && queue_count(q) >= most &&
	       q->in_flight < QUEUE_IN_FLIGHT * QUEUE_BATCH;
}

/* Ends a queued request whose deadline passed; the lock is held. */
static void queue_expire(const kms_profile *p, struct key_queue *q,
			 struct key_wait *w)
{
	const struct kms_qkd_config *c = p->state;

	queue_unlink(q, w);
	w->rc = kms_fail(&w->err, KMS_ERR_UNREACHABLE,
			 "profile '%s': KME %s: %s: no answer within the "
			 "timeout of %ld ms (queued behind other requests for %s)",
			 p->name, c->url, op_names[q->op], c->timeout_ms,
			 q->op == OP_DEC_KEYS ? "keys by ID" : "new keys");
	w->state = W_DONE;
}

static int in_batch(struct key_wait *const *batch, size_t n, const char *id)
{
	for (size_t i = 0; i < n; i++)
		if (kms_etsi_same_key_id(batch[i]->id, id))
			return 1;
	return 0;
}

/* Takes up to queue_most() queued requests, oldest first, distinct IDs;
 * ends those whose deadline has passed. */
static size_t queue_take(const kms_profile *p, struct key_queue *q,
			 struct key_wait **batch)
{
	int64_t now = kms_now_ms();
	size_t n = 0, max = queue_most(q, now);

	for (struct key_wait *w = q->head, *next; w != NULL && n < max; w = next) {
		next = w->next;
		if (w->id != NULL && in_batch(batch, n, w->id))
			continue;
		if (w->deadline_ms <= now) {
			queue_expire(p, q, w);
			pthread_cond_broadcast(&q->ended);
			continue;
		}
		queue_unlink(q, w);
		w->state = W_SENT;
		batch[n++] = w;
	}
	return n;
}

/* The key of the answer for w: by ID for dec_keys, in order for enc_keys
 * (the i-th of the batch); taken if none. */
static size_t answer_for(const struct key_wait *w, size_t i,
			 char (*ids)[KMS_KEY_ID_MAX + 1], size_t taken)
{
	size_t k = 0;

	if (w->id == NULL)
		return i < taken ? i : taken;
	while (k < taken && !kms_etsi_same_key_id(ids[k], w->id))
		k++;
	return k;
}

/* Whether a failed request for several keys was refused as a bad
 * request, for one of them (an ID the KME lacks) or for their number:
 * ETSI 014's 400, or a proxy's 413. Not a 401 or 403, which fewer keys
 * would not change; not a 5xx, which says the KME is out of keys or busy
 * and would say so to fewer keys too; not an answer it could not read.
 * The queue and the pool's refills learn a KME's limit from these only. */
static int refused_keys(long http_status)
{
	return http_status == 400 || http_status == 413;
}

/* Asks for several keys in one request, within deadline; each caller's
 * request ends W_DONE (its key, or the error all share) or W_ALONE (to
 * ask again alone). */
static void queue_ask(kms_profile *p, enum op op, struct key_wait **batch,
		      size_t n, int64_t deadline)
{
	struct kms_qkd_config *c = p->state;
	size_t key_len = (size_t)c->key_bits / 8, taken = 0;
	char (*ids)[KMS_KEY_ID_MAX + 1] = calloc(n, sizeof(*ids));
	const char *want[QUEUE_BATCH];
	uint8_t *keys = kms_secmem_alloc(n * key_len);
	struct body b = { 0 };
	char *request = NULL;
	kms_error err = { 0 };
	struct key_retry *retry;
	kms_rc rc;
	int again, scarce;

	for (size_t i = 0; i < n; i++)
		want[i] = batch[i]->id;
	if (ids != NULL && keys != NULL)
		request = op == OP_ENC_KEYS
				  ? kms_etsi_enc_keys_request((long)n, c->key_bits)
				  : kms_etsi_dec_keys_request(want, n);
	if (request == NULL) {
		rc = kms_fail(&err, KMS_ERR_SYSTEM, "out of memory");
	} else if ((rc = run(p, op, c->peer_sae, request, n, deadline, &b, &err)) ==
		   KMS_OK) {
		rc = kms_etsi_parse_key_batch(b.data, b.len, n, key_len, ids,
					      keys, &taken, &err);
		kms_secmem_free_used(b.data, BODY_MAX + 1, b.high);
	}
	/* The requests it has no key for (refused, garbled or left out)
	 * may get theirs alone; a KME unreachable or answering 5xx would
	 * say the same to each. */
	again = rc == KMS_OK ||
		(rc != KMS_ERR_SYSTEM && b.status != 0 && !fails_over(rc, b.status));
	/* A 5xx to so many keys may say the KME holds fewer: each asks
	 * alone, learning nothing of the KME's limit. */
	scarce = rc != KMS_OK && b.status >= 500;
	retry = again ? calloc(1, sizeof(*retry)) : NULL;
	for (size_t i = 0; i < n; i++) {
		struct key_wait *w = batch[i];
		size_t k = answer_for(w, i, ids, taken);

		w->ended = W_DONE;
		if (rc == KMS_OK && k < taken) {
			/* by ID: the ID as the caller asked (see answer_for) */
			w->rc = kms_key_new(p->name, w->id != NULL ? w->id : ids[k],
					    keys + k * key_len,
					    key_len, &w->key, &w->err);
		} else if (again) {
			w->ended = W_ALONE;
			w->retry = retry;
			if (retry != NULL)
				retry->left++;
		} else if (scarce || (rc != KMS_ERR_SYSTEM &&
				      w->deadline_ms - deadline > RETRY_MIN_MS)) {
			w->ended = W_ALONE; /* or the earliest deadline passed, not its */
		} else {
			w->rc = rc;
			w->err = err;
		}
	}
	if (retry != NULL && retry->left == 0) {
		free(retry);
	} else if (retry != NULL) {
		retry->asked = n;
		retry->given = rc == KMS_OK ? taken : 0;
		retry->status = b.status;
	}
	kms_secmem_free(keys, n * key_len);
	free(request);
	free(ids);
}

/* Sets the keys per request of q to most for QUEUE_LIMIT_MS, if that is
 * not more than it is (the same again renews it); the number it was if
 * that was more, else 0. */
static size_t queue_limit(struct key_queue *q, long most)
{
	int64_t now = kms_now_ms();
	size_t was;

	if (most < 1)
		return 0;
	pthread_mutex_lock(&q->lock);
	was = queue_limit_of(q, now);
	if ((size_t)most <= was) {
		q->most = (size_t)most;
		q->most_until_ms = now + QUEUE_LIMIT_MS;
	}
	pthread_mutex_unlock(&q->lock);
	return (size_t)most < was ? was : 0;
}

/* The KME's status by deadline into st, its max_key_per_request and
 * stored_key_count -1 if not told; not asked with less than half the
 * profile's timeout left, lest a KME that just answered be counted down
 * for a status cut short. */
static void said_status(kms_profile *p, int64_t deadline, kms_status *st)
{
	const struct kms_qkd_config *c = p->state;
	kms_error err;

	memset(st, 0, sizeof(*st));
	st->max_key_per_request = st->stored_key_count = -1;
	if (deadline - kms_now_ms() < c->timeout_ms / 2 ||
	    ask_status(p, deadline, st, &err) != KMS_OK)
		st->max_key_per_request = st->stored_key_count = -1;
}

static long said_most(kms_profile *p, int64_t deadline)
{
	kms_status st;

	said_status(p, deadline, &st);
	return st.max_key_per_request;
}

/* Says what was learned of the KME from a refusal of r: why, and what
 * the KME did then. */
static void log_limit(const kms_profile *p, enum op op,
		      const struct key_retry *r, size_t most, const char *why,
		      const char *then)
{
	const struct kms_qkd_config *c = p->state;
	int dec = op == OP_DEC_KEYS;
	const char *what = dec ? "key ID" : "key";
	char how[64] = "refused", per[64];

	if (r->given > 0)
		snprintf(how, sizeof(how), "gave %zu key%s for", r->given,
			 r->given == 1 ? "" : "s");
	if (most == 1)
		snprintf(per, sizeof(per), "one %s", what);
	else
		snprintf(per, sizeof(per), "at most %zu %ss", most, what);
	kms_log(KMS_LOG_WARNING, "profile '%s': KME %s %s %s of %zu %ss%s: "
		"asking for %s per request for %d minutes (%s)", p->name,
		c->url, how, dec ? "a dec_keys" : "an enc_keys", r->asked, what,
		then, per, QUEUE_LIMIT_MS / 60000, why);
}

/* How many keys per request to ask for after r was refused for their
 * number (or cut short): as many as it gave, else as many as the KME's
 * status said (said: -1 if not asked or not told), else half as many;
 * why, into why. */
static long fewer_keys(const struct key_retry *r, long said, char *why,
		       size_t size)
{
	snprintf(why, size, "as many as it gave");
	if (r->given > 0 && r->given < r->asked)
		return (long)r->given;
	snprintf(why, size, "its status's max_key_per_request");
	if (said >= 1 && (size_t)said < r->asked)
		return said;
	if (said >= 1) /* it says more, yet refused: believe the refusal */
		snprintf(why, size, "half as many, though its status says "
			 "max_key_per_request %ld", said);
	else
		snprintf(why, size, "half as many; its status did not tell");
	return (long)r->asked / 2;
}

/* A request of a refused one got its key alone (ok) or not; the last of
 * them tells why the KME refused: a key it lacks, or their number. */
static void queue_learn(kms_profile *p, struct key_queue *q,
			struct key_retry *r, int ok, int64_t deadline)
{
	int64_t now = kms_now_ms();
	long most;
	char why[96];
	int last, known, cut;

	pthread_mutex_lock(&q->lock);
	r->failed |= !ok;
	last = --r->left == 0;
	if (last && r->failed && now + QUEUE_PAUSE_MS > q->alone_until_ms)
		q->alone_until_ms = now + QUEUE_PAUSE_MS;
	known = queue_limit_of(q, now) < r->asked; /* told by another's */
	pthread_mutex_unlock(&q->lock);
	if (!last)
		return; /* r is the last one's now */
	cut = r->given > 0 && r->given < r->asked;
	if (!r->failed && (cut || (refused_keys(r->status) && !known))) {
		most = fewer_keys(r, cut ? -1 : said_most(p, deadline), why,
				  sizeof(why));
		if (queue_limit(q, most) > 0)
			log_limit(p, q->op, r, (size_t)most, why,
				  " and then gave each missing key alone");
	}
	free(r);
}

/* Sends the queued requests' next request; the lock is held, and let go
 * while it is asked. */
static void queue_lead(kms_profile *p, struct key_queue *q)
{
	struct key_wait *batch[QUEUE_BATCH];
	size_t n = queue_take(p, q, batch);
	int64_t deadline = INT64_MAX;

	for (size_t i = 0; i < n; i++)
		if (batch[i]->deadline_ms < deadline)
			deadline = batch[i]->deadline_ms;
	if (n == 0)
		return;
	q->in_flight++;
	pthread_mutex_unlock(&q->lock);
	if (n == 1) {
		size_t got;

		batch[0]->rc = fetch_keys(p, q->op, batch[0]->id, 1, deadline,
					  &batch[0]->key, &got, NULL,
					  &batch[0]->err);
		batch[0]->ended = W_DONE;
	} else {
		queue_ask(p, q->op, batch, n, deadline);
	}
	pthread_mutex_lock(&q->lock);
	for (size_t i = 0; i < n; i++)
		batch[i]->state = batch[i]->ended;
	q->in_flight--;
	pthread_cond_broadcast(&q->ended);
}

/* The caller's own request, once it is its turn or its deadline passed;
 * the lock is held. */
static void queue_wait_turn(kms_profile *p, struct key_queue *q,
			    struct key_wait *w)
{
	/* Every request that ends wakes the queue: a caller still queued
	 * sends the next. */
	while (w->state == W_QUEUED || w->state == W_SENT) {
		if (w->state == W_QUEUED && kms_now_ms() >= w->deadline_ms) {
			queue_expire(p, q, w);
		} else if (w->state == W_QUEUED && queue_may_send(q)) {
			queue_lead(p, q);
		} else if (w->state == W_SENT) {
			pthread_cond_wait(&q->ended, &q->lock);
		} else {
			struct timespec ts = { .tv_sec = (time_t)(w->deadline_ms / 1000),
					       .tv_nsec = (long)(w->deadline_ms % 1000 * 1000000) };

			pthread_cond_timedwait(&q->ended, &q->lock, &ts);
		}
	}
}

/* A key through q: a new one (id NULL) or the one with id. */
static kms_rc queue_get(kms_profile *p, struct key_queue *q, const char *id,
			kms_key **out, kms_error *err)
{
	struct key_wait w = { .id = id, .deadline_ms = deadline_of(p) };
	struct key_wait **tail = &q->head;
	size_t got;
	int cancel;

	/* Others hold pointers to w, on this stack, until it is done. */
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel);
	pthread_mutex_lock(&q->lock);
	while (*tail != NULL)
		tail = &(*tail)->next;
	*tail = &w;
	queue_wait_turn(p, q, &w);
	pthread_mutex_unlock(&q->lock);
	if (w.state == W_ALONE) {
		w.rc = fetch_keys(p, q->op, id, 1, w.deadline_ms, &w.key, &got,
				  NULL, &w.err);
		if (w.retry != NULL)
			queue_learn(p, q, w.retry, w.rc == KMS_OK,
				    w.deadline_ms);
	}
	pthread_setcancelstate(cancel, NULL);
	if (w.rc != KMS_OK) {
		if (err != NULL)
			*err = w.err;
		return w.rc;
	}
	*out = w.key;
	return KMS_OK;
}

kms_rc kms_qkd_get_keys(kms_profile *p, size_t n, kms_key **out, size_t *got,
			kms_error *err)
{
	struct key_queue *q = &((struct kms_qkd_config *)p->state)->client->enc;
	int64_t deadline = deadline_of(p);
	long status = 0, most;
	struct key_retry r = { 0 };
	kms_status st;
	char why[96];
	kms_rc rc;

	pthread_mutex_lock(&q->lock);
	most = (long)queue_limit_of(q, kms_now_ms());
	pthread_mutex_unlock(&q->lock);
	r.asked = n < (size_t)most ? n : (size_t)most;
	rc = fetch_keys(p, OP_ENC_KEYS, NULL, r.asked, deadline, out, got,
			&status, err);
	/* Refused as a bad request (400, 413), perhaps for their number:
	 * fewer, until some are given, the KME's limit, learned as the queue
	 * learns it; until one key is refused too. A 5xx: the KME may hold
	 * fewer: as many as it holds, else half as many, once, unless it
	 * holds none. Then the caller backs off. */
	for (int first = 1; rc != KMS_OK && r.asked > 1 &&
	     (refused_keys(status) || (status >= 500 && first));
	     first = 0) {
		int refused = refused_keys(status);

		if (first)
			said_status(p, deadline, &st);
		if (refused) {
			most = fewer_keys(&r, st.max_key_per_request, why, sizeof(why));
		} else if (st.stored_key_count == 0) {
			break;
		} else {
			most = (long)r.asked / 2;
			if (st.stored_key_count >= 1 && (size_t)st.stored_key_count < r.asked)
				most = st.stored_key_count;
			if (st.max_key_per_request >= 1 && st.max_key_per_request < most)
				most = st.max_key_per_request;
		}
		rc = fetch_keys(p, OP_ENC_KEYS, NULL, (size_t)most, deadline,
				out, got, &status, err);
		if (rc == KMS_OK && refused && queue_limit(q, most) > 0)
			log_limit(p, OP_ENC_KEYS, &r, (size_t)most, why, "");
		r.asked = (size_t)most;
	}
	return rc;
}

kms_rc kms_qkd_get_key(kms_profile *p, kms_key **out, kms_error *err)
{
	return queue_get(p, &((struct kms_qkd_config *)p->state)->client->enc,
			 NULL, out, err);
}

kms_rc kms_qkd_get_key_by_id(kms_profile *p, const char *id, kms_key **out,
			     kms_error *err)
{
	return queue_get(p, &((struct kms_qkd_config *)p->state)->client->dec,
			 id, out, err);
}

kms_rc kms_qkd_status(kms_profile *p, kms_status *out, kms_error *err)
{
	struct kms_qkd_client *cl = ((struct kms_qkd_config *)p->state)->client;
	kms_rc rc = ask_status(p, deadline_of(p), out, err);

	/* Each KME's health after this request too: in an outage, what
	 * status shows besides the error. */
	kms_qkd_health(p, out);
	if (rc != KMS_OK) {
		strcpy(out->state, "failed");
		return rc;
	}
	queue_limit(&cl->enc, out->max_key_per_request);
	queue_limit(&cl->dec, out->max_key_per_request);
	strcpy(out->state, "ready");
	return KMS_OK;
}
