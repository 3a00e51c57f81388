//! The records a segment holds, and their framing on disk.
//!
//! On-disk record: `len: u32 LE` (body length), `crc: u32 LE` (CRC32C over the seq bytes and
//! the body), `seq: u64 LE` (store-wide, gapless), then the postcard-encoded [`Record`].

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::StoreError;

/// Bytes before a record's body.
pub const RECORD_HEADER_LEN: usize = 16;
/// The largest body a record may have.
pub const MAX_RECORD_LEN: usize = 64 * 1024 * 1024;

/// What kind of media a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MediaKind {
    /// Video (H.264 or H.265).
    Video,
    /// Audio (AAC or G.711), described by a [`Record::AudioParameters`].
    Audio,
    /// One ONVIF metadata message (`application/vnd.onvif.metadata`: uncompressed XML, a
    /// `tt:MetadataStream` document) exactly as the camera sent it. Always `keyframe`; no
    /// parameters record. Added after the others, so stores written before it read the same.
    Metadata,
}

/// Codec parameters for the frames of a camera that follow it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredParameters {
    /// The camera's id.
    pub camera: String,
    /// RFC 6381 codec string, e.g. `avc1.4d401e`.
    pub rfc6381_codec: String,
    /// Coded width.
    pub width: u32,
    /// Coded height.
    pub height: u32,
    /// Decoder configuration (for H.264, an `AVCDecoderConfigurationRecord`).
    #[serde(with = "serde_bytes")]
    pub extra_data: Vec<u8>,
}

/// Codec parameters of a camera's audio, for the audio frames that follow it. A record of its
/// own ([`Record::AudioParameters`]), so that it never replaces the video's [`StoredParameters`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredAudioParameters {
    /// The camera's id.
    pub camera: String,
    /// The codec: an RFC 6381 string for AAC (e.g. `mp4a.40.2`), `ulaw` or `alaw` for G.711.
    pub codec: String,
    /// Samples per second (also the clock rate of the audio frames' pts).
    pub sample_rate: u32,
    /// Channels.
    pub channels: u16,
    /// Decoder configuration: for AAC the `AudioSpecificConfig`; empty for G.711.
    #[serde(with = "serde_bytes")]
    pub extra_data: Vec<u8>,
}

/// One encoded frame of one camera.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredFrame {
    /// The camera's id.
    pub camera: String,
    /// Which of the camera's streams: 0 main, 1 sub.
    pub stream: u8,
    /// The sequence number of the [`Record::Parameters`] (video) or [`Record::AudioParameters`]
    /// (audio) that describes this frame.
    pub parameters_seq: u64,
    /// Video or audio.
    pub kind: MediaKind,
    /// True when a decoder can start here.
    pub keyframe: bool,
    /// Presentation timestamp in `clock_rate` units.
    pub pts: i64,
    /// Units per second of `pts`.
    pub clock_rate: u32,
    /// Receive time, microseconds since the Unix epoch.
    pub wall_clock_us: i64,
    /// The encoded frame (for H.264, AVCC length-prefixed NAL units; for AAC one raw access
    /// unit; for G.711 the samples).
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

/// The last record of a sealed segment: links it into its log's digest chain and signs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seal {
    /// BLAKE3 of every byte of the segment before this record (header included).
    pub content_hash: [u8; 32],
    /// The chain digest of the log's previous sealed segment (zeros for the first).
    pub prev_digest: [u8; 32],
    /// This segment's chain digest: BLAKE3(`prev_digest` ‖ `content_hash`).
    pub digest: [u8; 32],
    /// Ed25519 signature by the unit's key over [`Seal::signed_message`].
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
}

impl Seal {
    /// What the signature covers: a domain tag, the log, the segment's sequence range and
    /// its chain digest.
    pub fn signed_message(log: &str, first_seq: u64, last_seq: u64, digest: &[u8; 32]) -> Vec<u8> {
        let mut m = Vec::with_capacity(64 + log.len());
        m.extend_from_slice(b"convoy-seal-v1\0");
        m.extend_from_slice(&(log.len() as u32).to_le_bytes());
        m.extend_from_slice(log.as_bytes());
        m.extend_from_slice(&first_seq.to_le_bytes());
        m.extend_from_slice(&last_seq.to_le_bytes());
        m.extend_from_slice(digest);
        m
    }
}

