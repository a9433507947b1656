//! The simulated cluster: instances (the pull state machine, a [`ClusterView`] and a
//! model repository each), a network of pull streams, clients (inserts and deletes of
//! one quad, range deletes, replaces), faults, and a clock that moves in fixed steps. Everything is decided by one seeded [`Rng`]; nothing reads a
//! real clock or iterates a randomly ordered map, so a seed replays exactly.
//!
//! The network carries pull streams as the real one does: a request with the caller's
//! version vector, an answer (accepted, or a refusal with its code), then rounds of
//! frames, each closed by a heartbeat. Within one connection delivery is in order (it
//! is TCP); across connections delays differ, so the same transactions arrive from
//! several peers in any order, and again after every reconnect. Faults: delay spikes,
//! frames delivered twice, connections reset or silently dead (half-open), partitions,
//! crashes that lose a torn tail of the log, physical clocks skewed and stepped, full
//! disks. Writes pass the clock fence of issue 25 (`clock_fenced`): the engine's
//! [`ClockFence`], as the server's.

use crate::check::{tx_id, History, Instance, TxId};
use crate::model::{
    Applied, ApplyError, CommitError, Disk, Effect, Pattern, Quad, Repo, SimClock, CLASSES,
    MARK_AHEAD_MS, MAX_OFFSET_MS,
};
use crate::rng::Rng;
use quadmesh_repl::{
    admit_puller, Acceptor, ClockFence, ClockSample, ClusterConfig, ClusterView, ConfigPosition,
    Entry, HandOverEnd, Heartbeat, HlcTime, Member, MemberWord, OriginId, OwnClock, OwnStanding,
    PeerRefusal, Proposer, PullCommand, PullEvent, PullFailure, Puller, RangePattern, RemovalWords,
    RemovedAnswer, ServeCommand, ServeEvent, Stamp, StreamServer, VersionVector,
};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

mod membership;
pub use membership::{Ctl, MembershipStats, Scripted};

/// The simulation's time step (ms).
pub const STEP_MS: u64 = 10;
/// How often a node refreshes its view (expiry), as `node.rs`.
const MAINTAIN_MS: u64 = 200;
/// Quads the clients write: few, so that writes conflict.
pub const QUADS: u8 = 6;
/// The simulated epoch (ms since 1970), so physical times look real.
pub const EPOCH_MS: u64 = 1_700_000_000_000;

/// One client operation, as the client saw it.
#[derive(Clone, Debug)]
pub struct Op {
    /// What it asked for: range deletes, then explicit writes.
    pub effect: Effect,
    pub node: usize,
    /// Set once stamped (a refused write has none).
    pub entry: Option<(OriginId, u64, Stamp)>,
    pub invoked: u64,
    /// When the client got its answer, if it did.
    pub completed: Option<u64>,
    pub acknowledged: bool,
    /// Members that held it when it was acknowledged, by the view (durability).
    pub holders_claimed: Option<usize>,
    pub needed: usize,
    /// Ground truth when it was invoked: so many members' clocks were off that the rest
    /// were no majority (see [`World::clock_majority_off`]).
    pub clock_majority_off: bool,
}

#[derive(Default, Debug, Clone)]
pub struct Stats {
    pub writes_acknowledged: u64,
    pub writes_refused_awaiting: u64,
    pub writes_refused_disk_full: u64,
    pub writes_refused_expired: u64,
    /// Refused by the clock fence (issue 25).
    pub writes_refused_clock_fence: u64,
    /// Runs that ended with an instance waiting for a majority that cannot answer.
    pub blocked_needs_operator: u64,
    /// Acknowledged writes gone because their origin's crash cut them before any other
    /// instance applied them (durability 1 on a log that lost its tail).
    pub lost_cut_before_replicated: u64,
    /// Acknowledged writes gone with their expired origin, no other instance having
    /// applied them.
    pub lost_with_expired_origin: u64,
    /// Acknowledged writes gone because every instance that applied them lost them in
    /// a torn tail.
    pub lost_every_copy_cut: u64,
    /// Acknowledged writes whose only copies are on members the cluster expired.
    pub lost_only_on_expired_members: u64,
    /// Real-time inversions while most clocks were off (beyond the clock fence).
    pub real_time_clock_majority_off: u64,
    /// Writes invoked while most clocks were off.
    pub writes_clock_majority_off: u64,
    /// Register entries and tombstones forgotten behind the frontier.
    pub register_pruned: u64,
    pub tombstones_pruned: u64,
    /// Acknowledged range deletes, quads they removed, and explicit writes refused as
    /// older than a range delete covering them (arriving after it).
    pub range_deletes_acknowledged: u64,
    pub swept_by_range_deletes: u64,
    pub refused_by_tombstone: u64,
    pub crashes: u64,
    /// Torn tails that cut transactions some other instance held.
    pub tails_cut_replicated: u64,
    pub lost_tail_fetched_back: u64,
    pub stalls: u64,
    /// A peer's claim that a node was removed that the members did not confirm.
    pub removals_doubted: u64,
    pub clock_holds: u64,
    pub disk_full_holds: u64,
    pub gaps: u64,
    pub expiries: u64,
    pub needs_regrow: u64,
    /// Writes refused because a removed member still handing over refused the node's
    /// pull as expired (its stale view, not the node's standing).
    pub refused_writes_for_removed_peer: u64,
    pub clock_steps_back: u64,
    /// Acknowledged writes gone with their origin removed by force, no other instance
    /// having applied them (`check::Excused::removed_by_force`).
    pub lost_removed_by_force: u64,
    /// Acknowledged writes gone with their origin removed by force whose hand-over
    /// gave up after the log's retention (`check::Excused::hand_over_gave_up`).
    pub lost_hand_over_gave_up: u64,
    /// Local writes refused while the instance was held for its removal (`leaving`).
    pub writes_refused_leaving: u64,
    /// Writes acknowledged by an instance after a configuration removing it was
    /// written (it did not know yet: what a hand-over is for).
    pub writes_acknowledged_removed: u64,
    pub membership: MembershipStats,
}

#[derive(Clone, Debug)]
enum Msg {
    Request(VersionVector),
    Accepted,
    Refused(PeerRefusal),
    /// A round of a pull stream, and the sender's physical time and clock reading when
    /// it sent it: what the clock fence of issue 25 needs (a heartbeat's own clock is a
    /// promise, held back at the high-water mark while the sender's disk is full).
    /// The configuration the sender held when it took the heartbeat rides along, as
    /// the configuration transactions before it in the stream would tell.
    Frames(Vec<Entry>, (u64, u64), ConfigPosition),
    Reset,
}

struct Conn {
    client: usize,
    server: usize,
    live: bool,
    silent: bool,
    /// The serving side of the stream (the engine `stream.rs` runs), once accepted,
    /// with the commands it gave that are still to be carried out.
    stream: Option<StreamServer>,
    commands: Vec<ServeCommand>,
    log_pos: usize,
    seen_appended: u64,
    last_delivery: u64,
    /// The configuration its latest round was sent under.
    round_config: Option<ConfigPosition>,
}

struct InFlight {
    conn: usize,
    to_server: bool,
    msg: Msg,
}

