/* wire.c - kmstored's protocol (wire.h): building messages and parsing
 * them strictly, for both ends. Everything here is fuzzed
 * (tests/fuzz/fuzz_daemon_request.c, fuzz_daemon_reply.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "secmem.h"
#include "validate.h"
#include "wire.h"

#define FIELD_HEADER 5
#define COUNTS 6

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
	       p[3];
}

#define FIRST_CAP 512

int kms_wire_init(struct kms_wire_buf *b, size_t max, int secret,
		  enum kms_wire_kind kind)
{
	memset(b, 0, sizeof(*b));
	b->secret = secret;
	b->max = max;
	b->cap = secret || max < FIRST_CAP ? max : FIRST_CAP;
	b->data = secret ? kms_secmem_alloc(b->cap) : malloc(b->cap);
	if (b->data == NULL)
		return -1;
	memset(b->data, 0, KMS_WIRE_HEADER);
	memcpy(b->data, "KMSD", 4);
	b->data[4] = KMS_WIRE_VERSION;
	b->data[5] = (uint8_t)kind;
	b->len = KMS_WIRE_HEADER;
	return 0;
}

/* Room for need more bytes: a secret buffer never moves (its bytes would
 * be left behind in the heap). */
static int room(struct kms_wire_buf *b, size_t need)
{
	size_t cap = b->cap;
	uint8_t *grown;

	if (need <= b->cap - b->len)
		return 1;
	if (b->secret || need > b->max - b->len)
		return 0;
	while (need > cap - b->len)
		cap = cap * 2 < b->max ? cap * 2 : b->max;
	grown = realloc(b->data, cap);
	if (grown == NULL)
		return 0;
	b->data = grown;
	b->cap = cap;
	return 1;
}

void kms_wire_put(struct kms_wire_buf *b, enum kms_wire_tag tag,
		  const void *value, size_t len)
{
	if (b->failed || len > b->max || !room(b, FIELD_HEADER + len)) {
		b->failed = 1;
		return;
	}
	b->data[b->len] = (uint8_t)tag;
	put_be32(b->data + b->len + 1, (uint32_t)len);
	if (len > 0)
		memcpy(b->data + b->len + FIELD_HEADER, value, len);
	b->len += FIELD_HEADER + len;
}

void kms_wire_put_str(struct kms_wire_buf *b, enum kms_wire_tag tag,
		      const char *s)
{
	kms_wire_put(b, tag, s, strlen(s));
}

void kms_wire_put_u32(struct kms_wire_buf *b, enum kms_wire_tag tag,
		      uint32_t v)
{
	uint8_t be[4];

	put_be32(be, v);
	kms_wire_put(b, tag, be, sizeof(be));
}

int kms_wire_finish(struct kms_wire_buf *b)
{
	if (b->failed || b->data == NULL)
		return -1;
	put_be32(b->data + 8, (uint32_t)(b->len - KMS_WIRE_HEADER));
	return 0;
}

void kms_wire_free(struct kms_wire_buf *b)
{
	if (b->data == NULL)
		return;
	if (b->secret) {
		kms_secmem_free(b->data, b->cap);
	} else {
		kms_wipe(b->data, b->len);
		free(b->data);
	}
	b->data = NULL;
}

int kms_wire_header(const uint8_t h[KMS_WIRE_HEADER], size_t body_max,
		    int *kind, uint32_t *len, char *why, size_t why_size)
{
	if (memcmp(h, "KMSD", 4) != 0) {
		snprintf(why, why_size, "not a kmstored message (no \"KMSD\")");
		return -1;
	}
	if (h[4] != KMS_WIRE_VERSION) {
		snprintf(why, why_size,
			 "protocol version %u, but this end speaks version %d",
			 h[4], KMS_WIRE_VERSION);
		return -1;
	}
	if (h[6] != 0 || h[7] != 0) {
		snprintf(why, why_size, "reserved header bytes are not zero");
		return -1;
	}
	*kind = h[5];
	*len = get_be32(h + 8);
	if (*len > body_max) {
		snprintf(why, why_size, "a body of %u bytes; at most %zu are allowed",
			 *len, body_max);
		return -1;
	}
	return 0;
}

/* Walks the fields of a body. */
struct reader {
	const uint8_t *p, *end;
	unsigned seen[256 / 32]; /* tags met, for repeats */
};

