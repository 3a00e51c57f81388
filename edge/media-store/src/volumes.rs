//! The store's two volumes: the primary (where everything is recorded) and an optional
//! archive on a second volume, where sealed segments move when they are old enough. The
//! primary records the archive's location in `archive.path` so that offline tools find it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::StoreError;
use crate::log::{dir_name, log_name};
use crate::segment;

const POINTER: &str = "archive.path";

/// The archive directory of the store at `store`, if it has one.
pub fn archive_dir(store: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(store.join(POINTER)).ok()?;
    let path = PathBuf::from(text.trim_end_matches('\n'));
    (!path.as_os_str().is_empty()).then_some(path)
}

/// Records (or, with `None`, forgets) where the archive is, durably.
pub(crate) fn set_archive_dir(store: &Path, archive: Option<&Path>) -> Result<(), StoreError> {
    let pointer = store.join(POINTER);
    match archive {
        None => match std::fs::remove_file(&pointer) {
            Ok(()) => crate::log::sync_dir(store),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io("remove", &pointer)(e)),
        },
        Some(path) if archive_dir(store).as_deref() == Some(path) => Ok(()),
        Some(path) => crate::durable::write_durably(&pointer, format!("{}\n", path.display()).as_bytes(), 0o644),
    }
}

/// A log's directory in a volume.
pub fn volume_log_dir(volume: &Path, log: &str) -> PathBuf {
    volume.join("logs").join(dir_name(log))
}

/// The logs in both volumes, by name.
pub fn list_logs(store: &Path) -> Result<Vec<String>, StoreError> {
    let mut out = std::collections::BTreeSet::new();
    for volume in std::iter::once(store.to_path_buf()).chain(archive_dir(store)) {
        let dir = volume.join("logs");
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(StoreError::io("list", &dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(StoreError::io("list", &dir))?;
            if let Some(name) = entry.file_name().to_str().and_then(log_name)
                && !name.is_empty()
                && entry.path().is_dir()
            {
                out.insert(name);
            }
        }
    }
    Ok(out.into_iter().collect())
}

/// Every segment of `log` in both volumes as `(first_seq, path)`, in sequence order. A
/// segment found in both (a move to the archive cut short) is listed once, as the archive
/// copy, which was complete before the primary copy could be removed.
pub fn log_segments(store: &Path, log: &str) -> Result<Vec<(u64, PathBuf)>, StoreError> {
    let mut out = BTreeMap::new();
    let primary = volume_log_dir(store, log);
    if primary.is_dir() {
        out.extend(segment::list_segments(&primary)?);
    }
    if let Some(archive) = archive_dir(store) {
        let dir = volume_log_dir(&archive, log);
        if dir.is_dir() {
            out.extend(segment::list_segments(&dir)?);
        }
    }
    Ok(out.into_iter().collect())
}

/// Where segment `first_seq` of `log` is: the archive copy if there is one, else the primary.
pub fn segment_path(store: &Path, log: &str, first_seq: u64) -> PathBuf {
    segment_path_in(store, archive_dir(store).as_deref(), log, first_seq)
}

/// [`segment_path`] with the archive directory already looked up (for many segments).
pub fn segment_path_in(store: &Path, archive: Option<&Path>, log: &str, first_seq: u64) -> PathBuf {
    let name = segment::file_name(first_seq);
    if let Some(archive) = archive {
        let p = volume_log_dir(archive, log).join(&name);
        if p.exists() {
            return p;
        }
    }
    volume_log_dir(store, log).join(name)
}
