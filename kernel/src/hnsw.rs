//! A deterministic HNSW index (Malkov & Yashunin) over the kernel's stored integer vectors.
//!
//! Every choice is a function of the commands alone, so two kernels that applied the same
//! commands hold the same graph, byte for byte, on every CPU:
//! - a record's level comes from a hash of its id ([`level_of`]), not from a random stream;
//! - distances are exact integers (the kernel's own exact kernels), and every ordering is by
//!   `(distance, slot)`: ties go to the lower slot, and slots are a function of the commands
//!   (results are then reported in `(distance, id)` order);
//! - neighbour lists keep their order, and the in-neighbours of a deleted record are repaired
//!   in id order;
//! - a new record takes the lowest free slot, so slot numbers (which the encoding holds) are a
//!   function of the commands too.
//!
//! Deletes remove the record from the graph and repair every node that linked to it (its
//! neighbours are offered as replacements, then the usual heuristic prunes), so recall does not
//! decay under churn. The graph is not part of the state hash; [`Hnsw::encode`] is its own
//! canonical encoding (`docs/FORMAT.md` §15), and [`Hnsw::decode`] checks every invariant.

use crate::config::Metric;
use crate::error::{Error, Invalid, Result};
use crate::simd::{self, Backend};
use crate::vectors::Vectors;
use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet, BinaryHeap};
use alloc::vec::Vec;
use core::cmp::Reverse;

/// Highest level a record can have.
pub const MAX_LEVEL: u8 = 15;
/// Most links per node above level 0 (`m`); level 0 keeps `2 m`.
pub const MAX_M: u32 = 64;
/// Largest `ef_construction` (and search `ef`).
pub const MAX_EF: u32 = 1 << 16;
/// Most slots an index can hold (a link packs a slot into 28 bits beside its level).
pub const MAX_SLOTS: usize = 1 << 28;

const NONE: u32 = u32::MAX;
const FREE: u64 = u64::MAX;

/// The parameters of an approximate index: part of a database's configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IndexParams {
    /// Links per node above level 0 (level 0 keeps `2 m`); 2 to 64. The usual value is 16.
    pub m: u32,
    /// Candidates considered when a record is linked in; `m` to 65536. The usual value is 200.
    pub ef_construction: u32,
}

impl Default for IndexParams {
    fn default() -> Self {
        IndexParams {
            m: 16,
            ef_construction: 200,
        }
    }
}

impl IndexParams {
    /// Checked parameters: `InvalidInput` outside `2 <= m <= 64`, `m <= ef_construction <=
    /// 65536`.
    pub fn new(m: u32, ef_construction: u32) -> Result<IndexParams> {
        if !(2..=MAX_M).contains(&m) {
            return Err(Error::InvalidInput(Invalid::IndexParam {
                what: "m",
                value: u64::from(m),
            }));
        }
        if ef_construction < m || ef_construction > MAX_EF {
            return Err(Error::InvalidInput(Invalid::IndexParam {
                what: "ef_construction",
                value: u64::from(ef_construction),
            }));
        }
        Ok(IndexParams { m, ef_construction })
    }

    fn max_links(&self, level: u8) -> usize {
        if level == 0 {
            2 * self.m as usize
        } else {
            self.m as usize
        }
    }
}

/// SplitMix64: the hash that draws levels (and nothing else).
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The level of record `id` in an index with `m` links: the largest `l <= MAX_LEVEL` with
/// `h < 2^64 / m^l`, `h = splitmix64(id)`, so `P(level >= l) = m^-l` (the paper's
/// `mL = 1 / ln m`), in integers.
pub fn level_of(id: u64, m: u32) -> u8 {
    let h = u128::from(splitmix64(id));
    let mut bound = 1u128 << 64;
    let mut level = 0;
    while level < MAX_LEVEL {
        bound /= u128::from(m.max(2));
        if h >= bound {
            break;
        }
        level += 1;
    }
    level
}

/// A candidate: `(distance, slot)`, ordered by distance then slot.
type Cand = (i128, u32);

