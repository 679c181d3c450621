/*
 * kme-sim: the KME / QKD-link model (see kme.h).
 */
#include "kme.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <math.h>
#include <search.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A key delivered to its master SAE and not yet retrieved by its slave. */
struct pending {
	struct pending *prev, *next;
	char id[KME_UUID_LEN];
	const char *master; /* points into the KME table, which never moves */
	const char *slave;
	unsigned char *bytes;
	size_t len;
};

struct kme_link {
	double level;          /* keys of the default size in the pool */
	struct timespec last;  /* when level was last brought up to date */
	struct pending *head;  /* oldest first, so eviction takes the head */
	struct pending *tail;
	size_t n_pending;
	void *by_id;           /* the same keys by ID and master (tsearch) */
};

static void wipe_free(void *p, size_t len)
{
	if (p != NULL)
		gnutls_memset(p, 0, len);
	free(p);
}

__attribute__((format(printf, 5, 6)))
static int fail(struct kme_result *r, int status, const char *dname,
		const char *dval, const char *fmt, ...)
{
	va_list ap;

	r->status = status;
	va_start(ap, fmt);
	vsnprintf(r->message, sizeof(r->message), fmt, ap);
	va_end(ap);
	snprintf(r->detail_name, sizeof(r->detail_name), "%s", dname);
	snprintf(r->detail_value, sizeof(r->detail_value), "%s", dval);
	return status;
}

static int succeed(struct kme_result *r)
{
	memset(r, 0, sizeof(*r));
	r->status = 200;
	return 200;
}

/* Links are stored for i < j in row order: (0,1) (0,2) ... (1,2) ... */
static struct kme_link *link_between(struct kme_model *m, size_t i, size_t j)
{
	size_t lo = i < j ? i : j, hi = i < j ? j : i;
	size_t idx = lo * m->n_kmes - lo * (lo + 1) / 2 + (hi - lo - 1);

	return &m->links[idx];
}

static double seconds_between(const struct timespec *a,
			      const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) +
	       (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

/* The pool is brought up to date lazily, whenever someone looks at it. An
 * infinite rate keeps it full; rate 0 never refills it, which makes
 * exhaustion testable. */
static void link_refill(struct kme_link *l, const struct kme_settings *s)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (isinf(s->key_rate)) {
		l->level = s->pool_size;
	} else if (s->key_rate > 0) {
		l->level += seconds_between(&l->last, &now) * s->key_rate;
		if (l->level > s->pool_size)
			l->level = s->pool_size;
	}
	l->last = now;
}

/* A dec_keys looks its keys up by ID, twice each: a walk of the list
 * would grow with every key not retrieved (a peer that never asks, a long
 * load test), which a real KME's lookup does not. */
static int pending_cmp(const void *a, const void *b)
{
	const struct pending *x = a, *y = b;
	int c = strcmp(x->id, y->id);

	return c != 0 ? c : strcmp(x->master, y->master);
}

static void pending_unlink(struct kme_link *l, struct pending *p)
{
	tdelete(p, &l->by_id, pending_cmp);
	if (p->prev != NULL)
		p->prev->next = p->next;
	else
		l->head = p->next;
	if (p->next != NULL)
		p->next->prev = p->prev;
	else
		l->tail = p->prev;
	l->n_pending--;
}

static void pending_free(struct pending *p)
{
	wipe_free(p->bytes, p->len);
	free(p);
}

static int pending_append(struct kme_link *l, struct pending *p)
{
	if (tsearch(p, &l->by_id, pending_cmp) == NULL)
		return -1;
	p->next = NULL;
	p->prev = l->tail;
	if (l->tail != NULL)
		l->tail->next = p;
	else
		l->head = p;
	l->tail = p;
	l->n_pending++;
	return 0;
}

int kme_model_init(struct kme_model *m, struct kme *kmes, size_t n,
		   const struct kme_settings *set)
{
	struct timespec now;

	memset(m, 0, sizeof(*m));
	m->kmes = kmes;
	m->n_kmes = n;
	m->set = *set;
	atomic_init(&m->n_ids, 0);
	m->n_links = n * (n - 1) / 2;
	m->links = calloc(m->n_links ? m->n_links : 1, sizeof(*m->links));
	if (m->links == NULL)
		return -1;
	clock_gettime(CLOCK_MONOTONIC, &now);
	for (size_t i = 0; i < m->n_links; i++) {
		m->links[i].level = set->pool_size;
		m->links[i].last = now;
	}
	return pthread_mutex_init(&m->lock, NULL) == 0 ? 0 : -1;
}

