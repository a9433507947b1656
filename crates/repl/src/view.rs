use crate::cluster::ClusterConfig;
use crate::promotion::ConfigPosition;
use crate::stamp::{HlcTime, OriginId};
use crate::version_vector::VersionVector;
use std::collections::HashMap;

/// What one instance knows of another, from the other's heartbeats and transactions.
#[derive(Clone, Debug, Default)]
pub struct PeerProgress {
    /// Its version vector, as last reported by itself.
    pub version_vector: VersionVector,
    /// A time no transaction of its that we have not yet received can be older than.
    pub promised: HlcTime,
    /// When we last heard from it (milliseconds since the epoch, our clock).
    pub last_contact_ms: Option<u64>,
    /// Whether our pull stream from it is open.
    pub connected: bool,
    /// Why we cannot replicate from it, when that is so (e.g. it needs re-growing).
    pub problem: Option<String>,
    /// It was away longer than the log is kept: it no longer counts for the log (it
    /// still holds the frontier back until removed), and only what it hands over is
    /// taken from it (see `Puller`). Only growing it again (under a new id) brings it
    /// back.
    pub expired: bool,
}

/// A removed member's hold on the frontier.
#[derive(Clone, Debug)]
struct Departed {
    /// Its last promise.
    promised: HlcTime,
    /// Its highest sequence number it or a remaining member was known to hold.
    needed: u64,
    /// Remaining members not heard since they took its removal: until then they may
    /// still pull from it, and hold more of it.
    unheard: std::collections::BTreeSet<OriginId>,
    /// The configuration that removed it, as this instance took it.
    removed_by: ConfigPosition,
    /// What was known of it when it left.
    progress: PeerProgress,
}

/// What removing a member would discard, as far as this instance can tell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unreplicated {
    /// Everything it was last heard to hold, some remaining member holds too.
    Nothing,
    /// It holds this many transactions no remaining member is known to hold.
    Transactions(u64),
    /// It cannot be heard from now (the reason), so what it holds is unknown.
    Unknown(String),
}

/// One instance's view of its cluster: the configuration and what it knows of every
/// member. From it follow the frontier (for pruning the register), the stable version
/// vector (for truncating the log), commit durability and lag.
///
/// Rules it keeps:
/// - a member's promise only grows, and is what it promised itself (a heartbeat with its
///   clock, sent after all its earlier transactions) or the time of its last transaction
///   we applied; a member never heard from counts as having promised the time it was
///   added;
/// - the frontier is the minimum promise over current members, with this instance's own
///   clock as its promise — or nothing at all while a member is known to hold own
///   transactions this instance lacks (a lost tail being fetched back: they are older
///   than its clock); a removed member stops counting once every remaining member was
///   heard since it took the removal (a heartbeat sent under that configuration or a
///   newer one) and this instance holds every transaction of it that it, or a
///   remaining member, was known to hold (until then its last promise holds the
///   frontier back: the members that hold them relay them, older than their own
///   promises, and one that has not taken the removal still pulls from it);
/// - a member removed before it could hand over what only it held (the
///   configuration's `handing_over`) holds the frontier at its last known promise
///   until it is off that list: what it hands over is stamped as it was acknowledged;
///   and then, as at a removal, until every remaining member was heard under the
///   configuration that ended its hand-over and this instance holds what they were
///   known to hold of it (they pulled from it until they took the end, and relay what
///   they took); its own reports count no more then (nobody pulls from it: after a
///   hand-over given up, what it alone held never comes).
#[derive(Clone, Debug)]
pub struct ClusterView {
    local: OriginId,
    config: ClusterConfig,
    peers: HashMap<OriginId, PeerProgress>,
    /// Removed members whose transactions may still arrive, relayed.
    departed: HashMap<OriginId, Departed>,
    /// When this view began (ms since the epoch): silence is counted from here at most.
    since_ms: u64,
}

impl ClusterView {
    pub fn new(local: OriginId, config: ClusterConfig, now_ms: u64) -> Self {
        ClusterView {
            local,
            config,
            peers: HashMap::new(),
            departed: HashMap::new(),
            since_ms: now_ms,
        }
    }