/// Distances from one point (a query, or a stored node) to stored nodes.
pub(crate) trait Dist {
    /// A hint that `slot`'s vector is read soon.
    fn prefetch(&self, _slot: u32) {}
    /// A hint that `words` are read soon.
    fn prefetch_words(&self, _words: &[u32]) {}
    /// The exact distance to `slot`.
    fn dist(&mut self, slot: u32) -> i128;
}

/// Distances from stored node `x` ([`Space::pair`]).
struct FromNode<'s, 'a, 'm> {
    space: &'s Space<'a, 'm>,
    g: &'s Hnsw,
    x: u32,
}

impl Dist for FromNode<'_, '_, '_> {
    fn prefetch(&self, slot: u32) {
        self.space.prefetch(self.g.row(slot));
    }
    fn prefetch_words(&self, words: &[u32]) {
        self.space.prefetch_words(words);
    }
    fn dist(&mut self, slot: u32) -> i128 {
        self.space.pair(self.g, self.x, slot)
    }
}

/// Slots already seen by one search.
struct Visited {
    bits: Vec<u64>,
}

impl Visited {
    fn new(slots: usize) -> Visited {
        Visited {
            bits: alloc::vec![0; slots.div_ceil(64)],
        }
    }

    /// Marks `slot`; true if it was not marked.
    #[inline]
    fn insert(&mut self, slot: u32) -> bool {
        let (w, b) = ((slot / 64) as usize, slot % 64);
        match self.bits.get_mut(w) {
            Some(word) => {
                let new = *word & (1 << b) == 0;
                *word |= 1 << b;
                new
            }
            None => false,
        }
    }
}

/// The graph.
#[derive(Clone, Debug)]
pub(crate) struct Hnsw {
    params: IndexParams,
    /// Record id per slot (`FREE`: an empty slot).
    ids: Vec<u64>,
    levels: Vec<u8>,
    /// The kernel row holding each slot's vector (derived: not encoded).
    rows: Vec<u32>,
    /// The slot of each kernel row (derived).
    slot_of_row: Vec<u32>,
    /// `|x|^2` per slot while the store is narrow (below 2^47; derived; L2's fast paths);
    /// empty once it is wider (a store never narrows while open; a restored one computes them).
    norms: Vec<i64>,
    /// Level-0 links: per slot, a count then `2 m` slots.
    links0: Vec<u32>,
    /// Links above level 0 of the slots above it (about one in `m`): for each level
    /// `1..=level`, a count then `m` slots.
    upper: BTreeMap<u32, Vec<u32>>,
    /// In-links per slot, `level << 28 | slot`, in no particular order (derived).
    ins: Vec<Box<[u32]>>,
    /// Free slots (derived: the `FREE` ids).
    free: BTreeSet<u32>,
    entry: u32,
    live: usize,
}

/// Where the distances come from: the kernel's vectors and metric.
#[derive(Clone, Copy)]
pub(crate) struct Space<'a, 'm> {
    pub(crate) vectors: &'a Vectors<'m>,
    pub(crate) metric: Metric,
    pub(crate) backend: Backend,
    /// The narrow store's rows (`i16` data, stride, dimension), if the store is narrow.
    narrow: Option<(&'a [i16], usize, usize)>,
}

impl<'a, 'm> Space<'a, 'm> {
    pub(crate) fn new(vectors: &'a Vectors<'m>, metric: Metric) -> Space<'a, 'm> {
        let narrow = match vectors.layout() {
            crate::vectors::Layout::Narrow { data, stride } => Some((data, stride, vectors.dim())),
            _ => None,
        };
        Space {
            vectors,
            metric,
            backend: Backend::detect(),
            narrow,
        }
    }

    /// Row `row`'s components, if the store is narrow.
    #[inline]
    pub(crate) fn narrow_row(&self, row: usize) -> Option<&'a [i16]> {
        let (data, stride, dim) = self.narrow?;
        let at = row.checked_mul(stride)?;
        data.get(at..at.checked_add(dim)?)
    }

    /// Asks the cache for row `row`.
    #[inline]
    pub(crate) fn prefetch(&self, row: usize) {
        if let Some(x) = self.narrow_row(row) {
            simd::prefetch_all(self.backend, x);
        }
    }

    /// Asks the cache for `words`.
    #[inline]
    pub(crate) fn prefetch_words(&self, words: &[u32]) {
        simd::prefetch_all(self.backend, bytemuck::cast_slice(words));
    }

