/* nss_client.c - a small NSS application, as libreswan's pluto uses NSS,
 * to test the kmstore PKCS#11 module through NSS itself:
 *
 *   nss_client DBDIR tokens MODULE        tokens of a module: label, model
 *   nss_client DBDIR wait-token URI SECONDS   look the token up, as pluto
 *                                         does for each IKE SA, every
 *                                         0.1 s until it is there; print
 *                                         the tries before it was, and the
 *                                         ID and key it then generates. The
 *                                         first miss prints "missed" at once.
 *   nss_client DBDIR key URI [token|generate]  resolve URI: generate (no
 *                                         id) or find (id), or with
 *                                         "generate" C_GenerateKey with
 *                                         CKA_ID = id; print id, key, threads
 *   nss_client DBDIR hmac URI DATAHEX     HMAC-SHA256 in NSS's softoken
 *   nss_client DBDIR prfplus URI SEEDHEX LEN   IKEv2 prf+ (HMAC-SHA256)
 *   nss_client DBDIR fips-hmac URI DATAHEX     HMAC the FIPS-mode way
 *   nss_client DBDIR threads URI N ITER   N threads generating and finding
 *   nss_client DBDIR twice URI [generate-token|generate-session]
 *                                         find the key URI names (id=)
 *                                         twice in this process, reading
 *                                         its value each time, as a
 *                                         responder that gets one PPK_ID
 *                                         twice; with generate-* the first
 *                                         by C_GenerateKey with CKA_ID and
 *                                         CKA_TOKEN=TRUE, or FALSE and the
 *                                         key kept through the search
 *
 * DBDIR is opened as pluto does: NSS_Initialize("sql:DBDIR", "", "",
 * "secmod.db", NSS_INIT_READONLY). URIs are parsed by NSS's own parser
 * (PK11URI_ParseURI); the slot comes from PK11_FindSlotByName.
 *
 * Exit status: 0 ok; 1 failure; 2 usage; 3 no such token; 4 no such key;
 * 5 malformed URI. Key bytes are printed: these are test keys. */
#include <pthread.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include <nss.h>
#include <pk11pub.h>
#include <pkcs11n.h>
#include <pkcs11uri.h>
#include <prerror.h>
#include <secmod.h>

#include "proc.h"

enum { EX_OK, EX_FAIL, EX_USAGE, EX_NO_TOKEN, EX_NO_KEY, EX_BAD_URI };

static int fail(int code, const char *what)
{
	PRErrorCode e = PR_GetError();

	fprintf(stderr, "nss_client: %s: %s (%s)\n", what,
		PR_ErrorToString(e, PR_LANGUAGE_I_DEFAULT),
		PR_ErrorToName(e) ? PR_ErrorToName(e) : "?");
	return code;
}

/* For failures that leave no NSS error code (a stale one would mislead). */
static int say(int code, const char *what)
{
	fprintf(stderr, "nss_client: %s\n", what);
	return code;
}

static void print_hex(const char *name, const unsigned char *p, size_t n)
{
	printf("%s=", name);
	for (size_t i = 0; i < n; i++)
		printf("%02x", p[i]);
	printf("\n");
}

static int from_hex(const char *s, unsigned char *out, size_t max, size_t *n)
{
	size_t len = strlen(s);

	if (len % 2 != 0 || len / 2 > max)
		return -1;
	for (size_t i = 0; i < len / 2; i++) {
		unsigned v;

		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (unsigned char)v;
	}
	*n = len / 2;
	return 0;
}

/* A resolved URI: the slot of its token and, with id=, the key ID. */
struct target {
	PK11SlotInfo *slot;
	SECItem id; /* len 0: no id, "a key for use now" */
};

static int resolve(const char *uri_string, struct target *t)
{
	PK11URI *uri = PK11URI_ParseURI(uri_string);
	const SECItem *id;

	memset(t, 0, sizeof(*t));
	if (uri == NULL)
		return say(EX_BAD_URI, "malformed pkcs11: URI");
	if (PK11URI_GetPathAttribute(uri, PK11URI_PATTR_TOKEN) == NULL) {
		PK11URI_DestroyURI(uri);
		return say(EX_BAD_URI, "the URI names no token");
	}
	id = PK11URI_GetPathAttributeItem(uri, PK11URI_PATTR_ID);
	if (id != NULL && SECITEM_CopyItem(NULL, &t->id, id) != SECSuccess) {
		PK11URI_DestroyURI(uri);
		return fail(EX_FAIL, "out of memory");
	}
	PK11URI_DestroyURI(uri);
	/* NSS matches the token attributes and ignores id= here. */
	t->slot = PK11_FindSlotByName(uri_string);
	if (t->slot == NULL) {
		SECITEM_FreeItem(&t->id, PR_FALSE);
		return fail(EX_NO_TOKEN, "no such token");
	}
	return EX_OK;
}

