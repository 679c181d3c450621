/* output.c - the kmstore command's output: aligned text for people, one
 * JSON document (json-c) for programs. Errors also go to stderr as one
 * line, so scripts that ignore stdout still see them. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "output.h"

/* From libkmstore; the key's text form needs the same locked memory. */
#include "encoding.h"
#include "secmem.h"

struct output {
	bool json;
	json_object *doc;
};

struct output *output_new(bool json)
{
	struct output *out = calloc(1, sizeof(*out));

	if (out == NULL)
		return NULL;
	out->json = json;
	if (json)
		out->doc = json_object_new_object();
	return out;
}

/* The errno of the first write to stdout that failed: a printf that
 * fills the buffer writes it, and when that fails (a full disk) the data
 * is dropped, so fflush has nothing left to fail on and says nothing. */
static int write_errno;

static void out_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void out_printf(const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vprintf(fmt, ap);
	va_end(ap);
	if (n < 0 && write_errno == 0)
		write_errno = errno != 0 ? errno : EIO;
}

int output_flush(void)
{
	if (fflush(stdout) != 0 && write_errno == 0)
		write_errno = errno != 0 ? errno : EIO;
	if (write_errno == 0 && ferror(stdout))
		write_errno = EIO;
	return write_errno;
}

int output_finish(struct output *out)
{
	int rc = 0;

	if (out->json) {
		const char *text = json_object_to_json_string_ext(out->doc,
			JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
		json_object *key;

		out_printf("%s\n", text);
		/* A revealed key is in json-c's heap twice, in the string and in
		 * the printed document (both owned by doc): wipe them before
		 * json-c frees them. */
		if (json_object_object_get_ex(out->doc, "key", &key)) {
			kms_wipe((char *)text, strlen(text));
			kms_wipe((char *)json_object_get_string(key),
				 (size_t)json_object_get_string_len(key));
		}
		json_object_put(out->doc);
	}
	rc = output_flush();
	free(out);
	return rc;
}

/* The length of the UTF-8 sequence at s, or 0 if it is not valid UTF-8
 * (RFC 3629: no overlong form, surrogate or code point past U+10FFFF). */
static size_t utf8_len(const unsigned char *s)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4;
	else
		return 0;
	if (s[0] == 0xe0)
		lo = 0xa0;
	else if (s[0] == 0xed)
		hi = 0x9f;
	else if (s[0] == 0xf0)
		lo = 0x90;
	else if (s[0] == 0xf4)
		hi = 0x8f;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

/* A JSON string of s, which must be UTF-8: json-c copies bytes as they
 * are, and a file name or a message quoting one may hold any byte but
 * NUL. Each byte that is not part of valid UTF-8 becomes U+FFFD. A valid
 * s (a revealed key is ASCII) is not copied here, so no copy of a key is
 * left unwiped. */
static json_object *json_text(const char *s)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t bad = 0, n;
	json_object *o;
	char *fixed, *w;

	for (size_t i = 0; u[i] != '\0'; i += n ? n : 1) {
		n = utf8_len(u + i);
		bad += n == 0;
	}
	if (bad == 0)
		return json_object_new_string(s);
	fixed = malloc(strlen(s) + 2 * bad + 1);
	if (fixed == NULL)
		return NULL;
	w = fixed;
	for (size_t i = 0; u[i] != '\0'; i += n ? n : 1) {
		n = utf8_len(u + i);
		if (n == 0) {
			memcpy(w, "\xef\xbf\xbd", 3);
			w += 3;
		} else {
			memcpy(w, s + i, n);
			w += n;
		}
	}
	*w = '\0';
	o = json_object_new_string(fixed);
	free(fixed);
	return o;
}

/* Every string of the document goes through here (json_text). */
static void put_str(json_object *o, const char *name, const char *value)
{
	if (value != NULL)
		json_object_object_add(o, name, json_text(value));
}

static void put_int(json_object *o, const char *name, long value)
{
	if (value >= 0)
		json_object_object_add(o, name, json_object_new_int64(value));
}

/* The settings worth showing in a listing, and their JSON names. */
static const char *const shown_settings[][2] = {
	{ "key-id", "key_id" },
	{ "url", "url" },
	{ "local-sae-id", "local_sae_id" },
	{ "peer-sae-id", "peer_sae_id" },
};
#define N_SHOWN (sizeof(shown_settings) / sizeof(shown_settings[0]))

