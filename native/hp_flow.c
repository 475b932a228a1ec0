/* hp_flow.c — the flow table.
 *
 * Fixed capacity, chosen at creation: a slot array of struct hp_flow, a stack of free
 * slots, and an index of 64-byte buckets, 8 keys each (struct hp_bucket). Each flow has
 * two keys, one per direction; a key reference is slot*2 + dir.
 *
 * A key may live in one of two buckets: its primary b1 = hash & mask, or its secondary
 * b2 = b1 ^ f(signature), so that either bucket gives the other from what it stores (as
 * in cuckoo filters). Keys go to their primary while it has room, so lookups nearly
 * always read one cache line: the secondary is read only when the primary is marked as
 * having overflowed (bit 31 of its last ref, free since refs are below 2^31). When both
 * are full, one resident key moves to its other bucket to make room (one level of
 * displacement, at most 16 candidates). The index is sized for at most 6 keys per
 * 8-way bucket on average; an insert that still fails reports a full flow table.
 *
 * Expiry is lazy and bounded: a lookup that finds an idle flow removes it and reports a
 * miss, and hp_process() ages a fixed number of slots per batch (the clock hand), so
 * neither a lookup nor a batch ever walks the whole table.
 *
 * Half-open flows (TCP whose handshake is not complete: the client's SYN seen, and the
 * backend's SYN-ACK or the client's ACK after it not yet) are also kept in a FIFO, oldest
 * first: a doubly linked list through a side array of 12 bytes per slot (struct
 * hp_half_open), so that joining, leaving (the handshake completes, the flow goes) and
 * taking the oldest are O(1) and no flow grows past its cache line. This is what a new
 * flow evicts under pressure, as Linux conntrack's early_drop evicts unassured entries:
 *   - the flow table is full: the FIFO's head, the oldest half-open flow of all (O(1));
 *   - no SNAT port is free for the new flow's destination (hp_nat.c): the oldest
 *     half-open flow among the occupants the bounded port search has just looked at.
 *     Those are the right pool by construction (any FIFO entry may belong to another
 *     destination, and walking the FIFO for one of ours is unbounded in the worst case),
 *     and the search has already read them, so choosing costs one more cache line per
 *     candidate, prefetched. Tickets (the FIFO's clock on joining) rank them exactly,
 *     where the flows' one-second timestamps would leave a flood's entries all tied.
 * Established flows are never in the FIFO, so no flood of SYNs can evict one. The
 * alternative to eviction, SYN cookies in the forwarder (a SYN proxy), would mean
 * translating sequence numbers and options on every packet of every flow; and AWS says
 * an NLB's TCP listener routes every SYN to its targets, absorbing none (DDoS-resiliency
 * whitepaper, BP6), which is what forwarding them and evicting does. Under a flood that
 * keeps a pool full, the search stops at 8 candidates (hp_nat.c), and a new flow costs
 * ~4x an ordinary one (bench/test_flood.py).
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
    /* Two keys per flow, at most 6 of 8 ways used per bucket on average. */
    uint32_t nb = next_pow2((uint32_t)(((uint64_t)capacity * 2 + 5) / 6));
    ft->bucket_mask = nb - 1; /* sizes first: hp_flow_table_free() needs them on failure */
    ft->capacity = capacity;
    ft->slots = hp_table_alloc(e, capacity, sizeof *ft->slots);
    ft->ext = hp_table_alloc(e, capacity, sizeof *ft->ext);
    ft->buckets = hp_table_alloc(e, nb, sizeof *ft->buckets);
    ft->free_list = hp_table_alloc(e, capacity, sizeof *ft->free_list);
    ft->half_open = hp_table_alloc(e, capacity, sizeof *ft->half_open);
    ft->half_open_head = ft->half_open_tail = HP_NONE;
    if (!ft->slots || !ft->ext || !ft->buckets || !ft->free_list || !ft->half_open)
        return -1;
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
    if (ft->shared_map)
        hp_flow_state_release(e); /* the slots are the file's: unmapped, never freed */
    else {
        hp_table_free(e, ft->slots, ft->capacity, sizeof *ft->slots);
        hp_table_free(e, ft->ext, ft->capacity, sizeof *ft->ext);
    }
    hp_table_free(e, ft->buckets, (size_t)ft->bucket_mask + 1, sizeof *ft->buckets);
    hp_table_free(e, ft->free_list, ft->capacity, sizeof *ft->free_list);
    hp_table_free(e, ft->half_open, ft->capacity, sizeof *ft->half_open);
    memset(ft, 0, sizeof *ft);
}

