//! Length-prefixed postcard framing for streams: a little-endian `u32` body length, then the
//! postcard body. Decoding never panics; hostile lengths are refused before any allocation.

use alloc::vec::Vec;
use serde::{Serialize, de::DeserializeOwned};

/// The largest message body accepted on a stream (a video frame fits well below this).
pub const MAX_MESSAGE_LEN: u32 = 16 * 1024 * 1024;

/// Bytes in the length prefix.
pub const PREFIX_LEN: usize = 4;

/// Why a message could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FramingError {
    /// The announced or actual body length exceeds [`MAX_MESSAGE_LEN`].
    TooLong(u64),
    /// The body is not a valid postcard encoding of the expected type.
    Postcard(postcard::Error),
}

impl core::fmt::Display for FramingError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FramingError::TooLong(n) => {
                write!(f, "message of {n} bytes exceeds the {MAX_MESSAGE_LEN}-byte limit")
            }
            FramingError::Postcard(e) => write!(f, "malformed message: {e}"),
        }
    }
}

impl core::error::Error for FramingError {}

/// Encodes `msg` as a length prefix followed by its postcard body.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, FramingError> {
    let mut out = alloc::vec![0u8; PREFIX_LEN];
    out = postcard::to_extend(msg, out).map_err(FramingError::Postcard)?;
    let body_len = (out.len() - PREFIX_LEN) as u64;
    if body_len > u64::from(MAX_MESSAGE_LEN) {
        return Err(FramingError::TooLong(body_len));
    }
    out[..PREFIX_LEN].copy_from_slice(&(body_len as u32).to_le_bytes());
    Ok(out)
}

/// Reads a length prefix, refusing lengths above [`MAX_MESSAGE_LEN`].
pub fn body_len(prefix: [u8; PREFIX_LEN]) -> Result<usize, FramingError> {
    let len = u32::from_le_bytes(prefix);
    if len > MAX_MESSAGE_LEN {
        return Err(FramingError::TooLong(u64::from(len)));
    }
    Ok(len as usize)
}

/// Decodes one message body (without its prefix). Trailing bytes are an error.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, FramingError> {
    let (msg, rest) = postcard::take_from_bytes(body).map_err(FramingError::Postcard)?;
    if !rest.is_empty() {
        return Err(FramingError::Postcard(postcard::Error::DeserializeBadEncoding));
    }
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interconnect::{CameraInfo, EdgeMessage, Hello};
    use alloc::string::ToString;
    use alloc::vec;

    #[test]
    fn round_trip() {
        let msg = EdgeMessage::Hello(Hello {
            protocol_version: crate::PROTOCOL_VERSION,
            unit_id: "bus-42".to_string(),
            cameras: vec![CameraInfo { id: "front".to_string(), name: "Front".to_string() }],
        });
        let bytes = encode(&msg).unwrap();
        let len = body_len(bytes[..4].try_into().unwrap()).unwrap();
        assert_eq!(len, bytes.len() - 4);
        assert_eq!(decode::<EdgeMessage>(&bytes[4..]).unwrap(), msg);
    }

    #[test]
    fn refuses_huge_prefix() {
        assert!(matches!(body_len(u32::MAX.to_le_bytes()), Err(FramingError::TooLong(_))));
    }

    #[test]
    fn hostile_bodies_are_errors() {
        // Every prefix of a valid message, and a few garbage patterns, must decode to an error
        // or a value, never panic.
        let msg = EdgeMessage::Hello(Hello { protocol_version: 1, unit_id: "u".to_string(), cameras: vec![] });
        let bytes = encode(&msg).unwrap();
        for end in 4..bytes.len() {
            assert!(decode::<EdgeMessage>(&bytes[4..end]).is_err());
        }
        for pattern in [0x00u8, 0xff, 0x80, 0x7f] {
            let garbage = vec![pattern; 64];
            let _ = decode::<EdgeMessage>(&garbage);
        }
        let mut trailing = bytes[4..].to_vec();
        trailing.push(0);
        assert!(decode::<EdgeMessage>(&trailing).is_err());
    }
}