void output_profiles(struct output *out, const kms_store *store)
{
	size_t n = kms_store_profile_count(store);
	json_object *list = NULL;

	if (out->json) {
		put_str(out->doc, "config", kms_store_path(store));
		list = json_object_new_array();
		json_object_object_add(out->doc, "profiles", list);
	} else {
		out_printf("%-24s %-7s %5s  %s\n", "PROFILE", "TYPE", "BITS", "SOURCE");
	}
	for (size_t i = 0; i < n; i++) {
		const kms_profile *p = kms_store_profile_at(store, i);
		long bits = (long)kms_profile_key_size(p) * 8;

		if (out->json) {
			json_object *o = json_object_new_object();

			put_str(o, "name", kms_profile_name(p));
			put_str(o, "type", kms_profile_type(p));
			put_int(o, "key_bits", bits > 0 ? bits : -1);
			for (size_t k = 0; k < N_SHOWN; k++)
				put_str(o, shown_settings[k][1],
					kms_profile_setting(p, shown_settings[k][0]));
			json_object_array_add(list, o);
			continue;
		}
		out_printf("%-24s %-7s ", kms_profile_name(p), kms_profile_type(p));
		if (bits > 0)
			out_printf("%5ld ", bits);
		else
			out_printf("%5s ", "?");
		for (size_t k = 0; k < N_SHOWN; k++) {
			const char *v = kms_profile_setting(p, shown_settings[k][0]);

			if (v != NULL)
				out_printf(" %s=%s", shown_settings[k][0], v);
		}
		out_printf("\n");
	}
}

/* kmstored's pool, and what is known of each KME's health. */
static void output_pool_and_kmes(struct output *out, const kms_status *st)
{
	json_object *list = NULL;

	if (out->json) {
		put_int(out->doc, "pool_keys", st->pool_keys);
		put_int(out->doc, "pool_target", st->pool_target);
		if (st->n_kmes > 0) {
			list = json_object_new_array();
			json_object_object_add(out->doc, "kmes", list);
		}
	} else if (st->pool_target >= 0) {
		out_printf("%-20s %ld\n%-20s %ld\n", "pool_keys", st->pool_keys,
		       "pool_target", st->pool_target);
	}
	for (size_t i = 0; i < st->n_kmes; i++) {
		const kms_kme_health *h = &st->kmes[i];

		if (list != NULL) {
			json_object *o = json_object_new_object();

			put_str(o, "url", h->url);
			put_str(o, "state", h->state);
			json_object_object_add(o, "failures",
					       json_object_new_int64(h->failures));
			json_object_object_add(o, "retry_in_ms",
					       json_object_new_int64(h->retry_in_ms));
			if (h->last_error[0] != '\0')
				put_str(o, "last_error", h->last_error);
			json_object_array_add(list, o);
			continue;
		}
		out_printf("%-20s %s %s", "kme", h->url, h->state);
		if (h->failures > 0)
			out_printf(", %ld failure%s in a row, asked first again in %.1f s",
			       h->failures, h->failures == 1 ? "" : "s",
			       h->retry_in_ms / 1000.0);
		if (h->last_error[0] != '\0')
			out_printf(": %s", h->last_error);
		out_printf("\n");
	}
}

void output_status(struct output *out, const kms_profile *p,
		   const kms_status *st)
{
	static const struct {
		const char *name;
		size_t offset;
	} counts[] = {
		{ "key_size", offsetof(kms_status, key_size_bits) },
		{ "stored_key_count", offsetof(kms_status, stored_key_count) },
		{ "max_key_count", offsetof(kms_status, max_key_count) },
		{ "max_key_per_request", offsetof(kms_status, max_key_per_request) },
		{ "min_key_size", offsetof(kms_status, min_key_size_bits) },
		{ "max_key_size", offsetof(kms_status, max_key_size_bits) },
	};

	if (out->json) {
		put_str(out->doc, "profile", kms_profile_name(p));
		put_str(out->doc, "type", kms_profile_type(p));
		put_str(out->doc, "state", st->state);
		if (st->source_kme_id[0] != '\0')
			put_str(out->doc, "source_KME_ID", st->source_kme_id);
		if (st->target_kme_id[0] != '\0')
			put_str(out->doc, "target_KME_ID", st->target_kme_id);
	} else {
		out_printf("%-20s %s\n%-20s %s\n%-20s %s\n", "profile",
		       kms_profile_name(p), "type", kms_profile_type(p), "state",
		       st->state);
		if (st->source_kme_id[0] != '\0')
			out_printf("%-20s %s\n", "source_KME_ID", st->source_kme_id);
		if (st->target_kme_id[0] != '\0')
			out_printf("%-20s %s\n", "target_KME_ID", st->target_kme_id);
	}
	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		long v = *(const long *)((const char *)st + counts[i].offset);

		if (out->json)
			put_int(out->doc, counts[i].name, v);
		else if (v >= 0)
			out_printf("%-20s %ld\n", counts[i].name, v);
	}
	output_pool_and_kmes(out, st);
}

