/* objects.c — see objects.h. */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/openat2.h>
#include <openssl/evp.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include "common/httpdate.h"
#include "common/log.h"
#include "common/mime.h"
#include "common/path.h"
#include "common/range.h"
#include "origin/objects.h"
#include "origin/s3xml.h"

#define MC_OBJECTS_MAGIC 0x4f424a53u
#define CHECK(o) assert((o) != NULL && (o)->magic == MC_OBJECTS_MAGIC)

/* Ranges looked at per request; more than one satisfiable range gets 200. */
#define MAX_RANGES 8
/* Read size for hashing: large enough that syscalls do not dominate. */
#define HASH_CHUNK (256u * 1024u)

typedef struct rule {
    char *prefix;
    size_t len;
    char *value;
} rule;

/* Sorted by prefix length, shortest first (surrogate keys are joined in that
 * order; Cache-Control takes the last match). */
typedef struct rule_set {
    rule *v;
    size_t n;
} rule_set;

typedef struct etag_slot {
    dev_t dev;
    ino_t ino;
    off_t size;
    int64_t mtime_ns;
    char etag[MC_ETAG_LEN];   /* "" = empty slot */
} etag_slot;

struct mc_objects {
    uint32_t magic;
    int root_fd;              /* O_PATH | O_DIRECTORY */
    char *root_real;          /* realpath of the root, for the fallback */
    char *default_cc;
    rule_set cache_rules;
    rule_set surrogate_rules;
    etag_slot *etags;
    size_t etag_mask;
    uint64_t etag_md5_max;
    int64_t write_timeout_ms;         /* slots - 1; slots is a power of two */
    bool use_realpath;        /* openat2 unavailable (or forced by tests) */
};

/* ---- set-up --------------------------------------------------------------- */

int mc_objects_open(mc_objects **out, const mc_objects_config *cfg, mc_err *err)
{
    *out = NULL;
    mc_objects *o = calloc(1, sizeof *o);
    if (!o)
        return mc_err_set(err, MC_E_NOMEM, "out of memory");
    o->magic = MC_OBJECTS_MAGIC;
    o->use_realpath = cfg->force_realpath;
    o->root_fd = open(cfg->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (o->root_fd < 0) {
        int e = errno;
        free(o);
        return mc_err_set(err, MC_E_IO, "%s: %s", cfg->root, strerror(e));
    }
    size_t slots = 16;
    while (slots < (cfg->etag_cache_entries ? cfg->etag_cache_entries : 4096) && slots < (1u << 24))
        slots <<= 1;
    o->root_real = realpath(cfg->root, NULL);
    o->default_cc = strdup(cfg->default_cache_control ? cfg->default_cache_control
                                                      : "public, max-age=86400");
    o->etags = calloc(slots, sizeof *o->etags);
    o->etag_mask = slots - 1;
    o->etag_md5_max = cfg->etag_md5_max ? cfg->etag_md5_max : (256ull << 20);
    o->write_timeout_ms = cfg->write_timeout_ms > 0 ? cfg->write_timeout_ms : 60000;
    if (!o->root_real || !o->default_cc || !o->etags) {
        mc_objects_close(o);
        return mc_err_set(err, MC_E_NOMEM, "%s: cannot set up the object root", cfg->root);
    }
    *out = o;
    return 0;
}

static void rules_free(rule_set *rs)
{
    for (size_t i = 0; i < rs->n; i++) {
        free(rs->v[i].prefix);
        free(rs->v[i].value);
    }
    free(rs->v);
    rs->v = NULL;
    rs->n = 0;
}

void mc_objects_close(mc_objects *o)
{
    if (!o)
        return;
    CHECK(o);
    if (o->root_fd >= 0)
        close(o->root_fd);
    free(o->root_real);
    free(o->default_cc);
    rules_free(&o->cache_rules);
    rules_free(&o->surrogate_rules);
    free(o->etags);
    o->magic = 0;
    free(o);
}

/* A later rule for the same prefix replaces the earlier one (flags override
 * the file). value is taken over by the set. */
static int rules_put(rule_set *rs, const char *prefix, char *value)
{
    for (size_t i = 0; i < rs->n; i++)
        if (strcmp(rs->v[i].prefix, prefix) == 0) {
            free(rs->v[i].value);
            rs->v[i].value = value;
            return 0;
        }
    rule r = {strdup(prefix), strlen(prefix), value};
    rule *v = realloc(rs->v, (rs->n + 1) * sizeof *v);
    if (!r.prefix || !v) {
        free(r.prefix);
        free(value);
        if (v)
            rs->v = v;
        return MC_E_NOMEM;
    }
    rs->v = v;
    size_t at = rs->n++;
    while (at > 0 && rs->v[at - 1].len > r.len) {
        rs->v[at] = rs->v[at - 1];
        at--;
    }
    rs->v[at] = r;
    return 0;
}

/* Trimmed copy of s if it is a safe header value: printable ASCII, no CR/LF. */
static char *header_value_dup(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n == 0)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return NULL;
    return strndup(s, n);
}

