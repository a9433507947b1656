use crate::client::Api;
use crate::spec::Spec;
use anyhow::{bail, Context, Result};
use clap::Args;
use flate2::read::MultiGzDecoder;
use indicatif::{ProgressBar, ProgressStyle};
use oxigraph::io::RdfFormat;
use oxigraph::model::{GraphName, NamedNode, Quad};
use quadmesh_store::ntriples::QuadText;
use quadmesh_store::{check_rdf_parallel, parse_threads, read_quads, BlankNodeRenamer, StoreError};
use reqwest::Method;
use std::io::{BufReader, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

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
    /// Do not show progress.
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

/// How much is handed to the HTTP body at a time.
const CHUNK_BYTES: usize = 256 << 10;
/// Chunks waiting for the network: with [`CHUNK_BYTES`], what a load holds in memory.
const QUEUED_CHUNKS: usize = 8;
/// Requests (batches) on their way at once: one being committed, the next being sent
/// and parsed meanwhile.
const IN_FLIGHT: usize = 2;

pub async fn run(args: LoadArgs) -> Result<()> {
    let api = Arc::new(Api::new(Spec::parse(&args.spec)?)?);
    let url = format!(
        "{}/statements?keepBlankNodes=true",
        api.spec.repository_url()?
    );
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
        let source = Source {
            path: path.clone(),
            format,
            gzip,
            graph: graph.clone(),
            size: std::fs::metadata(path)
                .with_context(|| format!("cannot open {}", path.display()))?
                .len(),
        };
        let file_started = Instant::now();
        // Checked completely first, so that a syntax error anywhere sends nothing.
        let progress = Progress::new(&source, "checking", args.quiet);
        let read = progress.bytes.clone();
        let checking = source.clone();
        let count = watch(
            &progress,
            tokio::task::spawn_blocking(move || checking.check(&read)),
        )
        .await??;
        progress.finish();

        let progress = Progress::new(&source, "loading", args.quiet);
        let (batches_tx, mut batches) = mpsc::channel(1);
        let read = progress.bytes.clone();
        let batch_size = args.batch_size.max(1);
        let sending = source.clone();
        let producer = tokio::task::spawn_blocking(move || {
            sending.send_batches(&read, batch_size, batches_tx)
        });
        let upload = async {
            let mut sent = 0usize;
            // Requests on their way, oldest first: the next batch is sent while the
            // server commits the one before, so that it parses one while writing the
            // other. Each runs as its own task (its body is fed as the file is parsed).
            let mut in_flight = std::collections::VecDeque::new();
            let answered = |answer: Result<Result<usize>, tokio::task::JoinError>, sent: usize| {
                answer.context("a request task failed")?.with_context(|| {
                    format!("loading {} stopped after {sent} statements", path.display())
                })
            };
            while let Some(chunks) = batches.recv().await {
                let request = api
                    .request(Method::POST, &url)
                    .header("content-type", "application/n-quads")
                    .body(reqwest::Body::wrap_stream(body_stream(chunks)));
                let api = api.clone();
                in_flight.push_back(tokio::spawn(async move {
                    let response = api.send(request).await?;
                    // The server answers how many statements the batch held.
                    response
                        .json::<usize>()
                        .await
                        .context("the server's answer is not a count")
                }));
                if in_flight.len() >= IN_FLIGHT {
                    let oldest = in_flight.pop_front().expect("one is on its way");
                    sent += answered(oldest.await, sent)?;
                }
            }
            while let Some(oldest) = in_flight.pop_front() {
                sent += answered(oldest.await, sent)?;
            }
            anyhow::Ok(sent)
        };
        let sent = watch(&progress, upload).await;
        // The producer stops at its next chunk once the batches are no longer taken.
        drop(batches);
        let produced = producer.await?;
        let sent = sent?;
        produced?;
        progress.finish();
        let seconds = file_started.elapsed().as_secs_f64();
        eprintln!(
            "{}: {sent} statements in {seconds:.1} s ({:.0} statements/s)",
            path.display(),
            sent as f64 / seconds.max(1e-9)
        );
        if sent != count {
            bail!(
                "{}: {count} statements read but {sent} loaded",
                path.display()
            );
        }
        total += sent;
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

/// One batch on its way: its N-Quads as they are written.
type Batch = mpsc::Receiver<Vec<u8>>;

fn body_stream(
    chunks: mpsc::Receiver<Vec<u8>>,
) -> impl futures::Stream<Item = std::io::Result<Vec<u8>>> + Send + Sync + 'static {
    futures::stream::unfold(chunks, |mut chunks| async move {
        let chunk = chunks.recv().await?;
        Some((Ok(chunk), chunks))
    })
}

/// A file to load.
#[derive(Clone)]
struct Source {
    path: PathBuf,
    format: RdfFormat,
    gzip: bool,
    graph: Option<GraphName>,
    /// Bytes on disk (compressed, for `.gz`): what progress counts.
    size: u64,
}

/// Counts the bytes read through it.
struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Progress of one pass over a file, by bytes read from disk: a bar with rate and ETA
/// when stderr is a terminal, a line every [`LOG_EVERY`] otherwise (logs), or nothing.
struct Progress {
    bytes: Arc<AtomicU64>,
    bar: Option<ProgressBar>,
    log: bool,
    what: String,
    size: u64,
    started: Instant,
}

/// How often progress is written when stderr is not a terminal.
const LOG_EVERY: Duration = Duration::from_secs(10);

impl Progress {
    fn new(source: &Source, phase: &str, quiet: bool) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let what = format!("{}: {phase}", source.path.display());
        let bar = (!quiet && terminal).then(|| {
            let bar = ProgressBar::new(source.size);
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {binary_bytes}/{binary_total_bytes}, {binary_bytes_per_sec}, eta {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_message(what.clone());
            bar
        });
        Progress {
            bytes: Arc::default(),
            bar,
            log: !quiet && !terminal,
            what,
            size: source.size,
            started: Instant::now(),
        }
    }

    fn show(&self) {
        if let Some(bar) = &self.bar {
            bar.set_position(self.bytes.load(Ordering::Relaxed));
        }
    }

    fn log_line(&self) {
        let done = self.bytes.load(Ordering::Relaxed);
        let seconds = self.started.elapsed().as_secs_f64().max(1e-9);
        let rate = done as f64 / seconds;
        let eta = if rate > 0.0 {
            format!("{:.0} s", self.size.saturating_sub(done) as f64 / rate)
        } else {
            "unknown".into()
        };
        const MIB: f64 = 1048576.0;
        eprintln!(
            "{}: {:.1}/{:.1} MiB ({:.0}%), {:.1} MiB/s, eta {eta}",
            self.what,
            done as f64 / MIB,
            self.size as f64 / MIB,
            100.0 * done as f64 / self.size.max(1) as f64,
            rate / MIB,
        );
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Runs `work`, showing progress meanwhile.
async fn watch<T>(progress: &Progress, work: impl std::future::Future<Output = T>) -> T {
    tokio::pin!(work);
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let mut logged = Instant::now();
    loop {
        tokio::select! {
            out = &mut work => return out,
            _ = tick.tick() => {
                progress.show();
                if progress.log && logged.elapsed() >= LOG_EVERY {
                    progress.log_line();
                    logged = Instant::now();
                }
            }
        }
    }
}

impl Source {
    /// Reads the file from its start as a stream, handing each quad to `each`; counts the
    /// bytes read from disk into `read`. Blocking.
    fn each_quad(
        &self,
        read: &Arc<AtomicU64>,
        mut each: impl FnMut(Quad) -> Result<()>,
    ) -> Result<usize> {
        // As the server reads uploads: N-Triples and N-Quads IRIs as AllegroGraph keeps
        // them (`\u` escapes stand for any character).
        let mut count = 0;
        for quad in read_quads(self.format, self.reader(read)?, None, self.graph.as_ref())? {
            let quad = quad
                .map_err(|e| anyhow::anyhow!(e))
                .with_context(|| self.invalid())?;
            each(quad)?;
            count += 1;
        }
        Ok(count)
    }

    /// Checks the whole file as [`Source::each_quad`] reads it, on every core for
    /// N-Triples and N-Quads; answers how many statements it holds. Blocking.
    fn check(&self, read: &Arc<AtomicU64>) -> Result<usize> {
        check_rdf_parallel(
            self.format,
            self.reader(read)?,
            None,
            self.graph.as_ref(),
            parse_threads(),
        )
        .map_err(|e| match e {
            // The parser's words, as the serial read gives them.
            StoreError::InvalidRdf(message) => anyhow::anyhow!(message),
            e => anyhow::anyhow!(e),
        })
        .with_context(|| self.invalid())
    }

    fn invalid(&self) -> String {
        format!(
            "{} is not valid {}; nothing was loaded from it",
            self.path.display(),
            self.format.name()
        )
    }

    /// The file from its start, decompressed; counts the bytes read from disk into `read`.
    fn reader(&self, read: &Arc<AtomicU64>) -> Result<Box<dyn Read>> {
        let file = std::fs::File::open(&self.path)
            .with_context(|| format!("cannot open {}", self.path.display()))?;
        let counted = Counting {
            inner: file,
            read: read.clone(),
        };
        Ok(if self.gzip {
            Box::new(BufReader::new(MultiGzDecoder::new(BufReader::new(counted))))
        } else {
            Box::new(BufReader::with_capacity(256 << 10, counted))
        })
    }

    /// Parses the file again and hands it over in batches of `batch_size` statements,
    /// each a channel of N-Quads chunks written as the parse goes. Blank nodes get labels
    /// unique to this load (the same label, the same node, across batches). Stops when
    /// the batches are no longer taken. Blocking.
    fn send_batches(
        &self,
        read: &Arc<AtomicU64>,
        batch_size: usize,
        batches: mpsc::Sender<Batch>,
    ) -> Result<()> {
        let renamer = BlankNodeRenamer::default();
        let mut batch: Option<(usize, mpsc::Sender<Vec<u8>>)> = None;
        let mut buffer = Vec::with_capacity(CHUNK_BYTES + 4096);
        let stopped = || anyhow::anyhow!("the upload stopped");
        let result = self.each_quad(read, |quad| {
            if batch.is_none() {
                let (tx, rx) = mpsc::channel(QUEUED_CHUNKS);
                batches.blocking_send(rx).map_err(|_| stopped())?;
                batch = Some((0, tx));
            }
            let (in_batch, tx) = batch.as_mut().expect("a batch is open");
            writeln!(buffer, "{} .", QuadText(renamer.rename(quad).as_ref()))?;
            *in_batch += 1;
            let full = *in_batch == batch_size;
            if full || buffer.len() >= CHUNK_BYTES {
                let chunk = std::mem::replace(&mut buffer, Vec::with_capacity(CHUNK_BYTES + 4096));
                tx.blocking_send(chunk).map_err(|_| stopped())?;
            }
            if full {
                batch = None;
            }
            Ok(())
        });
        if let Some((_, tx)) = &batch {
            if !buffer.is_empty() {
                tx.blocking_send(buffer).map_err(|_| stopped())?;
            }
        }
        result.map(|_| ())
    }
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
