/*
 * kme-sim: HTTP/2 connections of a KME with --http2 (see front.h), with
 * nghttp2. Each stream is one request: once its headers and body are in,
 * it goes to the KME's daemon as an HTTP/1.1 request, and the daemon's
 * answer comes back as the stream's response. Streams are served one after
 * the other (a fault's latency holds the connection, as it holds an
 * HTTP/1.1 one).
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>

#include "api.h"
#include "front.h"

/* A request body larger than the daemon takes is not worth buffering:
 * the daemon answers 413 on its Content-Length alone. */
#define H2_BODY_MAX (API_MAX_BODY + 1)
#define H2_ANSWER_MAX (16u << 20) /* the oversized fault's default is 8 MiB */

struct stream {
	int32_t id;
	char method[16], path[1024], type[128];
	char *body;
	size_t len;
	bool too_large, complete;
	/* the daemon's answer */
	char *answer;      /* whole: status line, headers, body */
	size_t answer_len, body_at, sent;
	long content_length;
	bool cut;          /* fewer body bytes than Content-Length */
	struct stream *next_ready;
	struct stream *next; /* every stream of the connection */
};

struct h2 {
	struct front *f;
	gnutls_session_t s;
	const char *cn, *why;
	const struct sockaddr *peer;
	socklen_t peer_len;
	struct stream *ready; /* complete requests, to be answered */
	struct stream *all;
};

static void stream_free(struct stream *st)
{
	if (st == NULL)
		return;
	free(st->body);
	if (st->answer != NULL) {
		gnutls_memset(st->answer, 0, st->answer_len); /* keys */
		free(st->answer);
	}
	free(st);
}

static ssize_t on_send(nghttp2_session *ns, const uint8_t *data, size_t len,
		       int flags, void *arg)
{
	struct h2 *h = arg;
	ssize_t n;

	(void)ns;
	(void)flags;
	/* GNUTLS_E_AGAIN: the client read nothing for the connection
	 * timeout (SO_SNDTIMEO, front.c); the connection ends. */
	do
		n = gnutls_record_send(h->s, data, len);
	while (n == GNUTLS_E_INTERRUPTED);
	return n < 0 ? NGHTTP2_ERR_CALLBACK_FAILURE : n;
}

