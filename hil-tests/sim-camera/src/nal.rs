//! H.264 NAL unit helpers: unit types and Annex-B start code scanning.

use bytes::Bytes;

/// NAL unit type of a non-IDR coded slice.
pub const NAL_SLICE: u8 = 1;
/// NAL unit type of an IDR coded slice.
pub const NAL_IDR_SLICE: u8 = 5;
/// NAL unit type of supplemental enhancement information.
pub const NAL_SEI: u8 = 6;
/// NAL unit type of a sequence parameter set.
pub const NAL_SPS: u8 = 7;
/// NAL unit type of a picture parameter set.
pub const NAL_PPS: u8 = 8;
/// NAL unit type of an access unit delimiter.
pub const NAL_AUD: u8 = 9;

/// Returns the `nal_unit_type` (low 5 bits of the header byte), or `None` for an empty unit.
pub fn nal_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|b| b & 0x1f)
}

/// Returns true if the NAL unit type is a VCL (coded slice) type.
pub fn is_vcl(nal_type: u8) -> bool {
    (1..=5).contains(&nal_type)
}

/// A NAL unit found in an Annex-B byte stream, with the byte offset of its header.
#[derive(Debug, Clone)]
pub struct FoundNal {
    /// Byte offset of the NAL header within the stream.
    pub offset: usize,
    /// The NAL unit (header byte first, no start code, trailing zero bytes removed).
    pub data: Bytes,
}

/// Splits an Annex-B byte stream into NAL units.
///
/// Start codes are `00 00 01` (optionally preceded by more zero bytes). Bytes
/// before the first start code are returned as `Err(offset)` if they are not
/// all zero, so a file that is not Annex-B is rejected rather than misread.
/// Empty NAL units (two start codes back to back) are skipped.
pub fn split_annexb(data: &Bytes) -> Result<Vec<FoundNal>, usize> {
    let starts = start_code_ends(data);
    let Some(&first) = starts.first() else {
        return Err(0);
    };
    // Everything before the first start code must be zero padding.
    if data[..first - 3].iter().any(|&b| b != 0) {
        return Err(0);
    }
    let mut nals = Vec::with_capacity(starts.len());
    for (i, &begin) in starts.iter().enumerate() {
        let mut end = match starts.get(i + 1) {
            Some(&next) => next - 3,
            None => data.len(),
        };
        // Trailing zero bytes belong to the byte stream (zero_byte /
        // trailing_zero_8bits), never to the NAL unit: a NAL unit ends with
        // its RBSP stop bit.
        while end > begin && data[end - 1] == 0 {
            end -= 1;
        }
        if end > begin {
            nals.push(FoundNal { offset: begin, data: data.slice(begin..end) });
        }
    }
    Ok(nals)
}

/// Returns the offsets just past every `00 00 01` start code.
fn start_code_ends(data: &[u8]) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i + 2] > 1 {
            // Neither of the next three positions can start a start code
            // ending at i + 2.
            i += 3;
        } else if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            ends.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    ends
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(bytes: &[u8]) -> Result<Vec<Vec<u8>>, usize> {
        split_annexb(&Bytes::copy_from_slice(bytes)).map(|v| v.into_iter().map(|n| n.data.to_vec()).collect())
    }

    #[test]
    fn splits_three_and_four_byte_start_codes() {
        let stream = [0, 0, 0, 1, 0x09, 0x10, 0, 0, 1, 0x67, 1, 2, 0, 0, 0, 1, 0x68, 3, 0, 0, 1, 0x65, 4, 5];
        let nals = split(&stream).unwrap();
        assert_eq!(nals, vec![vec![0x09, 0x10], vec![0x67, 1, 2], vec![0x68, 3], vec![0x65, 4, 5]]);
    }

    #[test]
    fn trailing_zeros_and_empty_units_are_dropped() {
        let stream = [0, 0, 1, 0x09, 0x10, 0, 0, 0, 0, 1, 0, 0, 1, 0x41, 7, 0, 0];
        let nals = split(&stream).unwrap();
        assert_eq!(nals, vec![vec![0x09, 0x10], vec![0x41, 7]]);
    }

    #[test]
    fn rejects_missing_start_code_and_leading_garbage() {
        assert!(split(b"").is_err());
        assert!(split(b"hello world").is_err());
        assert!(split(&[0xff, 0, 0, 1, 0x09, 0x10]).is_err());
        assert!(split(&[0, 0]).is_err());
    }

    #[test]
    fn nal_type_helpers() {
        assert_eq!(nal_type(&[0x65]), Some(NAL_IDR_SLICE));
        assert_eq!(nal_type(&[]), None);
        assert!(is_vcl(NAL_SLICE));
        assert!(!is_vcl(NAL_SPS));
    }
}
