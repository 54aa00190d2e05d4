/* test_store.c — the LMDB store: publish only complete objects, read them
 * back chunk by chunk, survive a crash mid-fill, refuse a second node, keep
 * running when the map is full. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "common/hash.h"
#include "common/metrics.h"
#include "edge/store.h"

typedef struct done_flag {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, ok;
} done_flag;

static void on_done(void *arg, int ok)
{
    done_flag *d = arg;
    pthread_mutex_lock(&d->mu);
    d->done = 1;
    d->ok = ok;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

static int wait_done(done_flag *d)
{
    pthread_mutex_lock(&d->mu);
    while (!d->done)
        pthread_cond_wait(&d->cv, &d->mu);
    pthread_mutex_unlock(&d->mu);
    return d->ok;
}

static char *make_dir(void)
{
    char tmpl[] = "/tmp/mc-store-XXXXXX";
    char *d = mkdtemp(tmpl);
    assert_non_null(d);
    return strdup(d);
}

static void remove_dir(char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    free(dir);
}

static void fill_pattern(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)((i * 31 + seed * 7) ^ (i >> 9));
}

/* Write an object of len bytes as a fill would; returns the publish result. */
static int write_object(mc_store *s, const char *key, const unsigned char *body, size_t len,
                        int skip_chunk)
{
    mc_hash128 k = mc_hash_key(key, strlen(key));
    uint64_t seq = mc_store_next_seq(s);
    uint32_t n = (uint32_t)((len + MC_STORE_CHUNK_SIZE - 1) / MC_STORE_CHUNK_SIZE);
    for (uint32_t i = 0; i < n; i++) {
        size_t off = (size_t)i * MC_STORE_CHUNK_SIZE, cl = len - off < MC_STORE_CHUNK_SIZE ? len - off : MC_STORE_CHUNK_SIZE;
        if ((int)i == skip_chunk)
            continue;
        assert_int_equal(mc_store_put_chunk(s, k, seq, i, body + off, cl), 0);
    }
    mc_object_meta m = {0};
    m.status = 200;
    m.length = len;
    m.chunk_size = MC_STORE_CHUNK_SIZE;
    m.nchunks = n;
    m.seq = seq;
    m.response_time = 1000;
    m.lifetime_s = 60;
    m.key = (char *)key;
    m.headers = "Content-Type: model/gltf-binary\r\nETag: \"abc\"\r\n";
    done_flag d = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    assert_int_equal(mc_store_publish(s, k, &m, on_done, &d), 0);
    return wait_done(&d);
}

static void read_back(mc_store *s, const char *key, const unsigned char *body, size_t len)
{
    mc_store_reader *r;
    assert_int_equal(mc_store_reader_new(s, &r), 0);
    mc_hash128 k = mc_hash_key(key, strlen(key));
    mc_object_meta m;
    assert_int_equal(mc_store_read_meta(r, k, &m), 0);
    assert_int_equal(m.length, len);
    assert_string_equal(m.key, key);
    assert_non_null(strstr(m.headers, "ETag: \"abc\""));
    mc_buf b = MC_BUF_INIT;
    for (uint32_t i = 0; i < m.nchunks; i++)
        assert_true(mc_store_read_chunk(r, k, m.seq, i, &b) > 0);
    assert_int_equal(b.len, len);
    assert_memory_equal(b.data, body, len);
    mc_buf_free(&b);
    mc_object_meta_free(&m);
    mc_store_reader_free(r);
}

static mc_store *open_store(const char *dir, uint64_t size)
{
    mc_store *s = NULL;
    mc_store_config cfg = {.dir = dir, .size_bytes = size};
    mc_err err = {0};
    int rc = mc_store_open(&s, &cfg, &err);
    if (rc < 0)
        fail_msg("open: %s", err.msg);
    return s;
}

