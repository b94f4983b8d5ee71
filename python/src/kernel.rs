//! `valori._native.Kernel`: the in-memory kernel behind `valori.EmbeddedKernel`, with optional
//! capacity limits.

use crate::errors::{guarded, Fail};
use crate::store::{parse_metric, store_methods, Store};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::sync::{Mutex, MutexGuard};
use valori_kernel::{Applied, Command, Config, Kernel as Core, Resource};

/// The in-memory kernel.
#[pyclass(module = "valori._native", frozen)]
pub(crate) struct Kernel {
    inner: Mutex<Core<'static>>,
    limits: CapacityLimits,
}

/// The `max_records`, `max_nodes` and `max_edges` a kernel was made with.
struct CapacityLimits {
    records: Option<u64>,
    nodes: Option<u64>,
    edges: Option<u64>,
}

/// Refuses with `Full` a command that would take `k` past a limit.
///
/// capacity limits: to move into the kernel (growable kernel with a Capacity bound).
fn check_capacity_limits(
    limits: &CapacityLimits,
    k: &Core<'static>,
    cmd: &Command<'_>,
) -> Result<(), Fail> {
    let (limit, have, add, what) = match cmd {
        Command::Insert { .. } => (limits.records, k.len(), 1, Resource::Records),
        Command::InsertBatch { vectors, .. } => (
            limits.records,
            k.len(),
            vectors.len() / (k.config().dim as usize).max(1),
            Resource::Records,
        ),
        Command::CreateNode { .. } => (limits.nodes, k.node_count(), 1, Resource::Nodes),
        Command::CreateEdge { .. } => (limits.edges, k.edge_count(), 1, Resource::Edges),
        _ => return Ok(()),
    };
    match limit {
        Some(max) if have as u64 + add as u64 > max => {
            Err(Fail::from(valori_kernel::Error::Full(what)))
        }
        _ => Ok(()),
    }
}

impl Kernel {
    fn lock(&self) -> Result<MutexGuard<'_, Core<'static>>, Fail> {
        self.inner
            .lock()
            .map_err(|_| Fail::internal("kernel lock poisoned"))
    }
}

impl Store for Kernel {
    fn apply(&self, cmd: &Command<'_>) -> Result<Applied, Fail> {
        let mut k = self.lock()?;
        check_capacity_limits(&self.limits, &k, cmd)?;
        Ok(k.apply(cmd)?)
    }

    fn read<R>(&self, f: impl FnOnce(&Core<'static>) -> R) -> Result<R, Fail> {
        Ok(f(&*self.lock()?))
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
        let core = guarded(py, || {
            Ok(Core::new(Config::new(dim, parse_metric(metric)?)?)?)
        })?;
        Ok(Kernel {
            inner: Mutex::new(core),
            limits: CapacityLimits {
                records: max_records,
                nodes: max_nodes,
                edges: max_edges,
            },
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
            *self.lock()? = fresh;
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
