/* validate.h - shared syntax rules; internal. The public ones
 * (kms_check_key_id, kms_check_profile_name) are in kmstore.h. */
#ifndef KMS_VALIDATE_H
#define KMS_VALIDATE_H

#include "kmstore.h"

/* 1..max bytes of printable ASCII without spaces; "what" names it. */
kms_rc kms_check_token(const char *what, const char *s, size_t len,
		       size_t max, kms_error *err);

/* Whether s is a number as the manual writes them: decimal digits, and
 * with fraction a '.' with digits on one side of it at least. strtol and
 * strtod also take a sign, "0x10" (strtod) and "1e2", which a file that
 * loaded before 0.1.0-3 may hold: such a value is taken with a warning. */
int kms_is_decimal(const char *s, int fraction);

#endif
