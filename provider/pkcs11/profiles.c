/* profiles.c - the profiles behind the tokens: found at C_Initialize, and
 * looked for again later.
 *
 * NSS lists a module's slots once, when it loads the module. A profile
 * added later (to kmstore.conf, or by a kmstored reload), or every profile
 * when kmstored was down as pluto started, was therefore seen only after
 * the application restarted: for pluto, after every IKE SA of the gateway
 * had dropped. So the module offers empty removable slots (empty-slots=,
 * 16) beyond the profiles it found, as a card reader offers a slot for a
 * card. NSS asks a removable slot whether its token is there (at most once
 * a second per slot) whenever it walks the slots, as pluto's lookup of a
 * ppk-uri= token does, and finds a new profile's token in the first empty
 * slot.
 *
 * Looking is a kms_store_cache get, with the module lock dropped: a stat
 * of the configuration, or a listing from kmstored, on the caller's
 * thread (pluto's main thread). It takes microseconds, and kmstored gets
 * LIST_WAIT_MS to list. A look that took long is not repeated for
 * LOOK_BACKOFF times as long, so looking never takes more than a sixtieth
 * of the caller's time; nor is one that kmstored refused (it logs each
 * refusal) repeated soon. A profile, once a token, keeps the settings it
 * had, so one is taken from a file only once two looks SETTLE_S apart or
 * more (on this process's clock: a file's times may be in the future)
 * saw the file unchanged: not half-written by an editor or a script. Once no slot
 * is empty, looks go on every FULL_LOOK_MS, asked by the slots filled
 * late, to tell which profiles are left out. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "module.h"

#define LOOK_EVERY_MS 5000
#define LOOK_BACKOFF 60
#define LIST_WAIT_MS 500
#define SETTLE_S 2
#define REFUSED_MAX_MS 300000
#define FULL_LOOK_MS 60000

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* FNV-1a, from h: a token's serial number from its profile name (stable
 * when profiles are added or reordered), and the names left out. */
static unsigned long long fnv(unsigned long long h, const char *s)
{
	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	return h;
}
#define FNV_START 0xcbf29ce484222325ULL

/* "kmstored at SOCKET", or the configuration's path. */
static const char *source_name(const kms_store *s, char *buf, size_t size)
{
	if (p11.params.daemon == NULL)
		return kms_store_path(s);
	snprintf(buf, size, "kmstored at %s", p11.params.daemon);
	return buf;
}

static int is_token(const char *name)
{
	for (size_t i = 0; i < p11.n_tokens; i++)
		if (p11.tokens[i].profile != NULL &&
		    strcmp(kms_profile_name(p11.tokens[i].profile), name) == 0)
			return 1;
	return 0;
}

static struct p11_token *first_empty(void)
{
	for (size_t i = 0; i < p11.n_tokens; i++)
		if (p11.tokens[i].profile == NULL)
			return &p11.tokens[i];
	return NULL;
}

/* Whether the file the profiles come from is the same as SETTLE_S ago or
 * more (kmstored's listing is whole: always). Asked after the get, so a
 * write since would show; a change starts the wait again. */
static int settled(void)
{
	const char *path = p11.params.config != NULL ? p11.params.config :
						       kms_default_config_path();
	struct stat st;

	if (p11.params.daemon != NULL || stat(path, &st) != 0)
		return 1;
	if (st.st_ino != p11.seen.st_ino || st.st_dev != p11.seen.st_dev ||
	    st.st_size != p11.seen.st_size ||
	    st.st_mtim.tv_sec != p11.seen.st_mtim.tv_sec ||
	    st.st_mtim.tv_nsec != p11.seen.st_mtim.tv_nsec ||
	    st.st_ctim.tv_sec != p11.seen.st_ctim.tv_sec ||
	    st.st_ctim.tv_nsec != p11.seen.st_ctim.tv_nsec) {
		p11.seen = st;
		p11.seen_ms = now_ms();
		return 0;
	}
	return now_ms() - p11.seen_ms >= SETTLE_S * 1000;
}

