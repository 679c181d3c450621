/*
 * kme-sim: mutual TLS with GnuTLS under libmicrohttpd (see tls.h).
 */
#include "tls.h"

#include "front.h"

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <string.h>

/* A client certificate must be meant for TLS clients (extendedKeyUsage
 * clientAuth, or no EKU at all), as a real KME would insist. */
static gnutls_typed_vdata_st client_purpose = {
	.type = GNUTLS_DT_KEY_PURPOSE_OID,
	.data = (unsigned char *)GNUTLS_KP_TLS_WWW_CLIENT,
};

static gnutls_session_t session_of(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);

	return ci != NULL ? (gnutls_session_t)ci->tls_session : NULL;
}

/* The refused certificate's subject and issuer, so that a lab user sees
 * which certificate was wrong and why. */
static void log_refusal(gnutls_session_t s, int rc, unsigned status)
{
	const gnutls_datum_t *chain;
	gnutls_datum_t why = { NULL, 0 }, subj = { NULL, 0 }, iss = { NULL, 0 };
	gnutls_x509_crt_t crt = NULL;
	unsigned n = 0;

	chain = gnutls_certificate_get_peers(s, &n);
	if (chain != NULL && n > 0 && gnutls_x509_crt_init(&crt) == 0 &&
	    gnutls_x509_crt_import(crt, &chain[0], GNUTLS_X509_FMT_DER) == 0) {
		gnutls_x509_crt_get_dn2(crt, &subj);
		gnutls_x509_crt_get_issuer_dn2(crt, &iss);
	}
	if (rc == 0 && gnutls_certificate_verification_status_print(
			       status, GNUTLS_CRT_X509, &why, 0) == 0) {
		while (why.size > 0 && why.data[why.size - 1] == ' ')
			why.data[--why.size] = '\0';
	}
	fprintf(stderr, "kme-sim: client certificate refused in the TLS "
		"handshake: %s (subject '%s', issuer '%s')\n",
		rc < 0 ? gnutls_strerror(rc) : why.data ? (char *)why.data : "?",
		subj.data ? (char *)subj.data : "none",
		iss.data ? (char *)iss.data : "none");
	gnutls_free(why.data);
	gnutls_free(subj.data);
	gnutls_free(iss.data);
	if (crt != NULL)
		gnutls_x509_crt_deinit(crt);
}

/* The TLS alert that tells the client what was wrong with its
 * certificate (RFC 8446 6.2, RFC 5246 7.2.2). */
static gnutls_alert_description_t refusal_alert(gnutls_session_t s, int rc,
						unsigned status)
{
	if (rc == GNUTLS_E_NO_CERTIFICATE_FOUND)
		return gnutls_protocol_get_version(s) == GNUTLS_TLS1_3
			       ? GNUTLS_A_CERTIFICATE_REQUIRED
			       : GNUTLS_A_HANDSHAKE_FAILURE;
	if (status & GNUTLS_CERT_SIGNER_NOT_FOUND)
		return GNUTLS_A_UNKNOWN_CA;
	if (status & (GNUTLS_CERT_EXPIRED | GNUTLS_CERT_NOT_ACTIVATED))
		return GNUTLS_A_CERTIFICATE_EXPIRED;
	if (status & GNUTLS_CERT_PURPOSE_MISMATCH)
		return GNUTLS_A_UNSUPPORTED_CERTIFICATE;
	return GNUTLS_A_BAD_CERTIFICATE;
}

/* Runs inside the handshake when the client's certificate arrives: a
 * failure aborts the handshake before any HTTP is exchanged. */
static int verify_client(gnutls_session_t s)
{
	unsigned status = 0;
	int rc = gnutls_certificate_verify_peers(s, &client_purpose, 1, &status);

	if (rc == 0 && status == 0)
		return 0;
	log_refusal(s, rc, status);
	/* libmicrohttpd closes a failed handshake without an alert; a client
	 * would see a bare close, which looks like a network fault (and
	 * with TLS 1.3 comes after its own handshake seemed complete). */
	gnutls_alert_send(s, GNUTLS_AL_FATAL, refusal_alert(s, rc, status));
	return GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR;
}

void tls_session_require_client_cert(gnutls_session_t s)
{
	/* REQUEST, not REQUIRE: with REQUIRE GnuTLS refuses a missing
	 * certificate before verify_client() could log it; verify_client()
	 * refuses it all the same (and each request checks again). */
	gnutls_certificate_server_set_request(s, GNUTLS_CERT_REQUEST);
	/* Verified against the credentials' trust list (--ca). */
	gnutls_session_set_verify_function(s, verify_client);
}

void tls_require_client_cert(struct MHD_Connection *c)
{
	gnutls_session_t s = session_of(c);

	if (s != NULL)
		tls_session_require_client_cert(s);
}

static int refuse(const char **why, const char *reason)
{
	*why = reason;
	return -1;
}

static int printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

static int cn_of(const gnutls_datum_t *der, char *cn, size_t len,
		 const char **why)
{
	gnutls_x509_crt_t crt;
	size_t size = len;
	int rc;

	if (gnutls_x509_crt_init(&crt) < 0)
		return refuse(why, "out of memory");
	rc = gnutls_x509_crt_import(crt, der, GNUTLS_X509_FMT_DER);
	if (rc >= 0)
		rc = gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME,
						   0, 0, cn, &size);
	gnutls_x509_crt_deinit(crt);
	if (rc < 0 || size == 0 || strlen(cn) != size || !printable(cn))
		return refuse(why, "client certificate has no usable subject CN");
	return 0;
}

int tls_session_cn(gnutls_session_t s, char *cn, size_t len, const char **why)
{
	const gnutls_datum_t *chain;
	unsigned status = 0, n = 0;

	cn[0] = '\0';
	*why = NULL;
	chain = gnutls_certificate_get_peers(s, &n);
	if (chain == NULL || n == 0)
		return refuse(why, "no client certificate");
	if (gnutls_certificate_verify_peers(s, &client_purpose, 1, &status) < 0 ||
	    status != 0)
		return refuse(why, "client certificate not verified");
	return cn_of(&chain[0], cn, len, why);
}

int tls_client_cn(struct MHD_Connection *c, char *cn, size_t len,
		  const char **why)
{
	gnutls_session_t s = session_of(c);
	const union MHD_ConnectionInfo *ci;

	if (s != NULL)
		return tls_session_cn(s, cn, len, why);
	/* --http2: the front did the TLS, and knows the certificate */
	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (ci != NULL && front_client(ci->connect_fd, cn, len, why, NULL) == 0)
		return *why != NULL ? -1 : 0;
	cn[0] = '\0';
	return refuse(why, "not a TLS connection");
}
