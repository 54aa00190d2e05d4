/* segment.h — segmented caching of very large objects (as CDNs cache
 * multi-GiB files): above its behavior's segment_threshold (edgecfg.h:
 * `segment_threshold=` in a [behavior] line, else [edge] segment_threshold;
 * 0 = never; reloadable) an object is stored as a "head" plus independent
 * segments of [edge] segment_size bytes (node-wide, restart-only), each
 * fetched with an upstream `Range: bytes=a-b` only when a viewer needs it.
 * A threshold applies to fills that start after it: a head already stored
 * stays usable (segmented) until it is replaced, purged or evicted.
 *
 * Layout in the store (store.h), all ordinary objects:
 *   head     at the URL's key (keystr K): status 200, no body, flag
 *            MC_META_F_SEGMENTED, the full response headers plus the
 *            internal line "Meshcdn-Segments: TOTAL SEGSIZE" (never sent to
 *            viewers), and the freshness of the whole object;
 *   segment  at keystr "K\n#seg:IDX" (so path, prefix and surrogate-key
 *            purges of K name it: '\n' is covered like a Vary variant):
 *            status 206, its bytes in chunks, headers holding the version
 *            (ETag, Last-Modified, Meshcdn-Segments) and the head's
 *            Surrogate-Key lines.
 * A segment is used only when its version lines equal the head's; any other
 * is treated as missing and refetched. Eviction may drop single segments or
 * the head; either is refetched on demand.
 *
 * When it applies: a GET (not HEAD) whose behavior does not compress, on a
 *  - stored head: served from the segments in order, fetching the missing
 *    ones (a stale head: see "Stale heads" below);
 *  - cold URL, with a Range whose first range starts at or past
 *    segment_size, and no whole-object fill running for it: the covering
 *    segment is fetched (a "probe"); its 206's Content-Range total decides:
 *    above the threshold the head is stored from it, else (or on a 200,
 *    an error status, Vary or an unstorable response) the request is handed
 *    to fill.h (r->no_segments), which fetches the whole object;
 *  - cold URL otherwise: fill.h's whole-object fill, which stores the body
 *    as segments when its Content-Length exceeds the threshold
 *    (mc_segment_writer below).
 *
 * One version only: every segment request carries If-Match (a strong ETag)
 * or If-Unmodified-Since (Last-Modified), and its 206 must name the same
 * validators and total. On a 412 or any mismatch the head and every segment
 * are deleted and the viewers that got no byte yet start over (at most
 * three times); those already streaming are aborted (never two versions'
 * bytes in one response). A truncated segment is not stored and aborts its
 * viewers' connections. A 200 to a segment's Range (the origin ignores
 * Range) of the head's version and length is read up to the segment's last
 * byte, which is kept, and cut there; a probe's 200 hands over to fill.h.
 *
 * Stale heads (RFC 9111 4.2.4, 4.3; as lookup.c and fill.h do for a whole
 * object, lookup.c deciding which): the head is revalidated with a
 * conditional `Range: bytes=0-0` (If-None-Match / If-Modified-Since), one
 * per head in the node (viewers on other workers wait for it, then look
 * the head up again: a head still stale there, its refresh not yet
 * committed, is revalidated once more rather than served stale).
 *  - servable stale now (stale-while-revalidate, the viewer's max-stale):
 *    served from the segments at once (Cache-Status: hit, ttl <= 0,
 *    detail; result stale), the revalidation runs in the background;
 *  - else the viewer waits for it: a 304 (or a 206 of the same version)
 *    merges the fresh fields into the head and keeps every segment
 *    (fwd=stale; fwd-status=304; result revalidated); no answer or a 5xx
 *    serves the segments as stale-if-error where the head allows it
 *    (detail=stale-if-error), else 504 "stale-forbidden" (no answer) or the
 *    upstream's 5xx status (must-revalidate, no stale-if-error, ...); any
 *    other status (403, a redirect ...) is passed on as for a whole object:
 *    the viewers are handed to fill.h, which fetches the URL whole;
 *  - another version (a 206/200 naming other validators or total, 404,
 *    410, 412): the old head and every old segment are deleted, the new
 *    version's head (from that response, when it is above the threshold and
 *    storable) is stored after them; waiting viewers start over (fwd=stale).
 * A segment missing from the store while its head is served stale is
 * fetched like any other (If-Match: the stale version). When that fails
 * (the origin is down, an error status, a short body) a viewer that got no
 * byte yet gets 504 (Cache-Status detail=segment-unavailable); one already
 * streaming is cut after the stored bytes it got: what can be served is
 * served, the response ends short, never completed with another version.
 * A fresh head whose segment is fetched is Cache-Status fwd=partial (a
 * failure there: 502 fwd=partial).
 *
 * Coalescing: one segment fill per segment key in the node (a registry like
 * fill.h's); viewers whose next byte is not yet past it stream along, the
 * others wait for its publish and read the store.
 *
 * Threads: a segment-fill table per worker; everything on that worker's
 * loop. Memory: one chunk buffer per segment fill; viewers stream through
 * their connections' backlogs (fill_buffer pauses the upstream).
 */
