//! The pull side of the replication protocol, as a state machine free of I/O: one
//! [`Puller`] per peer. Events go in ([`PullEvent`], with the time they happened);
//! commands come out ([`PullCommand`]) for a runtime to carry out — the server's
//! puller over HTTP, or the simulation in `tests/sim` over an in-memory network. The
//! machine opens nothing, reads no clock and spawns nothing: time is an input, and
//! every decision (when to connect, when a stream is dead, what a refusal means, how
//! long to wait) is made here, the same way in both.
//!
//! The runtime's contract:
//! - it feeds [`PullEvent::Tick`] no later than [`Puller::deadline`], and
//!   [`PullEvent::Membership`] whenever the peer's place in the configuration or its
//!   expiry may have changed;
//! - it carries out commands in order; if an [`PullCommand::Apply`] or
//!   [`PullCommand::TakeHeartbeat`] fails it skips the rest of that batch and feeds the
//!   failure ([`PullEvent::Failed`]); once a whole batch of frames was taken it feeds
//!   [`PullEvent::Taken`];
//! - after [`PullCommand::Connect`] it feeds [`PullEvent::Opened`] or a failure, and
//!   after [`PullCommand::Close`] it delivers nothing more from that stream.

use crate::clock::ClockError;
use crate::frame::{Entry, EntryKind};
use crate::heartbeat::Heartbeat;
use crate::refusal::{PeerRefusal, RefusalCode};
use crate::removal_belief::{removal_believed, RemovalWords};
use crate::stamp::OriginId;

/// Heartbeats go out at least this often on an idle stream (ms).
pub const HEARTBEAT_INTERVAL_MS: u64 = 250;
/// A pull stream silent for this long (8 heartbeat intervals, ms) is taken as dead.
pub const STALL_AFTER_MS: u64 = HEARTBEAT_INTERVAL_MS * 8;
/// How long a peer may take to answer a pull request (its head, not the stream; ms).
pub const ANSWER_WITHIN_MS: u64 = 5_000;
/// The first pause before reconnecting; it doubles after each failure, up to
/// [`MAX_RETRY_MS`], and starts again once a stream was open.
pub const FIRST_RETRY_MS: u64 = 100;
pub const MAX_RETRY_MS: u64 = 1_000;
/// How often an expired peer is looked at again (only growing it again brings it
/// back, under a new id; until the configuration says so, nothing is taken from it).
pub const EXPIRED_RECHECK_MS: u64 = 1_000;
/// The pause after a peer said this instance must be grown again.
pub const REGROW_RETRY_MS: u64 = 5_000;
/// The pause after a peer said this instance was removed and the members did not
/// confirm it (ms).
pub const UNCONFIRMED_REMOVAL_RETRY_MS: u64 = 5_000;
/// How long the members' answers to a removal check may take (ms).
pub const CONFIRM_REMOVAL_WITHIN_MS: u64 = 15_000;

/// Why a pull stream ended, or could not start. Typed: runtimes map their transport
/// and storage errors onto these, and the machine decides from the variant alone.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PullFailure {
    #[error("cannot reach the peer: {0}")]
    Unreachable(String),
    #[error("no frame for {:.1} s", *.0 as f64 / 1000.0)]
    Silent(u64),
    #[error("the peer refused: {0}")]
    Refused(String),
    #[error("the peer cannot bring this instance up to date: {0}")]
    NeedsRegrow(String),
    #[error("the peer says this instance was removed from the cluster")]
    Removed,
    #[error("corrupt frame from the peer: {0}")]
    Corrupt(String),
    /// This instance cannot take what the peer sends for now (a peer clock too far
    /// ahead, a full disk, writes stopped): taken again on the next stream.
    #[error("held: {0}")]
    Held(String),
    /// The stream ended, or a transaction came past a gap: the next stream starts from
    /// this instance's version vector.
    #[error("the stream ended")]
    Ended,
    /// The peer holds transactions of this instance's own origin that this instance
    /// lost (a cut log tail), taken by the peer after this stream began: a stream sends
    /// the caller's own transactions only up to what its server held when it was asked,
    /// so a new stream fetches them back.
    #[error("the peer holds this instance's own transactions up to #{theirs}, which it lost past #{ours}: asking again")]
    HoldsOwnLost { theirs: u64, ours: u64 },
    #[error("member left the configuration")]
    NotAMember,
}

