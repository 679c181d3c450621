/* api_test.c - the kmstore PKCS#11 module against the PKCS#11 rules,
 * called directly (dlopen + C_GetFunctionList), without NSS:
 *
 *   pkcs11_api_test MODULE WORKDIR              the rule tests
 *   pkcs11_api_test MODULE WORKDIR threads N I  N threads x I rounds
 *   pkcs11_api_test MODULE WORKDIR qkd CONF     QKD keys handed out once
 *
 * WORKDIR receives a configuration with two static profiles. Output: one
 * "ok N - ..." or "not ok N - ..." line per assertion, then
 * "N passed, M failed"; the exit status is 1 if anything failed. */
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <p11-kit/pkcs11.h>

#define CKO_PROFILE_ 0x00000009UL
#define CKO_NSS_TRUST_ 0xCE534353UL

static CK_FUNCTION_LIST *f;
static int n_checks, n_failed;
static char conf[4096], conf_open[4096], alpha_key[32];

static void check(int ok, const char *fmt, ...)
{
	va_list ap;

	n_checks++;
	n_failed += !ok;
	printf("%s %d - ", ok ? "ok" : "not ok", n_checks);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

static void check_rv(CK_RV got, CK_RV want, const char *what)
{
	if (got == want)
		check(1, "%s", what);
	else
		check(0, "%s (rv 0x%lx, want 0x%lx)", what, got, want);
}

static void write_file(const char *path, const void *data, size_t n, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	if (fd < 0 || write(fd, data, n) != (ssize_t)n || fchmod(fd, mode) != 0) {
		perror(path);
		exit(2);
	}
	close(fd);
}

/* alpha: 32 known bytes; beta: 48 bytes; same config world-readable. */
static void write_configs(const char *dir)
{
	char path[4096], text[8192], beta[48];

	for (int i = 0; i < 32; i++)
		alpha_key[i] = (char)i;
	memset(beta, 0xb5, sizeof(beta));
	snprintf(path, sizeof(path), "%s/alpha.key", dir);
	write_file(path, alpha_key, sizeof(alpha_key), 0600);
	snprintf(path, sizeof(path), "%s/beta.key", dir);
	write_file(path, beta, sizeof(beta), 0600);
	snprintf(text, sizeof(text),
		 "[alpha]\ntype = static\nkey-id = ALPHA_1\nkey = file:%s/alpha.key\n"
		 "[beta]\ntype = static\nkey-id = BETA_1\nkey = file:%s/beta.key\n",
		 dir, dir);
	snprintf(conf, sizeof(conf), "%s/api.conf", dir);
	write_file(conf, text, strlen(text), 0600);
	snprintf(conf_open, sizeof(conf_open), "%s/open.conf", dir);
	write_file(conf_open, text, strlen(text), 0644);
}

static CK_RV init_with(const char *params)
{
	CK_C_INITIALIZE_ARGS args = { 0 };

	args.flags = CKF_OS_LOCKING_OK;
	args.pReserved = (void *)params;
	return f->C_Initialize(&args);
}

static CK_ULONG slot_count(void)
{
	CK_ULONG n = 99;

	if (f->C_GetSlotList(CK_TRUE, NULL, &n) != CKR_OK)
		return 99;
	return n;
}

static CK_SESSION_HANDLE open_session(CK_SLOT_ID slot, int rw)
{
	CK_SESSION_HANDLE h = 0;
	CK_FLAGS flags = CKF_SERIAL_SESSION | (rw ? CKF_RW_SESSION : 0);

	if (f->C_OpenSession(slot, flags, NULL, NULL, &h) != CKR_OK)
		return 0;
	return h;
}

/* Handles found by a template, at most max. */
static CK_RV find(CK_SESSION_HANDLE h, CK_ATTRIBUTE *t, CK_ULONG n,
		  CK_OBJECT_HANDLE *out, CK_ULONG max, CK_ULONG *count)
{
	CK_RV rv = f->C_FindObjectsInit(h, t, n);

	*count = 0;
	if (rv != CKR_OK)
		return rv;
	rv = f->C_FindObjects(h, out, max, count);
	f->C_FindObjectsFinal(h);
	return rv;
}

static void test_function_table(void)
{
	void (**p)(void) = (void (**)(void))&f->C_Initialize;
	size_t n = (sizeof(*f) - offsetof(CK_FUNCTION_LIST, C_Initialize)) /
		   sizeof(*p);
	int all = 1;

	for (size_t i = 0; i < n; i++)
		all &= p[i] != NULL;
	check(all, "all %zu function table entries are set", n);
	check(f->version.major == 2 && f->version.minor == 40,
	      "function table version 2.40");
}

static void test_initialize(void)
{
	CK_C_INITIALIZE_ARGS partial = { 0 };
	CK_INFO info;

	check_rv(f->C_GetInfo(&info), CKR_CRYPTOKI_NOT_INITIALIZED,
		 "C_GetInfo before C_Initialize");
	partial.LockMutex = (CK_LOCKMUTEX)1;
	check_rv(f->C_Initialize(&partial), CKR_ARGUMENTS_BAD,
		 "C_Initialize with some mutex functions only");
	setenv("KMSTORE_CONF", conf, 1);
	check_rv(f->C_Initialize(NULL), CKR_OK, "C_Initialize(NULL) reads KMSTORE_CONF");
	check(slot_count() == 2, "two profiles, two slots");
	check_rv(f->C_Initialize(NULL), CKR_CRYPTOKI_ALREADY_INITIALIZED,
		 "second C_Initialize");
	check_rv(f->C_GetInfo(&info), CKR_OK, "C_GetInfo");
	check(info.cryptokiVersion.major == 2 && info.cryptokiVersion.minor == 40 &&
	      memcmp(info.manufacturerID, "kmstore ", 8) == 0,
	      "C_GetInfo: PKCS#11 2.40, manufacturer kmstore");
	check_rv(f->C_Finalize((void *)1), CKR_ARGUMENTS_BAD,
		 "C_Finalize with a non-NULL argument");
	check_rv(f->C_Finalize(NULL), CKR_OK, "C_Finalize");
	check_rv(f->C_Finalize(NULL), CKR_CRYPTOKI_NOT_INITIALIZED,
		 "C_Finalize twice");
	unsetenv("KMSTORE_CONF");
}

static void try_params(const char *params, CK_ULONG want, const char *what)
{
	CK_RV rv = init_with(params);

	check(rv == CKR_OK && slot_count() == want, "%s: C_Initialize succeeds "
	      "with %lu token(s)", what, want);
	f->C_Finalize(NULL);
}

static void test_params(void)
{
	char p[8192];

	snprintf(p, sizeof(p), "config=%s log=none", conf);
	try_params(p, 2, "config= parameter");
	snprintf(p, sizeof(p), "  %s  ", conf);
	try_params(p, 2, "a bare path");
	snprintf(p, sizeof(p), "config=\"%s\" log-level=info log=none max-keys=9",
		 conf);
	try_params(p, 2, "quoted value, every parameter");
	try_params("config=/nonexistent/kmstore.conf log=none", 0,
		   "missing configuration");
	snprintf(p, sizeof(p), "config=%s log=none", conf_open);
	try_params(p, 0, "configuration readable by others (refused)");
	snprintf(p, sizeof(p), "conifg=%s log=none", conf);
	try_params(p, 0, "unknown parameter");
	snprintf(p, sizeof(p), "config=%s max-keys=0 log=none", conf);
	try_params(p, 0, "max-keys out of range");
	snprintf(p, sizeof(p), "config=%s empty-slots=1025 log=none", conf);
	try_params(p, 0, "empty-slots out of range");
	snprintf(p, sizeof(p), "config=%s empty-slots=3 log=none", conf);
	if (init_with(p) == CKR_OK) {
		CK_ULONG n = 0;

		f->C_GetSlotList(CK_FALSE, NULL, &n);
		check(n == 2 + 3, "empty-slots=3: two tokens, three empty slots (%lu)", n);
		f->C_Finalize(NULL);
	} else {
		check(0, "empty-slots=3: C_Initialize succeeds");
	}
	try_params("config=\"/x log=none", 0, "unbalanced quote");
}

/* Application-supplied mutexes (no CKF_OS_LOCKING_OK): PKCS#11 says the
 * module must use them. */
static int mutex_created, mutex_destroyed, locks, unlocks;

static CK_RV app_create(void **m) { static int dummy; *m = &dummy; mutex_created++; return CKR_OK; }
static CK_RV app_destroy(void *m) { (void)m; mutex_destroyed++; return CKR_OK; }
static CK_RV app_lock(void *m) { (void)m; locks++; return CKR_OK; }
static CK_RV app_unlock(void *m) { (void)m; unlocks++; return CKR_OK; }

static void test_app_locks(void)
{
	CK_C_INITIALIZE_ARGS args = { app_create, app_destroy, app_lock,
				      app_unlock, 0, NULL };
	char p[8192];
	CK_ULONG n;

	snprintf(p, sizeof(p), "config=%s log=none", conf);
	args.pReserved = p;
	check_rv(f->C_Initialize(&args), CKR_OK, "C_Initialize with app mutexes");
	n = slot_count();
	check(n == 2 && locks > 0 && locks == unlocks,
	      "the app's mutex is used (%d locks, %d unlocks)", locks, unlocks);
	f->C_Finalize(NULL);
	check(mutex_created == 1 && mutex_destroyed == 1,
	      "the app's mutex is created once and destroyed at C_Finalize");
}

static void test_slots(void)
{
	CK_SLOT_ID slots[2];
	CK_ULONG n = 1;
	CK_TOKEN_INFO ti;
	CK_SLOT_INFO si;
	CK_MECHANISM_TYPE mech[4];
	CK_MECHANISM_INFO mi;

	check_rv(f->C_GetSlotList(CK_TRUE, slots, &n), CKR_BUFFER_TOO_SMALL,
		 "C_GetSlotList into a short buffer");
	check(n == 2, "C_GetSlotList says how many are needed");
	check_rv(f->C_GetSlotList(CK_TRUE, slots, &n), CKR_OK, "C_GetSlotList");
	check_rv(f->C_GetSlotInfo(slots[0], &si), CKR_OK, "C_GetSlotInfo");
	check(si.flags == CKF_TOKEN_PRESENT, "slot: token present, not removable");
	check_rv(f->C_GetTokenInfo(slots[0], &ti), CKR_OK, "C_GetTokenInfo");
	check(memcmp(ti.label, "alpha ", 6) == 0 && ti.label[31] == ' ',
	      "token label = profile name, space-padded");
	check(memcmp(ti.manufacturerID, "kmstore ", 8) == 0 &&
	      memcmp(ti.model, "static ", 7) == 0,
	      "token manufacturer kmstore, model = profile type");
	check(ti.flags == CKF_TOKEN_INITIALIZED, "token flags: initialized, no login");
	check_rv(f->C_GetTokenInfo(99, &ti), CKR_SLOT_ID_INVALID,
		 "C_GetTokenInfo of a slot that does not exist");
	n = 0;
	check_rv(f->C_GetMechanismList(slots[0], NULL, &n), CKR_OK,
		 "C_GetMechanismList size query");
	check_rv(f->C_GetMechanismList(slots[0], mech, &n), CKR_OK,
		 "C_GetMechanismList");
	check(n == 3 && mech[0] == CKM_GENERIC_SECRET_KEY_GEN &&
	      mech[1] == (CKM_VENDOR_DEFINED | 0x4b4d5301UL) &&
	      mech[2] == (CKM_VENDOR_DEFINED | 0x4b4d5302UL),
	      "a static token's mechanisms: CKM_GENERIC_SECRET_KEY_GEN, "
	      "CKM_KMSTORE_KEY_BY_ID and CKM_KMSTORE_LOCAL_KEYS");
	check_rv(f->C_GetMechanismInfo(slots[0], CKM_VENDOR_DEFINED | 0x4b4d5302UL, &mi),
		 CKR_OK, "C_GetMechanismInfo of CKM_KMSTORE_LOCAL_KEYS");
	check(mi.flags == 0 && mi.ulMaxKeySize == 0,
	      "CKM_KMSTORE_LOCAL_KEYS: a marker, no operation");
	check_rv(f->C_GetMechanismInfo(slots[0], CKM_VENDOR_DEFINED | 0x4b4d5301UL, &mi),
		 CKR_OK, "C_GetMechanismInfo of CKM_KMSTORE_KEY_BY_ID");
	check(mi.flags == CKF_GENERATE, "CKM_KMSTORE_KEY_BY_ID: generate");
	check_rv(f->C_GetMechanismInfo(slots[0], CKM_GENERIC_SECRET_KEY_GEN, &mi),
		 CKR_OK, "C_GetMechanismInfo");
	check(mi.flags == CKF_GENERATE && mi.ulMinKeySize == 256 &&
	      mi.ulMaxKeySize == 256, "mechanism: generate, 256 bits");
	check_rv(f->C_GetMechanismInfo(slots[0], CKM_SHA256_HMAC, &mi),
		 CKR_MECHANISM_INVALID, "no HMAC mechanism");
	check_rv(f->C_OpenSession(slots[0], CKF_RW_SESSION, NULL, NULL, &n),
		 CKR_SESSION_PARALLEL_NOT_SUPPORTED,
		 "C_OpenSession without CKF_SERIAL_SESSION");
}

/* Slots beyond the profiles, empty until a profile is added (a token
 * coming is provider/pkcs11/tests' and tests/daemon's, through NSS). */
static void test_empty_slots(void)
{
	CK_SLOT_ID all[64];
	CK_ULONG n = 64, h;
	CK_TOKEN_INFO ti;
	CK_SLOT_INFO si;

	check_rv(f->C_GetSlotList(CK_FALSE, all, &n), CKR_OK,
		 "C_GetSlotList of every slot");
	check(n == 2 + 16, "two tokens and 16 empty slots (%lu slots)", n);
	check_rv(f->C_GetSlotInfo(all[2], &si), CKR_OK,
		 "C_GetSlotInfo of an empty slot");
	check(si.flags == CKF_REMOVABLE_DEVICE,
	      "... removable, no token present (NSS asks it again)");
	check(memcmp(si.slotDescription, "kmstore slot for a new profile ", 31) == 0,
	      "... described as waiting for a new profile");
	check_rv(f->C_GetTokenInfo(all[2], &ti), CKR_TOKEN_NOT_PRESENT,
		 "C_GetTokenInfo of an empty slot");
	check_rv(f->C_OpenSession(all[2], CKF_SERIAL_SESSION, NULL, NULL, &h),
		 CKR_TOKEN_NOT_PRESENT, "C_OpenSession on an empty slot");
	check_rv(f->C_GetSlotInfo(all[17] + 1, &si), CKR_SLOT_ID_INVALID,
		 "C_GetSlotInfo past the last slot");
}

static void test_find_classes(CK_SESSION_HANDLE h)
{
	CK_OBJECT_CLASS classes[] = { CKO_PROFILE_, CKO_NSS_TRUST_, CKO_CERTIFICATE,
				      CKO_PRIVATE_KEY };
	CK_BBOOL yes = CK_TRUE;
	CK_OBJECT_HANDLE o[4];
	CK_ULONG n;

	for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++) {
		CK_ATTRIBUTE t[] = { { CKA_TOKEN, &yes, sizeof(yes) },
				     { CKA_CLASS, &classes[i], sizeof(classes[i]) } };

		check(find(h, t, 2, o, 4, &n) == CKR_OK && n == 0,
		      "search for class 0x%lx finds nothing", classes[i]);
	}
	check(find(h, NULL, 0, o, 4, &n) == CKR_OK && n == 1,
	      "search without template lists the static key");
}

