/* feed.c — see feed.h. */
#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "common/log.h"
#include "edge/feed.h"
#include "edge/fill.h"
#include "edge/lookup.h"

typedef enum {
    FEED_HEAD,      /* no head yet, or not followable: followers wait */
    FEED_STREAM,    /* stored whole: followers stream the committed chunks */
    FEED_COMPLETE,  /* the whole body arrived, the publish follows: new followers wait for it */
    FEED_STOPPED,   /* stopped storing midway: followers with a head are cut, the others wait */
    FEED_PASS,      /* not stored: followers look up again (and fetch on their own) */
    FEED_DONE,      /* published: followers finish from the store */
    FEED_FAILED,    /* ended without a publish */
} feed_phase;

/* A viewer following a feed. Owned by its mc_resp (r->follow) while linked;
 * once it leaves with a wake-up queued (cancelled), by that wake-up. */
typedef struct mc_feed_follower {
    mc_mail mail;
    mc_feed *fd;                 /* a reference */
    mc_resp *r;
    mc_worker *w;
    int posted, cancelled;       /* under fd->mu */
    struct mc_feed_follower *next;   /* under fd->mu */
} mc_feed_follower;

struct mc_feed {
    uint32_t magic;
    _Atomic int refs;
    mc_worker *owner;
    pthread_mutex_t mu;
    feed_phase phase;
    /* the head: written once under mu when the phase becomes STREAM, then
     * read-only (followers read it after seeing the phase under mu) */
    int status;
    char *hdrs, *skeystr;
    int64_t length;
    mc_hash128 skey;
    uint64_t seq, generation;
    int64_t response_time, initial_age_s, lifetime_s;
    /* progress (under mu) */
    uint32_t next_idx;           /* the chunk whose commit comes next */
    uint64_t committed;          /* body bytes committed, from byte 0 */
    uint64_t total;              /* DONE: the body's length */
    mc_feed_follower *follows;
};

/* One chunk on its way through the writer. */
typedef struct feed_chunk {
    mc_feed *fd;                 /* a reference */
    uint32_t idx;
    size_t len;
} feed_chunk;

mc_feed *mc_feed_new(mc_worker *owner)
{
    mc_feed *fd = calloc(1, sizeof *fd);
    if (!fd)
        return NULL;
    fd->magic = MC_FEED_MAGIC;
    atomic_init(&fd->refs, 1);
    fd->owner = owner;
    pthread_mutex_init(&fd->mu, NULL);
    fd->phase = FEED_HEAD;
    return fd;
}

mc_feed *mc_feed_ref(mc_feed *fd)
{
    assert(fd && fd->magic == MC_FEED_MAGIC);
    atomic_fetch_add_explicit(&fd->refs, 1, memory_order_relaxed);
    return fd;
}

void mc_feed_unref(mc_feed *fd)
{
    if (!fd)
        return;
    assert(fd->magic == MC_FEED_MAGIC);
    if (atomic_fetch_sub_explicit(&fd->refs, 1, memory_order_acq_rel) != 1)
        return;
    assert(!fd->follows);   /* each follower holds a reference */
    pthread_mutex_destroy(&fd->mu);
    free(fd->hdrs);
    free(fd->skeystr);
    fd->magic = 0;
    free(fd);
}

static void on_wake(void *arg);

/* Queue a wake-up for every follower that has none queued. fd->mu held. */
static void notify_locked(mc_feed *fd)
{
    for (mc_feed_follower *fl = fd->follows; fl; fl = fl->next)
        if (!fl->posted) {
            fl->posted = 1;
            mc_worker_post_mail(fl->w, &fl->mail, on_wake, fl);
        }
}

static void set_phase(mc_feed *fd, feed_phase p)
{
    pthread_mutex_lock(&fd->mu);
    fd->phase = p;
    notify_locked(fd);
    pthread_mutex_unlock(&fd->mu);
}

int mc_feed_open(mc_feed *fd, const mc_feed_head *h)
{
    char *hdrs = strdup(h->hdrs ? h->hdrs : ""), *skeystr = strdup(h->skeystr);
    if (!hdrs || !skeystr) {
        free(hdrs);
        free(skeystr);
        return MC_E_NOMEM;
    }
    pthread_mutex_lock(&fd->mu);
    assert(fd->phase == FEED_HEAD && !fd->hdrs);
    fd->status = h->status;
    fd->hdrs = hdrs;
    fd->skeystr = skeystr;
    fd->length = h->length;
    fd->skey = h->skey;
    fd->seq = h->seq;
    fd->generation = h->generation;
    fd->response_time = h->response_time;
    fd->initial_age_s = h->initial_age_s;
    fd->lifetime_s = h->lifetime_s;
    fd->phase = FEED_STREAM;
    notify_locked(fd);
    pthread_mutex_unlock(&fd->mu);
    return 0;
}

