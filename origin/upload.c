/* upload.c — see upload.h. */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include "common/err.h"
#include "common/log.h"
#include "common/path.h"
#include "origin/upload.h"

#define MSG_UNSTORABLE "This key cannot be stored by this origin: it has an empty, \".\", " \
                       "\"..\", over-long or reserved (.meshcdn-) segment."
#define MSG_CONFLICT "The key conflicts with an existing object or directory (a key cannot " \
                     "be both an object and a prefix of another key here)."

void mc_upload_reply_etag(struct evhttp_request *req, const unsigned char md5[16],
                          const char *request_id, mc_obj_reply *out)
{
    char hex[33], etag[MC_ETAG_LEN];
    mc_hex(md5, 16, hex);
    snprintf(etag, sizeof etag, "\"%s\"", hex);
    struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
    evhttp_add_header(oh, "ETag", etag);
    evhttp_add_header(oh, "x-amz-request-id", request_id);
    out->status = 200;
    out->bytes = 0;
    evhttp_send_reply(req, 200, "OK", NULL);
}

void mc_upload_fail(struct evhttp_request *req, mc_s3_error e, const char *msg,
                    const char *raw_path, const char *request_id, mc_obj_reply *out)
{
    out->status = mc_s3xml_info(e)->status;
    out->bytes = mc_s3xml_send(req, e, msg, raw_path, request_id);
}

/* ---- the body ------------------------------------------------------------- */

