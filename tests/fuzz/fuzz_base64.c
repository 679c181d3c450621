/* fuzz_base64.c - the strict key decoders: every accepted input is the
 * canonical encoding of what it decodes to, so decode then encode gives it
 * back exactly (hex: up to letter case); and any bytes encode and decode
 * back to themselves. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "encoding.h"

static void check_base64(const char *in, size_t len)
{
	size_t n = kms_base64_decoded_len(in, len), where = SIZE_MAX;
	uint8_t *out;
	char *back;

	if (n == SIZE_MAX)
		return;
	out = malloc(n + 1);
	back = malloc(len + 1);
	if (out == NULL || back == NULL)
		abort();
	if (kms_base64_decode(in, len, out, &where) == 0) {
		kms_base64_encode(out, n, back);
		if (strlen(back) != len || memcmp(back, in, len) != 0)
			abort();
	} else if (where > len) {
		abort();
	}
	free(out);
	free(back);
}

static void check_hex(const char *in, size_t len)
{
	size_t n = kms_hex_decoded_len(len), where = SIZE_MAX;
	uint8_t *out;
	char *back;

	if (n == SIZE_MAX)
		return;
	out = malloc(n + 1);
	back = malloc(len + 1);
	if (out == NULL || back == NULL)
		abort();
	if (kms_hex_decode(in, len, out, &where) == 0) {
		kms_hex_encode(out, n, back);
		if (strlen(back) != len || strncasecmp(back, in, len) != 0)
			abort();
	} else if (where >= len) {
		abort();
	}
	free(out);
	free(back);
}

static void check_encode(const uint8_t *data, size_t size)
{
	char *b64 = malloc(4 * ((size + 2) / 3) + 1), *hex = malloc(2 * size + 1);
	uint8_t *out = malloc(size + 1);
	size_t where;

	if (b64 == NULL || hex == NULL || out == NULL)
		abort();
	kms_base64_encode(data, size, b64);
	if (kms_base64_decoded_len(b64, strlen(b64)) != size ||
	    kms_base64_decode(b64, strlen(b64), out, &where) != 0 ||
	    memcmp(out, data, size) != 0)
		abort();
	kms_hex_encode(data, size, hex);
	if (kms_hex_decode(hex, 2 * size, out, &where) != 0 ||
	    memcmp(out, data, size) != 0)
		abort();
	free(b64);
	free(hex);
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Exact-size copies, so ASan sees any read past the end. */
	char *in = malloc(size > 0 ? size : 1);

	if (in == NULL)
		return 0;
	memcpy(in, data, size);
	check_base64(in, size);
	check_hex(in, size);
	check_encode(data, size);
	free(in);
	return 0;
}
