/* follow.c — see follow.h. */
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "common/inval.h"
#include "common/invspec.h"
#include "common/log.h"
#include "common/metrics.h"
#include "ctl/client.h"
#include "edge/follow.h"

struct mc_follow {
    const mc_edge_config *cfg;
    mc_store *store;
    mc_ctl_client *clients[MC_FOLLOW_MAX_URLS];   /* one per control API of [edge] control */
    int nclients;
    int cur;                     /* the one in use; the next after a failure */
    mc_ctl_client *client;       /* clients[cur] */
    pthread_t thread;
    int started;
    _Atomic int stopping;
    pthread_mutex_t mu;          /* the stop wait */
    pthread_cond_t cv;
    _Atomic uint64_t cursor;     /* last applied seq */
    _Atomic uint64_t log_last;   /* the log's last seq, as last heard */
    _Atomic uint64_t applied;    /* entries applied since start */
    _Atomic int64_t last_contact; /* unix s of the last good answer (0: never) */
    _Atomic int caught_up;       /* cursor reached the log's end at least once */
    _Atomic uint64_t failures;
};

typedef struct purge_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, ok;
    uint64_t affected;
} purge_wait;

static void on_purged(void *arg, int ok, uint64_t affected)
{
    purge_wait *w = arg;
    pthread_mutex_lock(&w->mu);
    w->done = 1;
    w->ok = ok;
    w->affected = affected;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* A log entry (checked by the control API when it was created) as a
 * purge: its paths, surrogate keys, all and soft. */
static int entry_spec(json_t *entry, mc_invspec *out, mc_err *err)
{
    mc_inval in;
    memset(&in, 0, sizeof in);
    json_t *paths = json_object_get(entry, "paths"), *keys = json_object_get(entry, "surrogate_keys"), *v;
    size_t i;
    int rc = 0;
    json_array_foreach(paths, i, v)
        if (!rc && json_is_string(v))
            rc = mc_inval_add_path(&in, json_string_value(v));
    json_array_foreach(keys, i, v)
        if (!rc && json_is_string(v))
            rc = mc_inval_add_key(&in, json_string_value(v));
    in.all = json_is_true(json_object_get(entry, "all"));
    in.soft = json_is_true(json_object_get(entry, "soft"));
    if (!rc && !in.all && in.npaths + in.nkeys == 0)
        rc = mc_err_set(err, MC_E_INVAL, "names nothing to invalidate");
    else if (rc)
        mc_err_set(err, rc, "out of memory");
    if (!rc)
        rc = mc_invspec_from_inval(&in, out, err);
    mc_inval_free(&in);
    return rc;
}

/* Apply one entry and store its seq as the cursor, in the store's order. */
static int apply(mc_follow *f, json_t *entry, uint64_t seq)
{
    mc_invspec spec;
    mc_err err = {0};
    purge_wait w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0};
    if (entry_spec(entry, &spec, &err) < 0) {
        /* the control API validated it: this build cannot read it. Skipping
         * it would serve what it purges, so stop here and say so. */
        mc_log_error("follow", "msg=\"log entry unreadable\" seq=%llu error=\"%s\"", (unsigned long long)seq,
                     err.msg);
        return -1;
    }
    int rc = mc_store_purge(f->store, &spec, &seq, on_purged, &w);
    size_t items = mc_invspec_items(&spec);
    int soft = spec.soft;
    mc_invspec_free(&spec);
    if (rc < 0)
        return -1;
    pthread_mutex_lock(&w.mu);
    while (!w.done)
        pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    if (!w.ok)
        return -1;
    atomic_store(&f->cursor, seq);
    atomic_fetch_add(&f->applied, 1);
    mc_log_info("follow", "msg=\"invalidation applied\" seq=%llu items=%zu soft=%d affected=%llu",
                (unsigned long long)seq, items, soft, (unsigned long long)w.affected);
    return 0;
}

static void ack(mc_follow *f, uint64_t seq)
{
    char body[160];
    snprintf(body, sizeof body, "{\"node\":\"%s\",\"seq\":%llu}", f->cfg->node_id, (unsigned long long)seq);
    mc_ctl_reply r;
    mc_err err = {0};
    if (mc_ctl_request(f->client, "POST", "/ack", NULL, body, 10000, &r, &err) < 0) {
        mc_log_warn("follow", "msg=\"ack failed\" seq=%llu error=\"%s\"", (unsigned long long)seq, err.msg);
        return;
    }
    if (r.status != 200) {
        char d[256];
        mc_ctl_reply_describe(&r, d, sizeof d);
        mc_log_warn("follow", "msg=\"ack refused\" seq=%llu answer=\"%s\"", (unsigned long long)seq, d);
    }
    mc_ctl_reply_free(&r);
}

/* One GET /log round: apply what came, ack. wait_s = 0 answers at once.
 * Returns 1 when entries were applied, 0 when none came, -1 on failure. */
