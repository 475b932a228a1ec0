/* hp_fuzz.c — the libFuzzer target of the Hyperplane engine (native/fuzz/README.md).
 *
 * One input is one little life of an engine: a configuration, then a sequence of
 * operations — table changes (ports, security groups, services, backends, flags, target
 * resets, expiry) interleaved with batches of frames on chosen ports at chosen times.
 * Frames are mostly built here from a flow's 5-tuple, forward (client → listener) or
 * reply (target → SNAT address, taken from the engine's live flows), or ICMP errors that
 * quote either direction, and then mutated; so the fuzzer reaches new flows, the
 * established path in both directions and the ICMP-error path, not only the parser. Raw
 * frames (the seed corpus's golden packets) go in as they are.
 *
 * Only the public API (hp_engine.h) is used. After every batch the results are checked
 * against what hp_engine.h promises, and a broken promise aborts like a sanitizer report:
 *   - every frame has a verdict and a known drop reason; a forward has none, a drop has one;
 *   - a forwarded frame keeps its length (or, a TCP segment that got a PROXY v2 header, grows
 *     within its buffer), leaves on a port that exists, and its IPv4
 *     header checksum is right; its L4 checksum is right if it was right on the way in
 *     (full checksums only: a partial one is a pseudo-header sum, not checkable here);
 *   - a reply goes back out of the port the frame came in on and is not longer than it;
 *   - the flow table never holds more than its capacity, and a dump finds every flow;
 *   - with the tap on (half the inputs from the start, and OP_TAP), every record is, in
 *     order, a frame of the batch exactly as it arrived or as it left, at a stage and port
 *     the tap was asked for, cut at its snaplen; the ring never holds more than its size;
 *   - every flow whose handshake is under way (SYN_SENT, SYN_RECV) is in the half-open
 *     queue that floods evict from, and no established one is: the queue holds between
 *     the former and all the flows that are not established.
 *
 * Input format (every read past the end gives zeros, so every input is valid):
 *   input  := kind:u8 engine:u8 seed:u8 op*
 *   op     := code:u8 args          code % OP__COUNT picks one of enum op below
 *   frame  := spec:u8 args mutation  spec % FRAME__COUNT picks one of enum frame_spec
 * The exact arguments are read in the functions named after each op; make_corpus.py
 * writes this format and is the other place it is spelled out.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hp_engine.h"

/* ---- reading the input ---------------------------------------------------------------- */

struct input {
    const uint8_t *p;
    size_t n;
};

static uint8_t u8(struct input *in)
{
    if (!in->n)
        return 0;
    in->n--;
    return *in->p++;
}

static uint16_t u16(struct input *in)
{
    uint16_t hi = u8(in);
    return (uint16_t)(hi << 8 | u8(in));
}

/* A broken promise of hp_engine.h: crash so that libFuzzer saves the input. */
#define CHECK(cond)                                                                            \
    do {                                                                                       \
        if (!(cond))                                                                           \
            __builtin_trap();                                                                  \
    } while (0)

/* A control call: one that refuses (-1) must say why and leave the engine unchanged. */
#define CONTROL(f, call)                                                                       \
    ({                                                                                         \
        uint64_t memory_ = hp_engine_memory((f)->e);                                           \
        uint32_t flows_ = hp_flow_count((f)->e);                                               \
        int rc_ = (call);                                                                      \
        if (rc_ < 0) {                                                                         \
            CHECK(hp_last_error((f)->e)[0] != '\0');                                           \
            CHECK(hp_engine_memory((f)->e) == memory_ && hp_flow_count((f)->e) == flows_);    \
        }                                                                                      \
        rc_;                                                                                   \
    })

/* ---- the topology: conftest.py's, so the golden tests' frames fit it ------------------ */

#define IP4(a, b, c, d) ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (uint32_t)(d))

/* Ports the fuzzer may configure (index = a port selector's value), and two that it
 * never does: one in range that stays absent, one out of range. What each settable port
 * is (its addresses), and the addresses frames and tables draw from, are the kind's
 * (struct kind below). */
static const uint16_t port_ids[] = {0, 1, 2, 3, 4, 7, 300};
#define N_PORT_IDS (sizeof port_ids / sizeof port_ids[0])
#define N_SETTABLE_PORTS 5

static const uint16_t l4ports[16] = {80,   53,   8080, 5353, 443,  40000, 40001, 33333,
                                     1024, 1025, 65535, 0,   5000, 22,   4789,  12345};

static void port_mac(uint8_t mac[6], uint8_t last)
{
    static const uint8_t base[6] = {0x02, 0, 0, 0, 0, 0};
    memcpy(mac, base, 6);
    mac[5] = last;
}

/* ---- the fuzzed engine's state --------------------------------------------------------- */

#define MAX_SERVICES 8
#define MAX_BATCH 40          /* > 2 * the engine's pipeline distance: the ring wraps */
#define MAX_FRAME 1600
#define MAX_FLOWS 256

struct fuzz;

/* A translation kind: what its ports are, the addresses its frames and tables draw from,
 * the tables an input starts with, and how it adds a service from the input. */
struct kind {
    const char *name;
    uint32_t port_addr[N_SETTABLE_PORTS][2]; /* each settable port's addresses (0: none) */
    uint32_t addrs[16];       /* [0] a client, [3] and [4] targets; the rest mixed */
    uint32_t dsts[3];         /* where a new packet goes (new_tuple()'s selector 1-3) */
    uint16_t target_port[2];  /* a target's TCP and UDP port, for stale replies */
    void (*setup)(struct fuzz *f, uint8_t opts);
    void (*add)(struct fuzz *f, struct input *in);
};

struct fuzz {
    struct hp_engine *e;
    const struct kind *kind;
    uint32_t capacity;
    bool port_present[N_SETTABLE_PORTS];
    int services[MAX_SERVICES];   /* ids hp_service_add() returned; -1: none */
    uint64_t now_ns;
    struct hp_flow_info flows[MAX_FLOWS];
    uint32_t n_flows;             /* flows[] holds them; UINT32_MAX: to be read again */
    bool tap_on;                  /* the engine's tap is on (hp_tap.c) with tap_cfg */
    struct hp_tap_config tap_cfg;
};

static int port_index(uint16_t port)
{
    for (int i = 0; i < N_SETTABLE_PORTS; i++)
        if (port_ids[i] == port)
            return i;
    return -1;
}

static void port_set(struct fuzz *f, int idx, uint8_t variant)
{
    struct hp_port_config pc = {0};
    port_mac(pc.mac, (uint8_t)(0xe0 + idx));
    if (!(variant & 1))        /* else: the peer's MAC is learnt from rx */
        port_mac(pc.peer_mac, (uint8_t)(0xa0 + idx));
    const uint32_t *addrs = f->kind->port_addr[idx];
    pc.n_addrs = variant & 2 || !addrs[0] ? 0 : addrs[1] ? 2 : 1;
    pc.addrs[0] = addrs[0];
    pc.addrs[1] = addrs[1];
    if (variant & 4)           /* an invalid MAC: must be refused, changing nothing */
        pc.mac[0] = 0x01;
    if (variant & 8)
        pc.n_addrs = HP_PORT_MAX_ADDRS + 1;
    if (CONTROL(f, hp_port_set(f->e, port_ids[idx], &pc)) == 0)
        f->port_present[idx] = true;
}

static void remember_service(struct fuzz *f, int id)
{
    if (id < 0)
        return;
    for (int i = 0; i < MAX_SERVICES; i++)
        if (f->services[i] < 0) {
            f->services[i] = id;
            return;
        }
}

