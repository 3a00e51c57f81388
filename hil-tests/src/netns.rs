//! Network namespaces and an emulated link between two of them, for tests that put an edge unit
//! and central on either side of a bad network (delay, jitter, loss, rate limit, outage).
//!
//! ```no_run
//! use hil_tests::netns::{EmulatedLink, LinkParams, Netns};
//! let unit = Netns::create("unit").unwrap();
//! let central = Netns::create("central").unwrap();
//! let link = EmulatedLink::start(&unit, &central, &LinkParams { delay_ms: 50.0, ..Default::default() }).unwrap();
//! let out = unit.command("ping").args(["-c", "1", &link.central_addr().to_string()]).output().unwrap();
//! link.down().unwrap(); // nothing passes until link.up()
//! ```
//!
//! Needs root, `/dev/net/tun` and iproute2 (see [`unsupported_reason`]), and the `link-emu`
//! binary built (`cargo build --workspace --bins`).

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::process::{Proc, bin_path};

/// Every namespace this module makes is named `cvy-LABEL-PID-N`.
const PREFIX: &str = "cvy-";

/// How long `link-emu` may take to print its readiness line.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// Failures of namespaces and the emulated link.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// A program could not be started.
    #[error("cannot run {cmd}: {source}")]
    Spawn {
        /// The command.
        cmd: String,
        /// Why.
        source: io::Error,
    },
    /// A command exited with a failure.
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Failed {
        /// The command.
        cmd: String,
        /// How it ended.
        status: ExitStatus,
        /// What it printed on stderr.
        stderr: String,
    },
    /// Entering a namespace from a thread failed.
    #[error("entering network namespace {name}: {source}")]
    Enter {
        /// The namespace.
        name: String,
        /// Why.
        source: io::Error,
    },
    /// `link-emu` could not be started or stopped answering.
    #[error("link-emu: {0}")]
    LinkEmu(String),
    /// Talking on `link-emu`'s control socket failed.
    #[error("link-emu control socket: {0}")]
    Control(#[from] io::Error),
    /// `link-emu` refused a command.
    #[error("link-emu refused {command:?}: {answer}")]
    Refused {
        /// The command sent.
        command: String,
        /// Its answer.
        answer: String,
    },
}

/// Why namespace tests cannot run here (not root, no `/dev/net/tun`, no `ip`), or `None` when
/// they can. Tests print the reason and skip.
pub fn unsupported_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("network namespaces and TUN devices need root".into());
    }
    if !Path::new("/dev/net/tun").exists() {
        return Some("/dev/net/tun is missing (no TUN support)".into());
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return Some("`ip` is missing (Debian package iproute2)".into());
    }
    None
}

fn run(cmd: &mut Command) -> Result<String, NetnsError> {
    let shown = format!("{cmd:?}");
    let out = cmd.stdin(Stdio::null()).output().map_err(|source| NetnsError::Spawn { cmd: shown.clone(), source })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        return Err(NetnsError::Failed { cmd: shown, status: out.status, stderr });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A network namespace (`ip netns add`) with its loopback up, deleted when dropped (also when
/// a test panics; namespaces left by a test process that was killed are deleted by the next
/// [`Netns::create`]).
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates a namespace with a unique name made from `label` (short, e.g. `unit`).
    pub fn create(label: &str) -> Result<Netns, NetnsError> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        remove_stale();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("{PREFIX}{label}-{}-{n}", std::process::id());
        run(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = Netns { name };
        run(Command::new("ip").args(["-n", &ns.name, "link", "set", "lo", "up"]))?;
        Ok(ns)
    }

    /// Its name, for `ip netns exec` and `ip -n`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A command that runs `program` inside the namespace (`ip netns exec NAME program`); add
    /// arguments and run it as any `Command`.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// Runs `program args…` inside the namespace and returns its stdout, or fails with its
    /// stderr if it fails.
    pub fn run(&self, program: &str, args: &[&str]) -> Result<String, NetnsError> {
        run(self.command(program).args(args))
    }

    /// Runs `f` on a thread inside the namespace and returns its result (a panic in `f` goes
    /// on in the caller).
    pub fn call<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, NetnsError> {
        Ok(self.spawn(f)?.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
    }

    /// Runs `f` on a new thread inside the namespace (its sockets live there), once the thread
    /// has entered it.
    pub fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<JoinHandle<T>, NetnsError> {
        let enter_err = |source| NetnsError::Enter { name: self.name.clone(), source };
        let ns = File::open(format!("/run/netns/{}", self.name)).map_err(enter_err)?;
        let (tx, rx) = std::sync::mpsc::channel();
        let handle = std::thread::spawn(move || {
            // SAFETY: plain system call on a valid descriptor; it changes only this thread.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                let _ = tx.send(Err(io::Error::last_os_error()));
                // The caller has its error and never sees this thread.
                panic!("could not enter the network namespace");
            }
            drop(ns);
            let _ = tx.send(Ok(()));
            f()
        });
        rx.recv().unwrap_or_else(|_| Err(io::Error::other("thread died"))).map_err(enter_err)?;
        Ok(handle)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = run(Command::new("ip").args(["netns", "del", &self.name])) {
            eprintln!("warning: could not delete network namespace {}: {e}", self.name);
        }
    }
}

/// Deletes namespaces of ours whose test process is gone.
fn remove_stale() {
    let Ok(entries) = std::fs::read_dir("/run/netns") else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(PREFIX) else { continue };
        let mut parts = rest.rsplit('-');
        let (_n, pid) = (parts.next(), parts.next().and_then(|p| p.parse::<u32>().ok()));
        if let Some(pid) = pid
            && pid != std::process::id()
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = run(Command::new("ip").args(["netns", "del", &name]));
        }
    }
}

