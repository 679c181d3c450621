/*
 * kme-sim: the ETSI GS QKD 014 REST API of one KME (see api.h).
 */
#include "api.h"

#include <gnutls/gnutls.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "etsi_json.h"
#include "front.h"
#include "tls.h"

/* One HTTP request, from its first callback to MHD's "completed". */
struct request {
	char cn[KME_ID_MAX + 1]; /* the caller, from its certificate */
	const char *proto;       /* "HTTP/1.1", "HTTP/2" (--http2) */
	const char *cn_error;    /* why there is no caller, or NULL */
	char *body;
	size_t len, cap;
	bool too_large;
	bool answered;           /* a response went out before the body */
};

/* Per TCP connection. The client certificate cannot change within a
 * connection (no renegotiation, no post-handshake auth), so it is verified
 * and its CN taken once: verifying an ECDSA chain on every request was most
 * of the cost of a keep-alive request. */
struct connection {
	unsigned requests;
	bool identified;
	char cn[KME_ID_MAX + 1];
	const char *cn_error;
};

struct route {
	unsigned ep;                /* enum fault_endpoint */
	char sae[KME_ID_MAX + 1];   /* the SAE ID in the path, decoded */
	bool sae_ok;
};

/* What to send: a JSON body (owned) and its status. */
struct reply {
	unsigned status;
	char *body;
	bool secret;        /* holds key material: wipe when MHD is done */
	const char *allow;  /* Allow header for 405 */
};

/* ---- logging ---- */

static void clean_for_log(const char *in, char *out, size_t outlen)
{
	size_t i = 0;

	for (; *in && i + 1 < outlen; in++)
		out[i++] = ((unsigned char)*in <= 0x20 || *in == 0x7f) ? '?'
									 : *in;
	out[i] = '\0';
}

static void peer_address(struct MHD_Connection *c, char *buf, size_t len)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;
	socklen_t salen = sa && sa->sa_family == AF_INET6
				  ? sizeof(struct sockaddr_in6)
				  : sizeof(struct sockaddr_in);

	if (sa == NULL || getnameinfo(sa, salen, buf, (socklen_t)len, NULL, 0,
				      NI_NUMERICHOST) != 0)
		snprintf(buf, len, "?");
}

/* One line per request; key material never reaches it. status < 0: no
 * response was sent. */
static void log_request(const struct api_server *srv, struct MHD_Connection *c,
			const struct request *rq, const char *method,
			const char *url, int status, const char *fault)
{
	const char *cn = rq->cn;
	char when[32], addr[64], who[KME_ID_MAX + 1], path[256], st[16];
	struct tm tm;
	time_t now = time(NULL);

	if (srv->quiet)
		return;
	gmtime_r(&now, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	peer_address(c, addr, sizeof(addr));
	clean_for_log(cn && *cn ? cn : "-", who, sizeof(who));
	clean_for_log(url, path, sizeof(path));
	if (status < 0)
		snprintf(st, sizeof(st), "-");
	else
		snprintf(st, sizeof(st), "%d", status);
	fprintf(stderr, "%s kme-sim %s %s %s \"%s %s %s\" %s fault=%s\n", when,
		srv->name, addr, who, method, path,
		rq->proto ? rq->proto : "HTTP/1.1", st, fault);
}

/* The key IDs a dec_keys request asked for, as they were decoded: a test
 * can tell that a client escaped them (into the URL or the JSON body). */
static void log_key_ids(const struct api_server *srv, const char *sae,
			char *const *ids, size_t n)
{
	char who[KME_ID_MAX + 1], *json;

	if (srv->quiet)
		return;
	clean_for_log(sae, who, sizeof(who));
	json = etsi_ids_json(ids, n);
	fprintf(stderr, "kme-sim %s dec_keys for %s: key_IDs %s\n",
		srv->model->kmes[srv->kme].id, who, json ? json : "(out of memory)");
	free(json);
}

/* The number of keys an enc_keys request asked for: a test can tell
 * that a client gathered its callers' requests into one. */
static void log_key_number(const struct api_server *srv, const char *sae,
			   unsigned number)
{
	char who[KME_ID_MAX + 1];

	if (srv->quiet)
		return;
	clean_for_log(sae, who, sizeof(who));
	fprintf(stderr, "kme-sim %s enc_keys for %s: number %u\n",
		srv->model->kmes[srv->kme].id, who, number);
}

/* With --verbose, a request that a latency rule holds, as it arrives: a
 * test then knows its client is waiting for the answer. */
static void log_held(const struct api_server *srv, const char *method,
		     const char *url, unsigned long ms)
{
	char path[256];

	if (srv->quiet)
		return;
	clean_for_log(url, path, sizeof(path));
	fprintf(stderr, "kme-sim %s: %s %s: answering in %lu ms (latency)\n",
		srv->name, method, path, ms);
}

/* ---- responses ---- */

static void wipe_string(void *p)
{
	gnutls_memset(p, 0, strlen(p));
	free(p);
}

static enum MHD_Result send_reply(const struct api_server *srv,
				  struct MHD_Connection *c,
				  const struct request *rq, const char *method,
				  const char *url, struct reply *rp,
				  const char *fault)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	if (rp->body == NULL) /* out of memory building it */
		return MHD_NO;
	resp = MHD_create_response_from_buffer_with_free_callback(
		strlen(rp->body), rp->body, rp->secret ? wipe_string : free);
	if (resp == NULL) {
		free(rp->body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				"application/json");
	if (rp->allow != NULL)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, rp->allow);
	ret = MHD_queue_response(c, rp->status, resp);
	MHD_destroy_response(resp);
	log_request(srv, c, rq, method, url, (int)rp->status, fault);
	return ret;
}

