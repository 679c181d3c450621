/*
 * kme-sim: fault injection (see fault.h and docs/kme-sim.md).
 */
#include "fault.h"

#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "etsi_json.h"

#define EP_ALL (FAULT_EP_STATUS | FAULT_EP_ENC | FAULT_EP_DEC | FAULT_EP_OTHER)
#define OVERSIZED_DEFAULT (8UL * 1024 * 1024)

enum arg_rule { ARG_NONE, ARG_REQUIRED, ARG_OPTIONAL };

static const struct kind_info {
	const char *name;
	enum fault_kind kind;
	enum arg_rule arg;
	unsigned long def, min, max;
	unsigned endpoints; /* where the fault makes sense */
} kinds[] = {
	{ "latency", FAULT_LATENCY, ARG_REQUIRED, 0, 0, 3600000, EP_ALL },
	{ "503", FAULT_503, ARG_NONE, 0, 0, 0, EP_ALL },
	{ "drop", FAULT_DROP, ARG_NONE, 0, 0, 0, EP_ALL },
	{ "malformed", FAULT_MALFORMED, ARG_NONE, 0, 0, 0, EP_ALL },
	{ "truncated", FAULT_TRUNCATED, ARG_NONE, 0, 0, 0, EP_ALL },
	{ "oversized", FAULT_OVERSIZED, ARG_OPTIONAL, OVERSIZED_DEFAULT, 1024,
	  1UL << 30, EP_ALL },
	{ "html-error", FAULT_HTML_ERROR, ARG_OPTIONAL, 502, 400, 599, EP_ALL },
	{ "status", FAULT_STATUS, ARG_REQUIRED, 0, 400, 599, EP_ALL },
	{ "wrong-length", FAULT_WRONG_LENGTH, ARG_NONE, 0, 0, 0,
	  FAULT_EP_ENC | FAULT_EP_DEC },
	{ "wrong-id", FAULT_WRONG_ID, ARG_NONE, 0, 0, 0, FAULT_EP_DEC },
	{ "extra-key", FAULT_EXTRA_KEY, ARG_NONE, 0, 0, 0,
	  FAULT_EP_ENC | FAULT_EP_DEC },
	{ "blackhole", FAULT_BLACKHOLE, ARG_NONE, 0, 0, 0, EP_ALL },
};

static const struct {
	const char *name;
	unsigned ep;
} endpoints[] = {
	{ "status", FAULT_EP_STATUS },
	{ "enc_keys", FAULT_EP_ENC },
	{ "dec_keys", FAULT_EP_DEC },
	{ "other", FAULT_EP_OTHER },
};

/* ---- shutdown-aware waits ---- */

static pthread_mutex_t wait_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wait_cond;
static pthread_once_t wait_once = PTHREAD_ONCE_INIT;
static bool shutting_down;

/* A monotonic clock, so that setting the date does not stretch delays. */
static void wait_init(void)
{
	pthread_condattr_t attr;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&wait_cond, &attr);
	pthread_condattr_destroy(&attr);
}

void fault_sleep_ms(unsigned long ms)
{
	struct timespec end;

	pthread_once(&wait_once, wait_init);
	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += (time_t)(ms / 1000);
	end.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (end.tv_nsec >= 1000000000L) {
		end.tv_sec++;
		end.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&wait_lock);
	while (!shutting_down &&
	       pthread_cond_timedwait(&wait_cond, &wait_lock, &end) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&wait_lock);
}

void fault_wait_for_shutdown(void)
{
	pthread_once(&wait_once, wait_init);
	pthread_mutex_lock(&wait_lock);
	while (!shutting_down)
		pthread_cond_wait(&wait_cond, &wait_lock);
	pthread_mutex_unlock(&wait_lock);
}

void fault_begin_shutdown(void)
{
	pthread_once(&wait_once, wait_init);
	pthread_mutex_lock(&wait_lock);
	shutting_down = true;
	pthread_cond_broadcast(&wait_cond);
	pthread_mutex_unlock(&wait_lock);
}

/* ---- rules ---- */

void fault_set_init(struct fault_set *fs)
{
	memset(fs, 0, sizeof(*fs));
	pthread_mutex_init(&fs->lock, NULL);
}

