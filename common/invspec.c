/* invspec.c — see invspec.h. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "common/inval.h"
#include "common/invspec.h"
#include "common/path.h"

static int push(char ***v, size_t *n, const char *s, size_t len)
{
    char **nv = realloc(*v, (*n + 1) * sizeof **v);
    if (!nv)
        return MC_E_NOMEM;
    *v = nv;
    if (!(nv[*n] = strndup(s, len)))
        return MC_E_NOMEM;
    (*n)++;
    return 0;
}

static void free_list(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void mc_invspec_free(mc_invspec *s)
{
    free_list(s->paths, s->npaths);
    free_list(s->prefixes, s->nprefixes);
    free_list(s->tags, s->ntags);
    memset(s, 0, sizeof *s);
}

size_t mc_invspec_items(const mc_invspec *s)
{
    return s->npaths + s->nprefixes + s->ntags + (s->all ? 1 : 0);
}

/* One path of an invalidation: exact ("/p", "/p?q") or a prefix ("/p*"),
 * normalised the way the edge normalises request paths. */
static int add_path(mc_invspec *out, const char *s, mc_err *err)
{
    size_t len = strlen(s);
    int star = len > 0 && s[len - 1] == '*';
    const char *q = star ? NULL : strchr(s, '?');
    size_t plen = star ? len - 1 : q ? (size_t)(q - s) : len;
    mc_buf norm = MC_BUF_INIT;
    if (mc_path_normalize(s, plen, &norm) < 0) {
        mc_buf_free(&norm);
        return mc_err_set(err, MC_E_INVAL, "path \"%.200s\" is not a valid URL path", s);
    }
    int rc = q && mc_buf_append(&norm, q, len - plen) < 0 ? MC_E_NOMEM : 0;
    if (!rc)
        rc = star ? push(&out->prefixes, &out->nprefixes, norm.data, norm.len)
                  : push(&out->paths, &out->npaths, norm.data, norm.len);
    mc_buf_free(&norm);
    return rc;
}

int mc_invspec_from_inval(const mc_inval *in, mc_invspec *out, mc_err *err)
{
    memset(out, 0, sizeof *out);
    out->all = in->all;
    out->soft = in->soft;
    int rc = 0;
    for (size_t i = 0; !rc && i < in->npaths; i++)
        rc = add_path(out, in->paths[i], err);
    for (size_t i = 0; !rc && i < in->nkeys; i++)
        rc = push(&out->tags, &out->ntags, in->keys[i], strlen(in->keys[i]));
    if (rc == MC_E_NOMEM)
        mc_err_set(err, rc, "out of memory");
    if (rc)
        mc_invspec_free(out);
    return rc;
}

int mc_invspec_parse(const char *json, size_t len, mc_invspec *out, mc_inval_error *e)
{
    mc_inval in;
    memset(out, 0, sizeof *out);
    int rc = mc_inval_parse(json, len, &in, e);
    if (rc < 0)
        return rc;
    mc_err err = {0};
    rc = mc_invspec_from_inval(&in, out, &err);
    mc_inval_free(&in);
    if (rc == MC_E_INVAL)
        mc_inval_error_set(e, 400, "InvalidPath", "%s", err.msg);
    else if (rc < 0)
        mc_inval_error_set(e, 500, "InternalError", "out of memory");
    return rc;
}

static int copy_list(char **src, size_t n, char ***dst, size_t *dn)
{
    for (size_t i = 0; i < n; i++)
        if (push(dst, dn, src[i], strlen(src[i])) < 0)
            return MC_E_NOMEM;
    return 0;
}

int mc_invspec_copy(const mc_invspec *src, mc_invspec *dst)
{
    memset(dst, 0, sizeof *dst);
    dst->all = src->all;
    dst->soft = src->soft;
    if (copy_list(src->paths, src->npaths, &dst->paths, &dst->npaths) < 0 ||
        copy_list(src->prefixes, src->nprefixes, &dst->prefixes, &dst->nprefixes) < 0 ||
        copy_list(src->tags, src->ntags, &dst->tags, &dst->ntags) < 0) {
        mc_invspec_free(dst);
        return MC_E_NOMEM;
    }
    return 0;
}

int mc_invspec_path_covers(const char *p, const char *keystr)
{
    size_t n = strlen(p);
    return strncmp(keystr, p, n) == 0 && (keystr[n] == '\0' || keystr[n] == '?' || keystr[n] == '\n');
}

int mc_surrogate_keys_each(const char *hdrs, int (*fn)(void *ud, const char *key, size_t len), void *ud)
{
    static const char name[] = "Surrogate-Key:";
    for (const char *p = hdrs; p && *p;) {
        const char *eol = strstr(p, "\r\n");
        const char *end = eol ? eol : p + strlen(p);
        if ((size_t)(end - p) >= sizeof name - 1 && strncasecmp(p, name, sizeof name - 1) == 0) {
            for (const char *t = p + sizeof name - 1; t < end;) {
                while (t < end && (*t == ' ' || *t == '\t'))
                    t++;
                const char *e = t;
                while (e < end && *e != ' ' && *e != '\t')
                    e++;
                if (e > t) {
                    int rc = fn(ud, t, (size_t)(e - t));
                    if (rc)
                        return rc;
                }
                t = e;
            }
        }
        p = eol ? eol + 2 : end;
    }
    return 0;
}

static int tag_in_spec(void *ud, const char *key, size_t len)
{
    const mc_invspec *s = ud;
    for (size_t i = 0; i < s->ntags; i++)
        if (strlen(s->tags[i]) == len && memcmp(s->tags[i], key, len) == 0)
            return 1;
    return 0;
}

int mc_invspec_matches(const mc_invspec *s, const char *keystr, const char *hdrs)
{
    if (s->all)
        return 1;
    for (size_t i = 0; i < s->npaths; i++)
        if (mc_invspec_path_covers(s->paths[i], keystr))
            return 1;
    for (size_t i = 0; i < s->nprefixes; i++)
        if (strncmp(keystr, s->prefixes[i], strlen(s->prefixes[i])) == 0)
            return 1;
    return s->ntags && hdrs && mc_surrogate_keys_each(hdrs, tag_in_spec, (void *)s);
}
