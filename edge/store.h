/* store.h — the LMDB object store of one edge node.
 *
 * Layout (one LMDB environment in the store directory):
 *   objects  key hash (16 bytes, big-endian XXH3-128) -> object metadata
 *   chunks   key hash + fill seq (8, BE) + chunk index (4, BE) -> XXH3-64 (8) + bytes
 *   paths    normalised key string -> key hash (prefix purges scan a range)
 *   pending  fill seq -> key hash, for fills whose chunks are written but not
 *            yet published; a crash leaves them here and open() deletes them
 *   tags     surrogate key + NUL + key hash -> "" (from Surrogate-Key headers)
 *   state    "format", "seq", "bytes", "objects", "cursor"
 * Chunks are keyed by the fill's sequence number, so a new version of an
 * object is written beside the old one and replaces it atomically at publish;
 * readers of the old version never see a mixture.
 *
 * Threads: mc_store_open/close on the main thread. Reads from any worker,
 * each worker through its own mc_store_reader. Every write goes through
 * mc_store_submit, executed by the single writer thread, which batches
 * queued operations into one transaction (group commit).
 * Size: above store.size * high_percent of body bytes (counting the chunks
 * queued or written for fills not yet published) the writer evicts (SIEVE,
 * evict.h) down to low_percent, in batched transactions; a write
 * that still meets MDB_MAP_FULL evicts a batch and is retried once, and
 * only then dropped (the object is served, not stored).
 * Durability: MDB_NOMETASYNC — a process crash (kill -9) loses nothing that
 * was committed; an OS crash or power loss may undo the last transactions but
 * LMDB's copy-on-write B-tree never leaves the store corrupt.
 * Errors: functions return 0 or a negative MC_E_* code; they never exit.
 * Ownership: data returned by mc_store_read_* is copied into caller buffers;
 * no read transaction outlives a call, so a slow client never pins pages.
 * The one exception, mc_store_view_chunk, hands out the map's own bytes
 * for the caller to copy once (into a viewer's output buffer) and keeps
 * the worker's read transaction until mc_store_view_end, which the caller
 * calls before it returns to its loop.
 */
#ifndef MC_STORE_H
#define MC_STORE_H

#include <stdatomic.h>
#include <stdint.h>
#include <time.h>
#include "common/buf.h"
#include "common/err.h"
#include "common/hash.h"

#define MC_STORE_CHUNK_SIZE (256u * 1024u)
/* A URL whose responses vary (RFC 9111 4.1) has, at its primary key, a
 * marker: status MC_META_VARY_MARKER, no body, headers "Vary: names". Each
 * variant is an object at the hash of "PRIMARY\nVALUES". */
#define MC_META_VARY_MARKER 0
#define MC_STORE_MAGIC 0x53544f52u
/* Soft-purged: stale whatever its age; revalidated before its next use
 * (never served under stale-while-revalidate), still usable for
 * stale-if-error. A successful revalidation or refetch clears it. */
#define MC_META_F_INVALIDATED 1u
/* A segmented object's head (segment.h): no body of its own; its bytes are
 * in segment objects. */
#define MC_META_F_SEGMENTED 2u
/* Set by mc_object_meta_encode itself, whatever the caller passed: the
 * headers were searched (KNOWN) and contain "no-cache" in any case (TEXT),
 * so a hit needs no search of its own (lookup.c); metadata written before
 * these existed has neither and is searched at lookup. */
#define MC_META_F_NOCACHE_KNOWN 4u
#define MC_META_F_NOCACHE_TEXT 8u

typedef struct mc_store mc_store;
typedef struct mc_store_reader mc_store_reader;

typedef struct mc_store_config {
    const char *dir;            /* created if missing */
    uint64_t size_bytes;        /* LMDB map size: the bound on disk use */
    uint64_t max_queue_bytes;   /* writer queue bound; beyond it writes are refused */
    int high_percent;           /* evict when stored bytes pass this share of size (default 80) */
    int low_percent;            /* ... down to this share (default 70) */
    int verify_always;          /* readers check every chunk read, not only the first (see get_chunk) */
} mc_store_config;

/* Metadata of one stored object (what `objects` holds, decoded). */
typedef struct mc_object_meta {
    uint16_t status;
    uint64_t length;            /* body bytes */
    uint32_t chunk_size;
    uint32_t nchunks;
    uint64_t seq;               /* the fill that wrote it; chunk keys use it */
    uint64_t generation;        /* purge generation at fill start */
    int64_t response_time;      /* unix s, when the upstream answered */
    int64_t initial_age_s;      /* RFC 9111 4.2.3 corrected_initial_age */
    int64_t lifetime_s;         /* freshness lifetime */
    uint64_t body_checksum;     /* XXH3-64 of the whole body */
    uint32_t flags;             /* MC_META_F_* */
    char *key;                  /* normalised key string (owned) */
    char *headers;              /* "Name: value\r\n"... to replay (owned) */
} mc_object_meta;

