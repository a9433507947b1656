//! The fail-stop rules of the write path, recovery of a log that lost its tail, and the
//! clock across restarts, on real repositories in temporary directories.

use crate::group_commit_tests::quad;
use crate::log::LogOptions;
use crate::repository::{Applied, Repository, RepositoryOptions};
use crate::StoreError;
use oxigraph::model::Quad;
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
        ..RepositoryOptions::default()
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
        let promise = repository.heartbeat_point().unwrap().clock;
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
    repository
        .lock_writer()
        .durable
        .log
        .fail_next_write_after(25);
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
    repository.lock_writer().durable.log.fail_next_sync();
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
    let promise = repository.heartbeat_point().unwrap().clock;
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
    repository.on_peer_heartbeat(peer, &theirs, None);
    assert!(repository.write_refusal().is_some());
    // Its stream sends it back first; then its heartbeat frees local writes.
    assert_eq!(repository.apply_remote(&lost).unwrap(), Applied::New);
    repository.on_peer_heartbeat(peer, &theirs, None);
    assert!(repository.write_refusal().is_none());
    let promise = repository.heartbeat_point().unwrap().clock;
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

/// Where each frame of a log segment starts.
fn frame_starts(path: &Path) -> Vec<usize> {
    use quadmesh_repl::frame::{decode, Decoded};
    let bytes = fs::read(path).unwrap();
    let mut starts = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        starts.push(at);
        match decode(&bytes[at..]) {
            Ok(Decoded::Frame(_, len)) => at += len,
            other => panic!("not a clean log at {at}: {other:?}"),
        }
    }
    starts
}

/// Flips one bit in the payload of the `n`th frame (from 0) of the first segment.
fn flip_a_bit_of_frame(dir: &Path, n: usize) {
    let path = segment(dir);
    let start = frame_starts(&path)[n];
    let mut bytes = fs::read(&path).unwrap();
    bytes[start + quadmesh_repl::frame::HEADER_LEN + 5] ^= 0x10;
    fs::write(&path, &bytes).unwrap();
}

/// A member of a two-member cluster with `peer` whose log holds its configuration and 39
/// transactions, all covered by a checkpoint, with one bit flipped in the 11th (its
/// transaction 11); returns the 40 as logged.
fn forty_with_a_checkpointed_hole(dir: &Path, peer: OriginId) -> Vec<Entry> {
    let logged = replicated(dir, peer, 39);
    // Opened and closed once more: the checkpoint covers the whole log.
    open(dir, clock(0)).close().unwrap();
    flip_a_bit_of_frame(dir, 10);
    logged
}

#[test]
fn a_member_with_damage_inside_its_log_opens_refuses_writes_and_heals_from_a_peers_frames() {
    let dir = tempfile::tempdir().unwrap();
    let peer = OriginId(77);
    // 40 entries: the configuration and 39 of our own transactions.
    let logged = forty_with_a_checkpointed_hole(dir.path(), peer);

    let repository = open(dir.path(), clock(0));
    let me = repository.origin();
    assert_eq!(repository.version_vector().get(me), 40);
    let healing = repository.log_healing().expect("healing");
    assert_eq!(healing.missing, vec![(me, 11)]);
    assert!(!healing.replay_paused);
    assert_eq!(healing.holes.len(), 1);
    assert!(matches!(
        insert(&repository, 100),
        Err(StoreError::LogHealing { .. })
    ));
    let refusal = repository.write_refusal().expect("not writable");
    assert!(refusal.contains("damaged"), "{refusal}");
    // Nothing to serve of what the hole took; the rest is served.
    let held = repository
        .frames_held(&[(me, 10), (me, 11), (me, 12)])
        .unwrap();
    assert_eq!(held.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![10, 12]);

    // Without the missing transaction nothing changes.
    let error = repository.heal_log(logged[..5].to_vec(), &[]).unwrap_err();
    assert!(error.to_string().contains(&format!("{me}/11")), "{error}");
    assert!(repository.log_healing().is_some());

    // The peer's copy of every transaction: the one the damage took is put back.
    let healed = repository.heal_log(logged.clone(), &[]).unwrap().unwrap();
    assert_eq!((healed.put_back, healed.replayed), (1, 0));
    assert_eq!(healed.kept.len(), 1);
    assert!(repository.log_healing().is_none());
    // This log is not synced at every append and the last run did not stop cleanly:
    // local writes also wait for the peer's word on how far ours went.
    let mut theirs = VersionVector::new();
    theirs.advance(me, 40);
    repository.on_peer_heartbeat(peer, &theirs, None);
    assert_eq!(repository.write_refusal(), None);
    assert_eq!(repository.frames_put_back(), 1);
    let after = repository
        .entries_since(Default::default(), 100, |_, _| true)
        .unwrap()
        .0;
    assert_eq!(
        after, logged,
        "the log holds every transaction, in order, as logged"
    );
    assert_eq!(insert(&repository, 100).unwrap().0, 41);
    assert_eq!(repository.size(None).unwrap(), 40);

    // Opened again, the log is whole: no healing, nothing refused.
    repository.close().unwrap();
    drop(repository);
    let repository = open(dir.path(), clock(0));
    assert!(repository.log_healing().is_none());
    assert!(repository.write_refusal().is_none());
    assert_eq!(repository.version_vector().get(me), 41);
}