static void test_find_id(CK_SESSION_HANDLE h)
{
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_BBOOL yes = CK_TRUE;
	CK_ATTRIBUTE t[] = { { CKA_CLASS, &cls, sizeof(cls) },
			     { CKA_TOKEN, &yes, sizeof(yes) },
			     { CKA_ID, "ALPHA_1", 7 } };
	CK_OBJECT_HANDLE o[4];
	CK_ULONG n;

	check(find(h, t, 3, o, 4, &n) == CKR_OK && n == 1,
	      "search by CKA_ID (PK11_FindFixedKey's template) finds the key");
	t[2].pValue = "NOPE";
	t[2].ulValueLen = 4;
	check(find(h, t, 3, o, 4, &n) == CKR_OK && n == 0,
	      "an unknown key ID: CKR_OK and no object");
	t[2].pValue = "A\0B";
	t[2].ulValueLen = 3;
	check(find(h, t, 3, o, 4, &n) == CKR_OK && n == 0,
	      "a key ID with a NUL byte: no object");
	t[2].pValue = "ALPHA\n1";
	t[2].ulValueLen = 7;
	check(find(h, t, 3, o, 4, &n) == CKR_OK && n == 0,
	      "a key ID with a control character: no object");
	check_rv(f->C_FindObjects(h, o, 4, &n), CKR_OPERATION_NOT_INITIALIZED,
		 "C_FindObjects without C_FindObjectsInit");
	f->C_FindObjectsInit(h, NULL, 0);
	check_rv(f->C_FindObjectsInit(h, NULL, 0), CKR_OPERATION_ACTIVE,
		 "C_FindObjectsInit twice");
	f->C_FindObjectsFinal(h);
}

