/* keyfetch.c - how fast QKD keys arrive through libkmstore and through the
 * OpenSSL provider, compared with what users script today.
 *
 * One round trip = enc_keys at the west KME (a new key and its ID) then
 * dec_keys of that ID at the east KME, as an IKE initiator and responder
 * do. The ways, in one run so the ratios are fair on a noisy machine:
 *   libkmstore         kms_profile_get_key + kms_profile_get_key_by_id
 *   provider           the same through OSSL_STORE (kmstore.so in its own
 *                      OSSL_LIB_CTX: open, load, the key ID parameter,
 *                      open by ID, the raw bytes compared), as an
 *                      application does it (ossl_face.c)
 *   both again with THREADS threads sharing the store / library context
 *   curl per request   one curl process per HTTPS request
 *   curl, one process  one curl process for all enc_keys, one for all
 *                      dec_keys, reusing its connection
 * and with -D CLIENT, a third face:
 *   through kmstored   libkmstore with a client configuration (daemon =
 *                      SOCKET) whose kmstored serves CONF: the same calls,
 *                      answered by the daemon
 * In RUNS turns at each thread count (1, then THREADS) every thread does N
 * round trips of each face, one face and then the other round by round, so
 * that both meet the same load on a shared machine. A face's rate in a
 * turn is its round trips over the time they took, per thread; each cell
 * shows its median turn and every turn. The provider's (and kmstored's)
 * ratio to libkmstore is the median over the turns, per thread count, and
 * the worst of those two cells is named. A last line gives what an open costs the provider
 * where no KME is involved (a static profile's key): its fixed cost, not
 * part of the ratio.
 * CONF holds the QKD profiles "west" and "east" and the static profile
 * "static" (bench/run-keyfetch.sh writes it).
 * With -W CLIENT only "a key for use now" through kmstored, N times, each
 * timed: for a kmstored whose profile has a pool (prefetch), the latency
 * of a key from a warm pool through the socket.
 * Usage: keyfetch [-n N] [-j THREADS] [-r RUNS] [-p PROVIDER_DIR]
 *                 [-D CLIENT] CONF
 *        keyfetch [-n N] -W CLIENT [PROFILE]   (PROFILE: qkd) */
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "kmstore.h"

#ifdef KEYFETCH_OSSL
#include <openssl/err.h>

#include "ossl_face.h"
#endif

extern char **environ;

struct site {
	kms_profile *p;
	const char *url, *peer, *cert, *key, *ca;
};

struct result {
	const char *name;
	double seconds;  /* wall time for all N */
	double *lat_ms;  /* per round trip */
	int n;
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const kms_error *e) __attribute__((noreturn));

static void die(const char *what, const kms_error *e)
{
	fprintf(stderr, "keyfetch: %s: %s\n", what, e != NULL ? e->message : "failed");
	exit(1);
}

static kms_store *store, *daemon_store; /* CONF's; -D's, or NULL */

static void find_profile(kms_store *st, const char *profile, kms_profile **p)
{
	kms_error e;

	if (kms_store_find_profile(st, profile, p, &e) != KMS_OK)
		die(profile, &e);
}

static void open_site(struct site *s, const char *profile)
{
	find_profile(store, profile, &s->p);
	s->url = kms_profile_setting(s->p, "url");
	s->peer = kms_profile_setting(s->p, "peer-sae-id");
	s->cert = kms_profile_setting(s->p, "certificate");
	s->key = kms_profile_setting(s->p, "private-key");
	s->ca = kms_profile_setting(s->p, "ca");
	if (s->url == NULL)
		die(profile, NULL);
}

/* Runs argv, returns its stdout (malloc'ed). */
static char *capture(char *const argv[])
{
	size_t len = 0, cap = 65536;
	char *out = malloc(cap);
	posix_spawn_file_actions_t fa;
	int fds[2], status;
	pid_t pid;
	ssize_t r;

	if (out == NULL || pipe(fds) != 0)
		die("pipe", NULL);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
	posix_spawn_file_actions_addclose(&fa, fds[0]);
	if (posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ) != 0)
		die("cannot run curl", NULL);
	posix_spawn_file_actions_destroy(&fa);
	close(fds[1]);
	while ((r = read(fds[0], out + len, cap - len - 1)) > 0) {
		len += (size_t)r;
		if (len + 1 == cap && (out = realloc(out, cap *= 2)) == NULL)
			die("out of memory", NULL);
	}
	close(fds[0]);
	out[len] = '\0';
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
		die("curl failed", NULL);
	return out;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double percentile(struct result *r, double q)
{
	qsort(r->lat_ms, (size_t)r->n, sizeof(double), cmp_double);
	return r->lat_ms[(int)(q * (r->n - 1) + 0.5)];
}

