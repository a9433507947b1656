//! The fail-stop rules of the write path, recovery of a log that lost its tail, and the
//! clock across restarts, on real repositories in temporary directories.

use crate::log::LogOptions;
use crate::repository::{Applied, Repository, RepositoryOptions};
use crate::StoreError;
use oxigraph::model::{GraphName, Literal, NamedNode, Quad};
use quadmesh_repl::{
    ClusterConfig, Entry, HybridClock, Member, OriginId, Stamp, SystemClock, VersionVector,
};
use std::fs;
use std::path::Path;
use std::sync::Arc;

fn options() -> RepositoryOptions {
    RepositoryOptions {
        log: LogOptions {
            fsync: false,
            segment_bytes: 1 << 20,
        },
        checkpoint_every: 10_000,
        clock_fence: None,
    }
}

/// A server clock, `offset_ms` off the wall clock.
fn clock(offset_ms: i64) -> Arc<HybridClock> {
    Arc::new(HybridClock::new(
        SystemClock::with_offset_ms(offset_ms),
        500,
    ))
}

fn open(dir: &Path, clock: Arc<HybridClock>) -> Repository {
    Repository::open("r", dir, clock, options(), true).unwrap()
}

fn quad(i: usize) -> Quad {
    Quad::new(
        NamedNode::new_unchecked(format!("http://example.org/s{i}")),
        NamedNode::new_unchecked("http://example.org/p"),
        Literal::from(i as i64),
        GraphName::DefaultGraph,
    )
}

fn insert(repository: &Repository, i: usize) -> Result<(u64, Stamp), StoreError> {
    Ok(repository
        .commit(|tracker| tracker.insert(quad(i)))?
        .transaction
        .expect("a change"))
}

fn segment(dir: &Path) -> std::path::PathBuf {
    dir.join("log").join(format!("{:016}.log", 1))
}

#[test]
fn stamps_never_go_backwards_when_the_clock_is_stepped_back_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    // Running 20 s ahead: a write, then a heartbeat promise (never logged).
    let (written, promised) = {
        let repository = open(dir.path(), clock(20_000));
        let (_, stamp) = insert(&repository, 1).unwrap();
        let (promise, _, _, _) = repository.heartbeat_point().unwrap();
        (stamp.time, promise)
    };
    assert!(promised > written);
    // Restarted with a correct clock (without a clean stop).
    let restarted = clock(0);
    let repository = open(dir.path(), restarted.clone());
    let (_, stamp) = repository
        .commit(|tracker| tracker.remove(quad(1)))
        .unwrap()
        .transaction
        .unwrap();
    assert!(
        stamp.time > promised,
        "{:?} after a promise of {:?}",
        stamp.time,
        promised
    );
    assert!(restarted.ahead_of_physical_ms() > 19_000);
}

#[test]
fn the_checkpoint_clock_alone_is_restored_whatever_physical_time_says() {
    let dir = tempfile::tempdir().unwrap();
    let written = {
        let repository = open(dir.path(), clock(20_000));
        let (_, stamp) = insert(&repository, 1).unwrap();
        // Standalone: the checkpoint truncates the whole log.
        repository.checkpoint().unwrap();
        assert_eq!(repository.log_len().0, 0);
        stamp.time
    };
    fs::remove_file(dir.path().join("clock.json")).unwrap();
    let repository = open(dir.path(), clock(0));
    let (_, stamp) = insert(&repository, 2).unwrap();
    assert!(stamp.time > written);
}

#[test]
fn a_failed_log_write_takes_no_sequence_number() {
    let dir = tempfile::tempdir().unwrap();
    let repository = open(dir.path(), clock(0));
    assert_eq!(insert(&repository, 1).unwrap().0, 1);
    repository.lock_writer().log.fail_next_write_after(25);
    let error = insert(&repository, 2).unwrap_err();
    assert!(matches!(error, StoreError::DiskFull(_)), "{error}");
    assert_eq!(repository.size(None).unwrap(), 1);
    assert_eq!(insert(&repository, 3).unwrap().0, 2);
    assert!(repository.write_refusal().is_none());
    drop(repository);
    let repository = open(dir.path(), clock(0));
    assert_eq!(repository.version_vector().get(repository.origin()), 2);
    assert_eq!(repository.size(None).unwrap(), 2);
}