static void tell_left_out(const kms_store *s, size_t left, const char *names,
			  unsigned long long h)
{
	char buf[160];

	if (left > 0 && h != p11.left_out)
		p11_log(KMS_LOG_WARNING,
			"%zu new profile(s) in %s not made tokens: no empty slot "
			"is left (empty-slots=%zu) for %s; restart the application "
			"(pluto: ipsec restart), with more empty slots if needed",
			left, source_name(s, buf, sizeof(buf)),
			p11.params.empty_slots, names);
	p11.left_out = left > 0 ? h : 0;
}

/* Gives each profile of s that is no token yet an empty slot; keeps s
 * (which owns those profiles) if it gave any. */
static void place(kms_store *s, int at_start)
{
	unsigned long long h = 0; /* of the names left out, in any order */
	size_t placed = 0, left = 0, used = 0;
	char buf[160], names[200] = "";

	for (size_t i = 0; i < kms_store_profile_count(s); i++) {
		kms_profile *p = kms_store_profile_at(s, i);
		const char *name = kms_profile_name(p);
		struct p11_token *t;

		if (is_token(name))
			continue;
		t = first_empty();
		if (t == NULL) {
			h += fnv(FNV_START, name);
			used = strlen(names);
			if (used + strlen(name) + 4 + 5 < sizeof(names))
				snprintf(names + used, sizeof(names) - used, "%s'%s'",
					 left ? ", " : "", name);
			else if (strstr(names, ", ...") == NULL)
				snprintf(names + used, sizeof(names) - used, ", ...");
			left++;
			continue;
		}
		t->profile = p;
		snprintf(t->serial, sizeof(t->serial), "%016llx", fnv(FNV_START, name));
		placed++;
		if (at_start)
			continue;
		p11_log(KMS_LOG_WARNING, "profile '%s' is new in %s: its token is in slot %lu",
			name, source_name(s, buf, sizeof(buf)), (unsigned long)t->id);
		if (first_empty() == NULL)
			p11_log(KMS_LOG_WARNING,
				"that was the last of the module's %zu empty slots: a "
				"profile added now is a token once the application "
				"starts again", p11.params.empty_slots);
	}
	tell_left_out(s, left, names, h);
	if (placed > 0)
		p11.stores[p11.n_stores++] = s;
	else
		kms_store_free(s);
}

/* A failed get is told when its reason differs from the last one told,
 * so that a KME-less hour of looks leaves one line, not 720. */
static void tell_failure(const kms_error *err, int at_start)
{
	if (!at_start && strcmp(err->message, p11.look_error) == 0)
		return;
	p11_log(KMS_LOG_ERROR, "%s; %s", err->message,
		p11.n_tokens == 0 ? "the module has no tokens (and no empty slots)" :
		p11.n_stores == 0 ?
			"the module has no tokens yet (it looks again when asked)" :
			"no new profile can be found");
	snprintf(p11.look_error, sizeof(p11.look_error), "%s", err->message);
}

/* What a get gave (s, or rc and err): placed or told; and when to look
 * again. */
