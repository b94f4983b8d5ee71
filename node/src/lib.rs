//! valori-node: Valori's databases served over HTTP.
//!
//! One process serves several named databases, each a directory under the data directory,
//! through the engine's typed API (nothing is implemented twice). `/v1/` is the REST API
//! (JSON, with compact binary bodies for batches), `/openapi.json` its OpenAPI 3.1 schema
//! (generated from the handlers), `/healthz`, `/readyz` and `/metrics` (Prometheus) the
//! operations endpoints. See docs/HTTP-API.md.
//!
//! Secure defaults: it listens on 127.0.0.1, refuses a non-loopback address unless API keys
//! are configured, compares keys in constant time, limits bodies, batches, `k`, concurrent
//! requests and request time, and answers every error in one JSON shape
//! (`{"code": "DIMENSION", "message": ...}`) with the codes of the C and Python APIs.

#![forbid(unsafe_code)]

mod api;
pub mod auth;
mod config;
pub mod error;
mod metrics;
pub mod registry;
pub mod replication;
pub mod wire;

pub use config::{Args, DurabilityArg, Limits, LogFormat as LogFormatArg};

use auth::{KeyKind, Keys};
use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use error::{ApiError, ErrorBody};
use metrics::Metrics;
use registry::Registry;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::ServiceBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
use utoipa::OpenApi;
use valori_engine::valori_kernel::ErrorCode;

/// Everything a request handler shares.
pub struct App {
    /// The open databases.
    pub registry: Registry,
    keys: Keys,
    limits: Limits,
    metrics: Metrics,
    ready: AtomicBool,
    replication: std::sync::Mutex<Option<Arc<replication::Replication>>>,
}

impl App {
    /// A server state over `registry`.
    pub fn new(registry: Registry, keys: Keys, limits: Limits) -> Arc<App> {
        Arc::new(App {
            registry,
            keys,
            limits,
            metrics: Metrics::default(),
            ready: AtomicBool::new(true),
            replication: std::sync::Mutex::new(None),
        })
    }

    /// The server's replication (`--replicate` or `--follow`), if any.
    pub fn replication(&self) -> Option<Arc<replication::Replication>> {
        self.replication
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn set_replication(&self, r: Arc<replication::Replication>) {
        *self.replication.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
    }

    /// Stops replicating (at shutdown, so that the databases can be closed).
    fn stop_replication(&self) {
        self.replication
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "valori-node",
        description = "Valori's deterministic vector + graph databases over HTTP. Every error answer is an ErrorBody whose `code` is a row of the error table (as in C and Python).",
        license(name = "MIT OR Apache-2.0")
    ),
    components(schemas(ErrorBody, wire::DirectionName, wire::Dtype, wire::MetricName)),
    modifiers(&Conventions),
    tags(
        (name = "databases", description = "Named databases"),
        (name = "records", description = "Vectors with tags and metadata"),
        (name = "search", description = "Exact k-nearest-neighbour search"),
        (name = "graph", description = "The knowledge graph"),
        (name = "state", description = "State hash, checkpoints, the log and snapshots"),
    )
)]
struct ApiDoc;

/// Adds what every operation shares: the bearer key and the error answers.
struct Conventions;

impl utoipa::Modify for Conventions {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key (read-write or read-only), when the server has keys",
                    ))
                    .build(),
            ),
        );
        let errors = [
            ("400", "Invalid input (nothing changed)"),
            ("401", "No API key, or an unknown one"),
            ("403", "A read-only API key on a write"),
            ("404", "No such database, record, node or edge"),
            ("409", "Conflict: exists, full, or the handle refuses it"),
            ("413", "Body or batch over the server's limits"),
            ("415", "Unsupported Content-Type"),
            ("422", "Wrong vector dimension"),
            ("429", "Too many requests in flight; retry later"),
            (
                "500",
                "A server-side fault (damaged files, I/O error, a bug)",
            ),
            (
                "503",
                "Busy, stopped after a failed write, timed out, or shutting down",
            ),
        ];
        let requirement =
            utoipa::openapi::security::SecurityRequirement::new("api_key", Vec::<String>::new());
        for item in openapi.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                for (status, description) in errors {
                    op.responses
                        .responses
                        .entry(status.to_string())
                        .or_insert_with(|| {
                            ResponseBuilder::new()
                                .description(description)
                                .content(
                                    "application/json",
                                    ContentBuilder::new()
                                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                                        .build(),
                                )
                                .build()
                                .into()
                        });
                }
                op.security = Some(vec![requirement.clone()]);
            }
        }
    }
}

