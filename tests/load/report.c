/* report.c — JSON, HTML (inline SVG) and text reports of a run; see report.h. */
#include "tests/load/report.h"

#include "common/buf.h"
#include "common/err.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static const double pct_points[] = {0, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99, 99.999, 100};
#define N_PCT (sizeof pct_points / sizeof pct_points[0])

/* Edge deltas of a target; 0 when it has no metrics. */
static int edge_delta(const mc_run_target_result *t, mc_scrape *d)
{
    memset(d, 0, sizeof *d);
    if (!t->have_metrics)
        return 0;
    d->requests = t->after.requests - t->before.requests;
    d->hits = t->after.hits - t->before.hits;
    d->upstream = t->after.upstream - t->before.upstream;
    d->bytes_sent = t->after.bytes_sent - t->before.bytes_sent;
    return 1;
}

static int total_delta(const mc_run_opts *o, const mc_run_result *r, mc_scrape *sum)
{
    memset(sum, 0, sizeof *sum);
    int any = 0;
    for (size_t t = 0; t < o->n_targets; t++) {
        mc_scrape d;
        if (edge_delta(&r->targets[t], &d)) {
            any = 1;
            sum->requests += d.requests;
            sum->hits += d.hits;
            sum->upstream += d.upstream;
            sum->bytes_sent += d.bytes_sent;
        }
    }
    return any;
}

static double offload(const mc_scrape *d)
{
    return d->requests > 0 ? 1 - d->upstream / d->requests : 0;
}

/* "64 MiB", "51.2 MiB", "1 GiB": binary units, one decimal unless whole. */
static const char *size_text(uint64_t b, char *buf, size_t len)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    uint64_t div = 1;
    while (u < 4 && b >= div * 1024) {
        div *= 1024;
        u++;
    }
    if (b % div == 0)
        snprintf(buf, len, "%llu %s", (unsigned long long)(b / div), units[u]);
    else
        snprintf(buf, len, "%.1f %s", (double)b / (double)div, units[u]);
    return buf;
}

/* ---- JSON ---------------------------------------------------------------------- */

static json_t *stats_json(const mc_run_counts *c, const mc_histo_us *h, double secs, int have_edge,
                          const mc_scrape *d)
{
    json_t *status = json_object(), *errors = json_object();
    static const char *const classes[] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};
    for (int k = 0; k < 6; k++)
        if (c->status[k])
            json_object_set_new(status, classes[k], json_integer((json_int_t)c->status[k]));
    for (int k = 0; k < MC_RUN_ERR_COUNT; k++)
        json_object_set_new(errors, mc_run_err_name(k), json_integer((json_int_t)c->errors[k]));
    json_t *lat = json_pack("{s:I,s:I,s:I,s:I,s:I,s:f}", "p50", (json_int_t)mc_histo_us_percentile(h, 50), "p90",
                            (json_int_t)mc_histo_us_percentile(h, 90), "p99", (json_int_t)mc_histo_us_percentile(h, 99),
                            "p99_9", (json_int_t)mc_histo_us_percentile(h, 99.9), "max",
                            (json_int_t)mc_histo_us_percentile(h, 100), "mean", mc_histo_us_mean(h));
    json_t *edge = have_edge ? json_pack("{s:f,s:f,s:f,s:f}", "requests", d->requests, "hits", d->hits,
                                         "upstream_requests", d->upstream, "origin_offload", offload(d))
                             : json_null();
    return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:f,s:f,s:f,s:f,s:o,s:o,s:o,s:o}", "requests",
                     (json_int_t)c->requests, "hits", (json_int_t)c->hits, "misses", (json_int_t)c->misses,
                     "unknown", (json_int_t)c->unknown, "bytes", (json_int_t)c->bytes, "hit_bytes",
                     (json_int_t)c->hit_bytes, "requests_per_s", secs > 0 ? (double)c->requests / secs : 0.0,
                     "bytes_per_s", secs > 0 ? (double)c->bytes / secs : 0.0, "hit_ratio", mc_run_hit_ratio(c),
                     "byte_hit_ratio", mc_run_byte_hit_ratio(c), "status", status, "errors", errors,
                     "latency_us", lat, "edge", edge);
}

