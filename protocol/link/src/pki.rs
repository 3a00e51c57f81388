//! Central's certificate authority and the units' certificates it issues.
//!
//! Central makes its CA on first start (`ca-cert.der`, `ca-key.der`) and a server certificate
//! signed by it. A unit enrolls once: it makes its own key pair, sends a certificate signing
//! request with a one-time token, and gets back its certificate and the CA certificate. From
//! then on both sides authenticate each other with these (mutual TLS): the unit trusts only
//! certificates issued by its central's CA, central trusts only units whose certificate its
//! CA issued and that are not revoked. Private keys never leave the machine that made them
//! and are stored readable by their owner only.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, CertificateSigningRequestDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};

use crate::LinkError;
use crate::identity::{Identity, SERVER_NAME, fingerprint, read, write_private};

const CA_CERT: &str = "ca-cert.der";
const CA_KEY: &str = "ca-key.der";
const SERVER_CERT: &str = "server-cert.der";
const SERVER_KEY: &str = "server-key.der";
const UNIT_CERT: &str = "unit-cert.der";
const UNIT_KEY: &str = "unit-key.der";

/// How long issued certificates are valid. Units are revoked explicitly, not by expiry.
const VALID_YEARS: i32 = 30;

/// Central's certificate authority.
pub struct CertificateAuthority {
    cert: CertificateDer<'static>,
    key: KeyPair,
}

impl CertificateAuthority {
    /// Loads the CA kept in `dir`, or makes one. Returns whether it was created.
    pub fn load_or_create(dir: &Path) -> Result<(CertificateAuthority, bool), LinkError> {
        let (cert_path, key_path) = (dir.join(CA_CERT), dir.join(CA_KEY));
        if cert_path.exists() && key_path.exists() {
            let cert = CertificateDer::from(read(&cert_path)?);
            let key = KeyPair::try_from(read(&key_path)?.as_slice())?;
            return Ok((CertificateAuthority { cert, key }, false));
        }
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        let id: u64 = fastrand::u64(..);
        name.push(DnType::CommonName, format!("Convoy central CA {id:016x}"));
        params.distinguished_name = name;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = years_from_now(VALID_YEARS);
        let cert = params.self_signed(&key)?.der().clone();
        write_private(&key_path, &key.serialize_der())?;
        write_private(&cert_path, cert.as_ref())?;
        Ok((CertificateAuthority { cert, key }, true))
    }

    /// The CA certificate (what units trust).
    pub fn cert(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// The CA certificate's fingerprint, `sha256:<hex>`.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.cert)
    }

    fn issuer(&self) -> Result<Issuer<'static, &KeyPair>, LinkError> {
        Ok(Issuer::from_ca_cert_der(&self.cert, &self.key)?)
    }

    /// Central's server identity in `dir` (`server-cert.der`, `server-key.der`), issued by
    /// this CA for [`SERVER_NAME`]; made anew when missing. The CA certificate follows the
    /// server's in the chain.
    pub fn server_identity(&self, dir: &Path) -> Result<ServerIdentity, LinkError> {
        let (cert_path, key_path) = (dir.join(SERVER_CERT), dir.join(SERVER_KEY));
        let (cert, key) = if cert_path.exists() && key_path.exists() {
            (CertificateDer::from(read(&cert_path)?), read(&key_path)?)
        } else {
            let key = KeyPair::generate()?;
            let mut params = CertificateParams::new(vec![SERVER_NAME.to_owned()])?;
            params.distinguished_name.push(DnType::CommonName, SERVER_NAME);
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = years_from_now(VALID_YEARS);
            let cert = params.signed_by(&key, &self.issuer()?)?.der().clone();
            write_private(&key_path, &key.serialize_der())?;
            write_private(&cert_path, cert.as_ref())?;
            (cert, key.serialize_der())
        };
        Ok(ServerIdentity {
            chain: vec![cert, self.cert.clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
            ca: self.cert.clone(),
        })
    }

    /// Issues a unit's client certificate for the key in `csr` (a DER certificate signing
    /// request, whose signature proves the unit holds the key). The certificate names the
    /// unit `unit` whatever the request asks for.
    pub fn issue_unit(&self, csr: &[u8], unit: &str) -> Result<CertificateDer<'static>, LinkError> {
        let mut request = CertificateSigningRequestParams::from_der(&CertificateSigningRequestDer::from(csr))?;
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, unit);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = years_from_now(VALID_YEARS);
        request.params = params;
        Ok(request.signed_by(&self.issuer()?)?.der().clone())
    }
}

/// Central's server certificate chain and key.
pub struct ServerIdentity {
    /// The server certificate, then the CA certificate.
    pub chain: Vec<CertificateDer<'static>>,
    /// The server's private key.
    pub key: PrivateKeyDer<'static>,
    /// The CA whose units central accepts.
    pub ca: CertificateDer<'static>,
}

/// A unit's enrolled identity: its key, the certificate central's CA issued for it, and that
/// CA's certificate.
pub struct UnitIdentity {
    /// The unit's certificate and private key.
    pub identity: Identity,
    /// Central's CA certificate: the only issuer the unit trusts.
    pub ca: CertificateDer<'static>,
}

impl UnitIdentity {
    /// The files of an enrolled identity in `dir`.
    pub fn paths(dir: &Path) -> [PathBuf; 3] {
        [dir.join(UNIT_KEY), dir.join(UNIT_CERT), dir.join(CA_CERT)]
    }