static void take(kms_store *s, kms_rc rc, const kms_error *err,
		 int at_start, long long started)
{
	long long took = now_ms() - started, wait = LOOK_EVERY_MS;
	char buf[160];

	/* kmstored's refusals say "kmstored:"; a file refused for its
	 * permissions is mended by chmod, and looked at again soon. */
	if (rc == KMS_ERR_PERMISSION && strncmp(err->message, "kmstored:", 9) == 0)
		p11.refused_wait_ms = p11.refused_wait_ms == 0 ? LOOK_EVERY_MS :
				      p11.refused_wait_ms * 2 > REFUSED_MAX_MS ?
							       REFUSED_MAX_MS :
							       p11.refused_wait_ms * 2;
	else
		p11.refused_wait_ms = 0;
	if (rc != KMS_OK) {
		tell_failure(err, at_start);
		if (p11.refused_wait_ms > wait)
			wait = p11.refused_wait_ms;
	} else if (!at_start && !settled()) {
		kms_store_free(s);
		wait = SETTLE_S * 1000;
	} else {
		if (at_start || p11.look_error[0] != '\0')
			p11_log(at_start ? KMS_LOG_INFO : KMS_LOG_WARNING,
				"%s: %zu profile(s)%s", source_name(s, buf, sizeof(buf)),
				kms_store_profile_count(s), at_start ? "" : " now");
		p11.look_error[0] = '\0';
		place(s, at_start);
	}
	if (first_empty() == NULL && wait < FULL_LOOK_MS)
		wait = FULL_LOOK_MS; /* only to tell what is left out */
	if (!at_start && took * LOOK_BACKOFF > wait)
		wait = took * LOOK_BACKOFF;
	p11.next_look_ms = now_ms() + wait;
}

CK_RV p11_profiles_open(void)
{
	long long started = now_ms();
	size_t found = 0, n;
	kms_store *s = NULL;
	kms_error err;
	kms_rc rc;

	p11.looking = 0;
	p11.left_out = 0;
	p11.refused_wait_ms = 0;
	p11.look_error[0] = '\0';
	memset(&p11.seen, 0, sizeof(p11.seen));
	rc = p11.params.daemon != NULL ?
		     kms_store_cache_new_daemon(p11.params.daemon, &p11.cache, &err) :
		     kms_store_cache_new(p11.params.config, &p11.cache, &err);
	/* Asked from pluto's main thread: kmstored lists from memory. */
	if (rc == KMS_OK)
		kms_store_cache_set_list_wait(p11.cache, LIST_WAIT_MS);
	if (rc == KMS_OK)
		rc = kms_store_cache_get(p11.cache, &s, &err);
	if (rc == KMS_OK)
		found = kms_store_profile_count(s);
	if (p11.cache == NULL) {
		p11_log(KMS_LOG_ERROR, "%s; the module has no tokens", err.message);
		return CKR_OK;
	}
	n = found + p11.params.empty_slots;
	p11.tokens = n > 0 ? calloc(n, sizeof(*p11.tokens)) : NULL;
	p11.stores = n > 0 ? calloc(n, sizeof(*p11.stores)) : NULL;
	if (n > 0 && (p11.tokens == NULL || p11.stores == NULL)) {
		kms_store_free(s);
		return CKR_HOST_MEMORY;
	}
	p11.n_tokens = n;
	p11.n_fixed = found;
	for (size_t i = 0; i < n; i++)
		p11.tokens[i].id = (CK_SLOT_ID)i + 1;
	take(s, rc, &err, 1, started);
	return CKR_OK;
}

CK_RV p11_profiles_look(void)
{
	long long started = now_ms();
	kms_store *s = NULL;
	kms_error err;
	kms_rc rc;
	CK_RV rv;

	if (p11.cache == NULL || p11.looking || started < p11.next_look_ms)
		return CKR_OK;
	p11.looking = 1;
	p11_fetch_begin();
	p11_leave();
	rc = kms_store_cache_get(p11.cache, &s, &err);
	rv = p11_enter();
	p11_fetch_end();
	if (rv != CKR_OK) {
		kms_store_free(s);
		return rv;
	}
	p11.looking = 0;
	take(s, rc, &err, 0, started);
	return CKR_OK;
}

void p11_profiles_close(void)
{
	for (size_t i = 0; i < p11.n_stores; i++)
		kms_store_free(p11.stores[i]);
	free(p11.stores);
	p11.stores = NULL;
	p11.n_stores = 0;
	kms_store_cache_free(p11.cache);
	p11.cache = NULL;
}
