/* etsi014_json.c - building and checking ETSI GS QKD 014 bodies.
 *
 * A KME's answer becomes an IKE PPK and PPK_ID, so it is checked strictly:
 * one JSON document and nothing after it, no member named twice, exactly
 * one key (or as many as asked for, with distinct IDs), a printable
 * key_ID of at most 64 bytes, canonical base64 of exactly the size asked
 * for. Extensions (key_ID_extension, key_extension, ...) are ignored. */
#include <inttypes.h>
#include <locale.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "encoding.h"
#include "error.h"
#include "etsi014_json.h"
#include "secmem.h"

#define JSON_DEPTH 16

char *kms_etsi_enc_keys_request(long number, long size_bits)
{
	json_object *o = json_object_new_object();
	char *s;

	if (o == NULL)
		return NULL;
	json_object_object_add(o, "number", json_object_new_int64(number));
	json_object_object_add(o, "size", json_object_new_int64(size_bits));
	s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return s;
}

char *kms_etsi_dec_keys_request(const char *const *key_ids, size_t n)
{
	json_object *o = json_object_new_object();
	json_object *ids = json_object_new_array();
	char *s = NULL;
	int ok = o != NULL && ids != NULL;

	for (size_t i = 0; ok && i < n; i++) {
		json_object *one = json_object_new_object();
		json_object *id = json_object_new_string(key_ids[i]);

		ok = one != NULL && id != NULL &&
		     json_object_object_add(one, "key_ID", id) == 0;
		if (!ok)
			json_object_put(id);
		ok = ok && json_object_array_add(ids, one) == 0;
		if (!ok)
			json_object_put(one);
	}
	if (ok && json_object_object_add(o, "key_IDs", ids) == 0) {
		s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN
							     | JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(o);
		return s;
	}
	json_object_put(ids);
	json_object_put(o);
	return NULL;
}

/* kmstore's own reader of a KME's answer.
 *
 * json-c's tokener frees unwiped whatever it built of a document that fails
 * half-way (a valid key container and one stray byte after it, a body cut
 * off after its key), the value of a member named twice (json-c keeps the
 * last), and the old copies of its string buffer as the buffer grows; any
 * of them may hold a key. So the answer is read here, into json-c objects
 * made one at a time: whatever was made is wiped before it is freed, on
 * every path (kms_etsi_drop), and nothing else holds a string of the answer
 * but the scratch, which is locked memory.
 *
 * It reads RFC 8259 strictly: one value, white space around it and nothing
 * else, no member named twice in an object, at most JSON_DEPTH levels, no
 * raw control byte in a string. json-c's strict tokener accepts no less
 * (fuzz_etsi_json checks that every document read here is one json-c reads
 * the same). A string is decoded into the scratch and copied from there
 * into its json-c object; a member's name waits there, at the bottom, while
 * its value is read: a decoded string is never longer than its text, so the
 * scratch of len + 1 bytes always has room. */

enum fault {
	F_NONE,
	F_EMPTY,    /* nothing but white space */
	F_EOF,      /* it ends inside a value */
	F_BYTE,     /* a byte that cannot come there */
	F_TRAILING, /* a byte after the value */
	F_CONTROL,  /* a raw control byte in a string */
	F_ESCAPE,   /* a backslash not followed by an escape */
	F_DEPTH,    /* deeper than JSON_DEPTH */
	F_TWICE,    /* a member named twice in an object */
	F_SIZE,     /* larger than the scratch can be */
	F_NOMEM,
};

struct reader {
	const char *s;
	size_t len, pos;
	char *scratch; /* secmem, len + 1 bytes */
	size_t top;    /* the scratch below holds names waiting for a value */
	enum fault fault;
	size_t at;         /* where the fault is: a byte offset */
	const char *twice; /* F_TWICE: the name, if it is one of ETSI's */
};

/* Every string of a tree, member names included, wiped in place. The names
 * are json-c's copies (strdup'ed: they are never added as constants). */
static void wipe_tree(json_object *o)
{
	struct lh_entry *e;

	switch (json_object_get_type(o)) {
	case json_type_string:
		kms_wipe((char *)json_object_get_string(o),
			 (size_t)json_object_get_string_len(o));
		break;
	case json_type_array:
		for (size_t i = 0; i < json_object_array_length(o); i++)
			wipe_tree(json_object_array_get_idx(o, i));
		break;
	case json_type_object:
		lh_foreach(json_object_get_object(o), e) {
			wipe_tree((json_object *)lh_entry_v(e));
			kms_wipe(lh_entry_k(e), strlen((const char *)lh_entry_k(e)));
		}
		break;
	default:
		break;
	}
}

void kms_etsi_drop(json_object *doc)
{
	wipe_tree(doc);
	json_object_put(doc);
}

static int fault(struct reader *r, enum fault f)
{
	r->fault = f;
	r->at = r->pos;
	return -1;
}

/* The byte at pos cannot come here: or the answer ends too early. */
static int unexpected(struct reader *r)
{
	return fault(r, r->pos < r->len ? F_BYTE : F_EOF);
}

static void skip_space(struct reader *r)
{
	while (r->pos < r->len && (r->s[r->pos] == ' ' || r->s[r->pos] == '\t' ||
				   r->s[r->pos] == '\n' || r->s[r->pos] == '\r'))
		r->pos++;
}

static int at(const struct reader *r, char c)
{
	return r->pos < r->len && r->s[r->pos] == c;
}

