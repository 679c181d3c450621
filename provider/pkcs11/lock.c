/* lock.c - the module lock: a pthread mutex, or the application's own
 * mutex functions when it supplies them without CKF_OS_LOCKING_OK (the
 * PKCS#11 rule for applications with their own threading). NSS passes
 * CKF_OS_LOCKING_OK, so the pthread mutex is the usual case. */
#include <pthread.h>

#include "module.h"

static pthread_mutex_t os_lock = PTHREAD_MUTEX_INITIALIZER;
/* Calls that dropped the module lock for a fetch and will take it again:
 * C_Finalize waits for them before it frees what they use. Counted under
 * a mutex of our own, since the module lock may be the application's. */
static pthread_mutex_t flight_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t flight_done = PTHREAD_COND_INITIALIZER;
static unsigned in_flight;
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
	pthread_cond_t fresh_cond = PTHREAD_COND_INITIALIZER;

	os_lock = fresh;
	flight_lock = fresh;
	flight_done = fresh_cond;
	in_flight = 0;
	app_mutex = NULL;
}

void p11_fetch_begin(void)
{
	pthread_mutex_lock(&flight_lock);
	in_flight++;
	pthread_mutex_unlock(&flight_lock);
}

void p11_fetch_end(void)
{
	pthread_mutex_lock(&flight_lock);
	if (--in_flight == 0)
		pthread_cond_broadcast(&flight_done);
	pthread_mutex_unlock(&flight_lock);
}

/* C_Finalize: with the module marked uninitialized, every fetch in flight
 * ends within its profile's timeout, and its call then fails. */
static void wait_for_fetches(void)
{
	pthread_mutex_lock(&flight_lock);
	while (in_flight > 0)
		pthread_cond_wait(&flight_done, &flight_lock);
	pthread_mutex_unlock(&flight_lock);
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

/* C_Finalize racing with other calls is undefined in PKCS#11; here those
 * calls fail cleanly (CKR_CRYPTOKI_NOT_INITIALIZED) and nothing is freed
 * under their feet. On CKR_OK the caller frees the module's state and
 * calls p11_lock_teardown(). */
CK_RV p11_finalize_begin(void)
{
	CK_RV rv = p11_enter();

	if (rv != CKR_OK)
		return rv;
	atomic_store(&p11.initialized, 0); /* no call gets in any more */
	p11_leave();
	wait_for_fetches();
	lock(); /* after the last call that was already in */
	p11_leave();
	return CKR_OK;
}

CK_RV p11_enter(void)
{
	/* Checked again under the lock: C_Finalize may have run meanwhile. */
	if (!atomic_load(&p11.initialized))
		return CKR_CRYPTOKI_NOT_INITIALIZED;
	lock();
	if (!atomic_load(&p11.initialized)) {
		p11_leave();
		return CKR_CRYPTOKI_NOT_INITIALIZED;
	}
	return CKR_OK;
}
