//! The serving side of one pull stream, as a state machine free of I/O: what the
//! caller lacks, then new transactions as they are appended, each round closed by a
//! heartbeat. Events go in ([`ServeEvent`], with the time they happened); commands come
//! out ([`ServeCommand`]) for a runtime to carry out — the server's `stream.rs` over an
//! HTTP body, or the simulation in `tests/sim` over its in-memory network.
//!
//! The runtime's contract:
//! - it carries out commands in order; [`ServeCommand::Read`] and
//!   [`ServeCommand::Send`] are operations it finishes later (one at a time), feeding
//!   [`ServeEvent::Read`] or [`ServeEvent::Sent`]; [`ServeCommand::KeepAlive`] is done at
//!   once, without waiting for the operation in flight (skipped when the peer has
//!   plenty to read already), and [`ServeEvent::KeptAlive`] fed right after;
//! - it reads the log with [`StreamServer::wants`], from where its last read ended (a
//!   new round continues from there too: the cursor keeps each transaction to once);
//! - it feeds [`ServeEvent::Appended`] when the log grows, and [`ServeEvent::Tick`] no
//!   later than [`StreamServer::deadline`], also while an operation is in flight;
//! - after [`ServeCommand::Close`] it sends nothing more.

use crate::frame::Entry;
use crate::heartbeat::Heartbeat;
use crate::pull::HEARTBEAT_INTERVAL_MS;
use crate::refusal::StreamCursor;
use crate::stamp::{HlcTime, OriginId};
use crate::version_vector::VersionVector;

/// A peer that takes nothing from its stream for this long (ms) is dropped: a
/// half-open connection, a paused process, a black hole that acknowledges bytes.
pub const SEND_TIMEOUT_MS: u64 = 60_000;

/// Something that happened to one stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServeEvent {
    /// Time passed.
    Tick,
    /// The log grew.
    Appended,
    /// A read finished: the heartbeat it took first (a round's first read takes the
    /// promise, then the entries up to its end) and the entries the cursor wants, in
    /// log order; `full`: the read stopped at its batch size, more may follow.
    Read {
        heartbeat: Option<Heartbeat>,
        entries: Vec<Entry>,
        full: bool,
    },
    /// The send in flight went out.
    Sent,
    /// A keep-alive went out, or there was no room for it (the peer has plenty to
    /// read already).
    KeptAlive,
}

