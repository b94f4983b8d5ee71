//! The handlers of `/v1/`: each translates a request into one engine call (run off the async
//! threads, since engine calls fsync and scan) and its result into a response.

use crate::error::ApiError;
use crate::wire::*;
use crate::App;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Duration;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use valori_engine::valori_kernel::{Applied, Command, ErrorCode, Fxp};
use valori_engine::Engine;

type Shared = State<Arc<App>>;

/// Runs an engine call that changes something on the blocking pool, to its end (a write is
/// never cut off by a timeout: its answer says whether it happened).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("a request task failed: {e}")))?
}

/// Runs an engine call that only reads on the blocking pool, answering 503 after the
/// server's request timeout (the read may finish unseen; nothing changes either way).
async fn reading<T: Send + 'static>(
    app: &App,
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::time::timeout(app.limits.request_timeout, blocking(f)).await {
        Ok(r) => r,
        Err(_) => Err(ApiError::new(
            ErrorCode::Busy,
            "the request took longer than --request-timeout",
        )),
    }
}

/// The `/v1/` routes with their OpenAPI operations.
pub fn routes() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new()
        .routes(routes!(list_databases))
        .routes(routes!(database_info, create_database, drop_database))
        .routes(routes!(replication_status))
        .routes(routes!(insert))
        .routes(routes!(insert_batch))
        .routes(routes!(get_record, delete_record))
        .routes(routes!(set_metadata))
        .routes(routes!(set_tag))
        .routes(routes!(search))
        .routes(routes!(search_batch))
        .routes(routes!(create_node))
        .routes(routes!(delete_node))
        .routes(routes!(node_edges))
        .routes(routes!(traverse))
        .routes(routes!(create_edge))
        .routes(routes!(delete_edge))
        .routes(routes!(state_hash))
        .routes(routes!(history))
        .routes(routes!(history_tags))
        .routes(routes!(tag_history, untag_history))
        .routes(routes!(checkout))
        .routes(routes!(set_retention))
        .routes(routes!(recovery))
        .routes(routes!(checkpoint))
        .routes(routes!(flush))
        .routes(routes!(wal))
        .routes(routes!(export))
        .routes(routes!(snapshot))
}

fn info(name: &str, db: &Engine) -> Result<DatabaseInfo, ApiError> {
    let c = db.config()?;
    Ok(DatabaseInfo {
        name: name.to_string(),
        dim: c.dim,
        metric: c.metric.name().to_string(),
        records: db.len()? as u64,
        seq: db.sequence()?,
        index: db.index_params()?.map(|p| IndexInfo {
            kind: IndexKind::Hnsw,
            m: p.m,
            ef_construction: p.ef_construction,
        }),
    })
}

/// The search options of a request (`exact`, `ef`).
fn search_options(exact: bool, ef: Option<u32>) -> valori_engine::valori_kernel::SearchOptions {
    let default = valori_engine::valori_kernel::SearchOptions::default();
    valori_engine::valori_kernel::SearchOptions {
        exact,
        ef: ef.unwrap_or(default.ef),
    }
}

/// Lists the databases.
#[utoipa::path(get, path = "/v1/databases", tag = "databases",
    responses((status = 200, body = DatabaseList)))]
async fn list_databases(State(app): Shared) -> Result<Json<DatabaseList>, ApiError> {
    blocking(move || {
        let databases = app
            .registry
            .all()
            .iter()
            .map(|(n, db)| info(n, db))
            .collect::<Result<_, _>>()?;
        Ok(Json(DatabaseList { databases }))
    })
    .await
}

/// A database's dimension, metric, size and sequence number.
#[utoipa::path(get, path = "/v1/databases/{db}", tag = "databases",
    params(DbPath),
    responses((status = 200, body = DatabaseInfo)))]
async fn database_info(
    State(app): Shared,
    Path(DbPath { db: name }): Path<DbPath>,
) -> Result<Json<DatabaseInfo>, ApiError> {
    blocking(move || Ok(Json(info(&name, &*app.registry.get(&name)?)?))).await
}

/// Creates a database (201), or checks that an existing one has this dimension and metric
/// (200). Idempotent.
#[utoipa::path(put, path = "/v1/databases/{db}", tag = "databases",
    params(DbPath),
    request_body = CreateDatabase,
    responses((status = 200, body = DatabaseInfo, description = "It existed with this configuration"),
              (status = 201, body = DatabaseInfo, description = "Created")))]