static int pick_service(struct fuzz *f, uint8_t sel)
{
    int id = f->services[sel % MAX_SERVICES];
    return id >= 0 ? id : (int)(sel % 4); /* ids never added must be refused */
}

/* ---- translation kinds ------------------------------------------------------------------
 * A kind sets up its tables when an input starts, and reads its own control operations
 * (OP_KIND_CONTROL). Frames and the other operations are shared by all kinds: frames are
 * built from addresses and ports of the tables above, and replies from the flows the
 * engine reports, whatever made them. */

static void service_backends(struct fuzz *f, int svc, struct input *in)
{
    struct hp_backend b[4];
    uint32_t n = u8(in) % 6;
    if (n == 5)                /* over the limit: refused before a backend is read */
        n = HP_MAX_BACKENDS + 1;
    for (uint32_t i = 0; i < n && i < 4; i++) {
        uint8_t sel = u8(in);
        b[i].ip = f->kind->addrs[sel & 15];
        b[i].port = l4ports[sel >> 4];
        b[i].weight = (uint16_t)(u8(in) % 4);
    }
    CONTROL(f, hp_service_set_backends(f->e, svc, b, n));
}

static const uint8_t protos[4] = {6, 17, 1, 47}; /* 47: refused */

/* What a service of any kind may limit, each read from the input if its bit of `bits`
 * is set (0x1 pool, 0x2 MTU, 0x4 MSS clamp, 0x8 idle timeout), else left at 0. */
struct limits {
    uint16_t pool_min, pool_max, mtu, mss_clamp;
    uint32_t idle_timeout_s;
};

static struct limits read_limits(struct input *in, uint8_t bits, uint16_t pool_base)
{
    struct limits l = {0};
    if (bits & 0x1) {          /* a pool of a few ports, to run out of them */
        l.pool_min = (uint16_t)(pool_base + u8(in) % 4);
        l.pool_max = (uint16_t)(l.pool_min + u8(in) % 4 - 1);
    }
    if (bits & 0x2)
        l.mtu = (uint16_t)(60 + u8(in) * 6);
    if (bits & 0x4)
        l.mss_clamp = (uint16_t)(u8(in) * 8);
    if (bits & 0x8)
        l.idle_timeout_s = u8(in) % 8;
    return l;
}

/* A service from the input: a listener on (in_port, vip, vport, proto) and its options. */
static void privatelink_service_add(struct fuzz *f, struct input *in)
{
    uint8_t where = u8(in), what = u8(in), opts = u8(in);
    struct hp_service_config c = {
        .in_port = port_ids[(where & 15) % N_PORT_IDS],
        .out_port = port_ids[(where >> 4) % N_PORT_IDS],
        .vip = f->kind->addrs[what & 15],
        .proto = protos[(what >> 4) & 3],
        .flags = (uint8_t)(opts & 7),
    };
    uint8_t vport = u8(in);    /* ICMP on port 0 unless the top bit asks for a refusal */
    c.vport = c.proto == 1 && !(vport & 0x80) ? 0 : l4ports[vport & 15];
    if (opts & 0x08)
        c.snat_ip = f->kind->addrs[u8(in) & 15];
    if (what & 0x40) {         /* PROXY v2 (refused for UDP and ICMP), the ID when 0x80 */
        c.proxy_v2 = 1;
        if (what & 0x80)
            memcpy(c.vpce_id, "vpce-0a1b2c3d4e5f67890", sizeof "vpce-0a1b2c3d4e5f67890");
    }
    struct limits lim = read_limits(in, opts >> 4, 1024);
    c.snat_port_min = lim.pool_min;
    c.snat_port_max = lim.pool_max;
    c.mtu = lim.mtu;
    c.mss_clamp = lim.mss_clamp;
    c.idle_timeout_s = lim.idle_timeout_s;
    int id = CONTROL(f, hp_service_add(f->e, &c));
    remember_service(f, id);
    service_backends(f, id, in); /* read even if refused: an input's layout never shifts */
}

/* The control operations of every kind: a service of the kind added from the input, and
 * the calls that take any service id (a VPC link must refuse backends; a target reset
 * marks the flows to a destination). */
enum control { CTL_ADD, CTL_REMOVE, CTL_FLAGS, CTL_BACKENDS, CTL_RESET, CTL__COUNT };

static void kind_control(struct fuzz *f, struct input *in)
{
    uint8_t code = u8(in);
    switch (code % CTL__COUNT) {
    case CTL_ADD:
        f->kind->add(f, in);
        break;
    case CTL_REMOVE: {
        uint8_t sel = u8(in);
        if (CONTROL(f, hp_service_remove(f->e, pick_service(f, sel))) == 0)
            f->services[sel % MAX_SERVICES] = -1;
        break;
    }
    case CTL_FLAGS: {
        int svc = pick_service(f, u8(in));
        CONTROL(f, hp_service_set_flags(f->e, svc, u8(in)));
        break;
    }
    case CTL_BACKENDS:
        service_backends(f, pick_service(f, u8(in)), in);
        break;
    case CTL_RESET: {
        int svc = pick_service(f, u8(in));
        uint8_t sel = u8(in);
        CONTROL(f, hp_service_reset_backend(f->e, svc, f->kind->addrs[sel & 15], l4ports[sel >> 4]));
        break;
    }
    }
}

/* conftest.py's engine: endpoint ENI (port 0) and NLB ENI (port 1), TCP 80, UDP 53 and
 * ICMP echo on 10.0.1.50 toward the two targets; `opts` varies the listeners' flags, and
 * with 0x08 the TCP listener puts a PROXY v2 header in (with an endpoint ID unless 0x01). */
static void privatelink_setup(struct fuzz *f, uint8_t opts)
{
    port_set(f, 0, 0);
    port_set(f, 1, 0);
    static const struct {
        uint8_t proto;
        uint16_t vport, bport;
    } listeners[] = {{6, 80, 8080}, {17, 53, 5353}, {1, 0, 0}};
    for (unsigned i = 0; i < sizeof listeners / sizeof listeners[0]; i++) {
        struct hp_service_config c = {
            .in_port = 0, .out_port = 1, .vip = IP4(10, 0, 1, 50),
            .vport = listeners[i].vport, .proto = listeners[i].proto,
            .flags = i == 0 ? (uint8_t)(opts & (HP_SVC_RST_ON_MISS | HP_SVC_HASH_TCP_SEQ)) : 0,
            .mss_clamp = i == 0 && (opts & 0x10) ? 1200 : 0,
            .proxy_v2 = i == 0 && (opts & 0x08),
        };
        if (c.proxy_v2 && !(opts & 0x01))
            memcpy(c.vpce_id, "vpce-08d2bf15fac5001c9", sizeof "vpce-08d2bf15fac5001c9");
        int id = hp_service_add(f->e, &c);
        CHECK(id >= 0);
        remember_service(f, id);
        struct hp_backend b[2] = {{IP4(10, 0, 1, 20), listeners[i].bport, 1},
                                  {IP4(10, 0, 2, 21), listeners[i].bport, 1}};
        CHECK(hp_service_set_backends(f->e, id, b, opts & 0x20 ? 1 : 2) == 0);
    }
}

/* ---- VPC-to-VPC NAT: test_vpc_nat.py's topology, its ports 5-9 here as 0-4 ----------- */

#define ATTACHMENT_A 0
#define ATTACHMENT_B 3