/// One direction's parameters of the emulated link. `Default` is a perfect link.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LinkParams {
    /// One-way delay in milliseconds.
    pub delay_ms: f64,
    /// Each packet's delay varies uniformly within ± this many milliseconds.
    pub jitter_ms: f64,
    /// Random loss in percent.
    pub loss_pct: f64,
    /// Bottleneck rate in kbit/s (1000 bit/s); 0 for none.
    pub rate_kbit: u64,
    /// Drop-tail queue limit in bytes; 0 for one bandwidth-delay product (RTT = 2 × delay),
    /// at least 32 KiB.
    pub queue_bytes: u64,
    /// Let jitter reorder packets (off: a packet never overtakes the one ahead).
    pub reorder: bool,
}

impl LinkParams {
    /// The `key=value` words of the control protocol, each key prefixed with `prefix`
    /// (`""`, `"u2c."` or `"c2u."`).
    pub fn words(&self, prefix: &str) -> String {
        format!(
            "{prefix}delay_ms={} {prefix}jitter_ms={} {prefix}loss={} {prefix}rate_kbit={} {prefix}queue_bytes={} \
             {prefix}reorder={}",
            self.delay_ms,
            self.jitter_ms,
            self.loss_pct,
            self.rate_kbit,
            self.queue_bytes,
            u8::from(self.reorder)
        )
    }
}

/// A direction of the link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkDir {
    /// From the unit's namespace to central's (`u2c`).
    UnitToCentral,
    /// From central's namespace to the unit's (`c2u`).
    CentralToUnit,
}

impl LinkDir {
    fn prefix(self) -> &'static str {
        match self {
            LinkDir::UnitToCentral => "u2c.",
            LinkDir::CentralToUnit => "c2u.",
        }
    }
}

/// One direction's counters, as `link-emu` reports them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DirCounters {
    /// Packets that entered the link.
    pub received: u64,
    /// Packets delivered.
    pub packets: u64,
    /// Bytes delivered (whole IP packets).
    pub bytes: u64,
    /// Packets dropped by random loss.
    pub drop_loss: u64,
    /// Packets dropped because the queue was full.
    pub drop_queue: u64,
    /// Packets dropped because the link was down.
    pub drop_outage: u64,
    /// Packets the receiving device refused.
    pub write_errors: u64,
    /// Packets in the link now (queued or in flight).
    pub queued: u64,
}

/// Both directions' counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkCounters {
    /// Milliseconds since `link-emu` started.
    pub uptime_ms: u64,
    /// Unit to central.
    pub u2c: DirCounters,
    /// Central to unit.
    pub c2u: DirCounters,
}

