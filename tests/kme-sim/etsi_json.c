/*
 * kme-sim: ETSI GS QKD 014 V1.1.1 JSON bodies (see etsi_json.h).
 */
#include "etsi_json.h"

#include <json-c/json.h>
#include <limits.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Deep enough for every ETSI 014 body; deeper input is refused. */
#define JSON_MAX_DEPTH 16

__attribute__((format(printf, 4, 5)))
static int bad_request(struct kme_result *r, const char *dname,
		       const char *dval, const char *fmt, ...)
{
	va_list ap;

	r->status = 400;
	va_start(ap, fmt);
	vsnprintf(r->message, sizeof(r->message), fmt, ap);
	va_end(ap);
	snprintf(r->detail_name, sizeof(r->detail_name), "%s", dname);
	snprintf(r->detail_value, sizeof(r->detail_value), "%s", dval);
	return -1;
}

/* Serialise and release `obj`; the string must outlive json-c's buffer. */
static char *finish(struct json_object *obj)
{
	const char *s;
	char *copy = NULL;

	if (obj == NULL)
		return NULL;
	s = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN |
					   JSON_C_TO_STRING_NOSLASHESCAPE);
	if (s != NULL)
		copy = strdup(s);
	json_object_put(obj);
	return copy;
}

static void add_str(struct json_object *o, const char *k, const char *v)
{
	json_object_object_add(o, k, json_object_new_string(v));
}

static void add_int(struct json_object *o, const char *k, int64_t v)
{
	json_object_object_add(o, k, json_object_new_int64(v));
}

char *etsi_status_json(const struct kme_status *s)
{
	struct json_object *o = json_object_new_object();

	if (o == NULL)
		return NULL;
	add_str(o, "source_KME_ID", s->source_kme);
	add_str(o, "target_KME_ID", s->target_kme);
	add_str(o, "master_SAE_ID", s->master_sae);
	add_str(o, "slave_SAE_ID", s->slave_sae);
	add_int(o, "key_size", s->key_size);
	add_int(o, "stored_key_count", (int64_t)s->stored_key_count);
	add_int(o, "max_key_count", s->max_key_count);
	add_int(o, "max_key_per_request", s->max_key_per_request);
	add_int(o, "max_key_size", s->max_key_size);
	add_int(o, "min_key_size", s->min_key_size);
	/* No multicast keys: additional_slave_SAE_IDs are not supported. */
	add_int(o, "max_SAE_ID_count", 0);
	return finish(o);
}

char *etsi_ids_json(char *const *ids, size_t n)
{
	struct json_object *arr = json_object_new_array();

	for (size_t i = 0; arr != NULL && i < n; i++)
		json_object_array_add(arr, json_object_new_string(ids[i]));
	return finish(arr);
}

char *etsi_base64(const unsigned char *in, size_t len)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *out = malloc((len + 2) / 3 * 4 + 1), *p = out;

	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;

		if (i + 1 < len)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < len)
			v |= in[i + 2];
		*p++ = tab[(v >> 18) & 63];
		*p++ = tab[(v >> 12) & 63];
		*p++ = i + 1 < len ? tab[(v >> 6) & 63] : '=';
		*p++ = i + 2 < len ? tab[v & 63] : '=';
	}
	*p = '\0';
	return out;
}

/* json-c keeps its own copies of the base64 strings; they are test keys
 * and the process is a simulator, so only our copies are wiped. */
static struct json_object *key_object(const struct kme_key *k)
{
	struct json_object *o = json_object_new_object();
	char *b64 = etsi_base64(k->bytes, k->len);

	if (o == NULL || b64 == NULL) {
		json_object_put(o);
		free(b64);
		return NULL;
	}
	add_str(o, "key_ID", k->id);
	add_str(o, "key", b64);
	memset(b64, 0, strlen(b64));
	free(b64);
	return o;
}

char *etsi_keys_json(const struct kme_keys *keys)
{
	struct json_object *o = json_object_new_object();
	struct json_object *arr = json_object_new_array();

	if (o == NULL || arr == NULL) {
		json_object_put(o);
		json_object_put(arr);
		return NULL;
	}
	json_object_object_add(o, "keys", arr);
	for (size_t i = 0; i < keys->n; i++) {
		struct json_object *k = key_object(&keys->v[i]);

		if (k == NULL) {
			json_object_put(o);
			return NULL;
		}
		json_object_array_add(arr, k);
	}
	return finish(o);
}

char *etsi_error_json(const char *message, const char *detail_name,
		      const char *detail_value, const char *kme_id)
{
	struct json_object *o = json_object_new_object();
	struct json_object *details = json_object_new_array();
	struct json_object *d = json_object_new_object();

	if (o == NULL || details == NULL || d == NULL) {
		json_object_put(o);
		json_object_put(details);
		json_object_put(d);
		return NULL;
	}
	add_str(o, "message", message);
	if (detail_name != NULL && detail_name[0] != '\0' &&
	    detail_value != NULL && detail_value[0] != '\0')
		add_str(d, detail_name, detail_value);
	add_str(d, "KME_ID", kme_id);
	json_object_array_add(details, d);
	json_object_object_add(o, "details", details);
	return finish(o);
}

static bool only_space(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
			return false;
	return true;
}

/* A JSON object from the whole body, or NULL with a 400 in res. */
static struct json_object *parse_object(const char *body, size_t len,
					struct kme_result *res)
{
	struct json_tokener *tok = json_tokener_new_ex(JSON_MAX_DEPTH);
	struct json_object *obj = NULL;
	enum json_tokener_error err;

