/* hp_io_afpacket.c — AF_PACKET (TPACKET_V2) rings and the forwarder's poll loop; see hp_io.h.
 *
 * Ring geometry, per port (one socket, one mapping: receive ring, then transmit ring):
 * ring_slots slots each way; receive slots of slot_size bytes, by default 256 of 64 KiB
 * (16 MiB of kernel memory), so a slot holds a GSO frame of up to 65,460 bytes (seven
 * 8460-byte VPC segments), and a port absorbs a burst of 256 frames while the loop
 * serves another port; transmit slots of 16 KiB (4 MiB), which hold any single packet
 * up to a 9001-byte jumbo frame (GSO frames do not go through the transmit ring).
 * Per-frame costs dominate bulk TCP: 64 KiB slots carried 1.7x the throughput of
 * 32 KiB slots in bench/ (bench/REPORT.md). Each slot is one ring block:
 * slot sizes are powers of two because the kernel allocates blocks as power-of-two page
 * runs (a 36 KiB block would take 64 KiB).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/virtio_net.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "hp_io.h"

#define DEFAULT_SLOTS 256u
#define DEFAULT_SLOT_SIZE (1u << 16)
#define MIN_SLOT_SIZE (1u << 12)
#define MAX_SLOT_SIZE (1u << 18)
#define MAX_SLOTS (1u << 16)
#define VNET_LEN sizeof(struct virtio_net_hdr)
/* Where a frame starts in a transmit slot: after the slot header, which the kernel reads
 * as tpacket2_hdr, then the virtio-net header (PACKET_VNET_HDR). */
#define TX_DATA_OFF TPACKET_ALIGN(sizeof(struct tpacket2_hdr))
/* Where the kernel puts a received Ethernet frame in a slot (tpacket_rcv with a
 * virtio-net header): the slot header and sockaddr_ll, 16 bytes for the MAC header,
 * aligned, then the virtio-net header; the frame runs from there to the slot's end. */
#define RX_MAC_OFF (TPACKET_ALIGN(TPACKET2_HDRLEN + 16) + VNET_LEN - ETH_HLEN)
#define TX_SLOT_SIZE (1u << 14)
#define DIRECT_SNDBUF (32 << 20)
#define IDLE_POLL_MS 100      /* wake this often with no traffic, to age flows */
#define IDLE_EXPIRE_SCAN 4096 /* flow slots aged per idle wake-up */

struct ring {
    uint8_t *base;
    uint32_t slot_size;
    uint32_t head;            /* next slot to look at */
};

struct io_port {
    int fd;                   /* one socket: both rings */
    int direct_fd;            /* no ring, receives nothing: sends large frames */
    struct ring rx, tx;
    uint32_t tx_pending;      /* frames queued since the last kick */
    size_t mapped;            /* bytes of the rings' mapping (the geometry it was made with) */
    struct io_port *next_retired;
    struct hp_io_port_stats stats;
};

struct hp_io {
    struct hp_engine *engine;
    struct io_port *ports[HP_MAX_PORTS];
    uint32_t n_open;          /* ports open now: the rings are set while there are none */
    uint32_t generation;      /* bumped when a port opens or closes: the loop rebuilds its set */
    bool running;             /* the loop holds port pointers (under the lock) */
    struct io_port *retired;  /* closed while the loop runs: it frees them at its next round */
    pthread_cond_t retired_done;
    uint32_t slots, slot_size, tx_kick_at;
    uint64_t busy_poll_ns;
    int wake_fd;
    volatile int stop;
    int64_t clock_offset_ns;
    pthread_mutex_t lock;
    char error[256];
};

