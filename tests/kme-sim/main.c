/*
 * kme-sim: an ETSI GS QKD 014 (V1.1.1) KME simulator.
 *
 * One process serves several KMEs, each on its own address and port with
 * mutual TLS, joined pairwise by simulated QKD links (kme.h). This file
 * holds the command line, the startup and the signal handling.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <getopt.h>
#include <gnutls/gnutls.h>
#include <json-c/json_c_version.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api.h"
#include "fault.h"
#include "front.h"
#include "kme.h"
#include "tls.h"

#define KME_SIM_VERSION "0.1.0"
/* Certificates and keys are small; anything bigger is a wrong file. */
#define PEM_MAX (1024 * 1024)

struct listener {
	size_t kme;     /* the KME it serves, an index in kmes */
	char name[KME_ID_MAX + 8]; /* the KME's ID; ID/2, ID/3... for more */
	char slot[KME_ID_MAX + 8]; /* ID/1, ID/2...: what --fault kme= names */
	char *listen;   /* as given */
	char *cert_file, *key_file;
	char *cert_pem, *key_pem;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	int fd;
	unsigned port;  /* the bound port, ephemeral or not */
	struct MHD_Daemon *daemon;
	struct front *front;     /* --http2: the TLS in front of the daemon */
	struct api_server srv;
};

struct options {
	const char *ca_file;
	char *ca_pem;
	struct kme *kmes;        /* handed to the model */
	size_t n;
	struct listener *ls;     /* each serves one KME; a KME has one or more */
	size_t n_ls;
	struct kme_settings set;
	struct fault_set faults;
	const char *ready_file;
	unsigned conn_timeout;   /* seconds */
	bool verbose, quiet, http2;
};

/* libmicrohttpd's own messages: always while starting (they explain a
 * failed start), afterwards only with --verbose (TLS noise of clients). */
static atomic_bool mhd_log_all = true;

/* With --http2 the daemon's connections are socket pairs from the front,
 * on which libmicrohttpd's TCP options fail for every answer: three lines
 * of noise per request that say nothing about the client. */
static bool socket_pair_noise(const char *msg)
{
	return strncmp(msg, "Setting TCP_NODELAY option", 26) == 0 ||
	       strncmp(msg, "Setting TCP_CORK option", 23) == 0 ||
	       strncmp(msg, "Failed to push the data from buffers", 36) == 0;
}

__attribute__((format(printf, 2, 0)))
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	const struct options *o = cls;
	char msg[1024];

	if (!o->verbose && !atomic_load(&mhd_log_all))
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (o->http2 && socket_pair_noise(msg))
		return;
	fprintf(stderr, "kme-sim: libmicrohttpd: %s", msg);
}

