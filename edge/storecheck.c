/* storecheck.c — see storecheck.h. The record layouts are store.h's. */
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>
#include "common/hash.h"
#include "edge/store.h"
#include "edge/storecheck.h"

/* Records walked, or chunk bytes read, per read snapshot while a node runs:
 * short enough that the writer can reuse freed pages, long enough that
 * renewing costs nothing. (One object's chunks are always read in one
 * snapshot, so a 4 GiB object holds it for as long as reading it takes.) */
#define RENEW_EVERY 256
#define RENEW_BYTES (64u << 20)

typedef struct checker {
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi objects, chunks, paths, pending, state;
    FILE *out;
    unsigned max_lines;
    uint64_t state_seq;
    uint64_t bytes_read;     /* chunk bytes read in this snapshot */
    mc_storecheck_report *rep;
} checker;

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static void put_be(unsigned char *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * (n - 1 - i)));
}

static void hex16(const unsigned char *k, char out[33])
{
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", k[i]);
}

__attribute__((format(printf, 3, 4))) static void problem(checker *c, const unsigned char *key, const char *fmt,
                                                          ...)
{
    if (c->out && c->rep->problems < c->max_lines) {
        char hex[33] = "-";
        if (key)
            hex16(key, hex);
        fprintf(c->out, "problem: key=%s ", hex);
        va_list ap;
        va_start(ap, fmt);
        vfprintf(c->out, fmt, ap);
        va_end(ap);
        fputc('\n', c->out);
    }
    c->rep->problems++;
}

/* A fresh snapshot (only while a node runs; see storecheck.h). */
static int renew(checker *c)
{
    c->bytes_read = 0;
    mdb_txn_reset(c->txn);
    int rc = mdb_txn_renew(c->txn);
    if (rc == MDB_MAP_RESIZED) {
        /* the node grew the map since we opened: follow it */
        mdb_txn_abort(c->txn);
        c->txn = NULL;
        if ((rc = mdb_env_set_mapsize(c->env, 0)) == 0)
            rc = mdb_txn_begin(c->env, NULL, MDB_RDONLY, &c->txn);
    }
    return rc;
}

typedef void (*visit_fn)(checker *c, const MDB_val *k, const MDB_val *d);

/* Visit every record of dbi in key order; while a node runs, the snapshot is
 * renewed every RENEW_EVERY records and the cursor put back after the last
 * key seen. */
static int walk(checker *c, MDB_dbi dbi, visit_fn fn)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(c->txn, dbi, &cur);
    if (rc)
        return rc;
    unsigned char last[512];
    size_t last_len = 0;
    unsigned n = 0;
    MDB_val k, d;
    rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST);
    while (rc == 0) {
        fn(c, &k, &d);
        int due = ++n % RENEW_EVERY == 0 || c->bytes_read >= RENEW_BYTES;
        if (!c->rep->live || !due || k.mv_size > sizeof last) {
            rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT);
            continue;
        }
        memcpy(last, k.mv_data, k.mv_size);
        last_len = k.mv_size;
        mdb_cursor_close(cur);
        if ((rc = renew(c)) != 0 || (rc = mdb_cursor_open(c->txn, dbi, &cur)) != 0)
            return rc;
        k.mv_size = last_len;
        k.mv_data = last;
        rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE);
        if (rc == 0 && k.mv_size == last_len && memcmp(k.mv_data, last, last_len) == 0)
            rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* ---------- objects: metadata, chunks, body, path entry ---------- */