static const uint8_t prefix_lens[8] = {16, 24, 28, 32, 0, 8, 16, 33}; /* 33: refused */
static const uint8_t link_protos[4] = {0, 6, 17, 1};                 /* 1: refused */

/* A VPC link from the input: attachment, protocols, flags and options, then its
 * prefixes, ENIs and routes (counts of 0 and routes naming a missing ENI are refused). */
static void vpc_nat_add(struct fuzz *f, struct input *in)
{
    const uint32_t *addrs = f->kind->addrs;
    uint8_t where = u8(in), opts = u8(in), counts = u8(in);
    struct hp_link_config l = {
        .in_port = port_ids[(where & 15) % N_PORT_IDS],
        .proto = link_protos[(where >> 4) & 3],
        .flags = (uint8_t)(where & 0x40 ? HP_SVC_DISABLED : 0) | (where & 0x80 ? 0x02 : 0),
        .n_prefixes = counts & 3,
        .n_enis = (counts >> 2) & 3,
        .n_routes = (counts >> 4) & 3,
    };
    struct limits lim = read_limits(in, opts, 5000);
    l.snat_port_min = lim.pool_min;
    l.snat_port_max = lim.pool_max;
    l.mtu = lim.mtu;
    l.mss_clamp = lim.mss_clamp;
    l.idle_timeout_s = lim.idle_timeout_s;
    for (uint32_t i = 0; i < l.n_prefixes; i++) {
        uint8_t p = u8(in);
        l.prefixes[i] = (struct hp_prefix){addrs[p & 15], prefix_lens[p >> 5]};
    }
    for (uint32_t i = 0; i < l.n_enis; i++) {
        uint8_t e = u8(in);
        l.enis[i] = (struct hp_link_eni){port_ids[(e & 15) % N_PORT_IDS], addrs[e >> 4]};
    }
    for (uint32_t i = 0; i < l.n_routes; i++) {
        uint8_t r = u8(in), to = u8(in);
        l.routes[i] = (struct hp_link_route){addrs[r & 15], prefix_lens[r >> 5], (uint8_t)(to % 4)};
    }
    remember_service(f, CONTROL(f, hp_link_add(f->e, &l)));
}

/* test_vpc_nat.py's engine: link A from the attachment (port 0) to 10.0.0.0/16 through
 * ENIs on ports 1 (10.0.1.4) and 2 (10.0.2.4); `opts` adds its routes (10.0.1.0/24 and
 * 10.0.2.0/24 each to its own AZ's ENI), link B (same CIDR, from port 3, ENI on port 4),
 * and varies link A's protocols, SNAT pool, MTU and MSS clamp, and idle timeout. */
static void vpc_nat_setup(struct fuzz *f, uint8_t opts)
{
    for (int i = 0; i < N_SETTABLE_PORTS; i++)
        port_set(f, i, 0);
    struct hp_link_config a = {
        .in_port = ATTACHMENT_A,
        .proto = opts & 0x04 ? 6 : 0,
        .n_prefixes = 1, .prefixes = {{IP4(10, 0, 0, 0), 16}},
        .n_enis = 2, .enis = {{1, IP4(10, 0, 1, 4)}, {2, IP4(10, 0, 2, 4)}},
    };
    if (opts & 0x02) {
        a.n_routes = 2;
        a.routes[0] = (struct hp_link_route){IP4(10, 0, 1, 0), 24, 0};
        a.routes[1] = (struct hp_link_route){IP4(10, 0, 2, 0), 24, 1};
    }
    if (opts & 0x08) {
        a.snat_port_min = 5000;
        a.snat_port_max = 5001;
    }
    if (opts & 0x10) {
        a.mtu = 8500;
        a.mss_clamp = 1200;
    }
    if (opts & 0x20)
        a.idle_timeout_s = 3;
    int id = hp_link_add(f->e, &a);
    CHECK(id >= 0);
    remember_service(f, id);
    if (opts & 0x01) {
        struct hp_link_config b = {
            .in_port = ATTACHMENT_B,
            .n_prefixes = 1, .prefixes = {{IP4(10, 0, 0, 0), 16}},
            .n_enis = 1, .enis = {{4, IP4(10, 0, 1, 5)}},
        };
        id = hp_link_add(f->e, &b);
        CHECK(id >= 0);
        remember_service(f, id);
    }
}

static const struct kind kinds[] = {
    {
        .name = "privatelink",
        .port_addr = {
            {IP4(10, 0, 1, 50), IP4(10, 0, 1, 51)},    /* 0: endpoint ENI */
            {IP4(10, 0, 1, 100), IP4(10, 0, 1, 101)},  /* 1: NLB ENI */
            {IP4(10, 0, 3, 50), 0},                    /* 2: a second endpoint ENI */
            {IP4(10, 0, 3, 100), IP4(10, 0, 3, 101)},  /* 3: a second NLB ENI */
            {IP4(10, 0, 4, 100), 0},                   /* 4: a third */
        },
        .addrs = {
            IP4(10, 0, 1, 10),  IP4(10, 0, 1, 50),  IP4(10, 0, 1, 100), IP4(10, 0, 1, 20),
            IP4(10, 0, 2, 21),  IP4(10, 0, 1, 11),  IP4(10, 0, 3, 50),  IP4(10, 0, 3, 100),
            IP4(10, 0, 3, 101), IP4(10, 0, 1, 1),   IP4(10, 0, 1, 51),  IP4(10, 0, 1, 101),
            IP4(192, 168, 7, 9), 0,                  0xffffffffu,        IP4(10, 0, 3, 20),
        },
        .dsts = {IP4(10, 0, 1, 50), IP4(10, 0, 1, 50), IP4(10, 0, 1, 50)},
        .target_port = {8080, 5353},
        .setup = privatelink_setup,
        .add = privatelink_service_add,
    },
    {
        .name = "vpc_nat",
        .port_addr = {
            {IP4(198, 18, 0, 1), 0},                   /* 0: link A's attachment */
            {IP4(10, 0, 1, 4), 0},                     /* 1: link A's ENI in AZ a */
            {IP4(10, 0, 2, 4), 0},                     /* 2: link A's ENI in AZ b */
            {IP4(198, 18, 0, 1), 0},                   /* 3: link B's attachment */
            {IP4(10, 0, 1, 5), 0},                     /* 4: link B's ENI */
        },
        .addrs = {
            IP4(198, 18, 0, 10), IP4(10, 0, 1, 4),  IP4(10, 0, 2, 4),   IP4(10, 0, 1, 20),
            IP4(10, 0, 2, 20),   IP4(198, 18, 0, 11), IP4(10, 0, 1, 5), IP4(10, 0, 3, 30),
            IP4(10, 1, 0, 9),    IP4(10, 0, 1, 1),  IP4(10, 0, 1, 16),  IP4(198, 18, 0, 1),
            IP4(192, 168, 7, 9), 0,                  0xffffffffu,        IP4(10, 0, 200, 1),
        },
        .dsts = {IP4(10, 0, 1, 20), IP4(10, 0, 2, 20), IP4(10, 0, 3, 30)},
        .target_port = {80, 53},
        .setup = vpc_nat_setup,
        .add = vpc_nat_add,
    },
};
#define N_KINDS (sizeof kinds / sizeof kinds[0])

/* ---- building frames ------------------------------------------------------------------ */

/* Loops over bytes that tell the fuzzer nothing new are not instrumented for coverage:
 * its comparisons' tracing would cost more than the engine's work on the frame. */
#define NO_COVERAGE __attribute__((no_sanitize("coverage"), noinline))