/* The key itself, only on request; the text lives in locked memory and is
 * wiped as soon as it is printed. */
static int print_secret(struct output *out, const kms_key *key,
			enum reveal reveal)
{
	size_t len = kms_key_size(key);
	size_t room = reveal == REVEAL_HEX ? 2 * len + 1 : 4 * ((len + 2) / 3) + 1;
	char *text = kms_secmem_alloc(room);

	if (text == NULL)
		return -1;
	if (reveal == REVEAL_HEX)
		kms_hex_encode(kms_key_bytes(key), len, text);
	else
		kms_base64_encode(kms_key_bytes(key), len, text);
	if (out->json) {
		put_str(out->doc, "key", text);
		put_str(out->doc, "encoding", reveal == REVEAL_HEX ? "hex" : "base64");
	} else {
		out_printf("%-12s %s\n", "key", text);
	}
	kms_secmem_free(text, room);
	return 0;
}

int output_key(struct output *out, const kms_key *key, enum reveal reveal)
{
	char kcv[KMS_KCV_LEN + 1];
	size_t len = kms_key_size(key);
	kms_error err;
	bool have_kcv = kms_key_check_value_ex(key, kcv, &err) == KMS_OK;

	/* The key is shown without it (a QKD key is consumed already), and
	 * "none" cannot be compared with another site's value. */
	if (!have_kcv)
		fprintf(stderr, "kmstore: %s\n", err.message);
	if (out->json) {
		put_str(out->doc, "profile", kms_key_profile(key));
		put_str(out->doc, "key_id", kms_key_id(key));
		put_int(out->doc, "bytes", (long)len);
		put_int(out->doc, "bits", (long)len * 8);
		put_str(out->doc, "check_value", have_kcv ? kcv : NULL);
	} else {
		out_printf("%-12s %s\n%-12s %s\n%-12s %zu bytes (%zu bits)\n%-12s %s\n",
		       "profile", kms_key_profile(key), "key-id", kms_key_id(key),
		       "size", len, len * 8, "check-value", have_kcv ? kcv : "none");
	}
	return reveal == REVEAL_NONE ? 0 : print_secret(out, key, reveal);
}

/* check's array, there even when no profile is checked, so that a
 * program reading it finds the same shape whatever went wrong. */
static json_object *check_list(struct output *out)
{
	json_object *list;

	if (!json_object_object_get_ex(out->doc, "profiles", &list)) {
		list = json_object_new_array();
		json_object_object_add(out->doc, "profiles", list);
	}
	return list;
}

void output_check_begin(struct output *out)
{
	if (out->json)
		check_list(out);
}

void output_check(struct output *out, const kms_profile *p, const kms_error *e)
{
	if (out->json) {
		json_object *list = check_list(out), *o = json_object_new_object();

		put_str(o, "name", kms_profile_name(p));
		put_str(o, "type", kms_profile_type(p));
		json_object_object_add(o, "ok", json_object_new_boolean(e == NULL));
		if (e != NULL)
			put_str(o, "error", e->message);
		json_object_array_add(list, o);
	} else if (e == NULL) {
		out_printf("ok      %s (%s)\n", kms_profile_name(p), kms_profile_type(p));
	} else {
		out_printf("FAILED  %s (%s)\n", kms_profile_name(p), kms_profile_type(p));
	}
	if (e != NULL)
		fprintf(stderr, "kmstore: %s\n", e->message);
}

void output_error(struct output *out, const kms_error *e)
{
	fprintf(stderr, "kmstore: %s\n", e->message);
	if (out != NULL && out->json) {
		json_object *o = json_object_new_object();

		put_str(o, "code", kms_rc_name(e->code));
		put_str(o, "message", e->message);
		json_object_object_add(out->doc, "error", o);
	}
}

void output_text(struct output *out, const char *name, const char *text)
{
	size_t n = strlen(text);

	if (out->json)
		put_str(out->doc, name, text);
	else
		out_printf("%s%s", text, n > 0 && text[n - 1] == '\n' ? "" : "\n");
}