static void target_free(struct target *t)
{
	if (t->slot != NULL)
		PK11_FreeSlot(t->slot);
	SECITEM_FreeItem(&t->id, PR_FALSE);
}

/* "A key for use now": C_GenerateKey on the token, which NSS calls only
 * because the token lists CKM_GENERIC_SECRET_KEY_GEN. */
static PK11SymKey *generate(PK11SlotInfo *slot, int token_object)
{
	PK11AttrFlags attrs = PK11_ATTR_INSENSITIVE | PK11_ATTR_EXTRACTABLE |
			      (token_object ? PK11_ATTR_TOKEN : PK11_ATTR_SESSION);
	PK11SymKey *key;

	key = PK11_TokenKeyGenWithFlags(slot, CKM_GENERIC_SECRET_KEY_GEN, NULL, 0,
					NULL, CKF_SIGN | CKF_DERIVE, attrs, NULL);
	if (key != NULL) {
		/* From softoken instead, it would not be a kmstore key. */
		PK11SlotInfo *where = PK11_GetSlotFromKey(key);
		int ours = where == slot;

		if (!ours)
			fprintf(stderr, "nss_client: key generated in %s, "
				"not in the token\n", PK11_GetTokenName(where));
		PK11_FreeSlot(where);
		if (!ours) {
			PK11_FreeSymKey(key);
			key = NULL;
		}
	}
	return key;
}

static int get_key(const char *uri, int token_object, PK11SymKey **key);

/* The key with the URI's id through C_GenerateKey with CKA_ID (the module
 * then runs it in parallel with others, unlike a search). */
static int generate_by_id(const char *uri, int token_object, PK11SymKey **key)
{
	struct target t;
	int rc = resolve(uri, &t);

	if (rc != EX_OK)
		return rc;
	if (t.id.len == 0) {
		target_free(&t);
		return say(EX_USAGE, "generate needs an id in the URI");
	}
	*key = PK11_TokenKeyGenWithFlags(t.slot, CKM_GENERIC_SECRET_KEY_GEN, NULL, 0,
					 &t.id, CKF_SIGN | CKF_DERIVE,
					 (token_object ? PK11_ATTR_TOKEN :
							 PK11_ATTR_SESSION) |
						 PK11_ATTR_INSENSITIVE |
						 PK11_ATTR_EXTRACTABLE, NULL);
	rc = *key ? EX_OK : fail(EX_NO_KEY, "no key with that ID");
	target_free(&t);
	return rc;
}

static int get_key(const char *uri, int token_object, PK11SymKey **key)
{
	struct target t;
	int rc = resolve(uri, &t);

	if (rc != EX_OK)
		return rc;
	if (t.id.len > 0) {
		*key = PK11_FindFixedKey(t.slot, CKM_GENERIC_SECRET_KEY_GEN, &t.id,
					 NULL);
		rc = *key ? EX_OK : say(EX_NO_KEY, "no key with that ID");
	} else {
		*key = generate(t.slot, token_object);
		rc = *key ? EX_OK : fail(EX_FAIL, "no key generated");
	}
	target_free(&t);
	return rc;
}

static int print_id(PK11SymKey *key)
{
	SECItem id = { siBuffer, NULL, 0 };

	if (PK11_ReadRawAttribute(PK11_TypeSymKey, key, CKA_ID, &id) != SECSuccess)
		return fail(EX_FAIL, "cannot read CKA_ID");
	printf("id=%.*s\n", (int)id.len, (const char *)id.data);
	SECITEM_FreeItem(&id, PR_FALSE);
	return EX_OK;
}

static int print_value(PK11SymKey *key)
{
	const SECItem *value;

	if (PK11_ExtractKeyValue(key) != SECSuccess ||
	    (value = PK11_GetKeyData(key)) == NULL)
		return fail(EX_FAIL, "cannot read the key value");
	print_hex("key", value->data, value->len);
	return EX_OK;
}

static int cmd_key(int argc, char **argv)
{
	int before = threads(), rc;
	PK11SymKey *key;

	if (argc < 1)
		return EX_USAGE;
	if (argc > 1 && strcmp(argv[1], "generate") == 0)
		rc = generate_by_id(argv[0], 0, &key);
	else
		rc = get_key(argv[0], argc > 1 && strcmp(argv[1], "token") == 0, &key);
	if (rc != EX_OK)
		return rc;
	rc = print_id(key);
	if (rc == EX_OK)
		rc = print_value(key);
	/* The module may not create threads (NSS says so). */
	printf("new-threads=%d\n", threads() - before);
	PK11_FreeSymKey(key);
	return rc;
}

