/* hold_key.c - a process that holds one key, for the secret-hygiene test:
 * its /proc/PID/status (VmLck) and a core dump of it (gcore) are looked at
 * while it waits.
 *
 *   hold_key lib CONF PROFILE [KEY_ID] REVEAL   through libkmstore
 *   hold_key p11 MODULE CONF TOKEN REVEAL       through the PKCS#11 module
 *                                               (C_GenerateKey, CKA_VALUE)
 *   hold_key lib-freed ..., p11-freed ...       the same, but the key (and
 *                                               the store, or the module)
 *                                               freed before the wait
 *
 * The key's bytes are written, in hex, to the file REVEAL (mode 600), so
 * that the test knows what to look for; this program's own copy is wiped
 * at once. Then "held KEY_ID" (or "freed KEY_ID") on stdout, and the
 * process waits for end of input on stdin before it frees the key and
 * exits. The key's bytes are then only where the face keeps them, or, once
 * freed, nowhere. Exit: 0 ok, 1 failure, 2 usage. */
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <p11-kit/pkcs11.h>

#include "kmstore.h"

static int reveal(const char *path, const unsigned char *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	char hex[3];

	if (fd < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		snprintf(hex, sizeof(hex), "%02x", p[i]);
		if (write(fd, hex, 2) != 2) {
			close(fd);
			return -1;
		}
	}
	explicit_bzero(hex, sizeof(hex));
	return close(fd);
}

static int freed_first; /* the *-freed modes */

static void wait_for_eof(const char *what, const char *id)
{
	char buf[64];

	printf("%s %s\n", what, id);
	fflush(stdout);
	while (read(0, buf, sizeof(buf)) > 0)
		;
}

static int hold_lib(int argc, char **argv)
{
	const char *conf = argv[0], *profile = argv[1];
	const char *id = argc == 4 ? argv[2] : NULL, *out = argv[argc - 1];
	kms_store *store;
	kms_profile *p;
	kms_key *key;
	kms_error e;
	kms_rc rc;

	if (kms_store_open(conf, &store, &e) != KMS_OK ||
	    kms_store_find_profile(store, profile, &p, &e) != KMS_OK) {
		fprintf(stderr, "hold_key: %s\n", e.message);
		return 1;
	}
	rc = id ? kms_profile_get_key_by_id(p, id, &key, &e)
		: kms_profile_get_key(p, &key, &e);
	if (rc != KMS_OK) {
		fprintf(stderr, "hold_key: %s\n", e.message);
		kms_store_free(store);
		return 1;
	}
	if (reveal(out, kms_key_bytes(key), kms_key_size(key)) != 0) {
		perror(out);
		return 1;
	}
	if (freed_first) {
		char held[KMS_KEY_ID_MAX + 1];

		snprintf(held, sizeof(held), "%s", kms_key_id(key));
		kms_key_free(key);
		kms_store_free(store);
		wait_for_eof("freed", held);
		return 0;
	}
	wait_for_eof("held", kms_key_id(key));
	kms_key_free(key);
	kms_store_free(store);
	return 0;
}

static CK_FUNCTION_LIST *f;

static CK_SLOT_ID find_slot(const char *label)
{
	CK_SLOT_ID slots[64];
	CK_ULONG n = 64;
	CK_TOKEN_INFO info;
	size_t len = strlen(label);

	if (f->C_GetSlotList(CK_TRUE, slots, &n) != CKR_OK)
		return (CK_SLOT_ID)-1;
	for (CK_ULONG i = 0; i < n; i++)
		if (f->C_GetTokenInfo(slots[i], &info) == CKR_OK &&
		    len <= sizeof(info.label) &&
		    memcmp(info.label, label, len) == 0 &&
		    (len == sizeof(info.label) || info.label[len] == ' '))
			return slots[i];
	return (CK_SLOT_ID)-1;
}

static int hold_p11(char **argv)
{
	const char *module = argv[0], *conf = argv[1], *token = argv[2];
	const char *out = argv[3];
	CK_RV (*get)(CK_FUNCTION_LIST_PTR_PTR);
	CK_C_INITIALIZE_ARGS args = { 0 };
	CK_MECHANISM mech = { CKM_GENERIC_SECRET_KEY_GEN, NULL, 0 };
	CK_BBOOL no = CK_FALSE;
	CK_ATTRIBUTE tmpl[] = { { CKA_TOKEN, &no, sizeof(no) } };
	unsigned char value[KMS_KEY_MAX];
	char id[KMS_KEY_ID_MAX + 1] = "";
	CK_ATTRIBUTE get_attrs[] = { { CKA_VALUE, value, sizeof(value) },
				     { CKA_ID, id, KMS_KEY_ID_MAX } };
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE key;
	char params[4200];
	CK_SLOT_ID slot;
	void *dl;
	CK_RV rv;

	dl = dlopen(module, RTLD_NOW | RTLD_LOCAL);
	if (dl == NULL) {
		fprintf(stderr, "hold_key: %s\n", dlerror());
		return 1;
	}
	*(void **)&get = dlsym(dl, "C_GetFunctionList");
	if (get == NULL || get(&f) != CKR_OK)
		return 1;
	snprintf(params, sizeof(params), "config=%s log=stderr", conf);
	args.flags = CKF_OS_LOCKING_OK;
	args.pReserved = params;
	if ((rv = f->C_Initialize(&args)) != CKR_OK) {
		fprintf(stderr, "hold_key: C_Initialize: 0x%lx\n", rv);
		return 1;
	}
	slot = find_slot(token);
	if (slot == (CK_SLOT_ID)-1 ||
	    f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s) != CKR_OK ||
	    (rv = f->C_GenerateKey(s, &mech, tmpl, 1, &key)) != CKR_OK ||
	    (rv = f->C_GetAttributeValue(s, key, get_attrs, 2)) != CKR_OK) {
		fprintf(stderr, "hold_key: no key from token %s (0x%lx)\n", token,
			slot == (CK_SLOT_ID)-1 ? 0UL : rv);
		f->C_Finalize(NULL);
		return 1;
	}
	id[get_attrs[1].ulValueLen <= KMS_KEY_ID_MAX ? get_attrs[1].ulValueLen : 0] = '\0';
	rv = reveal(out, value, get_attrs[0].ulValueLen) == 0 ? CKR_OK : CKR_GENERAL_ERROR;
	explicit_bzero(value, sizeof(value));
	if (rv != CKR_OK) {
		perror(out);
		return 1;
	}
	if (freed_first) {
		f->C_DestroyObject(s, key);
		f->C_CloseSession(s);
		f->C_Finalize(NULL);
		wait_for_eof("freed", id);
		return 0;
	}
	wait_for_eof("held", id);
	f->C_DestroyObject(s, key);
	f->C_CloseSession(s);
	f->C_Finalize(NULL);
	return 0;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";

	freed_first = strcmp(mode, "lib-freed") == 0 || strcmp(mode, "p11-freed") == 0;
	if (argc >= 5 && argc <= 6 && strncmp(mode, "lib", 3) == 0 &&
	    (mode[3] == '\0' || freed_first))
		return hold_lib(argc - 2, argv + 2);
	if (argc == 6 && strncmp(mode, "p11", 3) == 0 && (mode[3] == '\0' || freed_first))
		return hold_p11(argv + 2);
	fprintf(stderr, "usage: hold_key lib|lib-freed CONF PROFILE [KEY_ID] REVEAL\n"
			"       hold_key p11|p11-freed MODULE CONF TOKEN REVEAL\n");
	return 2;
}
