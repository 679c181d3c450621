/* stubs.c - the PKCS#11 functions this module does not implement. They
 * exist because NSS calls through the function table without checking
 * for NULL. The tokens compute nothing: NSS reads a key's value and
 * computes with it in its own softoken; no mechanism but
 * CKM_GENERIC_SECRET_KEY_GEN is listed, so well-behaved callers never get
 * here. */
#include "module.h"

/* A stub ignores its arguments by definition. */
#pragma GCC diagnostic ignored "-Wunused-parameter"

#define NOT_SUPPORTED { return CKR_FUNCTION_NOT_SUPPORTED; }

/* Slot and token management: tokens are configured in kmstore.conf. */
CK_RV C_InitToken(CK_SLOT_ID slot, CK_UTF8CHAR_PTR pin, CK_ULONG pin_len,
		  CK_UTF8CHAR_PTR label) NOT_SUPPORTED
CK_RV C_InitPIN(CK_SESSION_HANDLE session, CK_UTF8CHAR_PTR pin,
		CK_ULONG pin_len) NOT_SUPPORTED
CK_RV C_SetPIN(CK_SESSION_HANDLE session, CK_UTF8CHAR_PTR old_pin,
	       CK_ULONG old_len, CK_UTF8CHAR_PTR new_pin,
	       CK_ULONG new_len) NOT_SUPPORTED

/* Session management. */
CK_RV C_GetOperationState(CK_SESSION_HANDLE session, CK_BYTE_PTR state,
			  CK_ULONG_PTR state_len) NOT_SUPPORTED
CK_RV C_SetOperationState(CK_SESSION_HANDLE session, CK_BYTE_PTR state,
			  CK_ULONG state_len, CK_OBJECT_HANDLE enc_key,
			  CK_OBJECT_HANDLE auth_key) NOT_SUPPORTED

/* Object management: keys come from profiles, not from applications. */
CK_RV C_CreateObject(CK_SESSION_HANDLE session, CK_ATTRIBUTE_PTR templ,
		     CK_ULONG count, CK_OBJECT_HANDLE_PTR object) NOT_SUPPORTED
CK_RV C_CopyObject(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object,
		   CK_ATTRIBUTE_PTR templ, CK_ULONG count,
		   CK_OBJECT_HANDLE_PTR new_object) NOT_SUPPORTED

/* Encryption and decryption. */
CK_RV C_EncryptInit(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mech,
		    CK_OBJECT_HANDLE key) NOT_SUPPORTED
CK_RV C_Encrypt(CK_SESSION_HANDLE session, CK_BYTE_PTR data, CK_ULONG data_len,
		CK_BYTE_PTR out, CK_ULONG_PTR out_len) NOT_SUPPORTED
CK_RV C_EncryptUpdate(CK_SESSION_HANDLE session, CK_BYTE_PTR part,
		      CK_ULONG part_len, CK_BYTE_PTR out,
		      CK_ULONG_PTR out_len) NOT_SUPPORTED
CK_RV C_EncryptFinal(CK_SESSION_HANDLE session, CK_BYTE_PTR out,
		     CK_ULONG_PTR out_len) NOT_SUPPORTED
CK_RV C_DecryptInit(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mech,
		    CK_OBJECT_HANDLE key) NOT_SUPPORTED
CK_RV C_Decrypt(CK_SESSION_HANDLE session, CK_BYTE_PTR data, CK_ULONG data_len,
		CK_BYTE_PTR out, CK_ULONG_PTR out_len) NOT_SUPPORTED
CK_RV C_DecryptUpdate(CK_SESSION_HANDLE session, CK_BYTE_PTR part,
		      CK_ULONG part_len, CK_BYTE_PTR out,
		      CK_ULONG_PTR out_len) NOT_SUPPORTED
CK_RV C_DecryptFinal(CK_SESSION_HANDLE session, CK_BYTE_PTR out,
		     CK_ULONG_PTR out_len) NOT_SUPPORTED

/* Message digesting. */
CK_RV C_DigestInit(CK_SESSION_HANDLE session,
		   CK_MECHANISM_PTR mech) NOT_SUPPORTED
CK_RV C_Digest(CK_SESSION_HANDLE session, CK_BYTE_PTR data, CK_ULONG data_len,
	       CK_BYTE_PTR out, CK_ULONG_PTR out_len) NOT_SUPPORTED
CK_RV C_DigestUpdate(CK_SESSION_HANDLE session, CK_BYTE_PTR part,
		     CK_ULONG part_len) NOT_SUPPORTED
CK_RV C_DigestKey(CK_SESSION_HANDLE session,
		  CK_OBJECT_HANDLE key) NOT_SUPPORTED
CK_RV C_DigestFinal(CK_SESSION_HANDLE session, CK_BYTE_PTR out,
		    CK_ULONG_PTR out_len) NOT_SUPPORTED

/* Signing and MACing, verification. */
CK_RV C_SignInit(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mech,
		 CK_OBJECT_HANDLE key) NOT_SUPPORTED
