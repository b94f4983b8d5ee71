//! Top-k selection: a bounded max-heap on `(distance, id)` in the caller's result slots.

use super::{Hit, HitSlot};

/// The running top-k of one query: a max-heap on `(distance, id)` in the caller's slots,
/// with the current worst kept aside so most rows are rejected with one comparison.
pub(super) struct TopK<'o, S> {
    heap: &'o mut [S],
    filled: usize,
    worst: Hit,
}

impl<'o, S: HitSlot> TopK<'o, S> {
    pub(super) fn new(heap: &'o mut [S]) -> Self {
        TopK {
            heap,
            filled: 0,
            worst: Hit::default(),
        }
    }

    /// The worst distance kept once the top-k is full (a row beyond it cannot enter).
    #[inline]
    pub(super) fn limit(&self) -> Option<i128> {
        (self.filled == self.heap.len()).then_some(self.worst.distance)
    }

    /// False when a row at `distance` cannot enter the top-k (whatever its id).
    #[inline(always)]
    pub(super) fn wants(&self, distance: i128) -> bool {
        self.filled < self.heap.len() || distance <= self.worst.distance
    }

    /// Keeps `hit` if it is among the best so far. The common case (rejected) is one
    /// comparison, inlined into the scan.
    #[inline(always)]
    pub(super) fn offer(&mut self, hit: Hit) {
        if self.filled < self.heap.len() || hit < self.worst {
            self.keep(hit);
        }
    }

    #[inline(never)]
    fn keep(&mut self, hit: Hit) {
        if self.filled == self.heap.len() {
            replace_top(self.heap, hit);
        } else {
            push_heap(self.heap, self.filled, hit);
            self.filled += 1;
        }
        if self.filled == self.heap.len() {
            self.worst = self.heap.first().map_or(hit, S::hit);
        }
    }

    pub(super) fn finish(self) -> usize {
        // Heapsort: the heap's largest goes to the end, the rest is a heap again. `(distance,
        // id)` is a total order on the hits kept (ids are unique), so any correct sort gives
        // this order; this one adds no sorting code to a firmware.
        let result = self.heap.get_mut(..self.filled).unwrap_or(&mut []);
        for end in (1..result.len()).rev() {
            let (Some(top), Some(last)) = (result.first().map(S::hit), result.get(end).map(S::hit))
            else {
                break;
            };
            if let Some(slot) = result.get_mut(end) {
                slot.set_hit(top);
            }
            replace_top(result.get_mut(..end).unwrap_or(&mut []), last);
        }
        self.filled
    }
}

// The heap moves a hole instead of swapping slots: each step writes one slot's hit, and the
// hit being placed is written once, at the end. Slots may be the caller's own structs (a C
// `valori_hit`), where a swap is three copies of the whole struct.

/// Max-heap on `(distance, id)` in `heap[..len + 1]` after adding `hit` at `len`.
fn push_heap<S: HitSlot>(heap: &mut [S], len: usize, hit: Hit) {
    let mut i = len;
    while i > 0 {
        let parent = (i - 1) / 2;
        match heap.get(parent).map(S::hit) {
            Some(p) if hit > p => {
                if let Some(slot) = heap.get_mut(i) {
                    slot.set_hit(p);
                }
                i = parent;
            }
            _ => break,
        }
    }
    if let Some(slot) = heap.get_mut(i) {
        slot.set_hit(hit);
    }
}

/// Puts `hit` in place of the largest element of a max-heap and restores the heap.
fn replace_top<S: HitSlot>(heap: &mut [S], hit: Hit) {
    let mut i = 0usize;
    loop {
        let l = 2 * i + 1;
        let Some(mut child) = heap.get(l).map(S::hit) else {
            break;
        };
        let mut c = l;
        if let Some(right) = heap.get(l + 1).map(S::hit) {
            if right > child {
                (c, child) = (l + 1, right);
            }
        }
        if child <= hit {
            break;
        }
        if let Some(slot) = heap.get_mut(i) {
            slot.set_hit(child);
        }
        i = c;
    }
    if let Some(slot) = heap.get_mut(i) {
        slot.set_hit(hit);
    }
}
