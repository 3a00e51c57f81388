//! The technician's local account: one user name and an argon2id hash of the password, kept in
//! `<store>/web/technician.json` (mode 0600), never the password itself.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use serde::{Deserialize, Serialize};

/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 10;

/// What can go wrong with the technician's account.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The account file cannot be read or written.
    #[error("technician account file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The account file does not decode.
    #[error("technician account file {path} is damaged ({message}); set the account again with `edge technician set`")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The password breaks the policy.
    #[error("{0}")]
    Weak(String),
    /// Hashing failed (no random source, or a bad parameter).
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// The stored account.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Credential {
    /// The technician's user name.
    pub user: String,
    /// The argon2id hash of the password, PHC string format.
    pub hash: String,
    /// A provisioning password: it must be changed before anything else is allowed.
    #[serde(default)]
    pub must_change: bool,
}

/// Where the account of the unit with store directory `store` lives.
pub fn credential_path(store: &Path) -> PathBuf {
    store.join("web").join("technician.json")
}

/// Checks a new password against the policy; the error says what to do.
pub fn check_password_policy(user: &str, password: &str) -> Result<(), AuthError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AuthError::Weak(format!("the password must have at least {MIN_PASSWORD_CHARS} characters")));
    }
    if password.eq_ignore_ascii_case(user) {
        return Err(AuthError::Weak("the password must not be the user name".into()));
    }
    if password.chars().any(char::is_control) {
        return Err(AuthError::Weak("the password must not contain control characters".into()));
    }
    Ok(())
}

fn check_user(user: &str) -> Result<(), AuthError> {
    let ok = !user.is_empty()
        && user.len() <= 64
        && user.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(AuthError::Weak("the user name must be 1–64 letters, digits, '-', '_' or '.'".into()))
    }
}

impl Credential {
    /// Hashes `password` (after checking the policy) for `user`.
    pub fn new(user: &str, password: &str, must_change: bool) -> Result<Credential, AuthError> {
        check_user(user)?;
        check_password_policy(user, password)?;
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt).map_err(|e| AuthError::Hash(e.to_string()))?;
        let salt = SaltString::encode_b64(&salt).map_err(|e| AuthError::Hash(e.to_string()))?;
        let hash = argon2::Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| AuthError::Hash(e.to_string()))?
            .to_string();
        Ok(Credential { user: user.to_owned(), hash, must_change })
    }

    /// Whether `user` and `password` match this account (constant time in the password).
    pub fn verify(&self, user: &str, password: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(&self.hash) else {
            return false;
        };
        let password_ok = argon2::Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok();
        password_ok && user == self.user
    }

    /// Reads the account at `path`; `None` when the unit has none yet.
    pub fn load(path: &Path) -> Result<Option<Credential>, AuthError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(AuthError::Io { path: path.to_owned(), source }),
        };
        let credential: Credential = serde_json::from_slice(&bytes)
            .map_err(|e| AuthError::Damaged { path: path.to_owned(), message: e.to_string() })?;
        PasswordHash::new(&credential.hash)
            .map_err(|e| AuthError::Damaged { path: path.to_owned(), message: format!("bad hash: {e}") })?;
        Ok(Some(credential))
    }

    /// Writes the account to `path` atomically (temporary file, fsync, rename), mode 0600.
    pub fn save(&self, path: &Path) -> Result<(), AuthError> {
        let io = |source| AuthError::Io { path: path.to_owned(), source };
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
        let tmp = path.with_extension("json.tmp");
        let mut file =
            std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).map_err(io)?;
        // Mode only applies at creation: a leftover temporary file keeps its own.
        file.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        let json = serde_json::to_vec_pretty(self).map_err(|e| io(std::io::Error::other(e)))?;
        file.write_all(&json).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)?;
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_account_verifies_only_its_password_and_holds_no_plain_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = credential_path(dir.path());
        let c = Credential::new("tech", "correct horse battery", true).unwrap();
        c.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("correct horse"), "{text}");
        assert!(text.contains("$argon2id$"), "{text}");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let back = Credential::load(&path).unwrap().unwrap();
        assert_eq!(back, c);
        assert!(back.verify("tech", "correct horse battery"));
        assert!(!back.verify("tech", "correct horse batterY"));
        assert!(!back.verify("other", "correct horse battery"));
    }

    #[test]
    fn missing_damaged_and_weak() {
        let dir = tempfile::tempdir().unwrap();
        let path = credential_path(dir.path());
        assert_eq!(Credential::load(&path).unwrap(), None);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"{\"user\":\"t\",\"hash\":\"plain\"}").unwrap();
        assert!(matches!(Credential::load(&path), Err(AuthError::Damaged { .. })));
        std::fs::write(&path, b"\xff\x00").unwrap();
        assert!(matches!(Credential::load(&path), Err(AuthError::Damaged { .. })));
        assert!(matches!(Credential::new("tech", "short", false), Err(AuthError::Weak(_))));
        assert!(matches!(Credential::new("a-long-user", "A-LONG-USER", false), Err(AuthError::Weak(_))));
        assert!(matches!(Credential::new("bad user", "long enough pw", false), Err(AuthError::Weak(_))));
    }
}
