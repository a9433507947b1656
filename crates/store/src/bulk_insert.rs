//! The work of a large insert-only transaction (a load) that can be done before its
//! stamp: which quads are new here, their digest, the encoded effect and the bulk
//! loader's sorted files. [`Repository::commit_inserts`](crate::Repository) prepares it
//! outside the writer lock and takes it under the lock if the store did not change in
//! between (else it checks again, and prepares again if that changed), so that the
//! writer's critical path is the log append, its sync and the ingestion of files
//! already written.

use crate::digest_book::digest_key;
use crate::error::Result;
use crate::ntriples::QuadText;
use oxigraph::model::Quad;
use oxigraph::store::{BulkLoader, Store};
use quadmesh_repl::ContentDigest;
use std::borrow::Borrow;
use std::collections::HashSet;
use std::io::Write;
use std::time::{Duration, Instant};

/// The fewest new quads the bulk loader writes files for in one thread.
const LOADER_BATCH_MIN: usize = 25_000;
/// The most, unless the repository's options say fewer (`loader_batch_quads`): a load
/// of a million quads on two threads is written in one batch each.
pub(crate) const LOADER_BATCH_MAX: usize = 500_000;

/// A load made ready for its stamp, against the store as it was when it was prepared.
///
/// Rules it keeps:
/// - it is true only while the store holds what it held of its quads when the
///   preparation began: the caller checks that the store did not change in between
///   (`Writer::store_version`: every change is made under the writer lock), else checks
///   their presence again under the lock and prepares again if it differs;
/// - nothing of it is in the store until [`BulkLoader::commit`] ingests its files (after
///   the log append): dropped, its files are deleted and the store is as it was;
/// - the effect lists each quad once: in a cluster every quad the load names (each is
///   stamped, whatever this instance held), else only those not yet present; `digest`
///   counts exactly the quads that become present.
pub(crate) struct PreparedLoad<'a> {
    /// Whether it was prepared for a replicated repository.
    pub replicated: bool,
    /// The load's quads, each once, in the order first named.
    pub quads: Vec<Quad>,
    /// Whether the store held each of them: everything else follows from this (and
    /// `replicated`), so a preparation whose store changed since is still true if the
    /// store holds the same of them.
    pub present: Vec<bool>,
    /// How many quads the effect lists (and the log entry holds).
    pub inserted: usize,
    /// The encoded effect (`Effect::encode` of its inserts).
    pub payload: Vec<u8>,
    /// The digest of the quads that become present (to add to the repository's).
    pub digest: ContentDigest,
    /// Writing the files of the new quads (in its own threads); ingested by `commit`.
    pub loader: BulkLoader<'a>,
    /// How long each step took (the load profile, logged at debug level).
    pub timings: Timings,
}

/// Where a load's preparation spent its time.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Timings {
    pub presence: Duration,
    pub digest_and_encode: Duration,
}

/// The quads of `quads`, each once, in the order first named.
pub(crate) fn unique(quads: Vec<Quad>) -> Vec<Quad> {
    let keep: Vec<bool> = {
        let mut seen = HashSet::with_capacity(quads.len());
        quads.iter().map(|quad| seen.insert(quad)).collect()
    };
    if keep.iter().all(|&k| k) {
        return quads;
    }
    quads
        .into_iter()
        .zip(keep)
        .filter_map(|(quad, keep)| keep.then_some(quad))
        .collect()
}