static void check_body(checker *c, const unsigned char *key, const mc_object_meta *m)
{
    XXH3_state_t *st = XXH3_createState();
    if (!st) {
        problem(c, key, "out of memory");
        return;
    }
    XXH3_64bits_reset(st);
    uint64_t sum = 0;
    int whole = 1;
    for (uint32_t i = 0; i < m->nchunks; i++) {
        unsigned char ck[28];
        memcpy(ck, key, 16);
        put_be(ck + 16, m->seq, 8);
        put_be(ck + 24, i, 4);
        MDB_val k = {28, ck}, d;
        if (mdb_get(c->txn, c->chunks, &k, &d) != 0) {
            problem(c, key, "path=\"%s\" chunk %u of %u missing", m->key, i, m->nchunks);
            whole = 0;
            continue;
        }
        if (d.mv_size < 8) {
            problem(c, key, "path=\"%s\" chunk %u shorter than its checksum", m->key, i);
            whole = 0;
            continue;
        }
        const unsigned char *p = d.mv_data;
        size_t n = d.mv_size - 8;
        c->bytes_read += n;
        uint64_t want = i + 1 < m->nchunks ? m->chunk_size : m->length - (uint64_t)i * m->chunk_size;
        if (n != want) {
            problem(c, key, "path=\"%s\" chunk %u holds %zu bytes, expected %llu", m->key, i, n,
                    (unsigned long long)want);
            whole = 0;
        }
        if (get_u64(p) != XXH3_64bits(p + 8, n)) {
            problem(c, key, "path=\"%s\" chunk %u fails its checksum", m->key, i);
            whole = 0;
        }
        sum += n;
        XXH3_64bits_update(st, p + 8, n);
    }
    if (whole && sum != m->length)
        problem(c, key, "path=\"%s\" chunks hold %llu bytes, object length %llu", m->key,
                (unsigned long long)sum, (unsigned long long)m->length);
    else if (whole && XXH3_64bits_digest(st) != m->body_checksum)
        problem(c, key, "path=\"%s\" body checksum mismatch", m->key);
    XXH3_freeState(st);
}

static void visit_object(checker *c, const MDB_val *k, const MDB_val *d)
{
    if (k->mv_size != 16) {
        problem(c, NULL, "objects: key of %zu bytes", k->mv_size);
        return;
    }
    const unsigned char *key = k->mv_data;
    mc_object_meta m;
    if (mc_object_meta_decode(d->mv_data, d->mv_size, &m) < 0) {
        problem(c, key, "metadata does not decode (%zu bytes)", d->mv_size);
        return;
    }
    unsigned char want[16];
    mc_hash128_bytes(mc_hash_key(m.key, strlen(m.key)), want);
    if (memcmp(want, key, 16) != 0)
        problem(c, key, "path=\"%s\" stored under another key's hash", m.key);
    if (m.seq >= c->state_seq)
        problem(c, key, "path=\"%s\" seq %llu not below the reserved %llu", m.key, (unsigned long long)m.seq,
                (unsigned long long)c->state_seq);
    if (m.status == MC_META_VARY_MARKER) {
        c->rep->markers++;
        if (m.length != 0)
            problem(c, key, "path=\"%s\" vary marker with a body of %llu bytes", m.key,
                    (unsigned long long)m.length);
    } else {
        c->rep->objects++;
        c->rep->bytes += m.length;
        check_body(c, key, &m);
    }
    size_t pl = strlen(m.key);
    if (pl > 0 && pl <= 511) {   /* longer keys are not indexed (LMDB's key limit) */
        MDB_val pk = {pl, m.key}, pd;
        int rc = mdb_get(c->txn, c->paths, &pk, &pd);
        if (rc != 0)
            problem(c, key, "path=\"%s\" missing from the path index", m.key);
        else if (pd.mv_size != 16 || memcmp(pd.mv_data, key, 16) != 0)
            problem(c, key, "path=\"%s\" path index points to another key", m.key);
    }
    mc_object_meta_free(&m);
}

/* ---------- chunks: each belongs to an object or a pending fill ---------- */

static int pending_has(checker *c, const unsigned char *key, uint64_t seq)
{
    unsigned char sk[8];
    put_be(sk, seq, 8);
    MDB_val k = {8, sk}, d;
    return mdb_get(c->txn, c->pending, &k, &d) == 0 && d.mv_size == 16 && memcmp(d.mv_data, key, 16) == 0;
}

static void visit_chunk(checker *c, const MDB_val *k, const MDB_val *d)
{
    c->rep->chunks++;
    c->rep->chunk_bytes += d->mv_size >= 8 ? d->mv_size - 8 : 0;
    if (k->mv_size != 28) {
        problem(c, NULL, "chunks: key of %zu bytes", k->mv_size);
        return;
    }
    const unsigned char *key = k->mv_data;
    uint64_t seq = get_u64(key + 16);
    uint32_t idx = (uint32_t)key[24] << 24 | (uint32_t)key[25] << 16 | (uint32_t)key[26] << 8 | key[27];
    MDB_val ok = {16, (void *)key}, od;
    if (mdb_get(c->txn, c->objects, &ok, &od) == 0) {
        mc_object_meta m;
        if (mc_object_meta_decode(od.mv_data, od.mv_size, &m) == 0) {
            int mine = m.seq == seq && m.status != MC_META_VARY_MARKER;
            uint32_t n = m.nchunks;
            mc_object_meta_free(&m);
            if (mine && idx < n)
                return;
            if (mine) {
                problem(c, key, "chunk %u past the object's %u chunks", idx, n);
                return;
            }
        }
    }
    if (pending_has(c, key, seq)) {
        c->rep->pending_chunks++;
        return;
    }
    problem(c, key, "orphan chunk seq=%llu idx=%u (no object, no pending fill)", (unsigned long long)seq, idx);
}

