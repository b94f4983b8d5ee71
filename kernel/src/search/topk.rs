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
            result.swap(0, end);
            sift_down(result.get_mut(..end).unwrap_or(&mut []));
        }
        self.filled
    }
}

/// Max-heap on `(distance, id)` in `heap[..len + 1]` after adding `hit` at `len`.
fn push_heap<S: HitSlot>(heap: &mut [S], len: usize, hit: Hit) {
    let mut i = len;
    if let Some(slot) = heap.get_mut(i) {
        slot.set_hit(hit);
    }
    while i > 0 {
        let parent = (i - 1) / 2;
        match (heap.get(parent).map(S::hit), heap.get(i).map(S::hit)) {
            (Some(p), Some(c)) if c > p => heap.swap(parent, i),
            _ => break,
        }
        i = parent;
    }
}

/// Replaces the largest element of a full max-heap and restores the heap.
fn replace_top<S: HitSlot>(heap: &mut [S], hit: Hit) {
    if let Some(top) = heap.first_mut() {
        top.set_hit(hit);
    }
    sift_down(heap);
}

/// Restores a max-heap whose top alone may be out of place.
fn sift_down<S: HitSlot>(heap: &mut [S]) {
    let n = heap.len();
    let mut i = 0usize;
    let key = |heap: &[S], j: usize| heap.get(j).map(S::hit);
    loop {
        let l = 2 * i + 1;
        let r = l + 1;
        let mut largest = i;
        if l < n && key(heap, l) > key(heap, largest) {
            largest = l;
        }
        if r < n && key(heap, r) > key(heap, largest) {
            largest = r;
        }
        if largest == i {
            break;
        }
        heap.swap(i, largest);
        i = largest;
    }
}
