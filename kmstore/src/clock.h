/* clock.h - the monotonic clock that deadlines, back-offs and pools are
 * computed with; internal. Header only.
 *
 * In int64_t, and so is every time computed from it: a 32-bit long
 * (armhf, i386) of milliseconds overflows after 24.8 days of uptime. */
#ifndef KMS_CLOCK_H
#define KMS_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Monotonic milliseconds (from an arbitrary origin). */
static inline int64_t kms_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The same in microseconds, for latency figures. */
static inline int64_t kms_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

#endif
