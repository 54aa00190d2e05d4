/* histo.c — log-linear latency histogram; see histo.h. */
#include "tests/load/histo.h"

#include <math.h>
#include <string.h>

#define SUB (1u << MC_HISTO_SUB_BITS)          /* 256: exact below */
#define HALF (SUB / 2)                          /* 128 buckets per power of two */

void mc_histo_us_init(mc_histo_us *h)
{
    memset(h, 0, sizeof *h);
}

unsigned mc_histo_us_bucket(uint64_t us)
{
    if (us >= MC_HISTO_MAX_US)
        us = MC_HISTO_MAX_US - 1;
    if (us < SUB)
        return (unsigned)us;
    unsigned e = (unsigned)(63 - __builtin_clzll(us)) - (MC_HISTO_SUB_BITS - 1);  /* >= 1 */
    return e * HALF + (unsigned)(us >> e);
}

void mc_histo_us_range(unsigned b, uint64_t *lo, uint64_t *hi)
{
    if (b < SUB) {
        *lo = *hi = b;
        return;
    }
    unsigned e = b / HALF - 1;
    uint64_t sub = b - e * HALF;        /* HALF .. SUB-1 */
    *lo = sub << e;
    *hi = ((sub + 1) << e) - 1;
}

void mc_histo_us_record(mc_histo_us *h, uint64_t us)
{
    if (h->count == 0 || us < h->min_us)
        h->min_us = us;
    if (us > h->max_us)
        h->max_us = us;
    h->count++;
    h->sum_us += (double)us;
    h->buckets[mc_histo_us_bucket(us)]++;
}

void mc_histo_us_merge(mc_histo_us *into, const mc_histo_us *from)
{
    if (from->count == 0)
        return;
    if (into->count == 0 || from->min_us < into->min_us)
        into->min_us = from->min_us;
    if (from->max_us > into->max_us)
        into->max_us = from->max_us;
    into->count += from->count;
    into->sum_us += from->sum_us;
    for (unsigned b = 0; b < MC_HISTO_BUCKETS; b++)
        into->buckets[b] += from->buckets[b];
}

uint64_t mc_histo_us_percentile(const mc_histo_us *h, double q)
{
    if (h->count == 0)
        return 0;
    if (q >= 100)
        return h->max_us;
    if (q < 0)
        q = 0;
    uint64_t rank = (uint64_t)ceil(q / 100.0 * (double)h->count);
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned b = 0; b < MC_HISTO_BUCKETS; b++) {
        seen += h->buckets[b];
        if (seen >= rank) {
            uint64_t lo, hi;
            mc_histo_us_range(b, &lo, &hi);
            uint64_t v = lo + (hi - lo) / 2;
            return v < h->min_us ? h->min_us : v > h->max_us ? h->max_us : v;
        }
    }
    return h->max_us;
}

double mc_histo_us_mean(const mc_histo_us *h)
{
    return h->count ? h->sum_us / (double)h->count : 0;
}
