/* hp_sg.c — security-group rules: allow-only, checked once when a flow is created.
 *
 * Statefulness comes from the flow table: a packet of an existing flow, in either
 * direction, is never checked again, so replies of an allowed flow always pass — as on
 * AWS, where NLB and PrivateLink ENIs track every flow. A port whose group is not
 * enabled lets everything through; an enabled group with no rules lets nothing through.
 */
#include "hp_internal.h"

static bool rule_matches(const struct hp_sg_rule *r, uint8_t proto, uint32_t ip, uint16_t port)
{
    if (r->proto != 0 && r->proto != proto)
        return false;
    uint32_t mask = r->prefix_len == 0 ? 0 : ~0u << (32 - r->prefix_len);
    if ((ip & mask) != (r->cidr & mask))
        return false;
    if (r->proto == 0)
        return true; /* "all traffic" rules carry no port range */
    return port >= r->port_lo && port <= r->port_hi;
}

/* Which rule of `sg` lets (proto, ip, port) through: its index, HP_TRACE_SG_OPEN when
 * the group is not enabled, HP_TRACE_SG_NONE when no rule matches (refused). `port` is
 * the L4 destination port, or the ICMP type for ICMP. */
int32_t hp_sg_match(const struct hp_sg *sg, uint8_t proto, uint32_t ip, uint16_t port)
{
    if (!sg->enabled)
        return HP_TRACE_SG_OPEN;
    for (uint32_t i = 0; i < sg->n; i++)
        if (rule_matches(&sg->rules[i], proto, ip, port))
            return (int32_t)i;
    return HP_TRACE_SG_NONE;
}