async fn create_database(
    State(app): Shared,
    Path(DbPath { db: name }): Path<DbPath>,
    Json(req): Json<CreateDatabase>,
) -> Result<(StatusCode, Json<DatabaseInfo>), ApiError> {
    let metric = req.metric.map(MetricName::metric);
    blocking(move || {
        let index = match req.index {
            None => None,
            Some(IndexKind::Hnsw) => {
                let d = valori_engine::valori_kernel::IndexParams::default();
                Some(valori_engine::valori_kernel::IndexParams::new(
                    req.m.unwrap_or(d.m),
                    req.ef_construction.unwrap_or(d.ef_construction),
                )?)
            }
        };
        let (created, db) = app.registry.ensure(&name, req.dim, metric, index)?;
        let status = if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        Ok((status, Json(info(&name, &db)?)))
    })
    .await
}

/// Closes a database and deletes its files.
#[utoipa::path(delete, path = "/v1/databases/{db}", tag = "databases",
    params(DbPath),
    responses((status = 204, description = "Dropped")))]
async fn drop_database(
    State(app): Shared,
    Path(DbPath { db: name }): Path<DbPath>,
) -> Result<StatusCode, ApiError> {
    blocking(move || {
        app.registry.drop_database(&name, Duration::from_secs(10))?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

/// Inserts one vector; returns its id. Into the database `default`, the first insert creates
/// it with the vector's dimension (metric L2).
#[utoipa::path(post, path = "/v1/databases/{db}/records", tag = "records",
    params(DbPath),
    request_body = InsertRequest,
    responses((status = 201, body = Created)))]
async fn insert(
    State(app): Shared,
    Path(DbPath { db: name }): Path<DbPath>,
    Json(req): Json<InsertRequest>,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    let meta = unb64("metadata", req.metadata.as_deref())?;
    let vector = fixed(&req.vector)?;
    blocking(move || {
        let db = app.registry.get_for_insert(&name, vector.len())?;
        let id = match req.id {
            None => db.insert_fixed(&vector, req.tag, &meta)?,
            Some(id) => created_by(
                &db,
                &Command::Insert {
                    id: Some(id),
                    tag: req.tag,
                    vector: vector.as_slice().into(),
                    meta: &meta,
                },
            )?,
        };
        Ok((StatusCode::CREATED, Json(Created { id })))
    })
    .await
}

fn is_binary(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/octet-stream"))
}

fn wants_binary(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/octet-stream"))
}

fn json_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<T, ApiError> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return Err(ApiError::with_status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::InvalidInput,
            "send Content-Type: application/json, or application/octet-stream for rows of numbers",
        ));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::invalid(format!("invalid JSON body: {e}")))
}

fn check_batch(app: &App, rows: usize) -> Result<(), ApiError> {
    if rows > app.limits.max_batch {
        return Err(ApiError::with_status(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::InvalidInput,
            format!(
                "the batch has {rows} rows, over this server's limit of {} (--max-batch): send it in parts",
                app.limits.max_batch
            ),
        ));
    }
    Ok(())
}

/// Inserts rows atomically (one command); returns their consecutive ids. The body is JSON,
/// or `application/octet-stream`: rows of little-endian `f32` (or `f64` with `dtype=f64`),
/// then with `tags=true` one little-endian u64 tag per row. A binary body needs the database
/// to exist (its dimension says where rows end).
#[utoipa::path(post, path = "/v1/databases/{db}/records/batch", tag = "records",
    params(DbPath, BinaryInsertParams),
    request_body(content(
        (BatchInsertRequest = "application/json"),
        (Vec<u8> = "application/octet-stream")
    )),
    responses((status = 201, body = BatchCreated)))]