    /// Loads the identity enrolled in `dir`; `None` when the unit is not enrolled.
    pub fn load(dir: &Path) -> Result<Option<UnitIdentity>, LinkError> {
        let [key, cert, ca] = Self::paths(dir);
        if !(key.exists() && cert.exists() && ca.exists()) {
            return Ok(None);
        }
        Ok(Some(UnitIdentity {
            identity: Identity {
                cert: CertificateDer::from(read(&cert)?),
                key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(read(&key)?)),
            },
            ca: CertificateDer::from(read(&ca)?),
        }))
    }

    /// Writes the identity into `dir` (created if missing), each file readable by its owner
    /// only; the certificate last, so a half-written enrollment is never taken for a whole one.
    pub fn save(&self, dir: &Path) -> Result<(), LinkError> {
        std::fs::create_dir_all(dir).map_err(|source| LinkError::Io { op: "create", path: dir.into(), source })?;
        let [key, cert, ca] = Self::paths(dir);
        write_private(&key, self.identity.key.secret_der())?;
        write_private(&ca, self.ca.as_ref())?;
        write_private(&cert, self.identity.cert.as_ref())?;
        Ok(())
    }
}

/// A new key pair for a unit and a certificate signing request for it: `(pkcs8 key, csr)`.
pub fn unit_key_and_request(unit: &str) -> Result<(PrivateKeyDer<'static>, Vec<u8>), LinkError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, unit);
    let csr = params.serialize_request(&key)?;
    Ok((PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())), csr.der().to_vec()))
}

/// 1 January, `years` years after the current year.
fn years_from_now(years: i32) -> time::OffsetDateTime {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let year = 1970 + (secs / 31_556_952) as i32;
    rcgen::date_time_ymd(year + years, 1, 1)
}

/// A one-time enrollment token, `cvy1-<secret hex>-<CA digest prefix hex>`: the secret proves
/// the unit was added by an administrator; the prefix of the SHA-256 of central's CA
/// certificate lets the unit authenticate central before it has anything else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollmentToken {
    /// The secret (only its SHA-256 is stored at central).
    pub secret: [u8; 16],
    /// The first 16 bytes of the SHA-256 of central's CA certificate.
    pub ca_digest_prefix: [u8; 16],
}

impl EnrollmentToken {
    /// A new random token for the CA `ca`.
    pub fn new(ca: &CertificateDer<'_>) -> EnrollmentToken {
        let mut secret = [0u8; 16];
        rustls::crypto::ring::default_provider()
            .secure_random
            .fill(&mut secret)
            .expect("the system's random number generator works");
        EnrollmentToken { secret, ca_digest_prefix: ca_digest_prefix(ca) }
    }

    /// Parses a token as printed by `central unit add`.
    pub fn parse(s: &str) -> Result<EnrollmentToken, LinkError> {
        let bad = || LinkError::BadToken(s.trim().to_owned());
        let rest = s.trim().strip_prefix("cvy1-").ok_or_else(bad)?;
        let (secret, prefix) = rest.split_once('-').ok_or_else(bad)?;
        Ok(EnrollmentToken { secret: hex16(secret).ok_or_else(bad)?, ca_digest_prefix: hex16(prefix).ok_or_else(bad)? })
    }

    /// The SHA-256 of the secret, as central stores it.
    pub fn secret_hash(secret: &[u8]) -> [u8; 32] {
        Sha256::digest(secret).into()
    }
}

impl std::fmt::Display for EnrollmentToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cvy1-")?;
        self.secret.iter().try_for_each(|b| write!(f, "{b:02x}"))?;
        write!(f, "-")?;
        self.ca_digest_prefix.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// The first 16 bytes of the SHA-256 of a certificate.
pub fn ca_digest_prefix(cert: &CertificateDer<'_>) -> [u8; 16] {
    let digest = Sha256::digest(cert.as_ref());
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

fn hex16(s: &str) -> Option<[u8; 16]> {
    if s.len() != 32 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn tokens_round_trip_and_refuse_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, _) = CertificateAuthority::load_or_create(dir.path()).unwrap();
        let t = EnrollmentToken::new(ca.cert());
        let s = t.to_string();
        assert_eq!(EnrollmentToken::parse(&format!(" {s}\n")).unwrap(), t);
        assert_eq!(t.ca_digest_prefix, ca_digest_prefix(ca.cert()));
        for bad in ["", "cvy1-", "cvy2-00-00", &s[..s.len() - 1], &s.replace('-', "_"), &format!("{s}0")] {
            assert!(EnrollmentToken::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ca_issues_unit_certificates_and_keys_stay_private() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, created) = CertificateAuthority::load_or_create(dir.path()).unwrap();
        assert!(created);
        let (again, created) = CertificateAuthority::load_or_create(dir.path()).unwrap();
        assert!(!created);
        assert_eq!(again.fingerprint(), ca.fingerprint());
        let server = ca.server_identity(dir.path()).unwrap();
        assert_eq!(server.chain.len(), 2);
        let (key, csr) = unit_key_and_request("bus-7").unwrap();
        let cert = ca.issue_unit(&csr, "bus-7").unwrap();
        let unit = UnitIdentity { identity: Identity { cert, key }, ca: ca.cert().clone() };
        let unit_dir = dir.path().join("identity");
        unit.save(&unit_dir).unwrap();
        for path in UnitIdentity::paths(&unit_dir) {
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", path.display());
        }
        for name in [CA_KEY, SERVER_KEY] {
            let mode = std::fs::metadata(dir.path().join(name)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
        assert!(UnitIdentity::load(&unit_dir).unwrap().is_some());
        assert!(UnitIdentity::load(dir.path()).unwrap().is_none());
        assert!(ca.issue_unit(b"not a csr", "bus-7").is_err());
    }
}
