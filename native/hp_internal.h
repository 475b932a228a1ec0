/* hp_internal.h — the engine's own structures, shared by its .c files and by nobody else.
 *
 * Files, one per concern (VPP style); calls go down this list, never up:
 *   hp_engine.c   hp_engine_create()/destroy(): sizes every table once
 *   hp_process.c  the pipeline, hp_process(): classify → lookup → act → emit
 *   hp_trace.c    the pipeline's dry run, hp_trace(): the same decisions, nothing changed
 *   hp_kind_*.c   one translation kind each, behind struct hp_kind_ops (as OVS's
 *                 ct_l4_proto): its configuration call, decide, reply_miss
 *   hp_service.c  services and their index (listener and SNAT keys, prefix ports)
 *   hp_port.c     ports, their security groups and counters
 *   hp_reply.c    ARP replies and TCP RSTs built in place
 *   hp_nat.c      SNAT port allocation and header rewriting (incl. ICMP errors, MSS)
 *   hp_proxy.c    PROXY protocol v2: the header, its insertion, the sequence shift
 *   hp_maglev.c   Maglev lookup tables for backend choice
 *   hp_sg.c       security-group rule matching
 *   hp_flow.c     the flow table: fixed slots, two keys per flow in 8-way buckets, expiry,
 *                 timeouts
 *   hp_parse.c    Ethernet/ARP/IPv4/TCP/UDP/ICMP parsing with every bound checked
 *   hp_hash.c     hash functions
 *   hp_names.c    names and sentences of drop reasons and counters
 *   hp_mem.c      errors and accounted allocators
 *   hp_csum.h     checksums: full sums and RFC 1624 incremental updates
 *   hp_bench.c    C-side benchmark drivers
 *   hp_tap.c      taps: records of frames as they arrived and as they left
 *   hp_io_afpacket.c  the forwarder's AF_PACKET rings and poll loop (hp_io.h), above it all
 *
 * All addresses and ports inside the engine are host byte order, as in the public API;
 * conversion happens once when a header is parsed and once when it is written.
 */
#ifndef HP_INTERNAL_H
#define HP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hp_counters.h"
#include "hp_engine.h"

#define HP_LIKELY(x) __builtin_expect(!!(x), 1)
#define HP_UNLIKELY(x) __builtin_expect(!!(x), 0)

enum hp_drop {
#define HP_X(e, name, text) HP_DROP_##e,
    HP_DROP_REASONS(HP_X)
#undef HP_X
    HP_DROP__COUNT
};

enum hp_counter {
#define HP_X(e, name, text) HP_CNT_##e,
    HP_EVENT_COUNTERS(HP_X)
#undef HP_X
    HP_CNT__COUNT
};

#define HP_NONE UINT32_MAX
#define ETH_P_IPV4 0x0800
#define ETH_P_ARP_ 0x0806
#define ETH_P_8021Q_ 0x8100
#define ETH_P_8021AD_ 0x88a8
#define IPPROTO_ICMP_ 1
#define IPPROTO_TCP_ 6
#define IPPROTO_UDP_ 17

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_PSH 0x08
#define TCP_ACK 0x10

/* A parsed frame: offsets into the buffer and the 5-tuple in host byte order. The tuple's
 * ports follow one convention for all protocols so that flow keys need no special case:
 * for ICMP echo requests sport = identifier, dport = 0; for echo replies sport = 0,
 * dport = identifier. */
struct hp_parsed {
    uint16_t l3_off;        /* IPv4 header */
    uint16_t l4_off;        /* TCP/UDP/ICMP header */
    uint16_t ip_len;        /* IPv4 total length */
    uint16_t l4_len;        /* ip_len - IHL */
    uint8_t proto;
    uint8_t tcp_flags;
    uint8_t icmp_type;
    uint8_t is_icmp_error;  /* ICMP type 3, 11 or 12: the tuple below is the quoted one */
    uint32_t sip, dip;
    uint16_t sport, dport;
    uint32_t tcp_seq;
    /* the quoted packet of an ICMP error */
    uint16_t in_l3_off, in_l4_off, in_l4_avail;
    uint8_t in_proto;
    uint8_t next;           /* what hp_process does after classify(): HP_NEXT_* */
    uint64_t hash;          /* flow-key hash, for HP_NEXT_LOOKUP */
};

