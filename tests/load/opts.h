/* opts.h — command-line value parsers shared by the meshcdn-load commands.
 *
 * Each returns 0 or MC_E_INVAL (the caller names the flag in its message);
 * *out is written only on success. No state; any thread.
 */
#ifndef MC_LOAD_OPTS_H
#define MC_LOAD_OPTS_H

#include <stdint.h>

/* Decimal integer in [0, max]. */
int mc_opt_u64(const char *s, uint64_t max, uint64_t *out);
/* Finite decimal number in [lo, hi] ("0.9", "1e3"). */
int mc_opt_double(const char *s, double lo, double hi, double *out);
/* Duration to microseconds: a number with unit us, ms, s, m or h ("30s",
 * "1.5s", "250ms"); a bare number is seconds. At most 30 days. */
int mc_opt_duration_us(const char *s, uint64_t *out);
/* Byte count with an optional k, M, G, T suffix (powers of 1024): "512M". */
int mc_opt_bytes(const char *s, uint64_t *out);

#endif
