/* Vendor-style firmware: replays every golden script on the embedded kernel (in a static
 * buffer, no allocator), prints the state hashes over semihosting, and exits non-zero on any
 * mismatch. Then, on a MEASURE_RECORDS x 16 L2 kernel, measures each call's peak stack (by
 * stack painting) and its instruction count (a counter read around the call; see
 * counter_read below and docs/embedded-quickstart.md). Builds for Arm Cortex-M and RV32; the
 * same file builds for the host (a quick check of the data). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "valori.h"
#ifndef FOOTPRINT_ONLY
#include "vectors.h"
#endif

#include "kernel_mem.h"

#ifndef FOOTPRINT_ONLY
static void print_hash(const uint8_t *h) {
    int i;
    for (i = 0; i < 32; i++) printf("%02x", h[i]);
}

static int run_script(const script_t *s, int *skipped) {
    size_t need = 0, n = 0;
    valori_kernel *k = NULL;
    uint8_t hash[32];
    /* Static, not on the stack: on the M0 the replay's stack must stay small (16 KiB of RAM). */
    static valori_hit hits[64];
    static valori_hop hops[64];
    uint32_t i, j;
    int rc;

    if (s->skip != NULL) {
        printf("SKIP %s (%s)\n", s->name, s->skip);
        (*skipped)++;
        return 0;
    }
    rc = valori_kernel_mem_size(&s->cfg, &need);
    if (rc == VALORI_INVALID_INPUT && s->cfg.metric == VALORI_METRIC_COSINE) {
        /* An archive built without the cosine feature refuses the metric. */
        printf("SKIP %s (the cosine metric is not in this build)\n", s->name);
        (*skipped)++;
        return 0;
    }
    if (rc != VALORI_OK) return 1;
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

#if defined(__arm__) || defined(__riscv)
#define BARE_METAL 1
#endif

#ifdef BARE_METAL
#ifndef MEASURE_RECORDS
#define MEASURE_RECORDS 256u
#endif
#ifndef PAINT_BYTES
#define PAINT_BYTES (12u * 1024u)
#endif
#define MEASURE_DIM 16u
#define MEASURE_QUERIES 16u
#define PAINT_WORD 0xA5A5A5A5u

#ifndef FOOTPRINT_ONLY
/* Stack painting: fill the unused stack below the current frame, run an operation, and find
 * the deepest word it overwrote. */
static __attribute__((noinline)) uintptr_t current_sp(void) {
    uintptr_t sp;
#if defined(__riscv)
    __asm volatile("mv %0, sp" : "=r"(sp));
#else
    __asm volatile("mov %0, sp" : "=r"(sp));
#endif
    return sp;
}

static __attribute__((noinline)) void paint_range(uintptr_t from, uintptr_t to) {
    volatile uint32_t *p = (volatile uint32_t *)from;
    while ((uintptr_t)p < to) *p++ = PAINT_WORD;
}

/* The lowest word in [from, to) no longer painted (`to` if none). */
static uintptr_t lowest_used(uintptr_t from, uintptr_t to) {
    volatile uint32_t *p = (volatile uint32_t *)from;
    while ((uintptr_t)p < to && *p == PAINT_WORD) p++;
    return (uintptr_t)p;
}

/* PAINT_BYTES below `top`, leaving the 256 bytes under it (the measuring frames). */
static void paint(uintptr_t top) { paint_range(top - PAINT_BYTES, top - 256u); }

static uint32_t used_below(uintptr_t top) {
    return (uint32_t)(top - lowest_used(top - PAINT_BYTES, top - 256u));
}

/* The instruction counter. RV32: minstret, which QEMU run with -icount shift=0 advances by
 * exactly one per instruction retired. Arm: SysTick on the processor clock, which QEMU with
 * -icount shift=0 advances by one every (1e9 / board clock) instructions (40 on the 25 MHz
 * MPS2, 62 on the 16 MHz micro:bit); the ratio is calibrated below against a loop of known
 * length, so counts are exact to within one tick (at most 80 instructions) per reading. QEMU counts
 * instructions, not cycles: no pipeline, flash wait states or bus stalls. */
#if defined(__riscv)
static void counter_start(void) {}
static inline uint32_t counter_read(void) {
    uint32_t v;
    /* csrr (Zicsr), enabled for this instruction alone: the multilib picks plain rv32imac. */
    __asm volatile(".option push\n.option arch, +zicsr\ncsrr %0, minstret\n.option pop" : "=r"(v));
    return v;
}
/* Ticks elapsed from a to b. */
static uint32_t ticks(uint32_t a, uint32_t b) { return b - a; }
#else
#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
static void counter_start(void) {
    SYST_RVR = 0xFFFFFFu;
    SYST_CVR = 0;
    SYST_CSR = 5u; /* enabled, processor clock, no interrupt */
}
static inline uint32_t counter_read(void) { return SYST_CVR; }
/* SysTick counts down through 24 bits; no measured call spans a whole turn. */
static uint32_t ticks(uint32_t a, uint32_t b) { return (a - b) & 0xFFFFFFu; }
#endif

