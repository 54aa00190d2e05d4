/* vary.c — see vary.h. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "common/err.h"
#include "edge/vary.h"

int mc_vary_names(const char *hdrs, char *out, size_t outlen)
{
    mc_buf names = MC_BUF_INIT;
    int any = 0, star = 0;
    for (const char *p = hdrs; p && *p;) {
        const char *eol = strstr(p, "\r\n");
        size_t ll = eol ? (size_t)(eol - p) : strlen(p);
        if (ll > 5 && strncasecmp(p, "Vary:", 5) == 0) {
            for (const char *q = p + 5; q < p + ll;) {
                while (q < p + ll && (*q == ' ' || *q == '\t' || *q == ','))
                    q++;
                const char *e = q;
                while (e < p + ll && *e != ',' && *e != ' ' && *e != '\t')
                    e++;
                if (e == q)
                    continue;
                if (e - q == 1 && *q == '*')
                    star = 1;
                if (names.len)
                    mc_buf_puts(&names, ", ");
                for (const char *c = q; c < e; c++)
                    mc_buf_putc(&names, (char)tolower((unsigned char)*c));
                any = 1;
                q = e;
            }
        }
        p = eol ? eol + 2 : NULL;
    }
    int rc = star ? -1 : any;
    if (rc == 1 && (names.len >= outlen || !names.data))
        rc = -1;   /* absurdly long: treat as uncacheable rather than truncate */
    if (rc == 1)
        memcpy(out, names.data, names.len + 1);
    mc_buf_free(&names);
    return rc;
}

static int cmp_token(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Accept-Encoding: "gzip, br" and "br,gzip" are one variant. */
static void sort_members(char *v, mc_buf *out)
{
    char *tok[64], *save = NULL;
    int n = 0;
    for (char *t = strtok_r(v, ",", &save); t && n < 64; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ')
            t++;
        size_t l = strlen(t);
        while (l && t[l - 1] == ' ')
            t[--l] = '\0';
        if (*t)
            tok[n++] = t;
    }
    qsort(tok, (size_t)n, sizeof tok[0], cmp_token);
    for (int i = 0; i < n; i++)
        mc_buf_printf(out, "%s%s", i ? "," : "", tok[i]);
}

static int case_insensitive(const char *name)
{
    return strncmp(name, "accept", 6) == 0 || strcmp(name, "origin") == 0;
}

/* The request's value for name, normalised, appended to out. */
static void append_value(const char *name, const char *block, mc_buf *out)
{
    size_t nl = strlen(name);
    mc_buf v = MC_BUF_INIT;
    for (const char *p = block; p && *p;) {
        const char *eol = strstr(p, "\r\n");
        size_t ll = eol ? (size_t)(eol - p) : strlen(p);
        if (ll > nl && p[nl] == ':' && strncasecmp(p, name, nl) == 0) {
            int space = 0;
            for (const char *c = p + nl + 1; c < p + ll; c++) {
                if (*c == ' ' || *c == '\t') {
                    space = v.len > 0;
                    continue;
                }
                if (space)
                    mc_buf_putc(&v, ' ');
                space = 0;
                mc_buf_putc(&v, case_insensitive(name) ? (char)tolower((unsigned char)*c) : *c);
            }
            break;
        }
        p = eol ? eol + 2 : NULL;
    }
    if (v.data && strcmp(name, "accept-encoding") == 0)
        sort_members(v.data, out);
    else if (v.data)
        mc_buf_append(out, v.data, v.len);
    mc_buf_free(&v);
}

int mc_vary_suffix(const char *names, const char *req_block, mc_buf *out)
{
    mc_buf_reset(out);
    mc_buf_putc(out, '\n');
    char name[128];
    for (const char *p = names; *p;) {
        const char *e = strstr(p, ", ");
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l < sizeof name) {
            memcpy(name, p, l);
            name[l] = '\0';
            mc_buf_printf(out, "%s%s=", out->len > 1 ? "\t" : "", name);
            append_value(name, req_block, out);
        }
        p += l + (e ? 2 : 0);
    }
    return out->data ? 0 : MC_E_NOMEM;
}

int mc_vary_req_block(const mc_http_req *req, mc_buf *out)
{
    mc_buf_reset(out);
    for (int i = 0; i < req->nheaders; i++) {
        int first = 1;
        for (int j = 0; j < i; j++)
            if (strcasecmp(req->headers[j].name, req->headers[i].name) == 0)
                first = 0;
        if (!first)
            continue;
        mc_buf_printf(out, "%s: %s", req->headers[i].name, req->headers[i].value);
        for (int j = i + 1; j < req->nheaders; j++)
            if (strcasecmp(req->headers[j].name, req->headers[i].name) == 0)
                mc_buf_printf(out, ", %s", req->headers[j].value);
        mc_buf_puts(out, "\r\n");
    }
    if (!out->data)
        mc_buf_puts(out, "");
    return out->data ? 0 : MC_E_NOMEM;
}
