/* etsi014_json.c - building and checking ETSI GS QKD 014 bodies.
 *
 * A KME's answer becomes an IKE PPK and PPK_ID, so it is checked strictly:
 * one JSON document and nothing after it, exactly one key, a printable
 * key_ID of at most 64 bytes, canonical base64 of exactly the size asked
 * for. Extensions (key_ID_extension, key_extension, ...) are ignored. */
#include <string.h>

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

/* One complete JSON document: in strict mode json-c also refuses anything
 * but white space after it (a truncated or concatenated body). */
static json_object *parse(const char *body, size_t len, kms_error *err)
{
	json_tokener *tok = json_tokener_new_ex(JSON_DEPTH);
	enum json_tokener_error jerr;
	json_object *o;

	if (tok == NULL) {
		kms_fail(err, KMS_ERR_SYSTEM, "out of memory");
		return NULL;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	o = json_tokener_parse_ex(tok, body, (int)len);
	jerr = json_tokener_get_error(tok);
	/* The tokener's scratch buffer last held a string, maybe the key;
	 * json-c frees it unwiped, so wipe it first (the field is public in
	 * json-c 0.13 to 0.17, though marked internal). */
	if (tok->pb != NULL && tok->pb->buf != NULL)
		kms_wipe(tok->pb->buf, (size_t)tok->pb->size);
	json_tokener_free(tok);
	if (o == NULL || jerr != json_tokener_success) {
		json_object_put(o);
		kms_fail(err, KMS_ERR_KME, "the KME's answer is not valid JSON (%s)",
			 jerr == json_tokener_continue ? "it ends too early"
						       : json_tokener_error_desc(jerr));
		return NULL;
	}
	return o;
}

/* The key text inside json-c is wiped as soon as it is decoded. */
static void wipe_string(json_object *s)
{
	kms_wipe((char *)json_object_get_string(s),
		 (size_t)json_object_get_string_len(s));
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
	if (want_id != NULL && strcmp(sid, want_id) != 0)
		return kms_fail(err, KMS_ERR_KME,
				"the KME answered with key_ID '%s', not the '%s' "
				"asked for", sid, want_id);
	if (!json_object_object_get_ex(entry, "key", &jkey) ||
	    !json_object_is_type(jkey, json_type_string))
		return kms_fail(err, KMS_ERR_KME,
				"the KME's key '%s' has no key string", sid);
	skey = json_object_get_string(jkey);
	text_len = (size_t)json_object_get_string_len(jkey);
	if (kms_base64_decoded_len(skey, text_len) != key_len) {
		wipe_string(jkey);
		return kms_fail(err, KMS_ERR_KME,
				"the KME's key '%s' is not %zu bytes of base64 "
				"(%zu characters)", sid, key_len, text_len);
	}
	if (kms_base64_decode(skey, text_len, key, &where) != 0) {
		wipe_string(jkey);
		kms_wipe(key, key_len);
		return kms_fail(err, KMS_ERR_KME,
				"the KME's key '%s' is not valid base64 (at "
				"character %zu)", sid, where + 1);
	}
	wipe_string(jkey);
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
			if (strcmp(ids[i], ids[j]) == 0)
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
	json_object *doc = parse(body, len, err), *arr;
	size_t got = 0;
	kms_rc rc;

	*n = 0;
	if (doc == NULL)
		return err != NULL ? err->code : KMS_ERR_KME;
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
	/* Every key of the answer is wiped in json-c, taken or not. */
	if (json_object_is_type(doc, json_type_object) &&
	    json_object_object_get_ex(doc, "keys", &arr) &&
	    json_object_is_type(arr, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(arr); i++) {
			json_object *k = json_object_array_get_idx(arr, i), *s;

			if (json_object_is_type(k, json_type_object) &&
			    json_object_object_get_ex(k, "key", &s) &&
			    json_object_is_type(s, json_type_string))
				wipe_string(s);
		}
	}
	json_object_put(doc);
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
	json_object *doc = parse(body, len, err);

	if (doc == NULL)
		return err != NULL ? err->code : KMS_ERR_KME;
	if (!json_object_is_type(doc, json_type_object)) {
		json_object_put(doc);
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
	json_object_put(doc);
	return KMS_OK;
}

/* Printable ASCII, runs of white space and control bytes folded to one
 * space, at most size - 1 bytes. */
static void clean_copy(const char *s, size_t len, char *out, size_t size)
{
	size_t o = 0;

	for (size_t i = 0; i < len && o + 1 < size; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c > 0x20 && c < 0x7f)
			out[o++] = (char)c;
		else if (o > 0 && out[o - 1] != ' ')
			out[o++] = ' ';
	}
	while (o > 0 && out[o - 1] == ' ')
		o--;
	out[o] = '\0';
}

void kms_etsi_error_text(const char *body, size_t len, char *out, size_t size)
{
	json_object *doc, *msg;

	if (size == 0)
		return;
	out[0] = '\0';
	doc = parse(body, len, NULL);
	if (doc != NULL && json_object_is_type(doc, json_type_object) &&
	    json_object_object_get_ex(doc, "message", &msg) &&
	    json_object_is_type(msg, json_type_string))
		clean_copy(json_object_get_string(msg),
			   (size_t)json_object_get_string_len(msg), out, size);
	else if (doc == NULL)
		clean_copy(body, len, out, size);
	json_object_put(doc);
}
