/* log.c - where the module's and libkmstore's messages go (stderr, syslog
 * or nowhere, or by default stderr when it leads somewhere and syslog
 * otherwise; the `log=` parameter), the mapping of kmstore results to
 * PKCS#11 return values, and space-padded PKCS#11 strings.
 *
 * Messages name profiles and key IDs (which IKE sends in the clear as the
 * PPK_ID), never key bytes: libkmstore's messages are built that way and
 * this module adds nothing secret. */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <sys/stat.h>
#include <unistd.h>

#include "module.h"

static enum p11_log_target target = LOG_TO_AUTO;
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

/* Whether a line written to stderr reaches anyone: pluto, when it logs
 * to syslog (its default) or to a file (logfile=), points stderr at
 * /dev/null opened read-only; a daemon may have closed it. Asked at each
 * message: an application may redirect stderr after C_Initialize. */
static int stderr_leads_somewhere(void)
{
	struct stat st, null;
	int flags = fcntl(STDERR_FILENO, F_GETFL);

	if (flags < 0 || (flags & O_ACCMODE) == O_RDONLY)
		return 0;
	if (fstat(STDERR_FILENO, &st) != 0)
		return 0;
	return !(S_ISCHR(st.st_mode) && stat("/dev/null", &null) == 0 &&
		 st.st_rdev == null.st_rdev);
}

static void emit(kms_log_level level, const char *message)
{
	enum p11_log_target to = target;

	if (level > threshold || to == LOG_TO_NONE)
		return;
	if (to == LOG_TO_AUTO)
		to = stderr_leads_somewhere() ? LOG_TO_STDERR : LOG_TO_SYSLOG;
	/* No openlog(): the host application (pluto) owns the ident and
	 * facility. */
	if (to == LOG_TO_SYSLOG)
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

int p11_log_enabled(kms_log_level level)
{
	return level <= threshold && target != LOG_TO_NONE;
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
