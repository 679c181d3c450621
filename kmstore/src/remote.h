/* remote.h - talking to kmstored beyond the profiles: what the kmstore
 * command's "reload" and "metrics" ask; internal. The profiles themselves
 * are a profile type (remote.c) reached through kmstore.h. */
#ifndef KMS_REMOTE_H
#define KMS_REMOTE_H

#include "wire.h"

#ifndef KMS_DEFAULT_SOCKET
#define KMS_DEFAULT_SOCKET "/run/kmstore/kmstored.sock"
#endif

struct kms_remote;

void kms_remote_unref(struct kms_remote *r);
/* Why a profile kmstored did not list cannot be used: its answer to a
 * listing of that one name (not open to this user, no such profile; or
 * added since this store was opened). */
kms_rc kms_remote_miss(struct kms_remote *r, const char *name,
		       kms_error *err);

/* kms_store_open_daemon, waiting wait_ms for the listing (0: as long as
 * a request that names no profile, 5 s). */
kms_rc kms_remote_open_store(const char *socket_path, long wait_ms,
			     kms_store **out, kms_error *err);

/* Sends a request without fields (KMS_WIRE_RELOAD, KMS_WIRE_METRICS) and
 * returns the text of the answer (malloc'ed): the reload's summary, the
 * metrics exposition. */
kms_rc kms_daemon_text(const char *socket_path, enum kms_wire_kind kind,
		       char **text, kms_error *err);

#endif
