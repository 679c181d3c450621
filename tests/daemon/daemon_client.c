/* daemon_client.c - a long-lived client of libkmstore, as pluto is: opens
 * one store and answers commands from stdin, one line each, so a test can
 * stop, kill and restart kmstored under it and watch it recover.
 *
 *   daemon_client SOCKET|--config FILE|--cache SOCKET
 *
 * --cache: as the OpenSSL provider does, a kms_store_cache of kmstored's
 * store, and the store it gives taken again for each command.
 *
 * Commands: "key PROFILE", "id PROFILE KEY_ID", "status PROFILE",
 * "profiles". Answers (one line, flushed): "ok KEY_ID CHECK_VALUE
 * SECONDS", "ok STATE SECONDS", "ok N PROFILE...", or "error RC SECONDS
 * MESSAGE". */
#include <stdio.h>
#include <string.h>
#include <time.h>

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
			kms_key_check_value(k, kcv);
			printf("ok %s %s %.3f\n", kms_key_id(k), kcv, now() - t0);
			kms_key_free(k);
		}
	}
	if (rc != KMS_OK)
		answer_error(rc, t0, &e);
}

int main(int argc, char **argv)
{
	char line[512], cmd[16], name[64], id[128];
	kms_store_cache *cache = NULL;
	kms_store *st = NULL;
	kms_error e;
	kms_rc rc;

	if (argc == 3 && strcmp(argv[1], "--config") == 0)
		rc = kms_store_open(argv[2], &st, &e);
	else if (argc == 3 && strcmp(argv[1], "--cache") == 0)
		rc = kms_store_cache_new_daemon(argv[2], &cache, &e);
	else if (argc == 2)
		rc = kms_store_open_daemon(argv[1], &st, &e);
	else {
		fprintf(stderr, "usage: daemon_client SOCKET|--config FILE|--cache SOCKET\n");
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
