//! The clock fence: whether this instance's clock is close enough to a majority of its
//! cluster's to stamp local writes (CockroachDB's rule).
//!
//! Why: a write is stamped with this instance's hybrid clock, and last-writer-wins
//! decides by stamp. An instance whose clock runs far ahead stamps writes that a later
//! write elsewhere cannot beat (issue 25: a clock 20 s ahead inserted T, another
//! instance then inserted and deleted T, and T came back). Peers refuse to absorb a
//! time too far ahead, but they still hold the transaction; only the writer can refuse
//! before it acknowledges.
//!
//! What it knows of a peer's clock is a [`ClockSample`]: the peer's physical time and
//! clock reading, taken when it answered, with this instance's monotonic time then and
//! how uncertain that moment is (half the round trip of the measurement). Projected to
//! now by the monotonic time elapsed since, so a step of this instance's own wall clock
//! shows at once, while a sample grows no less true with age except for the peer's own
//! steps: samples older than the lifetime do not count.

use crate::stamp::OriginId;
use std::collections::BTreeMap;

/// One measurement of a peer's clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockSample {
    /// The peer's physical (wall) clock, ms since the epoch.
    pub peer_physical_ms: u64,
    /// The peer's hybrid clock reading (ms): at least its physical time, ahead of it
    /// when the peer counts on from a time it issued before.
    pub peer_reading_ms: u64,
    /// This instance's monotonic time (ms, any origin) at the measurement's midpoint.
    pub monotonic_ms: u64,
    /// How far the moment of the peer's answer may be from `monotonic_ms` (ms).
    pub uncertainty_ms: u64,
}

/// This instance's own clock at the moment of a verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OwnClock {
    pub physical_ms: u64,
    pub reading_ms: u64,
    /// The same monotonic time base as the samples'.
    pub monotonic_ms: u64,
}

/// Whether local writes may be stamped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FenceVerdict {
    Within,
    /// Too few members (this one included) are known to be within the maximum offset.
    Fenced {
        /// Members within the offset, this one included.
        agreeing: usize,
        /// A majority of the members.
        needed: usize,
        /// The largest measured offset of this instance's clock from a member's (ms,
        /// positive: this one ahead), if any member was measured.
        furthest_ms: Option<i64>,
        /// Members with no sample young enough to count.
        unmeasured: usize,
    },
}

impl FenceVerdict {
    pub fn is_fenced(&self) -> bool {
        matches!(self, FenceVerdict::Fenced { .. })
    }
}

impl std::fmt::Display for FenceVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FenceVerdict::Within => {
                write!(f, "the clock is within the maximum offset of a majority")
            }
            FenceVerdict::Fenced {
                agreeing,
                needed,
                furthest_ms,
                unmeasured,
            } => {
                write!(
                    f,
                    "this instance's clock is known to be within the maximum offset of only {agreeing} of the {needed} members a majority needs"
                )?;
                if let Some(ms) = furthest_ms {
                    write!(f, "; it is {ms} ms off a member's clock")?;
                }
                if *unmeasured > 0 {
                    write!(f, "; {unmeasured} member(s) not measured recently")?;
                }
                Ok(())
            }
        }
    }
}

/// The samples of the peers' clocks and the rule over them.
///
/// Rules it keeps:
/// - a member alone in its configuration (or an instance in none) is never fenced;
/// - otherwise local writes are allowed only when a majority of the configuration's
///   members, this one included, are each within `max_offset_ms` of this instance, by
///   both physical time and clock reading, as measured by a sample younger than
///   `sample_lifetime_ms`, allowing for the sample's uncertainty;
/// - a member never measured counts against: before it knows, an instance refuses;
/// - the verdict depends only on the samples and the clocks passed in (no I/O, no
///   clock of its own).
#[derive(Clone, Debug)]
pub struct ClockFence {
    max_offset_ms: u64,
    sample_lifetime_ms: u64,
    samples: BTreeMap<OriginId, ClockSample>,
}

impl ClockFence {
    pub fn new(max_offset_ms: u64, sample_lifetime_ms: u64) -> Self {
        ClockFence {
            max_offset_ms,
            sample_lifetime_ms,
            samples: BTreeMap::new(),
        }
    }

    pub fn max_offset_ms(&self) -> u64 {
        self.max_offset_ms
    }

    /// Keeps `sample` as the latest of `peer` (an older one than that kept is ignored).
    pub fn record(&mut self, peer: OriginId, sample: ClockSample) {
        match self.samples.get(&peer) {
            Some(kept) if kept.monotonic_ms > sample.monotonic_ms => {}
            _ => {
                self.samples.insert(peer, sample);
            }
        }
    }

    /// Forgets every sample (a restart, or a monotonic time base that changed).
    pub fn clear(&mut self) {
        self.samples.clear();
    }

    /// This instance's physical clock minus `peer`'s (ms) as of `own`, if a sample of it
    /// is young enough to count.
    pub fn offset_from(&self, peer: OriginId, own: OwnClock) -> Option<i64> {
        let sample = self.fresh(peer, own)?;
        let elapsed = own.monotonic_ms.saturating_sub(sample.monotonic_ms);
        Some(own.physical_ms as i64 - (sample.peer_physical_ms + elapsed) as i64)
    }

    fn fresh(&self, peer: OriginId, own: OwnClock) -> Option<&ClockSample> {
        self.samples
            .get(&peer)
            .filter(|s| own.monotonic_ms.saturating_sub(s.monotonic_ms) <= self.sample_lifetime_ms)
    }

