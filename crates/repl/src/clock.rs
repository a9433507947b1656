use crate::stamp::HlcTime;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Where a [`HybridClock`] reads physical time from.
pub trait PhysicalClock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_millis(&self) -> u64;
}

/// The machine's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl PhysicalClock for SystemClock {
    fn now_millis(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClockError {
    /// A peer's clock is further ahead of ours than the configured bound: absorbing
    /// its time would drag every later stamp of ours into its future.
    #[error(
        "remote clock is {ahead_ms} ms ahead of ours, more than the allowed {max_offset_ms} ms"
    )]
    TooFarAhead { ahead_ms: u64, max_offset_ms: u64 },
    #[error("the logical counter of the hybrid clock overflowed")]
    LogicalOverflow,
}

/// A hybrid logical clock (Kulkarni et al.).
///
/// Rules it keeps:
/// - every reading from [`HybridClock::now`] is greater than every earlier reading
///   and than every time passed to [`HybridClock::observe`] before it;
/// - readings stay within `max_offset_ms` of physical time, because an observed time
///   further ahead than that is refused rather than absorbed.
pub struct HybridClock<P: PhysicalClock = SystemClock> {
    physical: P,
    max_offset_ms: u64,
    last: Mutex<HlcTime>,
}

impl<P: PhysicalClock> HybridClock<P> {
    pub fn new(physical: P, max_offset_ms: u64) -> Self {
        HybridClock {
            physical,
            max_offset_ms,
            last: Mutex::new(HlcTime::ZERO),
        }
    }

    /// A new reading, greater than any before it.
    pub fn now(&self) -> Result<HlcTime, ClockError> {
        let physical = self.physical.now_millis();
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let next = if physical > last.millis() {
            HlcTime::from_parts(physical, 0)
        } else {
            bump(*last)?
        };
        *last = next;
        Ok(next)
    }

    /// Takes a time seen from elsewhere (a peer's transaction or heartbeat, or a
    /// snapshot this instance was grown from) into account, so that every later
    /// reading is greater than it.
    pub fn observe(&self, remote: HlcTime) -> Result<(), ClockError> {
        let physical = self.physical.now_millis();
        if remote.millis() > physical.saturating_add(self.max_offset_ms) {
            return Err(ClockError::TooFarAhead {
                ahead_ms: remote.millis() - physical,
                max_offset_ms: self.max_offset_ms,
            });
        }
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if remote > *last {
            *last = remote;
        }
        Ok(())
    }

    /// The last reading issued or observed, without advancing the clock.
    pub fn last(&self) -> HlcTime {
        *self.last.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn bump(t: HlcTime) -> Result<HlcTime, ClockError> {
    if t.logical() == u16::MAX {
        // The physical part advances by one millisecond instead of overflowing; it
        // stays bounded because the next real millisecond catches up at once.
        return Ok(HlcTime::from_parts(t.millis() + 1, 0));
    }
    Ok(HlcTime(t.0 + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    #[derive(Clone)]
    struct FakeClock(Arc<AtomicU64>);
    impl PhysicalClock for FakeClock {
        fn now_millis(&self) -> u64 {
            self.0.load(Ordering::SeqCst)
        }
    }

    #[test]
    fn readings_grow_even_when_physical_time_stands_still_or_goes_back() {
        let phys = FakeClock(Arc::new(AtomicU64::new(1000)));
        let clock = HybridClock::new(phys.clone(), 500);
        let a = clock.now().unwrap();
        let b = clock.now().unwrap();
        phys.0.store(900, Ordering::SeqCst);
        let c = clock.now().unwrap();
        assert!(a < b && b < c);
        assert_eq!(c.millis(), 1000);
    }

    #[test]
    fn a_reading_after_observing_is_newer_than_the_observed_time() {
        let clock = HybridClock::new(FakeClock(Arc::new(AtomicU64::new(1000))), 500);
        let remote = HlcTime::from_parts(1400, 3);
        clock.observe(remote).unwrap();
        assert!(clock.now().unwrap() > remote);
    }

    #[test]
    fn a_clock_too_far_ahead_is_refused_and_not_absorbed() {
        let clock = HybridClock::new(FakeClock(Arc::new(AtomicU64::new(1000))), 500);
        let err = clock.observe(HlcTime::from_parts(1600, 0)).unwrap_err();
        assert_eq!(
            err,
            ClockError::TooFarAhead {
                ahead_ms: 600,
                max_offset_ms: 500
            }
        );
        assert_eq!(clock.now().unwrap().millis(), 1000);
    }

    #[test]
    fn logical_counter_overflow_carries_into_the_millis() {
        assert_eq!(
            bump(HlcTime::from_parts(5, u16::MAX)).unwrap(),
            HlcTime::from_parts(6, 0)
        );
    }
}
