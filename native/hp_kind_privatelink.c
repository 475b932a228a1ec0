/* hp_kind_privatelink.c — the PrivateLink kind: a listener (ingress port, VIP, protocol,
 * port) whose flows go to a backend chosen by Maglev, with the source rewritten to an
 * address of the egress port and a port from the service's pool (NLB behind an endpoint):
 *
 *     (client, cport, vip, vport) on in_port ⇒ (snat_ip, snat_port, backend, bport) out of out_port
 *     replies: (backend, bport, snat_ip, snat_port) on out_port ⇒ (vip, vport, client, cport) out of in_port
 *
 * Its configuration is struct hp_service_config (hp_service_add()); its index keys are the
 * listener and the SNAT address. What this file decides is whether and how a packet of no
 * flow opens one (decide) and what becomes of a packet of no flow on the backend side
 * (reply_miss); every packet of an existing flow is the pipeline's (hp_process.c).
 */
#include "hp_internal.h"

int hp_service_add(struct hp_engine *e, const struct hp_service_config *cfg_in)
{
    struct hp_service_config c = *cfg_in;
    if (!hp_port_ok(e, c.in_port) || !hp_port_ok(e, c.out_port))
        return -1;
    if (c.proto != IPPROTO_TCP_ && c.proto != IPPROTO_UDP_ && c.proto != IPPROTO_ICMP_) {
        hp_set_error(e, "service protocol must be TCP (6), UDP (17) or ICMP (1), not %u", c.proto);
        return -1;
    }
    if (c.proto == IPPROTO_ICMP_ && c.vport != 0) {
        hp_set_error(e, "an ICMP service listens on port 0, not %u", c.vport);
        return -1;
    }
    if (c.proto != IPPROTO_ICMP_ && c.vport == 0) {
        hp_set_error(e, "a TCP or UDP service needs a listener port (1-65535)");
        return -1;
    }
    if (c.snat_ip == 0) {
        if (e->ports[c.out_port].cfg.n_addrs == 0) {
            hp_set_error(e, "no SNAT address given and port %u has no address", c.out_port);
            return -1;
        }
        c.snat_ip = e->ports[c.out_port].cfg.addrs[0];
    }
    if (hp_service_check_limits(e, &c) != 0)
        return -1;
    if (hp_svc_index_find(e, hp_svc_key(HP_KEY_LISTENER, c.in_port, c.proto, c.vip, c.vport)) >= 0) {
        hp_set_error(e, "port %u already has a service on %u.%u.%u.%u:%u/%u", c.in_port,
                     c.vip >> 24, (c.vip >> 16) & 0xff, (c.vip >> 8) & 0xff, c.vip & 0xff,
                     c.vport, c.proto);
        return -1;
    }
    struct hp_service s = {.kind = HP_KIND_PRIVATELINK, .cfg = c, .n_keys = 2};
    if (c.proxy_v2 && hp_proxy_prepare(e, &s) != 0)
        return -1;
    s.keys = hp_calloc(e, s.n_keys, sizeof *s.keys);
    if (!s.keys) {
        hp_set_error(e, "out of memory for a service");
        return -1;
    }
    s.keys[0] = (struct hp_index_key){.type = HP_KEY_LISTENER, .port = c.in_port, .proto = c.proto,
                                      .ip = c.vip, .l4port = c.vport};
    s.keys[1] = (struct hp_index_key){.type = HP_KEY_SNAT, .port = c.out_port, .proto = c.proto,
                                      .ip = c.snat_ip};
    return hp_service_install(e, &s);
}

/* The Maglev entry a new flow's backend is read from: over the 5-tuple, and over the
 * SYN's sequence number too when the service hashes like NLB. */
static uint32_t maglev_entry(const struct hp_engine *e, const struct hp_service *s,
                             const struct hp_parsed *p)
{
    uint64_t a = ((uint64_t)p->sip << 32) | p->dip;
    uint64_t b = ((uint64_t)p->sport << 48) | ((uint64_t)p->dport << 32) | p->proto;
    if (p->proto == IPPROTO_TCP_ && (s->cfg.flags & HP_SVC_HASH_TCP_SEQ))
        b ^= (uint64_t)p->tcp_seq << 8;
    return hp_mix32(a, b, 0x6e6c6221u) % e->cfg.maglev_size;
}

/* The backend a new flow gets. The service must have backends. */
static const struct hp_backend *choose_backend(const struct hp_engine *e, const struct hp_service *s,
                                               const struct hp_parsed *p)
{
    return &s->backends[s->maglev[maglev_entry(e, s, p)]];
}

