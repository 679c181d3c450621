/* log.c - kmstored's log: one line per event on stderr, which systemd
 * puts in the journal (with a "<N>" priority prefix it understands, when
 * JOURNAL_STREAM says stderr is the journal), or syslog once kmstored has
 * detached. The library's warnings come here too. Never key bytes: key
 * IDs and check values only. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <syslog.h>

#include "kmstored.h"

static enum kmsd_log_target target = KMSD_LOG_STDERR;
static kms_log_level max_level = KMS_LOG_INFO;
static int journal;

static const struct {
	const char *name;
	int priority;
} levels[] = {
	[KMS_LOG_ERROR] = { "error", LOG_ERR },
	[KMS_LOG_WARNING] = { "warning", LOG_WARNING },
	[KMS_LOG_INFO] = { "info", LOG_INFO },
};

static void emit(kms_log_level level, const char *msg)
{
	if (level > max_level)
		return;
	if (target == KMSD_LOG_SYSLOG)
		syslog(levels[level].priority, "%s", msg);
	else if (journal)
		fprintf(stderr, "<%d>%s\n", levels[level].priority, msg);
	else
		fprintf(stderr, "kmstored: %s: %s\n", levels[level].name, msg);
}

static void from_library(void *ctx, kms_log_level level, const char *message)
{
	(void)ctx;
	emit(level, message);
}

void kmsd_log_setup(enum kmsd_log_target t, kms_log_level max)
{
	target = t;
	max_level = max;
	journal = getenv("JOURNAL_STREAM") != NULL;
	if (t == KMSD_LOG_SYSLOG)
		openlog("kmstored", LOG_PID, LOG_DAEMON);
	setvbuf(stderr, NULL, _IOLBF, 0);
	kms_set_logger(from_library, NULL);
}

void kmsd_log(kms_log_level level, const char *fmt, ...)
{
	char msg[2 * KMS_ERROR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	emit(level, msg);
}
