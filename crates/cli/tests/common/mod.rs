//! A harness that runs real `quadmesh` server processes on loopback.

#![allow(dead_code)]

pub mod cluster;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const USER: &str = "admin";
pub const PASSWORD: &str = "test-password";

/// The server binary: the one cargo built, or `QUADMESH_TEST_BINARY` (a copy of it, when
/// the target directory is shared with other builds that may replace it mid-run).
pub fn binary() -> &'static str {
    static BINARY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BINARY.get_or_init(|| {
        std::env::var("QUADMESH_TEST_BINARY")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_quadmesh").to_owned())
    })
}

/// A port no other server of this test process was given, that nothing listens on now.
///
/// Rules it keeps: never a port the kernel may hand to an outgoing connection (the
/// ephemeral range, where `bind(0)` would pick one: a client's connection could take it
/// before the server binds — then the test talks to another server, as one run did:
/// a "copy" that never started, its port answered by the controlling instance), and
/// never the same port twice within one test process.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    // Below Linux's default ephemeral range (32768–60999), above the well-known ports.
    const FIRST: u32 = 12_000;
    const COUNT: u32 = 20_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    // Processes started one after another begin at different places in the range.
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7_919) % COUNT,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..COUNT {
        let port = (FIRST + NEXT.fetch_add(1, Ordering::SeqCst) % COUNT) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between {FIRST} and {}", FIRST + COUNT)
}

/// `quadmesh serve` on `bind:port`, logging warnings (or `QUADMESH_TEST_LOG`), with the
/// superuser's credentials in its environment when asked (a first start needs them).
pub fn serve_command(
    data_dir: &Path,
    bind: std::net::IpAddr,
    port: u16,
    extra: &[String],
    with_credentials: bool,
) -> Command {
    let mut command = Command::new(binary());
    command
        .arg("serve")
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--bind")
        .arg(bind.to_string())
        .arg("--port")
        .arg(port.to_string())
        .args(extra)
        .env(
            "QUADMESH_LOG",
            std::env::var("QUADMESH_TEST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .env_remove("QUADMESH_USER")
        .env_remove("QUADMESH_PASSWORD")
        .env_remove("QUADMESH_PASSWORD_FILE")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    if with_credentials {
        command
            .env("QUADMESH_USER", USER)
            .env("QUADMESH_PASSWORD", PASSWORD);
    }
    command
}

/// A server process; killed when dropped.
pub struct Server {
    pub port: u16,
    pub data_dir: PathBuf,
    extra: Vec<String>,
    child: Option<Child>,
}

impl Server {
    pub fn start(data_dir: &Path) -> Server {
        Self::start_with(data_dir, &[])
    }

    pub fn start_with(data_dir: &Path, extra: &[&str]) -> Server {
        let mut server = Server {
            port: free_port(),
            data_dir: data_dir.to_owned(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
        };
        server.launch(true);
        server
    }

    fn launch(&mut self, with_credentials: bool) {
        let bind = std::net::IpAddr::from([127, 0, 0, 1]);
        let mut command = serve_command(
            &self.data_dir,
            bind,
            self.port,
            &self.extra,
            with_credentials,
        );
        self.child = Some(command.spawn().expect("start quadmesh"));
        wait_until_up(self.port);
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn spec(&self, repository: &str) -> String {
        format!("{USER}:{PASSWORD}@127.0.0.1:{}/{repository}", self.port)
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server runs").id()
    }

    /// SIGKILL: no shutdown work at all, as in a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }

    /// SIGTERM and wait: a clean stop.
    pub fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            terminate(child);
        }
    }

    /// Starts again on the same data directory, without credentials (they are
    /// recorded).
    pub fn restart(&mut self) {
        self.launch(false);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// SIGTERM, then up to 20 s for the process to exit (a kill after that is a failure).
pub fn terminate(mut child: Child) {
    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .expect("kill -TERM");
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().ok();
    child.wait().ok();
    panic!("server did not stop within 20 s of SIGTERM");
}

pub fn wait_until_up(port: u16) {
    wait_until_up_at(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
}

pub fn wait_until_up_at(address: std::net::SocketAddr) {
    let port = address.port();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(mut stream) = std::net::TcpStream::connect(address) {
            use std::io::{Read, Write};
            let _ = stream.write_all(b"GET /version HTTP/1.0\r\n\r\n");
            let mut answer = String::new();
            let _ = stream.read_to_string(&mut answer);
            if answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200") {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("quadmesh did not come up on port {port}");
}

/// An HTTP client that authenticates as the superuser.
#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
}

impl Default for Client {
    fn default() -> Self {
        Client {
            http: reqwest::Client::new(),
        }
    }
}

impl Client {
    pub fn get(&self, url: String) -> reqwest::RequestBuilder {
        self.http.get(url).basic_auth(USER, Some(PASSWORD))
    }
    pub fn post(&self, url: String) -> reqwest::RequestBuilder {
        self.http.post(url).basic_auth(USER, Some(PASSWORD))
    }
    pub fn put(&self, url: String) -> reqwest::RequestBuilder {
        self.http.put(url).basic_auth(USER, Some(PASSWORD))
    }
    pub fn delete(&self, url: String) -> reqwest::RequestBuilder {
        self.http.delete(url).basic_auth(USER, Some(PASSWORD))
    }
}

/// `n` N-Triples lines `<http://example.org/s{i}> <http://example.org/p> "v{i}"`.
pub fn ntriples(n: usize) -> String {
    let mut out = String::with_capacity(n * 60);
    for i in 0..n {
        out.push_str(&format!(
            "<http://example.org/s{i}> <http://example.org/p> \"v{i}\" .\n"
        ));
    }
    out
}

/// The body of a successful (2xx) answer. Anything else panics with the URL, the
/// status and the body: an error page must never pass for a result (two instances
/// answering the same error are not "the same contents").
pub async fn success_text(response: reqwest::Response) -> String {
    let status = response.status();
    let url = response.url().clone();
    let body = response
        .text()
        .await
        .unwrap_or_else(|e| panic!("{url} answered {status}, and its body could not be read: {e}"));
    assert!(status.is_success(), "{url} answered {status}: {body}");
    body
}

/// The JSON body of a successful (2xx) answer; panics as [`success_text`] does, or when
/// the body is not JSON.
pub async fn success_json(response: reqwest::Response) -> serde_json::Value {
    let url = response.url().clone();
    let body = success_text(response).await;
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url} answered no JSON ({e}): {body}"))
}

pub async fn size(client: &Client, server: &Server, repository: &str) -> u64 {
    let text = success_text(
        client
            .get(server.url(&format!("/repositories/{repository}/size")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("size is not a number: {text}"))
}

/// The single value of a one-row, one-column SELECT, as text.
pub async fn select_one(client: &Client, url: &str, query: &str) -> String {
    let response = client
        .get(url.to_owned())
        .query(&[("query", query)])
        .header("accept", "application/sparql-results+json")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        200,
        "query failed: {}",
        response.text().await.unwrap()
    );
    let json: serde_json::Value = response.json().await.unwrap();
    let binding = &json["results"]["bindings"][0];
    let var = json["head"]["vars"][0].as_str().unwrap();
    binding[var]["value"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// How long a test waits for what should happen soon (replication, expiry, a restart
/// noticed): generous, because a busy two-core machine may stall any process for
/// seconds. Tests print how long things took; they assert no speed.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Polls `check` every 100 ms until it holds; panics naming `what` after `within`.
pub async fn wait_for(what: &str, within: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
