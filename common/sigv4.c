/* sigv4.c — AWS Signature Version 4, see sigv4.h.
 *
 * The canonicalisation follows tests/data/sigv4/gen.py line for line (that
 * script reproduces AWS's published signatures and agrees with botocore), so
 * when the two disagree the vectors decide.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include "common/err.h"
#include "common/sigv4.h"

#define ALGORITHM "AWS4-HMAC-SHA256"
#define UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"
#define MAX_PRESIGN_EXPIRES 604800   /* 7 days: AWS's limit for X-Amz-Expires */
#define MAX_ACCESS_KEY 128           /* mc_sigv4_verdict.access_key */

/* ---- small helpers --------------------------------------------------- */

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' || c == '~';
}

static int is_space(int c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

static int is_lower_hex64(const char *s)
{
    size_t i;
    for (i = 0; s[i]; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return i == 64;
}

static int is_hex64(const char *s)
{
    size_t i;
    for (i = 0; s[i]; i++)
        if (hexval((unsigned char)s[i]) < 0)
            return 0;
    return i == 64;
}

/* Strict percent-decoding: a '%' not followed by two hex digits is an error,
 * so two different wire strings can never canonicalise to the same bytes. */
static int pct_decode(mc_buf *out, const char *s, size_t len)
{
    if (mc_buf_reserve(out, len) < 0)
        return MC_E_NOMEM;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%') {
            if (len - i < 3)
                return MC_E_INVAL;
            int h = hexval((unsigned char)s[i + 1]), l = hexval((unsigned char)s[i + 2]);
            if (h < 0 || l < 0)
                return MC_E_INVAL;
            c = (unsigned char)(h << 4 | l);
            i += 2;
        }
        if (mc_buf_append(out, &c, 1) < 0)
            return MC_E_NOMEM;
    }
    return 0;
}

int mc_sigv4_uri_encode(mc_buf *out, const char *s, size_t len, int keep_slash)
{
    static const char digits[] = "0123456789ABCDEF";
    if (mc_buf_reserve(out, len) < 0)
        return MC_E_NOMEM;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_unreserved(c) || (keep_slash && c == '/')) {
            if (mc_buf_putc(out, (char)c) < 0)
                return MC_E_NOMEM;
        } else {
            char e[3] = {'%', digits[c >> 4], digits[c & 15]};
            if (mc_buf_append(out, e, 3) < 0)
                return MC_E_NOMEM;
        }
    }
    return 0;
}

void mc_sigv4_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!data)
        data = "";
    if (!EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32) {
        out[0] = '\0';
        return;
    }
    mc_hex(md, 32, out);
}

static int hmac256(const void *key, size_t keylen, const void *msg, size_t msglen,
                   unsigned char out[32])
{
    unsigned int n = 0;
    if (!HMAC(EVP_sha256(), key, (int)keylen, msg, msglen, out, &n) || n != 32)
        return MC_E_NOMEM;
    return 0;
}

/* ---- dates ------------------------------------------------------------ */

void mc_sigv4_amz_date(time_t t, char out[17])
{
    struct tm tm;
    char tmp[64];
    if (!gmtime_r(&t, &tm)) {
        memset(&tm, 0, sizeof tm);
        tm.tm_year = 70;
        tm.tm_mday = 1;
    }
    snprintf(tmp, sizeof tmp, "%04d%02d%02dT%02d%02d%02dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    memcpy(out, tmp, 16);
    out[16] = '\0';
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil), so parsing needs neither timegm nor the TZ. */
static long long days_from_civil(long long y, unsigned m, unsigned d)
{
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long long)doe - 719468;
}

static int digits_at(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int mc_sigv4_parse_amz_date(const char *s, time_t *out)
{
    static const unsigned mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (!s || strlen(s) != 16 || s[8] != 'T' || s[15] != 'Z')
        return MC_E_INVAL;
    int y = digits_at(s, 4), mo = digits_at(s + 4, 2), d = digits_at(s + 6, 2);
    int h = digits_at(s + 9, 2), mi = digits_at(s + 11, 2), se = digits_at(s + 13, 2);
    if (y < 0 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 ||
        se < 0 || se > 59)
        return MC_E_INVAL;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if ((unsigned)d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap))
        return MC_E_INVAL;
    long long days = days_from_civil(y, (unsigned)mo, (unsigned)d);
    if (out)
        *out = (time_t)(days * 86400 + h * 3600 + mi * 60 + se);
    return 0;
}

/* ---- canonical URI ---------------------------------------------------- */

char *mc_sigv4_s3_path(const char *wire_path)
{
    mc_buf raw = MC_BUF_INIT, enc = MC_BUF_INIT;
    if (!wire_path)
        return NULL;
    if (pct_decode(&raw, wire_path, strlen(wire_path)) < 0 ||
        mc_sigv4_uri_encode(&enc, raw.data ? raw.data : "", raw.len, 1) < 0 ||
        (enc.len == 0 && mc_buf_putc(&enc, '/') < 0)) {
        mc_buf_free(&raw);
        mc_buf_free(&enc);
        return NULL;
    }
    mc_buf_free(&raw);
    return mc_buf_steal(&enc);
}

/* Non-S3 services: remove "." and ".." segments and empty segments (repeated
 * slashes), keep a trailing slash, then encode the path as sent once more
 * ("%" becomes "%25"): the SigV4 spec's double encoding. */
