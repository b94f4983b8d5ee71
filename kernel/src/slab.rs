//! Storage for the kernel's tables: either a fixed slice the caller provided (no allocator)
//! or, with feature `alloc`, a growable `Vec`. Every operation that can fail because of space
//! fails before it changes anything, so a kernel command can reserve first and then mutate
//! infallibly.

#[cfg(feature = "alloc")]
use alloc::vec::Vec;

/// A length-tracked table of plain-old-data elements.
pub(crate) enum Slab<'m, T> {
    Fixed {
        mem: &'m mut [T],
        len: usize,
    },
    #[cfg(feature = "alloc")]
    Growable(Vec<T>),
}

/// The table could not make room (fixed capacity reached, or the allocator refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NoRoom;

impl<'m, T: Copy + Default> Slab<'m, T> {
    pub(crate) fn fixed(mem: &'m mut [T]) -> Self {
        Slab::Fixed { mem, len: 0 }
    }

    #[cfg(feature = "alloc")]
    pub(crate) fn growable() -> Self {
        Slab::Growable(Vec::new())
    }

    /// True for a table in caller memory (fixed capacity).
    pub(crate) fn is_fixed(&self) -> bool {
        matches!(self, Slab::Fixed { .. })
    }

    pub(crate) fn as_slice(&self) -> &[T] {
        match self {
            Slab::Fixed { mem, len } => mem.get(..*len).unwrap_or(&[]),
            #[cfg(feature = "alloc")]
            Slab::Growable(v) => v,
        }
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [T] {
        match self {
            Slab::Fixed { mem, len } => mem.get_mut(..*len).unwrap_or(&mut []),
            #[cfg(feature = "alloc")]
            Slab::Growable(v) => v,
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Slab::Fixed { len, .. } => *len,
            #[cfg(feature = "alloc")]
            Slab::Growable(v) => v.len(),
        }
    }

    /// Makes sure `n` more elements fit without failing.
    pub(crate) fn reserve(&mut self, n: usize) -> Result<(), NoRoom> {
        match self {
            Slab::Fixed { mem, len } => {
                if mem.len() - *len >= n {
                    Ok(())
                } else {
                    Err(NoRoom)
                }
            }
            #[cfg(feature = "alloc")]
            Slab::Growable(v) => v.try_reserve(n).map_err(|_| NoRoom),
        }
    }

    /// Appends the elements; the space must have been reserved.
    pub(crate) fn extend(&mut self, items: impl IntoIterator<Item = T>) -> Result<(), NoRoom> {
        for item in items {
            self.push(item)?;
        }
        Ok(())
    }

    pub(crate) fn push(&mut self, item: T) -> Result<(), NoRoom> {
        match self {
            Slab::Fixed { mem, len } => {
                let slot = mem.get_mut(*len).ok_or(NoRoom)?;
                *slot = item;
                *len += 1;
                Ok(())
            }
            #[cfg(feature = "alloc")]
            Slab::Growable(v) => {
                v.try_reserve(1).map_err(|_| NoRoom)?;
                v.push(item);
                Ok(())
            }
        }
    }

    /// Appends `n` default elements; the space must have been reserved.
    pub(crate) fn extend_default(&mut self, n: usize) -> Result<(), NoRoom> {
        match self {
            Slab::Fixed { mem, len } => {
                let slots = mem.get_mut(*len..*len + n).ok_or(NoRoom)?;
                slots.fill(T::default());
                *len += n;
                Ok(())
            }
            #[cfg(feature = "alloc")]
            Slab::Growable(v) => {
                v.try_reserve(n).map_err(|_| NoRoom)?;
                v.resize(v.len() + n, T::default());
                Ok(())
            }
        }
    }

    /// Inserts at `at` (<= len), shifting the tail right.
    pub(crate) fn insert(&mut self, at: usize, item: T) -> Result<(), NoRoom> {
        let len = self.len();
        if at > len {
            return Err(NoRoom);
        }
        self.push(item)?;
        let s = self.as_mut_slice();
        if let Some(tail) = s.get_mut(at..) {
            tail.rotate_right(1);
        }
        Ok(())
    }

    /// Removes the elements `at..at + n`, shifting the tail left.
    pub(crate) fn remove_range(&mut self, at: usize, n: usize) {
        let len = self.len();
        let end = at.saturating_add(n).min(len);
        if at >= end {
            return;
        }
        let s = self.as_mut_slice();
        if let Some(tail) = s.get_mut(at..) {
            tail.rotate_left(end - at);
        }
        self.truncate(len - (end - at));
    }

    /// Moves the last `n` elements to `at..at + n` and drops the last `n` (a chunked
    /// swap-remove).
    pub(crate) fn swap_remove_chunk(&mut self, at: usize, n: usize) {
        let len = self.len();
        if n == 0 || at + n > len {
            return;
        }
        if at + n != len {
            self.as_mut_slice().copy_within(len - n..len, at);
        }
        self.truncate(len - n);
    }

    pub(crate) fn truncate(&mut self, new_len: usize) {
        match self {
            Slab::Fixed { len, .. } => *len = (*len).min(new_len),
            #[cfg(feature = "alloc")]
            Slab::Growable(v) => v.truncate(new_len),
        }
    }

    /// Runs `f` on scratch space of `n` elements just past the end (contents unspecified);
    /// the table's length and contents are unchanged afterwards.
    pub(crate) fn with_scratch<R>(
        &mut self,
        n: usize,
        f: impl FnOnce(&mut [T]) -> R,
    ) -> Result<R, NoRoom> {
        match self {
            Slab::Fixed { mem, len } => mem.get_mut(*len..*len + n).map(f).ok_or(NoRoom),
            #[cfg(feature = "alloc")]
            Slab::Growable(v) => {
                let len = v.len();
                v.try_reserve(n).map_err(|_| NoRoom)?;
                v.resize(len + n, T::default());
                let r = f(v.get_mut(len..).unwrap_or(&mut []));
                v.truncate(len);
                Ok(r)
            }
        }
    }
}
