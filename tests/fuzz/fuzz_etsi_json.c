/* fuzz_etsi_json.c - KME answers (key containers, status, error bodies)
 * are untrusted input that becomes an IKE PPK. kmstore reads them itself,
 * into json-c objects: whatever it reads, json-c's strict tokener must read
 * the same. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "etsi014_json.h"

/* Ours accepted it: json-c's strict tokener (same depth) must accept it
 * too and make an equal tree. It may refuse what json-c accepts: a member
 * named twice, a raw control byte in a string, a leading zero... */
static void same_as_json_c(const uint8_t *data, size_t size)
{
	json_object *ours, *theirs;
	json_tokener *tok;
	kms_error err;
	char *text;

	if (kms_etsi_read((const char *)data, size, &ours, &err) != KMS_OK)
		return;
	/* With its NUL, as json_tokener_parse() reads a string: json-c
	 * knows a number at the end is whole only when it sees the NUL (what
	 * ours accepts holds no NUL byte). */
	text = malloc(size + 1);
	tok = json_tokener_new_ex(16);
	if (text == NULL || tok == NULL || memchr(data, '\0', size) != NULL)
		abort();
	memcpy(text, data, size);
	text[size] = '\0';
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	theirs = json_tokener_parse_ex(tok, text, (int)size + 1);
	if (json_tokener_get_error(tok) != json_tokener_success ||
	    !json_object_equal(ours, theirs))
		abort();
	json_tokener_free(tok);
	json_object_put(theirs);
	free(text);
	kms_etsi_drop(ours);
}

/* The first n characters of a UUID (8-4-4-4-12 hex digits). */
static int uuid_start(const char *c, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (i >= 36 || ((i == 8 || i == 13 || i == 18 || i == 23) !=
				(c[i] == '-')) ||
		    (c[i] != '-' && strchr("0123456789abcdefABCDEF", c[i]) == NULL))
			return 0;
	return 1;
}

/* What an error text quotes holds no run of base64 characters that could
 * be 16 bytes of a key (22 of them) but a UUID, the key_ID most KMEs make,
 * or the start of one that the room given cut (full). '=' ends a run here:
 * kmstore writes a detail as name=value, each judged on its own. */
static void no_key_shown(const char *text, int full)
{
	size_t n;

	for (const char *c = text; *c != '\0'; c += n > 0 ? n : 1) {
		n = strspn(c, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			      "0123456789+/-_");
		if (n >= 22 && !(uuid_start(c, n) && (n == 36 || (full && !c[n]))))
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char id[KMS_KEY_ID_MAX + 1], text[256];
	uint8_t key[KMS_KEY_MAX];
	kms_status st;
	kms_error err;

	/* The first byte picks the key size, as a profile's key-size does. */
	size_t key_len = size > 0 ? 16 + data[0] % (KMS_KEY_MAX - 15) : 32;

	if (kms_etsi_parse_key_container((const char *)data, size, NULL, key_len,
					 id, key, &err) == KMS_OK &&
	    kms_check_key_id(id, strlen(id), NULL) != KMS_OK)
		abort();
	(void)kms_etsi_parse_key_container((const char *)data, size, "id-1", 32,
					   id, key, &err);
	(void)kms_etsi_parse_status((const char *)data, size, &st, &err);
	if (kms_etsi_error_text((const char *)data, size, text, sizeof(text)) &&
	    text[0] == '\0')
		abort();
	for (const char *c = text; *c; c++)
		if (*c < 0x20 || *c > 0x7e)
			abort();
	no_key_shown(text, strlen(text) == sizeof(text) - 1);
	same_as_json_c(data, size);
	return 0;
}