static int digit_at(const struct reader *r)
{
	return r->pos < r->len && r->s[r->pos] >= '0' && r->s[r->pos] <= '9';
}

/* The 4 hex digits of \uXXXX at pos (its backslash), or -1 with the
 * fault set. */
static long hex4(struct reader *r)
{
	long v = 0;

	for (size_t k = r->pos + 2; k < r->pos + 6; k++) {
		int d = k < r->len ? kms_hex_digit(r->s[k]) : -1;

		if (k >= r->len) {
			r->pos = r->len;
			return fault(r, F_EOF);
		}
		if (d < 0)
			return fault(r, F_ESCAPE);
		v = v << 4 | d;
	}
	return v;
}

static size_t put_utf8(char *out, unsigned long cp)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | cp >> 6);
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | cp >> 12);
		out[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | cp >> 18);
	out[1] = (char)(0x80 | (cp >> 12 & 0x3f));
	out[2] = (char)(0x80 | (cp >> 6 & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* \uXXXX at pos, a surrogate pair as one: the code point, U+FFFD for half
 * a pair (as json-c does), or -1. */
static long read_unicode(struct reader *r)
{
	long cp = hex4(r), lo;

	if (cp < 0)
		return -1;
	r->pos += 6;
	if (cp >= 0xdc00 && cp <= 0xdfff)
		return 0xfffd;
	if (cp < 0xd800 || cp > 0xdbff)
		return cp;
	if (!at(r, '\\') || r->pos + 1 >= r->len || r->s[r->pos + 1] != 'u')
		return 0xfffd;
	if ((lo = hex4(r)) < 0)
		return -1;
	if (lo < 0xdc00 || lo > 0xdfff)
		return 0xfffd; /* the next \u is read on its own */
	r->pos += 6;
	return 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
}

/* The string at pos (its quote) decoded into the scratch at top, with a
 * NUL after it; *n its length. */
static int read_string(struct reader *r, size_t *n)
{
	char *out = r->scratch + r->top;
	size_t o = 0;
	long cp;

	r->pos++;
	while (r->pos < r->len) {
		unsigned char c = (unsigned char)r->s[r->pos];

		if (c == '"') {
			r->pos++;
			out[o] = '\0';
			*n = o;
			return 0;
		}
		if (c < 0x20)
			return fault(r, F_CONTROL);
		if (c != '\\') {
			out[o++] = (char)c;
			r->pos++;
			continue;
		}
		if (r->len - r->pos < 2)
			break;
		c = (unsigned char)r->s[r->pos + 1];
		if (c == 'u') {
			if ((cp = read_unicode(r)) < 0)
				return -1;
			o += put_utf8(out + o, (unsigned long)cp);
			continue;
		}
		switch (c) {
		case '"':
		case '\\':
		case '/':
			out[o++] = (char)c;
			break;
		case 'b':
			out[o++] = '\b';
			break;
		case 'f':
			out[o++] = '\f';
			break;
		case 'n':
			out[o++] = '\n';
			break;
		case 'r':
			out[o++] = '\r';
			break;
		case 't':
			out[o++] = '\t';
			break;
		default:
			return fault(r, F_ESCAPE);
		}
		r->pos += 2;
	}
	r->pos = r->len;
	return fault(r, F_EOF);
}

static locale_t c_numeric;
static pthread_once_t c_numeric_once = PTHREAD_ONCE_INIT;

static void make_c_numeric(void)
{
	c_numeric = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
}

/* A number as RFC 8259 writes it: an integer becomes an int64 (a uint64
 * above INT64_MAX; out of range, the nearest), anything else a double
 * (with '.' whatever the process's locale), as json-c makes them. */
static int read_number(struct reader *r, json_object **out)
{
	size_t start = r->pos, n;
	char *text = r->scratch + r->top;
	int integer = 1;

	if (at(r, '-'))
		r->pos++;
	if (at(r, '0'))
		r->pos++;
	else if (digit_at(r))
		while (digit_at(r))
			r->pos++;
	else
		return unexpected(r);
	if (at(r, '.')) {
		integer = 0;
		r->pos++;
		if (!digit_at(r))
			return unexpected(r);
		while (digit_at(r))
			r->pos++;
	}
	if (at(r, 'e') || at(r, 'E')) {
		integer = 0;
		r->pos++;
		if (at(r, '+') || at(r, '-'))
			r->pos++;
		if (!digit_at(r))
			return unexpected(r);
		while (digit_at(r))
			r->pos++;
	}
	n = r->pos - start;
	memcpy(text, r->s + start, n);
	text[n] = '\0';
	if (!integer) {
		pthread_once(&c_numeric_once, make_c_numeric);
		if (c_numeric == (locale_t)0)
			return fault(r, F_NOMEM);
		*out = json_object_new_double(strtod_l(text, NULL, c_numeric));
	} else if (text[0] == '-') {
		*out = json_object_new_int64(strtoll(text, NULL, 10));
	} else {
		unsigned long long u = strtoull(text, NULL, 10);

		*out = u > INT64_MAX ? json_object_new_uint64(u)
				     : json_object_new_int64((int64_t)u);
	}
	return *out != NULL ? 0 : fault(r, F_NOMEM);
}

static int read_literal(struct reader *r, const char *word, json_object **out)
{
	size_t n = strlen(word);

	for (size_t i = 0; i < n; i++, r->pos++)
		if (!at(r, word[i]))
			return unexpected(r);
	if (word[0] == 'n')
		return 0; /* json-c's null is NULL */
	*out = json_object_new_boolean(word[0] == 't');
	return *out != NULL ? 0 : fault(r, F_NOMEM);
}

/* The member names of ETSI GS QKD 014's data formats: a name quoted in a
 * message is one of these, never a string from the answer. */
static const char *etsi_name(const char *name)
{
	static const char *const names[] = {
		"keys", "key_ID", "key", "key_ID_extension", "key_extension",
		"key_container_extension", "key_IDs", "key_IDs_extension",
		"message", "details", "source_KME_ID", "target_KME_ID",
		"master_SAE_ID", "slave_SAE_ID", "key_size", "stored_key_count",
		"max_key_count", "max_key_per_request", "max_key_size",
		"min_key_size", "max_SAE_ID_count", "status_extension", "number",
		"size", "additional_slave_SAE_IDs", "extension_mandatory",
		"extension_optional",
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(name, names[i]) == 0)
			return names[i];
	return NULL;
}

static int read_value(struct reader *r, int depth, json_object **out);

static int read_array(struct reader *r, int depth, json_object **out)
{
	json_object *arr = json_object_new_array(), *v;

	if (arr == NULL)
		return fault(r, F_NOMEM);
	r->pos++;
	skip_space(r);
	if (at(r, ']')) {
		r->pos++;
		*out = arr;
		return 0;
	}
	for (;;) {
		if (read_value(r, depth + 1, &v) != 0)
			break;
		if (json_object_array_add(arr, v) != 0) {
			kms_etsi_drop(v);
			fault(r, F_NOMEM);
			break;
		}
		skip_space(r);
		if (at(r, ']')) {
			r->pos++;
			*out = arr;
			return 0;
		}
		if (!at(r, ',')) {
			unexpected(r);
			break;
		}
		r->pos++;
	}
	kms_etsi_drop(arr);
	return -1;
}

static int read_object(struct reader *r, int depth, json_object **out)
{
	json_object *obj = json_object_new_object(), *v;

	if (obj == NULL)
		return fault(r, F_NOMEM);
	r->pos++;
	skip_space(r);
	if (at(r, '}')) {
		r->pos++;
		*out = obj;
		return 0;
	}
	for (;;) {
		size_t mark = r->top, name_at, n;
		const char *name = r->scratch + mark;
		int rc;

		skip_space(r);
		if (!at(r, '"')) {
			unexpected(r);
			break;
		}
		name_at = r->pos;
		if (read_string(r, &n) != 0)
			break;
		/* json-c's names end at a NUL, as here. */
		if (json_object_object_get_ex(obj, name, NULL)) {
			r->fault = F_TWICE;
			r->at = name_at;
			r->twice = etsi_name(name);
			break;
		}
		skip_space(r);
		if (!at(r, ':')) {
			unexpected(r);
			break;
		}
		r->pos++;
		r->top = mark + n + 1;
		rc = read_value(r, depth + 1, &v);
		r->top = mark;
		if (rc != 0)
			break;
		if (json_object_object_add_ex(obj, name, v,
					      JSON_C_OBJECT_ADD_KEY_IS_NEW) != 0) {
			kms_etsi_drop(v);
			fault(r, F_NOMEM);
			break;
		}
		skip_space(r);
		if (at(r, '}')) {
			r->pos++;
			*out = obj;
			return 0;
		}
		if (!at(r, ',')) {
			unexpected(r);
			break;
		}
		r->pos++;
	}
	kms_etsi_drop(obj);
	return -1;
}

/* One value at pos (after white space), at nesting depth (0: the
 * answer): *out, NULL for null; on an error nothing is left made. */
static int read_value(struct reader *r, int depth, json_object **out)
{
	size_t n;

	*out = NULL;
	skip_space(r);
	if (r->pos >= r->len)
		return fault(r, F_EOF);
	if (depth >= JSON_DEPTH)
		return fault(r, F_DEPTH);
	switch (r->s[r->pos]) {
	case '{':
		return read_object(r, depth, out);
	case '[':
		return read_array(r, depth, out);
	case '"':
		if (read_string(r, &n) != 0)
			return -1;
		*out = json_object_new_string_len(r->scratch + r->top, (int)n);
		return *out != NULL ? 0 : fault(r, F_NOMEM);
	case 't':
		return read_literal(r, "true", out);
	case 'f':
		return read_literal(r, "false", out);
	case 'n':
		return read_literal(r, "null", out);
	default:
		return read_number(r, out);
	}
}

static int read_doc(struct reader *r, const char *body, size_t len,
		    json_object **doc)
{
	int rc;

	memset(r, 0, sizeof(*r));
	r->s = body;
	r->len = len;
	*doc = NULL;
	if (len >= KMS_SECMEM_MAX)
		return fault(r, F_SIZE);
	skip_space(r);
	if (r->pos == len)
		return fault(r, F_EMPTY);
	r->scratch = kms_secmem_alloc(len + 1);
	if (r->scratch == NULL)
		return fault(r, F_NOMEM);
	rc = read_value(r, 0, doc);
	if (rc == 0) {
		skip_space(r);
		if (r->pos < len) {
			kms_etsi_drop(*doc);
			*doc = NULL;
			rc = fault(r, F_TRAILING);
		}
	}
	kms_secmem_free(r->scratch, len + 1);
	r->scratch = NULL;
	return rc;
}

/* What is wrong with the answer, in words that quote none of it. */
static void describe(const struct reader *r, char *out, size_t size)
{
	unsigned char c = r->at < r->len ? (unsigned char)r->s[r->at] : 0;

	switch (r->fault) {
	case F_EMPTY:
		snprintf(out, size, "it is empty");
		break;
	case F_EOF:
		snprintf(out, size, "it ends too early, after %zu bytes", r->len);
		break;
	case F_BYTE:
		snprintf(out, size, "unexpected byte 0x%02x at offset %zu", c, r->at);
		break;
	case F_TRAILING:
		snprintf(out, size, "unexpected byte 0x%02x at offset %zu, after "
			 "the document", c, r->at);
		break;
	case F_CONTROL:
		snprintf(out, size, "control byte 0x%02x in a string at offset %zu",
			 c, r->at);
		break;
	case F_ESCAPE:
		snprintf(out, size, "bad escape in a string at offset %zu", r->at);
		break;
	case F_DEPTH:
		snprintf(out, size, "nested deeper than %d levels at offset %zu",
			 JSON_DEPTH, r->at);
		break;
	case F_TWICE:
		if (r->twice != NULL)
			snprintf(out, size, "member \"%s\" twice in one object, at "
				 "offset %zu", r->twice, r->at);
		else
			snprintf(out, size, "a member name twice in one object, at "
				 "offset %zu", r->at);
		break;
	case F_SIZE:
		snprintf(out, size, "larger than %d bytes", KMS_SECMEM_MAX - 1);
		break;
	default:
		snprintf(out, size, "out of memory");
		break;
	}
}

kms_rc kms_etsi_read(const char *body, size_t len, json_object **doc,
		     kms_error *err)
{
	struct reader r;
	char why[96];

	if (read_doc(&r, body, len, doc) == 0)
		return KMS_OK;
	describe(&r, why, sizeof(why));
	if (r.fault == F_NOMEM)
		return kms_fail(err, KMS_ERR_SYSTEM, "out of memory");
	if (r.fault == F_TWICE || r.fault == F_SIZE)
		return kms_fail(err, KMS_ERR_KME, "the KME's answer %s %s",
				r.fault == F_TWICE ? "has" : "is", why);
	return kms_fail(err, KMS_ERR_KME, "the KME's answer is not valid JSON (%s)",
			why);
}

/* The key text inside json-c is wiped as soon as it is decoded (and the
 * whole answer again when it is dropped). */
static void wipe_string(json_object *s)
{
	kms_wipe((char *)json_object_get_string(s),
		 (size_t)json_object_get_string_len(s));
}

static int is_uuid(const char *w, size_t n);

/* RFC 9562: a UUID's hex digits are case insensitive on input, and a KME
 * that stores key_IDs as UUIDs may write one back in another case than
 * its peer KME made it (or than the peer SAE sent it in IKE). Any other
 * key_ID is an opaque string, compared byte for byte. */
int kms_etsi_same_key_id(const char *a, const char *b)
{
	size_t n = strlen(a);

	if (strcmp(a, b) == 0)
		return 1;
	return n == strlen(b) && is_uuid(a, n) && is_uuid(b, n) &&
	       strcasecmp(a, b) == 0;
}

/* Which of RFC 4648's alphabets the key's text is in, for a message that
 * tells the vendor what its KME sends: B64_STD ('+', '/' or neither),
 * B64_URL ('-' or '_', and no '+' or '/'), or B64_OTHER (anything else, or
 * both). Padding ('=') is counted in *pad, wherever it is. Says nothing of
 * the key but its alphabet. */
enum b64_alphabet { B64_STD, B64_URL, B64_OTHER };

static enum b64_alphabet alphabet_of(const char *t, size_t n, size_t *pad)
{
	int std = 0, url = 0, other = 0;

	*pad = 0;
	for (size_t i = 0; i < n; i++) {
		char c = t[i];

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9'))
			continue;
		std |= c == '+' || c == '/';
		url |= c == '-' || c == '_';
		*pad += c == '=';
		other |= c != '+' && c != '/' && c != '-' && c != '_' && c != '=';
	}
	if (other || (std && url))
		return B64_OTHER;
	return url ? B64_URL : B64_STD;
}

/* A key of key_len bytes whose text is not base64 of that length: what
 * it is, if it is that key in unpadded base64 or in base64url. */
static kms_rc bad_key_text(const char *sid, const char *t, size_t n,
			   size_t key_len, kms_error *err)
{
	size_t pad, padded = (key_len + 2) / 3 * 4;
	enum b64_alphabet a = alphabet_of(t, n, &pad);
	const char *name = a == B64_URL ? "base64url" : "base64";

	if (a != B64_OTHER && pad == 0 && n != padded &&
	    n == (key_len * 4 + 2) / 3)
		return kms_fail(err, KMS_ERR_KME,
				"the KME's key '%s' is unpadded %s (%zu characters, "
				"no '='%s): ETSI GS QKD 014 asks for base64 (RFC "
				"4648 section 4), %zu characters for %zu bytes",
				sid, name, n,
				a == B64_URL ? "; '-' or '_', the URL-safe alphabet"
					     : "", padded, key_len);
	if (a == B64_URL && n == padded)
		return kms_fail(err, KMS_ERR_KME,
				"the KME's key '%s' is base64url (the URL-safe "
				"alphabet: '-' or '_'): ETSI GS QKD 014 asks for "
				"base64 (RFC 4648 section 4: '+' and '/')", sid);
	return KMS_OK;
}

static kms_rc take_key(json_object *entry, const char *want_id,
		       size_t key_len, char *id, uint8_t *key, kms_error *err)
{
	json_object *jid, *jkey;
	const char *sid, *skey;
	size_t id_len, text_len, where;
	kms_error why;

	if (!json_object_is_type(entry, json_type_object) ||
	    !json_object_object_get_ex(entry, "key_ID", &jid) ||
	    !json_object_is_type(jid, json_type_string))
		return kms_fail(err, KMS_ERR_KME,
				"the KME's key has no key_ID string");
	sid = json_object_get_string(jid);
	id_len = (size_t)json_object_get_string_len(jid);
	if (strlen(sid) != id_len || kms_check_key_id(sid, id_len, &why) != KMS_OK)
		return kms_fail(err, KMS_ERR_KME, "the KME's key_ID is unusable: %s",
				strlen(sid) != id_len ? "it holds a NUL byte"
						      : why.message);
	if (want_id != NULL && !kms_etsi_same_key_id(sid, want_id))
		return kms_fail(err, KMS_ERR_KME,
				"the KME answered with key_ID '%s', not the '%s' "
				"asked for", sid, want_id);
	if (!json_object_object_get_ex(entry, "key", &jkey) ||
	    !json_object_is_type(jkey, json_type_string))
		return kms_fail(err, KMS_ERR_KME,
				"the KME's key '%s' has no key string", sid);
	skey = json_object_get_string(jkey);
	text_len = (size_t)json_object_get_string_len(jkey);
	/* A refused text is looked at again, for a message that names the
	 * variant (unpadded, base64url); a good one is read once. */
	if (kms_base64_decoded_len(skey, text_len) != key_len) {
		if (bad_key_text(sid, skey, text_len, key_len, err) == KMS_OK)
			kms_fail(err, KMS_ERR_KME, "the KME's key '%s' is not %zu "
				 "bytes of base64 (%zu characters)", sid, key_len,
				 text_len);
		wipe_string(jkey);
		return KMS_ERR_KME;
	}
	if (kms_base64_decode(skey, text_len, key, &where) != 0) {
		kms_wipe(key, key_len);
		if (bad_key_text(sid, skey, text_len, key_len, err) == KMS_OK)
			kms_fail(err, KMS_ERR_KME, "the KME's key '%s' is not valid "
				 "base64 (at character %zu)", sid, where + 1);
		wipe_string(jkey);
		return KMS_ERR_KME;
	}
	wipe_string(jkey);
	/* The ID asked for, as asked: the PPK_ID both peers use. */
	if (want_id != NULL)
		memcpy(id, want_id, strlen(want_id) + 1);
	else
		memcpy(id, sid, id_len + 1);
	return KMS_OK;
}

/* Keys of one container must have distinct IDs: a KME that repeats one
 * would hand out the same PPK twice. */
static kms_rc check_distinct(char (*ids)[KMS_KEY_ID_MAX + 1], size_t n,
			     kms_error *err)
{
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < i; j++)
			if (kms_etsi_same_key_id(ids[i], ids[j]))
				return kms_fail(err, KMS_ERR_KME,
						"the KME sent key_ID '%s' twice",
						ids[i]);
	return KMS_OK;
}

static kms_rc parse_keys(const char *body, size_t len, const char *want_id,
			 size_t max, size_t key_len,
			 char (*ids)[KMS_KEY_ID_MAX + 1], uint8_t *keys,
			 size_t *n, kms_error *err)
{
	json_object *doc, *arr;
	size_t got = 0;
	kms_rc rc;

	*n = 0;
	if ((rc = kms_etsi_read(body, len, &doc, err)) != KMS_OK)
		return rc;
	if (!json_object_is_type(doc, json_type_object) ||
	    !json_object_object_get_ex(doc, "keys", &arr) ||
	    !json_object_is_type(arr, json_type_array))
		rc = kms_fail(err, KMS_ERR_KME,
			      "the KME's answer is not a key container "
			      "(no \"keys\" array)");
	else if (json_object_array_length(arr) < 1 ||
		 json_object_array_length(arr) > max)
		rc = kms_fail(err, KMS_ERR_KME,
			      "the KME sent %zu keys; %s%zu %s asked for",
			      json_object_array_length(arr), max > 1 ? "1 to " : "",
			      max, max > 1 ? "were" : "was");
	else
		for (rc = KMS_OK; rc == KMS_OK && got < json_object_array_length(arr);
		     got++)
			rc = take_key(json_object_array_get_idx(arr, got), want_id,
				      key_len, ids[got], keys + got * key_len, err);
	if (rc == KMS_OK)
		rc = check_distinct(ids, got, err);
	if (rc == KMS_OK)
		*n = got;
	else
		kms_wipe(keys, max * key_len);
	/* Every key of the answer, taken or not, and every other string. */
	kms_etsi_drop(doc);
	return rc;
}

kms_rc kms_etsi_parse_key_batch(const char *body, size_t len, size_t max,
				size_t key_len, char (*ids)[KMS_KEY_ID_MAX + 1],
				uint8_t *keys, size_t *n, kms_error *err)
{
	return parse_keys(body, len, NULL, max, key_len, ids, keys, n, err);
}

kms_rc kms_etsi_parse_key_container(const char *body, size_t len,
				    const char *want_id, size_t key_len,
				    char *id, uint8_t *key, kms_error *err)
{
	char ids[1][KMS_KEY_ID_MAX + 1];
	size_t n;
	kms_rc rc;

	rc = parse_keys(body, len, want_id, 1, key_len, ids, key, &n, err);
	if (rc == KMS_OK)
		memcpy(id, ids[0], sizeof(ids[0]));
	return rc;
}

static void copy_id(json_object *doc, const char *name, char *out, size_t size)
{
	json_object *v;
	const char *s;

	if (!json_object_object_get_ex(doc, name, &v) ||
	    !json_object_is_type(v, json_type_string))
		return;
	s = json_object_get_string(v);
	if (kms_check_key_id(s, strlen(s), NULL) == KMS_OK && strlen(s) < size)
		strcpy(out, s);
}

static void copy_count(json_object *doc, const char *name, long *out)
{
	json_object *v;

	if (json_object_object_get_ex(doc, name, &v) &&
	    json_object_is_type(v, json_type_int) && json_object_get_int64(v) >= 0)
		*out = (long)json_object_get_int64(v);
}

kms_rc kms_etsi_parse_status(const char *body, size_t len, kms_status *st,
			     kms_error *err)
{
	json_object *doc;
	kms_rc rc;

	if ((rc = kms_etsi_read(body, len, &doc, err)) != KMS_OK)
		return rc;
	if (!json_object_is_type(doc, json_type_object)) {
		kms_etsi_drop(doc);
		return kms_fail(err, KMS_ERR_KME,
				"the KME's status is not a JSON object");
	}
	copy_id(doc, "source_KME_ID", st->source_kme_id, sizeof(st->source_kme_id));
	copy_id(doc, "target_KME_ID", st->target_kme_id, sizeof(st->target_kme_id));
	copy_count(doc, "key_size", &st->key_size_bits);
	copy_count(doc, "stored_key_count", &st->stored_key_count);
	copy_count(doc, "max_key_count", &st->max_key_count);
	copy_count(doc, "max_key_per_request", &st->max_key_per_request);
	copy_count(doc, "min_key_size", &st->min_key_size_bits);
	copy_count(doc, "max_key_size", &st->max_key_size_bits);
	kms_etsi_drop(doc);
	return KMS_OK;
}

/* What of an error object's text is shown. A KME may still put a key into
 * an ETSI error object, under a name kmstore does not know
 * ({"details":[{"k":"..."}]}), as a name, or in the message; so every text
 * of it is shown word by word, and what could hold 16 bytes (the smallest
 * key kmstore takes) in the forms a KME writes bytes in is not:
 *   - a word of HIDE_CHARS base64 characters or more (RFC 4648's two
 *     alphabets and padding, so hex too), over line breaks inside it (base64
 *     wrapped at 64 or 76 characters), unless it is a UUID: the key_ID most
 *     KMEs make, and a key ID travels in IKE anyway;
 *   - numbers in a row, each after at most 2 other characters, of
 *     HIDE_DIGITS digits or more together: bytes written "a1:b2:...",
 *     "[161, 178, ...]" or "\xa1\xb2...".
 * Each becomes "<N characters, not shown>". Messages, member names, short
 * IDs and numbers stay. What is hidden is judged whole before any of it is
 * copied, so a long word is not shown by the part of it that fits. */
#define HIDE_CHARS 22  /* 16 bytes of base64 without padding */
#define HIDE_DIGITS 32 /* 16 bytes of hex; of decimal, about 40 digits */

static int b64_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '+' || c == '/' || c == '-' ||
	       c == '_' || c == '=';
}

