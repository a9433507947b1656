//! A member's maintenance round (the server's `Node::maintain`, about every second;
//! the simulation's `World::maintain`), and what each of its pullers is told of its
//! peer's place: decisions over the [`ClusterView`], free of I/O. The runtime carries
//! out the [`Maintenance`] (records expiries, refuses writes, hands the frontier to
//! the register) and feeds [`pull_membership`] to each puller.

use crate::cluster::ClusterConfig;
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

/// Whether a member holding `held` (and the transactions `own`) takes configuration
/// `told`, sent apart from the log by a member that held `sender_held` then — a stopped
/// instance pulls from nobody, and asks the other members for their configuration
/// instead. A configuration transaction comes in log order, after every transaction
/// before it in the sender's log: one ending a hand-over this member still waits for
/// follows, there, every transaction of the removed member that the sender took over
/// (so a member holds them before it lets the frontier pass that member's promise,
/// and none can come later, older than what it pruned). Told apart from the log, it
/// is taken only once this member holds as much of each such member as the sender did
/// (it is told again at the next ask). Whether it is newer is the acceptor's question.
pub fn told_config_in_order(
    held: &ClusterConfig,
    told: &ClusterConfig,
    own: &VersionVector,
    sender_held: &VersionVector,
) -> bool {
    told.cluster_id == held.cluster_id
        && held
            .handing_over
            .iter()
            .map(|h| h.member.origin)
            .filter(|o| !told.is_handing_over(*o) && !told.is_member(*o))
            .all(|o| own.get(o) >= sender_held.get(o))
}

/// Whether this instance (`local`) is stopped (`repl/stop`) as far as it knows: the
/// configuration it holds says so, and no member has told it, since, of a newer one
/// listing it as started (`started_at`, see [`started_by`]).
pub fn stopped_here(
    config: &ClusterConfig,
    local: OriginId,
    started_at: Option<(u64, u64)>,
) -> bool {
    config.is_stopped(local) && started_at.is_none_or(|at| at <= (config.epoch, config.version))
}

/// Whether configuration `told` (newer than `held`) says that this stopped instance was
/// started again: then it pulls again even before it may take `told` itself (one ending
/// a hand-over waits until the removed member's transactions arrived — by the very
/// pulls a stopped instance would not make; found by the simulation). Returns the
/// position to remember.
pub fn started_by(
    held: &ClusterConfig,
    told: &ClusterConfig,
    local: OriginId,
) -> Option<(u64, u64)> {
    (told.cluster_id == held.cluster_id
        && told.supersedes(held)
        && told.is_member(local)
        && !told.is_stopped(local))
    .then_some((told.epoch, told.version))
}

/// Where this instance stands, as whom it pulls from turns on it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PullStanding {
    /// It is stopped itself ([`stopped_here`]).
    pub stopped_here: bool,
    /// It waits, after a crash cut its log's tail, for the members' word on its own
    /// transactions.
    pub awaiting_peers: bool,
    /// It knows it was removed, or it is out of its cluster (`undo-repl`: an ordinary
    /// repository now).
    pub removed: bool,
}

/// The peers this instance (`local`) pulls from: every other member and every removed
/// member still to hand over what only it held, except stopped ones (`repl/stop`);
/// nobody while it is stopped itself ([`stopped_here`]: it asks the other members for
/// their configuration instead, and takes it by [`told_config_in_order`], so it holds
/// every configuration it may be asked to confirm, and learns by [`started_by`] that it
/// was started).
///
/// Except while it waits, after a crash cut its log's tail, for the members' word on
/// its own transactions (`awaiting_peers`): then it pulls from every member, stopped or
/// not, stopped itself or not. Their word, and any of its own transactions they hold,
/// are what it waits for; a stop would otherwise keep it from writing for as long as
/// the stop lasts — the controlling instance included, which could then not even
/// start the member again (found by the simulation). The stop holds again once the
/// wait is over.
///
/// Nobody at all once it is removed or out of its cluster, whatever the configuration
/// still says: what it would take it could only hold against the members, and a
/// puller started then would take the removal from a peer and mark a repository
/// removed that `undo-repl` had made ordinary (found by CI).
pub fn pulled_peers(
    config: &ClusterConfig,
    local: OriginId,
    standing: PullStanding,
) -> Vec<OriginId> {
    let PullStanding {
        stopped_here,
        awaiting_peers,
        removed,
    } = standing;
    if removed || (stopped_here && !awaiting_peers) {
        return Vec::new();
    }
    let handing_over = config.handing_over.iter().map(|h| &h.member);
    config
        .members
        .iter()
        .chain(handing_over)
        .map(|m| m.origin)
        .filter(|&o| o != local && (awaiting_peers || !config.is_stopped(o)))
        .collect()
}

