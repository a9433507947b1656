//! Deterministic simulation of a quadmesh cluster: the pull state machine of `repl`
//! ([`quadmesh_repl::Puller`]) at every instance, over a model repository that keeps
//! the real one's rules, a simulated network and simulated clocks, with faults. Each
//! schedule is decided by a seed; a failing seed is printed and replays exactly:
//!
//! ```text
//! QUADMESH_SIM_SEED=1234 cargo test -p quadmesh-repl --test sim -- --nocapture
//! QUADMESH_SIM_SEED=1234 QUADMESH_SIM_TRACE=1 ...   # with a trace of events
//! QUADMESH_SIM_SEEDS=100000 cargo test -p quadmesh-repl --release --test sim  # longer
//! ```
//!
//! What is checked, after the faults end and the cluster was given time to heal:
//! - convergence: every live member (up, not expired) holds the same version vector and
//!   the same quads, and none is still waiting for its peers after a lost tail;
//! - every instance's quads are last-writer-wins over its log: for each quad, the write
//!   with the newest stamp (HLC time, then origin) among the transactions in the log;
//! - no acknowledged write lost: each is in the final log, unless every copy of it was
//!   cut off by torn tails (at least as many instances cut it as held it when it was
//!   acknowledged) or its origin was expired (its writes are its alone);
//! - no acknowledged write undone: for each quad, the final state is that of the newest
//!   acknowledged write, unless a write with a newer stamp is in the log;
//! - real-time order: of two acknowledged writes to one quad, one completed before the
//!   other began, the later has the newer stamp — at one instance always (the clock
//!   never goes back, across restarts too), across instances when the gap exceeds what
//!   clock offsets allow;
//! - durability: a write acknowledged as held by k members was held by k;
//! - no sequence number is stamped twice while the first transaction with it exists.

mod model;
mod rng;
mod world;

use model::{Quad, MAX_OFFSET_MS};
use quadmesh_repl::{OriginId, Stamp};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;
use world::{Config, Fault, Stats, World, QUADS, STEP_MS};

/// How long the healed cluster may take to converge (simulated ms).
const HEAL_WITHIN_MS: u64 = 40_000;

struct Outcome {
    stats: Stats,
    violations: Vec<String>,
}

fn random_config(seed: u64) -> Config {
    let mut rng = rng::Rng::new(seed.wrapping_mul(31).wrapping_add(7));
    Config {
        nodes: rng.range(3, 5) as usize,
        // Mostly longer than any silence the random faults cause; one schedule in two
        // short enough that they expire members (`QUADMESH_SIM_RETENTION_MS` sets it).
        retention_ms: env_u64("QUADMESH_SIM_RETENTION_MS")
            .unwrap_or([60_000, 10_000, 5_000, 3_000][rng.range(0, 3) as usize]),
        chaos_ms: rng.range(2_000, 6_000) / STEP_MS * STEP_MS,
        write_chance: 0.15,
        random_faults: true,
        script: Vec::new(),
        scripted_writes: Vec::new(),
    }
}

fn run(seed: u64, config: &Config, trace: bool) -> Outcome {
    let mut world = World::new(seed, config.nodes);
    world.trace = trace;
    while world.now < config.chaos_ms {
        world.step(true, config);
    }
    world.heal();
    let healed_at = world.now;
    let mut converged = false;
    while world.now < healed_at + HEAL_WITHIN_MS {
        world.step(false, config);
        if world.now.is_multiple_of(100) && world.converged() {
            converged = true;
            break;
        }
    }
    let mut violations = std::mem::take(&mut world.violations);
    if !converged && world.blocked() {
        // Safe but stuck until an operator re-grows the blocked instance: what was
        // acknowledged must still be somewhere to re-grow from.
        world.stats.blocked_needs_operator += 1;
        violations.extend(check_kept_somewhere(&world));
    } else if !converged {
        let state: Vec<String> = world
            .nodes
            .iter()
            .map(|n| match &n.repo {
                Some(r) => format!(
                    "{}: vv {:?} awaiting {} expired {:?}",
                    n.origin,
                    r.vv,
                    r.is_awaiting(),
                    r.disk.expired
                ),
                None => format!("{}: down", n.origin),
            })
            .collect();
        violations.push(format!(
            "not converged {HEAL_WITHIN_MS} ms after healing: {state:?}"
        ));
    } else {
        violations.extend(check(&world));
    }
    Outcome {
        stats: world.stats.clone(),
        violations,
    }
}