static CK_OBJECT_HANDLE find_alpha(CK_SESSION_HANDLE h)
{
	CK_ATTRIBUTE t[] = { { CKA_ID, "ALPHA_1", 7 } };
	CK_OBJECT_HANDLE o = 0;
	CK_ULONG n;

	find(h, t, 1, &o, 1, &n);
	return n == 1 ? o : 0;
}

static void test_attribute_rules(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o)
{
	unsigned char value[32], small[4], id[16];
	CK_ATTRIBUTE t[] = { { CKA_VALUE, NULL, 0 }, { 0x80001234UL, id, 16 },
			     { CKA_ID, id, sizeof(id) } };

	check_rv(f->C_GetAttributeValue(h, o, t, 1), CKR_OK, "size query (pValue NULL)");
	check(t[0].ulValueLen == 32, "size query gives CKA_VALUE's length");
	t[0].pValue = small;
	t[0].ulValueLen = sizeof(small);
	check_rv(f->C_GetAttributeValue(h, o, t, 3), CKR_BUFFER_TOO_SMALL,
		 "short buffer: CKR_BUFFER_TOO_SMALL");
	check(t[0].ulValueLen == CK_UNAVAILABLE_INFORMATION &&
	      t[1].ulValueLen == CK_UNAVAILABLE_INFORMATION,
	      "short buffer and unknown type: CK_UNAVAILABLE_INFORMATION");
	check(t[2].ulValueLen == 7 && memcmp(id, "ALPHA_1", 7) == 0,
	      "the other attributes are still filled");
	t[0].pValue = value;
	t[0].ulValueLen = sizeof(value);
	check_rv(f->C_GetAttributeValue(h, o, t, 2), CKR_ATTRIBUTE_TYPE_INVALID,
		 "unknown attribute: CKR_ATTRIBUTE_TYPE_INVALID");
	check(t[0].ulValueLen == 32 && memcmp(value, alpha_key, 32) == 0,
	      "CKA_VALUE is the key");
	check_rv(f->C_SetAttributeValue(h, o, t, 1), CKR_ATTRIBUTE_READ_ONLY,
		 "C_SetAttributeValue of CKA_VALUE: read-only");
	check_rv(f->C_GetAttributeValue(h, 12345, t, 1), CKR_OBJECT_HANDLE_INVALID,
		 "an object that does not exist");
}

