//! Unit provisioning: `central unit add` makes a one-time enrollment token, an enrolling unit
//! trades it (with a certificate signing request) for a certificate from central's CA, and
//! `central unit revoke` withdraws a unit's certificates.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use link::LinkError;
use link::identity::fingerprint;
use link::pki::{CertificateAuthority, EnrollmentToken};
use protocol::interconnect::EnrollRequest;

use crate::registry::{Registry, RegistryError, TokenRefused};

/// How long an enrollment token stays valid unless told otherwise.
pub const DEFAULT_TOKEN_VALIDITY: Duration = Duration::from_secs(24 * 3600);

/// Why enrolling failed.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    /// The token was refused.
    #[error(transparent)]
    Token(#[from] TokenRefused),
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The request's certificate signing request was bad, or issuing failed.
    #[error("cannot issue the unit's certificate: {0}")]
    Certificate(#[from] LinkError),
    /// The unit id is not usable as a name.
    #[error("unit name {0:?} is empty or has control characters")]
    BadName(String),
}

/// Microseconds since the Unix epoch.
pub fn now_us() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64)
}

/// Checks a unit name given by an administrator or a unit.
pub fn check_name(name: &str) -> Result<(), EnrollError> {
    if name.trim().is_empty() || name.chars().any(char::is_control) || name.len() > 128 {
        return Err(EnrollError::BadName(name.to_owned()));
    }
    Ok(())
}

/// Makes a one-time token for unit `name`, valid for `validity`, and records it (replacing an
/// unused earlier one).
pub fn add_unit(
    registry: &mut Registry,
    ca: &CertificateAuthority,
    name: &str,
    validity: Duration,
) -> Result<EnrollmentToken, EnrollError> {
    check_name(name)?;
    let token = EnrollmentToken::new(ca.cert());
    let now = now_us();
    registry.add_enrollment(
        name,
        &EnrollmentToken::secret_hash(&token.secret),
        now,
        now + validity.as_micros() as i64,
    )?;
    Ok(token)
}

/// Answers an enrollment request: uses up its token and returns the unit's new certificate.
pub fn enroll(registry: &mut Registry, ca: &CertificateAuthority, req: &EnrollRequest) -> Result<Vec<u8>, EnrollError> {
    check_name(&req.unit_id)?;
    let hash = EnrollmentToken::secret_hash(&req.token_secret);
    registry.enroll(&hash, &req.unit_id, now_us(), || {
        let cert = ca.issue_unit(&req.csr, &req.unit_id)?;
        let fp = fingerprint(&cert);
        Ok::<_, EnrollError>((cert.to_vec(), fp))
    })
}

/// Opens central's CA in its data directory `dir` (made on first use).
pub fn open_ca(dir: &Path) -> Result<CertificateAuthority, LinkError> {
    let (ca, created) = CertificateAuthority::load_or_create(dir)?;
    if created {
        tracing::info!("made central's certificate authority in {} ({})", dir.display(), ca.fingerprint());
    }
    Ok(ca)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::CatalogLocation;

    fn request(token: &EnrollmentToken, unit: &str) -> EnrollRequest {
        let (_, csr) = link::pki::unit_key_and_request(unit).unwrap();
        EnrollRequest { token_secret: token.secret.to_vec(), unit_id: unit.into(), csr }
    }

    fn a_token_enrolls_its_unit_once_and_revocation_withdraws_it(at: &CatalogLocation) {
        let dir = tempfile::tempdir().unwrap();
        let ca = open_ca(dir.path()).unwrap();
        let mut reg = Registry::open(at).unwrap();
        let token = add_unit(&mut reg, &ca, "bus-7", DEFAULT_TOKEN_VALIDITY).unwrap();
        let wrong = enroll(&mut reg, &ca, &request(&token, "bus-8")).unwrap_err();
        assert!(matches!(wrong, EnrollError::Token(TokenRefused::WrongUnit { .. })), "{wrong}");
        let cert = enroll(&mut reg, &ca, &request(&token, "bus-7")).unwrap();
        assert_eq!(reg.unit_of(&fingerprint(&cert)).unwrap().as_deref(), Some("bus-7"));
        let again = enroll(&mut reg, &ca, &request(&token, "bus-7")).unwrap_err();
        assert!(matches!(again, EnrollError::Token(TokenRefused::Unknown)), "{again}");
        assert!(reg.revoke("bus-7", now_us()).unwrap());
        assert_eq!(reg.unit_of(&fingerprint(&cert)).unwrap(), None);
        assert_eq!(reg.revoked().unwrap(), vec![fingerprint(&cert)]);
    }
    crate::on_both_backends!(
        a_token_enrolls_its_unit_once_and_revocation_withdraws_it,
        super::a_token_enrolls_its_unit_once_and_revocation_withdraws_it
    );

    fn expired_tokens_and_bad_requests_are_refused_without_using_the_token(at: &CatalogLocation) {
        let dir = tempfile::tempdir().unwrap();
        let ca = open_ca(dir.path()).unwrap();
        let mut reg = Registry::open(at).unwrap();
        let old = add_unit(&mut reg, &ca, "bus-1", Duration::ZERO).unwrap();
        std::thread::sleep(Duration::from_millis(2));
        assert!(matches!(
            enroll(&mut reg, &ca, &request(&old, "bus-1")),
            Err(EnrollError::Token(TokenRefused::Expired))
        ));
        let token = add_unit(&mut reg, &ca, "bus-1", DEFAULT_TOKEN_VALIDITY).unwrap();
        let mut bad = request(&token, "bus-1");
        bad.csr = b"garbage".to_vec();
        assert!(matches!(enroll(&mut reg, &ca, &bad), Err(EnrollError::Certificate(_))));
        assert!(enroll(&mut reg, &ca, &request(&token, "bus-1")).is_ok(), "the token survived the bad request");
        assert!(matches!(add_unit(&mut reg, &ca, " ", DEFAULT_TOKEN_VALIDITY), Err(EnrollError::BadName(_))));
    }
    fn one_token_enrolls_once_even_through_two_nodes_at_once(at: &CatalogLocation) {
        let dir = tempfile::tempdir().unwrap();
        let ca = open_ca(dir.path()).unwrap();
        let (mut a, mut b) = (Registry::open(at).unwrap(), Registry::open(at).unwrap());
        for round in 0..5 {
            let unit = format!("bus-{round}");
            let token = add_unit(&mut a, &ca, &unit, DEFAULT_TOKEN_VALIDITY).unwrap();
            let req = request(&token, &unit);
            let (ra, rb) = std::thread::scope(|s| {
                let ta = s.spawn(|| enroll(&mut a, &ca, &req));
                let tb = s.spawn(|| enroll(&mut b, &ca, &req));
                (ta.join().unwrap(), tb.join().unwrap())
            });
            let refused =
                [&ra, &rb].iter().filter(|r| matches!(r, Err(EnrollError::Token(TokenRefused::Unknown)))).count();
            assert_eq!((ra.is_ok() as u8 + rb.is_ok() as u8, refused), (1, 1), "{ra:?} {rb:?}");
        }
    }
    crate::on_both_backends!(
        one_token_enrolls_once_even_through_two_nodes_at_once,
        super::one_token_enrolls_once_even_through_two_nodes_at_once
    );
    crate::on_both_backends!(
        expired_tokens_and_bad_requests_are_refused_without_using_the_token,
        super::expired_tokens_and_bad_requests_are_refused_without_using_the_token
    );
}
