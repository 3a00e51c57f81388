//! QUIC endpoints for both ends: central's server, which asks units for their certificates;
//! an enrolled unit's client (mutual TLS under central's CA); and the client a unit uses once,
//! to enroll, which trusts central by the CA digest in its enrollment token.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::LinkError;
use crate::identity::fingerprint;
use crate::live_window::LiveStreams;
use crate::pki::{ServerIdentity, UnitIdentity};

/// How often an idle connection is pinged, so NAT bindings stay open and loss is noticed.
pub const KEEP_ALIVE: Duration = Duration::from_secs(3);
/// The RTT assumed before the first measurement (sets how soon handshake packets are resent).
pub const INITIAL_RTT: Duration = Duration::from_millis(100);
/// How long without any packet before a connection counts as lost.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Bytes of datagrams each end buffers, sending and receiving.
pub const DATAGRAM_BUFFER_BYTES: usize = 2 * 1024 * 1024;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The queue delay a sender's window aims at while it has a live stream open: `target` unless
/// `CONVOY_QUIC_LIVE_QUEUE_MS` sets another (for benchmarks; `0` turns the live bound off, as
/// before it existed).
fn live_queue_target() -> Option<Duration> {
    match std::env::var("CONVOY_QUIC_LIVE_QUEUE_MS").ok().and_then(|v| v.parse::<u64>().ok()) {
        Some(0) => None,
        Some(ms) => Some(Duration::from_millis(ms)),
        None => Some(crate::live_window::DEFAULT_LIVE_QUEUE_TARGET),
    }
}

fn transport(live: Option<&LiveStreams>) -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.keep_alive_interval(Some(KEEP_ALIVE));
    t.max_idle_timeout(Some(IDLE_TIMEOUT.try_into().expect("idle timeout fits a VarInt")));
    // Vehicles' links lose packets for reasons other than congestion (radio, handovers): a
    // loss-based controller would collapse there; BBR follows the measured bandwidth, and its
    // window is kept near one bandwidth-delay product so live video does not wait behind a
    // queue of bulk data at the bottleneck (`congestion.rs`).
    // For side-by-side benchmarks, `CONVOY_QUIC_CONGESTION=bbr` selects quinn's BBR unchanged and
    // `=lowqueue` the low-queue window without its bound by the measured delivery rate.
    match std::env::var("CONVOY_QUIC_CONGESTION").as_deref() {
        Ok("bbr") => t.congestion_controller_factory(Arc::new(quinn::congestion::BbrConfig::default())),
        Ok("lowqueue") => {
            t.congestion_controller_factory(Arc::new(crate::congestion::LowQueueBbrConfig::without_gentle_startup()))
        }
        _ => {
            let mut config = crate::congestion::LowQueueBbrConfig::default();
            // While this side sends live video, the window also keeps the bottleneck's queue
            // short (`live_window.rs`).
            if let (Some(streams), Some(target)) = (live, live_queue_target()) {
                config = config.with_live(streams.clone(), target);
            }
            t.congestion_controller_factory(Arc::new(config))
        }
    };
    // A lost handshake packet is sent again after about three initial RTTs: 100 ms (instead of
    // quinn's 333 ms) brings a unit back within a fraction of a second after a tunnel.
    t.initial_rtt(INITIAL_RTT);
    // Live frames travel as datagrams to a central that asks for them (`live_datagram`): both
    // ends accept them; a unit's send buffer holds about a second of a 16 Mbit/s camera (quinn
    // drops the oldest when it overflows, which the receiver then asks for again or skips).
    t.datagram_receive_buffer_size(Some(DATAGRAM_BUFFER_BYTES));
    t.datagram_send_buffer_size(DATAGRAM_BUFFER_BYTES);
    Arc::new(t)
}

