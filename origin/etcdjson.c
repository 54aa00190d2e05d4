/* etcdjson.c — see etcdjson.h. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include "common/err.h"
#include "origin/etcdjson.h"

int mc_etcd_b64(const void *p, size_t n, mc_buf *out)
{
    size_t need = 4 * ((n + 2) / 3) + 1;
    int rc = mc_buf_reserve(out, need);
    if (rc < 0)
        return rc;
    int w = EVP_EncodeBlock((unsigned char *)out->data + out->len, p, (int)n);
    out->len += (size_t)w;
    out->data[out->len] = '\0';
    return 0;
}

int mc_etcd_unb64(const char *s, mc_buf *out)
{
    mc_buf_reset(out);
    size_t n = strlen(s);
    if (n % 4 != 0)
        return MC_E_INVAL;
    int rc = mc_buf_reserve(out, n / 4 * 3 + 1);
    if (rc < 0)
        return rc;
    if (n == 0) {
        out->data[0] = '\0';
        return 0;
    }
    int w = EVP_DecodeBlock((unsigned char *)out->data, (const unsigned char *)s, (int)n);
    if (w < 0)
        return MC_E_INVAL;
    /* EVP_DecodeBlock counts the padding as zero bytes */
    size_t pad = (s[n - 1] == '=') + (n > 1 && s[n - 2] == '=');
    out->len = (size_t)w - pad;
    out->data[out->len] = '\0';
    return 0;
}

int mc_etcd_prefix_end(const char *prefix, mc_buf *out)
{
    mc_buf_reset(out);
    size_t n = strlen(prefix);
    while (n > 0 && (unsigned char)prefix[n - 1] == 0xff)
        n--;
    if (n == 0)   /* every key: etcd's "\0" range end */
        return mc_buf_append(out, "", 1) < 0 ? MC_E_NOMEM : 0;
    int rc = mc_buf_append(out, prefix, n);
    if (rc == 0) {
        out->data[n - 1] = (char)((unsigned char)out->data[n - 1] + 1);
        rc = mc_buf_putc(out, '\0');
        out->len = n;
    }
    return rc;
}

int64_t mc_etcd_int(const json_t *o, const char *field)
{
    const json_t *v = json_object_get(o, field);
    if (json_is_integer(v))
        return (int64_t)json_integer_value(v);
    const char *s = json_string_value(v);
    if (!s)
        return 0;
    char *end;
    long long x = strtoll(s, &end, 10);
    return *end == '\0' ? (int64_t)x : 0;
}

static json_t *b64_string(const char *s, size_t n)
{
    mc_buf b = MC_BUF_INIT;
    json_t *j = NULL;
    if (mc_etcd_b64(s, n, &b) == 0)
        j = json_stringn(b.data, b.len);
    mc_buf_free(&b);
    return j;
}

static json_t *int_string(int64_t v)
{
    char s[24];
    snprintf(s, sizeof s, "%" PRId64, v);
    return json_string(s);
}

/* Set o[name] = v (consumed); false when v is NULL or the set fails. */
static bool set(json_t *o, const char *name, json_t *v)
{
    return v && json_object_set_new(o, name, v) == 0;
}

