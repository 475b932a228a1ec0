/* hp_io.c — AF_PACKET (TPACKET_V2) rings and the forwarder's poll loop; see hp_io.h.
 *
 * Ring geometry, per port (one socket): 256 slots of 16 KiB in each direction
 * (4 MiB + 4 MiB, one mapping), so a
 * slot holds a 9001-byte VPC jumbo frame with its headers, and a port can absorb a burst
 * of 256 frames while the loop serves another port.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
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
#include <time.h>
#include <unistd.h>

#include "hp_io.h"

#define SLOT_SIZE (1u << 14)
#define SLOTS 256u
#define BLOCK_SIZE (1u << 16) /* a ring is allocated in blocks; 4 slots each */
#define TX_DATA_OFF TPACKET_ALIGN(sizeof(struct tpacket2_hdr))
#define TX_KICK_AT (SLOTS / 2)
#define IDLE_POLL_MS 100      /* wake this often with no traffic, to age flows */
#define IDLE_EXPIRE_SCAN 4096 /* flow slots aged per idle wake-up */

struct ring {
    uint8_t *base;
    uint32_t head;            /* next slot to look at */
};

struct io_port {
    int fd;                   /* one socket: both rings */
    struct ring rx, tx;
    uint32_t tx_pending;      /* frames queued since the last kick */
    struct hp_io_port_stats stats;
};

struct hp_io {
    struct hp_engine *engine;
    struct io_port *ports[HP_MAX_PORTS];
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
    return io;
}

#define RING_BYTES ((size_t)SLOTS * SLOT_SIZE)

static void port_close(struct io_port *p)
{
    if (p->rx.base)
        munmap(p->rx.base, 2 * RING_BYTES); /* one mapping: receive ring, then transmit */
    if (p->fd >= 0)
        close(p->fd);
    free(p);
}

void hp_io_destroy(struct hp_io *io)
{
    if (!io)
        return;
    for (int i = 0; i < HP_MAX_PORTS; i++)
        if (io->ports[i])
            port_close(io->ports[i]);
    close(io->wake_fd);
    pthread_mutex_destroy(&io->lock);
    free(io);
}

/* The port's one AF_PACKET socket: bound to `ifindex` for every protocol, our own
 * transmissions not looped back to it, its transmissions past the qdisc (the forwarder
 * is the only sender on the hyperplane end of a veth), with a receive ring and a
 * transmit ring mapped together (the kernel lays them out receive ring first). */
static int port_socket(struct hp_io *io, int ifindex, struct io_port *p)
{
    int one = 1, version = TPACKET_V2;
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
    if (fd < 0) {
        set_error(io, "socket(AF_PACKET): %s", strerror(errno));
        return -1;
    }
    struct tpacket_req req = {.tp_block_size = BLOCK_SIZE, .tp_frame_size = SLOT_SIZE,
                              .tp_block_nr = SLOTS * SLOT_SIZE / BLOCK_SIZE, .tp_frame_nr = SLOTS};
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
        {PACKET_RX_RING, &req, sizeof req, "PACKET_RX_RING"},
        {PACKET_TX_RING, &req, sizeof req, "PACKET_TX_RING"},
    };
    const char *step = "";
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
        step = opts[i].what;
        if (setsockopt(fd, SOL_PACKET, opts[i].name, opts[i].value, opts[i].len) < 0)
            goto fail;
    }
    step = "mmap";
    uint8_t *base = mmap(NULL, 2 * RING_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED)
        goto fail;
    p->rx = (struct ring){.base = base};
    p->tx = (struct ring){.base = base + RING_BYTES};
    step = "bind";
    if (bind(fd, (struct sockaddr *)&sll, sizeof sll) < 0)
        goto fail;
    return fd;
fail:
    set_error(io, "interface %d: %s: %s", ifindex, step, strerror(errno));
    close(fd);
    return -1;
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
    p->fd = port_socket(io, ifindex, p);
    if (p->fd < 0) {
        port_close(p); /* unmaps the rings if they were mapped before the failing step */
        return -1;
    }
    /* The loop reads the port table without the lock to build its poll set: publish the
     * port only once it is complete. */
    __atomic_store_n(&io->ports[port], p, __ATOMIC_RELEASE);
    return 0;
}

static inline struct tpacket2_hdr *slot(const struct ring *r, uint32_t i)
{
    return (struct tpacket2_hdr *)(r->base + (size_t)(i % SLOTS) * SLOT_SIZE);
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

/* Copies a frame into the next transmit slot of `port`, or counts why it could not. */
static void tx_enqueue(struct hp_io *io, uint16_t port, const uint8_t *data, uint32_t len)
{
    struct io_port *p = port < HP_MAX_PORTS ? io->ports[port] : NULL;
    if (!p)
        return; /* the engine knows a port that has no interface: nothing to send on */
    if (len > SLOT_SIZE - TX_DATA_OFF) {
        p->stats.tx_too_big++;
        return;
    }
    struct tpacket2_hdr *h = slot(&p->tx, p->tx.head);
    if (__atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE) != TP_STATUS_AVAILABLE) {
        p->stats.tx_ring_full++;
        return;
    }
    memcpy((uint8_t *)h + TX_DATA_OFF, data, len);
    h->tp_len = len;
    __atomic_store_n(&h->tp_status, TP_STATUS_SEND_REQUEST, __ATOMIC_RELEASE);
    p->tx.head++;
    p->stats.tx_frames++;
    /* A burst longer than the ring would fill it before the loop's kick at the end of
     * the round: send what is queued once half the ring waits. */
    if (++p->tx_pending >= TX_KICK_AT)
        tx_kick(p);
}

