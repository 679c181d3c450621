/* pkcs11_bench.c - what the PKCS#11 module costs: keys per second for
 * "a key for use now" + "that key by its ID", once through libkmstore
 * directly and once through NSS and the module (C_GenerateKey, CKA_ID,
 * PK11_FindFixedKey, and reading the value as NSS does to use a key).
 *
 *   pkcs11-bench DBDIR CONFIG GEN_PROFILE FIND_PROFILE ROUNDS
 *
 * DBDIR is an NSS database where the module is registered with
 * config=CONFIG (bench/pkcs11/run.sh makes both). For a static profile
 * GEN_PROFILE = FIND_PROFILE; for QKD they are the two ends of a link
 * (enc_keys at one KME, dec_keys at the other). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <kmstore.h>
#include <nss.h>
#include <pk11pub.h>

static double clock_s(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double now(void)
{
	return clock_s(CLOCK_MONOTONIC);
}

_Noreturn static void die(const char *what, const char *why)
{
	fprintf(stderr, "pkcs11-bench: %s: %s\n", what, why);
	exit(1);
}

static int direct_round(kms_profile *gen, kms_profile *find)
{
	kms_key *key, *again;
	kms_error err;
	int same;

	if (kms_profile_get_key(gen, &key, &err) != KMS_OK)
		die("libkmstore: a key for use now", err.message);
	if (kms_profile_get_key_by_id(find, kms_key_id(key), &again, &err) != KMS_OK)
		die("libkmstore: the key by ID", err.message);
	same = kms_key_size(key) == kms_key_size(again) &&
	       memcmp(kms_key_bytes(key), kms_key_bytes(again), kms_key_size(key)) == 0;
	kms_key_free(key);
	kms_key_free(again);
	return same;
}

static PK11SlotInfo *slot_of(const char *token)
{
	char uri[128];
	PK11SlotInfo *slot;

	snprintf(uri, sizeof(uri), "pkcs11:token=%s", token);
	slot = PK11_FindSlotByName(uri);
	if (slot == NULL)
		die(uri, "no such token in the NSS database");
	return slot;
}

/* As an IKE initiator and responder would: generate, read CKA_ID, find by
 * ID, and read both values (NSS does that to move a key into softoken). */
static int nss_round(PK11SlotInfo *gen, PK11SlotInfo *find)
{
	SECItem id = { siBuffer, NULL, 0 };
	PK11SymKey *key, *again;
	int same;

	key = PK11_TokenKeyGenWithFlags(gen, CKM_GENERIC_SECRET_KEY_GEN, NULL, 0,
					NULL, CKF_SIGN | CKF_DERIVE,
					PK11_ATTR_SESSION | PK11_ATTR_INSENSITIVE |
						PK11_ATTR_EXTRACTABLE, NULL);
	if (key == NULL)
		die("NSS", "C_GenerateKey failed");
	if (PK11_ReadRawAttribute(PK11_TypeSymKey, key, CKA_ID, &id) != SECSuccess)
		die("NSS", "no CKA_ID");
	again = PK11_FindFixedKey(find, CKM_GENERIC_SECRET_KEY_GEN, &id, NULL);
	if (again == NULL)
		die("NSS", "PK11_FindFixedKey found nothing");
	if (PK11_ExtractKeyValue(key) != SECSuccess ||
	    PK11_ExtractKeyValue(again) != SECSuccess)
		die("NSS", "cannot read a key value");
	same = SECITEM_ItemsAreEqual(PK11_GetKeyData(key), PK11_GetKeyData(again));
	SECITEM_FreeItem(&id, PR_FALSE);
	PK11_FreeSymKey(again);
	PK11_FreeSymKey(key);
	return same;
}

struct sides {
	kms_profile *gen, *find;     /* libkmstore */
	PK11SlotInfo *gen_slot, *find_slot; /* NSS */
};

static void open_direct(kms_store **store, const char *conf, struct sides *s,
			const char *gen, const char *find)
{
	kms_error err;

	if (kms_store_open(conf, store, &err) != KMS_OK)
		die(conf, err.message);
	if (kms_store_find_profile(*store, gen, &s->gen, &err) != KMS_OK ||
	    kms_store_find_profile(*store, find, &s->find, &err) != KMS_OK)
		die("profile", err.message);
}

static void open_nss(const char *db, struct sides *s, const char *gen,
		     const char *find)
{
	char dir[4096];

	snprintf(dir, sizeof(dir), "sql:%s", db);
	if (NSS_Initialize(dir, "", "", "secmod.db", NSS_INIT_READONLY) != SECSuccess)
		die(db, "NSS_Initialize failed");
	s->gen_slot = slot_of(gen);
	s->find_slot = slot_of(find);
}

/* Seconds for n rounds one way or the other; *cpu gains this process's
 * CPU seconds (the KMEs' are apart: they run in kme-sim). */
static double timed(const struct sides *s, int nss, int n, double *cpu)
{
	double t0 = now(), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);

	for (int i = 0; i < n; i++)
		if (!(nss ? nss_round(s->gen_slot, s->find_slot)
			  : direct_round(s->gen, s->find)))
			die(nss ? "NSS" : "libkmstore", "the two keys differ");
	*cpu += clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
	return now() - t0;
}

/* Both ways in alternating chunks, so that a change in machine load
 * (the KMEs run on the same machine) weighs on both alike. */
int main(int argc, char **argv)
{
	double direct = 0, nss = 0, direct_cpu = 0, nss_cpu = 0, warm = 0;
	struct sides s;
	kms_store *store;
	int rounds, chunk;

	if (argc != 6 || (rounds = atoi(argv[5])) < 1) {
		fprintf(stderr, "usage: pkcs11-bench DBDIR CONFIG GEN_PROFILE "
				"FIND_PROFILE ROUNDS\n");
		return 2;
	}
	open_direct(&store, argv[2], &s, argv[3], argv[4]);
	open_nss(argv[1], &s, argv[3], argv[4]);
	timed(&s, 0, 1, &warm); /* warm up: connections, TLS sessions */
	timed(&s, 1, 1, &warm);
	chunk = rounds < 50 ? rounds : rounds / 50;
	for (int done = 0; done < rounds; done += chunk) {
		direct += timed(&s, 0, chunk, &direct_cpu);
		nss += timed(&s, 1, chunk, &nss_cpu);
	}
	rounds = (rounds + chunk - 1) / chunk * chunk;
	printf("%-10s %6d rounds  libkmstore %9.0f keys/s %6.1f us CPU  "
	       "NSS+module %9.0f keys/s %6.1f us CPU  ratio %.2f\n", argv[3],
	       rounds, rounds / direct, direct_cpu * 1e6 / rounds, rounds / nss,
	       nss_cpu * 1e6 / rounds, direct / nss);
	PK11_FreeSlot(s.gen_slot);
	PK11_FreeSlot(s.find_slot);
	NSS_Shutdown();
	kms_store_free(store);
	return 0;
}
