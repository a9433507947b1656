//! Anti-entropy with real server processes: instances compare content digests at a
//! common version vector, so a replica whose store was damaged behind quadmesh's back
//! is reported (status, metrics, readiness) instead of hiding behind "lag 0".

mod common;

use common::cluster::Cluster;
use common::wait_for;
use quadmesh_store::oxigraph::model::{GraphName, Literal, NamedNode, Quad};
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_damaged_replica_is_reported_and_taken_out_of_service() {
    let dir = tempfile::tempdir().unwrap();
    // Frequent checkpoints: the damaged quad is then older than the last one, so no
    // replay of the log can put it back.
    let mut cluster = Cluster::launch(dir.path(), 3, &["--checkpoint-interval", "1"]).await;
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
    // disk, a bad restore): its log and version vector still say it has everything.
    cluster.instances[2].stop();
    {
        let store_dir = cluster.instances[2]
            .data_dir
            .join("repositories")
            .join(Cluster::REPO)
            .join("store");
        let store = quadmesh_store::oxigraph::store::Store::open(&store_dir).unwrap();
        let lost = Quad::new(
            NamedNode::new(format!("{EX}s7")).unwrap(),
            NamedNode::new(format!("{EX}p")).unwrap(),
            Literal::new_simple_literal("v7"),
            GraphName::DefaultGraph,
        );
        assert!(store.contains(&lost).unwrap());
        store.remove(&lost).unwrap();
        store.flush().unwrap();
    }
    let instance = &mut cluster.instances[2];
    tokio::task::block_in_place(|| instance.start(false));

    let client = cluster.client.http.clone();
    let ready = |i: usize| {
        let url = cluster.instances[i].url("/ready");
        let client = client.clone();
        async move { client.get(url).send().await.unwrap().status().as_u16() }
    };
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
    wait_for(
        "node0 to see node2 differ",
        Duration::from_secs(5),
        async || comparison(&cluster.status(0).await, "node2") == "differs",
    )
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
        ready(2).await == 503
    })
    .await;
    assert_eq!(ready(0).await, 200);
    assert_eq!(ready(1).await, 200);

    let metrics = cluster.metrics(0).await;
    assert!(
        metrics.contains(&format!(
            "quadmesh_replication_contents_differ{{repository=\"{}\",peer=\"node2\"}} 1",
            Cluster::REPO
        )),
        "{metrics}"
    );
}