static void lib_round(struct site *w, struct site *e)
{
	kms_key *a, *b;
	kms_error err;

	if (kms_profile_get_key(w->p, &a, &err) != KMS_OK)
		die("enc_keys", &err);
	if (kms_profile_get_key_by_id(e->p, kms_key_id(a), &b, &err) != KMS_OK)
		die("dec_keys", &err);
	if (kms_key_size(a) != kms_key_size(b) ||
	    memcmp(kms_key_bytes(a), kms_key_bytes(b), kms_key_size(a)) != 0)
		die("the two KMEs returned different keys", NULL);
	kms_key_free(a);
	kms_key_free(b);
}

#ifdef KEYFETCH_OSSL
static struct ossl_face ossl;

static void ossl_round(void)
{
	if (ossl_face_round(ossl.ctx, "west", "east") != OSSL_ROUND_SERVED) {
		ERR_print_errors_fp(stderr);
		die("a round trip through the provider", NULL);
	}
}
#endif

static struct site dw, de; /* west and east through kmstored (-D) */

enum face { LIB, OSSL, DAEMON };
#define FACES_MAX 3

/* A cell: one face at one thread count, over all turns. */
struct cell {
	struct result r;     /* every round's latency; seconds at the median rate */
	enum face face;
	int threads;
	double rates[64];    /* per turn */
	int runs;
};

/* One thread of a turn: n round trips of each face, taking turns round by
 * round, so that both meet the same load; each face's time is summed. */
struct job {
	struct cell *cells[FACES_MAX];
	int nfaces, n, first;
	struct site *w, *e;
	double *lat_ms[FACES_MAX];
	double busy[FACES_MAX];
};

static void *run_job(void *arg)
{
	struct job *j = arg;

	for (int i = 0; i < j->nfaces * j->n; i++) {
		int f = (i + j->first) % j->nfaces;
		double t = now(), dt;

		if (j->cells[f]->face == LIB)
			lib_round(j->w, j->e);
		else if (j->cells[f]->face == DAEMON)
			lib_round(&dw, &de);
#ifdef KEYFETCH_OSSL
		else
			ossl_round();
#endif
		dt = now() - t;
		j->lat_ms[f][i / j->nfaces] = dt * 1000;
		j->busy[f] += dt;
	}
	return NULL;
}

/* One turn at a thread count: each face's rate is its round trips over the
 * time they took, per thread. */
static void run_turn(struct cell **cells, int nfaces, struct site *w,
		     struct site *e, int n, int turn)
{
	int threads = cells[0]->threads;
	struct job jobs[64];
	pthread_t th[64];
	double busy[FACES_MAX] = { 0 };

	for (int i = 0; i < threads; i++) {
		jobs[i] = (struct job){ .nfaces = nfaces, .n = n,
					.first = (i + turn) % nfaces, .w = w, .e = e };
		for (int f = 0; f < nfaces; f++) {
			jobs[i].cells[f] = cells[f];
			jobs[i].lat_ms[f] = cells[f]->r.lat_ms +
					    (size_t)(cells[f]->runs * threads + i) * (size_t)n;
		}
		if (pthread_create(&th[i], NULL, run_job, &jobs[i]) != 0)
			die("pthread_create", NULL);
	}
	for (int i = 0; i < threads; i++) {
		pthread_join(th[i], NULL);
		for (int f = 0; f < nfaces; f++)
			busy[f] += jobs[i].busy[f];
	}
	for (int f = 0; f < nfaces; f++)
		cells[f]->rates[cells[f]->runs++] = (double)threads * n / (busy[f] / threads);
}

/* The median over the turns of a's rate over b's in the same turn. */
static double median_ratio(const struct cell *a, const struct cell *b)
{
	double v[64];

	for (int k = 0; k < a->runs; k++)
		v[k] = a->rates[k] / b->rates[k];
	qsort(v, (size_t)a->runs, sizeof(double), cmp_double);
	return v[a->runs / 2];
}

static double median_rate(struct cell *c)
{
	double v[64];

	memcpy(v, c->rates, sizeof(double) * (size_t)c->runs);
	qsort(v, (size_t)c->runs, sizeof(double), cmp_double);
	return v[c->runs / 2];
}