void fault_set_free(struct fault_set *fs)
{
	for (size_t i = 0; i < fs->n; i++) {
		free(fs->v[i].kme);
		free(fs->v[i].text);
	}
	free(fs->v);
	pthread_mutex_destroy(&fs->lock);
}

static int parse_ulong(const char *s, unsigned long min, unsigned long max,
		       unsigned long *out)
{
	char *end;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	*out = strtoul(s, &end, 10);
	return (errno || *end || *out < min || *out > max) ? -1 : 0;
}

static const struct kind_info *find_kind(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strlen(kinds[i].name) == len &&
		    strncmp(kinds[i].name, name, len) == 0)
			return &kinds[i];
	return NULL;
}

static int parse_paths(char *list, unsigned *mask)
{
	char *save = NULL;

	*mask = 0;
	for (char *p = strtok_r(list, "+", &save); p != NULL;
	     p = strtok_r(NULL, "+", &save)) {
		size_t i, n = sizeof(endpoints) / sizeof(endpoints[0]);

		for (i = 0; i < n && strcmp(endpoints[i].name, p) != 0; i++)
			;
		if (i == n)
			return -1;
		*mask |= endpoints[i].ep;
	}
	return *mask ? 0 : -1;
}

/* The part after the first comma: kme=ID, path=EP[+EP], count=N,
 * after=N. */
static int parse_modifiers(char *mods, struct fault_rule *r, unsigned *paths,
			   char *err, size_t errlen)
{
	char *save = NULL;
	unsigned long n;

	for (char *m = strtok_r(mods, ",", &save); m != NULL;
	     m = strtok_r(NULL, ",", &save)) {
		if (strncmp(m, "kme=", 4) == 0 && m[4] != '\0') {
			free(r->kme);
			r->kme = strdup(m + 4);
		} else if (strncmp(m, "path=", 5) == 0) {
			if (parse_paths(m + 5, paths)) {
				snprintf(err, errlen, "bad path list '%s' "
					 "(status, enc_keys, dec_keys, other "
					 "joined by +)", m + 5);
				return -1;
			}
		} else if (strncmp(m, "count=", 6) == 0 &&
			   parse_ulong(m + 6, 1, 1000000000UL, &n) == 0) {
			r->remaining = (long)n;
		} else if (strncmp(m, "after=", 6) == 0 &&
			   parse_ulong(m + 6, 1, 1000000000UL, &n) == 0) {
			r->after = n;
		} else {
			snprintf(err, errlen, "bad modifier '%s' (kme=ID, "
				 "path=EP[+EP], count=N, after=N)", m);
			return -1;
		}
	}
	return 0;
}

/* KIND[=ARG][:PCT] */
static int parse_kind(char *s, struct fault_rule *r,
		      const struct kind_info **ki, char *err, size_t errlen)
{
	size_t name_len = strcspn(s, "=:");
	char *arg = NULL, *pct = NULL, *p = s + name_len;
	unsigned long v;

	*ki = find_kind(s, name_len);
	if (*ki == NULL) {
		snprintf(err, errlen, "unknown fault '%.*s'", (int)name_len, s);
		return -1;
	}
	if (*p == '=') {
		*p++ = '\0';
		arg = p;
		p += strcspn(p, ":");
	}
	if (*p == ':') {
		*p++ = '\0';
		pct = p;
	}
	r->kind = (*ki)->kind;
	r->arg = (*ki)->def;
	if ((arg != NULL && (*ki)->arg == ARG_NONE) ||
	    (arg == NULL && (*ki)->arg == ARG_REQUIRED) ||
	    (arg != NULL && parse_ulong(arg, (*ki)->min, (*ki)->max, &r->arg))) {
		snprintf(err, errlen, "fault '%s' %s", (*ki)->name,
			 (*ki)->arg == ARG_NONE ? "takes no =value"
			 : "needs =value in range");
		return -1;
	}
	r->pct = 100;
	if (pct != NULL && parse_ulong(pct, 0, 100, &v)) {
		snprintf(err, errlen, "bad percentage '%s' (0 to 100)", pct);
		return -1;
	}
	if (pct != NULL)
		r->pct = (unsigned)v;
	return 0;
}