/* A loop of exactly 2 * n instructions. */
static __attribute__((noinline)) void known_loop(uint32_t n) {
#if defined(__riscv)
    __asm volatile("1: addi %0, %0, -1\n bnez %0, 1b" : "+r"(n));
#else
    __asm volatile(".syntax unified\n1: subs %0, #1\n bne 1b" : "+l"(n) : : "cc");
#endif
}

#define CALIBRATION 500000u
static uint32_t calibration_ticks;

/* Instructions in `t` ticks (rounded), by the calibration. */
static uint32_t instructions(uint32_t t, uint32_t repeats) {
    uint64_t n = (uint64_t)t * (2u * CALIBRATION) + (uint64_t)calibration_ticks * repeats / 2u;
    return (uint32_t)(n / ((uint64_t)calibration_ticks * repeats));
}

static uintptr_t stack_top;
static uint32_t mark;

static void begin(void) {
    paint(stack_top);
    mark = counter_read();
}

/* The ticks of the harness's own work in a measured loop (making the inputs), measured alone
 * and taken off the next result. */
static uint32_t harness_ticks;

static void end(const char *op, uint32_t repeats, int rc) {
    uint32_t t = ticks(mark, counter_read());
    uint32_t stack = used_below(stack_top);
    if (rc != VALORI_OK) {
        printf("FAIL %s: rc %d\n", op, rc);
        exit(1);
    }
    t = t > harness_ticks ? t - harness_ticks : 0;
    harness_ticks = 0;
    printf("COST %s %lu instructions, stack %lu bytes\n", op, (unsigned long)instructions(t, repeats),
           (unsigned long)stack);
}

#else
/* The footprint build: the calls alone, no counters or stack painting. */
static void begin(void) {}
static void end(const char *op, uint32_t repeats, int rc) {
    (void)op;
    (void)repeats;
    if (rc != VALORI_OK) exit(1);
}
#endif

/* Vector i: component j is x / 8 - 6 with x = (31 i + 7 j) mod 97, from a table of the 97
 * floats, so that making inputs costs the measured loops next to nothing (no float
 * arithmetic, which is software on the M0, M3 and RV32IMAC). */
#ifdef FOOTPRINT_ONLY
/* The footprint build counts every byte it adds against valori: no table there. */
#define make_table()
#define EIGHTH(x) ((float)(x))
#else
static float eighths[97];
#define EIGHTH(x) eighths[x]

static void make_table(void) {
    uint32_t x;
    for (x = 0; x < 97u; x++) eighths[x] = (float)x / 8.0f - 6.0f;
}
#endif

static void vector_of(uint32_t i, float *v) {
    uint32_t j, x = (i * 31u) % 97u;
    for (j = 0; j < MEASURE_DIM; j++) {
        v[j] = EIGHTH(x);
        x += 7u;
        if (x >= 97u) x -= 97u;
    }
}

#ifndef FOOTPRINT_ONLY

/* An Insert command (docs/FORMAT.md §5): no id, no tag, MEASURE_DIM components, no
 * metadata. Components are Q16.16 (the float times 65536). */
static size_t encode_insert(uint32_t i, uint8_t *out) {
    uint32_t j, x = (i * 31u) % 97u;
    size_t n = 0;
    out[n++] = 0; /* variant Insert */
    out[n++] = 0; /* id: none */
    out[n++] = 0; /* tag: none */
    out[n++] = (uint8_t)(4u * MEASURE_DIM); /* byte length (a one-byte varint) */
    for (j = 0; j < MEASURE_DIM; j++) {
        /* x / 8 - 6 in Q16.16, as vector_of's float converts. */
        uint32_t u = (uint32_t)((int32_t)x * 8192 - 393216);
        out[n++] = (uint8_t)u;
        out[n++] = (uint8_t)(u >> 8);
        out[n++] = (uint8_t)(u >> 16);
        out[n++] = (uint8_t)(u >> 24);
        x += 7u;
        if (x >= 97u) x -= 97u;
    }
    out[n++] = 0; /* metadata: empty */
    return n;
}
#endif

#ifdef FOOTPRINT_ONLY
/* Calls a firmware may add to the minimal set, one family per define, so that
 * scripts/firmware-footprint.sh can say what each adds to the flash. */
