/* list.c — see list.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include "common/err.h"
#include "common/log.h"
#include "common/path.h"
#include "common/sigv4.h"
#include "origin/list.h"
#include "origin/s3xml.h"

#define XMLNS "http://s3.amazonaws.com/doc/2006-03-01/"
#define XML_HEAD "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"

typedef struct entry {
    char *key;
    uint64_t size;
    time_t mtime;
} entry;

typedef struct entries {
    entry *v;
    size_t n, cap;
} entries;

/* One listing request, parsed. */
typedef struct listing {
    const char *bucket;
    const char *prefix;      /* "" when none */
    const char *delim;       /* NULL when none */
    const char *after;       /* start after this key (token, start-after or marker) */
    long max_keys;
    bool v2, url;
} listing;

static void entries_free(entries *es)
{
    for (size_t i = 0; i < es->n; i++)
        free(es->v[i].key);
    free(es->v);
}

static void send_xml(struct evhttp_request *req, mc_buf *xml, const char *request_id,
                     mc_obj_reply *out)
{
    struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
    evhttp_add_header(oh, "Content-Type", "application/xml");
    evhttp_add_header(oh, "x-amz-request-id", request_id);
    struct evbuffer *b = evbuffer_new();
    bool head = evhttp_request_get_command(req) == EVHTTP_REQ_HEAD;
    if (b && !head && xml->len)
        evbuffer_add(b, xml->data, xml->len);
    out->status = 200;
    out->bytes = head ? 0 : xml->len;
    evhttp_send_reply(req, 200, "OK", b);
    if (b)
        evbuffer_free(b);
}

static void fail(struct evhttp_request *req, mc_s3_error e, const char *msg, const char *path,
                 const char *request_id, mc_obj_reply *out)
{
    out->status = mc_s3xml_info(e)->status;
    out->bytes = mc_s3xml_send(req, e, msg, path, request_id);
}

static int put_time(mc_buf *b, const char *tag, time_t t)
{
    struct tm tm;
    char s[40];
    gmtime_r(&t, &tm);
    strftime(s, sizeof s, "%Y-%m-%dT%H:%M:%S.000Z", &tm);
    return mc_buf_printf(b, "<%s>%s</%s>", tag, s, tag);
}

/* <tag>text</tag>, XML-escaped, and URL-encoded first when asked. */
static int put_text(mc_buf *b, const char *tag, const char *text, bool url)
{
    int rc = mc_buf_printf(b, "<%s>", tag);
    if (rc == 0 && url) {
        mc_buf enc = MC_BUF_INIT;
        rc = mc_sigv4_uri_encode(&enc, text, strlen(text), 1);
        if (rc == 0)
            rc = mc_s3xml_escape(b, enc.data ? enc.data : "");
        mc_buf_free(&enc);
    } else if (rc == 0) {
        rc = mc_s3xml_escape(b, text);
    }
    return rc == 0 ? mc_buf_printf(b, "</%s>", tag) : rc;
}

/* ---- ListBuckets ------------------------------------------------------------ */

static int by_key(const void *a, const void *b)
{
    return strcmp(((const entry *)a)->key, ((const entry *)b)->key);
}

static int push(entries *es, const char *key, uint64_t size, time_t mtime)
{
    if (es->n >= MC_LIST_MAX_WALK)
        return MC_E_TOOBIG;
    if (es->n == es->cap) {
        size_t cap = es->cap ? es->cap * 2 : 64;
        entry *v = realloc(es->v, cap * sizeof *v);
        if (!v)
            return MC_E_NOMEM;
        es->v = v;
        es->cap = cap;
    }
    entry e = {strdup(key), size, mtime};
    if (!e.key)
        return MC_E_NOMEM;
    es->v[es->n++] = e;
    return 0;
}

static int gather_buckets(mc_objects *o, entries *es)
{
    int fd = openat(mc_objects_root_fd(o), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return MC_E_IO;
    }
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        struct stat st;
        if (!mc_objects_bucket_valid(de->d_name, strlen(de->d_name)) ||
            fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
            continue;
        rc = push(es, de->d_name, 0, st.st_mtim.tv_sec);
    }
    closedir(d);
    return rc;
}

