/* The golden scripts as C data (generated into vectors.c by scripts/gen_firmware_vectors.py). */
#ifndef VALORI_FIRMWARE_VECTORS_H
#define VALORI_FIRMWARE_VECTORS_H
#include <stdint.h>
#include "valori.h"

enum { STEP_COMMAND, STEP_SEARCH, STEP_TRAVERSE };

typedef struct {
    int kind;
    int expect_rc;             /* primary code: 0 = success */
    /* STEP_COMMAND: the encoded command and the state hash after it */
    const uint8_t *cmd;
    uint32_t cmd_len;
    uint8_t hash[32];
    /* STEP_SEARCH */
    const int32_t *query;
    uint32_t query_dim;
    uint32_t k;
    int has_tag;
    uint64_t tag;
    uint32_t nresults;         /* hits or hops expected */
    const uint64_t *hit_ids;
    const int64_t *hit_hi;
    const uint64_t *hit_lo;
    /* STEP_TRAVERSE */
    uint64_t start;
    uint32_t hops;
    uint32_t direction;
    int64_t kind_filter;       /* -1: all kinds */
    uint32_t max;
    const uint64_t *hop_pairs; /* depth, node pairs */
} step_t;

typedef struct {
    const char *name;
    valori_kernel_config cfg;
    uint8_t initial_hash[32];
    const step_t *steps;
    uint32_t nsteps;
    uint8_t final_hash[32];
    const char *skip; /* non-NULL: not converted for this board, and why */
} script_t;

extern const script_t golden_scripts[];
extern const unsigned golden_script_count;

#endif