/// Prepares the load of `quads` (each once, see [`unique`]) on up to `threads` threads:
/// presence checks first, then the bulk loader starts writing the new quads' files in
/// its own thread while the digest and the effect's text are computed.
pub(crate) fn prepare(
    store: &Store,
    quads: Vec<Quad>,
    replicated: bool,
    threads: usize,
    max_batch: usize,
) -> Result<PreparedLoad<'_>> {
    let mut timings = Timings::default();
    let started = Instant::now();
    let present = presence(store, &quads, threads)?;
    timings.presence = started.elapsed();
    let fresh: Vec<&Quad> = quads
        .iter()
        .zip(&present)
        .filter_map(|(quad, &present)| (!present).then_some(quad))
        .collect();
    let mut loader = loader_for(store, fresh.len(), threads, max_batch);
    loader.load_quads(fresh.iter().map(|&quad| quad.clone()))?;
    let started = Instant::now();
    let named: Vec<&Quad> = if replicated {
        quads.iter().collect()
    } else {
        fresh.clone()
    };
    let digest = digest_on(&fresh, threads);
    let payload = encode_inserts(&named, threads);
    timings.digest_and_encode = started.elapsed();
    let inserted = named.len();
    drop(named);
    drop(fresh);
    Ok(PreparedLoad {
        replicated,
        present,
        quads,
        inserted,
        payload,
        digest,
        loader,
        timings,
    })
}

/// A bulk loader that writes the files of `fresh` new quads on `threads` threads at
/// once, each for its share, at most `max_batch` quads at a time (the loader's batches
/// are `max_memory_size * 1000 / threads` quads; no batch under LOADER_BATCH_MIN unless
/// `max_batch` says so: fewer files to ingest and compact).
pub(crate) fn loader_for(
    store: &Store,
    fresh: usize,
    threads: usize,
    max_batch: usize,
) -> BulkLoader<'_> {
    let batch = batch_per_thread(fresh, threads, max_batch);
    store
        .bulk_loader()
        .with_num_threads(threads.max(1))
        .with_max_memory_size_in_megabytes((batch * threads.max(1)).div_ceil(1000))
}

/// The quads of each of the loader's batches: `fresh` shared over `threads`, no fewer
/// than LOADER_BATCH_MIN, no more than `max_batch`.
fn batch_per_thread(fresh: usize, threads: usize, max_batch: usize) -> usize {
    fresh
        .div_ceil(threads.max(1))
        .max(LOADER_BATCH_MIN)
        .min(max_batch.max(1))
}

/// The content digest of `quads` (each counted once: the caller's to ensure), computed
/// on up to `threads` threads.
pub(crate) fn digest_on(quads: &[&Quad], threads: usize) -> ContentDigest {
    in_parallel(quads, threads, |part| {
        let mut digest = ContentDigest::default();
        for quad in part {
            digest.insert(digest_key(quad).as_bytes());
        }
        digest
    })
    .into_iter()
    .fold(ContentDigest::default(), |a, b| ContentDigest {
        count: a.count.wrapping_add(b.count),
        sum: a.sum.wrapping_add(b.sum),
    })
}

/// Whether the store holds each of `quads`, checked on up to `threads` threads.
pub(crate) fn presence<Q: Borrow<Quad> + Sync>(
    store: &Store,
    quads: &[Q],
    threads: usize,
) -> Result<Vec<bool>> {
    // An empty store (a first load) holds none of them.
    if store.is_empty()? {
        return Ok(vec![false; quads.len()]);
    }
    Ok(in_parallel(quads, threads, |part| {
        part.iter()
            .map(|quad| store.contains(quad.borrow()))
            .collect::<std::result::Result<Vec<_>, _>>()
    })
    .into_iter()
    .collect::<std::result::Result<Vec<_>, _>>()?
    .concat())
}

/// `Effect { inserts, .. }.encode()`, the quads' text written on up to `threads` threads.
pub(crate) fn encode_inserts(inserts: &[&Quad], threads: usize) -> Vec<u8> {
    let parts = in_parallel(inserts, threads, |part| {
        let mut text = Vec::with_capacity(96 * part.len());
        for quad in part {
            // As `Effect::encode` writes them.
            writeln!(text, "{} .", QuadText(quad.as_ref())).expect("writing to a Vec cannot fail");
        }
        text
    });
    let len: usize = parts.iter().map(Vec::len).sum();
    let mut out = Vec::with_capacity(len + 16);
    out.extend_from_slice(&(len as u64).to_le_bytes());
    for part in parts {
        out.extend_from_slice(&part);
    }
    // No deletes; no range deletes (no third section).
    out.extend_from_slice(&0u64.to_le_bytes());
    out
}