int mc_objects_add_cache_rule(mc_objects *o, const char *prefix, const char *value, mc_err *err)
{
    CHECK(o);
    if (prefix[0] != '/')
        return mc_err_set(err, MC_E_INVAL, "prefix \"%s\" must start with '/'", prefix);
    char *v = header_value_dup(value);
    if (!v)   /* value is not echoed: it may hold the control bytes at fault */
        return mc_err_set(err, MC_E_INVAL, "not a Cache-Control value (printable ASCII, "
                                           "not empty)");
    return rules_put(&o->cache_rules, prefix, v) < 0 ? mc_err_set(err, MC_E_NOMEM, "out of memory")
                                                     : 0;
}

int mc_objects_add_surrogate_rule(mc_objects *o, const char *prefix, const char *keys,
                                  mc_err *err)
{
    CHECK(o);
    if (prefix[0] != '/')
        return mc_err_set(err, MC_E_INVAL, "prefix \"%s\" must start with '/'", prefix);
    mc_buf norm = MC_BUF_INIT;
    int rc = 0;
    for (const char *p = keys; *p && rc == 0;) {
        if (*p == ' ' || *p == '\t') {
            p++;
            continue;
        }
        size_t n = strcspn(p, " \t");
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)p[i] < 0x21 || (unsigned char)p[i] > 0x7e)
                rc = MC_E_INVAL;
        if (rc == 0 && norm.len)
            rc = mc_buf_putc(&norm, ' ');
        if (rc == 0)
            rc = mc_buf_append(&norm, p, n);
        p += n;
    }
    if (rc == 0 && norm.len == 0)
        rc = MC_E_INVAL;
    if (rc < 0) {
        mc_buf_free(&norm);
        return mc_err_set(err, rc, "%s", rc == MC_E_NOMEM ? "out of memory"
                                   : "not a list of surrogate keys (printable ASCII tokens "
                                     "separated by spaces)");
    }
    return rules_put(&o->surrogate_rules, prefix, mc_buf_steal(&norm)) < 0
               ? mc_err_set(err, MC_E_NOMEM, "out of memory") : 0;
}

/* ---- rules at request time ------------------------------------------------ */

const char *mc_objects_cache_control(const mc_objects *o, const char *path)
{
    CHECK(o);
    const char *best = o->default_cc;
    for (size_t i = 0; i < o->cache_rules.n; i++)   /* shortest first: last match is longest */
        if (strncmp(path, o->cache_rules.v[i].prefix, o->cache_rules.v[i].len) == 0)
            best = o->cache_rules.v[i].value;
    return best;
}

static bool has_word(const mc_buf *b, const char *w, size_t n)
{
    for (const char *p = b->data; p && *p;) {
        size_t m = strcspn(p, " ");
        if (m == n && memcmp(p, w, n) == 0)
            return true;
        p += m;
        while (*p == ' ')
            p++;
    }
    return false;
}

