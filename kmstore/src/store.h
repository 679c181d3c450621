/* store.h - parsing a configuration held in memory; internal (the config
 * fuzzer and the unit tests use it). */
#ifndef KMS_STORE_H
#define KMS_STORE_H

#include "profile.h"

/* Parses text as the content of the file path (used in messages and for
 * relative paths); no permission checks, no file reads. */
kms_rc kms_store_parse(const char *text, size_t len, const char *path,
		       kms_store **out, kms_error *err);

#endif
