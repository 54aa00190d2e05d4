/* tier.c — see tier.h. */
#include <assert.h>
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>
#include "common/log.h"
#include "common/metrics.h"
#include "edge/tier.h"

typedef struct parent_state {
    _Atomic int fails;                 /* consecutive failures */
    _Atomic int64_t eject_until_ms;    /* CLOCK_MONOTONIC ms; 0: not ejected */
    _Atomic int64_t backoff_ms;        /* the next ejection's length; 0: never ejected */
    _Atomic int down;                  /* the last active check failed */
    _Atomic uint64_t requests[601];    /* [code]; 0 = no response */
} parent_state;

/* A parent's slot: name and URL written by the main thread (bind) only. */
typedef struct slot {
    char name[64];
    char base[512];
    uint64_t bound;                    /* the last binding that used it */
    parent_state st;
} slot;

/* What the check thread checks: copied from a snapshot under g_mu. */
typedef struct check_item {
    int slot;
    char name[64];
    char url[512];
} check_item;

typedef struct check_plan {
    check_item parents[MC_MAX_PARENTS];
    int nparents;
    char origin_url[2][1100];          /* "" = none */
    char ca_file[1024], ca_dir[1024];  /* HTTPS origins: verified as fetches are */
    int insecure;
    int64_t interval_ms;
} check_plan;

static slot g_slots[MC_TIER_SLOTS];
static uint64_t g_bind_gen;
static _Atomic uint64_t g_secondary[601];
static _Atomic int g_origin_fails[2];        /* consecutive failures: primary, secondary */
static _Atomic int g_origin_threshold = 3;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static check_plan g_plan;                    /* guarded by g_mu */
static int g_stopping, g_thread_running;
static pthread_t g_thread;

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

uint64_t mc_tier_score(const char *key, size_t keylen, const char *name)
{
    char small[1024];
    size_t nl = strlen(name), n = keylen + 1 + nl;
    char *p = n <= sizeof small ? small : malloc(n);
    if (!p)   /* out of memory: still a stable (if weaker) order */
        return XXH3_64bits_withSeed(key, keylen, XXH3_64bits(name, nl));
    memcpy(p, key, keylen);
    p[keylen] = '\n';
    memcpy(p + keylen + 1, name, nl);
    uint64_t h = XXH3_64bits(p, n);
    if (p != small)
        free(p);
    return h;
}

