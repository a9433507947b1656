//! TLS with rustls: the server's certificate, re-read when its files change (cert-manager
//! and Swarm secret rotation) without a restart, and the verification of peers.
//!
//! The port speaks TLS when a certificate is configured; plain HTTP on it is answered
//! with a 400 naming `https://` and closed, unless it is explicitly kept
//! (`keep_plain_http`: the first byte of a connection tells a TLS handshake from an HTTP
//! request, so one port and one address serve both while a cluster moves to TLS).
//!
//! Instances reach each other over `https` as soon as TLS is configured (a certificate
//! or a CA): member addresses stay `HOST:PORT`, so configurations written before TLS
//! stay readable and the scheme is a property of the deployment, not of each member.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// How often the certificate and key files are checked for a change.
pub const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// What the operator configured (`ServerConfig::tls`).
#[derive(Clone, Debug, Default)]
pub struct TlsSettings {
    /// PEM certificate chain and PEM private key served on the port; both or neither.
    pub cert_and_key: Option<(PathBuf, PathBuf)>,
    /// PEM certificates of the CA(s) that peers' certificates must chain to. Without it
    /// peers are checked against the system's trust store.
    pub ca: Option<PathBuf>,
    /// The name peers' certificates must be valid for, whatever address they are reached
    /// at (an IP address on Swarm, every address `--peers` resolves to). Without it, the
    /// host of the address.
    pub peer_name: Option<String>,
    /// Also take plain HTTP on the port while TLS is on.
    pub keep_plain_http: bool,
}

impl TlsSettings {
    /// Whether connections to peers use `https`.
    pub fn peers_use_tls(&self) -> bool {
        self.cert_and_key.is_some() || self.ca.is_some()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} holds no PEM certificate", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{} holds no usable PEM private key: {message}", path.display())]
    Key { path: PathBuf, message: String },
    #[error("the key in {} does not belong to the certificate in {}: {message}", key.display(), cert.display())]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        message: String,
    },
    #[error("cannot use the CA certificates of {}: {message}", path.display())]
    Ca { path: PathBuf, message: String },
    #[error("--tls-peer-name '{0}' is not a valid DNS name or IP address")]
    PeerName(String),
    #[error("--tls-peer-name needs --tls-ca (the CA that issues the peers' certificates)")]
    PeerNameWithoutCa,
    #[error("cannot set up TLS: {0}")]
    Setup(String),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Every certificate in a PEM file (other sections are skipped).
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let text = read(path)?;
    let certificates: Vec<_> = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<_, _>>()
        .map_err(|_| TlsError::NoCertificate {
            path: path.to_owned(),
        })?;
    if certificates.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certificates)
}

/// The certificate chain and key of `cert` and `key`, checked to belong together.
pub fn load_pair(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let chain = certificates(cert)?;
    let key_text = read(key)?;
    let key_der = PrivateKeyDer::from_pem_slice(&key_text).map_err(|e| TlsError::Key {
        path: key.to_owned(),
        message: e.to_string(),
    })?;
    CertifiedKey::from_der(chain, key_der, &provider()).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => TlsError::Mismatch {
            cert: cert.to_owned(),
            key: key.to_owned(),
            message: e.to_string(),
        },
        e => TlsError::Key {
            path: key.to_owned(),
            message: e.to_string(),
        },
    })
}

