//! A member's maintenance round (the server's `Node::maintain`, about every second;
//! the simulation's `World::maintain`), and what each of its pullers is told of its
//! peer's place: decisions over the [`ClusterView`], free of I/O. The runtime carries
//! out the [`Maintenance`] (records expiries, refuses writes, hands the frontier to
//! the register) and feeds [`pull_membership`] to each puller.

use crate::pull::PullEvent;
use crate::stamp::{HlcTime, OriginId};
use crate::version_vector::VersionVector;
use crate::view::ClusterView;

/// What one maintenance round decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Maintenance {
    /// Members this round expired: silent for longer than the log is kept. The runtime
    /// tells the repository (after a lost tail, nothing they hold can reach it any
    /// more) and logs each.
    pub expired: Vec<OriginId>,
    /// Refuse local writes for this reason, before status shows the expiry: the
    /// controlling instance was among them (this instance is then the one away, as
    /// far as it can tell, unless it controls; the runtime never refuses at the
    /// controlling instance).
    pub refuse_writes: Option<String>,
    /// What the register may forget below (no write older than it can still arrive).
    pub frontier: HlcTime,
    /// What every member holds.
    pub stable: VersionVector,
}

/// One maintenance round at a member whose view is `view`, at `now_ms` (the machine's
/// time the view counts silence in), with the log kept `retention_ms`, its clock's
/// last stamp `clock_last` and its version vector `local`.
///
/// Rules it keeps:
/// - members silent for longer than the retention are expired first, so the frontier
///   and what is stable are computed without waiting for them;
/// - the controlling instance expiring says this instance must refuse writes, the
///   reason naming it and the retention.
pub fn maintain(
    view: &mut ClusterView,
    now_ms: u64,
    retention_ms: u64,
    clock_last: HlcTime,
    local: &VersionVector,
) -> Maintenance {
    let expired = view.expire_silent(now_ms, retention_ms);
    let refuse_writes = view.controlling_expired(&expired).then(|| {
        let name = view
            .config()
            .controlling()
            .map(|m| m.name.clone())
            .unwrap_or_default();
        format!(
            "the controlling instance {name} was not heard from for longer than the log is kept ({} s)",
            retention_ms / 1000
        )
    });
    Maintenance {
        expired,
        refuse_writes,
        frontier: view.frontier(clock_last, local),
        stable: view.stable_version_vector(local),
    }
}

/// What the puller for `peer` is told of its place ([`PullEvent::Membership`]).
///
/// Rules it keeps:
/// - a removed member still to hand over what only it held is pulled from as a member
///   is, until it did (then the configuration says so);
/// - its refusals — a removed instance that does not know it yet may take this one for
///   expired — say that it is out, never that this instance must be grown again, as an
///   expired peer's do.
pub fn pull_membership(view: &ClusterView, peer: OriginId) -> PullEvent {
    let config = view.config();
    let handing_over = config.is_handing_over(peer);
    PullEvent::Membership {
        member: config.is_member(peer) || handing_over,
        expired: view.is_expired(peer) || handing_over,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::fixtures::three;

    const RETENTION_MS: u64 = 10_000;

    #[test]
    fn a_silent_controlling_instance_expires_and_writes_are_refused_naming_it() {
        let config = three();
        let controlling = config.controlling().unwrap().clone();
        let us = config
            .members
            .iter()
            .find(|m| !m.controlling)
            .unwrap()
            .origin;
        let mut view = ClusterView::new(us, config, 0);
        let local = VersionVector::new();
        let early = maintain(&mut view, RETENTION_MS, RETENTION_MS, HlcTime(1), &local);
        assert!(early.expired.is_empty() && early.refuse_writes.is_none());
        let late = maintain(
            &mut view,
            3 * RETENTION_MS,
            RETENTION_MS,
            HlcTime(1),
            &local,
        );
        assert!(late.expired.contains(&controlling.origin), "{late:?}");
        let reason = late.refuse_writes.expect("refused");
        assert!(
            reason.contains(&controlling.name) && reason.contains("10 s"),
            "{reason}"
        );
        assert_eq!(
            pull_membership(&view, controlling.origin),
            PullEvent::Membership {
                member: true,
                expired: true
            }
        );
    }

    #[test]
    fn a_member_handing_over_is_pulled_from_and_its_refusals_never_call_for_a_regrow() {
        let config = three();
        let us = config.members[0].origin;
        let name = config.members[2].name.clone();
        let leaving = config.members[2].origin;
        let (listed, _) = config
            .without_member_handing_over(&name, HlcTime(5), HlcTime(9))
            .unwrap();
        let view = ClusterView::new(us, listed, 0);
        assert_eq!(
            pull_membership(&view, leaving),
            PullEvent::Membership {
                member: true,
                expired: true
            }
        );
    }
}
