/* test_store_cache.c - kms_store_cache: one parsed store while the file is
 * unchanged; every kind of change seen at the next get (a rewrite of the
 * same size at once, also where stat cannot tell, a rename over it, chmod, an invalid file, removal,
 * $KMSTORE_CONF pointing elsewhere, a change after the file has been quiet);
 * stores and keys from before a change stay valid; threads getting keys
 * while the file is replaced under them. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "secmem.h"
#include "util.h"

/* Two configurations of the same length: key IDs and keys differ. */
#define CONF_A "[p]\ntype = static\nkey-id = ID_A\nkey = hex:" \
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n"
#define CONF_B "[p]\ntype = static\nkey-id = ID_B\nkey = hex:" \
	"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\n"

struct fixture {
	char *dir;
	char *path;
	kms_store_cache *cache;
	size_t secmem_start;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	kms_error err;

	if (f == NULL)
		return -1;
	f->dir = test_mkdtemp();
	f->path = test_write(f->dir, "kmstore.conf", CONF_A, strlen(CONF_A), 0600);
	f->secmem_start = kms_secmem_in_use();
	if (kms_store_cache_new(f->path, &f->cache, &err) != KMS_OK)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	int rc;

	kms_store_cache_free(f->cache);
	/* Every store and key was freed: no locked memory is held. */
	rc = kms_secmem_in_use() == f->secmem_start ? 0 : -1;
	test_rmtree(f->dir);
	free(f->path);
	free(f->dir);
	free(f);
	return rc;
}

static kms_store *get(kms_store_cache *c)
{
	kms_store *st = NULL;
	kms_error err = { 0 };

	if (kms_store_cache_get(c, &st, &err) != KMS_OK)
		fail_msg("kms_store_cache_get: %s", err.message);
	return st;
}

/* The key ID of profile p, as the store hands it out now. */
static char key_id_of(kms_store *st)
{
	kms_profile *p;
	kms_key *k;
	kms_error err;
	char c;

	assert_int_equal(kms_store_find_profile(st, "p", &p, &err), KMS_OK);
	assert_int_equal(kms_profile_get_key(p, &k, &err), KMS_OK);
	c = kms_key_id(k)[3];
	assert_int_equal(kms_key_bytes(k)[0], c == 'A' ? 0xaa : 0xbb);
	kms_key_free(k);
	return c;
}

/* Replaces the file in place (same inode, same size), as an editor that
 * writes over the file does. */
static void rewrite(const struct fixture *f, const char *text)
{
	free(test_write(f->dir, "kmstore.conf", text, strlen(text), 0600));
}

/* Replaces the file by rename (a new inode), as most tools do. */
static void replace(const struct fixture *f, const char *text)
{
	char *tmp = test_write(f->dir, "kmstore.conf.new", text, strlen(text), 0600);

	if (rename(tmp, f->path) != 0)
		fail_msg("rename %s: %m", tmp);
	free(tmp);
}

static void test_unchanged_is_shared(void **state)
{
	struct fixture *f = *state;
	kms_store *a = get(f->cache), *b = get(f->cache);

	assert_ptr_equal(a, b);
	assert_int_equal(key_id_of(a), 'A');
	kms_store_free(a);
	kms_store_free(b);
}

/* Written again at once, same size: the times may not move, the text does. */
static void test_same_size_rewrite_at_once(void **state)
{
	struct fixture *f = *state;
	kms_store *a = get(f->cache), *b;

	rewrite(f, CONF_B);
	b = get(f->cache);
	assert_ptr_not_equal(a, b);
	assert_int_equal(key_id_of(b), 'B');
	kms_store_free(b);
	/* The old store is still whole, and still gives its own key. */
	assert_int_equal(key_id_of(a), 'A');
	kms_store_free(a);
}

/* The same where stat shows no change at all: the file was written within
 * the tick of the times the cache holds, so it reads the file again. */
static void test_same_size_rewrite_within_a_tick(void **state)
{
	struct fixture *f = *state;
	kms_store *a, *b;

	test_freeze_stat(1);
	a = get(f->cache);
	rewrite(f, CONF_B);
	b = get(f->cache);
	test_freeze_stat(0);
	assert_ptr_not_equal(a, b);
	assert_int_equal(key_id_of(b), 'B');
	kms_store_free(a);
	kms_store_free(b);
}

/* Touched, or written with the same text: the store (and with it its KME
 * connections) is kept. */
static void test_touch_keeps_store(void **state)
{
	struct fixture *f = *state;
	kms_store *a = get(f->cache), *b;

	rewrite(f, CONF_A);
	b = get(f->cache);
	assert_ptr_equal(a, b);
	kms_store_free(a);
	kms_store_free(b);
}

static void test_rename_over(void **state)
{
	struct fixture *f = *state;
	kms_store *a = get(f->cache), *b;

	replace(f, CONF_B);
	b = get(f->cache);
	assert_int_equal(key_id_of(b), 'B');
	kms_store_free(a);
	kms_store_free(b);
}

