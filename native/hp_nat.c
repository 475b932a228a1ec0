/* hp_nat.c — source-port allocation and header rewriting.
 *
 * Every translation here is the flow's mapping, in one of its two directions:
 *
 *     dir 0:  (client, cport, vip, vport)          ⇒ (snat_ip, snat_port, backend, bport)
 *     dir 1:  (backend, bport, snat_ip, snat_port) ⇒ (vip, vport, client, cport)
 *
 * For ICMP echo the "port" is the echo identifier. Checksums are updated incrementally
 * (RFC 1624), except the ICMP checksum of an error message, which covers the quoted
 * packet and is recomputed whole (errors are rare), and where the sender left the L4
 * checksum to be computed later (CHECKSUM_PARTIAL). Such a field holds the folded
 * pseudo-header sum, not complemented; the sum over the segment, ports included, is
 * added by whoever finishes it. Either the engine finishes it here (a full computation),
 * or, when the transmit path can hand it on, only the address change is applied to the
 * pseudo-header sum and the ports are written without touching the field.
 */
#include <string.h>

#include "hp_csum.h"
#include "hp_internal.h"

/* Bound on SNAT candidates tried for one new flow: a nearly full pool of 64k ports must
 * not stall the loop for one packet. 128 probes find a free port with near certainty
 * until the pool is past ~95 % full for that destination; beyond, the new flow evicts a
 * half-open one (step 4 below) or, when every holder is established, is refused as a
 * port_allocation drop, which is what NAT gateways report as ErrorPortAllocation. */
#define HP_SNAT_MAX_ATTEMPTS 128u

/* Candidates a search looks at while its service is under pressure (its last search
 * ended in an eviction), as long as one of them is half-open. Measured with
 * bench/test_flood.py: a flood that keeps a 64k pool full costs 128 lookups per SYN with
 * the full search (~50-100 us here, ~10k new flows/s: the receive ring then drops
 * legitimate SYNs with the flood's), and 8 lookups with this one. The oldest of 8
 * random half-open holders is still nearly always older than a legitimate SYN waiting
 * a round trip for its SYN-ACK. */
#define HP_SNAT_PRESSURE_ATTEMPTS 8u

static uint32_t gcd(uint32_t a, uint32_t b)
{
    while (b) {
        uint32_t r = a % b;
        a = b;
        b = r;
    }
    return a;
}

/* Picks f->snat_port from the service's pool so that the backend-side key
 * (out_port, proto, backend, bport, snat_ip, snat_port) is not in use, which keeps ports
 * unique per (SNAT address, protocol, destination) as NAT gateways and NLBs do. Steps:
 *   1. Start at the hash of the client-side key (`client_hash`), so clients spread over
 *      the pool.
 *   2. Walk the pool from there in strides of a step that also comes from the hash and
 *      is coprime with the pool's size (so the walk visits every port once before it
 *      repeats). Not linearly: taken ports cluster under linear probing, and at 93 %
 *      full a linear walk needs ~100 candidates where a strided one needs ~14.
 *   3. Stop at the first candidate whose backend-side key is free, or held by a flow
 *      that is idle past its timeout (expired on sight, as lookups do), or after
 *      min(pool size, HP_SNAT_MAX_ATTEMPTS) candidates: a small pool is searched whole.
 *   4. No candidate free: the pool is nearly exhausted for this destination (at least
 *      ~95 % taken, or all of a small pool). The oldest half-open flow among the
 *      candidates' holders is evicted (hp_flow.c: its ticket ranks it) and the new flow
 *      takes its port; holders that completed their handshake are never chosen. Their
 *      FIFO entries are prefetched as the walk finds them, so ranking costs no more
 *      than the walk itself.
 *   5. Once a search has ended in an eviction, the service is under pressure until one
 *      finds a free port: its searches stop after HP_SNAT_PRESSURE_ATTEMPTS candidates
 *      if one of them is half-open, so that a flood which keeps the pool full costs a
 *      few lookups per SYN and not 128. (A hint per service, not per pool: a service
 *      with a full pool and an empty one alternates, each search still correct.)
 * Returns 0, or -1 when no port was found and no holder was half-open. */
