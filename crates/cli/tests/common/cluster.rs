//! A cluster of real `quadmesh` processes on loopback, each on its own 127.0.0.x
//! address, reaching the others by name (`nodeN.test`, through a per-process hosts file
//! that quadmesh reads at every connection) via one TCP proxy per directed pair, which
//! a test can cut, stall (silent but open), heal or make corrupt bytes.

#![allow(dead_code)]

use super::{
    free_port, serve_command, success_json, success_text, wait_until_up_at, Client, PASSWORD, USER,
};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A TCP forwarder that can be cut (connections dropped, new ones refused), stalled
/// (connections kept open, new ones accepted, but nothing forwarded either way: a
/// half-open socket, a paused peer, a black hole), healed, re-targeted, and told to
/// flip bits in the bytes it forwards back to the caller.
pub struct Proxy {
    pub listen: SocketAddr,
    target: Arc<Mutex<SocketAddr>>,
    cut: Arc<AtomicBool>,
    stalled: Arc<tokio::sync::watch::Sender<bool>>,
    corrupt: Arc<AtomicUsize>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    acceptor: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(listen: SocketAddr, target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind(listen)
            .await
            .unwrap_or_else(|e| panic!("proxy cannot listen on {listen}: {e}"));
        let target = Arc::new(Mutex::new(target));
        let cut = Arc::new(AtomicBool::new(false));
        let stalled = Arc::new(tokio::sync::watch::Sender::new(false));
        let corrupt = Arc::new(AtomicUsize::new(0));
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let acceptor = {
            let (target, cut, stalled, corrupt, connections) = (
                target.clone(),
                cut.clone(),
                stalled.clone(),
                corrupt.clone(),
                connections.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        return;
                    };
                    if cut.load(Ordering::SeqCst) {
                        drop(client);
                        continue;
                    }
                    let to = *target.lock().unwrap();
                    let corrupt = corrupt.clone();
                    let stalled = stalled.subscribe();
                    let task = tokio::spawn(async move {
                        let Ok(server) = TcpStream::connect(to).await else {
                            return;
                        };
                        forward(client, server, corrupt, stalled).await;
                    });
                    connections.lock().unwrap().push(task);
                }
            })
        };
        Proxy {
            listen,
            target,
            cut,
            stalled,
            corrupt,
            connections,
            acceptor,
        }
    }

    /// Drops every open connection and refuses new ones.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    /// Keeps every connection open, and accepts new ones, but forwards nothing either
    /// way until healed.
    pub fn stall(&self) {
        self.stalled.send_replace(true);
    }

    /// Undoes a cut or a stall (stalled connections resume where they stopped).
    pub fn heal(&self) {
        self.cut.store(false, Ordering::SeqCst);
        self.stalled.send_replace(false);
    }

    /// Flips one bit in each of the next `n` chunks sent back to the caller.
    pub fn corrupt_next(&self, n: usize) {
        self.corrupt.store(n, Ordering::SeqCst);
    }

    pub fn retarget(&self, target: SocketAddr) {
        *self.target.lock().unwrap() = target;
        self.cut();
        self.heal();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.acceptor.abort();
        self.cut();
    }
}

async fn forward(
    client: TcpStream,
    server: TcpStream,
    corrupt: Arc<AtomicUsize>,
    stalled: tokio::sync::watch::Receiver<bool>,
) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let upstream = {
        let mut stalled = stalled.clone();
        tokio::spawn(async move {
            let mut buffer = vec![0u8; 64 * 1024];
            loop {
                let n = match client_read.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if stalled.wait_for(|s| !*s).await.is_err() {
                    break;
                }
                if server_write.write_all(&buffer[..n]).await.is_err() {
                    break;
                }
            }
            let _ = server_write.shutdown().await;
        })
    };
    let mut stalled = stalled;
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = match server_read.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if stalled.wait_for(|s| !*s).await.is_err() {
            break;
        }
        // Leave the HTTP head alone (it is small and comes first): corrupt later chunks.
        if n > 64 && corrupt.load(Ordering::SeqCst) > 0 {
            corrupt.fetch_sub(1, Ordering::SeqCst);
            buffer[n / 2] ^= 0x10;
        }
        if client_write.write_all(&buffer[..n]).await.is_err() {
            break;
        }
    }
    upstream.abort();
}

pub fn instance_ip(index: usize, generation: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, generation as u8, 11 + index as u8)
}

/// The proxy address that instance `from` uses to reach instance `to`.
pub fn pair_ip(from: usize, to: usize, generation: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 1 + from as u8, 1 + to as u8, 1 + generation as u8)
}

