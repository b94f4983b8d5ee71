//! What both native classes offer: the [`Store`] trait (one operation per method) and the
//! `store_methods!` macro that gives a store type its Python methods, as thin shells that
//! decode arguments, release the GIL and call the trait.

use crate::buffers::Floats;
use crate::errors::Fail;
use valori_kernel::{
    Applied, Command, Config, Direction, Fxp, Hop, IndexParams, Kernel as Core, Metric,
    SearchOptions, Words,
};

/// A search of one query: `(ids, distances)` in `(distance, id)` order.
pub(crate) type Hits = (Vec<u64>, Vec<f64>);
/// A record for Python: `(tag, metadata, vector)`.
pub(crate) type RecordTuple = (Option<u64>, Vec<u8>, Vec<f64>);
/// An edge for Python: `(id, kind, source, target, weight)`.
pub(crate) type EdgeTuple = (u64, u32, u64, u64, Option<f64>);

/// A metric from its Python name.
pub(crate) fn parse_metric(name: &str) -> Result<Metric, Fail> {
    Metric::from_name(name).ok_or_else(|| {
        Fail::invalid(format!(
            "unknown metric '{name}': use 'l2', 'ip' or 'cosine'"
        ))
    })
}

/// A traversal direction from its Python name.
pub(crate) fn parse_direction(name: &str) -> Result<Direction, Fail> {
    Direction::from_name(name).ok_or_else(|| {
        Fail::invalid(format!(
            "unknown direction '{name}': use 'out', 'in' or 'both'"
        ))
    })
}

/// Index parameters from the Python keywords: `index` is `None` or `"hnsw"`.
pub(crate) fn parse_index(
    index: Option<&str>,
    m: u32,
    ef_construction: u32,
) -> Result<Option<IndexParams>, Fail> {
    match index {
        None => Ok(None),
        Some("hnsw") => Ok(Some(IndexParams::new(m, ef_construction)?)),
        Some(other) => Err(Fail::invalid(format!(
            "unknown index '{other}': use index=\"hnsw\" or leave it out"
        ))),
    }
}

/// Search options from the Python keywords.
pub(crate) fn search_options(exact: bool, ef: u32) -> SearchOptions {
    SearchOptions { exact, ef }
}

/// The id a create command answered.
fn created(a: Applied) -> u64 {
    match a {
        Applied::Created(id) | Applied::Batch { first_id: id, .. } => id,
        Applied::Done => 0,
    }
}

/// A search of one converted query in one read of the kernel.
fn search_one(
    k: &Core<'static>,
    q: &[Fxp],
    top: u32,
    tag: Option<u64>,
    opts: SearchOptions,
) -> Result<Hits, Fail> {
    let hits = k.search_vec_with(q, top, tag, opts)?;
    let m = k.config().metric;
    Ok((
        hits.iter().map(|h| h.id).collect(),
        hits.iter().map(|h| m.distance_to_f64(h.distance)).collect(),
    ))
}

