/* run.c — the load run's scheduler and accounting; see run.h. */
#include "tests/load/run.h"

#include "common/err.h"

#include <assert.h>
#include <event2/event.h>
#include <math.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MC_RUNNER_MAGIC 0x52554e52u
#define TICK_MAX_US 10000            /* housekeeping cadence when nothing is due */

typedef struct pending {
    uint32_t obj;
    uint64_t intended_us;            /* absolute, CLOCK_MONOTONIC */
} pending;

struct runner;

/* One client connection; owned by its target's array. */
typedef struct conn {
    mc_hc_conn *hc;
    struct runner *r;
    size_t target;
    pending cur;
    int busy;
} conn;

/* Per target: connections, the idle stack and (open loop) the FIFO of
 * requests that are due but have no connection yet. */
typedef struct tstate {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char hostport[300];
    conn *conns;                     /* cap entries, n used */
    size_t n, cap;
    conn **idle;
    size_t n_idle;
    pending *queue;                  /* ring of MC_RUN_QUEUE_MAX (open loop) */
    size_t qhead, qlen;
} tstate;

typedef struct runner {
    uint32_t magic;
    const mc_run_opts *o;
    mc_run_result *res;
    struct event_base *base;
    struct event *tick;
    tstate ts[MC_RUN_TARGETS_MAX];
    double cumw[MC_RUN_TARGETS_MAX];
    mc_rng trng;                     /* target choice */
    uint64_t t0, measure_start, end_us, stop_us, last_progress;
    uint64_t next_k;                 /* open loop: next request number */
    uint64_t measured_issued;
    size_t inflight, n_sent;
    int warm_done, stopping, failed;
    char path[MC_WL_PATH_MAX + 600];
    char *why;
    size_t whylen;
} runner;

static uint64_t now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}

const char *mc_run_err_name(int kind)
{
    static const char *const names[] = {"connect", "timeout", "closed", "truncated",
                                        "protocol", "dropped", "status_4xx", "status_5xx"};
    return kind >= 0 && kind < MC_RUN_ERR_COUNT ? names[kind] : "?";
}

double mc_run_hit_ratio(const mc_run_counts *c)
{
    uint64_t n = c->hits + c->misses + c->unknown;
    return n ? (double)c->hits / (double)n : 0;
}

double mc_run_byte_hit_ratio(const mc_run_counts *c)
{
    return c->bytes ? (double)c->hit_bytes / (double)c->bytes : 0;
}

uint64_t mc_run_errors(const mc_run_counts *c)
{
    uint64_t n = 0;
    for (int k = 0; k < MC_RUN_ERR_COUNT; k++)
        n += c->errors[k];
    return n;
}

int mc_run_parse_target(const char *spec, mc_run_target *t, char *why, size_t whylen)
{
    memset(t, 0, sizeof *t);
    t->weight = 1;
    const char *comma = strrchr(spec, ',');
    size_t ulen = comma ? (size_t)(comma - spec) : strlen(spec);
    if (ulen >= sizeof t->url)
        return mc_err_why(why, whylen, MC_E_INVAL, "--target: URL too long");
    memcpy(t->url, spec, ulen);
    if (comma) {
        char *end;
        t->weight = strtod(comma + 1, &end);
        if (end == comma + 1 || *end || !(t->weight > 0 && t->weight <= 1e6))
            return mc_err_why(why, whylen, MC_E_INVAL, "--target %s: weight \"%s\" is not a number > 0", t->url,
                              comma + 1);
    }
    if (mc_scrape_split_url(t->url, t->host, sizeof t->host, t->port, sizeof t->port, t->prefix,
                            sizeof t->prefix, "") < 0)
        return mc_err_why(why, whylen, MC_E_INVAL, "--target %s: not http://HOST:PORT[/PREFIX][,WEIGHT]", t->url);
    size_t pl = strlen(t->prefix);
    while (pl > 0 && t->prefix[pl - 1] == '/')
        t->prefix[--pl] = '\0';
    return 0;
}

/* ---- accounting ------------------------------------------------------------- */

