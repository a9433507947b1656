//! The built-in roles with real processes on loopback: a controlling instance that lost
//! its data re-grows itself from a copy instead of creating a second, empty cluster.

mod common;

use common::{free_port, serve_command, wait_for, wait_until_up, Client};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

const REPO: &str = "demo";

/// These tests run one at a time: each starts two or three instances, which the others'
/// would starve on two cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Instance {
    port: u16,
    data_dir: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
}

impl Instance {
    fn new(data_dir: &Path, port: u16, role_args: &[&str]) -> Instance {
        let mut args: Vec<String> = role_args.iter().map(|a| a.to_string()).collect();
        args.extend(["--advertise".into(), format!("127.0.0.1:{port}")]);
        Instance {
            port,
            data_dir: data_dir.to_owned(),
            args,
            child: None,
        }
    }

    fn start(&mut self) {
        let child = serve_command(
            &self.data_dir,
            std::net::IpAddr::from([127, 0, 0, 1]),
            self.port,
            &self.args,
            true,
        )
        .spawn()
        .expect("start quadmesh");
        self.child = Some(child);
        wait_until_up(self.port);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn ready(client: &Client, instance: &Instance) -> (u16, String) {
    match client.http.get(instance.url("/ready")).send().await {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(e) => (0, e.to_string()),
    }
}

/// The size, or None while the instance cannot answer one (for polling).
async fn size(client: &Client, instance: &Instance) -> Option<u64> {
    let response = client
        .get(instance.url(&format!("/repositories/{REPO}/size")))
        .send()
        .await
        .ok()?;
    response.text().await.ok()?.trim().parse().ok()
}

async fn status(client: &Client, instance: &Instance) -> serde_json::Value {
    common::success_json(
        client
            .get(instance.url(&format!("/repositories/{REPO}/repl/status")))
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn insert(client: &Client, instance: &Instance, tag: &str, n: usize) {
    let mut body = String::new();
    for i in 0..n {
        body.push_str(&format!(
            "<http://example.org/{tag}{i}> <http://example.org/p> \"{i}\" .\n"
        ));
    }
    let response = client
        .post(instance.url(&format!("/repositories/{REPO}/statements")))
        .header("content-type", "application/n-triples")
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_controlling_instance_that_lost_its_data_regrows_from_a_copy_and_never_forks() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let client = Client::default();
    let copy_port = free_port();
    let peers = format!("127.0.0.1:{copy_port}");
    let mut controlling = Instance::new(
        &dir.path().join("controlling"),
        free_port(),
        &[
            "--role",
            "controlling",
            "--repo",
            REPO,
            "--instance-name",
            "controlling",
            "--peers",
            &peers,
        ],
    );
    let controlling_address = format!("127.0.0.1:{}", controlling.port);
    let mut copy = Instance::new(
        &dir.path().join("copy"),
        copy_port,
        &[
            "--role",
            "copy",
            "--repo",
            REPO,
            "--instance-name",
            "copy-1",
            "--controlling",
            &controlling_address,
        ],
    );

    // First start: no member answers, so a new cluster is made.
    controlling.start();
    wait_for("controlling ready", Duration::from_secs(30), async || {
        ready(&client, &controlling).await.0 == 200
    })
    .await;
    copy.start();
    wait_for("copy ready", Duration::from_secs(30), async || {
        ready(&client, &copy).await.0 == 200
    })
    .await;
    let cluster = status(&client, &controlling).await["cluster"].clone();
    insert(&client, &controlling, "c", 2000).await;
    insert(&client, &copy, "k", 2780).await;
    wait_for(
        "both hold everything",
        Duration::from_secs(20),
        async || {
            size(&client, &controlling).await == Some(4780)
                && size(&client, &copy).await == Some(4780)
        },
    )
    .await;

    // The controlling instance dies and its volume is lost; it starts again empty.
    controlling.kill();
    std::fs::remove_dir_all(&controlling.data_dir).unwrap();
    controlling.start();
    wait_for(
        "controlling ready again",
        Duration::from_secs(60),
        async || ready(&client, &controlling).await.0 == 200,
    )
    .await;
    assert_eq!(size(&client, &controlling).await, Some(4780));
    assert_eq!(size(&client, &copy).await, Some(4780));
    let on_controlling = status(&client, &controlling).await;
    assert_eq!(on_controlling["cluster"], cluster, "{on_controlling}");
    wait_for(
        "the copy knows the new incarnation",
        Duration::from_secs(20),
        async || {
            let on_copy = status(&client, &copy).await;
            on_copy["cluster"] == cluster
                && on_copy["configVersion"] == on_controlling["configVersion"]
                && on_copy["instances"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|i| i["name"] == "controlling" && i["state"] == "connected")
        },
    )
    .await;
    // One cluster, replicating both ways.
    insert(&client, &controlling, "after-c", 10).await;
    insert(&client, &copy, "after-k", 10).await;
    wait_for(
        "writes replicate both ways",
        Duration::from_secs(20),
        async || {
            size(&client, &controlling).await == Some(4800)
                && size(&client, &copy).await == Some(4800)
        },
    )
    .await;

    // A controlling instance of another name finds the cluster and takes nothing.
    let mut impostor = Instance::new(
        &dir.path().join("impostor"),
        free_port(),
        &[
            "--role",
            "controlling",
            "--repo",
            REPO,
            "--instance-name",
            "impostor",
            "--peers",
            &peers,
        ],
    );
    impostor.start();
    wait_for(
        "the impostor says why it is not ready",
        Duration::from_secs(20),
        async || {
            let (code, text) = ready(&client, &impostor).await;
            code == 503 && text.contains("whose controlling instance is controlling")
        },
    )
    .await;
    // It holds no repository at all (not an error of some other kind).
    let response = client
        .get(impostor.url(&format!("/repositories/{REPO}/size")))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body = response.text().await.unwrap();
    assert_eq!(status, 404, "the impostor answered {status}: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_roles_keep_several_repositories_each_its_own_cluster() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let client = Client::default();
    let mut controlling = Instance::new(
        &dir.path().join("controlling"),
        free_port(),
        &[
            "--role",
            "controlling",
            "--repo",
            "alpha,beta",
            "--instance-name",
            "controlling",
        ],
    );
    let controlling_address = format!("127.0.0.1:{}", controlling.port);
    let mut copy = Instance::new(
        &dir.path().join("copy"),
        free_port(),
        &[
            "--role",
            "copy",
            "--repo",
            "alpha,beta",
            "--instance-name",
            "copy-1",
            "--controlling",
            &controlling_address,
        ],
    );
    controlling.start();
    copy.start();
    for instance in [&controlling, &copy] {
        wait_for("ready", Duration::from_secs(60), async || {
            ready(&client, instance).await.0 == 200
        })
        .await;
    }
    let mut clusters = Vec::new();
    for (repository, writer, reader) in [
        ("alpha", &copy, &controlling),
        ("beta", &controlling, &copy),
    ] {
        let url = |i: &Instance, path: &str| i.url(&format!("/repositories/{repository}{path}"));
        let status: serde_json::Value = client
            .get(url(reader, "/repl/status"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(status["instances"].as_array().unwrap().len(), 2, "{status}");
        clusters.push(status["cluster"].clone());
        let response = client
            .post(url(writer, "/statements"))
            .header("content-type", "application/n-triples")
            .body(format!(
                "<http://example.org/{repository}> <http://example.org/p> \"x\" .\n"
            ))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
        wait_for(
            "the write replicates",
            Duration::from_secs(10),
            async || {
                client
                    .get(url(reader, "/size"))
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap()
                    .trim()
                    == "1"
            },
        )
        .await;
    }
    assert_ne!(
        clusters[0], clusters[1],
        "each repository is its own cluster"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_copy_joining_through_the_old_controlling_instance_follows_a_promotion() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let client = Client::default();
    let mut controlling = Instance::new(
        &dir.path().join("controlling"),
        free_port(),
        &[
            "--role",
            "controlling",
            "--repo",
            REPO,
            "--instance-name",
            "controlling",
        ],
    );
    let controlling_address = format!("127.0.0.1:{}", controlling.port);
    let copy_args = |name: &'static str| {
        [
            "--role",
            "copy",
            "--repo",
            REPO,
            "--instance-name",
            name,
            "--controlling",
            controlling_address.as_str(),
        ]
        .map(str::to_owned)
    };
    let args = copy_args("copy-1");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut copy = Instance::new(&dir.path().join("copy-1"), free_port(), &args);
    controlling.start();
    copy.start();
    for instance in [&controlling, &copy] {
        wait_for("ready", Duration::from_secs(60), async || {
            ready(&client, instance).await.0 == 200
        })
        .await;
    }
    insert(&client, &controlling, "a", 10).await;
    // Two members: a promotion needs both, so the controlling instance grants it here.
    let response = client
        .put(copy.url(&format!("/repositories/{REPO}/repl/promote")))
        .send()
        .await
        .unwrap();
    let status_code = response.status();
    assert_eq!(status_code, 200, "{}", response.text().await.unwrap());
    wait_for(
        "the old controlling instance knows",
        Duration::from_secs(10),
        async || {
            status(&client, &controlling).await["instances"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["name"] == "copy-1" && i["role"] == "controlling")
        },
    )
    .await;
    // A new copy still pointed at the old controlling instance joins through copy-1.
    let args = copy_args("copy-2");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut late = Instance::new(&dir.path().join("copy-2"), free_port(), &args);
    late.start();
    wait_for("copy-2 ready", Duration::from_secs(60), async || {
        ready(&client, &late).await.0 == 200
    })
    .await;
    let seen = status(&client, &late).await;
    let names: Vec<&str> = seen["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["controlling", "copy-1", "copy-2"], "{seen}");
    assert_eq!(seen["configEpoch"], 1, "{seen}");
    assert_eq!(size(&client, &late).await, Some(10));
}

/// A copy stopping (SIGTERM, as Kubernetes scales it down) while clients write to it:
/// every write it acknowledged is at the controlling instance once it has gone. Writes
/// that reach it while it leaves are refused (503 `leaving`, then 409 `removed` once it
/// has left), never acknowledged and then lost with the process.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_copy_stopping_under_writes_loses_none_it_acknowledged() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let client = Client::default();
    let mut controlling = Instance::new(
        &dir.path().join("controlling"),
        free_port(),
        &["--role", "controlling", "--repo", REPO],
    );
    let controlling_address = format!("127.0.0.1:{}", controlling.port);
    let mut copy = Instance::new(
        &dir.path().join("copy"),
        free_port(),
        &[
            "--role",
            "copy",
            "--repo",
            REPO,
            "--instance-name",
            "copy-1",
            "--controlling",
            &controlling_address,
        ],
    );
    controlling.start();
    copy.start();
    for instance in [&controlling, &copy] {
        wait_for("ready", Duration::from_secs(60), async || {
            ready(&client, instance).await.0 == 200
        })
        .await;
    }
    let url = copy.url(&format!("/repositories/{REPO}/statements"));
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                let mut refused = Vec::new();
                for i in 0.. {
                    let subject = format!("http://example.org/w{w}-{i}");
                    let result = client
                        .post(url.clone())
                        .header("content-type", "application/n-triples")
                        .body(format!("<{subject}> <http://example.org/p> \"{i}\" .\n"))
                        .timeout(Duration::from_secs(10))
                        .send()
                        .await;
                    match result {
                        Ok(r) if r.status().is_success() => acknowledged.push(subject),
                        Ok(r) => refused.push((
                            r.status().as_u16(),
                            r.headers()
                                .get("x-quadmesh-error")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_string(),
                        )),
                        // The process is gone (or going): indeterminate, and the end.
                        Err(_) => break,
                    }
                }
                (acknowledged, refused)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let child = copy.child.take().unwrap();
    tokio::task::spawn_blocking(move || common::terminate(child))
        .await
        .unwrap();
    let mut acknowledged = Vec::new();
    for writer in writers {
        let (mut a, refused) = writer.await.unwrap();
        for (status, code) in &refused {
            // Refused while it leaves, or once it has left (removed): never anything
            // else, and never acknowledged.
            assert!(
                matches!(
                    (*status, code.as_str()),
                    (503, "leaving") | (409, "removed")
                ),
                "a write to a leaving copy is refused as leaving or removed, not {status} {code}"
            );
        }
        acknowledged.append(&mut a);
    }
    assert!(
        acknowledged.len() > 20,
        "the copy took writes before it stopped: {}",
        acknowledged.len()
    );
    let status = status(&client, &controlling).await;
    assert_eq!(
        status["instances"].as_array().unwrap().len(),
        1,
        "the copy left: {status}"
    );
    let held: std::collections::HashSet<String> = common::success_json(
        client
            .get(controlling.url(&format!("/repositories/{REPO}")))
            .query(&[("query", "SELECT ?s { ?s <http://example.org/p> ?o }")])
            .header("accept", "application/sparql-results+json")
            .send()
            .await
            .unwrap(),
    )
    .await["results"]["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["s"]["value"].as_str().unwrap().to_string())
        .collect();
    let lost: Vec<&String> = acknowledged.iter().filter(|s| !held.contains(*s)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} writes the copy acknowledged are not at the controlling instance: {:?}",
        lost.len(),
        acknowledged.len(),
        &lost[..lost.len().min(5)]
    );
}
