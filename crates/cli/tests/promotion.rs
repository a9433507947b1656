//! Promotion of a copy when the controlling instance is gone for good, with real
//! processes and cuttable links: a majority of the members must grant it, membership
//! changes need confirmations that a promotion's majority always meets, and an old
//! controlling instance that comes back learns from replication that it is no longer
//! controlling. Every write acknowledged along the way holds on every instance.

mod common;

use common::cluster::Cluster;
use common::{binary, wait_for, Client, PASSWORD, USER};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Writes one triple at a time to `url` until told to stop; returns the subjects of the
/// writes acknowledged (failed or timed-out ones are indeterminate and not counted).
fn writer(url: String, tag: String, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<Vec<String>> {
    tokio::spawn(async move {
        let client = Client::default();
        let mut acknowledged = Vec::new();
        let mut i = 0;
        while !stop.load(Ordering::SeqCst) {
            let subject = format!("<http://example.org/{tag}-{i}>");
            let sent = client
                .post(url.clone())
                .form(&[(
                    "update",
                    format!("INSERT DATA {{ {subject} <http://example.org/p> {i} }}"),
                )])
                .timeout(Duration::from_secs(5))
                .send()
                .await;
            if sent.is_ok_and(|r| r.status().is_success()) {
                acknowledged.push(subject);
            }
            i += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        acknowledged
    })
}

async fn put(cluster: &Cluster, at: usize, path: &str, query: &[(&str, String)]) -> (u16, String) {
    let response = cluster
        .client
        .put(cluster.instances[at].repo_url(path))
        .query(query)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

async fn grow_via(cluster: &Cluster, at: usize, new: usize) -> (u16, String) {
    let instance = &cluster.instances[new];
    put(
        cluster,
        at,
        "/repl/growCluster",
        &[
            ("host", instance.host()),
            ("port", instance.port.to_string()),
            ("name", Cluster::REPO.to_string()),
            ("user", USER.to_string()),
            ("password", PASSWORD.to_string()),
            ("instanceName", instance.name.clone()),
        ],
    )
    .await
}

async fn remove_via(cluster: &Cluster, at: usize, name: &str) -> (u16, String) {
    put(
        cluster,
        at,
        "/repl/remove",
        &[("instanceName", name.to_string()), ("force", "true".into())],
    )
    .await
}

/// The controlling member and the epoch in instance `i`'s configuration.
async fn controlling_seen_by(cluster: &Cluster, i: usize) -> (String, u64, u64) {
    let status = cluster.status(i).await;
    let controlling = status["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "controlling")
        .map(|m| m["name"].as_str().unwrap().to_owned())
        .unwrap_or_default();
    (
        controlling,
        status["configEpoch"].as_u64().unwrap(),
        status["configVersion"].as_u64().unwrap(),
    )
}

/// Every acknowledged write is held by every running instance.
async fn assert_all_held(cluster: &Cluster, acknowledged: &[String]) {
    cluster.converge(Duration::from_secs(60)).await;
    for instance in cluster.instances.iter().filter(|i| i.is_running()) {
        let export = cluster.export(instance.index).await;
        let missing: Vec<&String> = acknowledged
            .iter()
            .filter(|s| !export.contains(&format!("{s} ")))
            .collect();
        assert!(
            missing.is_empty(),
            "{} lacks {} acknowledged writes, e.g. {:?}",
            instance.name,
            missing.len(),
            missing.first()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_copy_is_promoted_when_the_controlling_instance_is_gone_and_grows_and_shrinks_the_cluster(
) {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::launch(dir.path(), 4, &[]).await;
    cluster.form_first(3).await;
    let stop = Arc::new(AtomicBool::new(false));
    let early = writer(
        cluster.instances[0].repo_url(""),
        "early".into(),
        stop.clone(),
    );
    let mut writers = vec![
        writer(cluster.instances[1].repo_url(""), "w1".into(), stop.clone()),
        writer(cluster.instances[2].repo_url(""), "w2".into(), stop.clone()),
    ];
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The controlling instance's own writes are taken in before it goes for good (what
    // only it held would go with it: replication is asynchronous).
    stop.store(true, Ordering::SeqCst);
    let mut acknowledged = early.await.unwrap();
    for w in writers.drain(..) {
        acknowledged.extend(w.await.unwrap());
    }
    // (node3 runs, but is no member yet: `converge` would ask it for its status.)
    wait_for(
        "the first three converge",
        Duration::from_secs(30),
        async || {
            let first = cluster.export(0).await;
            first == cluster.export(1).await && first == cluster.export(2).await
        },
    )
    .await;
    stop.store(false, Ordering::SeqCst);
    writers.push(writer(
        cluster.instances[1].repo_url(""),
        "x1".into(),
        stop.clone(),
    ));
    writers.push(writer(
        cluster.instances[2].repo_url(""),
        "x2".into(),
        stop.clone(),
    ));

    let mut cluster = cluster;
    cluster.instances[0].kill();
    // Not the controlling instance: it cannot grow the cluster.
    let (status, text) = grow_via(&cluster, 1, 3).await;
    assert_eq!(status, 409, "{text}");
    // The promotion, through the command line: node1 and node2 grant it (2 of 3).
    let node1 = &cluster.instances[1];
    let spec = format!(
        "{USER}:{PASSWORD}@{}:{}/{}",
        node1.ip,
        node1.port,
        Cluster::REPO
    );
    let output = std::process::Command::new(binary())
        .args(["repl", "promote", &spec])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        said.contains("node1 is now the controlling instance (epoch 1"),
        "{said}"
    );
    for i in [1, 2] {
        wait_for("node2 knows", Duration::from_secs(10), async || {
            let (controlling, epoch, _) = controlling_seen_by(&cluster, i).await;
            controlling == "node1" && epoch == 1
        })
        .await;
    }
    // A second promotion of the same member is refused: it controls already.
    let (status, text) = put(&cluster, 1, "/repl/promote", &[]).await;
    assert_eq!(status, 409, "{text}");

    // The cluster grows and shrinks through the promoted instance (node2 confirms).
    let (status, text) = grow_via(&cluster, 1, 3).await;
    assert_eq!(status, 204, "{text}");
    writers.push(writer(
        cluster.instances[3].repo_url(""),
        "x3".into(),
        stop.clone(),
    ));
    let (status, text) = remove_via(&cluster, 1, "node0").await;
    assert_eq!(status, 204, "{text}");
    for i in 1..4 {
        wait_for(
            "every member has the new configuration",
            Duration::from_secs(10),
            async || {
                let status = cluster.status(i).await;
                let names: Vec<&str> = status["instances"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| m["name"].as_str().unwrap())
                    .collect();
                names == ["node1", "node2", "node3"]
            },
        )
        .await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        acknowledged.extend(w.await.unwrap());
    }
    assert!(
        acknowledged.len() > 50,
        "too few writes: {}",
        acknowledged.len()
    );
    assert_all_held(&cluster, &acknowledged).await;

    // The old controlling instance comes back after all: it learns it was removed and
    // changes nothing.
    cluster.instances[0].start(true);
    wait_for(
        "node0 learns it was removed",
        Duration::from_secs(20),
        async || cluster.status(0).await["removed"] == true,
    )
    .await;
    let (status, text) = remove_via(&cluster, 0, "node2").await;
    assert_eq!(status, 409, "{text}");
    assert!(text.contains("removed"), "{text}");
    let (status, text) = put(&cluster, 0, "/repl/promote", &[]).await;
    assert_eq!(status, 409, "{text}");
    assert_eq!(controlling_seen_by(&cluster, 2).await.0, "node1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_partition_during_promotion_leaves_exactly_one_instance_accepting_membership_changes() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::launch(dir.path(), 5, &[]).await;
    cluster.form_first(3).await;
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Mutex<Vec<_>> = Mutex::new(
        (0..3)
            .map(|i| {
                writer(
                    cluster.instances[i].repo_url(""),
                    format!("w{i}"),
                    stop.clone(),
                )
            })
            .collect(),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;

    // A member alone on its side of a partition is not promoted (1 of 3), and nothing
    // changes; the epoch it tried is remembered by itself only.
    cluster.cut(2, 0);
    cluster.cut(2, 1);
    let (status, text) = put(&cluster, 2, "/repl/promote", &[]).await;
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("needs 2 of the 3 members"), "{text}");
    assert_eq!(
        controlling_seen_by(&cluster, 2).await,
        ("node0".into(), 0, 3)
    );
    cluster.heal(2, 0);
    cluster.heal(2, 1);

    // node0, the controlling instance, alone on one side; node1 and node2 on the other,
    // where node1 is promoted (node2 grants it, above the epoch it tried for itself).
    cluster.cut(0, 1);
    cluster.cut(0, 2);
    let (status, text) = put(&cluster, 1, "/repl/promote", &[]).await;
    assert_eq!(status, 200, "{text}");
    let promoted = controlling_seen_by(&cluster, 1).await;
    assert_eq!((promoted.0.as_str(), promoted.1), ("node1", 2), "{text}");
    // The old controlling instance still believes it controls, but can change nothing:
    // node1 and node2 promised epoch 2, and it cannot reach them anyway.
    assert_eq!(
        controlling_seen_by(&cluster, 0).await,
        ("node0".into(), 0, 3)
    );
    let (status, text) = grow_via(&cluster, 0, 3).await;
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("needs 2 of the 3 members"), "{text}");
    let (status, text) = remove_via(&cluster, 0, "node2").await;
    assert_eq!(status, 503, "{text}");
    assert_eq!(
        controlling_seen_by(&cluster, 0).await.2,
        3,
        "nothing was written"
    );
    // A copy cannot either; the promoted one can.
    let (status, text) = grow_via(&cluster, 2, 3).await;
    assert_eq!(status, 409, "{text}");
    let (status, text) = grow_via(&cluster, 1, 3).await;
    assert_eq!(status, 204, "{text}");
    writers.lock().unwrap().push(writer(
        cluster.instances[3].repo_url(""),
        "w3".into(),
        stop.clone(),
    ));

    // Even with the links back, node0 can no longer change the membership: it learns
    // the newer configuration from the others and is a copy from then on.
    cluster.heal(0, 1);
    cluster.heal(0, 2);
    wait_for(
        "node0 learns it was replaced",
        Duration::from_secs(20),
        async || controlling_seen_by(&cluster, 0).await.0 == "node1",
    )
    .await;
    let metrics = cluster.metrics(0).await;
    assert!(
        metrics.contains("quadmesh_replication_controlling{repository=\"shared\"} 0")
            && metrics.contains("quadmesh_replication_config_epoch{repository=\"shared\"} 2"),
        "{metrics}"
    );
    assert!(cluster
        .metrics(1)
        .await
        .contains("quadmesh_replication_controlling{repository=\"shared\"} 1"));
    let (status, text) = grow_via(&cluster, 0, 4).await;
    assert_eq!(status, 409, "{text}");
    assert!(text.contains("node1"), "{text}");
    let (status, text) = grow_via(&cluster, 1, 4).await;
    assert_eq!(status, 204, "{text}");
    for i in 0..5 {
        wait_for(
            "one controlling instance everywhere",
            Duration::from_secs(20),
            async || {
                let (controlling, epoch, version) = controlling_seen_by(&cluster, i).await;
                let newest = controlling_seen_by(&cluster, 1).await;
                (controlling.as_str(), epoch, version) == ("node1", 2, newest.2)
            },
        )
        .await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    let mut acknowledged = Vec::new();
    for w in writers.into_inner().unwrap() {
        acknowledged.extend(w.await.unwrap());
    }
    assert!(
        acknowledged.len() > 50,
        "too few writes: {}",
        acknowledged.len()
    );
    assert_all_held(&cluster, &acknowledged).await;
}