int mc_objects_surrogate_keys(const mc_objects *o, const char *path, mc_buf *out)
{
    CHECK(o);
    int rc = 0;
    for (size_t i = 0; i < o->surrogate_rules.n && rc == 0; i++) {
        const rule *r = &o->surrogate_rules.v[i];
        if (strncmp(path, r->prefix, r->len) != 0)
            continue;
        for (const char *p = r->value; *p && rc == 0;) {
            size_t n = strcspn(p, " ");
            if (!has_word(out, p, n)) {
                if (out->len)
                    rc = mc_buf_putc(out, ' ');
                if (rc == 0)
                    rc = mc_buf_append(out, p, n);
            }
            p += n;
            while (*p == ' ')
                p++;
        }
    }
    return rc;
}

/* ---- mapping a path onto a file ------------------------------------------- */

static bool is_ipv4_like(const char *s, size_t n)
{
    int dots = 0, digits = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.') {
            if (digits == 0)
                return false;
            dots++, digits = 0;
        } else if (s[i] >= '0' && s[i] <= '9') {
            if (++digits > 3)
                return false;
        } else {
            return false;
        }
    }
    return dots == 3 && digits > 0;
}

bool mc_objects_bucket_valid(const char *name, size_t len)
{
    if (len < 3 || len > 63)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && c != '.' && c != '-')
            return false;
        if ((i == 0 || i == len - 1) && !alnum)
            return false;
        if (i > 0 && c == '.' && (name[i - 1] == '.' || name[i - 1] == '-'))
            return false;
        if (i > 0 && c == '-' && name[i - 1] == '.')
            return false;
    }
    return !is_ipv4_like(name, len);
}

/* Every segment of key is a name a directory can hold: not "", ".", "..",
 * and not one of our own temporary names (MC_OBJECTS_RESERVED...). */
static bool key_mappable(const char *key)
{
    size_t rl = strlen(MC_OBJECTS_RESERVED);
    for (const char *p = key;;) {
        size_t n = strcspn(p, "/");
        if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return false;
        if (n >= rl && memcmp(p, MC_OBJECTS_RESERVED, rl) == 0)
            return false;
        if (n > NAME_MAX)
            return false;
        if (!p[n])
            return true;
        p += n + 1;
    }
}

/* The no-openat2 path: open the realpath of rel if it lies under the root. */
static int open_realpath(const mc_objects *o, const char *rel, int flags)
{
    mc_buf full = MC_BUF_INIT;
    if (mc_buf_printf(&full, "%s/%s", o->root_real, rel) < 0) {
        errno = ENOMEM;
        return -1;
    }
    char *real = realpath(full.data, NULL);
    mc_buf_free(&full);
    if (!real)
        return -1;
    size_t rl = strlen(o->root_real);
    bool beneath = rl == 1 || (strncmp(real, o->root_real, rl) == 0 && real[rl] == '/');
    int fd = -1;
    if (beneath)
        fd = open(real, flags | O_NOFOLLOW);
    else
        errno = EXDEV;
    int e = errno;
    free(real);
    errno = e;
    return fd;
}

/* Open rel (relative, already checked for dot segments) beneath the root. */
static int open_beneath(mc_objects *o, const char *rel, int flags)
{
    if (!o->use_realpath) {
        struct open_how how = {
            .flags = (uint64_t)(flags | O_CLOEXEC),
            .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
        };
        for (int attempt = 0; attempt < 4; attempt++) {
            long fd = syscall(SYS_openat2, o->root_fd, rel, &how, sizeof how);
            if (fd >= 0)
                return (int)fd;
            if (errno != EAGAIN)   /* EAGAIN: a concurrent rename; retry */
                break;
        }
        if (errno != ENOSYS)
            return -1;
        o->use_realpath = true;
    }
    return open_realpath(o, rel, flags | O_CLOEXEC);
}

bool mc_objects_key_storable(const char *key)
{
    return key_mappable(key);
}