static int normalized_uri(mc_buf *out, const char *path)
{
    size_t len = strlen(path), nseg = 0, cap = len / 2 + 2;
    const char **seg = malloc(cap * sizeof *seg);
    size_t *seglen = malloc(cap * sizeof *seglen);
    mc_buf norm = MC_BUF_INIT;
    int rc = MC_E_NOMEM;
    if (!seg || !seglen)
        goto out;
    for (size_t i = 0; i <= len;) {
        size_t j = i;
        while (j < len && path[j] != '/')
            j++;
        size_t n = j - i;
        if (n == 2 && path[i] == '.' && path[i + 1] == '.') {
            if (nseg)
                nseg--;
        } else if (n > 0 && !(n == 1 && path[i] == '.')) {
            seg[nseg] = path + i;
            seglen[nseg++] = n;
        }
        i = j + 1;
    }
    if (mc_buf_putc(&norm, '/') < 0)
        goto out;
    for (size_t k = 0; k < nseg; k++)
        if ((k && mc_buf_putc(&norm, '/') < 0) || mc_buf_append(&norm, seg[k], seglen[k]) < 0)
            goto out;
    if (nseg && len && path[len - 1] == '/' && mc_buf_putc(&norm, '/') < 0)
        goto out;
    rc = mc_sigv4_uri_encode(out, norm.data, norm.len, 1);
out:
    free(seg);
    free(seglen);
    mc_buf_free(&norm);
    return rc;
}

static int canonical_uri(mc_buf *out, const char *path, int normalize)
{
    if (!path)
        path = "";
    if (normalize)
        return normalized_uri(out, path);
    char *p = mc_sigv4_s3_path(path);
    if (!p)
        return MC_E_INVAL;   /* bad escape (NOMEM is indistinguishable and rare) */
    int rc = mc_buf_puts(out, p);
    free(p);
    return rc;
}

/* ---- query ------------------------------------------------------------ */

typedef struct qpair {
    char *name, *value;      /* decoded */
    char *ename, *evalue;    /* encoded with the unreserved set */
} qpair;

typedef struct qlist {
    qpair *v;
    size_t n;
} qlist;

static void qlist_free(qlist *q)
{
    for (size_t i = 0; i < q->n; i++) {
        free(q->v[i].name);
        free(q->v[i].value);
        free(q->v[i].ename);
        free(q->v[i].evalue);
    }
    free(q->v);
    q->v = NULL;
    q->n = 0;
}

static int decode_encode(const char *s, size_t len, char **dec, char **enc)
{
    mc_buf d = MC_BUF_INIT, e = MC_BUF_INIT;
    int rc = pct_decode(&d, s, len);
    if (rc == 0)
        rc = mc_sigv4_uri_encode(&e, d.data ? d.data : "", d.len, 0);
    if (rc == 0) {
        *dec = mc_buf_steal(&d);
        *enc = mc_buf_steal(&e);
        if (!*dec || !*enc)
            rc = MC_E_NOMEM;
    }
    mc_buf_free(&d);
    mc_buf_free(&e);
    return rc;
}

/* Length of s[0..len) once percent-decoded (s already known to decode). */
static size_t nlen_decoded(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++, n++)
        if (s[i] == '%')
            i += 2;
    return n;
}

/* Split on '&' (empty parts skipped), a name without '=' gets "". A decoded
 * name or value holding a NUL byte is refused: it could not be compared as a
 * C string. */
static int parse_query(qlist *q, const char *query)
{
    q->v = NULL;
    q->n = 0;
    if (!query || !*query)
        return 0;
    size_t cap = 1;
    for (const char *p = query; *p; p++)
        cap += *p == '&';
    q->v = calloc(cap, sizeof *q->v);
    if (!q->v)
        return MC_E_NOMEM;
    for (const char *p = query; *p;) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (len) {
            const char *eq = memchr(p, '=', len);
            size_t nlen = eq ? (size_t)(eq - p) : len;
            qpair *qp = &q->v[q->n++];
            int rc = decode_encode(p, nlen, &qp->name, &qp->ename);
            if (rc == 0)
                rc = decode_encode(eq ? eq + 1 : "", eq ? len - nlen - 1 : 0, &qp->value,
                                   &qp->evalue);
            /* A decoded NUL would make two names compare equal as C strings. */
            if (rc == 0 && (strlen(qp->name) != nlen_decoded(p, nlen) ||
                            strlen(qp->value) != nlen_decoded(eq ? eq + 1 : "",
                                                              eq ? len - nlen - 1 : 0)))
                rc = MC_E_INVAL;
            if (rc < 0)
                return rc;
        }
        p += len + (amp != NULL);
    }
    return 0;
}

static int qpair_cmp(const void *a, const void *b)
{
    const qpair *x = *(const qpair *const *)a, *y = *(const qpair *const *)b;
    int c = strcmp(x->ename, y->ename);
    return c ? c : strcmp(x->evalue, y->evalue);
}

/* Sorted by encoded name, then value; X-Amz-Signature left out. */
static int canonical_query(mc_buf *out, const qlist *q)
{
    const qpair **v = malloc((q->n ? q->n : 1) * sizeof *v);
    size_t n = 0;
    int rc = 0;
    if (!v)
        return MC_E_NOMEM;
    for (size_t i = 0; i < q->n; i++)
        if (strcmp(q->v[i].name, "X-Amz-Signature") != 0)
            v[n++] = &q->v[i];
    qsort(v, n, sizeof *v, qpair_cmp);
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = mc_buf_printf(out, "%s%s=%s", i ? "&" : "", v[i]->ename, v[i]->evalue);
    if (rc == 0 && !out->data)
        rc = mc_buf_reserve(out, 0);
    free(v);
    return rc;
}