static int footprint_extras(valori_kernel *k, const valori_kernel_config *cfg) {
    int rc = VALORI_OK;
    (void)k;
    (void)cfg;
#ifdef WITH_SNAPSHOT
    {
        static uint8_t buf[24u * 1024u];
        size_t len = 0;
        rc |= valori_kernel_snapshot(k, buf, sizeof buf, &len);
        rc |= valori_kernel_restore(cfg, buf, len, kernel_mem.bytes, sizeof kernel_mem.bytes, &k);
    }
#endif
#ifdef WITH_APPLY
    {
        static const uint8_t del[] = {2, 0}; /* Delete { id: 0 } */
        rc |= valori_kernel_apply(k, del, sizeof del);
    }
#endif
#ifdef WITH_GRAPH
    {
        uint64_t a = 0, b = 0, e = 0, record = 0;
        valori_hop hops[4];
        size_t n = 0;
        rc |= valori_kernel_create_node(k, 1, &record, (const uint8_t *)"a", 1, &a);
        rc |= valori_kernel_create_node(k, 1, NULL, NULL, 0, &b);
        rc |= valori_kernel_create_edge(k, 2, a, b, NULL, &e);
        rc |= valori_kernel_traverse(k, a, 2, VALORI_DIRECTION_OUT, NULL, hops, 4, &n);
        rc |= valori_kernel_delete_edge(k, e);
        rc |= valori_kernel_delete_node(k, b);
    }
#endif
#ifdef WITH_META
    {
        uint8_t out[8];
        size_t n = 0;
        rc |= valori_kernel_set_meta(k, 1, (const uint8_t *)"m", 1);
        rc |= valori_kernel_get_meta(k, 1, out, sizeof out, &n);
        rc |= valori_kernel_delete(k, 1);
    }
#endif
    return rc;
}
#endif

#ifdef FOOTPRINT_ONLY
#define HARNESS(loop)
#else
/* Measures the harness's part of the next measured loop. */
#define HARNESS(loop)                                    \
    do {                                                 \
        uint32_t h0 = counter_read();                    \
        loop;                                            \
        harness_ticks = ticks(h0, counter_read());       \
    } while (0)
#endif

static int measure(void) {
    valori_kernel_config cfg;
    valori_kernel *k = NULL;
    float v[MEASURE_DIM], q[MEASURE_DIM];
    uint64_t id;
    uint8_t hash[32];
    valori_hit hits[10];
    size_t need = 0, n = 0;
    uint32_t i;
    int rc = VALORI_OK;

    make_table();
#ifndef FOOTPRINT_ONLY
    uint32_t t;
    counter_start();
    t = counter_read();
    known_loop(CALIBRATION);
    calibration_ticks = ticks(t, counter_read());
    if (calibration_ticks == 0) {
        printf("FAIL the counter does not run\n");
        return 1;
    }
    printf("COUNTER calibration: %lu ticks for %lu instructions\n", (unsigned long)calibration_ticks,
           (unsigned long)(2u * CALIBRATION));
#endif

    memset(&cfg, 0, sizeof cfg);
    cfg.dim = MEASURE_DIM; cfg.metric = VALORI_METRIC_L2; cfg.max_records = MEASURE_RECORDS;
    cfg.max_nodes = 1; cfg.max_edges = 1;
    if (valori_kernel_mem_size(&cfg, &need) != VALORI_OK || need > sizeof kernel_mem.bytes) return 1;
    printf("KERNEL_MEM %lux%lu %lu bytes\n", (unsigned long)MEASURE_RECORDS, (unsigned long)MEASURE_DIM,
           (unsigned long)need);
#ifndef FOOTPRINT_ONLY
    stack_top = current_sp();
#endif

    /* The kernel takes exactly what it needs; a snapshot goes after it, in the same buffer. */
    begin();
    rc = valori_kernel_init(&cfg, kernel_mem.bytes, need, &k);
    end("init", 1, rc);

    HARNESS(for (i = 0; i < MEASURE_RECORDS; i++) vector_of(i, v));
    begin();
    for (i = 0; i < MEASURE_RECORDS && rc == VALORI_OK; i++) {
        vector_of(i, v);
        rc = valori_kernel_insert(k, v, MEASURE_DIM, NULL, NULL, 0, &id);
    }
    end("insert", MEASURE_RECORDS, rc);

    HARNESS(for (i = 0; i < MEASURE_QUERIES; i++) vector_of(1000u + i, q));
    begin();
    for (i = 0; i < MEASURE_QUERIES && rc == VALORI_OK; i++) {
        vector_of(1000u + i, q);
        rc = valori_kernel_search(k, q, MEASURE_DIM, 10, NULL, hits, 10, &n);
    }
    end("search_k10", MEASURE_QUERIES, rc);
    if (n != 10) return 1;

    begin();
    rc = valori_kernel_state_hash(k, hash);
    end("state_hash", 1, rc);
#ifdef FOOTPRINT_ONLY
    if (footprint_extras(k, &cfg) != VALORI_OK) return 1;
#endif

#ifndef FOOTPRINT_ONLY
    {
        uint8_t again[32], cmd[8 + 4 * MEASURE_DIM];
        uint8_t *snap = kernel_mem.bytes + need;
        size_t room = sizeof kernel_mem.bytes - need, len = 0, cmd_len;
        if (valori_kernel_snapshot(k, NULL, 0, &len) != VALORI_INSUFFICIENT_SIZE || len > room) {
            printf("NOTE snapshot and restore not measured (%lu bytes, %lu available after the kernel)\n",
                   (unsigned long)len, (unsigned long)room);
        } else {
            begin();
            rc = valori_kernel_snapshot(k, snap, room, &len);
            end("snapshot", 1, rc);
            begin();
            rc = valori_kernel_restore(&cfg, snap, len, kernel_mem.bytes, need, &k);
            end("restore", 1, rc);
            if (valori_kernel_state_hash(k, again) != VALORI_OK || memcmp(again, hash, 32) != 0) {
                printf("FAIL the restored kernel's hash differs\n");
                return 1;
            }
        }
        /* The same records through the command decoder: the same state hash. */
        if (valori_kernel_init(&cfg, kernel_mem.bytes, need, &k) != VALORI_OK) return 1;
        HARNESS(for (i = 0; i < MEASURE_RECORDS; i++) encode_insert(i, cmd));
        begin();
        for (i = 0; i < MEASURE_RECORDS && rc == VALORI_OK; i++) {
            cmd_len = encode_insert(i, cmd);
            rc = valori_kernel_apply(k, cmd, cmd_len);
        }
        end("apply_insert", MEASURE_RECORDS, rc);
        if (valori_kernel_state_hash(k, again) != VALORI_OK || memcmp(again, hash, 32) != 0) {
            printf("FAIL the commands' hash differs from the inserts'\n");
            return 1;
        }
    }
#endif
    return 0;
}

