//! Vector storage: every record's vector, contiguous by row, in the narrowest of three widths
//! that holds every component stored so far.
//!
//! - narrow: each component as an `i16` (|x| <= `NARROW_MAX`, i.e. below 0.5 in Q16.16, as in
//!   most normalised embeddings of dimension 32 and up): half the memory and memory traffic,
//!   and SIMD multiply-add kernels with 16 products per instruction;
//! - mid: each component in 3 bytes (|x| <= `MID_MAX`, below 128.0: unit vectors of small
//!   dimension, most real data): three quarters of the memory. A row holds the top 16 bits of
//!   every component (`x >> 8`, an `i16`) and then the low bytes, so that a search can scan the
//!   top halves with the narrow kernels as an exact lower-bound filter (`search/scan.rs`);
//! - wide: each component as its Q16.16 `i32`.
//!
//! The width is a representation, not state: the values, the encoding and the hash are the
//! same either way. A store starts narrow and widens, in place and for good, when a component
//! that does not fit arrives (it never narrows again: deletes do not lower the bound). Every
//! width lives in the same `Fxp` table, so caller memory sized for the wide form
//! ([`crate::Kernel::mem_size`]) holds any of them. A store in caller memory widens in place
//! (narrow to wide, no extra memory; it skips mid); a growable store copies into a new table.

use crate::fxp::Fxp;
use crate::simd::{MID_MAX, NARROW_MAX};
use crate::slab::{NoRoom, Slab};

/// Components staged on the stack at a time where a vector is checked or stored in blocks:
/// enough for the compiler's vector loops on hosts, small on bare metal, where stack is
/// scarce (the whole of a Cortex-M0 part's RAM may be a few KiB). Only speed depends on it.
#[cfg(feature = "std")]
pub(crate) const STAGE: usize = 256;
#[cfg(not(feature = "std"))]
pub(crate) const STAGE: usize = 32;

/// Bytes per component.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Width {
    Narrow = 2,
    Mid = 3,
    Wide = 4,
}

impl Width {
    fn bytes(self) -> usize {
        self as usize
    }

    /// The narrowest width holding components up to `max` in magnitude.
    fn for_max(max: u32) -> Width {
        if max <= NARROW_MAX {
            Width::Narrow
        } else if max <= MID_MAX {
            Width::Mid
        } else {
            Width::Wide
        }
    }

    /// Component `j` of a row of `dim` components starting at byte `at` (narrow and wide:
    /// native order, as the kernels read them; mid: `i16` top half, then the low byte).
    fn read(self, bytes: &[u8], at: usize, j: usize, dim: usize) -> i32 {
        let get = |o: usize, n: usize| bytes.get(o..o + n).unwrap_or(&[]);
        match self {
            Width::Narrow => i32::from(bytemuck::pod_read_unaligned::<i16>(get(at + 2 * j, 2))),
            Width::Mid => {
                let hi = i32::from(bytemuck::pod_read_unaligned::<i16>(get(at + 2 * j, 2)));
                let lo = i32::from(get(at + 2 * dim + j, 1).first().copied().unwrap_or(0));
                (hi << 8) | lo
            }
            Width::Wide => bytemuck::pod_read_unaligned::<i32>(get(at + 4 * j, 4)),
        }
    }

    /// Stores `v` (which fits this width) as component `j` (see [`Width::read`]).
    fn write(self, bytes: &mut [u8], at: usize, j: usize, dim: usize, v: i32) {
        let mut put = |o: usize, src: &[u8]| {
            if let Some(dst) = bytes.get_mut(o..o + src.len()) {
                dst.copy_from_slice(src);
            }
        };
        match self {
            Width::Narrow => put(at + 2 * j, bytemuck::bytes_of(&(v as i16))),
            Width::Mid => {
                put(at + 2 * j, bytemuck::bytes_of(&((v >> 8) as i16)));
                put(at + 2 * dim + j, &[(v & 0xff) as u8]);
            }
            Width::Wide => put(at + 4 * j, bytemuck::bytes_of(&v)),
        }
    }
}

pub(crate) struct Vectors<'m> {
    words: Slab<'m, Fxp>,
    dim: usize,
    rows: usize,
    width: Width,
    /// Upper bound of |component| over every vector ever stored (exact until a delete).
    max_abs: u32,
    /// Largest AVX2 lane bound (`simd::norms_i16`) of any narrow row ever stored: lets a
    /// search prove that its 32-bit lanes cannot overflow.
    lanes: u64,
}

