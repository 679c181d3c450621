/* log.c - where the module's and libkmstore's messages go (stderr, syslog
 * or nowhere; the `log=` parameter), the mapping of kmstore results to
 * PKCS#11 return values, and space-padded PKCS#11 strings.
 *
 * Messages name profiles and key IDs (which IKE sends in the clear as the
 * PPK_ID), never key bytes: libkmstore's messages are built that way and
 * this module adds nothing secret. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include "module.h"

static enum p11_log_target target = LOG_TO_STDERR;
static kms_log_level threshold = KMS_LOG_WARNING;

static const char *level_name(kms_log_level level)
{
	switch (level) {
	case KMS_LOG_ERROR:
		return "error";
	case KMS_LOG_WARNING:
		return "warning";
	default:
		return "info";
	}
}

static int syslog_priority(kms_log_level level)
{
	switch (level) {
	case KMS_LOG_ERROR:
		return LOG_ERR;
	case KMS_LOG_WARNING:
		return LOG_WARNING;
	default:
		return LOG_INFO;
	}
}

static void emit(kms_log_level level, const char *message)
{
	if (level > threshold || target == LOG_TO_NONE)
		return;
	/* No openlog(): the host application (pluto) owns the ident and
	 * facility. */
	if (target == LOG_TO_SYSLOG)
		syslog(syslog_priority(level), "kmstore-pkcs11: %s: %s",
		       level_name(level), message);
	else
		fprintf(stderr, "kmstore-pkcs11: %s: %s\n", level_name(level),
			message);
}

static void library_logger(void *ctx, kms_log_level level, const char *message)
{
	(void)ctx;
	emit(level, message);
}

void p11_log_setup(const struct p11_params *params)
{
	target = params->log;
	threshold = params->log_level;
	kms_set_logger(library_logger, NULL);
}

void p11_log(kms_log_level level, const char *fmt, ...)
{
	char buf[KMS_ERROR_MAX + 128];
	va_list ap;

	if (level > threshold || target == LOG_TO_NONE)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	emit(level, buf);
}

/* NSS maps CKR_DEVICE_ERROR and CKR_FUNCTION_FAILED to errors that say
 * what happened; "no such key" is not an error for a search (zero
 * objects), so callers handle KMS_ERR_NOT_FOUND before this. */
CK_RV p11_rv_from_kms(kms_rc rc)
{
	switch (rc) {
	case KMS_OK:
		return CKR_OK;
	case KMS_ERR_UNREACHABLE:
		return CKR_DEVICE_ERROR;
	case KMS_ERR_SYSTEM:
	case KMS_ERR_CONFIG:
	case KMS_ERR_PERMISSION:
	case KMS_ERR_KME:
	case KMS_ERR_NOT_FOUND:
	case KMS_ERR_UNSUPPORTED:
		return CKR_FUNCTION_FAILED;
	case KMS_ERR_USAGE:
	case KMS_ERR_URI:
		return CKR_ARGUMENTS_BAD;
	default:
		return CKR_GENERAL_ERROR;
	}
}

void p11_pad(CK_UTF8CHAR *dst, size_t size, const char *src)
{
	size_t n = strlen(src);

	if (n > size)
		n = size;
	memset(dst, ' ', size);
	memcpy(dst, src, n);
}
