//! `valori._native`: the Rust side of the Python package. The pure-Python layer (`valori/`)
//! turns lists and numpy arrays into contiguous native-order float buffers and numpy results;
//! this module does the work with the GIL released, and raises the exception classes of
//! `valori.errors` (never pyo3's `PanicException`).

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Mutex, RwLock};
use valori_engine::{Durability, Engine, Export, Options};
use valori_kernel::{
    Applied, Command, Config, Direction, ErrorCode, Fxp, Hit, Hop, Kernel as Core, Metric, Words,
};

/// An error on its way to Python: the class name in `valori.errors` and the message.
struct Fail {
    class: &'static str,
    message: String,
}

fn class_of(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::InvalidInput => "InvalidInputError",
        ErrorCode::Dimension => "DimensionError",
        ErrorCode::Full => "FullError",
        ErrorCode::NotFound => "NotFoundError",
        ErrorCode::Exists => "ExistsError",
        ErrorCode::Corrupt => "CorruptError",
        ErrorCode::Busy => "BusyError",
        ErrorCode::Io => "ValoriIOError",
        ErrorCode::Poisoned => "PoisonedError",
        ErrorCode::Misuse => "MisuseError",
        _ => "InternalError",
    }
}

impl From<valori_kernel::Error> for Fail {
    fn from(e: valori_kernel::Error) -> Self {
        Fail {
            class: class_of(e.code()),
            message: e.to_string(),
        }
    }
}

impl From<valori_engine::Error> for Fail {
    fn from(e: valori_engine::Error) -> Self {
        Fail {
            class: class_of(e.code()),
            message: e.to_string(),
        }
    }
}

impl Fail {
    fn new(class: &'static str, message: impl Into<String>) -> Fail {
        Fail {
            class,
            message: message.into(),
        }
    }

    fn into_py(self, py: Python<'_>) -> PyErr {
        let made = py
            .import("valori.errors")
            .and_then(|m| m.getattr(self.class))
            .and_then(|cls| cls.call1((self.message.clone(),)));
        match made {
            Ok(obj) => PyErr::from_value(obj),
            Err(e) => e,
        }
    }
}