/* Stage 2 for a packet whose bucket is empty, so that it opens a flow if anything: warms
 * what opening a flow will read (the Maglev entry, the first SNAT candidate's bucket). */
static void prefetch_new_flow(const struct hp_ctx *c, const struct hp_parsed *p, int32_t sid)
{
    const struct hp_engine *e = c->e;
    if (!e->services[sid].maglev)
        return;
    const struct hp_service *s = &e->services[sid];
    const struct hp_backend *be = choose_backend(e, s, p);
    struct hp_flow f = {.out_port = (uint8_t)s->cfg.out_port, .proto = s->cfg.proto,
                        .snat_ip = s->cfg.snat_ip, .backend_ip = be->ip, .backend_port = be->port};
    hp_snat_prefetch(e, s, &f, p->hash);
}

static enum hp_drop decide(const struct hp_ctx *c, const struct hp_pkt *pkt, const struct hp_parsed *p,
                           int32_t sid, struct hp_flow_plan *plan)
{
    const struct hp_engine *e = c->e;
    const struct hp_service *s = &e->services[sid];
    const struct hp_service_config *sc = &s->cfg;

    if (p->proto == IPPROTO_TCP_ && (p->tcp_flags & (TCP_SYN | TCP_ACK | TCP_RST)) != TCP_SYN) {
        /* Never answer a RST with a RST. */
        plan->rst = !(p->tcp_flags & TCP_RST) && (sc->flags & HP_SVC_RST_ON_MISS);
        return HP_DROP_NOT_SYN;
    }
    if (p->proto == IPPROTO_ICMP_ && p->icmp_type != 8)
        return HP_DROP_NO_SERVICE;
    if (sc->flags & HP_SVC_DISABLED)
        return HP_DROP_SERVICE_DISABLED;
    if (hp_over_mtu(sc, pkt, p))
        return HP_DROP_MTU;
    uint16_t sg_port = p->proto == IPPROTO_ICMP_ ? p->icmp_type : p->dport;
    plan->sg_ingress_rule = hp_sg_match(&c->port->sg[HP_SG_INGRESS], p->proto, p->sip, sg_port);
    if (plan->sg_ingress_rule == HP_TRACE_SG_NONE)
        return HP_DROP_SG_INGRESS;
    if (!s->maglev)
        return HP_DROP_NO_BACKEND;

    plan->backend_how = HP_TRACE_BACKEND_MAGLEV;
    plan->backend_index = maglev_entry(e, s, p);
    const struct hp_backend *be = &s->backends[s->maglev[plan->backend_index]];
    plan->out_port = sc->out_port;
    plan->snat_ip = sc->snat_ip;
    plan->backend_ip = be->ip;
    plan->backend_port = be->port;

    uint16_t be_sg_port = p->proto == IPPROTO_ICMP_ ? p->icmp_type : be->port;
    plan->sg_egress_rule = hp_sg_match(&e->ports[sc->out_port].sg[HP_SG_EGRESS], p->proto, be->ip, be_sg_port);
    if (plan->sg_egress_rule == HP_TRACE_SG_NONE)
        return HP_DROP_SG_EGRESS;
    if (s->proxy_len && p->l4_len > (uint32_t)(pkt->data[p->l4_off + 12] >> 4) * 4u)
        return HP_DROP_PROXY_SYN_DATA; /* the header must come before the client's first byte */
    return HP_DROP_NONE;
}

/* A miss on the backend side of a service's SNAT address: the flow is unknown or expired.
 * NLB answers a stale TCP segment with a RST. A SYN is a connection the backend tries to
 * open, which matches no listener and is dropped silently, as is everything else. */
static enum hp_drop reply_miss(const struct hp_ctx *c, const struct hp_parsed *p, int32_t sid,
                               bool *rst)
{
    const struct hp_service *s = &c->e->services[sid];
    bool stale = p->proto == IPPROTO_TCP_ &&
                 (p->tcp_flags & (TCP_SYN | TCP_ACK | TCP_RST)) != TCP_SYN && !(p->tcp_flags & TCP_RST);
    *rst = stale && (s->cfg.flags & HP_SVC_RST_ON_MISS);
    return HP_DROP_NO_FLOW;
}

const struct hp_kind_ops hp_kind_privatelink = {
    .name = "privatelink",
    .decide = decide,
    .reply_miss = reply_miss,
    .prefetch_new_flow = prefetch_new_flow,
};