static void list_buckets(mc_objects *o, struct evhttp_request *req, const char *request_id,
                         mc_obj_reply *out)
{
    entries es = {NULL, 0, 0};
    mc_buf x = MC_BUF_INIT;
    int rc = gather_buckets(o, &es);
    if (rc == 0) {
        if (es.n > 1)
            qsort(es.v, es.n, sizeof *es.v, by_key);
        rc = mc_buf_printf(&x, XML_HEAD "<ListAllMyBucketsResult xmlns=\"" XMLNS "\"><Owner>"
                           "<ID>meshcdn</ID><DisplayName>meshcdn</DisplayName></Owner><Buckets>");
    }
    for (size_t i = 0; rc == 0 && i < es.n; i++) {
        rc = mc_buf_puts(&x, "<Bucket>");
        if (rc == 0)
            rc = put_text(&x, "Name", es.v[i].key, false);
        if (rc == 0)
            rc = put_time(&x, "CreationDate", es.v[i].mtime);
        if (rc == 0)
            rc = mc_buf_puts(&x, "</Bucket>");
    }
    if (rc == 0)
        rc = mc_buf_puts(&x, "</Buckets></ListAllMyBucketsResult>");
    if (rc == 0)
        send_xml(req, &x, request_id, out);
    else
        fail(req, MC_S3_INTERNAL_ERROR, NULL, "/", request_id, out);
    entries_free(&es);
    mc_buf_free(&x);
}

/* ---- the walk ----------------------------------------------------------------- */

/* May the directory whose keys start with dirkey ("a/b/") hold keys under
 * prefix? Either one is a prefix of the other. */
static bool dir_relevant(const char *dirkey, size_t dlen, const char *prefix)
{
    size_t plen = strlen(prefix);
    return strncmp(dirkey, prefix, dlen < plen ? dlen : plen) == 0;
}

static int walk(int dfd, mc_buf *key, const char *prefix, entries *es, int depth)
{
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return 0;   /* vanished or unreadable: nothing to list there */
    }
    int rc = 0;
    size_t base = key->len;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        const char *n = de->d_name;
        struct stat st;
        if (strcmp(n, ".") == 0 || strcmp(n, "..") == 0 ||
            strncmp(n, MC_OBJECTS_RESERVED, strlen(MC_OBJECTS_RESERVED)) == 0 ||
            fstatat(dirfd(d), n, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        key->len = base;
        if ((rc = mc_buf_puts(key, n)) < 0)
            break;
        if (S_ISREG(st.st_mode)) {
            if (strncmp(key->data, prefix, strlen(prefix)) == 0)
                rc = push(es, key->data, (uint64_t)st.st_size, st.st_mtim.tv_sec);
        } else if (S_ISDIR(st.st_mode) && depth < 64) {
            if ((rc = mc_buf_putc(key, '/')) < 0 || !dir_relevant(key->data, key->len, prefix))
                continue;
            int sub = openat(dirfd(d), n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0)
                rc = walk(sub, key, prefix, es, depth + 1);
        }
    }
    key->len = base;
    if (key->data)
        key->data[base] = '\0';
    closedir(d);
    return rc;
}

/* Gather every listable key of bucket (dir fd bfd, taken over) under prefix. */
static int gather_keys(int bfd, const char *prefix, entries *es)
{
    mc_buf key = MC_BUF_INIT;
    int rc = mc_buf_puts(&key, "");
    if (rc == 0)
        rc = walk(bfd, &key, prefix, es, 0);
    else
        close(bfd);
    mc_buf_free(&key);
    if (rc == 0 && es->n > 1)
        qsort(es->v, es->n, sizeof *es->v, by_key);
    return rc;
}

/* ---- ListObjects ---------------------------------------------------------------- */