/// `work` on up to `threads` consecutive parts of `items`, the results in order.
fn in_parallel<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    work: impl Fn(&[T]) -> R + Sync,
) -> Vec<R> {
    // Small inputs are not worth a thread.
    const MIN_PART: usize = 4096;
    let parts = threads.min(items.len() / MIN_PART).max(1);
    if parts == 1 {
        return vec![work(items)];
    }
    let size = items.len().div_ceil(parts);
    let parts: Vec<&[T]> = items.chunks(size).collect();
    crate::threads::each_on_a_thread(&parts, |part| work(part))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::effect::Effect;
    use oxigraph::model::{GraphName, Literal, NamedNode};

    fn quad(i: usize) -> Quad {
        Quad::new(
            NamedNode::new_unchecked(format!("http://e.com/s{i}")),
            NamedNode::new_unchecked("http://e.com/p a"),
            Literal::new_simple_literal(format!("v{}", i % 1000)),
            GraphName::DefaultGraph,
        )
    }

    #[test]
    fn a_loaders_batch_is_the_load_shared_over_the_threads_within_its_bounds() {
        // Shared over the threads, but not in batches too small to be worth a file.
        assert_eq!(batch_per_thread(1_000_000, 2, LOADER_BATCH_MAX), 500_000);
        assert_eq!(
            batch_per_thread(12_000, 2, LOADER_BATCH_MAX),
            LOADER_BATCH_MIN
        );
        // Never more than the cap (the memory limit's share), even below the minimum.
        assert_eq!(
            batch_per_thread(10_000_000, 2, LOADER_BATCH_MAX),
            LOADER_BATCH_MAX
        );
        assert_eq!(batch_per_thread(1_000_000, 2, 74_565), 74_565);
        assert_eq!(batch_per_thread(20_000, 2, 3_000), 3_000);
        assert_eq!(batch_per_thread(20_000, 0, 0), 1);
    }

    #[test]
    fn inserts_encode_as_the_effect_does_whatever_the_threads() {
        let quads: Vec<Quad> = (0..20_000).map(quad).collect();
        let refs: Vec<&Quad> = quads.iter().collect();
        let expected = Effect {
            inserts: quads.clone(),
            ..Effect::default()
        }
        .encode();
        for threads in [1, 2, 3, 7] {
            assert_eq!(encode_inserts(&refs, threads), expected);
        }
        assert_eq!(encode_inserts(&[], 2), Effect::default().encode());
    }

    #[test]
    fn unique_keeps_the_first_of_each_quad_in_order() {
        let quads = vec![quad(1), quad(2), quad(1), quad(3), quad(2)];
        assert_eq!(unique(quads), vec![quad(1), quad(2), quad(3)]);
    }

    #[test]
    fn a_prepared_load_counts_only_the_new_quads_and_dropped_leaves_the_store_alone() {
        let store = Store::new().unwrap();
        let quads: Vec<Quad> = (0..12_000).map(quad).collect();
        for q in &quads[..5_000] {
            store.insert(q).unwrap();
        }
        let prepared = prepare(&store, quads.clone(), false, 2, LOADER_BATCH_MAX).unwrap();
        assert_eq!(prepared.inserted, 7_000);
        assert_eq!(prepared.digest.count, 7_000);
        let mut expected = ContentDigest::default();
        for q in &quads[5_000..] {
            expected.insert(digest_key(q).as_bytes());
        }
        assert_eq!(prepared.digest, expected);
        drop(prepared);
        assert_eq!(store.len().unwrap(), 5_000);
        // In a cluster every quad named is in the effect.
        let prepared = prepare(&store, quads, true, 2, LOADER_BATCH_MAX).unwrap();
        assert_eq!(prepared.inserted, 12_000);
        assert_eq!(prepared.digest.count, 7_000);
        prepared.loader.commit().unwrap();
        assert_eq!(store.len().unwrap(), 12_000);
    }
}