static json_t *policies_json(const mc_optimum_size *sz)
{
    json_t *pol = json_object();
    for (int i = 0; i < MC_OPTIMUM_N; i++) {
        const mc_sim_result *x = &sz->res[i];
        json_object_set_new(pol, mc_sim_policy_name(mc_optimum_policies[i]),
                            json_pack("{s:f,s:f,s:I,s:I,s:I,s:I,s:I}", "hit_ratio", mc_sim_hit_ratio(x),
                                      "byte_hit_ratio", mc_sim_byte_hit_ratio(x), "requests",
                                      (json_int_t)x->requests, "hits", (json_int_t)x->hits, "bytes",
                                      (json_int_t)x->bytes, "hit_bytes", (json_int_t)x->hit_bytes, "evictions",
                                      (json_int_t)x->evictions));
    }
    return pol;
}

static json_t *int_or_null(uint64_t v)
{
    return v ? json_integer((json_int_t)v) : json_null();
}

static json_t *optimum_json(const mc_optimum_target *ot, const mc_run_counts *c)
{
    if (!ot->done)
        return json_null();
    json_t *full = ot->have_full ? json_pack("{s:o,s:o}", "cache_size", int_or_null(ot->full.cache_size),
                                             "policies", policies_json(&ot->full))
                                 : json_null();
    return json_pack("{s:o,s:s,s:o,s:o,s:I,s:I,s:{s:f,s:f},s:o,s:o}", "cache_size", int_or_null(ot->at.cache_size),
                     "cache_size_source", ot->from_metrics ? "metrics" : "option", "store_size",
                     int_or_null(ot->store_size), "evict_percent",
                     ot->from_metrics ? json_integer(MC_OPTIMUM_EVICT_PERCENT) : json_null(), "requests",
                     (json_int_t)ot->requests, "warmup_requests", (json_int_t)ot->warmup, "measured", "hit_ratio",
                     mc_run_hit_ratio(c), "byte_hit_ratio", mc_run_byte_hit_ratio(c), "policies",
                     policies_json(&ot->at), "full_store", full);
}

static json_t *config_json(const mc_run_opts *o, const mc_report_meta *m)
{
    json_t *targets = json_array();
    for (size_t t = 0; t < o->n_targets; t++)
        json_array_append_new(targets, json_pack("{s:s,s:f,s:s?}", "url", o->targets[t].url, "weight",
                                                 o->targets[t].weight, "metrics", o->targets[t].metrics_url));
    return json_pack("{s:s,s:f,s:i,s:f,s:f,s:I,s:s,s:I,s:i,s:o}", "mode", o->rate_per_s > 0 ? "open" : "closed",
                     "rate_per_s", o->rate_per_s, "connections", (int)o->connections, "duration_s",
                     (double)o->duration_us / 1e6, "warmup_s", (double)o->warmup_us / 1e6, "requests",
                     (json_int_t)o->requests, "workload", m->workload, "seed", (json_int_t)m->seed, "timeout_ms",
                     o->timeout_ms, "targets", targets);
}