impl PullFailure {
    /// What a refused pull request means, from the refusal's code (never its text);
    /// `refusal` is `None` when the body was no refusal at all.
    pub fn refused(status: u16, refusal: Option<PeerRefusal>, body: &str) -> Self {
        match refusal {
            Some(PeerRefusal {
                code: RefusalCode::Removed,
                ..
            }) => PullFailure::Removed,
            Some(PeerRefusal {
                code: RefusalCode::Expired | RefusalCode::LogTruncated,
                message,
            }) => PullFailure::NeedsRegrow(message),
            Some(PeerRefusal {
                code: RefusalCode::NotAMember | RefusalCode::Damaged,
                message,
            }) => PullFailure::Refused(format!("{status}: {message}")),
            None => PullFailure::Refused(format!("{status}: {}", body.trim())),
        }
    }
}

impl From<ClockError> for PullFailure {
    fn from(e: ClockError) -> Self {
        PullFailure::Held(e.to_string())
    }
}

/// Something that happened to one puller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PullEvent {
    /// Time passed.
    Tick,
    /// The peer's place in the configuration: whether it is a member, and whether this
    /// instance's view has expired it.
    Membership { member: bool, expired: bool },
    /// The peer accepted the pull request: the stream is open.
    Opened,
    /// What the members said when asked, after [`PullCommand::ConfirmRemoval`].
    RemovalWords(RemovalWords),
    /// Frames arrived on the stream, in stream order (possibly none: a partial frame).
    Frames(Vec<Entry>),
    /// The frames handed over last were all taken; the runtime reads again.
    Taken,
    /// The request, the stream, or taking its frames failed.
    Failed(PullFailure),
}

/// What the runtime is to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PullCommand {
    /// Open a pull stream to the peer (resolving its name anew), sending this
    /// instance's version vector as it is now.
    Connect,
    /// Apply these transactions of the stream, in order.
    Apply(Vec<Entry>),
    /// Take in a heartbeat: observe its clock (a refusal is a failure), then record the
    /// peer's version vector and promise (and its digest).
    TakeHeartbeat(Heartbeat),
    /// The peer was heard from (something arrived).
    Contact,
    /// Close the stream, or abandon the request, if any.
    Close,
    /// Show the peer connected, with no problem.
    ShowConnected,
    /// Show the peer disconnected; `was_streaming`: a stream that had been open was
    /// lost (worth a warning), not merely a failed attempt.
    ShowDisconnected {
        failure: PullFailure,
        was_streaming: bool,
    },
    /// Show why the peer cannot be replicated from.
    ShowProblem(String),
    /// A peer says this instance was removed: ask each other member of the
    /// configuration held here, at its configured address, what its configuration says
    /// of this instance, and feed the answers ([`PullEvent::RemovalWords`]).
    ConfirmRemoval,
    /// The members did not confirm a peer's claim that this instance was removed: show
    /// why (and log it); asked again later.
    DoubtRemoval(String),
    /// Record, durably, that this instance was removed from the cluster.
    MarkRemoved,
    /// Refuse writes from now on (this instance must be grown again), for `reason`;
    /// the runtime leaves the controlling instance writable.
    RefuseWrites(String),
    /// Pull from this peer no more.
    Stop,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Connecting again at this time.
    Waiting {
        at: u64,
    },
    /// A pull request went out at this time.
    Requesting {
        since: u64,
    },
    /// The stream is open; the last frame arrived (or taking frames ended) at this time.
    Streaming {
        last_frame: u64,
    },
    /// A peer said this instance was removed; the members were asked at this time.
    Confirming {
        since: u64,
    },
    Stopped,
}

