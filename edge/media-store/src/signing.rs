//! The unit's Ed25519 key that signs sealed segments, and checking those signatures.
//!
//! Kept in `<store>/keys/`: `signing.pk8` (PKCS#8, mode 0600) and `signing.pub` (the raw
//! 32-byte public key as hex), so a store copied off a unit can be verified on its own; a
//! verifier may also be given the public key from elsewhere (e.g. central's registry).

use std::path::{Path, PathBuf};

use ring::rand::SystemRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

use crate::StoreError;
use crate::durable::write_durably;

/// Signs seals.
pub struct Signer {
    key: Ed25519KeyPair,
}

impl Signer {
    /// Loads the key in `keys_dir`, or makes one (and its public half) if there is none.
    pub fn load_or_create(keys_dir: &Path) -> Result<Signer, StoreError> {
        let private = keys_dir.join("signing.pk8");
        let bad = |path: &PathBuf, message: String| StoreError::Key { path: path.clone(), message };
        if private.exists() {
            let pkcs8 = std::fs::read(&private).map_err(StoreError::io("read", &private))?;
            let key = Ed25519KeyPair::from_pkcs8(&pkcs8).map_err(|e| bad(&private, e.to_string()))?;
            return Ok(Signer { key });
        }
        std::fs::create_dir_all(keys_dir).map_err(StoreError::io("create", keys_dir))?;
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| bad(&private, "cannot generate a key".into()))?;
        let key = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|e| bad(&private, e.to_string()))?;
        // The private key is written last, so a crash in between leaves no key and the next
        // start makes both anew.
        write_durably(&keys_dir.join("signing.pub"), hex(key.public_key().as_ref()).as_bytes(), 0o644)?;
        write_durably(&private, pkcs8.as_ref(), 0o600)?;
        Ok(Signer { key })
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.key.sign(message).as_ref().to_vec()
    }

    /// The public key.
    pub fn public_key(&self) -> [u8; 32] {
        let mut k = [0u8; 32];
        k.copy_from_slice(self.key.public_key().as_ref());
        k
    }
}

/// Reads a public key written as 64 hex digits (as in `signing.pub`).
pub fn read_public_key(path: &Path) -> Result<[u8; 32], StoreError> {
    let text = std::fs::read_to_string(path).map_err(StoreError::io("read", path))?;
    parse_hex32(text.trim()).ok_or_else(|| StoreError::Key { path: path.into(), message: "not 64 hex digits".into() })
}

/// Checks an Ed25519 signature.
pub fn verify(public_key: &[u8; 32], message: &[u8], signature: &[u8]) -> bool {
    UnparsedPublicKey::new(&ED25519, public_key).verify(message, signature).is_ok()
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_persists_and_signatures_verify() {
        let dir = tempfile::tempdir().unwrap();
        let a = Signer::load_or_create(dir.path()).unwrap();
        let b = Signer::load_or_create(dir.path()).unwrap();
        assert_eq!(a.public_key(), b.public_key());
        let public = read_public_key(&dir.path().join("signing.pub")).unwrap();
        let sig = a.sign(b"hello");
        assert!(verify(&public, b"hello", &sig));
        assert!(!verify(&public, b"hellO", &sig));
        assert!(!verify(&public, b"hello", &sig[..10]));
    }
}
