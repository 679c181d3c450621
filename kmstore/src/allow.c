/* allow.c - kmstored's access rules of a profile, resolved to numbers:
 *
 *   allow-users  = pluto 1001      user names or numbers
 *   allow-groups = ipsec           group names or numbers
 *
 * kmstored applies them (kmstore/daemon/access.c); kmstore check looks the
 * names up the same way, so that a name kmstored would refuse at start or
 * reload is found before. Names are resolved when the configuration is
 * loaded: a user that does not exist is a configuration error, not a
 * silent refusal. */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "allow.h"

/* The user and group databases (NSS). An entry has no size limit: a group
 * of thousands of members (common under LDAP or sssd) is a line of tens of
 * KiB. The buffer starts at sysconf's hint (glibc: 1 KiB; a hint, not a
 * bound) and doubles on ERANGE up to NSS_BUF_MAX. */
#define NSS_BUF_MAX (1024 * 1024)

enum nss_what { NSS_USER_NAMED, NSS_USER_ID, NSS_GROUP_NAMED };

/* The entry of user NAME (*id its uid), of uid *id (its name in
 * name_out), or of group NAME (*id its gid). Returns 0, ENOENT when there
 * is none, ERANGE when it is over NSS_BUF_MAX, ENOMEM, or the errno of a
 * lookup that failed (the directory service unreachable, ...): not the
 * same as "none". */
static int nss_lookup(enum nss_what what, const char *name, unsigned *id,
		      char *name_out, size_t name_len)
{
	long hint = sysconf(what == NSS_GROUP_NAMED ? _SC_GETGR_R_SIZE_MAX
						     : _SC_GETPW_R_SIZE_MAX);
	size_t len = hint > 0 && hint <= NSS_BUF_MAX ? (size_t)hint : 1024;

	for (;;) {
		char *buf = malloc(len);
		struct passwd pw, *pwr = NULL;
		struct group gr, *grr = NULL;
		int rc;

		if (buf == NULL)
			return ENOMEM;
		switch (what) {
		case NSS_USER_NAMED:
			rc = getpwnam_r(name, &pw, buf, len, &pwr);
			break;
		case NSS_USER_ID:
			rc = getpwuid_r((uid_t)*id, &pw, buf, len, &pwr);
			break;
		default:
			rc = getgrnam_r(name, &gr, buf, len, &grr);
			break;
		}
		if (rc == 0 && pwr != NULL) {
			*id = pw.pw_uid;
			if (name_out != NULL)
				snprintf(name_out, name_len, "%s", pw.pw_name);
		} else if (rc == 0 && grr != NULL) {
			*id = gr.gr_gid;
		} else if (rc == 0 || rc == ENOENT) {
			rc = ENOENT; /* POSIX allows either for "none" */
		}
		free(buf);
		if (rc != ERANGE || len >= NSS_BUF_MAX)
			return rc;
		len = len > NSS_BUF_MAX / 2 ? NSS_BUF_MAX : len * 2;
	}
}

int kms_user_name(uid_t uid, char *out, size_t size)
{
	unsigned id = uid;

	return nss_lookup(NSS_USER_ID, NULL, &id, out, size);
}

static int parse_number(const char *s, unsigned long *out)
{
	char *end;

	if (*s < '0' || *s > '9')
		return 0;
	errno = 0;
	*out = strtoul(s, &end, 10);
	return *end == '\0' && errno == 0 && *out < 0xffffffffUL;
}

/* A user or group by name or number (a number is not looked up): 0, or
 * nss_lookup's error. */
static int lookup_id(int users, const char *name, unsigned *out)
{
	unsigned long n;

	if (parse_number(name, &n)) {
		*out = (unsigned)n;
		return 0;
	}
	return nss_lookup(users ? NSS_USER_NAMED : NSS_GROUP_NAMED, name, out,
			  NULL, 0);
}

/* One setting: names separated by blanks or commas. */
static kms_rc load_list(kms_profile *p, const char *setting, int users,
			unsigned **out, size_t *n, int *later, kms_error *err)
{
	const struct kms_setting *s = kms_profile_find(p, setting);
	char *copy, *save = NULL;
	kms_rc rc = KMS_OK;

	*out = NULL;
	*n = 0;
	if (s == NULL)
		return KMS_OK;
	copy = strdup(s->value);
	if (copy == NULL)
		return kms_fail(err, KMS_ERR_SYSTEM, "out of memory");
	for (char *w = strtok_r(copy, " \t,", &save); w != NULL && rc == KMS_OK;
	     w = strtok_r(NULL, " \t,", &save)) {
		unsigned id, *grown = realloc(*out, (*n + 1) * sizeof(**out));
		int e;

		if (grown == NULL) {
			rc = kms_fail(err, KMS_ERR_SYSTEM, "out of memory");
			break;
		}
		*out = grown;
		e = lookup_id(users, w, &id);
		*later = e != 0 && e != ERANGE;
		switch (e) {
		case 0:
			(*out)[(*n)++] = id;
			break;
		case ENOENT:
			rc = kms_setting_fail(p, s, err, KMS_ERR_CONFIG,
					      "no %s '%.64s' on this system",
					      users ? "user" : "group", w);
			break;
		case ERANGE:
			rc = kms_setting_fail(p, s, err, KMS_ERR_CONFIG,
					      "cannot look up %s '%.64s': its "
					      "entry is over %d MiB (give its "
					      "number instead)",
					      users ? "user" : "group", w,
					      NSS_BUF_MAX / (1024 * 1024));
			break;
		default: /* not "none": it may be there */
			rc = kms_setting_fail(p, s, err, KMS_ERR_SYSTEM,
					      "cannot look up %s '%.64s': %s",
					      users ? "user" : "group", w,
					      strerror(e));
			break;
		}
	}
	free(copy);
	return rc;
}

kms_rc kms_allow_load(kms_profile *p, struct kms_allow *a, int *later,
		      kms_error *err)
{
	int may_pass = 0;
	kms_rc rc;

	memset(a, 0, sizeof(*a));
	rc = load_list(p, "allow-users", 1, (unsigned **)&a->uids, &a->n_uids,
		       &may_pass, err);
	if (rc == KMS_OK)
		rc = load_list(p, "allow-groups", 0, (unsigned **)&a->gids,
			       &a->n_gids, &may_pass, err);
	if (rc != KMS_OK)
		kms_allow_clear(a);
	if (later != NULL)
		*later = rc != KMS_OK && may_pass;
	return rc;
}

void kms_allow_clear(struct kms_allow *a)
{
	free(a->uids);
	free(a->gids);
	memset(a, 0, sizeof(*a));
}