/// What the runtime is to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServeCommand {
    /// Read from the log: with `heartbeat`, first take the heartbeat point (the
    /// promise, under the writer lock), then a batch of entries up to its end.
    Read { heartbeat: bool },
    /// Send these entries (a send the peer does not take is dropped at the timeout).
    Send(Vec<Entry>),
    /// Send this heartbeat now if there is room, without waiting: nothing went out for
    /// a heartbeat interval (a long commit holds the writer lock, or the peer's reads
    /// are slow). A promise already made, so harmless.
    KeepAlive(Entry),
    /// End the stream, for this reason.
    Close(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// A read is in flight.
    Reading,
    /// A send is in flight since this time; then the round goes on.
    Sending {
        since: u64,
        then: Then,
    },
    /// Between rounds until this time (or the log grows).
    Idle {
        until: u64,
    },
    Closed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Then {
    /// Read the next batch of this round.
    ReadMore,
    /// Send the round's heartbeat.
    Heartbeat,
    /// The round is over.
    Rest,
}

/// One served pull stream.
///
/// Rules it keeps:
/// - each round takes its heartbeat's promise first, sends every transaction the peer
///   lacks up to it (each once, the peer's own only up to what this instance held when
///   it asked: [`StreamCursor`]), then the heartbeat; a new round starts when the log
///   grows, and at least every [`HEARTBEAT_INTERVAL_MS`];
/// - something goes out at least every [`HEARTBEAT_INTERVAL_MS`] while the peer reads
///   (counted from the last send, or from the start of a round, whose heartbeat is on
///   its way): when nothing did, the last heartbeat is sent again — before the first, one
///   promising nothing (clock zero, empty version vector) — so the puller can tell a
///   silent link from a busy peer;
/// - a send the peer does not take within [`SEND_TIMEOUT_MS`] closes the stream (it
///   reconnects).
#[derive(Clone, Debug)]
pub struct StreamServer {
    cursor: StreamCursor,
    phase: Phase,
    /// The round's heartbeat, to send after its entries.
    pending: Option<Heartbeat>,
    /// The last heartbeat sent, for keep-alives.
    last_heartbeat: Entry,
    last_sent_ms: u64,
    /// When the current round began: its own heartbeat is on its way, so keep-alives
    /// count from here too (a round begun when one was due would otherwise be
    /// preceded by a needless one).
    round_began_ms: u64,
    /// The log grew since the current round took its promise.
    appended: bool,
}

impl StreamServer {
    /// A stream served by `origin` to `peer`, which has `theirs`, from an instance that
    /// has `ours`; with `own_only`, only `origin`'s own transactions go out (it was
    /// removed, and hands them over). Returns the first commands.
    pub fn open(
        origin: OriginId,
        peer: OriginId,
        theirs: VersionVector,
        ours: &VersionVector,
        own_only: bool,
        now_ms: u64,
    ) -> (Self, Vec<ServeCommand>) {
        let mut cursor = StreamCursor::new(peer, theirs, ours);
        if own_only {
            cursor = cursor.own_only(origin);
        }
        let nothing_promised = Heartbeat {
            origin,
            clock: HlcTime::ZERO,
            version_vector: VersionVector::new(),
            digest: None,
            config: None,
        };
        let server = StreamServer {
            cursor,
            phase: Phase::Reading,
            pending: None,
            last_heartbeat: nothing_promised.to_entry(),
            last_sent_ms: now_ms,
            round_began_ms: now_ms,
            appended: false,
        };
        (server, vec![ServeCommand::Read { heartbeat: true }])
    }

    /// Whether transaction `seq` of `origin` goes out on this stream (for the reads).
    pub fn wants(&self, origin: OriginId, seq: u64) -> bool {
        self.cursor.wants(origin, seq)
    }

    /// A copy of the cursor, for a read made elsewhere (a blocking thread).
    pub fn cursor(&self) -> StreamCursor {
        self.cursor.clone()
    }

    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// When the machine wants a [`ServeEvent::Tick`] at the latest (ms), if ever.
    pub fn deadline(&self) -> Option<u64> {
        let keep_alive = Some(self.keep_alive_due());
        let phase = match self.phase {
            Phase::Closed => return None,
            Phase::Reading => None,
            Phase::Sending { since, .. } => Some(since + SEND_TIMEOUT_MS),
            Phase::Idle { until } => Some(until),
        };
        [keep_alive, phase].into_iter().flatten().min()
    }

    /// Takes in `event`, which happened at `now_ms`, and says what to do.
    pub fn handle(&mut self, now_ms: u64, event: ServeEvent) -> Vec<ServeCommand> {
        if self.phase == Phase::Closed {
            return Vec::new();
        }
        match event {
            ServeEvent::Tick => self.tick(now_ms),
            ServeEvent::Appended => {
                self.appended = true;
                match self.phase {
                    Phase::Idle { .. } => self.start_round(now_ms),
                    _ => Vec::new(),
                }
            }
            ServeEvent::Read {
                heartbeat,
                entries,
                full,
            } => {
                if self.phase != Phase::Reading {
                    return Vec::new();
                }
                if heartbeat.is_some() {
                    self.pending = heartbeat;
                }
                let then = if full {
                    Then::ReadMore
                } else {
                    Then::Heartbeat
                };
                let entries: Vec<Entry> = entries
                    .into_iter()
                    .filter(|e| self.cursor.wants(e.origin, e.seq))
                    .collect();
                if entries.is_empty() {
                    return self.go_on(now_ms, then);
                }
                for entry in &entries {
                    self.cursor.sent(entry.origin, entry.seq);
                }
                self.phase = Phase::Sending {
                    since: now_ms,
                    then,
                };
                vec![ServeCommand::Send(entries)]
            }
            ServeEvent::KeptAlive => {
                self.last_sent_ms = now_ms;
                Vec::new()
            }
            ServeEvent::Sent => {
                self.last_sent_ms = now_ms;
                match self.phase {
                    Phase::Sending { then, .. } => self.go_on(now_ms, then),
                    _ => Vec::new(),
                }
            }
        }
    }

    /// When a keep-alive is due if nothing goes out before.
    fn keep_alive_due(&self) -> u64 {
        self.last_sent_ms.max(self.round_began_ms) + HEARTBEAT_INTERVAL_MS
    }

    fn start_round(&mut self, now_ms: u64) -> Vec<ServeCommand> {
        self.round_began_ms = now_ms;
        self.appended = false;
        self.phase = Phase::Reading;
        vec![ServeCommand::Read { heartbeat: true }]
    }

    /// The round goes on after a read or a send.
    fn go_on(&mut self, now_ms: u64, then: Then) -> Vec<ServeCommand> {
        match then {
            Then::ReadMore => {
                self.phase = Phase::Reading;
                vec![ServeCommand::Read { heartbeat: false }]
            }
            Then::Heartbeat => match self.pending.take() {
                Some(heartbeat) => {
                    let entry = heartbeat.to_entry();
                    self.last_heartbeat = entry.clone();
                    self.phase = Phase::Sending {
                        since: now_ms,
                        then: Then::Rest,
                    };
                    vec![ServeCommand::Send(vec![entry])]
                }
                None => self.go_on(now_ms, Then::Rest),
            },
            Then::Rest if self.appended => self.start_round(now_ms),
            Then::Rest => {
                self.phase = Phase::Idle {
                    until: now_ms + HEARTBEAT_INTERVAL_MS,
                };
                Vec::new()
            }
        }
    }

    fn tick(&mut self, now_ms: u64) -> Vec<ServeCommand> {
        match self.phase {
            Phase::Sending { since, .. } if now_ms >= since + SEND_TIMEOUT_MS => {
                self.phase = Phase::Closed;
                return vec![ServeCommand::Close(format!(
                    "the peer read nothing for {} s",
                    SEND_TIMEOUT_MS / 1000
                ))];
            }
            Phase::Idle { until } if now_ms >= until => return self.start_round(now_ms),
            _ => {}
        }
        if now_ms >= self.keep_alive_due() {
            return vec![ServeCommand::KeepAlive(self.last_heartbeat.clone())];
        }
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::EntryKind;

    const US: OriginId = OriginId(1);
    const PEER: OriginId = OriginId(2);

    fn tx(origin: OriginId, seq: u64) -> Entry {
        Entry {
            kind: EntryKind::Data,
            origin,
            seq,
            time: HlcTime(seq),
            payload: Vec::new(),
        }
    }

    fn heartbeat(clock: u64) -> Heartbeat {
        Heartbeat {
            origin: US,
            clock: HlcTime(clock),
            version_vector: VersionVector::new(),
            digest: None,
            config: None,
        }
    }

    fn open() -> StreamServer {
        let (server, commands) = StreamServer::open(
            US,
            PEER,
            VersionVector::new(),
            &VersionVector::new(),
            false,
            0,
        );
        assert_eq!(commands, [ServeCommand::Read { heartbeat: true }]);
        server
    }

    fn read(entries: Vec<Entry>, hb: Option<u64>, full: bool) -> ServeEvent {
        ServeEvent::Read {
            heartbeat: hb.map(heartbeat),
            entries,
            full,
        }
    }

    #[test]
    fn a_round_sends_what_the_peer_lacks_then_its_heartbeat_then_rests() {
        let mut s = open();
        let commands = s.handle(1, read(vec![tx(US, 1), tx(US, 2)], Some(5), true));
        assert_eq!(commands, [ServeCommand::Send(vec![tx(US, 1), tx(US, 2)])]);
        assert_eq!(
            s.handle(2, ServeEvent::Sent),
            [ServeCommand::Read { heartbeat: false }]
        );
        // The batch after: one already sent is not sent again.
        let commands = s.handle(3, read(vec![tx(US, 2), tx(US, 3)], None, false));
        assert_eq!(commands, [ServeCommand::Send(vec![tx(US, 3)])]);
        assert_eq!(
            s.handle(4, ServeEvent::Sent),
            [ServeCommand::Send(vec![heartbeat(5).to_entry()])]
        );
        assert!(s.handle(5, ServeEvent::Sent).is_empty());
        assert_eq!(s.deadline(), Some(5 + HEARTBEAT_INTERVAL_MS));
        // The next round at the interval, or as soon as the log grows.
        assert_eq!(
            s.handle(5 + HEARTBEAT_INTERVAL_MS, ServeEvent::Tick),
            [ServeCommand::Read { heartbeat: true }]
        );
    }

    #[test]
    fn the_log_growing_starts_a_round_at_once_or_after_the_one_in_progress() {
        let mut s = open();
        s.handle(1, read(Vec::new(), Some(5), false));
        // Appended while the heartbeat goes out: a new round right after it.
        assert!(s.handle(2, ServeEvent::Appended).is_empty());
        assert_eq!(
            s.handle(3, ServeEvent::Sent),
            [ServeCommand::Read { heartbeat: true }]
        );
        s.handle(4, read(Vec::new(), Some(6), false));
        s.handle(5, ServeEvent::Sent);
        // Resting: a round at once.
        assert_eq!(
            s.handle(6, ServeEvent::Appended),
            [ServeCommand::Read { heartbeat: true }]
        );
    }

    #[test]
    fn the_peers_own_transactions_go_back_only_up_to_what_we_held() {
        let mut ours = VersionVector::new();
        ours.advance(PEER, 3);
        let (mut s, _) = StreamServer::open(US, PEER, VersionVector::new(), &ours, false, 0);
        let commands = s.handle(
            1,
            read(vec![tx(PEER, 3), tx(PEER, 4), tx(US, 1)], None, false),
        );
        assert_eq!(commands, [ServeCommand::Send(vec![tx(PEER, 3), tx(US, 1)])]);
        // Own only: a removed instance hands over its own transactions and relays none.
        let (mut s, _) = StreamServer::open(US, PEER, VersionVector::new(), &ours, true, 0);
        let commands = s.handle(1, read(vec![tx(OriginId(3), 1), tx(US, 1)], None, false));
        assert_eq!(commands, [ServeCommand::Send(vec![tx(US, 1)])]);
    }

    #[test]
    fn a_slow_read_is_covered_by_the_last_heartbeat_sent_again() {
        let mut s = open();
        // The first read takes long (a commit holds the writer lock): nothing promised.
        assert_eq!(s.deadline(), Some(HEARTBEAT_INTERVAL_MS));
        let commands = s.handle(HEARTBEAT_INTERVAL_MS, ServeEvent::Tick);
        let nothing_promised = match &commands[..] {
            [ServeCommand::KeepAlive(entry)] => Heartbeat::from_entry(entry).unwrap(),
            other => panic!("{other:?}"),
        };
        assert_eq!(nothing_promised.clock, HlcTime::ZERO);
        assert_eq!(nothing_promised.version_vector, VersionVector::new());
        assert!(s
            .handle(HEARTBEAT_INTERVAL_MS, ServeEvent::KeptAlive)
            .is_empty());
        assert_eq!(s.deadline(), Some(2 * HEARTBEAT_INTERVAL_MS));
        // Later keep-alives repeat the last heartbeat sent.
        let at = 2 * HEARTBEAT_INTERVAL_MS;
        s.handle(at, read(Vec::new(), Some(9), false));
        s.handle(at + 1, ServeEvent::Sent);
        s.handle(at + 2, ServeEvent::Appended);
        let commands = s.handle(at + 2 + HEARTBEAT_INTERVAL_MS, ServeEvent::Tick);
        assert_eq!(commands, [ServeCommand::KeepAlive(heartbeat(9).to_entry())]);
    }

    #[test]
    fn a_round_begun_when_it_was_due_is_not_preceded_by_a_keep_alive() {
        let mut s = open();
        s.handle(1, read(Vec::new(), Some(5), false));
        s.handle(2, ServeEvent::Sent);
        let due = 2 + HEARTBEAT_INTERVAL_MS;
        assert_eq!(
            s.handle(due, ServeEvent::Tick),
            [ServeCommand::Read { heartbeat: true }]
        );
        // The read is in flight: nothing more until an interval after the round began.
        assert_eq!(s.deadline(), Some(due + HEARTBEAT_INTERVAL_MS));
        assert!(s.handle(due, ServeEvent::Tick).is_empty());
        assert!(matches!(
            &s.handle(due + HEARTBEAT_INTERVAL_MS, ServeEvent::Tick)[..],
            [ServeCommand::KeepAlive(_)]
        ));
    }

    #[test]
    fn a_peer_that_takes_nothing_is_dropped_at_the_send_timeout() {
        let mut s = open();
        s.handle(1, read(vec![tx(US, 1)], Some(5), false));
        // Nothing went out since the stream opened at 0.
        assert_eq!(s.deadline(), Some(HEARTBEAT_INTERVAL_MS));
        // Keep-alives are tried (the runtime skips them while the peer's buffer is full).
        let commands = s.handle(HEARTBEAT_INTERVAL_MS, ServeEvent::Tick);
        assert!(matches!(&commands[..], [ServeCommand::KeepAlive(_)]));
        s.handle(HEARTBEAT_INTERVAL_MS, ServeEvent::KeptAlive);
        assert!(s.handle(SEND_TIMEOUT_MS, ServeEvent::Tick).len() <= 1);
        let commands = s.handle(1 + SEND_TIMEOUT_MS, ServeEvent::Tick);
        assert!(
            matches!(&commands[..], [ServeCommand::Close(why)] if why.contains("read nothing")),
            "{commands:?}"
        );
        assert!(s.is_closed());
        assert_eq!(s.deadline(), None);
    }
}