/* The one pair named name (decoded, exact case): 1 found, 0 absent,
 * MC_E_INVAL when repeated. */
static int query_get(const qlist *q, const char *name, const char **value)
{
    int found = 0;
    for (size_t i = 0; i < q->n; i++)
        if (strcmp(q->v[i].name, name) == 0) {
            if (found)
                return MC_E_INVAL;
            found = 1;
            *value = q->v[i].value;
        }
    return found;
}

/* ---- headers ---------------------------------------------------------- */

static int append_trimmed(mc_buf *out, const char *v)
{
    int pending = 0, any = 0;
    if (!v)
        v = "";
    for (; *v; v++) {
        if (is_space((unsigned char)*v)) {
            pending = any;
            continue;
        }
        if ((pending && mc_buf_putc(out, ' ') < 0) || mc_buf_putc(out, *v) < 0)
            return MC_E_NOMEM;
        pending = 0;
        any = 1;
    }
    return 0;
}

static int valid_header_name(const char *s)
{
    if (!s || !*s)
        return 0;
    for (; *s; s++)
        if (*s == ':' || *s == ';' || is_space((unsigned char)*s) || (unsigned char)*s < 0x21 ||
            (unsigned char)*s > 0x7e)
            return 0;
    return 1;
}

typedef struct hent {
    char *lname;
    size_t idx;
} hent;

