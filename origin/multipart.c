/* multipart.c — see multipart.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>
#include <openssl/evp.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include "common/err.h"
#include "common/log.h"
#include "common/path.h"
#include "origin/multipart.h"

#define XMLNS "http://s3.amazonaws.com/doc/2006-03-01/"
#define COPY_CHUNK (256u * 1024u)

typedef struct part {
    long number;
    char etag[33];
} part;

static void send_xml(struct evhttp_request *req, const mc_buf *x, const char *request_id,
                     mc_obj_reply *out)
{
    struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
    evhttp_add_header(oh, "Content-Type", "application/xml");
    evhttp_add_header(oh, "x-amz-request-id", request_id);
    struct evbuffer *b = evbuffer_new();
    if (b)
        evbuffer_add(b, x->data, x->len);
    out->status = 200;
    out->bytes = x->len;
    evhttp_send_reply(req, 200, "OK", b);
    if (b)
        evbuffer_free(b);
}

static bool valid_id(const char *id)
{
    return id && strlen(id) == 32 && strspn(id, "0123456789abcdef") == 32;
}

/* "/BUCKET/KEY" decoded, split: *key points after the bucket's '/'. */
static int decoded(const char *raw_path, mc_buf *p, size_t *blen)
{
    if (mc_path_decode(raw_path, strlen(raw_path), p) < 0 || p->len < 2)
        return -1;
    const char *slash = strchr(p->data + 1, '/');
    if (!slash)
        return -1;
    *blen = (size_t)(slash - p->data - 1);
    return 0;
}

