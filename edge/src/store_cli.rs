//! `edge store …`: offline tools on a store directory (also a store copied off a unit):
//! verify, export to MP4, rebuild the catalog.

use std::collections::BTreeMap;
use std::io::BufWriter;
use std::path::Path;

use anyhow::{Context, bail};
use media_store::verify::{VerifyReport, verify};
use media_store::{Record, Store};
use serde::Serialize;

/// `edge store verify DIR --json` output: a stable contract; fields are only ever added.
#[derive(Debug, Serialize)]
pub struct VerifyJson {
    /// No errors.
    pub ok: bool,
    /// Segment files checked.
    pub segments: u64,
    /// Frames found.
    pub frames: u64,
    /// Bytes of valid records.
    pub bytes: u64,
    /// Bytes of frame payload.
    pub media_bytes: u64,
    /// Per camera.
    pub cameras: BTreeMap<String, CameraJson>,
    /// Bytes of torn tail the next open will cut.
    pub dropped_tail_bytes: u64,
    /// What is wrong.
    pub errors: Vec<String>,
    /// What is worth knowing.
    pub warnings: Vec<String>,
}

/// One camera in [`VerifyJson`].
#[derive(Debug, Serialize)]
pub struct CameraJson {
    /// Frames.
    pub frames: u64,
    /// First frame, RFC 3339.
    pub first: Option<String>,
    /// Last frame, RFC 3339.
    pub last: Option<String>,
    /// Gaps as `[from, to]`, RFC 3339.
    pub gaps: Vec<[String; 2]>,
}

/// Formats µs since the Unix epoch as RFC 3339 (UTC).
pub fn rfc3339(us: i64) -> String {
    jiff::Timestamp::from_microsecond(us).map(|t| t.to_string()).unwrap_or_else(|_| format!("@{us}us"))
}

/// Parses an RFC 3339 time into µs since the Unix epoch.
pub fn parse_rfc3339(s: &str) -> anyhow::Result<i64> {
    let t: jiff::Timestamp =
        s.parse().with_context(|| format!("{s:?} is not an RFC 3339 time such as 2026-11-25T08:00:00Z"))?;
    Ok(t.as_microsecond())
}

impl From<VerifyReport> for VerifyJson {
    fn from(r: VerifyReport) -> Self {
        VerifyJson {
            ok: r.ok(),
            segments: r.segments,
            frames: r.frames,
            bytes: r.bytes,
            media_bytes: r.media_bytes,
            cameras: r
                .cameras
                .into_iter()
                .map(|(id, c)| {
                    let json = CameraJson {
                        frames: c.frames,
                        first: c.first_us.map(rfc3339),
                        last: c.last_us.map(rfc3339),
                        gaps: c.gaps.iter().map(|(a, b)| [rfc3339(*a), rfc3339(*b)]).collect(),
                    };
                    (id, json)
                })
                .collect(),
            dropped_tail_bytes: r.dropped_tail_bytes,
            errors: r.errors,
            warnings: r.warnings,
        }
    }
}

/// `edge store verify`: prints the report; returns whether the store is consistent.
pub fn cmd_verify(dir: &Path, json: bool, public_key: Option<&str>) -> anyhow::Result<bool> {
    if !dir.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    let key = match public_key {
        Some(k) => Some(parse_key(k)?),
        None => None,
    };
    let report: VerifyJson =
        verify(dir, key).with_context(|| format!("cannot read the store at {}", dir.display()))?.into();
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{}: {} segments, {} frames, {:.1} MB",
            if report.ok { "OK" } else { "NOT OK" },
            report.segments,
            report.frames,
            report.bytes as f64 / 1e6
        );
        for (id, c) in &report.cameras {
            println!(
                "  {id}: {} frames, {} … {}, {} gaps",
                c.frames,
                c.first.as_deref().unwrap_or("-"),
                c.last.as_deref().unwrap_or("-"),
                c.gaps.len()
            );
        }
        if report.dropped_tail_bytes > 0 {
            println!("  torn tail: {} bytes (cut at the next start)", report.dropped_tail_bytes);
        }
        for w in &report.warnings {
            println!("  warning: {w}");
        }
        for e in &report.errors {
            println!("  error: {e}");
        }
    }
    Ok(report.ok)
}

fn parse_key(k: &str) -> anyhow::Result<[u8; 32]> {
    let text = if Path::new(k).is_file() { std::fs::read_to_string(k)? } else { k.to_owned() };
    let text = text.trim();
    if text.len() != 64 {
        bail!("--public-key takes 64 hex digits or a file holding them (such as keys/signing.pub)");
    }
    let mut key = [0u8; 32];
    for (i, b) in key.iter_mut().enumerate() {
        *b = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).context("--public-key is not hex")?;
    }
    Ok(key)
}

