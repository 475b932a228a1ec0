/* hp_engine.c — ports, services, and the packet loop: hp_process().
 *
 * The life of a frame (classify, then act; hp_process overlaps the lookups of a group):
 *   1. Ethernet: length, one VLAN tag at most, destination MAC ours or broadcast.
 *   2. ARP requests for a port's addresses are answered in place; other ARP is dropped.
 *   3. IPv4 is parsed with every bound checked (hp_parse.c); ICMP errors go to
 *      icmp_error(), which translates them for the flow they quote.
 *   4. The flow table is looked up with the packet's own 5-tuple on its port. A hit
 *      gives the flow and the direction; an idle hit is expired first and is a miss.
 *   5. A miss is a new flow if the packet opens one (TCP SYN, UDP, ICMP echo request)
 *      toward a service listening on this port: security groups, backend by Maglev,
 *      SNAT port, insert (new_flow). Anything else is dropped with its reason, and
 *      TCP segments to an NLB listener or its SNAT address are answered with a RST.
 *   6. forward(): TCP state, MTU, MSS clamp, NAT rewrite, Ethernet addresses, counters.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "hp_csum.h"
#include "hp_internal.h"

#ifndef HP_BUILD_INFO
#define HP_BUILD_INFO "unknown"
#endif

#define HP_EXPIRED_RING 1024u /* power of two: the ring's indices wrap with uint32 */

static __thread char create_error[256];

/* ---- names, errors, memory ------------------------------------------------------------ */

struct hp_label {
    const char *name, *text;
};
#define HP_X(e, name, text) {name, text},
static const struct hp_label drop_labels[] = {HP_DROP_REASONS(HP_X)};
static const struct hp_label counter_labels[] = {HP_EVENT_COUNTERS(HP_X)};
#undef HP_X
static const struct hp_label unknown_label = {"?", "?"};

static const struct hp_label *drop_label(uint32_t r)
{
    return r < HP_DROP__COUNT ? &drop_labels[r] : &unknown_label;
}

static const struct hp_label *counter_label(uint32_t c)
{
    return c < HP_CNT__COUNT ? &counter_labels[c] : &unknown_label;
}

uint32_t hp_drop_reason_count(void) { return HP_DROP__COUNT; }
const char *hp_drop_reason_name(uint32_t r) { return drop_label(r)->name; }
const char *hp_drop_reason_text(uint32_t r) { return drop_label(r)->text; }
uint32_t hp_counter_count(void) { return HP_CNT__COUNT; }
const char *hp_counter_name(uint32_t c) { return counter_label(c)->name; }
const char *hp_counter_text(uint32_t c) { return counter_label(c)->text; }
const char *hp_build_info(void) { return HP_BUILD_INFO; }

void hp_set_error(struct hp_engine *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e ? e->error : create_error, sizeof create_error, fmt, ap);
    va_end(ap);
}

const char *hp_last_error(const struct hp_engine *e) { return e ? e->error : create_error; }

void *hp_calloc(struct hp_engine *e, size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (p)
        e->bytes_allocated += n * size;
    return p;
}

void hp_free(struct hp_engine *e, void *p, size_t n, size_t size)
{
    if (!p)
        return;
    e->bytes_allocated -= n * size;
    free(p);
}

/* Tables of megabytes (the flow table, its index) come from mmap, advised to use
 * transparent huge pages and touched at once: a million flows span 100 MB, and with 4 KiB
 * pages nearly every lookup would also miss the TLB. Touching now moves the page faults
 * to engine creation instead of the first packets of a million new flows. */
#define HP_TABLE_MMAP_MIN (2u << 20)

void *hp_table_alloc(struct hp_engine *e, size_t n, size_t size)
{
    size_t bytes = (n ? n : 1) * size;
    void *p;
    if (bytes < HP_TABLE_MMAP_MIN) {
        /* cache-line aligned, like the mmap'd ones: a flow or a bucket is one line */
        p = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
        if (!p)
            return NULL;
    } else {
        p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            return NULL;
        madvise(p, bytes, MADV_HUGEPAGE); /* advice only: without THP it is plain pages */
    }
    memset(p, 0, bytes);
    e->bytes_allocated += bytes;
    return p;
}

void hp_table_free(struct hp_engine *e, void *p, size_t n, size_t size)
{
    size_t bytes = (n ? n : 1) * size;
    if (!p)
        return;
    if (bytes < HP_TABLE_MMAP_MIN)
        free(p);
    else
        munmap(p, bytes);
    e->bytes_allocated -= bytes;
}