#[test]
fn damage_after_the_last_checkpoint_pauses_the_replay_until_the_frames_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let peer = OriginId(77);
    // Not closed: the checkpoint (taken at open, before anything was logged) covers
    // nothing, as after a crash.
    let logged = replicated(dir.path(), peer, 9);
    flip_a_bit_of_frame(dir.path(), 4);

    let repository = open(dir.path(), clock(0));
    let me = repository.origin();
    // The replay stopped before transaction 6, whose predecessor is in the hole.
    assert_eq!(repository.version_vector().get(me), 4);
    let healing = repository.log_healing().expect("healing");
    assert_eq!(healing.missing, vec![(me, 5)]);
    assert!(healing.replay_paused);
    assert!(matches!(
        insert(&repository, 100),
        Err(StoreError::LogHealing { .. })
    ));
    // A peer's transaction would be logged after ours that wait: refused for now.
    let theirs = Entry {
        kind: quadmesh_repl::EntryKind::Data,
        origin: peer,
        seq: 1,
        time: quadmesh_repl::HlcTime::from_parts(1, 0),
        payload: crate::effect::Effect::default().encode(),
    };
    assert!(matches!(
        repository.apply_remote(&theirs),
        Err(StoreError::LogHealing { .. })
    ));

    // Reopened before healing: the same.
    drop(repository);
    let repository = open(dir.path(), clock(0));
    assert_eq!(repository.log_healing().unwrap().missing, vec![(me, 5)]);

    let healed = repository.heal_log(logged.clone(), &[]).unwrap().unwrap();
    assert_eq!((healed.put_back, healed.replayed), (1, 6));
    assert_eq!(repository.version_vector().get(me), 10);
    assert_eq!(repository.size(None).unwrap(), 9);
    // Our own newest transactions may have been in the hole: local writes still wait for
    // the peer to say how far ours went (the lost-tail rule), peers' are taken again.
    assert!(matches!(
        insert(&repository, 100),
        Err(StoreError::AwaitingPeers { .. })
    ));
    assert_eq!(repository.apply_remote(&theirs).unwrap(), Applied::New);
    let mut vector = VersionVector::new();
    vector.advance(me, 10);
    repository.on_peer_heartbeat(peer, &vector, None);
    assert_eq!(insert(&repository, 100).unwrap().0, 11);

    // A crash after that (no clean stop): the open replays what the checkpoint taken
    // by the healing does not cover, and finds everything.
    drop(repository);
    let repository = open(dir.path(), clock(0));
    assert!(repository.log_healing().is_none());
    assert_eq!(repository.version_vector().get(me), 11);
    assert_eq!(repository.version_vector().get(peer), 1);
    assert_eq!(repository.size(None).unwrap(), 10);
}

/// A transaction of `origin` with no writes.
fn empty_transaction(origin: OriginId, seq: u64) -> Entry {
    Entry {
        kind: quadmesh_repl::EntryKind::Data,
        origin,
        seq,
        time: quadmesh_repl::HlcTime::from_parts(1_000 + seq, 0),
        payload: crate::effect::Effect::default().encode(),
    }
}

