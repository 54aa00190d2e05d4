/* cc.c — see cc.h. */
#include <ctype.h>
#include <string.h>
#include <strings.h>
#include "common/cc.h"

void mc_cc_init(mc_cc *cc)
{
    memset(cc, 0, sizeof *cc);
    cc->max_age = cc->s_maxage = cc->stale_while_revalidate = cc->stale_if_error = -1;
    cc->min_fresh = cc->max_stale = -1;
}

/* delta-seconds (RFC 9111 1.2.2); quoted values are tolerated as senders use
 * them; anything else reads as 0, the conservative value. */
static int64_t parse_delta(const char *v, size_t n)
{
    if (n >= 2 && v[0] == '"' && v[n - 1] == '"')
        v++, n -= 2;
    if (n == 0)
        return 0;
    int64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)v[i]))
            return 0;
        if (x < 2147483648LL)   /* RFC 9111 1.2.2: cap at 2^31 */
            x = x * 10 + (v[i] - '0');
    }
    return x > 2147483648LL ? 2147483648LL : x;
}

static void set_delta(int64_t *field, int64_t v)
{
    if (*field < 0 || v < *field)
        *field = v;
}

void mc_cc_parse(mc_cc *cc, const char *value)
{
    const char *p = value;
    while (p && *p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *name = p;
        while (*p && *p != '=' && *p != ',' && *p != ' ' && *p != '\t')
            p++;
        size_t nlen = (size_t)(p - name);
        while (*p == ' ' || *p == '\t')
            p++;
        const char *val = NULL;
        size_t vlen = 0;
        if (*p == '=') {
            p++;
            while (*p == ' ' || *p == '\t')
                p++;
            val = p;
            if (*p == '"') {
                p++;
                while (*p && *p != '"')
                    p += (*p == '\\' && p[1]) ? 2 : 1;
                if (*p == '"')
                    p++;
            } else {
                while (*p && *p != ',' && *p != ' ' && *p != '\t')
                    p++;
            }
            vlen = (size_t)(p - val);
        }
        while (*p && *p != ',')
            p++;
        if (nlen == 0)
            continue;
#define IS(s) (nlen == sizeof(s) - 1 && strncasecmp(name, s, nlen) == 0)
        if (IS("max-age"))
            set_delta(&cc->max_age, parse_delta(val, val ? vlen : 0));
        else if (IS("s-maxage"))
            set_delta(&cc->s_maxage, parse_delta(val, val ? vlen : 0));
        else if (IS("stale-while-revalidate"))
            set_delta(&cc->stale_while_revalidate, parse_delta(val, val ? vlen : 0));
        else if (IS("stale-if-error"))
            set_delta(&cc->stale_if_error, parse_delta(val, val ? vlen : 0));
        else if (IS("min-fresh"))
            set_delta(&cc->min_fresh, parse_delta(val, val ? vlen : 0));
        else if (IS("max-stale"))   /* without a value: any staleness (RFC 9111 5.2.1.2) */
            cc->max_stale = val ? parse_delta(val, vlen) : INT64_MAX;
        else if (IS("no-store"))
            cc->no_store = 1;
        else if (IS("no-cache"))
            cc->no_cache = 1;
        else if (IS("private"))
            cc->private_ = 1;
        else if (IS("public"))
            cc->public_ = 1;
        else if (IS("must-revalidate"))
            cc->must_revalidate = 1;
        else if (IS("proxy-revalidate"))
            cc->proxy_revalidate = 1;
        else if (IS("immutable"))
            cc->immutable = 1;
        else if (IS("no-transform"))
            cc->no_transform = 1;
        else if (IS("only-if-cached"))
            cc->only_if_cached = 1;
        else if (IS("must-understand"))
            cc->must_understand = 1;
#undef IS
    }
}
