/* nss_count.c - an LD_PRELOAD shim for tests/daemon/test_daemon.sh: notes
 * each user and group lookup of the process it is loaded in, a line a
 * call appended to the file $NSS_COUNT_LOG:
 *
 *   getpwuid_r 65534 main       the function, its key, and the thread:
 *   getgrnam_r ipsec thread     "main" (kmstored accepts connections
 *                               there) or another
 *
 * so that the test counts how many lookups kmstored makes for a number of
 * connections, and whether the accepting thread makes any. Under ASan,
 * preload the runtime first: its interceptors then call these. */
#include <dlfcn.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void note(const char *fn, const char *key)
{
	const char *path = getenv("NSS_COUNT_LOG");
	char line[256];
	int fd, n;

	if (path == NULL)
		return;
	n = snprintf(line, sizeof(line), "%s %.64s %s\n", fn, key,
		     gettid() == getpid() ? "main" : "thread");
	/* O_APPEND: each line whole, whichever thread writes it */
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	if (write(fd, line, (size_t)n) != n)
		perror("nss_count");
	close(fd);
}

/* The definition this shim hides: libc's. */
static void *next(const char *fn)
{
	void *f = dlsym(RTLD_NEXT, fn);

	if (f == NULL)
		abort();
	return f;
}

static void note_id(const char *fn, unsigned id)
{
	char key[16];

	snprintf(key, sizeof(key), "%u", id);
	note(fn, key);
}

int getpwuid_r(uid_t uid, struct passwd *pw, char *buf, size_t len,
	       struct passwd **out)
{
	int (*f)(uid_t, struct passwd *, char *, size_t, struct passwd **) =
		next("getpwuid_r");

	note_id("getpwuid_r", (unsigned)uid);
	return f(uid, pw, buf, len, out);
}

int getpwnam_r(const char *name, struct passwd *pw, char *buf, size_t len,
	       struct passwd **out)
{
	int (*f)(const char *, struct passwd *, char *, size_t,
		 struct passwd **) = next("getpwnam_r");

	note("getpwnam_r", name);
	return f(name, pw, buf, len, out);
}

int getgrgid_r(gid_t gid, struct group *gr, char *buf, size_t len,
	       struct group **out)
{
	int (*f)(gid_t, struct group *, char *, size_t, struct group **) =
		next("getgrgid_r");

	note_id("getgrgid_r", (unsigned)gid);
	return f(gid, gr, buf, len, out);
}

int getgrnam_r(const char *name, struct group *gr, char *buf, size_t len,
	       struct group **out)
{
	int (*f)(const char *, struct group *, char *, size_t,
		 struct group **) = next("getgrnam_r");

	note("getgrnam_r", name);
	return f(name, gr, buf, len, out);
}
