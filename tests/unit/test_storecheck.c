/* test_storecheck.c — `meshcdn-edge check`: a store written through the
 * store API is sound; each kind of damage, made with raw LMDB writes, is
 * found and counted; fills left pending by a crash are not damage. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include "common/hash.h"
#include "edge/store.h"
#include "edge/storecheck.h"

static char *make_dir(void)
{
    char tmpl[] = "/tmp/mc-check-XXXXXX";
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

static void body_of(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)((i * 131 + seed * 17) ^ (i >> 7));
}

static void put_chunks(mc_store *s, mc_hash128 k, uint64_t seq, const unsigned char *body, size_t len)
{
    for (uint32_t i = 0; (size_t)i * MC_STORE_CHUNK_SIZE < len; i++) {
        size_t off = (size_t)i * MC_STORE_CHUNK_SIZE;
        size_t cl = len - off < MC_STORE_CHUNK_SIZE ? len - off : MC_STORE_CHUNK_SIZE;
        assert_int_equal(mc_store_put_chunk(s, k, seq, i, body + off, cl), 0);
    }
}

static void write_object(mc_store *s, const char *key, size_t len, unsigned seed)
{
    unsigned char *body = malloc(len ? len : 1);
    assert_non_null(body);
    body_of(body, len, seed);
    mc_hash128 k = mc_hash_key(key, strlen(key));
    mc_object_meta m = {0};
    m.status = 200;
    m.length = len;
    m.chunk_size = MC_STORE_CHUNK_SIZE;
    m.nchunks = (uint32_t)((len + MC_STORE_CHUNK_SIZE - 1) / MC_STORE_CHUNK_SIZE);
    m.seq = mc_store_next_seq(s);
    m.body_checksum = XXH3_64bits(body, len);
    m.key = (char *)key;
    m.headers = "Content-Type: model/gltf-binary\r\n";
    put_chunks(s, k, m.seq, body, len);
    assert_int_equal(mc_store_publish(s, k, &m, NULL, NULL), 0);
    free(body);
}

static const char *const keys[] = {"/a.glb", "/b.glb", "/c.bin", "/empty.txt"};
static const size_t lens[] = {1000, 3 * MC_STORE_CHUNK_SIZE + 17, MC_STORE_CHUNK_SIZE, 0};

static char *sound_store(void)
{
    char *dir = make_dir();
    mc_store *s;
    mc_err err = {0};
    mc_store_config cfg = {.dir = dir, .size_bytes = 64u << 20};
    assert_int_equal(mc_store_open(&s, &cfg, &err), 0);
    for (int i = 0; i < 4; i++)
        write_object(s, keys[i], lens[i], (unsigned)i);
    mc_store_close(s);
    return dir;
}

static uint64_t check(const char *dir, mc_storecheck_report *rep)
{
    mc_err err = {0};
    assert_int_equal(mc_storecheck_run(dir, stderr, 20, rep, &err), 0);
    return rep->problems;
}

/* Apply fn inside a raw LMDB write transaction on the store's dbi `name`. */
typedef void (*damage_fn)(MDB_txn *txn, MDB_dbi dbi, const unsigned char key[16]);

static void damage(const char *dir, const char *name, const char *objkey, damage_fn fn)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
    assert_int_equal(mdb_env_set_mapsize(env, 64u << 20), 0);
    assert_int_equal(mdb_env_open(env, dir, 0, 0640), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, name, 0, &dbi), 0);
    unsigned char kb[16];
    mc_hash128_bytes(mc_hash_key(objkey, strlen(objkey)), kb);
    fn(txn, dbi, kb);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

static void chunk_key(unsigned char ck[28], const unsigned char key[16], uint64_t seq, uint32_t idx)
{
    memcpy(ck, key, 16);
    for (int i = 0; i < 8; i++)
        ck[16 + i] = (unsigned char)(seq >> (56 - 8 * i));
    for (int i = 0; i < 4; i++)
        ck[24 + i] = (unsigned char)(idx >> (24 - 8 * i));
}

/* The seq of the object's first chunk (first chunk key with that prefix). */
static uint64_t first_seq(MDB_txn *txn, const unsigned char key[16])
{
    MDB_dbi chunks;
    MDB_cursor *cur;
    assert_int_equal(mdb_dbi_open(txn, "chunks", 0, &chunks), 0);
    assert_int_equal(mdb_cursor_open(txn, chunks, &cur), 0);
    unsigned char ck[28];
    chunk_key(ck, key, 0, 0);
    MDB_val k = {28, ck}, d;
    assert_int_equal(mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE), 0);
    assert_memory_equal(k.mv_data, key, 16);
    uint64_t seq = 0;
    for (int i = 0; i < 8; i++)
        seq = seq << 8 | ((unsigned char *)k.mv_data)[16 + i];
    mdb_cursor_close(cur);
    return seq;
}

static void drop_chunk_1(MDB_txn *txn, MDB_dbi dbi, const unsigned char key[16])
{
    unsigned char ck[28];
    chunk_key(ck, key, first_seq(txn, key), 1);
    MDB_val k = {28, ck};
    assert_int_equal(mdb_del(txn, dbi, &k, NULL), 0);
}

