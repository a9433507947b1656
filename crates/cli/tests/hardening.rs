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

/// Answers every request on a new loopback port with a pull refusal saying "removed",
/// as anything answering at a member's address could; returns the port's address.
async fn refuses_as_removed() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let body =
                    r#"{"code":"removed","message":"this instance was removed from the cluster"}"#;
                let answer = format!(
                    "HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    address
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pull_answered_removed_is_not_believed_without_the_controlling_instance() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::launch(dir.path(), 3, &[]).await;
    cluster.form().await;
    // Node 1's link to node 2 now reaches something that says "you were removed".
    let impostor = refuses_as_removed().await;
    cluster.proxies[1][2].as_ref().unwrap().retarget(impostor);
    wait_for(
        "node 1 to be told it was removed and to show it",
        Duration::from_secs(20),
        async || {
            let status = cluster.status(1).await;
            status
                .to_string()
                .contains("nor a majority of the members confirm")
        },
    )
    .await;
    let status = cluster.status(1).await;
    assert_eq!(status["removed"], false, "{status}");
    let write = cluster
        .update(1, "INSERT DATA { <http://e/s> <http://e/p> 1 }")
        .await;
    assert_eq!(write.status(), 204, "node 1 still takes writes");

    // Once the link reaches node 2 again, node 1 pulls from it as before.
    cluster.proxies[1][2]
        .as_ref()
        .unwrap()
        .retarget(cluster.instances[2].socket());
    let write = cluster
        .update(2, "INSERT DATA { <http://e/s> <http://e/p> 2 }")
        .await;
    assert_eq!(write.status(), 204, "node 2 takes writes");
    cluster.converge(Duration::from_secs(30)).await;
    let export = cluster.export(1).await;
    assert!(
        export.contains("\"2\"") || export.contains("> 2 "),
        "{export}"
    );
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

/// A raw `GET /version` from the source address `from`: the status line's code, or
/// `None` when the server closed the connection without answering.
async fn version_from(from: std::net::Ipv4Addr, port: u16) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind((from, 0).into()).unwrap();
    let mut stream = socket.connect(([127, 0, 0, 1], port).into()).await.unwrap();
    stream
        .write_all(b"GET /version HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer);
    text.split(' ').nth(1)?.parse().ok()
}

/// A connection that never sends a byte is closed at the header-read timeout, as a
/// half-sent one is, not at the (much longer) idle timeout; and one client address
/// holds at most its own cap of connections while another address is still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn silent_connections_close_at_the_header_timeout_and_one_address_is_capped() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let server = common::Server::start_with(
        dir.path(),
        &[
            "--header-read-timeout",
            "2",
            "--idle-timeout",
            "600",
            "--max-connections-per-client",
            "100",
        ],
    );
    let pid = server.pid();
    let baseline = open_fds(pid);

    let mut silent = open_connections(server.port, 80);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(open_fds(pid) >= baseline + 70, "the connections were taken");
    wait_for(
        "silent and half-sent connections to be closed at the header-read timeout",
        Duration::from_secs(30),
        async || open_fds(pid) <= baseline + 5,
    )
    .await;
    assert!(silent.iter_mut().all(closed_by_server));

    // 150 from 127.0.0.1: it keeps at most 100; 127.0.0.2 is still answered.
    let mut many = open_connections(server.port, 150);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let held = open_fds(pid);
    assert!(
        held <= baseline + 100 + 5,
        "{held} descriptors for a cap of 100 per address"
    );
    assert!(
        held >= baseline + 90,
        "{held} descriptors: the connections were taken"
    );
    let other = version_from([127, 0, 0, 2].into(), server.port).await;
    assert_eq!(
        other,
        Some(200),
        "another client address must still be served"
    );
    assert!(many.iter_mut().all(closed_by_server));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_in_flight_outlasts_the_idle_timeout_and_headers_are_bounded() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    // The header-read timeout is shorter than the upload too: it bounds the wait for
    // a request's headers, never a request in flight.
    let server = common::Server::start_with(
        dir.path(),
        &["--idle-timeout", "1", "--header-read-timeout", "2"],
    );
    let client = common::Client::default();
    let created = client
        .put(server.url("/repositories/slow"))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 204);
    // An upload trickling in over four idle timeouts (two header-read timeouts) on the
    // same connection is a request in flight.
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