static void count_into(mc_run_counts *c, const mc_hc_result *res)
{
    if (res->status > 0) {
        c->requests++;
        c->status[res->status / 100 < 6 ? res->status / 100 : 0]++;
        c->bytes += res->body_bytes;
        if (res->cache == MC_HC_HIT) {
            c->hits++;
            c->hit_bytes += res->body_bytes;
        } else if (res->cache == MC_HC_MISS) {
            c->misses++;
        } else {
            c->unknown++;
        }
        if (res->status >= 400)
            c->errors[res->status >= 500 ? MC_RUN_ERR_STATUS_5XX : MC_RUN_ERR_STATUS_4XX]++;
    }
    static const int map[MC_HC_ERROR_COUNT] = {
        [MC_HC_CONNECT] = MC_RUN_ERR_CONNECT, [MC_HC_TIMEOUT] = MC_RUN_ERR_TIMEOUT,
        [MC_HC_CLOSED] = MC_RUN_ERR_CLOSED, [MC_HC_TRUNCATED] = MC_RUN_ERR_TRUNCATED,
        [MC_HC_PROTOCOL] = MC_RUN_ERR_PROTOCOL,
    };
    if (res->error != MC_HC_OK)
        c->errors[map[res->error]]++;
}

static mc_run_second *second_at(runner *r, uint64_t now)
{
    mc_run_result *res = r->res;
    size_t s = (size_t)((now - r->measure_start) / 1000000u);
    while (res->n_series <= s) {
        if (res->n_series == res->cap_series) {
            size_t cap = res->cap_series ? res->cap_series * 2 : 64;
            mc_run_second *p = realloc(res->series, cap * sizeof *p);
            if (p == NULL)
                return NULL;   /* the series is a chart: losing it is not worth failing the run */
            res->series = p;
            res->cap_series = cap;
        }
        memset(&res->series[res->n_series++], 0, sizeof *res->series);
    }
    return &res->series[s];
}

static void record(runner *r, size_t t, const pending *p, const mc_hc_result *res, uint64_t now)
{
    if (p->intended_us < r->measure_start || !r->warm_done)
        return;                                        /* warm-up */
    mc_run_target_result *tr = &r->res->targets[t];
    count_into(&tr->counts, res);
    count_into(&r->res->total, res);
    if (res->error == MC_HC_OK) {
        uint64_t lat = now > p->intended_us ? now - p->intended_us : 0;
        mc_histo_us_record(&tr->latency, lat);
        mc_histo_us_record(&r->res->latency, lat);
    }
    mc_run_second *s = second_at(r, now);
    if (s) {
        s->requests += res->status > 0;
        s->hits += res->cache == MC_HC_HIT;
        s->bytes += res->body_bytes;
        s->errors += res->error != MC_HC_OK || res->status >= 400;
    }
}

static void record_dropped(runner *r, size_t t, const pending *p)
{
    if (p->intended_us < r->measure_start || !r->warm_done)
        return;
    r->res->targets[t].counts.errors[MC_RUN_ERR_DROPPED]++;
    r->res->total.errors[MC_RUN_ERR_DROPPED]++;
}

/* ---- sending ---------------------------------------------------------------- */

static void on_done(mc_hc_conn *hc, const mc_hc_result *res, void *arg);
static void end_warmup(runner *r, uint64_t now);

static conn *new_conn(runner *r, size_t t)
{
    tstate *ts = &r->ts[t];
    if (ts->n == ts->cap)
        return NULL;
    conn *c = &ts->conns[ts->n];
    c->hc = mc_hc_new(r->base, (struct sockaddr *)&ts->addr, ts->addrlen, ts->hostport, r->o->timeout_ms, on_done, c);
    if (c->hc == NULL)
        return NULL;
    c->r = r;
    c->target = t;
    ts->n++;
    return c;
}

/* Appends p's object to its target's sent sequence (record_sent). */
static void record_sent(runner *r, size_t t, const pending *p)
{
    mc_run_target_result *tr = &r->res->targets[t];
    if (tr->sent_overflow)
        return;
    if (r->n_sent >= MC_RUN_SENT_MAX) {
        for (size_t k = 0; k < r->o->n_targets; k++)
            r->res->targets[k].sent_overflow = 1;
        return;
    }
    if (tr->n_sent == tr->cap_sent) {
        size_t cap = tr->cap_sent ? tr->cap_sent * 2 : 4096;
        uint32_t *a = realloc(tr->sent, cap * sizeof *a);
        if (a == NULL) {
            tr->sent_overflow = 1;   /* the optimum is a comparison: not worth failing the run */
            return;
        }
        tr->sent = a;
        tr->cap_sent = cap;
    }
    tr->sent[tr->n_sent++] = p->obj;
    tr->sent_warmup += p->intended_us < r->measure_start;
    r->n_sent++;
}