/// The stored vectors, for a scan.
#[derive(Clone, Copy)]
pub(crate) enum Layout<'a> {
    /// Row `r` is `data[r * stride..r * stride + dim]`.
    Narrow { data: &'a [i16], stride: usize },
    /// Row `r` is the bytes `data[r * stride..r * stride + 3 * dim]`: `dim` top halves
    /// (`i16`, also `top[r * stride / 2..][..dim]`), then `dim` low bytes.
    Mid {
        data: &'a [u8],
        top: &'a [i16],
        stride: usize,
    },
    /// Row `r` is `data[r * dim..(r + 1) * dim]`.
    Wide { data: &'a [Fxp] },
}

impl Layout<'_> {
    /// Rows `start..start + n` (clamped to the store).
    pub(crate) fn rows(&self, start: usize, n: usize, dim: usize) -> Layout<'_> {
        fn part<T>(d: &[T], start: usize, len: usize) -> &[T] {
            d.get(start..)
                .map(|d| d.get(..len).unwrap_or(d))
                .unwrap_or(&[])
        }
        match *self {
            Layout::Narrow { data, stride } => Layout::Narrow {
                data: part(data, start * stride, n * stride),
                stride,
            },
            Layout::Mid { data, top, stride } => Layout::Mid {
                data: part(data, start * stride, n * stride),
                top: part(top, start * stride / 2, n * stride / 2),
                stride,
            },
            Layout::Wide { data } => Layout::Wide {
                data: part(data, start * dim, n * dim),
            },
        }
    }
}

impl<'m> Vectors<'m> {
    pub(crate) fn new(words: Slab<'m, Fxp>, dim: usize) -> Self {
        Vectors {
            words,
            dim,
            rows: 0,
            width: Width::Narrow,
            max_abs: 0,
            lanes: 0,
        }
    }

    /// Words per row at width `w`.
    fn stride_for(&self, w: Width) -> usize {
        (self.dim * w.bytes()).div_ceil(4)
    }

    fn stride_words(&self) -> usize {
        self.stride_for(self.width)
    }

    #[cfg(feature = "alloc")]
    pub(crate) fn dim(&self) -> usize {
        self.dim
    }

    pub(crate) fn max_abs(&self) -> u32 {
        self.max_abs
    }

    /// See the field `lanes`.
    pub(crate) fn lane_bound(&self) -> u64 {
        self.lanes
    }

    /// True while every component stored fits 3 bytes but not all fit an `i16`.
    pub(crate) fn is_mid(&self) -> bool {
        self.width == Width::Mid
    }

    /// True while every component stored fits an `i16`.
    pub(crate) fn is_narrow(&self) -> bool {
        self.width == Width::Narrow
    }

