/* hp_trace.c — the engine's dry run: what hp_process() would do with one packet.
 *
 * `vpclab trace` asks the live forwarder why a packet would pass or not, and the answer
 * must be the engine's own, not a model of it: so this file walks hp_process()'s stages
 * (hp_process.c's classify → act) calling the same decision functions, and only the
 * parts of them that decide:
 *
 *     parse          hp_parse_l2, hp_parse_ipv4 (pure already)
 *     flow lookup    hp_flow_lookup, then hp_flow_fate (forward / expired / reopen /
 *                    reset / disabled), the decision act() takes on a hit
 *     miss           hp_service_claiming, then the kind's decide() (what act() acts on
 *                    before hp_nat_open_flow: TCP flags, disabled, MTU, SGs with the
 *                    rule that matched, the backend and how it was chosen), or
 *                    the SNAT owner's reply_miss()
 *     new flow       hp_nat_flow_of, hp_snat_search (the port hp_snat_allocate would take,
 *                    and whether it would expire or evict its holder), the flow table's
 *                    room, and the opening packet's forward(): MTU, MSS, PROXY v2
 *
 * The engine is const here, so the compiler holds the promise: no flow inserted or
 * removed, no port taken, no counter moved, the clock not advanced (flows are aged by
 * the engine's clock of its last batch, which the forwarder's loop keeps current). A
 * flow the real packet would end first (expired, or closed and reopened) is treated as
 * gone by the SNAT search, as it would be. What the dry run does not see: the index
 * being too full to link a new flow (negligible), and a PROXY v2 flow's first data
 * segment having no room for the header (it traces SYNs and headers, not buffers).
 */
#include <string.h>
#include <stdio.h>

#include "hp_csum.h"
#include "hp_internal.h"

static void fail(struct hp_trace_result *o, const char *what)
{
    snprintf(o->error, sizeof o->error, "%s", what);
}

/* The packet as it leaves in direction `dir` of flow `f`. */
static void out_tuple_of(const struct hp_flow *f, int dir, struct hp_trace_result *o)
{
    if (dir == 0) {
        o->out_src_ip = f->snat_ip; o->out_src_port = f->snat_port;
        o->out_dst_ip = f->backend_ip; o->out_dst_port = f->backend_port;
        o->out_port = f->out_port;
    } else {
        o->out_src_ip = f->vip; o->out_src_port = f->vport;
        o->out_dst_ip = f->client_ip; o->out_dst_port = f->client_port;
        o->out_port = f->in_port;
    }
}

/* forward() for a packet of flow `f` in direction `dir`, without the rewrite: the MTU,
 * the PROXY v2 header, the SYN's MSS as it would leave. */
static void forward_of(const struct hp_engine *e, const struct hp_pkt *pkt, const struct hp_parsed *p,
                       const struct hp_flow *f, int dir, struct hp_trace_result *o)
{
    const struct hp_service *s = &e->services[f->service];
    o->mtu = s->cfg.mtu;
    o->mss_clamp = s->cfg.mss_clamp;
    o->packet_size = hp_packet_size(pkt, p);
    o->proxy_len = (f->flags & HP_FLOW_PROXY) ? s->proxy_len : 0;
    out_tuple_of(f, dir, o);
    if (hp_over_mtu(&s->cfg, pkt, p)) {
        o->drop_reason = HP_DROP_MTU;
        o->out_port = pkt->out_port;
        return;
    }
    if (p->proto == IPPROTO_TCP_ && (p->tcp_flags & TCP_SYN)) {
        uint16_t minus = dir == 1 ? o->proxy_len : 0, old;
        hp_tcp_mss_after(pkt->data, p, s->cfg.mss_clamp, minus, &old, &o->mss_out);
    }
    o->verdict = HP_VERDICT_FORWARD;
}

static void flow_hit(const struct hp_engine *e, uint32_t ref, struct hp_trace_result *o)
{
    const struct hp_flow *f = &e->ft.slots[ref >> 1];
    o->flow = HP_TRACE_FLOW_HIT;
    o->flow_id = ref >> 1;
    o->flow_dir = (uint8_t)(ref & 1);
    o->tcp_state = f->tcp_state;
    o->service = f->service;
    o->kind = e->services[f->service].kind;
    o->backend_how = HP_TRACE_BACKEND_FLOW;
    o->snat_how = HP_TRACE_SNAT_FLOW;
}

