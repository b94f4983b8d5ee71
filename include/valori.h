/*
 * valori.h: the C API of Valori, a deterministic memory engine (vectors + knowledge graph).
 *
 * ERRORS. Every fallible function returns an int result code: VALORI_OK (0) or a VALORI_*
 * code. Functions return extended codes where they have a detail (VALORI_NOT_FOUND_RECORD,
 * not VALORI_NOT_FOUND); extended codes keep the primary code in the low byte, so compare a
 * class with VALORI_PRIMARY(rc) == VALORI_NOT_FOUND. valori_errstr(rc) describes any code; valori_errmsg(db) says what went wrong in this thread's last failed
 * call on a database handle (valori_errmsg(NULL): this thread's last failed valori_open). Invalid input
 * changes nothing. A NULL pointer where one is required returns VALORI_MISUSE; parameters
 * documented [nullable] accept NULL. A buffer is a (pointer, length) pair and (NULL, 0) is a
 * valid empty input.
 *
 * OUTPUTS. Output parameters come last. An output buffer is followed by its capacity and a
 * size_t *out_len; if it is too small, the function returns VALORI_INSUFFICIENT_SIZE and
 * stores the needed length in *out_len. Outputs are written only on success.
 *
 * OWNERSHIP. valori_open allocates a handle; valori_close frees it and sets the caller's
 * pointer to NULL; valori_close(NULL) is a no-op. An embedded kernel lives entirely in memory
 * the caller provides (size from valori_kernel_mem_size) and needs no destructor. Strings
 * returned by the library are owned by it: valori_errstr's are static, valori_errmsg's live
 * until the same thread's next failing call on that handle (other threads cannot free them).
 *
 * THREADS. Every function taking a `const valori_db *` or `valori_db *` may be called
 * concurrently from several threads on one handle, except valori_close. Functions taking a
 * `const valori_kernel *` may run concurrently with each other; functions taking a
 * `valori_kernel *` need exclusive access to that kernel.
 *
 * VERSIONS. VALORI_VERSION / _MAJOR / _MINOR / _PATCH / _NUMBER describe this header;
 * valori_libversion() and valori_libversion_number() describe the library linked. Functions
 * keep their signatures forever; new behaviour gets new functions. valori_options grows only
 * at its end, and struct_size says which fields a caller knows.
 *
 * HOSTED AND EMBEDDED. The database (valori_open ...) is only in hosted builds, where
 * VALORI_HOSTED is defined. Define VALORI_EMBEDDED_ONLY before including this header when
 * linking the bare-metal (no_std) library, which has only the valori_kernel_* functions.
 * Followers of a replication stream (valori_follow, docs/REPLICATION.md) are in hosted builds
 * with the fleet feature (the default), where VALORI_FLEET is defined; define VALORI_NO_FLEET
 * when linking a hosted library built without it.
 */

#ifndef VALORI_H
#define VALORI_H

/* Generated from bindings/src by `cargo run -p valori-gen-header`: do not edit. */

#include <stddef.h>
#include <stdint.h>
#define VALORI_VERSION "0.1.0"

/* The primary code of a result code: VALORI_PRIMARY(VALORI_NOT_FOUND_RECORD) == VALORI_NOT_FOUND. */
#define VALORI_PRIMARY(rc) ((rc) & 0xff)

#if !defined(VALORI_EMBEDDED_ONLY)
#define VALORI_HOSTED 1
#if !defined(VALORI_NO_FLEET)
#define VALORI_FLEET 1
#endif
#endif


/**
 * Major version (header and run time agree; a test holds them equal to Cargo.toml).
 */
#define VALORI_VERSION_MAJOR 0

/**
 * Minor version.
 */
#define VALORI_VERSION_MINOR 1

/**
 * Patch version.
 */
#define VALORI_VERSION_PATCH 0

/**
 * `MAJOR * 1000000 + MINOR * 1000 + PATCH`.
 */
#define VALORI_VERSION_NUMBER (((VALORI_VERSION_MAJOR * 1000000) + (VALORI_VERSION_MINOR * 1000)) + VALORI_VERSION_PATCH)

/**
 * Success.
 */
#define VALORI_OK 0

/**
 * An internal error (a bug in valori, or a caught panic).
 */
#define VALORI_INTERNAL 1

/**
 * The API was misused: a NULL pointer where one is required, a closed handle.
 */
#define VALORI_MISUSE 2

/**
 * A value was refused (NaN, out of range, k = 0, oversize metadata). Nothing changed.
 */
#define VALORI_INVALID_INPUT 3

/**
 * A vector's length differs from the dimension. Nothing changed.
 */
#define VALORI_DIMENSION 4

/**
 * A capacity is exhausted. Nothing changed.
 */
#define VALORI_FULL 5

/**
 * The record, node or edge does not exist. Nothing changed.
 */
#define VALORI_NOT_FOUND 6

/**
 * A caller-chosen id is in use. Nothing changed.
 */
#define VALORI_EXISTS 7

/**
 * An output buffer is too small; the needed size was written to the `out_len` parameter.
 */
#define VALORI_INSUFFICIENT_SIZE 8

/**
 * Stored or received bytes are damaged.
 */
#define VALORI_CORRUPT 9

/**
 * The database is held by another handle or process.
 */
#define VALORI_BUSY 10

/**
 * An operating-system I/O error.
 */
#define VALORI_IO 11

/**
 * An earlier write or fsync failed; close and reopen the database.
 */
#define VALORI_POISONED 12

/**
 * Extended code: a vector component is NaN or infinite.
 */
#define VALORI_INVALID_INPUT_NOT_FINITE (VALORI_INVALID_INPUT | (1 << 8))

