use crate::error::{Result, StoreError};
use crate::log::LogPosition;
use crate::ntriples::QuadText;
use crate::pattern::QuadPattern;
use crate::register::Register;
use oxigraph::io::{RdfFormat, RdfParser};
use quadmesh_repl::{HlcTime, OriginId, Stamp, VersionVector};
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

/// What a repository knows to be durable in its store, written after the store is
/// flushed: log entries up to `applied` are in the store, and `register` and
/// `version_vector` describe the state at that point. On start, the entries after
/// `applied` are re-applied on top of it.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Checkpoint {
    pub applied: LogPosition,
    pub version_vector: VersionVector,
    pub clock: HlcTime,
    /// Register entries: N-Quads quad, HLC time, origin, present.
    pub register: Vec<(String, u64, u64, bool)>,
    /// Range tombstones: the pattern (JSON), HLC time, origin.
    #[serde(default)]
    pub tombstones: Vec<(String, u64, u64)>,
    /// For each origin, the highest sequence number no longer in the log.
    #[serde(default)]
    pub truncated: VersionVector,
    /// The content digest of the store at `applied` (absent in checkpoints written
    /// before digests were kept: then it is computed on open).
    #[serde(default)]
    pub digest: Option<quadmesh_repl::ContentDigest>,
}

impl Checkpoint {
    pub const FILE: &'static str = "checkpoint.json";

    pub fn load(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(Self::FILE);
        if !path.exists() {
            return Ok(None);
        }
        let bytes = fs::read(&path)?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::Corrupt {
                what: path.display().to_string(),
                detail: e.to_string(),
            })
    }

    /// Writes atomically: a temporary file, synced, renamed over the old one.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let tmp = dir.join(format!("{}.tmp", Self::FILE));
        let mut file = File::create(&tmp)?;
        file.write_all(&serde_json::to_vec(self).expect("a checkpoint serialises"))?;
        file.sync_all()?;
        fs::rename(&tmp, dir.join(Self::FILE))?;
        File::open(dir)?.sync_all()?;
        Ok(())
    }

    pub fn encode_register(register: &Register) -> Vec<(String, u64, u64, bool)> {
        register
            .iter()
            .map(|(quad, last)| {
                (
                    format!("{} .", QuadText(quad.as_ref())),
                    last.stamp.time.0,
                    last.stamp.origin.0,
                    last.present,
                )
            })
            .collect()
    }

    pub fn encode_tombstones(register: &Register) -> Vec<(String, u64, u64)> {
        register
            .tombstones()
            .map(|(pattern, stamp)| (pattern.to_text(), stamp.time.0, stamp.origin.0))
            .collect()
    }

    pub fn decode_register(&self) -> Result<Register> {
        let mut register = Register::new();
        for (pattern, time, origin) in &self.tombstones {
            register.add_tombstone(
                QuadPattern::from_text(pattern)?,
                Stamp::new(HlcTime(*time), OriginId(*origin)),
            );
        }
        for (nquad, time, origin, present) in &self.register {
            let quad = RdfParser::from_format(RdfFormat::NQuads)
                .lenient()
                .for_slice(nquad.as_bytes())
                .next()
                .transpose()
                .map_err(|e| StoreError::Corrupt {
                    what: "checkpoint register".into(),
                    detail: e.to_string(),
                })?
                .ok_or_else(|| StoreError::Corrupt {
                    what: "checkpoint register".into(),
                    detail: "empty quad".into(),
                })?;
            register.record(
                quad,
                Stamp::new(HlcTime(*time), OriginId(*origin)),
                *present,
            );
        }
        Ok(register)
    }
}

/// The high-water mark of a repository's clock readings (`clock.json`): no stamp or
/// heartbeat promise this repository issued is at or above `reserved_ms` (ms since the
/// epoch). It is written, and synced when the log is, before a reading may pass it, so
/// that after any crash the clock restarts above every time the repository issued,
/// whatever the physical clock says.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ClockMark {
    pub reserved_ms: u64,
}

impl ClockMark {
    pub const FILE: &'static str = "clock.json";

    pub fn load(dir: &Path) -> Result<u64> {
        let path = dir.join(Self::FILE);
        if !path.exists() {
            return Ok(0);
        }
        let mark: ClockMark =
            serde_json::from_slice(&fs::read(&path)?).map_err(|e| StoreError::Corrupt {
                what: path.display().to_string(),
                detail: e.to_string(),
            })?;
        Ok(mark.reserved_ms)
    }

    /// Writes atomically (a temporary file renamed over the old one), synced if `sync`.
    pub fn save(dir: &Path, reserved_ms: u64, sync: bool) -> Result<()> {
        let tmp = dir.join(format!("{}.tmp", Self::FILE));
        let mut file = File::create(&tmp)?;
        file.write_all(&serde_json::to_vec(&ClockMark { reserved_ms }).expect("serialises"))?;
        if sync {
            file.sync_all()?;
        }
        fs::rename(&tmp, dir.join(Self::FILE))?;
        if sync {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}