/* 1 with the next field, 0 at the end, -1 if the body is cut short. */
static int next_field(struct reader *r, int *tag, const uint8_t **val,
		      size_t *len)
{
	uint32_t n;

	if (r->p == r->end)
		return 0;
	if ((size_t)(r->end - r->p) < FIELD_HEADER)
		return -1;
	n = get_be32(r->p + 1);
	if (n > (size_t)(r->end - r->p) - FIELD_HEADER)
		return -1;
	*tag = r->p[0];
	*val = r->p + FIELD_HEADER;
	*len = n;
	r->p += FIELD_HEADER + n;
	return 1;
}

static int repeated(struct reader *r, int tag)
{
	unsigned bit = 1u << (tag % 32);

	if (r->seen[tag / 32] & bit)
		return 1;
	r->seen[tag / 32] |= bit;
	return 0;
}

/* A field as a string of printable ASCII (no NUL, no control bytes). */
static int take_token(const uint8_t *v, size_t len, char *out, size_t size)
{
	if (len == 0 || len >= size)
		return -1;
	for (size_t i = 0; i < len; i++)
		if (v[i] < 0x20 || v[i] > 0x7e)
			return -1;
	memcpy(out, v, len);
	out[len] = '\0';
	return 0;
}

static kms_rc take_profile(const uint8_t *v, size_t len, char *out,
			   kms_error *err)
{
	kms_error why;

	if (len == 0 || len > KMS_PROFILE_NAME_MAX || memchr(v, '\0', len) != NULL)
		return kms_fail(err, KMS_ERR_USAGE,
				"a profile name of %zu bytes (1 to %d, no NUL)",
				len, KMS_PROFILE_NAME_MAX);
	memcpy(out, v, len);
	out[len] = '\0';
	if (kms_check_profile_name(out, &why) != KMS_OK)
		return kms_fail(err, KMS_ERR_USAGE, "%s", why.message);
	return KMS_OK;
}

static kms_rc take_key_id(const uint8_t *v, size_t len, char *out,
			  kms_error *err)
{
	if (kms_check_key_id((const char *)v, len, err) != KMS_OK)
		return KMS_ERR_USAGE;
	memcpy(out, v, len);
	out[len] = '\0';
	return KMS_OK;
}

kms_rc kms_wire_parse_request(int kind, const uint8_t *body, size_t len,
			      struct kms_wire_request *out, kms_error *err)
{
	struct reader r = { .p = body, .end = body + len };
	const uint8_t *v;
	size_t n;
	int tag, more;
	kms_rc rc;

	memset(out, 0, sizeof(*out));
	switch (kind) {
	case KMS_WIRE_PROFILES:
	case KMS_WIRE_KEY:
	case KMS_WIRE_STATUS:
	case KMS_WIRE_CHECK:
	case KMS_WIRE_RELOAD:
	case KMS_WIRE_METRICS:
		out->kind = (enum kms_wire_kind)kind;
		break;
	default:
		return kms_fail(err, KMS_ERR_USAGE, "unknown request %d", kind);
	}
	while ((more = next_field(&r, &tag, &v, &n)) == 1) {
		int wants_profile = kind == KMS_WIRE_KEY || kind == KMS_WIRE_STATUS ||
				    kind == KMS_WIRE_CHECK || kind == KMS_WIRE_PROFILES;

		if (repeated(&r, tag))
			return kms_fail(err, KMS_ERR_USAGE, "field %d given twice", tag);
		if (tag == KMS_T_PROFILE && wants_profile) {
			rc = take_profile(v, n, out->profile, err);
			out->has_profile = 1;
		} else if (tag == KMS_T_KEY_ID && kind == KMS_WIRE_KEY) {
			rc = take_key_id(v, n, out->key_id, err);
			out->has_key_id = 1;
		} else {
			return kms_fail(err, KMS_ERR_USAGE,
					"field %d is not part of request %d", tag,
					kind);
		}
		if (rc != KMS_OK)
			return rc;
	}
	if (more < 0)
		return kms_fail(err, KMS_ERR_USAGE, "a field runs past the end");
	if ((kind == KMS_WIRE_KEY || kind == KMS_WIRE_STATUS ||
	     kind == KMS_WIRE_CHECK) && !out->has_profile)
		return kms_fail(err, KMS_ERR_USAGE, "no profile named");
	return KMS_OK;
}

/* The daemon's words, shown to a user: printable ASCII only. */
static void take_message(const uint8_t *v, size_t len, char *out, size_t size)
{
	size_t n = len < size - 1 ? len : size - 1;

	for (size_t i = 0; i < n; i++)
		out[i] = v[i] >= 0x20 && v[i] <= 0x7e ? (char)v[i] : '?';
	out[n] = '\0';
}

static kms_rc bad_reply(kms_error *err, const char *what)
{
	return kms_fail(err, KMS_ERR_SYSTEM, "kmstored sent a malformed reply: %s",
			what);
}

