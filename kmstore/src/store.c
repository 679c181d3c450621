/* store.c - the store: parsing kmstore.conf into profiles, and handing
 * each request to the profile's type.
 *
 * The format is INI: "[profile]" sections of "name = value" lines, '#' or
 * ';' comments (also after a value, following white space), indentation
 * allowed. It is parsed here rather than with inih because Debian's libinih
 * is built with a 200-byte line buffer, and a 256-byte key in hex does not
 * fit in it; the grammar is small enough to fuzz whole (tests/fuzz). */
#include <ctype.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allow.h"
#include "fileio.h"
#include "remote.h"
#include "secmem.h"
#include "store.h"
#include "validate.h"

#ifndef KMS_DEFAULT_CONF
#define KMS_DEFAULT_CONF "/etc/kmstore/kmstore.conf"
#endif
#ifndef KMS_VERSION
#define KMS_VERSION "0"
#endif

#define CONF_MAX (1024 * 1024)
#define SOCKET_PATH_MAX 107 /* sun_path, with its NUL */
#define LINE_MAX_LEN 4096
#define PROFILES_MAX 1024
#define SETTINGS_MAX 64

static const struct kms_profile_type *const types[] = {
	&kms_static_type,
	&kms_qkd_type,
};

struct kms_store {
	atomic_int refs; /* kms_store_cache shares a store between callers */
	char *path;
	char *dir;
	kms_profile **profiles;
	size_t n_profiles;
	char *daemon;    /* "daemon = PATH": a client configuration */
	unsigned daemon_line;
	struct kms_remote *remote; /* kmstored's store: asked about misses */
};

/* Settings every profile may have, whatever its type: kmstored's access
 * rules (kmstore/daemon/access.c); in-process they have no effect, the
 * file's permissions already decide. */
static const struct kms_field common_fields[] = {
	{ "allow-users", 0 },
	{ "allow-groups", 0 },
	{ NULL, 0 },
};

struct parser {
	kms_store *store;
	kms_profile *current;
	const char *file;
	unsigned line;
	kms_error *err;
};

const char *kms_version(void)
{
	return KMS_VERSION;
}

const char *kms_default_config_path(void)
{
	/* Not in a set-ID program (or one that gained capabilities): whoever
	 * runs it chose the environment, as for OpenSSL's OPENSSL_CONF. */
	const char *env = secure_getenv("KMSTORE_CONF");

	return env != NULL && *env != '\0' ? env : KMS_DEFAULT_CONF;
}

static kms_rc parse_fail(struct parser *ps, kms_rc code, const char *fmt, ...)
	KMS_PRINTF(3, 4);

