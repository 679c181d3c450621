/* test_static.c - static profiles: keys from hex, base64 and key files,
 * key file and configuration file refusals, relative paths, KMSTORE_CONF,
 * and the short-key warning. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "secmem.h"
#include "util.h"

#define HEX32 "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define B64_32 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

struct fixture {
	char *dir;
	uint8_t key[32];
	size_t secmem_start;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	f->dir = test_mkdtemp();
	for (int i = 0; i < 32; i++)
		f->key[i] = (uint8_t)i;
	f->secmem_start = kms_secmem_in_use();
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	/* Every key and store was freed: no locked memory is held. */
	int rc = kms_secmem_in_use() == f->secmem_start ? 0 : -1;

	test_rmtree(f->dir);
	free(f->dir);
	free(f);
	return rc;
}

/* Writes text as DIR/kmstore.conf (mode 600) and opens it. */
static kms_rc open_conf(struct fixture *f, const char *text, kms_store **st,
			kms_error *err)
{
	char *path = test_write(f->dir, "kmstore.conf", text, strlen(text), 0600);
	kms_rc rc = kms_store_open(path, st, err);

	free(path);
	return rc;
}

static kms_key *get_key(kms_store *st, const char *profile)
{
	kms_profile *p;
	kms_error err;
	kms_key *key = NULL;

	if (kms_store_find_profile(st, profile, &p, &err) != KMS_OK ||
	    kms_profile_get_key(p, &key, &err) != KMS_OK)
		fail_msg("%s: %s", profile, err.message);
	return key;
}

static void test_encodings(void **state)
{
	struct fixture *f = *state;
	char *keyfile = test_write(f->dir, NULL, f->key, 32, 0600);
	char conf[1024], kcv[3][KMS_KCV_LEN + 1];
	const char *names[] = { "hex", "b64", "file" };
	kms_store *st;
	kms_error err;

	snprintf(conf, sizeof(conf),
		 "[hex]\ntype = static\nkey-id = id-hex\nkey = hex:%s\n"
		 "[b64]\ntype = static\nkey-id = id-b64\nkey = base64:%s\n"
		 "[file]\ntype = static\nkey-id = id-file\nkey = file:%s\n",
		 HEX32, B64_32, keyfile);
	assert_int_equal(open_conf(f, conf, &st, &err), KMS_OK);
	for (int i = 0; i < 3; i++) {
		kms_key *key = get_key(st, names[i]);
		char id[16];

		snprintf(id, sizeof(id), "id-%s", names[i]);
		assert_int_equal(kms_key_size(key), 32);
		assert_memory_equal(kms_key_bytes(key), f->key, 32);
		assert_string_equal(kms_key_id(key), id);
		assert_string_equal(kms_key_profile(key), names[i]);
		assert_int_equal(kms_profile_key_size(kms_store_profile_at(st, (size_t)i)), 32);
		assert_int_equal(kms_key_check_value_ex(key, kcv[i], NULL), KMS_OK);
		kms_key_free(key);
	}
	assert_string_equal(kcv[0], kcv[1]);
	assert_string_equal(kcv[0], kcv[2]);
	kms_store_free(st);
	free(keyfile);
}

static void test_by_id(void **state)
{
	struct fixture *f = *state;
	kms_profile *p;
	kms_store *st;
	kms_error err;
	kms_key *key;
	kms_status status;

	assert_int_equal(open_conf(f, "[s]\ntype = static\nkey-id = PPK_ID_1\n"
				   "key = hex:" HEX32 "\n", &st, &err), KMS_OK);
	assert_int_equal(kms_store_find_profile(st, "s", &p, &err), KMS_OK);
	assert_int_equal(kms_profile_get_key_by_id(p, "PPK_ID_1", &key, &err), KMS_OK);
	assert_memory_equal(kms_key_bytes(key), f->key, 32);
	kms_key_free(key);
	assert_int_equal(kms_profile_get_key_by_id(p, "PPK_ID_2", &key, &err),
			 KMS_ERR_NOT_FOUND);
	assert_null(key);
	assert_contains(err.message, "'PPK_ID_2'");
	assert_contains(err.message, "profile 's'");
	assert_int_equal(kms_profile_get_key_by_id(p, "bad id", &key, &err), KMS_ERR_USAGE);
	assert_int_equal(kms_profile_status(p, &status, &err), KMS_OK);
	assert_string_equal(status.state, "ready");
	assert_int_equal(status.key_size_bits, 256);
	assert_int_equal(kms_profile_check(p, &err), KMS_OK);
	kms_store_free(st);
}

