//! The synthetic workload: K cameras of H.264-like frames at a constant bit rate, interleaved
//! across cameras in time order, on a simulated clock.

/// Units per second of the frames' `pts` (the RTP clock of H.264).
pub const CLOCK_RATE: u32 = 90_000;

/// The simulated clock starts here (µs since the Unix epoch; 2024-01-01).
const START_US: i64 = 1_704_067_200_000_000;

/// Frame sizes vary by up to this many percent around their mean.
const JITTER_PERCENT: u32 = 25;

/// What the cameras send.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Cameras recording at once.
    pub cameras: usize,
    /// Bits per second of each camera.
    pub bitrate: u64,
    /// Frames per second.
    pub fps: u32,
    /// Frames from one key frame to the next.
    pub gop: u32,
    /// A key frame is this many times the size of a P-frame.
    pub key_to_p: u32,
}

impl Workload {
    /// `cameras` cameras at 4 Mbit/s, 25 fps, a key frame every 25 frames 8x a P-frame.
    pub fn new(cameras: usize) -> Workload {
        Workload { cameras, bitrate: 4_000_000, fps: 25, gop: 25, key_to_p: 8 }
    }

    /// The camera ids.
    pub fn camera_ids(&self) -> Vec<String> {
        (0..self.cameras).map(|c| format!("cam{c}")).collect()
    }

    /// Media bytes of one simulated second, all cameras.
    pub fn bytes_per_second(&self) -> u64 {
        self.cameras as u64 * self.bitrate / 8
    }

    /// The mean size of a P-frame: one group of pictures lasts `gop / fps` seconds and holds
    /// `gop - 1` P-frames and one key frame worth `key_to_p` of them.
    pub fn p_frame_bytes(&self) -> usize {
        let gop_bytes = self.bitrate / 8 * u64::from(self.gop) / u64::from(self.fps);
        (gop_bytes / u64::from(self.gop - 1 + self.key_to_p)) as usize
    }

    /// One line for the report.
    pub fn describe(&self) -> String {
        format!(
            "{} cameras × {} Mbit/s, {} fps, a key frame every {} frames ({} B mean) and P-frames of {} B mean \
             (±{JITTER_PERCENT}%), frames interleaved across cameras in time order",
            self.cameras,
            self.bitrate as f64 / 1e6,
            self.fps,
            self.gop,
            self.p_frame_bytes() * self.key_to_p as usize,
            self.p_frame_bytes(),
        )
    }
}

/// One frame of one camera.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Index of the camera in [`Workload::camera_ids`].
    pub camera: usize,
    /// Whether a decoder can start here.
    pub keyframe: bool,
    /// Presentation time in [`CLOCK_RATE`] units.
    pub pts: i64,
    /// Simulated receive time, µs since the Unix epoch.
    pub wall_us: i64,
    /// The encoded bytes (random: nothing below compresses anyway).
    pub data: &'a [u8],
}

/// Produces the workload one simulated second at a time. Deterministic: every writer sees
/// the same frames.
pub struct Generator {
    workload: Workload,
    rng: fastrand::Rng,
    pool: Vec<u8>,
    second: u64,
}

impl Generator {
    /// A generator at simulated second 0.
    pub fn new(workload: Workload) -> Generator {
        let mut rng = fastrand::Rng::with_seed(0x00c0_ffee);
        let largest = workload.p_frame_bytes() * workload.key_to_p as usize * 2;
        let pool = std::iter::repeat_with(|| rng.u8(..)).take(4 * largest).collect();
        Generator { workload, rng, pool, second: 0 }
    }

    /// The workload.
    pub fn workload(&self) -> &Workload {
        &self.workload
    }

    /// Hands every frame of the next simulated second to `sink`, in time order (cameras
    /// interleaved; each camera's key frames are staggered so they do not coincide). Returns
    /// the media bytes of that second.
    pub fn next_second(&mut self, mut sink: impl FnMut(&Frame) -> anyhow::Result<()>) -> anyhow::Result<u64> {
        let Generator { workload: w, rng, pool, second } = self;
        let (fps, gop, cameras) = (u64::from(w.fps), u64::from(w.gop), w.cameras as u64);
        let frame_us = 1_000_000 / fps;
        let p = w.p_frame_bytes();
        let mut bytes = 0;
        for tick in 0..fps {
            let n = *second * fps + tick;
            for cam in 0..cameras {
                let keyframe = (n + cam * gop / cameras) % gop == 0;
                let mean = if keyframe { p * w.key_to_p as usize } else { p };
                let percent = rng.u32(100 - JITTER_PERCENT..=100 + JITTER_PERCENT) as usize;
                let len = mean * percent / 100;
                let start = rng.usize(..pool.len() - len);
                let frame = Frame {
                    camera: cam as usize,
                    keyframe,
                    pts: (n * u64::from(CLOCK_RATE) / fps) as i64,
                    wall_us: START_US + (n * frame_us + cam * frame_us / cameras) as i64,
                    data: &pool[start..start + len],
                };
                sink(&frame)?;
                bytes += len as u64;
            }
        }
        *second += 1;
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_second_is_about_the_bit_rate_and_in_time_order() {
        let w = Workload::new(8);
        let mut g = Generator::new(w.clone());
        let mut last = i64::MIN;
        let mut keys = 0;
        let mut total = 0;
        for _ in 0..20 {
            total += g
                .next_second(|f| {
                    assert!(f.wall_us > last);
                    last = f.wall_us;
                    keys += usize::from(f.keyframe);
                    Ok(())
                })
                .unwrap();
        }
        assert_eq!(keys, 8 * 20);
        let expected = 20 * w.bytes_per_second();
        assert!(total.abs_diff(expected) < expected / 50, "{total} vs {expected}");
    }
}
