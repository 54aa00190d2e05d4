/* test_purge.c — invalidation bodies (common/invspec) and purges in the
 * store: exact paths with their variants, prefixes, surrogate keys, all,
 * soft marks, the cursor, and a fill that began before a purge. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/hash.h"
#include "common/inval.h"
#include "common/invspec.h"
#include "common/metrics.h"
#include "edge/store.h"

/* ---------- invspec ---------- */

static int parse(const char *json, mc_invspec *s, const char **code, mc_err *err)
{
    mc_inval_error e = {0, NULL, ""};
    int rc = mc_invspec_parse(json, strlen(json), s, &e);
    if (rc < 0) {
        *code = e.code;
        snprintf(err->msg, sizeof err->msg, "%s", e.message);
    }
    return rc;
}

static void refuse(const char *json, const char *want_code, const char *want_in_msg)
{
    mc_invspec s;
    const char *code = NULL;
    mc_err err = {0};
    assert_int_equal(parse(json, &s, &code, &err), MC_E_INVAL);
    assert_non_null(code);
    if (strcmp(code, want_code) != 0)
        fail_msg("%s: code %s, want %s (%s)", json, code, want_code, err.msg);
    if (!strstr(err.msg, want_in_msg))
        fail_msg("%s: message \"%s\" lacks \"%s\"", json, err.msg, want_in_msg);
}

static void invspec_accepts_and_normalises(void **state)
{
    (void)state;
    mc_invspec s;
    const char *code = NULL;
    mc_err err = {0};
    assert_int_equal(parse("{\"paths\":[\"/a/../b.glb\",\"/models/chair/*\",\"/q.glb?v=2\"],"
                           "\"surrogate_keys\":[\"chair\",\"sku-1\"],\"soft\":true}", &s, &code, &err), 0);
    assert_int_equal(s.npaths, 2);
    assert_string_equal(s.paths[0], "/b.glb");
    assert_string_equal(s.paths[1], "/q.glb?v=2");
    assert_int_equal(s.nprefixes, 1);
    assert_string_equal(s.prefixes[0], "/models/chair/");
    assert_int_equal(s.ntags, 2);
    assert_true(s.soft);
    assert_false(s.all);
    mc_invspec copy;
    assert_int_equal(mc_invspec_copy(&s, &copy), 0);
    assert_int_equal(mc_invspec_items(&copy), 5);
    mc_invspec_free(&copy);
    mc_invspec_free(&s);
    assert_int_equal(parse("{\"all\":true}", &s, &code, &err), 0);
    assert_true(s.all);
    mc_invspec_free(&s);
}

/* The body rules are common/inval's (tests/unit/test_inval.c pins them);
 * here: they reach the purge, plus what only normalising can find. */
static void invspec_refuses_bad_bodies(void **state)
{
    (void)state;
    refuse("{\"paths\":[\"/a\"", "MalformedJSON", "");
    refuse("{\"paths\":[\"/a\"],\"color\":1}", "UnknownField", "color");
    refuse("{}", "EmptyInvalidation", "");
    refuse("{\"paths\":[\"a.glb\"]}", "InvalidPath", "a.glb");
    refuse("{\"paths\":[\"/a%00\"]}", "InvalidPath", "not a valid URL path");
    refuse("{\"paths\":[\"/a%zz.glb\"]}", "InvalidPath", "not a valid URL path");
}

static void invspec_matching(void **state)
{
    (void)state;
    mc_invspec s;
    const char *code;
    mc_err err = {0};
    assert_int_equal(parse("{\"paths\":[\"/a.glb\",\"/m/*\"],\"surrogate_keys\":[\"chair\"]}", &s, &code, &err), 0);
    assert_true(mc_invspec_matches(&s, "/a.glb", NULL));
    assert_true(mc_invspec_matches(&s, "/a.glb?v=1", NULL));
    assert_true(mc_invspec_matches(&s, "/a.glb\naccept-encoding=gzip", NULL));
    assert_false(mc_invspec_matches(&s, "/a.glbx", NULL));
    assert_false(mc_invspec_matches(&s, "/a.gl", NULL));
    assert_true(mc_invspec_matches(&s, "/m/x/y.bin", NULL));
    assert_false(mc_invspec_matches(&s, "/mm/x", NULL));
    assert_true(mc_invspec_matches(&s, "/z.glb", "ETag: \"1\"\r\nSurrogate-Key: table  chair\r\n"));
    assert_true(mc_invspec_matches(&s, "/z.glb", "surrogate-key: chair\r\n"));
    assert_false(mc_invspec_matches(&s, "/z.glb", "Surrogate-Key: chairs armchair\r\n"));
    assert_false(mc_invspec_matches(&s, "/z.glb", "X-Surrogate-Key: chair\r\n"));
    mc_invspec_free(&s);
}

