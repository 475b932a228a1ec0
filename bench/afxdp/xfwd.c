/* xfwd.c — the issue-5 experiment: an AF_XDP receive path against hp_io's AF_PACKET
 * TPACKET_V2 receive ring, on the same veths, with the same transmit.
 *
 * Runs inside the forwarder namespace. Takes every frame arriving on --in, rewrites its
 * Ethernet addresses (destination := --dst-mac, source := --out's own address; nothing
 * else of the frame changes) and transmits it on --out, until --seconds have passed or
 * SIGINT/SIGTERM. Then prints one JSON line of counters on stdout.
 *
 * Receive (--rx):
 *   afpacket  an AF_PACKET socket on --in with a TPACKET_V2 receive ring of 256 slots of
 *             16 KiB, as native/hp_io_afpacket.c: poll(), drain HP_IO_BATCH (64) slots at a time.
 *   xdp-drv   an XDP program attached to --in in driver ("native") mode, redirecting
 *             every frame of receive queue q to the AF_XDP socket in slot q of an XSKMAP
 *             (XDP_PASS when the slot is empty); one AF_XDP socket on queue 0 of --in in
 *             copy mode (veth has no zero-copy): poll(), then take up to 64 descriptors
 *             from its receive ring and give their frames back to the fill ring.
 *   xdp-skb   the same program and socket with the program attached in generic (skb) mode.
 * Transmit (--tx):
 *   afpacket  an AF_PACKET socket on --out with a TPACKET_V2 transmit ring of 256 slots of
 *             16 KiB and PACKET_QDISC_BYPASS, as hp_io: copy into the next slot, send() at
 *             half a ring and at the end of every round.
 *   xsk       an AF_XDP socket on queue 0 of --out (copy mode, its own UMEM): copy into a
 *             free UMEM frame, post it on the transmit ring, sendto() to make the kernel
 *             send (copy mode sends at most 32 frames per call, so the kick loops), take
 *             sent frames back from the completion ring.
 *
 * --frags loads the XDP program with BPF_F_XDP_HAS_FRAGS and binds the AF_XDP socket with
 * XDP_USE_SG (multi-buffer): what a 9001-byte MTU needs, since a 4 KiB UMEM frame holds
 * at most ~3.5 KiB and veth refuses a program without frags support above that MTU.
 *
 * The XDP program is 6 eBPF instructions, given here as raw instructions (no clang, no
 * BPF object file): libbpf is used only for the bpf() calls and netlink attach, libxdp
 * only for its AF_XDP ring helpers (xdp/xsk.h); no libxdp dispatcher is loaded.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <getopt.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/if_link.h>
#include <linux/if_packet.h>
#include <linux/if_xdp.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <xdp/xsk.h>

#ifndef XDP_USE_SG
#define XDP_USE_SG (1 << 4) /* Linux 6.6; the Debian 12 uapi headers predate it */
#endif
#ifndef XDP_PKT_CONTD
#define XDP_PKT_CONTD (1 << 0)
#endif

#define SLOT_SIZE (1u << 14) /* hp_io's ring geometry */
#define SLOTS 256u
#define BLOCK_SIZE (1u << 16)
#define RING_BYTES ((size_t)SLOTS * SLOT_SIZE)
#define TX_DATA_OFF TPACKET_ALIGN(sizeof(struct tpacket2_hdr))
#define TX_KICK_AT (SLOTS / 2)
#define BATCH 64u /* HP_IO_BATCH */
#define POLL_MS 100
#define XSK_FRAME XSK_UMEM__DEFAULT_FRAME_SIZE /* 4096 */
#define XSK_TX_PER_CALL 32 /* the kernel's copy-mode transmit batch per sendto() */
#define MAX_FRAME 16384u

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static bool xdp_attached;
static int xdp_ifindex;
static uint32_t xdp_flags;

