/* hp_engine.c — an engine's life: hp_engine_create() sizes every table once, with the
 * configuration's defaults filled in, and hp_engine_destroy() frees them.
 *
 * The rest of the engine lives by concern (hp_internal.h lists the files): nothing here
 * is called by any other file, so the engine file is the top of the call graph.
 */
#include <stdlib.h>

#include "hp_internal.h"

#define HP_EXPIRED_RING 1024u /* power of two: the ring's indices wrap with uint32 */

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
