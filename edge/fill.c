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
#include "common/mime.h"
#include "edge/chunkw.h"
#include "edge/feed.h"
#include "edge/fill.h"
#include "edge/lookup.h"
#include "edge/mesh.h"
#include "edge/prefetch.h"
#include "edge/segment.h"
#include "edge/upstream.h"
#include "edge/vary.h"

#define TABLE_BUCKETS 1024

typedef enum {
    FILL_FETCHING,      /* waiting for the head or streaming the body */
    FILL_PUBLISHING,    /* body complete, publish queued on the writer */
} fill_state;

/* Another encoding of an encodable response (compress, mesh.h), stored
 * from the same upstream body as the viewers' variant, so that one origin
 * fetch fills every encoding. It only stores: no viewer streams it. */
typedef struct fill_side {
    struct mc_fill *f;
    mc_mesh_encoder enc;
    int storing;
    char *hdrs;                  /* its stored headers (owned) */
    char *skeystr;               /* its variant's key string (owned) */
    mc_hash128 skey;
    uint64_t received;
    mc_chunkw cw;                /* its body's chunks (at skey) */
    XXH3_state_t *xxh;
} fill_side;

struct mc_fill {
    uint32_t magic;
    fill_state state;
    mc_worker *w;
    mc_edge_snap *snap;          /* the configuration it started with (a reference) */
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
    mc_chunkw cw;                /* the body's chunks (at skey, told to feed) */
    XXH3_state_t *xxh;
    mc_fresh fresh;
    int64_t request_time, response_time;
    int64_t request_ms, response_ms;   /* the same on a monotonic clock: response_delay */
    const mc_cache_policy *pol;  /* the behavior of its path (in snap) */
    mc_hash128 skey;             /* where it is stored: key, or the variant's (vary.h) */
    char *skeystr;               /* the stored key string (owned) */
    char *req_block;             /* the triggering request's headers, for Vary (owned) */
    char vary[512];              /* the response's Vary names when varies */
    int varies;
    mc_object_meta stale;        /* the stale copy being revalidated (owned) */
    int has_stale;
    int reval_304;               /* the conditional request got 304 */
    mc_mail published;           /* the store's answer, posted back to this worker */
    int publish_ok;              /* written by the writer before the post */
    int upstream_chunked;        /* the body's end is marked (Content-Length or chunked) */
    char up_age[24];             /* the upstream's Age, dropped from f->hdrs; "" = none, "," = invalid */
    int paused;                  /* the upstream waits for a slow viewer */
    struct event *stall;         /* how long a slow viewer may hold the others back */
    struct event *kick;          /* runs pass_waiters outside libcurl's callbacks */
    struct event *store_wait;    /* paused for the store writer: polls its queue */
    int store_paused;
    int64_t store_paused_ms;     /* how long this pause for the writer has lasted */
    int private_;                /* a pass fill of its own: not in the table or registry */
    uint64_t generation;         /* the store's purge generation when it began */
    mc_mesh_check mesh;          /* glTF validation of a stored body (mesh.h) */
    int hold;                    /* mesh_validation=refuse: viewers wait for the verdict */
    int encoding;                /* MC_MESH_ENC_* of the triggering viewer's variant (compress) */
    int encodable;               /* a compressible 200: stored once per encoding (mesh.h) */
    mc_mesh_encoder enc;         /* encodes the viewers' variant as it streams (enc.state set: gzip,
                                  * br); length is then -1 */
    char *plain_hdrs;            /* the headers before encoding, for the sides (owned) */
    fill_side *sides;            /* the other encodings (owned) */
    int nsides;
    int64_t up_length;           /* the upstream's Content-Length (-1 unknown) */
    uint64_t up_received;        /* upstream body bytes consumed (received counts what is sent) */
    const mc_fill_observer *obs; /* a prefetch watching it (fill.h), or NULL */
    void *obs_arg;
    int obs_stored, obs_given_up;
    int collect;                 /* a .gltf to prefetch from: its body is kept in doc */
    mc_buf doc;                  /* the upstream body of that .gltf (owned) */
    mc_segment_writer *segw;     /* stored as segments instead of whole (segment.h) */
    mc_feed *feed;               /* what late joiners follow (feed.h; a reference), NULL when private */
    int stored_ok;               /* the publish committed */
};


struct mc_fill_table {
    mc_fill *buckets[TABLE_BUCKETS];
};

/* ---------- the node-wide registry of keys being filled ---------- */

typedef struct reg_entry {
    mc_hash128 key;
    mc_worker *owner;
    int pass;                   /* the response is not stored: others fetch on their own */
    mc_feed *feed;              /* the fill's, for viewers on other workers (a reference) */
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

int mc_fill_running(mc_hash128 key)
{
    pthread_mutex_lock(&registry.mu);
    int found = *reg_find(key) != NULL;
    pthread_mutex_unlock(&registry.mu);
    return found;
}

/* The fill for key ended (published or not): its followers on every worker
 * finish or look up again (feed.h). */
static void reg_release(mc_hash128 key, int published, uint64_t total)
{
    pthread_mutex_lock(&registry.mu);
    reg_entry **pp = reg_find(key), *e = *pp;
    if (e)
        *pp = e->next;
    pthread_mutex_unlock(&registry.mu);
    if (e) {
        mc_feed_end(e->feed, published, total);
        mc_feed_unref(e->feed);
    }
    free(e);
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
            reg_release(f->key, f->stored_ok, f->received);
            return;
        }
}

static void fill_free(mc_fill *f)
{
    assert(f->magic == MC_FILL_MAGIC && !f->subs && !f->waiters);
    mc_chunkw_free(&f->cw);
    if (f->has_stale)
        mc_object_meta_free(&f->stale);
    if (f->xxh)
        XXH3_freeState(f->xxh);
    if (f->stall)
        event_free(f->stall);
    if (f->kick)
        event_free(f->kick);
    if (f->store_wait)
        event_free(f->store_wait);
    free(f->hdrs);
    free(f->keystr);
    free(f->skeystr);
    free(f->req_block);
    mc_segment_writer_end(f->segw);
    mc_mesh_encoder_free(&f->enc);
    free(f->plain_hdrs);
    for (int i = 0; i < f->nsides; i++) {
        fill_side *sd = &f->sides[i];
        mc_mesh_encoder_free(&sd->enc);
        mc_chunkw_free(&sd->cw);
        if (sd->xxh)
            XXH3_freeState(sd->xxh);
        free(sd->hdrs);
        free(sd->skeystr);
    }
    free(f->sides);
    mc_snap_unref(f->snap);
    mc_feed_unref(f->feed);
    mc_buf_free(&f->doc);
    const mc_fill_observer *obs = f->obs;
    void *obs_arg = f->obs_arg;
    int stored = f->obs_stored, given_up = f->obs_given_up;
    uint64_t bytes = f->received;
    f->magic = 0;
    free(f);
    atomic_fetch_sub_explicit(&mc_stats_global.fills_inflight, 1, memory_order_relaxed);
    if (obs)
        obs->on_end(obs_arg, stored, given_up, bytes);   /* last: it may start another fill */
}

/* ---------- freshness (RFC 9111 4.2) ---------- */

