//! Reading a range of a camera's video from central's store for playback and export: from the
//! key frame at or before the asked start (or the first one after it when the start falls in a
//! hole), in windows (so memory stays bounded), on one continuous timeline.

use std::path::{Path, PathBuf};

use media_store::by_seq::SeqFrame;
use mp4_export::VideoTrack;

use crate::retrieved::{RetrievedError, read_held};

/// How far before the asked start a key frame is looked for (longer GOPs start later).
pub const KEY_LOOKBACK_US: i64 = 20_000_000;
/// Wall-clock length of each read after the first.
pub const WINDOW_US: i64 = 30_000_000;
/// Ticks per second of the playback and export timelines.
pub const TIMESCALE: u32 = 90_000;

/// Why a range cannot be played or exported.
#[derive(Debug, thiserror::Error)]
pub enum PlaybackError {
    /// Central holds no key frame to start from in the range.
    #[error(
        "central holds no video of {unit}/{camera} from {start} to {end}: retrieve the range from the unit first \
         (POST /api/units/{unit}/cameras/{camera}/retrieve), then try again when it is done"
    )]
    NotHeld {
        /// The unit.
        unit: String,
        /// The camera.
        camera: String,
        /// The asked start, RFC 3339.
        start: String,
        /// The asked end, RFC 3339.
        end: String,
    },
    /// The camera's video is not H.264.
    #[error(
        "this camera records {codec}; browsers and the MP4 export take only H.264 (avc1): configure the camera's \
         H.264 stream, or use `edge store export` tools that handle {codec}"
    )]
    NotH264 {
        /// The stored codec string.
        codec: String,
    },
    /// Reading central's store failed.
    #[error("reading central's store: {0}")]
    Store(#[from] RetrievedError),
}

/// The track of a frame's stored parameters, or why it cannot be used.
pub fn track_of(frame: &SeqFrame) -> Result<Option<VideoTrack>, PlaybackError> {
    let Some(p) = &frame.parameters else { return Ok(None) };
    if !p.rfc6381_codec.starts_with("avc1") {
        return Err(PlaybackError::NotH264 { codec: p.rfc6381_codec.clone() });
    }
    Ok(Some(VideoTrack { width: p.width, height: p.height, avcc: p.extra_data.clone(), timescale: TIMESCALE }))
}

/// A range being read: the first window starts at the key frame at or before `start`.
pub struct RangeReader {
    dir: PathBuf,
    unit: String,
    camera: String,
    /// Frames after this wall-clock time come next.
    next_us: i64,
    end_us: i64,
    timeline: Timeline,
}

/// A frame with its time on the continuous timeline.
pub struct TimedFrame {
    /// The stored frame and its parameters.
    pub frame: SeqFrame,
    /// Time on the timeline, in [`TIMESCALE`] ticks (strictly increasing).
    pub ticks: i64,
}

impl RangeReader {
    /// Reads the first window; [`PlaybackError::NotHeld`] when it has no key frame.
    pub fn open(
        dir: &Path,
        unit: &str,
        camera: &str,
        start_us: i64,
        end_us: i64,
    ) -> Result<(RangeReader, Vec<TimedFrame>), PlaybackError> {
        let first_end = end_us.min(start_us.saturating_add(WINDOW_US));
        let mut frames = read_held(dir, unit, camera, start_us.saturating_sub(KEY_LOOKBACK_US), first_end)?;
        // The key frame at or before the start when the video runs on up to the start; else
        // (the start is in a hole) the first key frame after it.
        let before = frames.iter().rposition(|f| f.frame.wall_clock_us <= start_us);
        let runs_on = before.filter(|&i| start_us - frames[i].frame.wall_clock_us <= media_store::index::GAP_US);
        let key = runs_on.and_then(|i| frames[..=i].iter().rposition(|f| f.frame.keyframe));
        let key = key.or_else(|| frames.iter().position(|f| f.frame.keyframe && f.frame.wall_clock_us >= start_us));
        let Some(key) = key else {
            return Err(PlaybackError::NotHeld {
                unit: unit.to_owned(),
                camera: camera.to_owned(),
                start: crate::time::rfc3339(start_us),
                end: crate::time::rfc3339(end_us),
            });
        };
        frames.drain(..key);
        let mut reader = RangeReader {
            dir: dir.to_owned(),
            unit: unit.to_owned(),
            camera: camera.to_owned(),
            next_us: first_end,
            end_us,
            timeline: Timeline::default(),
        };
        if let Some(last) = frames.last() {
            reader.next_us = reader.next_us.max(last.frame.wall_clock_us);
        }
        let timed = reader.timed(frames);
        Ok((reader, timed))
    }

