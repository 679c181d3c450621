/* store.h - parsing a configuration held in memory; internal (the config
 * fuzzer and the unit tests use it). */
#ifndef KMS_STORE_H
#define KMS_STORE_H

#include <limits.h>

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
/* The socket the configuration file at path (NULL: the default) names
 * if it is a client configuration, malloc'ed; *socket is NULL for a file
 * of profiles (or of nothing). Its syntax is checked, its profiles are
 * not configured. */
kms_rc kms_store_client_socket(const char *path, char **socket,
			       kms_error *err);

/* Building a store by hand (remote.c: the profiles kmstored lists). */
kms_rc kms_store_new(const char *path, kms_store **out, kms_error *err);
kms_rc kms_store_add_profile(kms_store *store, const char *name,
			     kms_profile **out, kms_error *err);
kms_rc kms_profile_add_setting(kms_profile *p, const char *name,
			       const char *value, unsigned line, kms_error *err);
/* Makes the store kmstored's: a profile it does not list is asked about
 * (kms_remote_miss); the store takes the reference. */
void kms_store_set_remote(kms_store *store, struct kms_remote *r);

/* What kms_store_open reads: the configuration file at path (NULL: the
 * default), with its permission checks; resolved gets the absolute path
 * it was read from, which kms_store_parse takes as the path. Free the text
 * with kms_store_text_free: it may hold inline keys. */
kms_rc kms_store_read(const char *path, char resolved[PATH_MAX],
		      uint8_t **text, size_t *len, kms_error *err);
void kms_store_text_free(uint8_t *text, size_t len);

/* kms_profile_check without the lookups of allow-users and allow-groups:
 * kmstored makes those itself (kms_allow_load), keeping the numbers. */
kms_rc kms_profile_check_files(kms_profile *p, kms_error *err);

/* One more reference to store: kms_store_free drops one, and frees the
 * store with the last (kms_store_cache hands a store to many callers). */
kms_store *kms_store_ref(kms_store *store);

#endif
