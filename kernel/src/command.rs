//! Commands: the only way to change a kernel's state, and the unit the engine logs.
//!
//! A [`Command`] borrows its data, so it can be built from caller buffers or decoded from a
//! WAL record without copying or allocating. Vectors and id lists are [`Words`]: either a
//! native slice or little-endian bytes as they arrived on the wire; both encode to the same
//! bytes and compare equal when their values do.
//!
//! The wire encoding is postcard 1.x (specified in `docs/FORMAT.md`); [`Command::encode`] and
//! [`Command::decode`] are the pinned entry points.

use crate::error::{Error, Invalid, Result};
use crate::fxp::Fxp;
use core::fmt;
use core::marker::PhantomData;
use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde::ser::{Serialize, Serializer};

/// A fixed-width value that travels as little-endian bytes.
pub trait Word: Copy + PartialEq + fmt::Debug + bytemuck::Pod + 'static {
    /// Encoded width in bytes.
    const SIZE: usize;
    /// The encoded bytes.
    type Bytes: IntoIterator<Item = u8>;
    /// Little-endian encoding.
    fn to_le(self) -> Self::Bytes;
    /// Reads one value from exactly `SIZE` little-endian bytes.
    fn from_le(bytes: &[u8]) -> Self;
}

impl Word for Fxp {
    const SIZE: usize = 4;
    type Bytes = [u8; 4];
    fn to_le(self) -> [u8; 4] {
        self.0.to_le_bytes()
    }
    fn from_le(b: &[u8]) -> Self {
        let mut a = [0u8; 4];
        a.copy_from_slice(b.get(..4).unwrap_or(&[0; 4]));
        Fxp(i32::from_le_bytes(a))
    }
}

impl Word for u64 {
    const SIZE: usize = 8;
    type Bytes = [u8; 8];
    fn to_le(self) -> [u8; 8] {
        self.to_le_bytes()
    }
    fn from_le(b: &[u8]) -> Self {
        let mut a = [0u8; 8];
        a.copy_from_slice(b.get(..8).unwrap_or(&[0; 8]));
        u64::from_le_bytes(a)
    }
}

/// A borrowed list of words: native values, or little-endian bytes from an encoding.
#[derive(Clone, Copy)]
pub enum Words<'a, T: Word> {
    /// Values in native representation.
    Native(&'a [T]),
    /// Little-endian bytes; the length is a multiple of `T::SIZE` (checked by [`Words::le`]).
    Le(LeBytes<'a, T>),
}

/// Little-endian bytes whose length is a whole number of `T` words.
#[derive(Clone, Copy)]
pub struct LeBytes<'a, T> {
    bytes: &'a [u8],
    _word: PhantomData<T>,
}

/// A vector: `dim` Q16.16 components (or `n * dim` for a batch, row-major).
pub type Vector<'a> = Words<'a, Fxp>;
/// A list of ids or tags.
pub type Ids<'a> = Words<'a, u64>;

impl<'a, T: Word> Words<'a, T> {
    /// An empty list.
    pub const EMPTY: Self = Words::Native(&[]);

    /// Wraps little-endian bytes; their length must be a multiple of the word size.
    pub fn le(bytes: &'a [u8]) -> Result<Self> {
        if !bytes.len().is_multiple_of(T::SIZE) {
            return Err(Error::InvalidInput(Invalid::BadEncoding));
        }
        Ok(Words::Le(LeBytes {
            bytes,
            _word: PhantomData,
        }))
    }

    /// Number of words.
    pub fn len(&self) -> usize {
        match self {
            Words::Native(s) => s.len(),
            Words::Le(b) => b.bytes.len() / T::SIZE,
        }
    }

    /// True when there are no words.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The word at `i`.
    pub fn get(&self, i: usize) -> Option<T> {
        match self {
            Words::Native(s) => s.get(i).copied(),
            Words::Le(b) => {
                let start = i.checked_mul(T::SIZE)?;
                b.bytes.get(start..start + T::SIZE).map(T::from_le)
            }
        }
    }

