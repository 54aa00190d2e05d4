/* test_chunkw.c — a body cut into the store's chunks: every chunk full but
 * the last, in order, whatever the sizes of the appends; a refused put is
 * reported and nothing of that chunk is counted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/hash.h"
#include "edge/chunkw.h"

/* A store of its own in a fresh directory, removed with it. */
typedef struct tmp_store {
    char dir[32];
    mc_store *s;
} tmp_store;

static void store_up(tmp_store *t, uint64_t max_queue_bytes)
{
    strcpy(t->dir, "/tmp/mc-chunkw-XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    mc_store_config cfg = {.dir = t->dir, .size_bytes = 64u << 20, .max_queue_bytes = max_queue_bytes};
    mc_err err = {0};
    if (mc_store_open(&t->s, &cfg, &err) < 0)
        fail_msg("open: %s", err.msg);
}

static void store_down(tmp_store *t)
{
    mc_store_close(t->s);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", t->dir);
    assert_int_equal(system(cmd), 0);
}

#define CH MC_STORE_CHUNK_SIZE

static const struct {
    const char *name;
    size_t len;     /* body bytes */
    size_t piece;   /* bytes per append (0: one append of the whole body) */
} cases[] = {
    {"empty", 0, 0},
    {"one byte", 1, 0},
    {"one chunk less a byte", CH - 1, 0},
    {"exactly one chunk", CH, 0},
    {"one chunk and a byte", CH + 1, 0},
    {"three chunks exactly", 3 * CH, 0},
    {"many small appends", 3 * CH + 777, 1000},
    {"byte by byte across a boundary", CH + 3, 1},
    {"appends straddling boundaries", 5 * CH + 12345, 100003},
    {"appends of exactly a chunk", 2 * CH + 9, CH},
};

/* Each case: append the body in pieces, flush, and read the chunks back
 * under the writer's seq (pending chunks are readable once committed). */
static void chunks_are_full_but_the_last_and_in_order(void **state)
{
    (void)state;
    tmp_store t;
    store_up(&t, 0);
    mc_store *s = t.s;
    mc_store_reader *r;
    assert_int_equal(mc_store_reader_new(s, &r), 0);
    size_t max = 6 * CH;
    unsigned char *body = malloc(max);
    assert_non_null(body);
    for (size_t i = 0; i < max; i++)
        body[i] = (unsigned char)((i * 31) ^ (i >> 9));
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        mc_chunkw w = {0};
        mc_hash128 key = mc_hash_key(cases[c].name, strlen(cases[c].name));
        assert_int_equal(mc_chunkw_begin(&w, s, NULL, key, (int)(c % 2)), 0);
        size_t piece = cases[c].piece ? cases[c].piece : cases[c].len;
        for (size_t off = 0; off < cases[c].len; off += piece) {
            size_t n = cases[c].len - off < piece ? cases[c].len - off : piece;
            assert_int_equal(mc_chunkw_append(&w, body + off, n), 0);
            /* a full chunk is queued at once, not at the next append */
            assert_int_equal(w.nchunks, (off + n) / CH);
        }
        assert_int_equal(mc_chunkw_flush(&w), 0);
        assert_int_equal(mc_chunkw_flush(&w), 0);   /* nothing left: nothing queued */
        uint32_t want = (uint32_t)((cases[c].len + CH - 1) / CH);
        if (w.nchunks != want)
            fail_msg("%s: %u chunks, want %u", cases[c].name, w.nchunks, want);
        mc_store_flush(s);
        mc_buf b = MC_BUF_INIT;
        for (uint32_t i = 0; i < w.nchunks; i++) {
            size_t before = b.len;
            int n = mc_store_read_chunk(r, key, w.seq, i, &b);
            size_t expect = i + 1 < w.nchunks ? CH : cases[c].len - (size_t)i * CH;
            if (n != (int)expect)
                fail_msg("%s: chunk %u has %d bytes, want %zu", cases[c].name, i, n, expect);
            assert_int_equal(b.len - before, expect);
        }
        assert_int_equal(mc_store_read_chunk(r, key, w.seq, w.nchunks, &b) > 0, 0);   /* none beyond */
        assert_int_equal(b.len, cases[c].len);
        if (cases[c].len)
            assert_memory_equal(b.data, body, cases[c].len);
        mc_buf_free(&b);
        mc_chunkw_abort(&w);   /* never published: drop the pending chunks */
        assert_int_equal(w.nchunks, 0);
        mc_chunkw_free(&w);
    }
    free(body);
    mc_store_reader_free(r);
    store_down(&t);
}

/* A writer queue over its bound refuses the chunk: append reports
 * MC_E_FULL and counts no chunk; a flush of a partial chunk the same. */
static void refused_put_is_reported(void **state)
{
    (void)state;
    tmp_store t;
    store_up(&t, 1);   /* every chunk is over the bound */
    mc_store *s = t.s;
    unsigned char *body = calloc(1, CH + 10);
    assert_non_null(body);
    mc_chunkw w = {0};
    mc_hash128 key = mc_hash_key("/full", 5);
    assert_int_equal(mc_chunkw_begin(&w, s, NULL, key, 1), 0);
    assert_int_equal(mc_chunkw_append(&w, body, 10), 0);   /* buffered only */
    assert_int_equal(mc_chunkw_flush(&w), MC_E_FULL);
    assert_int_equal(w.nchunks, 0);
    assert_int_equal(mc_chunkw_begin(&w, s, NULL, key, 0), 0);   /* begin again: a new seq */
    assert_int_equal(mc_chunkw_append(&w, body, CH + 10), MC_E_FULL);
    assert_int_equal(w.nchunks, 0);
    mc_chunkw_abort(&w);
    mc_chunkw_free(&w);
    free(body);
    store_down(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(chunks_are_full_but_the_last_and_in_order),
        cmocka_unit_test(refused_put_is_reported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