static int hent_cmp(const void *a, const void *b)
{
    const hent *x = a, *y = b;
    int c = strcmp(x->lname, y->lname);
    return c ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

static char *lower_dup(const char *s)
{
    char *d = strdup(s);
    if (d)
        for (char *p = d; *p; p++)
            *p = (char)tolower((unsigned char)*p);
    return d;
}

/* Signer side: every header in the request, names lower-cased and sorted,
 * repeated names joined with ',' in request order. */
static int canonical_headers_all(mc_buf *hdrs, mc_buf *names, const mc_sigv4_header *h,
                                 size_t n)
{
    hent *e = calloc(n ? n : 1, sizeof *e);
    int rc = 0;
    if (!e)
        return MC_E_NOMEM;
    for (size_t i = 0; i < n; i++) {
        if (!valid_header_name(h[i].name)) {
            rc = MC_E_INVAL;
            goto out;
        }
        if (!(e[i].lname = lower_dup(h[i].name))) {
            rc = MC_E_NOMEM;
            goto out;
        }
        e[i].idx = i;
    }
    qsort(e, n, sizeof *e, hent_cmp);
    for (size_t i = 0; i < n && rc == 0; i++) {
        int first = i == 0 || strcmp(e[i].lname, e[i - 1].lname) != 0;
        if (first) {
            if (i && (rc = mc_buf_putc(hdrs, '\n')) < 0)
                break;
            if ((names->len && (rc = mc_buf_putc(names, ';')) < 0) ||
                (rc = mc_buf_puts(names, e[i].lname)) < 0 ||
                (rc = mc_buf_printf(hdrs, "%s:", e[i].lname)) < 0)
                break;
        } else if ((rc = mc_buf_putc(hdrs, ',')) < 0) {
            break;
        }
        rc = append_trimmed(hdrs, h[e[i].idx].value);
    }
    if (rc == 0 && n)
        rc = mc_buf_putc(hdrs, '\n');
out:
    for (size_t i = 0; i < n; i++)
        free(e[i].lname);
    free(e);
    return rc;
}

/* The value of the one header called name (any case); 1 found, 0 absent,
 * MC_E_INVAL when repeated. */
static int header_get(const mc_sigv4_request *req, const char *name, const char **value)
{
    int found = 0;
    for (size_t i = 0; i < req->nheaders; i++)
        if (req->headers[i].name && strcasecmp(req->headers[i].name, name) == 0) {
            if (found)
                return MC_E_INVAL;
            found = 1;
            *value = req->headers[i].value ? req->headers[i].value : "";
        }
    return found;
}

/* The payload line: x-amz-content-sha256 when sent, else the caller's
 * payload_hash, else (header form) SHA-256 of the body, or (query form)
 * UNSIGNED-PAYLOAD. */
static int payload_line(const mc_sigv4_request *req, int presign, char out[65],
                        const char **line)
{
    const char *v = NULL;
    if (header_get(req, "x-amz-content-sha256", &v) == 1) {
        char *t = NULL;
        mc_buf b = MC_BUF_INIT;
        if (append_trimmed(&b, v) < 0 || !(t = mc_buf_steal(&b))) {
            mc_buf_free(&b);
            return MC_E_NOMEM;
        }
        snprintf(out, 65, "%s", t);
        int fits = strlen(t) < 65;
        free(t);
        if (!fits)
            return MC_E_INVAL;
        *line = out;
    } else if (req->payload_hash) {
        *line = req->payload_hash;
    } else if (presign) {
        *line = UNSIGNED_PAYLOAD;
    } else {
        mc_sigv4_sha256_hex(req->body, req->body_len, out);
        *line = out;
    }
    return 0;
}

/* ---- the signature ---------------------------------------------------- */

static int build_creq(mc_buf *out, const char *method, const char *uri, const char *query,
                      const char *hdrs, const char *signed_names, const char *payload)
{
    return mc_buf_printf(out, "%s\n%s\n%s\n%s\n%s\n%s", method, uri, query, hdrs,
                         signed_names, payload);
}

static int build_sts(mc_buf *out, const char *amz_date, const char *scope, const char *creq)
{
    char h[65];
    mc_sigv4_sha256_hex(creq, strlen(creq), h);
    return mc_buf_printf(out, ALGORITHM "\n%s\n%s\n%s", amz_date, scope, h);
}

static int compute_signature(const char *secret, const char *date8, const char *region,
                             const char *service, const char *sts, char out[65])
{
    unsigned char k[32];
    mc_buf key = MC_BUF_INIT;
    int rc = mc_buf_printf(&key, "AWS4%s", secret);
    if (rc == 0)
        rc = hmac256(key.data, key.len, date8, strlen(date8), k);
    if (rc == 0)
        rc = hmac256(k, 32, region, strlen(region), k);
    if (rc == 0)
        rc = hmac256(k, 32, service, strlen(service), k);
    if (rc == 0)
        rc = hmac256(k, 32, "aws4_request", 12, k);
    if (rc == 0)
        rc = hmac256(k, 32, sts, strlen(sts), k);
    if (rc == 0)
        mc_hex(k, 32, out);
    OPENSSL_cleanse(k, sizeof k);
    if (key.data)
        OPENSSL_cleanse(key.data, key.len);
    mc_buf_free(&key);
    return rc;
}

/* ---- signer ----------------------------------------------------------- */

void mc_sigv4_result_free(mc_sigv4_result *r)
{
    if (!r)
        return;
    free(r->canonical_request);
    free(r->string_to_sign);
    free(r->presigned_query);
    r->canonical_request = r->string_to_sign = r->presigned_query = NULL;
}

static int scope_part_ok(const char *s)
{
    return s && *s && !strchr(s, '/') && strlen(s) <= MAX_ACCESS_KEY;
}

static int check_params(const mc_sigv4_request *req, const mc_sigv4_params *p)
{
    const char *host = NULL, *date = NULL;
    if (!req || !p || !req->method || !*req->method || !scope_part_ok(p->access_key) ||
        !p->secret_key || !scope_part_ok(p->region) || !scope_part_ok(p->service) ||
        mc_sigv4_parse_amz_date(p->amz_date, NULL) < 0 || (req->nheaders && !req->headers))
        return MC_E_INVAL;
    if (header_get(req, "host", &host) != 1)
        return MC_E_INVAL;
    /* A signature over one date sent with another could never verify. */
    int r = header_get(req, "x-amz-date", &date);
    if (r < 0 || (r == 1 && strcmp(date, p->amz_date) != 0))
        return MC_E_INVAL;
    return 0;
}

/* Shared by both forms: canonical request, string to sign, signature. */
static int sign_common(const mc_sigv4_request *req, const mc_sigv4_params *p,
                       const char *query, int presign, mc_sigv4_result *out)
{
    mc_buf uri = MC_BUF_INIT, cq = MC_BUF_INIT, hdrs = MC_BUF_INIT, names = MC_BUF_INIT;
    mc_buf creq = MC_BUF_INIT, sts = MC_BUF_INIT, scope = MC_BUF_INIT;
    qlist q;
    char phash[65], date8[9];
    const char *payload = NULL;
    int rc = parse_query(&q, query);
    if (rc == 0)
        rc = canonical_uri(&uri, req->path, p->normalize_path);
    if (rc == 0)
        rc = canonical_query(&cq, &q);
    if (rc == 0)
        rc = canonical_headers_all(&hdrs, &names, req->headers, req->nheaders);
    if (rc == 0)
        rc = payload_line(req, presign, phash, &payload);
    if (rc == 0 && names.len >= sizeof out->signed_headers)
        rc = MC_E_INVAL;
    if (rc == 0)
        rc = build_creq(&creq, req->method, uri.data, cq.data, hdrs.data ? hdrs.data : "",
                        names.data, payload);
    memcpy(date8, p->amz_date, 8);
    date8[8] = '\0';
    if (rc == 0)
        rc = mc_buf_printf(&scope, "%s/%s/%s/aws4_request", date8, p->region, p->service);
    if (rc == 0)
        rc = build_sts(&sts, p->amz_date, scope.data, creq.data);
    if (rc == 0)
        rc = compute_signature(p->secret_key, date8, p->region, p->service, sts.data,
                               out->signature);
    if (rc == 0) {
        memcpy(out->signed_headers, names.data, names.len + 1);
        out->canonical_request = mc_buf_steal(&creq);
        out->string_to_sign = mc_buf_steal(&sts);
        if (!out->canonical_request || !out->string_to_sign)
            rc = MC_E_NOMEM;
    }
    qlist_free(&q);
    mc_buf_free(&uri);
    mc_buf_free(&cq);
    mc_buf_free(&hdrs);
    mc_buf_free(&names);
    mc_buf_free(&creq);
    mc_buf_free(&sts);
    mc_buf_free(&scope);
    return rc;
}

int mc_sigv4_sign(const mc_sigv4_request *req, const mc_sigv4_params *p,
                  mc_sigv4_result *out)
{
    if (!out)
        return MC_E_INVAL;
    memset(out, 0, sizeof *out);
    int rc = check_params(req, p);
    if (rc == 0)
        rc = sign_common(req, p, req->query, 0, out);
    if (rc == 0) {
        int n = snprintf(out->authorization, sizeof out->authorization,
                         ALGORITHM " Credential=%s/%.8s/%s/%s/aws4_request, "
                         "SignedHeaders=%s, Signature=%s",
                         p->access_key, p->amz_date, p->region, p->service,
                         out->signed_headers, out->signature);
        if (n < 0 || (size_t)n >= sizeof out->authorization)
            rc = MC_E_INVAL;
    }
    if (rc < 0) {
        mc_sigv4_result_free(out);
        memset(out, 0, sizeof *out);
    }
    return rc;
}

static const char *const presign_params[] = {
    "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
    "X-Amz-SignedHeaders", "X-Amz-Signature", "X-Amz-Security-Token",
};

int mc_sigv4_presign(const mc_sigv4_request *req, const mc_sigv4_params *p,
                     int expires_s, mc_sigv4_result *out)
{
    mc_buf names = MC_BUF_INIT, hdrs = MC_BUF_INIT, full = MC_BUF_INIT;
    qlist q = {NULL, 0};
    if (!out)
        return MC_E_INVAL;
    memset(out, 0, sizeof *out);
    int rc = check_params(req, p);
    if (rc == 0 && (expires_s < 1 || expires_s > MAX_PRESIGN_EXPIRES))
        rc = MC_E_INVAL;
    /* The caller's query must not carry auth parameters of its own. */
    if (rc == 0)
        rc = parse_query(&q, req->query);
    for (size_t i = 0; rc == 0 && i < q.n; i++)
        for (size_t k = 0; k < sizeof presign_params / sizeof *presign_params; k++)
            if (strcmp(q.v[i].name, presign_params[k]) == 0)
                rc = MC_E_INVAL;
    qlist_free(&q);
    if (rc == 0)
        rc = canonical_headers_all(&hdrs, &names, req->headers, req->nheaders);
    if (rc == 0 && req->query && *req->query)
        rc = mc_buf_printf(&full, "%s&", req->query);
    if (rc == 0) {
        mc_buf cred = MC_BUF_INIT;
        rc = mc_buf_printf(&cred, "%s/%.8s/%s/%s/aws4_request", p->access_key, p->amz_date,
                           p->region, p->service);
        if (rc == 0)
            rc = mc_buf_puts(&full, "X-Amz-Algorithm=" ALGORITHM "&X-Amz-Credential=");
        if (rc == 0)
            rc = mc_sigv4_uri_encode(&full, cred.data, cred.len, 0);
        mc_buf_free(&cred);
    }
    if (rc == 0)
        rc = mc_buf_printf(&full, "&X-Amz-Date=%s&X-Amz-Expires=%d", p->amz_date, expires_s);
    if (rc == 0 && p->session_token) {
        rc = mc_buf_puts(&full, "&X-Amz-Security-Token=");
        if (rc == 0)
            rc = mc_sigv4_uri_encode(&full, p->session_token, strlen(p->session_token), 0);
    }
    if (rc == 0)
        rc = mc_buf_puts(&full, "&X-Amz-SignedHeaders=");
    if (rc == 0)
        rc = mc_sigv4_uri_encode(&full, names.data, names.len, 0);
    if (rc == 0)
        rc = sign_common(req, p, full.data, 1, out);
    if (rc == 0)
        rc = mc_buf_printf(&full, "&X-Amz-Signature=%s", out->signature);
    if (rc == 0 && !(out->presigned_query = mc_buf_steal(&full)))
        rc = MC_E_NOMEM;
    mc_buf_free(&names);
    mc_buf_free(&hdrs);
    mc_buf_free(&full);
    if (rc < 0) {
        mc_sigv4_result_free(out);
        memset(out, 0, sizeof *out);
    }
    return rc;
}

/* ---- verifier --------------------------------------------------------- */

/* The parts of either auth form. cred is a heap copy of the credential, split
 * in place; the other pointers point into it or into the request. */
typedef struct auth_parts {
    char *cred;
    const char *ak, *date8, *region, *service, *term;
    char *names;                 /* SignedHeaders, heap copy */
    char signature[65];          /* lower-case hex */
    const char *amz_date;
    long expires_s;              /* presigned only */
} auth_parts;

static void auth_parts_free(auth_parts *a)
{
    free(a->cred);
    free(a->names);
    OPENSSL_cleanse(a->signature, sizeof a->signature);
}

#define FAIL(code, ...) \
    (snprintf(v->detail, sizeof v->detail, __VA_ARGS__), (code))

static int parse_credential(auth_parts *a, const char *cred, mc_sigv4_verdict *v)
{
    const char **slot[] = {&a->ak, &a->date8, &a->region, &a->service, &a->term};
    size_t n = 0;
    if (!(a->cred = strdup(cred)))
        return MC_E_NOMEM;
    for (char *p = a->cred;; n++) {
        char *slash = strchr(p, '/');
        if (n < 5)
            *slot[n] = p;
        if (!slash) {
            n++;
            break;
        }
        *slash = '\0';
        p = slash + 1;
    }
    if (n != 5)
        return FAIL(MC_E_AUTH_MALFORMED, "credential has %zu parts, expected "
                    "ACCESS_KEY/DATE/REGION/SERVICE/aws4_request", n);
    if (!*a->ak || strlen(a->ak) > MAX_ACCESS_KEY)
        return FAIL(MC_E_AUTH_MALFORMED, "credential access key is empty or too long");
    /* It goes to logs (verdict): printable ASCII only, no line breaks. */
    for (const char *p = a->ak; *p; p++)
        if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e)
            return FAIL(MC_E_AUTH_MALFORMED, "credential access key is not printable ASCII");
    snprintf(v->access_key, sizeof v->access_key, "%s", a->ak);
    if (strcmp(a->term, "aws4_request") != 0)
        return FAIL(MC_E_AUTH_MALFORMED, "credential scope does not end in aws4_request");
    if (strlen(a->date8) != 8 || digits_at(a->date8, 8) < 0)
        return FAIL(MC_E_AUTH_MALFORMED, "credential scope date is not YYYYMMDD");
    if (!*a->region || !*a->service)
        return FAIL(MC_E_AUTH_MALFORMED, "credential scope has an empty region or service");
    return 0;
}