static void reply_error(struct reply *rp, const struct api_server *srv,
			const struct kme_result *res)
{
	rp->status = (unsigned)res->status;
	rp->body = etsi_error_json(res->message, res->detail_name,
				   res->detail_value,
				   srv->model->kmes[srv->kme].id);
}

__attribute__((format(printf, 6, 7)))
static void reply_errorf(struct reply *rp, const struct api_server *srv,
			 int status, const char *dname, const char *dval,
			 const char *fmt, ...)
{
	struct kme_result res = { .status = status };
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(res.message, sizeof(res.message), fmt, ap);
	va_end(ap);
	snprintf(res.detail_name, sizeof(res.detail_name), "%s", dname);
	snprintf(res.detail_value, sizeof(res.detail_value), "%s", dval);
	reply_error(rp, srv, &res);
}

/* Only here does a fault that alters keys fire (and count, and show in
 * the log): a request refused before has no keys for it to alter. */
static void reply_keys(struct reply *rp, const struct api_server *srv,
		       struct kme_keys *keys, struct fault_choice *fc)
{
	const struct fault_rule *r = fault_keys_answered(srv->faults, fc);

	if (r != NULL && fault_alter_keys(r, keys) != 0) {
		reply_errorf(rp, srv, 500, "", "", "out of memory");
		return;
	}
	rp->status = MHD_HTTP_OK;
	rp->body = etsi_keys_json(keys);
	rp->secret = true;
}

/* ---- paths and parameters ---- */

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/*
 * MHD decodes the whole path before we see it, which would turn an SAE ID
 * "A%2FB" into a path with one more segment. So the first pass (this
 * callback, used by MHD for the path and the query) decodes every %XX but
 * %2F, %25 and %00; finish_decoding() resolves those inside one component.
 */
size_t api_unescape(void *cls, struct MHD_Connection *c, char *s)
{
	char *r = s, *w = s;

	(void)cls;
	(void)c;
	while (*r) {
		int hi = r[0] == '%' ? hexval(r[1]) : -1;
		int lo = hi >= 0 ? hexval(r[2]) : -1;
		int v = hi * 16 + lo;

		if (lo >= 0 && v != '/' && v != '%' && v != 0) {
			*w++ = (char)v;
			r += 3;
		} else {
			*w++ = *r++;
		}
	}
	*w = '\0';
	return (size_t)(w - s);
}

/* The second pass for one path segment or query value. */
static int finish_decoding(const char *in, size_t n, char *out, size_t outlen)
{
	size_t w = 0, r = 0;

	while (r < n) {
		int v = -1;

		if (in[r] == '%' && r + 2 < n && hexval(in[r + 1]) >= 0 &&
		    hexval(in[r + 2]) >= 0)
			v = hexval(in[r + 1]) * 16 + hexval(in[r + 2]);
		if (v == 0 || w + 1 >= outlen)
			return -1;
		out[w] = v > 0 ? (char)v : in[r];
		r += v > 0 ? 3 : 1;
		if ((unsigned char)out[w] < 0x20 || out[w] == 0x7f)
			return -1;
		w++;
	}
	out[w] = '\0';
	return w > 0 ? 0 : -1;
}

