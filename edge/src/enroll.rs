//! `edge enroll`: trade a one-time token from `central unit add` for the unit's certificate.
//!
//! The unit makes its key pair here; only a certificate signing request leaves it. Central is
//! authenticated by the digest of its CA certificate carried in the token; from then on the
//! unit trusts only that CA, and central knows the unit by its certificate (mutual TLS).

use std::path::{Path, PathBuf};

use link::identity::Identity;
use link::messages;
use link::pki::{EnrollmentToken, UnitIdentity, unit_key_and_request};
use protocol::interconnect::{CentralMessage, EdgeMessage, EnrollRequest};
use rustls::pki_types::CertificateDer;

/// Why enrolling failed.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    /// The token, a key or a file.
    #[error(transparent)]
    Link(#[from] link::LinkError),
    /// Central could not be reached or the connection broke.
    #[error("cannot reach central at {address}: {message}")]
    Connect {
        /// The address given.
        address: String,
        /// What went wrong.
        message: String,
    },
    /// Central refused the request.
    #[error("central refused the enrollment: {0}")]
    Refused(String),
    /// Central answered something else.
    #[error("central answered unexpectedly: {0}")]
    Protocol(String),
}

/// The directory of the unit's enrolled identity inside its store directory.
pub fn identity_dir(store: &Path) -> PathBuf {
    store.join("identity")
}

/// Enrolls unit `unit_id` with central at `address` using `token`, and stores the identity in
/// `dir`. Returns central's CA fingerprint.
pub async fn enroll(address: &str, token: &str, unit_id: &str, dir: &Path) -> Result<String, EnrollError> {
    let token = EnrollmentToken::parse(token)?;
    let connect_err = |message: String| EnrollError::Connect { address: address.to_owned(), message };
    let addr = tokio::net::lookup_host(address)
        .await
        .map_err(|e| connect_err(e.to_string()))?
        .next()
        .ok_or_else(|| connect_err("the address resolves to nothing".into()))?;
    let (key, csr) = unit_key_and_request(unit_id)?;
    let endpoint = link::endpoint::enrolling_client(addr, token.ca_digest_prefix)?;
    let conn = endpoint
        .connect(addr, link::identity::SERVER_NAME)
        .map_err(|e| connect_err(e.to_string()))?
        .await
        .map_err(|e| connect_err(e.to_string()))?;
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| connect_err(e.to_string()))?;
    let request =
        EdgeMessage::Enroll(EnrollRequest { token_secret: token.secret.to_vec(), unit_id: unit_id.to_owned(), csr });
    messages::write(&mut send, &request).await.map_err(|e| connect_err(e.to_string()))?;
    let answer = messages::read::<CentralMessage>(&mut recv).await.map_err(|e| connect_err(e.to_string()))?;
    conn.close(0u32.into(), b"enrolled");
    endpoint.wait_idle().await;
    let (certificate, ca) = match answer {
        Some(CentralMessage::Enrolled { certificate, ca }) => (certificate, ca),
        Some(CentralMessage::Refused { reason }) => return Err(EnrollError::Refused(reason)),
        other => return Err(EnrollError::Protocol(format!("{other:?}"))),
    };
    let ca = CertificateDer::from(ca);
    if link::pki::ca_digest_prefix(&ca) != token.ca_digest_prefix {
        return Err(EnrollError::Protocol("central sent a CA certificate other than the token's".into()));
    }
    let fingerprint = link::identity::fingerprint(&ca);
    UnitIdentity { identity: Identity { cert: CertificateDer::from(certificate), key }, ca }.save(dir)?;
    Ok(fingerprint)
}