/* Lower-case names, strictly sorted, no repeats; host among them. */
static int check_signed_names(const char *list, mc_sigv4_verdict *v)
{
    const char *prev = NULL;
    size_t prevlen = 0;
    int host = 0;
    if (!*list || strlen(list) >= sizeof ((mc_sigv4_result *)0)->signed_headers)
        return FAIL(MC_E_AUTH_MALFORMED, "SignedHeaders is empty or too long");
    for (const char *p = list;;) {
        size_t n = strcspn(p, ";");
        if (n == 0)
            return FAIL(MC_E_AUTH_MALFORMED, "SignedHeaders has an empty name");
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)p[i];
            if (c < 0x21 || c > 0x7e || c == ':' || (c >= 'A' && c <= 'Z'))
                return FAIL(MC_E_AUTH_MALFORMED,
                            "SignedHeaders names must be lower-case header names");
        }
        if (prev) {
            size_t m = n < prevlen ? n : prevlen;
            int c = memcmp(prev, p, m);
            if (c > 0 || (c == 0 && prevlen >= n))
                return FAIL(MC_E_AUTH_MALFORMED, "SignedHeaders is not sorted or repeats a name");
        }
        if (n == 4 && memcmp(p, "host", 4) == 0)
            host = 1;
        prev = p;
        prevlen = n;
        if (!p[n])
            break;
        p += n + 1;
    }
    if (!host)
        return FAIL(MC_E_AUTH_MALFORMED, "host is not among the signed headers");
    return 0;
}

