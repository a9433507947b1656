use oxigraph::model::Quad;
use quadmesh_repl::{HlcTime, Stamp};
use std::collections::HashMap;

/// The last write applied to one quad.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LastWrite {
    pub stamp: Stamp,
    pub present: bool,
}

/// The per-quad last-writer register that makes replication converge.
///
/// An operation (insert or delete of a quad, with the stamp of its transaction) is
/// applied only if its stamp is newer than the register's entry for that quad; a missing
/// entry counts as older than everything. The register's state for a quad is thus the
/// operation with the greatest stamp ever admitted, which makes admission:
/// - commutative: any order of the same operations leaves the same state;
/// - idempotent: admitting an operation twice changes nothing the second time;
/// - associative: batching operations into transactions does not matter.
///
/// Entries older than the instance's frontier (a time below which no operation can
/// still arrive) decide nothing a missing entry would not, and are pruned.
#[derive(Debug, Default)]
pub struct Register {
    entries: HashMap<Quad, LastWrite>,
}

impl Register {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether an operation with this stamp would win for this quad.
    pub fn wins(&self, quad: &Quad, stamp: Stamp) -> bool {
        self.entries.get(quad).is_none_or(|last| stamp > last.stamp)
    }

    /// Admits the operation if it wins, and says whether it did.
    pub fn admit(&mut self, quad: &Quad, stamp: Stamp, present: bool) -> bool {
        if !self.wins(quad, stamp) {
            return false;
        }
        self.entries
            .insert(quad.clone(), LastWrite { stamp, present });
        true
    }

    /// Records an operation known to be the newest (a local commit, stamped after every
    /// time this instance has seen).
    pub fn record(&mut self, quad: Quad, stamp: Stamp, present: bool) {
        self.entries.insert(quad, LastWrite { stamp, present });
    }

    /// Admits every entry of `other`: the pointwise newest of both registers.
    pub fn absorb(&mut self, other: &Register) {
        for (quad, last) in &other.entries {
            self.admit(quad, last.stamp, last.present);
        }
    }

    /// Drops every entry strictly older than `frontier`.
    pub fn prune(&mut self, frontier: HlcTime) -> usize {
        let before = self.entries.len();
        self.entries.retain(|_, last| last.stamp.time >= frontier);
        before - self.entries.len()
    }

    /// What the register holds for `quads` now, to put back with [`Register::restore`]
    /// if the transaction that admits them cannot be applied.
    pub fn save<'a>(
        &self,
        quads: impl Iterator<Item = &'a Quad>,
    ) -> Vec<(Quad, Option<LastWrite>)> {
        quads
            .map(|q| (q.clone(), self.entries.get(q).copied()))
            .collect()
    }

    /// Puts back what [`Register::save`] returned (in reverse, so a quad saved twice
    /// ends as it first was).
    pub fn restore(&mut self, saved: Vec<(Quad, Option<LastWrite>)>) {
        for (quad, last) in saved.into_iter().rev() {
            match last {
                Some(last) => {
                    self.entries.insert(quad, last);
                }
                None => {
                    self.entries.remove(&quad);
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Quad, &LastWrite)> {
        self.entries.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxigraph::model::{GraphName, NamedNode};
    use proptest::prelude::*;
    use quadmesh_repl::OriginId;
    use std::collections::BTreeSet;

    fn quad(i: u8) -> Quad {
        let n = NamedNode::new_unchecked(format!("http://example.com/{i}"));
        Quad::new(n.clone(), n.clone(), n, GraphName::DefaultGraph)
    }

    /// An operation as generated: which quad, when, by whom, insert or delete.
    type Op = (u8, u64, u64, bool);

    /// Applies operations to a set of quads through a register, as an instance does.
    fn apply(ops: &[Op]) -> BTreeSet<String> {
        let mut register = Register::new();
        let mut present = BTreeSet::new();
        for &(q, time, origin, insert) in ops {
            let quad = quad(q);
            if register.admit(&quad, Stamp::new(HlcTime(time), OriginId(origin)), insert) {
                if insert {
                    present.insert(quad.to_string());
                } else {
                    present.remove(&quad.to_string());
                }
            }
        }
        present
    }

    /// Stamps are unique per (time, origin) in a real cluster: drop generated duplicates.
    fn unique(ops: Vec<Op>) -> Vec<Op> {
        let mut seen = BTreeSet::new();
        ops.into_iter()
            .filter(|&(_, t, o, _)| seen.insert((t, o)))
            .collect()
    }

    fn ops() -> impl Strategy<Value = Vec<Op>> {
        prop::collection::vec((0u8..6, 0u64..40, 0u64..3, any::<bool>()), 0..60).prop_map(unique)
    }

    proptest! {
        #[test]
        fn any_order_of_the_same_operations_converges(ops in ops(), seed in any::<u64>()) {
            let mut shuffled = ops.clone();
            // A deterministic shuffle from the seed.
            let mut s = seed | 1;
            for i in (1..shuffled.len()).rev() {
                s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                shuffled.swap(i, (s % (i as u64 + 1)) as usize);
            }
            prop_assert_eq!(apply(&ops), apply(&shuffled));
        }

        #[test]
        fn applying_operations_twice_changes_nothing(ops in ops()) {
            let twice: Vec<Op> = ops.iter().chain(ops.iter()).copied().collect();
            prop_assert_eq!(apply(&ops), apply(&twice));
        }

        #[test]
        fn merging_registers_is_associative(all in ops(), cut1 in 0usize..60, cut2 in 0usize..60) {
            let (i, j) = (cut1.min(cut2).min(all.len()), cut1.max(cut2).min(all.len()));
            let (a, b, c) = (&all[..i], &all[i..j], &all[j..]);
            let state = |ops: &[Op]| {
                let mut r = Register::new();
                for &(q, t, o, insert) in ops {
                    r.admit(&quad(q), Stamp::new(HlcTime(t), OriginId(o)), insert);
                }
                r
            };
            let mut left = state(a);
            left.absorb(&state(b));
            left.absorb(&state(c));
            let mut bc = state(b);
            bc.absorb(&state(c));
            let mut right = state(a);
            right.absorb(&bc);
            let view = |r: &Register| {
                r.iter().map(|(q, w)| (q.to_string(), w.stamp, w.present)).collect::<BTreeSet<_>>()
            };
            prop_assert_eq!(view(&left), view(&right));
        }

        #[test]
        fn the_newest_operation_decides(ops in ops()) {
            let result = apply(&ops);
            for q in 0u8..6 {
                let newest = ops.iter().filter(|op| op.0 == q).max_by_key(|op| (op.1, op.2));
                let expected = newest.is_some_and(|op| op.3);
                prop_assert_eq!(result.contains(&quad(q).to_string()), expected);
            }
        }
    }

    #[test]
    fn pruning_keeps_entries_at_or_after_the_frontier() {
        let mut r = Register::new();
        r.record(quad(1), Stamp::new(HlcTime(5), OriginId(1)), true);
        r.record(quad(2), Stamp::new(HlcTime(9), OriginId(1)), false);
        assert_eq!(r.prune(HlcTime(9)), 1);
        assert!(r.wins(&quad(1), Stamp::new(HlcTime(1), OriginId(0))));
        assert!(!r.wins(&quad(2), Stamp::new(HlcTime(8), OriginId(9))));
    }
}
