/* pass.h — requests a cache cannot answer, passed through to the origin:
 * POST, PUT, PATCH, DELETE, OPTIONS and methods the edge does not know
 * (RFC 9111 4.4), where the path's behavior allows them (`methods = all`,
 * the default; `read` answers them 405).
 *
 * The request goes upstream with its body (read whole by http1, up to
 * edge.max_request_body; 413 beyond), its query as received and the viewer's
 * end-to-end headers: hop-by-hop fields are dropped, Via and CDN-Loop get
 * this node appended, and to a signed origin Authorization and x-amz-* are
 * replaced by the edge's own SigV4 signature over the real payload hash
 * (x-amz-content-sha256 = SHA-256 of the body). The answer is relayed as it
 * arrives, with the same backlog bound as a fill (store.fill_buffer), and is
 * never stored (Cache-Status: fwd=method).
 *
 * Invalidation (RFC 9111 4.4): when a method other than OPTIONS gets a 2xx or
 * 3xx, the stored responses for the target URI and for the answer's Location
 * and Content-Location URIs are purged (hard; the exact key strings, which
 * also cover their Vary variants and, for a URI without a query, its query
 * variants: common/invspec.h). Nothing is purged when none of them is stored
 * or being filled (the purge generation is not bumped for nothing). Location and
 * Content-Location count only when they name the same host: relative, or
 * absolute with the request's Host or the origin's host (whose bucket path
 * is taken off). The viewer's response starts only once the store has
 * committed the purge, so the viewer's next request cannot meet the old
 * copy; a fill in flight for those URIs never publishes (store.h generations).
 *
 * Threads: the worker's loop; the purge's completion comes back through the
 * worker mailbox.
 * Ownership: the pass lives until its response ended (or its connection
 * died), its transfer ended (or was cancelled) and its purge was answered.
 *
 * A GET or HEAD with Authorization to an unsigned origin ([origin] sign =
 * none: an arbitrary HTTP origin that may check it) is passed the same way,
 * with the header, and neither stored nor answered from the store
 * (Cache-Status: fwd=bypass) and invalidates nothing: RFC 9111 3.5 lets a
 * shared cache store such a response only under public, s-maxage or
 * must-revalidate, and passing is the safe side of that (no other viewer can
 * get a response meant for those credentials). With a signed origin the
 * viewer's Authorization is never forwarded (the edge signs), so it does not
 * change what the origin answers and the request is served from the cache.
 */
#ifndef MC_PASS_H
#define MC_PASS_H

#include "edge/http1.h"
#include "edge/listener.h"

/* Is method one a cache serves (GET, HEAD)? */
int mc_pass_method_cacheable(const char *method);

/* Pass req through to the origin. keystr: the target's cache key string
 * (lookup.h), purged on success; upstream_path: the path to send (S3
 * encoding for a signed origin, as received otherwise). Answers the viewer
 * itself in every case (502/504 when the origin fails, 413 when a body was
 * too large to be read). */
void mc_pass_handle(mc_http_conn *c, mc_http_req *req, mc_worker *w, const char *keystr,
                    const char *upstream_path);

#endif