/* A packet of no flow (or of one it ends first, `gone_slot`) that service `sid` claims. */
static void new_flow_of(const struct hp_engine *e, const struct hp_ctx *c, const struct hp_pkt *pkt,
                        const struct hp_parsed *p, int32_t sid, uint32_t gone_slot,
                        struct hp_trace_result *o)
{
    const struct hp_service *s = &e->services[sid];
    struct hp_flow_plan plan = {.sg_ingress_rule = HP_TRACE_SG_UNCHECKED,
                                .sg_egress_rule = HP_TRACE_SG_UNCHECKED};
    o->service = sid;
    o->kind = s->kind;
    o->mtu = s->cfg.mtu;
    o->mss_clamp = s->cfg.mss_clamp;
    o->packet_size = hp_packet_size(pkt, p);
    enum hp_drop r = hp_kind_of(e, sid)->decide(c, pkt, p, sid, &plan);
    o->sg_ingress_rule = plan.sg_ingress_rule;
    o->sg_egress_rule = plan.sg_egress_rule;
    o->sg_egress_port = plan.out_port;
    o->backend_how = plan.backend_how;
    o->backend_index = plan.backend_index;
    if (plan.backend_how != HP_TRACE_BACKEND_NONE) {
        o->out_dst_ip = plan.backend_ip;
        o->out_dst_port = plan.backend_port;
        o->out_src_ip = plan.snat_ip;
    }
    if (r != HP_DROP_NONE) {
        o->drop_reason = (uint8_t)r;
        if (plan.rst)
            o->rst = 1, o->verdict = HP_VERDICT_REPLY;
        return;
    }
    /* hp_nat_open_flow(): room in the table, then the port. */
    const struct hp_flow_table *ft = &e->ft;
    uint32_t free_slots = ft->free_top + (gone_slot != HP_NONE);
    if (free_slots == 0 && ft->half_open_count == 0) {
        o->drop_reason = HP_DROP_FLOW_TABLE_FULL;
        return;
    }
    struct hp_flow f;
    hp_nat_flow_of(e, p, c->in_port, sid, &plan, &f);
    struct hp_snat_choice choice;
    hp_snat_search(e, &f, s, p->hash, gone_slot, &choice);
    o->snat_how = choice.how;
    o->snat_attempts = choice.attempts;
    if (choice.how == HP_TRACE_SNAT_NONE) {
        o->drop_reason = HP_DROP_PORT_ALLOCATION;
        return;
    }
    f.snat_port = choice.port;
    if (choice.how == HP_TRACE_SNAT_EXPIRE || choice.how == HP_TRACE_SNAT_EVICT)
        free_slots++;
    o->flow_table_full = free_slots == 0;
    if (s->proxy_len && p->proto == IPPROTO_TCP_)
        f.flags |= HP_FLOW_PROXY;
    /* the opening packet is forwarded like any other of its flow, as direction 0 */
    forward_of(e, pkt, p, &f, 0, o);
}

static void icmp_error_of(const struct hp_engine *e, uint16_t in_port, const struct hp_pkt *pkt,
                          const struct hp_parsed *p, struct hp_trace_result *o)
{
    struct hp_flow_key k = {.sip = p->dip, .dip = p->sip, .sport = p->dport, .dport = p->sport,
                            .port = in_port, .proto = p->in_proto};
    uint32_t ref = hp_flow_lookup(&e->ft, &k, hp_flow_hash(&e->ft, &k));
    if (ref == HP_NONE || hp_flow_is_idle(e, &e->ft.slots[ref >> 1])) {
        o->drop_reason = HP_DROP_ICMP_NO_FLOW;
        return;
    }
    flow_hit(e, ref, o);
    const struct hp_flow *f = &e->ft.slots[ref >> 1];
    if (e->services[f->service].cfg.flags & HP_SVC_DISABLED) {
        o->drop_reason = HP_DROP_SERVICE_DISABLED;
        return;
    }
    out_tuple_of(f, (int)(ref & 1), o);
    o->verdict = HP_VERDICT_FORWARD;
}

