/* store.c — see store.h. */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <pthread.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "common/invspec.h"
#include "common/log.h"
#include "common/metrics.h"
#include "edge/evict.h"
#include "edge/store.h"

#define META_VERSION 2u   /* 2 appends flags; 1 is still read (flags 0) */
#define FORMAT_VERSION 1u
#define BATCH_MAX_OPS 512
#define BATCH_MAX_BYTES (64u << 20)
#define FAILED_RING 256
#define PURGE_RING 64        /* recent purges remembered for fills in flight */
#define PURGE_TXN_OBJECTS 20000 /* objects removed per transaction of a big purge (each commit syncs) */
#define MAX_DROPPED 4        /* variants one publish may replace (a lowered cap converges) */
#define EVICT_BATCH_MAX 1024  /* victims one eviction transaction removes at most */

typedef struct store_op {
    struct store_op *next;
    mc_store_op_kind kind;
    unsigned char key[16];
    uint64_t seq;
    uint32_t idx;
    void *data;             /* CHUNK: the bytes (owned); PUBLISH: encoded meta (owned) */
    size_t len;
    char *path;             /* PUBLISH: normalised key string (owned) */
    unsigned char marker_key[16]; /* PUBLISH of a variant: where its Vary marker goes */
    void *marker;           /* PUBLISH of a variant: encoded marker (owned), or NULL */
    size_t marker_len;
    char *marker_path;
    uint64_t length;        /* PUBLISH: body length, checked against the chunks */
    uint32_t nchunks;
    uint64_t gen;           /* PUBLISH/UPDATE: purge generation at fill start */
    int max_variants;       /* PUBLISH of a variant: the URL's cap (0: none) */
    unsigned char dropped[MAX_DROPPED][16];   /* variants it replaced (for the evictor) */
    int ndropped;
    mc_invspec *spec;       /* PURGE (owned) */
    int has_cursor;         /* PURGE: also store the fleet-log cursor */
    uint64_t cursor;
    mc_store_purge_fn purge_done;
    mc_store_done_fn done;
    void *arg;
} store_op;

typedef struct purge_rec {
    uint64_t gen;
    mc_invspec spec;
} purge_rec;

struct mc_store {
    uint32_t magic;
    MDB_env *env;
    MDB_dbi objects, chunks, paths, pending, state, tags;
    int lock_fd;
    uint64_t size_bytes, max_queue_bytes;
    int verify_always;
    uint64_t high_bytes, low_bytes;   /* eviction watermarks on body bytes */
    uint64_t batch_max_bytes;         /* chunk bytes per transaction: a small map needs small ones */
    int64_t unpublished_bytes;        /* chunks of fills not yet published (writer only, approximate) */
    mc_evict *ev;                     /* SIEVE index: writer thread, plus touch */
    _Atomic uint64_t next_seq;
    mc_store_stats stats;
    /* writer queue: guarded by mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    store_op *head, *tail;
    int busy;                   /* the writer is executing a batch */
    pthread_cond_t idle;        /* signalled when the queue is empty and !busy */
    int stopping;
    unsigned char doomed[EVICT_BATCH_MAX][16];   /* evict_some's victims (writer thread) */
    pthread_t writer;
    /* fills whose chunks were dropped (writer thread only) */
    uint64_t failed[FAILED_RING];
    unsigned failed_pos;
    /* purges: generation and the recent ones, for fills that began before */
    pthread_mutex_t purge_mu;
    _Atomic uint64_t generation;
    purge_rec recent[PURGE_RING];   /* recent[gen % PURGE_RING] */
    /* health (/readyz): write transactions that failed in a row (not for
     * want of room), and the last error */
    _Atomic int fail_run;
    _Atomic int last_error;
};

/* Failed writes in a row that make the store unusable for /readyz. */
#define FAIL_RUN_LIMIT 8

#define VERIFIED_SLOTS 16384u   /* power of two */
struct mc_store_reader {
    mc_store *s;
    uint64_t *verified;   /* fingerprints of chunks checked by this reader; NULL: check every read */
    MDB_txn *txn;   /* reset between calls: never held across I/O */
    int viewing;    /* renewed by mc_store_view_chunk until mc_store_view_end */
};

/* ---------- metadata encoding ---------- */

static int put_u64(mc_buf *b, uint64_t v)
{
    unsigned char x[8];
    for (int i = 0; i < 8; i++)
        x[i] = (unsigned char)(v >> (56 - 8 * i));
    return mc_buf_append(b, x, 8);
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

int mc_object_meta_encode(const mc_object_meta *m, mc_buf *out)
{
    size_t klen = strlen(m->key), hlen = m->headers ? strlen(m->headers) : 0;
    int rc = put_u64(out, META_VERSION);
    rc |= put_u64(out, m->status);
    rc |= put_u64(out, m->length);
    rc |= put_u64(out, m->chunk_size);
    rc |= put_u64(out, m->nchunks);
    rc |= put_u64(out, m->seq);
    rc |= put_u64(out, m->generation);
    rc |= put_u64(out, (uint64_t)m->response_time);
    rc |= put_u64(out, (uint64_t)m->initial_age_s);
    rc |= put_u64(out, (uint64_t)m->lifetime_s);
    rc |= put_u64(out, m->body_checksum);
    rc |= put_u64(out, klen);
    rc |= put_u64(out, hlen);
    rc |= mc_buf_append(out, m->key, klen);
    rc |= mc_buf_append(out, m->headers ? m->headers : "", hlen);
    uint32_t flags = (m->flags & ~MC_META_F_NOCACHE_TEXT) | MC_META_F_NOCACHE_KNOWN;
    if (m->headers && strcasestr(m->headers, "no-cache"))
        flags |= MC_META_F_NOCACHE_TEXT;
    rc |= put_u64(out, flags);
    return rc ? MC_E_NOMEM : 0;
}

int mc_object_meta_decode(const void *p, size_t n, mc_object_meta *out)
{
    const unsigned char *b = p;
    memset(out, 0, sizeof *out);
    uint64_t version = n >= 8 ? get_u64(b) : 0;
    if (n < 13 * 8 || (version != 1 && version != META_VERSION))
        return MC_E_INVAL;
    uint64_t klen = get_u64(b + 11 * 8), hlen = get_u64(b + 12 * 8);
    uint64_t tail = version == 1 ? 0 : 8;
    if (klen > n || hlen > n || 13 * 8 + klen + hlen + tail != n)
        return MC_E_INVAL;
    if (tail)
        out->flags = (uint32_t)get_u64(b + n - 8);
    out->status = (uint16_t)get_u64(b + 8);
    out->length = get_u64(b + 16);
    out->chunk_size = (uint32_t)get_u64(b + 24);
    out->nchunks = (uint32_t)get_u64(b + 32);
    out->seq = get_u64(b + 40);
    out->generation = get_u64(b + 48);
    out->response_time = (int64_t)get_u64(b + 56);
    out->initial_age_s = (int64_t)get_u64(b + 64);
    out->lifetime_s = (int64_t)get_u64(b + 72);
    out->body_checksum = get_u64(b + 80);
    out->key = strndup((const char *)b + 104, klen);
    out->headers = strndup((const char *)b + 104 + klen, hlen);
    if (!out->key || !out->headers) {
        mc_object_meta_free(out);
        return MC_E_NOMEM;
    }
    /* the chunks must cover the body exactly: no field wider than its
     * type (found by tests/fuzz/fuzz_meta: a huge length wrapped the
     * rounding up to 0 chunks) */
    uint64_t cs = get_u64(b + 24), nc = get_u64(b + 32);
    if (cs == 0 || cs > UINT32_MAX || nc > UINT32_MAX || get_u64(b + 8) > UINT16_MAX ||
        nc != out->length / cs + (out->length % cs != 0)) {
        mc_object_meta_free(out);
        return MC_E_INVAL;
    }
    return 0;
}

void mc_object_meta_free(mc_object_meta *m)
{
    free(m->key);
    free(m->headers);
    m->key = m->headers = NULL;
}

/* ---------- keys ---------- */

static void chunk_key(unsigned char out[28], const unsigned char key[16], uint64_t seq, uint32_t idx)
{
    memcpy(out, key, 16);
    for (int i = 0; i < 8; i++)
        out[16 + i] = (unsigned char)(seq >> (56 - 8 * i));
    for (int i = 0; i < 4; i++)
        out[24 + i] = (unsigned char)(idx >> (24 - 8 * i));
}

static void seq_key(unsigned char out[8], uint64_t seq)
{
    for (int i = 0; i < 8; i++)
        out[i] = (unsigned char)(seq >> (56 - 8 * i));
}

/* ---------- writer-side primitives (inside a write txn) ---------- */

static int state_get_u64(MDB_txn *txn, MDB_dbi dbi, const char *name, uint64_t *v)
{
    MDB_val k = {strlen(name), (void *)name}, d;
    int rc = mdb_get(txn, dbi, &k, &d);
    if (rc == 0 && d.mv_size == 8)
        *v = get_u64(d.mv_data);
    else
        *v = 0;
    return rc == MDB_NOTFOUND ? 0 : rc;
}

static int state_put_u64(MDB_txn *txn, MDB_dbi dbi, const char *name, uint64_t v)
{
    unsigned char x[8];
    seq_key(x, v);
    MDB_val k = {strlen(name), (void *)name}, d = {8, x};
    return mdb_put(txn, dbi, &k, &d, 0);
}

/* Delete every chunk of (key, seq) with a cursor range scan, so it works
 * without knowing how many were written (crash cleanup). */
static int delete_chunks(mc_store *s, MDB_txn *txn, const unsigned char key[16], uint64_t seq)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, s->chunks, &cur);
    if (rc)
        return rc;
    unsigned char start[28];
    chunk_key(start, key, seq, 0);
    for (;;) {
        MDB_val k = {28, start}, d;
        rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE);
        if (rc || k.mv_size != 28 || memcmp(k.mv_data, start, 24) != 0)
            break;
        if ((rc = mdb_cursor_del(cur, 0)) != 0)
            break;
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