uint64_t hp_engine_memory(const struct hp_engine *e) { return e->bytes_allocated + sizeof *e; }

uint64_t hp_flow_bytes_per_flow(const struct hp_engine *e)
{
    const struct hp_flow_table *ft = &e->ft;
    uint64_t bytes = (uint64_t)ft->capacity * (sizeof *ft->slots + sizeof *ft->free_list) +
                     ((uint64_t)ft->bucket_mask + 1) * sizeof *ft->buckets;
    return bytes / ft->capacity;
}

/* ---- engine --------------------------------------------------------------------------- */

static bool is_prime(uint32_t n)
{
    if (n < 2)
        return false;
    for (uint32_t d = 2; (uint64_t)d * d <= n; d++)
        if (n % d == 0)
            return false;
    return true;
}

static uint32_t min_u32(uint32_t a, uint32_t b) { return a < b ? a : b; }

static void update_min_timeout(struct hp_engine *e)
{
    const struct hp_engine_config *c = &e->cfg;
    uint32_t m = min_u32(min_u32(c->timeout_tcp_syn_s, c->timeout_tcp_fin_s),
                         min_u32(c->timeout_tcp_close_s, min_u32(c->timeout_udp_s, c->timeout_icmp_s)));
    for (uint32_t i = 0; i < c->max_services; i++)
        if (e->services[i].present && e->services[i].cfg.idle_timeout_s)
            m = min_u32(m, e->services[i].cfg.idle_timeout_s);
    e->min_timeout_s = m;
}

struct hp_engine *hp_engine_create(const struct hp_engine_config *cfg_in)
{
    struct hp_engine_config cfg = *cfg_in;
    if (cfg.flow_capacity == 0 || cfg.flow_capacity > (1u << 30)) {
        hp_set_error(NULL, "flow_capacity must be between 1 and %u, not %u", 1u << 30,
                     cfg.flow_capacity);
        return NULL;
    }
    if (!cfg.max_services) cfg.max_services = 1024;
    if (!cfg.maglev_size) cfg.maglev_size = 65537;
    if (!cfg.hash_seed) cfg.hash_seed = 0x76706331u;
    if (!cfg.timeout_tcp_syn_s) cfg.timeout_tcp_syn_s = 30;
    if (!cfg.timeout_tcp_fin_s) cfg.timeout_tcp_fin_s = 60;
    if (!cfg.timeout_tcp_close_s) cfg.timeout_tcp_close_s = 10;
    if (!cfg.timeout_udp_s) cfg.timeout_udp_s = 120;
    if (!cfg.timeout_icmp_s) cfg.timeout_icmp_s = 60;
    if (!cfg.expiry_scan_per_batch) cfg.expiry_scan_per_batch = 16;
    if (!is_prime(cfg.maglev_size) || cfg.maglev_size > 0xfffe0u) {
        hp_set_error(NULL, "maglev_size must be a prime below 1048544, not %u", cfg.maglev_size);
        return NULL;
    }
    if (cfg.max_services > 65535) {
        hp_set_error(NULL, "max_services must be at most 65535, not %u", cfg.max_services);
        return NULL;
    }
    struct hp_engine *e = calloc(1, sizeof *e);
    if (!e) {
        hp_set_error(NULL, "out of memory for the engine");
        return NULL;
    }
    e->cfg = cfg;
    uint32_t index_size = 4;
    while (index_size < cfg.max_services * 4u)
        index_size <<= 1;
    e->services = hp_calloc(e, cfg.max_services, sizeof *e->services);
    e->svc_index.keys = hp_calloc(e, index_size, sizeof *e->svc_index.keys);
    e->svc_index.ids = hp_calloc(e, index_size, sizeof *e->svc_index.ids);
    e->svc_index.mask = index_size - 1;
    e->expired_cap = HP_EXPIRED_RING;
    e->expired = hp_calloc(e, e->expired_cap, sizeof *e->expired);
    if (!e->services || !e->svc_index.keys || !e->svc_index.ids || !e->expired ||
        hp_flow_table_init(e, cfg.flow_capacity, cfg.hash_seed) != 0) {
        hp_set_error(NULL, "out of memory for %u flows", cfg.flow_capacity);
        hp_engine_destroy(e);
        return NULL;
    }
    update_min_timeout(e);
    return e;
}

