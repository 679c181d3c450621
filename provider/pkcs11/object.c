/* object.c - PKCS#11 object management: attributes, destroying, and
 * searching. A search with a CKA_ID is "the key with this ID": the token
 * then holds it as a token object (CKA_TOKEN=TRUE, which NSS's
 * PK11_FindFixedKey asks for), taken from a key the module already holds
 * or else fetched from the profile (QKD: dec_keys at the KME). A search
 * without an ID lists what the token holds, plus, on a static token, its
 * one key. Searches for other classes (NSS asks for CKO_PROFILE and its
 * own vendor classes at start-up) find nothing and fetch nothing.
 *
 * A key found by ID on a single-use profile (QKD) is handed out once:
 * the object is destroyed as soon as its CKA_VALUE has been read, as the
 * KME deleted the key when it delivered it. Otherwise a responder (pluto)
 * would find a used PPK again, without asking the KME, for every IKE SA
 * that offers its ID. NSS reads CKA_VALUE once per PK11SymKey (it keeps
 * the bytes to move the key into its softoken), and pkcs11-tool and
 * p11tool read it once: they see no difference. Nor does a search there
 * return, or copy more than once, an object C_GenerateKey gave its caller
 * (search_may_return). */
#include <stdlib.h>
#include <string.h>

#include "module.h"

/* What a search template asks for, as far as fetching is concerned. */
struct search {
	int may_fetch;       /* a secret key token object could match */
	char id[KMS_KEY_ID_MAX + 1];
	int has_id;          /* CKA_ID present (possibly not a valid key ID) */
};

static int attr_ulong_is(const CK_ATTRIBUTE *a, CK_ULONG v)
{
	CK_ULONG u;

	/* The caller's buffer need not be aligned for a CK_ULONG. */
	if (a->pValue == NULL || a->ulValueLen != sizeof(CK_ULONG))
		return 0;
	memcpy(&u, a->pValue, sizeof(u));
	return u == v;
}

static void read_id(const CK_ATTRIBUTE *a, struct search *q)
{
	q->has_id = 1;
	if (a->pValue == NULL || a->ulValueLen == 0 ||
	    a->ulValueLen > KMS_KEY_ID_MAX ||
	    memchr(a->pValue, '\0', a->ulValueLen) != NULL ||
	    kms_check_key_id(a->pValue, a->ulValueLen, NULL) != KMS_OK) {
		q->may_fetch = 0; /* no key can have this ID */
		return;
	}
	memcpy(q->id, a->pValue, a->ulValueLen);
	q->id[a->ulValueLen] = '\0';
}

static void analyse(const CK_ATTRIBUTE *tmpl, CK_ULONG n, struct search *q)
{
	memset(q, 0, sizeof(*q));
	q->may_fetch = 1;
	for (CK_ULONG i = 0; i < n; i++) {
		const CK_ATTRIBUTE *a = &tmpl[i];

		switch (a->type) {
		case CKA_CLASS:
			if (!attr_ulong_is(a, CKO_SECRET_KEY))
				q->may_fetch = 0;
			break;
		case CKA_KEY_TYPE:
			if (!attr_ulong_is(a, CKK_GENERIC_SECRET))
				q->may_fetch = 0;
			break;
		case CKA_TOKEN:
			if (a->pValue == NULL || a->ulValueLen != sizeof(CK_BBOOL) ||
			    !*(const CK_BBOOL *)a->pValue)
				q->may_fetch = 0;
			break;
		case CKA_ID:
			read_id(a, q);
			break;
		}
	}
}

/* The ID to make sure the token holds, or NULL. A static profile's one
 * key is listed by a search without an ID. */
static const char *id_to_hold(const struct p11_token *t, const struct search *q)
{
	if (!q->may_fetch)
		return NULL;
	if (q->has_id)
		return q->id;
	if (strcmp(kms_profile_type(t->profile), "static") == 0)
		return kms_profile_setting(t->profile, "key-id");
	return NULL;
}

/* How an object a search by ID may return is handed out on a single-use
 * profile (QKD): a token object once read, whoever reads it (a search
 * fetched it, a session object was promoted, or C_GenerateKey fetched it
 * by ID with CKA_TOKEN=TRUE, key.c); a session object C_GenerateKey
 * fetched by ID to its caller alone, since that fetch was its one
 * hand-out. */
unsigned p11_by_id_flags(const struct p11_token *t, int token_object)
{
	if (!kms_profile_single_use(t->profile))
		return 0;
	return token_object ? OBJ_READ_ONCE : OBJ_HANDED_OUT;
}

/* On a single-use profile a search hands a key out only as a read-once
 * token object. It never returns an object C_GenerateKey gave its caller
 * (a session object, or a new key as a token object), which that caller
 * may read again and again: a search for its ID gets a read-once copy
 * instead, once (promote). Else every search for the ID, in any session,
 * would get the key again for as long as the module held it. */
