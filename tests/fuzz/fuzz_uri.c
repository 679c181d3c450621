/* fuzz_uri.c - kmstore: URIs come from applications and configuration:
 * the parser must never crash, and whatever it accepts must survive
 * kms_uri_format and a second parse unchanged. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kmstore.h"

static int same(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1), *buf;
	kms_uri uri, again;
	kms_error err;
	size_t n;

	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	if (kms_uri_parse(s, &uri, &err) != KMS_OK) {
		if (uri.profile != NULL || uri.key_id != NULL || err.code != KMS_ERR_URI)
			abort();
		free(s);
		return 0;
	}
	n = kms_uri_format(NULL, 0, uri.profile, uri.key_id);
	buf = malloc(n + 1);
	if (buf == NULL)
		abort();
	if (kms_uri_format(buf, n + 1, uri.profile, uri.key_id) != n || strlen(buf) != n)
		abort();
	if (kms_uri_parse(buf, &again, &err) != KMS_OK)
		abort();
	if (!same(uri.profile, again.profile) || !same(uri.key_id, again.key_id))
		abort();
	/* A short buffer holds a terminated prefix. */
	if (n > 0) {
		size_t cut = size % n + 1;
		char *part = malloc(cut);

		if (part == NULL)
			abort();
		kms_uri_format(part, cut, uri.profile, uri.key_id);
		if (strlen(part) >= cut || strncmp(part, buf, strlen(part)) != 0)
			abort();
		free(part);
	}
	kms_uri_clear(&again);
	kms_uri_clear(&uri);
	free(buf);
	free(s);
	return 0;
}
