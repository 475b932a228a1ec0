/* hp_engine.h — the Hyperplane fast path of vpclab.
 *
 * What it is
 * ----------
 * The engine is what AWS Hyperplane does for PrivateLink and NAT, in one C object with
 * no sockets and no threads: it is handed a batch of Ethernet frames that arrived on one
 * port (an ENI attached to the forwarder) and decides for each one
 *
 *     drop (with a reason)  |  forward out of port N (headers rewritten)  |  reply on the
 *     same port (an ARP reply or a TCP RST built in place of the frame)
 *
 * A *service* is one translation, of one of two kinds. A PrivateLink service
 * (HP_KIND_PRIVATELINK) is a listener: (ingress port, VIP, protocol, port). Its backends are
 * (IP, port, weight) reached through one egress port, with the source rewritten to an
 * address of that port and a source port from the service's pool. A flow is created on a
 * flow's first packet and pinned to its backend and SNAT port for its whole life:
 *
 *     (client, cport, vip, vport) ⇒ (snat_ip, snat_port, backend, bport)     forward
 *     (backend, bport, snat_ip, snat_port) ⇒ (vip, vport, client, cport)     reply
 *
 * Both directions index one flow entry. The backend is chosen by a Maglev table over
 * the 5-tuple (plus the SYN's sequence number for TCP, as NLB does), so changing the
 * backend set moves only ~1/N of new flows and never an existing one.
 *
 * A VPC link (HP_KIND_VPC_NAT, VPC-to-VPC NAT, the construct behind HTTP-API VPC links)
 * keeps the destination and rewrites only the source, to one of the link's ENIs in the
 * customer's VPC; it matches destinations by prefix on its attachment port, not one VIP:
 *
 *     (src, sport, dst, dport) ⇒ (eni_ip, snat_port, dst, dport)                   forward
 *     (dst, dport, eni_ip, snat_port) ⇒ (dst, dport, src, sport)                   reply
 *
 * Its configuration is one struct (hp_link_config: prefixes, ENIs, routes), given once to
 * hp_link_add(): a link is immutable, as AWS's are. Everything else — removal, the
 * disabled flag, flow dumps, expiry, counters — is the same call for both kinds, by
 * service id; struct hp_flow_info says the kind. native/hp_kind_*.c say more.
 *
 * How to call it
 * --------------
 *     struct hp_engine_config cfg = { .flow_capacity = 1 << 20 };
 *     struct hp_engine *e = hp_engine_create(&cfg);
 *     hp_port_set(e, 0, &endpoint_eni);  hp_port_set(e, 1, &nlb_eni);
 *     int svc = hp_service_add(e, &listener);          // id >= 0, or -1: hp_last_error()
 *     hp_service_set_backends(e, svc, targets, n);
 *     for (;;) { ...fill pkts...; hp_process(e, in_port, pkts, n, now_ns); ...send... }
 *     hp_engine_destroy(e);
 *
 * Under pressure — no free SNAT port for a new flow's destination, or no free flow slot —
 * a new flow takes the place of the oldest *half-open* flow (TCP whose handshake never
 * completed), as Linux conntrack's early drop does, so a flood of spoofed SYNs cannot
 * starve legitimate connections and never touches an established flow. Counters
 * evicted_port_pool and evicted_table_full say how often (hp_flow.c explains the FIFO).
 *
 * Time is never read inside: every call that ages flows takes `now_ns` (any monotonic
 * clock, nanoseconds), so tests drive expiry by passing time, not by sleeping.
 *
 * Threading
 * ---------
 * None inside. An engine belongs to one thread at a time. Table changes (ports, services,
 * backends, security groups) are ordinary calls made *between* hp_process() calls: the
 * forwarder's loop applies queued control changes between batches, so no table is ever
 * torn under a batch. Nothing here allocates per packet or per flow; all memory is sized
 * at hp_engine_create() or on a control call.
 *
 * Shutdown
 * --------
 * hp_engine_destroy() frees everything. Flows are not reported on destroy.
 *
 * Errors
 * ------
 * Control calls return 0 (or an id >= 0) on success and -1 on a bad argument, leaving
 * the engine unchanged; hp_last_error() then says what was wrong in one sentence.
 * The data path never fails: every frame gets a verdict, and every drop a reason that is
 * counted per port (hp_counters.h lists them all).
 *
 * Everything between the cffi markers is plain C that build_native.py hands to cffi as
 * the binding's declarations, so this header is the only place the API is written down.
 */
