/*
 * kme-sim: fault injection, so that clients can be tested against the
 * misbehaviour of real KMEs and networks (see docs/kme-sim.md).
 *
 * A rule is `[kme=ID:]KIND[=ARG][:PCT][,kme=ID][,path=EP[+EP]][,count=N]`.
 * For each request the rules are tried in order: every latency rule that
 * fires adds its delay, and the first other rule that fires decides what
 * happens to the request.
 */
#ifndef KME_SIM_FAULT_H
#define KME_SIM_FAULT_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "kme.h"

enum fault_kind {
	FAULT_LATENCY,
	FAULT_503,
	FAULT_DROP,
	FAULT_MALFORMED,
	FAULT_TRUNCATED,
	FAULT_OVERSIZED,
	FAULT_HTML_ERROR,
	FAULT_STATUS,
	FAULT_WRONG_LENGTH,
	FAULT_WRONG_ID,
	FAULT_EXTRA_KEY,
	FAULT_BLACKHOLE,
};

/* Endpoints, as a bit mask, for rules limited with path=. */
enum fault_endpoint {
	FAULT_EP_STATUS = 1,
	FAULT_EP_ENC = 2,
	FAULT_EP_DEC = 4,
	FAULT_EP_OTHER = 8,
};

struct fault_rule {
	enum fault_kind kind;
	unsigned long arg;  /* ms, HTTP status or bytes, by kind */
	unsigned pct;       /* chance to fire, percent */
	char *kme;          /* only at this KME or listener, or NULL */
	unsigned endpoints; /* mask of enum fault_endpoint */
	long remaining;     /* fires left; -1: no limit */
	unsigned long after; /* matching requests still to let pass */
	char *text;         /* the rule as given, for the log */
};

struct fault_set {
	struct fault_rule *v;
	size_t n;
	pthread_mutex_t lock; /* guards `remaining` */
};

/* What to do with one request. */
struct fault_choice {
	unsigned long latency_ms;
	/* NULL: answer normally. A rule that alters keys is only chosen:
	 * fault_keys_answered() says whether it fires. */
	const struct fault_rule *rule;
	char desc[160];                /* for the log: "-" when none fired */
	/* the request, for fault_keys_answered() */
	const char *kme_id, *listener;
	unsigned endpoint;
};

void fault_set_init(struct fault_set *fs);
void fault_set_free(struct fault_set *fs);
/* Parse and add one rule; on error a message in err, -1. */
int fault_add(struct fault_set *fs, const char *spec, char *err,
	      size_t errlen);
/* For a request at listener `listener` (ID/N, N from 1) of KME kme_id. */
void fault_pick(struct fault_set *fs, const char *kme_id, const char *listener,
		unsigned endpoint, struct fault_choice *out);

/* The request is answered with keys: the rule of fc that alters them,
 * if it fires, counted (count=, after=) and added to fc->desc; NULL: the
 * keys go as they are. The rules that alter keys count only such answers:
 * a request refused with 400 or 503 is not one they applied to. */
const struct fault_rule *fault_keys_answered(struct fault_set *fs,
					     struct fault_choice *fc);

/* Faults that replace the whole answer, rather than alter the keys. */
bool fault_replaces_answer(const struct fault_rule *r);
/* The response for such a fault at KME kme_id; NULL for drop and
 * blackhole, which have none. *status gets the HTTP status. */
struct MHD_Response *fault_response(const struct fault_rule *r,
				    const char *kme_id, unsigned *status);
/* Apply wrong-length, wrong-id or extra-key to a key container. */
int fault_alter_keys(const struct fault_rule *r, struct kme_keys *keys);

/* Waits that end early when the process shuts down. */
void fault_sleep_ms(unsigned long ms);
void fault_wait_for_shutdown(void);
void fault_begin_shutdown(void);

#endif
