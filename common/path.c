/* path.c — see path.h. */
#include <stdlib.h>
#include <string.h>
#include "common/err.h"
#include "common/path.h"

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int is_unreserved(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

/* RFC 3986 pchar minus unreserved and pct-encoded, plus '/'. */
static int is_path_other(int c)
{
    switch (c) {
    case '!': case '$': case '&': case '\'': case '(': case ')': case '*': case '+': case ',': case ';':
    case '=': case ':': case '@': case '/':
        return 1;
    default:
        return 0;
    }
}

int mc_path_decode(const char *in, size_t len, mc_buf *out)
{
    mc_buf_reset(out);
    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)in[i];
        if (c == '%') {
            if (i + 2 >= len)
                return MC_E_INVAL;
            int h = hexval((unsigned char)in[i + 1]), l = hexval((unsigned char)in[i + 2]);
            if (h < 0 || l < 0)
                return MC_E_INVAL;
            c = h * 16 + l;
            i += 2;
        }
        if (c == 0)
            return MC_E_INVAL;
        if (mc_buf_putc(out, (char)c) < 0)
            return MC_E_NOMEM;
    }
    if (mc_buf_reserve(out, 0) < 0)
        return MC_E_NOMEM;
    return 0;
}

/* First pass: canonical escapes. */
static int canon_escapes(const char *in, size_t len, mc_buf *out)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)in[i];
        if (c == '%') {
            if (i + 2 >= len || hexval((unsigned char)in[i + 1]) < 0 ||
                hexval((unsigned char)in[i + 2]) < 0)
                return MC_E_INVAL;
            c = hexval((unsigned char)in[i + 1]) * 16 + hexval((unsigned char)in[i + 2]);
            i += 2;
            if (c == 0)
                return MC_E_INVAL;
            if (is_unreserved(c)) {
                if (mc_buf_putc(out, (char)c) < 0)
                    return MC_E_NOMEM;
                continue;
            }
        } else if (c < 0x20 || c == 0x7f) {
            return MC_E_INVAL;
        } else if (is_unreserved(c) || is_path_other(c)) {
            if (mc_buf_putc(out, (char)c) < 0)
                return MC_E_NOMEM;
            continue;
        }
        char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
        if (mc_buf_append(out, esc, 3) < 0)
            return MC_E_NOMEM;
    }
    return 0;
}

int mc_path_normalize(const char *in, size_t len, mc_buf *out)
{
    mc_buf_reset(out);
    if (len == 0 || in[0] != '/')
        return MC_E_INVAL;
    /* The common case, already normal: only characters kept as they are, no
     * escape and no segment starting with a dot; the output is the input
     * (what the passes below would produce, for a fraction of the work). */
    size_t q = 0;
    while (q < len && in[q] != '%' && (is_unreserved((unsigned char)in[q]) || is_path_other((unsigned char)in[q])) &&
           !(in[q] == '/' && q + 1 < len && in[q + 1] == '.'))
        q++;
    if (q == len)
        return mc_buf_append(out, in, len) < 0 ? MC_E_NOMEM : 0;
    mc_buf tmp = MC_BUF_INIT;
    int rc = canon_escapes(in + 1, len - 1, &tmp);
    if (rc < 0 || mc_buf_reserve(&tmp, 0) < 0) {
        mc_buf_free(&tmp);
        return rc < 0 ? rc : MC_E_NOMEM;
    }
    /* Dot-segment removal (RFC 3986 5.2.4) over the segments after the root;
     * empty segments ("//") are kept: they are distinct object keys in S3. */
    size_t nseg = 1;
    for (size_t i = 0; i < tmp.len; i++)
        nseg += tmp.data[i] == '/';
    const char **seg = malloc(nseg * sizeof *seg);
    size_t *seglen = malloc(nseg * sizeof *seglen);
    if (!seg || !seglen) {
        free(seg);
        free(seglen);
        mc_buf_free(&tmp);
        return MC_E_NOMEM;
    }
    size_t nout = 0, start = 0;
    for (size_t k = 0; k < nseg; k++) {
        size_t end = start;
        while (end < tmp.len && tmp.data[end] != '/')
            end++;
        const char *s = tmp.data + start;
        size_t sl = end - start;
        int last = (k == nseg - 1);
        if (sl == 1 && s[0] == '.') {
            if (last)
                seg[nout] = s, seglen[nout++] = 0;
        } else if (sl == 2 && s[0] == '.' && s[1] == '.') {
            if (nout > 0)
                nout--;
            if (last)
                seg[nout] = s, seglen[nout++] = 0;
        } else {
            seg[nout] = s;
            seglen[nout++] = sl;
        }
        start = end + 1;
    }
    rc = 0;
    if (nout == 0)
        rc = mc_buf_putc(out, '/');
    for (size_t k = 0; k < nout && rc == 0; k++) {
        rc = mc_buf_putc(out, '/');
        if (rc == 0)
            rc = mc_buf_append(out, seg[k], seglen[k]);
    }
    free(seg);
    free(seglen);
    mc_buf_free(&tmp);
    return rc < 0 ? MC_E_NOMEM : 0;
}