static int heuristic_status(int status)
{
    static const int ok[] = {200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (status == ok[i])
            return 1;
    return 0;
}

/* Age (RFC 9111 5.1): one non-negative integer (too large: 2^31). A value
 * that is not (letters, a sign, a fraction, parameters, a list, a second
 * line: the fill passes "," for that) is taken as "very old", so the response
 * is stale at once and revalidated before use: 5.1 lets a cache ignore it,
 * but a copy of unknown age is never served as fresh this way (cache-tests
 * age-parse-*). */
static int64_t age_parse(const char *v)
{
    while (*v == ' ' || *v == '\t')
        v++;
    const char *d = v;
    int64_t n = 0;
    while (*d >= '0' && *d <= '9') {
        n = n < 2147483648LL ? n * 10 + (*d - '0') : n;
        d++;
    }
    while (*d == ' ' || *d == '\t')
        d++;
    if (d == v || *d)
        return 2147483648LL;
    return n < 2147483648LL ? n : 2147483648LL;
}

/* Statuses whose caching rules the edge implements (those RFC 9110 defines),
 * for must-understand (RFC 9111 5.2.2.3). */
static int understood_status(int status)
{
    return (status >= 200 && status <= 206) || (status >= 300 && status <= 308 && status != 306) ||
           (status >= 400 && status <= 417) || status == 421 || status == 422 || status == 426 ||
           (status >= 500 && status <= 505);
}

void mc_fill_freshness(int status, const char *hdrs, int64_t request_time, int64_t response_time,
                       const mc_cache_policy *pol, mc_fresh *out)
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
    time_t date = (time_t)response_time, t, lm = 0;
    if (mc_hdr_find(hdrs, "Date", v, sizeof v) && mc_httpdate_parse(v, &t) == 0)
        date = t;
    int64_t age_value = 0;
    if (mc_hdr_find(hdrs, "Age", v, sizeof v))
        age_value = age_parse(v);
    int64_t apparent = response_time - (int64_t)date > 0 ? response_time - (int64_t)date : 0;
    int64_t corrected = age_value + (response_time - request_time);
    out->initial_age_s = apparent > corrected ? apparent : corrected;
    int has_lm = mc_hdr_find(hdrs, "Last-Modified", v, sizeof v) && mc_httpdate_parse(v, &lm) == 0;
    out->has_validator = has_lm || mc_hdr_find(hdrs, "ETag", v, sizeof v) != NULL;
    int explicit_ = 1;
    if (cc.s_maxage >= 0)
        out->lifetime_s = cc.s_maxage;
    else if (cc.max_age >= 0)
        out->lifetime_s = cc.max_age;
    else if (mc_hdr_find(hdrs, "Expires", v, sizeof v)) {
        time_t exp;
        /* an invalid Expires means "already expired" (RFC 9111 5.3) */
        out->lifetime_s = mc_httpdate_parse(v, &exp) == 0 ? (int64_t)exp - (int64_t)date : 0;
    } else {
        explicit_ = 0;
        if ((heuristic_status(status) || cc.public_) && has_lm && date > lm) {
            int64_t h = ((int64_t)date - (int64_t)lm) * pol->heuristic_percent / 100;
            out->lifetime_s = h < pol->heuristic_max_s ? h : pol->heuristic_max_s;
            out->heuristic = 1;
        }
    }
    /* the behavior's TTLs, as CloudFront's cache policies apply them */
    if (explicit_) {
        if (out->lifetime_s < pol->min_ttl_s)
            out->lifetime_s = pol->min_ttl_s;
        if (pol->max_ttl_s >= 0 && out->lifetime_s > pol->max_ttl_s)
            out->lifetime_s = pol->max_ttl_s;
    } else if (pol->negative_ttl_s > 0 && (status == 404 || status == 410)) {
        out->lifetime_s = pol->negative_ttl_s;
        out->heuristic = 0;
    } else if (pol->default_ttl_s >= 0 && heuristic_status(status)) {
        out->lifetime_s = pol->default_ttl_s;
        out->heuristic = 0;
    }
    if (out->lifetime_s < 0)
        out->lifetime_s = 0;
    out->no_cache = cc.no_cache;
    /* s-maxage implies proxy-revalidate for a shared cache (RFC 9111 5.2.2.10) */
    out->no_stale = cc.must_revalidate || cc.proxy_revalidate || cc.s_maxage >= 0;
    out->swr_s = cc.stale_while_revalidate >= 0 ? cc.stale_while_revalidate : pol->default_swr_s;
    out->sie_s = cc.stale_if_error >= 0 ? cc.stale_if_error : pol->default_sie_s;
    if (status < 200 || status == 206 || status == 304)
        out->why_not = "status";
    else if (!explicit_ && !cc.public_ && !heuristic_status(status))
        out->why_not = "status";
    else if (cc.must_understand && !understood_status(status))
        out->why_not = "must-understand";
    else if (cc.no_store && !cc.must_understand)   /* must-understand overrides it (5.2.2.3) */
        out->why_not = "no-store";
    else if (cc.private_)
        out->why_not = "private";
    else if (!pol->set_cookie_strip && mc_hdr_find(hdrs, "Set-Cookie", v, sizeof v))
        out->why_not = "set-cookie";
    else if (cc.no_cache && !out->has_validator)
        out->why_not = "no-cache without a validator";
    else if (out->lifetime_s <= 0 && !(out->has_validator && (explicit_ || cc.no_cache)))
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

/* Take the first viewer off a fill's list; it no longer belongs to the fill. */
static mc_resp *pop_viewer(mc_resp **list)
{
    mc_resp *r = *list;
    *list = r->next;
    r->next = NULL;
    r->fill = NULL;
    r->waiting = 0;
    return r;
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
        mc_resp *r = pop_viewer(&f->subs);
        if (!r->started) {            /* a revalidation: serve from the store now */
            r->refreshed = ok && f->reval_304;
            mc_lookup_retry(r);
        } else if (ok) {
            mc_resp_finish(r);
        } else {
            mc_resp_fail(r, 502);
        }
    }
    while (f->waiters) {
        mc_resp *r = pop_viewer(&f->waiters);
        r->refreshed = ok && f->reval_304;
        mc_lookup_retry(r);
    }
}

/* ---------- storing ---------- */

/* mesh_validation=refuse: the viewers held for the verdict get 502 (the
 * body was not streamed to them, and it will not be stored). */
static void fail_held(mc_fill *f, const char *detail)
{
    if (!f->hold)
        return;
    f->hold = 0;
    while (f->waiters) {
        mc_resp *r = pop_viewer(&f->waiters);
        mc_resp_fail_detail(r, 502, detail);
    }
}

static void side_stop(fill_side *sd)
{
    if (!sd->storing)
        return;
    sd->storing = 0;
    mc_chunkw_abort(&sd->cw);
}

static void stop_storing(mc_fill *f, const char *why)
{
    for (int i = 0; i < f->nsides; i++)
        side_stop(&f->sides[i]);
    if (!f->storing)
        return;
    f->storing = 0;
    if (f->feed)
        mc_feed_stop(f->feed);   /* its late joiners cannot read the rest */
    mc_counter_add(&mc_stats_global.fills_unstored, 1);
    mc_log_warn("fill", "key=\"%s\" msg=\"not stored\" why=\"%s\"", f->keystr, why);
    mc_chunkw_abort(&f->cw);
    fail_held(f, "mesh-unvalidated");
}

static void flush_chunk(mc_fill *f)
{
    if (f->storing && mc_chunkw_flush(&f->cw) < 0)
        stop_storing(f, "store queue full");
}

static void side_flush(fill_side *sd)
{
    if (sd->storing && mc_chunkw_flush(&sd->cw) < 0)
        side_stop(sd);
}

/* The encoder's output for a side: into its chunks. */
static void side_sink(void *arg, const void *data, size_t len)
{
    fill_side *sd = arg;
    if (!sd->storing)
        return;
    if (sd->received + len > sd->f->w->node->cfg->max_object_bytes) {
        side_stop(sd);
        return;
    }
    XXH3_64bits_update(sd->xxh, data, len);
    if (mc_chunkw_append(&sd->cw, data, len) < 0) {
        side_stop(sd);
        return;
    }
    sd->received += len;
}

/* Set up the sides of an encodable response being stored: every encoding
 * of the behavior's set, and identity, but the viewers' own. */