/* A static profile's key, n times: what an open costs without a KME. */
static double static_rate(enum face face, int n)
{
	kms_profile *p;
	kms_error err;
	double t0 = now();

	if (kms_store_find_profile(store, "static", &p, &err) != KMS_OK)
		die("static", &err);
	for (int i = 0; i < n; i++) {
		if (face == LIB) {
			kms_key *k;

			if (kms_profile_get_key(p, &k, &err) != KMS_OK)
				die("static", &err);
			kms_key_free(k);
		}
#ifdef KEYFETCH_OSSL
		else {
			EVP_PKEY *k = ossl_face_load(ossl.ctx, "kmstore:profile=static");

			if (k == NULL)
				die("static through the provider", NULL);
			EVP_PKEY_free(k);
		}
#endif
	}
	return n / (now() - t0);
}

/* curl's part of a command line for one request to a site. */
static int curl_args(char **v, int n, const struct site *s, const char *op,
		     const char *body, char *url, size_t url_size)
{
	snprintf(url, url_size, "%s/api/v1/keys/%s/%s", s->url, s->peer, op);
	v[n++] = "--cert";
	v[n++] = (char *)s->cert;
	v[n++] = "--key";
	v[n++] = (char *)s->key;
	v[n++] = "--cacert";
	v[n++] = (char *)s->ca;
	v[n++] = "-H";
	v[n++] = "Content-Type: application/json";
	v[n++] = "-d";
	v[n++] = (char *)body;
	v[n++] = url;
	return n;
}

static char *key_id_of(json_object *doc)
{
	json_object *keys, *id;

	if (!json_object_object_get_ex(doc, "keys", &keys) ||
	    !json_object_object_get_ex(json_object_array_get_idx(keys, 0), "key_ID", &id))
		die("curl got no key", NULL);
	return strdup(json_object_get_string(id));
}

static void bench_curl_each(struct site *w, struct site *e, struct result *r)
{
	double t0 = now();

	for (int i = 0; i < r->n; i++) {
		char *v[32] = { "curl", "-sS", "--fail" }, url[512], body[256];
		double t = now();
		json_object *doc;
		char *out, *id;
		int n;

		n = curl_args(v, 3, w, "enc_keys", "{\"number\":1,\"size\":256}",
			      url, sizeof(url));
		v[n] = NULL;
		out = capture(v);
		doc = json_tokener_parse(out);
		id = key_id_of(doc);
		json_object_put(doc);
		free(out);
		snprintf(body, sizeof(body), "{\"key_IDs\":[{\"key_ID\":\"%s\"}]}", id);
		n = curl_args(v, 3, e, "dec_keys", body, url, sizeof(url));
		v[n] = NULL;
		free(capture(v));
		free(id);
		r->lat_ms[i] = (now() - t) * 1000;
	}
	r->seconds = now() - t0;
}

/* One curl process for n requests: "--next" between them keeps the
 * connection. "-w" adds each transfer's time after its body. */
static char *curl_batch(const struct site *s, const char *op, char **bodies,
			int n)
{
	char **v = calloc((size_t)n * 20 + 4, sizeof(char *));
	char (*urls)[512] = calloc((size_t)n, sizeof(*urls));
	int k = 0;
	char *out;

	if (v == NULL || urls == NULL)
		die("out of memory", NULL);
	v[k++] = "curl";
	for (int i = 0; i < n; i++) {
		if (i > 0)
			v[k++] = "--next";
		v[k++] = "-sS";
		v[k++] = "--fail";
		v[k++] = "-w";
		v[k++] = "\n%{time_total}\n";
		k = curl_args(v, k, s, op, bodies[i], urls[i], sizeof(urls[i]));
	}
	out = capture(v);
	free(v);
	free(urls);
	return out;
}

static void bench_curl_reused(struct site *w, struct site *e, struct result *r)
{
	char **bodies = calloc((size_t)r->n, sizeof(char *));
	double t0 = now(), *enc_s = calloc((size_t)r->n, sizeof(double));
	char *out, *line, *save = NULL;
	int i = 0;

	for (int j = 0; j < r->n; j++)
		bodies[j] = "{\"number\":1,\"size\":256}";
	out = curl_batch(w, "enc_keys", bodies, r->n);
	/* Lines alternate: a JSON body, then its time. */
	for (line = strtok_r(out, "\n", &save); line && i < r->n;
	     line = strtok_r(NULL, "\n", &save)) {
		json_object *doc = json_tokener_parse(line);
		char *id = key_id_of(doc);

		json_object_put(doc);
		if (asprintf(&bodies[i], "{\"key_IDs\":[{\"key_ID\":\"%s\"}]}", id) < 0)
			die("out of memory", NULL);
		free(id);
		line = strtok_r(NULL, "\n", &save);
		enc_s[i++] = line ? atof(line) : 0;
	}
	free(out);
	out = curl_batch(e, "dec_keys", bodies, r->n);
	save = NULL;
	i = 0;
	for (line = strtok_r(out, "\n", &save); line && i < r->n;
	     line = strtok_r(NULL, "\n", &save)) {
		line = strtok_r(NULL, "\n", &save);
		r->lat_ms[i] = (enc_s[i] + (line ? atof(line) : 0)) * 1000;
		i++;
	}
	r->seconds = now() - t0;
	free(out);
	for (int j = 0; j < r->n; j++)
		free(bodies[j]);
	free(bodies);
	free(enc_s);
}

