/* range.c — see range.h. RFC 9110 14.1.1 grammar:
 *   ranges-specifier = "bytes=" 1#( int-range / suffix-range ) */
#include <ctype.h>
#include <string.h>
#include <strings.h>
#include "common/err.h"
#include "common/range.h"

static const char *skip_ows(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* Digits into v; 0 on success, -1 when none or overflow. */
static int parse_u64(const char **pp, uint64_t *v)
{
    const char *p = *pp;
    uint64_t x = 0;
    if (!isdigit((unsigned char)*p))
        return -1;
    while (isdigit((unsigned char)*p)) {
        if (x > (UINT64_MAX - 9) / 10)
            return -1;
        x = x * 10 + (uint64_t)(*p++ - '0');
    }
    *pp = p;
    *v = x;
    return 0;
}

int mc_range_parse(const char *hdr, uint64_t size, mc_range *out, int max)
{
    if (!hdr)
        return 0;
    const char *p = skip_ows(hdr);
    if (strncasecmp(p, "bytes", 5) != 0)
        return 0;
    p = skip_ows(p + 5);
    if (*p++ != '=')
        return 0;
    int n = 0, any = 0, empty_suffix = 0;
    for (;;) {
        p = skip_ows(p);
        if (*p == ',') {     /* empty list elements are allowed by 1#rule */
            p++;
            continue;
        }
        if (!*p)
            break;
        uint64_t first = 0, last = 0;
        int has_first = 0, has_last = 0;
        if (*p != '-') {
            if (parse_u64(&p, &first) < 0)
                return 0;
            has_first = 1;
        }
        if (*p++ != '-')
            return 0;
        if (isdigit((unsigned char)*p)) {
            if (parse_u64(&p, &last) < 0)
                return 0;
            has_last = 1;
        }
        if (!has_first && !has_last)
            return 0;
        if (has_first && has_last && last < first)
            return 0;        /* invalid int-range: the whole header is invalid */
        any = 1;
        mc_range r;
        int ok = 0;
        if (has_first) {
            if (first < size) {
                r.start = first;
                r.end = (has_last && last < size) ? last : size - 1;
                ok = 1;
            }
        } else if (last > 0 && size > 0) {
            r.start = last >= size ? 0 : size - last;
            r.end = size - 1;
            ok = 1;
        } else if (last > 0) {
            empty_suffix = 1;
        }
        if (ok) {
            if (n >= max)
                return MC_E_TOOBIG;
            out[n++] = r;
        }
        p = skip_ows(p);
        if (*p == ',')
            p++;
        else if (*p)
            return 0;
    }
    if (!any)
        return 0;
    /* RFC 9110 14.1.1: on a zero-length representation a non-zero suffix-range
     * is satisfiable, yet selects no byte we could return: serve it whole. */
    if (n == 0 && empty_suffix)
        return 0;
    return n > 0 ? n : MC_E_UNSATISFIABLE;
}
