//! The clock fence at one repository: the samples of its peers' clocks that the
//! server's probes take, and the engine's verdict over them
//! ([`quadmesh_repl::ClockFence`]) for local writes.
//!
//! Why here: the verdict must be taken under the writer lock, with the configuration
//! the write is stamped under, like every other refusal of a local write.

use quadmesh_repl::{ClockFence, ClockSample, FenceVerdict, HybridClock, OriginId, OwnClock};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a write waits for the first samples of members not yet measured (after a
/// start, or when members join) before it is refused. The server probes every member
/// twice a second.
pub const FIRST_SAMPLES_GRACE: Duration = Duration::from_secs(3);

/// The samples of one repository's peers' clocks.
///
/// Rules it keeps:
/// - samples are placed on one monotonic time base ([`Instant`]s since the keeper was
///   made), at the midpoint of their probe, with half the probe's round trip as their
///   uncertainty, so that a step of this instance's own wall clock shows at once;
/// - a sample counts for the lease (`sample_lifetime`): an instance that measured no
///   majority of its members for that long takes no local writes;
/// - members never measured count against (the engine's rule), but for
///   [`FIRST_SAMPLES_GRACE`] after the members changed a write waits for their samples
///   instead of being refused at once.
pub struct FenceKeeper {
    base: Instant,
    /// `None`: no fence (nobody probes the peers' clocks).
    inner: Option<Mutex<Inner>>,
}

struct Inner {
    fence: ClockFence,
    /// The members of the last verdict, and since when this set has been measured.
    members: Vec<OriginId>,
    measuring_since: Instant,
}

impl FenceKeeper {
    /// A fence whose samples count for `sample_lifetime`, or none at all.
    pub fn new(max_offset_ms: u64, sample_lifetime: Option<Duration>) -> Self {
        let base = Instant::now();
        FenceKeeper {
            base,
            inner: sample_lifetime.map(|lifetime| {
                Mutex::new(Inner {
                    fence: ClockFence::new(max_offset_ms, lifetime.as_millis() as u64),
                    members: Vec::new(),
                    measuring_since: base,
                })
            }),
        }
    }

    fn lock(&self) -> Option<std::sync::MutexGuard<'_, Inner>> {
        self.inner
            .as_ref()
            .map(|inner| inner.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn monotonic_ms(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.base).as_millis() as u64
    }

    /// Keeps what `peer` said of its clock (physical time and clock reading, ms) in
    /// answer to a probe sent at `sent` and answered at `received`.
    pub fn record(
        &self,
        peer: OriginId,
        peer_physical_ms: u64,
        peer_reading_ms: u64,
        sent: Instant,
        received: Instant,
    ) {
        let half = received.saturating_duration_since(sent) / 2;
        let sample = ClockSample {
            peer_physical_ms,
            peer_reading_ms,
            monotonic_ms: self.monotonic_ms(sent + half),
            uncertainty_ms: half.as_millis() as u64 + 1,
        };
        if let Some(mut inner) = self.lock() {
            inner.fence.record(peer, sample);
        }
    }

    /// The verdict for a local write at `local` among `members`, by `clock` now.
    pub fn verdict(
        &self,
        local: OriginId,
        members: &[OriginId],
        clock: &HybridClock,
    ) -> FenceVerdict {
        let now = Instant::now();
        let own = own_clock(clock, self.monotonic_ms(now));
        let Some(mut inner) = self.lock() else {
            return FenceVerdict::Within;
        };
        if inner.members != members {
            inner.members = members.to_vec();
            inner.measuring_since = now;
        }
        inner.fence.verdict(local, members, own)
    }

    /// This instance's physical clock minus `peer`'s (ms), by a sample that still
    /// counts.
    pub fn offset_from(&self, peer: OriginId, clock: &HybridClock) -> Option<i64> {
        let own = own_clock(clock, self.monotonic_ms(Instant::now()));
        self.lock()?.fence.offset_from(peer, own)
    }

    /// Whether a write refused by `verdict` should rather wait for samples: some members
    /// are not measured yet, their samples could still make a majority, and measuring
    /// them began less than [`FIRST_SAMPLES_GRACE`] ago.
    pub fn worth_waiting(&self, verdict: &FenceVerdict) -> bool {
        let FenceVerdict::Fenced {
            agreeing,
            needed,
            unmeasured,
            ..
        } = verdict
        else {
            return false;
        };
        *unmeasured > 0
            && agreeing + unmeasured >= *needed
            && self
                .lock()
                .is_some_and(|inner| inner.measuring_since.elapsed() < FIRST_SAMPLES_GRACE)
    }
}

fn own_clock(clock: &HybridClock, monotonic_ms: u64) -> OwnClock {
    let physical_ms = clock.physical_ms();
    OwnClock {
        physical_ms,
        reading_ms: clock.last().millis().max(physical_ms),
        monotonic_ms,
    }
}
