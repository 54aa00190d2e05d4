/* prefetch.h — glTF prefetch (issue #11): when the edge stores a .gltf, it
 * fills the buffers and images the document references, in the background,
 * so that the viewer's next requests are hits.
 *
 * What is fetched: the `uri` of every buffers[] and images[] entry of a
 * model/gltf+json response that fill.c is storing (a 200 on a behavior with
 * prefetch = on; its body at most [prefetch] max_gltf_size), each resolved
 * as a relative reference (RFC 3986 5.2) against the .gltf's path and
 * normalised like a viewer's request path (common/path.h), so the key is
 * the one the viewer's request for it produces (mc_lookup_key: the target's
 * own behavior, query mode included). Refused: data: URIs, any URI with a
 * scheme or an authority ("//host"), backslashes, bad escapes, the .gltf
 * itself, and targets outside the .gltf's directory once dot segments are
 * removed (encoded ones too); duplicates count once; beyond max_refs per
 * document the rest is skipped.
 *
 * How: each target goes through the normal fill path (mc_fill_prefetch:
 * same key, behavior, signing, store; a viewer asking for it meanwhile, on
 * any worker, joins that fill instead of going upstream). Targets already
 * stored or being filled are skipped. Bounded per worker: at most
 * [prefetch] concurrency prefetch fills at once, the others wait in a FIFO
 * of [prefetch] queue entries, beyond which they are dropped (so viewer
 * fills, unbounded, always come first: "low priority"). Bounded per
 * document: the Content-Lengths of its targets add up to at most
 * [prefetch] max_bytes; a target whose length is unknown or over what is
 * left is given up at its response head (unless a viewer on this worker
 * joined it meanwhile: then it simply goes on as that viewer's fill; one
 * waiting on another worker fetches it itself after the give-up).
 *
 * Trade-off: a viewer on another worker than the prefetch's waits for its
 * publish (fill.h's node-wide coalescing) instead of streaming, so its
 * first byte comes when the whole object is stored; a viewer needs the
 * whole buffer or texture anyway, so its finish time is what counts.
 *
 * The fill starts the prefetch when the .gltf's last byte has arrived and
 * its publish is queued, in the same loop turn: before the viewer has read
 * the end of the document from its socket.
 *
 * Preconnect: when a fill of a .gltf path starts on a behavior with
 * prefetch = on (not a revalidation), up to [prefetch] preconnect (default
 * 4, 0 = off) TCP connections to its upstream are opened at once
 * (upstream.h mc_upstream_preconnect), so the prefetch fills that follow
 * the .gltf find them connected instead of paying a handshake after it.
 * A behavior with prefetch = off opens none.
 *
 * On hits (mc_prefetch_hit): a stored .gltf whose dependencies were
 * evicted or purged since its references were last checked (on its fill,
 * or on a hit) has them prefetched again when it is next served.
 *
 * Metrics (mc_prefetch_metrics): meshcdn_edge_prefetch_started_total,
 * _completed_total (stored), _failed_total (not stored: upstream error,
 * not storable), _skipped_total{reason}, _dropped_total (queue full),
 * _bytes_total (body bytes of completed prefetches), _queued (gauge),
 * _hit_checks_total (documents read again on a hit). Preconnects are
 * counted by upstream.c (meshcdn_edge_upstream_preconnects_total).
 *
 * Threads: mc_prefetch_extract/_resolve are pure (any thread). One
 * mc_prefetch per worker, used on that worker's loop only; the counters are
 * process-wide relaxed atomics.
 * Errors: negative MC_E_* codes; a prefetch that cannot start is counted,
 * never reported to a viewer.
 */
#ifndef MC_PREFETCH_H
#define MC_PREFETCH_H

#include <stddef.h>
#include <stdint.h>
#include "common/buf.h"
#include "common/hash.h"
#include "edge/edgecfg.h"

/* Why a reference was not prefetched (label `reason`). */
typedef enum {
    MC_PREFETCH_SKIP_DATA = 1,   /* a data: URI (embedded: nothing to fetch) */
    MC_PREFETCH_SKIP_ABSOLUTE,   /* a scheme or an authority: another origin */
    MC_PREFETCH_SKIP_OUTSIDE,    /* resolves outside the .gltf's directory */
    MC_PREFETCH_SKIP_INVALID,    /* not a usable reference (escape, backslash, empty, itself) */
    MC_PREFETCH_SKIP_LIMIT,      /* beyond max_refs for its document */
    MC_PREFETCH_SKIP_STORED,     /* already in the store */
    MC_PREFETCH_SKIP_INFLIGHT,   /* a fill for it already runs */
    MC_PREFETCH_SKIP_BYTES,      /* no Content-Length, or over the document's byte budget */
    MC_PREFETCH_SKIP_DOCUMENT,   /* the .gltf itself: too big to read, or not a glTF JSON object */
    MC_PREFETCH_SKIP_N
} mc_prefetch_skip;