/* ---------- paths: each points to an object with that key string ---------- */

static void visit_path(checker *c, const MDB_val *k, const MDB_val *d)
{
    c->rep->paths++;
    if (d->mv_size != 16) {
        problem(c, NULL, "path=\"%.*s\" index value of %zu bytes", (int)k->mv_size, (const char *)k->mv_data,
                d->mv_size);
        return;
    }
    MDB_val ok = {16, d->mv_data}, od;
    if (mdb_get(c->txn, c->objects, &ok, &od) != 0) {
        problem(c, d->mv_data, "path=\"%.*s\" indexed but no object", (int)k->mv_size,
                (const char *)k->mv_data);
        return;
    }
    mc_object_meta m;
    if (mc_object_meta_decode(od.mv_data, od.mv_size, &m) < 0)
        return;   /* reported by the object walk */
    if (strlen(m.key) != k->mv_size || memcmp(m.key, k->mv_data, k->mv_size) != 0)
        problem(c, d->mv_data, "path=\"%.*s\" indexed to an object with key \"%s\"", (int)k->mv_size,
                (const char *)k->mv_data, m.key);
    mc_object_meta_free(&m);
}

static void visit_pending(checker *c, const MDB_val *k, const MDB_val *d)
{
    c->rep->pending++;
    if (k->mv_size != 8 || d->mv_size != 16)
        problem(c, NULL, "pending: record of %zu/%zu bytes", k->mv_size, d->mv_size);
}

/* ---------- the whole check ---------- */

static int state_u64(checker *c, const char *name, uint64_t *v)
{
    MDB_val k = {strlen(name), (void *)name}, d;
    int rc = mdb_get(c->txn, c->state, &k, &d);
    *v = rc == 0 && d.mv_size == 8 ? get_u64(d.mv_data) : 0;
    return rc;
}

/* Is a node holding the store? Probe its lock without keeping it. */
static int node_running(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/meshcdn.lock", dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    int busy = flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK;
    close(fd);   /* releases the probe */
    return busy;
}

static int run_checks(checker *c, mc_err *err, const char *dir)
{
    mc_storecheck_report *rep = c->rep;
    int rc = mdb_txn_begin(c->env, NULL, MDB_RDONLY, &c->txn);
    if (!rc) rc = mdb_dbi_open(c->txn, "objects", 0, &c->objects);
    if (!rc) rc = mdb_dbi_open(c->txn, "chunks", 0, &c->chunks);
    if (!rc) rc = mdb_dbi_open(c->txn, "paths", 0, &c->paths);
    if (!rc) rc = mdb_dbi_open(c->txn, "pending", 0, &c->pending);
    if (!rc) rc = mdb_dbi_open(c->txn, "state", 0, &c->state);
    if (rc)
        return mc_err_set(err, MC_E_INVAL, "store %s: not an edge store (%s)", dir, mdb_strerror(rc));
    state_u64(c, "format", &rep->format);
    if (rep->format != mc_store_format_version())
        return mc_err_set(err, MC_E_INVAL, "store %s: format %llu, this build reads %u", dir,
                          (unsigned long long)rep->format, mc_store_format_version());
    uint64_t bytes = 0, objects = 0;
    state_u64(c, "seq", &c->state_seq);
    state_u64(c, "bytes", &bytes);
    state_u64(c, "objects", &objects);
    if (!rc) rc = walk(c, c->objects, visit_object);
    if (!rc) rc = walk(c, c->chunks, visit_chunk);
    if (!rc) rc = walk(c, c->paths, visit_path);
    if (!rc) rc = walk(c, c->pending, visit_pending);
    if (rc)
        return mc_err_set(err, MC_E_IO, "store %s: %s", dir, mdb_strerror(rc));
    if (!rep->live && (bytes != rep->bytes || objects != rep->objects)) {
        problem(c, NULL, "totals say %llu objects / %llu bytes, the objects sum to %llu / %llu",
                (unsigned long long)objects, (unsigned long long)bytes, (unsigned long long)rep->objects,
                (unsigned long long)rep->bytes);
    }
    MDB_envinfo info;
    MDB_stat st;
    mdb_env_info(c->env, &info);
    mdb_env_stat(c->env, &st);
    rep->map_used = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
    return 0;
}

