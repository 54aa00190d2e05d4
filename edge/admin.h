/* admin.h — the admin listener of one edge node (loopback by default):
 *   GET /healthz  200 "ok" while the process runs (liveness)
 *   GET /readyz   200 when the node can serve: 503 with the reason while it
 *                 has not caught up with the fleet invalidation log
 *                 (edge/follow.h) or has not heard from the control API
 *   GET /metrics  Prometheus text format (names under meshcdn_edge_)
 *   POST /purge   SigV4-authenticated purge (edge/purge.h)
 * Other paths 404, other methods 405.
 *
 * Connections get the viewer listener's defences (edge/http1.h): head size
 * and header count limits, [edge] header_timeout, a 10 s idle timeout, 4 MiB
 * bodies, and at most [edge] admin_max_connections open (more are closed at
 * accept, counted in connections_refused_total{listener="admin"}).
 *
 * Threads: runs on the main thread's event loop; reads only atomics.
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

/* The /metrics body (exposed for tests and benchmarks). */
int mc_admin_render_metrics(mc_node *node, mc_buf *out);

#endif
