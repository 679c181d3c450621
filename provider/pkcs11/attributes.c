/* attributes.c - what a key object says about itself: CKO_SECRET_KEY,
 * CKK_GENERIC_SECRET, CKA_ID = the kmstore key ID, and a readable
 * CKA_VALUE (not sensitive, extractable: NSS reads the value to move the
 * key into its softoken, the only place it can compute with it). The same
 * values answer C_GetAttributeValue and match C_FindObjects templates. */
#include <string.h>

#include "module.h"

static const struct {
	CK_ATTRIBUTE_TYPE type;
	unsigned flag;
} flag_attrs[] = {
	{ CKA_PRIVATE, OBJ_PRIVATE }, { CKA_ENCRYPT, OBJ_ENCRYPT },
	{ CKA_DECRYPT, OBJ_DECRYPT }, { CKA_SIGN, OBJ_SIGN },
	{ CKA_VERIFY, OBJ_VERIFY },   { CKA_WRAP, OBJ_WRAP },
	{ CKA_UNWRAP, OBJ_UNWRAP },   { CKA_DERIVE, OBJ_DERIVE },
	{ CKA_LOCAL, OBJ_LOCAL },
};

static void set_ulong(struct p11_attr *a, CK_ULONG v)
{
	a->buf.ul = v;
	a->ptr = &a->buf.ul;
	a->len = sizeof(CK_ULONG);
}

static void set_bool(struct p11_attr *a, int v)
{
	a->buf.b = v ? CK_TRUE : CK_FALSE;
	a->ptr = &a->buf.b;
	a->len = sizeof(CK_BBOOL);
}

static void set_bytes(struct p11_attr *a, const void *p, size_t len)
{
	a->ptr = p;
	a->len = len;
}

static int flag_attr(const struct p11_object *o, CK_ATTRIBUTE_TYPE type,
		     struct p11_attr *out)
{
	for (size_t i = 0; i < sizeof(flag_attrs) / sizeof(flag_attrs[0]); i++)
		if (flag_attrs[i].type == type) {
			set_bool(out, o->flags & flag_attrs[i].flag);
			return 1;
		}
	return 0;
}

/* Attributes every key has the same value for. */
static int fixed_attr(CK_ATTRIBUTE_TYPE type, struct p11_attr *out)
{
	switch (type) {
	case CKA_CLASS:
		set_ulong(out, CKO_SECRET_KEY);
		return 1;
	case CKA_KEY_TYPE:
		set_ulong(out, CKK_GENERIC_SECRET);
		return 1;
	case CKA_SENSITIVE:
	case CKA_ALWAYS_SENSITIVE:
	case CKA_NEVER_EXTRACTABLE:
	case CKA_COPYABLE:
	case CKA_TRUSTED:
	case CKA_WRAP_WITH_TRUSTED:
		set_bool(out, 0);
		return 1;
	case CKA_EXTRACTABLE:
	case CKA_DESTROYABLE:
		set_bool(out, 1);
		return 1;
	case CKA_START_DATE:
	case CKA_END_DATE:
		set_bytes(out, "", 0);
		return 1;
	default:
		return 0;
	}
}

CK_RV p11_object_attr(const struct p11_object *o, CK_ATTRIBUTE_TYPE type,
		      struct p11_attr *out)
{
	if (fixed_attr(type, out) || flag_attr(o, type, out))
		return CKR_OK;
	switch (type) {
	case CKA_TOKEN:
		set_bool(out, o->session == 0);
		return CKR_OK;
	case CKA_MODIFIABLE: /* its label only (C_SetAttributeValue) */
		set_bool(out, !(o->flags & OBJ_READ_ONLY));
		return CKR_OK;
	case CKA_ID:
		set_bytes(out, kms_key_id(o->key), strlen(kms_key_id(o->key)));
		return CKR_OK;
	case CKA_LABEL:
		set_bytes(out, o->label, strlen(o->label));
		return CKR_OK;
	case CKA_VALUE:
		set_bytes(out, kms_key_bytes(o->key), kms_key_size(o->key));
		return CKR_OK;
	case CKA_VALUE_LEN:
		set_ulong(out, kms_key_size(o->key));
		return CKR_OK;
	case CKA_KEY_GEN_MECHANISM:
		set_ulong(out, (o->flags & OBJ_LOCAL) ? CKM_GENERIC_SECRET_KEY_GEN
						      : CK_UNAVAILABLE_INFORMATION);
		return CKR_OK;
	default:
		return CKR_ATTRIBUTE_TYPE_INVALID;
	}
}

/* An attribute the object lacks matches nothing (PKCS#11 search rule). */
int p11_object_matches(const struct p11_object *o, const CK_ATTRIBUTE *tmpl,
		       CK_ULONG n)
{
	for (CK_ULONG i = 0; i < n; i++) {
		struct p11_attr a;

		if (p11_object_attr(o, tmpl[i].type, &a) != CKR_OK)
			return 0;
		if (a.len != tmpl[i].ulValueLen)
			return 0;
		/* Any non-zero byte is TRUE. */
		if (a.ptr == &a.buf.b && tmpl[i].pValue != NULL) {
			if (!a.buf.b != !*(const CK_BBOOL *)tmpl[i].pValue)
				return 0;
			continue;
		}
		if (a.len > 0 && (tmpl[i].pValue == NULL ||
				  memcmp(a.ptr, tmpl[i].pValue, a.len) != 0))
			return 0;
	}
	return 1;
}
