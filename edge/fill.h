/* fill.h — fetching a missing object once, however many viewers ask.
 *
 * The first request for a key starts a fill; one fill per key in the whole
 * node (coalescing). Requests for the key on the fill's worker that arrive
 * before any body byte was delivered attach to it and stream with it from
 * memory. Later ones, and those on other workers, are late joiners: while
 * the fill is being stored whole they follow it (feed.h: the fill's head,
 * then its body from byte 0 as the store's writer commits its chunks,
 * pending, then published; Cache-Status "fwd=miss ...; stored; collapsed"),
 * so their first byte comes about one chunk behind the fill, not at its
 * publish; a failed or cut fill aborts them as it aborts its own viewers.
 * A Range from a late joiner is answered as from the fill (206 of the
 * span, multipart too), the span streamed once its chunks are committed.
 * Late joiners of a fill that is not followable — a varying response
 * (Vary, or compress's variants: "sides" below), a revalidation, a body
 * held for mesh_validation = refuse, a body stored as segments — wait
 * until the fill has published (then they are hits) or failed (then they
 * look up again), as every late joiner did before feed.h.
 *
 * A fill streams the upstream body to its viewers as it arrives and into the
 * store in MC_STORE_CHUNK_SIZE chunks (each reported to its feed when
 * committed). It publishes only when the whole body
 * arrived, its length matches Content-Length and every chunk is committed;
 * a truncated or failed fill publishes nothing and aborts its viewers'
 * connections. Memory: one chunk buffer per fill (plus one per side); the viewers' connections
 * reference one shared copy of each body piece (respond.h mc_shared), so
 * many viewers cost one backlog, not one each; when a viewer's backlog
 * passes store.fill_buffer the upstream is paused until it drains.
 *
 * 3D assets (mesh.h): a 2xx without Content-Type or with
 * application/octet-stream gets the type of its path's extension when one
 * is known (mc_fill_fix_type); a stored 200 glTF/GLB is validated as it
 * streams and, if invalid, not published (mesh_validation = pass: viewers
 * got it as fetched, late joiners are cut off at the end; refuse: they were
 * held as waiters and get 502). On a
 * behavior with cors_origins, Origin is not forwarded and is dropped from
 * the stored Vary.
 *
 * Compression (a behavior's compress, mesh.h): Accept-Encoding is not
 * forwarded; a compressible 200 is stored once per encoding (identity and
 * each of the behavior's), all from the one upstream body: the viewers'
 * variant streams to them (encoded as it arrives, chunked) and into the
 * store, the others are encoded beside it into the store only ("sides", one
 * chunk buffer and one encoder each) and published just before it, so its
 * waiters of another encoding find theirs stored. A viewer that joins a
 * fill of a varying response after its headers, for another variant, waits
 * for the publish instead of streaming along. A body that is not published
 * (short, invalid mesh, too big) publishes none of its sides either.
 *
 * Threads: a fill table per worker; everything on that worker's loop (the
 * store's publish completion is posted back through the worker mailbox).
 *
 * glTF prefetch (prefetch.h): a stored 200 .gltf on a behavior with
 * prefetch = on keeps its body (up to [prefetch] max_gltf_size) as it
 * streams; when the last byte arrived and the publish is queued, its
 * references go to the worker's prefetcher, in the same loop turn. When a
 * fill (not a revalidation) of a .gltf path starts on such a behavior,
 * mc_prefetch_fill_started preconnects to its upstream.
 */
#ifndef MC_FILL_H
#define MC_FILL_H

#include "edge/respond.h"

#define MC_FILL_MAGIC 0x46494c4cu

int mc_fill_table_new(mc_fill_table **out);
/* Cancels fills still running (shutdown). */
void mc_fill_table_free(mc_fill_table *t);

/* One fill per key in the whole node: a request on another worker than the
 * fill's follows it (feed.h) through the node's registry of running fills,
 * the only lock on the miss path, held for a hash lookup. */
/* Is a (stored) fill for key running on any worker? Any thread. */
int mc_fill_running(mc_hash128 key);
/* Shutdown check: asserts that no key is still registered. */
void mc_fill_registry_check_empty(void);

/* Serve r from a fill for r->key: attach to the running one or start one.
 * expired = a stale copy exists (Cache-Status fwd=stale). */
