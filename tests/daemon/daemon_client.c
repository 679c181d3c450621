/* daemon_client.c - a long-lived client of libkmstore, as pluto is: opens
 * one store and answers commands from stdin, one line each, so a test can
 * stop, kill and restart kmstored under it and watch it recover.
 *
 *   daemon_client SOCKET|--config FILE|--cache SOCKET
 *
 * --cache: as the OpenSSL provider does, a kms_store_cache of kmstored's
 * store, and the store it gives taken again for each command.
 *
 *   daemon_client --flood SOCKET SECONDS HOLD
 *
 * --flood: a user at its cap who keeps trying: opens HOLD connections and
 * keeps them, says "holding", then connects and closes again and again
 * (non-blocking, as fast as it can) for SECONDS, and says how often.
 *
 * Commands: "key PROFILE", "id PROFILE KEY_ID", "status PROFILE",
 * "profiles". Answers (one line, flushed): "ok KEY_ID CHECK_VALUE
 * SECONDS", "ok STATE SECONDS", "ok N PROFILE...", or "error RC SECONDS
 * MESSAGE".
 *
 * Connections and fork() (kmstored's socket only):
 *   "burst PROFILE N"   N threads ask for a key at once: "ok OK FAILED
 *                       LAST_ERROR_CODE"
 *   "sockets"           "ok N": the sockets this process has open
 *   "fork-fd PROFILE"   with an idle connection held, fork; the child closes
 *                       what it inherited, opens a file that takes the
 *                       connection's number, and opens kmstored's store:
 *                       "ok kept" when its file is still open afterwards
 *   "fork-lock PROFILE N"  8 threads ask for keys without pause while the
 *                       process forks N times, each child opening
 *                       kmstored's store: "ok forks=N hung=H failed=F",
 *                       stopping at the first child hung for 10 s */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kmstore.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void answer_error(kms_rc rc, double t0, const kms_error *e)
{
	printf("error %d %.3f %s\n", rc, now() - t0, e->message);
}

static void one(kms_store *st, const char *cmd, const char *name,
		const char *id)
{
	double t0 = now();
	kms_profile *p;
	kms_error e;
	kms_rc rc;

	if (strcmp(cmd, "profiles") == 0) {
		printf("ok %zu", kms_store_profile_count(st));
		for (size_t i = 0; i < kms_store_profile_count(st); i++)
			printf(" %s", kms_profile_name(kms_store_profile_at(st, i)));
		putchar('\n');
		return;
	}
	rc = kms_store_find_profile(st, name, &p, &e);
	if (rc == KMS_OK && strcmp(cmd, "status") == 0) {
		kms_status s;

		rc = kms_profile_status(p, &s, &e);
		if (rc == KMS_OK)
			printf("ok %s %.3f\n", s.state, now() - t0);
	} else if (rc == KMS_OK) {
		char kcv[KMS_KCV_LEN + 1];
		kms_key *k;

		rc = id != NULL ? kms_profile_get_key_by_id(p, id, &k, &e) :
				  kms_profile_get_key(p, &k, &e);
		if (rc == KMS_OK) {
			if (kms_key_check_value_ex(k, kcv, &e) != KMS_OK)
				snprintf(kcv, sizeof(kcv), "none");
			printf("ok %s %s %.3f\n", kms_key_id(k), kcv, now() - t0);
			kms_key_free(k);
		}
	}
	if (rc != KMS_OK)
		answer_error(rc, t0, &e);
}

static const char *sock_path; /* kmstored's, or NULL */

struct burst {
	pthread_barrier_t *start;
	kms_profile *p;
	kms_rc rc;
};

static void *burst_one(void *arg)
{
	struct burst *b = arg;
	kms_error e;
	kms_key *k = NULL;

	pthread_barrier_wait(b->start);
	b->rc = kms_profile_get_key(b->p, &k, &e);
	kms_key_free(k);
	return NULL;
}