static void route_parse(const char *url, struct route *rt)
{
	static const char prefix[] = "/api/v1/keys/";
	static const struct {
		const char *name;
		unsigned ep;
	} ops[] = { { "status", FAULT_EP_STATUS },
		    { "enc_keys", FAULT_EP_ENC },
		    { "dec_keys", FAULT_EP_DEC } };
	const char *seg, *slash;

	memset(rt, 0, sizeof(*rt));
	rt->ep = FAULT_EP_OTHER;
	if (strncmp(url, prefix, sizeof(prefix) - 1) != 0)
		return;
	seg = url + sizeof(prefix) - 1;
	slash = strchr(seg, '/');
	if (slash == NULL)
		return;
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (strcmp(slash + 1, ops[i].name) == 0)
			rt->ep = ops[i].ep;
	rt->sae_ok = finish_decoding(seg, (size_t)(slash - seg), rt->sae,
				     sizeof(rt->sae)) == 0;
}

/* A GET parameter that, when present, must be a plain decimal number. */
static int query_uint(struct MHD_Connection *c, const char *name,
		      unsigned *out, struct kme_result *res)
{
	const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND,
						    name);
	size_t n = v ? strlen(v) : 0;

	if (v == NULL)
		return 0;
	if (n == 0 || n > 9 || strspn(v, "0123456789") != n) {
		res->status = 400;
		snprintf(res->message, sizeof(res->message),
			 "'%s' must be a decimal integer", name);
		snprintf(res->detail_name, sizeof(res->detail_name), "%s", name);
		snprintf(res->detail_value, sizeof(res->detail_value), "%s", v);
		return -1;
	}
	*out = (unsigned)strtoul(v, NULL, 10);
	return 0;
}

/* ---- the three endpoints ---- */

static void do_status(struct reply *rp, const struct api_server *srv,
		      const struct request *rq, const struct route *rt)
{
	struct kme_status st;
	struct kme_result res;

	if (kme_status_of(srv->model, srv->kme, rq->cn, rt->sae, &st, &res) !=
	    200) {
		reply_error(rp, srv, &res);
		return;
	}
	rp->status = MHD_HTTP_OK;
	rp->body = etsi_status_json(&st);
}

static void do_enc_keys(struct reply *rp, const struct api_server *srv,
			struct MHD_Connection *c, const char *method,
			const struct request *rq, const struct route *rt,
			struct fault_choice *fc)
{
	unsigned number = 1, size = srv->model->set.key_size;
	struct kme_result res = { 0 };
	struct kme_keys keys;
	int bad;

	if (strcmp(method, MHD_HTTP_METHOD_POST) == 0)
		bad = etsi_parse_enc_request(rq->body ? rq->body : "", rq->len,
					     &number, &size, &res);
	else
		bad = query_uint(c, "number", &number, &res) ||
		      query_uint(c, "size", &size, &res);
	if (!bad)
		log_key_number(srv, rt->sae, number);
	if (bad || kme_enc_keys(srv->model, srv->kme, rq->cn, rt->sae, number,
				size, &keys, &res) != 200) {
		reply_error(rp, srv, &res);
		return;
	}
	reply_keys(rp, srv, &keys, fc);
	kme_keys_free(&keys);
}

/* The key IDs of a dec_keys request: a JSON body, or one ?key_ID=. */
static int dec_key_ids(struct MHD_Connection *c, const char *method,
		       const struct request *rq, char ***ids, size_t *n,
		       struct kme_result *res)
{
	const char *v;
	char id[KME_ID_MAX + 1];

	if (strcmp(method, MHD_HTTP_METHOD_POST) == 0)
		return etsi_parse_dec_request(rq->body ? rq->body : "", rq->len,
					      ids, n, res);
	v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "key_ID");
	*ids = NULL;
	*n = 0;
	res->status = 400;
	snprintf(res->detail_name, sizeof(res->detail_name), "key_ID");
	if (v == NULL || finish_decoding(v, strlen(v), id, sizeof(id)) != 0) {
		snprintf(res->message, sizeof(res->message),
			 "dec_keys by GET needs one valid key_ID parameter");
		return -1;
	}
	*ids = calloc(1, sizeof(**ids));
	if (*ids == NULL || ((*ids)[0] = strdup(id)) == NULL) {
		free(*ids);
		*ids = NULL;
		snprintf(res->message, sizeof(res->message), "out of memory");
		return -1;
	}
	*n = 1;
	return 0;
}

