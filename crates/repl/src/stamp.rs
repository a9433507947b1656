use serde::{Deserialize, Serialize};
use std::fmt;

/// The identity of an instance that originates transactions.
///
/// Ids are never reused: a removed instance that comes back gets a new one, so a
/// stamp names its writer for ever.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OriginId(pub u64);

impl fmt::Display for OriginId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// A hybrid logical clock reading: milliseconds since the Unix epoch in the high 48
/// bits, a logical counter in the low 16.
///
/// Readings from one clock only grow, and a reading taken after observing another is
/// greater than it, so the order of `HlcTime`s respects causality.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct HlcTime(pub u64);

impl HlcTime {
    pub const LOGICAL_BITS: u32 = 16;
    pub const ZERO: HlcTime = HlcTime(0);

    pub fn from_parts(millis: u64, logical: u16) -> Self {
        HlcTime((millis << Self::LOGICAL_BITS) | u64::from(logical))
    }

    pub fn millis(self) -> u64 {
        self.0 >> Self::LOGICAL_BITS
    }

    pub fn logical(self) -> u16 {
        (self.0 & 0xffff) as u16
    }
}

impl fmt::Display for HlcTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.millis(), self.logical())
    }
}

/// The stamp of one replicated transaction: when (HLC) and by whom.
///
/// Stamps are totally ordered: by time, then by origin id. Two different
/// transactions never share a stamp, because one origin never issues the same time
/// twice; so "the newer stamp wins" decides every conflict the same way everywhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Stamp {
    pub time: HlcTime,
    pub origin: OriginId,
}

impl Stamp {
    pub fn new(time: HlcTime, origin: OriginId) -> Self {
        Stamp { time, origin }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_order_by_time_then_origin() {
        let a = Stamp::new(HlcTime::from_parts(10, 0), OriginId(9));
        let b = Stamp::new(HlcTime::from_parts(10, 1), OriginId(1));
        let c = Stamp::new(HlcTime::from_parts(10, 1), OriginId(2));
        assert!(a < b && b < c);
    }

    #[test]
    fn hlc_time_round_trips_its_parts() {
        let t = HlcTime::from_parts(1_764_000_000_123, 7);
        assert_eq!((t.millis(), t.logical()), (1_764_000_000_123, 7));
    }
}
