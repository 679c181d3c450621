/* qkd.c - QKD profiles: keys from a KME over ETSI GS QKD 014, with mutual
 * TLS. This file holds the profile (settings, checks); the HTTPS client is
 * in etsi014.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "fileio.h"
#include "profile.h"
#include "qkd.h"
#include "secmem.h"
#include "validate.h"

#define SAE_ID_MAX 64
#define DEFAULT_KEY_BITS 256
#define DEFAULT_TIMEOUT_MS 5000
#define PREFETCH_MAX 4096
#define DEFAULT_MAX_AGE_S 300

static const struct kms_field qkd_fields[] = {
	{ "url", KMS_FIELD_REQUIRED },
	{ "local-sae-id", KMS_FIELD_REQUIRED },
	{ "peer-sae-id", KMS_FIELD_REQUIRED },
	{ "certificate", KMS_FIELD_REQUIRED },
	{ "private-key", KMS_FIELD_REQUIRED },
	{ "ca", KMS_FIELD_REQUIRED },
	{ "key-size", 0 },
	{ "timeout", 0 },
	/* kmstored's key pool and outage policy */
	{ "prefetch", 0 },
	{ "prefetch-low", 0 },
	{ "prefetch-max-age", 0 },
	{ "outage", 0 },
	{ NULL, 0 },
};

/* https only, a host, no credentials, query or fragment: the ETSI paths
 * are appended to it. */
static kms_rc check_url(const kms_profile *p, const struct kms_setting *s,
			const char *url, kms_error *err)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *part = NULL;
	const char *why = NULL;

	if (u == NULL)
		return kms_fail(err, KMS_ERR_SYSTEM, "out of memory");
	if (strlen(url) >= KMS_URL_MAX)
		why = "is longer than 255 bytes";
	else if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
		why = "is not a valid URL";
	else if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
		 strcmp(scheme, "https") != 0)
		why = "must be an https:// URL (ETSI GS QKD 014 runs over TLS)";
	else if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
		why = "has no host";
	else if (curl_url_get(u, CURLUPART_USER, &part, 0) == CURLUE_OK)
		why = "must not carry a user name or password";
	else if (curl_url_get(u, CURLUPART_QUERY, &part, 0) == CURLUE_OK ||
		 curl_url_get(u, CURLUPART_FRAGMENT, &part, 0) == CURLUE_OK)
		why = "must not have a query or fragment";
	curl_free(scheme);
	curl_free(host);
	curl_free(part);
	curl_url_cleanup(u);
	/* The value is not quoted back: it may hold a password. */
	if (why != NULL)
		return kms_setting_fail(p, s, err, KMS_ERR_CONFIG, "%s%s", why,
					strchr(s->value, ' ') || strchr(s->value, '\t') ?
						" (one of the URLs)" : "");
	return KMS_OK;
}

/* "url = A [B ...]": the KMEs, first choice first, for failover. */
static kms_rc split_urls(kms_profile *p, const struct kms_setting *s,
			 struct kms_qkd_config *c, kms_error *err)
{
	char *copy = strdup(s->value), *save = NULL;
	kms_rc rc = KMS_OK;

	if (copy == NULL)
		return kms_fail(err, KMS_ERR_SYSTEM, "out of memory");
	for (char *u = strtok_r(copy, " \t", &save); u != NULL && rc == KMS_OK;
	     u = strtok_r(NULL, " \t", &save)) {
		if (c->n_urls == KMS_KMES_MAX) {
			rc = kms_setting_fail(p, s, err, KMS_ERR_CONFIG,
					      "more than %d KMEs", KMS_KMES_MAX);
			break;
		}
		rc = check_url(p, s, u, err);
		for (size_t i = 0; rc == KMS_OK && i < c->n_urls; i++)
			if (strcmp(c->urls[i], u) == 0)
				rc = kms_setting_fail(p, s, err, KMS_ERR_CONFIG,
						      "a KME is named twice");
		if (rc == KMS_OK && (c->urls[c->n_urls++] = strdup(u)) == NULL)
			rc = kms_fail(err, KMS_ERR_SYSTEM, "out of memory");
	}
	free(copy);
	return rc;
}

