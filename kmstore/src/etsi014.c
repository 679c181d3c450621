/* etsi014.c - the ETSI GS QKD 014 client of QKD profiles: libcurl, HTTPS
 * with mutual TLS, one deadline for the whole call.
 *
 * Three constraints shape it:
 * - It runs inside NSS's PKCS#11 module, which may not create threads
 *   (CKF_LIBRARY_CANT_CREATE_OS_THREADS), and curl's threaded resolver
 *   would. So the host is resolved here, in the caller's thread, once per
 *   call and within its deadline (resolve.c), and handed to curl with
 *   CURLOPT_RESOLVE: curl never resolves.
 * - Several threads may fetch keys at once (pluto's helpers, a PKCS#11
 *   application, the OpenSSL provider's threads sharing one store). libcurl
 *   does not support one connection cache shared by concurrent threads
 *   (CURLSHOPT_SHARE(3); curl 8.21 crashes in its connection pool), so a
 *   profile keeps a pool of easy handles, each with its own connection: a
 *   call takes an idle one (or makes one) and puts it back, so keep-alive
 *   works across calls and threads, one connection per concurrent call.
 *   TLS sessions, which libcurl does share between threads, are in the
 *   profile's CURLSH, so a new handle resumes a session.
 * - The answer becomes an IKE PPK: the body is size-limited, held in locked
 *   memory and checked strictly (etsi014_json.c). */
#include <errno.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/ssl.h>

#include "etsi014_json.h"
#include "qkd.h"
#include "resolve.h"
#include "secmem.h"
#include "uri.h"

#define BODY_MAX 16384
#define KMS_RESOLVE_MAX 1024 /* a few addresses, as CURLOPT_RESOLVE has them */
#define BACKOFF_FIRST_MS 50
#define BACKOFF_MAX_MS 1000
#define IDLE_MAX 8      /* idle handles (and connections) kept per profile */

struct kms_qkd_client {
	CURLSH *share;  /* TLS sessions */
	pthread_mutex_t locks[CURL_LOCK_DATA_LAST];
	pthread_mutex_t idle_lock;
	CURL *idle[IDLE_MAX]; /* handles not in use, each with its connection */
	size_t n_idle;
	char *host;     /* as in the URL, without brackets */
	long port;
	char *base;     /* the URL without a trailing '/' */
};

enum op { OP_STATUS, OP_ENC_KEYS, OP_DEC_KEYS };

static const char *const op_names[] = {
	[OP_STATUS] = "status",
	[OP_ENC_KEYS] = "enc_keys",
	[OP_DEC_KEYS] = "dec_keys",
};

struct body {
	char *data; /* secmem, BODY_MAX + 1 */
	size_t len;
	int overflow;
};

/* One request in flight: what failed is described relative to it. */
struct call {
	kms_profile *p;
	struct kms_qkd_config *c;
	enum op op;
	const char *sae; /* the SAE ID in the path */
	long deadline_ms; /* monotonic */
	int attempts;
	struct curl_blob tls_key; /* the SAE's PEM key, in locked memory */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access a,
		       void *ctx)
{
	struct kms_qkd_client *cl = ctx;

	(void)h;
	(void)a;
	pthread_mutex_lock(&cl->locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *ctx)
{
	struct kms_qkd_client *cl = ctx;

	(void)h;
	pthread_mutex_unlock(&cl->locks[data]);
}

static kms_rc split_url(struct kms_qkd_client *cl, const char *url,
			kms_error *err)
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

kms_rc kms_qkd_client_new(kms_profile *p, kms_error *err)
{
	struct kms_qkd_config *c = p->state;
	struct kms_qkd_client *cl;

	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != CURLE_OK)
		return kms_fail(err, KMS_ERR_SYSTEM, "libcurl cannot start: %s",
				curl_easy_strerror(curl_init_rc));
	cl = calloc(1, sizeof(*cl));
	if (cl == NULL)
		return kms_fail(err, KMS_ERR_SYSTEM, "out of memory");
	c->client = cl;
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&cl->locks[i], NULL);
	pthread_mutex_init(&cl->idle_lock, NULL);
	cl->share = curl_share_init();
	if (cl->share == NULL)
		return kms_fail(err, KMS_ERR_SYSTEM, "out of memory");
	curl_share_setopt(cl->share, CURLSHOPT_LOCKFUNC, share_lock);
	curl_share_setopt(cl->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
	curl_share_setopt(cl->share, CURLSHOPT_USERDATA, cl);
	curl_share_setopt(cl->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
	return split_url(cl, c->url, err);
}

void kms_qkd_client_free(struct kms_qkd_client *cl)
{
	if (cl == NULL)
		return;
	/* The handles first: they use the share. */
	for (size_t i = 0; i < cl->n_idle; i++)
		curl_easy_cleanup(cl->idle[i]);
	if (cl->share != NULL)
		curl_share_cleanup(cl->share);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&cl->locks[i]);
	pthread_mutex_destroy(&cl->idle_lock);
	free(cl->host);
	free(cl->base);
	free(cl);
}

