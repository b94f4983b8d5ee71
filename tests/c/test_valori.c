/* The C test suite of valori.h: behaviour, errors, buffers, handles, crash recovery, and the
 * embedded kernel. Built with -std=c99 -Wall -Wextra -Wpedantic -Werror; run plain, under
 * ASan/UBSan and under valgrind by tests/c/run.sh. Prints "N passed, N failed". */
#define _POSIX_C_SOURCE 200809L
#include "valori.h"

#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef EXPECTED_VERSION
#error "build with -DEXPECTED_VERSION=\"x.y.z\" (the Cargo.toml version)"
#endif

int null_argument_cases(valori_db *db, valori_kernel *kernel, const char *path, int *failed);

static int passed, failed, checks;
static char base_dir[256];

#define CHECK(cond)                                                                 \
    do {                                                                            \
        checks++;                                                                   \
        if (!(cond)) {                                                              \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
            return 1;                                                               \
        }                                                                           \
    } while (0)

#define CHECK_RC(expr, want)                                                              \
    do {                                                                                  \
        int rc_ = (expr);                                                                 \
        checks++;                                                                         \
        if (rc_ != (want)) {                                                              \
            fprintf(stderr, "%s:%d: %s returned %d (%s), expected %d\n", __FILE__, __LINE__, \
                    #expr, rc_, valori_errstr(rc_), (int)(want));                         \
            return 1;                                                                     \
        }                                                                                 \
    } while (0)

static void run(const char *name, int (*test)(void)) {
    if (test() == 0) {
        passed++;
        printf("ok   %s\n", name);
    } else {
        failed++;
        printf("FAIL %s\n", name);
    }
}

static void dir_for(char *out, size_t cap, const char *name) {
    snprintf(out, cap, "%s/%s", base_dir, name);
}

static int open_new(const char *name, uint32_t dim, valori_db **db) {
    char path[512];
    valori_options opts;
    dir_for(path, sizeof path, name);
    if (valori_options_init(&opts) != VALORI_OK) return -1;
    opts.dim = dim;
    return valori_open(path, &opts, db);
}

/* ---------------------------------------------------------------- versions and codes */

static int test_versions(void) {
    char buf[32];
    CHECK(strcmp(VALORI_VERSION, valori_libversion()) == 0);
    CHECK(strcmp(VALORI_VERSION, EXPECTED_VERSION) == 0);
    CHECK(VALORI_VERSION_NUMBER == valori_libversion_number());
    CHECK(VALORI_VERSION_NUMBER ==
          VALORI_VERSION_MAJOR * 1000000 + VALORI_VERSION_MINOR * 1000 + VALORI_VERSION_PATCH);
    snprintf(buf, sizeof buf, "%d.%d.%d", VALORI_VERSION_MAJOR, VALORI_VERSION_MINOR,
             VALORI_VERSION_PATCH);
    CHECK(strcmp(buf, VALORI_VERSION) == 0);
    return 0;
}

static int test_errstr(void) {
    int codes[] = {VALORI_OK, VALORI_INTERNAL, VALORI_MISUSE, VALORI_INVALID_INPUT,
                   VALORI_DIMENSION, VALORI_FULL, VALORI_NOT_FOUND, VALORI_EXISTS,
                   VALORI_INSUFFICIENT_SIZE, VALORI_CORRUPT, VALORI_BUSY, VALORI_IO,
                   VALORI_POISONED};
    size_t i;
    for (i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        CHECK(valori_errstr(codes[i]) != NULL);
        CHECK(strcmp(valori_errstr(codes[i]), "unknown result code") != 0);
    }
    CHECK(strcmp(valori_errstr(12345), "unknown result code") == 0);
    CHECK(strcmp(valori_errstr(VALORI_FULL_EDGES), valori_errstr(VALORI_FULL)) == 0);
    /* The library's table (which valori_errstr reads) has exactly the primary codes this
     * header names, numbered 1..N: the first code it does not know is one past the last. */
    for (i = 1; strcmp(valori_errstr((int)i), "unknown result code") != 0; i++) {
        CHECK(i < 256);
    }
    CHECK(i == sizeof codes / sizeof codes[0]);
    CHECK(codes[sizeof codes / sizeof codes[0] - 1] == (int)i - 1);
    {
        int extended[][2] = {
            {VALORI_INVALID_INPUT_NOT_FINITE, VALORI_INVALID_INPUT},
            {VALORI_INVALID_INPUT_OUT_OF_RANGE, VALORI_INVALID_INPUT},
            {VALORI_INVALID_INPUT_ZERO_K, VALORI_INVALID_INPUT},
            {VALORI_INVALID_INPUT_TOO_LONG, VALORI_INVALID_INPUT},
            {VALORI_FULL_RECORDS, VALORI_FULL},
            {VALORI_FULL_NODES, VALORI_FULL},
            {VALORI_FULL_EDGES, VALORI_FULL},
            {VALORI_FULL_BYTES, VALORI_FULL},
            {VALORI_NOT_FOUND_RECORD, VALORI_NOT_FOUND},
            {VALORI_NOT_FOUND_NODE, VALORI_NOT_FOUND},
            {VALORI_NOT_FOUND_EDGE, VALORI_NOT_FOUND},
        };
        for (i = 0; i < sizeof extended / sizeof extended[0]; i++) {
            CHECK(extended[i][0] != extended[i][1]);
            CHECK(VALORI_PRIMARY(extended[i][0]) == extended[i][1]);
            CHECK(strcmp(valori_errstr(extended[i][0]), valori_errstr(extended[i][1])) == 0);
        }
        for (i = 0; i < sizeof codes / sizeof codes[0]; i++) CHECK(VALORI_PRIMARY(codes[i]) == codes[i]);
    }
    return 0;
}

/* ---------------------------------------------------------------- the database */

static int test_roundtrip(void) {
    valori_db *db = NULL;
    float a[4] = {1.0f, 0.0f, 0.0f, 0.0f}, b[4] = {0.0f, 1.0f, 0.0f, 0.0f};
    float batch[8] = {0.5f, 0.5f, 0.0f, 0.0f, -1.0f, 0.0f, 0.0f, 0.0f};
    uint64_t tags[2] = {7, 8}, tag = 7, id = 99, first = 0, count = 0, got_tag = 0;
    valori_hit hits[8];
    size_t n = 0;
    uint8_t hash1[32], hash2[32], meta[16];
    float vec[4];
    int has_tag = -1;
    char path[512];

    CHECK_RC(open_new("roundtrip", 4, &db), VALORI_OK);
    CHECK(db != NULL);
    CHECK_RC(valori_insert(db, a, 4, &tag, (const uint8_t *)"cup", 3, &id), VALORI_OK);
    CHECK(id == 0);
    CHECK_RC(valori_insert(db, b, 4, NULL, NULL, 0, &id), VALORI_OK);
    CHECK(id == 1);
    CHECK_RC(valori_insert_batch(db, batch, 2, 4, tags, &first), VALORI_OK);
    CHECK(first == 2);
    CHECK_RC(valori_count(db, &count), VALORI_OK);
    CHECK(count == 4);

    CHECK_RC(valori_search(db, a, 4, 3, NULL, hits, 8, &n), VALORI_OK);
    CHECK(n == 3);
    CHECK(hits[0].id == 0 && hits[0].distance == 0.0);
    CHECK(hits[1].id == 2 && fabs(hits[1].distance - 0.5) < 1e-12);
    CHECK(hits[1].distance_raw_hi == 0 && hits[1].distance_raw_lo == 2147483648u);
    CHECK(hits[2].id == 1 && hits[2].distance == 2.0);
    /* tag filter */
    CHECK_RC(valori_search(db, a, 4, 10, &tag, hits, 8, &n), VALORI_OK);
    CHECK(n == 2 && hits[0].id == 0 && hits[1].id == 2);

    CHECK_RC(valori_get_vector(db, 2, vec, 4, &n), VALORI_OK);
    CHECK(n == 4 && vec[0] == 0.5f && vec[1] == 0.5f);
    CHECK_RC(valori_get_meta(db, 0, meta, sizeof meta, &n), VALORI_OK);
    CHECK(n == 3 && memcmp(meta, "cup", 3) == 0);
    CHECK_RC(valori_get_tag(db, 1, &got_tag, &has_tag), VALORI_OK);
    CHECK(has_tag == 0);
    CHECK_RC(valori_get_tag(db, 3, &got_tag, &has_tag), VALORI_OK);
    CHECK(has_tag == 1 && got_tag == 8);
    CHECK_RC(valori_set_tag(db, 1, &tag), VALORI_OK);
    CHECK_RC(valori_set_meta(db, 1, (const uint8_t *)"plate", 5), VALORI_OK);
    CHECK_RC(valori_delete(db, 3), VALORI_OK);
    CHECK_RC(valori_delete(db, 3), VALORI_NOT_FOUND_RECORD);
    CHECK(VALORI_PRIMARY(valori_delete(db, 3)) == VALORI_NOT_FOUND);
    CHECK(strstr(valori_errmsg(db), "record 3 does not exist") != NULL);
    CHECK_RC(valori_checkpoint(db), VALORI_OK);
    CHECK_RC(valori_state_hash(db, hash1), VALORI_OK);
    CHECK_RC(valori_close(&db), VALORI_OK);
    CHECK(db == NULL);

    dir_for(path, sizeof path, "roundtrip");
    CHECK_RC(valori_open(path, NULL, &db), VALORI_OK);
    CHECK_RC(valori_state_hash(db, hash2), VALORI_OK);
    CHECK(memcmp(hash1, hash2, 32) == 0);
    CHECK_RC(valori_get_meta(db, 1, meta, sizeof meta, &n), VALORI_OK);
    CHECK(n == 5 && memcmp(meta, "plate", 5) == 0);
    CHECK_RC(valori_close(&db), VALORI_OK);
    return 0;
}

static int test_invalid_input_changes_nothing(void) {
    valori_db *db = NULL;
    float ok[3] = {1, 2, 3}, nan_v[3] = {1, 0, 0}, big[3] = {40000.0f, 0, 0};
    uint8_t before[32], after[32];
    uint64_t id = 12345;
    valori_hit hits[2];
    size_t n = 77;
    float w = NAN;
    uint8_t longmeta[70000];

    nan_v[1] = NAN;
    CHECK_RC(open_new("invalid", 3, &db), VALORI_OK);
    CHECK_RC(valori_insert(db, ok, 3, NULL, NULL, 0, &id), VALORI_OK);
    CHECK_RC(valori_state_hash(db, before), VALORI_OK);
    id = 12345;
    CHECK_RC(valori_insert(db, ok, 2, NULL, NULL, 0, &id), VALORI_DIMENSION);
    CHECK(strstr(valori_errmsg(db), "dimension") != NULL);
    CHECK_RC(valori_insert(db, nan_v, 3, NULL, NULL, 0, &id), VALORI_INVALID_INPUT_NOT_FINITE);
    CHECK(strstr(valori_errmsg(db), "component 1") != NULL);
    CHECK_RC(valori_insert(db, big, 3, NULL, NULL, 0, &id), VALORI_INVALID_INPUT_OUT_OF_RANGE);
    memset(longmeta, 'x', sizeof longmeta);
    CHECK_RC(valori_insert(db, ok, 3, NULL, longmeta, sizeof longmeta, &id), VALORI_INVALID_INPUT_TOO_LONG);
    CHECK_RC(valori_insert_batch(db, ok, 1, 2, NULL, &id), VALORI_DIMENSION);
    CHECK_RC(valori_create_edge(db, 1, 0, 1, NULL, &id), VALORI_NOT_FOUND_NODE);
    CHECK_RC(valori_create_edge(db, 1, 0, 1, &w, &id), VALORI_INVALID_INPUT_NOT_FINITE);
    CHECK_RC(valori_create_node(db, 1, &id, NULL, 0, &id), VALORI_NOT_FOUND_RECORD);
    CHECK(id == 12345); /* outputs untouched on failure */
    CHECK_RC(valori_search(db, ok, 3, 0, NULL, hits, 2, &n), VALORI_INVALID_INPUT_ZERO_K);
    CHECK(n == 77);
    CHECK_RC(valori_neighbors(db, 0, 9, NULL, 0, &n), VALORI_INVALID_INPUT);
    CHECK_RC(valori_state_hash(db, after), VALORI_OK);
    CHECK(memcmp(before, after, 32) == 0);
    CHECK_RC(valori_close(&db), VALORI_OK);
    return 0;
}

static int test_small_buffers(void) {
    valori_db *db = NULL;
    float v[2] = {1, 1};
    uint64_t id;
    valori_hit hits[1];
    float vec[1];
    uint8_t meta[2];
    valori_edge edges[1];
    valori_hop hops[1];
    size_t n = 0;
    int i;
    uint8_t *exp;
    size_t exp_len = 0;
    uint8_t hash[32], replayed[32];

    CHECK_RC(open_new("buffers", 2, &db), VALORI_OK);
    for (i = 0; i < 3; i++) CHECK_RC(valori_insert(db, v, 2, NULL, (const uint8_t *)"abc", 3, &id), VALORI_OK);
    CHECK_RC(valori_search(db, v, 2, 5, NULL, hits, 1, &n), VALORI_INSUFFICIENT_SIZE);
    CHECK(n == 3);
    CHECK_RC(valori_search(db, v, 2, 5, NULL, NULL, 0, &n), VALORI_INSUFFICIENT_SIZE);
    CHECK(n == 3);
    CHECK_RC(valori_search(db, v, 2, 1, NULL, hits, 1, &n), VALORI_OK);
    CHECK(n == 1 && hits[0].id == 0);
    CHECK_RC(valori_search(db, v, 2, 4000000000u, NULL, hits, 1, &n), VALORI_INSUFFICIENT_SIZE);
    CHECK(n == 3);
    CHECK_RC(valori_get_vector(db, 0, vec, 1, &n), VALORI_INSUFFICIENT_SIZE);
    CHECK(n == 2);
    CHECK_RC(valori_get_meta(db, 0, meta, 2, &n), VALORI_INSUFFICIENT_SIZE);
    CHECK(n == 3);
    CHECK_RC(valori_get_meta(db, 9, meta, 2, &n), VALORI_NOT_FOUND_RECORD);
    CHECK_RC(valori_create_node(db, 1, NULL, NULL, 0, &id), VALORI_OK);
    CHECK_RC(valori_create_node(db, 1, NULL, NULL, 0, &id), VALORI_OK);
    CHECK_RC(valori_create_node(db, 1, NULL, NULL, 0, &id), VALORI_OK);
    CHECK_RC(valori_create_edge(db, 1, 0, 1, NULL, &id), VALORI_OK);
    CHECK_RC(valori_create_edge(db, 1, 0, 2, NULL, &id), VALORI_OK);
    CHECK_RC(valori_neighbors(db, 0, VALORI_DIRECTION_OUT, edges, 1, &n), VALORI_INSUFFICIENT_SIZE);
    CHECK(n == 2);
    CHECK_RC(valori_traverse(db, 0, 2, VALORI_DIRECTION_OUT, NULL, hops, 1, &n), VALORI_INSUFFICIENT_SIZE);
    CHECK(n == 2);
    CHECK_RC(valori_export(db, NULL, 0, &exp_len), VALORI_INSUFFICIENT_SIZE);
    CHECK(exp_len > 0);
    exp = malloc(exp_len);
    CHECK(exp != NULL);
    CHECK_RC(valori_export(db, exp, exp_len, &n), VALORI_OK);
    CHECK(n == exp_len);
    CHECK_RC(valori_state_hash(db, hash), VALORI_OK);
    CHECK_RC(valori_replay(exp, exp_len, replayed), VALORI_OK);
    CHECK(memcmp(hash, replayed, 32) == 0);
    exp[exp_len / 2] ^= 0x40;
    CHECK_RC(VALORI_PRIMARY(valori_replay(exp, exp_len, replayed)), VALORI_CORRUPT);
    free(exp);
    CHECK_RC(valori_close(&db), VALORI_OK);
    return 0;
}

static int test_graph(void) {
    valori_db *db = NULL;
    float v[2] = {0.5f, -0.5f};
    uint64_t rec, a, b, c, e1, e2;
    float w = 0.25f;
    uint32_t kind = 7;
    valori_edge edges[4];
    valori_hop hops[4];
    size_t n;

    CHECK_RC(open_new("graph", 2, &db), VALORI_OK);
    CHECK_RC(valori_insert(db, v, 2, NULL, NULL, 0, &rec), VALORI_OK);
    CHECK_RC(valori_create_node(db, 1, &rec, (const uint8_t *)"robot", 5, &a), VALORI_OK);
    CHECK_RC(valori_create_node(db, 2, NULL, NULL, 0, &b), VALORI_OK);
    CHECK_RC(valori_create_node(db, 2, NULL, NULL, 0, &c), VALORI_OK);
    CHECK_RC(valori_create_edge(db, 7, a, b, &w, &e1), VALORI_OK);
    CHECK_RC(valori_create_edge(db, 8, b, c, NULL, &e2), VALORI_OK);
    CHECK_RC(valori_neighbors(db, a, VALORI_DIRECTION_OUT, edges, 4, &n), VALORI_OK);
    CHECK(n == 1 && edges[0].id == e1 && edges[0].to == b && edges[0].has_weight == 1 && edges[0].weight == 0.25);
    CHECK_RC(valori_neighbors(db, b, VALORI_DIRECTION_BOTH, edges, 4, &n), VALORI_OK);
    CHECK(n == 2 && edges[0].id == e2 && edges[1].id == e1);
    CHECK_RC(valori_traverse(db, a, 5, VALORI_DIRECTION_OUT, NULL, hops, 4, &n), VALORI_OK);
    CHECK(n == 2 && hops[0].node == b && hops[0].depth == 1 && hops[1].node == c && hops[1].depth == 2);
    CHECK_RC(valori_traverse(db, a, 5, VALORI_DIRECTION_OUT, &kind, hops, 4, &n), VALORI_OK);
    CHECK(n == 1);
    CHECK_RC(valori_delete_edge(db, e2), VALORI_OK);
    CHECK_RC(valori_delete_edge(db, e2), VALORI_NOT_FOUND_EDGE);
    CHECK_RC(valori_delete_node(db, c), VALORI_OK);
    CHECK_RC(valori_delete(db, rec), VALORI_OK); /* cascades to node a and edge e1 */
    CHECK_RC(valori_neighbors(db, a, VALORI_DIRECTION_OUT, edges, 4, &n), VALORI_NOT_FOUND_NODE);
    CHECK_RC(valori_neighbors(db, b, VALORI_DIRECTION_BOTH, edges, 4, &n), VALORI_OK);
    CHECK(n == 0);
    CHECK_RC(valori_close(&db), VALORI_OK);
    return 0;
}

/* A traversal into a buffer too small reports exactly the nodes needed and writes nothing,
 * on the database and on the embedded kernel (which traverses in its handle's scratch). */
static const uint32_t trav_edges[8][2] = {{0, 1}, {0, 2}, {1, 3}, {2, 3}, {3, 4}, {4, 5}, {2, 6}, {6, 4}};
static const uint64_t trav_want[6][2] = {{1, 1}, {1, 2}, {2, 3}, {2, 6}, {3, 4}, {4, 5}};

static int check_traverse_sizes(valori_db *db, valori_kernel *k) {
    valori_hop hops[9], untouched[9];
    size_t cap, n, i;
    int rc;
    memset(untouched, 0xA5, sizeof untouched);
    for (cap = 0; cap <= 8; cap++) {
        memcpy(hops, untouched, sizeof hops);
        n = 12345;
        rc = db ? valori_traverse(db, 0, 5, VALORI_DIRECTION_OUT, NULL, hops, cap, &n)
                : valori_kernel_traverse(k, 0, 5, VALORI_DIRECTION_OUT, NULL, hops, cap, &n);
        if (cap < 6) {
            CHECK_RC(rc, VALORI_INSUFFICIENT_SIZE);
            CHECK(n == 6);
            CHECK(memcmp(hops, untouched, sizeof hops) == 0);
        } else {
            CHECK_RC(rc, VALORI_OK);
            CHECK(n == 6);
            for (i = 0; i < 6; i++) CHECK(hops[i].depth == trav_want[i][0] && hops[i].node == trav_want[i][1]);
            CHECK(memcmp(&hops[cap], &untouched[cap], (9 - cap) * sizeof hops[0]) == 0);
        }
    }
    /* NULL with 0 asks for the size */
    CHECK_RC(db ? valori_traverse(db, 0, 5, VALORI_DIRECTION_OUT, NULL, NULL, 0, &n)
                : valori_kernel_traverse(k, 0, 5, VALORI_DIRECTION_OUT, NULL, NULL, 0, &n),
             VALORI_INSUFFICIENT_SIZE);
    CHECK(n == 6);
    return 0;
}

static int test_traverse_exact_size(void) {
    valori_db *db = NULL;
    valori_kernel *k = NULL;
    valori_kernel_config cfg;
    static union { uint64_t u; unsigned char b[16384]; } mem;
    size_t need, i;
    uint64_t id;

    CHECK_RC(open_new("traverse-size", 1, &db), VALORI_OK);
    memset(&cfg, 0, sizeof cfg);
    cfg.dim = 1; cfg.metric = VALORI_METRIC_L2; cfg.max_nodes = 8; cfg.max_edges = 8;
    CHECK_RC(valori_kernel_mem_size(&cfg, &need), VALORI_OK);
    CHECK(need <= sizeof mem.b);
    CHECK_RC(valori_kernel_init(&cfg, mem.b, sizeof mem.b, &k), VALORI_OK);
    for (i = 0; i < 8; i++) { /* node 7 stays unconnected */
        CHECK_RC(valori_create_node(db, 0, NULL, NULL, 0, &id), VALORI_OK);
        CHECK_RC(valori_kernel_create_node(k, 0, NULL, NULL, 0, &id), VALORI_OK);
    }
    for (i = 0; i < 8; i++) {
        CHECK_RC(valori_create_edge(db, 0, trav_edges[i][0], trav_edges[i][1], NULL, &id), VALORI_OK);
        CHECK_RC(valori_kernel_create_edge(k, 0, trav_edges[i][0], trav_edges[i][1], NULL, &id), VALORI_OK);
    }
    if (check_traverse_sizes(db, NULL) != 0) return 1;
    if (check_traverse_sizes(NULL, k) != 0) return 1;
    CHECK_RC(valori_close(&db), VALORI_OK);
    return 0;
}

/* The metric of valori_options_init is VALORI_METRIC_ANY: defaults (and NULL options) reopen
 * a database of any metric; an explicit other metric is refused in user language. */
static int reopen_with_defaults(const char *name, uint32_t metric, const char *metric_name) {
    valori_db *db = NULL;
    valori_options opts;
    valori_kernel_config cfg;
    char path[512], want[128];
    float v[2] = {3, 4};
    uint8_t h1[32], h2[32];
    uint64_t id;
    size_t need;
    const char *msg;

    dir_for(path, sizeof path, name);
    CHECK_RC(valori_options_init(&opts), VALORI_OK);
    CHECK(opts.metric == VALORI_METRIC_ANY && opts.dim == 0);
    opts.dim = 2;
    opts.metric = metric;
    CHECK_RC(valori_open(path, &opts, &db), VALORI_OK);
    CHECK_RC(valori_insert(db, v, 2, NULL, NULL, 0, &id), VALORI_OK);
    CHECK_RC(valori_state_hash(db, h1), VALORI_OK);
    CHECK_RC(valori_close(&db), VALORI_OK);

    CHECK_RC(valori_options_init(&opts), VALORI_OK);
    CHECK_RC(valori_open(path, &opts, &db), VALORI_OK);
    CHECK_RC(valori_state_hash(db, h2), VALORI_OK);
    CHECK(memcmp(h1, h2, 32) == 0);
    CHECK_RC(valori_close(&db), VALORI_OK);
    CHECK_RC(valori_open(path, NULL, &db), VALORI_OK);
    CHECK_RC(valori_close(&db), VALORI_OK);

    opts.metric = metric;
    CHECK_RC(valori_open(path, &opts, &db), VALORI_OK);
    CHECK_RC(valori_close(&db), VALORI_OK);
    opts.metric = metric == VALORI_METRIC_L2 ? VALORI_METRIC_COSINE : VALORI_METRIC_L2;
    CHECK_RC(valori_open(path, &opts, &db), VALORI_INVALID_INPUT);
    CHECK(db == NULL);
    msg = valori_errmsg(NULL);
    snprintf(want, sizeof want, "the database uses the %s metric, the options say %s", metric_name,
             metric == VALORI_METRIC_L2 ? "cosine" : "l2");
    CHECK(strstr(msg, want) != NULL);
    CHECK(strstr(msg, "Some(") == NULL && strstr(msg, "Cosine") == NULL && strstr(msg, "InnerProduct") == NULL);

    /* not a metric of its own: refused where a kernel needs one */
    memset(&cfg, 0, sizeof cfg);
    cfg.dim = 2;
    cfg.metric = VALORI_METRIC_ANY;
    CHECK_RC(valori_kernel_mem_size(&cfg, &need), VALORI_INVALID_INPUT);
    return 0;
}

static int test_metric_any(void) {
    valori_db *db = NULL;
    char path[512];
    if (reopen_with_defaults("metric-cosine", VALORI_METRIC_COSINE, "cosine") != 0) return 1;
    if (reopen_with_defaults("metric-ip", VALORI_METRIC_INNER_PRODUCT, "ip") != 0) return 1;
    if (reopen_with_defaults("metric-l2", VALORI_METRIC_L2, "l2") != 0) return 1;
    /* created with the default metric: L2 */
    CHECK_RC(open_new("metric-default", 2, &db), VALORI_OK);
    CHECK_RC(valori_close(&db), VALORI_OK);
    dir_for(path, sizeof path, "metric-default");
    {
        valori_options opts;
        CHECK_RC(valori_options_init(&opts), VALORI_OK);
        opts.metric = VALORI_METRIC_L2;
        CHECK_RC(valori_open(path, &opts, &db), VALORI_OK);
        CHECK_RC(valori_close(&db), VALORI_OK);
        opts.metric = VALORI_METRIC_INNER_PRODUCT;
        CHECK_RC(valori_open(path, &opts, &db), VALORI_INVALID_INPUT);
        CHECK(strstr(valori_errmsg(NULL), "the database uses the l2 metric, the options say ip") != NULL);
    }
    return 0;
}

/* Messages name this API's remedies (opts.salvage, opts.dim), never the Rust API's. */
static int test_messages_name_the_c_api(void) {
    valori_db *db = NULL;
    char path[512], file[600];
    float v[2] = {1, 2};
    uint64_t id;
    FILE *f;
    const char *msg;

    dir_for(path, sizeof path, "never-created-either");
    CHECK_RC(valori_open(path, NULL, &db), VALORI_NOT_FOUND);
    msg = valori_errmsg(NULL);
    CHECK(strstr(msg, "no database in") != NULL && strstr(msg, "opts.dim") != NULL);
    CHECK(strstr(msg, "Options") == NULL);

    CHECK_RC(open_new("damaged", 2, &db), VALORI_OK);
    CHECK_RC(valori_insert(db, v, 2, NULL, NULL, 0, &id), VALORI_OK);
    CHECK_RC(valori_close(&db), VALORI_OK);
    dir_for(path, sizeof path, "damaged");
    snprintf(file, sizeof file, "%s/snap-00000000000000000000.vsnap", path);
    f = fopen(file, "wb");
    CHECK(f != NULL);
    CHECK(fwrite("garbage", 1, 7, f) == 7);
    CHECK(fclose(f) == 0);
    CHECK_RC(VALORI_PRIMARY(valori_open(path, NULL, &db)), VALORI_CORRUPT);
    msg = valori_errmsg(NULL);
    CHECK(strstr(msg, "damaged") != NULL && strstr(msg, "open with opts.salvage = 1") != NULL);
    CHECK(strstr(msg, "Options") == NULL && strstr(msg, "salvage()") == NULL);
    return 0;
}

/* The last WAL segment of the database in `path` (the newest wal-*.log). */
static int last_segment(const char *path, char *out, size_t cap) {
    DIR *d = opendir(path);
    struct dirent *e;
    char best[256] = "";
    if (d == NULL) return -1;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "wal-", 4) == 0 && strcmp(e->d_name, best) > 0) {
            snprintf(best, sizeof best, "%s", e->d_name);
        }
    }
    closedir(d);
    if (best[0] == '\0') return -1;
    snprintf(out, cap, "%s/%s", path, best);
    return 0;
}