    pub fn local(&self) -> OriginId {
        self.local
    }

    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// Adopts a newer configuration (epoch first, then version); an older or equal one
    /// is ignored.
    pub fn set_config(&mut self, config: ClusterConfig) -> bool {
        if !config.supersedes(&self.config) {
            return false;
        }
        // What a removed member was known to hold, by itself or by those that stay:
        // the frontier waits at its promise until this instance holds as much.
        for m in &self.config.members {
            if config.is_member(m.origin) || m.origin == self.local {
                continue;
            }
            let peer = self.peers.get(&m.origin).cloned().unwrap_or_default();
            let needed = self
                .peers
                .values()
                .map(|p| p.version_vector.get(m.origin))
                .max()
                .unwrap_or(0);
            let unheard = config
                .members
                .iter()
                .map(|m| m.origin)
                .filter(|o| *o != self.local)
                .collect();
            self.departed.insert(
                m.origin,
                Departed {
                    promised: peer.promised.max(m.added_at),
                    needed,
                    unheard,
                    removed_by: config.position(),
                    progress: peer,
                },
            );
        }
        // A member back in a newer configuration (its removal was superseded by a
        // promotion from before it) is known as it was: counted silent from when it was
        // last heard, not from when this view began.
        let back: Vec<OriginId> = self
            .departed
            .keys()
            .copied()
            .filter(|o| config.is_member(*o))
            .collect();
        for origin in back {
            let departed = self.departed.remove(&origin).expect("listed");
            self.peers.insert(origin, departed.progress);
        }
        // A hand-over that ended (handed over, or given up): the members that pulled
        // from the removed member until they took the end may relay what they took,
        // older than their promises, so its promise holds the frontier again until each
        // was heard under the end and this instance holds what they hold of it. What it
        // alone held is waited for no more (nobody pulls from it now): its own reports
        // do not count, or a hand-over given up would hold the frontier for good.
        for hand_over in &self.config.handing_over {
            let origin = hand_over.member.origin;
            if config.is_handing_over(origin) || config.is_member(origin) {
                continue;
            }
            let needed = self
                .peers
                .iter()
                .filter(|(o, _)| **o != origin)
                .map(|(_, p)| p.version_vector.get(origin))
                .max()
                .unwrap_or(0);
            let unheard = config
                .members
                .iter()
                .map(|m| m.origin)
                .filter(|o| *o != self.local)
                .collect();
            let progress = self.peers.get(&origin).cloned().unwrap_or_default();
            let departed = self.departed.entry(origin).or_insert(Departed {
                promised: hand_over.promised,
                needed,
                unheard: Default::default(),
                removed_by: config.position(),
                progress,
            });
            departed.promised = departed.promised.min(hand_over.promised);
            departed.needed = needed;
            departed.unheard = unheard;
            departed.removed_by = config.position();
        }
        for departed in self.departed.values_mut() {
            departed.unheard.retain(|o| config.is_member(*o));
        }
        self.peers.retain(|origin, _| config.is_member(*origin));
        self.config = config;
        true
    }

    pub fn peer(&self, origin: OriginId) -> Option<&PeerProgress> {
        self.peers.get(&origin)
    }

    fn progress(&mut self, origin: OriginId) -> &mut PeerProgress {
        self.peers.entry(origin).or_default()
    }

    /// A heartbeat from the member itself: its clock and version vector. It does not
    /// say which configuration the member held when it sent it (a peer of an older
    /// release): it counts as sent under every removal this instance knows of, as
    /// before — which lets a member that had not yet taken a removal relay the removed
    /// member's transactions past the frontier (seed 173474); see
    /// [`ClusterView::on_heartbeat_under`].
    pub fn on_heartbeat(
        &mut self,
        from: OriginId,
        clock: HlcTime,
        version_vector: VersionVector,
        now_ms: u64,
    ) {
        self.on_heartbeat_under(from, clock, version_vector, None, now_ms)
    }

    /// A heartbeat from the member itself: its clock and version vector, taken while it
    /// held the configuration at `held` (`None`: not known). A removed member stops
    /// holding the frontier only once every remaining member was heard under a
    /// configuration at least as new as the one that removed it: before it took the
    /// removal, a member still pulls from the removed one, and relays what it gets,
    /// older than every promise.
    pub fn on_heartbeat_under(
        &mut self,
        from: OriginId,
        clock: HlcTime,
        version_vector: VersionVector,
        held: Option<ConfigPosition>,
        now_ms: u64,
    ) {
        for (origin, departed) in self.departed.iter_mut() {
            departed.needed = departed.needed.max(version_vector.get(*origin));
            if held.is_none_or(|p| p >= departed.removed_by) {
                departed.unheard.remove(&from);
            }
        }
        let peer = self.progress(from);
        peer.promised = peer.promised.max(clock);
        peer.version_vector.join(&version_vector);
        peer.last_contact_ms = Some(now_ms);
        if !peer.expired {
            peer.problem = None;
        }
    }

    /// Something (any frame) arrived on the pull stream from `from`.
    pub fn on_contact(&mut self, from: OriginId, now_ms: u64) {
        self.progress(from).last_contact_ms = Some(now_ms);
    }

    /// A transaction of `origin` applied here (from whichever peer it came).
    pub fn on_transaction(&mut self, origin: OriginId, time: HlcTime) {
        if origin != self.local {
            let peer = self.progress(origin);
            peer.promised = peer.promised.max(time);
        }
    }

    pub fn set_connected(&mut self, origin: OriginId, connected: bool, now_ms: u64) {
        let peer = self.progress(origin);
        peer.connected = connected;
        if connected {
            peer.last_contact_ms = Some(now_ms);
        }
    }

    /// Why we cannot replicate from `origin` (or `None`: nothing wrong). An expired
    /// member's problem stays its expiry: nothing else is the matter with it any more.
    pub fn set_problem(&mut self, origin: OriginId, problem: Option<String>) {
        let peer = self.progress(origin);
        if !peer.expired {
            peer.problem = problem;
        }
    }

    /// Marks members silent for longer than `retention_ms` as expired (for good), and
    /// says which were newly expired.
    pub fn expire_silent(&mut self, now_ms: u64, retention_ms: u64) -> Vec<OriginId> {
        if self.config.is_stopped(self.local) {
            // Stopped (`repl/stop`), this instance pulls from nobody: the others'
            // silence is its own doing and says nothing of them. It counts from when
            // this instance runs again (found by the simulation: a stopped member
            // expired the controlling instance and refused writes for good).
            for m in &self.config.members {
                if m.origin != self.local {
                    self.peers.entry(m.origin).or_default().last_contact_ms = Some(now_ms);
                }
            }
            return Vec::new();
        }
        let mut expired = Vec::new();
        for m in &self.config.members {
            if m.origin == self.local {
                continue;
            }
            // A member never heard from counts from when it was added, or from when
            // this view began (a restart does not make everyone silent for long).
            let silent_from = m.added_at.millis().max(self.since_ms);
            let peer = self.peers.entry(m.origin).or_default();
            let last = peer.last_contact_ms.unwrap_or(silent_from);
            if !peer.expired && !peer.connected && now_ms.saturating_sub(last) > retention_ms {
                peer.expired = true;
                peer.problem =
                    Some("away longer than the log is kept: remove it and grow it again".into());
                expired.push(m.origin);
            }
        }
        expired
    }