#[test]
fn another_instances_transaction_no_member_holds_is_left_out_only_once_every_member_applied_it() {
    let dir = tempfile::tempdir().unwrap();
    let peer = OriginId(77);
    replicated(dir.path(), peer, 10);
    {
        let repository = open(dir.path(), clock(0));
        for seq in 1..=5 {
            repository
                .apply_remote(&empty_transaction(peer, seq))
                .unwrap();
        }
        repository.close().unwrap();
    }
    // Our 11 transactions, then the peer's 1..5: its third is damaged.
    flip_a_bit_of_frame(dir.path(), 13);
    let repository = open(dir.path(), clock(0));
    let me = repository.origin();
    assert_eq!(repository.log_healing().unwrap().missing, vec![(peer, 3)]);
    let vector = repository.version_vector();
    repository.pin_log_for_backup(vector.clone()).unwrap();
    assert!(dir.path().join("backup-pin.json").exists());

    // Some member lacks it and none holds it: nothing may be invented for another
    // instance's transaction.
    let mut behind = vector.clone();
    behind = behind.meet(&{
        let mut v = VersionVector::new();
        v.advance(me, 11);
        v.advance(peer, 2);
        v
    });
    repository.set_horizon(quadmesh_repl::HlcTime::ZERO, behind);
    let error = repository.heal_log(Vec::new(), &[(peer, 3)]).unwrap_err();
    assert!(error.to_string().contains("grow it again"), "{error}");
    assert!(repository.log_healing().is_some());

    // Every member applied it and no log holds it any more: left out, and the next
    // backup must be full.
    repository.set_horizon(quadmesh_repl::HlcTime::ZERO, vector.clone());
    let healed = repository
        .heal_log(Vec::new(), &[(peer, 3)])
        .unwrap()
        .unwrap();
    assert_eq!((healed.put_back, healed.left_out), (0, 1));
    assert!(healed.emptied.is_empty());
    repository.on_peer_heartbeat(peer, &vector, None);
    assert_eq!(repository.write_refusal(), None);
    assert!(!dir.path().join("backup-pin.json").exists());
    assert_eq!(insert(&repository, 100).unwrap().0, 12);
    repository.close().unwrap();
    drop(repository);
    assert!(open(dir.path(), clock(0)).log_healing().is_none());
}

/// An instance removed for good (not handing over) can never send its transactions
/// again: one that only this damaged log held goes back empty, as our own would, so
/// that its later ones still reach the members and this repository is whole again
/// (its writes are lost, and said so), where a member's would keep it healing.
#[test]
fn a_transaction_of_an_instance_removed_for_good_only_the_damaged_log_held_goes_back_empty() {
    let dir = tempfile::tempdir().unwrap();
    let gone = OriginId(77);
    replicated(dir.path(), gone, 10);
    {
        let repository = open(dir.path(), clock(0));
        for seq in 1..=5 {
            repository
                .apply_remote(&empty_transaction(gone, seq))
                .unwrap();
        }
        // The unclean stop before: the peer's word on how far ours went.
        let mut ours = VersionVector::new();
        ours.advance(repository.origin(), 11);
        repository.on_peer_heartbeat(gone, &ours, None);
        // Another member, which has none of them, joins; then the instance goes.
        repository
            .commit_config(|current, time| {
                Ok(current.unwrap().with_member(Member {
                    name: "c".into(),
                    origin: OriginId(88),
                    address: "c:1".into(),
                    repository: "r".into(),
                    controlling: false,
                    added_at: time,
                })?)
            })
            .unwrap();
        repository
            .commit_config(|current, _| Ok(current.unwrap().without_member("b")?.0))
            .unwrap();
        repository.close().unwrap();
    }
    // Our 11 transactions, then its 1..5 (its third damaged), then two configurations.
    flip_a_bit_of_frame(dir.path(), 13);
    let repository = open(dir.path(), clock(0));
    let me = repository.origin();
    assert_eq!(repository.log_healing().unwrap().missing, vec![(gone, 3)]);
    let mut behind = VersionVector::new();
    behind.advance(me, 13);
    repository.set_horizon(quadmesh_repl::HlcTime::ZERO, behind);
    let healed = repository
        .heal_log(Vec::new(), &[(gone, 3)])
        .unwrap()
        .unwrap();
    assert_eq!(healed.emptied, vec![(gone, 3)]);
    assert_eq!((healed.put_back, healed.left_out), (0, 0));
    assert!(repository.log_healing().is_none());
    assert_eq!(repository.version_vector().get(gone), 5);
    // What the members pull from here holds its whole sequence again.
    let (entries, _) = repository
        .entries_since(Default::default(), 100, |origin, _| origin == gone)
        .unwrap();
    let seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
    repository.close().unwrap();
    drop(repository);
    assert!(open(dir.path(), clock(0)).log_healing().is_none());
}