pub struct Node {
    pub origin: OriginId,
    pub repo: Option<Repo>,
    disk: Option<Disk>,
    pub view: ClusterView,
    pullers: Vec<(Puller, Option<usize>)>,
    pub disk_full: bool,
    offset: Arc<AtomicI64>,
    next_maintain: u64,
    /// The clock fence (issue 25, the engine's rule) with a sample per peer from its
    /// latest round. Forgotten at a restart.
    clock_fence: ClockFence,
    /// Durability waits: op index, seq, needed, deadline.
    waits: Vec<(usize, u64, usize, u64)>,
    /// Its side of membership: the configuration it holds and its promise, both kept
    /// across crashes (the real instance saves them in `cluster.json` before acting).
    pub acceptor: Acceptor,
    /// A membership change or promotion it is making; gone with a crash, as the
    /// server's request handler is.
    pub proposer: Option<Proposer>,
    /// The change that proposer makes (`None`: a promotion).
    pub request: Option<quadmesh_repl::Change>,
    /// A removal without force it is making (the engine's `RemovalSequence`: holding
    /// the member's writes, waiting for what it declared, changing); gone with a
    /// crash, as the server's request handler is.
    pub removal: Option<quadmesh_repl::RemovalSequence>,
    /// A grow it is making (the engine's `GrowSequence`: adding, handing the snapshot
    /// over, undoing); gone with a crash, as the server's request handler is.
    pub grow: Option<quadmesh_repl::GrowSequence>,
    /// A stop it is making (the engine's `StopSequence`); gone with a crash.
    pub stop: Option<quadmesh_repl::StopSequence>,
    /// What each member removed by force with a hand-over last answered about itself
    /// since this node last looked (`repl/membership`); taken at each look.
    hand_over_answers: BTreeMap<OriginId, RemovedAnswer>,
    /// The hand-over its proposer is ending, and how (with `request`).
    ending_hand_over: Option<(OriginId, HandOverEnd)>,
    /// When a stopped node next asks the other members for their configuration.
    next_config_ask: u64,
    /// The position at which a member said it runs again, before that configuration
    /// could be taken (as the server's node keeps it, in memory: gone with a crash).
    pub started_at: Option<(u64, u64)>,
}

