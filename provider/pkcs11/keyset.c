/* keyset.c - the keys a token holds: token objects (found by ID, or
 * generated with CKA_TOKEN=TRUE) and session objects (generated, gone with
 * their session). At most params.max_keys per token: the least recently
 * used is destroyed (and wiped) to make room, so a long-running pluto does
 * not accumulate used PPKs. Called with the module lock held. */
#include <stdlib.h>
#include <string.h>

#include "module.h"

struct p11_object *p11_object_new(struct p11_token *t, kms_key *key,
				  CK_SESSION_HANDLE session, unsigned flags,
				  const char *label)
{
	struct p11_object *o = calloc(1, sizeof(*o));

	if (o == NULL)
		return NULL;
	o->label = strdup(label != NULL ? label : kms_key_id(key));
	if (o->label == NULL) {
		free(o);
		return NULL;
	}
	o->slot = t->id;
	o->session = session;
	o->key = key;
	o->flags = flags;
	return o;
}

void p11_object_free(struct p11_object *o)
{
	if (o == NULL)
		return;
	kms_key_free(o->key);
	free(o->label);
	free(o);
}

void p11_object_remove(struct p11_token *t, size_t index)
{
	p11_object_free(t->objects[index]);
	t->objects[index] = t->objects[--t->n_objects];
}

static void evict_lru(struct p11_token *t)
{
	size_t oldest = 0;

	for (size_t i = 1; i < t->n_objects; i++)
		if (t->objects[i]->last_used < t->objects[oldest]->last_used)
			oldest = i;
	p11_log(KMS_LOG_INFO, "token %s: dropping key %s (holding %zu keys at most)",
		kms_profile_name(t->profile), kms_key_id(t->objects[oldest]->key),
		p11.params.max_keys);
	p11_object_remove(t, oldest);
}

/* Takes o (freed on failure) and gives it a handle. */
CK_RV p11_token_add(struct p11_token *t, struct p11_object *o)
{
	if (t->objects == NULL) {
		t->objects = calloc(p11.params.max_keys, sizeof(*t->objects));
		if (t->objects == NULL) {
			p11_object_free(o);
			return CKR_HOST_MEMORY;
		}
	}
	if (t->n_objects == p11.params.max_keys)
		evict_lru(t);
	o->handle = p11.next_object++;
	o->last_used = ++p11.tick;
	t->objects[t->n_objects++] = o;
	return CKR_OK;
}

struct p11_object *p11_object_get(CK_OBJECT_HANDLE h, struct p11_token **tp,
				  size_t *index)
{
	for (size_t i = 0; i < p11.n_tokens; i++) {
		struct p11_token *t = &p11.tokens[i];

		for (size_t j = 0; j < t->n_objects; j++) {
			if (t->objects[j]->handle != h)
				continue;
			t->objects[j]->last_used = ++p11.tick;
			if (tp != NULL)
				*tp = t;
			if (index != NULL)
				*index = j;
			return t->objects[j];
		}
	}
	return NULL;
}

/* A token object with that key ID, or NULL. Which objects a search may
 * have is object.c's business (held_for_search). */
struct p11_object *p11_token_find_id(struct p11_token *t, const char *id)
{
	for (size_t i = 0; i < t->n_objects; i++) {
		struct p11_object *o = t->objects[i];

		if (o->session == 0 && strcmp(kms_key_id(o->key), id) == 0)
			return o;
	}
	return NULL;
}

void p11_token_drop_session(struct p11_token *t, CK_SESSION_HANDLE session)
{
	for (size_t i = t->n_objects; i-- > 0;)
		if (t->objects[i]->session == session)
			p11_object_remove(t, i);
}

void p11_token_clear(struct p11_token *t)
{
	while (t->n_objects > 0)
		p11_object_remove(t, t->n_objects - 1);
	free(t->objects);
	t->objects = NULL;
}
