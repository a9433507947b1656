//! Healing a replication log damaged inside, one repository at a time: what the damage
//! took, fetched back from the peers by origin and sequence number, checked, and put
//! back where it was (see [`quadmesh_repl::log_heal`] for which transactions, and
//! [`crate::TxLog::fill_holes`] for how).

use crate::digest_book::{digest_of, DigestBook};
use crate::error::{Result, StoreError};
use crate::log::LogHole;
use crate::repository::{Repository, Writer};
use quadmesh_repl::log_heal::{plan, MissingFrame};
use quadmesh_repl::{Entry, EntryKind, OriginId};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

/// A log with holes, not yet healed.
///
/// Rules it keeps:
/// - it exists exactly while the log has holes; the transactions to fetch back are
///   planned once, at open, from the surviving entries (what later commits or pulls
///   append never changes what the holes took);
/// - `replay_paused`: the replay stopped at a transaction whose predecessor is in a
///   hole, so the entries after it wait in the log unapplied, and no peer's
///   transaction may be appended before they are applied.
#[derive(Clone, Debug)]
pub(crate) struct LogHealing {
    holes: Vec<LogHole>,
    missing: Vec<MissingFrame>,
    replay_paused: bool,
}

impl LogHealing {
    /// The healing a freshly opened log needs, if it has holes.
    pub(crate) fn plan(name: &str, writer: &Writer, replay_paused: bool) -> Option<Self> {
        let holes = writer.durable.log.holes();
        if holes.is_empty() {
            return None;
        }
        let entries: Vec<(OriginId, u64)> = writer
            .durable
            .log
            .index()
            .iter()
            .map(|e| (e.origin, e.seq))
            .collect();
        // Where each origin's run in this log starts is not known (a repository grown
        // from a snapshot starts its log after the snapshot's transactions), so nothing
        // before an origin's first surviving entry is claimed.
        let missing = plan(
            &entries,
            &writer.durable.log.hole_places(),
            None,
            &writer.replica.version_vector,
        );
        let healing = LogHealing {
            holes: holes.to_vec(),
            missing,
            replay_paused,
        };
        tracing::error!(repository = name, %healing,
            "REPLICATION LOG DAMAGED: no local writes until what the damage took is fetched back from the peers");
        Some(healing)
    }
}

impl std::fmt::Display for LogHealing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let places: Vec<String> = self
            .holes
            .iter()
            .map(|h| {
                format!(
                    "{} bytes at offset {} of {}",
                    h.len,
                    h.offset,
                    h.file.display()
                )
            })
            .collect();
        write!(
            f,
            "its replication log is damaged ({}); {} transaction(s) to fetch back from the other members",
            places.join("; "),
            self.missing.len()
        )?;
        if self.replay_paused {
            write!(f, "; transactions after the damage wait to be applied")?;
        }
        Ok(())
    }
}

/// What a repository's log healing stands at, for status and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogHealingStatus {
    pub holes: Vec<LogHole>,
    /// The transactions to fetch back, by origin and sequence number.
    pub missing: Vec<(OriginId, u64)>,
    pub replay_paused: bool,
    /// In words, as write refusals give it.
    pub description: String,
}

/// What [`Repository::heal_log`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealedLog {
    /// Transactions put back into the holes.
    pub put_back: usize,
    /// Transactions the holes took that no member's log held any more and every member
    /// had applied: left out of the log (nobody needs them from it; the next backup must
    /// be a full one).
    pub left_out: usize,
    /// Transactions the holes took that no member holds and not every member applied
    /// (they were only in this log), of this instance's own or of an instance the
    /// configuration removed for good (no member can ever send them): each put back as
    /// an empty transaction under its origin and sequence number, so that the origin's
    /// transactions after it still reach the members; their writes are lost
    /// (anti-entropy then finds this instance differing from the others and repairs its
    /// store to theirs, as a re-grow from a member would, without taking it down).
    pub emptied: Vec<(OriginId, u64)>,
    /// Transactions applied by the replay that had stopped at the damage.
    pub replayed: usize,
    /// Copies of the damaged segments as they were.
    pub kept: Vec<PathBuf>,
}

