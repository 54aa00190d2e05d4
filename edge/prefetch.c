/* prefetch.c — see prefetch.h. */
#include <assert.h>
#include <event2/event.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "common/err.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/path.h"
#include "common/sigv4.h"
#include "edge/fill.h"
#include "edge/listener.h"
#include "edge/lookup.h"
#include "edge/mesh.h"
#include "edge/prefetch.h"
#include "edge/respond.h"
#include "edge/snap.h"
#include "edge/store.h"
#include "edge/upstream.h"

/* ---------- counters ---------- */

static struct {
    _Atomic uint64_t started, completed, failed, dropped, bytes;
    _Atomic uint64_t skipped[MC_PREFETCH_SKIP_N];
    _Atomic uint64_t queued;
    _Atomic uint64_t hit_checks;
} stats;

static const char *const skip_names[MC_PREFETCH_SKIP_N] = {
    NULL, "data", "absolute", "outside", "invalid", "limit", "stored", "inflight", "bytes", "document"};

const char *mc_prefetch_skip_name(mc_prefetch_skip s)
{
    return s > 0 && s < MC_PREFETCH_SKIP_N ? skip_names[s] : "unknown";
}

void mc_prefetch_count_skip(mc_prefetch_skip s)
{
    if (s > 0 && s < MC_PREFETCH_SKIP_N)
        mc_counter_add(&stats.skipped[s], 1);
}

void mc_prefetch_metrics(mc_buf *b)
{
    static const struct {
        const char *name, *help;
        _Atomic uint64_t *v;
    } c[] = {
        {"meshcdn_edge_prefetch_started_total", "glTF references whose prefetch fill started", &stats.started},
        {"meshcdn_edge_prefetch_completed_total", "prefetch fills that ended stored", &stats.completed},
        {"meshcdn_edge_prefetch_failed_total", "prefetch fills that ended unstored (upstream error, not storable, given up)",
         &stats.failed},
        {"meshcdn_edge_prefetch_dropped_total", "glTF references dropped: the worker's prefetch queue was full",
         &stats.dropped},
        {"meshcdn_edge_prefetch_bytes_total", "body bytes stored by prefetch fills", &stats.bytes},
        {"meshcdn_edge_prefetch_hit_checks_total",
         "stored .gltf documents read again for references on a hit (objects were evicted or purged since the last check)",
         &stats.hit_checks},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        mc_metrics_header(b, c[i].name, "counter", c[i].help);
        mc_metrics_value(b, c[i].name, NULL, (double)mc_counter_get(c[i].v));
    }
    mc_metrics_header(b, "meshcdn_edge_prefetch_skipped_total", "counter",
                      "glTF references (or documents) not prefetched, by reason");
    for (int s = 1; s < MC_PREFETCH_SKIP_N; s++) {
        char labels[64];
        snprintf(labels, sizeof labels, "reason=\"%s\"", skip_names[s]);
        mc_metrics_value(b, "meshcdn_edge_prefetch_skipped_total", labels, (double)mc_counter_get(&stats.skipped[s]));
    }
    mc_metrics_header(b, "meshcdn_edge_prefetch_queued", "gauge", "glTF references waiting for a prefetch slot");
    mc_metrics_value(b, "meshcdn_edge_prefetch_queued", NULL, (double)mc_counter_get(&stats.queued));
}

/* ---------- resolving references (pure) ---------- */

/* RFC 3986 3.1: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":" before any
 * '/', '?' or '#'. */
static size_t scheme_len(const char *u)
{
    if (!((*u >= 'a' && *u <= 'z') || (*u >= 'A' && *u <= 'Z')))
        return 0;
    size_t i = 1;
    while ((u[i] >= 'a' && u[i] <= 'z') || (u[i] >= 'A' && u[i] <= 'Z') || (u[i] >= '0' && u[i] <= '9') ||
           u[i] == '+' || u[i] == '-' || u[i] == '.')
        i++;
    return u[i] == ':' ? i : 0;
}

/* The query as a browser sends it (WHATWG query percent-encode set: C0,
 * space, '"', '#', '<', '>', '\'' and non-ASCII); existing escapes stay. */
