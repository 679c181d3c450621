/* allow.h - kmstored's access rules of a profile (allow-users,
 * allow-groups) resolved to numbers, and user names by number: the one
 * place that looks names up in the user and group databases (NSS), for
 * kmstored's load and reload and for kmstore check (kms_profile_check);
 * internal. */
#ifndef KMS_ALLOW_H
#define KMS_ALLOW_H

#include <stddef.h>
#include <sys/types.h>

#include "profile.h"

struct kms_allow {
	uid_t *uids;
	size_t n_uids;
	gid_t *gids;
	size_t n_gids;
};

/* The profile's allow-users and allow-groups: names or numbers separated
 * by blanks or commas; a number is taken as it is, without a lookup. A
 * name that cannot be resolved is a KMS_ERR_CONFIG naming the file, line,
 * setting and name ("no user 'x' on this system"; a failed lookup is not
 * "none": KMS_ERR_SYSTEM with the reason). On failure *later (may be
 * NULL) says whether it may pass later: no such name (glibc says so of an
 * sssd not up yet, too) or an error of the directory service, not an
 * entry too large. a is empty on failure. */
kms_rc kms_allow_load(kms_profile *p, struct kms_allow *a, int *later,
		      kms_error *err);
void kms_allow_clear(struct kms_allow *a);

/* The name of user uid in out: 0, ENOENT when there is none, or the
 * errno of a lookup that failed; out is untouched on failure. */
int kms_user_name(uid_t uid, char *out, size_t size);

#endif