static void set_error(struct hp_io *io, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(struct hp_io *io, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(io->error, sizeof io->error, fmt, ap);
    va_end(ap);
}

const char *hp_io_last_error(const struct hp_io *io) { return io->error; }

struct hp_io *hp_io_create(struct hp_engine *engine)
{
    struct hp_io *io = calloc(1, sizeof *io);
    if (!io)
        return NULL;
    io->engine = engine;
    io->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (io->wake_fd < 0) {
        free(io);
        return NULL;
    }
    pthread_mutex_init(&io->lock, NULL);
    pthread_cond_init(&io->retired_done, NULL);
    hp_io_configure(io, &(struct hp_io_config){0});
    return io;
}

int hp_io_configure(struct hp_io *io, const struct hp_io_config *cfg)
{
    uint32_t slots = cfg->ring_slots ? cfg->ring_slots : DEFAULT_SLOTS;
    uint32_t size = cfg->slot_size ? cfg->slot_size : DEFAULT_SLOT_SIZE;
    if (io->n_open) {
        set_error(io, "the rings are set before the first port opens");
        return -1;
    }
    if (size < MIN_SLOT_SIZE || size > MAX_SLOT_SIZE || (size & (size - 1))) {
        set_error(io, "slot size %u is not a power of two from %u to %u bytes", size,
                  MIN_SLOT_SIZE, MAX_SLOT_SIZE);
        return -1;
    }
    if (slots < 2 * HP_IO_BATCH || slots > MAX_SLOTS) {
        set_error(io, "%u slots per ring is outside %u-%u", slots, 2 * HP_IO_BATCH, MAX_SLOTS);
        return -1;
    }
    if (cfg->busy_poll_us > 1000000) {
        set_error(io, "busy polling for %u us is more than a second", cfg->busy_poll_us);
        return -1;
    }
    io->slots = slots;
    io->slot_size = size;
    io->tx_kick_at = slots / 2;
    io->busy_poll_ns = (uint64_t)cfg->busy_poll_us * 1000;
    return 0;
}

uint32_t hp_io_max_frame(uint32_t slot_size)
{
    return (slot_size ? slot_size : DEFAULT_SLOT_SIZE) - (uint32_t)RX_MAC_OFF;
}

/* A transmit slot holds any single packet up to a 9001-byte jumbo frame; what is larger
 * (GSO frames) leaves by sendmsg() instead, so transmit slots stay small. */
static uint32_t tx_slot_size(const struct hp_io *io)
{
    return io->slot_size < TX_SLOT_SIZE ? io->slot_size : TX_SLOT_SIZE;
}

static uint32_t tx_max_frame(const struct hp_io *io)
{
    return tx_slot_size(io) - (uint32_t)(TX_DATA_OFF + VNET_LEN);
}

/* One mapping per port: the receive ring, then the transmit ring. */
static size_t mapping_bytes(const struct hp_io *io)
{
    return (size_t)io->slots * io->slot_size + (size_t)io->slots * tx_slot_size(io);
}

static void port_close(struct io_port *p)
{
    if (p->rx.base)
        munmap(p->rx.base, p->mapped);
    if (p->fd >= 0)
        close(p->fd);
    if (p->direct_fd >= 0)
        close(p->direct_fd);
    free(p);
}

/* Closes the ports closed while the loop ran, once it holds none of their pointers
 * (called with the lock held, or when no loop runs), and wakes hp_io_port_close(). */
static void free_retired(struct hp_io *io)
{
    while (io->retired) {
        struct io_port *p = io->retired;
        io->retired = p->next_retired;
        port_close(p);
    }
    pthread_cond_broadcast(&io->retired_done);
}

void hp_io_destroy(struct hp_io *io)
{
    if (!io)
        return;
    for (int i = 0; i < HP_MAX_PORTS; i++)
        if (io->ports[i])
            port_close(io->ports[i]);
    free_retired(io);
    close(io->wake_fd);
    pthread_cond_destroy(&io->retired_done);
    pthread_mutex_destroy(&io->lock);
    free(io);
}

/* The port's one AF_PACKET socket: bound to `ifindex` for every protocol, our own
 * transmissions not looped back to it, its transmissions past the qdisc (the forwarder
 * is the only sender on the hyperplane end of a veth), a virtio-net header on every
 * frame both ways, malformed transmit frames skipped rather than stopping the ring
 * (PACKET_LOSS), with a receive ring and a transmit ring mapped together (the kernel lays
 * them out receive ring first). */
static int port_socket(struct hp_io *io, int ifindex, struct io_port *p)
{
    int one = 1, version = TPACKET_V2;
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
    if (fd < 0) {
        set_error(io, "socket(AF_PACKET): %s", strerror(errno));
        return -1;
    }
    struct tpacket_req rx_req = {.tp_block_size = io->slot_size, .tp_frame_size = io->slot_size,
                                 .tp_block_nr = io->slots, .tp_frame_nr = io->slots};
    struct tpacket_req tx_req = {.tp_block_size = tx_slot_size(io), .tp_frame_size = tx_slot_size(io),
                                 .tp_block_nr = io->slots, .tp_frame_nr = io->slots};
    struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_ifindex = ifindex,
                              .sll_protocol = htons(ETH_P_ALL)};
    /* In this order: the version before the rings, the rings before mmap. */
    const struct {
        int name;
        const void *value;
        socklen_t len;
        const char *what;
    } opts[] = {
        {PACKET_VERSION, &version, sizeof version, "PACKET_VERSION"},
        {PACKET_IGNORE_OUTGOING, &one, sizeof one, "PACKET_IGNORE_OUTGOING"},
        {PACKET_QDISC_BYPASS, &one, sizeof one, "PACKET_QDISC_BYPASS"},
        {PACKET_VNET_HDR, &one, sizeof one, "PACKET_VNET_HDR"},
        {PACKET_LOSS, &one, sizeof one, "PACKET_LOSS"},
        {PACKET_RX_RING, &rx_req, sizeof rx_req, "PACKET_RX_RING"},
        {PACKET_TX_RING, &tx_req, sizeof tx_req, "PACKET_TX_RING"},
    };
    const char *step = "";
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
        step = opts[i].what;
        if (setsockopt(fd, SOL_PACKET, opts[i].name, opts[i].value, opts[i].len) < 0)
            goto fail;
    }
    step = "mmap";
    uint8_t *base = mmap(NULL, mapping_bytes(io), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED)
        goto fail;
    p->mapped = mapping_bytes(io);
    p->rx = (struct ring){.base = base, .slot_size = io->slot_size};
    p->tx = (struct ring){.base = base + (size_t)io->slots * io->slot_size, .slot_size = tx_slot_size(io)};
    step = "bind";
    if (bind(fd, (struct sockaddr *)&sll, sizeof sll) < 0)
        goto fail;
    return fd;
