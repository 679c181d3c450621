/* fuzz_etsi_json.c - KME answers (key containers, status, error bodies)
 * are untrusted input that becomes an IKE PPK. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "etsi014_json.h"

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
	kms_etsi_error_text((const char *)data, size, text, sizeof(text));
	for (const char *c = text; *c; c++)
		if (*c < 0x20 || *c > 0x7e)
			abort();
	return 0;
}
