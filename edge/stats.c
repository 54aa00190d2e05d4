/* stats.c — see stats.h. */
#include <string.h>
#include "edge/stats.h"

mc_stats mc_stats_global;

static const char *const result_names[MC_RESULT_COUNT] = {
    "hit", "miss", "expired", "collapsed", "pass", "error", "stale", "revalidated"};

const char *mc_result_name(mc_result r) { return result_names[r]; }

void mc_stats_init(void)
{
    memset(&mc_stats_global, 0, sizeof mc_stats_global);
    mc_histo_init_latency(&mc_stats_global.upstream_seconds);
}

/* This thread's shard: threads take the next one in turn at their first
 * count (workers are few; beyond MC_STATS_SHARDS they share). */
static mc_stats_shard *mine(void)
{
    static _Atomic unsigned next;
    static _Thread_local mc_stats_shard *shard;
    if (!shard)
        shard = &mc_stats_global.shards[atomic_fetch_add_explicit(&next, 1, memory_order_relaxed) % MC_STATS_SHARDS];
    return shard;
}

void mc_stats_request(mc_result r, int status)
{
    if (status < 100 || status > 599)
        status = 0;
    mc_counter_add(&mine()->requests[r][status], 1);
}

void mc_stats_sent(uint64_t n) { mc_counter_add(&mine()->bytes_sent, n); }

uint64_t mc_stats_requests(mc_result r, int status)
{
    uint64_t v = 0;
    for (int i = 0; i < MC_STATS_SHARDS; i++)
        v += mc_counter_get(&mc_stats_global.shards[i].requests[r][status]);
    return v;
}

uint64_t mc_stats_bytes_sent(void)
{
    uint64_t v = 0;
    for (int i = 0; i < MC_STATS_SHARDS; i++)
        v += mc_counter_get(&mc_stats_global.shards[i].bytes_sent);
    return v;
}

void mc_stats_upstream(int code, double seconds)
{
    mc_counter_add(&mc_stats_global.upstream_requests[(code >= 100 && code <= 599) ? code : 600], 1);
    mc_histo_observe(&mc_stats_global.upstream_seconds, seconds);
}
