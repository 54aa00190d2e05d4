/* objects.h — the S3 object space over a directory: ROOT/BUCKET/KEY is
 * served as /BUCKET/KEY for GET and HEAD.
 *
 * Mapping a wire path onto a file (mc_objects_resolve):
 *  1. percent-decode once (common/path.h); a bad escape or a decoded NUL is
 *     MC_OBJ_BAD_URI (400 InvalidURI);
 *  2. "/" and "/BUCKET" or "/BUCKET/" are listings: MC_OBJ_LISTING (the
 *     entry point sends those to list.h before they get here);
 *  3. the bucket must follow S3's naming rules (3-63 of a-z 0-9 . -, starting
 *     and ending with a letter or digit, no "..", ".-" or "-.", not an IPv4
 *     address), else MC_OBJ_BAD_BUCKET (400 InvalidBucketName) — so "", ".",
 *     ".." and "%2e%2e" can never be a bucket;
 *  4. a key with an empty segment ("a//b", a trailing '/'), a "." or a ".."
 *     segment is MC_OBJ_NO_SUCH_KEY (404): such keys are legal in S3 but no
 *     file can hold them, so for a client they simply do not exist here; so
 *     is a segment starting with MC_OBJECTS_RESERVED (upload temporaries);
 *  5. the file is opened relative to an O_PATH descriptor of the root with
 *     openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS): relative symlinks are
 *     followed while they stay inside the root; one that leads out fails
 *     (404), and so does any absolute symlink, wherever it points (the
 *     kernel treats "/" as leaving the root; link with relative targets). When
 *     the kernel lacks openat2 (ENOSYS), the fallback opens the realpath()
 *     of the name if it lies under the root's realpath (racy against a
 *     concurrent rename by someone with write access to the root — the
 *     operator, who is trusted);
 *  6. only regular files are objects: a directory, FIFO or device is
 *     MC_OBJ_NO_SUCH_KEY (files are opened O_NONBLOCK so a FIFO cannot
 *     stall the loop).
 *
 * ETags are S3's for single-part uploads: the quoted MD5 hex of the content,
 * for files up to etag_md5_max bytes. A larger file would stall the loop for
 * seconds on its first request (4 GiB: about 8 s of MD5 from page cache,
 * longer from disk), so it gets "<mtime ns hex>-<size hex>-<inode hex>"
 * instead, a strong validator that changes whenever the file is replaced
 * (S3's own ETags of multipart uploads are not MD5s either). They are cached in memory, keyed by (dev, inode, size, mtime in ns), so a
 * file version is hashed once; the cache is a fixed table of
 * etag_cache_entries slots (an old entry is overwritten on collision). The
 * first computation reads the whole file synchronously on the calling
 * thread (MD5 runs ~550 MB/s: 0.12 s for a 64 MiB GLB from page cache, as
 * measured with md5sum on the dev box) and stalls the loop that long; fine
 * for the shim, where objects are published ahead of traffic.
 *
 * Cache-Control comes from the longest matching prefix rule (matched against
 * the decoded "/BUCKET/KEY"), else the default. Surrogate-Key is the union,
 * shortest prefix first, of the keys of every matching surrogate rule.
 *
 * Threads: one mc_objects belongs to one event loop thread (the ETag cache
 * is not locked). Rules are added before serving starts.
 * Ownership: mc_objects owns its root descriptor, rules and cache;
 * mc_objects_close frees them. An mc_object owns fd and path until
 * mc_object_release (or until mc_objects_serve hands fd to libevent).
 * Errors: 0 or a negative MC_E_* (with mc_err for the set-up calls);
 * mc_objects_resolve returns an mc_obj_status instead.
 */
#ifndef MC_OBJECTS_H
#define MC_OBJECTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
#include "common/buf.h"
#include "common/err.h"

struct evhttp_request;

typedef struct mc_objects mc_objects;

typedef struct mc_objects_config {
    const char *root;                   /* directory holding one directory per bucket */
    const char *default_cache_control;  /* "public, max-age=86400" */
    size_t etag_cache_entries;          /* 0 = 4096 */
    uint64_t etag_md5_max;              /* larger files get a metadata ETag; 0 = 256 MiB */
    int64_t write_timeout_ms;           /* a body write making no progress this long fails; 0 = 60 s */
    bool force_realpath;                /* tests: take the no-openat2 fallback path */
} mc_objects_config;

/* Open the root (must be a directory). Errors: MC_E_IO / MC_E_INVAL, with a
 * message naming the directory. */
int mc_objects_open(mc_objects **out, const mc_objects_config *cfg, mc_err *err);
void mc_objects_close(mc_objects *o);

/* Rules, e.g. from [cache-control] "/assets/textures/ = public, max-age=604800".
 * prefix must start with '/'; value must be printable ASCII without CR/LF.
 * MC_E_INVAL (message without location: the caller adds file:line:key). */
