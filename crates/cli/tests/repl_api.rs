//! AllegroGraph's replication calls as agraph-python and agtool make them, with real
//! server processes: `repl/stop` and `repl/start`, `repl/settings`, `repl/status`'s
//! `form`, `if-after` and `hide`, `repl/controllingInstance`, and `remove`'s
//! `timeout` and `undo-repl`.

mod common;

use common::cluster::Cluster;
use common::{wait_for, PATIENCE};
use std::time::{Duration, Instant};

const EX: &str = "http://example.org/";

async fn three(dir: &std::path::Path) -> Cluster {
    let cluster = Cluster::launch(dir, 3, &[]).await;
    cluster.form().await;
    cluster
}

/// Whether instance `index` holds the triple `<EX:s> <EX:p> "value"`.
async fn holds(cluster: &Cluster, index: usize, value: &str) -> bool {
    let response = cluster
        .client
        .get(cluster.instances[index].repo_url(""))
        .query(&[("query", format!("ASK {{ <{EX}s> <{EX}p> \"{value}\" }}"))])
        .header("accept", "application/sparql-results+json")
        .send()
        .await
        .unwrap();
    common::success_json(response).await["boolean"] == true
}

async fn insert(cluster: &Cluster, index: usize, value: &str) {
    common::success_text(
        cluster
            .update(
                index,
                &format!("INSERT DATA {{ <{EX}s> <{EX}p> \"{value}\" }}"),
            )
            .await,
    )
    .await;
}

