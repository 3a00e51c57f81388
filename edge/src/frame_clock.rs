//! One camera's frames on the unit's wall clock: a timeline that never goes back, spaced by the
//! camera's RTP timestamps (unwrapped across 2³² wraps), following the earliest times frames
//! were read (a frame can be read late, never early), set to the camera's capture times when
//! its RTCP sender reports agree with the unit's clock, and re-anchored when the camera's clock
//! jumps. Pure logic: the caller passes every time in.
//!
//! Frames are often read late: a napping ingest thread reads what came meanwhile at once, and a
//! camera's first second can come in one burst (`first_burst.rs` holds that until it has been
//! read whole and noted here, [`FrameClock::seen`]). Following the average read time made the
//! timeline slew by those delays, and again when a sender report replaced read times by
//! capture times. Following the earliest read times instead needs no slew in steady state, and
//! what slew remains runs at most [`MAX_SLEW_PER_MILLE`] of the camera's pace.

use std::collections::VecDeque;

/// A camera clock that disagrees with the receive clock by more than this has jumped.
pub const JUMP_US: i64 = 2_000_000;

/// Sender-report capture times are trusted when they fall this far before the earliest read
/// time at most (network and buffering delay) …
const REPORT_EARLY_US: i64 = 1_000_000;

/// … and at most this far after it (the two clocks are never exactly equal).
const REPORT_LATE_US: i64 = 100_000;

/// Each frame moves the anchor towards the target time by the share of the difference that its
/// step is of this (1/32 at 25 fps; at most half) …
const SLEW_US: i64 = 1_280_000;

/// … but by at most this many thousandths of the camera's own step: frames keep their pace
/// within 10 % (a 25 fps camera reads 22.7 to 27.8 fps while the timeline catches up), and a
/// camera clock that runs fast or slow by less than that is followed.
pub const MAX_SLEW_PER_MILLE: i64 = 100;

/// The earliest read time is the earliest of the frames of this long (by the camera's clock):
/// long enough to hold a frame read without delay between naps, short enough to follow a
/// camera clock that runs slow (1 % slow: 40 ms behind).
const FLOOR_WINDOW_US: i64 = 4_000_000;

/// Frames kept for the earliest read time at most (a stream of many small packets).
const FLOOR_FRAMES: usize = 1024;

/// Maps one camera's RTP timestamps to wall-clock microseconds since the Unix epoch.
#[derive(Debug, Default)]
pub struct FrameClock {
    clock_rate: u32,
    /// The last raw RTP timestamp and its unwrapped value.
    unwrap: Option<(u32, i64)>,
    /// An unwrapped timestamp and the wall time it maps to.
    anchor: Option<(i64, i64)>,
    /// The last frame's output time, receive time and unwrapped timestamp.
    last: Option<(i64, i64, i64)>,
    /// The latest sender report: RTP timestamp and the camera's wall time for it (µs).
    report: Option<(u32, i64)>,
    /// Recent frames' RTP time and read time minus RTP time (µs), the latter increasing: the
    /// first is the earliest read time of the last [`FLOOR_WINDOW_US`], by the RTP clock.
    lows: VecDeque<(i64, i64)>,
    /// The latest frame noted by [`FrameClock::seen`] (unwrapped), until a later one is stamped.
    last_seen: Option<i64>,
    /// No stamp comes before this: the end of the camera's previous session.
    not_before: Option<i64>,
    /// The output runs ahead of the target (the target went back): one jump, not one a frame.
    ahead: bool,
}

/// One frame's place on the timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Microseconds since the Unix epoch; greater than every earlier frame's.
    pub wall_clock_us: i64,
    /// The camera's clock (or the unit's) jumped here; the timeline was re-anchored.
    pub jumped: bool,
}

impl FrameClock {
    /// A clock for a new RTSP session.
    pub fn new() -> FrameClock {
        FrameClock::default()
    }