/**
 * Extended code: a vector component is outside [-32768.0, 32767.99998].
 */
#define VALORI_INVALID_INPUT_OUT_OF_RANGE (VALORI_INVALID_INPUT | (2 << 8))

/**
 * Extended code: k was 0.
 */
#define VALORI_INVALID_INPUT_ZERO_K (VALORI_INVALID_INPUT | (3 << 8))

/**
 * Extended code: metadata or label too long.
 */
#define VALORI_INVALID_INPUT_TOO_LONG (VALORI_INVALID_INPUT | (4 << 8))

/**
 * Extended code: record capacity exhausted.
 */
#define VALORI_FULL_RECORDS (VALORI_FULL | (1 << 8))

/**
 * Extended code: node capacity exhausted.
 */
#define VALORI_FULL_NODES (VALORI_FULL | (2 << 8))

/**
 * Extended code: edge capacity exhausted.
 */
#define VALORI_FULL_EDGES (VALORI_FULL | (3 << 8))

/**
 * Extended code: metadata or label bytes exhausted.
 */
#define VALORI_FULL_BYTES (VALORI_FULL | (4 << 8))

/**
 * Extended code: the record does not exist.
 */
#define VALORI_NOT_FOUND_RECORD (VALORI_NOT_FOUND | (1 << 8))

/**
 * Extended code: the node does not exist.
 */
#define VALORI_NOT_FOUND_NODE (VALORI_NOT_FOUND | (2 << 8))

/**
 * Extended code: the edge does not exist.
 */
#define VALORI_NOT_FOUND_EDGE (VALORI_NOT_FOUND | (3 << 8))

/**
 * Metric: squared Euclidean distance.
 */
#define VALORI_METRIC_L2 0

/**
 * Metric: negated inner product.
 */
#define VALORI_METRIC_INNER_PRODUCT 1

/**
 * Metric: one minus cosine similarity (vectors normalised on insert).
 */
#define VALORI_METRIC_COSINE 2

/**
 * Direction for neighbours and traversal: edges out of the node.
 */
#define VALORI_DIRECTION_OUT 0

/**
 * Direction: edges into the node.
 */
#define VALORI_DIRECTION_IN 1

/**
 * Direction: both.
 */
#define VALORI_DIRECTION_BOTH 2

#if defined(VALORI_HOSTED)
/**
 * Durability: every commit fsynced before it returns (default).
 */
#define VALORI_DURABILITY_FSYNC 0
#endif

#if defined(VALORI_HOSTED)
/**
 * Durability: fsynced before return, concurrent writers share the fsync.
 */
#define VALORI_DURABILITY_GROUP_COMMIT 1
#endif

#if defined(VALORI_HOSTED)
/**
 * Durability: written to the OS only (bulk loads; a power loss may lose recent commits).
 */
#define VALORI_DURABILITY_NONE 2
#endif

#if defined(VALORI_HOSTED)
/**
 * Metric for `valori_options` (the default of `valori_options_init`): the database's own
 * metric when opening an existing one, L2 when creating. Not a metric of its own, so not
 * valid in `valori_kernel_config`.
 */
#define VALORI_METRIC_ANY UINT32_MAX
#endif

#if defined(VALORI_HOSTED)
/**
 * `valori_log_entry.kind`: insert one record.
 */
#define VALORI_COMMAND_INSERT 0
#endif

#if defined(VALORI_HOSTED)
/**
 * `valori_log_entry.kind`: insert a batch of records.
 */
#define VALORI_COMMAND_INSERT_BATCH 1
#endif

#if defined(VALORI_HOSTED)
/**
 * `valori_log_entry.kind`: delete a record.
 */
#define VALORI_COMMAND_DELETE 2
#endif

#if defined(VALORI_HOSTED)
/**
 * `valori_log_entry.kind`: replace a record's metadata.
 */
#define VALORI_COMMAND_SET_META 3
#endif

#if defined(VALORI_HOSTED)
/**
 * `valori_log_entry.kind`: replace a record's tag.
 */
#define VALORI_COMMAND_SET_TAG 4
#endif

#if defined(VALORI_HOSTED)
/**
 * `valori_log_entry.kind`: create a graph node.
 */
#define VALORI_COMMAND_CREATE_NODE 5
#endif

#if defined(VALORI_HOSTED)
/**
 * `valori_log_entry.kind`: delete a graph node.
 */
#define VALORI_COMMAND_DELETE_NODE 6
#endif

#if defined(VALORI_HOSTED)
/**
 * `valori_log_entry.kind`: create a graph edge.
 */
#define VALORI_COMMAND_CREATE_EDGE 7
#endif

#if defined(VALORI_HOSTED)
/**
 * `valori_log_entry.kind`: delete a graph edge.
 */
#define VALORI_COMMAND_DELETE_EDGE 8
#endif

#if defined(VALORI_HOSTED)
/**
 * A database handle (opaque). Every call except `valori_close` may run concurrently on one
 * handle from several threads.
 */
typedef struct valori_db valori_db;
#endif

/**
 * A kernel living in caller memory (opaque). Created by `valori_kernel_init` or
 * `valori_kernel_restore`; it needs no destructor: reuse or free the memory.
 */
typedef struct valori_kernel valori_kernel;

#if defined(VALORI_HOSTED)
/**
 * Options for `valori_open`. Initialise with `valori_options_init`, then set fields: new
 * fields are only ever appended, and `struct_size` tells the library which ones you have.
 */