fn load_key(key_file: Option<&Path>) -> anyhow::Result<Option<media_store::MediaKey>> {
    key_file.map(|p| media_store::MediaKey::from_file(p).context("cannot load the encryption key")).transpose()
}

/// `edge store reindex`.
pub fn cmd_reindex(dir: &Path, key_file: Option<&Path>) -> anyhow::Result<()> {
    if !dir.join("logs").is_dir() {
        bail!("{} is not a Convoy store (no logs/ directory)", dir.display());
    }
    let r = Store::reindex(dir, load_key(key_file)?).with_context(|| format!("cannot reindex {}", dir.display()))?;
    println!(
        "reindexed {}: {} cameras, {} sealed segments indexed, {} tail records, {} torn bytes cut",
        dir.display(),
        r.logs,
        r.indexed_segments,
        r.tail_records,
        r.dropped_tail_bytes
    );
    Ok(())
}

/// `edge store export`: writes `camera`'s frames between `start` and `end` as an MP4.
pub fn cmd_export(
    dir: &Path,
    camera: &str,
    start: &str,
    end: &str,
    out: &Path,
    key_file: Option<&Path>,
) -> anyhow::Result<()> {
    let (start_us, end_us) = (parse_rfc3339(start)?, parse_rfc3339(end)?);
    if end_us <= start_us {
        bail!("--end must be after --start");
    }
    let (frames, summary) = export_mp4(dir, camera, start_us, end_us, load_key(key_file)?, out)?;
    println!("exported {frames} frames ({:?}) of {camera} to {}", summary, out.display());
    Ok(())
}

/// Writes `camera`'s frames between `start_us` and `end_us` (µs) from the store at `dir` as an
/// MP4 file at `out` (written as `out.mp4.part`, then renamed); returns the number of frames
/// and the writer's summary. Works on a store in use (the unit's page exports with it).
pub fn export_mp4(
    dir: &Path,
    camera: &str,
    start_us: i64,
    end_us: i64,
    key: Option<media_store::MediaKey>,
    out: &Path,
) -> anyhow::Result<(u64, mp4_export::ExportSummary)> {
    let reader = media_store::read::read_range_with_audio(dir, camera, start_us, end_us, key)?;
    let tmp = out.with_extension("mp4.part");
    let file = std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let mut writer: Option<mp4_export::Mp4Writer<BufWriter<std::fs::File>>> = None;
    let mut file = Some(file);
    // New parameters (a camera that changed resolution) apply from the next frame: a new
    // sample entry in the same file.
    let mut pending: Option<mp4_export::VideoTrack> = None;
    let mut timeline = Timeline::default();
    let mut audio = ExportAudio::default();
    let mut frames = 0u64;
    for record in reader {
        match record? {
            Record::AudioParameters(p) => audio.parameters(camera, p),
            Record::Frame(f) if f.kind == media_store::MediaKind::Audio => {
                if let Some(w) = writer.as_mut().filter(|_| frames > 0) {
                    audio.frame(camera, w, &f);
                }
            }
            Record::Parameters(p) => {
                if !p.rfc6381_codec.starts_with("avc1") {
                    bail!(
                        "camera {camera:?} records {} (not H.264): MP4 export handles H.264 only so far",
                        p.rfc6381_codec
                    );
                }
                let track =
                    mp4_export::VideoTrack { width: p.width, height: p.height, avcc: p.extra_data, timescale: 90_000 };
                match &writer {
                    None => {
                        let out = BufWriter::new(file.take().expect("file used once"));
                        writer = Some(mp4_export::Mp4Writer::new(out, track)?);
                    }
                    Some(w) if w.check_parameters(&track).is_ok() => pending = None,
                    Some(_) => pending = Some(track),
                }
            }
            Record::Frame(f) => {
                let Some(w) = writer.as_mut() else { continue };
                if let Some(track) = pending.take() {
                    let (width, height) = (track.width, track.height);
                    w.change_parameters(track)
                        .with_context(|| format!("the camera's parameters changed to {width}x{height}"))?;
                }
                let pts = timeline.map(f.pts, f.clock_rate, f.wall_clock_us);
                w.push(mp4_export::Sample { pts, keyframe: f.keyframe, data: &f.data })?;
                if frames == 0 {
                    audio.video_started(f.wall_clock_us);
                }
                frames += 1;
            }
            _ => {}
        }
    }
    let Some(writer) = writer.filter(|_| frames > 0) else {
        let _ = std::fs::remove_file(&tmp);
        bail!("camera {camera:?} has no recording between {} and {}", rfc3339(start_us), rfc3339(end_us));
    };
    let summary = writer.finish()?;
    std::fs::rename(&tmp, out).with_context(|| format!("cannot write {}", out.display()))?;
    Ok((frames, summary))
}