struct expect {
	CK_ATTRIBUTE_TYPE type;
	CK_ULONG value; /* CK_BBOOL or CK_ULONG */
	const char *name;
};

static void test_key_attributes(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o)
{
	static const struct expect want[] = {
		{ CKA_CLASS, CKO_SECRET_KEY, "CKA_CLASS CKO_SECRET_KEY" },
		{ CKA_KEY_TYPE, CKK_GENERIC_SECRET, "CKA_KEY_TYPE CKK_GENERIC_SECRET" },
		{ CKA_VALUE_LEN, 32, "CKA_VALUE_LEN 32" },
		{ CKA_TOKEN, 1, "CKA_TOKEN TRUE (PK11_FindFixedKey wants it)" },
		{ CKA_SENSITIVE, 0, "CKA_SENSITIVE FALSE" },
		{ CKA_EXTRACTABLE, 1, "CKA_EXTRACTABLE TRUE" },
		{ CKA_PRIVATE, 0, "CKA_PRIVATE FALSE" },
		{ CKA_MODIFIABLE, 1, "CKA_MODIFIABLE TRUE (the label)" },
		{ CKA_DERIVE, 1, "CKA_DERIVE TRUE" },
		{ CKA_SIGN, 1, "CKA_SIGN TRUE" },
		{ CKA_ENCRYPT, 0, "CKA_ENCRYPT FALSE" },
	};

	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		CK_ULONG ul = 0;
		CK_BBOOL b = 9;
		int is_ulong = want[i].type == CKA_CLASS ||
			       want[i].type == CKA_KEY_TYPE ||
			       want[i].type == CKA_VALUE_LEN;
		CK_ATTRIBUTE a = { want[i].type, is_ulong ? (void *)&ul : (void *)&b,
				   is_ulong ? sizeof(ul) : sizeof(b) };

		f->C_GetAttributeValue(h, o, &a, 1);
		check((is_ulong ? ul : b) == want[i].value, "%s", want[i].name);
	}
}

static CK_RV generate(CK_SESSION_HANDLE h, CK_ATTRIBUTE *t, CK_ULONG n,
		      CK_OBJECT_HANDLE *o)
{
	CK_MECHANISM m = { CKM_GENERIC_SECRET_KEY_GEN, NULL, 0 };

	return f->C_GenerateKey(h, &m, t, n, o);
}

static void test_generate_refusals(CK_SESSION_HANDLE ro, CK_SESSION_HANDLE rw)
{
	CK_MECHANISM aes = { CKM_AES_KEY_GEN, NULL, 0 }, param = { CKM_GENERIC_SECRET_KEY_GEN, "x", 1 };
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_OBJECT_CLASS priv = CKO_PRIVATE_KEY;
	CK_ULONG len16 = 16;
	CK_ATTRIBUTE sens = { CKA_SENSITIVE, &yes, 1 }, noext = { CKA_EXTRACTABLE, &no, 1 },
		     id = { CKA_ID, "X", 1 }, cls = { CKA_CLASS, &priv, sizeof(priv) },
		     len = { CKA_VALUE_LEN, &len16, sizeof(len16) },
		     tok = { CKA_TOKEN, &yes, 1 }, bad = { CKA_TOKEN, &yes, 4 };
	CK_OBJECT_HANDLE o;

	check_rv(f->C_GenerateKey(rw, &aes, NULL, 0, &o), CKR_MECHANISM_INVALID,
		 "C_GenerateKey with CKM_AES_KEY_GEN");
	check_rv(f->C_GenerateKey(rw, &param, NULL, 0, &o), CKR_MECHANISM_PARAM_INVALID,
		 "C_GenerateKey with a mechanism parameter");
	check_rv(generate(rw, &sens, 1, &o), CKR_ATTRIBUTE_VALUE_INVALID,
		 "CKA_SENSITIVE=TRUE refused (NSS must read the key)");
	check_rv(generate(rw, &noext, 1, &o), CKR_ATTRIBUTE_VALUE_INVALID,
		 "CKA_EXTRACTABLE=FALSE refused");
	check_rv(generate(rw, &id, 1, &o), CKR_ATTRIBUTE_VALUE_INVALID,
		 "CKA_ID naming no key of the profile: no key");
	{
		CK_ATTRIBUTE own = { CKA_ID, "ALPHA_1", 7 }, odd = { CKA_ID, "a b", 3 };

		check_rv(generate(rw, &odd, 1, &o), CKR_ATTRIBUTE_VALUE_INVALID,
			 "CKA_ID that is not a key ID (a space)");
		check_rv(generate(rw, &own, 1, &o), CKR_OK,
			 "CKA_ID = the profile's key ID: the key with that ID");
		CK_MECHANISM by_id = { CKM_VENDOR_DEFINED | 0x4b4d5301UL, NULL, 0 };
		check_rv(f->C_GenerateKey(rw, &by_id, NULL, 0, &o), CKR_TEMPLATE_INCOMPLETE,
			 "CKM_KMSTORE_KEY_BY_ID without a CKA_ID: no new key");
		check_rv(f->C_GenerateKey(rw, &by_id, &own, 1, &o), CKR_OK,
			 "CKM_KMSTORE_KEY_BY_ID with the profile's key ID");
		check_rv(f->C_GenerateKey(rw, &by_id, &id, 1, &o), CKR_ATTRIBUTE_VALUE_INVALID,
			 "CKM_KMSTORE_KEY_BY_ID naming no key of the profile");
		CK_MECHANISM marker = { CKM_VENDOR_DEFINED | 0x4b4d5302UL, NULL, 0 };
		check_rv(f->C_GenerateKey(rw, &marker, NULL, 0, &o), CKR_MECHANISM_INVALID,
			 "CKM_KMSTORE_LOCAL_KEYS makes no key");
	}
	check_rv(generate(rw, &cls, 1, &o), CKR_TEMPLATE_INCONSISTENT,
		 "CKA_CLASS CKO_PRIVATE_KEY");
	check_rv(generate(rw, &len, 1, &o), CKR_TEMPLATE_INCONSISTENT,
		 "CKA_VALUE_LEN 16 for a 32-byte key");
	check_rv(generate(rw, &bad, 1, &o), CKR_ATTRIBUTE_VALUE_INVALID,
		 "a CK_BBOOL of the wrong size");
	check_rv(generate(ro, &tok, 1, &o), CKR_SESSION_READ_ONLY,
		 "a token object in a read-only session");
}