async fn insert_batch(
    State(app): Shared,
    Path(DbPath { db: name }): Path<DbPath>,
    Query(params): Query<BinaryInsertParams>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<(StatusCode, Json<BatchCreated>), ApiError> {
    let binary = is_binary(&headers);
    let json: Option<BatchInsertRequest> = if binary {
        None
    } else {
        Some(json_body(&headers, &body)?)
    };
    blocking(move || {
        let (rows, vectors, tags, dim) = match json {
            Some(req) => {
                check_batch(&app, req.vectors.len())?;
                let dim = req.vectors.first().map_or(0, Vec::len);
                let db_dim = app.registry.get(&name).ok().and_then(|d| d.config().ok());
                let dim = db_dim.map_or(dim, |c| c.dim as usize);
                let v = fixed_rows(&req.vectors, dim)?;
                let tags = match req.tags {
                    Some(t) if t.len() != req.vectors.len() => {
                        return Err(ApiError::invalid(format!(
                            "expected {} tags, got {}",
                            req.vectors.len(),
                            t.len()
                        )))
                    }
                    t => t.unwrap_or_default(),
                };
                (req.vectors.len(), v, tags, dim)
            }
            None => {
                let db = app.registry.get(&name)?;
                let dim = db.config()?.dim as usize;
                let (rows, v, tags) = binary_batch(
                    &body,
                    dim,
                    params.dtype.unwrap_or_default(),
                    params.tags.unwrap_or(false),
                )?;
                check_batch(&app, rows)?;
                (rows, v, tags, dim)
            }
        };
        if rows == 0 {
            return Err(ApiError::invalid("the batch is empty"));
        }
        let db = app.registry.get_for_insert(&name, dim)?;
        let ids = db.insert_batch_fixed(&vectors, &tags)?;
        Ok((
            StatusCode::CREATED,
            Json(BatchCreated {
                first_id: ids.start,
                count: ids.end - ids.start,
            }),
        ))
    })
    .await
}

/// A record.
#[utoipa::path(get, path = "/v1/databases/{db}/records/{id}", tag = "records",
    params(DbIdPath),
    responses((status = 200, body = RecordBody)))]
async fn get_record(
    State(app): Shared,
    Path(DbIdPath { db: name, id }): Path<DbIdPath>,
) -> Result<Json<RecordBody>, ApiError> {
    blocking(move || {
        let r = app.registry.get(&name)?.get(id)?.ok_or_else(|| {
            ApiError::new(ErrorCode::NotFound, format!("record {id} does not exist"))
        })?;
        Ok(Json(RecordBody {
            id: r.id,
            tag: r.tag,
            metadata: b64(&r.meta),
            vector: r.vector.iter().map(|v| v.to_f64()).collect(),
        }))
    })
    .await
}

/// Deletes a record, the graph nodes linked to it and their edges.
#[utoipa::path(delete, path = "/v1/databases/{db}/records/{id}", tag = "records",
    params(DbIdPath),
    responses((status = 204, description = "Deleted")))]
async fn delete_record(
    State(app): Shared,
    Path(DbIdPath { db: name, id }): Path<DbIdPath>,
) -> Result<StatusCode, ApiError> {
    write(app, name, move |db| db.delete(id)).await
}

async fn write(
    app: Arc<App>,
    name: String,
    f: impl FnOnce(&Engine) -> valori_engine::Result<()> + Send + 'static,
) -> Result<StatusCode, ApiError> {
    blocking(move || {
        f(&*app.registry.get(&name)?)?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

async fn create(
    app: Arc<App>,
    name: String,
    f: impl FnOnce(&Engine) -> valori_engine::Result<u64> + Send + 'static,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    blocking(move || {
        let id = f(&*app.registry.get(&name)?)?;
        Ok((StatusCode::CREATED, Json(Created { id })))
    })
    .await
}

/// Replaces a record's metadata.
#[utoipa::path(put, path = "/v1/databases/{db}/records/{id}/metadata", tag = "records",
    params(DbIdPath),
    request_body = MetadataRequest,
    responses((status = 204, description = "Replaced")))]
async fn set_metadata(
    State(app): Shared,
    Path(DbIdPath { db: name, id }): Path<DbIdPath>,
    Json(req): Json<MetadataRequest>,
) -> Result<StatusCode, ApiError> {
    let meta = unb64("metadata", Some(&req.metadata))?;
    write(app, name, move |db| db.set_meta(id, &meta)).await
}

/// Replaces a record's tag.
#[utoipa::path(put, path = "/v1/databases/{db}/records/{id}/tag", tag = "records",
    params(DbIdPath),
    request_body = TagRequest,
    responses((status = 204, description = "Replaced")))]
async fn set_tag(
    State(app): Shared,
    Path(DbIdPath { db: name, id }): Path<DbIdPath>,
    Json(req): Json<TagRequest>,
) -> Result<StatusCode, ApiError> {
    write(app, name, move |db| db.set_tag(id, req.tag)).await
}

/// Refuses a `k` whose answer would exceed the server's limit (a larger `k` on a smaller
/// store returns every record, as in process).
fn check_k(app: &App, db: &Engine, k: u32) -> Result<(), ApiError> {
    if k as usize > app.limits.max_k && db.len()? > app.limits.max_k {
        return Err(ApiError::invalid(format!(
            "k = {k} is over this server's limit of {} (--max-k)",
            app.limits.max_k
        )));
    }
    Ok(())
}

/// Exact k nearest records to a query, in (distance, id) order.
#[utoipa::path(post, path = "/v1/databases/{db}/search", tag = "search",
    params(DbPath),
    request_body = SearchRequest,
    responses((status = 200, body = SearchResponse)))]