/// The audio of an export: AAC (`mp4a`) or G.711 (`ulaw`, `alaw`) goes into the file's audio
/// track, on the video's timeline by the frames' wall clocks. Audio that cannot be written is
/// left out with a log line (`export without audio: …`), never failing the export.
#[derive(Default)]
struct ExportAudio {
    /// The AAC track to add at the first audio frame.
    track: Option<mp4_export::AudioTrack>,
    /// Wall clock of the file's first video sample (its time 0).
    video_start_us: Option<i64>,
    /// (source pts, export pts, wall µs) of the last audio sample written.
    last: Option<(i64, i64, i64)>,
    /// Logged once: why audio is left out.
    left_out: bool,
}

impl ExportAudio {
    fn parameters(&mut self, camera: &str, p: media_store::StoredAudioParameters) {
        let codec = match p.codec.as_str() {
            c if c.starts_with("mp4a.40") => mp4_export::AudioCodec::Aac,
            "ulaw" => mp4_export::AudioCodec::Ulaw,
            "alaw" => mp4_export::AudioCodec::Alaw,
            other => {
                self.track = None;
                let why = format!("{other} audio stays in the store: MP4 export writes AAC and G.711 audio only");
                return self.leave_out(camera, &why);
            }
        };
        self.track = Some(mp4_export::AudioTrack {
            codec,
            sample_rate: p.sample_rate,
            channels: p.channels,
            audio_specific_config: p.extra_data,
        });
    }

    fn video_started(&mut self, wall_us: i64) {
        self.video_start_us = Some(wall_us);
    }

    fn leave_out(&mut self, camera: &str, why: &str) {
        if !self.left_out {
            tracing::info!(camera, "export without audio: {why}");
            self.left_out = true;
        }
    }

    /// Writes an audio frame at its place on the video's timeline (in samples).
    fn frame<W: std::io::Write + std::io::Seek>(
        &mut self,
        camera: &str,
        w: &mut mp4_export::Mp4Writer<W>,
        f: &media_store::StoredFrame,
    ) {
        let (Some(track), Some(start_us)) = (&self.track, self.video_start_us) else { return };
        let rate = i64::from(track.sample_rate);
        if w.audio_track().is_none() {
            if let Err(e) = w.add_audio(track.clone()) {
                self.track = None;
                return self.leave_out(camera, &e.to_string());
            }
        } else if w.audio_track() != Some(track) {
            // New audio parameters mid-file: one sample entry only, so the rest is left out.
            return self.leave_out(camera, "the camera's audio parameters changed");
        }
        let by_wall = |from_us: i64| (f.wall_clock_us - from_us) * rate / 1_000_000;
        let pts = match self.last {
            None => by_wall(start_us),
            Some((src, out, wall)) => {
                let by_pts = f.pts - src;
                let by_wall = by_wall(wall);
                if f.clock_rate == track.sample_rate && by_pts > 0 && (by_pts - by_wall).abs() < rate {
                    out + by_pts
                } else {
                    out + by_wall.max(1)
                }
            }
        };
        if pts < 0 {
            return;
        }
        match w.push_audio(mp4_export::AudioSample { pts, data: &f.data }) {
            Ok(()) => self.last = Some((f.pts, pts, f.wall_clock_us)),
            Err(e) => tracing::debug!(camera, "export skips an audio frame: {e}"),
        }
    }
}

/// Maps recorded timestamps onto one 90 kHz export timeline. Within an RTSP session the
/// camera's own timestamps are used; where they restart or jump (a reconnect, a gap), the
/// receive clock bridges the difference.
#[derive(Default)]
struct Timeline {
    last: Option<(i64, i64, i64)>, // (source pts in 90 kHz, export pts, wall µs)
}

impl Timeline {
    fn map(&mut self, pts: i64, clock_rate: u32, wall_us: i64) -> i64 {
        let src = if clock_rate == 90_000 { pts } else { pts * 90_000 / i64::from(clock_rate.max(1)) };
        let out = match self.last {
            None => 0,
            Some((last_src, last_out, last_wall)) => {
                let by_pts = src - last_src;
                let by_wall = (wall_us - last_wall) * 9 / 100;
                if by_pts > 0 && (by_pts - by_wall).abs() < 90_000 {
                    last_out + by_pts
                } else {
                    last_out + by_wall.max(1)
                }
            }
        };
        self.last = Some((src, out, wall_us));
        out
    }
}
