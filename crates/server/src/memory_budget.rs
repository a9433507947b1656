//! One memory limit for an instance, and what it sets. An operator gives the memory an
//! instance may use (`--memory-limit-mib`, `QUADMESH_MEMORY_LIMIT_MIB`), or the instance
//! reads its container's (the cgroup's limit: a pod's `resources.limits.memory`,
//! `docker run --memory`); every bound below is derived from it here, so that a member
//! under the limit is not killed by a load and README's sizing table has one source.
//!
//! Rules it keeps:
//! - what a load holds in memory grows with the request, most on a replica applying it
//!   (the entry's text, its decoded quads, the register's copy of each): the largest
//!   request body taken is a thirty-second of the limit, unless the operator sets
//!   `--max-body-mb` themselves (measured, BENCHMARKS.md: under a 1 GiB limit, 31 MiB
//!   POSTs peak at 825 MiB on a replica; 50 MiB POSTs at 990 MiB; 99 MiB POSTs at
//!   1.3 GiB, killed);
//! - the bulk loader holds an eighth of the limit at most (its batches, one per core and
//!   one being filled);
//! - the store's write buffers are flushed (a checkpoint) after a sixteenth of the
//!   limit in log entries, so that they never hold more than about that much between
//!   flushes;
//! - what the limit cannot bound is named: the storage engine's block caches (32 MiB
//!   shared, 128 MiB for the term dictionary, fixed by oxigraph, filled as reads touch
//!   blocks) and its table index blocks, which grow with the data, per open repository;
//!   the limit should leave room for them (README, "Sizing memory").

use std::path::Path;

/// Where the limit came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitSource {
    /// `--memory-limit-mib` or `QUADMESH_MEMORY_LIMIT_MIB`.
    Setting,
    /// The cgroup the process runs in (its container's limit).
    Container,
}

/// Bytes the bulk loader holds per quad of a batch: the quad, its encoded form and its
/// share of the term dictionary. Estimated, with margin, from two runs of one 99 MiB
/// POST (BENCHMARKS.md, "Memory limits"): batches of 74,565 quads a thread instead of
/// 500,000 took 516 MiB off the peak, about 420 bytes for each quad no longer held
/// (three batches at once).
const LOADER_BYTES_PER_QUAD: u64 = 600;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryBudget {
    pub limit_mib: u64,
    pub source: LimitSource,
}

impl MemoryBudget {
    /// The largest request body taken (bytes).
    pub fn max_body_bytes(&self) -> usize {
        usize::try_from(self.limit_mib * (1 << 20) / 32).unwrap_or(usize::MAX)
    }

    /// The most new quads the bulk loader takes at once in each of `threads` threads
    /// (it holds one batch per thread and fills another meanwhile).
    pub fn loader_batch_quads(&self, threads: usize) -> usize {
        let bytes = self.limit_mib * (1 << 20) / 8;
        let batches = threads.max(1) as u64 + 1;
        usize::try_from(bytes / batches / LOADER_BYTES_PER_QUAD)
            .unwrap_or(usize::MAX)
            .max(1_000)
    }

    /// Log bytes after which the store's write buffers are flushed (a checkpoint).
    pub fn checkpoint_every_bytes(&self) -> u64 {
        self.limit_mib * (1 << 20) / 16
    }
}

/// The memory limit of the cgroup this process runs in (MiB), if there is one: the
/// smallest limit on the way from the process's cgroup up to the root, cgroup v2
/// (`memory.max`) or v1 (`memory.limit_in_bytes`). `None` where no limit is set (v2
/// `max`, v1's "unlimited", which is near 2^63).
pub fn container_limit_mib() -> Option<u64> {
    let membership = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    limit_from(&membership, Path::new("/sys/fs/cgroup"), |path| {
        std::fs::read_to_string(path).ok()
    })
}

