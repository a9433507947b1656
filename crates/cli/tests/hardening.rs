//! Issue 15's hardening, tried as a hostile client would, against real server
//! processes: scoped peer credentials, connection limits and timeouts, sign-in
//! throttling, the UI's browser protections, the audit log, no secret in any log.

mod common;

use common::cluster::Cluster;
use common::wait_for;
use std::time::Duration;

/// Tests that start several processes run one at a time (two cores).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The cluster token, as a member holds it in its data directory.
fn cluster_token(cluster: &Cluster, index: usize) -> String {
    let path = cluster.instances[index]
        .data_dir
        .join("repositories")
        .join(Cluster::REPO)
        .join("cluster.json");
    let state: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    state["config"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token in {state}"))
        .to_owned()
}

/// An instance's origin id as its peers send it (decimal), from `repl status`.
async fn origin_of(cluster: &Cluster, index: usize) -> String {
    let status = cluster.status(index).await;
    let me = status["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["state"] == "self")
        .unwrap()
        .clone();
    u64::from_str_radix(me["origin"].as_str().unwrap(), 16)
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_holding_the_token_cannot_mark_another_removed() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::launch(dir.path(), 3, &[]).await;
    cluster.form().await;
    let token = cluster_token(&cluster, 2);
    let controlling = origin_of(&cluster, 0).await;
    let attacker = origin_of(&cluster, 2).await;
    let http = reqwest::Client::new();
    let removed = cluster.instances[1].repo_url("/repl/removed");

    // Node 2 holds the token: as itself, with no origin, and posing as the
    // controlling instance, it is refused, and node 1 stays a member.
    for origin in [Some(attacker.as_str()), None, Some(controlling.as_str())] {
        let mut request = http
            .put(&removed)
            .header("x-quadmesh-cluster-token", &token);
        if let Some(origin) = origin {
            request = request.header("x-quadmesh-origin", origin);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 403, "origin {origin:?}");
        let text = response.text().await.unwrap();
        assert!(!text.contains(&token), "the token in an answer: {text}");
    }
    let status = cluster.status(1).await;
    assert_eq!(status["removed"], false, "{status}");
    let write = cluster
        .update(1, "INSERT DATA { <http://e/s> <http://e/p> 1 }")
        .await;
    assert_eq!(write.status(), 204, "node 1 still takes writes");
    cluster.converge(Duration::from_secs(20)).await;

    // The controlling instance's own removal is believed at once.
    let response = cluster
        .client
        .put(cluster.instances[0].repo_url("/repl/remove"))
        .query(&[("instanceName", "node1")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    wait_for(
        "node 1 to know it was removed",
        Duration::from_secs(10),
        async || cluster.status(1).await["removed"] == true,
    )
    .await;
    let refused = cluster
        .update(1, "INSERT DATA { <http://e/s> <http://e/p> 2 }")
        .await;
    assert_eq!(refused.status(), 409);
}