void hp_snat_search(const struct hp_engine *e, struct hp_flow *f, const struct hp_service *svc,
                    uint64_t client_hash, uint32_t gone_slot, struct hp_snat_choice *out)
{
    const struct hp_flow_table *ft = &e->ft;
    uint32_t lo = svc->cfg.snat_port_min, hi = svc->cfg.snat_port_max;
    uint32_t range = hi - lo + 1;
    uint32_t candidate = (uint32_t)(client_hash % range);
    uint32_t step = 0; /* found when the first candidate is taken: most searches end there */
    uint32_t attempts = range < HP_SNAT_MAX_ATTEMPTS ? range : HP_SNAT_MAX_ATTEMPTS;
    uint32_t half_open[HP_SNAT_MAX_ATTEMPTS];  /* holders that may be evicted, by slot */
    uint16_t their_port[HP_SNAT_MAX_ATTEMPTS];
    uint32_t n_half_open = 0;
    struct hp_flow_key k;
    uint32_t i;
    for (i = 0; i < attempts; i++) {
        if (svc->snat_pressure && i == HP_SNAT_PRESSURE_ATTEMPTS && n_half_open)
            break;
        if (i == 1) {
            step = 1 + (uint32_t)((client_hash >> 32) % (range - 1)); /* range > 1 here */
            while (gcd(step, range) != 1) /* a few steps at most: 1 is coprime with all */
                step = step + 1 == range ? 1 : step + 1;
        }
        candidate = (uint32_t)(((uint64_t)candidate + step) % range);
        f->snat_port = (uint16_t)(lo + candidate);
        hp_flow_key_of(f, 1, &k);
        uint32_t ref = hp_flow_lookup(ft, &k, hp_flow_hash(ft, &k));
        if (ref == HP_NONE || HP_UNLIKELY(ref >> 1 == gone_slot)) {
            *out = (struct hp_snat_choice){.how = HP_TRACE_SNAT_FREE, .port = f->snat_port,
                                           .holder = HP_NONE, .attempts = i + 1};
            return;
        }
        const struct hp_flow *holder = &ft->slots[ref >> 1];
        if (hp_flow_is_idle(e, holder)) {
            *out = (struct hp_snat_choice){.how = HP_TRACE_SNAT_EXPIRE, .port = f->snat_port,
                                           .holder = ref >> 1, .attempts = i + 1};
            return;
        }
        if (holder->flags & HP_FLOW_HALF_OPEN) {
            __builtin_prefetch(&ft->half_open[ref >> 1]);
            half_open[n_half_open] = ref >> 1;
            their_port[n_half_open++] = f->snat_port;
        }
    }
    if (n_half_open == 0) {
        *out = (struct hp_snat_choice){.how = HP_TRACE_SNAT_NONE, .holder = HP_NONE, .attempts = i};
        return;
    }
    uint32_t oldest = 0;
    for (uint32_t j = 1; j < n_half_open; j++)
        if (hp_flow_half_open_age(ft, half_open[j]) > hp_flow_half_open_age(ft, half_open[oldest]))
            oldest = j;
    *out = (struct hp_snat_choice){.how = HP_TRACE_SNAT_EVICT, .port = their_port[oldest],
                                   .holder = half_open[oldest], .attempts = i};
}

int hp_snat_allocate(struct hp_engine *e, struct hp_flow *f, struct hp_service *svc,
                     uint64_t client_hash)
{
    struct hp_snat_choice c;
    hp_snat_search(e, f, svc, client_hash, HP_NONE, &c);
    switch (c.how) {
    case HP_TRACE_SNAT_EXPIRE:
        hp_flow_remove(e, c.holder, true);
        svc->snat_pressure = false;
        break;
    case HP_TRACE_SNAT_EVICT:
        hp_flow_evict(e, c.holder, HP_CNT_EVICTED_PORT_POOL);
        svc->snat_pressure = true;
        break;
    case HP_TRACE_SNAT_FREE:
        svc->snat_pressure = false;
        break;
    default:
        return -1;
    }
    f->snat_port = c.port;
    return 0;
}

void hp_nat_flow_of(const struct hp_engine *e, const struct hp_parsed *p, uint16_t in_port,
                    int32_t sid, const struct hp_flow_plan *plan, struct hp_flow *f)
{
    bool tcp = p->proto == IPPROTO_TCP_;
    *f = (struct hp_flow){
        .client_ip = p->sip, .vip = p->dip, .snat_ip = plan->snat_ip, .backend_ip = plan->backend_ip,
        .client_port = p->sport, .vport = p->dport, .backend_port = plan->backend_port,
        .in_port = (uint8_t)in_port, .out_port = (uint8_t)plan->out_port, .service = (uint16_t)sid,
        .proto = p->proto, .tcp_state = tcp ? HP_TCP_SYN_SENT : HP_TCP_NONE,
        .flags = tcp ? HP_FLOW_HALF_OPEN : 0,
        .created_s = e->now_s, .last_seen_s = e->now_s,
    };
}

