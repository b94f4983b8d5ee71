//! `valori._native.Kernel`: the in-memory kernel behind `valori.EmbeddedKernel`, with optional
//! capacity limits (the kernel's bounds).

use crate::errors::{guarded, Fail};
use crate::store::{parse_index, parse_metric, store_methods, Store};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::sync::{Mutex, MutexGuard};
use valori_engine::Export;
use valori_kernel::{Applied, Bounds, Command, Config, Kernel as Core};

/// The in-memory kernel; its capacity limits are the kernel's own [`Bounds`].
#[pyclass(module = "valori._native", frozen)]
pub(crate) struct Kernel {
    inner: Mutex<Core<'static>>,
}

impl Kernel {
    /// Replaces the state, keeping the bounds and the index's parameters (the index is built
    /// over the new state in id order).
    fn replace(&self, mut fresh: Core<'static>) -> Result<(), Fail> {
        let mut k = self.lock()?;
        fresh.set_bounds(k.bounds());
        fresh.set_index(k.index_params())?;
        *k = fresh;
        Ok(())
    }

    fn lock(&self) -> Result<MutexGuard<'_, Core<'static>>, Fail> {
        self.inner
            .lock()
            .map_err(|_| Fail::internal("kernel lock poisoned"))
    }
}

impl Store for Kernel {
    fn apply(&self, cmd: &Command<'_>) -> Result<Applied, Fail> {
        Ok(self.lock()?.apply(cmd)?)
    }

    fn read<R>(&self, f: impl FnOnce(&Core<'static>) -> R) -> Result<R, Fail> {
        Ok(f(&*self.lock()?))
    }
}

#[pymethods]
impl Kernel {
    #[new]
    #[pyo3(signature = (dim, metric="l2", max_records=None, max_nodes=None, max_edges=None, index=None, m=16, ef_construction=200))]
    #[allow(
        clippy::too_many_arguments,
        reason = "mirrors the keyword arguments of valori.EmbeddedKernel"
    )]
    fn new(
        py: Python<'_>,
        dim: u32,
        metric: &str,
        max_records: Option<u64>,
        max_nodes: Option<u64>,
        max_edges: Option<u64>,
        index: Option<&str>,
        m: u32,
        ef_construction: u32,
    ) -> PyResult<Self> {
        let core = guarded(py, || {
            let mut core = Core::new(Config::new(dim, parse_metric(metric)?)?)?;
            core.set_index(parse_index(index, m, ef_construction)?)?;
            core.set_bounds(Bounds {
                records: max_records,
                nodes: max_nodes,
                edges: max_edges,
            });
            Ok(core)
        })?;
        Ok(Kernel {
            inner: Mutex::new(core),
        })
    }

    /// The portable snapshot: the state encoding framed with its hash (docs/FORMAT.md §13).
    fn snapshot<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let b = guarded(py, || self.read(|k| k.snapshot()))?;
        Ok(PyBytes::new(py, &b))
    }

    /// Replaces the state with a verified snapshot (all or nothing); the bounds stay.
    fn restore(&self, py: Python<'_>, snapshot: &[u8]) -> PyResult<()> {
        guarded(py, || self.replace(Core::from_snapshot(snapshot)?))
    }

    /// Replaces the state with the one a database export describes, after checking that the
    /// replayed state hash is the one the export recorded (all or nothing); the bounds stay.
    fn restore_export(
        &self,
        py: Python<'_>,
        base_state: Vec<u8>,
        base_seq: u64,
        commands: Vec<Vec<u8>>,
        state_hash: [u8; 32],
    ) -> PyResult<()> {
        guarded(py, || {
            let export = Export {
                base_state,
                base_seq,
                commands,
                state_hash,
            };
            let fresh = export.replay()?;
            self.replace(fresh)
        })
    }

    /// Applies encoded commands in order to a copy of the state and keeps the copy only if
    /// every command applies (and, with `expected_hash`, the result hashes to it); returns how
    /// many were applied.
    #[pyo3(signature = (commands, expected_hash=None))]
    fn apply_all(
        &self,
        py: Python<'_>,
        commands: Vec<Vec<u8>>,
        expected_hash: Option<[u8; 32]>,
    ) -> PyResult<u64> {
        guarded(py, || {
            let mut k = self.lock()?;
            let mut copy = Core::from_bytes(&k.to_bytes())?;
            copy.set_bounds(k.bounds());
            let n = valori_engine::replay_into(&mut copy, commands.iter().map(Vec::as_slice))?;
            if let Some(want) = expected_hash {
                if copy.state_hash() != want {
                    return Err(Fail::from(valori_engine::Error::Corrupt {
                        file: "<commands>".into(),
                        offset: n,
                        reason: "the replayed state hash differs from the expected one".into(),
                    }));
                }
            }
            *k = copy;
            Ok(n)
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