static int take_signature(auth_parts *a, const char *sig, mc_sigv4_verdict *v)
{
    if (!is_hex64(sig))
        return FAIL(MC_E_AUTH_MALFORMED, "signature is not 64 hex digits");
    for (int i = 0; i < 64; i++)
        a->signature[i] = (char)tolower((unsigned char)sig[i]);
    a->signature[64] = '\0';
    return 0;
}

/* "AWS4-HMAC-SHA256 Credential=AK/scope, SignedHeaders=a;b, Signature=hex":
 * components in any order, separated by commas and/or blanks, as AWS takes. */
static int parse_authorization(auth_parts *a, const char *hv, mc_sigv4_verdict *v)
{
    const char *cred = NULL, *names = NULL, *sig = NULL;
    int rc = 0;
    while (is_space((unsigned char)*hv))
        hv++;
    size_t alen = strcspn(hv, " \t");
    if (alen != strlen(ALGORITHM) || memcmp(hv, ALGORITHM, alen) != 0)
        return FAIL(MC_E_AUTH_MALFORMED, "Authorization is not " ALGORITHM);
    char *copy = strdup(hv + alen);
    if (!copy)
        return MC_E_NOMEM;
    for (char *save = NULL, *tok = strtok_r(copy, " \t,", &save); tok && rc == 0;
         tok = strtok_r(NULL, " \t,", &save)) {
        char *eq = strchr(tok, '=');
        const char **slot = NULL;
        if (eq) {
            *eq = '\0';
            if (strcmp(tok, "Credential") == 0)
                slot = &cred;
            else if (strcmp(tok, "SignedHeaders") == 0)
                slot = &names;
            else if (strcmp(tok, "Signature") == 0)
                slot = &sig;
        }
        if (!slot)
            rc = FAIL(MC_E_AUTH_MALFORMED, "Authorization has an unknown component");
        else if (*slot)
            rc = FAIL(MC_E_AUTH_MALFORMED, "Authorization repeats %s", tok);
        else
            *slot = eq + 1;
    }
    if (rc == 0 && (!cred || !names || !sig))
        rc = FAIL(MC_E_AUTH_MALFORMED, "Authorization lacks %s",
                  !cred ? "Credential" : !names ? "SignedHeaders" : "Signature");
    if (rc == 0)
        rc = parse_credential(a, cred, v);
    if (rc == 0)
        rc = check_signed_names(names, v);
    if (rc == 0 && !(a->names = strdup(names)))
        rc = MC_E_NOMEM;
    if (rc == 0)
        rc = take_signature(a, sig, v);
    free(copy);
    return rc;
}