    /// The verdict for `local` among `members` (the configuration's origins; empty or
    /// only `local` when it is alone).
    pub fn verdict(&self, local: OriginId, members: &[OriginId], own: OwnClock) -> FenceVerdict {
        let peers: Vec<OriginId> = members.iter().copied().filter(|m| *m != local).collect();
        if peers.is_empty() {
            return FenceVerdict::Within;
        }
        let count = peers.len() + 1;
        let needed = count / 2 + 1;
        let (mut agreeing, mut unmeasured, mut furthest_ms) = (1, 0, None::<i64>);
        for peer in peers {
            let Some(sample) = self.fresh(peer, own) else {
                unmeasured += 1;
                continue;
            };
            let elapsed = own.monotonic_ms.saturating_sub(sample.monotonic_ms);
            let physical_off = own.physical_ms as i64 - (sample.peer_physical_ms + elapsed) as i64;
            let reading_off = own.reading_ms as i64 - (sample.peer_reading_ms + elapsed) as i64;
            let off = if physical_off.abs() >= reading_off.abs() {
                physical_off
            } else {
                reading_off
            };
            if furthest_ms.is_none_or(|f| off.abs() > f.abs()) {
                furthest_ms = Some(off);
            }
            if off.unsigned_abs().saturating_sub(sample.uncertainty_ms) <= self.max_offset_ms {
                agreeing += 1;
            }
        }
        if agreeing >= needed {
            FenceVerdict::Within
        } else {
            FenceVerdict::Fenced {
                agreeing,
                needed,
                furthest_ms,
                unmeasured,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: OriginId = OriginId(1);
    const B: OriginId = OriginId(2);
    const C: OriginId = OriginId(3);

    fn sample(physical: u64, at: u64) -> ClockSample {
        ClockSample {
            peer_physical_ms: physical,
            peer_reading_ms: physical,
            monotonic_ms: at,
            uncertainty_ms: 0,
        }
    }

    fn own(physical: u64, at: u64) -> OwnClock {
        OwnClock {
            physical_ms: physical,
            reading_ms: physical,
            monotonic_ms: at,
        }
    }

    #[test]
    fn a_lone_member_is_never_fenced() {
        let fence = ClockFence::new(500, 10_000);
        assert_eq!(
            fence.verdict(A, &[], own(1_000_000, 0)),
            FenceVerdict::Within
        );
        assert_eq!(
            fence.verdict(A, &[A], own(1_000_000, 0)),
            FenceVerdict::Within
        );
    }

    #[test]
    fn before_any_measurement_a_member_of_a_cluster_is_fenced() {
        let fence = ClockFence::new(500, 10_000);
        let verdict = fence.verdict(A, &[A, B, C], own(1_000_000, 0));
        assert_eq!(
            verdict,
            FenceVerdict::Fenced {
                agreeing: 1,
                needed: 2,
                furthest_ms: None,
                unmeasured: 2
            }
        );
    }

    #[test]
    fn one_agreeing_peer_of_three_is_a_majority_and_an_own_step_shows_at_once() {
        let mut fence = ClockFence::new(500, 10_000);
        fence.record(B, sample(1_000_000, 100));
        fence.record(C, sample(1_000_200, 100));
        assert_eq!(
            fence.verdict(A, &[A, B, C], own(1_000_300, 400)),
            FenceVerdict::Within
        );
        // Our wall clock steps 20 s ahead; monotonic time moved 100 ms only.
        let verdict = fence.verdict(A, &[A, B, C], own(1_020_400, 500));
        assert!(verdict.is_fenced(), "{verdict:?}");
        // Had C's clock stepped as far, the two of three would agree.
        let mut fence2 = fence.clone();
        fence2.record(C, sample(1_020_400, 500));
        assert!(!fence2
            .verdict(A, &[A, B, C], own(1_020_400, 500))
            .is_fenced());
    }

    #[test]
    fn a_clock_far_ahead_of_two_peers_is_fenced_and_says_how_far() {
        let mut fence = ClockFence::new(500, 10_000);
        fence.record(B, sample(1_000_000, 0));
        fence.record(C, sample(1_000_100, 0));
        let FenceVerdict::Fenced { furthest_ms, .. } =
            fence.verdict(A, &[A, B, C], own(1_020_000, 0))
        else {
            panic!("fenced")
        };
        assert_eq!(furthest_ms, Some(20_000));
    }

    #[test]
    fn uncertainty_is_allowed_and_old_samples_do_not_count() {
        let mut fence = ClockFence::new(500, 1_000);
        fence.record(
            B,
            ClockSample {
                uncertainty_ms: 200,
                ..sample(1_000_000, 0)
            },
        );
        // 650 ms off, 200 ms uncertain: within.
        assert!(!fence.verdict(A, &[A, B], own(1_000_650, 0)).is_fenced());
        // 750 ms off, 200 ms uncertain: not.
        assert!(fence.verdict(A, &[A, B], own(1_000_750, 0)).is_fenced());
        // The sample expired.
        assert!(fence.verdict(A, &[A, B], own(1_001_001, 1_001)).is_fenced());
    }

    #[test]
    fn a_reading_far_ahead_of_physical_time_is_fenced_too() {
        let mut fence = ClockFence::new(500, 10_000);
        fence.record(B, sample(1_000_000, 0));
        let ahead = OwnClock {
            physical_ms: 1_000_000,
            reading_ms: 1_005_000,
            monotonic_ms: 0,
        };
        assert!(fence.verdict(A, &[A, B], ahead).is_fenced());
        // An older sample does not replace a newer one.
        let mut fence = ClockFence::new(500, 10_000);
        fence.record(B, sample(1_000_000, 10));
        fence.record(B, sample(2_000_000, 5));
        assert!(!fence.verdict(A, &[A, B], own(1_000_000, 10)).is_fenced());
    }
}
