/* Vendor-style firmware: replays every golden script on the embedded kernel (in a static
 * buffer, no allocator), prints the state hashes over semihosting, and exits non-zero on any
 * mismatch. Then measures the peak stack of a search and of a state hash on a 256 x 16
 * kernel by stack painting. The same file builds for the host (a quick check of the data). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "valori.h"
#ifndef FOOTPRINT_ONLY
#include "vectors.h"
#endif

#ifndef KERNEL_MEM_BYTES
#define KERNEL_MEM_BYTES (1536u * 1024u)
#endif

/* The caller's memory for the kernel: the only RAM valori uses besides the stack. */
static union {
    uint64_t align;
    unsigned char bytes[KERNEL_MEM_BYTES];
} kernel_mem;

#ifndef FOOTPRINT_ONLY
static void print_hash(const uint8_t *h) {
    int i;
    for (i = 0; i < 32; i++) printf("%02x", h[i]);
}

static int run_script(const script_t *s, int *skipped) {
    size_t need = 0, n = 0;
    valori_kernel *k = NULL;
    uint8_t hash[32];
    valori_hit hits[64];
    valori_hop hops[64];
    uint32_t i, j;
    int rc;

    if (s->skip != NULL) {
        printf("SKIP %s (%s)\n", s->name, s->skip);
        (*skipped)++;
        return 0;
    }
    if (valori_kernel_mem_size(&s->cfg, &need) != VALORI_OK) return 1;
    if (need > sizeof kernel_mem.bytes) {
        printf("SKIP %s (needs %lu bytes of kernel memory, %lu available)\n", s->name,
               (unsigned long)need, (unsigned long)sizeof kernel_mem.bytes);
        (*skipped)++;
        return 0;
    }
    if (valori_kernel_init(&s->cfg, kernel_mem.bytes, sizeof kernel_mem.bytes, &k) != VALORI_OK) return 1;
    valori_kernel_state_hash(k, hash);
    if (memcmp(hash, s->initial_hash, 32) != 0) {
        printf("MISMATCH %s initial hash\n", s->name);
        return 1;
    }
    for (i = 0; i < s->nsteps; i++) {
        const step_t *st = &s->steps[i];
        if (st->kind == STEP_COMMAND) {
            rc = valori_kernel_apply(k, st->cmd, st->cmd_len);
            valori_kernel_state_hash(k, hash);
            if ((rc & 0xff) != st->expect_rc || memcmp(hash, st->hash, 32) != 0) {
                printf("MISMATCH %s step %lu: rc %d (expected %d), hash ", s->name, (unsigned long)i, rc, st->expect_rc);
                print_hash(hash);
                printf("\n");
                return 1;
            }
        } else if (st->kind == STEP_SEARCH) {
            rc = valori_kernel_search_raw(k, st->query, st->query_dim, st->k, st->has_tag ? &st->tag : NULL,
                                          hits, 64, &n);
            if ((rc & 0xff) != st->expect_rc || (rc == VALORI_OK && n != st->nresults)) {
                printf("MISMATCH %s step %lu: search rc %d n %lu\n", s->name, (unsigned long)i, rc, (unsigned long)n);
                return 1;
            }
            for (j = 0; rc == VALORI_OK && j < n; j++) {
                if (hits[j].id != st->hit_ids[j] || hits[j].distance_raw_hi != st->hit_hi[j] ||
                    hits[j].distance_raw_lo != st->hit_lo[j]) {
                    printf("MISMATCH %s step %lu: hit %lu\n", s->name, (unsigned long)i, (unsigned long)j);
                    return 1;
                }
            }
        } else {
            uint32_t kind = (uint32_t)st->kind_filter;
            rc = valori_kernel_traverse(k, st->start, st->hops, st->direction,
                                        st->kind_filter < 0 ? NULL : &kind, hops, st->max, &n);
            if ((rc & 0xff) != st->expect_rc || (rc == VALORI_OK && n != st->nresults)) {
                printf("MISMATCH %s step %lu: traverse rc %d n %lu\n", s->name, (unsigned long)i, rc, (unsigned long)n);
                return 1;
            }
            for (j = 0; rc == VALORI_OK && j < n; j++) {
                if (hops[j].depth != st->hop_pairs[2 * j] || hops[j].node != st->hop_pairs[2 * j + 1]) {
                    printf("MISMATCH %s step %lu: hop %lu\n", s->name, (unsigned long)i, (unsigned long)j);
                    return 1;
                }
            }
        }
    }
    if (memcmp(hash, s->final_hash, 32) != 0) return 1;
    printf("HASH %s ", s->name);
    print_hash(hash);
    printf("\n");
    return 0;
}

