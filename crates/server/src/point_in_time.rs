//! Point-in-time backups: incremental archives (the log a previous backup lacks, up to
//! one cut) and restores that replay a chain — one full backup, then incrementals, each
//! following the one before — up to a time.
//!
//! An incremental archive is a tar like a full one: `increment.json` (the repository,
//! the cut it starts from, the cut it ends at, the clock at that cut), `log` (the
//! transactions as log frames, in log order) and, last, the SHA-256 of each entry.
//!
//! Rules it keeps:
//! - an incremental backup holds every transaction its end cut has and its start cut
//!   lacks, and nothing else (counted); it is refused (nothing written) when the log no
//!   longer holds them all;
//! - a chain is checked whole (every checksum, every link: each incremental starts
//!   exactly where the archive before it ends) before anything is created; a broken
//!   chain is refused with the missing link named;
//! - a restore up to time T takes the full backup (refused if it may hold a
//!   transaction stamped after T) and then every transaction of the chain stamped at or
//!   before T, with its own stamp, through the register; nothing after T.

use crate::error::ApiError;
use quadmesh_cluster::snapshot_transfer::{
    append_bytes, hex, invalid, sha256_of, unpack, CHECKSUMS_FILE,
};
use quadmesh_repl::frame::{decode, Decoded};
use quadmesh_repl::{HlcTime, VersionVector};
use quadmesh_store::{Applied, Repository, SnapshotState};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

const INCREMENT_FILE: &str = "increment.json";
const LOG_FILE: &str = "log";
/// Log entries read at once while an incremental backup is written.
const BATCH: usize = 1000;

/// What an incremental archive covers.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IncrementManifest {
    pub repository: String,
    /// The cut of the backup it follows.
    pub base: VersionVector,
    /// Its own cut.
    pub vector: VersionVector,
    /// The clock at its cut: every transaction it holds is stamped before.
    pub clock: HlcTime,
    pub transactions: u64,
}

