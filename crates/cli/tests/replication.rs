//! Multi-master replication with real server processes: convergence, faults,
//! durability, membership, and bad input on the replication endpoints.

mod common;

use common::cluster::{instance_ip, Cluster};
use common::wait_for;
use rand::{Rng, SeedableRng};
use std::time::{Duration, Instant};

/// Cluster tests run one at a time: each starts several processes on two cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const EX: &str = "http://example.org/";

fn quad(i: usize) -> String {
    format!("<{EX}s{}> <{EX}p> \"{}\"", i % 7, i)
}

async fn three(dir: &std::path::Path) -> Cluster {
    let cluster = Cluster::launch(dir, 3, &[]).await;
    cluster.form().await;
    cluster
}

/// One acknowledged operation, with when its request started and ended.
#[derive(Clone, Copy, Debug)]
struct Op {
    quad: usize,
    insert: bool,
    started: Instant,
    ended: Instant,
    acknowledged: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_on_every_instance_converge() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = std::sync::Arc::new(three(dir.path()).await);
    let universe = 24;
    let mut writers = Vec::new();
    for writer in 0..3 {
        let cluster = cluster.clone();
        writers.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(writer as u64 + 7);
            let mut ops = Vec::new();
            for _ in 0..150 {
                let q = rng.random_range(0..universe);
                let insert = rng.random_bool(0.6);
                let update = if insert {
                    format!("INSERT DATA {{ {} }}", quad(q))
                } else {
                    format!("DELETE DATA {{ {} }}", quad(q))
                };
                let started = Instant::now();
                let response = cluster.update(writer, &update).await;
                ops.push(Op {
                    quad: q,
                    insert,
                    started,
                    ended: Instant::now(),
                    acknowledged: response.status().is_success(),
                });
                if rng.random_bool(0.3) {
                    tokio::time::sleep(Duration::from_millis(rng.random_range(0..4))).await;
                }
            }
            ops
        }));
    }
    let mut ops = Vec::new();
    for writer in writers {
        ops.extend(writer.await.unwrap());
    }
    let took = cluster.converge(Duration::from_secs(20)).await;
    eprintln!("converged {took:?} after the last write");

    // Every instance holds the same quads; and the outcome agrees with real time:
    // an acknowledged operation that started clearly after every opposite operation
    // on the same quad had finished must be what stands.
    let export = cluster.export(0).await;
    let margin = Duration::from_millis(5);
    let mut decided = 0;
    for q in 0..universe {
        let on_q: Vec<&Op> = ops.iter().filter(|o| o.quad == q).collect();
        for op in on_q.iter().filter(|o| o.acknowledged) {
            let last_opposite = on_q
                .iter()
                .filter(|o| o.insert != op.insert)
                .map(|o| o.ended)
                .max();
            if last_opposite.is_none_or(|t| op.started > t + margin) {
                let present = export.lines().any(|l| l.starts_with(&quad(q)));
                assert_eq!(
                    present,
                    op.insert,
                    "quad {q}: the last clear {} did not stand",
                    if op.insert { "insert" } else { "delete" }
                );
                decided += 1;
                break;
            }
        }
    }
    eprintln!(
        "{} operations, {decided} quads decided by real-time order",
        ops.len()
    );
    assert!(ops.iter().all(|o| o.acknowledged));
    // The check above must have examined something: a quad is decided when its last
    // write started after every opposite one had ended, which most quads see.
    assert!(
        decided >= universe / 3,
        "only {decided} of {universe} quads had a write clearly after every opposite one: \
         the real-time check examined too little"
    );

    // Every instance timed each transaction it applied from a peer (the lag histogram
    // operators watch), and no other.
    for i in 0..3 {
        let metrics = cluster.metrics(i).await;
        let timed = sample(&metrics, "quadmesh_replication_apply_delay_seconds_count");
        let applied = sample(&metrics, "quadmesh_remote_transactions_applied_total");
        assert!(timed > 0.0, "instance {i} timed no applied transaction");
        assert_eq!(timed, applied, "instance {i}:\n{metrics}");
    }
}