/// An evidence lock: frames of `camera` between `start_us` and `end_us` are kept until
/// `expires_us` whatever the retention rules say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceLock {
    /// The lock's id, unique in the store.
    pub id: u64,
    /// The camera.
    pub camera: String,
    /// Start of the locked range, µs since the Unix epoch.
    pub start_us: i64,
    /// End of the locked range.
    pub end_us: i64,
    /// When the lock ends (µs since the Unix epoch); `i64::MAX` for never.
    pub expires_us: i64,
    /// Why, for people.
    pub reason: String,
}

/// A record in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    /// Codec parameters; written before the first frame and whenever they change.
    Parameters(StoredParameters),
    /// A frame.
    Frame(StoredFrame),
    /// Closes a segment.
    Seal(Seal),
    /// Protects a range from retention. Carried forward when its segment is groomed.
    EvidenceLock(EvidenceLock),
    /// A named position in a log (e.g. what central has acknowledged); the newest wins.
    Cursor {
        /// The cursor's name.
        name: String,
        /// Its value.
        value: u64,
    },
    /// Retention removed a sealed segment: its sequence range and chain digests, so the chain
    /// can be followed across the hole while older segments (kept by a lock) remain.
    Removed(Removed),
    /// Closes a segment that archiving thinned to key frames: the original seal (which keeps
    /// the digest chain) and a signature over what the thinned copy holds.
    ThinnedSeal(ThinnedSeal),
    /// Audio codec parameters; written before the first audio frame and at the start of every
    /// segment, like [`Record::Parameters`] for video. Added in store format 1 after the
    /// others, so every record written before it keeps its bytes.
    AudioParameters(StoredAudioParameters),
}

impl Record {
    /// The camera of a parameters or frame record (the only records a caller appends).
    pub fn camera(&self) -> Option<&str> {
        match self {
            Record::Parameters(p) => Some(&p.camera),
            Record::AudioParameters(p) => Some(&p.camera),
            Record::Frame(f) => Some(&f.camera),
            Record::Seal(_)
            | Record::ThinnedSeal(_)
            | Record::EvidenceLock(_)
            | Record::Cursor { .. }
            | Record::Removed(_) => None,
        }
    }
}

/// The last record of a thinned (key frames only) archive copy of a sealed segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThinnedSeal {
    /// The original segment's seal; its digest links the chain, its signature still verifies.
    pub original: Seal,
    /// BLAKE3 of every byte of the thinned copy before this record.
    pub content_hash: [u8; 32],
    /// Ed25519 signature by the unit's key over [`ThinnedSeal::signed_message`].
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
}

impl ThinnedSeal {
    /// What the thinned copy's signature covers.
    pub fn signed_message(log: &str, first_seq: u64, original_digest: &[u8; 32], content_hash: &[u8; 32]) -> Vec<u8> {
        let mut m = Vec::with_capacity(96 + log.len());
        m.extend_from_slice(b"convoy-thinned-v1\0");
        m.extend_from_slice(&(log.len() as u32).to_le_bytes());
        m.extend_from_slice(log.as_bytes());
        m.extend_from_slice(&first_seq.to_le_bytes());
        m.extend_from_slice(original_digest);
        m.extend_from_slice(content_hash);
        m
    }
}

/// A sealed segment that retention removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    /// Its first sequence number.
    pub first_seq: u64,
    /// The sequence number after its seal.
    pub end_seq: u64,
    /// Its seal's `prev_digest`.
    pub prev_digest: [u8; 32],
    /// Its seal's `digest`.
    pub digest: [u8; 32],
}

