/* invlog.h — the fleet invalidation log and fleet membership, behind one
 * backend interface.
 *
 * The log is append-only: every invalidation gets the next sequence number
 * (1, 2, 3, ...; never reused, also across restarts and after a failed
 * append), is written durably before append returns, and is never changed
 * afterwards. Membership is one record per edge node: its region, the
 * highest sequence number it has acknowledged (cumulative, never goes
 * backwards) and when it was last heard from.
 *
 * Backends are method tables (mc_invlog_ops): the embedded LMDB log here
 * (mc_invlog_open_lmdb, one machine), and etcd (mc_invlog_open_etcd in
 * origin/invlog_etcd.c, a fleet of origins on one etcd cluster). Callers use
 * the mc_invlog_* wrappers and never test which backend they have.
 * mc_invlog_append notifies for local appends itself. A backend that learns
 * of appends made elsewhere (another origin on the same etcd) does so on its
 * own thread, so it cannot call into the loop: it makes mc_invlog_wake_fd
 * readable instead, and the loop's owner (the control API) drains it with
 * mc_invlog_wake_drain and then calls mc_invlog_notify.
 *
 * LMDB layout (DIR/data.mdb, named databases):
 *   "log"    key: seq as 8 bytes big-endian (so key order is seq order)
 *            value: JSON {"created":UNIX_S,"paths":[..],"surrogate_keys":[..],
 *                         "all":B,"soft":B}
 *   "edges"  key: node id; value: JSON {"region":R,"acked":N,"last_seen":UNIX_S}
 *   "meta"   "last_seq" -> 8 bytes big-endian (the highest seq ever assigned)
 *            "version"  -> "1"
 * Every write is one LMDB transaction, on the caller's thread. The
 * environment runs with MDB_NOMETASYNC (a system crash can undo the last
 * commit but never corrupts): an append then forces mdb_env_sync, so an
 * entry is on disk, meta page included, before append returns (2 fsyncs,
 * ~13 ms on the dev VM's ext4); an ack or heartbeat costs one fsync (~6.5
 * ms) and is fully durable at the next append or close. Losing the last ack
 * to a power cut is harmless: the edge's next poll (`after` = its cursor)
 * acknowledges again. A heartbeat that changes nothing but a last_seen under
 * 1 s old is not written at all. The control API calls these on its event
 * loop: fine at control-plane rates (a few invalidations, one ack and poll
 * per edge per entry).
 *
 * Threads: one thread at a time per mc_invlog (the origin's loop); a
 * backend's own threads never call back into the loop (see wake_fd).
 * Ownership: lists and entries returned are the caller's (free with
 * mc_inval_free / mc_inval_list_free / mc_edge_list_free); append copies
 * nothing it keeps.
 * Errors: 0 or a negative MC_E_*: MC_E_NOTFOUND (no such seq),
 * MC_E_INVAL (an argument out of range), MC_E_IO (the store failed or, for
 * etcd, did not answer in time / has no quorum; the message is logged),
 * MC_E_NOMEM, MC_E_FULL (the LMDB map is full).
 */
#ifndef MC_INVLOG_H
#define MC_INVLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/err.h"
#include "common/inval.h"

#define MC_INVLOG_MAX_READ 1000      /* entries in one read_after answer */
#define MC_EDGE_NODE_MAX 128         /* bytes in a node id */
#define MC_EDGE_REGION_MAX 64        /* bytes in a region name */

typedef struct mc_inval_list {
    mc_inval *v;
    size_t n;
} mc_inval_list;

/* One registered edge. */
typedef struct mc_edge {
    char node[MC_EDGE_NODE_MAX + 1];
    char region[MC_EDGE_REGION_MAX + 1];   /* "" when never told */
    uint64_t acked;
    int64_t last_seen_s;
} mc_edge;

typedef struct mc_edge_list {
    mc_edge *v;
    size_t n;
} mc_edge_list;

void mc_inval_list_free(mc_inval_list *l);
void mc_edge_list_free(mc_edge_list *l);

/* ---- status, the same for every backend ------------------------------------ */

typedef enum {
    MC_EDGE_PENDING, MC_EDGE_APPLIED, MC_EDGE_UNREACHABLE
} mc_edge_state;

/* Has e been silent longer than unreachable_after_s at now_s? */
bool mc_edge_unreachable(const mc_edge *e, int64_t now_s, int64_t unreachable_after_s);
/* e's state for entry seq: applied when acked >= seq, else unreachable when
 * silent too long, else pending. */
mc_edge_state mc_edge_state_for(const mc_edge *e, uint64_t seq, int64_t now_s,
                                int64_t unreachable_after_s);
const char *mc_edge_state_name(mc_edge_state s);   /* "pending", ... */
/* Completed when no edge of the list is pending for seq (an unreachable edge
 * does not block completion; an empty fleet is complete). */
bool mc_inval_completed(const mc_edge_list *edges, uint64_t seq, int64_t now_s,
                        int64_t unreachable_after_s);

/* ---- the backend interface -------------------------------------------------- */

