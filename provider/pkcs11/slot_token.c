/* slot_token.c - PKCS#11 slot and token management: one slot with a
 * present token per kmstore profile, and empty slots for profiles added
 * later (profiles.c). Token label = profile name (what
 * `pkcs11:token=` matches), manufacturer "kmstore", model = profile type.
 * No login: the secrets are behind the kmstore configuration's file
 * permissions, not a PIN. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "module.h"

/* C_GenerateKey is "a key for use now". Listing it is also what makes NSS
 * call C_GenerateKey rather than generate a key in its own softoken; the
 * first vendor mechanism says that a CKA_ID in its template asks for that
 * key, the second (local tokens only, last) that asking never waits
 * (module.h). Nothing else is listed: NSS must move keys into softoken to
 * compute with them. */
static const CK_MECHANISM_TYPE mechanisms[] = { CKM_GENERIC_SECRET_KEY_GEN,
						CKM_KMSTORE_KEY_BY_ID,
						CKM_KMSTORE_LOCAL_KEYS };
#define N_MECHANISMS (sizeof(mechanisms) / sizeof(mechanisms[0]))

static size_t token_mechanisms(const struct p11_token *t)
{
	return kms_profile_local(t->profile) ? N_MECHANISMS : N_MECHANISMS - 1;
}

void p11_tokens_free(void)
{
	for (size_t i = 0; i < p11.n_tokens; i++)
		p11_token_clear(&p11.tokens[i]);
	free(p11.tokens);
	p11.tokens = NULL;
	p11.n_tokens = 0;
}

static struct p11_token *slot_get(CK_SLOT_ID id)
{
	if (id < 1 || id > p11.n_tokens)
		return NULL;
	return &p11.tokens[id - 1];
}

struct p11_token *p11_token_get(CK_SLOT_ID id)
{
	struct p11_token *t = slot_get(id);

	return t != NULL && t->profile != NULL ? t : NULL;
}

CK_RV p11_slot_token(CK_SLOT_ID id, struct p11_token **tp)
{
	*tp = slot_get(id);
	if (*tp == NULL)
		return CKR_SLOT_ID_INVALID;
	return (*tp)->profile != NULL ? CKR_OK : CKR_TOKEN_NOT_PRESENT;
}

/* The opening of the C_* functions that take a slot: enter the module
 * (initialized, locked) and find the slot's token. On CKR_OK the lock is
 * held and *tp set; on any other value the lock is not held. */
static CK_RV enter_slot(CK_SLOT_ID id, struct p11_token **tp)
{
	CK_RV rv = p11_enter();

	if (rv != CKR_OK)
		return rv;
	rv = p11_slot_token(id, tp);
	if (rv != CKR_OK)
		p11_leave();
	return rv;
}

/* The sizing call of a list of the slots with a token looks for new
 * profiles too: an application that counts them again finds them. */
CK_RV C_GetSlotList(CK_BBOOL tokenPresent, CK_SLOT_ID_PTR pSlotList,
		    CK_ULONG_PTR pulCount)
{
	CK_ULONG n = 0;
	CK_RV rv;

	if (pulCount == NULL)
		return CKR_ARGUMENTS_BAD;
	rv = p11_enter();
	if (rv == CKR_OK && tokenPresent && pSlotList == NULL)
		rv = p11_profiles_look();
	if (rv != CKR_OK)
		return rv;
	for (size_t i = 0; i < p11.n_tokens; i++) {
		if (tokenPresent && p11.tokens[i].profile == NULL)
			continue;
		if (pSlotList != NULL && n < *pulCount)
			pSlotList[n] = p11.tokens[i].id;
		n++;
	}
	if (pSlotList != NULL && *pulCount < n)
		rv = CKR_BUFFER_TOO_SMALL;
	*pulCount = n;
	p11_leave();
	return rv;
}

/* A slot empty at C_Initialize (left for a profile added later) is
 * removable: NSS asks it again whether its token is there, and the module
 * looks for new profiles then. */
CK_RV C_GetSlotInfo(CK_SLOT_ID slotID, CK_SLOT_INFO_PTR pInfo)
{
	struct p11_token *t;
	char desc[80];
	CK_RV rv;

	if (pInfo == NULL)
		return CKR_ARGUMENTS_BAD;
	rv = p11_enter();
	if (rv != CKR_OK)
		return rv;
	rv = p11_slot_token(slotID, &t);
	if (rv == CKR_SLOT_ID_INVALID) {
		p11_leave();
		return rv;
	}
	if ((size_t)(t->id - 1) >= p11.n_fixed &&
	    (rv = p11_profiles_look()) != CKR_OK)
		return rv; /* else t stays valid: slots never move */
	memset(pInfo, 0, sizeof(*pInfo));
	if (t->profile != NULL)
		snprintf(desc, sizeof(desc), "kmstore profile %s",
			 kms_profile_name(t->profile));
	else
		snprintf(desc, sizeof(desc), "kmstore slot for a new profile");
	p11_pad(pInfo->slotDescription, sizeof(pInfo->slotDescription), desc);
	p11_pad(pInfo->manufacturerID, sizeof(pInfo->manufacturerID), "kmstore");
	if (t->profile != NULL)
		pInfo->flags |= CKF_TOKEN_PRESENT;
	if ((size_t)(t->id - 1) >= p11.n_fixed)
		pInfo->flags |= CKF_REMOVABLE_DEVICE;
	pInfo->hardwareVersion.major = KMS_P11_VERSION_MAJOR;
	pInfo->hardwareVersion.minor = KMS_P11_VERSION_MINOR;
	pInfo->firmwareVersion = pInfo->hardwareVersion;
	p11_leave();
	return CKR_OK;
}

