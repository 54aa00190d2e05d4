/* metrics.c — see metrics.h. */
#include <stdio.h>
#include <string.h>
#include "common/metrics.h"

void mc_histo_init_latency(mc_histo *h)
{
    static const double b[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                               0.25, 0.5, 1, 2.5, 5, 10, 30};
    memset(h, 0, sizeof *h);
    h->nbuckets = (int)(sizeof b / sizeof b[0]);
    memcpy(h->bounds, b, sizeof b);
}

void mc_histo_observe(mc_histo *h, double seconds)
{
    int i = 0;
    while (i < h->nbuckets && seconds > h->bounds[i])
        i++;
    mc_counter_add(&h->counts[i], 1);
    mc_counter_add(&h->sum_us, seconds > 0 ? (uint64_t)(seconds * 1e6) : 0);
}

int mc_metrics_header(mc_buf *b, const char *name, const char *type, const char *help)
{
    return mc_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

int mc_metrics_value(mc_buf *b, const char *name, const char *labels, double value)
{
    if (labels && *labels)
        return mc_buf_printf(b, "%s{%s} %.17g\n", name, labels, value);
    return mc_buf_printf(b, "%s %.17g\n", name, value);
}

int mc_metrics_histo(mc_buf *b, const char *name, const char *labels, mc_histo *h)
{
    const char *sep = (labels && *labels) ? "," : "";
    const char *lb = labels ? labels : "";
    uint64_t cum = 0;
    int rc = 0;
    for (int i = 0; i <= h->nbuckets && rc == 0; i++) {
        cum += mc_counter_get(&h->counts[i]);
        if (i < h->nbuckets)
            rc = mc_buf_printf(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, lb, sep, h->bounds[i],
                               (unsigned long long)cum);
        else
            rc = mc_buf_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, lb, sep,
                               (unsigned long long)cum);
    }
    double sum = (double)mc_counter_get(&h->sum_us) / 1e6;
    if (rc == 0 && *lb)
        rc = mc_buf_printf(b, "%s_sum{%s} %.6f\n%s_count{%s} %llu\n", name, lb, sum, name, lb,
                           (unsigned long long)cum);
    else if (rc == 0)
        rc = mc_buf_printf(b, "%s_sum %.6f\n%s_count %llu\n", name, sum, name, (unsigned long long)cum);
    return rc;
}
