/* util.h - helpers shared by the unit tests: temporary files, parsing a
 * configuration held in a string, and substring assertions. */
#ifndef KMS_TEST_UTIL_H
#define KMS_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cmocka.h>

#include "kmstore.h"

/* A new private directory under $TMPDIR (or /tmp); the caller frees the
 * name and removes the tree with test_rmtree. */
char *test_mkdtemp(void);
void test_rmtree(const char *dir);

/* Writes len bytes to dir/name (name NULL: a new mkstemp name) with mode;
 * returns the path, which the caller frees. */
char *test_write(const char *dir, const char *name, const void *data,
		 size_t len, mode_t mode);

/* A file system whose times do not move within a tick (seconds on some,
 * another host's clock on NFS): from test_freeze_stat(1) on, statx(2) as
 * the library sees it reports what it reported first, until
 * test_freeze_stat(0). (The tests' statx comes before libc's for the
 * library objects linked into them.) */
void test_freeze_stat(int on);

/* kms_store_parse on a string, as the file "/cfg/test.conf". */
#define TEST_CONF "/cfg/test.conf"
kms_rc test_parse(const char *text, kms_store **out, kms_error *err);

/* Fails the test, showing both strings, unless needle is in haystack
 * (resp. is not). */
#define assert_contains(h, n) test_contains((h), (n), 1, __FILE__, __LINE__)
#define assert_lacks(h, n) test_contains((h), (n), 0, __FILE__, __LINE__)
void test_contains(const char *haystack, const char *needle, int want,
		   const char *file, int line);

#endif