    /// Whether this instance must refuse writes now that `expired` were expired: the
    /// controlling instance is among them, so it will not take our transactions any
    /// more either (it expires us by the same rule) and what we would write would be
    /// lost. The controlling instance itself never refuses for that: the others are
    /// grown again from it.
    pub fn controlling_expired(&self, expired: &[OriginId]) -> bool {
        self.config
            .controlling()
            .is_some_and(|c| c.origin != self.local && expired.contains(&c.origin))
    }

    pub fn is_expired(&self, origin: OriginId) -> bool {
        self.peers.get(&origin).is_some_and(|p| p.expired)
    }

    /// The members this view expired, in the configuration's order (what
    /// `Proposer::change_knowing_expired` takes).
    pub fn expired_members(&self) -> Vec<OriginId> {
        self.config
            .members
            .iter()
            .map(|m| m.origin)
            .filter(|o| self.is_expired(*o))
            .collect()
    }

    /// No transaction this instance has not yet received can be older than this
    /// (`local`: what this instance holds).
    ///
    /// An expired member still holds it back (at its last promise) until it is removed
    /// from the configuration: it may still hand over its old transactions, or a member
    /// that has not expired it relay them, and a register that forgot newer writes to
    /// the same quads would let them undo those. A removed one holds it back until this
    /// instance holds what it was known to hold: the members that took its
    /// transactions before it left still relay them (the simulation found a removal
    /// letting a relayed older delete undo a newer insert, seed 1243).
    pub fn frontier(&self, local_clock: HlcTime, local: &VersionVector) -> HlcTime {
        // Our own transactions that a member is known to hold and we lack (a lost tail
        // not yet fetched back) were stamped before our clock and will arrive: nothing
        // they could undo may be forgotten (seed 196336). A removed member's are not
        // waited for: nobody pulls from it, and a member that took them from it before
        // taking the removal says so itself.
        let own_lost = self
            .peers
            .values()
            .any(|p| p.version_vector.get(self.local) > local.get(self.local));
        let own = if own_lost { HlcTime::ZERO } else { local_clock };
        let departed = self
            .departed
            .iter()
            .filter(|(origin, d)| !d.unheard.is_empty() || local.get(**origin) < d.needed)
            .map(|(_, d)| d.promised)
            .chain(self.config.handing_over.iter().map(|h| h.promised));
        self.config
            .members
            .iter()
            .map(|m| {
                if m.origin == self.local {
                    own
                } else {
                    let promised = self
                        .peers
                        .get(&m.origin)
                        .map_or(HlcTime::ZERO, |p| p.promised);
                    promised.max(m.added_at)
                }
            })
            .chain(departed)
            .min()
            .unwrap_or(own)
    }

    /// What every member is known to have: the pointwise minimum of their version
    /// vectors (this instance's own being `local`). Expired members do not count: when
    /// one returns, what it lacks may be gone, and it must be grown again. But this
    /// instance's own transactions count as stable only up to what some other member
    /// (expired or not) is known to hold: with every other member expired — this
    /// instance being the one cut off — it keeps in its log what it must hand over when
    /// it is heard again.
    pub fn stable_version_vector(&self, local: &VersionVector) -> VersionVector {
        let mut stable = local.clone();
        let mut own_held = 0;
        for m in &self.config.members {
            if m.origin == self.local {
                continue;
            }
            let theirs = self
                .peers
                .get(&m.origin)
                .map(|p| p.version_vector.clone())
                .unwrap_or_default();
            own_held = own_held.max(theirs.get(self.local));
            if !self.is_expired(m.origin) {
                stable = stable.meet(&theirs);
            }
        }
        if self.config.members.iter().any(|m| m.origin != self.local) {
            let mut cap = VersionVector::new();
            for (origin, seq) in stable.iter() {
                cap.advance(
                    origin,
                    if origin == self.local {
                        seq.min(own_held)
                    } else {
                        seq
                    },
                );
            }
            stable = cap;
        }
        stable
    }

    /// How many members (this one included) are known to have transaction `seq` of
    /// `origin`.
    pub fn holders(&self, origin: OriginId, seq: u64, local: &VersionVector) -> usize {
        self.config
            .members
            .iter()
            .filter(|m| {
                if m.origin == self.local {
                    local.covers(origin, seq)
                } else {
                    self.peers
                        .get(&m.origin)
                        .is_some_and(|p| p.version_vector.covers(origin, seq))
                }
            })
            .count()
    }

    /// How many members (this one included) are known to hold this instance's own
    /// transaction `seq`, which this instance holds since it committed it.
    pub fn own_holders(&self, seq: u64) -> usize {
        1 + self
            .config
            .members
            .iter()
            .filter(|m| m.origin != self.local)
            .filter(|m| {
                self.peers
                    .get(&m.origin)
                    .is_some_and(|p| p.version_vector.covers(self.local, seq))
            })
            .count()
    }

