//! TLS, tried with real server processes and certificates made at test time: clients
//! with and without the CA, plain HTTP on a TLS port, a handshake that never ends, a
//! cluster replicating over TLS, a peer whose certificate comes from another CA, the
//! certificate files replaced under a running server, and the CLI with `--ca`.

mod common;

use common::{binary, free_port, serve_command, terminate, PASSWORD, USER};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const REPO: &str = "repo";

/// A certificate authority made for one test.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let certificate = params.self_signed(&key).unwrap();
        Ca {
            pem: certificate.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A server certificate for `names` (DNS names or IP addresses): (PEM, key PEM, DER).
    fn issue(&self, names: &[&str]) -> (String, String, Vec<u8>) {
        self.issue_until(names, None)
    }

    /// The same, valid until `not_after` (Unix seconds) when given.
    fn issue_until(&self, names: &[&str], not_after: Option<i64>) -> (String, String, Vec<u8>) {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        if let Some(t) = not_after {
            params.not_after = rcgen::date_time_ymd(1970, 1, 1) + Duration::from_secs(t as u64);
        }
        params
            .distinguished_name
            .push(DnType::CommonName, "quadmesh test server");
        let certificate = params.signed_by(&key, &self.issuer).unwrap();
        (
            certificate.pem(),
            key.serialize_pem(),
            certificate.der().to_vec(),
        )
    }
}

/// Writes `text` to `path` whole (a temporary file renamed over it), as a secret
/// volume's update would.
fn replace_file(path: &Path, text: &str) {
    let temporary = path.with_extension("new");
    std::fs::write(&temporary, text).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

/// The files of one server's TLS: its certificate and key, and the CA it trusts.
struct TlsFiles {
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
}

impl TlsFiles {
    fn write(dir: &Path, name: &str, ca: &Ca, trusted: &Ca, names: &[&str]) -> (TlsFiles, Vec<u8>) {
        let (cert, key, der) = ca.issue(names);
        let files = TlsFiles {
            cert: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
            ca: dir.join(format!("{name}-ca.crt")),
        };
        replace_file(&files.cert, &cert);
        replace_file(&files.key, &key);
        replace_file(&files.ca, &trusted.pem);
        (files, der)
    }

    fn args(&self) -> Vec<String> {
        vec![
            "--tls-cert".into(),
            self.cert.display().to_string(),
            "--tls-key".into(),
            self.key.display().to_string(),
            "--tls-ca".into(),
            self.ca.display().to_string(),
        ]
    }
}

/// A TLS server process whose log lines are kept (and still shown).
struct TlsServer {
    port: u16,
    child: Option<Child>,
    log: Arc<Mutex<Vec<String>>>,
}

impl TlsServer {
    async fn start(data_dir: &Path, extra: &[String], ca_pem: &str) -> TlsServer {
        Self::start_on(free_port(), data_dir, extra, ca_pem, true).await
    }

    /// Stops it and starts it again on its port and data, with `extra` flags.
    async fn restart_with(&mut self, data_dir: &Path, extra: &[String], ca_pem: &str) {
        if let Some(child) = self.child.take() {
            terminate(child);
        }
        *self = Self::start_on(self.port, data_dir, extra, ca_pem, false).await;
    }

    async fn start_on(
        port: u16,
        data_dir: &Path,
        extra: &[String],
        ca_pem: &str,
        with_credentials: bool,
    ) -> TlsServer {
        let mut command = serve_command(
            data_dir,
            IpAddr::from([127, 0, 0, 1]),
            port,
            extra,
            with_credentials,
        );
        command.env("QUADMESH_LOG", "info").stderr(Stdio::piped());
        let mut child = command.spawn().expect("start quadmesh");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[{port}] {line}");
                lines.lock().unwrap().push(line);
            }
        });
        let server = TlsServer {
            port,
            child: Some(child),
            log,
        };
        server.wait_until_up(ca_pem).await;
        server
    }

    async fn wait_until_up(&self, ca_pem: &str) {
        let client = client(ca_pem);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if client
                .get(self.url("/version"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("quadmesh did not come up with TLS on port {}", self.port);
    }

    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.port)
    }

    fn spec(&self, host: &str) -> String {
        format!("https://{USER}:{PASSWORD}@{host}:{}/{REPO}", self.port)
    }

    fn logged(&self, needle: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(needle))
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            terminate(child);
        }
    }
}

