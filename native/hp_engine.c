/* hp_engine.c — an engine's life: hp_engine_create() sizes every table once, with the
 * configuration's defaults filled in, and hp_engine_destroy() frees them.
 *
 * What creating one costs is zeroing what it holds: with the defaults ~120 KB of ports
 * (256, inline after the engine) and ~80 KB of expired-flow ring before the flow table.
 * The forwarder pays it once; a caller that makes an engine per test case or per fuzz
 * input asks for fewer ports and a shorter ring (max_ports, expired_ring), and gets an
 * engine that behaves the same on every port id it has.
 *
 * The rest of the engine lives by concern (hp_internal.h lists the files): nothing here
 * is called by any other file, so the engine file is the top of the call graph.
 */
#include <stdlib.h>

#include "hp_internal.h"

#define HP_EXPIRED_RING 1024u     /* the default */
#define HP_EXPIRED_RING_MAX (1u << 24) /* 1.3 GB of reports is more than anyone leaves unread */

static bool is_prime(uint32_t n)
{
    if (n < 2)
        return false;
    for (uint32_t d = 2; (uint64_t)d * d <= n; d++)
        if (n % d == 0)
            return false;
    return true;
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
    if (!cfg.max_ports) cfg.max_ports = HP_MAX_PORTS;
    if (!cfg.expired_ring) cfg.expired_ring = HP_EXPIRED_RING;
    if (!is_prime(cfg.maglev_size) || cfg.maglev_size > 0xfffe0u) {
        hp_set_error(NULL, "maglev_size must be a prime below 1048544, not %u", cfg.maglev_size);
        return NULL;
    }
    if (cfg.max_services > 65535) {
        hp_set_error(NULL, "max_services must be at most 65535, not %u", cfg.max_services);
        return NULL;
    }
    if (cfg.max_ports > HP_MAX_PORTS) {
        hp_set_error(NULL, "max_ports must be at most %u, not %u", HP_MAX_PORTS, cfg.max_ports);
        return NULL;
    }
    /* a power of two: the ring's indices are free-running uint32s, taken modulo its size */
    if (cfg.expired_ring & (cfg.expired_ring - 1) || cfg.expired_ring > HP_EXPIRED_RING_MAX) {
        hp_set_error(NULL, "expired_ring must be a power of two up to %u, not %u",
                     HP_EXPIRED_RING_MAX, cfg.expired_ring);
        return NULL;
    }
    struct hp_engine *e = calloc(1, sizeof *e + (size_t)cfg.max_ports * sizeof e->ports[0]);
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
    e->bytes_allocated = (size_t)cfg.max_ports * sizeof e->ports[0];
    e->expired_cap = cfg.expired_ring;
    e->expired = hp_calloc(e, e->expired_cap, sizeof *e->expired);
    if (!e->services || !e->svc_index.keys || !e->svc_index.ids || !e->expired ||
        hp_flow_table_init(e, cfg.flow_capacity, cfg.hash_seed) != 0) {
        hp_set_error(NULL, "out of memory for %u flows", cfg.flow_capacity);
        hp_engine_destroy(e);
        return NULL;
    }
    hp_flow_update_min_timeout(e);
    return e;
}

void hp_engine_destroy(struct hp_engine *e)
{
    if (!e)
        return;
    for (uint32_t i = 0; e->services && i < e->cfg.max_services; i++)
        if (e->services[i].present)
            hp_service_free(e, &e->services[i]);
    for (uint32_t p = 0; p < e->cfg.max_ports; p++)
        for (int d = 0; d < 2; d++)
            hp_free(e, e->ports[p].sg[d].rules, e->ports[p].sg[d].n, sizeof(struct hp_sg_rule));
    hp_tap_release(e);
    hp_flow_table_free(e);
    free(e->services);
    free(e->svc_index.keys);
    free(e->svc_index.ids);
    free(e->expired);
    free(e);
}