    /// The words in order.
    pub fn iter(&self) -> WordsIter<'a, T> {
        WordsIter {
            inner: match *self {
                Words::Native(s) => IterRepr::Native(s.iter()),
                Words::Le(b) => IterRepr::Le(b.bytes.chunks_exact(T::SIZE)),
            },
        }
    }

    /// Copies the words `start..start + out.len()` (as far as the list goes) into `out` as
    /// values; returns how many. A slice-to-slice loop, so the compiler can vectorise it.
    pub fn copy_values(&self, start: usize, out: &mut [T]) -> usize {
        match self {
            Words::Native(s) => {
                let src = s.get(start..).unwrap_or(&[]);
                let n = src.len().min(out.len());
                for (o, v) in out.iter_mut().zip(src) {
                    *o = *v;
                }
                n
            }
            Words::Le(b) => {
                let src = b.bytes.get(start.saturating_mul(T::SIZE)..).unwrap_or(&[]);
                let mut n = 0;
                for (o, c) in out.iter_mut().zip(src.chunks_exact(T::SIZE)) {
                    *o = T::from_le(c);
                    n += 1;
                }
                n
            }
        }
    }

    /// The words `start..start + n` (clamped to the list).
    pub fn slice(&self, start: usize, n: usize) -> Self {
        let len = self.len();
        let start = start.min(len);
        let end = start.saturating_add(n).min(len);
        match self {
            Words::Native(s) => Words::Native(s.get(start..end).unwrap_or(&[])),
            Words::Le(b) => Words::Le(LeBytes {
                bytes: b.bytes.get(start * T::SIZE..end * T::SIZE).unwrap_or(&[]),
                _word: PhantomData,
            }),
        }
    }
}

/// Iterator over [`Words`].
pub struct WordsIter<'a, T: Word> {
    inner: IterRepr<'a, T>,
}

enum IterRepr<'a, T> {
    Native(core::slice::Iter<'a, T>),
    Le(core::slice::ChunksExact<'a, u8>),
}

impl<T: Word> Iterator for WordsIter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        match &mut self.inner {
            IterRepr::Native(i) => i.next().copied(),
            IterRepr::Le(c) => c.next().map(T::from_le),
        }
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = match &self.inner {
            IterRepr::Native(i) => i.len(),
            IterRepr::Le(c) => c.len(),
        };
        (left, Some(left))
    }
    // Internal iteration (for_each, max, sum, ...) picks the representation once, so the
    // loop over the words compiles without a per-word branch.
    fn fold<B, F: FnMut(B, T) -> B>(self, init: B, f: F) -> B {
        match self.inner {
            IterRepr::Native(i) => i.copied().fold(init, f),
            IterRepr::Le(c) => c.map(T::from_le).fold(init, f),
        }
    }
}

impl<T: Word> ExactSizeIterator for WordsIter<'_, T> {}

impl<'a, T: Word> From<&'a [T]> for Words<'a, T> {
    fn from(s: &'a [T]) -> Self {
        Words::Native(s)
    }
}

impl<T: Word> PartialEq for Words<'_, T> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl<T: Word> fmt::Debug for Words<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

// Serialised as bytes. On big-endian hosts native words are written as a `seq` of `u8`: in
// postcard that is a varint length followed by the raw bytes, exactly the layout of `bytes`,
// which the deserialiser borrows. No buffer is needed on either side, on any endianness.
impl<T: Word> Serialize for Words<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> core::result::Result<S::Ok, S::Error> {
        match self {
            Words::Le(b) => s.serialize_bytes(b.bytes),
            // On little-endian hosts the words' memory is already their encoding.
            #[cfg(target_endian = "little")]
            Words::Native(v) => s.serialize_bytes(bytemuck::cast_slice(v)),
            #[cfg(not(target_endian = "little"))]
            Words::Native(v) => s.collect_seq(LeByteIter {
                words: v,
                word: 0,
                byte: 0,
            }),
        }
    }
}

/// The little-endian bytes of native words, with an exact length (postcard needs it up front).
#[cfg_attr(target_endian = "little", allow(dead_code))]
struct LeByteIter<'a, T> {
    words: &'a [T],
    word: usize,
    byte: usize,
}