/// The fence every simulated node keeps: the samples count for as long as a stream
/// counts as live (`QUADMESH_SIM_SAMPLE_LIFETIME_MS` overrides, to try other lives). An
/// older sample may predate a step of the peer's clock (seed 509327: a sample taken
/// while the peer's clock was stepped back let an instance stepped back as far agree
/// with it after the peer's clock was put right).
fn new_clock_fence() -> ClockFence {
    let lifetime = std::env::var("QUADMESH_SIM_SAMPLE_LIFETIME_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(quadmesh_repl::pull::STALL_AFTER_MS);
    ClockFence::new(MAX_OFFSET_MS, lifetime)
}

/// A scripted fault (scenarios), or the random ones.
#[derive(Clone, Debug)]
pub enum Fault {
    Crash {
        node: usize,
        cut: usize,
        down_ms: u64,
        clock_step_ms: i64,
    },
    Partition {
        a: usize,
        b: usize,
        ms: u64,
        silent: bool,
    },
    Isolate {
        node: usize,
        ms: u64,
        silent: bool,
    },
    DiskFull {
        node: usize,
        ms: u64,
    },
    SilentStreams {
        node: usize,
    },
}

pub struct Config {
    pub nodes: usize,
    /// Log retention: a member silent this long is expired.
    pub retention_ms: u64,
    pub chaos_ms: u64,
    pub write_chance: f64,
    pub random_faults: bool,
    pub script: Vec<(u64, Fault)>,
    pub scripted_writes: Vec<(u64, usize, Effect)>,
    /// Membership changes and promotions started at random while faults last.
    pub membership_changes: bool,
    /// Servers a grow may add (empty until then).
    pub spares: usize,
    pub scripted_changes: Vec<(u64, Scripted)>,
    /// A run converges only once no configuration lists a hand-over any more (the
    /// change ending it made), not merely once nothing more can come of it.
    pub wait_for_hand_over_ends: bool,
}

pub struct World {
    pub rng: Rng,
    pub now: u64,
    clock_now: Arc<AtomicU64>,
    pub nodes: Vec<Node>,
    conns: Vec<Conn>,
    queue: BinaryHeap<Reverse<(u64, u64, usize)>>,
    flights: Vec<Option<InFlight>>,
    order: u64,
    /// Links cut until the given time (unordered pairs).
    cuts: BTreeMap<(usize, usize), u64>,
    restarts: Vec<(u64, usize, i64)>,
    disk_full_until: Vec<u64>,
    pub ops: Vec<Op>,
    pub stats: Stats,
    /// Every (origin, seq) ever stamped, with its stamp.
    pub issued: BTreeMap<(OriginId, u64), Stamp>,
    /// Ground truth, kept by the world whatever the code under test believes: which
    /// nodes ever applied each transaction (its origin when it committed it, the others
    /// when they took it from a peer) ...
    pub applied_by: BTreeMap<TxId, BTreeSet<usize>>,
    /// ... and which nodes' crashes cut it off their log in a torn tail.
    pub cut_by: BTreeMap<TxId, BTreeSet<usize>>,
    /// When each node last heard each other node (by index): a stream it accepted or a
    /// round of it delivered to one of our pullers, or our own (re)start. Ground truth
    /// for expiry.
    heard_at: Vec<Vec<u64>>,
    /// Each node's highest sequence number ever held of each origin (durability).
    pub ever_held: Vec<VersionVector>,
    pub violations: Vec<String>,
    pub trace: bool,
    /// Membership messages (questions, answers, configurations), each delivered at its
    /// time unless a partition or a crash is in the way.
    ctl_queue: BinaryHeap<Reverse<(u64, u64, usize)>>,
    ctl_flights: Vec<Option<Ctl>>,
    /// Ground truth of membership, for the checker.
    pub membership: crate::check::Membership,
}

fn key(a: usize, b: usize) -> (usize, usize) {
    (a.min(b), a.max(b))
}

impl World {
    /// A cluster of `nodes` members, n0 controlling, and `spares` servers (after them)
    /// that a grow may add: down, with an empty disk, until a grow hands them over.
    pub fn new(seed: u64, nodes: usize, spares: usize) -> World {
        let mut rng = Rng::new(seed);
        let clock_now = Arc::new(AtomicU64::new(EPOCH_MS));
        let members = nodes;
        let nodes = members + spares;
        let origins: Vec<OriginId> = (0..nodes).map(|i| OriginId(100 + i as u64)).collect();
        let member = |i: usize| Member {
            name: format!("n{i}"),
            origin: origins[i],
            address: format!("n{i}:10035"),
            repository: "r".into(),
            controlling: i == 0,
            added_at: HlcTime::ZERO,
        };
        let mut config = ClusterConfig::new("sim".into(), "r".into(), "t".into(), member(0));
        for i in 1..members {
            config = config.with_member(member(i)).expect("distinct members");
        }
        let mut world = World {
            now: 0,
            clock_now: clock_now.clone(),
            nodes: Vec::new(),
            conns: Vec::new(),
            queue: BinaryHeap::new(),
            flights: Vec::new(),
            order: 0,
            cuts: BTreeMap::new(),
            restarts: Vec::new(),
            disk_full_until: vec![0; nodes],
            ops: Vec::new(),
            stats: Stats::default(),
            issued: BTreeMap::new(),
            applied_by: BTreeMap::new(),
            cut_by: BTreeMap::new(),
            heard_at: vec![vec![0; nodes]; nodes],
            ever_held: vec![VersionVector::new(); nodes],
            violations: Vec::new(),
            trace: false,
            rng: Rng::new(0),
            ctl_queue: BinaryHeap::new(),
            ctl_flights: Vec::new(),
            membership: crate::check::Membership::new(config.clone()),
        };
        for (i, &origin) in origins.iter().enumerate() {
            let offset = rng.range(0, 2 * MAX_SKEW_MS) as i64 - MAX_SKEW_MS as i64;
            let offset = Arc::new(AtomicI64::new(offset));
            let clock = SimClock {
                now: clock_now.clone(),
                offset: offset.clone(),
            };
            let spare = i >= members;
            let repo = (!spare)
                .then(|| Repo::open(origin, Disk::default(), clock.clone(), &config.origins()));
            world.nodes.push(Node {
                origin,
                view: ClusterView::new(origin, config.clone(), EPOCH_MS),
                pullers: Vec::new(),
                disk: spare.then(Disk::default),
                repo,
                disk_full: false,
                offset,
                next_maintain: 0,
                clock_fence: new_clock_fence(),
                waits: Vec::new(),
                acceptor: Acceptor::new(origin, config.clone(), None),
                proposer: None,
                request: None,
                removal: None,
                grow: None,
                stop: None,
                hand_over_answers: BTreeMap::new(),
                ending_hand_over: None,
                next_config_ask: 0,
                started_at: None,
            });
        }
        for i in 0..members {
            world.start_pullers(i);
        }
        world.membership.first_spare = members;
        world.rng = rng;
        world
    }

    /// The time a node's view counts silence and contact in: as the server's
    /// `now_ms()`, the machine's time, not the (offset) clock its stamps come from.
    fn phys(&self, _node: usize) -> u64 {
        self.clock_now.load(Ordering::Relaxed)
    }

    fn log(&self, what: impl FnOnce() -> String) {
        if self.trace {
            eprintln!("[{:>6}] {}", self.now, what());
        }
    }

    /// The configuration node `i` holds.
    pub fn config_of(&self, i: usize) -> &ClusterConfig {
        self.nodes[i].acceptor.config()
    }

    fn start_pullers(&mut self, i: usize) {
        // A (re)started node: no stream of the pullers before survives.
        self.nodes[i].pullers.clear();
        self.reconcile_pullers(i);
    }

    /// Whether node `i` is stopped as far as it knows (the server's rule).
    pub fn stopped_here(&self, i: usize) -> bool {
        quadmesh_repl::stopped_here(
            self.config_of(i),
            self.nodes[i].origin,
            self.nodes[i].started_at,
        )
    }

    /// As the node's reconcile (`quadmesh_repl::pulled_peers`, the server's rule): a
    /// puller per other member and per removed member still to hand over what only it
    /// held, none for stopped members, none at all while this node is stopped or knows
    /// it was removed; pullers of peers no longer pulled go, their streams closed.
    pub(super) fn reconcile_pullers(&mut self, i: usize) {
        let now = self.now;
        let standing = quadmesh_repl::PullStanding {
            stopped_here: self.stopped_here(i),
            awaiting_peers: self.nodes[i].repo.as_ref().is_some_and(|r| r.is_awaiting()),
            removed: self.nodes[i].acceptor.is_removed(),
        };
        let pulled = quadmesh_repl::pulled_peers(self.config_of(i), self.nodes[i].origin, standing);
        let (left, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.nodes[i].pullers)
            .into_iter()
            .partition(|(p, _)| !pulled.contains(&p.peer()));
        self.nodes[i].pullers = kept;
        for (_, conn) in left {
            if let Some(conn) = conn {
                self.conns[conn].live = false;
            }
        }
        for origin in pulled {
            if !self.nodes[i]
                .pullers
                .iter()
                .any(|(p, _)| p.peer() == origin)
            {
                self.nodes[i].pullers.push((Puller::new(origin, now), None));
            }
        }
    }

    fn index_of(&self, origin: OriginId) -> usize {
        (origin.0 - 100) as usize
    }

    fn up(&self, i: usize) -> bool {
        self.nodes[i].repo.is_some()
    }

    fn cut(&self, a: usize, b: usize) -> bool {
        self.cuts
            .get(&key(a, b))
            .is_some_and(|&until| until > self.now)
    }

    // ---- the network ----

    fn send(&mut self, conn: usize, to_server: bool, msg: Msg) {
        let c = &self.conns[conn];
        if !c.live || c.silent {
            return;
        }
        let delay = if self.rng.chance(0.02) {
            self.rng.range(100, 600)
        } else {
            self.rng.range(1, 30)
        };
        let at = (self.now + delay).max(c.last_delivery);
        self.conns[conn].last_delivery = at;
        let duplicate = matches!(msg, Msg::Frames(..)) && self.rng.chance(0.01);
        for _ in 0..=usize::from(duplicate) {
            self.order += 1;
            self.flights.push(Some(InFlight {
                conn,
                to_server,
                msg: msg.clone(),
            }));
            self.queue
                .push(Reverse((at, self.order, self.flights.len() - 1)));
        }
    }

    /// Kills a connection: the client side hears of it (a reset) or not (half-open).
    fn kill_conn(&mut self, conn: usize, silent: bool) {
        if !self.conns[conn].live {
            return;
        }
        if silent {
            self.conns[conn].silent = true;
        } else {
            let client = self.conns[conn].client;
            self.conns[conn].live = false;
            // The reset reaches the client at once.
            self.deliver_to_client(conn, client, Msg::Reset);
        }
    }

    fn deliver(&mut self) {
        while let Some(&Reverse((at, _, index))) = self.queue.peek() {
            if at > self.now {
                break;
            }
            self.queue.pop();
            let Some(flight) = self.flights[index].take() else {
                continue;
            };
            let c = &self.conns[flight.conn];
            if !c.live || c.silent {
                continue;
            }
            let (client, server) = (c.client, c.server);
            if flight.to_server {
                self.deliver_to_server(flight.conn, server, flight.msg);
            } else {
                self.deliver_to_client(flight.conn, client, flight.msg);
            }
        }
        if self.queue.is_empty() {
            self.flights.clear();
        }
    }

    fn deliver_to_server(&mut self, conn: usize, server: usize, msg: Msg) {
        let Msg::Request(theirs) = msg else {
            return;
        };
        if !self.up(server) {
            return;
        }
        let caller = self.nodes[self.conns[conn].client].origin;
        let node = &self.nodes[server];
        let disk = node.repo.as_ref().map(|r| &r.disk);
        let own = if disk.is_some_and(|d| d.removed) {
            OwnStanding::Removed
        } else if disk.is_some_and(|d| d.expired.is_some()) {
            OwnStanding::Expired
        } else {
            OwnStanding::Member
        };
        match admit_puller(
            node.acceptor.config(),
            caller,
            node.view.is_expired(caller),
            own,
        ) {
            Err(refusal) => {
                self.conns[conn].stream = None;
                self.send(conn, false, Msg::Refused(refusal));
            }
            Ok(()) => {
                let repo = node.repo.as_ref().expect("up");
                let (stream, commands) = StreamServer::open(
                    repo.origin,
                    caller,
                    theirs,
                    &repo.vv,
                    own == OwnStanding::Removed,
                    self.now,
                );
                let appended = repo.appended;
                let c = &mut self.conns[conn];
                c.stream = Some(stream);
                c.commands = commands;
                c.log_pos = 0;
                c.seen_appended = appended;
                self.send(conn, false, Msg::Accepted);
            }
        }
    }

    fn deliver_to_client(&mut self, conn: usize, client: usize, msg: Msg) {
        if !self.up(client) {
            return;
        }
        let server = self.conns[conn].server;
        let server_origin = self.nodes[server].origin;
        let Some(p) = self.nodes[client]
            .pullers
            .iter()
            .position(|(puller, c)| puller.peer() == server_origin && *c == Some(conn))
        else {
            return;
        };
        if matches!(msg, Msg::Accepted | Msg::Frames(..)) {
            // A refusal is heard too, but it is no replication: a peer that refuses us
            // (as expired itself) may well be expired.
            self.heard_at[client][server] = self.now;
        }
        let event = match msg {
            Msg::Accepted => PullEvent::Opened,
            Msg::Refused(refusal) => {
                PullEvent::Failed(PullFailure::refused(410, Some(refusal), ""))
            }
            Msg::Frames(entries, (physical_ms, reading_ms), held) => {
                self.conns[conn].round_config = Some(held);
                // A sample for the clock fence, whether or not the clock takes it.
                // Taken by the world's monotonic time, with no uncertainty: the round's
                // transit is part of the delay the world adds, not of the sample.
                let sample = ClockSample {
                    peer_physical_ms: physical_ms,
                    peer_reading_ms: reading_ms,
                    monotonic_ms: self.now,
                    uncertainty_ms: 0,
                };
                self.nodes[client].clock_fence.record(server_origin, sample);
                PullEvent::Frames(entries)
            }
            Msg::Reset => PullEvent::Failed(PullFailure::Unreachable("connection reset".into())),
            Msg::Request(_) => return,
        };
        self.feed(client, p, event);
    }

    /// Each open stream runs its engine (`StreamServer`, as the server's `stream.rs`):
    /// a round when due or when the log grew — what the peer lacks, then a heartbeat —
    /// and keep-alives. Reads and sends finish at once here; what a call sends goes in
    /// one message.
    fn serve(&mut self, server: usize) {
        for conn in 0..self.conns.len() {
            let c = &self.conns[conn];
            if c.server != server || !c.live || c.silent || c.stream.is_none() {
                continue;
            }
            let disk_full = self.nodes[server].disk_full;
            let now = self.now;
            let repo = self.nodes[server].repo.as_mut().expect("up");
            let c = &mut self.conns[conn];
            let stream = c.stream.as_mut().expect("open");
            let mut commands: std::collections::VecDeque<ServeCommand> =
                std::mem::take(&mut c.commands).into();
            if repo.appended != c.seen_appended {
                c.seen_appended = repo.appended;
                commands.extend(stream.handle(now, ServeEvent::Appended));
            }
            if stream.deadline().is_some_and(|d| d <= now) {
                commands.extend(stream.handle(now, ServeEvent::Tick));
            }
            let mut frames = Vec::new();
            let mut closed = false;
            while let Some(command) = commands.pop_front() {
                let event = match command {
                    ServeCommand::Read { heartbeat } => {
                        let heartbeat = heartbeat.then(|| {
                            let (clock, version_vector) = repo.heartbeat_point(disk_full);
                            Heartbeat {
                                origin: repo.origin,
                                clock,
                                version_vector,
                                digest: None,
                                // Sent beside it, in `Msg::Frames`.
                                config: None,
                            }
                        });
                        let entries = repo.disk.log[c.log_pos..]
                            .iter()
                            .filter(|e| stream.wants(e.origin, e.seq))
                            .cloned()
                            .collect();
                        c.log_pos = repo.disk.log.len();
                        ServeEvent::Read {
                            heartbeat,
                            entries,
                            full: false,
                        }
                    }
                    ServeCommand::Send(entries) => {
                        frames.extend(entries);
                        ServeEvent::Sent
                    }
                    ServeCommand::KeepAlive(heartbeat) => {
                        frames.push(heartbeat);
                        ServeEvent::KeptAlive
                    }
                    ServeCommand::Close(_) => {
                        closed = true;
                        break;
                    }
                };
                commands.extend(stream.handle(now, event));
            }
            if closed {
                c.stream = None;
            }
            if frames.is_empty() {
                continue;
            }
            let clock = (repo.clock_physical_ms(), repo.clock_reading_ms());
            let held = self.nodes[server].acceptor.config().position();
            self.send(conn, false, Msg::Frames(frames, clock, held));
        }
    }

    // ---- the pull state machine's runtime ----

    fn feed(&mut self, node: usize, p: usize, event: PullEvent) {
        let mut next = Some(event);
        while let Some(event) = next.take() {
            let commands = self.nodes[node].pullers[p]
                .0
                .handle(self.now, event.clone());
            let took_frames = matches!(event, PullEvent::Frames(_));
            let mut failed = false;
            for command in commands {
                if command == PullCommand::ConfirmRemoval {
                    // As the server's `removal_words`: asked of every other member at
                    // once, answered at once (a delay would only stretch the check).
                    next = Some(PullEvent::RemovalWords(self.removal_words(node)));
                    continue;
                }
                if let Err(failure) = self.execute(node, p, command) {
                    next = Some(PullEvent::Failed(failure));
                    failed = true;
                    break;
                }
            }
            if took_frames && !failed {
                next = Some(PullEvent::Taken);
            }
        }
    }

    /// What the other members of node's configuration, as far as it can reach them,
    /// say of its membership (`repl/membership`: the configuration each holds).
    fn removal_words(&self, node: usize) -> RemovalWords {
        let config = self.config_of(node);
        let origin = self.nodes[node].origin;
        let words = config
            .members
            .iter()
            .map(|m| {
                let other = self.index_of(m.origin);
                let word = if other == node {
                    // This instance says no (the server does not ask itself).
                    MemberWord::Said {
                        same_cluster: true,
                        removed: false,
                    }
                } else if self.up(other) && !self.cut(node, other) {
                    MemberWord::Said {
                        same_cluster: true,
                        removed: self.config_of(other).removed.contains(&origin),
                    }
                } else {
                    MemberWord::NoAnswer("unreachable".into())
                };
                (m.origin, word)
            })
            .collect();
        RemovalWords {
            members: config.members.len(),
            controlling: config.controlling().map(|m| m.origin),
            words,
        }
    }

    fn execute(&mut self, node: usize, p: usize, command: PullCommand) -> Result<(), PullFailure> {
        let peer = self.nodes[node].pullers[p].0.peer();
        let server = self.index_of(peer);
        let phys = self.phys(node);
        // As `Node::maintain`: a removed instance stops its pullers; it takes nothing
        // more from anyone (what it would take it could only hold against the members).
        let removed = self.nodes[node]
            .repo
            .as_ref()
            .is_some_and(|r| r.disk.removed);
        if removed && matches!(command, PullCommand::Connect | PullCommand::Apply(_)) {
            return Ok(());
        }
        match command {
            PullCommand::Connect => {
                let vv = self.nodes[node].repo.as_ref().expect("up").vv.clone();
                self.conns.push(Conn {
                    client: node,
                    server,
                    live: true,
                    silent: false,
                    stream: None,
                    commands: Vec::new(),
                    log_pos: 0,
                    seen_appended: 0,
                    last_delivery: 0,
                    round_config: None,
                });
                let conn = self.conns.len() - 1;
                self.nodes[node].pullers[p].1 = Some(conn);
                if self.cut(node, server) || !self.up(server) {
                    // Refused at once (reset), or a black hole (the answer bound).
                    let silent = self.rng.chance(0.5);
                    self.kill_conn(conn, silent);
                    if !silent {
                        // Already delivered through kill_conn.
                        return Ok(());
                    }
                }
                self.send(conn, true, Msg::Request(vv));
            }
            PullCommand::Apply(entries) => {
                let disk_full = self.nodes[node].disk_full;
                for entry in entries {
                    let n = &mut self.nodes[node];
                    let repo = n.repo.as_mut().expect("up");
                    let applied = repo.apply_remote(&entry, disk_full);
                    self.stats.swept_by_range_deletes += std::mem::take(&mut repo.swept);
                    self.stats.refused_by_tombstone +=
                        std::mem::take(&mut repo.refused_by_tombstone);
                    match applied {
                        Ok(Applied::New) => {
                            if self.trace {
                                eprintln!(
                                    "[{:>6}] n{node} applies {}#{} ({}) from {}",
                                    self.now,
                                    entry.origin.0,
                                    entry.seq,
                                    crate::check::show(entry.stamp()),
                                    peer
                                );
                            }
                            if entry.origin == n.origin {
                                self.stats.lost_tail_fetched_back += 1;
                            }
                            n.view.on_transaction(entry.origin, entry.time);
                            self.ever_held[node].advance(entry.origin, entry.seq);
                            self.applied_by
                                .entry(tx_id(&entry))
                                .or_default()
                                .insert(node);
                        }
                        Ok(Applied::Duplicate) => {}
                        Err(ApplyError::Gap) => {
                            self.stats.gaps += 1;
                            return Err(PullFailure::Ended);
                        }
                        Err(ApplyError::DiskFull) => {
                            self.stats.disk_full_holds += 1;
                            return Err(PullFailure::Held("disk full".into()));
                        }
                        Err(ApplyError::Clock(e)) => {
                            self.stats.clock_holds += 1;
                            return Err(e.into());
                        }
                    }
                }
            }
            PullCommand::TakeHeartbeat(heartbeat) => {
                let held = self.nodes[node].pullers[p]
                    .1
                    .and_then(|conn| self.conns[conn].round_config);
                let position = self.config_of(node).position();
                let n = &mut self.nodes[node];
                let repo = n.repo.as_mut().expect("up");
                if let Err(e) = repo.clock.observe(heartbeat.clock) {
                    self.stats.clock_holds += 1;
                    return Err(e.into());
                }
                let ahead = repo.on_peer_heartbeat(
                    heartbeat.origin,
                    &heartbeat.version_vector,
                    held,
                    position,
                );
                let (theirs, ours) = (
                    heartbeat.version_vector.get(n.origin),
                    repo.vv.get(n.origin),
                );
                n.view.on_heartbeat_under(
                    heartbeat.origin,
                    heartbeat.clock,
                    heartbeat.version_vector,
                    held,
                    phys,
                );
                if ahead {
                    return Err(PullFailure::HoldsOwnLost { theirs, ours });
                }
            }
            PullCommand::Contact => self.nodes[node].view.on_contact(peer, phys),
            PullCommand::Close => {
                if let Some(conn) = self.nodes[node].pullers[p].1.take() {
                    self.conns[conn].live = false;
                }
            }
            PullCommand::ShowConnected => {
                let view = &mut self.nodes[node].view;
                view.set_connected(peer, true, phys);
                view.set_problem(peer, None);
            }
            PullCommand::ShowDisconnected { failure, .. } => {
                self.log(|| format!("n{node} from {peer}: {failure}"));
                if matches!(failure, PullFailure::Silent(_)) {
                    self.stats.stalls += 1;
                }
                self.nodes[node].view.set_connected(peer, false, phys);
            }
            PullCommand::ShowProblem(problem) => {
                self.nodes[node].view.set_problem(peer, Some(problem))
            }
            PullCommand::DoubtRemoval(why) => {
                self.log(|| format!("n{node} doubts {peer}: {why}"));
                self.stats.removals_doubted += 1;
                self.nodes[node].view.set_problem(peer, Some(why))
            }
            PullCommand::ConfirmRemoval => unreachable!("carried out by feed"),
            PullCommand::MarkRemoved => {
                self.nodes[node].repo.as_mut().expect("up").disk.removed = true;
            }
            PullCommand::RefuseWrites(reason) => {
                self.stats.needs_regrow += 1;
                if !self.config_of(node).is_member(peer) {
                    self.stats.refused_writes_for_removed_peer += 1;
                }
                self.refuse_writes(node, reason);
            }
            PullCommand::Stop => {}
        }
        Ok(())
    }

    /// As `Node::refuse_writes`: the controlling instance (by the configuration it
    /// holds) never refuses for expiry (`refuses_writes_when_expired`).
    fn refuse_writes(&mut self, node: usize, reason: String) {
        let origin = self.nodes[node].origin;
        if !quadmesh_repl::refuses_writes_when_expired(self.config_of(node), origin) {
            return;
        }
        let disk = &mut self.nodes[node].repo.as_mut().expect("up").disk;
        disk.expired.get_or_insert(reason);
    }

    /// As `Node::maintain`: the engine's round (`quadmesh_repl::maintain`), then each
    /// puller told its peer's place (`pull_membership`).
    fn maintain(&mut self, node: usize, retention_ms: u64) {
        let phys = self.phys(node);
        let round = {
            let n = &mut self.nodes[node];
            let (clock_last, local) = match n.repo.as_ref() {
                Some(repo) => (repo.clock.last(), repo.vv.clone()),
                None => (HlcTime::ZERO, VersionVector::new()),
            };
            quadmesh_repl::maintain(&mut n.view, phys, retention_ms, clock_last, &local)
        };
        for origin in &round.expired {
            self.stats.expiries += 1;
            self.log(|| format!("n{node} expires {origin}"));
            // Expiry excuses losing what only the expired member holds: it must follow
            // a silence the world saw, not only one the view believes in.
            let silence = self.now - self.heard_at[node][self.index_of(*origin)];
            if silence <= retention_ms {
                self.violations.push(format!(
                    "expiry: n{node} expired {origin} after {silence} ms without hearing from it, \
                     not more than the retention of {retention_ms} ms"
                ));
            }
            if let Some(repo) = self.nodes[node].repo.as_mut() {
                repo.on_peer_expired(*origin);
            }
        }
        if let Some(reason) = round.refuse_writes {
            self.refuse_writes(node, reason);
        }
        // The register forgets what is older than the frontier, as the real one does
        // at its checkpoints: a transaction older than it arriving later would then
        // undo newer writes, which the last-writer-wins check catches.
        let frontier = round.frontier;
        if let Some(repo) = self.nodes[node].repo.as_mut() {
            let (entries, tombstones) = repo.prune(frontier);
            if self.trace && entries + tombstones > 0 {
                eprintln!(
                    "[{:>6}] n{node} prunes {entries} entries, {tombstones} tombstones before {}",
                    self.now,
                    crate::check::show(quadmesh_repl::Stamp {
                        time: frontier,
                        origin: OriginId(0)
                    })
                );
            }
            self.stats.register_pruned += entries as u64;
            self.stats.tombstones_pruned += tombstones as u64;
        }
        for p in 0..self.nodes[node].pullers.len() {
            let peer = self.nodes[node].pullers[p].0.peer();
            let membership = quadmesh_repl::pull_membership(&self.nodes[node].view, peer);
            self.feed(node, p, membership);
        }
    }

    // ---- clients ----

    fn write(&mut self, node: usize, effect: Effect) {
        let needed = if self.rng.chance(0.2) {
            self.config_of(node).members.len()
        } else {
            1
        };
        let mut op = Op {
            effect: effect.clone(),
            node,
            entry: None,
            invoked: self.now,
            completed: None,
            acknowledged: false,
            holders_claimed: None,
            needed,
            clock_majority_off: self.clock_majority_off(),
        };
        self.stats.writes_clock_majority_off += u64::from(op.clock_majority_off);
        if !self.up(node) {
            self.ops.push(op);
            return;
        }
        let now = self.now;
        let repo = self.nodes[node].repo.as_ref().expect("up");
        if repo.disk.held_until.is_some_and(|until| until > now) && !repo.disk.removed {
            // Held for its removal: 503 `leaving`, nothing stamped.
            self.stats.writes_refused_leaving += 1;
            op.completed = Some(now);
            self.ops.push(op);
            return;
        }
        let disk_full = self.nodes[node].disk_full;
        let fenced = self.clock_fenced(node);
        let repo = self.nodes[node].repo.as_mut().expect("up");
        let result = repo.commit(&effect, disk_full, fenced);
        self.stats.swept_by_range_deletes += std::mem::take(&mut repo.swept);
        match result {
            Err(e) => {
                match e {
                    CommitError::AwaitingPeers => self.stats.writes_refused_awaiting += 1,
                    CommitError::DiskFull => self.stats.writes_refused_disk_full += 1,
                    CommitError::ClockFenced => self.stats.writes_refused_clock_fence += 1,
                    CommitError::Expired | CommitError::Removed => {
                        self.stats.writes_refused_expired += 1
                    }
                    CommitError::Clock(_) => {}
                }
                op.completed = Some(self.now);
            }
            Ok(entry) => {
                let k = (entry.origin, entry.seq);
                self.ever_held[node].advance(entry.origin, entry.seq);
                self.applied_by
                    .entry(tx_id(&entry))
                    .or_default()
                    .insert(node);
                if let Some(old) = self.issued.get(&k) {
                    if *old != entry.stamp() && self.exists_anywhere(k, *old) {
                        self.violations.push(format!(
                            "sequence number {} of {} reused at n{node} while the first is still held",
                            k.1, k.0
                        ));
                    }
                }
                self.issued.insert(k, entry.stamp());
                op.entry = Some((entry.origin, entry.seq, entry.stamp()));
                self.log(|| format!("n{node} commits {}#{} {effect}", k.0, k.1));
                let index = self.ops.len();
                self.ops.push(op);
                self.nodes[node]
                    .waits
                    .push((index, entry.seq, needed, self.now + 3_000));
                self.check_waits(node);
                return;
            }
        }
        self.ops.push(op);
    }

    /// The clock fence (issue 25): the engine's [`ClockFence`] over this node's samples,
    /// its physical clock and its clock's reading (which may run ahead of it, restored
    /// from the high-water mark), projected by the world's monotonic time.
    fn clock_fenced(&self, node: usize) -> bool {
        let n = &self.nodes[node];
        let repo = n.repo.as_ref().expect("up");
        let own = OwnClock {
            physical_ms: repo.clock_physical_ms(),
            reading_ms: repo.clock_reading_ms(),
            monotonic_ms: self.now,
        };
        let members: Vec<OriginId> = self.config_of(node).origins();
        n.clock_fence.verdict(n.origin, &members, own).is_fenced()
    }

    /// Ground truth: whether so many members' clocks are off — the physical clock
    /// further from real time than the normal skew, or the clock's reading further ahead
    /// than normal operation takes it (a peer's time up to the maximum offset ahead,
    /// the high-water mark's lead after a restart) — that the rest are no majority. The
    /// clock fence (issue 25) trusts a majority's clocks, so it cannot keep writes in
    /// real-time order then.
    pub fn clock_majority_off(&self) -> bool {
        let real = EPOCH_MS + self.now;
        let off = self
            .nodes
            .iter()
            .filter(|n| self.newest_config().is_member(n.origin))
            .filter(|n| {
                n.offset.load(Ordering::Relaxed).unsigned_abs() > MAX_SKEW_MS
                    || n.repo.as_ref().is_some_and(|r| {
                        r.clock_reading_ms() > real + MAX_SKEW_MS + MAX_OFFSET_MS + MARK_AHEAD_MS
                    })
            })
            .count();
        let members = self.newest_config().members.len();
        members.saturating_sub(off) < members / 2 + 1
    }

    /// Whether a transaction with this stamp is in some log or on its way somewhere.
    fn exists_anywhere(&self, k: (OriginId, u64), stamp: Stamp) -> bool {
        let held = |log: &[Entry]| {
            log.iter()
                .any(|e| (e.origin, e.seq) == k && e.stamp() == stamp)
        };
        // A node every member of the newest configuration knows was removed is pulled
        // from by nobody: what it holds never reaches a member again (a stream opened before its removal may
        // still have sent it a transaction its origin then lost).
        let newest = self.newest_config();
        let gone = |j: usize| {
            let origin = self.nodes[j].origin;
            newest.removed.contains(&origin)
                && newest.members.iter().all(|m| {
                    let i = self.index_of(m.origin);
                    i == j || self.config_of(i).removed.contains(&origin)
                })
        };
        self.nodes.iter().enumerate().any(|(j, n)| {
            !gone(j)
                && n.repo.as_ref().map_or_else(
                    || n.disk.as_ref().is_some_and(|d| held(&d.log)),
                    |r| held(&r.disk.log),
                )
        }) || self.flights.iter().flatten().any(|f| {
            // Frames on a dead connection never arrive.
            let c = &self.conns[f.conn];
            c.live
                && !c.silent
                && !gone(c.client)
                && matches!(&f.msg, Msg::Frames(entries, ..) if held(entries))
        })
    }

    fn check_waits(&mut self, node: usize) {
        let now = self.now;
        let waits = std::mem::take(&mut self.nodes[node].waits);
        let mut kept = Vec::new();
        for (index, seq, needed, deadline) in waits {
            // As `Node::wait_durable`: the engine's count, against the configuration
            // the node holds now.
            let view = &self.nodes[node].view;
            let holders = view.own_holders(seq);
            if view.holders_missing(seq, |_| needed) == 0 || now >= deadline {
                let op = &mut self.ops[index];
                op.completed = Some(now);
                op.acknowledged = true;
                op.holders_claimed = Some(holders);
                self.stats.writes_acknowledged += 1;
                self.stats.range_deletes_acknowledged += u64::from(!op.effect.sweeps.is_empty());
                // The durability promise: that many members really hold it.
                let origin = self.nodes[node].origin;
                let removed = self.newest_config().removed.contains(&origin);
                self.stats.writes_acknowledged_removed += u64::from(removed);
                let really = self
                    .ever_held
                    .iter()
                    .filter(|v| v.covers(origin, seq))
                    .count();
                if holders > really {
                    self.violations.push(format!(
                        "{origin}#{seq} acknowledged as held by {holders} members, but only {really} ever held it"
                    ));
                }
            } else {
                kept.push((index, seq, needed, deadline));
            }
        }
        self.nodes[node].waits = kept;
    }

    // ---- faults ----

    pub fn inject(&mut self, fault: Fault) {
        self.log(|| format!("fault {fault:?}"));
        match fault {
            Fault::Crash {
                node,
                cut,
                down_ms,
                clock_step_ms,
            } => self.crash(node, cut, down_ms, clock_step_ms),
            Fault::Partition { a, b, ms, silent } => self.partition(a, b, ms, silent),
            Fault::Isolate { node, ms, silent } => {
                for other in 0..self.nodes.len() {
                    if other != node {
                        self.partition(node, other, ms, silent);
                    }
                }
            }
            Fault::DiskFull { node, ms } => {
                self.nodes[node].disk_full = true;
                self.disk_full_until[node] = self.disk_full_until[node].max(self.now + ms);
            }
            Fault::SilentStreams { node } => {
                for conn in 0..self.conns.len() {
                    if self.conns[conn].server == node {
                        self.kill_conn(conn, true);
                    }
                }
            }
        }
    }

    fn partition(&mut self, a: usize, b: usize, ms: u64, silent: bool) {
        let until = self.cuts.entry(key(a, b)).or_insert(0);
        *until = (*until).max(self.now + ms);
        for conn in 0..self.conns.len() {
            let c = &self.conns[conn];
            if key(c.client, c.server) == key(a, b) {
                self.kill_conn(conn, silent);
            }
        }
    }

    fn crash(&mut self, node: usize, cut: usize, down_ms: u64, clock_step_ms: i64) {
        let Some(repo) = self.nodes[node].repo.take() else {
            return;
        };
        self.stats.crashes += 1;
        // Its peers see their streams reset (its kernel) or go silent (a lost machine).
        let silent = self.rng.chance(0.5);
        for conn in 0..self.conns.len() {
            let c = &self.conns[conn];
            if c.server == node {
                // Its stream tasks die with it.
                self.conns[conn].stream = None;
                self.kill_conn(conn, silent);
            } else if c.client == node {
                self.conns[conn].live = false;
            }
        }
        // Clients waiting for durability get no answer, nor an operator waiting for a
        // membership change.
        self.nodes[node].waits.clear();
        self.lose_proposer(node);
        let (disk, lost) = repo.crash(cut);
        for entry in &lost {
            let id = tx_id(entry);
            self.cut_by.entry(id).or_default().insert(node);
            let elsewhere = self.applied_by[&id].iter().any(|&i| i != node);
            if elsewhere {
                self.stats.tails_cut_replicated += 1;
            }
        }
        self.nodes[node].disk = Some(disk);
        self.nodes[node].pullers.clear();
        self.restarts
            .push((self.now + down_ms, node, clock_step_ms));
    }

    fn restart(&mut self, node: usize, clock_step_ms: i64) {
        let offset = self.nodes[node].offset.load(Ordering::Relaxed) + clock_step_ms;
        if clock_step_ms < 0 {
            self.stats.clock_steps_back += 1;
        }
        self.nodes[node].offset.store(offset, Ordering::Relaxed);
        let disk = self.nodes[node].disk.take().expect("down");
        let origins: Vec<OriginId> = self.config_of(node).origins();
        let clock = SimClock {
            now: self.clock_now.clone(),
            offset: self.nodes[node].offset.clone(),
        };
        let repo = Repo::open(self.nodes[node].origin, disk, clock, &origins);
        self.log(|| format!("n{node} restarts (awaiting peers: {})", repo.is_awaiting()));
        self.nodes[node].repo = Some(repo);
        let phys = self.phys(node);
        self.nodes[node].view =
            ClusterView::new(self.nodes[node].origin, self.config_of(node).clone(), phys);
        self.nodes[node].next_maintain = self.now;
        self.nodes[node].clock_fence.clear();
        self.heard_at[node] = vec![self.now; self.nodes.len()];
        // Whether it was started again is asked anew (the server keeps it in memory).
        self.nodes[node].started_at = None;
        self.start_pullers(node);
    }

    fn random_fault(&mut self) {
        let n = self.nodes.len() as u64;
        let node = self.rng.below(n) as usize;
        let roll = self.rng.below(1000);
        let fault = match roll {
            0..=2 => {
                let cut = if self.rng.chance(0.5) {
                    self.rng.range(1, 3) as usize
                } else {
                    0
                };
                let step = if self.rng.chance(0.3) {
                    self.rng.range(0, 6_000) as i64 - 3_000
                } else {
                    0
                };
                Fault::Crash {
                    node,
                    cut,
                    down_ms: self.rng.range(100, 3_000),
                    clock_step_ms: step,
                }
            }
            3..=5 => {
                let other = (node + 1 + self.rng.below(n - 1) as usize) % n as usize;
                Fault::Partition {
                    a: node,
                    b: other,
                    ms: self.rng.range(200, 6_000),
                    silent: self.rng.chance(0.5),
                }
            }
            6 => Fault::Isolate {
                node,
                ms: self.rng.range(200, 4_000),
                silent: self.rng.chance(0.5),
            },
            7 => Fault::DiskFull {
                node,
                ms: self.rng.range(100, 3_000),
            },
            8..=9 => Fault::SilentStreams { node },
            _ => return,
        };
        self.inject(fault);
    }

    // ---- time ----

    pub fn step(&mut self, chaos: bool, config: &Config) {
        self.now += STEP_MS;
        self.clock_now.store(EPOCH_MS + self.now, Ordering::Relaxed);
        let due: Vec<_> = self
            .restarts
            .iter()
            .filter(|r| r.0 <= self.now)
            .copied()
            .collect();
        self.restarts.retain(|r| r.0 > self.now);
        for (_, node, step) in due {
            self.restart(node, step);
        }
        for node in 0..self.nodes.len() {
            if self.nodes[node].disk_full && self.disk_full_until[node] <= self.now {
                self.nodes[node].disk_full = false;
            }
        }
        self.deliver();
        self.deliver_ctl();
        for node in 0..self.nodes.len() {
            if !self.up(node) {
                continue;
            }
            self.serve(node);
            if self.now >= self.nodes[node].next_maintain {
                self.nodes[node].next_maintain = self.now + MAINTAIN_MS;
                self.maintain(node, config.retention_ms);
                // Whom it pulls from also turns on whether it waits after a lost tail.
                self.reconcile_pullers(node);
                self.gossip_config(node);
                self.look_at_hand_overs(node, config.retention_ms);
            }
            self.ask_for_configuration(node);
            self.tick_proposer(node);
            self.tick_removal(node);
            self.tick_stop(node);
            for p in 0..self.nodes[node].pullers.len() {
                let due = self.nodes[node].pullers[p]
                    .0
                    .deadline()
                    .is_some_and(|d| d <= self.now);
                if due {
                    self.feed(node, p, PullEvent::Tick);
                }
            }
            self.check_waits(node);
        }
        let now = self.now;
        for (_, fault) in config.script.iter().filter(|(at, _)| *at == now) {
            self.inject(fault.clone());
        }
        for (_, node, effect) in config.scripted_writes.iter().filter(|w| w.0 == now) {
            self.write(*node, effect.clone());
        }
        for (_, change) in config.scripted_changes.iter().filter(|(at, _)| *at == now) {
            self.start_scripted(change.clone());
        }
        if chaos {
            if config.random_faults {
                self.random_fault();
            }
            if config.membership_changes {
                self.random_membership();
            }
            if self.rng.chance(config.write_chance) {
                let node = self.rng.below(self.nodes.len() as u64) as usize;
                let effect = self.random_effect();
                self.write(node, effect);
            }
        } else if self.now.is_multiple_of(100) {
            // The operator cleans up after a grow that never handed its snapshot over,
            // and starts the members it stopped.
            self.remove_orphan();
            self.start_stopped_members();
        }
    }

    /// A client's write: mostly one quad inserted or deleted; one in eight a range
    /// delete (of every quad one time in four, else of a residue class), and one in
    /// three of those a replace: the range delete, then inserts of quads it covers.
    fn random_effect(&mut self) -> Effect {
        let quad = |rng: &mut Rng| rng.below(u64::from(QUADS)) as Quad;
        if !self.rng.chance(0.125) {
            let q = quad(&mut self.rng);
            return Effect::write(q, self.rng.chance(0.5));
        }
        let pattern = if self.rng.chance(0.25) {
            Pattern::All
        } else {
            Pattern::Class(self.rng.below(u64::from(CLASSES)) as u8)
        };
        let mut effect = Effect {
            sweeps: vec![pattern],
            writes: Vec::new(),
        };
        if self.rng.chance(1.0 / 3.0) {
            for q in 0..QUADS {
                if pattern.matches(&q) && self.rng.chance(0.5) {
                    effect.writes.push((q, true));
                }
            }
        }
        effect
    }

    /// Ends every fault: links healed, disks freed, clocks back within the skew bound
    /// (NTP), crashed nodes restarted.
    pub fn heal(&mut self) {
        self.cuts.clear();
        for node in 0..self.nodes.len() {
            self.disk_full_until[node] = 0;
            self.nodes[node].disk_full = false;
            let offset = self.rng.range(0, 2 * MAX_SKEW_MS) as i64 - MAX_SKEW_MS as i64;
            self.nodes[node].offset.store(offset, Ordering::Relaxed);
        }
        let pending: Vec<_> = std::mem::take(&mut self.restarts);
        for (_, node, _) in pending {
            self.restart(node, 0);
        }
    }

    /// Nodes that take part in convergence: members of the newest configuration any
    /// node holds, up, not removed, and expired neither by themselves nor by that
    /// configuration's controlling instance (which expired ones are grown again from).
    pub fn live_members(&self) -> Vec<usize> {
        let newest = self.newest_config();
        let controlling = newest
            .controlling()
            .map(|c| self.index_of(c.origin))
            .expect("a configuration has a controlling instance");
        (0..self.nodes.len())
            .filter(|&i| {
                let repo = self.nodes[i].repo.as_ref();
                newest.is_member(self.nodes[i].origin)
                    && !self.nodes[i].acceptor.is_removed()
                    && repo.is_some_and(|r| r.disk.expired.is_none() && !r.disk.removed)
                    && !self.nodes[controlling]
                        .view
                        .is_expired(self.nodes[i].origin)
            })
            .collect()
    }

    /// The newest configuration any node holds.
    pub fn newest_config(&self) -> &ClusterConfig {
        self.nodes
            .iter()
            .map(|n| n.acceptor.config())
            .max_by_key(|c| c.position())
            .expect("nodes")
    }

    /// The cluster needs an operator (nothing converges by itself): a live member
    /// waits for its peers' word after a lost tail that no majority can give any more;
    /// or the controlling instance of the newest configuration refuses writes as
    /// expired — it took the role (moved to it, or promoted) after it had expired the
    /// instance before it, and the others expired it or that one: nobody is left that
    /// the others could be grown again from.
    pub fn blocked(&self) -> bool {
        let controlling_expired = self
            .newest_config()
            .controlling()
            .map(|c| self.index_of(c.origin))
            .and_then(|i| self.nodes[i].repo.as_ref())
            .is_some_and(|r| r.disk.expired.is_some());
        controlling_expired
            || self.live_members().iter().any(|&i| {
                self.nodes[i]
                    .repo
                    .as_ref()
                    .is_some_and(|r| r.awaiting_blocked())
            })
    }

    /// Every live member holds the same transactions and the newest configuration,
    /// none waits for its peers, and no hand-over is still to come: each member removed
    /// by force that the newest configuration still lists knows it was removed (it
    /// acknowledges nothing more) and every live member holds all its own transactions
    /// (ground truth: whether the change ending the wait could be made yet is the
    /// configuration's business — it needs a change quorum, which an expired member's
    /// promise to a candidate may deny until an operator steps in).
    pub fn converged(&self) -> bool {
        let live = self.live_members();
        let Some(&head) = live.first() else {
            return false;
        };
        for hand_over in &self.newest_config().handing_over {
            let origin = hand_over.member.origin;
            let Some(removed) = self.nodes[self.index_of(origin)].repo.as_ref() else {
                return false;
            };
            let held = removed.vv.get(origin);
            let taken_over = live.iter().all(|&i| {
                self.nodes[i]
                    .repo
                    .as_ref()
                    .is_some_and(|r| r.vv.get(origin) >= held)
            });
            if !removed.disk.removed || !taken_over {
                return false;
            }
        }
        let first = self.nodes[head].repo.as_ref().expect("up");
        let newest = self.newest_config().position();
        live.iter().all(|&i| {
            let r = self.nodes[i].repo.as_ref().expect("up");
            r.vv == first.vv && !r.is_awaiting() && self.config_of(i).position() == newest
        })
    }

    /// What the checker judges: every node's final log and quads, the operations as the
    /// clients saw them, and the world's ground truth about each transaction.
    pub fn history(&self) -> History {
        let live = self.live_members();
        History {
            instances: self
                .nodes
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    let disk = n
                        .repo
                        .as_ref()
                        .map_or_else(|| n.disk.as_ref().expect("down"), |r| &r.disk);
                    Instance {
                        origin: n.origin,
                        log: disk.log.clone(),
                        contents: n.repo.as_ref().map(|r| r.contents()),
                        live: live.contains(&i),
                    }
                })
                .collect(),
            ops: self.ops.clone(),
            applied_by: self.applied_by.clone(),
            cut_by: self.cut_by.clone(),
            membership: self.membership.clone(),
        }
    }
}

/// Physical clocks differ by up to twice this (ms) in normal operation.
pub const MAX_SKEW_MS: u64 = 150;