static char *encode_query(const char *q, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    mc_buf b = MC_BUF_INIT;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)q[i];
        if (c <= 0x20 || c >= 0x7f || c == '"' || c == '#' || c == '<' || c == '>' || c == '\'') {
            char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
            mc_buf_append(&b, esc, 3);
        } else {
            mc_buf_putc(&b, (char)c);
        }
    }
    mc_buf_reserve(&b, 0);
    return mc_buf_steal(&b);
}

int mc_prefetch_resolve(const char *base, const char *uri, char **path, char **query)
{
    *path = *query = NULL;
    size_t sl = scheme_len(uri);
    if (sl == 4 && strncasecmp(uri, "data", 4) == 0)
        return MC_PREFETCH_SKIP_DATA;
    if (sl > 0 || (uri[0] == '/' && uri[1] == '/'))
        return MC_PREFETCH_SKIP_ABSOLUTE;
    if (strchr(uri, '\\'))
        return MC_PREFETCH_SKIP_INVALID;   /* browsers read it as '/': "\\host" would be another origin */
    size_t ulen = strcspn(uri, "#");
    size_t plen = strcspn(uri, "?#");
    if (plen == 0)
        return MC_PREFETCH_SKIP_INVALID;   /* "", "?x", "#x": the document itself */
    /* RFC 3986 5.2.2/5.2.3: merge with the base's directory (its path up
     * to the last '/'), then remove dot segments (mc_path_normalize, which
     * also decodes "%2e"), exactly as a viewer's request is keyed */
    size_t blen = strcspn(base, "?");
    size_t dlen = blen;
    while (dlen > 0 && base[dlen - 1] != '/')
        dlen--;
    if (dlen == 0)
        return MC_PREFETCH_SKIP_INVALID;   /* a base that is not a path */
    mc_buf merged = MC_BUF_INIT, norm = MC_BUF_INIT;
    if (uri[0] != '/')
        mc_buf_append(&merged, base, dlen);
    mc_buf_append(&merged, uri, plen);
    if (!merged.data) {
        mc_buf_free(&merged);
        return MC_E_NOMEM;
    }
    int rc = mc_path_normalize(merged.data, merged.len, &norm);
    mc_buf_free(&merged);
    if (rc == MC_E_NOMEM) {
        mc_buf_free(&norm);
        return MC_E_NOMEM;
    }
    if (rc < 0) {
        mc_buf_free(&norm);
        return MC_PREFETCH_SKIP_INVALID;
    }
    if (norm.len < dlen || strncmp(norm.data, base, dlen) != 0) {
        mc_buf_free(&norm);
        return MC_PREFETCH_SKIP_OUTSIDE;
    }
    if (norm.len == blen && strncmp(norm.data, base, blen) == 0) {
        mc_buf_free(&norm);
        return MC_PREFETCH_SKIP_INVALID;   /* the .gltf itself */
    }
    if (plen < ulen && !(*query = encode_query(uri + plen + 1, ulen - plen - 1))) {
        mc_buf_free(&norm);
        return MC_E_NOMEM;
    }
    if (*query && !**query) {
        free(*query);               /* "a.bin?": no query, as a browser sends it */
        *query = NULL;
    }
    *path = mc_buf_steal(&norm);
    return 0;
}

void mc_prefetch_refs_free(mc_prefetch_refs *r)
{
    for (int i = 0; i < r->n; i++) {
        free(r->v[i].path);
        free(r->v[i].query);
    }
    free(r->v);
    r->v = NULL;
    r->n = 0;
}

static int same_ref(const mc_prefetch_ref *a, const char *path, const char *query)
{
    return strcmp(a->path, path) == 0 &&
           ((!a->query && !query) || (a->query && query && strcmp(a->query, query) == 0));
}

