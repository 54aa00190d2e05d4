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

void mc_stats_request(mc_result r, int status)
{
    if (status < 100 || status > 599)
        status = 0;
    mc_counter_add(&mc_stats_global.requests[r][status], 1);
}

void mc_stats_upstream(int code, double seconds)
{
    mc_counter_add(&mc_stats_global.upstream_requests[(code >= 100 && code <= 599) ? code : 600], 1);
    mc_histo_observe(&mc_stats_global.upstream_seconds, seconds);
}
