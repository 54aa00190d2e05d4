/* upstream.h — fetching from the origin: libcurl's multi interface driven by
 * the worker's libevent loop, each request signed with SigV4 the way
 * CloudFront's Origin Access Control signs (service s3; signed host,
 * x-amz-content-sha256, x-amz-date and, with temporary credentials,
 * x-amz-security-token: see signer.h; the payload UNSIGNED-PAYLOAD without
 * a body, else the body's real SHA-256).
 *
 * Upstreams (tier.h): mc_upstream_get tries, in order, the usable parents
 * ([parents]) in the rendezvous order of path?query, then the primary origin,
 * then the secondary ([origin] secondary_url). It moves on after a connect
 * error or timeout before any response header, after a parent's 5xx (not
 * 508: a loop is an answer) and after a primary status listed in
 * failover_statuses when a secondary exists: always before on_headers, so
 * the caller sees one transfer and one response. A parent gets the viewer
 * path (no origin path prefix) unsigned, with Host set to the parent's
 * host:port; the secondary is signed for its own host. Each attempt is
 * counted per upstream (meshcdn_edge_upstream_requests_total: "origin",
 * "origin-secondary", the parent's name) and reported to tier.h's health.
 * mc_upstream_send (pass-through) goes to the primary origin only.
 *
 * Threads: one mc_upstream per worker; all calls and callbacks on that
 * worker's loop. No DNS, connect or read ever blocks the loop.
 * Ownership: an mc_upstream_xfer belongs to the upstream until on_done has
 * returned (then it is freed) or mc_upstream_cancel is called (then there is
 * no on_done).
 */
#ifndef MC_UPSTREAM_H
#define MC_UPSTREAM_H

#include <event2/event.h>
#include <stdint.h>
#include "common/buf.h"
#include "edge/edgecfg.h"
#include "edge/http1.h"
#include "edge/snap.h"

typedef struct mc_upstream mc_upstream;
typedef struct mc_upstream_xfer mc_upstream_xfer;

typedef struct mc_upstream_cbs {
    /* The final response head arrived (1xx skipped). content_length is -1
     * when the upstream did not send one, 0 for 204 and 304 (no body, whatever
     * their Content-Length says). Return 0 to go on, < 0 to abort. */
    int (*on_headers)(void *arg, int status, const mc_http_header *h, int n, int64_t content_length);
    /* Body bytes. Return 0 when consumed, MC_UPSTREAM_PAUSE to pause the
     * transfer without consuming them (they are offered again after
     * mc_upstream_resume), < 0 to abort. */
    int (*on_body)(void *arg, const void *data, size_t len);
    /* The transfer ended: rc 0 (complete: all of Content-Length arrived), or
     * MC_E_TRUNCATED (connection lost mid-body), MC_E_IO (connect/reset/
     * protocol error), MC_E_BUSY (timed out), MC_E_STATE (aborted by a
     * callback). why is for logs. */
    void (*on_done)(void *arg, int rc, const char *why);
} mc_upstream_cbs;

#define MC_UPSTREAM_PAUSE 1

/* Configuration: each transfer takes a reference to the snapshot it is
 * given (snap.h) and reads everything from it until it ends: upstream URLs,
 * parents, signers (the snapshot's, shared by the workers), timeouts. HTTPS
 * origins are verified (certificate chain and host name, TLS >= 1.2) against
 * origin.ca_file / ca_dir or the system's CAs, unless origin.insecure; a
 * failed verification ends the transfer with MC_E_IO before any header. */
int mc_upstream_new(mc_upstream **out, struct event_base *base);
void mc_upstream_free(mc_upstream *u);

/* Seconds since x began (its first attempt), for the access log's upstream time. */
double mc_upstream_elapsed(const mc_upstream_xfer *x);

/* GET origin_path + path (+ "?" query). path must already be in the S3
 * canonical encoding (mc_sigv4_s3_path), so what is signed is what is sent.
 * extra_headers: "Name: value" strings (NULL-terminated array) or NULL. */
mc_upstream_xfer *mc_upstream_get(mc_upstream *u, mc_edge_snap *snap, const char *path, const char *query,
                                  const char *const *extra_headers, const mc_upstream_cbs *cbs,
                                  void *arg);
/* Any method, with a body or not (request pass-through, pass.h). The body
 * is borrowed: it must stay valid until on_done has run or the transfer is
 * cancelled. Headers as for mc_upstream_get; without a Content-Type of the
 * caller's none is sent. */
typedef struct mc_upstream_req {
    const char *method;               /* NULL: GET */
    const char *path;                 /* as for mc_upstream_get */
    const char *query;
    const char *const *headers;       /* "Name: value", NULL-terminated, or NULL */
    const void *body;
    size_t body_len;
    int has_body;                     /* send body (Content-Length: body_len) */
} mc_upstream_req;
mc_upstream_xfer *mc_upstream_send(mc_upstream *u, mc_edge_snap *snap, const mc_upstream_req *rq,
                                   const mc_upstream_cbs *cbs, void *arg);

/* Preconnect (prefetch.h): open up to n TCP connections (n counted with
 * those already pooled for the address) to x's current upstream in the
 * background, so that the fills that follow find them. They wait in a
 * per-worker pool keyed by address (at most 64 sockets per worker); curl
 * gets one (CURLOPT_OPENSOCKETFUNCTION, then CURLOPT_SOCKOPTFUNCTION says
 * CURL_SOCKOPT_ALREADY_CONNECTED) whenever it opens a new connection to
 * that address, on any transfer of the worker; TLS, when the upstream is
 * https, is still curl's, on top. The address is the one curl last opened
 * to x's host:port (its resolver stays the only one): when this worker has
 * not connected there yet, the connections are opened once curl opens x's
 * own. Either way they are opened 1 ms later (a timer), so x's own
 * connection reaches the upstream first. A pooled socket is closed unused after [prefetch]
 * preconnect_idle connected, or when the peer closes it. Counted in
 * meshcdn_edge_upstream_preconnects_total{result=used|expired|failed} and
 * _opened_total (mc_upstream_metrics). n <= 0: nothing. */
void mc_upstream_preconnect(mc_upstream_xfer *x, int n);
/* Prometheus text of the preconnect counters (admin.c). */
void mc_upstream_metrics(mc_buf *b);

void mc_upstream_resume(mc_upstream_xfer *x);
void mc_upstream_cancel(mc_upstream_xfer *x);

#endif
