use crate::client::Api;
use crate::commands::query::media_type;
use crate::spec::Spec;
use anyhow::{Context, Result};
use clap::Args;
use futures::StreamExt;
use reqwest::Method;
use std::io::Write;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// USER:PASSWORD@HOST:PORT/REPO
    pub spec: String,
    /// nquads (default), trig, ntriples, turtle, rdfxml, jsonld, or a media type.
    #[arg(long, default_value = "nquads")]
    pub format: String,
    /// Write to this file instead of standard output.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

pub async fn run(args: ExportArgs) -> Result<()> {
    let api = Api::new(Spec::parse(&args.spec)?)?;
    let url = format!("{}/statements", api.spec.repository_url()?);
    let response = api
        .send(
            api.request(Method::GET, &url)
                .header("accept", media_type(&args.format)),
        )
        .await?;
    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        out.write_all(&chunk?)?;
    }
    out.flush()?;
    Ok(())
}