fail:
    set_error(io, "interface %d: %s: %s", ifindex, step, strerror(errno));
    close(fd);
    return -1;
}

/* The port's socket for large frames: no ring (a socket with a transmit ring sends
 * only from it), protocol 0 (it receives nothing), the same header and qdisc bypass, and
 * a send buffer for DIRECT_SNDBUF bytes of frames that receivers have not consumed yet
 * (a frame counts until its skb is freed). */
static int direct_socket(struct hp_io *io, int ifindex)
{
    int one = 1, sndbuf = DIRECT_SNDBUF;
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        set_error(io, "socket(AF_PACKET): %s", strerror(errno));
        return -1;
    }
    struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_ifindex = ifindex};
    /* SO_SNDBUFFORCE passes net.core.wmem_max (root only); without it, what wmem_max allows */
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof sndbuf) < 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    if (setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one) < 0 ||
        setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof one) < 0 ||
        bind(fd, (struct sockaddr *)&sll, sizeof sll) < 0) {
        set_error(io, "interface %d: the socket for large frames: %s", ifindex, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

int hp_io_port_open(struct hp_io *io, uint16_t port, int ifindex)
{
    if (port >= HP_MAX_PORTS) {
        set_error(io, "port %u is out of range", port);
        return -1;
    }
    if (__atomic_load_n(&io->ports[port], __ATOMIC_ACQUIRE)) {
        set_error(io, "port %u is already open", port);
        return -1;
    }
    struct io_port *p = calloc(1, sizeof *p);
    if (!p) {
        set_error(io, "out of memory");
        return -1;
    }
    p->direct_fd = -1;
    p->fd = port_socket(io, ifindex, p);
    if (p->fd >= 0)
        p->direct_fd = direct_socket(io, ifindex);
    if (p->fd < 0 || p->direct_fd < 0) {
        port_close(p); /* unmaps the rings if they were mapped before the failing step */
        return -1;
    }
    /* The loop reads the port table without the lock to build its poll set: publish the
     * port only once it is complete, then tell the loop the set changed. */
    pthread_mutex_lock(&io->lock);
    __atomic_store_n(&io->ports[port], p, __ATOMIC_RELEASE);
    io->n_open++;
    __atomic_add_fetch(&io->generation, 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&io->lock);
    return 0;
}

/* 1. Under the lock, take the port out of the table: from here no batch sends into it
 *    (tx_send looks its out port up there, under the lock) and hp_io_port_stats finds
 *    nothing.
 * 2. No loop runs: close it now. Else hand it to the loop (the retired list), wake it
 *    (its poll set still holds the socket) and wait until its next round, which drops
 *    its pointers to the old set before freeing the list: the loop is the only thread
 *    that may still read the port's rings. Bounded: the loop wakes at once (eventfd). */
int hp_io_port_close(struct hp_io *io, uint16_t port)
{
    uint64_t one = 1;
    pthread_mutex_lock(&io->lock);
    struct io_port *p = port < HP_MAX_PORTS ? io->ports[port] : NULL;
    if (!p) {
        pthread_mutex_unlock(&io->lock);
        set_error(io, "port %u is not open", port);
        return -1;
    }
    __atomic_store_n(&io->ports[port], NULL, __ATOMIC_RELEASE);
    io->n_open--;
    __atomic_add_fetch(&io->generation, 1, __ATOMIC_RELEASE);
    if (!io->running) {
        pthread_mutex_unlock(&io->lock);
        port_close(p);
        return 0;
    }
    p->next_retired = io->retired;
    io->retired = p;
    if (write(io->wake_fd, &one, sizeof one) < 0)
        set_error(io, "eventfd: %s", strerror(errno));
    while (io->retired)
        pthread_cond_wait(&io->retired_done, &io->lock);
    pthread_mutex_unlock(&io->lock);
    return 0;
}

static inline struct tpacket2_hdr *slot(const struct hp_io *io, const struct ring *r, uint32_t i)
{
    return (struct tpacket2_hdr *)(r->base + (size_t)(i % io->slots) * r->slot_size);
}

uint64_t hp_io_now_ns(const struct hp_io *io)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)((int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + io->clock_offset_ns);
}

void hp_io_set_clock_offset(struct hp_io *io, int64_t offset_ns)
{
    pthread_mutex_lock(&io->lock);
    io->clock_offset_ns = offset_ns;
    pthread_mutex_unlock(&io->lock);
}

/* Hands every queued transmit slot to the kernel, which sends them before returning. */
static void tx_kick(struct io_port *p)
{
    p->tx_pending = 0;
    if (send(p->fd, NULL, 0, MSG_DONTWAIT) < 0 && errno != EAGAIN && errno != ENOBUFS)
        p->stats.tx_errors++;
}

/* Copies a frame that fits a transmit slot into the next one of port `p`, behind the
 * virtio-net header it leaves with, or counts why it could not. */
static void tx_enqueue(struct hp_io *io, struct io_port *p, const uint8_t *data, uint32_t len,
                       const struct virtio_net_hdr *vh)
{
    struct tpacket2_hdr *h = slot(io, &p->tx, p->tx.head);
    if (__atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE) != TP_STATUS_AVAILABLE) {
        p->stats.tx_ring_full++;
        return;
    }
    uint8_t *out = (uint8_t *)h + TX_DATA_OFF;
    memcpy(out, vh, VNET_LEN);
    if (vh->gso_type == VIRTIO_NET_HDR_GSO_NONE) {
        /* hdr_len is how much of the slot the kernel copies into the skb; the rest it
         * would attach as the ring's own pages, which a receiver on this host must copy
         * out again into a page of its own (skb_copy_ubufs). A single packet is copied
         * whole: cheaper than a page allocation and a second copy per frame. */
        struct virtio_net_hdr *ovh = (struct virtio_net_hdr *)out;
        ovh->hdr_len = htole16((uint16_t)len);
    }
    memcpy(out + VNET_LEN, data, len);
    h->tp_len = (uint32_t)VNET_LEN + len;
    __atomic_store_n(&h->tp_status, TP_STATUS_SEND_REQUEST, __ATOMIC_RELEASE);
    p->tx.head++;
    p->stats.tx_frames++;
    /* A burst longer than the ring would fill it before the loop's kick at the end of
     * the round: send what is queued once half the ring waits. */
    if (++p->tx_pending >= io->tx_kick_at)
        tx_kick(p);
}