static int poll_once(mc_follow *f, int wait_s)
{
    char query[256];
    uint64_t cursor = atomic_load(&f->cursor);
    snprintf(query, sizeof query, "after=%llu&node=%s&region=%s&wait=%d", (unsigned long long)cursor,
             f->cfg->node_id, f->cfg->region, wait_s);
    mc_ctl_reply r;
    mc_err err = {0};
    if (mc_ctl_request(f->client, "GET", "/log", query, NULL, (long)(wait_s + 15) * 1000, &r, &err) < 0) {
        if (!atomic_load(&f->stopping))
            mc_log_warn("follow", "msg=\"control API unreachable\" error=\"%s\"", err.msg);
        return -1;
    }
    if (r.status != 200) {
        char d[256];
        mc_ctl_reply_describe(&r, d, sizeof d);
        mc_log_warn("follow", "msg=\"log poll refused\" answer=\"%s\"", d);
        mc_ctl_reply_free(&r);
        return -1;
    }
    json_error_t je;
    json_t *root = json_loadb(r.body.data ? r.body.data : "", r.body.len, 0, &je);
    mc_ctl_reply_free(&r);
    json_t *entries = root ? json_object_get(root, "entries") : NULL;
    json_t *last = root ? json_object_get(root, "last") : NULL;
    if (!json_is_array(entries) || !json_is_integer(last)) {
        mc_log_warn("follow", "msg=\"log answer unreadable\"");
        json_decref(root);
        return -1;
    }
    atomic_store(&f->last_contact, (int64_t)time(NULL));
    atomic_store(&f->log_last, (uint64_t)json_integer_value(last));
    if ((uint64_t)json_integer_value(last) < cursor) {
        /* the log is shorter than what we applied: a new control database.
         * Its entries are new, whatever their numbers: follow it from the start. */
        mc_log_warn("follow", "msg=\"the control API's log restarted: following it from the start\" "
                    "cursor=%llu log_last=%lld", (unsigned long long)cursor, (long long)json_integer_value(last));
        atomic_store(&f->cursor, 0);
        atomic_store(&f->caught_up, 0);
        json_decref(root);
        return 1;   /* poll again at once */
    }
    size_t i;
    json_t *e;
    int applied = 0, rc = 0;
    json_array_foreach(entries, i, e) {
        json_t *seqv = json_object_get(e, "seq");
        if (!json_is_integer(seqv) || json_integer_value(seqv) <= 0) {
            rc = -1;
            break;
        }
        uint64_t seq = (uint64_t)json_integer_value(seqv);
        if (seq <= atomic_load(&f->cursor))
            continue;   /* already applied (a retry after a lost ack) */
        if (apply(f, e, seq) < 0) {
            rc = -1;
            break;
        }
        applied = 1;
    }
    json_decref(root);
    if (applied)
        ack(f, atomic_load(&f->cursor));
    if (rc == 0 && atomic_load(&f->cursor) >= atomic_load(&f->log_last) && !atomic_load(&f->caught_up)) {
        atomic_store(&f->caught_up, 1);
        mc_log_info("follow", "msg=\"invalidation log caught up\" cursor=%llu",
                    (unsigned long long)atomic_load(&f->cursor));
    }
    return rc < 0 ? -1 : applied;
}

/* After a failure: the next control API of the list (all share one log). */
static void next_client(mc_follow *f)
{
    if (f->nclients < 2)
        return;
    f->cur = (f->cur + 1) % f->nclients;
    f->client = f->clients[f->cur];
    mc_log_info("follow", "msg=\"trying the next control API\" url=%s", mc_ctl_client_url(f->client));
}

/* Sleep up to ms unless stopping. */
static void pause_ms(mc_follow *f, long ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&f->mu);
    if (!atomic_load(&f->stopping))
        pthread_cond_timedwait(&f->cv, &f->mu, &ts);
    pthread_mutex_unlock(&f->mu);
}

static void *follow_main(void *arg)
{
    mc_follow *f = arg;
    long backoff = 200;
    int wait_s = (int)(f->cfg->control_poll_wait_ms / 1000);
    while (!atomic_load(&f->stopping)) {
        int rc = poll_once(f, wait_s);
        if (rc < 0) {
            atomic_fetch_add(&f->failures, 1);
            next_client(f);
            pause_ms(f, backoff);
            backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
        } else {
            backoff = 200;
        }
    }
    return NULL;
}

