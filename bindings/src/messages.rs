//! The messages of failed calls on database handles (`valori_errmsg`), one per handle and
//! thread.
//!
//! `valori_errmsg(db)` returns a pointer into a message kept here. Each message belongs to
//! one (handle, thread) pair and only that thread's next failure on that handle replaces it,
//! so another thread's failure can neither change nor free it (other entries moving inside
//! the map move no message bytes: a `CString` keeps its bytes on the heap). Handles are keyed
//! by an id that is never reused, not by address, so a new handle at a closed one's address
//! starts with no messages. Closing a handle drops every thread's messages for it and a
//! thread's exit drops its messages for every handle, so the store holds at most one message
//! per open handle and live thread.

use std::collections::BTreeMap;
use std::ffi::{c_char, CString};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// A database handle's key: unique for the life of the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct HandleId(u64);

impl HandleId {
    /// A key no other handle had or will have.
    pub(crate) fn new() -> HandleId {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        HandleId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// Messages by (handle, thread key).
static MESSAGES: Mutex<BTreeMap<(HandleId, u64), CString>> = Mutex::new(BTreeMap::new());

/// The store. A panic while it was locked cannot leave a message half-written (each change
/// is one map operation), so a poisoned lock is still usable.
fn store() -> MutexGuard<'static, BTreeMap<(HandleId, u64), CString>> {
    MESSAGES.lock().unwrap_or_else(PoisonError::into_inner)
}

/// This thread's key; dropped at the thread's exit, dropping its messages with it.
struct ThreadKey(u64);

impl Drop for ThreadKey {
    fn drop(&mut self) {
        store().retain(|&(_, thread), _| thread != self.0);
    }
}

thread_local! {
    static THREAD: ThreadKey = {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        ThreadKey(NEXT.fetch_add(1, Ordering::Relaxed))
    };
}

/// This thread's key (`None` while the thread is being torn down).
fn thread() -> Option<u64> {
    THREAD.try_with(|t| t.0).ok()
}

/// Stores this thread's message for handle `h`, dropping its previous one.
pub(crate) fn set(h: HandleId, msg: CString) {
    if let Some(t) = thread() {
        store().insert((h, t), msg);
    }
}

/// This thread's message for handle `h`, if it has one. The pointer stays valid until this
/// thread's next [`set`] for `h`, [`forget`] of `h`, or the thread's exit.
pub(crate) fn get(h: HandleId) -> Option<*const c_char> {
    let t = thread()?;
    store().get(&(h, t)).map(|m| m.as_ptr())
}

/// Drops every thread's messages for handle `h` (it is being closed).
pub(crate) fn forget(h: HandleId) {
    store().retain(|&(id, _), _| id != h);
}

/// Messages stored, for every handle and thread.
#[cfg(test)]
pub(crate) fn len() -> usize {
    store().len()
}
