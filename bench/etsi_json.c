/* etsi_json.c - what kmstore's own reader of a KME's answer (kms_etsi_read,
 * then kms_etsi_drop, which wipes every string) costs against json-c's
 * tokener, which libkmstore used before it.
 *
 * The answers, as kme-sim writes them: key containers of 1, 16 and 128
 * 256-bit keys (UUID key_IDs), a status object and an error object. The
 * faces, each reading an answer into a json-c tree and freeing it:
 *   kmstore            kms_etsi_read + kms_etsi_drop, as libkmstore does
 *   json_tokener_parse json_tokener_parse + json_object_put
 *   json-c strict      what libkmstore did up to 7843d5c: a tokener of
 *                      depth 16, JSON_TOKENER_STRICT, its print buffer
 *                      wiped, json_object_put
 * In RUNS turns, one thread and then THREADS at once, every thread reads
 * each answer N times per face (N scaled to the answer's size), the faces
 * taking turns block by block (BLOCK reads), so that all meet the same
 * load on a shared machine; each block is timed. A cell is one answer at
 * one thread count: its ns per answer in the median turn, and the ratio
 * kmstore / json-c of each turn, median [lowest - highest]. The worst cell
 * is the highest median ratio over answers and thread counts.
 * Usage: etsi_json [-r RUNS] [-j THREADS] [-s SCALE] */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "etsi014_json.h"
#include "secmem.h"

#define FACES 3
#define ANSWERS 5
#define BLOCK 8
#define RUNS_MAX 64
#define THREADS_MAX 16

enum face { OURS, PARSE, STRICT };

static const char *const face_name[FACES] = {
	"kmstore", "json_tokener_parse", "json-c strict",
};

struct answer {
	const char *name;
	char *body;
	size_t len;
	int reps; /* per face, per thread, per turn */
};

static struct answer answers[ANSWERS];

/* A cell: one answer at one thread count, ns per answer of each turn. */
struct cell {
	double ns[FACES][RUNS_MAX];
};

static struct cell cells[2][ANSWERS]; /* [1 thread, THREADS][answer] */

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "etsi_json: %s\n", what);
	exit(1);
}

/* An answer's text, malloc'ed. */
static char *text(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *text(const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		die("out of memory");
	va_end(ap);
	return s;
}

/* 32 pseudo-random bytes in base64, as a KME's key. */
static void key_b64(unsigned *seed, char out[45])
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	unsigned char b[33] = { 0 };
	char *p = out;

	for (int i = 0; i < 32; i++)
		b[i] = (unsigned char)(rand_r(seed) >> 7);
	for (int i = 0; i < 33; i += 3) {
		unsigned v = (unsigned)b[i] << 16 | (unsigned)b[i + 1] << 8 | b[i + 2];

		*p++ = tab[v >> 18 & 63];
		*p++ = tab[v >> 12 & 63];
		*p++ = tab[v >> 6 & 63];
		*p++ = tab[v & 63];
	}
	out[43] = '=';
	out[44] = '\0';
}

/* {"keys":[{"key_ID":UUID,"key":BASE64},...]} as kme-sim writes it. */
static char *key_container(int n)
{
	size_t cap = 64 + (size_t)n * 128, len = 0;
	char *s = malloc(cap), key[45];
	unsigned seed = (unsigned)n;

	if (s == NULL)
		die("out of memory");
	len += (size_t)snprintf(s, cap, "{\"keys\":[");
	for (int i = 0; i < n; i++) {
		key_b64(&seed, key);
		len += (size_t)snprintf(s + len, cap - len,
					"%s{\"key_ID\":\"%08x-%04x-4%03x-a%03x-%012x\","
					"\"key\":\"%s\"}", i > 0 ? "," : "",
					(unsigned)rand_r(&seed), (unsigned)i & 0xffff,
					(unsigned)rand_r(&seed) & 0xfff,
					(unsigned)rand_r(&seed) & 0xfff,
					(unsigned)rand_r(&seed), key);
	}
	len += (size_t)snprintf(s + len, cap - len, "]}");
	if (len >= cap)
		die("a key container too long");
	return s;
}

