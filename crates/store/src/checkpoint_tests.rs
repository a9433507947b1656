//! Checkpoints off the write path: due after `checkpoint_every` entries and taken by
//! the server's upkeep, with the store flushed without the writer lock; taken on the
//! write path only when nobody took it for far longer; and commits that overlap one
//! all hold after an unclean stop.

use crate::group_commit_tests::quad;
use crate::log::LogOptions;
use crate::repository::{Repository, RepositoryOptions};
use quadmesh_repl::{HybridClock, SystemClock};
use std::cell::RefCell;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

thread_local! {
    /// Run on this thread by a checkpoint between its cut and its flush.
    static BEFORE_FLUSH: RefCell<Option<Box<dyn FnMut()>>> = const { RefCell::new(None) };
}

/// The hook `Repository::checkpoint` calls before it flushes the store.
pub(crate) fn before_flush() {
    BEFORE_FLUSH.with(|hook| {
        if let Some(hook) = hook.borrow_mut().as_mut() {
            hook()
        }
    });
}

fn options(checkpoint_every: u64) -> RepositoryOptions {
    RepositoryOptions {
        log: LogOptions {
            fsync: true,
            segment_bytes: 4096,
        },
        checkpoint_every,
        clock_fence: None,
        ..RepositoryOptions::default()
    }
}

fn open(dir: &Path, checkpoint_every: u64) -> Arc<Repository> {
    let clock = Arc::new(HybridClock::new(SystemClock::with_offset_ms(0), 500));
    Arc::new(Repository::open("r", dir, clock, options(checkpoint_every), true).unwrap())
}

fn insert(repository: &Repository, i: usize) {
    repository
        .commit(|tracker| tracker.insert(quad(i)))
        .unwrap();
}

#[test]
fn a_checkpoint_is_due_after_checkpoint_every_entries_and_taken_on_the_write_path_only_far_later() {
    let dir = tempfile::tempdir().unwrap();
    let repository = open(dir.path(), 5);
    assert!(!repository.checkpoint_due());
    for i in 0..4 {
        insert(&repository, i);
    }
    assert!(!repository.checkpoint_due());
    insert(&repository, 4);
    assert!(repository.checkpoint_due(), "due after 5 entries");
    assert_eq!(repository.log_len().0, 5);
    repository.checkpoint().unwrap();
    assert!(!repository.checkpoint_due(), "taken");
    assert_eq!(
        repository.log_len().0,
        0,
        "alone, the checkpoint drops every entry it covers"
    );

    // Nobody takes it now: still due, not taken, until 4 × 5 entries.
    for i in 5..24 {
        insert(&repository, i);
        assert!(
            (i < 9) != repository.checkpoint_due(),
            "due from the 5th entry on (entry {i})"
        );
    }
    assert_eq!(repository.log_len().0, 19);
    insert(&repository, 24);
    assert!(
        !repository.checkpoint_due(),
        "taken on the write path at 20 entries"
    );
    assert_eq!(repository.log_len().0, 0);
}

#[test]
fn commits_overlapping_checkpoints_all_hold_after_an_unclean_stop() {
    let dir = tempfile::tempdir().unwrap();
    let mut commits = 0;
    {
        let repository = open(dir.path(), 10_000);
        let done = Arc::new(AtomicBool::new(false));
        let taken = Arc::new(AtomicUsize::new(0));
        let checkpoints = {
            let (repository, done, taken) = (repository.clone(), done.clone(), taken.clone());
            std::thread::spawn(move || {
                while !done.load(Ordering::SeqCst) {
                    repository.checkpoint().unwrap();
                    taken.fetch_add(1, Ordering::SeqCst);
                }
            })
        };
        // Commits go on until checkpoints ran among them.
        while commits < 300 || taken.load(Ordering::SeqCst) < 20 {
            insert(&repository, commits);
            commits += 1;
            assert!(commits < 100_000, "the checkpoints did not run");
        }
        done.store(true, Ordering::SeqCst);
        checkpoints.join().unwrap();
        // Dropped without `close`: the next open finds an unclean stop and replays.
    }
    let repository = open(dir.path(), 10_000);
    assert_eq!(repository.size(None).unwrap(), commits);
    for i in 0..commits {
        assert!(
            repository.store().contains(&quad(i)).unwrap(),
            "acknowledged commit {i} lost"
        );
    }
    assert!(
        repository.scrub().unwrap(),
        "the digest after the replay matches the store"
    );
}

#[test]
fn a_commit_goes_through_while_a_checkpoint_flushes_and_the_checkpoint_keeps_its_entry() {
    let dir = tempfile::tempdir().unwrap();
    let repository = open(dir.path(), 10_000);
    insert(&repository, 0);
    let (flushing_tx, flushing) = mpsc::channel();
    let (go, go_rx) = mpsc::channel::<()>();
    let checkpoint = {
        let repository = repository.clone();
        std::thread::spawn(move || {
            BEFORE_FLUSH.with(|hook| {
                *hook.borrow_mut() = Some(Box::new(move || {
                    flushing_tx.send(()).unwrap();
                    go_rx.recv().unwrap();
                }))
            });
            repository.checkpoint()
        })
    };
    flushing.recv_timeout(Duration::from_secs(10)).unwrap();
    // The flush is held: a commit must not wait for it, and its frame is synced before
    // it is applied (by the log itself, not by a shared sync afterwards), since the
    // flush could make the store durable before a shared sync made the frame durable.
    let shared_syncs = repository.log_syncs();
    let (done_tx, done) = mpsc::channel();
    {
        let repository = repository.clone();
        std::thread::spawn(move || {
            insert(&repository, 1);
            done_tx.send(()).unwrap();
        });
    }
    done.recv_timeout(Duration::from_secs(10))
        .expect("a commit waited for the checkpoint's flush");
    assert_eq!(
        repository.log_syncs(),
        shared_syncs,
        "a commit during the flush waited for a shared sync after it was applied"
    );
    go.send(()).unwrap();
    checkpoint.join().unwrap().unwrap();
    // Segments go whole: had the cut covered the commit made during the flush, both
    // entries would be gone.
    assert_eq!(
        repository.log_len().0,
        2,
        "the checkpoint covers what it cut, not the commit made during its flush"
    );
    repository.checkpoint().unwrap();
    assert_eq!(repository.log_len().0, 0);
}
