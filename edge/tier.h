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
 * Health, origins: the primary and the secondary origin count their
 * consecutive failures too (connect error, timeout, 5xx). Failures never
 * take an origin out of the fetch order (it is the last resort); they make
 * it unhealthy for /readyz after tier.fail_threshold, and while it is, the
 * check thread probes it every tier.health_interval (GET of the origin URL:
 * any response below 500 is healthy again, as is a successful fetch). A
 * reload that changes an origin's URL starts its count afresh.
 *
 * Slots: health state lives in process-wide slots, one per parent name and
 * URL. A reload (snap.h) binds its parents to slots: a parent kept across a
 * reload keeps its slot, its health and its counters; a new one gets a
 * fresh slot. Requests that started under the old configuration report to
 * the slots of their own snapshot.
 *
 * Threads: every slot field is an atomic, read and written from any worker
 * and the check thread without locks. mc_tier_bind, mc_tier_configure and
 * mc_tier_shutdown are for the main thread; the check thread copies what it
 * checks under a mutex at each round, so a reload never races it.
 */
#ifndef MC_TIER_H
#define MC_TIER_H

#include <stddef.h>
#include <stdint.h>
#include "common/buf.h"
#include "edge/edgecfg.h"
#include "edge/snap.h"

/* Rendezvous score of parent name for key. */
uint64_t mc_tier_score(const char *key, size_t keylen, const char *name);
/* order[0..n) = indexes of cfg->parents in descending score for key. */
void mc_tier_rank(const mc_edge_config *cfg, const char *key, size_t keylen, int order[MC_MAX_PARENTS]);

#define MC_TIER_SLOTS 64
/* Bind parents[0..n) to health slots (slot_out[i]): the slot of the same
 * name and base URL when one exists, else a fresh one (a slot that neither
 * this nor the previous binding uses is recycled). Main thread. */
void mc_tier_bind(const mc_parent_cfg *parents, int n, int slot_out[MC_MAX_PARENTS]);
/* Follow s for the active checks and the origins' probes (main thread; at
 * start and after each reload); starts the check thread the first time.
 * s's parents must be bound. s is not kept: what is checked is copied. */
void mc_tier_configure(const mc_edge_snap *s);
/* Stop the check thread (main thread, at exit). */
void mc_tier_shutdown(void);

/* Slot may be tried now (not ejected, not down by its active check). */
int mc_tier_usable(int slot);
/* A request to the parent in slot ended: ok (a response that was not a
 * failure) or not. cfg: the request's (tier.* thresholds). */
void mc_tier_result(const mc_edge_config *cfg, int slot, int ok);
/* Count a response (code 0: none) of the parent in slot, or of the
 * secondary origin (slot = MC_TIER_SECONDARY), for
 * meshcdn_edge_upstream_requests_total. */
#define MC_TIER_SECONDARY (-1)
void mc_tier_count(int slot, int code);

/* An origin fetch ended: which 0 primary, 1 secondary; ok as for
 * mc_tier_result. */
void mc_tier_origin_result(const mc_edge_config *cfg, int which, int ok);
/* Can s's node reach an upstream: a usable parent, or an origin not
 * failing (no signal yet counts as healthy). When not, why says which
 * upstreams failed. */
int mc_tier_any_healthy(const mc_edge_snap *s, char *why, size_t n);

/* Prometheus samples: the parents' and the secondary's
 * meshcdn_edge_upstream_requests_total lines (no header: admin.c writes the
 * family's header before the origin's samples), then the
 * meshcdn_edge_parent_healthy gauge family (s's parents) and
 * meshcdn_edge_origin_healthy{origin="primary|secondary"}. */
void mc_tier_metrics_requests(mc_buf *b);
void mc_tier_metrics_health(const mc_edge_snap *s, mc_buf *b);

#endif