/* A key file that is refused: the code and words of the message. */
static void bad_key_file(struct fixture *f, const char *keyfile, kms_rc code,
			 const char *want)
{
	char conf[512];
	kms_profile *p;
	kms_store *st;
	kms_error err;
	kms_key *key;

	snprintf(conf, sizeof(conf),
		 "[k]\ntype = static\nkey-id = k1\nkey = file:%s\n", keyfile);
	assert_int_equal(open_conf(f, conf, &st, &err), KMS_OK);
	p = kms_store_profile_at(st, 0);
	assert_int_equal(kms_profile_get_key(p, &key, &err), code);
	if (code == KMS_OK) {
		kms_key_free(key);
		kms_store_free(st);
		return;
	}
	assert_null(key);
	assert_contains(err.message, "/kmstore.conf:4: profile 'k': key:");
	assert_contains(err.message, want);
	assert_int_equal(kms_profile_check(p, &err), code);
	assert_contains(err.message, want);
	kms_store_free(st);
}

static void test_key_file_refused(void **state)
{
	struct fixture *f = *state;
	uint8_t big[257] = { 1 };
	char *path;

	path = test_write(f->dir, "missing", "", 0, 0600);
	unlink(path);
	bad_key_file(f, path, KMS_ERR_CONFIG, "No such file");
	free(path);
	path = test_write(f->dir, NULL, "", 0, 0600);
	bad_key_file(f, path, KMS_ERR_CONFIG, "the key is 0 bytes");
	free(path);
	path = test_write(f->dir, NULL, big, 15, 0600);
	bad_key_file(f, path, KMS_ERR_CONFIG, "the key is 15 bytes");
	free(path);
	path = test_write(f->dir, NULL, big, 257, 0600);
	bad_key_file(f, path, KMS_ERR_CONFIG, "larger than 256 bytes");
	free(path);
	path = test_write(f->dir, NULL, big, 256, 0600); /* the largest: fine */
	bad_key_file(f, path, KMS_OK, NULL);
	free(path);
	path = test_write(f->dir, NULL, f->key, 32, 0640);
	bad_key_file(f, path, KMS_ERR_PERMISSION, "chmod 600");
	free(path);
	path = test_write(f->dir, NULL, f->key, 32, 0604);
	bad_key_file(f, path, KMS_ERR_PERMISSION, "chmod 600");
	free(path);
	bad_key_file(f, f->dir, KMS_ERR_CONFIG, "not a regular file");
}

static void test_config_permission(void **state)
{
	struct fixture *f = *state;
	static const char text[] = "[s]\ntype = static\nkey-id = a\nkey = hex:" HEX32 "\n";
	char *path = test_write(f->dir, "open.conf", text, strlen(text), 0644);
	kms_store *st = (kms_store *)1;
	kms_error err;

	assert_int_equal(kms_store_open(path, &st, &err), KMS_ERR_PERMISSION);
	assert_null(st);
	assert_int_equal(err.code, KMS_ERR_PERMISSION);
	assert_contains(err.message, "chmod 600");
	assert_contains(err.message, "open.conf");
	assert_lacks(err.message, HEX32);
	chmod(path, 0600);
	assert_int_equal(kms_store_open(path, &st, &err), KMS_OK);
	kms_store_free(st);
	free(path);
}

/* file: paths are relative to the configuration's directory, whatever the
 * working directory. */
static void test_relative_path(void **state)
{
	struct fixture *f = *state;
	char sub[PATH_MAX], cwd[PATH_MAX];
	kms_store *st;
	kms_error err;
	kms_key *key;

	snprintf(sub, sizeof(sub), "%s/keys", f->dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	free(test_write(sub, "west.key", f->key, 32, 0600));
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir("/"), 0);
	assert_int_equal(open_conf(f, "[r]\ntype = static\nkey-id = r\n"
				   "key = file:keys/west.key\n", &st, &err), KMS_OK);
	assert_int_equal(kms_profile_key_size(kms_store_profile_at(st, 0)), 32);
	key = get_key(st, "r");
	assert_memory_equal(kms_key_bytes(key), f->key, 32);
	kms_key_free(key);
	kms_store_free(st);
	assert_int_equal(chdir(cwd), 0);
}

