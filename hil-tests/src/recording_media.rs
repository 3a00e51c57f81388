//! Media for the recording-mode tests: a clip with a still part and a moving part made with
//! ffmpeg at test time, `sim-camera` serving any clip, and what a camera's log holds.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use media_store::Record;
use media_store::read::read_range;

use crate::process::{Proc, bin_path};

/// One stored frame, as the tests look at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameInfo {
    /// Its wall clock, µs since the Unix epoch.
    pub wall_us: i64,
    /// Whether it is a key frame.
    pub keyframe: bool,
    /// Its size in bytes.
    pub bytes: usize,
}

/// Makes `dir/burst.h264`: H.264 Annex-B with AUDs (as `sim-camera` wants), 25 fps, a key
/// frame every second, `still_s` seconds of one frozen picture then `moving_s` seconds of
/// moving test video. Looped by the camera, it is a scene where motion comes and goes.
pub fn motion_burst_clip(dir: &Path, still_s: u32, moving_s: u32) -> anyhow::Result<PathBuf> {
    let out = dir.join("burst.h264");
    let still = format!(
        "testsrc2=size=640x360:rate=25,trim=end_frame=1,loop=loop={}:size=1:start=0,setpts=N/25/TB",
        still_s * 25 - 1
    );
    let moving = format!("testsrc2=size=640x360:rate=25:duration={moving_s}");
    let status = Command::new("ffmpeg")
        .args(["-y", "-loglevel", "error", "-f", "lavfi", "-i", &still, "-f", "lavfi", "-i", &moving])
        .args(["-filter_complex", "[0][1]concat=n=2:v=1:a=0[v]", "-map", "[v]"])
        .args(["-c:v", "libx264", "-pix_fmt", "yuv420p", "-profile:v", "main", "-preset", "veryfast"])
        .args(["-tune", "zerolatency", "-x264-params", "keyint=25:min-keyint=25:scenecut=0:bframes=0:aud=1:slices=1"])
        .args(["-b:v", "300k", "-maxrate", "300k", "-bufsize", "600k", "-bsf:v", "h264_mp4toannexb", "-f", "h264"])
        .arg(&out)
        .status()
        .context("ffmpeg is needed to make the test clip (./dev setup installs it)")?;
    if !status.success() {
        bail!("ffmpeg could not make {}: {status}", out.display());
    }
    Ok(out)
}

/// Starts `sim-camera` looping `clip` on `mounts`; returns it with its base URL.
pub fn sim_camera_with_clip(dir: &Path, clip: &Path, mounts: &[&str]) -> anyhow::Result<(Proc, String)> {
    sim_camera_with_clip_args(dir, clip, mounts, &[])
}

/// [`sim_camera_with_clip`] with more `sim-camera` arguments (such as `--stagger`).
pub fn sim_camera_with_clip_args(
    dir: &Path,
    clip: &Path,
    mounts: &[&str],
    args: &[&str],
) -> anyhow::Result<(Proc, String)> {
    let mut cmd = Command::new(bin_path("sim-camera")?);
    cmd.arg("--listen").arg("127.0.0.1:0").arg("--clip").arg(clip).args(args);
    for m in mounts {
        cmd.arg("--mount").arg(format!("/{m}"));
    }
    let mut proc = Proc::spawn("sim-camera", cmd, &dir.join("sim-camera.log"))?;
    let line = proc.wait_line("listening on rtsp://", Duration::from_secs(30))?;
    let url = line.rsplit(' ').next().context("no URL")?.trim_end_matches('/').to_owned();
    Ok((proc, url))
}

/// Every frame in `camera`'s log, in log order (empty when the camera has no log).
pub fn stored_frames(store: &Path, camera: &str) -> Vec<FrameInfo> {
    let Ok(reader) = read_range(store, camera, 0, i64::MAX, None) else {
        return Vec::new();
    };
    reader
        .flatten()
        .filter_map(|r| match r {
            Record::Frame(f) => Some(FrameInfo { wall_us: f.wall_clock_us, keyframe: f.keyframe, bytes: f.data.len() }),
            _ => None,
        })
        .collect()
}

/// µs since the Unix epoch, now.
pub fn now_us() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64)
}