#[test]
fn a_failed_fsync_fails_the_write_and_stops_writes_until_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut synced = options();
    synced.log.fsync = true;
    let open_synced = || Repository::open("r", dir.path(), clock(0), synced, true).unwrap();
    let repository = open_synced();
    assert_eq!(insert(&repository, 1).unwrap().0, 1);
    // The frame is written and applied, but the disk cannot sync it (group commit
    // applies before the shared sync): the write must not be acknowledged nor
    // announced, and since its effect cannot be taken back out of the store, the
    // repository takes no writes until a restart replays its log.
    repository.fail_next_group_sync();
    let error = insert(&repository, 2).unwrap_err();
    assert!(
        matches!(error, StoreError::WritesStopped { .. }),
        "a write was acknowledged although its log entry was never synced: {error}"
    );
    assert_eq!(repository.version_vector().get(repository.origin()), 1);
    assert!(matches!(
        insert(&repository, 3),
        Err(StoreError::WritesStopped { .. })
    ));
    drop(repository);
    // What reached the disk is replayed (here the frame did: the failure was simulated).
    let repository = open_synced();
    assert!(repository.write_refusal().is_none());
    assert_eq!(repository.version_vector().get(repository.origin()), 2);
    assert_eq!(repository.size(None).unwrap(), 2);
    assert_eq!(insert(&repository, 3).unwrap().0, 3);
}

#[test]
fn a_failed_fsync_of_a_configuration_takes_no_sequence_number() {
    let dir = tempfile::tempdir().unwrap();
    let mut synced = options();
    synced.log.fsync = true;
    let open_synced = || Repository::open("r", dir.path(), clock(0), synced, true).unwrap();
    let repository = open_synced();
    let me = repository.origin();
    assert_eq!(insert(&repository, 1).unwrap().0, 1);
    // Configuration entries are synced before they are applied: a failed sync leaves
    // nothing of them, and writes go on.
    repository.lock_writer().log.fail_next_sync();
    assert!(
        repository
            .commit_config(|_, time| Ok(two_members(me, OriginId(77), time)))
            .is_err(),
        "a configuration was taken although its log entry was never synced"
    );
    assert!(!repository.cluster().replicated());
    assert_eq!(repository.version_vector().get(me), 1);
    assert_eq!(insert(&repository, 3).unwrap().0, 2);
    drop(repository);
    let repository = open_synced();
    assert_eq!(repository.version_vector().get(me), 2);
    assert_eq!(repository.size(None).unwrap(), 2);
    assert!(!repository.cluster().replicated());
}

/// Two members, `me` controlling and `peer`, as a configuration made at `time`.
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

#[test]
fn a_transaction_that_cannot_be_applied_is_taken_back_out_of_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let repository = open(dir.path(), clock(0));
    let me = repository.origin();
    assert_eq!(insert(&repository, 1).unwrap().0, 1);
    // Applying a configuration saves cluster.json; a directory in its place makes that
    // fail (whoever runs the test, root included) after the entry was appended.
    let cluster_file = dir.path().join("cluster.json");
    let _ = fs::remove_file(&cluster_file);
    fs::create_dir(&cluster_file).unwrap();
    let error = repository
        .commit_config(|_, time| Ok(two_members(me, OriginId(77), time)))
        .unwrap_err();
    assert_eq!(repository.rollbacks(), 1, "{error}");
    assert_eq!(
        repository.log_len().0,
        1,
        "the entry that could not be applied is still in the log"
    );
    assert!(!repository.cluster().replicated());
    assert!(repository.write_refusal().is_none());
    // Its sequence number is free again, and a restart replays nothing of it.
    fs::remove_dir(&cluster_file).unwrap();
    assert_eq!(insert(&repository, 2).unwrap().0, 2);
    drop(repository);
    let repository = open(dir.path(), clock(0));
    assert_eq!(repository.version_vector().get(me), 2);
    assert_eq!(repository.size(None).unwrap(), 2);
    assert!(
        !repository.cluster().replicated(),
        "the configuration that was refused came back with the log"
    );
}

