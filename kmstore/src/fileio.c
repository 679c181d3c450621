/* fileio.c - private files: configuration, key files, TLS keys. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "fileio.h"
#include "secmem.h"

static kms_rc check_private(const char *path, const char *what,
			    const struct stat *st, kms_error *err)
{
	uid_t me = geteuid();

	if (!S_ISREG(st->st_mode))
		return kms_fail(err, KMS_ERR_CONFIG, "%s %s is not a regular file",
				what, path);
	if (st->st_uid != me && st->st_uid != 0)
		return kms_fail(err, KMS_ERR_PERMISSION,
				"%s %s is owned by uid %u, not by you (uid %u) or "
				"root; fix: chown %u %s",
				what, path, (unsigned)st->st_uid, (unsigned)me,
				(unsigned)me, path);
	if (st->st_mode & 077)
		return kms_fail(err, KMS_ERR_PERMISSION,
				"%s %s is accessible by group or others (mode "
				"%04o); it may hold secrets: fix: chmod 600 %s",
				what, path, (unsigned)(st->st_mode & 07777), path);
	return KMS_OK;
}

kms_rc kms_open_private(const char *path, const char *what, int *fd_out,
			kms_error *err)
{
	struct stat st;
	kms_rc rc;
	int fd;

	*fd_out = -1;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return kms_fail(err, errno == EACCES ? KMS_ERR_PERMISSION
						     : KMS_ERR_CONFIG,
				"cannot open %s %s: %s", what, path,
				strerror(errno));
	/* Check the file we opened, not the name: no race with a rename. */
	if (fstat(fd, &st) != 0) {
		rc = kms_fail(err, KMS_ERR_SYSTEM, "cannot stat %s %s: %s", what,
			      path, strerror(errno));
		close(fd);
		return rc;
	}
	rc = check_private(path, what, &st, err);
	if (rc != KMS_OK) {
		close(fd);
		return rc;
	}
	*fd_out = fd;
	return KMS_OK;
}

static void release(uint8_t *buf, size_t max, int secret)
{
	if (secret) {
		kms_secmem_free(buf, max + 1);
	} else if (buf != NULL) {
		kms_wipe(buf, max + 1);
		free(buf);
	}
}

/* Reads the open file whole into buf (max + 1 bytes); *torn when what was
 * read may be a writer's work in progress: the file changed within
 * KMS_FILE_RECENT_S and read empty, or not as long as it is now. */