static int adjust_totals(mc_store *s, MDB_txn *txn, int64_t dbytes, int64_t dobjects)
{
    uint64_t bytes, objects;
    int rc = state_get_u64(txn, s->state, "bytes", &bytes);
    if (!rc)
        rc = state_get_u64(txn, s->state, "objects", &objects);
    if (rc)
        return rc;
    bytes = (uint64_t)((int64_t)bytes + dbytes);
    objects = (uint64_t)((int64_t)objects + dobjects);
    if (!rc)
        rc = state_put_u64(txn, s->state, "bytes", bytes);
    if (!rc)
        rc = state_put_u64(txn, s->state, "objects", objects);
    return rc;
}

/* ---------- the surrogate-key index: tag + NUL + key hash -> "" ---------- */

typedef struct tag_ctx {
    mc_store *s;
    MDB_txn *txn;
    const unsigned char *key;
    int del;
    int rc;
} tag_ctx;

static int tag_one(void *ud, const char *tag, size_t len)
{
    tag_ctx *t = ud;
    unsigned char k[512];
    if (len + 1 + 16 > 511)
        return 0;   /* beyond LMDB's key limit: not indexed (the purge ring still matches it) */
    memcpy(k, tag, len);
    k[len] = 0;
    memcpy(k + len + 1, t->key, 16);
    MDB_val kv = {len + 17, k}, dv = {0, ""};
    int rc = t->del ? mdb_del(t->txn, t->s->tags, &kv, NULL) : mdb_put(t->txn, t->s->tags, &kv, &dv, 0);
    if (rc && rc != MDB_NOTFOUND) {
        t->rc = rc;
        return 1;
    }
    return 0;
}

static int index_tags(mc_store *s, MDB_txn *txn, const unsigned char key[16], const char *hdrs, int del)
{
    tag_ctx t = {s, txn, key, del, 0};
    mc_surrogate_keys_each(hdrs, tag_one, &t);
    return t.rc;
}

/* Totals changes gathered over many removals, written once (big purges). */
typedef struct totals_acc {
    int64_t bytes, objects;
} totals_acc;

/* Remove the object at key (meta, chunks, path and tag entries); *removed
 * (may be NULL) says whether a body-carrying object went (not a marker).
 * With acc the totals change is added there for the caller to write. */
static int remove_object_acc(mc_store *s, MDB_txn *txn, const unsigned char key[16], int *removed,
                             totals_acc *acc)
{
    if (removed)
        *removed = 0;
    MDB_val k = {16, (void *)key}, d;
    int rc = mdb_get(txn, s->objects, &k, &d);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc)
        return rc;
    mc_object_meta old;
    if (mc_object_meta_decode(d.mv_data, d.mv_size, &old) == 0) {
        rc = delete_chunks(s, txn, key, old.seq);
        MDB_val pk = {strlen(old.key), old.key};
        if (!rc && pk.mv_size > 0 && pk.mv_size <= 511 && (rc = mdb_del(txn, s->paths, &pk, NULL)) == MDB_NOTFOUND)
            rc = 0;
        if (!rc)
            rc = index_tags(s, txn, key, old.headers, 1);
        if (!rc && old.status != MC_META_VARY_MARKER) {
            if (acc) {
                acc->bytes -= (int64_t)old.length;
                acc->objects--;
            } else {
                rc = adjust_totals(s, txn, -(int64_t)old.length, -1);
            }
            if (removed)
                *removed = 1;
        }
        mc_object_meta_free(&old);
    }
    if (!rc)
        rc = mdb_del(txn, s->objects, &k, NULL);
    return rc;
}

static int remove_object(mc_store *s, MDB_txn *txn, const unsigned char key[16])
{
    return remove_object_acc(s, txn, key, NULL, NULL);
}

static int failed_has(mc_store *s, uint64_t seq)
{
    for (unsigned i = 0; i < FAILED_RING; i++)
        if (s->failed[i] == seq)
            return 1;
    return 0;
}

static void failed_add(mc_store *s, uint64_t seq)
{
    if (!failed_has(s, seq))
        s->failed[s->failed_pos++ % FAILED_RING] = seq;
}

static int exec_chunk(mc_store *s, MDB_txn *txn, store_op *op, int *ok)
{
    if (failed_has(s, op->seq)) {
        *ok = 0;    /* an earlier chunk of this fill was dropped: the fill cannot publish */
        return 0;
    }
    int rc = 0;
    if (op->idx == 0) {
        unsigned char sk[8];
        seq_key(sk, op->seq);
        MDB_val k = {8, sk}, d = {16, op->key};
        rc = mdb_put(txn, s->pending, &k, &d, 0);
    }
    unsigned char ck[28];
    chunk_key(ck, op->key, op->seq, op->idx);
    MDB_val k = {28, ck}, d = {op->len + 8, NULL};
    if (!rc)
        rc = mdb_put(txn, s->chunks, &k, &d, MDB_RESERVE);
    if (!rc) {
        /* checksum first, then the bytes: one value, one copy */
        unsigned char *p = d.mv_data;
        seq_key(p, mc_hash_checksum(op->data, op->len));
        memcpy(p + 8, op->data, op->len);
    }
    return rc;
}

/* The invariant a publish checks: the chunks present sum to the length. */
static int chunks_complete(mc_store *s, MDB_txn *txn, store_op *op)
{
    uint64_t sum = 0;
    for (uint32_t i = 0; i < op->nchunks; i++) {
        unsigned char ck[28];
        chunk_key(ck, op->key, op->seq, i);
        MDB_val k = {28, ck}, d;
        if (mdb_get(txn, s->chunks, &k, &d) != 0 || d.mv_size < 8)
            return 0;
        sum += d.mv_size - 8;
    }
    return sum == op->length;
}

/* The Vary marker at the URL's primary key: replaces whatever was there (an
 * older marker, or an object stored before the response started to vary). */
static int put_marker(mc_store *s, MDB_txn *txn, store_op *op)
{
    MDB_val k = {16, op->marker_key}, d;
    int rc = mdb_get(txn, s->objects, &k, &d);
    mc_object_meta cur;
    if (rc == 0 && mc_object_meta_decode(d.mv_data, d.mv_size, &cur) == 0) {
        int is_marker = cur.status == MC_META_VARY_MARKER;
        mc_object_meta_free(&cur);
        if (!is_marker && (rc = remove_object(s, txn, op->marker_key)) != 0)
            return rc;
    } else if (rc != 0 && rc != MDB_NOTFOUND) {
        return rc;
    }
    MDB_val md = {op->marker_len, op->marker};
    if ((rc = mdb_put(txn, s->objects, &k, &md, 0)) != 0)
        return rc;
    MDB_val pk = {strlen(op->marker_path), op->marker_path}, pd = {16, op->marker_key};
    return pk.mv_size > 0 && pk.mv_size <= 511 ? mdb_put(txn, s->paths, &pk, &pd, 0) : 0;
}

