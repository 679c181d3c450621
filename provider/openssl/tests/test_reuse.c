/*
 * test_reuse.c - one provider, many OSSL_STORE_opens in one process: the
 * store is parsed once and its KME connections are kept; a change of the
 * configuration is seen at the next open; threads open at once; nothing
 * grows.
 *
 * usage: test_reuse PROVIDER_DIR MODE CONF ARGS...
 *   opens CONF N          N opens of kmstore:profile=west-east-static and of the
 *                         listing: descriptors and RSS after a warm-up and
 *                         at the end (RSS bound in KB: $REUSE_RSS_KB, 1024)
 *   qkd CONF N [T]        N round trips (a key for use now from profile
 *                         west, that key by ID from east) in each of T
 *                         threads [1]: keys equal, and the number of TCP
 *                         connections the process opened
 *   reload CONF KEYFILE   the configuration replaced, rewritten, made
 *                         readable by others, broken, restored between
 *                         opens; keys loaded before stay whole
 *   threads CONF T N      T threads, N opens each, while the main thread
 *                         replaces the configuration between two versions
 * CONF is KMSTORE_CONF. Prints "ok - ..." / "not ok - ..." per check (the
 * shell test counts them) and "# ..." figures; exit 1 on any failure.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/provider.h>
#include <openssl/store.h>

#include "check.h"
#include "proc.h"

static OSSL_LIB_CTX *libctx;
static atomic_int tcp_connects;

/* Every TCP connection libcurl opens, counted: the executable's connect
 * comes before libc's for the libraries it loads (linked -rdynamic). */
static int (*real_connect)(int, const struct sockaddr *, socklen_t);

/* Found before any thread starts. */
__attribute__((constructor)) static void find_connect(void)
{
	*(void **)&real_connect = dlsym(RTLD_NEXT, "connect");
}

int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
	if (addr != NULL && (addr->sa_family == AF_INET || addr->sa_family == AF_INET6))
		atomic_fetch_add(&tcp_connects, 1);
	return real_connect(fd, addr, len);
}

/* Loads every object of uri; returns how many, and the first key. */
static int load(const char *uri, EVP_PKEY **first)
{
	OSSL_STORE_CTX *st;
	int n = 0;

	if (first != NULL)
		*first = NULL;
	st = OSSL_STORE_open_ex(uri, libctx, NULL, NULL, NULL, NULL, NULL, NULL);
	if (st == NULL)
		return -1;
	while (!OSSL_STORE_eof(st)) {
		OSSL_STORE_INFO *info = OSSL_STORE_load(st);

		if (info == NULL)
			break;
		n++;
		if (first != NULL && *first == NULL &&
		    OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_PKEY)
			*first = OSSL_STORE_INFO_get1_PKEY(info);
		OSSL_STORE_INFO_free(info);
	}
	OSSL_STORE_close(st);
	return n;
}

static EVP_PKEY *load_key(const char *uri)
{
	EVP_PKEY *k;

	load(uri, &k);
	return k;
}

static void key_id(EVP_PKEY *k, char *buf, size_t size)
{
	if (k == NULL ||
	    EVP_PKEY_get_utf8_string_param(k, "kmstore-key-id", buf, size, NULL) != 1)
		snprintf(buf, size, "(none)");
}

static size_t raw(EVP_PKEY *k, unsigned char *buf, size_t size)
{
	size_t len = size;

	if (k == NULL || EVP_PKEY_get_raw_private_key(k, buf, &len) != 1)
		return 0;
	return len;
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	char tmp[4096];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.new", path);
	f = fopen(tmp, "w");
	if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0 ||
	    chmod(tmp, mode) != 0 || rename(tmp, path) != 0) {
		perror(path);
		exit(2);
	}
}

/* A static profile "p" whose key is 32 bytes of c and whose ID names it. */
static void conf_text(char *buf, size_t size, char c)
{
	char hex[65];

	for (int i = 0; i < 64; i++)
		hex[i] = c;
	hex[64] = '\0';
	snprintf(buf, size, "[p]\ntype = static\nkey-id = KEY_%c\nkey = hex:%s\n", c, hex);
}