int mc_report_json(const char *file, const mc_run_opts *o, const mc_report_meta *m, const mc_run_result *r,
                   char *why, size_t whylen)
{
    mc_scrape d;
    json_t *targets = json_array(), *series = json_array(), *pcts = json_array();
    for (size_t t = 0; t < o->n_targets; t++) {
        int have = edge_delta(&r->targets[t], &d);
        json_t *s = stats_json(&r->targets[t].counts, &r->targets[t].latency, r->measured_s, have, &d);
        json_object_set_new(s, "url", json_string(o->targets[t].url));
        if (m->optimum)
            json_object_set_new(s, "optimum", optimum_json(&m->optimum->targets[t], &r->targets[t].counts));
        json_array_append_new(targets, s);
    }
    for (size_t i = 0; i < r->n_series; i++) {
        const mc_run_second *s = &r->series[i];
        json_array_append_new(series, json_pack("{s:I,s:I,s:I,s:I,s:I}", "t", (json_int_t)i, "requests",
                                                (json_int_t)s->requests, "hits", (json_int_t)s->hits, "bytes",
                                                (json_int_t)s->bytes, "errors", (json_int_t)s->errors));
    }
    for (size_t i = 0; i < N_PCT; i++)
        json_array_append_new(pcts, json_pack("[f,I]", pct_points[i],
                                              (json_int_t)mc_histo_us_percentile(&r->latency, pct_points[i])));
    int have = total_delta(o, r, &d);
    json_t *root = json_pack("{s:s,s:s,s:o,s:f,s:o,s:o,s:o,s:o}", "tool", "meshcdn-load", "version",
                             MESHCDN_VERSION, "config", config_json(o, m), "measured_s", r->measured_s, "total",
                             stats_json(&r->total, &r->latency, r->measured_s, have, &d), "targets", targets,
                             "series", series, "latency_percentiles", pcts);
    if (root == NULL)
        return mc_err_why(why, whylen, MC_E_NOMEM, "report: out of memory");
    if (m->optimum) {
        json_object_set_new(root, "optimum", optimum_json(&m->optimum->total, &r->total));
        if (!m->optimum->total.done)
            json_object_set_new(root, "optimum_note", json_string(m->optimum->total.why));
    }
    int rc = json_dump_file(root, file, JSON_INDENT(2)) == 0 ? 0
             : mc_err_why(why, whylen, MC_E_IO, "%s: cannot write the JSON report", file);
    json_decref(root);
    return rc;
}

/* ---- HTML ---------------------------------------------------------------------- */

static void html_text(mc_buf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '<')
            mc_buf_puts(b, "&lt;");
        else if (*s == '>')
            mc_buf_puts(b, "&gt;");
        else if (*s == '&')
            mc_buf_puts(b, "&amp;");
        else if (*s == '"')
            mc_buf_puts(b, "&quot;");
        else
            mc_buf_putc(b, *s);
    }
}

/* A URL without its scheme: the page links to nothing. */
static const char *no_scheme(const char *url)
{
    const char *p = strstr(url, "://");
    return p ? p + 3 : url;
}

/* A round upper bound for an axis: 1, 2 or 5 times a power of ten. */
static double nice_max(double v)
{
    if (!(v > 0))
        return 1;
    double p = pow(10, floor(log10(v)));
    return v <= p ? p : v <= 2 * p ? 2 * p : v <= 5 * p ? 5 * p : 10 * p;
}

enum { W = 720, H = 240, ML = 60, MR = 20, MT = 30, MB = 40 };

/* A line chart of (xs[i], ys[i]); x labels at xs[i] for labelled points
 * (xlabel(i) != NULL). */
static void svg_chart(mc_buf *b, const char *title, const char *ylabel, const double *xs, const double *ys,
                      size_t n, double xmax, double ymax, const char *(*xlabel)(size_t, char *, size_t))
{
    ymax = nice_max(ymax);
    xmax = xmax > 0 ? xmax : 1;
    mc_buf_printf(b, "<figure><svg width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\">"
                     "<text x=\"%d\" y=\"18\" class=\"t\">", W, H, W, H, ML);
    html_text(b, title);
    mc_buf_puts(b, "</text>");
    for (int k = 0; k <= 4; k++) {
        double y = MT + (H - MT - MB) * (1 - k / 4.0);
        mc_buf_printf(b, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" class=\"g\"/>"
                         "<text x=\"%d\" y=\"%.1f\" class=\"l\" text-anchor=\"end\">%g</text>",
                      ML, W - MR, y, y, ML - 6, y + 4, ymax * k / 4);
    }
    mc_buf_printf(b, "<text x=\"12\" y=\"%d\" class=\"l\" transform=\"rotate(-90 12 %d)\">", H / 2, H / 2);
    html_text(b, ylabel);
    mc_buf_puts(b, "</text><polyline class=\"p\" points=\"");
    char lab[32];
    for (size_t i = 0; i < n; i++)
        mc_buf_printf(b, "%.1f,%.1f ", ML + (W - ML - MR) * xs[i] / xmax,
                      MT + (H - MT - MB) * (1 - (ys[i] > ymax ? ymax : ys[i]) / ymax));
    mc_buf_puts(b, "\"/>");
    for (size_t i = 0; i < n; i++) {
        const char *l = xlabel(i, lab, sizeof lab);
        if (l)
            mc_buf_printf(b, "<text x=\"%.1f\" y=\"%d\" class=\"l\" text-anchor=\"middle\">%s</text>",
                          ML + (W - ML - MR) * xs[i] / xmax, H - MB + 16, l);
    }
    mc_buf_puts(b, "</svg></figure>\n");
}

