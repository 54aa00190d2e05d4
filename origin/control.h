/* control.h — the origin's control listener and the counters it exposes.
 *
 * Routes (all on the control listener, never on the S3 one):
 *   GET /healthz  200 "ok\n"                      open, for load balancers
 *   GET /metrics  200 Prometheus text format      open, for scrapers
 * A module that owns a feature (the fleet invalidation API, origin/ctlapi.h)
 * registers its handlers with mc_control_route (and does its own SigV4
 * check with origin/auth.h, service "meshcdn") and may add its own lines to
 * /metrics with mc_control_add_metrics; this file only dispatches. An
 * unknown path gets 404, a known path with another method 405 with an
 * Allow header.
 *
 * Metrics (mc_control_metrics, written by the S3 listener):
 *   meshcdn_origin_requests_total{method,code}   counter
 *   meshcdn_origin_bytes_sent_total              counter (body bytes queued)
 *   meshcdn_origin_auth_failures_total{reason}   counter; reason is
 *       missing|malformed|unknown_key|mismatch|skew|expired|other
 *
 * Threads: routes are added and the listener runs on the thread of the
 * event base that owns the evhttp; the counters may be bumped from any thread
 * (relaxed atomics) and rendered from any thread.
 * Ownership: mc_control borrows the evhttp and the metrics (both must
 * outlive it) and owns its route table; mc_control_free releases it.
 * Errors: 0 or MC_E_NOMEM / MC_E_INVAL.
 */
#ifndef MC_CONTROL_H
#define MC_CONTROL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include "common/buf.h"

struct evhttp;
struct evhttp_request;

enum {
    MC_CTL_GET, MC_CTL_HEAD, MC_CTL_PUT, MC_CTL_DELETE, MC_CTL_POST, MC_CTL_OTHER,
    MC_CTL_METHODS
};
enum {
    MC_CTL_AUTH_MISSING, MC_CTL_AUTH_MALFORMED, MC_CTL_AUTH_UNKNOWN_KEY,
    MC_CTL_AUTH_MISMATCH, MC_CTL_AUTH_SKEW, MC_CTL_AUTH_EXPIRED, MC_CTL_AUTH_OTHER,
    MC_CTL_AUTH_REASONS
};
#define MC_CTL_STATUS_MIN 100
#define MC_CTL_STATUS_MAX 599

typedef struct mc_control_metrics {
    _Atomic uint64_t requests[MC_CTL_METHODS][MC_CTL_STATUS_MAX - MC_CTL_STATUS_MIN + 1];
    _Atomic uint64_t bytes_sent;
    _Atomic uint64_t auth_failures[MC_CTL_AUTH_REASONS];
} mc_control_metrics;

/* Count one answered S3 request (method as sent, "GET"; status 100..599). */
void mc_control_count_request(mc_control_metrics *m, const char *method, int status,
                              uint64_t bytes);
/* Count one failed authentication; reason as from mc_auth_reason(). */
void mc_control_count_auth_failure(mc_control_metrics *m, const char *reason);
/* Append the Prometheus text of every counter to out. */
int mc_control_render_metrics(mc_control_metrics *m, mc_buf *out);

typedef struct mc_control mc_control;

/* A route handler: must answer req (evhttp_send_reply or similar). */
typedef void (*mc_control_handler)(struct evhttp_request *req, void *ud);

/* Take over http's generic callback and register /healthz and /metrics. */
int mc_control_new(mc_control **out, struct evhttp *http, mc_control_metrics *m);
/* Register fn for path (exact match on the path without query, or every
 * path under it when prefix is true) and the EVHTTP_REQ_* bits in methods.
 * The first matching route wins. */
int mc_control_route(mc_control *c, const char *path, bool prefix, unsigned methods,
                     mc_control_handler fn, void *ud);
/* Append fn's Prometheus text to every /metrics answer, after the counters
 * above (at most MC_CONTROL_MAX_RENDERERS; MC_E_TOOBIG beyond). fn returns 0
 * or MC_E_NOMEM. */
#define MC_CONTROL_MAX_RENDERERS 4
typedef int (*mc_control_render_fn)(void *ud, mc_buf *out);
int mc_control_add_metrics(mc_control *c, mc_control_render_fn fn, void *ud);
void mc_control_free(mc_control *c);

#endif
