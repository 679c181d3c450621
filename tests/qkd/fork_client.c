/* fork_client.c - a QKD profile used across fork(), as a pre-forking
 * application or a daemon that runs programs does:
 *   fork_client CONF PROFILE fork   a key, fork: a key in the child, then
 *                                   one in the parent again
 *   fork_client CONF PROFILE exec   a key, then fork and exec CMD (argv[4...])
 *   fork_client CONF PROFILE reuse  a key, fork: the child closes what it
 *                                   inherited (as a daemon does), opens
 *                                   pipes that take those numbers, gets a
 *                                   key, and checks its pipes are pipes
 * Prints one line per key ("parent: ok", "child: FAIL message") and exits
 * with the number of failures. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kmstore.h"

static int get(kms_profile *p, const char *who)
{
	kms_error e;
	kms_key *k;

	if (kms_profile_get_key(p, &k, &e) != KMS_OK) {
		printf("%s: FAIL %s\n", who, e.message);
		fflush(stdout);
		return 1;
	}
	printf("%s: ok\n", who);
	fflush(stdout);
	kms_key_free(k);
	return 0;
}

/* The child of "reuse": its own descriptors on the numbers its parent's
 * KME connections had must stay its own. */
static int reuse(kms_profile *p)
{
	int pipes[16][2], fails;

	for (int fd = 3; fd < 1024; fd++)
		close(fd);
	for (int i = 0; i < 16; i++)
		if (pipe(pipes[i]) != 0)
			return 2;
	fails = get(p, "child");
	for (int i = 0; i < 16; i++)
		for (int j = 0; j < 2; j++) {
			struct stat st;

			if (fstat(pipes[i][j], &st) != 0 || !S_ISFIFO(st.st_mode)) {
				printf("child: FAIL its pipe, descriptor %d, is no "
				       "longer its pipe\n", pipes[i][j]);
				fails++;
			}
		}
	fflush(stdout); /* the child ends with _exit() */
	return fails;
}

int main(int argc, char **argv)
{
	kms_store *s;
	kms_profile *p;
	kms_error e;
	int fails, status;
	pid_t pid;

	if (argc < 4) {
		fprintf(stderr, "usage: fork_client CONF PROFILE fork|exec|reuse [CMD...]\n");
		return 2;
	}
	if (kms_store_open(argv[1], &s, &e) != KMS_OK ||
	    kms_store_find_profile(s, argv[2], &p, &e) != KMS_OK) {
		fprintf(stderr, "fork_client: %s\n", e.message);
		return 2;
	}
	fails = get(p, "parent");
	pid = fork();
	if (pid < 0)
		return 2;
	if (pid == 0) {
		if (strcmp(argv[3], "exec") == 0) {
			execvp(argv[4], argv + 4);
			_exit(127);
		}
		if (strcmp(argv[3], "reuse") == 0)
			_exit(reuse(p));
		_exit(get(p, "child"));
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return 2;
	fails += WEXITSTATUS(status);
	if (strcmp(argv[3], "fork") == 0)
		fails += get(p, "parent again");
	kms_store_free(s);
	return fails;
}
