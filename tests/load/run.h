/* run.h — the load run: drive requests at one or more edges over
 * keep-alive HTTP/1.1 connections (httpc.h) on one libevent loop, and
 * collect what the report shows.
 *
 * Modes:
 *   open loop   (rate_per_s > 0) request k is due at start + k / rate; it
 *               goes to an idle connection of its target, or a new one (up
 *               to `connections` per target), or waits in a bounded queue
 *               (MC_RUN_QUEUE_MAX per target; beyond it the request is
 *               dropped and counted). Latency runs from the intended send
 *               time, so a stalled server is charged for the requests it
 *               delayed (no coordinated omission).
 *   closed loop (rate_per_s == 0) `connections` connections spread over
 *               the targets by weight, each sending its next request as
 *               soon as the previous one completes; latency from the send.
 * Targets are chosen per request by weight (open loop) or per connection
 * (closed loop); objects by the workload (workload.h) with the clock in
 * microseconds since the start (the shift). Warm-up requests (intended
 * before start + warmup) are sent but not counted; the /metrics scrape
 * "before" is taken when the warm-up ends (a blocking read of a few ms).
 * The run ends after `duration_us` of measurement or `requests` measured
 * requests; requests already due are completed (up to the timeout).
 *
 * Sent sequence (opts.record_sent): each target's result lists the object
 * ids sent to it, in the order sent (the order they were generated: warm-up
 * ones first), for the simulated optimum (optimum.h); a request counts as
 * sent once handed to its connection, so one dropped by the open loop's
 * queue is not in it. Recording stops (sent_overflow) after
 * MC_RUN_SENT_MAX ids over all targets. With opts.observed_sizes, the body
 * size of every complete 200 answer is written at its object's id.
 *
 * Memory: fixed per connection and per target; the only growth is one
 * mc_run_second per second of the run and, with record_sent, 4 bytes per
 * request sent.
 * Threads: mc_run_execute runs the loop on the calling thread.
 * Errors: mc_run_execute returns 0 (the run happened, whatever the errors
 * it counted) or a negative MC_E_* with a reason (a target that does not
 * resolve, no memory, a scrape that fails).
 * Ownership: mc_run_result owns its series; free with mc_run_result_free.
 */
#ifndef MC_LOAD_RUN_H
#define MC_LOAD_RUN_H

#include "tests/load/histo.h"
#include "tests/load/httpc.h"
#include "tests/load/scrape.h"
#include "tests/load/workload.h"

#include <stddef.h>
#include <stdint.h>

#define MC_RUN_TARGETS_MAX 16
#define MC_RUN_QUEUE_MAX 65536
#define MC_RUN_CONNECTIONS_MAX 10000
#define MC_RUN_SENT_MAX (64u << 20)     /* recorded ids over all targets (256 MiB) */

/* Error kinds counted by the run (HTTP statuses are counted separately). */
enum {
    MC_RUN_ERR_CONNECT = 0,
    MC_RUN_ERR_TIMEOUT,
    MC_RUN_ERR_CLOSED,
    MC_RUN_ERR_TRUNCATED,
    MC_RUN_ERR_PROTOCOL,
    MC_RUN_ERR_DROPPED,      /* open loop: the target's queue was full */
    MC_RUN_ERR_STATUS_4XX,
    MC_RUN_ERR_STATUS_5XX,
    MC_RUN_ERR_COUNT
};
const char *mc_run_err_name(int kind);   /* "connect", ..., "status_5xx" */

typedef struct mc_run_target {
    char url[512];
    char host[256], port[8], prefix[512];   /* prefix: URL path before the object path, no trailing '/' */
    double weight;
    const char *metrics_url;                /* NULL: no scrape */
} mc_run_target;

typedef struct mc_run_opts {
    mc_run_target targets[MC_RUN_TARGETS_MAX];
    size_t n_targets;
    const mc_objset *objs;                  /* borrowed: paths */
    mc_wl *wl;                              /* borrowed: the key generator */
    double rate_per_s;                      /* > 0: open loop */
    unsigned connections;                   /* closed: total; open: per target cap */
    uint64_t duration_us;                   /* 0: use requests */
    uint64_t requests;                      /* 0: use duration */
    uint64_t warmup_us;
    int timeout_ms;
    int progress;                           /* live line on stderr */
    int record_sent;                        /* keep the sent sequence (see above) */
    uint64_t *observed_sizes;               /* NULL, or objs->n sizes to fill (borrowed) */
} mc_run_opts;

/* Counters of measured requests (one per target, and overall). */
typedef struct mc_run_counts {
    uint64_t requests;                      /* responses with a status, any code */
    uint64_t hits, misses, unknown;         /* by X-Cache / Cache-Status */
    uint64_t bytes, hit_bytes;              /* body bytes */
    uint64_t status[6];                     /* [code / 100], 0 = none */
    uint64_t errors[MC_RUN_ERR_COUNT];
} mc_run_counts;

typedef struct mc_run_second {
    uint64_t requests, hits, bytes, errors;
} mc_run_second;

typedef struct mc_run_target_result {
    mc_run_counts counts;
    mc_histo_us latency;
    int have_metrics;
    mc_scrape before, after;
    uint32_t *sent;                         /* record_sent: ids in the order sent (owned) */
    size_t n_sent, cap_sent;
    size_t sent_warmup;                     /* how many of them were warm-up requests */
    int sent_overflow;                      /* MC_RUN_SENT_MAX reached: the list is incomplete */
} mc_run_target_result;

typedef struct mc_run_result {
    mc_run_target_result targets[MC_RUN_TARGETS_MAX];
    mc_run_counts total;
    mc_histo_us latency;
    double measured_s;                      /* from the end of warm-up to the last response */
    mc_run_second *series;                  /* one per second of measurement */
    size_t n_series, cap_series;
} mc_run_result;

/* Parse "http://HOST:PORT[/PREFIX][,WEIGHT]" into t (weight 1 by default). */
int mc_run_parse_target(const char *spec, mc_run_target *t, char *why, size_t whylen);

int mc_run_execute(const mc_run_opts *opts, mc_run_result *out, char *why, size_t whylen);
void mc_run_result_free(mc_run_result *r);

/* Sum a target's or the total's counts (helpers for the report). */
double mc_run_hit_ratio(const mc_run_counts *c);        /* hits / (hits + misses + unknown) */
double mc_run_byte_hit_ratio(const mc_run_counts *c);
uint64_t mc_run_errors(const mc_run_counts *c);         /* all kinds */

#endif
