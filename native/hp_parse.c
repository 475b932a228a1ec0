/* hp_parse.c — parse a frame into struct hp_parsed, checking every bound.
 *
 * Nothing here trusts a length field: each header is checked against what the frame
 * really holds before it is read, and each failure has its own drop reason, so
 * `vpclab stats` says what was wrong with a frame rather than only that it was dropped.
 * Ethernet padding after the IPv4 total length is allowed (short frames are padded to
 * 60 bytes on the wire) and is left in place.
 */
#include "hp_csum.h"
#include "hp_internal.h"

enum hp_drop hp_parse_l2(const uint8_t *d, uint32_t len, uint16_t *l3_off, uint16_t *ethertype)
{
    if (len < 14)
        return HP_DROP_ETH_TRUNCATED;
    uint16_t type = hp_load16(d + 12);
    uint16_t off = 14;
    if (type == ETH_P_8021Q_ || type == ETH_P_8021AD_) {
        /* One tag is tolerated and kept on the way out; ports are single VLANs. */
        if (len < 18)
            return HP_DROP_ETH_TRUNCATED;
        type = hp_load16(d + 16);
        off = 18;
        if (type == ETH_P_8021Q_ || type == ETH_P_8021AD_)
            return HP_DROP_VLAN_STACKED;
    }
    *l3_off = off;
    *ethertype = type;
    return HP_DROP_NONE;
}

/* The L4 ports in the convention of struct hp_parsed, from a header of `avail` bytes
 * (at least 8, which is all an ICMP error must quote). */
static void l4_ports(const uint8_t *l4, uint8_t proto, uint16_t *sport, uint16_t *dport)
{
    if (proto == IPPROTO_ICMP_) {
        uint8_t type = l4[0];
        uint16_t id = hp_load16(l4 + 4);
        *sport = type == 8 ? id : 0;
        *dport = type == 8 ? 0 : id;
    } else {
        *sport = hp_load16(l4);
        *dport = hp_load16(l4 + 2);
    }
}

/* The packet quoted by an ICMP error: its IPv4 header and at least the first 8 bytes of
 * its L4 header (RFC 792), which hold the ports or the echo identifier. */
static enum hp_drop parse_icmp_inner(const uint8_t *d, struct hp_parsed *p)
{
    uint32_t off = p->l4_off + 8u;
    uint32_t end = (uint32_t)p->l3_off + p->ip_len;
    if (off + 20 > end)
        return HP_DROP_ICMP_INNER;
    const uint8_t *ip = d + off;
    uint32_t ihl = (ip[0] & 0x0f) * 4u;
    if ((ip[0] >> 4) != 4 || ihl < 20 || off + ihl + 8 > end)
        return HP_DROP_ICMP_INNER;
    uint8_t proto = ip[9];
    if (proto != IPPROTO_TCP_ && proto != IPPROTO_UDP_ && proto != IPPROTO_ICMP_)
        return HP_DROP_ICMP_INNER;
    const uint8_t *l4 = ip + ihl;
    if (proto == IPPROTO_ICMP_ && l4[0] != 8 && l4[0] != 0)
        return HP_DROP_ICMP_INNER; /* only echo flows exist to be quoted */
    p->in_l3_off = (uint16_t)off;
    p->in_l4_off = (uint16_t)(off + ihl);
    p->in_l4_avail = (uint16_t)(end - (off + ihl));
    p->in_proto = proto;
    p->proto = proto;
    p->sip = hp_load32(ip + 12);
    p->dip = hp_load32(ip + 16);
    l4_ports(l4, proto, &p->sport, &p->dport);
    return HP_DROP_NONE;
}

enum hp_drop hp_parse_ipv4(const uint8_t *d, uint32_t len, struct hp_parsed *p)
{
    uint32_t l3 = p->l3_off;
    if (l3 + 20 > len)
        return HP_DROP_IP_TRUNCATED;
    const uint8_t *ip = d + l3;
    if ((ip[0] >> 4) != 4)
        return HP_DROP_IP_VERSION;
    uint32_t ihl = (ip[0] & 0x0f) * 4u;
    if (ihl < 20)
        return HP_DROP_IP_IHL;
    if (l3 + ihl > len)
        return HP_DROP_IP_TRUNCATED;
    uint32_t tot = hp_load16(ip + 2);
    if (tot < ihl || l3 + tot > len)
        return HP_DROP_IP_LENGTH;
    if (hp_csum(ip, ihl) != 0)
        return HP_DROP_IP_CHECKSUM;
    if (hp_load16(ip + 6) & 0x3fff) /* MF set or a fragment offset */
        return HP_DROP_IP_FRAGMENT;

    p->ip_len = (uint16_t)tot;
    p->l4_off = (uint16_t)(l3 + ihl);
    p->l4_len = (uint16_t)(tot - ihl);
    p->proto = ip[9];
    p->sip = hp_load32(ip + 12);
    p->dip = hp_load32(ip + 16);
    p->tcp_flags = 0;
    p->is_icmp_error = 0;
    const uint8_t *l4 = d + p->l4_off;

    switch (p->proto) {
    case IPPROTO_TCP_: {
        if (p->l4_len < 20)
            return HP_DROP_L4_TRUNCATED;
        uint32_t doff = (l4[12] >> 4) * 4u;
        if (doff < 20 || doff > p->l4_len)
            return HP_DROP_TCP_DOFF;
        p->sport = hp_load16(l4);
        p->dport = hp_load16(l4 + 2);
        p->tcp_seq = hp_load32(l4 + 4);
        p->tcp_flags = l4[13];
        return HP_DROP_NONE;
    }
    case IPPROTO_UDP_: {
        if (p->l4_len < 8)
            return HP_DROP_L4_TRUNCATED;
        uint32_t ulen = hp_load16(l4 + 4);
        if (ulen < 8 || ulen != p->l4_len)
            return HP_DROP_UDP_LENGTH;
        p->sport = hp_load16(l4);
        p->dport = hp_load16(l4 + 2);
        return HP_DROP_NONE;
    }
    case IPPROTO_ICMP_: {
        if (p->l4_len < 8)
            return HP_DROP_L4_TRUNCATED;
        p->icmp_type = l4[0];
        if (p->icmp_type == 8 || p->icmp_type == 0) {
            l4_ports(l4, IPPROTO_ICMP_, &p->sport, &p->dport);
            return HP_DROP_NONE;
        }
        if (p->icmp_type == 3 || p->icmp_type == 11 || p->icmp_type == 12) {
            p->is_icmp_error = 1;
            return parse_icmp_inner(d, p);
        }
        return HP_DROP_ICMP_TYPE;
    }
    default:
        return HP_DROP_PROTO;
    }
}

/* Bytes of IPv4, TCP/UDP headers in front of each segment's payload. */
uint32_t hp_segment_headers(const uint8_t *frame, const struct hp_parsed *p)
{
    uint32_t l4_hdr = p->proto == IPPROTO_TCP_ ? (frame[p->l4_off + 12] >> 4) * 4u : 8u;
    return (uint32_t)(p->l4_off - p->l3_off) + l4_hdr;
}

/* The largest IPv4 packet a frame stands for: itself, or each segment of a GSO frame
 * (what the MTU applies to: the receiving kernel cuts the frame before the wire would). */
uint32_t hp_packet_size(const struct hp_pkt *pkt, const struct hp_parsed *p)
{
    if (HP_LIKELY(!pkt->gso_size))
        return p->ip_len;
    uint32_t seg = hp_segment_headers(pkt->data, p) + pkt->gso_size;
    return seg < p->ip_len ? seg : p->ip_len;
}
