/* hp_bench.c — benchmark drivers that loop in C.
 *
 * A benchmark that called hp_process() from Python once per batch would measure the
 * Python call (about a microsecond) more than the engine. These drivers take one
 * template frame (Ethernet + IPv4 + TCP/UDP, no VLAN tag), and per packet:
 *   1. copy it into a batch slot (as a receive ring would hand a frame over),
 *   2. give it flow number i's source: port 1024 + i % 60000, address template + i / 60000,
 *      with the IPv4 and L4 checksums updated incrementally,
 *   3. run hp_process() once per batch.
 * The copy and the patch (a few ns per packet) are part of what is measured; the
 * numbers are an upper bound on the engine's own cost.
 */
#include <stdlib.h>
#include <string.h>

#include "hp_csum.h"
#include "hp_internal.h"

#define FLOWS_PER_ADDR 60000u
/* Bytes after each frame of a batch, as a receive slot has: room for a PROXY v2 header. */
#define ROOM 256u

static void set_flow(uint8_t *frame, uint32_t flow)
{
    uint8_t *ip = frame + 14;
    uint8_t *l4 = ip + (ip[0] & 0x0f) * 4;
    uint32_t coff = ip[9] == IPPROTO_TCP_ ? 16 : 6;
    uint32_t old_ip = hp_load32(ip + 12), new_ip = old_ip + flow / FLOWS_PER_ADDR;
    uint16_t old_port = hp_load16(l4), new_port = (uint16_t)(1024 + flow % FLOWS_PER_ADDR);
    uint32_t delta = hp_csum_delta32(old_ip, new_ip);
    hp_store16(ip + 10, hp_csum_apply(hp_load16(ip + 10), delta));
    hp_store32(ip + 12, new_ip);
    uint16_t check = hp_load16(l4 + coff);
    if (check != 0 || ip[9] == IPPROTO_TCP_)
        hp_store16(l4 + coff, hp_csum_apply(check, delta + hp_csum_delta16(old_port, new_port)));
    hp_store16(l4, new_port);
}

static uint64_t run(struct hp_engine *e, uint16_t port, const uint8_t *frame, uint32_t len,
                    uint32_t batch, uint64_t packets, uint64_t now_ns, uint32_t first,
                    uint32_t span)
{
    if (batch == 0 || len < 54 || span == 0)
        return 0;
    uint32_t stride = len + ROOM;
    uint8_t *buf = malloc((size_t)batch * stride);
    struct hp_pkt *pkts = calloc(batch, sizeof *pkts);
    uint64_t forwarded = 0;
    uint32_t flow = 0;
    for (uint64_t done = 0; buf && pkts && done < packets;) {
        uint32_t n = packets - done < batch ? (uint32_t)(packets - done) : batch;
        for (uint32_t i = 0; i < n; i++) {
            uint8_t *f = buf + (size_t)i * stride;
            memcpy(f, frame, len);
            set_flow(f, first + flow);
            flow = flow + 1 == span ? 0 : flow + 1;
            pkts[i].data = f;
            pkts[i].len = len;
            pkts[i].cap = stride;
            pkts[i].flags = 0;
        }
        hp_process(e, port, pkts, n, now_ns);
        for (uint32_t i = 0; i < n; i++)
            forwarded += pkts[i].verdict == HP_VERDICT_FORWARD;
        done += n;
    }
    free(buf);
    free(pkts);
    return forwarded;
}

/* Packets of flows first..first+n_flows-1, round robin: with the flows created
 * beforehand, every packet takes the established path. */
uint64_t hp_bench_established(struct hp_engine *e, uint16_t port, const uint8_t *frame,
                              uint32_t len, uint32_t n_flows, uint32_t batch,
                              uint64_t packets, uint64_t now_ns)
{
    return run(e, port, frame, len, batch, packets, now_ns, 0, n_flows);
}

/* One packet for each of flows first_flow..first_flow+flows-1: every packet a new flow. */
uint64_t hp_bench_new_flows(struct hp_engine *e, uint16_t port, const uint8_t *frame,
                            uint32_t len, uint32_t first_flow, uint32_t batch,
                            uint64_t flows, uint64_t now_ns)
{
    return run(e, port, frame, len, batch, flows, now_ns, first_flow,
               flows > UINT32_MAX ? UINT32_MAX : (uint32_t)flows);
}
