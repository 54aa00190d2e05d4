/* optimum.h — a run's measured hit ratio next to the best possible one: the
 * requests each target was actually sent (run.h records them, in the order
 * sent, warm-up first) are replayed through sim.h's Belady, S3-FIFO, SIEVE
 * and LRU at that target's cache size, after the run (no cost in the run's
 * hot loop beyond appending an id).
 *
 * Exactness: each target is simulated on its own sequence with its own
 * cache (each target is taken to be a separate edge), starting empty;
 * warm-up requests fill the simulated cache but are not counted, like the
 * run. The total is the sum over the targets (hits / requests), computed
 * only when every target that was sent measured requests was simulated.
 * With no errors the simulated measured requests equal the run's counted
 * responses; a request sent but never
 * answered (timeout, closed) is still in the sequence, one dropped by the
 * open loop's queue is not. The simulator does not model request
 * collapsing (a request joining an in-flight fill is a miss for the edge,
 * a hit here) nor anything cached before the run.
 *
 * Cache size: --cache-size given by the user (bytes of object bodies), or
 * else the edge's meshcdn_edge_store_size_bytes from its /metrics: the edge
 * evicts once stored body bytes pass MC_OPTIMUM_EVICT_PERCENT of it (down to
 * 70%, edge/store.c), so that share is the size compared, and the whole
 * store size is simulated too ("full") as a ceiling.
 *
 * Object sizes: the caller's array (bytes; 0 = unknown). A target whose
 * sequence asks for an object of unknown size is not simulated (why says
 * which).
 *
 * Memory: per simulation O(objects + requests) (sim.h), freed before
 * returning. Errors: mc_optimum_compute returns 0 or MC_E_NOMEM; a target
 * that cannot be simulated is not an error (done = 0, why set; the why
 * names a target without its URL scheme).
 * Threads: no shared state.
 */
#ifndef MC_LOAD_OPTIMUM_H
#define MC_LOAD_OPTIMUM_H

#include "tests/load/run.h"
#include "tests/load/sim.h"

#include <stddef.h>
#include <stdint.h>

#define MC_OPTIMUM_EVICT_PERCENT 80
#define MC_OPTIMUM_N 4

/* The policies compared, best first: belady, s3fifo, sieve, lru. */
extern const mc_sim_policy mc_optimum_policies[MC_OPTIMUM_N];
const char *mc_optimum_policy_label(int i);   /* "Belady", "S3-FIFO", "SIEVE", "LRU" */

/* One cache size, every policy (mc_optimum_policies order). */
typedef struct mc_optimum_size {
    uint64_t cache_size;
    mc_sim_result res[MC_OPTIMUM_N];
} mc_optimum_size;

typedef struct mc_optimum_target {
    int done;                 /* 0: not simulated, see why */
    int empty;                /* not simulated: no measured request was sent to it */
    char why[640];
    int from_metrics;         /* cache size from /metrics (else --cache-size) */
    uint64_t store_size;      /* meshcdn_edge_store_size_bytes, 0 if not read */
    uint64_t requests;        /* simulated requests, warm-up included */
    uint64_t warmup;          /* of which warm-up (replayed, not counted) */
    mc_optimum_size at;           /* the size compared with the measurement */
    int have_full;            /* from metrics: also the whole store */
    mc_optimum_size full;
} mc_optimum_target;

typedef struct mc_optimum_report {
    mc_optimum_target targets[MC_RUN_TARGETS_MAX];
    mc_optimum_target total;      /* sums; cache sizes 0 when the targets differ */
} mc_optimum_report;

/* The size a target is compared at: user_size when > 0, else from the
 * scraped store size (MC_OPTIMUM_EVICT_PERCENT of it, as edge/store.c computes
 * it: size / 100 * 80). 0 when neither is known. */
uint64_t mc_optimum_effective_size(uint64_t store_size);

/* Replay seq[0..n) (ids < n_objects, sizes[id] > 0) at capacity; the first
 * warmup requests are not counted. 0, MC_E_NOMEM or MC_E_INVAL. */
int mc_optimum_simulate(const uint64_t *sizes, size_t n_objects, const uint32_t *seq, size_t n, size_t warmup,
                    uint64_t capacity, mc_optimum_size *out);

/* Every target of a finished run (recorded with opts.record_sent).
 * sizes: n_objects object sizes (0 = unknown; o->objs->paths names such an
 * object in why); user_size: --cache-size or 0 (then the scraped store). */
int mc_optimum_compute(const mc_run_opts *o, const mc_run_result *r, const uint64_t *sizes, size_t n_objects,
                   uint64_t user_size, mc_optimum_report *out);

#endif
