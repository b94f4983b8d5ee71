//! Request and response bodies (JSON), and the compact binary bodies of batch calls.
//!
//! Vectors in JSON are numbers converted to Q16.16 from their `f64` value (as Python converts
//! a list or a float64 array); binary bodies are little-endian `f32` or `f64` rows
//! (`dtype=f32|f64`), converted from that type. Bytes (metadata, labels) are base64.

use crate::error::ApiError;
use axum::extract::FromRequest;
use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use valori_engine::valori_kernel::{fxp, Fxp};

/// `axum::Json` answering bad bodies in the error shape.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `axum::extract::Path` answering bad paths in the error shape.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// `axum::extract::Query` answering bad queries in the error shape.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// A raw body (`Bytes`) answering a body over the limit in the error shape.
pub struct RawBody(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        axum::body::Bytes::from_request(req, state)
            .await
            .map(RawBody)
            .map_err(ApiError::from)
    }
}

/// Base64 text of bytes.
pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Bytes of base64 text (`None` or empty: no bytes).
pub fn unb64(field: &str, text: Option<&str>) -> Result<Vec<u8>, ApiError> {
    match text {
        None => Ok(Vec::new()),
        Some(t) => base64::engine::general_purpose::STANDARD
            .decode(t)
            .map_err(|e| ApiError::invalid(format!("{field} is not valid base64: {e}"))),
    }
}

/// One vector of JSON numbers in Q16.16.
pub fn fixed(v: &[f64]) -> Result<Vec<Fxp>, ApiError> {
    Ok(fxp::to_vec(v)?)
}

/// Rows of JSON numbers in Q16.16, all of `dim` components (a ragged row is a dimension error).
pub fn fixed_rows(rows: &[Vec<f64>], dim: usize) -> Result<Vec<Fxp>, ApiError> {
    let mut out = Vec::with_capacity(rows.len().saturating_mul(dim));
    for row in rows {
        if row.len() != dim {
            return Err(valori_engine::valori_kernel::Error::Dimension {
                expected: u32::try_from(dim).unwrap_or(u32::MAX),
                got: row.len() as u64,
            }
            .into());
        }
        out.extend(fixed(row)?);
    }
    Ok(out)
}

/// The element type of a binary body.
#[derive(Clone, Copy, Debug, Default, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    /// Little-endian IEEE 754 single precision (numpy `<f4`).
    #[default]
    F32,
    /// Little-endian IEEE 754 double precision (numpy `<f8`).
    F64,
}

impl Dtype {
    fn size(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::F64 => 8,
        }
    }
}

/// Rows of a binary body in Q16.16: `n` rows of `dim` little-endian values of `dtype`.
pub fn binary_rows(body: &[u8], dim: usize, dtype: Dtype) -> Result<(usize, Vec<Fxp>), ApiError> {
    let (n, rows, _) = binary_batch(body, dim, dtype, false)?;
    Ok((n, rows))
}

/// A binary batch body: `n` rows of `dim` little-endian values of `dtype`, then with `tags`
/// `n` little-endian u64 tags. Returns `n`, the rows in Q16.16 and the tags.
pub fn binary_batch(
    body: &[u8],
    dim: usize,
    dtype: Dtype,
    tags: bool,
) -> Result<(usize, Vec<Fxp>, Vec<u64>), ApiError> {
    let row = dim.saturating_mul(dtype.size());
    let per = row + if tags { 8 } else { 0 };
    if row == 0 || !body.len().is_multiple_of(per) {
        if tags {
            return Err(ApiError::invalid(format!(
                "a binary batch with tags is n rows of {dim} {dtype:?} values then n u64 tags ({per} bytes per row); the body has {} bytes",
                body.len()
            )));
        }
        return Err(valori_engine::valori_kernel::Error::Dimension {
            expected: u32::try_from(dim).unwrap_or(u32::MAX),
            got: (body.len() / dtype.size().max(1)) as u64,
        }
        .into());
    }
    let n = body.len() / per;
    let (body, tag_bytes) = body.split_at(n * row);
    let tags = tag_bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
        .collect();
    let out = match dtype {
        Dtype::F32 => {
            let v: Vec<f32> = body
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap_or([0; 4])))
                .collect();
            fxp::to_vec(&v)?
        }
        Dtype::F64 => {
            let v: Vec<f64> = body
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect();
            fxp::to_vec(&v)?
        }
    };
    Ok((n, out, tags))
}

