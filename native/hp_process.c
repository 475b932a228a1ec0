/* hp_process.c — the packet pipeline: hp_process().
 *
 * The life of a frame (classify → lookup → act → emit; hp_process overlaps the lookups
 * of a group):
 *   1. Ethernet: length, one VLAN tag at most, destination MAC ours or broadcast.
 *   2. ARP requests for a port's addresses are answered in place (hp_reply.c); other ARP
 *      is dropped.
 *   3. IPv4 is parsed with every bound checked (hp_parse.c); ICMP errors go to
 *      icmp_error(), which translates them for the flow they quote.
 *   4. The flow table is looked up with the packet's own 5-tuple on its port. A hit
 *      gives the flow and the direction; an idle hit is expired first and is a miss.
 *   5. A miss goes to the service that claims it (hp_service.c's index: a listener, or
 *      the port's prefix service), and to that service's kind (struct hp_kind_ops,
 *      hp_kind_*.c): decide() says whether the packet opens a flow and which, and
 *      hp_nat_open_flow() makes it (a SNAT port, a slot);
 *      a packet to a service's SNAT address goes to reply_miss(). Anything else is
 *      dropped with its reason.
 *   6. forward(): MTU, a PROXY v2 flow's header or shift (hp_proxy.c), TCP state, MSS
 *      clamp, NAT rewrite (hp_nat.c), then emit():
 *      Ethernet addresses, counters. Every packet of a flow, the first one included,
 *      takes this path whatever the kind: the kind only decided the flow's tuple.
 */
#include <string.h>

#include "hp_internal.h"

const struct hp_kind_ops *const hp_kinds[2] = {
    [HP_KIND_PRIVATELINK] = &hp_kind_privatelink,
    [HP_KIND_VPC_NAT] = &hp_kind_vpc_nat,
};

/* Stage 2 for a packet whose bucket is empty, so that it opens a flow if anything: lets
 * the kind of the service it goes to (as act() will find it) warm what opening the flow
 * will read. */
static void prefetch_new_flow(const struct hp_ctx *c, const struct hp_parsed *p)
{
    int32_t sid = hp_service_claiming(c->e, c->in_port, c->port, p);
    if (sid >= 0 && hp_kind_of(c->e, sid)->prefetch_new_flow)
        hp_kind_of(c->e, sid)->prefetch_new_flow(c, p, sid);
}

/* TCP state of a flow, from the flags of a segment in direction `dir` (0: client to
 * backend). The handshake completes, and the flow stops being half-open (evictable,
 * hp_flow.c), only when the client acknowledges the backend's SYN-ACK: a spoofed source
 * never does, even when the backend answers its SYN. */
static void tcp_track(struct hp_engine *e, struct hp_flow *f, int dir, uint8_t flags)
{
    if (flags & TCP_RST) {
        f->tcp_state = HP_TCP_CLOSED;
        return;
    }
    if (f->tcp_state == HP_TCP_SYN_SENT && dir == 1 && (flags & (TCP_SYN | TCP_ACK)) == (TCP_SYN | TCP_ACK)) {
        f->tcp_state = HP_TCP_SYN_RECV;
    } else if (f->tcp_state == HP_TCP_SYN_RECV && dir == 0 && (flags & (TCP_SYN | TCP_ACK)) == TCP_ACK) {
        f->tcp_state = HP_TCP_ESTABLISHED;
        hp_flow_handshake_done(e, f);
    }
    if (flags & TCP_FIN) {
        f->flags |= (uint8_t)HP_FLOW_FIN(dir);
        if (f->tcp_state == HP_TCP_ESTABLISHED || f->tcp_state == HP_TCP_FIN_WAIT ||
            f->tcp_state == HP_TCP_SYN_SENT || f->tcp_state == HP_TCP_SYN_RECV)
            f->tcp_state = (f->flags & HP_FLOW_BOTH_FINS) == HP_FLOW_BOTH_FINS ? HP_TCP_CLOSING
                                                                                : HP_TCP_FIN_WAIT;
    }
}