/// An empty transaction of `missing`'s origin under its sequence number, stamped like the
/// surviving one before it (or after it): an origin's stamps keep growing with its
/// sequence numbers.
fn empty_in_place_of(writer: &Writer, missing: &MissingFrame) -> Entry {
    let own: Vec<_> = writer
        .durable
        .log
        .index()
        .iter()
        .filter(|e| e.origin == missing.origin)
        .collect();
    let time = own
        .iter()
        .filter(|e| e.seq < missing.seq)
        .max_by_key(|e| e.seq)
        .or_else(|| {
            own.iter()
                .filter(|e| e.seq > missing.seq)
                .min_by_key(|e| e.seq)
        })
        .map_or(quadmesh_repl::HlcTime::ZERO, |e| e.time);
    Entry {
        kind: EntryKind::Data,
        origin: missing.origin,
        seq: missing.seq,
        time,
        payload: crate::effect::Effect::default().encode(),
    }
}

impl Repository {
    /// Whether the log is healing, and what it waits for.
    pub fn log_healing(&self) -> Option<LogHealingStatus> {
        let health = self.lock_health();
        let healing = health.healing.as_ref()?;
        Some(LogHealingStatus {
            holes: healing.holes.clone(),
            missing: healing.missing.iter().map(|m| (m.origin, m.seq)).collect(),
            replay_paused: healing.replay_paused,
            description: healing.to_string(),
        })
    }

    /// Transactions put back into the log's holes since this repository was opened.
    pub fn frames_put_back(&self) -> u64 {
        self.frames_put_back.load(Ordering::Relaxed)
    }

    /// The transactions of `wanted` this instance's log holds (a healing peer asks):
    /// in log order, each as it was logged. Blocking.
    pub fn frames_held(&self, wanted: &[(OriginId, u64)]) -> Result<Vec<Entry>> {
        let wanted: std::collections::HashSet<(OriginId, u64)> = wanted.iter().copied().collect();
        let writer = self.lock_writer();
        let picked: Vec<_> = writer
            .durable
            .log
            .index()
            .iter()
            .filter(|e| wanted.contains(&(e.origin, e.seq)))
            .copied()
            .collect();
        writer.durable.log.read_entries(&picked)
    }