static void test_env_conf(void **state)
{
	struct fixture *f = *state;
	static const char text[] = "[env]\ntype = static\nkey-id = e\nkey = hex:" HEX32 "\n";
	char *path = test_write(f->dir, "env.conf", text, strlen(text), 0600);
	char real[PATH_MAX];
	kms_store *st;
	kms_error err;

	assert_non_null(realpath(path, real));
	assert_int_equal(setenv("KMSTORE_CONF", path, 1), 0);
	assert_string_equal(kms_default_config_path(), path);
	assert_int_equal(kms_store_open(NULL, &st, &err), KMS_OK);
	assert_string_equal(kms_store_path(st), real);
	assert_string_equal(kms_profile_name(kms_store_profile_at(st, 0)), "env");
	kms_store_free(st);
	/* Empty means unset. */
	assert_int_equal(setenv("KMSTORE_CONF", "", 1), 0);
	assert_string_not_equal(kms_default_config_path(), "");
	unsetenv("KMSTORE_CONF");
	free(path);
}

struct captured {
	int warnings;
	char last[KMS_ERROR_MAX];
};

static void capture(void *ctx, kms_log_level level, const char *message)
{
	struct captured *c = ctx;

	/* Only the key-size warnings; an mlock warning may come too. */
	if (level == KMS_LOG_WARNING && strstr(message, "bits") != NULL) {
		c->warnings++;
		snprintf(c->last, sizeof(c->last), "%s", message);
	}
}

static void test_short_key_warning(void **state)
{
	struct fixture *f = *state;
	char *keyfile = test_write(f->dir, NULL, f->key, 16, 0600);
	struct captured c = { 0 };
	char conf[512];
	kms_store *st;
	kms_error err;

	kms_set_logger(capture, &c);
	assert_int_equal(open_conf(f, "[short]\ntype = static\nkey-id = s\n"
				   "key = hex:000102030405060708090a0b0c0d0e0f\n"
				   "[long]\ntype = static\nkey-id = l\nkey = hex:" HEX32 "\n",
				   &st, &err), KMS_OK);
	assert_int_equal(c.warnings, 1);
	assert_contains(c.last, "kmstore.conf:4: profile 'short'");
	assert_contains(c.last, "128 bits");
	assert_lacks(c.last, "000102030405");
	kms_store_free(st);

	snprintf(conf, sizeof(conf), "[f]\ntype = static\nkey-id = s\nkey = file:%s\n",
		 keyfile);
	assert_int_equal(open_conf(f, conf, &st, &err), KMS_OK);
	assert_int_equal(kms_profile_check(kms_store_profile_at(st, 0), &err), KMS_OK);
	assert_int_equal(c.warnings, 2);
	assert_contains(c.last, "profile 'f'");
	assert_contains(c.last, "128 bits");
	kms_store_free(st);
	kms_set_logger(NULL, NULL);
	free(keyfile);
}

/* A key file or configuration file owned by another user (not this one,
 * not root) is refused even at mode 600: that user could put any key in
 * it (docs/security.md). Only root can make such a file, so the check is
 * skipped for other users. */
static void test_owner_refused(void **state)
{
	struct fixture *f = *state;
	static const char text[] = "[s]\ntype = static\nkey-id = a\nkey = hex:" HEX32 "\n";
	const uid_t other = 65534; /* nobody */
	kms_store *st = (kms_store *)1;
	kms_error err;
	char *path;

	if (geteuid() != 0)
		skip();
	path = test_write(f->dir, NULL, f->key, 32, 0600);
	assert_int_equal(chown(path, other, (gid_t)-1), 0);
	bad_key_file(f, path, KMS_ERR_PERMISSION, "is owned by uid 65534, not by you (uid 0) or root");
	/* Given back to root: the same file is taken. */
	assert_int_equal(chown(path, 0, (gid_t)-1), 0);
	bad_key_file(f, path, KMS_OK, NULL);
	free(path);
	path = test_write(f->dir, "other.conf", text, strlen(text), 0600);
	assert_int_equal(chown(path, other, (gid_t)-1), 0);
	assert_int_equal(kms_store_open(path, &st, &err), KMS_ERR_PERMISSION);
	assert_null(st);
	assert_contains(err.message, "other.conf is owned by uid 65534");
	assert_contains(err.message, "fix: chown 0 ");
	assert_lacks(err.message, HEX32);
	free(path);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_encodings), T(test_by_id), T(test_key_file_refused),
		T(test_config_permission), T(test_owner_refused), T(test_relative_path), T(test_env_conf),
		T(test_short_key_warning),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