fn client(ca_pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(ca_pem.as_bytes()).unwrap())
        .tls_info(true)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// The leaf certificate (DER) a response came with.
fn served_certificate(response: &reqwest::Response) -> Vec<u8> {
    response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .expect("a TLS response carries the server's certificate")
        .to_vec()
}

/// `quadmesh ARGS...`: (success, stdout, stderr).
fn quadmesh(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(binary())
        .args(args)
        .env_remove("QUADMESH_USER")
        .env_remove("QUADMESH_PASSWORD")
        .env_remove("QUADMESH_CA")
        .output()
        .expect("run quadmesh");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn error_chain(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[tokio::test]
async fn https_with_the_ca_works_without_it_fails_and_plain_http_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let (files, _) = TlsFiles::write(dir.path(), "server", &ca, &ca, &["localhost", "127.0.0.1"]);
    let mut args = files.args();
    args.extend(["--header-read-timeout".into(), "2".into()]);
    let server = TlsServer::start(&dir.path().join("data"), &args, &ca.pem).await;
    let with_ca = client(&ca.pem);

    // With the CA: the API, authenticated, and URLs handed back name https.
    let created = with_ca
        .put(server.url("/repositories/books"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success(), "{}", created.status());
    let listed: serde_json::Value = with_ca
        .get(server.url("/repositories"))
        .basic_auth(USER, Some(PASSWORD))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let uri = listed[0]["uri"].as_str().unwrap();
    assert!(uri.starts_with("https://"), "{uri}");

    // The UI's sign-in cookie is for https only.
    let browser = reqwest::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(ca.pem.as_bytes()).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let signed_in = browser
        .post(server.url("/ui/login"))
        .header("origin", format!("https://localhost:{}", server.port))
        .form(&[("user", USER), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    let cookie = signed_in
        .headers()
        .get("set-cookie")
        .expect("signed in")
        .to_str()
        .unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");

    // Without it (the system's trust store only): the certificate is refused.
    let error = reqwest::Client::new()
        .get(server.url("/version"))
        .send()
        .await
        .unwrap_err();
    assert!(
        error_chain(&error).to_lowercase().contains("certificate"),
        "{}",
        error_chain(&error)
    );
    // curl, as an operator would try it.
    let ca_file = files.ca.display().to_string();
    // No quiet skip without curl: scripts/test installs it.
    let curl = |extra: &[&str]| {
        Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}"])
            .args(extra)
            .arg(server.url("/version"))
            .output()
            .unwrap_or_else(|e| panic!("cannot run curl ({e}); scripts/test installs it"))
    };
    let output = curl(&["--cacert", &ca_file]);
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "200",
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let without = curl(&[]);
    assert!(!without.status.success(), "curl without the CA must fail");
    // HTTP/2 (ALPN): the URLs handed back still name the host and port used.
    let listed = Command::new("curl")
        .args(["-sS", "--http2", "--cacert", &ca_file, "-u"])
        .arg(format!("{USER}:{PASSWORD}"))
        .args(["-H", "accept: application/json", "-w", "\n%{http_version}"])
        .arg(server.url("/repositories"))
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(listed.ends_with("\n2"), "{listed}");
    let expected = format!("\"https://localhost:{}/repositories/books\"", server.port);
    assert!(listed.contains(&expected), "{listed}");

    // Plain HTTP on the TLS port: a 400 naming https, and nothing done.
    let mut plain = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    plain
        .write_all(b"PUT /repositories/other HTTP/1.1\r\nhost: x\r\nauthorization: Basic YWRtaW46dGVzdC1wYXNzd29yZA==\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    plain.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("https://"), "{answer}");
    let status = with_ca
        .get(server.url("/repositories/other/size"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 404, "the plain request must have changed nothing");

    // A handshake that never completes is closed after the header-read timeout (2 s
    // here; the bound below is loose for a busy machine, yet well under the default
    // 30 s, so it still tells the setting was used).
    let mut stalled = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    stalled.write_all(&[0x16, 0x03, 0x01]).unwrap();
    stalled
        .set_read_timeout(Some(Duration::from_secs(40)))
        .unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let read = stalled.read_to_end(&mut rest);
    let timed_out = matches!(&read, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut));
    assert!(
        !timed_out && started.elapsed() < Duration::from_secs(20),
        "a stalled handshake must be closed by the server ({read:?} after {:?})",
        started.elapsed()
    );
    // A new connection: the pooled one fell to the same 2 s timeout just now.
    let metrics = client(&ca.pem)
        .get(server.url("/metrics"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let failures: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("quadmesh_tls_handshake_failures_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no handshake failures counted in:\n{metrics}"));
    assert!(failures >= 1, "{failures}");
}

#[tokio::test]
async fn plain_http_is_served_beside_tls_only_when_kept() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let (files, _) = TlsFiles::write(dir.path(), "server", &ca, &ca, &["localhost"]);
    let mut args = files.args();
    args.push("--tls-keep-plain-http".into());
    let server = TlsServer::start(&dir.path().join("data"), &args, &ca.pem).await;
    let plain = reqwest::get(format!("http://127.0.0.1:{}/version", server.port))
        .await
        .unwrap();
    assert_eq!(plain.status(), 200);
    let secure = client(&ca.pem)
        .get(server.url("/version"))
        .send()
        .await
        .unwrap();
    assert_eq!(secure.status(), 200);

    // Refused at start: a key without its certificate.
    let (ok, _, stderr) = quadmesh(&[
        "serve",
        "--data-dir",
        &dir.path().join("other").display().to_string(),
        "--tls-key",
        &files.key.display().to_string(),
    ]);
    assert!(
        !ok && stderr.contains("--tls-key is given without --tls-cert"),
        "{stderr}"
    );
}

#[tokio::test]
async fn replacing_the_certificate_files_takes_effect_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let (files, first) = TlsFiles::write(dir.path(), "server", &ca, &ca, &["localhost"]);
    let server = TlsServer::start(&dir.path().join("data"), &files.args(), &ca.pem).await;

    // An established connection (kept alive in the pool) and the first certificate.
    let kept = client(&ca.pem);
    let response = kept.get(server.url("/version")).send().await.unwrap();
    assert_eq!(served_certificate(&response), first);

    // Rotation: a new key and certificate, as cert-manager writes them.
    let (cert, key, second) = ca.issue_until(&["localhost"], Some(SECOND_EXPIRY));
    assert_ne!(first, second);
    replace_file(&files.key, &key);
    replace_file(&files.cert, &cert);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = client(&ca.pem)
            .get(server.url("/version"))
            .send()
            .await
            .unwrap();
        if served_certificate(&response) == second {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate was not served"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(server.logged("TLS certificate reloaded"));
    // The connection opened before goes on, with the certificate it was opened with.
    let response = kept.get(server.url("/version")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(served_certificate(&response), first);

    // A bad pair (a certificate whose key is not the one beside it) is refused loudly
    // and the current one kept.
    let (third_cert, _, _) = ca.issue(&["localhost"]);
    replace_file(&files.cert, &third_cert);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.logged("still serving the previous certificate") {
        assert!(Instant::now() < deadline, "the bad pair was not reported");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let response = client(&ca.pem)
        .get(server.url("/version"))
        .send()
        .await
        .unwrap();
    assert_eq!(served_certificate(&response), second);
    // Garbage in the certificate file: the same.
    replace_file(&files.cert, "not a certificate\n");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let response = client(&ca.pem)
        .get(server.url("/version"))
        .send()
        .await
        .unwrap();
    assert_eq!(served_certificate(&response), second);
    assert!(server.logged("holds no PEM certificate"));

    // What operators watch: the served certificate's expiry, reloads and refusals.
    let metrics = client(&ca.pem)
        .get(server.url("/metrics"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        format!("quadmesh_tls_certificate_expiry_timestamp_seconds {SECOND_EXPIRY}"),
        "quadmesh_tls_certificate_reloads_total 1".to_string(),
        "quadmesh_tls_certificate_reload_failures_total 2".to_string(),
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no '{line}' in:\n{metrics}"
        );
    }
}

/// 2031-05-06 07:08:09 UTC, the end of the rotated certificate's validity.
const SECOND_EXPIRY: i64 = 1_935_817_689;

#[tokio::test]
async fn a_three_instance_cluster_replicates_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("cluster CA");
    // Instances are reached at 127.0.0.1 but their certificates name "localhost" and
    // the cluster's peer name only: peers are checked against --tls-peer-name.
    let mut servers = Vec::new();
    for i in 0..3 {
        let (files, _) = TlsFiles::write(
            dir.path(),
            &format!("s{i}"),
            &ca,
            &ca,
            &["localhost", "quadmesh-peer.test"],
        );
        let mut args = files.args();
        args.extend(["--tls-peer-name".into(), "quadmesh-peer.test".into()]);
        servers.push(TlsServer::start(&dir.path().join(format!("data{i}")), &args, &ca.pem).await);
    }
    let ca_file = dir.path().join("s0-ca.crt").display().to_string();
    let http = client(&ca.pem);

    // Members' addresses are 127.0.0.1:PORT, which no certificate names.
    let created = http
        .put(servers[0].url(&format!("/repositories/{REPO}/repl/createCluster")))
        .basic_auth(USER, Some(PASSWORD))
        .query(&[
            ("host", "127.0.0.1".to_string()),
            ("port", servers[0].port.to_string()),
            ("instanceName", "i0".to_string()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 204, "{}", created.text().await.unwrap());
    for (i, server) in servers.iter().enumerate().skip(1) {
        let grown = http
            .put(servers[0].url(&format!("/repositories/{REPO}/repl/growCluster")))
            .basic_auth(USER, Some(PASSWORD))
            .query(&[
                ("host", "127.0.0.1".to_string()),
                ("port", server.port.to_string()),
                ("name", REPO.to_string()),
                ("user", USER.to_string()),
                ("password", PASSWORD.to_string()),
                ("instanceName", format!("i{i}")),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(
            grown.status(),
            204,
            "grow i{i}: {}",
            grown.text().await.unwrap()
        );
    }

    // Writes on every instance at once; every acknowledged one must reach every
    // instance.
    let acknowledged = Arc::new(Mutex::new(BTreeSet::new()));
    let mut writers = Vec::new();
    for (i, server) in servers.iter().enumerate() {
        let (http, acknowledged) = (http.clone(), acknowledged.clone());
        let url = format!("https://localhost:{}/repositories/{REPO}", server.port);
        writers.push(tokio::spawn(async move {
            for n in 0..25 {
                let subject = format!("http://example.org/w{i}-{n}");
                let update = format!("INSERT DATA {{ <{subject}> <http://example.org/p> {n} }}");
                let response = http
                    .post(&url)
                    .basic_auth(USER, Some(PASSWORD))
                    .form(&[("update", update)])
                    .send()
                    .await;
                if response.is_ok_and(|r| r.status().is_success()) {
                    acknowledged.lock().unwrap().insert(subject);
                }
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert_eq!(
        acknowledged.len(),
        75,
        "every write on a healthy cluster is taken"
    );
    for server in &servers {
        let url = format!("https://localhost:{}/repositories/{REPO}", server.port);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let held: BTreeSet<String> = http
                .get(&url)
                .basic_auth(USER, Some(PASSWORD))
                .query(&[("query", "SELECT ?s WHERE { ?s ?p ?o }")])
                .header("accept", "application/sparql-results+json")
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()["results"]["bindings"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b["s"]["value"].as_str().unwrap().to_owned())
                .collect();
            if acknowledged.is_subset(&held) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "instance on port {} lacks {} acknowledged writes",
                server.port,
                acknowledged.difference(&held).count()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // The status the CLI shows over https: every member connected.
    let (ok, stdout, stderr) = quadmesh(&[
        "--ca",
        &ca_file,
        "repl",
        "status",
        &servers[1].spec("localhost"),
        "--json",
    ]);
    assert!(ok, "{stderr}");
    let status: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    for member in status["instances"].as_array().unwrap() {
        assert!(
            member["state"] == "self" || member["state"] == "connected",
            "{member}"
        );
    }
}

#[tokio::test]
async fn a_peer_with_a_certificate_from_another_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ours = Ca::new("our CA");
    let theirs = Ca::new("another CA");
    let (good, _) = TlsFiles::write(dir.path(), "good", &ours, &ours, &["localhost"]);
    // Trusts our CA, but presents a certificate from another one.
    let (odd, _) = TlsFiles::write(dir.path(), "odd", &theirs, &ours, &["localhost"]);
    let controlling = TlsServer::start(&dir.path().join("a"), &good.args(), &ours.pem).await;
    let stranger = TlsServer::start(&dir.path().join("b"), &odd.args(), &theirs.pem).await;
    let ca_file = good.ca.display().to_string();
    let (ok, _, stderr) = quadmesh(&[
        "--ca",
        &ca_file,
        "repl",
        "create-cluster",
        &controlling.spec("localhost"),
        "a",
    ]);
    assert!(ok, "{stderr}");
    // Growing sends the snapshot to the stranger: the controlling instance refuses its
    // certificate, says so, and the cluster stays as it was.
    let grow = client(&ours.pem)
        .put(controlling.url(&format!("/repositories/{REPO}/repl/growCluster")))
        .basic_auth(USER, Some(PASSWORD))
        .query(&[
            ("host", "localhost".to_string()),
            ("port", stranger.port.to_string()),
            ("name", REPO.to_string()),
            ("user", USER.to_string()),
            ("password", PASSWORD.to_string()),
            ("instanceName", "b".to_string()),
        ])
        .send()
        .await
        .unwrap();
    let status = grow.status();
    let message = grow.text().await.unwrap();
    assert_eq!(status, 502, "{message}");
    assert!(
        message.contains("certificate") && message.contains("UnknownIssuer"),
        "{status} {message}"
    );
    let (ok, stdout, stderr) = quadmesh(&[
        "--ca",
        &ca_file,
        "repl",
        "status",
        &controlling.spec("localhost"),
        "--json",
    ]);
    assert!(ok, "{stderr}");
    let status: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(status["instances"].as_array().unwrap().len(), 1, "{status}");
}

#[tokio::test]
async fn a_member_back_with_a_certificate_from_another_ca_is_not_pulled_from_until_the_ca_file_trusts_it(
) {
    let dir = tempfile::tempdir().unwrap();
    let ours = Ca::new("our CA");
    let theirs = Ca::new("another CA");
    let (a_files, _) = TlsFiles::write(dir.path(), "a", &ours, &ours, &["localhost"]);
    let (b_files, _) = TlsFiles::write(dir.path(), "b", &ours, &ours, &["localhost"]);
    let a = TlsServer::start(&dir.path().join("a"), &a_files.args(), &ours.pem).await;
    let b_data = dir.path().join("b");
    let mut b = TlsServer::start(&b_data, &b_files.args(), &ours.pem).await;
    let ca_file = a_files.ca.display().to_string();
    let (ok, _, stderr) = quadmesh(&[
        "--ca",
        &ca_file,
        "repl",
        "create-cluster",
        &a.spec("localhost"),
        "a",
    ]);
    assert!(ok, "{stderr}");
    let (ok, _, stderr) = quadmesh(&[
        "--ca",
        &ca_file,
        "repl",
        "grow-cluster",
        &a.spec("localhost"),
        &b.spec("localhost"),
        "b",
    ]);
    assert!(ok, "{stderr}");

    // a has measured b's clock (the clock fence: a member of two never measured would
    // keep a from writing while b cannot be reached).
    let http = client(&ours.pem);
    // What a's status says of b.
    let b_at_a = async || -> serde_json::Value {
        let status: serde_json::Value = http
            .get(a.url(&format!("/repositories/{REPO}/repl/status")))
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        status["instances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == "b")
            .cloned()
            .unwrap_or_default()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let b_seen = b_at_a().await;
        if b_seen["clockOffsetMs"].is_i64() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a never measured b's clock: {b_seen}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // b comes back presenting a certificate from another CA (still trusting ours).
    let (odd, _) = TlsFiles::write(dir.path(), "b-odd", &theirs, &ours, &["localhost"]);
    b.restart_with(&b_data, &odd.args(), &theirs.pem).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let state = b_at_a().await["state"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if state.starts_with("disconnected") && state.contains("UnknownIssuer") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a does not show b refused for its certificate: {state}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A write on b is not pulled by a; one on a still reaches b (b trusts our CA).
    let write = |server: &TlsServer, http: &reqwest::Client, subject: &str| {
        let request = http
            .post(server.url(&format!("/repositories/{REPO}")))
            .basic_auth(USER, Some(PASSWORD))
            .form(&[(
                "update",
                format!(
                    "INSERT DATA {{ <http://example.org/{subject}> <http://example.org/p> 1 }}"
                ),
            )]);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            assert!(
                status.is_success(),
                "{status}: {}",
                response.text().await.unwrap()
            );
        }
    };
    write(&b, &client(&theirs.pem), "on-b").await;
    write(&a, &http, "on-a").await;
    let ask = |server: &TlsServer, http: &reqwest::Client, subject: &str| {
        let request = http
            .get(server.url(&format!("/repositories/{REPO}")))
            .basic_auth(USER, Some(PASSWORD))
            .query(&[(
                "query",
                format!("ASK {{ <http://example.org/{subject}> ?p ?o }}"),
            )])
            .header("accept", "application/sparql-results+json");
        async move {
            request
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()["boolean"]
                == true
        }
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ask(&b, &client(&theirs.pem), "on-a").await {
        assert!(Instant::now() < deadline, "b did not pull a's write");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !ask(&a, &http, "on-b").await,
        "a must not take data from an untrusted peer"
    );

    // A CA rotation, without a restart: a's CA file gains the other CA, and a pulls
    // from b again.
    replace_file(&a_files.ca, &format!("{}{}", ours.pem, theirs.pem));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ask(&a, &http, "on-b").await {
        assert!(
            Instant::now() < deadline,
            "a did not trust b after its CA file changed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(a.logged("TLS CA for peers reloaded"));
}

#[tokio::test]
async fn the_cli_works_against_an_https_server_with_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let (files, _) = TlsFiles::write(dir.path(), "server", &ca, &ca, &["localhost"]);
    let server = TlsServer::start(&dir.path().join("data"), &files.args(), &ca.pem).await;
    let ca_file = files.ca.display().to_string();
    let spec = server.spec("localhost");

    let (ok, _, stderr) = quadmesh(&["--ca", &ca_file, "repo", "create", &spec]);
    assert!(ok, "{stderr}");
    let data = dir.path().join("data.nt");
    std::fs::write(&data, common::ntriples(10)).unwrap();
    let (ok, _, stderr) = quadmesh(&["load", &spec, &data.display().to_string(), "--ca", &ca_file]);
    assert!(ok, "{stderr}");
    let (ok, stdout, stderr) = quadmesh(&[
        "--ca",
        &ca_file,
        "query",
        &spec,
        "SELECT (COUNT(*) AS ?n) WHERE { ?s ?p ?o }",
    ]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("10"), "{stdout}");

    // Without --ca: refused, naming the certificate problem; so is a plain spec.
    let (ok, _, stderr) = quadmesh(&["repo", "list", &spec]);
    assert!(!ok);
    assert!(stderr.contains("certificate"), "{stderr}");
    let plain = format!("{USER}:{PASSWORD}@localhost:{}/{REPO}", server.port);
    let (ok, _, stderr) = quadmesh(&["repo", "list", &plain]);
    assert!(!ok);
    assert!(stderr.contains("https://"), "{stderr}");
    // A --ca file that holds no certificate is named.
    let (ok, _, stderr) = quadmesh(&["--ca", &data.display().to_string(), "repo", "list", &spec]);
    assert!(!ok && stderr.contains("no PEM certificate"), "{stderr}");
}
