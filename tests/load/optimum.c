/* optimum.c — the simulated optimum next to a run; see optimum.h. */
#include "tests/load/optimum.h"

#include "common/err.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

const mc_sim_policy mc_optimum_policies[MC_OPTIMUM_N] = {MC_SIM_BELADY, MC_SIM_S3FIFO, MC_SIM_SIEVE, MC_SIM_LRU};

const char *mc_optimum_policy_label(int i)
{
    static const char *const labels[MC_OPTIMUM_N] = {"Belady", "S3-FIFO", "SIEVE", "LRU"};
    return i >= 0 && i < MC_OPTIMUM_N ? labels[i] : "?";
}

uint64_t mc_optimum_effective_size(uint64_t store_size)
{
    return store_size / 100 * MC_OPTIMUM_EVICT_PERCENT;   /* the edge's high watermark, same rounding */
}

int mc_optimum_simulate(const uint64_t *sizes, size_t n_objects, const uint32_t *seq, size_t n, size_t warmup,
                    uint64_t capacity, mc_optimum_size *out)
{
    memset(out, 0, sizeof *out);
    out->cache_size = capacity;
    mc_sim_input in = {.n_objects = n_objects, .sizes = sizes, .n_requests = n, .ids = seq,
                       .capacity = capacity, .warmup = warmup};
    for (int i = 0; i < MC_OPTIMUM_N; i++) {
        int rc = mc_sim_run(&in, mc_optimum_policies[i], &out->res[i]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static void add_size(mc_optimum_size *sum, const mc_optimum_size *s)
{
    sum->cache_size = sum->cache_size == s->cache_size || sum->res[0].requests == 0 ? s->cache_size : 0;
    for (int i = 0; i < MC_OPTIMUM_N; i++) {
        sum->res[i].requests += s->res[i].requests;
        sum->res[i].hits += s->res[i].hits;
        sum->res[i].bytes += s->res[i].bytes;
        sum->res[i].hit_bytes += s->res[i].hit_bytes;
        sum->res[i].evictions += s->res[i].evictions;
    }
}

static int one_target(const mc_run_opts *o, const mc_run_result *r, size_t t, const uint64_t *sizes,
                      size_t n_objects, uint64_t user_size, mc_optimum_target *ot)
{
    const mc_run_target_result *tr = &r->targets[t];
    const char *url = strstr(o->targets[t].url, "://");   /* no scheme: the HTML report links to nothing */
    url = url ? url + 3 : o->targets[t].url;
    if (tr->have_metrics)
        ot->store_size = (uint64_t)tr->after.store_size;
    uint64_t cap = user_size;
    if (cap == 0) {
        if (!tr->have_metrics) {
            snprintf(ot->why, sizeof ot->why,
                     "%s: no cache size (give --cache-size SIZE, or --metrics URL to read the edge's store size)", url);
            return 0;
        }
        if (ot->store_size == 0) {
            snprintf(ot->why, sizeof ot->why, "%s: its /metrics has no meshcdn_edge_store_size_bytes", url);
            return 0;
        }
        cap = mc_optimum_effective_size(ot->store_size);
        ot->from_metrics = 1;
    }
    if (tr->sent_overflow) {
        snprintf(ot->why, sizeof ot->why, "more than %u requests sent: not recorded (use `simulate`)",
                 MC_RUN_SENT_MAX);
        return 0;
    }
    if (tr->n_sent <= tr->sent_warmup) {
        snprintf(ot->why, sizeof ot->why, "%s: no measured request was sent", url);
        ot->empty = 1;
        return 0;
    }
    for (size_t k = 0; k < tr->n_sent; k++)
        if (sizes[tr->sent[k]] == 0) {
            snprintf(ot->why, sizeof ot->why, "%.120s: size unknown (a trace line without SIZE, never answered 200)",
                     o->objs->paths[tr->sent[k]]);
            return 0;
        }
    ot->requests = tr->n_sent;
    ot->warmup = tr->sent_warmup;
    int rc = mc_optimum_simulate(sizes, n_objects, tr->sent, tr->n_sent, tr->sent_warmup, cap, &ot->at);
    if (rc == 0 && ot->from_metrics && ot->store_size != cap) {
        ot->have_full = 1;
        rc = mc_optimum_simulate(sizes, n_objects, tr->sent, tr->n_sent, tr->sent_warmup, ot->store_size, &ot->full);
    }
    if (rc < 0) {
        snprintf(ot->why, sizeof ot->why, "simulation: %s", mc_err_name(rc));
        return rc == MC_E_NOMEM ? rc : 0;
    }
    ot->done = 1;
    return 0;
}

int mc_optimum_compute(const mc_run_opts *o, const mc_run_result *r, const uint64_t *sizes, size_t n_objects,
                   uint64_t user_size, mc_optimum_report *out)
{
    memset(out, 0, sizeof *out);
    mc_optimum_target *tot = &out->total;
    tot->done = 1;
    tot->from_metrics = 1;
    tot->have_full = 1;
    size_t n_done = 0;
    for (size_t t = 0; t < o->n_targets; t++) {
        mc_optimum_target *ot = &out->targets[t];
        int rc = one_target(o, r, t, sizes, n_objects, user_size, ot);
        if (rc < 0)
            return rc;
        if (ot->empty)
            continue;   /* nothing to count there: it adds nothing to the sum */
        if (!ot->done) {
            if (tot->done)
                memcpy(tot->why, ot->why, sizeof tot->why);
            tot->done = 0;
            continue;
        }
        tot->from_metrics &= ot->from_metrics;
        tot->have_full &= ot->have_full;
        tot->store_size = n_done == 0 || tot->store_size == ot->store_size ? ot->store_size : 0;
        tot->requests += ot->requests;
        tot->warmup += ot->warmup;
        add_size(&tot->at, &ot->at);
        if (ot->have_full)
            add_size(&tot->full, &ot->full);
        n_done++;
    }
    if (tot->done && n_done == 0) {
        tot->done = 0;
        snprintf(tot->why, sizeof tot->why, "no measured request was sent");
    }
    if (!tot->done) {
        memset(&tot->at, 0, sizeof tot->at);
        memset(&tot->full, 0, sizeof tot->full);
        tot->have_full = tot->from_metrics = 0;
    }
    return 0;
}