static void detach_xdp(void)
{
    if (xdp_attached) {
        bpf_xdp_detach(xdp_ifindex, xdp_flags, NULL);
        xdp_attached = false;
    }
}

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "xfwd: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    detach_xdp();
    exit(1);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct counters {
    uint64_t rx_frames, rx_bytes, rx_wakeups, rx_multi_buffer;
    uint64_t tx_frames, tx_ring_full, tx_errors, tx_too_big, tx_kicks;
    uint64_t rx_ring_drops;                     /* AF_PACKET PACKET_STATISTICS tp_drops */
    struct xdp_statistics xsk_rx, xsk_tx;       /* XDP_STATISTICS of the AF_XDP sockets */
};
static struct counters c;

/* ---- AF_PACKET rings (as hp_io_afpacket.c) -------------------------------------------------- */

struct pring {
    int fd;
    uint8_t *base;
    uint32_t head, pending;
};

static struct pring packet_ring(int ifindex, bool rx)
{
    int version = TPACKET_V2, one = 1;
    struct pring r = {0};
    /* The transmit-only socket is bound to protocol 0: it receives nothing. */
    r.fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, rx ? htons(ETH_P_ALL) : 0);
    if (r.fd < 0)
        die("socket(AF_PACKET): %s", strerror(errno));
    struct tpacket_req req = {.tp_block_size = BLOCK_SIZE, .tp_frame_size = SLOT_SIZE,
                              .tp_block_nr = RING_BYTES / BLOCK_SIZE, .tp_frame_nr = SLOTS};
    if (setsockopt(r.fd, SOL_PACKET, PACKET_VERSION, &version, sizeof version) < 0)
        die("PACKET_VERSION: %s", strerror(errno));
    if (rx) {
        if (setsockopt(r.fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one) < 0 ||
            setsockopt(r.fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof req) < 0)
            die("PACKET_RX_RING: %s", strerror(errno));
    } else {
        if (setsockopt(r.fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one) < 0 ||
            setsockopt(r.fd, SOL_PACKET, PACKET_TX_RING, &req, sizeof req) < 0)
            die("PACKET_TX_RING: %s", strerror(errno));
    }
    r.base = mmap(NULL, RING_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, r.fd, 0);
    if (r.base == MAP_FAILED)
        die("mmap ring: %s", strerror(errno));
    struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_ifindex = ifindex,
                              .sll_protocol = rx ? htons(ETH_P_ALL) : 0};
    if (bind(r.fd, (struct sockaddr *)&sll, sizeof sll) < 0)
        die("bind AF_PACKET: %s", strerror(errno));
    return r;
}

static inline struct tpacket2_hdr *pslot(const struct pring *r, uint32_t i)
{
    return (struct tpacket2_hdr *)(r->base + (size_t)(i % SLOTS) * SLOT_SIZE);
}

/* ---- AF_XDP ------------------------------------------------------------------------ */

struct xsk {
    struct xsk_socket *sock;
    struct xsk_umem *umem;
    struct xsk_ring_prod fill, tx;
    struct xsk_ring_cons comp, rx;
    uint8_t *area;
    uint32_t frames;
    uint64_t *free_frames; /* UMEM frames not in the kernel's hands: on the receive side,
                            * those to give back to the fill ring; on the transmit side,
                            * those free to send from */
    uint32_t nfree, pending;
};

