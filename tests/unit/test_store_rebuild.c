/* test_store_rebuild.c — the eviction index rebuilt at open keeps insertion
 * order across restarts: after three sessions (sequence numbers in three
 * reserved blocks, keys in hash order unrelated to it), the evictor removes
 * exactly the oldest objects first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include "common/hash.h"
#include "common/metrics.h"
#include "edge/store.h"

#define OBJ_BYTES 4000u   /* one LMDB overflow page each: bytes on disk ~ body bytes */

static void write_object(mc_store *s, int id)
{
    char key[64];
    unsigned char body[OBJ_BYTES];
    snprintf(key, sizeof key, "/o/%04d", id);
    memset(body, id & 0xff, sizeof body);
    mc_hash128 k = mc_hash_key(key, strlen(key));
    mc_object_meta m = {0};
    m.status = 200;
    m.length = OBJ_BYTES;
    m.chunk_size = MC_STORE_CHUNK_SIZE;
    m.nchunks = 1;
    m.seq = mc_store_next_seq(s);
    m.body_checksum = XXH3_64bits(body, sizeof body);
    m.key = key;
    m.headers = "";
    assert_int_equal(mc_store_put_chunk(s, k, m.seq, 0, body, sizeof body), 0);
    assert_int_equal(mc_store_publish(s, k, &m, NULL, NULL), 0);
}

static int present(mc_store *s, int id)
{
    char key[64];
    snprintf(key, sizeof key, "/o/%04d", id);
    mc_store_reader *r;
    assert_int_equal(mc_store_reader_new(s, &r), 0);
    mc_object_meta m;
    int rc = mc_store_read_meta(r, mc_hash_key(key, strlen(key)), &m);
    if (rc == 0)
        mc_object_meta_free(&m);
    mc_store_reader_free(r);
    return rc == 0;
}

static void eviction_after_restarts_takes_the_oldest_first(void **state)
{
    (void)state;
    char tmpl[] = "/tmp/mc-rebuild-XXXXXX";
    char *dir = mkdtemp(tmpl);
    assert_non_null(dir);
    mc_store_config cfg = {.dir = dir, .size_bytes = 4u << 20};   /* evicts above 3.2 MiB */
    mc_err err = {0};
    mc_store *s;
    int id = 0;
    for (int session = 0; session < 2; session++) {
        assert_int_equal(mc_store_open(&s, &cfg, &err), 0);
        for (int i = 0; i < 350; i++)
            write_object(s, id++);
        mc_store_close(s);
    }
    assert_int_equal(mc_store_open(&s, &cfg, &err), 0);
    for (int i = 0; i < 250; i++) {   /* 950 x 4000 bytes passes the high watermark */
        write_object(s, id++);
        mc_store_flush(s);
    }
    uint64_t evicted = mc_counter_get(&mc_store_get_stats(s)->evictions);
    assert_true(evicted > 0);
    /* what went is exactly a prefix of the insertion order */
    int first_present = 0;
    while (first_present < id && !present(s, first_present))
        first_present++;
    assert_int_equal((uint64_t)first_present, evicted);
    for (int i = first_present; i < id; i++)
        assert_true(present(s, i));
    mc_store_close(s);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(eviction_after_restarts_takes_the_oldest_first),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