/// Pulling from one peer: connect, take what streams back, detect a dead stream,
/// reconnect with backoff.
///
/// Rules it keeps:
/// - a stream that delivers nothing for [`STALL_AFTER_MS`] (heartbeats are due every
///   [`HEARTBEAT_INTERVAL_MS`]) is dropped and reconnected, and the peer shows as
///   disconnected with the reason; so does a peer that does not answer the request
///   within [`ANSWER_WITHIN_MS`]; silence is counted only while waiting for the peer,
///   never while this instance is busy applying;
/// - reconnecting waits [`FIRST_RETRY_MS`], doubling after each failed attempt up to
///   [`MAX_RETRY_MS`], and starts again from the first pause once a stream was open:
///   a peer that is down is not hammered, one that merely dropped a stream is back
///   at once;
/// - transactions are applied in stream order, and a heartbeat only after every
///   transaction before it (its promise covers them);
/// - refusals are read from their code: removed → ask the members, and only once the
///   controlling instance or a strict majority of the members confirm it
///   ([`removal_believed`]) record it and stop for good (else show why and ask again
///   after [`UNCONFIRMED_REMOVAL_RETRY_MS`]); expired
///   or log truncated → this instance must be grown again: refuse writes before status
///   shows why, and ask again only every [`REGROW_RETRY_MS`]; not a member → retried
///   (the peer may not have the newest configuration yet), not shown as a problem;
/// - an expired peer is still pulled from while it is a member: it hands over the
///   transactions only it holds (the frontier stays at its promise until it is
///   removed, so the register still knows every newer write); its refusals (it has not
///   yet learned it was expired, or its log lacks what this instance lacks) say that it
///   is out, not this instance: they never make this instance refuse writes, and are
///   retried every [`EXPIRED_RECHECK_MS`];
/// - a peer that left the configuration is pulled from no more.
#[derive(Clone, Debug)]
pub struct Puller {
    peer: OriginId,
    phase: Phase,
    backoff_ms: u64,
    /// The current (or last) stream was open.
    streaming: bool,
    member: bool,
    expired: bool,
}

impl Puller {
    /// A puller that connects at once.
    pub fn new(peer: OriginId, now_ms: u64) -> Self {
        Puller {
            peer,
            phase: Phase::Waiting { at: now_ms },
            backoff_ms: FIRST_RETRY_MS,
            streaming: false,
            member: true,
            expired: false,
        }
    }

    pub fn peer(&self) -> OriginId {
        self.peer
    }

    /// Whether a stream is open.
    pub fn is_streaming(&self) -> bool {
        matches!(self.phase, Phase::Streaming { .. })
    }

    pub fn is_stopped(&self) -> bool {
        self.phase == Phase::Stopped
    }

    /// When the machine wants a [`PullEvent::Tick`] at the latest (ms), if ever.
    pub fn deadline(&self) -> Option<u64> {
        match self.phase {
            Phase::Waiting { at } => Some(at),
            Phase::Requesting { since } => Some(since + ANSWER_WITHIN_MS),
            Phase::Streaming { last_frame } => Some(last_frame + STALL_AFTER_MS),
            Phase::Confirming { since } => Some(since + CONFIRM_REMOVAL_WITHIN_MS),
            Phase::Stopped => None,
        }
    }

    /// Takes in `event`, which happened at `now_ms`, and says what to do.
    pub fn handle(&mut self, now_ms: u64, event: PullEvent) -> Vec<PullCommand> {
        if self.phase == Phase::Stopped {
            return Vec::new();
        }
        match event {
            PullEvent::Tick => self.tick(now_ms),
            PullEvent::Membership { member, expired } => {
                self.member = member;
                self.expired = expired;
                if member {
                    return Vec::new();
                }
                self.phase = Phase::Stopped;
                vec![PullCommand::Close, PullCommand::Stop]
            }
            PullEvent::Opened => {
                if !matches!(self.phase, Phase::Requesting { .. }) {
                    return Vec::new();
                }
                self.phase = Phase::Streaming { last_frame: now_ms };
                self.streaming = true;
                vec![PullCommand::ShowConnected]
            }
            PullEvent::Frames(entries) => {
                let Phase::Streaming { .. } = self.phase else {
                    return Vec::new();
                };
                self.phase = Phase::Streaming { last_frame: now_ms };
                self.take(entries, now_ms)
            }
            PullEvent::RemovalWords(words) => {
                let Phase::Confirming { .. } = self.phase else {
                    return Vec::new();
                };
                match removal_believed(&words) {
                    Ok(()) => {
                        self.phase = Phase::Stopped;
                        vec![PullCommand::MarkRemoved, PullCommand::Stop]
                    }
                    Err(doubt) => self.doubt_removal(now_ms, doubt.to_string()),
                }
            }
            PullEvent::Taken => {
                if let Phase::Streaming { .. } = self.phase {
                    self.phase = Phase::Streaming { last_frame: now_ms };
                }
                Vec::new()
            }
            PullEvent::Failed(failure) => {
                if matches!(self.phase, Phase::Waiting { .. }) {
                    // Nothing was open: a stale report of a stream already given up.
                    return Vec::new();
                }
                self.fail(now_ms, failure)
            }
        }
    }