static int add_refs(json_t *arr, const char *base, int max_refs, mc_prefetch_refs *out)
{
    if (!json_is_array(arr))
        return 0;
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e) {
        json_t *u = json_is_object(e) ? json_object_get(e, "uri") : NULL;
        if (!json_is_string(u))
            continue;   /* GLB-stored buffer, or an image in a bufferView */
        char *path, *query;
        int rc = mc_prefetch_resolve(base, json_string_value(u), &path, &query);
        if (rc < 0)
            return rc;
        if (rc > 0) {
            out->skipped[rc]++;
            continue;
        }
        int dup = 0;
        for (int k = 0; k < out->n && !dup; k++)
            dup = same_ref(&out->v[k], path, query);
        if (dup || out->n >= max_refs) {
            if (!dup)
                out->skipped[MC_PREFETCH_SKIP_LIMIT]++;
            free(path);
            free(query);
            continue;
        }
        mc_prefetch_ref *v = realloc(out->v, (size_t)(out->n + 1) * sizeof *v);
        if (!v) {
            free(path);
            free(query);
            return MC_E_NOMEM;
        }
        out->v = v;
        out->v[out->n].path = path;
        out->v[out->n].query = query;
        out->n++;
    }
    return 0;
}

int mc_prefetch_extract(const char *doc, size_t len, const char *base, int max_refs, mc_prefetch_refs *out)
{
    memset(out, 0, sizeof *out);
    json_t *root = json_loadb(doc, len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(root)) {
        json_decref(root);
        return MC_E_INVAL;
    }
    int rc = add_refs(json_object_get(root, "buffers"), base, max_refs, out);
    if (rc == 0)
        rc = add_refs(json_object_get(root, "images"), base, max_refs, out);
    json_decref(root);
    if (rc < 0)
        mc_prefetch_refs_free(out);
    return rc;
}

/* ---------- the per-worker prefetcher ---------- */

#define MC_PREFETCH_MAGIC 0x50524546u

/* One document's share of [prefetch] max_bytes; held by its items. */
typedef struct pf_doc {
    int refs;
    uint64_t budget_left;
} pf_doc;

/* One reference, queued or running. Owned by the prefetcher's lists. */
typedef struct pf_item {
    struct pf_item *next;
    mc_prefetch *p;
    pf_doc *doc;
    mc_hash128 key;
    char *keystr, *upath, *query;
    mc_edge_snap *snap;           /* the configuration it was queued under (a reference) */
    const mc_cache_policy *pol;   /* the target's behavior (in snap) */
    uint64_t reserved;            /* bytes taken from the document's budget */
} pf_item;

/* A .gltf whose references were last checked (queued) at removal epoch
 * `epoch` (evictions + purged objects of the store), at `checked_ms`. */
#define PF_MEMO_SLOTS 1024
#define PF_RECHECK_MS 1000
#define PF_PENDING_MAX 16
typedef struct pf_memo {
    mc_hash128 key;
    uint64_t epoch;
    int64_t checked_ms;
    int used;
} pf_memo;

/* A stored .gltf's body copied on a hit, to be read for references out of
 * the hit's call (on_kick). */
typedef struct pf_pending {
    struct pf_pending *next;
    char *keystr;
    char *doc;
    size_t len;
} pf_pending;

struct mc_prefetch {
    uint32_t magic;
    pf_memo *memo;                /* PF_MEMO_SLOTS, direct-mapped by key */
    pf_pending *pending;          /* documents to read, from hits */
    int npending;
    mc_worker *w;
    pf_item *qhead, *qtail;       /* waiting for a slot (FIFO) */
    int queued;
    pf_item *running;             /* their fills run */
    int nrunning;
    int closing;
    struct event *kick;           /* pumps the queue outside fill callbacks */
};

static void item_free(pf_item *it)
{
    if (it->doc && --it->doc->refs == 0)
        free(it->doc);
    free(it->keystr);
    free(it->upath);
    free(it->query);
    mc_snap_unref(it->snap);
    free(it);
}

static void pump(mc_prefetch *p);
static void queue_document(mc_prefetch *p, const char *keystr, const char *doc, size_t len);

static void pending_free(pf_pending *d)
{
    free(d->keystr);
    free(d->doc);
    free(d);
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
    mc_prefetch *p = arg;
    (void)fd, (void)what;
    while (p->pending && !p->closing) {
        pf_pending *d = p->pending;
        p->pending = d->next;
        p->npending--;
        queue_document(p, d->keystr, d->doc, d->len);
        pending_free(d);
    }
    pump(p);
}

