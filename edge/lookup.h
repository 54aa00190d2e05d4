/* lookup.h — the front of the request path: method and loop checks, path
 * normalisation, the cache key, the store lookup, freshness, and serving a
 * hit from the store; misses go to fill.h. Methods other than GET and HEAD
 * go to pass.h where the path's behavior allows them (else 405); CONNECT
 * and TRACE get 405, `OPTIONS *` is answered here.
 *
 * The cache key string is the normalised path (common/path.h) plus "?" and
 * the query exactly as received when there is one; the key is its XXH3-128.
 * The same normalised path, in S3 encoding, is what goes upstream.
 *
 * A hit is streamed chunk by chunk: each chunk is written from the map
 * straight to the viewer's socket (mc_store_view_chunk, then
 * mc_resp_write_view), in its own short read transaction, as far as the
 * socket takes it; for an object of several chunks (pinned against
 * eviction while it is sent) the rest is read again in a new transaction
 * once the socket is writable (mc_http_await_writable). So a slow client
 * never pins the map and costs no user-space buffer for a large body (a
 * one-chunk hit, a multipart answer, TLS or chunked framing copy what the
 * socket does not take, up to about two chunks).
 * The first chunk to send is read and its checksum verified before the
 * headers go out: if it fails (or is gone), the hit becomes a miss (a
 * damaged object is deleted) and the viewer gets the origin's bytes. A chunk
 * failing later aborts the connection, never a short or wrong body.
 *
 * Threads: runs on the worker that accepted the connection.
 */
#ifndef MC_LOOKUP_H
#define MC_LOOKUP_H

#include "edge/http1.h"
#include "edge/listener.h"
#include "edge/respond.h"

/* The viewer-port request handler (ud = the mc_worker). */
void mc_lookup_handle(mc_http_conn *c, mc_http_req *req, void *ud);
/* Look r up again (a fill it waited for has ended). */
void mc_lookup_retry(mc_resp *r);

/* May r's stale copy (r->meta) be served now? for_error: the upstream failed
 * (stale-if-error), else stale-while-revalidate / the viewer's max-stale.
 * Never when the copy says must-revalidate, proxy-revalidate, s-maxage or
 * no-cache (RFC 9111 4.2.4). */
int mc_lookup_stale_allowed(mc_resp *r, int for_error);
/* Serve r's stale copy from the store (Cache-Status: hit; ttl < 0; detail). */
void mc_lookup_serve_stale(mc_resp *r, const char *detail);

/* The cache key string for a request path and query (the query as the
 * path's behavior keys it), the normalised path, the behavior, and the query
 * to send upstream (heap string or NULL; caller frees). 0, MC_E_INVAL (bad
 * path) or MC_E_NOMEM. */
int mc_lookup_key(const char *path, const char *query, const mc_edge_config *cfg, mc_buf *keystr,
                  mc_buf *normpath, const mc_cache_policy **pol, char **upstream_query);

#endif
