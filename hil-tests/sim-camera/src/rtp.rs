//! RTP packetization of H.264 access units (RFC 6184, packetization-mode=1).

use bytes::{BufMut, Bytes, BytesMut};

use crate::clip::AccessUnit;
use crate::nal::{self, NAL_AUD};

/// RTP clock rate for H.264 video.
pub const H264_CLOCK_RATE: u32 = 90_000;
/// Dynamic RTP payload type used for H.264 in the SDP.
pub const H264_PAYLOAD_TYPE: u8 = 96;
/// Default largest RTP payload; NAL units bigger than this are sent as FU-A fragments.
pub const DEFAULT_MAX_PAYLOAD: usize = 1400;
/// Size of the fixed RTP header this packetizer writes (no CSRCs, no extension).
pub const RTP_HEADER_LEN: usize = 12;

const FU_A: u8 = 28;

/// Turns access units into RTP packets for one RTP session (one SSRC).
///
/// Small NAL units go out as single NAL unit packets; bigger ones are split
/// into FU-A fragments. The marker bit is set on the last packet of each
/// access unit. Access unit delimiters are dropped (RFC 6184 allows this,
/// the marker bit already delimits access units).
#[derive(Debug, Clone)]
pub struct H264Packetizer {
    ssrc: u32,
    next_seq: u16,
    payload_type: u8,
    max_payload: usize,
}

impl H264Packetizer {
    /// Creates a packetizer with the given SSRC and first sequence number.
    pub fn new(ssrc: u32, initial_seq: u16) -> Self {
        Self { ssrc, next_seq: initial_seq, payload_type: H264_PAYLOAD_TYPE, max_payload: DEFAULT_MAX_PAYLOAD }
    }

    /// Creates a packetizer with a random SSRC and a random first sequence number.
    pub fn with_random_ids() -> Self {
        Self::new(rand::random(), rand::random())
    }

    /// Sets the largest RTP payload size (at least 3 bytes, for an FU-A fragment of one byte).
    pub fn max_payload(mut self, max_payload: usize) -> Self {
        self.max_payload = max_payload.max(3);
        self
    }

    /// The SSRC written in every packet.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The sequence number the next packet will carry.
    pub fn next_seq(&self) -> u16 {
        self.next_seq
    }

    /// Packetizes one access unit with the given 90 kHz RTP timestamp.
    ///
    /// Returns the RTP packets (header included) in sending order.
    pub fn packetize(&mut self, au: &AccessUnit, timestamp: u32) -> Vec<Bytes> {
        let nals: Vec<&Bytes> =
            au.nal_units().iter().filter(|n| nal::nal_type(n).is_some_and(|t| t != NAL_AUD)).collect();
        let mut packets = Vec::new();
        for (i, nal) in nals.iter().enumerate() {
            let last_nal = i + 1 == nals.len();
            if nal.len() <= self.max_payload {
                packets.push(self.packet(last_nal, timestamp, &[], nal));
                continue;
            }
            let header = nal[0];
            let indicator = (header & 0xe0) | FU_A;
            let chunk = self.max_payload - 2;
            let body = &nal[1..];
            let count = body.len().div_ceil(chunk);
            for (j, fragment) in body.chunks(chunk).enumerate() {
                let start = j == 0;
                let end = j + 1 == count;
                let fu_header = (u8::from(start) << 7) | (u8::from(end) << 6) | (header & 0x1f);
                packets.push(self.packet(last_nal && end, timestamp, &[indicator, fu_header], fragment));
            }
        }
        packets
    }

    fn packet(&mut self, marker: bool, timestamp: u32, prefix: &[u8], payload: &[u8]) -> Bytes {
        let mut buf = BytesMut::with_capacity(RTP_HEADER_LEN + prefix.len() + payload.len());
        buf.put_u8(0x80); // V=2, no padding, no extension, no CSRC
        buf.put_u8((u8::from(marker) << 7) | self.payload_type);
        buf.put_u16(self.next_seq);
        buf.put_u32(timestamp);
        buf.put_u32(self.ssrc);
        buf.put_slice(prefix);
        buf.put_slice(payload);
        self.next_seq = self.next_seq.wrapping_add(1);
        buf.freeze()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A parsed RTP header plus payload, for tests.
    #[derive(Debug)]
    pub(crate) struct Parsed<'a> {
        pub marker: bool,
        pub payload_type: u8,
        pub seq: u16,
        pub timestamp: u32,
        pub ssrc: u32,
        pub payload: &'a [u8],
    }

