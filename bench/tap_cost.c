/* tap_cost.c — what the engine's tap (native/hp_tap.c) costs, in ns per packet.
 *
 * bench/test_tap_cost.py compiles this with the engine's sources twice, as the forwarder's
 * engine is compiled (native/build_native.py's flags): once as it is, once with
 * -DHP_NO_TAP (hp_process() without even the test of e->tap), and runs each mode in turn:
 *
 *     tap_cost MODE PACKETS ROUNDS      MODE: off | on | full
 *
 * off: the tap is off (the build decides whether hp_process tests for it at all);
 * on: the tap records every frame (in and out, 60-byte frames whole) and a reader takes
 *     the records every 1,024 packets, as the daemon's polls do: the copy out is counted in;
 * full: the tap is on and nobody reads: after the ring fills, every frame's records are
 *     counted as dropped (the most a reader that fell behind costs).
 * The packets are established UDP flows (1,000, round robin) through a PrivateLink
 * listener with 64 backends, batches of 64 (HP_IO_BATCH), driven by hp_bench_established
 * as bench/test_engine.py does. Prints one line per round: ns per packet.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hp_engine.h"

#define FLOWS 1000u
#define BATCH 64u
#define READ_EVERY 1024u

static uint32_t ip4(int a, int b, int c, int d)
{
    return (uint32_t)a << 24 | (uint32_t)b << 16 | (uint32_t)c << 8 | (uint32_t)d;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Ethernet + IPv4 + UDP, 60 bytes: 10.0.1.10:1024 → 10.0.1.50:53, UDP checksum 0 (none). */
static void frame_of(uint8_t f[60])
{
    static const uint8_t eth[14] = {2, 0, 0, 0, 0, 0xe0, 2, 0, 0, 0, 0, 0xa0, 0x08, 0x00};
    memset(f, 0, 60);
    memcpy(f, eth, 14);
    uint8_t *ip = f + 14;
    ip[0] = 0x45;
    ip[3] = 46;                 /* total length 20 + 8 + 18 */
    ip[8] = 64;
    ip[9] = 17;
    uint32_t s = ip4(10, 0, 1, 10), d = ip4(10, 0, 1, 50);
    for (int i = 0; i < 4; i++) {
        ip[12 + i] = (uint8_t)(s >> (24 - 8 * i));
        ip[16 + i] = (uint8_t)(d >> (24 - 8 * i));
    }
    uint32_t sum = 0;
    for (int i = 0; i < 20; i += 2)
        sum += (uint32_t)ip[i] << 8 | ip[i + 1];
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    ip[10] = (uint8_t)(~sum >> 8);
    ip[11] = (uint8_t)~sum;
    uint8_t *udp = ip + 20;
    udp[0] = 1024 >> 8;
    udp[3] = 53;
    udp[5] = 26;
}

int main(int argc, char **argv)
{
    if (argc != 4 || (strcmp(argv[1], "off") && strcmp(argv[1], "on") && strcmp(argv[1], "full"))) {
        fprintf(stderr, "usage: tap_cost off|on|full PACKETS ROUNDS\n");
        return 2;
    }
    const char *mode = argv[1];
    uint64_t packets = strtoull(argv[2], NULL, 10);
    int rounds = atoi(argv[3]);
    struct hp_engine_config cfg = {.flow_capacity = 4096};
    struct hp_engine *e = hp_engine_create(&cfg);
    struct hp_port_config ep = {.mac = {2, 0, 0, 0, 0, 0xe0}, .peer_mac = {2, 0, 0, 0, 0, 0xa0},
                                .addrs = {ip4(10, 0, 1, 50)}, .n_addrs = 1};
    struct hp_port_config nlb = {.mac = {2, 0, 0, 0, 0, 0xe1}, .peer_mac = {2, 0, 0, 0, 0, 0xa1},
                                 .addrs = {ip4(10, 0, 1, 100)}, .n_addrs = 1};
    struct hp_service_config svc = {.in_port = 0, .out_port = 1, .vip = ip4(10, 0, 1, 50),
                                    .vport = 53, .proto = 17};
    struct hp_backend backends[64];
    for (int i = 0; i < 64; i++)
        backends[i] = (struct hp_backend){.ip = ip4(10, 0, 2, i + 1), .port = 53, .weight = 1};
    int sid;
    if (!e || hp_port_set(e, 0, &ep) || hp_port_set(e, 1, &nlb) ||
        (sid = hp_service_add(e, &svc)) < 0 || hp_service_set_backends(e, sid, backends, 64)) {
        fprintf(stderr, "tap_cost: engine set-up failed: %s\n", hp_last_error(e));
        return 1;
    }
    uint8_t frame[60];
    frame_of(frame);
    if (hp_bench_new_flows(e, 0, frame, sizeof frame, 0, BATCH, FLOWS, 0) != FLOWS) {
        fprintf(stderr, "tap_cost: the flows were not created\n");
        return 1;
    }
    bool on = strcmp(mode, "off") != 0, reader = strcmp(mode, "on") == 0;
    struct hp_tap_config tap = {.port = HP_TAP_ALL_PORTS};
    if (on && hp_tap_enable(e, &tap)) {
        fprintf(stderr, "tap_cost: %s\n", hp_last_error(e));
        return 1;
    }
    static struct hp_tap_record recs[2 * READ_EVERY];
    static uint8_t data[2 * READ_EVERY * 64];
    for (int r = 0; r < rounds; r++) {
        uint64_t t0 = now_ns(), forwarded = 0;
        for (uint64_t done = 0; done < packets; done += READ_EVERY) {
            forwarded += hp_bench_established(e, 0, frame, sizeof frame, FLOWS, BATCH, READ_EVERY, 0);
            if (reader)
                hp_tap_read(e, recs, data, sizeof data, 2 * READ_EVERY);
        }
        uint64_t t1 = now_ns();
        if (forwarded != (packets + READ_EVERY - 1) / READ_EVERY * READ_EVERY) {
            fprintf(stderr, "tap_cost: %llu of the packets were forwarded\n",
                    (unsigned long long)forwarded);
            return 1;
        }
        printf("%.3f\n", (double)(t1 - t0) / (double)forwarded);
    }
    struct hp_tap_stats st;
    hp_tap_stats(e, &st);
    fprintf(stderr, "tap: kept %llu dropped %llu\n", (unsigned long long)st.kept,
            (unsigned long long)st.dropped);
    hp_engine_destroy(e);
    return 0;
}
