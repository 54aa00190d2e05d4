/* sim.c — cache policy simulator; see sim.h. */
#include "tests/load/sim.h"

#include "common/err.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#define NIL UINT32_MAX

enum { Q_NONE = 0, Q_MAIN, Q_SMALL, Q_GHOST, Q_COUNT };

/* A FIFO/LRU queue threaded through the per-object prev/next arrays:
 * head is the newest, tail the oldest; next points towards the tail. */
typedef struct queue {
    uint32_t head, tail;
    uint64_t bytes;
    size_t count;
} queue;

typedef struct cache {
    const mc_sim_input *in;
    uint32_t *prev, *next;
    uint8_t *where;          /* Q_* */
    uint8_t *freq;           /* SIEVE visited bit, S3-FIFO 2-bit frequency */
    queue q[Q_COUNT];
    uint64_t used;           /* bytes cached (ghost excluded) */
    uint32_t hand;           /* SIEVE */
    uint64_t small_cap, main_cap;
    /* Belady */
    uint32_t *next_use;      /* per request: index of the next request for the same id */
    uint32_t *heap, *pos;    /* max-heap of cached ids by key; pos[id] or NIL */
    uint32_t *key;
    size_t heap_n;
    uint64_t evictions;
} cache;

const char *mc_sim_policy_name(mc_sim_policy p)
{
    static const char *const names[] = {"lru", "fifo", "sieve", "s3fifo", "belady"};
    return p < MC_SIM_POLICY_COUNT ? names[p] : "?";
}

double mc_sim_hit_ratio(const mc_sim_result *r)
{
    return r->requests ? (double)r->hits / (double)r->requests : 0;
}

double mc_sim_byte_hit_ratio(const mc_sim_result *r)
{
    return r->bytes ? (double)r->hit_bytes / (double)r->bytes : 0;
}

/* ---- queues -------------------------------------------------------------- */

static uint64_t size_of(const cache *c, uint32_t id)
{
    return c->in->sizes[id];
}

static void q_push_head(cache *c, int w, uint32_t id)
{
    queue *q = &c->q[w];
    c->prev[id] = NIL;
    c->next[id] = q->head;
    if (q->head != NIL)
        c->prev[q->head] = id;
    q->head = id;
    if (q->tail == NIL)
        q->tail = id;
    q->bytes += size_of(c, id);
    q->count++;
    c->where[id] = (uint8_t)w;
    if (w != Q_GHOST)
        c->used += size_of(c, id);
}

static void q_unlink(cache *c, uint32_t id)
{
    int w = c->where[id];
    assert(w != Q_NONE);
    queue *q = &c->q[w];
    if (c->prev[id] != NIL)
        c->next[c->prev[id]] = c->next[id];
    else
        q->head = c->next[id];
    if (c->next[id] != NIL)
        c->prev[c->next[id]] = c->prev[id];
    else
        q->tail = c->prev[id];
    q->bytes -= size_of(c, id);
    q->count--;
    if (w != Q_GHOST)
        c->used -= size_of(c, id);
    c->where[id] = Q_NONE;
}

static int fits(const cache *c, uint32_t id)
{
    return c->used + size_of(c, id) <= c->in->capacity;
}

/* ---- online policies: return 1 on a hit ---------------------------------- */

static int access_lru(cache *c, uint32_t id, int is_lru)
{
    if (c->where[id] == Q_MAIN) {
        if (is_lru) {
            q_unlink(c, id);
            q_push_head(c, Q_MAIN, id);
        }
        return 1;
    }
    if (size_of(c, id) > c->in->capacity)
        return 0;
    while (!fits(c, id)) {
        q_unlink(c, c->q[Q_MAIN].tail);
        c->evictions++;
    }
    q_push_head(c, Q_MAIN, id);
    return 0;
}

