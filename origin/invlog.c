/* invlog.c — see invlog.h. The generic wrapper and status rules first, then
 * the LMDB backend. */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <jansson.h>
#include <lmdb.h>
#include "common/err.h"
#include "common/log.h"
#include "origin/invlog.h"

#define MC_INVLOG_MAGIC 0x494e564cu
#define CHECK(l) assert((l) != NULL && (l)->magic == MC_INVLOG_MAGIC)
#define LMDB_MAP_BYTES ((size_t)1 << 30)   /* ~300k entries of 3 KiB; sparse file */
/* A heartbeat that would only move last_seen by less than this is not
 * written: status works in seconds and unreachable_after is tens of them. */
#define HEARTBEAT_WRITE_S 1

struct mc_invlog {
    uint32_t magic;
    const mc_invlog_ops *ops;
    void *self;
    mc_invlog_notify_fn notify;
    void *notify_ud;
};

/* ---- lists ------------------------------------------------------------------ */

void mc_inval_list_free(mc_inval_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        mc_inval_free(&l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

void mc_edge_list_free(mc_edge_list *l)
{
    if (!l)
        return;
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

/* ---- status ----------------------------------------------------------------- */

bool mc_edge_unreachable(const mc_edge *e, int64_t now_s, int64_t unreachable_after_s)
{
    return now_s - e->last_seen_s > unreachable_after_s;
}

mc_edge_state mc_edge_state_for(const mc_edge *e, uint64_t seq, int64_t now_s,
                                int64_t unreachable_after_s)
{
    if (e->acked >= seq)
        return MC_EDGE_APPLIED;
    return mc_edge_unreachable(e, now_s, unreachable_after_s) ? MC_EDGE_UNREACHABLE
                                                              : MC_EDGE_PENDING;
}

const char *mc_edge_state_name(mc_edge_state s)
{
    switch (s) {
    case MC_EDGE_APPLIED: return "applied";
    case MC_EDGE_UNREACHABLE: return "unreachable";
    default: return "pending";
    }
}

bool mc_inval_completed(const mc_edge_list *edges, uint64_t seq, int64_t now_s,
                        int64_t unreachable_after_s)
{
    for (size_t i = 0; i < edges->n; i++)
        if (mc_edge_state_for(&edges->v[i], seq, now_s, unreachable_after_s) == MC_EDGE_PENDING)
            return false;
    return true;
}

/* ---- the wrapper ------------------------------------------------------------ */

int mc_invlog_new(mc_invlog **out, const mc_invlog_ops *ops, void *self)
{
    *out = NULL;
    mc_invlog *l = calloc(1, sizeof *l);
    if (!l) {
        ops->close(self);
        return MC_E_NOMEM;
    }
    l->magic = MC_INVLOG_MAGIC;
    l->ops = ops;
    l->self = self;
    *out = l;
    return 0;
}

void mc_invlog_close(mc_invlog *log)
{
    if (!log)
        return;
    CHECK(log);
    log->ops->close(log->self);
    log->magic = 0;
    free(log);
}

const char *mc_invlog_backend(const mc_invlog *log)
{
    CHECK(log);
    return log->ops->name;
}

void mc_invlog_set_notify(mc_invlog *log, mc_invlog_notify_fn fn, void *ud)
{
    CHECK(log);
    log->notify = fn;
    log->notify_ud = ud;
}

void mc_invlog_notify(mc_invlog *log, uint64_t last_seq)
{
    CHECK(log);
    if (log->notify)
        log->notify(log->notify_ud, last_seq);
}

static bool node_ok(const char *node)
{
    return node && node[0] && strlen(node) <= MC_EDGE_NODE_MAX;
}

int mc_invlog_wake_fd(mc_invlog *log)
{
    CHECK(log);
    return log->ops->wake_fd ? log->ops->wake_fd(log->self) : -1;
}

void mc_invlog_wake_drain(mc_invlog *log)
{
    int fd = mc_invlog_wake_fd(log);
    char b[64];
    while (fd >= 0 && read(fd, b, sizeof b) > 0)
        ;
}

int mc_invlog_append(mc_invlog *log, mc_inval *in)
{
    CHECK(log);
    if (!in->all && in->npaths + in->nkeys == 0)
        return MC_E_INVAL;
    if (in->npaths + in->nkeys > MC_INVAL_MAX_ITEMS)
        return MC_E_TOOBIG;
    int rc = log->ops->append(log->self, in);
    if (rc == 0) {
        assert(in->seq > 0);   /* seqs start at 1; 0 means "before everything" */
        mc_invlog_notify(log, in->seq);
    }
    return rc;
}

int mc_invlog_read_after(mc_invlog *log, uint64_t after, size_t max, mc_inval_list *out)
{
    CHECK(log);
    out->v = NULL;
    out->n = 0;
    if (max > MC_INVLOG_MAX_READ)
        max = MC_INVLOG_MAX_READ;
    return log->ops->read_after(log->self, after, max, out);
}

int mc_invlog_read_recent(mc_invlog *log, size_t limit, mc_inval_list *out)
{
    CHECK(log);
    out->v = NULL;
    out->n = 0;
    return log->ops->read_recent(log->self, limit, out);
}

int mc_invlog_get(mc_invlog *log, uint64_t seq, mc_inval *out)
{
    CHECK(log);
    memset(out, 0, sizeof *out);
    return seq == 0 ? MC_E_NOTFOUND : log->ops->get(log->self, seq, out);
}

int mc_invlog_last_seq(mc_invlog *log, uint64_t *out)
{
    CHECK(log);
    *out = 0;
    return log->ops->last_seq(log->self, out);
}

int mc_invlog_heartbeat(mc_invlog *log, const char *node, const char *region, int64_t now_s)
{
    CHECK(log);
    if (!node_ok(node) || (region && strlen(region) > MC_EDGE_REGION_MAX))
        return MC_E_INVAL;
    return log->ops->heartbeat(log->self, node, region, now_s);
}

int mc_invlog_ack(mc_invlog *log, const char *node, uint64_t seq, int64_t now_s)
{
    CHECK(log);
    if (!node_ok(node))
        return MC_E_INVAL;
    return log->ops->ack(log->self, node, seq, now_s);
}

int mc_invlog_edges(mc_invlog *log, mc_edge_list *out)
{
    CHECK(log);
    out->v = NULL;
    out->n = 0;
    return log->ops->edges(log->self, out);
}

/* ---- the LMDB backend ------------------------------------------------------- */

typedef struct lmdb_log {
    MDB_env *env;
    MDB_dbi log, edges, meta;
    bool opened;                  /* mdb_env_open succeeded */
    char dir[512];
} lmdb_log;

static int lmdb_err(const lmdb_log *l, const char *what, int rc)
{
    mc_log_error("invlog", "msg=\"%s failed\" dir=%s error=\"%s\"", what, l->dir,
                 mdb_strerror(rc));
    if (rc == MDB_MAP_FULL)
        return MC_E_FULL;
    return rc == ENOMEM ? MC_E_NOMEM : MC_E_IO;
}

static void put_be64(unsigned char out[8], uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        out[i] = (unsigned char)(v & 0xff);
}

static uint64_t get_be64(const void *p)
{
    const unsigned char *b = p;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | b[i];
    return v;
}

char *mc_invlog_entry_encode(const mc_inval *in)
{
    json_t *o = json_pack("{s:I, s:o, s:o, s:b, s:b}", "created", (json_int_t)in->created_s,
                          "paths", mc_inval_strings_json((const char *const *)in->paths, in->npaths), "surrogate_keys",
                          mc_inval_strings_json((const char *const *)in->keys, in->nkeys), "all", in->all, "soft", in->soft);
    if (!o)
        return NULL;
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

static int strings_decode(json_t *a, mc_inval *in, bool paths)
{
    size_t i;
    json_t *x;
    if (!json_is_array(a))
        return MC_E_INVAL;
    json_array_foreach(a, i, x) {
        if (!json_is_string(x))
            return MC_E_INVAL;
        int rc = paths ? mc_inval_add_path(in, json_string_value(x))
                       : mc_inval_add_key(in, json_string_value(x));
        if (rc < 0)
            return rc;
    }
    return 0;
}

int mc_invlog_entry_decode(uint64_t seq, const char *json, size_t len, mc_inval *out)
{
    memset(out, 0, sizeof *out);
    out->seq = seq;
    json_t *o = json_loadb(json, len, 0, NULL);
    if (!o)
        return MC_E_INVAL;
    int rc = 0;
    json_t *c = json_object_get(o, "created");
    out->created_s = json_is_integer(c) ? (int64_t)json_integer_value(c) : 0;
    out->all = json_is_true(json_object_get(o, "all"));
    out->soft = json_is_true(json_object_get(o, "soft"));
    if ((rc = strings_decode(json_object_get(o, "paths"), out, true)) == 0)
        rc = strings_decode(json_object_get(o, "surrogate_keys"), out, false);
    json_decref(o);
    if (rc < 0)
        mc_inval_free(out);
    return rc;
}

static int entry_decode(const MDB_val *k, const MDB_val *v, mc_inval *out)
{
    memset(out, 0, sizeof *out);
    if (k->mv_size != 8)
        return MC_E_INVAL;
    return mc_invlog_entry_decode(get_be64(k->mv_data), v->mv_data, v->mv_size, out);
}

static int list_push(mc_inval_list *l, const MDB_val *k, const MDB_val *v)
{
    mc_inval *nv = realloc(l->v, (l->n + 1) * sizeof *nv);
    if (!nv)
        return MC_E_NOMEM;
    l->v = nv;
    int rc = entry_decode(k, v, &nv[l->n]);
    if (rc == 0)
        l->n++;
    return rc;
}

/* The highest seq ever assigned: meta's record, or the last key if higher
 * (a log written before meta existed). */
static int txn_last_seq(lmdb_log *l, MDB_txn *txn, uint64_t *out)
{
    *out = 0;
    MDB_val k = {8, "last_seq"}, v;
    int rc = mdb_get(txn, l->meta, &k, &v);
    if (rc == 0 && v.mv_size == 8)
        *out = get_be64(v.mv_data);
    else if (rc != 0 && rc != MDB_NOTFOUND)
        return lmdb_err(l, "mdb_get(last_seq)", rc);
    MDB_cursor *cur;
    if ((rc = mdb_cursor_open(txn, l->log, &cur)) != 0)
        return lmdb_err(l, "mdb_cursor_open", rc);
    rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    if (rc == 0 && k.mv_size == 8 && get_be64(k.mv_data) > *out)
        *out = get_be64(k.mv_data);
    mdb_cursor_close(cur);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : lmdb_err(l, "mdb_cursor_get", rc);
}

static int lmdb_append(void *self, mc_inval *in)
{
    lmdb_log *l = self;
    if (in->created_s == 0)
        in->created_s = (int64_t)time(NULL);
    char *json = mc_invlog_entry_encode(in);
    if (!json)
        return MC_E_NOMEM;
    MDB_txn *txn;
    int rc = mdb_txn_begin(l->env, NULL, 0, &txn);
    if (rc != 0) {
        free(json);
        return lmdb_err(l, "mdb_txn_begin", rc);
    }
    uint64_t last;
    int mrc = txn_last_seq(l, txn, &last);
    if (mrc < 0) {
        mdb_txn_abort(txn);
        free(json);
        return mrc;
    }
    unsigned char kb[8];
    put_be64(kb, last + 1);
    MDB_val k = {8, kb}, v = {strlen(json), json};
    MDB_val mk = {8, "last_seq"}, mv = {8, kb};
    const char *what = "mdb_put(log)";
    rc = mdb_put(txn, l->log, &k, &v, MDB_NOOVERWRITE | MDB_APPEND);
    if (rc == 0) {
        what = "mdb_put(last_seq)";
        rc = mdb_put(txn, l->meta, &mk, &mv, 0);
    }
    if (rc == 0) {
        what = "mdb_txn_commit";
        rc = mdb_txn_commit(txn);
        if (rc == 0) {   /* MDB_NOMETASYNC: the meta page too, before anyone hears of it */
            what = "mdb_env_sync";
            rc = mdb_env_sync(l->env, 1);
        }
    } else {
        mdb_txn_abort(txn);
    }
    free(json);
    if (rc != 0)
        return lmdb_err(l, what, rc);
    in->seq = last + 1;
    return 0;
}

static int lmdb_read(lmdb_log *l, uint64_t start, bool backwards, size_t max, mc_inval_list *out)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    int rc = mdb_txn_begin(l->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0)
        return lmdb_err(l, "mdb_txn_begin", rc);
    if ((rc = mdb_cursor_open(txn, l->log, &cur)) != 0) {
        mdb_txn_abort(txn);
        return lmdb_err(l, "mdb_cursor_open", rc);
    }
    unsigned char kb[8];
    put_be64(kb, start);
    MDB_val k = {8, kb}, v;
    rc = backwards ? mdb_cursor_get(cur, &k, &v, MDB_LAST)
                   : mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    int err = 0;
    while (rc == 0 && out->n < max && err == 0) {
        err = list_push(out, &k, &v);
        rc = mdb_cursor_get(cur, &k, &v, backwards ? MDB_PREV : MDB_NEXT);
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    if (err == 0 && rc != 0 && rc != MDB_NOTFOUND)
        err = lmdb_err(l, "mdb_cursor_get", rc);
    if (err < 0)
        mc_inval_list_free(out);
    return err;
}

static int lmdb_read_after(void *self, uint64_t after, size_t max, mc_inval_list *out)
{
    if (after == UINT64_MAX)
        return 0;
    return lmdb_read(self, after + 1, false, max, out);
}

static int lmdb_read_recent(void *self, size_t limit, mc_inval_list *out)
{
    return lmdb_read(self, 0, true, limit, out);
}

static int lmdb_get(void *self, uint64_t seq, mc_inval *out)
{
    lmdb_log *l = self;
    MDB_txn *txn;
    int rc = mdb_txn_begin(l->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0)
        return lmdb_err(l, "mdb_txn_begin", rc);
    unsigned char kb[8];
    put_be64(kb, seq);
    MDB_val k = {8, kb}, v;
    rc = mdb_get(txn, l->log, &k, &v);
    int out_rc = rc == MDB_NOTFOUND ? MC_E_NOTFOUND
               : rc != 0            ? lmdb_err(l, "mdb_get(log)", rc)
                                    : entry_decode(&k, &v, out);
    mdb_txn_abort(txn);
    return out_rc;
}

static int lmdb_last_seq(void *self, uint64_t *out)
{
    lmdb_log *l = self;
    MDB_txn *txn;
    int rc = mdb_txn_begin(l->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0)
        return lmdb_err(l, "mdb_txn_begin", rc);
    rc = txn_last_seq(l, txn, out);
    mdb_txn_abort(txn);
    return rc;
}

static int edge_decode(const MDB_val *k, const MDB_val *v, mc_edge *e)
{
    memset(e, 0, sizeof *e);
    if (k->mv_size == 0 || k->mv_size > MC_EDGE_NODE_MAX)
        return MC_E_INVAL;
    memcpy(e->node, k->mv_data, k->mv_size);
    json_t *o = json_loadb(v->mv_data, v->mv_size, 0, NULL);
    if (!o)
        return MC_E_INVAL;
    const char *region = json_string_value(json_object_get(o, "region"));
    snprintf(e->region, sizeof e->region, "%s", region ? region : "");
    json_t *a = json_object_get(o, "acked"), *s = json_object_get(o, "last_seen");
    e->acked = json_is_integer(a) ? (uint64_t)json_integer_value(a) : 0;
    e->last_seen_s = json_is_integer(s) ? (int64_t)json_integer_value(s) : 0;
    json_decref(o);
    return 0;
}

/* Read-modify-write of one edge record in a write transaction; write only
 * when the record changes materially (see HEARTBEAT_WRITE_S). */
static int edge_update(lmdb_log *l, const char *node, const char *region, bool is_ack,
                       uint64_t seq, int64_t now_s)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(l->env, NULL, 0, &txn);
    if (rc != 0)
        return lmdb_err(l, "mdb_txn_begin", rc);
    MDB_val k = {strlen(node), (void *)node}, v;
    mc_edge e;
    bool known = false;
    rc = mdb_get(txn, l->edges, &k, &v);
    if (rc == 0 && edge_decode(&k, &v, &e) == 0) {
        known = true;
    } else if (rc != 0 && rc != MDB_NOTFOUND) {
        mdb_txn_abort(txn);
        return lmdb_err(l, "mdb_get(edges)", rc);
    }
    if (!known) {
        memset(&e, 0, sizeof e);
        snprintf(e.node, sizeof e.node, "%s", node);
    }
    if (is_ack) {
        uint64_t last;
        int lrc = txn_last_seq(l, txn, &last);
        if (lrc < 0 || seq > last) {
            mdb_txn_abort(txn);
            return lrc < 0 ? lrc : MC_E_INVAL;
        }
    }
    bool changed = !known || now_s - e.last_seen_s >= HEARTBEAT_WRITE_S;
    if (region && region[0] && strcmp(region, e.region) != 0) {
        snprintf(e.region, sizeof e.region, "%s", region);
        changed = true;
    }
    if (is_ack && seq > e.acked) {   /* cumulative: never backwards */
        e.acked = seq;
        changed = true;
    }
    if (now_s > e.last_seen_s)
        e.last_seen_s = now_s;
    if (!changed) {
        mdb_txn_abort(txn);
        return 0;
    }
    json_t *o = json_pack("{s:s, s:I, s:I}", "region", e.region, "acked", (json_int_t)e.acked,
                          "last_seen", (json_int_t)e.last_seen_s);
    char *json = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!json) {
        mdb_txn_abort(txn);
        return MC_E_NOMEM;
    }
    v.mv_size = strlen(json);
    v.mv_data = json;
    const char *what = "mdb_put(edges)";
    rc = mdb_put(txn, l->edges, &k, &v, 0);
    if (rc == 0) {
        what = "mdb_txn_commit";
        rc = mdb_txn_commit(txn);
    } else {
        mdb_txn_abort(txn);
    }
    free(json);
    return rc == 0 ? 0 : lmdb_err(l, what, rc);
}

static int lmdb_heartbeat(void *self, const char *node, const char *region, int64_t now_s)
{
    return edge_update(self, node, region, false, 0, now_s);
}

static int lmdb_ack(void *self, const char *node, uint64_t seq, int64_t now_s)
{
    return edge_update(self, node, NULL, true, seq, now_s);
}

static int lmdb_edges(void *self, mc_edge_list *out)
{
    lmdb_log *l = self;
    MDB_txn *txn;
    MDB_cursor *cur;
    int rc = mdb_txn_begin(l->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0)
        return lmdb_err(l, "mdb_txn_begin", rc);
    if ((rc = mdb_cursor_open(txn, l->edges, &cur)) != 0) {
        mdb_txn_abort(txn);
        return lmdb_err(l, "mdb_cursor_open", rc);
    }
    MDB_val k, v;
    int err = 0;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && err == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        mc_edge *nv = realloc(out->v, (out->n + 1) * sizeof *nv);
        if (!nv) {
            err = MC_E_NOMEM;
            break;
        }
        out->v = nv;
        if (edge_decode(&k, &v, &nv[out->n]) == 0)   /* a record we cannot read is skipped */
            out->n++;
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    if (err == 0 && rc != 0 && rc != MDB_NOTFOUND)
        err = lmdb_err(l, "mdb_cursor_get", rc);
    if (err < 0)
        mc_edge_list_free(out);
    return err;
}

static void lmdb_close(void *self)
{
    lmdb_log *l = self;
    if (!l)
        return;
    if (l->env) {
        if (l->opened)
            mdb_env_sync(l->env, 1);
        mdb_env_close(l->env);
    }
    free(l);
}

static const mc_invlog_ops lmdb_ops = {
    .name = "lmdb",
    .append = lmdb_append,
    .read_after = lmdb_read_after,
    .read_recent = lmdb_read_recent,
    .get = lmdb_get,
    .last_seq = lmdb_last_seq,
    .heartbeat = lmdb_heartbeat,
    .ack = lmdb_ack,
    .edges = lmdb_edges,
    .close = lmdb_close,
};

static int lmdb_setup(lmdb_log *l, mc_err *err)
{
    int rc = mdb_env_create(&l->env);
    if (rc == 0)
        rc = mdb_env_set_maxdbs(l->env, 4);
    if (rc == 0)
        rc = mdb_env_set_mapsize(l->env, LMDB_MAP_BYTES);
    if (rc == 0)
        rc = mdb_env_open(l->env, l->dir, MDB_NOTLS | MDB_NOMETASYNC, 0600);
    l->opened = rc == 0;
    if (rc != 0)
        return mc_err_set(err, rc == EACCES ? MC_E_PERM : MC_E_IO, "%s: cannot open the "
                          "control log: %s", l->dir, mdb_strerror(rc));
    MDB_txn *txn;
    if ((rc = mdb_txn_begin(l->env, NULL, 0, &txn)) != 0)
        return mc_err_set(err, MC_E_IO, "%s: %s", l->dir, mdb_strerror(rc));
    if ((rc = mdb_dbi_open(txn, "log", MDB_CREATE, &l->log)) == 0 &&
        (rc = mdb_dbi_open(txn, "edges", MDB_CREATE, &l->edges)) == 0 &&
        (rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &l->meta)) == 0) {
        MDB_val k = {7, "version"}, v = {1, "1"};
        rc = mdb_put(txn, l->meta, &k, &v, MDB_NOOVERWRITE);
        if (rc == MDB_KEYEXIST) {
            rc = mdb_get(txn, l->meta, &k, &v);
            if (rc == 0 && (v.mv_size != 1 || memcmp(v.mv_data, "1", 1) != 0)) {
                mdb_txn_abort(txn);
                return mc_err_set(err, MC_E_INVAL, "%s: the control log has format version "
                                  "%.*s; this build reads version 1", l->dir,
                                  (int)(v.mv_size < 16 ? v.mv_size : 16), (char *)v.mv_data);
            }
        }
    }
    if (rc == 0)
        rc = mdb_txn_commit(txn);
    else
        mdb_txn_abort(txn);
    if (rc != 0)
        return mc_err_set(err, rc == MDB_MAP_FULL ? MC_E_FULL : MC_E_IO, "%s: %s", l->dir,
                          mdb_strerror(rc));
    return 0;
}

int mc_invlog_open_lmdb(mc_invlog **out, const char *dir, mc_err *err)
{
    *out = NULL;
    if (!dir || !dir[0])
        return mc_err_set(err, MC_E_INVAL, "no directory for the control log");
    lmdb_log *l = calloc(1, sizeof *l);
    if (!l)
        return mc_err_set(err, MC_E_NOMEM, "out of memory");
    if (snprintf(l->dir, sizeof l->dir, "%s", dir) >= (int)sizeof l->dir) {
        free(l);
        return mc_err_set(err, MC_E_INVAL, "%.64s...: directory name too long", dir);
    }
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        int e = errno;
        free(l);
        return mc_err_set(err, e == EACCES ? MC_E_PERM : MC_E_IO, "%s: cannot create: %s",
                          dir, strerror(e));
    }
    int rc = lmdb_setup(l, err);
    if (rc < 0) {
        lmdb_close(l);
        return rc;
    }
    return mc_invlog_new(out, &lmdb_ops, l);
}
