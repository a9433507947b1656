//! Accepting connections, with bounds a hostile or broken client cannot get around: a
//! limit on open connections, a deadline for a request's headers, a limit on their
//! size, and an end to connections that carry no request for a while.
//!
//! (`axum::serve` has none of these: a connection that sent nothing, or half a request,
//! was kept for ever.)

use crate::tls::{Accepted, ServerTls};
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderValue, Request};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;

/// Largest request head (request line and headers) taken; larger ones get 431.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// The bounds on connections (`ServerConfig`).
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// Connections open at once; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// Connections open at once from one client address; more from it are closed as
    /// soon as they are accepted (a load balancer or proxy is one address: raise it).
    pub max_connections_per_client: usize,
    /// Time a client has to send a request's headers, counted from when the server
    /// waits for them (so also on a kept-alive HTTP/1 connection between requests),
    /// and for a new connection from when it was accepted, whether or not a byte came.
    pub header_read_timeout: Duration,
    /// A connection with no request in flight for this long is closed (whatever the
    /// protocol, also before its first byte). A request in flight — a pull stream, a
    /// streamed result, a long query — keeps it open.
    pub idle_timeout: Duration,
}

/// Serves `app` on `listener` (through TLS when `tls` is given) until `shutdown` resolves; then takes no more
/// connections, lets the requests in flight finish and returns when every connection
/// has closed.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    tls: Option<Arc<ServerTls>>,
    configure: impl Fn(&tokio::net::TcpStream) + Send + 'static,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(MAX_HEADER_BYTES);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEADER_BYTES as u32);
    let builder = Arc::new(builder);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let per_client = Arc::new(PerClient::default());
    let (stopping, stop) = watch::channel(false);
    tokio::pin!(shutdown);
    let mut refused_since_warning = 0u64;
    let mut last_warning: Option<Instant> = None;
    loop {
        let (stream, remote) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors, or a connection reset before it was taken:
                    // wait a little rather than spin.
                    tracing::debug!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            drop(stream);
            refused_since_warning += 1;
            if last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                tracing::warn!(
                    limit = limits.max_connections,
                    refused = refused_since_warning,
                    "connection limit reached: closing new connections"
                );
                last_warning = Some(Instant::now());
                refused_since_warning = 0;
            }
            continue;
        };
        let Some(client_slot) = per_client.take(remote.ip(), limits.max_connections_per_client)
        else {
            drop(stream);
            tracing::debug!(%remote, limit = limits.max_connections_per_client,
                "connection limit per client address reached: closing a new connection");
            continue;
        };
        // Small writes leave at once: with Nagle's algorithm a pull stream's frame or a
        // streamed result's chunk waits for the peer's delayed ACK (40 ms on Linux).
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY on a connection");
        }
        configure(&stream);
        let (builder, app, stop, tls) = (builder.clone(), app.clone(), stop.clone(), tls.clone());
        tokio::spawn(async move {
            let connection = Connection {
                builder,
                app,
                stop,
                remote,
                limits,
            };
            match tls {
                None => connection.serve(stream, false).await,
                Some(tls) => match connection.handshake(&tls, stream).await {
                    Some(Accepted::Tls(stream)) => connection.serve(*stream, true).await,
                    Some(Accepted::Plain(stream)) => connection.serve(stream, false).await,
                    Some(Accepted::Refused) | None => {}
                },
            }
            drop(client_slot);
            drop(permit);
        });
    }
    drop(listener);
    let _ = stopping.send(true);
    // Every connection holds a permit until it has closed.
    let _ = permits.acquire_many(limits.max_connections as u32).await;
    Ok(())
}

/// One accepted connection and what it needs to be served.
struct Connection {
    builder: Arc<hyper_util::server::conn::auto::Builder<TokioExecutor>>,
    app: Router,
    stop: watch::Receiver<bool>,
    remote: std::net::SocketAddr,
    limits: ConnectionLimits,
}

impl Connection {
    /// The TLS handshake, which must end within the header-read timeout (a client that
    /// never finishes it holds a permit no longer than one that never sends headers);
    /// `None` if it failed, timed out or the server began to stop.
    async fn handshake(&self, tls: &ServerTls, stream: TcpStream) -> Option<Accepted> {
        let remote = self.remote;
        let mut stop = self.stop.clone();
        tokio::select! {
            result = tokio::time::timeout(self.limits.header_read_timeout, tls.accept(stream)) => {
                match result {
                    Ok(Ok(accepted)) => Some(accepted),
                    Ok(Err(e)) => {
                        tls.handshake_failed();
                        tracing::debug!(%remote, error = %e, "TLS handshake failed");
                        None
                    }
                    Err(_) => {
                        tls.handshake_failed();
                        tracing::debug!(%remote, "TLS handshake not done within the header-read timeout");
                        None
                    }
                }
            }
            _ = stop.changed() => None,
        }
    }

