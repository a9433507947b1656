//! Reading the log for peers: what a pull stream sends.

use crate::error::Result;
use crate::log::LogPosition;
use crate::repository::{HeartbeatPoint, Repository};
use quadmesh_repl::{Entry, OriginId, VersionVector};

impl Repository {
    /// The entries from `from` on (in log order) that `wanted` admits, and the position
    /// to continue from. At most `limit` entries are read at once.
    pub fn entries_since(
        &self,
        from: LogPosition,
        limit: usize,
        wanted: impl Fn(OriginId, u64) -> bool,
    ) -> Result<(Vec<Entry>, LogPosition)> {
        let writer = self.lock_writer();
        Self::entries_locked(&writer, from, limit, wanted)
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
        let (entries, next) = Self::entries_locked(&writer, from, limit, wanted)?;
        Ok((point, entries, next))
    }

    fn entries_locked(
        writer: &crate::repository::Writer,
        from: LogPosition,
        limit: usize,
        wanted: impl Fn(OriginId, u64) -> bool,
    ) -> Result<(Vec<Entry>, LogPosition)> {
        let index = writer.log.index();
        let first = index.partition_point(|e| e.start < from);
        let mut picked = Vec::new();
        let mut next = writer.log.end();
        for indexed in &index[first..] {
            if picked.len() >= limit {
                next = indexed.start;
                break;
            }
            if wanted(indexed.origin, indexed.seq) {
                picked.push(*indexed);
            }
        }
        Ok((writer.log.read_entries(&picked)?, next))
    }

    /// The stamp time of the oldest logged transaction `theirs` lacks: how far behind
    /// a peer is, in time.
    pub fn oldest_missing(&self, theirs: &VersionVector) -> Option<quadmesh_repl::HlcTime> {
        let writer = self.lock_writer();
        let oldest = writer
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
        let reason = writer.version_vector.iter().find_map(|(origin, ours)| {
            let gone = writer.truncated.get(origin);
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
