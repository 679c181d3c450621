/*
 * kme-sim: ETSI GS QKD 014 V1.1.1 JSON bodies, built and parsed with json-c.
 *
 * Builders return a malloc'd NUL-terminated string (NULL when out of
 * memory). Parsers fill a 400 kme_result and return -1 on bad input.
 */
#ifndef KME_SIM_ETSI_JSON_H
#define KME_SIM_ETSI_JSON_H

#include <stddef.h>

#include "kme.h"

char *etsi_status_json(const struct kme_status *s);
char *etsi_keys_json(const struct kme_keys *keys);
/* Error object: {"message":..., "details":[{name: value, "KME_ID": ...}]} */
char *etsi_error_json(const char *message, const char *detail_name,
		      const char *detail_value, const char *kme_id);

/* enc_keys POST body; *number and *size keep their defaults when absent. */
int etsi_parse_enc_request(const char *body, size_t len, unsigned *number,
			   unsigned *size, struct kme_result *res);
/* dec_keys POST body; *ids is a malloc'd array of malloc'd strings. */
int etsi_parse_dec_request(const char *body, size_t len, char ***ids,
			   size_t *n_ids, struct kme_result *res);
void etsi_free_ids(char **ids, size_t n);
/* The key IDs as a JSON array of strings, for the log: whatever bytes a
 * client sent show escaped, exactly as they were decoded. */
char *etsi_ids_json(char *const *ids, size_t n);

/* Standard base64 with padding, as ETSI 014 carries keys. */
char *etsi_base64(const unsigned char *data, size_t len);

#endif