#[test]
fn an_own_transaction_only_the_damaged_log_held_goes_back_empty_so_the_later_ones_reach_the_members(
) {
    let dir = tempfile::tempdir().unwrap();
    let peer = OriginId(77);
    let logged = forty_with_a_checkpointed_hole(dir.path(), peer);
    let repository = open(dir.path(), clock(0));
    let me = repository.origin();
    // The peer has only our first ten: 11 was in this log alone.
    let mut behind = VersionVector::new();
    behind.advance(me, 10);
    repository.set_horizon(quadmesh_repl::HlcTime::ZERO, behind.clone());
    let healed = repository
        .heal_log(logged[..10].to_vec(), &[(me, 11)])
        .unwrap()
        .unwrap();
    assert_eq!(healed.emptied, vec![(me, 11)]);
    assert_eq!((healed.put_back, healed.left_out), (0, 0));
    let after = repository
        .entries_since(Default::default(), 100, |_, _| true)
        .unwrap()
        .0;
    assert_eq!(
        after.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=40).collect::<Vec<_>>(),
        "every sequence number is in the log, so the members can take 12..40"
    );
    let put = &after[10];
    assert_eq!(
        crate::effect::Effect::decode(&put.payload).unwrap(),
        crate::effect::Effect::default()
    );
    assert!(logged[9].time <= put.time && put.time <= logged[11].time);
    assert_eq!(&after[11..], &logged[11..]);
    repository.on_peer_heartbeat(peer, &behind, None);
    assert_eq!(repository.write_refusal(), None);
    assert_eq!(insert(&repository, 100).unwrap().0, 41);
}

/// The controlling instance holds this instance's writes while it removes it: a restart
/// in the middle keeps holding (the removal may still take effect, and a write taken
/// now would go with it), and the hold ends when it was due to, or when released.
#[test]
fn a_hold_for_removal_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let peer = OriginId(77);
    replicated(dir.path(), peer, 2);
    // Opened after a stop that was not clean, it waits for its peer's word first.
    let reopen = || {
        let repository = open(dir.path(), clock(0));
        repository.on_peer_heartbeat(peer, &repository.version_vector(), None);
        repository
    };
    let repository = reopen();
    let declared = repository
        .hold_local_writes_for_removal(std::time::Duration::from_secs(60))
        .unwrap();
    assert_eq!(
        declared.get(repository.origin()),
        3,
        "a configuration and 2 writes"
    );
    let leaving = |result| matches!(result, Err(StoreError::Leaving(_)));
    assert!(leaving(insert(&repository, 10)));
    repository.close().unwrap();
    drop(repository);
    let repository = reopen();
    assert!(leaving(insert(&repository, 11)), "held across the restart");
    repository
        .hold_local_writes_for_removal(std::time::Duration::ZERO)
        .unwrap();
    insert(&repository, 12).unwrap();
    repository.close().unwrap();
    drop(repository);
    // Released: nothing held after a restart either.
    let repository = reopen();
    insert(&repository, 13).unwrap();
}

#[test]
fn a_load_over_quads_partly_present_logs_and_digests_only_the_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let repository = open(dir.path(), clock(0));
    for i in 0..5_000 {
        insert(&repository, i).unwrap();
    }
    // Named twice, some of them: each goes in once.
    let quads: Vec<Quad> = (0..12_000).chain(6_000..6_100).map(quad).collect();
    let receipt = repository.commit_inserts(quads).unwrap();
    assert_eq!(
        receipt.inserted, 7_000,
        "outside a cluster only the new ones"
    );
    assert_eq!(repository.size(None).unwrap(), 12_000);
    assert!(repository.scrub().unwrap(), "the digest is the store's");
    // Nothing new: nothing logged.
    let again: Vec<Quad> = (0..12_000).map(quad).collect();
    assert_eq!(repository.commit_inserts(again).unwrap().transaction, None);
    assert!(repository.scrub().unwrap());
}

#[test]
fn loads_prepared_while_other_commits_change_their_quads_keep_the_digest_true() {
    let dir = tempfile::tempdir().unwrap();
    let repository = open(dir.path(), clock(0));
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        // Inserts and deletes of quads the loads name, as fast as they go: some land
        // between a load's preparation and its commit, which must then prepare again.
        scope.spawn(|| {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let q = quad(i % 30_000);
                repository
                    .commit(|tracker| {
                        if i % 2 == 0 {
                            tracker.insert(q)
                        } else {
                            tracker.remove(q)
                        }
                    })
                    .unwrap();
                i += 7;
            }
        });
        for round in 0..6 {
            let quads: Vec<Quad> = (round * 5_000..round * 5_000 + 12_000).map(quad).collect();
            repository.commit_inserts(quads).unwrap();
            assert!(repository.scrub().unwrap(), "round {round}");
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    assert!(repository.scrub().unwrap());
}