/* A power cut can leave zeros after the last record: open cuts them off and reports it. */
static int test_recovery_report(void) {
    char path[512], wal[800];
    valori_db *db = NULL;
    valori_options opts;
    valori_recovery r;
    uint8_t h1[32], h2[32];
    uint64_t id;
    float v[2] = {1.0f, 2.0f};
    long size;
    FILE *f;
    static const unsigned char zeros[4096];
    int i;
    dir_for(path, sizeof path, "recovery-report");
    CHECK_RC(valori_options_init(&opts), VALORI_OK);
    opts.dim = 2;
    opts.metric = VALORI_METRIC_INNER_PRODUCT;
    CHECK_RC(valori_open(path, &opts, &db), VALORI_OK);
    for (i = 0; i < 3; i++) CHECK_RC(valori_insert(db, v, 2, NULL, NULL, 0, &id), VALORI_OK);
    CHECK_RC(valori_recovery_report(db, &r), VALORI_OK);
    CHECK(r.replayed == 0 && r.seq == 0 && r.torn_bytes == 0);
    CHECK_RC(valori_state_hash(db, h1), VALORI_OK);
    CHECK_RC(valori_close(&db), VALORI_OK);
    CHECK(last_segment(path, wal, sizeof wal) == 0);
    f = fopen(wal, "ab");
    CHECK(f != NULL);
    size = ftell(f);
    CHECK(fwrite(zeros, 1, sizeof zeros, f) == sizeof zeros);
    CHECK(fclose(f) == 0);
    CHECK_RC(valori_open(path, NULL, &db), VALORI_OK);
    CHECK_RC(valori_recovery_report(db, &r), VALORI_OK);
    CHECK(r.replayed == 3 && r.seq == 3 && r.snapshot_seq == 0);
    CHECK(r.torn_bytes == sizeof zeros && r.torn_offset == (uint64_t)size);
    CHECK_RC(valori_state_hash(db, h2), VALORI_OK);
    CHECK(memcmp(h1, h2, 32) == 0);
    CHECK_RC(valori_insert(db, v, 2, NULL, NULL, 0, &id), VALORI_OK);
    CHECK_RC(valori_close(&db), VALORI_OK);
    CHECK_RC(valori_open(path, NULL, &db), VALORI_OK);
    CHECK_RC(valori_recovery_report(db, &r), VALORI_OK);
    CHECK(r.torn_bytes == 0 && r.seq == 4);
    CHECK_RC(valori_recovery_report(db, NULL), VALORI_MISUSE);
    CHECK_RC(valori_close(&db), VALORI_OK);
    return 0;
}