int mc_follow_start(mc_follow **out, const mc_edge_config *cfg, mc_store *store, mc_err *err)
{
    *out = NULL;
    if (!cfg->control_url[0])
        return 0;
    mc_follow *f = calloc(1, sizeof *f);
    if (!f)
        return MC_E_NOMEM;
    f->cfg = cfg;
    f->store = store;
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    /* the cursor is read once: afterwards this thread is the one that moves it */
    mc_store_reader *reader = NULL;
    int rc = mc_store_reader_new(store, &reader);
    uint64_t cursor = 0;
    if (rc == 0)
        rc = mc_store_read_cursor(reader, &cursor);
    mc_store_reader_free(reader);
    if (rc < 0) {
        mc_follow_stop(f);
        return mc_err_set(err, rc, "cannot read the invalidation cursor from the store");
    }
    atomic_store(&f->cursor, cursor);
    /* [edge] control: one URL, or several control APIs sharing one log
     * (the etcd backend), comma-separated: the follower moves to the next
     * when one fails */
    char urls[sizeof cfg->control_url];
    snprintf(urls, sizeof urls, "%s", cfg->control_url);
    char *save = NULL;
    for (char *u = strtok_r(urls, ", ", &save); u && f->nclients < MC_FOLLOW_MAX_URLS; u = strtok_r(NULL, ", ", &save)) {
        if ((rc = mc_ctl_client_new(&f->clients[f->nclients], u, &cfg->control_credentials.v[0],
                                    cfg->sign_region, err)) < 0) {
            mc_follow_stop(f);
            return rc;
        }
        mc_ctl_client_set_abort(f->clients[f->nclients++], &f->stopping);
    }
    f->client = f->clients[0];
    /* catch up before serving: everything after the cursor, or give up at
     * the deadline and start not ready */
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long backoff = 100;
    for (;;) {
        int r = poll_once(f, 0);
        if (r == 0 && atomic_load(&f->caught_up))
            break;
        clock_gettime(CLOCK_MONOTONIC, &now);
        int64_t ms = (int64_t)(now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000;
        if (ms >= cfg->control_startup_wait_ms) {
            mc_log_warn("follow", "msg=\"starting without the invalidation log: not ready until caught up\" "
                        "cursor=%llu waited_ms=%lld", (unsigned long long)atomic_load(&f->cursor), (long long)ms);
            break;
        }
        if (r < 0) {
            next_client(f);
            pause_ms(f, backoff);
            backoff = backoff * 2 > 1000 ? 1000 : backoff * 2;
        }
    }
    if (pthread_create(&f->thread, NULL, follow_main, f) != 0) {
        mc_follow_stop(f);
        return mc_err_set(err, MC_E_IO, "cannot start the invalidation follower thread");
    }
    f->started = 1;
    *out = f;
    return 0;
}

void mc_follow_stop(mc_follow *f)
{
    if (!f)
        return;
    pthread_mutex_lock(&f->mu);
    atomic_store(&f->stopping, 1);
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    if (f->started)
        pthread_join(f->thread, NULL);
    for (int i = 0; i < f->nclients; i++)
        mc_ctl_client_free(f->clients[i]);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
    free(f);
}

int mc_follow_ready(const mc_follow *f, char *why, size_t n)
{
    if (!f)
        return 1;
    if (!atomic_load(&f->caught_up)) {
        if (why)
            snprintf(why, n, "invalidation log not caught up (cursor %llu of %llu)",
                     (unsigned long long)atomic_load(&f->cursor), (unsigned long long)atomic_load(&f->log_last));
        return 0;
    }
    int64_t last = atomic_load(&f->last_contact);
    int64_t limit = f->cfg->control_poll_wait_ms / 1000 + 30;
    if (time(NULL) - last > limit) {
        if (why)
            snprintf(why, n, "control API silent for %llds", (long long)(time(NULL) - last));
        return 0;
    }
    return 1;
}

void mc_follow_render_metrics(const mc_follow *f, mc_buf *b)
{
    if (!f)
        return;
    mc_metrics_header(b, "meshcdn_edge_invalidation_cursor", "gauge", "last fleet invalidation applied (log seq)");
    mc_metrics_value(b, "meshcdn_edge_invalidation_cursor", NULL, (double)atomic_load(&f->cursor));
    mc_metrics_header(b, "meshcdn_edge_invalidation_log_last", "gauge", "the log's last seq, as last heard");
    mc_metrics_value(b, "meshcdn_edge_invalidation_log_last", NULL, (double)atomic_load(&f->log_last));
    mc_metrics_header(b, "meshcdn_edge_invalidations_applied_total", "counter", "fleet invalidations applied");
    mc_metrics_value(b, "meshcdn_edge_invalidations_applied_total", NULL, (double)atomic_load(&f->applied));
    mc_metrics_header(b, "meshcdn_edge_control_failures_total", "counter", "failed polls of the control API");
    mc_metrics_value(b, "meshcdn_edge_control_failures_total", NULL, (double)atomic_load(&f->failures));
    mc_metrics_header(b, "meshcdn_edge_invalidation_ready", "gauge", "1 when caught up with the log");
    mc_metrics_value(b, "meshcdn_edge_invalidation_ready", NULL, mc_follow_ready(f, NULL, 0) ? 1 : 0);
}
