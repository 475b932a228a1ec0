/* hp_flow.c — the flow table.
 *
 * Fixed capacity, chosen at creation: a slot array of struct hp_flow, a stack of free
 * slots, and a chained hash index whose chains run through the flows themselves
 * (flow.next[dir]), so a flow costs no allocation and two index entries cost 8 bytes of
 * links plus its share of the bucket heads. A key reference is slot*2 + dir; direction 0
 * is the client side key, direction 1 the backend side key (see hp_internal.h).
 *
 * Expiry is lazy and bounded: a lookup that finds an idle flow removes it and reports a
 * miss, and hp_process() ages a fixed number of slots per batch (the clock hand), so
 * neither a lookup nor a batch ever walks the whole table.
 */
#include <string.h>

#include "hp_internal.h"

static uint32_t next_pow2(uint32_t v)
{
    uint32_t p = 1;
    while (p < v)
        p <<= 1;
    return p;
}

int hp_flow_table_init(struct hp_engine *e, uint32_t capacity, uint32_t seed)
{
    struct hp_flow_table *ft = &e->ft;
    memset(ft, 0, sizeof *ft);
    /* Two keys per flow; as many buckets as keys (rounded up) keeps chains near one. */
    uint32_t nb = next_pow2(capacity * 2u);
    ft->bucket_mask = nb - 1; /* sizes first: hp_flow_table_free() needs them on failure */
    ft->capacity = capacity;
    ft->slots = hp_table_alloc(e, capacity, sizeof *ft->slots);
    ft->buckets = hp_table_alloc(e, nb, sizeof *ft->buckets);
    ft->free_list = hp_table_alloc(e, capacity, sizeof *ft->free_list);
    if (!ft->slots || !ft->buckets || !ft->free_list)
        return -1;
    memset(ft->buckets, 0xff, (size_t)nb * sizeof *ft->buckets);
    /* Hand out low slots first: a small working set stays in few cache lines. */
    for (uint32_t i = 0; i < capacity; i++)
        ft->free_list[i] = capacity - 1 - i;
    ft->free_top = capacity;
    ft->seed = seed;
    return 0;
}

void hp_flow_table_free(struct hp_engine *e)
{
    struct hp_flow_table *ft = &e->ft;
    hp_table_free(e, ft->slots, ft->capacity, sizeof *ft->slots);
    hp_table_free(e, ft->buckets, (size_t)ft->bucket_mask + 1, sizeof *ft->buckets);
    hp_table_free(e, ft->free_list, ft->capacity, sizeof *ft->free_list);
    memset(ft, 0, sizeof *ft);
}

uint32_t hp_flow_hash(const struct hp_flow_table *ft, const struct hp_flow_key *k)
{
    uint64_t a = ((uint64_t)k->sip << 32) | k->dip;
    uint64_t b = ((uint64_t)k->sport << 48) | ((uint64_t)k->dport << 32) |
                 ((uint64_t)k->port << 8) | k->proto;
    return hp_mix32(a, b, ft->seed);
}

void hp_flow_key_of(const struct hp_flow *f, int dir, struct hp_flow_key *k)
{
    k->proto = f->proto;
    if (dir == 0) {
        k->port = f->in_port;
        k->sip = f->client_ip;
        k->sport = f->client_port;
        k->dip = f->vip;
        k->dport = f->vport;
    } else {
        k->port = f->out_port;
        k->sip = f->backend_ip;
        k->sport = f->backend_port;
        k->dip = f->snat_ip;
        k->dport = f->snat_port;
    }
}

static inline bool key_matches(const struct hp_flow *f, int dir, const struct hp_flow_key *k)
{
    if (f->proto != k->proto)
        return false;
    if (dir == 0)
        return f->client_ip == k->sip && f->vip == k->dip && f->client_port == k->sport &&
               f->vport == k->dport && f->in_port == k->port;
    return f->backend_ip == k->sip && f->snat_ip == k->dip && f->backend_port == k->sport &&
           f->snat_port == k->dport && f->out_port == k->port;
}

/* Returns the key reference (slot*2 + dir) or HP_NONE. */
uint32_t hp_flow_lookup(const struct hp_flow_table *ft, const struct hp_flow_key *k, uint32_t hash)
{
    uint32_t ref = ft->buckets[hash & ft->bucket_mask];
    while (ref != HP_NONE) {
        const struct hp_flow *f = &ft->slots[ref >> 1];
        if (key_matches(f, (int)(ref & 1), k))
            return ref;
        ref = f->next[ref & 1];
    }
    return HP_NONE;
}

static void link_key(struct hp_flow_table *ft, uint32_t slot, int dir)
{
    struct hp_flow_key k;
    struct hp_flow *f = &ft->slots[slot];
    hp_flow_key_of(f, dir, &k);
    uint32_t b = hp_flow_hash(ft, &k) & ft->bucket_mask;
    f->next[dir] = ft->buckets[b];
    ft->buckets[b] = slot * 2u + (uint32_t)dir;
}

