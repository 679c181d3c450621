/* access.c - who may ask kmstored for what. The kernel says who a client
 * is (SO_PEERCRED: pid, uid, gid; SO_PEERGROUPS: its other groups); each
 * profile says who may use it:
 *
 *   allow-users  = pluto 1001      user names or numbers
 *   allow-groups = ipsec           group names or numbers
 *
 * Without either, only root. Root and kmstored's own user may always use
 * every profile (they can read the configuration anyway) and ask for a
 * reload. The names are resolved to numbers when the configuration is
 * loaded, by the library (kmstore/src/allow.c: kmstore check looks them
 * up the same way). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "allow.h"
#include "clock.h"
#include "kmstored.h"
#include "profile.h"

#define GROUPS_MAX 4096

int kmsd_rule_allows(const struct kms_allow *r, const struct kmsd_client *c)
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
	if (kms_user_name(c->uid, c->user, sizeof(c->user)) != 0)
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