static kms_rc parse_fail(struct parser *ps, kms_rc code, const char *fmt, ...)
{
	char msg[KMS_ERROR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return kms_fail(ps->err, code, "%s:%u: %s", ps->file, ps->line, msg);
}

static void setting_free(struct kms_setting *s)
{
	free(s->name);
	if (s->value != NULL) {
		kms_wipe(s->value, strlen(s->value));
		free(s->value);
	}
}

static void profile_free(kms_profile *p)
{
	if (p == NULL)
		return;
	if (p->type != NULL && p->type->release != NULL && p->state != NULL)
		p->type->release(p);
	for (size_t i = 0; i < p->n_settings; i++)
		setting_free(&p->settings[i]);
	free(p->settings);
	free(p);
}

void kms_store_free(kms_store *store)
{
	if (store == NULL || atomic_fetch_sub(&store->refs, 1) > 1)
		return;
	for (size_t i = 0; i < store->n_profiles; i++)
		profile_free(store->profiles[i]);
	free(store->profiles);
	free(store->path);
	free(store->dir);
	free(store->daemon);
	kms_remote_unref(store->remote);
	free(store);
}

kms_store *kms_store_ref(kms_store *store)
{
	atomic_fetch_add(&store->refs, 1);
	return store;
}

static kms_profile *store_lookup(const kms_store *store, const char *name)
{
	for (size_t i = 0; i < store->n_profiles; i++)
		if (strcmp(store->profiles[i]->name, name) == 0)
			return store->profiles[i];
	return NULL;
}

/* A new, empty profile at the end of the store; NULL with why set. */
static kms_profile *store_add(kms_store *st, const char *name, unsigned line,
			      kms_error *why)
{
	kms_profile *p, **grown, *twin;

	if (kms_check_profile_name(name, why) != KMS_OK)
		return NULL;
	twin = store_lookup(st, name);
	if (twin != NULL) {
		kms_fail(why, KMS_ERR_CONFIG,
			 "profile '%s' is defined twice (first at line %u)", name,
			 twin->line);
		return NULL;
	}
	if (st->n_profiles == PROFILES_MAX) {
		kms_fail(why, KMS_ERR_CONFIG, "more than %d profiles", PROFILES_MAX);
		return NULL;
	}
	grown = realloc(st->profiles, (st->n_profiles + 1) * sizeof(*grown));
	if (grown == NULL) {
		kms_fail(why, KMS_ERR_SYSTEM, "out of memory");
		return NULL;
	}
	st->profiles = grown;
	p = calloc(1, sizeof(*p));
	if (p == NULL) {
		kms_fail(why, KMS_ERR_SYSTEM, "out of memory");
		return NULL;
	}
	strcpy(p->name, name);
	p->file = st->path;
	p->dir = st->dir;
	p->line = line;
	st->profiles[st->n_profiles++] = p;
	return p;
}

static kms_rc add_profile(struct parser *ps, const char *name)
{
	kms_error why;

	if (ps->store->daemon != NULL)
		return parse_fail(ps, KMS_ERR_CONFIG,
				  "a client configuration (daemon = ..., line %u) "
				  "has no profiles: they are kmstored's",
				  ps->store->daemon_line);
	ps->current = store_add(ps->store, name, ps->line, &why);
	if (ps->current != NULL)
		return KMS_OK;
	if (why.code == KMS_ERR_USAGE)
		return parse_fail(ps, KMS_ERR_CONFIG, "section [%s]: %s", name,
				  why.message);
	return parse_fail(ps, why.code, "%s", why.message);
}

kms_rc kms_profile_add_setting(kms_profile *p, const char *name,
				const char *value, unsigned line, kms_error *err)
{
	const struct kms_setting *twin;
	struct kms_setting *grown, *s;

	twin = kms_profile_find(p, name);
	if (twin != NULL)
		return kms_fail(err, KMS_ERR_CONFIG,
				"profile '%s': '%s' is set twice (first at line %u)",
				p->name, name, twin->line);
	if (p->n_settings == SETTINGS_MAX)
		return kms_fail(err, KMS_ERR_CONFIG,
				"profile '%s': more than %d settings", p->name,
				SETTINGS_MAX);
	grown = realloc(p->settings, (p->n_settings + 1) * sizeof(*grown));
	if (grown == NULL)
		return kms_fail(err, KMS_ERR_SYSTEM, "out of memory");
	p->settings = grown;
	s = &p->settings[p->n_settings];
	s->name = strdup(name);
	s->value = strdup(value);
	s->line = line;
	if (s->name == NULL || s->value == NULL) {
		setting_free(s);
		return kms_fail(err, KMS_ERR_SYSTEM, "out of memory");
	}
	p->n_settings++;
	return KMS_OK;
}

/* "daemon = PATH" before any section: the file makes a client of
 * kmstored (remote.c) rather than naming profiles. */
static kms_rc set_global(struct parser *ps, const char *name,
			 const char *value)
{
	kms_store *st = ps->store;

	if (strcmp(name, "daemon") != 0)
		return parse_fail(ps, KMS_ERR_CONFIG,
				  "'%s' is set outside a [profile] section (only "
				  "'daemon' may be: the socket of kmstored)", name);
	if (st->daemon != NULL)
		return parse_fail(ps, KMS_ERR_CONFIG,
				  "'daemon' is set twice (first at line %u)",
				  st->daemon_line);
	if (value[0] != '/' || strlen(value) > SOCKET_PATH_MAX)
		return parse_fail(ps, KMS_ERR_CONFIG,
				  "daemon: the socket must be an absolute path of "
				  "at most %d bytes", SOCKET_PATH_MAX);
	st->daemon = strdup(value);
	if (st->daemon == NULL)
		return parse_fail(ps, KMS_ERR_SYSTEM, "out of memory");
	st->daemon_line = ps->line;
	return KMS_OK;
}

static kms_rc add_setting(struct parser *ps, const char *name,
			  const char *value)
{
	kms_error why;

	if (ps->current == NULL)
		return set_global(ps, name, value);
	if (kms_profile_add_setting(ps->current, name, value, ps->line, &why) !=
	    KMS_OK)
		return parse_fail(ps, why.code, "%s", why.message);
	return KMS_OK;
}

/* Cuts a comment that follows white space: '#' and ';' appear in no
 * setting name, key-id, encoding or path we accept right after a blank. */
static void cut_comment(char *s)
{
	for (char *c = s; *c != '\0'; c++) {
		if ((*c == '#' || *c == ';') && (c == s || isblank((unsigned char)c[-1]))) {
			*c = '\0';
			return;
		}
	}
}

static char *trim(char *s)
{
	char *end;

	while (isblank((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

/* The first byte of s that a setting name may not have, or NULL. */
static const char *bad_setting_name(const char *s)
{
	if (*s == '\0')
		return s;
	for (; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-'))
			return s;
	return NULL;
}

static kms_rc parse_line(struct parser *ps, char *line)
{
	char *s, *eq, *name, *value;
	const char *bad;

	cut_comment(line);
	s = trim(line);
	if (*s == '\0')
		return KMS_OK;
	if (*s == '[') {
		char *close = strchr(s, ']');

		if (close == NULL || close[1] != '\0')
			return parse_fail(ps, KMS_ERR_CONFIG,
					  "a section header must be \"[name]\" alone "
					  "on its line");
		*close = '\0';
		return add_profile(ps, trim(s + 1));
	}
	eq = strchr(s, '=');
	if (eq == NULL)
		return parse_fail(ps, KMS_ERR_CONFIG,
				  "expected \"name = value\" or \"[profile]\"");
	*eq = '\0';
	name = trim(s);
	value = trim(eq + 1);
	/* Never quoted: with the '=' of a key's base64 padding taken for the
	 * separator ("key base64:...=") the "name" is most of the key. */
	if ((bad = bad_setting_name(name)) != NULL)
		return parse_fail(ps, KMS_ERR_CONFIG,
				  "the text before '=' is not a setting name: "
				  "column %zu is not a lower-case letter, digit or "
				  "'-' (is the ' = ' after the name missing?)",
				  (size_t)(bad - line) + 1);
	if (*value == '\0')
		return parse_fail(ps, KMS_ERR_CONFIG, "'%s' has no value", name);
	return add_setting(ps, name, value);
}

static kms_rc parse_text(struct parser *ps, const char *text, size_t len)
{
	char line[LINE_MAX_LEN + 1];
	size_t pos = 0;
	kms_rc rc = KMS_OK;

	if (memchr(text, '\0', len) != NULL) {
		ps->line = 1;
		for (const char *c = text; *c != '\0'; c++)
			ps->line += *c == '\n';
		return parse_fail(ps, KMS_ERR_CONFIG, "a NUL byte in the file");
	}
	/* A byte-order mark says nothing in UTF-8, but some editors write
	 * one: skipped, so line 1 reads as the editor shows it. */
	if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
		pos = 3;
	while (pos < len && rc == KMS_OK) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t n = (nl != NULL ? (size_t)(nl - text) : len) - pos;
		/* The limit is on what the line holds: the CR of a CRLF is
		 * its end, as the LF is (trim() would drop it anyway). */
		size_t held = nl != NULL && n > 0 && text[pos + n - 1] == '\r'
			? n - 1 : n;

		ps->line++;
		if (held > LINE_MAX_LEN) {
			rc = parse_fail(ps, KMS_ERR_CONFIG,
					"line is longer than %d bytes", LINE_MAX_LEN);
			break;
		}
		memcpy(line, text + pos, held);
		line[held] = '\0';
		rc = parse_line(ps, line);
		pos += n + 1;
	}
	kms_wipe(line, sizeof(line)); /* it may have held a key */
	return rc;
}

static const struct kms_profile_type *find_type(const char *name)
{
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (strcmp(types[i]->name, name) == 0)
			return types[i];
	return NULL;
}

static const struct kms_field *find_field(const struct kms_profile_type *t,
					  const char *name)
{
	for (const struct kms_field *f = t->fields; f->name != NULL; f++)
		if (strcmp(f->name, name) == 0)
			return f;
	for (const struct kms_field *f = common_fields; f->name != NULL; f++)
		if (strcmp(f->name, name) == 0)
			return f;
	return NULL;
}

/* After configure(), secret settings (an inline key) are gone from the
 * settings list: the type holds them in locked memory. */
static void drop_secrets(kms_profile *p)
{
	size_t kept = 0;

	for (size_t i = 0; i < p->n_settings; i++) {
		const struct kms_field *f = find_field(p->type, p->settings[i].name);

		if (f != NULL && (f->flags & KMS_FIELD_SECRET))
			setting_free(&p->settings[i]);
		else
			p->settings[kept++] = p->settings[i];
	}
	p->n_settings = kept;
}

static kms_rc configure_profile(kms_profile *p, kms_error *err)
{
	const struct kms_setting *type = kms_profile_find(p, "type");
	kms_rc rc;

	if (type == NULL)
		return kms_setting_fail(p, NULL, err, KMS_ERR_CONFIG,
					"no 'type' (static or qkd)");
	p->type = find_type(type->value);
	if (p->type == NULL)
		return kms_setting_fail(p, type, err, KMS_ERR_CONFIG,
					"unknown type '%.32s' (static or qkd)",
					type->value);
	for (size_t i = 0; i < p->n_settings; i++) {
		const struct kms_setting *s = &p->settings[i];

		if (strcmp(s->name, "type") != 0 && find_field(p->type, s->name) == NULL)
			return kms_setting_fail(p, s, err, KMS_ERR_CONFIG,
						"not a setting of a %s profile",
						p->type->name);
	}
	for (const struct kms_field *f = p->type->fields; f->name != NULL; f++)
		if ((f->flags & KMS_FIELD_REQUIRED) && kms_profile_find(p, f->name) == NULL)
			return kms_setting_fail(p, NULL, err, KMS_ERR_CONFIG,
						"'%s' is required for a %s profile",
						f->name, p->type->name);
	rc = p->type->configure(p, err);
	drop_secrets(p);
	return rc;
}

static kms_rc store_new(const char *path, kms_store **out, kms_error *err)
{
	kms_store *st = calloc(1, sizeof(*st));
	char *copy;

	*out = NULL;
	if (st != NULL)
		atomic_init(&st->refs, 1);
	if (st == NULL || (st->path = strdup(path)) == NULL ||
	    (copy = strdup(path)) == NULL) {
		kms_store_free(st);
		return kms_fail(err, KMS_ERR_SYSTEM, "out of memory");
	}
	st->dir = strdup(dirname(copy));
	free(copy);
	if (st->dir == NULL) {
		kms_store_free(st);
		return kms_fail(err, KMS_ERR_SYSTEM, "out of memory");
	}
	*out = st;
	return KMS_OK;
}

kms_rc kms_store_parse(const char *text, size_t len, const char *path,
		       kms_store **out, kms_error *err)
{
	struct parser ps = { .file = path, .err = err };
	kms_rc rc;

	rc = store_new(path, &ps.store, err);
	if (rc != KMS_OK)
		return rc;
	ps.file = ps.store->path;
	rc = parse_text(&ps, text, len);
	for (size_t i = 0; rc == KMS_OK && i < ps.store->n_profiles; i++)
		rc = configure_profile(ps.store->profiles[i], err);
	if (rc != KMS_OK) {
		kms_store_free(ps.store);
		return rc;
	}
	*out = ps.store;
	return KMS_OK;
}

kms_rc kms_store_read(const char *path, char resolved[PATH_MAX],
		      uint8_t **text, size_t *len, kms_error *err)
{
	if (path == NULL)
		path = kms_default_config_path();
	/* Absolute, so relative key paths mean the same from any cwd. */
	if (realpath(path, resolved) == NULL)
		snprintf(resolved, PATH_MAX, "%s", path);
	return kms_read_private(resolved, "configuration file", CONF_MAX, 0,
				text, len, err);
}

void kms_store_text_free(uint8_t *text, size_t len)
{
	kms_wipe(text, len);
	free(text);
}

kms_rc kms_store_load(const char *path, kms_store **out, kms_error *err)
{
	char resolved[PATH_MAX];
	uint8_t *text;
	size_t len;
	kms_rc rc;

	*out = NULL;
	rc = kms_store_read(path, resolved, &text, &len, err);
	if (rc != KMS_OK)
		return rc;
	rc = kms_store_parse((const char *)text, len, resolved, out, err);
	kms_store_text_free(text, len);
	return rc;
}

kms_rc kms_store_client_socket(const char *path, char **socket,
			       kms_error *err)
{
	char resolved[PATH_MAX];
	struct parser ps = { .err = err };
	uint8_t *text;
	size_t len;
	kms_rc rc;

	*socket = NULL;
	rc = kms_store_read(path, resolved, &text, &len, err);
	if (rc != KMS_OK)
		return rc;
	rc = store_new(resolved, &ps.store, err);
	if (rc == KMS_OK) {
		ps.file = ps.store->path;
		/* The syntax only: the profiles of a file that has them are
		 * not wanted, so their key files and certificates are not
		 * read, nor their warnings given. */
		rc = parse_text(&ps, (const char *)text, len);
		if (rc == KMS_OK && ps.store->daemon != NULL &&
		    (*socket = strdup(ps.store->daemon)) == NULL)
			rc = kms_fail(err, KMS_ERR_SYSTEM, "out of memory");
		kms_store_free(ps.store);
	}
	kms_store_text_free(text, len);
	return rc;
}

kms_rc kms_store_open(const char *path, kms_store **out, kms_error *err)
{
	kms_store *client;
	kms_rc rc = kms_store_load(path, &client, err);

	if (rc != KMS_OK || client->daemon == NULL) {
		*out = client;
		return rc;
	}
	rc = kms_store_open_daemon(client->daemon, out, err);
	kms_store_free(client);
	return rc;
}

const char *kms_store_daemon(const kms_store *store)
{
	return store->daemon;
}

kms_rc kms_store_new(const char *path, kms_store **out, kms_error *err)
{
	return store_new(path, out, err);
}

void kms_store_set_remote(kms_store *store, struct kms_remote *r)
{
	store->remote = r;
}

kms_rc kms_store_add_profile(kms_store *store, const char *name,
			     kms_profile **out, kms_error *err)
{
	kms_error why;

	*out = store_add(store, name, 0, &why);
	if (*out == NULL)
		return kms_fail(err, why.code, "%s", why.message);
	return KMS_OK;
}

const char *kms_store_path(const kms_store *store)
{
	return store->path;
}

size_t kms_store_profile_count(const kms_store *store)
{
	return store->n_profiles;
}

kms_profile *kms_store_profile_at(const kms_store *store, size_t index)
{
	return index < store->n_profiles ? store->profiles[index] : NULL;
}

kms_rc kms_store_find_profile(const kms_store *store, const char *name,
			      kms_profile **out, kms_error *err)
{
	*out = store_lookup(store, name);
	if (*out != NULL)
		return KMS_OK;
	/* kmstored says why: not open to this user, or not there. */
	if (store->remote != NULL)
		return kms_remote_miss(store->remote, name, err);
	return kms_fail(err, KMS_ERR_NOT_FOUND, "no such profile '%.*s' in %s",
			KMS_PROFILE_NAME_MAX, name, store->path);
}

/* Profiles */

const struct kms_setting *kms_profile_find(const kms_profile *p,
					   const char *name)
{
	for (size_t i = 0; i < p->n_settings; i++)
		if (strcmp(p->settings[i].name, name) == 0)
			return &p->settings[i];
	return NULL;
}

kms_rc kms_setting_fail(const kms_profile *p, const struct kms_setting *s,
			kms_error *err, kms_rc code, const char *fmt, ...)
{
	char msg[KMS_ERROR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (s != NULL)
		return kms_fail(err, code, "%s:%u: profile '%s': %s: %s", p->file,
				s->line, p->name, s->name, msg);
	return kms_fail(err, code, "%s:%u: profile '%s': %s", p->file, p->line,
			p->name, msg);
}

char *kms_profile_path(const kms_profile *p, const char *value)
{
	char *out;

	if (value[0] == '/')
		return strdup(value);
	if (asprintf(&out, "%s/%s", p->dir, value) < 0)
		return NULL;
	return out;
}

kms_rc kms_setting_long(const kms_profile *p, const struct kms_setting *s,
			long min, long max, long *out, kms_error *err)
{
	char *end;
	long v = strtol(s->value, &end, 10);

	if (end == s->value || *end != '\0')
		return kms_setting_fail(p, s, err, KMS_ERR_CONFIG,
					"'%.32s' is not a whole number in decimal "
					"digits (from %ld to %ld)", s->value, min, max);
	if (v < min || v > max)
		return kms_setting_fail(p, s, err, KMS_ERR_CONFIG,
					"'%.32s' is not a whole number from %ld to %ld",
					s->value, min, max);
	if (!kms_is_decimal(s->value, 0))
		kms_log(KMS_LOG_WARNING, "%s:%u: profile '%s': %s: '%.32s' is "
			"read as %ld; write plain decimal digits", p->file,
			s->line, p->name, s->name, s->value, v);
	*out = v;
	return KMS_OK;
}

const char *kms_profile_name(const kms_profile *p)
{
	return p->name;
}

/* The "type" setting: the type's own name for a profile of this store,
 * the daemon's type for a remote one. */
const char *kms_profile_type(const kms_profile *p)
{
	return kms_profile_setting(p, "type");
}

size_t kms_profile_key_size(const kms_profile *p)
{
	return p->key_size;
}

/* By the type's name, so that a remote profile (kmstored's) is single-use
 * when the daemon's profile is. */
int kms_profile_single_use(const kms_profile *p)
{
	const char *name = kms_profile_type(p);
	const struct kms_profile_type *t = name != NULL ? find_type(name) : NULL;

	return t != NULL ? t->single_use : p->type->single_use;
}

/* By this profile's own type: a remote one (kmstored's) asks the daemon,
 * whatever the daemon's profile is. */
int kms_profile_local(const kms_profile *p)
{
	return p->type->local;
}

const char *kms_profile_setting(const kms_profile *p, const char *name)
{
	const struct kms_setting *s = kms_profile_find(p, name);

	return s != NULL ? s->value : NULL;
}

kms_rc kms_profile_check_files(kms_profile *p, kms_error *err)
{
	return p->type->check(p, err);
}

/* A profile of this process's file (not kmstored's, whose check is the
 * daemon's) also has its users and groups looked up, as kmstored looks
 * them up at start and reload: a name it would refuse fails here too. */
kms_rc kms_profile_check(kms_profile *p, kms_error *err)
{
	struct kms_allow ids;
	kms_rc rc = kms_profile_check_files(p, err);

	if (rc != KMS_OK || find_type(p->type->name) != p->type)
		return rc;
	rc = kms_allow_load(p, &ids, NULL, err);
	kms_allow_clear(&ids);
	return rc;
}

kms_rc kms_profile_check_dates(kms_profile *p, kms_error *err)
{
	return p->type->check_dates != NULL ? p->type->check_dates(p, err) : KMS_OK;
}

kms_rc kms_profile_get_key(kms_profile *p, kms_key **out, kms_error *err)
{
	*out = NULL;
	return p->type->get_key(p, out, err);
}

kms_rc kms_profile_get_key_by_id(kms_profile *p, const char *key_id,
				 kms_key **out, kms_error *err)
{
	kms_rc rc;

	*out = NULL;
	if (key_id == NULL)
		return kms_fail(err, KMS_ERR_USAGE, "no key ID given");
	rc = kms_check_key_id(key_id, strlen(key_id), err);
	if (rc != KMS_OK)
		return rc;
	return p->type->get_key_by_id(p, key_id, out, err);
}

kms_rc kms_profile_status(kms_profile *p, kms_status *out, kms_error *err)
{
	static const kms_status unknown = {
		.key_size_bits = -1, .stored_key_count = -1, .max_key_count = -1,
		.max_key_per_request = -1, .min_key_size_bits = -1,
		.max_key_size_bits = -1, .pool_keys = -1, .pool_target = -1,
	};

	*out = unknown;
	return p->type->status(p, out, err);
}