/// Writes the transactions `base` lacks, up to a cut taken now, into `archive`, and
/// pins the log at that cut for the next one. Blocking.
pub fn pack_increment(
    repository: &Repository,
    base: &VersionVector,
    archive: &Path,
) -> Result<IncrementManifest, ApiError> {
    let quadmesh_store::HeartbeatPoint {
        clock,
        version_vector: vector,
        end,
        ..
    } = repository.heartbeat_point()?;
    if let Some((origin, seq)) = base.iter().find(|(o, s)| vector.get(*o) < *s) {
        return Err(ApiError::BadRequest(format!(
            "the previous backup is not one of this repository, or is newer than it: it holds transaction {seq} of origin {origin}, which this repository lacks"
        )));
    }
    if repository.cannot_serve(base).is_some() {
        return Err(ApiError::Conflict(format!(
            "the log since the previous backup is no longer kept here (a backup keeps it for {} days, or until the next backup): take a full backup",
            quadmesh_store::BACKUP_LOG_KEPT_MS / 86_400_000
        )));
    }
    let internal = |e: io::Error| ApiError::Internal(format!("cannot write the backup: {e}"));
    let dir = archive
        .parent()
        .expect("the archive is in a scratch directory");
    let log_path = dir.join(LOG_FILE);
    let mut log = BufWriter::new(File::create(&log_path).map_err(internal)?);
    let mut hasher = Sha256::new();
    let mut transactions = 0u64;
    let mut from = quadmesh_store::LogPosition::default();
    while from < end {
        let (entries, next) = repository.entries_since(from, BATCH, |origin, seq| {
            !base.covers(origin, seq) && vector.covers(origin, seq)
        })?;
        for entry in &entries {
            let frame = entry.encode();
            hasher.update(&frame);
            log.write_all(&frame).map_err(internal)?;
            transactions += 1;
        }
        if next <= from {
            break;
        }
        from = next;
    }
    log.into_inner()
        .map_err(|e| internal(e.into_error()))?
        .sync_all()
        .map_err(internal)?;
    // Every transaction between the two cuts must have been there: the log may have
    // been truncated meanwhile, or never held them (a repository installed from a
    // snapshot after the previous backup).
    let expected: u64 = vector
        .iter()
        .map(|(origin, seq)| seq.saturating_sub(base.get(origin)))
        .sum();
    if transactions != expected {
        let _ = std::fs::remove_file(&log_path);
        return Err(ApiError::Conflict(format!(
            "this repository's log no longer holds {} of the {expected} transactions since the previous backup: take a full backup",
            expected.saturating_sub(transactions)
        )));
    }
    let manifest = IncrementManifest {
        repository: repository.name().to_owned(),
        base: base.clone(),
        vector: vector.clone(),
        clock,
        transactions,
    };
    let manifest_bytes = serde_json::to_vec(&manifest).expect("a manifest serialises");
    let mut checksums = BTreeMap::new();
    checksums.insert(LOG_FILE.to_owned(), hex(&hasher.finalize()));
    checksums.insert(
        INCREMENT_FILE.to_owned(),
        hex(&Sha256::digest(&manifest_bytes)),
    );
    let write = || -> io::Result<()> {
        let mut builder = tar::Builder::new(BufWriter::new(File::create(archive)?));
        append_bytes(&mut builder, INCREMENT_FILE, &manifest_bytes)?;
        let mut header = tar::Header::new_gnu();
        header.set_size(std::fs::metadata(&log_path)?.len());
        header.set_mode(0o600);
        header.set_cksum();
        builder.append_data(
            &mut header,
            LOG_FILE,
            BufReader::new(File::open(&log_path)?),
        )?;
        let checksums = serde_json::to_vec(&checksums).expect("checksums serialise");
        append_bytes(&mut builder, CHECKSUMS_FILE, &checksums)?;
        builder
            .into_inner()?
            .into_inner()
            .map_err(|e| e.into_error())?
            .sync_all()
    };
    write().map_err(internal)?;
    std::fs::remove_file(&log_path).map_err(internal)?;
    repository.pin_log_for_backup(vector)?;
    Ok(manifest)
}

/// Unpacks and checks an incremental archive into `dir`: its manifest and log file.
fn unpack_increment(archive: &Path, dir: &Path) -> io::Result<(IncrementManifest, PathBuf)> {
    tar::Archive::new(BufReader::new(File::open(archive)?)).unpack(dir)?;
    let checksums: BTreeMap<String, String> = std::fs::read(dir.join(CHECKSUMS_FILE))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| invalid("it has no readable checksums: it is truncated".into()))?;
    for name in [INCREMENT_FILE, LOG_FILE] {
        let path = dir.join(name);
        if !path.is_file() {
            return Err(invalid(format!("it lacks {name}: it is truncated")));
        }
        if checksums.get(name) != Some(&sha256_of(&path)?) {
            return Err(invalid(format!(
                "{name} does not match its checksum: it is damaged"
            )));
        }
    }
    let manifest = serde_json::from_slice(&std::fs::read(dir.join(INCREMENT_FILE))?)
        .map_err(|e| invalid(format!("its manifest is unreadable: {e}")))?;
    Ok((manifest, dir.join(LOG_FILE)))
}

/// A checked chain: the full backup's store and state, then each increment's manifest
/// and log, in order.
pub struct Chain {
    pub store: PathBuf,
    pub state: SnapshotState,
    pub increments: Vec<(IncrementManifest, PathBuf)>,
}

fn describe(vector: &VersionVector) -> String {
    serde_json::to_string(vector).unwrap_or_default()
}

