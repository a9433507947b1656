//! Range tombstones on real repositories: two members of one cluster exchange their
//! log entries in every order, as pull streams would deliver them.

use crate::log::LogOptions;
use crate::pattern::{GraphSelector, QuadPattern};
use crate::repository::{Repository, RepositoryOptions};
use crate::session::PendingChanges;
use crate::update::{apply_update, UpdateRequest};
use oxigraph::model::{GraphName, Literal, NamedNode, Quad};
use quadmesh_repl::{ClusterConfig, Entry, HybridClock, Member, SystemClock};
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

fn open(dir: &Path) -> Repository {
    let clock = Arc::new(HybridClock::new(SystemClock::with_offset_ms(0), 500));
    Repository::open("r", dir, clock, options(), true).unwrap()
}

fn iri(s: &str) -> NamedNode {
    NamedNode::new_unchecked(format!("http://example.org/{s}"))
}

fn quad(name: &str, graph: Option<&str>) -> Quad {
    Quad::new(
        iri(name),
        iri("p"),
        Literal::from(name),
        graph.map_or(GraphName::DefaultGraph, |g| iri(g).into()),
    )
}

/// Every entry of `from`'s log after the `skip` first.
fn log_of(from: &Repository, skip: usize) -> Vec<Entry> {
    let (entries, _) = from
        .entries_since(Default::default(), 10_000, |_, _| true)
        .unwrap();
    entries.into_iter().skip(skip).collect()
}

/// Members of one cluster, named `names`: the first controlling, the others having
/// taken its configuration.
fn cluster(dir: &Path, names: &[&str]) -> Vec<Repository> {
    let members: Vec<Repository> = names.iter().map(|name| open(&dir.join(name))).collect();
    let origins: Vec<_> = members.iter().map(Repository::origin).collect();
    members[0]
        .commit_config(|_, time| {
            let member = |i: usize| Member {
                name: names[i].into(),
                origin: origins[i],
                address: format!("{}:1", names[i]),
                repository: "r".into(),
                controlling: i == 0,
                added_at: time,
            };
            let mut config = ClusterConfig::new("c".into(), "r".into(), "t".into(), member(0));
            for i in 1..names.len() {
                config = config.with_member(member(i))?;
            }
            Ok(config)
        })
        .unwrap();
    for other in &members[1..] {
        for entry in log_of(&members[0], 0) {
            other.apply_remote(&entry).unwrap();
        }
        assert!(other.cluster().replicated());
    }
    members
}

/// Two members of one cluster: `a` controlling, `b` having taken `a`'s configuration.
fn pair(dir: &Path) -> (Repository, Repository) {
    let mut members = cluster(dir, &["a", "b"]).into_iter();
    (members.next().unwrap(), members.next().unwrap())
}

/// Hands `to` every entry of `from` it lacks.
fn deliver(from: &Repository, to: &Repository) {
    for entry in log_of(from, 0) {
        if entry.origin == from.origin() {
            to.apply_remote(&entry).unwrap();
        }
    }
}

fn holds(repository: &Repository, quad: &Quad) -> bool {
    repository.store().contains(quad).unwrap()
}

fn by_triple(name: &str) -> QuadPattern {
    let q = quad(name, None);
    QuadPattern::new(
        Some(q.subject),
        Some(q.predicate),
        Some(q.object),
        GraphSelector::Any,
    )
}

#[test]
fn a_delete_by_triple_holds_against_the_insert_it_had_not_received_in_either_order() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = pair(dir.path());
    let t = quad("t", Some("g"));
    a.commit(|tracker| tracker.insert(t.clone())).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2));
    let mut removed = 0;
    let receipt = b
        .commit(|tracker| {
            removed = tracker.remove_pattern(by_triple("t"))?;
            Ok(())
        })
        .unwrap();
    assert_eq!(removed, 0, "b did not hold the triple yet");
    assert!(receipt.transaction.is_some(), "the delete is a transaction");
    deliver(&a, &b);
    deliver(&b, &a);
    assert!(!holds(&a, &t) && !holds(&b, &t));
    // One log entry carrying the pattern, not the quads.
    let own: Vec<Entry> = log_of(&b, 0)
        .into_iter()
        .filter(|e| e.origin == b.origin())
        .collect();
    assert_eq!(own.len(), 1);
    let effect = crate::effect::Effect::decode(&own[0].payload).unwrap();
    assert_eq!(effect.patterns, vec![by_triple("t")]);
    assert!(effect.deletes.is_empty());
}

