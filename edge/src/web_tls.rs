//! HTTPS for the unit's local page: a certificate the unit makes for itself on first use (kept
//! in `<store>/web/https-cert.der` and `https-key.der`, the key mode 0600), and a listener
//! that completes TLS handshakes off the accept loop, for `axum::serve`.
//!
//! The unit's identity certificate from central cannot serve here: it is issued for client
//! authentication only. Browsers do not know this certificate either: the technician checks
//! its SHA-256 fingerprint (logged at start and shown on the page) once.

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;

/// How long a client may take to complete its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What can go wrong setting up HTTPS.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// A certificate or key file cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The certificate cannot be made.
    #[error("cannot make the page's certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refuses the certificate or key (damaged files: delete both to make new ones).
    #[error(
        "the page's certificate or key is unusable ({0}); delete https-cert.der and https-key.der to make new ones"
    )]
    Rustls(#[from] rustls::Error),
}

/// The page's certificate and key.
pub struct PageCertificate {
    /// The certificate (DER).
    pub cert: CertificateDer<'static>,
    /// Its private key (PKCS#8 DER).
    pub key: PrivatePkcs8KeyDer<'static>,
    /// SHA-256 of the certificate, `AA:BB:…`, as browsers show it.
    pub fingerprint: String,
}

/// The SHA-256 fingerprint of `der` as browsers show it.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    digest.as_ref().iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

fn write_new(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

impl PageCertificate {
    /// Loads the certificate of the store at `store`, making one for `unit_id` (and
    /// `localhost`) the first time.
    pub fn load_or_create(store: &Path, unit_id: &str) -> Result<PageCertificate, TlsSetupError> {
        let dir = store.join("web");
        let (cert_path, key_path) = (dir.join("https-cert.der"), dir.join("https-key.der"));
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| TlsSetupError::Io { path, source }
        };
        if !cert_path.exists() || !key_path.exists() {
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
            let made = rcgen::generate_simple_self_signed(vec![unit_id.to_owned(), "localhost".to_owned()])?;
            write_new(&key_path, &made.signing_key.serialize_der(), 0o600).map_err(io(&key_path))?;
            write_new(&cert_path, made.cert.der(), 0o644).map_err(io(&cert_path))?;
            tracing::info!("made the page's HTTPS certificate {}", cert_path.display());
        }
        let cert = std::fs::read(&cert_path).map_err(io(&cert_path))?;
        let key = std::fs::read(&key_path).map_err(io(&key_path))?;
        Ok(PageCertificate {
            fingerprint: fingerprint(&cert),
            cert: CertificateDer::from(cert),
            key: PrivatePkcs8KeyDer::from(key),
        })
    }

    /// A rustls server configuration (HTTP/1.1) with this certificate.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsSetupError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(vec![self.cert.clone()], PrivateKeyDer::Pkcs8(self.key.clone_key()))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// A listener of TLS connections for `axum::serve`: handshakes run in tasks of their own, so a
/// slow or silent client holds up nobody.
pub struct TlsListener {
    local: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

impl TlsListener {
    /// Accepts on `tcp` with `config` until the returned listener is dropped.
    pub fn new(tcp: TcpListener, config: Arc<rustls::ServerConfig>) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let (tx, ready) = mpsc::channel(16);
        tokio::spawn(async move {
            loop {
                let (stream, peer) = match tcp.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!("https: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let (acceptor, sender) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = sender.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, "https: handshake failed: {e}"),
                        Err(_) => tracing::debug!(%peer, "https: handshake timed out"),
                    }
                });
                if tx.is_closed() {
                    break;
                }
            }
        });
        Ok(TlsListener { local, ready })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// Marks requests that came over HTTPS (the session cookie is then `Secure`).
#[derive(Debug, Clone, Copy)]
pub struct OverTls;

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_certificate_is_made_once_and_its_key_kept_private() {
        let dir = tempfile::tempdir().unwrap();
        let first = PageCertificate::load_or_create(dir.path(), "bus-1").unwrap();
        let again = PageCertificate::load_or_create(dir.path(), "bus-1").unwrap();
        assert_eq!(first.fingerprint, again.fingerprint);
        assert_eq!(first.fingerprint.len(), 32 * 3 - 1);
        let mode = std::fs::metadata(dir.path().join("web/https-key.der")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        first.server_config().unwrap();
        std::fs::write(dir.path().join("web/https-key.der"), b"garbage").unwrap();
        let damaged = PageCertificate::load_or_create(dir.path(), "bus-1").unwrap().server_config();
        assert!(matches!(damaged, Err(TlsSetupError::Rustls(_))));
    }
}
