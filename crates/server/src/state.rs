use crate::auth::Auth;
use crate::config::ServerConfig;
use crate::sessions::SessionRegistry;
use quadmesh_cluster::Replication;
use quadmesh_store::Catalog;
use std::sync::Arc;

/// What every request handler can reach.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub config: ServerConfig,
    /// The repositories (shared with the cluster runtime).
    pub catalog: Arc<Catalog>,
    pub auth: Auth,
    /// Users, roles and grants (`access.rs`), checked by `auth` and `permissions`.
    pub access: Arc<crate::access::Access>,
    pub sessions: SessionRegistry,
    /// The cluster runtime: one node per replicated repository.
    pub replication: Arc<Replication>,
    pub http_metrics: crate::http_metrics::HttpMetrics,
    pub ui_logins: crate::ui::logins::UiLogins,
    /// What the replication page's charts draw (taken by `ui::charts::keep_sampling`).
    pub ui_samples: crate::ui::samples::Samples,
    /// Failed sign-ins per client address.
    pub sign_in_throttle: crate::signin_throttle::SignInThrottle,
    /// Whether this instance is ready for traffic (`/ready`).
    pub readiness: tokio::sync::watch::Sender<crate::readiness::Readiness>,
    /// Cancelled when the server begins to stop: long-lived pull streams end on it.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// The served certificate and TLS failures, for `/metrics`.
    pub tls: Arc<crate::tls::TlsStatus>,
}

impl AppState {
    pub fn new(
        config: ServerConfig,
        catalog: Catalog,
        auth: Auth,
        access: Arc<crate::access::Access>,
        peer_http: quadmesh_cluster::peer_http::PeerHttp,
    ) -> Self {
        let catalog = Arc::new(catalog);
        AppState(Arc::new(Inner {
            replication: Arc::new(Replication::new(
                catalog.clone(),
                peer_http,
                config.log_retention,
            )),
            config,
            catalog,
            auth,
            access,
            sessions: SessionRegistry::default(),
            shutdown: tokio_util::sync::CancellationToken::new(),
            tls: Default::default(),
            http_metrics: crate::http_metrics::HttpMetrics::default(),
            ui_logins: crate::ui::logins::UiLogins::default(),
            ui_samples: Default::default(),
            sign_in_throttle: Default::default(),
            readiness: tokio::sync::watch::Sender::new(crate::readiness::Readiness::NotReady(
                "starting".into(),
            )),
        }))
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
