/* A follower in C: the second terminal of the replication example (docs/REPLICATION.md).
 * Usage: follow URL DIR SEQ
 * Follows database "demo" on the NATS JetStream servers at URL (as written by
 * `cargo run -p valori-fleet --example fleet -- write URL DIR`) into directory DIR, waits until
 * record SEQ is applied, and prints `seq N hash H`: the writer's last line, on any CPU. */
#include <stdio.h>
#include <stdlib.h>

#include "valori.h"

static int fail(valori_db *db, const char *what, int rc) {
    fprintf(stderr, "%s: %s (%s)\n", what, valori_errstr(rc), valori_errmsg(db));
    return 1;
}

int main(int argc, char **argv) {
    valori_db *db = NULL;
    valori_replication r;
    uint8_t hash[32];
    unsigned long long seq;
    int rc, applied = 0, i;

    if (argc != 4) {
        fprintf(stderr, "usage: follow URL DIR SEQ\n");
        return 2;
    }
    seq = strtoull(argv[3], NULL, 10);
    rc = valori_follow(argv[1], "demo", argv[2], &db);
    if (rc != VALORI_OK) return fail(NULL, "follow", rc);
    rc = valori_wait_applied(db, seq, 300000, &applied);
    if (rc != VALORI_OK) return fail(db, "wait", rc);
    if (!applied) {
        fprintf(stderr, "record %llu not applied within 300 s\n", seq);
        return 1;
    }
    if ((rc = valori_replication_status(db, &r)) != VALORI_OK) return fail(db, "replication", rc);
    if ((rc = valori_state_hash(db, hash)) != VALORI_OK) return fail(db, "state hash", rc);
    /* A follower refuses writes: they go to the leader. */
    {
        const float v[8] = {0};
        uint64_t id;
        rc = valori_insert(db, v, 8, NULL, NULL, 0, &id);
        if (VALORI_PRIMARY(rc) != VALORI_MISUSE) {
            fprintf(stderr, "a follower took a write (%s)\n", valori_errstr(rc));
            return 1;
        }
    }
    printf("seq %llu hash ", (unsigned long long)r.applied);
    for (i = 0; i < 32; i++) printf("%02x", hash[i]);
    printf("\n");
    return valori_close(&db) == VALORI_OK ? 0 : 1;
}
