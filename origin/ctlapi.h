/* ctlapi.h — the fleet invalidation Control API on the origin's control
 * listener (the protocol: origin/README.md "Control API"; the picture:
 * docs/DESIGN.md "Fleet invalidation").
 *
 * Routes, every one SigV4-signed with service "meshcdn" and the origin's
 * region (curl --aws-sigv4 "aws:amz:REGION:meshcdn"):
 *   operator keys  POST /invalidations         201 {"id","seq","created","status"}
 *                  GET  /invalidations?limit=N 200 {"invalidations":[summary...]}
 *                  GET  /invalidations/ID      200 detail with per-edge state
 *                  GET  /edges                 200 {"edges":[...]}
 *   edge keys      GET  /log?node=&region=&after=&wait=  200 {"entries":[...],"last":N}
 *                  POST /ack        {"node","seq"}       200 {"ok":true}
 *                  POST /heartbeat  {"node","region"}    200 {"ok":true}
 * Errors are JSON {"error":CODE,"message":TEXT}: 400 BadRequest,
 * MalformedJSON, UnknownField, EmptyInvalidation, InvalidPath; 401
 * MissingAuthentication (unsigned); 403 InvalidAccessKeyId,
 * SignatureDoesNotMatch, RequestTimeTooSkewed, AccessDenied (also: no key
 * file configured for that side); 404 NoSuchInvalidation; 405
 * MethodNotAllowed; 503 Unavailable (the log failed, or shutting down).
 * A refused request changes nothing.
 *
 * GET /log: "last" is the log's highest seq, so more entries remain when it
 * is above the last entry's seq (answers carry at most 1000). With no entry
 * after `after`, the request is parked (wait seconds, at most 60) and
 * answered as soon as an entry is appended, or with no entries at the
 * timeout (also when another origin appends to a shared log: the log's
 * wake descriptor, mc_invlog_wake_fd, is watched on the loop). Each call is a heartbeat for node (durable), and an `after` not
 * beyond last counts as an acknowledgement (an edge's cursor is what it has
 * applied; an edge whose cursor is beyond `last` follows another log and
 * must start over). While a poll is parked its node counts as seen now. A parked
 * request whose client goes away is freed at once (connection close
 * callback).
 *
 * Without a log (NULL: the default db directory could not be opened) every
 * authorised request gets 503 Unavailable and the origin serves S3 as before.
 *
 * Threads: everything on the loop thread of base. Ownership: mc_ctlapi
 * borrows the control router, the log, the keys and region (all outlive it);
 * it owns parked requests and answers them (503) in mc_ctlapi_free, which
 * must run before the evhttp is freed.
 * Errors: 0 or MC_E_NOMEM / MC_E_INVAL.
 */
#ifndef MC_CTLAPI_H
#define MC_CTLAPI_H

#include <stddef.h>
#include <stdint.h>
#include "common/buf.h"
#include "common/keys.h"
#include "origin/control.h"
#include "origin/invlog.h"

struct event_base;

#define MC_CTLAPI_MAX_WAIT_S 60
#define MC_CTLAPI_DEFAULT_LIMIT 100
#define MC_CTLAPI_MAX_LIMIT 1000

typedef struct mc_ctlapi_config {
    const mc_keys *operator_keys;    /* NULL: operator routes answer 403 AccessDenied */
    const mc_keys *edge_keys;        /* NULL: edge routes answer 403 AccessDenied */
    const char *region;              /* "us-east-1" */
    int max_skew_s;                  /* 900 */
    int64_t unreachable_after_s;     /* 30 */
    size_t max_body_bytes;           /* bodies beyond are refused (413 from evhttp first) */
    int64_t conn_timeout_s;          /* the listener's timeout, restored after a poll */
} mc_ctlapi_config;

typedef struct mc_ctlapi mc_ctlapi;

/* Register the routes on ctl and a /metrics renderer:
 *   meshcdn_origin_invalidations_total{source="api"|"write"}  counter
 *   meshcdn_origin_control_edges{state="live"|"unreachable"}  gauge
 *   meshcdn_origin_control_log_last_seq                       gauge
 *   meshcdn_origin_control_polls_parked                       gauge
 *   meshcdn_origin_control_auth_failures_total{reason}        counter */
int mc_ctlapi_new(mc_ctlapi **out, struct event_base *base, mc_control *ctl, mc_invlog *log,
                  const mc_ctlapi_config *cfg);
void mc_ctlapi_free(mc_ctlapi *api);

/* Append an invalidation of one exact viewer path (invalidate_on_write).
 * 0, the log's error, or MC_E_STATE without a log. */
int mc_ctlapi_invalidate_path(mc_ctlapi *api, const char *viewer_path);

/* The viewer path edges use for an S3 wire path "/BUCKET/KEY": the path
 * normalised as an edge normalises it, without "/BUCKET" ("/KEY"). An
 * object key ending in '*' yields a prefix (over-invalidating is safe).
 * 0, MC_E_INVAL (no key), MC_E_NOMEM. */
int mc_ctlapi_viewer_path(const char *s3_raw_path, mc_buf *out);

#endif
