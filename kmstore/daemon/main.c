/* main.c - kmstored: start-up, the listening socket, one thread per
 * client connection, signals (SIGHUP reloads, SIGTERM stops).
 *
 *   kmstored --config FILE --socket PATH [--foreground]
 *
 * Without --foreground it detaches once the socket is listening (the
 * starting command returns then, with kmstored's start-up error if any)
 * and logs to syslog; with it, it logs to stderr and tells systemd when it
 * is ready (Type=notify). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "clock.h"
#include "kmstored.h"
#include "remote.h"

#define CLIENTS_MAX 512       /* connections in all */
#define CLIENTS_ADMIN 32      /* of them, only for root and kmstored's own */
#define CLIENTS_PER_USER 16   /* for each user but root and kmstored's own */
#define KMSD_STR(x) KMSD_STR_(x)
#define KMSD_STR_(x) #x
#define THREAD_STACK (1024 * 1024)
#define STOP_WAIT_S 30        /* for requests in flight at shutdown */

struct conn {
	int fd;
	struct kmsd_client client;
	struct conn *next;
};

static pthread_mutex_t conns_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t conns_gone = PTHREAD_COND_INITIALIZER;
static struct conn *conns;
static size_t n_conns, n_admin_conns;

struct options {
	const char *config;
	const char *socket;
	const char *metrics;
	int foreground;
	kms_log_level level;
};

size_t kmsd_connections(void)
{
	size_t n;

	pthread_mutex_lock(&conns_lock);
	n = n_conns;
	pthread_mutex_unlock(&conns_lock);
	return n;
}

static void usage(FILE *f)
{
	fprintf(f,
"Usage: kmstored [OPTIONS]\n"
"\n"
"The kmstore key manager: holds the profiles of a kmstore.conf, the SAE\n"
"credentials and the KME connections, and serves keys to local clients\n"
"(kmstore --daemon, the OpenSSL provider and engine, the PKCS#11 module)\n"
"over a UNIX socket, each profile to the users it allows.\n"
"\n"
"Options:\n"
"  -c, --config FILE     configuration file (default: $KMSTORE_CONF if set,\n"
"                        else %s)\n"
"  -s, --socket PATH     socket to listen on (default: %s)\n"
"  -f, --foreground      do not detach; log to stderr (systemd's journal)\n"
"  -m, --metrics ADDR    serve Prometheus metrics over HTTP on ADDR:\n"
"                        127.0.0.1:PORT, [::1]:PORT or a socket path\n"
"  -l, --log-level LEVEL error, warning or info (default: info: a line per\n"
"                        key served, with its ID and check value)\n"
"  -h, --help            show this help\n"
"  -V, --version         show the version\n"
"\n"
"Signals: SIGHUP reads the configuration again (kmstore reload does the\n"
"same); a file that does not load leaves the running one in force.\n"
"SIGTERM stops.\n",
		KMS_DEFAULT_CONF, KMS_DEFAULT_SOCKET);
}

/* path made absolute against the directory kmstored starts in (into buf,
 * or as it is if it does not fit), when it detaches: a reload reads the
 * configuration again, and the exit removes the socket, after it left
 * that directory for /. */
static const char *absolute(const char *path, char buf[PATH_MAX])
{
	char cwd[PATH_MAX];
	int n;

	if (path[0] == '/' || getcwd(cwd, sizeof(cwd)) == NULL)
		return path;
	n = snprintf(buf, PATH_MAX, "%s/%s", cwd, path);
	return n > 0 && n < PATH_MAX ? buf : path;
}