/// Binds central's QUIC server endpoint on `addr`. Units present a client certificate issued
/// by `identity.ca`; a connection without one may only enroll (checked after the handshake).
pub fn server(addr: SocketAddr, identity: &ServerIdentity) -> Result<quinn::Endpoint, LinkError> {
    let mut roots = RootCertStore::empty();
    roots.add(identity.ca.clone())?;
    let clients = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .allow_unauthenticated()
        .build()
        .map_err(|e| LinkError::Endpoint(format!("client verifier: {e}")))?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(clients)
        .with_single_cert(identity.chain.clone(), identity.key.clone_key())?;
    tls.alpn_protocols = vec![protocol::ALPN.to_vec()];
    let crypto = QuicServerConfig::try_from(tls).map_err(|e| LinkError::Endpoint(e.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(transport(None));
    quinn::Endpoint::server(config, addr).map_err(|e| LinkError::Endpoint(format!("cannot listen on {addr}: {e}")))
}

/// An enrolled unit's client endpoint: it presents its certificate and accepts only a server
/// certificate for [`SERVER_NAME`] issued by its central's CA.
pub fn client(peer: SocketAddr, unit: &UnitIdentity) -> Result<quinn::Endpoint, LinkError> {
    client_sending_live(peer, unit, None)
}

/// [`client`] for a unit that sends live video on its connections: while any of `live` is
/// open, the congestion window keeps the bottleneck's queue short ([`crate::live_window`]).
/// Use one [`LiveStreams`] per endpoint (its connections share it).
pub fn client_sending_live(
    peer: SocketAddr,
    unit: &UnitIdentity,
    live: Option<&LiveStreams>,
) -> Result<quinn::Endpoint, LinkError> {
    let mut roots = RootCertStore::empty();
    roots.add(unit.ca.clone())?;
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_client_auth_cert(vec![unit.identity.cert.clone()], unit.identity.key.clone_key())?;
    tls.alpn_protocols = vec![protocol::ALPN.to_vec()];
    client_endpoint(peer, tls, live)
}

/// A unit's endpoint for enrolling, before it has a certificate: it accepts central only if
/// central's chain ends in a CA certificate whose SHA-256 starts with `ca_digest_prefix` (from
/// the enrollment token) and the server certificate is valid under that CA.
pub fn enrolling_client(peer: SocketAddr, ca_digest_prefix: [u8; 16]) -> Result<quinn::Endpoint, LinkError> {
    let verifier = Arc::new(TokenVerifier { ca_digest_prefix, provider: provider() });
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    tls.alpn_protocols = vec![protocol::ALPN.to_vec()];
    client_endpoint(peer, tls, None)
}

fn client_endpoint(
    peer: SocketAddr,
    tls: rustls::ClientConfig,
    live: Option<&LiveStreams>,
) -> Result<quinn::Endpoint, LinkError> {
    let crypto = QuicClientConfig::try_from(tls).map_err(|e| LinkError::Endpoint(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(transport(live));
    let local: SocketAddr =
        if peer.is_ipv4() { (Ipv4Addr::UNSPECIFIED, 0).into() } else { (Ipv6Addr::UNSPECIFIED, 0).into() };
    let mut endpoint =
        quinn::Endpoint::client(local).map_err(|e| LinkError::Endpoint(format!("cannot bind a UDP socket: {e}")))?;
    endpoint.set_default_client_config(config);
    Ok(endpoint)
}

/// The fingerprint of the certificate the peer of `conn` presented, if it presented one.
pub fn peer_fingerprint(conn: &quinn::Connection) -> Option<String> {
    let identity = conn.peer_identity()?;
    let certs = identity.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    certs.first().map(|c| fingerprint(c))
}

#[derive(Debug)]
struct TokenVerifier {
    ca_digest_prefix: [u8; 16],
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for TokenVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ca = intermediates.iter().find(|c| Sha256::digest(c.as_ref())[..16] == self.ca_digest_prefix).ok_or_else(
            || {
                rustls::Error::General(
                    "central's CA is not the one the enrollment token names: wrong central address, or a token \
                     from another central"
                        .into(),
                )
            },
        )?;
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        inner.verify_server_cert(end_entity, &[], server_name, ocsp_response, now)
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