static void test_errors_follow_the_file(void **state)
{
	struct fixture *f = *state;
	kms_store *a = get(f->cache), *st = NULL;
	kms_error err = { 0 };

	assert_int_equal(chmod(f->path, 0644), 0);
	assert_int_equal(kms_store_cache_get(f->cache, &st, &err), KMS_ERR_PERMISSION);
	assert_null(st);
	assert_contains(err.message, "accessible by group or others");
	assert_int_equal(chmod(f->path, 0600), 0);
	kms_store_free(get(f->cache));

	rewrite(f, "[p]\ntype = static\nkey-id = X\n");
	assert_int_equal(kms_store_cache_get(f->cache, &st, &err), KMS_ERR_CONFIG);
	assert_contains(err.message, "kmstore.conf");
	assert_contains(err.message, "'key' is required");

	assert_int_equal(unlink(f->path), 0);
	assert_int_equal(kms_store_cache_get(f->cache, &st, &err), KMS_ERR_CONFIG);
	assert_contains(err.message, "cannot open configuration file");

	replace(f, CONF_B);
	st = get(f->cache);
	assert_int_equal(key_id_of(st), 'B');
	kms_store_free(st);
	/* Through all of it, the first store stayed usable. */
	assert_int_equal(key_id_of(a), 'A');
	kms_store_free(a);
}

/* Without a path the cache follows $KMSTORE_CONF at each get. */
static void test_default_path_follows_env(void **state)
{
	struct fixture *f = *state;
	char *other = test_write(f->dir, "other.conf", CONF_B, strlen(CONF_B), 0600);
	kms_store_cache *c;
	kms_store *a, *b;
	kms_error err;

	assert_int_equal(kms_store_cache_new(NULL, &c, &err), KMS_OK);
	setenv("KMSTORE_CONF", f->path, 1);
	a = get(c);
	setenv("KMSTORE_CONF", other, 1);
	b = get(c);
	unsetenv("KMSTORE_CONF");
	assert_int_equal(key_id_of(a), 'A');
	assert_int_equal(key_id_of(b), 'B');
	kms_store_free(a);
	kms_store_free(b);
	kms_store_cache_free(c);
	free(other);
}

/* Once the file has been quiet for a while the cache trusts stat alone;
 * a change is still seen at once. */
static void test_change_after_quiet(void **state)
{
	struct fixture *f = *state;
	kms_store *a, *b, *c;

	sleep(4);
	a = get(f->cache);
	b = get(f->cache);
	assert_ptr_equal(a, b);
	rewrite(f, CONF_B);
	c = get(f->cache);
	assert_int_equal(key_id_of(c), 'B');
	kms_store_free(a);
	kms_store_free(b);
	kms_store_free(c);
}

/* Threads take keys while the main thread replaces the file: every get
 * succeeds, and each key is whole (ID and bytes of one configuration). */
struct worker {
	kms_store_cache *cache;
	atomic_int *stop;
	long gets;
	int failures;
};

static void *work(void *arg)
{
	struct worker *w = arg;

	while (!atomic_load(w->stop) || w->gets < 200) {
		kms_store *st = NULL;
		kms_profile *p;
		kms_key *k;
		kms_error err;

		if (kms_store_cache_get(w->cache, &st, &err) != KMS_OK ||
		    kms_store_find_profile(st, "p", &p, &err) != KMS_OK ||
		    kms_profile_get_key(p, &k, &err) != KMS_OK) {
			w->failures++;
		} else {
			char c = kms_key_id(k)[3];

			if (kms_key_bytes(k)[0] != (c == 'A' ? 0xaa : 0xbb))
				w->failures++;
			kms_key_free(k);
		}
		kms_store_free(st);
		w->gets++;
	}
	return NULL;
}

static void test_threads(void **state)
{
	struct fixture *f = *state;
	atomic_int stop = 0;
	struct worker w[4];
	pthread_t t[4];

	for (int i = 0; i < 4; i++) {
		w[i] = (struct worker){ .cache = f->cache, .stop = &stop };
		assert_int_equal(pthread_create(&t[i], NULL, work, &w[i]), 0);
	}
	for (int i = 0; i < 100; i++) {
		replace(f, i % 2 ? CONF_A : CONF_B);
		usleep(500);
	}
	atomic_store(&stop, 1);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(w[i].failures, 0);
		assert_true(w[i].gets >= 200);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_unchanged_is_shared, setup, teardown),
		cmocka_unit_test_setup_teardown(test_same_size_rewrite_at_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_same_size_rewrite_within_a_tick, setup, teardown),
		cmocka_unit_test_setup_teardown(test_touch_keeps_store, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rename_over, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors_follow_the_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_default_path_follows_env, setup, teardown),
		cmocka_unit_test_setup_teardown(test_change_after_quiet, setup, teardown),
		cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