static void flip_in_chunk_0(MDB_txn *txn, MDB_dbi dbi, const unsigned char key[16])
{
    unsigned char ck[28];
    chunk_key(ck, key, first_seq(txn, key), 0);
    MDB_val k = {28, ck}, d;
    assert_int_equal(mdb_get(txn, dbi, &k, &d), 0);
    unsigned char *copy = malloc(d.mv_size);
    memcpy(copy, d.mv_data, d.mv_size);
    copy[8 + d.mv_size / 2] ^= 1;
    MDB_val nd = {d.mv_size, copy};
    assert_int_equal(mdb_put(txn, dbi, &k, &nd, 0), 0);
    free(copy);
}

static void add_orphan(MDB_txn *txn, MDB_dbi dbi, const unsigned char key[16])
{
    unsigned char ck[28], v[8 + 10] = {0};
    chunk_key(ck, key, 999, 0);
    uint64_t sum = XXH3_64bits(v + 8, 10);
    for (int i = 0; i < 8; i++)
        v[i] = (unsigned char)(sum >> (56 - 8 * i));
    MDB_val k = {28, ck}, d = {sizeof v, v};
    assert_int_equal(mdb_put(txn, dbi, &k, &d, 0), 0);
}

static void drop_path(MDB_txn *txn, MDB_dbi dbi, const unsigned char key[16])
{
    (void)key;
    MDB_val k = {6, "/a.glb"};
    assert_int_equal(mdb_del(txn, dbi, &k, NULL), 0);
}

static void garble_meta(MDB_txn *txn, MDB_dbi dbi, const unsigned char key[16])
{
    MDB_val k = {16, (void *)key}, d = {5, "junk!"};
    assert_int_equal(mdb_put(txn, dbi, &k, &d, 0), 0);
}

static void test_sound_store_passes(void **state)
{
    (void)state;
    char *dir = sound_store();
    mc_storecheck_report rep;
    assert_int_equal(check(dir, &rep), 0);
    assert_int_equal(rep.objects, 4);
    assert_int_equal(rep.bytes, lens[0] + lens[1] + lens[2]);
    assert_int_equal(rep.chunks, 1 + 4 + 1);
    assert_int_equal(rep.paths, 4);
    assert_int_equal(rep.pending, 0);
    assert_int_equal(rep.format, mc_store_format_version());
    assert_false(rep.live);
    assert_true(rep.map_used > 0 && rep.map_used <= rep.file_bytes);
    remove_dir(dir);
}

static void test_each_damage_is_found(void **state)
{
    (void)state;
    static const struct {
        const char *dbi, *key;
        damage_fn fn;
    } cases[] = {
        {"chunks", "/b.glb", drop_chunk_1},     /* missing chunk */
        {"chunks", "/c.bin", flip_in_chunk_0},  /* checksum */
        {"chunks", "/a.glb", add_orphan},       /* orphan chunk */
        {"paths", "/a.glb", drop_path},         /* path index */
        {"objects", "/a.glb", garble_meta},     /* undecodable metadata */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *dir = sound_store();
        damage(dir, cases[i].dbi, cases[i].key, cases[i].fn);
        mc_storecheck_report rep;
        assert_true(check(dir, &rep) >= 1);
        remove_dir(dir);
    }
}

static void test_pending_fill_is_not_damage(void **state)
{
    (void)state;
    char *dir = sound_store();
    mc_store *s;
    mc_err err = {0};
    mc_store_config cfg = {.dir = dir, .size_bytes = 64u << 20};
    assert_int_equal(mc_store_open(&s, &cfg, &err), 0);
    unsigned char body[5000];
    body_of(body, sizeof body, 9);
    put_chunks(s, mc_hash_key("/unfinished", 11), mc_store_next_seq(s), body, sizeof body);
    mc_store_close(s);   /* as a crash would leave it: chunks written, never published */
    mc_storecheck_report rep;
    assert_int_equal(check(dir, &rep), 0);
    assert_int_equal(rep.pending, 1);
    assert_int_equal(rep.pending_chunks, 1);
    /* the next open removes it */
    assert_int_equal(mc_store_open(&s, &cfg, &err), 0);
    mc_store_close(s);
    assert_int_equal(check(dir, &rep), 0);
    assert_int_equal(rep.pending, 0);
    assert_int_equal(rep.chunks, 6);
    remove_dir(dir);
}

static void test_not_a_store(void **state)
{
    (void)state;
    char *dir = make_dir();
    mc_storecheck_report rep;
    mc_err err = {0};
    assert_int_equal(mc_storecheck_run(dir, NULL, 0, &rep, &err), MC_E_NOTFOUND);
    assert_non_null(strstr(err.msg, "no data.mdb"));
    remove_dir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sound_store_passes),
        cmocka_unit_test(test_each_damage_is_found),
        cmocka_unit_test(test_pending_fill_is_not_damage),
        cmocka_unit_test(test_not_a_store),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