/// The value of the first sample of `name` in a `/metrics` text (0 when absent).
fn sample(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_mid_load_loses_nothing_acknowledged() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = three(dir.path()).await;
    let url = cluster.instances[1].repo_url("/statements");
    let client = cluster.client.http.clone();
    let writer = tokio::spawn(async move {
        let mut acknowledged = Vec::new();
        for batch in 0..400 {
            let body: String = (0..50)
                .map(|i| format!("<{EX}b{batch}> <{EX}p> \"{i}\" .\n"))
                .collect();
            let sent = client
                .post(url.clone())
                .basic_auth(common::USER, Some(common::PASSWORD))
                .header("content-type", "application/n-triples")
                .body(body)
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => acknowledged.push(batch),
                _ => break,
            }
        }
        acknowledged
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    cluster.instances[1].kill();
    let acknowledged = writer.await.unwrap();
    assert!(
        !acknowledged.is_empty(),
        "the load should have been under way"
    );
    cluster.instances[1].start(false);
    let took = cluster.converge(Duration::from_secs(30)).await;
    eprintln!(
        "{} batches acknowledged before kill -9; converged {took:?} after restart",
        acknowledged.len()
    );
    for i in 0..3 {
        let export = cluster.export(i).await;
        for batch in &acknowledged {
            assert_eq!(
                export
                    .lines()
                    .filter(|l| l.starts_with(&format!("<{EX}b{batch}> ")))
                    .count(),
                50,
                "instance {i} lacks acknowledged batch {batch}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopped_copy_catches_up_and_the_controlling_instance_recovers() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = three(dir.path()).await;
    cluster.instances[2].stop();
    for i in 0..200 {
        let target = i % 2;
        assert!(cluster
            .update(target, &format!("INSERT DATA {{ {} }}", quad(1000 + i)))
            .await
            .status()
            .is_success());
    }
    // And one load large enough for the bulk path, both where it is committed and
    // where it is applied from peers.
    let load: String = (0..20_000)
        .map(|i| format!("<{EX}load{i}> <{EX}p> \"{i}\" .\n"))
        .collect();
    let response = cluster
        .client
        .post(cluster.instances[1].repo_url("/statements"))
        .header("content-type", "application/n-triples")
        .body(load)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    cluster.instances[2].start(false);
    let took = cluster.converge(Duration::from_secs(60)).await;
    eprintln!("a copy stopped during 200 commits and a 20,000-triple load caught up {took:?} after restart");
    assert_eq!(cluster.export(2).await.lines().count(), 20_200);

    // The controlling instance restarts on the same data at another address under the
    // same name: the others find it again by resolving the name anew.
    cluster.instances[0].stop();
    cluster.instances[0].ip = instance_ip(0, 7);
    cluster.rebuild_network().await;
    cluster.instances[0].start(false);
    assert!(cluster
        .update(0, &format!("INSERT DATA {{ {} }}", quad(5000)))
        .await
        .status()
        .is_success());
    assert!(cluster
        .update(2, &format!("INSERT DATA {{ {} }}", quad(5001)))
        .await
        .status()
        .is_success());
    let took = cluster.converge(Duration::from_secs(30)).await;
    eprintln!("after the controlling instance moved, converged in {took:?}");
    assert_eq!(cluster.export(1).await.lines().count(), 20_202);
    let status = cluster.status(1).await;
    let controlling = status["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "controlling")
        .unwrap()
        .clone();
    assert_eq!(controlling["state"], "connected", "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn both_sides_of_a_partition_take_writes_and_converge_after_healing() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = three(dir.path()).await;
    // {0} | {1, 2}
    cluster.cut(0, 1);
    cluster.cut(0, 2);
    for i in 0..30 {
        assert!(cluster
            .update(0, &format!("INSERT DATA {{ {} }}", quad(100 + i)))
            .await
            .status()
            .is_success());
        assert!(cluster
            .update(1 + i % 2, &format!("INSERT DATA {{ {} }}", quad(200 + i)))
            .await
            .status()
            .is_success());
    }
    // The same quad, inserted on one side and deleted on the other: the later wins.
    assert!(cluster
        .update(1, &format!("INSERT DATA {{ {} }}", quad(999)))
        .await
        .status()
        .is_success());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(cluster
        .update(0, &format!("INSERT DATA {{ {} }}", quad(999)))
        .await
        .status()
        .is_success());
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(cluster
        .update(0, &format!("DELETE DATA {{ {} }}", quad(999)))
        .await
        .status()
        .is_success());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(cluster.export(0).await.lines().count(), 30);
    assert_eq!(cluster.export(1).await.lines().count(), 31);
    let healed = Instant::now();
    cluster.heal(0, 1);
    cluster.heal(0, 2);
    let took = cluster.converge(Duration::from_secs(30)).await;
    eprintln!(
        "partition healed; converged in {took:?} ({:?} since healing)",
        healed.elapsed()
    );
    let export = cluster.export(2).await;
    assert_eq!(export.lines().count(), 60);
    assert!(!export.contains(&quad(999)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn durability_waits_for_members_and_reports_what_is_missing() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = three(dir.path()).await;
    let url = cluster.instances[0].repo_url("");
    let client = cluster.client.http.clone();
    let write = |i: usize, settings: &'static str| {
        let (url, client) = (url.clone(), client.clone());
        async move {
            let started = Instant::now();
            let response = client
                .post(url)
                .basic_auth(common::USER, Some(common::PASSWORD))
                .header("x-repl-settings", settings)
                .form(&[("update", format!("INSERT DATA {{ {} }}", quad(i)))])
                .send()
                .await
                .unwrap();
            (response, started.elapsed())
        }
    };
    let (response, took) = write(1, "durability=max distributedTransactionTimeout=5").await;
    assert!(response.status().is_success());
    assert!(response.headers().get("x-durability").is_none());
    eprintln!("durability=max with all up: {took:?}");

    cluster.instances[2].kill();
    let (response, took) = write(2, "durability=quorum distributedTransactionTimeout=5").await;
    assert!(response.status().is_success());
    assert!(
        response.headers().get("x-durability").is_none(),
        "quorum of 3 is met with one down"
    );
    eprintln!("durability=quorum with one of three down: {took:?}");

    let (response, took) = write(3, "durability=max distributedTransactionTimeout=1").await;
    assert!(response.status().is_success());
    assert_eq!(response.headers()["x-durability"], "missing=1");
    assert!(
        took >= Duration::from_millis(950),
        "answered after {took:?}, before the timeout"
    );
    eprintln!("durability=max with one down: answered missing=1 after {took:?}");

    // transactionLatencyCount: with one commit still waiting for durability, a second
    // that allows only one outstanding is held, then refused when its wait runs out.
    let waiting = tokio::spawn(write(6, "durability=max distributedTransactionTimeout=3"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (response, took) =
        write(7, "durability=max distributedTransactionTimeout=3 transactionLatencyCount=1 transactionLatencyTimeout=0.5")
            .await;
    assert_eq!(response.status(), 409);
    assert!(response
        .text()
        .await
        .unwrap()
        .contains("transactionLatencyCount"));
    assert!(
        took >= Duration::from_millis(450),
        "refused after {took:?}, before its latency timeout"
    );
    let (first, _) = waiting.await.unwrap();
    assert_eq!(first.headers()["x-durability"], "missing=1");
    // Nothing outstanding any more: the same settings are let through.
    let (response, _) = write(8, "durability=min transactionLatencyCount=1").await;
    assert!(response.status().is_success());

    let (response, _) = write(4, "durability=4").await;
    assert_eq!(response.status(), 409);
    assert!(response.text().await.unwrap().contains("cannot be met"));
    let (response, _) = write(5, "durability=sometimes").await;
    assert_eq!(response.status(), 400);
    // Neither refused write changed anything.
    let count = common::select_one(
        &cluster.client,
        &cluster.instances[0].repo_url(""),
        "SELECT (COUNT(*) AS ?n) { ?s ?p ?o FILTER(?o IN (\"4\", \"5\", \"7\")) }",
    )
    .await;
    assert_eq!(count, "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grow_and_remove_while_writes_continue() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::launch(dir.path(), 4, &[]).await;
    cluster.form_first(3).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let url = cluster.instances[1].repo_url("");
        let client = cluster.client.http.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let response = client
                    .post(url.clone())
                    .basic_auth(common::USER, Some(common::PASSWORD))
                    .form(&[(
                        "update",
                        format!("INSERT DATA {{ <{EX}w{n}> <{EX}p> {n} }}"),
                    )])
                    .send()
                    .await
                    .unwrap();
                assert!(response.status().is_success());
                n += 1;
            }
            n
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    cluster.grow(3).await;
    eprintln!(
        "grew a fourth instance in {:?} under writes",
        started.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let response = cluster
        .client
        .put(cluster.instances[0].repo_url("/repl/remove"))
        .query(&[("instanceName", "node2")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let written = writer.await.unwrap();
    // The removed instance stops replicating, and knows it.
    let removed_status = cluster.status(2).await;
    assert_eq!(removed_status["removed"], true, "{removed_status}");
    let refused = cluster
        .update(2, "INSERT DATA { <http://e/x> <http://e/p> 1 }")
        .await;
    assert_eq!(refused.status(), 409);
    cluster.instances[2].kill();
    let took = cluster.converge(Duration::from_secs(30)).await;
    eprintln!("{written} writes during grow and remove; converged {took:?} after the last");
    assert_eq!(cluster.export(3).await.lines().count(), written);
    let status = cluster.status(0).await;
    let names: Vec<&str> = status["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["node0", "node1", "node3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replication_endpoints_refuse_bad_input() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = three(dir.path()).await;
    let http = reqwest::Client::new();
    let stream = cluster.instances[0].repo_url("/repl/stream");
    // No token, a wrong token.
    let response = http.get(stream.clone()).send().await.unwrap();
    assert_eq!(response.status(), 403);
    let response = http
        .get(stream.clone())
        .header("x-quadmesh-cluster-token", "not-the-token")
        .header("x-quadmesh-origin", "1")
        .header("x-quadmesh-version-vector", "{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert!(response.text().await.unwrap().contains("token"));
    // The user password is no cluster token.
    let response = http
        .get(stream)
        .basic_auth(common::USER, Some(common::PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);

    // Growing with a name already in the cluster; removing an unknown instance.
    let response = cluster
        .client
        .put(cluster.instances[0].repo_url("/repl/growCluster"))
        .query(&[
            ("host", "nowhere.test"),
            ("port", "1"),
            ("user", "u"),
            ("password", "p"),
            ("instanceName", "node1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 409);
    assert!(response
        .text()
        .await
        .unwrap()
        .contains("already in the cluster"));
    let response = cluster
        .client
        .put(cluster.instances[0].repo_url("/repl/remove"))
        .query(&[("instanceName", "ghost")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert!(response.text().await.unwrap().contains("ghost"));
    // Only the controlling instance changes the cluster.
    let response = cluster
        .client
        .put(cluster.instances[1].repo_url("/repl/remove"))
        .query(&[("instanceName", "node2")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 409);
    assert!(response.text().await.unwrap().contains("controlling"));

    // Corrupt frames on the way from 0 to 1: refused, nothing of them applied, and
    // replication resumes cleanly.
    cluster.proxies[1][0].as_ref().unwrap().corrupt_next(3);
    for i in 0..20 {
        assert!(cluster
            .update(0, &format!("INSERT DATA {{ {} }}", quad(300 + i)))
            .await
            .status()
            .is_success());
    }
    // Truncated frames: the link breaks mid-stream.
    cluster.proxies[2][0].as_ref().unwrap().cut();
    cluster.proxies[2][0].as_ref().unwrap().heal();
    cluster.converge(Duration::from_secs(30)).await;
    assert_eq!(cluster.export(1).await.lines().count(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn register_and_log_follow_replication_lag_not_database_size() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::launch(
        dir.path(),
        3,
        &["--checkpoint-interval", "1", "--log-retention", "5"],
    )
    .await;
    cluster.form().await;
    for i in 0..300 {
        assert!(cluster
            .update(i % 3, &format!("INSERT DATA {{ {} }}", quad(i)))
            .await
            .status()
            .is_success());
    }
    cluster.converge(Duration::from_secs(20)).await;
    // All caught up: nothing needs remembering any more, whatever the database size.
    for i in 0..3 {
        wait_for("pruning", Duration::from_secs(10), async || {
            let s = cluster.status(i).await;
            s["registerEntries"] == 0 && s["logEntries"] == 0
        })
        .await;
    }

    // One member away: the others keep what it lacks.
    cluster.instances[2].stop();
    for i in 0..50 {
        assert!(cluster
            .update(i % 2, &format!("INSERT DATA {{ {} }}", quad(1000 + i)))
            .await
            .status()
            .is_success());
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let held = cluster.status(0).await;
    assert!(held["logEntries"].as_u64().unwrap() >= 50, "{held}");
    assert!(held["registerEntries"].as_u64().unwrap() >= 50, "{held}");

    // Away longer than the log is kept: the others let go of the log, and on its
    // return it is told it must be grown again. The register waits until it is
    // removed: a member that had not expired it could still relay its old writes.
    wait_for(
        "the log to be let go",
        Duration::from_secs(15),
        async || cluster.status(0).await["logEntries"] == 0,
    )
    .await;
    let expired = cluster.status(0).await;
    assert!(
        expired["registerEntries"].as_u64().unwrap() >= 50,
        "{expired}"
    );
    cluster.instances[2].start(false);
    wait_for(
        "the returning member to learn it must be re-grown",
        Duration::from_secs(15),
        async || {
            let s = cluster.status(2).await;
            s["instances"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["state"].as_str().unwrap_or("").contains("grow"))
        },
    )
    .await;
    let status = cluster.status(0).await;
    let away = status["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "node2")
        .unwrap()
        .clone();
    assert!(away["state"].as_str().unwrap().contains("grow"), "{status}");
    // Removed (by force: it cannot be asked what it holds), it holds nothing back.
    let response = cluster
        .client
        .put(cluster.instances[0].repo_url("/repl/remove"))
        .query(&[("instanceName", "node2"), ("force", "true")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204, "{}", response.text().await.unwrap());
    for i in 0..2 {
        wait_for(
            "the register to be let go",
            Duration::from_secs(15),
            async || cluster.status(i).await["registerEntries"] == 0,
        )
        .await;
    }
}

/// The state instance `from` shows for member `name`.
async fn state_of(cluster: &Cluster, from: usize, name: &str) -> String {
    let status = cluster.status(from).await;
    status["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .map(|m| m["state"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_silent_link_is_shown_disconnected_then_reconnects_and_converges() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = three(dir.path()).await;
    // The links between 0 and 1 stay open but deliver nothing (a half-open socket, a
    // paused peer, a black hole).
    cluster.stall(0, 1);
    let stalled = Instant::now();
    for i in 0..10 {
        assert!(cluster
            .update(0, &format!("INSERT DATA {{ {} }}", quad(400 + i)))
            .await
            .status()
            .is_success());
    }
    let mut seen = String::new();
    wait_for(
        "node1 to show node0 as disconnected",
        common::PATIENCE,
        async || {
            seen = state_of(&cluster, 1, "node0").await;
            seen.starts_with("disconnected: ")
        },
    )
    .await;
    eprintln!(
        "a stalled link shown as '{seen}' after {:?}",
        stalled.elapsed()
    );
    wait_for(
        "node0 to show node1 as disconnected",
        common::PATIENCE,
        async || {
            state_of(&cluster, 0, "node1")
                .await
                .starts_with("disconnected: ")
        },
    )
    .await;
    // Never "connected" again while stalled, and the others still are.
    for _ in 0..10 {
        assert!(state_of(&cluster, 1, "node0")
            .await
            .starts_with("disconnected"));
        assert_eq!(state_of(&cluster, 1, "node2").await, "connected");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Not "lag 0" either: node0 cannot know that node1 has its 10 writes.
    let status = cluster.status(0).await;
    let node1 = status["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "node1")
        .unwrap()
        .clone();
    assert!(
        node1["lastContactMsAgo"].as_u64().unwrap() >= 2_000,
        "{status}"
    );
    let metrics = cluster.metrics(1).await;
    let line = metrics
        .lines()
        .find(|l| l.starts_with("quadmesh_replication_peer_connected{") && l.contains("\"node0\""))
        .unwrap_or_else(|| panic!("no connected gauge for node0 in:\n{metrics}"));
    assert!(line.ends_with(" 0"), "{line}");

    let healed = Instant::now();
    cluster.heal(0, 1);
    wait_for(
        "node1 to reconnect to node0",
        Duration::from_secs(10),
        async || state_of(&cluster, 1, "node0").await == "connected",
    )
    .await;
    let took = cluster.converge(Duration::from_secs(20)).await;
    eprintln!(
        "healed: reconnected and converged {:?} after healing",
        healed.elapsed().max(took)
    );
    assert_eq!(cluster.export(1).await.lines().count(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_expired_member_refuses_writes_and_is_removed_only_by_force() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::launch(dir.path(), 3, &["--log-retention", "3"]).await;
    cluster.form().await;
    cluster.cut(0, 2);
    cluster.cut(1, 2);
    // Before it can know, node2 takes writes that only it holds.
    let response = cluster
        .update(2, &format!("INSERT DATA {{ {} }}", quad(700)))
        .await;
    assert!(response.status().is_success());
    // Once node2 shows the others as away longer than the log is kept, it knows it is
    // expired for them too: from then on, no write is acknowledged.
    wait_for(
        "node2 to see that it is cut off longer than the log is kept",
        Duration::from_secs(15),
        async || {
            state_of(&cluster, 2, "node0")
                .await
                .contains("longer than the log is kept")
        },
    )
    .await;
    let response = cluster
        .update(2, &format!("INSERT DATA {{ {} }}", quad(701)))
        .await;
    assert_eq!(response.status(), 409);
    assert_eq!(response.headers()["x-quadmesh-error"], "expired");
    let text = response.text().await.unwrap();
    assert!(text.contains("grow it again"), "{text}");
    let ready = cluster
        .client
        .get(cluster.instances[2].url("/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let status = cluster.status(2).await;
    assert!(status["writesRefused"].is_string(), "{status}");
    // Still refused after a restart.
    let mut cluster = cluster;
    cluster.instances[2].stop();
    cluster.instances[2].start(false);
    let response = cluster
        .update(2, &format!("INSERT DATA {{ {} }}", quad(702)))
        .await;
    assert_eq!(response.status(), 409);
    // The others go on.
    assert!(cluster
        .update(1, &format!("INSERT DATA {{ {} }}", quad(703)))
        .await
        .status()
        .is_success());

    // Removing it would discard its write: refused without force, with a reason.
    let remove = |force: bool| {
        cluster
            .client
            .put(cluster.instances[0].repo_url("/repl/remove"))
            .query(&[
                ("instanceName", "node2"),
                ("force", if force { "true" } else { "false" }),
            ])
            .send()
    };
    let response = remove(false).await.unwrap();
    assert_eq!(response.status(), 409);
    assert_eq!(response.headers()["x-quadmesh-error"], "unreplicated");
    let text = response.text().await.unwrap();
    assert!(text.contains("force"), "{text}");
    let status = cluster.status(0).await;
    assert_eq!(status["instances"].as_array().unwrap().len(), 3);
    let response = remove(true).await.unwrap();
    assert_eq!(response.status(), 204);
    let status = cluster.status(0).await;
    assert_eq!(status["instances"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn growing_into_a_repository_the_target_holds_changes_nothing_and_another_name_works() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::launch(dir.path(), 2, &[]).await;
    cluster.form_first(1).await;
    let new = &cluster.instances[1];
    let grow_into = |name: &'static str| {
        cluster
            .client
            .put(cluster.instances[0].repo_url("/repl/growCluster"))
            .query(&[
                ("host", new.host()),
                ("port", new.port.to_string()),
                ("name", name.to_string()),
                ("user", common::USER.to_string()),
                ("password", common::PASSWORD.to_string()),
                ("instanceName", new.name.clone()),
            ])
            .send()
    };
    // The target already holds a repository of that name: it refuses the snapshot,
    // keeps its repository as it was, and the new member is taken out again.
    common::success_text(
        cluster
            .client
            .put(new.url("/repositories/elsewhere"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    common::success_text(
        cluster
            .client
            .post(new.url("/repositories/elsewhere"))
            .form(&[("update", "INSERT DATA { <urn:mine> <urn:p> 1 }")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    let response = grow_into("elsewhere").await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(!status.is_success(), "{status}: {text}");
    assert!(text.contains("already exists"), "{text}");
    let at_controlling = cluster.status(0).await;
    assert_eq!(
        at_controlling["instances"].as_array().unwrap().len(),
        1,
        "{at_controlling}"
    );
    let size = common::success_text(
        cluster
            .client
            .get(new.url("/repositories/elsewhere/size"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(size.trim(), "1");

    // Under a name it does not hold, it works, through the same network of proxies.
    let response = grow_into("grown-here").await.unwrap();
    assert_eq!(response.status(), 204, "{}", response.text().await.unwrap());
    let at_controlling = cluster.status(0).await;
    assert_eq!(
        at_controlling["instances"][1]["repository"], "grown-here",
        "{at_controlling}"
    );
    assert!(cluster
        .update(0, "INSERT DATA { <urn:grown> <urn:p> 1 }")
        .await
        .status()
        .is_success());
    wait_for(
        "the write at the grown instance",
        common::PATIENCE,
        async || {
            let answer = cluster
                .client
                .get(new.url("/repositories/grown-here"))
                .query(&[("query", "ASK { <urn:grown> <urn:p> 1 }")])
                .header("accept", "application/sparql-results+json")
                .send()
                .await
                .unwrap();
            answer.status().is_success()
                && answer.json::<serde_json::Value>().await.unwrap()["boolean"] == true
        },
    )
    .await;
}

/// Writes with `durability=max` at `instance` until `stop`; returns the values of those
/// acknowledged as held by every member.
async fn durable_writes(
    cluster: std::sync::Arc<Cluster>,
    instance: usize,
    first: usize,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<usize> {
    let mut durable = Vec::new();
    let mut value = first;
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        value += 1;
        let response = cluster
            .client
            .post(cluster.instances[instance].repo_url(""))
            .header(
                "x-repl-settings",
                "durability=max distributedTransactionTimeout=0.3",
            )
            .form(&[("update", format!("INSERT DATA {{ {} }}", quad(value)))])
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
        if response.headers().get("x-durability").is_none() {
            durable.push(value);
        }
    }
    durable
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn durability_max_right_after_a_grow_counts_the_new_member() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = std::sync::Arc::new(Cluster::launch(dir.path(), 3, &[]).await);
    cluster.form_first(2).await;
    // node2 will hold exactly its snapshot: it cannot pull from anyone.
    cluster.proxies[2][0].as_ref().unwrap().cut();
    cluster.proxies[2][1].as_ref().unwrap().cut();
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    // At the controlling instance, writes go on while it grows the cluster: each is
    // committed before the new configuration (and is in the snapshot) or after it.
    let mut writers = Vec::new();
    for writer in 0..3 {
        writers.push(tokio::spawn(durable_writes(
            cluster.clone(),
            0,
            10_000 * (writer + 1),
            stop.clone(),
        )));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let grow = {
        let cluster = cluster.clone();
        tokio::spawn(async move { cluster.grow(2).await })
    };
    // At a copy, writes from the moment its repository has the configuration that adds
    // node2 (as its data directory shows): each is committed under that configuration.
    let config_file = cluster.instances[1]
        .data_dir
        .join("repositories")
        .join(Cluster::REPO)
        .join("cluster.json");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let members = std::fs::read(&config_file)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
            .and_then(|state| state["config"]["members"].as_array().map(|m| m.len()));
        if members == Some(3) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node1 never got the new configuration"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let stop_copy = std::sync::Arc::new(AtomicBool::new(false));
    for writer in 0..3 {
        writers.push(tokio::spawn(durable_writes(
            cluster.clone(),
            1,
            50_000 + 10_000 * writer,
            stop_copy.clone(),
        )));
    }
    grow.await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    stop.store(true, Ordering::SeqCst);
    stop_copy.store(true, Ordering::SeqCst);
    let mut durable = Vec::new();
    for writer in writers {
        durable.extend(writer.await.unwrap());
    }
    // Every write acknowledged as held by every member is on every member, the new
    // one included.
    let export = cluster.export(2).await;
    let absent: Vec<usize> = durable
        .iter()
        .copied()
        .filter(|v| !export.contains(&format!("\"{v}\"")))
        .collect();
    eprintln!(
        "{} writes acknowledged with durability=max around a grow; {} of them absent from the new member",
        durable.len(),
        absent.len()
    );
    assert!(
        absent.is_empty(),
        "acknowledged as held by all, absent from node2: {absent:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_controlling_role_moves_and_only_the_new_holder_changes_membership() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = three(dir.path()).await;
    // A member that cannot confirm the change is not handed the role (it would control
    // a cluster without knowing it): refused, nothing changed.
    let before = cluster.status(0).await["configVersion"].clone();
    cluster.cut(0, 2);
    cluster.cut(1, 2);
    let response = cluster
        .client
        .put(cluster.instances[0].repo_url("/repl/setControlling"))
        .query(&[("instanceName", "node2")])
        .send()
        .await
        .unwrap();
    let status_code = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status_code, 503, "{text}");
    assert!(
        text.contains("'node2'") && text.contains("nothing was changed"),
        "{text}"
    );
    for i in 0..2 {
        assert_eq!(cluster.status(i).await["configVersion"], before);
    }
    cluster.heal(0, 2);
    cluster.heal(1, 2);
    let response = cluster
        .client
        .put(cluster.instances[0].repo_url("/repl/setControlling"))
        .query(&[("instanceName", "node1")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204, "{}", response.text().await.unwrap());
    for i in 0..3 {
        wait_for(
            "every instance knows",
            Duration::from_secs(10),
            async || {
                let status = cluster.status(i).await;
                let controlling: Vec<&serde_json::Value> = status["instances"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|m| m["role"] == "controlling")
                    .collect();
                controlling.len() == 1 && controlling[0]["name"] == "node1"
            },
        )
        .await;
    }
    // The old holder refuses membership changes, naming the new one.
    let response = cluster
        .client
        .put(cluster.instances[0].repo_url("/repl/remove"))
        .query(&[("instanceName", "node2"), ("force", "true")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 409);
    assert_eq!(response.headers()["x-quadmesh-error"], "not_controlling");
    assert!(response.text().await.unwrap().contains("node1"));
    // The new one makes them; data flows on.
    let response = cluster
        .client
        .put(cluster.instances[1].repo_url("/repl/remove"))
        .query(&[("instanceName", "node2"), ("force", "true")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204, "{}", response.text().await.unwrap());
    assert!(cluster
        .update(0, "INSERT DATA { <urn:moved> <urn:p> 1 }")
        .await
        .status()
        .is_success());
    wait_for(
        "the write reaches node1",
        Duration::from_secs(10),
        async || cluster.export(1).await.contains("urn:moved"),
    )
    .await;
}

/// A grow whose snapshot cannot be handed over (here: the new server refuses the
/// credentials) takes the new member out again, as a membership change like any other:
/// confirmed by a change quorum, so every member ends without it. When too few members
/// can confirm the undo, the grow says so, naming the member to remove, instead of
/// leaving a configuration change in force that nobody confirmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_grow_is_undone_on_every_member() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::launch(dir.path(), 3, &[]).await;
    cluster.form_first(2).await;
    let grow_with_a_wrong_password = async || {
        let new = &cluster.instances[2];
        cluster
            .client
            .put(cluster.instances[0].repo_url("/repl/growCluster"))
            .query(&[
                ("host", new.host()),
                ("port", new.port.to_string()),
                ("name", Cluster::REPO.to_string()),
                ("user", common::USER.to_string()),
                ("password", "not-the-password".to_string()),
                ("instanceName", new.name.clone()),
            ])
            .send()
            .await
            .unwrap()
    };
    let names = |status: &serde_json::Value| -> Vec<String> {
        status["instances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap().to_string())
            .collect()
    };

    // node1 cannot be reached: the three-member configuration cannot confirm its undo.
    cluster.cut(0, 1);
    let response = grow_with_a_wrong_password().await;
    assert_eq!(response.status(), 503);
    let text = response.text().await.unwrap();
    assert!(
        text.contains("could not be taken out again") && text.contains("node2"),
        "{text}"
    );
    cluster.heal(0, 1);
    // It never got anything: removing it by force discards nothing.
    let response = cluster
        .client
        .put(cluster.instances[0].repo_url("/repl/remove"))
        .query(&[("instanceName", "node2"), ("force", "true")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204, "{}", response.text().await.unwrap());
    // Nor does the cluster wait for it: its server holds no copy of the repository,
    // so the hand-over a forced removal starts ends at once (seen before: it stayed
    // listed until the log's retention passed, holding the frontier; and its end, a
    // configuration change, came whenever the check ran).
    wait_for(
        "the hand-over of a member that never got the repository to end",
        Duration::from_secs(20),
        async || {
            let status = cluster.status(0).await;
            status["handingOver"]
                .as_array()
                .is_some_and(|h| h.is_empty())
        },
    )
    .await;
    cluster.settle(2).await;

    // Every member reachable: the grow fails and is undone everywhere.
    let before = cluster.status(0).await["configVersion"].as_u64().unwrap();
    let response = grow_with_a_wrong_password().await;
    assert!(
        response.status().is_client_error() || response.status().is_server_error(),
        "{}",
        response.status()
    );
    let text = response.text().await.unwrap();
    assert!(!text.contains("could not be taken out again"), "{text}");
    for index in 0..2 {
        let status = cluster.status(index).await;
        assert_eq!(names(&status), vec!["node0", "node1"], "{status}");
        assert!(
            status["configVersion"].as_u64().unwrap() > before,
            "the undo is a newer configuration: {status}"
        );
    }
    cluster.settle(2).await;
    let response = cluster
        .update(1, &format!("INSERT DATA {{ {} }}", quad(1)))
        .await;
    assert!(response.status().is_success());
    wait_for(
        "the write to reach node0",
        Duration::from_secs(20),
        async || cluster.export(0).await.lines().count() == 1,
    )
    .await;
    // And it grows properly afterwards.
    cluster.grow(2).await;
    cluster.settle(3).await;
    assert_eq!(cluster.export(2).await.lines().count(), 1);
}

/// Issue 25, case 3: a member cut off longer than the log retention. Seen before: it
/// acknowledged writes all the while, was expired, and `remove --force` discarded them.
/// Now it stops acknowledging once its clock lease (half the retention) runs out, and
/// once it is heard again the others take over what only it held: removing it needs no
/// force and loses nothing it acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_expired_member_hands_over_what_it_acknowledged_before_it_is_removed() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::launch(dir.path(), 3, &["--log-retention", "8"]).await;
    cluster.form().await;
    cluster.cut(0, 2);
    cluster.cut(1, 2);
    let cut_at = Instant::now();
    let mut acknowledged = Vec::new();
    let mut last_acknowledged = Duration::ZERO;
    let mut refused = 0;
    let mut i = 0;
    while cut_at.elapsed() < Duration::from_secs(7) {
        let q = quad(900 + i);
        i += 1;
        let response = cluster.update(2, &format!("INSERT DATA {{ {q} }}")).await;
        let status = response.status();
        if status.is_success() {
            acknowledged.push(q);
            last_acknowledged = cut_at.elapsed();
        } else {
            let code = response.headers()["x-quadmesh-error"]
                .to_str()
                .unwrap()
                .to_owned();
            assert_eq!(status, 503, "{}", response.text().await.unwrap());
            assert_eq!(code, "clock_fenced");
            refused += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !acknowledged.is_empty(),
        "node2 acknowledged nothing while cut off"
    );
    assert!(
        refused > 0,
        "node2 never stopped acknowledging while cut off"
    );
    // The lease is 4 s from the last clock sample of a majority (taken before the cut).
    assert!(
        last_acknowledged < Duration::from_secs(6),
        "node2 acknowledged a write {last_acknowledged:?} after the cut"
    );
    wait_for(
        "node0 to expire node2",
        Duration::from_secs(30),
        async || {
            state_of(&cluster, 0, "node2")
                .await
                .contains("longer than the log is kept")
        },
    )
    .await;
    wait_for(
        "node2 to know it was expired",
        Duration::from_secs(30),
        async || {
            cluster.status(2).await["writesRefused"]
                .as_str()
                .is_some_and(|w| w.contains("longer than the log is kept"))
        },
    )
    .await;
    cluster.heal(0, 2);
    cluster.heal(1, 2);
    wait_for(
        "node0 and node1 to take over every write node2 acknowledged",
        Duration::from_secs(30),
        async || {
            let (a, b) = (cluster.export(0).await, cluster.export(1).await);
            acknowledged.iter().all(|q| {
                a.lines().any(|l| l.starts_with(q.as_str()))
                    && b.lines().any(|l| l.starts_with(q.as_str()))
            })
        },
    )
    .await;
    // Nothing only node2 holds any more: removed without force.
    let response = cluster
        .client
        .put(cluster.instances[0].repo_url("/repl/remove"))
        .query(&[("instanceName", "node2")])
        .send()
        .await
        .unwrap();
    let status = response.status();
    assert_eq!(status, 204, "{}", response.text().await.unwrap());
    let still = cluster
        .update(1, &format!("INSERT DATA {{ {} }}", quad(999)))
        .await;
    assert!(still.status().is_success());
    for node in [0, 1] {
        let export = cluster.export(node).await;
        for q in &acknowledged {
            assert!(
                export.lines().any(|l| l.starts_with(q.as_str())),
                "node{node} lost {q}"
            );
        }
    }
}

/// Removing a member while it takes writes as fast as it can: the controlling instance
/// must not judge by the member's last report (which may predate its latest writes).
/// Every write the removed member acknowledged is held by the members that remain;
/// while it is held for the removal it refuses writes (503 `leaving`), then as removed
/// (409 `removed`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn removing_a_member_that_is_taking_writes_loses_none_it_acknowledged() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::launch(dir.path(), 3, &[]).await;
    cluster.form().await;
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let url = cluster.instances[2].repo_url("");
            let client = cluster.client.http.clone();
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                for i in 0.. {
                    let subject = format!("{EX}r{w}-{i}");
                    let response = client
                        .post(url.clone())
                        .basic_auth(common::USER, Some(common::PASSWORD))
                        .form(&[(
                            "update",
                            format!("INSERT DATA {{ <{subject}> <{EX}p> {i} }}"),
                        )])
                        .send()
                        .await
                        .unwrap();
                    let code = response
                        .headers()
                        .get("x-quadmesh-error")
                        .map(|v| v.to_str().unwrap().to_owned());
                    match response.status().as_u16() {
                        200 | 204 => acknowledged.push(subject),
                        503 => assert_eq!(code.as_deref(), Some("leaving")),
                        409 => {
                            assert_eq!(code.as_deref(), Some("removed"));
                            break;
                        }
                        other => panic!("{other}: {}", response.text().await.unwrap()),
                    }
                }
                acknowledged
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let response = cluster
        .client
        .put(cluster.instances[0].repo_url("/repl/remove"))
        .query(&[("instanceName", "node2")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204, "{}", response.text().await.unwrap());
    let mut acknowledged = Vec::new();
    for writer in writers {
        acknowledged.append(&mut writer.await.unwrap());
    }
    assert!(acknowledged.len() > 20, "{} writes", acknowledged.len());
    // The removal waited until the remaining members held all of it between them; the
    // two exchange what one has and the other lacks.
    cluster.instances[2].kill();
    cluster.converge(Duration::from_secs(30)).await;
    for i in 0..2 {
        let export = cluster.export(i).await;
        let lost: Vec<&String> = acknowledged
            .iter()
            .filter(|s| !export.contains(&format!("<{s}>")))
            .collect();
        assert!(
            lost.is_empty(),
            "instance {i} lacks {} of the {} writes the removed member acknowledged: {:?}",
            lost.len(),
            acknowledged.len(),
            &lost[..lost.len().min(5)]
        );
    }
}

/// A member removed by force while cut off acknowledged writes nobody else held (it did
/// not know it was removed, and its clock lease had not run out). When it is heard
/// again it hands them over: every write it acknowledged reaches the members, the
/// cluster holds its frontier for it meanwhile (status and metric say so), and stops
/// waiting once it holds them all. Before, the forced removal discarded them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_removed_by_force_while_cut_off_hands_over_what_it_acknowledged() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = three(dir.path()).await;
    cluster.cut(0, 2);
    cluster.cut(1, 2);
    let mut acknowledged = Vec::new();
    let mut write_at_node2 = async |i: usize| {
        let update = format!("INSERT DATA {{ <urn:cut:{i}> <urn:p> {i} }}");
        if cluster.update(2, &update).await.status().is_success() {
            acknowledged.push(i);
        }
    };
    for i in 0..5 {
        write_at_node2(i).await;
    }
    let response = cluster
        .client
        .put(cluster.instances[0].repo_url("/repl/remove"))
        .query(&[("instanceName", "node2"), ("force", "true")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204, "{}", response.text().await.unwrap());
    let status = cluster.status(0).await;
    assert_eq!(status["handingOver"][0]["name"], "node2", "{status}");
    assert!(cluster
        .metrics(0)
        .await
        .contains("quadmesh_replication_handing_over{repository=\"shared\"} 1"));
    // Still cut off, it does not know: it acknowledges more.
    for i in 5..8 {
        write_at_node2(i).await;
    }
    assert!(
        acknowledged.len() >= 5,
        "node2 refused writes while cut off: {acknowledged:?}"
    );
    cluster.heal(0, 2);
    cluster.heal(1, 2);
    wait_for(
        "every write node2 acknowledged at node0 and node1",
        Duration::from_secs(30),
        async || {
            for i in 0..2 {
                let export = cluster.export(i).await;
                if !acknowledged
                    .iter()
                    .all(|n| export.contains(&format!("<urn:cut:{n}>")))
                {
                    return false;
                }
            }
            true
        },
    )
    .await;
    wait_for(
        "the cluster stops waiting for node2",
        Duration::from_secs(30),
        async || {
            let (a, b) = (cluster.status(0).await, cluster.status(1).await);
            a["handingOver"].as_array().is_some_and(|h| h.is_empty())
                && b["handingOver"].as_array().is_some_and(|h| h.is_empty())
        },
    )
    .await;
    // It knows it was removed: it takes no more writes.
    let response = cluster
        .update(2, "INSERT DATA { <urn:after> <urn:p> 1 }")
        .await;
    assert!(!response.status().is_success(), "{}", response.status());
}