void mc_fill_join(mc_resp *r, int expired);
/* r is going away (its connection died or its response ended). */
void mc_fill_leave(mc_resp *r);
/* r's connection drained: let a paused fill go on (or, for a late joiner,
 * send more from the store). */
void mc_fill_drained(mc_resp *r);
/* Fetch r's key on its own, unstored (a late joiner whose fill a purge
 * named: feed.h). Takes over r. */
void mc_fill_fetch_alone(mc_resp *r);

/* Freshness and storability of a response, RFC 9111: storable statuses
 * (explicit freshness, `public`, or a heuristically cacheable status),
 * no-store (unless must-understand with a status RFC 9110 defines; with
 * another status must-understand forbids storing), private, Set-Cookie per policy; lifetime from s-maxage, max-age,
 * Expires - Date, else the heuristic (a percentage of Date - Last-Modified,
 * capped) where 4.2.2 allows it; the corrected initial age of 4.2.3; and what
 * governs serving it stale. Also used on stored headers at lookup time.
 * Exposed for the unit tests. */
typedef struct mc_fresh {
    int storable;
    int64_t lifetime_s;
    int64_t initial_age_s;
    int heuristic;              /* lifetime is heuristic */
    int has_validator;          /* ETag or Last-Modified */
    int no_cache;               /* stored, but validated before each use */
    int no_stale;               /* must-revalidate, proxy-revalidate or s-maxage */
    int64_t swr_s;              /* stale-while-revalidate (response, else policy) */
    int64_t sie_s;              /* stale-if-error (response, else policy) */
    const char *why_not;        /* static reason when not storable */
} mc_fresh;
void mc_fill_freshness(int status, const char *hdrs, int64_t request_time, int64_t response_time,
                       const mc_cache_policy *pol, mc_fresh *out);

/* Is an upstream response field kept from viewers? Hop-by-hop fields (RFC
 * 9110 7.6.1), those the Connection value (may be NULL) names, and what the
 * edge sets itself (Content-Length, Age, Cache-Status, X-Cache, S3 ids). */
int mc_fill_drop_header(const char *name, const char *connection);

/* The type to store instead when a 2xx response's Content-Type (ctype; NULL
 * = none sent) is missing or application/octet-stream and the extension of
 * keystr's path (a query after '?' ignored) maps to a better one (mime.h);
 * else NULL. */
const char *mc_fill_fix_type(const char *ctype, const char *keystr);

/* Start a background revalidation of r's stale copy (stale-while-revalidate)
 * unless a fill for the key already runs; r itself is not attached. */
void mc_fill_background(mc_resp *r);

/* A fill started on someone's behalf (prefetch.h) is watched: on_head gets
 * the response head while no viewer is attached (return < 0 to give the
 * fill up: nothing stored, not counted as failed); on_end runs exactly once
 * when the fill ends, after it is freed: stored = published, given_up =
 * on_head refused it, bytes = body bytes received. */
typedef struct mc_fill_observer {
    int (*on_head)(void *arg, int status, int64_t content_length);
    void (*on_end)(void *arg, int stored, int given_up, uint64_t bytes);
} mc_fill_observer;

/* Prefetch: fill key (keystr, upstream path and query as lookup.c computes
 * them for a viewer: mc_lookup_key, S3 encoding when signing) with no
 * viewer, storing it as a viewer's miss would: same behavior pol, signing,
 * publish; viewers that ask for the key meanwhile join the fill (late
 * joiners follow it, feed.h). The upstream request carries
 * only CDN-Loop and Via (no viewer's headers). Returns 0 when started (obs
 * will see its end), 1 when a fill for the key already runs on some worker
 * (nothing started), MC_E_NOMEM or MC_E_IO (nothing started, obs not
 * called). */
int mc_fill_prefetch(mc_worker *w, mc_hash128 key, const char *keystr, const char *path, const char *query,
                     mc_edge_snap *snap,
                     const mc_cache_policy *pol, const mc_fill_observer *obs, void *arg);

/* RFC 9111 3.2 / 4.3.4: the stored header fields, each replaced by the
 * fresh (304 or same-version 206) field of the same name when it has one,
 * plus the fresh fields; the fields describing the stored body
 * (Content-Length, Content-Encoding, Content-MD5, Content-Range, ETag) stay
 * as stored. A new string (NULL when out of memory). */
char *mc_fill_merge_headers(const char *stored, const char *fresh);

#endif
