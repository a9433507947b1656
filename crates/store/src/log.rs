use crate::error::{Result, StoreError};
use quadmesh_repl::frame::{self, Decoded};
use quadmesh_repl::{Entry, HlcTime, OriginId};
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// A place in the log: a segment and a byte offset in it. Positions order like the log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LogPosition {
    pub segment: u64,
    pub offset: u64,
}

/// What the log remembers of each entry without reading it back.
#[derive(Clone, Copy, Debug)]
pub struct IndexedEntry {
    pub origin: OriginId,
    pub seq: u64,
    pub time: HlcTime,
    pub start: LogPosition,
    pub end: LogPosition,
}

impl IndexedEntry {
    /// The bytes the entry takes in the log (an entry never spans two segments).
    pub fn bytes(&self) -> u64 {
        if self.start.segment == self.end.segment {
            self.end.offset.saturating_sub(self.start.offset)
        } else {
            self.end.offset
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct LogOptions {
    /// `fdatasync` after every append: an acknowledged commit survives power loss, not
    /// only a crash of the process.
    pub fsync: bool,
    /// A segment is closed and a new one started past this size.
    pub segment_bytes: u64,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            fsync: true,
            segment_bytes: 64 << 20,
        }
    }
}

/// The replication log of one repository: every transaction applied here, local or
/// remote, in the order it was applied, as checksummed frames in numbered segment files.
///
/// Rules it keeps:
/// - an entry is durable (written, and synced when `fsync`) before `append` returns;
///   `append_unsynced` leaves the sync to the caller (group commit), and a rotation
///   syncs the segment it closes, so that only the active segment holds frames not
///   yet durable;
/// - an append that fails (a short write, ENOSPC, a failed sync) leaves nothing behind:
///   the segment is cut back to where the frame began before the error is returned; if
///   even that fails the log is *broken* and refuses every append until it is opened
///   again (the open then cuts or names what was left);
/// - the last entry can be rolled back ([`TxLog::roll_back`]) as long as nothing of it
///   left this process, i.e. before the repository announces it;
/// - on open, only a torn tail is cut: bytes at the end of the last segment after which
///   no valid frame follows (a crash mid-append). An invalid frame followed by valid
///   ones, or anywhere in an earlier segment, is damage: the open fails with
///   [`StoreError::LogDamaged`], naming the file and offset, instead of dropping the
///   valid frames behind it — unless it is opened *salvaging* ([`TxLog::open_salvaging`],
///   for a repository whose peers hold the same transactions): then each damaged span
///   is kept on disk as it is, recorded as a [`LogHole`], and the valid frames after it
///   are indexed, until [`TxLog::fill_holes`] puts the transactions back;
/// - only whole segments are removed, oldest first, and never one holding a hole or
///   after it (what the hole took is not known to be held elsewhere yet).
pub struct TxLog {
    dir: PathBuf,
    options: LogOptions,
    /// Ids of the segments on disk, ascending; the last is the one appended to.
    segments: Vec<u64>,
    active: File,
    active_len: u64,
    index: Vec<IndexedEntry>,
    /// Set when a failed append could not be undone: the end of the active segment is
    /// unknown, so nothing more is appended until the log is opened again.
    broken: Option<String>,
    /// What the open cut off the end of the last segment, if anything.
    cut_on_open: Option<TornTail>,
    /// Damaged spans a salvaging open stepped over, in log order, not yet filled.
    holes: Vec<LogHole>,
    /// Syncs of frames or of a closed segment that failed since opening: frames
    /// appended unsynced before them may be lost (group commit fails them).
    sync_failures: u64,
    /// Unit tests: the next frame write stops after this many bytes, with ENOSPC.
    #[cfg(test)]
    fail_next_write_after: Option<usize>,
    /// Unit tests: the next sync of a frame fails, as a disk that cannot write it back.
    #[cfg(test)]
    fail_next_sync: bool,
}

/// Bytes cut off the end of the log on open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    pub file: PathBuf,
    pub offset: u64,
    pub bytes: u64,
}

/// A damaged span inside the log: bytes holding no valid frame, with valid frames (or
/// a later segment) after them. Found by a salvaging open; kept on disk until filled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogHole {
    pub file: PathBuf,
    pub segment: u64,
    pub offset: u64,
    pub len: u64,
    /// What was wrong at its start.
    pub detail: String,
}

impl LogHole {
    pub fn start(&self) -> LogPosition {
        LogPosition {
            segment: self.segment,
            offset: self.offset,
        }
    }
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:016}.log"))
}

impl TxLog {
    /// Opens the log; damage inside it fails the open (see the rules above).
    pub fn open(dir: &Path, options: LogOptions) -> Result<Self> {
        Self::open_with(dir, options, false)
    }