/* Sends a translated frame of flow `f`, direction `dir`, out of that direction's port:
 * Ethernet addresses of that port and its peer, the flow's and port's counters. */
static enum hp_drop emit(struct hp_engine *e, struct hp_pkt *pkt, struct hp_flow *f, int dir,
                         const struct hp_parsed *p)
{
    uint16_t out = dir == 0 ? f->out_port : f->in_port;
    struct hp_port *op = &e->ports[out];
    memcpy(pkt->data, op->cfg.peer_mac, 6);
    memcpy(pkt->data + 6, op->cfg.mac, 6);
    /* A GSO frame counts as the packets it will be cut into, as the flow's ends see them. */
    uint32_t packets = 1;
    if (HP_UNLIKELY(pkt->gso_size)) {
        uint32_t hdrs = hp_segment_headers(pkt->data, p);
        uint32_t payload = p->ip_len > hdrs ? p->ip_len - hdrs : 0;
        packets = payload > pkt->gso_size ? (payload + pkt->gso_size - 1) / pkt->gso_size : 1;
    }
    f->packets[dir] += packets;
    f->bytes[dir] += pkt->len;
    pkt->verdict = HP_VERDICT_FORWARD;
    pkt->out_port = out;
    hp_count_tx(op, pkt->len);
    return HP_DROP_NONE;
}

static enum hp_drop forward(struct hp_ctx *c, struct hp_pkt *pkt, const struct hp_parsed *p,
                            struct hp_flow *f, int dir)
{
    struct hp_engine *e = c->e;
    const struct hp_service_config *sc = &e->services[f->service].cfg;
    bool partial = pkt->flags & HP_PKT_CSUM_PARTIAL;
    bool keep_partial = partial && (pkt->flags & HP_PKT_CSUM_OFFLOAD);
    if (HP_UNLIKELY(pkt->gso_size && !keep_partial))
        return HP_DROP_GSO_NO_OFFLOAD;
    if (HP_UNLIKELY(hp_over_mtu(sc, pkt, p)))
        return HP_DROP_MTU;
    struct hp_parsed shifted;
    uint16_t proxy_minus = 0;
    if (HP_UNLIKELY(f->flags & HP_FLOW_PROXY)) {
        /* PROXY v2 (hp_proxy.c): may grow the frame, so the rest reads its new lengths */
        shifted = *p;
        enum hp_drop r = hp_proxy_translate(c, pkt, &shifted, f, dir, !partial);
        if (r != HP_DROP_NONE)
            return r;
        p = &shifted;
        proxy_minus = dir == 1 ? e->services[f->service].proxy_len : 0;
    }
    if (f->proto == IPPROTO_TCP_) {
        tcp_track(e, f, dir, p->tcp_flags);
        if (HP_UNLIKELY((p->tcp_flags & TCP_SYN) && (sc->mss_clamp || proxy_minus)) &&
            hp_tcp_clamp_mss(pkt->data, p, sc->mss_clamp, proxy_minus, partial))
            c->port->counters[HP_CNT_MSS_CLAMPED]++;
    }
    if (HP_LIKELY(!partial)) {
        hp_nat_rewrite(pkt->data, p, f, dir, HP_CSUM_UPDATE);
    } else if (keep_partial) {
        hp_nat_rewrite(pkt->data, p, f, dir, HP_CSUM_KEEP_PARTIAL);
        c->port->counters[HP_CNT_CSUM_KEPT_PARTIAL]++;
    } else {
        hp_nat_rewrite(pkt->data, p, f, dir, HP_CSUM_COMPLETE);
        pkt->flags &= (uint16_t)~HP_PKT_CSUM_PARTIAL;
        c->port->counters[HP_CNT_CSUM_COMPLETED]++;
    }
    if (HP_UNLIKELY(pkt->gso_size))
        c->port->counters[HP_CNT_GSO_FRAMES]++;

    f->last_seen_s = e->now_s;
    return emit(e, pkt, f, dir, p);
}

