//! Child processes that are killed when dropped, with their stdout readable line by line
//! and their stderr kept in a log file that is shown when a test fails.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The path of one of the workspace's binaries, beside the running executable (or one level
/// up, for test executables in `target/<profile>/deps`).
pub fn bin_path(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let mut dir = exe.parent().context("executable has no directory")?.to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    if !path.exists() {
        bail!("{} is not built; run `cargo build --workspace --bins` first (./dev test does)", path.display());
    }
    Ok(path)
}

/// A running child process.
pub struct Proc {
    /// A short name for messages.
    pub name: String,
    child: Child,
    lines: Receiver<String>,
    log: PathBuf,
    stdin: Option<ChildStdin>,
}

impl Proc {
    /// Starts `cmd` with stdout piped and stderr appended to `log`.
    pub fn spawn(name: &str, cmd: Command, log: &Path) -> anyhow::Result<Proc> {
        Self::spawn_inner(name, cmd, log, false)
    }

    /// Like [`Proc::spawn`], with stdin piped for [`Proc::send_line`].
    pub fn spawn_with_stdin(name: &str, cmd: Command, log: &Path) -> anyhow::Result<Proc> {
        Self::spawn_inner(name, cmd, log, true)
    }

    fn spawn_inner(name: &str, mut cmd: Command, log: &Path, stdin: bool) -> anyhow::Result<Proc> {
        let log_file = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
        let mut child = cmd
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("cannot start {name}: {cmd:?}"))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let stdin = child.stdin.take();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Proc { name: name.to_owned(), child, lines, log: log.to_owned(), stdin })
    }

    /// Writes a line to the process's stdin (started with [`Proc::spawn_with_stdin`]).
    pub fn send_line(&mut self, line: &str) -> anyhow::Result<()> {
        let stdin = self.stdin.as_mut().with_context(|| format!("{} was started without stdin", self.name))?;
        writeln!(stdin, "{line}")?;
        stdin.flush()?;
        Ok(())
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for a stdout line containing `needle` and returns it.
    pub fn wait_line(&mut self, needle: &str, timeout: Duration) -> anyhow::Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Ok(line),
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    bail!("{} printed no line with {needle:?} in {timeout:?}\n{}", self.name, self.log_tail())
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait()?;
                    bail!("{} exited ({status}) before printing {needle:?}\n{}", self.name, self.log_tail())
                }
            }
        }
    }

    /// The last lines of the process's stderr log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(40);
        format!("--- last lines of {} ---\n{}", self.log.display(), lines[start..].join("\n"))
    }

    /// Sends a signal.
    pub fn signal(&self, signal: Signal) -> anyhow::Result<()> {
        kill(Pid::from_raw(self.child.id() as i32), signal)?;
        Ok(())
    }

    /// Asks the process to stop (SIGTERM) and waits for it.
    pub fn stop(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        self.signal(Signal::SIGTERM)?;
        self.wait(timeout)
    }

    /// Waits for the process to exit by itself.
    pub fn wait(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                bail!("{} did not exit within {timeout:?}\n{}", self.name, self.log_tail());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the process at once (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `check` every 100 ms until it returns `Some`, or fails after `timeout` naming `what`.
pub fn wait_until<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> anyhow::Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting until {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
