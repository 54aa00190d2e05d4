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
 *
 * Errors: 0 or MC_E_IO (cannot write the file) / MC_E_NOMEM, with a reason.
 * Threads: no shared state. Ownership: reads opts and result only.
 */
#ifndef MC_LOAD_REPORT_H
#define MC_LOAD_REPORT_H

#include "tests/load/run.h"

#include <stddef.h>
#include <stdio.h>

/* What the report says about how the run was configured (free text). */
typedef struct mc_report_meta {
    const char *workload;     /* "zipf:0.9 over 1200 objects (index.json)" */
    uint64_t seed;
} mc_report_meta;

int mc_report_json(const char *file, const mc_run_opts *o, const mc_report_meta *m, const mc_run_result *r,
                   char *why, size_t whylen);
int mc_report_html(const char *file, const mc_run_opts *o, const mc_report_meta *m, const mc_run_result *r,
                   char *why, size_t whylen);

/* A short human summary on f (stdout after a run). */
void mc_report_text(FILE *f, const mc_run_opts *o, const mc_run_result *r);

#endif