impl<T: Word> Iterator for LeByteIter<'_, T> {
    type Item = u8;
    fn next(&mut self) -> Option<u8> {
        let w = self.words.get(self.word)?;
        let b = w.to_le().into_iter().nth(self.byte)?;
        self.byte += 1;
        if self.byte == T::SIZE {
            self.byte = 0;
            self.word += 1;
        }
        Some(b)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.words.len() - self.word.min(self.words.len())) * T::SIZE - self.byte;
        (left, Some(left))
    }
}

impl<'de: 'a, 'a, T: Word> Deserialize<'de> for Words<'a, T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> core::result::Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Word> Visitor<'de> for V<T> {
            type Value = Words<'de, T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "borrowed bytes, a multiple of {}", T::SIZE)
            }
            fn visit_borrowed_bytes<E: de::Error>(
                self,
                v: &'de [u8],
            ) -> core::result::Result<Self::Value, E> {
                Words::le(v).map_err(|_| E::invalid_length(v.len(), &self))
            }
        }
        d.deserialize_bytes(V(PhantomData))
    }
}

/// A state change. `Kernel::apply` is the only mutator; a command that fails changes nothing.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Command<'a> {
    /// Insert one record. `id: None` takes the next automatic id.
    Insert {
        /// Caller-chosen id, or `None` for the next automatic id.
        id: Option<u64>,
        /// Optional tag, usable as a search filter.
        tag: Option<u64>,
        /// `dim` components.
        #[serde(borrow)]
        vector: Vector<'a>,
        /// Metadata bytes (empty: none), at most [`crate::MAX_META_LEN`].
        meta: &'a [u8],
    },
    /// Insert `n` records atomically. `vectors` holds `n * dim` components, row-major.
    InsertBatch {
        /// Empty for automatic ids (consecutive), else one id per vector.
        #[serde(borrow)]
        ids: Ids<'a>,
        /// Empty for no tags, else one tag per vector.
        #[serde(borrow)]
        tags: Ids<'a>,
        /// `n * dim` components.
        #[serde(borrow)]
        vectors: Vector<'a>,
    },
    /// Delete a record, the nodes linked to it and their edges.
    Delete {
        /// The record.
        id: u64,
    },
    /// Replace a record's metadata (empty removes it).
    SetMeta {
        /// The record.
        id: u64,
        /// New metadata.
        meta: &'a [u8],
    },
    /// Replace a record's tag.
    SetTag {
        /// The record.
        id: u64,
        /// New tag, or `None` to remove it.
        tag: Option<u64>,
    },
    /// Create a graph node, optionally linked to a record.
    CreateNode {
        /// Caller-chosen id, or `None` for the next automatic id.
        id: Option<u64>,
        /// Application-defined kind.
        kind: u32,
        /// The linked record, which must exist.
        record: Option<u64>,
        /// Label bytes (empty: none), at most [`crate::MAX_LABEL_LEN`].
        label: &'a [u8],
    },
    /// Delete a node and every edge into or out of it.
    DeleteNode {
        /// The node.
        id: u64,
    },
    /// Create a directed edge between two existing nodes.
    CreateEdge {
        /// Caller-chosen id, or `None` for the next automatic id.
        id: Option<u64>,
        /// Application-defined kind.
        kind: u32,
        /// Source node.
        from: u64,
        /// Target node.
        to: u64,
        /// Optional weight.
        weight: Option<Fxp>,
    },
    /// Delete an edge.
    DeleteEdge {
        /// The edge.
        id: u64,
    },
}

/// One list of the commands' names gives both tables, so the C names cannot drift.
macro_rules! command_names {
    ($($name:literal),* $(,)?) => {
        /// The commands' names, by variant index (the encoding's first byte, docs/FORMAT.md §5).
        pub const COMMAND_NAMES: [&str; 9] = [$($name),*];
        /// [`COMMAND_NAMES`] as NUL-terminated strings (C's `valori_command_name`).
        pub const COMMAND_NAMES_C: [&core::ffi::CStr; 9] = [$(c_name(concat!($name, "\0"))),*];
    };
}

