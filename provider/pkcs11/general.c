/* general.c - PKCS#11 general-purpose functions: C_Initialize,
 * C_Finalize, C_GetInfo, C_GetFunctionList, and the function table.
 *
 * A configuration that cannot be read does not fail C_Initialize: NSS
 * would retry without locking and then drop the module silently, so the
 * module loads with empty slots only and logs why. A token that is
 * missing is then the visible symptom, and the log names the cause; the
 * tokens come once the profiles can be read (profiles.c). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "module.h"

#ifndef KMS_P11_VERSION_MAJOR
#define KMS_P11_VERSION_MAJOR 0
#define KMS_P11_VERSION_MINOR 0
#endif

struct p11_module p11;

static CK_FUNCTION_LIST function_list;

/* After fork() the parent's threads are gone but their locks may be held:
 * the child forgets the parent's state (leaking it) rather than touch it. */
static void forget_parent(void)
{
	struct p11_params params = { NULL, NULL, LOG_TO_AUTO, KMS_LOG_WARNING,
				     0, 0 };

	memset(&p11, 0, sizeof(p11));
	p11.params = params;
	atomic_store(&p11.initialized, 0);
	p11_lock_after_fork();
}

CK_RV C_Initialize(CK_VOID_PTR pInitArgs)
{
	const CK_C_INITIALIZE_ARGS *args = pInitArgs;
	char why[256];
	CK_RV rv;

	if (atomic_load(&p11.initialized)) {
		if (p11.pid == getpid())
			return CKR_CRYPTOKI_ALREADY_INITIALIZED;
		forget_parent();
	}
	rv = p11_lock_setup(args);
	if (rv != CKR_OK)
		return rv;
	rv = p11_params_parse(args != NULL ? args->pReserved : NULL,
			      &p11.params, why, sizeof(why));
	p11_log_setup(&p11.params);
	if (rv == CKR_HOST_MEMORY) {
		p11_params_clear(&p11.params);
		p11_lock_teardown();
		return rv;
	}
	if (rv != CKR_OK)
		p11_log(KMS_LOG_ERROR,
			"module parameters: %s; the module has no tokens", why);
	else
		rv = p11_profiles_open();
	if (rv == CKR_HOST_MEMORY) {
		p11_tokens_free();
		p11_profiles_close();
		p11_params_clear(&p11.params);
		p11_lock_teardown();
		return rv;
	}
	p11.pid = getpid();
	p11.next_session = 1;
	p11.next_object = 1;
	atomic_store(&p11.initialized, 1);
	return CKR_OK;
}

CK_RV C_Finalize(CK_VOID_PTR pReserved)
{
	CK_RV rv;

	if (pReserved != NULL)
		return CKR_ARGUMENTS_BAD;
	rv = p11_finalize_begin();
	if (rv != CKR_OK)
		return rv;
	p11_sessions_free();
	p11_tokens_free();
	p11_profiles_close();
	p11_lock_teardown();
	p11_params_clear(&p11.params);
	kms_set_logger(NULL, NULL);
	return CKR_OK;
}

CK_RV C_GetInfo(CK_INFO_PTR pInfo)
{
	if (!atomic_load(&p11.initialized))
		return CKR_CRYPTOKI_NOT_INITIALIZED;
	if (pInfo == NULL)
		return CKR_ARGUMENTS_BAD;
	memset(pInfo, 0, sizeof(*pInfo));
	pInfo->cryptokiVersion.major = 2;
	pInfo->cryptokiVersion.minor = 40;
	p11_pad(pInfo->manufacturerID, sizeof(pInfo->manufacturerID), "kmstore");
	p11_pad(pInfo->libraryDescription, sizeof(pInfo->libraryDescription),
		"kmstore PPK tokens");
	pInfo->libraryVersion.major = KMS_P11_VERSION_MAJOR;
	pInfo->libraryVersion.minor = KMS_P11_VERSION_MINOR;
	return CKR_OK;
}

__attribute__((visibility("default")))
CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR ppFunctionList)
{
	if (ppFunctionList == NULL)
		return CKR_ARGUMENTS_BAD;
	*ppFunctionList = &function_list;
	return CKR_OK;
}