static size_t series_step;   /* label every series_step-th second (set before drawing) */

static const char *second_label(size_t i, char *buf, size_t len)
{
    if (i % series_step != 0)
        return NULL;
    snprintf(buf, len, "%zus", i);
    return buf;
}

static const char *pct_label(size_t i, char *buf, size_t len)
{
    if (pct_points[i] == 0 || pct_points[i] == 75 || pct_points[i] == 95 || pct_points[i] == 99.5 ||
        pct_points[i] == 99.95)
        return NULL;
    snprintf(buf, len, "p%g", pct_points[i]);
    return buf;
}

static void html_series(mc_buf *b, const mc_run_result *r)
{
    size_t n = r->n_series;
    double xs[4096], hr[4096], rps[4096], ymax = 0;
    if (n > 4096)
        n = 4096;   /* the chart shows the first 68 minutes; the JSON has all */
    for (size_t i = 0; i < n; i++) {
        const mc_run_second *s = &r->series[i];
        xs[i] = (double)i;
        hr[i] = s->requests ? 100.0 * (double)s->hits / (double)s->requests : 0;
        rps[i] = (double)s->requests;
        ymax = rps[i] > ymax ? rps[i] : ymax;
    }
    series_step = n > 10 ? (n + 9) / 10 : 1;
    if (n < 2) {
        mc_buf_puts(b, "<p>Shorter than two seconds: no time series.</p>\n");
        return;
    }
    svg_chart(b, "Hit ratio per second (%)", "%", xs, hr, n, (double)(n - 1), 100, second_label);
    svg_chart(b, "Throughput per second (responses)", "req/s", xs, rps, n, (double)(n - 1), ymax, second_label);
}

static void html_latency(mc_buf *b, const mc_run_result *r)
{
    double xs[N_PCT], ys[N_PCT], ymax = 0;
    for (size_t i = 0; i < N_PCT; i++) {
        double q = pct_points[i] >= 100 ? 99.9999 : pct_points[i];
        xs[i] = -log10(1 - q / 100);        /* "nines": p90 = 1, p99 = 2, ... */
        ys[i] = (double)mc_histo_us_percentile(&r->latency, pct_points[i]) / 1000;
        ymax = ys[i] > ymax ? ys[i] : ymax;
    }
    svg_chart(b, "Latency by percentile (ms; p100 = max)", "ms", xs, ys, N_PCT, xs[N_PCT - 1], ymax, pct_label);
}

static void html_row(mc_buf *b, const char *name, const mc_run_counts *c, const mc_histo_us *h, double secs,
                     int have, const mc_scrape *d)
{
    mc_buf_puts(b, "<tr><td>");
    html_text(b, name);
    mc_buf_printf(b, "</td><td>%llu</td><td>%.0f</td><td>%.1f</td><td>%.2f%%</td><td>%.2f%%</td>",
                  (unsigned long long)c->requests, secs > 0 ? (double)c->requests / secs : 0,
                  secs > 0 ? (double)c->bytes / secs / 1e6 : 0, 100 * mc_run_hit_ratio(c),
                  100 * mc_run_byte_hit_ratio(c));
    if (have)
        mc_buf_printf(b, "<td>%.2f%%</td>", 100 * offload(d));
    else
        mc_buf_puts(b, "<td>-</td>");
    mc_buf_printf(b, "<td>%.2f</td><td>%.2f</td><td>%.2f</td><td>%.2f</td><td>%.2f</td><td>%llu</td></tr>\n",
                  mc_histo_us_percentile(h, 50) / 1e3, mc_histo_us_percentile(h, 90) / 1e3,
                  mc_histo_us_percentile(h, 99) / 1e3, mc_histo_us_percentile(h, 99.9) / 1e3,
                  mc_histo_us_percentile(h, 100) / 1e3, (unsigned long long)mc_run_errors(c));
}