int mc_feed_streaming(mc_feed *fd)
{
    pthread_mutex_lock(&fd->mu);
    int on = fd->phase == FEED_STREAM;
    pthread_mutex_unlock(&fd->mu);
    return on;
}

void mc_feed_stop(mc_feed *fd)
{
    pthread_mutex_lock(&fd->mu);
    if (fd->phase == FEED_STREAM || fd->phase == FEED_COMPLETE) {
        fd->phase = FEED_STOPPED;
        notify_locked(fd);
    }
    pthread_mutex_unlock(&fd->mu);
}

void mc_feed_complete(mc_feed *fd)
{
    pthread_mutex_lock(&fd->mu);
    if (fd->phase == FEED_STREAM)
        fd->phase = FEED_COMPLETE;   /* no wake-up: nothing changes for those streaming */
    pthread_mutex_unlock(&fd->mu);
}

void mc_feed_pass(mc_feed *fd)
{
    set_phase(fd, FEED_PASS);
}

void mc_feed_end(mc_feed *fd, int published, uint64_t total)
{
    pthread_mutex_lock(&fd->mu);
    if (fd->phase != FEED_DONE && fd->phase != FEED_FAILED) {
        /* a publish checks that every chunk is there: all were committed */
        assert(!published || fd->phase != FEED_COMPLETE || fd->committed == total);
        fd->phase = published ? FEED_DONE : FEED_FAILED;
        fd->total = total;
        notify_locked(fd);
    }
    pthread_mutex_unlock(&fd->mu);
}

/* Writer thread: a chunk of the fill was committed (or dropped). */
static void on_chunk_done(void *arg, int ok)
{
    feed_chunk *c = arg;
    mc_feed *fd = c->fd;
    pthread_mutex_lock(&fd->mu);
    if (ok && c->idx == fd->next_idx) {
        fd->next_idx++;
        fd->committed += c->len;
        if (fd->phase == FEED_STREAM || fd->phase == FEED_COMPLETE)
            notify_locked(fd);
    } else if (!ok && (fd->phase == FEED_STREAM || fd->phase == FEED_COMPLETE)) {
        fd->phase = FEED_STOPPED;   /* the fill cannot publish: its followers cannot finish */
        notify_locked(fd);
    }
    pthread_mutex_unlock(&fd->mu);
    free(c);
    mc_feed_unref(fd);
}

int mc_feed_put_chunk(mc_feed *fd, mc_store *st, mc_hash128 key, uint64_t seq, uint32_t idx,
                      const void *data, size_t len)
{
    if (!fd)
        return mc_store_put_chunk(st, key, seq, idx, data, len);
    feed_chunk *c = malloc(sizeof *c);
    if (!c)
        return MC_E_NOMEM;
    *c = (feed_chunk){mc_feed_ref(fd), idx, len};
    int rc = mc_store_put_chunk_notify(st, key, seq, idx, data, len, on_chunk_done, c);
    if (rc < 0) {
        mc_feed_unref(fd);
        free(c);
    }
    return rc;
}

/* ---------- followers ---------- */

static void run(mc_resp *r);

int mc_feed_follow(mc_feed *fd, mc_resp *r)
{
    assert(!r->follow && !r->fill && !r->started);
    mc_feed_follower *fl = calloc(1, sizeof *fl);
    if (!fl)
        return MC_E_NOMEM;
    fl->fd = mc_feed_ref(fd);
    fl->r = r;
    fl->w = r->w;
    r->follow = fl;
    pthread_mutex_lock(&fd->mu);
    fl->next = fd->follows;
    fd->follows = fl;
    if (fd->phase != FEED_HEAD) {   /* something to do already: on r's loop, after this returns */
        fl->posted = 1;
        mc_worker_post_mail(fl->w, &fl->mail, on_wake, fl);
    }
    pthread_mutex_unlock(&fd->mu);
    return 0;
}

void mc_feed_leave(mc_resp *r)
{
    mc_feed_follower *fl = r->follow;
    if (!fl)
        return;
    mc_feed *fd = fl->fd;
    r->follow = NULL;
    pthread_mutex_lock(&fd->mu);
    for (mc_feed_follower **pp = &fd->follows; *pp; pp = &(*pp)->next)
        if (*pp == fl) {
            *pp = fl->next;
            break;
        }
    if (fl->posted) {
        fl->cancelled = 1;   /* its wake-up is queued on this thread: on_wake frees it */
        fl = NULL;
    }
    pthread_mutex_unlock(&fd->mu);
    if (fl) {
        mc_feed_unref(fd);
        free(fl);
    }
}