static int put_contents(mc_objects *o, mc_buf *x, const listing *l, const entry *e)
{
    char etag[MC_ETAG_LEN] = "\"\"";
    mc_buf rel = MC_BUF_INIT;
    mc_object ob = MC_OBJECT_INIT;
    if (mc_buf_printf(&rel, "%s/%s", l->bucket, e->key) < 0)
        return MC_E_NOMEM;
    ob.fd = mc_objects_open_rel(o, rel.data, O_RDONLY | O_NONBLOCK | O_NOCTTY);
    if (ob.fd >= 0 && fstat(ob.fd, &ob.st) == 0 && S_ISREG(ob.st.st_mode) &&
        mc_objects_etag(o, &ob, etag) < 0)
        snprintf(etag, sizeof etag, "\"\"");
    mc_object_release(&ob);
    mc_buf_free(&rel);
    int rc = mc_buf_puts(x, "<Contents>");
    if (rc == 0)
        rc = put_text(x, "Key", e->key, l->url);
    if (rc == 0)
        rc = put_time(x, "LastModified", e->mtime);
    if (rc == 0)
        rc = put_text(x, "ETag", etag, false);
    if (rc == 0)
        rc = mc_buf_printf(x, "<Size>%" PRIu64 "</Size><StorageClass>STANDARD</StorageClass>"
                              "</Contents>", e->size);
    return rc;
}

static int put_prefix(mc_buf *x, const listing *l, const char *key, size_t len)
{
    char *cp = strndup(key, len);
    int rc = cp ? mc_buf_puts(x, "<CommonPrefixes>") : MC_E_NOMEM;
    if (rc == 0)
        rc = put_text(x, "Prefix", cp, l->url);
    if (rc == 0)
        rc = mc_buf_puts(x, "</CommonPrefixes>");
    free(cp);
    return rc;
}

typedef struct page {
    mc_buf items, prefixes;
    long count;
    bool truncated;
    const char *last;      /* last key or common prefix returned (points into entries) */
    size_t last_len;
} page;

/* Already returned by an earlier page: at or before the marker, or rolled up
 * into the common prefix the marker names. */
static bool before_marker(const listing *l, const char *k)
{
    if (!l->after || !*l->after)
        return false;
    if (strcmp(k, l->after) <= 0)
        return true;
    size_t al = strlen(l->after), dl = l->delim ? strlen(l->delim) : 0;
    return dl && al >= dl && strcmp(l->after + al - dl, l->delim) == 0 &&
           strncmp(k, l->after, al) == 0;
}

static int build_page(mc_objects *o, const listing *l, const entries *es, page *pg)
{
    size_t plen = strlen(l->prefix), dlen = l->delim ? strlen(l->delim) : 0;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < es->n; i++) {
        const char *k = es->v[i].key;
        if (before_marker(l, k))
            continue;
        const char *cut = dlen ? strstr(k + plen, l->delim) : NULL;
        size_t cplen = cut ? (size_t)(cut - k) + dlen : 0;
        if (cut && pg->last && pg->last_len == cplen && memcmp(pg->last, k, cplen) == 0)
            continue;   /* same common prefix as the previous entry */
        if (pg->count == l->max_keys) {
            pg->truncated = true;
            break;
        }
        rc = cut ? put_prefix(&pg->prefixes, l, k, cplen) : put_contents(o, &pg->items, l, &es->v[i]);
        pg->last = k;
        pg->last_len = cut ? cplen : strlen(k);
        pg->count++;
    }
    return rc;
}

