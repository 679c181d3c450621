/* fuzz_daemon_reply.c - what a client (pluto's PKCS#11 module, among
 * others) reads from kmstored: the reply parsers, each on the same body.
 * The first byte is the reply's kind (OK, ERROR, or anything else). What
 * they accept must be within the protocol's bounds: printable messages,
 * valid names, keys of a size a key may have. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

static int printable(const char *s)
{
	for (; *s != '\0'; s++)
		if (*s < 0x20 || *s > 0x7e)
			return 0;
	return 1;
}

static kms_rc on_profile(void *ctx, const char *config,
			 const struct kms_wire_profile *p, kms_error *err)
{
	(void)ctx;
	(void)err;
	if (config == NULL || config[0] == '\0' || !printable(config))
		abort();
	if (p == NULL)
		return KMS_OK;
	if (kms_check_profile_name(p->name, NULL) != KMS_OK ||
	    kms_check_profile_name(p->type, NULL) != KMS_OK ||
	    p->key_size > KMS_KEY_MAX || p->n_settings > KMS_WIRE_SETTINGS_MAX)
		abort();
	for (size_t i = 0; i < p->n_settings; i++)
		if (strchr(p->settings[i], '=') == NULL || !printable(p->settings[i]))
			abort();
	return KMS_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kms_wire_key key;
	kms_status st;
	kms_error err;
	char *text;
	int kind;

	if (size < 1)
		return 0;
	kind = data[0] & 1 ? KMS_WIRE_ERROR : data[0] & 2 ? KMS_WIRE_OK : data[0];
	data++;
	size--;
	if (kms_wire_parse_error(kind, data, size, &err) != KMS_OK &&
	    (err.message[0] == '\0' || !printable(err.message) ||
	     err.code < KMS_ERR_USAGE || err.code > KMS_ERR_SYSTEM))
		abort();
	if (kms_wire_parse_key(data, size, &key, &err) == KMS_OK &&
	    (key.key_len < KMS_KEY_MIN || key.key_len > KMS_KEY_MAX ||
	     key.key < data || key.key + key.key_len > data + size ||
	     kms_check_key_id(key.key_id, strlen(key.key_id), NULL) != KMS_OK ||
	     kms_check_profile_name(key.profile, NULL) != KMS_OK))
		abort();
	memset(&st, 0, sizeof(st));
	if (kms_wire_parse_status(data, size, &st, &err) == KMS_OK &&
	    (!printable(st.state) || !printable(st.source_kme_id) ||
	     !printable(st.target_kme_id) || st.key_size_bits < -1))
		abort();
	if (kms_wire_parse_text(data, size, KMS_T_TEXT, &text, &err) == KMS_OK) {
		if (text == NULL || strlen(text) > size)
			abort();
		free(text);
	}
	(void)kms_wire_parse_profiles(data, size, on_profile, NULL, &err);
	return 0;
}