static int parse_rule(char *buf, struct fault_rule *r, char *err,
		      size_t errlen)
{
	char *mods = strchr(buf, ','), *head = buf;
	const struct kind_info *ki;
	unsigned paths = EP_ALL;

	if (mods != NULL)
		*mods++ = '\0';
	if (strncmp(head, "kme=", 4) == 0) {
		char *colon = strchr(head + 4, ':');

		if (colon == NULL || colon == head + 4) {
			snprintf(err, errlen, "'kme=ID:' must be followed "
				 "by a fault");
			return -1;
		}
		*colon = '\0';
		r->kme = strdup(head + 4);
		head = colon + 1;
	}
	if (parse_kind(head, r, &ki, err, errlen))
		return -1;
	if (mods != NULL && parse_modifiers(mods, r, &paths, err, errlen))
		return -1;
	r->endpoints = ki->endpoints & paths;
	if (r->endpoints == 0) {
		snprintf(err, errlen, "fault '%s' never applies to the paths "
			 "given", ki->name);
		return -1;
	}
	return 0;
}

int fault_add(struct fault_set *fs, const char *spec, char *err,
	      size_t errlen)
{
	struct fault_rule r = { .remaining = -1 }, *v;
	char *buf = strdup(spec);
	int rc = buf ? parse_rule(buf, &r, err, errlen) : -1;

	free(buf);
	if (rc == 0) {
		r.text = strdup(spec);
		v = realloc(fs->v, (fs->n + 1) * sizeof(*v));
		if (v != NULL) {
			fs->v = v;
			fs->v[fs->n++] = r;
			return 0;
		}
		snprintf(err, errlen, "out of memory");
	}
	free(r.kme);
	free(r.text);
	return -1;
}

static bool roll(unsigned pct)
{
	uint32_t x;

	if (pct >= 100)
		return true;
	if (pct == 0)
		return false;
	gnutls_rnd(GNUTLS_RND_NONCE, &x, sizeof(x));
	return x % 100 < pct;
}

static void describe(struct fault_choice *out, const char *text)
{
	size_t len = strlen(out->desc);

	if (strcmp(out->desc, "-") == 0)
		len = 0;
	snprintf(out->desc + len, sizeof(out->desc) - len, "%s%s",
		 len ? "+" : "", text);
}

static bool alters_keys(const struct fault_rule *r)
{
	return r->kind == FAULT_WRONG_LENGTH || r->kind == FAULT_WRONG_ID ||
	       r->kind == FAULT_EXTRA_KEY;
}

static bool applies_to(const struct fault_rule *r, const struct fault_choice *fc)
{
	return (r->kme == NULL || strcmp(r->kme, fc->kme_id) == 0 ||
		strcmp(r->kme, fc->listener) == 0) &&
	       (r->endpoints & fc->endpoint) && r->remaining != 0;
}

void fault_pick(struct fault_set *fs, const char *kme_id, const char *listener,
		unsigned endpoint, struct fault_choice *out)
{
	memset(out, 0, sizeof(*out));
	strcpy(out->desc, "-");
	out->kme_id = kme_id;
	out->listener = listener;
	out->endpoint = endpoint;
	pthread_mutex_lock(&fs->lock);
	for (size_t i = 0; i < fs->n; i++) {
		struct fault_rule *r = &fs->v[i];

		if (!applies_to(r, out) ||
		    (r->kind != FAULT_LATENCY && out->rule != NULL))
			continue;
		/* after=N: the KME serves N such requests well first (a
		 * fault that starts mid-burst, at a known request). Those
		 * of a rule that alters keys are counted once answered. */
		if (r->after > 0) {
			if (!alters_keys(r))
				r->after--;
			continue;
		}
		if (!roll(r->pct))
			continue;
		if (alters_keys(r)) { /* fires once there are keys to alter */
			out->rule = r;
			continue;
		}
		if (r->remaining > 0)
			r->remaining--;
		if (r->kind == FAULT_LATENCY)
			out->latency_ms += r->arg;
		else
			out->rule = r;
		describe(out, r->text);
	}
	pthread_mutex_unlock(&fs->lock);
}

