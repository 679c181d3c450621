/* fuzz_pkcs11_template.c - the PKCS#11 module's handling of what a caller
 * hands it: templates (C_FindObjectsInit, C_GenerateKey), attribute arrays
 * and their buffers (C_GetAttributeValue), mechanisms, object and session
 * handles. The module (kmstore-pkcs11.so, instrumented in the fuzzing
 * build) is loaded as NSS loads it, dlopen + C_GetFunctionList, and
 * initialised on every input with a configuration of static profiles
 * (written once, in a temporary directory), so each input starts afresh.
 *
 * The module is found at $KMSTORE_FUZZ_P11_MODULE, else beside this
 * program in the build tree (../provider/pkcs11/kmstore-pkcs11.so).
 *
 * The input is a program: a slot byte, then operations until the data
 * runs out. Every attribute value gets its own heap buffer of exactly the
 * length the template claims (so ASan sees any read or write past it),
 * sometimes one byte off its alignment, sometimes NULL. */
#include <dlfcn.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The fuzz targets' foreach (tests/CMakeLists.txt) adds no include path:
 * p11-kit's header (PKCS#11 2.40) by its full name where needed. */
#if __has_include(<p11-kit/pkcs11.h>)
#include <p11-kit/pkcs11.h>
#else
#include <p11-kit-1/p11-kit/pkcs11.h>
#endif

#define MAX_ATTRS 12
#define MAX_VALUE 96
#define MAX_HANDLES 16

static CK_FUNCTION_LIST *f;
static char params[PATH_MAX + 64];
static char workdir[] = "/tmp/fuzz-pkcs11.XXXXXX";

/* ---- the input ---- */

struct in {
	const uint8_t *p;
	size_t n;
};

static unsigned byte(struct in *in)
{
	if (in->n == 0)
		return 0;
	in->n--;
	return *in->p++;
}

static CK_ULONG ulong4(struct in *in)
{
	CK_ULONG v = 0;

	for (int i = 0; i < 4; i++)
		v = v << 8 | byte(in);
	return v;
}

/* Attribute types: mostly those the module knows, sometimes any. */
static const CK_ATTRIBUTE_TYPE known_types[] = {
	CKA_CLASS, CKA_KEY_TYPE, CKA_TOKEN, CKA_ID, CKA_LABEL, CKA_VALUE,
	CKA_VALUE_LEN, CKA_SENSITIVE, CKA_EXTRACTABLE, CKA_PRIVATE,
	CKA_ENCRYPT, CKA_DECRYPT, CKA_SIGN, CKA_VERIFY, CKA_WRAP, CKA_UNWRAP,
	CKA_DERIVE, CKA_LOCAL, CKA_MODIFIABLE, CKA_COPYABLE, CKA_DESTROYABLE,
	CKA_KEY_GEN_MECHANISM, CKA_START_DATE, CKA_END_DATE,
	CKA_ALWAYS_SENSITIVE, CKA_NEVER_EXTRACTABLE, CKA_TRUSTED,
	CKA_WRAP_WITH_TRUSTED, CKA_APPLICATION, CKA_OBJECT_ID,
	CKA_VENDOR_DEFINED, CK_UNAVAILABLE_INFORMATION,
};
#define N_KNOWN (sizeof(known_types) / sizeof(known_types[0]))

struct tmpl {
	CK_ATTRIBUTE a[MAX_ATTRS];
	void *alloc[MAX_ATTRS];
	CK_ULONG n;
};

static void tmpl_free(struct tmpl *t)
{
	for (CK_ULONG i = 0; i < t->n; i++)
		free(t->alloc[i]);
	t->n = 0;
}

/* One attribute: a type selector, a length selector, a flags byte (NULL
 * value, misaligned), then the value's bytes. */
static void read_attr(struct in *in, CK_ATTRIBUTE *a, void **alloc, int fill)
{
	unsigned sel = byte(in), lsel = byte(in), flags = byte(in);
	CK_ULONG len;
	unsigned char *buf;

	a->type = sel < 0xf0 ? known_types[sel % N_KNOWN] : ulong4(in);
	switch (lsel >> 6) {
	case 0: /* the natural sizes */
		len = (lsel & 3) == 0 ? sizeof(CK_BBOOL)
		      : (lsel & 3) == 1 ? sizeof(CK_ULONG)
		      : (lsel & 3) == 2 ? 32 : 0;
		break;
	case 3:
		len = lsel & 1 ? 64 : 65; /* around KMS_KEY_ID_MAX */
		break;
	default:
		len = lsel % (MAX_VALUE + 1);
	}
	*alloc = NULL;
	a->ulValueLen = len;
	if (flags & 0x80) { /* NULL pValue: a length query, or a bad caller */
		a->pValue = NULL;
		if (flags & 0x40)
			a->ulValueLen = 0;
		return;
	}
	*alloc = malloc(len + 1);
	buf = (unsigned char *)*alloc + ((flags & 0x20) ? 1 : 0);
	if (fill) {
		/* Printable IDs and labels are likelier to go somewhere. */
		for (CK_ULONG i = 0; i < len; i++) {
			unsigned c = byte(in);

			buf[i] = (flags & 0x10) ? (unsigned char)('!' + c % 94)
						 : (unsigned char)c;
		}
	} else {
		memset(buf, 0xa5, len);
	}
	a->pValue = buf;
}

