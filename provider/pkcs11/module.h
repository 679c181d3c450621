/* module.h - the kmstore PKCS#11 module's internal state, shared by the
 * files that implement the PKCS#11 function groups.
 *
 * Model: each profile of the kmstore configuration is one slot with a
 * present token; keys are CKO_SECRET_KEY objects the module holds (a
 * bounded, LRU set per token). Every entry point takes the module lock for
 * its bookkeeping only: fetching a key (a KME round trip) runs unlocked,
 * so one slow KME does not stall the other threads. */
#ifndef KMS_P11_MODULE_H
#define KMS_P11_MODULE_H

#include <stdatomic.h>
#include <stddef.h>
#include <sys/types.h>

#include <p11-kit/pkcs11.h>

#include <kmstore.h>

/* Not in the PKCS#11 2.40 header; NSS searches for them and must find
 * nothing. */
#ifndef CKO_PROFILE
#define CKO_PROFILE 0x00000009UL
#endif

/* Vendor-defined ("KMS" + 1): listed by every kmstore token to say that
 * C_GenerateKey with a CKA_ID in its template gives the key the token's
 * source has under that ID (QKD: dec_keys) instead of a new one. A caller
 * that sees it can fetch by ID in a session of its own: NSS holds a slot
 * lock through every search (PK11_FindFixedKey), so searches, and a KME
 * round trip inside one, run one at a time per token. C_GenerateKey takes
 * it as a mechanism too, with a CKA_ID required. pluto's ppk-uri= series
 * defines the same value. */
#define CKM_KMSTORE_KEY_BY_ID (CKM_VENDOR_DEFINED | 0x4b4d5301UL)

/* Vendor-defined ("KMS" + 2), a marker for no operation: listed by a token
 * whose keys this process reads from memory or a local file
 * (kms_profile_local: a static profile, not kmstored's), so that asking it
 * for a key never waits on a key server or a daemon. pluto's ppk-uri=
 * series asks such a token on its main thread, sparing each IKE SA a
 * hand-off to a helper thread and back; it defines the same value. */
#define CKM_KMSTORE_LOCAL_KEYS (CKM_VENDOR_DEFINED | 0x4b4d5302UL)

#define P11_MAX_KEYS_DEFAULT 64
#define P11_MAX_KEYS_LIMIT 4096
#define P11_LABEL_MAX 256

/* Boolean attributes an object keeps as requested at generation. */
enum p11_obj_flag {
	OBJ_PRIVATE = 1u << 0,
	OBJ_ENCRYPT = 1u << 1,
	OBJ_DECRYPT = 1u << 2,
	OBJ_SIGN = 1u << 3,
	OBJ_VERIFY = 1u << 4,
	OBJ_WRAP = 1u << 5,
	OBJ_UNWRAP = 1u << 6,
	OBJ_DERIVE = 1u << 7,
	OBJ_LOCAL = 1u << 8, /* made by C_GenerateKey */
	OBJ_READ_ONLY = 1u << 10, /* CKA_MODIFIABLE=FALSE at generation */
	/* Not an attribute: found by ID on a single-use profile (QKD), so
	 * dropped once its value is read (kms_profile_single_use). */
	OBJ_READ_ONCE = 1u << 9,
};
/* What a key is good for when nobody said: PPKs feed prf/prf+. */
#define OBJ_DEFAULT_FLAGS (OBJ_SIGN | OBJ_VERIFY | OBJ_DERIVE)

struct p11_object {
	CK_OBJECT_HANDLE handle;
	CK_SLOT_ID slot;
	CK_SESSION_HANDLE session; /* creator of a session object; 0: token object */
	kms_key *key;
	char *label;
	unsigned flags;
	unsigned long long last_used;
};

struct p11_token {
	CK_SLOT_ID id;
	kms_profile *profile;
	char serial[17];
	struct p11_object **objects;
	size_t n_objects;
};

struct p11_session {
	CK_SESSION_HANDLE handle;
	CK_SLOT_ID slot;
	CK_FLAGS flags;
	CK_ULONG device_error; /* kms_rc of the last failed fetch */
	int finding;
	CK_OBJECT_HANDLE *found;
	size_t n_found, pos;
};