#ifndef HP_ENGINE_H
#define HP_ENGINE_H

#include <stdint.h>

/* cffi:begin */
#define HP_MAX_PORTS 256
#define HP_PORT_MAX_ADDRS 8
#define HP_MAX_BACKENDS 4096
#define HP_MAX_SG_RULES 1000

struct hp_engine;

struct hp_engine_config {
    uint32_t flow_capacity;        /* flows the table holds, fixed for the engine's life */
    uint32_t max_services;         /* 0: 1024 */
    uint32_t maglev_size;          /* entries of each service's Maglev table, a prime; 0: 65537 */
    uint32_t hash_seed;            /* seeds flow hashing; 0: a fixed default, so runs repeat */
    uint32_t timeout_tcp_syn_s;    /* half-open TCP (SYN_SENT, SYN_RECV); 0: 30 */
    uint32_t timeout_tcp_fin_s;    /* one side sent FIN; 0: 60 */
    uint32_t timeout_tcp_close_s;  /* both FINs, or a RST, seen; 0: 10 */
    uint32_t timeout_udp_s;        /* default UDP idle timeout; 0: 120 (NLB) */
    uint32_t timeout_icmp_s;       /* ICMP echo flows; 0: 60 */
    uint32_t expiry_scan_per_batch;/* flow slots aged per hp_process() call; 0: 16 */
    uint32_t max_ports;            /* port ids are 0 .. max_ports-1; 0: HP_MAX_PORTS, the most */
    uint32_t expired_ring;         /* expired flows kept until read, a power of two; 0: 1024 */
};

struct hp_port_config {
    uint8_t mac[6];                /* the port's own MAC (the hyperplane end of the veth) */
    uint8_t peer_mac[6];           /* next hop (the VPC router); all zero: learnt from rx */
    uint32_t addrs[HP_PORT_MAX_ADDRS]; /* IPv4 addresses the port owns (ARP is answered) */
    uint32_t n_addrs;
};

/* Security-group rule, allow only. proto 0 means all; for ICMP the port range matches the
 * ICMP type. `cidr` with `prefix_len` 0 matches every address. */
struct hp_sg_rule {
    uint8_t proto;
    uint8_t prefix_len;
    uint16_t port_lo;
    uint16_t port_hi;
    uint32_t cidr;
};

#define HP_KIND_PRIVATELINK 0      /* a listener ⇒ a backend by Maglev (hp_service_add) */
#define HP_KIND_VPC_NAT 1          /* a VPC link: source NAT out of a link ENI (hp_link_add) */

#define HP_SG_INGRESS 0            /* checked on the ingress port: (client, vport) */
#define HP_SG_EGRESS 1             /* checked on the egress port: (backend, bport) */

#define HP_SVC_DISABLED 0x01       /* no new flows, and existing ones are dropped */
#define HP_SVC_RST_ON_MISS 0x02    /* TCP segments of no flow get a RST (NLB listener) */
#define HP_SVC_HASH_TCP_SEQ 0x04   /* backend hash includes the SYN's sequence number */

/* PROXY protocol v2 (NLB target group attribute proxy_protocol_v2, hp_proxy.c): a TCP
 * service with `proxy_v2` set puts a header in front of each flow's first payload bytes
 * toward its backend: PROXY, TCP over IPv4, (client, cport) → (vip, vport), a CRC32C TLV,
 * the TLV 0xEA (subtype 0x01, `vpce_id`) when `vpce_id` is not empty, NOOP padding to
 * HP_PROXY_PAD_TO bytes, as AWS's captured header. The flow's sequence numbers toward the
 * backend and its acknowledgements (and SACK blocks) back are shifted by the header's
 * length for the flow's life; the backend's SYN-ACK MSS is lowered by it. */
#define HP_PROXY_VPCE_ID_MAX 64
#define HP_PROXY_PAD_TO 100