    /// The exact inner product of two narrow rows with lane bounds `la`, `lb`.
    #[inline]
    pub(crate) fn dot16(&self, x: &[i16], y: &[i16], la: u64, lb: u64) -> i64 {
        if simd::lanes_fit(la, lb) {
            simd::dot_i16_free(self.backend, x, y)
        } else {
            let mx = self.vectors.max_abs().min(simd::NARROW_MAX);
            simd::dot_i16(self.backend, x, y, simd::narrow_group(mx, mx))
        }
    }

    /// The exact pair distance between two stored rows: squared L2 under L2, the negated inner
    /// product otherwise (cosine vectors are stored unit length). Symmetric.
    fn pair(&self, g: &Hnsw, a: u32, b: u32) -> i128 {
        let (ra, rb) = (g.row(a), g.row(b));
        if let (Some(x), Some(y)) = (self.narrow_row(ra), self.narrow_row(rb)) {
            let lanes = self.vectors.lane_bound();
            let dot = i128::from(self.dot16(x, y, lanes, lanes));
            return match self.metric {
                Metric::L2 => i128::from(g.norm(a)) + i128::from(g.norm(b)) - 2 * dot,
                _ => -dot,
            };
        }
        let (Some(x), Some(y)) = (self.vectors.row(ra), self.vectors.row(rb)) else {
            return i128::MAX;
        };
        let pairs = x.iter().zip(y.iter());
        match self.metric {
            Metric::L2 => pairs
                .map(|(p, q)| {
                    let d = i128::from(p.0) - i128::from(q.0);
                    d * d
                })
                .sum(),
            _ => -pairs
                .map(|(p, q)| i128::from(p.0) * i128::from(q.0))
                .sum::<i128>(),
        }
    }

    /// `|x|^2` of row `row` if it is stored narrow (else unused: 0).
    fn norm(&self, row: u32) -> i64 {
        self.narrow_row(row as usize)
            .map_or(0, |n| simd::norms_i16(self.backend, n).0)
    }
}

impl Hnsw {
    pub(crate) fn new(params: IndexParams) -> Hnsw {
        Hnsw {
            params,
            ids: Vec::new(),
            levels: Vec::new(),
            rows: Vec::new(),
            slot_of_row: Vec::new(),
            norms: Vec::new(),
            links0: Vec::new(),
            upper: BTreeMap::new(),
            ins: Vec::new(),
            free: BTreeSet::new(),
            entry: NONE,
            live: 0,
        }
    }

    pub(crate) fn params(&self) -> IndexParams {
        self.params
    }

    /// Records indexed.
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    pub(crate) fn row(&self, slot: u32) -> usize {
        self.rows
            .get(slot as usize)
            .map_or(usize::MAX, |&r| r as usize)
    }

    pub(crate) fn norm(&self, slot: u32) -> i64 {
        self.norms.get(slot as usize).copied().unwrap_or(0)
    }

    fn id(&self, slot: u32) -> u64 {
        self.ids.get(slot as usize).copied().unwrap_or(FREE)
    }

    fn level(&self, slot: u32) -> u8 {
        self.levels.get(slot as usize).copied().unwrap_or(0)
    }

    /// The links of `slot` at `level`.
    fn links(&self, slot: u32, level: u8) -> &[u32] {
        let list = if level == 0 {
            let w = 1 + self.params.max_links(0);
            self.links0
                .get(slot as usize * w..(slot as usize + 1) * w)
                .unwrap_or(&[])
        } else {
            let w = 1 + self.params.max_links(1);
            let at = (level as usize - 1) * w;
            self.upper
                .get(&slot)
                .and_then(|u| u.get(at..at + w))
                .unwrap_or(&[])
        };
        match list.split_first() {
            Some((&n, rest)) => rest.get(..n as usize).unwrap_or(rest),
            None => &[],
        }
    }

