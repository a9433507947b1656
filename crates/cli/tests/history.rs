//! A history checker: clients write through a "load balancer" (each request to a
//! random instance) while instances are killed with -9 and restarted and links are
//! cut and healed. Afterwards every instance must hold the same quads, and each quad
//! must stand as some operation left it that no acknowledged operation clearly
//! followed: no acknowledged insert missing, no acknowledged delete undone, real-time
//! order for operations that did not overlap. Failed or timed-out requests are
//! indeterminate: they may or may not have happened. Reads with a causal token must
//! see the client's own acknowledged write, whichever instance answers.
//!
//! Deletes come as explicit quads and as patterns (AllegroGraph's delete-by-triple
//! without a context, `DELETE WHERE` of one pattern, a delete by object that covers
//! several quads, now and then `CLEAR DEFAULT`): each covers the quads it matches.
//!
//! Runs about 25 s; `QUADMESH_HISTORY_SECS` sets another length.

mod common;

use common::cluster::Cluster;
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const EX: &str = "http://example.org/";
const TOKEN: &str = "x-quadmesh-token";
/// Stamps have millisecond resolution: operations closer than this may be ordered
/// either way, as if they overlapped.
const MARGIN: Duration = Duration::from_millis(3);

/// Quads share their object with every fifth other one: a delete by object covers a
/// class of them.
const CLASSES: usize = 5;

fn object(i: usize) -> String {
    format!("\"o{}\"", i % CLASSES)
}

fn quad(i: usize) -> String {
    format!("<{EX}s{i}> <{EX}p> {}", object(i))
}

#[derive(Clone, Debug)]
struct Op {
    /// The quads the operation names or its pattern matches.
    quads: Vec<usize>,
    insert: bool,
    started: Instant,
    ended: Instant,
    acknowledged: bool,
}

#[derive(Default)]
struct ClientLog {
    ops: Vec<Op>,
    /// Reads with a token that missed the client's own acknowledged write.
    stale_reads: Vec<String>,
    token_reads: usize,
    token_refusals: usize,
}

async fn client_run(
    seed: u64,
    urls: Vec<String>,
    universe: usize,
    stop: Arc<AtomicBool>,
) -> ClientLog {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut log = ClientLog::default();
    let mut own = 0;
    while !stop.load(Ordering::SeqCst) {
        let instance = rng.random_range(0..urls.len());
        if rng.random_bool(0.1) {
            // Read-your-writes: a quad only this client writes, then a read elsewhere.
            own += 1;
            // In a graph of its own: the `CLEAR DEFAULT`s of other clients leave it alone.
            let private =
                format!("GRAPH <{EX}private> {{ <{EX}client{seed}> <{EX}wrote> \"{own}\" }}");
            let written = http
                .post(&urls[instance])
                .basic_auth(common::USER, Some(common::PASSWORD))
                .form(&[("update", format!("INSERT DATA {{ {private} }}"))])
                .send()
                .await;
            let Ok(written) = written else { continue };
            if !written.status().is_success() {
                continue;
            }
            let token = written.headers()[TOKEN].to_str().unwrap().to_owned();
            let reader = rng.random_range(0..urls.len());
            let read = http
                .post(&urls[reader])
                .basic_auth(common::USER, Some(common::PASSWORD))
                .header(TOKEN, &token)
                .header("x-quadmesh-token-timeout", "2")
                .header("accept", "application/sparql-results+json")
                .form(&[("query", format!("ASK {{ {private} }}"))])
                .send()
                .await;
            match read {
                Ok(r) if r.status() == 200 => {
                    log.token_reads += 1;
                    let body: serde_json::Value = r.json().await.unwrap();
                    if body["boolean"] != true {
                        log.stale_reads.push(format!(
                            "write {own} on {instance}, read on {reader} with {token}"
                        ));
                    }
                }
                Ok(r) if r.status() == 503 => log.token_refusals += 1,
                _ => {}
            }
            continue;
        }
        let q = rng.random_range(0..universe);
        let class: Vec<usize> = (0..universe)
            .filter(|i| i % CLASSES == q % CLASSES)
            .collect();
        let roll = rng.random_range(0..100);
        let (insert, quads, request) = match roll {
            0..50 => (
                true,
                vec![q],
                http.post(&urls[instance])
                    .form(&[("update", format!("INSERT DATA {{ {} }}", quad(q)))]),
            ),
            50..70 => (
                false,
                vec![q],
                http.post(&urls[instance])
                    .form(&[("update", format!("DELETE DATA {{ {} }}", quad(q)))]),
            ),
            // agraph-python's removeTriples(s, p, o): no context, every graph.
            70..85 => (
                false,
                vec![q],
                http.delete(format!("{}/statements", urls[instance]))
                    .query(&[
                        ("subj", format!("<{EX}s{q}>")),
                        ("pred", format!("<{EX}p>")),
                        ("obj", object(q)),
                    ]),
            ),
            85..93 => (
                false,
                class,
                http.post(&urls[instance]).form(&[(
                    "update",
                    format!("DELETE WHERE {{ ?s <{EX}p> {} }}", object(q)),
                )]),
            ),
            93..99 => (
                false,
                class,
                http.delete(format!("{}/statements", urls[instance]))
                    .query(&[("obj", object(q))]),
            ),
            _ => (
                false,
                (0..universe).collect(),
                http.post(&urls[instance])
                    .form(&[("update", "CLEAR DEFAULT".to_owned())]),
            ),
        };
        let started = Instant::now();
        let response = request
            .basic_auth(common::USER, Some(common::PASSWORD))
            .send()
            .await;
        let acknowledged = matches!(&response, Ok(r) if r.status().is_success());
        log.ops.push(Op {
            quads,
            insert,
            started,
            ended: Instant::now(),
            acknowledged,
        });
        if rng.random_bool(0.2) {
            tokio::time::sleep(Duration::from_millis(rng.random_range(0..5))).await;
        }
    }
    log
}