static void burst(kms_store *st, const char *name, int n)
{
	struct burst b[64];
	pthread_t t[64];
	pthread_barrier_t start;
	kms_profile *p;
	kms_error e;
	kms_rc rc, last = KMS_OK;
	int ok = 0, failed = 0;

	if (n < 1 || n > 64 ||
	    (rc = kms_store_find_profile(st, name, &p, &e)) != KMS_OK) {
		puts("error usage");
		return;
	}
	pthread_barrier_init(&start, NULL, (unsigned)n);
	for (int i = 0; i < n; i++) {
		b[i] = (struct burst){ &start, p, KMS_OK };
		pthread_create(&t[i], NULL, burst_one, &b[i]);
	}
	for (int i = 0; i < n; i++) {
		pthread_join(t[i], NULL);
		if (b[i].rc == KMS_OK)
			ok++;
		else
			failed++, last = b[i].rc;
	}
	pthread_barrier_destroy(&start);
	printf("ok %d %d %d\n", ok, failed, last);
}

static int count_sockets(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	struct stat sb;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.' &&
		    fstatat(dirfd(d), de->d_name, &sb, 0) == 0 &&
		    S_ISSOCK(sb.st_mode))
			n++;
	closedir(d);
	return n;
}

static int first_socket(void)
{
	struct stat sb;

	for (int fd = 3; fd < 1024; fd++)
		if (fstat(fd, &sb) == 0 && S_ISSOCK(sb.st_mode))
			return fd;
	return -1;
}

/* The child of fork-fd: 0 when its own descriptor survived. */
static int fork_fd_child(int conn)
{
	struct stat before, after;
	kms_store *st;
	kms_error e;
	int fd;

	for (fd = 3; fd < 1024; fd++)
		close(fd);
	do
		fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	while (fd >= 0 && fd < conn);
	if (fd != conn || fstat(fd, &before) != 0)
		return 2;
	if (kms_store_open_daemon(sock_path, &st, &e) != KMS_OK)
		return 3;
	if (fstat(fd, &after) != 0 || after.st_ino != before.st_ino ||
	    after.st_dev != before.st_dev)
		return 1;
	kms_store_free(st);
	return 0;
}

static void fork_fd(kms_store *st, const char *name)
{
	kms_profile *p;
	kms_key *k = NULL;
	kms_error e;
	int conn, status;
	pid_t pid;

	/* A request leaves an idle connection. */
	if (kms_store_find_profile(st, name, &p, &e) != KMS_OK ||
	    kms_profile_get_key(p, &k, &e) != KMS_OK) {
		printf("error %s\n", e.message);
		return;
	}
	kms_key_free(k);
	conn = first_socket();
	if (conn < 0) {
		puts("error no idle connection");
		return;
	}
	fflush(stdout);
	pid = fork();
	if (pid == 0)
		_exit(fork_fd_child(conn));
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) {
		puts("error fork");
		return;
	}
	if (WEXITSTATUS(status) == 0)
		puts("ok kept");
	else if (WEXITSTATUS(status) == 1)
		printf("error the child's fd %d was closed by kms_store_open_daemon\n",
		       conn);
	else
		printf("error child exit %d\n", WEXITSTATUS(status));
}

#define HAMMERS 8
static atomic_int stop_hammer;

static void *hammer(void *arg)
{
	kms_profile *p = arg;
	kms_error e;

	while (!atomic_load(&stop_hammer)) {
		kms_key *k = NULL;

		if (kms_profile_get_key(p, &k, &e) == KMS_OK)
			kms_key_free(k);
	}
	return NULL;
}

static void fork_lock(kms_store *st, const char *name, int forks)
{
	int hung = 0, failed = 0, done = 0;
	pthread_t t[HAMMERS];
	kms_profile *p;
	kms_error e;

	if (forks < 1 || kms_store_find_profile(st, name, &p, &e) != KMS_OK) {
		puts("error usage");
		return;
	}
	fflush(stdout);
	atomic_store(&stop_hammer, 0);
	for (int i = 0; i < HAMMERS; i++)
		pthread_create(&t[i], NULL, hammer, p);
	for (; done < forks && hung == 0; done++) {
		pid_t pid = fork();
		int status;

		if (pid == 0) {
			kms_store *mine;

			alarm(10); /* a child that hangs is killed */
			_exit(kms_store_open_daemon(sock_path, &mine, &e) == KMS_OK ?
				      0 : 1);
		}
		if (pid < 0 || waitpid(pid, &status, 0) != pid)
			failed++;
		else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
			hung++;
		else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			failed++;
	}
	atomic_store(&stop_hammer, 1);
	for (int i = 0; i < HAMMERS; i++)
		pthread_join(t[i], NULL);
	printf("ok forks=%d hung=%d failed=%d\n", done, hung, failed);
}