    pub(crate) fn layout(&self) -> Layout<'_> {
        let s = self.stride_words();
        let words = self.words.as_slice().get(..self.rows * s).unwrap_or(&[]);
        match self.width {
            Width::Narrow => Layout::Narrow {
                data: bytemuck::cast_slice(words),
                stride: 2 * s,
            },
            Width::Mid => Layout::Mid {
                data: bytemuck::cast_slice(words),
                top: bytemuck::cast_slice(words),
                stride: 4 * s,
            },
            Width::Wide => Layout::Wide { data: words },
        }
    }

    pub(crate) fn row(&self, r: usize) -> Option<VectorRef<'_>> {
        if r >= self.rows {
            return None;
        }
        let s = self.stride_words();
        let words = self.words.as_slice().get(r * s..(r + 1) * s)?;
        Some(VectorRef(match self.width {
            Width::Narrow => {
                let halves: &[i16] = bytemuck::cast_slice(words);
                Repr::Narrow(halves.get(..self.dim)?)
            }
            Width::Mid => {
                let bytes: &[u8] = bytemuck::cast_slice(words);
                Repr::Mid(bytes.get(..3 * self.dim)?)
            }
            Width::Wide => Repr::Wide(words),
        }))
    }

    /// Makes room for `n` more rows whose largest |component| is `incoming`, widening the
    /// store first if they would not fit. Changes no value: safe before validation ends.
    pub(crate) fn reserve(&mut self, n: usize, incoming: u32) -> Result<(), NoRoom> {
        let mut target = Width::for_max(incoming).max(self.width);
        if target == Width::Mid && self.words.is_fixed() {
            target = Width::Wide;
        }
        let total = self
            .rows
            .checked_add(n)
            .and_then(|r| r.checked_mul(self.stride_for(target)))
            .ok_or(NoRoom)?;
        if target != self.width && !self.words.is_fixed() {
            return self.widen_copy(target, n);
        }
        self.words.reserve(total.saturating_sub(self.words.len()))?;
        if target != self.width {
            self.widen(target)?;
        }
        Ok(())
    }

    /// Rewrites every narrow row as wide, in place (caller memory), last component first:
    /// component `(r, j)` goes to byte `4 (r dim + j)` from byte `r SA + 2 j` (`SA` bytes per
    /// narrow row, `SA <= 4 dim`). Every component not yet moved, `(r', j') < (r, j)`, ends by
    /// byte `r SA + 2 j <= 4 (r dim + j)`, so nothing is overwritten before it is read.
    fn widen(&mut self, to: Width) -> Result<(), NoRoom> {
        let from = self.width;
        let (sa, sb) = (4 * self.stride_for(from), 4 * self.stride_for(to));
        let rows = self.rows;
        let extra = rows * (self.stride_for(to) - self.stride_for(from));
        self.words.extend_default(extra)?;
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(self.words.as_mut_slice());
        let dim = self.dim;
        for r in (0..rows).rev() {
            for j in (0..dim).rev() {
                let v = from.read(bytes, r * sa, j, dim);
                to.write(bytes, r * sb, j, dim, v);
            }
        }
        self.width = to;
        Ok(())
    }

    /// Rewrites every row at width `to` into a new growable table with room for `n` more
    /// rows; the old table is freed. Fails (with nothing changed) if memory is short.
    #[cfg(feature = "alloc")]
    fn widen_copy(&mut self, to: Width, n: usize) -> Result<(), NoRoom> {
        let (from, dim, rows) = (self.width, self.dim, self.rows);
        let (sa, sb) = (4 * self.stride_for(from), 4 * self.stride_for(to));
        let mut words: Slab<'m, Fxp> = Slab::growable();
        let total = rows.checked_add(n).ok_or(NoRoom)? * self.stride_for(to);
        words.reserve(total)?;
        words.extend_default(rows * self.stride_for(to))?;
        {
            let src: &[u8] = bytemuck::cast_slice(self.words.as_slice());
            let dst: &mut [u8] = bytemuck::cast_slice_mut(words.as_mut_slice());
            for r in 0..rows {
                for j in 0..dim {
                    to.write(dst, r * sb, j, dim, from.read(src, r * sa, j, dim));
                }
            }
        }
        self.words = words;
        self.width = to;
        Ok(())
    }

    #[cfg(not(feature = "alloc"))]
    fn widen_copy(&mut self, _to: Width, _n: usize) -> Result<(), NoRoom> {
        Err(NoRoom)
    }

    /// Appends a zeroed row (room reserved) and returns its words.
    fn new_row(&mut self) -> Result<&mut [Fxp], NoRoom> {
        let start = self.words.len();
        self.words.extend_default(self.stride_words())?;
        Ok(self
            .words
            .as_mut_slice()
            .get_mut(start..)
            .unwrap_or(&mut []))
    }

    /// [`Vectors::push`] of a stored command's vector: the values are copied in blocks into a
    /// buffer and stored from there, loops the compiler vectorises (the bulk of a replay).
    pub(crate) fn push_words(&mut self, values: &crate::Vector<'_>) -> Result<(), NoRoom> {
        if self.width == Width::Wide {
            return self.push(values.iter());
        }
        let start = self.words.len();
        let dim = self.dim;
        let width = self.width;
        let row: &mut [u8] = bytemuck::cast_slice_mut(self.new_row()?);
        let (tops, lows) = row.split_at_mut((2 * dim).min(row.len()));
        let mut buf = [Fxp(0); STAGE];
        let mut max = 0u32;
        let mut at = 0;
        while at < dim {
            let n = values.copy_values(at, buf.get_mut(..(dim - at).min(STAGE)).unwrap_or(&mut []));
            if n == 0 {
                break;
            }
            let part = buf.get(..n).unwrap_or(&[]);
            max = part.iter().fold(max, |m, v| m.max(v.0.unsigned_abs()));
            let top = tops.get_mut(2 * at..2 * (at + n)).unwrap_or(&mut []);
            match width {
                Width::Narrow => {
                    for (t, v) in top.chunks_exact_mut(2).zip(part) {
                        t.copy_from_slice(bytemuck::bytes_of(&(v.0 as i16)));
                    }
                }
                _ => {
                    let low = lows.get_mut(at..at + n).unwrap_or(&mut []);
                    for ((t, l), v) in top.chunks_exact_mut(2).zip(low.iter_mut()).zip(part) {
                        t.copy_from_slice(bytemuck::bytes_of(&((v.0 >> 8) as i16)));
                        *l = (v.0 & 0xff) as u8;
                    }
                }
            }
            at += n;
        }
        self.finish_row(start, max)
    }

    /// Keeps the row just written if its largest |component| fits the width (else removes
    /// it: `NoRoom`), and updates the store's bounds.
    fn finish_row(&mut self, start: usize, max: u32) -> Result<(), NoRoom> {
        if Width::for_max(max) > self.width {
            self.words.truncate(start);
            return Err(NoRoom);
        }
        if self.width == Width::Narrow {
            let s = self.stride_words();
            let words = self.words.as_slice().get(start..start + s).unwrap_or(&[]);
            let halves: &[i16] = bytemuck::cast_slice(words);
            let row = halves.get(..self.dim).unwrap_or(halves);
            let lanes = crate::simd::norms_i16(crate::simd::Backend::detect(), row).1;
            self.lanes = self.lanes.max(lanes);
        }
        self.rows += 1;
        self.max_abs = self.max_abs.max(max);
        Ok(())
    }

    /// Appends a row of `dim` values (room made by [`Vectors::reserve`] with their maximum).
    /// A value that does not fit the store's width fails with nothing appended.
    pub(crate) fn push(&mut self, values: impl Iterator<Item = Fxp>) -> Result<(), NoRoom> {
        let start = self.words.len();
        let mut max = 0u32;
        match self.width {
            Width::Narrow => {
                let halves: &mut [i16] = bytemuck::cast_slice_mut(self.new_row()?);
                // Internal iteration of the values (`for_each`): one loop, without a
                // per-component branch on how they are held. Extra values are ignored.
                let mut slots = halves.iter_mut();
                values.for_each(|v| {
                    if let Some(h) = slots.next() {
                        max = max.max(v.0.unsigned_abs());
                        *h = v.0 as i16;
                    }
                });
            }
            Width::Mid => {
                let dim = self.dim;
                let bytes: &mut [u8] = bytemuck::cast_slice_mut(self.new_row()?);
                // The row's layout (`Width::read`): `dim` top halves (`i16`), then `dim` low
                // bytes. A value over `MID_MAX` is written truncated; the row is then taken
                // back below.
                let (tops, lows) = bytes.split_at_mut((2 * dim).min(bytes.len()));
                let mut slots = tops.chunks_exact_mut(2).zip(lows.iter_mut());
                values.for_each(|v| {
                    if let Some((top, low)) = slots.next() {
                        max = max.max(v.0.unsigned_abs());
                        top.copy_from_slice(bytemuck::bytes_of(&((v.0 >> 8) as i16)));
                        *low = (v.0 & 0xff) as u8;
                    }
                });
            }
            Width::Wide => {
                self.words.extend(values.take(self.dim).inspect(|v| {
                    max = max.max(v.0.unsigned_abs());
                }))?;
            }
        }
        self.finish_row(start, max)
    }

    /// Moves the last row into row `r` and drops the last.
    pub(crate) fn swap_remove(&mut self, r: usize) {
        if r < self.rows {
            let s = self.stride_words();
            self.words.swap_remove_chunk(r * s, s);
            self.rows -= 1;
        }
    }
}