static kms_rc read_whole(int fd, const char *path, const char *what,
			 size_t max, uint8_t *buf, size_t *len, int *torn,
			 kms_error *err)
{
	struct timespec now;
	struct stat st;
	size_t n = 0;

	/* Read one byte past max to tell "exactly max" from "too large". */
	while (n <= max) {
		ssize_t r = read(fd, buf + n, max + 1 - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return kms_fail(err, KMS_ERR_SYSTEM, "cannot read %s %s: %s",
					what, path, strerror(errno));
		if (r == 0)
			break;
		n += (size_t)r;
	}
	clock_gettime(CLOCK_REALTIME, &now);
	*torn = n <= max && fstat(fd, &st) == 0 && !kms_file_quiet(&st, &now) &&
		(n == 0 || (off_t)n != st.st_size);
	if (n > max)
		return kms_fail(err, KMS_ERR_CONFIG, "%s %s is larger than %zu bytes",
				what, path, max);
	buf[n] = '\0';
	*len = n;
	return KMS_OK;
}

/* How long a reader waits for a file rewritten in place (truncated, then
 * written: head -c 32 /dev/urandom > key) to be whole again, and how
 * often it looks. A rename is atomic and never waits. */
#define REWRITE_WAIT_MS 250
#define REWRITE_STEP_MS 10

kms_rc kms_read_private(const char *path, const char *what, size_t max,
			int secret, uint8_t **out, size_t *len, kms_error *err)
{
	uint8_t *buf;
	int fd, torn = 0;
	kms_rc rc;

	for (int waited = 0;; waited += REWRITE_STEP_MS) {
		rc = kms_open_private(path, what, &fd, err);
		if (rc != KMS_OK)
			return rc;
		buf = secret ? kms_secmem_alloc(max + 1) : calloc(1, max + 1);
		if (buf == NULL) {
			close(fd);
			return kms_fail(err, KMS_ERR_SYSTEM,
					"out of memory reading %s %s", what, path);
		}
		rc = read_whole(fd, path, what, max, buf, len, &torn, err);
		close(fd);
		if (rc == KMS_OK && !(torn && waited < REWRITE_WAIT_MS))
			break;
		release(buf, max, secret);
		if (rc != KMS_OK)
			return rc;
		nanosleep(&(struct timespec){ .tv_nsec = REWRITE_STEP_MS * 1000000L },
			  NULL);
	}
	*out = buf;
	return KMS_OK;
}

int kms_file_stat(const char *path, struct stat *st)
{
	struct statx x;

	if (statx(AT_FDCWD, path, AT_STATX_FORCE_SYNC, STATX_BASIC_STATS, &x) != 0)
		return errno == ENOSYS ? stat(path, st) : -1;
	memset(st, 0, sizeof(*st));
	st->st_dev = makedev(x.stx_dev_major, x.stx_dev_minor);
	st->st_ino = x.stx_ino;
	st->st_size = (off_t)x.stx_size;
	st->st_mode = x.stx_mode;
	st->st_uid = x.stx_uid;
	st->st_gid = x.stx_gid;
	st->st_mtim = (struct timespec){ x.stx_mtime.tv_sec, x.stx_mtime.tv_nsec };
	st->st_ctim = (struct timespec){ x.stx_ctime.tv_sec, x.stx_ctime.tv_nsec };
	return 0;
}

static int same_time(struct timespec a, struct timespec b)
{
	return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

int kms_file_same(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino &&
	       a->st_size == b->st_size && a->st_mode == b->st_mode &&
	       a->st_uid == b->st_uid && a->st_gid == b->st_gid &&
	       same_time(a->st_mtim, b->st_mtim) &&
	       same_time(a->st_ctim, b->st_ctim);
}

/* A time in the future is recent too. */
int kms_file_quiet(const struct stat *st, const struct timespec *now)
{
	return st->st_mtim.tv_sec + KMS_FILE_RECENT_S < now->tv_sec &&
	       st->st_ctim.tv_sec + KMS_FILE_RECENT_S < now->tv_sec;
}

/* ---- kept private files ---- */

struct copy {
	struct kms_file_copy pub; /* first: what holders are given */
	atomic_uint refs;
};

struct kms_kept_file {
	pthread_mutex_t lock;
	const char *path, *what;
	size_t max;
	struct copy *copy; /* NULL: none kept */
	struct stat id;    /* the file as stat saw it before copy was read */
	uid_t euid;        /* whom its checks were made for */
};

kms_rc kms_kept_file_new(const char *path, const char *what, size_t max,
			 struct kms_kept_file **out, kms_error *err)
{
	struct kms_kept_file *kf = calloc(1, sizeof(*kf));

	*out = NULL;
	if (kf == NULL)
		return kms_fail(err, KMS_ERR_SYSTEM, "out of memory");
	pthread_mutex_init(&kf->lock, NULL);
	kf->path = path;
	kf->what = what;
	kf->max = max;
	*out = kf;
	return KMS_OK;
}

static void copy_put(struct copy *c)
{
	if (c == NULL || atomic_fetch_sub(&c->refs, 1) != 1)
		return;
	kms_secmem_free((void *)c->pub.data, c->pub.len + 1);
	free(c);
}

void kms_file_copy_put(const struct kms_file_copy *copy)
{
	copy_put((struct copy *)copy);
}

void kms_kept_file_free(struct kms_kept_file *kf)
{
	if (kf == NULL)
		return;
	copy_put(kf->copy);
	pthread_mutex_destroy(&kf->lock);
	free(kf);
}

/* The file read and checked now, in locked memory of its own size (a
 * read takes the largest allowed), held once. */
static kms_rc read_copy(const struct kms_kept_file *kf, struct copy **out,
			kms_error *err)
{
	struct copy *c;
	uint8_t *buf, *data;
	size_t len;
	kms_rc rc;

	rc = kms_read_private(kf->path, kf->what, kf->max, 1, &buf, &len, err);
	if (rc != KMS_OK)
		return rc;
	data = kms_secmem_alloc(len + 1);
	c = data != NULL ? malloc(sizeof(*c)) : NULL;
	if (data != NULL)
		memcpy(data, buf, len + 1);
	kms_secmem_free_used(buf, kf->max + 1, len + 1);
	if (c == NULL) {
		kms_secmem_free(data, len + 1);
		return kms_fail(err, KMS_ERR_SYSTEM, "out of memory reading %s %s",
				kf->what, kf->path);
	}
	c->pub.data = data;
	c->pub.len = len;
	atomic_init(&c->refs, 1);
	*out = c;
	return KMS_OK;
}

kms_rc kms_kept_file_get(struct kms_kept_file *kf,
			 const struct kms_file_copy **out, kms_error *err)
{
	struct copy *c = NULL, *old;
	struct timespec now;
	struct stat st;
	uid_t euid = geteuid();
	int have;
	kms_rc rc;

	*out = NULL;
	/* The clock before the stat: a change after it cannot predate now. */
	clock_gettime(CLOCK_REALTIME, &now);
	have = kms_file_stat(kf->path, &st) == 0;
	pthread_mutex_lock(&kf->lock);
	if (have && kf->copy != NULL && kf->euid == euid &&
	    kms_file_same(&kf->id, &st)) {
		c = kf->copy;
		atomic_fetch_add(&c->refs, 1);
	}
	pthread_mutex_unlock(&kf->lock);
	if (c != NULL) {
		*out = &c->pub;
		return KMS_OK;
	}
	rc = read_copy(kf, &c, err);
	/* Kept only when stat can tell its next change; else read each time
	 * until the file is quiet. A failure drops what was kept. */
	pthread_mutex_lock(&kf->lock);
	old = kf->copy;
	kf->copy = NULL;
	if (rc == KMS_OK && have && kms_file_quiet(&st, &now)) {
		atomic_fetch_add(&c->refs, 1);
		kf->copy = c;
		kf->id = st;
		kf->euid = euid;
	}
	pthread_mutex_unlock(&kf->lock);
	copy_put(old);
	if (rc == KMS_OK)
		*out = &c->pub;
	return rc;
}
