//! Optional encryption at rest of media payloads (frame data and codec configuration) with
//! XChaCha20-Poly1305. Timing metadata stays readable so that verification, indexing and
//! retention work without the key; playback and export need it.
//!
//! Each encrypted segment carries a random 16-byte salt after its header; a payload's nonce is
//! `salt ‖ seq` (24 bytes), unique for the key as long as salts do not repeat.

use std::path::Path;

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Key, Tag, XChaCha20Poly1305, XNonce};

use crate::StoreError;
use crate::record::Record;

/// Bytes the AEAD adds to each payload.
pub const TAG_LEN: usize = 16;

/// The key that encrypts media payloads.
#[derive(Clone)]
pub struct MediaKey {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for MediaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MediaKey(…)")
    }
}

impl MediaKey {
    /// A key from its 32 bytes.
    pub fn new(bytes: &[u8; 32]) -> MediaKey {
        MediaKey { cipher: XChaCha20Poly1305::new(Key::from_slice(bytes)) }
    }

    /// Reads a key file holding 64 hex digits (e.g. made with
    /// `head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'`).
    pub fn from_file(path: &Path) -> Result<MediaKey, StoreError> {
        let bad = |message: &str| StoreError::Key { path: path.into(), message: message.into() };
        let text = std::fs::read_to_string(path).map_err(StoreError::io("read", path))?;
        let text = text.trim();
        if text.len() != 64 {
            return Err(bad("an encryption key file holds 64 hex digits (32 bytes)"));
        }
        let mut key = [0u8; 32];
        for (i, b) in key.iter_mut().enumerate() {
            *b = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| bad("not hex"))?;
        }
        Ok(MediaKey::new(&key))
    }

    fn nonce(salt: &[u8; 16], seq: u64) -> XNonce {
        let mut n = [0u8; 24];
        n[..16].copy_from_slice(salt);
        n[16..].copy_from_slice(&seq.to_le_bytes());
        XNonce::from(n)
    }

    /// Encrypts a record's payload in place (frames and parameters; other records unchanged).
    pub fn encrypt(&self, salt: &[u8; 16], seq: u64, record: &mut Record) {
        if let Some(buf) = payload(record) {
            self.encrypt_bytes(salt, seq, buf);
        }
    }

    /// Decrypts a record's payload in place; an error means the key is wrong or the payload
    /// was altered (its checksum already matched).
    pub fn decrypt(&self, salt: &[u8; 16], seq: u64, record: &mut Record) -> Result<(), DecryptError> {
        if let Some(buf) = payload(record) {
            if buf.len() < TAG_LEN {
                return Err(DecryptError);
            }
            let tag = Tag::clone_from_slice(&buf[buf.len() - TAG_LEN..]);
            buf.truncate(buf.len() - TAG_LEN);
            self.cipher.decrypt_in_place_detached(&Self::nonce(salt, seq), b"", buf, &tag).map_err(|_| DecryptError)?;
        }
        Ok(())
    }
}

/// A payload did not decrypt: wrong key or altered bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("payload does not decrypt")]
pub struct DecryptError;

impl MediaKey {
    /// Encrypts payload bytes in place (appending the tag), as [`MediaKey::encrypt`] does
    /// for a record's payload.
    pub fn encrypt_bytes(&self, salt: &[u8; 16], seq: u64, buf: &mut Vec<u8>) {
        let tag = self
            .cipher
            .encrypt_in_place_detached(&Self::nonce(salt, seq), b"", buf)
            .expect("XChaCha20-Poly1305 encrypts any length a record can have");
        buf.extend_from_slice(&tag);
    }
}

fn payload(record: &mut Record) -> Option<&mut Vec<u8>> {
    match record {
        Record::Frame(f) => Some(&mut f.data),
        Record::Parameters(p) => Some(&mut p.extra_data),
        Record::AudioParameters(p) => Some(&mut p.extra_data),
        _ => None,
    }
}
