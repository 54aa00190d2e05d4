/* stats.h — the edge's counters, rendered by admin.c as Prometheus text.
 *
 * Threads: one process-wide instance (mc_stats_global); every field is a
 * relaxed atomic, updated from any worker without locks.
 */
#ifndef MC_STATS_H
#define MC_STATS_H

#include <stdatomic.h>
#include <stdint.h>
#include "common/buf.h"
#include "common/metrics.h"

/* Cache result of a viewer request (label `result`). */
typedef enum {
    MC_RESULT_HIT = 0,     /* served from the store, fresh */
    MC_RESULT_MISS,        /* not stored: fetched */
    MC_RESULT_EXPIRED,     /* stored but stale: fetched again */
    MC_RESULT_COLLAPSED,   /* joined another request's fill */
    MC_RESULT_PASS,        /* not cacheable (method, status, no-store ...) */
    MC_RESULT_ERROR,       /* answered by the edge itself: 4xx/5xx of its own */
    MC_RESULT_STALE,       /* served stale: stale-while-revalidate, stale-if-error, max-stale */
    MC_RESULT_REVALIDATED, /* stale, revalidated upstream (304), served from the store */
    MC_RESULT_COUNT
} mc_result;

const char *mc_result_name(mc_result r);

/* Which listener a connection came to (label `listener`). */
enum { MC_LISTENER_VIEWER = 0, MC_LISTENER_ADMIN, MC_LISTENER_COUNT };
/* Why a connection was refused at accept (label `reason`). */
enum { MC_REFUSED_TOTAL = 0, MC_REFUSED_PER_CLIENT, MC_REFUSED_COUNT };

/* The two counters every hit bumps live in per-thread shards, each on its
 * own cache lines, so workers never write a shared line per request; the
 * admin loop sums them (mc_stats_requests, mc_stats_bytes_sent). */
#define MC_STATS_SHARDS 8
typedef struct mc_stats_shard {
    _Alignas(64) _Atomic uint64_t bytes_sent;
    _Atomic uint64_t requests[MC_RESULT_COUNT][600];   /* [result][status code] */
} mc_stats_shard;

typedef struct mc_stats {
    mc_stats_shard shards[MC_STATS_SHARDS];
    _Atomic uint64_t upstream_requests[601];           /* [code]; 600 = no response */
    mc_histo upstream_seconds;
    _Atomic uint64_t upstream_bytes;
    _Atomic uint64_t fills_started, fills_published, fills_failed, fills_unstored;
    _Atomic uint64_t fills_inflight;
    _Atomic uint64_t fill_late_joins[2];       /* viewers that streamed a running fill from the store: [0] on its worker, [1] another (feed.h) */
    /* segmented caching (segment.h) */
    _Atomic uint64_t segment_fills_started, segment_fills_published, segment_fills_failed;
    _Atomic uint64_t segment_bytes;            /* upstream body bytes of segments fetched */
    _Atomic uint64_t segment_hit_bytes;        /* segment bytes read from the store for viewers */
    _Atomic uint64_t segment_collapsed;        /* viewers that joined or waited for a running segment fill */
    _Atomic uint64_t segment_probes;           /* cold range requests that fetched one segment first */
    _Atomic uint64_t segment_handovers;        /* requests handed to a whole-object fill */
    _Atomic uint64_t segment_version_changes;  /* objects whose segments were dropped: changed upstream */
    _Atomic uint64_t segment_revalidated;      /* stale heads confirmed (304) with their segments kept */
    _Atomic uint64_t connections_open, connections_total;
    /* closed at accept, [listener][reason]: over the total cap
     * ([edge] max_connections, admin_max_connections) or the per-client one
     * ([edge] max_connections_per_client) */
    _Atomic uint64_t connections_refused[MC_LISTENER_COUNT][MC_REFUSED_COUNT];
    _Atomic uint64_t header_timeouts;                  /* heads not complete within [edge] header_timeout */
    _Atomic uint64_t client_aborts;
    _Atomic uint64_t loops_detected;
    _Atomic uint64_t tls_handshakes, tls_resumed;      /* completed viewer handshakes; of which resumed */
    _Atomic uint64_t tls_failures;                     /* handshakes refused (fatal alert sent) */
    _Atomic uint64_t tls_reloads;                      /* certificate swaps (SIGHUP) */
} mc_stats;

extern mc_stats mc_stats_global;

void mc_stats_init(void);
void mc_stats_request(mc_result r, int status);
/* Body bytes sent to viewers, on the calling thread's shard. */
void mc_stats_sent(uint64_t n);
uint64_t mc_stats_requests(mc_result r, int status);   /* summed over shards */
uint64_t mc_stats_bytes_sent(void);
void mc_stats_upstream(int code, double seconds);

#endif
