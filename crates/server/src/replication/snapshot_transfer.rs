//! Packing a snapshot (store checkpoint + replication state) as a tar stream, and
//! unpacking it on the new instance.

use quadmesh_store::SnapshotState;
use std::fs::File;
use std::io::{self, BufReader, BufWriter};
use std::path::{Path, PathBuf};

const STATE_FILE: &str = "snapshot-state.json";
const STORE_DIR: &str = "store";

/// Writes `store_dir` and `state` into a tar file at `archive`.
pub fn pack(store_dir: &Path, state: &SnapshotState, archive: &Path) -> io::Result<()> {
    let mut builder = tar::Builder::new(BufWriter::new(File::create(archive)?));
    builder.append_dir_all(STORE_DIR, store_dir)?;
    let state = serde_json::to_vec(state).expect("a snapshot state serialises");
    let mut header = tar::Header::new_gnu();
    header.set_size(state.len() as u64);
    header.set_mode(0o600);
    header.set_cksum();
    builder.append_data(&mut header, STATE_FILE, &state[..])?;
    builder
        .into_inner()?
        .into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()
}

/// Unpacks an archive made by [`pack`] into `dir`; returns the store directory and the
/// state. Entries that would land outside `dir` are refused by `tar`.
pub fn unpack(archive: &Path, dir: &Path) -> io::Result<(PathBuf, SnapshotState)> {
    tar::Archive::new(BufReader::new(File::open(archive)?)).unpack(dir)?;
    let state = std::fs::read(dir.join(STATE_FILE))?;
    let state: SnapshotState = serde_json::from_slice(&state).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad snapshot state: {e}"),
        )
    })?;
    let store = dir.join(STORE_DIR);
    if !store.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the snapshot has no store",
        ));
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
