//! What is measured and how: wall time, CPU time of this process (`getrusage`), the bytes
//! this process had written back (`/proc/self/io`), the sectors the block device wrote
//! (`/proc/diskstats`), and a description of the machine.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The block device holding a directory, as `/proc/diskstats` names it.
#[derive(Debug, Clone)]
pub struct Device {
    /// Its kernel name, e.g. `vda`.
    pub name: String,
    major: u32,
    minor: u32,
}

impl Device {
    /// The device of `dir`'s file system (from its `st_dev`), if `/proc/diskstats` lists it
    /// (a tmpfs or overlay has none).
    pub fn of(dir: &Path) -> Result<Option<Device>> {
        let dev = std::fs::metadata(dir)?.dev();
        let (major, minor) = (libc::major(dev), libc::minor(dev));
        let stats = std::fs::read_to_string("/proc/diskstats")?;
        Ok(stats.lines().find_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            (f.len() > 3 && f[0].parse() == Ok(major) && f[1].parse() == Ok(minor)).then(|| Device {
                name: f[2].to_owned(),
                major,
                minor,
            })
        }))
    }

    /// Bytes the device has written since boot (sectors written × 512).
    pub fn written_bytes(&self) -> Result<u64> {
        let stats = std::fs::read_to_string("/proc/diskstats")?;
        for line in stats.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() > 9 && f[0].parse() == Ok(self.major) && f[1].parse() == Ok(self.minor) {
                return Ok(f[9].parse::<u64>()? * 512);
            }
        }
        bail!("{} is no longer in /proc/diskstats", self.name)
    }
}

/// User + system CPU time of this process so far.
pub fn cpu_time() -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// `write_bytes` of `/proc/self/io`: bytes this process caused to be sent to storage.
pub fn process_write_bytes() -> Result<u64> {
    let io = std::fs::read_to_string("/proc/self/io")?;
    let line = io.lines().find_map(|l| l.strip_prefix("write_bytes:")).context("no write_bytes in /proc/self/io")?;
    Ok(line.trim().parse()?)
}

/// `syncfs(2)` on `dir`'s file system: everything buffered is written before this returns.
pub fn syncfs(dir: &Path) -> Result<()> {
    let f = std::fs::File::open(dir)?;
    // SAFETY: a valid file descriptor, kept open for the call.
    if unsafe { libc::syncfs(std::os::fd::AsRawFd::as_raw_fd(&f)) } != 0 {
        return Err(std::io::Error::last_os_error()).context("syncfs");
    }
    Ok(())
}

/// Writes everything back, then drops the page cache (needs root). Returns whether it did.
pub fn drop_caches() -> bool {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok()
}

/// The numbers of one measured run.
#[derive(Debug, Clone)]
pub struct Measured {
    /// From opening the writer to closing it.
    pub wall: Duration,
    /// CPU time (user + system) of this process over `wall`.
    pub cpu: Duration,
    /// Media bytes written.
    pub media: u64,
    /// Bytes the writer's files hold afterwards.
    pub stored: u64,
    /// Growth of `/proc/self/io` `write_bytes`, counted after a `syncfs`.
    pub process_written: u64,
    /// Growth of the device's sectors written × 512, counted after a `syncfs`.
    pub device_written: Option<u64>,
}

impl Measured {
    /// Media MB (10⁶ bytes) per second.
    pub fn mb_per_s(&self) -> f64 {
        self.media as f64 / 1e6 / self.wall.as_secs_f64()
    }

    /// CPU seconds per GB (10⁹ bytes) of media.
    pub fn cpu_s_per_gb(&self) -> f64 {
        self.cpu.as_secs_f64() / (self.media as f64 / 1e9)
    }

    /// `/proc/self/io` write amplification.
    pub fn process_amplification(&self) -> f64 {
        self.process_written as f64 / self.media as f64
    }

    /// Device write amplification.
    pub fn device_amplification(&self) -> Option<f64> {
        self.device_written.map(|d| d as f64 / self.media as f64)
    }

    /// Bytes kept ÷ media bytes (the format's own overhead).
    pub fn stored_ratio(&self) -> f64 {
        self.stored as f64 / self.media as f64
    }
}

/// Runs `work` (which returns the media bytes it wrote and the bytes its files hold) and
/// measures it. Buffered data of the file system is written back before (so that earlier
/// work is not counted) and after (so that all of this work is).
pub fn measure(dir: &Path, device: Option<&Device>, work: impl FnOnce() -> Result<(u64, u64)>) -> Result<Measured> {
    syncfs(dir)?;
    let process0 = process_write_bytes()?;
    let device0 = device.map(Device::written_bytes).transpose()?;
    let cpu0 = cpu_time();
    let start = Instant::now();
    let (media, stored) = work()?;
    let wall = start.elapsed();
    let cpu = cpu_time() - cpu0;
    syncfs(dir)?;
    let process_written = process_write_bytes()? - process0;
    let device_written = match (device, device0) {
        (Some(d), Some(before)) => Some(d.written_bytes()? - before),
        _ => None,
    };
    Ok(Measured { wall, cpu, media, stored, process_written, device_written })
}

/// Device writes per second while this process does nothing for `idle`: the background that
/// the device counters include.
pub fn background_rate(dir: &Path, device: &Device, idle: Duration) -> Result<f64> {
    syncfs(dir)?;
    let before = device.written_bytes()?;
    std::thread::sleep(idle);
    Ok((device.written_bytes()? - before) as f64 / idle.as_secs_f64())
}

/// The machine, as the outputs of the commands that describe it (each shown with its output).
pub fn describe_machine(dir: &Path) -> String {
    let dir = dir.display().to_string();
    let journal = format!(
        "findmnt -n -o SOURCE,FSTYPE,OPTIONS -T {dir}; uname -r; \
         echo \"ext4 journal thread: $(cat /sys/fs/ext4/$(basename $(findmnt -n -o SOURCE -T {dir}))/journal_task \
         2>/dev/null || echo n/a)\""
    );
    let commands: [&[&str]; 6] = [
        &["nproc"],
        &["sh", "-c", "grep -m1 'model name' /proc/cpuinfo"],
        &["free", "-h"],
        &["df", "-h", &dir],
        &["stat", "-f", "-c", "type %T, block size %S", &dir],
        &["sh", "-c", &journal],
    ];
    let mut out = String::new();
    for argv in commands {
        let quote = |a: &&str| if a.contains(' ') { format!("'{a}'") } else { (*a).to_owned() };
        let shown =
            if argv[0] == "sh" { argv[2].to_owned() } else { argv.iter().map(quote).collect::<Vec<_>>().join(" ") };
        let output = Command::new(argv[0]).args(&argv[1..]).output();
        let text = match output {
            Ok(o) => String::from_utf8_lossy(&o.stdout).trim_end().to_owned(),
            Err(e) => format!("({e})"),
        };
        out.push_str(&format!("$ {shown}\n{text}\n"));
    }
    out
}
