/* output.h - what the kmstore command prints, as text or as JSON. */
#ifndef KMSTORE_OUTPUT_H
#define KMSTORE_OUTPUT_H

#include <stdbool.h>

#include "kmstore.h"

enum reveal { REVEAL_NONE, REVEAL_HEX, REVEAL_BASE64 };

struct output;

struct output *output_new(bool json);
/* Prints what was gathered (JSON) and frees it; returns 0, or the errno
 * of a write to stdout that failed (a full disk must not look like
 * success). */
int output_finish(struct output *out);
/* Flushes stdout: 0, or the errno of a write that failed (EIO when it is
 * not known: an earlier printf's). */
int output_flush(void);

void output_profiles(struct output *out, const kms_store *store);
void output_status(struct output *out, const kms_profile *p,
		   const kms_status *st);
int output_key(struct output *out, const kms_key *key, enum reveal reveal);
/* check's document: its "profiles" array, empty until output_check. */
void output_check_begin(struct output *out);
void output_check(struct output *out, const kms_profile *p, const kms_error *e);
void output_error(struct output *out, const kms_error *e);
/* One line of text, or one string member of the JSON document. */
void output_text(struct output *out, const char *name, const char *text);

#endif