NO_COVERAGE static uint32_t sum16(const uint8_t *d, size_t len, uint32_t sum)
{
    for (size_t i = 0; i + 1 < len; i += 2)
        sum += (uint32_t)d[i] << 8 | d[i + 1];
    if (len & 1)
        sum += (uint32_t)d[len - 1] << 8;
    return sum;
}

NO_COVERAGE static uint16_t fold(uint32_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)sum;
}

static void put16(uint8_t *d, uint16_t v) { d[0] = (uint8_t)(v >> 8); d[1] = (uint8_t)v; }
static void put32(uint8_t *d, uint32_t v) { put16(d, (uint16_t)(v >> 16)); put16(d + 2, (uint16_t)v); }
static uint16_t get16(const uint8_t *d) { return (uint16_t)(d[0] << 8 | d[1]); }

static uint32_t pseudo_sum(const uint8_t *ip, uint8_t proto, uint32_t l4_len)
{
    return sum16(ip + 12, 8, 0) + proto + l4_len;
}

/* Where the IPv4 header starts (one VLAN tag at most, as the engine takes), or 0. */
static uint32_t l3_offset(const uint8_t *d, uint32_t len)
{
    if (len < 14)
        return 0;
    uint16_t type = get16(d + 12);
    if (type == 0x8100 || type == 0x88a8) {
        if (len < 18)
            return 0;
        return get16(d + 16) == 0x0800 ? 18 : 0;
    }
    return type == 0x0800 ? 14 : 0;
}

static void ip_checksum_fix(uint8_t *ip)
{
    uint32_t ihl = (ip[0] & 15) * 4u;
    put16(ip + 10, 0);
    put16(ip + 10, (uint16_t)~fold(sum16(ip, ihl, 0)));
}

static uint16_t l4_checksum_offset(uint8_t proto)
{
    return proto == 6 ? 16 : proto == 17 ? 6 : 2;
}

/* The L4 checksum of an IPv4 packet: set right (partial: the pseudo-header sum that
 * CHECKSUM_PARTIAL leaves in the field), or checked (true if right or UDP's "none"). */
static void l4_checksum_set(uint8_t *ip, uint32_t l4_len, bool partial)
{
    uint8_t proto = ip[9];
    uint8_t *l4 = ip + (ip[0] & 15) * 4u;
    uint16_t off = l4_checksum_offset(proto);
    put16(l4 + off, 0);
    if (partial && proto != 1) {
        put16(l4 + off, fold(pseudo_sum(ip, proto, l4_len)));
        return;
    }
    uint32_t sum = sum16(l4, l4_len, proto == 1 ? 0 : pseudo_sum(ip, proto, l4_len));
    uint16_t c = (uint16_t)~fold(sum);
    put16(l4 + off, proto == 17 && c == 0 ? 0xffff : c);
}

/* True if the frame is IPv4 with sane lengths and its IPv4 checksum (and, with `l4`, its
 * TCP/UDP/ICMP checksum over the IPv4 payload) verifies. */
static bool checksums_ok(const uint8_t *d, uint32_t len, bool l4)
{
    uint32_t l3 = l3_offset(d, len);
    if (!l3 || len < l3 + 20)
        return false;
    const uint8_t *ip = d + l3;
    uint32_t ihl = (ip[0] & 15) * 4u, total = get16(ip + 2);
    if ((ip[0] >> 4) != 4 || ihl < 20 || total < ihl || l3 + total > len)
        return false;
    if (fold(sum16(ip, ihl, 0)) != 0xffff)
        return false;
    if (!l4)
        return true;
    uint8_t proto = ip[9];
    uint32_t l4_len = total - ihl;
    if ((proto != 6 && proto != 17 && proto != 1) || l4_len < l4_checksum_offset(proto) + 2u ||
        (get16(ip + 6) & 0x3fff))  /* fragments: the checksum covers the whole datagram */
        return false;
    const uint8_t *l4h = ip + ihl;
    if (proto == 17 && get16(l4h + 6) == 0)
        return true;
    uint32_t sum = sum16(l4h, l4_len, proto == 1 ? 0 : pseudo_sum(ip, proto, l4_len));
    return fold(sum) == 0xffff;
}

/* What a frame carries, before it is laid out. */
struct tuple {
    uint32_t sip, dip;
    uint16_t sport, dport;
    uint8_t proto;
    uint8_t tcp_flags;
    uint8_t icmp_type;          /* echo request 8 or reply 0 */
};

struct frame {
    uint8_t buf[MAX_FRAME];
    uint32_t len;
};

/* Ethernet (toward port `idx`'s MAC, from its router), a VLAN tag if asked, IPv4, and the
 * L4 header with `payload` bytes after it. `opts` asks for a TCP MSS option. */
static uint8_t *eth_ip(struct frame *fr, int idx, bool vlan, const struct tuple *t,
                       uint32_t l4_len)
{
    uint8_t *d = fr->buf;
    port_mac(d, (uint8_t)(0xe0 + (idx < 0 ? 0x0f : idx)));
    port_mac(d + 6, (uint8_t)(0xa0 + (idx < 0 ? 0x0f : idx)));
    uint32_t l3 = 14;
    if (vlan) {
        put16(d + 12, 0x8100);
        put16(d + 14, 5);
        l3 = 18;
    }
    put16(d + l3 - 2, 0x0800);
    uint8_t *ip = d + l3;
    memset(ip, 0, 20);
    ip[0] = 0x45;
    put16(ip + 2, (uint16_t)(20 + l4_len));
    put16(ip + 6, 0x4000);
    ip[8] = 64;
    ip[9] = t->proto;
    put32(ip + 12, t->sip);
    put32(ip + 16, t->dip);
    ip_checksum_fix(ip);
    fr->len = l3 + 20 + l4_len;
    return ip;
}

static void build_l4(struct frame *fr, int idx, bool vlan, const struct tuple *t,
                     uint32_t payload, bool mss, bool partial)
{
    uint32_t hdr = t->proto == 6 ? (mss ? 24 : 20) : 8;
    uint32_t room = MAX_FRAME - 18 - 20 - hdr;
    if (payload > room)
        payload = room;
    uint8_t *ip = eth_ip(fr, idx, vlan, t, hdr + payload);
    uint8_t *l4 = ip + 20;
    memset(l4, 0, hdr);
    memset(l4 + hdr, 0x5a, payload);
    if (t->proto == 6) {
        put16(l4, t->sport);
        put16(l4 + 2, t->dport);
        put32(l4 + 4, t->tcp_flags & 0x02 ? 1000 : 1001); /* data after the SYN's: where a
                                                             * PROXY v2 header goes */
        put32(l4 + 8, t->tcp_flags & 0x10 ? 1001 : 0);
        l4[12] = (uint8_t)((hdr / 4) << 4);
        l4[13] = t->tcp_flags;
        put16(l4 + 14, 65535);
        if (mss) {
            l4[20] = 2;
            l4[21] = 4;
            put16(l4 + 22, 1460);
        }
    } else if (t->proto == 17) {
        put16(l4, t->sport);
        put16(l4 + 2, t->dport);
        put16(l4 + 4, (uint16_t)(8 + payload));
    } else {
        /* echo: the engine's convention puts the identifier in sport (request) or dport */
        l4[0] = t->icmp_type;
        put16(l4 + 4, t->icmp_type == 8 ? t->sport : t->dport);
        put16(l4 + 6, 1);
    }
    l4_checksum_set(ip, hdr + payload, partial);
}