static void xsk_open(struct xsk *x, const char *ifname, uint32_t ring, bool rx, uint16_t bind_flags)
{
    x->frames = 2 * ring;
    size_t bytes = (size_t)x->frames * XSK_FRAME;
    x->area = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (x->area == MAP_FAILED)
        die("mmap UMEM: %s", strerror(errno));
    struct xsk_umem_config ucfg = {.fill_size = 2 * ring, .comp_size = 2 * ring,
                                   .frame_size = XSK_FRAME,
                                   .frame_headroom = XSK_UMEM__DEFAULT_FRAME_HEADROOM};
    int err = xsk_umem__create(&x->umem, x->area, bytes, &x->fill, &x->comp, &ucfg);
    if (err)
        die("xsk_umem__create: %s", strerror(-err));
    struct xsk_socket_config scfg = {.rx_size = rx ? ring : 0, .tx_size = rx ? 0 : ring,
                                     .libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD,
                                     .bind_flags = (uint16_t)(XDP_COPY | bind_flags)};
    err = xsk_socket__create(&x->sock, ifname, 0, x->umem, rx ? &x->rx : NULL, rx ? NULL : &x->tx, &scfg);
    if (err)
        die("xsk_socket__create(%s, bind flags %#x): %s", ifname, scfg.bind_flags, strerror(-err));
    if (rx) { /* every frame to the fill ring */
        uint32_t idx;
        if (xsk_ring_prod__reserve(&x->fill, x->frames, &idx) != x->frames)
            die("fill ring reserve");
        for (uint32_t i = 0; i < x->frames; i++)
            *xsk_ring_prod__fill_addr(&x->fill, idx + i) = (uint64_t)i * XSK_FRAME;
        xsk_ring_prod__submit(&x->fill, x->frames);
    }
    x->free_frames = calloc(x->frames, sizeof *x->free_frames);
    if (!x->free_frames)
        die("out of memory");
    if (!rx) {
        for (uint32_t i = 0; i < x->frames; i++)
            x->free_frames[x->nfree++] = (uint64_t)i * XSK_FRAME;
    }
}

static void xsk_stats(struct xsk *x, struct xdp_statistics *out)
{
    socklen_t len = sizeof *out;
    if (getsockopt(xsk_socket__fd(x->sock), SOL_XDP, XDP_STATISTICS, out, &len) < 0)
        memset(out, 0, sizeof *out);
}

/* The redirect program: return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS). */
static int load_redirect_prog(int map_fd, bool frags)
{
    struct bpf_insn insns[] = {
        {.code = BPF_LDX | BPF_MEM | BPF_W, .dst_reg = BPF_REG_2, .src_reg = BPF_REG_1,
         .off = offsetof(struct xdp_md, rx_queue_index)},
        {.code = BPF_LD | BPF_DW | BPF_IMM, .dst_reg = BPF_REG_1, .src_reg = BPF_PSEUDO_MAP_FD,
         .imm = map_fd},
        {0}, /* second half of the 64-bit immediate load */
        {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_3, .imm = XDP_PASS},
        {.code = BPF_JMP | BPF_CALL, .imm = BPF_FUNC_redirect_map},
        {.code = BPF_JMP | BPF_EXIT},
    };
    static char log[4096];
    LIBBPF_OPTS(bpf_prog_load_opts, opts, .log_buf = log, .log_size = sizeof log, .log_level = 1,
                .prog_flags = frags ? BPF_F_XDP_HAS_FRAGS : 0);
    int fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "xfwd_redirect", "Dual MIT/GPL", insns,
                           sizeof insns / sizeof insns[0], &opts);
    if (fd < 0)
        die("loading the XDP program: %s\n%s", strerror(errno), log);
    return fd;
}

/* ---- the transmit side -------------------------------------------------------------- */

enum tx_kind { TX_AFPACKET, TX_XSK };
static enum tx_kind tx_kind;
static struct pring txr;
static struct xsk txx;
static uint8_t dst_mac[6], src_mac[6];

