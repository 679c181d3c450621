/* store.h - parsing a configuration held in memory; internal (the config
 * fuzzer and the unit tests use it). */
#ifndef KMS_STORE_H
#define KMS_STORE_H

#include <limits.h>

#include "profile.h"

/* Parses text as the content of the file path (used in messages and for
 * relative paths); no permission checks, no file reads. */
kms_rc kms_store_parse(const char *text, size_t len, const char *path,
		       kms_store **out, kms_error *err);

/* What kms_store_open reads: the configuration file at path (NULL: the
 * default), with its permission checks; resolved gets the absolute path
 * it was read from, which kms_store_parse takes as the path. Free the text
 * with kms_store_text_free: it may hold inline keys. */
kms_rc kms_store_read(const char *path, char resolved[PATH_MAX],
		      uint8_t **text, size_t *len, kms_error *err);
void kms_store_text_free(uint8_t *text, size_t len);

/* One more reference to store: kms_store_free drops one, and frees the
 * store with the last (kms_store_cache hands a store to many callers). */
kms_store *kms_store_ref(kms_store *store);

#endif
