/* fileio.c - private files: configuration, key files, TLS keys. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

kms_rc kms_read_private(const char *path, const char *what, size_t max,
			int secret, uint8_t **out, size_t *len, kms_error *err)
{
	uint8_t *buf;
	size_t n = 0;
	int fd;
	kms_rc rc = kms_open_private(path, what, &fd, err);

	if (rc != KMS_OK)
		return rc;
	buf = secret ? kms_secmem_alloc(max + 1) : calloc(1, max + 1);
	if (buf == NULL) {
		close(fd);
		return kms_fail(err, KMS_ERR_SYSTEM, "out of memory reading %s %s",
				what, path);
	}
	/* Read one byte past max to tell "exactly max" from "too large". */
	while (n <= max) {
		ssize_t r = read(fd, buf + n, max + 1 - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;

			close(fd);
			release(buf, max, secret);
			return kms_fail(err, KMS_ERR_SYSTEM, "cannot read %s %s: %s",
					what, path, strerror(e));
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	if (n > max) {
		release(buf, max, secret);
		return kms_fail(err, KMS_ERR_CONFIG,
				"%s %s is larger than %zu bytes", what, path, max);
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return KMS_OK;
}
