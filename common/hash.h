/* hash.h — XXH3 hashes: 128-bit cache keys, 64-bit body checksums. */
#ifndef MC_HASH_H
#define MC_HASH_H

#include <stddef.h>
#include <stdint.h>

typedef struct mc_hash128 {
    uint64_t hi, lo;
} mc_hash128;

/* XXH3-128 of the normalised key string. */
mc_hash128 mc_hash_key(const void *s, size_t n);
/* Big-endian bytes, so keys sort the same in LMDB as numerically. */
void mc_hash128_bytes(mc_hash128 h, unsigned char out[16]);
void mc_hash128_hex(mc_hash128 h, char out[33]);
/* XXH3-64 checksum of a chunk of body bytes. */
uint64_t mc_hash_checksum(const void *p, size_t n);

#endif