static void read_tmpl(struct in *in, struct tmpl *t, int fill)
{
	t->n = byte(in) % (MAX_ATTRS + 1);
	for (CK_ULONG i = 0; i < t->n; i++)
		read_attr(in, &t->a[i], &t->alloc[i], fill);
}

/* ---- the run ---- */

struct state {
	CK_SLOT_ID slots[8];
	CK_ULONG n_slots;
	CK_SESSION_HANDLE sessions[4];
	int n_sessions;
	CK_OBJECT_HANDLE handles[MAX_HANDLES];
	int n_handles;
};

static void keep_handle(struct state *st, CK_OBJECT_HANDLE h)
{
	if (st->n_handles < MAX_HANDLES)
		st->handles[st->n_handles++] = h;
	else
		st->handles[h % MAX_HANDLES] = h;
}

static CK_SESSION_HANDLE pick_session(struct in *in, struct state *st)
{
	unsigned s = byte(in);

	if (s == 0xff)
		return (CK_SESSION_HANDLE)ulong4(in); /* any handle */
	if (st->n_sessions == 0)
		return 0;
	return st->sessions[s % st->n_sessions];
}

static CK_OBJECT_HANDLE pick_object(struct in *in, struct state *st)
{
	unsigned s = byte(in);

	if (s == 0xff || st->n_handles == 0)
		return (CK_OBJECT_HANDLE)ulong4(in);
	return st->handles[s % st->n_handles];
}

static void op_open(struct in *in, struct state *st)
{
	unsigned s = byte(in);
	CK_SESSION_HANDLE h;
	CK_FLAGS flags = CKF_SERIAL_SESSION | ((s & 1) ? CKF_RW_SESSION : 0);

	if (st->n_slots == 0 || st->n_sessions == 4)
		return;
	if (f->C_OpenSession(st->slots[(s >> 1) % st->n_slots], flags, NULL,
			     NULL, &h) == CKR_OK)
		st->sessions[st->n_sessions++] = h;
}

static void op_find(struct in *in, struct state *st)
{
	CK_SESSION_HANDLE s = pick_session(in, st);
	CK_OBJECT_HANDLE found[8];
	CK_ULONG max = byte(in) % 9, count = 0;
	struct tmpl t;

	read_tmpl(in, &t, 1);
	if (f->C_FindObjectsInit(s, t.n ? t.a : NULL, t.n) == CKR_OK) {
		if (f->C_FindObjects(s, found, max, &count) == CKR_OK)
			for (CK_ULONG i = 0; i < count && i < max; i++)
				keep_handle(st, found[i]);
		if (byte(in) & 1)
			f->C_FindObjectsFinal(s);
	}
	tmpl_free(&t);
}

static void op_generate(struct in *in, struct state *st)
{
	CK_SESSION_HANDLE s = pick_session(in, st);
	unsigned m = byte(in);
	CK_MECHANISM mech = { CKM_GENERIC_SECRET_KEY_GEN, NULL, 0 };
	unsigned char param[16];
	CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
	struct tmpl t;

	if (m & 1)
		mech.mechanism = m & 2 ? ulong4(in) : CKM_AES_KEY_GEN;
	if (m & 4) {
		mech.pParameter = param;
		mech.ulParameterLen = byte(in) % (sizeof(param) + 1);
		memset(param, 0, sizeof(param));
	} else if (m & 8) {
		mech.ulParameterLen = byte(in); /* NULL parameter, a length */
	}
	read_tmpl(in, &t, 1);
	if (f->C_GenerateKey(s, (m & 0x80) ? NULL : &mech, t.n ? t.a : NULL, t.n,
			     (m & 0x40) ? NULL : &h) == CKR_OK &&
	    !(m & 0x40))
		keep_handle(st, h);
	tmpl_free(&t);
}

static void op_get(struct in *in, struct state *st)
{
	CK_SESSION_HANDLE s = pick_session(in, st);
	CK_OBJECT_HANDLE o = pick_object(in, st);
	struct tmpl t;

	CK_ULONG given[MAX_ATTRS];

	read_tmpl(in, &t, 0);
	for (CK_ULONG i = 0; i < t.n; i++)
		given[i] = t.a[i].ulValueLen;
	f->C_GetAttributeValue(s, o, t.n ? t.a : NULL, t.n);
	/* A value written must fit the buffer it was written to. */
	for (CK_ULONG i = 0; i < t.n; i++)
		if (t.a[i].pValue != NULL &&
		    t.a[i].ulValueLen != CK_UNAVAILABLE_INFORMATION &&
		    t.a[i].ulValueLen > given[i])
			abort();
	tmpl_free(&t);
}

