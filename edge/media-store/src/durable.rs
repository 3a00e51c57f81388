//! Replacing a small file so that a power cut leaves either the old or the new one whole.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::StoreError;

/// Writes `bytes` to `path` with permissions `mode`: a temporary beside it, `fsync`, rename
/// over `path`, `fsync` of the directory.
pub(crate) fn write_durably(path: &Path, bytes: &[u8], mode: u32) -> Result<(), StoreError> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(StoreError::io("create", &tmp))?;
    f.write_all(bytes).map_err(StoreError::io("write", &tmp))?;
    f.sync_all().map_err(StoreError::io("sync", &tmp))?;
    std::fs::rename(&tmp, path).map_err(StoreError::io("rename", &tmp))?;
    match path.parent() {
        Some(dir) => crate::log::sync_dir(dir),
        None => Ok(()),
    }
}
