//! Response bodies written while they are produced: results, statements and exports
//! leave the server in chunks as their rows come, in constant memory whatever their size.
//!
//! The producer runs on a blocking thread and writes into a [`ChunkWriter`]; chunks of
//! about [`CHUNK_BYTES`] go through a bounded channel into the response body. The first
//! chunk decides the response: an error before it is an ordinary error status (a query
//! that fails at once still answers 400 with its message), a result that ends before it
//! is sent whole with its length. After the first chunk the status is out: an error then
//! cuts the body off (the client sees a broken response, never a short "complete" one)
//! and is logged.

use crate::error::{ApiError, ApiResult};
use crate::http_metrics::HttpMetrics;
use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use oxigraph::sparql::CancellationToken;
use prometheus_client::metrics::gauge::Gauge;
use std::io::{self, Write};
use tokio::sync::mpsc;

/// About how much is sent at a time.
pub const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks waiting for a slow client before the producer waits too: with
/// [`CHUNK_BYTES`], what one response holds in memory at most (plus the chunk being
/// written).
const QUEUED_CHUNKS: usize = 4;

enum Piece {
    /// The first chunk; `complete` when it is the whole body.
    Head {
        bytes: Bytes,
        complete: bool,
    },
    Data(Bytes),
    Failed(ApiError),
}

/// Where a producer writes its body.
///
/// Rules it keeps:
/// - at most about [`CHUNK_BYTES`] are buffered before they are handed to the channel,
///   whose capacity is bounded, so a producer ahead of its client waits instead of
///   growing memory;
/// - once the client is gone every write fails (`BrokenPipe`), so the producer stops at
///   its next row.
pub struct ChunkWriter {
    tx: mpsc::Sender<Piece>,
    buffer: Vec<u8>,
    started: bool,
    gone: bool,
}

impl ChunkWriter {
    fn send(&mut self, piece: Piece) -> io::Result<()> {
        if self.gone || self.tx.blocking_send(piece).is_err() {
            self.gone = true;
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the client went away",
            ));
        }
        Ok(())
    }

    fn send_buffer(&mut self, complete: bool) -> io::Result<()> {
        let bytes = Bytes::from(std::mem::take(&mut self.buffer));
        if self.started {
            if bytes.is_empty() {
                return Ok(());
            }
            return self.send(Piece::Data(bytes));
        }
        self.started = true;
        self.send(Piece::Head { bytes, complete })
    }

    /// Hands over the rest, or the error; says whether the client went away.
    fn end(mut self, result: ApiResult<()>) -> bool {
        match result {
            Ok(()) => {
                let _ = self.send_buffer(true);
            }
            Err(_) if self.gone => {}
            Err(e) => {
                if self.started {
                    tracing::error!(error = %e,
                        "a streamed response failed after its first bytes; it was cut off");
                }
                let _ = self.send(Piece::Failed(e));
            }
        }
        self.gone
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.gone {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the client went away",
            ));
        }
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= CHUNK_BYTES {
            self.send_buffer(false)?;
            self.buffer.reserve(CHUNK_BYTES + CHUNK_BYTES / 8);
        }
        Ok(data.len())
    }

    /// Chunks go out when full: a serializer's flush does not make small ones.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Counts a running producer, also one that panics.
struct Running<'a>(&'a Gauge);

impl<'a> Running<'a> {
    fn new(gauge: &'a Gauge) -> Self {
        gauge.inc();
        Running(gauge)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Cancels a query when dropped: with the response body (the client went away) or
/// with the handler (the client left before the first chunk).
struct CancelOnDrop(Option<CancellationToken>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(token) = &self.0 {
            token.cancel();
        }
    }
}

/// Answers with the body `produce` writes, streamed (see the module documentation).
/// `cancel` stops the producer's query when the client goes away, also while it is
/// computing and not writing.
pub async fn respond(
    metrics: &HttpMetrics,
    content_type: &'static str,
    cancel: Option<CancellationToken>,
    produce: impl FnOnce(&mut ChunkWriter) -> ApiResult<()> + Send + 'static,
) -> ApiResult<Response> {
    let (tx, mut rx) = mpsc::channel(QUEUED_CHUNKS);
    let guard = CancelOnDrop(cancel);
    let streams = metrics.streams.clone();
    tokio::task::spawn_blocking(move || {
        let _running = Running::new(&streams.active);
        let mut writer = ChunkWriter {
            tx,
            buffer: Vec::with_capacity(CHUNK_BYTES + CHUNK_BYTES / 8),
            started: false,
            gone: false,
        };
        let result = produce(&mut writer);
        if writer.end(result) {
            streams.abandoned.inc();
            tracing::debug!("the client went away; its result stream stopped");
        }
    });
    let (head, complete) = match rx.recv().await {
        Some(Piece::Head { bytes, complete }) => (bytes, complete),
        Some(Piece::Failed(e)) => return Err(e),
        Some(Piece::Data(_)) | None => {
            return Err(ApiError::Internal(
                "the result writer stopped without an answer".into(),
            ))
        }
    };
    if complete {
        return Ok(([(header::CONTENT_TYPE, content_type)], head).into_response());
    }
    let rest = futures::stream::unfold((rx, guard), |(mut rx, guard)| async move {
        let item = match rx.recv().await? {
            Piece::Data(bytes) | Piece::Head { bytes, .. } => Ok(bytes),
            // An error makes hyper end the body abruptly: no final chunk.
            Piece::Failed(e) => Err(io::Error::other(e.to_string())),
        };
        Some((item, (rx, guard)))
    });
    let body = futures::stream::once(async move { Ok::<_, io::Error>(head) }).chain(rest);
    Ok((
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(body),
    )
        .into_response())
}
