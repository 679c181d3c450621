/* check.h - the TAP line of the OpenSSL test programs: "ok - what" or
 * "not ok - what" with OpenSSL's error queue, which is then cleared for
 * the next check. Header only: each program includes it once and returns
 * failures == 0 ? 0 : 1. */
#ifndef KMS_OSSL_TESTS_CHECK_H
#define KMS_OSSL_TESTS_CHECK_H

#include <stdio.h>

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

#endif
