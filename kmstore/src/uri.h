/* uri.h - percent-encoding shared by kmstore: URIs and the ETSI client's
 * request paths; internal. */
#ifndef KMS_URI_H
#define KMS_URI_H

#include <stddef.h>

/* Percent-encodes every byte outside RFC 3986 unreserved and the few
 * sub-delims safe in both a URI path segment and an RFC 7512 value.
 * Returns the length it needs, like snprintf. */
size_t kms_percent_encode(char *buf, size_t size, const char *value);

#endif