#ifndef MC_SEGMENT_H
#define MC_SEGMENT_H

#include <stdint.h>
#include "edge/respond.h"

#define MC_SEGMENT_MAGIC 0x5345474du
/* The internal header line of heads and segments (store only). */
#define MC_SEGMENT_HDR "Meshcdn-Segments"

/* ---- arithmetic (pure; exposed for the unit tests) ---- */

/* Number of segments of an object of total bytes (0 for total 0). */
uint32_t mc_segment_count(uint64_t total, uint64_t seg_size);
/* Object bytes [*start, *end] (inclusive) of segment idx; the last one may
 * be short. Returns 0, or MC_E_INVAL when idx is past the object. */
int mc_segment_bounds(uint64_t total, uint64_t seg_size, uint32_t idx, uint64_t *start, uint64_t *end);
/* The segments a viewer's Range header needs on an object of total bytes:
 * ascending, distinct indexes into out (at most max). A missing or invalid
 * header (served whole) needs every segment. Returns the count, 0 for an
 * unsatisfiable range, MC_E_TOOBIG when more than max are needed. */
int mc_segment_needed(const char *range_hdr, uint64_t total, uint64_t seg_size, uint32_t *out, int max);
/* The segment to probe for a cold URL: the one holding the first range's
 * first byte when range_hdr starts with "bytes=N-" and N >= seg_size; -1
 * otherwise (no probe: fetch the whole object). */
int64_t mc_segment_probe_index(const char *range_hdr, uint64_t seg_size);
/* Parse "bytes A-B/TOTAL" (a Content-Range of a 206). 0 or MC_E_INVAL
 * (also for "*" totals and A > B or B >= TOTAL). */
int mc_segment_content_range(const char *v, uint64_t *a, uint64_t *b, uint64_t *total);
/* The key string of segment idx of keystr ("K\n#seg:IDX") into out. */
void mc_segment_keystr(const char *keystr, uint32_t idx, char *out, size_t n);
/* From stored headers: TOTAL and SEGSIZE of the internal line. 0 or MC_E_INVAL. */
int mc_segment_info(const char *hdrs, uint64_t *total, uint64_t *seg_size);

/* ---- serving (worker loop) ---- */

typedef struct mc_seg_table mc_seg_table;
int mc_segment_table_new(mc_seg_table **out);
/* Cancels segment fills still running (shutdown). */
void mc_segment_table_free(mc_seg_table *t);

/* Is segmented serving wanted for cold r (no stored copy)? */
int mc_segment_probe_wanted(const mc_resp *r);
/* How a stored head is used (lookup.c decides, as for a whole object). */
#define MC_SEGMENT_REVALIDATE 0   /* stale: revalidated first (the viewer waits) */
#define MC_SEGMENT_FRESH 1        /* usable as it is */
#define MC_SEGMENT_STALE 2        /* stale but servable now (stale-while-revalidate or
                                   * max-stale, r->detail says which): served from the
                                   * segments, one revalidation in the background */
/* Serve r: from its stored head (r->meta, flag MC_META_F_SEGMENTED; mode
 * one of the above), or as a probe when r->has_meta is 0. Takes over r
 * (sets the connection owner); r ends in mc_resp_finish or mc_resp_fail, or
 * goes to fill.h when handed over. */
void mc_segment_serve(mc_resp *r, int mode);
/* r is being freed: detach it from segment fills and waits. */
void mc_segment_leave(mc_resp *r);

/* ---- storing a whole-object fill as segments (fill.h) ---- */

typedef struct mc_segment_writer mc_segment_writer;
/* For a 200 of total bytes (Content-Length) whose filtered headers are
 * hdrs: publishes the head at once (meta supplies times, freshness and
 * generation) and returns a writer that stores each segment as its bytes
 * complete. NULL when segmenting does not apply (threshold, the behavior's
 * segment_threshold, is 0 or not exceeded) or on allocation failure. */
mc_segment_writer *mc_segment_writer_start(mc_worker *w, mc_hash128 key, const char *keystr, const char *hdrs,
                                           uint64_t total, const mc_object_meta *meta, uint64_t threshold);
/* The next body bytes (from offset 0, in order). */
void mc_segment_writer_feed(mc_segment_writer *sw, const void *data, size_t len);
/* Is a segment partly written (worth fetching on for, with no viewer left)? */
int mc_segment_writer_mid(const mc_segment_writer *sw);
/* End: the partial segment (if any) is dropped; frees sw. */
void mc_segment_writer_end(mc_segment_writer *sw);

#endif
