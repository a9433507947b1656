//! A small HTTP client for the server's REST API, with errors that say what the
//! server said.

use crate::spec::Spec;
use anyhow::{bail, Context, Result};
use reqwest::{Client, RequestBuilder, Response};

/// The header in which the server hands out, and takes back, causal tokens.
const TOKEN_HEADER: &str = "x-quadmesh-token";

/// The CA certificates (PEM) trusted for `https` servers instead of the system's
/// (`--ca`, set once at start).
static TRUSTED_CA: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// Trusts only the CA certificates in `path` for `https` (the global `--ca`).
pub fn trust_ca(path: std::path::PathBuf) {
    let _ = TRUSTED_CA.set(path);
}

/// An HTTP client builder that trusts `--ca` when it was given.
pub fn builder() -> Result<reqwest::ClientBuilder> {
    let builder = Client::builder();
    let Some(path) = TRUSTED_CA.get() else {
        return Ok(builder);
    };
    let pem = std::fs::read(path)
        .with_context(|| format!("cannot read the CA file (--ca) {}", path.display()))?;
    let certificates = reqwest::Certificate::from_pem_bundle(&pem)
        .ok()
        .filter(|c| !c.is_empty())
        .with_context(|| format!("--ca {}: no PEM certificate in it", path.display()))?;
    Ok(builder.tls_certs_only(certificates))
}

/// A client of one server (or one load balancer).
///
/// Rules it keeps: every request of one command carries the causal token of the
/// newest response before it, so that a command's later requests see its earlier
/// writes whichever instance behind a load balancer answers them.
pub struct Api {
    pub spec: Spec,
    client: Client,
    token: std::sync::Mutex<Option<reqwest::header::HeaderValue>>,
}

impl Api {
    pub fn new(spec: Spec) -> Result<Self> {
        let client = builder()?.build().context("cannot build the HTTP client")?;
        Ok(Api {
            spec,
            client,
            token: Default::default(),
        })
    }

    pub fn request(&self, method: reqwest::Method, url: &str) -> RequestBuilder {
        self.client
            .request(method, url)
            .basic_auth(&self.spec.user, Some(&self.spec.password))
    }

    /// Sends and turns any non-2xx answer into an error carrying the server's message.
    pub async fn send(&self, request: RequestBuilder) -> Result<Response> {
        let mut built = request.build().context("cannot build the request")?;
        let token = self.token.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(token) = token {
            built.headers_mut().insert(TOKEN_HEADER, token);
        }
        let what = format!("{} {}", built.method(), built.url().path());
        let response = self
            .client
            .execute(built)
            .await
            .map_err(|e| anyhow::anyhow!("{}", describe(&e)))
            .with_context(|| format!("cannot reach quadmesh at {}", self.spec.base_url()))?;
        if let Some(token) = response.headers().get(TOKEN_HEADER) {
            *self.token.lock().unwrap_or_else(|e| e.into_inner()) = Some(token.clone());
        }
        let status = response.status();
        if !status.is_success() {
            let message = response.text().await.unwrap_or_default();
            bail!("{what} failed: {status}: {}", message.trim());
        }
        Ok(response)
    }
}

/// An error with its causes, once each (a refused certificate is only in the causes:
/// "invalid peer certificate: UnknownIssuer").
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
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
