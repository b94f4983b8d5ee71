//! `valori._native.Database`: the durable database behind `valori.Database`. Every write goes
//! through the engine's typed methods (the engine decides); reads the engine has no method for
//! read the kernel under the engine's read lock.

use crate::buffers::Floats;
use crate::errors::{guarded, Fail};
use crate::store::{parse_index, parse_metric, store_methods, Hits, RecordTuple, Store};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::sync::{Arc, RwLock};
use valori_engine::{Durability, Engine, Export, Options};
use valori_fleet::BackgroundFollower;
use valori_kernel::{Applied, Command, Config, Direction, Fxp, Kernel as Core, SearchOptions};

/// An export for Python: `(base_state, base_seq, commands, state_hash)`.
type ExportTuple<'py> = (
    Bound<'py, PyBytes>,
    u64,
    Vec<Bound<'py, PyBytes>>,
    Bound<'py, PyBytes>,
);

/// A follower's position for Python: `(applied, pending, error, retrying)`.
type ReplicationTuple = (u64, u64, Option<String>, Option<String>);

/// A recovery report for Python: `(snapshot_seq, replayed, seq, torn_tail)`.
type RecoveryTuple = (u64, u64, u64, Option<(String, u64, u64, String)>);

/// The durable database; `None` once closed.
#[pyclass(module = "valori._native", frozen)]
pub(crate) struct Database {
    inner: RwLock<Option<Handle>>,
}

/// An open database, and the follower applying a stream's records to it, if it follows one.
struct Handle {
    engine: Arc<Engine>,
    follower: Option<BackgroundFollower>,
}

impl Handle {
    fn own(engine: Engine) -> Handle {
        Handle {
            engine: Arc::new(engine),
            follower: None,
        }
    }
}

/// A durability mode from its Python name.
fn parse_durability(name: &str) -> Result<Durability, Fail> {
    match name {
        "fsync" => Ok(Durability::Fsync),
        "group" | "group_commit" => Ok(Durability::GroupCommit),
        "none" => Ok(Durability::None),
        _ => Err(Fail::invalid(format!(
            "unknown durability '{name}': use 'fsync', 'group' or 'none'"
        ))),
    }
}

impl Database {
    /// Runs `f` on the open engine; a closed database is `MisuseError`.
    fn engine<R>(
        &self,
        f: impl FnOnce(&Engine) -> Result<R, valori_engine::Error>,
    ) -> Result<R, Fail> {
        self.handle(|h| Ok(f(&h.engine)?))
    }

    /// Runs `f` on the open handle (the engine and its follower, if any); a closed database
    /// is `MisuseError`.
    fn handle<R>(&self, f: impl FnOnce(&Handle) -> Result<R, Fail>) -> Result<R, Fail> {
        let g = self
            .inner
            .read()
            .map_err(|_| Fail::internal("lock poisoned"))?;
        let h = g
            .as_ref()
            .ok_or_else(|| Fail::new(valori_kernel::ErrorCode::Misuse, "the database is closed"))?;
        f(h)
    }
}

impl Store for Database {
    fn apply(&self, cmd: &Command<'_>) -> Result<Applied, Fail> {
        self.engine(|e| e.apply(cmd))
    }

