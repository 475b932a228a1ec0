/* hp_csum.h — Internet checksums: full sums, and incremental updates after a rewrite.
 *
 * Incremental updates follow RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), which, unlike the
 * older RFC 1141 form, never turns a correct checksum into 0x0000 where a full
 * recomputation would give 0xFFFF. Fields are updated as 16-bit words in network order;
 * a 32-bit address is two words.
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

/* One's-complement sum of a buffer as big-endian 16-bit words (odd byte padded). */
static inline uint32_t hp_csum_add(uint32_t sum, const uint8_t *p, uint32_t len)
{
    while (len >= 2) {
        sum += (uint32_t)((p[0] << 8) | p[1]);
        p += 2;
        len -= 2;
    }
    if (len)
        sum += (uint32_t)(p[0] << 8);
    return sum;
}

static inline uint16_t hp_csum_fold(uint32_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)sum;
}

/* Finished checksum (complemented) of a buffer. */
static inline uint16_t hp_csum(const uint8_t *p, uint32_t len)
{
    return (uint16_t)~hp_csum_fold(hp_csum_add(0, p, len));
}

/* RFC 1624: checksum field `check` (host order) after one 16-bit word went old → new. */
static inline uint16_t hp_csum_update16(uint16_t check, uint16_t old, uint16_t new_)
{
    uint32_t sum = (uint16_t)~check;
    sum += (uint16_t)~old;
    sum += new_;
    return (uint16_t)~hp_csum_fold(sum);
}

static inline uint16_t hp_csum_update32(uint16_t check, uint32_t old, uint32_t new_)
{
    uint32_t sum = (uint16_t)~check;
    sum += (uint16_t)~(old >> 16);
    sum += (uint16_t)~(old & 0xffff);
    sum += new_ >> 16;
    sum += new_ & 0xffff;
    return (uint16_t)~hp_csum_fold(sum);
}

/* Pseudo-header sum for TCP/UDP over IPv4 (not complemented, not folded). */
static inline uint32_t hp_pseudo_sum(uint32_t sip, uint32_t dip, uint8_t proto, uint32_t l4_len)
{
    return (sip >> 16) + (sip & 0xffff) + (dip >> 16) + (dip & 0xffff) + proto + l4_len;
}

#endif
