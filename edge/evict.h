/* evict.h — which object leaves the store when it is full: SIEVE
 * (Zhang et al., NSDI '24), which beats LRU on CDN traces and needs no write
 * on a hit.
 *
 * Objects sit in one FIFO in insertion order with a "hand" that walks from
 * the oldest toward the newest: an object whose visited bit is set gets it
 * cleared and is passed over; the first one without is the victim. A hit
 * only sets the bit (one relaxed atomic store). Kept in memory and rebuilt
 * at start from the store's insertion sequence.
 *
 * Threads: mc_evict_touch from any thread, lock-free (an open-addressing
 * table whose keys only the writer thread changes); everything else on the
 * store's writer thread only.
 * Memory: a fixed table of `capacity` slots (about 48 bytes each) allocated
 * at creation; when it is 70% full the caller must evict before inserting.
 */
#ifndef MC_EVICT_H
#define MC_EVICT_H

#include <stddef.h>
#include <stdint.h>

typedef struct mc_evict mc_evict;

/* capacity: slots in the table (rounded up to a power of two). */
int mc_evict_new(mc_evict **out, size_t capacity);
void mc_evict_free(mc_evict *e);

/* A hit: mark key visited (no-op for an unknown key). Any thread. */
void mc_evict_touch(mc_evict *e, const unsigned char key[16]);

/* An object a viewer is being sent chunk by chunk is pinned: the victim
 * search passes over it, so eviction does not cut that response between two
 * chunk reads. Counts live in a 65,536-entry table indexed by the key (not
 * in the slots, which move), so pin and unpin need no lookup and never miss;
 * two keys sharing an entry only spare each other for a while.
 * The victim search marks the object it returns doomed (an atomic
 * compare-and-swap on the same entry, only when no pin is held); the writer
 * removes it and, after its transaction ends, calls mc_evict_release. A pin
 * on a doomed entry fails with MC_E_BUSY: the object may be gone from the
 * next read transaction on, so the caller must not start an answer from it
 * (it fetches again instead). So an answer that got its pin before its
 * first chunk read is never cut by eviction.
 * Any thread; each successful pin needs one unpin of the same key. */
int mc_evict_pin(mc_evict *e, const unsigned char key[16]);
void mc_evict_unpin(mc_evict *e, const unsigned char key[16]);

/* Writer thread only. Insert a newly published object as the newest (a
 * replaced object keeps its place and gets the new size). Returns 0, or
 * MC_E_FULL when the table is at its load limit (evict first). */
int mc_evict_insert(mc_evict *e, const unsigned char key[16], uint64_t bytes);
void mc_evict_remove(mc_evict *e, const unsigned char key[16]);
/* Choose and remove the next victim (SIEVE, passing over pinned objects); 0
 * with key_out/bytes_out, or MC_E_NOTFOUND when empty or everything is
 * pinned. The victim is left doomed (see mc_evict_pin) until
 * mc_evict_release(key_out), which the writer calls once the transaction
 * that removes it has committed or aborted. */
int mc_evict_victim(mc_evict *e, unsigned char key_out[16], uint64_t *bytes_out);
void mc_evict_release(mc_evict *e, const unsigned char key[16]);
size_t mc_evict_count(const mc_evict *e);
/* True when an insert would exceed the load limit. */
int mc_evict_needs_room(const mc_evict *e);

#endif