    /// Replaces the links of `slot` at `level` (at most `max_links(level)`), keeping the
    /// in-links of the old and new targets right.
    fn set_links(&mut self, slot: u32, level: u8, new: &[u32]) {
        let old: Vec<u32> = self.links(slot, level).to_vec();
        let tag = (u32::from(level) << 28) | slot;
        for &t in &old {
            if !new.contains(&t) {
                if let Some(list) = self.ins.get_mut(t as usize) {
                    unlink(list, tag);
                }
            }
        }
        for &t in new {
            if !old.contains(&t) {
                if let Some(list) = self.ins.get_mut(t as usize) {
                    link(list, tag);
                }
            }
        }
        let max = self.params.max_links(level);
        let list = if level == 0 {
            let w = 1 + max;
            self.links0
                .get_mut(slot as usize * w..(slot as usize + 1) * w)
        } else {
            let w = 1 + max;
            let at = (level as usize - 1) * w;
            self.upper
                .get_mut(&slot)
                .and_then(|u| u.get_mut(at..at + w))
        };
        if let Some(list) = list {
            let n = new.len().min(max);
            if let Some((count, rest)) = list.split_first_mut() {
                *count = n as u32;
                for (d, s) in rest.iter_mut().zip(new.iter().take(n)) {
                    *d = *s;
                }
            }
        }
    }

    /// Asks the cache for `slot`'s level-`level` links.
    fn prefetch_links(&self, slot: u32, level: u8, dist: &impl Dist) {
        if level == 0 {
            let w = 1 + self.params.max_links(0);
            if let Some(list) = self.links0.get(slot as usize * w..(slot as usize + 1) * w) {
                dist.prefetch_words(list);
            }
        }
    }

    /// Room for one more record (before the kernel changes anything).
    pub(crate) fn reserve(&mut self, n: usize) -> core::result::Result<(), ()> {
        let slots = self.ids.len() + n;
        if slots > MAX_SLOTS {
            return Err(());
        }
        let w = 1 + self.params.max_links(0);
        let e = |_| ();
        self.ids.try_reserve(n).map_err(e)?;
        self.levels.try_reserve(n).map_err(e)?;
        self.rows.try_reserve(n).map_err(e)?;
        self.slot_of_row.try_reserve(n).map_err(e)?;
        self.links0
            .try_reserve(n.checked_mul(w).ok_or(())?)
            .map_err(e)?;
        self.ins.try_reserve(n).map_err(e)
    }

    /// Takes the lowest free slot (or a new one) for record `id` at kernel row `row`.
    fn take_slot(&mut self, id: u64, row: u32, space: &Space<'_, '_>) -> u32 {
        let level = level_of(id, self.params.m);
        let norm = space.norm(row);
        let w = 1 + self.params.max_links(0);
        let upper_len = usize::from(level) * (1 + self.params.max_links(1));
        let slot = match self.free.pop_first() {
            Some(s) => s,
            None => {
                let s = self.ids.len() as u32;
                self.ids.push(FREE);
                self.levels.push(0);
                self.rows.push(NONE);
                self.links0.extend(core::iter::repeat_n(0, w));
                self.ins.push(Box::default());
                s
            }
        };
        let i = slot as usize;
        if let Some(x) = self.ids.get_mut(i) {
            *x = id;
        }
        if let Some(x) = self.levels.get_mut(i) {
            *x = level;
        }
        if let Some(x) = self.rows.get_mut(i) {
            *x = row;
        }
        if space.narrow.is_some() {
            if self.norms.len() <= i {
                self.norms.resize(i + 1, 0);
            }
            if let Some(x) = self.norms.get_mut(i) {
                *x = norm;
            }
        } else if !self.norms.is_empty() {
            self.norms = Vec::new();
        }
        if upper_len > 0 {
            self.upper.insert(slot, alloc::vec![0; upper_len]);
        }
        if let Some(list) = self.links0.get_mut(i * w) {
            *list = 0;
        }
        self.live += 1;
        slot
    }

