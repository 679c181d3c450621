/* client_threads.c - the ETSI 014 client under the two thread rules it
 * lives by, against real KMEs (kme-sim):
 *
 * 1. It creates no thread. NSS loads PKCS#11 modules with
 *    CKF_LIBRARY_CANT_CREATE_OS_THREADS; libcurl's threaded resolver would
 *    start one per name lookup. This program interposes pthread_create:
 *    while the library runs, any call is counted and refused.
 * 2. Several threads may fetch keys at once from the same profiles: each
 *    pair of keys must match, none may be lost or mixed up.
 * 3. A burst: PLUGS threads ask for keys by ID, and 150 ms later the other
 *    THREADS - PLUGS and one for an ID the KME never made, all at the same
 *    moment (with a KME that answers late the first are in flight then,
 *    as many as the library sends at once, and the others may go together
 *    in one dec_keys, which the KME refuses for the bogus ID): every key
 *    arrives, and only that one fails.
 *
 * Usage: client_threads WEST_CONF EAST_CONF THREADS ROUNDS
 * (WEST_CONF's url should name the KME by host name, to exercise the
 * resolver.) Prints a TAP-style line per check and "N passed, M failed". */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kmstore.h"

static atomic_int library_thread_attempts;
static __thread int test_creates_thread; /* this thread, now: the test's own */
static int passed, failed;

typedef int create_fn(pthread_t *, const pthread_attr_t *, void *(*)(void *),
		      void *);

int pthread_create(pthread_t *t, const pthread_attr_t *a,
		   void *(*fn)(void *), void *arg)
{
	static create_fn *real;

	if (!test_creates_thread) {
		atomic_fetch_add(&library_thread_attempts, 1);
		return EAGAIN;
	}
	if (real == NULL)
		real = (create_fn *)dlsym(RTLD_NEXT, "pthread_create");
	return real(t, a, fn, arg);
}

static void check(int ok, const char *what, const char *detail)
{
	if (ok)
		printf("ok %d - %s\n", ++passed + failed, what);
	else
		printf("not ok %d - %s\n#   %s\n", passed + ++failed, what,
		       detail != NULL ? detail : "");
}

struct sites {
	kms_profile *west, *east;
	int rounds;
	atomic_int good, bad;
	char first_error[KMS_ERROR_MAX];
	pthread_mutex_t lock;
};

static int same_key(const kms_key *a, const kms_key *b)
{
	return kms_key_size(a) == kms_key_size(b) &&
	       memcmp(kms_key_bytes(a), kms_key_bytes(b), kms_key_size(a)) == 0;
}

static int round_trip(struct sites *s, kms_error *e)
{
	kms_key *a = NULL, *b = NULL;
	int same;

	if (kms_profile_get_key(s->west, &a, e) != KMS_OK)
		return 0;
	if (kms_profile_get_key_by_id(s->east, kms_key_id(a), &b, e) != KMS_OK) {
		kms_key_free(a);
		return 0;
	}
	same = same_key(a, b);
	if (!same)
		snprintf(e->message, sizeof(e->message), "keys differ for ID %s",
			 kms_key_id(a));
	kms_key_free(a);
	kms_key_free(b);
	return same;
}

static void *worker(void *arg)
{
	struct sites *s = arg;

	for (int i = 0; i < s->rounds; i++) {
		kms_error e = { 0 };

		if (round_trip(s, &e)) {
			atomic_fetch_add(&s->good, 1);
			continue;
		}
		atomic_fetch_add(&s->bad, 1);
		pthread_mutex_lock(&s->lock);
		if (s->first_error[0] == '\0')
			snprintf(s->first_error, sizeof(s->first_error), "%s", e.message);
		pthread_mutex_unlock(&s->lock);
	}
	return NULL;
}

/* Threads of the test itself; any other pthread_create is the library's. */
static void spawn(pthread_t *t, void *(*fn)(void *), void *arg)
{
	test_creates_thread = 1;
	pthread_create(t, NULL, fn, arg);
	test_creates_thread = 0;
}

#define BOGUS_ID "00000000-0000-4000-8000-00000000bad0"
#define PLUGS 4 /* etsi014.c's QUEUE_IN_FLIGHT */

struct asker {
	struct sites *s;
	pthread_barrier_t *start;
	kms_key *want; /* NULL: ask for BOGUS_ID */
	kms_rc rc;
	int same;
	kms_error e;
};