enum { HP_NEXT_DONE, HP_NEXT_ICMP_ERROR, HP_NEXT_LOOKUP };

/* ---- flows ---------------------------------------------------------------------------- */

/* One flow, both directions, in one cache line (64 bytes), plus its two keys' share of
 * the index (about 32 bytes) and of the free list (4). The key of direction 0 is
 * (in_port, proto, client, cport, vip, vport); that of direction 1 is
 * (out_port, proto, backend, bport, snat_ip, snat_port). Packet counts are 32 bits to
 * fit the line: they wrap after 4.29 billion packets in one direction (byte counts don't). */
struct hp_flow {
    uint32_t client_ip, vip, snat_ip, backend_ip;
    uint16_t client_port, vport, snat_port, backend_port;
    uint8_t in_port, out_port;  /* port ids are below HP_MAX_PORTS (256) */
    uint16_t service;
    uint8_t proto;
    uint8_t tcp_state;      /* HP_TCP_* */
    uint8_t live;           /* 0: a free slot */
    uint8_t flags;          /* HP_FLOW_* */
    uint32_t last_seen_s;   /* engine seconds, coarse: enough for idle timeouts */
    uint32_t created_s;
    uint64_t bytes[2];
    uint32_t packets[2];
} __attribute__((aligned(64)));

#define HP_FLOW_FIN(dir) (1u << (dir)) /* direction `dir` sent a FIN */
#define HP_FLOW_BOTH_FINS 0x03u
#define HP_FLOW_PROXY 0x04u          /* its service's PROXY v2 header shifts it (hp_proxy.c) */
#define HP_FLOW_HALF_OPEN 0x40u      /* TCP handshake not complete: in the half-open FIFO */
#define HP_FLOW_RESET 0x80u          /* its target was reported unhealthy: reset on sight */

_Static_assert(sizeof(struct hp_flow) == 64, "a flow is one cache line");

/* What a flow needs beyond its cache line, in an array beside the slots (and beside them
 * in the flow-state file), read only for flows whose flags say so: the client's first
 * payload sequence number (its SYN's + 1) of a PROXY v2 flow, where the header goes. */
struct hp_flow_ext {
    uint32_t proxy_seq;
};
_Static_assert(HP_MAX_PORTS <= 256, "flows keep port ids in 8 bits");

/* One cache line of the index: 8 keys, each a signature (high hash bits, 0 = empty way)
 * and a key reference (slot*2 + dir). A lookup compares signatures and touches a flow
 * only on a signature match, so a miss costs one or two cache lines and no flow. */
#define HP_BUCKET_WAYS 8
struct hp_bucket {
    uint32_t sig[HP_BUCKET_WAYS];
    uint32_t ref[HP_BUCKET_WAYS];
} __attribute__((aligned(64)));

struct hp_flow_key {
    uint32_t sip, dip;
    uint16_t sport, dport;
    uint16_t port;
    uint8_t proto;
};

/* A half-open flow's place in the FIFO of half-open flows (hp_flow.c), by slot: its
 * neighbours (HP_NONE at the ends) and its ticket, the FIFO's clock when it joined, so
 * that two half-open flows compare by age without walking the list. */
struct hp_half_open {
    uint32_t prev, next;
    uint32_t ticket;
};

struct hp_flow_table {
    struct hp_flow *slots;
    struct hp_flow_ext *ext;  /* per slot, meaningful for the flags that need it */
    uint32_t capacity;
    uint32_t count;
    struct hp_bucket *buckets;
    uint32_t bucket_mask;   /* bucket count - 1 (a power of two) */
    uint32_t *free_list;    /* stack of free slot indices */
    uint32_t free_top;
    uint32_t scan_hand;     /* next slot the expiry sweep looks at */
    uint32_t seed;
    struct hp_half_open *half_open; /* per slot; meaningful while the flow is HP_FLOW_HALF_OPEN */
    uint32_t half_open_head;        /* oldest half-open flow, HP_NONE: none */
    uint32_t half_open_tail;        /* youngest */
    uint32_t half_open_count;
    uint32_t half_open_clock;       /* tickets handed out so far (wraps; ages are differences) */
    void *shared_map;       /* the flow-state file's mapping (hp_flow_state.c), or NULL */
    size_t shared_bytes;
};

/* ---- services, ports ---------------------------------------------------------------- */

struct hp_sg {
    bool enabled;
    uint32_t n;
    struct hp_sg_rule *rules;
};

