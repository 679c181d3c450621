/* kmstore.c - the kmstore command: list profiles, show a profile's status,
 * fetch a key (showing its ID and check value; the key itself only on
 * request), and validate a configuration. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kmstore.h"
#include "output.h"
#include "error.h"
#include "remote.h"
#include "store.h"

#define EXIT_CHECK_FAILED 1

struct options {
	const char *config;
	const char *daemon;
	const char *key_id;
	enum reveal reveal;
	bool json;
};

static void usage(FILE *f)
{
	fprintf(f,
"Usage: kmstore [OPTIONS] COMMAND [ARGUMENTS]\n"
"\n"
"Post-quantum preshared keys (RFC 8784 PPKs) from static profiles and from\n"
"QKD key management entities (ETSI GS QKD 014).\n"
"\n"
"Commands:\n"
"  profiles              list the profiles: name, type, key size, key ID or\n"
"                        KME URL and SAE IDs\n"
"  status PROFILE        show whether PROFILE can serve keys (QKD: the KME's\n"
"                        status for the peer SAE)\n"
"  key PROFILE|URI       get a key for use now (QKD: a new key from enc_keys)\n"
"                        and print its ID, size and check value; PROFILE may\n"
"                        be a kmstore: URI (kmstore:profile=P;key-id=K)\n"
"  check                 validate the configuration and every key file and\n"
"                        certificate it names\n"
"  reload                have kmstored read its configuration again (the\n"
"                        running one stays if the new one does not load)\n"
"  metrics               kmstored's metrics, in Prometheus text format\n"
"  help                  show this help\n"
"\n"
"Options:\n"
"  -c, --config FILE     configuration file (default: $KMSTORE_CONF if set,\n"
"                        else %s)\n"
"  -d, --daemon SOCKET   ask kmstored listening on SOCKET instead of reading\n"
"                        a configuration (reload, metrics: default the\n"
"                        client configuration's socket, else %s)\n"
"  -k, --key-id ID       with key: the key with this ID (QKD: dec_keys)\n"
"  -r, --reveal [FORMAT] with key: also print the key itself, as hex\n"
"                        (the default) or base64\n"
"  -j, --json            print one JSON document\n"
"  -h, --help            show this help\n"
"  -V, --version         show the version\n"
"\n"
"Exit status:\n"
"  0   success\n"
"  1   check found a problem\n"
"  2   usage error\n"
"  3   configuration error (a bad setting, key file or certificate)\n"
"  4   permission refused (a file readable by others, or not yours)\n"
"  5   no such profile or key\n"
"  6   malformed kmstore: URI\n"
"  7   the KME refused the request or answered badly\n"
"  8   the KME or kmstored is unreachable (connection, TLS or timeout)\n"
"  9   operation not supported by the profile\n"
"  10  system error (memory, I/O)\n",
		KMS_DEFAULT_CONF, KMS_DEFAULT_SOCKET);
}

static int fail(struct output *out, const kms_error *e)
{
	output_error(out, e);
	if (out != NULL)
		output_finish(out);
	return e->code;
}

static int usage_error(const char *fmt, const char *arg)
{
	fputs("kmstore: ", stderr);
	fprintf(stderr, fmt, arg);
	fputs("\nTry 'kmstore --help'.\n", stderr);
	return KMS_ERR_USAGE;
}

/* A usage error found once the output exists: reported like any error
 * (a JSON error object with --json), and the output freed. */
static int usage_fail(struct output *out, const char *fmt, const char *arg)
{
	kms_error e = { .code = KMS_ERR_USAGE };

	snprintf(e.message, sizeof(e.message), fmt, arg);
	return fail(out, &e);
}

/* What was printed could not be written (a full disk, a closed stdout):
 * a system error, said once, with the reason. */
static int write_failed(int e)
{
	fprintf(stderr, "kmstore: cannot write to standard output: %s\n",
		strerror(e));
	return KMS_ERR_SYSTEM;
}

static int finish(struct output *out, int status)
{
	int e = output_finish(out);

	return e != 0 ? write_failed(e) : status;
}

/* help and --version: what they print must be written, too. */
static int printed(void)
{
	int e = output_flush();

	return e != 0 ? write_failed(e) : 0;
}

/* The one place that chooses: kmstored's profiles, or a file's. */
static kms_rc open_store(const struct options *o, kms_store **store,
			 kms_error *e)
{
	if (o->daemon != NULL)
		return kms_store_open_daemon(o->daemon, store, e);
	return kms_store_open(o->config, store, e);
}

static int cmd_profiles(const struct options *o, struct output *out)
{
	kms_store *store;
	kms_error e;

	if (open_store(o, &store, &e) != KMS_OK)
		return fail(out, &e);
	output_profiles(out, store);
	kms_store_free(store);
	return finish(out, 0);
}

