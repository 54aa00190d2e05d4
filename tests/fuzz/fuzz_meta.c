/* fuzz_meta.c — the store's metadata decoder (mc_object_meta_decode): what
 * LMDB hands back may be anything after a crash or a bad disk. A decoded
 * record must encode again and decode to the same fields. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "edge/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* the decoder gets a copy of exactly size bytes, as LMDB would hand it */
    uint8_t *p = malloc(size ? size : 1);
    if (!p)
        return 0;
    memcpy(p, data, size);
    mc_object_meta m;
    memset(&m, 0, sizeof m);
    if (mc_object_meta_decode(p, size, &m) == 0) {
        /* the chunks must cover the body, or a reader would run off them */
        if (m.chunk_size == 0 || (uint64_t)m.nchunks * m.chunk_size < m.length)
            abort();
        mc_buf b = MC_BUF_INIT;
        if (mc_object_meta_encode(&m, &b) == 0) {
            mc_object_meta m2;
            memset(&m2, 0, sizeof m2);
            if (mc_object_meta_decode(b.data, b.len, &m2) != 0 || m2.length != m.length ||
                m2.status != m.status || strcmp(m2.key ? m2.key : "", m.key ? m.key : "") != 0 ||
                strcmp(m2.headers ? m2.headers : "", m.headers ? m.headers : "") != 0)
                abort();
            mc_object_meta_free(&m2);
        }
        mc_buf_free(&b);
        mc_object_meta_free(&m);
    }
    free(p);
    return 0;
}
