/* fill.c — see fill.h. */
#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <xxhash.h>
#include "common/cc.h"
#include "common/httpdate.h"
#include "common/log.h"
#include "edge/fill.h"
#include "edge/lookup.h"
#include "edge/upstream.h"

#define TABLE_BUCKETS 1024

typedef enum {
    FILL_FETCHING,      /* waiting for the head or streaming the body */
    FILL_PUBLISHING,    /* body complete, publish queued on the writer */
} fill_state;

struct mc_fill {
    uint32_t magic;
    fill_state state;
    mc_worker *w;
    mc_hash128 key;
    char *keystr;
    struct mc_fill *next_in_bucket;
    mc_upstream_xfer *xfer;      /* NULL once the transfer ended */
    mc_resp *subs;               /* viewers streaming with the fill */
    mc_resp *waiters;            /* viewers parked until publish/failure */
    int headers_seen;
    int status;
    char *hdrs;                  /* filtered upstream headers (owned) */
    int64_t length;              /* Content-Length, -1 unknown */
    uint64_t received;           /* body bytes consumed */
    int storing;
    uint64_t seq;
    uint32_t nchunks;            /* chunks handed to the store */
    mc_buf chunk;                /* the chunk being filled (owned until handed over) */
    XXH3_state_t *xxh;
    mc_fresh fresh;
    int64_t request_time, response_time;
    int expired;
};

struct mc_fill_table {
    mc_fill *buckets[TABLE_BUCKETS];
};

/* ---------- the node-wide registry of keys being filled ---------- */

/* A viewer on worker w waiting for another worker's fill. Owned by the
 * registry while queued; once posted (posted = 1) by the message, which
 * drops it if the viewer left meanwhile (cancelled = 1, set on w's thread). */
typedef struct mc_remote_wait {
    mc_resp *r;
    mc_worker *w;
    int posted, cancelled;
    struct mc_remote_wait *next;
} mc_remote_wait;

typedef struct reg_entry {
    mc_hash128 key;
    mc_worker *owner;
    mc_remote_wait *waiters;
    struct reg_entry *next;
} reg_entry;

static struct {
    pthread_mutex_t mu;
    reg_entry *buckets[TABLE_BUCKETS];
} registry = {PTHREAD_MUTEX_INITIALIZER, {0}};

void mc_fill_registry_check_empty(void)
{
    for (int i = 0; i < TABLE_BUCKETS; i++)
        assert(registry.buckets[i] == NULL);   /* every fill ended before shutdown */
}

static reg_entry **reg_find(mc_hash128 k)
{
    reg_entry **pp = &registry.buckets[k.lo % TABLE_BUCKETS];
    while (*pp && !((*pp)->key.hi == k.hi && (*pp)->key.lo == k.lo))
        pp = &(*pp)->next;
    return pp;
}

static void on_remote_ready(void *arg)
{
    mc_remote_wait *rw = arg;
    mc_resp *r = rw->r;
    int cancelled = rw->cancelled;
    if (!cancelled)
        r->remote = NULL;
    free(rw);
    if (!cancelled) {
        r->waiting = 0;
        mc_lookup_retry(r);
    }
}

/* The fill for key ended (published or not): wake the other workers' waiters. */
static void reg_release(mc_hash128 key)
{
    pthread_mutex_lock(&registry.mu);
    reg_entry **pp = reg_find(key), *e = *pp;
    mc_remote_wait *list = NULL;
    if (e) {
        *pp = e->next;
        list = e->waiters;
        for (mc_remote_wait *rw = list; rw; rw = rw->next)
            rw->posted = 1;
    }
    pthread_mutex_unlock(&registry.mu);
    free(e);
    while (list) {
        mc_remote_wait *next = list->next;
        if (mc_worker_post(list->w, on_remote_ready, list) < 0)
            free(list);   /* out of memory: the viewer's connection times out */
        list = next;
    }
}