async fn search(
    State(app): Shared,
    Path(DbPath { db: name }): Path<DbPath>,
    Json(req): Json<SearchRequest>,
) -> Result<Json<SearchResponse>, ApiError> {
    let q = fixed(&req.vector)?;
    let limits = app.clone();
    reading(&limits, move || {
        let db = app.registry.get(&name)?;
        check_k(&app, &db, req.k)?;
        let metric = db.config()?.metric;
        let hits = db
            .search_with(&q, req.k, req.tag, search_options(req.exact, req.ef))?
            .iter()
            .map(|h| Hit {
                id: h.id,
                distance: metric.distance_to_f64(h.distance),
            })
            .collect();
        Ok(Json(SearchResponse { hits }))
    })
    .await
}

/// Searches many queries in one pass. The body is JSON, or `application/octet-stream` rows of
/// little-endian `f32` (or `f64` with `dtype=f64`) with `k` and `tag` in the query. With
/// `Accept: application/octet-stream` the answer is binary: u32 n, u32 width, then n × width
/// u64 ids, then n × width f64 distances, all little-endian.
#[utoipa::path(post, path = "/v1/databases/{db}/search/batch", tag = "search",
    params(DbPath, BinarySearchParams),
    request_body(content(
        (BatchSearchRequest = "application/json"),
        (Vec<u8> = "application/octet-stream")
    )),
    responses((status = 200, content(
        (BatchSearchResponse = "application/json"),
        (Vec<u8> = "application/octet-stream")
    ))))]
async fn search_batch(
    State(app): Shared,
    Path(DbPath { db: name }): Path<DbPath>,
    Query(params): Query<BinarySearchParams>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let binary_out = wants_binary(&headers);
    let json: Option<BatchSearchRequest> = if is_binary(&headers) {
        None
    } else {
        Some(json_body(&headers, &body)?)
    };
    let limits = app.clone();
    reading(&limits, move || {
        let db = app.registry.get(&name)?;
        let config = db.config()?;
        let (dim, metric) = (config.dim as usize, config.metric);
        let (n, queries, k, tag, opts) = match json {
            Some(req) => (
                req.vectors.len(),
                fixed_rows(&req.vectors, dim)?,
                req.k,
                req.tag,
                search_options(req.exact, req.ef),
            ),
            None => {
                let (n, q) = binary_rows(&body, dim, params.dtype.unwrap_or_default())?;
                let opts = search_options(params.exact.unwrap_or(false), params.ef);
                (n, q, params.k.unwrap_or(10), params.tag, opts)
            }
        };
        check_k(&app, &db, k)?;
        check_batch(&app, n)?;
        let (width, hits) = db.search_batch_with(&queries, k, tag, opts)?;
        if binary_out {
            let mut out = Vec::with_capacity(8 + hits.len() * 16);
            out.extend_from_slice(&(n as u32).to_le_bytes());
            out.extend_from_slice(&(width as u32).to_le_bytes());
            for h in &hits {
                out.extend_from_slice(&h.id.to_le_bytes());
            }
            for h in &hits {
                out.extend_from_slice(&metric.distance_to_f64(h.distance).to_le_bytes());
            }
            return Ok(([(header::CONTENT_TYPE, "application/octet-stream")], out).into_response());
        }
        // One row per query (empty rows when nothing matches).
        let rows = (0..n).map(|q| hits.get(q * width..(q + 1) * width).unwrap_or_default());
        let ids = rows
            .clone()
            .map(|r| r.iter().map(|h| h.id).collect())
            .collect();
        let distances = rows
            .map(|r| {
                r.iter()
                    .map(|h| metric.distance_to_f64(h.distance))
                    .collect()
            })
            .collect();
        Ok(Json(BatchSearchResponse {
            width: width as u64,
            ids,
            distances,
        })
        .into_response())
    })
    .await
}

/// Applies a create command under a caller-chosen id; the id.
fn created_by(db: &Engine, cmd: &Command<'_>) -> Result<u64, valori_engine::Error> {
    match db.apply(cmd)? {
        Applied::Created(id) => Ok(id),
        other => Err(valori_engine::Error::Invalid(format!(
            "a create command reported {other:?} (a bug in valori)"
        ))),
    }
}

/// Creates a graph node; returns its id.
#[utoipa::path(post, path = "/v1/databases/{db}/nodes", tag = "graph",
    params(DbPath),
    request_body = NodeRequest,
    responses((status = 201, body = Created)))]
