/* evict.c — see evict.h.
 *
 * The table is linear probing with backward-shift deletion (no tombstones),
 * so probes stay short however many objects come and go. Keys are two
 * atomic words: a reader racing a move may miss an entry (a lost visited
 * bit, harmless) but never reads a torn word. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include "common/err.h"
#include "edge/evict.h"

#define NIL UINT32_MAX

typedef struct slot {
    _Atomic uint64_t k0;       /* 0: empty; else the key's first word (never 0) */
    _Atomic uint64_t k1;
    _Atomic unsigned char visited;
    unsigned char key[16];     /* the exact key: writer only */
    uint64_t bytes;
    uint32_t newer, older;     /* FIFO links: writer only */
} slot;

#define PIN_SLOTS 65536u

struct mc_evict {
    _Atomic uint32_t pins[PIN_SLOTS];   /* see mc_evict_pin */
    slot *slots;
    size_t mask;
    size_t count;
    uint32_t newest, oldest;   /* FIFO ends */
    uint32_t hand;             /* next to examine; NIL: the oldest */
};

static void split(const unsigned char key[16], uint64_t *k0, uint64_t *k1)
{
    memcpy(k0, key, 8);
    memcpy(k1, key + 8, 8);
    if (*k0 == 0)
        *k0 = 1;   /* 0 marks an empty slot */
}

static size_t home(const mc_evict *e, uint64_t k1) { return (size_t)(k1 & e->mask); }

int mc_evict_new(mc_evict **out, size_t capacity)
{
    size_t cap = 1024;
    while (cap < capacity)
        cap <<= 1;
    mc_evict *e = calloc(1, sizeof *e);
    if (!e || !(e->slots = calloc(cap, sizeof *e->slots))) {
        free(e);
        return MC_E_NOMEM;
    }
    e->mask = cap - 1;
    e->newest = e->oldest = e->hand = NIL;
    *out = e;
    return 0;
}

void mc_evict_free(mc_evict *e)
{
    if (e) {
        free(e->slots);
        free(e);
    }
}

static uint32_t find(const mc_evict *e, uint64_t k0, uint64_t k1)
{
    for (size_t i = home(e, k1), n = 0; n <= e->mask; i = (i + 1) & e->mask, n++) {
        uint64_t t = atomic_load_explicit(&e->slots[i].k0, memory_order_acquire);
        if (t == 0)
            return NIL;
        if (t == k0 && atomic_load_explicit(&e->slots[i].k1, memory_order_relaxed) == k1)
            return (uint32_t)i;
    }
    return NIL;
}

void mc_evict_touch(mc_evict *e, const unsigned char key[16])
{
    uint64_t k0, k1;
    split(key, &k0, &k1);
    uint32_t i = find(e, k0, k1);
    /* written only when clear: a hot object's line is not dirtied by every
     * hit on every worker */
    if (i != NIL && !atomic_load_explicit(&e->slots[i].visited, memory_order_relaxed))
        atomic_store_explicit(&e->slots[i].visited, 1, memory_order_relaxed);
}

static size_t pin_slot(const unsigned char key[16])
{
    uint64_t k0, k1;
    split(key, &k0, &k1);
    return (size_t)((k0 ^ (k1 >> 17)) & (PIN_SLOTS - 1));
}

/* A pin entry counts pins in its low bits; PIN_DOOMED marks an object the
 * writer has chosen as a victim and is removing (evict.h). Pin and doom
 * are read-modify-writes of the same word, so one always sees the other. */
#define PIN_DOOMED 0x80000000u

int mc_evict_pin(mc_evict *e, const unsigned char key[16])
{
    _Atomic uint32_t *p = &e->pins[pin_slot(key)];
    if (atomic_fetch_add_explicit(p, 1, memory_order_seq_cst) & PIN_DOOMED) {
        atomic_fetch_sub_explicit(p, 1, memory_order_release);
        return MC_E_BUSY;
    }
    return 0;
}

void mc_evict_unpin(mc_evict *e, const unsigned char key[16])
{
    atomic_fetch_sub_explicit(&e->pins[pin_slot(key)], 1, memory_order_release);
}

/* Mark key doomed unless it is pinned (or doomed already): 1 if marked. */
static int doom(mc_evict *e, const unsigned char key[16])
{
    uint32_t free_entry = 0;
    return atomic_compare_exchange_strong_explicit(&e->pins[pin_slot(key)], &free_entry, PIN_DOOMED,
                                                   memory_order_seq_cst, memory_order_relaxed);
}

void mc_evict_release(mc_evict *e, const unsigned char key[16])
{
    atomic_fetch_and_explicit(&e->pins[pin_slot(key)], ~PIN_DOOMED, memory_order_release);
}

int mc_evict_needs_room(const mc_evict *e) { return (e->count + 1) * 10 > (e->mask + 1) * 7; }

