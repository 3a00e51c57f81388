//! Unit tests of [`super::Reassembler`], fed by a real [`crate::live_sender::LiveSender`].

use super::*;
use crate::live_sender::LiveSender;
use bytes::Bytes;

const SLOT: u32 = 4;
/// Datagrams of 129 bytes: fragments of 100.
const MAX_DATAGRAM: usize = live_datagram::MAX_HEADER_BYTES + 100;

fn params(width: u32) -> VideoParameters {
    VideoParameters { rfc6381_codec: "avc1.4d401e".into(), width, height: 360, extra_data: vec![1, 2] }
}

fn frame(n: u32, keyframe: bool, len: usize) -> MediaFrame {
    MediaFrame {
        pts: i64::from(n) * 3600,
        clock_rate: 90_000,
        wall_clock_us: 1_700_000_000_000_000 + i64::from(n),
        keyframe,
        data: (0..len).map(|i| (i as u32 * 31 + n) as u8).collect(),
    }
}

struct Rig {
    sender: LiveSender,
    rx: Reassembler,
    t0: Instant,
}

impl Rig {
    fn new() -> Rig {
        let mut rig = Rig {
            sender: LiveSender::new(SLOT, 4, 1 << 20),
            rx: Reassembler::new(SLOT, ReassemblyConfig::default()),
            t0: Instant::now(),
        };
        rig.sender.parameters_sent();
        rig.rx.parameters(rig.t0, params(640));
        rig
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    fn send(&mut self, f: &MediaFrame) -> Vec<Bytes> {
        self.sender.frame(f, MAX_DATAGRAM).unwrap()
    }

    fn feed(&mut self, ms: u64, datagrams: &[Bytes]) {
        for d in datagrams {
            self.rx.datagram(self.at(ms), d).unwrap();
        }
    }

    fn drain(&mut self) -> Vec<Reassembled> {
        std::iter::from_fn(|| self.rx.poll()).collect()
    }
}

fn frames_of(out: &[Reassembled]) -> Vec<MediaFrame> {
    out.iter()
        .filter_map(|r| match r {
            Reassembled::Frame(f) => Some(f.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn whole_frames_come_out_in_order_after_their_parameters() {
    let mut rig = Rig::new();
    let sent: Vec<MediaFrame> = (0..3).map(|n| frame(n, n == 0, 350)).collect();
    for f in &sent {
        let d = rig.send(f);
        rig.feed(1, &d);
    }
    let out = rig.drain();
    assert_eq!(out[0], Reassembled::Parameters(params(640)));
    assert_eq!(frames_of(&out), sent, "byte-identical, in order");
    assert_eq!(out.len(), 4);
    assert_eq!(rig.rx.stats().frames, 3);
}

#[test]
fn any_one_lost_datagram_of_a_group_is_rebuilt_at_once() {
    // 6 data fragments in groups of 4 and 2: 8 datagrams.
    let f = frame(0, true, 560);
    let all = Rig::new().send(&f);
    assert_eq!(all.len(), 8);
    for lost in 0..all.len() {
        let mut rig = Rig::new();
        let d = rig.send(&f);
        let kept: Vec<Bytes> = d.iter().enumerate().filter(|(i, _)| *i != lost).map(|(_, d)| d.clone()).collect();
        rig.feed(0, &kept);
        let out = rig.drain();
        assert_eq!(frames_of(&out), vec![f.clone()], "datagram {lost} lost");
        assert!(!out.iter().any(|r| matches!(r, Reassembled::Nack { .. })), "no round trip");
        let parity = lost == 4 || lost == 7;
        assert_eq!(rig.rx.stats().rebuilt, u64::from(!parity), "datagram {lost}");
        assert_eq!(rig.rx.deadline(), None, "nothing left to wait for");
    }
}

#[test]
fn a_one_fragment_frame_survives_losing_either_copy() {
    for lost in 0..2 {
        let mut rig = Rig::new();
        let f = frame(0, true, 20);
        let d = rig.send(&f);
        assert_eq!(d.len(), 2);
        rig.feed(0, &[d[1 - lost].clone()]);
        assert_eq!(frames_of(&rig.drain()), vec![f]);
    }
}

#[test]
fn reordered_and_duplicated_datagrams_make_each_frame_once_in_order() {
    let mut rig = Rig::new();
    let sent: Vec<MediaFrame> = (0..3).map(|n| frame(n, n == 0, 450)).collect();
    let mut all: Vec<Bytes> = sent.iter().flat_map(|f| rig.send(f)).collect();
    all.reverse();
    let twice: Vec<Bytes> = all.iter().chain(all.iter()).cloned().collect();
    rig.feed(0, &twice);
    let out = rig.drain();
    assert_eq!(frames_of(&out), sent);
    let stats = rig.rx.stats();
    assert_eq!(stats.datagrams, twice.len() as u64);
    assert!(stats.duplicates >= all.len() as u64 - 3, "the second copies: {stats:?}");
}

#[test]
fn two_losses_in_a_group_are_asked_again_and_the_frames_behind_wait_in_order() {
    let mut rig = Rig::new();
    let f0 = frame(0, true, 560);
    let f1 = frame(1, false, 200);
    let d0 = rig.send(&f0);
    let d1 = rig.send(&f1);
    // Fragments 1 and 2 of group 0 lost: parity cannot rebuild two.
    let kept: Vec<Bytes> = d0.iter().enumerate().filter(|(i, _)| *i != 1 && *i != 2).map(|(_, d)| d.clone()).collect();
    rig.feed(0, &kept);
    rig.feed(5, &d1);
    assert!(rig.drain().iter().all(|r| matches!(r, Reassembled::Parameters(_))), "frame 1 waits for frame 0");
    // Not yet: a later frame arrived only 5 ms ago (reordering).
    rig.rx.tick(rig.at(10));
    assert!(rig.drain().is_empty());
    assert_eq!(rig.rx.deadline(), Some(rig.at(15)));
    rig.rx.tick(rig.at(15));
    assert_eq!(rig.drain(), vec![Reassembled::Nack { frame: 0, fragments: vec![1, 2] }]);
    rig.rx.tick(rig.at(50));
    assert!(rig.drain().is_empty(), "asked once");
    let again = rig.sender.resend(0, &[1, 2]);
    rig.feed(115, &again);
    assert_eq!(frames_of(&rig.drain()), vec![f0, f1]);
    assert_eq!(rig.rx.stats().nacks, 1);
    assert_eq!(rig.rx.stats().given_up, 0);
}

#[test]
fn a_frame_lost_whole_is_asked_for_whole() {
    let mut rig = Rig::new();
    let f0 = frame(0, true, 50);
    let f1 = frame(1, false, 50);
    let _lost = rig.send(&f0);
    let d1 = rig.send(&f1);
    rig.feed(0, &d1);
    rig.rx.tick(rig.at(10));
    // Parameters go out with the first frame they belong to.
    assert_eq!(rig.drain(), vec![Reassembled::Nack { frame: 0, fragments: vec![] }]);
    let again = rig.sender.resend(0, &[]);
    rig.feed(110, &again);
    assert_eq!(frames_of(&rig.drain()), vec![f0, f1]);
}

#[test]
fn an_unrecoverable_frame_is_given_up_with_the_frames_until_the_next_key_frame() {
    let mut rig = Rig::new();
    let frames: Vec<MediaFrame> = (0..6).map(|n| frame(n, n == 0 || n == 4, 300)).collect();
    let datagrams: Vec<Vec<Bytes>> = frames.iter().map(|f| rig.send(f)).collect();
    rig.feed(0, &datagrams[0]);
    // Frame 1 loses two data fragments of its group; 2 and 3 arrive whole.
    let kept: Vec<Bytes> = datagrams[1][2..].to_vec();
    rig.feed(1, &kept);
    rig.feed(2, &datagrams[2]);
    rig.feed(3, &datagrams[3]);
    rig.rx.tick(rig.at(12));
    let out = rig.drain();
    assert_eq!(frames_of(&out), vec![frames[0].clone()]);
    assert!(out.contains(&Reassembled::Nack { frame: 1, fragments: vec![0, 1] }));
    // No answer in time: frame 1 is given up, and 2 and 3 (which need it) with it.
    let deadline = rig.rx.deadline().unwrap();
    assert_eq!(deadline, rig.at(12) + ReassemblyConfig::default().give_up_after);
    rig.rx.tick(deadline - Duration::from_millis(1));
    assert!(rig.drain().is_empty());
    rig.rx.tick(deadline);
    assert!(rig.drain().is_empty(), "frames 2 and 3 are not shown without frame 1");
    rig.feed(500, &datagrams[4]);
    rig.feed(501, &datagrams[5]);
    assert_eq!(frames_of(&rig.drain()), vec![frames[4].clone(), frames[5].clone()]);
    assert_eq!(rig.rx.stats().given_up, 3);
    // A late answer for frame 1 changes nothing.
    let late = rig.sender.resend(1, &[0, 1]);
    rig.feed(600, &late);
    assert!(rig.drain().is_empty());
}

#[test]
fn the_newest_frame_missing_its_tail_is_asked_again_after_the_stall_wait() {
    let mut rig = Rig::new();
    let f0 = frame(0, true, 900);
    let d0 = rig.send(&f0);
    // Group 0 whole, group 1 (fragments 4..) loses two: no later frame follows.
    let kept: Vec<Bytes> = d0.iter().enumerate().filter(|(i, _)| *i != 5 && *i != 6).map(|(_, d)| d.clone()).collect();
    rig.feed(0, &kept);
    let stall = ReassemblyConfig::default().stall_wait;
    assert_eq!(rig.rx.deadline(), Some(rig.t0 + stall));
    rig.rx.tick(rig.t0 + stall);
    let out = rig.drain();
    assert_eq!(out.last(), Some(&Reassembled::Nack { frame: 0, fragments: vec![4, 5] }));
}

#[test]
fn frames_wait_for_their_parameters_and_older_ones_are_not_shown_under_newer() {
    let mut rig = Rig::new();
    let f0 = frame(0, true, 100);
    let d0 = rig.send(&f0);
    rig.sender.parameters_sent();
    let f1 = frame(1, true, 100);
    let d1 = rig.send(&f1);
    rig.feed(0, &d0);
    rig.feed(0, &d1);
    assert_eq!(rig.drain(), vec![Reassembled::Parameters(params(640)), Reassembled::Frame(f0)]);
    rig.rx.parameters(rig.at(1), params(1280));
    assert_eq!(rig.drain(), vec![Reassembled::Parameters(params(1280)), Reassembled::Frame(f1)]);
}

#[test]
fn a_full_jitter_buffer_gives_up_the_frame_it_waits_for() {
    let mut rig = Rig::new();
    let config = ReassemblyConfig { max_frames: 3, ..ReassemblyConfig::default() };
    rig.rx = Reassembler::new(SLOT, config);
    rig.rx.parameters(rig.t0, params(640));
    let frames: Vec<MediaFrame> = (0..6).map(|n| frame(n, n == 0 || n == 3, 50)).collect();
    let datagrams: Vec<Vec<Bytes>> = frames.iter().map(|f| rig.send(f)).collect();
    // Frame 0 never arrives; 1..=5 fill the buffer beyond three frames.
    for d in &datagrams[1..] {
        rig.feed(1, d);
    }
    let out = rig.drain();
    assert_eq!(frames_of(&out), frames[3..].to_vec(), "resumed at the next key frame");
    assert_eq!(rig.rx.stats().given_up, 3);
}

#[test]
fn hostile_datagrams_are_errors_and_the_reassembly_goes_on() {
    let mut rig = Rig::new();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..2000 {
        let len = (next() % 200) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let _ = rig.rx.datagram(rig.t0, &bytes);
    }
    // A good datagram mangled byte by byte: an error or a datagram, never a panic.
    let good = rig.sender.frame(&frame(0, true, 300), MAX_DATAGRAM).unwrap();
    for i in 0..good[0].len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut bad = good[0].to_vec();
            bad[i] ^= flip;
            let mut fresh = Reassembler::new(SLOT, ReassemblyConfig::default());
            let _ = fresh.datagram(rig.t0, &bad);
            while fresh.poll().is_some() {}
        }
    }
    // Another slot's datagram, and one that disagrees with its frame's first.
    let other = LiveSender::new(SLOT + 1, 4, 1 << 20).frame(&frame(0, true, 300), MAX_DATAGRAM).unwrap();
    assert!(rig.rx.datagram(rig.t0, &other[0]).is_err());
    let mut rx = Reassembler::new(SLOT, ReassemblyConfig::default());
    rx.parameters(rig.t0, params(640));
    rx.datagram(rig.t0, &good[0]).unwrap();
    let (h, payload) = live_datagram::decode(&good[1]).unwrap();
    let liar = live_datagram::encode(&DatagramHeader { keyframe: false, ..h }, payload).unwrap();
    assert!(rx.datagram(rig.t0, &liar).is_err());
    assert_eq!(rx.stats().bad_datagrams, 1);
    // The good frame still comes out whole.
    for d in &good[1..] {
        rx.datagram(rig.t0, d).unwrap();
    }
    assert_eq!(frames_of(&std::iter::from_fn(|| rx.poll()).collect::<Vec<_>>()), vec![frame(0, true, 300)]);
}

#[test]
fn a_frame_waiting_for_its_parameters_sets_no_deadline_for_the_frames_behind_it() {
    let mut rig = Rig::new();
    rig.sender.parameters_sent();
    let frames: Vec<MediaFrame> = (0..3).map(|n| frame(n, n == 0, 300)).collect();
    let datagrams: Vec<Vec<Bytes>> = frames.iter().map(|f| rig.send(f)).collect();
    rig.feed(0, &datagrams[0]);
    rig.feed(1, &datagrams[1][2..]);
    rig.feed(2, &datagrams[2]);
    rig.rx.tick(rig.at(20));
    assert_eq!(rig.drain(), vec![Reassembled::Nack { frame: 1, fragments: vec![0, 1] }]);
    // Frame 0 waits for its (second) parameters; frame 1 is not the next: nothing is due, so a
    // caller sleeping until the deadline does not spin.
    assert_eq!(rig.rx.deadline(), None);
    rig.rx.parameters(rig.at(30), params(1280));
    assert_eq!(frames_of(&rig.drain()), vec![frames[0].clone()]);
    assert_eq!(rig.rx.deadline(), Some(rig.at(20) + ReassemblyConfig::default().give_up_after));
}