int mc_store_purged_since(mc_store *s, uint64_t gen, const char *keystr, const char *hdrs)
{
    int hit = 0;
    pthread_mutex_lock(&s->purge_mu);
    uint64_t cur = atomic_load_explicit(&s->generation, memory_order_relaxed);
    if (cur > gen && cur - gen >= PURGE_RING) {
        hit = 1;   /* too many purges since: assume one of them covered it */
    } else {
        for (uint64_t g = gen + 1; g <= cur && hit != 1; g++) {
            const purge_rec *p = &s->recent[g % PURGE_RING];
            if (p->gen == g && mc_invspec_matches(&p->spec, keystr, hdrs))
                hit = p->spec.soft ? 2 : 1;
        }
    }
    pthread_mutex_unlock(&s->purge_mu);
    return hit;
}

uint64_t mc_store_generation(mc_store *s)
{
    return atomic_load_explicit(&s->generation, memory_order_relaxed);
}

/* A publish of a fill that began before a purge naming it: a hard purge
 * drops it, a soft one stores it marked invalidated. Returns 1 to drop. */
static int purge_beats_publish(mc_store *s, store_op *op, mc_object_meta *m)
{
    int hit = mc_store_purged_since(s, op->gen, m->key, m->headers);
    if (hit == 2 && !(m->flags & MC_META_F_INVALIDATED)) {
        m->flags |= MC_META_F_INVALIDATED;
        mc_buf b = MC_BUF_INIT;
        if (mc_object_meta_encode(m, &b) < 0) {
            mc_buf_free(&b);
            return 1;
        }
        free(op->data);
        op->len = b.len;
        op->data = mc_buf_steal(&b);
    }
    return hit == 1;
}

typedef struct variant_ent {
    unsigned char key[16];
    uint64_t seq;
    int expired;
} variant_ent;

static int by_replace_order(const void *a, const void *b)
{
    const variant_ent *x = a, *y = b;
    if (x->expired != y->expired)
        return y->expired - x->expired;          /* expired ones first */
    return x->seq < y->seq ? -1 : x->seq > y->seq;   /* then the oldest */
}

/* Keep a varying URL under op->max_variants: before op's variant goes in,
 * replace expired variants first, else the oldest stored (a FIFO, so a
 * stream of new header values cannot grow one URL without bound, and the
 * cache still follows what viewers ask for now). */
static int cap_variants(mc_store *s, MDB_txn *txn, store_op *op)
{
    op->ndropped = 0;
    if (!op->marker || op->max_variants <= 0)
        return 0;
    size_t pl = strlen(op->marker_path);
    if (pl + 1 > 511)
        return 0;
    char *prefix = malloc(pl + 2);
    if (!prefix)
        return MC_E_NOMEM;
    memcpy(prefix, op->marker_path, pl);
    prefix[pl] = '\n';
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, s->paths, &cur);
    variant_ent *v = NULL;
    size_t n = 0, cap = 0;
    int64_t now = (int64_t)time(NULL);
    MDB_val k = {pl + 1, prefix}, d;
    for (rc = rc ? rc : mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE);
         rc == 0 && k.mv_size >= pl + 1 && memcmp(k.mv_data, prefix, pl + 1) == 0;
         rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
        if (d.mv_size != 16 || memcmp(d.mv_data, op->key, 16) == 0)
            continue;   /* op's own variant is replaced, not added */
        MDB_val ok_ = {16, d.mv_data}, od;
        mc_object_meta m;
        if (mdb_get(txn, s->objects, &ok_, &od) != 0 || mc_object_meta_decode(od.mv_data, od.mv_size, &m) < 0)
            continue;
        if (n == cap) {
            variant_ent *nv = realloc(v, (cap = cap ? cap * 2 : 64) * sizeof *v);
            if (!nv) {
                mc_object_meta_free(&m);
                rc = MC_E_NOMEM;
                break;
            }
            v = nv;
        }
        memcpy(v[n].key, d.mv_data, 16);
        v[n].seq = m.seq;
        v[n].expired = m.initial_age_s + (now - m.response_time) >= m.lifetime_s;
        n++;
        mc_object_meta_free(&m);
    }
    if (!rc || rc == MDB_NOTFOUND)
        rc = 0;
    mdb_cursor_close(cur);
    free(prefix);
    if (!rc && n >= (size_t)op->max_variants) {
        qsort(v, n, sizeof *v, by_replace_order);
        size_t drop = n - (size_t)op->max_variants + 1;
        for (size_t i = 0; !rc && i < drop && i < MAX_DROPPED; i++) {
            int removed = 0;
            rc = remove_object_acc(s, txn, v[i].key, &removed, NULL);
            if (!rc && removed)
                memcpy(op->dropped[op->ndropped++], v[i].key, 16);
        }
    }
    free(v);
    return rc;
}

static int exec_publish(mc_store *s, MDB_txn *txn, store_op *op, int *ok)
{
    *ok = 0;
    unsigned char sk[8];
    seq_key(sk, op->seq);
    MDB_val pk = {8, sk};
    mc_object_meta m;
    if (mc_object_meta_decode(op->data, op->len, &m) < 0)
        return 0;
    int purged = purge_beats_publish(s, op, &m);
    if (purged || failed_has(s, op->seq) || !chunks_complete(s, txn, op)) {
        mc_object_meta_free(&m);
        int rc = delete_chunks(s, txn, op->key, op->seq);
        if (!rc && (rc = mdb_del(txn, s->pending, &pk, NULL)) == MDB_NOTFOUND)
            rc = 0;
        return rc;
    }
    int rc = cap_variants(s, txn, op);
    if (!rc)
        rc = remove_object(s, txn, op->key);
    MDB_val k = {16, op->key}, d = {op->len, op->data};
    if (!rc)
        rc = mdb_put(txn, s->objects, &k, &d, 0);
    MDB_val pathk = {strlen(op->path), op->path}, pathd = {16, op->key};
    if (!rc && pathk.mv_size > 0 && pathk.mv_size <= 511)   /* LMDB's default key limit */
        rc = mdb_put(txn, s->paths, &pathk, &pathd, 0);
    if (!rc && (rc = mdb_del(txn, s->pending, &pk, NULL)) == MDB_NOTFOUND)
        rc = 0;
    if (!rc)
        rc = adjust_totals(s, txn, (int64_t)op->length, 1);
    if (!rc)
        rc = index_tags(s, txn, op->key, m.headers, 0);
    if (!rc && op->marker)
        rc = put_marker(s, txn, op);
    if (!rc)
        *ok = 1;
    mc_object_meta_free(&m);
    return rc;
}

static int exec_update(mc_store *s, MDB_txn *txn, store_op *op, int *ok)
{
    *ok = 0;
    MDB_val k = {16, op->key}, d;
    int rc = mdb_get(txn, s->objects, &k, &d);
    if (rc == MDB_NOTFOUND)
        return 0;   /* purged or replaced meanwhile: nothing to refresh */
    if (rc)
        return rc;
    mc_object_meta cur;
    if (mc_object_meta_decode(d.mv_data, d.mv_size, &cur) < 0)
        return 0;
    int same = cur.seq == op->seq && cur.length == op->length;
    /* a revalidation that began before a purge must not refresh what the
     * purge marked (or clear its mark) */
    if (same && mc_store_purged_since(s, op->gen, cur.key, cur.headers))
        same = 0;
    mc_object_meta_free(&cur);
    if (!same)
        return 0;
    MDB_val nd = {op->len, op->data};
    if ((rc = mdb_put(txn, s->objects, &k, &nd, 0)) == 0)
        *ok = 1;
    return rc;
}