uint64_t hp_flow_hash(const struct hp_flow_table *ft, const struct hp_flow_key *k)
{
    uint64_t a = ((uint64_t)k->sip << 32) | k->dip;
    uint64_t b = ((uint64_t)k->sport << 48) | ((uint64_t)k->dport << 32) |
                 ((uint64_t)k->port << 8) | k->proto;
    return hp_mix64(a, b, ft->seed);
}

static inline uint32_t sig_of(uint64_t hash) { return (uint32_t)(hash >> 32) | 1u; }

static inline uint32_t other_bucket(const struct hp_flow_table *ft, uint32_t b, uint32_t sig)
{
    return (b ^ (sig * 0x5bd1e995u)) & ft->bucket_mask;
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

#define OVERFLOW_BIT 0x80000000u
#define REF_MASK 0x7fffffffu

static inline uint32_t ref_at(const struct hp_bucket *bk, int w) { return bk->ref[w] & REF_MASK; }
static inline bool overflowed(const struct hp_bucket *bk) { return bk->ref[HP_BUCKET_WAYS - 1] & OVERFLOW_BIT; }
static inline void mark_overflowed(struct hp_bucket *bk) { bk->ref[HP_BUCKET_WAYS - 1] |= OVERFLOW_BIT; }
static inline void set_way(struct hp_bucket *bk, int w, uint32_t sig, uint32_t ref)
{
    bk->sig[w] = sig;
    bk->ref[w] = (bk->ref[w] & OVERFLOW_BIT) | ref;
}

void hp_flow_prefetch_buckets(const struct hp_flow_table *ft, uint64_t hash)
{
    __builtin_prefetch(&ft->buckets[(uint32_t)hash & ft->bucket_mask]);
}

/* Calls `found(ref)` for each key reference in b1 (then, if b1 overflowed, b2) whose
 * signature matches, until it returns true. */
#define FOR_EACH_CANDIDATE(ft, hash, ref, body)                                              \
    do {                                                                                     \
        uint32_t sig_ = sig_of(hash);                                                        \
        uint32_t b_ = (uint32_t)(hash) & (ft)->bucket_mask;                                  \
        for (int pass_ = 0; pass_ < 2; pass_++) {                                            \
            const struct hp_bucket *bk_ = &(ft)->buckets[b_];                                \
            for (int w_ = 0; w_ < HP_BUCKET_WAYS; w_++) {                                    \
                if (bk_->sig[w_] != sig_)                                                    \
                    continue;                                                                \
                uint32_t ref = ref_at(bk_, w_);                                              \
                body                                                                         \
            }                                                                                \
            if (!overflowed(bk_))                                                            \
                break;                                                                       \
            b_ = other_bucket((ft), b_, sig_);                                               \
        }                                                                                    \
    } while (0)

/* The first key reference whose signature matches, without touching any flow: what
 * hp_process() prefetches before the real lookup. HP_NONE: surely not in the table. */
uint32_t hp_flow_candidate(const struct hp_flow_table *ft, uint64_t hash)
{
    FOR_EACH_CANDIDATE(ft, hash, ref, { return ref; });
    return HP_NONE;
}

/* Returns the key reference (slot*2 + dir) or HP_NONE. */
uint32_t hp_flow_lookup(const struct hp_flow_table *ft, const struct hp_flow_key *k, uint64_t hash)
{
    FOR_EACH_CANDIDATE(ft, hash, ref, {
        if (key_matches(&ft->slots[ref >> 1], (int)(ref & 1), k))
            return ref;
    });
    return HP_NONE;
}

static int free_way(const struct hp_bucket *bk)
{
    for (int w = 0; w < HP_BUCKET_WAYS; w++)
        if (bk->sig[w] == 0)
            return w;
    return -1;
}

/* Makes room in bucket b by moving one resident key to its other bucket, and marks b as
 * overflowed (the moved key, or a later one, may have b as its primary). Returns the way
 * freed, or -1 when every resident's other bucket is full too. */
static int displace(struct hp_flow_table *ft, uint32_t b)
{
    struct hp_bucket *bk = &ft->buckets[b];
    for (int w = 0; w < HP_BUCKET_WAYS; w++) {
        uint32_t alt = other_bucket(ft, b, bk->sig[w]);
        int aw = alt == b ? -1 : free_way(&ft->buckets[alt]);
        if (aw < 0)
            continue;
        set_way(&ft->buckets[alt], aw, bk->sig[w], ref_at(bk, w));
        mark_overflowed(bk);
        return w;
    }
    return -1;
}

static bool link_key(struct hp_flow_table *ft, uint32_t slot, int dir)
{
    struct hp_flow_key k;
    hp_flow_key_of(&ft->slots[slot], dir, &k);
    uint64_t hash = hp_flow_hash(ft, &k);
    uint32_t sig = sig_of(hash);
    uint32_t b1 = (uint32_t)hash & ft->bucket_mask, b2 = other_bucket(ft, b1, sig);
    uint32_t b = b1;
    int w = free_way(&ft->buckets[b1]);
    if (w < 0) {
        mark_overflowed(&ft->buckets[b1]);
        b = b2;
        w = free_way(&ft->buckets[b2]);
    }
    if (w < 0 && (w = displace(ft, b = b1)) < 0 && (w = displace(ft, b = b2)) < 0)
        return false;
    set_way(&ft->buckets[b], w, sig, slot * 2u + (uint32_t)dir);
    return true;
}

static void unlink_key(struct hp_flow_table *ft, uint32_t slot, int dir)
{
    struct hp_flow_key k;
    hp_flow_key_of(&ft->slots[slot], dir, &k);
    uint64_t hash = hp_flow_hash(ft, &k);
    uint32_t want = slot * 2u + (uint32_t)dir;
    uint32_t b1 = (uint32_t)hash & ft->bucket_mask;
    uint32_t bs[2] = {b1, other_bucket(ft, b1, sig_of(hash))};
    for (int i = 0; i < 2; i++) {
        struct hp_bucket *bk = &ft->buckets[bs[i]];
        for (int w = 0; w < HP_BUCKET_WAYS; w++)
            if (bk->sig[w] != 0 && ref_at(bk, w) == want) {
                set_way(bk, w, 0, 0);
                return;
            }
    }
}

/* ---- the FIFO of half-open flows ---------------------------------------------------- */

static void half_open_push(struct hp_flow_table *ft, uint32_t slot)
{
    struct hp_half_open *h = &ft->half_open[slot];
    h->prev = ft->half_open_tail;
    h->next = HP_NONE;
    h->ticket = ft->half_open_clock++;
    if (ft->half_open_tail == HP_NONE)
        ft->half_open_head = slot;
    else
        ft->half_open[ft->half_open_tail].next = slot;
    ft->half_open_tail = slot;
    ft->half_open_count++;
}

static void half_open_unlink(struct hp_flow_table *ft, uint32_t slot)
{
    const struct hp_half_open *h = &ft->half_open[slot];
    if (h->prev == HP_NONE)
        ft->half_open_head = h->next;
    else
        ft->half_open[h->prev].next = h->next;
    if (h->next == HP_NONE)
        ft->half_open_tail = h->prev;
    else
        ft->half_open[h->next].prev = h->prev;
    ft->half_open_count--;
    ft->slots[slot].flags &= (uint8_t)~HP_FLOW_HALF_OPEN;
}

/* Flow `f` completed its handshake: it leaves the FIFO and can no longer be evicted. */
void hp_flow_handshake_done(struct hp_engine *e, struct hp_flow *f)
{
    if (f->flags & HP_FLOW_HALF_OPEN)
        half_open_unlink(&e->ft, (uint32_t)(f - e->ft.slots));
}

/* How many half-open flows joined the FIFO after the one in `slot`: comparable between
 * any two half-open flows (the larger is the older) while fewer than 2^31 flows open
 * within one half-open timeout, which no engine can do. */
uint32_t hp_flow_half_open_age(const struct hp_flow_table *ft, uint32_t slot)
{
    return ft->half_open_clock - ft->half_open[slot].ticket;
}

/* Removes the half-open flow in `slot` to make room for a new one, counting it as `why`
 * on the ingress port of its service. Not reported as expired: it did not idle out. */
void hp_flow_evict(struct hp_engine *e, uint32_t slot, enum hp_counter why)
{
    e->ports[e->ft.slots[slot].in_port].counters[why]++;
    hp_flow_remove(e, slot, false);
}

/* Evicts the oldest half-open flow of the whole table; false when there is none. */
bool hp_flow_evict_oldest(struct hp_engine *e, enum hp_counter why)
{
    if (e->ft.half_open_head == HP_NONE)
        return false;
    hp_flow_evict(e, e->ft.half_open_head, why);
    return true;
}

uint32_t hp_flow_half_open_count(const struct hp_engine *e) { return e->ft.half_open_count; }

/* Copies `proto_flow` into a free slot and indexes both of its keys; a flow that comes
 * marked HP_FLOW_HALF_OPEN joins the FIFO's tail. The caller has made sure neither key
 * exists. Returns the slot, or HP_NONE when the table (or, with negligible probability,
 * the index) is full. */
uint32_t hp_flow_insert(struct hp_engine *e, const struct hp_flow *proto_flow)
{
    struct hp_flow_table *ft = &e->ft;
    if (ft->free_top == 0)
        return HP_NONE;
    uint32_t slot = ft->free_list[ft->free_top - 1];
    ft->slots[slot] = *proto_flow;
    ft->slots[slot].live = 1;
    ft->ext[slot] = (struct hp_flow_ext){0};
    if (!link_key(ft, slot, 0))
        goto full;
    if (!link_key(ft, slot, 1)) {
        unlink_key(ft, slot, 0);
        goto full;
    }
    ft->free_top--;
    ft->count++;
    if (proto_flow->flags & HP_FLOW_HALF_OPEN)
        half_open_push(ft, slot);
    return slot;
full:
    ft->slots[slot].live = 0;
    return HP_NONE;
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
    if (f->flags & HP_FLOW_HALF_OPEN)
        half_open_unlink(ft, slot);
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
    o->kind = e->services[f->service].kind;
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
    o->proxy_offset = f->flags & HP_FLOW_PROXY ? e->services[f->service].proxy_len : 0;
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

uint64_t hp_flow_bytes_per_flow(const struct hp_engine *e)
{
    const struct hp_flow_table *ft = &e->ft;
    uint64_t bytes = (uint64_t)ft->capacity *
                         (sizeof *ft->slots + sizeof *ft->ext + sizeof *ft->free_list +
                          sizeof *ft->half_open) +
                     ((uint64_t)ft->bucket_mask + 1) * sizeof *ft->buckets;
    return bytes / ft->capacity;
}

/* ---- timeouts ------------------------------------------------------------------------- */

static uint32_t min_u32(uint32_t a, uint32_t b) { return a < b ? a : b; }

/* The idle timeout of flow `f` now: by TCP state from the engine's configuration, the
 * service's idle timeout for established TCP (350 s, Hyperplane's, when the service says
 * 0), UDP and ICMP (the engine's defaults when the service says 0). */
uint32_t hp_flow_timeout_s(const struct hp_engine *e, const struct hp_flow *f)
{
    const struct hp_service_config *c = &e->services[f->service].cfg;
    switch (f->proto) {
    case IPPROTO_TCP_:
        switch (f->tcp_state) {
        case HP_TCP_SYN_SENT:
        case HP_TCP_SYN_RECV: return e->cfg.timeout_tcp_syn_s;
        case HP_TCP_FIN_WAIT: return e->cfg.timeout_tcp_fin_s;
        case HP_TCP_CLOSING:
        case HP_TCP_CLOSED: return e->cfg.timeout_tcp_close_s;
        default: return c->idle_timeout_s ? c->idle_timeout_s : 350;
        }
    case IPPROTO_UDP_: return c->idle_timeout_s ? c->idle_timeout_s : e->cfg.timeout_udp_s;
    default: return c->idle_timeout_s ? c->idle_timeout_s : e->cfg.timeout_icmp_s;
    }
}

/* Recomputes the shortest timeout any flow can have (below it, no flow is idle, and
 * lookups skip the per-flow computation). Called when the services change. */
void hp_flow_update_min_timeout(struct hp_engine *e)
{
    const struct hp_engine_config *c = &e->cfg;
    uint32_t m = min_u32(min_u32(c->timeout_tcp_syn_s, c->timeout_tcp_fin_s),
                         min_u32(c->timeout_tcp_close_s, min_u32(c->timeout_udp_s, c->timeout_icmp_s)));
    for (uint32_t i = 0; i < c->max_services; i++)
        if (e->services[i].present && e->services[i].cfg.idle_timeout_s)
            m = min_u32(m, e->services[i].cfg.idle_timeout_s);
    e->min_timeout_s = m;
}

/* Removes every flow of `service` (when >= 0) and every flow through `port` (when >= 0):
 * a whole-table walk, for the control path only. */
void hp_flow_remove_where(struct hp_engine *e, int service, int port)
{
    for (uint32_t i = 0; i < e->ft.capacity; i++) {
        struct hp_flow *f = &e->ft.slots[i];
        if (f->live && ((service >= 0 && f->service == service) ||
                        (port >= 0 && (f->in_port == port || f->out_port == port))))
            hp_flow_remove(e, i, false);
    }
}

/* Rebuilds the index, the free list and the half-open queue from the slots alone (their
 * `live` flag, keys and flags), as after a forwarder restart: the slots are the truth,
 * everything else is derived. A live flow whose keys no longer fit (or collide with an
 * earlier one) is dropped. Returns the number dropped. */
uint32_t hp_flow_reindex(struct hp_engine *e)
{
    struct hp_flow_table *ft = &e->ft;
    uint32_t dropped = 0;
    memset(ft->buckets, 0, ((size_t)ft->bucket_mask + 1) * sizeof *ft->buckets);
    ft->count = 0;
    ft->free_top = 0;
    ft->scan_hand = 0;
    ft->half_open_head = ft->half_open_tail = HP_NONE;
    ft->half_open_count = 0;
    for (uint32_t slot = 0; slot < ft->capacity; slot++) {
        struct hp_flow *f = &ft->slots[slot];
        if (!f->live)
            continue;
        struct hp_flow_key k0, k1;
        hp_flow_key_of(f, 0, &k0);
        hp_flow_key_of(f, 1, &k1);
        bool clash = hp_flow_lookup(ft, &k0, hp_flow_hash(ft, &k0)) != HP_NONE ||
                     hp_flow_lookup(ft, &k1, hp_flow_hash(ft, &k1)) != HP_NONE;
        if (!clash && link_key(ft, slot, 0)) {
            if (link_key(ft, slot, 1)) {
                ft->count++;
                /* Half-open flows queue again in slot order, not their first order:
                 * the ranking of the restored ones is approximate for one half-open
                 * timeout, after which they have all expired. */
                if (f->flags & HP_FLOW_HALF_OPEN)
                    half_open_push(ft, slot);
                continue;
            }
            unlink_key(ft, slot, 0);
        }
        memset(f, 0, sizeof *f);
        memset(&ft->ext[slot], 0, sizeof ft->ext[slot]);
        dropped++;
    }
    /* Free slots, highest first on the stack's bottom: low slots are handed out first. */
    for (uint32_t i = ft->capacity; i-- > 0;)
        if (!ft->slots[i].live)
            ft->free_list[ft->free_top++] = i;
    return dropped;
}