int mc_objects_open_rel(mc_objects *o, const char *rel, int flags)
{
    CHECK(o);
    return open_beneath(o, rel, flags);
}

int mc_objects_root_fd(const mc_objects *o)
{
    CHECK(o);
    return o->root_fd;
}

static mc_obj_status classify_open_error(mc_objects *o, int e, const char *bucket)
{
    switch (e) {
    case ENOENT: {
        int d = open_beneath(o, bucket, O_PATH | O_DIRECTORY);
        if (d < 0)
            return MC_OBJ_NO_SUCH_BUCKET;
        close(d);
        return MC_OBJ_NO_SUCH_KEY;
    }
    case ENOTDIR: case EXDEV: case ELOOP: case ENAMETOOLONG: case EISDIR: case ENXIO:
        return MC_OBJ_NO_SUCH_KEY;
    default:   /* EACCES, EMFILE, EIO: the operator must hear of it */
        mc_log_warn("objects", "msg=\"cannot open object\" bucket=%.64s error=\"%s\"", bucket,
                    strerror(e));
        return MC_OBJ_IO;
    }
}

void mc_object_release(mc_object *ob)
{
    if (ob->fd >= 0)
        close(ob->fd);
    ob->fd = -1;
    mc_buf_free(&ob->path);
}

mc_obj_status mc_objects_resolve(mc_objects *o, const char *raw_path, mc_object *out)
{
    CHECK(o);
    mc_object_release(out);
    int rc = mc_path_decode(raw_path, strlen(raw_path), &out->path);
    if (rc == MC_E_NOMEM)
        return MC_OBJ_IO;
    if (rc < 0 || out->path.len == 0 || out->path.data[0] != '/')
        return MC_OBJ_BAD_URI;
    char *bucket = out->path.data + 1;
    char *slash = strchr(bucket, '/');
    size_t blen = slash ? (size_t)(slash - bucket) : strlen(bucket);
    if (blen == 0 && !slash)
        return MC_OBJ_LISTING;                       /* "/": list buckets */
    if (!mc_objects_bucket_valid(bucket, blen))
        return MC_OBJ_BAD_BUCKET;
    if (!slash || slash[1] == '\0')
        return MC_OBJ_LISTING;                       /* "/b", "/b/": list objects */
    if (!key_mappable(slash + 1))
        return MC_OBJ_NO_SUCH_KEY;

    int fd = open_beneath(o, bucket, O_RDONLY | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        int e = errno;
        *slash = '\0';
        mc_obj_status st = classify_open_error(o, e, bucket);
        *slash = '/';
        return st;
    }
    out->fd = fd;
    if (fstat(fd, &out->st) < 0)
        return MC_OBJ_IO;
    if (!S_ISREG(out->st.st_mode))
        return MC_OBJ_NO_SUCH_KEY;
    return MC_OBJ_OK;
}

/* ---- ETags ---------------------------------------------------------------- */

static int md5_hex(int fd, off_t size, char hex[33])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char *buf = malloc(HASH_CHUNK);
    int rc = (ctx && buf && EVP_DigestInit_ex(ctx, EVP_md5(), NULL) == 1) ? 0 : MC_E_NOMEM;
    off_t off = 0;
    while (rc == 0 && off < size) {
        size_t want = (size - off) < (off_t)HASH_CHUNK ? (size_t)(size - off) : HASH_CHUNK;
        ssize_t n = pread(fd, buf, want, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0 || EVP_DigestUpdate(ctx, buf, (size_t)n) != 1)
            rc = MC_E_IO;     /* includes a file that shrank under us */
        else
            off += n;
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (rc == 0 && (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != 16))
        rc = MC_E_IO;
    if (rc == 0)
        mc_hex(md, 16, hex);
    EVP_MD_CTX_free(ctx);
    free(buf);
    return rc;
}

