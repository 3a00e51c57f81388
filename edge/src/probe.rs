//! Probing a camera before it is saved: connect, read a few seconds of video, and report what
//! the camera sends (streams, codec, picture size, frame rate, bit rate, key-frame interval,
//! the audio that would be recorded or why not).

use std::time::Duration;

use futures::StreamExt;
use retina::codec::{CodecItem, ParametersRef};
use serde::Serialize;

use crate::status::AudioJson;

/// How long a probe waits for the camera's first video frame after PLAY.
const FIRST_FRAME_WAIT: Duration = Duration::from_secs(15);
/// How long the video may pause during the measured window before the probe gives up.
const STALL_WAIT: Duration = Duration::from_secs(5);

/// What a probe found.
#[derive(Debug, Serialize)]
pub struct ProbeReport {
    /// The URL probed, without credentials.
    pub url: String,
    /// Every stream the camera offers, as `media/encoding` (e.g. `video/h264`, `audio/mpeg4-generic`).
    pub streams: Vec<String>,
    /// The video stream Convoy would record.
    pub video: Option<VideoReport>,
    /// The audio Convoy would record beside it (as in `/api/status`), from the camera's
    /// description.
    pub audio: Option<AudioJson>,
    /// Why Convoy would not record the camera's audio, when it offers some.
    pub audio_reason: Option<String>,
}

/// The recorded video stream, measured.
#[derive(Debug, Serialize)]
pub struct VideoReport {
    /// RFC 6381 codec.
    pub codec: String,
    /// Picture width.
    pub width: u32,
    /// Picture height.
    pub height: u32,
    /// Frames per second over the probe.
    pub fps: f64,
    /// Bits per second over the probe.
    pub bitrate_bps: u64,
    /// Frames from one key frame to the next, when two were seen.
    pub keyframe_interval_frames: Option<u64>,
    /// Frames read.
    pub frames: u64,
}

/// Probes `url` for about `duration` of video. Errors say what failed (connect, describe, …).
pub async fn probe(url: &url::Url, creds: Option<(String, String)>, duration: Duration) -> Result<ProbeReport, String> {
    let (username, password) = match &creds {
        Some((u, p)) => (Some(u.as_str()), Some(p.as_str())),
        None => (None, None),
    };
    let agent = format!("Convoy edge {} (probe)", env!("CARGO_PKG_VERSION"));
    let described = crate::rtsp::describe(url, username, password, agent).await?;
    let (audio, audio_reason) = match described.audio {
        Ok(Some(i)) => match described.session.streams()[i].parameters() {
            Some(ParametersRef::Audio(p)) => {
                let encoding = described.session.streams()[i].encoding_name();
                (Some(crate::camera::audio_parameters("", encoding, p).1), None)
            }
            _ => (None, None),
        },
        Ok(None) => (None, None),
        Err(why) => (None, Some(why)),
    };
    let mut report =
        ProbeReport { url: described.url.to_string(), streams: described.streams, video: None, audio, audio_reason };
    let Some(video) = described.video else { return Ok(report) };
    let mut demuxed = crate::rtsp::play(described.session, video).await?;
    let h265 = demuxed.streams()[video].encoding_name() == "h265";
    let (mut frames, mut bytes, mut first_pts, mut last_pts) = (0u64, 0u64, None, 0i64);
    let (mut keyframes, mut interval) = (Vec::new(), None);
    // The measured window starts at the first frame: a camera (or an RTSP server that starts
    // its encoder for the first client) may take seconds to send it.
    let first_by = tokio::time::Instant::now() + FIRST_FRAME_WAIT;
    let mut deadline = None;
    let mut clock = 90_000u32;
    while deadline.is_none_or(|d| tokio::time::Instant::now() < d) {
        let limit = deadline.map_or(first_by, |d| d + STALL_WAIT);
        let item = match tokio::time::timeout_at(limit, demuxed.next()).await {
            Err(_) if deadline.is_none() => {
                return Err(format!("no video frame arrived within {} s", FIRST_FRAME_WAIT.as_secs()));
            }
            Err(_) => return Err(format!("the camera stopped sending video for {} s", STALL_WAIT.as_secs())),
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(e.to_string()),
            Ok(Some(Ok(item))) => item,
        };
        let CodecItem::VideoFrame(frame) = item else { continue };
        deadline.get_or_insert_with(|| tokio::time::Instant::now() + duration);
        let ts = frame.timestamp();
        clock = ts.clock_rate().get();
        first_pts.get_or_insert(ts.elapsed());
        last_pts = ts.elapsed();
        if crate::h265_key_frames::is_key_frame(&frame, h265) {
            keyframes.push(frames);
            if keyframes.len() >= 2 {
                interval = Some(keyframes[keyframes.len() - 1] - keyframes[keyframes.len() - 2]);
            }
        }
        frames += 1;
        bytes += frame.data().len() as u64;
    }
    let Some(ParametersRef::Video(p)) = demuxed.streams()[video].parameters() else {
        return Err("the camera sent no codec parameters".into());
    };
    let (width, height) = p.pixel_dimensions();
    let span = (last_pts - first_pts.unwrap_or(last_pts)) as f64 / f64::from(clock);
    report.video = Some(VideoReport {
        codec: p.rfc6381_codec().to_owned(),
        width,
        height,
        fps: if span > 0.0 { ((frames.saturating_sub(1)) as f64 / span * 10.0).round() / 10.0 } else { 0.0 },
        bitrate_bps: if span > 0.0 { (bytes as f64 * 8.0 / span) as u64 } else { 0 },
        keyframe_interval_frames: interval,
        frames,
    });
    Ok(report)
}
