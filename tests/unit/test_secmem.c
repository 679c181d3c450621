/* test_secmem.c - locked key memory: zeroed on allocation, wiped on free
 * (the arena stays mapped, so reading a freed slot is defined and must
 * give zeros), no overlap, limits, and use from several threads. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "secmem.h"
#include "util.h"

static int all_zero(const void *p, size_t n)
{
	const unsigned char *c = p;

	for (size_t i = 0; i < n; i++)
		if (c[i] != 0)
			return 0;
	return 1;
}

static void test_zeroed_and_wiped(void **state)
{
	size_t start = kms_secmem_in_use();
	unsigned char *p;

	(void)state;
	p = kms_secmem_alloc(100);
	assert_non_null(p);
	assert_true(all_zero(p, 100));
	assert_true(kms_secmem_in_use() >= start + 100);
	memset(p, 0xa5, 100);
	kms_secmem_free(p, 100);
	assert_true(all_zero(p, 100)); /* the same address, still mapped */
	assert_int_equal(kms_secmem_in_use(), start);
	/* The next allocation of the slot is zeroed too. */
	p = kms_secmem_alloc(100);
	assert_true(all_zero(p, 100));
	kms_secmem_free(p, 100);
	kms_secmem_free(NULL, 10); /* ignored */
	assert_int_equal(kms_secmem_in_use(), start);
}

static void test_limits(void **state)
{
	void *p;

	(void)state;
	assert_null(kms_secmem_alloc(0));
	assert_null(kms_secmem_alloc(KMS_SECMEM_MAX + 1));
	assert_null(kms_secmem_alloc((size_t)-1));
	p = kms_secmem_alloc(KMS_SECMEM_MAX);
	assert_non_null(p);
	kms_secmem_free(p, KMS_SECMEM_MAX);
}

#define N_MIXED 300

/* Sizes 1..4096, well over one 64 KiB chunk in all: every block keeps its
 * own pattern while all are live. */
static void test_mixed_sizes(void **state)
{
	static unsigned char *blocks[N_MIXED];
	static size_t sizes[N_MIXED];
	size_t start = kms_secmem_in_use();
	unsigned seed = 12345;

	(void)state;
	for (int i = 0; i < N_MIXED; i++) {
		seed = seed * 1103515245u + 12345u;
		sizes[i] = i < 3 ? (size_t[]){ 1, 4096, 64 }[i] : 1 + (seed >> 8) % 4096;
		blocks[i] = kms_secmem_alloc(sizes[i]);
		assert_non_null(blocks[i]);
		assert_true(all_zero(blocks[i], sizes[i]));
		memset(blocks[i], (i % 255) + 1, sizes[i]);
	}
	/* Free every other one and refill the holes. */
	for (int i = 0; i < N_MIXED; i += 2) {
		kms_secmem_free(blocks[i], sizes[i]);
		assert_true(all_zero(blocks[i], sizes[i]));
		blocks[i] = kms_secmem_alloc(sizes[i]);
		assert_non_null(blocks[i]);
		memset(blocks[i], (i % 255) + 1, sizes[i]);
	}
	for (int i = 0; i < N_MIXED; i++)
		for (size_t j = 0; j < sizes[i]; j++)
			if (blocks[i][j] != (i % 255) + 1)
				fail_msg("block %d (%zu bytes) overwritten at %zu", i,
					 sizes[i], j);
	for (int i = 0; i < N_MIXED; i++)
		kms_secmem_free(blocks[i], sizes[i]);
	assert_int_equal(kms_secmem_in_use(), start);
}

/* A download buffer sized for the largest answer, of which a little was
 * written: only that is wiped, and the next taker still gets zeroes. Big
 * blocks between small ones cross whole words of the slot map. */
static void test_free_used(void **state)
{
	size_t start = kms_secmem_in_use();
	unsigned char *small[4], *big, *again;

	(void)state;
	for (int i = 0; i < 4; i++)
		small[i] = kms_secmem_alloc(100 + 900 * (size_t)i);
	big = kms_secmem_alloc(16385);
	assert_non_null(big);
	memset(big, 0x7e, 300);
	kms_secmem_free_used(big, 16385, 300);
	assert_true(all_zero(big, 16385));
	kms_secmem_free(small[1], 1000);
	kms_secmem_free(small[2], 1900);
	again = kms_secmem_alloc(16385);
	assert_non_null(again);
	assert_true(all_zero(again, 16385));
	kms_secmem_free(again, 16385);
	big = kms_secmem_alloc(KMS_SECMEM_MAX);
	assert_non_null(big);
	assert_true(all_zero(big, KMS_SECMEM_MAX));
	kms_secmem_free(big, KMS_SECMEM_MAX);
	kms_secmem_free(small[0], 100);
	kms_secmem_free(small[3], 2800);
	assert_int_equal(kms_secmem_in_use(), start);
}