static void fill_free(mc_fill *f);
static void release_viewers(mc_fill *f, int ok);
static void table_remove(mc_fill_table *t, mc_fill *f);

int mc_fill_table_new(mc_fill_table **out)
{
    *out = calloc(1, sizeof **out);
    return *out ? 0 : MC_E_NOMEM;
}

void mc_fill_table_free(mc_fill_table *t)
{
    if (!t)
        return;
    for (int i = 0; i < TABLE_BUCKETS; i++)
        while (t->buckets[i]) {
            mc_fill *f = t->buckets[i];
            table_remove(t, f);
            if (f->xfer)
                mc_upstream_cancel(f->xfer);
            f->xfer = NULL;
            /* shutdown flushed the store first, so no publish is pending */
            assert(f->state != FILL_PUBLISHING);
            release_viewers(f, 0);
            fill_free(f);
        }
    free(t);
}

static mc_fill **bucket_of(mc_fill_table *t, mc_hash128 k) { return &t->buckets[k.lo % TABLE_BUCKETS]; }

static mc_fill *table_find(mc_fill_table *t, mc_hash128 k)
{
    for (mc_fill *f = *bucket_of(t, k); f; f = f->next_in_bucket)
        if (f->key.hi == k.hi && f->key.lo == k.lo)
            return f;
    return NULL;
}

static void table_remove(mc_fill_table *t, mc_fill *f)
{
    for (mc_fill **pp = bucket_of(t, f->key); *pp; pp = &(*pp)->next_in_bucket)
        if (*pp == f) {
            *pp = f->next_in_bucket;
            reg_release(f->key);
            return;
        }
}

static void fill_free(mc_fill *f)
{
    assert(f->magic == MC_FILL_MAGIC && !f->subs && !f->waiters);
    mc_buf_free(&f->chunk);
    if (f->xxh)
        XXH3_freeState(f->xxh);
    free(f->hdrs);
    free(f->keystr);
    f->magic = 0;
    free(f);
    atomic_fetch_sub_explicit(&mc_stats_global.fills_inflight, 1, memory_order_relaxed);
}

/* ---------- freshness (RFC 9111 4.2) ---------- */

void mc_fill_freshness(int status, const char *hdrs, int64_t request_time, int64_t response_time,
                       mc_fresh *out)
{
    char v[1024];
    memset(out, 0, sizeof *out);
    mc_cc cc;
    mc_cc_init(&cc);
    /* every Cache-Control line counts (RFC 9110 5.3) */
    for (const char *p = hdrs; p && *p;) {
        const char *eol = strstr(p, "\r\n");
        if (strncasecmp(p, "Cache-Control:", 14) == 0) {
            size_t n = (size_t)((eol ? eol : p + strlen(p)) - (p + 14));
            snprintf(v, sizeof v, "%.*s", (int)(n < sizeof v - 1 ? n : sizeof v - 1), p + 14);
            mc_cc_parse(&cc, v);
        }
        p = eol ? eol + 2 : NULL;
    }
    time_t date = (time_t)response_time, t;
    if (mc_hdr_find(hdrs, "Date", v, sizeof v) && mc_httpdate_parse(v, &t) == 0)
        date = t;
    int64_t age_value = 0;
    if (mc_hdr_find(hdrs, "Age", v, sizeof v))
        age_value = strtoll(v, NULL, 10) > 0 ? strtoll(v, NULL, 10) : 0;
    int64_t apparent = response_time - (int64_t)date > 0 ? response_time - (int64_t)date : 0;
    int64_t corrected = age_value + (response_time - request_time);
    out->initial_age_s = apparent > corrected ? apparent : corrected;
    if (cc.s_maxage >= 0)
        out->lifetime_s = cc.s_maxage;
    else if (cc.max_age >= 0)
        out->lifetime_s = cc.max_age;
    else if (mc_hdr_find(hdrs, "Expires", v, sizeof v)) {
        time_t exp;
        /* an invalid Expires means "already expired" (RFC 9111 5.3) */
        out->lifetime_s = mc_httpdate_parse(v, &exp) == 0 ? (int64_t)exp - (int64_t)date : 0;
    }
    if (status != 200)
        out->why_not = "status";
    else if (cc.no_store)
        out->why_not = "no-store";
    else if (cc.private_)
        out->why_not = "private";
    else if (cc.no_cache)
        out->why_not = "no-cache";
    else if (mc_hdr_find(hdrs, "Set-Cookie", v, sizeof v))
        out->why_not = "set-cookie";
    else if (out->lifetime_s <= 0)
        out->why_not = "not fresh";
    out->storable = out->why_not == NULL;
}