/* An ICMP error (destination unreachable, time exceeded, or parameter problem) from a
 * router on port `idx`'s side, quoting the packet `quoted` describes as its sender sent
 * it; the engine translates it for the flow it quotes. */
static void build_icmp_error(struct frame *fr, int idx, const struct tuple *quoted,
                             uint8_t type_sel, uint32_t quote_len)
{
    static const uint8_t types[4][2] = {{3, 3}, {3, 4}, {11, 0}, {12, 0}};
    struct frame inner;
    build_l4(&inner, -1, false, quoted, 0, false, false);
    uint32_t in_len = inner.len - 14;
    if (quote_len < in_len)
        in_len = quote_len;
    struct tuple outer = {.sip = IP4(10, 0, 1, 1), .dip = quoted->sip, .proto = 1};
    uint8_t *ip = eth_ip(fr, idx, false, &outer, 8 + in_len);
    uint8_t *icmp = ip + 20;
    memset(icmp, 0, 8);
    icmp[0] = types[type_sel & 3][0];
    icmp[1] = types[type_sel & 3][1];
    if (icmp[0] == 3 && icmp[1] == 4)
        put16(icmp + 6, 1400);
    memcpy(icmp + 8, inner.buf + 14, in_len);
    l4_checksum_set(ip, 8 + in_len, false);
}

static void build_arp(const struct kind *k, struct frame *fr, int idx, uint8_t sel)
{
    uint8_t *d = fr->buf;
    memset(d, 0xff, 6);
    port_mac(d + 6, (uint8_t)(0xa0 + idx));
    put16(d + 12, 0x0806);
    uint8_t *a = d + 14;
    put16(a, 1);
    put16(a + 2, 0x0800);
    a[4] = 6;
    a[5] = 4;
    put16(a + 6, sel & 0x80 ? 2 : 1);
    port_mac(a + 8, (uint8_t)(0xa0 + idx));
    put32(a + 14, IP4(10, 0, 1, 1));
    memset(a + 18, 0, 6);
    put32(a + 24, k->addrs[sel & 15]);
    fr->len = sel & 0x40 ? 60 : 42;  /* padded to Ethernet's minimum, or not */
    memset(d + 42, 0, 18);
}

/* ---- frames of a batch ---------------------------------------------------------------- */

enum frame_spec {
    FRAME_RAW,          /* len:u16 bytes: a frame as it is (the golden tests' packets) */
    FRAME_NEW,          /* a client's packet from catalogue addresses and ports */
    FRAME_FORWARD,      /* the client side of a live flow: the established path */
    FRAME_REPLY,        /* the target side of a live flow, toward its SNAT address */
    FRAME_REPLY2,       /* (twice as likely: replies are what new flows wait for) */
    FRAME_ICMP_ERROR,   /* an ICMP error quoting a live flow's packet, either direction */
    FRAME_ARP,
    FRAME__COUNT
};

/* The live flows, so frames can belong to them; their count. Read once per batch (the
 * flows change only while a batch is processed), in the order of their 5-tuples, so that
 * which flow a frame belongs to never depends on the slots the engine put them in. */
static int flow_order(const void *a, const void *b)
{
    const struct hp_flow_info *x = a, *y = b;
    uint64_t kx = (uint64_t)x->client_ip << 32 | (uint32_t)x->client_port << 16 | x->proto;
    uint64_t ky = (uint64_t)y->client_ip << 32 | (uint32_t)y->client_port << 16 | y->proto;
    if (kx != ky)
        return kx < ky ? -1 : 1;
    uint64_t vx = (uint64_t)x->vip << 32 | (uint32_t)x->vport << 16 | x->in_port;
    uint64_t vy = (uint64_t)y->vip << 32 | (uint32_t)y->vport << 16 | y->in_port;
    return vx < vy ? -1 : vx > vy;
}

static uint32_t dump_flows(struct fuzz *f)
{
    if (f->n_flows != UINT32_MAX)
        return f->n_flows;
    uint32_t cursor = 0, n = 0;
    if (hp_flow_count(f->e))
        n = hp_flow_dump(f->e, &cursor, f->flows, MAX_FLOWS);
    CHECK(n <= f->capacity && n == hp_flow_count(f->e));
    uint32_t handshaking = 0, established = 0;
    for (uint32_t i = 0; i < n; i++) {
        handshaking += f->flows[i].tcp_state == HP_TCP_SYN_SENT || f->flows[i].tcp_state == HP_TCP_SYN_RECV;
        established += f->flows[i].tcp_state == HP_TCP_ESTABLISHED;
    }
    uint32_t half_open = hp_flow_half_open_count(f->e);
    CHECK(handshaking <= half_open && half_open <= n - established);
    qsort(f->flows, n, sizeof f->flows[0], flow_order);
    f->n_flows = n;
    return n;
}

/* A live flow's packet in direction `dir` (0: client → vip, 1: backend → snat), of one
 * of the flows whose side of that direction is the batch's port (`idx`) if there are
 * any, else of any flow. False if there is no flow: the caller makes a new packet. */
static bool flow_tuple(struct fuzz *f, uint8_t sel, int dir, int idx, struct tuple *t)
{
    uint32_t n = dump_flows(f);
    if (!n)
        return false;
    uint16_t port = idx < 0 ? UINT16_MAX : port_ids[idx];
    uint32_t on_port = 0;
    for (uint32_t i = 0; i < n; i++)
        on_port += (dir ? f->flows[i].out_port : f->flows[i].in_port) == port;
    const struct hp_flow_info *fl = &f->flows[sel % n];
    if (on_port) {
        uint32_t pick = sel % on_port;
        for (uint32_t i = 0; i < n; i++)
            if ((dir ? f->flows[i].out_port : f->flows[i].in_port) == port && pick-- == 0) {
                fl = &f->flows[i];
                break;
            }
    }
    t->proto = fl->proto;
    if (dir == 0) {
        t->sip = fl->client_ip; t->sport = fl->client_port;
        t->dip = fl->vip;       t->dport = fl->vport;
        t->icmp_type = 8;
    } else {
        t->sip = fl->backend_ip; t->sport = fl->backend_port;
        t->dip = fl->snat_ip;    t->dport = fl->snat_port;
        t->icmp_type = 0;
    }
    return true;
}

static const uint8_t tcp_flag_choices[8] = {0x02, 0x12, 0x10, 0x18, 0x11, 0x04, 0x14, 0x01};

static void new_tuple(const struct kind *k, struct input *in, struct tuple *t)
{
    uint8_t a = u8(in), b = u8(in);
    t->proto = protos[(a >> 6) & 3] == 47 ? 6 : protos[(a >> 6) & 3];
    t->sip = k->addrs[a & 15] == 0 ? k->addrs[0] : k->addrs[a & 15];
    t->dip = (a & 0x30) ? k->dsts[((a & 0x30) >> 4) - 1] : k->addrs[b & 15];
    t->sport = (uint16_t)(40000 + (b >> 4));
    t->dport = (a & 0x30) == 0x30 ? l4ports[b & 15] : t->proto == 17 ? 53 : 80;
    t->icmp_type = 8;
}

/* Mutations after a frame is built: none, bytes XORed (with or without the IPv4 checksum
 * fixed up), cut short, or the IPv4 total length lowered (a consistent packet whose L4
 * header is cut). */