    fn tick(&mut self, now_ms: u64) -> Vec<PullCommand> {
        match self.phase {
            Phase::Waiting { at } if now_ms >= at => {
                if !self.member {
                    self.phase = Phase::Stopped;
                    return vec![PullCommand::Stop];
                }
                self.phase = Phase::Requesting { since: now_ms };
                vec![PullCommand::Connect]
            }
            Phase::Requesting { since } if now_ms >= since + ANSWER_WITHIN_MS => self.fail(
                now_ms,
                PullFailure::Unreachable(format!("no answer within {} s", ANSWER_WITHIN_MS / 1000)),
            ),
            Phase::Streaming { last_frame } if now_ms >= last_frame + STALL_AFTER_MS => {
                self.fail(now_ms, PullFailure::Silent(STALL_AFTER_MS))
            }
            Phase::Confirming { since } if now_ms >= since + CONFIRM_REMOVAL_WITHIN_MS => self
                .doubt_removal(
                    now_ms,
                    format!(
                        "the members did not answer within {} s",
                        CONFIRM_REMOVAL_WITHIN_MS / 1000
                    ),
                ),
            _ => Vec::new(),
        }
    }

    /// Transactions in batches, each heartbeat after the transactions before it.
    fn take(&mut self, entries: Vec<Entry>, now_ms: u64) -> Vec<PullCommand> {
        let mut commands = vec![PullCommand::Contact];
        let mut batch = Vec::new();
        for entry in entries {
            if entry.kind != EntryKind::Heartbeat {
                batch.push(entry);
                continue;
            }
            if !batch.is_empty() {
                commands.push(PullCommand::Apply(std::mem::take(&mut batch)));
            }
            match Heartbeat::from_entry(&entry) {
                Some(heartbeat) => commands.push(PullCommand::TakeHeartbeat(heartbeat)),
                None => {
                    // What came before it is still taken; the stream is not.
                    commands
                        .extend(self.fail(now_ms, PullFailure::Corrupt("bad heartbeat".into())));
                    return commands;
                }
            }
        }
        if !batch.is_empty() {
            commands.push(PullCommand::Apply(batch));
        }
        commands
    }

    /// A claim of removal not confirmed: shown, and the peer asked again later.
    fn doubt_removal(&mut self, now_ms: u64, why: String) -> Vec<PullCommand> {
        self.phase = Phase::Waiting {
            at: now_ms + UNCONFIRMED_REMOVAL_RETRY_MS,
        };
        vec![PullCommand::DoubtRemoval(format!(
            "says this instance was removed, which neither the controlling instance nor a majority of the members confirm ({why})"
        ))]
    }

