/* test_kept_file.c - kms_kept_file (the SAE's TLS key, kept between KME
 * requests): each get gives what reading the file would give at that
 * moment: a rewrite of the same size (at once, and once the file is
 * quiet), a rename over it, chmod, removal and an oversized file are all
 * seen at the next get; a quiet file is read once; a copy stays whole for
 * its holder after a change; nothing stays in locked memory once
 * everything is put back. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "secmem.h"
#include "util.h"

/* Two keys of the same length. */
#define KEY_A "-----BEGIN PRIVATE KEY-----\nAAAAAAAA\n-----END PRIVATE KEY-----\n"
#define KEY_B "-----BEGIN PRIVATE KEY-----\nBBBBBBBB\n-----END PRIVATE KEY-----\n"
#define KEY_C "-----BEGIN PRIVATE KEY-----\nCCCCCCCCCCCC\n-----END PRIVATE KEY-----\n"
#define MAX 256

struct fixture {
	char *dir;
	char *path;
	struct kms_kept_file *kf;
	size_t secmem_start;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	kms_error err;

	if (f == NULL)
		return -1;
	f->dir = test_mkdtemp();
	f->path = test_write(f->dir, "sae.key", KEY_A, strlen(KEY_A), 0600);
	f->secmem_start = kms_secmem_in_use();
	if (kms_kept_file_new(f->path, "TLS private key", MAX, &f->kf, &err) != KMS_OK)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	int rc;

	kms_kept_file_free(f->kf);
	rc = kms_secmem_in_use() == f->secmem_start ? 0 : -1;
	test_rmtree(f->dir);
	free(f->path);
	free(f->dir);
	free(f);
	return rc;
}

static const struct kms_file_copy *get(const struct fixture *f)
{
	const struct kms_file_copy *c = NULL;
	kms_error err = { 0 };

	if (kms_kept_file_get(f->kf, &c, &err) != KMS_OK)
		fail_msg("kms_kept_file_get: %s", err.message);
	return c;
}

static void expect_text(const struct kms_file_copy *c, const char *text)
{
	assert_int_equal(c->len, strlen(text));
	assert_string_equal((const char *)c->data, text);
}

static void expect_refused(const struct fixture *f, kms_rc code,
			   const char *words)
{
	const struct kms_file_copy *c = NULL;
	kms_error err = { 0 };

	assert_int_equal(kms_kept_file_get(f->kf, &c, &err), code);
	assert_null(c);
	assert_contains(err.message, words);
	assert_contains(err.message, f->path);
}

/* In place: same inode, same size, as an editor that writes over it. */
static void rewrite(const struct fixture *f, const char *text, mode_t mode)
{
	free(test_write(f->dir, "sae.key", text, strlen(text), mode));
}

static void replace(const struct fixture *f, const char *text)
{
	char *tmp = test_write(f->dir, "sae.key.new", text, strlen(text), 0600);

	if (rename(tmp, f->path) != 0)
		fail_msg("rename %s: %m", tmp);
	free(tmp);
}

/* Just written: stat cannot tell a second write within the same tick
 * (here stat says nothing changed), so every get reads again and a
 * same-size rewrite is seen at once. */
static void test_recent_rewrite_seen(void **state)
{
	struct fixture *f = *state;
	const struct kms_file_copy *a, *b;

	test_freeze_stat(1);
	a = get(f);
	expect_text(a, KEY_A);
	rewrite(f, KEY_B, 0600);
	b = get(f);
	test_freeze_stat(0);
	expect_text(b, KEY_B);
	expect_text(a, KEY_A); /* the holder's copy is untouched */
	kms_file_copy_put(a);
	kms_file_copy_put(b);
}

/* Quiet: read once and shared; every kind of change is still seen. */
static void test_quiet_kept_changes_seen(void **state)
{
	struct fixture *f = *state;
	const struct kms_file_copy *a, *b, *c;

	sleep(2 + KMS_FILE_RECENT_S);
	a = get(f);
	b = get(f);
	assert_ptr_equal(a, b);
	expect_text(a, KEY_A);
	kms_file_copy_put(b);

	rewrite(f, KEY_B, 0600); /* in place, the same size */
	b = get(f);
	expect_text(b, KEY_B);
	kms_file_copy_put(b);

	assert_int_equal(chmod(f->path, 0640), 0);
	expect_refused(f, KMS_ERR_PERMISSION, "accessible by group or others");
	assert_int_equal(chmod(f->path, 0600), 0);
	b = get(f);
	expect_text(b, KEY_B);
	kms_file_copy_put(b);

	replace(f, KEY_C);
	c = get(f);
	expect_text(c, KEY_C);
	expect_text(a, KEY_A);
	kms_file_copy_put(a);
	kms_file_copy_put(c);

	assert_int_equal(unlink(f->path), 0);
	expect_refused(f, KMS_ERR_CONFIG, "cannot open TLS private key");
}

static void test_too_large(void **state)
{
	struct fixture *f = *state;
	char big[MAX + 2];

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	rewrite(f, big, 0600);
	expect_refused(f, KMS_ERR_CONFIG, "larger than 256 bytes");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_recent_rewrite_seen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_quiet_kept_changes_seen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_too_large, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
