/* soak.c - thousands of QKD keys through one face of kmstore against KMEs
 * that misbehave now and then (kme-sim --fault 503:5 ...), in one long-
 * lived process as pluto is: does anything grow (memory, descriptors), and
 * does every failure have one of the injected causes?
 *
 * One round = a key for use now from profile (token) "west" (enc_keys at
 * KME_A), then the key with that ID from "east" (dec_keys at KME_B), and
 * the two compared byte for byte, as an IKE initiator and responder do.
 *
 *   soak --face lib CONF        libkmstore: kms_profile_get_key, _by_id
 *   soak --face nss NSSDB       the PKCS#11 module through NSS, as pluto:
 *                               PK11_TokenKeyGenWithFlags on pkcs11:token=
 *                               west, PK11_FindFixedKey on token=east
 *   soak --face ossl CONF       the OpenSSL provider in-process, in its own
 *                               OSSL_LIB_CTX: OSSL_STORE on kmstore:profile=
 *                               west, then kmstore:profile=east;key-id=ID;
 *                               kmstore.so from -p DIR (else
 *                               $KMSTORE_PROVIDER_DIR, else OpenSSL's
 *                               modules directory), CONF as KMSTORE_CONF
 * Options: -n ROUNDS [5000], -t SECONDS time cap [600], -w WARMUP rounds
 * before the baseline [100], -r KB allowed RSS growth after the warm-up
 * [1024], -e CAUSE[,CAUSE...] the causes that are expected (the injected
 * faults; "any": all), -p DIR the provider's directory (ossl), -P PID
 * another process whose RSS and descriptors are held to the same bounds
 * (kmstored, when CONF or NSSDB send the face there), -q no progress
 * lines.
 *
 * Prints keys served, errors by cause (kms_rc and message class; NSS error
 * and the CKR it stands for; OpenSSL reason and message class), RSS and
 * open descriptors at start, after the warm-up and at the end, and a
 * verdict. Exit 0 when: no descriptor growth, RSS growth within the
 * bound, no mismatched key, every error of an expected cause, and at least
 * one key served; 1 otherwise; 2 usage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kmstore.h"
#include "proc.h"

#ifdef SOAK_NSS
#include <nss.h>
#include <pk11pub.h>
#include <prerror.h>
#include <secerr.h>
#endif

#ifdef SOAK_OSSL
#include <openssl/err.h>

#include "ossl_face.h"
#endif

#define MAX_CAUSES 64

struct cause {
	char name[96];
	long n;
};

static struct {
	struct cause v[MAX_CAUSES];
	int n;
} causes;

static long served, mismatched, failed_rounds;
static const char *ossl_dir; /* -p: where kmstore.so is (face ossl) */

static void count_cause(const char *name)
{
	for (int i = 0; i < causes.n; i++)
		if (strcmp(causes.v[i].name, name) == 0) {
			causes.v[i].n++;
			return;
		}
	if (causes.n < MAX_CAUSES) {
		snprintf(causes.v[causes.n].name, sizeof(causes.v[0].name), "%s",
			 name);
		causes.v[causes.n++].n = 1;
	}
}

/* The class of a libkmstore message: what the KME or the network did. */
static const char *message_class(const char *m)
{
	static const struct {
		const char *needle, *cls;
	} classes[] = {
		{ "not valid JSON", "malformed" },
		{ "HTTP 503", "503" },
		{ "closed the connection", "drop" },
		{ "no answer within the timeout", "timeout" },
		{ "it was given of the timeout", "timeout" },
		{ "transfer closed", "truncated" },
		{ "larger than", "oversized" },
		{ "TLS failure", "tls" },
		{ "cannot connect", "refused" },
		{ "HTTP 4", "http-4xx" },
		{ "HTTP 5", "http-5xx" },
		{ "bytes of base64", "wrong-length" },
		{ "keys; 1 was asked", "extra-key" },
		{ "not the '", "wrong-id" },
	};

	for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++)
		if (strstr(m, classes[i].needle) != NULL)
			return classes[i].cls;
	return "other";
}

