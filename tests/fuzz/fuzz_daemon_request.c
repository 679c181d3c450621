/* fuzz_daemon_request.c - what kmstored reads from a client: any local
 * user may connect, so a request is untrusted input. The input is a whole
 * message (header and body). An accepted request must hold only valid
 * names, and survive being written out and parsed again unchanged. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

static void reparse(const struct kms_wire_request *q)
{
	struct kms_wire_request again;
	struct kms_wire_buf b;
	uint32_t len;
	int kind;
	char why[160];

	if (kms_wire_init(&b, KMS_WIRE_REQUEST_MAX, 0, q->kind) != 0)
		abort();
	if (q->has_profile)
		kms_wire_put_str(&b, KMS_T_PROFILE, q->profile);
	if (q->has_key_id)
		kms_wire_put_str(&b, KMS_T_KEY_ID, q->key_id);
	if (kms_wire_finish(&b) != 0 ||
	    kms_wire_header(b.data, KMS_WIRE_REQUEST_MAX, &kind, &len, why,
			    sizeof(why)) != 0 ||
	    kms_wire_parse_request(kind, b.data + KMS_WIRE_HEADER, len, &again,
				   NULL) != KMS_OK ||
	    again.kind != q->kind || again.has_profile != q->has_profile ||
	    again.has_key_id != q->has_key_id ||
	    strcmp(again.profile, q->profile) != 0 ||
	    strcmp(again.key_id, q->key_id) != 0)
		abort();
	kms_wire_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kms_wire_request q;
	kms_error err;
	char why[160];
	uint32_t len;
	int kind;

	if (size < KMS_WIRE_HEADER)
		return 0;
	if (kms_wire_header(data, KMS_WIRE_REQUEST_MAX, &kind, &len, why,
			    sizeof(why)) != 0) {
		if (why[0] == '\0')
			abort();
		return 0;
	}
	/* The daemon reads exactly len bytes; here they may be fewer. */
	if (len > size - KMS_WIRE_HEADER)
		len = (uint32_t)(size - KMS_WIRE_HEADER);
	if (kms_wire_parse_request(kind, data + KMS_WIRE_HEADER, len, &q, &err) !=
	    KMS_OK) {
		if (err.message[0] == '\0' || strchr(err.message, '\n') != NULL)
			abort();
		return 0;
	}
	if ((q.has_profile && kms_check_profile_name(q.profile, NULL) != KMS_OK) ||
	    (q.has_key_id &&
	     kms_check_key_id(q.key_id, strlen(q.key_id), NULL) != KMS_OK) ||
	    ((q.kind == KMS_WIRE_KEY || q.kind == KMS_WIRE_STATUS ||
	      q.kind == KMS_WIRE_CHECK) && !q.has_profile))
		abort();
	reparse(&q);
	return 0;
}