/* The rules fault_pick() went through for this request are walked again:
 * those it let pass by after= now count the request, up to the chosen
 * one. Another request may have used up the chosen rule's count= since. */
const struct fault_rule *fault_keys_answered(struct fault_set *fs,
					     struct fault_choice *fc)
{
	const struct fault_rule *fired = NULL;

	pthread_mutex_lock(&fs->lock);
	for (size_t i = 0; i < fs->n; i++) {
		struct fault_rule *r = &fs->v[i];

		if (r == fc->rule) {
			if (r->remaining != 0)
				fired = r;
			if (r->remaining > 0)
				r->remaining--;
			break;
		}
		if (!alters_keys(r) || !applies_to(r, fc))
			continue;
		if (r->after > 0)
			r->after--;
	}
	pthread_mutex_unlock(&fs->lock);
	if (fired != NULL)
		describe(fc, fired->text);
	return fired;
}

/* ---- what the faults send ---- */

bool fault_replaces_answer(const struct fault_rule *r)
{
	return !alters_keys(r) && r->kind != FAULT_LATENCY;
}

static struct MHD_Response *text_response(const char *body, const char *type)
{
	struct MHD_Response *resp;

	if (body == NULL)
		return NULL;
	resp = MHD_create_response_from_buffer(strlen(body), (void *)body,
					       MHD_RESPMEM_MUST_COPY);
	if (resp != NULL)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
					type);
	return resp;
}

static struct MHD_Response *json_error(const char *message,
				       const struct fault_rule *r,
				       const char *kme_id)
{
	char *body = etsi_error_json(message, "fault", r->text, kme_id);
	struct MHD_Response *resp = text_response(body, "application/json");

	free(body);
	return resp;
}

static struct MHD_Response *html_error(unsigned status)
{
	char body[512];
	const char *reason = MHD_get_reason_phrase_for(status);

	/* What a reverse proxy in front of a real KME sends. */
	snprintf(body, sizeof(body),
		 "<html>\r\n<head><title>%u %s</title></head>\r\n<body>\r\n"
		 "<center><h1>%u %s</h1></center>\r\n<hr><center>nginx</center>"
		 "\r\n</body>\r\n</html>\r\n", status, reason, status, reason);
	return text_response(body, "text/html");
}

/* A key container that looks right, with a fresh random key. */
static char *plausible_keys(void)
{
	struct kme_keys keys = { 0 };
	char uuid[KME_UUID_LEN], *body = NULL;

	keys.v = calloc(1, sizeof(*keys.v));
	if (keys.v == NULL)
		return NULL;
	keys.n = 1;
	kme_new_uuid(uuid);
	if (kme_random_key(&keys.v[0], uuid, 32) == 0)
		body = etsi_keys_json(&keys);
	kme_keys_free(&keys);
	return body;
}

static struct MHD_Response *malformed(void)
{
	char body[256], uuid[KME_UUID_LEN];

	/* Single quotes, a trailing comma and an unclosed object. */
	kme_new_uuid(uuid);
	snprintf(body, sizeof(body),
		 "{\"keys\": [{'key_ID': \"%s\", \"key\": "
		 "\"q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=\",}", uuid);
	return text_response(body, "application/json");
}

struct truncated_body {
	char *buf;
	size_t cut;
};

/* Half the body, then an error: MHD closes the connection although the
 * Content-Length promised more. */
static ssize_t truncated_reader(void *cls, uint64_t pos, char *buf,
				size_t max)
{
	struct truncated_body *t = cls;
	size_t n;

	if (pos >= t->cut)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	n = t->cut - (size_t)pos;
	n = n < max ? n : max;
	memcpy(buf, t->buf + pos, n);
	return (ssize_t)n;
}

static void truncated_free(void *cls)
{
	struct truncated_body *t = cls;

	free(t->buf);
	free(t);
}

static struct MHD_Response *truncated(void)
{
	struct truncated_body *t = calloc(1, sizeof(*t));
	struct MHD_Response *resp;
	size_t len;