/* The fields kms_wire_put_status puts. */
static int status_field(int tag)
{
	return tag == KMS_T_STATE || tag == KMS_T_SOURCE_KME ||
	       tag == KMS_T_TARGET_KME || tag == KMS_T_COUNTS ||
	       tag == KMS_T_POOL || tag == KMS_T_KME;
}

void kms_wire_put_error(struct kms_wire_buf *b, const kms_error *e)
{
	uint8_t code = (uint8_t)e->code;

	kms_wire_put(b, KMS_T_CODE, &code, 1);
	kms_wire_put_str(b, KMS_T_MESSAGE, e->message);
}

kms_rc kms_wire_parse_error(int kind, const uint8_t *body, size_t len,
			    kms_error *err)
{
	struct reader r = { .p = body, .end = body + len };
	int tag, more, code = -1;
	char msg[KMS_ERROR_MAX] = "";
	const uint8_t *v;
	size_t n;

	if (kind == KMS_WIRE_OK)
		return KMS_OK;
	if (kind != KMS_WIRE_ERROR)
		return bad_reply(err, "not an answer");
	while ((more = next_field(&r, &tag, &v, &n)) == 1) {
		if (tag != KMS_T_KME && repeated(&r, tag)) /* one per KME */
			return bad_reply(err, "a field given twice");
		if (tag == KMS_T_CODE && n == 1 && v[0] >= KMS_ERR_USAGE &&
		    v[0] <= KMS_ERR_SYSTEM)
			code = v[0];
		else if (tag == KMS_T_MESSAGE && n > 0)
			take_message(v, n, msg, sizeof(msg));
		else if (!status_field(tag))
			return bad_reply(err, "an error with an unknown field");
	}
	if (more < 0 || code < 0 || msg[0] == '\0')
		return bad_reply(err, "an error without its code or message");
	return kms_fail(err, (kms_rc)code, "%s", msg);
}

kms_rc kms_wire_parse_key(const uint8_t *body, size_t len,
			  struct kms_wire_key *out, kms_error *err)
{
	struct reader r = { .p = body, .end = body + len };
	const uint8_t *v;
	int tag, more;
	size_t n;

	memset(out, 0, sizeof(*out));
	while ((more = next_field(&r, &tag, &v, &n)) == 1) {
		if (repeated(&r, tag))
			return bad_reply(err, "a field given twice");
		if (tag == KMS_T_PROFILE) {
			if (take_profile(v, n, out->profile, NULL) != KMS_OK)
				return bad_reply(err, "a bad profile name");
		} else if (tag == KMS_T_KEY_ID) {
			if (take_key_id(v, n, out->key_id, NULL) != KMS_OK)
				return bad_reply(err, "a bad key ID");
		} else if (tag == KMS_T_KEY) {
			if (n < KMS_KEY_MIN || n > KMS_KEY_MAX)
				return bad_reply(err, "a key of a size out of bounds");
			out->key = v;
			out->key_len = n;
		} else {
			return bad_reply(err, "a key with an unknown field");
		}
	}
	if (more < 0 || out->profile[0] == '\0' || out->key_id[0] == '\0' ||
	    out->key == NULL)
		return bad_reply(err, "a key without its profile, ID or bytes");
	return KMS_OK;
}

static void put_be64(uint8_t *p, int64_t v)
{
	put_be32(p, (uint32_t)((uint64_t)v >> 32));
	put_be32(p + 4, (uint32_t)v);
}

static int64_t get_be64(const uint8_t *p)
{
	return (int64_t)((uint64_t)get_be32(p) << 32 | get_be32(p + 4));
}