    /// A clock for a new RTSP session whose stamps come after `last_us`, the previous session's
    /// last (a camera may send frames again that it had sent before it went down).
    pub fn after(last_us: Option<i64>) -> FrameClock {
        FrameClock { not_before: last_us.map(|us| us + 1), ..FrameClock::default() }
    }

    /// Notes an RTCP sender report: the camera's wall time (NTP format) of RTP time `rtp`.
    pub fn sender_report(&mut self, rtp: u32, ntp: u64) {
        self.report = ntp_to_unix_us(ntp).map(|us| (rtp, us));
    }

    /// Notes a frame read at `received_us` that will be stamped later ([`FrameClock::frame`],
    /// in the same order), so that the frames read before it are stamped by when it arrived.
    /// Returns whether it may be part of a burst, so that more may follow: it is the first, it
    /// came sooner than the camera's pace (it lowered the earliest read time by more than a
    /// quarter of its step), or its timestamp is not the latest (B-frames: no pace to judge).
    pub fn seen(&mut self, rtp: u32, clock_rate: u32, received_us: i64) -> bool {
        self.set_clock_rate(clock_rate);
        let ext = self.unwrap(rtp);
        let before = self.floor();
        let offset = received_us - self.micros(ext);
        self.arrival(ext, received_us);
        let Some(last) = self.last_seen else {
            self.last_seen = Some(ext);
            return true;
        };
        if ext <= last {
            return true;
        }
        self.last_seen = Some(ext);
        match before {
            // A clock jumped: what came before says nothing about the pace.
            Some(before) if (offset - before).abs() > JUMP_US => false,
            Some(before) => before - offset > self.micros(ext - last) / 4,
            None => true,
        }
    }

    /// Places a frame with raw RTP timestamp `rtp` (at `clock_rate` Hz), read at `received_us`
    /// by the unit's wall clock.
    pub fn frame(&mut self, rtp: u32, clock_rate: u32, received_us: i64) -> Stamp {
        self.set_clock_rate(clock_rate);
        let ext = self.unwrap(rtp);
        let arrived = match (self.last_seen, self.floor()) {
            // Already in the earliest read time (`seen`), which later reads may have lowered;
            // unless a clock jumped since.
            (Some(last_seen), Some(floor))
                if ext <= last_seen && (0..=JUMP_US).contains(&(received_us - self.micros(ext) - floor)) =>
            {
                self.micros(ext) + floor
            }
            _ => {
                self.last_seen = None;
                self.arrival(ext, received_us)
            }
        };
        let target = self.capture_time(rtp, arrived).unwrap_or(arrived);
        let mut jumped = false;
        let out = match (self.anchor, self.last) {
            (Some((anchor_ext, anchor_us)), Some((last_out, last_received, last_ext))) => {
                let predicted = anchor_us + self.micros(ext - anchor_ext);
                let error = target - predicted;
                if error.abs() > JUMP_US {
                    // Carry on from the last frame, no earlier, by whichever clock still steps
                    // plausibly: the receive clock (the camera's jumped) or the camera's (ours).
                    let plausible = |step: i64| (1..=JUMP_US).contains(&step).then_some(step);
                    let step = plausible(received_us - last_received)
                        .or_else(|| plausible(self.micros(ext - last_ext)))
                        .unwrap_or(1);
                    let out = target.max(last_out + step);
                    let ahead = out - target > JUMP_US;
                    jumped = !(ahead && self.ahead);
                    self.ahead = ahead;
                    self.anchor = Some((ext, out));
                    out
                } else {
                    self.ahead = false;
                    let step = self.micros(ext - last_ext).abs();
                    let most = step * MAX_SLEW_PER_MILLE / 1000;
                    let share = i128::from(error) * i128::from(step.min(SLEW_US / 2)) / i128::from(SLEW_US);
                    let anchor_us = anchor_us + (share as i64).clamp(-most, most);
                    self.anchor = Some((anchor_ext, anchor_us));
                    anchor_us + self.micros(ext - anchor_ext)
                }
            }
            _ => {
                self.anchor = Some((ext, target));
                target
            }
        };
        let out = match self.last {
            Some((last_out, ..)) => out.max(last_out + 1),
            None => self.not_before.map_or(out, |not_before| out.max(not_before)),
        };
        self.last = Some((out, received_us, ext));
        Stamp { wall_clock_us: out, jumped }
    }