static kms_rc call_fail(const struct call *k, kms_error *err, kms_rc code,
			const char *fmt, ...) KMS_PRINTF(4, 5);

/* "profile 'P': KME URL: enc_keys for SAE 'X': ..." */
static kms_rc call_fail(const struct call *k, kms_error *err, kms_rc code,
			const char *fmt, ...)
{
	char msg[KMS_ERROR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return kms_fail(err, code, "profile '%s': KME %s: %s for SAE '%s': %s",
			k->p->name, k->c->url, op_names[k->op], k->sae, msg);
}

/* The addresses curl will connect to, looked up once per call in this
 * thread (see top) and within the call's deadline (resolve.c). */
static kms_rc resolve(const struct call *k, struct curl_slist **list,
		      kms_error *err)
{
	struct kms_qkd_client *cl = k->c->client;
	char addrs[KMS_RESOLVE_MAX], entry[KMS_RESOLVE_MAX + 300];
	const char *why;

	switch (kms_resolve(cl->host, k->deadline_ms - now_ms(), addrs,
			    sizeof(addrs), &why)) {
	case KMS_RESOLVED:
		break;
	case KMS_RESOLVE_TIMEOUT:
		return call_fail(k, err, KMS_ERR_UNREACHABLE,
				 "cannot resolve '%s' within the timeout of "
				 "%.1f s: %s", cl->host,
				 k->c->timeout_ms / 1000.0, why);
	default:
		return call_fail(k, err, KMS_ERR_UNREACHABLE,
				 "cannot resolve '%s': %s", cl->host, why);
	}
	snprintf(entry, sizeof(entry), "%s%s%s:%ld:%s",
		 strchr(cl->host, ':') ? "[" : "", cl->host,
		 strchr(cl->host, ':') ? "]" : "", cl->port, addrs);
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
		b->overflow = 1;
		return 0; /* curl aborts the transfer */
	}
	memcpy(b->data + b->len, ptr, n);
	b->len += n;
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

/* The callback gets the backend's context: an SSL_CTX only with OpenSSL. */
static const char *tls_backend(void)
{
	const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);

	return v->ssl_version != NULL ? v->ssl_version : "no TLS";
}

