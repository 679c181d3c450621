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
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kmstored.h"
#include "profile.h"

#define GROUPS_MAX 4096

static int parse_number(const char *s, unsigned long *out)
{
	char *end;

	if (*s < '0' || *s > '9')
		return 0;
	errno = 0;
	*out = strtoul(s, &end, 10);
	return *end == '\0' && errno == 0 && *out < 0xffffffffUL;
}

static int lookup_user(const char *name, uid_t *out)
{
	char buf[4096];
	struct passwd pw, *res = NULL;
	unsigned long n;

	if (parse_number(name, &n)) {
		*out = (uid_t)n;
		return 0;
	}
	if (getpwnam_r(name, &pw, buf, sizeof(buf), &res) != 0 || res == NULL)
		return -1;
	*out = pw.pw_uid;
	return 0;
}

static int lookup_group(const char *name, gid_t *out)
{
	char buf[16384];
	struct group gr, *res = NULL;
	unsigned long n;

	if (parse_number(name, &n)) {
		*out = (gid_t)n;
		return 0;
	}
	if (getgrnam_r(name, &gr, buf, sizeof(buf), &res) != 0 || res == NULL)
		return -1;
	*out = gr.gr_gid;
	return 0;
}

/* One setting: names separated by blanks or commas. */
static kms_rc load_list(kms_profile *p, const char *setting, int users,
			unsigned **out, size_t *n, kms_error *err)
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

		if (grown == NULL) {
			rc = kms_fail(err, KMS_ERR_SYSTEM, "out of memory");
			break;
		}
		*out = grown;
		if (users ? lookup_user(w, (uid_t *)&id) : lookup_group(w, (gid_t *)&id))
			rc = kms_setting_fail(p, s, err, KMS_ERR_CONFIG,
					      "no %s '%.64s' on this system",
					      users ? "user" : "group", w);
		else
			(*out)[(*n)++] = id;
	}
	free(copy);
	return rc;
}

kms_rc kmsd_rule_load(kms_profile *p, struct kmsd_rule *r, kms_error *err)
{
	kms_rc rc;

	memset(r, 0, sizeof(*r));
	rc = load_list(p, "allow-users", 1, (unsigned **)&r->uids, &r->n_uids, err);
	if (rc == KMS_OK)
		rc = load_list(p, "allow-groups", 0, (unsigned **)&r->gids,
			       &r->n_gids, err);
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

/* The supplementary groups (Linux 4.13+); without them, the primary. */
static void peer_groups(int fd, struct kmsd_client *c)
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

kms_rc kmsd_client_identify(int fd, struct kmsd_client *c, kms_error *err)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	char buf[4096];
	struct passwd pw, *res = NULL;

	memset(c, 0, sizeof(*c));
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
		return kms_fail(err, KMS_ERR_SYSTEM, "SO_PEERCRED: %s",
				strerror(errno));
	c->pid = cred.pid;
	c->uid = cred.uid;
	c->gid = cred.gid;
	c->admin = cred.uid == 0 || cred.uid == geteuid();
	peer_groups(fd, c);
	if (getpwuid_r(cred.uid, &pw, buf, sizeof(buf), &res) == 0 && res != NULL)
		snprintf(c->user, sizeof(c->user), "%s", pw.pw_name);
	else
		snprintf(c->user, sizeof(c->user), "%u", (unsigned)cred.uid);
	return KMS_OK;
}

void kmsd_client_clear(struct kmsd_client *c)
{
	free(c->groups);
	c->groups = NULL;
	c->n_groups = 0;
}