static void service_free(struct hp_engine *e, struct hp_service *s)
{
    hp_free(e, s->backends, s->n_backends, sizeof *s->backends);
    hp_free(e, s->maglev, e->cfg.maglev_size, sizeof *s->maglev);
    memset(s, 0, sizeof *s);
}

void hp_engine_destroy(struct hp_engine *e)
{
    if (!e)
        return;
    for (uint32_t i = 0; e->services && i < e->cfg.max_services; i++)
        if (e->services[i].present)
            service_free(e, &e->services[i]);
    for (uint32_t p = 0; p < HP_MAX_PORTS; p++)
        for (int d = 0; d < 2; d++)
            hp_free(e, e->ports[p].sg[d].rules, e->ports[p].sg[d].n, sizeof(struct hp_sg_rule));
    hp_flow_table_free(e);
    free(e->services);
    free(e->svc_index.keys);
    free(e->svc_index.ids);
    free(e->expired);
    free(e);
}

/* ---- ports ---------------------------------------------------------------------------- */

static bool mac_is_zero(const uint8_t *m)
{
    return !(m[0] | m[1] | m[2] | m[3] | m[4] | m[5]);
}

static bool port_ok(struct hp_engine *e, uint16_t port)
{
    if (port >= HP_MAX_PORTS || !e->ports[port].present) {
        hp_set_error(e, "port %u does not exist", port);
        return false;
    }
    return true;
}

int hp_port_set(struct hp_engine *e, uint16_t port, const struct hp_port_config *cfg)
{
    if (port >= HP_MAX_PORTS) {
        hp_set_error(e, "port %u is out of range (the engine has %u ports)", port, HP_MAX_PORTS);
        return -1;
    }
    if (cfg->n_addrs > HP_PORT_MAX_ADDRS) {
        hp_set_error(e, "port %u: %u addresses, at most %u", port, cfg->n_addrs, HP_PORT_MAX_ADDRS);
        return -1;
    }
    if (mac_is_zero(cfg->mac) || (cfg->mac[0] & 1)) {
        hp_set_error(e, "port %u: its MAC must be a non-zero unicast address", port);
        return -1;
    }
    struct hp_port *p = &e->ports[port];
    p->present = true;
    p->cfg = *cfg;
    p->peer_learnt = mac_is_zero(cfg->peer_mac);
    return 0;
}

static void remove_flows_where(struct hp_engine *e, int service, int port)
{
    for (uint32_t i = 0; i < e->ft.capacity; i++) {
        struct hp_flow *f = &e->ft.slots[i];
        if (f->live && ((service >= 0 && f->service == service) ||
                        (port >= 0 && (f->in_port == port || f->out_port == port))))
            hp_flow_remove(e, i, false);
    }
}

int hp_port_remove(struct hp_engine *e, uint16_t port)
{
    if (!port_ok(e, port))
        return -1;
    for (uint32_t i = 0; i < e->cfg.max_services; i++) {
        const struct hp_service *s = &e->services[i];
        if (s->present && (s->cfg.in_port == port || s->cfg.out_port == port)) {
            hp_set_error(e, "port %u is used by service %u; remove the service first", port, i);
            return -1;
        }
    }
    remove_flows_where(e, -1, port);
    struct hp_port *p = &e->ports[port];
    for (int d = 0; d < 2; d++)
        hp_free(e, p->sg[d].rules, p->sg[d].n, sizeof(struct hp_sg_rule));
    memset(p, 0, sizeof *p);
    return 0;
}

static bool direction_ok(struct hp_engine *e, int direction)
{
    if (direction == HP_SG_INGRESS || direction == HP_SG_EGRESS)
        return true;
    hp_set_error(e, "security group direction must be ingress (0) or egress (1), not %d", direction);
    return false;
}

/* A copy of `n` elements that the engine owns and accounts for; NULL (error set) when
 * memory runs out. */
static void *dup_array(struct hp_engine *e, const void *src, uint32_t n, size_t size, const char *what)
{
    void *copy = hp_calloc(e, n, size);
    if (!copy) {
        hp_set_error(e, "out of memory for %u %s", n, what);
        return NULL;
    }
    if (n)
        memcpy(copy, src, (size_t)n * size);
    return copy;
}