CK_RV C_Sign(CK_SESSION_HANDLE session, CK_BYTE_PTR data, CK_ULONG data_len,
	     CK_BYTE_PTR sig, CK_ULONG_PTR sig_len) NOT_SUPPORTED
CK_RV C_SignUpdate(CK_SESSION_HANDLE session, CK_BYTE_PTR part,
		   CK_ULONG part_len) NOT_SUPPORTED
CK_RV C_SignFinal(CK_SESSION_HANDLE session, CK_BYTE_PTR sig,
		  CK_ULONG_PTR sig_len) NOT_SUPPORTED
CK_RV C_SignRecoverInit(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mech,
			CK_OBJECT_HANDLE key) NOT_SUPPORTED
CK_RV C_SignRecover(CK_SESSION_HANDLE session, CK_BYTE_PTR data,
		    CK_ULONG data_len, CK_BYTE_PTR sig,
		    CK_ULONG_PTR sig_len) NOT_SUPPORTED
CK_RV C_VerifyInit(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mech,
		   CK_OBJECT_HANDLE key) NOT_SUPPORTED
CK_RV C_Verify(CK_SESSION_HANDLE session, CK_BYTE_PTR data, CK_ULONG data_len,
	       CK_BYTE_PTR sig, CK_ULONG sig_len) NOT_SUPPORTED
CK_RV C_VerifyUpdate(CK_SESSION_HANDLE session, CK_BYTE_PTR part,
		     CK_ULONG part_len) NOT_SUPPORTED
CK_RV C_VerifyFinal(CK_SESSION_HANDLE session, CK_BYTE_PTR sig,
		    CK_ULONG sig_len) NOT_SUPPORTED
CK_RV C_VerifyRecoverInit(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mech,
			  CK_OBJECT_HANDLE key) NOT_SUPPORTED
CK_RV C_VerifyRecover(CK_SESSION_HANDLE session, CK_BYTE_PTR sig,
		      CK_ULONG sig_len, CK_BYTE_PTR data,
		      CK_ULONG_PTR data_len) NOT_SUPPORTED

/* Dual-function operations. */
CK_RV C_DigestEncryptUpdate(CK_SESSION_HANDLE session, CK_BYTE_PTR part,
			    CK_ULONG part_len, CK_BYTE_PTR out,
			    CK_ULONG_PTR out_len) NOT_SUPPORTED
CK_RV C_DecryptDigestUpdate(CK_SESSION_HANDLE session, CK_BYTE_PTR part,
			    CK_ULONG part_len, CK_BYTE_PTR out,
			    CK_ULONG_PTR out_len) NOT_SUPPORTED
CK_RV C_SignEncryptUpdate(CK_SESSION_HANDLE session, CK_BYTE_PTR part,
			  CK_ULONG part_len, CK_BYTE_PTR out,
			  CK_ULONG_PTR out_len) NOT_SUPPORTED
CK_RV C_DecryptVerifyUpdate(CK_SESSION_HANDLE session, CK_BYTE_PTR part,
			    CK_ULONG part_len, CK_BYTE_PTR out,
			    CK_ULONG_PTR out_len) NOT_SUPPORTED

/* Key management other than C_GenerateKey (key.c). */
CK_RV C_GenerateKeyPair(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mech,
			CK_ATTRIBUTE_PTR pub_templ, CK_ULONG pub_count,
			CK_ATTRIBUTE_PTR priv_templ, CK_ULONG priv_count,
			CK_OBJECT_HANDLE_PTR pub,
			CK_OBJECT_HANDLE_PTR priv) NOT_SUPPORTED
CK_RV C_WrapKey(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mech,
		CK_OBJECT_HANDLE wrapping_key, CK_OBJECT_HANDLE key,
		CK_BYTE_PTR out, CK_ULONG_PTR out_len) NOT_SUPPORTED
CK_RV C_UnwrapKey(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mech,
		  CK_OBJECT_HANDLE unwrapping_key, CK_BYTE_PTR wrapped,
		  CK_ULONG wrapped_len, CK_ATTRIBUTE_PTR templ, CK_ULONG count,
		  CK_OBJECT_HANDLE_PTR key) NOT_SUPPORTED
CK_RV C_DeriveKey(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mech,
		  CK_OBJECT_HANDLE base_key, CK_ATTRIBUTE_PTR templ,
		  CK_ULONG count, CK_OBJECT_HANDLE_PTR key) NOT_SUPPORTED

/* Random numbers: the token has none to give (no CKF_RNG). */
CK_RV C_SeedRandom(CK_SESSION_HANDLE session, CK_BYTE_PTR seed,
		   CK_ULONG seed_len) NOT_SUPPORTED
CK_RV C_GenerateRandom(CK_SESSION_HANDLE session, CK_BYTE_PTR out,
		       CK_ULONG out_len) NOT_SUPPORTED

/* Legacy parallel functions: PKCS#11 prescribes this answer. */
CK_RV C_GetFunctionStatus(CK_SESSION_HANDLE session)
{
	return CKR_FUNCTION_NOT_PARALLEL;
}

CK_RV C_CancelFunction(CK_SESSION_HANDLE session)
{
	return CKR_FUNCTION_NOT_PARALLEL;
}