static void send_on(runner *r, conn *c, const pending *p)
{
    const mc_run_target *tg = &r->o->targets[c->target];
    const char *obj = r->o->objs->paths[p->obj];
    size_t pl = strlen(tg->prefix), ol = strlen(obj);
    if (pl + ol < sizeof r->path) {   /* snprintf's format parsing showed in a profile at 4 KiB */
        memcpy(r->path, tg->prefix, pl);
        memcpy(r->path + pl, obj, ol + 1);
    } else {
        snprintf(r->path, sizeof r->path, "%s%s", tg->prefix, obj);
    }
    c->cur = *p;
    c->busy = 1;
    r->inflight++;
    if (mc_hc_get(c->hc, r->path) < 0) {
        mc_hc_result res = {.error = MC_HC_CONNECT};
        r->inflight--;
        c->busy = 0;
        record(r, c->target, p, &res, now_us());
        r->ts[c->target].idle[r->ts[c->target].n_idle++] = c;
    } else if (r->o->record_sent) {
        record_sent(r, c->target, p);
    }
}

/* Open loop: a due request goes to an idle or new connection, or waits. */
static void dispatch(runner *r, size_t t, const pending *p)
{
    tstate *ts = &r->ts[t];
    conn *c = ts->n_idle ? ts->idle[--ts->n_idle] : new_conn(r, t);
    if (c) {
        send_on(r, c, p);
    } else if (ts->qlen < MC_RUN_QUEUE_MAX) {
        ts->queue[(ts->qhead + ts->qlen++) % MC_RUN_QUEUE_MAX] = *p;
    } else {
        record_dropped(r, t, p);
    }
}

static size_t pick_target(runner *r)
{
    size_t n = r->o->n_targets;
    if (n == 1)
        return 0;
    double u = mc_rng_unit(&r->trng) * r->cumw[n - 1];
    for (size_t t = 0; t < n; t++)
        if (u < r->cumw[t])
            return t;
    return n - 1;
}

/* The next request, or 0 when the run has issued all it should. */
static int next_request(runner *r, uint64_t intended, pending *p)
{
    if (r->stopping || intended >= r->end_us ||
        (r->o->requests && r->measured_issued >= r->o->requests)) {
        if (!r->stopping)
            r->stop_us = now_us();
        r->stopping = 1;
        return 0;
    }
    if (!r->warm_done && intended >= r->measure_start)
        end_warmup(r, now_us());   /* the "before" scrape precedes every measured request */
    p->intended_us = intended;
    p->obj = mc_wl_next(r->o->wl, intended - r->t0);
    if (intended >= r->measure_start)
        r->measured_issued++;
    return 1;
}

static void on_done(mc_hc_conn *hc, const mc_hc_result *res, void *arg)
{
    conn *c = arg;
    runner *r = c->r;
    assert(r->magic == MC_RUNNER_MAGIC && c->busy);
    uint64_t now = now_us();
    c->busy = 0;
    r->inflight--;
    record(r, c->target, &c->cur, res, now);
    if (r->o->observed_sizes && res->status == 200 && res->error == MC_HC_OK)
        r->o->observed_sizes[c->cur.obj] = res->body_bytes;
    tstate *ts = &r->ts[c->target];
    pending p;
    if (r->o->rate_per_s > 0 && ts->qlen > 0) {
        p = ts->queue[ts->qhead];
        ts->qhead = (ts->qhead + 1) % MC_RUN_QUEUE_MAX;
        ts->qlen--;
        send_on(r, c, &p);
    } else if (r->o->rate_per_s == 0 && next_request(r, now, &p)) {
        send_on(r, c, &p);
    } else {
        ts->idle[ts->n_idle++] = c;
    }
    if (r->stopping && r->inflight == 0)
        event_base_loopbreak(r->base);
}

/* ---- the clock -------------------------------------------------------------- */