static int exec_op(mc_store *s, MDB_txn *txn, store_op *op, int *ok)
{
    unsigned char sk[8];
    MDB_val pk = {8, sk};
    int rc;
    *ok = 1;
    switch (op->kind) {
    case MC_STORE_OP_CHUNK:
        return exec_chunk(s, txn, op, ok);
    case MC_STORE_OP_PUBLISH:
        return exec_publish(s, txn, op, ok);
    case MC_STORE_OP_ABORT:
        seq_key(sk, op->seq);
        rc = delete_chunks(s, txn, op->key, op->seq);
        if (!rc && (rc = mdb_del(txn, s->pending, &pk, NULL)) == MDB_NOTFOUND)
            rc = 0;
        return rc;
    case MC_STORE_OP_DELETE:
        return remove_object(s, txn, op->key);
    case MC_STORE_OP_UPDATE:
        return exec_update(s, txn, op, ok);
    case MC_STORE_OP_PURGE:
        break;   /* run on its own by run_purge */
    }
    return EINVAL;
}

static void op_free(store_op *op)
{
    if (op->spec) {
        mc_invspec_free(op->spec);
        free(op->spec);
    }
    free(op->data);
    free(op->path);
    free(op->marker);
    free(op->marker_path);
    free(op);
}

static void refresh_stats(mc_store *s)
{
    MDB_txn *txn;
    if (mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn) != 0)
        return;
    uint64_t bytes = 0, objects = 0;
    state_get_u64(txn, s->state, "bytes", &bytes);
    state_get_u64(txn, s->state, "objects", &objects);
    mdb_txn_abort(txn);
    atomic_store_explicit(&s->stats.bytes, bytes, memory_order_relaxed);
    atomic_store_explicit(&s->stats.objects, objects, memory_order_relaxed);
}

/* ---------- eviction (writer thread) ---------- */

/* Remove SIEVE victims until the stored bytes are at most target (or
 * max_objects are gone), in one transaction. Returns how many went. */
static int evict_some(mc_store *s, uint64_t target, int max_objects)
{
    uint64_t bytes = atomic_load_explicit(&s->stats.bytes, memory_order_relaxed), freed = 0;
    MDB_txn *txn;
    if (mdb_txn_begin(s->env, NULL, 0, &txn) != 0)
        return 0;
    if (max_objects > EVICT_BATCH_MAX)
        max_objects = EVICT_BATCH_MAX;
    int n = 0, rc = 0;
    uint64_t vbytes;
    while (n < max_objects && bytes > target + freed && mc_evict_victim(s->ev, s->doomed[n], &vbytes) == 0) {
        /* doomed until the transaction ends: a viewer's pin fails meanwhile */
        rc = remove_object(s, txn, s->doomed[n]);
        n++;
        if (rc != 0)
            break;
        freed += vbytes;
    }
    if (rc == 0)
        rc = mdb_txn_commit(txn);
    else
        mdb_txn_abort(txn);
    for (int i = 0; i < n; i++)
        mc_evict_release(s->ev, s->doomed[i]);
    if (rc == 0) {
        mc_counter_add(&s->stats.evictions, (uint64_t)n);
        mc_counter_add(&s->stats.evicted_bytes, freed);
        refresh_stats(s);
        return n;
    }
    mc_log_warn("store", "msg=\"eviction failed\" error=\"%s\"", mdb_strerror(rc));
    return 0;
}

/* After a commit: keep the SIEVE index in step and the store under its bound. */
static void account(mc_store *s, const store_op *op, int ok)
{
    /* chunks of running fills take room too, before they are objects (a
     * chunk skipped after an earlier one of its fill was dropped counts
     * too: the fill's publish or abort takes its whole length off again) */
    if (op->kind == MC_STORE_OP_CHUNK)
        s->unpublished_bytes += (int64_t)op->len;
    else if (op->kind == MC_STORE_OP_PUBLISH)
        s->unpublished_bytes -= (int64_t)op->length;
    else if (op->kind == MC_STORE_OP_ABORT)
        s->unpublished_bytes -= (int64_t)op->nchunks * MC_STORE_CHUNK_SIZE;
    if (s->unpublished_bytes < 0)
        s->unpublished_bytes = 0;
    if (!ok)
        return;
    if (op->kind == MC_STORE_OP_PUBLISH) {
        for (int i = 0; i < op->ndropped; i++)
            mc_evict_remove(s->ev, op->dropped[i]);
        mc_counter_add(&s->stats.variants_replaced, (uint64_t)op->ndropped);
        if (mc_evict_insert(s->ev, op->key, op->length) == MC_E_FULL) {
            evict_some(s, 0, 64);   /* the index is full: make room by count */
            mc_evict_insert(s->ev, op->key, op->length);
        }
    } else if (op->kind == MC_STORE_OP_DELETE) {
        mc_evict_remove(s->ev, op->key);
    }
}

/* Above the high watermark, counting what waits in the queue to be
 * written, evict down to the low one before the next batch goes in. */
static void keep_under_bound(mc_store *s)
{
    for (;;) {
        uint64_t queued = atomic_load_explicit(&s->stats.queue_bytes, memory_order_relaxed) +
                          (uint64_t)s->unpublished_bytes;
        uint64_t bytes = atomic_load_explicit(&s->stats.bytes, memory_order_relaxed);
        if (bytes + queued <= s->high_bytes)
            break;
        uint64_t target = s->low_bytes > queued ? s->low_bytes - queued : 0;
        if (evict_some(s, target, 1024) == 0)
            break;
    }
}

/* Rebuild the index from the objects, oldest insertion (fill seq) first.
 * At 1,000,000 objects this is on the restart path, so it reads only the
 * three fixed fields it needs from each record (no decode, no allocation
 * per object) and sorts by radix, skipping the seq digits all share. */
typedef struct seq_entry {
    uint64_t seq, bytes;
    unsigned char key[16];
} seq_entry;

static void radix_sort_seq(seq_entry *v, seq_entry *tmp, size_t n, size_t *count)
{
    for (int shift = 0; shift < 64; shift += 16) {
        memset(count, 0, sizeof *count << 16);
        for (size_t i = 0; i < n; i++)
            count[(v[i].seq >> shift) & 0xffff]++;
        if (count[(v[0].seq >> shift) & 0xffff] == n)
            continue;   /* every seq has this digit: nothing to do */
        size_t sum = 0;
        for (size_t d = 0; d < (1u << 16); d++) {
            size_t c = count[d];
            count[d] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++)
            tmp[count[(v[i].seq >> shift) & 0xffff]++] = v[i];
        memcpy(v, tmp, n * sizeof *v);
    }
}

