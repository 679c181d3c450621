/*
 * kme-sim: the TLS front of a KME with --http2 (see front.h).
 */
#include "front.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kme.h"
#include "tls.h"

/* After a failed accept() for want of descriptors or memory: they come
 * back as connections end, and the pending connection stays queued. */
#define ACCEPT_PAUSE_MS 100
/* A listener short of descriptors fails every accept(): one line a
 * minute tells the lab, without filling its disk. */
#define LOG_EVERY_S 60

struct said {
	bool ever;
	time_t at; /* CLOCK_MONOTONIC */
};

struct front {
	const char *name; /* the listener's, for the log */
	int fd;
	atomic_bool stopping; /* front_stop() was called */
	struct said said_accept, said_limit;
	gnutls_certificate_credentials_t cred;
	gnutls_priority_t prio;
	struct MHD_Daemon *daemon;
	unsigned timeout_s; /* --connection-timeout */
	pthread_t thread;
	/* the connections being served, so that front_stop() can end them */
	pthread_mutex_t lock;
	pthread_cond_t idle;
	int *conns;
	size_t n_conns, cap_conns;
};

/* 0; 1: FRONT_MAX_CONNECTIONS are being served; -1: out of memory. */
static int conn_add(struct front *f, int fd)
{
	int rc = 0;

	pthread_mutex_lock(&f->lock);
	if (f->n_conns >= FRONT_MAX_CONNECTIONS)
		rc = 1;
	else if (f->n_conns == f->cap_conns) {
		size_t cap = f->cap_conns ? 2 * f->cap_conns : 16;
		int *grown = realloc(f->conns, cap * sizeof(*grown));

		if (grown == NULL)
			rc = -1;
		else {
			f->conns = grown;
			f->cap_conns = cap;
		}
	}
	if (rc == 0)
		f->conns[f->n_conns++] = fd;
	pthread_mutex_unlock(&f->lock);
	return rc;
}

static void conn_done(struct front *f, int fd)
{
	pthread_mutex_lock(&f->lock);
	for (size_t i = 0; i < f->n_conns; i++)
		if (f->conns[i] == fd) {
			f->conns[i] = f->conns[--f->n_conns];
			break;
		}
	if (f->n_conns == 0)
		pthread_cond_broadcast(&f->idle);
	pthread_mutex_unlock(&f->lock);
}

/* The sockets handed to the daemon, and who is behind each. */
struct client {
	int fd; /* the daemon's end */
	char cn[KME_ID_MAX + 1];
	const char *why;   /* no usable CN: why */
	const char *proto;
};

static pthread_mutex_t clients_lock = PTHREAD_MUTEX_INITIALIZER;
static struct client *clients;
static size_t n_clients, cap_clients;

static int remember(int fd, const char *cn, const char *why, const char *proto)
{
	struct client *c;

	pthread_mutex_lock(&clients_lock);
	if (n_clients == cap_clients) {
		size_t cap = cap_clients ? 2 * cap_clients : 16;
		struct client *grown = realloc(clients, cap * sizeof(*grown));

		if (grown == NULL) {
			pthread_mutex_unlock(&clients_lock);
			return -1;
		}
		clients = grown;
		cap_clients = cap;
	}
	c = &clients[n_clients++];
	c->fd = fd;
	snprintf(c->cn, sizeof(c->cn), "%s", cn);
	c->why = why;
	c->proto = proto;
	pthread_mutex_unlock(&clients_lock);
	return 0;
}

int front_client(int fd, char *cn, size_t len, const char **why,
		 const char **proto)
{
	int found = -1;

	pthread_mutex_lock(&clients_lock);
	for (size_t i = 0; i < n_clients; i++) {
		if (clients[i].fd != fd)
			continue;
		snprintf(cn, len, "%s", clients[i].cn);
		*why = clients[i].why;
		if (proto != NULL)
			*proto = clients[i].proto;
		found = 0;
		break;
	}
	pthread_mutex_unlock(&clients_lock);
	return found;
}

/* Called when the daemon closes fd, before the number can be reused. */
void front_forget(int fd)
{
	pthread_mutex_lock(&clients_lock);
	for (size_t i = 0; i < n_clients; i++)
		if (clients[i].fd == fd) {
			clients[i] = clients[--n_clients];
			break;
		}
	pthread_mutex_unlock(&clients_lock);
}

static int open_to_daemon(struct front *f, const char *cn, const char *why,
			  const char *proto, const struct sockaddr *peer,
			  socklen_t peer_len)
{
	int sp[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0)
		return -1;
	if (remember(sp[1], cn, why, proto) != 0) {
		close(sp[0]);
		close(sp[1]);
		return -1;
	}
	/* The client's own address, for the daemon's log. */
	if (MHD_add_connection(f->daemon, sp[1], peer, peer_len) != MHD_YES) {
		front_forget(sp[1]); /* MHD closed sp[1] */
		close(sp[0]);
		return -1;
	}
	return sp[0];
}