static void scrape_all(runner *r, int after)
{
    for (size_t t = 0; t < r->o->n_targets; t++) {
        const char *url = r->o->targets[t].metrics_url;
        if (url == NULL || r->failed)
            continue;
        mc_run_target_result *tr = &r->res->targets[t];
        if (mc_scrape_url(url, 5000, after ? &tr->after : &tr->before, r->why, r->whylen) < 0)
            r->failed = 1;
        tr->have_metrics = after;
    }
}

static void end_warmup(runner *r, uint64_t now)
{
    r->warm_done = 1;
    scrape_all(r, 0);
    if (r->failed)
        event_base_loopbreak(r->base);
}

static void show_progress(runner *r, uint64_t now)
{
    const mc_run_counts *c = &r->res->total;
    double el = (double)(now - (r->warm_done ? r->measure_start : r->t0)) / 1e6;
    fprintf(stderr, "\r\033[K%s %5.0fs  %8.0f req/s  %7.1f MB/s  hit %5.1f%%  p99 %7.2f ms  errors %llu  inflight %zu",
            r->warm_done ? "run" : "warm-up", el, r->warm_done && el > 0 ? (double)c->requests / el : 0,
            r->warm_done && el > 0 ? (double)c->bytes / el / 1e6 : 0, 100 * mc_run_hit_ratio(c),
            (double)mc_histo_us_percentile(&r->res->latency, 99) / 1000, (unsigned long long)mc_run_errors(c),
            r->inflight);
    r->last_progress = now;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    runner *r = arg;
    uint64_t now = now_us();
    if (!r->warm_done && now >= r->measure_start)
        end_warmup(r, now);
    uint64_t wait = TICK_MAX_US;
    if (r->o->rate_per_s > 0 && !r->stopping) {
        pending p;
        for (;;) {
            uint64_t due = r->t0 + (uint64_t)llround((double)r->next_k * 1e6 / r->o->rate_per_s);
            if (due > now) {
                wait = due - now < wait ? due - now : wait;
                break;
            }
            if (!next_request(r, due, &p))
                break;
            r->next_k++;
            dispatch(r, pick_target(r), &p);
        }
    } else if (r->o->rate_per_s == 0 && !r->stopping && now >= r->end_us) {
        r->stopping = 1;
        r->stop_us = now;
    }
    if (r->o->progress && now - r->last_progress >= 1000000)
        show_progress(r, now);
    if (r->stopping && (r->inflight == 0 || now > r->stop_us + (uint64_t)r->o->timeout_ms * 1000 + 1000000)) {
        event_base_loopbreak(r->base);
        return;
    }
    struct timeval tv = {0, (suseconds_t)wait};
    evtimer_add(r->tick, &tv);
}

/* ---- set-up and tear-down ---------------------------------------------------- */

static int resolve(runner *r, size_t t)
{
    const mc_run_target *tg = &r->o->targets[t];
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
    int rc = getaddrinfo(tg->host, tg->port, &hints, &ai);
    if (rc != 0)
        return mc_err_why(r->why, r->whylen, MC_E_INVAL, "--target %s: %s", tg->url, gai_strerror(rc));
    tstate *ts = &r->ts[t];
    memcpy(&ts->addr, ai->ai_addr, ai->ai_addrlen);
    ts->addrlen = ai->ai_addrlen;
    snprintf(ts->hostport, sizeof ts->hostport, strchr(tg->host, ':') ? "[%s]:%s" : "%s:%s", tg->host, tg->port);
    freeaddrinfo(ai);
    return 0;
}

/* Closed loop: connection i serves the target whose cumulative weight
 * covers (i + 0.5) / N, so N connections split by weight. */
static unsigned conns_for(const mc_run_opts *o, const double *cumw, size_t t)
{
    if (o->rate_per_s > 0)
        return o->connections;
    unsigned n = 0;
    for (unsigned i = 0; i < o->connections; i++) {
        double u = (i + 0.5) / o->connections * cumw[o->n_targets - 1];
        size_t k = 0;
        while (k + 1 < o->n_targets && u >= cumw[k])
            k++;
        n += k == t;
    }
    return n;
}

