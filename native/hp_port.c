/* hp_port.c — ports (the ENIs attached to the forwarder), their security groups and
 * their counters. A port is its MAC, its peer's MAC (the VPC router's, configured or
 * learnt from what arrives) and the addresses it answers ARP for.
 */
#include <string.h>

#include "hp_internal.h"

static bool mac_is_zero(const uint8_t *m)
{
    return !(m[0] | m[1] | m[2] | m[3] | m[4] | m[5]);
}

bool hp_port_ok(struct hp_engine *e, uint16_t port)
{
    if (port >= e->cfg.max_ports || !e->ports[port].present) {
        hp_set_error(e, "port %u does not exist", port);
        return false;
    }
    return true;
}

int hp_port_set(struct hp_engine *e, uint16_t port, const struct hp_port_config *cfg)
{
    if (port >= e->cfg.max_ports) {
        hp_set_error(e, "port %u is out of range (the engine has %u ports)", port, e->cfg.max_ports);
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

int hp_port_remove(struct hp_engine *e, uint16_t port)
{
    if (!hp_port_ok(e, port))
        return -1;
    for (uint32_t i = 0; i < e->cfg.max_services; i++) {
        const struct hp_service *s = &e->services[i];
        if (s->present && hp_service_uses_port(s, port)) {
            hp_set_error(e, "port %u is used by service %u; remove the service first", port, i);
            return -1;
        }
    }
    hp_flow_remove_where(e, -1, port);
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

int hp_port_sg_set(struct hp_engine *e, uint16_t port, int direction,
                   const struct hp_sg_rule *rules, uint32_t n)
{
    if (!hp_port_ok(e, port) || !direction_ok(e, direction))
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
    struct hp_sg_rule *copy = hp_dup_array(e, rules, n, sizeof *copy, "rules");
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
    if (!hp_port_ok(e, port) || !direction_ok(e, direction))
        return -1;
    struct hp_sg *sg = &e->ports[port].sg[direction];
    hp_free(e, sg->rules, sg->n, sizeof *sg->rules);
    memset(sg, 0, sizeof *sg);
    return 0;
}

uint64_t hp_port_drop(const struct hp_engine *e, uint16_t port, uint32_t reason)
{
    if (port >= e->cfg.max_ports || reason >= HP_DROP__COUNT)
        return 0;
    return e->ports[port].drops[reason];
}

uint64_t hp_port_counter(const struct hp_engine *e, uint16_t port, uint32_t counter)
{
    if (port >= e->cfg.max_ports || counter >= HP_CNT__COUNT)
        return 0;
    return e->ports[port].counters[counter];
}