static long watched; /* -P: another process's pid, or 0 */

static long watched_rss_kb(void)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%ld/status", watched);
	return rss_kb_of(path);
}

static int watched_fds(void)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%ld/fd", watched);
	return proc_entries(path);
}

/* The watched process's RSS (kB) and descriptors, or -1. Its
 * descriptors are counted a few times over 100 ms and the least kept: a
 * connection this process closed a moment ago may not be closed there
 * yet (kmstored ends a connection's thread when it reads the close). */
static void watched_figures(long *rss, int *fds)
{
	struct timespec pause = { 0, 20 * 1000 * 1000 };

	*rss = -1;
	*fds = -1;
	if (watched <= 0)
		return;
	for (int i = 0; i < 6; i++) {
		int n = watched_fds();

		if (n >= 0 && (*fds < 0 || n < *fds))
			*fds = n;
		nanosleep(&pause, NULL);
	}
	*rss = watched_rss_kb();
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- libkmstore ---- */

static kms_store *store;
static kms_profile *west, *east;

static int lib_open(const char *conf)
{
	kms_error e;

	if (kms_store_open(conf, &store, &e) != KMS_OK ||
	    kms_store_find_profile(store, "west", &west, &e) != KMS_OK ||
	    kms_store_find_profile(store, "east", &east, &e) != KMS_OK) {
		fprintf(stderr, "soak: %s\n", e.message);
		return -1;
	}
	return 0;
}

static void lib_failed(kms_rc rc, const kms_error *e, const char *side)
{
	char name[96];

	snprintf(name, sizeof(name), "%s kms_rc=%s (%s)", side, kms_rc_name(rc),
		 message_class(e->message));
	count_cause(name);
}

static void lib_round(void)
{
	kms_key *a = NULL, *b = NULL;
	kms_error e;
	kms_rc rc;

	rc = kms_profile_get_key(west, &a, &e);
	if (rc != KMS_OK) {
		lib_failed(rc, &e, "enc");
		failed_rounds++;
		return;
	}
	rc = kms_profile_get_key_by_id(east, kms_key_id(a), &b, &e);
	if (rc != KMS_OK) {
		lib_failed(rc, &e, "dec");
		failed_rounds++;
	} else if (kms_key_size(a) != kms_key_size(b) ||
		   memcmp(kms_key_bytes(a), kms_key_bytes(b), kms_key_size(a)) != 0) {
		mismatched++;
		count_cause("MISMATCH");
	} else {
		served++;
	}
	kms_key_free(a);
	kms_key_free(b);
}

static int lib_close(void)
{
	kms_store_free(store);
	return 0;
}

/* ---- the PKCS#11 module through NSS ---- */

#ifdef SOAK_NSS
static PK11SlotInfo *west_slot, *east_slot;

/* NSS's error, with the CKR it comes from (NSS's table in pk11err). */
static const char *ckr_of(PRErrorCode e)
{
	switch (e) {
	case SEC_ERROR_PKCS11_FUNCTION_FAILED:
		return "CKR_FUNCTION_FAILED";
	case SEC_ERROR_PKCS11_DEVICE_ERROR:
		return "CKR_DEVICE_ERROR";
	case SEC_ERROR_PKCS11_GENERAL_ERROR:
		return "CKR_GENERAL_ERROR";
	case SEC_ERROR_BAD_DATA:
		return "CKR_ARGUMENTS_BAD?";
	case SEC_ERROR_NO_MEMORY:
		return "CKR_HOST_MEMORY";
	case 0:
		return "no error code";
	default:
		return "?";
	}
}

static void nss_failed(const char *side)
{
	PRErrorCode e = PR_GetError();
	const char *name = PR_ErrorToName(e);
	char buf[96];

	snprintf(buf, sizeof(buf), "%s %s = %s", side, name ? name : "0",
		 ckr_of(e));
	count_cause(buf);
}

static int nss_open(const char *db)
{
	char dir[4096];

	snprintf(dir, sizeof(dir), "sql:%s", db);
	if (NSS_Initialize(dir, "", "", "secmod.db", NSS_INIT_READONLY) != SECSuccess) {
		fprintf(stderr, "soak: NSS_Initialize(%s) failed\n", dir);
		return -1;
	}
	west_slot = PK11_FindSlotByName("pkcs11:token=west");
	east_slot = PK11_FindSlotByName("pkcs11:token=east");
	if (west_slot == NULL || east_slot == NULL) {
		fprintf(stderr, "soak: tokens west and east not both in %s\n", db);
		return -1;
	}
	return 0;
}

static void nss_round(void)
{
	PK11AttrFlags attrs = PK11_ATTR_SESSION | PK11_ATTR_INSENSITIVE |
			      PK11_ATTR_EXTRACTABLE;
	SECItem id = { siBuffer, NULL, 0 };
	PK11SymKey *a, *b = NULL;
	const SECItem *x, *y;

	PR_SetError(0, 0);
	a = PK11_TokenKeyGenWithFlags(west_slot, CKM_GENERIC_SECRET_KEY_GEN, NULL,
				      0, NULL, CKF_SIGN | CKF_DERIVE, attrs, NULL);
	if (a == NULL) {
		nss_failed("enc");
		failed_rounds++;
		return;
	}
	if (PK11_ReadRawAttribute(PK11_TypeSymKey, a, CKA_ID, &id) != SECSuccess) {
		nss_failed("CKA_ID");
		failed_rounds++;
		PK11_FreeSymKey(a);
		return;
	}
	PR_SetError(0, 0);
	b = PK11_FindFixedKey(east_slot, CKM_GENERIC_SECRET_KEY_GEN, &id, NULL);
	if (b == NULL) {
		nss_failed("dec");
		failed_rounds++;
	} else if (PK11_ExtractKeyValue(a) != SECSuccess ||
		   PK11_ExtractKeyValue(b) != SECSuccess ||
		   (x = PK11_GetKeyData(a)) == NULL ||
		   (y = PK11_GetKeyData(b)) == NULL || x->len != y->len ||
		   memcmp(x->data, y->data, x->len) != 0) {
		mismatched++;
		count_cause("MISMATCH");
	} else {
		served++;
	}
	if (b != NULL)
		PK11_FreeSymKey(b);
	SECITEM_FreeItem(&id, PR_FALSE);
	PK11_FreeSymKey(a);
}

static int nss_close(void)
{
	PK11_FreeSlot(west_slot);
	PK11_FreeSlot(east_slot);
	if (NSS_Shutdown() != SECSuccess) {
		fprintf(stderr, "soak: NSS_Shutdown failed (a key or slot leaked)\n");
		return -1;
	}
	return 0;
}
#endif

/* ---- the OpenSSL provider, in-process ---- */

#ifdef SOAK_OSSL
static struct ossl_face ossl;

/* The provider raises the library's kms_rc as the reason ("KME error") and
 * its message as the error data, so the message class is there too. The
 * kmstore error is named, else the first one (OSSL_STORE's own). */
static void ossl_failed(const char *side)
{
	const char *lib = NULL, *reason = NULL, *cls = "no message", *data;
	unsigned long e;
	char name[96];
	int flags, found = 0, ours = 0;

	while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
		const char *l = ERR_lib_error_string(e);
		int mine = l != NULL && strcmp(l, "kmstore") == 0;

		if (found && (ours || !mine))
			continue;
		found = 1;
		ours = mine;
		lib = l;
		reason = ERR_reason_error_string(e);
		/* Read now: the next ERR_get_error_all may clear it. */
		cls = (flags & ERR_TXT_STRING) && data != NULL && data[0] ?
			      message_class(data) : "no message";
	}
	if (!found)
		snprintf(name, sizeof(name), "%s no error in the queue", side);
	else
		snprintf(name, sizeof(name), "%s %s: %s (%s)", side,
			 lib ? lib : "?", reason ? reason : "?", cls);
	count_cause(name);
}