/// A server whose stderr (logs and audit lines) goes to a file; killed when dropped.
struct LoggedServer {
    child: std::process::Child,
    port: u16,
    log: std::path::PathBuf,
}

impl LoggedServer {
    fn start(dir: &std::path::Path) -> LoggedServer {
        let port = common::free_port();
        let log = dir.join("stderr.log");
        let mut command = common::serve_command(
            &dir.join("data"),
            std::net::IpAddr::from([127, 0, 0, 1]),
            port,
            &[],
            true,
        );
        command
            .env("QUADMESH_LOG", "info")
            .stderr(std::fs::File::create(&log).unwrap());
        let child = command.spawn().unwrap();
        common::wait_until_up(port);
        LoggedServer { child, port, log }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }
}

impl Drop for LoggedServer {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// An HTTP client whose connections come from `ip` (any 127.0.0.0/8 address), so that
/// a test can play several client addresses; redirects are not followed.
fn client_from(ip: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(std::net::IpAddr::from(ip))
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn password_checks(url: &str) -> u64 {
    let text = common::success_text(
        reqwest::Client::new()
            .get(url)
            .basic_auth(common::USER, Some(common::PASSWORD))
            .send()
            .await
            .unwrap(),
    )
    .await;
    text.lines()
        .find_map(|l| l.strip_prefix("quadmesh_password_checks_total "))
        .unwrap_or_else(|| panic!("no password_checks in\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wrong_passwords_cost_the_same_for_any_name_and_do_not_stall_the_server() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let server = common::Server::start(dir.path());
    let metrics = server.url("/metrics");

    // Verified credentials are remembered: asking again hashes nothing.
    let first = password_checks(&metrics).await;
    assert_eq!(password_checks(&metrics).await, first);

    // A known name with a wrong password and an unknown name cost one hash each.
    for (ip, user) in [([127, 0, 0, 2], common::USER), ([127, 0, 0, 3], "nobody")] {
        let refused = client_from(ip)
            .get(server.url("/repositories"))
            .basic_auth(user, Some("wrong"))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 401);
    }
    assert_eq!(password_checks(&metrics).await, first + 2);

    // Sixteen clients sending wrong passwords: /version is answered meanwhile.
    let finished = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let guessers: Vec<_> = (0..16u8)
        .map(|i| {
            let (url, finished) = (server.url("/repositories"), finished.clone());
            tokio::spawn(async move {
                let client = client_from([127, 0, 1, i + 1]);
                let attempts = (0..5).map(|n| {
                    client
                        .get(&url)
                        .basic_auth(common::USER, Some(format!("guess-{n}")))
                        .send()
                });
                for response in futures::future::join_all(attempts).await {
                    assert_eq!(response.unwrap().status(), 401);
                    finished.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            })
        })
        .collect();
    wait_for("hashing to start", Duration::from_secs(20), async || {
        password_checks(&metrics).await > first + 2
    })
    .await;
    for _ in 0..10 {
        let answered = client_from([127, 0, 0, 4])
            .get(server.url("/version"))
            .send()
            .await
            .unwrap();
        assert_eq!(answered.status(), 200);
    }
    let done_then = finished.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        done_then < 80,
        "the wrong passwords were still being checked"
    );
    for guesser in guessers {
        guesser.await.unwrap();
    }
    assert_eq!(password_checks(&metrics).await, first + 2 + 80);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn repeated_failed_sign_ins_from_one_address_are_slowed_down() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let server = common::Server::start(dir.path());
    let guesser = client_from([127, 0, 0, 9]);
    for attempt in 0..6 {
        let refused = guesser
            .get(server.url("/repositories"))
            .basic_auth(common::USER, Some(format!("guess-{attempt}")))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 401, "attempt {attempt}");
    }
    // Now even the right password waits, by Basic or by the UI's form.
    let held = guesser
        .get(server.url("/repositories"))
        .basic_auth(common::USER, Some(common::PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(held.status(), 429);
    let wait: u64 = held.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let form = guesser
        .post(server.url("/ui/login"))
        .header("origin", server.url(""))
        .form(&[("user", common::USER), ("password", common::PASSWORD)])
        .send()
        .await
        .unwrap();
    assert!(form.headers().get("set-cookie").is_none());
    let location = form.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.contains("Too+many"), "{location}");
    // Another address is not held back.
    let other = client_from([127, 0, 0, 10])
        .get(server.url("/repositories"))
        .basic_auth(common::USER, Some(common::PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
    // After the wait, the right password from the first address is taken again.
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let form = guesser
        .post(server.url("/ui/login"))
        .header("origin", server.url(""))
        .form(&[("user", common::USER), ("password", common::PASSWORD)])
        .send()
        .await
        .unwrap();
    assert!(form.headers().get("set-cookie").is_some(), "signed in");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ui_refuses_foreign_origins_and_forbids_framing() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let server = common::Server::start(dir.path());
    let browser = client_from([127, 0, 0, 1]);
    let ours = server.url("");

    let page = browser.get(server.url("/ui/login")).send().await.unwrap();
    let policy = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    assert!(policy.contains("script-src 'self'"), "{policy}");
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");

    let sign_in = |origin: Option<&str>| {
        let mut request = browser
            .post(server.url("/ui/login"))
            .form(&[("user", common::USER), ("password", common::PASSWORD)]);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send()
    };
    for foreign in [Some("http://evil.example"), Some("null"), None] {
        let refused = sign_in(foreign).await.unwrap();
        assert_eq!(refused.status(), 403, "origin {foreign:?}");
        assert!(refused.headers().get("set-cookie").is_none());
    }
    let signed_in = sign_in(Some(&ours)).await.unwrap();
    assert_eq!(signed_in.status(), 303);
    let cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();

    // With the cookie, a form or API post from another site changes nothing.
    let forged = browser
        .post(server.url("/ui/repositories"))
        .header("cookie", &cookie)
        .header("origin", "http://evil.example")
        .form(&[("name", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let forged = browser
        .put(server.url("/repositories/forged"))
        .header("cookie", &cookie)
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let listed = common::Client::default()
        .get(server.url("/repositories"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!listed.contains("forged"), "{listed}");
    // From our own page it works.
    let created = browser
        .post(server.url("/ui/repositories"))
        .header("cookie", &cookie)
        .header("origin", &ours)
        .form(&[("name", "mine")])
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 303);
    assert!(!created.headers()["location"]
        .to_str()
        .unwrap()
        .contains("error"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_audit_log_records_who_did_what_and_no_secret_is_logged() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let server = LoggedServer::start(dir.path());
    let wrong = "hunter2-never-log-me";
    let client = client_from([127, 0, 0, 5]);
    let refused = client
        .get(server.url("/repositories"))
        .basic_auth(common::USER, Some(wrong))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let text = refused.text().await.unwrap();
    assert!(!text.contains(wrong), "{text}");
    let form = client
        .post(server.url("/ui/login"))
        .header("origin", server.url(""))
        .form(&[("user", "mallory"), ("password", wrong)])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 303);
    for request in [
        client.put(server.url("/repositories/audited")),
        client.delete(server.url("/repositories/audited")),
    ] {
        let done = request
            .basic_auth(common::USER, Some(common::PASSWORD))
            .send()
            .await
            .unwrap();
        assert_eq!(done.status(), 204);
    }

    let mut events = Vec::new();
    wait_for("the audit lines", Duration::from_secs(10), async || {
        events = server
            .log()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|e| e["target"] == "quadmesh::audit")
            .map(|e| e["fields"].clone())
            .collect();
        events.len() >= 4
    })
    .await;
    let find = |action: &str, how_or_outcome: &str| {
        events
            .iter()
            .find(|e| {
                e["action"] == action
                    && (e["how"] == how_or_outcome || e["outcome"] == how_or_outcome)
            })
            .unwrap_or_else(|| panic!("no {action} {how_or_outcome} in {events:?}"))
            .clone()
    };
    let basic = find("sign-in", "basic");
    assert_eq!(basic["who"], common::USER);
    assert_eq!(basic["from"], "127.0.0.5");
    assert_eq!(find("sign-in", "form")["who"], "mallory");
    let created = find("repository-create", "done");
    assert_eq!(created["who"], common::USER);
    assert_eq!(created["repository"], "audited");
    assert_eq!(created["from"], "127.0.0.5");
    find("repository-delete", "done");

    let log = server.log();
    for secret in [wrong, common::PASSWORD] {
        assert!(!log.contains(secret), "a password in the log:\n{log}");
    }
}