static void rebuild_index(mc_store *s)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_stat st;
    if (mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn) != 0)
        return;
    size_t cap = mdb_stat(txn, s->objects, &st) == 0 ? st.ms_entries : 0, n = 0;
    seq_entry *v = malloc((cap ? cap : 1) * sizeof *v), *tmp = NULL;
    MDB_val k, d;
    if (v && mdb_cursor_open(txn, s->objects, &cur) == 0) {
        for (int rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST); rc == 0 && n < cap;
             rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
            const unsigned char *b = d.mv_data;   /* the layout of mc_object_meta_encode */
            if (k.mv_size != 16 || d.mv_size < 13 * 8 || (get_u64(b) != 1 && get_u64(b) != META_VERSION) ||
                get_u64(b + 8) == MC_META_VARY_MARKER)
                continue;
            v[n].seq = get_u64(b + 40);
            v[n].bytes = get_u64(b + 16);
            memcpy(v[n++].key, k.mv_data, 16);
        }
        mdb_cursor_close(cur);
    }
    mdb_txn_abort(txn);
    size_t *count = n > 1 ? malloc(sizeof *count << 16) : NULL;
    if (count && (tmp = malloc(n * sizeof *tmp)) != NULL)
        radix_sort_seq(v, tmp, n, count);
    free(tmp);
    free(count);
    for (size_t i = 0; i < n; i++)
        if (mc_evict_insert(s->ev, v[i].key, v[i].bytes) < 0)
            break;
    free(v);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    mc_log_info("store", "msg=\"eviction index rebuilt\" objects=%zu ms=%.0f", n,
                (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
}

/* Run a batch in one transaction. If it fails (MDB_MAP_FULL most likely),
 * run each op in its own transaction so one object that does not fit costs
 * only itself; a dropped chunk marks its fill failed so it never publishes. */
static void run_batch(mc_store *s, store_op *batch)
{
    MDB_txn *txn = NULL;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    int oks[BATCH_MAX_OPS];
    int n = 0;
    if (rc == 0) {
        for (store_op *op = batch; op && rc == 0; op = op->next, n++)
            rc = exec_op(s, txn, op, &oks[n]);
        if (rc == 0)
            rc = mdb_txn_commit(txn);
        else
            mdb_txn_abort(txn);
    }
    if (rc == 0) {
        n = 0;
        for (store_op *op = batch; op; op = op->next, n++) {
            account(s, op, oks[n]);
            if (op->done)
                op->done(op->arg, oks[n]);
        }
        mc_counter_add(&s->stats.commits, 1);
        return;
    }
    mc_log_warn("store", "msg=\"batch failed, retrying one by one\" error=\"%s\"", mdb_strerror(rc));
    for (store_op *op = batch; op; op = op->next) {
        int ok = 0;
        for (int attempt = 0; attempt < 4; attempt++) {
            rc = mdb_txn_begin(s->env, NULL, 0, &txn);
            if (rc == 0) {
                if ((rc = exec_op(s, txn, op, &ok)) == 0)
                    rc = mdb_txn_commit(txn);
                else
                    mdb_txn_abort(txn);
            }
            /* full map: make room by evicting, then try again. The map can
             * be full below the watermarks (page overhead, and a large value
             * needs a contiguous run of free pages), so each round evicts a
             * growing amount whatever the watermark says. */
            uint64_t bytes = atomic_load_explicit(&s->stats.bytes, memory_order_relaxed);
            uint64_t want = (uint64_t)(attempt + 1) * 4 * (op->len > MC_STORE_CHUNK_SIZE ? op->len : MC_STORE_CHUNK_SIZE);
            uint64_t target = s->low_bytes > op->len ? s->low_bytes - op->len : 0;
            if (bytes > want && bytes - want < target)
                target = bytes - want;
            if (rc != MDB_MAP_FULL || attempt == 3 || evict_some(s, target, 256) == 0)
                break;
        }
        if (rc == 0) {
            account(s, op, ok);
            atomic_store_explicit(&s->fail_run, 0, memory_order_relaxed);
        } else if (rc != MDB_MAP_FULL) {
            atomic_fetch_add_explicit(&s->fail_run, 1, memory_order_relaxed);
            atomic_store_explicit(&s->last_error, rc, memory_order_relaxed);
        }
        if (rc != 0) {
            ok = 0;
            mc_counter_add(&s->stats.write_failures, 1);
            if (op->kind == MC_STORE_OP_CHUNK)
                failed_add(s, op->seq);
            mc_log_warn("store", "msg=\"write dropped\" op=%d seq=%llu error=\"%s\"", (int)op->kind,
                        (unsigned long long)op->seq, mdb_strerror(rc));
        }
        if (op->done)
            op->done(op->arg, ok);
    }
}

/* ---------- purge (writer thread) ---------- */

typedef struct keyvec {
    unsigned char (*k)[16];
    size_t n, cap;
} keyvec;

static int keyvec_add(keyvec *v, const void *key)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 256;
        void *nk = realloc(v->k, cap * 16);
        if (!nk)
            return MC_E_NOMEM;
        v->k = nk;
        v->cap = cap;
    }
    memcpy(v->k[v->n++], key, 16);
    return 0;
}

static int by_key(const void *a, const void *b) { return memcmp(a, b, 16); }

/* Collect the key hashes under every index key starting with prefix
 * (plen bytes) in dbi, whose values (paths) or key tails (tags) are hashes. */
static int scan_prefix(MDB_txn *txn, MDB_dbi dbi, const void *prefix, size_t plen, int hash_in_key,
                       keyvec *out)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, dbi, &cur);
    if (rc)
        return rc;
    MDB_val k = {plen, (void *)prefix}, d;
    for (rc = plen ? mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE) : mdb_cursor_get(cur, &k, &d, MDB_FIRST);
         rc == 0 && k.mv_size >= plen && memcmp(k.mv_data, prefix, plen) == 0;
         rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
        const void *h = hash_in_key ? (const char *)k.mv_data + k.mv_size - 16 : d.mv_data;
        if ((hash_in_key ? k.mv_size : d.mv_size) >= 16 && keyvec_add(out, h) < 0) {
            rc = MC_E_NOMEM;
            break;
        }
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND || rc == 0 ? 0 : rc;
}

/* Every stored key the spec names (markers included), sorted, unique. */
static int purge_targets(mc_store *s, MDB_txn *txn, const mc_invspec *sp, keyvec *v)
{
    int rc = 0;
    if (sp->all) {
        MDB_cursor *cur;
        if ((rc = mdb_cursor_open(txn, s->objects, &cur)) != 0)
            return rc;
        MDB_val k, d;
        for (rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT))
            if (k.mv_size == 16 && (rc = keyvec_add(v, k.mv_data)) < 0)
                break;
        mdb_cursor_close(cur);
        return rc == MDB_NOTFOUND ? 0 : rc;
    }
    for (size_t i = 0; !rc && i < sp->npaths; i++) {
        const char *p = sp->paths[i];
        size_t n = strlen(p);
        unsigned char kb[16];
        mc_hash128_bytes(mc_hash_key(p, n), kb);   /* the path itself, indexed or not */
        rc = keyvec_add(v, kb);
        char *q = malloc(n + 2);
        if (!q)
            return MC_E_NOMEM;
        memcpy(q, p, n);
        for (const char *sep = "?\n"; !rc && *sep; sep++) {   /* its query and Vary variants */
            q[n] = *sep;
            if (n + 1 <= 511)
                rc = scan_prefix(txn, s->paths, q, n + 1, 0, v);
        }
        free(q);
    }
    for (size_t i = 0; !rc && i < sp->nprefixes; i++) {
        size_t n = strlen(sp->prefixes[i]);
        if (n <= 511)
            rc = scan_prefix(txn, s->paths, sp->prefixes[i], n, 0, v);
    }
    for (size_t i = 0; !rc && i < sp->ntags; i++) {
        size_t n = strlen(sp->tags[i]) + 1;   /* the tag and its NUL */
        if (n + 16 <= 511)
            rc = scan_prefix(txn, s->tags, sp->tags[i], n, 1, v);
    }
    if (!rc && v->n > 1) {
        qsort(v->k, v->n, 16, by_key);
        size_t w = 1;
        for (size_t i = 1; i < v->n; i++)
            if (memcmp(v->k[i], v->k[w - 1], 16) != 0)
                memcpy(v->k[w++], v->k[i], 16);
        v->n = w;
    }
    return rc;
}

/* Mark one object invalidated (soft purge). *marked = 1 when it was a
 * stored, not yet marked object. */
static int soft_mark(mc_store *s, MDB_txn *txn, const unsigned char key[16], int *marked)
{
    *marked = 0;
    MDB_val k = {16, (void *)key}, d;
    int rc = mdb_get(txn, s->objects, &k, &d);
    if (rc)
        return rc == MDB_NOTFOUND ? 0 : rc;
    mc_object_meta m;
    if (mc_object_meta_decode(d.mv_data, d.mv_size, &m) < 0)
        return 0;
    if (m.status != MC_META_VARY_MARKER && !(m.flags & MC_META_F_INVALIDATED)) {
        m.flags |= MC_META_F_INVALIDATED;
        mc_buf b = MC_BUF_INIT;
        if (mc_object_meta_encode(&m, &b) < 0) {
            rc = MC_E_NOMEM;
        } else {
            MDB_val nd = {b.len, b.data};
            rc = mdb_put(txn, s->objects, &k, &nd, 0);
            *marked = rc == 0;
        }
        mc_buf_free(&b);
    } else if (m.status != MC_META_VARY_MARKER) {
        *marked = 1;   /* already marked: still one the purge names */
    }
    mc_object_meta_free(&m);
    return rc;
}

/* Run a purge: find its targets, then remove (or mark) them in transactions
 * of PURGE_TXN_OBJECTS, so a huge purge never needs one huge transaction;
 * readers keep reading meanwhile (MVCC). The cursor goes in the last one. */