struct hp_port {
    bool present;
    bool peer_learnt;       /* peer_mac came from rx, not from configuration */
    uint16_t prefix_service;/* 1 + the id of the service matching by prefix here; 0: none */
    struct hp_port_config cfg;
    struct hp_sg sg[2];
    uint64_t counters[HP_CNT__COUNT];
    uint64_t drops[HP_DROP__COUNT];
};

/* The longest PROXY v2 header: 16 + 12 (IPv4) + 7 (CRC32C) + 4 + the longest ID. */
#define HP_PROXY_HDR_MAX (16 + 12 + 7 + 4 + HP_PROXY_VPCE_ID_MAX)

/* What a service asks the index to send it (hp_service.c explains the types). */
enum hp_key_type { HP_KEY_LISTENER, HP_KEY_SNAT, HP_KEY_PREFIX_PORT };

struct hp_index_key {
    uint8_t type;           /* enum hp_key_type */
    uint8_t proto;
    uint16_t port;
    uint32_t ip;
    uint16_t l4port;
};

struct hp_service {
    bool present;
    uint8_t kind;           /* HP_KIND_*: the hp_kind_ops that open its flows */
    struct hp_service_config cfg;
    struct hp_backend *backends;
    uint32_t n_backends;
    uint16_t *maglev;       /* maglev_size entries, backend index; NULL: no backend */
    struct hp_index_key *keys;
    uint32_t n_keys;
    struct hp_link_config *link; /* a VPC link's tables (HP_KIND_VPC_NAT); NULL otherwise */
    bool snat_pressure;     /* its last port search ended in an eviction (hp_nat.c): a hint */
    uint8_t proxy_len;      /* PROXY v2 header length, 0: none (hp_proxy.c) */
    uint8_t proxy_hdr[HP_PROXY_HDR_MAX]; /* its template: addresses, ports and CRC zero */
};

/* Open-addressing index from (key type, port, proto, ip, l4port) to a service id, rebuilt
 * whole on every service change (control path only); at most half full. */
struct hp_svc_index {
    uint64_t *keys;
    int32_t *ids;
    uint32_t mask;
};

struct hp_engine {
    struct hp_engine_config cfg;
    struct hp_flow_table ft;
    struct hp_service *services;
    struct hp_svc_index svc_index;
    uint64_t now_ns;
    uint32_t now_s;
    uint32_t min_timeout_s; /* the shortest timeout any flow can have: below it, no flow is idle */
    /* ring of expired flows, for reporting */
    struct hp_flow_info *expired;
    uint32_t expired_cap, expired_head, expired_tail;
    uint64_t expired_lost;
    uint64_t bytes_allocated;
    /* Bumped by every service install and removal; kept in the flow-state file's header
     * so that a restarted forwarder knows whether its record of service ids is current. */
    uint64_t svc_generation;
    struct hp_flow_state_header *flow_state;
    struct hp_tap *tap;     /* NULL: no tap (hp_tap.c) */
    char error[256];
    /* cfg.max_ports of them, allocated with the engine: an engine made for a few ports (a
     * test's, the fuzzer's) is small to create, and a port is still one offset away. */
    struct hp_port ports[];
};

/* ---- the pipeline's view of a translation kind --------------------------------------- */

/* One batch's context: the engine and the port the frames arrived on. */
struct hp_ctx {
    struct hp_engine *e;
    uint16_t in_port;
    struct hp_port *port;
};

/* What a kind decided about a packet of no flow, before anything is taken: the flow it
 * would open (out port, SNAT address, backend) and how it got there. The pipeline (act())
 * acts on it; hp_trace.c only reports it, so the dry run and the real thing share one decision. */
struct hp_flow_plan {
    uint16_t out_port;
    uint32_t snat_ip, backend_ip;
    uint16_t backend_port;
    int32_t sg_ingress_rule;       /* HP_TRACE_SG_* (hp_engine.h) or the rule's index */
    int32_t sg_egress_rule;
    uint8_t backend_how;           /* HP_TRACE_BACKEND_* (hp_engine.h) */
    uint32_t backend_index;        /* the Maglev entry, the link route, or the ENI hashed to */
    bool rst;                      /* refused, and a RST goes back (NLB's RST on miss) */
};

