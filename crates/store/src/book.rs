//! Books: small keyed records that replicate with a repository but are not quads
//! (namespaces; users, roles and grants; settings and attribute definitions). Each key holds its last write — a value, or
//! none for a deletion — with the stamp of that write; a write is taken only if its
//! stamp is newer than the one kept, exactly as the register decides quads.
//!
//! Changes travel as log entries of kind [`EntryKind::Meta`](quadmesh_repl::EntryKind):
//! a [`MetaChange`] naming the book and the records, each with its own stamp.

use crate::error::{Result, StoreError};
use quadmesh_repl::{HlcTime, OriginId, Stamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

/// Which book a change is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BookKind {
    /// The repository's namespace prefixes (value: the namespace IRI as a string).
    Namespaces,
    /// Users, roles and grants of the deployment (see the server's `access` module).
    Access,
    /// The repository's settings and AllegroGraph metadata that are not quads: keys
    /// `setting/NAME` (e.g. `setting/defaultDatasetBehavior`) and `attribute/NAME`
    /// (attribute definitions), values JSON.
    Metadata,
}

impl BookKind {
    fn file(self) -> &'static str {
        match self {
            BookKind::Namespaces => "namespaces-book.json",
            BookKind::Access => "access-book.json",
            BookKind::Metadata => "metadata-book.json",
        }
    }
}

/// The last write of one key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookRecord {
    /// `None`: deleted (kept, so that an older write of the key is refused).
    pub value: Option<serde_json::Value>,
    pub time: HlcTime,
    pub origin: OriginId,
}

impl BookRecord {
    pub fn new(value: Option<serde_json::Value>, stamp: Stamp) -> Self {
        BookRecord {
            value,
            time: stamp.time,
            origin: stamp.origin,
        }
    }

    pub fn stamp(&self) -> Stamp {
        Stamp::new(self.time, self.origin)
    }
}

/// One logged change of a book: records with their stamps.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaChange {
    pub book: BookKind,
    pub records: BTreeMap<String, BookRecord>,
}

impl MetaChange {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a book change serialises")
    }

    pub fn decode(payload: &[u8]) -> Result<Self> {
        serde_json::from_slice(payload).map_err(|e| StoreError::Corrupt {
            what: "book change entry".into(),
            detail: e.to_string(),
        })
    }
}

#[derive(Serialize, Deserialize)]
struct BookFile {
    records: BTreeMap<String, BookRecord>,
}

/// A last-writer-wins map kept in a file.
///
/// Rules it keeps:
/// - a record replaces the kept one only if its stamp is newer (a missing key is
///   oldest): merging is commutative, idempotent and associative, so instances that
///   merged the same records hold the same book whatever the order;
/// - a deletion is kept as a record without value, so an older write arriving later
///   does not bring the key back;
/// - the file is written (atomically, synced when asked) before the change is taken
///   in memory: a failed write leaves the book as it was.
pub struct Book {
    path: PathBuf,
    sync: bool,
    records: RwLock<BTreeMap<String, BookRecord>>,
}

impl Book {
    /// Opens the book of `kind` in `dir`; `initial` gives its records when it has no
    /// file yet.
    pub fn open(
        dir: &Path,
        kind: BookKind,
        sync: bool,
        initial: impl FnOnce() -> Result<BTreeMap<String, BookRecord>>,
    ) -> Result<Self> {
        let path = dir.join(kind.file());
        let records = if path.exists() {
            let file: BookFile =
                serde_json::from_slice(&fs::read(&path)?).map_err(|e| StoreError::Corrupt {
                    what: path.display().to_string(),
                    detail: e.to_string(),
                })?;
            file.records
        } else {
            initial()?
        };
        Ok(Book {
            path,
            sync,
            records: RwLock::new(records),
        })
    }

    /// Writes `records` as the whole book of `kind` in `dir` (installing a snapshot).
    pub fn install(
        dir: &Path,
        kind: BookKind,
        records: BTreeMap<String, BookRecord>,
    ) -> Result<()> {
        write_file(&dir.join(kind.file()), &BookFile { records }, true)
    }