static int hmac(PK11SymKey *key, const unsigned char *data, size_t n,
		unsigned char out[32])
{
	SECItem noparam = { siBuffer, NULL, 0 };
	PK11Context *ctx;
	unsigned len = 0;
	SECStatus rv;

	/* NSS moves the key into softoken here: the token lists no HMAC. */
	ctx = PK11_CreateContextBySymKey(CKM_SHA256_HMAC, CKA_SIGN, key, &noparam);
	if (ctx == NULL)
		return fail(EX_FAIL, "no HMAC context for the key");
	rv = PK11_DigestBegin(ctx);
	if (rv == SECSuccess)
		rv = PK11_DigestOp(ctx, data, n);
	if (rv == SECSuccess)
		rv = PK11_DigestFinal(ctx, out, &len, 32);
	PK11_DestroyContext(ctx, PR_TRUE);
	if (rv != SECSuccess || len != 32)
		return fail(EX_FAIL, "HMAC-SHA256 failed");
	return EX_OK;
}

static int cmd_hmac(int argc, char **argv)
{
	unsigned char data[1024], mac[32];
	PK11SymKey *key;
	size_t n;
	int rc;

	if (argc != 2 || from_hex(argv[1], data, sizeof(data), &n) != 0)
		return EX_USAGE;
	if ((rc = get_key(argv[0], 0, &key)) != EX_OK)
		return rc;
	rc = print_id(key);
	if (rc == EX_OK && (rc = hmac(key, data, n, mac)) == EX_OK)
		print_hex("hmac", mac, sizeof(mac));
	PK11_FreeSymKey(key);
	return rc;
}

static int prf_plus(PK11SymKey *key, unsigned char *seed, size_t n, int len)
{
	CK_NSS_IKE_PRF_PLUS_DERIVE_PARAMS p = {
		.prfMechanism = CKM_SHA256_HMAC,
		.bHasSeedKey = CK_FALSE,
		.hSeedKey = CK_INVALID_HANDLE,
		.pSeedData = seed,
		.ulSeedDataLen = n,
	};
	SECItem param = { siBuffer, (unsigned char *)&p, sizeof(p) };
	PK11SymKey *out;
	int rc;

	out = PK11_Derive(key, CKM_NSS_IKE_PRF_PLUS_DERIVE, &param,
			  CKM_EXTRACT_KEY_FROM_KEY, CKA_DERIVE, len);
	if (out == NULL)
		return fail(EX_FAIL, "prf+ derivation failed");
	rc = print_value(out);
	PK11_FreeSymKey(out);
	return rc;
}

static int cmd_prfplus(int argc, char **argv)
{
	unsigned char seed[1024];
	PK11SymKey *key;
	size_t n;
	int rc, len;

	if (argc != 3 || from_hex(argv[1], seed, sizeof(seed), &n) != 0 ||
	    (len = atoi(argv[2])) <= 0 || len > 1024)
		return EX_USAGE;
	if ((rc = get_key(argv[0], 0, &key)) != EX_OK)
		return rc;
	rc = print_id(key);
	if (rc == EX_OK)
		rc = prf_plus(key, seed, n, len);
	PK11_FreeSymKey(key);
	return rc;
}

/* In FIPS mode softoken refuses a plain key import; libreswan's
 * symkey_from_bytes derives the key in instead: scratch key, then
 * CONCATENATE_DATA_AND_BASE (bytes || scratch), then EXTRACT_KEY_FROM_KEY
 * (the first len bytes). */
static PK11SymKey *import_by_derivation(const SECItem *bytes)
{
	PK11SlotInfo *slot = PK11_GetBestSlot(CKM_CONCATENATE_DATA_AND_BASE, NULL);
	CK_KEY_DERIVATION_STRING_DATA data = { bytes->data, bytes->len };
	CK_EXTRACT_PARAMS bit = 0;
	SECItem dparam = { siBuffer, (unsigned char *)&data, sizeof(data) };
	SECItem eparam = { siBuffer, (unsigned char *)&bit, sizeof(bit) };
	PK11SymKey *scratch, *both, *key = NULL;

	if (slot == NULL)
		return NULL;
	scratch = PK11_KeyGen(slot, CKM_AES_KEY_GEN, NULL, 32, NULL);
	PK11_FreeSlot(slot);
	if (scratch == NULL)
		return NULL;
	both = PK11_Derive(scratch, CKM_CONCATENATE_DATA_AND_BASE, &dparam,
			   CKM_EXTRACT_KEY_FROM_KEY, CKA_DERIVE, 0);
	if (both != NULL)
		key = PK11_Derive(both, CKM_EXTRACT_KEY_FROM_KEY, &eparam,
				  CKM_SHA256_HMAC, CKA_SIGN, (int)bytes->len);
	PK11_FreeSymKey(both);
	PK11_FreeSymKey(scratch);
	return key;
}