static void count_sessions(CK_SLOT_ID slot, CK_ULONG *all, CK_ULONG *rw)
{
	*all = *rw = 0;
	for (size_t i = 0; i < p11.n_sessions; i++) {
		if (p11.sessions[i]->slot != slot)
			continue;
		(*all)++;
		if (p11.sessions[i]->flags & CKF_RW_SESSION)
			(*rw)++;
	}
}

static void fill_token_info(const struct p11_token *t, CK_TOKEN_INFO *info)
{
	memset(info, 0, sizeof(*info));
	p11_pad(info->label, sizeof(info->label), kms_profile_name(t->profile));
	p11_pad(info->manufacturerID, sizeof(info->manufacturerID), "kmstore");
	p11_pad(info->model, sizeof(info->model), kms_profile_type(t->profile));
	p11_pad(info->serialNumber, sizeof(info->serialNumber), t->serial);
	info->flags = CKF_TOKEN_INITIALIZED;
	info->ulMaxSessionCount = CK_EFFECTIVELY_INFINITE;
	info->ulMaxRwSessionCount = CK_EFFECTIVELY_INFINITE;
	count_sessions(t->id, &info->ulSessionCount, &info->ulRwSessionCount);
	info->ulMaxPinLen = 0;
	info->ulMinPinLen = 0;
	info->ulTotalPublicMemory = CK_UNAVAILABLE_INFORMATION;
	info->ulFreePublicMemory = CK_UNAVAILABLE_INFORMATION;
	info->ulTotalPrivateMemory = CK_UNAVAILABLE_INFORMATION;
	info->ulFreePrivateMemory = CK_UNAVAILABLE_INFORMATION;
	info->hardwareVersion.major = KMS_P11_VERSION_MAJOR;
	info->hardwareVersion.minor = KMS_P11_VERSION_MINOR;
	info->firmwareVersion = info->hardwareVersion;
	p11_pad(info->utcTime, sizeof(info->utcTime), "");
}

CK_RV C_GetTokenInfo(CK_SLOT_ID slotID, CK_TOKEN_INFO_PTR pInfo)
{
	struct p11_token *t;
	CK_RV rv;

	if (pInfo == NULL)
		return CKR_ARGUMENTS_BAD;
	rv = enter_slot(slotID, &t);
	if (rv != CKR_OK)
		return rv;
	fill_token_info(t, pInfo);
	p11_leave();
	return CKR_OK;
}

CK_RV C_GetMechanismList(CK_SLOT_ID slotID, CK_MECHANISM_TYPE_PTR pList,
			 CK_ULONG_PTR pulCount)
{
	struct p11_token *t;
	size_t n;
	CK_RV rv;

	if (pulCount == NULL)
		return CKR_ARGUMENTS_BAD;
	rv = enter_slot(slotID, &t);
	if (rv != CKR_OK)
		return rv;
	n = token_mechanisms(t);
	if (pList != NULL && *pulCount < n)
		rv = CKR_BUFFER_TOO_SMALL;
	else if (pList != NULL)
		memcpy(pList, mechanisms, n * sizeof(mechanisms[0]));
	*pulCount = n;
	p11_leave();
	return rv;
}

CK_RV C_GetMechanismInfo(CK_SLOT_ID slotID, CK_MECHANISM_TYPE type,
			 CK_MECHANISM_INFO_PTR pInfo)
{
	struct p11_token *t;
	size_t bytes;
	CK_RV rv;

	if (pInfo == NULL)
		return CKR_ARGUMENTS_BAD;
	rv = enter_slot(slotID, &t);
	if (rv != CKR_OK)
		return rv;
	if (type == CKM_KMSTORE_LOCAL_KEYS && kms_profile_local(t->profile)) {
		/* a marker: no operation, no sizes */
		memset(pInfo, 0, sizeof(*pInfo));
		p11_leave();
		return CKR_OK;
	}
	if (type != CKM_GENERIC_SECRET_KEY_GEN && type != CKM_KMSTORE_KEY_BY_ID) {
		p11_leave();
		return CKR_MECHANISM_INVALID;
	}
	/* In bits for this mechanism (CKA_VALUE_LEN is in bytes). */
	bytes = kms_profile_key_size(t->profile);
	pInfo->ulMinKeySize = (bytes ? bytes : KMS_KEY_MIN) * 8;
	pInfo->ulMaxKeySize = (bytes ? bytes : KMS_KEY_MAX) * 8;
	pInfo->flags = CKF_GENERATE;
	p11_leave();
	return CKR_OK;
}

/* Tokens come (profiles.c) but are not announced: NSS and pluto ask the
 * slots instead. */
CK_RV C_WaitForSlotEvent(CK_FLAGS flags, CK_SLOT_ID_PTR pSlot,
			 CK_VOID_PTR pReserved)
{
	(void)pSlot;
	(void)pReserved;
	if (!atomic_load(&p11.initialized))
		return CKR_CRYPTOKI_NOT_INITIALIZED;
	/* Blocking forever would be the truth, but a caller that blocks on
	 * it (with no event ever coming) is better told at once. */
	return (flags & CKF_DONT_BLOCK) ? CKR_NO_EVENT
					: CKR_FUNCTION_NOT_SUPPORTED;
}
