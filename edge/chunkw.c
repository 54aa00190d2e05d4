/* chunkw.c — see chunkw.h. */
#include "edge/chunkw.h"
#include "common/err.h"

int mc_chunkw_begin(mc_chunkw *w, mc_store *st, mc_feed *feed, mc_hash128 key, int whole_chunk)
{
    w->st = st;
    w->feed = feed;
    w->key = key;
    w->seq = mc_store_next_seq(st);
    w->nchunks = 0;
    mc_buf_reset(&w->chunk);
    if (whole_chunk && mc_buf_reserve(&w->chunk, MC_STORE_CHUNK_SIZE) < 0)
        return MC_E_NOMEM;
    return 0;
}

int mc_chunkw_append(mc_chunkw *w, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        size_t room = MC_STORE_CHUNK_SIZE - w->chunk.len, n = len < room ? len : room;
        if (mc_buf_append(&w->chunk, p, n) < 0)
            return MC_E_NOMEM;
        p += n;
        len -= n;
        if (w->chunk.len == MC_STORE_CHUNK_SIZE) {
            int rc = mc_chunkw_flush(w);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

int mc_chunkw_flush(mc_chunkw *w)
{
    if (w->chunk.len == 0)
        return 0;
    int rc = mc_feed_put_chunk(w->feed, w->st, w->key, w->seq, w->nchunks, w->chunk.data, w->chunk.len);
    if (rc < 0)
        return rc;
    w->nchunks++;
    mc_buf_reset(&w->chunk);
    return 0;
}

void mc_chunkw_abort(mc_chunkw *w)
{
    if (w->nchunks > 0)
        mc_store_abort(w->st, w->key, w->seq, w->nchunks);
    w->nchunks = 0;
    mc_buf_reset(&w->chunk);
}

void mc_chunkw_free(mc_chunkw *w)
{
    mc_buf_free(&w->chunk);
}