static int parse_options(int argc, char **argv, struct options *o)
{
	static char config_path[PATH_MAX], socket_path[PATH_MAX];
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "socket", required_argument, NULL, 's' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "metrics", required_argument, NULL, 'm' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	o->config = kms_default_config_path();
	o->socket = KMS_DEFAULT_SOCKET;
	o->level = KMS_LOG_INFO;
	while ((c = getopt_long(argc, argv, "c:s:fm:l:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			o->config = optarg;
			break;
		case 's':
			o->socket = optarg;
			break;
		case 'f':
			o->foreground = 1;
			break;
		case 'm':
			o->metrics = optarg;
			break;
		case 'l':
			if (strcmp(optarg, "error") == 0)
				o->level = KMS_LOG_ERROR;
			else if (strcmp(optarg, "warning") == 0)
				o->level = KMS_LOG_WARNING;
			else if (strcmp(optarg, "info") == 0)
				o->level = KMS_LOG_INFO;
			else {
				fprintf(stderr, "kmstored: --log-level takes error, "
					"warning or info, not '%s'\n", optarg);
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case 'V':
			printf("kmstored %s\n", kms_version());
			exit(0);
		default:
			fputs("Try 'kmstored --help'.\n", stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "kmstored: unexpected argument '%s'\n"
			"Try 'kmstored --help'.\n", argv[optind]);
		return 2;
	}
	if (!o->foreground) {
		o->config = absolute(o->config, config_path);
		o->socket = absolute(o->socket, socket_path);
	}
	return 0;
}

/* A socket file left by a kmstored that died is replaced; one that a
 * running kmstored answers on is not. */
static kms_rc clear_path(const char *path, kms_error *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, live;

	if (lstat(path, &st) != 0)
		return KMS_OK;
	if (!S_ISSOCK(st.st_mode))
		return kms_fail(err, KMS_ERR_CONFIG,
				"%s exists and is not a socket", path);
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	live = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	if (fd >= 0)
		close(fd);
	if (live)
		return kms_fail(err, KMS_ERR_CONFIG,
				"another kmstored is listening on %s", path);
	unlink(path);
	return KMS_OK;
}

static kms_rc listen_on(const char *path, int *out, kms_error *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	kms_rc rc;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return kms_fail(err, KMS_ERR_USAGE,
				"socket path %s is longer than %zu bytes", path,
				sizeof(sa.sun_path) - 1);
	rc = clear_path(path, err);
	if (rc != KMS_OK)
		return rc;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return kms_fail(err, KMS_ERR_SYSTEM, "socket: %s", strerror(errno));
	/* Anyone may connect: each profile decides who it serves, by the
	 * credentials the kernel gives (access.c). */
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    chmod(path, 0666) != 0 || listen(fd, SOMAXCONN) != 0) {
		rc = kms_fail(err, KMS_ERR_SYSTEM, "cannot listen on %s: %s", path,
			      strerror(errno));
		close(fd);
		return rc;
	}
	*out = fd;
	return KMS_OK;
}

static void *conn_main(void *arg)
{
	struct conn *c = arg, **pp;

	kmsd_serve(c->fd, &c->client);
	/* As a pool's thread: its OpenSSL state (error queue, random
	 * generator) freed before it is counted gone, for kmstored may exit
	 * at once then (LeakSanitizer saw the 904 bytes of an error queue). */
	OPENSSL_thread_stop();
	pthread_mutex_lock(&conns_lock);
	for (pp = &conns; *pp != c; pp = &(*pp)->next)
		;
	*pp = c->next;
	n_conns--;
	n_admin_conns -= c->client.admin;
	close(c->fd);
	pthread_cond_broadcast(&conns_gone);
	pthread_mutex_unlock(&conns_lock);
	kmsd_client_clear(&c->client);
	free(c);
	return NULL;
}

static size_t user_conns(uid_t uid)
{
	size_t n = 0;

	for (const struct conn *c = conns; c != NULL; c = c->next)
		n += c->client.uid == uid;
	return n;
}

/* Why a client may not have a connection now, or NULL; under conns_lock. */
static const char *over_cap(const struct kmsd_client *c)
{
	if (n_conns >= CLIENTS_MAX)
		return "too many connections (" KMSD_STR(CLIENTS_MAX) " in all)";
	if (c->admin)
		return NULL;
	if (n_conns - n_admin_conns >= CLIENTS_MAX - CLIENTS_ADMIN)
		return "too many connections (" KMSD_STR(CLIENTS_MAX) " in all, "
		       "the last " KMSD_STR(CLIENTS_ADMIN) " kept for root and "
		       "kmstored's own user)";
	if (user_conns(c->uid) >= CLIENTS_PER_USER)
		return "too many connections (at most "
		       KMSD_STR(CLIENTS_PER_USER) " per user)";
	return NULL;
}

/* A refusal costs little and logs little: a user at its cap who keeps
 * connecting must not keep the listening queue full for the others. So
 * the line names the uid, not the user: a name may have to wait for a
 * directory service, and this thread accepts every client's connection. */
static void refuse(int fd, const struct kmsd_client *c, const char *why)
{
	close(fd);
	kmsd_log_client(c, KMS_LOG_WARNING, "refused uid %u (pid %d): %s",
			(unsigned)c->uid, (int)c->pid, why);
}

static void start_conn(int fd)
{
	struct kmsd_client peer;
	struct conn *c;
	pthread_attr_t attr;
	pthread_t t;
	kms_error err;
	const char *why;
	int rc;

	/* The caps first, by SO_PEERCRED alone. Only this thread adds
	 * connections: none is added before the one checked here. */
	if (kmsd_client_peer(fd, &peer, &err) != KMS_OK) {
		kmsd_log(KMS_LOG_ERROR, "a client: %s", err.message);
		close(fd);
		return;
	}
	pthread_mutex_lock(&conns_lock);
	why = over_cap(&peer);
	pthread_mutex_unlock(&conns_lock);
	if (why != NULL) {
		kmsd_metric_refused(); /* not when kmstored itself fails, below */
		refuse(fd, &peer, why);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		refuse(fd, &peer, "out of memory");
		return;
	}
	c->fd = fd;
	c->client = peer;
	kmsd_client_groups(fd, &c->client); /* the name: when wanted */
	pthread_mutex_lock(&conns_lock);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, THREAD_STACK);
	c->next = conns;
	conns = c;
	n_conns++;
	n_admin_conns += c->client.admin;
	rc = pthread_create(&t, &attr, conn_main, c);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		conns = c->next;
		n_conns--;
		n_admin_conns -= c->client.admin;
	}
	pthread_mutex_unlock(&conns_lock);
	if (rc != 0) {
		refuse(fd, &c->client, "no thread for it");
		kmsd_client_clear(&c->client);
		free(c);
	}
}