static void *ask_by_id(void *arg)
{
	struct asker *a = arg;
	kms_key *k = NULL;

	if (a->start != NULL)
		pthread_barrier_wait(a->start);
	a->rc = kms_profile_get_key_by_id(a->s->east,
					  a->want ? kms_key_id(a->want) : BOGUS_ID,
					  &k, &a->e);
	a->same = a->rc == KMS_OK && a->want != NULL && same_key(k, a->want);
	kms_key_free(k);
	return NULL;
}

static void burst(struct sites *s, int n)
{
	struct asker *a = calloc((size_t)n + 1, sizeof(*a));
	pthread_t *t = calloc((size_t)n + 1, sizeof(*t));
	pthread_barrier_t start;
	char detail[KMS_ERROR_MAX + 64] = "";
	int good = 0;

	pthread_barrier_init(&start, NULL, (unsigned)(n - PLUGS + 1));
	for (int i = 0; i <= n; i++) {
		a[i] = (struct asker){ .s = s, .start = i < PLUGS ? NULL : &start };
		if (i < n && kms_profile_get_key(s->west, &a[i].want, &a[i].e) != KMS_OK) {
			fprintf(stderr, "client_threads: %s\n", a[i].e.message);
			exit(2);
		}
	}
	for (int i = 0; i <= n; i++) {
		if (i == PLUGS)
			nanosleep(&(struct timespec){ .tv_nsec = 150000000 }, NULL);
		spawn(&t[i], ask_by_id, &a[i]);
	}
	for (int i = 0; i <= n; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < n; i++) {
		good += a[i].same;
		if (!a[i].same && detail[0] == '\0')
			snprintf(detail, sizeof(detail), "key %d: %s", i, a[i].e.message);
		kms_key_free(a[i].want);
	}
	check(good == n, "a burst of keys asked for by ID at once all arrive and match",
	      detail);
	snprintf(detail, sizeof(detail), "rc %d: %s", a[n].rc, a[n].e.message);
	check(a[n].rc == KMS_ERR_NOT_FOUND,
	      "... and the one ID the KME never made fails alone, as not found", detail);
	pthread_barrier_destroy(&start);
	free(a);
	free(t);
}

static kms_profile *open_qkd(const char *conf, kms_store **store)
{
	kms_profile *p;
	kms_error e;

	if (kms_store_open(conf, store, &e) != KMS_OK ||
	    kms_store_find_profile(*store, "qkd", &p, &e) != KMS_OK) {
		fprintf(stderr, "client_threads: %s\n", e.message);
		exit(2);
	}
	return p;
}

int main(int argc, char **argv)
{
	struct sites s = { .lock = PTHREAD_MUTEX_INITIALIZER };
	kms_store *ws, *es;
	pthread_t *t;
	int n, ok;
	char detail[KMS_ERROR_MAX + 64];
	kms_error e = { 0 };

	if (argc != 5) {
		fprintf(stderr, "usage: client_threads WEST_CONF EAST_CONF THREADS ROUNDS\n");
		return 2;
	}
	n = atoi(argv[3]);
	s.rounds = atoi(argv[4]);
	if (n < PLUGS || s.rounds < 1) {
		fprintf(stderr, "client_threads: THREADS must be %d or more, ROUNDS 1 or more\n",
			PLUGS);
		return 2;
	}
	s.west = open_qkd(argv[1], &ws);
	s.east = open_qkd(argv[2], &es);

	ok = round_trip(&s, &e);
	check(ok, "a key round trip with the KME named by host name", e.message);

	t = calloc((size_t)n, sizeof(*t));
	for (int i = 0; i < n; i++)
		spawn(&t[i], worker, &s);
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	snprintf(detail, sizeof(detail), "%d of %d round trips failed; first: %s",
		 atomic_load(&s.bad), n * s.rounds, s.first_error);
	check(atomic_load(&s.good) == n * s.rounds,
	      "concurrent round trips from several threads all match", detail);
	burst(&s, n);
	snprintf(detail, sizeof(detail), "%d pthread_create calls",
		 atomic_load(&library_thread_attempts));
	check(atomic_load(&library_thread_attempts) == 0,
	      "the library created no thread (name resolution, keys by ID together)",
	      detail);

	free(t);
	kms_store_free(ws);
	kms_store_free(es);
	printf("%d passed, %d failed\n", passed, failed);
	return failed != 0;
}
