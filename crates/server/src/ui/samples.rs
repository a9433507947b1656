//! What the replication page's charts draw: every [`INTERVAL`], each replicated
//! repository's transaction counters and its peers' lag, kept for [`WINDOW`] in a ring per
//! repository (at most [`CAPACITY`] samples: a few kilobytes each).

use serde::Serialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

/// How often a sample is taken.
pub const INTERVAL: Duration = Duration::from_secs(5);
/// How far back the charts look.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Samples kept per repository (the window, and one more for the first rate).
pub const CAPACITY: usize = (WINDOW.as_secs() / INTERVAL.as_secs()) as usize + 1;

#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Sample {
    /// Milliseconds since the Unix epoch.
    pub at: u64,
    /// Transactions committed on this instance since it started.
    pub committed: u64,
    /// Transactions applied from peers since it started.
    pub applied: u64,
    /// Each other member's lag behind this instance, in milliseconds and transactions.
    pub lag_ms: BTreeMap<String, u64>,
    pub lag_transactions: BTreeMap<String, u64>,
}

#[derive(Default)]
pub struct Samples {
    rings: Mutex<HashMap<String, VecDeque<Sample>>>,
}

impl Samples {
    pub fn push(&self, repository: &str, sample: Sample) {
        let mut rings = self.rings.lock().unwrap_or_else(|e| e.into_inner());
        let ring = rings.entry(repository.to_owned()).or_default();
        if ring.len() == CAPACITY {
            ring.pop_front();
        }
        ring.push_back(sample);
    }

    /// Forgets the repositories not in `keep` (deleted, or no longer replicated).
    pub fn retain(&self, keep: &[String]) {
        let mut rings = self.rings.lock().unwrap_or_else(|e| e.into_inner());
        rings.retain(|name, _| keep.contains(name));
    }

    /// A repository's samples of the last [`WINDOW`] before `now_ms`, oldest first.
    pub fn window(&self, repository: &str, now_ms: u64) -> Vec<Sample> {
        let since = now_ms.saturating_sub(WINDOW.as_millis() as u64 + INTERVAL.as_millis() as u64);
        let rings = self.rings.lock().unwrap_or_else(|e| e.into_inner());
        rings
            .get(repository)
            .map(|ring| ring.iter().filter(|s| s.at >= since).cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at: u64) -> Sample {
        Sample {
            at,
            committed: at,
            applied: 0,
            lag_ms: BTreeMap::new(),
            lag_transactions: BTreeMap::new(),
        }
    }

    #[test]
    fn the_ring_keeps_the_last_window_only() {
        let samples = Samples::default();
        let step = INTERVAL.as_millis() as u64;
        for i in 0..(CAPACITY as u64 + 10) {
            samples.push("r", sample(i * step));
        }
        let now = (CAPACITY as u64 + 9) * step;
        let kept = samples.window("r", now);
        assert_eq!(kept.len(), CAPACITY);
        assert_eq!(kept.first().unwrap().at, 10 * step);
        // Samples older than the window are not shown even while still in the ring.
        assert_eq!(
            samples.window("r", now + WINDOW.as_millis() as u64).len(),
            2
        );
        assert!(samples.window("other", now).is_empty());
        samples.retain(&[]);
        assert!(samples.window("r", now).is_empty());
    }
}
