/* hp_tap.c — taps inside the Hyperplane: what the engine saw and what it sent.
 *
 * A tap is a bounded ring of records that hp_process() fills only while it is enabled
 * (hp_tap_enable). Each frame handed to the engine gives up to two records, kept side
 * by side:
 *
 *     in   the frame as it arrived, on the port it arrived on,
 *     out  the frame as it leaves, after translation (a forward, or the ARP reply or RST
 *          built in its place), on the port it leaves by;
 *
 * both carry the frame's verdict and drop reason, the engine's time, the frame's length
 * and the first `snaplen` bytes of it. A dropped frame has its in record only, with the
 * reason it was dropped.
 *
 * When the copies are taken. The engine rewrites frames in place, and its pipeline
 * (hp_process.c) runs a frame's stages up to 2 * HP_PIPE_DISTANCE frames apart: stage 1
 * (classify: an ARP reply is built there) and stage 3 (act: NAT, PROXY v2, RSTs). So the
 * in copy is taken before stage 1 (hp_tap_in) into one of HP_TAP_PENDING pending slots,
 * indexed by the frame's place in the batch, and the records are written when the frame
 * is finished (hp_tap_done), in and out together: a frame's records are never split by
 * a full ring, and the pair is adjacent in the ring. HP_TAP_PENDING (64) is more than the
 * 2 * HP_PIPE_DISTANCE + 1 frames in flight; each slot remembers which frame it holds,
 * so a pipeline made deeper than that loses in records (counted as dropped) rather than
 * mixing frames up.
 *
 * No cost when off: hp_process() tests e->tap, one pointer in the engine's first cache
 * lines, in two places per frame (HP_TAP_HOOK, a branch predicted not taken); building
 * with -DHP_NO_TAP removes even that, which is how bench/test_tap_cost.py measures it.
 *
 * Ring full: the frame's records are not kept and counted (tap_dropped: on the port the
 * frame arrived on, and in hp_tap_stats), never waited for: the data path never blocks
 * on a reader.
 *
 * Reading: a control call between batches, not a lock-free ring. hp_tap_read() is called
 * like every other control call, with the forwarder's io lock held (hp_io.h), so the ring
 * is only ever touched by one thread at a time and needs no atomics or memory barriers in
 * the data path, and the tap's memory can be freed by hp_tap_disable() with no reader or
 * writer left holding it. The price is that the loop waits while a read copies records
 * out; a read is bounded by the caller's `max` records and buffer, and the reader (the
 * forwarder daemon, dataplane/forwarder/tap.py) polls a few times a second, so the loop
 * waits microseconds per poll. A single-producer/single-consumer ring would save that
 * wait but needs acquire/release ordering on every record the data path writes, and a
 * second way to agree when the memory may go.
 */
#include <string.h>

#include "hp_internal.h"

#define HP_TAP_DEFAULT_RING 4096u
#define HP_TAP_MAX_RING (1u << 20)
#define HP_TAP_DEFAULT_SNAPLEN 2048u
#define HP_TAP_MIN_SNAPLEN 64u
#define HP_TAP_MAX_SNAPLEN 262144u       /* the largest receive slot (hp_io.h) */
#define HP_TAP_MAX_BYTES (256ull << 20)  /* ring * snaplen: a bound on what a tap may hold */

struct hp_tap_pending {
    uint32_t frame;         /* the frame's place in its batch */
    uint32_t len;           /* its length as it arrived */
    bool held;              /* the slot holds that frame's in copy */
};

struct hp_tap {
    struct hp_tap_config cfg;
    uint32_t mask;                      /* cfg.ring - 1: indices are free-running */
    uint32_t head, tail;                /* next record to write, next to read */
    uint64_t kept, dropped;
    struct hp_tap_record *records;      /* cfg.ring of them */
    uint8_t *data;                      /* cfg.ring * cfg.snaplen: record i's bytes at i * snaplen */
    uint8_t *pending_data;              /* HP_TAP_PENDING * cfg.snaplen */
    struct hp_tap_pending pending[HP_TAP_PENDING];
};