/// Encodes a record with its header.
pub(crate) fn encode(seq: u64, record: &Record) -> Result<Vec<u8>, StoreError> {
    let mut out = vec![0u8; RECORD_HEADER_LEN];
    out = postcard::to_extend(record, out).map_err(StoreError::Encode)?;
    finish_header(&mut out, seq, &[])?;
    Ok(out)
}

/// A record as it goes to disk: `head` (the record header and the body up to the payload),
/// then `payload` (a frame's data; empty for other records) unchanged, so that large payloads
/// are written without being copied.
pub(crate) struct Encoded<'a> {
    /// Record header and body before the payload.
    pub head: Vec<u8>,
    /// The payload bytes that complete the body.
    pub payload: Cow<'a, [u8]>,
}

impl Encoded<'_> {
    /// A record encoded in one piece.
    pub fn whole(bytes: Vec<u8>) -> Encoded<'static> {
        Encoded { head: bytes, payload: Cow::Borrowed(&[]) }
    }

    /// Bytes on disk.
    pub fn len(&self) -> usize {
        self.head.len() + self.payload.len()
    }
}

/// Encodes a frame record whose data is `payload` (the frame's own data, or its ciphertext)
/// in two pieces. Byte for byte the same as [`encode`] of the frame with that data: postcard
/// writes the data last, as its length then its bytes.
pub(crate) fn encode_frame<'a>(seq: u64, f: &StoredFrame, payload: Cow<'a, [u8]>) -> Result<Encoded<'a>, StoreError> {
    let meta = Record::Frame(StoredFrame {
        camera: f.camera.clone(),
        stream: f.stream,
        parameters_seq: f.parameters_seq,
        kind: f.kind,
        keyframe: f.keyframe,
        pts: f.pts,
        clock_rate: f.clock_rate,
        wall_clock_us: f.wall_clock_us,
        data: Vec::new(),
    });
    let mut head = vec![0u8; RECORD_HEADER_LEN];
    head = postcard::to_extend(&meta, head).map_err(StoreError::Encode)?;
    // The empty data was encoded as its length, 0, in one byte: put the real length there.
    head.pop();
    let mut len = payload.len();
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            head.push(byte);
            break;
        }
        head.push(byte | 0x80);
    }
    finish_header(&mut head, seq, &payload)?;
    Ok(Encoded { head, payload })
}

/// Fills in the record header at the start of `head` for a body made of the rest of `head`
/// followed by `payload`: length, sequence number and the CRC over both.
fn finish_header(head: &mut [u8], seq: u64, payload: &[u8]) -> Result<(), StoreError> {
    let body_len = head.len() - RECORD_HEADER_LEN + payload.len();
    if body_len > MAX_RECORD_LEN {
        return Err(StoreError::RecordTooLarge(body_len));
    }
    head[8..16].copy_from_slice(&seq.to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&head[8..]), payload);
    head[0..4].copy_from_slice(&(body_len as u32).to_le_bytes());
    head[4..8].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// Why bytes at some offset are not a valid record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// Fewer bytes remain than the header or the announced body needs (a torn tail).
    Truncated,
    /// The announced length is larger than any record may be.
    BadLength,
    /// The checksum does not match.
    BadChecksum,
    /// The checksum matched but the body does not decode.
    BadBody,
}

/// Parses the record header at the start of `buf`: `(body_len, crc, seq)`.
pub(crate) fn parse_header(buf: &[u8]) -> Result<(usize, u32, u64), Invalid> {
    let header: &[u8; RECORD_HEADER_LEN] =
        buf.get(..RECORD_HEADER_LEN).and_then(|h| h.try_into().ok()).ok_or(Invalid::Truncated)?;
    let [l0, l1, l2, l3, c0, c1, c2, c3, s @ ..] = *header;
    let len = u32::from_le_bytes([l0, l1, l2, l3]) as usize;
    if len > MAX_RECORD_LEN {
        return Err(Invalid::BadLength);
    }
    Ok((len, u32::from_le_bytes([c0, c1, c2, c3]), u64::from_le_bytes(s)))
}