int front_open_to_daemon(struct front *f, const char *cn, const char *why,
			 const char *proto, const struct sockaddr *peer,
			 socklen_t peer_len)
{
	return open_to_daemon(f, cn, why, proto, peer, peer_len);
}

/* HTTP/1.1: the client's plaintext to the daemon and back, as it is. */
static void relay(gnutls_session_t s, int tls_fd, int daemon_fd)
{
	char buf[16384];
	struct pollfd p[2] = { { .fd = tls_fd, .events = POLLIN },
			       { .fd = daemon_fd, .events = POLLIN } };

	for (;;) {
		ssize_t n;

		/* Records GnuTLS already decrypted do not show in poll(). */
		if (gnutls_record_check_pending(s) == 0 &&
		    poll(p, 2, -1) < 0 && errno != EINTR)
			return;
		if (gnutls_record_check_pending(s) > 0 || (p[0].revents & (POLLIN | POLLHUP | POLLERR))) {
			n = gnutls_record_recv(s, buf, sizeof(buf));
			if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
				continue;
			if (n <= 0 || write(daemon_fd, buf, (size_t)n) != n)
				return;
		}
		if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
			n = read(daemon_fd, buf, sizeof(buf));
			if (n <= 0)
				return;
			for (ssize_t off = 0; off < n;) {
				ssize_t w = gnutls_record_send(s, buf + off, (size_t)(n - off));

				if (w == GNUTLS_E_INTERRUPTED)
					continue;
				if (w < 0) /* GNUTLS_E_AGAIN: SO_SNDTIMEO */
					return;
				off += w;
			}
			gnutls_memset(buf, 0, (size_t)n); /* it may hold keys */
		}
		p[0].revents = p[1].revents = 0;
	}
}

struct conn {
	struct front *f;
	int fd;
	struct sockaddr_storage peer;
	socklen_t peer_len;
};

static const gnutls_datum_t alpn[] = {
	{ (unsigned char *)"h2", 2 },
	{ (unsigned char *)"http/1.1", 8 },
};

/* Blocking sends without a timeout would let a client that stops reading
 * hold its connection and thread for ever; libmicrohttpd closes such a
 * connection after its connection timeout, and so does the front. A send
 * that times out then fails with GNUTLS_E_AGAIN. */
static void set_send_timeout(int fd, unsigned seconds)
{
	struct timeval tv = { .tv_sec = (time_t)seconds };

	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* Room to send: the client still reads. One that stopped would hold
 * gnutls_bye() for another timeout, for a close_notify it never reads. */
static bool can_send(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLOUT };

	return poll(&p, 1, 0) == 1 && (p.revents & POLLOUT);
}

static void *serve(void *arg)
{
	struct conn *c = arg;
	gnutls_session_t s = NULL;
	gnutls_datum_t chosen = { NULL, 0 };
	char cn[KME_ID_MAX + 1];
	const char *why = NULL;
	int rc, dfd;

	if (gnutls_init(&s, GNUTLS_SERVER) != 0)
		goto out;
	gnutls_priority_set(s, c->f->prio);
	gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, c->f->cred);
	tls_session_require_client_cert(s);
	gnutls_alpn_set_protocols(s, alpn, 2, GNUTLS_ALPN_SERVER_PRECEDENCE);
	gnutls_transport_set_int(s, c->fd);
	set_send_timeout(c->fd, c->f->timeout_s);
	gnutls_handshake_set_timeout(s, 10000);
	gnutls_record_set_timeout(s, c->f->timeout_s * 1000);
	do
		rc = gnutls_handshake(s);
	while (rc < 0 && !gnutls_error_is_fatal(rc));
	if (rc < 0)
		goto out;
	if (tls_session_cn(s, cn, sizeof(cn), &why) != 0)
		cn[0] = '\0';
	if (gnutls_alpn_get_selected_protocol(s, &chosen) == 0 &&
	    chosen.size == 2 && memcmp(chosen.data, "h2", 2) == 0) {
		h2_serve(c->f, s, cn, why, (struct sockaddr *)&c->peer,
			 c->peer_len);
	} else {
		dfd = open_to_daemon(c->f, cn, why, "HTTP/1.1",
				     (struct sockaddr *)&c->peer, c->peer_len);
		if (dfd >= 0) {
			relay(s, c->fd, dfd);
			close(dfd);
		}
	}
	if (can_send(c->fd))
		gnutls_bye(s, GNUTLS_SHUT_WR);
out:
	if (s != NULL)
		gnutls_deinit(s);
	conn_done(c->f, c->fd);
	close(c->fd);
	free(c);
	return NULL;
}