int mc_objects_add_cache_rule(mc_objects *o, const char *prefix, const char *value, mc_err *err);
/* [surrogate-keys] "/models/chair/ = chair furniture": space-separated tokens. */
int mc_objects_add_surrogate_rule(mc_objects *o, const char *prefix, const char *keys,
                                  mc_err *err);

typedef enum mc_obj_status {
    MC_OBJ_OK = 0,          /* out->fd is an open regular file */
    MC_OBJ_LISTING,         /* "/", "/BUCKET", "/BUCKET/": list.h's job (501 here) */
    MC_OBJ_BAD_URI,         /* undecodable: 400 InvalidURI */
    MC_OBJ_BAD_BUCKET,      /* 400 InvalidBucketName */
    MC_OBJ_NO_SUCH_BUCKET,  /* 404 NoSuchBucket */
    MC_OBJ_NO_SUCH_KEY,     /* 404 NoSuchKey (absent, not a file, unmappable, outside) */
    MC_OBJ_IO,              /* open/fstat failed otherwise (EMFILE, EACCES): 500 */
} mc_obj_status;

typedef struct mc_object {
    int fd;                 /* O_RDONLY; -1 when not open */
    struct stat st;
    mc_buf path;            /* decoded "/BUCKET/KEY" */
} mc_object;

#define MC_OBJECT_INIT {-1, {0}, MC_BUF_INIT}

/* Map raw_path (the wire path, no query) onto an open file; see above. out
 * must be MC_OBJECT_INIT or released; release it whatever the result. */
mc_obj_status mc_objects_resolve(mc_objects *o, const char *raw_path, mc_object *out);
void mc_object_release(mc_object *ob);

/* Names starting with this are the origin's own (upload temporaries, the
 * multipart area): never a key segment, never served, listed or written. */
#define MC_OBJECTS_RESERVED ".meshcdn-"

/* Can key (decoded, after "BUCKET/") be a file here: no empty, ".", ".."
 * or reserved segment, no segment longer than NAME_MAX. */
bool mc_objects_key_storable(const char *key);

/* open(2) rel (relative to the root, no dot segments) with the same
 * containment as GET (openat2 RESOLVE_BENEATH, or the realpath fallback).
 * Returns a descriptor or -1 with errno. O_PATH descriptors serve as dirfd
 * for the *at calls the writers use. */
int mc_objects_open_rel(mc_objects *o, const char *rel, int flags);

/* The root's O_PATH descriptor (owned by o), for names the origin itself
 * controls (the multipart area). */
int mc_objects_root_fd(const mc_objects *o);

/* S3 bucket naming rules (see above). */
bool mc_objects_bucket_valid(const char *name, size_t len);

#define MC_ETAG_LEN 35      /* '"' + 32 hex + '"' + NUL */

/* The quoted MD5 ETag of ob (cached; see above). MC_E_IO when reading fails. */
int mc_objects_etag(mc_objects *o, const mc_object *ob, char out[MC_ETAG_LEN]);

/* The Cache-Control value for a decoded path; never NULL, owned by o. */
const char *mc_objects_cache_control(const mc_objects *o, const char *path);
/* Append the Surrogate-Key value for path to out (nothing when no rule). */
int mc_objects_surrogate_keys(const mc_objects *o, const char *path, mc_buf *out);

/* Request preconditions (RFC 9110 13.2.2 order). NULL = header absent. */
typedef struct mc_obj_preconds {
    const char *if_match;
    const char *if_none_match;
    const char *if_modified_since;
    const char *if_unmodified_since;
} mc_obj_preconds;

/* 0 to proceed, 304 (If-None-Match matched with weak comparison, or — only
 * without If-None-Match — not modified since), or 412 (If-Match did not
 * match with strong comparison, or — only without If-Match — modified since
 * If-Unmodified-Since). Unparsable dates are ignored, as the RFC says. */
int mc_objects_preconditions(const mc_obj_preconds *p, const char *etag, time_t mtime);

/* What mc_objects_serve sent, for the access log and metrics. */
typedef struct mc_obj_reply {
    int status;
    uint64_t bytes;         /* body bytes queued (the file part goes by sendfile) */
} mc_obj_reply;

/* Answer a GET or HEAD of raw_path on req completely: S3 errors, 304, 412,
 * 416 InvalidRange, 206 for one satisfiable range (several ranges get the
 * whole object, as S3 does), else 200. Sends ETag, Last-Modified,
 * Content-Type (by extension), Content-Length, Cache-Control, Surrogate-Key,
 * Accept-Ranges and x-amz-request-id. The body is queued as a file segment,
 * never copied into memory. */
void mc_objects_serve(mc_objects *o, struct evhttp_request *req, const char *raw_path,
                      const char *request_id, mc_obj_reply *out);

#endif
