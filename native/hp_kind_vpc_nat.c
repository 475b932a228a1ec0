/* hp_kind_vpc_nat.c — the VPC-to-VPC NAT kind: the Hyperplane construct behind HTTP-API
 * VPC links. API Gateway's side (the link's attachment port) opens connections to
 * private addresses of the customer's VPC; each leaves from one of the link's ENIs in
 * that VPC with the ENI's address as its source. The destination is kept (no DNAT):
 *
 *     (src, sport, dst, dport) on the attachment port ⇒ (link ENI ip, snat port, dst, dport) out of that ENI
 *     replies: (dst, dport, ENI ip, snat port) on the ENI port ⇒ (dst, dport, src, sport) out of the attachment port
 *
 * In the flow this is client = (src, sport), vip = backend = (dst, dport), snat = (ENI
 * ip, snat port), in_port = attachment, out_port = the ENI's port, so hp_nat.c's two
 * directions are exactly the lines above.
 *
 * Which packets open a flow (decide): TCP SYNs and UDP datagrams arriving on the
 * attachment port toward an address in one of the link's prefixes (the link VPC's
 * CIDRs). The link is found without an exact key: it is its attachment port's prefix
 * service (hp_service.c), consulted only when no listener there claims the packet, so
 * ports without a link pay nothing. Two links may reach the same (overlapping) CIDRs:
 * their attachment ports keep them apart. ICMP echo is not carried (dropped as
 * no_service); ICMP errors quoting a flow's packet are translated as for any flow.
 *
 * One way: the customer side can never open a flow toward the link. A SYN or datagram
 * to a link ENI's address with no flow is dropped as link_one_way (reply_miss); other
 * segments of no flow are no_flow. No RST is ever sent.
 *
 * Security groups are the link ENIs' groups: the EGRESS rules on the chosen ENI's port
 * decide which new flows (dst, dport) may leave; replies pass as part of the flow. The
 * attachment port's ingress rules, if it has any, are checked too (it normally has none).
 *
 * The ENI a new flow leaves by (vpclab's choice; AWS does not say): the link's routes
 * are (destination prefix → ENI) pairs, one per customer subnet whose AZ has a link ENI
 * (the compiler's doing), longest prefix wins, so a target is reached from the ENI in its
 * own AZ, as cross-zone traffic is avoided on AWS. A destination no route covers takes
 * an ENI by a hash of the flow's 5-tuple, spreading flows over the link's ENIs.
 *
 * SNAT ports are unique per (ENI address, protocol, destination), found by hp_nat.c's
 * bounded search; a full pool is a port_allocation drop, as for PrivateLink. The idle
 * timeout of established TCP and of UDP is 350 s unless configured: Hyperplane's (NAT
 * gateway's) figure; AWS publishes none for this construct. MTU and MSS clamp are set
 * per link by its configuration (vpclab: 8500 and 8460, as PrivateLink).
 */
#include "hp_internal.h"

#define HP_LINK_IDLE_TIMEOUT_S 350u

static bool in_prefix(uint32_t ip, uint32_t cidr, uint8_t len)
{
    uint32_t mask = len == 0 ? 0 : ~0u << (32 - len);
    return (ip & mask) == (cidr & mask);
}

static bool serves(const struct hp_link_config *l, uint8_t proto)
{
    if (l->proto == 0)
        return proto == IPPROTO_TCP_ || proto == IPPROTO_UDP_;
    return proto == l->proto;
}

static bool reaches(const struct hp_link_config *l, uint32_t dst)
{
    for (uint32_t i = 0; i < l->n_prefixes; i++)
        if (in_prefix(dst, l->prefixes[i].addr, l->prefixes[i].len))
            return true;
    return false;
}

/* The ENI a new flow to `p->dip` leaves by: the longest route covering it, else a hash
 * of the 5-tuple over the ENIs (the header's comment says why). Says which in *how and
 * *index (the route's, or the ENI's hashed to). */