/* The follower functions without a stream: argument checks, an unreachable server (loopback
 * port 1, where nothing listens) reported with a message, and a handle that follows nothing.
 * Following a real stream is scripts/fleet-demo.sh (examples-c/follow.c against nats-server). */
static int test_follow_errors(void) {
    char path[512], nowhere[512];
    valori_db *db = NULL;
    valori_options opts;
    valori_replication r;
    int applied = 7;
    dir_for(path, sizeof path, "follow-plain");
    dir_for(nowhere, sizeof nowhere, "follow-nowhere");
    CHECK_RC(valori_follow(NULL, "demo", nowhere, &db), VALORI_MISUSE);
    CHECK(strstr(valori_errmsg(NULL), "url is NULL") != NULL);
    CHECK_RC(valori_follow("nats://127.0.0.1:1", NULL, nowhere, &db), VALORI_MISUSE);
    CHECK_RC(valori_follow("nats://127.0.0.1:1", "demo", nowhere, NULL), VALORI_MISUSE);
    CHECK_RC(valori_follow("nats://127.0.0.1:1", "demo", nowhere, &db), VALORI_IO);
    CHECK(db == NULL);
    CHECK(strstr(valori_errmsg(NULL), "connecting") != NULL);
    CHECK_RC(valori_follow("not a url", "demo", nowhere, &db), VALORI_IO);
    CHECK(db == NULL);
    CHECK_RC(valori_options_init(&opts), VALORI_OK);
    opts.dim = 2;
    CHECK_RC(valori_open(path, &opts, &db), VALORI_OK);
    memset(&r, 0xff, sizeof r);
    CHECK_RC(valori_replication_status(db, &r), VALORI_OK);
    CHECK(r.following == 0 && r.applied == 0 && r.pending == 0 && r.stopped == 0 && r.retrying == 0);
    CHECK_RC(valori_replication_status(db, NULL), VALORI_MISUSE);
    CHECK_RC(valori_wait_applied(db, 1, 10, &applied), VALORI_MISUSE);
    CHECK(applied == 7);
    CHECK(strstr(valori_errmsg(db), "follows no stream") != NULL);
    CHECK_RC(valori_close(&db), VALORI_OK);
    return 0;
}