static void do_dec_keys(struct reply *rp, const struct api_server *srv,
			struct MHD_Connection *c, const char *method,
			const struct request *rq, const struct route *rt,
			struct fault_choice *fc)
{
	struct kme_result res = { 0 };
	struct kme_keys keys;
	char **ids = NULL;
	size_t n = 0;
	bool parsed = dec_key_ids(c, method, rq, &ids, &n, &res) == 0;

	if (parsed)
		log_key_ids(srv, rt->sae, ids, n);
	if (!parsed ||
	    kme_dec_keys(srv->model, srv->kme, rq->cn, rt->sae,
			 (const char *const *)ids, n, &keys, &res) != 200) {
		reply_error(rp, srv, &res);
	} else {
		reply_keys(rp, srv, &keys, fc);
		kme_keys_free(&keys);
	}
	etsi_free_ids(ids, n);
}

/* ---- one request ---- */

static bool method_allowed(const char *method, unsigned ep)
{
	if (strcmp(method, MHD_HTTP_METHOD_GET) == 0)
		return true;
	return ep != FAULT_EP_STATUS && strcmp(method, MHD_HTTP_METHOD_POST) == 0;
}

static void serve(struct reply *rp, const struct api_server *srv,
		  struct MHD_Connection *c, const char *method,
		  const struct request *rq, const struct route *rt,
		  struct fault_choice *fc)
{
	const struct kme *kme = &srv->model->kmes[srv->kme];

	if (rt->ep == FAULT_EP_OTHER) {
		reply_errorf(rp, srv, 404, "", "", "no such resource; this KME "
			     "serves /api/v1/keys/{SAE_ID}/status, enc_keys "
			     "and dec_keys");
	} else if (!method_allowed(method, rt->ep)) {
		reply_errorf(rp, srv, 405, "method", method,
			     "method %s not allowed here", method);
		rp->allow = rt->ep == FAULT_EP_STATUS ? "GET" : "GET, POST";
	} else if (!kme_has_sae(kme, rq->cn)) {
		reply_errorf(rp, srv, 401, "SAE_ID", rq->cn,
			     "SAE '%s' (client certificate CN) is not attached "
			     "to KME %s", rq->cn, kme->id);
	} else if (rq->too_large) {
		reply_errorf(rp, srv, 413, "", "",
			     "request body larger than %d bytes", API_MAX_BODY);
	} else if (!rt->sae_ok) {
		reply_errorf(rp, srv, 400, "SAE_ID", "",
			     "bad SAE ID in the path");
	} else if (rt->ep == FAULT_EP_STATUS) {
		do_status(rp, srv, rq, rt);
	} else if (rt->ep == FAULT_EP_ENC) {
		do_enc_keys(rp, srv, c, method, rq, rt, fc);
	} else {
		do_dec_keys(rp, srv, c, method, rq, rt, fc);
	}
}

/* drop and blackhole send nothing: returning MHD_NO makes MHD close the
 * connection without a response. */
static enum MHD_Result answer_fault(const struct api_server *srv,
				    struct MHD_Connection *c,
				    const struct request *rq,
				    const char *method, const char *url,
				    const struct fault_choice *fc)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;
	unsigned status;

	if (fc->rule->kind == FAULT_DROP || fc->rule->kind == FAULT_BLACKHOLE) {
		log_request(srv, c, rq, method, url, -1, fc->desc);
		if (fc->rule->kind == FAULT_BLACKHOLE)
			fault_wait_for_shutdown();
		return MHD_NO;
	}
	resp = fault_response(fc->rule, srv->model->kmes[srv->kme].id, &status);
	if (resp == NULL)
		return MHD_NO;
	ret = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	log_request(srv, c, rq, method, url, (int)status, fc->desc);
	return ret;
}

static enum MHD_Result finish_request(const struct api_server *srv,
				      struct MHD_Connection *c,
				      const char *url, const char *method,
				      const struct request *rq)
{
	struct route rt;
	struct fault_choice fc;
	struct reply rp = { 0 };

	route_parse(url, &rt);
	fault_pick(srv->faults, srv->model->kmes[srv->kme].id, srv->slot, rt.ep,
		   &fc);
	if (fc.latency_ms > 0) {
		if (srv->verbose)
			log_held(srv, method, url, fc.latency_ms);
		fault_sleep_ms(fc.latency_ms);
	}
	if (fc.rule != NULL && fault_replaces_answer(fc.rule))
		return answer_fault(srv, c, rq, method, url, &fc);
	serve(&rp, srv, c, method, rq, &rt, &fc);
	return send_reply(srv, c, rq, method, url, &rp, fc.desc);
}