static const struct hp_link_eni *choose_eni(const struct hp_link_config *l, const struct hp_parsed *p,
                                            uint8_t *how, uint32_t *index)
{
    int best = -1;
    for (uint32_t i = 0; i < l->n_routes; i++) {
        const struct hp_link_route *r = &l->routes[i];
        if (in_prefix(p->dip, r->cidr, r->prefix_len) &&
            (best < 0 || r->prefix_len > l->routes[best].prefix_len))
            best = (int)i;
    }
    if (best >= 0) {
        *how = HP_TRACE_BACKEND_LINK_ROUTE;
        *index = (uint32_t)best;
        return &l->enis[l->routes[best].eni];
    }
    *how = HP_TRACE_BACKEND_LINK_HASH;
    *index = hp_mix32(p->hash, 0, 0x6c696e6bu) % l->n_enis;
    return &l->enis[*index];
}

static enum hp_drop decide(const struct hp_ctx *c, const struct hp_pkt *pkt, const struct hp_parsed *p,
                           int32_t sid, struct hp_flow_plan *plan)
{
    const struct hp_engine *e = c->e;
    const struct hp_service *s = &e->services[sid];
    const struct hp_service_config *sc = &s->cfg;
    const struct hp_link_config *l = s->link;

    if (!serves(l, p->proto) || !reaches(l, p->dip))
        return HP_DROP_NO_SERVICE;
    if (p->proto == IPPROTO_TCP_ && (p->tcp_flags & (TCP_SYN | TCP_ACK | TCP_RST)) != TCP_SYN)
        return HP_DROP_NOT_SYN;
    if (sc->flags & HP_SVC_DISABLED)
        return HP_DROP_SERVICE_DISABLED;
    if (hp_over_mtu(sc, pkt, p))
        return HP_DROP_MTU;
    plan->sg_ingress_rule = hp_sg_match(&c->port->sg[HP_SG_INGRESS], p->proto, p->sip, p->dport);
    if (plan->sg_ingress_rule == HP_TRACE_SG_NONE)
        return HP_DROP_SG_INGRESS;
    const struct hp_link_eni *eni = choose_eni(l, p, &plan->backend_how, &plan->backend_index);
    /* the destination is kept: backend = (dst, dport) */
    plan->out_port = eni->port;
    plan->snat_ip = eni->ip;
    plan->backend_ip = p->dip;
    plan->backend_port = p->dport;
    plan->sg_egress_rule = hp_sg_match(&e->ports[eni->port].sg[HP_SG_EGRESS], p->proto, p->dip, p->dport);
    if (plan->sg_egress_rule == HP_TRACE_SG_NONE)
        return HP_DROP_SG_EGRESS;
    return HP_DROP_NONE;
}

/* Stage 2's hint for a packet that will probably open a flow: the bucket of its first
 * SNAT candidate on the ENI it will leave by. */
static void prefetch_new_flow(const struct hp_ctx *c, const struct hp_parsed *p, int32_t sid)
{
    const struct hp_service *s = &c->e->services[sid];
    uint8_t how;
    uint32_t index;
    const struct hp_link_eni *eni = choose_eni(s->link, p, &how, &index);
    struct hp_flow f = {.out_port = (uint8_t)eni->port, .proto = p->proto, .snat_ip = eni->ip,
                        .backend_ip = p->dip, .backend_port = p->dport};
    hp_snat_prefetch(c->e, s, &f, p->hash);
}

/* A packet of no flow to a link ENI's address, from the customer's side: one that would
 * open a connection is refused as link_one_way; anything else is a stale no_flow. */
static enum hp_drop reply_miss(const struct hp_ctx *c, const struct hp_parsed *p, int32_t sid,
                               bool *rst)
{
    *rst = false;
    bool opens = p->proto == IPPROTO_UDP_ ||
                 (p->proto == IPPROTO_TCP_ && (p->tcp_flags & (TCP_SYN | TCP_ACK | TCP_RST)) == TCP_SYN);
    return opens ? HP_DROP_LINK_ONE_WAY : HP_DROP_NO_FLOW;
}

const struct hp_kind_ops hp_kind_vpc_nat = {
    .name = "vpc_nat",
    .decide = decide,
    .reply_miss = reply_miss,
    .prefetch_new_flow = prefetch_new_flow,
};

