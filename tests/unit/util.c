/* util.c - helpers shared by the unit tests. */
#include <dlfcn.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"
#include "util.h"

static struct statx frozen;
static int freeze; /* 1: keep the next answer; 2: give it again */

void test_freeze_stat(int on)
{
	freeze = on;
}

int statx(int dirfd, const char *restrict path, int flags, unsigned int mask,
	  struct statx *restrict st)
{
	static int (*real)(int, const char *restrict, int, unsigned int,
			   struct statx *restrict);
	int rc;

	if (real == NULL)
		*(void **)&real = dlsym(RTLD_NEXT, "statx");
	rc = real(dirfd, path, flags, mask, st);
	if (rc == 0 && freeze == 1) {
		frozen = *st;
		freeze = 2;
	} else if (rc == 0 && freeze == 2) {
		*st = frozen;
	}
	return rc;
}

char *test_mkdtemp(void)
{
	const char *base = getenv("TMPDIR");
	char *dir;

	if (base == NULL || *base == '\0')
		base = "/tmp";
	if (asprintf(&dir, "%s/kmstore-test-XXXXXX", base) < 0)
		fail_msg("out of memory");
	if (mkdtemp(dir) == NULL)
		fail_msg("mkdtemp %s: %m", dir);
	return dir;
}

static int remove_one(const char *path, const struct stat *sb, int flag,
		      struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void test_rmtree(const char *dir)
{
	if (dir != NULL)
		(void)nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

char *test_write(const char *dir, const char *name, const void *data,
		 size_t len, mode_t mode)
{
	char *path;
	int fd;

	if (asprintf(&path, "%s/%s", dir, name != NULL ? name : "fileXXXXXX") < 0)
		fail_msg("out of memory");
	fd = name != NULL ? open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)
			  : mkstemp(path);
	if (fd < 0)
		fail_msg("cannot create %s: %m", path);
	if (len > 0 && write(fd, data, len) != (ssize_t)len)
		fail_msg("cannot write %s: %m", path);
	if (fchmod(fd, mode) != 0)
		fail_msg("chmod %s: %m", path);
	close(fd);
	return path;
}

kms_rc test_parse(const char *text, kms_store **out, kms_error *err)
{
	memset(err, 0, sizeof(*err));
	*out = NULL;
	return kms_store_parse(text, strlen(text), TEST_CONF, out, err);
}

void test_contains(const char *haystack, const char *needle, int want,
		   const char *file, int line)
{
	int found = strstr(haystack, needle) != NULL;

	if (found != want) {
		print_error("%s:%d: \"%s\" %s \"%s\"\n", file, line, haystack,
			    want ? "does not contain" : "contains", needle);
		fail();
	}
}