struct hp_service_config {
    uint16_t in_port;              /* where clients' packets arrive */
    uint16_t out_port;             /* where backends are reached */
    uint32_t vip;                  /* listener address (host byte order, like all IPs here) */
    uint16_t vport;                /* listener port; 0 for ICMP echo */
    uint8_t proto;                 /* 6 TCP, 17 UDP, 1 ICMP (echo) */
    uint8_t flags;                 /* HP_SVC_* */
    uint32_t snat_ip;              /* source address toward backends; 0: out_port's first */
    uint16_t snat_port_min;        /* SNAT pool, inclusive; 0/0: 1024-65535 */
    uint16_t snat_port_max;
    uint32_t idle_timeout_s;       /* TCP established or UDP/ICMP idle; 0: 350 TCP, config UDP/ICMP */
    uint16_t mtu;                  /* IPv4 packets longer than this are dropped; 0: no limit */
    uint16_t mss_clamp;            /* SYN MSS lowered to this; 0: not clamped */
    uint8_t proxy_v2;              /* 1: PROXY v2 header on each TCP flow (see above) */
    char vpce_id[HP_PROXY_VPCE_ID_MAX + 1]; /* the endpoint's ID for TLV 0xEA; "": none */
};

/* A VPC link (VPC-to-VPC NAT, kind HP_KIND_VPC_NAT): flows opened on the attachment
 * port toward any address of `prefixes` leave from one of `enis` with its address:
 *
 *     (src, sport, dst, dport) on in_port ⇒ (eni ip, snat port, dst, dport) out of the ENI's port
 *     (dst, dport, eni ip, snat port) on the ENI's port ⇒ (dst, dport, src, sport) out of in_port
 *
 * The ENI of a new flow: the longest of `routes` covering dst, else a hash of the
 * 5-tuple over `enis`. Its port's EGRESS security group decides whether the flow may
 * leave. One way: nothing arriving on an ENI opens a flow (drop link_one_way). A link is
 * immutable, as on AWS: to change one, remove its service and add it again. */
#define HP_LINK_MAX_PREFIXES 16
#define HP_LINK_MAX_ENIS 16
#define HP_LINK_MAX_ROUTES 64

struct hp_prefix {
    uint32_t addr;
    uint8_t len;
};

struct hp_link_eni {
    uint16_t port;                 /* the ENI's port (its veth in the customer's VPC) */
    uint32_t ip;                   /* the ENI's address: the flows' source there */
};

struct hp_link_route {
    uint32_t cidr;                 /* destinations (a customer subnet) ... */
    uint8_t prefix_len;
    uint8_t eni;                   /* ... reached from this index of `enis` */
};

struct hp_link_config {
    uint16_t in_port;              /* the link's attachment port (API Gateway's side) */
    uint8_t proto;                 /* 0: TCP and UDP; 6 or 17: that one only */
    uint8_t flags;                 /* HP_SVC_DISABLED or 0 */
    uint16_t snat_port_min;        /* SNAT pool per ENI address, inclusive; 0/0: 1024-65535 */
    uint16_t snat_port_max;
    uint32_t idle_timeout_s;       /* TCP established and UDP; 0: 350 (Hyperplane's) */
    uint16_t mtu;                  /* as hp_service_config */
    uint16_t mss_clamp;
    uint32_t n_prefixes;           /* 1..HP_LINK_MAX_PREFIXES: the link VPC's CIDRs */
    struct hp_prefix prefixes[HP_LINK_MAX_PREFIXES];
    uint32_t n_enis;               /* 1..HP_LINK_MAX_ENIS */
    struct hp_link_eni enis[HP_LINK_MAX_ENIS];
    uint32_t n_routes;             /* 0..HP_LINK_MAX_ROUTES */
    struct hp_link_route routes[HP_LINK_MAX_ROUTES];
};

struct hp_backend {
    uint32_t ip;
    uint16_t port;                 /* 0 for ICMP */
    uint16_t weight;               /* relative share of new flows; 0 takes none */
};

#define HP_VERDICT_DROP 0
#define HP_VERDICT_FORWARD 1
#define HP_VERDICT_REPLY 2         /* the frame was replaced by a reply for in_port */