static CK_ULONG get_ulong_attr(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o,
			       CK_ATTRIBUTE_TYPE type, CK_RV *rv)
{
	CK_ULONG v = 0;
	CK_BBOOL b = 0;
	int is_bool = type != CKA_VALUE_LEN && type != CKA_KEY_GEN_MECHANISM;
	CK_ATTRIBUTE a = { type, is_bool ? (void *)&b : (void *)&v,
			   is_bool ? sizeof(b) : sizeof(v) };

	*rv = f->C_GetAttributeValue(h, o, &a, 1);
	return is_bool ? b : v;
}

static void test_generate(CK_SLOT_ID slot)
{
	CK_SESSION_HANDLE a = open_session(slot, 1), b = open_session(slot, 0);
	CK_BBOOL yes = CK_TRUE;
	char label[] = "my-ppk";
	CK_ATTRIBUTE t[] = { { CKA_LABEL, label, 6 } }, tok = { CKA_TOKEN, &yes, 1 };
	CK_OBJECT_HANDLE o = 0, o1 = 0, o2 = 0;
	char got[16] = "";
	CK_ATTRIBUTE l = { CKA_LABEL, got, sizeof(got) };
	CK_RV rv;

	test_generate_refusals(b, a);
	check_rv(generate(a, t, 1, &o), CKR_OK, "C_GenerateKey: a key for use now");
	check(get_ulong_attr(b, o, CKA_TOKEN, &rv) == 0 && rv == CKR_OK,
	      "without CKA_TOKEN it is a session object, seen by other sessions");
	check(get_ulong_attr(b, o, CKA_LOCAL, &rv) == 1 &&
	      get_ulong_attr(b, o, CKA_KEY_GEN_MECHANISM, &rv) ==
		      CKM_GENERIC_SECRET_KEY_GEN,
	      "generated: CKA_LOCAL TRUE, CKA_KEY_GEN_MECHANISM");
	f->C_GetAttributeValue(b, o, &l, 1);
	check(l.ulValueLen == 6 && memcmp(got, "my-ppk", 6) == 0,
	      "CKA_LABEL from the template");
	t[0].pValue = "renamed";
	t[0].ulValueLen = 7;
	check_rv(f->C_SetAttributeValue(b, o, t, 1), CKR_OK,
		 "C_SetAttributeValue of CKA_LABEL (symkeyutil -K does it)");
	l.ulValueLen = sizeof(got);
	f->C_GetAttributeValue(b, o, &l, 1);
	check(l.ulValueLen == 7 && memcmp(got, "renamed", 7) == 0, "... the new label");
	{
		CK_BBOOL no = CK_FALSE;
		CK_ATTRIBUTE ro[] = { { CKA_MODIFIABLE, &no, 1 } };
		CK_OBJECT_HANDLE fixed = 0;

		check_rv(generate(a, ro, 1, &fixed), CKR_OK, "C_GenerateKey with CKA_MODIFIABLE FALSE");
		check_rv(f->C_SetAttributeValue(a, fixed, t, 1), CKR_ACTION_PROHIBITED,
			 "... then its label cannot be changed");
		f->C_DestroyObject(a, fixed);
	}
	check_rv(f->C_CloseSession(a), CKR_OK, "C_CloseSession");
	get_ulong_attr(b, o, CKA_TOKEN, &rv);
	check_rv(rv, CKR_OBJECT_HANDLE_INVALID,
		 "its session objects are gone with the session");
	a = open_session(slot, 1);
	generate(a, &tok, 1, &o1);
	generate(a, &tok, 1, &o2);
	check(o1 != 0 && o1 == o2, "a static token holds one token object for its key");
	check_rv(f->C_DestroyObject(a, o1), CKR_OK, "C_DestroyObject of a token object");
	get_ulong_attr(a, o1, CKA_TOKEN, &rv);
	check_rv(rv, CKR_OBJECT_HANDLE_INVALID, "destroyed");
	f->C_CloseSession(a);
	f->C_CloseSession(b);
}

/* max-keys=2: the least recently used key is dropped for a third. */
static void test_bounded(void)
{
	CK_OBJECT_HANDLE o[3];
	CK_SESSION_HANDLE h;
	char p[8192];
	CK_RV rv;

	snprintf(p, sizeof(p), "config=%s max-keys=2 log=none", conf);
	init_with(p);
	h = open_session(1, 0);
	for (int i = 0; i < 3; i++)
		generate(h, NULL, 0, &o[i]);
	get_ulong_attr(h, o[0], CKA_TOKEN, &rv);
	check_rv(rv, CKR_OBJECT_HANDLE_INVALID,
		 "max-keys=2: the oldest of three keys is dropped");
	get_ulong_attr(h, o[2], CKA_TOKEN, &rv);
	check_rv(rv, CKR_OK, "the newest is kept");
	f->C_Finalize(NULL);
	check_rv(f->C_OpenSession(1, CKF_SERIAL_SESSION, NULL, NULL, &h),
		 CKR_CRYPTOKI_NOT_INITIALIZED, "after C_Finalize");
}

