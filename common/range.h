/* range.h — the Range request header (RFC 9110 section 14.2), bytes only. */
#ifndef MC_RANGE_H
#define MC_RANGE_H

#include <stdint.h>

typedef struct mc_range {
    uint64_t start;   /* first byte */
    uint64_t end;     /* last byte, inclusive, < size */
} mc_range;

/* Parse hdr against an object of `size` bytes into at most max ranges.
 * Returns the number of satisfiable ranges (>= 1);
 *   0                   the header is not a valid bytes range set: ignore it
 *                       (serve 200), as RFC 9110 14.2 allows;
 *   MC_E_UNSATISFIABLE  valid, but no range overlaps the object (416);
 *   MC_E_TOOBIG         more than max ranges (the caller may ignore or refuse).
 * Suffix ranges ("-500") and open ranges ("9500-") are resolved against size. */
int mc_range_parse(const char *hdr, uint64_t size, mc_range *out, int max);

#endif