/// Runs library code; a panic (a bug) becomes `valori.InternalError`, never PanicException.
fn guarded<R>(py: Python<'_>, f: impl FnOnce() -> Result<R, Fail> + Send) -> PyResult<R>
where
    R: Send,
{
    let r = py.allow_threads(|| {
        catch_unwind(AssertUnwindSafe(f))
            .unwrap_or_else(|_| Err(Fail::new("InternalError", "valori panicked (a bug)")))
    });
    r.map_err(|f| f.into_py(py))
}

/// Converts a native-order float32 (`dtype == "f32"`) or float64 buffer to Q16.16.
fn floats(data: &[u8], dtype: &str) -> Result<Vec<Fxp>, Fail> {
    let mut out = Vec::new();
    match dtype {
        "f32" => {
            out.reserve(data.len() / 4);
            for (i, c) in data.chunks_exact(4).enumerate() {
                // The buffer comes from this process (numpy, native byte order): not an encoding.
                #[allow(clippy::host_endian_bytes)]
                let x = f32::from_ne_bytes([c[0], c[1], c[2], c[3]]);
                out.push(Fxp::from_f32(x, i as u32)?);
            }
        }
        "f64" => {
            out.reserve(data.len() / 8);
            for (i, c) in data.chunks_exact(8).enumerate() {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                #[allow(clippy::host_endian_bytes)]
                let x = f64::from_ne_bytes(b);
                out.push(Fxp::from_f64(x, i as u32)?);
            }
        }
        _ => return Err(Fail::new("InternalError", format!("unknown dtype {dtype}"))),
    }
    Ok(out)
}

fn u64s(data: &[u8]) -> Vec<u64> {
    data.chunks_exact(8)
        .map(|c| {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            #[allow(clippy::host_endian_bytes)]
            u64::from_ne_bytes(b)
        })
        .collect()
}

fn metric(name: &str) -> PyResult<Metric> {
    match name {
        "l2" => Ok(Metric::L2),
        "ip" | "inner_product" => Ok(Metric::InnerProduct),
        "cosine" => Ok(Metric::Cosine),
        _ => Err(PyValueError::new_err(format!(
            "unknown metric {name:?}: use 'l2', 'ip' or 'cosine'"
        ))),
    }
}

fn direction(name: &str) -> Result<Direction, Fail> {
    match name {
        "out" => Ok(Direction::Outgoing),
        "in" => Ok(Direction::Incoming),
        "both" => Ok(Direction::Both),
        _ => Err(Fail::new(
            "InvalidInputError",
            format!("unknown direction {name:?}: use 'out', 'in' or 'both'"),
        )),
    }
}

fn created(a: Applied) -> u64 {
    match a {
        Applied::Created(id) | Applied::Batch { first_id: id, .. } => id,
        Applied::Done => 0,
    }
}

/// The operations both stores offer; the Python methods are thin shells over these.
trait Store: Sync {
    fn apply(&self, cmd: &Command<'_>) -> Result<Applied, Fail>;
    fn read<R>(&self, f: impl FnOnce(&Core<'static>) -> R) -> Result<R, Fail>;
}

/// A search of one query: `(ids, distances)` in `(distance, id)` order.
type Hits = (Vec<u64>, Vec<f64>);
/// A record for Python: `(tag, metadata, vector)`.
type RecordTuple = (Option<u64>, Vec<u8>, Vec<f64>);
/// An edge for Python: `(id, kind, source, target, weight)`.
type EdgeTuple = (u64, u32, u64, u64, Option<f64>);
/// An export for Python: `(base_state, base_seq, commands, state_hash)`.
type ExportTuple<'py> = (
    Bound<'py, PyBytes>,
    u64,
    Vec<Bound<'py, PyBytes>>,
    Bound<'py, PyBytes>,
);

fn search_one(k: &Core<'static>, q: &[Fxp], top: u32, tag: Option<u64>) -> Result<Hits, Fail> {
    let hits = k.search_vec(q, top, tag)?;
    let m = k.config().metric;
    Ok((
        hits.iter().map(|h| h.id).collect(),
        hits.iter().map(|h| m.distance_to_f64(h.distance)).collect(),
    ))
}

/// Shared method bodies (generic over the store).
mod ops {
    use super::*;

    pub fn insert<S: Store>(
        s: &S,
        data: &[u8],
        dtype: &str,
        tag: Option<u64>,
        meta: &[u8],
    ) -> Result<u64, Fail> {
        let v = floats(data, dtype)?;
        s.apply(&Command::Insert {
            id: None,
            tag,
            vector: v[..].into(),
            meta,
        })
        .map(created)
    }

    pub fn insert_batch<S: Store>(
        s: &S,
        data: &[u8],
        dtype: &str,
        tags: Option<&[u8]>,
    ) -> Result<(u64, u64), Fail> {
        let v = floats(data, dtype)?;
        let tags = tags.map(u64s).unwrap_or_default();
        match s.apply(&Command::InsertBatch {
            ids: Words::EMPTY,
            tags: Words::Native(&tags),
            vectors: v[..].into(),
        })? {
            Applied::Batch { first_id, count } => Ok((first_id, count)),
            other => Err(Fail::new(
                "InternalError",
                format!("batch insert answered {other:?}"),
            )),
        }
    }

    pub fn search<S: Store>(
        s: &S,
        data: &[u8],
        dtype: &str,
        k: u32,
        tag: Option<u64>,
    ) -> Result<Hits, Fail> {
        let q = floats(data, dtype)?;
        s.read(|kern| search_one(kern, &q, k, tag))?
    }

    pub fn get<S: Store>(s: &S, id: u64) -> Result<Option<RecordTuple>, Fail> {
        s.read(|k| {
            k.get(id).map(|r| {
                (
                    r.tag,
                    r.meta.to_vec(),
                    r.vector.iter().map(|x| x.to_f64()).collect(),
                )
            })
        })
    }

    pub fn neighbors<S: Store>(s: &S, node: u64, dir: &str) -> Result<Vec<EdgeTuple>, Fail> {
        let d = direction(dir)?;
        s.read(|k| {
            if k.node(node).is_none() {
                return Err(Fail::from(valori_kernel::Error::NotFound(
                    valori_kernel::Object::Node,
                    node,
                )));
            }
            let outs = matches!(d, Direction::Outgoing | Direction::Both).then(|| k.outgoing(node));
            let ins = matches!(d, Direction::Incoming | Direction::Both).then(|| k.incoming(node));
            Ok(outs
                .into_iter()
                .flatten()
                .chain(ins.into_iter().flatten())
                .map(|e| (e.id, e.kind, e.from, e.to, e.weight.map(Fxp::to_f64)))
                .collect())
        })?
    }

    pub fn traverse<S: Store>(
        s: &S,
        start: u64,
        hops: u32,
        dir: &str,
        kind: Option<u32>,
    ) -> Result<Vec<(u32, u64)>, Fail> {
        let d = direction(dir)?;
        s.read(|k| {
            let mut out = vec![Hop::default(); k.node_count()];
            let n = k.traverse(start, hops, d, kind, &mut out)?;
            Ok(out.iter().take(n).map(|h| (h.depth, h.node)).collect())
        })?
    }
}

/// Implements the shared Python methods for a store type.
macro_rules! store_methods {
    ($ty:ty) => {
        #[pymethods]
        impl $ty {
            #[pyo3(signature = (data, dtype, tag=None, meta=b"".as_slice()))]
            fn insert(
                &self,
                py: Python<'_>,
                data: &[u8],
                dtype: &str,
                tag: Option<u64>,
                meta: &[u8],
            ) -> PyResult<u64> {
                guarded(py, || ops::insert(self, data, dtype, tag, meta))
            }

            #[pyo3(signature = (data, dtype, tags=None))]
            fn insert_batch(
                &self,
                py: Python<'_>,
                data: &[u8],
                dtype: &str,
                tags: Option<&[u8]>,
            ) -> PyResult<(u64, u64)> {
                guarded(py, || ops::insert_batch(self, data, dtype, tags))
            }

            fn delete(&self, py: Python<'_>, id: u64) -> PyResult<()> {
                guarded(py, || Store::apply(self, &Command::Delete { id }).map(drop))
            }

            fn set_meta(&self, py: Python<'_>, id: u64, meta: &[u8]) -> PyResult<()> {
                guarded(py, || {
                    Store::apply(self, &Command::SetMeta { id, meta }).map(drop)
                })
            }

            #[pyo3(signature = (id, tag=None))]
            fn set_tag(&self, py: Python<'_>, id: u64, tag: Option<u64>) -> PyResult<()> {
                guarded(py, || {
                    Store::apply(self, &Command::SetTag { id, tag }).map(drop)
                })
            }

            #[pyo3(signature = (kind, record=None, label=b"".as_slice()))]
            fn create_node(
                &self,
                py: Python<'_>,
                kind: u32,
                record: Option<u64>,
                label: &[u8],
            ) -> PyResult<u64> {
                guarded(py, || {
                    Store::apply(
                        self,
                        &Command::CreateNode {
                            id: None,
                            kind,
                            record,
                            label,
                        },
                    )
                    .map(created)
                })
            }

            fn delete_node(&self, py: Python<'_>, id: u64) -> PyResult<()> {
                guarded(py, || {
                    Store::apply(self, &Command::DeleteNode { id }).map(drop)
                })
            }

            #[pyo3(signature = (kind, source, target, weight=None))]
            fn create_edge(
                &self,
                py: Python<'_>,
                kind: u32,
                source: u64,
                target: u64,
                weight: Option<f64>,
            ) -> PyResult<u64> {
                guarded(py, || {
                    let weight = weight.map(|w| Fxp::from_f64(w, 0)).transpose()?;
                    Store::apply(
                        self,
                        &Command::CreateEdge {
                            id: None,
                            kind,
                            from: source,
                            to: target,
                            weight,
                        },
                    )
                    .map(created)
                })
            }

            fn delete_edge(&self, py: Python<'_>, id: u64) -> PyResult<()> {
                guarded(py, || {
                    Store::apply(self, &Command::DeleteEdge { id }).map(drop)
                })
            }

            #[pyo3(signature = (data, dtype, k, tag=None))]
            fn search(
                &self,
                py: Python<'_>,
                data: &[u8],
                dtype: &str,
                k: u32,
                tag: Option<u64>,
            ) -> PyResult<Hits> {
                guarded(py, || ops::search(self, data, dtype, k, tag))
            }

            /// Batch search in chunks, checking for Ctrl-C between chunks. Returns row-major
            /// `(ids, distances)` bytes of `n * width` entries (ids `u64`, distances `f64`;
            /// short rows padded with id `u64::MAX` and distance `inf`) and `width`.
            #[pyo3(signature = (data, dtype, n, k, tag=None))]
            fn search_batch<'py>(
                &self,
                py: Python<'py>,
                data: &[u8],
                dtype: &str,
                n: usize,
                k: u32,
                tag: Option<u64>,
            ) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyBytes>, usize)> {
                let q = guarded(py, || floats(data, dtype))?;
                let dim = if n == 0 { 0 } else { q.len() / n };
                let (width, rows) = guarded(py, || {
                    Store::read(self, |kern| (kern.result_count(k, tag), kern.len()))
                })?;
                let mut ids: Vec<u8> = Vec::with_capacity(n * width * 8);
                let mut dist: Vec<u8> = Vec::with_capacity(n * width * 8);
                // Each chunk is one pass over the store (Kernel::search_batch); chunks are sized
                // to about 2^33 stored components each, so Ctrl-C is seen within a second or so.
                let per = (1usize << 33) / (rows.max(1) * dim.max(1));
                let chunk_queries = per.clamp(8, 1024);
                let mut hits = Vec::new();
                for chunk in q.chunks(dim.max(1) * chunk_queries) {
                    py.check_signals()?;
                    let (got, metric) = guarded(py, || {
                        Store::read(self, |kern| {
                            let nq = chunk.len() / dim.max(1);
                            let want = kern.result_count(k, tag);
                            hits.clear();
                            hits.resize(nq * want, Hit::default());
                            let got = kern.search_batch(chunk, k, tag, &mut hits)?;
                            Ok::<_, Fail>((got, kern.config().metric))
                        })?
                    })?;
                    // A chunk that saw a different number of matches (concurrent writes) is
                    // padded or cut to the first chunk's width.
                    for i in 0..chunk.len() / dim.max(1) {
                        let row = hits.get(i * got..(i + 1) * got).unwrap_or(&[]);
                        for j in 0..width {
                            let h = row.get(j);
                            #[allow(clippy::host_endian_bytes)]
                            ids.extend_from_slice(&h.map_or(u64::MAX, |h| h.id).to_ne_bytes());
                            #[allow(clippy::host_endian_bytes)]
                            dist.extend_from_slice(
                                &h.map_or(f64::INFINITY, |h| metric.distance_to_f64(h.distance))
                                    .to_ne_bytes(),
                            );
                        }
                    }
                }
                Ok((PyBytes::new(py, &ids), PyBytes::new(py, &dist), width))
            }

            /// Exact search with a raw Q16.16 query: `[(id, exact distance in 2^-32 units)]`.
            #[pyo3(signature = (query, k, tag=None))]
            fn search_raw(
                &self,
                py: Python<'_>,
                query: Vec<i32>,
                k: u32,
                tag: Option<u64>,
            ) -> PyResult<Vec<(u64, i128)>> {
                guarded(py, || {
                    let q: Vec<Fxp> = query.into_iter().map(Fxp).collect();
                    Store::read(self, |kern| -> Result<Vec<(u64, i128)>, Fail> {
                        Ok(kern
                            .search_vec(&q, k, tag)?
                            .iter()
                            .map(|h: &Hit| (h.id, h.distance))
                            .collect())
                    })?
                })
            }

            fn get(&self, py: Python<'_>, id: u64) -> PyResult<Option<RecordTuple>> {
                guarded(py, || ops::get(self, id))
            }

            fn neighbors(
                &self,
                py: Python<'_>,
                node: u64,
                direction: &str,
            ) -> PyResult<Vec<EdgeTuple>> {
                guarded(py, || ops::neighbors(self, node, direction))
            }

            #[pyo3(signature = (start, hops, direction, kind=None))]
            fn traverse(
                &self,
                py: Python<'_>,
                start: u64,
                hops: u32,
                direction: &str,
                kind: Option<u32>,
            ) -> PyResult<Vec<(u32, u64)>> {
                guarded(py, || ops::traverse(self, start, hops, direction, kind))
            }

            fn state_hash<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
                let h = guarded(py, || Store::read(self, |k| k.state_hash()))?;
                Ok(PyBytes::new(py, &h))
            }

            fn count(&self, py: Python<'_>) -> PyResult<usize> {
                guarded(py, || Store::read(self, |k| k.len()))
            }

            fn config(&self, py: Python<'_>) -> PyResult<(u32, &'static str)> {
                guarded(py, || {
                    Store::read(self, |k| {
                        let c = k.config();
                        (
                            c.dim,
                            match c.metric {
                                Metric::L2 => "l2",
                                Metric::InnerProduct => "ip",
                                Metric::Cosine => "cosine",
                            },
                        )
                    })
                })
            }
        }
    };
}

