//! Reading frames out of a store directory for comparisons: what a unit recorded against what
//! central retrieved.

use std::collections::BTreeMap;
use std::path::Path;

use media_store::Record;
use media_store::read::read_range;

/// Frames by wall clock → (key frame, SHA-256 of the data).
pub type FrameHashes = BTreeMap<i64, (bool, [u8; 32])>;

/// Frames as [`FrameHashes`], and how many shared a wall clock with another (duplicates).
fn hashes<'a>(frames: impl IntoIterator<Item = (i64, bool, &'a [u8])>) -> (FrameHashes, usize) {
    use sha2::Digest;
    let mut out = BTreeMap::new();
    let mut duplicates = 0;
    for (wall, keyframe, data) in frames {
        if out.insert(wall, (keyframe, sha2::Sha256::digest(data).into())).is_some() {
            duplicates += 1;
        }
    }
    (out, duplicates)
}

/// Frames of a unit's `log` between two times (see [`hashes`]).
pub fn frame_hashes(store: &Path, log: &str, start_us: i64, end_us: i64) -> (FrameHashes, usize) {
    let Ok(reader) = read_range(store, log, start_us, end_us, None) else {
        return (BTreeMap::new(), 0);
    };
    let frames: Vec<_> = reader
        .flatten()
        .filter_map(|r| match r {
            Record::Frame(f) if f.wall_clock_us >= start_us => Some(f),
            _ => None,
        })
        .collect();
    hashes(frames.iter().map(|f| (f.wall_clock_us, f.keyframe, f.data.as_slice())))
}

/// Frames central holds of `unit`'s `camera` between two times, from its data directory.
pub fn central_frame_hashes(
    central: &Path,
    unit: &str,
    camera: &str,
    start_us: i64,
    end_us: i64,
) -> (FrameHashes, usize) {
    let frames =
        central::retrieved::read_frames(central, unit, camera, start_us, end_us).expect("central's store reads");
    hashes(frames.iter().map(|f| (f.wall_clock_us, f.keyframe, f.data.as_slice())))
}

/// Frames of `want` missing from `got`, frames of `got` not in `want`, and frames in both that
/// differ (by wall clock).
pub fn compare(want: &FrameHashes, got: &FrameHashes) -> (Vec<i64>, Vec<i64>, Vec<i64>) {
    let missing = want.keys().filter(|k| !got.contains_key(k)).copied().collect();
    let extra = got.keys().filter(|k| !want.contains_key(k)).copied().collect();
    let differ = want.iter().filter(|(k, v)| got.get(k).is_some_and(|h| h != *v)).map(|(k, _)| *k).collect();
    (missing, extra, differ)
}

/// [`central_frame_hashes`] that returns central's read error instead of panicking (an empty
/// map when central never stored anything of that camera).
pub fn try_central_frame_hashes(
    central: &Path,
    unit: &str,
    camera: &str,
    start_us: i64,
    end_us: i64,
) -> Result<(FrameHashes, usize), String> {
    let frames = central::retrieved::read_frames(central, unit, camera, start_us, end_us).map_err(|e| e.to_string())?;
    Ok(hashes(frames.iter().map(|f| (f.wall_clock_us, f.keyframe, f.data.as_slice()))))
}

/// ffprobe's JSON for a media file: every stream with its frames counted (`-count_frames
/// -show_streams -show_format`). Panics, with ffprobe's words, on a file it refuses.
pub fn ffprobe(path: &Path) -> serde_json::Value {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-show_streams", "-show_format", "-of", "json"])
        .arg(path)
        .output()
        .expect("ffprobe (Debian package ffmpeg, installed by ./dev setup)");
    assert!(out.status.success(), "ffprobe refused {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("ffprobe writes JSON")
}

/// A number in ffprobe's JSON, which writes many as strings (`"duration": "10.0"`); NaN if none.
pub fn ffprobe_number(v: &serde_json::Value) -> f64 {
    v.as_str().and_then(|s| s.parse().ok()).or_else(|| v.as_f64()).unwrap_or(f64::NAN)
}