    /// Opens the log stepping over damage inside it: each damaged span becomes a
    /// [`LogHole`] (see [`TxLog::holes`]) and the valid frames after it are kept. For a
    /// repository whose peers can give back what the holes took.
    pub fn open_salvaging(dir: &Path, options: LogOptions) -> Result<Self> {
        Self::open_with(dir, options, true)
    }

    fn open_with(dir: &Path, options: LogOptions, salvage: bool) -> Result<Self> {
        fs::create_dir_all(dir)?;
        let mut segments: Vec<u64> = fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_suffix(".log")?.parse().ok()
            })
            .collect();
        segments.sort_unstable();
        if segments.is_empty() {
            segments.push(1);
        }
        let mut index = Vec::new();
        let last = *segments.last().expect("at least one segment");
        let mut active_len = 0;
        let mut cut_on_open = None;
        let mut holes = Vec::new();
        for &id in &segments {
            let path = segment_path(dir, id);
            let mut bytes = Vec::new();
            if path.exists() {
                File::open(&path)?.read_to_end(&mut bytes)?;
            }
            let mut from = 0;
            let valid = loop {
                let (valid, problem) = scan_segment(id, &bytes, from, &mut index);
                if valid >= bytes.len() {
                    break valid;
                }
                let after = valid_frames_after(&bytes, valid);
                if id == last && after == 0 {
                    break valid;
                }
                let detail = if after > 0 {
                    format!("{problem}, followed by {after} valid frame(s) that would be lost if it were cut")
                } else {
                    format!("{problem}, in a segment that is not the last one")
                };
                if !salvage {
                    return Err(StoreError::LogDamaged {
                        file: path.clone(),
                        offset: valid as u64,
                        detail,
                    });
                }
                let next = next_valid_frame(&bytes, valid).unwrap_or(bytes.len());
                tracing::error!(segment = %path.display(), offset = valid, bytes = next - valid,
                    %detail, "DAMAGE INSIDE THE REPLICATION LOG: stepping over it; what it held is fetched back from the peers");
                holes.push(LogHole {
                    file: path.clone(),
                    segment: id,
                    offset: valid as u64,
                    len: (next - valid) as u64,
                    detail,
                });
                if next >= bytes.len() {
                    break bytes.len();
                }
                from = next;
            };
            if valid < bytes.len() {
                let dropped = (bytes.len() - valid) as u64;
                tracing::warn!(segment = %path.display(), offset = valid, dropped,
                    "cutting a torn tail (an incomplete last frame, nothing valid after it) off the replication log");
                let f = OpenOptions::new().write(true).open(&path)?;
                f.set_len(valid as u64)?;
                f.sync_all()?;
                cut_on_open = Some(TornTail {
                    file: path.clone(),
                    offset: valid as u64,
                    bytes: dropped,
                });
            }
            if id == last {
                active_len = valid as u64;
            }
        }
        let active = OpenOptions::new()
            .create(true)
            .append(true)
            .open(segment_path(dir, last))?;
        Ok(TxLog {
            dir: dir.to_owned(),
            options,
            segments,
            active,
            active_len,
            index,
            broken: None,
            cut_on_open,
            holes,
            sync_failures: 0,
            #[cfg(test)]
            fail_next_write_after: None,
            #[cfg(test)]
            fail_next_sync: false,
        })
    }

    /// What the open cut off the end of the log (a torn tail), if anything.
    pub fn cut_on_open(&self) -> Option<&TornTail> {
        self.cut_on_open.as_ref()
    }

    /// The damaged spans a salvaging open stepped over and that are not filled yet.
    pub fn holes(&self) -> &[LogHole] {
        &self.holes
    }

    /// For each hole, how many surviving entries come before it in the index (the form
    /// `quadmesh_repl::log_heal::plan` takes).
    pub fn hole_places(&self) -> Vec<usize> {
        self.holes
            .iter()
            .map(|hole| self.index.partition_point(|e| e.start < hole.start()))
            .collect()
    }

    /// Puts transactions back into every hole: `fills[i]` into `holes()[i]`, in the order
    /// given (each origin's in ascending sequence). Each segment with holes is written
    /// anew beside itself, synced, and renamed over the old one after a copy of the old
    /// one was kept in `damaged/` under the log's directory; a crash at any point leaves
    /// either the old segment or the new one. Positions at or before the first hole do
    /// not move; those after it may. Returns where each damaged segment was copied.
    pub fn fill_holes(&mut self, fills: &[Vec<Entry>]) -> Result<Vec<PathBuf>> {
        if fills.len() != self.holes.len() {
            return Err(StoreError::Log(std::io::Error::other(format!(
                "{} fills given for {} holes",
                fills.len(),
                self.holes.len()
            ))));
        }
        let holes = std::mem::take(&mut self.holes);
        let mut rewrites = Vec::new();
        let mut at = 0;
        while at < holes.len() {
            let segment = holes[at].segment;
            let end = holes[at..]
                .iter()
                .position(|h| h.segment != segment)
                .map_or(holes.len(), |n| at + n);
            match self.rewrite_segment(segment, &holes[at..end], &fills[at..end]) {
                Ok(rewrite) => rewrites.push(rewrite),
                Err(e) => {
                    // What is not filled stays a hole (this segment's and the later ones).
                    self.holes = holes[at..].to_vec();
                    return Err(e);
                }
            }
            at = end;
        }
        Ok(rewrites)
    }

    fn rewrite_segment(
        &mut self,
        segment: u64,
        holes: &[LogHole],
        fills: &[Vec<Entry>],
    ) -> Result<PathBuf> {
        let path = segment_path(&self.dir, segment);
        let bytes = fs::read(&path)?;
        let mut out = Vec::with_capacity(bytes.len());
        let mut cursor = 0;
        for (hole, fill) in holes.iter().zip(fills) {
            out.extend_from_slice(&bytes[cursor..hole.offset as usize]);
            for entry in fill {
                entry.encode_into(&mut out);
            }
            cursor = (hole.offset + hole.len) as usize;
        }
        out.extend_from_slice(&bytes[cursor..]);
        let mut index = Vec::new();
        let (valid, problem) = scan_segment(segment, &out, 0, &mut index);
        if valid != out.len() {
            return Err(StoreError::Corrupt {
                what: format!("log segment {} as rewritten", path.display()),
                detail: format!("not valid from offset {valid}: {problem}"),
            });
        }
        let kept_dir = self.dir.join("damaged");
        fs::create_dir_all(&kept_dir)?;
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let kept_as = kept_dir.join(format!("{segment:016}.log.{stamp}"));
        fs::copy(&path, &kept_as)?;
        File::open(&kept_as)?.sync_all()?;
        let fresh = self.dir.join(format!("{segment:016}.healing"));
        {
            let mut file = File::create(&fresh)?;
            file.write_all(&out)?;
            file.sync_all()?;
        }
        fs::rename(&fresh, &path)?;
        File::open(&self.dir)?.sync_all()?;
        let first = self.index.partition_point(|e| e.start.segment < segment);
        let last = self.index.partition_point(|e| e.start.segment <= segment);
        self.index.splice(first..last, index);
        if Some(&segment) == self.segments.last() {
            self.active = OpenOptions::new().append(true).open(&path)?;
            self.active_len = out.len() as u64;
        }
        tracing::warn!(segment = %path.display(), holes = holes.len(),
            put_back = fills.iter().map(Vec::len).sum::<usize>(), kept_as = %kept_as.display(),
            "filled the damaged spans of a log segment with the transactions fetched back");
        Ok(kept_as)
    }

    /// Syncs that failed since opening (see the field).
    pub(crate) fn sync_failures(&self) -> u64 {
        self.sync_failures
    }

    /// Why the log takes no more appends, if it does not.
    pub fn broken(&self) -> Option<&str> {
        self.broken.as_deref()
    }

    /// Appends one entry durably and returns where it starts and ends. On failure the
    /// segment is cut back to where the frame began (see the rules above).
    pub fn append(&mut self, entry: &Entry) -> Result<IndexedEntry> {
        self.append_frame(entry, true)
    }

    /// Appends one entry without syncing it: the caller makes it durable later, with
    /// others (group commit, see `group_commit.rs`), and announces it only then. A
    /// failed write is cut back as in [`TxLog::append`].
    pub(crate) fn append_unsynced(&mut self, entry: &Entry) -> Result<IndexedEntry> {
        self.append_frame(entry, false)
    }

    fn append_frame(&mut self, entry: &Entry, synced: bool) -> Result<IndexedEntry> {
        if let Some(reason) = &self.broken {
            return Err(StoreError::Log(std::io::Error::other(format!(
                "the replication log takes no appends since a failed write could not be undone: {reason}"
            ))));
        }
        if self.active_len >= self.options.segment_bytes {
            self.rotate()?;
        }
        let bytes = entry.encode();
        let written = if synced {
            self.write_frame(&bytes).and_then(|()| self.sync_frame())
        } else {
            self.write_frame(&bytes)
        };
        if let Err(error) = written {
            self.cut_back(self.active_len, &error.to_string());
            return Err(StoreError::Log(error));
        }
        let segment = *self.segments.last().expect("an active segment");
        let indexed = IndexedEntry {
            origin: entry.origin,
            seq: entry.seq,
            time: entry.time,
            start: LogPosition {
                segment,
                offset: self.active_len,
            },
            end: LogPosition {
                segment,
                offset: self.active_len + bytes.len() as u64,
            },
        };
        self.active_len += bytes.len() as u64;
        self.index.push(indexed);
        Ok(indexed)
    }

    /// Makes every segment durable (a clean stop of a log kept without `fsync`).
    pub fn sync_all(&mut self) -> Result<()> {
        for &id in &self.segments {
            File::open(segment_path(&self.dir, id))?.sync_all()?;
        }
        File::open(&self.dir)?.sync_all()?;
        Ok(())
    }

    #[cfg(not(test))]
    fn write_frame(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.active.write_all(bytes)
    }

    /// In unit tests a write can be made to fail midway, as on a full disk.
    #[cfg(test)]
    fn write_frame(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if let Some(written) = self.fail_next_write_after.take() {
            self.active.write_all(&bytes[..written.min(bytes.len())])?;
            return Err(std::io::Error::from_raw_os_error(28));
        }
        self.active.write_all(bytes)
    }

    /// Unit tests: the next frame write stops after `bytes` bytes with ENOSPC.
    #[cfg(test)]
    pub(crate) fn fail_next_write_after(&mut self, bytes: usize) {
        self.fail_next_write_after = Some(bytes);
    }

    /// Makes the frame just written durable, when the log is synced at every append:
    /// `append` returns only after this did.
    fn sync_frame(&mut self) -> std::io::Result<()> {
        if !self.options.fsync {
            return Ok(());
        }
        // In unit tests a sync can be made to fail (EIO), as on a disk that cannot write
        // the frame back: the frame may then be lost at any moment, so the append fails.
        #[cfg(test)]
        if std::mem::take(&mut self.fail_next_sync) {
            self.sync_failures += 1;
            return Err(std::io::Error::from_raw_os_error(5));
        }
        let synced = self.active.sync_data();
        if synced.is_err() {
            self.sync_failures += 1;
        }
        synced
    }

    /// Unit tests: the next sync of a frame fails with EIO.
    #[cfg(test)]
    pub(crate) fn fail_next_sync(&mut self) {
        self.fail_next_sync = true;
    }

    /// Takes back the last entry appended, which must be `indexed`: the repository could
    /// not apply it, and nothing of it has left this process yet.
    pub fn roll_back(&mut self, indexed: &IndexedEntry) -> Result<()> {
        let last = self.index.last().map(|e| (e.start, e.end));
        if last != Some((indexed.start, indexed.end)) || indexed.end != self.end() {
            return Err(StoreError::Log(std::io::Error::other(
                "only the last entry of the log can be rolled back",
            )));
        }
        self.index.pop();
        if self.cut_back(
            indexed.start.offset,
            "rolling back an entry that was not applied",
        ) {
            Ok(())
        } else {
            Err(StoreError::Log(std::io::Error::other(
                self.broken.clone().unwrap_or_default(),
            )))
        }
    }

    /// Cuts the active segment back to `len` bytes; says whether that worked. If not,
    /// the log is marked broken.
    fn cut_back(&mut self, len: u64, why: &str) -> bool {
        let result = self.active.set_len(len).and_then(|()| {
            if self.options.fsync {
                self.active.sync_all()
            } else {
                Ok(())
            }
        });
        match result {
            Ok(()) => {
                self.active_len = len;
                true
            }
            Err(e) => {
                let path = segment_path(&self.dir, *self.segments.last().expect("active"));
                let reason = format!(
                    "cannot cut {} back to {len} bytes ({why}): {e}",
                    path.display()
                );
                tracing::error!(%reason, "the replication log is broken until it is opened again");
                self.broken = Some(reason);
                false
            }
        }
    }

    /// Another handle on the active segment (the same open file), for syncing it
    /// outside the writer lock.
    pub(crate) fn active_handle(&self) -> std::io::Result<File> {
        self.active.try_clone()
    }

    fn rotate(&mut self) -> Result<()> {
        let next = self.segments.last().expect("an active segment") + 1;
        // Frames appended unsynced (group commit) must not be left behind in a segment
        // nobody syncs any more: the new segment starts with everything before it durable.
        if self.options.fsync {
            if let Err(e) = self.active.sync_data() {
                self.sync_failures += 1;
                return Err(e.into());
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(segment_path(&self.dir, next))?;
        if self.options.fsync {
            File::open(&self.dir)?.sync_all()?;
        }
        self.active = file;
        self.active_len = 0;
        self.segments.push(next);
        Ok(())
    }

    /// Where the next entry will start.
    pub fn end(&self) -> LogPosition {
        LogPosition {
            segment: *self.segments.last().expect("an active segment"),
            offset: self.active_len,
        }
    }

    pub fn index(&self) -> &[IndexedEntry] {
        &self.index
    }

    /// Reads back the entries that start at or after `from`, in log order.
    pub fn read_from(&self, from: LogPosition) -> Result<Vec<(IndexedEntry, Entry)>> {
        let first = self.index.partition_point(|e| e.start < from);
        let indexed = &self.index[first..];
        Ok(indexed
            .iter()
            .copied()
            .zip(self.read_entries(indexed)?)
            .collect())
    }

    /// Reads the given entries back (positioned reads, one open per segment).
    pub fn read_entries(&self, entries: &[IndexedEntry]) -> Result<Vec<Entry>> {
        use std::os::unix::fs::FileExt;
        let mut out = Vec::with_capacity(entries.len());
        let mut open: Option<(u64, File)> = None;
        for indexed in entries {
            if open.as_ref().map(|(id, _)| *id) != Some(indexed.start.segment) {
                let file = File::open(segment_path(&self.dir, indexed.start.segment))?;
                open = Some((indexed.start.segment, file));
            }
            let file = &open.as_ref().expect("segment just opened").1;
            let mut bytes = vec![0; (indexed.end.offset - indexed.start.offset) as usize];
            file.read_exact_at(&mut bytes, indexed.start.offset)?;
            match frame::decode(&bytes) {
                Ok(Decoded::Frame(entry, _)) => out.push(entry),
                other => {
                    return Err(StoreError::Corrupt {
                        what: format!(
                            "log segment {}",
                            segment_path(&self.dir, indexed.start.segment).display()
                        ),
                        detail: format!(
                            "entry at offset {} unreadable: {other:?}",
                            indexed.start.offset
                        ),
                    })
                }
            }
        }
        Ok(out)
    }

    /// Removes the segments before the one holding `position` (never the active one)
    /// and returns the index entries that went with them.
    pub fn remove_segments_before(&mut self, position: LogPosition) -> Result<Vec<IndexedEntry>> {
        let position = self
            .holes
            .first()
            .map_or(position, |hole| position.min(hole.start()));
        while self.segments.len() > 1 && self.segments[0] < position.segment {
            let id = self.segments.remove(0);
            fs::remove_file(segment_path(&self.dir, id))?;
        }
        let keep_from = self
            .index
            .partition_point(|e| e.start.segment < self.segments[0]);
        Ok(self.index.drain(..keep_from).collect())
    }

    /// Closes the active segment so that everything before it can be removed once covered.
    pub fn seal_active_segment(&mut self) -> Result<()> {
        if self.active_len > 0 {
            self.rotate()?;
        }
        Ok(())
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }
}

/// Indexes the valid frames of one segment; returns the length of its valid prefix and,
/// when that is not the whole segment, what is wrong at its end.
fn scan_segment(
    id: u64,
    bytes: &[u8],
    from: usize,
    index: &mut Vec<IndexedEntry>,
) -> (usize, String) {
    let mut offset = from;
    while offset < bytes.len() {
        match frame::decode(&bytes[offset..]) {
            Ok(Decoded::Frame(entry, len)) => {
                index.push(IndexedEntry {
                    origin: entry.origin,
                    seq: entry.seq,
                    time: entry.time,
                    start: LogPosition {
                        segment: id,
                        offset: offset as u64,
                    },
                    end: LogPosition {
                        segment: id,
                        offset: (offset + len) as u64,
                    },
                });
                offset += len;
            }
            Ok(Decoded::Incomplete(needed)) => {
                return (
                    offset,
                    format!(
                        "an incomplete frame ({} of {needed} bytes)",
                        bytes.len() - offset
                    ),
                )
            }
            Err(e) => return (offset, format!("an invalid frame ({e})")),
        }
    }
    (offset, String::new())
}

/// Where the first valid frame after `from` (a damaged frame's start) begins.
fn next_valid_frame(bytes: &[u8], from: usize) -> Option<usize> {
    let mut at = from + 1;
    while let Some(found) = bytes.get(at..).and_then(|rest| {
        rest.windows(frame::MAGIC.len())
            .position(|w| w == frame::MAGIC)
    }) {
        let start = at + found;
        if let Ok(Decoded::Frame(..)) = frame::decode(&bytes[start..]) {
            return Some(start);
        }
        at = start + 1;
    }
    None
}

/// How many valid frames start somewhere after `from` (a damaged frame's start): none
/// means the bytes from `from` on are a torn tail, not damage in the middle of the log.
fn valid_frames_after(bytes: &[u8], from: usize) -> usize {
    let mut count = 0;
    let mut at = from + 1;
    while let Some(found) = bytes.get(at..).and_then(|rest| {
        rest.windows(frame::MAGIC.len())
            .position(|w| w == frame::MAGIC)
    }) {
        let start = at + found;
        match frame::decode(&bytes[start..]) {
            Ok(Decoded::Frame(_, len)) => {
                count += 1;
                at = start + len;
            }
            _ => at = start + 1,
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use quadmesh_repl::EntryKind;

    fn entry(seq: u64) -> Entry {
        Entry {
            kind: EntryKind::Data,
            origin: OriginId(1),
            seq,
            time: HlcTime(seq * 10),
            payload: vec![seq as u8; 100],
        }
    }

    #[test]
    fn entries_survive_reopening_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let opts = LogOptions {
            fsync: false,
            segment_bytes: 300,
        };
        {
            let mut log = TxLog::open(dir.path(), opts).unwrap();
            for seq in 1..=5 {
                log.append(&entry(seq)).unwrap();
            }
            assert!(log.segment_count() > 1);
        }
        // Tear the last frame in half, as a crash mid-write would.
        let last = fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .max()
            .unwrap();
        let len = fs::metadata(&last).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&last)
            .unwrap()
            .set_len(len - 20)
            .unwrap();
        let mut log = TxLog::open(dir.path(), opts).unwrap();
        let seqs: Vec<u64> = log
            .read_from(LogPosition::default())
            .unwrap()
            .iter()
            .map(|(_, e)| e.seq)
            .collect();
        assert_eq!(seqs, vec![1, 2, 3, 4]);
        log.append(&entry(5)).unwrap();
        let again = TxLog::open(dir.path(), opts).unwrap();
        assert_eq!(
            again
                .read_from(LogPosition::default())
                .unwrap()
                .last()
                .unwrap()
                .1,
            entry(5)
        );
    }

    #[test]
    fn corruption_before_the_last_segment_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let opts = LogOptions {
            fsync: false,
            segment_bytes: 150,
        };
        {
            let mut log = TxLog::open(dir.path(), opts).unwrap();
            for seq in 1..=4 {
                log.append(&entry(seq)).unwrap();
            }
        }
        let first = segment_path(dir.path(), 1);
        let mut bytes = fs::read(&first).unwrap();
        bytes[50] ^= 0xff;
        fs::write(&first, bytes).unwrap();
        assert!(matches!(
            TxLog::open(dir.path(), opts),
            Err(StoreError::LogDamaged { file, .. }) if file == first
        ));
    }

    fn seqs(log: &TxLog) -> Vec<u64> {
        log.read_from(LogPosition::default())
            .unwrap()
            .iter()
            .map(|(_, e)| e.seq)
            .collect()
    }

    const ONE_SEGMENT: LogOptions = LogOptions {
        fsync: false,
        segment_bytes: 1 << 20,
    };

    #[test]
    fn a_flipped_bit_inside_the_log_stops_the_open_naming_file_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        let mut starts = Vec::new();
        {
            let mut log = TxLog::open(dir.path(), ONE_SEGMENT).unwrap();
            for seq in 1..=40 {
                starts.push(log.append(&entry(seq)).unwrap().start.offset);
            }
        }
        let path = segment_path(dir.path(), 1);
        let mut bytes = fs::read(&path).unwrap();
        // A bit of frame 11's payload.
        bytes[starts[10] as usize + frame::HEADER_LEN + 30] ^= 0x04;
        fs::write(&path, &bytes).unwrap();
        let error = match TxLog::open(dir.path(), ONE_SEGMENT) {
            Err(e) => e,
            Ok(log) => panic!("opened, keeping {:?}", seqs(&log)),
        };
        match &error {
            StoreError::LogDamaged { file, offset, .. } => {
                assert_eq!(file, &path);
                assert_eq!(*offset, starts[10]);
            }
            other => panic!("not named as damage: {other}"),
        }
        let message = error.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(
            message.contains(&format!("offset {}", starts[10])),
            "{message}"
        );
        assert!(message.contains("29 valid frame(s)"), "{message}");
        assert!(message.contains("restore it from"), "{message}");
        // Nothing was cut: the file is as it was.
        assert_eq!(fs::read(&path).unwrap(), bytes);

        // The same in a frame's length field, which makes it look longer than the file.
        let mut bytes = bytes.clone();
        bytes[starts[10] as usize + frame::HEADER_LEN + 30] ^= 0x04;
        bytes[starts[10] as usize + 33] ^= 0x40;
        fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            TxLog::open(dir.path(), ONE_SEGMENT),
            Err(StoreError::LogDamaged { offset, .. }) if offset == starts[10]
        ));
    }

    #[test]
    fn damage_in_the_last_frame_or_zeroes_after_it_are_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut last = None;
        {
            let mut log = TxLog::open(dir.path(), ONE_SEGMENT).unwrap();
            for seq in 1..=5 {
                last = Some(log.append(&entry(seq)).unwrap());
            }
        }
        let last = last.unwrap();
        let path = segment_path(dir.path(), 1);
        let mut bytes = fs::read(&path).unwrap();
        // The last frame garbled, then zero-filled pages (a crash without fsync).
        bytes[last.start.offset as usize + 50] ^= 0xff;
        bytes.extend_from_slice(&[0; 4096]);
        fs::write(&path, &bytes).unwrap();
        let log = TxLog::open(dir.path(), ONE_SEGMENT).unwrap();
        assert_eq!(seqs(&log), vec![1, 2, 3, 4]);
        let cut = log.cut_on_open().unwrap();
        assert_eq!(cut.offset, last.start.offset);
        assert_eq!(cut.bytes, 4096 + last.end.offset - last.start.offset);
        assert_eq!(fs::metadata(&path).unwrap().len(), last.start.offset);
        // A clean log reports no cut.
        drop(log);
        assert!(TxLog::open(dir.path(), ONE_SEGMENT)
            .unwrap()
            .cut_on_open()
            .is_none());
    }

    #[test]
    fn a_write_failing_midway_is_cut_back_before_the_next_append() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = TxLog::open(dir.path(), ONE_SEGMENT).unwrap();
        log.append(&entry(1)).unwrap();
        let end = log.end();
        log.fail_next_write_after = Some(30);
        let error = log.append(&entry(2)).unwrap_err();
        assert!(error.is_disk_full(), "{error}");
        assert_eq!(log.end(), end);
        assert_eq!(
            fs::metadata(segment_path(dir.path(), 1)).unwrap().len(),
            end.offset
        );
        assert_eq!(seqs(&log), vec![1]);
        // The same sequence number is taken by the next append, and reads back whole.
        log.append(&entry(2)).unwrap();
        log.append(&entry(3)).unwrap();
        drop(log);
        let log = TxLog::open(dir.path(), ONE_SEGMENT).unwrap();
        assert!(log.cut_on_open().is_none());
        assert_eq!(seqs(&log), vec![1, 2, 3]);
    }

    #[test]
    fn a_failed_sync_fails_the_append_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let synced = LogOptions {
            fsync: true,
            ..ONE_SEGMENT
        };
        let mut log = TxLog::open(dir.path(), synced).unwrap();
        log.append(&entry(1)).unwrap();
        let end = log.end();
        // The frame was written but the disk could not sync it: not durable, so not
        // appended (an acknowledgement may only follow the sync).
        log.fail_next_sync();
        assert!(
            log.append(&entry(2)).is_err(),
            "an append whose sync failed succeeded"
        );
        assert_eq!(log.end(), end);
        assert_eq!(
            fs::metadata(segment_path(dir.path(), 1)).unwrap().len(),
            end.offset
        );
        assert_eq!(seqs(&log), vec![1]);
        log.append(&entry(2)).unwrap();
        drop(log);
        let log = TxLog::open(dir.path(), synced).unwrap();
        assert!(log.cut_on_open().is_none());
        assert_eq!(seqs(&log), vec![1, 2]);
    }

    #[test]
    fn the_last_entry_can_be_rolled_back_and_no_other() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = TxLog::open(dir.path(), ONE_SEGMENT).unwrap();
        let first = log.append(&entry(1)).unwrap();
        let second = log.append(&entry(2)).unwrap();
        assert!(log.roll_back(&first).is_err());
        log.roll_back(&second).unwrap();
        assert_eq!(log.end(), first.end);
        assert_eq!(seqs(&log), vec![1]);
        log.append(&entry(2)).unwrap();
        drop(log);
        let log = TxLog::open(dir.path(), ONE_SEGMENT).unwrap();
        assert_eq!(seqs(&log), vec![1, 2]);
    }

    #[test]
    fn removing_segments_keeps_the_rest_readable() {
        let dir = tempfile::tempdir().unwrap();
        let opts = LogOptions {
            fsync: false,
            segment_bytes: 150,
        };
        let mut log = TxLog::open(dir.path(), opts).unwrap();
        let mut ends = Vec::new();
        for seq in 1..=4 {
            ends.push(log.append(&entry(seq)).unwrap().end);
        }
        log.remove_segments_before(ends[2]).unwrap();
        let seqs: Vec<u64> = log
            .read_from(LogPosition::default())
            .unwrap()
            .iter()
            .map(|(_, e)| e.seq)
            .collect();
        assert_eq!(seqs, vec![3, 4]);
    }

    /// Writes 40 entries in one segment and flips a bit of frame 11's payload; returns
    /// the frames' start offsets.
    fn forty_with_frame_eleven_damaged(dir: &Path) -> Vec<u64> {
        let mut starts = Vec::new();
        {
            let mut log = TxLog::open(dir, ONE_SEGMENT).unwrap();
            for seq in 1..=40 {
                starts.push(log.append(&entry(seq)).unwrap().start.offset);
            }
        }
        let path = segment_path(dir, 1);
        let mut bytes = fs::read(&path).unwrap();
        bytes[starts[10] as usize + frame::HEADER_LEN + 30] ^= 0x04;
        fs::write(&path, &bytes).unwrap();
        starts
    }

    #[test]
    fn a_salvaging_open_steps_over_damage_and_a_fill_puts_the_frame_back() {
        let dir = tempfile::tempdir().unwrap();
        let starts = forty_with_frame_eleven_damaged(dir.path());
        let path = segment_path(dir.path(), 1);
        let damaged = fs::read(&path).unwrap();

        let log = TxLog::open_salvaging(dir.path(), ONE_SEGMENT).unwrap();
        let expected: Vec<u64> = (1..=40).filter(|&s| s != 11).collect();
        assert_eq!(seqs(&log), expected);
        assert_eq!(log.holes().len(), 1);
        let hole = log.holes()[0].clone();
        assert_eq!((hole.segment, hole.offset), (1, starts[10]));
        assert_eq!(hole.len, starts[11] - starts[10]);
        assert_eq!(hole.file, path);
        assert_eq!(log.hole_places(), vec![10]);
        // Nothing is changed on disk by the open; opened again it is the same.
        assert_eq!(fs::read(&path).unwrap(), damaged);
        drop(log);
        let mut log = TxLog::open_salvaging(dir.path(), ONE_SEGMENT).unwrap();
        assert_eq!(log.holes(), std::slice::from_ref(&hole));
        // Segments holding a hole are never removed.
        log.remove_segments_before(LogPosition {
            segment: 9,
            offset: 0,
        })
        .unwrap();
        assert_eq!(seqs(&log).len(), 39);

        let rewrites = log.fill_holes(&[vec![entry(11)]]).unwrap();
        assert!(log.holes().is_empty());
        assert_eq!(seqs(&log), (1..=40).collect::<Vec<_>>());
        // The frame put back has the length the damaged one had: nothing moved.
        let starts_now: Vec<u64> = log.index().iter().map(|e| e.start.offset).collect();
        assert_eq!(starts_now, starts);
        assert_eq!(fs::read(&rewrites[0]).unwrap(), damaged);
        // The active segment takes appends after the rewrite, and a plain open finds no
        // damage any more.
        log.append(&entry(41)).unwrap();
        drop(log);
        let log = TxLog::open(dir.path(), ONE_SEGMENT).unwrap();
        assert_eq!(seqs(&log), (1..=41).collect::<Vec<_>>());
    }

    #[test]
    fn damage_in_an_earlier_segment_is_a_hole_to_its_end_and_a_longer_fill_fits() {
        let dir = tempfile::tempdir().unwrap();
        let opts = LogOptions {
            fsync: false,
            segment_bytes: 300,
        };
        let mut ends = Vec::new();
        {
            let mut log = TxLog::open(dir.path(), opts).unwrap();
            for seq in 1..=6 {
                ends.push(log.append(&entry(seq)).unwrap());
            }
            assert!(log.segment_count() > 1);
        }
        // The last frame of the first segment damaged: nothing valid follows it there.
        let first = segment_path(dir.path(), 1);
        let in_first: Vec<_> = ends.iter().filter(|e| e.start.segment == 1).collect();
        let last_of_first = in_first.last().unwrap();
        let mut bytes = fs::read(&first).unwrap();
        bytes[last_of_first.start.offset as usize + 50] ^= 0xff;
        fs::write(&first, &bytes).unwrap();
        assert!(matches!(
            TxLog::open(dir.path(), opts),
            Err(StoreError::LogDamaged { .. })
        ));
        let mut log = TxLog::open_salvaging(dir.path(), opts).unwrap();
        let lost = last_of_first.seq;
        assert_eq!(log.holes().len(), 1);
        assert_eq!(
            log.holes()[0].len,
            bytes.len() as u64 - last_of_first.start.offset
        );
        // A longer frame put back moves what follows it in that segment only.
        let mut longer = entry(lost);
        longer.payload.extend_from_slice(&[7; 50]);
        log.fill_holes(&[vec![longer.clone()]]).unwrap();
        assert_eq!(seqs(&log), (1..=6).collect::<Vec<_>>());
        // Later segments did not move.
        assert_eq!(log.index()[5].start, ends[5].start);
        drop(log);
        let log = TxLog::open(dir.path(), opts).unwrap();
        assert_eq!(
            log.read_from(LogPosition::default()).unwrap()[lost as usize - 1].1,
            longer
        );
    }
}