static int64_t mtime_ns(const struct stat *st)
{
    return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

static bool slot_matches(const etag_slot *s, const struct stat *st)
{
    return s->etag[0] && s->dev == st->st_dev && s->ino == st->st_ino &&
           s->size == st->st_size && s->mtime_ns == mtime_ns(st);
}

int mc_objects_etag(mc_objects *o, const mc_object *ob, char out[MC_ETAG_LEN])
{
    CHECK(o);
    assert(ob->fd >= 0);
    const struct stat *st = &ob->st;
    uint64_t h = ((uint64_t)st->st_ino ^ ((uint64_t)st->st_dev << 32)) * 0x9E3779B97F4A7C15ull;
    etag_slot *s = &o->etags[(h >> 32) & o->etag_mask];
    if (slot_matches(s, st)) {
        memcpy(out, s->etag, MC_ETAG_LEN);
        return 0;
    }
    if ((uint64_t)st->st_size > o->etag_md5_max) {
        snprintf(out, MC_ETAG_LEN, "\"%llx-%llx-%llx\"", (unsigned long long)mtime_ns(st),
                 (unsigned long long)st->st_size, (unsigned long long)st->st_ino);
        return 0;   /* cheap: nothing to cache */
    }
    char hex[33];
    int rc = md5_hex(ob->fd, st->st_size, hex);
    if (rc < 0)
        return rc;
    snprintf(out, MC_ETAG_LEN, "\"%s\"", hex);
    struct stat after;
    /* Cache only a version that did not change while it was being hashed. */
    if (fstat(ob->fd, &after) == 0 && after.st_size == st->st_size &&
        mtime_ns(&after) == mtime_ns(st)) {
        s->dev = st->st_dev;
        s->ino = st->st_ino;
        s->size = st->st_size;
        s->mtime_ns = mtime_ns(st);
        memcpy(s->etag, out, MC_ETAG_LEN);
    }
    return 0;
}

/* ---- preconditions (RFC 9110 13.1 and 13.2.2) ----------------------------- */

/* Does the If-Match / If-None-Match list match etag? weak: RFC 9110 8.8.3.2
 * weak comparison (W/ ignored); strong: neither side weak. A bare token
 * without quotes is accepted as the opaque tag (S3 is lenient that way). */
static bool etag_list_match(const char *list, const char *etag, bool weak)
{
    const char *opaque = etag + 1;               /* etag is always quoted */
    size_t olen = strlen(etag) - 2;
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (!*p)
            break;
        if (*p == '*')
            return true;
        bool is_weak = strncmp(p, "W/", 2) == 0;
        if (is_weak)
            p += 2;
        const char *tag = p;
        size_t n;
        if (*p == '"') {
            const char *end = strchr(p + 1, '"');
            if (!end)
                return false;
            tag = p + 1;
            n = (size_t)(end - tag);
            p = end + 1;
        } else {
            n = strcspn(p, ", \t");
            p += n;
        }
        if ((weak || !is_weak) && n == olen && memcmp(tag, opaque, n) == 0)
            return true;
    }
    return false;
}

int mc_objects_preconditions(const mc_obj_preconds *c, const char *etag, time_t mtime)
{
    time_t t;
    if (c->if_match) {
        if (!etag_list_match(c->if_match, etag, false))
            return 412;
    } else if (c->if_unmodified_since && mc_httpdate_parse(c->if_unmodified_since, &t) == 0 &&
               mtime > t) {
        return 412;
    }
    if (c->if_none_match) {
        if (etag_list_match(c->if_none_match, etag, true))
            return 304;
    } else if (c->if_modified_since && mc_httpdate_parse(c->if_modified_since, &t) == 0 &&
               mtime <= t) {
        return 304;
    }
    return 0;
}

/* ---- serving -------------------------------------------------------------- */

static mc_s3_error status_error(mc_obj_status st)
{
    switch (st) {
    case MC_OBJ_LISTING: return MC_S3_NOT_IMPLEMENTED;
    case MC_OBJ_BAD_URI: return MC_S3_INVALID_URI;
    case MC_OBJ_BAD_BUCKET: return MC_S3_INVALID_BUCKET_NAME;
    case MC_OBJ_NO_SUCH_BUCKET: return MC_S3_NO_SUCH_BUCKET;
    case MC_OBJ_NO_SUCH_KEY: return MC_S3_NO_SUCH_KEY;
    default: return MC_S3_INTERNAL_ERROR;
    }
}

