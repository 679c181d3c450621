/* access.c - who may ask kmstored for what. The kernel says who a client
 * is (SO_PEERCRED: pid, uid, gid; SO_PEERGROUPS: its other groups); each
 * profile says who may use it:
 *
 *   allow-users  = pluto 1001      user names or numbers
 *   allow-groups = ipsec           group names or numbers
 *
 * Without either, only root. Root and kmstored's own user may always use
 * every profile (they can read the configuration anyway) and ask for a
 * reload. Names are resolved when the configuration is loaded: a user
 * that does not exist is a configuration error, not a silent refusal. */
#include <errno.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "kmstored.h"
#include "profile.h"

#define GROUPS_MAX 4096

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

static int parse_number(const char *s, unsigned long *out)
{
	char *end;

	if (*s < '0' || *s > '9')
		return 0;
	errno = 0;
	*out = strtoul(s, &end, 10);
	return *end == '\0' && errno == 0 && *out < 0xffffffffUL;
}

/* A user or group by name or number: 0, or nss_lookup's error. */
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

/* One setting: names separated by blanks or commas. *later is set when a
 * lookup failed in a way that may pass (see kmsd_rule_load). */
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

kms_rc kmsd_rule_load(kms_profile *p, struct kmsd_rule *r, int *later,
		      kms_error *err)
{
	kms_rc rc;

	memset(r, 0, sizeof(*r));
	*later = 0;
	rc = load_list(p, "allow-users", 1, (unsigned **)&r->uids, &r->n_uids,
		       later, err);
	if (rc == KMS_OK)
		rc = load_list(p, "allow-groups", 0, (unsigned **)&r->gids,
			       &r->n_gids, later, err);
	if (rc != KMS_OK)
		kmsd_rule_clear(r);
	return rc;
}

void kmsd_rule_clear(struct kmsd_rule *r)
{
	free(r->uids);
	free(r->gids);
	memset(r, 0, sizeof(*r));
}

int kmsd_rule_allows(const struct kmsd_rule *r, const struct kmsd_client *c)
{
	if (c->admin)
		return 1;
	for (size_t i = 0; i < r->n_uids; i++)
		if (r->uids[i] == c->uid)
			return 1;
	for (size_t i = 0; i < r->n_gids; i++) {
		if (r->gids[i] == c->gid)
			return 1;
		for (size_t k = 0; k < c->n_groups; k++)
			if (r->gids[i] == c->groups[k])
				return 1;
	}
	return 0;
}

/* Linux 4.13+; without them, the primary group alone is matched. */
void kmsd_client_groups(int fd, struct kmsd_client *c)
{
	socklen_t len = 64 * sizeof(gid_t);

	for (;;) {
		gid_t *g = malloc(len);

		if (g == NULL)
			return;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &len) == 0) {
			c->groups = g;
			c->n_groups = len / sizeof(gid_t);
			return;
		}
		free(g);
		if (errno != ERANGE || len > GROUPS_MAX * sizeof(gid_t))
			return;
	}
}

kms_rc kmsd_client_peer(int fd, struct kmsd_client *c, kms_error *err)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	memset(c, 0, sizeof(*c));
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
		return kms_fail(err, KMS_ERR_SYSTEM, "SO_PEERCRED: %s",
				strerror(errno));
	c->pid = cred.pid;
	c->uid = cred.uid;
	c->gid = cred.gid;
	c->admin = cred.uid == 0 || cred.uid == geteuid();
	snprintf(c->user, sizeof(c->user), "%u", (unsigned)cred.uid);
	return KMS_OK;
}

/* User names by uid. A client that reconnects every few seconds (one
 * closes a connection idle for 5 s) then costs a lookup a minute, not one
 * a connection: a directory service (LDAP, sssd) may take seconds to
 * answer, or time out. Every outcome is kept, a failed lookup too (as the
 * number): one that timed out would time out again. Nothing but messages
 * and the log depends on a name (rules are numbers resolved at load, and
 * a client's groups come from the kernel), so a name kept too long only
 * misnames a renamed user, for NAME_TTL_MS at most. */
#define NAME_SLOTS 64
#define NAME_TTL_MS 60000

static struct name_slot {
	uid_t uid;
	int64_t until; /* kms_now_ms(); 0: free */
	char name[sizeof(((struct kmsd_client *)0)->user)];
} names[NAME_SLOTS];
static pthread_mutex_t names_lock = PTHREAD_MUTEX_INITIALIZER;

/* 1 with uid's name in out if the cache has it fresh; under names_lock. */
static int name_cached(uid_t uid, int64_t now, char *out, size_t size)
{
	for (size_t i = 0; i < NAME_SLOTS; i++)
		if (names[i].until > now && names[i].uid == uid) {
			snprintf(out, size, "%s", names[i].name);
			return 1;
		}
	return 0;
}

/* Keeps uid's name in its own slot, else in the one that ends first (a
 * free or expired one before any in use); under names_lock. */
static void name_keep(uid_t uid, int64_t now, const char *name)
{
	struct name_slot *s = &names[0];

	for (size_t i = 0; i < NAME_SLOTS; i++) {
		if (names[i].until != 0 && names[i].uid == uid) {
			s = &names[i];
			break;
		}
		if (names[i].until < s->until)
			s = &names[i];
	}
	s->uid = uid;
	s->until = now + NAME_TTL_MS;
	snprintf(s->name, sizeof(s->name), "%s", name);
}

/* The lookup is made without the lock: a slow one holds up only the
 * connections that wait for that name. */
const char *kmsd_client_user(struct kmsd_client *c)
{
	unsigned uid = c->uid;
	int hit;

	if (c->named)
		return c->user;
	c->named = 1;
	pthread_mutex_lock(&names_lock);
	hit = name_cached(c->uid, kms_now_ms(), c->user, sizeof(c->user));
	pthread_mutex_unlock(&names_lock);
	if (hit)
		return c->user;
	/* Without a name (none, or the lookup failed), the number. */
	if (nss_lookup(NSS_USER_ID, NULL, &uid, c->user, sizeof(c->user)) != 0)
		snprintf(c->user, sizeof(c->user), "%u", (unsigned)c->uid);
	pthread_mutex_lock(&names_lock);
	name_keep(c->uid, kms_now_ms(), c->user);
	pthread_mutex_unlock(&names_lock);
	return c->user;
}

void kmsd_client_clear(struct kmsd_client *c)
{
	free(c->groups);
	c->groups = NULL;
	c->n_groups = 0;
}
