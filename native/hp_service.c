/* hp_service.c — the service table and its index.
 *
 * A service is one translation: a PrivateLink listener, or a VPC link (hp_kind_*.c say
 * what each kind is and how it is configured). Whatever its kind, a service tells the
 * index which packets of no flow are its business, as a list of keys:
 *
 *   HP_KEY_LISTENER (port, proto, ip, l4port)  a listener: packets to ip:l4port arriving
 *                                              on `port` may open a flow;
 *   HP_KEY_SNAT     (port, proto, ip)          an address the service translates to:
 *                                              packets to it on `port` that match no
 *                                              flow are replies to a lost or expired
 *                                              flow (or the far side trying to open one);
 *   HP_KEY_PREFIX_PORT (port)                  the service matches destinations by
 *                                              prefix on `port`, for every packet that
 *                                              no listener there claims.
 *
 * The index is an open-addressing hash from the first two kinds to a service id, rebuilt
 * whole on every service change (control path only), so the data path does one exact
 * lookup per new flow. A prefix service is noted on its port instead (struct hp_port's
 * prefix_service), so that only ports that have one pay for prefix matching, and only
 * after the exact lookup missed.
 */
#include <string.h>

#include "hp_internal.h"

uint64_t hp_svc_key(int type, uint16_t port, uint8_t proto, uint32_t ip, uint16_t l4port)
{
    uint64_t p2 = proto == IPPROTO_TCP_ ? 1 : proto == IPPROTO_UDP_ ? 2 : 3;
    return (1ull << 63) | ((uint64_t)type << 58) | (p2 << 56) | ((uint64_t)(port & 0xff) << 48) |
           ((uint64_t)l4port << 32) | ip;
}

int32_t hp_svc_index_find(const struct hp_engine *e, uint64_t key)
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

/* Grows the index (never shrinks it) so that `n_keys` fill at most half of it, which
 * keeps probing short and makes sure it ends. Returns -1 (error set) when out of memory. */
static int svc_index_reserve(struct hp_engine *e, uint32_t n_keys)
{
    struct hp_svc_index *ix = &e->svc_index;
    uint32_t size = ix->mask + 1;
    if ((uint64_t)n_keys * 2 <= size)
        return 0;
    while ((uint64_t)n_keys * 2 > size)
        size <<= 1;
    uint64_t *keys = hp_calloc(e, size, sizeof *keys);
    int32_t *ids = hp_calloc(e, size, sizeof *ids);
    if (!keys || !ids) {
        hp_free(e, keys, size, sizeof *keys);
        hp_free(e, ids, size, sizeof *ids);
        hp_set_error(e, "out of memory for a service index of %u keys", n_keys);
        return -1;
    }
    hp_free(e, ix->keys, (size_t)ix->mask + 1, sizeof *ix->keys);
    hp_free(e, ix->ids, (size_t)ix->mask + 1, sizeof *ix->ids);
    ix->keys = keys;
    ix->ids = ids;
    ix->mask = size - 1;
    return 0;
}

/* Rebuilds the index from every service's keys, and the flows' shortest timeout. Fails
 * (error set, index unchanged) only when the index must grow and memory runs out. */
static int svc_index_rebuild(struct hp_engine *e)
{
    uint32_t n_keys = 0;
    for (uint32_t i = 0; i < e->cfg.max_services; i++)
        if (e->services[i].present)
            n_keys += e->services[i].n_keys;
    if (svc_index_reserve(e, n_keys) != 0)
        return -1;
    hp_flow_update_min_timeout(e);
    memset(e->svc_index.keys, 0, ((size_t)e->svc_index.mask + 1) * sizeof *e->svc_index.keys);
    for (uint32_t p = 0; p < e->cfg.max_ports; p++)
        e->ports[p].prefix_service = 0;
    for (uint32_t i = 0; i < e->cfg.max_services; i++) {
        const struct hp_service *s = &e->services[i];
        for (uint32_t k = 0; s->present && k < s->n_keys; k++) {
            const struct hp_index_key *key = &s->keys[k];
            if (key->type == HP_KEY_PREFIX_PORT)
                e->ports[key->port].prefix_service = (uint16_t)(i + 1);
            else
                svc_index_put(e, hp_svc_key(key->type, key->port, key->proto, key->ip, key->l4port),
                              (int32_t)i);
        }
    }
    return 0;
}