/* Checksum and segmentation offload, as a veth hands them over (virtio-net header):
 * HP_PKT_CSUM_PARTIAL  in/out: the L4 checksum field holds only the pseudo-header sum
 *                      (CHECKSUM_PARTIAL); the sum over the segment is still to be done.
 * HP_PKT_CSUM_OFFLOAD  in: whoever transmits the result can hand a partial checksum on
 *                      (NEEDS_CSUM), so the engine keeps it partial and only updates the
 *                      pseudo-header sum; without it, the engine completes the checksum.
 * gso_size             in: payload bytes per segment of a GSO frame (several segments
 *                      in one frame, cut by the receiving kernel); 0 for one packet. GSO
 *                      frames need HP_PKT_CSUM_OFFLOAD (a checksum over the whole frame
 *                      would be wrong for each segment).
 * On the way out, HP_PKT_CSUM_PARTIAL says whether the frame still needs its checksum,
 * and gso_size is kept for a forwarded frame and 0 for a frame the engine built. */
#define HP_PKT_CSUM_PARTIAL 0x01
#define HP_PKT_CSUM_OFFLOAD 0x02

struct hp_pkt {
    uint8_t *data;                 /* frame, rewritten in place */
    uint32_t len;                  /* in: frame length; out: length to send */
    uint16_t flags;                /* in/out: HP_PKT_* */
    uint16_t out_port;             /* out: port to send on (in_port for a reply) */
    uint8_t verdict;               /* out: HP_VERDICT_* */
    uint8_t drop_reason;           /* out: why, for drops and for RST replies */
    uint16_t gso_size;             /* in/out: segment payload of a GSO frame, 0: none */
    uint32_t cap;                  /* in: bytes writable from `data` (a PROXY v2 header
                                    * may grow the frame up to it); below len: len */
};

#define HP_TCP_NONE 0
#define HP_TCP_SYN_SENT 1
#define HP_TCP_ESTABLISHED 2
#define HP_TCP_FIN_WAIT 3
#define HP_TCP_CLOSING 4           /* both FINs seen */
#define HP_TCP_CLOSED 5            /* RST seen */
#define HP_TCP_SYN_RECV 6          /* the backend's SYN-ACK seen, the client's ACK not yet */

/* For a VPC link's flow (kind HP_KIND_VPC_NAT): client = the source on API Gateway's
 * side, vip = backend = the destination, snat = the ENI's address and port. */
struct hp_flow_info {
    uint32_t id;                   /* slot in the flow table */
    uint16_t service;
    uint8_t kind;                  /* HP_KIND_* of the service */
    uint16_t in_port;
    uint16_t out_port;
    uint8_t proto;
    uint8_t tcp_state;             /* HP_TCP_* (HP_TCP_NONE for UDP and ICMP) */
    uint32_t client_ip, vip, snat_ip, backend_ip;
    uint16_t client_port, vport, snat_port, backend_port;
    uint64_t packets[2];           /* [0] client → backend, [1] backend → client */
    uint64_t bytes[2];
    uint64_t created_ns;
    uint64_t last_seen_ns;
    uint16_t proxy_offset;         /* PROXY v2 header bytes put in toward the backend: the
                                    * shift of its sequence numbers; 0: no header */
};

struct hp_engine *hp_engine_create(const struct hp_engine_config *cfg);
void hp_engine_destroy(struct hp_engine *e);
const char *hp_last_error(const struct hp_engine *e);
uint64_t hp_engine_memory(const struct hp_engine *e);   /* bytes allocated, all tables */
uint64_t hp_flow_bytes_per_flow(const struct hp_engine *e); /* flow table bytes / capacity */
const char *hp_build_info(void);                       /* compiler flags, e.g. sanitizers */

/* Keeping the flow table in a file that a restarted forwarder maps again
 * (hp_flow_state.c says how): call once the services are installed. `remap[old id]` is
 * the new id of each service the flows of the previous process named (-1: gone), valid
 * when `expected_svc_generation` is the service generation it was recorded at. */