static void mutate(struct frame *fr, struct input *in)
{
    uint8_t m = u8(in);
    switch (m & 7) {
    case 0:
    case 1:
    case 2:
        return;
    case 3:
    case 4: {
        uint32_t n = 1 + (m >> 3) % 4;
        for (uint32_t i = 0; i < n && fr->len; i++) {
            uint32_t at = u8(in) % fr->len;
            fr->buf[at] ^= u8(in);
        }
        break;
    }
    case 5:
        fr->len = fr->len ? u16(in) % fr->len : 0;
        return;
    case 6: {
        uint32_t l3 = l3_offset(fr->buf, fr->len);
        if (l3 && fr->len >= l3 + 20) {
            uint16_t total = get16(fr->buf + l3 + 2);
            put16(fr->buf + l3 + 2, total ? (uint16_t)(u16(in) % total) : 0);
        }
        break;
    }
    case 7:
        return;
    }
    if (m & 0x80) {
        uint32_t l3 = l3_offset(fr->buf, fr->len);
        if (l3 && fr->len >= l3 + 20) {
            uint32_t ihl = (fr->buf[l3] & 15) * 4u;
            if (ihl >= 20 && fr->len >= l3 + ihl)
                ip_checksum_fix(fr->buf + l3);
        }
    }
}

static void build_frame(struct fuzz *f, struct input *in, int idx, bool partial, struct frame *fr)
{
    uint8_t spec = u8(in);
    int port = idx < 0 ? 0 : idx;
    struct tuple t = {0};
    switch (spec % FRAME__COUNT) {
    case FRAME_RAW: {
        uint32_t len = u16(in) % (MAX_FRAME + 1);
        if (len > in->n)
            len = (uint32_t)in->n;
        memcpy(fr->buf, in->p, len);
        in->p += len;
        in->n -= len;
        fr->len = len;
        return; /* as it is: no mutation byte */
    }
    case FRAME_ARP:
        build_arp(f->kind, fr, port, u8(in));
        break;
    case FRAME_ICMP_ERROR: {
        uint8_t sel = u8(in), how = u8(in);
        int dir = how & 1;
        new_tuple(f->kind, in, &t); /* read even for a live flow: the layout never shifts */
        flow_tuple(f, sel, dir, idx, &t);
        /* The quoted packet is one this side sent out: the other direction's, translated. */
        struct tuple q = {.sip = t.dip, .dip = t.sip, .sport = t.dport, .dport = t.sport,
                          .proto = t.proto, .tcp_flags = 0x12,
                          .icmp_type = (uint8_t)(t.icmp_type == 8 ? 0 : 8)};
        if (q.proto == 1) {    /* an echo keeps the identifier where its direction has it */
            q.sport = t.dport ? t.dport : t.sport;
            q.dport = q.sport;
        }
        build_icmp_error(fr, port, &q, (uint8_t)(how >> 1), 8u + (how >> 3) * 4u);
        break;
    }
    default: {
        uint8_t s = spec % FRAME__COUNT, sel = u8(in), l4 = u8(in);
        int dir = s == FRAME_REPLY || s == FRAME_REPLY2;
        new_tuple(f->kind, in, &t);
        bool live = s != FRAME_NEW && flow_tuple(f, sel, dir, idx, &t);
        if (!live && dir) {    /* a stale reply: toward the port's address, from a target */
            const struct kind *k = f->kind;
            t.sip = k->addrs[3 + (sel & 1)];
            t.dip = idx > 0 && k->port_addr[idx][0] ? k->port_addr[idx][0] : k->port_addr[1][0];
            t.sport = k->target_port[t.proto == 17];
            t.icmp_type = 0;
        }
        t.tcp_flags = tcp_flag_choices[l4 & 7];
        if (live && dir == 1 && (l4 & 7) == 0)
            t.tcp_flags = 0x12; /* a reply's first segment: the SYN-ACK */
        uint32_t payload = (l4 & 0x40) ? u16(in) % MAX_FRAME : (l4 >> 3) & 7;
        build_l4(fr, port, l4 & 0x80, &t, payload, (l4 & 0x38) == 0x38, partial);
        break;
    }
    }
    mutate(fr, in);
}

/* ---- batches --------------------------------------------------------------------------- */

static const uint64_t SEC = 1000000000ull;

static uint64_t time_step(uint8_t sel)
{
    static const uint32_t seconds[16] = {0, 0, 0, 1, 1, 2, 5, 9, 11, 31, 61, 121, 351, 3600, 0, 0};
    if ((sel & 15) == 14)
        return sel >> 4;       /* nanoseconds: the same second */
    return seconds[sel & 15] * SEC + (uint64_t)(sel >> 4) * (SEC / 16);
}

static void check_results(const struct hp_pkt *pkts, const uint32_t *in_len, const bool *l4_ok_in,
                          const uint32_t *cap, uint32_t n, uint16_t in_port)
{
    uint32_t reasons = hp_drop_reason_count();
    for (uint32_t i = 0; i < n; i++) {
        const struct hp_pkt *p = &pkts[i];
        CHECK(p->drop_reason < reasons);
        switch (p->verdict) {
        case HP_VERDICT_DROP:
            CHECK(p->drop_reason != 0);
            break;
        case HP_VERDICT_FORWARD: {
            CHECK(p->drop_reason == 0);
            /* only a PROXY v2 header changes a length: a TCP frame, within its buffer */
            CHECK(p->len == in_len[i] || (p->len <= cap[i] && p->len >= 14 + 40 &&
                                          p->data[p->len >= 18 && p->data[12] == 0x81 ? 27 : 23] == 6));
            int idx = port_index(p->out_port);
            CHECK(idx >= 0);
            CHECK(checksums_ok(p->data, p->len, l4_ok_in[i] && !(p->flags & HP_PKT_CSUM_PARTIAL)));
            break;
        }
        case HP_VERDICT_REPLY:
            CHECK(p->out_port == in_port);
            CHECK(p->len <= in_len[i]);
            break;
        default:
            CHECK(0);
        }
    }
}

/* ---- the tap (hp_tap.c) ---------------------------------------------------------------- */

#define TAP_MAX_RING 64
#define TAP_MAX_SNAPLEN 2048      /* hp_tap.c's default, the largest the fuzzer asks for */

/* Whether record `r` can be frame `k` of the batch: an in record is the frame as it
 * arrived (its bytes before the engine touched them), an out record the frame as it left. */
static bool tap_matches(const struct hp_tap_record *r, const uint8_t *bytes, uint32_t k,
                        const struct hp_pkt *pkts, const uint8_t (*orig)[MAX_FRAME],
                        const uint32_t *in_len, uint16_t in_port)
{
    const struct hp_pkt *p = &pkts[k];
    if (r->verdict != p->verdict || r->drop_reason != p->drop_reason)
        return false;
    if (r->stage == HP_TAP_IN)
        return r->port == in_port && r->orig_len == in_len[k] && !memcmp(bytes, orig[k], r->cap_len);
    return p->verdict != HP_VERDICT_DROP && r->port == p->out_port && r->orig_len == p->len &&
           !memcmp(bytes, p->data, r->cap_len);
}

/* Reads every record the batch left and checks each against hp_engine.h's promises: a
 * known stage the configuration asked for, snaplen respected, frames that concern the
 * tap's port, and, in order, exactly a frame of the batch as it arrived or as it left
 * (a frame's out record after its in record); the ring never holds more than its size. */
