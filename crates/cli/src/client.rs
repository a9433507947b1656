//! A small HTTP client for the server's REST API, with errors that say what the
//! server said.

use crate::spec::Spec;
use anyhow::{bail, Context, Result};
use reqwest::{Client, RequestBuilder, Response};

pub struct Api {
    pub spec: Spec,
    client: Client,
}

impl Api {
    pub fn new(spec: Spec) -> Result<Self> {
        let client = Client::builder()
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Api { spec, client })
    }

    pub fn request(&self, method: reqwest::Method, url: &str) -> RequestBuilder {
        self.client
            .request(method, url)
            .basic_auth(&self.spec.user, Some(&self.spec.password))
    }

    /// Sends and turns any non-2xx answer into an error carrying the server's message.
    pub async fn send(&self, request: RequestBuilder) -> Result<Response> {
        let built = request.build().context("cannot build the request")?;
        let what = format!("{} {}", built.method(), built.url().path());
        let response = self
            .client
            .execute(built)
            .await
            .with_context(|| format!("cannot reach quadmesh at {}", self.spec.base_url()))?;
        let status = response.status();
        if !status.is_success() {
            let message = response.text().await.unwrap_or_default();
            bail!("{what} failed: {status}: {}", message.trim());
        }
        Ok(response)
    }
}