/* A batch over the log's 1 GiB record limit is refused before anything changes, so the
 * database reopens with the same hash. 270,000 x 1,024 floats (1.1 GB, calloc: pages are
 * never touched). Skipped under valgrind (VALORI_TEST_NO_BIG), whose heap cannot hold it. */
static int test_oversize_batch(void) {
    valori_db *db = NULL;
    char path[512];
    uint8_t h1[32], h2[32];
    uint64_t first;
    float *big;
    const size_t n = 270000, dim = 1024;
    if (getenv("VALORI_TEST_NO_BIG") != NULL) return 0;
    dir_for(path, sizeof path, "oversize");
    CHECK_RC(open_new("oversize", (uint32_t)dim, &db), VALORI_OK);
    big = calloc(n * dim, sizeof *big);
    CHECK(big != NULL);
    CHECK_RC(valori_insert_batch(db, big, 2, dim, NULL, &first), VALORI_OK);
    CHECK_RC(valori_state_hash(db, h1), VALORI_OK);
    CHECK_RC(VALORI_PRIMARY(valori_insert_batch(db, big, n, dim, NULL, &first)), VALORI_INVALID_INPUT);
    CHECK(strstr(valori_errmsg(db), "limit") != NULL);
    free(big);
    CHECK_RC(valori_state_hash(db, h2), VALORI_OK);
    CHECK(memcmp(h1, h2, 32) == 0);
    CHECK_RC(valori_close(&db), VALORI_OK);
    CHECK_RC(valori_open(path, NULL, &db), VALORI_OK);
    CHECK_RC(valori_state_hash(db, h2), VALORI_OK);
    CHECK(memcmp(h1, h2, 32) == 0);
    CHECK_RC(valori_close(&db), VALORI_OK);
    return 0;
}