static void tap_check(struct fuzz *f, const struct hp_pkt *pkts, const uint8_t (*orig)[MAX_FRAME],
                      const uint32_t *in_len, uint32_t n, uint16_t in_port)
{
    static struct hp_tap_record recs[TAP_MAX_RING];
    static uint8_t data[TAP_MAX_RING * TAP_MAX_SNAPLEN];
    struct hp_tap_stats st;
    CHECK(hp_tap_stats(f->e, &st) == 0 && st.enabled == f->tap_on);
    if (!f->tap_on)
        return;
    CHECK(st.pending <= st.ring && st.ring <= TAP_MAX_RING && st.snaplen <= TAP_MAX_SNAPLEN);
    uint32_t got = hp_tap_read(f->e, recs, data, sizeof data, TAP_MAX_RING);
    CHECK(got == st.pending);
    uint32_t j = 0;
    bool j_in = false, j_out = false;
    for (uint32_t i = 0; i < got; i++) {
        const struct hp_tap_record *r = &recs[i];
        uint32_t want = r->orig_len < st.snaplen ? r->orig_len : st.snaplen;
        CHECK((r->stage == HP_TAP_IN || r->stage == HP_TAP_OUT) && (r->stage & f->tap_cfg.stages));
        CHECK(r->cap_len == want && r->data_offset + r->cap_len <= sizeof data);
        uint32_t k = j + (r->stage == HP_TAP_IN ? (j_in || j_out) : j_out);
        while (k < n && !tap_matches(r, data + r->data_offset, k, pkts, orig, in_len, in_port))
            k++;
        CHECK(k < n);
        uint16_t port = f->tap_cfg.port;
        CHECK(port == HP_TAP_ALL_PORTS || port == in_port ||
              (pkts[k].verdict != HP_VERDICT_DROP && port == pkts[k].out_port));
        if (k != j)
            j = k, j_in = j_out = false;
        if (r->stage == HP_TAP_IN)
            j_in = true;
        else
            j_out = true;
    }
    CHECK(hp_tap_read(f->e, recs, data, sizeof data, TAP_MAX_RING) == 0);
}

/* Turns the tap on (a configuration from the input, maybe one to be refused) or off. */
static void tap_switch(struct fuzz *f, uint8_t sel, uint8_t how)
{
    static const uint32_t snaplens[4] = {64, 100, MAX_FRAME, 0};
    if (f->tap_on && !(sel & 0x80)) {
        CHECK(hp_tap_disable(f->e) == 0);
        f->tap_on = false;
        return;
    }
    struct hp_tap_config cfg = {
        .ring = (sel & 7) == 7 ? 48 : 1u << (sel & 7),      /* 48: refused, not a power of two */
        .snaplen = (sel & 0x40) ? 16 : snaplens[(sel >> 3) & 3], /* 16: refused, too short */
        .port = how & 8 ? port_ids[(how >> 4) % N_PORT_IDS] : HP_TAP_ALL_PORTS,
        .stages = how & 3,
    };
    if (CONTROL(f, hp_tap_enable(f->e, &cfg)) == 0) {
        CHECK(!f->tap_on);
        f->tap_on = true;
        f->tap_cfg = cfg;
        if (!f->tap_cfg.stages)
            f->tap_cfg.stages = HP_TAP_IN | HP_TAP_OUT;
    }
}

static void batch(struct fuzz *f, struct input *in)
{
    uint8_t where = u8(in), when = u8(in), how = u8(in);
    uint16_t port = port_ids[(where & 15) % N_PORT_IDS];
    int idx = port_index(port);
    uint32_t n = 1 + (where >> 4) % 4 + (how & 0x80 ? u8(in) % MAX_BATCH : 0);
    if (n > MAX_BATCH)
        n = MAX_BATCH;
    bool partial = how & 1, offload = how & 2;
    uint16_t gso = how & 4 ? (uint16_t)(8 + (how >> 3 & 15) * 100) : 0;

    static struct frame fr;
    static uint8_t orig[MAX_BATCH][MAX_FRAME]; /* each frame as it went in, for the tap */
    f->n_flows = UINT32_MAX;      /* table changes and expiry since the last batch */
    struct hp_pkt pkts[MAX_BATCH];
    uint8_t *bufs[MAX_BATCH];
    uint32_t in_len[MAX_BATCH], cap[MAX_BATCH];
    bool l4_ok_in[MAX_BATCH];
    for (uint32_t i = 0; i < n; i++) {
        fr.len = 0;
        build_frame(f, in, idx, partial, &fr);
        /* Exactly the frame's size and the room given after it (none, a little, or more
         * than a PROXY v2 header needs), so that ASan sees any access past the end. */
        cap[i] = fr.len + (fr.len % 3) * 64;
        bufs[i] = malloc(cap[i] ? cap[i] : 1);
        CHECK(bufs[i] != NULL);
        memcpy(bufs[i], fr.buf, fr.len);
        memcpy(orig[i], fr.buf, fr.len);
        in_len[i] = fr.len;
        l4_ok_in[i] = !partial && checksums_ok(fr.buf, fr.len, true);
        pkts[i] = (struct hp_pkt){.data = bufs[i], .len = fr.len,
                                  .flags = (uint16_t)((partial ? HP_PKT_CSUM_PARTIAL : 0) |
                                                      (offload ? HP_PKT_CSUM_OFFLOAD : 0)),
                                  .gso_size = gso, .cap = cap[i]};
    }
    if ((when & 15) == 15 && f->now_ns >= SEC)
        f->now_ns -= SEC;      /* a clock that steps back: the engine keeps its own */
    else
        f->now_ns += time_step(when);
    /* The dry run (hp_trace.c) of every frame first: it must read any frame safely and
     * change nothing (the flow count is the cheap witness here; the unit tests compare
     * the whole table). */
    uint32_t flows_before = hp_flow_count(f->e);
    for (uint32_t i = 0; i < n; i++) {
        struct hp_trace_result tr;
        (void)hp_trace(f->e, port, pkts[i].data, pkts[i].len, &tr);
    }
    if (hp_flow_count(f->e) != flows_before)
        __builtin_trap();
    hp_process(f->e, port, pkts, n, f->now_ns);
    check_results(pkts, in_len, l4_ok_in, cap, n, port);
    tap_check(f, pkts, (const uint8_t (*)[MAX_FRAME])orig, in_len, n, port);
    for (uint32_t i = 0; i < n; i++)
        free(bufs[i]);
}

/* ---- operations ------------------------------------------------------------------------ */

enum op {
    OP_BATCH, OP_BATCH2, OP_BATCH3,  /* frames are most of what an engine sees */
    OP_PORT_SET, OP_PORT_REMOVE, OP_SG_SET, OP_SG_CLEAR,
    OP_KIND_CONTROL, OP_EXPIRE, OP_READ,
    OP_TAP,                          /* the tap on (with a configuration) or off */
    OP__COUNT
};

static void sg_set(struct fuzz *f, struct input *in)
{
    uint8_t sel = u8(in);
    struct hp_sg_rule rules[4];
    uint32_t n = (sel >> 4) % 6;
    if (n == 5)                /* over the limit: refused before a rule is read */
        n = HP_MAX_SG_RULES + 1;
    for (uint32_t i = 0; i < n && i < 4; i++) {
        uint8_t a = u8(in), b = u8(in);
        rules[i] = (struct hp_sg_rule){
            .proto = protos[a & 3] == 47 ? 0 : protos[a & 3],
            .prefix_len = (uint8_t)((a >> 2) % 34),  /* 33: refused */
            .port_lo = l4ports[b & 15],
            .port_hi = l4ports[b >> 4],
            .cidr = f->kind->addrs[u8(in) & 15],
        };
    }
    int direction = (sel & 0xf0) == 0xf0 ? 2 : (sel >> 3) & 1; /* 2: refused */
    CONTROL(f, hp_port_sg_set(f->e, port_ids[(sel & 7) % N_PORT_IDS], direction, rules, n));
}