void mc_object_meta_free(mc_object_meta *m);

/* Totals, updated by the writer with relaxed atomics (for /metrics). */
typedef struct mc_store_stats {
    _Atomic uint64_t bytes;           /* body bytes of published objects */
    _Atomic uint64_t objects;
    _Atomic uint64_t commits;
    _Atomic uint64_t write_failures;  /* ops dropped: map full, I/O errors */
    _Atomic uint64_t queue_bytes;     /* chunk bytes waiting for the writer */
    _Atomic uint64_t queue_refusals;  /* submits refused: queue over its bound */
    _Atomic uint64_t checksum_failures;
    _Atomic uint64_t evictions;       /* objects removed to keep the store under its bound */
    _Atomic uint64_t evicted_bytes;
    _Atomic uint64_t purged;          /* objects removed or marked by purges */
    _Atomic uint64_t variants_replaced; /* Vary variants removed to keep a URL under its cap */
} mc_store_stats;

/* Open (or create) the store: takes an exclusive lock on DIR/meshcdn.lock
 * (MC_E_BUSY if another node holds it), removes what crashed fills left,
 * loads totals, starts the writer thread. err names the directory. */
int mc_store_open(mc_store **out, const mc_store_config *cfg, mc_err *err);
/* Wait until every operation queued so far has been executed (and its done
 * callback called). Shutdown uses it before the workers are freed. */
void mc_store_flush(mc_store *s);
/* Drain the writer queue, commit, stop the writer, close. */
void mc_store_close(mc_store *s);
mc_store_stats *mc_store_get_stats(mc_store *s);
uint64_t mc_store_size_bytes(const mc_store *s);
/* The writer queue's bound (chunk bytes waiting); fills slow down near it. */
uint64_t mc_store_queue_limit(const mc_store *s);
/* A new, never reused fill sequence number (atomic). */
uint64_t mc_store_next_seq(mc_store *s);

/* A hit on key: tell the evictor (one relaxed atomic store, any thread). */
void mc_store_touch(mc_store *s, mc_hash128 key);
/* Pin (pin = 1) or unpin (0) key against eviction while a viewer is sent
 * it chunk by chunk (evict.h mc_evict_pin). Pin before the first chunk
 * read; MC_E_BUSY when the object is being evicted right now (do not
 * answer from it: fetch it again). Any thread. */
int mc_store_pin(mc_store *s, mc_hash128 key, int pin);

/* ---- reads (any worker, own reader) ---- */
int mc_store_reader_new(mc_store *s, mc_store_reader **out);
void mc_store_reader_free(mc_store_reader *r);
/* Metadata for key: 0, MC_E_NOTFOUND, or MC_E_INVAL (undecodable record). */
int mc_store_read_meta(mc_store_reader *r, mc_hash128 key, mc_object_meta *out);
/* Chunk reads verify the chunk's XXH3-64. A chunk is written once, under a
 * fill seq that is never reused, so by default (verify_always = 0) each
 * reader checks a chunk on its first read since start-up and remembers it
 * (a 16,384-slot direct-mapped table of 64-bit fingerprints of the chunk
 * key per reader, 128 KiB; a chunk pushed out of it is checked again):
 * damage on disk is found after every restart and by `meshcdn-edge check`,
 * not while a worker keeps serving a chunk it has checked.
 * Copy chunk idx of fill seq into out (appending); verifies its checksum.
 * Returns the number of bytes, MC_E_NOTFOUND (replaced or purged since the
 * metadata was read) or MC_E_CHECKSUM. */
int mc_store_read_chunk(mc_store_reader *r, mc_hash128 key, uint64_t seq, uint32_t idx,
                        mc_buf *out);
/* The same without a copy: *data points into the map, valid until
 * mc_store_view_end(r), which must come before the caller's callback
 * returns (several views may share it). Reads on r meanwhile see the same
 * snapshot. */
int mc_store_view_chunk(mc_store_reader *r, mc_hash128 key, uint64_t seq, uint32_t idx, const void **data);
void mc_store_view_end(mc_store_reader *r);

/* ---- writes (any thread; executed by the writer) ---- */
/* Called on the writer thread when a PUBLISH (or a notified CHUNK) is done
 * (ok = 1 committed, 0 dropped). Keep it short: post to the owning
 * worker's mailbox. */
typedef void (*mc_store_done_fn)(void *arg, int ok);
typedef enum {
    MC_STORE_OP_CHUNK,     /* put chunk (key, seq, idx, data) */
    MC_STORE_OP_PUBLISH,   /* make (key, seq) the object: meta replaces any old version */
    MC_STORE_OP_ABORT,     /* drop the chunks of (key, seq) */
    MC_STORE_OP_DELETE,    /* remove the object at key (a damaged one) */
    MC_STORE_OP_UPDATE,    /* replace the metadata of (key, seq), body untouched (a 304) */
    MC_STORE_OP_PURGE,     /* remove or mark what an invalidation names */
} mc_store_op_kind;