/// The in-memory kernel with optional capacity limits.
#[pyclass(module = "valori._native", frozen)]
struct Kernel {
    inner: Mutex<Core<'static>>,
    max_records: Option<u64>,
    max_nodes: Option<u64>,
    max_edges: Option<u64>,
}

impl Store for Kernel {
    fn apply(&self, cmd: &Command<'_>) -> Result<Applied, Fail> {
        let mut k = self
            .inner
            .lock()
            .map_err(|_| Fail::new("InternalError", "kernel lock poisoned"))?;
        let adds = |limit: Option<u64>, have: usize, add: usize, what: valori_kernel::Resource| {
            match limit {
                Some(max) if have as u64 + add as u64 > max => {
                    Err(Fail::from(valori_kernel::Error::Full(what)))
                }
                _ => Ok(()),
            }
        };
        let dim = k.config().dim as usize;
        match cmd {
            Command::Insert { .. } => adds(
                self.max_records,
                k.len(),
                1,
                valori_kernel::Resource::Records,
            )?,
            Command::InsertBatch { vectors, .. } => adds(
                self.max_records,
                k.len(),
                vectors.len() / dim.max(1),
                valori_kernel::Resource::Records,
            )?,
            Command::CreateNode { .. } => adds(
                self.max_nodes,
                k.node_count(),
                1,
                valori_kernel::Resource::Nodes,
            )?,
            Command::CreateEdge { .. } => adds(
                self.max_edges,
                k.edge_count(),
                1,
                valori_kernel::Resource::Edges,
            )?,
            _ => {}
        }
        Ok(k.apply(cmd)?)
    }

