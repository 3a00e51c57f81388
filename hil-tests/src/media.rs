//! Reading frames out of a store directory for comparisons: what a unit recorded against what
//! central retrieved.

use std::collections::BTreeMap;
use std::path::Path;

use media_store::Record;
use media_store::read::read_range;

/// Frames of `log` between two times as wall clock → (key frame, SHA-256 of the data), and how
/// many frames shared a wall clock with another (duplicates).
pub fn frame_hashes(store: &Path, log: &str, start_us: i64, end_us: i64) -> (BTreeMap<i64, (bool, [u8; 32])>, usize) {
    use sha2::Digest;
    let mut out = BTreeMap::new();
    let mut duplicates = 0;
    let Ok(reader) = read_range(store, log, start_us, end_us, None) else {
        return (out, 0);
    };
    for record in reader.flatten() {
        if let Record::Frame(f) = record
            && f.wall_clock_us >= start_us
            && out.insert(f.wall_clock_us, (f.keyframe, sha2::Sha256::digest(&f.data).into())).is_some()
        {
            duplicates += 1;
        }
    }
    (out, duplicates)
}
