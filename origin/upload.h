/* upload.h — writing the object space: PUT and DELETE of /BUCKET/KEY.
 *
 * Bodies: libevent 2.1's evhttp (Debian 12) reads a request body whole
 * before the handler runs and offers no hook to stream an incoming body
 * (evhttp_set_newreqcb arrived in 2.2). So a body is bounded, not streamed:
 * evhttp refuses anything over origin.max_put_size with 413 before it is
 * read (also answering Expect: 100-continue with 413), and a request holds
 * at most that much memory. Larger objects go up in parts (multipart.h),
 * as every S3 client does beyond 8-15 MiB. The handler then hashes the
 * body in memory (SHA-256 and MD5, mc_upload_digest), checks it against the
 * request (mc_upload_check_body), and only then writes it.
 *
 * Publishing: the body is written to a temporary file named
 * MC_OBJECTS_RESERVED "tmp-<random>" in the key's own directory, fsync'd,
 * and renamed over the key, so a reader sees the old object or the new one,
 * never a part. Temporary names are never served, listed or writable as
 * keys (objects.h); one left by a crash is inert. Intermediate directories
 * of "a/b/c" are created (mode 0755 less umask), each opened with the same
 * containment as GET, so a key cannot climb out through ".." or a symlink.
 * A key that needs a directory where a file is (or the reverse) is 400
 * InvalidArgument: S3 allows "a" and "a/b" side by side, a directory cannot.
 *
 * Synchronous disk work on the loop: the write, fsync and rename of one body
 * (up to max_put_size: ~50 ms for 64 MiB on the dev box's SSD, dominated by
 * fsync), and the directory walk of a DELETE's parent. Fine for an origin
 * shim that publishers write to rarely; a busy writer wants a thread here.
 *
 * Threads: the loop thread that owns req. Ownership: nothing escapes a call.
 */
#ifndef MC_UPLOAD_H
#define MC_UPLOAD_H

#include <stdbool.h>
#include <stdint.h>
#include "common/buf.h"
#include "origin/objects.h"
#include "origin/s3xml.h"

struct evhttp_request;
struct evbuffer;

typedef struct mc_body_digest {
    char sha256_hex[65];
    unsigned char md5[16];
    uint64_t len;
} mc_body_digest;

/* SHA-256 and MD5 of the whole buffer, which is left untouched. */
int mc_upload_digest(struct evbuffer *body, mc_body_digest *d);

/* After the signature passed: x-amz-content-sha256 (hex: must equal the body's
 * hash, else XAmzContentSHA256Mismatch; UNSIGNED-PAYLOAD: accepted;
 * STREAMING-*: NotImplemented — configure clients not to use aws-chunked;
 * anything else: InvalidArgument) and Content-MD5 (InvalidDigest, BadDigest).
 * Returns true when the body may be stored, else fills *e and *msg. */
bool mc_upload_check_body(struct evhttp_request *req, const mc_body_digest *d,
                          mc_s3_error *e, const char **msg);

/* Where a write to raw_path goes: the decoded path, the O_PATH descriptor of
 * the directory that holds (or will hold) the file, and the file's name in
 * it (points into path). */
typedef struct mc_upload_target {
    mc_buf path;
    int dirfd;
    const char *name;
} mc_upload_target;

#define MC_UPLOAD_TARGET_INIT {MC_BUF_INIT, -1, NULL}

/* Resolve raw_path for a write (create_dirs: make missing directories).
 * Returns true, or false with *e and *msg (InvalidURI, InvalidBucketName,
 * NoSuchBucket, InvalidArgument, InternalError). Release t either way. */
bool mc_upload_target_open(mc_objects *o, const char *raw_path, bool create_dirs,
                           mc_upload_target *t, mc_s3_error *e, const char **msg);
void mc_upload_target_release(mc_upload_target *t);

/* Write body into a fresh temporary in dirfd and rename it to name (fsync
 * first). The body is drained. 0 or a negative errno; on failure nothing
 * is left behind. */
int mc_upload_spool(int dirfd, const char *name, struct evbuffer *body);

/* A fresh temporary name in out: MC_OBJECTS_RESERVED "tmp-" + 16 hex. */
void mc_upload_temp_name(char out[40]);

/* PUT /BUCKET/KEY whose body d describes and the checks above passed:
 * 200 with ETag, or an S3 error. max_object_bytes bounds the object. */
void mc_upload_put(mc_objects *o, struct evhttp_request *req, const char *raw_path,
                   const mc_body_digest *d, uint64_t max_object_bytes, const char *request_id,
                   mc_obj_reply *out);

/* DELETE /BUCKET/KEY: 204 whether or not the key existed (S3's idempotent
 * delete); NoSuchBucket, InvalidArgument for a key that cannot exist here. */
void mc_upload_delete(mc_objects *o, struct evhttp_request *req, const char *raw_path,
                      const char *request_id, mc_obj_reply *out);

/* 200 with the stored bytes' ETag ("MD5 hex") and the request id. */
void mc_upload_reply_etag(struct evhttp_request *req, const unsigned char md5[16],
                          const char *request_id, mc_obj_reply *out);

/* Send an S3 error (for the modules that write). */
void mc_upload_fail(struct evhttp_request *req, mc_s3_error e, const char *msg,
                    const char *raw_path, const char *request_id, mc_obj_reply *out);

#endif
