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
        Self::quadmesh_limited(binary, name, data_dir, None)
    }

    /// [`Server::quadmesh`], in the cgroup whose `cgroup.procs` is `cgroup` when given:
    /// a shell enters it and then becomes the server (`exec`), so that the server runs
    /// in it from its first instruction and reads its limit at start, as in a container.
    pub fn quadmesh_limited(
        binary: &Path,
        name: &str,
        data_dir: &Path,
        cgroup: Option<&Path>,
    ) -> Result<Server> {
        let port = free_port();
        let mut command = match cgroup {
            Some(procs) => {
                let mut shell = Command::new("sh");
                shell
                    .args(["-c", "echo $$ > \"$1\" && shift && exec \"$@\"", "sh"])
                    .arg(procs)
                    .arg(binary);
                shell
            }
            None => Command::new(binary),
        };
        let child = command
            .args(["serve", "--bind", "127.0.0.1", "--port", &port.to_string()])
            .arg("--data-dir")
            .arg(data_dir)
            .env("QUADMESH_USER", USER)
            .env("QUADMESH_PASSWORD", PASSWORD)
            .env("QUADMESH_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log_file(data_dir, name)?)
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

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How the server ended, if it has.
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Peak resident memory since the start or the last [`Server::reset_peak`] (VmHWM),
    /// in MiB.
    pub fn peak_memory_mib(&self) -> f64 {
        status_mib(self.child.id(), "VmHWM:")
    }

    /// CPU time the server has used since it started (user and system), in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        cpu_seconds(self.child.id())
    }

    /// Resident memory now (VmRSS), in MiB.
    pub fn memory_mib(&self) -> f64 {
        status_mib(self.child.id(), "VmRSS:")
    }

    /// Starts the peak ([`Server::peak_memory_mib`]) again from the memory now, so that
    /// the peak of one request can be read (`/proc/PID/clear_refs`, Linux 4.0 on).
    pub fn reset_peak(&self) -> Result<()> {
        std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5")
            .context("cannot reset the peak memory of a server (/proc/PID/clear_refs)")
    }
}

/// CPU time a process has used (user and system, every thread), in seconds: fields 14
/// and 15 of `/proc/PID/stat`, in clock ticks.
fn cpu_seconds(pid: u32) -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    let ticks = *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse::<f64>().ok())
            .unwrap_or(100.0)
    });
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // After the command's name, which may hold spaces: field 3 on.
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            let utime = fields.get(11)?.parse::<f64>().ok()?;
            let stime = fields.get(12)?.parse::<f64>().ok()?;
            Some((utime + stime) / ticks)
        })
        .unwrap_or(0.0)
}

fn status_mib(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// What a finished command took: wall time and its peak resident memory.
pub struct Measured {
    pub seconds: f64,
    pub peak_mib: f64,
}

/// Runs `command` to its end (its output discarded, its errors shown on failure) and
/// measures it. The peak memory is the child's own VmHWM, read every 10 ms while it
/// runs (so growth in its last 10 ms could be missed). Not `wait4`'s `ru_maxrss`: the
/// kernel records there the high-water mark of the memory the child was spawned from
/// too (this benchmark's own), which would hide a small command's peak.
pub fn measure(mut command: Command) -> Result<Measured> {
    let program = format!("{:?}", command.get_program());
    let started = Instant::now();
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {program}"))?;
    let pid = child.id();
    let mut stderr = child.stderr.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watching = done.clone();
    let watcher = std::thread::spawn(move || {
        let mut peak: f64 = 0.0;
        while !watching.load(std::sync::atomic::Ordering::Relaxed) {
            peak = peak.max(status_mib(pid, "VmHWM:"));
            std::thread::sleep(Duration::from_millis(10));
        }
        peak
    });
    let status = child.wait()?;
    let seconds = started.elapsed().as_secs_f64();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak_mib = watcher.join().unwrap_or(0.0);
    let errors = reader.join().unwrap_or_default();
    if !status.success() {
        bail!("{program} failed ({status}): {}", errors.trim());
    }
    Ok(Measured { seconds, peak_mib })
}

/// Where a server's standard error goes: `NAME.log` next to its data directory, so that
/// the table stays readable; [`logged_errors`] reports what it says.
fn log_file(data_dir: &Path, name: &str) -> Result<std::fs::File> {
    let dir = data_dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    Ok(std::fs::File::create(dir.join(format!("{name}.log")))?)
}

/// The lines of the servers' logs in `dir` that report an error, named by server.
pub fn logged_errors(dir: &Path) -> Vec<String> {
    let mut errors = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return errors;
    };
    let mut logs: Vec<_> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    for log in logs {
        let name = log.file_stem().unwrap_or_default().to_string_lossy();
        for line in std::fs::read_to_string(&log).unwrap_or_default().lines() {
            if line.contains("ERROR") {
                errors.push(format!("{name}: {}", without_colours(line)));
            }
        }
    }
    errors
}

/// `line` without its terminal colour codes (`ESC [ ... m`).
fn without_colours(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