static int open_profile(const struct options *o, const char *name,
			kms_store **store, kms_profile **p, kms_error *e)
{
	kms_rc rc = open_store(o, store, e);

	if (rc != KMS_OK)
		return rc;
	rc = kms_store_find_profile(*store, name, p, e);
	if (rc != KMS_OK) {
		kms_store_free(*store);
		*store = NULL;
	}
	return rc;
}

static int cmd_status(const struct options *o, struct output *out,
		      const char *name)
{
	kms_store *store;
	kms_profile *p;
	kms_status st;
	kms_error e;

	if (open_profile(o, name, &store, &p, &e) != KMS_OK)
		return fail(out, &e);
	if (kms_profile_status(p, &st, &e) != KMS_OK) {
		/* In an outage, what there is to know: each KME's health,
		 * kmstored's pool. */
		if (st.n_kmes > 0 || st.pool_target >= 0)
			output_status(out, p, &st);
		kms_store_free(store);
		return fail(out, &e);
	}
	output_status(out, p, &st);
	kms_store_free(store);
	return finish(out, 0);
}

static int cmd_key(const struct options *o, struct output *out,
		   const char *what)
{
	const char *name = what, *key_id = o->key_id;
	kms_uri uri = { 0 };
	kms_store *store;
	kms_profile *p;
	kms_key *key;
	kms_error e;
	kms_rc rc;

	if (kms_uri_is_kmstore(what)) {
		if (kms_uri_parse(what, &uri, &e) != KMS_OK)
			return fail(out, &e);
		if (uri.profile == NULL) {
			kms_uri_clear(&uri);
			/* Quoted and named: "kmstore: kmstore: names ..."
			 * read as a doubled prefix, not as the URI. */
			return usage_fail(out, "URI '%s' names no profile "
					  "(kmstore:profile=NAME)", what);
		}
		if (uri.key_id != NULL && key_id != NULL) {
			kms_uri_clear(&uri);
			return usage_fail(out, "URI '%s' has a key-id and "
					  "--key-id is given too", what);
		}
		name = uri.profile;
		if (uri.key_id != NULL)
			key_id = uri.key_id;
	}
	rc = open_profile(o, name, &store, &p, &e);
	if (rc == KMS_OK) {
		rc = key_id != NULL ? kms_profile_get_key_by_id(p, key_id, &key, &e)
				    : kms_profile_get_key(p, &key, &e);
		kms_store_free(store);
	}
	kms_uri_clear(&uri);
	if (rc != KMS_OK)
		return fail(out, &e);
	rc = output_key(out, key, o->reveal) == 0 ? KMS_OK : KMS_ERR_SYSTEM;
	kms_key_free(key);
	return finish(out, rc);
}

static int cmd_check(const struct options *o, struct output *out)
{
	kms_store *store;
	int status = 0;
	kms_error e;

	output_check_begin(out);
	if (open_store(o, &store, &e) != KMS_OK) {
		fail(out, &e);
		return EXIT_CHECK_FAILED;
	}
	for (size_t i = 0; i < kms_store_profile_count(store); i++) {
		kms_profile *p = kms_store_profile_at(store, i);
		kms_rc rc = kms_profile_check(p, &e);

		if (rc == KMS_OK)
			rc = kms_profile_check_dates(p, &e);
		output_check(out, p, rc == KMS_OK ? NULL : &e);
		if (rc != KMS_OK)
			status = EXIT_CHECK_FAILED;
	}
	if (kms_store_profile_count(store) == 0) {
		/* An error like any other, so --json says why it failed. */
		kms_fail(&e, KMS_ERR_CONFIG, "%s defines no profile",
			 kms_store_path(store));
		output_error(out, &e);
		status = EXIT_CHECK_FAILED;
	}
	kms_store_free(store);
	return finish(out, status);
}

/* Where reload and metrics go: --daemon's socket; else a client
 * configuration's (daemon = SOCKET), which every other command asks too;
 * else kmstored's default one. A file given with --config must be a
 * client configuration: a file of profiles names no kmstored. The file
 * found without it ($KMSTORE_CONF, the default path) is only looked at:
 * it is most often kmstored's own, which root may not read (owned by
 * kmstored's user) or which is broken (the reload says why), and the
 * request must go all the same. */
static kms_rc daemon_socket(const struct options *o, const char *cmd,
			    char **socket, kms_error *e)
{
	kms_rc rc;

	if (o->daemon != NULL) {
		*socket = strdup(o->daemon);
	} else {
		rc = kms_store_client_socket(o->config, socket, e);
		if (o->config != NULL && rc != KMS_OK)
			return rc;
		if (o->config != NULL && *socket == NULL)
			return kms_fail(e, KMS_ERR_USAGE,
					"'%s' goes to kmstored, and %s is not a client "
					"configuration (daemon = SOCKET): give --daemon "
					"SOCKET", cmd, o->config);
		if (*socket == NULL)
			*socket = strdup(KMS_DEFAULT_SOCKET);
	}
	if (*socket == NULL)
		return kms_fail(e, KMS_ERR_SYSTEM, "out of memory");
	return KMS_OK;
}