/// [`container_limit_mib`] with the files read by `read` (tests give their own).
fn limit_from(
    membership: &str,
    root: &Path,
    read: impl Fn(&Path) -> Option<String>,
) -> Option<u64> {
    // No limit is set above this (v1 writes "unlimited" as a page-rounded i64::MAX).
    const UNLIMITED: u64 = 1 << 60;
    let mut smallest: Option<u64> = None;
    for line in membership.lines() {
        // hierarchy-ID:controllers:path
        let mut fields = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let (base, file) = if controllers.is_empty() {
            (root.to_path_buf(), "memory.max")
        } else if controllers.split(',').any(|c| c == "memory") {
            (root.join("memory"), "memory.limit_in_bytes")
        } else {
            continue;
        };
        // From the process's own cgroup up to the root of what is mounted (in a
        // container without a cgroup namespace the path names the host's hierarchy,
        // which is not mounted: then only the mount's root is found).
        let mut dir = base.join(path.trim_start_matches('/'));
        loop {
            if let Some(bytes) = read(&dir.join(file)).and_then(|t| t.trim().parse::<u64>().ok()) {
                if bytes < UNLIMITED {
                    let mib = bytes >> 20;
                    smallest = Some(smallest.map_or(mib, |s| s.min(mib)));
                }
            }
            if dir == base || !dir.pop() {
                break;
            }
        }
    }
    smallest
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn files(entries: &[(&str, &str)]) -> impl Fn(&Path) -> Option<String> {
        let map: HashMap<String, String> = entries
            .iter()
            .map(|(p, t)| (p.to_string(), t.to_string()))
            .collect();
        move |path: &Path| map.get(path.to_str()?).cloned()
    }

    #[test]
    fn a_v2_container_limit_is_read_from_the_namespace_root() {
        let read = files(&[("/sys/fs/cgroup/memory.max", "1073741824\n")]);
        assert_eq!(
            limit_from("0::/\n", Path::new("/sys/fs/cgroup"), read),
            Some(1024)
        );
    }

    #[test]
    fn v2_max_is_no_limit() {
        let read = files(&[("/sys/fs/cgroup/memory.max", "max\n")]);
        assert_eq!(
            limit_from("0::/\n", Path::new("/sys/fs/cgroup"), read),
            None
        );
    }

    #[test]
    fn the_smallest_limit_up_the_hierarchy_wins() {
        // A pod's limit on its own cgroup, the container's below it unset.
        let read = files(&[
            ("/sys/fs/cgroup/kubepods/pod1/memory.max", "2147483648"),
            ("/sys/fs/cgroup/kubepods/pod1/c1/memory.max", "max"),
            ("/sys/fs/cgroup/kubepods/memory.max", "8589934592"),
        ]);
        assert_eq!(
            limit_from("0::/kubepods/pod1/c1\n", Path::new("/sys/fs/cgroup"), read),
            Some(2048)
        );
    }

    #[test]
    fn v1_unlimited_is_no_limit_and_a_set_limit_is_found() {
        let membership = "12:pids:/x\n4:memory:/docker/abc\n1:name=systemd:/docker/abc\n";
        let unlimited = files(&[(
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "9223372036854771712",
        )]);
        assert_eq!(
            limit_from(membership, Path::new("/sys/fs/cgroup"), unlimited),
            None
        );
        // Inside the container the host's path is not mounted: the mount's root is
        // the container's own cgroup.
        let limited = files(&[("/sys/fs/cgroup/memory/memory.limit_in_bytes", "536870912")]);
        assert_eq!(
            limit_from(membership, Path::new("/sys/fs/cgroup"), limited),
            Some(512)
        );
    }

    #[test]
    fn no_cgroup_file_is_no_limit() {
        assert_eq!(
            limit_from("0::/\n", Path::new("/sys/fs/cgroup"), |_| None),
            None
        );
    }

    #[test]
    fn the_bounds_scale_with_the_limit() {
        let budget = MemoryBudget {
            limit_mib: 1024,
            source: LimitSource::Setting,
        };
        assert_eq!(budget.max_body_bytes(), 32 << 20);
        assert_eq!(budget.checkpoint_every_bytes(), 64 << 20);
        // 128 MiB over three batches of 600 bytes a quad.
        assert_eq!(budget.loader_batch_quads(2), 74_565);
        let small = MemoryBudget {
            limit_mib: 1,
            source: LimitSource::Setting,
        };
        assert_eq!(small.loader_batch_quads(2), 1_000);
    }
}
