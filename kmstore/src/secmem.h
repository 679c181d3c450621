/* secmem.h - locked, non-dumpable memory for key bytes; internal. */
#ifndef KMS_SECMEM_H
#define KMS_SECMEM_H

#include <stddef.h>

#define KMS_SECMEM_MAX 32768 /* the largest single allocation */

/* Zeroed memory from a locked arena (mlock'ed where RLIMIT_MEMLOCK allows,
 * excluded from core dumps). NULL if size is 0, too large, or no memory. */
void *kms_secmem_alloc(size_t size);
/* Wipes and returns the memory to the arena; size must be the one
 * allocated. NULL is ignored. */
void kms_secmem_free(void *ptr, size_t size);
/* The same for a buffer of which only the first `used` bytes were ever
 * written (a read or a download into a buffer sized for the largest):
 * only they are wiped, the rest is still the arena's zeroes. */
void kms_secmem_free_used(void *ptr, size_t size, size_t used);
/* Bytes handed out and not yet freed: for leak checks in tests. */
size_t kms_secmem_in_use(void);

/* A wipe the compiler may not remove. */
void kms_wipe(void *ptr, size_t size);

/* The vector registers keep what the last memcpy moved (a KME's answer, a
 * key), and a thread that then sleeps keeps it there, where a core dump
 * shows it (NT_X86_XSTATE). Moving zeros through memcpy overwrites them;
 * a long-lived thread calls this after handling key material. */
void kms_scrub_registers(void);

#endif