/// A database in the path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct DbPath {
    /// Database name: 1 to 64 of a-z, 0-9, '_', '-', starting with a letter or digit.
    #[param(pattern = "^[a-z0-9][a-z0-9_-]{0,63}$", example = "default")]
    pub db: String,
}

/// An object (record, node or edge) of a database in the path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct DbIdPath {
    /// Database name: 1 to 64 of a-z, 0-9, '_', '-', starting with a letter or digit.
    #[param(pattern = "^[a-z0-9][a-z0-9_-]{0,63}$", example = "default")]
    pub db: String,
    /// The record, node or edge id.
    pub id: u64,
}

/// A distance metric.
#[derive(Clone, Copy, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MetricName {
    /// Squared Euclidean distance.
    L2,
    /// Negative inner product (`inner_product` is read as `ip`, as in process).
    #[serde(alias = "inner_product")]
    Ip,
    /// One minus cosine similarity.
    Cosine,
}

impl MetricName {
    /// The kernel's metric.
    pub fn metric(self) -> valori_engine::valori_kernel::Metric {
        use valori_engine::valori_kernel::Metric;
        match self {
            MetricName::L2 => Metric::L2,
            MetricName::Ip => Metric::InnerProduct,
            MetricName::Cosine => Metric::Cosine,
        }
    }
}

/// Creates a database, or checks an existing one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDatabase {
    /// Components per vector (1 to 65,536).
    #[schema(minimum = 1, maximum = 65536, example = 384)]
    pub dim: u32,
    /// `l2` (default for a new database), `ip` or `cosine`; an existing database's must equal it.
    pub metric: Option<MetricName>,
    /// `hnsw`: an approximate index that searches use (deterministic: the same commands give
    /// the same answers everywhere). An existing database's must equal it.
    pub index: Option<IndexKind>,
    /// Links per node of the index (2 to 64, default 16).
    #[schema(minimum = 2, maximum = 64, default = 16)]
    pub m: Option<u32>,
    /// Candidates considered per insert (m to 65536, default 200).
    #[schema(minimum = 2, maximum = 65536, default = 200)]
    pub ef_construction: Option<u32>,
}

/// A kind of approximate index.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum IndexKind {
    /// A deterministic HNSW graph.
    Hnsw,
}

/// A database's approximate index.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IndexInfo {
    /// `hnsw`.
    pub kind: IndexKind,
    /// Links per node.
    pub m: u32,
    /// Candidates considered per insert.
    pub ef_construction: u32,
}

/// A database.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DatabaseInfo {
    /// Its name (a directory under the data directory).
    pub name: String,
    /// Components per vector.
    pub dim: u32,
    /// `l2`, `ip` or `cosine`.
    pub metric: String,
    /// Records stored.
    pub records: u64,
    /// Sequence number of the last command.
    pub seq: u64,
    /// The approximate index, if it has one.
    pub index: Option<IndexInfo>,
}

/// The databases of the server.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DatabaseList {
    /// By name.
    pub databases: Vec<DatabaseInfo>,
}

/// Inserts one vector.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InsertRequest {
    /// The vector (its length is the database's dimension).
    #[schema(example = json!([0.1, 0.2, 0.3]))]
    pub vector: Vec<f64>,
    /// The record's id (0 to 2^64 - 2), or none for the next automatic id; one already taken
    /// is 409 `EXISTS` with nothing changed.
    pub id: Option<u64>,
    /// An optional tag (search can filter by it).
    pub tag: Option<u64>,
    /// Metadata bytes, base64.
    pub metadata: Option<String>,
}

/// The id of what was created.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Created {
    /// The new id.
    pub id: u64,
}

/// Inserts rows atomically, as one command.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchInsertRequest {
    /// The rows, each of the database's dimension.
    pub vectors: Vec<Vec<f64>>,
    /// One tag per row, if given.
    pub tags: Option<Vec<u64>>,
}

/// The ids of a batch: `first_id .. first_id + count`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BatchCreated {
    /// The first id.
    pub first_id: u64,
    /// How many.
    pub count: u64,
}

/// Options of a binary batch insert.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BinaryInsertParams {
    /// Element type of the rows in an `application/octet-stream` body.
    pub dtype: Option<Dtype>,
    /// The binary body ends with one little-endian u64 tag per row.
    pub tags: Option<bool>,
}

/// A stored record.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RecordBody {
    /// Its id.
    pub id: u64,
    /// Its tag.
    pub tag: Option<u64>,
    /// Its metadata, base64.
    pub metadata: String,
    /// The stored Q16.16 values, exactly, as numbers.
    pub vector: Vec<f64>,
}