static uint64_t removal_epoch(mc_worker *w)
{
    mc_store_stats *st = mc_store_get_stats(w->node->store);
    return mc_counter_get(&st->evictions) + mc_counter_get(&st->purged);
}

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static pf_memo *memo_slot(mc_prefetch *p, mc_hash128 key)
{
    return &p->memo[key.lo % PF_MEMO_SLOTS];
}

int mc_prefetch_new(mc_worker *w, mc_prefetch **out)
{
    mc_prefetch *p = calloc(1, sizeof *p);
    if (!p || !(p->memo = calloc(PF_MEMO_SLOTS, sizeof *p->memo)) || !(p->kick = evtimer_new(w->base, on_kick, p))) {
        if (p)
            free(p->memo);
        free(p);
        return MC_E_NOMEM;
    }
    p->magic = MC_PREFETCH_MAGIC;
    p->w = w;
    *out = p;
    return 0;
}

void mc_prefetch_close(mc_prefetch *p)
{
    if (!p)
        return;
    assert(p->magic == MC_PREFETCH_MAGIC);
    p->closing = 1;
    while (p->qhead) {
        pf_item *it = p->qhead;
        p->qhead = it->next;
        atomic_fetch_sub_explicit(&stats.queued, 1, memory_order_relaxed);
        item_free(it);
    }
    p->qtail = NULL;
    p->queued = 0;
    while (p->pending) {
        pf_pending *d = p->pending;
        p->pending = d->next;
        pending_free(d);
    }
    p->npending = 0;
}

void mc_prefetch_free(mc_prefetch *p)
{
    if (!p)
        return;
    assert(p->magic == MC_PREFETCH_MAGIC);
    mc_prefetch_close(p);
    /* the fill table was freed first: its fills told us they ended */
    assert(p->running == NULL && p->nrunning == 0);
    event_free(p->kick);
    free(p->memo);
    p->magic = 0;
    free(p);
}

static int on_fill_head(void *arg, int status, int64_t length)
{
    pf_item *it = arg;
    if (status != 200)
        return 0;   /* stored or not by the usual rules; no body budget to take */
    if (length < 0 || (uint64_t)length > it->doc->budget_left) {
        mc_log_debug("prefetch", "key=\"%s\" msg=\"over budget\" length=%lld left=%llu", it->keystr,
                     (long long)length, (unsigned long long)it->doc->budget_left);
        mc_prefetch_count_skip(MC_PREFETCH_SKIP_BYTES);
        return -1;
    }
    it->doc->budget_left -= (uint64_t)length;
    it->reserved = (uint64_t)length;
    return 0;
}

static void on_fill_end(void *arg, int stored, int given_up, uint64_t bytes)
{
    pf_item *it = arg;
    mc_prefetch *p = it->p;
    assert(p->magic == MC_PREFETCH_MAGIC);
    for (pf_item **pp = &p->running; *pp; pp = &(*pp)->next)
        if (*pp == it) {
            *pp = it->next;
            break;
        }
    p->nrunning--;
    if (stored) {
        mc_counter_add(&stats.completed, 1);
        mc_counter_add(&stats.bytes, bytes);
    } else {
        if (!given_up)
            mc_counter_add(&stats.failed, 1);
        it->doc->budget_left += it->reserved;   /* nothing stored: the budget goes back */
    }
    mc_log_debug("prefetch", "key=\"%s\" msg=end stored=%d bytes=%llu", it->keystr, stored, (unsigned long long)bytes);
    item_free(it);
    if (!p->closing && p->qhead)
        event_active(p->kick, EV_TIMEOUT, 0);   /* out of the fill's callback */
}

static const mc_fill_observer observer = {on_fill_head, on_fill_end};