impl LinkCounters {
    /// Parses a `counters k=v …` line; unknown keys are ignored.
    pub fn parse(line: &str) -> Option<LinkCounters> {
        let mut c = LinkCounters::default();
        for word in line.strip_prefix("counters ")?.split_whitespace() {
            let (key, value) = word.split_once('=')?;
            let value: u64 = value.parse().ok()?;
            if key == "uptime_ms" {
                c.uptime_ms = value;
                continue;
            }
            let Some((dir, key)) = key.split_once('.') else { continue };
            let d = match dir {
                "u2c" => &mut c.u2c,
                "c2u" => &mut c.c2u,
                _ => continue,
            };
            let field = match key {
                "received" => &mut d.received,
                "packets" => &mut d.packets,
                "bytes" => &mut d.bytes,
                "drop_loss" => &mut d.drop_loss,
                "drop_queue" => &mut d.drop_queue,
                "drop_outage" => &mut d.drop_outage,
                "write_errors" => &mut d.write_errors,
                "queued" => &mut d.queued,
                _ => continue,
            };
            *field = value;
        }
        Some(c)
    }
}

/// A running `link-emu` joining two namespaces: the unit side has [`EmulatedLink::unit_addr`]
/// (10.77.0.1/24), central's side [`EmulatedLink::central_addr`] (10.77.0.2/24), on a device
/// named `emu0` in each. Killed when dropped (its devices vanish with it).
pub struct EmulatedLink {
    proc: Proc,
    control: Mutex<(BufReader<UnixStream>, UnixStream)>,
    unit_addr: Ipv4Addr,
    central_addr: Ipv4Addr,
    // Dropped after `proc`: holds the log and the control socket.
    _dir: tempfile::TempDir,
}

impl EmulatedLink {
    /// Starts `link-emu` between `unit` and `central` with `params` in both directions and a fixed
    /// random seed, and waits until packets can flow.
    pub fn start(unit: &Netns, central: &Netns, params: &LinkParams) -> Result<EmulatedLink, NetnsError> {
        EmulatedLink::start_seeded(unit, central, params, 1)
    }

    /// [`EmulatedLink::start`] with another seed for loss and jitter.
    pub fn start_seeded(
        unit: &Netns,
        central: &Netns,
        params: &LinkParams,
        seed: u64,
    ) -> Result<EmulatedLink, NetnsError> {
        EmulatedLink::spawn(unit, central, params, seed, &[])
    }

    /// Starts `link-emu` with `extra` arguments (addresses, device); the addresses come from
    /// its `ready` line.
    fn spawn(
        unit: &Netns,
        central: &Netns,
        params: &LinkParams,
        seed: u64,
        extra: &[String],
    ) -> Result<EmulatedLink, NetnsError> {
        let emu_err = |e: anyhow::Error| NetnsError::LinkEmu(format!("{e:#}"));
        let dir = tempfile::Builder::new().prefix("link-emu-").tempdir()?;
        let socket = dir.path().join("control.sock");
        let mut cmd = Command::new(bin_path("link-emu").map_err(emu_err)?);
        cmd.args(["--unit-ns", unit.name(), "--central-ns", central.name(), "--seed", &seed.to_string()])
            .args(extra)
            .arg("--control")
            .arg(&socket)
            .args(["--set", &params.words("")]);
        let mut proc = Proc::spawn("link-emu", cmd, &dir.path().join("link-emu.log")).map_err(emu_err)?;
        let ready = proc.wait_line("ready ", START_TIMEOUT).map_err(emu_err)?;
        let addr = |key: &str| -> Result<Ipv4Addr, NetnsError> {
            ready
                .split_whitespace()
                .find_map(|w| w.strip_prefix(key))
                .and_then(|a| a.parse().ok())
                .ok_or_else(|| NetnsError::LinkEmu(format!("no {key} in {ready:?}")))
        };
        let (unit_addr, central_addr) = (addr("unit=")?, addr("central=")?);
        let stream = UnixStream::connect(&socket)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let control = Mutex::new((BufReader::new(stream.try_clone()?), stream));
        Ok(EmulatedLink { proc, control, unit_addr, central_addr, _dir: dir })
    }

    /// The unit side's address.
    pub fn unit_addr(&self) -> Ipv4Addr {
        self.unit_addr
    }

