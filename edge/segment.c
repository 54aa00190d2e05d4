/* segment.c — see segment.h. */
#include <assert.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <xxhash.h>
#include <event2/event.h>
#include "common/log.h"
#include "common/range.h"
#include "edge/chunkw.h"
#include "edge/fill.h"
#include "edge/lookup.h"
#include "edge/segment.h"
#include "edge/snap.h"
#include "edge/upstream.h"

#define SEG_BUCKETS 256
#define MAX_RESTARTS 3

/* ---------- arithmetic ---------- */

uint32_t mc_segment_count(uint64_t total, uint64_t seg_size)
{
    return seg_size ? (uint32_t)(total / seg_size + (total % seg_size != 0)) : 0;
}

int mc_segment_bounds(uint64_t total, uint64_t seg_size, uint32_t idx, uint64_t *start, uint64_t *end)
{
    if (seg_size == 0 || idx >= mc_segment_count(total, seg_size))
        return MC_E_INVAL;
    *start = (uint64_t)idx * seg_size;
    *end = *start + seg_size - 1 < total - 1 ? *start + seg_size - 1 : total - 1;
    return 0;
}

int mc_segment_needed(const char *range_hdr, uint64_t total, uint64_t seg_size, uint32_t *out, int max)
{
    if (seg_size == 0 || total == 0)
        return 0;
    mc_range rg[MC_RESP_MAX_PARTS];
    int n = range_hdr ? mc_range_parse(range_hdr, total, rg, MC_RESP_MAX_PARTS) : 0;
    if (n == MC_E_UNSATISFIABLE)
        return 0;
    for (int i = 1; i < n; i++)
        if (rg[i].start <= rg[i - 1].end)
            n = 0;   /* overlapping or out of order: served whole (respond.h) */
    if (n <= 0) {    /* invalid or too many: the whole body */
        rg[0].start = 0;
        rg[0].end = total - 1;
        n = 1;
    }
    int k = 0;
    for (int i = 0; i < n; i++)
        for (uint64_t s = rg[i].start / seg_size; s <= rg[i].end / seg_size; s++) {
            if (k > 0 && out[k - 1] >= s)
                continue;
            if (k == max)
                return MC_E_TOOBIG;
            out[k++] = (uint32_t)s;
        }
    return k;
}