async fn create_node(
    State(app): Shared,
    Path(DbPath { db: name }): Path<DbPath>,
    Json(req): Json<NodeRequest>,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    let label = unb64("label", req.label.as_deref())?;
    create(app, name, move |db| match req.id {
        None => db.create_node(req.kind, req.record, &label),
        Some(id) => created_by(
            db,
            &Command::CreateNode {
                id: Some(id),
                kind: req.kind,
                record: req.record,
                label: &label,
            },
        ),
    })
    .await
}

/// Deletes a node and every edge into or out of it.
#[utoipa::path(delete, path = "/v1/databases/{db}/nodes/{id}", tag = "graph",
    params(DbIdPath),
    responses((status = 204, description = "Deleted")))]
async fn delete_node(
    State(app): Shared,
    Path(DbIdPath { db: name, id }): Path<DbIdPath>,
) -> Result<StatusCode, ApiError> {
    write(app, name, move |db| db.delete_node(id)).await
}

/// Edges at a node.
#[utoipa::path(get, path = "/v1/databases/{db}/nodes/{id}/edges", tag = "graph",
    params(DbIdPath, EdgesParams),
    responses((status = 200, body = EdgeList)))]
async fn node_edges(
    State(app): Shared,
    Path(DbIdPath { db: name, id }): Path<DbIdPath>,
    Query(p): Query<EdgesParams>,
) -> Result<Json<EdgeList>, ApiError> {
    blocking(move || {
        let db = app.registry.get(&name)?;
        let d = p.direction.unwrap_or_default().direction();
        let edges = db.with_kernel(|k| -> Result<Vec<EdgeBody>, ApiError> {
            Ok(k.neighbors(id, d)?
                .map(|e| EdgeBody {
                    id: e.id,
                    kind: e.kind,
                    source: e.from,
                    target: e.to,
                    weight: e.weight.map(Fxp::to_f64),
                })
                .collect())
        })??;
        Ok(Json(EdgeList { edges }))
    })
    .await
}

/// Nodes within `hops` edges of a node, in (depth, node) order.
#[utoipa::path(get, path = "/v1/databases/{db}/nodes/{id}/traverse", tag = "graph",
    params(DbIdPath, TraverseParams),
    responses((status = 200, body = TraverseResponse)))]
async fn traverse(
    State(app): Shared,
    Path(DbIdPath { db: name, id }): Path<DbIdPath>,
    Query(p): Query<TraverseParams>,
) -> Result<Json<TraverseResponse>, ApiError> {
    blocking(move || {
        let db = app.registry.get(&name)?;
        let d = p.direction.unwrap_or_default().direction();
        let nodes = db
            .traverse(id, p.hops, d, p.kind)?
            .iter()
            .map(|h| HopBody {
                depth: h.depth,
                node: h.node,
            })
            .collect();
        Ok(Json(TraverseResponse { nodes }))
    })
    .await
}

/// Creates a directed edge between existing nodes; returns its id.
#[utoipa::path(post, path = "/v1/databases/{db}/edges", tag = "graph",
    params(DbPath),
    request_body = EdgeRequest,
    responses((status = 201, body = Created)))]
async fn create_edge(
    State(app): Shared,
    Path(DbPath { db: name }): Path<DbPath>,
    Json(req): Json<EdgeRequest>,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    let weight = req.weight.map(|w| Fxp::from_f64(w, 0)).transpose()?;
    create(app, name, move |db| match req.id {
        None => db.create_edge_fixed(req.kind, req.source, req.target, weight),
        Some(id) => created_by(
            db,
            &Command::CreateEdge {
                id: Some(id),
                kind: req.kind,
                from: req.source,
                to: req.target,
                weight,
            },
        ),
    })
    .await
}

/// Deletes an edge.
#[utoipa::path(delete, path = "/v1/databases/{db}/edges/{id}", tag = "graph",
    params(DbIdPath),
    responses((status = 204, description = "Deleted")))]
async fn delete_edge(
    State(app): Shared,
    Path(DbIdPath { db: name, id }): Path<DbIdPath>,
) -> Result<StatusCode, ApiError> {
    write(app, name, move |db| db.delete_edge(id)).await
}

/// The database's replication (docs/REPLICATION.md): `leader` (it publishes its log to the
/// stream: the last record the stream acknowledged), `follower` (it applies the stream's
/// records: how many are pending), or `none`; its sequence number and state hash, so that a
/// leader and its followers can be compared; and why replication stopped, if it did.
#[utoipa::path(get, path = "/v1/databases/{db}/replication", tag = "state",
    params(DbPath),
    responses((status = 200, body = crate::replication::ReplicationStatus)))]