static void run_purge(mc_store *s, store_op *op)
{
    const mc_invspec *sp = op->spec;
    keyvec v = {0};
    uint64_t affected = 0;
    MDB_txn *txn = NULL;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (!rc)
        rc = purge_targets(s, txn, sp, &v);
    size_t i = 0;
    while (!rc) {
        size_t end = i + PURGE_TXN_OBJECTS < v.n ? i + PURGE_TXN_OBJECTS : v.n;
        size_t first = i;
        uint64_t batch_affected = 0;
        totals_acc acc = {0, 0};
        for (; !rc && i < end; i++) {
            int n = 0;
            rc = sp->soft ? soft_mark(s, txn, v.k[i], &n) : remove_object_acc(s, txn, v.k[i], &n, &acc);
            batch_affected += (uint64_t)n;
        }
        if (!rc && (acc.bytes || acc.objects))
            rc = adjust_totals(s, txn, acc.bytes, acc.objects);
        if (!rc && i == v.n && op->has_cursor)
            rc = state_put_u64(txn, s->state, "cursor", op->cursor);
        if (!rc)
            rc = mdb_txn_commit(txn);
        else
            mdb_txn_abort(txn);
        txn = NULL;
        if (rc)
            break;
        affected += batch_affected;
        mc_counter_add(&s->stats.commits, 1);
        if (!sp->soft)
            for (size_t j = first; j < end; j++)
                mc_evict_remove(s->ev, v.k[j]);
        refresh_stats(s);
        if (i == v.n)
            break;
        rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    }
    if (txn)
        mdb_txn_abort(txn);
    free(v.k);
    if (rc) {
        mc_counter_add(&s->stats.write_failures, 1);
        mc_log_warn("store", "msg=\"purge failed\" affected=%llu error=\"%s\"", (unsigned long long)affected,
                    rc == MC_E_NOMEM ? "out of memory" : mdb_strerror(rc));
    } else {
        mc_counter_add(&s->stats.purged, affected);
    }
    if (op->purge_done)
        op->purge_done(op->arg, rc == 0, affected);
}

