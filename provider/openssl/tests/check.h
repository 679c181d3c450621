/* check.h - the TAP line of the OpenSSL test programs: "ok - what" or
 * "not ok - what" with OpenSSL's error queue, which is then cleared for
 * the next check. Header only: each program includes it once and returns
 * failures == 0 ? 0 : 1. */
#ifndef KMS_OSSL_TESTS_CHECK_H
#define KMS_OSSL_TESTS_CHECK_H

#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

static int failures;

static void check(int cond, const char *what)
{
	printf("%s - %s\n", cond ? "ok" : "not ok", what);
	if (!cond) {
		failures++;
		ERR_print_errors_fp(stdout);
	}
	ERR_clear_error();
}

/* Whether OpenSSL's error queue holds an error whose text contains text;
 * the queue is left as it was. */
static inline int error_names(const char *text)
{
	unsigned long e;
	const char *data;
	int flags, found = 0;

	ERR_set_mark();
	while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0)
		if ((flags & ERR_TXT_STRING) != 0 && strstr(data, text) != NULL)
			found = 1;
	ERR_pop_to_mark();
	return found;
}

#endif