static void tap_free(struct hp_engine *e, struct hp_tap *t)
{
    hp_free(e, t->records, t->cfg.ring, sizeof *t->records);
    hp_free(e, t->data, t->cfg.ring, t->cfg.snaplen);
    hp_free(e, t->pending_data, HP_TAP_PENDING, t->cfg.snaplen);
    hp_free(e, t, 1, sizeof *t);
}

int hp_tap_enable(struct hp_engine *e, const struct hp_tap_config *cfg_in)
{
    struct hp_tap_config cfg = *cfg_in;
    if (e->tap) {
        hp_set_error(e, "the tap is already on; disable it first (one reader at a time)");
        return -1;
    }
    if (!cfg.ring) cfg.ring = HP_TAP_DEFAULT_RING;
    if (!cfg.snaplen) cfg.snaplen = HP_TAP_DEFAULT_SNAPLEN;
    if (!cfg.stages) cfg.stages = HP_TAP_IN | HP_TAP_OUT;
    if (cfg.ring & (cfg.ring - 1) || cfg.ring > HP_TAP_MAX_RING) {
        hp_set_error(e, "tap ring must be a power of two up to %u records, not %u",
                     HP_TAP_MAX_RING, cfg.ring);
        return -1;
    }
    if (cfg.snaplen < HP_TAP_MIN_SNAPLEN || cfg.snaplen > HP_TAP_MAX_SNAPLEN) {
        hp_set_error(e, "tap snaplen must be between %u and %u bytes, not %u",
                     HP_TAP_MIN_SNAPLEN, HP_TAP_MAX_SNAPLEN, cfg.snaplen);
        return -1;
    }
    if ((uint64_t)cfg.ring * cfg.snaplen > HP_TAP_MAX_BYTES) {
        hp_set_error(e, "tap ring of %u records of %u bytes is over %llu MiB; take fewer or shorter",
                     cfg.ring, cfg.snaplen, HP_TAP_MAX_BYTES >> 20);
        return -1;
    }
    if (cfg.stages & ~(HP_TAP_IN | HP_TAP_OUT)) {
        hp_set_error(e, "tap stages are HP_TAP_IN, HP_TAP_OUT or both, not 0x%x", cfg.stages);
        return -1;
    }
    if (cfg.port != HP_TAP_ALL_PORTS && cfg.port >= e->cfg.max_ports) {
        hp_set_error(e, "tap port %u is out of range (0-%u, or HP_TAP_ALL_PORTS)", cfg.port,
                     e->cfg.max_ports - 1);
        return -1;
    }
    struct hp_tap *t = hp_calloc(e, 1, sizeof *t);
    if (!t) {
        hp_set_error(e, "out of memory for the tap");
        return -1;
    }
    t->cfg = cfg;
    t->mask = cfg.ring - 1;
    t->records = hp_calloc(e, cfg.ring, sizeof *t->records);
    t->data = hp_calloc(e, cfg.ring, cfg.snaplen);
    t->pending_data = hp_calloc(e, HP_TAP_PENDING, cfg.snaplen);
    if (!t->records || !t->data || !t->pending_data) {
        tap_free(e, t);
        hp_set_error(e, "out of memory for a tap of %u records of %u bytes", cfg.ring, cfg.snaplen);
        return -1;
    }
    e->tap = t;
    return 0;
}

int hp_tap_disable(struct hp_engine *e)
{
    if (!e->tap) {
        hp_set_error(e, "the tap is not on");
        return -1;
    }
    tap_free(e, e->tap);
    e->tap = NULL;
    return 0;
}

void hp_tap_release(struct hp_engine *e)
{
    if (e->tap)
        hp_tap_disable(e);
}

int hp_tap_stats(const struct hp_engine *e, struct hp_tap_stats *out)
{
    const struct hp_tap *t = e->tap;
    memset(out, 0, sizeof *out);
    if (!t)
        return 0;
    out->enabled = 1;
    out->pending = t->head - t->tail;
    out->kept = t->kept;
    out->dropped = t->dropped;
    out->ring = t->cfg.ring;
    out->snaplen = t->cfg.snaplen;
    return 0;
}