/* The reporting calls: flows (checked in dump_flows), expired flows, and each port's
 * drops, which add up to its count of dropped frames. */
static void read_state(struct fuzz *f, bool drops)
{
    f->n_flows = UINT32_MAX;
    dump_flows(f);
    struct hp_flow_info expired[16];
    while (hp_expired_read(f->e, expired, 16) == 16)
        ;
    if (!drops)
        return;
    static uint32_t dropped = UINT32_MAX;
    if (dropped == UINT32_MAX)
        for (dropped = 0; strcmp(hp_counter_name(dropped), "dropped") != 0; dropped++)
            CHECK(dropped < hp_counter_count());
    for (uint32_t r = 0; r <= hp_drop_reason_count(); r++)
        CHECK(hp_drop_reason_name(r)[0] && hp_drop_reason_text(r)[0]);
    for (uint32_t c = 0; c <= hp_counter_count(); c++)
        CHECK(hp_counter_name(c)[0] && hp_counter_text(c)[0]);
    for (int i = 0; i < MAX_SERVICES; i++)
        for (uint32_t h = 0; h < 4; h++)
            CHECK(hp_service_backend_of(f->e, f->services[i], h * 0x9e3779b9u) < 4);
    CHECK(hp_flow_bytes_per_flow(f->e) > 0 && hp_build_info()[0]);
    (void)hp_expired_lost(f->e);
    for (uint32_t i = 0; i < N_PORT_IDS; i++) {
        uint64_t sum = 0;
        for (uint32_t r = 0; r < hp_drop_reason_count(); r++)
            sum += hp_port_drop(f->e, port_ids[i], r);
        CHECK(sum == hp_port_counter(f->e, port_ids[i], dropped));
    }
}

static void run(struct fuzz *f, struct input *in)
{
    while (in->n) {
        uint8_t code = u8(in);
        switch (code % OP__COUNT) {
        case OP_BATCH:
        case OP_BATCH2:
        case OP_BATCH3:
            batch(f, in);
            break;
        case OP_PORT_SET: {
            uint8_t sel = u8(in);
            int idx = port_index(port_ids[(sel & 15) % N_PORT_IDS]);
            if (idx >= 0)
                port_set(f, idx, sel >> 4);
            else            /* out of range, and the port kept absent stays so */
                CHECK(hp_port_set(f->e, HP_MAX_PORTS, &(struct hp_port_config){
                                      .mac = {2, 0, 0, 0, 0, 1}}) != 0);
            break;
        }
        case OP_PORT_REMOVE: {
            uint16_t port = port_ids[u8(in) % N_PORT_IDS];
            int idx = port_index(port);
            if (CONTROL(f, hp_port_remove(f->e, port)) == 0 && idx >= 0)
                f->port_present[idx] = false;
            break;
        }
        case OP_SG_SET:
            sg_set(f, in);
            break;
        case OP_SG_CLEAR: {
            uint8_t sel = u8(in);
            CONTROL(f, hp_port_sg_clear(f->e, port_ids[(sel & 7) % N_PORT_IDS], (sel >> 3) & 1));
            break;
        }
        case OP_KIND_CONTROL:
            kind_control(f, in);
            break;
        case OP_EXPIRE: {
            uint8_t sel = u8(in);
            f->now_ns += time_step(sel);
            hp_expire(f->e, f->now_ns, (uint32_t)u8(in) * 4);
            break;
        }
        case OP_READ:
            read_state(f, false);
            break;
        case OP_TAP: {
            uint8_t sel = u8(in);
            tap_switch(f, sel, u8(in));
            break;
        }
        }
    }
}

/* ---- the engine an input starts with --------------------------------------------------- */

static const uint32_t capacities[8] = {1, 2, 4, 8, 16, 32, 64, MAX_FLOWS};
static const uint32_t maglev_sizes[4] = {7, 13, 7, 251}; /* small: rebuilt per input */

/* The engine has the ports port_ids[] names below 8 (7 is the one in range that is never
 * set) and a ring of 16 expired flows, so that creating it zeroes ~6 KB instead of the
 * default ~200 KB (a quarter of the time per input) and the ring's overflow is reached; one
 * input in 64 (hash seeds 0x3f, 0x7f, ...) takes the defaults, so the production sizes stay fuzzed. */
#define FUZZ_PORTS 8
#define FUZZ_EXPIRED_RING 16
_Static_assert(FUZZ_PORTS > 7 && FUZZ_PORTS <= 300, "port 7 is in range, port 300 is not");

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct input in = {data, size};
    uint8_t kind = u8(&in), eng = u8(&in), seed = u8(&in);
    struct hp_engine_config cfg = {
        .flow_capacity = capacities[eng & 7],
        .max_services = MAX_SERVICES,
        .maglev_size = maglev_sizes[(eng >> 3) & 3],
        .hash_seed = seed,
        .expiry_scan_per_batch = eng & 0x20 ? 1 : 0,
        .max_ports = (seed & 0x3f) != 0x3f ? FUZZ_PORTS : 0,
        .expired_ring = (seed & 0x3f) != 0x3f ? FUZZ_EXPIRED_RING : 0,
    };
    if (eng & 0x40) {          /* short timeouts, so that flows expire inside an input */
        cfg.timeout_tcp_syn_s = 2;
        cfg.timeout_tcp_fin_s = 3;
        cfg.timeout_tcp_close_s = 1;
        cfg.timeout_udp_s = 5;
        cfg.timeout_icmp_s = 4;
    }
    static struct fuzz f;
    memset(&f, 0, sizeof f);
    for (int i = 0; i < MAX_SERVICES; i++)
        f.services[i] = -1;
    f.capacity = cfg.flow_capacity;
    f.now_ns = SEC;
    if (eng & 0x80) {          /* first a configuration that must be refused, with a reason */
        struct hp_engine_config bad = cfg;
        switch (seed & 7) {
        case 0: bad.flow_capacity = 0; break;
        case 1: bad.flow_capacity = (1u << 30) + 1; break;
        case 2: bad.maglev_size = 8 + (seed >> 3); break;   /* 8..39: primes are allowed */
        case 3: bad.max_services = 65536; break;
        case 4: bad.max_ports = HP_MAX_PORTS + 1 + (seed >> 3); break;
        case 5: bad.expired_ring = 3u << (seed >> 3); break;  /* never a power of two */
        case 6: bad.expired_ring = 1u << 25; break;
        case 7: bad.expired_ring = 0xffffffffu; break;
        }
        struct hp_engine *e = hp_engine_create(&bad);
        CHECK(e == NULL ? hp_last_error(NULL)[0] != '\0' : (seed & 7) == 2);
        hp_engine_destroy(e);
    }
    f.e = hp_engine_create(&cfg);
    CHECK(f.e != NULL);
    /* low two bits: the kind (so adding one leaves existing inputs' meaning alone) */
    f.kind = &kinds[(kind & 3) % N_KINDS];
    f.kind->setup(&f, (uint8_t)(kind >> 2));
    if (seed & 0x40)           /* half the inputs run with the tap on from the start */
        tap_switch(&f, (uint8_t)(0x80 | 4 | (seed & 0x18)), (uint8_t)(seed & 0x80 ? 0x0b : 0));
    run(&f, &in);
    read_state(&f, true);
    hp_engine_destroy(f.e);
    return 0;
}
