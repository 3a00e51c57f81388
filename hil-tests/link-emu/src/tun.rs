//! TUN devices created inside a named network namespace (`ip netns add NAME`) and configured
//! with `ip`.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::process::Command;

/// Failures setting up a TUN device.
#[derive(Debug, thiserror::Error)]
pub enum TunError {
    /// A system call failed.
    #[error("{what}: {source}")]
    Sys {
        /// What was being done.
        what: String,
        /// The OS error.
        source: io::Error,
    },
    /// An `ip` command failed.
    #[error("`ip {args}` failed: {stderr}")]
    Ip {
        /// Its arguments.
        args: String,
        /// What it printed.
        stderr: String,
    },
    /// A name that cannot be an interface name.
    #[error("bad interface name {0:?} (1 to 15 bytes, no '/' or spaces)")]
    BadName(String),
}

fn sys(what: impl Into<String>) -> impl FnOnce(io::Error) -> TunError {
    let what = what.into();
    move |source| TunError::Sys { what, source }
}

/// Creates the TUN device `dev` (IFF_TUN | IFF_NO_PI: plain IP packets) inside the network
/// namespace `netns` and turns IPv6 off on it (no router solicitations or MLD reports on the
/// link). The device lives as long as the returned file: closing it removes the device.
pub fn open_in_netns(netns: &str, dev: &str) -> Result<File, TunError> {
    if dev.is_empty() || dev.len() >= libc::IFNAMSIZ || dev.contains(['/', ' ']) {
        return Err(TunError::BadName(dev.to_owned()));
    }
    let ns_path = format!("/run/netns/{netns}");
    let ns = File::open(&ns_path).map_err(sys(format!("opening {ns_path} (create it with `ip netns add`)")))?;
    let dev = dev.to_owned();
    // setns changes only the calling thread's namespace: do it on a thread of its own. A TUN
    // device belongs to the namespace of the thread that creates it, and stays there.
    std::thread::spawn(move || {
        // SAFETY: plain system call on a valid descriptor.
        if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(sys(format!("entering network namespace {ns_path}"))(io::Error::last_os_error()));
        }
        let tun =
            std::fs::OpenOptions::new().read(true).write(true).open("/dev/net/tun").map_err(sys("/dev/net/tun"))?;
        // SAFETY: ifreq is plain data; all-zero is a valid value.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (d, s) in req.ifr_name.iter_mut().zip(dev.bytes()) {
            *d = s as libc::c_char;
        }
        req.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
        // SAFETY: TUNSETIFF reads and writes one ifreq, which outlives the call.
        if unsafe { libc::ioctl(tun.as_raw_fd(), libc::TUNSETIFF, &mut req as *mut libc::ifreq) } != 0 {
            return Err(sys(format!("TUNSETIFF {dev}"))(io::Error::last_os_error()));
        }
        // /proc/sys/net shows the namespace of the thread that opens it. Without IPv6 built in
        // the file does not exist, which is fine.
        let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{dev}/disable_ipv6"), "1");
        Ok(tun)
    })
    .join()
    .map_err(|_| TunError::Sys { what: "TUN thread panicked".into(), source: io::Error::other("panic") })?
}

/// Runs `ip ARGS…` and fails with its stderr if it fails.
pub fn ip(args: &[&str]) -> Result<(), TunError> {
    let out = Command::new("ip").args(args).output().map_err(sys("running `ip` (iproute2)"))?;
    if !out.status.success() {
        return Err(TunError::Ip {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(())
}

/// Gives `dev` in `netns` the address `cidr` (e.g. `10.77.0.1/24`) and brings it and the
/// namespace's loopback up.
pub fn configure(netns: &str, dev: &str, cidr: &str, mtu: u32) -> Result<(), TunError> {
    let mtu = mtu.to_string();
    ip(&["-n", netns, "link", "set", "lo", "up"])?;
    ip(&["-n", netns, "addr", "add", cidr, "dev", dev])?;
    ip(&["-n", netns, "link", "set", dev, "mtu", &mtu, "up"])?;
    Ok(())
}