    fn read<R>(&self, f: impl FnOnce(&Core<'static>) -> R) -> Result<R, Fail> {
        self.engine(|e| e.with_kernel(f))
    }

    // Floats are converted by the kernel (float64 directly, never through float32) and go to
    // the engine's typed methods for Q16.16 values; a float32 batch goes to `insert_batch`,
    // which refuses one over the log's record limit before converting it.
    fn insert(&self, v: &Floats, tag: Option<u64>, meta: &[u8]) -> Result<u64, Fail> {
        let v = v.to_fxp()?;
        self.engine(|e| e.insert_fixed(&v, tag, meta))
    }

    fn insert_batch(&self, v: &Floats, tags: &[u64]) -> Result<(u64, u64), Fail> {
        let ids = match v {
            Floats::F32(v) => self.engine(|e| e.insert_batch(v, tags))?,
            Floats::F64(_) => {
                let v = v.to_fxp()?;
                self.engine(|e| e.insert_batch_fixed(&v, tags))?
            }
        };
        Ok((ids.start, ids.end - ids.start))
    }

    fn search(
        &self,
        q: &Floats,
        k: u32,
        tag: Option<u64>,
        opts: SearchOptions,
    ) -> Result<Hits, Fail> {
        let q = q.to_fxp()?;
        self.engine(|e| {
            let hits = e.search_with(&q, k, tag, opts)?;
            let m = e.config()?.metric;
            Ok((
                hits.iter().map(|h| h.id).collect(),
                hits.iter().map(|h| m.distance_to_f64(h.distance)).collect(),
            ))
        })
    }

    fn delete(&self, id: u64) -> Result<(), Fail> {
        self.engine(|e| e.delete(id))
    }

    fn set_meta(&self, id: u64, meta: &[u8]) -> Result<(), Fail> {
        self.engine(|e| e.set_meta(id, meta))
    }

    fn set_tag(&self, id: u64, tag: Option<u64>) -> Result<(), Fail> {
        self.engine(|e| e.set_tag(id, tag))
    }

    fn create_node(&self, kind: u32, record: Option<u64>, label: &[u8]) -> Result<u64, Fail> {
        self.engine(|e| e.create_node(kind, record, label))
    }

    fn delete_node(&self, id: u64) -> Result<(), Fail> {
        self.engine(|e| e.delete_node(id))
    }

    fn create_edge(&self, kind: u32, from: u64, to: u64, weight: Option<Fxp>) -> Result<u64, Fail> {
        self.engine(|e| e.create_edge_fixed(kind, from, to, weight))
    }

    fn delete_edge(&self, id: u64) -> Result<(), Fail> {
        self.engine(|e| e.delete_edge(id))
    }

    fn get(&self, id: u64) -> Result<Option<RecordTuple>, Fail> {
        self.engine(|e| {
            Ok(e.get(id)?.map(|r| {
                (
                    r.tag,
                    r.meta,
                    r.vector.into_iter().map(Fxp::to_f64).collect(),
                )
            }))
        })
    }

    fn traverse(
        &self,
        start: u64,
        hops: u32,
        d: Direction,
        kind: Option<u32>,
    ) -> Result<Vec<(u32, u64)>, Fail> {
        self.engine(|e| {
            Ok(e.traverse(start, hops, d, kind)?
                .iter()
                .map(|h| (h.depth, h.node))
                .collect())
        })
    }

    fn state_hash(&self) -> Result<[u8; 32], Fail> {
        self.engine(Engine::state_hash)
    }

    fn count(&self) -> Result<usize, Fail> {
        self.engine(Engine::len)
    }

    fn config(&self) -> Result<Config, Fail> {
        self.engine(Engine::config)
    }
}

#[pymethods]
impl Database {
    #[new]
    #[pyo3(signature = (path, dim=None, metric=None, durability="fsync", checkpoint_wal_bytes=256 << 20, create=true, salvage=false, retain_snapshots=1, retain_seconds=None, index=None, m=16, ef_construction=200))]
    #[allow(
        clippy::too_many_arguments,
        reason = "mirrors the keyword arguments of valori.Database"
    )]
    fn new(
        py: Python<'_>,
        path: &str,
        dim: Option<u32>,
        metric: Option<&str>,
        durability: &str,
        checkpoint_wal_bytes: u64,
        create: bool,
        salvage: bool,
        retain_snapshots: u32,
        retain_seconds: Option<u64>,
        index: Option<&str>,
        m: u32,
        ef_construction: u32,
    ) -> PyResult<Self> {
        let engine = guarded(py, || {
            let options = Options {
                dim,
                metric: metric.map(parse_metric).transpose()?,
                durability: parse_durability(durability)?,
                checkpoint_wal_bytes,
                create,
                salvage,
                follower: false,
                retain_snapshots,
                retain_for: retain_seconds.map(std::time::Duration::from_secs),
                index: parse_index(index, m, ef_construction)?,
            };
            Ok(Engine::open(path, options)?)
        })?;
        Ok(Database {
            inner: RwLock::new(Some(Handle::own(engine))),
        })
    }

    /// Follows `database` on the NATS JetStream servers at `url` into directory `path`
    /// (created from the newest snapshot in the bucket if it holds no database): a read-only
    /// database that applies the leader's records, verified, in the background.
    #[staticmethod]
    fn follow(py: Python<'_>, url: &str, database: &str, path: &str) -> PyResult<Self> {
        let follower = guarded(py, || {
            BackgroundFollower::start(url, database, std::path::Path::new(path)).map_err(fleet_fail)
        })?;
        Ok(Database {
            inner: RwLock::new(Some(Handle {
                engine: Arc::clone(follower.engine()),
                follower: Some(follower),
            })),
        })
    }

    /// Where a follower stands: `(applied, pending, error, retrying)`; `None` for a database
    /// that follows nothing.
    fn replication(&self, py: Python<'_>) -> PyResult<Option<ReplicationTuple>> {
        guarded(py, || {
            self.handle(|h| {
                Ok(h.follower.as_ref().map(|f| {
                    let s = f.status();
                    (s.applied, s.pending, s.error, s.retrying)
                }))
            })
        })
    }

    /// Waits up to `timeout` seconds until a follower has applied record `seq`; False if the
    /// time ran out.
    fn wait_applied(&self, py: Python<'_>, seq: u64, timeout: f64) -> PyResult<bool> {
        guarded(py, || {
            let timeout = std::time::Duration::try_from_secs_f64(timeout)
                .map_err(|_| Fail::invalid(format!("timeout {timeout}: give seconds >= 0")))?;
            self.handle(|h| {
                let f = h.follower.as_ref().ok_or_else(|| {
                    Fail::new(
                        valori_kernel::ErrorCode::Misuse,
                        "wait_applied: this database follows no stream (open it with Database.follow)",
                    )
                })?;
                f.wait_applied(seq, timeout).map_err(fleet_fail)
            })
        })
    }

    fn checkpoint(&self, py: Python<'_>) -> PyResult<()> {
        guarded(py, || self.engine(Engine::checkpoint))
    }

    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        guarded(py, || self.engine(Engine::flush))
    }

    /// Flushes and closes; later calls raise MisuseError. Closing twice is allowed.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        guarded(py, || {
            let taken = self
                .inner
                .write()
                .map_err(|_| Fail::internal("lock poisoned"))?
                .take();
            let Some(h) = taken else { return Ok(()) };
            let engine = match h.follower {
                Some(f) => {
                    drop(h.engine);
                    f.stop()
                }
                None => h.engine,
            };
            match Arc::try_unwrap(engine) {
                Ok(e) => Ok(e.close()?),
                Err(e) => Ok(e.flush()?),
            }
        })
    }

    fn is_closed(&self) -> bool {
        self.inner.read().map(|g| g.is_none()).unwrap_or(true)
    }

    /// What opening found and did: `(snapshot_seq, replayed, seq, torn_tail)` with
    /// `torn_tail` `None` or `(file, offset, bytes, reason)`.
    fn recovery_report(&self, py: Python<'_>) -> PyResult<RecoveryTuple> {
        let r = guarded(py, || self.engine(|e| Ok(e.recovery_report().clone())))?;
        let torn = r.torn_tail.map(|t| {
            (
                t.file.to_string_lossy().into_owned(),
                t.offset,
                t.bytes,
                t.reason,
            )
        });
        Ok((r.snapshot_seq, r.replayed, r.seq, torn))
    }

    /// `(base_state, base_seq, commands, state_hash)` read back from disk.
    fn export<'py>(&self, py: Python<'py>) -> PyResult<ExportTuple<'py>> {
        let ex: Export = guarded(py, || self.engine(Engine::export))?;
        Ok(export_tuple(py, &ex))
    }

    /// `[(seq, kind, bytes, chain)]`: up to `limit` logged commands from `from_seq` on.
    fn history<'py>(
        &self,
        py: Python<'py>,
        from_seq: u64,
        limit: usize,
    ) -> PyResult<Vec<LogRow<'py>>> {
        let rows = guarded(py, || {
            let entries = self.engine(|e| e.history(from_seq, limit))?;
            entries
                .iter()
                .map(|e| {
                    let name = valori_engine::decode_entry(e)?.name();
                    Ok((e.seq, name, e.command.len(), e.chain))
                })
                .collect::<Result<Vec<_>, Fail>>()
        })?;
        Ok(rows
            .into_iter()
            .map(|(seq, name, len, chain)| (seq, name, len, PyBytes::new(py, &chain)))
            .collect())
    }

    /// The state hash after command `seq` (from the retained snapshots and log).
    fn state_hash_at<'py>(&self, py: Python<'py>, seq: u64) -> PyResult<Bound<'py, PyBytes>> {
        let h = guarded(py, || {
            self.engine(|e| e.state_at_seq(seq).map(|(k, _)| k.state_hash()))
        })?;
        Ok(PyBytes::new(py, &h))
    }

    /// Writes the state after command `seq` as a new database in `path`; its state hash.
    fn checkout<'py>(
        &self,
        py: Python<'py>,
        seq: u64,
        path: &str,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let h = guarded(py, || self.engine(|e| e.checkout(seq, path)))?;
        Ok(PyBytes::new(py, &h))
    }

    /// `[(name, seq)]`, by sequence number.
    fn history_tags(&self, py: Python<'_>) -> PyResult<Vec<(String, u64)>> {
        guarded(py, || {
            let tags = self.engine(Engine::history_tags)?;
            Ok(tags.into_iter().map(|t| (t.name, t.seq)).collect())
        })
    }

    fn tag_history(&self, py: Python<'_>, name: &str, seq: u64) -> PyResult<()> {
        guarded(py, || self.engine(|e| e.tag_history(name, seq)))
    }

    fn untag_history(&self, py: Python<'_>, name: &str) -> PyResult<()> {
        guarded(py, || self.engine(|e| e.untag_history(name)))
    }

    #[pyo3(signature = (snapshots, seconds=None))]
    fn set_retention(&self, py: Python<'_>, snapshots: u32, seconds: Option<u64>) -> PyResult<()> {
        guarded(py, || {
            self.engine(|e| {
                e.set_retain_snapshots(snapshots);
                e.set_retain_for(seconds.map(std::time::Duration::from_secs));
                Ok(())
            })
        })
    }

    fn sequence(&self, py: Python<'_>) -> PyResult<u64> {
        guarded(py, || self.engine(Engine::sequence))
    }
}