/// `PUT repl/CALL` at instance `at` with `params`; the status and the body.
async fn call(cluster: &Cluster, at: usize, call: &str, params: &[(&str, &str)]) -> (u16, String) {
    let response = cluster
        .client
        .put(cluster.instances[at].repo_url(&format!("/repl/{call}")))
        .query(params)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

fn member<'a>(status: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    status["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("no instance {name} in {status}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopped_instance_takes_nothing_gives_nothing_and_catches_up_when_started() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = three(dir.path()).await;
    insert(&cluster, 0, "before").await;
    wait_for("the first write everywhere", PATIENCE, async || {
        holds(&cluster, 2, "before").await
    })
    .await;

    // agraph-python's stop_MMR_instance sends every parameter it knows.
    let (status, body) = call(
        &cluster,
        0,
        "stop",
        &[
            ("timeout", "30"),
            ("force", "false"),
            ("instanceName", "node2"),
            ("undo-repl", "false"),
        ],
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let at_controlling = cluster.status(0).await;
    assert_eq!(member(&at_controlling, "node2")["state"], "stopped");
    assert_eq!(member(&at_controlling, "node2")["stopped"], true);
    let at_stopped = cluster.status(2).await;
    assert_eq!(at_stopped["stopped"], true, "{at_stopped}");
    assert_eq!(
        member(&at_stopped, "node0")["state"],
        "not replicating: this instance is stopped"
    );

    // Writes on both sides while stopped: neither crosses.
    insert(&cluster, 0, "while-stopped-at-node0").await;
    insert(&cluster, 2, "while-stopped-at-node2").await;
    wait_for("node1 to have node0's write", PATIENCE, async || {
        holds(&cluster, 1, "while-stopped-at-node0").await
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !holds(&cluster, 2, "while-stopped-at-node0").await,
        "a stopped instance took a write"
    );
    assert!(
        !holds(&cluster, 0, "while-stopped-at-node2").await,
        "a stopped instance gave a write"
    );
    assert!(
        !holds(&cluster, 1, "while-stopped-at-node2").await,
        "a stopped instance gave a write"
    );

    // Refusals, each with a message, changing nothing.
    for (params, expected, says) in [
        (vec![("instanceName", "node2")], 409, "already stopped"),
        (vec![("instanceName", "node0")], 409, "controlling"),
        (vec![("instanceName", "nobody")], 404, "nobody"),
        (
            vec![("instanceName", "node1"), ("colour", "blue")],
            400,
            "colour",
        ),
        (
            vec![("instanceName", "node1"), ("timeout", "soon")],
            400,
            "timeout",
        ),
        (
            vec![("instanceName", "node1"), ("force", "perhaps")],
            400,
            "force",
        ),
        (
            vec![("instanceName", "node1"), ("undo-repl", "true")],
            400,
            "undo-repl",
        ),
        (vec![], 400, "instanceName"),
    ] {
        let (status, body) = call(&cluster, 0, "stop", &params).await;
        assert_eq!(status, expected, "stop {params:?}: {body}");
        assert!(body.contains(says), "stop {params:?}: {body}");
    }
    let (status, body) = call(&cluster, 0, "start", &[("instanceName", "node1")]).await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("not stopped"), "{body}");
    let (status, body) = call(&cluster, 1, "stop", &[("instanceName", "node1")]).await;
    assert_eq!(status, 409, "stop at a copy: {body}");
    assert_eq!(member(&cluster.status(0).await, "node1")["stopped"], false);

    // The configuration changes while node2 is stopped (AllegroGraph's own mmr test
    // grows the cluster then): node2 pulls from nobody, yet holds the new configuration
    // within seconds — it asks the others for theirs — so it can confirm the changes
    // made meanwhile and learn that it was started; its data stays apart.
    let response = cluster
        .client
        .post(cluster.instances[0].repo_url("/repl/settings"))
        .query(&[("transactionLatencyCount", "3")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status().as_u16(),
        204,
        "{}",
        response.text().await.unwrap()
    );
    wait_for(
        "the stopped node2 to hold the new settings",
        PATIENCE,
        async || cluster.status(2).await["settings"]["transactionLatencyCount"] == 3,
    )
    .await;
    assert_eq!(cluster.status(2).await["stopped"], true);
    assert!(
        !holds(&cluster, 2, "while-stopped-at-node0").await,
        "a stopped instance took a write with the configuration"
    );

    let started = Instant::now();
    let (status, body) = call(&cluster, 0, "start", &[("instanceName", "node2")]).await;
    assert_eq!(status, 204, "{body}");
    wait_for(
        "the stopped instance to catch up both ways",
        PATIENCE,
        async || {
            holds(&cluster, 2, "while-stopped-at-node0").await
                && holds(&cluster, 0, "while-stopped-at-node2").await
                && holds(&cluster, 1, "while-stopped-at-node2").await
        },
    )
    .await;
    eprintln!("caught up {:?} after start", started.elapsed());
    cluster.settle(3).await;
    cluster.converge(PATIENCE).await;
    let status = cluster.status(0).await;
    assert_eq!(member(&status, "node2")["state"], "connected", "{status}");
    assert_eq!(cluster.status(2).await["stopped"], false);
}

/// `repl/stop` of an instance that cannot be told (its server is down): undone after
/// `timeout` (503, saying so), unless `force`, which keeps it; the instance stops as
/// soon as it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stop_the_instance_cannot_learn_is_undone_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = three(dir.path()).await;
    cluster.instances[2].kill();

    let asked = Instant::now();
    let (status, body) = call(
        &cluster,
        0,
        "stop",
        &[("instanceName", "node2"), ("timeout", "1")],
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("could not be told within 1 s") && body.contains("the stop was undone"),
        "{body}"
    );
    assert!(
        asked.elapsed() < Duration::from_secs(20),
        "{:?}",
        asked.elapsed()
    );
    let at_controlling = cluster.status(0).await;
    assert_eq!(
        member(&at_controlling, "node2")["stopped"],
        false,
        "{at_controlling}"
    );

    let (status, body) = call(
        &cluster,
        0,
        "stop",
        &[
            ("instanceName", "node2"),
            ("timeout", "1"),
            ("force", "true"),
        ],
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let at_controlling = cluster.status(0).await;
    assert_eq!(
        member(&at_controlling, "node2")["stopped"],
        true,
        "{at_controlling}"
    );

    // Back, it learns it is stopped (it holds the configuration saying so).
    tokio::task::block_in_place(|| cluster.instances[2].start(false));
    wait_for("node2 to learn it is stopped", PATIENCE, async || {
        cluster.status(2).await["stopped"] == true
    })
    .await;
    let (status, body) = call(&cluster, 0, "start", &[("instanceName", "node2")]).await;
    assert_eq!(status, 204, "{body}");
    wait_for("node2 to run again", PATIENCE, async || {
        cluster.status(2).await["stopped"] == false
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn settings_apply_to_commits_without_a_header_and_show_in_status() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = three(dir.path()).await;
    let settings = |params: Vec<(&'static str, &'static str)>| {
        let request = cluster
            .client
            .post(cluster.instances[0].repo_url("/repl/settings"))
            .query(&params);
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    for (params, expected, says) in [
        (vec![], 400, "at least one"),
        (vec![("durability", "most")], 400, "durability"),
        (vec![("durability", "4")], 409, "cannot be met"),
        (
            vec![("distributedTransactionTimeout", "soon")],
            400,
            "distributedTransactionTimeout",
        ),
        (
            vec![("transactionLatencyCount", "-2")],
            400,
            "transactionLatencyCount",
        ),
        (
            vec![("durability", "max"), ("colour", "blue")],
            400,
            "colour",
        ),
    ] {
        let (status, body) = settings(params.clone()).await;
        assert_eq!(status, expected, "settings {params:?}: {body}");
        assert!(body.contains(says), "settings {params:?}: {body}");
    }
    assert_eq!(cluster.status(1).await["settings"]["durability"], "min");

    let (status, body) = settings(vec![
        ("durability", "max"),
        ("distributedTransactionTimeout", "1.5"),
    ])
    .await;
    assert_eq!(status, 204, "{body}");
    // A copy shows them too: they travel with the configuration.
    wait_for("the settings at a copy", PATIENCE, async || {
        cluster.status(1).await["settings"]["durability"] == "max"
    })
    .await;
    let status = cluster.status(1).await;
    assert_eq!(
        status["settings"]["distributedTransactionTimeout"], 1.5,
        "{status}"
    );
    let text = common::success_text(
        cluster
            .client
            .get(cluster.instances[1].repo_url("/repl/status"))
            .query(&[("form", "text"), ("if-after", "0"), ("hide", "false")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    eprintln!("{text}");
    assert!(text.contains("durability=max"), "{text}");
    assert!(text.contains("distributedTransactionTimeout=1.5"), "{text}");
    for name in ["node0", "node1", "node2"] {
        assert!(text.contains(name), "{text}");
    }

    // A plain commit waits for every member now: with one down it is answered after
    // the timeout, saying what is missing.
    cluster.instances[2].kill();
    let started = Instant::now();
    let response = cluster
        .update(0, &format!("INSERT DATA {{ <{EX}s> <{EX}p> \"plain\" }}"))
        .await;
    let took = started.elapsed();
    assert!(response.status().is_success());
    assert_eq!(response.headers()["x-durability"], "missing=1");
    assert!(
        took >= Duration::from_millis(1400),
        "answered after {took:?}"
    );
    // A header still wins.
    let response = cluster
        .client
        .post(cluster.instances[0].repo_url(""))
        .header("x-repl-settings", "durability=min")
        .form(&[(
            "update",
            format!("INSERT DATA {{ <{EX}s> <{EX}p> \"header\" }}"),
        )])
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    assert!(response.headers().get("x-durability").is_none());
    // Reads are not held back by the defaults.
    let started = Instant::now();
    assert!(holds(&cluster, 0, "plain").await);
    assert!(started.elapsed() < Duration::from_millis(1400));

    // status: if-after, hide, form.
    let version = cluster.status(0).await["configVersion"].as_u64().unwrap();
    let status_with = |params: Vec<(&'static str, String)>| {
        let request = cluster
            .client
            .get(cluster.instances[0].repo_url("/repl/status"))
            .query(&params);
        async move { request.send().await.unwrap() }
    };
    let response = status_with(vec![("if-after", version.to_string())]).await;
    assert_eq!(response.status(), 204);
    let response = status_with(vec![("if-after", (version - 1).to_string())]).await;
    assert_eq!(response.status(), 200);
    // Once node1 has caught up with the last write, only the stopped-by-fault node2
    // needs attention.
    wait_for("hide=true to leave only node2", PATIENCE, async || {
        let hidden = common::success_json(status_with(vec![("hide", "true".into())]).await).await;
        let names: Vec<String> = hidden["instances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap().to_owned())
            .collect();
        eprintln!("hide=true shows {names:?}");
        names == ["node2"]
    })
    .await;
    for (params, says) in [
        (vec![("form", "xml".to_string())], "form"),
        (vec![("if-after", "later".to_string())], "if-after"),
        (vec![("hide", "maybe".to_string())], "hide"),
        (vec![("colour", "blue".to_string())], "colour"),
    ] {
        let response = status_with(params.clone()).await;
        assert_eq!(response.status(), 400, "{params:?}");
        assert!(response.text().await.unwrap().contains(says), "{params:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn controlling_instance_moves_the_role_and_undo_repl_keeps_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = three(dir.path()).await;
    insert(&cluster, 0, "kept").await;
    wait_for("the write everywhere", PATIENCE, async || {
        holds(&cluster, 2, "kept").await
    })
    .await;

    let (status, body) = call(
        &cluster,
        0,
        "controllingInstance",
        &[("instanceName", "node1"), ("force", "false")],
    )
    .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(
        member(&cluster.status(0).await, "node1")["role"],
        "controlling"
    );
    // The old holder refuses, naming the new one; force there names the wrong member.
    let (status, body) = call(
        &cluster,
        0,
        "controllingInstance",
        &[("instanceName", "node0")],
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("node1"), "{body}");
    let (status, body) = call(
        &cluster,
        0,
        "controllingInstance",
        &[("instanceName", "node2"), ("force", "true")],
    )
    .await;
    assert_eq!(status, 409, "{body}");
    let (status, _) = call(
        &cluster,
        1,
        "controllingInstance",
        &[("instanceName", "node1"), ("x", "y")],
    )
    .await;
    assert_eq!(status, 400);

    for (params, says) in [
        (
            vec![("instanceName", "node2"), ("timeout", "never")],
            "timeout",
        ),
        (
            vec![("instanceName", "node2"), ("undo-repl", "sure")],
            "undo-repl",
        ),
    ] {
        let (status, body) = call(&cluster, 1, "remove", &params).await;
        assert_eq!(status, 400, "{params:?}: {body}");
        assert!(body.contains(says), "{body}");
    }
    let (status, body) = call(
        &cluster,
        1,
        "remove",
        &[
            ("instanceName", "node2"),
            ("timeout", "20"),
            ("force", "false"),
            ("undo-repl", "true"),
        ],
    )
    .await;
    assert_eq!(status, 204, "{body}");
    // node2 keeps the data as an ordinary repository that takes writes.
    let response = cluster
        .client
        .get(cluster.instances[2].repo_url("/repl/status"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404, "{}", response.text().await.unwrap());
    assert!(holds(&cluster, 2, "kept").await);
    insert(&cluster, 2, "after-leaving").await;
    assert!(holds(&cluster, 2, "after-leaving").await);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(!holds(&cluster, 0, "after-leaving").await);
    assert_eq!(
        cluster.status(1).await["instances"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // createCluster and growCluster take agraph-python's parameters, and refuse values
    // they cannot honour instead of ignoring them.
    for (call_name, params, expected, says) in [
        (
            "createCluster",
            vec![("instanceName", "x"), ("scheme", "https")],
            400,
            "scheme",
        ),
        (
            "createCluster",
            vec![("instanceName", "x"), ("scheme", "gopher")],
            400,
            "scheme",
        ),
        (
            "createCluster",
            vec![("instanceName", "x"), ("ifExists", "error")],
            409,
            "exists",
        ),
        (
            "createCluster",
            vec![("instanceName", "x"), ("ifExists", "maybe")],
            400,
            "ifExists",
        ),
        (
            "createCluster",
            vec![("instanceName", "x"), ("colour", "blue")],
            400,
            "colour",
        ),
        (
            "growCluster",
            vec![("instanceName", "x"), ("catalog", "elsewhere")],
            400,
            "catalog",
        ),
        (
            "growCluster",
            vec![("instanceName", "x"), ("colour", "blue")],
            400,
            "colour",
        ),
    ] {
        let (status, body) = call(&cluster, 2, call_name, &params).await;
        assert_eq!(status, expected, "{call_name} {params:?}: {body}");
        assert!(body.contains(says), "{call_name} {params:?}: {body}");
    }
    // With agraph-python's defaults (scheme=http, ifExists=supersede, credentials) a
    // cluster is made, and the data is kept.
    let (host, port) = (
        cluster.instances[2].host(),
        cluster.instances[2].port.to_string(),
    );
    let (status, body) = call(
        &cluster,
        2,
        "createCluster",
        &[
            ("host", host.as_str()),
            ("port", port.as_str()),
            ("instanceName", "alone"),
            ("user", "someone"),
            ("password", "secret"),
            ("scheme", "http"),
            ("ifExists", "supersede"),
        ],
    )
    .await;
    assert_eq!(status, 204, "{body}");
    assert!(holds(&cluster, 2, "after-leaving").await);
    assert_eq!(
        member(&cluster.status(2).await, "alone")["role"],
        "controlling"
    );
}

/// `quadmesh repl ARGS…`: its standard output, after asserting it succeeded.
fn quadmesh_repl(args: &[&str]) -> String {
    let output = std::process::Command::new(common::binary())
        .arg("repl")
        .args(args)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "quadmesh repl {args:?}: {said}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    said
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_command_line_speaks_agtools_spelling() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::launch(dir.path(), 2, &[]).await;
    cluster.form().await;
    let node0 = &cluster.instances[0];
    let spec = format!(
        "{}:{}@{}:{}/{}",
        common::USER,
        common::PASSWORD,
        node0.ip,
        node0.port,
        Cluster::REPO
    );
    quadmesh_repl(&[
        "settings",
        &spec,
        "--durability",
        "quorum",
        "--transaction-latency-count",
        "4",
    ]);
    let status = cluster.status(0).await;
    assert_eq!(status["settings"]["durability"], "quorum", "{status}");
    assert_eq!(status["settings"]["transactionLatencyCount"], 4, "{status}");
    quadmesh_repl(&["stop", &spec, "node1", "--timeout", "20"]);
    let table = quadmesh_repl(&["status", &spec]);
    assert!(table.contains("stopped"), "{table}");
    assert!(table.contains("durability=quorum"), "{table}");
    quadmesh_repl(&["start", &spec, "node1"]);
    assert_eq!(member(&cluster.status(0).await, "node1")["stopped"], false);
    quadmesh_repl(&["controlling-instance", &spec, "node1"]);
    assert_eq!(
        member(&cluster.status(0).await, "node1")["role"],
        "controlling"
    );
}