uint32_t hp_tap_read(struct hp_engine *e, struct hp_tap_record *out, uint8_t *data,
                     uint32_t data_cap, uint32_t max)
{
    struct hp_tap *t = e->tap;
    uint32_t n = 0, used = 0;
    while (t && n < max && t->tail != t->head) {
        const struct hp_tap_record *r = &t->records[t->tail & t->mask];
        if (r->cap_len > data_cap - used)
            break;
        out[n] = *r;
        out[n].data_offset = used;
        memcpy(data + used, t->data + (size_t)(t->tail & t->mask) * t->cfg.snaplen, r->cap_len);
        used += r->cap_len;
        n++;
        t->tail++;
    }
    return n;
}

/* ---- the data path's side: hp_process() calls these through HP_TAP_HOOK -------------- */

void hp_tap_in(struct hp_engine *e, uint32_t frame, const struct hp_pkt *pkt)
{
    struct hp_tap *t = e->tap;
    uint32_t s = frame % HP_TAP_PENDING;
    if (!(t->cfg.stages & HP_TAP_IN) || t->head - t->tail == t->cfg.ring) {
        /* nothing to keep, or no room until the next read (never inside a batch): the
         * frame's records will be counted as dropped without copying it first */
        t->pending[s].held = false;
        return;
    }
    uint32_t n = pkt->len < t->cfg.snaplen ? pkt->len : t->cfg.snaplen;
    memcpy(t->pending_data + (size_t)s * t->cfg.snaplen, pkt->data, n);
    t->pending[s] = (struct hp_tap_pending){.frame = frame, .len = pkt->len, .held = true};
}

static void put(struct hp_tap *t, uint8_t stage, uint16_t port, uint32_t frame_len,
                const uint8_t *bytes, const struct hp_pkt *pkt, uint64_t now_ns)
{
    uint32_t i = t->head++ & t->mask;
    uint32_t n = frame_len < t->cfg.snaplen ? frame_len : t->cfg.snaplen;
    t->records[i] = (struct hp_tap_record){
        .ts_ns = now_ns, .orig_len = frame_len, .cap_len = n, .port = port,
        .stage = stage, .verdict = pkt->verdict, .drop_reason = pkt->drop_reason};
    memcpy(t->data + (size_t)i * t->cfg.snaplen, bytes, n);
    t->kept++;
}

void hp_tap_done(struct hp_engine *e, uint16_t in_port, uint32_t frame, const struct hp_pkt *pkt)
{
    struct hp_tap *t = e->tap;
    struct hp_tap_pending *pend = &t->pending[frame % HP_TAP_PENDING];
    bool sent = pkt->verdict != HP_VERDICT_DROP;
    uint16_t out_port = sent ? pkt->out_port : in_port;
    if (t->cfg.port != HP_TAP_ALL_PORTS && t->cfg.port != in_port && t->cfg.port != out_port)
        return;
    bool held = pend->held && pend->frame == frame;
    pend->held = false;
    bool want_in = t->cfg.stages & HP_TAP_IN;
    bool want_out = (t->cfg.stages & HP_TAP_OUT) && sent;
    bool in = want_in && held;
    uint32_t lost = want_in && !held; /* cannot happen while the pipeline fits (above) */
    if (t->head - t->tail + in + want_out > t->cfg.ring) {
        lost += in + want_out;        /* all or nothing for the frame's pair */
        in = want_out = false;
    }
    if (lost) {
        t->dropped += lost;
        e->ports[in_port].counters[HP_CNT_TAP_DROPPED] += lost;
    }
    if (in)
        put(t, HP_TAP_IN, in_port, pend->len,
            t->pending_data + (size_t)(frame % HP_TAP_PENDING) * t->cfg.snaplen, pkt, e->now_ns);
    if (want_out)
        put(t, HP_TAP_OUT, out_port, pkt->len, pkt->data, pkt, e->now_ns);
}
