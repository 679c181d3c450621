/* profiles.c - the profiles behind the tokens: found at C_Initialize, and
 * looked for again while a slot is empty.
 *
 * NSS lists a module's slots once, when it loads the module. A profile
 * added later (to kmstore.conf, or by a kmstored reload), or every profile
 * when kmstored was down as pluto started, was therefore seen only after
 * the application restarted: for pluto, after every IKE SA of the gateway
 * had dropped. So the module offers EMPTY_SLOTS removable slots beyond
 * the profiles it found, as a card reader offers a slot for a card. NSS
 * asks a removable slot whether its token is there (at most once a second
 * per slot) whenever it walks the slots, as pluto's lookup of a ppk-uri=
 * token does, and finds a new profile's token in the first empty slot.
 *
 * Looking is a kms_store_cache get, with the module lock dropped: a stat
 * of the configuration, or a listing from kmstored, on the caller's
 * thread (pluto's main thread). It takes microseconds; a look that took
 * long (kmstored that does not answer) is not repeated for LOOK_BACKOFF
 * times as long, so looking never takes more than a sixtieth of the
 * caller's time. A profile that is a token already keeps the settings it
 * had: only a restart applies a change to it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "module.h"

#define EMPTY_SLOTS 16
#define LOOK_EVERY_MS 5000
#define LOOK_BACKOFF 60

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A stable serial number per profile name (FNV-1a), so a token keeps its
 * serial when profiles are added or reordered. */
static void make_serial(const char *name, char out[17])
{
	unsigned long long h = 0xcbf29ce484222325ULL;

	for (; *name != '\0'; name++) {
		h ^= (unsigned char)*name;
		h *= 0x100000001b3ULL;
	}
	snprintf(out, 17, "%016llx", h);
}

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

/* Gives each profile of s that is no token yet an empty slot; keeps s
 * (which owns those profiles) if it gave any. */
static void place(kms_store *s, int at_start)
{
	size_t placed = 0;
	char buf[160];

	for (size_t i = 0; i < kms_store_profile_count(s); i++) {
		kms_profile *p = kms_store_profile_at(s, i);
		const char *name = kms_profile_name(p);
		struct p11_token *t;

		if (is_token(name))
			continue;
		t = first_empty();
		if (t == NULL) {
			if (!p11.slots_full_told)
				p11_log(KMS_LOG_WARNING,
					"profile '%s' is new in %s but the module's "
					"%d empty slots are taken: it is a token "
					"once the application starts again",
					name, source_name(s, buf, sizeof(buf)),
					EMPTY_SLOTS);
			p11.slots_full_told = 1;
			break;
		}
		t->profile = p;
		make_serial(name, t->serial);
		placed++;
		if (!at_start)
			p11_log(KMS_LOG_WARNING,
				"profile '%s' is new in %s: its token is in slot %lu",
				name, source_name(s, buf, sizeof(buf)),
				(unsigned long)t->id);
	}
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
		p11.n_stores == 0 ?
			"the module has no tokens yet (it looks again when asked)" :
			"no new profile can be found");
	snprintf(p11.look_error, sizeof(p11.look_error), "%s", err->message);
}

static void set_next_look(long started)
{
	long took = now_ms() - started;

	p11.next_look_ms = now_ms() + (took * LOOK_BACKOFF > LOOK_EVERY_MS ?
					       took * LOOK_BACKOFF :
					       LOOK_EVERY_MS);
}

/* What a get gave (s, or rc and err): placed or told; and when to look
 * again. */
static void take(kms_store *s, kms_rc rc, const kms_error *err,
		 int at_start, long started)
{
	char buf[160];

	if (rc != KMS_OK) {
		tell_failure(err, at_start);
	} else {
		if (at_start || p11.look_error[0] != '\0')
			p11_log(at_start ? KMS_LOG_INFO : KMS_LOG_WARNING,
				"%s: %zu profile(s)%s", source_name(s, buf, sizeof(buf)),
				kms_store_profile_count(s), at_start ? "" : " now");
		p11.look_error[0] = '\0';
		place(s, at_start);
	}
	set_next_look(started);
}

CK_RV p11_profiles_open(void)
{
	long started = now_ms();
	kms_store *s = NULL;
	size_t found = 0;
	kms_error err;
	kms_rc rc;

	p11.looking = 0;
	p11.slots_full_told = 0;
	p11.look_error[0] = '\0';
	rc = p11.params.daemon != NULL ?
		     kms_store_cache_new_daemon(p11.params.daemon, &p11.cache, &err) :
		     kms_store_cache_new(p11.params.config, &p11.cache, &err);
	if (rc == KMS_OK)
		rc = kms_store_cache_get(p11.cache, &s, &err);
	if (rc == KMS_OK)
		found = kms_store_profile_count(s);
	if (p11.cache == NULL) {
		p11_log(KMS_LOG_ERROR, "%s; the module has no tokens", err.message);
		return CKR_OK;
	}
	p11.tokens = calloc(found + EMPTY_SLOTS, sizeof(*p11.tokens));
	p11.stores = calloc(found + EMPTY_SLOTS, sizeof(*p11.stores));
	if (p11.tokens == NULL || p11.stores == NULL) {
		kms_store_free(s);
		return CKR_HOST_MEMORY;
	}
	p11.n_tokens = found + EMPTY_SLOTS;
	p11.n_fixed = found;
	for (size_t i = 0; i < p11.n_tokens; i++)
		p11.tokens[i].id = (CK_SLOT_ID)i + 1;
	take(s, rc, &err, 1, started);
	return CKR_OK;
}

CK_RV p11_profiles_look(void)
{
	long started = now_ms();
	kms_store *s = NULL;
	kms_error err;
	kms_rc rc;
	CK_RV rv;

	if (p11.cache == NULL || p11.looking || started < p11.next_look_ms ||
	    first_empty() == NULL)
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