static int search_may_return(const struct p11_token *t,
			     const struct p11_object *o)
{
	return !kms_profile_single_use(t->profile) || (o->flags & OBJ_READ_ONCE);
}

/* Under the lock: a token object with this key ID that a search may
 * return, else NULL and in *source an object whose key a search may have
 * as a token object (or NULL: the profile is asked). */
static struct p11_object *held_for_search(struct p11_token *t, const char *id,
					  struct p11_object **source)
{
	*source = NULL;
	for (size_t i = 0; i < t->n_objects; i++) {
		struct p11_object *o = t->objects[i];

		if (strcmp(kms_key_id(o->key), id) != 0)
			continue;
		if (o->session == 0 && search_may_return(t, o))
			return o;
		if (*source == NULL && !(o->flags & OBJ_HANDED_OUT))
			*source = o;
	}
	return NULL;
}

/* Adds a token object for a key the module holds only as an object a
 * search may not return: a key this process generated is "that key" for a
 * search by ID (the KME would not give it out a second time anyway), and
 * a token object does not vanish when another session closes. On a
 * single-use profile the source is then handed out: not copied again. */
static CK_RV promote(struct p11_token *t, struct p11_object *o)
{
	struct p11_object *copy;
	kms_key *key;

	if (kms_key_dup(o->key, &key, NULL) != KMS_OK)
		return CKR_HOST_MEMORY;
	copy = p11_object_new(t, key, 0, o->flags | p11_by_id_flags(t, 1), o->label);
	if (copy == NULL) {
		kms_key_free(key);
		return CKR_HOST_MEMORY;
	}
	/* Before adding: a full key set may drop o to make room. */
	if (kms_profile_single_use(t->profile))
		o->flags |= OBJ_HANDED_OUT;
	return p11_token_add(t, copy);
}

/* Under the lock: a fetched key becomes a token object unless another
 * thread got there first. */
static CK_RV hold(struct p11_token *t, kms_key *key)
{
	struct p11_object *o, *source;

	if (held_for_search(t, kms_key_id(key), &source) != NULL) {
		kms_key_free(key);
		return CKR_OK;
	}
	o = p11_object_new(t, key, 0, OBJ_DEFAULT_FLAGS | p11_by_id_flags(t, 1), NULL);
	if (o == NULL) {
		kms_key_free(key);
		return CKR_HOST_MEMORY;
	}
	return p11_token_add(t, o);
}

static CK_RV collect(struct p11_session *s, struct p11_token *t,
		     const CK_ATTRIBUTE *tmpl, CK_ULONG n)
{
	s->found = malloc((t->n_objects + 1) * sizeof(*s->found));
	if (s->found == NULL)
		return CKR_HOST_MEMORY;
	s->n_found = s->pos = 0;
	for (size_t i = 0; i < t->n_objects; i++)
		if (search_may_return(t, t->objects[i]) &&
		    p11_object_matches(t->objects[i], tmpl, n))
			s->found[s->n_found++] = t->objects[i]->handle;
	s->finding = 1;
	return CKR_OK;
}

static struct p11_session *idle_session(CK_SESSION_HANDLE h, CK_RV *rv)
{
	struct p11_session *s = p11_session_get(h);

	*rv = CKR_OK;
	if (s == NULL)
		*rv = CKR_SESSION_HANDLE_INVALID;
	else if (s->finding)
		*rv = CKR_OPERATION_ACTIVE;
	return *rv == CKR_OK ? s : NULL;
}

/* Under the lock: whether the search needs a key fetched first; if so the
 * key ID is copied to fetch_id (the lock is dropped for the fetch). */
static CK_RV find_prepare(CK_SESSION_HANDLE h, const CK_ATTRIBUTE *tmpl,
			  CK_ULONG n, char fetch_id[KMS_KEY_ID_MAX + 1],
			  struct p11_token **tp)
{
	struct p11_session *s;
	struct p11_object *source;
	struct search q;
	const char *id;
	CK_RV rv;

	fetch_id[0] = '\0';
	if ((s = idle_session(h, &rv)) == NULL)
		return rv;
	*tp = p11_token_get(s->slot);
	analyse(tmpl, n, &q);
	id = id_to_hold(*tp, &q);
	if (id == NULL)
		return CKR_OK;
	if (held_for_search(*tp, id, &source) != NULL)
		return CKR_OK;
	if (source != NULL)
		return promote(*tp, source);
	strcpy(fetch_id, id);
	return CKR_OK;
}

/* Called with the lock held; drops it for the fetch (a KME round trip)
 * and returns with it held, unless *locked says otherwise. */
