/* feed.h — a running fill as late joiners see it: its response head and the
 * chunks of its body the store has committed, across worker threads.
 *
 * A fill (fill.h) streams its body from memory to the viewers that attached
 * before its first body byte went out. Every other viewer of the key that
 * comes while it runs — on another worker, or on the fill's own worker after
 * bytes went out — is a late joiner: it follows the fill's feed. Once the
 * fill knows its response is stored whole (mc_feed_open), a follower sends
 * the fill's head (the status, the stored headers, Content-Length when the
 * upstream sent one; Age counted from the response, Cache-Status "fwd=miss;
 * fwd-status=S; ttl=T; stored; collapsed", X-Cache Miss) and then the body
 * from byte 0 (or the start of its Range), reading each chunk from the store
 * as soon as the writer has committed it (pending, not yet published; chunk
 * keys use the fill's seq, so the same reads go on after the publish). It
 * ends when its window is sent, or when the fill has published and it has
 * sent the whole body. A viewer that comes once the whole body has arrived
 * (the publish follows) waits for the publish instead and is a hit.
 *
 * Why the store and not the fill's memory: a follower reads at its own pace
 * (at most two chunks in its connection's backlog), so a slow
 * one never holds the fill or its other viewers back and never pins memory;
 * nothing but this small object is shared between threads, so body pieces
 * need no cross-thread reference counts. The price: a follower trails the
 * fill by up to one chunk (MC_STORE_CHUNK_SIZE) plus a writer commit, and an
 * object smaller than one chunk reaches its followers at the publish.
 * Measured (tests/e2e/test_late_join.py, 4 MiB streaming at ~1 MiB/s):
 * joiners' first bytes at most 0.11 s after they asked (Release; 0.25 s
 * with ASan), where waiting for the publish took 3.7 s.
 *
 * A fill that fails (upstream error, cut or short body, publish refused) or
 * stops storing midway (store queue full, too big, invalid mesh) ends its
 * followers that already got the head with their connection aborted, like
 * its own viewers: a Content-Length response is cut short, a chunked one
 * never gets its last chunk. Followers still without a head look up again
 * when the fill ends (a hit when it published, else a new fill).
 *
 * Fills that are not followed (their late joiners keep waiting for the end
 * and look up again, a hit when it published): responses that vary (Vary, or
 * compress's encodings: a joiner may want another variant), revalidations
 * (the answer may be a 304), mesh_validation = refuse (nothing is served
 * before the check), bodies stored as segments (segment.h). Responses that
 * are not stored at all are fetched by each joiner on its own (hit-for-pass,
 * mc_feed_pass). A follower whose fill was named by a purge after it began
 * fetches on its own too.
 *
 * Threads: the owner (the fill's worker) calls new/open/stop/pass/end/
 * put_chunk; the store's writer thread reports commits; followers live on
 * their own workers and are woken through their worker mailbox (at most one
 * wake-up queued per follower). State under one mutex per feed; reference
 * counted (atomic): the fill, the node's fill registry, each follower and
 * each chunk queued for the writer hold one.
 */
#ifndef MC_FEED_H
#define MC_FEED_H

#include <stdint.h>
#include "edge/respond.h"

#define MC_FEED_MAGIC 0x46454544u

typedef struct mc_feed mc_feed;

/* ---- the fill's side (its worker) ---- */

mc_feed *mc_feed_new(mc_worker *owner);   /* one reference; NULL on NOMEM */
mc_feed *mc_feed_ref(mc_feed *fd);
void mc_feed_unref(mc_feed *fd);          /* NULL is fine */

/* What followers send: a stored, non-varying response (strings copied). */
typedef struct mc_feed_head {
    int status;
    const char *hdrs;            /* stored headers */
    int64_t length;              /* Content-Length, -1 unknown (chunked) */
    mc_hash128 skey;             /* where the chunks are */
    const char *skeystr;
    uint64_t seq;
    int64_t response_time, initial_age_s, lifetime_s;
    uint64_t generation;         /* the store's purge generation at fill start */
} mc_feed_head;
/* The response will be stored whole: followers start. 0 or MC_E_NOMEM
 * (followers then wait for the end). */
int mc_feed_open(mc_feed *fd, const mc_feed_head *h);
/* Is it open (followers stream)? */
int mc_feed_streaming(mc_feed *fd);
/* The whole body arrived (its publish follows): followers that have not
 * started wait for the publish (then they are hits, as on the fill's
 * worker); those streaming go on. */
void mc_feed_complete(mc_feed *fd);
/* The fill stopped storing: followers with a head are aborted. */
void mc_feed_stop(mc_feed *fd);
/* The response is not stored: followers without a head look up again now. */
void mc_feed_pass(mc_feed *fd);
/* The fill ended: published (total body bytes) or not. */
void mc_feed_end(mc_feed *fd, int published, uint64_t total);
/* mc_store_put_chunk, and the feed advances when the writer committed it
 * (fd NULL: a plain put). Chunks in order, from idx 0. */
int mc_feed_put_chunk(mc_feed *fd, mc_store *st, mc_hash128 key, uint64_t seq, uint32_t idx,
                      const void *data, size_t len);

/* ---- followers (the viewer's worker) ---- */

/* Make r (no head sent yet, connection owner set by lookup) follow fd:
 * r->follow is set and r is served from now on by the feed (it ends in
 * mc_resp_finish / mc_resp_fail, or goes back to lookup). Safe under the
 * fill registry's lock. 0 or MC_E_NOMEM. */
int mc_feed_follow(mc_feed *fd, mc_resp *r);
/* r is going away, or goes elsewhere: detach it (r->follow = NULL). */
void mc_feed_leave(mc_resp *r);
/* r's connection drained: send more. */
void mc_feed_drained(mc_resp *r);

#endif