/* What differs between translation kinds, as OVS's ct_l4_proto separates protocols. A
 * kind decides how a flow starts; every packet of a flow, the first included, then takes
 * the same path (hp_process.c's forward()). A kind never calls up into the pipeline. */
struct hp_kind_ops {
    const char *name;
    /* Whether a packet of no flow that service `sid` claims (its listener key, or the in
     * port's prefix service) may open a flow, and which (into *plan), reading the tables
     * only: no port taken, nothing counted. The pipeline then opens it with
     * hp_nat_open_flow(), or sends a RST when a refusal says so (plan->rst). */
    enum hp_drop (*decide)(const struct hp_ctx *c, const struct hp_pkt *pkt,
                           const struct hp_parsed *p, int32_t sid, struct hp_flow_plan *plan);
    /* A packet of no flow to one of the service's SNAT addresses: a reply to a lost or
     * expired flow, or the far side trying to open one. Returns the drop reason, and in
     * *rst whether a RST goes back (the pipeline builds it; the tables are only read). */
    enum hp_drop (*reply_miss)(const struct hp_ctx *c, const struct hp_parsed *p, int32_t sid,
                               bool *rst);
    /* Optional: stage 2's hint for a packet to a listener of `sid` with an empty bucket,
     * which will probably open a flow: prefetch what opening it will read. */
    void (*prefetch_new_flow)(const struct hp_ctx *c, const struct hp_parsed *p, int32_t sid);
};

extern const struct hp_kind_ops hp_kind_privatelink, hp_kind_vpc_nat;
/* Every translation kind, by the kind number a service carries (HP_KIND_*). */
extern const struct hp_kind_ops *const hp_kinds[2];

static inline const struct hp_kind_ops *hp_kind_of(const struct hp_engine *e, int32_t sid)
{
    return hp_kinds[e->services[sid].kind];
}


/* What becomes of a packet that hit flow `f` in direction `dir` (hp_process.c's act()). */
enum hp_flow_fate {
    HP_FATE_FORWARD,     /* a packet of the flow */
    HP_FATE_EXPIRED,     /* idle past its timeout: expired, and the packet is a miss */
    HP_FATE_REOPEN,      /* a SYN on a closed flow's tuple: removed, and the packet is a miss */
    HP_FATE_RESET,       /* its target was reported unhealthy: reset and removed */
    HP_FATE_DISABLED,    /* its service is disabled: dropped */
};
enum hp_flow_fate hp_flow_fate(const struct hp_engine *e, const struct hp_flow *f, int dir,
                               const struct hp_parsed *p);