/* PKCS#11: a child of fork() calls C_Initialize again. */
static void test_fork(void)
{
	char p[8192];
	pid_t pid;
	int status = 0;

	snprintf(p, sizeof(p), "config=%s log=none", conf);
	init_with(p);
	pid = fork();
	if (pid == 0)
		_exit(init_with(p) == CKR_OK && slot_count() == 2 ? 0 : 1);
	waitpid(pid, &status, 0);
	check(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "a forked child can C_Initialize again");
	f->C_Finalize(NULL);
}

/* A self-signed certificate and its key, so that curl gets as far as the
 * TLS handshake with the silent KME below. */
static void write_tls_pair(const char *crt, const char *key)
{
	EVP_PKEY *pkey = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *name = x ? X509_get_subject_name(x) : NULL;
	FILE *fc = fopen(crt, "w"), *fk = fopen(key, "w");

	if (pkey == NULL || name == NULL || fc == NULL || fk == NULL ||
	    !X509_set_version(x, 2) || !ASN1_INTEGER_set(X509_get_serialNumber(x), 1) ||
	    !X509_gmtime_adj(X509_getm_notBefore(x), -60) ||
	    !X509_gmtime_adj(X509_getm_notAfter(x), 3600) ||
	    !X509_set_pubkey(x, pkey) ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
					(const unsigned char *)"SAE_A", -1, -1, 0) ||
	    !X509_set_issuer_name(x, name) || !X509_sign(x, pkey, EVP_sha256()) ||
	    !PEM_write_X509(fc, x) ||
	    !PEM_write_PrivateKey(fk, pkey, NULL, NULL, 0, NULL, NULL) ||
	    fchmod(fileno(fk), 0600) != 0) {
		fprintf(stderr, "cannot make a TLS key pair in %s\n", crt);
		exit(2);
	}
	fclose(fc);
	fclose(fk);
	X509_free(x);
	EVP_PKEY_free(pkey);
}

/* A KME that never answers: the kernel completes each connection (it
 * stays in the listen queue) and the client's TLS handshake waits. */
static int silent_kme(int *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    listen(fd, 8) != 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
		perror("silent KME");
		exit(2);
	}
	*port = ntohs(a.sin_port);
	return fd;
}

struct in_flight {
	pthread_t thread;
	int generate;   /* C_GenerateKey, else C_FindObjectsInit by ID */
	CK_RV rv;
};

static void *fetch_in_flight(void *arg)
{
	struct in_flight *t = arg;
	CK_SESSION_HANDLE h = open_session(1, 0);
	CK_ATTRIBUTE id = { CKA_ID, "11111111-2222-3333-4444-555555555555", 36 };
	CK_OBJECT_HANDLE o;

	t->rv = t->generate ? generate(h, NULL, 0, &o)
			    : f->C_FindObjectsInit(h, &id, 1);
	return NULL;
}

/* C_Finalize while two threads wait for a KME inside the module (a search
 * by ID, C_GenerateKey): PKCS#11 leaves it undefined; the module waits for
 * the fetches to end, frees nothing under their feet (ASan would report a
 * use after free), and the two calls fail cleanly. */
static void test_finalize_in_flight(const char *dir)
{
	char crt[4096], key[4096], slow[4096], text[16384], p[8192];
	struct in_flight t[2] = { { .generate = 0 }, { .generate = 1 } };
	struct pollfd pfd;
	int port, lfd, queued = 0, conns[2];
	CK_RV rv;

	snprintf(crt, sizeof(crt), "%s/sae.crt", dir);
	snprintf(key, sizeof(key), "%s/sae.key", dir);
	snprintf(slow, sizeof(slow), "%s/slow.conf", dir);
	write_tls_pair(crt, key);
	lfd = silent_kme(&port);
	snprintf(text, sizeof(text),
		 "[slow]\ntype = qkd\nurl = https://127.0.0.1:%d\n"
		 "local-sae-id = SAE_A\npeer-sae-id = SAE_B\ncertificate = %s\n"
		 "private-key = %s\nca = %s\ntimeout = 2\n", port, crt, key, crt);
	write_file(slow, text, strlen(text), 0600);
	snprintf(p, sizeof(p), "config=%s log=none", slow);
	check_rv(init_with(p), CKR_OK, "C_Initialize with a QKD profile whose KME is silent");
	{
		CK_MECHANISM_TYPE mech[4];
		CK_MECHANISM_INFO mi;
		CK_ULONG n = 4;

		check(f->C_GetMechanismList(1, mech, &n) == CKR_OK && n == 2 &&
		      mech[1] == (CKM_VENDOR_DEFINED | 0x4b4d5301UL),
		      "a QKD token is not CKM_KMSTORE_LOCAL_KEYS (asking waits on its KME)");
		check(f->C_GetMechanismInfo(1, CKM_VENDOR_DEFINED | 0x4b4d5302UL, &mi) ==
		      CKR_MECHANISM_INVALID,
		      "... and C_GetMechanismInfo says it has no such mechanism");
	}
	for (int i = 0; i < 2; i++)
		pthread_create(&t[i].thread, NULL, fetch_in_flight, &t[i]);
	/* Both fetches are in curl once both connections are queued. */
	pfd = (struct pollfd){ .fd = lfd, .events = POLLIN };
	while (queued < 2 && poll(&pfd, 1, 10000) == 1) {
		/* held open, never answered */
		if ((conns[queued] = accept(lfd, NULL, NULL)) < 0)
			break;
		queued++;
	}
	check(queued == 2, "both fetches reached the silent KME");
	usleep(100000);
	rv = f->C_Finalize(NULL);
	check_rv(rv, CKR_OK, "C_Finalize while two fetches are in flight");
	for (int i = 0; i < 2; i++) {
		pthread_join(t[i].thread, NULL);
		check_rv(t[i].rv, CKR_CRYPTOKI_NOT_INITIALIZED,
			 t[i].generate ? "the C_GenerateKey in flight fails cleanly"
				       : "the search in flight fails cleanly");
	}
	while (queued > 0)
		close(conns[--queued]);
	close(lfd);
}