/// A stored vector (borrowed from the kernel): its Q16.16 components, whatever the storage
/// width.
#[derive(Clone, Copy)]
pub struct VectorRef<'k>(Repr<'k>);

#[derive(Clone, Copy)]
enum Repr<'k> {
    Wide(&'k [Fxp]),
    Narrow(&'k [i16]),
    /// Three little-endian bytes per component.
    Mid(&'k [u8]),
}

impl<'k> VectorRef<'k> {
    /// Number of components.
    pub fn len(&self) -> usize {
        match self.0 {
            Repr::Wide(w) => w.len(),
            Repr::Narrow(n) => n.len(),
            Repr::Mid(m) => m.len() / 3,
        }
    }

    /// True for a zero-length vector (never stored: dimensions start at 1).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Component `i`.
    pub fn get(&self, i: usize) -> Option<Fxp> {
        match self.0 {
            Repr::Wide(w) => w.get(i).copied(),
            Repr::Narrow(n) => n.get(i).map(|&v| Fxp(i32::from(v))),
            Repr::Mid(m) => (i < m.len() / 3).then(|| Fxp(Width::Mid.read(m, 0, i, m.len() / 3))),
        }
    }

    /// The components in order.
    pub fn iter(&self) -> VectorIter<'k> {
        VectorIter(self.0, 0)
    }

    /// Copies the components into `out` (up to the shorter length); returns how many.
    pub fn copy_to(&self, out: &mut [Fxp]) -> usize {
        let mut n = 0;
        for (o, v) in out.iter_mut().zip(self.iter()) {
            *o = v;
            n += 1;
        }
        n
    }

    /// The components as a new vector.
    #[cfg(feature = "alloc")]
    pub fn to_vec(&self) -> alloc::vec::Vec<Fxp> {
        self.iter().collect()
    }

    /// Passes the components, as little-endian `i32`s, to `put` a block at a time (the
    /// canonical encoding), with one tight loop per storage width.
    pub(crate) fn put_le(&self, mut put: impl FnMut(&[u8])) {
        // Components per block: many on hosts (fewer, larger hash updates), few on bare metal
        // (stack is scarce there, and the compact hasher buffers a 64-byte block itself).
        #[cfg(feature = "std")]
        const N: usize = 256;
        #[cfg(not(feature = "std"))]
        const N: usize = 16;
        let mut block = [0u8; 4 * N];
        fn emit<T: Copy>(
            vals: &[T],
            block: &mut [u8; 4 * N],
            put: &mut impl FnMut(&[u8]),
            f: impl Fn(T) -> i32,
        ) {
            for part in vals.chunks(N) {
                for (dst, &x) in block.chunks_exact_mut(4).zip(part) {
                    dst.copy_from_slice(&f(x).to_le_bytes());
                }
                put(block.get(..part.len() * 4).unwrap_or(&[]));
            }
        }
        match self.0 {
            Repr::Wide(w) => emit(w, &mut block, &mut put, |x| x.0),
            Repr::Narrow(n) => emit(n, &mut block, &mut put, i32::from),
            Repr::Mid(m) => {
                // `dim` top halves, then `dim` low bytes (`Width::read`).
                let dim = m.len() / 3;
                let (tops, lows) = m.split_at((2 * dim).min(m.len()));
                for (top, low) in tops.chunks(2 * N).zip(lows.chunks(N)) {
                    let n = low.len();
                    for ((dst, t), &l) in
                        block.chunks_exact_mut(4).zip(top.chunks_exact(2)).zip(low)
                    {
                        let hi = i32::from(bytemuck::pod_read_unaligned::<i16>(t));
                        dst.copy_from_slice(&((hi << 8) | i32::from(l)).to_le_bytes());
                    }
                    put(block.get(..n * 4).unwrap_or(&[]));
                }
            }
        }
    }
}

impl PartialEq for VectorRef<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for VectorRef<'_> {}

impl PartialEq<[Fxp]> for VectorRef<'_> {
    fn eq(&self, other: &[Fxp]) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter().copied())
    }
}

impl PartialEq<&[Fxp]> for VectorRef<'_> {
    fn eq(&self, other: &&[Fxp]) -> bool {
        *self == **other
    }
}

#[cfg(feature = "alloc")]
impl PartialEq<alloc::vec::Vec<Fxp>> for VectorRef<'_> {
    fn eq(&self, other: &alloc::vec::Vec<Fxp>) -> bool {
        *self == other[..]
    }
}

impl core::fmt::Debug for VectorRef<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Iterator over a [`VectorRef`]'s components.
#[derive(Clone)]
pub struct VectorIter<'k>(Repr<'k>, usize);

impl Iterator for VectorIter<'_> {
    type Item = Fxp;

    #[inline]
    fn next(&mut self) -> Option<Fxp> {
        let v = VectorRef(self.0).get(self.1)?;
        self.1 += 1;
        Some(v)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = VectorRef(self.0).len().saturating_sub(self.1);
        (n, Some(n))
    }
}

impl ExactSizeIterator for VectorIter<'_> {}