/// The OpenAPI 3.1 schema of the REST API (what `/openapi.json` serves).
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, api) = api::routes().split_for_parts();
    let mut doc = ApiDoc::openapi();
    doc.merge(api);
    utoipa::Modify::modify(&Conventions, &mut doc);
    doc
}

/// [`openapi`] as pretty JSON with a final newline (what docs/openapi.json holds).
pub fn openapi_json() -> String {
    let mut s = openapi().to_pretty_json().unwrap_or_default();
    s.push('\n');
    s
}

/// The whole service: `/v1/` with its limits and keys, and the operations endpoints.
pub fn router(app: Arc<App>) -> Router {
    let spec = Arc::new(openapi());
    let limits = app.limits.clone();
    let (v1, _) = api::routes().split_for_parts();
    let v1 = v1
        // One semaphore for every route (a plain `concurrency_limit` would give each route its
        // own): over the limit a request is answered 429 at once.
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(overloaded))
                .load_shed()
                .layer(GlobalConcurrencyLimitLayer::new(limits.max_concurrency)),
        )
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .with_state(app.clone());
    Router::new()
        .merge(v1)
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route(
            "/openapi.json",
            get(move || {
                let spec = spec.clone();
                async move { axum::Json(spec.as_ref().clone()) }
            }),
        )
        .fallback(|| async {
            ApiError::new(ErrorCode::NotFound, "no such route: see /openapi.json")
        })
        .method_not_allowed_fallback(|| async {
            ApiError::with_status(
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::InvalidInput,
                "this route does not take that method: see /openapi.json",
            )
        })
        .layer(middleware::from_fn_with_state(app.clone(), stream_ack))
        .layer(middleware::from_fn_with_state(app.clone(), authorize))
        .layer(middleware::from_fn_with_state(app.clone(), track))
        .with_state(app)
}

/// With `--durability stream`, a write to a database is answered only once the replication
/// stream has acknowledged everything the database has logged (one place for every route
/// that writes: by route template, as [`reads_only`] decides).
async fn stream_ack(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let Some(rep) = app.replication() else {
        return next.run(req).await;
    };
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string());
    let writes = !reads_only(req.method(), route.as_deref())
        && route
            .as_deref()
            .is_some_and(|r| r.starts_with("/v1/databases/{db}"));
    let db = writes
        .then(|| req.uri().path().strip_prefix("/v1/databases/"))
        .flatten()
        .and_then(|rest| rest.split('/').next())
        .map(str::to_string);
    if let Some(name) = &db {
        if let Err(e) = rep.before_write(name) {
            return e.into_response();
        }
        if req.method() == Method::DELETE && route.as_deref() == Some("/v1/databases/{db}") {
            // Dropping: stop replicating it first, so that nothing else holds it.
            rep.stop(name).await;
        }
    }
    let response = next.run(req).await;
    let Some(name) = db.filter(|_| response.status().is_success()) else {
        return response;
    };
    let Ok(engine) = app.registry.get(&name) else {
        return response; // dropped by this request
    };
    match rep
        .after_write(&name, &engine, app.limits.request_timeout)
        .await
    {
        Ok(()) => response,
        Err(e) => e.into_response(),
    }
}