static int put_header(mc_buf *x, const listing *l, const mc_query *q, const page *pg)
{
    int rc = mc_buf_puts(x, XML_HEAD "<ListBucketResult xmlns=\"" XMLNS "\">");
    if (rc == 0)
        rc = put_text(x, "Name", l->bucket, false);
    if (rc == 0)
        rc = put_text(x, "Prefix", l->prefix, l->url);
    if (rc == 0 && l->delim)
        rc = put_text(x, "Delimiter", l->delim, l->url);
    const char *tok = mc_query_get(q, "continuation-token"), *sa = mc_query_get(q, "start-after");
    if (rc == 0 && l->v2 && tok)
        rc = put_text(x, "ContinuationToken", tok, false);
    if (rc == 0 && l->v2 && sa)
        rc = put_text(x, "StartAfter", sa, l->url);
    if (rc == 0 && !l->v2)
        rc = put_text(x, "Marker", l->after ? l->after : "", l->url);
    if (rc == 0)
        rc = mc_buf_printf(x, "<MaxKeys>%ld</MaxKeys>", l->max_keys);
    if (rc == 0 && l->url)
        rc = mc_buf_puts(x, "<EncodingType>url</EncodingType>");
    if (rc == 0 && l->v2)
        rc = mc_buf_printf(x, "<KeyCount>%ld</KeyCount>", pg->count);
    if (rc == 0)
        rc = mc_buf_printf(x, "<IsTruncated>%s</IsTruncated>", pg->truncated ? "true" : "false");
    if (rc == 0 && pg->truncated) {
        char *last = strndup(pg->last, pg->last_len);
        char *hex = last ? malloc(2 * pg->last_len + 1) : NULL;
        if (hex)
            mc_hex((const unsigned char *)last, pg->last_len, hex);
        rc = !hex ? MC_E_NOMEM
             : l->v2 ? put_text(x, "NextContinuationToken", hex, false)
                     : put_text(x, "NextMarker", last, l->url);
        free(hex);
        free(last);
    }
    return rc;
}

static const char *const list_params[] = {
    "list-type", "prefix", "delimiter", "max-keys", "continuation-token", "start-after",
    "encoding-type", "fetch-owner", "marker", NULL,
};

/* Hex token back to the key it names; NULL when it is not one of ours. */
static char *token_decode(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n % 2 || strspn(t, "0123456789abcdef") != n)
        return NULL;
    char *k = malloc(n / 2 + 1);
    for (size_t i = 0; k && i < n / 2; i++) {
        unsigned v;
        sscanf(t + 2 * i, "%2x", &v);
        k[i] = (char)v;
    }
    if (k)
        k[n / 2] = '\0';
    if (k && strlen(k) != n / 2) {
        free(k);
        return NULL;
    }
    return k;
}

/* Fill l from the query; *owned is the decoded token (caller frees). */
static const char *parse_listing(const mc_query *q, listing *l, char **owned)
{
    const char *lt = mc_query_get(q, "list-type"), *mk = mc_query_get(q, "max-keys");
    const char *enc = mc_query_get(q, "encoding-type"), *tok;
    l->v2 = lt != NULL;
    if (lt && strcmp(lt, "2") != 0)
        return "list-type must be 2.";
    if (enc && strcmp(enc, "url") != 0)
        return "Invalid Encoding Method specified in Request";
    l->url = enc != NULL;
    l->prefix = mc_query_get(q, "prefix") ? mc_query_get(q, "prefix") : "";
    l->delim = mc_query_get(q, "delimiter");
    if (l->delim && !*l->delim)
        l->delim = NULL;
    l->max_keys = 1000;
    if (mk) {
        char *end;
        errno = 0;
        long v = strtol(mk, &end, 10);
        if (!*mk || *end || errno || v < 0)
            return "Provided max-keys not an integer or within integer range";
        l->max_keys = v < 1000 ? v : 1000;
    }
    if (l->v2 && (tok = mc_query_get(q, "continuation-token")) != NULL) {
        if (!(*owned = token_decode(tok)))
            return "The continuation token provided is incorrect";
        l->after = *owned;
    } else {
        l->after = mc_query_get(q, l->v2 ? "start-after" : "marker");
    }
    return NULL;
}