/* Sends a large frame straight from where it is (its receive slot), after the frames
 * queued in the port's transmit ring (a kick sends them before it returns). */
static void tx_direct(struct io_port *p, const uint8_t *data, uint32_t len,
                      const struct virtio_net_hdr *vh)
{
    if (p->tx_pending)
        tx_kick(p);
    struct iovec iov[2] = {{.iov_base = (void *)vh, .iov_len = VNET_LEN},
                           {.iov_base = (void *)data, .iov_len = len}};
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = 2};
    if (sendmsg(p->direct_fd, &msg, MSG_DONTWAIT) < 0) {
        if (errno == EAGAIN || errno == ENOBUFS)
            p->stats.tx_ring_full++;
        else if (errno == EMSGSIZE)
            p->stats.tx_too_big++; /* not a GSO frame, and more than the device's MTU */
        else
            p->stats.tx_errors++;
        return;
    }
    p->stats.tx_frames++;
    p->stats.tx_direct++;
}

/* Sends a processed frame out of its port: through the transmit ring if it fits a slot,
 * else (a GSO frame) straight from its receive slot. */
static void tx_send(struct hp_io *io, const struct hp_pkt *pkt, const struct virtio_net_hdr *vh)
{
    struct io_port *p = pkt->out_port < HP_MAX_PORTS ? io->ports[pkt->out_port] : NULL;
    if (!p)
        return; /* the engine knows a port that has no interface: nothing to send on */
    if (pkt->len <= tx_max_frame(io))
        tx_enqueue(io, p, pkt->data, pkt->len, vh);
    else
        tx_direct(p, pkt->data, pkt->len, vh);
}