static void tx_kick_all(struct hp_io *io)
{
    for (int i = 0; i < HP_MAX_PORTS; i++) {
        struct io_port *p = io->ports[i];
        if (p && p->tx_pending)
            tx_kick(p);
    }
}

/* Takes every ready frame of one port, HP_IO_BATCH at a time. Returns frames taken. */
static uint32_t drain(struct hp_io *io, uint16_t port, struct io_port *p)
{
    struct hp_pkt pkts[HP_IO_BATCH];
    struct tpacket2_hdr *hdrs[HP_IO_BATCH];
    uint32_t total = 0;
    for (;;) {
        uint32_t n = 0;
        while (n < HP_IO_BATCH) {
            struct tpacket2_hdr *h = slot(&p->rx, p->rx.head + n);
            uint32_t status = __atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE);
            if (!(status & TP_STATUS_USER))
                break;
            hdrs[n] = h;
            pkts[n].data = (uint8_t *)h + h->tp_mac;
            /* A frame cut by the slot size arrives short: the engine's length checks
             * drop it as malformed rather than forward a truncated frame. */
            pkts[n].len = h->tp_snaplen;
            pkts[n].flags = (status & TP_STATUS_CSUMNOTREADY) ? HP_PKT_CSUM_PARTIAL : 0;
            n++;
        }
        if (n == 0)
            break;
        pthread_mutex_lock(&io->lock);
        hp_process(io->engine, port, pkts, n, hp_io_now_ns(io));
        for (uint32_t i = 0; i < n; i++)
            if (pkts[i].verdict != HP_VERDICT_DROP)
                tx_enqueue(io, pkts[i].out_port, pkts[i].data, pkts[i].len);
        pthread_mutex_unlock(&io->lock);
        for (uint32_t i = 0; i < n; i++)
            __atomic_store_n(&hdrs[i]->tp_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
        p->rx.head += n;
        p->stats.rx_frames += n;
        total += n;
    }
    if (total)
        p->stats.rx_wakeups++;
    return total;
}

int hp_io_run(struct hp_io *io)
{
    struct pollfd pfds[HP_MAX_PORTS + 1];
    uint16_t ids[HP_MAX_PORTS];
    io->stop = 0;
    while (!__atomic_load_n(&io->stop, __ATOMIC_ACQUIRE)) {
        /* The poll set is rebuilt each round: ports may be opened while the loop runs. */
        int np = 0;
        struct io_port *open_ports[HP_MAX_PORTS];
        for (int i = 0; i < HP_MAX_PORTS; i++) {
            struct io_port *p = __atomic_load_n(&io->ports[i], __ATOMIC_ACQUIRE);
            if (!p)
                continue;
            open_ports[np] = p;
            pfds[np] = (struct pollfd){.fd = p->fd, .events = POLLIN};
            ids[np++] = (uint16_t)i;
        }
        pfds[np] = (struct pollfd){.fd = io->wake_fd, .events = POLLIN};
        int rc = poll(pfds, (nfds_t)np + 1, IDLE_POLL_MS);
        if (rc < 0 && errno != EINTR) {
            set_error(io, "poll: %s", strerror(errno));
            return -1;
        }
        if (pfds[np].revents & POLLIN)
            break;
        uint32_t frames = 0;
        for (int i = 0; i < np; i++)
            if (pfds[i].revents & POLLIN)
                frames += drain(io, ids[i], open_ports[i]);
        tx_kick_all(io);
        if (frames == 0) {
            pthread_mutex_lock(&io->lock);
            hp_expire(io->engine, hp_io_now_ns(io), IDLE_EXPIRE_SCAN);
            pthread_mutex_unlock(&io->lock);
        }
    }
    uint64_t drained;
    if (read(io->wake_fd, &drained, sizeof drained) < 0 && errno != EAGAIN)
        set_error(io, "eventfd: %s", strerror(errno));
    return 0;
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
    struct io_port *p = port < HP_MAX_PORTS ? __atomic_load_n(&io->ports[port], __ATOMIC_ACQUIRE) : NULL;
    if (!p)
        return -1;
    /* The kernel counts frames it could not put in a full receive ring, and resets the
     * count when it is read: add it up here, the only reader. */
    struct tpacket_stats st;
    socklen_t len = sizeof st;
    if (getsockopt(p->fd, SOL_PACKET, PACKET_STATISTICS, &st, &len) == 0)
        __atomic_add_fetch(&p->stats.rx_ring_drops, st.tp_drops, __ATOMIC_RELAXED);
    *out = p->stats;
    return 0;
}
