/* hp_mem.c — errors and memory: the one-sentence error of the last refused control call,
 * and the allocators that account for every byte the engine holds.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "hp_internal.h"

static __thread char create_error[256];

void hp_set_error(struct hp_engine *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e ? e->error : create_error, sizeof create_error, fmt, ap);
    va_end(ap);
}

const char *hp_last_error(const struct hp_engine *e) { return e ? e->error : create_error; }

void *hp_calloc(struct hp_engine *e, size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (p)
        e->bytes_allocated += n * size;
    return p;
}

void hp_free(struct hp_engine *e, void *p, size_t n, size_t size)
{
    if (!p)
        return;
    e->bytes_allocated -= n * size;
    free(p);
}

/* Tables of megabytes (the flow table, its index) come from mmap, advised to use
 * transparent huge pages and touched at once: a million flows span 100 MB, and with 4 KiB
 * pages nearly every lookup would also miss the TLB. Touching now moves the page faults
 * to engine creation instead of the first packets of a million new flows. */
#define HP_TABLE_MMAP_MIN (2u << 20)

void *hp_table_alloc(struct hp_engine *e, size_t n, size_t size)
{
    size_t bytes = (n ? n : 1) * size;
    void *p;
    if (bytes < HP_TABLE_MMAP_MIN) {
        /* cache-line aligned, like the mmap'd ones: a flow or a bucket is one line */
        p = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
        if (!p)
            return NULL;
    } else {
        p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            return NULL;
        madvise(p, bytes, MADV_HUGEPAGE); /* advice only: without THP it is plain pages */
    }
    memset(p, 0, bytes);
    e->bytes_allocated += bytes;
    return p;
}

void hp_table_free(struct hp_engine *e, void *p, size_t n, size_t size)
{
    size_t bytes = (n ? n : 1) * size;
    if (!p)
        return;
    if (bytes < HP_TABLE_MMAP_MIN)
        free(p);
    else
        munmap(p, bytes);
    e->bytes_allocated -= bytes;
}

uint64_t hp_engine_memory(const struct hp_engine *e) { return e->bytes_allocated + sizeof *e; }

/* A copy of `n` elements that the engine owns and accounts for; NULL (error set) when
 * memory runs out. */
void *hp_dup_array(struct hp_engine *e, const void *src, uint32_t n, size_t size, const char *what)
{
    void *copy = hp_calloc(e, n, size);
    if (!copy) {
        hp_set_error(e, "out of memory for %u %s", n, what);
        return NULL;
    }
    if (n)
        memcpy(copy, src, (size_t)n * size);
    return copy;
}