static int sides_start(mc_fill *f, int status, const mc_http_header *h, int n)
{
    if (!f->encodable || !f->storing || !f->varies || !f->plain_hdrs)
        return 0;
    f->sides = calloc(2, sizeof *f->sides);
    if (!f->sides)
        return -1;
    for (int e = MC_MESH_ENC_IDENTITY; e <= MC_MESH_ENC_BR; e++) {
        if (e == f->encoding || (e != MC_MESH_ENC_IDENTITY && !(f->pol->compress & (1u << e))))
            continue;
        fill_side *sd = &f->sides[f->nsides++];
        sd->f = f;
        if (!(sd->hdrs = strdup(f->plain_hdrs)) || mc_mesh_encode_headers(status, h, n, e, NULL, &sd->hdrs) != 1)
            return -1;
        mc_buf block = MC_BUF_INIT, suffix = MC_BUF_INIT, full = MC_BUF_INIT;
        mc_buf_puts(&block, f->req_block);
        if (mc_mesh_ae_set(&block, e) == 0 && mc_vary_suffix(f->vary, block.data, &suffix) == 0)
            mc_buf_printf(&full, "%s%s", f->keystr, suffix.data);
        mc_buf_free(&block);
        mc_buf_free(&suffix);
        if (!(sd->skeystr = mc_buf_steal(&full)))
            return -1;
        sd->skey = mc_hash_key(sd->skeystr, strlen(sd->skeystr));
        if (mc_mesh_encoder_init(&sd->enc, e, f->up_length) < 0 || !(sd->xxh = XXH3_createState()))
            return -1;
        XXH3_64bits_reset(sd->xxh);
        if (mc_chunkw_begin(&sd->cw, f->w->node->store, NULL, sd->skey, 0) < 0)
            return -1;
        sd->storing = 1;
    }
    return 0;
}

/* A side's publish is not waited for: it is queued before the viewers'
 * variant's, so the writer (in order) has stored it when that one's
 * waiters look up again. */
static void side_published(void *arg, int ok)
{
    (void)arg, (void)ok;
}

/* The metadata of one stored body of f (the viewers' variant or a side):
 * the response's status, times and freshness, that body's own bytes. */
static mc_object_meta body_meta(const mc_fill *f, uint64_t length, uint32_t nchunks, uint64_t seq,
                                XXH3_state_t *xxh, char *key, char *hdrs)
{
    mc_object_meta m = {0};
    m.status = (uint16_t)f->status;
    m.length = length;
    m.chunk_size = MC_STORE_CHUNK_SIZE;
    m.nchunks = nchunks;
    m.seq = seq;
    m.response_time = f->response_time;
    m.initial_age_s = f->fresh.initial_age_s;
    m.lifetime_s = f->fresh.lifetime_s;
    m.body_checksum = XXH3_64bits_digest(xxh);
    m.generation = f->generation;
    m.key = key;
    m.headers = hdrs;
    return m;
}

static void side_publish(mc_fill *f, fill_side *sd)
{
    side_flush(sd);
    if (!sd->storing)
        return;
    mc_object_meta m = body_meta(f, sd->received, sd->cw.nchunks, sd->cw.seq, sd->xxh, sd->skeystr, sd->hdrs);
    if (mc_store_publish_variant(f->w->node->store, sd->skey, &m, &f->key, f->vary, f->pol->max_variants,
                                 side_published, NULL) < 0) {
        side_stop(sd);
        return;
    }
    sd->storing = 0;   /* the store has it */
}

static void on_published_main(void *arg);
static void on_store_wait(evutil_socket_t fd, short what, void *arg);

/* Runs on the writer thread: hand the result to the fill's worker (the mail
 * lives in the fill, so this cannot fail; the mailbox lock orders publish_ok). */
static void on_published(void *arg, int ok)
{
    mc_fill *f = arg;
    f->publish_ok = ok;
    mc_worker_post_mail(f->w, &f->published, on_published_main, f);
}

/* After a revalidation that could not refresh the copy, viewers fetch it
 * whole instead of revalidating again. */
static void bypass_stale(mc_fill *f)
{
    for (mc_resp *r = f->subs; r; r = r->next)
        r->bypass_stale = 1;
    for (mc_resp *r = f->waiters; r; r = r->next)
        r->bypass_stale = 1;
}

static void on_published_main(void *arg)
{
    mc_fill *f = arg;
    int ok = f->publish_ok;
    assert(f->magic == MC_FILL_MAGIC && f->state == FILL_PUBLISHING);
    mc_counter_add(ok ? &mc_stats_global.fills_published : &mc_stats_global.fills_failed, 1);
    f->obs_stored = ok && !f->reval_304;
    if (!ok)
        mc_log_warn("fill", "key=\"%s\" msg=\"publish failed\"", f->keystr);
    if (!ok && f->reval_304)
        bypass_stale(f);
    f->stored_ok = ok;
    table_remove(f->w->fills, f);
    release_viewers(f, ok);
    fill_free(f);
}

/* Fields that describe the stored body itself: a 304 does not change them
 * (RFC 9111 3.2 excepts Content-Length and lets a cache keep what assures
 * the stored response's integrity; cache-tests 304-etag-update-response-*). */
static int describes_body(const char *name)
{
    static const char *const keep[] = {"Content-Length", "Content-Encoding", "Content-MD5", "Content-Range",
                                       "ETag", NULL};
    for (int i = 0; keep[i]; i++)
        if (strcasecmp(name, keep[i]) == 0)
            return 1;
    return 0;
}

/* Copy block's lines into b (block is the stored one when stored, else the
 * fresh one; other is the other block). */
static void copy_lines(mc_buf *b, const char *block, const char *other, int stored)
{
    char name[128], tmp[8];
    for (const char *p = block; p && *p;) {
        const char *eol = strstr(p, "\r\n"), *colon = strchr(p, ':');
        size_t ll = eol ? (size_t)(eol - p) + 2 : strlen(p);
        size_t nl = colon && colon < p + ll ? (size_t)(colon - p) : 0;
        if (nl > 0 && nl < sizeof name) {
            memcpy(name, p, nl);
            name[nl] = '\0';
            int in_other = mc_hdr_find(other, name, tmp, sizeof tmp) != NULL;
            /* stored: kept unless the 304 replaces it; 304: added unless the
             * stored body's own field stays */
            if (stored ? !in_other || describes_body(name) : !(in_other && describes_body(name)))
                mc_buf_append(b, p, ll);
        }
        p += ll;
    }
}

/* RFC 9111 3.2: the stored header fields, each replaced by the 304's field
 * of the same name when it has one (but for those describing the body),
 * plus the 304's new fields. */