async fn overloaded(e: tower::BoxError) -> ApiError {
    if e.is::<tower::load_shed::error::Overloaded>() {
        ApiError::with_status(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::Busy,
            "too many requests in flight (--max-concurrency); retry later",
        )
    } else {
        ApiError::internal(format!("request failed: {e}"))
    }
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    if app.ready.load(Ordering::SeqCst) {
        "ready\n".into_response()
    } else {
        ApiError::new(ErrorCode::Busy, "shutting down").into_response()
    }
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let text = tokio::task::spawn_blocking(move || app.metrics.render(&app.registry))
        .await
        .unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// True for calls that only read (a read-only key may make them): by route template.
fn reads_only(method: &Method, route: Option<&str>) -> bool {
    method == Method::GET
        || method == Method::HEAD
        || (method == Method::POST
            && matches!(
                route,
                Some("/v1/databases/{db}/search" | "/v1/databases/{db}/search/batch")
            ))
}

async fn authorize(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if matches!(path, "/healthz" | "/readyz" | "/openapi.json") {
        return next.run(req).await;
    }
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    let mut answer = match app.keys.check(header) {
        Err(e) => e.into_response(),
        Ok(Some(KeyKind::ReadOnly)) if !reads_only(req.method(), route) => {
            ApiError::forbidden().into_response()
        }
        Ok(_) => return next.run(req).await,
    };
    if answer.status() == StatusCode::UNAUTHORIZED {
        answer.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
    }
    answer
}

/// Counts and logs every request by route template and status.
async fn track(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    // A fixed set of method labels: any other method (the client picks it) counts as OTHER.
    let method = match *req.method() {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    };
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let response = next.run(req).await;
    let seconds = start.elapsed().as_secs_f64();
    let status = response.status().as_u16();
    app.metrics.observe(method, &route, status, seconds);
    tracing::info!(
        method,
        route = %route,
        status,
        micros = (seconds * 1e6) as u64,
        "request"
    );
    response
}

/// Serves `app` on `listener` until `shutdown` completes; then stops accepting, lets the
/// requests under way finish, and flushes and closes every database. With `tls` (a PEM
/// certificate chain and private key) it speaks HTTPS only (rustls, TLS 1.2 and 1.3).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    tls: Option<Tls>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let router = router(app.clone());
    let ready = app.clone();
    let stopping = async move {
        shutdown.await;
        ready.ready.store(false, Ordering::SeqCst);
        tracing::info!("shutting down: draining requests");
    };
    let served = match tls {
        None => {
            // Draining waits for open connections; after DRAIN_DEADLINE (a slow download)
            // they are dropped so that the databases still get flushed and closed.
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let serving = axum::serve(listener, router).with_graceful_shutdown(async move {
                stopping.await;
                let _ = tx.send(());
            });
            let deadline = async move {
                if rx.await.is_ok() {
                    tokio::time::sleep(DRAIN_DEADLINE).await;
                } else {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                r = serving => r.map_err(|e| format!("serving: {e}")),
                () = deadline => {
                    tracing::warn!("requests still running after the drain deadline; closing");
                    Ok(())
                }
            }
        }
        Some(tls) => {
            let handle = axum_server::Handle::new();
            let drain = handle.clone();
            tokio::spawn(async move {
                stopping.await;
                drain.graceful_shutdown(Some(DRAIN_DEADLINE));
            });
            let std = listener
                .into_std()
                .map_err(|e| format!("preparing the listener for TLS: {e}"))?;
            axum_server::from_tcp_rustls(std, tls.config)
                .handle(handle)
                .serve(router.into_make_service())
                .await
                .map_err(|e| format!("serving: {e}"))
        }
    };
    app.stop_replication();
    let closing = app.clone();
    let errors =
        tokio::task::spawn_blocking(move || closing.registry.close_all(Duration::from_secs(30)))
            .await
            .unwrap_or_else(|e| vec![format!("closing: {e}")]);
    served?;
    if errors.is_empty() {
        tracing::info!("every database flushed and closed");
        Ok(())
    } else {
        Err(format!("closing databases: {}", errors.join("; ")))
    }
}

/// How long shutdown waits for requests under way before closing the databases regardless.
const DRAIN_DEADLINE: Duration = Duration::from_secs(30);

/// A TLS server configuration (rustls, with the ring provider).
pub struct Tls {
    config: axum_server::tls_rustls::RustlsConfig,
}

impl Tls {
    /// Reads a PEM certificate chain and private key.
    pub async fn from_pem_files(
        cert: &std::path::Path,
        key: &std::path::Path,
    ) -> Result<Tls, String> {
        // The process-wide provider; a second call finds it installed, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
            .await
            .map_err(|e| {
                format!(
                    "TLS certificate {} / key {}: {e}",
                    cert.display(),
                    key.display()
                )
            })?;
        Ok(Tls { config })
    }
}

/// Checks that a listener on `addr` is allowed with these keys: any address with keys, only
/// loopback without.
pub fn check_listen(addr: &SocketAddr, keys: &Keys) -> Result<(), String> {
    if keys.is_empty() && !addr.ip().is_loopback() {
        return Err(format!(
            "refusing to listen on {addr} without an API key: anyone who can reach it could read and change every database. Give --api-key-file FILE or VALORI_API_KEY, or listen on 127.0.0.1"
        ));
    }
    Ok(())
}
