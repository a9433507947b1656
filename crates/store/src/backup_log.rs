//! What point-in-time backups need of a repository: the log kept since the last backup
//! (so that an incremental backup can take it), and a backup's log replayed into a
//! restored repository.

use crate::error::{Result, StoreError};
use crate::repository::{Applied, Repository};
use quadmesh_repl::{Entry, EntryKind, HlcTime, VersionVector};
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::Path;

/// How long a backup keeps the log from being truncated: an incremental backup taken
/// later than this after the previous one is refused (take a full one).
pub const BACKUP_LOG_KEPT_MS: u64 = 7 * 24 * 3600 * 1000;

/// The cut of the last backup taken, kept in `backup-pin.json`.
///
/// Rules it keeps: while in force (younger than [`BACKUP_LOG_KEPT_MS`] by this
/// repository's clock), no log entry the cut lacks is truncated; each backup replaces
/// it; it never holds back anything else (the register, the store).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupPin {
    pub vector: VersionVector,
    /// When the backup was taken (this repository's clock).
    pub taken_at: HlcTime,
}

impl BackupPin {
    const FILE: &'static str = "backup-pin.json";

    pub(crate) fn load(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(Self::FILE);
        if !path.exists() {
            return Ok(None);
        }
        serde_json::from_slice(&fs::read(&path)?)
            .map(Some)
            .map_err(|e| StoreError::Corrupt {
                what: path.display().to_string(),
                detail: e.to_string(),
            })
    }

    fn save(&self, dir: &Path) -> Result<()> {
        let tmp = dir.join(format!("{}.tmp", Self::FILE));
        let file = fs::File::create(&tmp)?;
        serde_json::to_writer(&file, self).expect("a pin serialises");
        file.sync_all()?;
        fs::rename(&tmp, dir.join(Self::FILE))?;
        Ok(())
    }

    /// Forgets the pin (the log since the last backup is no longer whole): the next
    /// incremental backup is refused, a full one is needed.
    pub(crate) fn remove(dir: &Path) -> Result<()> {
        match fs::remove_file(dir.join(Self::FILE)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// The vector to keep the log for, unless the pin is too old at `now`.
    pub(crate) fn in_force(&self, now: HlcTime) -> Option<&VersionVector> {
        (now.millis().saturating_sub(self.taken_at.millis()) <= BACKUP_LOG_KEPT_MS)
            .then_some(&self.vector)
    }
}

impl Repository {
    /// Records that a backup was taken at `vector`: the log from there on is kept (for
    /// [`BACKUP_LOG_KEPT_MS`]) so that the next backup can be incremental.
    pub fn pin_log_for_backup(&self, vector: VersionVector) -> Result<()> {
        let mut writer = self.lock_writer();
        let pin = BackupPin {
            vector,
            taken_at: self.clock().last(),
        };
        pin.save(self.dir())?;
        writer.durable.backup_pin = Some(pin);
        Ok(())
    }

    /// Replays one transaction of a backup's log into this (restored, standalone)
    /// repository, with its own stamp, through the register like a peer's transaction.
    /// Configuration entries of the source's cluster are not taken (the restored
    /// repository is in no cluster); their sequence numbers are skipped.
    pub fn apply_archived(&self, entry: &Entry) -> Result<Applied> {
        if entry.kind != EntryKind::Data {
            return Ok(Applied::Duplicate);
        }
        self.apply_logged(entry, true)
    }
}