/* reload and metrics: a request to kmstored and the text it answers. */
static int cmd_daemon_text(const struct options *o, struct output *out,
			   const char *cmd, enum kms_wire_kind kind)
{
	char *socket, *text;
	kms_error e;
	kms_rc rc;

	if (daemon_socket(o, cmd, &socket, &e) != KMS_OK)
		return fail(out, &e);
	rc = kms_daemon_text(socket, kind, &text, &e);
	free(socket);
	if (rc != KMS_OK)
		return fail(out, &e);
	output_text(out, kind == KMS_WIRE_RELOAD ? "message" : "metrics", text);
	free(text);
	return finish(out, 0);
}

static int parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "daemon", required_argument, NULL, 'd' },
		{ "key-id", required_argument, NULL, 'k' },
		{ "reveal", optional_argument, NULL, 'r' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "c:d:k:r::jhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			o->config = optarg;
			break;
		case 'd':
			o->daemon = optarg;
			break;
		case 'k':
			o->key_id = optarg;
			break;
		case 'r':
			/* The format is optional: "--reveal", "--reveal=hex" and
			 * "--reveal hex" (the word after it, if it is a format). */
			if (optarg == NULL && optind < argc &&
			    (strcmp(argv[optind], "hex") == 0 ||
			     strcmp(argv[optind], "base64") == 0))
				optarg = argv[optind++];
			if (optarg == NULL || strcmp(optarg, "hex") == 0)
				o->reveal = REVEAL_HEX;
			else if (strcmp(optarg, "base64") == 0)
				o->reveal = REVEAL_BASE64;
			else
				return usage_error("--reveal takes hex or base64, "
						   "not '%s'", optarg);
			break;
		case 'j':
			o->json = true;
			break;
		case 'h':
			usage(stdout);
			exit(printed());
		case 'V':
			printf("kmstore %s\n", kms_version());
			exit(printed());
		default:
			fputs("Try 'kmstore --help'.\n", stderr);
			return KMS_ERR_USAGE;
		}
	}
	if (o->config != NULL && o->daemon != NULL)
		return usage_error("%s", "give --config or --daemon, not both");
	return 0;
}

/* Which arguments each command takes, so misuse is caught in one place. */
static int check_arguments(const char *cmd, int nargs, const struct options *o)
{
	int want = strcmp(cmd, "status") == 0 || strcmp(cmd, "key") == 0;

	if (nargs != want)
		return usage_error(want ? "'%s' takes one argument"
					: "'%s' takes no argument", cmd);
	if (strcmp(cmd, "key") != 0 && (o->key_id != NULL || o->reveal != REVEAL_NONE))
		return usage_error("--key-id and --reveal go with 'key', not '%s'",
				   cmd);
	return 0;
}

int main(int argc, char **argv)
{
	struct options o = { 0 };
	struct output *out;
	const char *cmd;
	int rc;

	rc = parse_options(argc, argv, &o);
	if (rc != 0)
		return rc;
	if (optind == argc)
		return usage_error("%s", "no command given");
	cmd = argv[optind++];
	if (strcmp(cmd, "help") == 0) {
		usage(stdout);
		return printed();
	}
	if (strcmp(cmd, "profiles") != 0 && strcmp(cmd, "status") != 0 &&
	    strcmp(cmd, "key") != 0 && strcmp(cmd, "check") != 0 &&
	    strcmp(cmd, "reload") != 0 && strcmp(cmd, "metrics") != 0)
		return usage_error("unknown command '%s'", cmd);
	rc = check_arguments(cmd, argc - optind, &o);
	if (rc != 0)
		return rc;
	out = output_new(o.json);
	if (out == NULL) {
		fprintf(stderr, "kmstore: out of memory\n");
		return KMS_ERR_SYSTEM;
	}
	if (strcmp(cmd, "profiles") == 0)
		return cmd_profiles(&o, out);
	if (strcmp(cmd, "status") == 0)
		return cmd_status(&o, out, argv[optind]);
	if (strcmp(cmd, "key") == 0)
		return cmd_key(&o, out, argv[optind]);
	if (strcmp(cmd, "reload") == 0)
		return cmd_daemon_text(&o, out, cmd, KMS_WIRE_RELOAD);
	if (strcmp(cmd, "metrics") == 0)
		return cmd_daemon_text(&o, out, cmd, KMS_WIRE_METRICS);
	return cmd_check(&o, out);
}