__attribute__((format(printf, 1, 2), noreturn))
static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("kme-sim: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void usage(FILE *f)
{
	fprintf(f,
"Usage: kme-sim --ca CA.crt --kme SPEC [--kme SPEC ...] [options]\n"
"\n"
"An ETSI GS QKD 014 (V1.1.1) KME simulator: every --kme is a KME with its\n"
"own HTTPS listener (mutual TLS, TLS 1.2+); all KMEs of the process are\n"
"joined pairwise by simulated QKD links. The SAE is the client certificate's\n"
"subject CN, which must verify against --ca.\n"
"\n"
"  --ca FILE                 CA certificate(s), PEM, for client certificates\n"
"  --kme id=ID,listen=ADDR:PORT,cert=FILE,key=FILE,sae=SAE[+SAE...]\n"
"                            a KME: server certificate and key (PEM), the\n"
"                            SAE IDs attached to it (sae= may repeat).\n"
"                            ADDR numeric IPv4 or [IPv6]; PORT 0: ephemeral.\n"
"                            listen= may repeat: more listeners of the same\n"
"                            KME (one key store), shown as ID/2, ID/3...\n"
"  --pool-size N             keys (of --key-size) per link pool [1000]\n"
"  --key-rate R              keys/s added to each pool; 0: never refilled;\n"
"                            inf: always full [inf]. Pools start full.\n"
"  --key-size BITS           default key size [256]\n"
"  --min-key-size BITS       smallest size enc_keys accepts [64]\n"
"  --max-key-size BITS       largest size enc_keys accepts [4096]\n"
"  --max-keys-per-request N  max_key_per_request [128]\n"
"  --max-pending N           keys delivered but not yet retrieved kept per\n"
"                            link; beyond that the oldest go [100000]\n"
"  --sequential-ids          key_IDs 00000000-0000-4000-8000-000000000001,\n"
"                            ...002 and so on, instead of random UUIDs\n"
"  --fault SPEC              inject a fault (repeatable), SPEC is\n"
"                            [kme=ID:]KIND[=ARG][:PCT][,kme=ID]\n"
"                            (ID: a KME's listeners; ID/N: its Nth only)\n"
"                            [,path=status|enc_keys|dec_keys|other[+...]]\n"
"                            [,count=N][,after=N]; KIND is latency=MS,\n"
"                            503, drop, malformed, truncated,\n"
"                            oversized[=BYTES],\n"
"                            html-error[=STATUS], status=STATUS,\n"
"                            wrong-length, wrong-id, extra-key, blackhole;\n"
"                            PCT: chance in percent [100]\n"
"  --http2                   offer HTTP/2 too (ALPN h2, then http/1.1), as\n"
"                            KMEs behind an HTTP/2 server do\n"
"  --connection-timeout S    close a connection idle, or whose client reads\n"
"                            nothing of an answer, for S seconds [60]\n"
"  --ready-file FILE         when listening, write the 'ID URL' lines here\n"
"                            (atomically) as well as to stdout\n"
"  -v, --verbose             also log TLS/connection problems, and\n"
"                            requests held by latency as they arrive\n"
"  -q, --quiet               no per-request log lines\n"
"  -h, --help, --version\n"
"\n"
"Each listener prints 'NAME https://ADDR:PORT' on stdout once all listen.\n"
"SIGTERM\n"
"or SIGINT stops the simulator (exit 0). See docs/kme-sim.md.\n");
}

static char *read_pem(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	size_t n;

	if (f == NULL)
		die("cannot open %s: %s", path, strerror(errno));
	buf = malloc(PEM_MAX + 1);
	if (buf == NULL)
		die("out of memory");
	n = fread(buf, 1, PEM_MAX + 1, f);
	if (ferror(f) || n > PEM_MAX)
		die("cannot read %s: %s", path,
		    n > PEM_MAX ? "too large" : strerror(errno));
	fclose(f);
	buf[n] = '\0';
	if (strstr(buf, "-----BEGIN ") == NULL)
		die("%s is not a PEM file", path);
	return buf;
}

static bool valid_id(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > KME_ID_MAX)
		return false;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return false;
	return true;
}

static unsigned long parse_num(const char *opt, const char *s,
			       unsigned long min, unsigned long max)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (*s < '0' || *s > '9' || *end || errno || v < min || v > max)
		die("%s: '%s' is not a number from %lu to %lu", opt, s, min, max);
	return v;
}

static double parse_rate(const char *s)
{
	char *end;
	double v;

	if (strcmp(s, "inf") == 0 || strcmp(s, "unlimited") == 0)
		return INFINITY;
	errno = 0;
	v = strtod(s, &end);
	if (*s == '\0' || *end || errno || !(v >= 0) || isinf(v))
		die("--key-rate: '%s' is not a rate >= 0 (or inf)", s);
	return v;
}

/* Split ADDR:PORT or [IPv6]:PORT; returns whether it was bracketed. */
static bool split_listen(const char *s, char *host, size_t hostlen,
			 unsigned long *port)
{
	bool v6 = *s == '[';
	const char *h = v6 ? s + 1 : s;
	const char *end = v6 ? strchr(s, ']') : strrchr(s, ':');
	const char *colon = v6 && end ? end + 1 : end;

	if (end == NULL || colon == NULL || *colon != ':')
		die("listen=%s: expected ADDR:PORT or [IPv6]:PORT", s);
	if (end == h || (size_t)(end - h) >= hostlen)
		die("listen=%s: bad address", s);
	memcpy(host, h, (size_t)(end - h));
	host[end - h] = '\0';
	*port = parse_num("listen port", colon + 1, 0, 65535);
	return v6;
}

/* A numeric address only: no name resolution at startup. */
static void parse_listen(struct listener *l)
{
	char host[64];
	unsigned long port;
	bool v6 = split_listen(l->listen, host, sizeof(host), &port);

	memset(&l->addr, 0, sizeof(l->addr));
	if (v6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&l->addr;

		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		l->addrlen = sizeof(*a);
		if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
			die("listen=%s: '%s' is not an IPv6 address",
			    l->listen, host);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&l->addr;

		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)port);
		l->addrlen = sizeof(*a);
		if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
			die("listen=%s: '%s' is not a numeric IPv4 address",
			    l->listen, host);
	}
}