    /// Another stream or codec: its timestamps say nothing about the old ones.
    fn set_clock_rate(&mut self, clock_rate: u32) {
        let clock_rate = clock_rate.max(1);
        if clock_rate != self.clock_rate {
            *self = FrameClock {
                clock_rate,
                report: self.report,
                last: self.last,
                ahead: self.ahead,
                not_before: self.not_before,
                ..FrameClock::default()
            };
        }
    }

    /// The earliest read time minus RTP time of the last [`FLOOR_WINDOW_US`].
    fn floor(&self) -> Option<i64> {
        self.lows.front().map(|&(_, offset)| offset)
    }

    /// When a frame at unwrapped RTP time `ext`, read at `received_us`, arrived: its RTP time
    /// plus the earliest read-minus-RTP time of the last [`FLOOR_WINDOW_US`] (a frame is read
    /// late, never early), which starts over when either clock jumps.
    fn arrival(&mut self, ext: i64, received_us: i64) -> i64 {
        let rtp_us = self.micros(ext);
        let offset = received_us - rtp_us;
        if self.floor().is_some_and(|floor| (offset - floor).abs() > JUMP_US) {
            self.lows.clear();
        }
        while self.lows.back().is_some_and(|&(_, later)| later >= offset) {
            self.lows.pop_back();
        }
        self.lows.push_back((rtp_us, offset));
        while self.lows.len() > FLOOR_FRAMES || self.lows.front().is_some_and(|&(t, _)| t < rtp_us - FLOOR_WINDOW_US) {
            self.lows.pop_front();
        }
        rtp_us + self.floor().unwrap_or(offset)
    }

    /// Unwraps a 32-bit RTP timestamp: steps of less than 2³¹ either way are taken as such.
    fn unwrap(&mut self, rtp: u32) -> i64 {
        let ext = match self.unwrap {
            Some((last_rtp, last_ext)) => last_ext + i64::from(rtp.wrapping_sub(last_rtp) as i32),
            None => i64::from(rtp),
        };
        self.unwrap = Some((rtp, ext));
        ext
    }

    /// The capture time by the latest sender report, if the camera's clock agrees with ours:
    /// shortly before the frame `arrived`.
    fn capture_time(&self, rtp: u32, arrived: i64) -> Option<i64> {
        let (report_rtp, report_us) = self.report?;
        let capture = report_us + self.micros(i64::from(rtp.wrapping_sub(report_rtp) as i32));
        (arrived - REPORT_EARLY_US..=arrived + REPORT_LATE_US).contains(&capture).then_some(capture)
    }

    fn micros(&self, ticks: i64) -> i64 {
        (i128::from(ticks) * 1_000_000 / i128::from(self.clock_rate)) as i64
    }
}