static void sieve_evict(cache *c)
{
    uint32_t h = c->hand != NIL ? c->hand : c->q[Q_MAIN].tail;
    while (c->freq[h]) {
        c->freq[h] = 0;
        h = c->prev[h] != NIL ? c->prev[h] : c->q[Q_MAIN].tail;
    }
    c->hand = c->prev[h];
    q_unlink(c, h);
    c->evictions++;
}

static int access_sieve(cache *c, uint32_t id)
{
    if (c->where[id] == Q_MAIN) {
        c->freq[id] = 1;
        return 1;
    }
    if (size_of(c, id) > c->in->capacity)
        return 0;
    while (!fits(c, id))
        sieve_evict(c);
    c->freq[id] = 0;
    q_push_head(c, Q_MAIN, id);
    return 0;
}

static void s3_trim_ghost(cache *c)
{
    while (c->q[Q_GHOST].bytes > c->main_cap)
        q_unlink(c, c->q[Q_GHOST].tail);
}

static void s3_evict_small(cache *c)
{
    uint32_t t = c->q[Q_SMALL].tail;
    q_unlink(c, t);
    if (c->freq[t] >= 1) {
        q_push_head(c, Q_MAIN, t);
        return;
    }
    q_push_head(c, Q_GHOST, t);
    c->evictions++;
    s3_trim_ghost(c);
}

static void s3_evict_main(cache *c)
{
    for (;;) {
        uint32_t t = c->q[Q_MAIN].tail;
        q_unlink(c, t);
        if (c->freq[t] == 0) {
            c->evictions++;
            return;
        }
        c->freq[t]--;
        q_push_head(c, Q_MAIN, t);
    }
}

static int access_s3fifo(cache *c, uint32_t id)
{
    int w = c->where[id];
    if (w == Q_MAIN || w == Q_SMALL) {
        if (c->freq[id] < 3)
            c->freq[id]++;
        return 1;
    }
    if (size_of(c, id) > c->in->capacity)
        return 0;
    if (w == Q_GHOST)
        q_unlink(c, id);
    while (!fits(c, id)) {
        if (c->q[Q_SMALL].count > 0 && (c->q[Q_SMALL].bytes >= c->small_cap || c->q[Q_MAIN].count == 0))
            s3_evict_small(c);
        else
            s3_evict_main(c);
    }
    c->freq[id] = 0;
    q_push_head(c, w == Q_GHOST || size_of(c, id) > c->small_cap ? Q_MAIN : Q_SMALL, id);
    return 0;
}

/* ---- Belady ---------------------------------------------------------------- */

static void heap_swap(cache *c, size_t a, size_t b)
{
    uint32_t t = c->heap[a];
    c->heap[a] = c->heap[b];
    c->heap[b] = t;
    c->pos[c->heap[a]] = (uint32_t)a;
    c->pos[c->heap[b]] = (uint32_t)b;
}

static void heap_fix(cache *c, size_t i)
{
    while (i > 0 && c->key[c->heap[(i - 1) / 2]] < c->key[c->heap[i]]) {
        heap_swap(c, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < c->heap_n && c->key[c->heap[l]] > c->key[c->heap[m]])
            m = l;
        if (r < c->heap_n && c->key[c->heap[r]] > c->key[c->heap[m]])
            m = r;
        if (m == i)
            return;
        heap_swap(c, i, m);
        i = m;
    }
}

static uint32_t heap_pop(cache *c)
{
    uint32_t top = c->heap[0];
    heap_swap(c, 0, --c->heap_n);
    c->pos[top] = NIL;
    if (c->heap_n > 0)
        heap_fix(c, 0);
    return top;
}