static void add_saes(struct kme *k, char *list)
{
	char *save = NULL;

	for (char *s = strtok_r(list, "+", &save); s != NULL;
	     s = strtok_r(NULL, "+", &save)) {
		if (!valid_id(s))
			die("bad SAE ID '%s' (1 to %d printable characters)",
			    s, KME_ID_MAX);
		k->saes = realloc(k->saes, (k->n_saes + 1) * sizeof(*k->saes));
		if (k->saes == NULL || (k->saes[k->n_saes] = strdup(s)) == NULL)
			die("out of memory");
		k->n_saes++;
	}
}

static void set_field(char **field, const char *name, const char *value)
{
	if (*field != NULL)
		die("--kme: %s= given twice", name);
	*field = strdup(value);
	if (*field == NULL)
		die("out of memory");
}

static char *copy(const char *s)
{
	char *c = strdup(s);

	if (c == NULL)
		die("out of memory");
	return c;
}

/* id=ID,listen=ADDR:PORT[,listen=...],cert=FILE,key=FILE,sae=SAE[+SAE...] */
static void add_kme(struct options *o, const char *spec)
{
	char *buf = strdup(spec), *save = NULL, *cert = NULL, *key = NULL;
	char **listens = NULL;
	size_t n_listens = 0;
	struct kme *k;

	o->kmes = realloc(o->kmes, (o->n + 1) * sizeof(*o->kmes));
	if (buf == NULL || o->kmes == NULL)
		die("out of memory");
	k = memset(&o->kmes[o->n], 0, sizeof(*k));
	for (char *t = strtok_r(buf, ",", &save); t != NULL;
	     t = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(t, '=');

		if (eq == NULL)
			die("--kme: '%s' is not name=value", t);
		*eq++ = '\0';
		if (strcmp(t, "id") == 0) {
			set_field(&k->id, "id", eq);
		} else if (strcmp(t, "listen") == 0) {
			listens = realloc(listens, (n_listens + 1) * sizeof(*listens));
			if (listens == NULL)
				die("out of memory");
			listens[n_listens++] = copy(eq);
		} else if (strcmp(t, "cert") == 0) {
			set_field(&cert, "cert", eq);
		} else if (strcmp(t, "key") == 0) {
			set_field(&key, "key", eq);
		} else if (strcmp(t, "sae") == 0) {
			add_saes(k, eq);
		} else {
			die("--kme: unknown field '%s' (id, listen, cert, key, "
			    "sae)", t);
		}
	}
	free(buf);
	if (!k->id || !n_listens || !cert || !key || !k->n_saes)
		die("--kme %s: id=, listen=, cert=, key= and sae= are all "
		    "needed", spec);
	if (!valid_id(k->id) || strchr(k->id, '/') != NULL)
		die("--kme: bad KME ID '%s' (no '/')", k->id);
	o->ls = realloc(o->ls, (o->n_ls + n_listens) * sizeof(*o->ls));
	if (o->ls == NULL)
		die("out of memory");
	for (size_t i = 0; i < n_listens; i++) {
		struct listener *l = memset(&o->ls[o->n_ls++], 0, sizeof(*l));

		l->kme = o->n;
		if (i == 0)
			snprintf(l->name, sizeof(l->name), "%s", k->id);
		else
			snprintf(l->name, sizeof(l->name), "%s/%zu", k->id, i + 1);
		snprintf(l->slot, sizeof(l->slot), "%s/%zu", k->id, i + 1);
		l->listen = listens[i];
		l->cert_file = copy(cert);
		l->key_file = copy(key);
		parse_listen(l);
		l->fd = -1;
	}
	free(listens);
	free(cert);
	free(key);
	o->n++;
}

enum {
	OPT_POOL = 256, OPT_RATE, OPT_KEY_SIZE, OPT_MIN, OPT_MAX, OPT_PER_REQ,
	OPT_PENDING, OPT_SEQ, OPT_READY, OPT_VERSION, OPT_HTTP2, OPT_TIMEOUT,
};