static void publish_then_read_back_across_restart(void **state)
{
    (void)state;
    char *dir = make_dir();
    size_t len = 3 * MC_STORE_CHUNK_SIZE + 12345;
    unsigned char *body = malloc(len);
    fill_pattern(body, len, 1);
    mc_store *s = open_store(dir, 64u << 20);
    assert_int_equal(write_object(s, "/models/chair.glb", body, len, -1), 1);
    read_back(s, "/models/chair.glb", body, len);
    assert_int_equal(mc_counter_get(&mc_store_get_stats(s)->objects), 1);
    assert_int_equal(mc_counter_get(&mc_store_get_stats(s)->bytes), len);
    mc_store_close(s);
    s = open_store(dir, 64u << 20);   /* restart keeps the cache */
    read_back(s, "/models/chair.glb", body, len);
    assert_int_equal(mc_counter_get(&mc_store_get_stats(s)->objects), 1);
    /* a new version replaces the old one, totals stay right */
    fill_pattern(body, len, 2);
    assert_int_equal(write_object(s, "/models/chair.glb", body, len, -1), 1);
    read_back(s, "/models/chair.glb", body, len);
    assert_int_equal(mc_counter_get(&mc_store_get_stats(s)->objects), 1);
    assert_int_equal(mc_counter_get(&mc_store_get_stats(s)->bytes), len);
    mc_store_close(s);
    free(body);
    remove_dir(dir);
}

static void publish_with_missing_chunk_is_refused(void **state)
{
    (void)state;
    char *dir = make_dir();
    size_t len = 2 * MC_STORE_CHUNK_SIZE + 5;
    unsigned char *body = malloc(len);
    fill_pattern(body, len, 3);
    mc_store *s = open_store(dir, 64u << 20);
    assert_int_equal(write_object(s, "/a.bin", body, len, 1), 0);
    mc_store_reader *r;
    assert_int_equal(mc_store_reader_new(s, &r), 0);
    mc_object_meta m;
    mc_hash128 k = mc_hash_key("/a.bin", 6);
    assert_int_equal(mc_store_read_meta(r, k, &m), MC_E_NOTFOUND);
    mc_store_reader_free(r);
    assert_int_equal(mc_counter_get(&mc_store_get_stats(s)->objects), 0);
    mc_store_close(s);
    free(body);
    remove_dir(dir);
}

static void crash_mid_fill_leaves_nothing(void **state)
{
    (void)state;
    char *dir = make_dir();
    unsigned char buf[1000];
    fill_pattern(buf, sizeof buf, 4);
    /* a child writes chunks of a fill and dies without publishing */
    pid_t pid = fork();
    if (pid == 0) {
        mc_store *s = open_store(dir, 64u << 20);
        mc_hash128 k = mc_hash_key("/half.glb", 9);
        mc_store_put_chunk(s, k, mc_store_next_seq(s), 0, buf, sizeof buf);
        /* the queue is FIFO: once this publish is done, the chunk above is committed */
        _exit(write_object(s, "/other.glb", buf, sizeof buf, -1) == 1 ? 0 : 1);   /* no close: as if killed */
    }
    int st;
    waitpid(pid, &st, 0);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    mc_store *s = open_store(dir, 64u << 20);
    read_back(s, "/other.glb", buf, sizeof buf);
    mc_store_reader *r;
    assert_int_equal(mc_store_reader_new(s, &r), 0);
    mc_buf b = MC_BUF_INIT;
    /* seq of the dead fill is unknown here; its chunks are gone if no seq in a
     * wide window has any */
    mc_hash128 k = mc_hash_key("/half.glb", 9);
    int found = 0;
    for (uint64_t seq = 0; seq < 4; seq++)
        found |= mc_store_read_chunk(r, k, seq + 1, 0, &b) > 0;
    assert_false(found);
    mc_buf_free(&b);
    mc_store_reader_free(r);
    mc_store_close(s);
    remove_dir(dir);
}

static void second_node_on_same_store_is_refused(void **state)
{
    (void)state;
    char *dir = make_dir();
    mc_store *s = open_store(dir, 64u << 20), *s2 = NULL;
    mc_store_config cfg = {.dir = dir, .size_bytes = 64u << 20};
    mc_err err = {0};
    assert_int_equal(mc_store_open(&s2, &cfg, &err), MC_E_BUSY);
    assert_non_null(strstr(err.msg, "in use"));
    mc_store_close(s);
    remove_dir(dir);
}

static void full_store_drops_writes_not_the_node(void **state)
{
    (void)state;
    char *dir = make_dir();
    size_t len = 24u << 20;   /* more than the 16 MiB map */
    unsigned char *body = malloc(len);
    fill_pattern(body, len, 5);
    mc_store *s = open_store(dir, 16u << 20);
    assert_int_equal(write_object(s, "/big.glb", body, len, -1), 0);
    assert_true(mc_counter_get(&mc_store_get_stats(s)->write_failures) > 0);
    /* a small object still fits afterwards */
    assert_int_equal(write_object(s, "/small.glb", body, 1000, -1), 1);
    read_back(s, "/small.glb", body, 1000);
    mc_store_close(s);
    free(body);
    remove_dir(dir);
}