struct hp_flow_state_report {
    uint32_t resumed;              /* flows taken over from the file */
    uint32_t dropped;              /* flows in the file whose service or port is gone */
    uint64_t generation;           /* forwarders that have used the file, this one included */
    int fresh;                     /* 1: started empty, `reason` says why */
    char reason[160];
};
int hp_flow_state_attach(struct hp_engine *e, const char *path, const int32_t *remap,
                         uint32_t n_remap, uint64_t expected_svc_generation,
                         struct hp_flow_state_report *out);
uint64_t hp_engine_service_generation(const struct hp_engine *e);

int hp_port_set(struct hp_engine *e, uint16_t port, const struct hp_port_config *cfg);
int hp_port_remove(struct hp_engine *e, uint16_t port);
int hp_port_sg_set(struct hp_engine *e, uint16_t port, int direction,
                   const struct hp_sg_rule *rules, uint32_t n);
int hp_port_sg_clear(struct hp_engine *e, uint16_t port, int direction);

int hp_service_add(struct hp_engine *e, const struct hp_service_config *cfg);
/* Adds a VPC link; returns its service id (removed, disabled and dumped like any service)
 * or -1. */
int hp_link_add(struct hp_engine *e, const struct hp_link_config *cfg);
int hp_service_remove(struct hp_engine *e, int service);
int hp_service_set_flags(struct hp_engine *e, int service, uint8_t flags);
int hp_service_set_backends(struct hp_engine *e, int service,
                            const struct hp_backend *backends, uint32_t n);
/* Marks every flow of `service` pinned to backend (ip, port) for reset: the next packet
 * of each, from either side, gets a TCP RST (UDP: a drop) and the flow is removed, as NLB
 * does when a target turns unhealthy. Returns the number of flows marked. */
int hp_service_reset_backend(struct hp_engine *e, int service, uint32_t ip, uint16_t port);
int hp_service_backend_of(const struct hp_engine *e, int service, uint32_t hash);

void hp_process(struct hp_engine *e, uint16_t in_port, struct hp_pkt *pkts, uint32_t n,
                uint64_t now_ns);

uint32_t hp_expire(struct hp_engine *e, uint64_t now_ns, uint32_t max_scan);
uint32_t hp_flow_count(const struct hp_engine *e);
/* Flows whose TCP handshake is not complete (SYN_SENT or SYN_RECV, or closed before it
 * completed): the ones a new flow may evict under pressure (hp_flow.c). */
uint32_t hp_flow_half_open_count(const struct hp_engine *e);
uint32_t hp_flow_dump(const struct hp_engine *e, uint32_t *cursor,
                      struct hp_flow_info *out, uint32_t max);
uint32_t hp_expired_read(struct hp_engine *e, struct hp_flow_info *out, uint32_t max);
uint64_t hp_expired_lost(const struct hp_engine *e);

uint32_t hp_drop_reason_count(void);
const char *hp_drop_reason_name(uint32_t reason);
const char *hp_drop_reason_text(uint32_t reason);
uint32_t hp_counter_count(void);
const char *hp_counter_name(uint32_t counter);
const char *hp_counter_text(uint32_t counter);
uint64_t hp_port_drop(const struct hp_engine *e, uint16_t port, uint32_t reason);
uint64_t hp_port_counter(const struct hp_engine *e, uint16_t port, uint32_t counter);

/* Benchmark drivers (hp_bench.c): loops in C, so a benchmark measures the engine and
 * not the Python call around it. Each copies `n` template frames into a work batch,
 * processes it, and repeats; see hp_bench.c for what each one varies. */
uint64_t hp_bench_established(struct hp_engine *e, uint16_t port, const uint8_t *frame,
                              uint32_t len, uint32_t n_flows, uint32_t batch,
                              uint64_t packets, uint64_t now_ns);
uint64_t hp_bench_new_flows(struct hp_engine *e, uint16_t port, const uint8_t *frame,
                            uint32_t len, uint32_t first_flow, uint32_t batch,
                            uint64_t flows, uint64_t now_ns);