    fn fail(&mut self, now_ms: u64, failure: PullFailure) -> Vec<PullCommand> {
        let was_streaming =
            std::mem::take(&mut self.streaming) && matches!(self.phase, Phase::Streaming { .. });
        if was_streaming {
            self.backoff_ms = FIRST_RETRY_MS;
        }
        let mut commands = vec![
            PullCommand::Close,
            PullCommand::ShowDisconnected {
                failure: failure.clone(),
                was_streaming,
            },
        ];
        let pause = match &failure {
            PullFailure::Removed => {
                self.phase = Phase::Confirming { since: now_ms };
                commands.push(PullCommand::ConfirmRemoval);
                return commands;
            }
            PullFailure::NotAMember => {
                self.phase = Phase::Stopped;
                commands.push(PullCommand::Stop);
                return commands;
            }
            PullFailure::NeedsRegrow(reason) if self.expired => {
                // The peer is the one away: it is asked again for what only it holds.
                commands.push(PullCommand::ShowProblem(format!(
                    "away longer than the log is kept: remove it and grow it again (taking over what only it holds whenever it answers; it answered: {reason})"
                )));
                EXPIRED_RECHECK_MS
            }
            PullFailure::NeedsRegrow(reason) => {
                // Writes are refused before status shows why.
                commands.push(PullCommand::RefuseWrites(format!(
                    "a member says: {reason}"
                )));
                commands.push(PullCommand::ShowProblem(format!("needs re-grow: {reason}")));
                REGROW_RETRY_MS
            }
            other => {
                match other {
                    PullFailure::Held(_) => {
                        commands.push(PullCommand::ShowProblem(other.to_string()))
                    }
                    PullFailure::Silent(_) | PullFailure::Unreachable(_) => {
                        commands.push(PullCommand::ShowProblem(format!("disconnected: {other}")))
                    }
                    // A refusal is usually a peer that has not yet seen the newest
                    // configuration: transient, so not shown as a problem.
                    _ => {}
                }
                let pause = self.backoff_ms;
                self.backoff_ms = (self.backoff_ms * 2).min(MAX_RETRY_MS);
                pause
            }
        };
        self.phase = Phase::Waiting { at: now_ms + pause };
        commands
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stamp::HlcTime;
    use crate::version_vector::VersionVector;

    const PEER: OriginId = OriginId(2);

    fn tx(seq: u64) -> Entry {
        Entry {
            kind: EntryKind::Data,
            origin: PEER,
            seq,
            time: HlcTime(seq),
            payload: Vec::new(),
        }
    }

    fn heartbeat(clock: u64) -> Heartbeat {
        Heartbeat {
            origin: PEER,
            clock: HlcTime(clock),
            version_vector: VersionVector::new(),
            digest: None,
            config: None,
        }
    }

    fn open(now: u64) -> Puller {
        let mut p = Puller::new(PEER, now);
        assert_eq!(p.handle(now, PullEvent::Tick), vec![PullCommand::Connect]);
        assert_eq!(
            p.handle(now, PullEvent::Opened),
            vec![PullCommand::ShowConnected]
        );
        p
    }

    fn waits_until(p: &Puller) -> u64 {
        match p.phase {
            Phase::Waiting { at } => at,
            other => panic!("not waiting: {other:?}"),
        }
    }

    #[test]
    fn a_silent_stream_is_dropped_after_the_stall_bound_and_shown_disconnected() {
        let mut p = open(0);
        assert!(p.handle(STALL_AFTER_MS - 1, PullEvent::Tick).is_empty());
        p.handle(1_000, PullEvent::Frames(vec![]));
        assert!(p
            .handle(1_000 + STALL_AFTER_MS - 1, PullEvent::Tick)
            .is_empty());
        let commands = p.handle(1_000 + STALL_AFTER_MS, PullEvent::Tick);
        assert_eq!(commands[0], PullCommand::Close);
        assert_eq!(
            commands[1],
            PullCommand::ShowDisconnected {
                failure: PullFailure::Silent(STALL_AFTER_MS),
                was_streaming: true
            }
        );
        assert_eq!(
            commands[2],
            PullCommand::ShowProblem("disconnected: no frame for 2.0 s".into())
        );
        assert_eq!(waits_until(&p), 1_000 + STALL_AFTER_MS + FIRST_RETRY_MS);
    }

    #[test]
    fn silence_is_counted_from_when_applying_ended() {
        let mut p = open(0);
        p.handle(100, PullEvent::Frames(vec![tx(1)]));
        // Applying took 3 s: the peer was not silent meanwhile.
        p.handle(3_100, PullEvent::Taken);
        assert!(p
            .handle(3_100 + STALL_AFTER_MS - 1, PullEvent::Tick)
            .is_empty());
        assert_eq!(p.deadline(), Some(3_100 + STALL_AFTER_MS));
    }

    #[test]
    fn an_unanswered_request_fails_after_the_answer_bound() {
        let mut p = Puller::new(PEER, 0);
        p.handle(0, PullEvent::Tick);
        assert!(p.handle(ANSWER_WITHIN_MS - 1, PullEvent::Tick).is_empty());
        let commands = p.handle(ANSWER_WITHIN_MS, PullEvent::Tick);
        assert!(matches!(
            &commands[1],
            PullCommand::ShowDisconnected { failure: PullFailure::Unreachable(m), was_streaming: false } if m == "no answer within 5 s"
        ));
    }

    #[test]
    fn backoff_doubles_up_to_its_bound_and_restarts_after_an_open_stream() {
        let mut p = Puller::new(PEER, 0);
        let mut now = 0;
        let mut pauses = Vec::new();
        for _ in 0..6 {
            assert_eq!(p.handle(now, PullEvent::Tick), vec![PullCommand::Connect]);
            p.handle(
                now,
                PullEvent::Failed(PullFailure::Unreachable("refused".into())),
            );
            let at = waits_until(&p);
            pauses.push(at - now);
            now = at;
        }
        assert_eq!(pauses, vec![100, 200, 400, 800, 1_000, 1_000]);
        p.handle(now, PullEvent::Tick);
        p.handle(now, PullEvent::Opened);
        p.handle(now + 10, PullEvent::Failed(PullFailure::Ended));
        assert_eq!(waits_until(&p), now + 10 + FIRST_RETRY_MS);
    }

    #[test]
    fn transactions_are_applied_before_the_heartbeat_that_follows_them() {
        let mut p = open(0);
        let frames = vec![tx(1), tx(2), heartbeat(5).to_entry(), tx(3)];
        assert_eq!(
            p.handle(10, PullEvent::Frames(frames)),
            vec![
                PullCommand::Contact,
                PullCommand::Apply(vec![tx(1), tx(2)]),
                PullCommand::TakeHeartbeat(heartbeat(5)),
                PullCommand::Apply(vec![tx(3)]),
            ]
        );
    }

    #[test]
    fn a_bad_heartbeat_ends_the_stream_after_what_came_before_it() {
        let mut p = open(0);
        let mut bad = heartbeat(5).to_entry();
        bad.payload = b"{".to_vec();
        let commands = p.handle(10, PullEvent::Frames(vec![tx(1), bad]));
        assert_eq!(commands[1], PullCommand::Apply(vec![tx(1)]));
        assert!(commands.contains(&PullCommand::Close));
        assert!(!p.is_streaming());
    }

    #[test]
    fn refusals_are_read_from_their_code_never_their_text() {
        let refusal = |code, message: &str| Some(PeerRefusal::new(code, message));
        assert_eq!(
            PullFailure::refused(403, refusal(RefusalCode::Removed, "gone"), ""),
            PullFailure::Removed
        );
        assert_eq!(
            PullFailure::refused(410, refusal(RefusalCode::Expired, "away too long"), ""),
            PullFailure::NeedsRegrow("away too long".into())
        );
        assert!(matches!(
            PullFailure::refused(410, refusal(RefusalCode::LogTruncated, "gone"), ""),
            PullFailure::NeedsRegrow(_)
        ));
        // A message that merely mentions removal is no removal.
        assert!(matches!(
            PullFailure::refused(403, refusal(RefusalCode::NotAMember, "not removed"), ""),
            PullFailure::Refused(_)
        ));
        assert!(matches!(
            PullFailure::refused(403, None, "instance 7 was removed from the cluster"),
            PullFailure::Refused(_)
        ));
    }

    fn removal_words(controlling_says: bool) -> RemovalWords {
        use crate::removal_belief::MemberWord;
        RemovalWords {
            members: 3,
            controlling: Some(OriginId(1)),
            words: vec![(
                OriginId(1),
                MemberWord::Said {
                    same_cluster: true,
                    removed: controlling_says,
                },
            )],
        }
    }

    #[test]
    fn a_confirmed_removal_is_recorded_and_ends_pulling_for_good() {
        let mut p = open(0);
        let commands = p.handle(10, PullEvent::Failed(PullFailure::Removed));
        assert_eq!(&commands[2..], &[PullCommand::ConfirmRemoval]);
        assert!(!p.is_stopped());
        let commands = p.handle(20, PullEvent::RemovalWords(removal_words(true)));
        assert_eq!(commands, [PullCommand::MarkRemoved, PullCommand::Stop]);
        assert!(p.is_stopped());
        assert_eq!(p.deadline(), None);
        assert!(p.handle(1_000_000, PullEvent::Tick).is_empty());
    }

    #[test]
    fn a_removal_nobody_confirms_is_shown_and_the_peer_asked_again_later() {
        let mut p = open(0);
        p.handle(10, PullEvent::Failed(PullFailure::Removed));
        let commands = p.handle(20, PullEvent::RemovalWords(removal_words(false)));
        assert!(
            matches!(&commands[..], [PullCommand::DoubtRemoval(why)] if why.contains("does not list")),
            "{commands:?}"
        );
        assert_eq!(waits_until(&p), 20 + UNCONFIRMED_REMOVAL_RETRY_MS);
        assert_eq!(
            p.handle(20 + UNCONFIRMED_REMOVAL_RETRY_MS, PullEvent::Tick),
            [PullCommand::Connect]
        );
        // Answers that come too late change nothing.
        assert!(p
            .handle(30, PullEvent::RemovalWords(removal_words(true)))
            .is_empty());
    }

    #[test]
    fn members_that_never_answer_the_check_leave_it_unconfirmed() {
        let mut p = open(0);
        p.handle(10, PullEvent::Failed(PullFailure::Removed));
        assert_eq!(p.deadline(), Some(10 + CONFIRM_REMOVAL_WITHIN_MS));
        let commands = p.handle(10 + CONFIRM_REMOVAL_WITHIN_MS, PullEvent::Tick);
        assert!(matches!(&commands[..], [PullCommand::DoubtRemoval(_)]));
        assert!(!p.is_stopped());
    }

    #[test]
    fn told_to_be_grown_again_writes_are_refused_before_status_shows_why() {
        let mut p = open(0);
        let commands = p.handle(
            10,
            PullEvent::Failed(PullFailure::NeedsRegrow("expired".into())),
        );
        assert_eq!(
            &commands[2..],
            &[
                PullCommand::RefuseWrites("a member says: expired".into()),
                PullCommand::ShowProblem("needs re-grow: expired".into())
            ]
        );
        assert_eq!(waits_until(&p), 10 + REGROW_RETRY_MS);
    }

    #[test]
    fn transient_refusals_and_gaps_are_retried_without_showing_a_problem() {
        for failure in [
            PullFailure::Refused("403: not a member".into()),
            PullFailure::Ended,
        ] {
            let mut p = Puller::new(PEER, 0);
            p.handle(0, PullEvent::Tick);
            let commands = p.handle(1, PullEvent::Failed(failure));
            assert!(!commands
                .iter()
                .any(|c| matches!(c, PullCommand::ShowProblem(_))));
            assert_eq!(waits_until(&p), 1 + FIRST_RETRY_MS);
        }
    }

    #[test]
    fn an_expired_peer_is_still_pulled_from_its_refusals_never_refuse_our_writes_and_a_departed_one_is_left(
    ) {
        let mut p = Puller::new(PEER, 0);
        p.handle(
            0,
            PullEvent::Membership {
                member: true,
                expired: true,
            },
        );
        // It is asked for what only it holds.
        assert_eq!(p.handle(0, PullEvent::Tick), vec![PullCommand::Connect]);
        // It has not learned it was expired (it refuses us as expired), or lacks what we
        // lack: that says it is out, not us. Asked again soon; our writes go on.
        let commands = p.handle(
            1,
            PullEvent::Failed(PullFailure::NeedsRegrow("expired".into())),
        );
        assert!(
            !commands
                .iter()
                .any(|c| matches!(c, PullCommand::RefuseWrites(_))),
            "{commands:?}"
        );
        assert_eq!(waits_until(&p), 1 + EXPIRED_RECHECK_MS);
        // Once it answers, its transactions are taken like any peer's.
        assert_eq!(
            p.handle(1 + EXPIRED_RECHECK_MS, PullEvent::Tick),
            vec![PullCommand::Connect]
        );
        assert_eq!(
            p.handle(2 + EXPIRED_RECHECK_MS, PullEvent::Opened),
            vec![PullCommand::ShowConnected]
        );
        let commands = p.handle(3 + EXPIRED_RECHECK_MS, PullEvent::Frames(vec![tx(1)]));
        assert_eq!(
            commands,
            vec![PullCommand::Contact, PullCommand::Apply(vec![tx(1)])]
        );
        let commands = p.handle(
            5,
            PullEvent::Membership {
                member: false,
                expired: true,
            },
        );
        assert_eq!(commands, vec![PullCommand::Close, PullCommand::Stop]);
        assert!(p.is_stopped());
    }

    #[test]
    fn a_failure_reported_after_the_stream_was_given_up_changes_nothing() {
        let mut p = open(0);
        p.handle(STALL_AFTER_MS, PullEvent::Tick);
        let at = waits_until(&p);
        assert!(p
            .handle(STALL_AFTER_MS + 1, PullEvent::Failed(PullFailure::Ended))
            .is_empty());
        assert_eq!(waits_until(&p), at);
    }
}