/// An NTP timestamp (seconds since 1900 in the upper 32 bits, fraction in the lower) as
/// microseconds since the Unix epoch; `None` before 1970.
pub fn ntp_to_unix_us(ntp: u64) -> Option<i64> {
    const UNIX_EPOCH_NTP_SECONDS: u64 = 2_208_988_800;
    let seconds = (ntp >> 32).checked_sub(UNIX_EPOCH_NTP_SECONDS)?;
    let micros = ((ntp & 0xffff_ffff) * 1_000_000) >> 32;
    i64::try_from(seconds * 1_000_000 + micros).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME_TICKS: u32 = 3600; // 25 fps at 90 kHz
    const FRAME_US: i64 = 40_000;
    const T0: i64 = 1_800_000_000_000_000;

    /// Feeds `n` frames 40 ms apart from `rtp0`, received from `received0` with `jitter(i)` µs
    /// of delay; returns the stamps.
    fn feed(clock: &mut FrameClock, rtp0: u32, received0: i64, n: u32, jitter: impl Fn(u32) -> i64) -> Vec<Stamp> {
        (0..n)
            .map(|i| {
                let rtp = rtp0.wrapping_add(i * FRAME_TICKS);
                clock.frame(rtp, 90_000, received0 + i64::from(i) * FRAME_US + jitter(i))
            })
            .collect()
    }

    fn increasing(stamps: &[Stamp]) -> bool {
        stamps.windows(2).all(|w| w[1].wall_clock_us > w[0].wall_clock_us)
    }

    #[test]
    fn frames_are_spaced_by_the_camera_clock_despite_network_jitter() {
        let mut clock = FrameClock::new();
        let stamps = feed(&mut clock, 1000, T0, 250, |i| i64::from(i % 5) * 7_000);
        assert!(increasing(&stamps));
        assert!(stamps.iter().all(|s| !s.jumped));
        for w in stamps.windows(2) {
            let step = w[1].wall_clock_us - w[0].wall_clock_us;
            assert!((FRAME_US - 2_000..=FRAME_US + 2_000).contains(&step), "a step of {step} µs");
        }
    }

    #[test]
    fn an_rtp_timestamp_wrap_is_not_a_jump() {
        let mut clock = FrameClock::new();
        // Starts two seconds before the 32-bit wrap and runs ten seconds past it.
        let stamps = feed(&mut clock, u32::MAX - 2 * 90_000, T0, 300, |_| 0);
        assert!(increasing(&stamps));
        assert!(stamps.iter().all(|s| !s.jumped));
        let span = stamps.last().unwrap().wall_clock_us - stamps[0].wall_clock_us;
        assert_eq!(span, 299 * FRAME_US);
    }

    #[test]
    fn a_camera_clock_jump_forward_or_back_reanchors_on_the_receive_clock() {
        for jump in [3_600 * 90_000u32, 0u32.wrapping_sub(600 * 90_000)] {
            let mut clock = FrameClock::new();
            let mut stamps = feed(&mut clock, 5_000, T0, 50, |_| 0);
            let after = feed(
                &mut clock,
                5_000u32.wrapping_add(50 * FRAME_TICKS).wrapping_add(jump),
                T0 + 50 * FRAME_US,
                50,
                |_| 0,
            );
            assert!(after[0].jumped, "the jump is reported");
            assert!(after[1..].iter().all(|s| !s.jumped), "once");
            stamps.extend(after);
            assert!(increasing(&stamps));
            for (i, s) in stamps.iter().enumerate() {
                assert!(
                    (s.wall_clock_us - (T0 + i as i64 * FRAME_US)).abs() < 1_000,
                    "frame {i} stays on the receive clock"
                );
            }
        }
    }

    #[test]
    fn a_camera_clock_running_fast_is_followed_without_jumps() {
        let mut clock = FrameClock::new();
        // 1% fast: after 60 s its timestamps are 600 ms ahead of the receive clock, then more.
        let stamps: Vec<Stamp> =
            (0..25 * 600).map(|i: u32| clock.frame(i * 3636, 90_000, T0 + i64::from(i) * FRAME_US)).collect();
        assert!(increasing(&stamps));
        assert!(stamps.iter().all(|s| !s.jumped));
        let last = stamps.last().unwrap().wall_clock_us;
        let received = T0 + (25 * 600 - 1) * FRAME_US;
        assert!((last - received).abs() < 100_000, "it follows the receive clock: {} µs off", last - received);
    }

    #[test]
    fn the_unit_clock_stepping_back_never_takes_the_timeline_back() {
        let mut clock = FrameClock::new();
        let mut stamps = feed(&mut clock, 0, T0, 50, |_| 0);
        // The unit's clock is set back an hour.
        let back = T0 + 50 * FRAME_US - 3_600_000_000;
        let after = feed(&mut clock, 50 * FRAME_TICKS, back, 100, |_| 0);
        assert!(after[0].jumped);
        assert_eq!(after.iter().filter(|s| s.jumped).count(), 1, "one jump, not one a frame");
        stamps.extend(after);
        assert!(increasing(&stamps));
        let steps: Vec<i64> = stamps.windows(2).map(|w| w[1].wall_clock_us - w[0].wall_clock_us).collect();
        assert!(steps.iter().all(|s| (FRAME_US - 1_000..=FRAME_US + 1_000).contains(s)), "{steps:?}");
    }

    #[test]
    fn sender_reports_give_capture_times_when_the_camera_clock_agrees() {
        let mut clock = FrameClock::new();
        // Frames arrive 300 ms after capture; the camera's clock is right.
        let ntp = |us: i64| {
            let s = us / 1_000_000;
            (((s as u64) + 2_208_988_800) << 32) | ((((us % 1_000_000) as u64) << 32) / 1_000_000)
        };
        clock.sender_report(7_000, ntp(T0));
        let stamps = feed(&mut clock, 7_000, T0 + 300_000, 25, |_| 0);
        for (i, s) in stamps.iter().enumerate() {
            assert!((s.wall_clock_us - (T0 + i as i64 * FRAME_US)).abs() <= 1, "capture time, not receive time");
        }
        // A camera whose clock is a day off: its reports are ignored.
        let mut clock = FrameClock::new();
        clock.sender_report(7_000, ntp(T0 - 86_400_000_000));
        let stamps = feed(&mut clock, 7_000, T0 + 300_000, 25, |_| 0);
        assert_eq!(stamps[0].wall_clock_us, T0 + 300_000, "receive time");
    }

    /// Every step between stamps is the camera's 40 ms, give or take the slew's 10 %.
    fn keeps_the_camera_pace(stamps: &[Stamp]) {
        let most = FRAME_US / 10 + 1;
        for (i, w) in stamps.windows(2).enumerate() {
            let step = w[1].wall_clock_us - w[0].wall_clock_us;
            assert!((FRAME_US - most..=FRAME_US + most).contains(&step), "step {i}: {step} µs");
        }
    }

    #[test]
    fn a_burst_read_late_keeps_the_camera_pace_and_settles_on_the_earliest_reads() {
        // GStreamer sends what it encoded before PLAY at once: 18 frames (0.68 s) read within
        // 2 ms, then one every 40 ms as captured.
        let mut clock = FrameClock::new();
        let burst = 17 * FRAME_US;
        let stamps =
            feed(
                &mut clock,
                0,
                T0,
                600,
                |i| if i < 18 { burst - i64::from(i) * FRAME_US + i64::from(i) * 100 } else { 0 },
            );
        assert!(stamps.iter().all(|s| !s.jumped));
        keeps_the_camera_pace(&stamps);
        assert_eq!(stamps[0].wall_clock_us, T0 + burst, "the first frame as read");
        // 0.68 s at 4 ms a frame at most, then 1/32 of what remains: on the capture times
        // within 20 s.
        for (i, s) in stamps.iter().enumerate().skip(25 * 20) {
            let capture = T0 + i as i64 * FRAME_US;
            assert!((s.wall_clock_us - capture).abs() <= 1_000, "frame {i}: {} µs off", s.wall_clock_us - capture);
        }
    }

    #[test]
    fn a_burst_seen_whole_before_it_is_stamped_is_stamped_by_when_its_last_frame_arrived() {
        // The same burst, noted as read (`seen`) until a frame comes at the camera's pace, then
        // stamped: on the capture times from the first frame, 40 ms apart.
        let mut clock = FrameClock::new();
        let burst = 17 * FRAME_US;
        let read = |i: u32| {
            T0 + i64::from(i) * FRAME_US + if i < 18 { burst - i64::from(i) * FRAME_US + i64::from(i) * 100 } else { 0 }
        };
        let mut held = Vec::new();
        for i in 0..30u32 {
            held.push(i);
            if !clock.seen(i * FRAME_TICKS, 90_000, read(i)) {
                break;
            }
        }
        assert_eq!(held.len(), 19, "the burst and the first frame read at the camera's pace");
        let mut stamps: Vec<Stamp> = held.iter().map(|&i| clock.frame(i * FRAME_TICKS, 90_000, read(i))).collect();
        stamps.extend((19..200).map(|i| clock.frame(i * FRAME_TICKS, 90_000, read(i))));
        for (i, s) in stamps.iter().enumerate() {
            let capture = T0 + i as i64 * FRAME_US;
            assert!((s.wall_clock_us - capture).abs() <= 1_000, "frame {i}: {} µs off", s.wall_clock_us - capture);
        }
        // A camera that sends at its pace from the start waits for its second frame only.
        let mut clock = FrameClock::new();
        assert!(clock.seen(0, 90_000, T0));
        assert!(!clock.seen(FRAME_TICKS, 90_000, T0 + FRAME_US + 3_000));
        // (The 3 ms late read leaves the earliest read time where the first set it.)
        assert!((clock.frame(0, 90_000, T0).wall_clock_us - T0).abs() < 100);
        let second = clock.frame(FRAME_TICKS, 90_000, T0 + FRAME_US + 3_000).wall_clock_us;
        assert!((second - (T0 + FRAME_US)).abs() < 100, "{second}");
    }

    #[test]
    fn reads_delayed_by_naps_leave_the_timeline_on_the_arrival_times() {
        // Frames arrive every 40 ms. After two seconds the thread naps 250 ms between reads:
        // a frame waits until the next wake-up. A sender report at frame 200 gives the capture
        // times, 3 ms before arrival; the stamps barely move.
        const NAP_US: i64 = 250_000;
        let ntp = |us: i64| {
            (((us / 1_000_000) as u64 + 2_208_988_800) << 32) | ((((us % 1_000_000) as u64) << 32) / 1_000_000)
        };
        let mut clock = FrameClock::new();
        let mut stamps = Vec::new();
        for i in 0..750u32 {
            let arrived = T0 + i64::from(i) * FRAME_US;
            let read = if i < 50 { arrived } else { arrived + (NAP_US - (arrived - T0 + 30_000) % NAP_US) % NAP_US };
            if i == 200 {
                clock.sender_report(i * FRAME_TICKS, ntp(arrived - 3_000));
            }
            stamps.push(clock.frame(i * FRAME_TICKS, 90_000, read));
        }
        keeps_the_camera_pace(&stamps);
        for (i, s) in stamps.iter().enumerate() {
            // Within 8 ms of arrival (6.5 ms at worst, as the earliest read creeps up between
            // timely ones); following the average read time it was 125 ms late.
            let off = s.wall_clock_us - (T0 + i as i64 * FRAME_US);
            assert!((-8_000..=8_000).contains(&off), "frame {i}: {off} µs from its arrival");
        }
        let last = stamps.last().unwrap().wall_clock_us - (T0 + 749 * FRAME_US);
        assert!((-3_100..=-2_900).contains(&last), "on the capture times at last: {last} µs");
    }

    #[test]
    fn a_camera_clock_running_slow_is_followed_close_to_the_arrival_times() {
        // 1 % slow, at 25 fps and at 1 fps: the earliest read of the last 4 s is 40 ms behind,
        // and the slew (by time, not by frame) adds 20 ms at 1 fps.
        for (frame_us, ticks) in [(FRAME_US, 3564u32), (1_000_000, 89_100)] {
            let mut clock = FrameClock::new();
            let n = (600_000_000 / frame_us) as u32;
            for i in 0..n {
                let arrived = T0 + i64::from(i) * frame_us;
                let s = clock.frame(i * ticks, 90_000, arrived);
                assert!(!s.jumped);
                let off = s.wall_clock_us - arrived;
                assert!((-80_000..=0).contains(&off), "{frame_us} µs frames, frame {i}: {off} µs");
            }
        }
    }

    #[test]
    fn the_unit_clock_stepping_back_a_second_is_absorbed_without_going_back() {
        let mut clock = FrameClock::new();
        let mut stamps = feed(&mut clock, 0, T0, 100, |_| 0);
        let after = feed(&mut clock, 100 * FRAME_TICKS, T0 + 100 * FRAME_US - 1_000_000, 600, |_| 0);
        assert!(after.iter().all(|s| !s.jumped), "under JUMP_US: a slew, not a jump");
        stamps.extend(after);
        assert!(increasing(&stamps));
        keeps_the_camera_pace(&stamps);
        // At 4 ms a frame at most, then 1/32 of what remains: on the new clock within 15 s.
        for (i, s) in stamps.iter().enumerate().skip(100 + 25 * 15) {
            let arrived = T0 + i as i64 * FRAME_US - 1_000_000;
            assert!((s.wall_clock_us - arrived).abs() <= 5_000, "frame {i}: {} µs", s.wall_clock_us - arrived);
        }
    }

    #[test]
    fn b_frames_do_not_end_a_burst() {
        // Decode order I P B B P B B …: presentation times 0, 3, 1, 2, 6, 4, 5 frames; all
        // read at once, then frames at the camera's pace.
        let order = [0u32, 3, 1, 2, 6, 4, 5];
        let mut clock = FrameClock::new();
        let read = T0 + 2_000_000;
        assert!(order.iter().all(|&i| clock.seen(i * FRAME_TICKS, 90_000, read + i64::from(i) * 10)));
        assert!(!clock.seen(7 * FRAME_TICKS, 90_000, read + FRAME_US + 70), "frame 7 comes at the pace");
        // Frame 6, read last of them, arrived then, and frame 0 six steps before. (The timeline
        // never goes back, so the B-frames follow the frame before them in decode order.)
        let stamps: Vec<Stamp> =
            order.iter().map(|&i| clock.frame(i * FRAME_TICKS, 90_000, read + i64::from(i) * 10)).collect();
        let first = stamps[0].wall_clock_us - (read + 60 - 6 * FRAME_US);
        assert!(first.abs() <= 1_000, "frame 0: {first} µs from its arrival");
        assert!(increasing(&stamps) && stamps.iter().all(|s| s.wall_clock_us <= read + 60 + 2));
    }

    #[test]
    fn a_camera_clock_jump_inside_a_held_burst_leaves_no_frame_stamped_before_it_was_read() {
        let mut clock = FrameClock::new();
        assert!(clock.seen(0, 90_000, T0));
        assert!(clock.seen(FRAME_TICKS, 90_000, T0 + 100));
        // The camera's clock jumps an hour ahead.
        assert!(!clock.seen(FRAME_TICKS * 2 + 3600 * 90_000, 90_000, T0 + 200), "a jump ends the burst");
        let first = clock.frame(0, 90_000, T0).wall_clock_us;
        assert!((T0 - 1_000..=T0).contains(&first), "{}", first - T0);
    }

    #[test]
    fn a_new_session_stamps_after_the_last_one() {
        let mut clock = FrameClock::after(Some(T0 + 5_000_000));
        let stamps = feed(&mut clock, 0, T0, 3, |_| 0);
        assert!(stamps[0].wall_clock_us > T0 + 5_000_000);
        assert!(increasing(&stamps));
    }

    #[test]
    fn ntp_times_convert_to_unix_microseconds() {
        assert_eq!(ntp_to_unix_us(2_208_988_800 << 32), Some(0));
        assert_eq!(ntp_to_unix_us((2_208_988_801 << 32) | 0x8000_0000), Some(1_500_000));
        assert_eq!(ntp_to_unix_us(5 << 32), None, "before 1970");
    }
}
