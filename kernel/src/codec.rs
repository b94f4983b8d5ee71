//! The canonical encoding of a kernel's state (the snapshot body) and the state hash.
//!
//! The layout is specified byte by byte in `docs/FORMAT.md`. Everything is little-endian and
//! fixed-width; records, nodes and edges appear in ascending id order; nothing depends on
//! capacity, memory layout or the order operations happened in, so identical states give
//! identical bytes.

use crate::command::Word;
use crate::config::{Config, Metric, MAX_DIM, MAX_LABEL_LEN, MAX_META_LEN};
use crate::error::{Error, Invalid, Resource, Result};
use crate::fxp::Fxp;
use crate::memory::Capacity;
use crate::state::Kernel;
use crate::tables::{arena_push, full, Adj, EdgeSlot, IndexEntry, NodeSlot, Row, EDGE_HAS_WEIGHT};

/// First bytes of every encoding.
pub const MAGIC: [u8; 4] = *b"VLRK";
/// Version of the state encoding (see the version log in `docs/FORMAT.md`).
pub const FORMAT_VERSION: u32 = 1;
/// Domain tag hashed before the encoding: `BLAKE3(DOMAIN || encoding)` is the state hash.
pub const STATE_HASH_DOMAIN: [u8; 16] = *b"valori-state-v1\0";

/// Bytes of the state encoding's header (magic, version, dimension, metric, three counters).
pub const ENCODING_HEADER_LEN: usize = 4 + 4 + 4 + 1 + 8 * 3;
const HEADER_LEN: usize = ENCODING_HEADER_LEN;
const NODE_LEN: usize = 8 + 4 + 1 + 8 + 4;
const EDGE_LEN: usize = 8 + 4 + 8 + 8 + 1 + 4;

/// Where an encoding goes: a hasher, a buffer, or a counter.
pub trait Sink {
    /// Appends bytes.
    fn put(&mut self, bytes: &[u8]);
}

#[cfg(feature = "std")]
impl Sink for blake3::Hasher {
    fn put(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }
}

#[cfg(feature = "alloc")]
impl Sink for alloc::vec::Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

struct Count(u64);
impl Sink for Count {
    fn put(&mut self, bytes: &[u8]) {
        self.0 += bytes.len() as u64;
    }
}

struct SliceSink<'a> {
    buf: &'a mut [u8],
    pos: usize,
}
impl Sink for SliceSink<'_> {
    fn put(&mut self, bytes: &[u8]) {
        if let Some(dst) = self.buf.get_mut(self.pos..self.pos + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
        self.pos += bytes.len();
    }
}

/// Block size of [`Chunked`]: large enough for BLAKE3's SIMD paths (several 1 KiB chunks per
/// update) on hosts; none on bare metal, where stack is scarce and the compact hasher buffers
/// a block itself (writes pass straight through). Only speed depends on it.
#[cfg(feature = "std")]
const CHUNK: usize = 16 * 1024;
#[cfg(not(feature = "std"))]
const CHUNK: usize = 0;

/// Gathers small writes into blocks before passing them on (BLAKE3 is far faster on large
/// updates than on 4-byte ones).
struct Chunked<'s, S: Sink> {
    sink: &'s mut S,
    buf: [u8; CHUNK],
    len: usize,
    /// Bytes the sink has received (including any it had before), modulo [`ALIGN`].
    passed: usize,
}

/// BLAKE3's chunk: blocks handed on end at a multiple of it where the buffer allows, so the
/// hasher takes whole chunks on its fast (many chunks at once) path.
const ALIGN: usize = 1024;

impl<S: Sink> Chunked<'_, S> {
    /// Passes on everything buffered.
    fn flush(&mut self) {
        self.sink.put(self.buf.get(..self.len).unwrap_or(&[]));
        self.passed = (self.passed + self.len) % ALIGN;
        self.len = 0;
    }

    /// Passes on the buffered bytes up to the last chunk boundary (all of them if there is
    /// none), keeping the rest.
    fn flush_aligned(&mut self) {
        let over = (self.passed + self.len) % ALIGN;
        if over >= self.len {
            return self.flush();
        }
        let cut = self.len - over;
        self.sink.put(self.buf.get(..cut).unwrap_or(&[]));
        self.buf.copy_within(cut..self.len, 0);
        self.len = over;
        self.passed = 0;
    }
}

