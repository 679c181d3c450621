/* error.c - error messages and the library's logger. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "error.h"

static kms_log_fn *log_fn;
static void *log_ctx;

void kms_set_logger(kms_log_fn *fn, void *ctx)
{
	log_fn = fn;
	log_ctx = ctx;
}

kms_rc kms_fail(kms_error *err, kms_rc code, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return code;
	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	return code;
}

kms_rc kms_error_prefix(kms_error *err, const char *fmt, ...)
{
	char prefix[KMS_ERROR_MAX], old[KMS_ERROR_MAX];
	va_list ap;

	if (err == NULL)
		return KMS_OK;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, err->message, sizeof(old));
	return kms_fail(err, err->code, "%s: %s", prefix, old);
}

void kms_log(kms_log_level level, const char *fmt, ...)
{
	static const char *const names[] = {
		[KMS_LOG_ERROR] = "error",
		[KMS_LOG_WARNING] = "warning",
		[KMS_LOG_INFO] = "info",
	};
	char msg[KMS_ERROR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (log_fn != NULL)
		log_fn(log_ctx, level, msg);
	else if (level != KMS_LOG_INFO)
		fprintf(stderr, "kmstore: %s: %s\n", names[level], msg);
}

const char *kms_rc_name(kms_rc rc)
{
	switch (rc) {
	case KMS_OK: return "ok";
	case KMS_ERR_USAGE: return "usage";
	case KMS_ERR_CONFIG: return "config";
	case KMS_ERR_PERMISSION: return "permission";
	case KMS_ERR_NOT_FOUND: return "not-found";
	case KMS_ERR_URI: return "uri";
	case KMS_ERR_KME: return "kme";
	case KMS_ERR_UNREACHABLE: return "unreachable";
	case KMS_ERR_UNSUPPORTED: return "unsupported";
	case KMS_ERR_SYSTEM: return "system";
	}
	return "unknown";
}

/* The reason strings of the OpenSSL provider and engine: tests and users
 * grep OpenSSL's error output for them ("KME error:"), so keep them. */
const char *kms_rc_describe(kms_rc rc)
{
	switch (rc) {
	case KMS_OK: return "success";
	case KMS_ERR_USAGE: return "invalid argument";
	case KMS_ERR_CONFIG: return "configuration error";
	case KMS_ERR_PERMISSION: return "file permissions refused";
	case KMS_ERR_NOT_FOUND: return "no such profile or key";
	case KMS_ERR_URI: return "malformed kmstore: URI";
	case KMS_ERR_KME: return "KME error";
	case KMS_ERR_UNREACHABLE: return "KME unreachable";
	case KMS_ERR_UNSUPPORTED: return "unsupported";
	case KMS_ERR_SYSTEM: return "system error";
	}
	return "unknown error";
}
