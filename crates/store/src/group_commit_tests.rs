//! Group commit and batched apply on real repositories with a synced log: commits
//! share syncs, nothing is announced or sent before it is durable, a failed shared
//! sync fails every transaction it would have covered, and a machine restart after
//! an unclean stop is treated as a lost tail.

use crate::log::LogOptions;
use crate::repository::{Applied, Repository, RepositoryOptions};
use crate::StoreError;
use oxigraph::model::{GraphName, Literal, NamedNode, Quad};
use quadmesh_repl::{ClusterConfig, Entry, HybridClock, Member, OriginId, SystemClock};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn synced() -> RepositoryOptions {
    RepositoryOptions {
        log: LogOptions {
            fsync: true,
            segment_bytes: 1 << 20,
        },
        checkpoint_every: 10_000,
        clock_fence: None,
        ..RepositoryOptions::default()
    }
}

fn open(dir: &Path, options: RepositoryOptions) -> Arc<Repository> {
    let clock = Arc::new(HybridClock::new(SystemClock::with_offset_ms(0), 500));
    Arc::new(Repository::open("r", dir, clock, options, true).unwrap())
}

/// A quad of its own for each `i` (the store's tests share it).
pub(crate) fn quad(i: usize) -> Quad {
    Quad::new(
        NamedNode::new_unchecked(format!("http://example.org/s{i}")),
        NamedNode::new_unchecked("http://example.org/p"),
        Literal::from(i as i64),
        GraphName::DefaultGraph,
    )
}

fn insert(repository: &Repository, i: usize) -> Result<u64, StoreError> {
    Ok(repository
        .commit(|tracker| tracker.insert(quad(i)))?
        .transaction
        .expect("a change")
        .0)
}

/// Waits (at most 10 s) until `done` holds.
fn until(what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "waited for {what}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Starts `n` commits on threads of their own while syncs are held back, and waits
/// until every one of them is appended and applied, i.e. waiting for its sync.
fn commits_waiting(
    repository: &Arc<Repository>,
    n: usize,
) -> Vec<std::thread::JoinHandle<Result<u64, StoreError>>> {
    assert_eq!(repository.group_pending(), 0);
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let repository = repository.clone();
            std::thread::spawn(move || insert(&repository, 1000 + i))
        })
        .collect();
    until("every commit applied and released for syncing", || {
        repository.group_pending() == n
    });
    until("a sync started", || repository.group_syncing());
    handles
}

#[test]
fn concurrent_commits_share_one_sync() {
    let dir = tempfile::tempdir().unwrap();
    let repository = open(dir.path(), synced());
    insert(&repository, 0).unwrap();
    let syncs_before = repository.log_syncs();
    repository.hold_group_syncs(true);
    let handles = commits_waiting(&repository, 8);
    assert!(
        handles.iter().all(|h| !h.is_finished()),
        "a commit was answered before any sync"
    );
    repository.hold_group_syncs(false);
    let mut seqs: Vec<u64> = handles
        .into_iter()
        .map(|h| h.join().unwrap().unwrap())
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (2..=9).collect::<Vec<_>>());
    let syncs = repository.log_syncs() - syncs_before;
    // The first sync began with only the first commit released; every other one
    // waited for the next, which covered them all.
    assert!(
        (1..=2).contains(&syncs),
        "8 concurrent commits took {syncs} syncs"
    );
    assert_eq!(repository.version_vector().get(repository.origin()), 9);
}

