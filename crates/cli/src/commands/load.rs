use crate::client::Api;
use crate::spec::Spec;
use anyhow::{bail, Context, Result};
use clap::Args;
use flate2::read::MultiGzDecoder;
use indicatif::{ProgressBar, ProgressStyle};
use quadmesh_store::oxigraph::io::{RdfFormat, RdfParser};
use quadmesh_store::oxigraph::model::{GraphName, NamedNode};
use quadmesh_store::rename_blank_nodes;
use reqwest::Method;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Args, Debug)]
pub struct LoadArgs {
    /// USER:PASSWORD@HOST:PORT/REPO
    pub spec: String,
    /// RDF files; the format comes from the extension (.nt .nq .ttl .trig .rdf .owl
    /// .jsonld .n3), optionally followed by .gz.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Put the triples of the files into this graph (IRI) instead of the default graph.
    #[arg(long)]
    pub context: Option<String>,
    /// Statements per request. Each request is one transaction: a file is checked
    /// completely before anything is sent, but a failure midway (server down) can leave
    /// the batches sent so far loaded.
    #[arg(long, default_value_t = 100_000)]
    pub batch_size: usize,
    /// Do not show a progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// The format of a file from its extension, `.gz` looked through.
pub fn format_of(path: &Path) -> Result<(RdfFormat, bool)> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let (name, gzip) = match name.strip_suffix(".gz") {
        Some(n) => (n.to_owned(), true),
        None => (name, false),
    };
    let extension = name.rsplit_once('.').map(|(_, e)| e).unwrap_or_default();
    let format = match extension {
        "owl" => Some(RdfFormat::RdfXml),
        e => RdfFormat::from_extension(e),
    };
    match format {
        Some(f) => Ok((f, gzip)),
        None => bail!(
            "{}: cannot tell the RDF format from the extension '.{extension}' (use .nt, .nq, .ttl, .trig, .rdf, .owl, .jsonld or .n3, optionally .gz)",
            path.display()
        ),
    }
}

pub async fn run(args: LoadArgs) -> Result<()> {
    let api = Api::new(Spec::parse(&args.spec)?)?;
    let url = format!("{}/statements", api.spec.repository_url()?);
    let graph = args
        .context
        .as_deref()
        .map(|g| NamedNode::new(g).map(GraphName::from))
        .transpose()
        .with_context(|| format!("--context must be an IRI, got {:?}", args.context))?;
    let started = Instant::now();
    let mut total = 0usize;
    for path in &args.files {
        let (format, gzip) = format_of(path)?;
        let mut bytes = Vec::new();
        let file =
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        if gzip {
            MultiGzDecoder::new(file).read_to_end(&mut bytes)
        } else {
            std::io::BufReader::new(file).read_to_end(&mut bytes)
        }
        .with_context(|| format!("cannot read {}", path.display()))?;
        // Parse all of it first, so that a syntax error anywhere sends nothing. Blank
        // nodes get labels unique to this load, kept by the server across batches.
        let mut parser = RdfParser::from_format(format);
        if let Some(g) = &graph {
            parser = parser.with_default_graph(g.clone());
        }
        let mut labels = HashMap::new();
        let quads = parser
            .for_slice(&bytes)
            .map(|q| q.map(|q| rename_blank_nodes(q, &mut labels)))
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| {
                format!(
                    "{} is not valid {}; nothing was loaded from it",
                    path.display(),
                    format.name()
                )
            })?;
        drop(bytes);

        let bar = if args.quiet {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(quads.len() as u64)
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{msg} [{bar:40}] {human_pos}/{human_len} statements, {per_sec}, eta {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_message(path.display().to_string());
        let file_started = Instant::now();
        for batch in quads.chunks(args.batch_size.max(1)) {
            let mut body = Vec::with_capacity(batch.len() * 100);
            for quad in batch {
                writeln!(body, "{quad} .")?;
            }
            let request = api
                .request(Method::POST, &format!("{url}?keepBlankNodes=true"))
                .header("content-type", "application/n-quads")
                .body(body);
            api.send(request).await.with_context(|| {
                format!(
                    "loading {} stopped after {} statements",
                    path.display(),
                    bar.position()
                )
            })?;
            bar.inc(batch.len() as u64);
        }
        bar.finish_and_clear();
        let seconds = file_started.elapsed().as_secs_f64();
        eprintln!(
            "{}: {} statements in {:.1} s ({:.0} statements/s)",
            path.display(),
            quads.len(),
            seconds,
            quads.len() as f64 / seconds.max(1e-9)
        );
        total += quads.len();
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "loaded {total} statements from {} file{} in {seconds:.1} s ({:.0} statements/s)",
        args.files.len(),
        if args.files.len() == 1 { "" } else { "s" },
        total as f64 / seconds.max(1e-9)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_come_from_extensions_through_gz() {
        assert_eq!(
            format_of(Path::new("a/b.nt.gz")).unwrap(),
            (RdfFormat::NTriples, true)
        );
        assert_eq!(
            format_of(Path::new("x.TTL")).unwrap(),
            (RdfFormat::Turtle, false)
        );
        assert!(format_of(Path::new("x.csv"))
            .unwrap_err()
            .to_string()
            .contains(".csv"));
    }
}