    /// Links in record `id`, just stored at kernel row `row` (the last row).
    pub(crate) fn insert(&mut self, id: u64, row: u32, space: &Space<'_, '_>) {
        let x = self.take_slot(id, row, space);
        if self.slot_of_row.len() <= row as usize {
            self.slot_of_row.resize(row as usize + 1, NONE);
        }
        if let Some(s) = self.slot_of_row.get_mut(row as usize) {
            *s = x;
        }
        if self.entry == NONE {
            self.entry = x;
            return;
        }
        let level = self.level(x);
        let top = self.level(self.entry);
        let mut visited = Visited::new(self.ids.len());
        let mut dist = FromNode { space, g: self, x };
        let mut eps: Vec<Cand> = {
            let e = self.entry;
            alloc::vec![(dist.dist(e), e)]
        };
        let mut l = top;
        while l > level {
            eps = self.greedy(&eps, l, &mut dist);
            l -= 1;
        }
        let mut layers: Vec<(u8, Vec<Cand>)> = Vec::new();
        loop {
            visited = reuse(visited);
            let found = self.search_layer(
                &eps,
                self.params.ef_construction as usize,
                l,
                &mut visited,
                &mut dist,
                &|_| true,
            );
            layers.push((l, found.clone()));
            eps = found;
            if l == 0 {
                break;
            }
            l -= 1;
        }
        for (l, found) in layers {
            let chosen = self.select(&found, self.params.m as usize, space);
            self.set_links(x, l, &chosen);
            for &n in &chosen {
                self.add_link(n, l, x, space);
            }
        }
        if level > top {
            self.entry = x;
        }
    }

    /// Adds the link `n -> x` at `level`, pruning `n`'s list with the heuristic when full.
    fn add_link(&mut self, n: u32, level: u8, x: u32, space: &Space<'_, '_>) {
        let links = self.links(n, level);
        if links.contains(&x) {
            return;
        }
        let mut new: Vec<u32> = links.to_vec();
        new.push(x);
        if new.len() > self.params.max_links(level) {
            new = self.prune(n, &new, level, space);
        }
        self.set_links(n, level, &new);
    }

    /// The heuristic's choice of at most `max_links(level)` links for `n` among `cands`.
    fn prune(&self, n: u32, cands: &[u32], level: u8, space: &Space<'_, '_>) -> Vec<u32> {
        let mut scored: Vec<Cand> = cands
            .iter()
            .filter(|&&c| c != n)
            .map(|&c| (space.pair(self, n, c), c))
            .collect();
        scored.sort_unstable();
        scored.dedup_by_key(|c| c.1);
        self.select(&scored, self.params.max_links(level), space)
    }

    /// The neighbour-selection heuristic (the paper's algorithm 4, hnswlib's
    /// `getNeighborsByHeuristic2`): in order of distance, keep a candidate unless it is closer
    /// to one already kept than to the base. `sorted` is ascending by `(distance, slot)`.
    fn select(&self, sorted: &[Cand], m: usize, space: &Space<'_, '_>) -> Vec<u32> {
        if sorted.len() <= m {
            return sorted.iter().map(|c| c.1).collect();
        }
        let mut kept: Vec<u32> = Vec::with_capacity(m);
        for &(d, c) in sorted {
            if kept.len() >= m {
                break;
            }
            if kept.iter().all(|&k| space.pair(self, c, k) >= d) {
                kept.push(c);
            }
        }
        kept
    }

    /// One greedy step per level (`ef = 1`): the closest node reachable from `eps`.
    fn greedy(&self, eps: &[Cand], level: u8, dist: &mut impl Dist) -> Vec<Cand> {
        let Some(mut best) = eps.iter().min().copied() else {
            return Vec::new();
        };
        loop {
            let mut moved = false;
            let links = self.links(best.1, level);
            for &n in links {
                dist.prefetch(n);
            }
            for &n in links {
                let c = (dist.dist(n), n);
                if c < best {
                    best = c;
                    moved = true;
                }
            }
            if !moved {
                return alloc::vec![best];
            }
        }
    }