static void run_rules(const char *dir)
{
	CK_SESSION_HANDLE h;
	CK_OBJECT_HANDLE o;
	char p[8192];

	test_function_table();
	test_initialize();
	test_params();
	test_app_locks();
	snprintf(p, sizeof(p), "config=%s log=none", conf);
	init_with(p);
	test_slots();
	test_empty_slots();
	h = open_session(1, 0);
	test_find_classes(h);
	test_find_id(h);
	o = find_alpha(h);
	check(o != 0, "the static key has a handle");
	test_attribute_rules(h, o);
	test_key_attributes(h, o);
	f->C_CloseSession(h);
	test_generate(1);
	check_rv(f->C_CloseAllSessions(1), CKR_OK, "C_CloseAllSessions");
	check_rv(f->C_Finalize(NULL), CKR_OK, "C_Finalize with keys held");
	test_bounded();
	test_fork();
	test_finalize_in_flight(dir);
}

/* Threads: each generates a key, finds it by ID in another session,
 * compares the values, destroys it. With a small max-keys, keys may be
 * dropped under a thread's feet (CKR_OBJECT_HANDLE_INVALID): allowed,
 * but a wrong value never is. */
enum round_result { ROUND_OK, ROUND_DROPPED, ROUND_WRONG };

static enum round_result compare(CK_SESSION_HANDLE b, const unsigned char *id,
				 CK_ULONG id_len, const unsigned char *v1,
				 CK_ULONG len)
{
	unsigned char v2[64];
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_BBOOL yes = CK_TRUE;
	CK_ATTRIBUTE t[] = { { CKA_CLASS, &cls, sizeof(cls) },
			     { CKA_TOKEN, &yes, sizeof(yes) },
			     { CKA_ID, (void *)id, id_len } };
	CK_ATTRIBUTE val = { CKA_VALUE, v2, sizeof(v2) };
	CK_OBJECT_HANDLE found = 0;
	CK_ULONG n = 0;
	CK_RV rv;

	/* NSS's PK11_FindFixedKey template. The module makes sure a token
	 * object exists; only a full key set can drop it before
	 * C_FindObjects. */
	rv = find(b, t, 3, &found, 1, &n);
	if (rv == CKR_OK && n == 0)
		return ROUND_DROPPED;
	if (rv != CKR_OK || n != 1)
		return ROUND_WRONG;
	rv = f->C_GetAttributeValue(b, found, &val, 1);
	if (rv == CKR_OBJECT_HANDLE_INVALID)
		return ROUND_DROPPED;
	return rv == CKR_OK && val.ulValueLen == len && memcmp(v1, v2, len) == 0
		       ? ROUND_OK : ROUND_WRONG;
}

static enum round_result one_round(CK_SLOT_ID slot)
{
	CK_SESSION_HANDLE a = open_session(slot, 0), b = open_session(slot, 0);
	unsigned char v1[64], id[64];
	CK_ATTRIBUTE get[] = { { CKA_ID, id, 64 }, { CKA_VALUE, v1, 64 } };
	CK_OBJECT_HANDLE o = 0;
	enum round_result r = ROUND_WRONG;
	CK_RV rv;

	if (generate(a, NULL, 0, &o) == CKR_OK) {
		rv = f->C_GetAttributeValue(a, o, get, 2);
		if (rv == CKR_OBJECT_HANDLE_INVALID)
			r = ROUND_DROPPED;
		else if (rv == CKR_OK)
			r = compare(b, id, get[0].ulValueLen, v1, get[1].ulValueLen);
		f->C_DestroyObject(a, o);
	}
	f->C_CloseSession(a);
	f->C_CloseSession(b);
	return r;
}

struct worker {
	pthread_t thread;
	int rounds, dropped, wrong;
	CK_SLOT_ID slot;
};

static void *work(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < w->rounds; i++) {
		enum round_result r = one_round(w->slot);

		w->dropped += r == ROUND_DROPPED;
		w->wrong += r == ROUND_WRONG;
	}
	return NULL;
}

static void run_threads_with(int n, int rounds, const char *max_keys)
{
	struct worker w[64];
	char p[8192];
	int dropped = 0, wrong = 0;

	snprintf(p, sizeof(p), "config=%s log=none max-keys=%s", conf, max_keys);
	check_rv(init_with(p), CKR_OK, "C_Initialize with OS locking");
	for (int i = 0; i < n; i++) {
		w[i] = (struct worker){ .rounds = rounds, .slot = 1 + i % 2 };
		pthread_create(&w[i].thread, NULL, work, &w[i]);
	}
	for (int i = 0; i < n; i++) {
		pthread_join(w[i].thread, NULL);
		dropped += w[i].dropped;
		wrong += w[i].wrong;
	}
	if (strcmp(max_keys, "64") == 0)
		check(wrong + dropped == 0, "%d threads x %d rounds of generate + "
		      "find by ID: all keys right", n, rounds);
	else
		check(wrong == 0, "the same with max-keys=%s: %d keys dropped "
		      "under a thread's feet, none wrong", max_keys, dropped);
	check_rv(f->C_Finalize(NULL), CKR_OK, "C_Finalize");
}

static void run_threads(int n, int rounds)
{
	run_threads_with(n, rounds, "64");
	run_threads_with(n, rounds, "2");
}

/* QKD: a key is handed out at most once per fetch. CONF has the profiles
 * west (slot 1) and east (slot 2) of tests/lib/kme-env.sh's two-KME lab
 * (kme_env_both_sites), so one process plays both sites. */
struct held_key {
	CK_OBJECT_HANDLE o;
	unsigned char id[64], value[64];
	CK_ULONG id_len, len;
};

static int read_key(CK_SESSION_HANDLE h, struct held_key *k)
{
	CK_ATTRIBUTE t[] = { { CKA_ID, k->id, sizeof(k->id) },
			     { CKA_VALUE, k->value, sizeof(k->value) } };

	if (f->C_GetAttributeValue(h, k->o, t, 2) != CKR_OK)
		return 0;
	k->id_len = t[0].ulValueLen;
	k->len = t[1].ulValueLen;
	return 1;
}

/* How many objects a search hands k's value to: each found object is
 * read, as NSS reads each key it finds once. */