/* ---------- the store ---------- */

typedef struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, ok;
    uint64_t affected;
} waiter;

#define WAITER_INIT {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0}

static void on_done(void *arg, int ok)
{
    waiter *w = arg;
    pthread_mutex_lock(&w->mu);
    w->done = 1;
    w->ok = ok;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void on_purged(void *arg, int ok, uint64_t affected)
{
    waiter *w = arg;
    w->affected = affected;
    on_done(arg, ok);
}

static int wait_for(waiter *w)
{
    pthread_mutex_lock(&w->mu);
    while (!w->done)
        pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
    return w->ok;
}

/* Publish a small object; gen is the purge generation its fill began at. */
static int put(mc_store *s, const char *key, const char *hdrs, uint64_t gen)
{
    mc_hash128 k = mc_hash_key(key, strlen(key));
    uint64_t seq = mc_store_next_seq(s);
    assert_int_equal(mc_store_put_chunk(s, k, seq, 0, key, strlen(key)), 0);
    mc_object_meta m = {0};
    m.status = 200;
    m.length = strlen(key);
    m.chunk_size = MC_STORE_CHUNK_SIZE;
    m.nchunks = 1;
    m.seq = seq;
    m.generation = gen;
    m.response_time = 1000;
    m.lifetime_s = 60;
    m.key = (char *)key;
    m.headers = (char *)hdrs;
    waiter w = WAITER_INIT;
    assert_int_equal(mc_store_publish(s, k, &m, on_done, &w), 0);
    return wait_for(&w);
}

static int present(mc_store *s, const char *key, uint32_t *flags)
{
    mc_store_reader *r;
    assert_int_equal(mc_store_reader_new(s, &r), 0);
    mc_object_meta m;
    int rc = mc_store_read_meta(r, mc_hash_key(key, strlen(key)), &m);
    if (rc == 0) {
        if (flags)
            *flags = m.flags;
        mc_object_meta_free(&m);
    }
    mc_store_reader_free(r);
    return rc == 0;
}

static uint64_t purge(mc_store *s, const char *json, const uint64_t *cursor)
{
    mc_invspec spec;
    const char *code;
    mc_err err = {0};
    assert_int_equal(parse(json, &spec, &code, &err), 0);
    waiter w = WAITER_INIT;
    assert_int_equal(mc_store_purge(s, &spec, cursor, on_purged, &w), 0);
    mc_invspec_free(&spec);
    assert_int_equal(wait_for(&w), 1);
    return w.affected;
}

static mc_store *open_store(char *dir)
{
    mc_store *s = NULL;
    mc_store_config cfg = {.dir = dir, .size_bytes = 64u << 20};
    mc_err err = {0};
    if (mc_store_open(&s, &cfg, &err) < 0)
        fail_msg("open: %s", err.msg);
    return s;
}

static void store_purges_paths_prefixes_tags_all(void **state)
{
    (void)state;
    char tmpl[] = "/tmp/mc-purge-XXXXXX";
    char *dir = mkdtemp(tmpl);
    assert_non_null(dir);
    mc_store *s = open_store(dir);
    const char *plain = "Content-Type: model/gltf-binary\r\n";
    assert_true(put(s, "/a.glb", plain, 0));
    assert_true(put(s, "/a.glb?v=2", plain, 0));
    assert_true(put(s, "/a.glbx", plain, 0));
    assert_true(put(s, "/m/1.glb", "Surrogate-Key: chair sku-1\r\n", 0));
    assert_true(put(s, "/m/2.glb", "Surrogate-Key: table\r\n", 0));
    assert_true(put(s, "/n/3.glb", "Surrogate-Key: chair\r\n", 0));
    assert_true(put(s, "/n/4.glb", plain, 0));
    mc_store_flush(s);   /* totals are refreshed after the done callbacks */
    assert_int_equal(mc_counter_get(&mc_store_get_stats(s)->objects), 7);

    assert_int_equal(purge(s, "{\"paths\":[\"/a.glb\"]}", NULL), 2);   /* and its query variant */
    assert_false(present(s, "/a.glb", NULL));
    assert_false(present(s, "/a.glb?v=2", NULL));
    assert_true(present(s, "/a.glbx", NULL));

    assert_int_equal(purge(s, "{\"surrogate_keys\":[\"chair\"]}", NULL), 2);
    assert_false(present(s, "/m/1.glb", NULL));
    assert_false(present(s, "/n/3.glb", NULL));
    assert_true(present(s, "/m/2.glb", NULL));

    uint32_t flags = 0;
    assert_int_equal(purge(s, "{\"paths\":[\"/n/*\"],\"soft\":true}", NULL), 1);
    assert_true(present(s, "/n/4.glb", &flags));
    assert_true(flags & MC_META_F_INVALIDATED);

    uint64_t cursor = 42, got = 0;
    assert_int_equal(purge(s, "{\"paths\":[\"/m/*\"]}", &cursor), 1);
    assert_false(present(s, "/m/2.glb", NULL));
    mc_store_reader *r;
    assert_int_equal(mc_store_reader_new(s, &r), 0);
    assert_int_equal(mc_store_read_cursor(r, &got), 0);
    assert_int_equal(got, 42);
    mc_store_reader_free(r);

    /* the tag index went with the objects: a re-published untagged object
     * under the same key is not caught by the old tag */
    assert_true(put(s, "/m/1.glb", plain, mc_store_generation(s)));
    assert_int_equal(purge(s, "{\"surrogate_keys\":[\"sku-1\"]}", NULL), 0);
    assert_true(present(s, "/m/1.glb", NULL));

    assert_int_equal(purge(s, "{\"all\":true}", NULL), 3);
    mc_store_flush(s);
    assert_int_equal(mc_counter_get(&mc_store_get_stats(s)->objects), 0);
    assert_int_equal(mc_counter_get(&mc_store_get_stats(s)->bytes), 0);
    mc_store_close(s);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void store_purge_beats_fill_in_flight(void **state)
{
    (void)state;
    char tmpl[] = "/tmp/mc-purge-XXXXXX";
    char *dir = mkdtemp(tmpl);
    assert_non_null(dir);
    mc_store *s = open_store(dir);
    const char *hdrs = "Surrogate-Key: chair\r\n";
    uint64_t g0 = mc_store_generation(s);
    assert_int_equal(purge(s, "{\"paths\":[\"/x/*\"]}", NULL), 0);
    assert_true(mc_store_generation(s) > g0);
    /* began before the purge, publishes after it: dropped */
    assert_false(put(s, "/x/old.glb", hdrs, g0));
    assert_false(present(s, "/x/old.glb", NULL));
    /* began before, but the purge did not name it: stored */
    assert_true(put(s, "/y/other.glb", hdrs, g0));
    /* began after the purge: stored */
    assert_true(put(s, "/x/new.glb", hdrs, mc_store_generation(s)));
    /* a soft purge since: stored, but marked */
    uint64_t g1 = mc_store_generation(s);
    assert_int_equal(purge(s, "{\"surrogate_keys\":[\"chair\"],\"soft\":true}", NULL), 2);
    uint32_t flags = 0;
    assert_true(put(s, "/z/soft.glb", hdrs, g1));
    assert_true(present(s, "/z/soft.glb", &flags));
    assert_true(flags & MC_META_F_INVALIDATED);
    assert_int_equal(mc_store_purged_since(s, g1, "/z/soft.glb", hdrs), 2);
    assert_int_equal(mc_store_purged_since(s, g1, "/z/soft.glb", "Surrogate-Key: other\r\n"), 0);
    /* more purges than remembered: an old fill is assumed purged */
    for (int i = 0; i < 70; i++)
        purge(s, "{\"paths\":[\"/nothing\"]}", NULL);
    assert_int_equal(mc_store_purged_since(s, g1, "/elsewhere", NULL), 1);
    assert_false(put(s, "/elsewhere", "", g1));
    mc_store_close(s);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(invspec_accepts_and_normalises),
        cmocka_unit_test(invspec_refuses_bad_bodies),
        cmocka_unit_test(invspec_matching),
        cmocka_unit_test(store_purges_paths_prefixes_tags_all),
        cmocka_unit_test(store_purge_beats_fill_in_flight),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