static void op_misc(struct in *in, struct state *st)
{
	CK_SESSION_HANDLE s = pick_session(in, st);
	CK_OBJECT_HANDLE o = pick_object(in, st);
	CK_ULONG size;
	struct tmpl t;

	switch (byte(in) % 6) {
	case 0:
		f->C_DestroyObject(s, o);
		break;
	case 1:
		f->C_GetObjectSize(s, o, &size);
		break;
	case 2:
		read_tmpl(in, &t, 1);
		f->C_SetAttributeValue(s, o, t.n ? t.a : NULL, t.n);
		tmpl_free(&t);
		break;
	case 3:
		f->C_FindObjectsFinal(s);
		break;
	case 4:
		f->C_CloseSession(s);
		break;
	default:
		read_tmpl(in, &t, 1);
		f->C_CreateObject(s, t.n ? t.a : NULL, t.n, &o);
		tmpl_free(&t);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct in in = { data, size };
	CK_C_INITIALIZE_ARGS args = { 0 };
	struct state st = { .n_slots = 8 };
	int ops = 0;

	args.flags = CKF_OS_LOCKING_OK;
	args.pReserved = params;
	if (f->C_Initialize(&args) != CKR_OK)
		abort();
	if (f->C_GetSlotList(CK_TRUE, st.slots, &st.n_slots) != CKR_OK)
		st.n_slots = 0;
	op_open(&in, &st);
	while (in.n > 0 && ops++ < 64) {
		switch (byte(&in) % 6) {
		case 0:
			op_open(&in, &st);
			break;
		case 1:
			op_find(&in, &st);
			break;
		case 2:
			op_generate(&in, &st);
			break;
		case 3:
		case 4:
			op_get(&in, &st);
			break;
		default:
			op_misc(&in, &st);
		}
	}
	if (f->C_Finalize(NULL) != CKR_OK)
		abort();
	return 0;
}

/* UBSan's reports stop the run (this build does not pass
 * -fno-sanitize-recover): a misaligned read is a finding too. */
const char *__ubsan_default_options(void);
const char *__ubsan_default_options(void)
{
	return "halt_on_error=1:print_stacktrace=1";
}

/* ---- set-up, once ---- */

static void remove_workdir(void)
{
	char path[PATH_MAX + 32];

	snprintf(path, sizeof(path), "%s/alpha.key", workdir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/kmstore.conf", workdir);
	unlink(path);
	rmdir(workdir);
}

static void write_file(const char *path, const void *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || write(fd, p, n) != (ssize_t)n || close(fd) != 0) {
		perror(path);
		exit(1);
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char *dir = workdir, path[PATH_MAX + 32], text[2048];
	char exe[PATH_MAX], module[PATH_MAX + 64];
	const char *env = getenv("KMSTORE_FUZZ_P11_MODULE");
	unsigned char key[48];
	CK_RV (*get)(CK_FUNCTION_LIST_PTR_PTR);
	ssize_t n;
	void *dl;

	(void)argc;
	(void)argv;
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		exit(1);
	}
	atexit(remove_workdir);
	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = (unsigned char)(i * 7 + 1);
	snprintf(path, sizeof(path), "%s/alpha.key", dir);
	write_file(path, key, 32);
	/* Three static profiles: a key file, an inline key of 48 bytes, and
	 * one whose key ID needs percent-encoding in a URI. */
	snprintf(text, sizeof(text),
		 "[alpha]\ntype = static\nkey-id = ALPHA_1\nkey = file:%s\n\n"
		 "[beta]\ntype = static\nkey-id = BETA_1\nkey = hex:"
		 "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
		 "202122232425262728292a2b2c2d2e2f\n\n"
		 "[gamma]\ntype = static\nkey-id = a/b;c%%d\nkey = base64:"
		 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n", path);
	snprintf(path, sizeof(path), "%s/kmstore.conf", dir);
	write_file(path, text, strlen(text));
	snprintf(params, sizeof(params), "config=%s log=none max-keys=4", path);

	if (env != NULL && *env != '\0') {
		snprintf(module, sizeof(module), "%s", env);
	} else {
		n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
		if (n < 0) {
			perror("/proc/self/exe");
			exit(1);
		}
		exe[n] = '\0';
		snprintf(module, sizeof(module),
			 "%s/../provider/pkcs11/kmstore-pkcs11.so", dirname(exe));
	}
	dl = dlopen(module, RTLD_NOW | RTLD_LOCAL);
	if (dl == NULL) {
		fprintf(stderr, "fuzz_pkcs11_template: %s (set "
			"KMSTORE_FUZZ_P11_MODULE)\n", dlerror());
		exit(1);
	}
	*(void **)&get = dlsym(dl, "C_GetFunctionList");
	if (get == NULL || get(&f) != CKR_OK) {
		fprintf(stderr, "fuzz_pkcs11_template: no C_GetFunctionList\n");
		exit(1);
	}
	return 0;
}