impl<S: Sink> Chunked<'_, S> {
    /// Appends components as little-endian `i32`s, a block at a time (whatever the storage
    /// width: the encoding is of the values).
    fn put_vector(&mut self, v: crate::VectorRef<'_>) {
        v.put_le(|bytes| self.put(bytes));
    }
}

impl<S: Sink> Sink for Chunked<'_, S> {
    fn put(&mut self, bytes: &[u8]) {
        if CHUNK == 0 {
            // Bare metal: the compact hasher buffers its 64-byte block itself.
            return self.sink.put(bytes);
        }
        if self.len + bytes.len() > self.buf.len() {
            self.flush_aligned();
            if self.len + bytes.len() > self.buf.len() {
                self.flush();
            }
        }
        match self.buf.get_mut(self.len..self.len + bytes.len()) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                self.len += bytes.len();
            }
            None => self.sink.put(bytes),
        }
    }
}

impl<'m> Kernel<'m> {
    /// Streams the canonical encoding into `sink`.
    pub fn encode_into<S: Sink>(&self, sink: &mut S) {
        self.encode_after(0, sink);
    }

    /// [`Kernel::encode_into`] for a sink that has already received `before` bytes (blocks
    /// are cut at BLAKE3 chunk boundaries of the whole input).
    fn encode_after<S: Sink>(&self, before: usize, sink: &mut S) {
        let mut s = Chunked {
            sink,
            buf: [0; CHUNK],
            len: 0,
            passed: before % ALIGN,
        };
        self.encode_chunked(&mut s);
        s.flush();
    }

    fn encode_chunked<S: Sink>(&self, s: &mut Chunked<'_, S>) {
        s.put(&MAGIC);
        s.put(&FORMAT_VERSION.to_le_bytes());
        #[cfg(not(feature = "negative-control-native-endian"))]
        s.put(&self.config.dim.to_le_bytes());
        // The planted bug the big-endian leg must catch (see Cargo.toml).
        #[cfg(feature = "negative-control-native-endian")]
        #[allow(clippy::host_endian_bytes)]
        s.put(&self.config.dim.to_ne_bytes());
        s.put(&[self.config.metric as u8]);
        s.put(&self.next_record.to_le_bytes());
        s.put(&self.next_node.to_le_bytes());
        s.put(&self.next_edge.to_le_bytes());
        s.put(&(self.len() as u64).to_le_bytes());
        for r in self.records() {
            s.put(&r.id.to_le_bytes());
            s.put(&[u8::from(r.tag.is_some())]);
            s.put(&r.tag.unwrap_or(0).to_le_bytes());
            s.put(&(r.meta.len() as u32).to_le_bytes());
            s.put(r.meta);
            s.put_vector(r.vector);
        }
        s.put(&(self.node_count() as u64).to_le_bytes());
        for n in self.nodes() {
            s.put(&n.id.to_le_bytes());
            s.put(&n.kind.to_le_bytes());
            s.put(&[u8::from(n.record.is_some())]);
            s.put(&n.record.unwrap_or(0).to_le_bytes());
            s.put(&(n.label.len() as u32).to_le_bytes());
            s.put(n.label);
        }
        s.put(&(self.edge_count() as u64).to_le_bytes());
        for e in self.edges() {
            s.put(&e.id.to_le_bytes());
            s.put(&e.kind.to_le_bytes());
            s.put(&e.from.to_le_bytes());
            s.put(&e.to.to_le_bytes());
            s.put(&[u8::from(e.weight.is_some())]);
            s.put(&e.weight.map_or(0, |w| w.0).to_le_bytes());
        }
    }

    /// Length in bytes of the canonical encoding.
    pub fn encoded_len(&self) -> u64 {
        let mut c = Count(0);
        self.encode_into(&mut c);
        c.0
    }

