/* workload.h — which object the next request asks for: the object set (from
 * a catalog index.json or a trace file), a deterministic PRNG, and the key
 * generators (Zipf, uniform, trace replay) with an optional popularity shift.
 *
 * Object set: n objects, each a path and a size in bytes (0 = unknown, for a
 * trace line without a size). Object ids are 0 .. n-1 in file order (index)
 * or order of first appearance (trace).
 *
 * Trace file: one request per line, "PATH" or "PATH SIZE" (one space or tab
 * between); PATH starts with '/', at most MC_WL_PATH_MAX bytes, no spaces;
 * SIZE is a decimal byte count. Blank lines and lines starting with '#' are
 * skipped. A path seen again with another size keeps its first size.
 *
 * Generators (mc_wl):
 *   MC_WL_ZIPF     rank r (1-based) drawn with P(r) = r^-alpha / H(n, alpha)
 *                  by rejection-inversion (Hörmann & Derflinger 1996: O(1)
 *                  memory and expected time, exact for any alpha >= 0);
 *                  object = perm[r-1], perm a Fisher-Yates shuffle of the ids
 *                  seeded by the seed, so rank 1 is not always object 0.
 *   MC_WL_UNIFORM  every object equally likely.
 *   MC_WL_TRACE    the trace's requests in order, wrapping at the end.
 * Shift: from clock value shift_at on, ZIPF and UNIFORM use a second,
 * independent permutation (a product launch: new objects become the hot
 * ones). The clock is the caller's: microseconds since the start for `run`,
 * the request number for `simulate`. TRACE ignores the shift.
 * Drift (mc_wl_set_drift): every `every` clock units, `step` objects that
 * were the coldest become the hottest and every other object moves `step`
 * ranks down: new content arrives hot and ages (popularity that keeps
 * shifting, not once). Rank r in drift period p is the object at
 * (r - 1 - p * step) mod n of the phase's permutation.
 * Same seed, same options, same sequence, on any machine (xoshiro256**
 * seeded by splitmix64; no rand(), no clock).
 *
 * Errors: 0 or a negative MC_E_* (common/err.h) with a one-line reason in
 * why[whylen] naming the file and line: MC_E_INVAL malformed input, MC_E_IO
 * unreadable file, MC_E_NOMEM, MC_E_TOOBIG more than MC_WL_OBJECTS_MAX
 * objects or MC_WL_REQUESTS_MAX trace lines.
 * Ownership: mc_objset and mc_trace own their arrays (free with their
 * _free); mc_wl borrows the object set and trace, which must outlive it.
 * Threads: no shared state; one mc_wl per thread.
 */
#ifndef MC_LOAD_WORKLOAD_H
#define MC_LOAD_WORKLOAD_H

#include <stddef.h>
#include <stdint.h>

#define MC_WL_PATH_MAX 1024
#define MC_WL_OBJECTS_MAX 100000000u
#define MC_WL_REQUESTS_MAX 1000000000u
#define MC_WL_NO_SHIFT UINT64_MAX

/* ---- PRNG -------------------------------------------------------------- */

typedef struct mc_rng {
    uint64_t s[4];
} mc_rng;

/* Independent streams of one seed: (seed, 0), (seed, 1), ... */
void mc_rng_seed(mc_rng *r, uint64_t seed, uint64_t stream);
uint64_t mc_rng_next(mc_rng *r);
double mc_rng_unit(mc_rng *r);                 /* [0, 1) */
uint64_t mc_rng_below(mc_rng *r, uint64_t n);  /* [0, n), n > 0, unbiased */

/* ---- object set and trace ---------------------------------------------- */

typedef struct mc_objset {
    size_t n;
    char **paths;        /* n NUL-terminated paths */
    uint64_t *sizes;     /* n sizes, 0 = unknown */
    void *index;         /* path -> id hash table (private) */
    size_t index_cap;
} mc_objset;

typedef struct mc_trace {
    mc_objset objs;
    size_t n;            /* requests */
    uint32_t *ids;       /* n object ids */
    size_t cap;
} mc_trace;

/* The "objects" of a catalog index.json (path, size). */
int mc_objset_load_index(mc_objset *out, const char *file, char *why, size_t whylen);
void mc_objset_free(mc_objset *s);

/* Parse a trace from memory (name is used in messages) or from a file. */
int mc_trace_parse(mc_trace *out, const char *text, size_t len, const char *name,
                   char *why, size_t whylen);
int mc_trace_load(mc_trace *out, const char *file, char *why, size_t whylen);
void mc_trace_free(mc_trace *t);

/* ---- generators -------------------------------------------------------- */

typedef enum mc_wl_kind {
    MC_WL_ZIPF = 1,
    MC_WL_UNIFORM = 2,
    MC_WL_TRACE = 3,
} mc_wl_kind;

typedef struct mc_wl {
    mc_wl_kind kind;
    size_t n;                /* objects */
    double alpha;
    uint32_t *perm[2];       /* rank -> id before / after the shift (owned) */
    uint64_t shift_at;       /* clock value, or MC_WL_NO_SHIFT */
    uint64_t drift_every;    /* clock units per drift period, 0: no drift */
    uint64_t drift_step;     /* ranks moved per period */
    const mc_trace *trace;   /* TRACE: borrowed */
    size_t pos;              /* TRACE: next request */
    mc_rng rng;
    double h_x1, h_n, s;     /* rejection-inversion constants */
} mc_wl;

/* kind ZIPF (alpha in [0, 20]) or UNIFORM over n objects (1..MC_WL_OBJECTS_MAX). */
int mc_wl_init(mc_wl *w, mc_wl_kind kind, size_t n, double alpha, uint64_t seed,
               uint64_t shift_at, char *why, size_t whylen);
/* TRACE over t (borrowed; n > 0). */
int mc_wl_init_trace(mc_wl *w, const mc_trace *t);
void mc_wl_free(mc_wl *w);

/* ZIPF or UNIFORM: let the popularity drift (see above); every 0 turns it
 * off. MC_E_INVAL for step 0 or a TRACE workload. */
int mc_wl_set_drift(mc_wl *w, uint64_t every, uint64_t step);

/* Next object id for clock value `clock` (see the shift above). */
uint32_t mc_wl_next(mc_wl *w, uint64_t clock);

/* Zipf rank 1..n (no permutation); exposed for the frequency test. */
uint64_t mc_wl_zipf_rank(mc_wl *w);

/* Object at popularity rank r (1-based) in phase 0 (before) or 1 (after). */
uint32_t mc_wl_object_at_rank(const mc_wl *w, int phase, uint64_t r);

#endif