    /// The next window of frames; empty at the end of the range.
    pub fn next_window(&mut self) -> Result<Vec<TimedFrame>, PlaybackError> {
        while self.next_us < self.end_us {
            let from = self.next_us + 1;
            let to = self.end_us.min(from.saturating_add(WINDOW_US));
            self.next_us = to;
            let frames = read_held(&self.dir, &self.unit, &self.camera, from, to)?;
            if !frames.is_empty() {
                return Ok(self.timed(frames));
            }
        }
        Ok(Vec::new())
    }

    fn timed(&mut self, frames: Vec<SeqFrame>) -> Vec<TimedFrame> {
        frames.into_iter().map(|frame| TimedFrame { ticks: self.timeline.place(&frame), frame }).collect()
    }
}

/// Places frames on one continuous timeline: by the camera's pts while it runs on (steps of
/// up to a second), by the unit's receive time across a camera restart or a hole.
#[derive(Debug, Default)]
pub struct Timeline {
    last: Option<(i64, i64, u32, i64)>, // (ticks, pts, clock_rate, wall_clock_us)
}

impl Timeline {
    /// The frame's time in [`TIMESCALE`] ticks; always after the previous frame's.
    pub fn place(&mut self, f: &SeqFrame) -> i64 {
        let (pts, rate, wall) = (f.frame.pts, f.frame.clock_rate.max(1), f.frame.wall_clock_us);
        let ticks = match self.last {
            None => 0,
            Some((ticks, last_pts, last_rate, last_wall)) => {
                let by_pts = (rate == last_rate)
                    .then(|| i128::from(pts) - i128::from(last_pts))
                    .map(|d| d * i128::from(TIMESCALE) / i128::from(rate))
                    .filter(|&d| d > 0 && d <= i128::from(TIMESCALE));
                let step =
                    by_pts.map(|d| d as i64).unwrap_or_else(|| (wall - last_wall) * i64::from(TIMESCALE) / 1_000_000);
                ticks + step.max(1)
            }
        };
        self.last = Some((ticks, pts, rate, wall));
        ticks
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use media_store::{MediaKind, StoredFrame};

    fn frame(pts: i64, wall: i64) -> SeqFrame {
        SeqFrame {
            seq: 0,
            frame: StoredFrame {
                camera: "front".into(),
                stream: 0,
                parameters_seq: 0,
                kind: MediaKind::Video,
                keyframe: true,
                pts,
                clock_rate: 90_000,
                wall_clock_us: wall,
                data: vec![],
            },
            parameters: None,
            audio_parameters: None,
        }
    }

    /// Stores 100 s of 25 fps video (a key frame a second) in 10 s chunks that arrive out of
    /// order, without the chunk from 40 to 50 s; returns the store's directory and the start.
    async fn stored_video() -> (tempfile::TempDir, i64) {
        use protocol::interconnect::{MediaFrame, VideoParameters};
        use protocol::sync::{RetrievedFrame, SyncFrame};
        let dir = tempfile::tempdir().unwrap();
        let store = crate::retrieved::RetrievedStore::open(dir.path()).unwrap();
        let t0 = 1_800_000_000_000_000;
        let parameters = VideoParameters {
            rfc6381_codec: "avc1.42c01e".into(),
            width: 320,
            height: 240,
            extra_data: vec![1, 0x42, 0xc0, 0x1e, 0xff, 0xe1, 0, 4, 0x67, 0x42, 0xc0, 0x1e, 1, 0, 2, 0x68, 0xce],
        };
        for chunk in [3u64, 0, 1, 9, 2, 5, 6, 8, 7] {
            let frames = (chunk * 250..(chunk + 1) * 250)
                .map(|n| {
                    let frame = MediaFrame {
                        pts: 7_000 + n as i64 * 3_600,
                        clock_rate: 90_000,
                        wall_clock_us: t0 + n as i64 * 40_000,
                        keyframe: n % 25 == 0,
                        data: n.to_be_bytes().to_vec(),
                    };
                    let parameters = (n % 250 == 0).then(|| parameters.clone());
                    let payload = postcard::to_allocvec(&RetrievedFrame { parameters, frame }).unwrap();
                    SyncFrame { seq: n, wall_clock_us: t0 + n as i64 * 40_000, keyframe: n % 25 == 0, payload }
                })
                .collect();
            store.store("bus-1", "front", chunk * 250..(chunk + 1) * 250, frames).await.unwrap();
        }
        (dir, t0)
    }

    fn frame_number(f: &TimedFrame) -> u64 {
        u64::from_be_bytes(f.frame.frame.data[..8].try_into().unwrap())
    }

    #[tokio::test]
    async fn a_range_reads_from_the_key_frame_before_it_every_frame_once_across_windows() {
        let (dir, t0) = stored_video().await;
        let (start, end) = (t0 + 12_500_000, t0 + 90_000_000);
        let (mut reader, first) = RangeReader::open(dir.path(), "bus-1", "front", start, end).unwrap();
        assert_eq!(frame_number(&first[0]), 300, "the key frame at 12 s");
        assert!(first[0].frame.frame.keyframe && track_of(&first[0].frame).unwrap().is_some());
        let mut all = first;
        loop {
            let next = reader.next_window().unwrap();
            if next.is_empty() {
                break;
            }
            all.extend(next);
        }
        let numbers: Vec<u64> = all.iter().map(frame_number).collect();
        let want: Vec<u64> = (300..=2250).filter(|n| !(1000..1250).contains(n)).collect();
        assert_eq!(numbers, want, "every held frame of the range once, in time order");
        assert!(all.windows(2).all(|w| w[0].ticks < w[1].ticks));
        let hole = all.iter().position(|f| frame_number(f) == 1250).unwrap();
        assert_eq!(all[hole].ticks - all[hole - 1].ticks, 251 * 3_600, "the hole is there in receive time");
        assert_eq!(all[1].ticks - all[0].ticks, 3_600, "by the camera's clock elsewhere");
    }

    #[tokio::test]
    async fn a_range_central_does_not_hold_says_to_retrieve_it() {
        let (dir, t0) = stored_video().await;
        let err = RangeReader::open(dir.path(), "bus-1", "front", t0 + 43_000_000, t0 + 49_000_000).err().unwrap();
        assert!(matches!(err, PlaybackError::NotHeld { .. }) && err.to_string().contains("retrieve"), "{err}");
        assert!(RangeReader::open(dir.path(), "bus-1", "rear", t0, t0 + 1_000_000).is_err());
        // A start in the hole plays from the first key frame after it, not from before the hole.
        let (_, first) = RangeReader::open(dir.path(), "bus-1", "front", t0 + 45_000_000, t0 + 60_000_000).unwrap();
        assert_eq!(frame_number(&first[0]), 1250);
    }

    #[test]
    fn timeline_follows_pts_and_falls_back_to_wall_clock() {
        let mut t = Timeline::default();
        assert_eq!(t.place(&frame(1_000, 0)), 0);
        assert_eq!(t.place(&frame(4_600, 40_000)), 3_600, "by pts");
        // Camera restarted: pts went back; 2 s of receive time passed.
        assert_eq!(t.place(&frame(0, 2_040_000)), 3_600 + 180_000);
        // Receive time going back too still moves forward.
        assert_eq!(t.place(&frame(-5, 0)), 3_600 + 180_001);
    }
}
