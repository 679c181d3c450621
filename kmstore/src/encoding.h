/* encoding.h - strict hex and base64 codecs for key material; internal.
 *
 * Key material arrives from config files and KMEs: every decoder rejects
 * anything but the canonical form (no whitespace, correct padding, zero
 * trailing bits), so a corrupted key is never silently shortened. */
#ifndef KMS_ENCODING_H
#define KMS_ENCODING_H

#include <stddef.h>
#include <stdint.h>

/* The value of one hex digit, or -1. */
int kms_hex_digit(char c);

/* Decoded length for a valid input, or SIZE_MAX if len cannot be valid. */
size_t kms_hex_decoded_len(size_t len);
size_t kms_base64_decoded_len(const char *in, size_t len);

/* Decode into out (room for the decoded length). Return 0, or -1 with the
 * offset of the first bad character (or len for a bad length) in *where. */
int kms_hex_decode(const char *in, size_t len, uint8_t *out, size_t *where);
int kms_base64_decode(const char *in, size_t len, uint8_t *out, size_t *where);

/* Encode with a terminating NUL: out needs 2*len+1, resp. 4*((len+2)/3)+1. */
void kms_hex_encode(const uint8_t *in, size_t len, char *out);
void kms_base64_encode(const uint8_t *in, size_t len, char *out);

#endif