void mc_tier_rank(const mc_edge_config *cfg, const char *key, size_t keylen, int order[MC_MAX_PARENTS])
{
    uint64_t score[MC_MAX_PARENTS];
    int n = cfg->nparents;
    for (int i = 0; i < n; i++) {
        score[i] = mc_tier_score(key, keylen, cfg->parents[i].name);
        int j = i;   /* insertion sort, descending; ties by index */
        while (j > 0 && score[order[j - 1]] < score[i]) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
}

static void state_reset(parent_state *p, int counters)
{
    atomic_store(&p->fails, 0);
    atomic_store(&p->eject_until_ms, 0);
    atomic_store(&p->backoff_ms, 0);
    atomic_store(&p->down, 0);
    for (int c = 0; counters && c < 601; c++)
        atomic_store(&p->requests[c], 0);
}

void mc_tier_bind(const mc_parent_cfg *parents, int n, int slot_out[MC_MAX_PARENTS])
{
    uint64_t gen = ++g_bind_gen;
    for (int i = 0; i < n; i++) {
        int found = -1;
        for (int k = 0; k < MC_TIER_SLOTS && found < 0; k++)
            if (g_slots[k].name[0] && strcmp(g_slots[k].name, parents[i].name) == 0 &&
                strcmp(g_slots[k].base, parents[i].base) == 0)
                found = k;
        /* a fresh slot: never used, or used by neither this nor the
         * previous binding (requests of the previous may still report) */
        for (int k = 0; k < MC_TIER_SLOTS && found < 0; k++)
            if (!g_slots[k].name[0] || g_slots[k].bound + 1 < gen) {
                found = k;
                state_reset(&g_slots[k].st, 1);
                snprintf(g_slots[k].name, sizeof g_slots[k].name, "%s", parents[i].name);
                snprintf(g_slots[k].base, sizeof g_slots[k].base, "%s", parents[i].base);
            }
        assert(found >= 0);   /* 64 slots, at most 2 x 16 in use */
        g_slots[found].bound = gen;
        slot_out[i] = found;
    }
}

int mc_tier_usable(int i)
{
    parent_state *p = &g_slots[i].st;
    if (atomic_load(&p->down))
        return 0;
    int64_t until = atomic_load(&p->eject_until_ms);
    return until == 0 || now_ms() >= until;
}

void mc_tier_result(const mc_edge_config *cfg, int i, int ok)
{
    parent_state *p = &g_slots[i].st;
    const char *name = g_slots[i].name;
    if (ok) {
        atomic_store(&p->fails, 0);
        if (atomic_exchange(&p->eject_until_ms, 0) != 0) {
            atomic_store(&p->backoff_ms, 0);
            mc_log_info("tier", "msg=\"parent back in service\" parent=%s", name);
        }
        return;
    }
    int fails = atomic_fetch_add(&p->fails, 1) + 1;
    if (fails < cfg->tier_fail_threshold)
        return;
    int64_t now = now_ms(), until = atomic_load(&p->eject_until_ms);
    if (until != 0 && now < until)
        return;   /* already ejected (requests that were in flight) */
    int64_t b = atomic_load(&p->backoff_ms);
    b = b == 0 ? cfg->tier_eject_ms : b * 2;
    if (b > cfg->tier_eject_max_ms)
        b = cfg->tier_eject_max_ms;
    if (atomic_compare_exchange_strong(&p->eject_until_ms, &until, now + b)) {
        atomic_store(&p->backoff_ms, b);
        mc_log_warn("tier", "msg=\"parent ejected\" parent=%s failures=%d for_ms=%lld", name, fails, (long long)b);
    }
}

void mc_tier_count(int i, int code)
{
    int c = (code >= 100 && code <= 599) ? code : 0;
    mc_counter_add(i == MC_TIER_SECONDARY ? &g_secondary[c] : &g_slots[i].st.requests[c], 1);
}

static const char *const origin_names[2] = {"primary", "secondary"};

static int origin_healthy(int which)
{
    return atomic_load(&g_origin_fails[which]) < atomic_load(&g_origin_threshold);
}

void mc_tier_origin_result(const mc_edge_config *cfg, int which, int ok)
{
    atomic_store(&g_origin_threshold, cfg->tier_fail_threshold);
    if (ok) {
        if (atomic_exchange(&g_origin_fails[which], 0) >= cfg->tier_fail_threshold)
            mc_log_info("tier", "msg=\"origin healthy again\" origin=%s", origin_names[which]);
        return;
    }
    if (atomic_fetch_add(&g_origin_fails[which], 1) + 1 == cfg->tier_fail_threshold)
        mc_log_warn("tier", "msg=\"origin unhealthy\" origin=%s failures=%d", origin_names[which],
                    cfg->tier_fail_threshold);
}

int mc_tier_any_healthy(const mc_edge_snap *s, char *why, size_t n)
{
    const mc_edge_config *c = &s->cfg;
    for (int i = 0; i < c->nparents; i++)
        if (mc_tier_usable(s->parent_slot[i]))
            return 1;
    if (origin_healthy(0) || (c->secondary_base[0] && origin_healthy(1)))
        return 1;
    if (why)
        snprintf(why, n, "no upstream healthy (%sorigin: %d failures in a row%s)",
                 c->nparents ? "every parent ejected or down; " : "", atomic_load(&g_origin_fails[0]),
                 c->secondary_base[0] ? "; secondary origin too" : "");
    return 0;
}

static size_t discard(char *d, size_t s, size_t n, void *u)
{
    (void)d, (void)u;
    return s * n;
}

/* GET url within 2 s: the status, 0 when there was no response. plan:
 * the TLS settings of an origin probe (NULL: defaults). */
static long probe(CURL *e, const char *url, const check_plan *plan, CURLcode *rc_out)
{
    curl_easy_reset(e);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 2000L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 1000L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_USERAGENT, "meshcdn-health/" MESHCDN_VERSION);
    if (plan) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, plan->insecure ? 0L : 1L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, plan->insecure ? 0L : 2L);
        if (plan->ca_file[0])
            curl_easy_setopt(e, CURLOPT_CAINFO, plan->ca_file);
        if (plan->ca_dir[0])
            curl_easy_setopt(e, CURLOPT_CAPATH, plan->ca_dir);
    }
    long code = 0;
    CURLcode rc = curl_easy_perform(e);
    if (rc == CURLE_OK)
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    *rc_out = rc;
    return code;
}

