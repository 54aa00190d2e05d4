/* buf.c — see buf.h. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/buf.h"
#include "common/err.h"

int mc_buf_reserve(mc_buf *b, size_t extra)
{
    if (extra > SIZE_MAX - b->len - 1)   /* len + extra + 1 would wrap */
        return MC_E_NOMEM;
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *p = realloc(b->data, cap);
    if (!p)
        return MC_E_NOMEM;
    p[b->len] = '\0';   /* the first allocation must already be a string */
    b->data = p;
    b->cap = cap;
    return 0;
}

int mc_buf_append(mc_buf *b, const void *p, size_t n)
{
    if (mc_buf_reserve(b, n) < 0)
        return MC_E_NOMEM;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int mc_buf_puts(mc_buf *b, const char *s) { return mc_buf_append(b, s, strlen(s)); }
int mc_buf_putc(mc_buf *b, char c) { return mc_buf_append(b, &c, 1); }

size_t mc_fmt_i64(char *out, long long v)
{
    char tmp[24];
    size_t n = 0, k = 0;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do
        tmp[n++] = (char)('0' + u % 10);
    while ((u /= 10) != 0);
    if (v < 0)
        out[k++] = '-';
    while (n)
        out[k++] = tmp[--n];
    return k;
}

int mc_buf_put_i64(mc_buf *b, long long v)
{
    char t[24];
    return mc_buf_append(b, t, mc_fmt_i64(t, v));
}

int mc_buf_printf(mc_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || mc_buf_reserve(b, (size_t)n) < 0)
        return MC_E_NOMEM;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void mc_buf_reset(mc_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void mc_buf_free(mc_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *mc_buf_steal(mc_buf *b)
{
    if (!b->data && mc_buf_reserve(b, 0) < 0)
        return NULL;
    b->data[b->len] = '\0';
    char *p = b->data;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

void mc_hex(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}