/* The end of the word at i (a base64 character): the run of them, on over
 * a line break ("\n", "\r\n" or "\r") between two of them. */
static size_t word_end(const char *s, size_t len, size_t i)
{
	size_t start = i, next;

	for (;;) {
		/* "=" only at the end, as padding: "key_ID=<UUID>" is two */
		while (i < len && b64_char(s[i]) &&
		       (i == start || s[i - 1] != '=' || s[i] == '='))
			i++;
		next = i;
		if (next < len && s[next] == '\r')
			next++;
		if (next < len && s[next] == '\n')
			next++;
		if (next == i || next == len || !b64_char(s[next]))
			return i;
		i = next;
	}
}

static int is_uuid(const char *w, size_t n)
{
	if (n != 36)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (i == 8 || i == 13 || i == 18 || i == 23 ? w[i] != '-'
							     : kms_hex_digit(w[i]) < 0)
			return 0;
	return 1;
}

/* The digits of a word that is a number, or -1: a sign, "0x" or "x" (of
 * "\x"), then hex digits (decimal ones are among them). */
static long number_digits(const char *w, size_t n)
{
	size_t i = 0;

	if (i < n && (w[i] == '-' || w[i] == '+'))
		i++;
	if (n - i > 2 && w[i] == '0' && (w[i + 1] == 'x' || w[i + 1] == 'X'))
		i += 2;
	else if (n - i > 1 && (w[i] == 'x' || w[i] == 'X'))
		i++;
	if (i == n)
		return -1;
	for (size_t k = i; k < n; k++)
		if (kms_hex_digit(w[k]) < 0)
			return -1;
	return (long)(n - i);
}

