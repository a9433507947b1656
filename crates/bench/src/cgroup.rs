//! A memory limit for one process, set the way a container runtime sets a pod's: the
//! process in a cgroup of its own with a memory limit (v2 `memory.max`, or v1
//! `memory.limit_in_bytes`), so that the kernel's OOM killer ends it if it goes over,
//! as it would a pod over its limit.
//!
//! Rules it keeps:
//! - The limit is set before any process enters; the process enters before it execs
//!   (see `Server::quadmesh_limited`), so everything it ever uses is charged, and it
//!   finds the limit in its cgroup when it starts, as in a container.
//! - The cgroup is removed when the limit is dropped; the process must have ended by then
//!   (the kernel refuses to remove a cgroup with processes in it, and the removal is
//!   best effort).

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

const ROOT: &str = "/sys/fs/cgroup";

#[derive(Clone, Copy)]
enum Version {
    V1,
    V2,
}

pub struct MemoryLimit {
    dir: PathBuf,
    version: Version,
}

impl MemoryLimit {
    /// A new cgroup `name` limited to `limit_mib` MiB, with no process in it yet.
    pub fn create(name: &str, limit_mib: u64) -> Result<MemoryLimit> {
        let bytes = (limit_mib * 1024 * 1024).to_string();
        let v2_controllers = Path::new(ROOT).join("cgroup.controllers");
        let limit = if std::fs::read_to_string(&v2_controllers)
            .is_ok_and(|controllers| controllers.split_whitespace().any(|c| c == "memory"))
        {
            // The root must hand the memory controller down to its children.
            let _ = std::fs::write(Path::new(ROOT).join("cgroup.subtree_control"), "+memory");
            let limit = MemoryLimit {
                dir: Path::new(ROOT).join(name),
                version: Version::V2,
            };
            std::fs::create_dir_all(&limit.dir)?;
            limit.write("memory.max", &bytes)?;
            // No swap: over the limit means killed, not slowed (a pod has no swap).
            let _ = limit.write("memory.swap.max", "0");
            limit
        } else if Path::new(ROOT).join("memory").is_dir() {
            let limit = MemoryLimit {
                dir: Path::new(ROOT).join("memory").join(name),
                version: Version::V1,
            };
            std::fs::create_dir_all(&limit.dir)?;
            limit.write("memory.limit_in_bytes", &bytes)?;
            limit
        } else {
            bail!("no cgroup memory controller under {ROOT}: cannot limit a member's memory");
        };
        Ok(limit)
    }

    /// The file a process writes its id to, to enter.
    pub fn procs(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
    }

    fn write(&self, file: &str, value: &str) -> Result<()> {
        let path = self.dir.join(file);
        std::fs::write(&path, value)
            .with_context(|| format!("cannot write {value} to {}", path.display()))
    }

    fn read(&self, file: &str) -> Option<String> {
        std::fs::read_to_string(self.dir.join(file)).ok()
    }

    /// The most memory the cgroup was charged for, page cache included (which the
    /// kernel reclaims before it kills), in MiB; `None` where the kernel does not keep it
    /// (v2 before Linux 5.19).
    pub fn peak_mib(&self) -> Option<f64> {
        let file = match self.version {
            Version::V1 => "memory.max_usage_in_bytes",
            Version::V2 => "memory.peak",
        };
        let bytes: f64 = self.read(file)?.trim().parse().ok()?;
        Some(bytes / (1024.0 * 1024.0))
    }

    /// How many processes of the cgroup the OOM killer ended.
    pub fn oom_kills(&self) -> u64 {
        let file = match self.version {
            Version::V1 => "memory.oom_control",
            Version::V2 => "memory.events",
        };
        self.read(file)
            .and_then(|text| {
                text.lines()
                    .find_map(|line| line.strip_prefix("oom_kill "))
                    .and_then(|n| n.trim().parse().ok())
            })
            .unwrap_or(0)
    }
}

impl Drop for MemoryLimit {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}
