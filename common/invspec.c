/* invspec.c — see invspec.h. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
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

static int bad(const char **code, const char *c, mc_err *err, const char *fmt, const char *arg)
{
    *code = c;
    return mc_err_set(err, MC_E_INVAL, fmt, arg);
}

/* One viewer path: "/p", "/p?q" or "/prefix*". */
static int add_path(mc_invspec *out, const char *s, const char **code, mc_err *err)
{
    size_t len = strlen(s);
    if (len == 0 || len > MC_INVSPEC_MAX_STRING)
        return bad(code, "InvalidPath", err, "path %s: must be 1 to 1024 bytes", len ? "(too long)" : "\"\"");
    if (s[0] != '/')
        return bad(code, "InvalidPath", err, "path \"%.200s\" does not start with '/'", s);
    const char *star = strchr(s, '*');
    if (star && star != s + len - 1)
        return bad(code, "InvalidPath", err, "path \"%.200s\": '*' is allowed only at the end (a prefix)", s);
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return bad(code, "InvalidPath", err, "path \"%.200s\" contains a control character", s);
    const char *q = strchr(s, '?');
    if (star && q)
        return bad(code, "InvalidPath", err, "path \"%.200s\": a prefix cannot carry a query", s);
    size_t plen = star ? len - 1 : q ? (size_t)(q - s) : len;
    mc_buf norm = MC_BUF_INIT;
    if (mc_path_normalize(s, plen, &norm) < 0) {
        mc_buf_free(&norm);
        return bad(code, "InvalidPath", err, "path \"%.200s\" is not a valid URL path", s);
    }
    int rc = 0;
    if (q && (mc_buf_append(&norm, q, len - plen) < 0))
        rc = MC_E_NOMEM;
    if (!rc)
        rc = star ? push(&out->prefixes, &out->nprefixes, norm.data, norm.len)
                  : push(&out->paths, &out->npaths, norm.data, norm.len);
    mc_buf_free(&norm);
    return rc;
}

static int add_tag(mc_invspec *out, const char *s, const char **code, mc_err *err)
{
    size_t len = strlen(s);
    if (len == 0 || len > MC_INVSPEC_MAX_STRING)
        return bad(code, "InvalidSurrogateKey", err, "surrogate key %s: must be 1 to 1024 bytes",
                   len ? "(too long)" : "\"\"");
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            return bad(code, "InvalidSurrogateKey", err,
                       "surrogate key \"%.200s\" contains a space or control character", s);
    return push(&out->tags, &out->ntags, s, len);
}

int mc_invspec_from_json(json_t *obj, int allow_extra, mc_invspec *out, const char **code, mc_err *err)
{
    memset(out, 0, sizeof *out);
    const char *dummy;
    if (!code)
        code = &dummy;
    if (!json_is_object(obj))
        return bad(code, "MalformedJSON", err, "the body must be a JSON object%s", "");
    const char *name;
    json_t *v;
    int rc = 0;
    size_t items = 0;
    json_object_foreach(obj, name, v) {
        int is_paths = strcmp(name, "paths") == 0, is_keys = strcmp(name, "surrogate_keys") == 0;
        if (is_paths || is_keys) {
            if (!json_is_array(v)) {
                rc = bad(code, "MalformedJSON", err, "\"%s\" must be an array of strings", name);
                break;
            }
            size_t i;
            json_t *e;
            json_array_foreach(v, i, e) {
                if (!json_is_string(e)) {
                    rc = bad(code, "MalformedJSON", err, "\"%s\" must be an array of strings", name);
                    break;
                }
                if (++items > MC_INVSPEC_MAX_ITEMS) {
                    rc = bad(code, "TooManyItems", err, "more than %s paths and surrogate keys", "3000");
                    break;
                }
                rc = is_paths ? add_path(out, json_string_value(e), code, err)
                              : add_tag(out, json_string_value(e), code, err);
                if (rc)
                    break;
            }
            if (rc)
                break;
        } else if (strcmp(name, "all") == 0 || strcmp(name, "soft") == 0) {
            if (!json_is_boolean(v)) {
                rc = bad(code, "MalformedJSON", err, "\"%s\" must be true or false", name);
                break;
            }
            if (name[0] == 'a')
                out->all = json_is_true(v);
            else
                out->soft = json_is_true(v);
        } else if (!allow_extra) {
            rc = bad(code, "UnknownField", err,
                     "unknown field \"%.100s\" (expected paths, surrogate_keys, all, soft)", name);
            break;
        }
    }
    if (!rc && mc_invspec_items(out) == 0)
        rc = bad(code, "EmptyInvalidation", err,
                 "nothing to invalidate: give paths, surrogate_keys or \"all\": true%s", "");
    if (rc)
        mc_invspec_free(out);
    return rc;
}

int mc_invspec_parse(const char *json, size_t len, mc_invspec *out, const char **code, mc_err *err)
{
    memset(out, 0, sizeof *out);
    json_error_t je;
    json_t *root = json_loadb(json ? json : "", len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        if (code)
            *code = "MalformedJSON";
        return mc_err_set(err, MC_E_INVAL, "malformed JSON at line %d column %d: %s", je.line, je.column,
                          je.text);
    }
    int rc = mc_invspec_from_json(root, 0, out, code, err);
    json_decref(root);
    return rc;
}

int mc_invspec_to_json(const mc_invspec *s, mc_buf *out)
{
    json_t *o = json_object(), *paths = json_array(), *tags = json_array();
    int rc = o && paths && tags ? 0 : MC_E_NOMEM;
    for (size_t i = 0; !rc && i < s->npaths; i++)
        rc = json_array_append_new(paths, json_string(s->paths[i]));
    for (size_t i = 0; !rc && i < s->nprefixes; i++) {
        mc_buf p = MC_BUF_INIT;
        if (mc_buf_puts(&p, s->prefixes[i]) < 0 || mc_buf_putc(&p, '*') < 0)
            rc = MC_E_NOMEM;
        else
            rc = json_array_append_new(paths, json_string(p.data));
        mc_buf_free(&p);
    }
    for (size_t i = 0; !rc && i < s->ntags; i++)
        rc = json_array_append_new(tags, json_string(s->tags[i]));
    if (!rc) {
        json_object_set_new(o, "paths", paths);
        json_object_set_new(o, "surrogate_keys", tags);
        paths = tags = NULL;
        json_object_set_new(o, "all", json_boolean(s->all));
        json_object_set_new(o, "soft", json_boolean(s->soft));
        char *text = json_dumps(o, JSON_COMPACT);
        rc = text && mc_buf_puts(out, text) == 0 ? 0 : MC_E_NOMEM;
        free(text);
    }
    json_decref(paths);
    json_decref(tags);
    json_decref(o);
    return rc ? MC_E_NOMEM : 0;
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
