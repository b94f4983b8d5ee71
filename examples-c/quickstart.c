/* Quickstart: open a database directory, insert a few embeddings, search, print the state
 * hash, close. Usage: quickstart [DATA_DIR]   (default: ./data/quickstart-c)
 * Run it twice: the second run reopens the database and prints the same hash. */
#include <stdio.h>
#include <string.h>

#include "valori.h"

#define DIM 4

static int fail(valori_db *db, const char *what, int rc) {
    fprintf(stderr, "%s: %s (%s)\n", what, valori_errstr(rc), valori_errmsg(db));
    return 1;
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "data/quickstart-c";
    static const struct { const char *label; float v[DIM]; } obs[] = {
        {"red cup on table", {0.9f, 0.1f, 0.0f, 0.2f}},
        {"blue cup in sink", {0.8f, 0.2f, 0.1f, 0.9f}},
        {"door to kitchen", {0.0f, 0.9f, 0.8f, 0.1f}},
        {"charging dock", {-0.5f, 0.0f, 0.3f, -0.7f}},
    };
    const float query[DIM] = {0.85f, 0.15f, 0.05f, 0.5f};
    valori_options opts;
    valori_db *db = NULL;
    valori_hit hits[3];
    uint8_t hash[32];
    uint64_t count = 0, nodes[4];
    size_t n = 0, i;
    int rc;

    valori_options_init(&opts);
    opts.dim = DIM;
    rc = valori_open(path, &opts, &db);
    if (rc != VALORI_OK) return fail(NULL, "open", rc);
    if ((rc = valori_count(db, &count)) != VALORI_OK) return fail(db, "count", rc);
    if (count == 0) {
        printf("creating %s\n", path);
        for (i = 0; i < 4; i++) {
            uint64_t id, tag = i % 2;
            rc = valori_insert(db, obs[i].v, DIM, &tag, (const uint8_t *)obs[i].label,
                               strlen(obs[i].label), &id);
            if (rc != VALORI_OK) return fail(db, "insert", rc);
            rc = valori_create_node(db, 1, &id, (const uint8_t *)obs[i].label,
                                    strlen(obs[i].label), &nodes[i]);
            if (rc != VALORI_OK) return fail(db, "create_node", rc);
        }
        {
            uint64_t e;
            float w = 1.0f;
            if ((rc = valori_create_edge(db, 7, nodes[0], nodes[2], &w, &e)) != VALORI_OK)
                return fail(db, "create_edge", rc);
            if ((rc = valori_create_edge(db, 7, nodes[2], nodes[1], NULL, &e)) != VALORI_OK)
                return fail(db, "create_edge", rc);
        }
    } else {
        printf("reopened %s (%llu records)\n", path, (unsigned long long)count);
    }
    rc = valori_search(db, query, DIM, 3, NULL, hits, 3, &n);
    if (rc != VALORI_OK) return fail(db, "search", rc);
    printf("nearest memories to the query:\n");
    for (i = 0; i < n; i++) {
        char label[64];
        size_t len = 0;
        if (valori_get_meta(db, hits[i].id, (uint8_t *)label, sizeof label - 1, &len) != VALORI_OK) len = 0;
        label[len] = '\0';
        printf("  id %2llu  d^2 = %.6f  %s\n", (unsigned long long)hits[i].id, hits[i].distance, label);
    }
    if ((rc = valori_state_hash(db, hash)) != VALORI_OK) return fail(db, "state_hash", rc);
    printf("state hash: ");
    for (i = 0; i < 32; i++) printf("%02x", hash[i]);
    printf("\n");
    if ((rc = valori_close(&db)) != VALORI_OK) return fail(NULL, "close", rc);
    return 0;
}