__attribute__((format(printf, 3, 4)))
static void log_limited(const struct front *f, struct said *last,
			const char *fmt, ...)
{
	struct timespec now;
	va_list ap;

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (last->ever && now.tv_sec - last->at < LOG_EVERY_S)
		return;
	*last = (struct said){ true, now.tv_sec };
	fprintf(stderr, "kme-sim %s: ", f->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (said at most once a minute)\n");
}

/* Errors of the new connection that Linux hands to accept(): the next
 * one may be fine. */
static bool connection_error(int e)
{
	return e == EINTR || e == ECONNABORTED || e == EPROTO ||
	       e == ENETDOWN || e == ENOPROTOOPT || e == EHOSTDOWN ||
	       e == EHOSTUNREACH || e == EOPNOTSUPP || e == ENETUNREACH ||
	       e == EPERM;
}

static void pause_accepting(void)
{
	struct timespec ts = { 0, ACCEPT_PAUSE_MS * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Serves fd in a thread of its own; closes it if it cannot. */
static void start_serving(struct front *f, int fd,
			  const struct sockaddr_storage *peer,
			  socklen_t peer_len)
{
	struct conn *c = calloc(1, sizeof(*c));
	pthread_t t;
	int rc = c == NULL ? -1 : conn_add(f, fd);

	if (rc == 1)
		log_limited(f, &f->said_limit, "%d connections being served; "
			    "closing new ones", FRONT_MAX_CONNECTIONS);
	else if (rc != 0)
		log_limited(f, &f->said_accept, "cannot serve a connection: "
			    "out of memory");
	if (rc != 0) {
		free(c);
		close(fd);
		return;
	}
	*c = (struct conn){ .f = f, .fd = fd, .peer = *peer,
			    .peer_len = peer_len };
	if ((rc = pthread_create(&t, NULL, serve, c)) != 0) {
		log_limited(f, &f->said_accept, "cannot serve a connection: "
			    "%s", strerror(rc));
		conn_done(f, fd);
		close(fd);
		free(c);
		return;
	}
	pthread_detach(t);
}

/* Only front_stop() ends the loop: a listener that stopped on a failed
 * accept() would leave a process that looks healthy and never answers. */
static void *accept_loop(void *arg)
{
	struct front *f = arg;

	while (!atomic_load(&f->stopping)) {
		struct sockaddr_storage peer;
		socklen_t peer_len = sizeof(peer);
		int fd = accept4(f->fd, (struct sockaddr *)&peer, &peer_len,
				 SOCK_CLOEXEC);

		if (fd >= 0) {
			start_serving(f, fd, &peer, peer_len);
		} else if (!atomic_load(&f->stopping) &&
			   !connection_error(errno)) {
			/* EMFILE, ENFILE, ENOBUFS, ENOMEM */
			log_limited(f, &f->said_accept, "cannot accept a "
				    "connection: %s; retrying", strerror(errno));
			pause_accepting();
		}
	}
	return NULL;
}

struct front *front_start(const char *name, int fd, const char *cert_pem,
			  const char *key_pem, const char *ca_pem,
			  struct MHD_Daemon *daemon, unsigned timeout_s,
			  char *err, size_t errlen)
{
	struct front *f = calloc(1, sizeof(*f));
	gnutls_datum_t cert = { (unsigned char *)cert_pem, (unsigned)strlen(cert_pem) };
	gnutls_datum_t key = { (unsigned char *)key_pem, (unsigned)strlen(key_pem) };
	gnutls_datum_t ca = { (unsigned char *)ca_pem, (unsigned)strlen(ca_pem) };
	int rc;

	if (f == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	f->name = name;
	f->fd = fd;
	f->daemon = daemon;
	f->timeout_s = timeout_s;
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->idle, NULL);
	if ((rc = gnutls_certificate_allocate_credentials(&f->cred)) < 0 ||
	    (rc = gnutls_certificate_set_x509_key_mem(f->cred, &cert, &key,
						      GNUTLS_X509_FMT_PEM)) < 0 ||
	    (rc = gnutls_certificate_set_x509_trust_mem(f->cred, &ca,
							GNUTLS_X509_FMT_PEM)) < 0 ||
	    (rc = gnutls_priority_init(&f->prio, TLS_PRIORITIES, NULL)) < 0) {
		snprintf(err, errlen, "%s", gnutls_strerror(rc));
		free(f);
		return NULL;
	}
	if ((rc = pthread_create(&f->thread, NULL, accept_loop, f)) != 0) {
		snprintf(err, errlen, "%s", strerror(rc));
		free(f);
		return NULL;
	}
	return f;
}

/* Call after fault_begin_shutdown(): no request waits for a fault then,
 * and each connection ends once its socket is shut down. */
void front_stop(struct front *f)
{
	if (f == NULL)
		return;
	atomic_store(&f->stopping, true);
	shutdown(f->fd, SHUT_RDWR); /* accept() returns */
	pthread_join(f->thread, NULL);
	close(f->fd);
	pthread_mutex_lock(&f->lock);
	for (size_t i = 0; i < f->n_conns; i++)
		shutdown(f->conns[i], SHUT_RDWR);
	while (f->n_conns > 0)
		pthread_cond_wait(&f->idle, &f->lock);
	pthread_mutex_unlock(&f->lock);
	gnutls_certificate_free_credentials(f->cred);
	gnutls_priority_deinit(f->prio);
	pthread_mutex_destroy(&f->lock);
	pthread_cond_destroy(&f->idle);
	free(f->conns);
	free(f);
}