static void make_answers(int scale)
{
	static const int nkeys[3] = { 1, 16, 128 };

	for (int i = 0; i < 3; i++) {
		answers[i].name = nkeys[i] == 1    ? "keys, 1" :
				  nkeys[i] == 16   ? "keys, 16" :
						     "keys, 128";
		answers[i].body = key_container(nkeys[i]);
	}
	answers[3].name = "status";
	answers[3].body = text(
		"{\"source_KME_ID\":\"KME-west\",\"target_KME_ID\":\"KME-east\","
		"\"master_SAE_ID\":\"SAE-west\",\"slave_SAE_ID\":\"SAE-east\","
		"\"key_size\":256,\"stored_key_count\":%d,\"max_key_count\":%d,"
		"\"max_key_per_request\":128,\"max_key_size\":1024,"
		"\"min_key_size\":64,\"max_SAE_ID_count\":0}", 98304, 100000);
	answers[4].name = "error";
	answers[4].body = text(
		"{\"message\":\"%s\",\"details\":[{\"number\":\"%s\","
		"\"KME_ID\":\"KME-west\"}]}",
		"not enough key material: 3 keys stored, 16 asked for", "16");
	for (int i = 0; i < ANSWERS; i++) {
		answers[i].len = strlen(answers[i].body);
		/* About the same time per answer: 4 MB read per face. */
		answers[i].reps = (int)(4000000.0 * scale / 10 / (double)answers[i].len);
		answers[i].reps = (answers[i].reps + BLOCK - 1) / BLOCK * BLOCK;
	}
}

static json_object *read_strict(const char *body, size_t len)
{
	json_tokener *tok = json_tokener_new_ex(16);
	json_object *o;

	if (tok == NULL)
		die("out of memory");
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	o = json_tokener_parse_ex(tok, body, (int)len);
	if (json_tokener_get_error(tok) != json_tokener_success)
		die("json-c refused an answer");
	if (tok->pb != NULL && tok->pb->buf != NULL)
		kms_wipe(tok->pb->buf, (size_t)tok->pb->size);
	json_tokener_free(tok);
	return o;
}

/* One read of an answer into a tree, and the tree freed. */
static void read_once(enum face f, const struct answer *a)
{
	json_object *o;
	kms_error err;

	switch (f) {
	case OURS:
		if (kms_etsi_read(a->body, a->len, &o, &err) != KMS_OK)
			die(err.message);
		kms_etsi_drop(o);
		break;
	case PARSE:
		if ((o = json_tokener_parse(a->body)) == NULL)
			die("json_tokener_parse refused an answer");
		json_object_put(o);
		break;
	case STRICT:
		json_object_put(read_strict(a->body, a->len));
		break;
	}
}

/* Every face reads every answer into the same tree. */
static void check_answers(void)
{
	for (int i = 0; i < ANSWERS; i++) {
		const struct answer *a = &answers[i];
		json_object *ours, *parsed = json_tokener_parse(a->body),
				   *strict = read_strict(a->body, a->len);
		kms_error err;

		if (kms_etsi_read(a->body, a->len, &ours, &err) != KMS_OK)
			die(err.message);
		if (!json_object_equal(ours, parsed) || !json_object_equal(ours, strict))
			die("the faces read an answer differently");
		kms_etsi_drop(ours);
		json_object_put(parsed);
		json_object_put(strict);
	}
}

struct job {
	pthread_barrier_t *start;
	int first;                       /* the face that begins */
	double busy[ANSWERS][FACES];     /* seconds */
};

static void *run_job(void *arg)
{
	struct job *j = arg;

	pthread_barrier_wait(j->start);
	for (int i = 0; i < ANSWERS; i++) {
		const struct answer *a = &answers[i];

		for (int b = 0; b < FACES * (a->reps / BLOCK); b++) {
			enum face f = (enum face)((b + j->first) % FACES);
			double t = now();

			for (int k = 0; k < BLOCK; k++)
				read_once(f, a);
			j->busy[i][f] += now() - t;
		}
	}
	return NULL;
}

/* One turn at a thread count: ns per answer of each face, summed over the
 * threads' busy time. */