/* ---------- viewers ---------- */

static void unlink_resp(mc_resp **list, mc_resp *r)
{
    for (mc_resp **pp = list; *pp; pp = &(*pp)->next)
        if (*pp == r) {
            *pp = r->next;
            r->next = NULL;
            return;
        }
}

static void start_viewer(mc_fill *f, mc_resp *r)
{
    mc_resp_plan(r, f->status, f->hdrs, f->length);
    mc_resp_cache cache = {f->fresh.initial_age_s, f->fresh.lifetime_s - f->fresh.initial_age_s,
                           f->status, f->storing};
    mc_resp_start(r, f->hdrs, &cache);
    if (!r->has_body) {          /* HEAD, 304, 416: done; the fill goes on */
        unlink_resp(&f->subs, r);
        r->fill = NULL;
        mc_resp_finish(r);
    }
}

/* Release every viewer: subs finish (ok) or are aborted; waiters look up
 * again (a hit if the fill published, a new fill otherwise). */
static void release_viewers(mc_fill *f, int ok)
{
    while (f->subs) {
        mc_resp *r = f->subs;
        f->subs = r->next;
        r->next = NULL;
        r->fill = NULL;
        if (ok && r->started)
            mc_resp_finish(r);
        else
            mc_resp_fail(r, f->headers_seen ? 502 : 502);
    }
    while (f->waiters) {
        mc_resp *r = f->waiters;
        f->waiters = r->next;
        r->next = NULL;
        r->fill = NULL;
        r->waiting = 0;
        mc_lookup_retry(r);
    }
}

/* ---------- storing ---------- */

static void stop_storing(mc_fill *f, const char *why)
{
    if (!f->storing)
        return;
    f->storing = 0;
    mc_counter_add(&mc_stats_global.fills_unstored, 1);
    mc_log_warn("fill", "key=\"%s\" msg=\"not stored\" why=\"%s\"", f->keystr, why);
    if (f->nchunks > 0)
        mc_store_abort(f->w->node->store, f->key, f->seq, f->nchunks);
}

static void flush_chunk(mc_fill *f)
{
    if (!f->storing || f->chunk.len == 0)
        return;
    if (mc_store_put_chunk(f->w->node->store, f->key, f->seq, f->nchunks, f->chunk.data, f->chunk.len) < 0) {
        stop_storing(f, "store queue full");
        return;
    }
    f->nchunks++;
    mc_buf_reset(&f->chunk);
}

static void on_published_main(void *arg);

typedef struct publish_note {
    mc_fill *f;
    int ok;
} publish_note;

/* Runs on the writer thread: hand the result to the fill's worker. */
static void on_published(void *arg, int ok)
{
    mc_fill *f = arg;
    publish_note *n = malloc(sizeof *n);
    if (!n)
        return;   /* the fill stays parked; only possible when out of memory */
    n->f = f;
    n->ok = ok;
    mc_worker_post(f->w, on_published_main, n);
}

static void on_published_main(void *arg)
{
    publish_note *n = arg;
    mc_fill *f = n->f;
    int ok = n->ok;
    free(n);
    assert(f->magic == MC_FILL_MAGIC && f->state == FILL_PUBLISHING);
    mc_counter_add(ok ? &mc_stats_global.fills_published : &mc_stats_global.fills_failed, 1);
    if (!ok)
        mc_log_warn("fill", "key=\"%s\" msg=\"publish failed\"", f->keystr);
    table_remove(f->w->fills, f);
    release_viewers(f, 1);
    fill_free(f);
}