int hp_port_sg_set(struct hp_engine *e, uint16_t port, int direction,
                   const struct hp_sg_rule *rules, uint32_t n)
{
    if (!port_ok(e, port) || !direction_ok(e, direction))
        return -1;
    if (n > HP_MAX_SG_RULES) {
        hp_set_error(e, "port %u: %u security group rules, at most %u", port, n, HP_MAX_SG_RULES);
        return -1;
    }
    for (uint32_t i = 0; i < n; i++) {
        const struct hp_sg_rule *r = &rules[i];
        if (r->prefix_len > 32 || r->port_lo > r->port_hi ||
            (r->proto != 0 && r->proto != IPPROTO_TCP_ && r->proto != IPPROTO_UDP_ &&
             r->proto != IPPROTO_ICMP_)) {
            hp_set_error(e, "port %u: security group rule %u is invalid (proto %u, /%u, ports %u-%u)",
                         port, i, r->proto, r->prefix_len, r->port_lo, r->port_hi);
            return -1;
        }
    }
    struct hp_sg_rule *copy = dup_array(e, rules, n, sizeof *copy, "rules");
    if (!copy)
        return -1;
    struct hp_sg *sg = &e->ports[port].sg[direction];
    hp_free(e, sg->rules, sg->n, sizeof *sg->rules);
    sg->rules = copy;
    sg->n = n;
    sg->enabled = true;
    return 0;
}

int hp_port_sg_clear(struct hp_engine *e, uint16_t port, int direction)
{
    if (!port_ok(e, port) || !direction_ok(e, direction))
        return -1;
    struct hp_sg *sg = &e->ports[port].sg[direction];
    hp_free(e, sg->rules, sg->n, sizeof *sg->rules);
    memset(sg, 0, sizeof *sg);
    return 0;
}

/* ---- services ------------------------------------------------------------------------- */

static uint64_t svc_key(int kind, uint16_t port, uint8_t proto, uint32_t ip, uint16_t l4port)
{
    uint64_t p2 = proto == IPPROTO_TCP_ ? 1 : proto == IPPROTO_UDP_ ? 2 : 3;
    return (1ull << 63) | ((uint64_t)kind << 58) | (p2 << 56) | ((uint64_t)(port & 0xff) << 48) |
           ((uint64_t)l4port << 32) | ip;
}

static int32_t svc_index_find(const struct hp_engine *e, uint64_t key)
{
    const struct hp_svc_index *ix = &e->svc_index;
    for (uint32_t i = hp_mix32(key, 0, 0) & ix->mask;; i = (i + 1) & ix->mask) {
        if (ix->keys[i] == key)
            return ix->ids[i];
        if (ix->keys[i] == 0)
            return -1;
    }
}

static void svc_index_put(struct hp_engine *e, uint64_t key, int32_t id)
{
    struct hp_svc_index *ix = &e->svc_index;
    for (uint32_t i = hp_mix32(key, 0, 0) & ix->mask;; i = (i + 1) & ix->mask) {
        if (ix->keys[i] == key)
            return; /* first one wins: SNAT addresses may be shared by services */
        if (ix->keys[i] == 0) {
            ix->keys[i] = key;
            ix->ids[i] = id;
            return;
        }
    }
}

/* The index holds at most two keys per service in 4 slots per service, so probing ends. */
static void svc_index_rebuild(struct hp_engine *e)
{
    update_min_timeout(e);
    memset(e->svc_index.keys, 0, ((size_t)e->svc_index.mask + 1) * sizeof *e->svc_index.keys);
    for (uint32_t i = 0; i < e->cfg.max_services; i++) {
        const struct hp_service *s = &e->services[i];
        if (!s->present)
            continue;
        const struct hp_service_config *c = &s->cfg;
        svc_index_put(e, svc_key(0, c->in_port, c->proto, c->vip, c->vport), (int32_t)i);
        svc_index_put(e, svc_key(1, c->out_port, c->proto, c->snat_ip, 0), (int32_t)i);
    }
}

static bool service_ok(struct hp_engine *e, int service)
{
    if (service < 0 || (uint32_t)service >= e->cfg.max_services || !e->services[service].present) {
        hp_set_error(e, "service %d does not exist", service);
        return false;
    }
    return true;
}

