//! TLS identities: a self-signed certificate made on first start and kept on disk, and
//! SHA-256 fingerprints for pinning it.

use std::path::Path;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};

use crate::LinkError;

/// The DNS name in Convoy's self-signed certificates (peers pin the key, not the name).
pub const SERVER_NAME: &str = "convoy-central";

/// A certificate with its private key.
#[derive(Debug)]
pub struct Identity {
    /// The DER certificate.
    pub cert: CertificateDer<'static>,
    /// The DER PKCS#8 private key.
    pub key: PrivateKeyDer<'static>,
}

impl Identity {
    /// Makes a new self-signed identity for `SERVER_NAME` with an ECDSA P-256 key.
    pub fn generate() -> Result<Identity, LinkError> {
        let certified = rcgen::generate_simple_self_signed(vec![SERVER_NAME.to_owned()])?;
        Ok(Identity {
            cert: certified.cert.der().clone(),
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der())),
        })
    }

    /// Loads the identity kept in `dir` (`tls-cert.der`, `tls-key.der`), or makes one and
    /// writes it there (the key readable by the owner only). Returns whether it was created.
    pub fn load_or_create(dir: &Path) -> Result<(Identity, bool), LinkError> {
        let cert_path = dir.join("tls-cert.der");
        let key_path = dir.join("tls-key.der");
        if cert_path.exists() && key_path.exists() {
            let cert = read(&cert_path)?;
            let key = read(&key_path)?;
            return Ok((
                Identity { cert: CertificateDer::from(cert), key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)) },
                false,
            ));
        }
        let id = Identity::generate()?;
        write_private(&key_path, id.key.secret_der())?;
        write_private(&cert_path, id.cert.as_ref())?;
        Ok((id, true))
    }

    /// The certificate's fingerprint, `sha256:<hex>`.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.cert)
    }
}

/// The SHA-256 fingerprint of a DER certificate, as `sha256:<64 lowercase hex digits>`.
pub fn fingerprint(cert: &[u8]) -> String {
    let digest = Sha256::digest(cert);
    let mut s = String::with_capacity(7 + 64);
    s.push_str("sha256:");
    for b in digest {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Checks and normalises a fingerprint given by a user (case-insensitive hex, colons allowed).
pub fn parse_fingerprint(s: &str) -> Result<String, LinkError> {
    let bad = || LinkError::BadFingerprint(s.to_owned());
    let hex = s.trim().strip_prefix("sha256:").ok_or_else(bad)?;
    let hex: String = hex.chars().filter(|c| *c != ':').collect::<String>().to_ascii_lowercase();
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(bad());
    }
    Ok(format!("sha256:{hex}"))
}

pub(crate) fn read(path: &Path) -> Result<Vec<u8>, LinkError> {
    std::fs::read(path).map_err(|source| LinkError::Io { op: "read", path: path.into(), source })
}

/// Writes a file readable by its owner only, durably.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), LinkError> {
    crate::durable::write_durably(path, bytes, 0o600).map_err(|source| LinkError::Io {
        op: "write",
        path: path.into(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn identity_persists_with_private_key_mode() {
        let dir = tempfile::tempdir().unwrap();
        let (a, created) = Identity::load_or_create(dir.path()).unwrap();
        assert!(created);
        let (b, created) = Identity::load_or_create(dir.path()).unwrap();
        assert!(!created);
        assert_eq!(a.fingerprint(), b.fingerprint());
        let mode = std::fs::metadata(dir.path().join("tls-key.der")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn fingerprints_parse_and_normalise() {
        let fp = fingerprint(b"abc");
        assert_eq!(parse_fingerprint(&fp.to_uppercase().replace("SHA256", "sha256")).unwrap(), fp);
        assert!(parse_fingerprint("sha256:abcd").is_err());
        assert!(parse_fingerprint("md5:00").is_err());
    }
}