static const struct option long_opts[] = {
	{ "ca", required_argument, NULL, 'c' },
	{ "kme", required_argument, NULL, 'k' },
	{ "pool-size", required_argument, NULL, OPT_POOL },
	{ "key-rate", required_argument, NULL, OPT_RATE },
	{ "key-size", required_argument, NULL, OPT_KEY_SIZE },
	{ "min-key-size", required_argument, NULL, OPT_MIN },
	{ "max-key-size", required_argument, NULL, OPT_MAX },
	{ "max-keys-per-request", required_argument, NULL, OPT_PER_REQ },
	{ "max-pending", required_argument, NULL, OPT_PENDING },
	{ "sequential-ids", no_argument, NULL, OPT_SEQ },
	{ "fault", required_argument, NULL, 'f' },
	{ "ready-file", required_argument, NULL, OPT_READY },
	{ "http2", no_argument, NULL, OPT_HTTP2 },
	{ "connection-timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "verbose", no_argument, NULL, 'v' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ NULL, 0, NULL, 0 },
};

static void version(void)
{
	printf("kme-sim %s (libmicrohttpd %s, GnuTLS %s, json-c %s)\n",
	       KME_SIM_VERSION, MHD_get_version(), gnutls_check_version(NULL),
	       json_c_version());
	exit(0);
}

static void parse_option(struct options *o, int c, const char *arg)
{
	char err[256];

	switch (c) {
	case 'c': o->ca_file = arg; break;
	case 'k': add_kme(o, arg); break;
	case OPT_POOL:
		o->set.pool_size = (unsigned)parse_num("--pool-size", arg, 1,
						       100000000);
		break;
	case OPT_RATE: o->set.key_rate = parse_rate(arg); break;
	case OPT_KEY_SIZE:
		o->set.key_size = (unsigned)parse_num("--key-size", arg, 8, 65536);
		break;
	case OPT_MIN:
		o->set.min_key_size = (unsigned)parse_num("--min-key-size", arg,
							  8, 65536);
		break;
	case OPT_MAX:
		o->set.max_key_size = (unsigned)parse_num("--max-key-size", arg,
							  8, 65536);
		break;
	case OPT_PER_REQ:
		o->set.max_keys_per_request = (unsigned)parse_num(
			"--max-keys-per-request", arg, 1, 10000);
		break;
	case OPT_PENDING:
		o->set.max_pending = (unsigned)parse_num("--max-pending", arg,
							 1, 100000000);
		break;
	case OPT_SEQ: o->set.sequential_ids = true; break;
	case 'f':
		if (fault_add(&o->faults, arg, err, sizeof(err)))
			die("--fault %s: %s", arg, err);
		break;
	case OPT_READY: o->ready_file = arg; break;
	case OPT_HTTP2: o->http2 = true; break;
	case OPT_TIMEOUT:
		o->conn_timeout = (unsigned)parse_num("--connection-timeout",
						      arg, 1, 86400);
		break;
	case 'v': o->verbose = true; break;
	case 'q': o->quiet = true; break;
	case 'h': usage(stdout); exit(0);
	case OPT_VERSION: version(); break;
	default: usage(stderr); exit(2);
	}
}

static void check_options(const struct options *o)
{
	const struct kme_settings *s = &o->set;

	if (o->ca_file == NULL || o->n == 0)
		die("--ca and at least one --kme are needed (see --help)");
	for (size_t i = 0; i < o->n; i++)
		for (size_t j = 0; j < i; j++) {
			if (strcmp(o->kmes[i].id, o->kmes[j].id) == 0)
				die("KME ID %s used twice", o->kmes[i].id);
			for (size_t a = 0; a < o->kmes[i].n_saes; a++)
				if (kme_has_sae(&o->kmes[j], o->kmes[i].saes[a]))
					die("SAE %s attached to both %s and %s",
					    o->kmes[i].saes[a], o->kmes[j].id,
					    o->kmes[i].id);
		}
	if (s->key_size % 8 || s->min_key_size % 8 || s->max_key_size % 8 ||
	    s->min_key_size > s->key_size || s->key_size > s->max_key_size)
		die("key sizes must be multiples of 8 with min <= key-size <= "
		    "max (%u <= %u <= %u)", s->min_key_size, s->key_size,
		    s->max_key_size);
	for (size_t i = 0; i < o->faults.n; i++) {
		const char *id = o->faults.v[i].kme;
		size_t k;

		for (k = 0; id != NULL && k < o->n_ls; k++)
			if (strcmp(o->kmes[o->ls[k].kme].id, id) == 0 ||
			    strcmp(o->ls[k].slot, id) == 0)
				break;
		if (id != NULL && k == o->n_ls)
			die("--fault %s: no KME or listener %s", o->faults.v[i].text,
			    id);
	}
	if (o->n == 1)
		fprintf(stderr, "kme-sim: warning: one KME has no QKD link; "
			"enc_keys will fail\n");
}

static void parse_args(struct options *o, int argc, char **argv)
{
	int c;

	memset(o, 0, sizeof(*o));
	fault_set_init(&o->faults);
	o->conn_timeout = 60;
	o->set = (struct kme_settings){
		.pool_size = 1000, .key_rate = INFINITY, .key_size = 256,
		.min_key_size = 64, .max_key_size = 4096,
		.max_keys_per_request = 128, .max_pending = 100000,
	};
	while ((c = getopt_long(argc, argv, "vqh", long_opts, NULL)) != -1)
		parse_option(o, c, optarg);
	if (optind < argc)
		die("unexpected argument '%s' (see --help)", argv[optind]);
	check_options(o);
}

/* We bind ourselves, so that a busy port gets a clear errno message and
 * port 0 gives us the ephemeral port. */
static void open_socket(struct listener *l, const char *id)
{
	int one = 1, fam = l->addr.ss_family;
	struct sockaddr_storage bound;
	socklen_t blen = sizeof(bound);

	l->fd = socket(fam, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l->fd < 0)
		die("%s: socket: %s", id, strerror(errno));
	setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fam == AF_INET6)
		setsockopt(l->fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(l->fd, (struct sockaddr *)&l->addr, l->addrlen) != 0 ||
	    listen(l->fd, 64) != 0 ||
	    getsockname(l->fd, (struct sockaddr *)&bound, &blen) != 0)
		die("%s: cannot listen on %s: %s", id, l->listen,
		    strerror(errno));
	l->port = ntohs(fam == AF_INET6
				? ((struct sockaddr_in6 *)&bound)->sin6_port
				: ((struct sockaddr_in *)&bound)->sin_port);
}