    /// Serves HTTP on `io` until the connection ends, falls idle or the server stops.
    /// Every request has a `Host` (from the URI's authority under HTTP/2); those that came over TLS carry `x-forwarded-proto: https` unless a proxy set
    /// it, so that URLs handed back name the scheme the client used.
    async fn serve<I>(self, io: I, secure: bool)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let Connection {
            builder,
            app,
            mut stop,
            remote,
            limits,
        } = self;
        let activity = Arc::new(Activity::new());
        let tracked = activity.clone();
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(remote));
            // HTTP/2 carries the host in the URI (`:authority`), not in a header: give
            // it one, so that origin checks and URLs handed back see the same host
            // whichever protocol ALPN chose.
            if !request.headers().contains_key(header::HOST) {
                if let Some(host) = request
                    .uri()
                    .authority()
                    .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
                {
                    request.headers_mut().insert(header::HOST, host);
                }
            }
            if secure && !request.headers().contains_key(FORWARDED_PROTO) {
                request
                    .headers_mut()
                    .insert(FORWARDED_PROTO, HeaderValue::from_static("https"));
            }
            let in_flight = tracked.begin();
            let mut app = app.clone();
            async move {
                let response = tower_service::Service::call(&mut app, request).await?;
                Ok::<_, std::convert::Infallible>(response.map(|inner| TrackedBody {
                    inner,
                    _in_flight: in_flight,
                }))
            }
        });
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
        tokio::pin!(connection);
        let mut draining = false;
        // hyper's header timeout starts with the first byte: a connection that sends
        // nothing must have its first request's headers in by then all the same.
        // (Whether the first request came is looked at when the deadline passes: a
        // `select!` precondition is only evaluated when the loop comes round.)
        let first_request_due = Instant::now() + limits.header_read_timeout;
        let mut first_request_seen = false;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(first_request_due), if !first_request_seen => {
                    if activity.began() {
                        first_request_seen = true;
                        continue;
                    }
                    tracing::debug!(%remote, "no request within the header-read timeout: closing");
                    break;
                }
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(%remote, error = %e, "connection ended");
                    }
                    break;
                }
                () = activity.idle_for(limits.idle_timeout), if !draining => {
                    // Nothing in flight: dropping the connection loses no answer.
                    tracing::debug!(%remote, "closing an idle connection");
                    break;
                }
                changed = stop.changed(), if !draining => {
                    let _ = changed;
                    draining = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

const FORWARDED_PROTO: &str = "x-forwarded-proto";

/// Connections open per client address.
///
/// Rules it keeps: a count is taken only below the limit and given back exactly once,
/// when its `ClientSlot` is dropped; an address with no connection has no entry.
#[derive(Default)]
struct PerClient {
    open: Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
}

impl PerClient {
    fn take(self: &Arc<Self>, address: std::net::IpAddr, limit: usize) -> Option<ClientSlot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(address).or_default();
        if *count >= limit {
            if *count == 0 {
                open.remove(&address);
            }
            return None;
        }
        *count += 1;
        Some(ClientSlot {
            owner: self.clone(),
            address,
        })
    }
}

/// One open connection of a client address, counted until dropped.
struct ClientSlot {
    owner: Arc<PerClient>,
    address: std::net::IpAddr,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self.owner.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.address);
            }
        }
    }
}

/// What one connection is doing: requests in flight, and since when none is.
///
/// Rules it keeps: `in_flight` counts requests whose response has not been sent whole
/// (or dropped); `idle_since` is the moment the count last fell to zero (or the
/// connection opened).
struct Activity {
    in_flight: AtomicUsize,
    idle_since: Mutex<Instant>,
    /// Set once the first request's headers arrived.
    began: std::sync::atomic::AtomicBool,
}

impl Activity {
    fn new() -> Self {
        Activity {
            in_flight: AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
            began: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.began.store(true, Ordering::SeqCst);
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(self.clone())
    }

    fn began(&self) -> bool {
        self.began.load(Ordering::SeqCst)
    }

    /// Resolves once no request has been in flight for `timeout` (checked at least
    /// every `timeout`, so it resolves between one and two `timeout`s after the
    /// connection fell idle).
    async fn idle_for(&self, timeout: Duration) {
        loop {
            let since = *self.idle_since.lock().unwrap_or_else(|e| e.into_inner());
            if self.in_flight.load(Ordering::SeqCst) > 0 {
                tokio::time::sleep(timeout).await;
                continue;
            }
            let deadline = since + timeout;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// A request in flight on a connection, until dropped.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut since = self.0.idle_since.lock().unwrap_or_else(|e| e.into_inner());
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            *since = Instant::now();
        }
    }
}

/// A response body that keeps its request counted as in flight until it is sent whole
/// or dropped (a streamed result may take minutes; its connection is not idle).
struct TrackedBody {
    inner: Body,
    _in_flight: InFlight,
}

impl http_body::Body for TrackedBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
