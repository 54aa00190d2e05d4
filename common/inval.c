/* inval.c — see inval.h. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "common/err.h"
#include "common/inval.h"

static void free_strings(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void mc_inval_free(mc_inval *in)
{
    if (!in)
        return;
    free_strings(in->paths, in->npaths);
    free_strings(in->keys, in->nkeys);
    in->paths = in->keys = NULL;
    in->npaths = in->nkeys = 0;
}

static int push_string(char ***v, size_t *n, const char *s)
{
    char **nv = realloc(*v, (*n + 1) * sizeof *nv);
    if (!nv)
        return MC_E_NOMEM;
    *v = nv;
    if (!(nv[*n] = strdup(s)))
        return MC_E_NOMEM;
    (*n)++;
    return 0;
}

int mc_inval_add_path(mc_inval *in, const char *path)
{
    return push_string(&in->paths, &in->npaths, path);
}

int mc_inval_add_key(mc_inval *in, const char *key)
{
    return push_string(&in->keys, &in->nkeys, key);
}

int mc_inval_error_set(mc_inval_error *e, int status, const char *code, const char *fmt, ...)
{
    e->status = status;
    e->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return MC_E_INVAL;
}

int mc_inval_load_object(const char *body, size_t len, const char *const *allowed,
                         const char *expected, json_t **out, mc_inval_error *e)
{
    *out = NULL;
    json_error_t jerr;
    json_t *o = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &jerr);
    if (!o)
        return mc_inval_error_set(e, 400, "MalformedJSON",
                                  "The body is not valid JSON: %s (line %d, "
                                  "column %d).", jerr.text, jerr.line, jerr.column);
    if (!json_is_object(o)) {
        json_decref(o);
        return mc_inval_error_set(e, 400, "MalformedJSON", "The body must be a JSON object.");
    }
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) {
        bool ok = false;
        for (size_t i = 0; allowed[i] && !ok; i++)
            ok = strcmp(k, allowed[i]) == 0;
        if (!ok) {
            mc_inval_error_set(e, 400, "UnknownField",
                               "Unknown field \"%.64s\"; expected %s.", k, expected);
            json_decref(o);
            return MC_E_INVAL;
        }
    }
    *out = o;
    return 0;
}

static int check_path(const char *p, size_t len, mc_inval_error *e)
{
    if (len == 0 || p[0] != '/')
        return mc_inval_error_set(e, 400, "InvalidPath",
                                  "Path \"%.100s\" does not start with '/'.", p);
    if (len > MC_INVAL_MAX_STRING)
        return mc_inval_error_set(e, 400, "InvalidPath",
                                  "Path \"%.100s...\" is longer than %d bytes.", p,
                                  MC_INVAL_MAX_STRING);
    const char *star = memchr(p, '*', len);
    if (star && star != p + len - 1)
        return mc_inval_error_set(e, 400, "InvalidPath",
                                  "Path \"%.100s\": '*' is only allowed as the "
                                  "last character (a prefix).", p);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
            return mc_inval_error_set(e, 400, "InvalidPath",
                                      "Path \"%.100s\" contains a control "
                                      "character.", p);
    return 0;
}

static int check_key(const char *k, size_t len, mc_inval_error *e)
{
    if (len == 0)
        return mc_inval_error_set(e, 400, "BadRequest", "A surrogate key is empty.");
    if (len > MC_INVAL_MAX_STRING)
        return mc_inval_error_set(e, 400, "BadRequest",
                                  "Surrogate key \"%.100s...\" is longer than %d "
                                  "bytes.", k, MC_INVAL_MAX_STRING);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)k[i] <= 0x20 || k[i] == 0x7f)
            return mc_inval_error_set(e, 400, "BadRequest",
                                      "Surrogate key \"%.100s\" contains a space or "
                                      "control character (keys are tokens).", k);
    return 0;
}

static int take_strings(json_t *o, const char *field, bool paths, mc_inval *out,
                        mc_inval_error *e)
{
    json_t *a = json_object_get(o, field);
    if (!a || json_is_null(a))
        return 0;
    if (!json_is_array(a))
        return mc_inval_error_set(e, 400, "BadRequest",
                                  "\"%s\" must be an array of strings.", field);
    size_t i;
    json_t *x;
    json_array_foreach(a, i, x) {
        if (!json_is_string(x))
            return mc_inval_error_set(e, 400, "BadRequest",
                                      "\"%s\" must be an array of strings.", field);
    }
    size_t total = out->npaths + out->nkeys + json_array_size(a);
    if (total > MC_INVAL_MAX_ITEMS)
        return mc_inval_error_set(e, 400, "BadRequest",
                                  "Too many paths and surrogate keys: at most %d in "
                                  "one invalidation.", MC_INVAL_MAX_ITEMS);
    json_array_foreach(a, i, x) {
        const char *s = json_string_value(x);
        size_t len = json_string_length(x);
        int rc = paths ? check_path(s, len, e) : check_key(s, len, e);
        if (rc == 0)
            rc = paths ? mc_inval_add_path(out, s) : mc_inval_add_key(out, s);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int take_bool(json_t *o, const char *field, bool *out, mc_inval_error *e)
{
    json_t *b = json_object_get(o, field);
    if (!b || json_is_null(b))
        return 0;
    if (!json_is_boolean(b))
        return mc_inval_error_set(e, 400, "BadRequest", "\"%s\" must be true or false.", field);
    *out = json_is_true(b);
    return 0;
}

int mc_inval_parse(const char *body, size_t len, mc_inval *out, mc_inval_error *e)
{
    static const char *const allowed[] = {"paths", "surrogate_keys", "all", "soft", NULL};
    memset(out, 0, sizeof *out);
    memset(e, 0, sizeof *e);
    json_t *o;
    int rc = mc_inval_load_object(body, len, allowed, "paths, surrogate_keys, all, soft", &o, e);
    if (rc < 0)
        return rc;
    if ((rc = take_strings(o, "paths", true, out, e)) == 0 &&
        (rc = take_strings(o, "surrogate_keys", false, out, e)) == 0 &&
        (rc = take_bool(o, "all", &out->all, e)) == 0 &&
        (rc = take_bool(o, "soft", &out->soft, e)) == 0 &&
        !out->all && out->npaths + out->nkeys == 0)
        rc = mc_inval_error_set(e, 400, "EmptyInvalidation",
                                "Nothing to invalidate: give at least one "
                                "path, one surrogate key, or \"all\": true.");
    json_decref(o);
    if (rc == MC_E_NOMEM)
        mc_inval_error_set(e, 500, "InternalError", "out of memory");
    if (rc < 0)
        mc_inval_free(out);
    return rc;
}

json_t *mc_inval_strings_json(const char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        if (json_array_append_new(a, json_string(v[i])) < 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}