/* The virtio-net header a processed frame leaves with: the received one while the
 * checksum is still partial and the frame still a GSO frame (the engine rewrites no
 * offsets), cleared of what the engine finished or of everything for a frame it built. */
static void vnet_out(const struct hp_pkt *pkt, struct virtio_net_hdr *vh)
{
    if (!(pkt->flags & HP_PKT_CSUM_PARTIAL)) {
        vh->flags = 0;
        vh->csum_start = vh->csum_offset = 0;
    }
    if (!pkt->gso_size) {
        vh->gso_type = VIRTIO_NET_HDR_GSO_NONE;
        vh->gso_size = vh->hdr_len = 0;
    }
}

static void tx_kick_all(struct hp_io *io)
{
    for (int i = 0; i < HP_MAX_PORTS; i++) {
        struct io_port *p = __atomic_load_n(&io->ports[i], __ATOMIC_ACQUIRE);
        if (p && p->tx_pending)
            tx_kick(p);
    }
}

/* The engine's view of a received frame's virtio-net header (little-endian, as the
 * kernel writes it for packet sockets). Every port's transmit path finishes partial
 * checksums, so the engine may keep them partial. */
static void vnet_in(struct io_port *p, const struct virtio_net_hdr *vh, struct hp_pkt *pkt)
{
    pkt->flags = HP_PKT_CSUM_OFFLOAD;
    pkt->gso_size = 0;
    if (vh->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
        pkt->flags |= HP_PKT_CSUM_PARTIAL;
        p->stats.rx_csum_partial++;
    }
    if (vh->gso_type != VIRTIO_NET_HDR_GSO_NONE) {
        pkt->gso_size = le16toh(vh->gso_size);
        p->stats.rx_gso_frames++;
    }
}