/* Out of descriptors (EMFILE, ENFILE): the connection waits in the queue,
 * and would wake poll again at once. The listening socket rests instead
 * (its clients wait within their deadline), and the log says so once a
 * minute. */
#define ACCEPT_REST_MS 100
#define ACCEPT_LOG_MS 60000

static int64_t rest_until;  /* no accept before (monotonic ms), or 0 */
static int64_t rest_logged; /* when the last line about it was */
static unsigned long rests; /* since then */

static void accept_all(int lfd)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		int64_t now;

		if (fd >= 0) {
			start_conn(fd);
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno != EMFILE && errno != ENFILE)
			return;
		now = kms_now_ms();
		rest_until = now + ACCEPT_REST_MS;
		rests++;
		if (rest_logged == 0 || now - rest_logged >= ACCEPT_LOG_MS) {
			if (rest_logged == 0 || rests == 1)
				kmsd_log(KMS_LOG_ERROR, "accept: %s: new connections "
					 "wait", strerror(errno));
			else
				kmsd_log(KMS_LOG_ERROR, "accept: %s: new connections "
					 "wait (%lu times in %d s)", strerror(errno),
					 rests, ACCEPT_LOG_MS / 1000);
			rest_logged = now;
			rests = 0;
		}
		return;
	}
}

static void reload(void)
{
	char summary[KMS_ERROR_MAX];
	kms_error err;

	kmsd_notify("RELOADING=1");
	if (kmsd_conf_reload(summary, sizeof(summary), &err) == KMS_OK)
		kmsd_log(KMS_LOG_INFO, "%s (SIGHUP)", summary);
	else
		kmsd_log(KMS_LOG_ERROR, "%s (SIGHUP)", err.message);
	kmsd_notify("READY=1");
}

/* Ends every connection after its request in flight (a KME request
 * ends within its profile's timeout). */
static int stop_conns(void)
{
	struct timespec until;
	int all;

	atomic_store(&kmsd_stopping, 1);
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += STOP_WAIT_S;
	pthread_mutex_lock(&conns_lock);
	for (struct conn *c = conns; c != NULL; c = c->next)
		shutdown(c->fd, SHUT_RD);
	while (n_conns > 0 &&
	       pthread_cond_timedwait(&conns_gone, &conns_lock, &until) == 0)
		;
	all = n_conns == 0;
	pthread_mutex_unlock(&conns_lock);
	return all;
}

static void serve(int lfd, int sfd)
{
	struct pollfd pfd[3] = {
		{ .fd = lfd, .events = POLLIN },
		{ .fd = sfd, .events = POLLIN },
		{ .fd = kmsd_log_fd(), .events = POLLIN },
	};

	for (;;) {
		struct signalfd_siginfo si;
		int timeout = kmsd_log_tick(0);

		pfd[0].fd = lfd;
		if (rest_until != 0) {
			int64_t left = rest_until - kms_now_ms();

			if (left > 0) {
				pfd[0].fd = -1;
				if (timeout < 0 || left < timeout)
					timeout = (int)left;
			} else {
				rest_until = 0;
			}
		}
		if (poll(pfd, 3, timeout) < 0) {
			if (errno == EINTR)
				continue;
			kmsd_log(KMS_LOG_ERROR, "poll: %s", strerror(errno));
			return;
		}
		if (pfd[0].revents & POLLIN)
			accept_all(lfd);
		if (!(pfd[1].revents & POLLIN) ||
		    read(sfd, &si, sizeof(si)) != (ssize_t)sizeof(si))
			continue;
		if (si.ssi_signo == SIGHUP)
			reload();
		else
			return;
	}
}