	if (t == NULL || (t->buf = plausible_keys()) == NULL) {
		free(t);
		return NULL;
	}
	len = strlen(t->buf);
	t->cut = len / 2;
	resp = MHD_create_response_from_callback(len, 4096, truncated_reader,
						 t, truncated_free);
	if (resp == NULL)
		truncated_free(t);
	else
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
					"application/json");
	return resp;
}

/* A valid key container whose key is megabytes of base64, made on the
 * fly so the size costs no memory. */
struct oversized_body {
	char prefix[96];
	size_t pre, fill;
};

static const char oversized_suffix[] = "\"}]}";

static ssize_t oversized_reader(void *cls, uint64_t pos, char *buf,
				size_t max)
{
	struct oversized_body *o = cls;
	size_t n = 0;

	while (n < max) {
		uint64_t at = pos + n;

		if (at < o->pre)
			buf[n++] = o->prefix[at];
		else if (at < o->pre + o->fill)
			buf[n++] = 'A';
		else if (at - o->pre - o->fill < sizeof(oversized_suffix) - 1)
			buf[n++] = oversized_suffix[at - o->pre - o->fill];
		else
			break;
	}
	return n ? (ssize_t)n : MHD_CONTENT_READER_END_OF_STREAM;
}

static struct MHD_Response *oversized(unsigned long total)
{
	struct oversized_body *o = calloc(1, sizeof(*o));
	struct MHD_Response *resp;
	char uuid[KME_UUID_LEN];
	size_t fixed;

	if (o == NULL)
		return NULL;
	kme_new_uuid(uuid);
	o->pre = (size_t)snprintf(o->prefix, sizeof(o->prefix),
				  "{\"keys\":[{\"key_ID\":\"%s\",\"key\":\"",
				  uuid);
	fixed = o->pre + sizeof(oversized_suffix) - 1;
	o->fill = total > fixed + 4 ? (total - fixed) / 4 * 4 : 4;
	resp = MHD_create_response_from_callback(fixed + o->fill, 65536,
						 oversized_reader, o, free);
	if (resp == NULL)
		free(o);
	else
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
					"application/json");
	return resp;
}

struct MHD_Response *fault_response(const struct fault_rule *r,
				    const char *kme_id, unsigned *status)
{
	char msg[128];

	*status = MHD_HTTP_OK;
	switch (r->kind) {
	case FAULT_503:
		*status = MHD_HTTP_SERVICE_UNAVAILABLE;
		return json_error("fault injection: key material temporarily "
				  "unavailable", r, kme_id);
	case FAULT_STATUS:
		*status = (unsigned)r->arg;
		snprintf(msg, sizeof(msg), "fault injection: HTTP %u %s",
			 *status, MHD_get_reason_phrase_for(*status));
		return json_error(msg, r, kme_id);
	case FAULT_HTML_ERROR:
		*status = (unsigned)r->arg;
		return html_error(*status);
	case FAULT_MALFORMED:
		return malformed();
	case FAULT_TRUNCATED:
		return truncated();
	case FAULT_OVERSIZED:
		return oversized(r->arg);
	default:
		return NULL;
	}
}

int fault_alter_keys(const struct fault_rule *r, struct kme_keys *keys)
{
	char uuid[KME_UUID_LEN];
	struct kme_key *v;

	for (size_t i = 0; i < keys->n && r->kind == FAULT_WRONG_LENGTH; i++) {
		size_t half = keys->v[i].len / 2;

		/* Zero the tail now: the free only wipes `len` bytes. */
		gnutls_memset(keys->v[i].bytes + half, 0,
			      keys->v[i].len - half);
		keys->v[i].len = half;
	}
	for (size_t i = 0; i < keys->n && r->kind == FAULT_WRONG_ID; i++) {
		kme_new_uuid(uuid);
		snprintf(keys->v[i].id, sizeof(keys->v[i].id), "%s", uuid);
	}
	if (r->kind == FAULT_EXTRA_KEY && keys->n > 0) {
		v = realloc(keys->v, (keys->n + 1) * sizeof(*v));
		if (v == NULL)
			return -1;
		keys->v = v;
		kme_new_uuid(uuid);
		if (kme_random_key(&keys->v[keys->n], uuid, keys->v[0].len)) {
			free(keys->v[keys->n].bytes);
			return -1;
		}
		keys->n++;
	}
	return 0;
}