    fn read<R>(&self, f: impl FnOnce(&Core<'static>) -> R) -> Result<R, Fail> {
        let k = self
            .inner
            .lock()
            .map_err(|_| Fail::new("InternalError", "kernel lock poisoned"))?;
        Ok(f(&k))
    }
}

#[pymethods]
impl Kernel {
    #[new]
    #[pyo3(signature = (dim, metric="l2", max_records=None, max_nodes=None, max_edges=None))]
    fn new(
        py: Python<'_>,
        dim: u32,
        metric: &str,
        max_records: Option<u64>,
        max_nodes: Option<u64>,
        max_edges: Option<u64>,
    ) -> PyResult<Self> {
        let m = self::metric(metric)?;
        let core = guarded(py, || Ok(Core::new(Config::new(dim, m)?)?))?;
        Ok(Kernel {
            inner: Mutex::new(core),
            max_records,
            max_nodes,
            max_edges,
        })
    }

    /// The canonical state encoding.
    fn snapshot<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let b = guarded(py, || self.read(|k| k.to_bytes()))?;
        Ok(PyBytes::new(py, &b))
    }

    /// Replaces the state with a decoded snapshot (all or nothing).
    fn restore(&self, py: Python<'_>, snapshot: &[u8]) -> PyResult<()> {
        guarded(py, || {
            let fresh = Core::from_bytes(snapshot)?;
            let mut k = self
                .inner
                .lock()
                .map_err(|_| Fail::new("InternalError", "kernel lock poisoned"))?;
            *k = fresh;
            Ok(())
        })
    }