/// SHA-256 of a certificate, in hex: what an operator compares to tell which
/// certificate is served (`openssl x509 -noout -fingerprint -sha256`).
pub fn fingerprint(certificate: &CertificateDer<'_>) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(certificate.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// What `/metrics` shows of TLS (read at scrape time).
#[derive(Debug, Default)]
pub struct TlsStatus {
    /// Whether the port serves TLS.
    pub serving: AtomicBool,
    /// When the served certificate expires (Unix seconds; 0 if it could not be read).
    pub expires_at: AtomicI64,
    /// Changed pairs loaded since the start.
    pub reloads: AtomicU64,
    /// Changed pairs refused (the previous one kept) since the start.
    pub reload_failures: AtomicU64,
    /// Handshakes that failed or did not end within the header-read timeout.
    pub handshake_failures: AtomicU64,
}

impl TlsStatus {
    fn serve(&self, pair: &CertifiedKey) {
        let expires_at = not_after(pair.cert[0].as_ref()).unwrap_or(0);
        self.expires_at.store(expires_at, Ordering::Relaxed);
        self.serving.store(true, Ordering::Relaxed);
    }
}

/// One DER element: (tag, contents, what follows).
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let length = if first < 0x80 {
        first as usize
    } else {
        let bytes = (first & 0x7f) as usize;
        if bytes == 0 || bytes > 4 || rest.len() < bytes {
            return None;
        }
        let length = rest[..bytes]
            .iter()
            .fold(0usize, |n, &b| (n << 8) | b as usize);
        rest = &rest[bytes..];
        length
    };
    (rest.len() >= length).then(|| (tag, &rest[..length], &rest[length..]))
}

/// The end of a certificate's validity (Unix seconds), read from its DER: Certificate
/// → TBSCertificate → [version], serial, signature, issuer, validity → notAfter.
pub fn not_after(certificate: &[u8]) -> Option<i64> {
    const EXPLICIT_VERSION: u8 = 0xA0;
    let (_, certificate, _) = der_element(certificate)?;
    let (_, tbs, _) = der_element(certificate)?;
    let (tag, _, after_version) = der_element(tbs)?;
    let fields = if tag == EXPLICIT_VERSION {
        after_version
    } else {
        tbs
    };
    let (_, _, fields) = der_element(fields)?; // serial number
    let (_, _, fields) = der_element(fields)?; // signature algorithm
    let (_, _, fields) = der_element(fields)?; // issuer
    let (_, validity, _) = der_element(fields)?;
    let (_, _, validity) = der_element(validity)?; // notBefore
    let (tag, time, _) = der_element(validity)?;
    asn1_time(tag, time)
}

/// UTCTime (`YYMMDDHHMMSSZ`, tag 0x17) or GeneralizedTime (`YYYYMMDDHHMMSSZ`, 0x18), as
/// certificates write them, in Unix seconds.
fn asn1_time(tag: u8, text: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(text).ok()?.strip_suffix('Z')?;
    let number = |s: &str| -> Option<i64> {
        s.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    let (year, rest) = match tag {
        0x17 => {
            let yy = number(text.get(..2)?)?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &text[2..])
        }
        0x18 => (number(text.get(..4)?)?, &text[4..]),
        _ => return None,
    };
    if rest.len() != 10 {
        return None;
    }
    let field = |i: usize| number(&rest[i..i + 2]);
    let (month, day) = (field(0)?, field(2)?);
    let (hour, minute, second) = (field(4)?, field(6)?, field(8)?);
    // Days from 1970-01-01 to the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    Some(days * 86_400 + hour * 3_600 + minute * 60 + second)
}

/// What identifies a file's version: modification time, length and inode (a Kubernetes
/// secret volume swaps a symlink; metadata follows it).
#[derive(Clone, Debug, PartialEq, Eq)]
struct FileStamp(Option<(SystemTime, u64, u64)>);

impl FileStamp {
    fn of(path: &Path) -> Self {
        use std::os::unix::fs::MetadataExt;
        FileStamp(
            std::fs::metadata(path)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len(), m.ino()))),
        )
    }
}

/// The server's certificate, swapped when its files change.
///
/// Rules it keeps: `current` always holds a pair that loaded and matched; a new pair
/// replaces it only whole and only if it loads and matches (else the old one stays and
/// the failure is logged as an error); connections already established keep the
/// certificate they were opened with (each handshake takes the current one).
#[derive(Debug)]
pub struct ReloadingCertificate {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    status: Arc<TlsStatus>,
}

