/*
 * kme-sim: the ETSI GS QKD 014 REST API of one KME, as libmicrohttpd
 * callbacks: request routing, body collection, responses and the log.
 */
#ifndef KME_SIM_API_H
#define KME_SIM_API_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>

#include "fault.h"
#include "kme.h"

/* Largest request body read; a bigger one gets 413. */
#define API_MAX_BODY (64 * 1024)

/* The closure of every callback: one per listener (per MHD daemon). */
struct api_server {
	struct kme_model *model;
	size_t kme;               /* index in model->kmes */
	const char *name;         /* the listener's: ID, or ID/N from the 2nd */
	const char *slot;         /* ID/N, also for the first: for faults */
	struct fault_set *faults;
	bool quiet;               /* no per-request log */
	bool verbose;             /* also log connections without requests,
				   * requests held by a latency rule */
};

enum MHD_Result api_handle(void *cls, struct MHD_Connection *c,
			   const char *url, const char *method,
			   const char *version, const char *upload_data,
			   size_t *upload_data_size, void **req_cls);
void api_request_done(void *cls, struct MHD_Connection *c, void **req_cls,
		      enum MHD_RequestTerminationCode toe);
void api_connection_event(void *cls, struct MHD_Connection *c,
			  void **socket_cls,
			  enum MHD_ConnectionNotificationCode code);
size_t api_unescape(void *cls, struct MHD_Connection *c, char *s);

#endif