/* The caller of this request, from the connection's certificate, and the
 * protocol it spoke (the front's, for a connection it handed over). */
static int identify(struct MHD_Connection *c, const char *version,
		    struct request *rq)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	struct connection *conn = ci ? ci->socket_context : NULL;
	const union MHD_ConnectionInfo *fd =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	char cn[KME_ID_MAX + 1];
	const char *why;

	rq->proto = version;
	if (fd != NULL)
		front_client(fd->connect_fd, cn, sizeof(cn), &why, &rq->proto);

	if (conn == NULL) /* no context (out of memory): verify every time */
		return tls_client_cn(c, rq->cn, sizeof(rq->cn), &rq->cn_error);
	conn->requests++;
	if (!conn->identified) {
		tls_client_cn(c, conn->cn, sizeof(conn->cn), &conn->cn_error);
		conn->identified = true;
	}
	memcpy(rq->cn, conn->cn, sizeof(rq->cn));
	rq->cn_error = conn->cn_error;
	return rq->cn_error != NULL ? -1 : 0;
}

/* First callback of a request: who is calling, and is the body too big?
 * Both are answered at once, without reading the body. */
static enum MHD_Result begin_request(const struct api_server *srv,
				     struct MHD_Connection *c,
				     const char *url, const char *method,
				     const char *version, void **req_cls)
{
	struct request *rq = calloc(1, sizeof(*rq));
	const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
						     MHD_HTTP_HEADER_CONTENT_LENGTH);
	struct reply rp = { 0 };

	if (rq == NULL)
		return MHD_NO;
	*req_cls = rq;
	if (identify(c, version, rq) != 0)
		reply_errorf(&rp, srv, 401, "", "", "%s", rq->cn_error);
	else if (cl != NULL && strtoull(cl, NULL, 10) > API_MAX_BODY)
		reply_errorf(&rp, srv, 413, "", "",
			     "request body larger than %d bytes", API_MAX_BODY);
	else
		return MHD_YES;
	rq->answered = true;
	return send_reply(srv, c, rq, method, url, &rp, "-");
}

static void append_body(struct request *rq, const char *data, size_t n)
{
	char *nb;

	if (rq->too_large)
		return;
	if (rq->len + n > API_MAX_BODY) {
		rq->too_large = true;
		return;
	}
	if (rq->len + n + 1 > rq->cap) {
		rq->cap = (rq->len + n + 1) * 2;
		nb = realloc(rq->body, rq->cap);
		if (nb == NULL) {
			rq->too_large = true;
			return;
		}
		rq->body = nb;
	}
	memcpy(rq->body + rq->len, data, n);
	rq->len += n;
	rq->body[rq->len] = '\0';
}

enum MHD_Result api_handle(void *cls, struct MHD_Connection *c,
			   const char *url, const char *method,
			   const char *version, const char *upload_data,
			   size_t *upload_data_size, void **req_cls)
{
	const struct api_server *srv = cls;
	struct request *rq = *req_cls;

	if (rq == NULL)
		return begin_request(srv, c, url, method, version, req_cls);
	if (rq->answered) {
		*upload_data_size = 0; /* the body of a refused request */
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		append_body(rq, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return MHD_YES;
	}
	return finish_request(srv, c, url, method, rq);
}

void api_request_done(void *cls, struct MHD_Connection *c, void **req_cls,
		      enum MHD_RequestTerminationCode toe)
{
	struct request *rq = *req_cls;

	(void)cls;
	(void)c;
	(void)toe;
	if (rq != NULL) {
		free(rq->body);
		free(rq);
		*req_cls = NULL;
	}
}

void api_connection_event(void *cls, struct MHD_Connection *c,
			  void **socket_cls,
			  enum MHD_ConnectionNotificationCode code)
{
	const struct api_server *srv = cls;
	struct connection *conn = *socket_cls;
	const union MHD_ConnectionInfo *ci;
	char addr[64];

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		tls_require_client_cert(c);
		*socket_cls = calloc(1, sizeof(struct connection));
		return;
	}
	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (ci != NULL)
		front_forget(ci->connect_fd); /* --http2: before the fd is reused */
	if (srv->verbose && conn != NULL && conn->requests == 0) {
		peer_address(c, addr, sizeof(addr));
		fprintf(stderr, "kme-sim %s: connection from %s closed without "
			"a request\n", srv->name, addr);
	}
	free(conn);
	*socket_cls = NULL;
}