    /// Writes the canonical encoding to `out`; returns its length. If `out` is too small,
    /// `InsufficientSize` names the length needed and `out` is not written.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize> {
        let needed = self.encoded_len();
        if (out.len() as u64) < needed {
            return Err(Error::InsufficientSize { needed });
        }
        let mut s = SliceSink { buf: out, pos: 0 };
        self.encode_into(&mut s);
        Ok(s.pos)
    }

    /// The canonical encoding as a new vector (room reserved up front).
    #[cfg(feature = "alloc")]
    pub fn to_bytes(&self) -> alloc::vec::Vec<u8> {
        let mut v = alloc::vec::Vec::new();
        // Only a hint: if it cannot be reserved, the vector grows as it is written.
        let _ = v.try_reserve(self.encoded_len_hint() as usize);
        self.encode_into(&mut v);
        v
    }

    /// The length of the canonical encoding, computed from the table sizes without encoding
    /// (exact: every field has a fixed size or a stored length).
    pub fn encoded_len_hint(&self) -> u64 {
        let per_record = (8 + 1 + 8 + 4 + 4 * self.config.dim as usize) as u64;
        HEADER_LEN as u64
            + 8
            + self.len() as u64 * per_record
            + self.meta.len() as u64
            + 8
            + (self.node_count() * NODE_LEN) as u64
            + self.labels.len() as u64
            + 8
            + (self.edge_count() * EDGE_LEN) as u64
    }

    /// `BLAKE3(STATE_HASH_DOMAIN || canonical encoding)`. Streams; allocates nothing.
    pub fn state_hash(&self) -> [u8; 32] {
        let mut h = crate::hash::Hasher::new();
        self.state_hash_input(&mut h);
        h.finalize()
    }

    /// Streams what [`Kernel::state_hash`] hashes, `STATE_HASH_DOMAIN` then the canonical
    /// encoding, into `sink`: for a caller that hashes it another way (on several threads,
    /// say) to the same value.
    pub fn state_hash_input<S: Sink>(&self, sink: &mut S) {
        sink.put(&STATE_HASH_DOMAIN);
        self.encode_after(STATE_HASH_DOMAIN.len(), sink);
    }

    /// The dimension and metric a canonical encoding declares, read from its first
    /// [`ENCODING_HEADER_LEN`] bytes alone (the header, checked as a full decode checks it):
    /// a state's shape without decoding the state.
    pub fn encoding_config(prefix: &[u8]) -> Result<Config> {
        Header::read(&mut Reader::new(prefix)).map(|h| h.config)
    }

    /// Decodes a canonical encoding into a new growable kernel.
    #[cfg(feature = "alloc")]
    pub fn from_bytes(bytes: &[u8]) -> Result<Kernel<'static>> {
        let header = Header::read(&mut Reader::new(bytes))?;
        let mut k = Kernel::new(header.config)?;
        decode_body(&mut k, bytes)?;
        Ok(k)
    }

    /// Decodes a canonical encoding into a new kernel in caller memory. A state that does not
    /// fit `cap` is a `Full` error.
    // Not inlined, for the same reason as the snapshot check before it (see `unframe`).
    #[inline(never)]
    pub fn from_bytes_in(bytes: &[u8], cap: Capacity, mem: &'m mut [u8]) -> Result<Kernel<'m>> {
        let header = Header::read(&mut Reader::new(bytes))?;
        let mut k = Kernel::with_memory(header.config, cap, mem)?;
        decode_body(&mut k, bytes)?;
        Ok(k)
    }
}