pub struct Instance {
    pub index: usize,
    pub name: String,
    pub port: u16,
    pub ip: Ipv4Addr,
    pub data_dir: PathBuf,
    pub hosts_file: PathBuf,
    pub extra: Vec<String>,
    child: Option<Child>,
}

impl Instance {
    pub fn host(&self) -> String {
        format!("node{}.test", self.index)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}:{}{path}", self.ip, self.port)
    }

    pub fn repo_url(&self, path: &str) -> String {
        self.url(&format!("/repositories/{}{path}", Cluster::REPO))
    }

    pub fn socket(&self) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(self.ip), self.port)
    }

    pub fn start(&mut self, with_credentials: bool) {
        let mut command = serve_command(
            &self.data_dir,
            IpAddr::V4(self.ip),
            self.port,
            &self.extra,
            with_credentials,
        );
        command.env("QUADMESH_HOSTS_FILE", &self.hosts_file);
        self.child = Some(command.spawn().expect("start quadmesh"));
        wait_until_up_at(self.socket());
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }

    pub fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            super::terminate(child);
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One cluster at a time in a test binary. Cargo runs test binaries one after another
/// but the tests inside one in parallel; several clusters of three to five processes
/// at once on two cores starve one another (and every deadline with them).
static ONE_CLUSTER_AT_A_TIME: std::sync::LazyLock<Arc<tokio::sync::Mutex<()>>> =
    std::sync::LazyLock::new(Arc::default);

pub struct Cluster {
    pub dir: PathBuf,
    pub instances: Vec<Instance>,
    /// `proxies[from][to]`.
    pub proxies: Vec<Vec<Option<Proxy>>>,
    pub client: Client,
    generation: usize,
    /// Held while the cluster lives; dropped after the instances (fields drop in order),
    /// so the next cluster starts once these processes are gone.
    _turn: tokio::sync::OwnedMutexGuard<()>,
}

impl Cluster {
    pub const REPO: &'static str = "shared";

    /// `n` instances, not yet in a cluster; `extra` flags for every `serve`. Waits for
    /// any other cluster of this test binary to be dropped first (a test must not launch
    /// a second cluster while it holds one).
    pub async fn launch(dir: &Path, n: usize, extra: &[&str]) -> Cluster {
        let turn = ONE_CLUSTER_AT_A_TIME.clone().lock_owned().await;
        let mut instances = Vec::new();
        for index in 0..n {
            let data_dir = dir.join(format!("node{index}"));
            std::fs::create_dir_all(&data_dir).unwrap();
            instances.push(Instance {
                index,
                name: format!("node{index}"),
                port: free_port(),
                ip: instance_ip(index, 0),
                data_dir: data_dir.clone(),
                hosts_file: dir.join(format!("hosts-{index}")),
                extra: extra.iter().map(|s| s.to_string()).collect(),
                child: None,
            });
        }
        let mut cluster = Cluster {
            dir: dir.to_owned(),
            instances,
            proxies: Vec::new(),
            client: Client::default(),
            generation: 0,
            _turn: turn,
        };
        cluster.rebuild_network().await;
        for instance in &mut cluster.instances {
            instance.start(true);
        }
        cluster
    }

    /// (Re)creates the pair proxies and hosts files for the instances' current
    /// addresses; each rebuild uses new proxy addresses, so names must be re-resolved.
    pub async fn rebuild_network(&mut self) {
        self.proxies.clear();
        let n = self.instances.len();
        for from in 0..n {
            let mut row = Vec::new();
            let mut hosts = String::new();
            for to in 0..n {
                if from == to {
                    hosts.push_str(&format!(
                        "{} {}\n",
                        self.instances[to].ip,
                        self.instances[to].host()
                    ));
                    row.push(None);
                    continue;
                }
                let ip = pair_ip(from, to, self.generation);
                let listen = SocketAddr::new(IpAddr::V4(ip), self.instances[to].port);
                row.push(Some(
                    Proxy::start(listen, self.instances[to].socket()).await,
                ));
                hosts.push_str(&format!("{ip} {}\n", self.instances[to].host()));
            }
            std::fs::write(&self.instances[from].hosts_file, hosts).unwrap();
            self.proxies.push(row);
        }
        self.generation += 1;
    }

    pub fn spec(&self, index: usize) -> String {
        let i = &self.instances[index];
        format!("{USER}:{PASSWORD}@{}:{}/{}", i.host(), i.port, Self::REPO)
    }