static int mode_opens(int n)
{
	long bound = getenv("REUSE_RSS_KB") ? atol(getenv("REUSE_RSS_KB")) : 1024;
	long rss1 = 0, rss2;
	int fd1 = 0, fd2, bad = 0, warmup = n / 10;

	for (int i = 0; i < n; i++) {
		EVP_PKEY *k;

		if (i == warmup) {
			rss1 = rss_kb();
			fd1 = open_fds();
		}
		k = load_key("kmstore:profile=west-east-static");
		bad += k == NULL || load("kmstore:", NULL) < 1;
		EVP_PKEY_free(k);
	}
	rss2 = rss_kb();
	fd2 = open_fds();
	printf("# %d opens of a key and %d of the listing: fds %d -> %d, RSS %ld -> %ld kB\n",
	       n, n, fd1, fd2, rss1, rss2);
	check(bad == 0, "every open loaded");
	check(fd2 <= fd1, "no descriptor growth");
	check(rss2 - rss1 <= bound, "RSS growth within the bound");
	return 0;
}

/* One round trip: a key for use now from west, that key by ID from east;
 * 1 when both are the same key. */
static int qkd_round(void)
{
	unsigned char a[256], b[256];
	char id[128], uri[512];
	EVP_PKEY *w = load_key("kmstore:profile=west"), *e;
	size_t al, bl;
	int same;

	key_id(w, id, sizeof(id));
	/* The IDs of kme-sim are UUIDs: nothing to percent-encode. */
	snprintf(uri, sizeof(uri), "kmstore:profile=east;key-id=%s", id);
	e = load_key(uri);
	al = raw(w, a, sizeof(a));
	bl = raw(e, b, sizeof(b));
	same = al > 0 && al == bl && memcmp(a, b, al) == 0;
	if (!same) {
		const char *data = NULL;

		ERR_peek_last_error_data(&data, NULL);
		printf("# a round trip failed: %s\n", data != NULL ? data : "(no message)");
	}
	OPENSSL_cleanse(a, sizeof(a));
	OPENSSL_cleanse(b, sizeof(b));
	EVP_PKEY_free(w);
	EVP_PKEY_free(e);
	ERR_clear_error();
	return same;
}

struct qkd_worker {
	int n;
	int served;
};

static void *qkd_work(void *arg)
{
	struct qkd_worker *w = arg;

	for (int i = 0; i < w->n; i++)
		w->served += qkd_round();
	OPENSSL_thread_stop();
	return NULL;
}

/* n round trips by each of t threads, all through the one store. */
static int mode_qkd(int n, int t)
{
	struct qkd_worker w[64];
	pthread_t th[64];
	int served = 0;

	if (t < 1 || t > 64)
		return 2;
	for (int i = 0; i < t; i++) {
		w[i] = (struct qkd_worker){ .n = n };
		if (pthread_create(&th[i], NULL, qkd_work, &w[i]) != 0)
			return 2;
	}
	for (int i = 0; i < t; i++) {
		pthread_join(th[i], NULL);
		served += w[i].served;
	}
	printf("# %d thread%s x %d round trips: %d keys equal on both sides, "
	       "%d TCP connections\n", t, t == 1 ? "" : "s", n, served,
	       atomic_load(&tcp_connects));
	check(served == n * t, "every key served at west and at east, equal");
	/* A connection per KME and thread at most, while the KMEs keep
	 * them open; before the provider kept its store there were 2 per
	 * round trip. */
	check(atomic_load(&tcp_connects) <= 2 * t, "KME connections reused across opens");
	return 0;
}

static int mode_reload(const char *conf, const char *keyfile)
{
	unsigned char file_key[256], buf[256];
	size_t file_len = read_file(keyfile, file_key, sizeof(file_key));
	char text[512], id[128];
	EVP_PKEY *before, *k;
	int n;

	before = load_key("kmstore:profile=west-east-static");
	check(before != NULL, "the first configuration's key");

	conf_text(text, sizeof(text), 'a');
	write_file(conf, text, 0600);
	k = load_key("kmstore:profile=p");
	key_id(k, id, sizeof(id));
	check(k != NULL && strcmp(id, "KEY_a") == 0, "replaced by rename: the new profile");
	EVP_PKEY_free(k);
	k = load_key("kmstore:profile=west-east-static");
	check(k == NULL && ERR_peek_error() != 0, "... and the old profile is gone");
	EVP_PKEY_free(k);
	ERR_clear_error();

	/* In place, same size, at once: stat may show no change. */
	conf_text(text, sizeof(text), 'b');
	{
		FILE *f = fopen(conf, "r+");

		if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0) {
			perror(conf);
			return 2;
		}
	}
	k = load_key("kmstore:profile=p");
	key_id(k, id, sizeof(id));
	check(strcmp(id, "KEY_b") == 0 && raw(k, buf, sizeof(buf)) == 32 && buf[0] == 0xbb,
	      "rewritten in place, same size, at once: the new key");
	EVP_PKEY_free(k);

	check(chmod(conf, 0644) == 0, "chmod 644");
	k = load_key("kmstore:profile=p");
	n = k == NULL;
	{
		const char *data = NULL;

		ERR_peek_last_error_data(&data, NULL);
		check(n && data != NULL && strstr(data, "accessible by group or others") != NULL,
		      "readable by others: refused at the next open");
	}
	EVP_PKEY_free(k);
	ERR_clear_error();
	check(chmod(conf, 0600) == 0, "chmod 600");

	write_file(conf, "[p]\ntype = static\n", 0600);
	k = load_key("kmstore:profile=p");
	check(k == NULL && ERR_peek_error() != 0, "broken configuration: an error");
	EVP_PKEY_free(k);
	ERR_clear_error();

	conf_text(text, sizeof(text), 'c');
	write_file(conf, text, 0600);
	n = load("kmstore:", NULL);
	check(n == 1, "fixed: the listing shows the one profile");

	/* The key loaded from the first configuration is still itself. */
	key_id(before, id, sizeof(id));
	check(strcmp(id, "PPK_ID_1") == 0 && raw(before, buf, sizeof(buf)) == file_len &&
	      memcmp(buf, file_key, file_len) == 0,
	      "a key loaded before the changes: same ID and bytes");
	EVP_PKEY_free(before);
	OPENSSL_cleanse(buf, sizeof(buf));
	OPENSSL_cleanse(file_key, sizeof(file_key));
	return 0;
}