    /// The `ef` closest nodes to the query reachable at `level` from `eps`, ascending; only
    /// nodes passing `keep` are returned (the others are still walked through).
    fn search_layer(
        &self,
        eps: &[Cand],
        ef: usize,
        level: u8,
        visited: &mut Visited,
        dist: &mut impl Dist,
        keep: &dyn Fn(u32) -> bool,
    ) -> Vec<Cand> {
        let mut next: BinaryHeap<Reverse<Cand>> = BinaryHeap::new();
        let mut best: BinaryHeap<Cand> = BinaryHeap::new();
        for &e in eps {
            if visited.insert(e.1) {
                next.push(Reverse(e));
                if keep(e.1) {
                    best.push(e);
                }
            }
        }
        while best.len() > ef {
            best.pop();
        }
        let mut fresh: Vec<u32> = Vec::with_capacity(2 * self.params.m as usize);
        while let Some(Reverse(c)) = next.pop() {
            if best.len() >= ef && best.peek().is_some_and(|w| c > *w) {
                break;
            }
            // The next candidate's links are read soon (the candidate to expand after this one).
            if let Some(Reverse(n)) = next.peek() {
                self.prefetch_links(n.1, level, dist);
            }
            fresh.clear();
            for &n in self.links(c.1, level) {
                if visited.insert(n) {
                    dist.prefetch(n);
                    fresh.push(n);
                }
            }
            for &n in &fresh {
                let cand = (dist.dist(n), n);
                let full = best.len() >= ef;
                if !full || best.peek().is_some_and(|w| cand < *w) {
                    next.push(Reverse(cand));
                    if keep(n) {
                        best.push(cand);
                        if best.len() > ef {
                            best.pop();
                        }
                    }
                }
            }
        }
        best.into_sorted_vec()
    }

    /// The approximate `ef` nearest records to a query (distances from `dist`), ascending by
    /// `(distance, id)`, only those whose kernel row passes `keep`.
    pub(crate) fn search(
        &self,
        ef: usize,
        dist: &mut impl Dist,
        keep: &dyn Fn(usize) -> bool,
    ) -> Vec<(i128, u64)> {
        if self.entry == NONE {
            return Vec::new();
        }
        let e = self.entry;
        let mut eps = alloc::vec![(dist.dist(e), e)];
        let mut l = self.level(e);
        while l > 0 {
            eps = self.greedy(&eps, l, dist);
            l -= 1;
        }
        let mut visited = Visited::new(self.ids.len());
        let rows = &self.rows;
        let keep_slot = |s: u32| rows.get(s as usize).is_some_and(|&r| keep(r as usize));
        let mut out: Vec<(i128, u64)> = self
            .search_layer(&eps, ef.max(1), 0, &mut visited, dist, &keep_slot)
            .into_iter()
            .map(|(d, s)| (d, self.id(s)))
            .collect();
        out.sort_unstable();
        out
    }

    /// Removes the record at kernel row `row` before the kernel removes the row (its
    /// neighbours' vectors are still needed), repairing every node that linked to it.
    pub(crate) fn remove(&mut self, row: usize, space: &Space<'_, '_>) {
        let Some(&x) = self.slot_of_row.get(row) else {
            return;
        };
        if x == NONE {
            return;
        }
        for level in 0..=self.level(x) {
            let outs: Vec<u32> = self.links(x, level).to_vec();
            self.set_links(x, level, &[]);
            let mut from: Vec<u32> = self
                .ins
                .get(x as usize)
                .map(|l| {
                    l.iter()
                        .filter(|&&t| (t >> 28) as u8 == level)
                        .map(|&t| t & ((1 << 28) - 1))
                        .collect()
                })
                .unwrap_or_default();
            // Each repair reads only its own links and the deleted node's, so the order does
            // not change the result; id order keeps it obviously so.
            from.sort_unstable_by_key(|&p| self.id(p));
            for p in from {
                let mut cands: Vec<u32> = self
                    .links(p, level)
                    .iter()
                    .copied()
                    .filter(|&c| c != x)
                    .collect();
                for &o in &outs {
                    if o != p && !cands.contains(&o) {
                        cands.push(o);
                    }
                }
                let chosen = self.prune(p, &cands, level, space);
                self.set_links(p, level, &chosen);
            }
        }
        let i = x as usize;
        if let Some(v) = self.ids.get_mut(i) {
            *v = FREE;
        }
        self.upper.remove(&x);
        if let Some(v) = self.ins.get_mut(i) {
            *v = Box::default();
        }
        if let Some(v) = self.rows.get_mut(i) {
            *v = NONE;
        }
        self.free.insert(x);
        self.live -= 1;
        if self.entry == x {
            // The highest remaining node, the lowest id among equals.
            self.entry = (0..self.ids.len() as u32)
                .filter(|&s| self.id(s) != FREE)
                .min_by_key(|&s| (Reverse(self.level(s)), self.id(s)))
                .unwrap_or(NONE);
        }
    }