/* Opens the flow a kind has decided on (`plan`, its decide()) for packet `p` arriving on
 * `in_port` for service `sid`: (client, cport, vip, vport) = the packet's tuple,
 * translated to (snat_ip, snat_port, backend, bport) out of the plan's port, with
 * snat_port from the service's pool.
 * A TCP flow starts half-open. When the pool (hp_snat_allocate) or the flow table is
 * full, the new flow takes the place of the oldest half-open flow there is: a flood of
 * SYNs that are never answered then recycles its own flows, and legitimate connections
 * still open (and never lose their established flows). The port comes first, since
 * evicting for it also frees a slot. Returns HP_DROP_NONE with the flow's slot in *slot,
 * or why it could not be made. */
enum hp_drop hp_nat_open_flow(struct hp_engine *e, const struct hp_parsed *p, uint16_t in_port,
                              int32_t sid, const struct hp_flow_plan *plan, uint32_t *slot)
{
    struct hp_flow f;
    hp_nat_flow_of(e, p, in_port, sid, plan, &f);
    if (e->ft.free_top == 0 && e->ft.half_open_count == 0)
        return HP_DROP_FLOW_TABLE_FULL; /* nothing could make room: spare the port search */
    if (hp_snat_allocate(e, &f, &e->services[sid], p->hash) != 0)
        return HP_DROP_PORT_ALLOCATION;
    if (e->ft.free_top == 0)
        hp_flow_evict_oldest(e, HP_CNT_EVICTED_TABLE_FULL);
    *slot = hp_flow_insert(e, &f);
    return *slot == HP_NONE ? HP_DROP_FLOW_TABLE_FULL : HP_DROP_NONE;
}

/* Prefetches the bucket of the first SNAT candidate hp_snat_allocate() will try, for a
 * packet that is about to open a flow: that bucket is a cache miss nothing else warms.
 * `f` is the flow to be, as far as known: its out_port, proto, snat_ip and backend. */
void hp_snat_prefetch(const struct hp_engine *e, const struct hp_service *svc,
                      const struct hp_flow *f, uint64_t client_hash)
{
    uint32_t range = (uint32_t)svc->cfg.snat_port_max - svc->cfg.snat_port_min + 1;
    struct hp_flow_key k = {.sip = f->backend_ip, .sport = f->backend_port, .dip = f->snat_ip,
                            .dport = (uint16_t)(svc->cfg.snat_port_min + client_hash % range),
                            .port = f->out_port, .proto = f->proto};
    hp_flow_prefetch_buckets(&e->ft, hp_flow_hash(&e->ft, &k));
    /* GCC counts a prefetch as no side effect: with LTO it finds the kinds' prefetch
     * hooks (which only compute and prefetch) pure and drops their calls, which costs a
     * new flow ~80 ns of cache miss (bench/test_engine.py). The empty asm keeps them. */
    __asm__ volatile("" ::: "memory");
}

/* The tuple a packet of direction `dir` leaves with. */
static void out_tuple(const struct hp_flow *f, int dir, uint32_t *sip, uint16_t *sport,
                      uint32_t *dip, uint16_t *dport)
{
    if (dir == 0) {
        *sip = f->snat_ip; *sport = f->snat_port;
        *dip = f->backend_ip; *dport = f->backend_port;
    } else {
        *sip = f->vip; *sport = f->vport;
        *dip = f->client_ip; *dport = f->client_port;
    }
}

/* Offset of the L4 checksum field, or 0 for protocols without one we maintain. */
static uint32_t l4_csum_off(uint8_t proto)
{
    return proto == IPPROTO_TCP_ ? 16 : proto == IPPROTO_UDP_ ? 6 : 2;
}

/* Rewrites an IPv4 header's addresses, with the header checksum updated; returns the
 * checksum delta of the address change, which the TCP/UDP pseudo-header shares. */
static uint32_t rewrite_ip(uint8_t *ip, uint32_t sip, uint32_t dip)
{
    uint32_t delta = hp_csum_delta32(hp_load32(ip + 12), sip) + hp_csum_delta32(hp_load32(ip + 16), dip);
    hp_store16(ip + 10, hp_csum_apply(hp_load16(ip + 10), delta));
    hp_store32(ip + 12, sip);
    hp_store32(ip + 16, dip);
    return delta;
}