/* Start queued items while slots are free. */
static void pump(mc_prefetch *p)
{
    const mc_edge_config *cfg = &mc_worker_snap(p->w)->cfg;
    while (!p->closing && p->qhead && p->nrunning < cfg->prefetch_concurrency) {
        pf_item *it = p->qhead;
        p->qhead = it->next;
        if (!p->qhead)
            p->qtail = NULL;
        it->next = NULL;
        p->queued--;
        atomic_fetch_sub_explicit(&stats.queued, 1, memory_order_relaxed);
        mc_object_meta m;
        if (mc_store_read_meta(p->w->reader, it->key, &m) == 0) {
            mc_object_meta_free(&m);
            mc_prefetch_count_skip(MC_PREFETCH_SKIP_STORED);
            item_free(it);
            continue;
        }
        it->next = p->running;   /* before the call: the fill may end inside it */
        p->running = it;
        p->nrunning++;
        int rc = mc_fill_prefetch(p->w, it->key, it->keystr, it->upath, it->query, it->snap, it->pol, &observer, it);
        if (rc == 0) {
            mc_counter_add(&stats.started, 1);
            mc_log_debug("prefetch", "key=\"%s\" msg=started", it->keystr);
            continue;
        }
        p->running = it->next;
        p->nrunning--;
        if (rc == 1)
            mc_prefetch_count_skip(MC_PREFETCH_SKIP_INFLIGHT);
        else
            mc_counter_add(&stats.failed, 1);
        item_free(it);
    }
}

void mc_prefetch_fill_started(const mc_edge_config *cfg, const mc_cache_policy *pol, const char *keystr,
                              mc_upstream_xfer *x)
{
    if (!pol->prefetch || !x || mc_mesh_format_of(NULL, keystr) != MC_MESH_GLTF)
        return;
    mc_upstream_preconnect(x, cfg->prefetch_preconnect);
}

int mc_prefetch_wanted(const mc_cache_policy *pol, int status, const char *ctype, const char *keystr)
{
    return pol->prefetch && status == 200 && mc_mesh_format_of(ctype, keystr) == MC_MESH_GLTF;
}

/* Queue one resolved reference; 0, or a skip reason. */
static int enqueue(mc_prefetch *p, pf_doc *doc, const mc_prefetch_ref *ref)
{
    mc_edge_snap *snap = mc_worker_snap(p->w);
    const mc_edge_config *cfg = &snap->cfg;
    mc_buf keystr = MC_BUF_INIT, norm = MC_BUF_INIT;
    const mc_cache_policy *pol;
    char *upq = NULL;
    pf_item *it = NULL;
    int rc = mc_lookup_key(ref->path, ref->query, cfg, &keystr, &norm, &pol, &upq);
    if (rc == 0 && (it = calloc(1, sizeof *it)) != NULL) {
        it->p = p;
        it->snap = mc_snap_ref(snap);
        it->pol = pol;
        it->query = upq;
        upq = NULL;
        /* as lookup.c: a signed origin gets the S3 encoding (signed = sent) */
        it->upath = cfg->origin_sign ? mc_sigv4_s3_path(norm.data) : strdup(norm.data);
        it->keystr = mc_buf_steal(&keystr);
        if (it->upath && it->keystr) {
            it->key = mc_hash_key(it->keystr, strlen(it->keystr));
            it->doc = doc;
            doc->refs++;
        } else {
            item_free(it);
            it = NULL;
        }
    }
    free(upq);
    mc_buf_free(&keystr);
    mc_buf_free(&norm);
    if (!it)
        return rc == MC_E_INVAL ? MC_PREFETCH_SKIP_INVALID : -1;
    if (mc_fill_running(it->key)) {
        item_free(it);
        return MC_PREFETCH_SKIP_INFLIGHT;
    }
    if (p->nrunning >= cfg->prefetch_concurrency && p->queued >= cfg->prefetch_queue) {
        mc_counter_add(&stats.dropped, 1);
        mc_log_debug("prefetch", "key=\"%s\" msg=\"queue full, dropped\"", it->keystr);
        item_free(it);
        return 0;
    }
    if (p->qtail)
        p->qtail->next = it;
    else
        p->qhead = it;
    p->qtail = it;
    p->queued++;
    mc_counter_add(&stats.queued, 1);
    return 0;
}