async fn replication_status(
    State(app): Shared,
    Path(DbPath { db: name }): Path<DbPath>,
) -> Result<Json<crate::replication::ReplicationStatus>, ApiError> {
    blocking(move || {
        let db = app.registry.get(&name)?;
        match app.replication() {
            Some(r) => Ok(Json(r.status(&name, &db)?)),
            None => {
                let (hash, sequence) = db.state_hash_at()?;
                Ok(Json(crate::replication::ReplicationStatus {
                    role: "none".into(),
                    url: None,
                    sequence,
                    state_hash: hex::encode(hash),
                    published: None,
                    pending: None,
                    error: None,
                }))
            }
        }
    })
    .await
}

/// The state hash and the sequence number it is at; with `at`, the hash of that past state,
/// rebuilt from the retained snapshots and log.
#[utoipa::path(get, path = "/v1/databases/{db}/state", tag = "state",
    params(DbPath, StateParams),
    responses((status = 200, body = StateHash)))]
async fn state_hash(
    State(app): Shared,
    Path(DbPath { db: name }): Path<DbPath>,
    Query(p): Query<StateParams>,
) -> Result<Json<StateHash>, ApiError> {
    blocking(move || {
        let db = app.registry.get(&name)?;
        let (hash, seq) = match p.at {
            Some(at) => (db.state_at_seq(at)?.0.state_hash(), at),
            None => db.state_hash_at()?,
        };
        Ok(Json(StateHash {
            state_hash: hex::encode(hash),
            seq,
        }))
    })
    .await
}

/// Logged commands from a sequence number on (the retained log): sequence number, command,
/// bytes and chain value.
#[utoipa::path(get, path = "/v1/databases/{db}/history", tag = "state",
    params(DbPath, HistoryParams),
    responses((status = 200, body = History)))]
async fn history(
    State(app): Shared,
    Path(DbPath { db: name }): Path<DbPath>,
    Query(p): Query<HistoryParams>,
) -> Result<Json<History>, ApiError> {
    let limit = p.limit.unwrap_or(100);
    if limit > 10_000 {
        return Err(ApiError::invalid(format!(
            "limit = {limit} is over 10000; page with from"
        )));
    }
    blocking(move || {
        let db = app.registry.get(&name)?;
        let entries = db.history(p.from.unwrap_or(1), limit as usize)?;
        let entries = entries
            .iter()
            .map(|e| {
                Ok(HistoryEntry {
                    seq: e.seq,
                    kind: valori_engine::decode_entry(e)?.name().to_string(),
                    bytes: e.command.len() as u64,
                    chain: hex::encode(e.chain),
                })
            })
            .collect::<Result<Vec<_>, valori_engine::Error>>()?;
        Ok(Json(History { entries }))
    })
    .await
}

/// The history tags: named points of the history, pinned against retention.
#[utoipa::path(get, path = "/v1/databases/{db}/history/tags", tag = "state",
    params(DbPath),
    responses((status = 200, body = HistoryTags)))]
async fn history_tags(
    State(app): Shared,
    Path(DbPath { db: name }): Path<DbPath>,
) -> Result<Json<HistoryTags>, ApiError> {
    blocking(move || {
        let tags = app.registry.get(&name)?.history_tags()?;
        Ok(Json(HistoryTags {
            tags: tags
                .into_iter()
                .map(|t| HistoryTagInfo {
                    name: t.name,
                    seq: t.seq,
                })
                .collect(),
        }))
    })
    .await
}

/// Names the state after command `seq` (default, with `{}`: the latest), pinning it against
/// retention; a tag of that name is moved.
#[utoipa::path(put, path = "/v1/databases/{db}/history/tags/{name}", tag = "state",
    params(TagPath),
    request_body = TagHistory,
    responses((status = 204, description = "Tagged")))]
async fn tag_history(
    State(app): Shared,
    Path(TagPath {
        db: name,
        name: tag,
    }): Path<TagPath>,
    Json(TagHistory { seq }): Json<TagHistory>,
) -> Result<StatusCode, ApiError> {
    write(app, name, move |db| {
        let seq = match seq {
            Some(s) => s,
            None => db.sequence()?,
        };
        db.tag_history(&tag, seq)
    })
    .await
}

/// Removes a history tag (`NOT_FOUND` if there is none of that name).
#[utoipa::path(delete, path = "/v1/databases/{db}/history/tags/{name}", tag = "state",
    params(TagPath),
    responses((status = 204, description = "Removed")))]
async fn untag_history(
    State(app): Shared,
    Path(TagPath {
        db: name,
        name: tag,
    }): Path<TagPath>,
) -> Result<StatusCode, ApiError> {
    write(app, name, move |db| db.untag_history(&tag)).await
}