/* Rewrites the ports (or echo identifier) of an L4 header whose IPv4 addresses changed by
 * `addr_delta`, updating its checksum if the `avail` bytes include it. The UDP rule: a
 * zero checksum means "none" and stays zero; a computed zero is sent as 0xFFFF (RFC 768). */
static void rewrite_l4(uint8_t *l4, uint32_t avail, uint8_t proto, uint32_t addr_delta,
                       uint16_t sport, uint16_t dport)
{
    uint32_t coff = l4_csum_off(proto);
    bool have_csum = avail >= coff + 2;
    uint16_t check = have_csum ? hp_load16(l4 + coff) : 0;
    bool udp_none = proto == IPPROTO_UDP_ && check == 0;
    uint32_t delta;

    if (proto == IPPROTO_ICMP_) {
        /* Echo: the identifier is the request's sport and the reply's dport. ICMP has no
         * pseudo-header: the addresses do not enter its checksum. */
        uint16_t id = l4[0] == 8 ? sport : dport;
        delta = hp_csum_delta16(hp_load16(l4 + 4), id);
        hp_store16(l4 + 4, id);
    } else {
        delta = addr_delta + hp_csum_delta16(hp_load16(l4), sport) +
                hp_csum_delta16(hp_load16(l4 + 2), dport);
        hp_store16(l4, sport);
        hp_store16(l4 + 2, dport);
    }
    if (!have_csum || udp_none)
        return;
    check = hp_csum_apply(check, delta);
    if (proto == IPPROTO_UDP_ && check == 0)
        check = 0xffff;
    if (HP_UNLIKELY(proto == IPPROTO_ICMP_ && check == 0)) {
        /* Eqn. 3 gives 0x0000 for a message of all zeros (an echo with id, seq and data
         * all 0), whose checksum is 0xFFFF. ICMP has no pseudo-header to make the sum
         * non-zero, so sum the message again. */
        hp_store16(l4 + coff, 0);
        check = hp_csum(l4, avail);
    }
    hp_store16(l4 + coff, check);
}

void hp_l4_checksum_full(uint8_t *frame, const struct hp_parsed *p)
{
    uint8_t *l4 = frame + p->l4_off;
    uint8_t *ip = frame + p->l3_off;
    uint32_t coff = l4_csum_off(p->proto);
    hp_store16(l4 + coff, 0);
    uint32_t sum = 0;
    if (p->proto != IPPROTO_ICMP_)
        sum = hp_pseudo_sum(hp_load32(ip + 12), hp_load32(ip + 16), p->proto, p->l4_len);
    uint16_t check = (uint16_t)~hp_csum_fold(hp_csum_add(sum, l4, p->l4_len));
    if (p->proto == IPPROTO_UDP_ && check == 0)
        check = 0xffff;
    hp_store16(l4 + coff, check);
}

void hp_nat_rewrite(uint8_t *frame, const struct hp_parsed *p, const struct hp_flow *f, int dir,
                    enum hp_csum_mode mode)
{
    uint32_t sip, dip;
    uint16_t sport, dport;
    out_tuple(f, dir, &sip, &sport, &dip, &dport);
    uint32_t addr_delta = rewrite_ip(frame + p->l3_off, sip, dip);
    if (mode == HP_CSUM_UPDATE) {
        rewrite_l4(frame + p->l4_off, p->l4_len, p->proto, addr_delta, sport, dport);
        return;
    }
    uint8_t *l4 = frame + p->l4_off;
    if (p->proto == IPPROTO_ICMP_) {
        hp_store16(l4 + 4, l4[0] == 8 ? sport : dport);
    } else {
        hp_store16(l4, sport);
        hp_store16(l4 + 2, dport);
    }
    if (mode == HP_CSUM_COMPLETE) {
        hp_l4_checksum_full(frame, p);
    } else if (p->proto != IPPROTO_ICMP_) {
        /* The field is a plain sum: complementing it on both sides of the RFC 1624
         * update adds the address delta to it (ICMP has no pseudo-header to update). */
        uint32_t coff = l4_csum_off(p->proto);
        uint16_t sum = hp_load16(l4 + coff);
        hp_store16(l4 + coff, (uint16_t)~hp_csum_apply((uint16_t)~sum, addr_delta));
    }
}

/* An ICMP error travelling in direction `dir` of flow `f` quotes a packet of the other
 * direction as it was on this side of the engine. Both are translated: the outer header
 * like any packet of `dir`, the quoted one back to what the receiver sent, so that the
 * receiver's stack can match it to its own socket:
 *
 *     outer: (any, x) ⇒ out-tuple addresses of `dir`
 *     inner: out-tuple of `dir`, swapped
 */
