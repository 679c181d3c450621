/* secmem.c - an arena of locked pages for secrets.
 *
 * Keys are small and many processes (pluto, openssl) hold only a few, so
 * one mapping of a few pages is carved into 64-byte slots instead of a page
 * per key: mlock is limited by RLIMIT_MEMLOCK and each page counts. Freed
 * slots are wiped at once and stay mapped, so a stale pointer reads zeros,
 * never an old key.
 *
 * fork(): the child shares the arena copy-on-write, still MADV_DONTDUMP
 * but not locked (mlock is not inherited). It is not wiped there
 * (MADV_WIPEONFORK): a child may go on with the keys and the store it
 * inherited (a pre-forking server, a daemon that parses its configuration
 * first), and a zeroed key would be silently wrong. The arena's lock is
 * taken around fork(), so that the child never inherits it held by a
 * thread it does not have. */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "error.h"
#include "secmem.h"

#define SLOT 64
#define CHUNK_SIZE (64 * 1024)
#define SLOTS (CHUNK_SIZE / SLOT)
#define WORDS (SLOTS / 64)

struct chunk {
	struct chunk *next;
	unsigned char *base;
	uint64_t used[WORDS];
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static struct chunk *chunks;
static size_t in_use;
static int warned_unlocked;

void kms_wipe(void *ptr, size_t size)
{
	if (ptr != NULL)
		explicit_bzero(ptr, size);
}

static int slot_used(const struct chunk *c, size_t i)
{
	return (c->used[i / 64] >> (i % 64)) & 1;
}

/* A word at a time: a KME's answer is hundreds of slots, per request. */
static void mark(struct chunk *c, size_t first, size_t n, int used)
{
	while (n > 0) {
		size_t bit = first % 64, k = 64 - bit < n ? 64 - bit : n;
		uint64_t m = (k == 64 ? UINT64_MAX : (UINT64_C(1) << k) - 1) << bit;

		if (used)
			c->used[first / 64] |= m;
		else
			c->used[first / 64] &= ~m;
		first += k;
		n -= k;
	}
}

static void before_fork(void)
{
	pthread_mutex_lock(&lock);
}

static void after_fork(void)
{
	pthread_mutex_unlock(&lock);
}

/* glibc unregisters the handlers when the library is unloaded (dlclose). */
static void register_atfork(void)
{
	pthread_atfork(before_fork, after_fork, after_fork);
}

static struct chunk *chunk_new(void)
{
	static struct chunk none;
	struct chunk *c;
	void *base;