/* Detaches, and returns in the child; the parent waits until the child
 * says it is ready (fd gets "ok") or why it failed, and exits with that. */
static int detach(int *ready_fd)
{
	int fds[2];
	char buf[KMS_ERROR_MAX + 1];
	ssize_t n;
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC) != 0)
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid > 0) {
		int status;

		close(fds[1]);
		n = read(fds[0], buf, sizeof(buf) - 1);
		if (n == 2 && memcmp(buf, "ok", 2) == 0)
			_exit(0);
		buf[n > 0 ? n : 0] = '\0';
		fprintf(stderr, "kmstored: %s\n", n > 0 ? buf : "failed to start");
		/* the child's status (start_status), once it has ended */
		_exit(waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
			      WEXITSTATUS(status) != 0 ? WEXITSTATUS(status) : 1);
	}
	close(fds[0]);
	setsid();
	if (chdir("/") != 0)
		return -1;
	*ready_fd = fds[1];
	return 0;
}

/* Tells the starting command that kmstored serves: 0 if it is gone
 * (interrupted: its caller saw a failed start, so kmstored stops). */
static int say_ready(int ready_fd, const char *msg)
{
	int null, told;

	if (ready_fd < 0)
		return 1;
	told = write(ready_fd, msg, strlen(msg)) >= 0 || errno != EPIPE;
	if (!told)
		kmsd_log(KMS_LOG_WARNING, "the starting command is gone "
			 "(interrupted?) before kmstored served");
	close(ready_fd);
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		close(null);
	}
	return told;
}

/* The exit status of a start that failed: 2 when the command line is
 * wrong (as parse_options), EX_CONFIG (78, sysexits.h) when the
 * configuration is, or a file cannot be read: starting again mends
 * neither, and kmstored.service does not restart on them; 1 when it may
 * pass later: a user or group lookup (sssd not up yet), an address in
 * use, out of memory. */
static int start_status(const kms_error *err, int by_lookup)
{
	if (by_lookup)
		return 1;
	if (err->code == KMS_ERR_USAGE)
		return 2;
	return err->code == KMS_ERR_CONFIG || err->code == KMS_ERR_PERMISSION ?
		       EX_CONFIG : 1;
}

/* How long a start waits for a user or group lookup that may pass: at
 * boot sssd or LDAP may come up after kmstored, and pluto, ordered after
 * kmstored, waits with it and gets its tokens (systemd's start timeout is
 * 90 s). */
#define LOOKUP_WAIT_MS 60000
#define LOOKUP_RETRY_MS 2000

/* Why a start's wait stopped. */
enum wait_end { WAIT_ON, WAIT_SIGNAL, WAIT_STARTER_GONE };

/* Waits LOOKUP_RETRY_MS for a signal, or for the starting command to go
 * (ready_fd, the pipe it reads, when detached): a start interrupted with
 * Ctrl-C leaves no kmstored behind, though setsid() took it out of the
 * terminal's reach. WAIT_ON after SIGHUP too: try again at once. */
static enum wait_end stop_in_wait(int sfd, int ready_fd)
{
	struct pollfd fds[2] = { { .fd = sfd, .events = POLLIN },
				 { .fd = ready_fd } }; /* POLLERR: no reader */
	struct signalfd_siginfo si;

	if (poll(fds, ready_fd >= 0 ? 2 : 1, LOOKUP_RETRY_MS) <= 0)
		return WAIT_ON;
	if (fds[1].revents & POLLERR)
		return WAIT_STARTER_GONE;
	if (read(sfd, &si, sizeof(si)) != (ssize_t)sizeof(si))
		return WAIT_ON;
	return si.ssi_signo != SIGHUP ? WAIT_SIGNAL : WAIT_ON;
}

/* The configuration, tried again every LOOKUP_RETRY_MS for LOOKUP_WAIT_MS
 * while a failed lookup may pass. SIGTERM, or the starting command gone,
 * ends the wait (*stopped), SIGHUP shortens it. The wait is logged once,
 * and again if the reason changes. */
