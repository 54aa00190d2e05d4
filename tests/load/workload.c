/* workload.c — object sets, traces and key generators; see workload.h. */
#include "tests/load/workload.h"

#include "common/err.h"

#include <assert.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

/* ---- PRNG: splitmix64 seeds xoshiro256** (Blackman & Vigna) ------------- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

void mc_rng_seed(mc_rng *r, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed ^ (stream * 0xD1B54A32D192ED03ull);
    for (int k = 0; k < 4; k++)
        r->s[k] = splitmix64(&x);
}

uint64_t mc_rng_next(mc_rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

double mc_rng_unit(mc_rng *r)
{
    return (double)(mc_rng_next(r) >> 11) * 0x1.0p-53;
}

uint64_t mc_rng_below(mc_rng *r, uint64_t n)
{
    assert(n > 0);
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;   /* reject the biased tail */
    for (;;) {
        uint64_t x = mc_rng_next(r);
        if (x < limit)
            return x % n;
    }
}

/* ---- object set ---------------------------------------------------------- */

static int objset_grow_index(mc_objset *s)
{
    size_t cap = s->index_cap ? s->index_cap * 2 : 1024;
    uint32_t *slots = calloc(cap, sizeof *slots);   /* id + 1; 0 = empty */
    if (slots == NULL)
        return MC_E_NOMEM;
    for (size_t id = 0; id < s->n; id++) {
        size_t h = (size_t)XXH3_64bits(s->paths[id], strlen(s->paths[id])) & (cap - 1);
        while (slots[h])
            h = (h + 1) & (cap - 1);
        slots[h] = (uint32_t)id + 1;
    }
    free(s->index);
    s->index = slots;
    s->index_cap = cap;
    return 0;
}

/* Id of path, adding it (with size) if new; negative MC_E_* on failure. */
static int64_t objset_intern(mc_objset *s, const char *path, size_t len, uint64_t size)
{
    if (s->n >= MC_WL_OBJECTS_MAX)
        return MC_E_TOOBIG;
    if ((s->n + 1) * 2 > s->index_cap) {
        int rc = objset_grow_index(s);
        if (rc < 0)
            return rc;
        char **p = realloc(s->paths, s->index_cap / 2 * sizeof *p);
        uint64_t *z = realloc(s->sizes, s->index_cap / 2 * sizeof *z);
        if (p)
            s->paths = p;
        if (z)
            s->sizes = z;
        if (!p || !z)
            return MC_E_NOMEM;
    }
    uint32_t *slots = s->index;
    size_t h = (size_t)XXH3_64bits(path, len) & (s->index_cap - 1);
    for (; slots[h]; h = (h + 1) & (s->index_cap - 1)) {
        const char *q = s->paths[slots[h] - 1];
        if (strncmp(q, path, len) == 0 && q[len] == '\0')
            return slots[h] - 1;
    }
    char *copy = strndup(path, len);
    if (copy == NULL)
        return MC_E_NOMEM;
    s->paths[s->n] = copy;
    s->sizes[s->n] = size;
    slots[h] = (uint32_t)s->n + 1;
    return (int64_t)s->n++;
}

void mc_objset_free(mc_objset *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->paths[i]);
    free(s->paths);
    free(s->sizes);
    free(s->index);
    memset(s, 0, sizeof *s);
}

