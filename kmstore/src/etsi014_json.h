/* etsi014_json.h - ETSI GS QKD 014 request and response bodies (json-c);
 * internal. Kept apart from the HTTP client so they can be unit tested and
 * fuzzed on their own. */
#ifndef KMS_ETSI014_JSON_H
#define KMS_ETSI014_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "kmstore.h"

/* Request bodies, malloc'ed; NULL when out of memory. */
char *kms_etsi_enc_keys_request(long number, long size_bits);
/* dec_keys of n key IDs (1 to the KME's max_key_per_request). */
char *kms_etsi_dec_keys_request(const char *const *key_ids, size_t n);

/* Parses a Key container that must hold exactly one key whose ID is a
 * valid key ID (and equals want_id when that is not NULL) and whose key is
 * canonical base64 of exactly key_len bytes. On success the ID is copied
 * to id (KMS_KEY_ID_MAX + 1 bytes) and the key to key (key_len bytes);
 * the decoded text of the key inside json-c is wiped. Errors are
 * KMS_ERR_KME with a message naming the fault, never key bytes. */
kms_rc kms_etsi_parse_key_container(const char *body, size_t len,
				    const char *want_id, size_t key_len,
				    char *id, uint8_t *key, kms_error *err);

/* The same for a container of 1 to max keys (enc_keys with number > 1),
 * all with distinct IDs: ids[i] and key bytes keys + i * key_len, *n taken.
 * On an error nothing is taken and keys is wiped. */
kms_rc kms_etsi_parse_key_batch(const char *body, size_t len, size_t max,
				size_t key_len, char (*ids)[KMS_KEY_ID_MAX + 1],
				uint8_t *keys, size_t *n, kms_error *err);

/* Whether two key_IDs name the same key: equal, or both UUIDs that differ
 * only in the case of their hex digits. */
int kms_etsi_same_key_id(const char *a, const char *b);

/* Parses a Status object into st (fields left as they are if absent). */
kms_rc kms_etsi_parse_status(const char *body, size_t len, kms_status *st,
			     kms_error *err);

/* The KME's own explanation of an error response, for a message after
 * "HTTP 503": the "message" of an ETSI error object, and its "details",
 * reduced to printable ASCII; returns 1 then. Any other body is not
 * quoted, since it may be a key container (an error status with a key, or a
 * key container cut off): out then describes it in kmstore's words, in
 * parentheses ("(the body is not an ETSI error message: ...; not
 * quoted)"), or is empty if there is no body; returns 0. A body is an ETSI
 * error object if it is valid JSON, an object with a "message" string, and
 * holds no key: no member named "key" or "keys" at any depth, and no string
 * with "key" or "keys" in quotes. Even then a word of it that could hold 16
 * bytes of a key (22 base64 or hex characters or more, not a UUID; numbers
 * in a row of 32 digits or more) is shown as "<N characters, not shown>".
 * At most size - 1 bytes. */
int kms_etsi_error_text(const char *body, size_t len, char *out, size_t size);

/* kmstore's reader of a KME's answer, which every function above uses:
 * RFC 8259 read strictly (one value, nothing after it but white space, no
 * member named twice in an object, at most 16 levels, at most
 * KMS_SECMEM_MAX - 1 bytes) into a json-c tree (*doc, NULL for "null").
 * Whatever it made of an answer it refuses is wiped and freed; an error
 * describes the fault by offset and byte value, never quoting the answer.
 * Free *doc with kms_etsi_drop, which wipes every string and member name
 * in it before json-c frees them: json_object_put would not. */
struct json_object;
kms_rc kms_etsi_read(const char *body, size_t len, struct json_object **doc,
		     kms_error *err);
void kms_etsi_drop(struct json_object *doc);

#endif
