/* respond.h — one viewer response in progress, from the store (a hit) or
 * from a fill (a miss): what to answer (200, 206, 304, 416), the headers the
 * viewer sees (Age, Cache-Status, X-Cache, Via) and the byte window to send.
 *
 * Threads: lives on one worker's loop.
 * Ownership: lookup.c creates an mc_resp per request that is not answered
 * at once; it is freed by mc_resp_finish / mc_resp_fail (response done) or
 * when the connection dies (on_close), whichever comes first. While it is
 * attached to a fill (fill != NULL) the fill holds a pointer to it, while
 * it follows one (follow != NULL) the fill's feed does (feed.h); either is
 * told (mc_fill_leave) before it is freed.
 */
#ifndef MC_RESPOND_H
#define MC_RESPOND_H

#include <stdint.h>
#include "common/buf.h"
#include "common/hash.h"
#include "common/range.h"
#include "edge/http1.h"
#include "edge/listener.h"
#include "edge/stats.h"
#include "edge/store.h"

#define MC_RESP_MAGIC 0x52455350u
#define MC_RESP_MAX_PARTS 16

typedef struct mc_fill mc_fill;
struct mc_seg_view;

typedef struct mc_resp {
    uint32_t magic;
    int pinned;                 /* pin_key is pinned against eviction (a multi-chunk hit) */
    int accounted;              /* counted and logged (before its last bytes went out) */
    int stalled;                /* a view was offered and the socket took less (mc_resp_write_view) */
    mc_hash128 pin_key;
    mc_worker *w;
    mc_edge_snap *snap;         /* the configuration it started with (a reference, snap.h) */
    mc_http_conn *conn;
    mc_http_req *req;           /* owned by conn; valid while the response runs */
    mc_hash128 key;
    char *keystr;               /* normalised path [+ "?" query] (owned) */
    mc_hash128 skey;            /* where the object is stored: key, or its variant's (vary.h) */
    char *skeystr;              /* the variant's key string (owned), NULL when not varying */
    char *s3path;               /* upstream path: S3 encoding, or as received for an unsigned origin (owned) */
    char *query;                /* raw query (owned) or NULL */
    const mc_cache_policy *pol; /* the behavior of its path (in snap) */
    mc_result result;
    int started;                /* status line sent */
    int status;                 /* what the viewer gets */
    int has_body;
    uint64_t first, last;       /* object byte window to send, inclusive */
    uint64_t pos;               /* next object offset to send */
    int done;                   /* every byte of the window(s) written */
    /* multipart/byteranges (RFC 9110 14.6): ascending, non-overlapping */
    mc_range parts[MC_RESP_MAX_PARTS];
    int nparts, cur_part;       /* nparts 0: one window, first..last */
    char boundary[40];
    char part_type[128];
    int64_t length;             /* object length, -1 unknown (fill without CL) */
    uint64_t sent;              /* body bytes written */
    /* hits: stream from the store chunk by chunk */
    mc_object_meta meta;
    int has_meta;
    /* misses: attached to a fill (subscriber or waiter list) */
    mc_fill *fill;
    int waiting;                /* parked until the fill publishes or fails */
    struct mc_feed_follower *follow; /* a late joiner of a running fill (feed.h), owned */
    int refreshed;              /* its stale copy was just revalidated (304) */
    int bypass_stale;           /* fetch whole: a revalidation could not refresh the copy */
    const char *detail;         /* Cache-Status detail (static string) or NULL */
    struct mc_seg_view *seg;    /* served from segments (segment.h), owned */
    int no_segments;            /* fetch whole: segmented serving gave up on it */
    int stale_replaced;         /* its stale segmented copy changed upstream: fetched again, fwd=stale */
    int partial;                /* a stored segmented head, a segment fetched: fwd=partial (RFC 9211 2.2) */
    struct mc_resp *next;
    struct timespec t0;
    struct timespec up_t0;      /* began waiting on an upstream (a fill); zero: never */
    double up_s;                /* that wait's length once the upstream ended; < 0: not yet */
} mc_resp;

/* A response for req on c, under w's current configuration (w->snap, as
 * adopted at the request's start; a reference). */