/* What the writer reported for notified chunks (feed.h follows a fill by it). */
typedef struct chunk_log {
    pthread_mutex_t mu;
    int n;
    struct { uint32_t idx; int ok; } at[128];
} chunk_log;
typedef struct chunk_note {
    chunk_log *log;
    uint32_t idx;
} chunk_note;

static void on_chunk_note(void *arg, int ok)
{
    chunk_note *c = arg;
    pthread_mutex_lock(&c->log->mu);
    c->log->at[c->log->n].idx = c->idx;
    c->log->at[c->log->n++].ok = ok;
    pthread_mutex_unlock(&c->log->mu);
}

/* Late joiners read a fill's chunks before its publish: each notified chunk
 * is reported once, in order, after the commit that makes it readable. */
static void notified_chunks_are_reported_in_order_once_readable(void **state)
{
    (void)state;
    char *dir = make_dir();
    unsigned char *body = malloc(4 * MC_STORE_CHUNK_SIZE);
    fill_pattern(body, 4 * MC_STORE_CHUNK_SIZE, 6);
    mc_store *s = open_store(dir, 64u << 20);
    mc_hash128 k = mc_hash_key("/pending.glb", 12);
    uint64_t seq = mc_store_next_seq(s);
    chunk_log log = {.mu = PTHREAD_MUTEX_INITIALIZER};
    chunk_note notes[4];
    for (uint32_t i = 0; i < 4; i++) {
        notes[i] = (chunk_note){&log, i};
        assert_int_equal(mc_store_put_chunk_notify(s, k, seq, i, body + (size_t)i * MC_STORE_CHUNK_SIZE,
                                                   i == 3 ? 1000 : MC_STORE_CHUNK_SIZE, on_chunk_note, &notes[i]), 0);
    }
    mc_store_flush(s);
    assert_int_equal(log.n, 4);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(log.at[i].idx, (uint32_t)i);
        assert_int_equal(log.at[i].ok, 1);
    }
    /* pending (no publish): readable by their seq */
    mc_store_reader *r;
    assert_int_equal(mc_store_reader_new(s, &r), 0);
    mc_buf b = MC_BUF_INIT;
    for (uint32_t i = 0; i < 4; i++)
        assert_int_equal(mc_store_read_chunk(r, k, seq, i, &b), i == 3 ? 1000 : (int)MC_STORE_CHUNK_SIZE);
    assert_memory_equal(b.data, body, 3 * MC_STORE_CHUNK_SIZE + 1000);
    mc_buf_free(&b);
    mc_store_reader_free(r);
    mc_store_close(s);
    free(body);
    remove_dir(dir);
}

/* A chunk the writer could not store (full map) fails its fill: it and every
 * later chunk of the fill are reported not ok, never as committed. */
static void chunks_after_a_dropped_one_are_reported_dropped(void **state)
{
    (void)state;
    char *dir = make_dir();
    size_t n = 24u << 20;   /* more than the 16 MiB map */
    unsigned char *body = malloc(n);
    fill_pattern(body, n, 7);
    mc_store *s = open_store(dir, 16u << 20);
    mc_hash128 k = mc_hash_key("/toobig.glb", 11);
    uint64_t seq = mc_store_next_seq(s);
    chunk_log log = {.mu = PTHREAD_MUTEX_INITIALIZER};
    static chunk_note notes[96];
    uint32_t nchunks = (uint32_t)(n / MC_STORE_CHUNK_SIZE);
    for (uint32_t i = 0; i < nchunks; i++) {
        notes[i] = (chunk_note){&log, i};
        while (mc_store_put_chunk_notify(s, k, seq, i, body + (size_t)i * MC_STORE_CHUNK_SIZE, MC_STORE_CHUNK_SIZE,
                                         on_chunk_note, &notes[i]) == MC_E_FULL)
            mc_store_flush(s);   /* the writer queue's bound: let it catch up */
    }
    mc_store_flush(s);
    assert_int_equal(log.n, (int)nchunks);
    int first_bad = -1;
    for (int i = 0; i < log.n; i++) {
        assert_int_equal(log.at[i].idx, (uint32_t)i);
        if (!log.at[i].ok && first_bad < 0)
            first_bad = i;
        if (first_bad >= 0)
            assert_int_equal(log.at[i].ok, 0);
    }
    assert_true(first_bad > 0);
    mc_store_close(s);
    free(body);
    remove_dir(dir);
}