static enum hp_drop icmp_error(struct hp_ctx *c, struct hp_pkt *pkt, const struct hp_parsed *p)
{
    struct hp_engine *e = c->e;
    /* The quoted packet was sent by the other side: look it up reversed. */
    struct hp_flow_key k = {.sip = p->dip, .dip = p->sip, .sport = p->dport, .dport = p->sport,
                            .port = c->in_port, .proto = p->in_proto};
    uint32_t ref = hp_flow_lookup(&e->ft, &k, hp_flow_hash(&e->ft, &k));
    if (ref == HP_NONE)
        return HP_DROP_ICMP_NO_FLOW;
    struct hp_flow *f = &e->ft.slots[ref >> 1];
    int dir = (int)(ref & 1);
    if (hp_flow_is_idle(e, f))
        return HP_DROP_ICMP_NO_FLOW;
    if (e->services[f->service].cfg.flags & HP_SVC_DISABLED)
        return HP_DROP_SERVICE_DISABLED;
    hp_nat_rewrite_icmp_error(pkt->data, p, f, dir);
    pkt->flags &= (uint16_t)~HP_PKT_CSUM_PARTIAL; /* its checksums were computed whole */
    pkt->gso_size = 0;
    return emit(e, pkt, f, dir, p); /* an error does not keep its flow alive */
}

/* Stage 1 of a frame: Ethernet, ARP (answered here), IPv4 parsing, and the hash of the
 * flow key, so that stage 2 can prefetch the bucket. Sets p->next. */
static enum hp_drop classify(struct hp_ctx *c, struct hp_pkt *pkt, struct hp_parsed *p)
{
    struct hp_port *port = c->port;
    uint8_t *d = pkt->data;
    uint16_t ethertype;
    p->next = HP_NEXT_DONE;
    enum hp_drop r = hp_parse_l2(d, pkt->len, &p->l3_off, &ethertype);
    if (r)
        return r;
    bool bcast = (d[0] & d[1] & d[2] & d[3] & d[4] & d[5]) == 0xff;
    if (!bcast && memcmp(d, port->cfg.mac, 6) != 0)
        return HP_DROP_NOT_FOR_US;
    if (port->peer_learnt)
        memcpy(port->cfg.peer_mac, d + 6, 6);
    if (ethertype == ETH_P_ARP_) {
        r = hp_arp_reply(port, pkt, p->l3_off);
        if (r == HP_DROP_NONE) {
            pkt->verdict = HP_VERDICT_REPLY;
            hp_count_tx(port, pkt->len);
        }
        return r;
    }
    if (ethertype != ETH_P_IPV4)
        return HP_DROP_ETHERTYPE;
    if (bcast)
        return HP_DROP_NOT_FOR_US;
    r = hp_parse_ipv4(d, pkt->len, p);
    if (r)
        return r;
    if (p->is_icmp_error) {
        p->next = HP_NEXT_ICMP_ERROR;
        return HP_DROP_NONE;
    }
    struct hp_flow_key k = {.sip = p->sip, .dip = p->dip, .sport = p->sport, .dport = p->dport,
                            .port = c->in_port, .proto = p->proto};
    p->hash = hp_flow_hash(&c->e->ft, &k);
    p->next = HP_NEXT_LOOKUP;
    return HP_DROP_NONE;
}

/* What becomes of a packet that hit flow `f` in direction `dir`, decided from the tables
 * alone (act() acts on it, hp_trace.c reports it). */
enum hp_flow_fate hp_flow_fate(const struct hp_engine *e, const struct hp_flow *f, int dir,
                               const struct hp_parsed *p)
{
    if (hp_flow_is_idle(e, f))
        return HP_FATE_EXPIRED;
    /* A new connection on a closed one's 5-tuple: a new flow, maybe a new target. */
    if (dir == 0 && f->proto == IPPROTO_TCP_ && (p->tcp_flags & (TCP_SYN | TCP_ACK | TCP_RST)) == TCP_SYN &&
        (f->tcp_state == HP_TCP_CLOSING || f->tcp_state == HP_TCP_CLOSED))
        return HP_FATE_REOPEN;
    /* NLB resets the connections of a target that turned unhealthy, from whichever side
     * speaks next. */
    if (HP_UNLIKELY(f->flags & HP_FLOW_RESET))
        return HP_FATE_RESET;
    if (HP_UNLIKELY(e->services[f->service].cfg.flags & HP_SVC_DISABLED))
        return HP_FATE_DISABLED;
    return HP_FATE_FORWARD;
}

