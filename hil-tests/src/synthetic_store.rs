//! A unit store written directly, without a camera: random bytes as H.264-shaped frames (so
//! nothing compresses), for benchmarks that move recordings rather than record them.

use std::path::Path;

use media_store::{MediaKind, Record, Store, StoreOptions, StoredFrame, StoredParameters};

/// The shape of the synthetic camera `front`: 25 fps, a key frame of 125 kB every `gop` frames.
#[derive(Debug, Clone, Copy)]
pub struct SyntheticCamera {
    /// Frames from one key frame to the next.
    pub gop: u32,
    /// Bytes of each predicted frame.
    pub p_frame_bytes: usize,
    /// Seed of the frames' random bytes.
    pub seed: u64,
}

/// Writes `seconds` of `camera` into a store at `dir`, ending `ends_ago_us` before now, and
/// syncs it; returns the media bytes written and the time range `[start, end)` in µs.
pub fn write(dir: &Path, seconds: u32, ends_ago_us: i64, camera: SyntheticCamera) -> anyhow::Result<(u64, i64, i64)> {
    let (mut store, _) = Store::open(dir, StoreOptions::default())?;
    store.append(&Record::Parameters(StoredParameters {
        camera: "front".into(),
        rfc6381_codec: "avc1.640028".into(),
        width: 1920,
        height: 1080,
        extra_data: vec![1, 0x64, 0, 0x28, 0xff, 0xe1, 0, 4, 0x67, 0x64, 0, 0x28],
    }))?;
    let frames = seconds * 25;
    let start = jiff::Timestamp::now().as_microsecond() - i64::from(seconds) * 1_000_000 - ends_ago_us;
    let mut bytes = 0u64;
    let mut rng = fastrand::Rng::with_seed(camera.seed);
    for i in 0..frames {
        let keyframe = i % camera.gop == 0;
        let len = if keyframe { 125_000 } else { camera.p_frame_bytes };
        bytes += len as u64;
        store.append(&Record::Frame(StoredFrame {
            camera: "front".into(),
            stream: 0,
            parameters_seq: 0,
            kind: MediaKind::Video,
            keyframe,
            pts: i64::from(i) * 3600,
            clock_rate: 90_000,
            wall_clock_us: start + i64::from(i) * 40_000,
            data: (0..len).map(|_| rng.u8(..)).collect(),
        }))?;
    }
    store.sync()?;
    Ok((bytes, start, start + i64::from(frames) * 40_000))
}
