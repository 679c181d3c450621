/* error.h - filling kms_error and logging; internal to libkmstore. */
#ifndef KMS_ERROR_H
#define KMS_ERROR_H

#include "kmstore.h"

#if defined(__GNUC__)
#define KMS_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define KMS_PRINTF(f, a)
#endif

/* Sets err (if not NULL) and returns code, so callers can write
 * "return kms_fail(err, KMS_ERR_CONFIG, ...)". */
kms_rc kms_fail(kms_error *err, kms_rc code, const char *fmt, ...) KMS_PRINTF(3, 4);

/* Prepends "prefix: " to the message already in err. */
kms_rc kms_error_prefix(kms_error *err, const char *fmt, ...) KMS_PRINTF(2, 3);

void kms_log(kms_log_level level, const char *fmt, ...) KMS_PRINTF(2, 3);

#endif