typedef struct mc_invlog_ops {
    const char *name;   /* "lmdb", "etcd" */
    /* Assign in->seq (and in->created_s when 0) and store in durably. */
    int (*append)(void *self, mc_inval *in);
    /* Entries with seq > after, ascending, at most max (<= MC_INVLOG_MAX_READ). */
    int (*read_after)(void *self, uint64_t after, size_t max, mc_inval_list *out);
    /* The newest entries, newest first, at most limit. */
    int (*read_recent)(void *self, size_t limit, mc_inval_list *out);
    /* Entry seq into *out (MC_E_NOTFOUND when absent). */
    int (*get)(void *self, uint64_t seq, mc_inval *out);
    /* The highest seq assigned so far (0 for an empty log). */
    int (*last_seq)(void *self, uint64_t *out);
    /* Register node or refresh it: last_seen = now_s; region replaces the
     * stored one unless NULL or "". */
    int (*heartbeat)(void *self, const char *node, const char *region, int64_t now_s);
    /* acked = max(acked, seq) and last_seen = now_s (registers an unknown
     * node with region ""). MC_E_INVAL when seq > last_seq. */
    int (*ack)(void *self, const char *node, uint64_t seq, int64_t now_s);
    /* Every registered edge, ordered by node id. */
    int (*edges)(void *self, mc_edge_list *out);
    void (*close)(void *self);
    /* Optional (NULL: -1): a non-blocking descriptor that becomes readable
     * when the log may have grown elsewhere. */
    int (*wake_fd)(void *self);
} mc_invlog_ops;

typedef void (*mc_invlog_notify_fn)(void *ud, uint64_t last_seq);

typedef struct mc_invlog mc_invlog;

/* Wrap a backend (takes ownership of self: close() releases it). */
int mc_invlog_new(mc_invlog **out, const mc_invlog_ops *ops, void *self);
/* The embedded backend: the LMDB environment in dir (created 0700 when
 * missing). MC_E_IO / MC_E_PERM with err filled when it cannot be opened. */
int mc_invlog_open_lmdb(mc_invlog **out, const char *dir, mc_err *err);
void mc_invlog_close(mc_invlog *log);
const char *mc_invlog_backend(const mc_invlog *log);

/* The etcd backend (origin/invlog_etcd.c; layout and failure behaviour
 * documented there and in origin/README.md "Control API on etcd"). */
typedef struct mc_invlog_etcd_config {
    const char *endpoints;        /* "http://127.0.0.1:2379,http://..." (required) */
    const char *cacert;           /* PEM CA bundle for https endpoints; NULL: system */
    const char *cert, *key;       /* PEM client certificate and key; NULL: none */
    const char *prefix;           /* key prefix, "/meshcdn/" when NULL */
    int64_t lease_ttl_s;          /* an edge's heartbeat lease (unreachable_after) */
    uint64_t keep;                /* entries kept behind the slowest edge's ack */
    long timeout_ms;              /* one etcd request (0: 2000) */
} mc_invlog_etcd_config;

/* Connect to etcd (one probe read; an unreachable cluster is logged, not
 * fatal: every call then fails with MC_E_IO until it answers) and start the
 * watch thread. MC_E_INVAL with err filled for a bad configuration. */
int mc_invlog_open_etcd(mc_invlog **out, const mc_invlog_etcd_config *cfg, mc_err *err);

/* The backend's wake descriptor (-1: appends only happen here) and the
 * call that empties it (on the loop, before mc_invlog_notify). */
int mc_invlog_wake_fd(mc_invlog *log);
void mc_invlog_wake_drain(mc_invlog *log);

/* An entry as stored (JSON, the LMDB "log" value above; malloc'd, NULL when
 * out of memory) and back (seq given; 0, MC_E_INVAL, MC_E_NOMEM). Both
 * backends store this text. */
char *mc_invlog_entry_encode(const mc_inval *in);
int mc_invlog_entry_decode(uint64_t seq, const char *json, size_t len, mc_inval *out);

/* Called after every append (here or, for a shared backend, elsewhere). */
void mc_invlog_set_notify(mc_invlog *log, mc_invlog_notify_fn fn, void *ud);
void mc_invlog_notify(mc_invlog *log, uint64_t last_seq);

int mc_invlog_append(mc_invlog *log, mc_inval *in);   /* notifies on success */
int mc_invlog_read_after(mc_invlog *log, uint64_t after, size_t max, mc_inval_list *out);
int mc_invlog_read_recent(mc_invlog *log, size_t limit, mc_inval_list *out);
int mc_invlog_get(mc_invlog *log, uint64_t seq, mc_inval *out);
int mc_invlog_last_seq(mc_invlog *log, uint64_t *out);
int mc_invlog_heartbeat(mc_invlog *log, const char *node, const char *region, int64_t now_s);
int mc_invlog_ack(mc_invlog *log, const char *node, uint64_t seq, int64_t now_s);
int mc_invlog_edges(mc_invlog *log, mc_edge_list *out);

#endif