/* LOG_TO_AUTO: stderr while it leads somewhere, else syslog (pluto with
 * logfile= or its default syslog points stderr at /dev/null). */
enum p11_log_target { LOG_TO_AUTO, LOG_TO_STDERR, LOG_TO_SYSLOG, LOG_TO_NONE };

struct p11_params {
	char *config;               /* NULL: KMSTORE_CONF, else the default */
	char *daemon;               /* kmstored's socket, or NULL */
	enum p11_log_target log;
	kms_log_level log_level;    /* the most verbose level shown */
	size_t max_keys;            /* held per token */
};

struct p11_module {
	atomic_int initialized;
	pid_t pid;
	struct p11_params params;
	kms_store *store;
	struct p11_token *tokens;
	size_t n_tokens;
	struct p11_session **sessions;
	size_t n_sessions, cap_sessions;
	CK_ULONG next_session;
	CK_ULONG next_object;
	unsigned long long tick;
};

extern struct p11_module p11;

/* lock.c */
CK_RV p11_lock_setup(const CK_C_INITIALIZE_ARGS *args);
void p11_lock_teardown(void);
void p11_lock_after_fork(void);
/* Checks that the module is initialized and takes the lock. */
CK_RV p11_enter(void);
void p11_leave(void);
/* Around a fetch, for which the lock is dropped: begin with the lock held,
 * end once p11_enter() has been tried again (the call no longer touches
 * the module's state unless it holds the lock). */
void p11_fetch_begin(void);
void p11_fetch_end(void);
/* C_Finalize: marks the module uninitialized and waits for the fetches in
 * flight; then nothing else uses the module's state. */
CK_RV p11_finalize_begin(void);

/* params.c */
CK_RV p11_params_parse(const char *s, struct p11_params *out, char *why,
		       size_t why_size);
void p11_params_clear(struct p11_params *p);

/* log.c */
void p11_log_setup(const struct p11_params *params);
/* Whether a message at this level goes anywhere: to skip work for it. */
int p11_log_enabled(kms_log_level level);
void p11_log(kms_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
CK_RV p11_rv_from_kms(kms_rc rc);
void p11_pad(CK_UTF8CHAR *dst, size_t size, const char *src);

/* slot_token.c */
struct p11_token *p11_token_get(CK_SLOT_ID id);
CK_RV p11_tokens_load(void);
void p11_tokens_free(void);

/* session.c */
struct p11_session *p11_session_get(CK_SESSION_HANDLE h);
void p11_sessions_free(void);

/* keyset.c: the objects a token holds */
struct p11_object *p11_object_new(struct p11_token *t, kms_key *key,
				  CK_SESSION_HANDLE session, unsigned flags,
				  const char *label);
void p11_object_free(struct p11_object *o);
CK_RV p11_token_add(struct p11_token *t, struct p11_object *o);
struct p11_object *p11_object_get(CK_OBJECT_HANDLE h, struct p11_token **t,
				  size_t *index);
void p11_object_remove(struct p11_token *t, size_t index);
struct p11_object *p11_token_find_id(struct p11_token *t, const char *id,
				     int token_only);
void p11_token_drop_session(struct p11_token *t, CK_SESSION_HANDLE session);
void p11_token_clear(struct p11_token *t);

/* attributes.c */
struct p11_attr {
	const void *ptr;
	CK_ULONG len;
	union {
		CK_ULONG ul;
		CK_BBOOL b;
	} buf;
};
CK_RV p11_object_attr(const struct p11_object *o, CK_ATTRIBUTE_TYPE type,
		      struct p11_attr *out);
int p11_object_matches(const struct p11_object *o, const CK_ATTRIBUTE *tmpl,
		       CK_ULONG n);

/* fetch.c: keys from libkmstore, outside the lock */
CK_RV p11_fetch_now(kms_profile *p, kms_key **out, CK_ULONG *kms_code);
CK_RV p11_fetch_by_id(kms_profile *p, const char *id, kms_key **out,
		      CK_ULONG *kms_code);

#endif