/* Takes every ready frame of one port, HP_IO_BATCH at a time. Returns frames taken. */
static uint32_t drain(struct hp_io *io, uint16_t port, struct io_port *p)
{
    struct hp_pkt pkts[HP_IO_BATCH];
    struct virtio_net_hdr vhs[HP_IO_BATCH];
    struct tpacket2_hdr *hdrs[HP_IO_BATCH];
    uint32_t total = 0;
    for (;;) {
        uint32_t n = 0, taken = 0;
        while (taken < HP_IO_BATCH) {
            struct tpacket2_hdr *h = slot(io, &p->rx, p->rx.head + taken);
            uint32_t status = __atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE);
            if (!(status & TP_STATUS_USER))
                break;
            hdrs[taken++] = h;
            if (__builtin_expect(h->tp_snaplen < h->tp_len, 0)) {
                /* cut by the slot size: never forward part of a frame */
                p->stats.rx_truncated++;
                continue;
            }
            uint8_t *frame = (uint8_t *)h + h->tp_mac;
            memcpy(&vhs[n], frame - VNET_LEN, VNET_LEN);
            pkts[n].data = frame;
            pkts[n].len = h->tp_snaplen;
            pkts[n].cap = io->slot_size - h->tp_mac; /* the slot's rest: room to grow */
            vnet_in(p, &vhs[n], &pkts[n]);
            n++;
        }
        if (taken == 0)
            break;
        pthread_mutex_lock(&io->lock);
        hp_process(io->engine, port, pkts, n, hp_io_now_ns(io));
        for (uint32_t i = 0; i < n; i++) {
            if (pkts[i].verdict == HP_VERDICT_DROP)
                continue;
            vnet_out(&pkts[i], &vhs[i]);
            tx_send(io, &pkts[i], &vhs[i]);
        }
        pthread_mutex_unlock(&io->lock);
        for (uint32_t i = 0; i < taken; i++)
            __atomic_store_n(&hdrs[i]->tp_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
        p->rx.head += taken;
        p->stats.rx_frames += taken;
        total += taken;
    }
    if (total)
        p->stats.rx_wakeups++;
    return total;
}

