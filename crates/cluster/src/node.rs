use super::now_ms;
use super::STALL_AFTER;
use quadmesh_repl::{ClusterConfig, ClusterView, OriginId};
use quadmesh_store::Repository;
use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often a node refreshes its view: pullers, frontier, stable version vector.
const MAINTENANCE_INTERVAL: Duration = Duration::from_millis(200);
/// How often a stopped instance asks the other members for their configuration.
const STOPPED_POLL: Duration = Duration::from_secs(1);
/// A peer whose oldest missing transaction is older than this does not keep up with
/// the commits here: status says so (`behind`, `replicasBehind`) and so does the gauge
/// `replication_peer_behind`. Commits are not slowed for it (no back-pressure): a
/// client that needs its write on other members before its answer commits with
/// durability (`x-repl-settings` or `repl/settings`), which waits for them.
pub const FALLING_BEHIND: Duration = Duration::from_secs(1);

/// The replication of one repository at this instance: a puller per other member, and
/// the [`ClusterView`] they keep up to date.
///
/// Rules it keeps:
/// - the view's configuration only moves forward, and a durability wait first takes in
///   the repository's (at least the one its commit was made under);
/// - a peer shows as connected only while its stream delivers (something within
///   [`STALL_AFTER`]);
/// - once this instance knows it is expired (the controlling instance silent longer
///   than the log retention, or a peer refusing it as expired), writes are refused
///   before status shows it; the controlling instance never refuses for that;
/// - no puller runs for a stopped member (`repl/stop`), and a stopped instance runs
///   none at all until the controlling instance says it was started (it asks every
///   second: it cannot learn it by pulling) or a configuration saying so arrives.
pub struct Node {
    repository: Arc<Repository>,
    view: Mutex<ClusterView>,
    /// Bumped whenever the view learns something (durability waiters watch it).
    changed: watch::Sender<u64>,
    pullers: Mutex<HashMap<OriginId, JoinHandle<()>>>,
    /// Starts pulling from a peer (the puller, which runs on this node: handed in, so
    /// that the node does not depend on its own runtime).
    spawn_puller: SpawnPuller,
    maintainer: Mutex<Option<JoinHandle<()>>>,
    /// Probes the other members' clocks for the clock fence (see `clock_probe`).
    prober: Mutex<Option<JoinHandle<()>>>,
    /// While this instance is stopped (`repl/stop`): asks the other members for their
    /// configuration every [`STOPPED_POLL`] (so it learns it was started again).
    watcher: Mutex<Option<JoinHandle<()>>>,
    /// The configuration position (epoch, version) at which a member said this
    /// instance runs again, before that configuration could be taken here.
    started_at: Mutex<Option<(u64, u64)>>,
    http: super::peer_http::PeerHttp,
    /// How long an absent member's needs keep the log from being truncated.
    log_retention: Duration,
    /// The frontier's physical time (ms), as last computed (for metrics).
    pub frontier_ms: std::sync::atomic::AtomicU64,
    /// Commits waiting for durability (for `transactionLatencyCount`).
    pub outstanding: AtomicUsize,
    /// Content comparisons with each peer.
    pub anti_entropy: super::anti_entropy::AntiEntropy,
    /// Held while this instance makes a membership change or asks to be promoted: one
    /// proposer at a time (the engine commits against the configuration it started
    /// from, so two at once would fail each other; copies scaled down together each ask
    /// to be removed at the same moment).
    pub(super) proposing: tokio::sync::Mutex<()>,
    /// Seconds from a peer's commit to its application here (one observation per
    /// transaction applied).
    pub apply_delay: prometheus_client::metrics::histogram::Histogram,
}

/// Starts the task that pulls from `peer` for a node.
pub type SpawnPuller = fn(Weak<Node>, OriginId) -> JoinHandle<()>;

pub use quadmesh_repl::wire::{
    ClusterStatus, HandOverView, InstanceStatus, LogHealingView, LogHoleView,
};
use quadmesh_repl::wire::{PeerState, Role};

