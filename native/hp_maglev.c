/* hp_maglev.c — Maglev lookup tables (Eisenbud et al., NSDI 2016), built in the control
 * path and only read by the data path.
 *
 * Each backend gets a permutation of the M table slots from two hashes of its (IP, port):
 * offset = h1 % M, skip = h2 % (M-1) + 1, slot j = (offset + j*skip) % M, M prime. The
 * backends take turns claiming their next free slot until the table is full. Weighted
 * backends take turns in proportion to their weight (a backend of weight w claims a slot
 * in a round when its credit reaches the largest weight). Because each backend's
 * preference list is fixed by its own identity, removing one of N backends reassigns
 * about 1/N of the slots, and the flows already in the flow table are not affected at all.
 */
#include <stdlib.h>
#include <string.h>

#include "hp_internal.h"

struct perm {
    uint32_t offset, skip, next;
    uint32_t credit;
};

uint16_t *hp_maglev_build(struct hp_engine *e, const struct hp_backend *b, uint32_t n)
{
    uint32_t m = e->cfg.maglev_size;
    uint32_t max_weight = 0;
    for (uint32_t i = 0; i < n; i++)
        if (b[i].weight > max_weight)
            max_weight = b[i].weight;
    if (n == 0 || max_weight == 0)
        return NULL; /* nothing to choose: new flows are dropped with no_backend */

    uint16_t *table = hp_calloc(e, m, sizeof *table);
    struct perm *perm = calloc(n, sizeof *perm);
    if (!table || !perm) {
        hp_free(e, table, m, sizeof *table);
        free(perm);
        return NULL;
    }
    for (uint32_t i = 0; i < n; i++) {
        uint8_t id[6];
        memcpy(id, &b[i].ip, 4);
        memcpy(id + 4, &b[i].port, 2);
        perm[i].offset = hp_hash32(id, sizeof id, 0x6d61676cu) % m;
        perm[i].skip = hp_hash32(id, sizeof id, 0x65766121u) % (m - 1) + 1;
    }
    memset(table, 0xff, (size_t)m * sizeof *table);
    uint32_t filled = 0;
    while (filled < m) {
        for (uint32_t i = 0; i < n && filled < m; i++) {
            perm[i].credit += b[i].weight;
            if (perm[i].credit < max_weight)
                continue;
            perm[i].credit -= max_weight;
            uint32_t slot;
            do { /* terminates: the table still has a free slot and skip is coprime to m */
                slot = (uint32_t)(((uint64_t)perm[i].offset + (uint64_t)perm[i].next * perm[i].skip) % m);
                perm[i].next++;
            } while (table[slot] != 0xffff);
            table[slot] = (uint16_t)i;
            filled++;
        }
    }
    free(perm);
    return table;
}

int hp_service_backend_of(const struct hp_engine *e, int service, uint32_t hash)
{
    if (service < 0 || (uint32_t)service >= e->cfg.max_services || !e->services[service].present)
        return -1;
    const struct hp_service *s = &e->services[service];
    if (!s->maglev)
        return -1;
    return s->maglev[hash % e->cfg.maglev_size];
}