int hp_service_add(struct hp_engine *e, const struct hp_service_config *cfg_in)
{
    struct hp_service_config c = *cfg_in;
    if (!port_ok(e, c.in_port) || !port_ok(e, c.out_port))
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
    if (c.snat_port_min == 0 && c.snat_port_max == 0) {
        c.snat_port_min = 1024;
        c.snat_port_max = 65535;
    }
    if (c.snat_port_min == 0 || c.snat_port_min > c.snat_port_max) {
        hp_set_error(e, "SNAT port range %u-%u is empty or starts at 0", c.snat_port_min,
                     c.snat_port_max);
        return -1;
    }
    if (c.mtu != 0 && c.mtu < 68) {
        hp_set_error(e, "MTU %u is below IPv4's minimum of 68", c.mtu);
        return -1;
    }
    if (svc_index_find(e, svc_key(0, c.in_port, c.proto, c.vip, c.vport)) >= 0) {
        hp_set_error(e, "port %u already has a service on %u.%u.%u.%u:%u/%u", c.in_port,
                     c.vip >> 24, (c.vip >> 16) & 0xff, (c.vip >> 8) & 0xff, c.vip & 0xff,
                     c.vport, c.proto);
        return -1;
    }
    for (uint32_t i = 0; i < e->cfg.max_services; i++) {
        struct hp_service *s = &e->services[i];
        if (s->present)
            continue;
        memset(s, 0, sizeof *s);
        s->present = true;
        s->cfg = c;
        svc_index_rebuild(e);
        return (int)i;
    }
    hp_set_error(e, "all %u services are in use", e->cfg.max_services);
    return -1;
}

int hp_service_remove(struct hp_engine *e, int service)
{
    if (!service_ok(e, service))
        return -1;
    remove_flows_where(e, service, -1);
    service_free(e, &e->services[service]);
    svc_index_rebuild(e);
    return 0;
}

int hp_service_set_flags(struct hp_engine *e, int service, uint8_t flags)
{
    if (!service_ok(e, service))
        return -1;
    e->services[service].cfg.flags = flags;
    return 0;
}

int hp_service_set_backends(struct hp_engine *e, int service, const struct hp_backend *b,
                            uint32_t n)
{
    if (!service_ok(e, service))
        return -1;
    if (n > HP_MAX_BACKENDS) {
        hp_set_error(e, "service %d: %u backends, at most %u", service, n, HP_MAX_BACKENDS);
        return -1;
    }
    struct hp_service *s = &e->services[service];
    for (uint32_t i = 0; i < n; i++)
        if (s->cfg.proto != IPPROTO_ICMP_ && b[i].port == 0) {
            hp_set_error(e, "service %d: backend %u has port 0", service, i);
            return -1;
        }
    struct hp_backend *copy = dup_array(e, b, n, sizeof *copy, "backends");
    if (!copy)
        return -1;
    uint16_t *table = hp_maglev_build(e, copy, n);
    hp_free(e, s->backends, s->n_backends, sizeof *s->backends);
    hp_free(e, s->maglev, e->cfg.maglev_size, sizeof *s->maglev);
    s->backends = copy;
    s->n_backends = n;
    s->maglev = table;
    return 0;
}

int hp_service_reset_backend(struct hp_engine *e, int service, uint32_t ip, uint16_t port)
{
    if (!service_ok(e, service))
        return -1;
    int marked = 0;
    for (uint32_t i = 0; i < e->ft.capacity; i++) {
        struct hp_flow *f = &e->ft.slots[i];
        if (f->live && f->service == service && f->backend_ip == ip && f->backend_port == port) {
            f->flags |= HP_FLOW_RESET;
            marked++;
        }
    }
    return marked;
}

uint32_t hp_flow_timeout_s(const struct hp_engine *e, const struct hp_flow *f)
{
    const struct hp_service_config *c = &e->services[f->service].cfg;
    switch (f->proto) {
    case IPPROTO_TCP_:
        switch (f->tcp_state) {
        case HP_TCP_SYN_SENT: return e->cfg.timeout_tcp_syn_s;
        case HP_TCP_FIN_WAIT: return e->cfg.timeout_tcp_fin_s;
        case HP_TCP_CLOSING:
        case HP_TCP_CLOSED: return e->cfg.timeout_tcp_close_s;
        default: return c->idle_timeout_s ? c->idle_timeout_s : 350;
        }
    case IPPROTO_UDP_: return c->idle_timeout_s ? c->idle_timeout_s : e->cfg.timeout_udp_s;
    default: return c->idle_timeout_s ? c->idle_timeout_s : e->cfg.timeout_icmp_s;
    }
}

/* ---- replies built in place ----------------------------------------------------------- */

static void count_tx(struct hp_port *p, uint32_t len)
{
    p->counters[HP_CNT_TX_PACKETS]++;
    p->counters[HP_CNT_TX_BYTES] += len;
}