const fn c_name(with_nul: &'static str) -> &'static core::ffi::CStr {
    match core::ffi::CStr::from_bytes_with_nul(with_nul.as_bytes()) {
        Ok(s) => s,
        // Unreachable: each name is a literal without NUL bytes, given one at its end.
        Err(_) => c"",
    }
}

command_names!(
    "insert",
    "insert_batch",
    "delete",
    "set_meta",
    "set_tag",
    "create_node",
    "delete_node",
    "create_edge",
    "delete_edge",
);

impl<'a> Command<'a> {
    /// The variant index the encoding starts with (docs/FORMAT.md §5).
    pub fn kind(&self) -> u32 {
        match self {
            Command::Insert { .. } => 0,
            Command::InsertBatch { .. } => 1,
            Command::Delete { .. } => 2,
            Command::SetMeta { .. } => 3,
            Command::SetTag { .. } => 4,
            Command::CreateNode { .. } => 5,
            Command::DeleteNode { .. } => 6,
            Command::CreateEdge { .. } => 7,
            Command::DeleteEdge { .. } => 8,
        }
    }

    /// The command's name (`"insert"`, `"insert_batch"`, ...; [`COMMAND_NAMES`]).
    pub fn name(&self) -> &'static str {
        COMMAND_NAMES
            .get(self.kind() as usize)
            .copied()
            .unwrap_or("unknown")
    }

    /// Length of [`Command::encode`]'s output.
    pub fn encoded_len(&self) -> usize {
        postcard::serialize_with_flavor(self, postcard::ser_flavors::Size::default()).unwrap_or(0)
    }

    /// Encodes into `out`, returning the length written. Too small: `InsufficientSize`.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize> {
        let needed = self.encoded_len();
        if out.len() < needed {
            return Err(Error::InsufficientSize {
                needed: needed as u64,
            });
        }
        postcard::to_slice(self, out)
            .map(|s| s.len())
            .map_err(|_| Error::InsufficientSize {
                needed: needed as u64,
            })
    }

    /// Encodes into a new vector.
    #[cfg(feature = "alloc")]
    pub fn to_vec(&self) -> alloc::vec::Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// Decodes exactly one command from `bytes` (trailing bytes are an error). Borrows from
    /// `bytes`; never allocates; any byte string gives a command or a `Corrupt` error.
    pub fn decode(bytes: &'a [u8]) -> Result<Command<'a>> {
        match postcard::take_from_bytes::<Command<'a>>(bytes) {
            // postcard also decodes forms its encoder never writes (an overlong varint, say):
            // accept exactly the bytes the encoder produces, so that one command has one
            // encoding.
            Ok((cmd, [])) => {
                match postcard::serialize_with_flavor(&cmd, SameAs { bytes, pos: 0 }) {
                    Ok(true) => Ok(cmd),
                    _ => Err(Error::corrupt(
                        0,
                        "not the canonical encoding of the command",
                    )),
                }
            }
            Ok((_, rest)) => Err(Error::corrupt(
                bytes.len() - rest.len(),
                "trailing bytes after the command",
            )),
            Err(_) => Err(Error::corrupt(0, "not a valid command encoding")),
        }
    }
}

/// A postcard output that compares what is serialised with `bytes` instead of storing it:
/// `Ok(true)` when they are the same.
struct SameAs<'b> {
    bytes: &'b [u8],
    pos: usize,
}

impl postcard::ser_flavors::Flavor for SameAs<'_> {
    type Output = bool;

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        match self.bytes.get(self.pos) {
            Some(&b) if b == data => {
                self.pos += 1;
                Ok(())
            }
            _ => Err(postcard::Error::SerializeBufferFull),
        }
    }

    // A vector's bytes arrive as one slice: compare them at once, not byte by byte.
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        let end = self.pos.saturating_add(data.len());
        match self.bytes.get(self.pos..end) {
            Some(b) if b == data => {
                self.pos = end;
                Ok(())
            }
            _ => Err(postcard::Error::SerializeBufferFull),
        }
    }

    fn finalize(self) -> postcard::Result<bool> {
        Ok(self.pos == self.bytes.len())
    }
}
