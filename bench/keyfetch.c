/* keyfetch.c - how fast QKD keys arrive through libkmstore, compared with
 * what users script today.
 *
 * One round trip = enc_keys at the west KME (a new key and its ID) then
 * dec_keys of that ID at the east KME, as an IKE initiator and responder
 * do. Three ways, in one run so the ratios are fair on a noisy machine:
 *   libkmstore         kms_profile_get_key + kms_profile_get_key_by_id
 *   curl per request   one curl process per HTTPS request
 *   curl, one process  one curl process for all enc_keys, one for all
 *                      dec_keys, reusing its connection
 * and with -D, a fourth:
 *   through kmstored   libkmstore with client configurations (daemon =
 *                      SOCKET): the same calls, answered by kmstored
 * With -W CLIENT only "a key for use now" through kmstored, N times, each
 * timed: for a kmstored whose profile has a pool (prefetch), the latency
 * of a key from a warm pool through the socket.
 * Usage: keyfetch [-n N] [-D WEST_CLIENT EAST_CLIENT] WEST_CONF EAST_CONF
 *        [PROFILE]   (PROFILE: qkd)
 *        keyfetch [-n N] -W CLIENT [PROFILE] */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "kmstore.h"

extern char **environ;

struct site {
	kms_store *store;
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

static void open_store(struct site *s, const char *conf, const char *profile)
{
	kms_error e;

	if (kms_store_open(conf, &s->store, &e) != KMS_OK ||
	    kms_store_find_profile(s->store, profile, &s->p, &e) != KMS_OK)
		die(conf, &e);
}

static void open_site(struct site *s, const char *conf, const char *profile)
{
	open_store(s, conf, profile);
	s->url = kms_profile_setting(s->p, "url");
	s->peer = kms_profile_setting(s->p, "peer-sae-id");
	s->cert = kms_profile_setting(s->p, "certificate");
	s->key = kms_profile_setting(s->p, "private-key");
	s->ca = kms_profile_setting(s->p, "ca");
	if (s->url == NULL)
		die(conf, NULL);
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

static void bench_library(struct site *w, struct site *e, struct result *r)
{
	double t0 = now();

	for (int i = 0; i < r->n; i++) {
		double t = now();
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
		r->lat_ms[i] = (now() - t) * 1000;
	}
	r->seconds = now() - t0;
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
	struct site s;
	double t0;

	open_store(&s, client, profile);
	r.lat_ms = calloc((size_t)n, sizeof(double));
	if (r.lat_ms == NULL)
		die("out of memory", NULL);
	t0 = now();
	for (int i = 0; i < n; i++) {
		double t = now_us();
		kms_key *k;
		kms_error err;

		if (kms_profile_get_key(s.p, &k, &err) != KMS_OK)
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
	kms_store_free(s.store);
	free(r.lat_ms);
	return 0;
}

static void print(struct result *r)
{
	printf("%-20s %9.1f %9.2f %9.2f\n", r->name, r->n / r->seconds,
	       percentile(r, 0.5), percentile(r, 0.99));
}

int main(int argc, char **argv)
{
	struct result lib = { .name = "libkmstore" },
		      each = { .name = "curl per request" },
		      reused = { .name = "curl, one process" },
		      daemon = { .name = "through kmstored" };
	const char *profile = "qkd", *dw = NULL, *de = NULL, *warm = NULL;
	static const char usage[] = "usage: keyfetch [-n N] [-D WEST_CLIENT "
				    "EAST_CLIENT] WEST_CONF EAST_CONF [PROFILE]\n"
				    "       keyfetch [-n N] -W CLIENT [PROFILE]\n";
	struct site w, e, dws, des;
	int n = 200, opt;

	while ((opt = getopt(argc, argv, "n:D:W:")) != -1) {
		if (opt == 'W') {
			warm = optarg;
		} else if (opt == 'D' && optind < argc) {
			dw = optarg;
			de = argv[optind++];
		} else if (opt != 'n' || (n = atoi(optarg)) <= 0) {
			fputs(usage, stderr);
			return 2;
		}
	}
	if (warm != NULL)
		return bench_pool(warm, optind < argc ? argv[optind] : profile, n);
	if (argc - optind < 2) {
		fputs(usage, stderr);
		return 2;
	}
	if (argc - optind > 2)
		profile = argv[optind + 2];
	open_site(&w, argv[optind], profile);
	open_site(&e, argv[optind + 1], profile);
	lib.n = each.n = reused.n = n;
	lib.lat_ms = calloc((size_t)n, sizeof(double));
	each.lat_ms = calloc((size_t)n, sizeof(double));
	reused.lat_ms = calloc((size_t)n, sizeof(double));

	bench_library(&w, &e, &lib);
	if (dw != NULL) {
		open_store(&dws, dw, profile);
		open_store(&des, de, profile);
		daemon.n = n;
		daemon.lat_ms = calloc((size_t)n, sizeof(double));
		bench_library(&dws, &des, &daemon);
	}
	bench_curl_each(&w, &e, &each);
	bench_curl_reused(&w, &e, &reused);

	printf("%d round trips (enc_keys at west + dec_keys at east), 256-bit keys\n", n);
	printf("%-20s %9s %9s %9s\n", "method", "keys/s", "p50 ms", "p99 ms");
	print(&lib);
	if (dw != NULL)
		print(&daemon);
	print(&each);
	print(&reused);
	if (dw != NULL) {
		printf("through kmstored vs libkmstore in-process: %.2fx the keys/s\n",
		       lib.seconds / daemon.seconds);
		kms_store_free(dws.store);
		kms_store_free(des.store);
		free(daemon.lat_ms);
	}
	printf("libkmstore vs curl per request:  %.1fx faster (target >= 10x)\n",
	       each.seconds / lib.seconds);
	printf("libkmstore vs curl, one process: %.2fx the time (target <= 1.5x)\n",
	       lib.seconds / reused.seconds);
	kms_store_free(w.store);
	kms_store_free(e.store);
	free(lib.lat_ms);
	free(each.lat_ms);
	free(reused.lat_ms);
	return 0;
}