    /// Every record, deletions included.
    pub fn records(&self) -> BTreeMap<String, BookRecord> {
        self.records
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The value of `key`, unless it was never written or was deleted.
    pub fn get(&self, key: &str) -> Option<serde_json::Value> {
        self.records
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .and_then(|r| r.value.clone())
    }

    /// The keys and values present (not deleted), each passed through `keep`.
    pub fn present<T>(
        &self,
        mut keep: impl FnMut(&str, &serde_json::Value) -> Option<T>,
    ) -> Vec<T> {
        self.records
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter_map(|(k, r)| r.value.as_ref().and_then(|v| keep(k, v)))
            .collect()
    }

    /// The keys starting with `prefix` that are present (not deleted), without the
    /// prefix; a range read, not a scan of the whole book.
    pub fn present_under(&self, prefix: &str) -> Vec<String> {
        self.records
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter(|(_, r)| r.value.is_some())
            .map(|(k, _)| k[prefix.len()..].to_owned())
            .collect()
    }

    /// Takes each record newer than the kept one; returns how many were taken.
    pub fn merge(&self, incoming: &BTreeMap<String, BookRecord>) -> Result<usize> {
        let mut records = self.records.write().unwrap_or_else(|e| e.into_inner());
        let mut next = None::<BTreeMap<String, BookRecord>>;
        let mut taken = 0;
        for (key, record) in incoming {
            let newer = records
                .get(key)
                .is_none_or(|kept| record.stamp() > kept.stamp());
            if newer {
                next.get_or_insert_with(|| records.clone())
                    .insert(key.clone(), record.clone());
                taken += 1;
            }
        }
        if let Some(next) = next {
            let file = BookFile { records: next };
            write_file(&self.path, &file, self.sync)?;
            *records = file.records;
        }
        Ok(taken)
    }
}

fn write_file(path: &Path, book: &BookFile, sync: bool) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    let mut file = File::create(&tmp)?;
    file.write_all(&serde_json::to_vec(book).expect("a book serialises"))?;
    if sync {
        file.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if sync {
        if let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(value: Option<&str>, millis: u64, origin: u64) -> BookRecord {
        BookRecord {
            value: value.map(|v| serde_json::Value::String(v.into())),
            time: HlcTime::from_parts(millis, 0),
            origin: OriginId(origin),
        }
    }

    #[test]
    fn the_newest_stamp_wins_in_any_order() {
        let writes = [
            ("ex", record(Some("a"), 10, 1)),
            ("ex", record(None, 12, 2)),
            ("ex", record(Some("b"), 11, 3)),
            ("ex", record(Some("c"), 12, 1)),
        ];
        let mut results = Vec::new();
        for rotation in 0..writes.len() {
            let dir = tempfile::tempdir().unwrap();
            let book = Book::open(dir.path(), BookKind::Namespaces, false, || {
                Ok(BTreeMap::new())
            })
            .unwrap();
            for i in 0..writes.len() {
                let (key, record) = &writes[(i + rotation) % writes.len()];
                book.merge(&BTreeMap::from([(key.to_string(), record.clone())]))
                    .unwrap();
            }
            results.push(book.records());
        }
        assert!(results.windows(2).all(|w| w[0] == w[1]));
        // (12, origin 2) is the newest: the deletion holds against the older sets.
        assert_eq!(results[0]["ex"], record(None, 12, 2));
    }

    #[test]
    fn present_under_reads_one_prefix_without_deletions() {
        let dir = tempfile::tempdir().unwrap();
        let book = Book::open(dir.path(), BookKind::Access, false, || Ok(BTreeMap::new())).unwrap();
        book.merge(&BTreeMap::from([
            ("a\tx".to_string(), record(Some("1"), 1, 1)),
            ("a\ty".to_string(), record(None, 1, 1)),
            ("a\tz\tw".to_string(), record(Some("1"), 1, 1)),
            ("ab\tx".to_string(), record(Some("1"), 1, 1)),
            ("b".to_string(), record(Some("1"), 1, 1)),
        ]))
        .unwrap();
        assert_eq!(book.present_under("a\t"), ["x", "z\tw"]);
    }

    #[test]
    fn a_book_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let open =
            || Book::open(dir.path(), BookKind::Access, true, || Ok(BTreeMap::new())).unwrap();
        let book = open();
        let taken = book
            .merge(&BTreeMap::from([(
                "k".to_string(),
                record(Some("v"), 5, 1),
            )]))
            .unwrap();
        assert_eq!(taken, 1);
        assert_eq!(open().get("k"), Some(serde_json::Value::String("v".into())));
        // The same record again changes nothing.
        let again = open()
            .merge(&BTreeMap::from([(
                "k".to_string(),
                record(Some("v"), 5, 1),
            )]))
            .unwrap();
        assert_eq!(again, 0);
    }
}