int mc_upload_digest(struct evbuffer *body, mc_body_digest *d)
{
    memset(d, 0, sizeof *d);
    EVP_MD_CTX *sha = EVP_MD_CTX_new(), *md5 = EVP_MD_CTX_new();
    int rc = (sha && md5 && EVP_DigestInit_ex(sha, EVP_sha256(), NULL) == 1 &&
              EVP_DigestInit_ex(md5, EVP_md5(), NULL) == 1) ? 0 : MC_E_NOMEM;
    struct evbuffer_ptr pos;
    evbuffer_ptr_set(body, &pos, 0, EVBUFFER_PTR_SET);
    struct evbuffer_iovec v;
    while (rc == 0 && evbuffer_peek(body, -1, &pos, &v, 1) > 0 && v.iov_len > 0) {
        if (EVP_DigestUpdate(sha, v.iov_base, v.iov_len) != 1 ||
            EVP_DigestUpdate(md5, v.iov_base, v.iov_len) != 1)
            rc = MC_E_NOMEM;
        d->len += v.iov_len;
        if (evbuffer_ptr_set(body, &pos, v.iov_len, EVBUFFER_PTR_ADD) < 0)
            break;
    }
    unsigned char h[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (rc == 0 && (EVP_DigestFinal_ex(sha, h, &n) != 1 || n != 32))
        rc = MC_E_NOMEM;
    if (rc == 0)
        mc_hex(h, 32, d->sha256_hex);
    if (rc == 0 && (EVP_DigestFinal_ex(md5, d->md5, &n) != 1 || n != 16))
        rc = MC_E_NOMEM;
    EVP_MD_CTX_free(sha);
    EVP_MD_CTX_free(md5);
    return rc;
}

static bool fail_with(mc_s3_error *e, const char **msg, mc_s3_error code, const char *text)
{
    *e = code;
    *msg = text;
    return false;
}

/* Content-MD5: base64 of exactly 16 bytes. */
static bool check_md5(const char *b64, const mc_body_digest *d, mc_s3_error *e, const char **msg)
{
    while (*b64 == ' ')
        b64++;
    size_t n = strcspn(b64, " ");
    unsigned char raw[24];
    if (n != 24 || b64[22] != '=' || b64[23] != '=' ||
        EVP_DecodeBlock(raw, (const unsigned char *)b64, 24) != 18)
        return fail_with(e, msg, MC_S3_INVALID_DIGEST, NULL);
    if (CRYPTO_memcmp(raw, d->md5, 16) != 0)
        return fail_with(e, msg, MC_S3_BAD_DIGEST, NULL);
    return true;
}

bool mc_upload_check_body(struct evhttp_request *req, const mc_body_digest *d,
                          mc_s3_error *e, const char **msg)
{
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    const char *sha = evhttp_find_header(in, "x-amz-content-sha256");
    *msg = NULL;
    if (sha && strncmp(sha, "STREAMING-", 10) == 0)
        return fail_with(e, msg, MC_S3_NOT_IMPLEMENTED,
                         "aws-chunked uploads (STREAMING-* payloads) are not supported; "
                         "sign the payload or send UNSIGNED-PAYLOAD.");
    if (sha && strcmp(sha, "UNSIGNED-PAYLOAD") != 0) {
        if (strlen(sha) != 64 || strspn(sha, "0123456789abcdefABCDEF") != 64)
            return fail_with(e, msg, MC_S3_INVALID_ARGUMENT,
                             "x-amz-content-sha256 must be UNSIGNED-PAYLOAD or a SHA-256 "
                             "hex digest.");
        if (strncasecmp(sha, d->sha256_hex, 64) != 0)
            return fail_with(e, msg, MC_S3_SHA256_MISMATCH, NULL);
    }
    const char *md5 = evhttp_find_header(in, "Content-MD5");
    return md5 ? check_md5(md5, d, e, msg) : true;
}

/* ---- where a write goes --------------------------------------------------- */

void mc_upload_target_release(mc_upload_target *t)
{
    if (t->dirfd >= 0)
        close(t->dirfd);
    t->dirfd = -1;
    t->name = NULL;
    mc_buf_free(&t->path);
}

static int open_error(int err, bool bucket, mc_s3_error *e, const char **msg)
{
    if (bucket && (err == ENOENT || err == ENOTDIR))
        return fail_with(e, msg, MC_S3_NO_SUCH_BUCKET, NULL), -1;
    switch (err) {
    case ENOTDIR: case EEXIST: case EISDIR:
        return fail_with(e, msg, MC_S3_INVALID_ARGUMENT, MSG_CONFLICT), -1;
    case EXDEV: case ELOOP: case ENAMETOOLONG:
        return fail_with(e, msg, MC_S3_INVALID_ARGUMENT, MSG_UNSTORABLE), -1;
    default:
        mc_log_warn("upload", "msg=\"cannot open a directory for writing\" error=\"%s\"",
                    strerror(err));
        return fail_with(e, msg, MC_S3_INTERNAL_ERROR, NULL), -1;
    }
}

/* Open each directory of path (from bucket to the file's parent) with GET's
 * containment, creating the missing ones when asked. 1: t->dirfd set;
 * 0: a directory is missing (and was not to be made); -1: *e. */
static int walk_dirs(mc_objects *o, mc_upload_target *t, char *bucket, char *slash,
                     bool create_dirs, mc_s3_error *e, const char **msg)
{
    char *last = strrchr(bucket, '/');
    *slash = '\0';
    int fd = mc_objects_open_rel(o, bucket, O_PATH | O_DIRECTORY);
    *slash = '/';
    if (fd < 0)
        return open_error(errno, true, e, msg);
    for (char *p = slash; p < last;) {
        char *next = strchr(p + 1, '/');
        *next = '\0';
        int err = 0;
        if (create_dirs && mkdirat(fd, p + 1, 0755) < 0 && errno != EEXIST)
            err = errno;
        int nfd = err ? -1 : mc_objects_open_rel(o, bucket, O_PATH | O_DIRECTORY);
        if (nfd < 0 && !err)
            err = errno;
        *next = '/';
        close(fd);
        fd = nfd;
        if (fd < 0)
            return (!create_dirs && err == ENOENT) ? 0 : open_error(err, false, e, msg);
        p = next;
    }
    t->dirfd = fd;
    t->name = last + 1;
    return 1;
}

static int target_open(mc_objects *o, const char *raw_path, bool create_dirs,
                       mc_upload_target *t, mc_s3_error *e, const char **msg)
{
    mc_upload_target_release(t);
    *msg = NULL;
    int rc = mc_path_decode(raw_path, strlen(raw_path), &t->path);
    if (rc == MC_E_NOMEM)
        return fail_with(e, msg, MC_S3_INTERNAL_ERROR, NULL), -1;
    if (rc < 0 || t->path.len == 0 || t->path.data[0] != '/')
        return fail_with(e, msg, MC_S3_INVALID_URI, NULL), -1;
    char *bucket = t->path.data + 1;
    char *slash = strchr(bucket, '/');
    size_t blen = slash ? (size_t)(slash - bucket) : strlen(bucket);
    if (!mc_objects_bucket_valid(bucket, blen))
        return fail_with(e, msg, MC_S3_INVALID_BUCKET_NAME, NULL), -1;
    if (!slash || !mc_objects_key_storable(slash + 1))
        return fail_with(e, msg, MC_S3_INVALID_ARGUMENT, MSG_UNSTORABLE), -1;
    return walk_dirs(o, t, bucket, slash, create_dirs, e, msg);
}

bool mc_upload_target_open(mc_objects *o, const char *raw_path, bool create_dirs,
                           mc_upload_target *t, mc_s3_error *e, const char **msg)
{
    int rc = target_open(o, raw_path, create_dirs, t, e, msg);
    if (rc == 0)
        fail_with(e, msg, MC_S3_NO_SUCH_KEY, NULL);
    return rc == 1;
}

/* ---- writing -------------------------------------------------------------- */

void mc_upload_temp_name(char out[40])
{
    unsigned char r[8];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {   /* never on Linux >= 3.17 */
        static uint64_t counter;
        uint64_t c = ++counter ^ (uint64_t)getpid() << 32;
        memcpy(r, &c, sizeof r);
    }
    char hex[17];
    mc_hex(r, sizeof r, hex);
    snprintf(out, 40, "%stmp-%s", MC_OBJECTS_RESERVED, hex);
}

int mc_upload_spool(int dirfd, const char *name, struct evbuffer *body)
{
    char tmp[40];
    mc_upload_temp_name(tmp);
    int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0)
        return -errno;
    int rc = 0;
    while (rc == 0 && evbuffer_get_length(body) > 0) {
        errno = 0;
        int n = evbuffer_write(body, fd);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            rc = -(errno ? errno : EIO);
    }
    if (rc == 0 && fsync(fd) < 0)   /* the rename must not publish unwritten blocks */
        rc = -errno;
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && renameat(dirfd, tmp, dirfd, name) < 0)
        rc = -errno;
    if (rc < 0)
        unlinkat(dirfd, tmp, 0);
    return rc;
}

