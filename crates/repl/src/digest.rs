//! Content digests for anti-entropy: a fingerprint of a repository's quads that two
//! instances can compare without sending their contents.

use serde::{Deserialize, Serialize};

/// An order-independent digest of a set of quads: how many, and the wrapping sum of a
/// 64-bit hash of each quad's canonical text.
///
/// Rules it keeps:
/// - it depends only on the set, never on the order quads came in, so two instances
///   that applied the same transactions (the same version vector) must hold equal
///   digests; unequal digests at an equal version vector prove divergence;
/// - it is kept incrementally: [`ContentDigest::insert`] and [`ContentDigest::remove`]
///   are exact inverses, called only for quads whose presence really changes;
/// - the hash is fixed here (FNV-1a then a SplitMix64 finaliser), never the standard
///   library's, so instances built by different compilers agree.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentDigest {
    pub count: u64,
    pub sum: u64,
}

fn hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // SplitMix64's finaliser spreads FNV's weak low bits over the whole word.
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

impl ContentDigest {
    /// A quad (its canonical N-Quads text) became present.
    pub fn insert(&mut self, quad: &[u8]) {
        self.count = self.count.wrapping_add(1);
        self.sum = self.sum.wrapping_add(hash(quad));
    }

    /// A quad (its canonical N-Quads text) became absent.
    pub fn remove(&mut self, quad: &[u8]) {
        self.count = self.count.wrapping_sub(1);
        self.sum = self.sum.wrapping_sub(hash(quad));
    }
}

impl std::fmt::Display for ContentDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} quads, {:016x}", self.count, self.sum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn the_digest_of_a_set_ignores_order_and_undone_changes(
            quads in proptest::collection::vec("[a-z]{1,6}", 0..40),
            shuffle_seed in any::<u64>(),
        ) {
            let set: std::collections::BTreeSet<&String> = quads.iter().collect();
            let mut forward = ContentDigest::default();
            for q in &set {
                forward.insert(q.as_bytes());
            }
            // Another order, with detours: insert extra quads and remove them again.
            let mut items: Vec<&&String> = set.iter().collect();
            let n = items.len().max(1);
            items.rotate_left((shuffle_seed as usize) % n);
            let mut other = ContentDigest::default();
            for q in items {
                other.insert(b"detour");
                other.insert(q.as_bytes());
                other.remove(b"detour");
            }
            prop_assert_eq!(forward, other);
        }
    }

    #[test]
    fn different_sets_have_different_digests() {
        let mut a = ContentDigest::default();
        let mut b = ContentDigest::default();
        a.insert(b"<a> <b> <c> .");
        b.insert(b"<a> <b> <d> .");
        assert_ne!(a, b);
        b.remove(b"<a> <b> <d> .");
        b.insert(b"<a> <b> <c> .");
        assert_eq!(a, b);
    }
}