static void check_one(CURL *e, const check_item *it)
{
    CURLcode rc;
    long code = probe(e, it->url, NULL, &rc);
    parent_state *p = &g_slots[it->slot].st;
    int down = code != 200;
    if (atomic_exchange(&p->down, down) != down)
        mc_log_info("tier", "msg=\"active check\" parent=%s healthy=%d status=%ld error=\"%s\"", it->name, !down,
                    code, rc == CURLE_OK ? "" : curl_easy_strerror(rc));
    if (!down && atomic_load(&p->eject_until_ms) != 0) {
        /* the check answers: end a passive ejection */
        atomic_store(&p->fails, 0);
        atomic_store(&p->backoff_ms, 0);
        if (atomic_exchange(&p->eject_until_ms, 0) != 0)
            mc_log_info("tier", "msg=\"parent back in service\" parent=%s", it->name);
    }
}

/* An unhealthy origin is probed: any answer below 500 (an unsigned GET gets
 * 403 from an S3 origin) means it serves again. */
static void probe_origin(CURL *e, int which, const check_plan *plan)
{
    const char *url = plan->origin_url[which];
    if (!url[0] || origin_healthy(which))
        return;
    CURLcode rc;
    long code = probe(e, url, plan, &rc);
    if (code > 0 && code < 500 && atomic_exchange(&g_origin_fails[which], 0) != 0)
        mc_log_info("tier", "msg=\"origin healthy again\" origin=%s probe_status=%ld", origin_names[which], code);
}

static void *check_thread(void *arg)
{
    (void)arg;
    CURL *e = curl_easy_init();
    check_plan *plan = malloc(sizeof *plan);
    pthread_mutex_lock(&g_mu);
    while (!g_stopping) {
        if (plan)
            *plan = g_plan;
        pthread_mutex_unlock(&g_mu);
        for (int i = 0; e && plan && i < plan->nparents; i++)
            check_one(e, &plan->parents[i]);
        for (int w = 0; e && plan && w < 2; w++)
            probe_origin(e, w, plan);
        pthread_mutex_lock(&g_mu);
        int64_t interval = g_plan.interval_ms > 0 ? g_plan.interval_ms : 2000;
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        int64_t ns = dl.tv_nsec + (interval % 1000) * 1000000;
        dl.tv_sec += (time_t)(interval / 1000 + ns / 1000000000);
        dl.tv_nsec = (long)(ns % 1000000000);
        while (!g_stopping && pthread_cond_timedwait(&g_cv, &g_mu, &dl) != ETIMEDOUT) {
        }
    }
    pthread_mutex_unlock(&g_mu);
    free(plan);
    curl_easy_cleanup(e);
    return NULL;
}