static int publish(mc_fill *f)
{
    flush_chunk(f);
    if (!f->storing)
        return 0;
    mc_object_meta m = {0};
    m.status = (uint16_t)f->status;
    m.length = f->received;
    m.chunk_size = MC_STORE_CHUNK_SIZE;
    m.nchunks = f->nchunks;
    m.seq = f->seq;
    m.response_time = f->response_time;
    m.initial_age_s = f->fresh.initial_age_s;
    m.lifetime_s = f->fresh.lifetime_s;
    m.body_checksum = XXH3_64bits_digest(f->xxh);
    m.key = f->keystr;
    m.headers = f->hdrs;
    assert(m.nchunks == (m.length + m.chunk_size - 1) / m.chunk_size);
    if (mc_store_publish(f->w->node->store, f->key, &m, on_published, f) < 0) {
        stop_storing(f, "publish refused");
        return 0;
    }
    f->state = FILL_PUBLISHING;
    return 1;
}

/* ---------- upstream callbacks ---------- */

/* Hop-by-hop fields (RFC 9110 7.6.1) and what the edge sets itself. */
static int drop_header(const char *name, const char *connection)
{
    static const char *const drop[] = {"Connection", "Keep-Alive", "Proxy-Connection", "TE", "Trailer",
                                       "Transfer-Encoding", "Upgrade", "Proxy-Authenticate",
                                       "Content-Length", "Age", "x-amz-request-id", "x-amz-id-2",
                                       "Cache-Status", "X-Cache", NULL};
    for (int i = 0; drop[i]; i++)
        if (strcasecmp(name, drop[i]) == 0)
            return 1;
    if (connection) {
        size_t nl = strlen(name);
        for (const char *p = connection; *p;) {
            while (*p == ' ' || *p == ',')
                p++;
            if (strncasecmp(p, name, nl) == 0 && (p[nl] == ',' || p[nl] == ' ' || !p[nl]))
                return 1;
            while (*p && *p != ',')
                p++;
        }
    }
    return 0;
}

static int on_up_headers(void *arg, int status, const mc_http_header *h, int n, int64_t clen)
{
    mc_fill *f = arg;
    const char *connection = NULL;
    for (int i = 0; i < n; i++)
        if (strcasecmp(h[i].name, "Connection") == 0)
            connection = h[i].value;
    mc_buf b = MC_BUF_INIT;
    for (int i = 0; i < n; i++)
        if (!drop_header(h[i].name, connection))
            mc_buf_printf(&b, "%s: %s\r\n", h[i].name, h[i].value);
    f->hdrs = mc_buf_steal(&b);
    if (!f->hdrs)
        return -1;
    f->headers_seen = 1;
    f->status = status;
    f->length = clen;
    f->response_time = time(NULL);
    mc_fill_freshness(status, f->hdrs, f->request_time, f->response_time, &f->fresh);
    f->storing = f->fresh.storable;
    if (f->storing && clen >= 0 && (uint64_t)clen > f->w->node->cfg->max_object_bytes) {
        f->storing = 0;
        f->fresh.why_not = "too big";
    }
    if (f->storing) {
        f->seq = mc_store_next_seq(f->w->node->store);
        f->xxh = XXH3_createState();
        if (!f->xxh || mc_buf_reserve(&f->chunk, MC_STORE_CHUNK_SIZE) < 0)
            return -1;
        XXH3_64bits_reset(f->xxh);
    }
    if (!f->storing)
        mc_log_debug("fill", "key=\"%s\" msg=pass why=\"%s\"", f->keystr, f->fresh.why_not);
    /* start every viewer; a viewer may finish at once (HEAD, 304) */
    mc_resp *r = f->subs;
    while (r) {
        mc_resp *next = r->next;
        start_viewer(f, r);
        r = next;
    }
    if (!f->subs && !f->storing)
        return -1;   /* nobody wants the body */
    return 0;
}