void kms_wire_put_status(struct kms_wire_buf *b, const kms_status *st)
{
	const long counts[COUNTS] = {
		st->key_size_bits, st->stored_key_count, st->max_key_count,
		st->max_key_per_request, st->min_key_size_bits,
		st->max_key_size_bits,
	};
	uint8_t be[8 * COUNTS], kme[4 + 8 + 1 + 16 + 2 + KMS_URL_MAX + 200];

	for (size_t i = 0; i < COUNTS; i++)
		put_be64(be + 8 * i, counts[i]);
	kms_wire_put_str(b, KMS_T_STATE, st->state);
	if (st->source_kme_id[0] != '\0')
		kms_wire_put_str(b, KMS_T_SOURCE_KME, st->source_kme_id);
	if (st->target_kme_id[0] != '\0')
		kms_wire_put_str(b, KMS_T_TARGET_KME, st->target_kme_id);
	kms_wire_put(b, KMS_T_COUNTS, be, sizeof(be));
	if (st->pool_target >= 0) {
		put_be64(be, st->pool_keys);
		put_be64(be + 8, st->pool_target);
		kms_wire_put(b, KMS_T_POOL, be, 16);
	}
	for (size_t i = 0; i < st->n_kmes && i < KMS_KMES_MAX; i++) {
		const kms_kme_health *h = &st->kmes[i];
		size_t sl = strnlen(h->state, sizeof(h->state) - 1);
		size_t ul = strnlen(h->url, sizeof(h->url) - 1);
		size_t el = strnlen(h->last_error, sizeof(h->last_error) - 1), o = 0;

		put_be32(kme, (uint32_t)h->failures);
		put_be64(kme + 4, h->retry_in_ms);
		o = 12;
		kme[o++] = (uint8_t)sl;
		memcpy(kme + o, h->state, sl);
		o += sl;
		kme[o++] = (uint8_t)(ul >> 8);
		kme[o++] = (uint8_t)ul;
		memcpy(kme + o, h->url, ul);
		o += ul;
		memcpy(kme + o, h->last_error, el);
		kms_wire_put(b, KMS_T_KME, kme, o + el);
	}
}

/* One KMS_T_KME field. */
static int take_kme(const uint8_t *v, size_t n, kms_kme_health *h)
{
	size_t o = 12, sl, ul;

	if (n < 15)
		return -1;
	memset(h, 0, sizeof(*h));
	h->failures = (long)get_be32(v);
	h->retry_in_ms = (long)get_be64(v + 4);
	sl = v[o++];
	if (h->retry_in_ms < 0 || sl == 0 || sl >= sizeof(h->state) || n - o < sl + 2 ||
	    take_token(v + o, sl, h->state, sizeof(h->state)) != 0)
		return -1;
	o += sl;
	ul = (size_t)v[o] << 8 | v[o + 1];
	o += 2;
	if (ul == 0 || ul >= sizeof(h->url) || n - o < ul ||
	    take_token(v + o, ul, h->url, sizeof(h->url)) != 0)
		return -1;
	o += ul;
	if (n - o >= sizeof(h->last_error))
		return -1;
	take_message(v + o, n - o, h->last_error, sizeof(h->last_error));
	return 0;
}

kms_rc kms_wire_parse_status(const uint8_t *body, size_t len,
			     kms_status *out, kms_error *err)
{
	struct reader r = { .p = body, .end = body + len };
	long *counts[COUNTS] = {
		&out->key_size_bits, &out->stored_key_count, &out->max_key_count,
		&out->max_key_per_request, &out->min_key_size_bits,
		&out->max_key_size_bits,
	};
	const uint8_t *v;
	int tag, more;
	size_t n;

	while ((more = next_field(&r, &tag, &v, &n)) == 1) {
		if (tag == KMS_T_KME) {
			if (out->n_kmes == KMS_KMES_MAX ||
			    take_kme(v, n, &out->kmes[out->n_kmes]) != 0)
				return bad_reply(err, "a bad KME");
			out->n_kmes++;
			continue;
		}
		if (repeated(&r, tag))
			return bad_reply(err, "a field given twice");
		if (tag == KMS_T_CODE || tag == KMS_T_MESSAGE) {
			continue; /* an ERROR reply's: kms_wire_parse_error's */
		} else if (tag == KMS_T_POOL && n == 16) {
			out->pool_keys = (long)get_be64(v);
			out->pool_target = (long)get_be64(v + 8);
			if (out->pool_keys < 0 || out->pool_target < 0)
				return bad_reply(err, "a bad pool");
		} else if (tag == KMS_T_STATE) {
			if (take_token(v, n, out->state, sizeof(out->state)) != 0)
				return bad_reply(err, "a bad state");
		} else if (tag == KMS_T_SOURCE_KME || tag == KMS_T_TARGET_KME) {
			char *id = tag == KMS_T_SOURCE_KME ? out->source_kme_id :
							     out->target_kme_id;

			if (take_token(v, n, id, KMS_KEY_ID_MAX + 1) != 0)
				return bad_reply(err, "a bad KME ID");
		} else if (tag == KMS_T_COUNTS && n == 8 * COUNTS) {
			for (int i = 0; i < COUNTS; i++) {
				int64_t x = (int64_t)((uint64_t)get_be32(v + 8 * i) << 32 |
						      get_be32(v + 8 * i + 4));

				*counts[i] = x < -1 ? -1 : (long)x;
			}
		} else {
			return bad_reply(err, "a status with an unknown field");
		}
	}
	if (more < 0 || out->state[0] == '\0')
		return bad_reply(err, "a status without its state");
	return KMS_OK;
}

