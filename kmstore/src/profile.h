/* profile.h - what a profile is inside libkmstore, and the table of
 * functions that makes a profile type; internal.
 *
 * A new profile type is one kms_profile_type and one line in the table in
 * store.c: the store parses the file, checks every setting against the
 * type's field list, and calls configure() once the section is complete. */
#ifndef KMS_PROFILE_H
#define KMS_PROFILE_H

#include "error.h"

enum { KMS_FIELD_REQUIRED = 1, KMS_FIELD_SECRET = 2 };

struct kms_field {
	const char *name;
	unsigned flags;
};

struct kms_setting {
	char *name;
	char *value; /* wiped when freed; removed after configure if secret */
	unsigned line;
};

struct kms_profile_type {
	const char *name;
	const struct kms_field *fields; /* ends with a NULL name; "type" is implied */
	/* Validates the settings and builds p->state; fast, no file or
	 * network I/O beyond stat. */
	kms_rc (*configure)(kms_profile *p, kms_error *err);
	/* Deep checks for "kmstore check": key files, certificates. */
	kms_rc (*check)(kms_profile *p, kms_error *err);
	/* Its certificates' validity now; NULL: it has none. */
	kms_rc (*check_dates)(kms_profile *p, kms_error *err);
	kms_rc (*get_key)(kms_profile *p, kms_key **out, kms_error *err);
	kms_rc (*get_key_by_id)(kms_profile *p, const char *id, kms_key **out,
				kms_error *err);
	kms_rc (*status)(kms_profile *p, kms_status *out, kms_error *err);
	void (*release)(kms_profile *p);
	/* Its source hands each key out once (a QKD KME deletes a key once
	 * it is retrieved): a face that holds keys hands them out once too. */
	int single_use;
	/* Its keys are in this process's memory or a local file: asking for
	 * one never waits on a network or another process. */
	int local;
};

struct kms_profile {
	char name[KMS_PROFILE_NAME_MAX + 1];
	const struct kms_profile_type *type;
	const char *file; /* the config file, owned by the store */
	const char *dir;  /* base for relative paths, owned by the store */
	unsigned line;    /* of the [section] header */
	struct kms_setting *settings;
	size_t n_settings;
	size_t key_size; /* bytes; 0 while unknown */
	void *state;     /* the type's own */
};

extern const struct kms_profile_type kms_static_type;
extern const struct kms_profile_type kms_qkd_type;

const struct kms_setting *kms_profile_find(const kms_profile *p,
					   const char *name);

/* Fail with "FILE:LINE: profile 'P': NAME: ..." for a setting, or
 * "FILE:LINE: profile 'P': ..." for the profile (s == NULL). */
kms_rc kms_setting_fail(const kms_profile *p, const struct kms_setting *s,
			kms_error *err, kms_rc code, const char *fmt, ...)
	KMS_PRINTF(5, 6);

/* An absolute path for a path setting, relative ones taken from the
 * config file's directory. The caller frees it. */
char *kms_profile_path(const kms_profile *p, const char *value);

/* Parses a whole number setting within [min, max]. */
kms_rc kms_setting_long(const kms_profile *p, const struct kms_setting *s,
			long min, long max, long *out, kms_error *err);

#endif
