//! The last-writer-wins register with range tombstones: the rule every replica applies
//! to decide what it holds, whatever order transactions reach it in. The store keeps
//! one per repository over oxigraph quads; the simulation keeps one over numbered quads.

use crate::stamp::{HlcTime, Stamp};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::hash::Hash;

/// The register's maps hash with foldhash, seeded at random per map: a load admits every
/// quad it writes, and SipHash (std's default) was most of that cost. The random seed
/// keeps what std's default gives against chosen keys (items are clients' quads).
type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// A pattern of fixed positions that a range delete removes: every item it matches.
///
/// Patterns of one *shape* fix the same positions; an item matches at most one pattern
/// of each shape (`project`), so the tombstones covering an item are found with one
/// lookup per shape in use, however many tombstones there are.
pub trait RangePattern: Clone + Eq + Hash + Debug {
    /// What the register decides: one quad.
    type Item: Clone + Eq + Hash + Debug;
    /// Which positions a pattern fixes.
    type Shape: Copy + Eq + Ord + Debug;
    fn shape(&self) -> Self::Shape;
    /// The one pattern of `shape` that `item` matches, if any does.
    fn project(shape: Self::Shape, item: &Self::Item) -> Option<Self>;
    /// Whether `item` matches this pattern (`project(self.shape(), item) == self`).
    fn matches(&self, item: &Self::Item) -> bool {
        Self::project(self.shape(), item).as_ref() == Some(self)
    }
}

/// The last explicit write applied to one item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LastWrite {
    pub stamp: Stamp,
    pub present: bool,
}

/// What [`Register::save`] keeps, to put back with [`Register::restore`].
#[derive(Debug)]
pub struct Saved<P: RangePattern> {
    entries: Vec<(P::Item, Option<LastWrite>)>,
    tombstones: Vec<(P, Option<Stamp>)>,
}

/// The per-item last-writer register that makes replication converge, with range
/// tombstones for deletes by pattern.
///
/// A transaction carries explicit writes (insert or delete of an item) and range deletes
/// (every item matching a pattern), all with the transaction's stamp. An item's last
/// write is the newest of its explicit writes and of the range deletes covering it,
/// where a transaction's explicit writes come after its own range deletes (a replace is
/// a clear and then inserts). Rules it keeps:
/// - an explicit write is admitted only if its stamp is newer than the item's entry
///   and not older than any tombstone covering the item (a missing entry counts as
///   older than everything): `wins`;
/// - a range delete removes each present item whose entry is older than its stamp
///   (`sweeps`) and stays as a tombstone, so that an older insert arriving later is
///   refused and a newer one is not;
/// - hence admission is commutative, idempotent and associative: instances that
///   received the same transactions hold the same items (property-tested below, range
///   deletes included);
/// - entries and tombstones older than the frontier (a time below which no operation
///   can still arrive) decide nothing a missing entry would not, and are pruned.
#[derive(Debug)]
pub struct Register<P: RangePattern> {
    entries: Map<P::Item, LastWrite>,
    /// Per pattern the newest range delete of it: an older one of the same pattern
    /// refuses and removes nothing the newest does not.
    tombstones: Map<P, Stamp>,
    /// How many tombstones of each shape are live (shapes with none are not looked up).
    shapes: BTreeMap<P::Shape, usize>,
}

impl<P: RangePattern> Default for Register<P> {
    fn default() -> Self {
        Register {
            entries: Map::default(),
            tombstones: Map::default(),
            shapes: BTreeMap::new(),
        }
    }
}

impl<P: RangePattern> Register<P> {
    pub fn new() -> Self {
        Self::default()
    }

    /// The newest range delete covering `item`, if one is live.
    pub fn newest_tombstone(&self, item: &P::Item) -> Option<Stamp> {
        self.shapes
            .keys()
            .filter_map(|&shape| P::project(shape, item))
            .filter_map(|pattern| self.tombstones.get(&pattern).copied())
            .max()
    }

    /// Whether an explicit write with this stamp would win for this item.
    pub fn wins(&self, item: &P::Item, stamp: Stamp) -> bool {
        self.entries.get(item).is_none_or(|last| stamp > last.stamp)
            && !self.swept_after(item, stamp)
    }

    /// Whether a range delete newer than `stamp` covers `item`. The same stamp is the
    /// same transaction, whose writes follow its deletes.
    fn swept_after(&self, item: &P::Item, stamp: Stamp) -> bool {
        self.newest_tombstone(item).is_some_and(|t| stamp < t)
    }

