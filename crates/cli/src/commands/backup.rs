//! `quadmesh backup SPEC DEST` and `quadmesh restore SRC SPEC`: a repository as one
//! checksummed archive (store checkpoint and replication state at one cut), taken
//! online while writes go on, written to a file or standard output (`-`) so that it can
//! be piped to object storage; restored into a server as a new repository.
//! Point in time: `backup --since PREVIOUS` writes only the transactions since the
//! backup PREVIOUS (full or incremental), and `restore FULL INCR... SPEC --until TIME`
//! replays such a chain up to a time.

use crate::client::Api;
use crate::spec::Spec;
use anyhow::{Context, Result};
use clap::Args;
use futures::StreamExt;
use reqwest::Method;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// USER:PASSWORD@HOST:PORT/REPO
    pub spec: String,
    /// The archive to write, or - for standard output.
    pub dest: PathBuf,
    /// Write an incremental backup: only the transactions since the backup in this file
    /// (full or incremental; the server keeps its log for 7 days after a backup).
    #[arg(long, value_name = "PREVIOUS")]
    pub since: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// SRC... SPEC: the archives to read — one full backup (or - for standard input),
    /// or a full backup followed by the incremental backups after it, in order — then
    /// USER:PASSWORD@HOST:PORT/REPO, the new repository (it must not exist).
    #[arg(required = true, num_args = 2.., value_name = "SRC... SPEC")]
    pub args: Vec<String>,
    /// Restore the state as of this time: only transactions stamped at or before it
    /// (RFC 3339, e.g. 2026-11-25T21:30:00Z or with an offset, or milliseconds since
    /// the epoch).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Make the restored repository the first instance of a new cluster, under this
    /// instance name (HOST:PORT of SPEC is how the others will reach it).
    #[arg(long, value_name = "INSTANCE_NAME")]
    pub new_cluster: Option<String>,
}

pub async fn backup(args: BackupArgs) -> Result<()> {
    let api = Api::new(Spec::parse(&args.spec)?)?;
    let url = format!("{}/backup", api.spec.repository_url()?);
    let mut request = api.request(Method::GET, &url);
    if let Some(previous) = &args.since {
        let cut = cut_of(previous)?;
        request = request.query(&[("since", cut.to_string())]);
    }
    let response = api.send(request).await?;
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
    let (spec, sources) = args.args.split_last().expect("clap requires two");
    let api = Api::new(Spec::parse(spec)?)?;
    let url = format!("{}/restore", api.spec.repository_url()?);
    let until = args.until.as_deref().map(parse_time).transpose()?;
    if sources.len() > 1 || until.is_some() {
        let sources: Vec<PathBuf> = sources.iter().map(PathBuf::from).collect();
        if sources.iter().any(|s| s.as_os_str() == "-") {
            anyhow::bail!("a chain of backups (or --until) is read from files, not standard input");
        }
        let mut request = api
            .request(Method::PUT, &url)
            .header("content-type", CHAIN_TYPE)
            .body(chain_body(sources)?);
        if let Some(until) = until {
            request = request.query(&[("until", until.to_string())]);
        }
        let replayed: serde_json::Value = api.send(request).await?.json().await?;
        eprintln!(
            "restored into {}: the full backup and {} transactions after it{}",
            api.spec.repository_url()?,
            replayed["transactions"],
            match until {
                Some(_) => format!(" ({} later ones left out)", replayed["afterUntil"]),
                None => String::new(),
            }
        );
        let ends = replayed["chainEndsMs"].as_u64().unwrap_or_default();
        if until.is_some_and(|until| until > ends) {
            eprintln!(
                "note: the chain ends at {ends} ms since the epoch, before the time asked for: what was written after its last backup is not in it"
            );
        }
    } else {
        let src = PathBuf::from(&sources[0]);
        let body = if src.as_os_str() == "-" {
            let stdin = tokio::io::stdin();
            reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(stdin, 1 << 20))
        } else {
            let file = tokio::fs::File::open(&src)
                .await
                .with_context(|| format!("cannot read {}", src.display()))?;
            reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(file, 1 << 20))
        };
        api.send(
            api.request(Method::PUT, &url)
                .header("content-type", "application/x-tar")
                .body(body),
        )
        .await?;
        eprintln!("restored into {}", api.spec.repository_url()?);
    }
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

/// The content type of a chain of backups (see the server's `restore`).
const CHAIN_TYPE: &str = "application/x-quadmesh-backup-chain";