static int ossl_open(const char *conf)
{
	return ossl_face_open(&ossl, conf, ossl_dir);
}

static void ossl_round(void)
{
	ERR_clear_error();
	switch (ossl_face_round(ossl.ctx, "west", "east")) {
	case OSSL_ROUND_SERVED:
		served++;
		return;
	case OSSL_ROUND_MISMATCH:
		mismatched++;
		count_cause("MISMATCH");
		return;
	case OSSL_ROUND_ENC:
		ossl_failed("enc");
		break;
	case OSSL_ROUND_KEY_ID:
		ossl_failed("kmstore-key-id");
		break;
	case OSSL_ROUND_DEC:
		ossl_failed("dec");
		break;
	}
	failed_rounds++;
}

static int ossl_close(void)
{
	return ossl_face_close(&ossl);
}
#endif

/* An error is expected when its description holds one of the causes. */
static int expected(const char *name, const char *list)
{
	char buf[512], *save = NULL;

	if (strcmp(list, "any") == 0)
		return 1;
	snprintf(buf, sizeof(buf), "%s", list);
	for (char *c = strtok_r(buf, ",", &save); c != NULL;
	     c = strtok_r(NULL, ",", &save))
		if (strstr(name, c) != NULL)
			return 1;
	return 0;
}

static int usage(void)
{
	fprintf(stderr, "usage: soak --face lib|nss|ossl [-n ROUNDS] [-t SECONDS] "
		"[-w WARMUP] [-r KB] [-e CAUSES|any] [-p PROVIDER_DIR] [-P PID] [-q] "
		"CONF|NSSDB\n");
	return 2;
}

