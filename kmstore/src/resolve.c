/* resolve.c - a KME's host name to addresses within a time budget (see
 * resolve.h): c-ares's lookup driven by poll() in the calling thread, and
 * cancelled when the budget runs out. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <ares.h>

#include "clock.h"
#include "resolve.h"

static pthread_once_t ares_once = PTHREAD_ONCE_INIT;
static int ares_init_rc;

static void ares_start(void)
{
	ares_init_rc = ares_library_init(ARES_LIB_INIT_ALL);
}

/* Appends one address, IPv6 in brackets; 0 if it does not fit. */
static int append(char *out, size_t size, const struct sockaddr *sa)
{
	char a[INET6_ADDRSTRLEN];
	size_t used = strlen(out);
	int n;

	if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
			  a, sizeof(a));
	else if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr,
			  a, sizeof(a));
	else
		return 1; /* not an address for us: skipped */
	n = snprintf(out + used, size - used, "%s%s%s%s", used ? "," : "",
		     sa->sa_family == AF_INET6 ? "[" : "", a,
		     sa->sa_family == AF_INET6 ? "]" : "");
	if (n > 0 && (size_t)n < size - used)
		return 1;
	out[used] = '\0'; /* no half address */
	return 0;
}

/* An address in the URL: no lookup at all. */
static int numeric(const char *host)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICHOST };
	struct addrinfo *res = NULL;

	if (getaddrinfo(host, NULL, &hints, &res) != 0)
		return 0;
	freeaddrinfo(res);
	return 1;
}

struct lookup {
	int done;
	int status;
	struct ares_addrinfo *res;
};

static void on_result(void *arg, int status, int timeouts,
		      struct ares_addrinfo *res)
{
	struct lookup *l = arg;

	(void)timeouts;
	l->done = 1;
	l->status = status;
	l->res = res;
}

/* One round: waits for c-ares's sockets or its next timeout, at most
 * until the deadline, and lets it process what happened. */
static int step(ares_channel ch, int64_t deadline)
{
	ares_socket_t socks[ARES_GETSOCK_MAXNUM];
	struct pollfd pfd[ARES_GETSOCK_MAXNUM];
	int64_t left = deadline - kms_now_ms();
	struct timeval max = { .tv_sec = (time_t)(left / 1000),
			       .tv_usec = (suseconds_t)((left % 1000) * 1000) };
	struct timeval tv, *t;
	unsigned bits;
	int n = 0, ready;

	/* The bits by hand: ARES_GETSOCK_WRITABLE shifts a signed 1 into the
	 * sign bit for the last socket (undefined behaviour). */
	bits = (unsigned)ares_getsock(ch, socks, ARES_GETSOCK_MAXNUM);
	for (unsigned i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
		short ev = ((bits & (1u << i)) ? POLLIN : 0) |
			   ((bits & (1u << (i + ARES_GETSOCK_MAXNUM))) ? POLLOUT : 0);

		if (ev != 0)
			pfd[n++] = (struct pollfd){ .fd = socks[i], .events = ev };
	}
	t = ares_timeout(ch, &max, &tv);
	ready = poll(pfd, (nfds_t)n, (int)(t->tv_sec * 1000 + (t->tv_usec + 999) / 1000));
	if (ready < 0 && errno != EINTR)
		return -1;
	if (ready <= 0) {
		ares_process_fd(ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD); /* timeouts */
		return 0;
	}
	for (int i = 0; i < n; i++)
		ares_process_fd(ch,
				(pfd[i].revents & (POLLIN | POLLERR | POLLHUP))
					? pfd[i].fd : ARES_SOCKET_BAD,
				(pfd[i].revents & POLLOUT) ? pfd[i].fd : ARES_SOCKET_BAD);
	return 0;
}

/* How long an answer holds: its shortest TTL, a CNAME's included (a
 * short-lived alias of long-lived addresses). 0 for /etc/hosts. */
static long answer_ttl(const struct ares_addrinfo *res)
{
	long ttl = LONG_MAX;

	for (const struct ares_addrinfo_node *n = res->nodes; n; n = n->ai_next)
		if (n->ai_ttl < ttl)
			ttl = n->ai_ttl > 0 ? n->ai_ttl : 0;
	for (const struct ares_addrinfo_cname *c = res->cnames; c; c = c->next)
		if (c->ttl < ttl)
			ttl = c->ttl > 0 ? c->ttl : 0;
	return ttl == LONG_MAX ? 0 : ttl;
}

static const char *ares_reason(int status)
{
	switch (status) {
	case ARES_ENOTFOUND:
	case ARES_ENODATA:
		return "no such host (in /etc/hosts or DNS)";
	case ARES_ETIMEOUT:
		return "no answer from the DNS servers of /etc/resolv.conf";
	case ARES_ECONNREFUSED:
		return "the DNS servers of /etc/resolv.conf refuse queries";
	default:
		return ares_strerror(status);
	}
}

enum kms_resolve_result kms_resolve(const char *host, int64_t budget_ms,
				    char *out, size_t out_size, long *ttl_s,
				    const char **why)
{
	struct ares_addrinfo_hints hints = { .ai_family = AF_UNSPEC,
					     .ai_socktype = SOCK_STREAM };
	struct lookup l = { 0 };
	int64_t deadline = kms_now_ms() + budget_ms;
	enum kms_resolve_result r = KMS_RESOLVED;
	ares_channel ch;

	*why = NULL;
	*ttl_s = 0;
	out[0] = '\0';
	if (numeric(host))
		return KMS_RESOLVE_ADDRESS;
	pthread_once(&ares_once, ares_start);
	if (ares_init_rc != ARES_SUCCESS) {
		*why = ares_strerror(ares_init_rc);
		return KMS_RESOLVE_FAILED;
	}
	/* A channel per lookup: resolv.conf and /etc/hosts are read afresh,
	 * and no state is shared between threads. */
	if (ares_init(&ch) != ARES_SUCCESS) {
		*why = "c-ares cannot start (out of memory, or no /etc/resolv.conf?)";
		return KMS_RESOLVE_FAILED;
	}
	ares_getaddrinfo(ch, host, NULL, &hints, on_result, &l);
	while (!l.done) {
		if (kms_now_ms() >= deadline) {
			ares_cancel(ch); /* calls on_result: ARES_ECANCELLED */
			break;
		}
		if (step(ch, deadline) != 0) {
			ares_cancel(ch);
			break;
		}
	}
	ares_destroy(ch);
	if (l.status == ARES_ECANCELLED) {
		*why = "the DNS servers of /etc/resolv.conf did not answer in time";
		r = KMS_RESOLVE_TIMEOUT;
	} else if (l.status != ARES_SUCCESS || l.res == NULL) {
		*why = ares_reason(l.status);
		r = KMS_RESOLVE_FAILED;
	} else {
		for (struct ares_addrinfo_node *n = l.res->nodes; n; n = n->ai_next)
			if (!append(out, out_size, n->ai_addr))
				break; /* as many as fit */
		*ttl_s = answer_ttl(l.res);
		if (out[0] == '\0') {
			*why = "no IPv4 or IPv6 address";
			r = KMS_RESOLVE_FAILED;
		}
	}
	if (l.res != NULL)
		ares_freeaddrinfo(l.res);
	return r;
}