/* The end of the numbers in a row from i (i if the word there is none),
 * and in *digits how many digits they have. */
static size_t numbers_end(const char *s, size_t len, size_t i, size_t *digits)
{
	size_t end = i, w;
	long d;

	*digits = 0;
	while (i < len && b64_char(s[i]) &&
	       (d = number_digits(s + i, (w = word_end(s, len, i)) - i)) >= 0) {
		*digits += (size_t)d;
		end = i = w;
		while (i < len && i < end + 2 && !b64_char(s[i]))
			i++;
	}
	return end;
}

/* How many characters from i (a base64 character) are not shown: the
 * numbers or the word there, or 0. */
static size_t hidden_len(const char *s, size_t len, size_t i)
{
	size_t digits, end = numbers_end(s, len, i, &digits);

	if (digits >= HIDE_DIGITS)
		return end - i;
	end = word_end(s, len, i);
	return end - i >= HIDE_CHARS && !is_uuid(s + i, end - i) ? end - i : 0;
}

/* One byte into out at *o: printable ASCII as it is, a run of anything
 * else one space, none at the start. */
static void put(char *out, size_t size, size_t *o, char c)
{
	if (*o + 1 >= size)
		return;
	if (c > 0x20 && c < 0x7f)
		out[(*o)++] = c;
	else if (*o > 0 && out[*o - 1] != ' ')
		out[(*o)++] = ' ';
}

