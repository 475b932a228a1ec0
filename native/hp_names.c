/* hp_names.c — the names and sentences of drop reasons and event counters, generated
 * from the X-macro lists of hp_counters.h, and the build's description.
 */
#include "hp_internal.h"

#ifndef HP_BUILD_INFO
#define HP_BUILD_INFO "unknown"
#endif

struct hp_label {
    const char *name, *text;
};
#define HP_X(e, name, text) {name, text},
static const struct hp_label drop_labels[] = {HP_DROP_REASONS(HP_X)};
static const struct hp_label counter_labels[] = {HP_EVENT_COUNTERS(HP_X)};
#undef HP_X
static const struct hp_label unknown_label = {"?", "?"};

static const struct hp_label *drop_label(uint32_t r)
{
    return r < HP_DROP__COUNT ? &drop_labels[r] : &unknown_label;
}

static const struct hp_label *counter_label(uint32_t c)
{
    return c < HP_CNT__COUNT ? &counter_labels[c] : &unknown_label;
}

uint32_t hp_drop_reason_count(void) { return HP_DROP__COUNT; }
const char *hp_drop_reason_name(uint32_t r) { return drop_label(r)->name; }
const char *hp_drop_reason_text(uint32_t r) { return drop_label(r)->text; }
uint32_t hp_counter_count(void) { return HP_CNT__COUNT; }
const char *hp_counter_name(uint32_t c) { return counter_label(c)->name; }
const char *hp_counter_text(uint32_t c) { return counter_label(c)->text; }
const char *hp_build_info(void) { return HP_BUILD_INFO; }