static CK_RV fetch_and_hold(CK_SESSION_HANDLE h, struct p11_token *t,
			    const char *id, int *locked)
{
	struct p11_session *s;
	kms_key *key = NULL;
	CK_ULONG code;
	CK_RV rv, fetched;

	p11_fetch_begin();
	p11_leave();
	fetched = p11_fetch_by_id(t->profile, id, &key, &code);
	rv = p11_enter();
	p11_fetch_end();
	if (rv != CKR_OK) {
		*locked = 0;
		kms_key_free(key);
		return rv;
	}
	if ((s = idle_session(h, &rv)) != NULL)
		s->device_error = code;
	if (rv == CKR_OK)
		rv = fetched;
	if (rv != CKR_OK || key == NULL) {
		kms_key_free(key);
		return rv;
	}
	return hold(t, key);
}

CK_RV C_FindObjectsInit(CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR pTemplate,
			CK_ULONG ulCount)
{
	char id[KMS_KEY_ID_MAX + 1];
	struct p11_token *t = NULL;
	struct p11_session *s;
	int locked = 1;
	CK_RV rv;

	if (ulCount > 0 && pTemplate == NULL)
		return CKR_ARGUMENTS_BAD;
	rv = p11_enter();
	if (rv != CKR_OK)
		return rv;
	rv = find_prepare(hSession, pTemplate, ulCount, id, &t);
	if (rv == CKR_OK && id[0] != '\0')
		rv = fetch_and_hold(hSession, t, id, &locked);
	if (!locked)
		return rv;
	if (rv == CKR_OK && (s = idle_session(hSession, &rv)) != NULL)
		rv = collect(s, t, pTemplate, ulCount);
	p11_leave();
	return rv;
}

CK_RV C_FindObjects(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE_PTR phObject,
		    CK_ULONG ulMaxObjectCount, CK_ULONG_PTR pulObjectCount)
{
	struct p11_session *s;
	CK_ULONG n = 0;
	CK_RV rv;

	if (phObject == NULL || pulObjectCount == NULL)
		return CKR_ARGUMENTS_BAD;
	rv = p11_enter();
	if (rv != CKR_OK)
		return rv;
	s = p11_session_get(hSession);
	if (s == NULL)
		rv = CKR_SESSION_HANDLE_INVALID;
	else if (!s->finding)
		rv = CKR_OPERATION_NOT_INITIALIZED;
	else
		/* Skips keys dropped since C_FindObjectsInit. */
		for (; s->pos < s->n_found && n < ulMaxObjectCount; s->pos++)
			if (p11_object_get(s->found[s->pos], NULL, NULL) != NULL)
				phObject[n++] = s->found[s->pos];
	*pulObjectCount = n;
	p11_leave();
	return rv;
}

CK_RV C_FindObjectsFinal(CK_SESSION_HANDLE hSession)
{
	struct p11_session *s;
	CK_RV rv = p11_enter();

	if (rv != CKR_OK)
		return rv;
	s = p11_session_get(hSession);
	if (s == NULL)
		rv = CKR_SESSION_HANDLE_INVALID;
	else if (!s->finding)
		rv = CKR_OPERATION_NOT_INITIALIZED;
	else {
		free(s->found);
		s->found = NULL;
		s->n_found = s->pos = 0;
		s->finding = 0;
	}
	p11_leave();
	return rv;
}

/* The object, if the session may see it: handles belong to a token. */
static struct p11_object *session_object(CK_SESSION_HANDLE h,
					 CK_OBJECT_HANDLE oh, CK_RV *rv,
					 struct p11_token **t, size_t *index)
{
	struct p11_session *s = p11_session_get(h);
	struct p11_object *o;

	if (s == NULL) {
		*rv = CKR_SESSION_HANDLE_INVALID;
		return NULL;
	}
	o = p11_object_get(oh, t, index);
	if (o == NULL || o->slot != s->slot) {
		*rv = CKR_OBJECT_HANDLE_INVALID;
		return NULL;
	}
	*rv = CKR_OK;
	return o;
}

/* PKCS#11 rules: every attribute is processed; an unknown one or a short
 * buffer gets CK_UNAVAILABLE_INFORMATION and its error is returned after
 * the others are filled. */
static CK_RV get_attributes(const struct p11_object *o, CK_ATTRIBUTE *tmpl,
			    CK_ULONG n)
{
	CK_RV rv = CKR_OK;

	for (CK_ULONG i = 0; i < n; i++) {
		struct p11_attr a;
		CK_RV r = p11_object_attr(o, tmpl[i].type, &a);

		if (r == CKR_OK && tmpl[i].pValue != NULL &&
		    tmpl[i].ulValueLen < a.len)
			r = CKR_BUFFER_TOO_SMALL;
		if (r != CKR_OK) {
			tmpl[i].ulValueLen = CK_UNAVAILABLE_INFORMATION;
			if (rv == CKR_OK)
				rv = r;
			continue;
		}
		if (tmpl[i].pValue != NULL && a.len > 0)
			memcpy(tmpl[i].pValue, a.ptr, a.len);
		tmpl[i].ulValueLen = a.len;
	}
	return rv;
}

