/* hp_proxy.c — PROXY protocol v2 in front of a flow's first bytes (NLB's target group
 * attribute proxy_protocol_v2, AWS-FACTS §2).
 *
 * The header, as AWS's capture of a PrivateLink flow (100 bytes with a 22-character ID):
 *
 *     0  12  0D 0A 0D 0A 00 0D 0A 51 55 49 54 0A     signature
 *    12   1  21                                     version 2, command PROXY
 *    13   1  11                                     AF_INET, STREAM
 *    14   2  length of the rest, big-endian
 *    16  12  client IP, vip, client port, vport     as the endpoint ENI saw them
 *    28   7  03 00 04 + CRC32C                      over the whole header, its own value zero
 *    35      EA len 01 + ASCII vpce ID              when the service has an endpoint ID
 *     …      04 len + zeros                         NOOP, up to HP_PROXY_PAD_TO bytes in all
 *
 * A service builds its template once (hp_proxy_prepare); a flow's header is the template
 * with its addresses, ports and CRC filled in, so a retransmission gets the same bytes.
 * Headers already in the client's bytes are left alone (they stack, as on AWS).
 *
 * The header is H bytes inserted into the client's stream at S, the sequence number of
 * its first payload byte (its SYN's + 1, kept per flow in struct hp_flow_ext). For the
 * flow's life, with d = seq - S (mod 2^32, signed):
 *
 *     client → backend  d < 0 (the SYN, keepalives)      seq unchanged
 *                       d = 0 with data or a FIN         the header goes in front; seq unchanged
 *                       d = 0, nothing else (an ACK)      unchanged
 *                       d > 0                            seq + H
 *     backend → client  ack and SACK edges v: v - S >= H → v - H; 0 < v - S < H (part of
 *                       the header acknowledged) → S; else unchanged
 *
 * so every segment maps alone, in any order, lost or repeated. Nothing else changes:
 * the backend's own sequence space, windows and timestamps are the same on both sides.
 *
 * Size: the backend's SYN-ACK MSS is lowered by H (hp_process.c), so a client segment
 * plus the header never exceeds what the backend said it can take. A first segment that
 * still does not fit — the service MTU (no MSS option was sent) or the frame's buffer
 * (a GSO frame filling its ring slot) — is trimmed at its tail (and loses its FIN): the
 * backend acknowledges less than was sent, and the client's TCP sends the rest again,
 * as a later segment (shifted, no header). Trimming rather than splitting keeps the
 * engine's one frame in, one frame out; refusing would have the client resend the same
 * segment forever. A SYN with data (TCP Fast Open) is dropped (proxy_syn_data): its data
 * would precede the header; the client resends the data after a plain handshake.
 *
 * Checksums: seq, ack and SACK edits update the TCP checksum incrementally (RFC 1624,
 * over the aligned words around each field), or leave a partial one alone; a segment
 * that gets the header is summed again in full (or its pseudo-header sum recomputed for
 * the new length when it stays partial): one per flow.
 */
#include <string.h>

#include "hp_csum.h"
#include "hp_internal.h"

static const uint8_t signature[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

#define PP2_TYPE_CRC32C 0x03
#define PP2_TYPE_NOOP 0x04
#define PP2_TYPE_AWS 0xea
#define PP2_SUBTYPE_AWS_VPCE_ID 0x01
#define CRC_OFF 31 /* the CRC32C TLV's value, after the 28 fixed bytes and its type, length */

static uint32_t crc32c_table[256];
#if defined(__x86_64__)
static bool have_sse42; /* set with the table: the CPU has the crc32 instruction */
#endif

/* The table of CRC32C (Castagnoli, reflected polynomial 0x82F63B78), built once on the
 * control path (the same values every time, so building it twice is harmless). */
static void crc32c_init(void)
{
#if defined(__x86_64__)
    have_sse42 = __builtin_cpu_supports("sse4.2");
#endif
    if (crc32c_table[1])
        return;
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
        crc32c_table[i] = c;
    }
}

#if defined(__x86_64__)
/* The same CRC with SSE 4.2's crc32 instruction (Castagnoli's polynomial, reflected),
 * eight bytes at a time: about a tenth of the table's time for a 100-byte header. */