int mc_objset_load_index(mc_objset *out, const char *file, char *why, size_t whylen)
{
    memset(out, 0, sizeof *out);
    json_error_t je;
    json_t *root = json_load_file(file, 0, &je);
    if (root == NULL)
        return mc_err_why(why, whylen, MC_E_INVAL, "%s:%d: %s", file, je.line, je.text);
    json_t *objs = json_object_get(root, "objects");
    int rc = 0;
    if (!json_is_array(objs) || json_array_size(objs) == 0)
        rc = mc_err_why(why, whylen, MC_E_INVAL, "%s: no \"objects\" array (a catalog index.json?)", file);
    for (size_t i = 0; rc == 0 && i < json_array_size(objs); i++) {
        json_t *o = json_array_get(objs, i);
        const char *path = json_string_value(json_object_get(o, "path"));
        json_t *size = json_object_get(o, "size");
        if (path == NULL || path[0] != '/' || strlen(path) > MC_WL_PATH_MAX || !json_is_integer(size) ||
            json_integer_value(size) < 0) {
            rc = mc_err_why(why, whylen, MC_E_INVAL, "%s: objects[%zu]: needs \"path\" (\"/...\") and \"size\"",
                            file, i);
            break;
        }
        int64_t id = objset_intern(out, path, strlen(path), (uint64_t)json_integer_value(size));
        if (id < 0)
            rc = mc_err_why(why, whylen, (int)id, "%s: objects[%zu]: %s", file, i, mc_err_name((int)id));
    }
    json_decref(root);
    if (rc < 0)
        mc_objset_free(out);
    return rc;
}

/* ---- trace --------------------------------------------------------------- */

void mc_trace_free(mc_trace *t)
{
    mc_objset_free(&t->objs);
    free(t->ids);
    memset(t, 0, sizeof *t);
}

static int trace_push(mc_trace *t, uint32_t id)
{
    if (t->n == t->cap) {
        if (t->n >= MC_WL_REQUESTS_MAX)
            return MC_E_TOOBIG;
        size_t cap = t->cap ? t->cap * 2 : 4096;
        uint32_t *p = realloc(t->ids, cap * sizeof *p);
        if (p == NULL)
            return MC_E_NOMEM;
        t->ids = p;
        t->cap = cap;
    }
    t->ids[t->n++] = id;
    return 0;
}

/* Bytes at the start of [p, p+len) that are (in = 1) or are not (in = 0) in set. */
static size_t span(const char *p, size_t len, const char *set, int in)
{
    size_t i = 0;
    while (i < len && (strchr(set, p[i]) != NULL) == in)
        i++;
    return i;
}

/* One non-blank, non-comment line [p, p+len). */
static int trace_line(mc_trace *t, const char *p, size_t len, const char *name, size_t lineno,
                      char *why, size_t whylen)
{
    size_t plen = span(p, len, " \t\r", 0);
    if (p[0] != '/')
        return mc_err_why(why, whylen, MC_E_INVAL, "%s:%zu: path must start with '/'", name, lineno);
    if (plen > MC_WL_PATH_MAX)
        return mc_err_why(why, whylen, MC_E_INVAL, "%s:%zu: path longer than %d bytes", name, lineno,
                          MC_WL_PATH_MAX);
    uint64_t size = 0;
    size_t i = plen;
    while (i < len && (p[i] == ' ' || p[i] == '\t'))
        i++;
    if (i < len && p[i] != '\r') {
        if (p[i] < '0' || p[i] > '9')
            return mc_err_why(why, whylen, MC_E_INVAL, "%s:%zu: size is not a decimal byte count", name, lineno);
        for (; i < len && p[i] >= '0' && p[i] <= '9'; i++) {
            if (size > (UINT64_MAX >> 4))
                return mc_err_why(why, whylen, MC_E_INVAL, "%s:%zu: size too large", name, lineno);
            size = size * 10 + (uint64_t)(p[i] - '0');
        }
        while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r'))
            i++;
        if (i < len)
            return mc_err_why(why, whylen, MC_E_INVAL, "%s:%zu: unexpected text after the size", name, lineno);
    }
    int64_t id = objset_intern(&t->objs, p, plen, size);
    int rc = id < 0 ? (int)id : trace_push(t, (uint32_t)id);
    if (rc < 0)
        return mc_err_why(why, whylen, rc, "%s:%zu: %s", name, lineno, mc_err_name(rc));
    return 0;
}

