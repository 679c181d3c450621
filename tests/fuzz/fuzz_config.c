/* fuzz_config.c - kmstore.conf is untrusted input: the parser must reject
 * anything malformed with a message, never crash, hang or leak. Key files
 * are not read (a fuzzed file: path could name any file). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

static const char *const settings[] = {
	"type", "key-id", "key", "url", "local-sae-id", "peer-sae-id",
	"certificate", "private-key", "ca", "key-size", "timeout", "",
};

static void quiet(void *ctx, kms_log_level level, const char *message)
{
	(void)ctx;
	(void)level;
	(void)message;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	kms_store *store = NULL;
	kms_error err;

	kms_set_logger(quiet, NULL);
	if (kms_store_parse((const char *)data, size, "/fuzz/kmstore.conf", &store,
			    &err) != KMS_OK) {
		/* A message, on one line, always. */
		if (err.message[0] == '\0' || strchr(err.message, '\n') != NULL)
			abort();
		return 0;
	}
	for (size_t i = 0; i < kms_store_profile_count(store); i++) {
		kms_profile *p = kms_store_profile_at(store, i), *same;
		size_t n = 0;

		if (kms_check_profile_name(kms_profile_name(p), NULL) != KMS_OK)
			abort();
		if (kms_store_find_profile(store, kms_profile_name(p), &same, &err) !=
			    KMS_OK || same != p)
			abort();
		n += strlen(kms_profile_type(p));
		n += kms_profile_key_size(p);
		for (size_t k = 0; k < sizeof(settings) / sizeof(settings[0]); k++) {
			const char *v = kms_profile_setting(p, settings[k]);

			if (v != NULL)
				n += strlen(v);
		}
		/* The secret never stays a readable setting. */
		if (kms_profile_setting(p, "key") != NULL)
			abort();
		if (n == SIZE_MAX)
			abort();
	}
	kms_store_free(store);
	return 0;
}