    /// The kernel moved its last row into `row` (after removing `row`'s record).
    pub(crate) fn row_moved(&mut self, row: usize, last: usize) {
        let moved = self.slot_of_row.get(last).copied().unwrap_or(NONE);
        if row != last {
            if let Some(s) = self.slot_of_row.get_mut(row) {
                *s = moved;
            }
            if let Some(r) = self.rows.get_mut(moved as usize) {
                *r = row as u32;
            }
        }
        self.slot_of_row.truncate(last);
    }
}

/// Adds `tag` to an in-list. In-lists are many and small: each is exactly as long as it holds
/// (no spare capacity, a 16-byte handle).
fn link(list: &mut Box<[u32]>, tag: u32) {
    let mut v = core::mem::take(list).into_vec();
    v.reserve_exact(1);
    v.push(tag);
    *list = v.into_boxed_slice();
}

/// Removes `tag` from an in-list (if there).
fn unlink(list: &mut Box<[u32]>, tag: u32) {
    if let Some(p) = list.iter().position(|&x| x == tag) {
        let mut v = core::mem::take(list).into_vec();
        v.swap_remove(p);
        *list = v.into_boxed_slice();
    }
}

fn reuse(mut v: Visited) -> Visited {
    v.bits.iter_mut().for_each(|w| *w = 0);
    v
}

/// Magic of an encoded index.
pub const INDEX_MAGIC: [u8; 4] = *b"VLRI";
/// Version of the index encoding.
pub const INDEX_VERSION: u32 = 1;
/// Domain tag of the index hash.
pub const INDEX_HASH_DOMAIN: &[u8; 16] = b"valori-index-v1\0";