int main(int argc, char **argv)
{
	long rounds = 5000, warmup = 100, rss_bound = 1024, done = 0;
	double cap = 600, t0, t_warm = 0, t_end;
	const char *face = NULL, *expect = "", *target = NULL;
	long rss0, rss1 = 0, rss2, wrss0, wrss1 = -1, wrss2;
	int fd0, fd1 = 0, fd2, wfd0, wfd1 = -1, wfd2, quiet = 0, ok = 1;
	void (*round_fn)(void);
	int (*close_fn)(void) = lib_close;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--face") == 0 && v) face = v, i++;
		else if (strcmp(a, "-n") == 0 && v) rounds = atol(v), i++;
		else if (strcmp(a, "-t") == 0 && v) cap = atof(v), i++;
		else if (strcmp(a, "-w") == 0 && v) warmup = atol(v), i++;
		else if (strcmp(a, "-r") == 0 && v) rss_bound = atol(v), i++;
		else if (strcmp(a, "-e") == 0 && v) expect = v, i++;
		else if (strcmp(a, "-p") == 0 && v) ossl_dir = v, i++;
		else if (strcmp(a, "-P") == 0 && v) watched = atol(v), i++;
		else if (strcmp(a, "-q") == 0) quiet = 1;
		else if (a[0] != '-' && target == NULL) target = a;
		else return usage();
	}
	if (face == NULL || target == NULL || rounds < 1 || warmup < 0 || cap <= 0)
		return usage();
	if (warmup >= rounds)
		warmup = rounds / 5;

	rss0 = rss_kb();
	fd0 = open_fds();
	watched_figures(&wrss0, &wfd0);
	if (strcmp(face, "lib") == 0) {
		if (lib_open(target) != 0)
			return 1;
		round_fn = lib_round;
	} else if (strcmp(face, "nss") == 0) {
#ifdef SOAK_NSS
		if (nss_open(target) != 0)
			return 1;
		round_fn = nss_round;
		close_fn = nss_close;
#else
		fprintf(stderr, "soak: built without NSS\n");
		return 2;
#endif
	} else if (strcmp(face, "ossl") == 0) {
#ifdef SOAK_OSSL
		if (ossl_open(target) != 0)
			return 1;
		round_fn = ossl_round;
		close_fn = ossl_close;
#else
		fprintf(stderr, "soak: built without the OpenSSL provider\n");
		return 2;
#endif
	} else {
		return usage();
	}

	t0 = now();
	for (done = 0; done < rounds; done++) {
		if (done == warmup) {
			rss1 = rss_kb();
			fd1 = open_fds();
			watched_figures(&wrss1, &wfd1);
			t_warm = now();
		}
		if (now() - t0 > cap) {
			fprintf(stderr, "soak: time cap of %.0f s reached\n", cap);
			break;
		}
		round_fn();
		if (!quiet && (done + 1) % 1000 == 0)
			fprintf(stderr, "soak: %ld rounds, %ld keys, RSS %ld kB, "
				"%d fds\n", done + 1, served, rss_kb(), open_fds());
	}
	if (done <= warmup) { /* capped before the baseline */
		rss1 = rss_kb();
		fd1 = open_fds();
		watched_figures(&wrss1, &wfd1);
		t_warm = now();
	}
	t_end = now();
	rss2 = rss_kb();
	fd2 = open_fds();
	watched_figures(&wrss2, &wfd2);

	printf("soak: face %s, %ld rounds in %.1f s (%.1f rounds/s after the "
	       "warm-up of %ld)\n", face, done, t_end - t0,
	       t_end > t_warm ? (double)(done - warmup) / (t_end - t_warm) : 0.0,
	       warmup);
	printf("keys served: %ld (each fetched at west and at east, equal)\n",
	       served);
	printf("failed rounds: %ld, mismatched keys: %ld\n", failed_rounds,
	       mismatched);
	printf("errors by cause:%s\n", causes.n ? "" : " none");
	for (int i = 0; i < causes.n; i++) {
		int exp = strcmp(causes.v[i].name, "MISMATCH") != 0 &&
			  expected(causes.v[i].name, expect);

		printf("  %6ld  %s%s\n", causes.v[i].n, causes.v[i].name,
		       exp ? "" : "   <- NOT EXPECTED");
		ok &= exp;
	}
	printf("RSS kB: start %ld, after warm-up %ld, end %ld: growth %+ld kB "
	       "(bound %ld): %s\n", rss0, rss1, rss2, rss2 - rss1, rss_bound,
	       rss2 - rss1 <= rss_bound ? "ok" : "GROWS");
	printf("open fds: start %d, after warm-up %d, end %d: %s\n", fd0, fd1,
	       fd2, fd2 <= fd1 ? "ok" : "GROWS");
	ok &= rss2 - rss1 <= rss_bound && fd2 <= fd1 && mismatched == 0 &&
	      served > 0;
	if (watched > 0) {
		printf("process %ld (-P) RSS kB: start %ld, after warm-up %ld, end %ld: "
		       "growth %+ld kB (bound %ld): %s\n", watched, wrss0, wrss1,
		       wrss2, wrss2 - wrss1, rss_bound,
		       wrss2 >= 0 && wrss2 - wrss1 <= rss_bound ? "ok" : "GROWS");
		printf("process %ld (-P) open fds: start %d, after warm-up %d, end %d: "
		       "%s\n", watched, wfd0, wfd1, wfd2,
		       wfd2 >= 0 && wfd2 <= wfd1 ? "ok" : "GROWS");
		ok &= wrss2 >= 0 && wrss2 - wrss1 <= rss_bound && wfd2 >= 0 &&
		      wfd2 <= wfd1;
	}

	ok &= close_fn() == 0;
	printf("verdict: %s\n", ok ? "ok" : "FAIL");
	return ok ? 0 : 1;
}