static void html_tables(mc_buf *b, const mc_run_opts *o, const mc_run_result *r)
{
    mc_buf_puts(b, "<table><tr><th>target</th><th>requests</th><th>req/s</th><th>MB/s</th><th>hit ratio</th>"
                   "<th>byte hit ratio</th><th>origin offload</th><th>p50 ms</th><th>p90 ms</th><th>p99 ms</th>"
                   "<th>p99.9 ms</th><th>max ms</th><th>errors</th></tr>\n");
    mc_scrape d;
    for (size_t t = 0; t < o->n_targets; t++) {
        int have = edge_delta(&r->targets[t], &d);
        html_row(b, no_scheme(o->targets[t].url), &r->targets[t].counts, &r->targets[t].latency, r->measured_s,
                 have, &d);
    }
    int have = total_delta(o, r, &d);
    html_row(b, "all", &r->total, &r->latency, r->measured_s, have, &d);
    mc_buf_puts(b, "</table>\n<table><tr><th>error</th><th>count</th></tr>\n");
    for (int k = 0; k < MC_RUN_ERR_COUNT; k++)
        mc_buf_printf(b, "<tr><td>%s</td><td>%llu</td></tr>\n", mc_run_err_name(k),
                      (unsigned long long)r->total.errors[k]);
    mc_buf_puts(b, "</table>\n");
}

static void html_opt_row(mc_buf *b, const char *name, const char *cache, const char *what, double measured,
                         const mc_optimum_size *sz, int bytes)
{
    mc_buf_puts(b, "<tr><td>");
    html_text(b, name);
    mc_buf_printf(b, "</td><td>%s</td><td>%s</td>", cache, what);
    if (measured >= 0)
        mc_buf_printf(b, "<td>%.2f%%</td>", 100 * measured);
    else
        mc_buf_puts(b, "<td>-</td>");
    for (int i = 0; i < MC_OPTIMUM_N; i++)
        mc_buf_printf(b, "<td>%.2f%%</td>",
                      100 * (bytes ? mc_sim_byte_hit_ratio(&sz->res[i]) : mc_sim_hit_ratio(&sz->res[i])));
    mc_buf_puts(b, "</tr>\n");
}

static void html_opt_target(mc_buf *b, const char *name, const mc_optimum_target *ot, const mc_run_counts *c)
{
    char cache[32], full[32];
    if (!ot->done) {
        mc_buf_puts(b, "<tr><td>");
        html_text(b, name);
        mc_buf_printf(b, "</td><td colspan=\"%d\">not simulated: ", 3 + MC_OPTIMUM_N);
        html_text(b, ot->why);
        mc_buf_puts(b, "</td></tr>\n");
        return;
    }
    if (ot->at.cache_size)
        size_text(ot->at.cache_size, cache, sizeof cache);
    else
        snprintf(cache, sizeof cache, "per target");
    html_opt_row(b, name, cache, "hit ratio", mc_run_hit_ratio(c), &ot->at, 0);
    html_opt_row(b, name, cache, "byte hit ratio", mc_run_byte_hit_ratio(c), &ot->at, 1);
    if (ot->have_full) {
        if (ot->full.cache_size)
            size_text(ot->full.cache_size, full, sizeof full);
        else
            snprintf(full, sizeof full, "per target");
        html_opt_row(b, name, full, "hit ratio (whole store)", -1, &ot->full, 0);
    }
}