/// The tombstone of a delete by pattern received from a peer, not only one made here:
/// `c` takes `b`'s delete before `a`'s older insert, which it must then refuse (and a
/// newer insert from `a` must still stand), also after a checkpoint and a restart.
#[test]
fn a_range_delete_received_from_a_peer_refuses_an_older_insert_from_a_third() {
    let dir = tempfile::tempdir().unwrap();
    let mut members = cluster(dir.path(), &["a", "b", "c"]).into_iter();
    let (a, b, c) = (
        members.next().unwrap(),
        members.next().unwrap(),
        members.next().unwrap(),
    );
    let older = quad("t", Some("g"));
    a.commit(|tracker| tracker.insert(older.clone())).unwrap();
    let a_seen = log_of(&a, 0).len();
    std::thread::sleep(std::time::Duration::from_millis(2));
    b.commit(|tracker| tracker.remove_pattern(by_triple("t")).map(drop))
        .unwrap();
    deliver(&b, &c);
    // c checkpoints and restarts before the older insert arrives.
    c.checkpoint().unwrap();
    drop(c);
    let c = open(&dir.path().join("c"));
    deliver(&a, &c);
    assert!(
        !holds(&c, &older),
        "an insert older than a delete by pattern received earlier from another peer survived it"
    );
    std::thread::sleep(std::time::Duration::from_millis(2));
    a.commit(|tracker| tracker.insert(older.clone())).unwrap();
    assert!(log_of(&a, 0).len() > a_seen);
    deliver(&a, &c);
    assert!(
        holds(&c, &older),
        "an insert newer than the delete was refused"
    );
}

#[test]
fn a_clear_refuses_older_inserts_arriving_later_and_keeps_newer_ones_also_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = pair(dir.path());
    let kept_before = quad("kept", None);
    a.commit(|tracker| tracker.insert(kept_before.clone()))
        .unwrap();
    let older = quad("older", Some("g"));
    a.commit(|tracker| tracker.insert(older.clone())).unwrap();
    let a_seen = log_of(&a, 0).len();
    std::thread::sleep(std::time::Duration::from_millis(2));
    b.commit(|tracker| {
        apply_update(
            tracker,
            &UpdateRequest::new("CLEAR SILENT GRAPH <http://example.org/g>"),
        )
    })
    .unwrap();
    // b checkpoints and restarts before the older insert arrives: the tombstone is kept.
    b.checkpoint().unwrap();
    drop(b);
    let b = open(&dir.path().join("b"));
    std::thread::sleep(std::time::Duration::from_millis(2));
    deliver(&b, &a);
    let newer = quad("newer", Some("g"));
    a.commit(|tracker| tracker.insert(newer.clone())).unwrap();
    assert!(log_of(&a, 0).len() > a_seen);
    deliver(&a, &b);
    for repository in [&a, &b] {
        assert!(
            !holds(repository, &older),
            "older insert survived the clear"
        );
        assert!(holds(repository, &newer), "newer insert lost");
        assert!(holds(repository, &kept_before), "another graph was cleared");
    }
}

#[test]
fn a_session_commit_carries_its_range_deletes_and_writes_after_them() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = pair(dir.path());
    let old = quad("s1", None);
    a.commit(|tracker| tracker.insert(old.clone())).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2));
    let mut pending = PendingChanges::new();
    let again = quad("s2", None);
    b.in_session(&mut pending, true, |tracker| {
        tracker.remove_pattern(QuadPattern::new(
            None,
            Some(iri("p")),
            None,
            GraphSelector::Default,
        ))?;
        tracker.insert(again.clone())
    })
    .unwrap();
    b.commit_pending(&mut pending).unwrap();
    deliver(&a, &b);
    deliver(&b, &a);
    for repository in [&a, &b] {
        assert!(!holds(repository, &old));
        assert!(
            holds(repository, &again),
            "a write after the delete in one session"
        );
    }
}

#[test]
fn a_failed_request_in_a_session_puts_back_what_its_range_delete_removed() {
    let dir = tempfile::tempdir().unwrap();
    let repository = open(dir.path());
    let q = quad("q", None);
    repository
        .commit(|tracker| tracker.insert(q.clone()))
        .unwrap();
    let mut pending = PendingChanges::new();
    let failed = repository.in_session(&mut pending, true, |tracker| {
        tracker.remove_pattern(QuadPattern::everything())?;
        Err::<(), _>(crate::StoreError::Unsupported("fails".into()))
    });
    assert!(failed.is_err());
    let seen = repository
        .in_session(&mut pending, true, |tracker| tracker.contains(q.as_ref()))
        .unwrap();
    assert!(seen, "the failed request's range delete was not undone");
    assert!(pending.is_empty());

    // Swept by one request, then re-inserted by a failed one: still absent after it.
    repository
        .in_session(&mut pending, true, |tracker| {
            tracker
                .remove_pattern(QuadPattern::everything())
                .map(|_| ())
        })
        .unwrap();
    let failed = repository.in_session(&mut pending, true, |tracker| {
        tracker.insert(q.clone())?;
        Err::<(), _>(crate::StoreError::Unsupported("fails".into()))
    });
    assert!(failed.is_err());
    let seen = repository
        .in_session(&mut pending, true, |tracker| tracker.contains(q.as_ref()))
        .unwrap();
    assert!(
        !seen,
        "a failed request brought back a quad swept before it"
    );
}

#[test]
fn outside_a_cluster_a_range_delete_that_removes_nothing_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let repository = open(dir.path());
    let receipt = repository
        .commit(|tracker| tracker.remove_pattern(by_triple("absent")).map(|_| ()))
        .unwrap();
    assert!(receipt.transaction.is_none());
}