/// Writes the state after command `seq` as a new database and serves it.
#[utoipa::path(post, path = "/v1/databases/{db}/checkout", tag = "state",
    params(DbPath),
    request_body = Checkout,
    responses((status = 201, body = CheckedOut)))]
async fn checkout(
    State(app): Shared,
    Path(DbPath { db: name }): Path<DbPath>,
    Json(req): Json<Checkout>,
) -> Result<(StatusCode, Json<CheckedOut>), ApiError> {
    blocking(move || {
        let (db, hash) = app.registry.checkout(&name, req.seq, &req.database)?;
        Ok((
            StatusCode::CREATED,
            Json(CheckedOut {
                database: info(&req.database, &db)?,
                state_hash: hex::encode(hash),
            }),
        ))
    })
    .await
}

/// Sets what this database's later checkpoints keep, until the server restarts.
#[utoipa::path(put, path = "/v1/databases/{db}/retention", tag = "state",
    params(DbPath),
    request_body = Retention,
    responses((status = 204, description = "Set")))]
async fn set_retention(
    State(app): Shared,
    Path(DbPath { db: name }): Path<DbPath>,
    Json(req): Json<Retention>,
) -> Result<StatusCode, ApiError> {
    if req.snapshots == 0 {
        return Err(ApiError::invalid(
            "snapshots must be at least 1 (the newest snapshot is always kept)",
        ));
    }
    write(app, name, move |db| {
        db.set_retain_snapshots(req.snapshots);
        db.set_retain_for(req.seconds.map(Duration::from_secs));
        Ok(())
    })
    .await
}

/// What opening the database found and did when the server started.
#[utoipa::path(get, path = "/v1/databases/{db}/recovery", tag = "state",
    params(DbPath),
    responses((status = 200, body = Recovery)))]
async fn recovery(
    State(app): Shared,
    Path(DbPath { db: name }): Path<DbPath>,
) -> Result<Json<Recovery>, ApiError> {
    let r = app.registry.get(&name)?.recovery_report().clone();
    Ok(Json(Recovery {
        snapshot_seq: r.snapshot_seq,
        replayed: r.replayed,
        seq: r.seq,
        torn_tail: r.torn_tail.map(|t| TornTailInfo {
            file: t
                .file
                .file_name()
                .map_or_else(String::new, |f| f.to_string_lossy().into_owned()),
            offset: t.offset,
            bytes: t.bytes,
            reason: t.reason,
        }),
    }))
}

/// Writes a snapshot and retires the log it covers.
#[utoipa::path(post, path = "/v1/databases/{db}/checkpoint", tag = "state",
    params(DbPath),
    responses((status = 204, description = "Checkpointed")))]
async fn checkpoint(
    State(app): Shared,
    Path(DbPath { db: name }): Path<DbPath>,
) -> Result<StatusCode, ApiError> {
    write(app, name, |db| db.checkpoint()).await
}

/// Makes every acknowledged write durable (useful with `--durability none`).
#[utoipa::path(post, path = "/v1/databases/{db}/flush", tag = "state",
    params(DbPath),
    responses((status = 204, description = "Flushed")))]
async fn flush(
    State(app): Shared,
    Path(DbPath { db: name }): Path<DbPath>,
) -> Result<StatusCode, ApiError> {
    write(app, name, |db| db.flush()).await
}

/// Streams the logged commands after a sequence number, one JSON object per line
/// (`{"seq": n, "command": base64}`), read back from disk page by page through the last command
/// logged when the request came (held against retention while it streams). The log reaches
/// back as far as retention keeps it; commands before that are only in a snapshot:
/// `NOT_FOUND` (use `/export`).
#[utoipa::path(get, path = "/v1/databases/{db}/wal", tag = "state",
    params(DbPath, WalParams),
    responses((status = 200, content((WalLine = "application/x-ndjson")))))]
async fn wal(
    State(app): Shared,
    Path(DbPath { db: name }): Path<DbPath>,
    Query(p): Query<WalParams>,
) -> Result<Response, ApiError> {
    let state = blocking(move || {
        let db = app.registry.get(&name)?;
        let stats = db.stats()?;
        let after = p.after.unwrap_or(stats.snapshot_seq);
        if after > stats.seq {
            return Err(ApiError::invalid(format!(
                "after = {after} is past the last sequence number, {}",
                stats.seq
            )));
        }
        let pin = match db.pin_log(after + 1) {
            Err(valori_engine::Error::NotRetained {
                first: Some(first), ..
            }) => {
                return Err(ApiError::new(
                    ErrorCode::NotFound,
                    format!(
                        "the commands after {after} are no longer in the log, which begins at {first}: download /export (the newest snapshot's state and the commands after it) or ask for after >= {}",
                        first - 1
                    ),
                ))
            }
            r => r?,
        };
        Ok(WalStream {
            db,
            pin,
            last: stats.seq,
        })
    })
    .await?;
    Ok(stream_pieces(
        "application/x-ndjson",
        state,
        WalStream::next,
    ))
}