int mc_trace_parse(mc_trace *out, const char *text, size_t len, const char *name, char *why, size_t whylen)
{
    memset(out, 0, sizeof *out);
    size_t lineno = 0;
    for (size_t pos = 0; pos < len;) {
        const char *p = text + pos;
        const char *nl = memchr(p, '\n', len - pos);
        size_t ll = nl ? (size_t)(nl - p) : len - pos;
        pos += ll + (nl != NULL);
        lineno++;
        if (memchr(p, '\0', ll) != NULL) {
            mc_trace_free(out);
            return mc_err_why(why, whylen, MC_E_INVAL, "%s:%zu: NUL byte", name, lineno);
        }
        size_t skip = span(p, ll, " \t\r", 1);
        if (skip >= ll || p[skip] == '#')
            continue;
        int rc = trace_line(out, p + skip, ll - skip, name, lineno, why, whylen);
        if (rc < 0) {
            mc_trace_free(out);
            return rc;
        }
    }
    if (out->n == 0) {
        mc_trace_free(out);
        return mc_err_why(why, whylen, MC_E_INVAL, "%s: no requests", name);
    }
    return 0;
}

int mc_trace_load(mc_trace *out, const char *file, char *why, size_t whylen)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(file, "rb");
    if (f == NULL)
        return mc_err_why(why, whylen, MC_E_IO, "%s: %s", file, strerror(errno));
    char *text = NULL;
    size_t len = 0, cap = 0;
    int rc = 0;
    for (;;) {
        if (cap - len < 65536) {
            cap = cap ? cap * 2 : 1 << 20;
            char *p = realloc(text, cap);
            if (p == NULL) {
                rc = mc_err_why(why, whylen, MC_E_NOMEM, "%s: out of memory", file);
                break;
            }
            text = p;
        }
        size_t got = fread(text + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f))
                rc = mc_err_why(why, whylen, MC_E_IO, "%s: read error", file);
            break;
        }
    }
    fclose(f);
    if (rc == 0)
        rc = mc_trace_parse(out, text, len, file, why, whylen);
    free(text);
    return rc;
}

/* ---- Zipf by rejection-inversion ----------------------------------------
 * Hörmann & Derflinger, "Rejection-inversion to generate variates from
 * monotone discrete distributions" (1996), in the form of Apache Commons
 * RejectionInversionZipfSampler. h(x) = x^-alpha, H its integral. */

static double helper1(double x)   /* log1p(x) / x */
{
    return fabs(x) > 1e-8 ? log1p(x) / x : 1 - x * (0.5 - x * (1.0 / 3 - 0.25 * x));
}

static double helper2(double x)   /* expm1(x) / x */
{
    return fabs(x) > 1e-8 ? expm1(x) / x : 1 + x * 0.5 * (1 + x * (1.0 / 3) * (1 + 0.25 * x));
}

static double zipf_h(double alpha, double x)
{
    return exp(-alpha * log(x));
}

static double zipf_hint(double alpha, double x)
{
    double lx = log(x);
    return helper2((1 - alpha) * lx) * lx;
}

static double zipf_hint_inv(double alpha, double x)
{
    double t = x * (1 - alpha);
    if (t < -1)
        t = -1;   /* rounding only: the domain ends at -1 */
    return exp(helper1(t) * x);
}

uint64_t mc_wl_zipf_rank(mc_wl *w)
{
    double a = w->alpha;
    for (;;) {
        double u = w->h_n + mc_rng_unit(&w->rng) * (w->h_x1 - w->h_n);
        double x = zipf_hint_inv(a, u);
        double kd = floor(x + 0.5);
        uint64_t k = kd < 1 ? 1 : kd > (double)w->n ? w->n : (uint64_t)kd;
        if ((double)k - x <= w->s || u >= zipf_hint(a, (double)k + 0.5) - zipf_h(a, (double)k))
            return k;
    }
}

/* ---- generators ---------------------------------------------------------- */