/* Queue a chunk: data (len bytes) is copied. Returns 0, or MC_E_FULL when
 * the writer queue is over its bound (the caller stops storing this fill). */
int mc_store_put_chunk(mc_store *s, mc_hash128 key, uint64_t seq, uint32_t idx,
                       const void *data, size_t len);
/* The same, and done(arg, ok) on the writer thread once the chunk's
 * transaction committed (ok = 1: readers see it from now on) or the chunk
 * was dropped (ok = 0: map full, I/O error, or an earlier chunk of seq was
 * dropped). Chunks of one seq are committed, and done called, in the order
 * they were queued. done is not called when this returns an error. */
int mc_store_put_chunk_notify(mc_store *s, mc_hash128 key, uint64_t seq, uint32_t idx,
                              const void *data, size_t len, mc_store_done_fn done, void *arg);
/* Queue a publish: meta is deep-copied. done is called exactly once. */
int mc_store_publish(mc_store *s, mc_hash128 key, const mc_object_meta *meta,
                     mc_store_done_fn done, void *arg);
int mc_store_abort(mc_store *s, mc_hash128 key, uint64_t seq, uint32_t nchunks);
/* Publish a variant of a varying URL: the object at key (meta->key is
 * "PRIMARY\nVALUES") and, in the same transaction, the marker at primary
 * listing vary_names. With max_variants > 0 the URL keeps at most that many
 * variants: a new one beyond replaces an expired variant, else the oldest
 * stored (stats.variants_replaced counts them; a lowered cap converges by up
 * to 4 per publish). */
int mc_store_publish_variant(mc_store *s, mc_hash128 key, const mc_object_meta *meta,
                             const mc_hash128 *primary, const char *vary_names, int max_variants,
                             mc_store_done_fn done, void *arg);
/* Queue a metadata update after a revalidation (RFC 9111 4.3.4): applied
 * only if the stored object is still version meta->seq with the same length
 * (otherwise done(arg, 0)); done is called exactly once. */
int mc_store_update_meta(mc_store *s, mc_hash128 key, const mc_object_meta *meta,
                         mc_store_done_fn done, void *arg);
int mc_store_delete(mc_store *s, mc_hash128 key);

/* ---- purge ---- */
struct mc_invspec;
/* Called on the writer thread when a purge is done: ok, and how many
 * objects it removed (or marked, when soft). Post to the owner's loop. */
typedef void (*mc_store_purge_fn)(void *arg, int ok, uint64_t affected);
/* Queue a purge of what spec names (deep-copied). Hard: objects, chunks and
 * index entries go; soft: objects are marked MC_META_F_INVALIDATED. With
 * cursor (not NULL) the fleet-log cursor is stored in the same transaction
 * as the last of the purge, so it never runs ahead of what was applied.
 * A purge bumps the generation: a fill that read an older generation
 * (mc_store_generation, into meta->generation) and publishes afterwards is
 * checked against the purges since, and dropped (hard) or stored marked
 * (soft) when one names it; a 304 refresh the same. Big purges run in
 * transactions of a few thousand objects while readers go on. */
int mc_store_purge(mc_store *s, const struct mc_invspec *spec, const uint64_t *cursor,
                   mc_store_purge_fn done, void *arg);
/* The current purge generation (any thread). */
uint64_t mc_store_generation(mc_store *s);
/* Was the object (key string, stored headers) named by a purge after
 * generation gen? 0 no, 1 hard, 2 soft only. Any thread (a mutex). When
 * more purges than are remembered happened since, answers 1. */
int mc_store_purged_since(mc_store *s, uint64_t gen, const char *keystr, const char *hdrs);
/* Is the store usable (/readyz)? A read transaction on r succeeds and the
 * writer's last 8 transactions did not all fail (a full map that eviction
 * could not relieve does not count). 1 yes; 0 no, with why set. */
int mc_store_check(mc_store_reader *r, char *why, size_t n);
/* The fleet-log cursor last stored with a purge (0 when none). */
int mc_store_read_cursor(mc_store_reader *r, uint64_t *out);

/* Serialisation of metadata (exposed for the unit tests). */
int mc_object_meta_encode(const mc_object_meta *m, mc_buf *out);
int mc_object_meta_decode(const void *p, size_t n, mc_object_meta *out);

/* The store format this build reads and writes (state "format"). */
unsigned mc_store_format_version(void);
/* Bytes of the map in use: pages up to the last one written, free ones
 * included (LMDB reuses those only once no reader still sees them). Any thread. */
uint64_t mc_store_map_used_bytes(mc_store *s);

#endif