static double now_us(void)
{
	return now() * 1e6;
}

/* -W: keys for use now, one at a time, each timed, in microseconds. */
static int bench_pool(const char *client, const char *profile, int n)
{
	struct result r = { .name = "warm pool", .n = n };
	kms_profile *p;
	kms_error err;
	double t0;

	if (kms_store_open(client, &daemon_store, &err) != KMS_OK)
		die(client, &err);
	find_profile(daemon_store, profile, &p);
	r.lat_ms = calloc((size_t)n, sizeof(double));
	if (r.lat_ms == NULL)
		die("out of memory", NULL);
	t0 = now();
	for (int i = 0; i < n; i++) {
		double t = now_us();
		kms_key *k;

		if (kms_profile_get_key(p, &k, &err) != KMS_OK)
			die("a key for use now", &err);
		r.lat_ms[i] = now_us() - t; /* here: microseconds */
		kms_key_free(k);
	}
	r.seconds = now() - t0;
	printf("%d keys for use now through kmstored, one at a time: %.0f keys/s\n", n,
	       n / r.seconds);
	printf("latency us: p50 %.0f, p90 %.0f, p99 %.0f, max %.0f "
	       "(targets: p50 <= 100, p99 <= 1000)\n", percentile(&r, 0.5),
	       percentile(&r, 0.9), percentile(&r, 0.99), percentile(&r, 1.0));
	kms_store_free(daemon_store);
	free(r.lat_ms);
	return 0;
}

static void print(struct result *r)
{
	printf("%-28s %9.1f %9.2f %9.2f", r->name, r->n / r->seconds,
	       percentile(r, 0.5), percentile(r, 0.99));
}

static int usage(void)
{
	fprintf(stderr, "usage: keyfetch [-n N] [-j THREADS] [-r RUNS] "
		"[-p PROVIDER_DIR] [-D CLIENT] CONF\n"
		"       keyfetch [-n N] -W CLIENT [PROFILE]\n");
	return 2;
}

