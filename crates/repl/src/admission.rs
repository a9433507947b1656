//! Whether a replica takes a transaction it is handed, by its place in its origin's
//! sequence: the rule the store (applying peers' transactions, replaying its log) and
//! the simulation's model repository both apply.
//!
//! Rules it keeps:
//! - one origin's transactions are taken in sequence order: the next one is taken, one
//!   already held is a duplicate (taken again it would change nothing, and it is
//!   skipped, never an error), one past a gap is refused, since what lies between
//!   would then be applied after it;
//! - sequence numbers start at 1: 0 is held by every replica.

use crate::{OriginId, VersionVector};

/// Where a transaction falls in its origin's sequence, against what a replica holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// The next one of its origin: take it.
    Next,
    /// Held already.
    Duplicate,
    /// Transactions of its origin after `have` are missing before it.
    Gap { have: u64 },
}

/// Where transaction `seq` of `origin` falls against `held`.
pub fn admission(held: &VersionVector, origin: OriginId, seq: u64) -> Admission {
    let have = held.get(origin);
    if seq <= have {
        Admission::Duplicate
    } else if seq == have + 1 {
        Admission::Next
    } else {
        Admission::Gap { have }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transactions_are_taken_in_sequence_order_duplicates_skipped() {
        let mut held = VersionVector::default();
        let origin = OriginId(7);
        assert_eq!(admission(&held, origin, 0), Admission::Duplicate);
        assert_eq!(admission(&held, origin, 1), Admission::Next);
        assert_eq!(admission(&held, origin, 3), Admission::Gap { have: 0 });
        held.advance(origin, 2);
        assert_eq!(admission(&held, origin, 2), Admission::Duplicate);
        assert_eq!(admission(&held, origin, 3), Admission::Next);
        assert_eq!(admission(&held, origin, 5), Admission::Gap { have: 2 });
        assert_eq!(admission(&held, OriginId(8), 1), Admission::Next);
    }
}
