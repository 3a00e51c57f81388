//! A camera-like clip for benchmarks, made with ffmpeg at bench time: moving test video with
//! noise (so the encoder spends its whole budget), H.264 at a given bit rate, 25 fps, a key
//! frame every two seconds (or every `gop` frames), no B-frames, Annex-B with AUDs as
//! `sim-camera` wants.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// Makes (or reuses) `dir/camera-WxH-Kk.h264`: `seconds` of `width`×`height` video at
/// `kbit` kbit/s; returns its path and its measured bit rate in kbit/s.
pub fn camera_clip(dir: &Path, width: u32, height: u32, kbit: u32, seconds: u32) -> anyhow::Result<(PathBuf, f64)> {
    camera_clip_with_gop(dir, width, height, kbit, seconds, 50)
}

/// [`camera_clip`] with a key frame every `gop` frames (`…-gGOP.h264` unless 50).
pub fn camera_clip_with_gop(
    dir: &Path,
    width: u32,
    height: u32,
    kbit: u32,
    seconds: u32,
    gop: u32,
) -> anyhow::Result<(PathBuf, f64)> {
    let suffix = if gop == 50 { String::new() } else { format!("-g{gop}") };
    let out = dir.join(format!("camera-{width}x{height}-{kbit}k-{seconds}s{suffix}.h264"));
    if !out.exists() {
        let tmp = out.with_extension("tmp");
        let source = format!("testsrc2=size={width}x{height}:rate=25:duration={seconds},noise=alls=12:allf=t");
        let rate = format!("{kbit}k");
        let status = Command::new("ffmpeg")
            .args(["-y", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", &source])
            .args(["-c:v", "libx264", "-pix_fmt", "yuv420p", "-profile:v", "main", "-preset", "veryfast"])
            .args(["-x264-params", &format!("keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0:aud=1:slices=1")])
            .args(["-b:v", &rate, "-maxrate", &rate, "-bufsize", &rate, "-bsf:v", "h264_mp4toannexb", "-f", "h264"])
            .arg(&tmp)
            .status()
            .context("ffmpeg is needed to make the benchmark clip")?;
        if !status.success() {
            bail!("ffmpeg could not make {}: {status}", out.display());
        }
        std::fs::rename(&tmp, &out)?;
    }
    let bytes = std::fs::metadata(&out)?.len();
    Ok((out, bytes as f64 * 8.0 / f64::from(seconds) / 1000.0))
}