    /// Applies one encoded command (docs/FORMAT.md §5).
    #[pyo3(name = "apply")]
    fn apply_command(&self, py: Python<'_>, command: &[u8]) -> PyResult<()> {
        guarded(py, || {
            let cmd = Command::decode(command)?;
            Store::apply(self, &cmd).map(drop)
        })
    }
}

store_methods!(Kernel);

/// The durable database.
#[pyclass(module = "valori._native", frozen)]
struct Database {
    inner: RwLock<Option<Engine>>,
}

impl Store for Database {
    fn apply(&self, cmd: &Command<'_>) -> Result<Applied, Fail> {
        self.engine(|e| e.apply(cmd))
    }

    fn read<R>(&self, f: impl FnOnce(&Core<'static>) -> R) -> Result<R, Fail> {
        self.engine(|e| e.with_kernel(f))
    }
}

impl Database {
    fn engine<R>(
        &self,
        f: impl FnOnce(&Engine) -> Result<R, valori_engine::Error>,
    ) -> Result<R, Fail> {
        let g = self
            .inner
            .read()
            .map_err(|_| Fail::new("InternalError", "lock poisoned"))?;
        let e = g
            .as_ref()
            .ok_or_else(|| Fail::new("MisuseError", "the database is closed"))?;
        Ok(f(e)?)
    }
}

#[pymethods]
impl Database {
    #[new]
    #[pyo3(signature = (path, dim=None, metric=None, durability="fsync", checkpoint_wal_bytes=256 << 20, create=true, salvage=false))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        path: &str,
        dim: Option<u32>,
        metric: Option<&str>,
        durability: &str,
        checkpoint_wal_bytes: u64,
        create: bool,
        salvage: bool,
    ) -> PyResult<Self> {
        let options = Options {
            dim,
            metric: metric.map(self::metric).transpose()?,
            durability: match durability {
                "fsync" => Durability::Fsync,
                "group" | "group_commit" => Durability::GroupCommit,
                "none" => Durability::None,
                _ => {
                    return Err(PyValueError::new_err(format!(
                        "unknown durability {durability:?}: use 'fsync', 'group' or 'none'"
                    )))
                }
            },
            checkpoint_wal_bytes,
            create,
            salvage,
        };
        let engine = guarded(py, || Ok(Engine::open(path, options)?))?;
        Ok(Database {
            inner: RwLock::new(Some(engine)),
        })
    }