/* Taps inside the Hyperplane (hp_tap.c): while a tap is on, each frame handed to
 * hp_process() leaves a record of it as it arrived (HP_TAP_IN) and, unless dropped, one of
 * it as it leaves after translation (HP_TAP_OUT), with the port, verdict, drop reason and
 * the first `snaplen` bytes, in a bounded ring read by hp_tap_read() between batches (a
 * control call, under the forwarder's io lock). Off, the data path pays one predicted
 * branch per frame stage. A full ring drops the frame's records and counts them
 * (tap_dropped), never waits. `port`: only frames that arrive on or leave by it (both
 * their records), or HP_TAP_ALL_PORTS. */
#define HP_TAP_IN 0x01
#define HP_TAP_OUT 0x02
#define HP_TAP_ALL_PORTS 0xffff

struct hp_tap_config {
    uint32_t ring;                 /* records kept until read, a power of two; 0: 4096 */
    uint32_t snaplen;              /* bytes kept of each frame, 64-262144; 0: 2048 */
    uint16_t port;                 /* a port, or HP_TAP_ALL_PORTS */
    uint8_t stages;                /* HP_TAP_IN | HP_TAP_OUT; 0: both */
};

struct hp_tap_record {
    uint64_t ts_ns;                /* the engine's time of the batch (hp_process's now_ns) */
    uint32_t orig_len;             /* the frame's length */
    uint32_t cap_len;              /* bytes kept: min(orig_len, snaplen) */
    uint32_t data_offset;          /* where hp_tap_read() put them in its `data` */
    uint16_t port;                 /* in: the port it arrived on; out: the one it leaves by */
    uint8_t stage;                 /* HP_TAP_IN or HP_TAP_OUT */
    uint8_t verdict;               /* HP_VERDICT_* of the frame */
    uint8_t drop_reason;           /* why it was dropped (or a RST sent); 0: none */
};

struct hp_tap_stats {
    int enabled;
    uint32_t pending;              /* records not read yet */
    uint32_t ring, snaplen;
    uint64_t kept;                 /* records written since the tap was enabled */
    uint64_t dropped;              /* records not kept: the ring was full */
};

int hp_tap_enable(struct hp_engine *e, const struct hp_tap_config *cfg);
int hp_tap_disable(struct hp_engine *e);
/* Moves up to `max` of the oldest records into `out`, their bytes into `data` (at each
 * record's data_offset, up to data_cap bytes in all); returns how many. 0 when off. */
uint32_t hp_tap_read(struct hp_engine *e, struct hp_tap_record *out, uint8_t *data,
                     uint32_t data_cap, uint32_t max);
int hp_tap_stats(const struct hp_engine *e, struct hp_tap_stats *out);
/* ---- trace: the engine's dry run (hp_trace.c) ------------------------------------------
 * What hp_process() would do with one packet arriving on `in_port`, decided by the same
 * functions (the flow lookup, the claiming service, its kind's decide(), the SG match,
 * the SNAT port search) and changing nothing: no flow inserted or removed, no port taken,
 * no counter moved, the clock not advanced (the engine's own, of its last batch, is used).
 * hp_trace() takes a whole frame (as it would arrive); hp_trace_tuple() builds a minimal
 * one from a 5-tuple (a TCP SYN carries an MSS option of 1460), `ip_len` bytes long
 * (0: headers only; at most HP_TRACE_MAX_LEN). Both return 0, or -1 (out->error says why)
 * when the packet is not one to trace: a port out of range, a frame that is not IPv4. */
#define HP_TRACE_MAX_LEN 9216

#define HP_TRACE_BACKEND_NONE 0    /* no backend was chosen (dropped before) */
#define HP_TRACE_BACKEND_FLOW 1    /* the existing flow's, pinned for its life */
#define HP_TRACE_BACKEND_MAGLEV 2  /* Maglev entry backend_index of the service's table */
#define HP_TRACE_BACKEND_LINK_ROUTE 3 /* VPC link: route backend_index (longest prefix) */
#define HP_TRACE_BACKEND_LINK_HASH 4  /* VPC link: no route, ENI backend_index by 5-tuple hash */