/* Appends s to out cleaned (put) and without what could be a key (above);
 * out holds at most size - 1 bytes (the caller trims a space at the end).
 * The whole quoted text passes here at once (struct quote), so that a key
 * spread over several values ("details":[240, 241, ...]) is seen whole. */
static void append(char *out, size_t size, const char *s, size_t len)
{
	size_t o = strlen(out), i = 0, n;
	char note[48];

	while (i < len && o + 1 < size) {
		if (!b64_char(s[i])) {
			put(out, size, &o, s[i++]);
		} else if ((n = hidden_len(s, len, i)) > 0) {
			snprintf(note, sizeof(note), "<%zu characters, not shown>", n);
			for (const char *c = note; *c != '\0'; c++)
				put(out, size, &o, *c);
			i += n;
		} else {
			for (n = word_end(s, len, i); i < n; i++)
				put(out, size, &o, s[i]);
		}
	}
	out[o] = '\0';
}

/* The text to quote, as the error object has it, before append() shows
 * it: in locked memory (it may hold a key), wiped after. */
#define QUOTE_MAX 4096

struct quote {
	char *buf;
	size_t len;
	int cut; /* more than QUOTE_MAX: the last word is not whole */
};

static void add(struct quote *q, const char *s, size_t len)
{
	size_t room = QUOTE_MAX - q->len;

	if (q->buf == NULL || q->cut)
		return;
	if (len > room) {
		len = room;
		q->cut = 1;
	}
	memcpy(q->buf + q->len, s, len);
	q->len += len;
}