static int test_handles(void) {
    valori_db *db = NULL, *second = NULL;
    char path[512];
    uint64_t count;
    valori_options opts;

    CHECK_RC(valori_close(NULL), VALORI_OK);
    CHECK_RC(valori_close(&db), VALORI_OK);
    CHECK_RC(open_new("handles", 2, &db), VALORI_OK);
    dir_for(path, sizeof path, "handles");
    CHECK_RC(valori_open(path, NULL, &second), VALORI_BUSY);
    CHECK(second == NULL);
    CHECK(strstr(valori_errmsg(NULL), "in use") != NULL);
    CHECK_RC(valori_close(&db), VALORI_OK);
    /* use after close: the handle variable is NULL, so the call is refused */
    CHECK_RC(valori_count(db, &count), VALORI_MISUSE);
    CHECK_RC(valori_open(path, NULL, &second), VALORI_OK);
    CHECK_RC(valori_close(&second), VALORI_OK);
    /* options from a caller that knows fewer fields than this library are refused */
    CHECK_RC(valori_options_init(&opts), VALORI_OK);
    CHECK(opts.struct_size == sizeof opts && opts.create == 1 && opts.durability == VALORI_DURABILITY_FSYNC);
    opts.struct_size = 4;
    CHECK_RC(valori_open(path, &opts, &db), VALORI_MISUSE);
    /* a dimension that differs from the database's */
    CHECK_RC(valori_options_init(&opts), VALORI_OK);
    opts.dim = 3;
    CHECK_RC(valori_open(path, &opts, &db), VALORI_INVALID_INPUT);
    CHECK(strstr(valori_errmsg(NULL), "2-dimensional") != NULL);
    /* no database and no dimension */
    dir_for(path, sizeof path, "never-created");
    CHECK_RC(valori_open(path, NULL, &db), VALORI_NOT_FOUND);
    CHECK(db == NULL);
    CHECK(strstr(valori_errmsg(NULL), "no database in") != NULL);
    /* a dimension, but creation disabled */
    CHECK_RC(valori_options_init(&opts), VALORI_OK);
    opts.dim = 2;
    opts.create = 0;
    CHECK_RC(valori_open(path, &opts, &db), VALORI_NOT_FOUND);
    CHECK(db == NULL);
    return 0;
}

static void *fail_many_times(void *arg) {
    valori_db *db = (valori_db *)arg;
    int i;
    for (i = 0; i < 2000; i++) {
        if (valori_delete(db, 1000000u + (uint64_t)i) != VALORI_NOT_FOUND_RECORD) return (void *)1;
    }
    return NULL;
}

/* valori_errmsg is per thread: another thread's failures on the same handle neither change
 * nor free the message this thread holds (ASan and valgrind would see a use after free). */
static int test_errmsg_per_thread(void) {
    valori_db *db = NULL;
    float v[2] = {1, 2};
    const char *mine;
    char copy[256];
    pthread_t other;
    void *result = (void *)1;
    uint64_t id;

    CHECK_RC(open_new("errmsg-threads", 2, &db), VALORI_OK);
    CHECK(strcmp(valori_errmsg(db), "") == 0);
    CHECK_RC(valori_insert(db, v, 1, NULL, NULL, 0, NULL), VALORI_MISUSE);
    CHECK_RC(valori_insert(db, v, 1, NULL, NULL, 0, &id), VALORI_DIMENSION);
    mine = valori_errmsg(db);
    snprintf(copy, sizeof copy, "%s", mine);
    CHECK(strstr(copy, "dimension") != NULL);
    CHECK(pthread_create(&other, NULL, fail_many_times, db) == 0);
    CHECK(pthread_join(other, &result) == 0);
    CHECK(result == NULL);
    CHECK(strcmp(mine, copy) == 0); /* still valid, unchanged */
    CHECK(strcmp(valori_errmsg(db), copy) == 0);
    CHECK_RC(valori_close(&db), VALORI_OK);
    return 0;
}

/* valori_close drops every thread's messages for the handle: threads that failed on a closed
 * handle see no message on a handle opened after it, even at the same address. */
struct stale_ctx {
    valori_db *db;
    pthread_barrier_t *barrier;
    int result;
};

static void *fail_then_read_new_handle(void *arg) {
    struct stale_ctx *c = (struct stale_ctx *)arg;
    if (valori_delete(c->db, 4242) != VALORI_NOT_FOUND_RECORD) c->result = 1;
    if (strstr(valori_errmsg(c->db), "4242") == NULL) c->result = 2;
    pthread_barrier_wait(c->barrier); /* failed on the first handle */
    pthread_barrier_wait(c->barrier); /* it is closed; c->db is a new handle */
    if (strcmp(valori_errmsg(c->db), "") != 0) c->result = 3;
    return NULL;
}

static int test_errmsg_after_close(void) {
    int attempt, t, reused = 0;
    const int attempts = 16;
    for (attempt = 0; attempt < attempts; attempt++) {
        valori_db *db = NULL;
        pthread_barrier_t barrier;
        pthread_t threads[2];
        struct stale_ctx ctx[2];
        uintptr_t old_addr;
        char name[64];

        snprintf(name, sizeof name, "stale-old-%d", attempt);
        CHECK_RC(open_new(name, 2, &db), VALORI_OK);
        CHECK(pthread_barrier_init(&barrier, NULL, 3) == 0);
        for (t = 0; t < 2; t++) {
            ctx[t].db = db;
            ctx[t].barrier = &barrier;
            ctx[t].result = 0;
            CHECK(pthread_create(&threads[t], NULL, fail_then_read_new_handle, &ctx[t]) == 0);
        }
        CHECK_RC(valori_delete(db, 4242), VALORI_NOT_FOUND_RECORD);
        CHECK(strstr(valori_errmsg(db), "4242") != NULL);
        pthread_barrier_wait(&barrier);
        old_addr = (uintptr_t)db;
        CHECK_RC(valori_close(&db), VALORI_OK);
        snprintf(name, sizeof name, "stale-new-%d", attempt);
        CHECK_RC(open_new(name, 2, &db), VALORI_OK);
        reused += (uintptr_t)db == old_addr;
        CHECK(strcmp(valori_errmsg(db), "") == 0);
        for (t = 0; t < 2; t++) ctx[t].db = db;
        pthread_barrier_wait(&barrier);
        for (t = 0; t < 2; t++) {
            CHECK(pthread_join(threads[t], NULL) == 0);
            CHECK(ctx[t].result == 0);
        }
        CHECK(pthread_barrier_destroy(&barrier) == 0);
        CHECK_RC(valori_close(&db), VALORI_OK);
    }
    printf("     a new handle reused the closed one's address in %d of %d attempts\n", reused, attempts);
    return 0;
}

/* A child inserts with the default durability and reports each acknowledged id through a
 * pipe; the parent kills it with SIGKILL and checks every acknowledged record after reopen. */
static int test_crash_recovery(void) {
    char path[512];
    int fds[2], status;
    pid_t pid;
    uint64_t acked = 0, id, count = 0, i;
    valori_db *db = NULL;

    dir_for(path, sizeof path, "crash");
    CHECK_RC(open_new("crash", 4, &db), VALORI_OK);
    CHECK_RC(valori_close(&db), VALORI_OK);
    CHECK(pipe(fds) == 0);
    pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        valori_db *child = NULL;
        close(fds[0]);
        if (valori_open(path, NULL, &child) != VALORI_OK) _exit(2);
        for (i = 0;; i++) {
            float v[4];
            v[0] = (float)i; v[1] = 1.0f; v[2] = -1.0f; v[3] = 0.5f;
            if (valori_insert(child, v, 4, NULL, NULL, 0, &id) != VALORI_OK) _exit(3);
            if (write(fds[1], &id, sizeof id) != (ssize_t)sizeof id) _exit(4);
        }
    }
    close(fds[1]);
    while (acked < 50 && read(fds[0], &id, sizeof id) == (ssize_t)sizeof id) acked = id + 1;
    kill(pid, SIGKILL);
    while (read(fds[0], &id, sizeof id) == (ssize_t)sizeof id) acked = id + 1;
    close(fds[0]);
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    CHECK(acked >= 50);
    CHECK_RC(valori_open(path, NULL, &db), VALORI_OK);
    CHECK_RC(valori_count(db, &count), VALORI_OK);
    CHECK(count >= acked);
    for (i = 0; i < acked; i++) {
        float v[4];
        size_t n;
        CHECK_RC(valori_get_vector(db, i, v, 4, &n), VALORI_OK);
        CHECK(n == 4 && v[0] == (float)i && v[1] == 1.0f && v[2] == -1.0f && v[3] == 0.5f);
    }
    CHECK_RC(valori_close(&db), VALORI_OK);
    return 0;
}