    /// Central's side's address.
    pub fn central_addr(&self) -> Ipv4Addr {
        self.central_addr
    }

    /// Sends one control command (e.g. `set u2c.loss=5`) and returns its answer line; an
    /// `error: …` answer is an `Err`.
    pub fn command(&self, line: &str) -> Result<String, NetnsError> {
        let mut guard = self.control.lock().unwrap_or_else(|e| e.into_inner());
        let (reader, writer) = &mut *guard;
        writeln!(writer, "{line}")?;
        let mut answer = String::new();
        if reader.read_line(&mut answer)? == 0 {
            return Err(NetnsError::LinkEmu(format!("control socket closed\n{}", self.proc.log_tail())));
        }
        let answer = answer.trim_end().to_owned();
        if answer.starts_with("error") {
            return Err(NetnsError::Refused { command: line.to_owned(), answer });
        }
        Ok(answer)
    }

    /// Sets both directions' parameters (the outage state is kept).
    pub fn set(&self, params: &LinkParams) -> Result<(), NetnsError> {
        self.command(&format!("set {}", params.words(""))).map(drop)
    }

    /// Sets one direction's parameters.
    pub fn set_dir(&self, dir: LinkDir, params: &LinkParams) -> Result<(), NetnsError> {
        self.command(&format!("set {}", params.words(dir.prefix()))).map(drop)
    }

    /// Outage: from now on nothing passes either way; what was in flight is lost.
    pub fn down(&self) -> Result<(), NetnsError> {
        self.command("down").map(drop)
    }

    /// Ends an outage.
    pub fn up(&self) -> Result<(), NetnsError> {
        self.command("up").map(drop)
    }

    /// The counters of both directions.
    pub fn counters(&self) -> Result<LinkCounters, NetnsError> {
        let line = self.command("counters")?;
        LinkCounters::parse(&line).ok_or_else(|| NetnsError::LinkEmu(format!("bad counters line {line:?}")))
    }

    /// Sets the counters back to zero.
    pub fn reset_counters(&self) -> Result<(), NetnsError> {
        self.command("reset").map(drop)
    }

    /// The last lines of `link-emu`'s log, for failure messages.
    pub fn log_tail(&self) -> String {
        self.proc.log_tail()
    }
}

impl EmulatedLink {
    /// [`EmulatedLink::start_seeded`] for the `index`-th of several links into the same
    /// central namespace: its own subnet (`10.77.{index}.0/24`, unit `.1`, central `.2`) and
    /// device (`emu{index}`) in both namespaces, so one central serves many units. `index`
    /// 0..=254.
    pub fn start_numbered(
        unit: &Netns,
        central: &Netns,
        params: &LinkParams,
        seed: u64,
        index: u8,
    ) -> Result<EmulatedLink, NetnsError> {
        let extra = [
            "--unit-addr".to_owned(),
            format!("10.77.{index}.1/24"),
            "--central-addr".to_owned(),
            format!("10.77.{index}.2/24"),
            "--dev".to_owned(),
            format!("emu{index}"),
        ];
        EmulatedLink::spawn(unit, central, params, seed, &extra)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_line_parses() {
        let c = LinkCounters::parse(
            "counters uptime_ms=7 u2c.received=3 u2c.packets=2 u2c.bytes=168 u2c.drop_loss=1 c2u.drop_outage=4 \
             c2u.queued=1 c2u.future=9",
        )
        .unwrap();
        assert_eq!(c.uptime_ms, 7);
        assert_eq!((c.u2c.received, c.u2c.packets, c.u2c.bytes, c.u2c.drop_loss), (3, 2, 168, 1));
        assert_eq!((c.c2u.drop_outage, c.c2u.queued), (4, 1));
        assert_eq!(LinkCounters::parse("ok"), None);
    }

    #[test]
    fn params_become_words() {
        let p = LinkParams { delay_ms: 50.0, loss_pct: 1.5, rate_kbit: 10_000, ..Default::default() };
        assert_eq!(
            p.words("u2c."),
            "u2c.delay_ms=50 u2c.jitter_ms=0 u2c.loss=1.5 u2c.rate_kbit=10000 u2c.queue_bytes=0 u2c.reorder=0"
        );
    }
}
