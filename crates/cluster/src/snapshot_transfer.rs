//! Packing a snapshot (store checkpoint + replication state) as a tar stream, and
//! unpacking it on the new instance: both as the bytes go, so that growing copies the
//! store's files once, straight into place, at about the speed of a file copy.

use bytes::Bytes;
use quadmesh_store::SnapshotState;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;

const STATE_FILE: &str = "snapshot-state.json";
const STORE_DIR: &str = "store";
/// The last entry: the SHA-256 of every other entry, so that a truncated or damaged
/// archive (a backup on a bad disk, a transfer cut short) is refused, never installed.
pub const CHECKSUMS_FILE: &str = "checksums.json";

pub fn hex(bytes: &[u8]) -> String {
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

pub fn sha256_of(path: &Path) -> io::Result<String> {
    let mut reader = Hashing {
        inner: BufReader::new(File::open(path)?),
        hasher: Sha256::new(),
    };
    io::copy(&mut reader, &mut io::sink())?;
    Ok(hex(&reader.hasher.finalize()))
}

pub fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// Writes the archive of `store_dir` and `state` to the file `archive`, synced (a
/// backup kept on disk; grows and repairs stream it with [`pack_stream`]).
pub fn pack(store_dir: &Path, state: &SnapshotState, archive: &Path) -> io::Result<()> {
    let out = pack_into(store_dir, state, io::BufWriter::new(File::create(archive)?))?;
    out.into_inner().map_err(|e| e.into_error())?.sync_all()
}

/// Writes the archive of `store_dir` and `state` into `out` as it reads the files (a
/// tar stream, the checksum of every entry last); returns `out`.
pub fn pack_into<W: Write>(store_dir: &Path, state: &SnapshotState, out: W) -> io::Result<W> {
    let mut builder = tar::Builder::new(out);
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
            // Large reads: a store file is hundreds of MiB.
            inner: BufReader::with_capacity(COPY_PIECE, File::open(file.path())?),
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
    builder.into_inner()
}

pub fn append_bytes<W: Write>(
    builder: &mut tar::Builder<W>,
    name: &str,
    bytes: &[u8],
) -> io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o600);
    header.set_cksum();
    builder.append_data(&mut header, name, bytes)
}

/// The most a checksums entry may hold: it lists a few hundred files at most.
const CHECKSUMS_LIMIT: u64 = 16 << 20;

/// Reads an archive made by [`pack_into`] from `input` as it arrives, writing each
/// store file straight into place under `dir` (no archive file in between) and hashing
/// it on the way; returns the store directory and the state.
///
/// Rules it keeps:
/// - nothing is returned (so nothing installed) unless every entry matched its
///   checksum, every listed entry arrived and nothing unlisted did: a truncated or
///   damaged archive is refused;
/// - only `store/<file>`, the state and the checksums are accepted, as plain files:
///   no entry can land outside `dir`;
/// - the store's files are synced before it returns: a store that is installed is on
///   disk.
pub fn unpack_from(input: impl Read, dir: &Path) -> io::Result<(PathBuf, SnapshotState)> {
    let store = dir.join(STORE_DIR);
    std::fs::create_dir_all(&store)?;
    let mut received = BTreeMap::new();
    let mut syncer = BackgroundSync::start();
    let mut state = None;
    let mut checksums: Option<BTreeMap<String, String>> = None;
    let mut archive = tar::Archive::new(input);
    for entry in archive.entries()? {
        let entry = entry?;
        if checksums.is_some() {
            return Err(invalid(
                "the archive has entries after its checksums".into(),
            ));
        }
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        if entry.header().entry_type() != tar::EntryType::Regular {
            return Err(invalid(format!("{name} is not a plain file")));
        }
        let mut reader = Hashing {
            inner: entry,
            hasher: Sha256::new(),
        };
        if name == CHECKSUMS_FILE {
            let mut bytes = Vec::new();
            (&mut reader)
                .take(CHECKSUMS_LIMIT)
                .read_to_end(&mut bytes)?;
            checksums =
                Some(serde_json::from_slice(&bytes).map_err(|e| {
                    invalid(format!("the archive's checksums are unreadable: {e}"))
                })?);
            continue;
        }
        if name == STATE_FILE {
            let mut bytes = Vec::new();
            reader.read_to_end(&mut bytes)?;
            state = Some(bytes);
        } else {
            let file_name = name
                .strip_prefix(&format!("{STORE_DIR}/"))
                .filter(|f| {
                    !f.is_empty() && *f != "." && *f != ".." && !f.contains(['/', '\\', '\0'])
                })
                .ok_or_else(|| invalid(format!("the archive holds an unexpected entry {name}")))?;
            if received.contains_key(&name) {
                return Err(invalid(format!("the archive holds {name} twice")));
            }
            let path = store.join(file_name);
            let mut file = File::create(&path)?;
            copy_in_large_pieces(&mut reader, &mut file)?;
            syncer.sync(file)?;
        }
        received.insert(name, hex(&reader.hasher.finalize()));
    }
    let checksums = checksums.ok_or_else(|| {
        invalid("the archive has no checksums: it is truncated or not a quadmesh snapshot".into())
    })?;
    for name in received.keys() {
        if !checksums.contains_key(name) {
            return Err(invalid(format!(
                "the archive holds {name}, which its checksums do not list"
            )));
        }
    }
    for (name, expected) in &checksums {
        match received.get(name) {
            None => {
                return Err(invalid(format!(
                    "the archive lacks {name}: it is truncated"
                )))
            }
            Some(actual) if actual != expected => {
                return Err(invalid(format!(
                    "{name} does not match its checksum: the archive is damaged"
                )))
            }
            Some(_) => {}
        }
    }
    let state = state.ok_or_else(|| invalid("the snapshot has no state".into()))?;
    let state: SnapshotState =
        serde_json::from_slice(&state).map_err(|e| invalid(format!("bad snapshot state: {e}")))?;
    syncer.finish()?;
    File::open(&store)?.sync_all()?;
    Ok((store, state))
}