impl ReloadingCertificate {
    fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Checks the files every `RELOAD_CHECK_INTERVAL` and loads a changed pair.
    async fn watch(self: Arc<Self>) {
        let stamps = || (FileStamp::of(&self.cert), FileStamp::of(&self.key));
        let mut seen = stamps();
        let mut tick = tokio::time::interval(RELOAD_CHECK_INTERVAL);
        loop {
            tick.tick().await;
            let now = stamps();
            if now == seen {
                continue;
            }
            // Tried once per change of either file: a pair caught half-written is tried
            // again when its second file lands.
            seen = now;
            let this = self.clone();
            let loaded =
                tokio::task::spawn_blocking(move || load_pair(&this.cert, &this.key)).await;
            match loaded {
                Ok(Ok(pair)) => {
                    let print = fingerprint(&pair.cert[0]);
                    self.status.serve(&pair);
                    self.status.reloads.fetch_add(1, Ordering::Relaxed);
                    *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(pair);
                    tracing::info!(
                        cert = %self.cert.display(),
                        sha256 = %print,
                        "TLS certificate reloaded: new connections get it"
                    );
                }
                Ok(Err(e)) => {
                    self.status.reload_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(
                        error = %e,
                        "the changed TLS certificate or key cannot be used: still serving the previous certificate"
                    )
                }
                Err(e) => tracing::error!(error = %e, "TLS reload task failed"),
            }
        }
    }
}

impl ResolvesServerCert for ReloadingCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// How an accepted connection goes on.
pub enum Accepted {
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    /// Plain HTTP, on a port that keeps it.
    Plain(TcpStream),
    /// Plain HTTP refused (answered 400), or closed before its first byte.
    Refused,
}

/// The TLS side of the listener.
pub struct ServerTls {
    acceptor: tokio_rustls::TlsAcceptor,
    keep_plain_http: bool,
    status: Arc<TlsStatus>,
}

/// The answer to plain HTTP on a port that takes only TLS.
const PLAIN_HTTP_REFUSED: &str = "refused: this server takes only HTTPS; use https://\n";