const char *mc_prefetch_skip_name(mc_prefetch_skip s);

/* ---------- pure: references of a document ---------- */

/* Resolve uri (as written in the glTF, NUL-terminated) against base (the
 * .gltf's cache key string: a normalised path, maybe "?query"). Returns 0
 * with *path (normalised, heap) and *query (heap, or NULL when none; bytes
 * a browser would escape in a query are percent-encoded), or a positive
 * MC_PREFETCH_SKIP_* (data, absolute, outside, invalid), or MC_E_NOMEM. A
 * fragment is ignored. */
int mc_prefetch_resolve(const char *base, const char *uri, char **path, char **query);

typedef struct mc_prefetch_ref {
    char *path;                  /* normalised (owned) */
    char *query;                 /* owned, or NULL */
} mc_prefetch_ref;

typedef struct mc_prefetch_refs {
    mc_prefetch_ref *v;          /* owned; buffers first, then images, in document order */
    int n;
    uint32_t skipped[MC_PREFETCH_SKIP_N];   /* references refused, by reason */
} mc_prefetch_refs;

/* The distinct prefetchable references of a glTF JSON document (len bytes,
 * need not be NUL-terminated): buffers[].uri then images[].uri, at most
 * max_refs (the others counted as skipped[LIMIT]). Returns 0 (out filled;
 * free with mc_prefetch_refs_free), MC_E_INVAL (not a JSON object: out is
 * empty) or MC_E_NOMEM. */
int mc_prefetch_extract(const char *doc, size_t len, const char *base, int max_refs, mc_prefetch_refs *out);
void mc_prefetch_refs_free(mc_prefetch_refs *r);

/* ---------- the per-worker prefetcher ---------- */

typedef struct mc_prefetch mc_prefetch;
struct mc_worker;

int mc_prefetch_new(struct mc_worker *w, mc_prefetch **out);
/* Shutdown, before the worker's fill table is freed: the queue is dropped
 * and no prefetch starts any more. */
void mc_prefetch_close(mc_prefetch *p);
/* After the fill table is freed (every prefetch fill ended). NULL is fine. */
void mc_prefetch_free(mc_prefetch *p);

/* For fill.c: is a response with this status and Content-Type (may be NULL)
 * at keystr, stored under behavior pol, a document to prefetch from? */
int mc_prefetch_wanted(const mc_cache_policy *pol, int status, const char *ctype, const char *keystr);
/* For fill.c, when a fill of keystr under behavior pol has started (its
 * transfer x; not a revalidation): a .gltf path on a behavior with prefetch
 * = on will most likely be followed by its dependencies' fills, so up to
 * [prefetch] preconnect TCP connections to x's upstream are opened now
 * (mc_upstream_preconnect), while the .gltf's request is on its way. */
struct mc_upstream_xfer;
void mc_prefetch_fill_started(const mc_edge_config *cfg, const mc_cache_policy *pol, const char *keystr,
                              struct mc_upstream_xfer *x);
/* For fill.c: the whole body (as the origin sent it) of a .gltf at keystr
 * that is being stored: queue its references on w's prefetcher. */
void mc_prefetch_gltf(struct mc_worker *w, const char *keystr, const char *doc, size_t len);
/* For lookup.c, on a hit (fresh, revalidated or stale) whose first chunk
 * it has read anyway (body, len bytes: the whole body when len equals
 * meta->length): when a .gltf path on a prefetching behavior is served and
 * objects were removed from the store (evictions or purges) since its
 * references were last checked, its body is copied and read again, out of
 * the hit's call, and the references no longer stored are prefetched as
 * on a fill. Cost on the hit path: when nothing was removed since the last
 * check, one slot of a per-worker table (1024 documents, direct-mapped by
 * key) and two relaxed atomic loads: no store read, no parse (another
 * object: the slot and a scan of its key for ".gltf"; a behavior with
 * prefetch = off: one flag test). Otherwise at most one check per
 * document per second; the check itself reads each reference's meta. Only
 * identity (not Content-Encoding) bodies of at most max_gltf_size in one
 * chunk are read. Measured (tests/bench/prefetch-hit-instr.py): 23
 * instructions per hit with prefetch off, 60 for a .gltf, 114 for another
 * object on a prefetching behavior. */
struct mc_object_meta;
void mc_prefetch_hit(struct mc_worker *w, const mc_cache_policy *pol, mc_hash128 key, const char *keystr,
                     const struct mc_object_meta *meta, const void *body, size_t len);
/* Count a skipped reference (or document). */
void mc_prefetch_count_skip(mc_prefetch_skip s);

/* Prometheus text (admin.c). */
void mc_prefetch_metrics(mc_buf *b);

#endif