static void append_str(struct quote *q, const char *s)
{
	add(q, s, strlen(s));
}

/* A value of "details" as words: strings and numbers as they are; num
 * holds the text of a value that is not a string. */
static const char *value_text(json_object *v, char num[32], size_t *len)
{
	switch (json_object_get_type(v)) {
	case json_type_string:
		*len = (size_t)json_object_get_string_len(v);
		return json_object_get_string(v);
	case json_type_int:
		if (json_object_get_int64(v) < 0)
			snprintf(num, 32, "%" PRId64, json_object_get_int64(v));
		else
			snprintf(num, 32, "%" PRIu64, json_object_get_uint64(v));
		break;
	case json_type_double:
		snprintf(num, 32, "%g", json_object_get_double(v));
		break;
	case json_type_boolean:
		snprintf(num, 32, "%s", json_object_get_boolean(v) ? "true" : "false");
		break;
	case json_type_null:
		snprintf(num, 32, "null");
		break;
	default:
		snprintf(num, 32, "...");
		break;
	}
	*len = strlen(num);
	return num;
}

/* Whether append() would hide any of s. */
static int hides_any(const char *s, size_t len)
{
	for (size_t i = 0; i < len;) {
		if (!b64_char(s[i]))
			i++;
		else if (hidden_len(s, len, i) > 0)
			return 1;
		else
			i = word_end(s, len, i);
	}
	return 0;
}