static void send_error(struct evhttp_request *req, mc_s3_error e, const char *message,
                       const char *raw_path, const char *request_id, mc_obj_reply *out)
{
    out->status = mc_s3xml_info(e)->status;
    out->bytes = mc_s3xml_send(req, e, message, raw_path, request_id);
}

static void add_header(struct evhttp_request *req, const char *name, const char *value)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), name, value);
}

/* Headers every successful answer (200, 206, 304) carries. */
static void add_validators(mc_objects *o, struct evhttp_request *req, const mc_object *ob,
                           const char *etag)
{
    char date[MC_HTTPDATE_LEN];
    mc_httpdate_format(ob->st.st_mtim.tv_sec, date);
    add_header(req, "ETag", etag);
    add_header(req, "Last-Modified", date);
    add_header(req, "Cache-Control", mc_objects_cache_control(o, ob->path.data));
    mc_buf sk = MC_BUF_INIT;
    if (mc_objects_surrogate_keys(o, ob->path.data, &sk) == 0 && sk.len)
        add_header(req, "Surrogate-Key", sk.data);
    mc_buf_free(&sk);
}

/* If-Range (RFC 9110 13.1.5): the Range applies only while the validator is
 * current — a strong ETag match or exactly the Last-Modified date. */
static bool if_range_holds(const char *ifr, const char *etag, time_t mtime)
{
    while (*ifr == ' ' || *ifr == '\t')
        ifr++;
    if (*ifr == '"' || strncmp(ifr, "W/", 2) == 0)
        return strncmp(ifr, "W/", 2) != 0 && strcmp(ifr, etag) == 0;
    time_t t;
    return mc_httpdate_parse(ifr, &t) == 0 && t == mtime;
}

/* 0: whole object; 1: *r; MC_E_UNSATISFIABLE: 416. */
static int plan_range(struct evhttp_request *req, const mc_object *ob, const char *etag,
                      mc_range *r)
{
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    const char *hdr = evhttp_find_header(in, "Range");
    const char *ifr = evhttp_find_header(in, "If-Range");
    if (!hdr || (ifr && !if_range_holds(ifr, etag, ob->st.st_mtim.tv_sec)))
        return 0;
    mc_range v[MAX_RANGES];
    int n = mc_range_parse(hdr, (uint64_t)ob->st.st_size, v, MAX_RANGES);
    if (n == MC_E_UNSATISFIABLE)
        return n;
    if (n != 1)
        return 0;   /* invalid (ignored), or several ranges: whole object, like S3 */
    *r = v[0];
    return 1;
}

/* Queue [off, off+len) of ob's file into body as a sendfile segment; the
 * segment takes ob->fd over. */
static int queue_file(struct evbuffer *body, mc_object *ob, uint64_t off, uint64_t len)
{
    if (len == 0)
        return 0;
    evbuffer_set_flags(body, EVBUFFER_FLAG_DRAINS_TO_FD);
    struct evbuffer_file_segment *seg =
        evbuffer_file_segment_new(ob->fd, (ev_off_t)off, (ev_off_t)len, EVBUF_FS_CLOSE_ON_FREE);
    if (!seg)
        return MC_E_NOMEM;
    ob->fd = -1;
    int rc = evbuffer_add_file_segment(body, seg, 0, (ev_off_t)len);
    evbuffer_file_segment_free(seg);   /* body holds its own reference */
    return rc == 0 ? 0 : MC_E_NOMEM;
}

