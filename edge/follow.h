/* follow.h — this node's side of fleet invalidation: following the control
 * API's log (origin/ctlapi.h; the protocol in origin/README.md).
 *
 * With [edge] control = URL (or URL,URL,...: control APIs sharing one log,
 * the etcd backend; the next is tried when one fails) the node long-polls GET /log?after=CURSOR with
 * its signed identity (node id, region; SigV4 service "meshcdn" with
 * [control] credentials, by default the origin credentials), applies each
 * entry in order as a store purge (edge/store.h) whose last transaction also
 * stores the cursor, so the cursor never runs ahead of what was applied and
 * a crash re-applies at most the entry in progress (purges are idempotent),
 * then acknowledges with POST /ack. Each poll is also the node's heartbeat.
 *
 * Start-up: mc_follow_start first catches up synchronously, everything after
 * the stored cursor, before the caller opens the viewer listeners, so a node
 * that was down never serves content purged meanwhile. If the control API
 * does not answer within [control] startup_wait the node starts anyway and
 * reports itself not ready (/readyz 503) until it has caught up.
 *
 * Threads: one follower thread with a blocking libcurl easy handle (off
 * every event loop); mc_follow_ready and the counters are atomics, read from
 * the admin loop.
 */
#ifndef MC_FOLLOW_H
#define MC_FOLLOW_H

#include <stdint.h>
#include "common/err.h"
#include "common/buf.h"
#include "edge/edgecfg.h"
#include "edge/store.h"

#define MC_FOLLOW_MAX_URLS 8

typedef struct mc_follow mc_follow;

/* Catch up (bounded by startup_wait), then follow in a thread. Returns 0 (a
 * follower runs, caught up or not), or a negative MC_E_* for a bad
 * configuration (err says what). With no control URL configured, *out is
 * NULL and 0 is returned. */
int mc_follow_start(mc_follow **out, const mc_edge_config *cfg, mc_store *store, mc_err *err);
/* Stop the thread (a long poll in progress is cut short) and free. */
void mc_follow_stop(mc_follow *f);

/* Ready as far as invalidation goes: no follower, or caught up with the log
 * and heard from the control API recently. why (may be NULL) gets a reason
 * when not. */
int mc_follow_ready(const mc_follow *f, char *why, size_t n);

/* Prometheus lines: cursor, entries applied, control API reachable. */
void mc_follow_render_metrics(const mc_follow *f, mc_buf *b);

#endif
