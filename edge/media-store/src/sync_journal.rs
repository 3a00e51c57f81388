//! A test aid for power-cut emulation: when `CONVOY_SYNC_JOURNAL` names a file, every
//! completed `fdatasync` of a segment appends `<path> <durable length>` to it (itself synced).
//! A crash harness can then SIGKILL the writer and throw away everything after each segment's
//! durable length, as a power cut would drop the page cache, and check what the store
//! promised. Off (one branch per sync) unless the variable is set.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

static JOURNAL: OnceLock<Option<Mutex<File>>> = OnceLock::new();

/// Records that `path` is durable up to `len` bytes.
pub(crate) fn record(path: &Path, len: u64) {
    let journal = JOURNAL.get_or_init(|| {
        let path = std::env::var_os("CONVOY_SYNC_JOURNAL")?;
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path).ok()?;
        Some(Mutex::new(file))
    });
    if let Some(j) = journal {
        let mut f = j.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(f, "{} {len}", path.display());
        let _ = f.sync_data();
    }
}
