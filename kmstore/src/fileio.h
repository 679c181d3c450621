/* fileio.h - reading configuration and key files safely; internal. */
#ifndef KMS_FILEIO_H
#define KMS_FILEIO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#include "kmstore.h"

/* Opens path for reading and refuses, as ssh does for a private key, a file
 * that is not regular, is accessible to group or others, or is owned by
 * neither the caller nor root; "what" names the file in messages ("key
 * file"). On success *fd is open for reading. */
kms_rc kms_open_private(const char *path, const char *what, int *fd,
			kms_error *err);

/* Reads a whole private file of at most max bytes. With secret set the
 * buffer is from kms_secmem_alloc (free with kms_secmem_free(buf, max + 1)),
 * else from malloc; either way NUL-terminated. */
kms_rc kms_read_private(const char *path, const char *what, size_t max,
			int secret, uint8_t **buf, size_t *len, kms_error *err);

/* stat(2) as open(2) would see the file: a network file system (NFS) is
 * asked for its attributes now, not answered from the client's cache of a
 * minute (statx with AT_STATX_FORCE_SYNC; on a local file system it is a
 * stat). Fills what kms_file_same compares. 0, or -1 with errno. */
int kms_file_stat(const char *path, struct stat *st);

/* What identifies a file's content as stat(2) sees it: device and inode (a
 * file replaced by rename, a symlink pointed elsewhere), size, mode, owner,
 * and the modification and change times. Every write, chmod and chown
 * moves the change time, which no one can set back. */
int kms_file_same(const struct stat *a, const struct stat *b);

/* File times have a granularity: the kernel's coarse clock (milliseconds),
 * whole seconds on some file systems, another host's clock on NFS. A file
 * written twice within one tick, same size, looks unchanged; so an
 * identity tells a change only once its times are KMS_FILE_RECENT_S old at
 * now (a realtime clock read before the stat): the file is "quiet". */
#define KMS_FILE_RECENT_S 2
int kms_file_quiet(const struct stat *st, const struct timespec *now);

/* A private file (a TLS key) kept in locked memory while it is unchanged,
 * for callers that would otherwise read it at every use: each get stats
 * the path, a microsecond, and reads the file again, checked as
 * kms_read_private does, only when it changed or is not yet quiet. So a
 * get gives what kms_read_private would give at that moment: the same
 * bytes, or the same error. A copy stays valid for its holder until put
 * back, also after the file changed; the last holder wipes it. */
struct kms_kept_file;
struct kms_file_copy {
	const uint8_t *data; /* locked memory, NUL-terminated */
	size_t len;
};

/* path and what are not copied: they must outlive the kept file. No I/O. */
kms_rc kms_kept_file_new(const char *path, const char *what, size_t max,
			 struct kms_kept_file **out, kms_error *err);
void kms_kept_file_free(struct kms_kept_file *kf);
kms_rc kms_kept_file_get(struct kms_kept_file *kf,
			 const struct kms_file_copy **out, kms_error *err);
void kms_file_copy_put(const struct kms_file_copy *copy);

#endif