void mc_upload_put(mc_objects *o, struct evhttp_request *req, const char *raw_path,
                   const mc_body_digest *d, uint64_t max_object_bytes, const char *request_id,
                   mc_obj_reply *out)
{
    mc_s3_error e;
    const char *msg = NULL;
    mc_upload_target t = MC_UPLOAD_TARGET_INIT;
    if (d->len > max_object_bytes) {
        mc_upload_fail(req, MC_S3_ENTITY_TOO_LARGE, NULL, raw_path, request_id, out);
        return;
    }
    if (!mc_upload_target_open(o, raw_path, true, &t, &e, &msg)) {
        mc_upload_fail(req, e, msg, raw_path, request_id, out);
        mc_upload_target_release(&t);
        return;
    }
    int rc = mc_upload_spool(t.dirfd, t.name, evhttp_request_get_input_buffer(req));
    if (rc < 0) {
        if (rc != -EISDIR && rc != -ENOTDIR)
            mc_log_warn("upload", "msg=\"cannot store object\" path=%.512s error=\"%s\"",
                        t.path.data, strerror(-rc));
        mc_upload_fail(req, rc == -EISDIR || rc == -ENOTDIR ? MC_S3_INVALID_ARGUMENT
                                                            : MC_S3_INTERNAL_ERROR,
                       rc == -EISDIR || rc == -ENOTDIR ? MSG_CONFLICT : NULL, raw_path,
                       request_id, out);
    } else {
        mc_upload_reply_etag(req, d->md5, request_id, out);
    }
    mc_upload_target_release(&t);
}

void mc_upload_delete(mc_objects *o, struct evhttp_request *req, const char *raw_path,
                      const char *request_id, mc_obj_reply *out)
{
    mc_s3_error e;
    const char *msg = NULL;
    mc_upload_target t = MC_UPLOAD_TARGET_INIT;
    int rc = target_open(o, raw_path, false, &t, &e, &msg);
    if (rc == 1 && unlinkat(t.dirfd, t.name, 0) < 0 && errno != ENOENT && errno != EISDIR) {
        mc_log_warn("upload", "msg=\"cannot delete object\" path=%.512s error=\"%s\"",
                    t.path.data, strerror(errno));
        rc = -1;
        e = MC_S3_INTERNAL_ERROR;
        msg = NULL;
    }
    if (rc < 0) {
        mc_upload_fail(req, e, msg, raw_path, request_id, out);
    } else {   /* deleted, or was never there: S3 answers 204 either way */
        evhttp_add_header(evhttp_request_get_output_headers(req), "x-amz-request-id",
                          request_id);
        out->status = 204;
        out->bytes = 0;
        evhttp_send_reply(req, 204, "No Content", NULL);
    }
    mc_upload_target_release(&t);
}
