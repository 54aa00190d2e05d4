/* histo.h — an HDR-style log-linear latency histogram in microseconds.
 *
 * Values below 256 us are counted exactly; above, each power of two is split
 * into 128 linear buckets, so a bucket is at most 1/128 of its values wide
 * and a reported percentile (the bucket's midpoint, clamped to the observed
 * min and max) is within 0.4% of a recorded value. Values up to
 * MC_HISTO_MAX_US (about 19 hours) are tracked; larger ones count in the
 * last bucket, and max stays exact. Fixed size (about 36 KiB), no
 * allocation: record, merge and percentile never fail.
 *
 * Threads: none shared; one histogram per thread, merge afterwards.
 * Ownership: a plain value; copy or embed freely.
 */
#ifndef MC_LOAD_HISTO_H
#define MC_LOAD_HISTO_H

#include <stdint.h>

#define MC_HISTO_SUB_BITS 8
#define MC_HISTO_MAX_US (1ull << 36)
#define MC_HISTO_BUCKETS ((36 - MC_HISTO_SUB_BITS + 2) << (MC_HISTO_SUB_BITS - 1))

typedef struct mc_histo_us {
    uint64_t count;
    uint64_t min_us, max_us;
    double sum_us;
    uint64_t buckets[MC_HISTO_BUCKETS];
} mc_histo_us;

void mc_histo_us_init(mc_histo_us *h);
void mc_histo_us_record(mc_histo_us *h, uint64_t us);
/* into += from */
void mc_histo_us_merge(mc_histo_us *into, const mc_histo_us *from);
/* Value at percentile q (0..100: 50, 99.9, 100 = max); 0 when empty. The
 * smallest v such that at least q% of the values are <= v's bucket. */
uint64_t mc_histo_us_percentile(const mc_histo_us *h, double q);
double mc_histo_us_mean(const mc_histo_us *h);

/* Bucket of a value and the [lo, hi] range of a bucket (for tests). */
unsigned mc_histo_us_bucket(uint64_t us);
void mc_histo_us_range(unsigned bucket, uint64_t *lo, uint64_t *hi);

#endif