static void start_listener(struct options *o, struct kme_model *m, size_t li)
{
	struct listener *l = &o->ls[li];
	size_t i = l->kme;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD |
			 MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL |
			 MHD_USE_TLS | MHD_USE_ERROR_LOG;

	if (l->addr.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	l->cert_pem = read_pem(l->cert_file);
	l->key_pem = read_pem(l->key_file);
	l->srv = (struct api_server){ .model = m, .kme = i, .name = l->name,
				      .slot = l->slot,
				      .faults = &o->faults,
				      .quiet = o->quiet, .verbose = o->verbose };
	open_socket(l, l->name);
	{
		/* Without --http2 libmicrohttpd does the TLS on our socket; with
		 * it, front.c does, and hands the daemon plaintext. */
		struct MHD_OptionItem tls[] = {
			{ MHD_OPTION_LISTEN_SOCKET, l->fd, NULL },
			{ MHD_OPTION_HTTPS_MEM_KEY, 0, l->key_pem },
			{ MHD_OPTION_HTTPS_MEM_CERT, 0, l->cert_pem },
			{ MHD_OPTION_HTTPS_MEM_TRUST, 0, o->ca_pem },
			{ MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)TLS_PRIORITIES },
			{ MHD_OPTION_END, 0, NULL },
		};

		if (o->http2)
			flags = (flags & ~MHD_USE_TLS) | MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC;
		l->daemon = MHD_start_daemon(
			flags, 0, NULL, NULL, api_handle, &l->srv,
			MHD_OPTION_EXTERNAL_LOGGER, mhd_log, o,
			MHD_OPTION_ARRAY, o->http2 ? &tls[5] : tls,
			MHD_OPTION_NOTIFY_COMPLETED, api_request_done, &l->srv,
			MHD_OPTION_NOTIFY_CONNECTION, api_connection_event, &l->srv,
			MHD_OPTION_UNESCAPE_CALLBACK, api_unescape, NULL,
			MHD_OPTION_CONNECTION_TIMEOUT, o->conn_timeout,
			MHD_OPTION_CONNECTION_LIMIT,
			(unsigned)FRONT_MAX_CONNECTIONS,
			MHD_OPTION_END);
	}
	if (l->daemon == NULL)
		die("%s: cannot start the HTTPS server on %s (certificate %s, "
		    "key %s)", l->name, l->listen, l->cert_file,
		    l->key_file);
	if (o->http2) {
		char err[256];

		l->front = front_start(l->name, l->fd, l->cert_pem, l->key_pem,
				       o->ca_pem, l->daemon, o->conn_timeout,
				       err, sizeof(err));
		if (l->front == NULL)
			die("%s: cannot serve TLS on %s (certificate %s, key %s): %s",
			    l->name, l->listen, l->cert_file, l->key_file, err);
	}
}

