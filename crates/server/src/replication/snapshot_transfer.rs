//! Packing a snapshot (store checkpoint + replication state) as a tar stream, and
//! unpacking it on the new instance.

use quadmesh_store::SnapshotState;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read};
use std::path::{Path, PathBuf};

const STATE_FILE: &str = "snapshot-state.json";
const STORE_DIR: &str = "store";
/// The last entry: the SHA-256 of every other entry, so that a truncated or damaged
/// archive (a backup on a bad disk, a transfer cut short) is refused, never installed.
pub(crate) const CHECKSUMS_FILE: &str = "checksums.json";

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads through `inner`, hashing what it reads.
pub(crate) struct Hashing<R> {
    pub(crate) inner: R,
    pub(crate) hasher: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

pub(crate) fn sha256_of(path: &Path) -> io::Result<String> {
    let mut reader = Hashing {
        inner: BufReader::new(File::open(path)?),
        hasher: Sha256::new(),
    };
    io::copy(&mut reader, &mut io::sink())?;
    Ok(hex(&reader.hasher.finalize()))
}

pub(crate) fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// Writes `store_dir` and `state` into a tar file at `archive`, with the checksum of
/// every entry last.
pub fn pack(store_dir: &Path, state: &SnapshotState, archive: &Path) -> io::Result<()> {
    let mut builder = tar::Builder::new(BufWriter::new(File::create(archive)?));
    let mut checksums = BTreeMap::new();
    let mut files: Vec<_> = std::fs::read_dir(store_dir)?.collect::<io::Result<_>>()?;
    files.sort_by_key(|e| e.file_name());
    for file in files {
        if !file.file_type()?.is_file() {
            return Err(invalid(format!(
                "unexpected entry in a store checkpoint: {}",
                file.path().display()
            )));
        }
        let name = format!("{STORE_DIR}/{}", file.file_name().to_string_lossy());
        let mut header = tar::Header::new_gnu();
        header.set_size(file.metadata()?.len());
        header.set_mode(0o600);
        header.set_cksum();
        let mut reader = Hashing {
            inner: BufReader::new(File::open(file.path())?),
            hasher: Sha256::new(),
        };
        builder.append_data(&mut header, &name, &mut reader)?;
        checksums.insert(name, hex(&reader.hasher.finalize()));
    }
    let state = serde_json::to_vec(state).expect("a snapshot state serialises");
    checksums.insert(STATE_FILE.to_owned(), hex(&Sha256::digest(&state)));
    append_bytes(&mut builder, STATE_FILE, &state)?;
    let checksums = serde_json::to_vec(&checksums).expect("checksums serialise");
    append_bytes(&mut builder, CHECKSUMS_FILE, &checksums)?;
    builder
        .into_inner()?
        .into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()
}

pub(crate) fn append_bytes(
    builder: &mut tar::Builder<BufWriter<File>>,
    name: &str,
    bytes: &[u8],
) -> io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o600);
    header.set_cksum();
    builder.append_data(&mut header, name, bytes)
}

/// Unpacks an archive made by [`pack`] into `dir`; returns the store directory and the
/// state. Entries that would land outside `dir` are refused by `tar`; an archive whose
/// entries do not match its checksums, or that lacks them (cut short), is refused.
pub fn unpack(archive: &Path, dir: &Path) -> io::Result<(PathBuf, SnapshotState)> {
    tar::Archive::new(BufReader::new(File::open(archive)?)).unpack(dir)?;
    let checksums = std::fs::read(dir.join(CHECKSUMS_FILE)).map_err(|_| {
        invalid("the archive has no checksums: it is truncated or not a quadmesh snapshot".into())
    })?;
    let checksums: BTreeMap<String, String> = serde_json::from_slice(&checksums)
        .map_err(|e| invalid(format!("the archive's checksums are unreadable: {e}")))?;
    let store = dir.join(STORE_DIR);
    let mut present = vec![STATE_FILE.to_owned()];
    if store.is_dir() {
        for file in std::fs::read_dir(&store)? {
            present.push(format!(
                "{STORE_DIR}/{}",
                file?.file_name().to_string_lossy()
            ));
        }
    }
    for name in &present {
        if !checksums.contains_key(name) {
            return Err(invalid(format!(
                "the archive holds {name}, which its checksums do not list"
            )));
        }
    }
    for (name, expected) in &checksums {
        let path = dir.join(name);
        if !path.is_file() {
            return Err(invalid(format!(
                "the archive lacks {name}: it is truncated"
            )));
        }
        if sha256_of(&path)? != *expected {
            return Err(invalid(format!(
                "{name} does not match its checksum: the archive is damaged"
            )));
        }
    }
    let state = std::fs::read(dir.join(STATE_FILE))?;
    let state: SnapshotState =
        serde_json::from_slice(&state).map_err(|e| invalid(format!("bad snapshot state: {e}")))?;
    if !store.is_dir() {
        return Err(invalid("the snapshot has no store".into()));
    }
    Ok((store, state))
}

/// A snapshot's bytes stop arriving for this long: the transfer is given up.
const SILENT_FOR: std::time::Duration = std::time::Duration::from_secs(10);

/// Writes the body of `response` (a snapshot) into a new file at `archive`, synced.
pub async fn download(response: reqwest::Response, archive: &Path) -> io::Result<()> {
    use futures::StreamExt;
    use tokio::io::AsyncWriteExt;
    let mut file = tokio::fs::File::create(archive).await?;
    let mut body = response.bytes_stream();
    while let Some(chunk) = tokio::time::timeout(SILENT_FOR, body.next())
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the snapshot stopped arriving"))?
    {
        file.write_all(&chunk.map_err(io::Error::other)?).await?;
    }
    file.sync_all().await
}