/// Unpacks a chain (a tar whose entries `0`, `1`, … are a full backup and the
/// incrementals after it) into `dir`, checking every archive and every link.
pub fn unpack_chain(chain: &Path, dir: &Path) -> Result<Chain, ApiError> {
    let bad = |message: String| ApiError::BadRequest(message);
    let outer = dir.join("archives");
    tar::Archive::new(BufReader::new(
        File::open(chain).map_err(|e| ApiError::Internal(e.to_string()))?,
    ))
    .unpack(&outer)
    .map_err(|e| bad(format!("invalid backup chain: {e}")))?;
    let mut archives = Vec::new();
    for index in 0.. {
        let path = outer.join(index.to_string());
        if !path.is_file() {
            break;
        }
        archives.push(path);
    }
    if archives.is_empty() {
        return Err(bad("the backup chain holds no archive".into()));
    }
    let (store, state) = unpack(&archives[0], &dir.join("full")).map_err(|e| {
        bad(format!(
            "archive 1 is not a usable full backup ({e}): a chain starts with one"
        ))
    })?;
    let mut ends_at = state.version_vector.clone();
    let mut increments = Vec::new();
    for (index, archive) in archives.iter().enumerate().skip(1) {
        let (manifest, log) = unpack_increment(archive, &dir.join(format!("increment-{index}")))
            .map_err(|e| {
                bad(format!(
                    "archive {} is not a usable incremental backup: {e}",
                    index + 1
                ))
            })?;
        if manifest.base != ends_at {
            return Err(bad(format!(
                "the backup chain is broken: archive {} starts from {}, but the archive before it ends at {}: an incremental backup between them is missing (or they are out of order); nothing was restored",
                index + 1,
                describe(&manifest.base),
                describe(&ends_at)
            )));
        }
        ends_at = manifest.vector.clone();
        increments.push((manifest, log));
    }
    Ok(Chain {
        store,
        state,
        increments,
    })
}

/// What a replay did.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Replayed {
    /// Transactions taken from the incrementals.
    pub transactions: u64,
    /// Transactions left out: stamped after the time asked for.
    pub after_until: u64,
    /// The clock at the chain's last cut (ms since the epoch): the chain holds nothing
    /// stamped later.
    pub chain_ends_ms: u64,
}

/// Replays the increments of `chain` into `repository` (just installed from the full
/// backup), taking only transactions stamped at or before `until_ms`. Blocking.
pub fn replay(
    repository: &Repository,
    increments: &[(IncrementManifest, PathBuf)],
    until_ms: Option<u64>,
    mut replayed: Replayed,
) -> Result<Replayed, ApiError> {
    for (manifest, log) in increments {
        replayed.chain_ends_ms = manifest.clock.millis();
        let mut reader =
            BufReader::new(File::open(log).map_err(|e| ApiError::Internal(e.to_string()))?);
        let mut buffer = Vec::new();
        let mut eof = false;
        loop {
            match decode(&buffer) {
                Ok(Decoded::Frame(entry, used)) => {
                    buffer.drain(..used);
                    if until_ms.is_some_and(|until| entry.time.millis() > until) {
                        replayed.after_until += 1;
                        continue;
                    }
                    if repository.apply_archived(&entry)? == Applied::New {
                        replayed.transactions += 1;
                    }
                }
                Ok(Decoded::Incomplete(needed)) if !eof => {
                    let want = needed.saturating_sub(buffer.len()).max(1 << 16);
                    let start = buffer.len();
                    buffer.resize(start + want, 0);
                    let n = reader
                        .read(&mut buffer[start..])
                        .map_err(|e| ApiError::Internal(e.to_string()))?;
                    buffer.truncate(start + n);
                    eof = n == 0;
                }
                Ok(Decoded::Incomplete(_)) if buffer.is_empty() => break,
                Ok(Decoded::Incomplete(_)) | Err(_) => {
                    // Its checksum matched: this is not damage but a bad archive.
                    return Err(ApiError::BadRequest(
                        "an incremental backup's log holds a broken frame".into(),
                    ));
                }
            }
        }
    }
    Ok(replayed)
}
