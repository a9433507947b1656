//! What an instance waits for after a crash cut the tail off its log: its peers' word
//! on how far its own transactions went, so that it never stamps a sequence number a
//! peer already holds with another transaction.

use crate::promotion::ConfigPosition;
use crate::stamp::{HlcTime, OriginId};
use std::collections::BTreeSet;

/// The other members' reports since a lost tail.
///
/// Rules it keeps:
/// - a member counts as having answered only while its *latest* report says it holds
///   none of our transactions that we lack: a later report that it does (it took them
///   from another member meanwhile) takes its answer back, until we fetched them;
/// - a member this instance's view expired counts as answered (should it come back, it
///   hands over what it holds, our lost transactions too: the three-fault gap of
///   ARCHITECTURE.md), but expiry alone never frees us: a majority of the configuration
///   (counting ourselves) must have answered, since the silent ones may be exactly those
///   that hold our lost transactions. When expiry leaves no majority to answer, waiting
///   is blocked until the expired members are heard again and hand back what they hold,
///   or an operator re-grows this instance from a member;
/// - membership is read when asked, so a member removed from the configuration is
///   waited for no more — but a member's word counts only when given under a
///   configuration at least as new as the one held here: one that has not taken a
///   removal yet still pulls from the removed member, which may hold our lost
///   transactions (it took them just before its removal), and would pass them on after
///   we stamped their sequence numbers again (the simulation's long-run seed 108543).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AwaitingPeers {
    answered: BTreeSet<OriginId>,
    expired: BTreeSet<OriginId>,
}

impl AwaitingPeers {
    pub fn new() -> Self {
        Self::default()
    }

    /// `peer` reported holding our own transactions up to `theirs`, while we hold up to
    /// `ours`, under the configuration at `under` (`None`: a sender too old to say),
    /// while this instance holds the one at `held`. Says whether it holds some we lack
    /// (to be fetched back by a new stream).
    pub fn on_report(
        &mut self,
        peer: OriginId,
        theirs: u64,
        ours: u64,
        under: Option<ConfigPosition>,
        held: ConfigPosition,
    ) -> bool {
        if theirs > ours {
            self.answered.remove(&peer);
            return true;
        }
        if under.is_none_or(|under| under >= held) {
            self.answered.insert(peer);
        } else {
            // It may still pull from a member this instance knows was removed.
            self.answered.remove(&peer);
        }
        false
    }

    /// The heartbeat promise of an instance waiting after a lost tail, for the clock
    /// reading `now`, where `last_own_logged` is the time of its own transaction with
    /// the highest sequence number still in its log (`None`: none is).
    ///
    /// A promise says that no transaction of ours a receiver has not had from our log is
    /// older. Our lost transactions are not in our log, yet other members may still be
    /// passing them on, and they were stamped before `now`: a receiver that pruned its
    /// register past them would let them win over newer writes when they arrive. They
    /// were stamped after our last surviving own transaction (an origin's stamps grow
    /// with its sequence numbers), so the promise goes no further than that; with none
    /// left in the log, it promises nothing (pruning waits until the members answered).
    pub fn promise(now: HlcTime, last_own_logged: Option<HlcTime>) -> HlcTime {
        now.min(last_own_logged.unwrap_or(HlcTime(0)))
    }

    /// This instance's view expired `peer`.
    pub fn on_expired(&mut self, peer: OriginId) {
        self.expired.insert(peer);
    }

    /// Whether local writes may resume: every other member of `members` answered or
    /// expired, and a majority answered.
    pub fn satisfied(&self, local: OriginId, members: &[OriginId]) -> bool {
        let others: Vec<OriginId> = members.iter().copied().filter(|m| *m != local).collect();
        let answered = others.iter().filter(|m| self.answered.contains(m)).count();
        others
            .iter()
            .all(|m| self.answered.contains(m) || self.expired.contains(m))
            && (answered + 1) * 2 > others.len() + 1
    }

