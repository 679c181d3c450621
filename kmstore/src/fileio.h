/* fileio.h - reading configuration and key files safely; internal. */
#ifndef KMS_FILEIO_H
#define KMS_FILEIO_H

#include <stddef.h>
#include <stdint.h>

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

#endif
