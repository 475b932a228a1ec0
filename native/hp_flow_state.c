/* hp_flow_state.c — flows that outlive the forwarder process.
 *
 * Hyperplane keeps a connection's state when a node is lost; vpclab's forwarder keeps its
 * flow table's slots in a file on tmpfs (/run/vpclab/<lab>/flows), mapped shared, so that
 * a forwarder restarted after a crash or a `kill -9` maps the same slots again:
 *
 *     [header, one page: magic, layout version, flow size, capacity, generation,
 *      the service generation] [capacity × struct hp_flow] [capacity × struct hp_flow_ext]
 *
 * Only the slots are kept: the index, the free list and the counts are rebuilt from them
 * (hp_flow_reindex), so a process killed half-way through an insert leaves at worst one
 * flow that does not come back, never an index that lies. The SNAT port state needs
 * nothing of its own: a port is taken exactly when a flow's backend-side key holds it.
 *
 * Flows name their service by id, and ids are the engine's order of installation. The
 * caller keeps the record of which service each id was (the daemon writes it beside the
 * file after every change) and passes `remap` (old id → new id, -1: gone) with the
 * service generation that record was made at; the header says the generation at the
 * moment the old forwarder died. If they differ, or the layout, flow size or capacity
 * differ, the file is started afresh and the report says why. Per-port counters and the
 * expired-flows ring are not kept: they start at zero with the new process.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hp_internal.h"

static size_t file_bytes(uint32_t capacity)
{
    return HP_FLOW_STATE_HEADER + (size_t)capacity * (sizeof(struct hp_flow) + sizeof(struct hp_flow_ext));
}

void hp_flow_state_note_services(struct hp_engine *e)
{
    e->svc_generation++;
    if (e->flow_state)
        e->flow_state->svc_generation = e->svc_generation;
}

uint64_t hp_engine_service_generation(const struct hp_engine *e) { return e->svc_generation; }

void hp_flow_state_release(struct hp_engine *e)
{
    struct hp_flow_table *ft = &e->ft;
    munmap(ft->shared_map, ft->shared_bytes);
    e->bytes_allocated -= ft->shared_bytes;
    ft->shared_map = NULL;
    ft->shared_bytes = 0;
    ft->slots = NULL;
    ft->ext = NULL;
    e->flow_state = NULL;
}

/* Why the file at `fd` (of `size` bytes) cannot be resumed, or NULL when it can. */
static const char *mismatch(const struct hp_engine *e, const struct hp_flow_state_header *h,
                            off_t size, const int32_t *remap, uint64_t expected_svc_generation)
{
    if (size == 0)
        return "no earlier flow state";
    if (size != (off_t)file_bytes(e->ft.capacity) || memcmp(h->magic, HP_FLOW_STATE_MAGIC, 8) != 0)
        return "the file is not a flow state of this size";
    if (h->layout_version != HP_FLOW_STATE_VERSION || h->flow_size != sizeof(struct hp_flow) ||
        h->header_size != HP_FLOW_STATE_HEADER)
        return "the file's layout is another version's";
    if (h->capacity != e->ft.capacity)
        return "the file holds another flow capacity";
    if (!remap)
        return "no record of the earlier forwarder's services";
    if (h->svc_generation != expected_svc_generation)
        return "the services changed after the last record of them";
    return NULL;
}

int hp_flow_state_attach(struct hp_engine *e, const char *path, const int32_t *remap,
                         uint32_t n_remap, uint64_t expected_svc_generation,
                         struct hp_flow_state_report *out)
{
    struct hp_flow_table *ft = &e->ft;
    memset(out, 0, sizeof *out);
    if (ft->shared_map) {
        hp_set_error(e, "the flow table is already kept in a file");
        return -1;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        hp_set_error(e, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    size_t bytes = file_bytes(ft->capacity);
    void *map = MAP_FAILED;
    const char *why = NULL;
    if (fstat(fd, &st) != 0)
        goto fail;
    if (st.st_size == (off_t)bytes) {
        map = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (map == MAP_FAILED)
            goto fail;
    }
    why = mismatch(e, map == MAP_FAILED ? NULL : map, map == MAP_FAILED ? st.st_size : (off_t)bytes,
                   remap, expected_svc_generation);
    if (why && map == MAP_FAILED && st.st_size == (off_t)bytes)
        why = "the file could not be mapped";
    struct hp_flow_state_header *h = map;
    if (why) {
        /* Start afresh: a file of the right size, zeroed, holding this engine's slots. */
        if (map != MAP_FAILED)
            munmap(map, bytes);
        if (ftruncate(fd, 0) != 0 || ftruncate(fd, (off_t)bytes) != 0)
            goto fail;
        map = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (map == MAP_FAILED)
            goto fail;
        h = map;
        memcpy(h->magic, HP_FLOW_STATE_MAGIC, 8);
        h->layout_version = HP_FLOW_STATE_VERSION;
        h->flow_size = sizeof(struct hp_flow);
        h->capacity = ft->capacity;
        h->header_size = HP_FLOW_STATE_HEADER;
        h->generation = 0;
        memcpy((char *)map + HP_FLOW_STATE_HEADER, ft->slots, (size_t)ft->capacity * sizeof *ft->slots);
        memcpy((char *)map + HP_FLOW_STATE_HEADER + (size_t)ft->capacity * sizeof *ft->slots, ft->ext,
               (size_t)ft->capacity * sizeof *ft->ext);
        out->fresh = 1;
        snprintf(out->reason, sizeof out->reason, "%s", why);
    }
    close(fd);
    hp_table_free(e, ft->slots, ft->capacity, sizeof *ft->slots);
    hp_table_free(e, ft->ext, ft->capacity, sizeof *ft->ext);
    ft->slots = (struct hp_flow *)((char *)map + HP_FLOW_STATE_HEADER);
    ft->ext = (struct hp_flow_ext *)(ft->slots + ft->capacity);
    ft->shared_map = map;
    ft->shared_bytes = bytes;
    e->bytes_allocated += bytes;
    e->flow_state = h;
    h->generation++;
    h->svc_generation = e->svc_generation;
    out->generation = h->generation;
    if (!why) {
        /* Resume: each flow's service by its new id, ports that still exist, then the
         * index and free list from the slots. */
        for (uint32_t i = 0; i < ft->capacity; i++) {
            struct hp_flow *f = &ft->slots[i];
            if (!f->live)
                continue;
            int32_t sid = f->service < n_remap ? remap[f->service] : -1;
            if (sid < 0 || (uint32_t)sid >= e->cfg.max_services || !e->services[sid].present ||
                f->in_port >= e->cfg.max_ports || f->out_port >= e->cfg.max_ports ||
                !e->ports[f->in_port].present || !e->ports[f->out_port].present ||
                ((f->flags & HP_FLOW_PROXY) && !e->services[sid].proxy_len)) {
                memset(f, 0, sizeof *f);
                memset(&ft->ext[i], 0, sizeof ft->ext[i]);
                out->dropped++;
                continue;
            }
            f->service = (uint16_t)sid;
        }
        out->dropped += hp_flow_reindex(e);
        out->resumed = ft->count;
    }
    return 0;
fail:
    hp_set_error(e, "flow state %s: %s", path, strerror(errno));
    if (map != MAP_FAILED)
        munmap(map, bytes);
    close(fd);
    return -1;
}