static void list_objects(mc_objects *o, struct evhttp_request *req, int bfd, const listing *l,
                         const mc_query *q, const char *request_id, mc_obj_reply *out)
{
    entries es = {NULL, 0, 0};
    page pg = {MC_BUF_INIT, MC_BUF_INIT, 0, false, NULL, 0};
    mc_buf x = MC_BUF_INIT;
    int rc = gather_keys(bfd, l->prefix, &es);
    if (rc == 0)
        rc = build_page(o, l, &es, &pg);
    if (rc == 0)
        rc = put_header(&x, l, q, &pg);
    if (rc == 0 && pg.items.len)
        rc = mc_buf_append(&x, pg.items.data, pg.items.len);
    if (rc == 0 && pg.prefixes.len)
        rc = mc_buf_append(&x, pg.prefixes.data, pg.prefixes.len);
    if (rc == 0)
        rc = mc_buf_puts(&x, "</ListBucketResult>");
    if (rc == 0) {
        send_xml(req, &x, request_id, out);
    } else {
        mc_log_warn("list", "msg=\"listing failed\" bucket=%s error=%s", l->bucket,
                    mc_err_name(rc));
        fail(req, MC_S3_INTERNAL_ERROR, rc == MC_E_TOOBIG ? "Too many keys under this prefix "
             "to list; use a longer prefix." : NULL, l->bucket, request_id, out);
    }
    entries_free(&es);
    mc_buf_free(&pg.items);
    mc_buf_free(&pg.prefixes);
    mc_buf_free(&x);
}

static void bucket_request(mc_objects *o, struct evhttp_request *req, int bfd,
                           const char *bucket, const mc_query *q, const char *region,
                           const char *raw_path, const char *request_id, mc_obj_reply *out)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "x-amz-bucket-region", region);
    mc_buf x = MC_BUF_INIT;
    if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
        close(bfd);
        send_xml(req, &x, request_id, out);
    } else if (mc_query_get(q, "location")) {
        close(bfd);
        bool std = strcmp(region, "us-east-1") == 0;
        if (mc_buf_printf(&x, XML_HEAD "<LocationConstraint xmlns=\"" XMLNS "\">") == 0 &&
            (std || mc_s3xml_escape(&x, region) == 0) &&
            mc_buf_puts(&x, "</LocationConstraint>") == 0)
            send_xml(req, &x, request_id, out);
        else
            fail(req, MC_S3_INTERNAL_ERROR, NULL, raw_path, request_id, out);
    } else if (mc_query_has_other(q, list_params)) {
        close(bfd);
        fail(req, MC_S3_NOT_IMPLEMENTED, "This bucket sub-resource is not implemented by "
             "this origin.", raw_path, request_id, out);
    } else {
        listing l = {.bucket = bucket};
        char *owned = NULL;
        const char *bad = parse_listing(q, &l, &owned);
        if (bad) {
            close(bfd);
            fail(req, MC_S3_INVALID_ARGUMENT, bad, raw_path, request_id, out);
        } else {
            list_objects(o, req, bfd, &l, q, request_id, out);
        }
        free(owned);
    }
    mc_buf_free(&x);
}

void mc_list_serve(mc_objects *o, struct evhttp_request *req, const char *raw_path,
                   const mc_query *q, const char *region, const char *request_id,
                   mc_obj_reply *out)
{
    mc_buf p = MC_BUF_INIT;
    memset(out, 0, sizeof *out);
    if (mc_path_decode(raw_path, strlen(raw_path), &p) < 0 || p.len == 0) {
        fail(req, MC_S3_INVALID_URI, NULL, raw_path, request_id, out);
    } else if (p.len == 1) {
        list_buckets(o, req, request_id, out);
    } else {
        char *bucket = p.data + 1;
        if (p.data[p.len - 1] == '/')
            p.data[--p.len] = '\0';
        int bfd = -1;
        if (!mc_objects_bucket_valid(bucket, strlen(bucket)))
            fail(req, MC_S3_INVALID_BUCKET_NAME, NULL, raw_path, request_id, out);
        else if ((bfd = mc_objects_open_rel(o, bucket, O_RDONLY | O_DIRECTORY)) < 0)
            fail(req, errno == ENOENT || errno == ENOTDIR ? MC_S3_NO_SUCH_BUCKET
                                                          : MC_S3_INTERNAL_ERROR,
                 NULL, raw_path, request_id, out);
        else
            bucket_request(o, req, bfd, bucket, q, region, raw_path, request_id, out);
    }
    mc_buf_free(&p);
}
