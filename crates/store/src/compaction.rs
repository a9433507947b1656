//! The background compaction after bulk loads. Files the bulk loader writes are laid
//! out for writing, not reading: once loads pause, the store is compacted in the
//! background so that queries read it as fast as a store filled by commits.

use oxigraph::store::Store;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// How long loads must pause before the compaction after them starts. A compaction of
/// the whole store while loads go on would rewrite it once per load (at ten million
/// triples a core's continuous work), and every load would leave files to compact anew.
pub(crate) const QUIET_BEFORE_COMPACTING: Duration = Duration::from_secs(2);

/// Compacts a repository's store after bulk loads, in a thread of its own.
///
/// Rules it keeps:
/// - one compaction at a time; loads asking while one runs get one more after it;
/// - a compaction starts only once no load asked for [`QUIET_BEFORE_COMPACTING`];
/// - the store is held open only while a compaction runs, never while waiting: a
///   repository dropped and opened again meanwhile finds its RocksDB free.
#[derive(Debug)]
pub(crate) struct Compactor {
    running: AtomicBool,
    again: AtomicBool,
    last_asked: Mutex<Instant>,
}

impl Default for Compactor {
    fn default() -> Self {
        Compactor {
            running: AtomicBool::new(false),
            again: AtomicBool::new(false),
            last_asked: Mutex::new(Instant::now()),
        }
    }
}

impl Compactor {
    /// Asks for a compaction of `store` once loads pause.
    pub(crate) fn ask(self: &Arc<Self>, store: Weak<Store>, repository: &str) {
        *self.last_asked.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        self.again.store(true, Ordering::SeqCst);
        if self.running.swap(true, Ordering::SeqCst) {
            return;
        }
        let (compactor, name) = (self.clone(), repository.to_owned());
        std::thread::spawn(move || compactor.run(&store, &name));
    }

    fn run(&self, store: &Weak<Store>, name: &str) {
        loop {
            while self.again.load(Ordering::SeqCst) {
                self.wait_for_quiet();
                self.again.store(false, Ordering::SeqCst);
                // Gone: the repository was dropped; nothing to compact.
                let Some(store) = store.upgrade() else {
                    self.running.store(false, Ordering::SeqCst);
                    return;
                };
                let started = Instant::now();
                match store.optimize() {
                    Ok(()) => tracing::debug!(repository = %name, took = ?started.elapsed(),
                        "store compacted after bulk loads"),
                    Err(e) => tracing::warn!(repository = %name, error = %e,
                        "compaction after a bulk load failed"),
                }
            }
            self.running.store(false, Ordering::SeqCst);
            // A load that asked between the last check and now found `running` set and
            // left the work to this thread: take it back, unless another did.
            if !self.again.load(Ordering::SeqCst) || self.running.swap(true, Ordering::SeqCst) {
                return;
            }
        }
    }

    fn wait_for_quiet(&self) {
        loop {
            let since = self
                .last_asked
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .elapsed();
            match QUIET_BEFORE_COMPACTING.checked_sub(since) {
                Some(left) if !left.is_zero() => std::thread::sleep(left),
                _ => return,
            }
        }
    }

    /// Whether a compaction is running or waiting for loads to pause.
    #[cfg(test)]
    pub(crate) fn pending(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxigraph::model::{GraphName, NamedNode, Quad};

    #[test]
    fn the_compaction_waits_for_a_pause_and_does_not_hold_the_store_meanwhile() {
        let dir = std::env::temp_dir().join(format!("quadmesh-compaction-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Arc::new(Store::open(&dir).unwrap());
        let node = NamedNode::new_unchecked("http://e.com/x");
        store
            .insert(&Quad::new(
                node.clone(),
                node.clone(),
                node,
                GraphName::DefaultGraph,
            ))
            .unwrap();
        let compactor = Arc::new(Compactor::default());
        compactor.ask(Arc::downgrade(&store), "test");
        assert!(compactor.pending());
        // Within the pause the store is not held: dropped and opened again, it opens.
        drop(store);
        let reopened = Arc::new(Store::open(&dir).unwrap());
        assert_eq!(reopened.len().unwrap(), 1);
        // The compaction found the first store gone and ended.
        let deadline = Instant::now() + QUIET_BEFORE_COMPACTING * 5;
        while compactor.pending() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!compactor.pending());
        // Asked again with a store that stays: it runs and ends.
        compactor.ask(Arc::downgrade(&reopened), "test");
        let deadline = Instant::now() + QUIET_BEFORE_COMPACTING * 5;
        while compactor.pending() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!compactor.pending());
        assert_eq!(reopened.len().unwrap(), 1);
        drop(reopened);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