    /// How many more members must be known to hold this instance's own transaction
    /// `seq` for a commit that needs `needed(members)` of the configuration held (0:
    /// it is as durable as asked). Counted against the configuration held when asked,
    /// never an older one: a member grown since counts, one removed does not.
    pub fn holders_missing(&self, seq: u64, needed: impl Fn(usize) -> usize) -> usize {
        needed(self.config.members.len()).saturating_sub(self.own_holders(seq))
    }

    /// How many transactions this instance, holding `local`, still lacks that the
    /// members are known to hold (0: caught up).
    pub fn catch_up_lag(&self, local: &VersionVector) -> u64 {
        let mut known = local.clone();
        for member in &self.config.members {
            if let Some(peer) = self.peers.get(&member.origin) {
                known.join(&peer.version_vector);
            }
        }
        local.missing_from(&known)
    }

    /// What removing `member` would discard: the transactions it was last heard to hold
    /// that no remaining member (this one holding `local`) is known to hold. Only a
    /// member connected and heard from within `fresh_ms` is known; of any other, what it
    /// holds now is unknown (it may have written since it was last heard).
    pub fn unreplicated(
        &self,
        member: OriginId,
        local: &VersionVector,
        now_ms: u64,
        fresh_ms: u64,
    ) -> Unreplicated {
        if member == self.local {
            return Unreplicated::Nothing;
        }
        let Some(peer) = self.peers.get(&member) else {
            return Unreplicated::Unknown("never heard from".into());
        };
        // An expired member that is heard again hands over what only it holds: what
        // removing it would discard is then known, as for any other member.
        if peer.expired && !peer.connected {
            return Unreplicated::Unknown("away longer than the log is kept".into());
        }
        let silent_ms = peer.last_contact_ms.map(|t| now_ms.saturating_sub(t));
        match silent_ms {
            None => return Unreplicated::Unknown("never heard from".into()),
            Some(ms) if !peer.connected || ms > fresh_ms => {
                return Unreplicated::Unknown(format!(
                    "not heard from for {:.1} s",
                    ms as f64 / 1000.0
                ))
            }
            Some(_) => {}
        }
        match self
            .held_without(member, local)
            .missing_from(&peer.version_vector)
        {
            0 => Unreplicated::Nothing,
            n => Unreplicated::Transactions(n),
        }
    }

    /// What the members other than `member` are known to hold together (this one
    /// holding `local`): what removing `member` keeps.
    pub fn held_without(&self, member: OriginId, local: &VersionVector) -> VersionVector {
        let mut remaining = local.clone();
        for m in &self.config.members {
            if m.origin != member && m.origin != self.local {
                if let Some(p) = self.peers.get(&m.origin) {
                    remaining.join(&p.version_vector);
                }
            }
        }
        remaining
    }

    /// The change `remove --force` of member `name` makes, from this instance's view:
    /// with a hand-over (`hand_over`: unless its data is known to be gone, or it keeps
    /// it apart, `undo-repl`) it goes on the hand-over list with its last promise known
    /// here (never earlier than it was added: the frontier waits for it from there);
    /// otherwise a plain removal. `None` when it is not a member.
    pub fn forced_removal(&self, name: &str, hand_over: bool) -> Option<crate::Change> {
        let member = self.config().member_named(name)?;
        if !hand_over {
            return Some(crate::Change::Remove {
                name: name.to_owned(),
            });
        }
        let promised = self
            .peer(member.origin)
            .map_or(member.added_at, |p| p.promised);
        Some(crate::Change::RemoveHandingOver {
            name: name.to_owned(),
            promised,
        })
    }

    /// What removing `member` would discard, by the version vector it `declared` once it
    /// stopped acknowledging writes (see the removal hold): transactions it declared
    /// that no remaining member is known to hold. Unlike [`ClusterView::unreplicated`],
    /// which judges by its last report (which may predate its latest writes), nothing
    /// it acknowledged can be missed.
    pub fn unreplicated_declared(
        &self,
        member: OriginId,
        declared: &VersionVector,
        local: &VersionVector,
    ) -> Unreplicated {
        match self.held_without(member, local).missing_from(declared) {
            0 => Unreplicated::Nothing,
            n => Unreplicated::Transactions(n),
        }
    }