char *mc_fill_merge_headers(const char *stored, const char *fresh)
{
    mc_buf b = MC_BUF_INIT;
    copy_lines(&b, stored, fresh, 1);
    copy_lines(&b, fresh, stored, 0);
    return mc_buf_steal(&b);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Freshness of what the upstream sent: f->hdrs no longer holds its Age
 * (viewers get the edge's own), but the corrected initial age (RFC 9111
 * 4.2.3) starts from it. */
static void upstream_freshness(mc_fill *f, int status, const char *hdrs, mc_fresh *out)
{
    char *with_age = NULL;
    if (f->up_age[0]) {
        mc_buf b = MC_BUF_INIT;
        mc_buf_printf(&b, "%sAge: %s\r\n", hdrs, f->up_age);
        with_age = mc_buf_steal(&b);
    }
    /* response_delay in whole seconds elapsed, not a difference of two
     * time() readings (a 1 ms fetch across a second boundary is not 1 s) */
    int64_t delay = (f->response_ms - f->request_ms) / 1000;
    mc_fill_freshness(status, with_age ? with_age : hdrs, f->response_time - (delay > 0 ? delay : 0),
                      f->response_time, f->pol, out);
    free(with_age);
}

/* A 304 answered the conditional request: refresh the stored metadata
 * (headers, times, freshness) without touching the body. */
static int refresh_stale(mc_fill *f)
{
    char *merged = mc_fill_merge_headers(f->stale.headers, f->hdrs);
    if (!merged)
        return 0;
    mc_fresh fr;
    upstream_freshness(f, f->stale.status, merged, &fr);
    mc_object_meta m = f->stale;
    m.headers = merged;
    m.response_time = f->response_time;
    m.initial_age_s = fr.initial_age_s;
    m.lifetime_s = fr.lifetime_s;
    m.generation = f->generation;
    m.flags &= ~MC_META_F_INVALIDATED;   /* revalidated: a soft purge is answered */
    int rc = fr.storable ? mc_store_update_meta(f->w->node->store, f->skey, &m, on_published, f) : -1;
    free(merged);
    if (rc < 0)
        return 0;
    f->state = FILL_PUBLISHING;
    return 1;
}

/* The upstream failed (no response) or answered 5xx: viewers with a stale
 * copy that may be served on error get it (stale-if-error). When the upstream
 * gave no response (`failed`), those whose copy forbids it get 504 with a
 * Cache-Status saying so; after a 5xx they get the 5xx. Returns how many
 * were served stale. */
static int serve_stale_on_error(mc_resp **list, int failed)
{
    int n = 0;
    for (mc_resp **pp = list; *pp;) {
        mc_resp *r = *pp;
        if (!r->started && r->has_meta) {
            if (!mc_lookup_stale_allowed(r, 1) && !failed) {
                pp = &r->next;
                continue;
            }
            *pp = r->next;
            r->next = NULL;
            r->fill = NULL;
            r->waiting = 0;
            if (mc_lookup_stale_allowed(r, 1)) {
                mc_lookup_serve_stale(r, "stale-if-error");
                n++;
            } else {
                mc_resp_fail_detail(r, 504, "stale-forbidden");
            }
            continue;
        }
        pp = &r->next;
    }
    return n;
}

/* The glTF checks (mesh.h) before a body becomes the cached copy. Returns
 * 0 when it may be stored. */
static int mesh_refused(mc_fill *f)
{
    if (f->mesh.fmt == MC_MESH_NONE)
        return 0;
    const char *why;
    if (mc_mesh_check_finish(&f->mesh, &why) != MC_MESH_INVALID)
        return 0;
    mc_mesh_count_invalid(f->mesh.fmt);
    mc_log_warn("fill", "key=\"%s\" msg=\"invalid mesh\" format=%s why=\"%s\" bytes=%llu action=%s", f->keystr,
                mc_mesh_format_name(f->mesh.fmt), why, (unsigned long long)f->received, f->hold ? "refuse" : "pass");
    fail_held(f, "mesh-invalid");
    stop_storing(f, "invalid mesh");
    return 1;
}

static int publish(mc_fill *f)
{
    flush_chunk(f);
    if (!f->storing || mesh_refused(f))
        return 0;
    mc_object_meta m = body_meta(f, f->received, f->cw.nchunks, f->cw.seq, f->xxh, f->skeystr, f->hdrs);
    assert(m.nchunks == (m.length + m.chunk_size - 1) / m.chunk_size);
    for (int i = 0; i < f->nsides; i++)
        side_publish(f, &f->sides[i]);
    int rc = f->varies ? mc_store_publish_variant(f->w->node->store, f->skey, &m, &f->key, f->vary,
                                                    f->pol->max_variants, on_published, f)
                       : mc_store_publish(f->w->node->store, f->skey, &m, on_published, f);
    if (rc < 0) {
        stop_storing(f, "publish refused");
        return 0;
    }
    f->state = FILL_PUBLISHING;
    if (f->feed)
        mc_feed_complete(f->feed);
    return 1;
}

/* ---------- viewers that should not wait ---------- */

/* Runs from the loop (f->kick): local waiters of a fill that will not be
 * stored look up again and fetch on their own. */
static void pass_waiters(evutil_socket_t fd, short what, void *arg)
{
    mc_fill *f = arg;
    (void)fd, (void)what;
    while (f->waiters) {
        mc_resp *r = pop_viewer(&f->waiters);
        mc_lookup_retry(r);
    }
}

/* The response will not be stored, so waiting for it gains nothing: the
 * other workers' waiters and later requests fetch on their own (a
 * hit-for-pass), this worker's waiters too, once out of this callback. */
static void let_others_pass(mc_fill *f)
{
    pthread_mutex_lock(&registry.mu);
    reg_entry *e = *reg_find(f->key);
    if (e && e->owner == f->w) {
        e->pass = 1;
        mc_feed_pass(e->feed);   /* its followers look up again: hit-for-pass */
    }
    pthread_mutex_unlock(&registry.mu);
    if (f->waiters && f->kick)
        event_active(f->kick, EV_TIMEOUT, 0);
}

/* A viewer has held the upstream paused for stall_timeout: the viewers that
 * are that slow are cut off so that the others (and the store) go on. */
static void on_stall(evutil_socket_t fd, short what, void *arg)
{
    mc_fill *f = arg;
    (void)fd, (void)what;
    if (!f->paused || !f->xfer)
        return;
    size_t limit = f->snap->cfg.max_fill_buffer;
    for (mc_resp **pp = &f->subs; *pp;) {
        mc_resp *r = *pp;
        if (mc_http_backlog(r->conn) <= limit) {
            pp = &r->next;
            continue;
        }
        *pp = r->next;
        r->next = NULL;
        r->fill = NULL;
        mc_log_warn("fill", "key=\"%s\" msg=\"viewer too slow, cut off\" client=%s", f->keystr,
                    mc_http_peer(r->conn));
        mc_resp_fail(r, 504);
    }
    f->paused = 0;
    mc_upstream_resume(f->xfer);
}

/* ---------- upstream callbacks ---------- */

int mc_fill_drop_header(const char *name, const char *connection)
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

/* The response varies: store it under the triggering request's variant, and
 * let viewers that asked for another variant wait and look up again.
 * Returns -1 for Vary: *. */
static int pick_variant(mc_fill *f)
{
    int v = mc_vary_names(f->hdrs, f->vary, sizeof f->vary);
    if (v <= 0)
        return v;
    mc_buf suffix = MC_BUF_INIT, full = MC_BUF_INIT, block = MC_BUF_INIT;
    mc_vary_suffix(f->vary, f->req_block, &suffix);
    mc_buf_printf(&full, "%s%s", f->keystr, suffix.data);
    free(f->skeystr);
    f->skeystr = mc_buf_steal(&full);
    if (!f->skeystr) {
        mc_buf_free(&suffix);
        return -1;
    }
    f->skey = mc_hash_key(f->skeystr, strlen(f->skeystr));
    f->varies = 1;
    for (mc_resp **pp = &f->subs; *pp;) {
        mc_resp *r = *pp;
        mc_buf theirs = MC_BUF_INIT;
        mc_vary_req_block(r->req, &block);
        if (f->pol->compress)
            mc_mesh_ae_normalise(&block, f->pol->compress, NULL);
        mc_vary_suffix(f->vary, block.data, &theirs);
        int same = theirs.data && strcmp(theirs.data, suffix.data) == 0;
        mc_buf_free(&theirs);
        if (same) {
            pp = &r->next;
            continue;
        }
        *pp = r->next;
        r->waiting = 1;
        r->next = f->waiters;
        f->waiters = r;
    }
    mc_buf_free(&block);
    mc_buf_free(&suffix);
    return 1;
}

/* Content-Type by the path's extension (mime.h) when the origin sent none
 * or application/octet-stream and the extension knows better. keystr is
 * the normalised path (a query after '?' is ignored). */
const char *mc_fill_fix_type(const char *ctype, const char *keystr)
{
    if (ctype && strncasecmp(ctype, "application/octet-stream", 24) != 0)
        return NULL;
    if (ctype && ctype[24] && ctype[24] != ';' && ctype[24] != ' ')
        return NULL;
    char path[1024];
    snprintf(path, sizeof path, "%.*s", (int)strcspn(keystr, "?"), keystr);
    const char *t = mc_mime_for_path(path);
    return strcmp(t, "application/octet-stream") != 0 ? t : NULL;
}

/* A Vary line without Origin (the edge answers CORS itself, so the stored
 * copy serves every page origin); dropped when nothing else is left. */
static void vary_without_origin(mc_buf *b, const char *value)
{
    mc_buf v = MC_BUF_INIT;
    for (const char *p = value; *p;) {
        p += strspn(p, " ,\t");
        size_t l = strcspn(p, " ,\t");
        if (l && !(l == 6 && strncasecmp(p, "Origin", 6) == 0))
            mc_buf_printf(&v, "%s%.*s", v.len ? ", " : "", (int)l, p);
        p += l;
    }
    if (v.len)
        mc_buf_printf(b, "Vary: %s\r\n", v.data);
    mc_buf_free(&v);
}

/* compress (mesh.h mc_mesh_encode_headers): the viewers' variant, when
 * gzip or br, is encoded as it streams (its viewers get it chunked). */
static int encode_decide(mc_fill *f, int status, const mc_http_header *h, int n)
{
    if (!f->pol->compress)
        return 0;
    if (status == 200 && !(f->plain_hdrs = strdup(f->hdrs)))
        return -1;
    int rc = mc_mesh_encode_headers(status, h, n, f->encoding, f->has_stale ? f->stale.headers : NULL, &f->hdrs);
    if (rc != 1)
        return rc;
    f->encodable = 1;
    if (f->encoding == MC_MESH_ENC_IDENTITY)
        return 0;
    if (mc_mesh_encoder_init(&f->enc, f->encoding, f->up_length) < 0)
        return -1;
    f->length = -1;
    return 0;
}

static int on_up_headers(void *arg, int status, const mc_http_header *h, int n, int64_t clen)
{
    mc_fill *f = arg;
    char ctbuf[256];
    const char *connection = NULL;
    f->up_age[0] = 0;
    for (int i = 0; i < n; i++) {
        if (strcasecmp(h[i].name, "Connection") == 0)
            connection = h[i].value;
        if (strcasecmp(h[i].name, "Age") == 0)   /* a second line makes it invalid */
            snprintf(f->up_age, sizeof f->up_age, "%s", f->up_age[0] || !h[i].value[0] ? "," : h[i].value);
    }
    const mc_cache_policy *pol = f->pol;
    for (int i = 0; i < n; i++)
        if (strcasecmp(h[i].name, "Transfer-Encoding") == 0 && strcasestr(h[i].value, "chunked"))
            f->upstream_chunked = 1;
    mc_buf b = MC_BUF_INIT;
    const char *ctype = NULL;
    for (int i = 0; i < n; i++) {
        if (mc_fill_drop_header(h[i].name, connection) ||
            (pol->set_cookie_strip && strcasecmp(h[i].name, "Set-Cookie") == 0))
            continue;
        if (strcasecmp(h[i].name, "Content-Type") == 0) {
            if (!ctype && status >= 200 && status < 300 && mc_fill_fix_type(h[i].value, f->keystr))
                continue;   /* replaced below */
            ctype = h[i].value;
        }
        if (pol->cors_origins[0] && strcasecmp(h[i].name, "Vary") == 0) {
            vary_without_origin(&b, h[i].value);
            continue;
        }
        mc_buf_printf(&b, "%s: %s\r\n", h[i].name, h[i].value);
    }
    if (!ctype && status >= 200 && status < 300 && (ctype = mc_fill_fix_type(NULL, f->keystr)) != NULL)
        mc_buf_printf(&b, "Content-Type: %s\r\n", ctype);
    f->hdrs = mc_buf_steal(&b);
    if (!f->hdrs)
        return -1;
    f->headers_seen = 1;
    f->status = status;
    f->length = f->up_length = clen;
    f->response_time = time(NULL);
    f->response_ms = mono_ms();
    if (encode_decide(f, status, h, n) < 0)
        return -1;
    if (f->has_stale && status == 304) {
        f->reval_304 = 1;        /* viewers wait for the refreshed metadata */
        return 0;
    }
    if (f->has_stale && status >= 500) {
        serve_stale_on_error(&f->subs, 0);
        serve_stale_on_error(&f->waiters, 0);
    }
    upstream_freshness(f, status, f->hdrs, &f->fresh);
    f->storing = f->fresh.storable;
    if (pick_variant(f) < 0) {
        f->storing = 0;
        f->fresh.why_not = "vary *";
    }
    if (f->storing && status == 200 && !f->varies && !f->enc.state && f->nsides == 0 && clen >= 0 && !f->private_) {
        /* above the behavior's segment_threshold: stored as segments (segment.h) */
        mc_object_meta hm = {0};
        hm.generation = f->generation;
        hm.response_time = f->response_time;
        hm.initial_age_s = f->fresh.initial_age_s;
        hm.lifetime_s = f->fresh.lifetime_s;
        if ((f->segw = mc_segment_writer_start(f->w, f->key, f->keystr, f->hdrs, (uint64_t)clen, &hm,
                                               pol->segment_threshold)) != NULL) {
            f->storing = 0;
            f->fresh.why_not = "segmented";
        }
    }
    if (f->storing && clen >= 0 && (uint64_t)clen > f->snap->cfg.max_object_bytes) {
        f->storing = 0;
        f->fresh.why_not = "too big";
    }
    if (f->storing && clen < 0 && !f->upstream_chunked) {
        /* ended by closing the connection: a cut body would look complete */
        f->storing = 0;
        f->fresh.why_not = "close-delimited";
    }
    if (!f->storing && !f->private_)
        let_others_pass(f);
    /* a body the origin encoded itself (Content-Encoding) is not checked:
     * the validators read the plain bytes */
    int origin_encoded = 0;
    for (int i = 0; i < n; i++)
        if (strcasecmp(h[i].name, "Content-Encoding") == 0 && strcasecmp(h[i].value, "identity") != 0)
            origin_encoded = 1;
    if (f->storing && status == 200 && pol->mesh_validation != MC_MESH_VALIDATION_OFF && !origin_encoded) {
        char ct[256];
        mc_mesh_check_init(&f->mesh, mc_mesh_format_of(mc_hdr_find(f->hdrs, "Content-Type", ct, sizeof ct), f->keystr));
        if (f->mesh.fmt != MC_MESH_NONE && pol->mesh_validation == MC_MESH_VALIDATION_REFUSE) {
            /* hold the viewers until the body is checked: they are served
             * from the store after the publish, or get 502 */
            f->hold = 1;
            while (f->subs) {
                mc_resp *r = f->subs;
                f->subs = r->next;
                r->waiting = 1;
                r->next = f->waiters;
                f->waiters = r;
            }
        }
    }
    if (f->obs && !f->subs && !f->waiters && f->obs->on_head(f->obs_arg, status, clen) < 0) {
        f->obs_given_up = 1;   /* a prefetch that does not fit its budget */
        return -1;
    }
    if (f->storing && mc_prefetch_wanted(pol, status, mc_hdr_find(f->hdrs, "Content-Type", ctbuf, sizeof ctbuf),
                                         f->keystr)) {
        if (clen >= 0 && (uint64_t)clen > f->snap->cfg.prefetch_max_gltf)
            mc_prefetch_count_skip(MC_PREFETCH_SKIP_DOCUMENT);
        else
            f->collect = 1;
    }
    if (sides_start(f, status, h, n) < 0)
        return -1;
    if (f->storing) {
        if (mc_chunkw_begin(&f->cw, f->w->node->store, f->feed, f->skey, 1) < 0)
            return -1;
        f->xxh = XXH3_createState();
        if (!f->xxh)
            return -1;
        XXH3_64bits_reset(f->xxh);
    }
    if (!f->storing)
        mc_log_debug("fill", "key=\"%s\" msg=pass why=\"%s\"", f->keystr, f->fresh.why_not);
    if (f->feed && f->storing && !f->varies && !f->encodable && !f->enc.state && f->nsides == 0 && !f->hold &&
        !f->has_stale) {
        /* stored whole, one variant: late joiners stream its committed chunks (feed.h) */
        mc_feed_head fh = {f->status, f->hdrs, f->length, f->skey, f->skeystr, f->cw.seq,
                           f->response_time, f->fresh.initial_age_s, f->fresh.lifetime_s, f->generation};
        mc_feed_open(f->feed, &fh);
    }
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

/* ---------- the store writer as a brake ---------- */

#define STORE_WAIT_MS 20

/* Is the writer so far behind that this fill should wait for it? Above
 * three quarters of the queue bound fills pause; they go on below half. */
static int store_behind(const mc_fill *f, int resuming)
{
    mc_store *st = f->w->node->store;
    uint64_t q = mc_counter_get(&mc_store_get_stats(st)->queue_bytes), lim = mc_store_queue_limit(st);
    return q > (resuming ? lim / 2 : lim / 4 * 3);
}

/* While paused for the writer: resume once it caught up; a writer stuck
 * for stall_timeout (not merely slower than the network) makes the fill
 * give up storing rather than hold its viewers back. */
static void on_store_wait(evutil_socket_t fd, short what, void *arg)
{
    mc_fill *f = arg;
    (void)fd, (void)what;
    f->store_paused_ms += STORE_WAIT_MS;
    if (store_behind(f, 1) && f->store_paused_ms < f->snap->cfg.stall_timeout_ms) {
        struct timeval tv = {0, STORE_WAIT_MS * 1000};
        evtimer_add(f->store_wait, &tv);
        return;
    }
    if (store_behind(f, 1))
        stop_storing(f, "store writer too slow");
    f->store_paused = 0;
    if (f->xfer)
        mc_upstream_resume(f->xfer);
}

static void deliver(mc_fill *f, const void *data, size_t len);
static int deliver_end(mc_fill *f);
static void main_sink(void *arg, const void *data, size_t len);

static int on_up_body(void *arg, const void *data, size_t len)
{
    mc_fill *f = arg;
    if (f->store_paused)
        return MC_UPSTREAM_PAUSE;   /* a viewer drained, but the writer has not caught up */
    if ((f->storing || f->segw) && f->store_wait && store_behind(f, 0)) {
        /* a huge object arrives faster than the disk takes it: slow the
         * upstream (and the viewers with it) instead of dropping the copy */
        f->store_paused = 1;
        f->store_paused_ms = 0;
        struct timeval tv = {0, STORE_WAIT_MS * 1000};
        evtimer_add(f->store_wait, &tv);
        return MC_UPSTREAM_PAUSE;
    }
    size_t limit = f->snap->cfg.max_fill_buffer;
    for (mc_resp *r = f->subs; r; r = r->next)
        if (mc_http_backlog(r->conn) > limit) {
            if (!f->paused && f->stall) {
                struct timeval tv = {f->snap->cfg.stall_timeout_ms / 1000,
                                     (f->snap->cfg.stall_timeout_ms % 1000) * 1000};
                evtimer_add(f->stall, &tv);
            }
            f->paused = 1;
            return MC_UPSTREAM_PAUSE;
        }
    if (f->paused && f->stall)
        evtimer_del(f->stall);
    f->paused = 0;
    if (f->storing && f->received + len > f->snap->cfg.max_object_bytes)
        stop_storing(f, "too big");   /* no Content-Length told us before */
    if (f->up_length >= 0 && f->up_received + len > (uint64_t)f->up_length)
        return -1;   /* more than declared: refuse, never store it */
    f->up_received += len;
    if (f->feed && f->up_length >= 0 && f->up_received == (uint64_t)f->up_length)
        mc_feed_complete(f->feed);   /* before its viewers can have it all: a newcomer then waits for the publish, a hit */
    if (f->collect) {
        if (f->doc.len + len > f->snap->cfg.prefetch_max_gltf) {
            f->collect = 0;   /* no Content-Length told us before */
            mc_buf_free(&f->doc);
            mc_prefetch_count_skip(MC_PREFETCH_SKIP_DOCUMENT);
        } else if (mc_buf_append(&f->doc, data, len) < 0) {
            f->collect = 0;
            mc_buf_free(&f->doc);
        }
    }
    if (f->storing && f->mesh.fmt != MC_MESH_NONE)
        mc_mesh_check_feed(&f->mesh, data, len);
    for (int i = 0; i < f->nsides; i++)
        if (f->sides[i].storing && mc_mesh_encoder_feed(&f->sides[i].enc, data, len, 0, side_sink, &f->sides[i]) < 0)
            side_stop(&f->sides[i]);
    if (f->enc.state)
        return mc_mesh_encoder_feed(&f->enc, data, len, 0, main_sink, f) < 0 ? -1 : deliver_end(f);
    deliver(f, data, len);
    return deliver_end(f);
}

/* Hand body bytes (as sent: maybe gzip- or br-encoded) to the viewers and the store. */
static void deliver(mc_fill *f, const void *data, size_t len)
{
    /* two or more viewers share one copy of the bytes (their backlogs
     * reference it) instead of one copy each */
    mc_shared *blk = f->subs && f->subs->next ? mc_shared_new(data, len) : NULL;
    mc_resp *r = f->subs;
    while (r) {
        mc_resp *next = r->next;
        if (blk ? mc_resp_write_shared(r, f->received, blk) : mc_resp_write(r, f->received, data, len)) {
            unlink_resp(&f->subs, r);
            r->fill = NULL;
            mc_resp_finish(r);   /* its range is complete */
        }
        r = next;
    }
    mc_shared_release(blk);
    if (f->segw)
        mc_segment_writer_feed(f->segw, data, len);
    if (f->storing) {
        XXH3_64bits_update(f->xxh, data, len);
        if (mc_chunkw_append(&f->cw, data, len) < 0)
            stop_storing(f, "store queue full");
    }
    f->received += len;
}

static int deliver_end(mc_fill *f)
{
    /* a segment half written is finished even when no viewer is left */
    if (!f->subs && !f->storing && !(f->segw && mc_segment_writer_mid(f->segw)))
        return -1;
    return 0;
}

static void main_sink(void *arg, const void *data, size_t len)
{
    deliver(arg, data, len);
}

static void on_up_done(void *arg, int rc, const char *why)
{
    mc_fill *f = arg;
    f->xfer = NULL;
    mc_resp_upstream_ended(f->subs);
    mc_resp_upstream_ended(f->waiters);
    int complete = rc == 0 && f->headers_seen && (f->up_length < 0 || f->up_received == (uint64_t)f->up_length);
    if (complete && f->enc.state && mc_mesh_encoder_feed(&f->enc, "", 0, 1, main_sink, f) < 0)
        complete = 0;
    for (int i = 0; complete && i < f->nsides; i++)
        if (f->sides[i].storing && mc_mesh_encoder_feed(&f->sides[i].enc, "", 0, 1, side_sink, &f->sides[i]) < 0)
            side_stop(&f->sides[i]);
    if (!complete) {
        if (rc == 0)
            mc_log_warn("fill", "key=\"%s\" msg=\"short body\" received=%llu length=%lld", f->keystr,
                        (unsigned long long)f->up_received, (long long)f->up_length);
        if (f->obs_given_up) {
            f->storing = 0;   /* a prefetch over its budget: not a failure */
        } else {
            stop_storing(f, rc == 0 ? "short body" : why);
            mc_counter_add(&mc_stats_global.fills_failed, 1);
        }
        table_remove(f->w->fills, f);
        /* viewers with a stale copy may get it; those still streaming see
         * their connection closed; the others get 502/504 */
        serve_stale_on_error(&f->subs, 1);
        serve_stale_on_error(&f->waiters, 1);
        while (f->subs) {
            mc_resp *r = pop_viewer(&f->subs);
            mc_resp_fail(r, rc == MC_E_BUSY ? 504 : 502);
        }
        release_viewers(f, 0);
        fill_free(f);
        return;
    }
    int parked = f->reval_304 ? refresh_stale(f) : f->storing && publish(f);
    if (parked && f->collect && !f->reval_304) {
        /* the .gltf is complete and validated: fetch its references now,
         * before its viewers have read its end from their sockets */
        mc_prefetch_gltf(f->w, f->keystr, f->doc.data ? f->doc.data : "", f->doc.len);
        mc_buf_free(&f->doc);
        f->collect = 0;
    }
    if (!parked) {
        if (f->reval_304)
            bypass_stale(f);
        table_remove(f->w->fills, f);
        release_viewers(f, !f->reval_304);
        fill_free(f);
        return;
    }
    /* the body is all sent: finish the viewers now; waiters wait for the
     * publish so that they are served from the store (after a 304 every
     * viewer waits for the refreshed metadata) */
    while (f->subs && !f->reval_304) {
        mc_resp *r = pop_viewer(&f->subs);
        mc_resp_finish(r);
    }
}

static const mc_upstream_cbs fill_cbs = {on_up_headers, on_up_body, on_up_done};

/* ---------- joining ---------- */

/* Conditional request headers for a stale copy's validators. */
static void validators(const mc_object_meta *m, char *inm, size_t inml, char *ims, size_t imsl)
{
    char v[512];
    inm[0] = ims[0] = '\0';
    if (mc_hdr_find(m->headers, "ETag", v, sizeof v))
        snprintf(inm, inml, "If-None-Match: %s", v);
    if (mc_hdr_find(m->headers, "Last-Modified", v, sizeof v))
        snprintf(ims, imsl, "If-Modified-Since: %s", v);
}

#define MAX_FORWARDED 16

/* Never forwarded: what the edge sets itself, hop-by-hop fields, and what
 * would make the response one viewer's (RFC 9110 7.6.1, 13.1; RFC 9111 3.5). */
static int never_forward(const char *name)
{
    static const char *const no[] = {"host", "connection", "keep-alive", "proxy-connection", "te", "trailer",
                                     "transfer-encoding", "upgrade", "proxy-authorization", "authorization",
                                     "cookie", "range", "if-range", "if-match", "if-none-match",
                                     "if-modified-since", "if-unmodified-since", "cdn-loop", "via",
                                     "content-length", "expect", "cache-control", "pragma", "x-amz-date",
                                     "x-amz-content-sha256", "x-amz-security-token", NULL};
    for (int i = 0; no[i]; i++)
        if (strcasecmp(name, no[i]) == 0)
            return 1;
    return 0;
}

/* The viewer's headers the behavior forwards, as "Name: value" (caller frees). */
static int forwarded_headers(const mc_cache_policy *pol, const mc_http_req *req, char *out[MAX_FORWARDED])
{
    const char *list = pol->forward_headers;
    int n = 0, all = strcmp(list, "*") == 0;
    for (int i = 0; req && i < req->nheaders && n < MAX_FORWARDED; i++) {
        const char *name = req->headers[i].name;
        size_t nl = strlen(name);
        int listed = all;
        for (const char *p = list; !listed && *p;) {
            const char *e = strchr(p, ',');
            size_t l = e ? (size_t)(e - p) : strlen(p);
            listed = l == nl && strncasecmp(p, name, nl) == 0;
            p += l + (e != NULL);
        }
        if (!listed || never_forward(name))
            continue;
        if (pol->cors_origins[0] && strcasecmp(name, "Origin") == 0)
            continue;   /* the edge answers CORS: the stored copy must not depend on it */
        if (pol->compress && strcasecmp(name, "Accept-Encoding") == 0)
            continue;   /* the edge encodes: the origin sends identity */
        mc_buf b = MC_BUF_INIT;
        mc_buf_printf(&b, "%s: %s", name, req->headers[i].value);
        if ((out[n] = mc_buf_steal(&b)) != NULL)
            n++;
    }
    return n;
}

/* What a fill is started for: a viewer's request, or a prefetch (req NULL). */
typedef struct fill_target {
    mc_worker *w;
    mc_edge_snap *snap;          /* the configuration pol belongs to */
    mc_hash128 key;
    const char *keystr, *path, *query;
    const mc_cache_policy *pol;
    const mc_http_req *req;      /* the triggering request, or NULL */
} fill_target;

static mc_fill *fill_begin(const fill_target *t, const mc_object_meta *stale, int private_);

/* Start fetching r's key; with a stale copy (stale != NULL) the request is
 * conditional on its validators. */
static mc_fill *fill_start(mc_resp *r, const mc_object_meta *stale, int private_)
{
    fill_target t = {r->w, r->snap, r->key, r->keystr, r->s3path, r->query, r->pol, r->req};
    return fill_begin(&t, stale, private_);
}

static mc_fill *fill_begin(const fill_target *t, const mc_object_meta *stale, int private_)
{
    mc_fill *f = calloc(1, sizeof *f);
    if (!f || !(f->keystr = strdup(t->keystr))) {
        free(f);
        return NULL;
    }
    f->magic = MC_FILL_MAGIC;
    f->w = t->w;
    f->snap = mc_snap_ref(t->snap);
    f->key = t->key;
    f->skey = t->key;
    f->private_ = private_;
    f->stall = evtimer_new(t->w->base, on_stall, f);
    f->kick = evtimer_new(t->w->base, pass_waiters, f);
    f->store_wait = evtimer_new(t->w->base, on_store_wait, f);
    f->pol = t->pol;
    mc_buf block = MC_BUF_INIT;
    if (t->req)
        mc_vary_req_block(t->req, &block);   /* a prefetch has no request headers */
    if (t->pol->compress)
        mc_mesh_ae_normalise(&block, t->pol->compress, &f->encoding);   /* one variant per encoding */
    f->req_block = mc_buf_steal(&block);
    f->skeystr = strdup(t->keystr);
    if (!f->req_block || !f->skeystr) {
        fill_free(f);
        return NULL;
    }
    f->length = -1;
    f->request_time = time(NULL);
    f->request_ms = mono_ms();
    f->generation = mc_store_generation(t->w->node->store);   /* before the request goes out */
    atomic_fetch_add_explicit(&mc_stats_global.fills_inflight, 1, memory_order_relaxed);
    mc_counter_add(&mc_stats_global.fills_started, 1);
    const mc_edge_config *cfg = t->w->node->cfg;
    char loop[1024], via[160], inm[600] = "", ims[600] = "";
    /* RFC 8586: add this node to what the request already carries, so a
     * parent tier that sees itself again answers 508 instead of looping */
    int ll = snprintf(loop, sizeof loop, "CDN-Loop: ");
    for (int i = 0; t->req && i < t->req->nheaders; i++)
        if (strcasecmp(t->req->headers[i].name, "CDN-Loop") == 0 && t->req->headers[i].value[0] &&
            ll < (int)sizeof loop)
            ll += snprintf(loop + ll, sizeof loop - (size_t)ll, "%s, ", t->req->headers[i].value);
    if (ll >= (int)sizeof loop - 80)
        ll = snprintf(loop, sizeof loop, "CDN-Loop: ");   /* absurdly long: keep ours at least */
    snprintf(loop + ll, sizeof loop - (size_t)ll, "meshcdn-%s", cfg->node_id);
    snprintf(via, sizeof via, "Via: 1.1 meshcdn-%s", cfg->node_id);
    if (stale) {
        f->stale = *stale;
        f->stale.key = strdup(stale->key);
        f->stale.headers = strdup(stale->headers);
        f->has_stale = 1;
        if (!f->stale.key || !f->stale.headers) {
            fill_free(f);
            return NULL;
        }
        validators(stale, inm, sizeof inm, ims, sizeof ims);
        free(f->skeystr);   /* revalidate the very variant that is stale */
        f->skeystr = strdup(stale->key);
        f->skey = mc_hash_key(stale->key, strlen(stale->key));
        if (!f->skeystr) {
            fill_free(f);
            return NULL;
        }
    }
    const char *extra[4 + MAX_FORWARDED + 1] = {loop, via};
    int n = 2;
    if (inm[0])
        extra[n++] = inm;
    if (ims[0])
        extra[n++] = ims;
    char *fwd[MAX_FORWARDED];
    int nfwd = forwarded_headers(t->pol, t->req, fwd);
    for (int i = 0; i < nfwd; i++)
        extra[n++] = fwd[i];
    extra[n] = NULL;
    f->xfer = mc_upstream_get(t->w->upstream, f->snap, t->path, t->query, extra, &fill_cbs, f);
    for (int i = 0; i < nfwd; i++)
        free(fwd[i]);
    if (!f->xfer || !f->stall || !f->kick) {
        if (f->xfer)
            mc_upstream_cancel(f->xfer);
        fill_free(f);
        return NULL;
    }
    if (!stale)
        mc_prefetch_fill_started(&f->snap->cfg, f->pol, f->keystr, f->xfer);   /* a .gltf: warm upstream connections */
    if (private_)
        return f;
    pthread_mutex_lock(&registry.mu);
    reg_entry *e = *reg_find(f->key);
    assert(e && e->owner == t->w);   /* claimed before it began */
    if (e && e->owner == t->w)
        f->feed = mc_feed_ref(e->feed);
    pthread_mutex_unlock(&registry.mu);
    mc_fill **b = bucket_of(t->w->fills, f->key);
    f->next_in_bucket = *b;
    *b = f;
    return f;
}

/* Claim key node-wide for worker w. Returns 1 when claimed; 0 when another
 * worker has it and r (if not NULL) now follows its fill (feed.h); 2 when
 * the running fill will not be stored (fetch privately); < 0 on allocation
 * failure. */
static int reg_claim(mc_hash128 key, mc_worker *w, mc_resp *r)
{
    int rc;
    pthread_mutex_lock(&registry.mu);
    reg_entry **pp = reg_find(key);
    if (*pp && (*pp)->pass) {
        rc = 2;                 /* not stored: fetch on your own */
    } else if (*pp) {
        rc = r ? mc_feed_follow((*pp)->feed, r) : 0;
    } else {
        reg_entry *e = calloc(1, sizeof *e);
        if (e && !(e->feed = mc_feed_new(w))) {
            free(e);
            e = NULL;
        }
        if (e) {
            e->key = key;
            e->owner = w;
            *pp = e;
        }
        rc = e ? 1 : MC_E_NOMEM;
    }
    pthread_mutex_unlock(&registry.mu);
    return rc;
}

static void join_private(mc_resp *r, mc_fill *f)
{
    r->fill = f;
    r->next = f->subs;
    f->subs = r;
}

/* Was f's response named by a purge since it began? Then a viewer that
 * arrives now must not get it (the purge came first). */
static int purged_under(const mc_fill *f)
{
    mc_store *st = f->w->node->store;
    return mc_store_generation(st) != f->generation &&
           mc_store_purged_since(st, f->generation, f->skeystr, f->hdrs) != 0;
}

/* Does r ask for the variant f stores (its key is f's key string plus
 * r's Vary suffix)? */
static int same_variant(const mc_fill *f, const mc_resp *r)
{
    mc_buf block = MC_BUF_INIT, suffix = MC_BUF_INIT;
    int same = 0;
    if (mc_vary_req_block(r->req, &block) == 0 &&
        (!f->pol->compress || mc_mesh_ae_normalise(&block, f->pol->compress, NULL) == 0) &&
        mc_vary_suffix(f->vary, block.data, &suffix) == 0 && suffix.data)
        same = strlen(f->skeystr) == strlen(f->keystr) + suffix.len &&
               strcmp(f->skeystr + strlen(f->keystr), suffix.data) == 0;
    mc_buf_free(&block);
    mc_buf_free(&suffix);
    return same;
}

void mc_fill_join(mc_resp *r, int expired)
{
    mc_fill *f = table_find(r->w->fills, r->key);
    /* the access log's upstream time starts, unless the fill's transfer is
     * over (it is publishing: the wait is for the store, not the upstream) */
    if (!r->up_t0.tv_sec && !r->up_t0.tv_nsec && !(f && !f->xfer))
        clock_gettime(CLOCK_MONOTONIC, &r->up_t0);
    if (f && purged_under(f)) {
        r->result = MC_RESULT_MISS;   /* fetch afresh, unstored; the old fill's publish is dropped */
        if (!(f = fill_start(r, NULL, 1))) {
            mc_resp_fail(r, 502);
            return;
        }
        join_private(r, f);
        return;
    }
    if (f && f->headers_seen && !f->storing && !f->reval_304 && f->state == FILL_FETCHING) {
        r->result = MC_RESULT_PASS;   /* hit-for-pass: the running fill is not stored */
        if (!(f = fill_start(r, NULL, 1))) {
            mc_resp_fail(r, 502);
            return;
        }
        join_private(r, f);
        return;
    }
    if (f && f->state == FILL_FETCHING && f->received > 0 && f->feed && mc_feed_streaming(f->feed)) {
        /* too late to stream along from memory: follow its stored chunks */
        if (mc_feed_follow(f->feed, r) < 0)
            mc_resp_fail(r, 503);
        return;
    }
    if (f && (f->state == FILL_PUBLISHING || f->received > 0 || f->reval_304 || f->has_stale || f->hold)) {
        r->fill = f;            /* too late to stream along, or a revalidation: wait for the result */
        r->waiting = 1;
        r->next = f->waiters;
        f->waiters = r;
        return;
    }
    if (f) {
        r->result = MC_RESULT_COLLAPSED;
    } else {
        int rc = reg_claim(r->key, r->w, r);
        if (rc == 0)
            return;             /* another worker fills it: r follows it (feed.h) */
        if (rc < 0) {
            mc_resp_fail(r, 503);
            return;
        }
        if (rc == 2) {
            r->result = MC_RESULT_PASS;
            if (!(f = fill_start(r, NULL, 1))) {
                mc_resp_fail(r, 502);
                return;
            }
            join_private(r, f);
            return;
        }
        r->result = expired ? MC_RESULT_EXPIRED : MC_RESULT_MISS;
        int reval = expired && r->has_meta && !r->bypass_stale;
        if (!(f = fill_start(r, reval ? &r->meta : NULL, 0))) {
            reg_release(r->key, 0, 0);
            mc_resp_fail(r, 502);
            return;
        }
    }
    if (f->headers_seen && f->varies && !same_variant(f, r)) {
        r->fill = f;            /* another variant: look up again once it is stored */
        r->waiting = 1;
        r->next = f->waiters;
        f->waiters = r;
        return;
    }
    r->fill = f;
    r->next = f->subs;
    f->subs = r;
    if (f->headers_seen)
        start_viewer(f, r);
}

int mc_fill_prefetch(mc_worker *w, mc_hash128 key, const char *keystr, const char *path, const char *query,
                     mc_edge_snap *snap, const mc_cache_policy *pol, const mc_fill_observer *obs, void *arg)
{
    if (table_find(w->fills, key))
        return 1;
    int rc = reg_claim(key, w, NULL);
    if (rc != 1)
        return rc < 0 ? rc : 1;   /* another worker fills it (or passes it) */
    fill_target t = {w, snap, key, keystr, path, query, pol, NULL};
    mc_fill *f = fill_begin(&t, NULL, 0);
    if (!f) {
        reg_release(key, 0, 0);
        return MC_E_IO;
    }
    f->obs = obs;
    f->obs_arg = arg;
    return 0;
}

void mc_fill_background(mc_resp *r)
{
    if (table_find(r->w->fills, r->key) || reg_claim(r->key, r->w, NULL) != 1)
        return;                 /* a fill already runs */
    if (!fill_start(r, r->has_meta ? &r->meta : NULL, 0))
        reg_release(r->key, 0, 0);
}

void mc_fill_fetch_alone(mc_resp *r)
{
    r->result = MC_RESULT_MISS;   /* fetch afresh, unstored */
    mc_fill *f = fill_start(r, NULL, 1);
    if (!f) {
        mc_resp_fail(r, 502);
        return;
    }
    join_private(r, f);
}

void mc_fill_leave(mc_resp *r)
{
    if (r->follow) {
        mc_feed_leave(r);
        return;
    }
    mc_fill *f = r->fill;
    assert(f && f->magic == MC_FILL_MAGIC);
    unlink_resp(r->waiting ? &f->waiters : &f->subs, r);
    r->fill = NULL;
    r->waiting = 0;
    /* nobody left to serve and nothing to store: stop fetching */
    if (!f->subs && !f->waiters && !f->storing && !(f->segw && mc_segment_writer_mid(f->segw)) && f->xfer &&
        f->state == FILL_FETCHING) {
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
    if (r->follow)
        mc_feed_drained(r);
    else if (r->fill && !r->waiting && r->fill->xfer)
        mc_upstream_resume(r->fill->xfer);
}