static void tx_kick(void)
{
    if (tx_kind == TX_AFPACKET) {
        if (!txr.pending)
            return;
        txr.pending = 0;
        c.tx_kicks++;
        if (send(txr.fd, NULL, 0, MSG_DONTWAIT) < 0 && errno != EAGAIN && errno != ENOBUFS)
            c.tx_errors++;
        return;
    }
    /* Copy mode sends up to 32 frames per call: call until the ring is empty (bounded). */
    for (uint32_t n = 0; txx.pending && n <= SLOTS / XSK_TX_PER_CALL; n++) {
        c.tx_kicks++;
        if (sendto(xsk_socket__fd(txx.sock), NULL, 0, MSG_DONTWAIT, NULL, 0) < 0 &&
            errno != EAGAIN && errno != EBUSY && errno != ENOBUFS) {
            c.tx_errors++;
            break;
        }
        uint32_t idx, done = xsk_ring_cons__peek(&txx.comp, SLOTS * 2, &idx);
        for (uint32_t i = 0; i < done; i++)
            txx.free_frames[txx.nfree++] = *xsk_ring_cons__comp_addr(&txx.comp, idx + i);
        xsk_ring_cons__release(&txx.comp, done);
        txx.pending = done >= txx.pending ? 0 : txx.pending - done;
    }
}

/* Sends the frame made of `nseg` segments, rewriting its Ethernet addresses. */
static void tx_frame(const struct iovec *seg, int nseg, uint32_t len)
{
    uint8_t *dst;
    if (len > MAX_FRAME - TX_DATA_OFF || (tx_kind == TX_XSK && len > XSK_FRAME - XSK_UMEM__DEFAULT_FRAME_HEADROOM)) {
        c.tx_too_big++;
        return;
    }
    struct tpacket2_hdr *h = NULL;
    uint32_t idx = 0;
    if (tx_kind == TX_AFPACKET) {
        h = pslot(&txr, txr.head);
        if (__atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE) != TP_STATUS_AVAILABLE) {
            c.tx_ring_full++;
            return;
        }
        dst = (uint8_t *)h + TX_DATA_OFF;
    } else {
        if (!txx.nfree || xsk_ring_prod__reserve(&txx.tx, 1, &idx) != 1) {
            c.tx_ring_full++;
            return;
        }
        uint64_t addr = txx.free_frames[--txx.nfree];
        struct xdp_desc *d = xsk_ring_prod__tx_desc(&txx.tx, idx);
        d->addr = addr;
        d->len = len;
        d->options = 0;
        dst = xsk_umem__get_data(txx.area, addr);
    }
    uint32_t off = 0;
    for (int i = 0; i < nseg; i++) {
        memcpy(dst + off, seg[i].iov_base, seg[i].iov_len);
        off += (uint32_t)seg[i].iov_len;
    }
    if (len >= 12) {
        memcpy(dst, dst_mac, 6);
        memcpy(dst + 6, src_mac, 6);
    }
    c.tx_frames++;
    if (tx_kind == TX_AFPACKET) {
        h->tp_len = len;
        __atomic_store_n(&h->tp_status, TP_STATUS_SEND_REQUEST, __ATOMIC_RELEASE);
        txr.head++;
        if (++txr.pending >= TX_KICK_AT)
            tx_kick();
    } else {
        xsk_ring_prod__submit(&txx.tx, 1);
        if (++txx.pending >= TX_KICK_AT)
            tx_kick();
    }
}

/* ---- the receive side --------------------------------------------------------------- */