/// Replaces a record's metadata.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MetadataRequest {
    /// The new metadata, base64 (empty removes it).
    pub metadata: String,
}

/// Replaces a record's tag.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TagRequest {
    /// The new tag (`null` removes it).
    pub tag: Option<u64>,
}

fn default_k() -> u32 {
    10
}

/// One query.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// The query vector.
    pub vector: Vec<f64>,
    /// How many nearest records (default 10).
    #[serde(default = "default_k")]
    #[schema(minimum = 1, default = 10)]
    pub k: u32,
    /// Only records with this tag.
    pub tag: Option<u64>,
    /// Always the exact search, also with an index (default false: through the index when the
    /// database has one).
    #[serde(default)]
    pub exact: bool,
    /// Candidates an approximate search keeps (1 to 65536, default 64; raised to k).
    #[schema(minimum = 1, maximum = 65536, default = 64)]
    pub ef: Option<u32>,
}

/// One hit.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Hit {
    /// The record id.
    pub id: u64,
    /// Its distance (lower is closer).
    pub distance: f64,
}

/// Hits in (distance, id) order.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SearchResponse {
    /// The hits.
    pub hits: Vec<Hit>,
}

/// Many queries.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchSearchRequest {
    /// The query vectors.
    pub vectors: Vec<Vec<f64>>,
    /// How many nearest records per query (default 10).
    #[serde(default = "default_k")]
    #[schema(minimum = 1, default = 10)]
    pub k: u32,
    /// Only records with this tag.
    pub tag: Option<u64>,
    /// Always the exact search, also with an index (default false).
    #[serde(default)]
    pub exact: bool,
    /// Candidates an approximate search keeps (1 to 65536, default 64).
    #[schema(minimum = 1, maximum = 65536, default = 64)]
    pub ef: Option<u32>,
}

/// Options of a binary batch search.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BinarySearchParams {
    /// How many nearest records per query (binary body only; default 10).
    pub k: Option<u32>,
    /// Only records with this tag (binary body only).
    pub tag: Option<u64>,
    /// Element type of the rows in an `application/octet-stream` body.
    pub dtype: Option<Dtype>,
    /// Always the exact search (binary body only; default false).
    pub exact: Option<bool>,
    /// Candidates an approximate search keeps (binary body only; default 64).
    pub ef: Option<u32>,
}

/// The hits of each query, `width = min(k, matching records)` per query.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BatchSearchResponse {
    /// Hits per query.
    pub width: u64,
    /// Ids, one row per query.
    pub ids: Vec<Vec<u64>>,
    /// Distances, one row per query.
    pub distances: Vec<Vec<f64>>,
}

/// Creates a graph node.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeRequest {
    /// The node's id (0 to 2^64 - 2), or none for the next automatic id; one already taken is
    /// 409 `EXISTS`.
    pub id: Option<u64>,
    /// Application-defined kind.
    pub kind: u32,
    /// A record to link it to.
    pub record: Option<u64>,
    /// A label, base64.
    pub label: Option<String>,
}

/// Creates a directed edge.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EdgeRequest {
    /// The edge's id (0 to 2^64 - 2), or none for the next automatic id; one already taken is
    /// 409 `EXISTS`.
    pub id: Option<u64>,
    /// Application-defined kind.
    pub kind: u32,
    /// Source node.
    pub source: u64,
    /// Target node.
    pub target: u64,
    /// An optional weight (stored in Q16.16).
    pub weight: Option<f64>,
}

/// A directed edge.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EdgeBody {
    /// Its id.
    pub id: u64,
    /// Its kind.
    pub kind: u32,
    /// Source node.
    pub source: u64,
    /// Target node.
    pub target: u64,
    /// Its weight.
    pub weight: Option<f64>,
}

/// Edges at a node.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EdgeList {
    /// Outgoing first (ascending id), then incoming.
    pub edges: Vec<EdgeBody>,
}

/// Which edges to follow.
#[derive(Clone, Copy, Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DirectionName {
    /// From source to target.
    #[default]
    Out,
    /// From target to source.
    In,
    /// Both ways.
    Both,
}

impl DirectionName {
    /// The kernel's direction.
    pub fn direction(self) -> valori_engine::valori_kernel::Direction {
        use valori_engine::valori_kernel::Direction;
        match self {
            DirectionName::Out => Direction::Outgoing,
            DirectionName::In => Direction::Incoming,
            DirectionName::Both => Direction::Both,
        }
    }
}