/* kmstored's pool: prefetch = N keys, refilled below prefetch-low (half
 * by default), none older than prefetch-max-age seconds; outage = drain
 * or fail. */
static kms_rc pool_settings(kms_profile *p, struct kms_qkd_config *c,
			    kms_error *err)
{
	const struct kms_setting *s;
	long age = DEFAULT_MAX_AGE_S;
	kms_rc rc;

	s = kms_profile_find(p, "prefetch");
	if (s != NULL &&
	    (rc = kms_setting_long(p, s, 0, PREFETCH_MAX, &c->prefetch, err)) != KMS_OK)
		return rc;
	c->prefetch_low = (c->prefetch + 1) / 2;
	s = kms_profile_find(p, "prefetch-low");
	/* (0 was always taken, and still is: a file that loaded still does) */
	if (s != NULL && c->prefetch == 0 && strcmp(s->value, "0") != 0)
		return kms_setting_fail(p, s, err, KMS_ERR_CONFIG,
					"needs prefetch: it is when the pool of "
					"prefetch keys is refilled, and without "
					"prefetch there is no pool");
	if (s != NULL &&
	    (rc = kms_setting_long(p, s, 0, c->prefetch > 0 ? c->prefetch - 1 : 0,
				   &c->prefetch_low, err)) != KMS_OK)
		return rc;
	s = kms_profile_find(p, "prefetch-max-age");
	if (s != NULL && (rc = kms_setting_long(p, s, 1, 86400, &age, err)) != KMS_OK)
		return rc;
	c->prefetch_max_age_ms = age * 1000;
	s = kms_profile_find(p, "outage");
	if (s == NULL || strcmp(s->value, "drain") == 0)
		c->outage = KMS_OUTAGE_DRAIN;
	else if (strcmp(s->value, "fail") == 0)
		c->outage = KMS_OUTAGE_FAIL;
	else
		return kms_setting_fail(p, s, err, KMS_ERR_CONFIG,
					"'%.32s' is not drain or fail", s->value);
	return KMS_OK;
}

static kms_rc check_sae(const kms_profile *p, const struct kms_setting *s,
			kms_error *err)
{
	kms_error why;

	if (kms_check_token("SAE ID", s->value, strlen(s->value), SAE_ID_MAX,
			    &why) != KMS_OK)
		return kms_setting_fail(p, s, err, KMS_ERR_CONFIG, "%s",
					why.message);
	return KMS_OK;
}

/* Seconds, with a fraction if wanted ("2.5"). */
static kms_rc parse_timeout(const kms_profile *p, const struct kms_setting *s,
			    long *ms, kms_error *err)
{
	char *end;
	double v = strtod(s->value, &end);

	if (end == s->value || *end != '\0')
		return kms_setting_fail(p, s, err, KMS_ERR_CONFIG,
					"'%.32s' is not a number of seconds in decimal "
					"digits, with a fraction after a '.' (from 0.1 "
					"to 300)", s->value);
	if (!(v >= 0.1 && v <= 300))
		return kms_setting_fail(p, s, err, KMS_ERR_CONFIG,
					"'%.32s' is not a number of seconds from "
					"0.1 to 300", s->value);
	/* strtod also takes "0x10", "1e1" and a sign: a file that loaded
	 * before still does, told how it was read. */
	if (!kms_is_decimal(s->value, 1))
		kms_log(KMS_LOG_WARNING, "%s:%u: profile '%s': timeout: '%.32s' "
			"is read as %g s; write plain decimal digits", p->file,
			s->line, p->name, s->value, v);
	*ms = (long)(v * 1000 + 0.5);
	return KMS_OK;
}

static kms_rc set_path(kms_profile *p, const char *name, char **out,
		       kms_error *err)
{
	*out = kms_profile_path(p, kms_profile_find(p, name)->value);
	if (*out == NULL)
		return kms_fail(err, KMS_ERR_SYSTEM, "out of memory");
	return KMS_OK;
}