    /// Creates the cluster on instance 0 and grows every other instance into it.
    pub async fn form(&self) {
        self.form_first(self.instances.len()).await;
    }

    /// Creates the cluster on instance 0 and grows instances 1..n into it.
    pub async fn form_first(&self, n: usize) {
        let first = &self.instances[0];
        let response = self
            .client
            .put(first.repo_url("/repl/createCluster"))
            .query(&[
                ("host", first.host()),
                ("port", first.port.to_string()),
                ("instanceName", first.name.clone()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204, "{}", response.text().await.unwrap());
        for index in 1..n {
            self.grow(index).await;
        }
        self.settle(n).await;
    }

    /// Waits until instances 0..n all hold one configuration, the newest any of them
    /// holds at that moment (one may be made meanwhile: a hand-over's end), and are
    /// connected to one another.
    pub async fn settle(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            assert!(Instant::now() < deadline, "the cluster did not settle");
            let mut versions = Vec::new();
            let mut connected = true;
            for i in 0..n {
                let status = self.status(i).await;
                connected &= status["instances"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|m| m["state"] == "self" || m["state"] == "connected");
                versions.push(status["configVersion"].as_u64());
            }
            if connected && versions.iter().all(|v| v.is_some() && *v == versions[0]) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn grow(&self, index: usize) {
        let new = &self.instances[index];
        let response = self
            .client
            .put(self.instances[0].repo_url("/repl/growCluster"))
            .query(&[
                ("host", new.host()),
                ("port", new.port.to_string()),
                ("name", Self::REPO.to_string()),
                ("user", USER.to_string()),
                ("password", PASSWORD.to_string()),
                ("instanceName", new.name.clone()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204, "{}", response.text().await.unwrap());
    }

    /// Cuts (both ways) every link between instance `a` and instance `b`.
    pub fn cut(&self, a: usize, b: usize) {
        self.proxies[a][b].as_ref().unwrap().cut();
        self.proxies[b][a].as_ref().unwrap().cut();
    }

    pub fn heal(&self, a: usize, b: usize) {
        self.proxies[a][b].as_ref().unwrap().heal();
        self.proxies[b][a].as_ref().unwrap().heal();
    }

    /// Stalls (both ways) every link between instance `a` and instance `b`: connections
    /// stay open, nothing gets through.
    pub fn stall(&self, a: usize, b: usize) {
        self.proxies[a][b].as_ref().unwrap().stall();
        self.proxies[b][a].as_ref().unwrap().stall();
    }

    pub async fn update(&self, index: usize, update: &str) -> reqwest::Response {
        self.client
            .post(self.instances[index].repo_url(""))
            .form(&[("update", update)])
            .send()
            .await
            .unwrap()
    }

    /// Sorted N-Quads of an instance: identical text means identical quads. Panics on
    /// an error answer (with its status and body).
    pub async fn export(&self, index: usize) -> String {
        let text = success_text(
            self.client
                .get(self.instances[index].repo_url("/statements"))
                .header("accept", "application/n-quads")
                .send()
                .await
                .unwrap(),
        )
        .await;
        let mut lines: Vec<&str> = text.lines().collect();
        lines.sort_unstable();
        lines.join("\n")
    }

    /// The `/metrics` text of an instance.
    pub async fn metrics(&self, index: usize) -> String {
        success_text(
            self.client
                .get(self.instances[index].url("/metrics"))
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// `repl/status` of an instance; panics on an error answer.
    pub async fn status(&self, index: usize) -> serde_json::Value {
        success_json(
            self.client
                .get(self.instances[index].repo_url("/repl/status"))
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// Waits until every running instance exports the same quads and reports the same
    /// version vector for itself; returns how long that took.
    pub async fn converge(&self, within: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let running: Vec<usize> = self
                .instances
                .iter()
                .filter(|i| i.is_running())
                .map(|i| i.index)
                .collect();
            let mut exports = Vec::new();
            let mut vectors = Vec::new();
            for &i in &running {
                exports.push(self.export(i).await);
                let status = self.status(i).await;
                let own = status["instances"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|m| m["state"] == "self")
                    .map(|m| m["versionVector"].clone());
                vectors.push(own);
            }
            if exports.windows(2).all(|w| w[0] == w[1]) && vectors.windows(2).all(|w| w[0] == w[1])
            {
                return started.elapsed();
            }
            if started.elapsed() > within {
                let sizes: Vec<usize> = exports.iter().map(|e| e.lines().count()).collect();
                panic!("no convergence within {within:?}: sizes {sizes:?}, version vectors {vectors:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