/* hp_mem.c */
void hp_set_error(struct hp_engine *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void *hp_calloc(struct hp_engine *e, size_t n, size_t size);
void hp_free(struct hp_engine *e, void *p, size_t n, size_t size);
void *hp_table_alloc(struct hp_engine *e, size_t n, size_t size);
void hp_table_free(struct hp_engine *e, void *p, size_t n, size_t size);
void *hp_dup_array(struct hp_engine *e, const void *src, uint32_t n, size_t size, const char *what);

/* hp_port.c */
bool hp_port_ok(struct hp_engine *e, uint16_t port);

/* hp_service.c */
uint64_t hp_svc_key(int type, uint16_t port, uint8_t proto, uint32_t ip, uint16_t l4port);
int32_t hp_svc_index_find(const struct hp_engine *e, uint64_t key);
bool hp_service_ok(struct hp_engine *e, int service);
int hp_service_check_limits(struct hp_engine *e, struct hp_service_config *c);
bool hp_service_uses_port(const struct hp_service *s, uint16_t port);
int hp_service_install(struct hp_engine *e, struct hp_service *tmpl);
void hp_service_free(struct hp_engine *e, struct hp_service *s);

/* hp_reply.c */
void hp_count_tx(struct hp_port *p, uint32_t len);
enum hp_drop hp_arp_reply(struct hp_port *port, struct hp_pkt *pkt, uint16_t l3);
void hp_tcp_rst_reply(struct hp_port *port, struct hp_pkt *pkt, const struct hp_parsed *p);

/* hp_parse.c */
enum hp_drop hp_parse_l2(const uint8_t *d, uint32_t len, uint16_t *l3_off, uint16_t *ethertype);
enum hp_drop hp_parse_ipv4(const uint8_t *d, uint32_t len, struct hp_parsed *p);
uint32_t hp_segment_headers(const uint8_t *frame, const struct hp_parsed *p);
uint32_t hp_packet_size(const struct hp_pkt *pkt, const struct hp_parsed *p);

/* hp_flow.c */
int hp_flow_table_init(struct hp_engine *e, uint32_t capacity, uint32_t seed);
void hp_flow_table_free(struct hp_engine *e);
uint64_t hp_flow_hash(const struct hp_flow_table *ft, const struct hp_flow_key *k);
uint32_t hp_flow_lookup(const struct hp_flow_table *ft, const struct hp_flow_key *k, uint64_t hash);
void hp_flow_prefetch_buckets(const struct hp_flow_table *ft, uint64_t hash);
uint32_t hp_flow_candidate(const struct hp_flow_table *ft, uint64_t hash);
uint32_t hp_flow_insert(struct hp_engine *e, const struct hp_flow *proto_flow);
void hp_flow_remove(struct hp_engine *e, uint32_t slot, bool expired);
void hp_flow_key_of(const struct hp_flow *f, int dir, struct hp_flow_key *k);
void hp_flow_info_of(const struct hp_engine *e, uint32_t slot, struct hp_flow_info *out);
bool hp_flow_is_idle(const struct hp_engine *e, const struct hp_flow *f);
uint32_t hp_flow_timeout_s(const struct hp_engine *e, const struct hp_flow *f);
void hp_flow_update_min_timeout(struct hp_engine *e);
void hp_flow_remove_where(struct hp_engine *e, int service, int port);
void hp_flow_handshake_done(struct hp_engine *e, struct hp_flow *f);
uint32_t hp_flow_half_open_age(const struct hp_flow_table *ft, uint32_t slot);
void hp_flow_evict(struct hp_engine *e, uint32_t slot, enum hp_counter why);
bool hp_flow_evict_oldest(struct hp_engine *e, enum hp_counter why);
uint32_t hp_flow_reindex(struct hp_engine *e);

/* The service a packet of no flow on `port` goes to: the listener of its (proto, dst,
 * dport), else the port's prefix service (a VPC link); -1: none. */
static inline int32_t hp_service_claiming(const struct hp_engine *e, uint16_t in_port,
                                          const struct hp_port *port, const struct hp_parsed *p)
{
    int32_t sid = hp_svc_index_find(e, hp_svc_key(HP_KEY_LISTENER, in_port, p->proto, p->dip, p->dport));
    if (sid < 0 && HP_UNLIKELY(port->prefix_service))
        sid = port->prefix_service - 1;
    return sid;
}

/* A packet longer than its service's MTU (0: no limit) is dropped, as AWS does. */
static inline bool hp_over_mtu(const struct hp_service_config *sc, const struct hp_pkt *pkt,
                               const struct hp_parsed *p)
{
    return sc->mtu && hp_packet_size(pkt, p) > sc->mtu;
}

/* hp_flow_state.c */
#define HP_FLOW_STATE_MAGIC "VPCLABFT"
#define HP_FLOW_STATE_VERSION 3u  /* 2: state SYN_RECV and flag HP_FLOW_HALF_OPEN;
                                   * 3: flag HP_FLOW_PROXY, struct hp_flow_ext after the slots */
#define HP_FLOW_STATE_HEADER 4096u   /* the slots start on a page of their own */
struct hp_flow_state_header {
    char magic[8];
    uint32_t layout_version;
    uint32_t flow_size;      /* sizeof(struct hp_flow) */
    uint32_t capacity;
    uint32_t header_size;
    uint64_t generation;     /* forwarders that have used the file, this one included */
    uint64_t svc_generation; /* the engine's svc_generation, kept current */
};
void hp_flow_state_note_services(struct hp_engine *e);
void hp_flow_state_release(struct hp_engine *e);

/* hp_proxy.c */
int hp_proxy_prepare(struct hp_engine *e, struct hp_service *s);
uint32_t hp_proxy_header(const struct hp_service *s, const struct hp_flow *f, uint8_t *out);
void hp_proxy_open(struct hp_engine *e, uint32_t slot, const struct hp_parsed *p);
enum hp_drop hp_proxy_translate(struct hp_ctx *c, struct hp_pkt *pkt, struct hp_parsed *p,
                                struct hp_flow *f, int dir, bool csum_full);

/* hp_tap.c: hp_process() calls the hooks through HP_TAP_HOOK, which is a test of e->tap
 * (or nothing at all when built with -DHP_NO_TAP, to measure what the test costs). */
#define HP_TAP_PENDING 64u   /* in copies awaiting their frame's verdict: > the frames in flight */
void hp_tap_in(struct hp_engine *e, uint32_t frame, const struct hp_pkt *pkt);
void hp_tap_done(struct hp_engine *e, uint16_t in_port, uint32_t frame, const struct hp_pkt *pkt);
void hp_tap_release(struct hp_engine *e);
#ifdef HP_NO_TAP
#define HP_TAP_HOOK(e, call) ((void)0)
#else
#define HP_TAP_HOOK(e, call)                                                                 \
    do {                                                                                     \
        if (HP_UNLIKELY((e)->tap != NULL))                                                   \
            call;                                                                            \
    } while (0)
#endif

/* hp_maglev.c */
uint16_t *hp_maglev_build(struct hp_engine *e, const struct hp_backend *b, uint32_t n);

/* hp_hash.c */
uint32_t hp_hash32(const void *data, size_t len, uint32_t seed);
uint32_t hp_mix32(uint64_t a, uint64_t b, uint32_t seed);
uint64_t hp_mix64(uint64_t a, uint64_t b, uint32_t seed);

/* hp_sg.c */
int32_t hp_sg_match(const struct hp_sg *sg, uint8_t proto, uint32_t ip, uint16_t port);

/* hp_nat.c */
int hp_snat_allocate(struct hp_engine *e, struct hp_flow *f, struct hp_service *svc,
                     uint64_t client_hash);
/* hp_snat_allocate()'s search alone, reading the tables only: the port it would take
 * and what taking it would cost (HP_TRACE_SNAT_*, hp_engine.h). The flow in `gone_slot`
 * (HP_NONE: none) counts as removed: the dry run's view of a flow the packet would end. */
struct hp_snat_choice {
    uint8_t how;            /* HP_TRACE_SNAT_FREE, _EXPIRE, _EVICT or _NONE */
    uint16_t port;
    uint32_t holder;        /* the slot of the flow expired or evicted for it */
    uint32_t attempts;      /* candidates looked at */
};
void hp_snat_search(const struct hp_engine *e, struct hp_flow *f, const struct hp_service *svc,
                    uint64_t client_hash, uint32_t gone_slot, struct hp_snat_choice *out);
/* The flow hp_nat_open_flow() would make for `p` on `in_port`, its SNAT port not chosen. */
void hp_nat_flow_of(const struct hp_engine *e, const struct hp_parsed *p, uint16_t in_port,
                    int32_t sid, const struct hp_flow_plan *plan, struct hp_flow *f);
enum hp_drop hp_nat_open_flow(struct hp_engine *e, const struct hp_parsed *p, uint16_t in_port,
                              int32_t sid, const struct hp_flow_plan *plan, uint32_t *slot);
void hp_snat_prefetch(const struct hp_engine *e, const struct hp_service *svc,
                      const struct hp_flow *f, uint64_t client_hash);
/* What a rewrite does to the L4 checksum: an incremental update of a full checksum; for a
 * CHECKSUM_PARTIAL frame, completing it, or keeping it partial for the transmit path. */
enum hp_csum_mode { HP_CSUM_UPDATE, HP_CSUM_COMPLETE, HP_CSUM_KEEP_PARTIAL };
void hp_nat_rewrite(uint8_t *frame, const struct hp_parsed *p, const struct hp_flow *f, int dir,
                    enum hp_csum_mode mode);
bool hp_nat_rewrite_icmp_error(uint8_t *frame, const struct hp_parsed *p,
                               const struct hp_flow *f, int dir);
bool hp_tcp_clamp_mss(uint8_t *frame, const struct hp_parsed *p, uint16_t mss, uint16_t minus,
                      bool csum_partial);
uint32_t hp_tcp_mss_after(const uint8_t *frame, const struct hp_parsed *p, uint16_t mss, uint16_t minus,
                          uint16_t *old, uint16_t *want);
void hp_tcp_edit(uint8_t *tcp, uint32_t off, const uint8_t *bytes, uint32_t n, bool csum_full);
uint32_t hp_tcp_option(const uint8_t *tcp, uint32_t doff, uint32_t *next);
void hp_l4_checksum_full(uint8_t *frame, const struct hp_parsed *p);

#endif