struct worker {
	int n;
	int failures;
};

static void *work(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < w->n; i++) {
		unsigned char buf[64];
		EVP_PKEY *k = load_key("kmstore:profile=p");
		char id[128];

		key_id(k, id, sizeof(id));
		/* One whole configuration or the other: KEY_a with 0xaa... */
		if (k == NULL || strlen(id) != 5 || raw(k, buf, sizeof(buf)) != 32 ||
		    buf[0] != (unsigned char)((id[4] == 'a' ? 0xaa : 0xbb)) ||
		    load("kmstore:", NULL) != 1)
			w->failures++;
		EVP_PKEY_free(k);
		ERR_clear_error();
	}
	OPENSSL_thread_stop();
	return NULL;
}

static int mode_threads(const char *conf, int t, int n)
{
	char a[512], b[512];
	struct worker w[64];
	pthread_t th[64];
	int total = 0;

	if (t < 1 || t > 64)
		return 2;
	conf_text(a, sizeof(a), 'a');
	conf_text(b, sizeof(b), 'b');
	write_file(conf, a, 0600);
	for (int i = 0; i < t; i++) {
		w[i] = (struct worker){ .n = n };
		if (pthread_create(&th[i], NULL, work, &w[i]) != 0)
			return 2;
	}
	for (int i = 0; i < 40; i++) {
		write_file(conf, i % 2 ? a : b, 0600);
		usleep(1000);
	}
	for (int i = 0; i < t; i++) {
		pthread_join(th[i], NULL);
		total += w[i].failures;
	}
	printf("# %d threads x %d opens while the configuration changed 40 times: %d failures\n",
	       t, n, total);
	check(total == 0, "every open in every thread gave a whole key");
	return 0;
}

int main(int argc, char **argv)
{
	OSSL_PROVIDER *kmstore, *deflt;
	const char *mode;
	int rc = 2;

	if (argc < 5) {
		fprintf(stderr, "usage: test_reuse PROVIDER_DIR opens|qkd|reload|threads CONF ARGS...\n");
		return 2;
	}
	mode = argv[2];
	setenv("KMSTORE_CONF", argv[3], 1);
	libctx = OSSL_LIB_CTX_new();
	OSSL_PROVIDER_set_default_search_path(libctx, argv[1]);
	kmstore = OSSL_PROVIDER_load(libctx, "kmstore");
	deflt = OSSL_PROVIDER_load(libctx, "default");
	if (kmstore == NULL || deflt == NULL) {
		ERR_print_errors_fp(stderr);
		return 2;
	}
	if (strcmp(mode, "opens") == 0)
		rc = mode_opens(atoi(argv[4]));
	else if (strcmp(mode, "qkd") == 0)
		rc = mode_qkd(atoi(argv[4]), argc > 5 ? atoi(argv[5]) : 1);
	else if (strcmp(mode, "reload") == 0)
		rc = mode_reload(argv[3], argv[4]);
	else if (strcmp(mode, "threads") == 0 && argc > 5)
		rc = mode_threads(argv[3], atoi(argv[4]), atoi(argv[5]));
	OSSL_PROVIDER_unload(deflt);
	OSSL_PROVIDER_unload(kmstore);
	OSSL_LIB_CTX_free(libctx);
	if (rc != 0)
		return rc;
	return failures == 0 ? 0 : 1;
}