/// The operations both stores offer. `apply` and `read` are the two primitives; the provided
/// methods build kernel commands and read the kernel (the in-memory kernel's way). The
/// database overrides each one the engine has a typed method for, so the engine decides.
pub(crate) trait Store: Sync + Sized {
    /// Applies one command.
    fn apply(&self, cmd: &Command<'_>) -> Result<Applied, Fail>;

    /// Runs `f` with read access to the kernel.
    fn read<R>(&self, f: impl FnOnce(&Core<'static>) -> R) -> Result<R, Fail>;

    /// Inserts one vector; returns its id.
    fn insert(&self, v: &Floats, tag: Option<u64>, meta: &[u8]) -> Result<u64, Fail> {
        by_command::insert(self, v, tag, meta)
    }

    /// Inserts `n` vectors (row-major) as one command; returns `(first id, count)`.
    fn insert_batch(&self, v: &Floats, tags: &[u64]) -> Result<(u64, u64), Fail> {
        by_command::insert_batch(self, v, tags)
    }

    /// Deletes a record.
    fn delete(&self, id: u64) -> Result<(), Fail> {
        self.apply(&Command::Delete { id }).map(drop)
    }

    /// Replaces a record's metadata.
    fn set_meta(&self, id: u64, meta: &[u8]) -> Result<(), Fail> {
        self.apply(&Command::SetMeta { id, meta }).map(drop)
    }

    /// Replaces a record's tag.
    fn set_tag(&self, id: u64, tag: Option<u64>) -> Result<(), Fail> {
        self.apply(&Command::SetTag { id, tag }).map(drop)
    }

    /// Creates a node; returns its id.
    fn create_node(&self, kind: u32, record: Option<u64>, label: &[u8]) -> Result<u64, Fail> {
        self.apply(&Command::CreateNode {
            id: None,
            kind,
            record,
            label,
        })
        .map(created)
    }

    /// Deletes a node and its edges.
    fn delete_node(&self, id: u64) -> Result<(), Fail> {
        self.apply(&Command::DeleteNode { id }).map(drop)
    }

    /// Creates an edge with a converted weight; returns its id.
    fn create_edge(&self, kind: u32, from: u64, to: u64, weight: Option<Fxp>) -> Result<u64, Fail> {
        self.apply(&Command::CreateEdge {
            id: None,
            kind,
            from,
            to,
            weight,
        })
        .map(created)
    }

    /// Deletes an edge.
    fn delete_edge(&self, id: u64) -> Result<(), Fail> {
        self.apply(&Command::DeleteEdge { id }).map(drop)
    }

    /// The k nearest records to one query (through the index unless `opts.exact`).
    fn search(
        &self,
        q: &Floats,
        k: u32,
        tag: Option<u64>,
        opts: SearchOptions,
    ) -> Result<Hits, Fail> {
        by_command::search(self, q, k, tag, opts)
    }

    /// A record.
    fn get(&self, id: u64) -> Result<Option<RecordTuple>, Fail> {
        self.read(|k| {
            k.get(id).map(|r| {
                (
                    r.tag,
                    r.meta.to_vec(),
                    r.vector.iter().map(Fxp::to_f64).collect(),
                )
            })
        })
    }

    /// Nodes within `hops` of `start` as `(depth, node)`.
    fn traverse(
        &self,
        start: u64,
        hops: u32,
        d: Direction,
        kind: Option<u32>,
    ) -> Result<Vec<(u32, u64)>, Fail> {
        self.read(|k| {
            let mut out = vec![Hop::default(); k.node_count()];
            let n = k.traverse(start, hops, d, kind, &mut out)?;
            Ok(out.iter().take(n).map(|h| (h.depth, h.node)).collect())
        })?
    }

    /// The state hash.
    fn state_hash(&self) -> Result<[u8; 32], Fail> {
        self.read(|k| k.state_hash())
    }

    /// Number of records.
    fn count(&self) -> Result<usize, Fail> {
        self.read(|k| k.len())
    }

    /// Dimension and metric.
    fn config(&self) -> Result<Config, Fail> {
        self.read(|k| k.config())
    }
}

/// The command-building bodies of the vector operations, shared by the provided methods and
/// by the database for the inputs the engine's typed methods do not take (float64).
pub(crate) mod by_command {
    use super::*;

    /// [`Store::insert`] as a command.
    pub(crate) fn insert<S: Store>(
        s: &S,
        v: &Floats,
        tag: Option<u64>,
        meta: &[u8],
    ) -> Result<u64, Fail> {
        let v = v.to_fxp()?;
        s.apply(&Command::Insert {
            id: None,
            tag,
            vector: v.as_slice().into(),
            meta,
        })
        .map(created)
    }

    /// A create command (insert, node, edge), typically under a caller-chosen id: the id made
    /// (the kernel refuses one that is taken).
    pub(crate) fn create<S: Store>(s: &S, cmd: &Command<'_>) -> Result<u64, Fail> {
        s.apply(cmd).map(created)
    }

    /// [`Store::insert_batch`] as a command.
    pub(crate) fn insert_batch<S: Store>(
        s: &S,
        v: &Floats,
        tags: &[u64],
    ) -> Result<(u64, u64), Fail> {
        let v = v.to_fxp()?;
        match s.apply(&Command::InsertBatch {
            ids: Words::EMPTY,
            tags: Words::Native(tags),
            vectors: v.as_slice().into(),
        })? {
            Applied::Batch { first_id, count } => Ok((first_id, count)),
            _ => Err(Fail::internal(
                "a batch insert did not report its ids (a bug in valori)",
            )),
        }
    }

    /// [`Store::search`] over the kernel.
    pub(crate) fn search<S: Store>(
        s: &S,
        q: &Floats,
        k: u32,
        tag: Option<u64>,
        opts: SearchOptions,
    ) -> Result<Hits, Fail> {
        let q = q.to_fxp()?;
        s.read(|kern| search_one(kern, &q, k, tag, opts))?
    }
}

/// Edges at a node (in one read, so "both" sees one state); an unknown node is NotFound.
pub(crate) fn neighbors<S: Store>(s: &S, node: u64, d: Direction) -> Result<Vec<EdgeTuple>, Fail> {
    s.read(|k| {
        Ok(k.neighbors(node, d)?
            .map(|e| (e.id, e.kind, e.from, e.to, e.weight.map(Fxp::to_f64)))
            .collect())
    })?
}

/// Gives a [`Store`] type the shared Python methods.
macro_rules! store_methods {
    ($ty:ty) => {
        // In an anonymous const so the names below resolve the same wherever it expands.
        const _: () = {
            use pyo3::prelude::*;
            use pyo3::types::PyBytes;
            use valori_kernel::{Fxp, Hit};
            use $crate::buffers::{fxps, u64s, Floats};
            use $crate::errors::{guarded, Fail};
            use $crate::store::{neighbors, parse_direction, EdgeTuple, Hits, RecordTuple, Store};

            #[pymethods]
            impl $ty {
                #[pyo3(signature = (data, dtype, tag=None, meta=b"".as_slice(), id=None))]
                fn insert(
                    &self,
                    py: Python<'_>,
                    data: &[u8],
                    dtype: &str,
                    tag: Option<u64>,
                    meta: &[u8],
                    id: Option<u64>,
                ) -> PyResult<u64> {
                    guarded(py, || {
                        let v = Floats::decode(data, dtype)?;
                        match id {
                            None => Store::insert(self, &v, tag, meta),
                            Some(id) => $crate::store::by_command::create(
                                self,
                                &valori_kernel::Command::Insert {
                                    id: Some(id),
                                    tag,
                                    vector: v.to_fxp()?.as_slice().into(),
                                    meta,
                                },
                            ),
                        }
                    })
                }

                #[pyo3(signature = (data, dtype, tags=None))]
                fn insert_batch(
                    &self,
                    py: Python<'_>,
                    data: &[u8],
                    dtype: &str,
                    tags: Option<&[u8]>,
                ) -> PyResult<(u64, u64)> {
                    guarded(py, || {
                        let tags = tags.map(u64s).transpose()?.unwrap_or_default();
                        Store::insert_batch(self, &Floats::decode(data, dtype)?, &tags)
                    })
                }

                fn delete(&self, py: Python<'_>, id: u64) -> PyResult<()> {
                    guarded(py, || Store::delete(self, id))
                }

                fn set_meta(&self, py: Python<'_>, id: u64, meta: &[u8]) -> PyResult<()> {
                    guarded(py, || Store::set_meta(self, id, meta))
                }

                #[pyo3(signature = (id, tag=None))]
                fn set_tag(&self, py: Python<'_>, id: u64, tag: Option<u64>) -> PyResult<()> {
                    guarded(py, || Store::set_tag(self, id, tag))
                }

                #[pyo3(signature = (kind, record=None, label=b"".as_slice(), id=None))]
                fn create_node(
                    &self,
                    py: Python<'_>,
                    kind: u32,
                    record: Option<u64>,
                    label: &[u8],
                    id: Option<u64>,
                ) -> PyResult<u64> {
                    guarded(py, || match id {
                        None => Store::create_node(self, kind, record, label),
                        Some(id) => $crate::store::by_command::create(
                            self,
                            &valori_kernel::Command::CreateNode {
                                id: Some(id),
                                kind,
                                record,
                                label,
                            },
                        ),
                    })
                }

                fn delete_node(&self, py: Python<'_>, id: u64) -> PyResult<()> {
                    guarded(py, || Store::delete_node(self, id))
                }

                #[pyo3(signature = (kind, source, target, weight=None, id=None))]
                fn create_edge(
                    &self,
                    py: Python<'_>,
                    kind: u32,
                    source: u64,
                    target: u64,
                    weight: Option<f64>,
                    id: Option<u64>,
                ) -> PyResult<u64> {
                    guarded(py, || {
                        let weight = weight.map(|w| Fxp::from_f64(w, 0)).transpose()?;
                        match id {
                            None => Store::create_edge(self, kind, source, target, weight),
                            Some(id) => $crate::store::by_command::create(
                                self,
                                &valori_kernel::Command::CreateEdge {
                                    id: Some(id),
                                    kind,
                                    from: source,
                                    to: target,
                                    weight,
                                },
                            ),
                        }
                    })
                }

                fn delete_edge(&self, py: Python<'_>, id: u64) -> PyResult<()> {
                    guarded(py, || Store::delete_edge(self, id))
                }

                #[pyo3(signature = (data, dtype, k, tag=None, exact=false, ef=64))]
                #[allow(clippy::too_many_arguments, reason = "the Python keywords")]
                fn search(
                    &self,
                    py: Python<'_>,
                    data: &[u8],
                    dtype: &str,
                    k: u32,
                    tag: Option<u64>,
                    exact: bool,
                    ef: u32,
                ) -> PyResult<Hits> {
                    let opts = $crate::store::search_options(exact, ef);
                    guarded(py, || {
                        Store::search(self, &Floats::decode(data, dtype)?, k, tag, opts)
                    })
                }

                /// `None`, or the index's `(m, ef_construction)`.
                fn index_params(&self, py: Python<'_>) -> PyResult<Option<(u32, u32)>> {
                    guarded(py, || {
                        Store::read(self, |kern| {
                            kern.index_params().map(|p| (p.m, p.ef_construction))
                        })
                    })
                }

                /// Batch search in chunks, checking for Ctrl-C between chunks. Returns row-major
                /// `(ids, distances)` bytes of `n * width` entries (ids `u64`, distances `f64`;
                /// short rows padded with id `u64::MAX` and distance `inf`) and `width`.
                #[pyo3(signature = (data, dtype, n, k, tag=None, exact=false, ef=64))]
                #[allow(clippy::too_many_arguments, reason = "the Python keywords")]
                fn search_batch<'py>(
                    &self,
                    py: Python<'py>,
                    data: &[u8],
                    dtype: &str,
                    n: usize,
                    k: u32,
                    tag: Option<u64>,
                    exact: bool,
                    ef: u32,
                ) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyBytes>, usize)> {
                    let opts = $crate::store::search_options(exact, ef);
                    let q = guarded(py, || fxps(data, dtype))?;
                    let dim = if n == 0 { 0 } else { q.len() / n };
                    let (width, rows) = guarded(py, || {
                        Store::read(self, |kern| (kern.result_count(k, tag), kern.len()))
                    })?;
                    let mut ids: Vec<u8> = Vec::with_capacity(n * width * 8);
                    let mut dist: Vec<u8> = Vec::with_capacity(n * width * 8);
                    // Each chunk is one pass over the store (Kernel::search_batch); chunks are
                    // sized to about 2^33 stored components each, so Ctrl-C is seen within a
                    // second or so.
                    let per = (1usize << 33) / (rows.max(1) * dim.max(1));
                    let chunk_queries = per.clamp(8, 1024);
                    let mut hits = Vec::new();
                    for chunk in q.chunks(dim.max(1) * chunk_queries) {
                        py.check_signals()?;
                        let (got, metric) = guarded(py, || {
                            Store::read(self, |kern| {
                                let (got, found) =
                                    kern.search_batch_vec_with(chunk, k, tag, opts)?;
                                hits = found;
                                Ok::<_, Fail>((got, kern.config().metric))
                            })?
                        })?;
                        // A chunk that saw a different number of matches (concurrent writes) is
                        // padded or cut to the first chunk's width.
                        for i in 0..chunk.len() / dim.max(1) {
                            let row = hits.get(i * got..(i + 1) * got).unwrap_or(&[]);
                            for j in 0..width {
                                let h = row.get(j);
                                #[allow(
                                    clippy::host_endian_bytes,
                                    reason = "numpy reads these bytes in this process"
                                )]
                                ids.extend_from_slice(&h.map_or(u64::MAX, |h| h.id).to_ne_bytes());
                                #[allow(
                                    clippy::host_endian_bytes,
                                    reason = "numpy reads these bytes in this process"
                                )]
                                dist.extend_from_slice(
                                    &h.map_or(f64::INFINITY, |h| {
                                        metric.distance_to_f64(h.distance)
                                    })
                                    .to_ne_bytes(),
                                );
                            }
                        }
                    }
                    Ok((PyBytes::new(py, &ids), PyBytes::new(py, &dist), width))
                }