static void no_free(void *p)
{
	(void)p; /* the list's loop frees the keys */
}

void kme_model_free(struct kme_model *m)
{
	for (size_t i = 0; i < m->n_links; i++) {
		struct pending *p = m->links[i].head, *next;

		for (; p != NULL; p = next) {
			next = p->next;
			pending_free(p);
		}
		tdestroy(m->links[i].by_id, no_free);
	}
	free(m->links);
	for (size_t i = 0; i < m->n_kmes; i++) {
		for (size_t j = 0; j < m->kmes[i].n_saes; j++)
			free(m->kmes[i].saes[j]);
		free(m->kmes[i].saes);
		free(m->kmes[i].id);
	}
	free(m->kmes);
	pthread_mutex_destroy(&m->lock);
	memset(m, 0, sizeof(*m));
}

bool kme_has_sae(const struct kme *k, const char *sae)
{
	for (size_t i = 0; i < k->n_saes; i++)
		if (strcmp(k->saes[i], sae) == 0)
			return true;
	return false;
}

int kme_home_of(const struct kme_model *m, const char *sae)
{
	for (size_t i = 0; i < m->n_kmes; i++)
		if (kme_has_sae(&m->kmes[i], sae))
			return (int)i;
	return -1;
}

/* The KME at the other end of the link to `sae`, which must be attached to
 * a KME of this process other than `at`; -1 with a 400 otherwise. */
static int peer_kme(const struct kme_model *m, size_t at, const char *sae,
		    const char *role, struct kme_result *res)
{
	int home = kme_home_of(m, sae);

	if (home < 0) {
		fail(res, 400, role, sae,
		     "%s SAE '%s' is not attached to any KME of this simulator",
		     role, sae);
		return -1;
	}
	if ((size_t)home == at) {
		fail(res, 400, role, sae,
		     "%s SAE '%s' is attached to this KME (%s): no QKD link "
		     "to itself", role, sae, m->kmes[at].id);
		return -1;
	}
	return home;
}

int kme_status_of(struct kme_model *m, size_t at, const char *caller,
		  const char *slave, struct kme_status *out,
		  struct kme_result *res)
{
	int peer = peer_kme(m, at, slave, "slave", res);
	struct kme_link *l;

	if (peer < 0)
		return res->status;
	l = link_between(m, at, (size_t)peer);
	pthread_mutex_lock(&m->lock);
	link_refill(l, &m->set);
	out->stored_key_count = (unsigned long)floor(l->level);
	pthread_mutex_unlock(&m->lock);

	out->source_kme = m->kmes[at].id;
	out->target_kme = m->kmes[peer].id;
	out->master_sae = caller;
	out->slave_sae = slave;
	out->key_size = m->set.key_size;
	out->max_key_count = m->set.pool_size;
	out->max_key_per_request = m->set.max_keys_per_request;
	out->max_key_size = m->set.max_key_size;
	out->min_key_size = m->set.min_key_size;
	return succeed(res);
}

void kme_new_uuid(char out[KME_UUID_LEN])
{
	unsigned char b[16];

	gnutls_rnd(GNUTLS_RND_NONCE, b, sizeof(b));
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	snprintf(out, KME_UUID_LEN,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
		 "%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9],
		 b[10], b[11], b[12], b[13], b[14], b[15]);
}

int kme_random_key(struct kme_key *k, const char *id, size_t len)
{
	snprintf(k->id, sizeof(k->id), "%s", id);
	k->len = len;
	k->bytes = malloc(len ? len : 1);
	if (k->bytes == NULL)
		return -1;
	return gnutls_rnd(GNUTLS_RND_RANDOM, k->bytes, len) == 0 ? 0 : -1;
}

void kme_keys_free(struct kme_keys *keys)
{
	for (size_t i = 0; i < keys->n; i++)
		wipe_free(keys->v[i].bytes, keys->v[i].len);
	free(keys->v);
	keys->v = NULL;
	keys->n = 0;
}

/* A key's ID: a random UUID, or with sequential_ids a UUID-shaped counter
 * (00000000-0000-4000-8000-000000000001, ...) so that logs of a test run
 * are the same every time. */