static void unlink_key(struct hp_flow_table *ft, uint32_t slot, int dir)
{
    struct hp_flow_key k;
    struct hp_flow *f = &ft->slots[slot];
    hp_flow_key_of(f, dir, &k);
    uint32_t want = slot * 2u + (uint32_t)dir;
    uint32_t *link = &ft->buckets[hp_flow_hash(ft, &k) & ft->bucket_mask];
    while (*link != HP_NONE) {
        if (*link == want) {
            *link = f->next[dir];
            return;
        }
        link = &ft->slots[*link >> 1].next[*link & 1];
    }
}

/* Copies `proto_flow` into a free slot and indexes both of its keys. The caller has made
 * sure neither key exists. Returns the slot, or HP_NONE when the table is full. */
uint32_t hp_flow_insert(struct hp_engine *e, const struct hp_flow *proto_flow)
{
    struct hp_flow_table *ft = &e->ft;
    if (ft->free_top == 0)
        return HP_NONE;
    uint32_t slot = ft->free_list[--ft->free_top];
    ft->slots[slot] = *proto_flow;
    ft->slots[slot].live = 1;
    link_key(ft, slot, 0);
    link_key(ft, slot, 1);
    ft->count++;
    return slot;
}

void hp_flow_remove(struct hp_engine *e, uint32_t slot, bool expired)
{
    struct hp_flow_table *ft = &e->ft;
    struct hp_flow *f = &ft->slots[slot];
    if (!f->live)
        return;
    if (expired) {
        e->ports[f->in_port].counters[HP_CNT_FLOWS_EXPIRED]++;
        if ((e->expired_head - e->expired_tail) == e->expired_cap) {
            e->expired_tail++; /* ring full: the oldest report is overwritten */
            e->expired_lost++;
        }
        hp_flow_info_of(e, slot, &e->expired[e->expired_head % e->expired_cap]);
        e->expired_head++;
    }
    unlink_key(ft, slot, 0);
    unlink_key(ft, slot, 1);
    f->live = 0;
    ft->free_list[ft->free_top++] = slot;
    ft->count--;
}

bool hp_flow_is_idle(const struct hp_engine *e, const struct hp_flow *f)
{
    /* Time given by the caller may step back (a test, a clock change): never expire then. */
    if (e->now_s <= f->last_seen_s)
        return false;
    uint32_t idle = e->now_s - f->last_seen_s;
    return idle >= e->min_timeout_s && idle >= hp_flow_timeout_s(e, f);
}

void hp_flow_info_of(const struct hp_engine *e, uint32_t slot, struct hp_flow_info *o)
{
    const struct hp_flow *f = &e->ft.slots[slot];
    memset(o, 0, sizeof *o);
    o->id = slot;
    o->service = f->service;
    o->in_port = f->in_port;
    o->out_port = f->out_port;
    o->proto = f->proto;
    o->tcp_state = f->tcp_state;
    o->client_ip = f->client_ip;
    o->vip = f->vip;
    o->snat_ip = f->snat_ip;
    o->backend_ip = f->backend_ip;
    o->client_port = f->client_port;
    o->vport = f->vport;
    o->snat_port = f->snat_port;
    o->backend_port = f->backend_port;
    for (int d = 0; d < 2; d++) {
        o->packets[d] = f->packets[d];
        o->bytes[d] = f->bytes[d];
    }
    o->created_ns = (uint64_t)f->created_s * 1000000000ull;
    o->last_seen_ns = (uint64_t)f->last_seen_s * 1000000000ull;
}

uint32_t hp_flow_count(const struct hp_engine *e) { return e->ft.count; }

uint32_t hp_flow_dump(const struct hp_engine *e, uint32_t *cursor, struct hp_flow_info *out,
                      uint32_t max)
{
    uint32_t n = 0;
    uint32_t i = *cursor;
    for (; i < e->ft.capacity && n < max; i++)
        if (e->ft.slots[i].live)
            hp_flow_info_of(e, i, &out[n++]);
    *cursor = i;
    return n;
}

uint32_t hp_expire(struct hp_engine *e, uint64_t now_ns, uint32_t max_scan)
{
    struct hp_flow_table *ft = &e->ft;
    if (now_ns > e->now_ns) {
        e->now_ns = now_ns;
        e->now_s = (uint32_t)(now_ns / 1000000000ull);
    }
    uint32_t expired = 0;
    if (max_scan > ft->capacity)
        max_scan = ft->capacity;
    for (uint32_t i = 0; i < max_scan; i++) {
        uint32_t slot = ft->scan_hand;
        ft->scan_hand = slot + 1 == ft->capacity ? 0 : slot + 1;
        struct hp_flow *f = &ft->slots[slot];
        if (f->live && hp_flow_is_idle(e, f)) {
            hp_flow_remove(e, slot, true);
            expired++;
        }
    }
    return expired;
}

uint32_t hp_expired_read(struct hp_engine *e, struct hp_flow_info *out, uint32_t max)
{
    uint32_t n = 0;
    while (n < max && e->expired_tail != e->expired_head)
        out[n++] = e->expired[e->expired_tail++ % e->expired_cap];
    return n;
}

uint64_t hp_expired_lost(const struct hp_engine *e) { return e->expired_lost; }