static bool rx_ready(const struct hp_io *io, const struct io_port *p)
{
    return __atomic_load_n(&slot(io, &p->rx, p->rx.head)->tp_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* The loop: sleep in poll() until a ring has frames (or the idle timeout, to age flows),
 * drain the ready ports, kick the transmit rings. With busy polling, after a round that
 * moved frames it reads the rings' next slots directly, without sleeping, until
 * busy_poll_us pass with nothing. */
int hp_io_run(struct hp_io *io)
{
    struct pollfd pfds[HP_MAX_PORTS + 1];
    uint16_t ids[HP_MAX_PORTS];
    struct io_port *open_ports[HP_MAX_PORTS];
    uint32_t known = UINT32_MAX;
    int np = 0, rc = 0;
    uint64_t busy_until = 0;
    io->stop = 0;
    pthread_mutex_lock(&io->lock);
    io->running = true;
    pthread_mutex_unlock(&io->lock);
    while (!__atomic_load_n(&io->stop, __ATOMIC_ACQUIRE)) {
        uint32_t generation = __atomic_load_n(&io->generation, __ATOMIC_ACQUIRE);
        if (generation != known) { /* ports opened or closed while the loop runs */
            known = generation;
            np = 0;
            pthread_mutex_lock(&io->lock);
            for (int i = 0; i < HP_MAX_PORTS; i++) {
                struct io_port *p = io->ports[i];
                if (!p)
                    continue;
                open_ports[np] = p;
                pfds[np] = (struct pollfd){.fd = p->fd, .events = POLLIN};
                ids[np++] = (uint16_t)i;
            }
            free_retired(io); /* the old set's pointers are gone */
            pthread_mutex_unlock(&io->lock);
            pfds[np] = (struct pollfd){.fd = io->wake_fd, .events = POLLIN};
        }
        uint32_t frames = 0;
        bool busy = busy_until && hp_io_now_ns(io) < busy_until;
        if (busy) {
            for (int i = 0; i < np; i++) {
                open_ports[i]->stats.busy_polls++;
                if (rx_ready(io, open_ports[i]))
                    frames += drain(io, ids[i], open_ports[i]);
            }
        } else {
            int n = poll(pfds, (nfds_t)np + 1, IDLE_POLL_MS);
            if (n < 0 && errno != EINTR) {
                set_error(io, "poll: %s", strerror(errno));
                rc = -1;
                break;
            }
            if (pfds[np].revents & POLLIN) { /* stopped, or a port closed: look again */
                uint64_t drained;
                if (read(io->wake_fd, &drained, sizeof drained) < 0 && errno != EAGAIN)
                    set_error(io, "eventfd: %s", strerror(errno));
                continue;
            }
            for (int i = 0; i < np; i++)
                if (pfds[i].revents & POLLIN)
                    frames += drain(io, ids[i], open_ports[i]);
        }
        tx_kick_all(io);
        if (frames && io->busy_poll_ns) {
            busy_until = hp_io_now_ns(io) + io->busy_poll_ns;
        } else if (busy) {
            cpu_relax();
        } else if (frames == 0) {
            pthread_mutex_lock(&io->lock);
            hp_expire(io->engine, hp_io_now_ns(io), IDLE_EXPIRE_SCAN);
            pthread_mutex_unlock(&io->lock);
        }
    }
    pthread_mutex_lock(&io->lock);
    io->running = false;
    free_retired(io);
    pthread_mutex_unlock(&io->lock);
    return rc;
}

void hp_io_stop(struct hp_io *io)
{
    uint64_t one = 1;
    __atomic_store_n(&io->stop, 1, __ATOMIC_RELEASE);
    if (write(io->wake_fd, &one, sizeof one) < 0)
        set_error(io, "eventfd: %s", strerror(errno));
}

void hp_io_lock(struct hp_io *io) { pthread_mutex_lock(&io->lock); }
void hp_io_unlock(struct hp_io *io) { pthread_mutex_unlock(&io->lock); }

int hp_io_port_stats(struct hp_io *io, uint16_t port, struct hp_io_port_stats *out)
{
    pthread_mutex_lock(&io->lock); /* a port closing meanwhile is freed under it */
    struct io_port *p = port < HP_MAX_PORTS ? io->ports[port] : NULL;
    if (!p) {
        pthread_mutex_unlock(&io->lock);
        return -1;
    }
    /* The kernel counts frames it could not put in a full receive ring, and resets the
     * count when it is read: add it up here, the only reader. */
    struct tpacket_stats st;
    socklen_t len = sizeof st;
    if (getsockopt(p->fd, SOL_PACKET, PACKET_STATISTICS, &st, &len) == 0)
        __atomic_add_fetch(&p->stats.rx_ring_drops, st.tp_drops, __ATOMIC_RELAXED);
    *out = p->stats;
    pthread_mutex_unlock(&io->lock);
    return 0;
}
