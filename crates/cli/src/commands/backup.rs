//! `quadmesh backup SPEC DEST` and `quadmesh restore SRC SPEC`: a repository as one
//! checksummed archive (store checkpoint and replication state at one cut), taken
//! online while writes go on, written to a file or standard output (`-`) so that it can
//! be piped to object storage; restored into a server as a new repository.

use crate::client::Api;
use crate::spec::Spec;
use anyhow::{Context, Result};
use clap::Args;
use futures::StreamExt;
use reqwest::Method;
use std::io::Write;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// USER:PASSWORD@HOST:PORT/REPO
    pub spec: String,
    /// The archive to write, or - for standard output.
    pub dest: PathBuf,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The archive to read, or - for standard input.
    pub src: PathBuf,
    /// USER:PASSWORD@HOST:PORT/REPO: the new repository (it must not exist).
    pub spec: String,
    /// Make the restored repository the first instance of a new cluster, under this
    /// instance name (HOST:PORT of SPEC is how the others will reach it).
    #[arg(long, value_name = "INSTANCE_NAME")]
    pub new_cluster: Option<String>,
}

pub async fn backup(args: BackupArgs) -> Result<()> {
    let api = Api::new(Spec::parse(&args.spec)?)?;
    let url = format!("{}/backup", api.spec.repository_url()?);
    let response = api.send(api.request(Method::GET, &url)).await?;
    let to_stdout = args.dest.as_os_str() == "-";
    // Into a temporary file beside DEST, renamed once complete: a backup cut short
    // never takes DEST's name.
    let partial = args.dest.with_extension("partial");
    let mut out: Box<dyn Write> = if to_stdout {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(std::io::BufWriter::new(
            std::fs::File::create(&partial)
                .with_context(|| format!("cannot create {}", partial.display()))?,
        ))
    };
    let mut written = 0u64;
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.context("the backup broke off")?;
        written += chunk.len() as u64;
        out.write_all(&chunk)?;
    }
    out.flush()?;
    drop(out);
    if !to_stdout {
        std::fs::File::open(&partial)?.sync_all()?;
        std::fs::rename(&partial, &args.dest)
            .with_context(|| format!("cannot write {}", args.dest.display()))?;
        eprintln!(
            "backup of {written} bytes written to {}",
            args.dest.display()
        );
    }
    Ok(())
}

pub async fn restore(args: RestoreArgs) -> Result<()> {
    let api = Api::new(Spec::parse(&args.spec)?)?;
    let url = format!("{}/restore", api.spec.repository_url()?);
    let body = if args.src.as_os_str() == "-" {
        let stdin = tokio::io::stdin();
        reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(stdin, 1 << 20))
    } else {
        let file = tokio::fs::File::open(&args.src)
            .await
            .with_context(|| format!("cannot read {}", args.src.display()))?;
        reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(file, 1 << 20))
    };
    api.send(
        api.request(Method::PUT, &url)
            .header("content-type", "application/x-tar")
            .body(body),
    )
    .await?;
    eprintln!("restored into {}", api.spec.repository_url()?);
    if let Some(instance) = args.new_cluster {
        let port = api.spec.port.to_string();
        let url = format!("{}/repl/createCluster", api.spec.repository_url()?);
        api.send(api.request(Method::PUT, &url).query(&[
            ("host", api.spec.host.as_str()),
            ("port", port.as_str()),
            ("instanceName", instance.as_str()),
        ]))
        .await?;
        eprintln!("it is the first instance ('{instance}') of a new cluster");
    }
    Ok(())
}