static kms_rc qkd_configure(kms_profile *p, kms_error *err)
{
	const struct kms_setting *s;
	struct kms_qkd_config *c;
	kms_rc rc;

	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return kms_fail(err, KMS_ERR_SYSTEM, "out of memory");
	p->state = c;
	c->key_bits = DEFAULT_KEY_BITS;
	c->timeout_ms = DEFAULT_TIMEOUT_MS;
	s = kms_profile_find(p, "url");
	if ((rc = split_urls(p, s, c, err)) != KMS_OK)
		return rc;
	c->url = s->value;
	if ((rc = pool_settings(p, c, err)) != KMS_OK)
		return rc;
	s = kms_profile_find(p, "local-sae-id");
	if ((rc = check_sae(p, s, err)) != KMS_OK)
		return rc;
	c->local_sae = s->value;
	s = kms_profile_find(p, "peer-sae-id");
	if ((rc = check_sae(p, s, err)) != KMS_OK)
		return rc;
	c->peer_sae = s->value;
	if (strcmp(c->local_sae, c->peer_sae) == 0)
		return kms_setting_fail(p, s, err, KMS_ERR_CONFIG,
					"is the same as local-sae-id");
	s = kms_profile_find(p, "key-size");
	if (s != NULL &&
	    (rc = kms_setting_long(p, s, KMS_KEY_MIN * 8, KMS_KEY_MAX * 8,
				   &c->key_bits, err)) != KMS_OK)
		return rc;
	if (c->key_bits % 8 != 0)
		return kms_setting_fail(p, s, err, KMS_ERR_CONFIG,
					"%ld bits is not a whole number of bytes",
					c->key_bits);
	s = kms_profile_find(p, "timeout");
	if (s != NULL && (rc = parse_timeout(p, s, &c->timeout_ms, err)) != KMS_OK)
		return rc;
	if ((rc = set_path(p, "certificate", &c->certificate, err)) != KMS_OK ||
	    (rc = set_path(p, "private-key", &c->private_key, err)) != KMS_OK ||
	    (rc = set_path(p, "ca", &c->ca, err)) != KMS_OK)
		return rc;
	p->key_size = (size_t)c->key_bits / 8;
	return kms_qkd_client_new(p, err);
}

/* PEM files: the certificate and the CA bundle must parse, the private key
 * must be private and match the certificate, so "kmstore check" finds what
 * would otherwise surface as a TLS handshake failure at 3 a.m. */
static kms_rc read_pem_cert(const kms_profile *p, const char *setting,
			    const char *path, X509 **out, kms_error *err)
{
	FILE *f = fopen(path, "re");

	*out = NULL;
	if (f == NULL)
		return kms_setting_fail(p, kms_profile_find(p, setting), err,
					KMS_ERR_CONFIG, "cannot open %s: %m", path);
	*out = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (*out == NULL)
		return kms_setting_fail(p, kms_profile_find(p, setting), err,
					KMS_ERR_CONFIG,
					"%s holds no PEM certificate", path);
	return KMS_OK;
}

kms_rc kms_qkd_read_tls_key(const struct kms_qkd_config *c, uint8_t **pem,
			    size_t *len, kms_error *err)
{
	return kms_read_private(c->private_key, "TLS private key",
				KMS_TLS_KEY_MAX, 1, pem, len, err);
}

/* PKCS#8's encrypted form, or the traditional one's header. Asked for a
 * passphrase, OpenSSL would prompt on the terminal, and libcurl 7.88
 * crashes (strlen of its missing password). */
kms_rc kms_qkd_tls_key_plain(const struct kms_qkd_config *c, const uint8_t *pem,
			     size_t len, kms_error *err)
{
	static const char pkcs8[] = "-----BEGIN ENCRYPTED PRIVATE KEY-----";
	static const char legacy[] = "Proc-Type: 4,ENCRYPTED";

	if (memmem(pem, len, pkcs8, sizeof(pkcs8) - 1) == NULL &&
	    memmem(pem, len, legacy, sizeof(legacy) - 1) == NULL)
		return KMS_OK;
	return kms_fail(err, KMS_ERR_CONFIG,
			"TLS private key %s is encrypted: kmstore has no "
			"passphrase to give; store it unencrypted, readable "
			"only by its user (openssl pkey -in KEY -out NEW)",
			c->private_key);
}