/* Every entry is a function: NSS calls through the table without
 * checking for NULL. Those this module does not do are in stubs.c. */
static CK_FUNCTION_LIST function_list = {
	.version = { 2, 40 },
	.C_Initialize = C_Initialize,
	.C_Finalize = C_Finalize,
	.C_GetInfo = C_GetInfo,
	.C_GetFunctionList = C_GetFunctionList,
	.C_GetSlotList = C_GetSlotList,
	.C_GetSlotInfo = C_GetSlotInfo,
	.C_GetTokenInfo = C_GetTokenInfo,
	.C_GetMechanismList = C_GetMechanismList,
	.C_GetMechanismInfo = C_GetMechanismInfo,
	.C_InitToken = C_InitToken,
	.C_InitPIN = C_InitPIN,
	.C_SetPIN = C_SetPIN,
	.C_OpenSession = C_OpenSession,
	.C_CloseSession = C_CloseSession,
	.C_CloseAllSessions = C_CloseAllSessions,
	.C_GetSessionInfo = C_GetSessionInfo,
	.C_GetOperationState = C_GetOperationState,
	.C_SetOperationState = C_SetOperationState,
	.C_Login = C_Login,
	.C_Logout = C_Logout,
	.C_CreateObject = C_CreateObject,
	.C_CopyObject = C_CopyObject,
	.C_DestroyObject = C_DestroyObject,
	.C_GetObjectSize = C_GetObjectSize,
	.C_GetAttributeValue = C_GetAttributeValue,
	.C_SetAttributeValue = C_SetAttributeValue,
	.C_FindObjectsInit = C_FindObjectsInit,
	.C_FindObjects = C_FindObjects,
	.C_FindObjectsFinal = C_FindObjectsFinal,
	.C_EncryptInit = C_EncryptInit,
	.C_Encrypt = C_Encrypt,
	.C_EncryptUpdate = C_EncryptUpdate,
	.C_EncryptFinal = C_EncryptFinal,
	.C_DecryptInit = C_DecryptInit,
	.C_Decrypt = C_Decrypt,
	.C_DecryptUpdate = C_DecryptUpdate,
	.C_DecryptFinal = C_DecryptFinal,
	.C_DigestInit = C_DigestInit,
	.C_Digest = C_Digest,
	.C_DigestUpdate = C_DigestUpdate,
	.C_DigestKey = C_DigestKey,
	.C_DigestFinal = C_DigestFinal,
	.C_SignInit = C_SignInit,
	.C_Sign = C_Sign,
	.C_SignUpdate = C_SignUpdate,
	.C_SignFinal = C_SignFinal,
	.C_SignRecoverInit = C_SignRecoverInit,
	.C_SignRecover = C_SignRecover,
	.C_VerifyInit = C_VerifyInit,
	.C_Verify = C_Verify,
	.C_VerifyUpdate = C_VerifyUpdate,
	.C_VerifyFinal = C_VerifyFinal,
	.C_VerifyRecoverInit = C_VerifyRecoverInit,
	.C_VerifyRecover = C_VerifyRecover,
	.C_DigestEncryptUpdate = C_DigestEncryptUpdate,
	.C_DecryptDigestUpdate = C_DecryptDigestUpdate,
	.C_SignEncryptUpdate = C_SignEncryptUpdate,
	.C_DecryptVerifyUpdate = C_DecryptVerifyUpdate,
	.C_GenerateKey = C_GenerateKey,
	.C_GenerateKeyPair = C_GenerateKeyPair,
	.C_WrapKey = C_WrapKey,
	.C_UnwrapKey = C_UnwrapKey,
	.C_DeriveKey = C_DeriveKey,
	.C_SeedRandom = C_SeedRandom,
	.C_GenerateRandom = C_GenerateRandom,
	.C_GetFunctionStatus = C_GetFunctionStatus,
	.C_CancelFunction = C_CancelFunction,
	.C_WaitForSlotEvent = C_WaitForSlotEvent,
};
