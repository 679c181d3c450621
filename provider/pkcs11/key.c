/* key.c - PKCS#11 key management: C_GenerateKey with
 * CKM_GENERIC_SECRET_KEY_GEN is "a key for use now" from the token's
 * profile (static: its key; QKD: a new key from enc_keys at the KME). The
 * key ID, which the peer needs, is the object's CKA_ID.
 *
 * A CKA_ID in the template asks for the key with that ID instead (QKD:
 * dec_keys), as a search would; CKM_KMSTORE_KEY_BY_ID, listed, says so to
 * callers (module.h). NSS holds its slot lock through a whole
 * C_FindObjects* search on the slot's one session, so searches on a token
 * run one at a time; C_GenerateKey runs in the caller's own session, so a
 * responder that asks this way fetches keys in parallel
 * (PK11_TokenKeyGenWithFlags with its keyid argument).
 *
 * The template is checked before anything is fetched, since a QKD key is
 * consumed at the KME whether or not it is then used. */
#include <stdlib.h>
#include <string.h>

#include "module.h"

struct gen_request {
	int token;            /* CKA_TOKEN */
	char id[KMS_KEY_ID_MAX + 1]; /* CKA_ID: the key with this ID; "" none */
	CK_ULONG value_len;   /* CKA_VALUE_LEN; 0: whatever the profile gives */
	char label[P11_LABEL_MAX + 1];
	int has_label;
	unsigned flags;
};

static const struct {
	CK_ATTRIBUTE_TYPE type;
	unsigned flag;
} usage_attrs[] = {
	{ CKA_PRIVATE, OBJ_PRIVATE }, { CKA_ENCRYPT, OBJ_ENCRYPT },
	{ CKA_DECRYPT, OBJ_DECRYPT }, { CKA_SIGN, OBJ_SIGN },
	{ CKA_VERIFY, OBJ_VERIFY },   { CKA_WRAP, OBJ_WRAP },
	{ CKA_UNWRAP, OBJ_UNWRAP },   { CKA_DERIVE, OBJ_DERIVE },
};

static CK_RV get_bool(const CK_ATTRIBUTE *a, int *out)
{
	if (a->pValue == NULL || a->ulValueLen != sizeof(CK_BBOOL))
		return CKR_ATTRIBUTE_VALUE_INVALID;
	*out = *(const CK_BBOOL *)a->pValue != CK_FALSE;
	return CKR_OK;
}

static CK_RV get_ulong(const CK_ATTRIBUTE *a, CK_ULONG *out)
{
	if (a->pValue == NULL || a->ulValueLen != sizeof(CK_ULONG))
		return CKR_ATTRIBUTE_VALUE_INVALID;
	/* The caller's buffer need not be aligned for a CK_ULONG. */
	memcpy(out, a->pValue, sizeof(*out));
	return CKR_OK;
}

/* Booleans whose value is fixed: the template may only repeat it. NSS
 * must be able to read the value to compute with the key. */
static int fixed_bool(CK_ATTRIBUTE_TYPE type, int *value)
{
	switch (type) {
	case CKA_SENSITIVE:
	case CKA_COPYABLE:
		*value = 0;
		return 1;
	case CKA_EXTRACTABLE:
	case CKA_DESTROYABLE:
		*value = 1;
		return 1;
	default:
		return 0;
	}
}

static CK_RV set_usage(const CK_ATTRIBUTE *a, struct gen_request *r)
{
	for (size_t i = 0; i < sizeof(usage_attrs) / sizeof(usage_attrs[0]); i++) {
		int v;
		CK_RV rv;

		if (usage_attrs[i].type != a->type)
			continue;
		if ((rv = get_bool(a, &v)) != CKR_OK)
			return rv;
		r->flags = v ? r->flags | usage_attrs[i].flag
			     : r->flags & ~usage_attrs[i].flag;
		return CKR_OK;
	}
	return CKR_ATTRIBUTE_TYPE_INVALID;
}