static enum hp_drop arp_reply(struct hp_port *port, struct hp_pkt *pkt, uint16_t l3)
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
static void tcp_rst_reply(struct hp_port *port, struct hp_pkt *pkt, const struct hp_parsed *p)
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

/* ---- the packet path ------------------------------------------------------------------ */

struct ctx {
    struct hp_engine *e;
    uint16_t in_port;
    struct hp_port *port;
};

static void tcp_track(struct hp_flow *f, int dir, uint8_t flags)
{
    if (flags & TCP_RST) {
        f->tcp_state = HP_TCP_CLOSED;
        return;
    }
    if (f->tcp_state == HP_TCP_SYN_SENT && dir == 1 && (flags & (TCP_SYN | TCP_ACK)) == (TCP_SYN | TCP_ACK))
        f->tcp_state = HP_TCP_ESTABLISHED;
    if (flags & TCP_FIN) {
        f->flags |= (uint8_t)HP_FLOW_FIN(dir);
        if (f->tcp_state == HP_TCP_ESTABLISHED || f->tcp_state == HP_TCP_FIN_WAIT ||
            f->tcp_state == HP_TCP_SYN_SENT)
            f->tcp_state = (f->flags & HP_FLOW_BOTH_FINS) == HP_FLOW_BOTH_FINS ? HP_TCP_CLOSING
                                                                                : HP_TCP_FIN_WAIT;
    }
}

/* Bytes of IPv4, TCP/UDP headers in front of each segment's payload. */
static uint32_t segment_headers(const uint8_t *frame, const struct hp_parsed *p)
{
    uint32_t l4_hdr = p->proto == IPPROTO_TCP_ ? (frame[p->l4_off + 12] >> 4) * 4u : 8u;
    return (uint32_t)(p->l4_off - p->l3_off) + l4_hdr;
}

/* The largest IPv4 packet a frame stands for: itself, or each segment of a GSO frame
 * (what the MTU applies to: the receiving kernel cuts the frame before the wire would). */
static uint32_t packet_size(const struct hp_pkt *pkt, const struct hp_parsed *p)
{
    if (HP_LIKELY(!pkt->gso_size))
        return p->ip_len;
    uint32_t seg = segment_headers(pkt->data, p) + pkt->gso_size;
    return seg < p->ip_len ? seg : p->ip_len;
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
        uint32_t hdrs = segment_headers(pkt->data, p);
        uint32_t payload = p->ip_len > hdrs ? p->ip_len - hdrs : 0;
        packets = payload > pkt->gso_size ? (payload + pkt->gso_size - 1) / pkt->gso_size : 1;
    }
    f->packets[dir] += packets;
    f->bytes[dir] += pkt->len;
    pkt->verdict = HP_VERDICT_FORWARD;
    pkt->out_port = out;
    count_tx(op, pkt->len);
    return HP_DROP_NONE;
}