static void send_object(mc_objects *o, struct evhttp_request *req, mc_object *ob,
                        const char *etag, const mc_range *r, const char *request_id,
                        mc_obj_reply *out)
{
    uint64_t size = (uint64_t)ob->st.st_size;
    uint64_t off = r ? r->start : 0, len = r ? r->end - r->start + 1 : size;
    bool head = evhttp_request_get_command(req) == EVHTTP_REQ_HEAD;
    struct evbuffer *body = evbuffer_new();
    if (!body || (!head && queue_file(body, ob, off, len) < 0)) {
        if (body)
            evbuffer_free(body);
        send_error(req, MC_S3_INTERNAL_ERROR, NULL, ob->path.data, request_id, out);
        return;
    }
    char num[64];
    add_validators(o, req, ob, etag);
    add_header(req, "Content-Type", mc_mime_for_path(ob->path.data));
    snprintf(num, sizeof num, "%" PRIu64, len);
    add_header(req, "Content-Length", num);
    add_header(req, "Accept-Ranges", "bytes");
    add_header(req, "x-amz-request-id", request_id);
    if (r) {
        snprintf(num, sizeof num, "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, r->start, r->end, size);
        add_header(req, "Content-Range", num);
    }
    out->status = r ? 206 : 200;
    out->bytes = head ? 0 : len;
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    evhttp_send_reply(req, out->status, mc_s3xml_reason(out->status), body);
    evbuffer_free(body);
    /* libevent 2.1 keeps the connection's read timeout running while the
     * reply is written, so a body that takes longer than the timeout to
     * download is cut off however steadily it flows. While the body is
     * written only the write timeout (no progress at all) applies; evhttp
     * sets both again for the next request. */
    if (bev && !head && len > 0) {
        struct timeval tv;
        tv.tv_sec = o->write_timeout_ms / 1000;
        tv.tv_usec = (suseconds_t)(o->write_timeout_ms % 1000) * 1000;
        bufferevent_set_timeouts(bev, NULL, &tv);
    }
}

static mc_obj_preconds preconds_of(struct evhttp_request *req)
{
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    mc_obj_preconds p = {
        .if_match = evhttp_find_header(in, "If-Match"),
        .if_none_match = evhttp_find_header(in, "If-None-Match"),
        .if_modified_since = evhttp_find_header(in, "If-Modified-Since"),
        .if_unmodified_since = evhttp_find_header(in, "If-Unmodified-Since"),
    };
    return p;
}

void mc_objects_serve(mc_objects *o, struct evhttp_request *req, const char *raw_path,
                      const char *request_id, mc_obj_reply *out)
{
    CHECK(o);
    memset(out, 0, sizeof *out);
    mc_object ob = MC_OBJECT_INIT;
    char etag[MC_ETAG_LEN];
    mc_obj_status st = mc_objects_resolve(o, raw_path, &ob);
    if (st == MC_OBJ_OK && mc_objects_etag(o, &ob, etag) < 0)
        st = MC_OBJ_IO;
    if (st != MC_OBJ_OK) {
        send_error(req, status_error(st), NULL, raw_path, request_id, out);
        mc_object_release(&ob);
        return;
    }
    mc_obj_preconds pc = preconds_of(req);
    int cond = mc_objects_preconditions(&pc, etag, ob.st.st_mtim.tv_sec);
    mc_range r;
    int ranged = cond ? 0 : plan_range(req, &ob, etag, &r);
    if (cond == 304) {
        add_validators(o, req, &ob, etag);
        add_header(req, "x-amz-request-id", request_id);
        out->status = 304;
        evhttp_send_reply(req, 304, mc_s3xml_reason(304), NULL);
    } else if (cond == 412) {
        send_error(req, MC_S3_PRECONDITION_FAILED, NULL, raw_path, request_id, out);
    } else if (ranged == MC_E_UNSATISFIABLE) {
        char cr[48];
        snprintf(cr, sizeof cr, "bytes */%" PRIu64, (uint64_t)ob.st.st_size);
        add_header(req, "Content-Range", cr);
        send_error(req, MC_S3_INVALID_RANGE, NULL, raw_path, request_id, out);
    } else {
        send_object(o, req, &ob, etag, ranged == 1 ? &r : NULL, request_id, out);
    }
    mc_object_release(&ob);
}
