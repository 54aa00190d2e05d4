/* report.h — the load run's reports: JSON (jansson) for scripts and a
 * self-contained HTML page for people (inline SVG charts: hit ratio and
 * throughput per second, latency by percentile; no script, font, style
 * sheet or image from anywhere else).
 *
 * JSON layout (numbers; ratios in [0, 1]; latencies in microseconds):
 *   {"tool","version","config":{mode,rate_per_s,connections,duration_s,
 *    warmup_s,requests,workload,seed,timeout_ms,targets:[{url,weight,metrics}]},
 *    "measured_s",
 *    "total": STATS, "targets":[{"url", STATS}, ...],
 *    "series":[{"t","requests","hits","bytes","errors"}, ...],
 *    "latency_percentiles":[[q, us], ...]}
 *   STATS = {"requests","hits","misses","unknown","bytes","hit_bytes",
 *            "requests_per_s","bytes_per_s","hit_ratio","byte_hit_ratio",
 *            "status":{"2xx":n,...},"errors":{"connect":n,...},
 *            "latency_us":{"p50","p90","p99","p99_9","max","mean"},
 *            "edge":{"requests","hits","upstream_requests","origin_offload"}
 *              (per target with --metrics: deltas over the measurement;
 *               in total: sums over the targets that have metrics) }
 *   origin_offload = 1 - delta(upstream requests) / delta(edge requests).
 *   "optimum" (top level, the targets summed, and in each targets[] entry;
 *   null when not simulated, see optimum.h, with "optimum_note" saying why
 *   at the top level) = {"cache_size" (bytes; null when the targets
 *   differ), "cache_size_source" ("option" | "metrics"), "store_size"
 *   (meshcdn_edge_store_size_bytes or null), "evict_percent" (with
 *   metrics), "requests", "warmup_requests", "measured":{"hit_ratio",
 *   "byte_hit_ratio"}, "policies":{"belady"|"s3fifo"|"sieve"|"lru":
 *   {"hit_ratio","byte_hit_ratio","requests","hits","bytes","hit_bytes",
 *   "evictions"}},
 *   "full_store": null | {"cache_size","policies"} (metrics: the whole
 *   store size simulated too)}.
 *
 * Errors: 0 or MC_E_IO (cannot write the file) / MC_E_NOMEM, with a reason.
 * Threads: no shared state. Ownership: reads opts and result only.
 */
#ifndef MC_LOAD_REPORT_H
#define MC_LOAD_REPORT_H

#include "tests/load/optimum.h"
#include "tests/load/run.h"

#include <stddef.h>
#include <stdio.h>

/* What the report says besides the run's own counts. */
typedef struct mc_report_meta {
    const char *workload;     /* "zipf:0.9 over 1200 objects (index.json)" */
    uint64_t seed;
    const mc_optimum_report *optimum;   /* NULL: not asked for (--no-optimum) */
} mc_report_meta;

int mc_report_json(const char *file, const mc_run_opts *o, const mc_report_meta *m, const mc_run_result *r,
                   char *why, size_t whylen);
int mc_report_html(const char *file, const mc_run_opts *o, const mc_report_meta *m, const mc_run_result *r,
                   char *why, size_t whylen);

/* A short human summary on f (stdout after a run), with the measured hit
 * ratio next to the simulated ones when m->optimum has them. */
void mc_report_text(FILE *f, const mc_run_opts *o, const mc_report_meta *m, const mc_run_result *r);

#endif