/// A repository in a two-member cluster with `peer`, holding `n` transactions of its own
/// after its configuration; returns them as logged.
fn replicated(dir: &Path, peer: OriginId, n: usize) -> Vec<Entry> {
    let repository = open(dir, clock(0));
    let me = repository.origin();
    repository
        .commit_config(|_, time| Ok(two_members(me, peer, time)))
        .unwrap();
    for i in 0..n {
        insert(&repository, i).unwrap();
    }
    repository
        .entries_since(Default::default(), 100, |_, _| true)
        .unwrap()
        .0
}

#[test]
fn after_a_torn_tail_local_writes_wait_for_every_peer_and_lost_entries_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let peer = OriginId(77);
    let logged = replicated(dir.path(), peer, 4);
    let lost = logged.last().unwrap().clone();
    assert_eq!(lost.seq, 5);
    // The last 7 bytes of an entry the peer already has are gone (no fsync, power loss).
    let path = segment(dir.path());
    let len = fs::metadata(&path).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 7)
        .unwrap();

    let repository = open(dir.path(), clock(0));
    let me = repository.origin();
    assert_eq!(repository.version_vector().get(me), 4);
    // While waiting, heartbeats promise no later than our last surviving transaction:
    // the lost one (stamped after it) may still reach peers from other members.
    let (promise, _, _, _) = repository.heartbeat_point().unwrap();
    assert!(
        promise <= logged[logged.len() - 2].time,
        "a promise past our own lost transaction"
    );
    assert!(promise < lost.time);
    let error = insert(&repository, 100).unwrap_err();
    assert!(matches!(error, StoreError::AwaitingPeers { .. }), "{error}");
    assert!(repository.write_refusal().is_some());

    // Restarted again before any peer spoke: still waiting.
    drop(repository);
    let repository = open(dir.path(), clock(0));
    assert!(matches!(
        insert(&repository, 100),
        Err(StoreError::AwaitingPeers { .. })
    ));

    // The peer has our transaction 5: not yet.
    let mut theirs = VersionVector::new();
    theirs.advance(me, 5);
    repository.on_peer_heartbeat(peer, &theirs);
    assert!(repository.write_refusal().is_some());
    // Its stream sends it back first; then its heartbeat frees local writes.
    assert_eq!(repository.apply_remote(&lost).unwrap(), Applied::New);
    repository.on_peer_heartbeat(peer, &theirs);
    assert!(repository.write_refusal().is_none());
    let (promise, _, _, _) = repository.heartbeat_point().unwrap();
    assert!(
        promise > lost.time,
        "the promise moves on once the wait is over"
    );
    assert_eq!(insert(&repository, 100).unwrap().0, 6);

    // A clean stop (this log is not synced at every append: only a clean stop tells the
    // next open that nothing was lost).
    repository.close().unwrap();
    drop(repository);
    let repository = open(dir.path(), clock(0));
    assert!(repository.write_refusal().is_none());
    assert_eq!(repository.version_vector().get(me), 6);
}

#[test]
fn a_torn_tail_of_a_standalone_repository_refuses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    {
        let repository = open(dir.path(), clock(0));
        for i in 0..3 {
            insert(&repository, i).unwrap();
        }
    }
    let path = segment(dir.path());
    let len = fs::metadata(&path).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 7)
        .unwrap();
    let repository = open(dir.path(), clock(0));
    assert!(repository.write_refusal().is_none());
    assert_eq!(insert(&repository, 9).unwrap().0, 3);
}

#[test]
fn damage_inside_the_log_keeps_the_repository_closed() {
    let dir = tempfile::tempdir().unwrap();
    {
        let repository = open(dir.path(), clock(0));
        for i in 0..40 {
            insert(&repository, i).unwrap();
        }
    }
    let path = segment(dir.path());
    let mut bytes = fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    fs::write(&path, &bytes).unwrap();
    match Repository::open("r", dir.path(), clock(0), options(), false) {
        Err(StoreError::LogDamaged { file, .. }) => assert_eq!(file, path),
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("opened a damaged log"),
    }
}
