/* chunkw.h — one body on its way into the store, cut into its chunks.
 *
 * A stored body (a fill's viewers' variant or another encoding of it, a
 * segment) is written as MC_STORE_CHUNK_SIZE chunks under one seq, idx 0,
 * 1, ...; every chunk is full but the last. A chunk writer gathers the bytes
 * appended in order and queues each chunk on the store writer as soon as it
 * is full (mc_feed_put_chunk: with a feed, its late joiners learn of each
 * chunk the writer has committed, feed.h); mc_chunkw_flush queues the last,
 * shorter one before the publish, whose metadata takes seq and nchunks from
 * here. What a failed write does to the fill (stop storing, log, count) is
 * the caller's: the writer only reports it.
 *
 * Threads: the owner's (one worker) only.
 * Errors: append and flush return 0, or a negative MC_E_* code when a chunk
 * could not be queued (MC_E_FULL: the writer queue is over its bound) or
 * memory ran out (MC_E_NOMEM); the chunks queued before stay queued, nothing
 * of the failed one is, and the body cannot be stored whole: the caller
 * stops storing it and calls mc_chunkw_abort.
 * Ownership: the writer owns its chunk buffer (mc_chunkw_free). The store
 * and the feed are the caller's and must outlive the writer's use.
 */
#ifndef MC_CHUNKW_H
#define MC_CHUNKW_H

#include <stddef.h>
#include <stdint.h>
#include "common/buf.h"
#include "edge/feed.h"
#include "edge/store.h"

typedef struct mc_chunkw {
    mc_store *st;
    mc_feed *feed;       /* told of each committed chunk; NULL: none */
    mc_hash128 key;      /* where the body is stored */
    uint64_t seq;        /* the body's version (mc_store_next_seq at begin) */
    uint32_t nchunks;    /* chunks queued so far */
    mc_buf chunk;        /* the chunk being filled */
} mc_chunkw;

/* Start a body at key: a new seq from st, no chunk queued, the buffer
 * emptied (a zeroed mc_chunkw is a valid argument; a writer may begin again
 * after its publish or abort). whole_chunk: grow the buffer to one chunk now
 * (no regrowth while the body streams), else it grows as bytes come (a body
 * that may stay small). 0 or MC_E_NOMEM. */
int mc_chunkw_begin(mc_chunkw *w, mc_store *st, mc_feed *feed, mc_hash128 key, int whole_chunk);
/* Append len bytes of the body; each chunk that becomes full is queued. */
int mc_chunkw_append(mc_chunkw *w, const void *data, size_t len);
/* Queue the chunk being filled, if it holds anything (the body's end). */
int mc_chunkw_flush(mc_chunkw *w);
/* Drop the chunks queued (mc_store_abort) and what is buffered: none of
 * this body is kept. nchunks is 0 after. */
void mc_chunkw_abort(mc_chunkw *w);
/* Release the buffer (chunks queued are not dropped: abort first if so). */
void mc_chunkw_free(mc_chunkw *w);

#endif