/// Options of a neighbour listing.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EdgesParams {
    /// `out` (default), `in` or `both`.
    pub direction: Option<DirectionName>,
}

/// Options of a traversal.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TraverseParams {
    /// Edges to follow at most.
    pub hops: u32,
    /// `out` (default), `in` or `both`.
    pub direction: Option<DirectionName>,
    /// Follow only edges of this kind.
    pub kind: Option<u32>,
}

/// A node reached.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HopBody {
    /// Edges from the start.
    pub depth: u32,
    /// The node.
    pub node: u64,
}

/// Nodes within `hops` of the start, in (depth, node) order.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TraverseResponse {
    /// The nodes reached.
    pub nodes: Vec<HopBody>,
}

/// The state hash.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StateHash {
    /// BLAKE3 state hash, 64 hex digits (identical on every machine for the same commands).
    pub state_hash: String,
    /// Sequence number of the last command it includes.
    pub seq: u64,
}

/// Which state's hash.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StateParams {
    /// A past sequence number (default: the latest). It must be retained (the server's
    /// `--retain-snapshots` / `--retain-for`, or a tag); else `NOT_FOUND`.
    pub at: Option<u64>,
}

/// Which part of the history to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    /// The first sequence number to list (default 1; the retained log may start later).
    pub from: Option<u64>,
    /// At most this many commands (default 100, at most 10,000).
    pub limit: Option<u32>,
}

/// One logged command of the history.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HistoryEntry {
    /// Its sequence number.
    pub seq: u64,
    /// The command: `insert`, `insert_batch`, `delete`, `set_meta`, `set_tag`, `create_node`,
    /// `delete_node`, `create_edge` or `delete_edge`.
    pub kind: String,
    /// Bytes of its encoding.
    pub bytes: u64,
    /// The WAL chain value after it, 64 hex digits.
    pub chain: String,
}

/// Logged commands, in order.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct History {
    /// The commands.
    pub entries: Vec<HistoryEntry>,
}

/// Which part of the log to stream.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WalParams {
    /// Stream the commands after this sequence number (default: the newest snapshot's).
    pub after: Option<u64>,
}

/// One logged command (a line of the `application/x-ndjson` log stream).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WalLine {
    /// Its sequence number.
    pub seq: u64,
    /// The encoded command (docs/FORMAT.md §5), base64.
    pub command: String,
}

/// A history tag in the path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TagPath {
    /// Database name: 1 to 64 of a-z, 0-9, '_', '-', starting with a letter or digit.
    #[param(pattern = "^[a-z0-9][a-z0-9_-]{0,63}$", example = "default")]
    pub db: String,
    /// The tag: 1 to 64 ASCII letters, digits, '.', '_' or '-'.
    #[param(example = "before-upgrade")]
    pub name: String,
}

/// Where a history tag points.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct TagHistory {
    /// The sequence number it names (default: the latest). It must be retained.
    pub seq: Option<u64>,
}

/// One history tag.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HistoryTagInfo {
    /// Its name.
    pub name: String,
    /// The sequence number it names.
    pub seq: u64,
}

/// The history tags of a database, by sequence number.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HistoryTags {
    /// The tags.
    pub tags: Vec<HistoryTagInfo>,
}

/// A past state to write as a new database.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Checkout {
    /// The sequence number of the state (it must be retained).
    pub seq: u64,
    /// The new database's name (it must not exist).
    pub database: String,
}

/// A checked-out database.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CheckedOut {
    /// The new database.
    pub database: DatabaseInfo,
    /// Its state hash (the past state's), 64 hex digits.
    pub state_hash: String,
}

/// What later checkpoints of a database keep (until the server restarts, which applies its
/// `--retain-snapshots` / `--retain-for` again).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Retention {
    /// The newest this many snapshots (at least 1).
    #[schema(minimum = 1)]
    pub snapshots: u32,
    /// And every snapshot written within this many seconds.
    pub seconds: Option<u64>,
}

/// What opening a database found and did.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Recovery {
    /// The snapshot it started from.
    pub snapshot_seq: u64,
    /// Log records it replayed after it.
    pub replayed: u64,
    /// The sequence number it reached.
    pub seq: u64,
    /// A damaged tail of the log it cut off (a crash during an unacknowledged write), if any.
    pub torn_tail: Option<TornTailInfo>,
}

/// A cut-off tail of the log.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TornTailInfo {
    /// The segment file's name.
    pub file: String,
    /// Where the tail began.
    pub offset: u64,
    /// Its length in bytes.
    pub bytes: u64,
    /// Why it was cut.
    pub reason: String,
}