bool hp_nat_rewrite_icmp_error(uint8_t *frame, const struct hp_parsed *p,
                               const struct hp_flow *f, int dir)
{
    uint32_t sip, dip;
    uint16_t sport, dport;
    out_tuple(f, dir, &sip, &sport, &dip, &dport);

    uint8_t *in_ip = frame + p->in_l3_off;
    uint8_t *in_l4 = frame + p->in_l4_off;
    /* The quoted packet went from `dip` to `sip` (the swap of the out tuple). */
    uint32_t in_delta = rewrite_ip(in_ip, dip, sip);
    rewrite_l4(in_l4, p->in_l4_avail, p->in_proto, in_delta, dport, sport);

    rewrite_ip(frame + p->l3_off, sip, dip);
    uint8_t *icmp = frame + p->l4_off;
    hp_store16(icmp + 2, 0);
    hp_store16(icmp + 2, hp_csum(icmp, p->l4_len));
    return true;
}

/* Writes `n` bytes at offset `off` of a TCP header, updating a whole checksum over the
 * aligned 16-bit words around them (a field may sit at an odd offset in the options; the
 * words stay within the header, whose length is a multiple of 4). Not the checksum's own
 * word. With `csum_full` false the checksum is partial and is left alone. */
void hp_tcp_edit(uint8_t *tcp, uint32_t off, const uint8_t *bytes, uint32_t n, bool csum_full)
{
    if (!csum_full) {
        memcpy(tcp + off, bytes, n);
        return;
    }
    uint32_t first = off & ~1u, end = (off + n + 1) & ~1u;
    uint32_t delta = 0;
    for (uint32_t w = first; w < end; w += 2)
        delta += (uint16_t)~hp_load16(tcp + w);
    memcpy(tcp + off, bytes, n);
    for (uint32_t w = first; w < end; w += 2)
        delta += hp_load16(tcp + w);
    hp_store16(tcp + 16, hp_csum_apply(hp_load16(tcp + 16), delta));
}

/* Steps through a TCP header's options (of `doff` bytes): from *next (20 at first), skips
 * NOPs and returns the offset of the next option (its kind at tcp[off], its length at
 * tcp[off + 1]), moving *next past it; 0 at the end, at End of Options, or at a malformed
 * option (those are left to the endpoints). */
uint32_t hp_tcp_option(const uint8_t *tcp, uint32_t doff, uint32_t *next)
{
    uint32_t i = *next;
    while (i < doff && tcp[i] == 1)
        i++;
    if (i >= doff || tcp[i] == 0 || i + 1 >= doff || tcp[i + 1] < 2 || i + tcp[i + 1] > doff)
        return 0;
    *next = i + tcp[i + 1];
    return i;
}

/* Lowers the MSS option of a SYN to `mss` (0: no clamp) and then by `minus` (the PROXY v2
 * header a backend will receive in front of the client's first segment; never below 64).
 * A partial checksum is left alone (the option is summed when it is finished). Returns
 * true if changed. */
bool hp_tcp_clamp_mss(uint8_t *frame, const struct hp_parsed *p, uint16_t mss, uint16_t minus,
                      bool csum_partial)
{
    uint16_t old, want;
    uint32_t at = hp_tcp_mss_after(frame, p, mss, minus, &old, &want);
    if (!at || want >= old)
        return false;
    uint8_t b[2];
    hp_store16(b, want);
    hp_tcp_edit(frame + p->l4_off, at, b, 2, !csum_partial);
    return true;
}

/* The MSS option of a SYN (*old) and what hp_tcp_clamp_mss() makes of it (*want, never
 * above *old); returns the option value's offset in the TCP header, 0: no MSS option. */
uint32_t hp_tcp_mss_after(const uint8_t *frame, const struct hp_parsed *p, uint16_t mss, uint16_t minus,
                          uint16_t *old, uint16_t *want)
{
    const uint8_t *tcp = frame + p->l4_off;
    uint32_t doff = (tcp[12] >> 4) * 4u;
    for (uint32_t next = 20, i; (i = hp_tcp_option(tcp, doff, &next));) {
        if (tcp[i] != 2 || tcp[i + 1] != 4)
            continue;
        *old = hp_load16(tcp + i + 2);
        uint32_t w = mss && mss < *old ? mss : *old;
        if (minus)
            w = w > minus + 64u ? w - minus : 64u;
        *want = (uint16_t)(w < *old ? w : *old);
        return i + 2;
    }
    *old = *want = 0;
    return 0;
}
