//! Starting and waiting for writeback of several logs at once, before their `fdatasync`s.
//!
//! On a journaling file system each `fdatasync` that turns pre-allocated (unwritten) extents
//! into written ones commits the journal. Done one log after the other, a group commit of N
//! cameras commits the journal N times. Writing every log's dirty pages back first
//! (`sync_file_range`), and waiting for all of it, lets the extent changes of all logs land in
//! one journal transaction, which the first `fdatasync` commits; the others then find their
//! changes committed and only wait for their data. The `fdatasync`s still give the
//! durability guarantee; this only changes how many journal commits it costs (measured: write
//! amplification 1.033 → 1.013 for 8 cameras on ext4 with a journal, see BENCHMARKS.md).

use std::fs::File;
use std::os::fd::AsRawFd;

/// Starts writeback of every dirty page of `file`, without waiting.
pub(crate) fn start(file: &File) -> std::io::Result<()> {
    sync_file_range(file, libc::SYNC_FILE_RANGE_WRITE)
}

/// Waits until every dirty page of `file` is written back (starting what is not yet).
pub(crate) fn wait(file: &File) -> std::io::Result<()> {
    sync_file_range(
        file,
        libc::SYNC_FILE_RANGE_WAIT_BEFORE | libc::SYNC_FILE_RANGE_WRITE | libc::SYNC_FILE_RANGE_WAIT_AFTER,
    )
}

fn sync_file_range(file: &File, flags: libc::c_uint) -> std::io::Result<()> {
    // SAFETY: `file` owns an open descriptor for the duration of the call; offset 0 and
    // length 0 mean the whole file; the call reads no memory of ours.
    let rc = unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, flags) };
    if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}