int64_t mc_segment_probe_index(const char *range_hdr, uint64_t seg_size)
{
    if (!range_hdr || seg_size == 0)
        return -1;
    while (*range_hdr == ' ')
        range_hdr++;
    if (strncasecmp(range_hdr, "bytes=", 6) != 0)
        return -1;
    const char *p = range_hdr + 6;
    while (*p == ' ')
        p++;
    if (*p < '0' || *p > '9')
        return -1;   /* a suffix range: where it lies is unknown */
    uint64_t v = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (UINT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    while (*p == ' ')
        p++;
    if (*p != '-' || v < seg_size || v / seg_size > UINT32_MAX - 1)
        return -1;
    return (int64_t)(v / seg_size);
}

static int parse_u64(const char **pp, uint64_t *out)
{
    const char *p = *pp;
    uint64_t v = 0;
    if (*p < '0' || *p > '9')
        return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (UINT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    *pp = p;
    *out = v;
    return 0;
}

int mc_segment_content_range(const char *v, uint64_t *a, uint64_t *b, uint64_t *total)
{
    while (*v == ' ')
        v++;
    if (strncasecmp(v, "bytes ", 6) != 0)
        return MC_E_INVAL;
    v += 6;
    while (*v == ' ')
        v++;
    if (parse_u64(&v, a) < 0 || *v++ != '-' || parse_u64(&v, b) < 0 || *v++ != '/' || parse_u64(&v, total) < 0)
        return MC_E_INVAL;
    while (*v == ' ')
        v++;
    if (*v || *a > *b || *b >= *total)
        return MC_E_INVAL;
    return 0;
}

void mc_segment_keystr(const char *keystr, uint32_t idx, char *out, size_t n)
{
    snprintf(out, n, "%s\n#seg:%" PRIu32, keystr, idx);
}

int mc_segment_info(const char *hdrs, uint64_t *total, uint64_t *seg_size)
{
    char v[128];
    if (!mc_hdr_find(hdrs, MC_SEGMENT_HDR, v, sizeof v))
        return MC_E_INVAL;
    const char *p = v;
    if (parse_u64(&p, total) < 0 || *p++ != ' ' || parse_u64(&p, seg_size) < 0 || *p || *seg_size == 0 ||
        *seg_size % MC_STORE_CHUNK_SIZE != 0)
        return MC_E_INVAL;
    return 0;
}

/* The version a head or segment's headers name: "ETag|Last-Modified|total". */
static void version_of(const char *hdrs, char *out, size_t n)
{
    char e[256] = "", l[128] = "", t[128] = "";
    mc_hdr_find(hdrs, "ETag", e, sizeof e);
    mc_hdr_find(hdrs, "Last-Modified", l, sizeof l);
    mc_hdr_find(hdrs, MC_SEGMENT_HDR, t, sizeof t);
    snprintf(out, n, "%s|%s|%s", e, l, t);
}

/* ---------- state ---------- */

typedef enum { SF_SEGMENT, SF_PROBE, SF_REVAL } sf_kind;

typedef struct segfill segfill;

/* A viewer served from segments. Owned by its mc_resp (r->seg). */
typedef struct mc_seg_view {
    uint32_t magic;
    mc_resp *r;
    int has_head;               /* r->meta is the head */
    uint64_t total, seg_size;
    char ver[640];
    char *vhdrs;                /* the head's headers without the internal line (owned) */
    segfill *sf;                /* attached to a segment fill */
    int sub;                    /* ... streaming along (else waiting for its end) */
    struct seg_rwait *remote;   /* waiting for another worker's segment fill */
    mc_object_meta smeta;       /* the stored segment being streamed */
    int has_smeta;
    uint32_t sidx;
    mc_hash128 skey;
    struct event *kick;         /* runs the next step outside libcurl's callbacks */
    int handover;               /* next step: whole-object fill (fill.h) */
    int restart;                /* next step: start over without the old version */
    int restarts;
    int fresh;                  /* the head may be used without revalidation */
    int stored_head;            /* the head was found in the store (not learnt by a probe) */
    int remote_reval;           /* waiting for another worker's revalidation of its head */
    struct mc_seg_view *next;
} seg_view;

#define VIEW_MAGIC 0x53564557u

struct segfill {
    uint32_t magic;
    sf_kind kind;
    mc_worker *w;
    mc_edge_snap *snap;         /* the configuration pol belongs to (a reference) */
    mc_hash128 key;             /* the segment's (for SF_REVAL: a pseudo key) */
    char *keystr;
    mc_hash128 hkey;            /* the head's */
    char *hkeystr;
    char *s3path, *query;
    const mc_cache_policy *pol;
    uint32_t idx;
    uint64_t start, end;        /* object bytes asked for, inclusive */
    uint64_t total, seg_size;
    char ver[640];              /* the version expected (learnt by a probe) */
    char *seg_hdrs;             /* the version lines stored with the segment (owned) */
    mc_object_meta head;        /* SF_REVAL: the stale head; SF_PROBE: the new one */
    int has_head;
    mc_upstream_xfer *xfer;
    seg_view *subs, *waiters;
    int headers_ok;
    int ended;                  /* the response was dealt with at its head */
    int handover;
    uint64_t received;          /* bytes of this segment consumed */
    int storing;
    mc_chunkw cw;               /* the segment's chunks (at key) */
    XXH3_state_t *xxh;
    int64_t request_time, response_time;
    uint64_t generation;
    int publishing, publish_ok;
    mc_mail published;
    int paused;
    uint64_t skip;              /* a 200 (Range ignored): bytes before the segment, discarded */
    int cut;                    /* ... and stopped after the segment's last byte (a success) */
    struct event *stall;        /* how long a slow viewer may hold the others back */
    segfill *next_in_bucket;
};

struct mc_seg_table {
    segfill *b[SEG_BUCKETS];
};

/* ---------- the node-wide registry of segments being fetched ---------- */

typedef struct seg_rwait {
    mc_mail mail;
    mc_hash128 key;
    seg_view *v;
    mc_worker *w;
    int posted, cancelled, handover;
    struct seg_rwait *next;
} seg_rwait;

typedef struct seg_reg {
    mc_hash128 key;
    mc_worker *owner;
    seg_rwait *waiters;
    struct seg_reg *next;
} seg_reg;

static struct {
    pthread_mutex_t mu;
    seg_reg *b[SEG_BUCKETS];
} sreg = {PTHREAD_MUTEX_INITIALIZER, {0}};

static seg_reg **sreg_find(mc_hash128 k)
{
    seg_reg **pp = &sreg.b[k.lo % SEG_BUCKETS];
    while (*pp && !((*pp)->key.hi == k.hi && (*pp)->key.lo == k.lo))
        pp = &(*pp)->next;
    return pp;
}

static void view_wake(seg_view *v);

static void on_remote_ready(void *arg)
{
    seg_rwait *rw = arg;
    seg_view *v = rw->v;
    int cancelled = rw->cancelled, handover = rw->handover;
    free(rw);
    if (cancelled)
        return;
    v->remote = NULL;
    if (handover && !v->has_head)
        v->handover = 1;
    view_wake(v);
}

/* 1 claimed; 0 another worker has it and v waits (v may be NULL); < 0 NOMEM. */
static int sreg_claim(mc_hash128 key, mc_worker *w, seg_view *v)
{
    int rc;
    pthread_mutex_lock(&sreg.mu);
    seg_reg **pp = sreg_find(key);
    if (*pp) {
        rc = 0;
        seg_rwait *rw = v ? calloc(1, sizeof *rw) : NULL;
        if (rw) {
            rw->v = v;
            rw->w = w;
            rw->key = key;
            rw->next = (*pp)->waiters;
            (*pp)->waiters = rw;
            v->remote = rw;
        } else if (v) {
            rc = MC_E_NOMEM;
        }
    } else {
        seg_reg *e = calloc(1, sizeof *e);
        if (e) {
            e->key = key;
            e->owner = w;
            *pp = e;
        }
        rc = e ? 1 : MC_E_NOMEM;
    }
    pthread_mutex_unlock(&sreg.mu);
    return rc;
}

static void sreg_release(mc_hash128 key, int handover)
{
    pthread_mutex_lock(&sreg.mu);
    seg_reg **pp = sreg_find(key), *e = *pp;
    seg_rwait *list = NULL;
    if (e) {
        *pp = e->next;
        list = e->waiters;
        for (seg_rwait *rw = list; rw; rw = rw->next) {
            rw->posted = 1;
            rw->handover = handover;
        }
    }
    pthread_mutex_unlock(&sreg.mu);
    free(e);
    while (list) {
        seg_rwait *next = list->next;
        mc_worker_post_mail(list->w, &list->mail, on_remote_ready, list);
        list = next;
    }
}

static void leave_remote(seg_view *v)
{
    seg_rwait *rw = v->remote;
    v->remote = NULL;
    pthread_mutex_lock(&sreg.mu);
    if (rw->posted) {
        rw->cancelled = 1;   /* the mail is on its way: on_remote_ready frees rw */
        rw = NULL;
    } else {
        seg_reg *e = *sreg_find(rw->key);
        for (seg_rwait **pp = e ? &e->waiters : NULL; pp && *pp; pp = &(*pp)->next)
            if (*pp == rw) {
                *pp = rw->next;
                break;
            }
    }
    pthread_mutex_unlock(&sreg.mu);
    free(rw);
}

/* ---------- the per-worker table ---------- */

int mc_segment_table_new(mc_seg_table **out)
{
    *out = calloc(1, sizeof **out);
    return *out ? 0 : MC_E_NOMEM;
}

static segfill **sbucket(mc_seg_table *t, mc_hash128 k) { return &t->b[k.lo % SEG_BUCKETS]; }

static segfill *sf_find(mc_seg_table *t, mc_hash128 k)
{
    for (segfill *f = *sbucket(t, k); f; f = f->next_in_bucket)
        if (f->key.hi == k.hi && f->key.lo == k.lo)
            return f;
    return NULL;
}

static void sf_remove(segfill *f, int handover)
{
    for (segfill **pp = sbucket(f->w->segs, f->key); *pp; pp = &(*pp)->next_in_bucket)
        if (*pp == f) {
            *pp = f->next_in_bucket;
            sreg_release(f->key, handover);
            return;
        }
}

static void sf_free(segfill *f)
{
    assert(f->magic == MC_SEGMENT_MAGIC && !f->subs && !f->waiters && !f->xfer);
    mc_snap_unref(f->snap);
    mc_chunkw_free(&f->cw);
    if (f->xxh)
        XXH3_freeState(f->xxh);
    if (f->stall)
        event_free(f->stall);
    if (f->has_head)
        mc_object_meta_free(&f->head);
    free(f->keystr);
    free(f->hkeystr);
    free(f->s3path);
    free(f->query);
    free(f->seg_hdrs);
    f->magic = 0;
    free(f);
}

static void unlink_view(seg_view **list, seg_view *v)
{
    for (seg_view **pp = list; *pp; pp = &(*pp)->next)
        if (*pp == v) {
            *pp = v->next;
            v->next = NULL;
            return;
        }
}

static seg_view *pop_view(seg_view **list)
{
    seg_view *v = *list;
    *list = v->next;
    v->next = NULL;
    v->sf = NULL;
    return v;
}

void mc_segment_table_free(mc_seg_table *t)
{
    if (!t)
        return;
    for (int i = 0; i < SEG_BUCKETS; i++)
        while (t->b[i]) {
            segfill *f = t->b[i];
            t->b[i] = f->next_in_bucket;
            sreg_release(f->key, 0);
            if (f->xfer)
                mc_upstream_cancel(f->xfer);
            f->xfer = NULL;
            assert(!f->publishing);   /* shutdown flushed the store first */
            while (f->subs)
                mc_resp_fail(pop_view(&f->subs)->r, 502);
            while (f->waiters)
                mc_resp_fail(pop_view(&f->waiters)->r, 502);
            sf_free(f);
        }
    free(t);
}

/* ---------- viewers ---------- */

static void kick(seg_view *v) { event_active(v->kick, EV_TIMEOUT, 0); }

static void pump(seg_view *v);
static void attach(seg_view *v, uint32_t idx);
static void start_probe(seg_view *v, uint32_t idx);

static void view_drop_smeta(seg_view *v)
{
    if (v->has_smeta)
        mc_object_meta_free(&v->smeta);
    v->has_smeta = 0;
}

static void view_drop_head(seg_view *v)
{
    mc_resp *r = v->r;
    if (r->has_meta)
        mc_object_meta_free(&r->meta);
    r->has_meta = 0;
    v->has_head = 0;
    v->stored_head = 0;
    free(v->vhdrs);
    v->vhdrs = NULL;
    view_drop_smeta(v);
}

static void view_free(seg_view *v)
{
    mc_resp *r = v->r;
    if (v->remote)
        leave_remote(v);
    assert(!v->sf);
    view_drop_smeta(v);
    free(v->vhdrs);
    if (v->kick)
        event_free(v->kick);
    v->magic = 0;
    free(v);
    r->seg = NULL;
}

static uint64_t next_off(const mc_resp *r) { return r->started ? r->pos : r->first; }

/* Hand r to the whole-object path (fill.h) from the loop. */
static void handover_now(seg_view *v)
{
    mc_resp *r = v->r;
    r->no_segments = 1;
    view_free(v);
    mc_counter_add(&mc_stats_global.segment_handovers, 1);
    mc_lookup_retry(r);   /* a head still in the store is skipped (no_segments) */
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    view_wake(arg);
}

static void view_wake(seg_view *v)
{
    assert(v->magic == VIEW_MAGIC);
    if (v->sf || v->remote)
        return;
    if (v->handover) {
        handover_now(v);
        return;
    }
    if (v->restart) {
        v->restart = 0;
        int64_t idx = mc_segment_probe_index(mc_http_req_header(v->r->req, "Range"), v->r->w->node->cfg->segment_size);
        if (idx < 0)
            handover_now(v);
        else
            start_probe(v, (uint32_t)idx);
        return;
    }
    if (!v->has_head || v->remote_reval) {
        /* the probe it waited for has ended (the head may be stored), or
         * another worker's revalidation of its stale head has: the store
         * says how it went (a head it cannot use fresh is revalidated again
         * here, never served stale unless allowed) */
        v->remote_reval = 0;
        view_drop_head(v);
        mc_lookup_retry(v->r);
        return;
    }
    pump(v);
}

static void on_close(void *arg)
{
    mc_resp *r = arg;
    r->conn = NULL;
    mc_resp_free(r);
}

static void on_drain(void *arg)
{
    mc_resp *r = arg;
    seg_view *v = r->seg;
    if (!v)
        return;
    if (v->sf && v->sub) {
        if (v->sf->xfer)
            mc_upstream_resume(v->sf->xfer);
        return;
    }
    if (!v->sf && !v->remote)
        pump(v);
}

static int64_t head_age(const mc_object_meta *m)
{
    return m->initial_age_s + ((int64_t)time(NULL) - m->response_time);
}

/* The head in r->meta becomes what v serves: plan the response. Returns 0,
 * or < 0 when the head is unusable (then the caller hands r over). */
static int view_adopt(seg_view *v)
{
    mc_resp *r = v->r;
    free(v->vhdrs);
    v->vhdrs = NULL;
    view_drop_smeta(v);
    if (mc_segment_info(r->meta.headers, &v->total, &v->seg_size) < 0 || v->total == 0)
        return MC_E_INVAL;
    version_of(r->meta.headers, v->ver, sizeof v->ver);
    mc_buf b = MC_BUF_INIT;
    size_t hl = strlen(MC_SEGMENT_HDR);
    for (const char *p = r->meta.headers; p && *p;) {
        const char *eol = strstr(p, "\r\n");
        size_t ll = eol ? (size_t)(eol - p) + 2 : strlen(p);
        if (!(strncasecmp(p, MC_SEGMENT_HDR, hl) == 0 && p[hl] == ':'))
            mc_buf_append(&b, p, ll);
        p += ll;
    }
    if (!(v->vhdrs = mc_buf_steal(&b)) && !(v->vhdrs = strdup("")))
        return MC_E_NOMEM;
    v->has_head = 1;
    mc_resp_plan(r, 200, v->vhdrs, (int64_t)v->total);
    return 0;
}

static void start_response(seg_view *v, int from_store, int stored)
{
    mc_resp *r = v->r;
    if (r->started)
        return;
    /* Cache-Status as for a whole object (lookup.c): a stale head served
     * stays "hit" with its detail whether the first segment came from the
     * store or upstream; a head revalidated is fwd=stale with 304; else a
     * stored head with a segment fetched is fwd=partial (RFC 9211 2.2), a
     * version found changed on revalidation fwd=stale, a cold URL fwd=miss */
    if (r->result != MC_RESULT_REVALIDATED && r->result != MC_RESULT_STALE) {
        r->result = from_store ? MC_RESULT_HIT : r->stale_replaced ? MC_RESULT_EXPIRED : MC_RESULT_MISS;
        r->partial = !from_store && v->stored_head;
    }
    int64_t age = head_age(&r->meta);
    mc_resp_cache cache = {age, r->meta.lifetime_s - age, from_store ? 0 : 206, stored};
    mc_resp_start(r, v->vhdrs, &cache);
}

/* A response without body bytes (HEAD, 304, 416) ends at once. Returns 1 then. */
static int finish_bodyless(seg_view *v)
{
    mc_resp *r = v->r;
    if (r->has_body)
        return 0;
    start_response(v, 1, 0);
    mc_resp_finish(r);
    return 1;
}

/* Is stored segment meta m the one v needs (same version, right size)? */
static int segment_usable(const seg_view *v, uint32_t idx, const mc_object_meta *m, const char *keystr)
{
    uint64_t s = 0, e = 0;
    char ver[640];
    if (mc_segment_bounds(v->total, v->seg_size, idx, &s, &e) < 0 || m->status != 206 ||
        m->length != e - s + 1 || strcmp(m->key, keystr) != 0)
        return 0;
    version_of(m->headers, ver, sizeof ver);
    return strcmp(ver, v->ver) == 0;
}

static int read_segment(seg_view *v, uint32_t idx)
{
    mc_resp *r = v->r;
    char ks[2048];
    mc_segment_keystr(r->keystr, idx, ks, sizeof ks);
    v->skey = mc_hash_key(ks, strlen(ks));
    view_drop_smeta(v);
    if (mc_store_read_meta(r->w->reader, v->skey, &v->smeta) < 0)
        return MC_E_NOTFOUND;
    if (!segment_usable(v, idx, &v->smeta, ks)) {
        mc_object_meta_free(&v->smeta);
        return MC_E_NOTFOUND;
    }
    v->has_smeta = 1;
    v->sidx = idx;
    mc_store_touch(r->w->node->store, v->skey);
    return 0;
}

/* Stream what the store has, from the viewer's next byte on, until a
 * segment is missing (then fetch it) or the client's backlog is full. */
static void pump(seg_view *v)
{
    mc_resp *r = v->r;
    if (finish_bodyless(v))
        return;   /* HEAD, 304, 416: nothing to read */
    for (;;) {
        if (r->started && r->done) {
            mc_resp_finish(r);
            return;
        }
        if (v->sf || v->remote || (r->started && mc_http_backlog(r->conn) >= 2 * MC_STORE_CHUNK_SIZE))
            return;
        uint64_t off = next_off(r);
        uint32_t idx = (uint32_t)(off / v->seg_size);
        if ((!v->has_smeta || v->sidx != idx) && read_segment(v, idx) < 0) {
            attach(v, idx);
            return;
        }
        uint64_t sstart = (uint64_t)idx * v->seg_size;
        uint32_t c = (uint32_t)((off - sstart) / v->smeta.chunk_size);
        mc_store_reader *rd = r->w->reader;
        const void *data;
        int n = mc_store_view_chunk(rd, v->skey, v->smeta.seq, c, &data);
        if (n < 0) {
            mc_store_view_end(rd);
            /* evicted or replaced since its metadata was read, or damaged:
             * fetch that segment again (If-Match keeps the version) */
            if (n == MC_E_CHECKSUM)
                mc_store_delete(r->w->node->store, v->skey);
            view_drop_smeta(v);
            attach(v, idx);
            return;
        }
        mc_counter_add(&mc_stats_global.segment_hit_bytes, (uint64_t)n);
        start_response(v, 1, 0);
        mc_resp_write(r, sstart + (uint64_t)c * v->smeta.chunk_size, data, (size_t)n);
        mc_store_view_end(rd);   /* before the loop: the map's pages are not pinned */
    }
}

/* ---------- segment fills ---------- */

static const mc_upstream_cbs sf_cbs;

/* A viewer has kept the segment fill paused for stall_timeout: the viewers
 * that slow are cut off so that the others (and the store) go on. */
static void on_stall(evutil_socket_t fd, short what, void *arg)
{
    segfill *f = arg;
    (void)fd, (void)what;
    if (!f->paused || !f->xfer)
        return;
    size_t limit = f->snap->cfg.max_fill_buffer;
    for (seg_view **pp = &f->subs; *pp;) {
        seg_view *v = *pp;
        if (!v->r->started || mc_http_backlog(v->r->conn) <= limit) {
            pp = &v->next;
            continue;
        }
        *pp = v->next;
        v->next = NULL;
        v->sf = NULL;
        mc_log_warn("segment", "key=\"%s\" msg=\"viewer too slow, cut off\"", f->keystr);
        mc_resp_fail(v->r, 504);
    }
    f->paused = 0;
    mc_upstream_resume(f->xfer);
}

static segfill *sf_start(seg_view *v, sf_kind kind, uint32_t idx)
{
    mc_resp *r = v->r;
    const mc_edge_config *cfg = r->w->node->cfg;
    segfill *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->magic = MC_SEGMENT_MAGIC;
    f->kind = kind;
    f->w = r->w;
    f->snap = mc_snap_ref(r->snap);
    f->idx = idx;
    f->pol = r->pol;
    f->hkey = r->key;
    f->request_time = time(NULL);
    f->generation = mc_store_generation(r->w->node->store);
    char ks[2048];
    if (kind == SF_REVAL)
        snprintf(ks, sizeof ks, "%s\n#seg:head", r->keystr);
    else
        mc_segment_keystr(r->keystr, idx, ks, sizeof ks);
    f->keystr = strdup(ks);
    f->hkeystr = strdup(r->keystr);
    f->s3path = strdup(r->s3path);
    f->query = r->query ? strdup(r->query) : NULL;
    if (!f->keystr || !f->hkeystr || !f->s3path || (r->query && !f->query)) {
        sf_free(f);
        return NULL;
    }
    f->key = mc_hash_key(ks, strlen(ks));
    char range[96], cond[400] = "", cond2[400] = "", e[256], l[128];
    if (kind == SF_PROBE) {
        f->seg_size = cfg->segment_size;
        f->start = (uint64_t)idx * f->seg_size;
        f->end = f->start + f->seg_size - 1;
    } else {
        f->seg_size = v->seg_size;
        f->total = v->total;
        snprintf(f->ver, sizeof f->ver, "%s", v->ver);
        if (kind == SF_REVAL) {
            f->start = f->end = 0;
        } else if (mc_segment_bounds(v->total, v->seg_size, idx, &f->start, &f->end) < 0) {
            sf_free(f);
            return NULL;
        }
        const char *h = r->meta.headers;
        int have_e = mc_hdr_find(h, "ETag", e, sizeof e) != NULL, have_l = mc_hdr_find(h, "Last-Modified", l, sizeof l) != NULL;
        if (kind == SF_REVAL) {
            if (have_e)
                snprintf(cond, sizeof cond, "If-None-Match: %s", e);
            if (have_l)
                snprintf(cond2, sizeof cond2, "If-Modified-Since: %s", l);
            f->head = r->meta;
            f->head.key = strdup(r->meta.key);
            f->head.headers = strdup(r->meta.headers);
            f->has_head = 1;
            if (!f->head.key || !f->head.headers) {
                sf_free(f);
                return NULL;
            }
        } else if (have_e && strncmp(e, "W/", 2) != 0) {
            snprintf(cond, sizeof cond, "If-Match: %s", e);   /* a strong validator: byte-identical */
        } else if (have_l) {
            snprintf(cond, sizeof cond, "If-Unmodified-Since: %s", l);
        }
    }
    snprintf(range, sizeof range, "Range: bytes=%" PRIu64 "-%" PRIu64, f->start, f->end);
    char loop[160], via[160];
    snprintf(loop, sizeof loop, "CDN-Loop: meshcdn-%s", cfg->node_id);
    snprintf(via, sizeof via, "Via: 1.1 meshcdn-%s", cfg->node_id);
    const char *extra[6] = {loop, via, range};
    int n = 3;
    if (cond[0])
        extra[n++] = cond;
    if (cond2[0])
        extra[n++] = cond2;
    extra[n] = NULL;
    f->stall = evtimer_new(r->w->base, on_stall, f);
    f->xfer = f->stall ? mc_upstream_get(r->w->upstream, f->snap, f->s3path, f->query, extra, &sf_cbs, f) : NULL;
    if (!f->xfer) {
        sf_free(f);
        return NULL;
    }
    mc_counter_add(&mc_stats_global.segment_fills_started, 1);
    segfill **b = sbucket(r->w->segs, f->key);
    f->next_in_bucket = *b;
    *b = f;
    return f;
}

static void sub_add(segfill *f, seg_view *v)
{
    v->sf = f;
    v->sub = 1;
    v->next = f->subs;
    f->subs = v;
}

static void waiter_add(segfill *f, seg_view *v)
{
    v->sf = f;
    v->sub = 0;
    v->next = f->waiters;
    f->waiters = v;
}

/* v needs segment idx, which the store does not have (in v's version). */
static void attach(seg_view *v, uint32_t idx)
{
    mc_resp *r = v->r;
    char ks[2048];
    mc_segment_keystr(r->keystr, idx, ks, sizeof ks);
    mc_hash128 k = mc_hash_key(ks, strlen(ks));
    segfill *f = sf_find(r->w->segs, k);
    if (f) {
        uint64_t off = next_off(r);
        int same = f->kind == SF_SEGMENT && strcmp(f->ver, v->ver) == 0;
        if (same && !f->publishing && !f->ended && off - f->start >= f->received)
            sub_add(f, v);      /* its next byte is still to come: stream along */
        else
            waiter_add(f, v);   /* wait for the store (or another version's fill to end) */
        if (f->kind == SF_SEGMENT)
            mc_counter_add(&mc_stats_global.segment_collapsed, 1);
        return;
    }
    int rc = sreg_claim(k, r->w, v);
    if (rc == 0)
        return;                 /* another worker fetches it: wait for its publish */
    if (rc < 0) {
        mc_resp_fail(r, 503);
        return;
    }
    if (!(f = sf_start(v, SF_SEGMENT, idx))) {
        sreg_release(k, 0);
        mc_resp_fail(r, 502);
        return;
    }
    sub_add(f, v);
}

/* A cold URL: fetch segment idx, whose response tells the total. */
static void start_probe(seg_view *v, uint32_t idx)
{
    mc_resp *r = v->r;
    char ks[2048];
    mc_segment_keystr(r->keystr, idx, ks, sizeof ks);
    mc_hash128 k = mc_hash_key(ks, strlen(ks));
    segfill *f = sf_find(r->w->segs, k);
    if (f) {
        if (f->kind == SF_PROBE && !f->headers_ok && !f->ended)
            sub_add(f, v);      /* adopts the head it learns */
        else
            waiter_add(f, v);   /* then looks up again */
        return;
    }
    int rc = sreg_claim(k, r->w, v);
    if (rc == 0)
        return;
    if (rc < 0) {
        mc_resp_fail(r, 503);
        return;
    }
    if (!(f = sf_start(v, SF_PROBE, idx))) {
        sreg_release(k, 0);
        mc_resp_fail(r, 502);
        return;
    }
    mc_counter_add(&mc_stats_global.segment_probes, 1);
    sub_add(f, v);
}

static void revalidate(seg_view *v)
{
    mc_resp *r = v->r;
    char ks[2048];
    snprintf(ks, sizeof ks, "%s\n#seg:head", r->keystr);
    mc_hash128 k = mc_hash_key(ks, strlen(ks));
    segfill *f = sf_find(r->w->segs, k);
    if (f) {
        waiter_add(f, v);
        return;
    }
    int rc = sreg_claim(k, r->w, v);
    if (rc == 0) {
        v->remote_reval = 1;
        return;
    }
    if (rc < 0) {
        mc_resp_fail(r, 503);
        return;
    }
    if (!(f = sf_start(v, SF_REVAL, 0))) {
        sreg_release(k, 0);
        mc_resp_fail(r, 502);
        return;
    }
    waiter_add(f, v);
}

/* ---------- entry points ---------- */

int mc_segment_probe_wanted(const mc_resp *r)
{
    const mc_edge_config *cfg = r->w->node->cfg;
    return r->pol->segment_threshold > 0 && !r->no_segments && !r->req->is_head && strcmp(r->req->method, "GET") == 0 &&
           !r->pol->compress &&
           mc_segment_probe_index(mc_http_req_header(r->req, "Range"), cfg->segment_size) >= 0 &&
           !mc_fill_running(r->key);
}

/* Revalidate v's stale head with nobody waiting for the answer
 * (stale-while-revalidate): nothing when one runs for it on any worker. */
static void revalidate_background(seg_view *v)
{
    mc_resp *r = v->r;
    char ks[2048];
    snprintf(ks, sizeof ks, "%s\n#seg:head", r->keystr);
    mc_hash128 k = mc_hash_key(ks, strlen(ks));
    if (sf_find(r->w->segs, k) || sreg_claim(k, r->w, NULL) != 1)
        return;
    if (!sf_start(v, SF_REVAL, 0))
        sreg_release(k, 0);
}

void mc_segment_serve(mc_resp *r, int mode)
{
    int fresh = mode != MC_SEGMENT_REVALIDATE;
    seg_view *v = r->seg;
    if (!v) {
        v = calloc(1, sizeof *v);
        if (!v || !(v->kick = evtimer_new(r->w->base, on_kick, v))) {
            free(v);
            mc_resp_fail(r, 503);
            return;
        }
        v->magic = VIEW_MAGIC;
        v->r = r;
        r->seg = v;
    }
    assert(!v->sf && !v->remote);
    mc_http_owner o = {on_drain, on_close, r};
    mc_http_set_owner(r->conn, &o);
    v->fresh = fresh;
    if (!r->has_meta) {
        int64_t idx = mc_segment_probe_index(mc_http_req_header(r->req, "Range"), r->w->node->cfg->segment_size);
        if (idx < 0) {
            handover_now(v);
            return;
        }
        start_probe(v, (uint32_t)idx);
        return;
    }
    mc_store_touch(r->w->node->store, r->key);   /* the head is used: SIEVE keeps it */
    v->stored_head = 1;
    if (view_adopt(v) < 0) {
        mc_log_warn("segment", "key=\"%s\" msg=\"unusable head, fetching whole\"", r->keystr);
        mc_store_delete(r->w->node->store, r->key);
        handover_now(v);
        return;
    }
    if (!fresh) {
        revalidate(v);
        return;
    }
    if (mode == MC_SEGMENT_STALE) {
        revalidate_background(v);
        r->result = MC_RESULT_STALE;   /* Cache-Status: hit, ttl < 0, r->detail */
    }
    if (finish_bodyless(v))
        return;
    pump(v);
}

void mc_segment_leave(mc_resp *r)
{
    seg_view *v = r->seg;
    assert(v && v->magic == VIEW_MAGIC);
    segfill *f = v->sf;
    if (f) {
        unlink_view(v->sub ? &f->subs : &f->waiters, v);
        v->sf = NULL;
        /* nobody left and nothing to store: stop fetching */
        if (!f->subs && !f->waiters && !f->storing && f->xfer && !f->ended && f->kind != SF_REVAL) {
            mc_upstream_cancel(f->xfer);
            f->xfer = NULL;
            sf_remove(f, 0);
            sf_free(f);
        } else if (f->xfer) {
            mc_upstream_resume(f->xfer);
        }
    }
    view_free(v);
}

/* ---------- ending a version ---------- */

/* The object changed under a segmented copy: delete the head and every
 * segment of the old version (the store's FIFO puts these before any
 * publish of the new one queued later). */
static void drop_version(mc_worker *w, mc_hash128 hkey, const char *hkeystr, uint64_t total, uint64_t seg_size)
{
    mc_store *st = w->node->store;
    mc_store_delete(st, hkey);
    uint32_t n = mc_segment_count(total, seg_size);
    char ks[2048];
    for (uint32_t i = 0; i < n; i++) {
        mc_segment_keystr(hkeystr, i, ks, sizeof ks);
        mc_store_delete(st, mc_hash_key(ks, strlen(ks)));
    }
    mc_counter_add(&mc_stats_global.segment_version_changes, 1);
}

/* A viewer of a version that is gone: aborted when bytes went out, else it
 * starts over (a few times). */
static void view_restart(seg_view *v)
{
    mc_resp *r = v->r;
    if (r->started || ++v->restarts > MAX_RESTARTS) {
        mc_resp_fail(r, 502);
        return;
    }
    if (v->stored_head && (!v->fresh || r->result == MC_RESULT_STALE)) {
        r->stale_replaced = 1;   /* its stale copy was replaced: fwd=stale, as a whole object's */
        r->detail = NULL;
    }
    view_drop_head(v);
    r->result = r->stale_replaced ? MC_RESULT_EXPIRED : MC_RESULT_MISS;
    v->restart = 1;
    kick(v);
}

static void release_all(segfill *f, void (*fn)(seg_view *))
{
    while (f->subs)
        fn(pop_view(&f->subs));
    while (f->waiters)
        fn(pop_view(&f->waiters));
}

/* A segment could not be fetched (no answer, an error status, a short
 * body). A viewer already streaming is cut (its response ends short, never
 * completed with another version's bytes). One served its stale copy
 * (stale-while-revalidate, stale-if-error) that got no byte yet: 504, as
 * when the cache can serve nothing (RFC 9111 4.2.4; detail
 * "segment-unavailable"); one on a fresh head: 502 fwd=partial. */
static void fail_view(seg_view *v)
{
    mc_resp *r = v->r;
    if (!r->started && r->result == MC_RESULT_STALE) {
        mc_resp_fail_detail(r, 504, "segment-unavailable");
        return;
    }
    r->partial = v->stored_head && v->fresh && r->result != MC_RESULT_STALE;
    mc_resp_fail(r, 502);
}
static void kick_view(seg_view *v) { kick(v); }
static void handover_view(seg_view *v);
static void refetch_view(seg_view *v)
{
    v->r->stale_replaced = 1;   /* fwd=stale, its copy not used */
    v->r->detail = NULL;
    handover_view(v);
}
static void handover_view(seg_view *v)
{
    if (v->r->started) {
        mc_resp_fail(v->r, 502);   /* bytes went out: it cannot start over */
        return;
    }
    v->handover = 1;
    kick(v);
}

/* ---------- upstream callbacks ---------- */

/* The upstream's fields as stored: hop-by-hop and edge-set ones dropped
 * (fill.h), Content-Range kept aside, the type fixed by extension. */
static char *filter_headers(segfill *f, int status, const mc_http_header *h, int n, char *crange, size_t crl)
{
    const char *connection = NULL;
    for (int i = 0; i < n; i++)
        if (strcasecmp(h[i].name, "Connection") == 0)
            connection = h[i].value;
    mc_buf b = MC_BUF_INIT;
    const char *ctype = NULL;
    crange[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (strcasecmp(h[i].name, "Content-Range") == 0) {
            snprintf(crange, crl, "%s", h[i].value);
            continue;
        }
        if (mc_fill_drop_header(h[i].name, connection) ||
            (f->pol->set_cookie_strip && strcasecmp(h[i].name, "Set-Cookie") == 0) ||
            strcasecmp(h[i].name, MC_SEGMENT_HDR) == 0)
            continue;
        if (strcasecmp(h[i].name, "Content-Type") == 0) {
            if (!ctype && mc_fill_fix_type(h[i].value, f->hkeystr))
                continue;
            ctype = h[i].value;
        }
        mc_buf_printf(&b, "%s: %s\r\n", h[i].name, h[i].value);
    }
    if (!ctype && status / 100 == 2 && (ctype = mc_fill_fix_type(NULL, f->hkeystr)) != NULL)
        mc_buf_printf(&b, "Content-Type: %s\r\n", ctype);
    if (!b.data)
        mc_buf_puts(&b, "");
    return mc_buf_steal(&b);
}

/* The lines stored with each segment: its version and the surrogate keys
 * (so a surrogate-key purge names the segments too). */
static char *segment_lines(const char *head_hdrs)
{
    mc_buf b = MC_BUF_INIT;
    char v[1024];
    static const char *const names[] = {"ETag", "Last-Modified", MC_SEGMENT_HDR, NULL};
    for (int i = 0; names[i]; i++)
        if (mc_hdr_find(head_hdrs, names[i], v, sizeof v))
            mc_buf_printf(&b, "%s: %s\r\n", names[i], v);
    for (const char *p = head_hdrs; p && *p;) {
        const char *eol = strstr(p, "\r\n");
        size_t ll = eol ? (size_t)(eol - p) + 2 : strlen(p);
        if (strncasecmp(p, "Surrogate-Key:", 14) == 0)
            mc_buf_append(&b, p, ll);
        p += ll;
    }
    return mc_buf_steal(&b);
}

static void noop_done(void *arg, int ok) { (void)arg, (void)ok; }

static int begin_storing(segfill *f, const char *version_hdrs)
{
    free(f->seg_hdrs);
    f->seg_hdrs = segment_lines(version_hdrs);
    if (!f->seg_hdrs)
        return -1;
    if (mc_chunkw_begin(&f->cw, f->w->node->store, NULL, f->key, 1) < 0)
        return -1;
    f->xxh = XXH3_createState();
    if (!f->xxh)
        return -1;
    XXH3_64bits_reset(f->xxh);
    f->storing = 1;
    return 0;
}

/* The head of a version learnt from an upstream response (hdrs filtered,
 * total its length): published when the object is above the behavior's
 * threshold, storable and not varying. 0 with *out set (owned by the
 * caller), or -1. */
static int store_head(segfill *f, const char *hdrs, uint64_t total, mc_object_meta *out)
{
    char v[64];
    if (f->pol->segment_threshold == 0 || total <= f->pol->segment_threshold || mc_hdr_find(hdrs, "Vary", v, sizeof v))
        return -1;
    mc_fresh fr;
    mc_fill_freshness(200, hdrs, f->request_time, f->response_time, f->pol, &fr);
    if (!fr.storable)
        return -1;
    mc_buf hb = MC_BUF_INIT;
    mc_buf_printf(&hb, "%s%s: %" PRIu64 " %" PRIu64 "\r\n", hdrs, MC_SEGMENT_HDR, total, f->seg_size);
    mc_object_meta m = {0};
    m.status = 200;
    m.chunk_size = MC_STORE_CHUNK_SIZE;
    m.seq = mc_store_next_seq(f->w->node->store);
    m.generation = f->generation;
    m.response_time = f->response_time;
    m.initial_age_s = fr.initial_age_s;
    m.lifetime_s = fr.lifetime_s;
    m.flags = MC_META_F_SEGMENTED;
    m.key = strdup(f->hkeystr);
    m.headers = mc_buf_steal(&hb);
    if (!m.key || !m.headers) {
        mc_object_meta_free(&m);
        return -1;
    }
    mc_store_publish(f->w->node->store, f->hkey, &m, noop_done, NULL);
    mc_log_info("segment", "key=\"%s\" msg=\"stored as segments\" total=%" PRIu64 " segment_size=%" PRIu64,
                f->hkeystr, total, f->seg_size);
    *out = m;
    return 0;
}

/* A probe's 206: above the threshold the object is segmented from now on. */
static int probe_headers(segfill *f, int status, const char *hdrs, const char *crange)
{
    uint64_t a, b, total;
    mc_object_meta m;
    if (status != 206 || mc_segment_content_range(crange, &a, &b, &total) < 0 || a != f->start ||
        b != (f->start + f->seg_size - 1 < total - 1 ? f->start + f->seg_size - 1 : total - 1) ||
        store_head(f, hdrs, total, &m) < 0)
        return -1;
    f->head = m;
    f->has_head = 1;
    f->total = total;
    f->end = b;
    version_of(m.headers, f->ver, sizeof f->ver);
    return 0;
}

/* A stale head was confirmed (304, or a 206 of the same version): refresh
 * its freshness in the store and for its viewers. */
static void reval_confirmed(segfill *f, const char *hdrs)
{
    char *merged = mc_fill_merge_headers(f->head.headers, hdrs);
    if (!merged)
        return;
    mc_fresh fr;
    mc_fill_freshness(200, merged, f->request_time, f->response_time, f->pol, &fr);
    mc_object_meta m = f->head;
    m.headers = merged;
    m.response_time = f->response_time;
    m.initial_age_s = fr.initial_age_s;
    m.lifetime_s = fr.lifetime_s;
    m.generation = f->generation;
    m.flags &= ~MC_META_F_INVALIDATED;
    if (fr.storable)
        mc_store_update_meta(f->w->node->store, f->hkey, &m, noop_done, NULL);
    mc_counter_add(&mc_stats_global.segment_revalidated, 1);
    while (f->waiters) {
        seg_view *v = pop_view(&f->waiters);
        mc_resp *r = v->r;
        free(r->meta.headers);
        r->meta.headers = strdup(merged);
        r->meta.response_time = m.response_time;
        r->meta.initial_age_s = m.initial_age_s;
        r->meta.lifetime_s = m.lifetime_s;
        if (!r->meta.headers || view_adopt(v) < 0) {
            mc_resp_fail(r, 502);
            continue;
        }
        r->result = MC_RESULT_REVALIDATED;
        v->fresh = 1;
        kick(v);
    }
    free(merged);
}

/* The revalidation got no answer (status 0) or a 5xx: stale-if-error where
 * the head allows it (RFC 9111 4.2.4; served from the stored segments), else
 * as for a whole object (fill.h): 504 "stale-forbidden" without an answer,
 * the upstream's status after a 5xx. */
static void reval_failed(segfill *f, int status)
{
    while (f->waiters) {
        seg_view *v = pop_view(&f->waiters);
        if (mc_lookup_stale_allowed(v->r, 1)) {
            v->r->result = MC_RESULT_STALE;
            v->r->detail = "stale-if-error";
            v->fresh = 1;
            kick(v);
        } else if (status >= 500) {
            mc_resp_fail(v->r, status);
        } else {
            mc_resp_fail_detail(v->r, 504, "stale-forbidden");
        }
    }
}

static int sf_on_headers(void *arg, int status, const mc_http_header *h, int n, int64_t clen)
{
    segfill *f = arg;
    f->response_time = time(NULL);
    char crange[128];
    char *hdrs = filter_headers(f, status, h, n, crange, sizeof crange);
    if (!hdrs)
        return -1;
    char ver[640], tmp[640];
    uint64_t a, b, total;
    int cr_ok = mc_segment_content_range(crange, &a, &b, &total) == 0;
    int rc = -1;
    f->ended = 1;
    switch (f->kind) {
    case SF_PROBE:
        if (probe_headers(f, status, hdrs, crange) < 0 || begin_storing(f, f->head.headers) < 0) {
            mc_log_info("segment", "key=\"%s\" msg=\"not segmented, fetching whole\" status=%d content_range=\"%s\"",
                        f->hkeystr, status, crange);
            f->handover = 1;
            release_all(f, handover_view);
            break;
        }
        f->ended = 0;
        f->headers_ok = 1;
        rc = 0;
        /* every viewer adopts the new head; those that need another
         * segment first leave and go on from the store */
        for (seg_view **pp = &f->subs; *pp;) {
            seg_view *v = *pp;
            mc_resp *r = v->r;
            if (r->has_meta)
                mc_object_meta_free(&r->meta);
            r->meta = f->head;
            r->meta.key = strdup(f->head.key);
            r->meta.headers = strdup(f->head.headers);
            r->has_meta = 1;
            if (!r->meta.key || !r->meta.headers || view_adopt(v) < 0) {
                *pp = v->next;
                v->next = NULL;
                v->sf = NULL;
                mc_resp_fail(r, 502);
                continue;
            }
            uint64_t off = r->first;
            if (!r->has_body || off < f->start || off > f->end) {
                *pp = v->next;
                v->next = NULL;
                v->sf = NULL;
                if (!finish_bodyless(v))
                    kick(v);
                continue;
            }
            pp = &v->next;
        }
        break;
    case SF_SEGMENT:
        /* a 206's total, or a 200's length: the version names it */
        snprintf(tmp, sizeof tmp, "%s%s: %" PRIu64 " %" PRIu64 "\r\n", hdrs, MC_SEGMENT_HDR,
                 cr_ok ? total : status == 200 && clen >= 0 ? (uint64_t)clen : 0, f->seg_size);
        version_of(tmp, ver, sizeof ver);
        if (status == 206 && cr_ok && a == f->start && b == f->end && total == f->total && strcmp(ver, f->ver) == 0) {
            if (begin_storing(f, tmp) < 0)
                break;
            f->ended = 0;
            f->headers_ok = 1;
            rc = 0;
        } else if (status == 200 && clen >= 0 && (uint64_t)clen == f->total && strcmp(ver, f->ver) == 0) {
            /* the origin ignores Range but it is the same version: take the
             * segment's bytes out of the whole body and stop after them */
            if (begin_storing(f, tmp) < 0)
                break;
            f->skip = f->start;
            f->cut = 1;
            f->ended = 0;
            f->headers_ok = 1;
            rc = 0;
        } else if (status == 412 || status == 206) {
            mc_log_warn("segment", "key=\"%s\" msg=\"object changed, dropping its segments\" status=%d segment=%" PRIu32,
                        f->hkeystr, status, f->idx);
            drop_version(f->w, f->hkey, f->hkeystr, f->total, f->seg_size);
            release_all(f, view_restart);
        } else if (status == 200) {
            /* the origin ignores Range now: the whole object instead */
            release_all(f, handover_view);
        } else {
            mc_log_warn("segment", "key=\"%s\" msg=\"segment fetch failed\" status=%d segment=%" PRIu32, f->hkeystr,
                        status, f->idx);
            release_all(f, fail_view);
        }
        break;
    case SF_REVAL:
        snprintf(tmp, sizeof tmp, "%s%s: %" PRIu64 " %" PRIu64 "\r\n", hdrs, MC_SEGMENT_HDR, cr_ok ? total : 0,
                 f->seg_size);
        version_of(tmp, ver, sizeof ver);
        if (status == 304 || (status == 206 && cr_ok && strcmp(ver, f->ver) == 0)) {
            reval_confirmed(f, hdrs);
        } else if (status == 200 || status == 206 || status == 412 || status == 404 || status == 410) {
            /* another version (or none): the old head and every old segment
             * go; the new version's head is stored after them (the store's
             * FIFO) so that the next viewer finds it, its segments fetched
             * on demand; this request's viewers start over (fwd=stale) */
            drop_version(f->w, f->hkey, f->hkeystr, f->total, f->seg_size);
            mc_object_meta m;
            uint64_t ntotal = status == 206 && cr_ok ? total : status == 200 && clen >= 0 ? (uint64_t)clen : 0;
            if (ntotal > 0 && store_head(f, hdrs, ntotal, &m) == 0)
                mc_object_meta_free(&m);
            release_all(f, view_restart);
        } else if (status >= 500) {
            reval_failed(f, status);
        } else {
            /* any other answer (403, a redirect, 416 ...): what the origin
             * says now reaches the viewers through a whole-object request,
             * as a whole object's revalidation would pass it on */
            release_all(f, refetch_view);
        }
        break;
    }
    free(hdrs);
    return rc;
}

static void stop_storing(segfill *f)
{
    if (!f->storing)
        return;
    f->storing = 0;
    mc_chunkw_abort(&f->cw);
}

static void store_failed(segfill *f)
{
    mc_log_warn("segment", "key=\"%s\" msg=\"not stored\" why=\"store queue full\"", f->keystr);
    stop_storing(f);
}

static void flush_chunk(segfill *f)
{
    if (f->storing && mc_chunkw_flush(&f->cw) < 0)
        store_failed(f);
}

static int sf_on_body(void *arg, const void *data, size_t len)
{
    segfill *f = arg;
    size_t limit = f->snap->cfg.max_fill_buffer;
    for (seg_view *v = f->subs; v; v = v->next)
        if (v->r->started && mc_http_backlog(v->r->conn) > limit) {
            if (!f->paused) {
                int64_t ms = f->snap->cfg.stall_timeout_ms;
                struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
                evtimer_add(f->stall, &tv);
            }
            f->paused = 1;
            return MC_UPSTREAM_PAUSE;   /* on_drain resumes */
        }
    if (f->paused)
        evtimer_del(f->stall);
    f->paused = 0;
    if (f->skip) {
        size_t k = len < f->skip ? len : (size_t)f->skip;
        data = (const char *)data + k;
        len -= k;
        f->skip -= k;
        if (len == 0)
            return 0;
    }
    uint64_t room_left = f->end - f->start + 1 - f->received;
    if (len > room_left) {
        if (!f->cut)
            return -1;   /* more than the range asked for: never store it */
        len = (size_t)room_left;
    }
    uint64_t off = f->start + f->received;
    for (seg_view **pp = &f->subs; *pp;) {
        seg_view *v = *pp;
        mc_resp *r = v->r;
        start_response(v, 0, f->storing);
        mc_resp_write(r, off, data, len);
        if (r->done || r->pos > f->end) {
            /* its window left this segment: go on from the store or the next fill */
            *pp = v->next;
            v->next = NULL;
            v->sf = NULL;
            kick(v);
            continue;
        }
        pp = &v->next;
    }
    if (f->storing) {
        XXH3_64bits_update(f->xxh, data, len);
        if (mc_chunkw_append(&f->cw, data, len) < 0)
            store_failed(f);
    }
    f->received += len;
    mc_counter_add(&mc_stats_global.segment_bytes, len);
    if (f->cut && f->received == f->end - f->start + 1)
        return -1;   /* the segment is complete: the rest of the whole body is not needed */
    if (!f->subs && !f->storing)
        return -1;   /* nobody wants the rest */
    return 0;
}

static void on_published_main(void *arg)
{
    segfill *f = arg;
    assert(f->magic == MC_SEGMENT_MAGIC && f->publishing);
    mc_counter_add(f->publish_ok ? &mc_stats_global.segment_fills_published : &mc_stats_global.segment_fills_failed, 1);
    sf_remove(f, 0);
    /* the segment is in the store (or it was not stored: then they fetch it) */
    release_all(f, kick_view);
    sf_free(f);
}

static void on_published(void *arg, int ok)
{
    segfill *f = arg;
    f->publish_ok = ok;
    mc_worker_post_mail(f->w, &f->published, on_published_main, f);
}

static void sf_on_done(void *arg, int rc, const char *why)
{
    segfill *f = arg;
    f->xfer = NULL;
    if (f->ended) {   /* dealt with at the response head */
        sf_remove(f, f->handover);
        assert(!f->subs && !f->waiters);
        sf_free(f);
        return;
    }
    uint64_t want = f->end - f->start + 1;
    if (f->cut && rc == MC_E_STATE && f->received == want)
        rc = 0;   /* stopped on purpose after the segment's bytes */
    if (rc != 0 || !f->headers_ok || f->received != want) {
        mc_log_warn("segment", "key=\"%s\" msg=\"segment fetch failed\" why=\"%s\" received=%" PRIu64 " length=%" PRIu64,
                    f->keystr, rc ? why : "short body", f->received, want);
        stop_storing(f);
        mc_counter_add(&mc_stats_global.segment_fills_failed, 1);
        sf_remove(f, 0);
        if (f->kind == SF_REVAL)
            reval_failed(f, 0);
        release_all(f, fail_view);   /* never a short body presented as complete */
        sf_free(f);
        return;
    }
    flush_chunk(f);
    while (f->subs)   /* all their bytes went out: on to the next segment */
        kick(pop_view(&f->subs));
    if (f->storing) {
        mc_object_meta m = {0};
        m.status = 206;
        m.length = want;
        m.chunk_size = MC_STORE_CHUNK_SIZE;
        m.nchunks = f->cw.nchunks;
        m.seq = f->cw.seq;
        m.generation = f->generation;
        m.response_time = f->response_time;
        m.lifetime_s = f->has_head ? f->head.lifetime_s : 0;
        m.body_checksum = XXH3_64bits_digest(f->xxh);
        m.key = f->keystr;
        m.headers = f->seg_hdrs;
        assert(m.nchunks == (m.length + m.chunk_size - 1) / m.chunk_size);
        if (mc_store_publish(f->w->node->store, f->key, &m, on_published, f) == 0) {
            f->publishing = 1;
            return;
        }
        stop_storing(f);
    }
    sf_remove(f, 0);
    release_all(f, kick_view);
    sf_free(f);
}

static const mc_upstream_cbs sf_cbs = {sf_on_headers, sf_on_body, sf_on_done};

/* ---------- storing a whole-object fill as segments ---------- */

struct mc_segment_writer {
    uint32_t magic;
    mc_store *st;
    char *keystr;               /* the head's */
    char *seg_hdrs;
    uint64_t total, seg_size;
    uint64_t off;               /* next object byte */
    uint64_t generation;
    int64_t response_time, lifetime_s;
    int storing;                /* the current segment is being written */
    uint32_t idx;
    mc_hash128 skey;
    char skeystr[2048];
    mc_chunkw cw;               /* the current segment's chunks (at skey) */
    XXH3_state_t *xxh;
};

mc_segment_writer *mc_segment_writer_start(mc_worker *w, mc_hash128 key, const char *keystr, const char *hdrs,
                                           uint64_t total, const mc_object_meta *meta, uint64_t threshold)
{
    const mc_edge_config *cfg = w->node->cfg;
    if (threshold == 0 || total <= threshold)
        return NULL;
    mc_segment_writer *sw = calloc(1, sizeof *sw);
    if (!sw)
        return NULL;
    sw->magic = MC_SEGMENT_MAGIC;
    sw->st = w->node->store;
    sw->total = total;
    sw->seg_size = cfg->segment_size;
    sw->generation = meta->generation;
    sw->response_time = meta->response_time;
    sw->lifetime_s = meta->lifetime_s;
    mc_buf hb = MC_BUF_INIT;
    mc_buf_printf(&hb, "%s%s: %" PRIu64 " %" PRIu64 "\r\n", hdrs, MC_SEGMENT_HDR, total, sw->seg_size);
    sw->keystr = strdup(keystr);
    sw->xxh = XXH3_createState();
    if (!hb.data || !sw->keystr || !sw->xxh || !(sw->seg_hdrs = segment_lines(hb.data))) {
        mc_buf_free(&hb);
        mc_segment_writer_end(sw);
        return NULL;
    }
    mc_object_meta m = *meta;
    m.status = 200;
    m.length = 0;
    m.nchunks = 0;
    m.chunk_size = MC_STORE_CHUNK_SIZE;
    m.seq = mc_store_next_seq(sw->st);
    m.body_checksum = 0;
    m.flags = MC_META_F_SEGMENTED;
    m.key = (char *)keystr;
    m.headers = hb.data;
    int rc = mc_store_publish(sw->st, key, &m, noop_done, NULL);
    mc_buf_free(&hb);
    if (rc < 0) {
        mc_segment_writer_end(sw);
        return NULL;
    }
    mc_log_info("segment", "key=\"%s\" msg=\"stored as segments\" total=%" PRIu64 " segment_size=%" PRIu64, keystr,
                total, sw->seg_size);
    return sw;
}

static void writer_abort(mc_segment_writer *sw)
{
    if (sw->storing)
        mc_chunkw_abort(&sw->cw);
    sw->storing = 0;
}

static void writer_begin(mc_segment_writer *sw)
{
    sw->idx = (uint32_t)(sw->off / sw->seg_size);
    mc_segment_keystr(sw->keystr, sw->idx, sw->skeystr, sizeof sw->skeystr);
    sw->skey = mc_hash_key(sw->skeystr, strlen(sw->skeystr));
    mc_chunkw_begin(&sw->cw, sw->st, NULL, sw->skey, 0);   /* cannot fail: no reservation */
    XXH3_64bits_reset(sw->xxh);
    sw->storing = 1;
}

static void writer_flush(mc_segment_writer *sw)
{
    if (sw->storing && mc_chunkw_flush(&sw->cw) < 0)
        writer_abort(sw);   /* the queue is full: this segment is fetched on demand later */
}

static void writer_publish(mc_segment_writer *sw)
{
    writer_flush(sw);
    if (!sw->storing)
        return;
    uint64_t s = 0, e = 0;
    mc_segment_bounds(sw->total, sw->seg_size, sw->idx, &s, &e);
    mc_object_meta m = {0};
    m.status = 206;
    m.length = e - s + 1;
    m.chunk_size = MC_STORE_CHUNK_SIZE;
    m.nchunks = sw->cw.nchunks;
    m.seq = sw->cw.seq;
    m.generation = sw->generation;
    m.response_time = sw->response_time;
    m.lifetime_s = sw->lifetime_s;
    m.body_checksum = XXH3_64bits_digest(sw->xxh);
    m.key = sw->skeystr;
    m.headers = sw->seg_hdrs;
    assert(m.nchunks == (m.length + m.chunk_size - 1) / m.chunk_size);
    if (mc_store_publish(sw->st, sw->skey, &m, noop_done, NULL) == 0)
        mc_counter_add(&mc_stats_global.segment_fills_published, 1);
    sw->storing = 0;
}

void mc_segment_writer_feed(mc_segment_writer *sw, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0 && sw->off < sw->total) {
        if (sw->off % sw->seg_size == 0)
            writer_begin(sw);
        uint64_t seg_end = ((sw->off / sw->seg_size) + 1) * sw->seg_size;
        if (seg_end > sw->total)
            seg_end = sw->total;
        size_t n = len;
        if (n > seg_end - sw->off)
            n = (size_t)(seg_end - sw->off);
        if (sw->storing) {
            XXH3_64bits_update(sw->xxh, p, n);
            if (mc_chunkw_append(&sw->cw, p, n) < 0)
                writer_abort(sw);   /* the queue is full: this segment is fetched on demand later */
        }
        sw->off += n;
        p += n;
        len -= n;
        mc_counter_add(&mc_stats_global.segment_bytes, n);
        if (sw->off == seg_end)
            writer_publish(sw);
    }
}

int mc_segment_writer_mid(const mc_segment_writer *sw)
{
    return sw->storing && sw->off % sw->seg_size != 0 && sw->off < sw->total;
}

void mc_segment_writer_end(mc_segment_writer *sw)
{
    if (!sw)
        return;
    writer_abort(sw);
    mc_chunkw_free(&sw->cw);
    if (sw->xxh)
        XXH3_freeState(sw->xxh);
    free(sw->keystr);
    free(sw->seg_hdrs);
    sw->magic = 0;
    free(sw);
}
