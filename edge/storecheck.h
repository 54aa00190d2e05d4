/* storecheck.h — verify an edge's LMDB store (`meshcdn-edge check --store DIR`).
 *
 * What is checked (store.h describes the layout): the format version; every
 * object's metadata decodes and hashes to its key; every chunk of a stored
 * body is present, has the fixed chunk size (the last one the rest), and its
 * XXH3-64 checksum; the chunk lengths sum to the object's length and the
 * whole body matches the object's body checksum; the path index and the
 * objects agree both ways; every chunk belongs to a stored object or to a
 * fill listed in `pending` (no orphans); no object carries a sequence number
 * at or past the reserved one; with no node running, the totals in `state`
 * equal the sums. Pending fills are reported, not counted as damage: a
 * running node has some, and a crash leaves some that the next open removes.
 *
 * A running node is never disturbed: the environment is opened MDB_RDONLY,
 * the node's DIR/meshcdn.lock is only probed, never held, and while a node
 * runs the read snapshot is renewed every 256 records or 64 MiB read, so no long
 * read transaction pins pages (each object is still checked inside one
 * snapshot; only the totals need a single one, and are skipped then).
 *
 * Threads: any one thread; no global state.
 * Errors: mc_storecheck_run returns 0 when it could check (look at
 * report->problems), or a negative MC_E_* with err set (not a store,
 * cannot open).
 */
#ifndef MC_STORECHECK_H
#define MC_STORECHECK_H

#include <stdint.h>
#include <stdio.h>
#include "common/err.h"

typedef struct mc_storecheck_report {
    uint64_t format;
    uint64_t objects;        /* stored objects (vary markers not counted) */
    uint64_t markers;        /* vary markers */
    uint64_t bytes;          /* body bytes of the objects */
    uint64_t chunks;         /* chunk records, all of them */
    uint64_t chunk_bytes;    /* their payload bytes */
    uint64_t paths;          /* path index entries */
    uint64_t pending;        /* unpublished fills (running, or left by a crash) */
    uint64_t pending_chunks; /* chunks belonging to them */
    uint64_t file_bytes;     /* size of data.mdb */
    uint64_t map_used;       /* pages in use up to the last one, in bytes */
    int live;                /* a node had the store open: totals not compared */
    uint64_t problems;       /* damage found; 0 = sound */
} mc_storecheck_report;

/* Check the store in dir. Each problem is printed as one line to out (NULL:
 * none), at most max_lines of them. */
int mc_storecheck_run(const char *dir, FILE *out, unsigned max_lines, mc_storecheck_report *rep,
                      mc_err *err);

/* The `check` subcommand: argv[0] is "check". Prints a summary to stdout,
 * problems to stdout, usage errors to stderr. Returns the exit status: 0 the
 * store is sound, 1 it is damaged, 2 it could not be checked. */
int mc_storecheck_main(int argc, char **argv);

#endif