    /// Heals the log with transactions fetched back from peers: once `fetched` holds
    /// every one the holes took (checked by origin and sequence number; what else it
    /// holds is ignored), they are put back, the replay that stopped at the damage runs
    /// on, and the repository takes writes again (but see the lost-tail wait, which a
    /// damage after the last checkpoint also sets). Until then nothing changes and the
    /// error says what is still missing. Blocking.
    ///
    /// `held_by_no_member`: transactions every other member was asked for and none
    /// holds in its log. Those that every member has applied (the stable vector covers
    /// them: their logs truncated them, ours kept them longer for a backup) are needed
    /// by nobody from the log and are left out. Those that not every member applied
    /// were only in this log; if nobody can ever send them again — our own, or those of
    /// an instance the configuration removed for good — each is put back empty under
    /// its sequence number (see [`HealedLog::emptied`]) rather than keep the origin's
    /// later transactions from the members for ever. Either way the backup pin goes,
    /// since the log since the last backup no longer holds every write. A member's
    /// transaction no member holds (it should hold its own) stays missing: an operator
    /// must re-grow this instance.
    ///
    /// Crash safety: the checkpoint is first moved back to the first hole, so an open
    /// after a crash at any later point replays from there, skipping what the version
    /// vector counts (the transactions put back, and those applied before the damage
    /// was found) and applying the rest in order.
    pub fn heal_log(
        &self,
        fetched: Vec<Entry>,
        held_by_no_member: &[(OriginId, u64)],
    ) -> Result<Option<HealedLog>> {
        let mut writer = self.lock_writer();
        let Some(healing) = self.lock_health().healing.clone() else {
            return Ok(None);
        };
        let mut by_id: BTreeMap<(OriginId, u64), Entry> = fetched
            .into_iter()
            .filter(|e| e.kind != EntryKind::Heartbeat)
            .map(|e| ((e.origin, e.seq), e))
            .collect();
        let unheld = |m: &MissingFrame| held_by_no_member.contains(&(m.origin, m.seq));
        let left_out =
            |m: &MissingFrame| unheld(m) && writer.replica.stable.covers(m.origin, m.seq);
        // Nobody can send these again: ours, or those of an instance removed for good.
        let lost_for_good =
            |origin: OriginId| origin == self.origin() || writer.cluster.removed_for_good(origin);
        let emptied = |m: &MissingFrame| unheld(m) && !left_out(m) && lost_for_good(m.origin);
        let absent: Vec<String> = healing
            .missing
            .iter()
            .filter(|m| !by_id.contains_key(&(m.origin, m.seq)) && !left_out(m) && !emptied(m))
            .map(|m| format!("{}/{}", m.origin, m.seq))
            .collect();
        if !absent.is_empty() {
            let nobody = healing
                .missing
                .iter()
                .filter(|m| unheld(m) && !left_out(m) && !emptied(m))
                .count();
            let advice = if nobody > 0 {
                format!("; {nobody} of them, of a member, no member holds and not every member has applied: remove this instance from its cluster (--force) and grow it again")
            } else {
                String::new()
            };
            return Err(StoreError::LogHealing {
                repository: self.name().to_owned(),
                reason: format!(
                    "{} of {} transaction(s) the damage took are not fetched back yet (origin/sequence: {}){advice}",
                    absent.len(),
                    healing.missing.len(),
                    absent.join(", ")
                ),
            });
        }
        let mut fills: Vec<Vec<Entry>> = vec![Vec::new(); healing.holes.len()];
        let mut left = 0;
        let mut empty = Vec::new();
        for missing in &healing.missing {
            if let Some(entry) = by_id.remove(&(missing.origin, missing.seq)) {
                fills[missing.hole].push(entry);
            } else if emptied(missing) {
                fills[missing.hole].push(empty_in_place_of(&writer, missing));
                empty.push((missing.origin, missing.seq));
            } else {
                left += 1;
            }
        }
        if left > 0 || !empty.is_empty() {
            crate::backup_log::BackupPin::remove(self.dir())?;
            writer.durable.backup_pin = None;
        }
        if left > 0 {
            tracing::warn!(repository = %self.name(), left_out = left,
                "transactions the damage took that every member holds but no log kept are left out of the log: the next backup must be a full one");
        }
        if !empty.is_empty() {
            tracing::error!(repository = %self.name(), transactions = ?empty,
                "ACKNOWLEDGED WRITES LOST: transactions (origin, sequence number) of this instance, or of an instance removed for good, that only this damaged log held are put back empty, so that the origin's later transactions reach the members; the next backup must be a full one");
        }
        let first_hole = healing.holes[0].start();
        if first_hole < writer.durable.applied {
            writer.durable.applied = first_hole;
            self.checkpoint_locked(&mut writer)?;
        }
        self.make_log_durable()?;
        let kept = writer.durable.log.fill_holes(&fills)?;
        let put_back = healing.missing.len() - left - empty.len();
        self.lock_health().healing = None;
        self.replay_paused.store(false, Ordering::Release);
        let (replayed, paused) = match self.resume_replay(&mut writer, put_back) {
            Ok(done) => done,
            Err(e) => {
                self.stop_writes(format!(
                    "the replay after healing the replication log failed: {e}"
                ));
                return Err(e);
            }
        };
        if paused {
            // No hole is left to stop at: an origin's sequence has a gap nobody planned.
            self.stop_writes(
                "the replay after healing the replication log found a gap in an origin's sequence"
                    .into(),
            );
        }
        if replayed > 0 {
            // The store may already have held some of what the replay applied.
            let digest = digest_of(self.store().iter().map(|q| q.map_err(StoreError::from)))?;
            writer.digests = DigestBook::new(digest);
            let vector = writer.replica.version_vector.clone();
            writer.digests.record(&vector);
        }
        self.frames_put_back
            .fetch_add(put_back as u64, Ordering::Relaxed);
        if let Err(e) = self.checkpoint_locked(&mut writer) {
            tracing::warn!(repository = %self.name(), error = %e, "checkpoint after healing the log failed; it is retried later");
        }
        tracing::warn!(repository = %self.name(), put_back, replayed, kept = ?kept,
            "the replication log is healed: what the damage took was fetched back from the peers and put back");
        Ok(Some(HealedLog {
            put_back,
            left_out: left,
            emptied: empty,
            replayed,
            kept,
        }))
    }
}