/// Whether this instance (`local`, holding `config`) stops taking writes when told it
/// was away longer than the log is kept (by a maintenance round or a peer's refusal):
/// every member but the controlling one, which is the one the others are grown from
/// again.
pub fn refuses_writes_when_expired(config: &ClusterConfig, local: OriginId) -> bool {
    config.controlling().map(|c| c.origin) != Some(local)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::fixtures::three;

    const RETENTION_MS: u64 = 10_000;

    #[test]
    fn a_told_configuration_ending_a_hand_over_waits_for_what_the_sender_took_over() {
        let base = three();
        let gone = base.members[2].clone();
        let (handing, _) = base
            .without_member_handing_over(&gone.name, HlcTime(5), HlcTime(6))
            .unwrap();
        let ended = handing.with_hand_over_ended(gone.origin).unwrap();
        let mut sender = VersionVector::new();
        sender.advance(gone.origin, 4);
        let mut own = VersionVector::new();
        own.advance(gone.origin, 3);
        assert!(!told_config_in_order(&handing, &ended, &own, &sender));
        own.advance(gone.origin, 4);
        assert!(told_config_in_order(&handing, &ended, &own, &sender));
        // Nothing waited for: taken whatever it holds.
        assert!(told_config_in_order(
            &base,
            &handing,
            &VersionVector::new(),
            &sender
        ));
        let mut other = ended.clone();
        other.cluster_id = "another".into();
        assert!(!told_config_in_order(&handing, &other, &own, &sender));
    }

    #[test]
    fn stopped_members_are_not_pulled_and_a_stopped_instance_pulls_nobody() {
        let config = three();
        let origins: Vec<OriginId> = config.members.iter().map(|m| m.origin).collect();
        let (us, other) = (origins[0], origins[1]);
        let awaiting = PullStanding {
            awaiting_peers: true,
            ..PullStanding::default()
        };
        let stopped_itself = PullStanding {
            stopped_here: true,
            ..PullStanding::default()
        };
        // Removed or out of its cluster: nobody, waiting or not.
        let removed = PullStanding {
            removed: true,
            ..awaiting
        };
        assert!(pulled_peers(&config, us, removed).is_empty());
        assert_eq!(
            pulled_peers(&config, us, PullStanding::default()),
            origins[1..].to_vec(),
            "every other member"
        );
        let mut stopped = config.clone();
        stopped.stopped.push(other);
        stopped.version += 1;
        assert!(!pulled_peers(&stopped, us, PullStanding::default()).contains(&other));
        // Except while its word is awaited after a lost tail.
        assert!(pulled_peers(&stopped, us, awaiting).contains(&other));
        // The stopped instance itself pulls from nobody, unless it waits so itself.
        assert!(stopped_here(&stopped, other, None));
        assert!(pulled_peers(&stopped, other, stopped_itself).is_empty());
        assert_eq!(
            pulled_peers(
                &stopped,
                other,
                PullStanding {
                    awaiting_peers: true,
                    ..stopped_itself
                }
            )
            .len(),
            2
        );
        // Told of a newer configuration listing it as started: it runs again, before it
        // may take that configuration itself.
        let mut started = stopped.clone();
        started.stopped.clear();
        started.version += 1;
        let at = started_by(&stopped, &started, other);
        assert_eq!(at, Some((started.epoch, started.version)));
        assert!(!stopped_here(&stopped, other, at));
        assert_eq!(started_by(&stopped, &stopped, other), None);
        let mut still = stopped.clone();
        still.version += 2;
        assert_eq!(started_by(&stopped, &still, other), None);
        assert!(stopped_here(&still, other, at), "stopped again later");
    }

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
