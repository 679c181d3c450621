/* store.h - parsing a configuration held in memory; internal (the config
 * fuzzer and the unit tests use it). */
#ifndef KMS_STORE_H
#define KMS_STORE_H

#include "profile.h"

struct kms_remote;

/* Parses text as the content of the file path (used in messages and for
 * relative paths); no permission checks, no file reads. */
kms_rc kms_store_parse(const char *text, size_t len, const char *path,
		       kms_store **out, kms_error *err);

/* kms_store_open without its last step: a client configuration ("daemon
 * = PATH") is returned as it is, with no profiles (kmstored reads its own
 * file with this, and refuses a client one). */
kms_rc kms_store_load(const char *path, kms_store **out, kms_error *err);
/* The socket a client configuration names, or NULL. */
const char *kms_store_daemon(const kms_store *store);

/* Building a store by hand (remote.c: the profiles kmstored lists). */
kms_rc kms_store_new(const char *path, kms_store **out, kms_error *err);
kms_rc kms_store_add_profile(kms_store *store, const char *name,
			     kms_profile **out, kms_error *err);
kms_rc kms_profile_add_setting(kms_profile *p, const char *name,
			       const char *value, unsigned line, kms_error *err);
/* Makes the store kmstored's: a profile it does not list is asked about
 * (kms_remote_miss); the store takes the reference. */
void kms_store_set_remote(kms_store *store, struct kms_remote *r);

#endif