static int parse_presigned(auth_parts *a, const qlist *q, mc_sigv4_verdict *v)
{
    const char *val[6] = {NULL};
    static const char *const need[6] = {
        "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date",
        "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Signature",
    };
    const char *token = NULL;
    for (int i = 0; i < 6; i++) {
        int r = query_get(q, need[i], &val[i]);
        if (r < 0)
            return FAIL(MC_E_AUTH_MALFORMED, "query repeats %s", need[i]);
        if (r == 0)
            return FAIL(MC_E_AUTH_MALFORMED, "presigned query lacks %s", need[i]);
    }
    if (query_get(q, "X-Amz-Security-Token", &token) < 0)
        return FAIL(MC_E_AUTH_MALFORMED, "query repeats X-Amz-Security-Token");
    if (strcmp(val[0], ALGORITHM) != 0)
        return FAIL(MC_E_AUTH_MALFORMED, "X-Amz-Algorithm is not " ALGORITHM);
    const char *e = val[3];
    long exp = 0;
    for (; *e >= '0' && *e <= '9' && exp <= MAX_PRESIGN_EXPIRES; e++)
        exp = exp * 10 + (*e - '0');
    if (*e || e == val[3] || exp < 1 || exp > MAX_PRESIGN_EXPIRES)
        return FAIL(MC_E_AUTH_MALFORMED, "X-Amz-Expires must be 1..%d seconds",
                    MAX_PRESIGN_EXPIRES);
    a->expires_s = exp;
    a->amz_date = val[2];
    int rc = parse_credential(a, val[1], v);
    if (rc == 0)
        rc = check_signed_names(val[4], v);
    if (rc == 0 && !(a->names = strdup(val[4])))
        rc = MC_E_NOMEM;
    if (rc == 0)
        rc = take_signature(a, val[5], v);
    return rc;
}

/* Verifier side: only the headers named in SignedHeaders, in that order. */
static int canonical_headers_named(mc_buf *out, const char *names,
                                   const mc_sigv4_request *req, mc_sigv4_verdict *v)
{
    for (const char *p = names;;) {
        size_t n = strcspn(p, ";");
        int found = 0;
        if (mc_buf_append(out, p, n) < 0 || mc_buf_putc(out, ':') < 0)
            return MC_E_NOMEM;
        for (size_t i = 0; i < req->nheaders; i++) {
            const char *hn = req->headers[i].name;
            if (!hn || strlen(hn) != n || strncasecmp(hn, p, n) != 0)
                continue;
            if ((found && mc_buf_putc(out, ',') < 0) ||
                append_trimmed(out, req->headers[i].value) < 0)
                return MC_E_NOMEM;
            found = 1;
        }
        if (!found)
            return FAIL(MC_E_AUTH_MALFORMED, "signed header %.*s is not in the request",
                        (int)(n > 64 ? 64 : n), p);
        if (mc_buf_putc(out, '\n') < 0)
            return MC_E_NOMEM;
        if (!p[n])
            return 0;
        p += n + 1;
    }
}

static int has_presign_param(const qlist *q)
{
    const char *x;
    return query_get(q, "X-Amz-Algorithm", &x) != 0 || query_get(q, "X-Amz-Credential", &x) != 0 ||
           query_get(q, "X-Amz-Signature", &x) != 0;
}

/* Parse either form, then check scope and time: everything short of the key. */
static int verify_parse(const mc_sigv4_request *req, const mc_sigv4_verify_opts *o,
                        const qlist *q, int qrc, auth_parts *a, mc_sigv4_verdict *v)
{
    const char *authz = NULL;
    int nauth = header_get(req, "authorization", &authz);
    int presigned = qrc == 0 ? has_presign_param(q)
                             : req->query && (strstr(req->query, "X-Amz-Signature") ||
                                              strstr(req->query, "X-Amz-Credential") ||
                                              strstr(req->query, "X-Amz-Algorithm"));
    int rc;
    time_t t;

    if (nauth < 0)
        return FAIL(MC_E_AUTH_MALFORMED, "Authorization header repeated");
    if (nauth == 0 && !presigned)
        return FAIL(MC_E_AUTH_MISSING, "no Authorization header and no presigned query");
    if (nauth && presigned)
        return FAIL(MC_E_AUTH_MALFORMED, "both an Authorization header and a presigned query");
    if (qrc == MC_E_NOMEM)
        return qrc;
    if (qrc < 0)
        return FAIL(MC_E_AUTH_MALFORMED, "query has a bad percent-escape");
    v->presigned = presigned;
    if (presigned) {
        rc = parse_presigned(a, q, v);
    } else {
        rc = parse_authorization(a, authz, v);
        if (rc == 0) {
            int r = header_get(req, "x-amz-date", &a->amz_date);
            if (r < 0)
                rc = FAIL(MC_E_AUTH_MALFORMED, "x-amz-date header repeated");
            else if (r == 0)
                rc = FAIL(MC_E_AUTH_MALFORMED, "no x-amz-date header (Date is not accepted)");
        }
    }
    if (rc < 0)
        return rc;
    if (mc_sigv4_parse_amz_date(a->amz_date, &t) < 0)
        return FAIL(MC_E_AUTH_MALFORMED, "%s is not YYYYMMDDTHHMMSSZ",
                    presigned ? "X-Amz-Date" : "x-amz-date");
    if (strncmp(a->date8, a->amz_date, 8) != 0)
        return FAIL(MC_E_AUTH_MALFORMED, "credential scope date %s does not match %.8s", a->date8,
                    a->amz_date);
    if (!o->service || strcmp(a->service, o->service) != 0)
        return FAIL(MC_E_AUTH_MALFORMED, "credential scope service is not %s",
                    o->service ? o->service : "(none)");
    if (o->region && strcmp(a->region, o->region) != 0)
        return FAIL(MC_E_AUTH_MALFORMED, "credential scope region is not %s", o->region);

    long long skew = o->max_skew_s > 0 ? o->max_skew_s : 0;
    long long d = (long long)t - (long long)o->now;
    if (d > skew)
        return FAIL(MC_E_AUTH_SKEW, "request date is %llds ahead of server time (max %llds)", d,
                    skew);
    if (!presigned && -d > skew)
        return FAIL(MC_E_AUTH_SKEW, "request date is %llds behind server time (max %llds)", -d,
                    skew);
    if (presigned && -d > a->expires_s)
        return FAIL(MC_E_AUTH_EXPIRED, "presigned URL expired %llds ago",
                    -d - (long long)a->expires_s);
    return 0;
}