static void meta_round_trip_and_corrupt_meta(void **state)
{
    (void)state;
    mc_object_meta m = {0}, out;
    m.status = 200;
    m.length = 600000;
    m.chunk_size = MC_STORE_CHUNK_SIZE;
    m.nchunks = 3;
    m.seq = 42;
    m.lifetime_s = 86400;
    m.initial_age_s = 3;
    m.response_time = 1700000000;
    m.key = "/k?x=1";
    m.headers = "A: b\r\n";
    mc_buf b = MC_BUF_INIT;
    assert_int_equal(mc_object_meta_encode(&m, &b), 0);
    assert_int_equal(mc_object_meta_decode(b.data, b.len, &out), 0);
    assert_int_equal(out.length, 600000);
    assert_int_equal(out.seq, 42);
    assert_int_equal(out.initial_age_s, 3);
    assert_string_equal(out.key, "/k?x=1");
    assert_string_equal(out.headers, "A: b\r\n");
    mc_object_meta_free(&out);
    assert_int_equal(mc_object_meta_decode(b.data, b.len - 1, &out), MC_E_INVAL);
    b.data[8 * 4 + 7] ^= 1;   /* nchunks disagrees with length */
    assert_int_equal(mc_object_meta_decode(b.data, b.len, &out), MC_E_INVAL);
    mc_buf_free(&b);
}

static void put_be64(char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (char)(v >> (56 - 8 * i));
}

/* Found by tests/fuzz/fuzz_meta: a length near 2^64 wrapped the chunk count
 * check to 0 chunks, and fields wider than their types were truncated into
 * agreement. A record whose chunks do not cover its body is corrupt. */
static void meta_with_wrapping_chunk_count_is_refused(void **state)
{
    (void)state;
    mc_object_meta m = {0}, out;
    m.status = 200;
    m.length = 1;
    m.chunk_size = 2;
    m.nchunks = 1;
    m.key = "/k";
    m.headers = "";
    mc_buf b = MC_BUF_INIT;
    assert_int_equal(mc_object_meta_encode(&m, &b), 0);
    assert_int_equal(mc_object_meta_decode(b.data, b.len, &out), 0);
    mc_object_meta_free(&out);
    put_be64(b.data + 16, UINT64_MAX);          /* (length + 2 - 1) / 2 wraps to 0 */
    put_be64(b.data + 32, 0);
    assert_int_equal(mc_object_meta_decode(b.data, b.len, &out), MC_E_INVAL);
    put_be64(b.data + 16, 0xffffffffffffff00u); /* the fuzzer's input */
    put_be64(b.data + 24, 0x0000010060d000c6u);
    assert_int_equal(mc_object_meta_decode(b.data, b.len, &out), MC_E_INVAL);
    put_be64(b.data + 16, 1);                   /* chunk_size wider than 32 bits */
    put_be64(b.data + 24, ((uint64_t)1 << 32) | 2);
    put_be64(b.data + 32, 1);
    assert_int_equal(mc_object_meta_decode(b.data, b.len, &out), MC_E_INVAL);
    put_be64(b.data + 24, 2);                   /* status wider than 16 bits */
    put_be64(b.data + 8, 0x100c8);
    assert_int_equal(mc_object_meta_decode(b.data, b.len, &out), MC_E_INVAL);
    put_be64(b.data + 8, 200);
    assert_int_equal(mc_object_meta_decode(b.data, b.len, &out), 0);
    mc_object_meta_free(&out);
    mc_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(meta_with_wrapping_chunk_count_is_refused),
        cmocka_unit_test(publish_then_read_back_across_restart),
        cmocka_unit_test(publish_with_missing_chunk_is_refused),
        cmocka_unit_test(crash_mid_fill_leaves_nothing),
        cmocka_unit_test(second_node_on_same_store_is_refused),
        cmocka_unit_test(full_store_drops_writes_not_the_node),
        cmocka_unit_test(notified_chunks_are_reported_in_order_once_readable),
        cmocka_unit_test(chunks_after_a_dropped_one_are_reported_dropped),
        cmocka_unit_test(meta_round_trip_and_corrupt_meta),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