/// Last-writer-wins over a log: the quads present.
fn lww<'a>(entries: impl Iterator<Item = &'a quadmesh_repl::Entry>) -> BTreeSet<Quad> {
    let mut newest: BTreeMap<Quad, (Stamp, bool)> = BTreeMap::new();
    for entry in entries {
        for (quad, present) in model::decode(&entry.payload) {
            let slot = newest.entry(quad).or_insert((entry.stamp(), present));
            if entry.stamp() >= slot.0 {
                *slot = (entry.stamp(), present);
            }
        }
    }
    newest
        .into_iter()
        .filter(|(_, (_, p))| *p)
        .map(|(q, _)| q)
        .collect()
}

/// For a cluster left needing an operator: every acknowledged write not cut off by
/// torn tails is in some instance's log, expired ones included.
fn check_kept_somewhere(world: &World) -> Vec<String> {
    let mut held: BTreeMap<(OriginId, u64), Stamp> = BTreeMap::new();
    for node in &world.nodes {
        if let Some(repo) = &node.repo {
            held.extend(repo.disk.log.iter().map(|e| ((e.origin, e.seq), e.stamp())));
        }
    }
    let mut violations = Vec::new();
    for op in world.ops.iter().filter(|op| op.acknowledged) {
        let Some((origin, seq, stamp)) = op.entry else {
            continue;
        };
        if held.get(&(origin, seq)) == Some(&stamp) {
            continue;
        }
        let cutters = world.cut_by.get(&(origin, seq)).map_or(0, |c| c.len());
        let holders = op.holders_claimed.unwrap_or(1).max(1);
        if cutters < holders {
            violations.push(format!(
                "acknowledged write {origin}#{seq} is in no instance's log (held by {holders}, cut by {cutters})"
            ));
        }
    }
    violations
}