/* No prompt on the terminal for a passphrase. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

static kms_rc check_private_key(const kms_profile *p,
				const struct kms_qkd_config *c, X509 *cert,
				kms_error *err)
{
	const struct kms_setting *s = kms_profile_find(p, "private-key");
	EVP_PKEY *pkey = NULL;
	kms_error why;
	uint8_t *pem;
	size_t len;
	BIO *bio;
	int match;

	if (kms_qkd_read_tls_key(c, &pem, &len, &why) != KMS_OK)
		return kms_setting_fail(p, s, err, why.code, "%s", why.message);
	if (kms_qkd_tls_key_plain(c, pem, len, &why) != KMS_OK) {
		kms_secmem_free(pem, KMS_TLS_KEY_MAX + 1);
		return kms_setting_fail(p, s, err, why.code, "%s", why.message);
	}
	bio = BIO_new_mem_buf(pem, (int)len);
	if (bio != NULL)
		pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
	BIO_free(bio);
	kms_secmem_free(pem, KMS_TLS_KEY_MAX + 1);
	if (pkey == NULL)
		return kms_setting_fail(p, s, err, KMS_ERR_CONFIG,
					"%s holds no unencrypted PEM private key",
					c->private_key);
	match = X509_check_private_key(cert, pkey);
	EVP_PKEY_free(pkey);
	if (!match)
		return kms_setting_fail(p, s, err, KMS_ERR_CONFIG,
					"%s does not match the certificate",
					c->private_key);
	return KMS_OK;
}

/* The CA is the only trust anchor for the KME, and the certificate names
 * this SAE: neither may be writable by others. */
static kms_rc check_not_writable(const kms_profile *p, const char *setting,
				 const char *path, kms_error *err)
{
	struct stat st;

	if (stat(path, &st) == 0 && (st.st_mode & 022))
		return kms_setting_fail(p, kms_profile_find(p, setting), err,
					KMS_ERR_PERMISSION,
					"%s is writable by group or others (mode "
					"%04o); fix: chmod go-w %s", path,
					(unsigned)(st.st_mode & 07777), path);
	return KMS_OK;
}

static kms_rc qkd_check(kms_profile *p, kms_error *err)
{
	struct kms_qkd_config *c = p->state;
	X509 *cert, *ca;
	kms_rc rc;

	if ((rc = check_not_writable(p, "ca", c->ca, err)) != KMS_OK ||
	    (rc = check_not_writable(p, "certificate", c->certificate, err)) != KMS_OK)
		return rc;
	rc = read_pem_cert(p, "ca", c->ca, &ca, err);
	X509_free(ca);
	if (rc != KMS_OK)
		return rc;
	rc = read_pem_cert(p, "certificate", c->certificate, &cert, err);
	if (rc == KMS_OK)
		rc = check_private_key(p, c, cert, err);
	X509_free(cert);
	return rc;
}

/* A certificate this close to its end is warned of at each check. */
#define CERT_WARN_DAYS 30

/* "Jan  1 00:00:00 2021 GMT", as openssl x509 -dates prints it. */
static void time_text(const ASN1_TIME *t, char *buf, int size)
{
	BIO *out = BIO_new(BIO_s_mem());
	int n = out != NULL && ASN1_TIME_print(out, t) ?
			BIO_read(out, buf, size - 1) : -1;

	BIO_free(out);
	snprintf(buf + (n > 0 ? n : 0), (size_t)size - (size_t)(n > 0 ? n : 0),
		 "%s", n > 0 ? "" : "(a date OpenSSL cannot print)");
}

/* Where a certificate is in its dates now: 0 valid, else -1 not yet, 1
 * ended; when, the date that says so (or its end, for a valid one). A
 * valid one that ends within CERT_WARN_DAYS is warned of. */
