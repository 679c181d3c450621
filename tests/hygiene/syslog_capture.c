/* syslog_capture.c - LD_PRELOAD shim: syslog(3) lines go to the file
 * $SYSLOG_CAPTURE instead of /dev/log, so that the secret-hygiene test can
 * read what the PKCS#11 module logs with log=syslog (as under pluto),
 * without a syslog daemon. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <syslog.h>

#define EXPORT __attribute__((visibility("default")))

EXPORT void vsyslog(int pri, const char *fmt, va_list ap);
EXPORT void syslog(int pri, const char *fmt, ...);
EXPORT void __syslog_chk(int pri, int flag, const char *fmt, ...);
EXPORT void __vsyslog_chk(int pri, int flag, const char *fmt, va_list ap);

EXPORT void vsyslog(int pri, const char *fmt, va_list ap)
{
	const char *path = getenv("SYSLOG_CAPTURE");
	FILE *f = path != NULL ? fopen(path, "a") : NULL;

	if (f == NULL)
		return;
	fprintf(f, "<%d> ", pri);
	vfprintf(f, fmt, ap);
	fputc('\n', f);
	fclose(f);
}

EXPORT void syslog(int pri, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsyslog(pri, fmt, ap);
	va_end(ap);
}

EXPORT void __vsyslog_chk(int pri, int flag, const char *fmt, va_list ap)
{
	(void)flag;
	vsyslog(pri, fmt, ap);
}

EXPORT void __syslog_chk(int pri, int flag, const char *fmt, ...)
{
	va_list ap;

	(void)flag;
	va_start(ap, fmt);
	vsyslog(pri, fmt, ap);
	va_end(ap);
}