static void new_key_id(struct kme_model *m, char out[KME_UUID_LEN])
{
	unsigned long n;

	if (!m->set.sequential_ids) {
		kme_new_uuid(out);
		return;
	}
	n = atomic_fetch_add(&m->n_ids, 1) + 1;
	/* 48 bits do not fit in a 32-bit long (i386, armhf). */
	snprintf(out, KME_UUID_LEN, "00000000-0000-4000-8000-%012llx",
		 (unsigned long long)n & 0xffffffffffffULL);
}

/* Make `number` keys and their pending copies, before taking the lock. */
static int make_keys(struct kme_model *m, struct kme_keys *out,
		     struct pending **pend, unsigned number, size_t len, const char *master,
		     const char *slave)
{
	out->v = calloc(number, sizeof(*out->v));
	if (out->v == NULL)
		return -1;
	for (unsigned i = 0; i < number; i++) {
		char uuid[KME_UUID_LEN];

		new_key_id(m, uuid);
		out->n = i + 1;
		pend[i] = calloc(1, sizeof(**pend));
		if (pend[i] == NULL || kme_random_key(&out->v[i], uuid, len))
			return -1;
		pend[i]->bytes = malloc(len ? len : 1);
		if (pend[i]->bytes == NULL)
			return -1;
		memcpy(pend[i]->bytes, out->v[i].bytes, len);
		pend[i]->len = len;
		memcpy(pend[i]->id, uuid, sizeof(uuid));
		pend[i]->master = master;
		pend[i]->slave = slave;
	}
	return 0;
}

/* Keys nobody retrieves must not pile up forever in a long-running lab. */
static void evict_oldest(struct kme_link *l, unsigned max_pending,
			 const char *a, const char *b)
{
	while (l->n_pending > max_pending) {
		struct pending *p = l->head;

		fprintf(stderr, "kme-sim: link %s-%s: more than %u keys not "
			"retrieved, dropping the oldest, %s\n", a, b,
			max_pending, p->id);
		pending_unlink(l, p);
		pending_free(p);
	}
}

static int check_enc_request(const struct kme_settings *s, unsigned number,
			     unsigned bits, struct kme_result *res)
{
	char v[32];

	snprintf(v, sizeof(v), "%u", number);
	if (number < 1 || number > s->max_keys_per_request)
		return fail(res, 400, "number", v,
			    "number of keys must be 1 to %u",
			    s->max_keys_per_request);
	snprintf(v, sizeof(v), "%u", bits);
	if (bits % 8 != 0 || bits < s->min_key_size || bits > s->max_key_size)
		return fail(res, 400, "size", v,
			    "key size must be a multiple of 8 from %u to %u "
			    "bits", s->min_key_size, s->max_key_size);
	return 0;
}

/* Take the pool share of the new keys and record them for the slave. */
static int commit_keys(struct kme_model *m, struct kme_link *l,
		       struct pending **pend, unsigned number, double need,
		       size_t at, size_t peer, struct kme_result *res)
{
	char v[32];

	pthread_mutex_lock(&m->lock);
	link_refill(l, &m->set);
	if (l->level < need) {
		unsigned long have = (unsigned long)floor(l->level);

		pthread_mutex_unlock(&m->lock);
		snprintf(v, sizeof(v), "%lu", have);
		return fail(res, 503, "stored_key_count", v,
			    "not enough key material on link %s-%s: "
			    "stored_key_count %lu, %.0f needed (keys of %u "
			    "bits)", m->kmes[at].id, m->kmes[peer].id, have,
			    need, m->set.key_size);
	}
	l->level -= need;
	for (unsigned i = 0; i < number; i++) {
		if (pending_append(l, pend[i]) != 0) {
			/* those appended stay, undelivered, until evicted */
			pthread_mutex_unlock(&m->lock);
			return fail(res, 500, "", "", "out of memory");
		}
		pend[i] = NULL;
	}
	evict_oldest(l, m->set.max_pending, m->kmes[at].id, m->kmes[peer].id);
	pthread_mutex_unlock(&m->lock);
	return succeed(res);
}

/* The KME table's own copy of an SAE ID: pending keys outlive requests. */
static const char *sae_ref(const struct kme *k, const char *sae)
{
	for (size_t i = 0; i < k->n_saes; i++)
		if (strcmp(k->saes[i], sae) == 0)
			return k->saes[i];
	return NULL;
}

int kme_enc_keys(struct kme_model *m, size_t at, const char *caller,
		 const char *slave, unsigned number, unsigned bits,
		 struct kme_keys *out, struct kme_result *res)
{
	int peer = peer_kme(m, at, slave, "slave", res);
	const char *master = sae_ref(&m->kmes[at], caller);
	struct pending **pend;
	unsigned units;
	int st;