static int handed_out(CK_SESSION_HANDLE h, CK_ATTRIBUTE *t, CK_ULONG n,
		      const struct held_key *k)
{
	CK_OBJECT_HANDLE o[8];
	CK_ULONG count = 0;
	int given = 0;

	if (find(h, t, n, o, 8, &count) != CKR_OK)
		return -1;
	for (CK_ULONG i = 0; i < count; i++) {
		unsigned char v[64];
		CK_ATTRIBUTE a = { CKA_VALUE, v, sizeof(v) };

		given += f->C_GetAttributeValue(h, o[i], &a, 1) == CKR_OK &&
			 a.ulValueLen == k->len && memcmp(v, k->value, k->len) == 0;
	}
	return given;
}

/* NSS's PK11_FindFixedKey template for k's ID. */
static int fixed_key_search(CK_SESSION_HANDLE h, const struct held_key *k)
{
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_BBOOL yes = CK_TRUE;
	CK_ATTRIBUTE t[] = { { CKA_CLASS, &cls, sizeof(cls) },
			     { CKA_TOKEN, &yes, sizeof(yes) },
			     { CKA_ID, (void *)k->id, k->id_len } };

	return handed_out(h, t, 3, k);
}

/* The other searches that could reach k: by ID alone (pkcs11-tool's),
 * session objects only, and a listing without template. */
static void check_other_searches(CK_SESSION_HANDLE h, const struct held_key *k,
				 const char *who)
{
	CK_BBOOL no = CK_FALSE;
	CK_ATTRIBUTE t[] = { { CKA_ID, (void *)k->id, k->id_len },
			     { CKA_TOKEN, &no, sizeof(no) } };
	int by_id = handed_out(h, t, 1, k), session = handed_out(h, t, 2, k);

	check(by_id == 0, "%s: a search by CKA_ID alone gets it no more (%d)", who, by_id);
	check(session == 0, "%s: nor one for session objects (%d)", who, session);
	check(handed_out(h, NULL, 0, k) == 0, "%s: nor a listing", who);
}

/* Its C_GenerateKey caller keeps the key: reading through its handle
 * does not drop it. */
static void check_still_readable(CK_SESSION_HANDLE h, const struct held_key *k,
				 const char *who)
{
	struct held_key again = { .o = k->o };

	check(read_key(h, &again) && read_key(h, &again) && again.len == k->len &&
	      memcmp(again.value, k->value, k->len) == 0,
	      "%s: still readable, twice, through the caller's handle", who);
}

/* A session object C_GenerateKey fetched by ID: that fetch handed the key
 * to its caller, so no search gets it while the object lives. */
static void test_qkd_session_by_id(const struct held_key *west)
{
	CK_SESSION_HANDLE a = open_session(2, 0), b = open_session(2, 0);
	CK_MECHANISM m = { CKM_VENDOR_DEFINED | 0x4b4d5301UL, NULL, 0 };
	CK_ATTRIBUTE t = { CKA_ID, (void *)west->id, west->id_len };
	struct held_key k = { 0 };
	int first, second;

	check_rv(f->C_GenerateKey(a, &m, &t, 1, &k.o), CKR_OK,
		 "east: C_GenerateKey(CKM_KMSTORE_KEY_BY_ID, CKA_ID=K), a session object");
	check(read_key(a, &k) && k.len == west->len &&
	      memcmp(k.value, west->value, k.len) == 0, "... gives west's key K");
	first = fixed_key_search(b, &k);
	second = fixed_key_search(b, &k);
	check(first == 0, "east: while it lives, a search for K (PK11_FindFixedKey) "
	      "in another session gets nothing (%d)", first);
	check(second == 0, "... nor a second search (%d)", second);
	check_other_searches(b, &k, "east");
	check_still_readable(a, &k, "east");
	f->C_CloseSession(a);
	f->C_CloseSession(b);
}

/* A new key (enc_keys) generated in this process: a search for its ID
 * gets it once (as a read-once token object), then no more. */
static void test_qkd_new_key(CK_BBOOL token, struct held_key *k)
{
	const char *who = token ? "west, a new key as a token object" :
				  "west, a new key as a session object";
	CK_SESSION_HANDLE a = open_session(1, 1), b = open_session(1, 0);
	CK_ATTRIBUTE t = { CKA_TOKEN, &token, sizeof(token) };
	int first, second;

	check(generate(a, &t, 1, &k->o) == CKR_OK && read_key(a, k),
	      "%s: C_GenerateKey gives it, with its ID", who);
	first = fixed_key_search(b, k);
	second = fixed_key_search(b, k);
	check(first == 1, "%s: the first search for its ID gets it (%d)", who, first);
	check(second == 0, "%s: a second gets nothing (%d)", who, second);
	check_other_searches(b, k, who);
	check_still_readable(a, k, who);
	f->C_CloseSession(b);
	/* a stays open: its session object is what east asks for by ID. */
}

static void run_qkd(const char *both_conf)
{
	struct held_key west_token = { 0 }, west = { 0 };
	char p[8192];

	snprintf(p, sizeof(p), "config=%s log=none", both_conf);
	check_rv(init_with(p), CKR_OK, "C_Initialize with west's and east's QKD profiles");
	test_qkd_new_key(CK_TRUE, &west_token);
	test_qkd_new_key(CK_FALSE, &west);
	test_qkd_session_by_id(&west);
	check_rv(f->C_Finalize(NULL), CKR_OK, "C_Finalize");
}

int main(int argc, char **argv)
{
	CK_RV (*get_list)(CK_FUNCTION_LIST **);
	void *lib;

	if (argc != 3 && argc != 6 && !(argc == 5 && strcmp(argv[3], "qkd") == 0)) {
		fprintf(stderr, "usage: %s MODULE WORKDIR [threads N ROUNDS | "
			"qkd CONF]\n", argv[0]);
		return 2;
	}
	lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	if (lib == NULL) {
		fprintf(stderr, "%s\n", dlerror());
		return 2;
	}
	*(void **)&get_list = dlsym(lib, "C_GetFunctionList");
	if (get_list == NULL || get_list(&f) != CKR_OK)
		return 2;
	write_configs(argv[2]);
	if (argc == 5)
		run_qkd(argv[4]);
	else if (argc == 6)
		run_threads(atoi(argv[4]) > 64 ? 64 : atoi(argv[4]), atoi(argv[5]));
	else
		run_rules(argv[2]);
	printf("%d passed, %d failed\n", n_checks - n_failed, n_failed);
	/* No dlclose: leak reports need the module's symbols at exit. */
	return n_failed ? 1 : 0;
}
