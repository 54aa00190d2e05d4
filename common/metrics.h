/* metrics.h — Prometheus text-format helpers: relaxed atomic counters and
 * fixed-bucket histograms, rendered into an mc_buf.
 *
 * Threads: observe/add from any thread (relaxed atomics, no locks); render
 * from any thread (values may be mutually a moment apart, as Prometheus
 * allows).
 */
#ifndef MC_METRICS_H
#define MC_METRICS_H

#include <stdatomic.h>
#include <stdint.h>
#include "common/buf.h"

#define MC_HISTO_MAX_BUCKETS 24

typedef struct mc_histo {
    int nbuckets;
    double bounds[MC_HISTO_MAX_BUCKETS];       /* upper bounds, ascending */
    _Atomic uint64_t counts[MC_HISTO_MAX_BUCKETS + 1]; /* last = +Inf */
    _Atomic uint64_t sum_us;                   /* sum of observations in microseconds */
} mc_histo;

/* Latency buckets in seconds: 1ms .. 30s. */
void mc_histo_init_latency(mc_histo *h);
void mc_histo_observe(mc_histo *h, double seconds);

static inline void mc_counter_add(_Atomic uint64_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}
static inline uint64_t mc_counter_get(_Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

/* "# HELP name help\n# TYPE name type\n" */
int mc_metrics_header(mc_buf *b, const char *name, const char *type, const char *help);
/* "name{labels} value\n"; labels is "a=\"x\",b=\"y\"" or NULL. */
int mc_metrics_value(mc_buf *b, const char *name, const char *labels, double value);
/* Cumulative buckets, _sum and _count for h, with extra labels (or NULL). */
int mc_metrics_histo(mc_buf *b, const char *name, const char *labels, mc_histo *h);

#endif
