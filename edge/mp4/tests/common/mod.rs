//! Test helpers: real H.264 from ffmpeg, Annex-B → access units → AVCC, avcC from SPS/PPS, and
//! ffprobe/ffmpeg checks of the written file.

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

pub const FFPROBE: &str = "/usr/bin/ffprobe";
pub const FFMPEG: &str = "/usr/bin/ffmpeg";

/// True (after saying so) when ffprobe is not installed and the test should be skipped.
pub fn skip_without_ffprobe() -> bool {
    if Path::new(FFPROBE).exists() {
        return false;
    }
    println!("skipping: {FFPROBE} is not installed");
    true
}

/// One access unit: its NAL units (without start codes) and whether it holds an IDR slice.
#[derive(Debug, Clone)]
pub struct AccessUnit {
    pub nals: Vec<Vec<u8>>,
    pub keyframe: bool,
}

impl AccessUnit {
    /// AVCC framing (4-byte lengths), optionally without SPS/PPS (parameters out of band only).
    pub fn to_avcc(&self, keep_parameter_sets: bool) -> Vec<u8> {
        let mut out = Vec::new();
        for nal in &self.nals {
            if !keep_parameter_sets && matches!(nal_type(nal), 7 | 8) {
                continue;
            }
            out.extend_from_slice(&(nal.len() as u32).to_be_bytes());
            out.extend_from_slice(nal);
        }
        out
    }
}

pub fn nal_type(nal: &[u8]) -> u8 {
    nal[0] & 0x1f
}

