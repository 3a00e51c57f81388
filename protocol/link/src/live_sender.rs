//! The unit's side of live datagrams ([`protocol::live_datagram`]), sans-IO: numbers frames,
//! cuts them into data and parity datagrams, and keeps the data datagrams of recent frames
//! (bounded in bytes) to send again when central asks.

use std::collections::VecDeque;

use bytes::Bytes;
use protocol::interconnect::MediaFrame;
use protocol::live_datagram::{self, DatagramError, FragmentKind, FrameLabel};

/// Data fragments per parity group: one lost datagram in five is rebuilt (25 % overhead on
/// large frames; a one-fragment frame is sent twice).
pub const DEFAULT_GROUP: u8 = 4;
/// The most bytes of recent frames kept to send again (about a second of a 4 Mbit/s camera).
pub const DEFAULT_RESEND_BYTES: usize = 512 * 1024;

/// One camera's live datagrams on one slot.
pub struct LiveSender {
    slot: u32,
    group: u8,
    next_frame: u32,
    parameters: u32,
    /// Data datagrams of recent frames, oldest first.
    recent: VecDeque<(u32, Vec<Bytes>)>,
    recent_bytes: usize,
    max_recent_bytes: usize,
}

impl LiveSender {
    /// A sender for `slot`, parity groups of `group` fragments, keeping `max_recent_bytes` to
    /// send again.
    pub fn new(slot: u32, group: u8, max_recent_bytes: usize) -> LiveSender {
        LiveSender {
            slot,
            group,
            next_frame: 0,
            parameters: 0,
            recent: VecDeque::new(),
            recent_bytes: 0,
            max_recent_bytes,
        }
    }

    /// Counts parameters sent on the live stream: the frames after them name them.
    pub fn parameters_sent(&mut self) {
        self.parameters += 1;
    }

    /// The datagrams of the next frame (data and parity, in sending order), none longer than
    /// `max_datagram`.
    pub fn frame(&mut self, frame: &MediaFrame, max_datagram: usize) -> Result<Vec<Bytes>, DatagramError> {
        let encoded = postcard::to_allocvec(frame).map_err(DatagramError::Header)?;
        let label = FrameLabel {
            slot: self.slot,
            frame: self.next_frame,
            parameters: self.parameters,
            keyframe: frame.keyframe,
        };
        let parts = live_datagram::split(label, &encoded, max_datagram, self.group)?;
        self.next_frame += 1;
        let mut out = Vec::with_capacity(parts.len());
        let mut data = Vec::new();
        for (header, bytes) in parts {
            let bytes = Bytes::from(bytes);
            if header.kind == FragmentKind::Data {
                data.push(bytes.clone());
            }
            out.push(bytes);
        }
        self.recent_bytes += data.iter().map(Bytes::len).sum::<usize>();
        self.recent.push_back((label.frame, data));
        while self.recent_bytes > self.max_recent_bytes && self.recent.len() > 1 {
            if let Some((_, old)) = self.recent.pop_front() {
                self.recent_bytes -= old.iter().map(Bytes::len).sum::<usize>();
            }
        }
        Ok(out)
    }

    /// The data datagrams of `frame` central asked for again (all when `fragments` is empty),
    /// as far as they are still kept.
    pub fn resend(&self, frame: u32, fragments: &[u16]) -> Vec<Bytes> {
        let Some((_, data)) = self.recent.iter().find(|(n, _)| *n == frame) else { return Vec::new() };
        if fragments.is_empty() {
            return data.clone();
        }
        fragments.iter().filter_map(|&i| data.get(usize::from(i)).cloned()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: u8, len: usize) -> MediaFrame {
        MediaFrame { pts: i64::from(n), clock_rate: 90_000, wall_clock_us: 1, keyframe: n == 0, data: vec![n; len] }
    }

    #[test]
    fn frames_are_numbered_and_kept_to_send_again_within_the_bound() {
        let mut sender = LiveSender::new(9, 4, 5000);
        sender.parameters_sent();
        let first = sender.frame(&frame(0, 2500), 1029).unwrap();
        // 2500 bytes and the frame's fields in fragments of 1000: 3 data, 1 parity.
        assert_eq!(first.len(), 4);
        let (h, _) = live_datagram::decode(&first[0]).unwrap();
        assert_eq!((h.slot, h.frame, h.parameters, h.keyframe), (9, 0, 1, true));
        assert_eq!(sender.resend(0, &[1]), vec![first[1].clone()]);
        assert_eq!(sender.resend(0, &[]), first[..3].to_vec());
        assert!(sender.resend(0, &[7]).is_empty(), "no such fragment");
        let second = sender.frame(&frame(1, 2500), 1029).unwrap();
        assert_eq!(live_datagram::decode(&second[0]).unwrap().0.frame, 1);
        // A third frame pushes the first out of the 5000 bytes kept.
        sender.frame(&frame(2, 2500), 1029).unwrap();
        assert!(sender.resend(0, &[]).is_empty());
        assert_eq!(sender.resend(2, &[0]).len(), 1);
    }
}
