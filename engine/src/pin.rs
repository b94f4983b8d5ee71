//! Readers' pins on the log: a reader that streams logged commands page by page holds the
//! segments it still needs against retention, so a checkpoint meanwhile does not remove them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// The sequence numbers open readers still need, with how many readers need each.
#[derive(Debug, Default)]
pub(crate) struct Pins(Mutex<BTreeMap<u64, usize>>);

impl Pins {
    fn map(&self) -> MutexGuard<'_, BTreeMap<u64, usize>> {
        // The map is never left half-changed, so a poisoned lock's contents are sound.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The lowest pinned sequence number: retention keeps the log from there on.
    pub(crate) fn lowest(&self) -> Option<u64> {
        self.map().keys().next().copied()
    }

    fn add(&self, seq: u64) {
        *self.map().entry(seq).or_insert(0) += 1;
    }

    fn remove(&self, seq: u64) {
        let mut map = self.map();
        if let Some(n) = map.get_mut(&seq) {
            *n -= 1;
            if *n == 0 {
                map.remove(&seq);
            }
        }
    }
}

/// Holds the logged commands from a sequence number on against retention
/// ([`crate::Options::retain_snapshots`]) until dropped; from [`crate::Engine::pin_log`].
#[derive(Debug)]
pub struct LogPin {
    pins: Arc<Pins>,
    from: u64,
    /// Where the record `from` begins, if the last read found it: the next read continues
    /// there instead of rescanning the segment from its start.
    cursor: Option<Cursor>,
}

/// A place in a segment: record `seq` begins at byte `pos` of `path`, after chain value `chain`.
#[derive(Clone, Debug)]
pub(crate) struct Cursor {
    pub(crate) path: std::path::PathBuf,
    pub(crate) pos: u64,
    pub(crate) seq: u64,
    pub(crate) chain: [u8; 32],
}

impl LogPin {
    pub(crate) fn new(pins: Arc<Pins>, from: u64) -> LogPin {
        pins.add(from);
        LogPin {
            pins,
            from,
            cursor: None,
        }
    }

    /// Where the record [`LogPin::from`] begins, if known.
    pub(crate) fn cursor(&self) -> Option<&Cursor> {
        self.cursor.as_ref().filter(|c| c.seq == self.from)
    }

    pub(crate) fn set_cursor(&mut self, cursor: Cursor) {
        self.cursor = Some(cursor);
    }

    /// The first sequence number held.
    pub fn from(&self) -> u64 {
        self.from
    }

    /// Releases the commands before `to` (a reader that has read them); never moves back.
    pub fn advance(&mut self, to: u64) {
        if to > self.from {
            self.pins.add(to);
            self.pins.remove(self.from);
            self.from = to;
        }
    }
}

impl Drop for LogPin {
    fn drop(&mut self) {
        self.pins.remove(self.from);
    }
}