/// A `/wal` response being read back: the log from the pin's point through `last`.
struct WalStream {
    db: Arc<Engine>,
    pin: valori_engine::LogPin,
    last: u64,
}

impl WalStream {
    /// The next page of lines; `None` after `last`.
    fn next(&mut self) -> Result<Option<Vec<u8>>, ApiError> {
        let entries = self.db.read_pinned(&mut self.pin, self.last, 1024)?;
        if entries.is_empty() {
            return Ok(None);
        }
        let mut out = Vec::new();
        for e in &entries {
            serde_json::to_writer(
                &mut out,
                &WalLine {
                    seq: e.seq,
                    command: b64(&e.command),
                },
            )
            .map_err(|e| ApiError::internal(e.to_string()))?;
            out.push(b'\n');
        }
        Ok(Some(out))
    }
}

/// The newest snapshot's state and the commands logged after it, in the export encoding
/// (docs/FORMAT.md §12), streamed (the commands are read back page by page, held against
/// retention meanwhile); `replay` of it must give the state hash it carries.
#[utoipa::path(get, path = "/v1/databases/{db}/export", tag = "state",
    params(DbPath),
    responses((status = 200, content((Vec<u8> = "application/octet-stream")))))]
async fn export(
    State(app): Shared,
    Path(DbPath { db: name }): Path<DbPath>,
) -> Result<Response, ApiError> {
    let state = blocking(move || {
        let db = app.registry.get(&name)?;
        let reader = db.export_reader()?;
        Ok((db, reader))
    })
    .await?;
    Ok(stream_pieces(
        "application/octet-stream",
        state,
        |(db, reader)| Ok(reader.next_piece(db)?),
    ))
}

/// A body made of the pieces `next` reads on the blocking pool, one at a time, until it gives
/// `None`. An error after the answer has begun can only cut the body short: the client sees a
/// truncated transfer (and the server logs why).
fn stream_pieces<S: Send + 'static>(
    content_type: &'static str,
    state: S,
    next: fn(&mut S) -> Result<Option<Vec<u8>>, ApiError>,
) -> Response {
    let pieces = futures_util::stream::unfold(Some(state), move |state| async move {
        let mut state = state?;
        let read = tokio::task::spawn_blocking(move || {
            let piece = next(&mut state);
            (state, piece)
        })
        .await;
        let failed = match read {
            Ok((state, Ok(Some(piece)))) => return Some((Ok(Bytes::from(piece)), Some(state))),
            Ok((_, Ok(None))) => return None,
            Ok((_, Err(e))) => e.body.message,
            Err(e) => format!("a streaming task failed: {e}"),
        };
        tracing::error!(error = %failed, "a streamed answer was cut short");
        Some((Err(std::io::Error::other(failed)), None))
    });
    (
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(pieces),
    )
        .into_response()
}

/// A portable kernel snapshot of the current state (docs/FORMAT.md §13: framed with its state
/// hash, so restoring a damaged copy fails), streamed.
#[utoipa::path(get, path = "/v1/databases/{db}/snapshot", tag = "state",
    params(DbPath),
    responses((status = 200, content((Vec<u8> = "application/octet-stream")))))]
async fn snapshot(
    State(app): Shared,
    Path(DbPath { db: name }): Path<DbPath>,
) -> Result<Response, ApiError> {
    let bytes =
        blocking(move || Ok(app.registry.get(&name)?.with_kernel(|k| k.snapshot())?)).await?;
    Ok(chunked(bytes))
}

/// A body sent in 1 MiB chunks.
fn chunked(bytes: Vec<u8>) -> Response {
    let bytes = Bytes::from(bytes);
    let chunks: Vec<Result<Bytes, std::convert::Infallible>> = (0..bytes.len())
        .step_by(1 << 20)
        .map(|at| Ok(bytes.slice(at..(at + (1 << 20)).min(bytes.len()))))
        .collect();
    (
        [(header::CONTENT_TYPE, "application/octet-stream")],
        Body::from_stream(futures_util::stream::iter(chunks)),
    )
        .into_response()
}
