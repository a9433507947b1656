use crate::stamp::HlcTime;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Where a [`HybridClock`] reads physical time from.
pub trait PhysicalClock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_millis(&self) -> u64;
}

/// The machine's wall clock, optionally shifted by a fixed offset (for tests that need
/// an instance whose clock is off; zero otherwise).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock {
    offset_ms: i64,
}

impl SystemClock {
    /// The wall clock shifted by `offset_ms` (positive: ahead).
    pub fn with_offset_ms(offset_ms: i64) -> Self {
        SystemClock { offset_ms }
    }
}

impl PhysicalClock for SystemClock {
    fn now_millis(&self) -> u64 {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        wall.saturating_add_signed(self.offset_ms)
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
///   and than every time passed to [`HybridClock::observe`] or
///   [`HybridClock::restore`] before it;
/// - a peer's time more than `max_offset_ms` ahead of physical time is refused
///   (counted, see [`HybridClock::refusals`]) rather than absorbed;
/// - a time this instance issued itself before (restored from its own checkpoint, log
///   or high-water mark) is taken whatever physical time says: when the physical clock
///   is behind it, readings count logically on from it, so they never go backwards
///   across a restart.
pub struct HybridClock<P: PhysicalClock = SystemClock> {
    physical: P,
    max_offset_ms: u64,
    last: Mutex<HlcTime>,
    /// Peer times refused as too far ahead, and the latest refusal: how far ahead it
    /// was and when (physical ms).
    refused: AtomicU64,
    last_refusal: Mutex<(u64, u64)>,
}

/// Peer times refused by a clock (see [`HybridClock::refusals`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Refusals {
    /// Since the clock was made.
    pub count: u64,
    /// How far ahead the latest refused time was, if that refusal is recent.
    pub recent_ahead_ms: Option<u64>,
}

/// A refusal counts as recent for this long.
const RECENT_REFUSAL_MS: u64 = 5_000;

impl<P: PhysicalClock> HybridClock<P> {
    pub fn new(physical: P, max_offset_ms: u64) -> Self {
        HybridClock {
            physical,
            max_offset_ms,
            last: Mutex::new(HlcTime::ZERO),
            refused: AtomicU64::new(0),
            last_refusal: Mutex::new((0, 0)),
        }
    }

    /// The physical clock's time now (ms since the epoch).
    pub fn physical_ms(&self) -> u64 {
        self.physical.now_millis()
    }

    pub fn max_offset_ms(&self) -> u64 {
        self.max_offset_ms
    }

    /// Takes in a time this instance issued before (its checkpoint, a log entry, its
    /// persisted high-water mark), without the offset bound: every later reading is
    /// greater. Returns how far the clock now is ahead of physical time, in ms.
    pub fn restore(&self, issued: HlcTime) -> u64 {
        let physical = self.physical.now_millis();
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if issued > *last {
            *last = issued;
        }
        last.millis().saturating_sub(physical)
    }

    /// How far the last reading is ahead of physical time, in ms (0 when it is not).
    pub fn ahead_of_physical_ms(&self) -> u64 {
        let physical = self.physical.now_millis();
        self.last().millis().saturating_sub(physical)
    }

    /// Peer times refused as too far ahead.
    pub fn refusals(&self) -> Refusals {
        let (ahead_ms, at) = *self.last_refusal.lock().unwrap_or_else(|e| e.into_inner());
        let count = self.refused.load(Ordering::Relaxed);
        let recent =
            count > 0 && self.physical.now_millis().saturating_sub(at) <= RECENT_REFUSAL_MS;
        Refusals {
            count,
            recent_ahead_ms: recent.then_some(ahead_ms),
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
            self.refused.fetch_add(1, Ordering::Relaxed);
            *self.last_refusal.lock().unwrap_or_else(|e| e.into_inner()) =
                (remote.millis() - physical, physical);
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
    fn a_refusal_is_counted_and_shown_while_recent() {
        let phys = FakeClock(Arc::new(AtomicU64::new(1000)));
        let clock = HybridClock::new(phys.clone(), 500);
        assert_eq!(clock.refusals(), Refusals::default());
        clock.observe(HlcTime::from_parts(3000, 0)).unwrap_err();
        assert_eq!(
            clock.refusals(),
            Refusals {
                count: 1,
                recent_ahead_ms: Some(2000)
            }
        );
        phys.0.store(1000 + RECENT_REFUSAL_MS + 1, Ordering::SeqCst);
        assert_eq!(clock.refusals().recent_ahead_ms, None);
    }

    #[test]
    fn a_restored_time_far_ahead_is_taken_and_readings_count_on_from_it() {
        // Before a restart the clock ran 20 s ahead; now physical time is correct.
        let clock = HybridClock::new(FakeClock(Arc::new(AtomicU64::new(1_000_000))), 500);
        let issued_before = HlcTime::from_parts(1_020_000, 7);
        assert!(
            clock.observe(issued_before).is_err(),
            "a peer's time would be refused"
        );
        assert_eq!(clock.restore(issued_before), 20_000);
        let next = clock.now().unwrap();
        assert!(next > issued_before);
        assert_eq!(next.millis(), 1_020_000);
        assert_eq!(clock.ahead_of_physical_ms(), 20_000);
        // An older restored time changes nothing.
        clock.restore(HlcTime::from_parts(5, 0));
        assert!(clock.now().unwrap() > next);
    }

    #[test]
    fn logical_counter_overflow_carries_into_the_millis() {
        assert_eq!(
            bump(HlcTime::from_parts(5, u16::MAX)).unwrap(),
            HlcTime::from_parts(6, 0)
        );
    }
}