/// Pieces a store file is written in: a few large writes instead of many 8 KiB ones.
const COPY_PIECE: usize = 1 << 20;

fn copy_in_large_pieces(from: &mut impl Read, to: &mut File) -> io::Result<()> {
    let mut piece = vec![0; COPY_PIECE];
    loop {
        let n = match from.read(&mut piece) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&piece[..n])?;
    }
}

/// Syncs received files on a thread of its own, each as soon as it is complete, so the
/// disk writes one file back while the next arrives (a grow of 1.2 GB otherwise ends
/// with one long wait for all of it).
///
/// Rules it keeps:
/// - [`BackgroundSync::finish`] returns only once every file handed over is synced,
///   and fails if any sync failed: nothing is installed unsynced;
/// - a sync failure is reported at the next hand-over too, so a failing disk stops
///   the transfer early.
struct BackgroundSync {
    files: Option<std::sync::mpsc::Sender<File>>,
    worker: Option<std::thread::JoinHandle<io::Result<()>>>,
}

impl BackgroundSync {
    fn start() -> Self {
        let (files, queue) = std::sync::mpsc::channel::<File>();
        let worker = std::thread::Builder::new()
            .name("quadmesh-snapshot-sync".into())
            .spawn(move || {
                for file in queue {
                    file.sync_all()?;
                }
                Ok(())
            })
            .ok();
        BackgroundSync {
            files: Some(files),
            worker,
        }
    }

    /// Hands `file` over to be synced (synced here if no thread could be started).
    fn sync(&mut self, file: File) -> io::Result<()> {
        match (&self.files, &self.worker) {
            (Some(files), Some(_)) => match files.send(file) {
                Ok(()) => Ok(()),
                // The worker stopped: it failed, and says why.
                Err(_) => Err(self
                    .finish()
                    .err()
                    .unwrap_or_else(|| io::Error::other("the snapshot sync thread stopped"))),
            },
            _ => file.sync_all(),
        }
    }

    fn finish(&mut self) -> io::Result<()> {
        self.files = None;
        match self.worker.take() {
            Some(worker) => worker
                .join()
                .map_err(|_| io::Error::other("the snapshot sync thread panicked"))?,
            None => Ok(()),
        }
    }
}

/// Unpacks an archive file made by [`pack_into`] into `dir` (see [`unpack_from`]).
pub fn unpack(archive: &Path, dir: &Path) -> io::Result<(PathBuf, SnapshotState)> {
    unpack_from(BufReader::new(File::open(archive)?), dir)
}

/// Bytes handed from a blocking producer to a body, at most this many at a time.
const STREAM_CHUNK: usize = 1 << 20;

/// Hands what is written to it to a channel, in the pieces it is given.
struct ChannelWriter(mpsc::Sender<io::Result<Bytes>>);

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.0
            .blocking_send(Ok(Bytes::copy_from_slice(data)))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the receiver went away"))?;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The archive of the checkpoint in `store_dir` with `state`, as a body: packed on a
