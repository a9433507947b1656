//! Reading the log for peers: what a pull stream sends.

use crate::error::Result;
use crate::log::LogPosition;
use crate::repository::{HeartbeatPoint, Repository};
use quadmesh_repl::{Entry, OriginId, VersionVector};

/// The most bytes of entries read for a peer at once (one larger entry is read alone):
/// the sender holds them, and the receiver decodes and applies them as one batch, so
/// this bounds the memory a stream costs both (a load's entry is tens of MiB).
pub const READ_BYTES: u64 = 8 << 20;

impl Repository {
    /// The entries from `from` on (in log order) that `wanted` admits, and the position
    /// to continue from. At most `limit` entries are read at once, and no more than
    /// [`READ_BYTES`] unless the first alone is larger.
    pub fn entries_since(
        &self,
        from: LogPosition,
        limit: usize,
        wanted: impl Fn(OriginId, u64) -> bool,
    ) -> Result<(Vec<Entry>, LogPosition)> {
        let writer = self.lock_writer();
        self.entries_locked(&writer, from, limit, wanted)
    }

    /// One round of a pull stream under one lock: the heartbeat's promise, and the
    /// entries from `from` to the promise's end that `wanted` admits (at most `limit`;
    /// the position returned is where the rest begin). One trip to a blocking thread
    /// and one writer lock per round, where a promise and a read took two of each.
    pub fn heartbeat_with_entries(
        &self,
        from: LogPosition,
        limit: usize,
        wanted: impl Fn(OriginId, u64) -> bool,
    ) -> Result<(HeartbeatPoint, Vec<Entry>, LogPosition)> {
        let mut writer = self.lock_writer();
        let point = self.heartbeat_point_locked(&mut writer)?;
        let (entries, next) = self.entries_locked(&writer, from, limit, wanted)?;
        Ok((point, entries, next))
    }

    /// Only durable entries are read: with group commit an entry is in the log (and
    /// applied) before the shared sync makes it durable, and nothing of it may leave
    /// this process before that. The position returned stops at the first one not yet
    /// durable, which a later round sends.
    fn entries_locked(
        &self,
        writer: &crate::repository::Writer,
        from: LogPosition,
        limit: usize,
        wanted: impl Fn(OriginId, u64) -> bool,
    ) -> Result<(Vec<Entry>, LogPosition)> {
        let durable = self.durable_position();
        let index = writer.durable.log.index();
        let first = index.partition_point(|e| e.start < from);
        let mut picked = Vec::new();
        let mut bytes = 0;
        let mut next = writer.durable.log.end();
        for indexed in &index[first..] {
            if picked.len() >= limit || bytes >= READ_BYTES || indexed.end > durable {
                next = indexed.start;
                break;
            }
            if wanted(indexed.origin, indexed.seq) {
                picked.push(*indexed);
                bytes += indexed.bytes();
            }
        }
        Ok((writer.durable.log.read_entries(&picked)?, next))
    }

    /// The stamp time of the oldest logged transaction `theirs` lacks: how far behind
    /// a peer is, in time.
    pub fn oldest_missing(&self, theirs: &VersionVector) -> Option<quadmesh_repl::HlcTime> {
        let writer = self.lock_writer();
        let oldest = writer
            .durable
            .log
            .index()
            .iter()
            .filter(|e| !theirs.covers(e.origin, e.seq))
            .map(|e| e.time)
            .min();
        oldest
    }

    /// Why this instance cannot bring a peer with version vector `theirs` up to date
    /// from its log, if it cannot: entries it would need were already truncated.
    pub fn cannot_serve(&self, theirs: &VersionVector) -> Option<String> {
        let writer = self.lock_writer();
        let reason = writer.replica.version_vector.iter().find_map(|(origin, ours)| {
            let gone = writer.durable.truncated.get(origin);
            let wanted = theirs.get(origin);
            (ours > wanted && wanted < gone).then(|| {
                format!(
                    "transactions {}..={gone} of origin {origin} are no longer in this instance's log; the instance must be grown again",
                    wanted + 1
                )
            })
        });
        reason
    }
}

#[cfg(test)]
mod tests {
    use crate::log::LogOptions;
    use crate::repository::{Repository, RepositoryOptions};
    use oxigraph::model::{GraphName, Literal, NamedNode, Quad};
    use quadmesh_repl::{HlcTime, HybridClock, SystemClock};
    use std::sync::{Arc, Mutex};

    /// A pull stream's round promises, with its heartbeat's clock, that every
    /// transaction of this origin stamped before it is among the entries it sends: the
    /// promise must be read before the log is (under the same writer lock), or a commit
    /// in between would be promised without being sent. Any clock reading taken while
    /// the round reads the log — where such a commit would take its stamp — must come
    /// after the promise.
    #[test]
    fn a_round_promises_nothing_it_does_not_send() {
        let dir = tempfile::tempdir().unwrap();
        let options = RepositoryOptions {
            log: LogOptions {
                fsync: false,
                segment_bytes: 1 << 20,
            },
            checkpoint_every: 10_000,
            clock_fence: None,
            ..RepositoryOptions::default()
        };
        let clock = Arc::new(HybridClock::new(SystemClock::with_offset_ms(0), 500));
        let repository = Repository::open("r", dir.path(), clock, options, true).unwrap();
        let mut stamps = Vec::new();
        for i in 0..3 {
            let quad = Quad::new(
                NamedNode::new_unchecked(format!("http://example.org/s{i}")),
                NamedNode::new_unchecked("http://example.org/p"),
                Literal::from(i),
                GraphName::DefaultGraph,
            );
            let receipt = repository.commit(|tracker| tracker.insert(quad)).unwrap();
            stamps.push(receipt.transaction.unwrap().1.time);
        }
        let read_meanwhile: Mutex<Vec<HlcTime>> = Mutex::default();
        let (point, entries, _) = repository
            .heartbeat_with_entries(Default::default(), 512, |_, _| {
                let reading = repository.clock().now().unwrap();
                read_meanwhile.lock().unwrap().push(reading);
                true
            })
            .unwrap();
        let sent: Vec<HlcTime> = entries.iter().map(|e| e.time).collect();
        assert_eq!(sent, stamps, "the round sends the whole log");
        let read_meanwhile = read_meanwhile.into_inner().unwrap();
        assert_eq!(read_meanwhile.len(), 3);
        for reading in read_meanwhile {
            assert!(
                reading > point.clock,
                "the heartbeat promised {:?} after the log was read (a reading of \
                 {reading:?} meanwhile): a transaction stamped then would be promised \
                 but not sent",
                point.clock
            );
        }
    }
}
