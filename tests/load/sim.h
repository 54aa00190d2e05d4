/* sim.h — trace-driven cache simulation: size-aware LRU, FIFO, SIEVE,
 * S3-FIFO and Belady's offline optimum, on one byte budget.
 *
 * Model: requests (object id, size in bytes) against a cache of capacity
 * bytes, starting empty. A request for a cached object is a hit; otherwise a
 * miss, after which the object is admitted (evicting until it fits) unless
 * it is larger than the cache. Objects never change size (first size wins).
 *
 * Policies:
 *   lru      evict the least recently used.
 *   fifo     evict the oldest insertion; hits change nothing.
 *   sieve    FIFO queue with a visited bit and a hand moving from the oldest
 *            towards the newest, sparing (and clearing) visited objects
 *            (Zhang et al., NSDI 2024).
 *   s3fifo   small FIFO (10% of the bytes) for new objects, main FIFO (90%),
 *            ghost FIFO of ids evicted from small (as many bytes as main);
 *            a 2-bit frequency per object; leaving small, an object hit at
 *            least once moves to main, else to the ghost; a miss found in
 *            the ghost goes straight to main; main reinserts an object with
 *            frequency > 0, decrementing it (Yang et al., SOSP 2023).
 *            Objects larger than the small queue go straight to main.
 *   belady   offline (Belady's MIN): on a miss the arriving object joins the
 *            cached ones and the object whose next request is furthest in
 *            the future is evicted until the bytes fit, which may be the
 *            arriving object itself (it is then not admitted: bypass).
 *            Exact (the optimal hit ratio) when all sizes are equal. With
 *            mixed sizes the optimum is NP-hard (Berger et al., SIGMETRICS
 *            2018); this is the classic furthest-next-use heuristic, chosen
 *            because it is exact in the unit case, simple to check by hand
 *            and, on CDN-like traces, far above every online policy. It is
 *            a reference ceiling, not a proven bound, for mixed sizes.
 *
 * Warm-up: the first `warmup` requests change the cache but are not counted.
 *
 * Memory: O(objects + requests) (Belady needs each request's next use);
 * nothing grows while a policy runs.
 * Errors: 0 or MC_E_NOMEM / MC_E_INVAL (no requests, capacity 0).
 * Threads: no shared state.
 */
#ifndef MC_LOAD_SIM_H
#define MC_LOAD_SIM_H

#include <stddef.h>
#include <stdint.h>

typedef enum mc_sim_policy {
    MC_SIM_LRU = 0,
    MC_SIM_FIFO,
    MC_SIM_SIEVE,
    MC_SIM_S3FIFO,
    MC_SIM_BELADY,
    MC_SIM_POLICY_COUNT
} mc_sim_policy;

typedef struct mc_sim_input {
    size_t n_objects;
    const uint64_t *sizes;     /* n_objects sizes in bytes (>= 1) */
    size_t n_requests;
    const uint32_t *ids;       /* n_requests object ids < n_objects */
    uint64_t capacity;         /* bytes, > 0 */
    size_t warmup;             /* requests not counted */
} mc_sim_input;

typedef struct mc_sim_result {
    uint64_t requests, hits;
    uint64_t bytes, hit_bytes;
    uint64_t evictions;
} mc_sim_result;

const char *mc_sim_policy_name(mc_sim_policy p);   /* "lru", ... */
int mc_sim_run(const mc_sim_input *in, mc_sim_policy p, mc_sim_result *out);
double mc_sim_hit_ratio(const mc_sim_result *r);
double mc_sim_byte_hit_ratio(const mc_sim_result *r);

#endif