/* The numbers of a value of "details" into values, in a row with the
 * others': each word that is a number (and not hidden in the value
 * already), then ", ". So a key spread one byte per value is a run of
 * numbers there however each byte is dressed ("\xf0", "[240]", "byte
 * 240"); a value with no number ends the run. */
static void add_numbers(struct quote *values, const char *s, size_t len)
{
	size_t i = 0, n;
	int any = 0;

	while (i < len) {
		if (!b64_char(s[i])) {
			i++;
		} else if ((n = hidden_len(s, len, i)) > 0) {
			i += n;
		} else {
			n = word_end(s, len, i);
			if (number_digits(s + i, n - i) >= 0) {
				if (any++)
					append_str(values, " ");
				add(values, s + i, n - i);
			}
			i = n;
		}
	}
	append_str(values, any ? ", " : " ... ");
}

/* A value of "details" into the quote, and its numbers into values. */
static void append_value(struct quote *q, struct quote *values, json_object *v)
{
	char num[32];
	size_t len;
	const char *s = value_text(v, num, &len);

	add(q, s, len);
	add_numbers(values, s, len);
}

/* ETSI GS QKD 014's error object: a "message" and an array of "details",
 * each an object. A key spread one byte per member ({"b0":240,"b1":241,
 * ...}) or per object ([{"b":240},{"b":241},...]) has the names between
 * its bytes, which break the numbers append() would hide; so the numbers
 * of the values are also judged alone, in a row (add_numbers), and no
 * value is shown if they hold one. The cost: details with many long
 * numbers (timestamps, IDs) are not shown either. */