static int access_belady(cache *c, uint32_t id, size_t t)
{
    c->key[id] = c->next_use[t];
    if (c->pos[id] != NIL) {
        heap_fix(c, c->pos[id]);
        return 1;
    }
    if (size_of(c, id) > c->in->capacity)
        return 0;
    c->heap[c->heap_n] = id;
    c->pos[id] = (uint32_t)c->heap_n++;
    heap_fix(c, c->heap_n - 1);
    c->used += size_of(c, id);
    while (c->used > c->in->capacity) {
        uint32_t v = heap_pop(c);
        c->used -= size_of(c, v);
        if (v != id)
            c->evictions++;
    }
    return 0;
}

static int belady_prepare(cache *c)
{
    const mc_sim_input *in = c->in;
    c->next_use = malloc(in->n_requests * sizeof *c->next_use);
    c->heap = malloc(in->n_objects * sizeof *c->heap);
    c->pos = malloc(in->n_objects * sizeof *c->pos);
    c->key = malloc(in->n_objects * sizeof *c->key);
    if (!c->next_use || !c->heap || !c->pos || !c->key)
        return MC_E_NOMEM;
    uint32_t *last = c->pos;   /* reused: next request per object, scanning backwards */
    for (size_t i = 0; i < in->n_objects; i++)
        last[i] = NIL;
    for (size_t t = in->n_requests; t-- > 0;) {
        c->next_use[t] = last[in->ids[t]];
        last[in->ids[t]] = (uint32_t)t;
    }
    for (size_t i = 0; i < in->n_objects; i++)
        c->pos[i] = NIL;
    return 0;
}

/* ---- driver -------------------------------------------------------------- */

static void cache_free(cache *c)
{
    free(c->prev);
    free(c->next);
    free(c->where);
    free(c->freq);
    free(c->next_use);
    free(c->heap);
    free(c->pos);
    free(c->key);
}

static int cache_init(cache *c, const mc_sim_input *in, mc_sim_policy p)
{
    memset(c, 0, sizeof *c);
    c->in = in;
    c->prev = malloc(in->n_objects * sizeof *c->prev);
    c->next = malloc(in->n_objects * sizeof *c->next);
    c->where = calloc(in->n_objects, 1);
    c->freq = calloc(in->n_objects, 1);
    if (!c->prev || !c->next || !c->where || !c->freq)
        return MC_E_NOMEM;
    for (int w = 0; w < Q_COUNT; w++)
        c->q[w].head = c->q[w].tail = NIL;
    c->hand = NIL;
    c->small_cap = in->capacity / 10;
    c->main_cap = in->capacity - c->small_cap;
    return p == MC_SIM_BELADY ? belady_prepare(c) : 0;
}

static int access_one(cache *c, mc_sim_policy p, uint32_t id, size_t t)
{
    switch (p) {
    case MC_SIM_LRU: return access_lru(c, id, 1);
    case MC_SIM_FIFO: return access_lru(c, id, 0);
    case MC_SIM_SIEVE: return access_sieve(c, id);
    case MC_SIM_S3FIFO: return access_s3fifo(c, id);
    default: return access_belady(c, id, t);
    }
}

int mc_sim_run(const mc_sim_input *in, mc_sim_policy p, mc_sim_result *out)
{
    memset(out, 0, sizeof *out);
    if (in->n_requests == 0 || in->n_objects == 0 || in->capacity == 0 || p >= MC_SIM_POLICY_COUNT ||
        in->n_requests >= NIL || in->n_objects >= NIL)
        return MC_E_INVAL;
    cache c;
    int rc = cache_init(&c, in, p);
    for (size_t t = 0; rc == 0 && t < in->n_requests; t++) {
        uint32_t id = in->ids[t];
        assert(id < in->n_objects);
        if (t == in->warmup)
            c.evictions = 0;
        int hit = access_one(&c, p, id, t);
        assert(c.used <= in->capacity);
        if (t < in->warmup)
            continue;
        out->requests++;
        out->bytes += size_of(&c, id);
        out->hits += (uint64_t)hit;
        out->hit_bytes += hit ? size_of(&c, id) : 0;
    }
    out->evictions = c.evictions;
    cache_free(&c);
    return rc;
}