__attribute__((target("sse4.2"))) static uint32_t crc32c_sse42(const uint8_t *p, uint32_t len)
{
    uint64_t c = 0xffffffffu;
    for (; len >= 8; p += 8, len -= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c = __builtin_ia32_crc32di(c, w);
    }
    uint32_t c32 = (uint32_t)c;
    while (len--)
        c32 = __builtin_ia32_crc32qi(c32, *p++);
    return c32 ^ 0xffffffffu;
}
#endif

static uint32_t crc32c(const uint8_t *p, uint32_t len)
{
#if defined(__x86_64__)
    if (have_sse42)
        return crc32c_sse42(p, len);
#endif
    uint32_t c = 0xffffffffu;
    while (len--)
        c = crc32c_table[(c ^ *p++) & 0xff] ^ (c >> 8);
    return c ^ 0xffffffffu;
}

/* Checks a PROXY v2 service's configuration and builds its header template. */
int hp_proxy_prepare(struct hp_engine *e, struct hp_service *s)
{
    const struct hp_service_config *c = &s->cfg;
    if (c->proto != IPPROTO_TCP_) {
        hp_set_error(e, "PROXY protocol v2 needs a TCP service, not protocol %u", c->proto);
        return -1;
    }
    size_t n = strnlen(c->vpce_id, sizeof c->vpce_id);
    if (n == sizeof c->vpce_id) {
        hp_set_error(e, "PROXY v2 endpoint ID is longer than %d characters", HP_PROXY_VPCE_ID_MAX);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (c->vpce_id[i] <= ' ' || c->vpce_id[i] > '~') {
            hp_set_error(e, "PROXY v2 endpoint ID has a byte that is not printable ASCII at %zu", i);
            return -1;
        }
    crc32c_init();
    uint8_t *h = s->proxy_hdr;
    memset(h, 0, sizeof s->proxy_hdr);
    memcpy(h, signature, sizeof signature);
    h[12] = 0x21;
    h[13] = 0x11;
    uint32_t len = 28;
    h[len] = PP2_TYPE_CRC32C;
    hp_store16(h + len + 1, 4);
    len += 7;
    if (n) {
        h[len] = PP2_TYPE_AWS;
        hp_store16(h + len + 1, (uint16_t)(1 + n));
        h[len + 3] = PP2_SUBTYPE_AWS_VPCE_ID;
        memcpy(h + len + 4, c->vpce_id, n);
        len += 4 + (uint32_t)n;
    }
    if (len + 3 <= HP_PROXY_PAD_TO) {
        h[len] = PP2_TYPE_NOOP;
        hp_store16(h + len + 1, (uint16_t)(HP_PROXY_PAD_TO - len - 3));
        len = HP_PROXY_PAD_TO;
    }
    hp_store16(h + 14, (uint16_t)(len - 16));
    s->proxy_len = (uint8_t)len;
    return 0;
}

/* Writes flow `f`'s header (service `s`'s template, its tuple and CRC) at `out`; returns
 * its length. */
uint32_t hp_proxy_header(const struct hp_service *s, const struct hp_flow *f, uint8_t *out)
{
    uint32_t len = s->proxy_len;
    memcpy(out, s->proxy_hdr, len);
    hp_store32(out + 16, f->client_ip);
    hp_store32(out + 20, f->vip);
    hp_store16(out + 24, f->client_port);
    hp_store16(out + 26, f->vport);
    hp_store32(out + CRC_OFF, crc32c(out, len));
    return len;
}

/* A new flow of a PROXY v2 service, opened by SYN `p`: its header goes at SYN + 1. */
void hp_proxy_open(struct hp_engine *e, uint32_t slot, const struct hp_parsed *p)
{
    e->ft.slots[slot].flags |= HP_FLOW_PROXY;
    e->ft.ext[slot].proxy_seq = p->tcp_seq + 1;
}

static void edit32(uint8_t *tcp, uint32_t off, uint32_t value, bool csum_full)
{
    uint8_t b[4];
    hp_store32(b, value);
    hp_tcp_edit(tcp, off, b, 4, csum_full);
}

/* A backend-side sequence number (an ack or a SACK edge) as the client knows it. */
static uint32_t to_client(uint32_t v, uint32_t s, uint32_t h)
{
    int32_t d = (int32_t)(v - s);
    return d >= (int32_t)h ? v - h : d > 0 ? s : v;
}

/* The header in front of the segment's payload (the module docstring says when and how). */
static enum hp_drop insert(struct hp_ctx *c, struct hp_pkt *pkt, struct hp_parsed *p,
                           const struct hp_service *s, const struct hp_flow *f, uint32_t doff,
                           uint32_t payload, bool csum_full)
{
    uint8_t *d = pkt->data, *ip = d + p->l3_off, *tcp = d + p->l4_off;
    uint32_t h = s->proxy_len;
    uint32_t cap = pkt->cap > pkt->len ? pkt->cap : pkt->len;
    uint32_t limit = cap - p->l3_off; /* the longest the IPv4 packet may become */
    if (limit > 65535)
        limit = 65535;
    if (!pkt->gso_size && s->cfg.mtu && limit > s->cfg.mtu)
        limit = s->cfg.mtu;
    uint32_t hdrs = p->ip_len - payload, keep = payload;
    if (hdrs + h + keep > limit) {
        if (limit < hdrs + h + (payload ? 1 : 0))
            return HP_DROP_PROXY_NO_ROOM;
        keep = limit - hdrs - h;
        tcp[13] &= (uint8_t)~TCP_FIN; /* the FIN follows the bytes cut */
        p->tcp_flags &= (uint8_t)~TCP_FIN;
        c->port->counters[HP_CNT_PROXY_TRIMMED]++;
    }
    uint8_t *data = tcp + doff;
    memmove(data + h, data, keep);
    hp_proxy_header(s, f, data);
    uint16_t ip_len = (uint16_t)(hdrs + h + keep);
    hp_store16(ip + 10, hp_csum_update16(hp_load16(ip + 10), p->ip_len, ip_len));
    hp_store16(ip + 2, ip_len);
    p->l4_len = (uint16_t)(p->l4_len + ip_len - p->ip_len);
    p->ip_len = ip_len;
    pkt->len = p->l3_off + ip_len; /* an Ethernet pad, if there was one, is gone */
    if (csum_full)
        hp_l4_checksum_full(d, p);
    else
        hp_store16(tcp + 16, hp_csum_fold(hp_pseudo_sum(hp_load32(ip + 12), hp_load32(ip + 16),
                                                        IPPROTO_TCP_, p->l4_len)));
    c->port->counters[HP_CNT_PROXY_HEADERS]++;
    return HP_DROP_NONE;
}

/* Segment `p` of PROXY v2 flow `f`, direction `dir`, before its NAT rewrite: the header
 * put in, or its sequence numbers shifted. `p` follows the frame's new lengths.
 * `csum_full`: the TCP checksum is whole (else partial, left to whoever finishes it). */
enum hp_drop hp_proxy_translate(struct hp_ctx *c, struct hp_pkt *pkt, struct hp_parsed *p,
                                struct hp_flow *f, int dir, bool csum_full)
{
    struct hp_engine *e = c->e;
    const struct hp_service *s = &e->services[f->service];
    uint32_t h = s->proxy_len, start = e->ft.ext[f - e->ft.slots].proxy_seq;
    uint8_t *tcp = pkt->data + p->l4_off;
    uint32_t doff = (tcp[12] >> 4) * 4u;
    uint32_t payload = p->l4_len - doff;
    if (dir == 0) {
        if (p->tcp_flags & TCP_SYN)
            return payload ? HP_DROP_PROXY_SYN_DATA : HP_DROP_NONE;
        int32_t d = (int32_t)(p->tcp_seq - start);
        if (d > 0)
            edit32(tcp, 4, p->tcp_seq + h, csum_full);
        else if (d == 0 && (payload || (p->tcp_flags & TCP_FIN)))
            return insert(c, pkt, p, s, f, doff, payload, csum_full);
        return HP_DROP_NONE;
    }
    if (p->tcp_flags & TCP_ACK) {
        uint32_t ack = hp_load32(tcp + 8), mapped = to_client(ack, start, h);
        if (mapped != ack)
            edit32(tcp, 8, mapped, csum_full);
    }
    /* SACK blocks (kind 5: 2 + 8n bytes of left, right edges), wherever they sit. */
    for (uint32_t next = 20, i; (i = hp_tcp_option(tcp, doff, &next));) {
        if (tcp[i] != 5)
            continue;
        for (uint32_t o = i + 2; o + 4 <= i + tcp[i + 1]; o += 4) {
            uint32_t v = hp_load32(tcp + o), mapped = to_client(v, start, h);
            if (mapped != v)
                edit32(tcp, o, mapped, csum_full);
        }
    }
    return HP_DROP_NONE;
}
