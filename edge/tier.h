/* tier.h — parent tiers: which parent a miss goes to, and whether it is
 * healthy.
 *
 * Choice: rendezvous (highest random weight) hashing. Each parent's score
 * for a key is XXH3-64 of KEY "\n" NAME; parents are tried in descending
 * score. Removing a parent moves only the keys it had to the others; adding
 * one takes about 1/N of every other parent's keys.
 *
 * Health, passive: a parent's consecutive failures (connect error, timeout
 * or no response head within tier.response_timeout, 5xx other than 508
 * before any body byte; upstream.c reports them) eject it
 * after tier.fail_threshold for tier.eject_time, doubling per repeated
 * ejection up to tier.eject_max. When its ejection ends it is tried again
 * (a re-probe): one success clears the count and the backoff, one failure
 * ejects it again at the next backoff.
 * Health, active: a parent with health=URL is fetched every
 * tier.health_interval by one thread (blocking libcurl, 2 s limit); not 200
 * marks it down until a check answers 200 again, which also ends a passive
 * ejection.
 *
 * Threads: one process-wide state; every field is an atomic, read and
 * written from any worker and the check thread without locks.
 * mc_tier_start/stop are reference counted (one per worker's upstream) and
 * may be called from any thread; the first start sets the state up from cfg
 * (the same cfg each time) and starts the check thread, the last stop joins it.
 */
#ifndef MC_TIER_H
#define MC_TIER_H

#include <stddef.h>
#include <stdint.h>
#include "common/buf.h"
#include "edge/edgecfg.h"

/* Rendezvous score of parent name for key. */
uint64_t mc_tier_score(const char *key, size_t keylen, const char *name);
/* order[0..n) = indexes of cfg->parents in descending score for key. */
void mc_tier_rank(const mc_edge_config *cfg, const char *key, size_t keylen, int order[MC_MAX_PARENTS]);

void mc_tier_start(const mc_edge_config *cfg);
void mc_tier_stop(void);

/* Parent i may be tried now (not ejected, not down by its active check). */
int mc_tier_usable(int i);
/* A request to parent i ended: ok (a response that was not a failure) or not. */
void mc_tier_result(int i, int ok);
/* Count a response (code 0: none) of parent i, or of the secondary origin
 * (i = MC_TIER_SECONDARY), for meshcdn_edge_upstream_requests_total. */
#define MC_TIER_SECONDARY (-1)
void mc_tier_count(int i, int code);

/* Prometheus samples: the parents' and the secondary's
 * meshcdn_edge_upstream_requests_total lines (no header: admin.c writes the
 * family's header before the origin's samples), then the
 * meshcdn_edge_parent_healthy gauge family. */
void mc_tier_metrics_requests(mc_buf *b);
void mc_tier_metrics_health(mc_buf *b);

#endif