/// Whether `present` is a state some operation on the quad may have left: one no
/// acknowledged operation clearly followed (the initial absence counts as such an
/// operation when nothing on the quad was acknowledged).
fn explained(ops: &[&Op], present: bool) -> bool {
    let followed = |x: &Op| {
        ops.iter()
            .any(|y| y.acknowledged && y.started > x.ended + MARGIN)
    };
    let by_initial = !present && !ops.iter().any(|o| o.acknowledged);
    by_initial || ops.iter().any(|x| x.insert == present && !followed(x))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_write_holds_under_kills_and_partitions() {
    let seconds: u64 = std::env::var("QUADMESH_HISTORY_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(25);
    let seed: u64 = std::env::var("QUADMESH_HISTORY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("history checker: {seconds} s, seed {seed} (QUADMESH_HISTORY_SEED to repeat)");
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::launch(dir.path(), 3, &[]).await;
    cluster.form().await;
    let urls: Vec<String> = cluster.instances.iter().map(|i| i.repo_url("")).collect();
    let universe = 40;
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|c| {
            tokio::spawn(client_run(
                seed.wrapping_add(c),
                urls.clone(),
                universe,
                stop.clone(),
            ))
        })
        .collect();

    // The nemesis: every second or so, kill -9 an instance and bring it back, or cut
    // a link between two instances and heal it.
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x5eed);
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut faults = Vec::new();
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(rng.random_range(300..1200))).await;
        let a = rng.random_range(0..3);
        if rng.random_bool(0.4) {
            faults.push(format!("kill -9 node{a}"));
            cluster.instances[a].kill();
            tokio::time::sleep(Duration::from_millis(rng.random_range(100..800))).await;
            let instance = &mut cluster.instances[a];
            tokio::task::block_in_place(|| instance.start(false));
        } else {
            let b = (a + rng.random_range(1..3)) % 3;
            faults.push(format!("cut node{a}-node{b}"));
            cluster.cut(a, b);
            tokio::time::sleep(Duration::from_millis(rng.random_range(200..1500))).await;
            cluster.heal(a, b);
        }
    }
    stop.store(true, Ordering::SeqCst);
    let mut ops = Vec::new();
    let mut stale_reads = Vec::new();
    let (mut token_reads, mut token_refusals) = (0, 0);
    for client in clients {
        let log = client.await.unwrap();
        ops.extend(log.ops);
        stale_reads.extend(log.stale_reads);
        token_reads += log.token_reads;
        token_refusals += log.token_refusals;
    }
    let took = cluster.converge(Duration::from_secs(60)).await;

    let export = cluster.export(0).await;
    let mut findings = Vec::new();
    for q in 0..universe {
        let on_q: Vec<&Op> = ops.iter().filter(|o| o.quads.contains(&q)).collect();
        let present = export.lines().any(|l| l.starts_with(&quad(q)));
        if !explained(&on_q, present) {
            let last = on_q
                .iter()
                .filter(|o| o.acknowledged)
                .max_by_key(|o| o.started);
            findings.push(format!(
                "quad {q} is {} but the last acknowledged operation was {last:?}",
                if present { "present" } else { "absent" }
            ));
        }
    }
    let acknowledged = ops.iter().filter(|o| o.acknowledged).count();
    eprintln!(
        "history: {} operations ({acknowledged} acknowledged, {} indeterminate) on {universe} quads; \
         {token_reads} reads with a token ({token_refusals} refused in time); faults: {}; \
         converged {took:?} after the last fault",
        ops.len(),
        ops.len() - acknowledged,
        faults.join(", ")
    );
    for finding in findings.iter().chain(&stale_reads) {
        eprintln!("finding: {finding}");
    }
    assert!(
        acknowledged > 100,
        "too few operations went through to judge"
    );
    assert!(
        findings.is_empty(),
        "{} quads break the history",
        findings.len()
    );
    assert!(
        stale_reads.is_empty(),
        "{} reads with a causal token missed the client's own write",
        stale_reads.len()
    );
}