#endif /* FOOTPRINT_ONLY */

#ifdef __arm__
/* Stack painting: fill the unused stack below the current frame, run an operation, and find
 * the deepest word it overwrote. */
#define PAINT_BYTES (12u * 1024u)
#define PAINT_WORD 0xA5A5A5A5u

static __attribute__((noinline)) uintptr_t current_sp(void) {
    uintptr_t sp;
    __asm volatile("mov %0, sp" : "=r"(sp));
    return sp;
}

static __attribute__((noinline)) void paint(uintptr_t top) {
    volatile uint32_t *p = (volatile uint32_t *)(top - PAINT_BYTES);
    while ((uintptr_t)p < top - 256) *p++ = PAINT_WORD;
}

static uint32_t used_below(uintptr_t top) {
    volatile uint32_t *p = (volatile uint32_t *)(top - PAINT_BYTES);
    while ((uintptr_t)p < top - 256 && *p == PAINT_WORD) p++;
    return (uint32_t)(top - (uintptr_t)p);
}

static int measure_stack(void) {
    valori_kernel_config cfg;
    valori_kernel *k = NULL;
    float v[16], q[16];
    uint64_t id;
    uint8_t hash[32];
    valori_hit hits[10];
    size_t need = 0, n = 0;
    uintptr_t top;
    uint32_t i, j, search_bytes, hash_bytes;

    memset(&cfg, 0, sizeof cfg);
    cfg.dim = 16; cfg.metric = VALORI_METRIC_L2; cfg.max_records = 256; cfg.max_nodes = 1; cfg.max_edges = 1;
    if (valori_kernel_mem_size(&cfg, &need) != VALORI_OK || need > sizeof kernel_mem.bytes) return 1;
    if (valori_kernel_init(&cfg, kernel_mem.bytes, sizeof kernel_mem.bytes, &k) != VALORI_OK) return 1;
    for (i = 0; i < 256; i++) {
        for (j = 0; j < 16; j++) v[j] = (float)((i * 31 + j * 7) % 97) / 8.0f - 6.0f;
        if (valori_kernel_insert(k, v, 16, NULL, NULL, 0, &id) != VALORI_OK) return 1;
    }
    for (j = 0; j < 16; j++) q[j] = 0.5f;
    top = current_sp();
    paint(top);
    if (valori_kernel_search(k, q, 16, 10, NULL, hits, 10, &n) != VALORI_OK || n != 10) return 1;
    search_bytes = used_below(top);
    paint(top);
    if (valori_kernel_state_hash(k, hash) != VALORI_OK) return 1;
    hash_bytes = used_below(top);
    printf("KERNEL_MEM 256x16 %lu bytes\n", (unsigned long)need);
    printf("STACK search %lu bytes\n", (unsigned long)search_bytes);
    printf("STACK state_hash %lu bytes\n", (unsigned long)hash_bytes);
    return 0;
}

void valori_on_panic(void) {
    printf("valori panicked\n");
    exit(3);
}
#endif

#ifdef FOOTPRINT_ONLY
/* Footprint build: valori with a 256 x 16 kernel, insert, search and hash, no golden data. */
static const unsigned golden_script_count = 0;
#endif

int main(void) {
    int failures = 0, skipped = 0;
#ifdef __arm__
    extern void initialise_monitor_handles(void);
    initialise_monitor_handles();
#endif
    printf("valori %s firmware: %u golden scripts\n", valori_libversion(), golden_script_count);
#ifndef FOOTPRINT_ONLY
    unsigned i;
    for (i = 0; i < golden_script_count; i++) {
        if (run_script(&golden_scripts[i], &skipped) != 0) {
            printf("FAIL %s\n", golden_scripts[i].name);
            failures++;
        }
    }
#endif
#ifdef __arm__
    if (measure_stack() != 0) {
        printf("FAIL stack measurement\n");
        failures++;
    }
#endif
    printf("%u passed, %d failed, %d skipped\n", golden_script_count - (unsigned)failures - (unsigned)skipped,
           failures, skipped);
    return failures == 0 ? 0 : 1;
}