fn check(world: &World) -> Vec<String> {
    let mut violations = Vec::new();
    let live = world.live_members();
    let expired = world.expired_origins();
    let first = world.nodes[live[0]].repo.as_ref().expect("live");
    // The final log, by (origin, seq).
    let final_log: BTreeMap<(OriginId, u64), Stamp> = first
        .disk
        .log
        .iter()
        .map(|e| ((e.origin, e.seq), e.stamp()))
        .collect();
    for &i in &live {
        let repo = world.nodes[i].repo.as_ref().expect("live");
        if repo.contents() != first.contents() {
            violations.push(format!(
                "n{i} holds {:?}, n{} holds {:?}",
                repo.contents(),
                live[0],
                first.contents()
            ));
        }
        if repo.contents() != lww(repo.disk.log.iter()) {
            violations.push(format!(
                "n{i}'s quads are not last-writer-wins over its log"
            ));
        }
        for e in &repo.disk.log {
            if final_log.get(&(e.origin, e.seq)) != Some(&e.stamp()) {
                violations.push(format!(
                    "n{i} holds {}#{} stamped {:?}, n{} another or none",
                    e.origin,
                    e.seq,
                    e.stamp(),
                    live[0]
                ));
            }
        }
    }
    let survives =
        |origin: OriginId, seq: u64, stamp: Stamp| final_log.get(&(origin, seq)) == Some(&stamp);
    let acked: Vec<_> = world
        .ops
        .iter()
        .filter(|op| op.acknowledged)
        .filter_map(|op| op.entry.map(|e| (op, e)))
        .collect();
    for (op, (origin, seq, stamp)) in &acked {
        if survives(*origin, *seq, *stamp) || expired.contains(origin) {
            continue;
        }
        let cutters = world.cut_by.get(&(*origin, *seq)).map_or(0, |c| c.len());
        let held = op.holders_claimed.unwrap_or(1).max(1);
        if cutters < held {
            violations.push(format!(
                "acknowledged write {origin}#{seq} (q{} = {} at n{}, held by {held} of {} asked) lost; cut by {cutters}",
                op.quad, op.present, op.node, op.needed
            ));
        }
    }
    // Undone: the newest surviving acknowledged write of each quad decides it, unless a
    // newer write is in the log.
    let contents = first.contents();
    for quad in 0..QUADS {
        let newest_acked = acked
            .iter()
            .filter(|(op, (o, s, st))| op.quad == quad && survives(*o, *s, *st))
            .max_by_key(|(_, (_, _, stamp))| *stamp);
        let Some((op, (_, _, stamp))) = newest_acked else {
            continue;
        };
        let newer_in_log = first.disk.log.iter().any(|e| {
            e.stamp() > *stamp && model::decode(&e.payload).iter().any(|(q, _)| *q == quad)
        });
        if !newer_in_log && contents.contains(&quad) != op.present {
            violations.push(format!(
                "acknowledged write of q{quad} = {} ({stamp:?}) undone",
                op.present
            ));
        }
    }
    // Real-time order.
    let epsilon = 2 * world.max_abs_offset + MAX_OFFSET_MS + 201;
    let surviving: Vec<_> = acked
        .iter()
        .filter(|(_, (o, s, st))| survives(*o, *s, *st))
        .collect();
    for (a, (ao, _, astamp)) in &surviving {
        for (b, (bo, _, bstamp)) in &surviving {
            if a.quad != b.quad {
                continue;
            }
            let a_done = a.completed.expect("acknowledged");
            let ordered = if ao == bo {
                a_done < b.invoked
            } else {
                a_done + epsilon < b.invoked
            };
            if ordered && astamp >= bstamp {
                violations.push(format!(
                    "q{}: {ao} wrote at {}..{a_done} ({astamp:?}), {bo} at {} ({bstamp:?}), yet the earlier wins",
                    a.quad, a.invoked, b.invoked
                ));
            }
        }
    }
    violations
}

fn report(seed: u64, outcome: &Outcome) -> Option<String> {
    if outcome.violations.is_empty() {
        return None;
    }
    Some(format!(
        "seed {seed} failed (replay: QUADMESH_SIM_SEED={seed} cargo test -p quadmesh-repl --test sim -- --nocapture):\n  {}\n  stats: {:?}",
        outcome.violations.join("\n  "),
        outcome.stats
    ))
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {v:?}"))
    })
}

