/*
 * kme-sim: HTTP/2 for a KME (--http2).
 *
 * libmicrohttpd speaks HTTP/1 only, and it does the TLS of its own
 * connections. With --http2 a KME's listener is served by a front of our
 * own instead: it does the TLS handshake (GnuTLS, the same certificates
 * and client verification), offers "h2" and "http/1.1" in ALPN, and hands
 * each request to the KME's libmicrohttpd daemon, which then runs without
 * TLS and without a listener of its own:
 *
 * - http/1.1 (or no ALPN): the connection's plaintext is relayed as it is
 *   over a socket pair given to the daemon (MHD_add_connection);
 * - h2: each stream (nghttp2, h2.c) becomes one HTTP/1.1 request over a
 *   socket pair of its own, and the daemon's answer becomes the stream's
 *   response (a cut answer resets the stream, as a cut connection would).
 *
 * The daemon learns who the client is (certificate CN) from the front,
 * by the socket it was given: front_client().
 */
#ifndef KME_SIM_FRONT_H
#define KME_SIM_FRONT_H

#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <stddef.h>
#include <sys/socket.h>

struct front;

/* Connections served at once by a listener, by libmicrohttpd or by the
 * front; beyond it a new connection is closed at once. */
#define FRONT_MAX_CONNECTIONS 256

/* Serves the bound, listening socket fd of listener name (kept, for the
 * log), closing a connection idle, or whose client reads nothing of an
 * answer, for timeout_s seconds (the daemon's connection timeout). NULL with a reason in err. */
struct front *front_start(const char *name, int fd, const char *cert_pem,
			  const char *key_pem, const char *ca_pem,
			  struct MHD_Daemon *daemon, unsigned timeout_s,
			  char *err, size_t errlen);
void front_stop(struct front *f);

/* The client of a socket the front gave the daemon: its certificate's CN
 * (or *why: why it has none) and the protocol it spoke ("HTTP/1.1",
 * "HTTP/2"); -1 if fd is not such a socket. */
int front_client(int fd, char *cn, size_t len, const char **why,
		 const char **proto);
/* The daemon closed that socket. */
void front_forget(int fd);

/* For h2.c: a socket pair to the daemon for one request of a client
 * whose certificate CN is cn (or why it has none: why); the front's end,
 * or -1. */
int front_open_to_daemon(struct front *f, const char *cn, const char *why,
			 const char *proto, const struct sockaddr *peer,
			 socklen_t peer_len);

/* h2.c: serves an HTTP/2 connection over s until it ends. */
void h2_serve(struct front *f, gnutls_session_t s, const char *cn,
	      const char *why, const struct sockaddr *peer, socklen_t peer_len);

#endif