int mc_evict_insert(mc_evict *e, const unsigned char key[16], uint64_t bytes)
{
    uint64_t k0, k1;
    split(key, &k0, &k1);
    uint32_t i = find(e, k0, k1);
    if (i != NIL) {
        e->slots[i].bytes = bytes;   /* a new version keeps its place */
        return 0;
    }
    if (mc_evict_needs_room(e))
        return MC_E_FULL;
    size_t j = home(e, k1);
    while (atomic_load_explicit(&e->slots[j].k0, memory_order_relaxed) != 0)
        j = (j + 1) & e->mask;
    slot *s = &e->slots[j];
    memcpy(s->key, key, 16);
    s->bytes = bytes;
    atomic_store_explicit(&s->visited, 0, memory_order_relaxed);
    s->newer = NIL;
    s->older = e->newest;
    if (e->newest != NIL)
        e->slots[e->newest].newer = (uint32_t)j;
    e->newest = (uint32_t)j;
    if (e->oldest == NIL)
        e->oldest = (uint32_t)j;
    atomic_store_explicit(&s->k1, k1, memory_order_relaxed);
    atomic_store_explicit(&s->k0, k0, memory_order_release);
    e->count++;
    return 0;
}

/* Point everything that referred to slot `from` at slot `to`. */
static void relink(mc_evict *e, uint32_t from, uint32_t to)
{
    slot *s = &e->slots[to];
    if (s->newer != NIL)
        e->slots[s->newer].older = to;
    else
        e->newest = to;
    if (s->older != NIL)
        e->slots[s->older].newer = to;
    else
        e->oldest = to;
    if (e->hand == from)
        e->hand = to;
}

/* Empty slot i, shifting later entries of the probe run back into the gap. */
static void clear_slot(mc_evict *e, size_t i)
{
    for (size_t j = (i + 1) & e->mask;; j = (j + 1) & e->mask) {
        uint64_t t = atomic_load_explicit(&e->slots[j].k0, memory_order_relaxed);
        if (t == 0)
            break;
        size_t k = home(e, atomic_load_explicit(&e->slots[j].k1, memory_order_relaxed));
        /* j's entry may move to i unless its home lies cyclically in (i, j] */
        int stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (stays)
            continue;
        slot *d = &e->slots[i], *s = &e->slots[j];
        atomic_store_explicit(&d->k0, 0, memory_order_release);
        memcpy(d->key, s->key, 16);
        d->bytes = s->bytes;
        d->newer = s->newer;
        d->older = s->older;
        atomic_store_explicit(&d->visited, atomic_load_explicit(&s->visited, memory_order_relaxed),
                              memory_order_relaxed);
        atomic_store_explicit(&d->k1, atomic_load_explicit(&s->k1, memory_order_relaxed), memory_order_relaxed);
        atomic_store_explicit(&d->k0, t, memory_order_release);
        relink(e, (uint32_t)j, (uint32_t)i);
        i = j;
    }
    atomic_store_explicit(&e->slots[i].k0, 0, memory_order_release);
}

static void remove_at(mc_evict *e, uint32_t i)
{
    slot *s = &e->slots[i];
    if (e->hand == i)
        e->hand = s->newer;        /* the hand moves on toward newer objects */
    if (s->newer != NIL)
        e->slots[s->newer].older = s->older;
    else
        e->newest = s->older;
    if (s->older != NIL)
        e->slots[s->older].newer = s->newer;
    else
        e->oldest = s->newer;
    e->count--;
    clear_slot(e, i);
}

void mc_evict_remove(mc_evict *e, const unsigned char key[16])
{
    uint64_t k0, k1;
    split(key, &k0, &k1);
    uint32_t i = find(e, k0, k1);
    if (i != NIL)
        remove_at(e, i);
}

int mc_evict_victim(mc_evict *e, unsigned char key_out[16], uint64_t *bytes_out)
{
    if (e->count == 0)
        return MC_E_NOTFOUND;
    uint32_t i = e->hand != NIL ? e->hand : e->oldest;
    /* SIEVE: pass over visited objects (clearing the bit) and pinned ones,
     * toward newer, wrapping to the oldest; bits only get cleared, so two
     * rounds see every unpinned object unvisited */
    for (size_t seen = 0;; seen++) {
        int visited = atomic_exchange_explicit(&e->slots[i].visited, 0, memory_order_relaxed);
        if (!visited && doom(e, e->slots[i].key))
            break;
        if (seen > 2 * e->count)
            return MC_E_NOTFOUND;   /* all pinned */
        i = e->slots[i].newer != NIL ? e->slots[i].newer : e->oldest;
    }
    slot *s = &e->slots[i];
    memcpy(key_out, s->key, 16);
    *bytes_out = s->bytes;
    e->hand = i;
    remove_at(e, i);               /* leaves the hand on the next newer object */
    return 0;
}

size_t mc_evict_count(const mc_evict *e) { return e->count; }