                /// Search with a raw Q16.16 query (exact unless `exact` is false):
                /// `[(id, exact distance in 2^-32 units)]`.
                #[pyo3(signature = (query, k, tag=None, exact=true, ef=64))]
                fn search_raw(
                    &self,
                    py: Python<'_>,
                    query: Vec<i32>,
                    k: u32,
                    tag: Option<u64>,
                    exact: bool,
                    ef: u32,
                ) -> PyResult<Vec<(u64, i128)>> {
                    guarded(py, || {
                        let q: Vec<Fxp> = query.into_iter().map(Fxp).collect();
                        let opts = $crate::store::search_options(exact, ef);
                        Store::read(self, |kern| -> Result<Vec<(u64, i128)>, Fail> {
                            Ok(kern
                                .search_vec_with(&q, k, tag, opts)?
                                .iter()
                                .map(|h: &Hit| (h.id, h.distance))
                                .collect())
                        })?
                    })
                }

                fn get(&self, py: Python<'_>, id: u64) -> PyResult<Option<RecordTuple>> {
                    guarded(py, || Store::get(self, id))
                }

                fn neighbors(
                    &self,
                    py: Python<'_>,
                    node: u64,
                    direction: &str,
                ) -> PyResult<Vec<EdgeTuple>> {
                    guarded(py, || neighbors(self, node, parse_direction(direction)?))
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
                    guarded(py, || {
                        Store::traverse(self, start, hops, parse_direction(direction)?, kind)
                    })
                }

                fn state_hash<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
                    let h = guarded(py, || Store::state_hash(self))?;
                    Ok(PyBytes::new(py, &h))
                }

                fn count(&self, py: Python<'_>) -> PyResult<usize> {
                    guarded(py, || Store::count(self))
                }

                fn config(&self, py: Python<'_>) -> PyResult<(u32, &'static str)> {
                    guarded(py, || Store::config(self).map(|c| (c.dim, c.metric.name())))
                }
            }
        };
    };
}
pub(crate) use store_methods;