int mc_storecheck_run(const char *dir, FILE *out, unsigned max_lines, mc_storecheck_report *rep, mc_err *err)
{
    memset(rep, 0, sizeof *rep);
    char data[4096];
    struct stat sb;
    snprintf(data, sizeof data, "%s/data.mdb", dir);
    if (stat(data, &sb) < 0)
        return mc_err_set(err, MC_E_NOTFOUND, "store %s: no data.mdb: %s", dir, strerror(errno));
    checker c = {.out = out, .max_lines = max_lines, .rep = rep};
    rep->file_bytes = (uint64_t)sb.st_size;
    rep->live = node_running(dir);
    int rc = mdb_env_create(&c.env);
    if (!rc) rc = mdb_env_set_maxdbs(c.env, 8);
    /* at least the file: LMDB raises it to the size recorded in the store */
    if (!rc) rc = mdb_env_set_mapsize(c.env, (size_t)sb.st_size);
    if (!rc) rc = mdb_env_open(c.env, dir, MDB_RDONLY | MDB_NOTLS | MDB_NORDAHEAD, 0);
    if (rc) {
        if (c.env)
            mdb_env_close(c.env);
        return mc_err_set(err, MC_E_IO, "store %s: %s", dir, mdb_strerror(rc));
    }
    rc = run_checks(&c, err, dir);
    if (c.txn)
        mdb_txn_abort(c.txn);
    mdb_env_close(c.env);
    return rc;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: meshcdn-edge check --store DIR [--max-problems N]\n"
               "Verifies every object of the store (checksums, lengths, indexes); safe beside a running node.\n"
               "Exit status: 0 sound, 1 damaged, 2 could not check.\n");
}

int mc_storecheck_main(int argc, char **argv)
{
    const char *dir = NULL;
    unsigned max_lines = 50;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--store") == 0 && i + 1 < argc) {
            dir = argv[++i];
        } else if (strncmp(a, "--store=", 8) == 0) {
            dir = a + 8;
        } else if (strcmp(a, "--max-problems") == 0 && i + 1 < argc) {
            max_lines = (unsigned)strtoul(argv[++i], NULL, 10);
        } else {
            fprintf(stderr, "meshcdn-edge check: unknown argument \"%s\"\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!dir) {
        fprintf(stderr, "meshcdn-edge check: --store DIR is required\n");
        usage(stderr);
        return 2;
    }
    mc_storecheck_report rep;
    mc_err err = {0};
    if (mc_storecheck_run(dir, stdout, max_lines, &rep, &err) < 0) {
        fprintf(stderr, "meshcdn-edge check: %s\n", err.msg);
        return 2;
    }
    if (rep.problems > max_lines)
        printf("... and %llu more problems\n", (unsigned long long)(rep.problems - max_lines));
    printf("store %s: format %llu%s\n", dir, (unsigned long long)rep.format,
           rep.live ? " (a node is running: checked in short snapshots, totals not compared)" : "");
    printf("objects %llu (+%llu vary markers), body bytes %llu\n", (unsigned long long)rep.objects,
           (unsigned long long)rep.markers, (unsigned long long)rep.bytes);
    printf("chunks %llu (%llu bytes), paths %llu\n", (unsigned long long)rep.chunks,
           (unsigned long long)rep.chunk_bytes, (unsigned long long)rep.paths);
    printf("pending fills %llu (%llu chunks): running, or left by a crash and removed at the next start\n",
           (unsigned long long)rep.pending, (unsigned long long)rep.pending_chunks);
    printf("map used %llu bytes (data.mdb %llu bytes)\n", (unsigned long long)rep.map_used,
           (unsigned long long)rep.file_bytes);
    if (rep.problems) {
        printf("DAMAGED: %llu problems\n", (unsigned long long)rep.problems);
        return 1;
    }
    printf("sound\n");
    return 0;
}