/// The cut a backup archive ends at (its version vector, JSON): where an incremental
/// backup after it starts.
fn cut_of(archive: &Path) -> Result<serde_json::Value> {
    let file = std::fs::File::open(archive)
        .with_context(|| format!("cannot read {}", archive.display()))?;
    let mut tar = tar::Archive::new(std::io::BufReader::new(file));
    for entry in tar
        .entries()
        .with_context(|| format!("{} is not a backup archive", archive.display()))?
    {
        let mut entry =
            entry.with_context(|| format!("{} is not a backup archive", archive.display()))?;
        let path = entry.path()?.to_string_lossy().into_owned();
        let field = match path.as_str() {
            "snapshot-state.json" => "version_vector",
            "increment.json" => "vector",
            _ => continue,
        };
        let mut text = String::new();
        std::io::Read::read_to_string(&mut entry, &mut text)?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{}: unreadable {path}", archive.display()))?;
        return value
            .get(field)
            .cloned()
            .with_context(|| format!("{}: {path} has no {field}", archive.display()));
    }
    anyhow::bail!(
        "{} is not a quadmesh backup (no snapshot-state.json nor increment.json)",
        archive.display()
    )
}

/// A tar of the archives `sources`, named 0, 1, … in order, written as it is sent.
fn chain_body(sources: Vec<PathBuf>) -> Result<reqwest::Body> {
    let mut sizes = Vec::new();
    for source in &sources {
        let metadata = std::fs::metadata(source)
            .with_context(|| format!("cannot read {}", source.display()))?;
        sizes.push(metadata.len());
    }
    let (sender, receiver) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(4);
    std::thread::spawn(move || {
        struct Channel(tokio::sync::mpsc::Sender<std::io::Result<Vec<u8>>>);
        impl Write for Channel {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0
                    .blocking_send(Ok(buf.to_vec()))
                    .map_err(|_| std::io::Error::other("the upload stopped"))?;
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let error = sender.clone();
        let write = move || -> std::io::Result<()> {
            let mut builder =
                tar::Builder::new(std::io::BufWriter::with_capacity(1 << 20, Channel(sender)));
            for (index, (source, size)) in sources.iter().zip(sizes).enumerate() {
                let mut header = tar::Header::new_gnu();
                header.set_size(size);
                header.set_mode(0o600);
                header.set_cksum();
                let file = std::fs::File::open(source)?;
                builder.append_data(&mut header, index.to_string(), file.take(size))?;
            }
            builder.into_inner()?.flush()
        };
        if let Err(e) = write() {
            let _ = error.blocking_send(Err(e));
        }
    });
    let stream = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|chunk| (chunk, receiver))
    });
    Ok(reqwest::Body::wrap_stream(stream))
}

/// Milliseconds since the epoch of TIME: a number of them, or RFC 3339.
fn parse_time(text: &str) -> Result<u64> {
    if let Ok(ms) = text.parse::<u64>() {
        return Ok(ms);
    }
    let bad = || {
        anyhow::anyhow!(
            "--until {text:?} is not a time: use RFC 3339 (2026-11-25T21:30:00Z, 2026-11-25T22:30:00.250+01:00) or milliseconds since the epoch"
        )
    };
    let number = |range: std::ops::Range<usize>| -> Result<i64> {
        text.get(range)
            .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)
    };
    let separators = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    if text.len() < 20
        || separators.iter().any(|&(i, c)| text.as_bytes()[i] != c)
        || !matches!(text.as_bytes()[10], b'T' | b't' | b' ')
    {
        return Err(bad());
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(bad());
    }
    let mut rest = &text[19..];
    let mut millis = 0i64;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let padded = format!("{:0<3}", &fraction[..digits.min(3)]);
        millis = padded.parse().map_err(|_| bad())?;
        rest = &fraction[digits..];
    }
    let offset_minutes = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6
            && matches!(rest.as_bytes()[0], b'+' | b'-')
            && rest.as_bytes()[3] == b':' =>
        {
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            let hours: i64 = rest[1..3].parse().map_err(|_| bad())?;
            let minutes: i64 = rest[4..6].parse().map_err(|_| bad())?;
            sign * (hours * 60 + minutes)
        }
        _ => return Err(bad()),
    };
    // Days from 1970-01-01 (Howard Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    u64::try_from(seconds * 1000 + millis).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::parse_time;

    #[test]
    fn times_in_rfc_3339_or_milliseconds() {
        assert_eq!(parse_time("0").unwrap(), 0);
        assert_eq!(parse_time("1970-01-01T00:00:00Z").unwrap(), 0);
        assert_eq!(
            parse_time("2000-03-01T00:00:00.5Z").unwrap(),
            951_868_800_500
        );
        assert_eq!(
            parse_time("2026-11-25T22:30:00.250+01:00").unwrap(),
            parse_time("2026-11-25T21:30:00.250Z").unwrap()
        );
        assert_eq!(
            parse_time("2026-11-25T21:30:00Z").unwrap(),
            1_795_642_200_000
        );
        for bad in [
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2026-11-25T21:30:00",
            "2026-11-25T21:30Z",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }
}
