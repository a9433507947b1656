use crate::client::Api;
use crate::spec::Spec;
use anyhow::{Context, Result};
use clap::Args;
use reqwest::Method;
use std::io::Write;

#[derive(Args, Debug)]
pub struct QueryArgs {
    /// USER:PASSWORD@HOST:PORT/REPO
    pub spec: String,
    /// The SPARQL query, or @FILE to read it from a file.
    pub query: String,
    /// Output: table (default), json, xml, csv, tsv for SELECT/ASK; turtle, ntriples,
    /// nquads, trig, rdfxml, jsonld for CONSTRUCT/DESCRIBE; or any media type.
    #[arg(long, default_value = "table")]
    pub format: String,
}

/// The media type a `--format` name stands for.
pub fn media_type(format: &str) -> String {
    match format {
        "table" => "text/table",
        "json" => "application/sparql-results+json",
        "xml" => "application/sparql-results+xml",
        "csv" => "text/csv",
        "tsv" => "text/tab-separated-values",
        "turtle" | "ttl" => "text/turtle",
        "ntriples" | "nt" => "application/n-triples",
        "nquads" | "nq" => "application/n-quads",
        "trig" => "application/trig",
        "rdfxml" | "rdf" => "application/rdf+xml",
        "jsonld" => "application/ld+json",
        other => other,
    }
    .to_owned()
}

pub async fn run(args: QueryArgs) -> Result<()> {
    let api = Api::new(Spec::parse(&args.spec)?)?;
    let query = match args.query.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the query file {path}"))?,
        None => args.query.clone(),
    };
    let mut accept = media_type(&args.format);
    if accept == "text/table" {
        // CONSTRUCT and DESCRIBE have no table: they fall back to Turtle.
        accept.push_str(", text/turtle;q=0.5");
    }
    let request = api
        .request(Method::POST, &api.spec.repository_url()?)
        .header("accept", accept)
        .header("content-type", "application/sparql-query")
        .body(query);
    let body = api.send(request).await?.bytes().await?;
    std::io::stdout().write_all(&body)?;
    Ok(())
}