typedef struct {
  /**
   * `sizeof(valori_options)` as compiled by the caller (set by `valori_options_init`).
   */
  uint32_t struct_size;
  /**
   * Dimension: required to create a database; 0 (default) to accept an existing one's.
   */
  uint32_t dim;
  /**
   * `VALORI_METRIC_ANY` (default): the database's metric when opening, L2 when creating.
   * A specific `VALORI_METRIC_*` creates with that metric and must equal an existing
   * database's (else `VALORI_INVALID_INPUT`).
   */
  uint32_t metric;
  /**
   * `VALORI_DURABILITY_*` (default FSYNC).
   */
  uint32_t durability;
  /**
   * Checkpoint when the WAL passes this many bytes and the size of the last snapshot
   * (default 256 MiB; 0 disables).
   */
  uint64_t checkpoint_wal_bytes;
  /**
   * 1 to create the database if missing (default), 0 to fail instead.
   */
  uint32_t create;
  /**
   * 1 to open read-only up to the first damage (salvage), default 0.
   */
  uint32_t salvage;
  /**
   * Links per node of an approximate (HNSW) index, 2 to 64 (16 is usual); 0 (default): no
   * index for a new database, and an existing database's as it is. Creating with it indexes
   * every record; given for an existing database without an index, one is built over its
   * records; other parameters than an existing index's are `VALORI_INVALID_INPUT`.
   * (Appended in version 2 of the struct.)
   */
  uint32_t index_m;
  /**
   * Candidates per insert of the index, `index_m` to 65536 (200 is usual); used only with
   * `index_m`. (Version 2.)
   */
  uint32_t index_ef_construction;
} valori_options;
#endif

/**
 * One search result.
 */
typedef struct {
  /**
   * Record id.
   */
  uint64_t id;
  /**
   * Distance as a real number (lower is closer).
   */
  double distance;
  /**
   * The exact distance in units of 2^-32, as a signed 128-bit value: high 64 bits.
   */
  int64_t distance_raw_hi;
  /**
   * Low 64 bits of the exact distance.
   */
  uint64_t distance_raw_lo;
} valori_hit;

/**
 * One graph edge.
 */
typedef struct {
  /**
   * Edge id.
   */
  uint64_t id;
  /**
   * Source node.
   */
  uint64_t from;
  /**
   * Target node.
   */
  uint64_t to;
  /**
   * Application-defined kind.
   */
  uint32_t kind;
  /**
   * 1 if the edge has a weight, else 0.
   */
  uint32_t has_weight;
  /**
   * The weight (exact: every Q16.16 value is a double), 0 if none.
   */
  double weight;
} valori_edge;

/**
 * One node reached by a traversal.
 */
typedef struct {
  /**
   * The node.
   */
  uint64_t node;
  /**
   * Edges from the start node.
   */
  uint32_t depth;
  /**
   * Always 0.
   */
  uint32_t reserved;
} valori_hop;

#if (defined(VALORI_HOSTED) && defined(VALORI_FLEET))
/**
 * Where a follower stands (`valori_replication_status`). New fields come with a new function,
 * never in this struct.
 */
typedef struct {
  /**
   * 1 if the handle follows a stream (`valori_follow`), else 0 (and the rest is 0).
   */
  int following;
  /**
   * The last record applied (its sequence number).
   */
  uint64_t applied;
  /**
   * Records on the stream not yet applied (the lag).
   */
  uint64_t pending;
  /**
   * 1 if the follower has stopped: a record did not verify (`valori_wait_applied` returns
   * `VALORI_CORRUPT` and `valori_errmsg` says which and why). It never applies such a
   * record.
   */
  int stopped;
  /**
   * 1 while the servers fail and it retries (it resumes by itself).
   */
  int retrying;
} valori_replication;
#endif

#if defined(VALORI_HOSTED)
/**
 * What `valori_open` found and did (see `valori_recovery_report`). New fields come with a
 * new function, never in this struct.
 */
typedef struct {
  /**
   * Sequence number of the snapshot recovery started from.
   */
  uint64_t snapshot_seq;
  /**
   * WAL records replayed after it.
   */
  uint64_t replayed;
  /**
   * The last sequence number recovered.
   */
  uint64_t seq;
  /**
   * Bytes of a damaged or incomplete tail cut off the end of the WAL at open (never
   * acknowledged: an interrupted append or a power cut's leftovers); 0 if none.
   */
  uint64_t torn_bytes;
  /**
   * Offset in the last WAL segment where that tail was cut (0 if none).
   */
  uint64_t torn_offset;
} valori_recovery;
#endif

#if defined(VALORI_HOSTED)
/**
 * One command of a database's history (`valori_history`).
 */
typedef struct {
  /**
   * Its sequence number.
   */
  uint64_t seq;
  /**
   * `VALORI_COMMAND_*`: which command it is (`valori_command_name` names it).
   */
  uint32_t kind;
  /**
   * Bytes of its encoding (docs/FORMAT.md §5).
   */
  uint32_t bytes;
  /**
   * The WAL chain value after it (docs/FORMAT.md §8).
   */
  uint8_t chain[32];
} valori_log_entry;
#endif

/**
 * What an embedded kernel holds and how much room it has.
 */
typedef struct {
  /**
   * Components per vector (1..=65536).
   */
  uint32_t dim;
  /**
   * `VALORI_METRIC_*`.
   */
  uint32_t metric;
  /**
   * Record capacity.
   */
  uint32_t max_records;
  /**
   * Graph node capacity.
   */
  uint32_t max_nodes;
  /**
   * Graph edge capacity.
   */
  uint32_t max_edges;
  /**
   * Total bytes of record metadata.
   */
  uint32_t meta_bytes;
  /**
   * Total bytes of node labels.
   */
  uint32_t label_bytes;
} valori_kernel_config;

