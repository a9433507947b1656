//! The servers under measurement, as child processes with their own data directories.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const USER: &str = "admin";
pub const PASSWORD: &str = "bench-password";

pub struct Server {
    pub name: String,
    pub port: u16,
    pub data_dir: PathBuf,
    child: Child,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Server {
    pub fn quadmesh(binary: &Path, name: &str, data_dir: &Path) -> Result<Server> {
        let port = free_port();
        let child = Command::new(binary)
            .args(["serve", "--bind", "127.0.0.1", "--port", &port.to_string()])
            .arg("--data-dir")
            .arg(data_dir)
            .env("QUADMESH_USER", USER)
            .env("QUADMESH_PASSWORD", PASSWORD)
            .env("QUADMESH_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        Self::wait(
            Server {
                name: name.into(),
                port,
                data_dir: data_dir.into(),
                child,
            },
            "/version",
        )
    }

    pub fn oxigraph(binary: &Path, data_dir: &Path) -> Result<Server> {
        let port = free_port();
        let child = Command::new(binary)
            .arg("serve")
            .arg("--location")
            .arg(data_dir)
            .args(["--bind", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        Self::wait(
            Server {
                name: "oxigraph serve".into(),
                port,
                data_dir: data_dir.into(),
                child,
            },
            "/",
        )
    }

    fn wait(mut server: Server, path: &str) -> Result<Server> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", server.port)) {
                use std::io::{Read, Write};
                let _ = write!(
                    stream,
                    "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
                );
                let mut answer = String::new();
                let _ = stream.read_to_string(&mut answer);
                if answer.starts_with("HTTP/1.1 200") {
                    return Ok(server);
                }
            }
            if let Some(status) = server.child.try_wait()? {
                bail!("{} exited ({status})", server.name);
            }
            if Instant::now() > deadline {
                bail!("{} did not come up", server.name);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Peak resident memory so far (VmHWM), in MiB.
    pub fn peak_memory_mib(&self) -> f64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
            .map_or(0.0, |kb| kb / 1024.0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
