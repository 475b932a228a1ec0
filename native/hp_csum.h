/* hp_csum.h — Internet checksums: full sums, and incremental updates after a rewrite.
 *
 * Incremental updates follow RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), which, unlike the
 * older RFC 1141 form, gives what a full recomputation gives except when the data
 * covered is all zeros (full: 0xFFFF, eqn. 3: 0x0000). A TCP/UDP pseudo-header and an
 * IPv4 header are never all zeros; ICMP can be, and hp_nat.c checks for it. A rewrite of several fields accumulates their deltas
 * (hp_csum_delta*) and applies them with one fold (hp_csum_apply); the address delta of
 * an IPv4 rewrite serves the IPv4 header and the TCP/UDP pseudo-header alike.
 */
#ifndef HP_CSUM_H
#define HP_CSUM_H

#include <stdint.h>
#include <string.h>

static inline uint16_t hp_load16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static inline uint32_t hp_load32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline void hp_store16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline void hp_store32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

static inline uint16_t hp_csum_fold(uint32_t sum)
{
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16); /* twice is enough for any 32-bit sum */
    return (uint16_t)sum;
}

/* One's-complement sum of a buffer as big-endian 16-bit words (odd byte padded), added
 * to `sum`. The buffer is summed 8 bytes at a time in host order and the folded result
 * byte-swapped once, which RFC 1071 §2(B) shows equals the big-endian sum. */
static inline uint32_t hp_csum_add(uint32_t sum, const uint8_t *p, uint32_t len)
{
    uint64_t acc = 0;
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        acc += (w & 0xffffffffu) + (w >> 32);
        p += 8;
        len -= 8;
    }
    while (len >= 2) {
        uint16_t w;
        memcpy(&w, p, 2);
        acc += w;
        p += 2;
        len -= 2;
    }
    if (len) {
        uint16_t w = 0;
        memcpy(&w, p, 1); /* the lone byte is the high byte of a zero-padded word */
        acc += w;
    }
    acc = (acc & 0xffffffffu) + (acc >> 32);
    acc = (acc & 0xffffffffu) + (acc >> 32);
    uint32_t folded = hp_csum_fold((uint32_t)acc);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    folded = __builtin_bswap16((uint16_t)folded);
#endif
    return sum + folded;
}

/* Finished checksum (complemented) of a buffer. */
static inline uint16_t hp_csum(const uint8_t *p, uint32_t len)
{
    return (uint16_t)~hp_csum_fold(hp_csum_add(0, p, len));
}

/* The difference a field makes when it goes old → new, as an unfolded sum to add to
 * ~check (RFC 1624 eqn. 3). A handful of these stay far below 2^32. */
static inline uint32_t hp_csum_delta16(uint16_t old, uint16_t new_)
{
    return (uint16_t)~old + (uint32_t)new_;
}

static inline uint32_t hp_csum_delta32(uint32_t old, uint32_t new_)
{
    return hp_csum_delta16((uint16_t)(old >> 16), (uint16_t)(new_ >> 16)) +
           hp_csum_delta16((uint16_t)old, (uint16_t)new_);
}

/* A checksum field's value after the changes summed in `delta`. */
static inline uint16_t hp_csum_apply(uint16_t check, uint32_t delta)
{
    return (uint16_t)~hp_csum_fold((uint16_t)~check + delta);
}

static inline uint16_t hp_csum_update16(uint16_t check, uint16_t old, uint16_t new_)
{
    return hp_csum_apply(check, hp_csum_delta16(old, new_));
}

static inline uint16_t hp_csum_update32(uint16_t check, uint32_t old, uint32_t new_)
{
    return hp_csum_apply(check, hp_csum_delta32(old, new_));
}

/* Pseudo-header sum for TCP/UDP over IPv4 (not complemented, not folded). */
static inline uint32_t hp_pseudo_sum(uint32_t sip, uint32_t dip, uint8_t proto, uint32_t l4_len)
{
    return (sip >> 16) + (sip & 0xffff) + (dip >> 16) + (dip & 0xffff) + proto + l4_len;
}

#endif
