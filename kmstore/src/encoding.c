/* encoding.c - strict hex and base64 (RFC 4648 section 4). */
#include "encoding.h"

static const char b64[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int kms_hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

size_t kms_hex_decoded_len(size_t len)
{
	return len % 2 ? SIZE_MAX : len / 2;
}

int kms_hex_decode(const char *in, size_t len, uint8_t *out, size_t *where)
{
	if (len % 2) {
		*where = len;
		return -1;
	}
	for (size_t i = 0; i < len; i += 2) {
		int hi = kms_hex_digit(in[i]), lo = kms_hex_digit(in[i + 1]);

		if (hi < 0 || lo < 0) {
			*where = hi < 0 ? i : i + 1;
			return -1;
		}
		out[i / 2] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

static size_t padding(const char *in, size_t len)
{
	if (len >= 2 && in[len - 1] == '=' && in[len - 2] == '=')
		return 2;
	if (len >= 1 && in[len - 1] == '=')
		return 1;
	return 0;
}

size_t kms_base64_decoded_len(const char *in, size_t len)
{
	if (len % 4)
		return SIZE_MAX;
	return len / 4 * 3 - padding(in, len);
}

int kms_base64_decode(const char *in, size_t len, uint8_t *out, size_t *where)
{
	size_t pad, data, o = 0;
	uint32_t acc = 0;
	int bits = 0;

	if (len % 4) {
		*where = len;
		return -1;
	}
	pad = padding(in, len);
	data = len - pad;
	for (size_t i = 0; i < data; i++) {
		int v = b64_value(in[i]);

		if (v < 0) {
			*where = i;
			return -1;
		}
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	/* Canonical form: the bits left over before the padding are zero. */
	if (acc != 0) {
		*where = data - 1;
		return -1;
	}
	return 0;
}

void kms_hex_encode(const uint8_t *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * len] = '\0';
}

void kms_base64_encode(const uint8_t *in, size_t len, char *out)
{
	size_t i, o = 0;

	for (i = 0; i + 2 < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];

		out[o++] = b64[v >> 18];
		out[o++] = b64[(v >> 12) & 63];
		out[o++] = b64[(v >> 6) & 63];
		out[o++] = b64[v & 63];
	}
	if (i < len) {
		uint32_t v = (uint32_t)in[i] << 16;

		if (i + 1 < len)
			v |= (uint32_t)in[i + 1] << 8;
		out[o++] = b64[v >> 18];
		out[o++] = b64[(v >> 12) & 63];
		out[o++] = i + 1 < len ? b64[(v >> 6) & 63] : '=';
		out[o++] = '=';
	}
	out[o] = '\0';
}