static uint32_t *make_perm(size_t n, uint64_t seed, uint64_t stream)
{
    uint32_t *p = malloc(n * sizeof *p);
    if (p == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        p[i] = (uint32_t)i;
    mc_rng r;
    mc_rng_seed(&r, seed, stream);
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)mc_rng_below(&r, (uint64_t)i + 1);
        uint32_t t = p[i];
        p[i] = p[j];
        p[j] = t;
    }
    return p;
}

int mc_wl_init(mc_wl *w, mc_wl_kind kind, size_t n, double alpha, uint64_t seed, uint64_t shift_at,
               char *why, size_t whylen)
{
    memset(w, 0, sizeof *w);
    if (kind != MC_WL_ZIPF && kind != MC_WL_UNIFORM)
        return mc_err_why(why, whylen, MC_E_INVAL, "workload: unknown kind %d", (int)kind);
    if (n == 0 || n > MC_WL_OBJECTS_MAX)
        return mc_err_why(why, whylen, MC_E_INVAL, "workload: %zu objects (need 1..%u)", n, MC_WL_OBJECTS_MAX);
    if (kind == MC_WL_ZIPF && !(alpha >= 0 && alpha <= 20))
        return mc_err_why(why, whylen, MC_E_INVAL, "--zipf: %g is not in [0, 20]", alpha);
    w->kind = kind;
    w->n = n;
    w->alpha = alpha;
    w->shift_at = shift_at;
    w->perm[0] = make_perm(n, seed, 1);
    w->perm[1] = shift_at == MC_WL_NO_SHIFT ? NULL : make_perm(n, seed, 2);
    if (w->perm[0] == NULL || (shift_at != MC_WL_NO_SHIFT && w->perm[1] == NULL)) {
        mc_wl_free(w);
        return mc_err_why(why, whylen, MC_E_NOMEM, "workload: out of memory for %zu objects", n);
    }
    mc_rng_seed(&w->rng, seed, 3);
    w->h_x1 = zipf_hint(alpha, 1.5) - 1;
    w->h_n = zipf_hint(alpha, (double)n + 0.5);
    w->s = 2 - zipf_hint_inv(alpha, zipf_hint(alpha, 2.5) - zipf_h(alpha, 2));
    return 0;
}

int mc_wl_init_trace(mc_wl *w, const mc_trace *t)
{
    memset(w, 0, sizeof *w);
    if (t == NULL || t->n == 0)
        return MC_E_INVAL;
    w->kind = MC_WL_TRACE;
    w->n = t->objs.n;
    w->trace = t;
    w->shift_at = MC_WL_NO_SHIFT;
    return 0;
}

void mc_wl_free(mc_wl *w)
{
    free(w->perm[0]);
    free(w->perm[1]);
    memset(w, 0, sizeof *w);
}

int mc_wl_set_drift(mc_wl *w, uint64_t every, uint64_t step)
{
    if (w->kind == MC_WL_TRACE || (every && step == 0))
        return MC_E_INVAL;
    w->drift_every = every;
    w->drift_step = step;
    return 0;
}

uint32_t mc_wl_object_at_rank(const mc_wl *w, int phase, uint64_t r)
{
    assert(r >= 1 && r <= w->n && w->kind != MC_WL_TRACE);
    const uint32_t *p = phase && w->perm[1] ? w->perm[1] : w->perm[0];
    return p[r - 1];
}

uint32_t mc_wl_next(mc_wl *w, uint64_t clock)
{
    if (w->kind == MC_WL_TRACE) {
        uint32_t id = w->trace->ids[w->pos];
        w->pos = w->pos + 1 == w->trace->n ? 0 : w->pos + 1;
        return id;
    }
    uint64_t r = w->kind == MC_WL_ZIPF ? mc_wl_zipf_rank(w) : mc_rng_below(&w->rng, w->n) + 1;
    if (w->drift_every) {
        uint64_t off = (clock / w->drift_every) % w->n * (w->drift_step % w->n) % w->n;
        r = (r - 1 + w->n - off) % w->n + 1;
    }
    return mc_wl_object_at_rank(w, clock >= w->shift_at, r);
}
