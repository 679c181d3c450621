/* session.c - PKCS#11 session management. Sessions are cheap records
 * (slot, flags, a search in progress); closing one destroys and wipes the
 * session objects it created. There is no login: C_Login succeeds without
 * checking anything, for applications that log in by habit. */
#include <stdlib.h>
#include <string.h>

#include "module.h"

struct p11_session *p11_session_get(CK_SESSION_HANDLE h)
{
	for (size_t i = 0; i < p11.n_sessions; i++)
		if (p11.sessions[i]->handle == h)
			return p11.sessions[i];
	return NULL;
}

static CK_RV add_session(struct p11_session *s)
{
	if (p11.n_sessions == p11.cap_sessions) {
		size_t cap = p11.cap_sessions ? 2 * p11.cap_sessions : 16;
		struct p11_session **n = realloc(p11.sessions, cap * sizeof(*n));

		if (n == NULL)
			return CKR_HOST_MEMORY;
		p11.sessions = n;
		p11.cap_sessions = cap;
	}
	p11.sessions[p11.n_sessions++] = s;
	return CKR_OK;
}

static void free_session(struct p11_session *s)
{
	struct p11_token *t = p11_token_get(s->slot);

	if (t != NULL)
		p11_token_drop_session(t, s->handle);
	free(s->found);
	free(s);
}

static void close_at(size_t i)
{
	free_session(p11.sessions[i]);
	p11.sessions[i] = p11.sessions[--p11.n_sessions];
}

void p11_sessions_free(void)
{
	while (p11.n_sessions > 0)
		close_at(p11.n_sessions - 1);
	free(p11.sessions);
	p11.sessions = NULL;
	p11.cap_sessions = 0;
}

CK_RV C_OpenSession(CK_SLOT_ID slotID, CK_FLAGS flags, CK_VOID_PTR pApplication,
		    CK_NOTIFY Notify, CK_SESSION_HANDLE_PTR phSession)
{
	struct p11_session *s;
	struct p11_token *t;
	CK_RV rv;

	(void)pApplication;
	(void)Notify; /* no callbacks: nothing here runs long enough */
	if (phSession == NULL)
		return CKR_ARGUMENTS_BAD;
	if (!(flags & CKF_SERIAL_SESSION))
		return CKR_SESSION_PARALLEL_NOT_SUPPORTED;
	rv = p11_enter();
	if (rv != CKR_OK)
		return rv;
	if ((rv = p11_slot_token(slotID, &t)) != CKR_OK) {
		p11_leave();
		return rv;
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL || (rv = add_session(s)) != CKR_OK) {
		free(s);
		p11_leave();
		return CKR_HOST_MEMORY;
	}
	s->handle = p11.next_session++;
	s->slot = slotID;
	s->flags = flags & (CKF_SERIAL_SESSION | CKF_RW_SESSION);
	*phSession = s->handle;
	p11_leave();
	return CKR_OK;
}

CK_RV C_CloseSession(CK_SESSION_HANDLE hSession)
{
	CK_RV rv = p11_enter();

	if (rv != CKR_OK)
		return rv;
	rv = CKR_SESSION_HANDLE_INVALID;
	for (size_t i = 0; i < p11.n_sessions; i++)
		if (p11.sessions[i]->handle == hSession) {
			close_at(i);
			rv = CKR_OK;
			break;
		}
	p11_leave();
	return rv;
}

CK_RV C_CloseAllSessions(CK_SLOT_ID slotID)
{
	struct p11_token *t;
	CK_RV rv = p11_enter();

	if (rv != CKR_OK)
		return rv;
	if ((rv = p11_slot_token(slotID, &t)) != CKR_OK) {
		p11_leave();
		return rv;
	}
	for (size_t i = p11.n_sessions; i-- > 0;)
		if (p11.sessions[i]->slot == slotID)
			close_at(i);
	p11_leave();
	return CKR_OK;
}

CK_RV C_GetSessionInfo(CK_SESSION_HANDLE hSession, CK_SESSION_INFO_PTR pInfo)
{
	struct p11_session *s;
	CK_RV rv;

	if (pInfo == NULL)
		return CKR_ARGUMENTS_BAD;
	rv = p11_enter();
	if (rv != CKR_OK)
		return rv;
	s = p11_session_get(hSession);
	if (s != NULL) {
		pInfo->slotID = s->slot;
		pInfo->flags = s->flags;
		pInfo->state = (s->flags & CKF_RW_SESSION) ? CKS_RW_PUBLIC_SESSION
							   : CKS_RO_PUBLIC_SESSION;
		/* The kmstore result code of the session's last failed
		 * fetch: PKCS#11 has no room for the message, which is
		 * logged. */
		pInfo->ulDeviceError = s->device_error;
	}
	p11_leave();
	return s != NULL ? CKR_OK : CKR_SESSION_HANDLE_INVALID;
}

static CK_RV check_session(CK_SESSION_HANDLE hSession)
{
	CK_RV rv = p11_enter();

	if (rv != CKR_OK)
		return rv;
	rv = p11_session_get(hSession) ? CKR_OK : CKR_SESSION_HANDLE_INVALID;
	p11_leave();
	return rv;
}

CK_RV C_Login(CK_SESSION_HANDLE hSession, CK_USER_TYPE userType,
	      CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen)
{
	CK_RV rv = check_session(hSession);

	(void)pPin;
	(void)ulPinLen;
	if (rv == CKR_OK && userType != CKU_USER)
		rv = CKR_USER_TYPE_INVALID;
	return rv;
}

CK_RV C_Logout(CK_SESSION_HANDLE hSession)
{
	return check_session(hSession);
}
