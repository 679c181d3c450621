/* wire.h - the protocol between kmstored and the library's remote
 * profiles (remote.c); both ends, internal.
 *
 * One request, then one reply, on a UNIX stream socket; a connection can
 * carry any number of them, one at a time. A message is a 12-byte header
 * and a body:
 *
 *   "KMSD"  u8 version (1)  u8 kind  u16 zero  u32 body length
 *
 * and the body a sequence of fields: u8 tag, u32 length, the value.
 * Integers are big-endian. A request's kind is its operation; a reply's is
 * KMS_WIRE_OK or KMS_WIRE_ERROR. Bodies are bounded (requests 4 KiB,
 * replies 1 MiB), every field has its own bounds, unknown or repeated
 * fields are refused: a parser never has to guess. Key bytes travel only
 * in the reply to the KEY request that asked for them, and both ends keep
 * that message in locked memory. */
#ifndef KMS_WIRE_H
#define KMS_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "kmstore.h"

#define KMS_WIRE_VERSION 1
#define KMS_WIRE_HEADER 12
#define KMS_WIRE_REQUEST_MAX 4096
#define KMS_WIRE_REPLY_MAX (1024 * 1024)
/* A KEY reply: profile, key ID and key with their field headers. */
#define KMS_WIRE_KEY_REPLY_MAX 1024
#define KMS_WIRE_SETTINGS_MAX 16
#define KMS_WIRE_SETTING_MAX 4200 /* "name=value": a config line and more */
#define KMS_WIRE_TEXT_MAX (KMS_WIRE_REPLY_MAX - 64)

enum kms_wire_kind {
	KMS_WIRE_PROFILES = 1, /* the profiles this client may use; or one */
	KMS_WIRE_KEY = 2,      /* a key for use now, or the key with an ID */
	KMS_WIRE_STATUS = 3,
	KMS_WIRE_CHECK = 4,    /* kmstore check, on the daemon's side */
	KMS_WIRE_RELOAD = 5,   /* read the configuration again */
	KMS_WIRE_METRICS = 6,  /* Prometheus text exposition */
	KMS_WIRE_OK = 0x80,
	KMS_WIRE_ERROR = 0x81,
};

enum kms_wire_tag {
	KMS_T_PROFILE = 1,  /* a profile name; in a PROFILES reply, starts one */
	KMS_T_KEY_ID = 2,
	KMS_T_KEY = 3,      /* the key bytes */
	KMS_T_TYPE = 4,
	KMS_T_KEY_SIZE = 5, /* u32, bytes; 0 unknown */
	KMS_T_SETTING = 6,  /* "name=value", a non-secret setting */
	KMS_T_CONFIG = 7,   /* the daemon's configuration file */
	KMS_T_CODE = 8,     /* u8, a kms_rc */
	KMS_T_MESSAGE = 9,
	KMS_T_STATE = 10,
	KMS_T_SOURCE_KME = 11,
	KMS_T_TARGET_KME = 12,
	KMS_T_COUNTS = 13,  /* the kms_status numbers, 6 x s64 */
	KMS_T_TEXT = 14,
	KMS_T_POOL = 15,    /* pool_keys, pool_target: 2 x s64 */
	KMS_T_KME = 16,     /* one per KME, in order: u32 failures, s64
			     * retry_in_ms, u8 length + state, u16 length +
			     * URL, and the last error (the rest) */
};

/* A message being built: the header is filled by kms_wire_finish. The
 * buffer is from the locked arena, and of fixed size, when secret is set
 * (a KEY reply); otherwise it grows as fields are added, up to max. */
struct kms_wire_buf {
	uint8_t *data;
	size_t len, cap, max;
	int secret;
	int failed; /* a field did not fit: the message is not sent */
};

int kms_wire_init(struct kms_wire_buf *b, size_t max, int secret,
		  enum kms_wire_kind kind);
void kms_wire_put(struct kms_wire_buf *b, enum kms_wire_tag tag,
		  const void *value, size_t len);
void kms_wire_put_str(struct kms_wire_buf *b, enum kms_wire_tag tag,
		      const char *s);
void kms_wire_put_u32(struct kms_wire_buf *b, enum kms_wire_tag tag,
		      uint32_t v);
/* Writes the body length into the header; 0, or -1 if a field failed. */
int kms_wire_finish(struct kms_wire_buf *b);
void kms_wire_free(struct kms_wire_buf *b);

/* The header: 0 and kind and body length, or -1 with why filled. */
int kms_wire_header(const uint8_t h[KMS_WIRE_HEADER], size_t body_max,
		    int *kind, uint32_t *len, char *why, size_t why_size);

/* A request, as the daemon parses it; strings point into the body. */
struct kms_wire_request {
	enum kms_wire_kind kind;
	char profile[KMS_PROFILE_NAME_MAX + 1];
	char key_id[KMS_KEY_ID_MAX + 1];
	int has_profile, has_key_id;
};

/* Parses a request body of the given kind; fills err (KMS_ERR_USAGE)
 * naming what was wrong. Profile names and key IDs are validated with the
 * library's own rules. */
kms_rc kms_wire_parse_request(int kind, const uint8_t *body, size_t len,
			      struct kms_wire_request *out, kms_error *err);

/* Replies, as the client parses them. The key bytes of a KEY reply point
 * into the (locked) body. */
struct kms_wire_key {
	char profile[KMS_PROFILE_NAME_MAX + 1];
	char key_id[KMS_KEY_ID_MAX + 1];
	const uint8_t *key;
	size_t key_len;
};

/* An ERROR reply into err (the daemon's code and message, made printable);
 * KMS_OK for an OK reply. Any other kind, or a malformed body, is
 * KMS_ERR_SYSTEM naming what was wrong. A STATUS request's ERROR reply
 * may carry the status's fields too (the KMEs' health and the pool in an
 * outage): they are passed over here, and kms_wire_parse_status reads
 * them, passing over the code and message. */
kms_rc kms_wire_parse_error(int kind, const uint8_t *body, size_t len,
			    kms_error *err);
/* Puts an ERROR reply's code and message. */
void kms_wire_put_error(struct kms_wire_buf *b, const kms_error *e);
kms_rc kms_wire_parse_key(const uint8_t *body, size_t len,
			  struct kms_wire_key *out, kms_error *err);
kms_rc kms_wire_parse_status(const uint8_t *body, size_t len,
			     kms_status *out, kms_error *err);
/* Puts a kms_status's fields (STATE, the KME IDs, COUNTS, POOL, KMEs). */
void kms_wire_put_status(struct kms_wire_buf *b, const kms_status *st);
/* A TEXT field (RELOAD's message, METRICS): a malloc'ed copy. */
kms_rc kms_wire_parse_text(const uint8_t *body, size_t len, int tag,
			   char **out, kms_error *err);

/* A PROFILES reply: fn is called with p NULL for the daemon's
 * configuration path (first), then once per profile. */
struct kms_wire_profile {
	char name[KMS_PROFILE_NAME_MAX + 1];
	char type[KMS_PROFILE_NAME_MAX + 1];
	uint32_t key_size;
	size_t n_settings;
	char settings[KMS_WIRE_SETTINGS_MAX][KMS_WIRE_SETTING_MAX + 1];
};
typedef kms_rc kms_wire_profile_fn(void *ctx, const char *config,
				   const struct kms_wire_profile *p,
				   kms_error *err);
kms_rc kms_wire_parse_profiles(const uint8_t *body, size_t len,
			       kms_wire_profile_fn *fn, void *ctx,
			       kms_error *err);

#endif