static void on_wake(void *arg)
{
    mc_feed_follower *fl = arg;
    mc_feed *fd = fl->fd;
    pthread_mutex_lock(&fd->mu);
    fl->posted = 0;
    int cancelled = fl->cancelled;
    pthread_mutex_unlock(&fd->mu);
    if (cancelled) {
        mc_feed_unref(fd);
        free(fl);
        return;
    }
    run(fl->r);
}

void mc_feed_drained(mc_resp *r)
{
    if (r->follow)
        run(r);
}

/* Was the fill's response named by a purge since it began? Then r must
 * not get it (the purge came first). */
static int purged(const mc_resp *r, const mc_feed *fd)
{
    mc_store *st = r->w->node->store;
    return mc_store_generation(st) != fd->generation &&
           mc_store_purged_since(st, fd->generation, fd->skeystr, fd->hdrs) != 0;
}

static void start(mc_resp *r, mc_feed *fd)
{
    int64_t age = fd->initial_age_s + ((int64_t)time(NULL) - fd->response_time);
    if (age < fd->initial_age_s)
        age = fd->initial_age_s;
    r->result = MC_RESULT_COLLAPSED;
    mc_resp_plan(r, fd->status, fd->hdrs, fd->length);
    mc_resp_cache cache = {age, fd->lifetime_s - age, fd->status, 1};
    mc_resp_start(r, fd->hdrs, &cache);
    mc_counter_add(&mc_stats_global.fill_late_joins[r->w == fd->owner ? 0 : 1], 1);
}

/* Serve r as far as its feed allows. */
static void run(mc_resp *r)
{
    mc_feed *fd = r->follow->fd;
    pthread_mutex_lock(&fd->mu);
    feed_phase phase = fd->phase;
    uint64_t committed = fd->committed, total = fd->total;
    pthread_mutex_unlock(&fd->mu);
    if (phase >= FEED_DONE && r->started) {   /* its upstream wait ended with the fill */
        r->next = NULL;
        mc_resp_upstream_ended(r);
    }
    if (!r->started) {
        if (phase == FEED_HEAD || phase == FEED_STOPPED || phase == FEED_COMPLETE)
            return;                 /* wait for the end (a hit when it published) */
        if (phase != FEED_STREAM) {
            mc_feed_leave(r);       /* a hit now, or a fetch of its own */
            mc_lookup_retry(r);
            return;
        }
        if (purged(r, fd)) {
            mc_feed_leave(r);
            mc_fill_fetch_alone(r);
            return;
        }
        start(r, fd);
        if (!r->has_body) {         /* HEAD, 304, 416 */
            mc_resp_finish(r);
            return;
        }
    }
    if (phase != FEED_STREAM && phase != FEED_COMPLETE && phase != FEED_DONE) {
        /* the body will not be complete: never a short one presented as whole */
        mc_log_warn("feed", "key=\"%s\" msg=\"fill ended short, late joiner cut off\" client=%s sent=%llu",
                    r->keystr, mc_http_peer(r->conn), (unsigned long long)r->sent);
        mc_resp_fail(r, 502);
        return;
    }
    /* like a hit: at most about two chunks in the connection's backlog */
    while (!r->done && r->pos < committed && mc_http_backlog(r->conn) < 2 * MC_STORE_CHUNK_SIZE) {
        uint32_t idx = (uint32_t)(r->pos / MC_STORE_CHUNK_SIZE);
        const void *data = NULL;
        int n = mc_store_view_chunk(r->w->reader, fd->skey, fd->seq, idx, &data);
        if (n < 0) {
            mc_store_view_end(r->w->reader);
            /* aborted, replaced or evicted under us after the head went out */
            mc_log_warn("feed", "key=\"%s\" msg=\"chunk unreadable, late joiner cut off\" chunk=%u error=%s",
                        r->keystr, idx, mc_err_name(n));
            mc_resp_fail(r, 502);
            return;
        }
        int complete = mc_resp_write(r, (uint64_t)idx * MC_STORE_CHUNK_SIZE, data, (size_t)n);
        mc_store_view_end(r->w->reader);
        if (complete)
            break;
    }
    if (r->done || (phase == FEED_DONE && r->pos >= total))
        mc_resp_finish(r);
}
