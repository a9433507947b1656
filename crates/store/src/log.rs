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
/// - a torn frame at the end of the last segment (a crash mid-append) is cut off on
///   open; damage anywhere else is reported, never skipped;
/// - only whole segments are removed, oldest first.
pub struct TxLog {
    dir: PathBuf,
    options: LogOptions,
    /// Ids of the segments on disk, ascending; the last is the one appended to.
    segments: Vec<u64>,
    active: File,
    active_len: u64,
    index: Vec<IndexedEntry>,
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:016}.log"))
}

impl TxLog {
    pub fn open(dir: &Path, options: LogOptions) -> Result<Self> {
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
        for &id in &segments {
            let path = segment_path(dir, id);
            let mut bytes = Vec::new();
            if path.exists() {
                File::open(&path)?.read_to_end(&mut bytes)?;
            }
            let valid = scan_segment(id, &bytes, &mut index);
            if valid < bytes.len() {
                if id != last {
                    return Err(StoreError::Corrupt {
                        what: format!("log segment {}", path.display()),
                        detail: format!("invalid frame at offset {valid}"),
                    });
                }
                tracing::warn!(segment = %path.display(), offset = valid, dropped = bytes.len() - valid,
                    "cutting a torn frame off the end of the replication log");
                let f = OpenOptions::new().write(true).open(&path)?;
                f.set_len(valid as u64)?;
                f.sync_all()?;
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
        })
    }

    /// Appends one entry durably and returns where it starts and ends.
    pub fn append(&mut self, entry: &Entry) -> Result<IndexedEntry> {
        if self.active_len >= self.options.segment_bytes {
            self.rotate()?;
        }
        let bytes = entry.encode();
        self.active.write_all(&bytes)?;
        if self.options.fsync {
            self.active.sync_data()?;
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

    fn rotate(&mut self) -> Result<()> {
        let next = self.segments.last().expect("an active segment") + 1;
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
                        what: format!("log segment {}", indexed.start.segment),
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

/// Indexes the valid frames of one segment and returns the length of its valid prefix.
fn scan_segment(id: u64, bytes: &[u8], index: &mut Vec<IndexedEntry>) -> usize {
    let mut offset = 0;
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
            Ok(Decoded::Incomplete(_)) | Err(_) => break,
        }
    }
    offset
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
            Err(StoreError::Corrupt { .. })
        ));
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
}
