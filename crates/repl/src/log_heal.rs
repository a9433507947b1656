//! Healing a log damaged in the middle: which transactions the damage took out of it,
//! and where each goes back, decided from what survived.
//!
//! A flipped bit or a bad sector inside a replication log leaves *holes*: spans of bytes
//! that hold no valid frame, with valid frames on both sides. The frames around a hole
//! survive; the transactions inside it are gone from this log, but an instance of a
//! cluster can fetch them back from its peers by origin and sequence number and put
//! each where it was. This module decides which ones, from the surviving entries alone.

use crate::cluster::{ClusterConfig, Member};
use crate::stamp::OriginId;
use crate::version_vector::VersionVector;
use std::collections::BTreeMap;

/// A transaction a hole took out of the log, and the hole it goes back into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct MissingFrame {
    /// Index into the holes given to [`plan`].
    pub hole: usize,
    pub origin: OriginId,
    pub seq: u64,
}

/// The transactions the holes took out of a log, each assigned to a hole.
///
/// - `entries`: the surviving entries' origin and sequence number, in log order;
/// - `holes`: where each hole lies, as the number of surviving entries before it,
///   ascending (a hole before every entry is 0, after all of them `entries.len()`);
/// - `base`: per origin, the highest sequence number known *not* to be in the log
///   (truncated away, or before the snapshot the repository was installed from), or
///   `None` when that is not known;
/// - `applied`: the version vector of what was applied before the holes were found
///   (the checkpoint's and the replay's), which may count transactions whose frames were
///   in a hole.
///
/// Rules it keeps:
/// - an origin's sequence numbers have no gaps and grow along the log, so a gap between
///   two surviving entries of one origin is missing only when a hole lies between them
///   (a gap with no hole between, as a backup's replay leaves, is not the damage's);
///   it goes back into the first such hole, which keeps the origin's order whichever
///   hole it came from;
/// - after an origin's last surviving entry, what `applied` counts beyond it is missing
///   when a hole follows that entry (it was logged after it, and only holes lack it);
/// - before an origin's first surviving entry (or with none surviving), transactions
///   above `base` are missing when a hole lies before it; with `base` unknown nothing is
///   claimed there (the log may have started after them);
/// - what no surviving entry and no count in `applied` reveals (an origin's newest
///   transactions that were in a hole and not yet applied) is not claimed: pulling from
///   peers by version vector brings those, as it brings any transaction not yet here.
pub fn plan(
    entries: &[(OriginId, u64)],
    holes: &[usize],
    base: Option<&VersionVector>,
    applied: &VersionVector,
) -> Vec<MissingFrame> {
    if holes.is_empty() {
        return Vec::new();
    }
    let mut by_origin: BTreeMap<OriginId, Vec<(usize, u64)>> = BTreeMap::new();
    for (index, &(origin, seq)) in entries.iter().enumerate() {
        by_origin.entry(origin).or_default().push((index, seq));
    }
    for (origin, _) in applied.iter() {
        by_origin.entry(origin).or_default();
    }
    // The first hole lying after entry `after` (or anywhere, for `None`) and at or
    // before entry `before` (or anywhere after, for `None`).
    let hole_between = |after: Option<usize>, before: Option<usize>| {
        holes
            .iter()
            .position(|&h| after.is_none_or(|a| h > a) && before.is_none_or(|b| h <= b))
    };
    let mut missing = Vec::new();
    let mut push = |hole: usize, origin: OriginId, seqs: std::ops::RangeInclusive<u64>| {
        missing.extend(seqs.map(|seq| MissingFrame { hole, origin, seq }));
    };
    for (origin, surviving) in &by_origin {
        let origin = *origin;
        let lower = base.map(|b| b.get(origin));
        match surviving.first() {
            Some(&(first_index, first_seq)) => {
                if let Some(lower) = lower.filter(|&l| first_seq > l + 1) {
                    if let Some(hole) = hole_between(None, Some(first_index)) {
                        push(hole, origin, lower + 1..=first_seq - 1);
                    }
                }
            }
            None => {
                if let Some(lower) = lower.filter(|&l| applied.get(origin) > l) {
                    push(0, origin, lower + 1..=applied.get(origin));
                }
                continue;
            }
        }
        for pair in surviving.windows(2) {
            let ((a_index, a), (b_index, b)) = (pair[0], pair[1]);
            if b > a + 1 {
                if let Some(hole) = hole_between(Some(a_index), Some(b_index)) {
                    push(hole, origin, a + 1..=b - 1);
                }
            }
        }
        let &(last_index, last_seq) = surviving.last().expect("not empty");
        if applied.get(origin) > last_seq {
            if let Some(hole) = hole_between(Some(last_index), None) {
                push(hole, origin, last_seq + 1..=applied.get(origin));
            }
        }
    }
    missing.sort_unstable();
    missing
}

/// A peer asked for the transactions a log's damage took.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealSource {
    pub member: Member,
    /// A removed instance still handing over: it may hold only its own transactions
    /// (the others', the members hold).
    pub only_own: bool,
}

impl HealSource {
    /// Whether this source not answering leaves undecided whether a member holds what
    /// is `wanted` still: a member's silence always does; a removed instance's only for
    /// its own transactions.
    pub fn silence_matters(&self, wanted: &[(OriginId, u64)]) -> bool {
        !self.only_own
            || wanted
                .iter()
                .any(|(origin, _)| *origin == self.member.origin)
    }
}