#[test]
fn nothing_is_announced_or_sent_before_it_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let repository = open(dir.path(), synced());
    let me = repository.origin();
    insert(&repository, 0).unwrap();
    let appended = repository.subscribe();
    let count_before = *appended.borrow();
    let before = repository.heartbeat_point().unwrap();
    let (vector_before, end_before) = (before.version_vector, before.end);
    repository.hold_group_syncs(true);
    let handles = commits_waiting(&repository, 3);
    // Applied and in the log, but not durable: no stream is woken, no reader or peer is
    // told, no stream reads it, no heartbeat promises it, nobody is answered.
    assert_eq!(*appended.borrow(), count_before, "a stream was woken");
    assert_eq!(repository.version_vector().get(me), 1);
    let (point, entries, next) = repository
        .heartbeat_with_entries(Default::default(), 512, |_, _| true)
        .unwrap();
    assert_eq!(entries.len(), 1, "a stream read entries not yet durable");
    assert_eq!(
        point.version_vector, vector_before,
        "a heartbeat covered entries not yet durable"
    );
    assert_eq!(point.end, end_before);
    assert_eq!(next, end_before);
    let stamps: Vec<_> = repository
        .lock_writer()
        .durable
        .log
        .index()
        .iter()
        .skip(1)
        .map(|e| e.time)
        .collect();
    assert!(
        stamps.iter().all(|&t| point.clock <= t),
        "the heartbeat promised {:?}, past a transaction it does not send",
        point.clock
    );
    assert!(
        handles.iter().all(|h| !h.is_finished()),
        "answered before durable"
    );

    repository.hold_group_syncs(false);
    for h in handles {
        h.join().unwrap().unwrap();
    }
    assert_eq!(*appended.borrow(), count_before + 3);
    assert_eq!(repository.version_vector().get(me), 4);
    let (_, entries, _) = repository
        .heartbeat_with_entries(Default::default(), 512, |_, _| true)
        .unwrap();
    assert_eq!(entries.len(), 4);
}

#[test]
fn a_failed_shared_sync_fails_every_waiter_and_acknowledges_none() {
    let dir = tempfile::tempdir().unwrap();
    let repository = open(dir.path(), synced());
    let me = repository.origin();
    insert(&repository, 0).unwrap();
    repository.hold_group_syncs(true);
    repository.fail_next_group_sync();
    let handles = commits_waiting(&repository, 4);
    repository.hold_group_syncs(false);
    for h in handles {
        let error = h.join().unwrap().unwrap_err();
        assert!(
            matches!(error, StoreError::WritesStopped { .. }),
            "a commit whose sync failed: {error}"
        );
    }
    // None announced, sent or promised; no more writes until a restart.
    assert_eq!(repository.version_vector().get(me), 1);
    let (point, entries, _) = repository
        .heartbeat_with_entries(Default::default(), 512, |_, _| true)
        .unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(point.version_vector.get(me), 1);
    assert!(repository.write_refusal().is_some());
    assert!(matches!(
        insert(&repository, 5),
        Err(StoreError::WritesStopped { .. })
    ));
    let marker = std::fs::read_to_string(dir.path().join("running-synced")).unwrap();
    assert!(marker.starts_with("sync-failed"), "{marker}");
    // The restart replays what reached the disk (here all of it: the failure was
    // simulated) and takes writes again.
    drop(repository);
    let repository = open(dir.path(), synced());
    assert!(repository.write_refusal().is_none());
    let seq = repository.version_vector().get(me);
    assert_eq!(repository.size(None).unwrap() as u64, seq);
    assert_eq!(insert(&repository, 6).unwrap(), seq + 1);
}

#[test]
fn a_pulled_batch_is_applied_with_one_sync() {
    let origin_dir = tempfile::tempdir().unwrap();
    let source = open(
        origin_dir.path(),
        RepositoryOptions {
            log: LogOptions {
                fsync: false,
                segment_bytes: 1 << 20,
            },
            ..synced()
        },
    );
    for i in 0..20 {
        insert(&source, i).unwrap();
    }
    let (entries, _) = source
        .entries_since(Default::default(), 100, |_, _| true)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let repository = open(dir.path(), synced());
    let syncs_before = repository.log_syncs();
    let (outcomes, error) = repository.apply_remote_batch(source.origin(), &entries[..15]);
    assert!(error.is_none(), "{error:?}");
    assert_eq!(outcomes, vec![Applied::New; 15]);
    assert_eq!(repository.log_syncs() - syncs_before, 1);
    assert_eq!(repository.version_vector().get(source.origin()), 15);
    // Duplicates are skipped, a gap stops the batch after what came before it.
    let mut batch: Vec<Entry> = entries[14..17].to_vec();
    batch.push(entries[18].clone());
    let (outcomes, error) = repository.apply_remote_batch(source.origin(), &batch);
    assert_eq!(
        outcomes,
        vec![Applied::Duplicate, Applied::New, Applied::New]
    );
    assert!(matches!(error, Some(StoreError::Gap { .. })), "{error:?}");
    assert_eq!(repository.version_vector().get(source.origin()), 17);
    assert_eq!(repository.size(None).unwrap(), 17);
}