int hp_trace(const struct hp_engine *e, uint16_t in_port, const uint8_t *frame, uint32_t len,
             struct hp_trace_result *o)
{
    memset(o, 0, sizeof *o);
    o->verdict = HP_VERDICT_DROP;
    o->service = -1;
    o->sg_ingress_rule = o->sg_egress_rule = HP_TRACE_SG_UNCHECKED;
    o->out_port = in_port;
    if (in_port >= e->cfg.max_ports) {
        fail(o, "port id beyond the engine's ports");
        return -1;
    }
    const struct hp_port *port = &e->ports[in_port];
    if (!port->present) {
        o->drop_reason = HP_DROP_UNKNOWN_PORT;
        return 0;
    }
    /* classify() */
    struct hp_parsed p = {0};
    uint16_t ethertype;
    enum hp_drop r = hp_parse_l2(frame, len, &p.l3_off, &ethertype);
    if (r != HP_DROP_NONE) {
        o->drop_reason = (uint8_t)r;
        return 0;
    }
    bool bcast = (frame[0] & frame[1] & frame[2] & frame[3] & frame[4] & frame[5]) == 0xff;
    if (!bcast && memcmp(frame, port->cfg.mac, 6) != 0) {
        o->drop_reason = HP_DROP_NOT_FOR_US;
        return 0;
    }
    if (ethertype == ETH_P_ARP_) {
        fail(o, "trace takes IPv4 packets, not ARP");
        return -1;
    }
    if (ethertype != ETH_P_IPV4) {
        o->drop_reason = HP_DROP_ETHERTYPE;
        return 0;
    }
    if (bcast) {
        o->drop_reason = HP_DROP_NOT_FOR_US;
        return 0;
    }
    r = hp_parse_ipv4(frame, len, &p);
    if (r != HP_DROP_NONE) {
        o->drop_reason = (uint8_t)r;
        return 0;
    }
    o->packet_size = hp_packet_size(&(struct hp_pkt){.len = len}, &p);
    o->proto = p.proto;
    o->src_ip = p.sip, o->dst_ip = p.dip;
    o->src_port = p.sport, o->dst_port = p.dport;
    /* The kinds' decide() read the frame and the tables only; hp_ctx is not const because
     * the pipeline's stages share it, so the dry run's copy is made here from the const
     * engine. */
    struct hp_ctx c = {.e = (struct hp_engine *)e, .in_port = in_port, .port = (struct hp_port *)port};
    struct hp_pkt pkt = {.data = (uint8_t *)frame, .len = len, .cap = len, .out_port = in_port};
    if (p.is_icmp_error) {
        icmp_error_of(e, in_port, &pkt, &p, o);
        return 0;
    }
    struct hp_flow_key k = {.sip = p.sip, .dip = p.dip, .sport = p.sport, .dport = p.dport,
                            .port = in_port, .proto = p.proto};
    p.hash = hp_flow_hash(&e->ft, &k);

    /* act() */
    uint32_t gone_slot = HP_NONE;
    uint32_t ref = hp_flow_lookup(&e->ft, &k, p.hash);
    if (ref != HP_NONE) {
        const struct hp_flow *f = &e->ft.slots[ref >> 1];
        int dir = (int)(ref & 1);
        flow_hit(e, ref, o);
        switch (hp_flow_fate(e, f, dir, &p)) {
        case HP_FATE_FORWARD:
            forward_of(e, &pkt, &p, f, dir, o);
            return 0;
        case HP_FATE_EXPIRED:
            o->flow = HP_TRACE_FLOW_EXPIRED;
            break;
        case HP_FATE_REOPEN:
            o->flow = HP_TRACE_FLOW_REOPEN;
            break;
        case HP_FATE_RESET:
            o->drop_reason = HP_DROP_TARGET_RESET;
            if (p.proto == IPPROTO_TCP_ && !(p.tcp_flags & TCP_RST))
                o->rst = 1, o->verdict = HP_VERDICT_REPLY;
            return 0;
        case HP_FATE_DISABLED:
            o->drop_reason = HP_DROP_SERVICE_DISABLED;
            return 0;
        }
        /* the flow is gone before the packet goes on, as a miss */
        gone_slot = ref >> 1;
        o->backend_how = HP_TRACE_BACKEND_NONE;
        o->snat_how = HP_TRACE_SNAT_NONE;
        o->service = -1;
    }
    int32_t sid = hp_service_claiming(e, in_port, port, &p);
    if (sid >= 0) {
        new_flow_of(e, &c, &pkt, &p, sid, gone_slot, o);
        return 0;
    }
    sid = hp_svc_index_find(e, hp_svc_key(HP_KEY_SNAT, in_port, p.proto, p.dip, 0));
    if (sid >= 0) {
        bool rst = false;
        o->service = sid;
        o->kind = e->services[sid].kind;
        o->drop_reason = (uint8_t)hp_kind_of(e, sid)->reply_miss(&c, &p, sid, &rst);
        if (rst)
            o->rst = 1, o->verdict = HP_VERDICT_REPLY;
        return 0;
    }
    o->drop_reason = HP_DROP_NO_SERVICE;
    return 0;
}

