/* snap.h — the running configuration of an edge node: immutable,
 * reference-counted snapshots, and what a reload (SIGHUP) may change.
 *
 * A snapshot is one validated mc_edge_config plus what is derived from it
 * once (the origin signers, the Host headers, each parent's health slot in
 * tier.h). It is never written after it is published. The main thread holds
 * the current one (mc_node.snap) and publishes a new one with
 * mc_node_publish (listener.h); each worker adopts it at its next request
 * (one atomic exchange, no lock). Everything a request reads of the
 * reloadable configuration comes from the snapshot it took at its start
 * (mc_resp.snap, the fill's, the transfer's), so a request in flight keeps
 * the configuration it started with and the snapshot is freed when the last
 * of them ends.
 *
 * Reloadable: behaviors ([cache], [behavior]), upstreams ([origin],
 * [parents], [tier]), log level, client and upstream timeouts, store
 * object/fill limits, admin keys. Restart-only (reported, never applied):
 * listeners, workers, node id and region, the control API, max_connections,
 * the store's directory and size, the TLS file paths (the certificate and
 * key themselves are reloaded from the same paths).
 *
 * Threads: mc_snap_new/diff/keep on the main thread; mc_snap_ref/unref from
 * any thread (atomic count).
 */
#ifndef MC_SNAP_H
#define MC_SNAP_H

#include <stdatomic.h>
#include <stdint.h>
#include "common/err.h"
#include "edge/edgecfg.h"

#define MC_SNAP_MAGIC 0x534e4150u

typedef struct mc_signer mc_signer;

typedef struct mc_edge_snap {
    uint32_t magic;
    _Atomic int refs;
    uint64_t generation;              /* 1 at start, +1 per applied reload */
    mc_edge_config cfg;               /* owned */
    mc_signer *signer;                /* the primary origin's (NULL: unsigned) */
    mc_signer *signer2;               /* the secondary origin's (NULL: unsigned or none) */
    char host[512], host2[512];       /* Host headers of the primary and the secondary, as signed */
    int parent_slot[MC_MAX_PARENTS];  /* tier.h health state of cfg.parents[i] */
} mc_edge_snap;

/* A snapshot of *cfg, which is moved into it (cfg is left zeroed and needs
 * no free); loads the signers from the credential files. refs = 1. Parent
 * slots are all 0 until mc_tier_bind (tier.h). On failure cfg is freed and
 * err says why (naming origin.credentials). */
int mc_snap_new(mc_edge_snap **out, mc_edge_config *cfg, uint64_t generation, mc_err *err);
mc_edge_snap *mc_snap_ref(mc_edge_snap *s);
/* Drop one reference; the last frees the snapshot (NULL is a no-op). */
void mc_snap_unref(mc_edge_snap *s);

/* A deep copy of src (its keys duplicated). 0 or MC_E_NOMEM. */
int mc_edge_config_copy(mc_edge_config *dst, const mc_edge_config *src);

/* What differs between a running configuration and the next: config key
 * names, space separated ("origin.url parents behavior:/models/"), split
 * into what a reload applies and what needs a restart. Texts are truncated
 * with "..." when very long. */
typedef struct mc_snap_diff {
    char changed[1024];
    char restart[512];
    int nchanged, nrestart;
} mc_snap_diff;
void mc_snap_diff_configs(const mc_edge_config *running, const mc_edge_config *next, mc_snap_diff *d);

/* Give next the running values of every restart-only key (they are not
 * applied until a restart), so a snapshot always describes the node as it
 * runs. Keys (credentials) of restart-only settings are left as loaded:
 * nothing reads them from a snapshot. */
void mc_snap_keep_restart(mc_edge_config *next, const mc_edge_config *running);

#endif