kms_rc kms_wire_parse_text(const uint8_t *body, size_t len, int want,
			   char **out, kms_error *err)
{
	struct reader r = { .p = body, .end = body + len };
	const uint8_t *v = NULL, *fv;
	size_t n = 0, fn;
	int tag, more;

	*out = NULL;
	while ((more = next_field(&r, &tag, &fv, &fn)) == 1) {
		if (tag != want || repeated(&r, tag))
			return bad_reply(err, "an unexpected field");
		v = fv;
		n = fn;
	}
	if (more < 0 || v == NULL || memchr(v, '\0', n) != NULL)
		return bad_reply(err, "no text, or text with a NUL byte");
	*out = malloc(n + 1);
	if (*out == NULL)
		return kms_fail(err, KMS_ERR_SYSTEM, "out of memory");
	memcpy(*out, v, n);
	(*out)[n] = '\0';
	return KMS_OK;
}

/* One "name=value" setting: a setting name, then printable text. */
static int take_setting(const uint8_t *v, size_t len, char *out, size_t size)
{
	const uint8_t *eq = memchr(v, '=', len);

	if (eq == NULL || eq == v || take_token(v, len, out, size) != 0)
		return -1;
	for (const uint8_t *c = v; c < eq; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
		      *c == '-'))
			return -1;
	return 0;
}

/* Hands a complete profile to the caller. */
static kms_rc flush(const struct kms_wire_profile *p, const char *config,
		    kms_wire_profile_fn *fn, void *ctx, kms_error *err)
{
	if (p->type[0] == '\0')
		return bad_reply(err, "a profile without its type");
	return fn(ctx, config, p, err);
}

kms_rc kms_wire_parse_profiles(const uint8_t *body, size_t len,
			       kms_wire_profile_fn *fn, void *ctx,
			       kms_error *err)
{
	struct reader r = { .p = body, .end = body + len };
	struct kms_wire_profile *p = calloc(1, sizeof(*p));
	char config[4096] = "";
	const uint8_t *v;
	int tag, more = 0, open = 0;
	kms_rc rc = KMS_OK;
	size_t n;

	if (p == NULL)
		return kms_fail(err, KMS_ERR_SYSTEM, "out of memory");
	while (rc == KMS_OK && (more = next_field(&r, &tag, &v, &n)) == 1) {
		if (tag == KMS_T_CONFIG) {
			if (config[0] != '\0' || open ||
			    take_token(v, n, config, sizeof(config)) != 0)
				rc = bad_reply(err, "a bad configuration path");
			else
				rc = fn(ctx, config, NULL, err);
			continue;
		}
		if (config[0] == '\0') {
			rc = bad_reply(err, "profiles before the configuration path");
			break;
		}
		if (tag == KMS_T_PROFILE) {
			if (open)
				rc = flush(p, config, fn, ctx, err);
			memset(p, 0, sizeof(*p));
			memset(r.seen, 0, sizeof(r.seen));
			open = 1;
			repeated(&r, KMS_T_CONFIG);
			repeated(&r, KMS_T_PROFILE);
			if (rc == KMS_OK && take_profile(v, n, p->name, NULL) != KMS_OK)
				rc = bad_reply(err, "a bad profile name");
			continue;
		}
		if (!open) {
			rc = bad_reply(err, "a field before the first profile");
		} else if (tag == KMS_T_SETTING) {
			if (p->n_settings == KMS_WIRE_SETTINGS_MAX ||
			    take_setting(v, n, p->settings[p->n_settings],
					 KMS_WIRE_SETTING_MAX + 1) != 0)
				rc = bad_reply(err, "a bad setting");
			else
				p->n_settings++;
		} else if (repeated(&r, tag)) {
			rc = bad_reply(err, "a field given twice");
		} else if (tag == KMS_T_TYPE) {
			if (take_profile(v, n, p->type, NULL) != KMS_OK)
				rc = bad_reply(err, "a bad profile type");
		} else if (tag == KMS_T_KEY_SIZE && n == 4) {
			p->key_size = get_be32(v);
			if (p->key_size > KMS_KEY_MAX)
				rc = bad_reply(err, "a key size out of bounds");
		} else {
			rc = bad_reply(err, "a profile with an unknown field");
		}
	}
	if (rc == KMS_OK && more < 0)
		rc = bad_reply(err, "a field runs past the end");
	if (rc == KMS_OK && config[0] == '\0')
		rc = bad_reply(err, "no configuration path");
	if (rc == KMS_OK && open)
		rc = flush(p, config, fn, ctx, err);
	free(p);
	return rc;
}