impl Hnsw {
    /// The canonical encoding (`docs/FORMAT.md` §15): parameters, slot count, entry, then per
    /// slot its record id (`u64::MAX`: free) and, for a used slot, its level and its links per
    /// level.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&INDEX_MAGIC);
        out.extend_from_slice(&INDEX_VERSION.to_le_bytes());
        out.extend_from_slice(&self.params.m.to_le_bytes());
        out.extend_from_slice(&self.params.ef_construction.to_le_bytes());
        out.extend_from_slice(&(self.ids.len() as u64).to_le_bytes());
        out.extend_from_slice(&self.entry.to_le_bytes());
        for s in 0..self.ids.len() as u32 {
            let id = self.id(s);
            out.extend_from_slice(&id.to_le_bytes());
            if id == FREE {
                continue;
            }
            let level = self.level(s);
            out.push(level);
            for l in 0..=level {
                let links = self.links(s, l);
                out.push(links.len() as u8);
                for &t in links {
                    out.extend_from_slice(&t.to_le_bytes());
                }
            }
        }
    }

    /// Decodes an index over the kernel's records, checking every invariant the builder
    /// keeps: each record indexed exactly once at the level its id draws, links to used slots
    /// of a high enough level, no self or repeated links, no more than the level allows, the
    /// entry on the top level. `Corrupt` with the offset otherwise.
    pub(crate) fn decode(
        bytes: &[u8],
        space: &Space<'_, '_>,
        row_of: &dyn Fn(u64) -> Option<usize>,
        records: usize,
    ) -> Result<Hnsw> {
        let mut r = Bytes { b: bytes, at: 0 };
        if r.take(4)? != INDEX_MAGIC {
            return Err(Error::corrupt(0, "not an index (bad magic)"));
        }
        if r.u32()? != INDEX_VERSION {
            return Err(Error::corrupt(4, "unsupported index version"));
        }
        let at = r.at;
        let params = IndexParams::new(r.u32()?, r.u32()?)
            .map_err(|_| Error::corrupt(at, "index parameters out of range"))?;
        let at = r.at;
        let slots = r.u64()?;
        // Each slot takes at least 8 bytes.
        if slots > (bytes.len() / 8) as u64 || slots > MAX_SLOTS as u64 {
            return Err(Error::corrupt(at, "slot count beyond the bytes present"));
        }
        let slots = slots as usize;
        let entry_at = r.at;
        let entry = r.u32()?;
        let mut g = Hnsw::new(params);
        g.reserve(slots)
            .map_err(|()| Error::Full(crate::error::Resource::Memory))?;
        g.slot_of_row.resize(records, NONE);
        let w0 = 1 + params.max_links(0);
        let mut link_at = Vec::new();
        for s in 0..slots as u32 {
            let at = r.at;
            let id = r.u64()?;
            g.ids.push(id);
            g.rows.push(NONE);
            if space.narrow.is_some() {
                g.norms.push(0);
            }
            g.links0.extend(core::iter::repeat_n(0, w0));
            g.ins.push(Box::default());
            if id == FREE {
                g.levels.push(0);
                g.free.insert(s);
                continue;
            }
            let row = row_of(id).ok_or(Error::corrupt(at, "an indexed record does not exist"))?;
            match g.slot_of_row.get_mut(row) {
                Some(x) if *x == NONE => *x = s,
                _ => return Err(Error::corrupt(at, "a record is indexed twice")),
            }
            let lat = r.at;
            let level = r.u8()?;
            if level != level_of(id, params.m) {
                return Err(Error::corrupt(
                    lat,
                    "a record's level is not the one its id draws",
                ));
            }
            g.levels.push(level);
            if let Some(x) = g.rows.last_mut() {
                *x = row as u32;
            }
            if let Some(n) = g.norms.last_mut() {
                *n = space.norm(row as u32);
            }
            if level > 0 {
                g.upper.insert(
                    s,
                    alloc::vec![0; usize::from(level) * (1 + params.max_links(1))],
                );
            }
            g.live += 1;
            for l in 0..=level {
                let at = r.at;
                let n = usize::from(r.u8()?);
                if n > params.max_links(l) {
                    return Err(Error::corrupt(at, "more links than the level allows"));
                }
                let mut list = Vec::with_capacity(n);
                for _ in 0..n {
                    list.push(r.u32()?);
                }
                link_at.push((s, l, at));
                // Written raw here; checked once every slot's level is known.
                let w = 1 + params.max_links(l);
                let dst = if l == 0 {
                    g.links0.get_mut(s as usize * w..(s as usize + 1) * w)
                } else {
                    let o = (usize::from(l) - 1) * w;
                    g.upper.get_mut(&s).and_then(|u| u.get_mut(o..o + w))
                };
                if let Some((count, rest)) = dst.and_then(|d| d.split_first_mut()) {
                    *count = n as u32;
                    for (d, t) in rest.iter_mut().zip(&list) {
                        *d = *t;
                    }
                }
            }
        }
        if r.at != bytes.len() {
            return Err(Error::corrupt(r.at, "bytes after the end of the index"));
        }
        if g.live != records {
            return Err(Error::corrupt(0, "the index does not hold every record"));
        }
        for (s, l, at) in link_at {
            let links: Vec<u32> = g.links(s, l).to_vec();
            for (i, &t) in links.iter().enumerate() {
                let ok = (t as usize) < slots
                    && t != s
                    && g.id(t) != FREE
                    && g.level(t) >= l
                    && !links.get(..i).unwrap_or(&[]).contains(&t);
                if !ok {
                    return Err(Error::corrupt(
                        at,
                        "a link to a free, repeated or lower slot",
                    ));
                }
                if let Some(list) = g.ins.get_mut(t as usize) {
                    link(list, (u32::from(l) << 28) | s);
                }
            }
        }
        let top = (0..slots as u32)
            .filter(|&s| g.id(s) != FREE)
            .map(|s| g.level(s))
            .max();
        let entry_ok = match top {
            None => entry == NONE,
            Some(top) => (entry as usize) < slots && g.id(entry) != FREE && g.level(entry) == top,
        };
        if !entry_ok {
            return Err(Error::corrupt(
                entry_at,
                "the entry point is not on the top level",
            ));
        }
        g.entry = entry;
        Ok(g)
    }
}

struct Bytes<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Bytes<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let s = self
            .b
            .get(self.at..self.at.saturating_add(n))
            .ok_or(Error::corrupt(self.at, "the index ends early"))?;
        self.at += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?.first().copied().unwrap_or(0))
    }
    fn u32(&mut self) -> Result<u32> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(a))
    }
    fn u64(&mut self) -> Result<u64> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
}