bool hp_service_ok(struct hp_engine *e, int service)
{
    if (service < 0 || (uint32_t)service >= e->cfg.max_services || !e->services[service].present) {
        hp_set_error(e, "service %d does not exist", service);
        return false;
    }
    return true;
}

/* The limits every kind shares, checked (and defaulted) in place: the SNAT pool
 * (0/0: 1024-65535) and the MTU. Returns -1 (error set) when one is wrong. */
int hp_service_check_limits(struct hp_engine *e, struct hp_service_config *c)
{
    if (c->snat_port_min == 0 && c->snat_port_max == 0) {
        c->snat_port_min = 1024;
        c->snat_port_max = 65535;
    }
    if (c->snat_port_min == 0 || c->snat_port_min > c->snat_port_max) {
        hp_set_error(e, "SNAT port range %u-%u is empty or starts at 0", c->snat_port_min,
                     c->snat_port_max);
        return -1;
    }
    if (c->mtu != 0 && c->mtu < 68) {
        hp_set_error(e, "MTU %u is below IPv4's minimum of 68", c->mtu);
        return -1;
    }
    return 0;
}

/* Whether `port` carries any of the service's traffic (so that it must not go first). */
bool hp_service_uses_port(const struct hp_service *s, uint16_t port)
{
    if (s->cfg.in_port == port || s->cfg.out_port == port)
        return true;
    for (uint32_t k = 0; k < s->n_keys; k++)
        if (s->keys[k].port == port)
            return true;
    return false;
}

void hp_service_free(struct hp_engine *e, struct hp_service *s)
{
    hp_free(e, s->backends, s->n_backends, sizeof *s->backends);
    hp_free(e, s->maglev, e->cfg.maglev_size, sizeof *s->maglev);
    hp_free(e, s->keys, s->n_keys, sizeof *s->keys);
    hp_free(e, s->link, 1, sizeof *s->link);
    memset(s, 0, sizeof *s);
}

/* Takes a service a kind has checked (its kind, configuration and index keys, which the
 * engine now owns) into the first free id, and indexes
 * it. Returns the id, or -1 (error set; `tmpl`'s allocations freed) when every id is
 * taken or memory runs out. */
int hp_service_install(struct hp_engine *e, struct hp_service *tmpl)
{
    for (uint32_t i = 0; i < e->cfg.max_services; i++) {
        struct hp_service *s = &e->services[i];
        if (s->present)
            continue;
        *s = *tmpl;
        s->present = true;
        if (svc_index_rebuild(e) != 0) {
            hp_service_free(e, s);
            return -1;
        }
        hp_flow_state_note_services(e);
        return (int)i;
    }
    hp_set_error(e, "all %u services are in use", e->cfg.max_services);
    hp_service_free(e, tmpl);
    return -1;
}

int hp_service_remove(struct hp_engine *e, int service)
{
    if (!hp_service_ok(e, service))
        return -1;
    hp_flow_remove_where(e, service, -1);
    hp_service_free(e, &e->services[service]);
    svc_index_rebuild(e); /* cannot fail: fewer keys than before */
    hp_flow_state_note_services(e);
    return 0;
}

int hp_service_set_flags(struct hp_engine *e, int service, uint8_t flags)
{
    if (!hp_service_ok(e, service))
        return -1;
    e->services[service].cfg.flags = flags;
    return 0;
}

int hp_service_set_backends(struct hp_engine *e, int service, const struct hp_backend *b,
                            uint32_t n)
{
    if (!hp_service_ok(e, service))
        return -1;
    if (n > HP_MAX_BACKENDS) {
        hp_set_error(e, "service %d: %u backends, at most %u", service, n, HP_MAX_BACKENDS);
        return -1;
    }
    struct hp_service *s = &e->services[service];
    if (s->kind != HP_KIND_PRIVATELINK) {
        hp_set_error(e, "service %d is a VPC link: it has ENIs, not backends", service);
        return -1;
    }
    for (uint32_t i = 0; i < n; i++)
        if (s->cfg.proto != IPPROTO_ICMP_ && b[i].port == 0) {
            hp_set_error(e, "service %d: backend %u has port 0", service, i);
            return -1;
        }
    struct hp_backend *copy = hp_dup_array(e, b, n, sizeof *copy, "backends");
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
    if (!hp_service_ok(e, service))
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