static int on_begin_headers(nghttp2_session *ns, const nghttp2_frame *frame,
			    void *arg)
{
	struct h2 *h = arg;
	struct stream *st;

	if (frame->hd.type != NGHTTP2_HEADERS ||
	    frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	st = calloc(1, sizeof(*st));
	if (st == NULL)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	st->id = frame->hd.stream_id;
	st->next = h->all;
	h->all = st;
	nghttp2_session_set_stream_user_data(ns, st->id, st);
	return 0;
}

static void copy_value(char *dst, size_t size, const uint8_t *v, size_t n)
{
	if (n >= size)
		n = size - 1;
	memcpy(dst, v, n);
	dst[n] = '\0';
}

static int on_header(nghttp2_session *ns, const nghttp2_frame *frame,
		     const uint8_t *name, size_t namelen, const uint8_t *value,
		     size_t valuelen, uint8_t flags, void *arg)
{
	struct stream *st = nghttp2_session_get_stream_user_data(ns, frame->hd.stream_id);

	(void)flags;
	(void)arg;
	if (st == NULL)
		return 0;
	/* nghttp2 has already refused control characters in values */
	if (namelen == 7 && memcmp(name, ":method", 7) == 0)
		copy_value(st->method, sizeof(st->method), value, valuelen);
	else if (namelen == 5 && memcmp(name, ":path", 5) == 0)
		copy_value(st->path, sizeof(st->path), value, valuelen);
	else if (namelen == 12 && memcmp(name, "content-type", 12) == 0)
		copy_value(st->type, sizeof(st->type), value, valuelen);
	return 0;
}

static int on_data(nghttp2_session *ns, uint8_t flags, int32_t id,
		   const uint8_t *data, size_t len, void *arg)
{
	struct stream *st = nghttp2_session_get_stream_user_data(ns, id);
	char *grown;

	(void)flags;
	(void)arg;
	if (st == NULL || st->too_large)
		return 0;
	if (st->len + len > H2_BODY_MAX) {
		/* enough for the daemon to refuse it (413): the rest is dropped */
		st->too_large = true;
		len = H2_BODY_MAX - st->len;
	}
	grown = realloc(st->body, st->len + len + 1);
	if (grown == NULL)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	st->body = grown;
	memcpy(st->body + st->len, data, len);
	st->len += len;
	return 0;
}

static int on_frame(nghttp2_session *ns, const nghttp2_frame *frame, void *arg)
{
	struct h2 *h = arg;
	struct stream *st;

	if ((frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) ||
	    !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
		return 0;
	st = nghttp2_session_get_stream_user_data(ns, frame->hd.stream_id);
	if (st == NULL || st->complete)
		return 0;
	st->complete = true;
	st->next_ready = h->ready;
	h->ready = st;
	return 0;
}

static int on_close(nghttp2_session *ns, int32_t id, uint32_t code, void *arg)
{
	struct h2 *h = arg;
	struct stream *st = nghttp2_session_get_stream_user_data(ns, id);

	(void)code;
	if (st == NULL)
		return 0;
	for (struct stream **p = &h->ready; *p != NULL; p = &(*p)->next_ready)
		if (*p == st) {
			*p = st->next_ready;
			break;
		}
	for (struct stream **p = &h->all; *p != NULL; p = &(*p)->next)
		if (*p == st) {
			*p = st->next;
			break;
		}
	nghttp2_session_set_stream_user_data(ns, id, NULL);
	stream_free(st);
	return 0;
}

/* The request, as HTTP/1.1, to the daemon; its whole answer back (the
 * daemon closes after it: Connection: close). */
static int ask_daemon(struct h2 *h, struct stream *st)
{
	int fd = front_open_to_daemon(h->f, h->cn, h->why, "HTTP/2", h->peer,
				      h->peer_len);
	char head[2048];
	size_t cap = 0;
	int n;

	if (fd < 0)
		return -1;
	n = snprintf(head, sizeof(head),
		     "%s %s HTTP/1.1\r\nHost: kme\r\nConnection: close\r\n"
		     "Accept: application/json\r\n%s%s%sContent-Length: %zu\r\n\r\n",
		     st->method, st->path, st->type[0] ? "Content-Type: " : "",
		     st->type, st->type[0] ? "\r\n" : "", st->len);
	if (n <= 0 || (size_t)n >= sizeof(head) || write(fd, head, (size_t)n) != n) {
		close(fd);
		return -1;
	}
	/* The daemon may answer (413) and close before it reads the body:
	 * then the write fails, and its answer is still there to read. */
	if (st->len > 0 && write(fd, st->body, st->len) != (ssize_t)st->len)
		shutdown(fd, SHUT_WR);
	for (;;) {
		ssize_t r;

		if (st->answer_len == cap) {
			char *grown;

			if (cap >= H2_ANSWER_MAX)
				break;
			cap = cap ? 2 * cap : 4096;
			grown = realloc(st->answer, cap + 1);
			if (grown == NULL)
				break;
			st->answer = grown;
		}
		r = read(fd, st->answer + st->answer_len, cap - st->answer_len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		st->answer_len += (size_t)r;
	}
	close(fd);
	if (st->answer != NULL)
		st->answer[st->answer_len] = '\0';
	return 0;
}

/* The value of header name in the daemon's header block, or NULL. */
static const char *header(const char *block, const char *name, size_t *len)
{
	size_t n = strlen(name);

	for (const char *l = strstr(block, "\r\n"); l != NULL; l = strstr(l + 2, "\r\n")) {
		const char *v = l + 2;

		if (strncasecmp(v, name, n) == 0 && v[n] == ':') {
			v += n + 1;
			while (*v == ' ')
				v++;
			*len = strcspn(v, "\r\n");
			return v;
		}
	}
	return NULL;
}

static ssize_t read_body(nghttp2_session *ns, int32_t id, uint8_t *buf,
			 size_t len, uint32_t *flags,
			 nghttp2_data_source *source, void *arg)
{
	struct stream *st = source->ptr;
	size_t left = st->answer_len - st->body_at - st->sent;

	(void)ns;
	(void)id;
	(void)arg;
	if (left == 0) {
		if (st->cut) /* the daemon cut the body: so is the stream */
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
		*flags |= NGHTTP2_DATA_FLAG_EOF;
		return 0;
	}
	if (left > len)
		left = len;
	memcpy(buf, st->answer + st->body_at + st->sent, left);
	st->sent += left;
	return (ssize_t)left;
}

/* The daemon's answer as the stream's response; a stream reset when there
 * is none (the drop fault). */
static void respond(nghttp2_session *ns, struct stream *st)
{
	nghttp2_data_provider body = { .source.ptr = st, .read_callback = read_body };
	char status[4], *end;
	nghttp2_nv nv[3];
	const char *v, *blank;
	size_t vlen, n = 0;
	long code;

	blank = st->answer ? strstr(st->answer, "\r\n\r\n") : NULL;
	code = st->answer ? strtol(st->answer + strcspn(st->answer, " "), &end, 10) : 0;
	if (blank == NULL || code < 100 || code > 599) {
		nghttp2_submit_rst_stream(ns, NGHTTP2_FLAG_NONE, st->id,
					  NGHTTP2_INTERNAL_ERROR);
		return;
	}
	*(char *)(blank + 2) = '\0'; /* the header block, for header() */
	st->body_at = (size_t)(blank + 4 - st->answer);
	v = header(st->answer, "Content-Length", &vlen);
	st->content_length = v ? strtol(v, NULL, 10) : -1;
	st->cut = st->content_length >= 0 &&
		  st->answer_len - st->body_at < (size_t)st->content_length;
	snprintf(status, sizeof(status), "%03ld", code);
	nv[n++] = (nghttp2_nv){ (uint8_t *)":status", (uint8_t *)status, 7, 3,
				NGHTTP2_NV_FLAG_NONE };
	if ((v = header(st->answer, "Content-Type", &vlen)) != NULL)
		nv[n++] = (nghttp2_nv){ (uint8_t *)"content-type", (uint8_t *)v,
					12, vlen, NGHTTP2_NV_FLAG_NONE };
	if ((v = header(st->answer, "Allow", &vlen)) != NULL)
		nv[n++] = (nghttp2_nv){ (uint8_t *)"allow", (uint8_t *)v, 5, vlen,
					NGHTTP2_NV_FLAG_NONE };
	nghttp2_submit_response(ns, st->id, nv, n, &body);
}

void h2_serve(struct front *f, gnutls_session_t s, const char *cn,
	      const char *why, const struct sockaddr *peer, socklen_t peer_len)
{
	struct h2 h = { .f = f, .s = s, .cn = cn, .why = why, .peer = peer,
			.peer_len = peer_len };
	nghttp2_settings_entry settings = { NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 16 };
	nghttp2_session_callbacks *cb;
	nghttp2_session *ns;
	uint8_t buf[16384];

	if (nghttp2_session_callbacks_new(&cb) != 0)
		return;
	nghttp2_session_callbacks_set_send_callback(cb, on_send);
	nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);
	if (nghttp2_session_server_new(&ns, cb, &h) != 0) {
		nghttp2_session_callbacks_del(cb);
		return;
	}
	nghttp2_session_callbacks_del(cb);
	nghttp2_submit_settings(ns, NGHTTP2_FLAG_NONE, &settings, 1);
	for (;;) {
		ssize_t n;

		while (h.ready != NULL) {
			struct stream *st = h.ready;

			h.ready = st->next_ready;
			if (ask_daemon(&h, st) != 0)
				nghttp2_submit_rst_stream(ns, NGHTTP2_FLAG_NONE, st->id,
							  NGHTTP2_INTERNAL_ERROR);
			else
				respond(ns, st);
		}
		if (nghttp2_session_send(ns) != 0)
			break;
		if (!nghttp2_session_want_read(ns) && !nghttp2_session_want_write(ns))
			break;
		n = gnutls_record_recv(s, buf, sizeof(buf));
		if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
			continue;
		if (n <= 0 || nghttp2_session_mem_recv(ns, buf, (size_t)n) < 0)
			break;
	}
	nghttp2_session_del(ns);
	while (h.all != NULL) { /* streams the connection's end cut short */
		struct stream *st = h.all;

		h.all = st->next;
		stream_free(st);
	}
}