static void test_key_free_wipes(void **state)
{
	uint8_t bytes[48];
	const uint8_t *held;
	kms_error err;
	kms_key *key;

	(void)state;
	memset(bytes, 0x5a, sizeof(bytes));
	assert_int_equal(kms_key_new("p", "id", bytes, sizeof(bytes), &key, &err), KMS_OK);
	held = kms_key_bytes(key);
	assert_memory_equal(held, bytes, sizeof(bytes));
	kms_key_free(key);
	assert_true(all_zero(held, sizeof(bytes)));
}

struct worker {
	int id;
	int failures;
};

static void *work(void *arg)
{
	struct worker *w = arg;
	unsigned char *mine[16];
	size_t size[16];

	for (int round = 0; round < 500; round++) {
		for (int i = 0; i < 16; i++) {
			size[i] = 1 + (size_t)((round * 31 + i * 17 + w->id * 7) % 700);
			mine[i] = kms_secmem_alloc(size[i]);
			if (mine[i] == NULL) {
				w->failures++;
				size[i] = 0;
				continue;
			}
			memset(mine[i], w->id * 16 + i + 1, size[i]);
		}
		for (int i = 0; i < 16; i++) {
			for (size_t j = 0; j < size[i]; j++)
				if (mine[i][j] != w->id * 16 + i + 1) {
					w->failures++;
					break;
				}
			kms_secmem_free(mine[i], size[i]);
		}
	}
	return NULL;
}

static void test_threads(void **state)
{
	struct worker w[4];
	pthread_t t[4];
	size_t start = kms_secmem_in_use();

	(void)state;
	for (int i = 0; i < 4; i++) {
		w[i].id = i;
		w[i].failures = 0;
		assert_int_equal(pthread_create(&t[i], NULL, work, &w[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(w[i].failures, 0);
	}
	assert_int_equal(kms_secmem_in_use(), start);
}

/* In a forked child the keys the parent held are still there (a child may
 * use what it inherited: they are not wiped, see secmem.c) and still kept
 * out of core dumps: the arena's VmFlags in /proc/self/smaps say "dd". */
static int dontdump(const void *p)
{
	char line[512];
	unsigned long lo, hi, a = (unsigned long)p;
	int in = 0, dd = 0;
	FILE *f = fopen("/proc/self/smaps", "r");

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' '))
			in = a >= lo && a < hi;
		else if (in && strncmp(line, "VmFlags:", 8) == 0)
			dd = strstr(line, " dd") != NULL;
	}
	fclose(f);
	return dd;
}

static void test_fork_child(void **state)
{
	unsigned char *p = kms_secmem_alloc(64);
	pid_t pid;
	int status;

	(void)state;
	assert_non_null(p);
	memset(p, 0xa5, 64);
	assert_int_equal(dontdump(p), 1);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(p[0] == 0xa5 && p[63] == 0xa5 && dontdump(p) == 1 ? 0 : 1);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	kms_secmem_free(p, 64);
}

static atomic_int hammering;

static void *hammer(void *arg)
{
	(void)arg;
	while (atomic_load(&hammering))
		kms_secmem_free(kms_secmem_alloc(700), 700);
	return NULL;
}

/* fork() while another thread holds the arena's lock: the child can
 * still allocate (the lock is taken around fork and released in both). */
static void test_fork_lock(void **state)
{
	pthread_t t;
	int hung = 0;

	(void)state;
	atomic_store(&hammering, 1);
	assert_int_equal(pthread_create(&t, NULL, hammer, NULL), 0);
	for (int i = 0; i < 200; i++) {
		int status;
		pid_t pid = fork();

		assert_true(pid >= 0);
		if (pid == 0) {
			alarm(5); /* a deadlocked child dies of SIGALRM */
			kms_secmem_free(kms_secmem_alloc(100), 100);
			_exit(0);
		}
		assert_int_equal(waitpid(pid, &status, 0), pid);
		hung += !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	atomic_store(&hammering, 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(hung, 0);
}

static void test_wipe(void **state)
{
	char buf[32];

	(void)state;
	memset(buf, 'x', sizeof(buf));
	kms_wipe(buf, sizeof(buf));
	assert_true(all_zero(buf, sizeof(buf)));
	kms_wipe(NULL, 10); /* ignored */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_zeroed_and_wiped),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_mixed_sizes),
		cmocka_unit_test(test_free_used),
		cmocka_unit_test(test_key_free_wipes),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_fork_child),
		cmocka_unit_test(test_fork_lock),
		cmocka_unit_test(test_wipe),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