	base = mmap(NULL, CHUNK_SIZE, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED)
		return NULL;
	(void)madvise(base, CHUNK_SIZE, MADV_DONTDUMP);
	if (mlock(base, CHUNK_SIZE) != 0 && !warned_unlocked) {
		warned_unlocked = 1;
		kms_log(KMS_LOG_WARNING,
			"cannot lock key memory (mlock: %s); keys may be swapped "
			"to disk: raise the memlock limit (ulimit -l, "
			"LimitMEMLOCK=)", strerror(errno));
	}
	/* The bookkeeping lives in ordinary memory: it holds no secret. */
	c = malloc(sizeof(*c));
	if (c == NULL) {
		munmap(base, CHUNK_SIZE);
		return NULL;
	}
	*c = none;
	c->base = base;
	return c;
}

/* First fit. A TLS key or a KME's answer is a buffer of hundreds of slots
 * taken per request: whole words of free or used slots go at once. */
static void *take(struct chunk *c, size_t n)
{
	size_t run = 0;

	for (size_t i = 0; i < SLOTS;) {
		uint64_t w = c->used[i / 64];

		if (i % 64 == 0 && w == 0 && run + 64 <= n) {
			run += 64;
			i += 64;
		} else if (i % 64 == 0 && w == UINT64_MAX) {
			run = 0;
			i += 64;
		} else {
			run = slot_used(c, i) ? 0 : run + 1;
			i++;
		}
		if (run == n) {
			mark(c, i - n, n, 1);
			return c->base + (i - n) * SLOT;
		}
	}
	return NULL;
}

void *kms_secmem_alloc(size_t size)
{
	size_t n = (size + SLOT - 1) / SLOT;
	struct chunk *c;
	void *p = NULL;

	if (size == 0 || size > KMS_SECMEM_MAX)
		return NULL;
	pthread_once(&atfork_once, register_atfork);
	pthread_mutex_lock(&lock);
	for (c = chunks; c != NULL && p == NULL; c = c->next)
		p = take(c, n);
	if (p == NULL && (c = chunk_new()) != NULL) {
		c->next = chunks;
		chunks = c;
		p = take(c, n);
	}
	if (p != NULL)
		in_use += n * SLOT;
	pthread_mutex_unlock(&lock);
	return p;
}

void kms_secmem_free(void *ptr, size_t size)
{
	kms_secmem_free_used(ptr, size, (size + SLOT - 1) / SLOT * SLOT);
}

void kms_secmem_free_used(void *ptr, size_t size, size_t used)
{
	size_t n = (size + SLOT - 1) / SLOT;
	unsigned char *p = ptr;

	if (ptr == NULL)
		return;
	if (used > n * SLOT)
		used = n * SLOT;
	kms_wipe(ptr, used);
#ifndef NDEBUG
	/* The caller's word that nothing beyond `used` was written: a
	 * Debug (sanitizer) build checks it, since the arena hands out
	 * zeroed memory only while it holds. */
	for (size_t i = used; i < n * SLOT; i++)
		assert(p[i] == 0);
#endif
	pthread_mutex_lock(&lock);
	for (struct chunk *c = chunks; c != NULL; c = c->next) {
		if (p >= c->base && p < c->base + CHUNK_SIZE) {
			mark(c, (size_t)(p - c->base) / SLOT, n, 0);
			in_use -= n * SLOT;
			break;
		}
	}
	pthread_mutex_unlock(&lock);
}

size_t kms_secmem_in_use(void)
{
	size_t n;

	pthread_mutex_lock(&lock);
	n = in_use;
	pthread_mutex_unlock(&lock);
	return n;
}

/* Every vector register to zero. The callers' values in them need no
 * saving: the SysV ABI makes them all caller-saved, and this is a call. */
__attribute__((noinline)) static void zero_vectors(void)
{
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
	if (__builtin_cpu_supports("avx512f"))
		__asm__ volatile(
			"vpxord %%zmm16, %%zmm16, %%zmm16\n\tvpxord %%zmm17, %%zmm17, %%zmm17\n\t"
			"vpxord %%zmm18, %%zmm18, %%zmm18\n\tvpxord %%zmm19, %%zmm19, %%zmm19\n\t"
			"vpxord %%zmm20, %%zmm20, %%zmm20\n\tvpxord %%zmm21, %%zmm21, %%zmm21\n\t"
			"vpxord %%zmm22, %%zmm22, %%zmm22\n\tvpxord %%zmm23, %%zmm23, %%zmm23\n\t"
			"vpxord %%zmm24, %%zmm24, %%zmm24\n\tvpxord %%zmm25, %%zmm25, %%zmm25\n\t"
			"vpxord %%zmm26, %%zmm26, %%zmm26\n\tvpxord %%zmm27, %%zmm27, %%zmm27\n\t"
			"vpxord %%zmm28, %%zmm28, %%zmm28\n\tvpxord %%zmm29, %%zmm29, %%zmm29\n\t"
			"vpxord %%zmm30, %%zmm30, %%zmm30\n\tvpxord %%zmm31, %%zmm31, %%zmm31\n\t"
			"vzeroall" ::: "memory");
	else if (__builtin_cpu_supports("avx"))
		__asm__ volatile("vzeroall" ::: "memory");
	else
		__asm__ volatile(
			"pxor %%xmm0, %%xmm0\n\tpxor %%xmm1, %%xmm1\n\tpxor %%xmm2, %%xmm2\n\t"
			"pxor %%xmm3, %%xmm3\n\tpxor %%xmm4, %%xmm4\n\tpxor %%xmm5, %%xmm5\n\t"
			"pxor %%xmm6, %%xmm6\n\tpxor %%xmm7, %%xmm7\n\tpxor %%xmm8, %%xmm8\n\t"
			"pxor %%xmm9, %%xmm9\n\tpxor %%xmm10, %%xmm10\n\tpxor %%xmm11, %%xmm11\n\t"
			"pxor %%xmm12, %%xmm12\n\tpxor %%xmm13, %%xmm13\n\tpxor %%xmm14, %%xmm14\n\t"
			"pxor %%xmm15, %%xmm15" ::: "memory");
#endif
}

void kms_scrub_registers(void)
{
	/* Elsewhere than x86-64 (and for what the assembly does not reach),
	 * move zeros through memcpy, which overwrites the registers it uses;
	 * through a volatile pointer, so it is not optimised away. */
	static const unsigned char zeros[4096];
	unsigned char sink[sizeof(zeros)];
	void *(*volatile copy)(void *, const void *, size_t) = memcpy;

	copy(sink, zeros, sizeof(sink));
	kms_wipe(sink, sizeof(sink));
	zero_vectors();
}
