/* params.c - the module's parameter string: what `modutil -string`
 * stores and NSS hands to C_Initialize (LibraryParameters), or p11-kit's
 * x-init-reserved. Words separated by blanks:
 *
 *   config=PATH  daemon=SOCKET  log=auto|stderr|syslog|none
 *   log-level=error|warning|info  max-keys=N  empty-slots=N
 *
 * daemon= makes the tokens kmstored's profiles (the module then reads no
 * configuration, holds no SAE credentials and talks to no KME).
 * A value may be double-quoted ("a b", with \" and \\). A word without
 * '=' that starts with '/' is taken as config=PATH. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "module.h"

#define PARAMS_MAX 4096

static const char *skip_blanks(const char *s)
{
	while (*s != '\0' && isspace((unsigned char)*s))
		s++;
	return s;
}

/* Copies one word (quotes and escapes resolved) into buf; returns the
 * rest of the string, or NULL when a quote is not closed. */
static const char *next_word(const char *s, char *buf)
{
	int quoted = 0;
	size_t n = 0;

	for (; *s != '\0'; s++) {
		if (!quoted && isspace((unsigned char)*s))
			break;
		if (*s == '"') {
			quoted = !quoted;
			continue;
		}
		if (quoted && *s == '\\' && (s[1] == '"' || s[1] == '\\'))
			s++;
		buf[n++] = *s;
	}
	buf[n] = '\0';
	return quoted ? NULL : s;
}

static int parse_level(const char *v, kms_log_level *out)
{
	static const struct { const char *name; kms_log_level level; } levels[] = {
		{ "error", KMS_LOG_ERROR },
		{ "warning", KMS_LOG_WARNING },
		{ "info", KMS_LOG_INFO },
	};

	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++)
		if (strcmp(v, levels[i].name) == 0) {
			*out = levels[i].level;
			return 1;
		}
	return 0;
}

static int parse_target(const char *v, enum p11_log_target *out)
{
	if (strcmp(v, "auto") == 0)
		*out = LOG_TO_AUTO;
	else if (strcmp(v, "stderr") == 0)
		*out = LOG_TO_STDERR;
	else if (strcmp(v, "syslog") == 0)
		*out = LOG_TO_SYSLOG;
	else if (strcmp(v, "none") == 0)
		*out = LOG_TO_NONE;
	else
		return 0;
	return 1;
}

static int parse_count(const char *v, long min, long max, size_t *out)
{
	char *end;
	long n = strtol(v, &end, 10);

	if (end == v || *end != '\0' || n < min || n > max)
		return 0;
	*out = (size_t)n;
	return 1;
}

static CK_RV set_path(char **field, const char *v)
{
	if (*v == '\0')
		return CKR_ARGUMENTS_BAD;
	free(*field);
	*field = strdup(v);
	return *field != NULL ? CKR_OK : CKR_HOST_MEMORY;
}

static CK_RV set_config(struct p11_params *p, const char *v)
{
	return set_path(&p->config, v);
}

static CK_RV apply(struct p11_params *p, char *word, char *why, size_t size)
{
	char *eq = strchr(word, '=');
	const char *v;
	int ok;

	if (eq == NULL) {
		if (word[0] == '/')
			return set_config(p, word);
		snprintf(why, size, "'%.64s' is not name=value", word);
		return CKR_ARGUMENTS_BAD;
	}
	*eq = '\0';
	v = eq + 1;
	if (strcmp(word, "config") == 0)
		ok = set_config(p, v) == CKR_OK;
	else if (strcmp(word, "daemon") == 0)
		ok = set_path(&p->daemon, v) == CKR_OK;
	else if (strcmp(word, "log") == 0)
		ok = parse_target(v, &p->log);
	else if (strcmp(word, "log-level") == 0)
		ok = parse_level(v, &p->log_level);
	else if (strcmp(word, "max-keys") == 0)
		ok = parse_count(v, 1, P11_MAX_KEYS_LIMIT, &p->max_keys);
	else if (strcmp(word, "empty-slots") == 0)
		ok = parse_count(v, 0, P11_EMPTY_SLOTS_LIMIT, &p->empty_slots);
	else {
		snprintf(why, size,
			 "unknown parameter '%.32s' (known: config, daemon, "
			 "log, log-level, max-keys, empty-slots)", word);
		return CKR_ARGUMENTS_BAD;
	}
	if (!ok) {
		snprintf(why, size, "bad value '%.64s' for %s", v, word);
		return CKR_ARGUMENTS_BAD;
	}
	return CKR_OK;
}

CK_RV p11_params_parse(const char *s, struct p11_params *out, char *why,
		       size_t why_size)
{
	char *word;
	CK_RV rv = CKR_OK;

	out->config = NULL;
	out->daemon = NULL;
	out->log = LOG_TO_AUTO;
	out->log_level = KMS_LOG_WARNING;
	out->max_keys = P11_MAX_KEYS_DEFAULT;
	out->empty_slots = P11_EMPTY_SLOTS_DEFAULT;
	if (s == NULL)
		return CKR_OK;
	if (strlen(s) > PARAMS_MAX) {
		snprintf(why, why_size, "parameter string longer than %d bytes",
			 PARAMS_MAX);
		return CKR_ARGUMENTS_BAD;
	}
	word = malloc(strlen(s) + 1);
	if (word == NULL)
		return CKR_HOST_MEMORY;
	for (s = skip_blanks(s); *s != '\0' && rv == CKR_OK; s = skip_blanks(s)) {
		s = next_word(s, word);
		if (s == NULL) {
			snprintf(why, why_size, "unbalanced '\"'");
			rv = CKR_ARGUMENTS_BAD;
			break;
		}
		rv = apply(out, word, why, why_size);
	}
	free(word);
	if (rv == CKR_OK && out->config != NULL && out->daemon != NULL) {
		snprintf(why, why_size, "config= and daemon= both given; "
			 "the profiles are either a file's or kmstored's");
		rv = CKR_ARGUMENTS_BAD;
	}
	return rv;
}

void p11_params_clear(struct p11_params *p)
{
	free(p->config);
	p->config = NULL;
	free(p->daemon);
	p->daemon = NULL;
}