static uint32_t drain_afpacket(struct pring *r)
{
    struct tpacket2_hdr *hdrs[BATCH];
    uint32_t total = 0;
    for (;;) {
        uint32_t n = 0;
        while (n < BATCH) {
            struct tpacket2_hdr *h = pslot(r, r->head + n);
            if (!(__atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER))
                break;
            hdrs[n++] = h;
        }
        if (!n)
            break;
        for (uint32_t i = 0; i < n; i++) {
            struct iovec seg = {(uint8_t *)hdrs[i] + hdrs[i]->tp_mac, hdrs[i]->tp_snaplen};
            c.rx_bytes += seg.iov_len;
            tx_frame(&seg, 1, hdrs[i]->tp_snaplen);
        }
        for (uint32_t i = 0; i < n; i++)
            __atomic_store_n(&hdrs[i]->tp_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
        r->head += n;
        c.rx_frames += n;
        total += n;
    }
    return total;
}

/* Gives copied-out frames back to the fill ring, as many as it has room for. The kernel
 * publishes a receive descriptor before it publishes that it took the frame from the
 * fill ring (xsk_flush: rx producer, then fill consumer), so right after a batch the fill
 * ring can look fuller than it is: what does not fit waits for the next call. */
static void refill(struct xsk *x)
{
    uint32_t n = x->nfree, fidx;
    if (!n)
        return;
    uint32_t room = xsk_prod_nb_free(&x->fill, n);
    if (room < n)
        n = room;
    if (!n || xsk_ring_prod__reserve(&x->fill, n, &fidx) != n)
        return;
    for (uint32_t i = 0; i < n; i++)
        *xsk_ring_prod__fill_addr(&x->fill, fidx + i) = x->free_frames[--x->nfree];
    xsk_ring_prod__submit(&x->fill, n);
}

static uint32_t drain_xsk(struct xsk *x)
{
    uint32_t total = 0;
    struct iovec segs[8];
    for (;;) {
        uint32_t idx, n = xsk_ring_cons__peek(&x->rx, BATCH, &idx);
        /* Multi-buffer: a frame is its descriptors up to one without XDP_PKT_CONTD. Take
         * only whole frames: the rest stays on the ring for the next round. */
        uint32_t m = n;
        while (m && (xsk_ring_cons__rx_desc(&x->rx, idx + m - 1)->options & XDP_PKT_CONTD))
            m--;
        if (!m) {
            if (n == BATCH)
                die("a frame of more than %u descriptors", BATCH);
            xsk_ring_cons__cancel(&x->rx, n);
            break;
        }
        if (m < n)
            xsk_ring_cons__cancel(&x->rx, n - m);
        int nseg = 0;
        uint32_t flen = 0;
        for (uint32_t i = 0; i < m; i++) {
            const struct xdp_desc *d = xsk_ring_cons__rx_desc(&x->rx, idx + i);
            if (nseg < 8)
                segs[nseg] = (struct iovec){xsk_umem__get_data(x->area, d->addr), d->len};
            nseg++; /* past 8 segments (no 9001-byte frame needs 3) the frame is dropped */
            flen += d->len;
            c.rx_bytes += d->len;
            if (!(d->options & XDP_PKT_CONTD)) {
                if (nseg > 1)
                    c.rx_multi_buffer++;
                c.rx_frames++;
                if (nseg <= 8)
                    tx_frame(segs, nseg, flen);
                else
                    c.tx_too_big++;
                nseg = 0;
                flen = 0;
            }
        }
        for (uint32_t i = 0; i < m; i++)
            x->free_frames[x->nfree++] = xsk_umem__extract_addr(xsk_ring_cons__rx_desc(&x->rx, idx + i)->addr);
        xsk_ring_cons__release(&x->rx, m);
        total += m;
        refill(x);
    }
    return total;
}

/* ---- main --------------------------------------------------------------------------- */

static void parse_mac(const char *s, uint8_t mac[6])
{
    unsigned v[6];
    if (sscanf(s, "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6)
        die("bad MAC address %s", s);
    for (int i = 0; i < 6; i++)
        mac[i] = (uint8_t)v[i];
}

static void if_mac(const char *ifname, uint8_t mac[6])
{
    struct ifreq ifr = {0};
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifname);
    if (fd < 0 || ioctl(fd, SIOCGIFHWADDR, &ifr) < 0)
        die("SIOCGIFHWADDR %s: %s", ifname, strerror(errno));
    memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
    close(fd);
}

static void usage(void)
{
    fprintf(stderr, "usage: xfwd --in IF --out IF --dst-mac MAC [--rx afpacket|xdp-drv|xdp-skb]\n"
                    "            [--tx afpacket|xsk] [--seconds N] [--ring N] [--frags|--no-frags]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *in = NULL, *out = NULL, *rx = "afpacket", *tx = "afpacket", *dmac = NULL;
    double seconds = 10;
    uint32_t ring = 2048;
    bool frags = false;
    static const struct option lo[] = {
        {"in", 1, 0, 'i'}, {"out", 1, 0, 'o'}, {"rx", 1, 0, 'r'}, {"tx", 1, 0, 't'},
        {"dst-mac", 1, 0, 'd'}, {"seconds", 1, 0, 's'}, {"ring", 1, 0, 'R'}, {"frags", 0, 0, 'f'},
        {"no-frags", 0, 0, 'F'}, {0, 0, 0, 0}};
    for (int o; (o = getopt_long(argc, argv, "", lo, NULL)) != -1;) {
        switch (o) {
        case 'i': in = optarg; break;
        case 'o': out = optarg; break;
        case 'r': rx = optarg; break;
        case 't': tx = optarg; break;
        case 'd': dmac = optarg; break;
        case 's': seconds = atof(optarg); break;
        case 'R': ring = (uint32_t)strtoul(optarg, NULL, 0); break;
        case 'f': frags = true; break;
        case 'F': frags = false; break; /* the last of the two wins */
        default: usage();
        }
    }
    if (!in || !out || !dmac || seconds <= 0 || seconds > 600 || ring < 64 || (ring & (ring - 1)))
        usage();
    bool rx_xdp = strcmp(rx, "afpacket") != 0;
    if (rx_xdp && strcmp(rx, "xdp-drv") && strcmp(rx, "xdp-skb"))
        usage();
    if (strcmp(tx, "afpacket") && strcmp(tx, "xsk"))
        usage();
    tx_kind = strcmp(tx, "xsk") ? TX_AFPACKET : TX_XSK;
    parse_mac(dmac, dst_mac);
    if_mac(out, src_mac);
    int in_idx = (int)if_nametoindex(in), out_idx = (int)if_nametoindex(out);
    if (!in_idx || !out_idx)
        die("no interface %s or %s here", in, out);

    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    libbpf_set_strict_mode(LIBBPF_STRICT_ALL);

    /* Transmit side first, so that nothing arrives before it can be sent. */
    if (tx_kind == TX_AFPACKET)
        txr = packet_ring(out_idx, false);
    else
        xsk_open(&txx, out, SLOTS, false, 0);

    struct pring rxr = {.fd = -1};
    struct xsk rxx = {0};
    const char *attach_mode = "none";
    int rx_fd;
    if (!rx_xdp) {
        rxr = packet_ring(in_idx, true);
        rx_fd = rxr.fd;
    } else {
        int map_fd = bpf_map_create(BPF_MAP_TYPE_XSKMAP, "xfwd_xsks", sizeof(uint32_t), sizeof(uint32_t), 1, NULL);
        if (map_fd < 0)
            die("XSKMAP: %s", strerror(errno));
        int prog_fd = load_redirect_prog(map_fd, frags);
        xdp_ifindex = in_idx;
        xdp_flags = (strcmp(rx, "xdp-drv") ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE) | XDP_FLAGS_UPDATE_IF_NOEXIST;
        int err = bpf_xdp_attach(in_idx, prog_fd, xdp_flags, NULL);
        if (err)
            die("attaching the XDP program to %s (%s mode): %s", in, rx + 4, strerror(-err));
        xdp_attached = true;
        LIBBPF_OPTS(bpf_xdp_query_opts, q);
        if (bpf_xdp_query(in_idx, 0, &q) == 0)
            attach_mode = q.attach_mode == XDP_ATTACHED_DRV ? "drv" : q.attach_mode == XDP_ATTACHED_SKB ? "skb"
                        : q.attach_mode == XDP_ATTACHED_MULTI ? "multi" : "?";
        xsk_open(&rxx, in, ring, true, frags ? XDP_USE_SG : 0);
        int fd = xsk_socket__fd(rxx.sock);
        uint32_t key = 0;
        if (bpf_map_update_elem(map_fd, &key, &fd, 0) < 0)
            die("XSKMAP update: %s", strerror(errno));
        rx_fd = fd;
    }
    fprintf(stderr, "READY rx=%s tx=%s attach=%s\n", rx, tx, attach_mode);
    fflush(stderr);

    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    uint64_t t0 = now_ns(), deadline = t0 + (uint64_t)(seconds * 1e9);
    while (!stop && now_ns() < deadline) {
        if (rx_xdp)
            refill(&rxx);
        struct pollfd p = {.fd = rx_fd, .events = POLLIN};
        int rc = poll(&p, 1, POLL_MS);
        if (rc < 0 && errno != EINTR)
            die("poll: %s", strerror(errno));
        if (rc <= 0)
            continue;
        uint32_t n = rx_xdp ? drain_xsk(&rxx) : drain_afpacket(&rxr);
        if (n)
            c.rx_wakeups++;
        tx_kick();
    }
    uint64_t t1 = now_ns();
    getrusage(RUSAGE_SELF, &ru1);
    detach_xdp();
    if (!rx_xdp) {
        struct tpacket_stats st;
        socklen_t len = sizeof st;
        if (getsockopt(rxr.fd, SOL_PACKET, PACKET_STATISTICS, &st, &len) == 0)
            c.rx_ring_drops = st.tp_drops;
    } else {
        xsk_stats(&rxx, &c.xsk_rx);
    }
    if (tx_kind == TX_XSK)
        xsk_stats(&txx, &c.xsk_tx);
#define TV(t) ((double)(t).tv_sec + (double)(t).tv_usec / 1e6)
    printf("{\"rx\": \"%s\", \"tx\": \"%s\", \"attach\": \"%s\", \"frags\": %s, \"ring\": %u, "
           "\"seconds\": %.3f, \"user_s\": %.3f, \"sys_s\": %.3f, "
           "\"rx_frames\": %llu, \"rx_bytes\": %llu, \"rx_wakeups\": %llu, \"rx_multi_buffer\": %llu, "
           "\"rx_ring_drops\": %llu, \"tx_frames\": %llu, \"tx_ring_full\": %llu, \"tx_errors\": %llu, "
           "\"tx_too_big\": %llu, \"tx_kicks\": %llu, "
           "\"xsk_rx\": {\"rx_dropped\": %llu, \"rx_ring_full\": %llu, \"rx_fill_ring_empty\": %llu, "
           "\"rx_invalid\": %llu}, \"xsk_tx\": {\"tx_invalid\": %llu, \"tx_ring_empty\": %llu}}\n",
           rx, tx, attach_mode, frags ? "true" : "false", rx_xdp ? ring : SLOTS, (double)(t1 - t0) / 1e9,
           TV(ru1.ru_utime) - TV(ru0.ru_utime), TV(ru1.ru_stime) - TV(ru0.ru_stime),
           (unsigned long long)c.rx_frames, (unsigned long long)c.rx_bytes,
           (unsigned long long)c.rx_wakeups, (unsigned long long)c.rx_multi_buffer,
           (unsigned long long)c.rx_ring_drops, (unsigned long long)c.tx_frames,
           (unsigned long long)c.tx_ring_full, (unsigned long long)c.tx_errors,
           (unsigned long long)c.tx_too_big, (unsigned long long)c.tx_kicks,
           (unsigned long long)c.xsk_rx.rx_dropped, (unsigned long long)c.xsk_rx.rx_ring_full,
           (unsigned long long)c.xsk_rx.rx_fill_ring_empty_descs, (unsigned long long)c.xsk_rx.rx_invalid_descs,
           (unsigned long long)c.xsk_tx.tx_invalid_descs, (unsigned long long)c.xsk_tx.tx_ring_empty_descs);
    fflush(stdout);
    if (rx_xdp) {
        xsk_socket__delete(rxx.sock);
        xsk_umem__delete(rxx.umem);
    }
    if (tx_kind == TX_XSK) {
        xsk_socket__delete(txx.sock);
        xsk_umem__delete(txx.umem);
    }
    return 0;
}