void valori_on_panic(void) {
    printf("valori panicked\n");
    exit(3);
}
#endif /* BARE_METAL */

#ifdef FOOTPRINT_ONLY
/* Footprint build: valori with a 256 x 16 kernel, insert, search and hash, no golden data. */
static const unsigned golden_script_count = 0;
#endif

#if defined(BARE_METAL) && !defined(FOOTPRINT_ONLY)
/* The golden replay's stack: all free RAM between the heap's end and main's frame is painted
 * first; afterwards the lowest overwritten word gives the replay's peak stack and the room it
 * never reached. No room would mean the stack may have run into the heap. */
extern void *sbrk(ptrdiff_t incr);

static uintptr_t heap_end(void) { return ((uintptr_t)sbrk(0) + 64u) & ~(uintptr_t)3; }
#endif

int main(void) {
    int failures = 0, skipped = 0, measure_failed = 0;
#if defined(__arm__)
    extern void initialise_monitor_handles(void);
    initialise_monitor_handles();
#endif
    printf("valori %s firmware: %u golden scripts\n", valori_libversion(), golden_script_count);
#ifndef FOOTPRINT_ONLY
    unsigned i;
#ifdef BARE_METAL
    /* After the first printf: the C library's buffers are on the heap by now. */
    uintptr_t top = current_sp() - 256u, floor = heap_end(), low;
    paint_range(floor, top);
#endif
    for (i = 0; i < golden_script_count; i++) {
        if (run_script(&golden_scripts[i], &skipped) != 0) {
            printf("FAIL %s\n", golden_scripts[i].name);
            failures++;
        }
    }
#ifdef BARE_METAL
    low = lowest_used(floor, top);
    printf("STACK golden replay %lu bytes, %lu bytes above the heap never reached\n",
           (unsigned long)(top + 256u - low), (unsigned long)(low - floor));
    if (low - floor < 64u || heap_end() > floor) {
        printf("FAIL the golden replay's stack may have reached the heap\n");
        measure_failed = 1;
    }
#endif
#endif
#ifdef BARE_METAL
    if (measure() != 0) {
        printf("FAIL measurement\n");
        measure_failed = 1;
    }
#endif
    printf("%u passed, %d failed, %d skipped\n", golden_script_count - (unsigned)failures - (unsigned)skipped,
           failures, skipped);
    return failures == 0 && measure_failed == 0 ? 0 : 1;
}