/* The frame hp_trace_tuple() traces: Ethernet to the port's MAC, IPv4 (DF, TTL 64), and a
 * TCP header with an MSS option of 1460, a UDP header, or an ICMP echo request (its
 * identifier `sport`), padded with zeros to `ip_len`. Returns the frame's length, 0 when
 * the protocol is none of those. */
static uint32_t build_frame(const struct hp_port *port, uint8_t *buf, uint8_t proto, uint32_t sip,
                            uint16_t sport, uint32_t dip, uint16_t dport, uint8_t tcp_flags,
                            uint32_t ip_len)
{
    uint32_t l4_len = proto == IPPROTO_TCP_ ? 24 : 8;
    if (proto != IPPROTO_TCP_ && proto != IPPROTO_UDP_ && proto != IPPROTO_ICMP_)
        return 0;
    if (ip_len < 20 + l4_len)
        ip_len = 20 + l4_len;
    memset(buf, 0, 14 + ip_len);
    memcpy(buf, port->cfg.mac, 6);
    static const uint8_t src_mac[6] = {0x02, 0x74, 0x72, 0x61, 0x63, 0x65}; /* "trace" */
    memcpy(buf + 6, src_mac, 6);
    hp_store16(buf + 12, ETH_P_IPV4);
    uint8_t *ip = buf + 14;
    ip[0] = 0x45;
    hp_store16(ip + 2, (uint16_t)ip_len);
    hp_store16(ip + 6, 0x4000);
    ip[8] = 64;
    ip[9] = proto;
    hp_store32(ip + 12, sip);
    hp_store32(ip + 16, dip);
    hp_store16(ip + 10, hp_csum(ip, 20));
    uint8_t *l4 = ip + 20;
    if (proto == IPPROTO_TCP_) {
        hp_store16(l4, sport);
        hp_store16(l4 + 2, dport);
        hp_store32(l4 + 4, 1);
        l4[12] = 6 << 4;
        l4[13] = tcp_flags;
        hp_store16(l4 + 14, 65535);
        l4[20] = 2, l4[21] = 4;
        hp_store16(l4 + 22, 1460);
    } else if (proto == IPPROTO_UDP_) {
        hp_store16(l4, sport);
        hp_store16(l4 + 2, dport);
        hp_store16(l4 + 4, (uint16_t)(ip_len - 20));
    } else {
        l4[0] = 8;
        hp_store16(l4 + 4, sport);
        hp_store16(l4 + 6, 1);
    }
    return 14 + ip_len;
}

int hp_trace_tuple(const struct hp_engine *e, uint16_t in_port, uint8_t proto, uint32_t src_ip,
                   uint16_t src_port, uint32_t dst_ip, uint16_t dst_port, uint8_t tcp_flags,
                   uint32_t ip_len, struct hp_trace_result *out)
{
    static const struct hp_port no_port;
    uint8_t buf[14 + HP_TRACE_MAX_LEN];
    if (ip_len > HP_TRACE_MAX_LEN) {
        memset(out, 0, sizeof *out);
        snprintf(out->error, sizeof out->error, "a traced packet is at most %u bytes, not %u",
                 HP_TRACE_MAX_LEN, ip_len);
        return -1;
    }
    const struct hp_port *port = in_port < e->cfg.max_ports ? &e->ports[in_port] : &no_port;
    uint32_t len = build_frame(port, buf, proto, src_ip, src_port, dst_ip, dst_port, tcp_flags, ip_len);
    if (len == 0) {
        memset(out, 0, sizeof *out);
        snprintf(out->error, sizeof out->error,
                 "a traced packet is TCP (6), UDP (17) or ICMP (1), not protocol %u", proto);
        return -1;
    }
    return hp_trace(e, in_port, buf, len, out);
}