static int build_verify_sts(const mc_sigv4_request *req, const mc_sigv4_verify_opts *o,
                            const qlist *q, const auth_parts *a, mc_buf *sts,
                            mc_sigv4_verdict *v)
{
    mc_buf uri = MC_BUF_INIT, cq = MC_BUF_INIT, hdrs = MC_BUF_INIT, creq = MC_BUF_INIT;
    mc_buf scope = MC_BUF_INIT;
    char phash[65];
    const char *payload = NULL;
    int rc = canonical_uri(&uri, req->path, o->normalize_path);
    if (rc == MC_E_INVAL)
        rc = FAIL(MC_E_AUTH_MALFORMED, "path has a bad percent-escape");
    if (rc == 0)
        rc = canonical_query(&cq, q);
    if (rc == 0)
        rc = canonical_headers_named(&hdrs, a->names, req, v);
    if (rc == 0 && payload_line(req, v->presigned, phash, &payload) < 0)
        rc = FAIL(MC_E_AUTH_MALFORMED, "x-amz-content-sha256 is too long");
    if (rc == 0)
        rc = build_creq(&creq, req->method, uri.data, cq.data, hdrs.data, a->names, payload);
    if (rc == 0)
        rc = mc_buf_printf(&scope, "%s/%s/%s/aws4_request", a->date8, a->region, a->service);
    if (rc == 0)
        rc = build_sts(sts, a->amz_date, scope.data, creq.data);
    mc_buf_free(&uri);
    mc_buf_free(&cq);
    mc_buf_free(&hdrs);
    mc_buf_free(&creq);
    mc_buf_free(&scope);
    return rc;
}

/* A hex x-amz-content-sha256 sent with a body must be that body's hash:
 * the signature covers the header, not the bytes. */
static int check_body(const mc_sigv4_request *req, mc_sigv4_verdict *v)
{
    const char *hv = NULL;
    char want[65], got[65];
    if (!(req->body_len > 0 || req->body) || header_get(req, "x-amz-content-sha256", &hv) != 1)
        return 0;
    while (is_space((unsigned char)*hv))
        hv++;
    size_t n = strlen(hv);
    while (n && is_space((unsigned char)hv[n - 1]))
        n--;
    if (n != 64)
        return 0;
    for (size_t i = 0; i < 64; i++)
        want[i] = (char)tolower((unsigned char)hv[i]);
    want[64] = '\0';
    if (!is_lower_hex64(want))
        return 0;
    mc_sigv4_sha256_hex(req->body, req->body_len, got);
    if (CRYPTO_memcmp(want, got, 64) != 0)
        return FAIL(MC_E_AUTH_MISMATCH, "x-amz-content-sha256 does not match the body");
    return 0;
}

int mc_sigv4_verify(const mc_sigv4_request *req, const mc_sigv4_verify_opts *o,
                    mc_sigv4_verdict *verdict)
{
    mc_sigv4_verdict local;
    mc_sigv4_verdict *v = verdict ? verdict : &local;
    auth_parts a;
    qlist q = {NULL, 0};
    mc_buf sts = MC_BUF_INIT;
    const char *secrets[2] = {NULL, NULL};
    int rc;

    memset(v, 0, sizeof *v);
    memset(&a, 0, sizeof a);
    if (!req || !o || !o->secret || !req->method || (req->nheaders && !req->headers))
        return FAIL(MC_E_INVAL, "verifier called without a request, options or secret lookup");
    int qrc = parse_query(&q, req->query);
    rc = verify_parse(req, o, &q, qrc, &a, v);
    if (rc == 0)
        rc = build_verify_sts(req, o, &q, &a, &sts, v);
    if (rc == 0) {
        int n = o->secret(o->secret_ud, a.ak, secrets);
        if (n <= 0)
            rc = FAIL(MC_E_AUTH_UNKNOWN_KEY, "access key %s is not known", v->access_key);
        else if (n > 2)
            n = 2;
        int match = 0;
        for (int i = 0; rc == 0 && i < n && !match; i++) {
            char sig[65];
            if (!secrets[i])
                continue;
            rc = compute_signature(secrets[i], a.date8, a.region, a.service, sts.data, sig);
            match = rc == 0 && CRYPTO_memcmp(sig, a.signature, 64) == 0;
            OPENSSL_cleanse(sig, sizeof sig);
        }
        if (rc == 0 && !match)
            rc = FAIL(MC_E_AUTH_MISMATCH, "signature does not match for access key %s",
                      v->access_key);
        if (rc == 0)
            rc = check_body(req, v);
    }
    if (rc == MC_E_NOMEM && !v->detail[0])
        snprintf(v->detail, sizeof v->detail, "out of memory");
    qlist_free(&q);
    mc_buf_free(&sts);
    auth_parts_free(&a);
    return rc;
}