static int on_up_body(void *arg, const void *data, size_t len)
{
    mc_fill *f = arg;
    size_t limit = f->w->node->cfg->max_fill_buffer;
    for (mc_resp *r = f->subs; r; r = r->next)
        if (mc_http_backlog(r->conn) > limit)
            return MC_UPSTREAM_PAUSE;
    if (f->length >= 0 && f->received + len > (uint64_t)f->length)
        return -1;   /* more than declared: refuse, never store it */
    mc_resp *r = f->subs;
    while (r) {
        mc_resp *next = r->next;
        if (mc_resp_write(r, f->received, data, len)) {
            unlink_resp(&f->subs, r);
            r->fill = NULL;
            mc_resp_finish(r);   /* its range is complete */
        }
        r = next;
    }
    if (f->storing) {
        XXH3_64bits_update(f->xxh, data, len);
        const char *p = data;
        size_t left = len;
        while (left > 0 && f->storing) {
            size_t room = MC_STORE_CHUNK_SIZE - f->chunk.len, n = left < room ? left : room;
            mc_buf_append(&f->chunk, p, n);
            p += n;
            left -= n;
            if (f->chunk.len == MC_STORE_CHUNK_SIZE)
                flush_chunk(f);
        }
    }
    f->received += len;
    if (!f->subs && !f->storing)
        return -1;
    return 0;
}

static void on_up_done(void *arg, int rc, const char *why)
{
    mc_fill *f = arg;
    f->xfer = NULL;
    int complete = rc == 0 && f->headers_seen && (f->length < 0 || f->received == (uint64_t)f->length);
    if (!complete) {
        if (rc == 0)
            mc_log_warn("fill", "key=\"%s\" msg=\"short body\" received=%llu length=%lld", f->keystr,
                        (unsigned long long)f->received, (long long)f->length);
        stop_storing(f, rc == 0 ? "short body" : why);
        mc_counter_add(&mc_stats_global.fills_failed, 1);
        table_remove(f->w->fills, f);
        /* viewers still streaming see their connection closed; viewers that
         * never got a head get 502/504 */
        while (f->subs) {
            mc_resp *r = f->subs;
            f->subs = r->next;
            r->next = NULL;
            r->fill = NULL;
            mc_resp_fail(r, rc == MC_E_BUSY ? 504 : 502);
        }
        release_viewers(f, 0);
        fill_free(f);
        return;
    }
    int parked = f->storing && publish(f);
    if (!parked) {
        table_remove(f->w->fills, f);
        release_viewers(f, 1);
        fill_free(f);
        return;
    }
    /* the body is all sent: finish the viewers now; waiters wait for the
     * publish so that they are served from the store */
    while (f->subs) {
        mc_resp *r = f->subs;
        f->subs = r->next;
        r->next = NULL;
        r->fill = NULL;
        mc_resp_finish(r);
    }
}

static const mc_upstream_cbs fill_cbs = {on_up_headers, on_up_body, on_up_done};

/* ---------- joining ---------- */

static mc_fill *fill_start(mc_resp *r, int expired)
{
    mc_fill *f = calloc(1, sizeof *f);
    if (!f || !(f->keystr = strdup(r->keystr))) {
        free(f);
        return NULL;
    }
    f->magic = MC_FILL_MAGIC;
    f->w = r->w;
    f->key = r->key;
    f->length = -1;
    f->expired = expired;
    f->request_time = time(NULL);
    atomic_fetch_add_explicit(&mc_stats_global.fills_inflight, 1, memory_order_relaxed);
    mc_counter_add(&mc_stats_global.fills_started, 1);
    const mc_edge_config *cfg = r->w->node->cfg;
    char loop[160], via[160];
    snprintf(loop, sizeof loop, "CDN-Loop: meshcdn-%s", cfg->node_id);
    snprintf(via, sizeof via, "Via: 1.1 meshcdn-%s", cfg->node_id);
    const char *extra[] = {loop, via, NULL};
    f->xfer = mc_upstream_get(r->w->upstream, r->s3path, r->query, extra, &fill_cbs, f);
    if (!f->xfer) {
        fill_free(f);
        return NULL;
    }
    mc_fill **b = bucket_of(r->w->fills, f->key);
    f->next_in_bucket = *b;
    *b = f;
    return f;
}

