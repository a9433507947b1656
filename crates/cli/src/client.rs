//! A small HTTP client for the server's REST API, with errors that say what the
//! server said.

use crate::spec::Spec;
use anyhow::{bail, Context, Result};
use reqwest::{Client, RequestBuilder, Response};

/// The header in which the server hands out, and takes back, causal tokens.
const TOKEN_HEADER: &str = "x-quadmesh-token";

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
        let client = Client::builder()
            .build()
            .context("cannot build the HTTP client")?;
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