/* The commands about connections and fork; 0 if cmd is none of them. */
static int connections(kms_store *st, const char *cmd, const char *name,
		       const char *arg)
{
	if (strcmp(cmd, "sockets") == 0)
		printf("ok %d\n", count_sockets());
	else if (sock_path == NULL || st == NULL)
		return 0;
	else if (strcmp(cmd, "burst") == 0)
		burst(st, name, arg != NULL ? atoi(arg) : 0);
	else if (strcmp(cmd, "fork-fd") == 0)
		fork_fd(st, name);
	else if (strcmp(cmd, "fork-lock") == 0)
		fork_lock(st, name, arg != NULL ? atoi(arg) : 0);
	else
		return 0;
	return 1;
}

static int flood(const char *path, double seconds, int hold)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	double end = now() + seconds;
	long ok = 0, full = 0, other = 0;

	if (strlen(path) >= sizeof(sa.sun_path))
		return 2;
	strcpy(sa.sun_path, path);
	for (int i = 0; i < hold; i++) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
			perror("daemon_client: --flood");
			return 1;
		}
	}
	printf("holding %d\n", hold);
	fflush(stdout);
	while (now() < end) {
		for (int i = 0; i < 256; i++) {
			int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC |
					SOCK_NONBLOCK, 0);

			if (fd < 0)
				return 1;
			if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
				ok++;
			else if (errno == EAGAIN)
				full++;
			else
				other++;
			close(fd);
		}
	}
	printf("%ld connected, %ld refused as the queue was full, %ld other\n",
	       ok, full, other);
	return 0;
}

int main(int argc, char **argv)
{
	char line[512], cmd[16], name[64], id[128];
	kms_store_cache *cache = NULL;
	kms_store *st = NULL;
	kms_error e;
	kms_rc rc;

	if (argc == 5 && strcmp(argv[1], "--flood") == 0)
		return flood(argv[2], atof(argv[3]), atoi(argv[4]));
	if (argc == 3 && strcmp(argv[1], "--config") == 0)
		rc = kms_store_open(argv[2], &st, &e);
	else if (argc == 3 && strcmp(argv[1], "--cache") == 0)
		rc = kms_store_cache_new_daemon(argv[2], &cache, &e);
	else if (argc == 2)
		rc = kms_store_open_daemon(sock_path = argv[1], &st, &e);
	else {
		fprintf(stderr, "usage: daemon_client SOCKET|--config FILE|--cache SOCKET\n"
				"       daemon_client --flood SOCKET SECONDS HOLD\n");
		return 2;
	}
	if (rc != KMS_OK) {
		fprintf(stderr, "daemon_client: %s\n", e.message);
		return rc;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	puts("ready");
	while (fgets(line, sizeof(line), stdin) != NULL) {
		int n = sscanf(line, "%15s %63s %127s", cmd, name, id);

		if (n < 1)
			continue;
		if (strcmp(cmd, "quit") == 0)
			break;
		if (connections(st, cmd, n >= 2 ? name : "", n == 3 ? id : NULL))
			continue;
		if (cache != NULL) {
			double t0 = now();

			rc = kms_store_cache_get(cache, &st, &e);
			if (rc != KMS_OK) {
				answer_error(rc, t0, &e);
				continue;
			}
		}
		one(st, cmd, n >= 2 ? name : "", n == 3 ? id : NULL);
		if (cache != NULL) {
			kms_store_free(st);
			st = NULL;
		}
	}
	kms_store_free(st);
	kms_store_cache_free(cache);
	return 0;
}