json_t *mc_etcd_range(const char *key, const char *range_end, int64_t limit, bool descend)
{
    json_t *o = json_object();
    bool ok = o && set(o, "key", b64_string(key, strlen(key)));
    /* "" + NUL: the "\0" range end (every key from key on) */
    if (ok && range_end)
        ok = set(o, "range_end", b64_string(range_end, range_end[0] ? strlen(range_end) : 1));
    if (ok && limit > 0)
        ok = set(o, "limit", int_string(limit));
    if (ok && descend)
        ok = set(o, "sort_order", json_string("DESCEND")) &&
             set(o, "sort_target", json_string("KEY"));
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *mc_etcd_op_put(const char *key, const char *value, int64_t lease)
{
    json_t *p = json_object();
    bool ok = p && set(p, "key", b64_string(key, strlen(key))) &&
              set(p, "value", b64_string(value, strlen(value)));
    if (ok && lease)
        ok = set(p, "lease", int_string(lease));
    json_t *o = ok ? json_object() : NULL;
    if (!o || !set(o, "request_put", p)) {
        if (!o)
            json_decref(p);
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *mc_etcd_op_range(json_t *range)
{
    json_t *o = range ? json_object() : NULL;
    if (!o || !set(o, "request_range", range)) {
        if (!o)
            json_decref(range);
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *mc_etcd_op_delete(const char *key, const char *range_end)
{
    json_t *d = json_object();
    bool ok = d && set(d, "key", b64_string(key, strlen(key)));
    if (ok && range_end)
        ok = set(d, "range_end", b64_string(range_end, range_end[0] ? strlen(range_end) : 1));
    json_t *o = ok ? json_object() : NULL;
    if (!o || !set(o, "request_delete_range", d)) {
        if (!o)
            json_decref(d);
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *mc_etcd_cmp(const char *key, const char *target, const char *result, int64_t number,
                    const char *value)
{
    json_t *o = json_object();
    bool ok = o && set(o, "key", b64_string(key, strlen(key))) &&
              set(o, "target", json_string(target)) && set(o, "result", json_string(result));
    if (ok && strcmp(target, "VALUE") == 0)
        ok = set(o, "value", b64_string(value ? value : "", value ? strlen(value) : 0));
    else if (ok && strcmp(target, "MOD") == 0)
        ok = set(o, "mod_revision", int_string(number));
    else if (ok && strcmp(target, "VERSION") == 0)
        ok = set(o, "version", int_string(number));
    else if (ok && strcmp(target, "CREATE") == 0)
        ok = set(o, "create_revision", int_string(number));
    else
        ok = false;
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *mc_etcd_txn(json_t *compare, json_t *success, json_t *failure)
{
    json_t *o = json_object();
    bool ok = o != NULL;
    if (compare)
        ok = ok ? set(o, "compare", compare) : (json_decref(compare), false);
    if (success)
        ok = ok ? set(o, "success", success) : (json_decref(success), false);
    if (failure)
        ok = ok ? set(o, "failure", failure) : (json_decref(failure), false);
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

void mc_etcd_kvs_free(mc_etcd_kv *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++) {
        free(v[i].key);
        free(v[i].value);
    }
    free(v);
}

int mc_etcd_kvs(const json_t *range_answer, mc_etcd_kv **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    const json_t *a = json_object_get(range_answer, "kvs");
    if (!a)
        return 0;
    if (!json_is_array(a))
        return MC_E_INVAL;
    size_t cnt = json_array_size(a);
    if (cnt == 0)
        return 0;
    mc_etcd_kv *v = calloc(cnt, sizeof *v);
    if (!v)
        return MC_E_NOMEM;
    mc_buf b = MC_BUF_INIT;
    int rc = 0;
    size_t i;
    for (i = 0; i < cnt && rc == 0; i++) {
        const json_t *kv = json_array_get(a, i);
        const char *k = json_string_value(json_object_get(kv, "key"));
        const char *val = json_string_value(json_object_get(kv, "value"));
        if (!k) {
            rc = MC_E_INVAL;
            break;
        }
        if ((rc = mc_etcd_unb64(k, &b)) < 0)
            break;
        v[i].key = strdup(b.data);
        if ((rc = mc_etcd_unb64(val ? val : "", &b)) < 0)
            break;
        v[i].value = malloc(b.len + 1);
        if (!v[i].key || !v[i].value) {
            rc = MC_E_NOMEM;
            break;
        }
        memcpy(v[i].value, b.data, b.len + 1);
        v[i].vlen = b.len;
        v[i].mod_revision = mc_etcd_int(kv, "mod_revision");
        v[i].version = mc_etcd_int(kv, "version");
        v[i].lease = mc_etcd_int(kv, "lease");
    }
    mc_buf_free(&b);
    if (rc < 0) {
        mc_etcd_kvs_free(v, cnt);
        return rc;
    }
    *out = v;
    *n = cnt;
    return 0;
}

const json_t *mc_etcd_txn_range(const json_t *txn_answer, size_t i)
{
    const json_t *r = json_array_get(json_object_get(txn_answer, "responses"), i);
    return json_object_get(r, "response_range");
}