#define HP_TRACE_SNAT_NONE 0       /* no SNAT port would be found (port_allocation) */
#define HP_TRACE_SNAT_FREE 1       /* a free port */
#define HP_TRACE_SNAT_EXPIRE 2     /* the port of an idle flow, which would be expired first */
#define HP_TRACE_SNAT_EVICT 3      /* the port of the oldest half-open holder, evicted */
#define HP_TRACE_SNAT_FLOW 4       /* the existing flow's */

enum {                             /* sg_*_rule besides a rule's index (negative: cffi
                                    * takes them as enum values, not as macros) */
    HP_TRACE_SG_OPEN = -2,         /* the port has no group enabled: all pass */
    HP_TRACE_SG_NONE = -1,         /* a group, and no rule matched: refused */
    HP_TRACE_SG_UNCHECKED = -3,    /* the decision ended before this group */
};

#define HP_TRACE_FLOW_NONE 0       /* no flow: the packet went to a service (or none) */
#define HP_TRACE_FLOW_HIT 1        /* a live flow carries it */
#define HP_TRACE_FLOW_EXPIRED 2    /* a flow idle past its timeout: expired, then a miss */
#define HP_TRACE_FLOW_REOPEN 3     /* a SYN on a closed flow's tuple: a new flow */

struct hp_trace_result {
    uint8_t verdict;               /* HP_VERDICT_* the packet would get */
    uint8_t drop_reason;           /* hp_drop_reason_name(); none when forwarded */
    uint8_t rst;                   /* 1: a TCP RST would go back on in_port */
    uint8_t flow;                  /* HP_TRACE_FLOW_* */
    uint32_t flow_id;              /* the flow's slot (flow HIT, EXPIRED, REOPEN) */
    uint8_t flow_dir;              /* 0 client → backend, 1 backend → client */
    uint8_t tcp_state;             /* the flow's HP_TCP_* before this packet */
    int32_t service;               /* the service that claimed it or owns the flow; -1 none */
    uint8_t kind;                  /* HP_KIND_* of that service */
    uint8_t proto;
    uint32_t src_ip, dst_ip;       /* the packet as it arrived */
    uint16_t src_port, dst_port;
    int32_t sg_ingress_rule;       /* HP_TRACE_SG_* or the index of the rule that matched */
    int32_t sg_egress_rule;
    uint16_t sg_egress_port;       /* the port whose egress group was consulted */
    uint8_t backend_how;           /* HP_TRACE_BACKEND_* */
    uint32_t backend_index;
    uint8_t snat_how;              /* HP_TRACE_SNAT_* */
    uint32_t snat_attempts;        /* SNAT candidates the search looked at */
    uint16_t out_port;             /* where it would leave (in_port for a RST) */
    uint32_t out_src_ip, out_dst_ip; /* the packet as it would leave */
    uint16_t out_src_port, out_dst_port;
    uint32_t packet_size;          /* what the MTU is compared with */
    uint16_t mtu;                  /* the service's (0: none) */
    uint16_t mss_clamp;            /* the service's (0: none) */
    uint16_t mss_out;              /* the SYN's MSS as it would leave; 0: no MSS option */
    uint16_t proxy_len;            /* PROXY v2 header bytes put in front (0: none) */
    uint8_t flow_table_full;       /* 1: the new flow would evict the oldest half-open one */
    char error[128];               /* why hp_trace*() returned -1 (the engine is const) */
};

int hp_trace(const struct hp_engine *e, uint16_t in_port, const uint8_t *frame, uint32_t len,
             struct hp_trace_result *out);
int hp_trace_tuple(const struct hp_engine *e, uint16_t in_port, uint8_t proto, uint32_t src_ip,
                   uint16_t src_port, uint32_t dst_ip, uint16_t dst_port, uint8_t tcp_flags,
                   uint32_t ip_len, struct hp_trace_result *out);
/* VPC Flow Logs (hp_flowlog.c): as hp_flow_dump, only the flows last seen at or after
 * `since_ns` (to the second), so that a reader asking every second copies the flows that
 * moved, not the idle ones. */
uint32_t hp_flow_dump_since(const struct hp_engine *e, uint32_t *cursor, uint64_t since_ns,
                            struct hp_flow_info *out, uint32_t max);
/* cffi:end */

#endif