/// Whom the instance `local`, holding `config`, asks for the transactions its log's
/// damage took, in order: every other member, then every removed instance still
/// handing over what only it held.
pub fn heal_sources(config: &ClusterConfig, local: OriginId) -> Vec<HealSource> {
    let members = config
        .members
        .iter()
        .filter(|m| m.origin != local)
        .map(|m| HealSource {
            member: m.clone(),
            only_own: false,
        });
    let handing_over = config.handing_over.iter().map(|h| HealSource {
        member: h.member.clone(),
        only_own: true,
    });
    members.chain(handing_over).collect()
}

/// Whether the log is healed now, with `still_missing` transactions none of the
/// sources sent: when nothing is missing any more, or when every source whose silence
/// matters answered — then none holds them, and the store weighs what that means
/// (left out, or the log refuses). Otherwise it asks again: a member that did not
/// answer may hold them.
pub fn heal_now(still_missing: usize, every_source_answered: bool) -> bool {
    still_missing == 0 || every_source_answered
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::fixtures::vv;

    fn o(n: u64) -> OriginId {
        OriginId(n)
    }

    fn frames(missing: &[MissingFrame]) -> Vec<(usize, u64, u64)> {
        missing
            .iter()
            .map(|m| (m.hole, m.origin.0, m.seq))
            .collect()
    }

    #[test]
    fn no_hole_means_nothing_missing_even_with_gaps() {
        // A backup's replay leaves gaps of its own; without a hole they are not damage.
        let entries = [(o(1), 1), (o(1), 5)];
        assert!(plan(&entries, &[], None, &vv(&[(1, 5)])).is_empty());
    }

    #[test]
    fn a_gap_across_a_hole_is_missing_and_goes_back_into_it() {
        // Frame 11 of 40 of origin 1 was damaged.
        let entries: Vec<_> = (1..=40).filter(|&s| s != 11).map(|s| (o(1), s)).collect();
        let missing = plan(&entries, &[10], Some(&vv(&[])), &vv(&[(1, 40)]));
        assert_eq!(frames(&missing), vec![(0, 1, 11)]);
    }

    #[test]
    fn a_gap_with_no_hole_between_is_not_claimed() {
        let entries = [(o(1), 1), (o(1), 2), (o(1), 7), (o(2), 1), (o(2), 3)];
        // The hole lies after origin 1's gap, before origin 2's.
        let missing = plan(&entries, &[4], None, &vv(&[(1, 7), (2, 3)]));
        assert_eq!(frames(&missing), vec![(0, 2, 2)]);
    }

    #[test]
    fn several_origins_and_holes_keep_each_origins_order() {
        // Log: a1 b1 [hole 0: a2 b2] a3 [hole 1: b3 a4] b4
        let entries = [(o(1), 1), (o(2), 1), (o(1), 3), (o(2), 4)];
        let missing = plan(&entries, &[2, 3], None, &vv(&[(1, 4), (2, 4)]));
        // a2 and b2, b3 go into the first hole between their neighbours; a4 after a3.
        assert_eq!(
            frames(&missing),
            vec![(0, 1, 2), (0, 2, 2), (0, 2, 3), (1, 1, 4)]
        );
    }

    #[test]
    fn what_applied_counts_past_the_last_survivor_is_missing_when_a_hole_follows() {
        let entries = [(o(1), 1), (o(2), 1)];
        let missing = plan(&entries, &[1], None, &vv(&[(1, 3), (2, 1)]));
        assert_eq!(frames(&missing), vec![(0, 1, 2), (0, 1, 3)]);
        // No hole after origin 1's last entry: nothing is claimed for it.
        let entries = [(o(2), 1), (o(1), 1)];
        assert!(plan(&entries, &[1], None, &vv(&[(1, 3), (2, 1)])).is_empty());
    }

    #[test]
    fn before_the_first_survivor_only_a_known_base_claims_anything() {
        let entries = [(o(1), 5)];
        assert!(plan(&entries, &[0], None, &vv(&[(1, 5)])).is_empty());
        let missing = plan(&entries, &[0], Some(&vv(&[(1, 2)])), &vv(&[(1, 5)]));
        assert_eq!(frames(&missing), vec![(0, 1, 3), (0, 1, 4)]);
        // An origin with nothing left in the log at all.
        let missing = plan(
            &[(o(1), 1)],
            &[1],
            Some(&vv(&[(2, 1)])),
            &vv(&[(1, 1), (2, 3)]),
        );
        assert_eq!(frames(&missing), vec![(0, 2, 2), (0, 2, 3)]);
    }

    #[test]
    fn members_are_asked_first_and_a_removed_instances_silence_matters_only_for_its_own() {
        let config = crate::cluster::fixtures::three();
        let local = config.members[0].origin;
        let gone = config.members[2].clone();
        let (handing, _) = config
            .without_member_handing_over(&gone.name, crate::HlcTime(1), crate::HlcTime(2))
            .unwrap();
        let sources = heal_sources(&handing, local);
        assert_eq!(sources.len(), 2);
        assert!(!sources[0].only_own && sources[1].only_own);
        assert_eq!(sources[1].member.origin, gone.origin);
        let other = config.members[1].origin;
        assert!(sources[0].silence_matters(&[(gone.origin, 1)]));
        assert!(!sources[1].silence_matters(&[(other, 1)]));
        assert!(sources[1].silence_matters(&[(other, 1), (gone.origin, 4)]));
        assert!(heal_now(0, false) && heal_now(3, true) && !heal_now(3, false));
    }
}
