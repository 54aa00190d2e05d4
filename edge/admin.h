/* admin.h — the admin listener of one edge node (loopback by default):
 *   GET /healthz  200 "ok" while the process runs (liveness)
 *   GET /readyz   200 "ready" when the node can serve; else 503 "not ready:
 *                 REASON", the first of: draining (SIGTERM); the store
 *                 unreadable or failing (store.h mc_store_check); no
 *                 upstream healthy (tier.h mc_tier_any_healthy: every
 *                 parent ejected or down and the origin(s) failing); not
 *                 caught up with the fleet invalidation log or not heard
 *                 from the control API (edge/follow.h)
 *   GET /metrics  Prometheus text format (names under meshcdn_edge_)
 *   POST /purge   SigV4-authenticated purge (edge/purge.h)
 * Other paths 404, other methods 405.
 *
 * Connections get the viewer listener's defences (edge/http1.h): head size
 * and header count limits, [edge] header_timeout, a 10 s idle timeout, 4 MiB
 * bodies, and at most [edge] admin_max_connections open (more are closed at
 * accept, counted in connections_refused_total{listener="admin"}).
 *
 * Threads: runs on the main thread's event loop (as do reloads: node->snap
 * is read without a reference); reads only atomics of the workers.
 */
#ifndef MC_ADMIN_H
#define MC_ADMIN_H

#include <event2/event.h>
#include "edge/listener.h"

typedef struct mc_admin mc_admin;

/* Listen on cfg->admin_host:admin_port; *actual_port gets the bound port. */
int mc_admin_start(mc_admin **out, struct event_base *base, mc_node *node, int *actual_port, mc_err *err);
void mc_admin_stop(mc_admin *a);
/* Readiness and metrics of the invalidation follower (NULL: none). */
struct mc_follow;
void mc_admin_set_follow(mc_admin *a, const struct mc_follow *f);

/* The /readyz verdict: 1 ready, 0 not (why gets the reason). */
int mc_admin_ready(mc_admin *a, char *why, size_t n);

/* The /metrics body (exposed for tests and benchmarks). */
int mc_admin_render_metrics(mc_node *node, mc_buf *out);

#endif