    /// Transactions this instance has that `member` is not known to have.
    pub fn lag_transactions(&self, member: OriginId, local: &VersionVector) -> u64 {
        if member == self.local {
            return 0;
        }
        let theirs = self
            .peers
            .get(&member)
            .map(|p| p.version_vector.clone())
            .unwrap_or_default();
        theirs.missing_from(local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::fixtures::vv;
    use crate::cluster::Member;

    fn member(name: &str, origin: u64, added: u64) -> Member {
        Member {
            name: name.into(),
            origin: OriginId(origin),
            address: String::new(),
            repository: name.into(),
            controlling: origin == 1,
            added_at: HlcTime(added),
        }
    }

    fn view() -> ClusterView {
        let config = ClusterConfig::new("c".into(), "r".into(), "t".into(), member("a", 1, 0))
            .with_member(member("b", 2, 100))
            .unwrap()
            .with_member(member("c", 3, 200))
            .unwrap();
        ClusterView::new(OriginId(1), config, 0)
    }

    #[test]
    fn a_stopped_instance_expires_nobody_for_the_silence_its_stop_makes() {
        let mut v = view();
        let mut stopped = v.config().clone();
        stopped.stopped.push(OriginId(1));
        stopped.version += 1;
        v.set_config(stopped.clone());
        assert!(v.expire_silent(100_000, 10_000).is_empty());
        // Started again: the silence counts from then.
        let mut started = stopped;
        started.stopped.clear();
        started.version += 1;
        v.set_config(started);
        assert!(v.expire_silent(105_000, 10_000).is_empty());
        assert_eq!(v.expire_silent(111_000, 10_000).len(), 2);
    }

    #[test]
    fn a_forced_removal_hands_over_from_the_last_promise_known_here() {
        let mut v = view();
        let handing_over = |v: &ClusterView, name: &str| match v.forced_removal(name, true) {
            Some(crate::Change::RemoveHandingOver { promised, .. }) => promised,
            other => panic!("{other:?}"),
        };
        // Never heard from: from when it was added.
        assert_eq!(handing_over(&v, "b"), HlcTime(100));
        v.on_heartbeat(OriginId(2), HlcTime(500), VersionVector::new(), 0);
        assert_eq!(handing_over(&v, "b"), HlcTime(500));
        assert_eq!(
            v.forced_removal("b", false),
            Some(crate::Change::Remove { name: "b".into() })
        );
        assert_eq!(v.forced_removal("nobody", true), None);
    }

    #[test]
    fn the_frontier_waits_for_the_slowest_promise() {
        let mut v = view();
        // Nobody heard from: b and c count from when they were added.
        assert_eq!(
            v.frontier(HlcTime(1000), &VersionVector::new()),
            HlcTime(100)
        );
        v.on_heartbeat(OriginId(2), HlcTime(500), VersionVector::new(), 0);
        assert_eq!(
            v.frontier(HlcTime(1000), &VersionVector::new()),
            HlcTime(200)
        );
        v.on_transaction(OriginId(3), HlcTime(700));
        assert_eq!(
            v.frontier(HlcTime(1000), &VersionVector::new()),
            HlcTime(500)
        );
        // An older heartbeat never moves a promise back.
        v.on_heartbeat(OriginId(2), HlcTime(50), VersionVector::new(), 0);
        assert_eq!(
            v.frontier(HlcTime(1000), &VersionVector::new()),
            HlcTime(500)
        );
        assert_eq!(
            v.frontier(HlcTime(300), &VersionVector::new()),
            HlcTime(300)
        );
    }

    #[test]
    fn a_removed_member_stops_holding_the_frontier_back() {
        let mut v = view();
        v.on_heartbeat(OriginId(2), HlcTime(900), VersionVector::new(), 0);
        let (config, _) = v.config().without_member("c").unwrap();
        assert!(v.set_config(config.clone()));
        assert!(!v.set_config(config));
        // Until b was heard since, it may hold transactions of c's this one lacks.
        assert_eq!(
            v.frontier(HlcTime(1000), &VersionVector::new()),
            HlcTime(200)
        );
        v.on_heartbeat(OriginId(2), HlcTime(900), VersionVector::new(), 0);
        assert_eq!(
            v.frontier(HlcTime(1000), &VersionVector::new()),
            HlcTime(900)
        );
    }

    /// A hand-over that gives up: b, not yet holding the end, pulled more of c's
    /// transactions than this instance ever heard of. Before, the end let the frontier
    /// pass at once (c's hold was over), and b then relayed them, older than what this
    /// instance had pruned.
    #[test]
    fn after_a_hand_over_ends_the_frontier_waits_for_what_the_members_took_over() {
        let mut v = view();
        v.on_heartbeat(OriginId(3), HlcTime(300), vv(&[(3, 4)]), 0);
        v.on_heartbeat(OriginId(2), HlcTime(900), vv(&[(3, 4)]), 0);
        let (listed, _) = v
            .config()
            .without_member_handing_over("c", HlcTime(300), HlcTime(950))
            .unwrap();
        assert!(v.set_config(listed.clone()));
        v.on_heartbeat_under(
            OriginId(2),
            HlcTime(990),
            vv(&[(3, 4)]),
            Some(listed.position()),
            0,
        );
        let ended = listed.with_hand_over_ended(OriginId(3)).unwrap();
        assert!(v.set_config(ended.clone()));
        // b may still relay what it took from c before it took the end ...
        assert_eq!(v.frontier(HlcTime(1000), &vv(&[(3, 4)])), HlcTime(300));
        // (a heartbeat b sent before it took the end does not say it stopped)
        v.on_heartbeat_under(
            OriginId(2),
            HlcTime(995),
            vv(&[(3, 6)]),
            Some(listed.position()),
            0,
        );
        assert_eq!(v.frontier(HlcTime(1000), &vv(&[(3, 4)])), HlcTime(300));
        v.on_heartbeat_under(
            OriginId(2),
            HlcTime(1100),
            vv(&[(3, 7)]),
            Some(ended.position()),
            0,
        );
        // ... until it was heard under the end, and this instance holds all it holds.
        assert_eq!(v.frontier(HlcTime(1200), &vv(&[(3, 6)])), HlcTime(300));
        assert_eq!(v.frontier(HlcTime(1200), &vv(&[(3, 7)])), HlcTime(1100));
    }

    /// A hand-over given up after c was heard holding more than anyone took: what only
    /// c holds never comes now, and must not hold the frontier for good.
    #[test]
    fn a_hand_over_given_up_does_not_hold_the_frontier_for_what_only_the_removed_member_held() {
        let mut v = view();
        v.on_heartbeat(OriginId(2), HlcTime(900), vv(&[(3, 4)]), 0);
        let (listed, _) = v
            .config()
            .without_member_handing_over("c", HlcTime(300), HlcTime(950))
            .unwrap();
        assert!(v.set_config(listed.clone()));
        // c, pulled from while listed, says it holds 9 of its own; 4 arrived. (Never
        // heard before its removal, its promise is the time it was added.)
        v.on_heartbeat(OriginId(3), HlcTime(400), vv(&[(3, 9)]), 0);
        v.on_heartbeat_under(
            OriginId(2),
            HlcTime(990),
            vv(&[(3, 4)]),
            Some(listed.position()),
            0,
        );
        assert_eq!(v.frontier(HlcTime(1000), &vv(&[(3, 4)])), HlcTime(200));
        let ended = listed.with_hand_over_ended(OriginId(3)).unwrap();
        assert!(v.set_config(ended.clone()));
        v.on_heartbeat_under(
            OriginId(2),
            HlcTime(1100),
            vv(&[(3, 4)]),
            Some(ended.position()),
            0,
        );
        assert_eq!(v.frontier(HlcTime(1200), &vv(&[(3, 4)])), HlcTime(1100));
        // A view that began while c was listed knows the same once the end comes.
        let mut fresh = ClusterView::new(OriginId(1), listed, 0);
        fresh.on_heartbeat(OriginId(2), HlcTime(990), vv(&[(3, 5)]), 0);
        assert!(fresh.set_config(ended.clone()));
        assert_eq!(fresh.frontier(HlcTime(1000), &vv(&[(3, 4)])), HlcTime(300));
        fresh.on_heartbeat_under(
            OriginId(2),
            HlcTime(1100),
            vv(&[(3, 5)]),
            Some(ended.position()),
            0,
        );
        assert_eq!(fresh.frontier(HlcTime(1200), &vv(&[(3, 4)])), HlcTime(300));
        assert_eq!(fresh.frontier(HlcTime(1200), &vv(&[(3, 5)])), HlcTime(1100));
    }

    #[test]
    fn a_member_back_in_a_newer_configuration_is_known_as_it_was() {
        let mut v = view();
        v.on_heartbeat(OriginId(3), HlcTime(300), vv(&[(3, 4)]), 9_000);
        let base = v.config().clone();
        // Removed at epoch 0, then a promotion of b from before the removal wins.
        assert!(v.set_config(base.without_member("c").unwrap().0));
        let mut promoted = base.with_promoted("b", 1).unwrap();
        promoted.version += 1;
        assert!(v.set_config(promoted));
        assert_eq!(v.peer(OriginId(3)).unwrap().last_contact_ms, Some(9_000));
        assert!(
            !v.expire_silent(12_000, 5_000).contains(&OriginId(3)),
            "silent 3 s, not since the view began"
        );
    }

    #[test]
    fn a_removed_member_holds_the_frontier_until_its_known_transactions_arrived() {
        let mut v = view();
        // c was heard holding 4 of its own; b holds 5 of c's.
        v.on_heartbeat(OriginId(3), HlcTime(300), vv(&[(3, 4)]), 0);
        v.on_heartbeat(OriginId(2), HlcTime(900), vv(&[(3, 5)]), 0);
        let (config, _) = v.config().without_member("c").unwrap();
        assert!(v.set_config(config));
        v.on_heartbeat(OriginId(2), HlcTime(900), vv(&[(3, 5)]), 0);
        assert_eq!(v.frontier(HlcTime(1000), &vv(&[(3, 4)])), HlcTime(300));
        // b is heard holding more of c's: wait for those too.
        v.on_heartbeat(OriginId(2), HlcTime(950), vv(&[(3, 6)]), 0);
        assert_eq!(v.frontier(HlcTime(1000), &vv(&[(3, 5)])), HlcTime(300));
        assert_eq!(v.frontier(HlcTime(1000), &vv(&[(3, 6)])), HlcTime(950));
    }

    #[test]
    fn a_member_removed_before_it_handed_over_holds_the_frontier_until_it_did() {
        let mut v = view();
        v.on_heartbeat(OriginId(3), HlcTime(300), vv(&[(3, 4)]), 0);
        v.on_heartbeat(OriginId(2), HlcTime(900), vv(&[(3, 4)]), 0);
        let (config, _) = v
            .config()
            .without_member_handing_over("c", HlcTime(300), HlcTime(950))
            .unwrap();
        assert!(v.set_config(config.clone()));
        v.on_heartbeat(OriginId(2), HlcTime(990), vv(&[(3, 4)]), 0);
        // Everything c was known to hold arrived, and b was heard since: only the
        // hand-over holds the frontier at c's last promise now.
        assert_eq!(v.frontier(HlcTime(1000), &vv(&[(3, 4)])), HlcTime(300));
        // Restarted: the view knows nothing of c but what the configuration says.
        let mut fresh = ClusterView::new(OriginId(1), config.clone(), 0);
        fresh.on_heartbeat(OriginId(2), HlcTime(990), vv(&[(3, 4)]), 0);
        assert_eq!(fresh.frontier(HlcTime(1000), &vv(&[(3, 4)])), HlcTime(300));
        let ended = config.with_hand_over_ended(OriginId(3)).unwrap();
        assert!(ended.handing_over.is_empty() && ended.removed.contains(&OriginId(3)));
        assert!(v.set_config(ended.clone()));
        // Ended, it holds the frontier until b was heard under the end (b may have
        // taken more of c's until then).
        assert_eq!(v.frontier(HlcTime(1000), &vv(&[(3, 4)])), HlcTime(300));
        v.on_heartbeat_under(
            OriginId(2),
            HlcTime(995),
            vv(&[(3, 4)]),
            Some(ended.position()),
            0,
        );
        assert_eq!(v.frontier(HlcTime(1000), &vv(&[(3, 4)])), HlcTime(995));
        assert!(v.config().with_hand_over_ended(OriginId(3)).is_err());
    }

    #[test]
    fn a_removed_member_holds_the_frontier_until_every_member_was_heard_under_its_removal() {
        let mut v = view();
        v.on_heartbeat(OriginId(3), HlcTime(300), vv(&[(3, 4)]), 0);
        let before = v.config().position();
        let (config, _) = v.config().without_member("c").unwrap();
        let removal = config.position();
        assert!(v.set_config(config));
        // b has not taken the removal yet: it may still pull c's newer transactions
        // and relay them, older than its own promise (seed 173474).
        v.on_heartbeat_under(OriginId(2), HlcTime(900), vv(&[(3, 4)]), Some(before), 0);
        assert_eq!(v.frontier(HlcTime(1000), &vv(&[(3, 4)])), HlcTime(300));
        // Heard under the removal, with what it took of c meanwhile: wait for that too.
        v.on_heartbeat_under(OriginId(2), HlcTime(950), vv(&[(3, 6)]), Some(removal), 0);
        assert_eq!(v.frontier(HlcTime(1000), &vv(&[(3, 4)])), HlcTime(300));
        assert_eq!(v.frontier(HlcTime(1000), &vv(&[(3, 6)])), HlcTime(950));
    }

    #[test]
    fn own_transactions_a_member_holds_and_this_instance_lacks_hold_the_frontier() {
        let mut v = view();
        v.on_heartbeat(OriginId(2), HlcTime(900), vv(&[(1, 5)]), 0);
        v.on_heartbeat(OriginId(3), HlcTime(800), vv(&[(1, 7)]), 0);
        // It lost #6 and #7 in a torn tail; c still holds them (seed 196336).
        assert_eq!(v.frontier(HlcTime(1000), &vv(&[(1, 5)])), HlcTime::ZERO);
        assert_eq!(v.frontier(HlcTime(1000), &vv(&[(1, 7)])), HlcTime(800));
    }

    #[test]
    fn a_member_away_too_long_stops_holding_the_log_and_holds_the_frontier_until_removed() {
        let mut v = view();
        let local = vv(&[(1, 9)]);
        v.on_heartbeat(OriginId(2), HlcTime(900), vv(&[(1, 9)]), 1_000);
        v.set_connected(OriginId(2), true, 1_000);
        v.on_heartbeat(OriginId(3), HlcTime(300), vv(&[(1, 2)]), 1_000);
        assert!(v.expire_silent(5_000, 10_000).is_empty());
        assert_eq!(v.stable_version_vector(&local), vv(&[(1, 2)]));
        assert_eq!(v.frontier(HlcTime(1000), &local), HlcTime(300));
        assert_eq!(v.expire_silent(20_000, 10_000), vec![OriginId(3)]);
        assert!(
            v.expire_silent(30_000, 10_000).is_empty(),
            "expiry happens once"
        );
        assert_eq!(v.stable_version_vector(&local), vv(&[(1, 9)]));
        // The frontier stays at its last promise until it is removed: a member that did
        // not expire it may still relay its old transactions.
        assert_eq!(v.frontier(HlcTime(1000), &local), HlcTime(300));
        assert!(v.is_expired(OriginId(3)));
        assert_eq!(v.expired_members(), vec![OriginId(3)]);
        let (config, _) = v.config().without_member("c").unwrap();
        assert!(v.set_config(config));
        // ... and, removed, until b was heard since (it holds none of c's).
        assert_eq!(v.frontier(HlcTime(1000), &local), HlcTime(300));
        v.on_heartbeat(OriginId(2), HlcTime(900), vv(&[(1, 9)]), 2_000);
        assert_eq!(v.frontier(HlcTime(1000), &local), HlcTime(900));
    }

    #[test]
    fn an_instance_that_expired_every_other_keeps_in_its_log_what_only_it_holds() {
        let mut v = view();
        // It wrote 1..=9; the others were last heard holding 1..=4 and 1..=6 of it.
        let local = vv(&[(1, 9), (2, 5)]);
        v.on_heartbeat(OriginId(2), HlcTime(900), vv(&[(1, 4), (2, 5)]), 1_000);
        v.on_heartbeat(OriginId(3), HlcTime(900), vv(&[(1, 6), (2, 5)]), 1_000);
        assert_eq!(
            v.expire_silent(20_000, 10_000),
            vec![OriginId(2), OriginId(3)]
        );
        // Its own transactions 7..=9 stay (to be handed over); others' are stable.
        assert_eq!(v.stable_version_vector(&local), vv(&[(1, 6), (2, 5)]));
        // Heard again, an expired member's unreplicated transactions are known.
        v.set_connected(OriginId(3), true, 21_000);
        v.on_heartbeat(OriginId(3), HlcTime(950), vv(&[(1, 9), (2, 5)]), 21_000);
        let whole = vv(&[(1, 9), (2, 5)]);
        assert_eq!(
            v.unreplicated(OriginId(3), &whole, 21_500, 5_000),
            Unreplicated::Nothing
        );
    }

    #[test]
    fn only_a_copy_refuses_writes_when_the_controlling_instance_expired() {
        let controlling = view();
        assert!(!controlling.controlling_expired(&[OriginId(2), OriginId(3)]));
        let copy = ClusterView::new(OriginId(2), controlling.config().clone(), 0);
        assert!(copy.controlling_expired(&[OriginId(1)]));
        assert!(!copy.controlling_expired(&[OriginId(3)]));
        assert!(!copy.controlling_expired(&[]));
    }

    #[test]
    fn own_holders_count_this_instance_and_members_that_reported_the_transaction() {
        let mut v = view();
        assert_eq!(v.own_holders(5), 1);
        v.on_heartbeat(OriginId(2), HlcTime(1), vv(&[(1, 5)]), 0);
        v.on_heartbeat(OriginId(3), HlcTime(1), vv(&[(1, 4)]), 0);
        assert_eq!(v.own_holders(5), 2);
        assert_eq!(v.own_holders(4), 3);
        // A newer configuration with a fourth member: it counts only once it reports.
        let config = v.config().with_member(member("d", 4, 300)).unwrap();
        assert!(v.set_config(config));
        assert_eq!(v.own_holders(4), 3);
        v.on_heartbeat(OriginId(4), HlcTime(1), vv(&[(1, 4)]), 0);
        assert_eq!(v.own_holders(4), 4);
        // Durability against the configuration held now: all four for `max`.
        assert_eq!(v.holders_missing(4, |members| members), 0);
        assert_eq!(v.holders_missing(5, |members| members), 2);
        assert_eq!(v.holders_missing(5, |_| 1), 0);
    }

    #[test]
    fn catch_up_lag_counts_what_members_are_known_to_hold_and_this_instance_lacks() {
        let mut v = view();
        let local = vv(&[(1, 5), (2, 1)]);
        assert_eq!(v.catch_up_lag(&local), 0);
        v.on_heartbeat(OriginId(2), HlcTime(1), vv(&[(2, 4)]), 0);
        v.on_heartbeat(OriginId(3), HlcTime(1), vv(&[(3, 2), (1, 1)]), 0);
        assert_eq!(v.catch_up_lag(&local), 3 + 2);
    }

    #[test]
    fn removing_a_member_discards_what_only_it_holds_or_what_cannot_be_known() {
        let mut v = view();
        let local = vv(&[(1, 5), (2, 3)]);
        // Never heard from: unknown.
        assert!(matches!(
            v.unreplicated(OriginId(3), &local, 1_000, 1_000),
            Unreplicated::Unknown(_)
        ));
        // Connected and fresh, holding nothing the others lack.
        v.on_heartbeat(OriginId(3), HlcTime(1), vv(&[(1, 5), (3, 2)]), 1_000);
        v.set_connected(OriginId(3), true, 1_000);
        v.on_heartbeat(OriginId(2), HlcTime(1), vv(&[(3, 2)]), 1_000);
        assert_eq!(
            v.unreplicated(OriginId(3), &local, 1_500, 1_000),
            Unreplicated::Nothing
        );
        // It wrote two more that no remaining member has yet.
        v.on_heartbeat(OriginId(3), HlcTime(2), vv(&[(1, 5), (3, 4)]), 1_600);
        assert_eq!(
            v.unreplicated(OriginId(3), &local, 1_700, 1_000),
            Unreplicated::Transactions(2)
        );
        // Silent for longer than the freshness bound, or disconnected: unknown.
        assert!(matches!(
            v.unreplicated(OriginId(3), &local, 5_000, 1_000),
            Unreplicated::Unknown(reason) if reason.contains("3.4 s")
        ));
        v.on_contact(OriginId(3), 5_000);
        v.set_connected(OriginId(3), false, 5_000);
        assert!(matches!(
            v.unreplicated(OriginId(3), &local, 5_000, 1_000),
            Unreplicated::Unknown(_)
        ));
    }

    #[test]
    fn a_declared_version_vector_counts_writes_its_last_report_missed() {
        let mut v = view();
        let local = vv(&[(1, 5)]);
        v.on_heartbeat(OriginId(3), HlcTime(1), vv(&[(1, 5), (3, 2)]), 1_000);
        v.set_connected(OriginId(3), true, 1_000);
        v.on_heartbeat(OriginId(2), HlcTime(1), vv(&[(3, 2)]), 1_000);
        // By its last report it holds nothing the others lack...
        assert_eq!(
            v.unreplicated(OriginId(3), &local, 1_100, 1_000),
            Unreplicated::Nothing
        );
        // ...but it acknowledged a third write after that report.
        let declared = vv(&[(1, 5), (3, 3)]);
        assert_eq!(
            v.unreplicated_declared(OriginId(3), &declared, &local),
            Unreplicated::Transactions(1)
        );
        v.on_heartbeat(OriginId(2), HlcTime(2), vv(&[(3, 3)]), 1_200);
        assert_eq!(
            v.unreplicated_declared(OriginId(3), &declared, &local),
            Unreplicated::Nothing
        );
        assert_eq!(v.held_without(OriginId(3), &local), vv(&[(1, 5), (3, 3)]));
    }

    #[test]
    fn durability_and_stability_count_what_members_reported() {
        let mut v = view();
        let local = vv(&[(1, 5)]);
        v.on_heartbeat(OriginId(2), HlcTime(1), vv(&[(1, 5)]), 0);
        v.on_heartbeat(OriginId(3), HlcTime(1), vv(&[(1, 3)]), 0);
        assert_eq!(v.holders(OriginId(1), 5, &local), 2);
        assert_eq!(v.holders(OriginId(1), 3, &local), 3);
        assert_eq!(v.stable_version_vector(&local), vv(&[(1, 3)]));
        assert_eq!(v.lag_transactions(OriginId(3), &local), 2);
        assert_eq!(v.lag_transactions(OriginId(1), &local), 0);
    }
}