static enum hp_drop forward(struct ctx *c, struct hp_pkt *pkt, const struct hp_parsed *p,
                            struct hp_flow *f, int dir)
{
    struct hp_engine *e = c->e;
    const struct hp_service_config *sc = &e->services[f->service].cfg;
    bool partial = pkt->flags & HP_PKT_CSUM_PARTIAL;
    bool keep_partial = partial && (pkt->flags & HP_PKT_CSUM_OFFLOAD);
    if (HP_UNLIKELY(pkt->gso_size && !keep_partial))
        return HP_DROP_GSO_NO_OFFLOAD;
    if (HP_UNLIKELY(sc->mtu && packet_size(pkt, p) > sc->mtu))
        return HP_DROP_MTU;
    if (f->proto == IPPROTO_TCP_) {
        tcp_track(f, dir, p->tcp_flags);
        if (HP_UNLIKELY((p->tcp_flags & TCP_SYN) && sc->mss_clamp) &&
            hp_tcp_clamp_mss(pkt->data, p, sc->mss_clamp, partial))
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

/* A miss on the backend side of a service's SNAT address: the flow is unknown or expired.
 * NLB answers a stale TCP segment with a RST. A SYN is a connection the backend tries to
 * open, which matches no listener and is dropped silently, as is everything else. */
static enum hp_drop reply_side_miss(struct ctx *c, struct hp_pkt *pkt, const struct hp_parsed *p,
                                    int32_t sid)
{
    const struct hp_service *s = &c->e->services[sid];
    bool stale = p->proto == IPPROTO_TCP_ &&
                 (p->tcp_flags & (TCP_SYN | TCP_ACK | TCP_RST)) != TCP_SYN && !(p->tcp_flags & TCP_RST);
    if (stale && (s->cfg.flags & HP_SVC_RST_ON_MISS))
        tcp_rst_reply(c->port, pkt, p);
    return HP_DROP_NO_FLOW;
}

/* The backend a new flow gets: Maglev over the 5-tuple, and over the SYN's sequence
 * number too when the service hashes like NLB. The service must have backends. */
static const struct hp_backend *choose_backend(const struct hp_engine *e, const struct hp_service *s,
                                               const struct hp_parsed *p)
{
    uint64_t a = ((uint64_t)p->sip << 32) | p->dip;
    uint64_t b = ((uint64_t)p->sport << 48) | ((uint64_t)p->dport << 32) | p->proto;
    if (p->proto == IPPROTO_TCP_ && (s->cfg.flags & HP_SVC_HASH_TCP_SEQ))
        b ^= (uint64_t)p->tcp_seq << 8;
    uint32_t h = hp_mix32(a, b, 0x6e6c6221u);
    return &s->backends[s->maglev[h % e->cfg.maglev_size]];
}

/* Stage 2 for a packet whose bucket is empty, so that it opens a flow if anything: warms
 * what new_flow() will read (the Maglev entry, the first SNAT candidate's bucket). */
static void prefetch_new_flow(const struct ctx *c, const struct hp_parsed *p)
{
    const struct hp_engine *e = c->e;
    int32_t sid = svc_index_find(e, svc_key(0, c->in_port, p->proto, p->dip, p->dport));
    if (sid < 0 || !e->services[sid].maglev)
        return;
    const struct hp_service *s = &e->services[sid];
    hp_snat_prefetch(e, s, choose_backend(e, s, p), p->hash);
}

static enum hp_drop new_flow(struct ctx *c, struct hp_pkt *pkt, const struct hp_parsed *p, int32_t sid)
{
    struct hp_engine *e = c->e;
    struct hp_service *s = &e->services[sid];
    const struct hp_service_config *sc = &s->cfg;

    if (p->proto == IPPROTO_TCP_ && (p->tcp_flags & (TCP_SYN | TCP_ACK | TCP_RST)) != TCP_SYN) {
        /* Never answer a RST with a RST. */
        if (!(p->tcp_flags & TCP_RST) && (sc->flags & HP_SVC_RST_ON_MISS))
            tcp_rst_reply(c->port, pkt, p);
        return HP_DROP_NOT_SYN;
    }
    if (p->proto == IPPROTO_ICMP_ && p->icmp_type != 8)
        return HP_DROP_NO_SERVICE;
    if (sc->flags & HP_SVC_DISABLED)
        return HP_DROP_SERVICE_DISABLED;
    if (sc->mtu && packet_size(pkt, p) > sc->mtu)
        return HP_DROP_MTU;
    uint16_t sg_port = p->proto == IPPROTO_ICMP_ ? p->icmp_type : p->dport;
    if (!hp_sg_allows(&c->port->sg[HP_SG_INGRESS], p->proto, p->sip, sg_port))
        return HP_DROP_SG_INGRESS;
    if (!s->maglev)
        return HP_DROP_NO_BACKEND;

    const struct hp_backend *be = choose_backend(e, s, p);

    uint16_t be_sg_port = p->proto == IPPROTO_ICMP_ ? p->icmp_type : be->port;
    if (!hp_sg_allows(&e->ports[sc->out_port].sg[HP_SG_EGRESS], p->proto, be->ip, be_sg_port))
        return HP_DROP_SG_EGRESS;
    if (e->ft.free_top == 0)
        return HP_DROP_FLOW_TABLE_FULL;

    struct hp_flow f = {
        .client_ip = p->sip, .vip = p->dip, .snat_ip = sc->snat_ip, .backend_ip = be->ip,
        .client_port = p->sport, .vport = p->dport, .backend_port = be->port,
        .in_port = c->in_port, .out_port = sc->out_port, .service = (uint16_t)sid,
        .proto = p->proto, .tcp_state = p->proto == IPPROTO_TCP_ ? HP_TCP_SYN_SENT : HP_TCP_NONE,
        .created_s = e->now_s, .last_seen_s = e->now_s,
    };
    if (hp_snat_allocate(e, &f, s, p->hash) != 0)
        return HP_DROP_PORT_ALLOCATION;
    uint32_t slot = hp_flow_insert(e, &f);
    if (slot == HP_NONE)
        return HP_DROP_FLOW_TABLE_FULL;
    c->port->counters[HP_CNT_FLOWS_CREATED]++;
    /* tcp_track below must not see the SYN as anything but the opening segment */
    struct hp_flow *nf = &e->ft.slots[slot];
    return forward(c, pkt, p, nf, 0);
}

static enum hp_drop icmp_error(struct ctx *c, struct hp_pkt *pkt, const struct hp_parsed *p)
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
static enum hp_drop classify(struct ctx *c, struct hp_pkt *pkt, struct hp_parsed *p)
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
        r = arp_reply(port, pkt, p->l3_off);
        if (r == HP_DROP_NONE) {
            pkt->verdict = HP_VERDICT_REPLY;
            count_tx(port, pkt->len);
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

/* Stage 3: the flow lookup and everything after it. */
static enum hp_drop act(struct ctx *c, struct hp_pkt *pkt, const struct hp_parsed *p)
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
        bool reopen = dir == 0 && f->proto == IPPROTO_TCP_ &&
                      (p->tcp_flags & (TCP_SYN | TCP_ACK | TCP_RST)) == TCP_SYN &&
                      (f->tcp_state == HP_TCP_CLOSING || f->tcp_state == HP_TCP_CLOSED);
        if (hp_flow_is_idle(e, f)) {
            hp_flow_remove(e, ref >> 1, true);
        } else if (reopen) {
            /* A new connection on a closed one's 5-tuple: a new flow, maybe a new target. */
            hp_flow_remove(e, ref >> 1, false);
        } else if (HP_UNLIKELY(f->flags & HP_FLOW_RESET)) {
            /* NLB resets the connections of a target that turned unhealthy, from
             * whichever side speaks next. */
            if (p->proto == IPPROTO_TCP_ && !(p->tcp_flags & TCP_RST))
                tcp_rst_reply(c->port, pkt, p);
            hp_flow_remove(e, ref >> 1, false);
            return HP_DROP_TARGET_RESET;
        } else {
            if (HP_UNLIKELY(e->services[f->service].cfg.flags & HP_SVC_DISABLED))
                return HP_DROP_SERVICE_DISABLED;
            return forward(c, pkt, p, f, dir);
        }
    }
    int32_t sid = svc_index_find(e, svc_key(0, c->in_port, p->proto, p->dip, p->dport));
    if (sid >= 0)
        return new_flow(c, pkt, p, sid);
    sid = svc_index_find(e, svc_key(1, c->in_port, p->proto, p->dip, 0));
    if (sid >= 0)
        return reply_side_miss(c, pkt, p, sid);
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

static void finish(struct ctx *c, struct hp_pkt *pkt, enum hp_drop r)
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
            count_tx(c->port, pkt->len); /* a RST went back for the dropped segment */
    }
}

