/* fuzz_ppk_id.c - the PPK_ID a peer sends, as the libreswan series checks
 * it (ppk_uri_ppk_id_invalid(): 5.4 patch 0004, 5.2 patch 0009) before its
 * ppk-uri= token is asked for the key. The peer chooses every byte before
 * it authenticates.
 *
 * Beyond not crashing: pluto and kmstore must agree. An ID pluto lets
 * through reaches the PKCS#11 module as a CKA_ID, and kmstore's own rule
 * (kms_check_key_id) must accept it too, and the other way round: one
 * rule, or a peer could make one side log or forward what the other
 * refused. A refusal names a bad byte (all before it good) or a bad
 * length. */
#include <stdlib.h>

#include "kmstore.h"
#include "constants.h" /* libreswan's include/ (KMSTORE_LIBRESWAN_SRC) */
#include "ppk_uri.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	shunk_t id = { .ptr = data, .len = size };
	size_t offset = (size_t)-1;
	err_t e = ppk_uri_ppk_id_invalid(id, &offset);
	bool kms_ok = kms_check_key_id((const char *)data, size, NULL) == KMS_OK;

	if ((e == NULL) != kms_ok)
		abort();
	if (e == NULL)
		return 0;
	if (offset > size)
		abort();
	if (offset < size) {
		for (size_t i = 0; i < offset; i++)
			if (data[i] < 0x21 || data[i] > 0x7e)
				abort(); /* an earlier bad byte was not named */
		if (data[offset] >= 0x21 && data[offset] <= 0x7e)
			abort(); /* the named byte is fine */
	} else if (size >= 1 && size <= PPK_ID_MAXLEN) {
		abort(); /* a length complaint about a good length */
	}
	return 0;
}