static int cmd_fips_hmac(int argc, char **argv)
{
	unsigned char data[1024], mac[32];
	PK11SymKey *key, *soft;
	size_t n;
	int rc;

	if (argc != 2 || from_hex(argv[1], data, sizeof(data), &n) != 0)
		return EX_USAGE;
	printf("fips=%d\n", PK11_IsFIPS());
	if ((rc = get_key(argv[0], 0, &key)) != EX_OK)
		return rc;
	print_id(key);
	/* The usual route first: NSS moves the key by importing it. */
	PR_SetError(0, 0);
	rc = hmac(key, data, n, mac);
	printf("direct=%s\n", rc == EX_OK ? "ok" : "refused");
	if (PK11_ExtractKeyValue(key) != SECSuccess) {
		PK11_FreeSymKey(key);
		return fail(EX_FAIL, "cannot read the key value");
	}
	soft = import_by_derivation(PK11_GetKeyData(key));
	PK11_FreeSymKey(key);
	if (soft == NULL)
		return fail(EX_FAIL, "import by derivation failed");
	rc = hmac(soft, data, n, mac);
	if (rc == EX_OK)
		print_hex("hmac", mac, sizeof(mac));
	PK11_FreeSymKey(soft);
	return rc;
}

static int cmd_wait_token(int argc, char **argv)
{
	struct timespec tick = { 0, 100 * 1000 * 1000 };
	PK11SlotInfo *slot = NULL;
	PK11SymKey *key;
	long tries;

	if (argc != 2)
		return EX_USAGE;
	for (tries = 0; tries <= atol(argv[1]) * 10; tries++) {
		slot = PK11_FindSlotByName(argv[0]);
		if (slot != NULL)
			break;
		if (tries == 0) {
			printf("missed\n");
			fflush(stdout);
		}
		nanosleep(&tick, NULL);
	}
	if (slot == NULL)
		return fail(EX_NO_TOKEN, "PK11_FindSlotByName");
	printf("tries-before=%ld\n", tries);
	key = generate(slot, 0);
	PK11_FreeSlot(slot);
	if (key == NULL)
		return fail(EX_NO_KEY, "PK11_KeyGen");
	if (print_id(key) != EX_OK || PK11_ExtractKeyValue(key) != SECSuccess) {
		PK11_FreeSymKey(key);
		return fail(EX_FAIL, "PK11_ExtractKeyValue");
	}
	print_hex("key", PK11_GetKeyData(key)->data, PK11_GetKeyData(key)->len);
	PK11_FreeSymKey(key);
	return EX_OK;
}

static int cmd_tokens(int argc, char **argv)
{
	SECMODModule *mod;

	if (argc != 1)
		return EX_USAGE;
	mod = SECMOD_FindModule(argv[0]);
	if (mod == NULL)
		return fail(EX_NO_TOKEN, "no such module");
	for (int i = 0; i < mod->slotCount; i++) {
		CK_TOKEN_INFO info;

		if (PK11_GetTokenInfo(mod->slots[i], &info) != SECSuccess)
			continue;
		int len = sizeof(info.model);

		while (len > 0 && info.model[len - 1] == ' ')
			len--;
		printf("token=%s model=%.*s\n", PK11_GetTokenName(mod->slots[i]),
		       len, (const char *)info.model);
	}
	SECMOD_DestroyModule(mod);
	return EX_OK;
}

/* Several threads at once, each: a key for use now from the token, then
 * the same key found by its ID, compared byte for byte. */
struct worker {
	pthread_t thread;
	const char *uri;
	int iterations;
	int failures;
};

static int same_key(PK11SymKey *a, PK11SymKey *b)
{
	const SECItem *x, *y;

	if (PK11_ExtractKeyValue(a) != SECSuccess ||
	    PK11_ExtractKeyValue(b) != SECSuccess)
		return 0;
	x = PK11_GetKeyData(a);
	y = PK11_GetKeyData(b);
	return x->len == y->len && memcmp(x->data, y->data, x->len) == 0;
}

