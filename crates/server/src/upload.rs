//! Request bodies received as they arrive: kept in memory while small, written to an
//! unnamed file in the spill directory (the data directory's file system) beyond that,
//! so that an upload of any size within the limit never sits whole in memory. Such a
//! body can be read several times (check a document completely, then apply it).

use crate::error::{ApiError, ApiResult};
use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap};
use flate2::read::MultiGzDecoder;
use futures::StreamExt;
use std::fs::File;
use std::io::{self, Cursor, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// What a 413 says after the limit: where it is set, and what to do instead.
const LIMIT_HINT: &str = " (--max-body-mb, QUADMESH_MAX_BODY_MB; by default set by \
    the memory limit, --memory-limit-mib): send the data in smaller requests, as \
    `quadmesh load` does";
use tokio::io::AsyncWriteExt;

/// Bodies up to this size stay in memory.
const IN_MEMORY_BYTES: usize = 1 << 20;

enum Stored {
    Memory(Bytes),
    Spilled(File),
}

/// A request body received completely.
///
/// Rules it keeps:
/// - at most [`IN_MEMORY_BYTES`] of it are held in memory; more goes to an unnamed file
///   (gone with the process, whatever happens);
/// - more than `limit` bytes, as sent or once decompressed, is refused with 413;
/// - every [`Upload::reader`] reads it from its start, decompressed.
pub struct Upload {
    stored: Stored,
    gzip: bool,
    limit: usize,
    /// Set when a reader stopped at the limit on decompressed bytes.
    over_limit: Arc<AtomicBool>,
}

/// Receives `body`, spilling into `spill` beyond [`IN_MEMORY_BYTES`].
pub async fn receive(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    spill: &Path,
) -> ApiResult<Upload> {
    let gzip = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    let too_large = || {
        ApiError::PayloadTooLarge(format!(
            "the request body exceeds the limit of {limit} bytes{}",
            LIMIT_HINT
        ))
    };
    let mut frames = body.into_data_stream();
    let mut memory = Vec::new();
    let mut file: Option<tokio::fs::File> = None;
    let mut received = 0usize;
    while let Some(frame) = frames.next().await {
        let frame = frame
            .map_err(|e| ApiError::BadRequest(format!("cannot read the request body: {e}")))?;
        received += frame.len();
        if received > limit {
            return Err(too_large());
        }
        if file.is_none() && memory.len() + frame.len() > IN_MEMORY_BYTES {
            let spill = spill.to_owned();
            let spilled = tokio::task::spawn_blocking(move || tempfile::tempfile_in(spill))
                .await
                .map_err(|e| ApiError::Internal(format!("worker task failed: {e}")))?
                .map_err(spill_error)?;
            let mut spilled = tokio::fs::File::from_std(spilled);
            spilled.write_all(&memory).await.map_err(spill_error)?;
            memory = Vec::new();
            file = Some(spilled);
        }
        match &mut file {
            Some(f) => f.write_all(&frame).await.map_err(spill_error)?,
            None => memory.extend_from_slice(&frame),
        }
    }
    let stored = match file {
        Some(mut f) => {
            f.flush().await.map_err(spill_error)?;
            Stored::Spilled(f.into_std().await)
        }
        None => Stored::Memory(Bytes::from(memory)),
    };
    Ok(Upload {
        stored,
        gzip,
        limit,
        over_limit: Arc::default(),
    })
}

fn spill_error(e: io::Error) -> ApiError {
    ApiError::Store(quadmesh_store::StoreError::Log(e).classify_disk_full())
}

impl Upload {
    /// The body from its start, decompressed, stopping with an error past the limit.
    /// Blocking: call from a blocking task.
    pub fn reader(&self) -> ApiResult<Box<dyn Read + Send>> {
        let raw: Box<dyn Read + Send> = match &self.stored {
            Stored::Memory(bytes) => Box::new(Cursor::new(bytes.clone())),
            Stored::Spilled(file) => {
                let mut file = file.try_clone().map_err(spill_error)?;
                file.seek(SeekFrom::Start(0)).map_err(spill_error)?;
                Box::new(io::BufReader::with_capacity(256 << 10, file))
            }
        };
        if !self.gzip {
            return Ok(raw);
        }
        Ok(Box::new(Limited {
            inner: MultiGzDecoder::new(raw),
            left: self.limit as u64,
            over_limit: self.over_limit.clone(),
        }))
    }

    /// An error met while reading, as the answer: 413 when the decompressed body went
    /// past the limit, else what it was.
    pub fn explain(&self, error: ApiError) -> ApiError {
        if self.over_limit.load(Ordering::Relaxed) {
            return ApiError::PayloadTooLarge(format!(
                "the decompressed body exceeds the limit of {} bytes{}",
                self.limit, LIMIT_HINT
            ));
        }
        error
    }

    /// The whole body, decompressed, in memory: for the small bodies of requests that
    /// are not documents (forms, JSON lists of quads). Blocking.
    pub fn into_bytes(self) -> ApiResult<Vec<u8>> {
        let mut out = Vec::new();
        let read = self.reader()?.read_to_end(&mut out);
        read.map_err(|e| self.explain(ApiError::BadRequest(format!("cannot read the body: {e}"))))?;
        Ok(out)
    }
}

/// A reader that fails once it has given `left` bytes.
struct Limited<R> {
    inner: R,
    left: u64,
    over_limit: Arc<AtomicBool>,
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            self.over_limit.store(true, Ordering::Relaxed);
            return Err(io::Error::other("the decompressed body is too large"));
        }
        self.left -= n as u64;
        Ok(n)
    }
}