int main(int argc, char **argv)
{
	struct result each = { .name = "curl per request" },
		      reused = { .name = "curl, one process" };
	struct cell cells[2 * FACES_MAX];
	enum face faces[FACES_MAX] = { LIB };
	const char *provider_dir = NULL, *client = NULL, *warm = NULL;
	int n = 200, threads = 4, runs = 3, ncells = 0, nfaces = 1, opt;
	double worst = 0, lib_static, ossl_static = 0;
	struct site w, e;
	kms_error err;

	while ((opt = getopt(argc, argv, "n:j:r:p:D:W:")) != -1) {
		if (opt == 'n' && (n = atoi(optarg)) > 0)
			continue;
		if (opt == 'j' && (threads = atoi(optarg)) > 1 && threads <= 64)
			continue;
		if (opt == 'r' && (runs = atoi(optarg)) > 0 && runs <= 64)
			continue;
		if (opt == 'p') {
			provider_dir = optarg;
			continue;
		}
		if (opt == 'D') {
			client = optarg;
			continue;
		}
		if (opt == 'W') {
			warm = optarg;
			continue;
		}
		return usage();
	}
	if (warm != NULL && argc - optind <= 1)
		return bench_pool(warm, optind < argc ? argv[optind] : "qkd", n);
	if (argc - optind != 1)
		return usage();
	if (kms_store_open(argv[optind], &store, &err) != KMS_OK)
		die(argv[optind], &err);
	open_site(&w, "west");
	open_site(&e, "east");
#ifdef KEYFETCH_OSSL
	if (ossl_face_open(&ossl, argv[optind], provider_dir) != 0)
		return 1;
	faces[nfaces++] = OSSL;
#else
	(void)provider_dir;
#endif
	if (client != NULL) {
		if (kms_store_open(client, &daemon_store, &err) != KMS_OK)
			die(client, &err);
		find_profile(daemon_store, "west", &dw.p);
		find_profile(daemon_store, "east", &de.p);
		faces[nfaces++] = DAEMON;
	}

	/* The cells: 1 thread, then THREADS; libkmstore, the provider,
	 * kmstored. */
	for (int t = 0; t < 2; t++)
		for (int f = 0; f < nfaces; f++) {
			struct cell *c = &cells[ncells++];
			int nthreads = t == 0 ? 1 : threads;

			memset(c, 0, sizeof(*c));
			c->face = faces[f];
			c->threads = nthreads;
			c->r.n = n * runs * nthreads;
			c->r.lat_ms = calloc((size_t)c->r.n, sizeof(double));
		}
	/* Warm: connections up, the provider's methods fetched. */
	for (int i = 0; i < 50; i++) {
		lib_round(&w, &e);
#ifdef KEYFETCH_OSSL
		ossl_round();
#endif
		if (client != NULL)
			lib_round(&dw, &de);
	}
	for (int r = 0; r < runs; r++)
		for (int t = 0; t < 2; t++) {
			struct cell *turn[FACES_MAX];

			for (int f = 0; f < nfaces; f++)
				turn[f] = &cells[t * nfaces + f];
			run_turn(turn, nfaces, &w, &e, n, r);
		}

	/* curl per request spawns two processes per round trip: 200 do. */
	each.n = n < 200 ? n : 200;
	reused.n = n;
	each.lat_ms = calloc((size_t)each.n, sizeof(double));
	reused.lat_ms = calloc((size_t)n, sizeof(double));
	bench_curl_each(&w, &e, &each);
	bench_curl_reused(&w, &e, &reused);

	printf("enc_keys at west + dec_keys at east, 256-bit keys; %d turns, in "
	       "each every thread does %d round trips of each face, alternating; "
	       "the median turn shown\n", runs, n);
	printf("%-28s %9s %9s %9s   %s\n", "method", "keys/s", "p50 ms", "p99 ms",
	       "(keys/s of each turn)");
	for (int i = 0; i < ncells; i++) {
		struct cell *c = &cells[i];
		char name[64];
		const char *face = c->face == LIB    ? "libkmstore" :
				   c->face == OSSL   ? "provider" :
						       "through kmstored";

		if (c->threads > 1)
			snprintf(name, sizeof(name), "%s, %d threads", face, c->threads);
		else
			snprintf(name, sizeof(name), "%s", face);
		c->r.name = name;
		c->r.seconds = c->r.n / median_rate(c);
		print(&c->r);
		printf("   turns:");
		for (int k = 0; k < c->runs; k++)
			printf(" %.0f", c->rates[k]);
		printf("\n");
	}
	print(&each);
	printf("\n");
	print(&reused);
	printf("\n");
	for (int f = 1; f < nfaces; f++) {
		double one = median_ratio(&cells[f], &cells[0]);
		double many = median_ratio(&cells[nfaces + f], &cells[nfaces]);

		worst = one < many ? one : many;
		printf("%s vs libkmstore (median of the turns' ratios): 1 thread "
		       "%.2fx, %d threads %.2fx; worst cell %.2fx%s\n",
		       faces[f] == OSSL ? "provider" : "through kmstored", one,
		       threads, many, worst,
		       faces[f] == OSSL ? " (target >= 0.8x)" : "");
	}
	printf("libkmstore vs curl per request:  %.1fx faster (target >= 10x)\n",
	       median_rate(&cells[0]) / (each.n / each.seconds));
	printf("libkmstore vs curl, one process: %.2fx the time (target <= 1.5x)\n",
	       (n / median_rate(&cells[0])) / reused.seconds);
	lib_static = static_rate(LIB, 20 * n);
#ifdef KEYFETCH_OSSL
	ossl_static = static_rate(OSSL, 20 * n);
	printf("no KME (static profile, %d keys): libkmstore %.0f/s, provider "
	       "%.0f/s: an open costs the provider %.1f us more\n", 20 * n,
	       lib_static, ossl_static, 1e6 / ossl_static - 1e6 / lib_static);
	if (ossl_face_close(&ossl) != 0)
		die("unloading the providers", NULL);
#else
	printf("no KME (static profile, %d keys): libkmstore %.0f/s\n", 20 * n, lib_static);
	(void)ossl_static;
#endif
	kms_store_free(store);
	kms_store_free(daemon_store);
	for (int i = 0; i < ncells; i++)
		free(cells[i].r.lat_ms);
	free(each.lat_ms);
	free(reused.lat_ms);
	return 0;
}
