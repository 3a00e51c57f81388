//! Which H.265 frames are key frames. retina (0.4) marks an H.265 frame as a random access
//! point only when its pictures are IDR; a CRA picture (the key frame of an open group of
//! pictures, which x265 and many cameras send after the first IDR) counts as an ordinary frame.
//! The unit would then see one key frame per RTSP session: a live view that waits for the next
//! key frame waits for ever, and a recording has nothing to start playback from after its
//! first seconds. A picture is a key frame here when its first VCL NAL unit is an IRAP (types
//! 16–23: BLA, IDR, CRA; T-REC H.265 table 7-1), as ffmpeg also counts them. A decoder that
//! starts at a CRA drops the leading pictures that referred to pictures before it (RASL).

/// The first and last IRAP NAL unit types (BLA_W_LP … RSV_IRAP_VCL23).
const IRAP: std::ops::RangeInclusive<u8> = 16..=23;

/// VCL NAL unit types are 0–31.
const LAST_VCL: u8 = 31;

/// Whether retina's video `frame` is a key frame; `h265`: the stream is H.265 (CRA and BLA
/// pictures count too).
pub fn is_key_frame(frame: &retina::codec::VideoFrame, h265: bool) -> bool {
    frame.is_random_access_point() || (h265 && is_irap(frame.data()))
}

/// Whether the H.265 access unit `data` (NAL units each after a 4-byte big-endian length, as
/// retina hands them over) is a key frame: its first VCL NAL unit is an IRAP. False for data
/// that does not parse.
pub fn is_irap(data: &[u8]) -> bool {
    let mut rest = data;
    while let Some((len, after)) = rest.split_first_chunk::<4>() {
        let len = u32::from_be_bytes(*len) as usize;
        let Some(nal) = after.get(..len) else { return false };
        rest = &after[len..];
        let Some(&first) = nal.first() else { continue };
        let unit_type = (first >> 1) & 0x3f;
        if unit_type <= LAST_VCL {
            return IRAP.contains(&unit_type);
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nal(unit_type: u8, body: &[u8]) -> Vec<u8> {
        let mut n = vec![unit_type << 1, 1];
        n.extend_from_slice(body);
        let mut out = (n.len() as u32).to_be_bytes().to_vec();
        out.extend(n);
        out
    }

    #[test]
    fn idr_cra_and_bla_pictures_are_key_frames_and_others_not() {
        // An access unit as a camera sends it: an access unit delimiter (35) and SEI (39)
        // before the picture's slices.
        for (unit_type, key) in [(19, true), (20, true), (21, true), (16, true), (1, false), (0, false), (8, false)] {
            let au = [nal(35, &[0x50]), nal(39, &[5, 1, 2]), nal(unit_type, &[0xaf, 0x10]), nal(unit_type, &[0x80])]
                .concat();
            assert_eq!(is_irap(&au), key, "type {unit_type}");
        }
    }

    #[test]
    fn data_that_does_not_parse_is_no_key_frame_and_never_a_panic() {
        let cra = nal(21, &[0xaf]);
        assert!(is_irap(&cra));
        for cut in 0..cra.len() {
            assert!(!is_irap(&cra[..cut]), "cut at {cut}");
        }
        assert!(!is_irap(&[0xff, 0xff, 0xff, 0xff, 42]));
        assert!(!is_irap(&[]));
        // An empty NAL unit before the picture is skipped.
        assert!(is_irap(&[[0, 0, 0, 0].as_slice(), &cra].concat()));
        // Only non-VCL units: no picture, no key frame.
        assert!(!is_irap(&nal(34, &[1])));
        // Random bytes, lengths included (xorshift, fixed seed): an answer every time.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut keys = 0;
        for n in 0..20_000 {
            let bytes: Vec<u8> = (0..n % 64)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    // Small lengths often, so that NAL units parse.
                    if x.is_multiple_of(3) { 0 } else { x as u8 }
                })
                .collect();
            keys += usize::from(is_irap(&bytes));
        }
        assert!(keys > 0, "some random access units parse as key frames");
    }
}