void mc_fill_join(mc_resp *r, int expired)
{
    mc_fill *f = table_find(r->w->fills, r->key);
    if (f && (f->state == FILL_PUBLISHING || f->received > 0)) {
        r->fill = f;            /* too late to stream along: wait for the result */
        r->waiting = 1;
        r->next = f->waiters;
        f->waiters = r;
        return;
    }
    if (f) {
        r->result = MC_RESULT_COLLAPSED;
    } else {
        /* claim the key node-wide, or wait for the worker that has it */
        pthread_mutex_lock(&registry.mu);
        reg_entry **pp = reg_find(r->key);
        if (*pp) {
            mc_remote_wait *rw = calloc(1, sizeof *rw);
            if (rw) {
                rw->r = r;
                rw->w = r->w;
                rw->next = (*pp)->waiters;
                (*pp)->waiters = rw;
                r->remote = rw;
                r->waiting = 1;
            }
            pthread_mutex_unlock(&registry.mu);
            if (!rw)
                mc_resp_fail(r, 503);
            return;
        }
        reg_entry *e = calloc(1, sizeof *e);
        if (e) {
            e->key = r->key;
            e->owner = r->w;
            *pp = e;
        }
        pthread_mutex_unlock(&registry.mu);
        r->result = expired ? MC_RESULT_EXPIRED : MC_RESULT_MISS;
        if (!e || !(f = fill_start(r, expired))) {
            if (e)
                reg_release(r->key);
            mc_resp_fail(r, 502);
            return;
        }
    }
    r->fill = f;
    r->next = f->subs;
    f->subs = r;
    if (f->headers_seen)
        start_viewer(f, r);
}

static void leave_remote(mc_resp *r)
{
    mc_remote_wait *rw = r->remote;
    r->remote = NULL;
    r->waiting = 0;
    pthread_mutex_lock(&registry.mu);
    if (rw->posted) {
        rw->cancelled = 1;   /* the message is on its way to this thread: it frees rw */
        rw = NULL;
    } else {
        reg_entry *e = *reg_find(r->key);
        for (mc_remote_wait **pp = e ? &e->waiters : NULL; pp && *pp; pp = &(*pp)->next)
            if (*pp == rw) {
                *pp = rw->next;
                break;
            }
    }
    pthread_mutex_unlock(&registry.mu);
    free(rw);
}

void mc_fill_leave(mc_resp *r)
{
    if (r->remote) {
        leave_remote(r);
        return;
    }
    mc_fill *f = r->fill;
    assert(f && f->magic == MC_FILL_MAGIC);
    unlink_resp(r->waiting ? &f->waiters : &f->subs, r);
    r->fill = NULL;
    r->waiting = 0;
    /* nobody left to serve and nothing to store: stop fetching */
    if (!f->subs && !f->waiters && !f->storing && f->xfer && f->state == FILL_FETCHING) {
        mc_upstream_cancel(f->xfer);
        f->xfer = NULL;
        table_remove(f->w->fills, f);
        fill_free(f);
    } else if (f->xfer) {
        mc_upstream_resume(f->xfer);   /* a slow viewer may have been the brake */
    }
}

void mc_fill_drained(mc_resp *r)
{
    if (r->fill && !r->waiting && r->fill->xfer)
        mc_upstream_resume(r->fill->xfer);
}