/* The upload's directory (O_PATH) if id names one made for this path. */
static int open_upload(mc_objects *o, const char *id, const char *path)
{
    if (!valid_id(id))
        return -1;
    char rel[128], got[8192];
    snprintf(rel, sizeof rel, "%s/%s", MC_MULTIPART_DIR, id);
    int root = mc_objects_root_fd(o);
    int dfd = openat(root, rel, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int kfd = dfd >= 0 ? openat(dfd, "key", O_RDONLY | O_NOFOLLOW | O_CLOEXEC) : -1;
    ssize_t n = kfd >= 0 ? read(kfd, got, sizeof got - 1) : -1;
    if (kfd >= 0)
        close(kfd);
    if (n < 0 || (size_t)n != strlen(path) || memcmp(got, path, (size_t)n) != 0) {
        if (dfd >= 0)
            close(dfd);
        return -1;
    }
    return dfd;
}

static void remove_upload(mc_objects *o, const char *id)
{
    char rel[128];
    snprintf(rel, sizeof rel, "%s/%s", MC_MULTIPART_DIR, id);
    int root = mc_objects_root_fd(o);
    int fd = openat(root, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            unlinkat(dirfd(d), de->d_name, 0);
    closedir(d);
    if (unlinkat(root, rel, AT_REMOVEDIR) < 0)
        mc_log_warn("multipart", "msg=\"cannot remove upload\" upload_id=%s error=\"%s\"", id,
                    strerror(errno));
}

/* ---- create, part, abort ---------------------------------------------------- */

static int new_upload(mc_objects *o, const char *path, char id[33])
{
    unsigned char r[16];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        return -EIO;
    mc_hex(r, sizeof r, id);
    int root = mc_objects_root_fd(o);
    char rel[128];
    snprintf(rel, sizeof rel, "%s/%s", MC_MULTIPART_DIR, id);
    if ((mkdirat(root, MC_MULTIPART_DIR, 0700) < 0 && errno != EEXIST) ||
        mkdirat(root, rel, 0700) < 0)
        return -errno;
    int dfd = openat(root, rel, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int fd = dfd >= 0 ? openat(dfd, "key", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600) : -1;
    size_t n = strlen(path);
    int rc = (fd >= 0 && write(fd, path, n) == (ssize_t)n) ? 0 : -EIO;
    if (fd >= 0)
        close(fd);
    if (dfd >= 0)
        close(dfd);
    if (rc < 0)
        remove_upload(o, id);
    return rc;
}

void mc_multipart_create(mc_objects *o, struct evhttp_request *req, const char *raw_path,
                         const char *request_id, mc_obj_reply *out)
{
    mc_upload_target t = MC_UPLOAD_TARGET_INIT;
    mc_s3_error e;
    const char *msg;
    char id[33];
    mc_buf x = MC_BUF_INIT;
    size_t blen;
    int rc;
    if (!mc_upload_target_open(o, raw_path, false, &t, &e, &msg) && e != MC_S3_NO_SUCH_KEY) {
        mc_upload_fail(req, e, msg, raw_path, request_id, out);
    } else if (decoded(raw_path, &t.path, &blen) < 0) {
        mc_upload_fail(req, MC_S3_INVALID_URI, NULL, raw_path, request_id, out);
    } else if ((rc = new_upload(o, t.path.data, id)) < 0) {
        mc_log_warn("multipart", "msg=\"cannot create upload\" error=\"%s\"", strerror(-rc));
        mc_upload_fail(req, MC_S3_INTERNAL_ERROR, NULL, raw_path, request_id, out);
    } else {
        t.path.data[blen + 1] = '\0';
        rc = mc_buf_puts(&x, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                             "<InitiateMultipartUploadResult xmlns=\"" XMLNS "\"><Bucket>");
        if (rc == 0)
            rc = mc_s3xml_escape(&x, t.path.data + 1);
        if (rc == 0)
            rc = mc_buf_puts(&x, "</Bucket><Key>");
        if (rc == 0)
            rc = mc_s3xml_escape(&x, t.path.data + blen + 2);
        if (rc == 0)
            rc = mc_buf_printf(&x, "</Key><UploadId>%s</UploadId>"
                                   "</InitiateMultipartUploadResult>", id);
        if (rc == 0)
            send_xml(req, &x, request_id, out);
        else
            mc_upload_fail(req, MC_S3_INTERNAL_ERROR, NULL, raw_path, request_id, out);
    }
    mc_buf_free(&x);
    mc_upload_target_release(&t);
}

void mc_multipart_part(mc_objects *o, struct evhttp_request *req, const char *raw_path,
                       const mc_query *q, const mc_body_digest *d, const char *request_id,
                       mc_obj_reply *out)
{
    const char *pn = mc_query_get(q, "partNumber");
    char *end = NULL;
    long n = pn ? strtol(pn, &end, 10) : 0;
    mc_buf p = MC_BUF_INIT;
    size_t blen;
    int ufd = -1;
    if (!pn || !*pn || *end || n < 1 || n > MC_MULTIPART_MAX_PARTS) {
        mc_upload_fail(req, MC_S3_INVALID_ARGUMENT, "Part number must be an integer between 1 "
                       "and 10000, inclusive", raw_path, request_id, out);
    } else if (decoded(raw_path, &p, &blen) < 0 ||
               (ufd = open_upload(o, mc_query_get(q, "uploadId"), p.data)) < 0) {
        mc_upload_fail(req, MC_S3_NO_SUCH_UPLOAD, NULL, raw_path, request_id, out);
    } else {
        char name[16];
        snprintf(name, sizeof name, "%05ld", n);
        int rc = mc_upload_spool(ufd, name, evhttp_request_get_input_buffer(req));
        if (rc < 0) {
            mc_log_warn("multipart", "msg=\"cannot store part\" error=\"%s\"", strerror(-rc));
            mc_upload_fail(req, MC_S3_INTERNAL_ERROR, NULL, raw_path, request_id, out);
        } else {
            mc_upload_reply_etag(req, d->md5, request_id, out);
        }
    }
    if (ufd >= 0)
        close(ufd);
    mc_buf_free(&p);
}

void mc_multipart_abort(mc_objects *o, struct evhttp_request *req, const char *raw_path,
                        const mc_query *q, const char *request_id, mc_obj_reply *out)
{
    mc_buf p = MC_BUF_INIT;
    size_t blen;
    const char *id = mc_query_get(q, "uploadId");
    int ufd = decoded(raw_path, &p, &blen) < 0 ? -1 : open_upload(o, id, p.data);
    if (ufd < 0) {
        mc_upload_fail(req, MC_S3_NO_SUCH_UPLOAD, NULL, raw_path, request_id, out);
    } else {
        close(ufd);
        remove_upload(o, id);
        evhttp_add_header(evhttp_request_get_output_headers(req), "x-amz-request-id",
                          request_id);
        out->status = 204;
        evhttp_send_reply(req, 204, "No Content", NULL);
    }
    mc_buf_free(&p);
}

/* ---- complete --------------------------------------------------------------- */

/* The text of <tag>...</tag> within [s, end), or NULL. */
static const char *element(const char *s, const char *end, const char *tag, size_t *len)
{
    char open[32], close_[32];
    snprintf(open, sizeof open, "<%s>", tag);
    snprintf(close_, sizeof close_, "</%s>", tag);
    const char *a = strstr(s, open);
    if (!a || a >= end)
        return NULL;
    a += strlen(open);
    const char *b = strstr(a, close_);
    if (!b || b > end)
        return NULL;
    *len = (size_t)(b - a);
    return a;
}

/* An ETag as clients send it ("hex", &quot;hex&quot;, bare hex) to 32 hex. */
static bool clean_etag(const char *s, size_t n, char out[33])
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (n - i >= 6 && memcmp(s + i, "&quot;", 6) == 0) {
            i += 5;
        } else if (s[i] == '"' || s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t') {
            continue;
        } else if (k < 32 && strchr("0123456789abcdefABCDEF", s[i])) {
            out[k++] = (char)((s[i] >= 'A' && s[i] <= 'F') ? s[i] + 32 : s[i]);
        } else {
            return false;
        }
    }
    out[k] = '\0';
    return k == 32;
}

/* Parts of a CompleteMultipartUpload body, ascending. 0, or the error. */
static int parse_parts(const char *xml, part **out, size_t *n, mc_s3_error *e)
{
    *out = NULL;
    *n = 0;
    for (const char *p = xml; (p = strstr(p, "<Part>")) != NULL;) {
        const char *pe = strstr(p, "</Part>");
        size_t nl = 0, el = 0;
        const char *num = pe ? element(p, pe, "PartNumber", &nl) : NULL;
        const char *tag = pe ? element(p, pe, "ETag", &el) : NULL;
        part pt = {0, ""};
        char digits[8] = "";
        if (num && nl > 0 && nl < sizeof digits && strspn(num, "0123456789") >= nl) {
            memcpy(digits, num, nl);
            digits[nl] = '\0';
            pt.number = strtol(digits, NULL, 10);
        }
        if (!tag || pt.number < 1 || pt.number > MC_MULTIPART_MAX_PARTS ||
            !clean_etag(tag, el, pt.etag))
            return *e = pt.number ? MC_S3_INVALID_PART : MC_S3_MALFORMED_XML, -1;
        if (*n && (*out)[*n - 1].number >= pt.number)
            return *e = MC_S3_INVALID_PART_ORDER, -1;
        part *v = realloc(*out, (*n + 1) * sizeof *v);
        if (!v)
            return *e = MC_S3_INTERNAL_ERROR, -1;
        *out = v;
        v[(*n)++] = pt;
        p = pe + 7;
    }
    return *n ? 0 : (*e = MC_S3_MALFORMED_XML, -1);
}

static int write_all(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Append one part to tfd; its MD5 into md5. 0, or the error. */
static int copy_part(int ufd, const part *pt, int tfd, unsigned char *buf, uint64_t *total,
                     uint64_t max, unsigned char md5[16], mc_s3_error *e)
{
    char name[16];
    snprintf(name, sizeof name, "%05ld", pt->number);
    int pfd = openat(ufd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (pfd < 0)
        return *e = MC_S3_INVALID_PART, -1;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int rc = ctx && EVP_DigestInit_ex(ctx, EVP_md5(), NULL) == 1 ? 0 : (*e = MC_S3_INTERNAL_ERROR, -1);
    ssize_t n;
    while (rc == 0 && (n = read(pfd, buf, COPY_CHUNK)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || EVP_DigestUpdate(ctx, buf, (size_t)n) != 1 ||
            write_all(tfd, buf, (size_t)n) < 0)
            rc = (*e = MC_S3_INTERNAL_ERROR, -1);
        else if ((*total += (uint64_t)n) > max)
            rc = (*e = MC_S3_ENTITY_TOO_LARGE, -1);
    }
    unsigned int len = 0;
    if (rc == 0 && (EVP_DigestFinal_ex(ctx, md5, &len) != 1 || len != 16))
        rc = (*e = MC_S3_INTERNAL_ERROR, -1);
    char hex[33];
    if (rc == 0)
        mc_hex(md5, 16, hex);
    if (rc == 0 && strcmp(hex, pt->etag) != 0)
        rc = (*e = MC_S3_INVALID_PART, -1);
    EVP_MD_CTX_free(ctx);
    close(pfd);
    return rc;
}

/* Concatenate the parts into tfd; the multipart ETag (hex-N) into etag. */
static int assemble(int ufd, const part *parts, size_t n, int tfd, uint64_t max,
                    char etag[48], mc_s3_error *e)
{
    unsigned char *buf = malloc(COPY_CHUNK);
    unsigned char *md5s = malloc(16 * n);
    uint64_t total = 0;
    int rc = buf && md5s ? 0 : (*e = MC_S3_INTERNAL_ERROR, -1);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = copy_part(ufd, &parts[i], tfd, buf, &total, max, md5s + 16 * i, e);
    if (rc == 0) {
        unsigned char all[EVP_MAX_MD_SIZE];
        unsigned int len = 0;
        char hex[33];
        if (EVP_Digest(md5s, 16 * n, all, &len, EVP_md5(), NULL) != 1 || len != 16)
            rc = (*e = MC_S3_INTERNAL_ERROR, -1);
        mc_hex(all, 16, hex);
        snprintf(etag, 48, "\"%s-%u\"", hex, (unsigned)n);   /* S3: at most 10,000 parts */
    }
    free(buf);
    free(md5s);
    return rc;
}

/* Build the object next to the key and rename it over the key. */
static int publish(mc_objects *o, const char *raw_path, int ufd, const part *parts, size_t n,
                   uint64_t max, char etag[48], mc_s3_error *e, const char **msg)
{
    mc_upload_target t = MC_UPLOAD_TARGET_INIT;
    if (!mc_upload_target_open(o, raw_path, true, &t, e, msg)) {
        mc_upload_target_release(&t);
        return -1;
    }
    char tmp[40];
    mc_upload_temp_name(tmp);
    int tfd = openat(t.dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    int rc = tfd >= 0 ? assemble(ufd, parts, n, tfd, max, etag, e) : (*e = MC_S3_INTERNAL_ERROR, -1);
    if (rc == 0 && fsync(tfd) < 0)
        rc = (*e = MC_S3_INTERNAL_ERROR, -1);
    if (tfd >= 0 && close(tfd) < 0 && rc == 0)
        rc = (*e = MC_S3_INTERNAL_ERROR, -1);
    if (rc == 0 && renameat(t.dirfd, tmp, t.dirfd, t.name) < 0) {
        *msg = errno == EISDIR ? "The key conflicts with an existing directory." : NULL;
        rc = (*e = errno == EISDIR ? MC_S3_INVALID_ARGUMENT : MC_S3_INTERNAL_ERROR, -1);
    }
    if (rc < 0 && tfd >= 0)
        unlinkat(t.dirfd, tmp, 0);
    mc_upload_target_release(&t);
    return rc;
}

static void reply_complete(struct evhttp_request *req, const char *raw_path, const mc_buf *p,
                           size_t blen, const char *etag, const char *request_id,
                           mc_obj_reply *out)
{
    mc_buf x = MC_BUF_INIT;
    char *bucket = strndup(p->data + 1, blen);
    int rc = bucket ? mc_buf_puts(&x, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                                      "<CompleteMultipartUploadResult xmlns=\"" XMLNS "\">"
                                      "<Location>") : MC_E_NOMEM;
    if (rc == 0)
        rc = mc_s3xml_escape(&x, raw_path);
    if (rc == 0 && (rc = mc_buf_puts(&x, "</Location><Bucket>")) == 0)
        rc = mc_s3xml_escape(&x, bucket);
    if (rc == 0 && (rc = mc_buf_puts(&x, "</Bucket><Key>")) == 0)
        rc = mc_s3xml_escape(&x, p->data + blen + 2);
    if (rc == 0 && (rc = mc_buf_puts(&x, "</Key><ETag>")) == 0)
        rc = mc_s3xml_escape(&x, etag);
    if (rc == 0)
        rc = mc_buf_puts(&x, "</ETag></CompleteMultipartUploadResult>");
    if (rc == 0)
        send_xml(req, &x, request_id, out);
    else
        mc_upload_fail(req, MC_S3_INTERNAL_ERROR, NULL, raw_path, request_id, out);
    free(bucket);
    mc_buf_free(&x);
}

void mc_multipart_complete(mc_objects *o, struct evhttp_request *req, const char *raw_path,
                           const mc_query *q, uint64_t max_object_bytes,
                           const char *request_id, mc_obj_reply *out)
{
    mc_buf p = MC_BUF_INIT;
    size_t blen, n = 0;
    const char *id = mc_query_get(q, "uploadId"), *msg = NULL;
    part *parts = NULL;
    mc_s3_error e = MC_S3_INTERNAL_ERROR;
    char etag[48];
    int ufd = decoded(raw_path, &p, &blen) < 0 ? -1 : open_upload(o, id, p.data);
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    char *xml = ufd >= 0 ? strndup((const char *)evbuffer_pullup(in, -1), len) : NULL;
    if (ufd < 0) {
        mc_upload_fail(req, MC_S3_NO_SUCH_UPLOAD, NULL, raw_path, request_id, out);
    } else if (!xml || parse_parts(xml, &parts, &n, &e) < 0 ||
               publish(o, raw_path, ufd, parts, n, max_object_bytes, etag, &e, &msg) < 0) {
        mc_upload_fail(req, e, msg, raw_path, request_id, out);
    } else {
        remove_upload(o, id);
        reply_complete(req, raw_path, &p, blen, etag, request_id, out);
    }
    if (ufd >= 0)
        close(ufd);
    free(xml);
    free(parts);
    mc_buf_free(&p);
}