#ifdef __cplusplus
extern "C" {
#endif // __cplusplus

/**
 * The library's version string, e.g. `"0.1.0"` (static; never NULL).
 */
const char *valori_libversion(void);

/**
 * The library's version number (`VALORI_VERSION_NUMBER` of the build).
 */
uint32_t valori_libversion_number(void);

/**
 * A static English description of a result code (primary or extended); never NULL.
 */
const char *valori_errstr(int rc);

#if defined(VALORI_HOSTED)
/**
 * Fills `opts` with the defaults (and `struct_size`): dimension 0 and `VALORI_METRIC_ANY`
 * (accept an existing database's), `VALORI_DURABILITY_FSYNC`, checkpoints at 256 MiB,
 * create 1, salvage 0. So defaults reopen any database; set `dim` (and `metric`) to create.
 *
 * - `opts`: [out] the options.
 */
int valori_options_init(valori_options *opts);
#endif

#if defined(VALORI_HOSTED)
/**
 * Opens (or creates) the database in directory `path`.
 *
 * - `path`: [in] NUL-terminated UTF-8 directory path.
 * - `opts`: [in, nullable] options, or NULL for the defaults (then the database must exist).
 * - `out_db`: [out] the handle; close it with `valori_close`.
 *
 * Returns `VALORI_BUSY` if another handle or process has it open, `VALORI_CORRUPT` if its
 * files are damaged. On failure, `valori_errmsg(NULL)` on the same thread says why.
 */
int valori_open(const char *path, const valori_options *opts, valori_db **out_db);
#endif

#if defined(VALORI_HOSTED)
/**
 * Makes everything durable, closes the database and sets `*db` to NULL (so the handle
 * cannot be used again through that variable). NULL or `*db == NULL` is a no-op.
 *
 * - `db`: [in, out, nullable] address of the handle.
 *
 * The handle is freed even if the final flush fails (the error is returned).
 */
int valori_close(valori_db **db);
#endif

#if defined(VALORI_HOSTED)
/**
 * The message of this thread's last failed call on `db` (or, with NULL, of this thread's
 * last failed `valori_open`); empty if none. Per thread: other threads' calls on the same
 * handle never change or free it. Valid until this thread's next failing call on the handle
 * or `valori_close` (which drops every thread's messages for the handle: a handle opened
 * later starts with none); never NULL.
 *
 * - `db`: [in, nullable] the handle.
 */
const char *valori_errmsg(const valori_db *db);
#endif

#if defined(VALORI_HOSTED)
/**
 * Inserts a vector with an optional tag and metadata; durable when it returns (by the
 * durability mode).
 *
 * - `db`: [in] the database.
 * - `vector`: [in] `dim` floats.
 * - `tag`: [in, nullable] the tag, or NULL for none.
 * - `meta`: [in] `meta_len` bytes (NULL with 0 for none).
 * - `out_id`: [out] the new record's id.
 */
int valori_insert(valori_db *db,
                  const float *vector,
                  size_t dim,
                  const uint64_t *tag,
                  const uint8_t *meta,
                  size_t meta_len,
                  uint64_t *out_id);
#endif

#if defined(VALORI_HOSTED)
/**
 * Inserts `n` vectors (`n * dim` floats, row-major) atomically as one WAL record. Ids are
 * consecutive from `*out_first_id`.
 *
 * - `db`: [in] the database.
 * - `vectors`: [in] `n * dim` floats.
 * - `tags`: [in, nullable] `n` tags, or NULL for none.
 * - `out_first_id`: [out] the first new id.
 */
int valori_insert_batch(valori_db *db,
                        const float *vectors,
                        size_t n,
                        size_t dim,
                        const uint64_t *tags,
                        uint64_t *out_first_id);
#endif

#if defined(VALORI_HOSTED)
/**
 * Deletes a record, the nodes linked to it and their edges.
 *
 * - `db`: [in] the database.
 */
int valori_delete(valori_db *db, uint64_t id);
#endif

#if defined(VALORI_HOSTED)
/**
 * Replaces a record's metadata.
 *
 * - `db`: [in] the database.
 * - `meta`: [in] `meta_len` bytes (NULL with 0 removes it).
 */
int valori_set_meta(valori_db *db, uint64_t id, const uint8_t *meta, size_t meta_len);
#endif

#if defined(VALORI_HOSTED)
/**
 * Replaces a record's tag.
 *
 * - `db`: [in] the database.
 * - `tag`: [in, nullable] the new tag, or NULL to remove it.
 */
int valori_set_tag(valori_db *db, uint64_t id, const uint64_t *tag);
#endif

#if defined(VALORI_HOSTED)
/**
 * Creates a graph node.
 *
 * - `db`: [in] the database.
 * - `record`: [in, nullable] the record to link, or NULL.
 * - `label`: [in] `label_len` bytes (NULL with 0 for none).
 * - `out_id`: [out] the node id.
 */
int valori_create_node(valori_db *db,
                       uint32_t kind,
                       const uint64_t *record,
                       const uint8_t *label,
                       size_t label_len,
                       uint64_t *out_id);
#endif

#if defined(VALORI_HOSTED)
/**
 * Deletes a node and its edges.
 *
 * - `db`: [in] the database.
 */
int valori_delete_node(valori_db *db, uint64_t id);
#endif

#if defined(VALORI_HOSTED)
/**
 * Creates a directed edge between existing nodes.
 *
 * - `db`: [in] the database.
 * - `weight`: [in, nullable] the weight, or NULL for none.
 * - `out_id`: [out] the edge id.
 */
int valori_create_edge(valori_db *db,
                       uint32_t kind,
                       uint64_t from,
                       uint64_t to,
                       const float *weight,
                       uint64_t *out_id);
#endif

#if defined(VALORI_HOSTED)
/**
 * Deletes an edge.
 *
 * - `db`: [in] the database.
 */
int valori_delete_edge(valori_db *db, uint64_t id);
#endif

#if defined(VALORI_HOSTED)
/**
 * Exact k nearest records, ordered by (distance, id).
 *
 * - `db`: [in] the database.
 * - `query`: [in] `dim` floats.
 * - `tag`: [in, nullable] only records with this tag, or NULL for all.
 * - `out_hits`: [out] room for `cap` hits.
 * - `out_len`: [out] hits written; with `VALORI_INSUFFICIENT_SIZE`, hits needed.
 */
int valori_search(const valori_db *db,
                  const float *query,
                  size_t dim,
                  uint32_t k,
                  const uint64_t *tag,
                  valori_hit *out_hits,
                  size_t cap,
                  size_t *out_len);
#endif

#if defined(VALORI_HOSTED)
/**
 * Approximate k nearest records through the database's index (`valori_options.index_m`),
 * keeping `ef` candidates (1 to 65536; raised to `k`; at least the number of records is the
 * exact search), ordered by (distance, id). The distances are exact; the same commands give
 * the same answers on every machine.
 *
 * - `db`: [in] the database.
 * - `query`: [in] `dim` floats.
 * - `tag`: [in, nullable] only records with this tag, or NULL for all.
 * - `out_hits`: [out] room for `cap` hits.
 * - `out_len`: [out] hits written; with `VALORI_INSUFFICIENT_SIZE`, hits needed.
 *
 * Returns `VALORI_INVALID_INPUT` if the database has no index or `ef` is out of range.
 */
int valori_search_approx(const valori_db *db,
                         const float *query,
                         size_t dim,
                         uint32_t k,
                         const uint64_t *tag,
                         uint32_t ef,
                         valori_hit *out_hits,
                         size_t cap,
                         size_t *out_len);
#endif

#if defined(VALORI_HOSTED)
/**
 * The database's approximate index: its `m` and `ef_construction`, or 0 and 0 without one.
 *
 * - `db`: [in] the database.
 * - `out_m`: [out] links per node (0: no index).
 * - `out_ef_construction`: [out] candidates per insert (0: no index).
 */
int valori_index_params(const valori_db *db, uint32_t *out_m, uint32_t *out_ef_construction);
#endif

#if defined(VALORI_HOSTED)
/**
 * Edges at a node.
 *
 * - `db`: [in] the database.
 * - `direction`: `VALORI_DIRECTION_OUT`, `_IN` or `_BOTH`.
 * - `out_edges`: [out] room for `cap` edges.
 * - `out_len`: [out] edges written; with `VALORI_INSUFFICIENT_SIZE`, edges needed.
 */
int valori_neighbors(const valori_db *db,
                     uint64_t node,
                     uint32_t direction,
                     valori_edge *out_edges,
                     size_t cap,
                     size_t *out_len);
#endif

#if defined(VALORI_HOSTED)
/**
 * Nodes within `hops` edges of `start`, ordered by (depth, node id).
 *
 * - `db`: [in] the database.
 * - `kind`: [in, nullable] follow only edges of this kind, or NULL for all.
 * - `out_hops`: [out] room for `cap` nodes.
 * - `out_len`: [out] nodes written; with `VALORI_INSUFFICIENT_SIZE`, exactly the nodes needed
 *   (and `out_hops` is not written).
 */
int valori_traverse(const valori_db *db,
                    uint64_t start,
                    uint32_t hops,
                    uint32_t direction,
                    const uint32_t *kind,
                    valori_hop *out_hops,
                    size_t cap,
                    size_t *out_len);
#endif

#if (defined(VALORI_HOSTED) && defined(VALORI_FLEET))
/**
 * Follows database `database` as its leader publishes it to the NATS JetStream servers at
 * `url` (docs/REPLICATION.md), into directory `path`: a read-only handle whose records
 * arrive in the background, each checked against its chain value before it is applied.
 * A `path` without a database starts from the newest snapshot in the stream's bucket.
 * Reads work as on any handle; writes return `VALORI_MISUSE`. `valori_close` stops
 * following.
 *
 * - `url`: [in] NUL-terminated, `nats://host:port` (several separated by commas).
 * - `database`: [in] NUL-terminated, the database's name on the stream.
 * - `path`: [in] NUL-terminated UTF-8 directory path.
 * - `out_db`: [out] the handle; close it with `valori_close`.
 *
 * Returns `VALORI_NOT_FOUND` if the servers hold no such database, `VALORI_IO` if they
 * cannot be reached. On failure, `valori_errmsg(NULL)` on the same thread says why.
 */
int valori_follow(const char *url, const char *database, const char *path, valori_db **out_db);
#endif

#if (defined(VALORI_HOSTED) && defined(VALORI_FLEET))
/**
 * Where this handle stands in a replication stream.
 *
 * - `db`: [in] the database.
 * - `out`: [out] its position (all 0 for a handle that follows nothing).
 */
int valori_replication_status(const valori_db *db, valori_replication *out);
#endif

#if (defined(VALORI_HOSTED) && defined(VALORI_FLEET))
/**
 * Waits up to `timeout_ms` milliseconds until a follower has applied record `seq`.
 *
 * - `db`: [in] a handle from `valori_follow`.
 * - `out_applied`: [out] 1 if record `seq` is applied, 0 if the time ran out.
 *
 * Returns `VALORI_MISUSE` for a handle that follows nothing, `VALORI_CORRUPT` if the
 * follower stopped on a record that did not verify (`valori_errmsg` says which and why).
 */
int valori_wait_applied(const valori_db *db, uint64_t seq, uint64_t timeout_ms, int *out_applied);
#endif

#if defined(VALORI_HOSTED)
/**
 * What opening this database found and did: the snapshot recovery started from, the WAL
 * records it replayed, and the damaged tail of the log it cut off, if any (docs/FORMAT.md
 * §10). The file and the reason are in the Rust and Python reports; C gets the numbers.
 *
 * - `db`: [in] the database.
 * - `out`: [out] the report.
 */
int valori_recovery_report(const valori_db *db, valori_recovery *out);
#endif

#if defined(VALORI_HOSTED)
/**
 * Number of records.
 *
 * - `db`: [in] the database.
 * - `out_count`: [out] the count.
 */
int valori_count(const valori_db *db, uint64_t *out_count);
#endif

#if defined(VALORI_HOSTED)
/**
 * A record's vector as floats (exact below 256 in magnitude).
 *
 * - `db`: [in] the database.
 * - `out_vector`: [out] room for `cap` floats.
 * - `out_len`: [out] floats written; with `VALORI_INSUFFICIENT_SIZE`, floats needed.
 */
int valori_get_vector(const valori_db *db,
                      uint64_t id,
                      float *out_vector,
                      size_t cap,
                      size_t *out_len);
#endif

#if defined(VALORI_HOSTED)
/**
 * A record's metadata.
 *
 * - `db`: [in] the database.
 * - `out_meta`: [out] room for `cap` bytes.
 * - `out_len`: [out] bytes written; with `VALORI_INSUFFICIENT_SIZE`, bytes needed.
 */
int valori_get_meta(const valori_db *db,
                    uint64_t id,
                    uint8_t *out_meta,
                    size_t cap,
                    size_t *out_len);
#endif

#if defined(VALORI_HOSTED)
/**
 * A record's tag.
 *
 * - `db`: [in] the database.
 * - `out_tag`: [out] the tag (0 if none).
 * - `out_has_tag`: [out] 1 if the record has a tag, else 0.
 */
int valori_get_tag(const valori_db *db, uint64_t id, uint64_t *out_tag, int *out_has_tag);
#endif

#if defined(VALORI_HOSTED)
/**
 * The state hash: identical on every platform for the same commands.
 *
 * - `db`: [in] the database.
 * - `out_hash`: [out] 32 bytes.
 */
int valori_state_hash(const valori_db *db, uint8_t *out_hash);
#endif

#if defined(VALORI_HOSTED)
/**
 * Writes a snapshot and retires the WAL it covers.
 *
 * - `db`: [in] the database.
 */
int valori_checkpoint(valori_db *db);
#endif

#if defined(VALORI_HOSTED)
/**
 * Exports the newest snapshot's state and the commands logged after it (the format of
 * docs/C-API.md), so another machine can replay them with `valori_replay` and compare hashes.
 *
 * - `db`: [in] the database.
 * - `out`: [out] room for `cap` bytes.
 * - `out_len`: [out] bytes written; with `VALORI_INSUFFICIENT_SIZE`, bytes needed.
 */
int valori_export(const valori_db *db, uint8_t *out, size_t cap, size_t *out_len);
#endif

#if defined(VALORI_HOSTED)
/**
 * Rebuilds the state an export describes (base state + commands) and writes its hash;
 * `VALORI_CORRUPT` if the export is damaged or the replayed hash differs from the one the
 * export recorded.
 *
 * - `export`: [in] `len` bytes from `valori_export`.
 * - `out_hash`: [out] 32 bytes.
 */
int valori_replay(const uint8_t *export_, size_t len, uint8_t *out_hash);
#endif

#if defined(VALORI_HOSTED)
/**
 * The name of a `VALORI_COMMAND_*` kind (`"insert"`, `"insert_batch"`, ...), or `"unknown"`.
 * The string is static.
 */
const char *valori_command_name(uint32_t kind);
#endif

#if defined(VALORI_HOSTED)
/**
 * Sets how many snapshots later checkpoints keep, with the log after the oldest of them, so
 * that past states stay reachable (`valori_state_hash_at_seq`, `valori_checkout`). The
 * default is 1 (only the newest); 0 is taken as 1. Not stored: set it after each open.
 *
 * - `db`: [in] the database.
 */
int valori_set_retention(valori_db *db, uint32_t snapshots);
#endif

#if defined(VALORI_HOSTED)
/**
 * Sets how long later checkpoints also keep snapshots (by their files' modification time),
 * with the log after them: every snapshot written within `seconds`. 0 (the default) keeps by
 * count only (`valori_set_retention`). Not stored: set it after each open.
 *
 * - `db`: [in] the database.
 */
int valori_set_retention_time(valori_db *db, uint64_t seconds);
#endif

#if defined(VALORI_HOSTED)
/**
 * The state hash after command `seq`, rebuilt from the retained snapshots and log.
 * `VALORI_NOT_FOUND` if retention no longer reaches `seq` or it is past the last command.
 *
 * - `db`: [in] the database.
 * - `out_hash`: [out] 32 bytes.
 */
int valori_state_hash_at_seq(const valori_db *db, uint64_t seq, uint8_t *out_hash);
#endif

#if defined(VALORI_HOSTED)
/**
 * The logged commands from sequence number `from` on, as far as `cap` entries reach (the
 * retained log; see `valori_set_retention`).
 *
 * - `db`: [in] the database.
 * - `out_entries`: [out] room for `cap` entries.
 * - `out_len`: [out] entries written (fewer than `cap` when the log ends).
 */
int valori_history(const valori_db *db,
                   uint64_t from,
                   valori_log_entry *out_entries,
                   size_t cap,
                   size_t *out_len);
#endif

#if defined(VALORI_HOSTED)
/**
 * Names the state after command `seq` (replacing a tag of that name), pinning it against
 * retention. Names are 1 to 64 ASCII letters, digits, '.', '_' or '-'.
 *
 * - `db`: [in] the database.
 * - `name`: [in] NUL-terminated tag name.
 */
int valori_tag_history(valori_db *db, const char *name, uint64_t seq);
#endif

#if defined(VALORI_HOSTED)
/**
 * Removes a history tag; `VALORI_NOT_FOUND` if there is none of that name.
 *
 * - `db`: [in] the database.
 * - `name`: [in] NUL-terminated tag name.
 */
int valori_untag_history(valori_db *db, const char *name);
#endif

#if defined(VALORI_HOSTED)
/**
 * Writes the state after command `seq` as a new database in directory `path` (which must
 * hold none), keeping its sequence number; `VALORI_NOT_FOUND` if retention no longer
 * reaches `seq`.
 *
 * - `db`: [in] the database.
 * - `path`: [in] NUL-terminated UTF-8 directory path.
 * - `out_hash`: [out] 32 bytes: the new database's state hash.
 */
int valori_checkout(const valori_db *db, uint64_t seq, const char *path, uint8_t *out_hash);
#endif

/**
 * Bytes of memory a kernel with this configuration needs.
 *
 * - `cfg`: [in] the configuration.
 * - `out_size`: [out] the size in bytes.
 *
 * Returns `VALORI_INVALID_INPUT` for a bad dimension or metric.
 */
int valori_kernel_mem_size(const valori_kernel_config *cfg, size_t *out_size);

/**
 * Initialises an empty kernel inside `mem` (at least `valori_kernel_mem_size` bytes; any
 * alignment). The memory must stay valid and untouched while the kernel is used.
 *
 * - `cfg`: [in] the configuration.
 * - `mem`: [in] caller memory, `mem_len` bytes.
 * - `out_kernel`: [out] the handle (points into `mem`).
 *
 * Returns `VALORI_INSUFFICIENT_SIZE` if `mem_len` is too small.
 */
int valori_kernel_init(const valori_kernel_config *cfg,
                       void *mem,
                       size_t mem_len,
                       valori_kernel **out_kernel);

/**
 * Rebuilds a kernel inside `mem` from a snapshot made by `valori_kernel_snapshot`, which
 * carries its state hash: a damaged snapshot is `VALORI_CORRUPT`. The configuration's
 * dimension and metric must match the snapshot's (else `VALORI_DIMENSION` or
 * `VALORI_INVALID_INPUT`); its capacities must hold it (else `VALORI_FULL`).
 *
 * - `cfg`: [in] the configuration.
 * - `snapshot`: [in] `snapshot_len` bytes.
 * - `mem`: [in] caller memory, `mem_len` bytes.
 * - `out_kernel`: [out] the handle.
 */
int valori_kernel_restore(const valori_kernel_config *cfg,
                          const uint8_t *snapshot,
                          size_t snapshot_len,
                          void *mem,
                          size_t mem_len,
                          valori_kernel **out_kernel);

/**
 * Inserts a vector (converted from floats) with an optional tag and metadata.
 *
 * - `kernel`: [in] the kernel.
 * - `vector`: [in] `dim` floats.
 * - `tag`: [in, nullable] the tag, or NULL for none.
 * - `meta`: [in] `meta_len` bytes of metadata (NULL with 0 for none).
 * - `out_id`: [out] the new record's id.
 */
int valori_kernel_insert(valori_kernel *kernel,
                         const float *vector,
                         size_t dim,
                         const uint64_t *tag,
                         const uint8_t *meta,
                         size_t meta_len,
                         uint64_t *out_id);

/**
 * Applies one encoded command (as carried by the WAL and `valori_export`).
 *
 * - `kernel`: [in] the kernel.
 * - `command`: [in] `len` bytes: one command in the wire format of docs/FORMAT.md §5.
 */
int valori_kernel_apply(valori_kernel *kernel, const uint8_t *command, size_t len);

/**
 * Deletes a record, the nodes linked to it and their edges.
 *
 * - `kernel`: [in] the kernel.
 */
int valori_kernel_delete(valori_kernel *kernel, uint64_t id);

/**
 * Replaces a record's metadata.
 *
 * - `kernel`: [in] the kernel.
 * - `meta`: [in] `meta_len` bytes (NULL with 0 removes it).
 */
int valori_kernel_set_meta(valori_kernel *kernel,
                           uint64_t id,
                           const uint8_t *meta,
                           size_t meta_len);

/**
 * Replaces a record's tag.
 *
 * - `kernel`: [in] the kernel.
 * - `tag`: [in, nullable] the new tag, or NULL to remove it.
 */
int valori_kernel_set_tag(valori_kernel *kernel, uint64_t id, const uint64_t *tag);

/**
 * Creates a graph node.
 *
 * - `kernel`: [in] the kernel.
 * - `record`: [in, nullable] the record to link, or NULL.
 * - `label`: [in] `label_len` bytes (NULL with 0 for none).
 * - `out_id`: [out] the node id.
 */
int valori_kernel_create_node(valori_kernel *kernel,
                              uint32_t kind,
                              const uint64_t *record,
                              const uint8_t *label,
                              size_t label_len,
                              uint64_t *out_id);

/**
 * Deletes a node and its edges.
 *
 * - `kernel`: [in] the kernel.
 */
int valori_kernel_delete_node(valori_kernel *kernel, uint64_t id);

/**
 * Creates a directed edge between existing nodes.
 *
 * - `kernel`: [in] the kernel.
 * - `weight`: [in, nullable] the weight, or NULL for none.
 * - `out_id`: [out] the edge id.
 */
int valori_kernel_create_edge(valori_kernel *kernel,
                              uint32_t kind,
                              uint64_t from,
                              uint64_t to,
                              const float *weight,
                              uint64_t *out_id);

/**
 * Deletes an edge.
 *
 * - `kernel`: [in] the kernel.
 */
int valori_kernel_delete_edge(valori_kernel *kernel, uint64_t id);

/**
 * Exact k nearest records, ordered by (distance, id). Uses the handle's scratch space for
 * the query, so it needs a non-const handle.
 *
 * - `kernel`: [in] the kernel.
 * - `query`: [in] `dim` floats.
 * - `tag`: [in, nullable] only records with this tag, or NULL for all.
 * - `out_hits`: [out] room for `cap` hits.
 * - `out_len`: [out] hits written; with `VALORI_INSUFFICIENT_SIZE`, hits needed.
 */
int valori_kernel_search(valori_kernel *kernel,
                         const float *query,
                         size_t dim,
                         uint32_t k,
                         const uint64_t *tag,
                         valori_hit *out_hits,
                         size_t cap,
                         size_t *out_len);

/**
 * Exact k nearest records to a query given in raw Q16.16 (`value * 65536` as `int32_t`),
 * ordered by (distance, id). Needs no conversion, so the handle is const: concurrent
 * searches on one kernel are allowed.
 *
 * - `kernel`: [in] the kernel.
 * - `query`: [in] `dim` raw Q16.16 values.
 * - `tag`: [in, nullable] only records with this tag, or NULL for all.
 * - `out_hits`: [out] room for `cap` hits.
 * - `out_len`: [out] hits written; with `VALORI_INSUFFICIENT_SIZE`, hits needed.
 */
int valori_kernel_search_raw(const valori_kernel *kernel,
                             const int32_t *query,
                             size_t dim,
                             uint32_t k,
                             const uint64_t *tag,
                             valori_hit *out_hits,
                             size_t cap,
                             size_t *out_len);

/**
 * Edges at a node.
 *
 * - `kernel`: [in] the kernel.
 * - `direction`: `VALORI_DIRECTION_OUT`, `_IN` or `_BOTH`.
 * - `out_edges`: [out] room for `cap` edges.
 * - `out_len`: [out] edges written; with `VALORI_INSUFFICIENT_SIZE`, edges needed.
 */
int valori_kernel_neighbors(const valori_kernel *kernel,
                            uint64_t node,
                            uint32_t direction,
                            valori_edge *out_edges,
                            size_t cap,
                            size_t *out_len);

/**
 * Nodes within `hops` edges of `start`, ordered by (depth, node id). With room in `out_hops`
 * for every other node of the kernel it needs no other memory; with less, the hosted library
 * finds the exact size needed, and the bare-metal library (no allocator) asks for room for
 * every other node.
 *
 * - `kernel`: [in] the kernel.
 * - `kind`: [in, nullable] follow only edges of this kind, or NULL for all.
 * - `out_hops`: [out] room for `cap` nodes.
 * - `out_len`: [out] nodes written; with `VALORI_INSUFFICIENT_SIZE` (and `out_hops` not
 *   written), the nodes needed: exactly, in the hosted library; the kernel's node count
 *   minus one, which always suffices, in the bare-metal library.
 */
int valori_kernel_traverse(const valori_kernel *kernel,
                           uint64_t start,
                           uint32_t hops,
                           uint32_t direction,
                           const uint32_t *kind,
                           valori_hop *out_hops,
                           size_t cap,
                           size_t *out_len);

/**
 * Number of records.
 *
 * - `kernel`: [in] the kernel.
 * - `out_count`: [out] the count.
 */
int valori_kernel_count(const valori_kernel *kernel, uint64_t *out_count);

/**
 * The state hash: identical on every platform for the same commands.
 *
 * - `kernel`: [in] the kernel.
 * - `out_hash`: [out] 32 bytes.
 */
int valori_kernel_state_hash(const valori_kernel *kernel, uint8_t *out_hash);

/**
 * Writes a snapshot for `valori_kernel_restore`: the canonical state encoding framed with
 * its state hash (docs/FORMAT.md §13), so that restore detects any damage.
 *
 * - `kernel`: [in] the kernel.
 * - `out`: [out] room for `cap` bytes.
 * - `out_len`: [out] bytes written; with `VALORI_INSUFFICIENT_SIZE`, bytes needed.
 */
int valori_kernel_snapshot(const valori_kernel *kernel, uint8_t *out, size_t cap, size_t *out_len);

/**
 * A record's vector as floats.
 *
 * - `kernel`: [in] the kernel.
 * - `out_vector`: [out] room for `cap` floats.
 * - `out_len`: [out] floats written; with `VALORI_INSUFFICIENT_SIZE`, floats needed.
 */
int valori_kernel_get_vector(const valori_kernel *kernel,
                             uint64_t id,
                             float *out_vector,
                             size_t cap,
                             size_t *out_len);

/**
 * A record's metadata.
 *
 * - `kernel`: [in] the kernel.
 * - `out_meta`: [out] room for `cap` bytes.
 * - `out_len`: [out] bytes written; with `VALORI_INSUFFICIENT_SIZE`, bytes needed.
 */
int valori_kernel_get_meta(const valori_kernel *kernel,
                           uint64_t id,
                           uint8_t *out_meta,
                           size_t cap,
                           size_t *out_len);

/**
 * A record's tag.
 *
 * - `kernel`: [in] the kernel.
 * - `out_tag`: [out] the tag (0 if none).
 * - `out_has_tag`: [out] 1 if the record has a tag, else 0.
 */
int valori_kernel_get_tag(const valori_kernel *kernel,
                          uint64_t id,
                          uint64_t *out_tag,
                          int *out_has_tag);

#ifdef __cplusplus
}  // extern "C"
#endif  // __cplusplus

#endif  /* VALORI_H */
