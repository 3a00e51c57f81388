//! QUIC endpoints for both ends: central's server with its self-signed identity, and the
//! edge's client that accepts central only by certificate fingerprint.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::LinkError;
use crate::identity::{Identity, fingerprint};

/// How often an idle connection is pinged, so NAT bindings stay open and loss is noticed.
pub const KEEP_ALIVE: Duration = Duration::from_secs(3);
/// How long without any packet before a connection counts as lost.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn transport() -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.keep_alive_interval(Some(KEEP_ALIVE));
    t.max_idle_timeout(Some(IDLE_TIMEOUT.try_into().expect("idle timeout fits a VarInt")));
    Arc::new(t)
}

/// Binds central's QUIC server endpoint on `addr` with `identity`.
pub fn server(addr: SocketAddr, identity: &Identity) -> Result<quinn::Endpoint, LinkError> {
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(vec![identity.cert.clone()], identity.key.clone_key())?;
    tls.alpn_protocols = vec![protocol::ALPN.to_vec()];
    let crypto = QuicServerConfig::try_from(tls).map_err(|e| LinkError::Endpoint(e.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(transport());
    quinn::Endpoint::server(config, addr).map_err(|e| LinkError::Endpoint(format!("cannot listen on {addr}: {e}")))
}

/// What the edge accepts as central's certificate.
#[derive(Debug, Clone)]
pub enum Pin {
    /// Only a certificate with this fingerprint (`sha256:<hex>`).
    Fingerprint(String),
    /// Any certificate (trust on first use); the caller pins what it saw afterwards.
    FirstUse,
}

/// The edge's client endpoint, bound to an ephemeral port of `peer`'s address family.
pub fn client(peer: SocketAddr, pin: Pin) -> Result<quinn::Endpoint, LinkError> {
    let verifier = Arc::new(PinnedVerifier { pin, provider: provider(), seen: Mutex::new(None) });
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    tls.alpn_protocols = vec![protocol::ALPN.to_vec()];
    let crypto = QuicClientConfig::try_from(tls).map_err(|e| LinkError::Endpoint(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(transport());
    let local: SocketAddr =
        if peer.is_ipv4() { (Ipv4Addr::UNSPECIFIED, 0).into() } else { (Ipv6Addr::UNSPECIFIED, 0).into() };
    let mut endpoint =
        quinn::Endpoint::client(local).map_err(|e| LinkError::Endpoint(format!("cannot bind a UDP socket: {e}")))?;
    endpoint.set_default_client_config(config);
    Ok(endpoint)
}

/// The fingerprint of the certificate the peer of `conn` presented.
pub fn peer_fingerprint(conn: &quinn::Connection) -> Option<String> {
    let identity = conn.peer_identity()?;
    let certs = identity.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    certs.first().map(|c| fingerprint(c))
}

#[derive(Debug)]
struct PinnedVerifier {
    pin: Pin,
    provider: Arc<CryptoProvider>,
    seen: Mutex<Option<String>>,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = fingerprint(end_entity);
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some(got.clone());
        }
        match &self.pin {
            Pin::FirstUse => Ok(ServerCertVerified::assertion()),
            Pin::Fingerprint(want) if *want == got => Ok(ServerCertVerified::assertion()),
            Pin::Fingerprint(want) => {
                Err(rustls::Error::General(format!("central's certificate {got} does not match the pinned {want}")))
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}