impl ServerTls {
    /// Loads the pair (a failure stops the start) and starts watching its files.
    pub fn start(
        settings: &TlsSettings,
        status: Arc<TlsStatus>,
    ) -> Result<Option<ServerTls>, TlsError> {
        let Some((cert, key)) = &settings.cert_and_key else {
            return Ok(None);
        };
        let pair = load_pair(cert, key)?;
        tracing::info!(cert = %cert.display(), sha256 = %fingerprint(&pair.cert[0]), "serving TLS");
        status.serve(&pair);
        let certificate = Arc::new(ReloadingCertificate {
            cert: cert.clone(),
            key: key.clone(),
            current: RwLock::new(Arc::new(pair)),
            status: status.clone(),
        });
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Setup(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(certificate.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        tokio::spawn(certificate.watch());
        Ok(Some(ServerTls {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            keep_plain_http: settings.keep_plain_http,
            status,
        }))
    }

    /// Counts a handshake that failed or timed out.
    pub fn handshake_failed(&self) {
        self.status
            .handshake_failures
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Takes a connection through its handshake (the caller bounds the time). A
    /// connection whose first byte is not a TLS handshake record is plain HTTP: kept, or
    /// answered 400 and closed.
    pub async fn accept(&self, stream: TcpStream) -> std::io::Result<Accepted> {
        const HANDSHAKE_RECORD: u8 = 0x16;
        let mut first = [0u8; 1];
        if stream.peek(&mut first).await? == 0 {
            return Ok(Accepted::Refused);
        }
        if first[0] == HANDSHAKE_RECORD {
            let tls = self.acceptor.accept(stream).await?;
            return Ok(Accepted::Tls(Box::new(tls)));
        }
        if self.keep_plain_http {
            return Ok(Accepted::Plain(stream));
        }
        let mut stream = stream;
        let answer = format!(
            "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{PLAIN_HTTP_REFUSED}",
            PLAIN_HTTP_REFUSED.len()
        );
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await?;
        Ok(Accepted::Refused)
    }
}

/// Verifies a peer's certificate against the configured CA, for a fixed name when one
/// is configured (else for the host it was reached at).
///
/// Rules it keeps: the CA file is re-read when it changes (a CA rotation adds the new
/// CA to the bundle, renews the certificates, then drops the old CA); a bundle that
/// does not load is logged and the previous one kept.
#[derive(Debug)]
struct PeerVerifier {
    ca: PathBuf,
    inner: RwLock<Arc<rustls::client::WebPkiServerVerifier>>,
    name: Option<ServerName<'static>>,
}

impl PeerVerifier {
    fn inner(&self) -> Arc<rustls::client::WebPkiServerVerifier> {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    async fn watch(self: Arc<Self>) {
        let mut seen = FileStamp::of(&self.ca);
        let mut tick = tokio::time::interval(RELOAD_CHECK_INTERVAL);
        loop {
            tick.tick().await;
            let now = FileStamp::of(&self.ca);
            if now == seen {
                continue;
            }
            seen = now;
            let ca = self.ca.clone();
            match tokio::task::spawn_blocking(move || ca_verifier(&ca)).await {
                Ok(Ok(verifier)) => {
                    *self.inner.write().unwrap_or_else(|e| e.into_inner()) = verifier;
                    tracing::info!(ca = %self.ca.display(), "TLS CA for peers reloaded");
                }
                Ok(Err(e)) => tracing::error!(
                    error = %e,
                    "the changed TLS CA file cannot be used: peers are still checked against the previous one"
                ),
                Err(e) => tracing::error!(error = %e, "TLS CA reload task failed"),
            }
        }
    }
}

/// A verifier of certificates that chain to the CA certificates in `ca`.
fn ca_verifier(ca: &Path) -> Result<Arc<rustls::client::WebPkiServerVerifier>, TlsError> {
    let ca_error = |message: String| TlsError::Ca {
        path: ca.to_owned(),
        message,
    };
    let mut roots = rustls::RootCertStore::empty();
    for certificate in certificates(ca)? {
        roots
            .add(certificate)
            .map_err(|e| ca_error(e.to_string()))?;
    }
    rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| ca_error(e.to_string()))
}

impl rustls::client::danger::ServerCertVerifier for PeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let name = self.name.as_ref().unwrap_or(server_name);
        self.inner()
            .verify_server_cert(end_entity, intermediates, name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner().supported_verify_schemes()
    }
}

/// The TLS client configuration for connections to peers, when a CA is configured
/// (`None`: the HTTP client's defaults, the system's trust store). Watches the CA file
/// (must run inside the Tokio runtime).
pub fn peer_client_config(
    settings: &TlsSettings,
) -> Result<Option<rustls::ClientConfig>, TlsError> {
    let Some(ca) = &settings.ca else {
        return match &settings.peer_name {
            Some(_) => Err(TlsError::PeerNameWithoutCa),
            None => Ok(None),
        };
    };
    let name = match &settings.peer_name {
        Some(name) => {
            Some(ServerName::try_from(name.clone()).map_err(|_| TlsError::PeerName(name.clone()))?)
        }
        None => None,
    };
    let verifier = Arc::new(PeerVerifier {
        ca: ca.clone(),
        inner: RwLock::new(ca_verifier(ca)?),
        name,
    });
    tokio::spawn(verifier.clone().watch());
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Some(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_times_are_read_as_unix_seconds() {
        assert_eq!(asn1_time(0x17, b"700101000000Z"), Some(0));
        assert_eq!(asn1_time(0x17, b"491231235959Z"), Some(2_524_607_999));
        assert_eq!(asn1_time(0x18, b"20270315120000Z"), Some(1_805_112_000));
        assert_eq!(asn1_time(0x18, b"40960101000000Z"), Some(67_090_118_400));
        assert_eq!(asn1_time(0x17, b"7001010000Z"), None);
        assert_eq!(asn1_time(0x17, b"70010100000aZ"), None);
        assert_eq!(asn1_time(0x04, b"700101000000Z"), None);
    }

    #[test]
    fn der_lengths_are_bounded_by_the_input() {
        assert_eq!(
            der_element(&[0x30, 0x02, 1, 2, 3]),
            Some((0x30, &[1u8, 2][..], &[3u8][..]))
        );
        assert_eq!(der_element(&[0x30, 0x82, 0x01, 0x00, 1]), None);
        assert_eq!(der_element(&[0x30]), None);
        assert_eq!(not_after(b"not a certificate"), None);
    }
}