static int runner_init(runner *r, const mc_run_opts *o, mc_run_result *out, char *why, size_t whylen)
{
    memset(r, 0, sizeof *r);
    r->magic = MC_RUNNER_MAGIC;
    r->o = o;
    r->res = out;
    r->why = why;
    r->whylen = whylen;
    mc_rng_seed(&r->trng, 0x6c6f6164u, 9);
    r->base = event_base_new();
    r->tick = r->base ? evtimer_new(r->base, on_tick, r) : NULL;
    if (r->tick == NULL)
        return mc_err_why(why, whylen, MC_E_NOMEM, "event loop: out of memory");
    double sum = 0;
    for (size_t t = 0; t < o->n_targets; t++)
        r->cumw[t] = sum += o->targets[t].weight;
    for (size_t t = 0; t < o->n_targets; t++) {
        int rc = resolve(r, t);
        if (rc < 0)
            return rc;
        tstate *ts = &r->ts[t];
        ts->cap = conns_for(o, r->cumw, t);
        ts->conns = calloc(ts->cap ? ts->cap : 1, sizeof *ts->conns);
        ts->idle = calloc(ts->cap ? ts->cap : 1, sizeof *ts->idle);
        ts->queue = o->rate_per_s > 0 ? malloc(MC_RUN_QUEUE_MAX * sizeof *ts->queue) : NULL;
        if (!ts->conns || !ts->idle || (o->rate_per_s > 0 && !ts->queue))
            return mc_err_why(why, whylen, MC_E_NOMEM, "out of memory for connections");
        mc_histo_us_init(&out->targets[t].latency);
    }
    return 0;
}

static void runner_free(runner *r)
{
    for (size_t t = 0; t < MC_RUN_TARGETS_MAX; t++) {
        tstate *ts = &r->ts[t];
        for (size_t i = 0; i < ts->n; i++)
            mc_hc_free(ts->conns[i].hc);
        free(ts->conns);
        free(ts->idle);
        free(ts->queue);
    }
    if (r->tick)
        event_free(r->tick);
    if (r->base)
        event_base_free(r->base);
    r->magic = 0;
}

/* Closed loop: every connection sends its first request. */
static void start_closed(runner *r)
{
    for (size_t t = 0; t < r->o->n_targets; t++)
        for (size_t i = 0; i < r->ts[t].cap; i++) {
            conn *c = new_conn(r, t);
            pending p;
            if (c == NULL || !next_request(r, now_us(), &p))
                return;
            send_on(r, c, &p);
        }
}

void mc_run_result_free(mc_run_result *res)
{
    for (size_t t = 0; t < MC_RUN_TARGETS_MAX; t++) {
        free(res->targets[t].sent);
        res->targets[t].sent = NULL;
        res->targets[t].n_sent = res->targets[t].cap_sent = 0;
    }
    free(res->series);
    res->series = NULL;
    res->n_series = res->cap_series = 0;
}

int mc_run_execute(const mc_run_opts *o, mc_run_result *out, char *why, size_t whylen)
{
    memset(out, 0, sizeof *out);
    mc_histo_us_init(&out->latency);
    if (o->n_targets == 0 || o->n_targets > MC_RUN_TARGETS_MAX || o->connections == 0 ||
        (o->duration_us == 0 && o->requests == 0))
        return mc_err_why(why, whylen, MC_E_INVAL, "run: needs targets, connections and a duration or count");
    runner *r = calloc(1, sizeof *r);
    if (r == NULL)
        return MC_E_NOMEM;
    int rc = runner_init(r, o, out, why, whylen);
    if (rc == 0 && o->warmup_us == 0)
        scrape_all(r, 0);
    if (rc == 0 && !r->failed) {
        r->t0 = now_us();
        r->measure_start = r->t0 + o->warmup_us;
        r->warm_done = o->warmup_us == 0;
        r->end_us = o->duration_us ? r->measure_start + o->duration_us : UINT64_MAX;
        r->last_progress = r->t0;
        if (o->rate_per_s == 0)
            start_closed(r);
        struct timeval tv = {0, 0};
        evtimer_add(r->tick, &tv);
        event_base_dispatch(r->base);
        uint64_t end = now_us();
        out->measured_s = end > r->measure_start ? (double)(end - r->measure_start) / 1e6 : 0;
        if (o->progress) {
            show_progress(r, end);
            fputc('\n', stderr);
        }
        usleep(100000);   /* the edge counts a response after queueing its last byte */
        scrape_all(r, 1);
    }
    if (rc == 0 && r->failed)
        rc = MC_E_IO;
    runner_free(r);
    free(r);
    return rc;
}