static kms_rc load_conf(const char *path, int sfd, int ready_fd,
			int *by_lookup, enum wait_end *stopped, kms_error *err)
{
	int64_t until = kms_now_ms() + LOOKUP_WAIT_MS;
	char said[KMS_ERROR_MAX] = "";
	kms_rc rc;

	*stopped = WAIT_ON;
	kmsd_log_once(1);
	while ((rc = kmsd_conf_init(path, by_lookup, err)) != KMS_OK &&
	       *by_lookup && kms_now_ms() + LOOKUP_RETRY_MS <= until) {
		if (strcmp(said, err->message) != 0) {
			snprintf(said, sizeof(said), "%s", err->message);
			kmsd_log(KMS_LOG_WARNING, "%s; trying again every %d s for "
				 "%d s (sssd or LDAP not up yet?)", err->message,
				 LOOKUP_RETRY_MS / 1000, LOOKUP_WAIT_MS / 1000);
			kmsd_notify("STATUS=waiting for a user or group lookup");
		}
		if ((*stopped = stop_in_wait(sfd, ready_fd)) != WAIT_ON)
			break;
	}
	kmsd_log_once(0);
	return rc;
}

static int start_failed(int ready_fd, const kms_error *err, int status)
{
	kmsd_log(KMS_LOG_ERROR, "%s", err->message);
	if (ready_fd >= 0) {
		if (write(ready_fd, err->message, strlen(err->message)) < 0)
			kmsd_log(KMS_LOG_WARNING, "cannot tell the starting command");
		close(ready_fd);
	}
	return status;
}

int main(int argc, char **argv)
{
	struct options o = { 0 };
	int lfd = -1, sfd, ready_fd = -1, rc, by_lookup;
	enum wait_end stopped;
	char status[KMS_ERROR_MAX];
	kms_error err;
	sigset_t sigs;

	rc = parse_options(argc, argv, &o);
	if (rc != 0)
		return rc;
	/* Not traceable or dumped by others of its user: it holds keys. */
	prctl(PR_SET_DUMPABLE, 0);
	if (!o.foreground && detach(&ready_fd) != 0) {
		perror("kmstored: cannot detach");
		return 1;
	}
	kmsd_log_setup(o.foreground ? KMSD_LOG_STDERR : KMSD_LOG_SYSLOG, o.level);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	/* Before any thread, so that all inherit the mask. */
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
	if (sfd < 0) {
		kms_fail(&err, KMS_ERR_SYSTEM, "signalfd: %s", strerror(errno));
		return start_failed(ready_fd, &err, 1);
	}
	kmsd_metrics_init();
	rc = load_conf(o.config, sfd, ready_fd, &by_lookup, &stopped, &err);
	if (rc != KMS_OK && stopped == WAIT_STARTER_GONE) {
		kms_error_prefix(&err, "the starting command is gone "
				 "(interrupted?): stopped before it served");
		close(ready_fd);
		return start_failed(-1, &err, 1);
	}
	if (rc != KMS_OK && stopped == WAIT_SIGNAL) {
		kms_error_prefix(&err, "stopped before it served");
		return start_failed(ready_fd, &err, 0);
	}
	if (rc != KMS_OK ||
	    listen_on(o.socket, &lfd, &err) != KMS_OK ||
	    (o.metrics != NULL && kmsd_metrics_serve(o.metrics, &err) != KMS_OK))
		return start_failed(ready_fd, &err, start_status(&err, by_lookup));
	kmsd_conf_start();
	kmsd_watch_start(o.metrics != NULL);
	{
		struct kmsd_conf *c = kmsd_conf_get();

		snprintf(status, sizeof(status), "serving %zu profile%s of %s on %s",
			 kms_store_profile_count(c->store),
			 kms_store_profile_count(c->store) == 1 ? "" : "s",
			 kms_store_path(c->store), o.socket);
		kmsd_conf_put(c);
	}
	kmsd_log(KMS_LOG_INFO, "%s", status);
	if (say_ready(ready_fd, "ok")) {
		char state[KMS_ERROR_MAX + 16];

		snprintf(state, sizeof(state), "READY=1\nSTATUS=%s", status);
		kmsd_notify(state);
		serve(lfd, sfd);
	}
	kmsd_notify("STOPPING=1");
	kmsd_log_tick(1);
	kmsd_log(KMS_LOG_INFO, "stopping");
	close(lfd);
	unlink(o.socket);
	/* The poller's status in flight ends while the connections' do:
	 * one wait for both, not one after the other. */
	kmsd_watch_stop();
	kmsd_metrics_stop();
	if (!stop_conns()) {
		kmsd_log(KMS_LOG_WARNING, "stopped with requests still in flight");
	} else if (!kmsd_watch_wait(STOP_WAIT_S)) {
		kmsd_log(KMS_LOG_WARNING, "stopped with the status poller still in "
			 "a KME request");
	} else {
		kmsd_conf_fini();
		kmsd_metrics_fini();
		close(sfd);
		return 0;
	}
	/* Threads still in libcurl and libcrypto: exit() would run
	 * libcrypto's atexit cleanup under them. */
	_exit(0);
}
