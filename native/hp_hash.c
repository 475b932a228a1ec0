/* hp_hash.c — the engine's hash functions, shared by the flow table, the service index,
 * Maglev and the translation kinds, so that none of them takes its hash from another.
 *
 * hp_mix64 is the data path's hash (two words in, one multiply-xorshift finaliser);
 * hp_hash32 hashes bytes for the control path, where speed does not matter.
 */
#include "hp_internal.h"

/* Two 64-bit words → 64 bits (the finaliser of MurmurHash3 / splitmix64). */
uint64_t hp_mix64(uint64_t a, uint64_t b, uint32_t seed)
{
    uint64_t h = a * 0x9e3779b97f4a7c15ull ^ (b + seed) * 0xc2b2ae3d27d4eb4full;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

uint32_t hp_mix32(uint64_t a, uint64_t b, uint32_t seed) { return (uint32_t)hp_mix64(a, b, seed); }

uint32_t hp_hash32(const void *data, size_t len, uint32_t seed)
{
    /* FNV-1a then mixed: control-path only, where speed does not matter. */
    const uint8_t *p = data;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return hp_mix32(h, len, seed);
}
