//! Anti-entropy with real server processes: instances compare content digests at a
//! common version vector, so a replica whose store was damaged behind quadmesh's back
//! is reported (status, metrics, readiness) instead of hiding behind "lag 0", and then
//! repaired from a peer without an operator.

mod common;

use common::cluster::Cluster;
use common::wait_for;
use oxigraph::model::{GraphName, Literal, NamedNode, Quad};
use std::time::Duration;

const EX: &str = "http://example.org/";

fn comparison<'a>(status: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    &status["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == name)
        .unwrap()["contents"]["result"]
}

async fn ready(cluster: &Cluster, i: usize) -> u16 {
    cluster
        .client
        .http
        .get(cluster.instances[i].url("/ready"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_damaged_replica_is_reported_taken_out_of_service_and_repaired() {
    let dir = tempfile::tempdir().unwrap();
    // Frequent checkpoints: the damaged quad is then older than the last one, so no
    // replay of the log can put it back. Repair is off at first, to see the report.
    let mut cluster = Cluster::launch(
        dir.path(),
        3,
        &["--checkpoint-interval", "1", "--no-auto-repair"],
    )
    .await;
    cluster.form().await;
    for i in 0..20 {
        let response = cluster
            .update(
                i % 3,
                &format!("INSERT DATA {{ <{EX}s{i}> <{EX}p> \"v{i}\" }}"),
            )
            .await;
        assert!(response.status().is_success());
    }
    cluster.converge(Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // Healthy: every instance agrees with every peer at a common version vector.
    for i in 0..3 {
        wait_for("agreement", Duration::from_secs(10), async || {
            let status = cluster.status(i).await;
            status["diverged"] == false
                && status["instances"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|m| m["state"] != "self")
                    .all(|m| m["contents"]["result"] == "agrees")
        })
        .await;
    }

    // A stop, and a quad lost from node2's store behind quadmesh's back (a damaged
    // disk, a bad restore): its log and version vector still say it has everything;
    // and a quad it never had, appeared.
    cluster.instances[2].stop();
    let stray = Quad::new(
        NamedNode::new(format!("{EX}stray")).unwrap(),
        NamedNode::new(format!("{EX}p")).unwrap(),
        Literal::new_simple_literal("never written"),
        GraphName::NamedNode(NamedNode::new(format!("{EX}g")).unwrap()),
    );
    {
        let store_dir = cluster.instances[2]
            .data_dir
            .join("repositories")
            .join(Cluster::REPO)
            .join("store");
        let store = oxigraph::store::Store::open(&store_dir).unwrap();
        let lost = Quad::new(
            NamedNode::new(format!("{EX}s7")).unwrap(),
            NamedNode::new(format!("{EX}p")).unwrap(),
            Literal::new_simple_literal("v7"),
            GraphName::DefaultGraph,
        );
        assert!(store.contains(&lost).unwrap());
        store.remove(&lost).unwrap();
        store.insert(&stray).unwrap();
        store.flush().unwrap();
    }
    let instance = &mut cluster.instances[2];
    tokio::task::block_in_place(|| instance.start(false));

    wait_for(
        "node2 to report the divergence",
        Duration::from_secs(15),
        async || {
            let status = cluster.status(2).await;
            status["diverged"] == true
                && comparison(&status, "node0") == "differs"
                && comparison(&status, "node1") == "differs"
        },
    )
    .await;
    wait_for("node0 to see node2 differ", common::PATIENCE, async || {
        comparison(&cluster.status(0).await, "node2") == "differs"
    })
    .await;
    // Lag says nothing is missing; the content comparison says otherwise.
    let status = cluster.status(0).await;
    let node2 = status["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "node2")
        .unwrap();
    assert_eq!(node2["lagTransactions"], 0, "{status}");
    assert_eq!(comparison(&status, "node2"), "differs", "{status}");
    assert_eq!(comparison(&status, "node1"), "agrees", "{status}");

    // The odd one out is taken out of service; the majority stays ready.
    wait_for("node2 not ready", Duration::from_secs(10), async || {
        ready(&cluster, 2).await == 503
    })
    .await;
    assert_eq!(ready(&cluster, 0).await, 200);
    assert_eq!(ready(&cluster, 1).await, 200);

    let metrics = cluster.metrics(0).await;
    assert!(
        metrics.contains(&format!(
            "quadmesh_replication_contents_differ{{repository=\"{0}\",peer=\"node2\",peer_repository=\"{0}\"}} 1",
            Cluster::REPO
        )),
        "{metrics}"
    );

    let status = cluster.status(2).await;
    assert_eq!(status["storeDamaged"], true, "{status}");

    // Writes go on meanwhile, everywhere, node2 included (its log is sound).
    for i in 20..30 {
        let response = cluster
            .update(
                i % 3,
                &format!("INSERT DATA {{ <{EX}s{i}> <{EX}p> \"v{i}\" }}"),
            )
            .await;
        assert!(response.status().is_success());
    }

    // With repair on, node2 repairs itself from a peer: back in service, the same
    // contents as every other instance, nothing acknowledged lost.
    let instance = &mut cluster.instances[2];
    instance.stop();
    instance.extra.retain(|a| a != "--no-auto-repair");
    tokio::task::block_in_place(|| instance.start(false));
    wait_for("node2 repaired", Duration::from_secs(30), async || {
        let status = cluster.status(2).await;
        status["diverged"] == false && status["storeDamaged"] == false
    })
    .await;
    wait_for("node2 ready again", Duration::from_secs(10), async || {
        ready(&cluster, 2).await == 200
    })
    .await;
    cluster.converge(Duration::from_secs(20)).await;
    let exports: Vec<String> = futures::future::join_all((0..3).map(|i| cluster.export(i))).await;
    let sorted = |export: &str| {
        let mut lines: Vec<&str> = export.lines().collect();
        lines.sort();
        lines.join("\n")
    };
    assert_eq!(sorted(&exports[2]), sorted(&exports[0]));
    assert_eq!(sorted(&exports[1]), sorted(&exports[0]));
    for i in 0..30 {
        assert!(
            exports[2].contains(&format!("<{EX}s{i}> <{EX}p> \"v{i}\"")),
            "node2 lacks s{i}"
        );
    }
    assert!(!exports[2].contains("never written"), "{}", exports[2]);
    for i in 0..3 {
        wait_for("contents agree", Duration::from_secs(10), async || {
            let status = cluster.status(i).await;
            status["instances"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| m["state"] != "self")
                .all(|m| m["contents"]["result"] == "agrees")
        })
        .await;
    }
    let metrics = cluster.metrics(2).await;
    assert!(
        metrics.contains("quadmesh_replication_repairs_total{result=\"done\"} 1"),
        "{metrics}"
    );
}
