//! Looping a clip as an endless RTP stream with continuous timestamps and sequence numbers.

use std::sync::Arc;

use bytes::Bytes;

use crate::clip::Clip;
use crate::rtp::{H264_CLOCK_RATE, H264Packetizer};

/// One frame's worth of RTP packets.
#[derive(Debug, Clone)]
pub struct Frame {
    /// RTP packets in sending order; the last one carries the marker bit.
    pub packets: Vec<Bytes>,
    /// The 90 kHz RTP timestamp of every packet of this frame.
    pub timestamp: u32,
    /// Index of the access unit within the clip.
    pub clip_index: usize,
    /// True if the frame is an IDR picture.
    pub is_idr: bool,
}

/// Produces the frames of one RTP session: the clip from its first frame, looping forever.
///
/// The RTP timestamp of frame `n` (counted since the session started, across
/// loops) is `initial_timestamp + n * 90000 / frame_rate`, so timestamps and
/// sequence numbers only ever move forward (modulo 2^32 and 2^16).
#[derive(Debug, Clone)]
pub struct ClipStreamer {
    clip: Arc<Clip>,
    packetizer: H264Packetizer,
    frame_rate: u32,
    initial_timestamp: u32,
    next_index: usize,
    frames_sent: u64,
}

impl ClipStreamer {
    /// Creates a streamer; `frame_rate` must be at least 1 (it is clamped).
    pub fn new(clip: Arc<Clip>, frame_rate: u32, packetizer: H264Packetizer, initial_timestamp: u32) -> Self {
        Self { clip, packetizer, frame_rate: frame_rate.max(1), initial_timestamp, next_index: 0, frames_sent: 0 }
    }

    /// Creates a streamer with random SSRC, first sequence number and first timestamp.
    pub fn with_random_ids(clip: Arc<Clip>, frame_rate: u32) -> Self {
        Self::new(clip, frame_rate, H264Packetizer::with_random_ids(), rand::random())
    }

    /// The SSRC of the stream.
    pub fn ssrc(&self) -> u32 {
        self.packetizer.ssrc()
    }

    /// The sequence number of the next packet (for `RTP-Info: seq=`).
    pub fn next_seq(&self) -> u16 {
        self.packetizer.next_seq()
    }

    /// The timestamp of the next frame (for `RTP-Info: rtptime=`).
    pub fn next_timestamp(&self) -> u32 {
        self.timestamp_of(self.frames_sent)
    }

    /// Number of frames produced so far.
    pub fn frames_sent(&self) -> u64 {
        self.frames_sent
    }

    /// Produces the next frame and advances, wrapping to the clip's first frame after its last.
    pub fn next_frame(&mut self) -> Frame {
        let index = self.next_index;
        let au = &self.clip.access_units()[index];
        let timestamp = self.next_timestamp();
        let packets = self.packetizer.packetize(au, timestamp);
        let is_idr = au.is_idr();
        self.next_index = (index + 1) % self.clip.frame_count();
        self.frames_sent += 1;
        Frame { packets, timestamp, clip_index: index, is_idr }
    }

    fn timestamp_of(&self, frame: u64) -> u32 {
        let ticks = u128::from(frame) * u128::from(H264_CLOCK_RATE) / u128::from(self.frame_rate);
        // RTP timestamps are modulo 2^32.
        self.initial_timestamp.wrapping_add(ticks as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::tests::parse;

    fn clip() -> Arc<Clip> {
        Arc::new(Clip::from_file(concat!(env!("CARGO_MANIFEST_DIR"), "/../clips/testsrc-640x360-25fps.h264")).unwrap())
    }

    #[test]
    fn loops_with_continuous_timestamps_and_sequence_numbers() {
        let clip = clip();
        let n = clip.frame_count();
        let initial_ts = u32::MAX - 3600 * 10; // wraps during the test
        let mut s = ClipStreamer::new(clip, 25, H264Packetizer::new(9, 65000), initial_ts);
        assert_eq!(s.next_seq(), 65000);
        assert_eq!(s.next_timestamp(), initial_ts);
        let mut prev_seq: Option<u16> = None;
        for i in 0..(2 * n + 5) {
            let expected_ts = s.next_timestamp();
            let frame = s.next_frame();
            assert_eq!(frame.clip_index, i % n);
            assert_eq!(frame.is_idr, (i % n).is_multiple_of(25));
            assert_eq!(frame.timestamp, expected_ts);
            assert_eq!(frame.timestamp, initial_ts.wrapping_add(3600 * i as u32));
            for pkt in &frame.packets {
                let h = parse(pkt);
                assert_eq!(h.timestamp, frame.timestamp);
                assert_eq!(h.ssrc, 9);
                if let Some(p) = prev_seq {
                    assert_eq!(h.seq, p.wrapping_add(1));
                }
                prev_seq = Some(h.seq);
            }
        }
        assert_eq!(s.frames_sent(), (2 * n + 5) as u64);
    }

    #[test]
    fn non_integral_frame_durations_do_not_drift() {
        let mut s = ClipStreamer::new(clip(), 30, H264Packetizer::new(1, 0), 0);
        for _ in 0..30 {
            s.next_frame();
        }
        assert_eq!(s.next_timestamp(), 90_000);
        let mut s = ClipStreamer::new(clip(), 7, H264Packetizer::new(1, 0), 0);
        let ts: Vec<u32> = (0..8).map(|_| s.next_frame().timestamp).collect();
        assert_eq!(ts[7], 90_000);
        assert!(ts.windows(2).all(|w| w[1] > w[0]));
    }
}