    /// Admits the explicit write if it wins, and says whether it did (`wins`, with the
    /// item looked up once where it is held).
    pub fn admit(&mut self, item: &P::Item, stamp: Stamp, present: bool) -> bool {
        if self.swept_after(item, stamp) {
            return false;
        }
        let write = LastWrite { stamp, present };
        match self.entries.get_mut(item) {
            Some(last) if stamp <= last.stamp => false,
            Some(last) => {
                *last = write;
                true
            }
            None => {
                self.entries.insert(item.clone(), write);
                true
            }
        }
    }

    /// Makes room for `additional` more entries at once (a load admits many).
    pub fn reserve(&mut self, additional: usize) {
        self.entries.reserve(additional);
    }

    /// Records an explicit write known to be the newest (a local commit, stamped after
    /// every time this instance has seen).
    pub fn record(&mut self, item: P::Item, stamp: Stamp, present: bool) {
        self.entries.insert(item, LastWrite { stamp, present });
    }

    /// Whether a range delete stamped `stamp` removes `item`, a present item it
    /// matches: its last explicit write is older. (A newer tombstone cannot cover a
    /// present item unless the item was written after it.)
    pub fn sweeps(&self, item: &P::Item, stamp: Stamp) -> bool {
        self.entries.get(item).is_none_or(|last| last.stamp < stamp)
    }

    /// Records a range delete; says whether it is now the newest of its pattern.
    pub fn add_tombstone(&mut self, pattern: P, stamp: Stamp) -> bool {
        match self.tombstones.get_mut(&pattern) {
            Some(kept) if *kept >= stamp => false,
            Some(kept) => {
                *kept = stamp;
                true
            }
            None => {
                *self.shapes.entry(pattern.shape()).or_default() += 1;
                self.tombstones.insert(pattern, stamp);
                true
            }
        }
    }

    fn remove_tombstone(&mut self, pattern: &P) {
        if self.tombstones.remove(pattern).is_some() {
            let shape = pattern.shape();
            if let Some(count) = self.shapes.get_mut(&shape) {
                *count -= 1;
                if *count == 0 {
                    self.shapes.remove(&shape);
                }
            }
        }
    }

    /// Admits every entry and tombstone of `other`: the pointwise newest of both.
    pub fn absorb(&mut self, other: &Register<P>) {
        for (pattern, stamp) in &other.tombstones {
            self.add_tombstone(pattern.clone(), *stamp);
        }
        for (item, last) in &other.entries {
            if self.entries.get(item).is_none_or(|l| last.stamp > l.stamp) {
                self.entries.insert(item.clone(), *last);
            }
        }
    }

    /// Drops every entry and tombstone strictly older than `frontier`; answers how
    /// many of each.
    pub fn prune(&mut self, frontier: HlcTime) -> (usize, usize) {
        let before = self.entries.len();
        self.entries.retain(|_, last| last.stamp.time >= frontier);
        let tombstones = self.prune_tombstones(frontier);
        (before - self.entries.len(), tombstones)
    }

    /// Drops the tombstones strictly older than `frontier` (cheap while few are live:
    /// done whenever the frontier moves, where entries wait for a checkpoint).
    pub fn prune_tombstones(&mut self, frontier: HlcTime) -> usize {
        if self.tombstones.is_empty() {
            return 0;
        }
        let old: Vec<P> = self
            .tombstones
            .iter()
            .filter(|(_, stamp)| stamp.time < frontier)
            .map(|(p, _)| p.clone())
            .collect();
        for pattern in &old {
            self.remove_tombstone(pattern);
        }
        old.len()
    }