/// Encodes `seconds` of 320x240 25 fps test pattern with x264 (a key frame every 25 frames, no
/// B-frames) as an Annex-B elementary stream.
pub fn encode_test_stream(dir: &Path, seconds: u32) -> Vec<u8> {
    let path = dir.join("out.h264");
    let output = Command::new(FFMPEG)
        .args(["-hide_banner", "-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=320x240:rate=25")
        .args(["-t", &seconds.to_string()])
        .args(["-c:v", "libx264", "-pix_fmt", "yuv420p"])
        .args(["-x264-params", "keyint=25:bframes=0"])
        .args(["-f", "h264", "-bsf:v", "h264_mp4toannexb"])
        .arg(&path)
        .output()
        .expect("run ffmpeg");
    assert!(output.status.success(), "ffmpeg failed: {}", String::from_utf8_lossy(&output.stderr));
    std::fs::read(&path).expect("read encoded stream")
}

/// Splits an Annex-B stream at its start codes (3 or 4 bytes) into NAL units.
pub fn split_annex_b(stream: &[u8]) -> Vec<Vec<u8>> {
    // Positions just after each `00 00 01`.
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= stream.len() {
        if stream[i] == 0 && stream[i + 1] == 0 && stream[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut nals = Vec::new();
    for (n, &start) in starts.iter().enumerate() {
        let mut end = starts.get(n + 1).map_or(stream.len(), |&next| next - 3);
        // Trailing zeros belong to the next start code (`00 00 00 01`) or are padding.
        while end > start && stream[end - 1] == 0 {
            end -= 1;
        }
        if end > start {
            nals.push(stream[start..end].to_vec());
        }
    }
    nals
}

/// Groups NAL units into access units: a new one starts at an access unit delimiter (9), at
/// SPS (7), PPS (8) or SEI (6) after a slice, or at a slice (1, 5) whose first_mb_in_slice is 0
/// after a slice.
pub fn group_access_units(nals: Vec<Vec<u8>>) -> Vec<AccessUnit> {
    let mut aus: Vec<AccessUnit> = Vec::new();
    let mut current = AccessUnit { nals: Vec::new(), keyframe: false };
    let mut has_slice = false;
    for nal in nals {
        let t = nal_type(&nal);
        let is_slice = matches!(t, 1 | 5);
        // first_mb_in_slice is ue(v): 0 is coded as a single 1 bit.
        let first_slice = is_slice && nal.len() > 1 && nal[1] & 0x80 != 0;
        let starts_new = match t {
            9 => true,
            6..=8 => has_slice,
            1 | 5 => has_slice && first_slice,
            _ => false,
        };
        if starts_new && !current.nals.is_empty() {
            aus.push(std::mem::replace(&mut current, AccessUnit { nals: Vec::new(), keyframe: false }));
            has_slice = false;
        }
        has_slice |= is_slice;
        current.keyframe |= t == 5;
        current.nals.push(nal);
    }
    if !current.nals.is_empty() {
        aus.push(current);
    }
    aus
}

/// An AVCDecoderConfigurationRecord for one SPS and one PPS, 4-byte NAL lengths, with the
/// High-profile extension (4:2:0, 8 bit) when the profile needs one.
pub fn build_avcc(sps: &[u8], pps: &[u8]) -> Vec<u8> {
    let mut r = vec![1, sps[1], sps[2], sps[3], 0xff, 0xe1];
    r.extend_from_slice(&(sps.len() as u16).to_be_bytes());
    r.extend_from_slice(sps);
    r.push(1);
    r.extend_from_slice(&(pps.len() as u16).to_be_bytes());
    r.extend_from_slice(pps);
    if matches!(sps[1], 100 | 110 | 122 | 144) {
        r.extend_from_slice(&[0xfc | 1, 0xf8, 0xf8, 0]);
    }
    r
}

/// The first SPS and PPS of the stream.
pub fn parameter_sets(aus: &[AccessUnit]) -> (Vec<u8>, Vec<u8>) {
    let find =
        |t| aus.iter().flat_map(|au| &au.nals).find(|n| nal_type(n) == t).cloned().expect("parameter set in stream");
    (find(7), find(8))
}

/// Real H.264: `seconds` at 25 fps as access units, and the avcC for them.
pub fn test_stream(dir: &Path, seconds: u32) -> (Vec<AccessUnit>, Vec<u8>) {
    let aus = group_access_units(split_annex_b(&encode_test_stream(dir, seconds)));
    let (sps, pps) = parameter_sets(&aus);
    (aus, build_avcc(&sps, &pps))
}

/// `ffprobe -show_streams -show_format -count_frames` as JSON (`nb_read_frames` counts the
/// frames decoded).
pub fn ffprobe(path: &Path, extra: &[&str]) -> serde_json::Value {
    ffprobe_with(path, extra, &["-count_frames"])
}

/// `ffprobe -show_streams -show_format` as JSON: header information only (`nb_frames`).
pub fn ffprobe_headers(path: &Path) -> serde_json::Value {
    ffprobe_with(path, &[], &[])
}

fn ffprobe_with(path: &Path, extra: &[&str], options: &[&str]) -> serde_json::Value {
    let output = Command::new(FFPROBE)
        .args(["-v", "error"])
        .args(extra)
        .args(["-show_streams", "-show_format"])
        .args(options)
        .args(["-of", "json"])
        .arg(path)
        .output()
        .expect("run ffprobe");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "ffprobe failed: {stderr}");
    assert!(stderr.trim().is_empty(), "ffprobe complained: {stderr}");
    serde_json::from_slice(&output.stdout).expect("ffprobe JSON")
}

/// Decodes the whole file with ffmpeg; it must exit 0 and print nothing at level error.
pub fn decode_cleanly(path: &Path, extra: &[&str]) {
    let output = Command::new(FFMPEG)
        .args(["-v", "error"])
        .args(extra)
        .arg("-i")
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("run ffmpeg");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "ffmpeg decode failed: {stderr}");
    assert!(stderr.is_empty(), "ffmpeg decode printed errors: {stderr}");
}

/// A JSON number that ffprobe may print as a string.
pub fn number(v: &serde_json::Value) -> f64 {
    match v {
        serde_json::Value::String(s) => s.parse().expect("numeric string"),
        other => other.as_f64().expect("number"),
    }
}