/// Checks and decodes a whole record (`header + body` in `buf`).
pub(crate) fn decode(buf: &[u8]) -> Result<(u64, Record), Invalid> {
    let (len, crc, seq) = parse_header(buf)?;
    let checked = buf.get(8..RECORD_HEADER_LEN + len).ok_or(Invalid::Truncated)?;
    if crc32c::crc32c(checked) != crc {
        return Err(Invalid::BadChecksum);
    }
    let body = &checked[8..];
    match postcard::take_from_bytes::<Record>(body) {
        Ok((record, [])) => Ok((seq, record)),
        _ => Err(Invalid::BadBody),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> Record {
        Record::Frame(StoredFrame {
            camera: "front".into(),
            stream: 0,
            parameters_seq: 0,
            kind: MediaKind::Video,
            keyframe: true,
            pts: 3600,
            clock_rate: 90_000,
            wall_clock_us: 1_700_000_000_000_000,
            data: vec![0, 0, 0, 2, 0x65, 0x88],
        })
    }

    #[test]
    fn frames_encoded_in_two_pieces_match_the_one_piece_encoding() {
        for len in [0usize, 1, 127, 128, 300, 16_383, 16_384, 200_000] {
            let Record::Frame(mut f) = frame() else { unreachable!() };
            f.data = (0..len).map(|i| i as u8).collect();
            let whole = encode(9, &Record::Frame(f.clone())).unwrap();
            let split = encode_frame(9, &f, Cow::Borrowed(&f.data)).unwrap();
            assert_eq!([split.head.as_slice(), &split.payload].concat(), whole, "data of {len} bytes");
        }
    }

    #[test]
    fn audio_parameters_are_a_new_variant_after_the_old_ones() {
        let r = Record::AudioParameters(StoredAudioParameters {
            camera: "front".into(),
            codec: "mp4a.40.2".into(),
            sample_rate: 48_000,
            channels: 2,
            extra_data: vec![0x11, 0x90],
        });
        let bytes = encode(3, &r).unwrap();
        // postcard writes the variant's index first: the seven older records keep 0..=6.
        assert_eq!(bytes[RECORD_HEADER_LEN], 7);
        assert_eq!(decode(&bytes).unwrap(), (3, r));
        let frame = encode(3, &frame()).unwrap();
        assert_eq!(frame[RECORD_HEADER_LEN], 1, "Frame is still variant 1");
    }

    #[test]
    fn metadata_is_a_new_media_kind_after_the_old_ones() {
        // postcard writes a unit variant as its index: Video and Audio keep 0 and 1.
        assert_eq!(postcard::to_allocvec(&MediaKind::Video).unwrap(), [0]);
        assert_eq!(postcard::to_allocvec(&MediaKind::Audio).unwrap(), [1]);
        assert_eq!(postcard::to_allocvec(&MediaKind::Metadata).unwrap(), [2]);
        let Record::Frame(mut f) = frame() else { unreachable!() };
        f.kind = MediaKind::Metadata;
        f.data = b"<tt:MetadataStream/>".to_vec();
        let bytes = encode(5, &Record::Frame(f.clone())).unwrap();
        assert_eq!(decode(&bytes).unwrap(), (5, Record::Frame(f)));
    }

    #[test]
    fn round_trip() {
        let bytes = encode(42, &frame()).unwrap();
        assert_eq!(decode(&bytes).unwrap(), (42, frame()));
    }

    #[test]
    fn every_truncation_and_bit_flip_is_detected() {
        let bytes = encode(7, &frame()).unwrap();
        for end in 0..bytes.len() {
            assert!(decode(&bytes[..end]).is_err(), "truncated at {end}");
        }
        for i in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[i / 8] ^= 1 << (i % 8);
            match decode(&b) {
                Err(_) => {}
                // A flip in the length field may still leave a decodable prefix only if the
                // checksum also matches, which CRC32C rules out for single-bit errors.
                Ok(r) => panic!("bit {i} flipped and still decoded {r:?}"),
            }
        }
    }
}