/// A bounds-checked cursor over hostile bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8]> {
        let s = self
            .bytes
            .get(self.pos..self.pos.saturating_add(n))
            .ok_or(Error::corrupt(self.pos, what))?;
        self.pos += n;
        Ok(s)
    }
    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8> {
        Ok(self.array::<1>(what)?[0])
    }
    fn u32(&mut self, what: &'static str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    fn u64(&mut self, what: &'static str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    /// A count of items at least `min_len` bytes each, checked against the bytes left.
    fn count(&mut self, min_len: usize, what: &'static str) -> Result<usize> {
        let at = self.pos;
        let n = self.u64(what)?;
        match usize::try_from(n) {
            Ok(n) if n <= self.remaining() / min_len.max(1) => Ok(n),
            _ => Err(Error::corrupt(at, "count exceeds the bytes that follow")),
        }
    }
    /// A flag byte (0 or 1) and the u64 it guards, which must be 0 when the flag is clear.
    fn optional_u64(&mut self, what: &'static str) -> Result<Option<u64>> {
        let at = self.pos;
        let flag = self.u8(what)?;
        let v = self.u64(what)?;
        match (flag, v) {
            (1, v) => Ok(Some(v)),
            (0, 0) => Ok(None),
            _ => Err(Error::corrupt(at, "non-canonical optional field")),
        }
    }
    /// A u32 length (at most `max`) and that many bytes.
    fn bytes_max(&mut self, max: usize, what: &'static str) -> Result<&'a [u8]> {
        let at = self.pos;
        let len = self.u32(what)? as usize;
        if len > max {
            return Err(Error::corrupt(at, "length over the limit"));
        }
        self.take(len, what)
    }
    /// An id strictly above the previous one and below the counter.
    fn id(&mut self, prev: Option<u64>, next: u64, what: &'static str) -> Result<u64> {
        let at = self.pos;
        let id = self.u64(what)?;
        if prev.is_some_and(|p| id <= p) {
            return Err(Error::corrupt(at, "ids not strictly ascending"));
        }
        if id >= next {
            return Err(Error::corrupt(at, "id not below the id counter"));
        }
        Ok(id)
    }
}

struct Header {
    config: Config,
    next_record: u64,
    next_node: u64,
    next_edge: u64,
}

impl Header {
    fn read(r: &mut Reader<'_>) -> Result<Header> {
        if r.array::<4>("magic")? != MAGIC {
            return Err(Error::corrupt(0, "not a valori state encoding (bad magic)"));
        }
        if r.u32("version")? != FORMAT_VERSION {
            return Err(Error::corrupt(4, "unsupported format version"));
        }
        let dim = r.u32("dimension")?;
        if dim == 0 || dim > MAX_DIM {
            return Err(Error::corrupt(8, "dimension out of range"));
        }
        let metric =
            Metric::from_u8(r.u8("metric")?).ok_or(Error::corrupt(12, "unknown metric"))?;
        if !metric.is_built() {
            return Err(Error::InvalidInput(Invalid::MetricNotBuilt { metric }));
        }
        Ok(Header {
            config: Config { dim, metric },
            next_record: r.u64("record counter")?,
            next_node: r.u64("node counter")?,
            next_edge: r.u64("edge counter")?,
        })
    }
}

/// False when no input vector can normalise ([`crate::fxp::normalize`]) to `w`, so `w` cannot
/// be a stored cosine-metric vector.
///
/// `normalize` gives `w_i = round(t_i)` with `t_i = v_i * 2^32 / r` and
/// `r = floor(sqrt(sum v^2) * 2^16) >= 2^16`, so `2^16 <= |t| < 2^16 * (r + 1) / r <= 2^16 + 1`
/// (in raw Q16.16 units). `t` lies in the box of points that round to `w` (each `|t_i - w_i|
/// <= 1/2`), so the box must reach inside radius `2^16 + 1` and outside radius `2^16`:
/// `sum max(|w_i| - 1/2, 0)^2 < (2^16 + 1)^2` and `sum (|w_i| + 1/2)^2 >= 2^32` (computed
/// doubled, in integers). Every vector the encoder stores passes; an all-zero vector
/// and any vector not of unit length (up to that rounding) fail. The test is not "`w` is a
/// fixed point of `normalize`": normalising is not idempotent (a few stored vectors in a
/// thousand move by one unit when normalised again), so that test would refuse real states.
fn normalize_can_give(w: impl Iterator<Item = Fxp>) -> bool {
    let (mut inner, mut outer) = (0u128, 0u128);
    for x in w {
        // |x| <= 2^31: each term is below 2^66 and at most 2^16 terms are summed.
        let twice = u128::from(x.0.unsigned_abs()) * 2;
        inner += twice.saturating_sub(1).pow(2);
        outer += (twice + 1).pow(2);
    }
    inner < ((1u128 << 17) + 2).pow(2) && outer >= 1u128 << 34
}

/// Fills an empty kernel from `bytes`. Every length is checked against the bytes that follow
/// before anything is reserved, so hostile input cannot trigger a large allocation.
fn decode_body(k: &mut Kernel<'_>, bytes: &[u8]) -> Result<()> {
    let mut r = Reader::new(bytes);
    let h = Header::read(&mut r)?;
    debug_assert_eq!(r.pos, HEADER_LEN);
    k.next_record = h.next_record;
    k.next_node = h.next_node;
    k.next_edge = h.next_edge;
    let dim = h.config.dim as usize;

    let n = r.count(8 + 1 + 8 + 4 + 4 * dim, "record count")?;
    k.index.reserve(n).map_err(full(Resource::Records))?;
    k.rows.reserve(n).map_err(full(Resource::Records))?;
    k.vectors.reserve(n, 0).map_err(full(Resource::Records))?;
    let mut prev = None;
    for i in 0..n {
        let id = r.id(prev, h.next_record, "record id")?;
        prev = Some(id);
        let tag = r.optional_u64("record tag")?;
        let meta = r.bytes_max(MAX_META_LEN, "record metadata")?;
        let at = r.pos;
        let vector = r.take(4 * dim, "record vector")?;
        let values = vector.chunks_exact(4).map(Fxp::from_le);
        if h.config.metric.is_cosine() && !normalize_can_give(values.clone()) {
            return Err(Error::corrupt(
                at,
                "a cosine-metric vector that normalisation cannot produce",
            ));
        }
        let meta_off = arena_push(&mut k.meta, meta, Resource::MetadataBytes)?;
        let max = values
            .clone()
            .map(|x| x.0.unsigned_abs())
            .max()
            .unwrap_or(0);
        // Widens the store (room for the rows left) on the first value that needs it.
        k.vectors
            .reserve(n - i, max)
            .map_err(full(Resource::Records))?;
        k.vectors.push(values).map_err(full(Resource::Records))?;
        k.rows
            .push(Row::new(id, tag, meta_off, meta.len()))
            .map_err(full(Resource::Records))?;
        k.index
            .push(IndexEntry { id, row: i as u64 })
            .map_err(full(Resource::Records))?;
    }

    let n = r.count(NODE_LEN, "node count")?;
    k.nodes.reserve(n).map_err(full(Resource::Nodes))?;
    let mut prev = None;
    for _ in 0..n {
        let id = r.id(prev, h.next_node, "node id")?;
        prev = Some(id);
        let kind = r.u32("node kind")?;
        let at = r.pos;
        let record = r.optional_u64("node record")?;
        if record.is_some_and(|rec| !k.contains(rec)) {
            return Err(Error::corrupt(at, "node linked to a missing record"));
        }
        let label = r.bytes_max(MAX_LABEL_LEN, "node label")?;
        let label_off = arena_push(&mut k.labels, label, Resource::LabelBytes)?;
        k.nodes
            .push(NodeSlot::new(id, kind, record, label_off, label.len()))
            .map_err(full(Resource::Nodes))?;
    }

    let n = r.count(EDGE_LEN, "edge count")?;
    k.edges.reserve(n).map_err(full(Resource::Edges))?;
    k.out_adj.reserve(n).map_err(full(Resource::Edges))?;
    k.in_adj.reserve(n).map_err(full(Resource::Edges))?;
    let mut prev = None;
    for _ in 0..n {
        let id = r.id(prev, h.next_edge, "edge id")?;
        prev = Some(id);
        let kind = r.u32("edge kind")?;
        let at = r.pos;
        let from = r.u64("edge source")?;
        let to = r.u64("edge target")?;
        if k.node(from).is_none() || k.node(to).is_none() {
            return Err(Error::corrupt(at, "edge between missing nodes"));
        }
        let at = r.pos;
        let flag = r.u8("edge weight flag")?;
        let weight = i32::from_le_bytes(r.array("edge weight")?);
        if flag > 1 || (flag == 0 && weight != 0) {
            return Err(Error::corrupt(at, "non-canonical optional field"));
        }
        k.edges
            .push(EdgeSlot {
                id,
                from,
                to,
                kind,
                flags: if flag == 1 { EDGE_HAS_WEIGHT } else { 0 },
                weight,
                _pad: 0,
            })
            .map_err(full(Resource::Edges))?;
        k.out_adj
            .push(Adj {
                node: from,
                edge: id,
            })
            .map_err(full(Resource::Edges))?;
        k.in_adj
            .push(Adj { node: to, edge: id })
            .map_err(full(Resource::Edges))?;
    }
    k.out_adj.as_mut_slice().sort_unstable();
    k.in_adj.as_mut_slice().sort_unstable();
    if r.remaining() != 0 {
        return Err(Error::corrupt(r.pos, "trailing bytes after the state"));
    }
    Ok(())
}