store_methods!(Database);

/// One history entry for Python: `(seq, kind, bytes, chain)`.
type LogRow<'py> = (u64, &'static str, usize, Bound<'py, PyBytes>);

fn export_tuple<'py>(py: Python<'py>, ex: &Export) -> ExportTuple<'py> {
    let commands = ex.commands.iter().map(|c| PyBytes::new(py, c)).collect();
    (
        PyBytes::new(py, &ex.base_state),
        ex.base_seq,
        commands,
        PyBytes::new(py, &ex.state_hash),
    )
}

/// Decodes an export (`docs/FORMAT.md` §12, what `GET /v1/databases/{db}/export` serves):
/// `(base_state, base_seq, commands, state_hash)`; a damaged one raises `CorruptError`.
#[pyfunction]
pub(crate) fn decode_export<'py>(py: Python<'py>, bytes: &[u8]) -> PyResult<ExportTuple<'py>> {
    let ex = guarded(py, || Ok(Export::decode(bytes)?))?;
    Ok(export_tuple(py, &ex))
}

/// Rebuilds a state from a base state and commands (a database export); returns its hash.
#[pyfunction]
pub(crate) fn replay<'py>(
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

/// A follower's failure as Python sees it: the engine's own errors keep their class; the
/// servers' are `ValoriError` with what they said.
fn fleet_fail(e: valori_fleet::FleetError) -> Fail {
    match e {
        valori_fleet::FleetError::Engine(e) => Fail::from(e),
        e @ valori_fleet::FleetError::NotFound(_) => {
            Fail::new(valori_kernel::ErrorCode::NotFound, e.to_string())
        }
        other => Fail::new(valori_kernel::ErrorCode::Io, other.to_string()),
    }
}