static CK_RV set_label(const CK_ATTRIBUTE *a, struct gen_request *r)
{
	if ((a->pValue == NULL && a->ulValueLen > 0) ||
	    a->ulValueLen > P11_LABEL_MAX ||
	    (a->ulValueLen > 0 && memchr(a->pValue, '\0', a->ulValueLen)))
		return CKR_ATTRIBUTE_VALUE_INVALID;
	if (a->ulValueLen > 0)
		memcpy(r->label, a->pValue, a->ulValueLen);
	r->label[a->ulValueLen] = '\0';
	r->has_label = 1;
	return CKR_OK;
}

static CK_RV check_attribute(const CK_ATTRIBUTE *a, struct gen_request *r)
{
	CK_ULONG ul;
	int b, fixed;
	CK_RV rv;

	switch (a->type) {
	case CKA_CLASS:
	case CKA_KEY_TYPE:
		if ((rv = get_ulong(a, &ul)) != CKR_OK)
			return rv;
		return ul == (a->type == CKA_CLASS ? CKO_SECRET_KEY
						    : CKK_GENERIC_SECRET)
			       ? CKR_OK : CKR_TEMPLATE_INCONSISTENT;
	case CKA_TOKEN:
		return get_bool(a, &r->token);
	case CKA_MODIFIABLE: /* the label is all that could be modified */
		if ((rv = get_bool(a, &b)) != CKR_OK)
			return rv;
		r->flags = b ? r->flags & ~OBJ_READ_ONLY : r->flags | OBJ_READ_ONLY;
		return CKR_OK;
	case CKA_VALUE_LEN:
		return get_ulong(a, &r->value_len);
	case CKA_LABEL:
		return set_label(a, r);
	case CKA_ID:    /* the key with this ID (the KME names new keys) */
		if (a->pValue == NULL ||
		    kms_check_key_id(a->pValue, a->ulValueLen, NULL) != KMS_OK)
			return CKR_ATTRIBUTE_VALUE_INVALID;
		memcpy(r->id, a->pValue, a->ulValueLen);
		r->id[a->ulValueLen] = '\0';
		return CKR_OK;
	case CKA_VALUE:
		return CKR_ATTRIBUTE_READ_ONLY;
	}
	if (fixed_bool(a->type, &fixed)) {
		if ((rv = get_bool(a, &b)) != CKR_OK)
			return rv;
		return b == fixed ? CKR_OK : CKR_ATTRIBUTE_VALUE_INVALID;
	}
	return set_usage(a, r);
}

static CK_RV parse_template(const CK_ATTRIBUTE *tmpl, CK_ULONG n,
			    struct gen_request *r)
{
	memset(r, 0, sizeof(*r));
	r->flags = OBJ_DEFAULT_FLAGS;
	for (CK_ULONG i = 0; i < n; i++) {
		CK_RV rv = check_attribute(&tmpl[i], r);

		if (rv != CKR_OK)
			return rv;
	}
	return CKR_OK;
}

static CK_RV check_mechanism(const CK_MECHANISM *m, const struct gen_request *r)
{
	if (m->mechanism != CKM_GENERIC_SECRET_KEY_GEN &&
	    m->mechanism != CKM_KMSTORE_KEY_BY_ID)
		return CKR_MECHANISM_INVALID;
	if (m->pParameter != NULL || m->ulParameterLen != 0)
		return CKR_MECHANISM_PARAM_INVALID;
	/* Never a new key by mistake: this one names its key. */
	if (m->mechanism == CKM_KMSTORE_KEY_BY_ID && r->id[0] == '\0')
		return CKR_TEMPLATE_INCOMPLETE;
	return CKR_OK;
}

/* Under the lock, before the fetch. */
static CK_RV gen_prepare(CK_SESSION_HANDLE h, const struct gen_request *r,
			 struct p11_token **tp)
{
	struct p11_session *s = p11_session_get(h);
	size_t size;