static int curl_uses_openssl(void)
{
	return strncmp(tls_backend(), "OpenSSL/", 8) == 0;
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
	SET(CURLOPT_SHARE, c->client->share);
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
	SET(CURLOPT_TIMEOUT_MS, budget_ms);
	SET(CURLOPT_CONNECTTIMEOUT_MS, budget_ms);
	SET(CURLOPT_HTTPHEADER, headers);
	SET(CURLOPT_WRITEFUNCTION, on_data);
	SET(CURLOPT_WRITEDATA, b);
	SET(CURLOPT_ERRORBUFFER, errbuf);
	SET(CURLOPT_USERAGENT, "kmstore/" KMS_VERSION);
	SET(CURLOPT_SSL_CTX_FUNCTION, tune_ssl_ctx);
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

/* Waits before the next attempt; 0 if the deadline leaves no room. */
static int backoff(struct call *k)
{
	long wait = BACKOFF_FIRST_MS << (k->attempts < 6 ? k->attempts - 1 : 5);
	long left = k->deadline_ms - now_ms();
	struct timespec ts;

	if (wait > BACKOFF_MAX_MS)
		wait = BACKOFF_MAX_MS;
	if (left <= wait + 10)
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

	kms_etsi_error_text(b->data, b->len, text, sizeof(text));
	if (k->op == OP_DEC_KEYS && (status == 400 || status == 404))
		code = KMS_ERR_NOT_FOUND;
	return call_fail(k, err, code, "HTTP %ld%s%s%s", status,
			 text[0] ? ": " : "", text,
			 status == 401 ? likely_401(k->op) : "");
}

static kms_rc transfer_failure(struct call *k, CURLcode rc, const char *errbuf,
			       const struct body *b, kms_error *err)
{
	const char *detail = errbuf[0] ? errbuf : curl_easy_strerror(rc);

	if (b->overflow)
		return call_fail(k, err, KMS_ERR_KME,
				 "the answer is larger than %d bytes", BODY_MAX);
	if (rc == CURLE_OPERATION_TIMEDOUT || now_ms() >= k->deadline_ms)
		return call_fail(k, err, KMS_ERR_UNREACHABLE,
				 "no answer within the timeout of %.1f s (%d "
				 "attempt%s; last: %s)", k->c->timeout_ms / 1000.0,
				 k->attempts, k->attempts == 1 ? "" : "s", detail);
	if (tls_failure(rc, errbuf))
		return call_fail(k, err, KMS_ERR_UNREACHABLE, "TLS failure: %s",
				 detail);
	if (rc == CURLE_COULDNT_CONNECT)
		return call_fail(k, err, KMS_ERR_UNREACHABLE,
				 "cannot connect: %s", detail);
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

/* An easy handle for one call: an idle one, with its connection, or new. */
static CURL *take_handle(struct kms_qkd_client *cl)
{
	CURL *h = NULL;

	pthread_mutex_lock(&cl->idle_lock);
	if (cl->n_idle > 0)
		h = cl->idle[--cl->n_idle];
	pthread_mutex_unlock(&cl->idle_lock);
	return h != NULL ? h : curl_easy_init();
}

static void give_back(struct kms_qkd_client *cl, CURL *h)
{
	if (h == NULL)
		return;
	/* The options (pointers into the call's memory) go; the connection
	 * stays. */
	curl_easy_reset(h);
	pthread_mutex_lock(&cl->idle_lock);
	if (cl->n_idle < IDLE_MAX) {
		cl->idle[cl->n_idle++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&cl->idle_lock);
	curl_easy_cleanup(h); /* beyond the pool: closes its connection */
}

/* One attempt; *again is set when a retry may help. */
static kms_rc attempt(struct call *k, const char *url, const char *request,
		      struct curl_slist *headers, struct curl_slist *resolved,
		      struct body *b, int *again, kms_error *err)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	long status = 0, budget = k->deadline_ms - now_ms();
	CURLcode rc;
	CURL *h;

	*again = 0;
	b->len = 0;
	b->overflow = 0;
	k->attempts++;
	h = take_handle(k->c->client);
	if (h == NULL || set_options(h, k, url, request, headers, resolved, b,
				     errbuf, budget > 1 ? budget : 1) != 0) {
		give_back(k->c->client, h);
		return kms_fail(err, KMS_ERR_SYSTEM, "cannot set up libcurl");
	}
	rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	give_back(k->c->client, h);
	if (rc != CURLE_OK) {
		*again = transient(rc) && !tls_failure(rc, errbuf) && !b->overflow;
		return transfer_failure(k, rc, errbuf, b, err);
	}
	if (status == 200)
		return KMS_OK;
	*again = status == 502 || status == 503 || status == 504;
	return http_failure(k, status, b, err);
}

static kms_rc perform(struct call *k, const char *url, const char *request,
		      struct body *b, kms_error *err)
{
	struct curl_slist *headers = NULL, *h2, *resolved = NULL;
	uint8_t *pem;
	size_t pem_len;
	kms_rc rc;
	int again;

	/* tune_ssl_ctx() is what keeps TLS secrets out of SSLKEYLOGFILE and
	 * decrypted keys out of OpenSSL's buffers: no other backend. */
	if (!curl_uses_openssl())
		return call_fail(k, err, KMS_ERR_UNSUPPORTED,
				 "libcurl does not do TLS with OpenSSL (%s): "
				 "kmstore needs libcurl built with OpenSSL",
				 tls_backend());
	/* curl would read an over-exposed key as happily as a private one,
	 * so it gets the key read from the descriptor that was checked. */
	rc = kms_qkd_read_tls_key(k->c, &pem, &pem_len, err);
	if (rc != KMS_OK)
		return call_fail(k, err, rc, "%s", err != NULL ? err->message : "");
	k->tls_key = (struct curl_blob){ .data = pem, .len = pem_len,
					 .flags = CURL_BLOB_NOCOPY };
	headers = curl_slist_append(NULL, "Accept: application/json");
	h2 = headers ? curl_slist_append(headers, "Content-Type: application/json") : NULL;
	if (h2 == NULL) {
		rc = kms_fail(err, KMS_ERR_SYSTEM, "out of memory");
		goto out;
	}
	rc = resolve(k, &resolved, err);
	if (rc != KMS_OK)
		goto out;
	do {
		rc = attempt(k, url, request, headers, resolved, b, &again, err);
	} while (rc != KMS_OK && again && backoff(k));
out:
	curl_slist_free_all(resolved);
	curl_slist_free_all(headers);
	kms_secmem_free(pem, KMS_TLS_KEY_MAX + 1);
	return rc;
}

/* Runs op for the SAE sae with request (NULL: GET) and leaves the answer
 * in b (secmem). */
static kms_rc run(kms_profile *p, enum op op, const char *sae,
		  const char *request, struct body *b, kms_error *err)
{
	struct kms_qkd_config *c = p->state;
	struct call k = { .p = p, .c = c, .op = op, .sae = sae,
			  .deadline_ms = now_ms() + c->timeout_ms };
	char path_sae[3 * 64 + 1];
	char *url;
	kms_rc rc;

	kms_percent_encode(path_sae, sizeof(path_sae), sae);
	if (asprintf(&url, "%s/api/v1/keys/%s/%s", c->client->base, path_sae,
		     op_names[op]) < 0)
		return kms_fail(err, KMS_ERR_SYSTEM, "out of memory");
	b->data = kms_secmem_alloc(BODY_MAX + 1);
	if (b->data == NULL) {
		free(url);
		return kms_fail(err, KMS_ERR_SYSTEM, "out of memory");
	}
	rc = perform(&k, url, request, b, err);
	free(url);
	if (rc != KMS_OK) {
		kms_secmem_free(b->data, BODY_MAX + 1);
		b->data = NULL;
	}
	return rc;
}

static kms_rc fetch_key(kms_profile *p, enum op op, const char *want_id,
			kms_key **out, kms_error *err)
{
	struct kms_qkd_config *c = p->state;
	size_t key_len = (size_t)c->key_bits / 8;
	char id[KMS_KEY_ID_MAX + 1];
	struct body b = { 0 };
	uint8_t *key;
	char *request;
	kms_rc rc;

	request = op == OP_ENC_KEYS ? kms_etsi_enc_keys_request(1, c->key_bits)
				    : kms_etsi_dec_keys_request(want_id);
	if (request == NULL)
		return kms_fail(err, KMS_ERR_SYSTEM, "out of memory");
	/* enc_keys names the peer (slave) SAE; dec_keys names the peer as the
	 * master that asked for the key. */
	rc = run(p, op, c->peer_sae, request, &b, err);
	free(request);
	if (rc != KMS_OK)
		return rc;
	key = kms_secmem_alloc(key_len);
	if (key == NULL) {
		kms_secmem_free(b.data, BODY_MAX + 1);
		return kms_fail(err, KMS_ERR_SYSTEM, "out of memory");
	}
	rc = kms_etsi_parse_key_container(b.data, b.len, want_id, key_len, id,
					  key, err);
	kms_secmem_free(b.data, BODY_MAX + 1);
	if (rc == KMS_OK)
		rc = kms_key_new(p->name, id, key, key_len, out, err);
	else
		kms_error_prefix(err, "profile '%s': KME %s: %s", p->name, c->url,
				 op_names[op]);
	kms_secmem_free(key, key_len);
	return rc;
}

kms_rc kms_qkd_get_key(kms_profile *p, kms_key **out, kms_error *err)
{
	return fetch_key(p, OP_ENC_KEYS, NULL, out, err);
}

kms_rc kms_qkd_get_key_by_id(kms_profile *p, const char *id, kms_key **out,
			     kms_error *err)
{
	return fetch_key(p, OP_DEC_KEYS, id, out, err);
}

kms_rc kms_qkd_status(kms_profile *p, kms_status *out, kms_error *err)
{
	struct kms_qkd_config *c = p->state;
	struct body b = { 0 };
	kms_rc rc;

	rc = run(p, OP_STATUS, c->peer_sae, NULL, &b, err);
	if (rc != KMS_OK)
		return rc;
	rc = kms_etsi_parse_status(b.data, b.len, out, err);
	kms_secmem_free(b.data, BODY_MAX + 1);
	if (rc != KMS_OK)
		return kms_error_prefix(err, "profile '%s': KME %s: status",
					p->name, c->url);
	strcpy(out->state, "ready");
	return KMS_OK;
}