fn two_members(me: OriginId, peer: OriginId, time: quadmesh_repl::HlcTime) -> ClusterConfig {
    let member = |name: &str, origin, controlling| Member {
        name: name.into(),
        origin,
        address: format!("{name}:1"),
        repository: "r".into(),
        controlling,
        added_at: time,
    };
    ClusterConfig::new("c".into(), "r".into(), "t".into(), member("a", me, true))
        .with_member(member("b", peer, false))
        .unwrap()
}

/// A machine restart after an unclean stop may have lost frames the store holds (they
/// were applied before their shared sync): the repository waits for its peers as after
/// a torn tail. A process crash alone loses nothing (the page cache keeps every frame).
#[test]
fn a_machine_restart_after_an_unclean_stop_counts_as_a_lost_tail() {
    let dir = tempfile::tempdir().unwrap();
    {
        let repository = open(dir.path(), synced());
        let me = repository.origin();
        repository
            .commit_config(|_, time| Ok(two_members(me, OriginId(77), time)))
            .unwrap();
        insert(&repository, 1).unwrap();
    }
    // The process stopped without closing; the same machine: nothing lost.
    let repository = open(dir.path(), synced());
    assert!(repository.write_refusal().is_none());
    insert(&repository, 2).unwrap();
    drop(repository);
    // Another boot id: the machine restarted meanwhile.
    std::fs::write(
        dir.path().join("running-synced"),
        "00000000-0000-0000-0000-000000000000",
    )
    .unwrap();
    let repository = open(dir.path(), synced());
    assert!(matches!(
        insert(&repository, 3),
        Err(StoreError::AwaitingPeers { .. })
    ));
    // A clean stop after the members answered leaves no marker behind.
    let mut theirs = quadmesh_repl::VersionVector::new();
    theirs.advance(repository.origin(), 3);
    repository.on_peer_heartbeat(OriginId(77), &theirs, None);
    assert!(repository.write_refusal().is_none());
    repository.close().unwrap();
    assert!(!dir.path().join("running-synced").exists());
}

/// A member that took a configuration removing a peer takes nothing more from that
/// peer's stream (checked under the writer lock, entry by entry), unless the peer is
/// to hand over its own transactions; and its heartbeat says which configuration it
/// held when it counted what it has.
#[test]
fn nothing_more_is_taken_from_a_sender_the_configuration_held_removed() {
    let source_dir = tempfile::tempdir().unwrap();
    let source = open(source_dir.path(), synced());
    for i in 0..6 {
        insert(&source, i).unwrap();
    }
    let (entries, _) = source
        .entries_since(Default::default(), 100, |_, _| true)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let repository = open(dir.path(), synced());
    let me = repository.origin();
    let peer = source.origin();
    let config = repository
        .commit_config(|_, time| Ok(two_members(me, peer, time)))
        .unwrap();
    let point = repository.heartbeat_point().unwrap();
    assert_eq!(point.config, Some(config.position()));
    let (outcomes, error) = repository.apply_remote_batch(peer, &entries[..2]);
    assert!(error.is_none(), "{error:?}");
    assert_eq!(outcomes.len(), 2);

    // Removed, but to hand over what only it holds: still taken.
    let handing_over = repository
        .commit_config(|current, time| {
            let (next, _) = current
                .unwrap()
                .without_member_handing_over("b", time, time)?;
            Ok(next)
        })
        .unwrap();
    let (outcomes, error) = repository.apply_remote_batch(peer, &entries[2..4]);
    assert!(error.is_none(), "{error:?}");
    assert_eq!(outcomes.len(), 2);
    assert_eq!(
        repository.heartbeat_point().unwrap().config,
        Some(handing_over.position())
    );

    // The hand-over ended: the rest of its stream is refused, nothing applied.
    let ended = repository
        .commit_config(|current, _| Ok(current.unwrap().with_hand_over_ended(peer)?))
        .unwrap();
    let (outcomes, error) = repository.apply_remote_batch(peer, &entries[4..]);
    assert!(outcomes.is_empty(), "{outcomes:?}");
    assert!(
        matches!(error, Some(StoreError::SenderRemoved { peer: p, .. }) if p == peer),
        "{error:?}"
    );
    assert_eq!(repository.version_vector().get(peer), 4);
    let point = repository.heartbeat_point().unwrap();
    assert_eq!(point.config, Some(ended.position()));
    assert_eq!(point.version_vector.get(peer), 4);
}