void hp_process(struct hp_engine *e, uint16_t in_port, struct hp_pkt *pkts, uint32_t n,
                uint64_t now_ns)
{
    if (now_ns > e->now_ns) {
        e->now_ns = now_ns;
        e->now_s = (uint32_t)(now_ns / 1000000000ull);
    }
    if (in_port >= HP_MAX_PORTS || !e->ports[in_port].present) {
        for (uint32_t i = 0; i < n; i++) {
            pkts[i].verdict = HP_VERDICT_DROP;
            pkts[i].drop_reason = HP_DROP_UNKNOWN_PORT;
            pkts[i].out_port = in_port;
        }
        /* Counted on the port id's slot while it is in range, so a caller that sends to a
         * port it forgot to add sees it in that port's stats. */
        if (in_port < HP_MAX_PORTS) {
            e->ports[in_port].drops[HP_DROP_UNKNOWN_PORT] += n;
            e->ports[in_port].counters[HP_CNT_DROPPED] += n;
        }
        return;
    }
    struct ctx c = {.e = e, .in_port = in_port, .port = &e->ports[in_port]};
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
        }
    }
    hp_expire(e, now_ns, e->cfg.expiry_scan_per_batch);
}

uint64_t hp_port_drop(const struct hp_engine *e, uint16_t port, uint32_t reason)
{
    if (port >= HP_MAX_PORTS || reason >= HP_DROP__COUNT)
        return 0;
    return e->ports[port].drops[reason];
}

uint64_t hp_port_counter(const struct hp_engine *e, uint16_t port, uint32_t counter)
{
    if (port >= HP_MAX_PORTS || counter >= HP_CNT__COUNT)
        return 0;
    return e->ports[port].counters[counter];
}
