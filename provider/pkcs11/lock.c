/* lock.c - the module lock: a pthread mutex, or the application's own
 * mutex functions when it supplies them without CKF_OS_LOCKING_OK (the
 * PKCS#11 rule for applications with their own threading). NSS passes
 * CKF_OS_LOCKING_OK, so the pthread mutex is the usual case. */
#include <pthread.h>

#include "module.h"

static pthread_mutex_t os_lock = PTHREAD_MUTEX_INITIALIZER;
static CK_LOCKMUTEX app_lock;
static CK_UNLOCKMUTEX app_unlock;
static CK_DESTROYMUTEX app_destroy;
static void *app_mutex;

static int all_or_none(const CK_C_INITIALIZE_ARGS *a)
{
	int n = (a->CreateMutex != NULL) + (a->DestroyMutex != NULL) +
		(a->LockMutex != NULL) + (a->UnlockMutex != NULL);

	return n == 0 || n == 4;
}

CK_RV p11_lock_setup(const CK_C_INITIALIZE_ARGS *args)
{
	CK_RV rv;

	app_mutex = NULL;
	if (args == NULL)
		return CKR_OK;
	if (!all_or_none(args))
		return CKR_ARGUMENTS_BAD;
	if ((args->flags & CKF_OS_LOCKING_OK) || args->CreateMutex == NULL)
		return CKR_OK;
	rv = args->CreateMutex(&app_mutex);
	if (rv != CKR_OK)
		return rv;
	app_lock = args->LockMutex;
	app_unlock = args->UnlockMutex;
	app_destroy = args->DestroyMutex;
	return CKR_OK;
}

void p11_lock_teardown(void)
{
	if (app_mutex != NULL)
		app_destroy(app_mutex);
	app_mutex = NULL;
}

/* The parent's lock may have been held by a thread that the child does
 * not have; the application's mutex is the parent's to destroy. */
void p11_lock_after_fork(void)
{
	pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;

	os_lock = fresh;
	app_mutex = NULL;
}

static void lock(void)
{
	if (app_mutex != NULL)
		app_lock(app_mutex);
	else
		pthread_mutex_lock(&os_lock);
}

void p11_leave(void)
{
	if (app_mutex != NULL)
		app_unlock(app_mutex);
	else
		pthread_mutex_unlock(&os_lock);
}

CK_RV p11_enter(void)
{
	/* Checked again under the lock: C_Finalize racing with other calls is
	 * undefined in PKCS#11, but failing cleanly costs nothing. */
	if (!atomic_load(&p11.initialized))
		return CKR_CRYPTOKI_NOT_INITIALIZED;
	lock();
	if (!atomic_load(&p11.initialized)) {
		p11_leave();
		return CKR_CRYPTOKI_NOT_INITIALIZED;
	}
	return CKR_OK;
}