static int cert_dates(const kms_profile *p, const struct kms_setting *s,
		      const char *path, X509 *cert, char *when, int size)
{
	const ASN1_TIME *end = X509_get0_notAfter(cert);
	time_t now = time(NULL);
	int begun, days, secs;

	/* 1: after now, -2: unreadable; a time equal to now has passed, as
	 * for X509_cmp_current_time (deprecated in 4.0) */
	begun = ASN1_TIME_cmp_time_t(X509_get0_notBefore(cert), now);
	if (begun == 1 || begun == -2) {
		time_text(X509_get0_notBefore(cert), when, size);
		return -1;
	}
	time_text(end, when, size);
	if (ASN1_TIME_cmp_time_t(end, now) != 1)
		return 1;
	if (ASN1_TIME_diff(&days, &secs, NULL, end) && days < CERT_WARN_DAYS)
		kms_log(KMS_LOG_WARNING, "%s:%u: profile '%s': %s: %s expires "
			"on %s, in %d day%s: renew it before then", p->file,
			s != NULL ? s->line : p->line, p->name, s->name, path,
			when, days, days == 1 ? "" : "s");
	return 0;
}

/* The SAE's certificate: the KME refuses it out of its dates. */
static kms_rc check_own_dates(const kms_profile *p, const char *path,
			      kms_error *err)
{
	const struct kms_setting *s = kms_profile_find(p, "certificate");
	char when[64];
	X509 *cert;
	kms_rc rc = read_pem_cert(p, "certificate", path, &cert, err);
	int where;

	if (rc != KMS_OK)
		return rc;
	where = cert_dates(p, s, path, cert, when, sizeof(when));
	X509_free(cert);
	if (where < 0)
		return kms_setting_fail(p, s, err, KMS_ERR_CONFIG,
					"%s is not valid before %s (is this "
					"host's clock right?)", path, when);
	if (where > 0)
		return kms_setting_fail(p, s, err, KMS_ERR_CONFIG,
					"%s expired on %s: the KME refuses it; "
					"renew it", path, when);
	return KMS_OK;
}

/* The CA file may hold several (a rollover keeps the old CA beside the
 * new): one valid now is enough to trust a KME. */
static kms_rc check_ca_dates(const kms_profile *p, const char *path,
			     kms_error *err)
{
	const struct kms_setting *s = kms_profile_find(p, "ca");
	FILE *f = fopen(path, "re");
	char when[64] = "", last[96] = "";
	int n = 0, valid = 0, where;
	X509 *cert;

	if (f == NULL)
		return kms_setting_fail(p, s, err, KMS_ERR_CONFIG,
					"cannot open %s: %m", path);
	while ((cert = PEM_read_X509(f, NULL, NULL, NULL)) != NULL) {
		n++;
		where = cert_dates(p, s, path, cert, when, sizeof(when));
		if (where == 0)
			valid++;
		else
			snprintf(last, sizeof(last), "%s %s", where > 0 ?
				 "ended on" : "is not valid before", when);
		X509_free(cert);
	}
	ERR_clear_error(); /* the end of the file, as PEM reads it */
	fclose(f);
	if (n == 0)
		return kms_setting_fail(p, s, err, KMS_ERR_CONFIG,
					"%s holds no PEM certificate", path);
	if (valid == 0)
		return kms_setting_fail(p, s, err, KMS_ERR_CONFIG,
					"no CA certificate in %s is valid now (the "
					"last one %s; is this host's clock right?): "
					"kmstore cannot trust the KME; renew it",
					path, last);
	return KMS_OK;
}

static kms_rc qkd_check_dates(kms_profile *p, kms_error *err)
{
	struct kms_qkd_config *c = p->state;
	kms_rc rc = check_own_dates(p, c->certificate, err);

	return rc == KMS_OK ? check_ca_dates(p, c->ca, err) : rc;
}

static void qkd_release(kms_profile *p)
{
	struct kms_qkd_config *c = p->state;

	kms_qkd_client_free(c->client);
	for (size_t i = 0; i < c->n_urls; i++)
		free(c->urls[i]);
	free(c->certificate);
	free(c->private_key);
	free(c->ca);
	free(c);
	p->state = NULL;
}

const struct kms_profile_type kms_qkd_type = {
	.name = "qkd",
	.fields = qkd_fields,
	.configure = qkd_configure,
	.check = qkd_check,
	.check_dates = qkd_check_dates,
	.get_key = kms_qkd_get_key,
	.get_key_by_id = kms_qkd_get_key_by_id,
	.status = kms_qkd_status,
	.release = qkd_release,
	.single_use = 1,
};
