/* hash.c — see hash.h. */
#include <xxhash.h>
#include "common/buf.h"
#include "common/hash.h"

mc_hash128 mc_hash_key(const void *s, size_t n)
{
    XXH128_hash_t h = XXH3_128bits(s, n);
    return (mc_hash128){h.high64, h.low64};
}

void mc_hash128_bytes(mc_hash128 h, unsigned char out[16])
{
    for (int i = 0; i < 8; i++) {
        out[i] = (unsigned char)(h.hi >> (56 - 8 * i));
        out[8 + i] = (unsigned char)(h.lo >> (56 - 8 * i));
    }
}

void mc_hash128_hex(mc_hash128 h, char out[33])
{
    unsigned char b[16];
    mc_hash128_bytes(h, b);
    mc_hex(b, 16, out);
}

uint64_t mc_hash_checksum(const void *p, size_t n) { return XXH3_64bits(p, n); }
