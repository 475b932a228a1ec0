/* hp_flowlog.c — VPC Flow Logs' reader of the flow table.
 *
 * The flow log collector asks the forwarder every second for the counts of the flows
 * that carried packets since its last question (dataplane/forwarder/flowlogs.py). A
 * full dump would copy every live flow, idle ones too, and a large table of idle flows
 * would cost the forwarder a copy of each per second; this scan copies only the flows
 * last seen at or after `since_ns` (the engine keeps last-seen times in whole seconds,
 * so a flow seen in the second of `since_ns` is copied again: its count has not
 * changed, and the reader's difference is 0). The scan itself touches every slot, a
 * few hundred microseconds for a million.
 */
#include "hp_internal.h"

uint32_t hp_flow_dump_since(const struct hp_engine *e, uint32_t *cursor, uint64_t since_ns,
                            struct hp_flow_info *out, uint32_t max)
{
    uint32_t since_s = (uint32_t)(since_ns / 1000000000ull);
    uint32_t n = 0;
    uint32_t i = *cursor;
    for (; i < e->ft.capacity && n < max; i++)
        if (e->ft.slots[i].live && e->ft.slots[i].last_seen_s >= since_s)
            hp_flow_info_of(e, i, &out[n++]);
    *cursor = i;
    return n;
}
