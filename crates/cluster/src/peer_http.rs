//! The one HTTP client for instance-to-instance calls (pullers, snapshot transfers,
//! removal notices, controlling recovery, the roles, session forwarding), and the URLs
//! it is sent to: `https` whenever TLS is configured (the server's `tls.rs` makes the
//! client's TLS configuration); a member's
//! replication calls go to its own repository name (`repl_url`), which may differ from
//! ours and from the cluster's.

use super::resolver::PeerResolver;
use quadmesh_repl::Member;
use std::time::Duration;

/// The client for peers and the scheme they are reached with.
///
/// Rules it keeps: every URL of a peer is made by `url`, so no call goes out in plain
/// HTTP once TLS is configured; with a CA configured, a peer is trusted only if its
/// certificate chains to that CA (and names the configured peer name, or the host).
#[derive(Clone, Debug)]
pub struct PeerHttp {
    client: reqwest::Client,
    scheme: &'static str,
}

impl std::ops::Deref for PeerHttp {
    type Target = reqwest::Client;
    fn deref(&self) -> &reqwest::Client {
        &self.client
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PeerHttpError {
    #[error("cannot build the HTTP client for peers: {0}")]
    Build(#[from] reqwest::Error),
}

impl PeerHttp {
    /// No idle connections are kept, so every request connects (and resolves) anew. TCP
    /// keepalive probes, and a bound on how long sent data may stay unacknowledged, end
    /// connections to a peer that vanished (a machine gone, a black hole) even when
    /// nothing is being read; a peer that stays connected but sends nothing is the
    /// puller's business (it drops silent streams).
    ///
    /// `client_tls`: the TLS configuration for peers when a CA is configured (`None`:
    /// the client's defaults, the system's trust store); `https`: whether peers are
    /// reached over TLS at all (then never in plain HTTP).
    pub fn new(
        client_tls: Option<rustls::ClientConfig>,
        https: bool,
    ) -> Result<Self, PeerHttpError> {
        let builder = reqwest::Client::builder()
            .dns_resolver(std::sync::Arc::new(PeerResolver::from_env()))
            .pool_max_idle_per_host(0)
            .connect_timeout(Duration::from_secs(3))
            .tcp_keepalive(super::TCP_KEEPALIVE_IDLE)
            .tcp_keepalive_interval(super::TCP_KEEPALIVE_INTERVAL)
            .tcp_keepalive_retries(super::TCP_KEEPALIVE_RETRIES);
        #[cfg(any(target_os = "android", target_os = "fuchsia", target_os = "linux"))]
        let builder = builder.tcp_user_timeout(super::TCP_USER_TIMEOUT);
        let builder = match client_tls {
            Some(config) => builder.tls_backend_preconfigured(config),
            None => builder,
        };
        let builder = if https {
            builder.https_only(true)
        } else {
            builder
        };
        Ok(PeerHttp {
            client: builder.build()?,
            scheme: if https { "https" } else { "http" },
        })
    }

    /// The URL of `path` (absolute, with its query) on the peer at `address`
    /// (`HOST:PORT`).
    /// `https` when TLS is configured, else `http`: how every instance is reached.
    pub fn scheme(&self) -> &'static str {
        self.scheme
    }

    pub fn url(&self, address: &str, path: &str) -> String {
        format!("{}://{address}{path}", self.scheme)
    }

    /// The URL of replication call `call` (`stream`, `membership`, ...) of `member`: at
    /// its address, under its own repository name.
    pub fn repl_url(&self, member: &Member, call: &str) -> String {
        self.url(
            &member.address,
            &format!("/repositories/{}/repl/{call}", member.repository),
        )
    }
}

/// A connection error with its causes (a TLS refusal is only in the causes: "invalid
/// peer certificate: UnknownIssuer").
pub fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
