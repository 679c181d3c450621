/* log.c - kmstored's log: one line per event on stderr, which systemd
 * puts in the journal (with a "<N>" priority prefix it understands, when
 * JOURNAL_STREAM says stderr is the journal), or syslog once kmstored has
 * detached. The library's warnings come here too. Never key bytes: key
 * IDs and check values only.
 *
 * The lines a client's own acts cause (a refusal, a bad request, an
 * unknown profile) are limited per user: at most CLIENT_BURST in a window
 * of CLIENT_WINDOW_MS, then one line saying how many were left out. Else
 * any local user could write tens of thousands of lines a second, and
 * journald's rate limit (10000 lines per 30 s per service by default)
 * would then drop the lines that matter: one per key served, which are
 * never limited. Root and kmstored's own user are not limited. */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <syslog.h>
#include <unistd.h>

#include "clock.h"
#include "kmstored.h"

static enum kmsd_log_target target = KMSD_LOG_STDERR;
static kms_log_level max_level = KMS_LOG_INFO;
static int journal;

#define CLIENT_BURST 10
#define CLIENT_WINDOW_MS 10000
#define CLIENT_SLOTS 64 /* users with a window open; then one for the rest */

/* A user's window: since start, count lines logged and suppressed left
 * out. The last slot is for every user that finds the others taken. */
static struct window {
	uid_t uid;
	int used;
	int64_t start;
	unsigned count;
	unsigned long suppressed;
} windows[CLIENT_SLOTS + 1];
static pthread_mutex_t windows_lock = PTHREAD_MUTEX_INITIALIZER;
static int wake_fd = -1; /* the main loop's: a summary is due */

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

/* While a start waits for a lookup it loads the file again every 2 s:
 * the lines about the file (the library's of a weak key, kmstored's of an
 * expired certificate) are told once, not 30 times. A line is known by
 * its hash (FNV-1a). */
#define ONCE_MAX 64
static struct {
	pthread_mutex_t lock;
	int on;
	uint64_t told[ONCE_MAX];
	size_t n;
} once = { .lock = PTHREAD_MUTEX_INITIALIZER };

void kmsd_log_once(int on)
{
	pthread_mutex_lock(&once.lock);
	once.on = on;
	once.n = 0;
	pthread_mutex_unlock(&once.lock);
}

static int told_before(const char *message)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	int seen = 0;

	pthread_mutex_lock(&once.lock);
	if (once.on) { /* only at start: every line passes here */
		for (const char *c = message; *c != '\0'; c++)
			h = (h ^ (unsigned char)*c) * 0x100000001b3ULL;
		for (size_t i = 0; !seen && i < once.n; i++)
			seen = once.told[i] == h;
		if (!seen && once.n < ONCE_MAX)
			once.told[once.n++] = h;
	}
	pthread_mutex_unlock(&once.lock);
	return seen;
}

static void from_library(void *ctx, kms_log_level level, const char *message)
{
	(void)ctx;
	if (!told_before(message))
		emit(level, message);
}

void kmsd_log_setup(enum kmsd_log_target t, kms_log_level max)
{
	wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
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
	if (!told_before(msg))
		emit(level, msg);
}

/* The summary of a window that ended; under windows_lock. */
static void window_close(struct window *w, int64_t now, char *line,
			 size_t size)
{
	int64_t s = (now - w->start + 999) / 1000;
	char who[32];

	if (w->suppressed > 0) {
		if (w == &windows[CLIENT_SLOTS])
			snprintf(who, sizeof(who), "other users");
		else
			snprintf(who, sizeof(who), "uid %u", (unsigned)w->uid);
		snprintf(line, size, "%s: %lu more lines like those above not "
			 "logged in %" PRId64 " s (at most %d per user in "
			 "%d s)", who, w->suppressed, s < 1 ? 1 : s, CLIENT_BURST,
			 CLIENT_WINDOW_MS / 1000);
	}
	w->used = 0;
	w->count = 0;
	w->suppressed = 0;
}

static void wake_main(void)
{
	uint64_t one = 1;
	ssize_t n;

	if (wake_fd < 0)
		return;
	n = write(wake_fd, &one, sizeof(one)); /* EAGAIN: one is pending */
	(void)n;
}

/* Whether a client's line is to be logged now; counted either way. */
static int log_allowed(const struct kmsd_client *c, kms_log_level level)
{
	uid_t uid = c->uid;
	char summary[160] = "";
	struct window *w = NULL, *free_slot = NULL;
	int64_t now;
	int ok;

	if (level > max_level)
		return 0;
	if (c->admin)
		return 1;
	now = kms_now_ms();
	pthread_mutex_lock(&windows_lock);
	for (size_t i = 0; i < CLIENT_SLOTS && w == NULL; i++) {
		if (windows[i].used && windows[i].uid == uid)
			w = &windows[i];
		else if (free_slot == NULL &&
			 (!windows[i].used ||
			  (now - windows[i].start >= CLIENT_WINDOW_MS &&
			   windows[i].suppressed == 0)))
			free_slot = &windows[i];
	}
	if (w == NULL)
		w = free_slot != NULL ? free_slot : &windows[CLIENT_SLOTS];
	if (w->used && now - w->start >= CLIENT_WINDOW_MS)
		window_close(w, now, summary, sizeof(summary));
	if (!w->used) {
		w->used = 1;
		w->uid = uid;
		w->start = now;
	}
	ok = w->count < CLIENT_BURST;
	if (ok)
		w->count++;
	else if (w->suppressed++ == 0)
		wake_main(); /* it logs the summary when the window ends */
	pthread_mutex_unlock(&windows_lock);
	if (*summary != '\0')
		emit(KMS_LOG_WARNING, summary);
	return ok;
}

void kmsd_log_client(const struct kmsd_client *c, kms_log_level level,
		     const char *fmt, ...)
{
	char msg[2 * KMS_ERROR_MAX];
	va_list ap;

	if (!log_allowed(c, level))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!told_before(msg))
		emit(level, msg);
}

int kmsd_log_fd(void)
{
	return wake_fd;
}

int kmsd_log_tick(int all)
{
	uint64_t n;
	int64_t now = kms_now_ms(), next = -1;
	ssize_t got;

	if (wake_fd >= 0) {
		got = read(wake_fd, &n, sizeof(n)); /* EAGAIN: no news */
		(void)got;
	}
	for (size_t i = 0; i <= CLIENT_SLOTS; i++) {
		char summary[160] = "";
		int64_t left;

		pthread_mutex_lock(&windows_lock);
		left = windows[i].start + CLIENT_WINDOW_MS - now;
		if (windows[i].suppressed > 0 && (left <= 0 || all))
			window_close(&windows[i], now, summary,
				     sizeof(summary));
		else if (windows[i].suppressed > 0 && (next < 0 || left < next))
			next = left;
		pthread_mutex_unlock(&windows_lock);
		if (*summary != '\0')
			emit(KMS_LOG_WARNING, summary);
	}
	return next < 0 ? -1 : (int)next;
}