static int one_round(const char *uri)
{
	SECItem id = { siBuffer, NULL, 0 };
	PK11SymKey *key = NULL, *found = NULL;
	PK11SlotInfo *slot;
	int ok = 0;

	if (get_key(uri, 0, &key) != EX_OK)
		return 0;
	slot = PK11_GetSlotFromKey(key);
	if (PK11_ReadRawAttribute(PK11_TypeSymKey, key, CKA_ID, &id) == SECSuccess)
		found = PK11_FindFixedKey(slot, CKM_GENERIC_SECRET_KEY_GEN, &id,
					  NULL);
	if (found != NULL)
		ok = same_key(key, found);
	if (found != NULL)
		PK11_FreeSymKey(found);
	SECITEM_FreeItem(&id, PR_FALSE);
	PK11_FreeSlot(slot);
	PK11_FreeSymKey(key);
	return ok;
}

static void *work(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < w->iterations; i++)
		w->failures += !one_round(w->uri);
	return NULL;
}

static int cmd_threads(int argc, char **argv)
{
	struct worker *w;
	int n, iterations, failures = 0;

	if (argc != 3 || (n = atoi(argv[1])) < 1 || n > 256 ||
	    (iterations = atoi(argv[2])) < 1)
		return EX_USAGE;
	w = calloc((size_t)n, sizeof(*w));
	if (w == NULL)
		return EX_FAIL;
	for (int i = 0; i < n; i++) {
		w[i].uri = argv[0];
		w[i].iterations = iterations;
		if (pthread_create(&w[i].thread, NULL, work, &w[i]) != 0)
			return EX_FAIL;
	}
	for (int i = 0; i < n; i++) {
		pthread_join(w[i].thread, NULL);
		failures += w[i].failures;
	}
	free(w);
	printf("rounds=%d failures=%d\n", n * iterations, failures);
	return failures == 0 ? EX_OK : EX_FAIL;
}

/* The first key of cmd_twice: found, or by C_GenerateKey with CKA_ID. */
static int first_key(const char *uri, const char *how, PK11SymKey **key)
{
	if (how == NULL)
		return get_key(uri, 0, key);
	if (strcmp(how, "generate-token") == 0)
		return generate_by_id(uri, 1, key);
	if (strcmp(how, "generate-session") == 0)
		return generate_by_id(uri, 0, key);
	return EX_USAGE;
}

static int cmd_twice(int argc, char **argv)
{
	PK11SymKey *key, *kept = NULL;
	/* A session object lives as long as its PK11SymKey. */
	int keep = argc == 2 && strcmp(argv[1], "generate-session") == 0;

	if (argc != 1 && argc != 2)
		return EX_USAGE;
	for (int i = 1; i <= 2; i++) {
		int rc = i == 1 ? first_key(argv[0], argc == 2 ? argv[1] : NULL, &key)
				: get_key(argv[0], 0, &key);

		if (rc == EX_NO_KEY) {
			printf("find%d=none\n", i);
			continue;
		}
		if (rc != EX_OK)
			return rc;
		rc = print_value(key);
		if (i == 1 && keep)
			kept = key;
		else
			PK11_FreeSymKey(key);
		if (rc != EX_OK)
			return rc;
		printf("find%d=found\n", i);
	}
	if (kept != NULL)
		PK11_FreeSymKey(kept);
	return EX_OK;
}

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
} commands[] = {
	{ "tokens", cmd_tokens },   { "key", cmd_key },
	{ "hmac", cmd_hmac },       { "prfplus", cmd_prfplus },
	{ "fips-hmac", cmd_fips_hmac }, { "threads", cmd_threads },
	{ "twice", cmd_twice }, { "wait-token", cmd_wait_token },
};

static int run(const char *name, int argc, char **argv)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(commands[i].name, name) == 0)
			return commands[i].run(argc, argv);
	return EX_USAGE;
}

int main(int argc, char **argv)
{
	char db[4096];
	int rc;

	if (argc < 3) {
		fprintf(stderr, "usage: nss_client DBDIR COMMAND ARGS...\n");
		return EX_USAGE;
	}
	snprintf(db, sizeof(db), "sql:%s", argv[1]);
	if (NSS_Initialize(db, "", "", "secmod.db", NSS_INIT_READONLY) !=
	    SECSuccess)
		return fail(EX_FAIL, "NSS_Initialize");
	rc = run(argv[2], argc - 3, argv + 3);
	if (rc == EX_USAGE)
		fprintf(stderr, "nss_client: bad usage of '%s'\n", argv[2]);
	fflush(stdout);
	if (NSS_Shutdown() != SECSuccess)
		rc = fail(rc ? rc : EX_FAIL, "NSS_Shutdown (a key or slot leaked)");
	return rc;
}
