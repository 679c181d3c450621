/* notify.c - tells systemd (Type=notify) when kmstored is ready, reloading
 * or stopping, through libsystemd's sd_notify; nothing without it, or
 * when not started by systemd (NOTIFY_SOCKET unset). */
#include "kmstored.h"

#ifdef KMSD_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

void kmsd_notify(const char *state)
{
#ifdef KMSD_HAVE_SYSTEMD
	sd_notify(0, state);
#else
	(void)state;
#endif
}