static void format_url(const struct listener *l, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN];

	if (l->addr.ss_family == AF_INET6) {
		inet_ntop(AF_INET6,
			  &((const struct sockaddr_in6 *)&l->addr)->sin6_addr,
			  host, sizeof(host));
		snprintf(buf, len, "https://[%s]:%u", host, l->port);
	} else {
		inet_ntop(AF_INET,
			  &((const struct sockaddr_in *)&l->addr)->sin_addr,
			  host, sizeof(host));
		snprintf(buf, len, "https://%s:%u", host, l->port);
	}
}

static void write_lines(FILE *f, const struct options *o)
{
	char url[96];

	for (size_t i = 0; i < o->n_ls; i++) {
		format_url(&o->ls[i], url, sizeof(url));
		fprintf(f, "%s %s\n", o->ls[i].name, url);
	}
}

/* Write to a temporary name and rename, so that a reader never sees a
 * half-written file. */
static void write_ready_file(const struct options *o)
{
	size_t len = strlen(o->ready_file) + 32;
	char *tmp = malloc(len);
	FILE *f;

	if (tmp == NULL)
		die("out of memory");
	snprintf(tmp, len, "%s.tmp.%ld", o->ready_file, (long)getpid());
	f = fopen(tmp, "w");
	if (f == NULL)
		die("cannot write %s: %s", tmp, strerror(errno));
	write_lines(f, o);
	if (fflush(f) != 0 || fsync(fileno(f)) != 0 || fclose(f) != 0 ||
	    rename(tmp, o->ready_file) != 0)
		die("cannot write %s: %s", o->ready_file, strerror(errno));
	free(tmp);
}

/* A stop that waits for a wedged connection thread must not hang a lab
 * script: after SHUTDOWN_GRACE_S the process exits all the same, and says
 * so. */
#define SHUTDOWN_GRACE_S 5

static void *shutdown_watchdog(void *arg)
{
	(void)arg;
	sleep(SHUTDOWN_GRACE_S);
	fprintf(stderr, "kme-sim: connections still busy %d s after the signal; "
		"exiting without them\n", SHUTDOWN_GRACE_S);
	_exit(0);
	return NULL;
}

static void stop_all(struct options *o, struct kme_model *m)
{
	pthread_t watchdog;

	if (pthread_create(&watchdog, NULL, shutdown_watchdog, NULL) == 0)
		pthread_detach(watchdog);
	fault_begin_shutdown(); /* wakes delayed and blackholed requests */
	for (size_t i = 0; i < o->n_ls; i++) {
		front_stop(o->ls[i].front); /* closes the socket */
		if (o->ls[i].daemon != NULL)
			MHD_stop_daemon(o->ls[i].daemon); /* closes the socket */
		free(o->ls[i].cert_pem);
		free(o->ls[i].key_pem);
		free(o->ls[i].listen);
		free(o->ls[i].cert_file);
		free(o->ls[i].key_file);
	}
	free(o->ls);
	free(o->ca_pem);
	kme_model_free(m);
	fault_set_free(&o->faults);
}

int main(int argc, char **argv)
{
	struct options o;
	struct kme_model model;
	sigset_t sigs;
	int sig = 0;

	/* Blocked before any thread exists, so only sigwait() sees them. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	parse_args(&o, argc, argv);
	o.ca_pem = read_pem(o.ca_file);
	if (kme_model_init(&model, o.kmes, o.n, &o.set) != 0)
		die("out of memory");
	for (size_t i = 0; i < o.n_ls; i++)
		start_listener(&o, &model, i);
	atomic_store(&mhd_log_all, false);

	write_lines(stdout, &o);
	fflush(stdout);
	if (o.ready_file != NULL)
		write_ready_file(&o);

	sigwait(&sigs, &sig);
	fprintf(stderr, "kme-sim: %s, shutting down\n",
		sig == SIGINT ? "SIGINT" : "SIGTERM");
	stop_all(&o, &model);
	return 0;
}