static void html_optimum(mc_buf *b, const mc_run_opts *o, const mc_optimum_report *opt, const mc_run_result *r)
{
    mc_buf_printf(b, "<p>Against the optimum: the requests sent to each target (%llu, of which %llu warm-up, "
                     "replayed but not counted) simulated from an empty cache of the same size. Belady is the "
                     "offline furthest-next-use reference; the edge evicts with SIEVE above %d%% of its store "
                     "size, which is the size compared when it comes from /metrics. Requests that joined an "
                     "in-flight fill are misses for the edge and hits here.</p>\n",
                  (unsigned long long)opt->total.requests, (unsigned long long)opt->total.warmup,
                  MC_OPTIMUM_EVICT_PERCENT);
    mc_buf_puts(b, "<table><tr><th>target</th><th>cache</th><th></th><th>measured</th>");
    for (int i = 0; i < MC_OPTIMUM_N; i++)
        mc_buf_printf(b, "<th>%s</th>", mc_optimum_policy_label(i));
    mc_buf_puts(b, "</tr>\n");
    if (o->n_targets > 1)
        for (size_t t = 0; t < o->n_targets; t++)
            html_opt_target(b, no_scheme(o->targets[t].url), &opt->targets[t], &r->targets[t].counts);
    html_opt_target(b, "all", &opt->total, &r->total);
    mc_buf_puts(b, "</table>\n");
}

int mc_report_html(const char *file, const mc_run_opts *o, const mc_report_meta *m, const mc_run_result *r,
                   char *why, size_t whylen)
{
    mc_buf b = MC_BUF_INIT;
    mc_buf_puts(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>meshcdn-load report"
                    "</title><style>body{font:14px sans-serif;margin:2em;color:#222}table{border-collapse:collapse;"
                    "margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
                    "td:first-child{text-align:left}.g{stroke:#ddd}.p{fill:none;stroke:#1f6fb2;stroke-width:2}"
                    ".t{font:bold 14px sans-serif}.l{font:11px sans-serif;fill:#555}figure{margin:1em 0}"
                    "</style></head><body>\n<h1>meshcdn-load report</h1>\n<p>");
    mc_buf_printf(&b, "%s loop, ", o->rate_per_s > 0 ? "open" : "closed");
    if (o->rate_per_s > 0)
        mc_buf_printf(&b, "%.0f requests/s intended, up to %u connections per target, ", o->rate_per_s,
                      o->connections);
    else
        mc_buf_printf(&b, "%u connections, ", o->connections);
    mc_buf_printf(&b, "%.1f s measured after %.1f s warm-up; workload ", r->measured_s, (double)o->warmup_us / 1e6);
    html_text(&b, m->workload);
    mc_buf_printf(&b, ", seed %llu. Latency is measured from the %s send time.</p>\n", (unsigned long long)m->seed,
                  o->rate_per_s > 0 ? "intended" : "actual");
    html_tables(&b, o, r);
    if (m->optimum)
        html_optimum(&b, o, m->optimum, r);
    html_series(&b, r);
    html_latency(&b, r);
    mc_buf_puts(&b, "</body></html>\n");
    FILE *f = fopen(file, "w");
    int rc = 0;
    if (f == NULL || fwrite(b.data, 1, b.len, f) != b.len)
        rc = mc_err_why(why, whylen, MC_E_IO, "%s: cannot write the HTML report", file);
    if (f && fclose(f) != 0 && rc == 0)
        rc = mc_err_why(why, whylen, MC_E_IO, "%s: cannot write the HTML report", file);
    mc_buf_free(&b);
    return rc;
}

/* ---- text ---------------------------------------------------------------------- */

static void text_policies(FILE *f, const mc_optimum_size *sz, int bytes)
{
    char cache[32];
    if (sz->cache_size)
        fprintf(f, "(same sequence, %s cache: ", size_text(sz->cache_size, cache, sizeof cache));
    else
        fputs("(same sequence, each target's cache: ", f);
    for (int i = 0; i < MC_OPTIMUM_N; i++)
        fprintf(f, "%s%s %.2f%%", i ? ", " : "", mc_optimum_policy_label(i),
                100 * (bytes ? mc_sim_byte_hit_ratio(&sz->res[i]) : mc_sim_hit_ratio(&sz->res[i])));
    fputs(")\n", f);
}