    /// Whether no majority can answer any more (too many members expired).
    pub fn blocked(&self, local: OriginId, members: &[OriginId]) -> bool {
        let others: Vec<OriginId> = members.iter().copied().filter(|m| *m != local).collect();
        let answerable = others.iter().filter(|m| !self.expired.contains(m)).count();
        (answerable + 1) * 2 <= others.len() + 1
    }

    /// The members still to answer (for status and logs).
    pub fn waiting_for(&self, local: OriginId, members: &[OriginId]) -> Vec<OriginId> {
        members
            .iter()
            .copied()
            .filter(|m| *m != local && !self.answered.contains(m) && !self.expired.contains(m))
            .collect()
    }

    /// The members counted by expiry rather than by their word.
    pub fn expired(&self) -> impl Iterator<Item = OriginId> + '_ {
        self.expired.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: OriginId = OriginId(1);
    const B: OriginId = OriginId(2);
    const C: OriginId = OriginId(3);
    const AT: ConfigPosition = ConfigPosition {
        epoch: 0,
        version: 4,
    };

    fn report(a: &mut AwaitingPeers, peer: OriginId, theirs: u64, ours: u64) -> bool {
        a.on_report(peer, theirs, ours, Some(AT), AT)
    }

    #[test]
    fn every_member_must_answer_and_a_later_report_can_take_the_answer_back() {
        let members = [ME, B, C];
        let mut a = AwaitingPeers::new();
        assert!(!report(&mut a, B, 5, 5));
        assert!(!a.satisfied(ME, &members));
        assert_eq!(a.waiting_for(ME, &members), vec![C]);
        // B took our lost #6 from C meanwhile: its answer is void until we fetch it.
        assert!(report(&mut a, B, 6, 5));
        assert!(!report(&mut a, C, 5, 5));
        assert!(!a.satisfied(ME, &members));
        assert!(!report(&mut a, B, 6, 6));
        assert!(a.satisfied(ME, &members));
    }

    #[test]
    fn an_expired_member_counts_only_beside_a_majority_that_answered() {
        let members = [ME, B, C];
        let mut a = AwaitingPeers::new();
        a.on_expired(C);
        assert!(!a.satisfied(ME, &members));
        assert!(!a.blocked(ME, &members));
        report(&mut a, B, 3, 3);
        assert!(a.satisfied(ME, &members));

        let mut alone = AwaitingPeers::new();
        alone.on_expired(B);
        alone.on_expired(C);
        assert!(alone.blocked(ME, &members));
        assert!(!alone.satisfied(ME, &members));
    }

    #[test]
    fn a_removed_member_is_waited_for_no_more() {
        let mut a = AwaitingPeers::new();
        report(&mut a, B, 0, 0);
        assert!(!a.satisfied(ME, &[ME, B, C]));
        assert!(a.satisfied(ME, &[ME, B]));
        assert!(AwaitingPeers::new().satisfied(ME, &[ME]));
    }

    #[test]
    fn a_word_given_under_an_older_configuration_does_not_count() {
        let members = [ME, B];
        let older = ConfigPosition {
            epoch: 0,
            version: 3,
        };
        let mut a = AwaitingPeers::new();
        // B has not taken the removal this instance holds: it may still pull our lost
        // transactions from the removed member.
        assert!(!a.on_report(B, 5, 5, Some(older), AT));
        assert!(!a.satisfied(ME, &members));
        assert!(!a.on_report(B, 5, 5, Some(AT), AT));
        assert!(a.satisfied(ME, &members));
        // A later word under an older one (it cannot be, but) takes the answer back.
        a.on_report(B, 5, 5, Some(older), AT);
        assert!(!a.satisfied(ME, &members));
        // A sender too old to say counts, as before.
        assert!(!a.on_report(B, 5, 5, None, AT));
        assert!(a.satisfied(ME, &members));
    }
}
