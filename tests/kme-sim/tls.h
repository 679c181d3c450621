/*
 * kme-sim: mutual TLS with GnuTLS under libmicrohttpd.
 *
 * libmicrohttpd only *requests* a client certificate when it is given a
 * trust list, and never checks it. kme-sim makes the certificate required
 * and verified inside the handshake, so a client without a certificate from
 * the configured CA never gets an HTTP exchange at all; each request then
 * verifies again and takes the SAE ID from the certificate's subject CN.
 */
#ifndef KME_SIM_TLS_H
#define KME_SIM_TLS_H

#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <stddef.h>

/* TLS 1.2 and 1.3 only. */
#define TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

/* Call from MHD_CONNECTION_NOTIFY_STARTED, before the handshake. */
void tls_require_client_cert(struct MHD_Connection *c);
/* The same for a session of our own (front.c), before its handshake. */
void tls_session_require_client_cert(gnutls_session_t s);

/* The verified client certificate's CN, or -1 with a reason in *why; for
 * a connection that front.c handed to MHD, the front's. */
int tls_client_cn(struct MHD_Connection *c, char *cn, size_t len,
		  const char **why);
int tls_session_cn(gnutls_session_t s, char *cn, size_t len, const char **why);

#endif