	if (tok == NULL) {
		bad_request(res, "", "", "out of memory");
		return NULL;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT |
				    JSON_TOKENER_VALIDATE_UTF8);
	obj = json_tokener_parse_ex(tok, body, (int)len);
	err = json_tokener_get_error(tok);
	if (obj == NULL || err != json_tokener_success ||
	    !only_space(body + json_tokener_get_parse_end(tok),
			len - json_tokener_get_parse_end(tok))) {
		bad_request(res, "body", "", "request body is not valid JSON: %s",
			    err == json_tokener_success ? "trailing data"
			    : err == json_tokener_continue ? "unexpected end"
			    : json_tokener_error_desc(err));
		json_object_put(obj);
		obj = NULL;
	} else if (!json_object_is_type(obj, json_type_object)) {
		bad_request(res, "body", "", "request body must be a JSON object");
		json_object_put(obj);
		obj = NULL;
	}
	json_tokener_free(tok);
	return obj;
}

/* A member's value as the error details show it. json-c holds a JSON null
 * as a NULL object, whose string is NULL, not "null". */
static const char *value_text(struct json_object *v)
{
	return v != NULL ? json_object_get_string(v) : "null";
}

static int get_uint(struct json_object *o, const char *name, unsigned *out,
		    struct kme_result *res)
{
	struct json_object *v;
	int64_t n;

	if (!json_object_object_get_ex(o, name, &v))
		return 0;
	if (!json_object_is_type(v, json_type_int))
		return bad_request(res, name, value_text(v),
				   "'%s' must be an integer", name);
	n = json_object_get_int64(v);
	if (n < 0 || n > UINT_MAX)
		return bad_request(res, name, value_text(v),
				   "'%s' is out of range", name);
	*out = (unsigned)n;
	return 0;
}

/* Multicast and mandatory extensions are features this KME lacks: the
 * spec says to refuse a request that needs them. */
static int check_unsupported(struct json_object *o, struct kme_result *res)
{
	struct json_object *v;

	if (json_object_object_get_ex(o, "additional_slave_SAE_IDs", &v) &&
	    !(json_object_is_type(v, json_type_array) &&
	      json_object_array_length(v) == 0))
		return bad_request(res, "additional_slave_SAE_IDs", "",
				   "additional_slave_SAE_IDs are not "
				   "supported (max_SAE_ID_count is 0)");
	if (json_object_object_get_ex(o, "extension_mandatory", &v) &&
	    !(json_object_is_type(v, json_type_array) &&
	      json_object_array_length(v) == 0))
		return bad_request(res, "extension_mandatory", "",
				   "no mandatory extension is supported");
	return 0;
}

int etsi_parse_enc_request(const char *body, size_t len, unsigned *number,
			   unsigned *size, struct kme_result *res)
{
	struct json_object *o;
	int rc;

	if (only_space(body, len)) /* no body: all defaults */
		return 0;
	o = parse_object(body, len, res);
	if (o == NULL)
		return -1;
	rc = get_uint(o, "number", number, res);
	if (rc == 0)
		rc = get_uint(o, "size", size, res);
	if (rc == 0)
		rc = check_unsupported(o, res);
	json_object_put(o);
	return rc;
}

void etsi_free_ids(char **ids, size_t n)
{
	for (size_t i = 0; ids != NULL && i < n; i++)
		free(ids[i]);
	free(ids);
}

static char *get_key_id(struct json_object *item, size_t i,
			struct kme_result *res)
{
	struct json_object *v;
	const char *s;
	char idx[32], *dup;

	snprintf(idx, sizeof(idx), "%zu", i);
	if (!json_object_is_type(item, json_type_object) ||
	    !json_object_object_get_ex(item, "key_ID", &v) ||
	    !json_object_is_type(v, json_type_string)) {
		bad_request(res, "key_IDs", idx,
			    "key_IDs[%zu] must be an object with a string "
			    "key_ID", i);
		return NULL;
	}
	s = json_object_get_string(v);
	if ((size_t)json_object_get_string_len(v) != strlen(s)) {
		bad_request(res, "key_IDs", idx,
			    "key_IDs[%zu].key_ID contains a NUL", i);
		return NULL;
	}
	dup = strdup(s);
	if (dup == NULL)
		bad_request(res, "", "", "out of memory");
	return dup;
}

int etsi_parse_dec_request(const char *body, size_t len, char ***ids,
			   size_t *n_ids, struct kme_result *res)
{
	struct json_object *o = parse_object(body, len, res), *arr;
	size_t n;

	*ids = NULL;
	*n_ids = 0;
	if (o == NULL)
		return -1;
	if (!json_object_object_get_ex(o, "key_IDs", &arr) ||
	    !json_object_is_type(arr, json_type_array) ||
	    json_object_array_length(arr) == 0) {
		json_object_put(o);
		return bad_request(res, "key_IDs", "",
				   "'key_IDs' must be a non-empty array");
	}
	n = json_object_array_length(arr);
	*ids = calloc(n, sizeof(**ids));
	for (size_t i = 0; *ids != NULL && i < n; i++) {
		(*ids)[i] = get_key_id(json_object_array_get_idx(arr, i), i,
				       res);
		if ((*ids)[i] == NULL) {
			etsi_free_ids(*ids, i);
			*ids = NULL;
			json_object_put(o);
			return -1;
		}
	}
	json_object_put(o);
	if (*ids == NULL)
		return bad_request(res, "", "", "out of memory");
	*n_ids = n;
	return 0;
}
