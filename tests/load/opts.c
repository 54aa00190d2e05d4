/* opts.c — command-line value parsers; see opts.h. */
#include "tests/load/opts.h"

#include "common/err.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int mc_opt_u64(const char *s, uint64_t max, uint64_t *out)
{
    if (s == NULL || *s < '0' || *s > '9')
        return MC_E_INVAL;
    uint64_t v = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (v > (max - (uint64_t)(*s - '0')) / 10)
            return MC_E_INVAL;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    if (*s != '\0')
        return MC_E_INVAL;
    *out = v;
    return 0;
}

/* strtod without locale surprises for our inputs; end receives the rest. */
static int number(const char *s, double *v, char **end)
{
    if (s == NULL || !((*s >= '0' && *s <= '9') || *s == '.'))
        return MC_E_INVAL;
    errno = 0;
    *v = strtod(s, end);
    if (errno != 0 || *end == s || !isfinite(*v))
        return MC_E_INVAL;
    return 0;
}

int mc_opt_double(const char *s, double lo, double hi, double *out)
{
    double v;
    char *end;
    if (number(s, &v, &end) < 0 || *end != '\0' || v < lo || v > hi)
        return MC_E_INVAL;
    *out = v;
    return 0;
}

int mc_opt_duration_us(const char *s, uint64_t *out)
{
    static const struct { const char *unit; double us; } units[] = {
        {"", 1e6}, {"us", 1}, {"ms", 1e3}, {"s", 1e6}, {"m", 60e6}, {"h", 3600e6},
    };
    double v;
    char *end;
    if (number(s, &v, &end) < 0)
        return MC_E_INVAL;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(end, units[i].unit) != 0)
            continue;
        double us = v * units[i].us;
        if (us > 30.0 * 86400e6)
            return MC_E_INVAL;
        *out = (uint64_t)llround(us);
        return 0;
    }
    return MC_E_INVAL;
}

int mc_opt_bytes(const char *s, uint64_t *out)
{
    if (s == NULL || *s < '0' || *s > '9')
        return MC_E_INVAL;
    uint64_t v = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (v > (UINT64_MAX >> 42))
            return MC_E_INVAL;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    int shift = 0;
    if (*s) {
        const char *sfx = strchr("kKMGT", *s);
        if (sfx == NULL || s[1] != '\0')
            return MC_E_INVAL;
        shift = *sfx == 'T' ? 40 : *sfx == 'G' ? 30 : *sfx == 'M' ? 20 : 10;
    }
    if (shift && v > (UINT64_MAX >> 2) >> shift)
        return MC_E_INVAL;
    *out = v << shift;
    return 0;
}