    pub(crate) fn parse(pkt: &[u8]) -> Parsed<'_> {
        assert!(pkt.len() > RTP_HEADER_LEN);
        assert_eq!(pkt[0], 0x80);
        Parsed {
            marker: pkt[1] & 0x80 != 0,
            payload_type: pkt[1] & 0x7f,
            seq: u16::from_be_bytes([pkt[2], pkt[3]]),
            timestamp: u32::from_be_bytes([pkt[4], pkt[5], pkt[6], pkt[7]]),
            ssrc: u32::from_be_bytes([pkt[8], pkt[9], pkt[10], pkt[11]]),
            payload: &pkt[RTP_HEADER_LEN..],
        }
    }

    /// Minimal RFC 6184 depacketizer: returns the NAL units of one access unit.
    fn reassemble(packets: &[Bytes]) -> Vec<Vec<u8>> {
        let mut nals = Vec::new();
        let mut partial: Option<Vec<u8>> = None;
        for pkt in packets {
            let p = parse(pkt);
            let kind = p.payload[0] & 0x1f;
            if kind == FU_A {
                let fu = p.payload[1];
                if fu & 0x80 != 0 {
                    assert!(partial.is_none(), "FU-A start while fragment open");
                    partial = Some(vec![(p.payload[0] & 0xe0) | (fu & 0x1f)]);
                }
                let buf = partial.as_mut().expect("FU-A continuation without start");
                buf.extend_from_slice(&p.payload[2..]);
                if fu & 0x40 != 0 {
                    nals.push(partial.take().unwrap());
                }
            } else {
                assert!(partial.is_none(), "single NAL while fragment open");
                assert!((1..=23).contains(&kind));
                nals.push(p.payload.to_vec());
            }
        }
        assert!(partial.is_none());
        nals
    }

    fn au(nals: &[Vec<u8>]) -> AccessUnit {
        AccessUnit::new(nals.iter().map(|n| Bytes::copy_from_slice(n)).collect())
    }

    fn big_nal(header: u8, len: usize) -> Vec<u8> {
        let mut v = vec![header];
        v.extend((1..len).map(|i| (i * 7 % 251) as u8 + 1));
        v
    }

    #[test]
    fn small_nals_are_single_packets_and_aud_is_dropped() {
        let mut p = H264Packetizer::new(0xdead_beef, 100);
        let unit = au(&[vec![0x09, 0xf0], vec![0x67, 1, 2, 3], vec![0x68, 4], vec![0x65, 5, 6]]);
        let packets = p.packetize(&unit, 1234);
        assert_eq!(packets.len(), 3);
        let parsed: Vec<_> = packets.iter().map(|b| parse(b)).collect();
        assert_eq!(parsed.iter().map(|p| p.seq).collect::<Vec<_>>(), [100, 101, 102]);
        assert_eq!(parsed.iter().map(|p| p.marker).collect::<Vec<_>>(), [false, false, true]);
        for p in &parsed {
            assert_eq!(p.timestamp, 1234);
            assert_eq!(p.ssrc, 0xdead_beef);
            assert_eq!(p.payload_type, 96);
        }
        assert_eq!(parsed[0].payload, &[0x67, 1, 2, 3]);
        assert_eq!(p.next_seq(), 103);
    }

    #[test]
    fn fu_a_round_trip() {
        let nals = vec![
            vec![0x09, 0xf0],
            vec![0x67, 0x4d, 0x40, 0x1e],
            vec![0x68, 0xce],
            big_nal(0x65, 4168),
            big_nal(0x65, 1400), // exactly the limit: single packet
            big_nal(0x65, 1401), // one over: two fragments
            big_nal(0x25, 2797), // 2796-byte body splits exactly into 2 chunks
        ];
        let mut p = H264Packetizer::new(1, 65534);
        let packets = p.packetize(&au(&nals), 90_000);
        for pkt in &packets {
            assert!(pkt.len() <= RTP_HEADER_LEN + DEFAULT_MAX_PAYLOAD);
        }
        assert_eq!(reassemble(&packets), nals[1..].to_vec());
        // 2 small + 3 (4168) + 1 + 2 + 2
        assert_eq!(packets.len(), 10);
        let parsed: Vec<_> = packets.iter().map(|b| parse(b)).collect();
        // Sequence numbers wrap around.
        assert_eq!(parsed[0].seq, 65534);
        assert_eq!(parsed[1].seq, 65535);
        assert_eq!(parsed[2].seq, 0);
        // Only the last packet carries the marker.
        assert!(parsed.last().unwrap().marker);
        assert_eq!(parsed.iter().filter(|p| p.marker).count(), 1);
        // FU indicator keeps NRI and FU header keeps the type.
        let fu = &parsed[2].payload;
        assert_eq!(fu[0], 0x60 | FU_A);
        assert_eq!(fu[1], 0x80 | 5);
    }

    #[test]
    fn committed_clip_round_trips_with_increasing_timestamps() {
        let clip = crate::Clip::from_file(concat!(env!("CARGO_MANIFEST_DIR"), "/../clips/testsrc-640x360-25fps.h264"))
            .unwrap();
        let mut p = H264Packetizer::new(7, 0);
        let mut last_seq = None;
        for (i, unit) in clip.access_units().iter().enumerate() {
            let ts = (i as u32) * 3600;
            let packets = p.packetize(unit, ts);
            let expected: Vec<Vec<u8>> =
                unit.nal_units().iter().filter(|n| n[0] & 0x1f != NAL_AUD).map(|n| n.to_vec()).collect();
            assert_eq!(reassemble(&packets), expected);
            for (j, pkt) in packets.iter().enumerate() {
                let h = parse(pkt);
                assert_eq!(h.timestamp, ts);
                assert_eq!(h.marker, j + 1 == packets.len());
                if let Some(prev) = last_seq {
                    assert_eq!(h.seq, u16::wrapping_add(prev, 1));
                }
                last_seq = Some(h.seq);
            }
        }
    }

    #[test]
    fn random_ids_differ() {
        let a = H264Packetizer::with_random_ids();
        let b = H264Packetizer::with_random_ids();
        assert!(a.ssrc() != b.ssrc() || a.next_seq() != b.next_seq());
    }
}
