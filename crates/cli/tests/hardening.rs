//! Issue 15's hardening, tried as a hostile client would, against real server
//! processes: scoped peer credentials, connection limits and timeouts, sign-in
//! throttling, the UI's browser protections, the audit log, no secret in any log.

mod common;

use common::cluster::Cluster;
use common::wait_for;
use futures::StreamExt;
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

/// Open descriptors of a process (sockets included).
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// `n` connections to `port`, every other one having sent half a request.
fn open_connections(port: u16, n: usize) -> Vec<std::net::TcpStream> {
    use std::io::Write;
    (0..n)
        .map(|i| {
            let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            if i % 2 == 1 {
                stream
                    .write_all(b"GET /version HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                    .unwrap();
            }
            stream
        })
        .collect()
}

/// Whether the server closed `stream` (end of stream or reset within 20 s).
fn closed_by_server(stream: &mut std::net::TcpStream) -> bool {
    use std::io::Read;
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut buffer = [0u8; 1024];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            // A 408 for a half-sent request, then the close.
            Ok(_) => continue,
            Err(e) => {
                return matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
                )
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_and_half_sent_connections_are_closed_and_bounded() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let server = common::Server::start_with(
        dir.path(),
        &[
            "--max-connections",
            "300",
            "--header-read-timeout",
            "2",
            "--idle-timeout",
            "2",
        ],
    );
    let client = common::Client::default();
    let pid = server.pid();
    let baseline = open_fds(pid);

    // Hundreds of idle and half-sent connections: requests are still answered while
    // they are open, and then they are all closed.
    let mut idle = open_connections(server.port, 250);
    let answered = client.get(server.url("/version")).send().await.unwrap();
    assert_eq!(answered.status(), 200);
    assert!(
        open_fds(pid) >= baseline + 200,
        "the connections were taken"
    );
    wait_for(
        "idle connections to be closed",
        Duration::from_secs(30),
        async || open_fds(pid) <= baseline + 5,
    )
    .await;
    assert!(idle.iter_mut().all(closed_by_server));

    // More than the limit: the server never holds more than it, the rest are closed
    // at once.
    let mut many = open_connections(server.port, 350);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let held = open_fds(pid);
    assert!(
        held <= baseline + 300 + 5,
        "{held} descriptors for 300 connections"
    );
    assert!(
        held >= baseline + 250,
        "{held} descriptors: the connections were taken"
    );
    assert!(many.iter_mut().all(closed_by_server));
    wait_for(
        "connections over the limit to be closed",
        Duration::from_secs(30),
        async || open_fds(pid) <= baseline + 5,
    )
    .await;
    let answered = client.get(server.url("/version")).send().await.unwrap();
    assert_eq!(answered.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_in_flight_outlasts_the_idle_timeout_and_headers_are_bounded() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let server = common::Server::start_with(dir.path(), &["--idle-timeout", "1"]);
    let client = common::Client::default();
    let created = client
        .put(server.url("/repositories/slow"))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 204);
    // An upload trickling in over four idle timeouts is a request in flight.
    let chunks = futures::stream::iter(0..8).then(|i| async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        Ok::<_, std::io::Error>(format!("<http://e/s{i}> <http://e/p> \"{i}\" .\n"))
    });
    let uploaded = client
        .post(server.url("/repositories/slow/statements"))
        .header("content-type", "application/n-triples")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert!(
        uploaded.status().is_success(),
        "{}",
        uploaded.text().await.unwrap()
    );
    assert_eq!(common::size(&client, &server, "slow").await, 8);

    // Headers: 32 KiB is fine, 100 KiB is refused with 431.
    for (size, status) in [(32 * 1024, 200), (100 * 1024, 431)] {
        let answered = client
            .get(server.url("/version"))
            .header("x-padding", "a".repeat(size))
            .send()
            .await
            .unwrap();
        assert_eq!(answered.status(), status, "a header of {size} bytes");
    }
}
