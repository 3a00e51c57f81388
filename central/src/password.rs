//! Passwords and secrets: the password policy, argon2id hashes (PHC strings), random secrets
//! from the OS, and the SHA-256 digests under which bearer tokens are stored.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use sha2::{Digest, Sha256};

/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 10;

/// Why a password or secret could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// The password breaks the policy; the message says what to do.
    #[error("{0}")]
    Weak(String),
    /// No random source, or a bad hashing parameter.
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// Checks a new password for `user` against the policy; the error says what to do.
pub fn check_policy(user: &str, password: &str) -> Result<(), PasswordError> {
    if password.is_empty() {
        return Err(PasswordError::Weak(format!(
            "the password is empty: give one of at least {MIN_PASSWORD_CHARS} characters on standard input"
        )));
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(PasswordError::Weak(format!(
            "the password is too short: use at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if password.eq_ignore_ascii_case(user) {
        return Err(PasswordError::Weak("the password must not be the user name".into()));
    }
    if password.chars().any(char::is_control) {
        return Err(PasswordError::Weak("the password must not contain control characters".into()));
    }
    Ok(())
}

/// The argon2id hash of `password` with a fresh random salt, as a PHC string.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    let salt = SaltString::encode_b64(&random_bytes::<16>()?).map_err(|e| PasswordError::Hash(e.to_string()))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Whether `password` matches the PHC string `hash` (false for a damaged hash).
pub fn verify(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .is_ok_and(|parsed| argon2::Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

/// Whether `hash` is a PHC string this module can verify against.
pub fn is_valid_hash(hash: &str) -> bool {
    PasswordHash::new(hash).is_ok()
}

fn random_bytes<const N: usize>() -> Result<[u8; N], PasswordError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| PasswordError::Hash(format!("no random source: {e}")))?;
    Ok(bytes)
}

/// A new random secret of 256 bits, as 64 hex digits (session cookies, bearer tokens).
pub fn new_secret() -> Result<String, PasswordError> {
    Ok(hex(&random_bytes::<32>()?))
}

/// A new random password of 20 letters and digits (the first administrator's).
pub fn new_password() -> Result<String, PasswordError> {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    // 256 is not a multiple of the alphabet's length: draw again above the last whole multiple.
    let limit = 256 - 256 % ALPHABET.len();
    let mut out = String::new();
    while out.len() < 20 {
        for b in random_bytes::<32>()? {
            if usize::from(b) < limit && out.len() < 20 {
                out.push(char::from(ALPHABET[usize::from(b) % ALPHABET.len()]));
            }
        }
    }
    Ok(out)
}

/// The SHA-256 digest of a bearer token, in hex: what the database keeps instead of it.
pub fn token_digest(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_only_its_password() {
        let h = hash("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify(&h, "correct horse battery"));
        assert!(!verify(&h, "correct horse batterY"));
        assert!(!verify("plain", "plain"), "a damaged hash matches nothing");
    }

    #[test]
    fn the_policy_says_what_is_wrong() {
        assert!(check_policy("ann", "").unwrap_err().to_string().contains("empty"));
        assert!(check_policy("ann", "short").unwrap_err().to_string().contains("at least 10"));
        assert!(check_policy("a-long-user", "A-LONG-USER").is_err());
        assert!(check_policy("ann", "long enough\u{7}").is_err());
        assert!(check_policy("ann", "long enough pw").is_ok());
    }

    #[test]
    fn secrets_are_fresh_and_digests_are_stable() {
        let (a, b) = (new_secret().unwrap(), new_secret().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_eq!(token_digest(&a), token_digest(&a));
        assert_ne!(token_digest(&a), token_digest(&b));
        let p = new_password().unwrap();
        assert_eq!(p.len(), 20);
        assert!(check_policy("admin", &p).is_ok());
    }
}