/* Read a .gltf's references and queue them (prefetch.h). */
static void queue_document(mc_prefetch *p, const char *keystr, const char *doc, size_t len)
{
    const mc_edge_config *cfg = &mc_worker_snap(p->w)->cfg;
    mc_prefetch_refs refs;
    int rc = mc_prefetch_extract(doc, len, keystr, cfg->prefetch_max_refs, &refs);
    if (rc < 0) {
        if (rc == MC_E_INVAL)
            mc_prefetch_count_skip(MC_PREFETCH_SKIP_DOCUMENT);
        return;
    }
    for (int s = 1; s < MC_PREFETCH_SKIP_N; s++)
        if (refs.skipped[s])
            mc_counter_add(&stats.skipped[s], refs.skipped[s]);
    pf_doc *d = calloc(1, sizeof *d);
    if (d) {
        d->budget_left = cfg->prefetch_max_bytes;
        d->refs = 1;   /* ours, while queueing */
        for (int i = 0; i < refs.n; i++) {
            int s = enqueue(p, d, &refs.v[i]);
            if (s > 0)
                mc_prefetch_count_skip((mc_prefetch_skip)s);
            pump(p);   /* a free slot takes it now: the queue holds only what waits */
        }
        mc_log_debug("prefetch", "key=\"%s\" msg=document refs=%d queued=%d", keystr, refs.n, p->queued);
        if (--d->refs == 0)
            free(d);
    }
    mc_prefetch_refs_free(&refs);
}

void mc_prefetch_gltf(mc_worker *w, const char *keystr, const char *doc, size_t len)
{
    mc_prefetch *p = w->prefetch;
    if (!p || p->closing)
        return;
    assert(p->magic == MC_PREFETCH_MAGIC);
    /* its references are checked now: hits need not until something is removed */
    mc_hash128 key = mc_hash_key(keystr, strlen(keystr));
    pf_memo *m = memo_slot(p, key);
    *m = (pf_memo){key, removal_epoch(w), now_ms(), 1};
    queue_document(p, keystr, doc, len);
}

/* Does keystr's path (before any '?') end in ".gltf"? (cheaper than
 * mc_mesh_format_of: it runs on every hit of a prefetching behavior) */
static int gltf_path(const char *keystr)
{
    size_t n = 0;
    while (keystr[n] && keystr[n] != '?')
        n++;
    if (n < 5 || keystr[n - 5] != '.')
        return 0;
    const char *e = keystr + n - 4;
    return (e[0] | 0x20) == 'g' && (e[1] | 0x20) == 'l' && (e[2] | 0x20) == 't' && (e[3] | 0x20) == 'f';
}

void mc_prefetch_hit(mc_worker *w, const mc_cache_policy *pol, mc_hash128 key, const char *keystr,
                     const mc_object_meta *meta, const void *body, size_t len)
{
    if (!pol->prefetch)
        return;
    mc_prefetch *p = w->prefetch;
    if (!p || p->closing)
        return;
    pf_memo *m = memo_slot(p, key);
    int known = m->used && m->key.hi == key.hi && m->key.lo == key.lo;
    if (!known && !gltf_path(keystr))
        return;   /* (a known key is a .gltf: its fill or a hit put it there) */
    uint64_t epoch = removal_epoch(w);
    if (known && m->epoch == epoch)
        return;   /* nothing removed from the store since its references were checked */
    if (meta->status != 200 || meta->length != len || !gltf_path(keystr))
        return;
    const mc_edge_config *cfg = &mc_worker_snap(w)->cfg;
    char ce[64];
    if (len > cfg->prefetch_max_gltf || mc_hdr_find(meta->headers, "Content-Encoding", ce, sizeof ce))
        return;   /* too big to read, or a compressed variant (its identity one is checked on its own hits) */
    int64_t now = now_ms();
    if (known && now - m->checked_ms < PF_RECHECK_MS)
        return;
    if (p->npending >= PF_PENDING_MAX)
        return;
    pf_pending *d = calloc(1, sizeof *d);
    if (!d || !(d->keystr = strdup(keystr)) || !(d->doc = malloc(len ? len : 1))) {
        if (d)
            pending_free(d);
        return;
    }
    memcpy(d->doc, body, len);
    d->len = len;
    *m = (pf_memo){key, epoch, now, 1};
    pf_pending **pp = &p->pending;   /* FIFO */
    while (*pp)
        pp = &(*pp)->next;
    *pp = d;
    p->npending++;
    mc_counter_add(&stats.hit_checks, 1);
    mc_log_debug("prefetch", "key=\"%s\" msg=\"hit: references checked again\"", keystr);
    event_active(p->kick, EV_TIMEOUT, 0);   /* out of the hit's read transaction */
}