/// blocking thread as it is sent, in constant memory (no archive file). `scratch` (the
/// checkpoint's directory) is removed once the packing ends, whether the receiver took
/// everything or went away. A failure while packing ends the stream with an error, so
/// the receiver sees a broken body, never a short one.
pub fn pack_stream(
    scratch: PathBuf,
    store_dir: PathBuf,
    state: SnapshotState,
) -> impl futures::Stream<Item = io::Result<Bytes>> + Send + 'static {
    let (tx, rx) = mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        let writer = io::BufWriter::with_capacity(STREAM_CHUNK, ChannelWriter(tx.clone()));
        let packed = pack_into(&store_dir, &state, writer)
            .and_then(|w| w.into_inner().map_err(|e| e.into_error()));
        if let Err(e) = packed {
            if e.kind() != io::ErrorKind::BrokenPipe {
                tracing::error!(error = %e, "cannot send a snapshot");
            }
            let _ = tx.blocking_send(Err(e));
        }
        let _ = std::fs::remove_dir_all(&scratch);
    });
    futures::stream::unfold(rx, |mut rx| async move {
        let item = rx.recv().await?;
        Some((item, rx))
    })
}

/// Reads the byte chunks a channel hands over, blocking.
struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk?,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// Unpacks an archive from `body` as it arrives (see [`unpack_from`]), on a blocking
/// thread, into `dir`. A body that breaks off, or whose bytes stop arriving for
/// [`SILENT_FOR`], is refused like a truncated archive.
pub async fn unpack_stream<S, E>(body: S, dir: PathBuf) -> io::Result<(PathBuf, SnapshotState)>
where
    S: futures::Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: std::fmt::Display,
{
    use futures::StreamExt;
    let (tx, rx) = mpsc::channel(8);
    let unpacking = tokio::task::spawn_blocking(move || {
        unpack_from(
            ChannelReader {
                rx,
                current: Bytes::new(),
            },
            &dir,
        )
    });
    let mut body = std::pin::pin!(body);
    loop {
        let chunk = match tokio::time::timeout(SILENT_FOR, body.next()).await {
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the snapshot stopped arriving",
            )),
            Ok(None) => break,
            Ok(Some(chunk)) => {
                chunk.map_err(|e| io::Error::other(format!("the transfer broke off: {e}")))
            }
        };
        let failed = chunk.is_err();
        // A refused send: the unpacker has stopped, and says why.
        if tx.send(chunk).await.is_err() || failed {
            break;
        }
    }
    drop(tx);
    unpacking.await.map_err(io::Error::other)?
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

#[cfg(test)]
mod tests {
    use super::*;
    use quadmesh_repl::{HlcTime, VersionVector};

    fn archive(dir: &Path) -> Vec<u8> {
        let store = dir.join("checkpoint");
        std::fs::create_dir_all(&store).unwrap();
        std::fs::write(store.join("000001.sst"), vec![7u8; 300_000]).unwrap();
        std::fs::write(store.join("CURRENT"), b"MANIFEST-000002\n").unwrap();
        let state = SnapshotState {
            version_vector: VersionVector::new(),
            clock: HlcTime(42),
            register: Vec::new(),
            tombstones: Vec::new(),
            config: None,
            digest: None,
            namespaces: None,
            access: None,
            metadata: None,
        };
        pack_into(&store, &state, Vec::new()).unwrap()
    }

    #[test]
    fn an_archive_unpacks_into_place_as_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = archive(dir.path());
        let (store, state) = unpack_from(&bytes[..], &dir.path().join("out")).unwrap();
        assert_eq!(state.clock, HlcTime(42));
        assert_eq!(
            std::fs::read(store.join("000001.sst")).unwrap(),
            vec![7u8; 300_000]
        );
        assert_eq!(
            std::fs::read(store.join("CURRENT")).unwrap(),
            b"MANIFEST-000002\n"
        );
    }

    #[test]
    fn a_damaged_or_truncated_archive_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = archive(dir.path());
        let mut damaged = bytes.clone();
        // Inside the first file's data, past its 512-byte header.
        damaged[512 + 1000] ^= 1;
        let error = unpack_from(&damaged[..], &dir.path().join("damaged")).unwrap_err();
        assert!(error.to_string().contains("damaged"), "{error}");
        for cut in [bytes.len() / 2, bytes.len() - 2048, 600] {
            let refused = unpack_from(&bytes[..cut], &dir.path().join(format!("cut{cut}")));
            assert!(refused.is_err(), "an archive cut at {cut} was accepted");
        }
    }

    #[test]
    fn an_entry_outside_the_store_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut builder = tar::Builder::new(Vec::new());
        // tar's own writers refuse `..`: the name goes into the header by hand.
        let mut header = tar::Header::new_old();
        header.as_old_mut().name[..18].copy_from_slice(b"store/../../escape");
        header.set_size(3);
        header.set_cksum();
        builder.append(&header, &b"abc"[..]).unwrap();
        let bytes = builder.into_inner().unwrap();
        let error = unpack_from(&bytes[..], &dir.path().join("out")).unwrap_err();
        assert!(error.to_string().contains("unexpected entry"), "{error}");
        assert!(!dir.path().join("escape").exists());
    }
}