/* Stage 3: the flow lookup and everything after it. */
static enum hp_drop act(struct hp_ctx *c, struct hp_pkt *pkt, const struct hp_parsed *p)
{
    struct hp_engine *e = c->e;
    if (p->next == HP_NEXT_ICMP_ERROR)
        return icmp_error(c, pkt, p);

    struct hp_flow_key k = {.sip = p->sip, .dip = p->dip, .sport = p->sport, .dport = p->dport,
                            .port = c->in_port, .proto = p->proto};
    uint32_t ref = hp_flow_lookup(&e->ft, &k, p->hash);
    if (ref != HP_NONE) {
        struct hp_flow *f = &e->ft.slots[ref >> 1];
        int dir = (int)(ref & 1);
        switch (hp_flow_fate(e, f, dir, p)) {
        case HP_FATE_FORWARD:
            return forward(c, pkt, p, f, dir);
        case HP_FATE_EXPIRED:
            hp_flow_remove(e, ref >> 1, true);
            break;
        case HP_FATE_REOPEN:
            hp_flow_remove(e, ref >> 1, false);
            break;
        case HP_FATE_RESET:
            if (p->proto == IPPROTO_TCP_ && !(p->tcp_flags & TCP_RST))
                hp_tcp_rst_reply(c->port, pkt, p);
            hp_flow_remove(e, ref >> 1, false);
            return HP_DROP_TARGET_RESET;
        case HP_FATE_DISABLED:
            return HP_DROP_SERVICE_DISABLED;
        }
    }
    int32_t sid = hp_service_claiming(e, c->in_port, c->port, p);
    if (sid >= 0) {
        struct hp_flow_plan plan = {.sg_ingress_rule = HP_TRACE_SG_UNCHECKED,
                                    .sg_egress_rule = HP_TRACE_SG_UNCHECKED};
        enum hp_drop r = hp_kind_of(e, sid)->decide(c, pkt, p, sid, &plan);
        if (r != HP_DROP_NONE) {
            if (plan.rst)
                hp_tcp_rst_reply(c->port, pkt, p);
            return r;
        }
        uint32_t slot;
        r = hp_nat_open_flow(e, p, c->in_port, sid, &plan, &slot);
        if (r != HP_DROP_NONE)
            return r;
        if (e->services[sid].proxy_len)
            hp_proxy_open(e, slot, p);
        c->port->counters[HP_CNT_FLOWS_CREATED]++;
        /* the opening packet is forwarded like any other of its flow, as direction 0 */
        return forward(c, pkt, p, &e->ft.slots[slot], 0);
    }
    sid = hp_svc_index_find(e, hp_svc_key(HP_KEY_SNAT, c->in_port, p->proto, p->dip, 0));
    if (sid >= 0) {
        bool rst = false;
        enum hp_drop r = hp_kind_of(e, sid)->reply_miss(c, p, sid, &rst);
        if (rst)
            hp_tcp_rst_reply(c->port, pkt, p);
        return r;
    }
    return HP_DROP_NO_SERVICE;
}

/* Frames go through a three-stage software pipeline, HP_PIPE_DISTANCE frames apart:
 *   stage 1 (frame i):     classify() — parse, hash, prefetch the key's bucket;
 *   stage 2 (frame i - D): find the signature match in the (now cached) bucket and
 *                          prefetch that flow, or, with no match, what a new flow reads;
 *   stage 3 (frame i - 2D): act() — the real lookup and everything after it.
 * With a million flows every bucket and every flow is a cache (and TLB) miss; D frames of
 * other work between a prefetch and its use hide most of it. Stages 1 and 2 only read the
 * tables (their results are hints), so the frames' effects happen in order, in stage 3. */
#define HP_PIPE_DISTANCE 8
#define HP_PIPE_RING 32 /* > 2 * HP_PIPE_DISTANCE, a power of two */