static void *writer_main(void *arg)
{
    mc_store *s = arg;
    rebuild_index(s);    /* here, not in open: hits are served meanwhile */
    keep_under_bound(s); /* the size may have been lowered since the last run */
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->head && !s->stopping)
            pthread_cond_wait(&s->cv, &s->mu);
        if (!s->head && s->stopping)
            break;
        /* take up to BATCH_MAX_OPS / BATCH_MAX_BYTES from the queue */
        store_op *batch = s->head, *last = s->head;
        size_t bytes = last->len;
        int n = 1;
        while (batch->kind != MC_STORE_OP_PURGE && last->next && last->next->kind != MC_STORE_OP_PURGE &&
               n < BATCH_MAX_OPS && bytes < s->batch_max_bytes) {
            last = last->next;
            bytes += last->len;
            n++;
        }
        s->head = last->next;
        if (!s->head)
            s->tail = NULL;
        last->next = NULL;
        s->busy = 1;
        pthread_mutex_unlock(&s->mu);

        keep_under_bound(s);   /* the batch's chunks still count as queued */
        if (batch->kind == MC_STORE_OP_PURGE)
            run_purge(s, batch);
        else
            run_batch(s, batch);
        uint64_t chunk_bytes = 0;
        while (batch) {
            store_op *next = batch->next;
            if (batch->kind == MC_STORE_OP_CHUNK)
                chunk_bytes += batch->len;
            op_free(batch);
            batch = next;
        }
        atomic_fetch_sub_explicit(&s->stats.queue_bytes, chunk_bytes, memory_order_relaxed);
        refresh_stats(s);
        pthread_mutex_lock(&s->mu);
        s->busy = 0;
        if (!s->head)
            pthread_cond_broadcast(&s->idle);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static int enqueue(mc_store *s, store_op *op)
{
    assert(s && s->magic == MC_STORE_MAGIC);
    pthread_mutex_lock(&s->mu);
    if (s->stopping) {
        pthread_mutex_unlock(&s->mu);
        op_free(op);
        return MC_E_STATE;
    }
    op->next = NULL;
    if (s->tail)
        s->tail->next = op;
    else
        s->head = op;
    s->tail = op;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

int mc_store_put_chunk(mc_store *s, mc_hash128 key, uint64_t seq, uint32_t idx, const void *data,
                       size_t len)
{
    return mc_store_put_chunk_notify(s, key, seq, idx, data, len, NULL, NULL);
}

int mc_store_put_chunk_notify(mc_store *s, mc_hash128 key, uint64_t seq, uint32_t idx, const void *data,
                              size_t len, mc_store_done_fn done, void *arg)
{
    uint64_t q = atomic_load_explicit(&s->stats.queue_bytes, memory_order_relaxed);
    if (q + len > s->max_queue_bytes) {
        mc_counter_add(&s->stats.queue_refusals, 1);
        return MC_E_FULL;
    }
    store_op *op = calloc(1, sizeof *op);
    if (!op || !(op->data = malloc(len ? len : 1))) {
        free(op);
        return MC_E_NOMEM;
    }
    op->kind = MC_STORE_OP_CHUNK;
    mc_hash128_bytes(key, op->key);
    op->seq = seq;
    op->idx = idx;
    memcpy(op->data, data, len);
    op->len = len;
    op->done = done;
    op->arg = arg;
    mc_counter_add(&s->stats.queue_bytes, len);
    return enqueue(s, op);
}

typedef struct marker_spec {
    const mc_hash128 *primary;
    mc_object_meta *marker;     /* key filled in from the primary's path */
} marker_spec;

static int queue_meta(mc_store *s, mc_store_op_kind kind, mc_hash128 key, const mc_object_meta *meta,
                      mc_store_done_fn done, void *arg, marker_spec *spec, int max_variants)
{
    store_op *op = calloc(1, sizeof *op);
    mc_buf b = MC_BUF_INIT;
    if (!op || mc_object_meta_encode(meta, &b) < 0 || !(op->path = strdup(meta->key))) {
        free(op);
        mc_buf_free(&b);
        return MC_E_NOMEM;
    }
    op->kind = kind;
    mc_hash128_bytes(key, op->key);
    op->seq = meta->seq;
    op->len = b.len;
    op->data = mc_buf_steal(&b);
    op->length = meta->length;
    op->nchunks = meta->nchunks;
    op->gen = meta->generation;
    op->done = done;
    op->arg = arg;
    op->max_variants = max_variants;
    if (spec) {
        /* the variant's key string is "PRIMARY\nVARY-VALUES": the marker's is PRIMARY */
        const char *nl = strchr(meta->key, '\n');
        size_t pl = nl ? (size_t)(nl - meta->key) : strlen(meta->key);
        mc_buf mb = MC_BUF_INIT;
        op->marker_path = strndup(meta->key, pl);
        spec->marker->key = op->marker_path;
        if (!op->marker_path || mc_object_meta_encode(spec->marker, &mb) < 0) {
            mc_buf_free(&mb);
            op_free(op);
            return MC_E_NOMEM;
        }
        mc_hash128_bytes(*spec->primary, op->marker_key);
        op->marker_len = mb.len;
        op->marker = mc_buf_steal(&mb);
    }
    return enqueue(s, op);
}

int mc_store_publish(mc_store *s, mc_hash128 key, const mc_object_meta *meta,
                     mc_store_done_fn done, void *arg)
{
    return mc_store_publish_variant(s, key, meta, NULL, NULL, 0, done, arg);
}

int mc_store_publish_variant(mc_store *s, mc_hash128 key, const mc_object_meta *meta,
                             const mc_hash128 *primary, const char *vary_names, int max_variants,
                             mc_store_done_fn done, void *arg)
{
    if (!primary)
        return queue_meta(s, MC_STORE_OP_PUBLISH, key, meta, done, arg, NULL, 0);
    /* the marker: what the URL varies on, no body */
    mc_object_meta m = {0};
    m.status = MC_META_VARY_MARKER;
    m.chunk_size = MC_STORE_CHUNK_SIZE;
    m.response_time = meta->response_time;
    m.lifetime_s = meta->lifetime_s;
    m.key = (char *)vary_names;   /* placeholder, replaced below */
    mc_buf hdr = MC_BUF_INIT;
    mc_buf_printf(&hdr, "Vary: %s\r\n", vary_names);
    m.headers = hdr.data;
    marker_spec spec = {primary, &m};
    int rc = hdr.data ? queue_meta(s, MC_STORE_OP_PUBLISH, key, meta, done, arg, &spec, max_variants)
                      : MC_E_NOMEM;
    mc_buf_free(&hdr);
    return rc;
}

int mc_store_update_meta(mc_store *s, mc_hash128 key, const mc_object_meta *meta,
                         mc_store_done_fn done, void *arg)
{
    return queue_meta(s, MC_STORE_OP_UPDATE, key, meta, done, arg, NULL, 0);
}

int mc_store_abort(mc_store *s, mc_hash128 key, uint64_t seq, uint32_t nchunks)
{
    store_op *op = calloc(1, sizeof *op);
    if (!op)
        return MC_E_NOMEM;
    op->kind = MC_STORE_OP_ABORT;
    mc_hash128_bytes(key, op->key);
    op->seq = seq;
    op->nchunks = nchunks;
    return enqueue(s, op);
}

int mc_store_delete(mc_store *s, mc_hash128 key)
{
    store_op *op = calloc(1, sizeof *op);
    if (!op)
        return MC_E_NOMEM;
    op->kind = MC_STORE_OP_DELETE;
    mc_hash128_bytes(key, op->key);
    return enqueue(s, op);
}

int mc_store_purge(mc_store *s, const mc_invspec *spec, const uint64_t *cursor, mc_store_purge_fn done,
                   void *arg)
{
    store_op *op = calloc(1, sizeof *op);
    mc_invspec *copy = calloc(1, sizeof *copy);
    if (!op || !copy || mc_invspec_copy(spec, copy) < 0) {
        free(op);
        free(copy);
        return MC_E_NOMEM;
    }
    op->kind = MC_STORE_OP_PURGE;
    op->spec = copy;
    op->has_cursor = cursor != NULL;
    op->cursor = cursor ? *cursor : 0;
    op->purge_done = done;
    op->arg = arg;
    /* the generation and the queue position are taken together, so a fill
     * that read the generation before this purge publishes after it */
    mc_invspec ring_copy;
    if (mc_invspec_copy(spec, &ring_copy) < 0) {
        op_free(op);
        return MC_E_NOMEM;
    }
    pthread_mutex_lock(&s->purge_mu);
    uint64_t gen = atomic_load_explicit(&s->generation, memory_order_relaxed) + 1;
    purge_rec *slot = &s->recent[gen % PURGE_RING];
    mc_invspec_free(&slot->spec);
    slot->spec = ring_copy;
    slot->gen = gen;
    atomic_store_explicit(&s->generation, gen, memory_order_relaxed);
    int rc = enqueue(s, op);
    pthread_mutex_unlock(&s->purge_mu);
    return rc;
}

int mc_store_check(mc_store_reader *r, char *why, size_t n)
{
    mc_store *s = r->s;
    int rc = mdb_txn_renew(r->txn);
    uint64_t format = 0;
    if (rc == 0) {
        rc = state_get_u64(r->txn, s->state, "format", &format);
        mdb_txn_reset(r->txn);
    }
    if (rc != 0) {
        snprintf(why, n, "store unreadable: %s", mdb_strerror(rc));
        return 0;
    }
    int run = atomic_load_explicit(&s->fail_run, memory_order_relaxed);
    if (run >= FAIL_RUN_LIMIT) {
        snprintf(why, n, "store failing: %d writes failed in a row (%s)", run,
                 mdb_strerror(atomic_load_explicit(&s->last_error, memory_order_relaxed)));
        return 0;
    }
    return 1;
}

int mc_store_read_cursor(mc_store_reader *r, uint64_t *out)
{
    if (mdb_txn_renew(r->txn) != 0)
        return MC_E_IO;
    int rc = state_get_u64(r->txn, r->s->state, "cursor", out);
    mdb_txn_reset(r->txn);
    return rc ? MC_E_IO : 0;
}

/* ---------- open / close ---------- */

/* Delete the chunks of fills that never published (a crash mid-fill). */
static int cleanup_pending(mc_store *s, MDB_txn *txn, int *cleaned)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, s->pending, &cur);
    if (rc)
        return rc;
    MDB_val k, d;
    *cleaned = 0;
    while ((rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST)) == 0) {
        if (k.mv_size == 8 && d.mv_size == 16) {
            unsigned char key[16];
            memcpy(key, d.mv_data, 16);
            if ((rc = delete_chunks(s, txn, key, get_u64(k.mv_data))) != 0)
                break;
        }
        if ((rc = mdb_cursor_del(cur, 0)) != 0)
            break;
        (*cleaned)++;
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

static int open_dbs(mc_store *s, mc_err *err, const char *dir)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (!rc) rc = mdb_dbi_open(txn, "objects", MDB_CREATE, &s->objects);
    if (!rc) rc = mdb_dbi_open(txn, "chunks", MDB_CREATE, &s->chunks);
    if (!rc) rc = mdb_dbi_open(txn, "paths", MDB_CREATE, &s->paths);
    if (!rc) rc = mdb_dbi_open(txn, "pending", MDB_CREATE, &s->pending);
    if (!rc) rc = mdb_dbi_open(txn, "state", MDB_CREATE, &s->state);
    if (!rc) rc = mdb_dbi_open(txn, "tags", MDB_CREATE, &s->tags);
    uint64_t format = 0, seq = 0;
    if (!rc) rc = state_get_u64(txn, s->state, "format", &format);
    if (!rc && format == 0)
        rc = state_put_u64(txn, s->state, "format", FORMAT_VERSION);
    else if (!rc && format != FORMAT_VERSION) {
        mdb_txn_abort(txn);
        return mc_err_set(err, MC_E_INVAL, "store %s: format %llu, this build reads %u", dir,
                          (unsigned long long)format, FORMAT_VERSION);
    }
    int cleaned = 0;
    if (!rc) rc = cleanup_pending(s, txn, &cleaned);
    if (!rc) rc = state_get_u64(txn, s->state, "seq", &seq);
    /* Reserve a block of sequence numbers past any used before, so a crash
     * can never make a seq reused: the next start begins after the block. */
    if (!rc) rc = state_put_u64(txn, s->state, "seq", seq + (1ULL << 32));
    if (!rc) rc = mdb_txn_commit(txn);
    else mdb_txn_abort(txn);
    if (rc)
        return mc_err_set(err, MC_E_IO, "store %s: %s", dir, mdb_strerror(rc));
    atomic_store(&s->next_seq, seq + 1);
    if (cleaned)
        mc_log_info("store", "msg=\"removed unfinished fills\" count=%d", cleaned);
    return 0;
}