/* Whether the template had CKA_VALUE copied out (not a size query). */
static int value_read(const CK_ATTRIBUTE *tmpl, CK_ULONG n)
{
	for (CK_ULONG i = 0; i < n; i++)
		if (tmpl[i].type == CKA_VALUE && tmpl[i].pValue != NULL &&
		    tmpl[i].ulValueLen != CK_UNAVAILABLE_INFORMATION)
			return 1;
	return 0;
}

/* Under the lock: a key handed out once is gone once read (see top). */
static void drop_if_read(struct p11_token *t, size_t index,
			 const CK_ATTRIBUTE *tmpl, CK_ULONG n)
{
	struct p11_object *o = t->objects[index];

	if (!(o->flags & OBJ_READ_ONCE) || !value_read(tmpl, n))
		return;
	p11_log(KMS_LOG_INFO, "token %s: key %s read; dropped (a %s key is "
		"handed out once)", kms_profile_name(t->profile),
		kms_key_id(o->key), kms_profile_type(t->profile));
	p11_object_remove(t, index);
}

CK_RV C_GetAttributeValue(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject,
			  CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount)
{
	struct p11_object *o;
	struct p11_token *t;
	size_t index;
	CK_RV rv;

	if (ulCount > 0 && pTemplate == NULL)
		return CKR_ARGUMENTS_BAD;
	rv = p11_enter();
	if (rv != CKR_OK)
		return rv;
	o = session_object(hSession, hObject, &rv, &t, &index);
	if (o != NULL) {
		rv = get_attributes(o, pTemplate, ulCount);
		drop_if_read(t, index, pTemplate, ulCount);
	}
	p11_leave();
	return rv;
}

/* The new label of a template that changes the label only, else why not:
 * a key is what the profile gave, but its name is the application's (NSS's
 * symkeyutil -K names the key it made; a refusal would waste a QKD key). */
static CK_RV new_label(const CK_ATTRIBUTE *tmpl, CK_ULONG n, char **out)
{
	*out = NULL;
	for (CK_ULONG i = 0; i < n; i++) {
		const CK_ATTRIBUTE *a = &tmpl[i];

		if (a->type != CKA_LABEL) {
			free(*out);
			*out = NULL;
			return CKR_ATTRIBUTE_READ_ONLY;
		}
		if ((a->pValue == NULL && a->ulValueLen > 0) ||
		    a->ulValueLen > P11_LABEL_MAX ||
		    (a->ulValueLen > 0 && memchr(a->pValue, '\0', a->ulValueLen))) {
			free(*out);
			*out = NULL;
			return CKR_ATTRIBUTE_VALUE_INVALID;
		}
		free(*out);
		*out = strndup(a->ulValueLen ? a->pValue : "", a->ulValueLen);
		if (*out == NULL)
			return CKR_HOST_MEMORY;
	}
	return CKR_OK;
}

CK_RV C_SetAttributeValue(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject,
			  CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount)
{
	struct p11_object *o;
	char *label = NULL;
	CK_RV rv;

	if (ulCount > 0 && pTemplate == NULL)
		return CKR_ARGUMENTS_BAD;
	rv = p11_enter();
	if (rv != CKR_OK)
		return rv;
	o = session_object(hSession, hObject, &rv, NULL, NULL);
	if (o != NULL && (o->flags & OBJ_READ_ONLY))
		rv = CKR_ACTION_PROHIBITED;
	else if (o != NULL && (rv = new_label(pTemplate, ulCount, &label)) == CKR_OK &&
		 label != NULL) {
		free(o->label);
		o->label = label;
	}
	p11_leave();
	return rv;
}

CK_RV C_DestroyObject(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject)
{
	struct p11_token *t;
	size_t index;
	CK_RV rv = p11_enter();

	if (rv != CKR_OK)
		return rv;
	/* Token objects too: a key found by ID is only the module's copy,
	 * and an application that is done with a PPK may drop it early. */
	if (session_object(hSession, hObject, &rv, &t, &index) != NULL)
		p11_object_remove(t, index);
	p11_leave();
	return rv;
}

CK_RV C_GetObjectSize(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject,
		      CK_ULONG_PTR pulSize)
{
	struct p11_object *o;
	CK_RV rv;

	if (pulSize == NULL)
		return CKR_ARGUMENTS_BAD;
	rv = p11_enter();
	if (rv != CKR_OK)
		return rv;
	o = session_object(hSession, hObject, &rv, NULL, NULL);
	if (o != NULL)
		*pulSize = kms_key_size(o->key);
	p11_leave();
	return rv;
}