static bool link_config_ok(struct hp_engine *e, const struct hp_link_config *l)
{
    if (!hp_port_ok(e, l->in_port))
        return false;
    if (l->proto != 0 && l->proto != IPPROTO_TCP_ && l->proto != IPPROTO_UDP_) {
        hp_set_error(e, "a VPC link carries TCP (6), UDP (17) or both (0), not protocol %u", l->proto);
        return false;
    }
    if (l->flags & ~HP_SVC_DISABLED) {
        hp_set_error(e, "a VPC link takes only the disabled flag, not 0x%02x", l->flags);
        return false;
    }
    if (l->n_prefixes == 0 || l->n_prefixes > HP_LINK_MAX_PREFIXES) {
        hp_set_error(e, "a VPC link needs 1 to %u destination prefixes, not %u", HP_LINK_MAX_PREFIXES,
                     l->n_prefixes);
        return false;
    }
    for (uint32_t i = 0; i < l->n_prefixes; i++)
        if (l->prefixes[i].len > 32) {
            hp_set_error(e, "VPC link prefix %u has length /%u, above /32", i, l->prefixes[i].len);
            return false;
        }
    if (l->n_enis == 0 || l->n_enis > HP_LINK_MAX_ENIS) {
        hp_set_error(e, "a VPC link needs 1 to %u ENIs, not %u", HP_LINK_MAX_ENIS, l->n_enis);
        return false;
    }
    for (uint32_t i = 0; i < l->n_enis; i++) {
        const struct hp_link_eni *eni = &l->enis[i];
        if (!hp_port_ok(e, eni->port))
            return false;
        if (eni->port == l->in_port || eni->ip == 0) {
            hp_set_error(e, "VPC link ENI %u needs an address and a port other than the attachment's (%u)",
                         i, l->in_port);
            return false;
        }
    }
    if (l->n_routes > HP_LINK_MAX_ROUTES) {
        hp_set_error(e, "a VPC link has at most %u routes, not %u", HP_LINK_MAX_ROUTES, l->n_routes);
        return false;
    }
    for (uint32_t i = 0; i < l->n_routes; i++)
        if (l->routes[i].prefix_len > 32 || l->routes[i].eni >= l->n_enis) {
            hp_set_error(e, "VPC link route %u is invalid (/%u to ENI %u of %u)", i,
                         l->routes[i].prefix_len, l->routes[i].eni, l->n_enis);
            return false;
        }
    if (e->ports[l->in_port].prefix_service) {
        hp_set_error(e, "port %u already attaches VPC link service %u", l->in_port,
                     e->ports[l->in_port].prefix_service - 1u);
        return false;
    }
    return true;
}

int hp_link_add(struct hp_engine *e, const struct hp_link_config *l)
{
    if (!link_config_ok(e, l))
        return -1;
    struct hp_service_config c = {
        .in_port = l->in_port, .out_port = l->enis[0].port, .proto = l->proto, .flags = l->flags,
        .snat_ip = l->enis[0].ip, .snat_port_min = l->snat_port_min, .snat_port_max = l->snat_port_max,
        .idle_timeout_s = l->idle_timeout_s ? l->idle_timeout_s : HP_LINK_IDLE_TIMEOUT_S,
        .mtu = l->mtu, .mss_clamp = l->mss_clamp,
    };
    if (hp_service_check_limits(e, &c) != 0)
        return -1;
    uint32_t n_protos = l->proto == 0 ? 2 : 1;
    struct hp_service s = {.kind = HP_KIND_VPC_NAT, .cfg = c, .n_keys = 1 + l->n_enis * n_protos};
    s.keys = hp_calloc(e, s.n_keys, sizeof *s.keys);
    s.link = hp_dup_array(e, l, 1, sizeof *l, "VPC link tables");
    if (!s.keys || !s.link) {
        hp_free(e, s.keys, s.n_keys, sizeof *s.keys);
        hp_free(e, s.link, 1, sizeof *s.link);
        hp_set_error(e, "out of memory for a VPC link");
        return -1;
    }
    s.keys[0] = (struct hp_index_key){.type = HP_KEY_PREFIX_PORT, .port = l->in_port};
    uint32_t k = 1;
    for (uint32_t i = 0; i < l->n_enis; i++)
        for (uint32_t j = 0; j < n_protos; j++) {
            uint8_t proto = l->proto ? l->proto : (j == 0 ? IPPROTO_TCP_ : IPPROTO_UDP_);
            s.keys[k++] = (struct hp_index_key){.type = HP_KEY_SNAT, .port = l->enis[i].port,
                                                .proto = proto, .ip = l->enis[i].ip};
        }
    return hp_service_install(e, &s);
}
