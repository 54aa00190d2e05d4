/* tier.c — see tier.h. */
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

static parent_state g_parents[MC_MAX_PARENTS];
static _Atomic uint64_t g_secondary[601];
static const mc_edge_config *g_cfg;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static int g_refs, g_stopping, g_thread_running;
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

int mc_tier_usable(int i)
{
    parent_state *p = &g_parents[i];
    if (atomic_load(&p->down))
        return 0;
    int64_t until = atomic_load(&p->eject_until_ms);
    return until == 0 || now_ms() >= until;
}

void mc_tier_result(int i, int ok)
{
    parent_state *p = &g_parents[i];
    const char *name = g_cfg ? g_cfg->parents[i].name : "?";
    if (ok) {
        atomic_store(&p->fails, 0);
        if (atomic_exchange(&p->eject_until_ms, 0) != 0) {
            atomic_store(&p->backoff_ms, 0);
            mc_log_info("tier", "msg=\"parent back in service\" parent=%s", name);
        }
        return;
    }
    int fails = atomic_fetch_add(&p->fails, 1) + 1;
    if (!g_cfg || fails < g_cfg->tier_fail_threshold)
        return;
    int64_t now = now_ms(), until = atomic_load(&p->eject_until_ms);
    if (until != 0 && now < until)
        return;   /* already ejected (requests that were in flight) */
    int64_t b = atomic_load(&p->backoff_ms);
    b = b == 0 ? g_cfg->tier_eject_ms : b * 2;
    if (b > g_cfg->tier_eject_max_ms)
        b = g_cfg->tier_eject_max_ms;
    if (atomic_compare_exchange_strong(&p->eject_until_ms, &until, now + b)) {
        atomic_store(&p->backoff_ms, b);
        mc_log_warn("tier", "msg=\"parent ejected\" parent=%s failures=%d for_ms=%lld", name, fails, (long long)b);
    }
}

void mc_tier_count(int i, int code)
{
    int c = (code >= 100 && code <= 599) ? code : 0;
    mc_counter_add(i == MC_TIER_SECONDARY ? &g_secondary[c] : &g_parents[i].requests[c], 1);
}

static size_t discard(char *d, size_t s, size_t n, void *u)
{
    (void)d, (void)u;
    return s * n;
}

static void check_one(CURL *e, int i)
{
    const mc_parent_cfg *pc = &g_cfg->parents[i];
    curl_easy_setopt(e, CURLOPT_URL, pc->health_url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 2000L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 1000L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http");
    long code = 0;
    CURLcode rc = curl_easy_perform(e);
    if (rc == CURLE_OK)
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    parent_state *p = &g_parents[i];
    int down = code != 200;
    if (atomic_exchange(&p->down, down) != down)
        mc_log_info("tier", "msg=\"active check\" parent=%s healthy=%d status=%ld error=\"%s\"", pc->name, !down,
                    code, rc == CURLE_OK ? "" : curl_easy_strerror(rc));
    if (!down && atomic_load(&p->eject_until_ms) != 0)
        mc_tier_result(i, 1);   /* the check answers: end a passive ejection */
}

static void *check_thread(void *arg)
{
    (void)arg;
    CURL *e = curl_easy_init();
    pthread_mutex_lock(&g_mu);
    while (!g_stopping) {
        pthread_mutex_unlock(&g_mu);
        for (int i = 0; e && i < g_cfg->nparents; i++) {
            if (g_cfg->parents[i].health_url[0]) {
                curl_easy_reset(e);
                check_one(e, i);
            }
        }
        pthread_mutex_lock(&g_mu);
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        int64_t ns = dl.tv_nsec + (g_cfg->tier_health_interval_ms % 1000) * 1000000;
        dl.tv_sec += (time_t)(g_cfg->tier_health_interval_ms / 1000 + ns / 1000000000);
        dl.tv_nsec = (long)(ns % 1000000000);
        while (!g_stopping && pthread_cond_timedwait(&g_cv, &g_mu, &dl) != ETIMEDOUT) {
        }
    }
    pthread_mutex_unlock(&g_mu);
    curl_easy_cleanup(e);
    return NULL;
}

void mc_tier_start(const mc_edge_config *cfg)
{
    pthread_mutex_lock(&g_mu);
    if (g_refs++ == 0) {
        g_cfg = cfg;
        g_stopping = 0;
        for (int i = 0; i < MC_MAX_PARENTS; i++) {
            atomic_store(&g_parents[i].fails, 0);
            atomic_store(&g_parents[i].eject_until_ms, 0);
            atomic_store(&g_parents[i].backoff_ms, 0);
            atomic_store(&g_parents[i].down, 0);
        }
        int active = 0;
        for (int i = 0; i < cfg->nparents; i++)
            active |= cfg->parents[i].health_url[0] != '\0';
        g_thread_running = active && pthread_create(&g_thread, NULL, check_thread, NULL) == 0;
        if (active && !g_thread_running)
            mc_log_error("tier", "msg=\"cannot start the active check thread; passive checks only\"");
    }
    pthread_mutex_unlock(&g_mu);
}

void mc_tier_stop(void)
{
    pthread_mutex_lock(&g_mu);
    int last = --g_refs == 0;
    int join = last && g_thread_running;
    if (last) {
        g_stopping = 1;
        g_thread_running = 0;
        pthread_cond_broadcast(&g_cv);
    }
    pthread_mutex_unlock(&g_mu);
    if (join)
        pthread_join(g_thread, NULL);
}

void mc_tier_metrics_requests(mc_buf *b)
{
    const mc_edge_config *cfg = g_cfg;
    char labels[160];
    for (int i = -1; cfg && i < cfg->nparents; i++) {
        _Atomic uint64_t *rq = i < 0 ? g_secondary : g_parents[i].requests;
        for (int code = 0; code < 600; code++) {
            uint64_t v = mc_counter_get(&rq[code]);
            if (!v)
                continue;
            const char *name = i < 0 ? "origin-secondary" : cfg->parents[i].name;
            if (code == 0)
                snprintf(labels, sizeof labels, "upstream=\"%s\",code=\"error\"", name);
            else
                snprintf(labels, sizeof labels, "upstream=\"%s\",code=\"%d\"", name, code);
            mc_metrics_value(b, "meshcdn_edge_upstream_requests_total", labels, (double)v);
        }
    }
}

void mc_tier_metrics_health(mc_buf *b)
{
    const mc_edge_config *cfg = g_cfg;
    if (!cfg || cfg->nparents == 0)
        return;
    mc_metrics_header(b, "meshcdn_edge_parent_healthy", "gauge", "1 when the parent tier may be tried (not ejected, active check passing)");
    char labels[128];
    for (int i = 0; i < cfg->nparents; i++) {
        snprintf(labels, sizeof labels, "parent=\"%s\"", cfg->parents[i].name);
        mc_metrics_value(b, "meshcdn_edge_parent_healthy", labels, mc_tier_usable(i) ? 1 : 0);
    }
}