    /// What the register holds for `items` and `patterns` now, to put back with
    /// [`Register::restore`] if the transaction that admits them cannot be applied.
    pub fn save<'a>(
        &self,
        items: impl Iterator<Item = &'a P::Item>,
        patterns: impl Iterator<Item = &'a P>,
    ) -> Saved<P>
    where
        P: 'a,
    {
        Saved {
            entries: items
                .map(|i| (i.clone(), self.entries.get(i).copied()))
                .collect(),
            tombstones: patterns
                .map(|p| (p.clone(), self.tombstones.get(p).copied()))
                .collect(),
        }
    }

    /// Puts back what [`Register::save`] returned (in reverse, so an item saved twice
    /// ends as it first was).
    pub fn restore(&mut self, saved: Saved<P>) {
        for (item, last) in saved.entries.into_iter().rev() {
            match last {
                Some(last) => {
                    self.entries.insert(item, last);
                }
                None => {
                    self.entries.remove(&item);
                }
            }
        }
        for (pattern, stamp) in saved.tombstones.into_iter().rev() {
            self.remove_tombstone(&pattern);
            if let Some(stamp) = stamp {
                self.add_tombstone(pattern, stamp);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.tombstones.is_empty()
    }

    pub fn tombstones_len(&self) -> usize {
        self.tombstones.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&P::Item, &LastWrite)> {
        self.entries.iter()
    }

    pub fn tombstones(&self) -> impl Iterator<Item = (&P, &Stamp)> {
        self.tombstones.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stamp::OriginId;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// Items are numbers 0..12; a pattern is every item (`All`) or a residue class
    /// modulo 3 (`Class`): two shapes, as a graph and everything are in the store.
    #[derive(Clone, Debug, PartialEq, Eq, Hash)]
    enum Pat {
        All,
        Class(u8),
    }

    impl RangePattern for Pat {
        type Item = u8;
        type Shape = u8;
        fn shape(&self) -> u8 {
            match self {
                Pat::All => 0,
                Pat::Class(_) => 1,
            }
        }
        fn project(shape: u8, item: &u8) -> Option<Pat> {
            Some(match shape {
                0 => Pat::All,
                _ => Pat::Class(item % 3),
            })
        }
    }

    /// One transaction: explicit writes (item, present) after range deletes.
    #[derive(Clone, Debug)]
    struct Tx {
        stamp: Stamp,
        sweeps: Vec<Pat>,
        writes: Vec<(u8, bool)>,
    }

    /// Applies transactions to a set of items through a register, as an instance does.
    fn apply(txs: &[Tx]) -> BTreeSet<u8> {
        let mut register = Register::<Pat>::new();
        let mut present = BTreeSet::new();
        for tx in txs {
            for pattern in &tx.sweeps {
                present.retain(|i| !(pattern.matches(i) && register.sweeps(i, tx.stamp)));
                register.add_tombstone(pattern.clone(), tx.stamp);
            }
            for &(item, insert) in &tx.writes {
                if register.admit(&item, tx.stamp, insert) {
                    if insert {
                        present.insert(item);
                    } else {
                        present.remove(&item);
                    }
                }
            }
        }
        present
    }

    fn txs() -> impl Strategy<Value = Vec<Tx>> {
        let pat = prop_oneof![Just(Pat::All), (0u8..3).prop_map(Pat::Class)];
        let tx = (
            0u64..40,
            0u64..3,
            prop::collection::vec(pat, 0..2),
            prop::collection::vec((0u8..12, any::<bool>()), 0..4),
        );
        prop::collection::vec(tx, 0..40).prop_map(|txs| {
            // Stamps are unique in a real cluster: drop generated duplicates.
            let mut seen = BTreeSet::new();
            txs.into_iter()
                .filter(|(t, o, _, _)| seen.insert((*t, *o)))
                .map(|(t, o, sweeps, writes)| {
                    // An effect names each item once (its last write in the request).
                    let mut named = BTreeSet::new();
                    let mut writes: Vec<(u8, bool)> = writes
                        .into_iter()
                        .rev()
                        .filter(|(i, _)| named.insert(*i))
                        .collect();
                    writes.reverse();
                    Tx {
                        stamp: Stamp::new(HlcTime(t), OriginId(o)),
                        sweeps: if t % 4 == 0 { sweeps } else { Vec::new() },
                        writes,
                    }
                })
                .collect()
        })
    }

    /// Per item, the newest operation naming or covering it decides; within one
    /// transaction its explicit writes (the last naming the item) come after its sweeps.
    fn expected(txs: &[Tx], item: u8) -> bool {
        let mut ordered: Vec<&Tx> = txs.iter().collect();
        ordered.sort_by_key(|tx| tx.stamp);
        let mut present = false;
        for tx in ordered {
            if tx.sweeps.iter().any(|p| p.matches(&item)) {
                present = false;
            }
            if let Some(&(_, p)) = tx.writes.iter().rev().find(|(i, _)| *i == item) {
                present = p;
            }
        }
        present
    }

    fn shuffled(txs: &[Tx], seed: u64) -> Vec<Tx> {
        let mut out = txs.to_vec();
        let mut s = seed | 1;
        for i in (1..out.len()).rev() {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            out.swap(i, (s % (i as u64 + 1)) as usize);
        }
        out
    }

    proptest! {
        #[test]
        fn any_order_of_the_same_transactions_converges(txs in txs(), seed in any::<u64>()) {
            prop_assert_eq!(apply(&txs), apply(&shuffled(&txs, seed)));
        }

        #[test]
        fn applying_transactions_twice_changes_nothing(txs in txs()) {
            let twice: Vec<Tx> = txs.iter().chain(txs.iter()).cloned().collect();
            prop_assert_eq!(apply(&txs), apply(&twice));
        }

        #[test]
        fn the_newest_operation_decides(txs in txs(), seed in any::<u64>()) {
            let result = apply(&shuffled(&txs, seed));
            for item in 0u8..12 {
                prop_assert_eq!(result.contains(&item), expected(&txs, item), "item {}", item);
            }
        }

        #[test]
        fn merging_registers_is_associative(all in txs(), cut1 in 0usize..40, cut2 in 0usize..40) {
            let (i, j) = (cut1.min(cut2).min(all.len()), cut1.max(cut2).min(all.len()));
            let state = |txs: &[Tx]| {
                let mut r = Register::<Pat>::new();
                for tx in txs {
                    for p in &tx.sweeps {
                        r.add_tombstone(p.clone(), tx.stamp);
                    }
                    for &(item, present) in &tx.writes {
                        r.admit(&item, tx.stamp, present);
                    }
                }
                r
            };
            let (a, b, c) = (&all[..i], &all[i..j], &all[j..]);
            let mut left = state(a);
            left.absorb(&state(b));
            left.absorb(&state(c));
            let mut bc = state(b);
            bc.absorb(&state(c));
            let mut right = state(a);
            right.absorb(&bc);
            let view = |r: &Register<Pat>| {
                let entries: BTreeSet<_> = r.iter().map(|(i, w)| (*i, w.stamp, w.present)).collect();
                let tombs: BTreeSet<_> = r.tombstones().map(|(p, s)| (format!("{p:?}"), *s)).collect();
                (entries, tombs)
            };
            prop_assert_eq!(view(&left), view(&right));
        }
    }

    #[test]
    fn an_older_insert_arriving_after_a_range_delete_is_refused_and_a_newer_one_is_not() {
        let mut r = Register::<Pat>::new();
        let at = |t| Stamp::new(HlcTime(t), OriginId(1));
        r.add_tombstone(Pat::Class(1), at(10));
        assert!(!r.admit(&4, at(9), true), "older than the clear");
        assert!(r.admit(&4, at(10), true), "the clear's own transaction");
        assert!(r.admit(&7, at(11), true), "newer than the clear");
        assert!(r.admit(&5, at(1), true), "another class");
    }

    #[test]
    fn pruning_keeps_entries_and_tombstones_at_or_after_the_frontier() {
        let mut r = Register::<Pat>::new();
        let at = |t| Stamp::new(HlcTime(t), OriginId(1));
        r.record(1, at(5), true);
        r.record(2, at(9), false);
        r.add_tombstone(Pat::All, at(4));
        r.add_tombstone(Pat::Class(0), at(9));
        assert_eq!(r.prune(HlcTime(9)), (1, 1));
        assert!(r.wins(&1, Stamp::new(HlcTime(1), OriginId(0))));
        assert!(!r.wins(&2, Stamp::new(HlcTime(8), OriginId(9))));
        assert!(!r.wins(&3, at(8)), "class 0 still swept at 9");
        assert!(r.wins(&4, at(8)), "All was pruned");
    }

    #[test]
    fn restore_puts_back_tombstones_and_entries() {
        let mut r = Register::<Pat>::new();
        let at = |t| Stamp::new(HlcTime(t), OriginId(1));
        r.add_tombstone(Pat::All, at(3));
        r.record(1, at(2), true);
        let saved = r.save([1u8, 2].iter(), [Pat::All, Pat::Class(2)].iter());
        r.add_tombstone(Pat::All, at(8));
        r.add_tombstone(Pat::Class(2), at(8));
        r.record(1, at(9), false);
        r.record(2, at(9), true);
        r.restore(saved);
        assert_eq!(r.tombstones_len(), 1);
        assert_eq!(r.newest_tombstone(&2), Some(at(3)));
        assert_eq!(r.len(), 1);
        assert!(r.wins(&1, at(4)));
    }
}
