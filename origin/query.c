/* query.c — see query.h. */
#include <stdlib.h>
#include <string.h>
#include "common/buf.h"
#include "common/err.h"
#include "common/path.h"
#include "origin/query.h"

static int decode(const char *s, size_t n, char **out)
{
    mc_buf b = MC_BUF_INIT;
    int rc = mc_path_decode(s, n, &b);
    if (rc == 0)
        *out = mc_buf_steal(&b);
    mc_buf_free(&b);
    return rc == 0 && !*out ? MC_E_NOMEM : rc;
}

int mc_query_parse(mc_query *q, const char *raw)
{
    q->v = NULL;
    q->n = 0;
    for (const char *p = raw ? raw : ""; *p;) {
        size_t n = strcspn(p, "&");
        if (n > 0) {
            const char *eq = memchr(p, '=', n);
            size_t nl = eq ? (size_t)(eq - p) : n;
            mc_query_pair pair = {NULL, NULL};
            mc_query_pair *v = realloc(q->v, (q->n + 1) * sizeof *v);
            if (!v)
                return MC_E_NOMEM;
            q->v = v;
            int rc = decode(p, nl, &pair.name);
            if (rc == 0)
                rc = eq ? decode(eq + 1, n - nl - 1, &pair.value) : decode("", 0, &pair.value);
            if (rc < 0) {
                free(pair.name);
                free(pair.value);
                return rc;
            }
            q->v[q->n++] = pair;
        }
        p += n;
        if (*p == '&')
            p++;
    }
    return 0;
}

void mc_query_free(mc_query *q)
{
    for (size_t i = 0; i < q->n; i++) {
        free(q->v[i].name);
        free(q->v[i].value);
    }
    free(q->v);
    q->v = NULL;
    q->n = 0;
}

const char *mc_query_get(const mc_query *q, const char *name)
{
    for (size_t i = 0; i < q->n; i++)
        if (strcmp(q->v[i].name, name) == 0)
            return q->v[i].value;
    return NULL;
}

bool mc_query_has_other(const mc_query *q, const char *const *allowed)
{
    for (size_t i = 0; i < q->n; i++) {
        bool ok = false;
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = strcmp(q->v[i].name, *a) == 0;
        if (!ok)
            return true;
    }
    return false;
}