	memset(out, 0, sizeof(*out));
	if (peer < 0 || check_enc_request(&m->set, number, bits, res))
		return res->status;
	if (master == NULL)
		return fail(res, 401, "SAE_ID", caller,
			    "SAE '%s' is not attached to KME %s", caller,
			    m->kmes[at].id);
	pend = calloc(number, sizeof(*pend));
	if (pend == NULL || make_keys(m, out, pend, number, bits / 8, master,
				      sae_ref(&m->kmes[peer], slave))) {
		st = fail(res, 500, "", "", "out of memory or randomness");
	} else {
		/* A key of `bits` uses ceil(bits / key_size) pool keys. */
		units = (bits + m->set.key_size - 1) / m->set.key_size;
		st = commit_keys(m, link_between(m, at, (size_t)peer), pend,
				 number, (double)number * units, at,
				 (size_t)peer, res);
	}
	for (unsigned i = 0; pend != NULL && i < number; i++)
		if (pend[i] != NULL)
			pending_free(pend[i]);
	free(pend);
	if (st != 200)
		kme_keys_free(out);
	return st;
}

static struct pending *find_pending(struct kme_link *l, const char *id,
				    const char *master)
{
	struct pending want = { .master = master };
	void *found;

	if (strlen(id) >= sizeof(want.id))
		return NULL; /* longer than any key ID of ours */
	memcpy(want.id, id, strlen(id) + 1);
	found = tfind(&want, &l->by_id, pending_cmp);
	return found != NULL ? *(struct pending **)found : NULL;
}

static int check_dec_request(const struct kme_settings *s,
			     const char *const *ids, size_t n,
			     struct kme_result *res)
{
	if (n < 1 || n > s->max_keys_per_request)
		return fail(res, 400, "key_IDs", "",
			    "number of key_IDs must be 1 to %u",
			    s->max_keys_per_request);
	for (size_t i = 0; i < n; i++) {
		if (ids[i][0] == '\0' || strlen(ids[i]) > KME_ID_MAX)
			return fail(res, 400, "key_ID", "",
				    "key_ID must be 1 to %d characters",
				    KME_ID_MAX);
		for (size_t j = 0; j < i; j++)
			if (strcmp(ids[i], ids[j]) == 0)
				return fail(res, 400, "key_ID", ids[i],
					    "key_ID %s asked for twice",
					    ids[i]);
	}
	return 0;
}

/* All the keys asked for, or none: look everything up, then take. */
static int take_keys(struct kme_link *l, const char *caller,
		     const char *master, const char *const *ids, size_t n,
		     struct kme_keys *out, struct kme_result *res)
{
	for (size_t i = 0; i < n; i++) {
		struct pending *p = find_pending(l, ids[i], master);

		if (p == NULL)
			return fail(res, 400, "key_ID", ids[i],
				    "key %s not found or already retrieved",
				    ids[i]);
		if (strcmp(p->slave, caller) != 0)
			return fail(res, 401, "key_ID", ids[i],
				    "SAE '%s' is not the slave SAE of key %s",
				    caller, ids[i]);
	}
	for (size_t i = 0; i < n; i++) {
		struct pending *p = find_pending(l, ids[i], master);

		pending_unlink(l, p);
		snprintf(out->v[i].id, sizeof(out->v[i].id), "%s", p->id);
		out->v[i].bytes = p->bytes;
		out->v[i].len = p->len;
		out->n = i + 1;
		free(p);
	}
	return succeed(res);
}

int kme_dec_keys(struct kme_model *m, size_t at, const char *caller,
		 const char *master, const char *const *ids, size_t n_ids,
		 struct kme_keys *out, struct kme_result *res)
{
	int peer = peer_kme(m, at, master, "master", res);
	int st;

	memset(out, 0, sizeof(*out));
	if (peer < 0 || check_dec_request(&m->set, ids, n_ids, res))
		return res->status;
	out->v = calloc(n_ids, sizeof(*out->v));
	if (out->v == NULL)
		return fail(res, 500, "", "", "out of memory");
	pthread_mutex_lock(&m->lock);
	st = take_keys(link_between(m, at, (size_t)peer), caller, master, ids,
		       n_ids, out, res);
	pthread_mutex_unlock(&m->lock);
	if (st != 200)
		kme_keys_free(out);
	return st;
}
