//! What bounds a repository's memory (`RepositoryOptions::loader_batch_quads`,
//! `checkpoint_every_bytes`, set by the server from its memory limit): a load larger
//! than the loader's batch goes in whole, on the origin and on a replica applying it;
//! a checkpoint (which flushes the store's write buffers) is due after so many bytes of
//! log as well as after so many entries.

use crate::group_commit_tests::quad;
use crate::log::LogOptions;
use crate::repository::{Applied, Repository, RepositoryOptions};
use quadmesh_repl::{HybridClock, SystemClock};
use std::path::Path;
use std::sync::Arc;

fn open(dir: &Path, options: RepositoryOptions) -> Arc<Repository> {
    let clock = Arc::new(HybridClock::new(SystemClock::with_offset_ms(0), 500));
    Arc::new(Repository::open("r", dir, clock, options, true).unwrap())
}

fn options() -> RepositoryOptions {
    RepositoryOptions {
        log: LogOptions {
            fsync: false,
            segment_bytes: 1 << 20,
        },
        ..RepositoryOptions::default()
    }
}

#[test]
fn a_load_larger_than_the_loaders_batch_goes_in_whole_on_the_origin_and_a_replica() {
    let small_batches = RepositoryOptions {
        loader_batch_quads: 3_000,
        ..options()
    };
    let origin_dir = tempfile::tempdir().unwrap();
    let origin = open(origin_dir.path(), small_batches);
    // A first load into an empty store, then one that repeats half of it.
    let first: Vec<_> = (0..20_000).map(quad).collect();
    let second: Vec<_> = (10_000..35_000).map(quad).collect();
    assert_eq!(origin.commit_inserts(first).unwrap().inserted, 20_000);
    assert_eq!(origin.commit_inserts(second).unwrap().inserted, 15_000);
    assert_eq!(origin.size(None).unwrap(), 35_000);
    assert!(
        origin.scrub().unwrap(),
        "the origin's digest counts each quad once"
    );

    let (entries, _) = origin
        .entries_since(Default::default(), 100, |_, _| true)
        .unwrap();
    assert_eq!(entries.len(), 2);
    let replica_dir = tempfile::tempdir().unwrap();
    let replica = open(replica_dir.path(), small_batches);
    let (outcomes, error) = replica.apply_remote_batch(origin.origin(), &entries);
    assert!(error.is_none(), "{error:?}");
    assert_eq!(outcomes, vec![Applied::New; 2]);
    assert_eq!(replica.size(None).unwrap(), 35_000);
    assert!(
        replica.scrub().unwrap(),
        "the replica's digest counts each quad once"
    );
}

#[test]
fn a_checkpoint_is_due_after_checkpoint_every_bytes_of_log_as_well_as_entries() {
    let dir = tempfile::tempdir().unwrap();
    let repository = open(
        dir.path(),
        RepositoryOptions {
            checkpoint_every: 1_000_000,
            checkpoint_every_bytes: Some(1 << 20),
            ..options()
        },
    );
    // Small commits: far under 1 MiB in all.
    for i in 0..10 {
        repository
            .commit(|tracker| tracker.insert(quad(i)))
            .unwrap();
    }
    assert!(!repository.checkpoint_due());
    // A load of about 1.2 MB of log (12,000 quads of about 100 bytes) passes it at once.
    repository
        .commit_inserts((100..12_100).map(quad).collect())
        .unwrap();
    assert!(repository.checkpoint_due(), "due after 1 MiB of log");
    repository.checkpoint().unwrap();
    assert!(!repository.checkpoint_due(), "taken");
    repository
        .commit(|tracker| tracker.insert(quad(20_000)))
        .unwrap();
    assert!(
        !repository.checkpoint_due(),
        "the bytes count again from the checkpoint"
    );
    // Four times the bytes without anyone taking it: taken on the write path.
    for load in 0..5 {
        let start = 30_000 + load * 12_000;
        repository
            .commit_inserts((start..start + 12_000).map(quad).collect())
            .unwrap();
    }
    assert!(
        repository.log_len().0 < 5,
        "taken on the write path after four times the bytes ({} entries left)",
        repository.log_len().0
    );
}

#[test]
fn a_read_for_a_peer_stops_after_read_bytes_and_the_next_goes_on_from_there() {
    let dir = tempfile::tempdir().unwrap();
    let repository = open(dir.path(), options());
    // Three loads of about 5 MB of log each: two pass READ_BYTES (8 MiB).
    for load in 0..3 {
        let start = load * 50_000;
        repository
            .commit_inserts((start..start + 50_000).map(quad).collect())
            .unwrap();
    }
    let (first, next) = repository
        .entries_since(Default::default(), 100, |_, _| true)
        .unwrap();
    let first_bytes: usize = first.iter().map(|e| e.payload.len()).sum();
    assert_eq!(first.len(), 2, "{first_bytes} bytes in the first read");
    assert!(first_bytes as u64 >= crate::feed::READ_BYTES);
    let (rest, _) = repository.entries_since(next, 100, |_, _| true).unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].seq, first[1].seq + 1);
}