void mc_tier_configure(const mc_edge_snap *s)
{
    const mc_edge_config *c = &s->cfg;
    atomic_store(&g_origin_threshold, c->tier_fail_threshold);
    pthread_mutex_lock(&g_mu);
    char was[2][1100];
    memcpy(was, g_plan.origin_url, sizeof was);
    memset(&g_plan, 0, sizeof g_plan);
    for (int i = 0; i < c->nparents; i++) {
        if (!c->parents[i].health_url[0])
            continue;
        check_item *it = &g_plan.parents[g_plan.nparents++];
        it->slot = s->parent_slot[i];
        snprintf(it->name, sizeof it->name, "%s", c->parents[i].name);
        snprintf(it->url, sizeof it->url, "%s", c->parents[i].health_url);
    }
    snprintf(g_plan.origin_url[0], sizeof g_plan.origin_url[0], "%s%s/", c->origin_base, c->origin_path);
    if (c->secondary_base[0])
        snprintf(g_plan.origin_url[1], sizeof g_plan.origin_url[1], "%s%s/", c->secondary_base, c->secondary_path);
    snprintf(g_plan.ca_file, sizeof g_plan.ca_file, "%s", c->origin_ca_file);
    snprintf(g_plan.ca_dir, sizeof g_plan.ca_dir, "%s", c->origin_ca_dir);
    g_plan.insecure = c->origin_insecure;
    g_plan.interval_ms = c->tier_health_interval_ms;
    for (int w = 0; w < 2; w++)   /* another origin (a reload): its failures are not the new one's */
        if (strcmp(was[w], g_plan.origin_url[w]) != 0)
            atomic_store(&g_origin_fails[w], 0);
    if (!g_thread_running) {
        g_stopping = 0;
        g_thread_running = pthread_create(&g_thread, NULL, check_thread, NULL) == 0;
        if (!g_thread_running)
            mc_log_error("tier", "msg=\"cannot start the health check thread; passive checks only\"");
    }
    pthread_cond_broadcast(&g_cv);   /* check the new plan now */
    pthread_mutex_unlock(&g_mu);
}

void mc_tier_shutdown(void)
{
    pthread_mutex_lock(&g_mu);
    int join = g_thread_running;
    g_stopping = 1;
    g_thread_running = 0;
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
    if (join)
        pthread_join(g_thread, NULL);
}

void mc_tier_metrics_requests(mc_buf *b)
{
    char labels[160];
    for (int i = -1; i < MC_TIER_SLOTS; i++) {
        if (i >= 0 && !g_slots[i].name[0])
            continue;
        _Atomic uint64_t *rq = i < 0 ? g_secondary : g_slots[i].st.requests;
        for (int code = 0; code < 600; code++) {
            uint64_t v = mc_counter_get(&rq[code]);
            if (!v)
                continue;
            const char *name = i < 0 ? "origin-secondary" : g_slots[i].name;
            if (code == 0)
                snprintf(labels, sizeof labels, "upstream=\"%s\",code=\"error\"", name);
            else
                snprintf(labels, sizeof labels, "upstream=\"%s\",code=\"%d\"", name, code);
            mc_metrics_value(b, "meshcdn_edge_upstream_requests_total", labels, (double)v);
        }
    }
}

void mc_tier_metrics_health(const mc_edge_snap *s, mc_buf *b)
{
    const mc_edge_config *cfg = &s->cfg;
    char labels[128];
    if (cfg->nparents) {
        mc_metrics_header(b, "meshcdn_edge_parent_healthy", "gauge", "1 when the parent tier may be tried (not ejected, active check passing)");
        for (int i = 0; i < cfg->nparents; i++) {
            snprintf(labels, sizeof labels, "parent=\"%s\"", cfg->parents[i].name);
            mc_metrics_value(b, "meshcdn_edge_parent_healthy", labels, mc_tier_usable(s->parent_slot[i]) ? 1 : 0);
        }
    }
    mc_metrics_header(b, "meshcdn_edge_origin_healthy", "gauge", "0 after tier.fail_threshold failures in a row, until a fetch or a probe succeeds");
    for (int w = 0; w < (cfg->secondary_base[0] ? 2 : 1); w++) {
        snprintf(labels, sizeof labels, "origin=\"%s\"", origin_names[w]);
        mc_metrics_value(b, "meshcdn_edge_origin_healthy", labels, origin_healthy(w) ? 1 : 0);
    }
}