/// Random schedules: `QUADMESH_SIM_SEEDS` of them (default 20,000) from
/// `QUADMESH_SIM_FIRST_SEED` (default 0); or the one `QUADMESH_SIM_SEED`.
#[test]
fn random_schedules_keep_every_promise() {
    let trace = std::env::var_os("QUADMESH_SIM_TRACE").is_some();
    let seeds: Vec<u64> = match env_u64("QUADMESH_SIM_SEED") {
        Some(seed) => vec![seed],
        None => {
            let first = env_u64("QUADMESH_SIM_FIRST_SEED").unwrap_or(0);
            let count = env_u64("QUADMESH_SIM_SEEDS").unwrap_or(20_000);
            (first..first + count).collect()
        }
    };
    let started = Instant::now();
    let mut total = Stats::default();
    let mut failures = Vec::new();
    for &seed in &seeds {
        let outcome = run(seed, &random_config(seed), trace);
        add(&mut total, &outcome.stats);
        if let Some(failure) = report(seed, &outcome) {
            eprintln!("{failure}");
            failures.push(failure);
            if failures.len() >= 5 {
                break;
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{} schedules in {secs:.1} s ({:.0}/s); faults exercised: {total:?}",
        seeds.len(),
        seeds.len() as f64 / secs
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    if seeds.len() >= 100 {
        // The sweep exercises every fault it claims to.
        assert!(
            total.tails_cut_replicated > 0 && total.lost_tail_fetched_back > 0,
            "{total:?}"
        );
        assert!(
            total.writes_refused_awaiting > 0 && total.stalls > 0,
            "{total:?}"
        );
        assert!(
            total.clock_holds > 0 && total.disk_full_holds > 0,
            "{total:?}"
        );
        assert!(
            total.writes_refused_disk_full > 0 && total.gaps + total.crashes > 0,
            "{total:?}"
        );
    }
}

fn add(total: &mut Stats, s: &Stats) {
    total.writes_acknowledged += s.writes_acknowledged;
    total.writes_refused_awaiting += s.writes_refused_awaiting;
    total.writes_refused_disk_full += s.writes_refused_disk_full;
    total.writes_refused_expired += s.writes_refused_expired;
    total.writes_refused_clock_fence += s.writes_refused_clock_fence;
    total.crashes += s.crashes;
    total.tails_cut_replicated += s.tails_cut_replicated;
    total.lost_tail_fetched_back += s.lost_tail_fetched_back;
    total.stalls += s.stalls;
    total.clock_holds += s.clock_holds;
    total.disk_full_holds += s.disk_full_holds;
    total.gaps += s.gaps;
    total.expiries += s.expiries;
    total.needs_regrow += s.needs_regrow;
    total.blocked_needs_operator += s.blocked_needs_operator;
    total.register_pruned += s.register_pruned;
    total.clock_steps_back += s.clock_steps_back;
}

/// A scripted fault case, with writes from the seed; asserts that the fault happened
/// and every promise held.
fn scenario(seed: u64, nodes: usize, chaos_ms: u64, script: Vec<(u64, Fault)>) -> Stats {
    let config = Config {
        nodes,
        retention_ms: 10_000,
        chaos_ms,
        write_chance: 0.2,
        random_faults: false,
        script,
        scripted_writes: Vec::new(),
    };
    let trace = std::env::var_os("QUADMESH_SIM_TRACE").is_some();
    let outcome = run(seed, &config, trace);
    if let Some(failure) = report(seed, &outcome) {
        panic!("{failure}");
    }
    outcome.stats
}

const PINNED: [u64; 3] = [1, 2, 3];

/// The pinned seeds, or the one `QUADMESH_SIM_SEED` (to replay a scenario's failure).
fn pinned() -> Vec<u64> {
    env_u64("QUADMESH_SIM_SEED").map_or_else(|| PINNED.to_vec(), |seed| vec![seed])
}

#[test]
fn a_lost_tail_is_fetched_back_and_no_sequence_number_is_reused() {
    for seed in pinned() {
        let stats = scenario(
            seed,
            3,
            6_000,
            vec![
                (
                    1_500,
                    Fault::Crash {
                        node: 1,
                        cut: 3,
                        down_ms: 300,
                        clock_step_ms: 0,
                    },
                ),
                // It comes back cut off: it cannot learn how far its transactions went.
                (
                    1_510,
                    Fault::Isolate {
                        node: 1,
                        ms: 2_000,
                        silent: true,
                    },
                ),
            ],
        );
        assert!(stats.tails_cut_replicated > 0, "{stats:?}");
        assert!(stats.writes_refused_awaiting > 0, "{stats:?}");
        assert!(stats.lost_tail_fetched_back > 0, "{stats:?}");
    }
}

#[test]
fn a_clock_stepped_back_across_a_restart_never_makes_stamps_go_backwards() {
    for seed in pinned() {
        let stats = scenario(
            seed,
            3,
            8_000,
            vec![
                (
                    500,
                    Fault::Crash {
                        node: 1,
                        cut: 0,
                        down_ms: 100,
                        clock_step_ms: 4_000,
                    },
                ),
                (
                    3_500,
                    Fault::Crash {
                        node: 1,
                        cut: 0,
                        down_ms: 100,
                        clock_step_ms: -4_000,
                    },
                ),
            ],
        );
        assert!(
            stats.clock_holds > 0 && stats.clock_steps_back > 0,
            "{stats:?}"
        );
    }
}

#[test]
fn a_silent_stream_is_dropped_and_replication_resumes() {
    for seed in pinned() {
        let stats = scenario(
            seed,
            3,
            5_000,
            vec![
                (1_000, Fault::SilentStreams { node: 0 }),
                (
                    2_000,
                    Fault::Partition {
                        a: 1,
                        b: 2,
                        ms: 1_500,
                        silent: true,
                    },
                ),
            ],
        );
        assert!(stats.stalls >= 2, "{stats:?}");
    }
}

#[test]
fn a_member_away_longer_than_the_log_retention_is_expired_and_refuses_writes() {
    for seed in pinned() {
        let stats = scenario(
            seed,
            3,
            14_000,
            vec![(
                500,
                Fault::Crash {
                    node: 2,
                    cut: 0,
                    down_ms: 11_000,
                    clock_step_ms: 0,
                },
            )],
        );
        assert!(stats.expiries >= 2, "{stats:?}");
        assert!(
            stats.needs_regrow > 0 && stats.writes_refused_expired > 0,
            "{stats:?}"
        );
    }
}

#[test]
fn a_full_disk_refuses_writes_and_holds_replication_until_space_is_back() {
    for seed in pinned() {
        let stats = scenario(
            seed,
            3,
            5_000,
            vec![(1_000, Fault::DiskFull { node: 1, ms: 2_000 })],
        );
        assert!(
            stats.writes_refused_disk_full > 0 && stats.disk_full_holds > 0,
            "{stats:?}"
        );
    }
}

#[test]
fn the_controlling_instance_with_a_lost_tail_resumes_when_a_majority_answered_and_the_rest_expired()
{
    for seed in pinned() {
        let stats = scenario(
            seed,
            3,
            16_000,
            vec![
                // n2 goes away for longer than the log is kept ...
                (
                    500,
                    Fault::Isolate {
                        node: 2,
                        ms: 13_000,
                        silent: true,
                    },
                ),
                // ... and meanwhile the controlling instance loses its log's tail.
                (
                    2_000,
                    Fault::Crash {
                        node: 0,
                        cut: 2,
                        down_ms: 300,
                        clock_step_ms: 0,
                    },
                ),
            ],
        );
        // Convergence (checked by `scenario`) needs n0 to take writes again: n1
        // answered and n2 expired, so it does not wait for n2 for ever.
        assert!(stats.expiries > 0, "{stats:?}");
        assert_eq!(stats.blocked_needs_operator, 0, "{stats:?}");
    }
}

#[test]
fn an_instance_with_a_lost_tail_that_no_majority_can_answer_waits_for_an_operator() {
    for seed in pinned() {
        let stats = scenario(
            seed,
            3,
            16_000,
            vec![
                (
                    1_000,
                    Fault::Crash {
                        node: 0,
                        cut: 2,
                        down_ms: 300,
                        clock_step_ms: 0,
                    },
                ),
                // It comes back cut off from everyone for longer than the log is kept:
                // it expires both others, yet they may hold its lost transactions.
                (
                    1_310,
                    Fault::Isolate {
                        node: 0,
                        ms: 13_000,
                        silent: true,
                    },
                ),
            ],
        );
        assert_eq!(stats.blocked_needs_operator, 1, "{stats:?}");
    }
}