static void append_details(struct quote *q, json_object *details)
{
	struct quote values = { .buf = kms_secmem_alloc(QUOTE_MAX) };
	size_t start = q->len, n = 0;
	int cut = q->cut;
	struct lh_entry *e;
	char note[64];

	if (!json_object_is_type(details, json_type_array) ||
	    json_object_array_length(details) == 0)
		goto out;
	append_str(q, " (details: ");
	for (size_t i = 0; i < json_object_array_length(details); i++) {
		json_object *d = json_object_array_get_idx(details, i);

		if (i > 0)
			append_str(q, "; ");
		if (!json_object_is_type(d, json_type_object)) {
			append_value(q, &values, d);
			n++;
			continue;
		}
		lh_foreach(json_object_get_object(d), e) {
			if (e != lh_table_head(json_object_get_object(d)))
				append_str(q, ", ");
			append_str(q, (const char *)lh_entry_k(e));
			append_str(q, "=");
			append_value(q, &values, (json_object *)lh_entry_v(e));
			n++;
		}
	}
	append_str(q, ")");
	if (values.buf == NULL || hides_any(values.buf, values.len)) {
		q->len = start;
		q->cut = cut;
		snprintf(note, sizeof(note), " (details: <%zu values, not shown>)", n);
		append_str(q, note);
	}
out:
	kms_secmem_free(values.buf, QUOTE_MAX);
}

/* The last word of a text cut at QUOTE_MAX, if shorter than a word that
 * is hidden: the rest of it is not there to judge it by. */
static void drop_cut_word(struct quote *q)
{
	size_t n = q->len;

	while (n > 0 && b64_char(q->buf[n - 1]))
		n--;
	if (q->len - n < HIDE_CHARS)
		q->len = n;
}

/* The error object's message and details into out, shown by append(). */
static void quote_error(json_object *msg, json_object *doc, char *out,
			size_t size)
{
	struct quote q = { .buf = kms_secmem_alloc(QUOTE_MAX) };
	json_object *details;

	if (q.buf == NULL)
		return;
	add(&q, json_object_get_string(msg), (size_t)json_object_get_string_len(msg));
	if (json_object_object_get_ex(doc, "details", &details))
		append_details(&q, details);
	if (q.cut) /* its last word cut short may be a key's first part */
		drop_cut_word(&q);
	append(out, size, q.buf, q.len);
	kms_secmem_free(q.buf, QUOTE_MAX);
}

/* A key, or a text that quotes one ("key" or "keys" as a member's name, or
 * in quotes in a string: a key container wrapped in a message). */
static int holds_key(json_object *o)
{
	struct lh_entry *e;
	const char *s;
	size_t len;

	switch (json_object_get_type(o)) {
	case json_type_string:
		s = json_object_get_string(o);
		len = (size_t)json_object_get_string_len(o);
		return memmem(s, len, "\"key\"", 5) != NULL ||
		       memmem(s, len, "\"keys\"", 6) != NULL;
	case json_type_array:
		for (size_t i = 0; i < json_object_array_length(o); i++)
			if (holds_key(json_object_array_get_idx(o, i)))
				return 1;
		return 0;
	case json_type_object:
		lh_foreach(json_object_get_object(o), e) {
			if (strcmp((const char *)lh_entry_k(e), "key") == 0 ||
			    strcmp((const char *)lh_entry_k(e), "keys") == 0 ||
			    holds_key((json_object *)lh_entry_v(e)))
				return 1;
		}
		return 0;
	default:
		return 0;
	}
}

#define NOT_ETSI "(the body is not an ETSI error message: "

int kms_etsi_error_text(const char *body, size_t len, char *out, size_t size)
{
	struct reader r;
	json_object *doc, *msg;
	size_t start = 0, o;
	char why[96];
	int quoted = 0;

	if (size == 0)
		return 0;
	out[0] = '\0';
	while (start < len && (body[start] == ' ' || body[start] == '\t' ||
			       body[start] == '\n' || body[start] == '\r'))
		start++;
	if (start == len)
		return 0; /* no body: the status says it all */
	if (read_doc(&r, body, len, &doc) != 0) {
		describe(&r, why, sizeof(why));
		if (body[start] == '<')
			snprintf(out, size, NOT_ETSI "%zu bytes of HTML or XML; not "
				 "quoted)", len);
		else
			snprintf(out, size, NOT_ETSI "%s%s; not quoted)",
				 r.fault == F_TWICE ? "it has " : "not valid JSON, ",
				 why);
		return 0;
	}
	if (holds_key(doc)) {
		snprintf(out, size, NOT_ETSI "it holds a key; not quoted)");
	} else if (!json_object_is_type(doc, json_type_object) ||
		   !json_object_object_get_ex(doc, "message", &msg) ||
		   !json_object_is_type(msg, json_type_string)) {
		snprintf(out, size, NOT_ETSI "JSON without a \"message\" string; "
			 "not quoted)");
	} else {
		quote_error(msg, doc, out, size);
		for (o = strlen(out); o > 0 && out[o - 1] == ' '; o--)
			out[o - 1] = '\0';
		quoted = out[0] != '\0';
	}
	kms_etsi_drop(doc);
	return quoted;
}