static void run_turn(int threads, int turn, struct cell *out)
{
	struct job jobs[THREADS_MAX];
	pthread_t th[THREADS_MAX];
	pthread_barrier_t start;

	pthread_barrier_init(&start, NULL, (unsigned)threads);
	for (int t = 0; t < threads; t++) {
		memset(&jobs[t], 0, sizeof(jobs[t]));
		jobs[t].start = &start;
		jobs[t].first = (t + turn) % FACES;
		if (pthread_create(&th[t], NULL, run_job, &jobs[t]) != 0)
			die("pthread_create");
	}
	for (int t = 0; t < threads; t++)
		pthread_join(th[t], NULL);
	pthread_barrier_destroy(&start);
	for (int i = 0; i < ANSWERS; i++)
		for (int f = 0; f < FACES; f++) {
			double busy = 0;

			for (int t = 0; t < threads; t++)
				busy += jobs[t].busy[i][f];
			out[i].ns[f][turn] = busy * 1e9 / ((double)threads * answers[i].reps);
		}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(const double *v, int n)
{
	double s[RUNS_MAX];

	memcpy(s, v, sizeof(double) * (size_t)n);
	qsort(s, (size_t)n, sizeof(double), cmp_double);
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/* The ratio kmstore / face f of each turn: its median, lowest, highest. */
static double ratio(const struct cell *c, enum face f, int runs, double *lo,
		    double *hi)
{
	double v[RUNS_MAX];

	for (int r = 0; r < runs; r++)
		v[r] = c->ns[OURS][r] / c->ns[f][r];
	qsort(v, (size_t)runs, sizeof(double), cmp_double);
	*lo = v[0];
	*hi = v[runs - 1];
	return median(v, runs);
}

int main(int argc, char **argv)
{
	int runs = 15, threads = 2, scale = 10, opt;
	double worst[FACES] = { 0 };
	const char *worst_at[FACES] = { 0 };
	int worst_threads[FACES] = { 0 };

	while ((opt = getopt(argc, argv, "r:j:s:")) != -1) {
		if (opt == 'r' && (runs = atoi(optarg)) > 0 && runs <= RUNS_MAX)
			continue;
		if (opt == 'j' && (threads = atoi(optarg)) > 1 && threads <= THREADS_MAX)
			continue;
		if (opt == 's' && (scale = atoi(optarg)) > 0)
			continue;
		fprintf(stderr, "usage: etsi_json [-r RUNS] [-j THREADS] [-s SCALE]\n");
		return 2;
	}
	make_answers(scale);
	check_answers();
	/* Warm: the locked arena mapped, malloc's arenas grown. */
	for (int i = 0; i < ANSWERS; i++)
		for (int f = 0; f < FACES; f++)
			for (int k = 0; k < 50; k++)
				read_once((enum face)f, &answers[i]);
	for (int r = 0; r < runs; r++) {
		run_turn(1, r, cells[0]);
		run_turn(threads, r, cells[1]);
	}

	printf("ETSI GS QKD 014 answers read into a json-c tree and freed; %d turns, "
	       "in each every thread reads each answer with each face, %d reads at "
	       "a time, alternating; ns per answer in the median turn, and "
	       "kmstore's ratio to each json-c face: the median of the turns' "
	       "ratios [lowest-highest]\n", runs, BLOCK);
	printf("%-10s %6s %7s %6s %10s %10s %10s   %-22s %-22s\n", "answer", "bytes",
	       "threads", "reads", face_name[OURS], face_name[PARSE], face_name[STRICT],
	       "vs json_tokener_parse", "vs json-c strict");
	for (int t = 0; t < 2; t++)
		for (int i = 0; i < ANSWERS; i++) {
			const struct cell *c = &cells[t][i];
			char col[FACES][32];

			for (int f = PARSE; f < FACES; f++) {
				double lo, hi, m = ratio(c, (enum face)f, runs, &lo, &hi);

				snprintf(col[f], sizeof(col[f]), "%.2fx [%.2f-%.2f]", m, lo, hi);
				if (m > worst[f]) {
					worst[f] = m;
					worst_at[f] = answers[i].name;
					worst_threads[f] = t == 0 ? 1 : threads;
				}
			}
			printf("%-10s %6zu %7d %6d %10.0f %10.0f %10.0f   %-22s %-22s\n",
			       answers[i].name, answers[i].len, t == 0 ? 1 : threads,
			       answers[i].reps, median(c->ns[OURS], runs),
			       median(c->ns[PARSE], runs), median(c->ns[STRICT], runs),
			       col[PARSE], col[STRICT]);
		}
	for (int f = PARSE; f < FACES; f++)
		printf("worst cell vs %s: %.2fx (%s, %d thread%s)\n", face_name[f],
		       worst[f], worst_at[f], worst_threads[f],
		       worst_threads[f] > 1 ? "s" : "");
	for (int i = 0; i < ANSWERS; i++)
		free(answers[i].body);
	return 0;
}