    fn checkpoint(&self, py: Python<'_>) -> PyResult<()> {
        guarded(py, || self.engine(|e| e.checkpoint()))
    }

    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        guarded(py, || self.engine(|e| e.flush()))
    }

    /// Flushes and closes; later calls raise MisuseError. Closing twice is allowed.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        guarded(py, || {
            let taken = self
                .inner
                .write()
                .map_err(|_| Fail::new("InternalError", "lock poisoned"))?
                .take();
            match taken {
                Some(e) => Ok(e.close()?),
                None => Ok(()),
            }
        })
    }

    fn is_closed(&self) -> bool {
        self.inner.read().map(|g| g.is_none()).unwrap_or(true)
    }

    /// `(base_state, base_seq, commands, state_hash)` read back from disk.
    fn export<'py>(&self, py: Python<'py>) -> PyResult<ExportTuple<'py>> {
        let ex: Export = guarded(py, || self.engine(|e| e.export()))?;
        let commands = ex.commands.iter().map(|c| PyBytes::new(py, c)).collect();
        Ok((
            PyBytes::new(py, &ex.base_state),
            ex.base_seq,
            commands,
            PyBytes::new(py, &ex.state_hash),
        ))
    }
}

store_methods!(Database);

/// Rebuilds a state from a base state and commands; returns its hash.
#[pyfunction]
fn replay<'py>(
    py: Python<'py>,
    base_state: &[u8],
    commands: Vec<Vec<u8>>,
) -> PyResult<Bound<'py, PyBytes>> {
    let h = guarded(py, || {
        let mut k = Core::from_bytes(base_state)?;
        valori_engine::replay_into(&mut k, commands.iter().map(Vec::as_slice))?;
        Ok(k.state_hash())
    })?;
    Ok(PyBytes::new(py, &h))
}

/// The library version.
#[pyfunction]
fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Kernel>()?;
    m.add_class::<Database>()?;
    m.add_function(wrap_pyfunction!(replay, m)?)?;
    m.add_function(wrap_pyfunction!(version, m)?)?;
    Ok(())
}