static void text_optimum(FILE *f, const mc_run_opts *o, const mc_optimum_report *opt, const mc_run_result *r)
{
    const mc_optimum_target *tot = &opt->total;
    if (!tot->done) {
        fprintf(f, "optimum: not simulated: %s\n", tot->why);
        return;
    }
    fprintf(f, "optimum: the %llu requests sent (%llu of them warm-up, not counted) replayed from an empty cache\n",
            (unsigned long long)tot->requests, (unsigned long long)tot->warmup);
    fprintf(f, "  hit ratio       %6.2f%%  ", 100 * mc_run_hit_ratio(&r->total));
    text_policies(f, &tot->at, 0);
    fprintf(f, "  byte hit ratio  %6.2f%%  ", 100 * mc_run_byte_hit_ratio(&r->total));
    text_policies(f, &tot->at, 1);
    if (o->n_targets > 1)
        for (size_t t = 0; t < o->n_targets; t++) {
            fprintf(f, "  %s: hit ratio %.2f%%  ", no_scheme(o->targets[t].url),
                    100 * mc_run_hit_ratio(&r->targets[t].counts));
            if (opt->targets[t].done)
                text_policies(f, &opt->targets[t].at, 0);
            else
                fprintf(f, "(not simulated: %s)\n", opt->targets[t].why);
        }
    char a[32], b[32];
    if (tot->from_metrics && tot->store_size && tot->at.cache_size) {
        fprintf(f, "  %s is %d%% of the edge's %s store: it evicts above that; at the whole %s: hit ratio ",
                size_text(tot->at.cache_size, a, sizeof a), MC_OPTIMUM_EVICT_PERCENT,
                size_text(tot->store_size, b, sizeof b), b);
        for (int i = 0; i < MC_OPTIMUM_N; i++)
            fprintf(f, "%s%s %.2f%%", i ? ", " : "", mc_optimum_policy_label(i),
                    100 * mc_sim_hit_ratio(&tot->full.res[i]));
        fputc('\n', f);
    } else if (tot->from_metrics) {
        fprintf(f, "  cache sizes: %d%% of each edge's store (it evicts above that)\n", MC_OPTIMUM_EVICT_PERCENT);
    }
    if (mc_run_hit_ratio(&r->total) > mc_sim_hit_ratio(&tot->at.res[0]) + 0.005)
        fputs("  note: measured above Belady: the edge likely held objects from before the run (the simulation "
              "starts empty; a --warmup helps)\n", f);
}

void mc_report_text(FILE *f, const mc_run_opts *o, const mc_report_meta *m, const mc_run_result *r)
{
    const mc_run_counts *c = &r->total;
    double s = r->measured_s;
    fprintf(f, "requests %llu in %.1f s: %.0f req/s, %.1f MB/s; hit ratio %.2f%%, byte hit ratio %.2f%%\n",
            (unsigned long long)c->requests, s, s > 0 ? (double)c->requests / s : 0,
            s > 0 ? (double)c->bytes / s / 1e6 : 0, 100 * mc_run_hit_ratio(c), 100 * mc_run_byte_hit_ratio(c));
    fprintf(f, "latency ms: p50 %.2f  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f\n",
            mc_histo_us_percentile(&r->latency, 50) / 1e3, mc_histo_us_percentile(&r->latency, 90) / 1e3,
            mc_histo_us_percentile(&r->latency, 99) / 1e3, mc_histo_us_percentile(&r->latency, 99.9) / 1e3,
            mc_histo_us_percentile(&r->latency, 100) / 1e3);
    fprintf(f, "errors:");
    for (int k = 0; k < MC_RUN_ERR_COUNT; k++)
        fprintf(f, " %s %llu", mc_run_err_name(k), (unsigned long long)c->errors[k]);
    fputc('\n', f);
    mc_scrape d;
    if (total_delta(o, r, &d))
        fprintf(f, "edge: requests %.0f, hits %.0f, upstream requests %.0f, origin offload %.2f%%\n", d.requests,
                d.hits, d.upstream, 100 * offload(&d));
    if (m->optimum)
        text_optimum(f, o, m->optimum, r);
}
