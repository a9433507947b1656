use crate::stamp::OriginId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// For each origin, the highest sequence number of its transactions that an instance
/// has applied. Sequence numbers of one origin start at 1 and have no gaps, so
/// `get(o) == n` means "has all of o's transactions 1..=n".
///
/// Merge (`join`) takes the pointwise maximum: commutative, associative, idempotent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionVector(BTreeMap<OriginId, u64>);

impl VersionVector {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, origin: OriginId) -> u64 {
        self.0.get(&origin).copied().unwrap_or(0)
    }

    /// Records that `seq` of `origin` is applied. Sequence numbers must come in order.
    pub fn advance(&mut self, origin: OriginId, seq: u64) {
        let entry = self.0.entry(origin).or_insert(0);
        if seq > *entry {
            *entry = seq;
        }
    }

    /// Whether transaction `seq` of `origin` is included.
    pub fn covers(&self, origin: OriginId, seq: u64) -> bool {
        self.get(origin) >= seq
    }

    /// Pointwise maximum.
    pub fn join(&mut self, other: &VersionVector) {
        for (&origin, &seq) in &other.0 {
            self.advance(origin, seq);
        }
    }

    /// Pointwise minimum over the origins of `self` (origins absent from `other` count 0).
    pub fn meet(&self, other: &VersionVector) -> VersionVector {
        VersionVector(
            self.0
                .iter()
                .map(|(&origin, &seq)| (origin, seq.min(other.get(origin))))
                .collect(),
        )
    }

    /// How many transactions `other` has that `self` lacks.
    pub fn missing_from(&self, other: &VersionVector) -> u64 {
        other
            .0
            .iter()
            .map(|(&origin, &seq)| seq.saturating_sub(self.get(origin)))
            .sum()
    }

    pub fn iter(&self) -> impl Iterator<Item = (OriginId, u64)> + '_ {
        self.0.iter().map(|(&o, &s)| (o, s))
    }

    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use crate::cluster::fixtures::vv;

    #[test]
    fn join_is_a_pointwise_maximum() {
        let mut a = vv(&[(1, 5), (2, 1)]);
        a.join(&vv(&[(2, 4), (3, 2)]));
        assert_eq!(a, vv(&[(1, 5), (2, 4), (3, 2)]));
    }

    #[test]
    fn join_is_commutative_and_idempotent() {
        let a = vv(&[(1, 5), (2, 1)]);
        let b = vv(&[(2, 4), (3, 2)]);
        let mut ab = a.clone();
        ab.join(&b);
        let mut ba = b.clone();
        ba.join(&a);
        assert_eq!(ab, ba);
        let mut abb = ab.clone();
        abb.join(&b);
        assert_eq!(abb, ab);
    }

    #[test]
    fn missing_counts_what_the_other_has_beyond_us() {
        assert_eq!(vv(&[(1, 5)]).missing_from(&vv(&[(1, 7), (2, 3)])), 5);
        assert_eq!(vv(&[(1, 9)]).missing_from(&vv(&[(1, 7)])), 0);
    }
}
