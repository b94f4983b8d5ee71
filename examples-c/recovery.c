/* Crash recovery: a child process writes with the default durability and is killed with
 * SIGKILL mid-stream; the parent reopens the database and verifies that every acknowledged
 * insert is there and that the state hash equals a replay of the recovered prefix in an
 * embedded kernel. Usage: recovery [DATA_DIR]   (default: ./data/recovery-c) */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "valori.h"

#define DIM 8

static void vector_for(uint64_t i, float *v) {
    int j;
    for (j = 0; j < DIM; j++) v[j] = (float)((i * 7 + (uint64_t)j * 13) % 100) / 16.0f - 3.0f;
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "data/recovery-c";
    valori_options opts;
    valori_db *db = NULL;
    int fds[2], status, rc;
    pid_t pid;
    uint64_t acked = 0, id, start = 0, count = 0, i;
    valori_kernel_config cfg;
    size_t mem_size = 0;
    void *mem;
    valori_kernel *k = NULL;
    uint8_t h_db[32], h_k[32];

    valori_options_init(&opts);
    opts.dim = DIM;
    if ((rc = valori_open(path, &opts, &db)) != VALORI_OK) {
        fprintf(stderr, "open: %s\n", valori_errmsg(NULL));
        return 1;
    }
    valori_count(db, &start);
    valori_close(&db);

    if (pipe(fds) != 0) return 1;
    pid = fork();
    if (pid < 0) return 1;
    if (pid == 0) {
        valori_db *w = NULL;
        close(fds[0]);
        if (valori_open(path, NULL, &w) != VALORI_OK) _exit(2);
        for (i = start;; i++) {
            float v[DIM];
            vector_for(i, v);
            if (valori_insert(w, v, DIM, NULL, NULL, 0, &id) != VALORI_OK) _exit(3);
            if (write(fds[1], &id, sizeof id) != (ssize_t)sizeof id) _exit(4); /* acknowledged */
        }
    }
    close(fds[1]);
    while (acked < start + 100 && read(fds[0], &id, sizeof id) == (ssize_t)sizeof id) acked = id + 1;
    kill(pid, SIGKILL);
    while (read(fds[0], &id, sizeof id) == (ssize_t)sizeof id) acked = id + 1;
    close(fds[0]);
    waitpid(pid, &status, 0);
    printf("writer killed after %llu acknowledged inserts\n", (unsigned long long)acked);

    if ((rc = valori_open(path, NULL, &db)) != VALORI_OK) {
        fprintf(stderr, "recovery failed: %s\n", valori_errmsg(NULL));
        return 1;
    }
    valori_count(db, &count);
    printf("recovered %llu records\n", (unsigned long long)count);
    if (count < acked) {
        fprintf(stderr, "LOST %llu acknowledged inserts\n", (unsigned long long)(acked - count));
        return 1;
    }
    valori_state_hash(db, h_db);

    /* Replay the same inserts into an embedded kernel in plain memory: same hash. */
    memset(&cfg, 0, sizeof cfg);
    cfg.dim = DIM;
    cfg.max_records = (uint32_t)count;
    valori_kernel_mem_size(&cfg, &mem_size);
    mem = malloc(mem_size);
    if (mem == NULL || valori_kernel_init(&cfg, mem, mem_size, &k) != VALORI_OK) return 1;
    for (i = 0; i < count; i++) {
        float v[DIM];
        vector_for(i, v);
        if (valori_kernel_insert(k, v, DIM, NULL, NULL, 0, &id) != VALORI_OK) return 1;
    }
    valori_kernel_state_hash(k, h_k);
    free(mem);
    valori_close(&db);
    if (memcmp(h_db, h_k, 32) != 0) {
        fprintf(stderr, "state hash differs from the replay\n");
        return 1;
    }
    printf("state hash verified against an independent replay: ");
    for (i = 0; i < 32; i++) printf("%02x", h_db[i]);
    printf("\n");
    return 0;
}