int mc_store_open(mc_store **out, const mc_store_config *cfg, mc_err *err)
{
    *out = NULL;
    if (mkdir(cfg->dir, 0750) < 0 && errno != EEXIST)
        return mc_err_set(err, MC_E_IO, "store %s: cannot create: %s", cfg->dir, strerror(errno));
    mc_store *s = calloc(1, sizeof *s);
    if (!s)
        return MC_E_NOMEM;
    s->magic = MC_STORE_MAGIC;
    s->size_bytes = cfg->size_bytes;
    s->verify_always = cfg->verify_always;
    s->max_queue_bytes = cfg->max_queue_bytes ? cfg->max_queue_bytes : (256u << 20);
    int high = cfg->high_percent ? cfg->high_percent : 80, low = cfg->low_percent ? cfg->low_percent : 70;
    s->high_bytes = cfg->size_bytes / 100 * (uint64_t)high;
    s->low_bytes = cfg->size_bytes / 100 * (uint64_t)low;
    /* a transaction's new pages must fit beside the data until it commits */
    s->batch_max_bytes = cfg->size_bytes / 32 < BATCH_MAX_BYTES ? cfg->size_bytes / 32 : BATCH_MAX_BYTES;
    /* index slots: one per 32 KiB of store, at 70% load (see evict.h) */
    if (mc_evict_new(&s->ev, (size_t)(cfg->size_bytes / (32 * 1024) * 10 / 7)) < 0) {
        free(s);
        return MC_E_NOMEM;
    }
    char lock[4096];
    snprintf(lock, sizeof lock, "%s/meshcdn.lock", cfg->dir);
    s->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (s->lock_fd < 0) {
        mc_evict_free(s->ev);
        free(s);
        return mc_err_set(err, MC_E_IO, "store %s: cannot open lock file: %s", cfg->dir, strerror(errno));
    }
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        close(s->lock_fd);
        mc_evict_free(s->ev);
        free(s);
        return mc_err_set(err, MC_E_BUSY, "store %s: in use by another meshcdn-edge (lock held on %s)",
                          cfg->dir, lock);
    }
    int rc = mdb_env_create(&s->env);
    if (!rc) rc = mdb_env_set_maxdbs(s->env, 8);
    if (!rc) rc = mdb_env_set_mapsize(s->env, (size_t)cfg->size_bytes);
    if (!rc) rc = mdb_env_set_maxreaders(s->env, 1024);
    if (!rc) rc = mdb_env_open(s->env, cfg->dir, MDB_NOMETASYNC | MDB_NOTLS | MDB_NORDAHEAD, 0640);
    if (rc) {
        mc_err_set(err, MC_E_IO, "store %s: %s", cfg->dir, mdb_strerror(rc));
        if (s->env)
            mdb_env_close(s->env);
        close(s->lock_fd);
        mc_evict_free(s->ev);
        free(s);
        return MC_E_IO;
    }
    if ((rc = open_dbs(s, err, cfg->dir)) < 0) {
        mdb_env_close(s->env);
        close(s->lock_fd);
        mc_evict_free(s->ev);
        free(s);
        return rc;
    }
    refresh_stats(s);
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->purge_mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    pthread_cond_init(&s->idle, NULL);
    if (pthread_create(&s->writer, NULL, writer_main, s) != 0) {
        mdb_env_close(s->env);
        close(s->lock_fd);
        mc_evict_free(s->ev);
        free(s);
        return mc_err_set(err, MC_E_IO, "store %s: cannot start writer thread", cfg->dir);
    }
    *out = s;
    return 0;
}

void mc_store_flush(mc_store *s)
{
    pthread_mutex_lock(&s->mu);
    while (s->head || s->busy)
        pthread_cond_wait(&s->idle, &s->mu);
    pthread_mutex_unlock(&s->mu);
}

void mc_store_close(mc_store *s)
{
    if (!s)
        return;
    assert(s->magic == MC_STORE_MAGIC);
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->writer, NULL);
    mdb_env_sync(s->env, 1);
    mdb_env_close(s->env);
    mc_evict_free(s->ev);
    close(s->lock_fd);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->purge_mu);
    for (int i = 0; i < PURGE_RING; i++)
        mc_invspec_free(&s->recent[i].spec);
    pthread_cond_destroy(&s->cv);
    pthread_cond_destroy(&s->idle);
    s->magic = 0;
    free(s);
}

mc_store_stats *mc_store_get_stats(mc_store *s) { return &s->stats; }

void mc_store_touch(mc_store *s, mc_hash128 key)
{
    unsigned char kb[16];
    mc_hash128_bytes(key, kb);
    mc_evict_touch(s->ev, kb);
}

int mc_store_pin(mc_store *s, mc_hash128 key, int pin)
{
    unsigned char kb[16];
    mc_hash128_bytes(key, kb);
    if (pin)
        return mc_evict_pin(s->ev, kb);
    mc_evict_unpin(s->ev, kb);
    return 0;
}
uint64_t mc_store_size_bytes(const mc_store *s) { return s->size_bytes; }
uint64_t mc_store_queue_limit(const mc_store *s) { return s->max_queue_bytes; }
uint64_t mc_store_next_seq(mc_store *s) { return atomic_fetch_add(&s->next_seq, 1); }

/* ---------- readers ---------- */

int mc_store_reader_new(mc_store *s, mc_store_reader **out)
{
    mc_store_reader *r = calloc(1, sizeof *r);
    if (!r)
        return MC_E_NOMEM;
    r->s = s;
    if (!s->verify_always && !(r->verified = calloc(VERIFIED_SLOTS, sizeof *r->verified))) {
        free(r);
        return MC_E_NOMEM;
    }
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &r->txn);
    if (rc) {
        free(r->verified);
        free(r);
        return MC_E_IO;
    }
    mdb_txn_reset(r->txn);
    *out = r;
    return 0;
}

void mc_store_reader_free(mc_store_reader *r)
{
    if (!r)
        return;
    mdb_txn_abort(r->txn);
    free(r->verified);
    free(r);
}

int mc_store_read_meta(mc_store_reader *r, mc_hash128 key, mc_object_meta *out)
{
    unsigned char kb[16];
    mc_hash128_bytes(key, kb);
    if (!r->viewing && mdb_txn_renew(r->txn) != 0)
        return MC_E_IO;
    MDB_val k = {16, kb}, d;
    int rc = mdb_get(r->txn, r->s->objects, &k, &d);
    if (rc == 0)
        rc = mc_object_meta_decode(d.mv_data, d.mv_size, out);
    else
        rc = rc == MDB_NOTFOUND ? MC_E_NOTFOUND : MC_E_IO;
    if (!r->viewing)
        mdb_txn_reset(r->txn);
    return rc;
}

/* Chunk idx of (key, seq) in the map, checksum verified: its length and
 * *data, or an error. r->txn must be active. */
static int get_chunk(mc_store_reader *r, mc_hash128 key, uint64_t seq, uint32_t idx, const void **data)
{
    unsigned char kb[16], ck[28];
    mc_hash128_bytes(key, kb);
    chunk_key(ck, kb, seq, idx);
    MDB_val k = {28, ck}, d;
    int rc = mdb_get(r->txn, r->s->chunks, &k, &d);
    if (rc != 0)
        return rc == MDB_NOTFOUND ? MC_E_NOTFOUND : MC_E_IO;
    const unsigned char *p = d.mv_data;
    if (d.mv_size < 8 || d.mv_size - 8 > INT_MAX) {
        mc_counter_add(&r->s->stats.checksum_failures, 1);
        return MC_E_CHECKSUM;
    }
    uint64_t fp = 0, *slot = NULL;
    if (r->verified) {
        fp = mc_hash_checksum(ck, sizeof ck) | 1u;   /* 0 marks an empty slot */
        slot = &r->verified[fp & (VERIFIED_SLOTS - 1)];
    }
    if (!slot || *slot != fp) {
        if (get_u64(p) != mc_hash_checksum(p + 8, d.mv_size - 8)) {
            mc_counter_add(&r->s->stats.checksum_failures, 1);
            return MC_E_CHECKSUM;
        }
        if (slot)
            *slot = fp;
    }
    *data = p + 8;
    return (int)(d.mv_size - 8);
}

int mc_store_read_chunk(mc_store_reader *r, mc_hash128 key, uint64_t seq, uint32_t idx, mc_buf *out)
{
    if (!r->viewing && mdb_txn_renew(r->txn) != 0)
        return MC_E_IO;
    const void *p;
    int rc = get_chunk(r, key, seq, idx, &p);
    if (rc >= 0 && mc_buf_append(out, p, (size_t)rc) < 0)
        rc = MC_E_NOMEM;
    if (!r->viewing)
        mdb_txn_reset(r->txn);
    return rc;
}

int mc_store_view_chunk(mc_store_reader *r, mc_hash128 key, uint64_t seq, uint32_t idx, const void **data)
{
    if (!r->viewing) {
        if (mdb_txn_renew(r->txn) != 0)
            return MC_E_IO;
        r->viewing = 1;
    }
    return get_chunk(r, key, seq, idx, data);
}

void mc_store_view_end(mc_store_reader *r)
{
    if (r->viewing) {
        mdb_txn_reset(r->txn);
        r->viewing = 0;
    }
}

/* ---------- for tooling and metrics (storecheck.h, admin.c) ---------- */

unsigned mc_store_format_version(void) { return FORMAT_VERSION; }

uint64_t mc_store_map_used_bytes(mc_store *s)
{
    MDB_envinfo info;
    MDB_stat st;
    if (mdb_env_info(s->env, &info) != 0 || mdb_env_stat(s->env, &st) != 0)
        return 0;
    return ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
}
