/* hp_io.h — the forwarder's packet I/O: AF_PACKET rings on veths, and the poll loop.
 *
 * What it is
 * ----------
 * The engine (hp_engine.h) never touches a socket; this is what feeds it. Each engine
 * port is bound to one network interface (the hyperplane end of an ENI's veth) with one
 * AF_PACKET socket that has a memory-mapped receive ring and a memory-mapped transmit
 * ring, whose frames bypass the qdisc. hp_io_run() is the forwarder's whole data path:
 *
 *     poll all receive sockets → take up to HP_IO_BATCH ready frames of one port →
 *     hp_process() them in place, in the ring → copy each forwarded frame into its out
 *     port's transmit ring → return the receive slots → kick the transmit rings
 *
 * Offloads are carried through, as between a guest and its virtio-net device: every
 * socket has PACKET_VNET_HDR, so each received frame comes with a virtio-net header that
 * says whether its L4 checksum is still partial (CHECKSUM_PARTIAL: a veth carrying
 * locally made traffic) and whether it is a GSO frame (up to one slot of TCP segments in
 * one frame). The engine translates such a frame once and keeps its checksum partial
 * (HP_PKT_CSUM_OFFLOAD), and the frame leaves with a header that asks the kernel to
 * finish the checksum and, on the far side, to cut the segments. A sender must not hand
 * over GSO frames larger than a slot takes (hp_io_max_frame()): the forwarder cuts the size
 * the kernel may use on the devices that transmit into it (netns_setup/offload.py); a
 * larger frame would arrive cut short and is dropped (rx_truncated).
 *
 * Frames larger than a transmit slot (16 KiB: GSO frames) skip the transmit ring: they
 * are sent with sendmsg() straight from their receive slot on a second, ring-less socket,
 * so the kernel copies them once into a fresh skb. Through the ring they would be copied
 * into it, then attached to the skb as the ring's own pages, which a receiver on this
 * host copies once more (skb_copy_ubufs) before delivery; bulk TCP gained 15-40 % in
 * bench/. Queued ring frames of the port are kicked first, so a port's frames leave in
 * order.
 *
 * Ring geometry and polling are set once, before the first port opens
 * (hp_io_configure): slots per ring, slot size (the largest frame), and busy polling,
 * in which the loop keeps reading the rings for a while after the last frame instead of
 * sleeping in poll() at once — a CPU spent for fewer wake-ups and less loss in bursts.
 *
 * Why TPACKET_V2, not V3: a V3 ring hands frames to user space a block at a time, when
 * the block is full or its retire timer (1 ms at the least) fires, so a lone packet
 * waits up to a millisecond. V2 wakes the reader per frame; batching comes from draining
 * every ready frame of a port at each wake-up.
 *
 * How to call it
 * --------------
 * Sockets are created in the caller's network namespace: open the ports from a thread
 * that has entered the hyperplane namespace (the Python side does this with setns).
 *
 *     struct hp_io *io = hp_io_create(engine);
 *     hp_io_port_open(io, 0, ifindex_of_eni0);  ...
 *     hp_io_run(io);                 // in its own thread, until hp_io_stop(io)
 *     hp_io_port_close(io, 0);       // from another thread, while it runs, or after
 *     hp_io_destroy(io);
 *
 * Threading
 * ---------
 * Ports may be opened and closed while the loop runs: it rebuilds its poll set when the
 * set changed. hp_io_port_close() takes the port out under the io lock, then, if the loop
 * runs, waits (woken at once) until the loop's next round has let go of it before its
 * socket closes and its rings are unmapped; so once it returns, the interface may go.
 * Close a port before the engine forgets it (hp_port_remove) and before its interface is
 * deleted; open it after hp_port_set. hp_io_port_close() must not be called with the io
 * lock held, nor from the loop's thread. hp_io_run() holds the io lock while it processes
 * a batch. Any other thread changing
 * the engine's tables takes the same lock (hp_io_lock/hp_io_unlock) first, so changes
 * land between batches, never under one. hp_io_stop() may be called from any thread
 * and wakes the loop at once (an eventfd in its poll set).
 *
 * Time: the loop passes CLOCK_MONOTONIC plus a settable offset (hp_io_set_clock_offset)
 * to the engine, so a test can move the forwarder's clock forward instead of sleeping.
 */
#ifndef HP_IO_H
#define HP_IO_H

#include <stdint.h>

#include "hp_engine.h"

/* cffi:begin */
#define HP_IO_BATCH 64

struct hp_io;

struct hp_io_config {
    uint32_t ring_slots;           /* slots in each ring (receive, transmit); 0: 256 */
    uint32_t slot_size;            /* bytes per receive slot, a power of two, 4 KiB-256 KiB;
                                      0: 64 KiB (transmit slots: 16 KiB, or this if smaller) */
    uint32_t busy_poll_us;         /* read the rings this long after the last frame
                                      before sleeping in poll(); 0: sleep at once */
};

struct hp_io_port_stats {
    uint64_t rx_frames;            /* frames taken from the receive ring */
    uint64_t rx_wakeups;           /* times the port was drained after a poll */
    uint64_t tx_frames;            /* frames sent: into the transmit ring, or direct */
    uint64_t tx_direct;            /* of which large frames sent straight from the receive slot */
    uint64_t tx_ring_full;         /* frames dropped: no free transmit slot or send buffer */
    uint64_t tx_too_big;           /* frames dropped: larger than the out device takes */
    uint64_t tx_errors;            /* failed kicks of the transmit ring */
    uint64_t rx_ring_drops;        /* frames the kernel dropped: the receive ring was full */
    uint64_t rx_truncated;         /* frames dropped: larger than a receive slot */
    uint64_t rx_gso_frames;        /* GSO frames received (several segments in one frame) */
    uint64_t rx_csum_partial;      /* frames received with their L4 checksum still partial */
    uint64_t busy_polls;           /* reads of the receive ring without a poll() wake-up */
};

struct hp_io *hp_io_create(struct hp_engine *engine);
void hp_io_destroy(struct hp_io *io);
const char *hp_io_last_error(const struct hp_io *io);
int hp_io_configure(struct hp_io *io, const struct hp_io_config *cfg);
uint32_t hp_io_max_frame(uint32_t slot_size); /* largest frame a receive slot takes; 0: default */
int hp_io_port_open(struct hp_io *io, uint16_t port, int ifindex);
int hp_io_port_close(struct hp_io *io, uint16_t port);  /* -1: the port is not open */
int hp_io_run(struct hp_io *io);
void hp_io_stop(struct hp_io *io);
void hp_io_lock(struct hp_io *io);
void hp_io_unlock(struct hp_io *io);
void hp_io_set_clock_offset(struct hp_io *io, int64_t offset_ns);
uint64_t hp_io_now_ns(const struct hp_io *io);
int hp_io_port_stats(struct hp_io *io, uint16_t port, struct hp_io_port_stats *out);
/* cffi:end */

#endif