/* ---------------------------------------------------------------- the embedded kernel */

/* Every metric: a kernel snapshot restores to the same hash, and every single-bit flip of
 * it is refused as VALORI_CORRUPT. */
static int test_snapshot_flips_every_metric(void) {
    const uint32_t metrics[3] = {VALORI_METRIC_L2, VALORI_METRIC_INNER_PRODUCT, VALORI_METRIC_COSINE};
    int m;
    for (m = 0; m < 3; m++) {
        valori_kernel_config cfg = {0};
        valori_kernel *k = NULL, *k2 = NULL;
        unsigned char mem[16384], mem2[16384], snap[1024];
        uint8_t h1[32], h2[32];
        size_t need = 0, n = 0, bit;
        uint64_t id;
        int i;
        cfg.dim = 3;
        cfg.metric = metrics[m];
        cfg.max_records = 8;
        cfg.max_nodes = 2;
        cfg.max_edges = 2;
        cfg.meta_bytes = 64;
        cfg.label_bytes = 16;
        CHECK_RC(valori_kernel_mem_size(&cfg, &need), VALORI_OK);
        CHECK(need <= sizeof mem);
        CHECK_RC(valori_kernel_init(&cfg, mem, sizeof mem, &k), VALORI_OK);
        for (i = 0; i < 4; i++) {
            float v[3] = {1.0f + (float)i, -0.5f * (float)i, 0.25f};
            CHECK_RC(valori_kernel_insert(k, v, 3, NULL, (const uint8_t *)"m", 1, &id), VALORI_OK);
        }
        CHECK_RC(valori_kernel_snapshot(k, snap, sizeof snap, &n), VALORI_OK);
        CHECK_RC(valori_kernel_state_hash(k, h1), VALORI_OK);
        for (bit = 0; bit < n * 8; bit++) {
            snap[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            CHECK_RC(valori_kernel_restore(&cfg, snap, n, mem2, sizeof mem2, &k2), VALORI_CORRUPT);
            snap[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        }
        CHECK_RC(valori_kernel_restore(&cfg, snap, n, mem2, sizeof mem2, &k2), VALORI_OK);
        CHECK_RC(valori_kernel_state_hash(k2, h2), VALORI_OK);
        CHECK(memcmp(h1, h2, 32) == 0);
    }
    return 0;
}

static int test_kernel_matches_database(void) {
    valori_kernel_config cfg;
    size_t size = 0, n = 0, snap_len = 0, exp_len = 0;
    unsigned char *mem, *mem2, *snap, *exp;
    valori_kernel *k = NULL, *k2 = NULL;
    valori_db *db = NULL;
    float v[3] = {0.25f, -2.0f, 3.0f}, q[3] = {0, 0, 0};
    uint64_t id, node, count = 0, tag = 3, got_tag = 0;
    float w = -1.5f;
    uint8_t hk[32], hdb[32], hk2[32], meta[8];
    valori_hit hits[4];
    valori_edge edges[2];
    valori_hop hops[2];
    float vec[3];
    int has_tag = 0;
    size_t pos;

    memset(&cfg, 0, sizeof cfg);
    cfg.dim = 3; cfg.metric = VALORI_METRIC_L2; cfg.max_records = 4; cfg.max_nodes = 2;
    cfg.max_edges = 2; cfg.meta_bytes = 16; cfg.label_bytes = 16;
    CHECK_RC(valori_kernel_mem_size(&cfg, &size), VALORI_OK);
    CHECK(size > 0 && size < 4096);
    mem = malloc(size + 1);
    CHECK(mem != NULL);
    CHECK_RC(valori_kernel_init(&cfg, mem + 1, size - 1, &k), VALORI_INSUFFICIENT_SIZE);
    CHECK_RC(valori_kernel_init(&cfg, mem + 1, size, &k), VALORI_OK); /* unaligned is fine */
    CHECK_RC(open_new("kernel-twin", 3, &db), VALORI_OK);

    CHECK_RC(valori_kernel_insert(k, v, 3, &tag, (const uint8_t *)"m", 1, &id), VALORI_OK);
    CHECK_RC(valori_insert(db, v, 3, &tag, (const uint8_t *)"m", 1, &id), VALORI_OK);
    CHECK_RC(valori_kernel_create_node(k, 4, &id, (const uint8_t *)"n", 1, &node), VALORI_OK);
    CHECK_RC(valori_create_node(db, 4, &id, (const uint8_t *)"n", 1, &node), VALORI_OK);
    CHECK_RC(valori_kernel_create_edge(k, 9, node, node, &w, &id), VALORI_OK);
    CHECK_RC(valori_create_edge(db, 9, node, node, &w, &id), VALORI_OK);
    CHECK_RC(valori_kernel_set_meta(k, 0, (const uint8_t *)"meta", 4), VALORI_OK);
    CHECK_RC(valori_set_meta(db, 0, (const uint8_t *)"meta", 4), VALORI_OK);
    CHECK_RC(valori_kernel_set_tag(k, 0, NULL), VALORI_OK);
    CHECK_RC(valori_set_tag(db, 0, NULL), VALORI_OK);
    CHECK_RC(valori_kernel_state_hash(k, hk), VALORI_OK);
    CHECK_RC(valori_state_hash(db, hdb), VALORI_OK);
    CHECK(memcmp(hk, hdb, 32) == 0);

    CHECK_RC(valori_kernel_count(k, &count), VALORI_OK);
    CHECK(count == 1);
    CHECK_RC(valori_kernel_search(k, q, 3, 4, NULL, hits, 4, &n), VALORI_OK);
    CHECK(n == 1 && hits[0].id == 0 && fabs(hits[0].distance - (0.0625 + 4 + 9)) < 1e-9);
    CHECK_RC(valori_kernel_search(k, q, 2, 4, NULL, hits, 4, &n), VALORI_DIMENSION);
    {
        const int32_t raw_q[3] = {0, 0, 0};
        valori_hit raw_hits[4];
        CHECK_RC(valori_kernel_search_raw(k, raw_q, 3, 4, NULL, raw_hits, 4, &n), VALORI_OK);
        CHECK(n == 1 && raw_hits[0].id == hits[0].id);
        CHECK(raw_hits[0].distance_raw_lo == hits[0].distance_raw_lo && raw_hits[0].distance_raw_hi == 0);
        /* 0.25^2 + 2^2 + 3^2 = 13.0625, in units of 2^-32 */
        CHECK(raw_hits[0].distance_raw_lo == (uint64_t)(13.0625 * 4294967296.0));
        CHECK_RC(valori_kernel_search_raw(k, raw_q, 3, 0, NULL, raw_hits, 4, &n), VALORI_INVALID_INPUT_ZERO_K);
        CHECK_RC(valori_kernel_search_raw(k, raw_q, 3, 4, NULL, raw_hits, 0, &n), VALORI_INSUFFICIENT_SIZE);
        CHECK(n == 1);
    }
    CHECK_RC(valori_kernel_neighbors(k, node, VALORI_DIRECTION_BOTH, edges, 2, &n), VALORI_OK);
    CHECK(n == 2 && edges[0].weight == -1.5);
    CHECK_RC(valori_kernel_traverse(k, node, 3, VALORI_DIRECTION_OUT, NULL, hops, 2, &n), VALORI_OK);
    CHECK(n == 0); /* a self loop reaches nothing new */
    CHECK_RC(valori_kernel_get_vector(k, 0, vec, 3, &n), VALORI_OK);
    CHECK(n == 3 && vec[0] == 0.25f && vec[1] == -2.0f && vec[2] == 3.0f);
    CHECK_RC(valori_kernel_get_meta(k, 0, meta, 8, &n), VALORI_OK);
    CHECK(n == 4 && memcmp(meta, "meta", 4) == 0);
    CHECK_RC(valori_kernel_get_tag(k, 0, &got_tag, &has_tag), VALORI_OK);
    CHECK(has_tag == 0);

    /* fill to capacity: VALORI_FULL_RECORDS, state unchanged */
    CHECK_RC(valori_kernel_insert(k, v, 3, NULL, NULL, 0, &id), VALORI_OK);
    CHECK_RC(valori_kernel_insert(k, v, 3, NULL, NULL, 0, &id), VALORI_OK);
    CHECK_RC(valori_kernel_insert(k, v, 3, NULL, NULL, 0, &id), VALORI_OK);
    CHECK_RC(valori_kernel_state_hash(k, hk), VALORI_OK);
    CHECK_RC(valori_kernel_insert(k, v, 3, NULL, NULL, 0, &id), VALORI_FULL_RECORDS);
    CHECK_RC(valori_kernel_state_hash(k, hk2), VALORI_OK);
    CHECK(memcmp(hk, hk2, 32) == 0);
    CHECK_RC(valori_kernel_delete(k, 3), VALORI_OK);
    CHECK_RC(valori_kernel_delete_edge(k, 0), VALORI_OK);
    CHECK_RC(valori_kernel_delete_node(k, 0), VALORI_OK);

    /* snapshot and restore into other memory */
    CHECK_RC(valori_kernel_snapshot(k, NULL, 0, &snap_len), VALORI_INSUFFICIENT_SIZE);
    snap = malloc(snap_len);
    CHECK(snap != NULL);
    CHECK_RC(valori_kernel_snapshot(k, snap, snap_len, &n), VALORI_OK);
    CHECK(n == snap_len);
    mem2 = malloc(size);
    CHECK(mem2 != NULL);
    CHECK_RC(valori_kernel_restore(&cfg, snap, snap_len, mem2, size, &k2), VALORI_OK);
    CHECK_RC(valori_kernel_state_hash(k, hk), VALORI_OK);
    CHECK_RC(valori_kernel_state_hash(k2, hk2), VALORI_OK);
    CHECK(memcmp(hk, hk2, 32) == 0);
    /* every single-bit flip of the snapshot is refused (it carries its state hash) */
    {
        size_t bit;
        for (bit = 0; bit < snap_len * 8; bit++) {
            snap[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            CHECK_RC(valori_kernel_restore(&cfg, snap, snap_len, mem2, size, &k2), VALORI_CORRUPT);
            snap[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        }
        CHECK_RC(valori_kernel_restore(&cfg, snap, snap_len - 1, mem2, size, &k2), VALORI_CORRUPT);
    }
    /* a configuration of another metric is refused as invalid input, not a dimension error */
    {
        valori_kernel_config other = cfg;
        other.metric = VALORI_METRIC_COSINE;
        CHECK_RC(valori_kernel_restore(&other, snap, snap_len, mem2, size, &k2), VALORI_INVALID_INPUT);
        other = cfg;
        other.dim = cfg.dim - 1; /* needs less memory than `size` */
        CHECK_RC(valori_kernel_restore(&other, snap, snap_len, mem2, size, &k2), VALORI_DIMENSION);
    }
    free(snap);

    /* replay the database's exported commands into a fresh kernel: same hash */
    CHECK_RC(valori_export(db, NULL, 0, &exp_len), VALORI_INSUFFICIENT_SIZE);
    exp = malloc(exp_len);
    CHECK(exp != NULL);
    CHECK_RC(valori_export(db, exp, exp_len, &n), VALORI_OK);
    CHECK_RC(valori_kernel_init(&cfg, mem2, size, &k2), VALORI_OK);
    /* layout: "VLRX" u32 version, u64 base_seq, u64 base_len, base, u64 count, {u32 len, bytes}, hash */
    {
        uint64_t base_len, ncmd, c;
        memcpy(&base_len, exp + 16, 8);
        pos = 24 + (size_t)base_len;
        memcpy(&ncmd, exp + pos, 8);
        pos += 8;
        CHECK(ncmd == 5);
        for (c = 0; c < ncmd; c++) {
            uint32_t len;
            memcpy(&len, exp + pos, 4);
            pos += 4;
            CHECK_RC(valori_kernel_apply(k2, exp + pos, len), VALORI_OK);
            pos += len;
        }
    }
    CHECK_RC(valori_kernel_state_hash(k2, hk2), VALORI_OK);
    CHECK(memcmp(hk2, hdb, 32) == 0);
    CHECK_RC(valori_kernel_apply(k2, exp, 3), VALORI_CORRUPT);
    free(exp);
    free(mem2);
    free(mem);
    CHECK_RC(valori_close(&db), VALORI_OK);
    return 0;
}

static int test_null_arguments(void) {
    valori_db *db = NULL;
    valori_kernel *k = NULL;
    valori_kernel_config cfg;
    static union { uint64_t u; unsigned char b[8192]; } mem;
    char path[512];
    int cases, bad = 0;

    memset(&cfg, 0, sizeof cfg);
    cfg.dim = 1; cfg.max_records = 4;
    CHECK_RC(valori_kernel_init(&cfg, mem.b, sizeof mem.b, &k), VALORI_OK);
    CHECK_RC(open_new("nulls", 1, &db), VALORI_OK);
    dir_for(path, sizeof path, "nulls-other");
    cases = null_argument_cases(db, k, path, &bad);
    printf("     NULL-argument cases: %d, wrong results: %d\n", cases, bad);
    CHECK(cases > 90);
    CHECK(bad == 0);
    CHECK_RC(valori_close(&db), VALORI_OK);
    return 0;
}

/* ---------------------------------------------------------------- history and time travel */

/* Every metric: retained states have the hash they had; the log lists every command; tags
 * and checkout; what retention no longer covers is NOT_FOUND. */
static int test_history(void) {
    const uint32_t metrics[3] = {VALORI_METRIC_L2, VALORI_METRIC_INNER_PRODUCT,
                                 VALORI_METRIC_COSINE};
    const char *names[3] = {"history_l2", "history_ip", "history_cos"};
    size_t m;
    for (m = 0; m < 3; m++) {
        valori_db *db = NULL, *copy = NULL;
        valori_options opts;
        char path[512], out_path[600];
        uint8_t hashes[6][32], got[32];
        valori_log_entry entries[16];
        size_t n = 0, i;
        uint64_t id;
        float v[3] = {1.0f, 2.0f, 0.5f};
        dir_for(path, sizeof path, names[m]);
        CHECK_RC(valori_options_init(&opts), VALORI_OK);
        opts.dim = 3;
        opts.metric = metrics[m];
        CHECK_RC(valori_open(path, &opts, &db), VALORI_OK);
        CHECK_RC(valori_set_retention(db, 100), VALORI_OK);
        CHECK_RC(valori_set_retention_time(db, 0), VALORI_OK);
        CHECK_RC(valori_state_hash(db, hashes[0]), VALORI_OK);
        for (i = 1; i <= 5; i++) {
            v[0] = (float)i;
            CHECK_RC(valori_insert(db, v, 3, NULL, NULL, 0, &id), VALORI_OK);
            CHECK_RC(valori_state_hash(db, hashes[i]), VALORI_OK);
            if (i == 3) CHECK_RC(valori_checkpoint(db), VALORI_OK);
        }
        for (i = 0; i <= 5; i++) {
            CHECK_RC(valori_state_hash_at_seq(db, i, got), VALORI_OK);
            CHECK(memcmp(got, hashes[i], 32) == 0);
        }
        CHECK(VALORI_PRIMARY(valori_state_hash_at_seq(db, 6, got)) == VALORI_NOT_FOUND);
        CHECK(strstr(valori_errmsg(db), "not retained") != NULL);
        CHECK_RC(valori_history(db, 2, entries, 16, &n), VALORI_OK);
        CHECK(n == 4);
        for (i = 0; i < n; i++) {
            CHECK(entries[i].seq == i + 2);
            CHECK(entries[i].kind == VALORI_COMMAND_INSERT);
            CHECK(entries[i].bytes > 12);
        }
        CHECK(memcmp(entries[0].chain, entries[1].chain, 32) != 0);
        CHECK_RC(valori_history(db, 2, entries, 2, &n), VALORI_OK);
        CHECK(n == 2 && entries[1].seq == 3);
        CHECK(strcmp(valori_command_name(entries[0].kind), "insert") == 0);
        CHECK(strcmp(valori_command_name(VALORI_COMMAND_DELETE_EDGE), "delete_edge") == 0);
        CHECK(strcmp(valori_command_name(99), "unknown") == 0);

        CHECK_RC(valori_tag_history(db, "v1", 2), VALORI_OK);
        CHECK_RC(valori_tag_history(db, "bad name", 2), VALORI_INVALID_INPUT);
        CHECK(VALORI_PRIMARY(valori_tag_history(db, "late", 9)) == VALORI_NOT_FOUND);
        CHECK_RC(valori_untag_history(db, "v1"), VALORI_OK);
        CHECK(VALORI_PRIMARY(valori_untag_history(db, "v1")) == VALORI_NOT_FOUND);

        snprintf(out_path, sizeof out_path, "%s_at2", path);
        CHECK_RC(valori_checkout(db, 2, out_path, got), VALORI_OK);
        CHECK(memcmp(got, hashes[2], 32) == 0);
        CHECK_RC(valori_checkout(db, 2, out_path, got), VALORI_INVALID_INPUT);
        CHECK(strstr(valori_errmsg(db), "already holds a database") != NULL);
        CHECK_RC(valori_open(out_path, NULL, &copy), VALORI_OK);
        CHECK_RC(valori_state_hash(copy, got), VALORI_OK);
        CHECK(memcmp(got, hashes[2], 32) == 0);
        CHECK_RC(valori_close(&copy), VALORI_OK);

        /* Snapshots written within the last hour are kept even with a count of 1. */
        CHECK_RC(valori_set_retention(db, 1), VALORI_OK);
        CHECK_RC(valori_set_retention_time(db, 3600), VALORI_OK);
        CHECK_RC(valori_checkpoint(db), VALORI_OK);
        CHECK_RC(valori_state_hash_at_seq(db, 0, got), VALORI_OK);
        CHECK(memcmp(got, hashes[0], 32) == 0);
        /* Default retention: a checkpoint retires the older states. */
        CHECK_RC(valori_set_retention_time(db, 0), VALORI_OK);
        CHECK_RC(valori_insert(db, v, 3, NULL, NULL, 0, &id), VALORI_OK);
        CHECK_RC(valori_state_hash(db, hashes[5]), VALORI_OK);
        CHECK_RC(valori_checkpoint(db), VALORI_OK);
        CHECK(VALORI_PRIMARY(valori_state_hash_at_seq(db, 5, got)) == VALORI_NOT_FOUND);
        CHECK_RC(valori_state_hash_at_seq(db, 6, got), VALORI_OK);
        CHECK(memcmp(got, hashes[5], 32) == 0);
        CHECK_RC(valori_close(&db), VALORI_OK);
    }
    return 0;
}

/* The approximate index on every metric: created through the options, searched with an ef,
 * close to the exact search, kept across reopening, and absent for an options struct of the
 * first version's size (a caller built against an older header). */
static int test_index(void) {
    const uint32_t metrics[3] = {VALORI_METRIC_L2, VALORI_METRIC_INNER_PRODUCT,
                                 VALORI_METRIC_COSINE};
    const char *names[3] = {"index_l2", "index_ip", "index_cos"};
    enum { N = 600, D = 8, K = 10 };
    static float rows[N * D];
    size_t m, i, j;
    uint32_t seed = 12345;
    for (i = 0; i < (size_t)N * D; i++) {
        seed = seed * 1103515245u + 12345u;
        rows[i] = (float)((seed >> 8) % 2000) / 4000.0f - 0.25f + (float)((i / D) % 7) * 0.05f;
    }
    for (m = 0; m < 3; m++) {
        valori_db *db = NULL;
        valori_options opts;
        char path[512];
        valori_hit exact[K], approx[K], again[K];
        size_t n_exact = 0, n_approx = 0, n_again = 0;
        uint32_t im = 0, ief = 0;
        uint64_t first = 0;
        size_t found = 0, total = 0, q;
        dir_for(path, sizeof path, names[m]);
        CHECK_RC(valori_options_init(&opts), VALORI_OK);
        CHECK(opts.struct_size == sizeof opts);
        CHECK(opts.index_m == 0 && opts.index_ef_construction == 0);
        opts.dim = D;
        opts.metric = metrics[m];
        opts.index_m = 8;
        opts.index_ef_construction = 40;
        CHECK_RC(valori_open(path, &opts, &db), VALORI_OK);
        CHECK_RC(valori_index_params(db, &im, &ief), VALORI_OK);
        CHECK(im == 8 && ief == 40);
        CHECK_RC(valori_insert_batch(db, rows, N, D, NULL, &first), VALORI_OK);
        for (q = 0; q < 20; q++) {
            const float *query = rows + (q * 29 % N) * D;
            CHECK_RC(valori_search(db, query, D, K, NULL, exact, K, &n_exact), VALORI_OK);
            CHECK_RC(valori_search_approx(db, query, D, K, NULL, 64, approx, K, &n_approx),
                     VALORI_OK);
            CHECK(n_exact == K && n_approx == K);
            for (i = 0; i < K; i++) {
                CHECK(i == 0 || approx[i - 1].distance <= approx[i].distance);
                for (j = 0; j < K; j++) found += approx[i].id == exact[j].id;
            }
            total += K;
            /* An ef of at least the number of records is the exact search. */
            CHECK_RC(valori_search_approx(db, query, D, K, NULL, N, again, K, &n_again),
                     VALORI_OK);
            for (i = 0; i < K; i++) CHECK(again[i].id == exact[i].id);
        }
        /* Inner product over vectors of unequal norms is the hard case for any graph index
         * (hnswlib finds 0.845 of these at ef = 64, as this index does); the others >= 0.9. */
        CHECK(found * 100 >= total * (metrics[m] == VALORI_METRIC_INNER_PRODUCT ? 80 : 90));
        CHECK_RC(valori_search_approx(db, rows, D, K, NULL, 0, approx, K, &n_approx),
                 VALORI_INVALID_INPUT);
        CHECK_RC(valori_search_approx(db, rows, D, K, NULL, 65537, approx, K, &n_approx),
                 VALORI_INVALID_INPUT);
        CHECK_RC(valori_search_approx(db, rows, D, K, NULL, 16, approx, K, &n_approx), VALORI_OK);
        CHECK_RC(valori_close(&db), VALORI_OK);
        /* Reopened with the defaults: the index is the database's, the answers the same. */
        CHECK_RC(valori_open(path, NULL, &db), VALORI_OK);
        CHECK_RC(valori_index_params(db, &im, &ief), VALORI_OK);
        CHECK(im == 8 && ief == 40);
        CHECK_RC(valori_search_approx(db, rows, D, K, NULL, 16, again, K, &n_again), VALORI_OK);
        CHECK(n_again == n_approx);
        for (i = 0; i < n_again; i++) CHECK(again[i].id == approx[i].id);
        CHECK_RC(valori_close(&db), VALORI_OK);
        /* Other parameters than the database's are refused. */
        opts.index_m = 16;
        CHECK_RC(valori_open(path, &opts, &db), VALORI_INVALID_INPUT);
        CHECK(db == NULL);
    }
    {
        /* A first-version options struct (no index fields): no index, nothing read past it. */
        valori_db *db = NULL;
        valori_options opts;
        char path[512];
        uint32_t im = 1, ief = 1;
        valori_hit hits[4];
        size_t n = 0;
        float v[2] = {0.5f, 0.25f};
        uint64_t id = 0;
        dir_for(path, sizeof path, "index_v1_options");
        CHECK_RC(valori_options_init(&opts), VALORI_OK);
        opts.struct_size = (uint32_t)offsetof(valori_options, index_m);
        opts.dim = 2;
        opts.index_m = 8; /* beyond struct_size: must not be read */
        CHECK_RC(valori_open(path, &opts, &db), VALORI_OK);
        CHECK_RC(valori_index_params(db, &im, &ief), VALORI_OK);
        CHECK(im == 0 && ief == 0);
        CHECK_RC(valori_insert(db, v, 2, NULL, NULL, 0, &id), VALORI_OK);
        CHECK_RC(valori_search_approx(db, v, 2, 4, NULL, 16, hits, 4, &n), VALORI_INVALID_INPUT);
        CHECK_RC(valori_close(&db), VALORI_OK);
        opts.struct_size = (uint32_t)offsetof(valori_options, salvage);
        CHECK_RC(valori_open(path, &opts, &db), VALORI_MISUSE);
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s WORK_DIR\n", argv[0]);
        return 2;
    }
    snprintf(base_dir, sizeof base_dir, "%s", argv[1]);
    run("versions", test_versions);
    run("errstr", test_errstr);
    run("roundtrip", test_roundtrip);
    run("invalid_input_changes_nothing", test_invalid_input_changes_nothing);
    run("small_buffers", test_small_buffers);
    run("graph", test_graph);
    run("traverse_exact_size", test_traverse_exact_size);
    run("handles", test_handles);
    run("errmsg_per_thread", test_errmsg_per_thread);
    run("errmsg_after_close", test_errmsg_after_close);
    run("metric_any", test_metric_any);
    run("messages_name_the_c_api", test_messages_name_the_c_api);
    run("crash_recovery", test_crash_recovery);
    run("recovery_report", test_recovery_report);
    run("oversize_batch", test_oversize_batch);
    run("kernel_matches_database", test_kernel_matches_database);
    run("snapshot_flips_every_metric", test_snapshot_flips_every_metric);
    run("history", test_history);
    run("index", test_index);
    run("follow_errors", test_follow_errors);
    run("null_arguments", test_null_arguments);
    printf("checks: %d\n", checks);
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