impl Node {
    pub fn start(
        repository: Arc<Repository>,
        apply_delay: prometheus_client::metrics::histogram::Histogram,
        http: super::peer_http::PeerHttp,
        log_retention: Duration,
        spawn_puller: SpawnPuller,
    ) -> Arc<Node> {
        let config = repository
            .cluster()
            .config
            .expect("a node is started for a repository in a cluster");
        let node = Arc::new(Node {
            view: Mutex::new(ClusterView::new(repository.origin(), config, now_ms())),
            repository,
            changed: watch::Sender::new(0),
            pullers: Mutex::new(HashMap::new()),
            spawn_puller,
            maintainer: Mutex::new(None),
            prober: Mutex::new(None),
            watcher: Mutex::new(None),
            started_at: Mutex::new(None),
            http,
            log_retention,
            frontier_ms: std::sync::atomic::AtomicU64::new(0),
            outstanding: AtomicUsize::new(0),
            anti_entropy: Default::default(),
            proposing: tokio::sync::Mutex::new(()),
            apply_delay,
        });
        node.reconcile();
        let weak = Arc::downgrade(&node);
        let mut cluster_changes = node.repository.subscribe_cluster();
        *node.maintainer.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(tokio::spawn(async move {
                let mut tick = tokio::time::interval(MAINTENANCE_INTERVAL);
                loop {
                    // A new configuration is taken at once; expiry and the horizon on
                    // the tick.
                    tokio::select! {
                        _ = tick.tick() => {}
                        changed = cluster_changes.changed() => {
                            if changed.is_err() {
                                return;
                            }
                        }
                    }
                    let Some(node) = weak.upgrade() else { return };
                    // Blocking: it reads the repository under its writer lock.
                    let _ = tokio::task::spawn_blocking(move || node.maintain()).await;
                }
            }));
        let weak = Arc::downgrade(&node);
        *node.watcher.lock().unwrap_or_else(|e| e.into_inner()) = Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(STOPPED_POLL);
            loop {
                tick.tick().await;
                let Some(node) = weak.upgrade() else { return };
                if node.is_stopped_here() {
                    node.ask_for_configuration().await;
                }
            }
        }));
        node
    }

    /// Keeps the task probing the other members' clocks (started by the caller, so that
    /// the node does not depend on it), stopped with the node.
    pub fn keep_prober(&self, task: JoinHandle<()>) {
        if let Some(old) = self
            .prober
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(task)
        {
            old.abort();
        }
    }

    /// Whether this instance is stopped (`repl/stop`) as far as it knows
    /// (`quadmesh_repl::stopped_here`).
    pub fn is_stopped_here(&self) -> bool {
        let started = *self.started_at.lock().unwrap_or_else(|e| e.into_inner());
        quadmesh_repl::stopped_here(&self.config(), self.repository.origin(), started)
    }

    /// Asks every other member of our configuration for theirs, and takes a newer one
    /// (`quadmesh_repl::told_config_in_order`), as a stopped instance must: it pulls
    /// from nobody, so it would otherwise never learn that it was started, nor hold the
    /// configurations it is asked to confirm while it is stopped.
    async fn ask_for_configuration(self: &Arc<Self>) {
        let config = self.config();
        let local = self.repository.origin();
        let asked = config
            .members
            .iter()
            .filter(|m| m.origin != local)
            .map(|member| super::removal::membership_of(self, member, local, STOPPED_POLL * 3));
        let mut told: Vec<_> = futures::future::join_all(asked)
            .await
            .into_iter()
            .flatten()
            .filter_map(|m| Some((m.config?, m.version_vector.unwrap_or_default())))
            .filter(|(told, _)| told.supersedes(&config))
            .collect();
        // The newest first: one taken makes the older ones moot.
        told.sort_by_key(|(told, _)| std::cmp::Reverse(told.position()));
        // Started again, it pulls again even before it may take that configuration
        // (one ending a hand-over waits for what only those pulls bring).
        if let Some(at) = told
            .iter()
            .find_map(|(told, _)| quadmesh_repl::started_by(&config, told, local))
        {
            tracing::info!(
                repository = self.repository.name(),
                "this instance was started again: replicating"
            );
            *self.started_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(at);
            self.reconcile();
            self.touch();
        }
        let repository = self.repository.clone();
        let taken = tokio::task::spawn_blocking(move || {
            let own = repository.version_vector();
            for (told, sender_held) in told {
                let held = repository.cluster().config;
                let in_order = held.as_ref().is_some_and(|held| {
                    quadmesh_repl::told_config_in_order(held, &told, &own, &sender_held)
                });
                if in_order {
                    return repository.take_told_config(told);
                }
            }
            Ok(false)
        })
        .await;
        match taken {
            Ok(Ok(true)) => {
                let stopped = self
                    .repository
                    .cluster()
                    .config
                    .is_some_and(|c| c.is_stopped(local));
                tracing::info!(
                    repository = self.repository.name(),
                    stopped,
                    "took a newer configuration from a member while stopped"
                );
            }
            Ok(Ok(false)) => {}
            Ok(Err(e)) => {
                tracing::warn!(repository = self.repository.name(), error = %e,
                    "cannot take a newer configuration told by a member")
            }
            Err(e) => tracing::warn!(error = %e, "a worker task failed"),
        }
    }

    /// How long the log is kept for an absent member (`--log-retention`).
    pub fn log_retention(&self) -> Duration {
        self.log_retention
    }

    pub fn repository(&self) -> &Arc<Repository> {
        &self.repository
    }

    pub fn view(&self) -> MutexGuard<'_, ClusterView> {
        self.view.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn config(&self) -> ClusterConfig {
        self.view().config().clone()
    }

    pub(super) fn http(&self) -> &super::peer_http::PeerHttp {
        &self.http
    }

    /// Something changed in the view: wake durability waiters.
    pub(super) fn touch(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Adopts a newer configuration from the repository (starting and stopping
    /// pullers), expires members away too long, and moves the horizon. Runs every
    /// 200 ms, and at once after a change. Blocking (the writer lock): call it from a
    /// blocking task.
    pub fn maintain(self: &Arc<Self>) {
        let cluster = self.repository.cluster();
        // Removed, or out of the cluster (undo-repl: an ordinary repository now, its
        // node about to stop): no round, and its pullers go (`pulled_peers` gives
        // nobody then).
        let Some(config) = cluster.config.filter(|_| !cluster.removed) else {
            self.reconcile();
            return;
        };
        self.adopt(config);
        // Whom it pulls from also turns on whether it waits after a lost tail.
        self.reconcile();
        let local = self.repository.version_vector();
        let (frontier, stable) = {
            let mut view = self.view();
            let round = quadmesh_repl::maintain(
                &mut view,
                now_ms(),
                self.log_retention.as_millis() as u64,
                self.repository.clock().last(),
                &local,
            );
            for origin in &round.expired {
                tracing::warn!(repository = self.repository.name(), member = %origin,
                    "a member was away longer than the log is kept; it must be grown again");
                // After a lost tail, nothing it holds can reach us any more.
                self.repository.on_peer_expired(*origin);
            }
            if let Some(reason) = &round.refuse_writes {
                // Refused before the view (and so status) shows it: the view stays
                // locked meanwhile.
                self.refuse_writes(reason);
            }
            (round.frontier, round.stable)
        };
        self.frontier_ms
            .store(frontier.millis(), std::sync::atomic::Ordering::Relaxed);
        self.repository.set_horizon(frontier, stable);
    }

    /// Takes `config` into the view if it is newer (starting and stopping pullers).
    fn adopt(self: &Arc<Self>, config: ClusterConfig) {
        if self.view().set_config(config) {
            self.reconcile();
            self.touch();
        }
    }

    /// This instance learned it was away longer than the log is kept (`reason`): from
    /// now on it takes no more writes, until removed and grown again. The controlling
    /// instance is the one the others are grown from again, so it never stops for that.
    /// Blocking (the writer lock, a file write); takes the view's configuration as it
    /// is when called, so it may be called with the view locked.
    pub(super) fn refuse_writes(&self, reason: &str) {
        let refuses = self.repository.cluster().config.is_none_or(|c| {
            quadmesh_repl::refuses_writes_when_expired(&c, self.repository.origin())
        });
        if !refuses {
            return;
        }
        match self.repository.mark_expired(reason) {
            Ok(true) => {
                tracing::error!(repository = self.repository.name(), %reason, "this instance takes no more writes: remove it from the cluster and grow it again")
            }
            Ok(false) => {}
            Err(e) => {
                tracing::error!(repository = self.repository.name(), error = %e, "cannot record that this instance takes no more writes (refused until a restart)")
            }
        }
    }

    /// One puller per other member and per removed member still to hand over what
    /// only it held; none for members that left (and handed over) or are stopped, and
    /// none at all while this instance is stopped, or once it is removed or out of its
    /// cluster (`quadmesh_repl::pulled_peers`).
    fn reconcile(self: &Arc<Self>) {
        let config = self.config();
        let cluster = self.repository.cluster();
        let pulled = quadmesh_repl::pulled_peers(
            &config,
            self.repository.origin(),
            quadmesh_repl::PullStanding {
                stopped_here: self.is_stopped_here(),
                awaiting_peers: self.repository.is_awaiting_peers(),
                removed: cluster.config.is_none() || cluster.removed,
            },
        );
        let mut pullers = self.pullers.lock().unwrap_or_else(|e| e.into_inner());
        pullers.retain(|origin, task| {
            let keep = pulled.contains(origin);
            if !keep {
                task.abort();
            }
            keep
        });
        for origin in pulled {
            pullers
                .entry(origin)
                .or_insert_with(|| (self.spawn_puller)(Arc::downgrade(self), origin));
        }
    }

    fn stop_pullers(&self) {
        for (_, task) in self
            .pullers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
        {
            task.abort();
        }
    }

    pub fn stop(&self) {
        self.stop_pullers();
        if let Some(task) = self.prober.lock().unwrap_or_else(|e| e.into_inner()).take() {
            task.abort();
        }
        if let Some(task) = self
            .watcher
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            task.abort();
        }
        if let Some(task) = self
            .maintainer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            task.abort();
        }
    }

    /// The newest configuration this instance knows: the repository's (read under the
    /// writer lock, so at least the one any commit before this call was made under) or
    /// the view's, whichever is newer. Takes it into the view.
    pub async fn newest_config(self: &Arc<Self>) -> ClusterConfig {
        let repository = self.repository.clone();
        if let Ok(Some(config)) =
            tokio::task::spawn_blocking(move || repository.cluster().config).await
        {
            self.adopt(config);
        }
        self.config()
    }

    /// Waits until enough members (`needed` of the number of members, this one
    /// included) hold this instance's transaction `seq`, or `timeout`; returns how many
    /// were missing at the end.
    ///
    /// The members counted are those of the configuration the commit was made under or
    /// a newer one, never an older one: called after the commit, it first takes the
    /// repository's configuration into the view, and the view only moves forward.
    pub async fn wait_durable(
        self: &Arc<Self>,
        seq: u64,
        needed: impl Fn(usize) -> usize,
        timeout: Duration,
    ) -> usize {
        let mut changed = self.changed.subscribe();
        self.newest_config().await;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let missing = self.view().holders_missing(seq, &needed);
            if missing == 0 {
                return 0;
            }
            if tokio::time::timeout_at(deadline, changed.changed())
                .await
                .is_err()
            {
                return missing;
            }
        }
    }

    /// How many transactions this instance still lacks that the others are known to
    /// have (0: caught up).
    pub fn catch_up_lag(&self) -> u64 {
        let local = self.repository.version_vector();
        self.view().catch_up_lag(&local)
    }

    pub fn status(&self) -> ClusterStatus {
        let stopped_here = self.is_stopped_here();
        let cluster = self.repository.cluster();
        let local_vv = self.repository.version_vector();
        let now = now_ms();
        let view = self.view();
        let config = view.config().clone();
        let local = self.repository.origin();
        let instances = config
            .members
            .iter()
            .map(|m| {
                let is_self = m.origin == local;
                let peer = view.peer(m.origin);
                let vv = if is_self {
                    local_vv.clone()
                } else {
                    peer.map(|p| p.version_vector.clone()).unwrap_or_default()
                };
                let stopped = if is_self {
                    stopped_here
                } else {
                    config.is_stopped(m.origin)
                };
                let state = if is_self {
                    if cluster.removed {
                        PeerState::Removed
                    } else {
                        PeerState::Myself
                    }
                } else if stopped {
                    PeerState::Stopped
                } else if stopped_here {
                    PeerState::NotReplicating
                } else {
                    match peer {
                        Some(p) if p.problem.is_some() => {
                            PeerState::from(p.problem.clone().unwrap_or_default().as_str())
                        }
                        // Connected only while something arrives: a stream open but
                        // silent is not health (the puller drops it soon).
                        Some(p) if p.connected => match p.last_contact_ms {
                            Some(t) if now.saturating_sub(t) > STALL_AFTER.as_millis() as u64 => {
                                PeerState::Disconnected(Some(format!(
                                    "no frame for {:.1} s",
                                    now.saturating_sub(t) as f64 / 1000.0
                                )))
                            }
                            _ => PeerState::Connected,
                        },
                        _ => PeerState::Disconnected(None),
                    }
                };
                let lag_transactions = view.lag_transactions(m.origin, &local_vv);
                let status = InstanceStatus {
                    name: m.name.clone(),
                    address: m.address.clone(),
                    repository: m.repository.clone(),
                    role: if m.controlling {
                        Role::Controlling
                    } else {
                        Role::Copy
                    },
                    state,
                    stopped,
                    origin: m.origin.to_string(),
                    version_vector: vv.iter().map(|(o, s)| (o.to_string(), s)).collect(),
                    lag_transactions,
                    lag_ms: 0,
                    behind: None,
                    last_contact_ms_ago: if is_self {
                        Some(0)
                    } else {
                        peer.and_then(|p| p.last_contact_ms)
                            .map(|t| now.saturating_sub(t))
                    },
                    clock_offset_ms: if is_self {
                        None
                    } else {
                        self.repository.clock_offset_from(m.origin)
                    },
                    contents: if is_self {
                        None
                    } else {
                        self.anti_entropy.comparison(m.origin)
                    },
                };
                (status, vv)
            })
            .collect::<Vec<_>>();
        // The view is not held while waiting for the writer lock (a long commit may
        // hold it, and pullers must not wait for the view meanwhile).
        drop(view);
        let instances = instances
            .into_iter()
            .map(|(mut status, vv)| {
                if status.lag_transactions > 0 {
                    status.lag_ms = self
                        .repository
                        .oldest_missing(&vv)
                        .map_or(0, |t| now.saturating_sub(t.millis()));
                }
                if status.lag_ms > FALLING_BEHIND.as_millis() as u64 && status.state != PeerState::Myself {
                    status.behind = Some(format!(
                        "does not keep up: lacks {} transaction(s), the oldest {:.1} s old; commits here are not slowed for it",
                        status.lag_transactions,
                        status.lag_ms as f64 / 1000.0
                    ));
                }
                status
            })
            .collect::<Vec<InstanceStatus>>();
        let replicas_behind = instances
            .iter()
            .filter(|i| i.behind.is_some())
            .map(|i| i.name.clone())
            .collect();
        let instance = config
            .member(local)
            .map(|m| m.name.clone())
            .unwrap_or_else(|| "(removed)".into());
        ClusterStatus {
            cluster: config.cluster_id.clone(),
            repository: self.repository.name().to_owned(),
            config_version: config.version,
            config_epoch: config.epoch,
            instance,
            removed: cluster.removed,
            stopped: stopped_here,
            settings: Some(
                super::durability::ReplSettings::from_defaults(&config.settings).describe(),
            ),
            writes_refused: cluster
                .check_writable(self.repository.name())
                .err()
                .map(|e| e.to_string())
                .or_else(|| self.repository.write_refusal()),
            register_entries: self.repository.register_len(),
            register_tombstones: self.repository.tombstones_len(),
            log_entries: self.repository.log_len().0,
            diverged: !self.anti_entropy.divergent().is_empty() || self.repository.knows_damage(),
            store_damaged: self.repository.knows_damage(),
            log_healing: self.repository.log_healing().map(log_healing_view),
            log_frames_put_back: self.repository.frames_put_back(),
            peer_clock_ahead_ms: self.repository.clock().refusals().recent_ahead_ms,
            peer_clock_refusals: self.repository.clock().refusals().count,
            clock_fenced: self.repository.clock_fence_refusal(),
            max_clock_offset_ms: self.repository.clock().max_offset_ms(),
            replicas_behind,
            handing_over: config
                .handing_over
                .iter()
                .map(|h| HandOverView {
                    name: h.member.name.clone(),
                    address: h.member.address.clone(),
                    held: local_vv.get(h.member.origin),
                    removed_at_ms: h.removed_at.millis(),
                })
                .collect(),
            instances,
        }
    }
}

/// A damaged log's healing, as status shows it.
fn log_healing_view(status: quadmesh_store::LogHealingStatus) -> LogHealingView {
    LogHealingView {
        holes: status
            .holes
            .iter()
            .map(|h| LogHoleView {
                file: h.file.display().to_string(),
                offset: h.offset,
                bytes: h.len,
            })
            .collect(),
        missing: status
            .missing
            .iter()
            .map(|(origin, seq)| format!("{origin}/{seq}"))
            .collect(),
        replay_paused: status.replay_paused,
        description: status.description,
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}
