/* hp_reply.c — frames the engine builds in place of the one it was handed, sent back out
 * of the port it came in on: ARP replies for a port's addresses, and TCP RSTs for
 * segments of unknown, expired or reset flows. Both are built with full checksums.
 */
#include <string.h>

#include "hp_csum.h"
#include "hp_internal.h"

void hp_count_tx(struct hp_port *p, uint32_t len)
{
    p->counters[HP_CNT_TX_PACKETS]++;
    p->counters[HP_CNT_TX_BYTES] += len;
}

enum hp_drop hp_arp_reply(struct hp_port *port, struct hp_pkt *pkt, uint16_t l3)
{
    uint8_t *d = pkt->data;
    if (pkt->len < (uint32_t)l3 + 28)
        return HP_DROP_ARP_MALFORMED;
    uint8_t *a = d + l3;
    if (hp_load16(a) != 1 || hp_load16(a + 2) != ETH_P_IPV4 || a[4] != 6 || a[5] != 4)
        return HP_DROP_ARP_MALFORMED;
    uint32_t target = hp_load32(a + 24);
    bool ours = false;
    for (uint32_t i = 0; i < port->cfg.n_addrs; i++)
        ours |= port->cfg.addrs[i] == target;
    if (hp_load16(a + 6) != 1 || !ours)
        return HP_DROP_ARP_NOT_OURS;
    uint8_t sha[6], spa[4];
    memcpy(sha, a + 8, 6);
    memcpy(spa, a + 14, 4);
    memcpy(d, sha, 6);                 /* Ethernet: back to the asker */
    memcpy(d + 6, port->cfg.mac, 6);
    hp_store16(a + 6, 2);              /* op: reply */
    memcpy(a + 8, port->cfg.mac, 6);   /* sender: us, the address asked for */
    hp_store32(a + 14, target);
    memcpy(a + 18, sha, 6);            /* target: the asker */
    memcpy(a + 24, spa, 4);
    uint32_t len = (uint32_t)l3 + 28;
    pkt->len = len < 60 && pkt->len >= 60 ? 60 : len;
    port->counters[HP_CNT_ARP_REPLIES]++;
    return HP_DROP_NONE;
}

/* Replaces a TCP segment with the RST its sender should get (RFC 793, "reset
 * generation"): seq = the segment's ACK if it had one, else 0 with an ACK of everything
 * it occupied. Sent back out of the port it came in on. */
void hp_tcp_rst_reply(struct hp_port *port, struct hp_pkt *pkt, const struct hp_parsed *p)
{
    uint8_t *d = pkt->data;
    uint8_t *ip = d + p->l3_off;
    uint8_t *tcp = d + p->l4_off;
    uint32_t doff = (tcp[12] >> 4) * 4u;
    uint32_t payload = p->l4_len - doff;
    uint32_t seq_in = hp_load32(tcp + 4), ack_in = hp_load32(tcp + 8);
    uint8_t flags_in = tcp[13];

    memcpy(d, d + 6, 6);
    memcpy(d + 6, port->cfg.mac, 6);
    uint8_t *rip = ip, *rtcp = ip + 20;
    rip[0] = 0x45; rip[1] = 0;
    hp_store16(rip + 2, 40);
    hp_store16(rip + 4, 0);
    hp_store16(rip + 6, 0x4000);       /* DF */
    rip[8] = 64; rip[9] = IPPROTO_TCP_;
    hp_store16(rip + 10, 0);
    hp_store32(rip + 12, p->dip);
    hp_store32(rip + 16, p->sip);
    hp_store16(rip + 10, hp_csum(rip, 20));
    hp_store16(rtcp, p->dport);
    hp_store16(rtcp + 2, p->sport);
    if (flags_in & TCP_ACK) {
        hp_store32(rtcp + 4, ack_in);
        hp_store32(rtcp + 8, 0);
        rtcp[13] = TCP_RST;
    } else {
        uint32_t len = payload + !!(flags_in & TCP_SYN) + !!(flags_in & TCP_FIN);
        hp_store32(rtcp + 4, 0);
        hp_store32(rtcp + 8, seq_in + len);
        rtcp[13] = TCP_RST | TCP_ACK;
    }
    rtcp[12] = 5 << 4;
    hp_store16(rtcp + 14, 0);          /* window */
    hp_store16(rtcp + 16, 0);
    hp_store16(rtcp + 18, 0);          /* urgent pointer */
    hp_store16(rtcp + 16, (uint16_t)~hp_csum_fold(
                              hp_csum_add(hp_pseudo_sum(p->dip, p->sip, IPPROTO_TCP_, 20), rtcp, 20)));
    pkt->len = (uint32_t)p->l3_off + 40;
    pkt->verdict = HP_VERDICT_REPLY;
    port->counters[HP_CNT_TCP_RST_SENT]++;
}