static void finish(struct hp_ctx *c, struct hp_pkt *pkt, enum hp_drop r)
{
    pkt->drop_reason = (uint8_t)r;
    if (pkt->verdict == HP_VERDICT_REPLY) {
        /* an ARP reply or a RST, built here with full checksums */
        pkt->flags &= (uint16_t)~HP_PKT_CSUM_PARTIAL;
        pkt->gso_size = 0;
    }
    if (r != HP_DROP_NONE) {
        c->port->drops[r]++;
        c->port->counters[HP_CNT_DROPPED]++;
        if (pkt->verdict == HP_VERDICT_REPLY)
            hp_count_tx(c->port, pkt->len); /* a RST went back for the dropped segment */
    }
}

void hp_process(struct hp_engine *e, uint16_t in_port, struct hp_pkt *pkts, uint32_t n,
                uint64_t now_ns)
{
    if (now_ns > e->now_ns) {
        e->now_ns = now_ns;
        e->now_s = (uint32_t)(now_ns / 1000000000ull);
    }
    if (in_port >= e->cfg.max_ports || !e->ports[in_port].present) {
        for (uint32_t i = 0; i < n; i++) {
            pkts[i].verdict = HP_VERDICT_DROP;
            pkts[i].drop_reason = HP_DROP_UNKNOWN_PORT;
            pkts[i].out_port = in_port;
        }
        /* Counted on the port id's slot while it is in range, so a caller that sends to a
         * port it forgot to add sees it in that port's stats. */
        if (in_port < e->cfg.max_ports) {
            e->ports[in_port].drops[HP_DROP_UNKNOWN_PORT] += n;
            e->ports[in_port].counters[HP_CNT_DROPPED] += n;
        }
        return;
    }
    struct hp_ctx c = {.e = e, .in_port = in_port, .port = &e->ports[in_port]};
    const struct hp_flow_table *ft = &e->ft;
    struct hp_parsed ps[HP_PIPE_RING];
    enum hp_drop rs[HP_PIPE_RING];
    for (uint32_t i = 0; i < n + 2 * HP_PIPE_DISTANCE; i++) {
        if (i < n) {
            struct hp_pkt *pkt = &pkts[i];
            uint32_t s1 = i % HP_PIPE_RING;
            c.port->counters[HP_CNT_RX_PACKETS]++;
            c.port->counters[HP_CNT_RX_BYTES] += pkt->len;
            pkt->verdict = HP_VERDICT_DROP;
            pkt->out_port = in_port;
            HP_TAP_HOOK(e, hp_tap_in(e, i, pkt)); /* before anything rewrites it (hp_tap.c) */
            rs[s1] = classify(&c, pkt, &ps[s1]);
            if (rs[s1] == HP_DROP_NONE && ps[s1].next == HP_NEXT_LOOKUP)
                hp_flow_prefetch_buckets(ft, ps[s1].hash);
        }
        if (i >= HP_PIPE_DISTANCE && i - HP_PIPE_DISTANCE < n) {
            uint32_t s2 = (i - HP_PIPE_DISTANCE) % HP_PIPE_RING;
            if (rs[s2] == HP_DROP_NONE && ps[s2].next == HP_NEXT_LOOKUP) {
                uint32_t ref = hp_flow_candidate(ft, ps[s2].hash);
                if (ref != HP_NONE)
                    __builtin_prefetch(&ft->slots[ref >> 1], 1);
                else
                    prefetch_new_flow(&c, &ps[s2]);
            }
        }
        if (i >= 2 * HP_PIPE_DISTANCE) {
            uint32_t j = i - 2 * HP_PIPE_DISTANCE, s3 = j % HP_PIPE_RING;
            enum hp_drop r = rs[s3];
            if (r == HP_DROP_NONE && ps[s3].next != HP_NEXT_DONE)
                r = act(&c, &pkts[j], &ps[s3]);
            finish(&c, &pkts[j], r);
            HP_TAP_HOOK(e, hp_tap_done(e, in_port, j, &pkts[j]));
        }
    }
    hp_expire(e, now_ns, e->cfg.expiry_scan_per_batch);
}