	if (s == NULL)
		return CKR_SESSION_HANDLE_INVALID;
	if (r->token && !(s->flags & CKF_RW_SESSION))
		return CKR_SESSION_READ_ONLY;
	*tp = p11_token_get(s->slot);
	size = kms_profile_key_size((*tp)->profile);
	if (r->value_len != 0 && size != 0 && r->value_len != size) {
		p11_log(KMS_LOG_ERROR,
			"token %s: CKA_VALUE_LEN %lu asked for; the profile's keys "
			"are %zu bytes (omit CKA_VALUE_LEN to take them as they are)",
			kms_profile_name((*tp)->profile), r->value_len, size);
		return CKR_TEMPLATE_INCONSISTENT;
	}
	return CKR_OK;
}

/* Under the lock, after the fetch: the key becomes an object. A static
 * token keeps one token object for its one key. A QKD key asked for by ID
 * is handed out once (object.c's p11_by_id_flags): as a token object, like
 * one a search found, it goes once read; as a session object it is its
 * caller's alone, no search gets it. A new key (no ID asked) is neither:
 * pkcs11-tool --keygen reads CKA_VALUE before CKA_ID, and the ID is what
 * the peer needs; a search for its ID gets a copy once (object.c). */
static CK_RV gen_finish(CK_SESSION_HANDLE h, struct p11_token *t, kms_key *key,
			const struct gen_request *r, CK_OBJECT_HANDLE *out)
{
	struct p11_object *o;
	CK_RV rv;

	if (r->value_len != 0 && kms_key_size(key) != r->value_len) {
		p11_log(KMS_LOG_ERROR, "token %s: key %s is %zu bytes, not the "
			"%lu of CKA_VALUE_LEN", kms_profile_name(t->profile),
			kms_key_id(key), kms_key_size(key), r->value_len);
		kms_key_free(key);
		return CKR_TEMPLATE_INCONSISTENT;
	}
	if (r->token && (o = p11_token_find_id(t, kms_key_id(key))) != NULL) {
		kms_key_free(key);
		*out = o->handle;
		return CKR_OK;
	}
	o = p11_object_new(t, key, r->token ? 0 : h,
			   r->flags | OBJ_LOCAL |
				   (r->id[0] != '\0' ? p11_by_id_flags(t, r->token) : 0),
			   r->has_label ? r->label : NULL);
	if (o == NULL) {
		kms_key_free(key);
		return CKR_HOST_MEMORY;
	}
	rv = p11_token_add(t, o);
	if (rv == CKR_OK)
		*out = o->handle;
	return rv;
}

CK_RV C_GenerateKey(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
		    CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount,
		    CK_OBJECT_HANDLE_PTR phKey)
{
	struct gen_request r;
	struct p11_session *s;
	struct p11_token *t;
	kms_key *key = NULL;
	CK_ULONG code;
	CK_RV rv, fetched;

	if (pMechanism == NULL || phKey == NULL || (ulCount > 0 && !pTemplate))
		return CKR_ARGUMENTS_BAD;
	if ((rv = parse_template(pTemplate, ulCount, &r)) != CKR_OK ||
	    (rv = check_mechanism(pMechanism, &r)) != CKR_OK)
		return rv;
	if ((rv = p11_enter()) != CKR_OK)
		return rv;
	rv = gen_prepare(hSession, &r, &t);
	if (rv == CKR_OK)
		p11_fetch_begin();
	p11_leave();
	if (rv != CKR_OK)
		return rv;
	if (r.id[0] == '\0') {
		fetched = p11_fetch_now(t->profile, &key, &code);
	} else {
		fetched = p11_fetch_by_id(t->profile, r.id, &key, &code);
		/* Not found: a search finds nothing; a generation fails. */
		if (fetched == CKR_OK && key == NULL)
			fetched = CKR_ATTRIBUTE_VALUE_INVALID;
	}
	rv = p11_enter();
	p11_fetch_end();
	if (rv != CKR_OK) {
		kms_key_free(key);
		return rv;
	}
	s = p11_session_get(hSession);
	if (s != NULL)
		s->device_error = code;
	rv = s == NULL ? CKR_SESSION_HANDLE_INVALID : fetched;
	if (rv == CKR_OK)
		rv = gen_finish(hSession, t, key, &r, phKey);
	else
		kms_key_free(key);
	p11_leave();
	return rv;
}