mc_resp *mc_resp_new(mc_worker *w, mc_http_conn *c, mc_http_req *req);
/* The upstream transfer the responses on list (linked by next) wait on has
 * ended: their upstream time stops here. */
void mc_resp_upstream_ended(mc_resp *list);

/* One access log line (mod=access, level info), the contract of
 * docs/DESIGN.md "Access log":
 *   node client method path range status bytes result ms upstream_ms
 * path and range are quoted (a quote inside becomes '); range "-" without
 * a Range header; upstream_ms "-" when no upstream was waited on. */
typedef struct mc_access {
    const char *node, *client, *method, *path;
    const char *range;          /* the request's Range header or NULL */
    int status;                 /* 0: the response was cut off after its head */
    uint64_t bytes;             /* body bytes sent */
    const char *result;         /* mc_result_name */
    double ms;                  /* request start to response end */
    double upstream_ms;         /* < 0: "-" */
} mc_access;
void mc_access_log(const mc_access *a);

/* Decide the viewer status for an upstream/stored status and headers block
 * ("Name: value\r\n" lines): conditionals (If-None-Match, If-Modified-Since)
 * give 304; a satisfiable Range gives 206 (several ascending, non-overlapping
 * ranges, up to MC_RESP_MAX_PARTS, as multipart/byteranges), an
 * unsatisfiable one 416; an invalid Range, or ranges out of order,
 * overlapping or too many, is ignored (200, RFC 9110 14.2). */
void mc_resp_plan(mc_resp *r, int status, const char *hdrs, int64_t length);

/* Cache facts for the viewer headers. */
typedef struct mc_resp_cache {
    int64_t age_s;
    int64_t ttl_s;              /* remaining freshness, may be negative */
    int fwd_status;             /* upstream status when forwarded, else 0 */
    int stored;                 /* the response is being stored */
} mc_resp_cache;

/* Send the status line and headers chosen by mc_resp_plan. */
void mc_resp_start(mc_resp *r, const char *hdrs, const mc_resp_cache *cache);
/* Offer object bytes [off, off+len); the part inside the window is sent.
 * Returns 1 when the window is complete. */
int mc_resp_write(mc_resp *r, uint64_t off, const void *data, size_t len);
/* The same for bytes valid only during this call (a view into the store's
 * map): sent straight from data as far as the socket takes them
 * (mc_http_respond_body_direct). When it takes less and the object is
 * pinned (r->pinned: it cannot be evicted before the next read), r->stalled
 * is set and the rest is not taken: offer it again once
 * mc_http_await_writable's on_drain comes; unpinned, the rest is copied.
 * Multipart answers copy (their parts' heads interleave). */
int mc_resp_write_view(mc_resp *r, uint64_t off, const void *data, size_t len);

/* Body bytes shared by the viewers of one fill: one copy, referenced by each
 * viewer's connection instead of copied into it, freed when the last
 * reference goes (worker loop only: a plain count). With 500 viewers on one
 * fill this is what keeps their backlogs at one copy of the data. */
typedef struct mc_shared {
    uint32_t refs;
    size_t len;
    unsigned char data[];
} mc_shared;
/* A block holding a copy of data, refs = 1 (the caller's); NULL on NOMEM. */
mc_shared *mc_shared_new(const void *data, size_t len);
void mc_shared_release(mc_shared *b);
/* mc_resp_write of b's bytes (b->data at object offset off), by reference. */
int mc_resp_write_shared(mc_resp *r, uint64_t off, mc_shared *b);
/* Done: end the response (complete) and free r. */
void mc_resp_finish(mc_resp *r);
/* Failed: an error status when nothing was sent yet (502, 504, ...), else
 * abort the connection (never a short body presented as complete); free r. */
void mc_resp_fail(mc_resp *r, int status);
/* mc_resp_fail with a Cache-Status detail saying why ("stale-forbidden"). */
void mc_resp_fail_detail(mc_resp *r, int status, const char *detail);
/* Free without touching the connection (it is gone). */
void mc_resp_free(mc_resp *r);

/* Value of header name in a "Name: value\r\n" block into out; NULL if absent. */
const char *mc_hdr_find(const char *block, const char *name, char *out, size_t outlen);

#endif
