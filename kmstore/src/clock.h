/* clock.h - the monotonic clock that deadlines, back-offs and pools are
 * computed with; internal. Header only. */
#ifndef KMS_CLOCK_H
#define KMS_CLOCK_H

#include <time.h>

/* Monotonic milliseconds (from an arbitrary origin). */
static inline long kms_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The same in microseconds, for latency figures. */
static inline long kms_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

#endif
