//! The receive buffers the kernel gives a camera's sockets, and so how much a camera may send
//! while its ingest thread naps. `retina` opens the sockets itself, so their buffers are the
//! system's defaults: `net.ipv4.tcp_rmem` (its middle value: a new TCP connection's buffer)
//! and `net.core.rmem_default` (a UDP socket's). The unit's image raises both (Yocto:
//! `90-convoy-camera-receive-buffers.conf`), which lets the ingest threads nap longer between
//! reads: fewer, larger reads cost less CPU (BENCHMARKS.md, "Recording CPU: naps as long as
//! the receive buffers allow").

const TCP_RMEM_PATH: &str = "/proc/sys/net/ipv4/tcp_rmem";

/// A socket's default receive buffers, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiveBuffers {
    /// A new TCP connection's (`net.ipv4.tcp_rmem`, middle value).
    pub tcp: u64,
    /// A UDP socket's (`net.core.rmem_default`).
    pub udp: u64,
}

impl ReceiveBuffers {
    /// Linux's own defaults.
    pub const LINUX_DEFAULT: ReceiveBuffers = ReceiveBuffers { tcp: 131_072, udp: 212_992 };

    /// What the image sets (`90-convoy-camera-receive-buffers.conf`).
    pub const IMAGE: ReceiveBuffers = ReceiveBuffers { tcp: 1_048_576, udp: crate::udp_buffer::ADVISED_RMEM_DEFAULT };

    /// This system's defaults; Linux's for any that cannot be read.
    pub fn of_this_system() -> ReceiveBuffers {
        let tcp = std::fs::read_to_string(TCP_RMEM_PATH).ok().and_then(|text| tcp_rmem_default(&text));
        ReceiveBuffers {
            tcp: tcp.unwrap_or(Self::LINUX_DEFAULT.tcp),
            udp: crate::udp_buffer::rmem_default().unwrap_or(Self::LINUX_DEFAULT.udp),
        }
    }

    /// The most a camera may send, on average, while its ingest thread naps: 3/8 of the smaller
    /// buffer. Linux offers a TCP sender about half the buffer as its window (the rest is kept
    /// for the kernel's bookkeeping), and charges a UDP packet of 1.4 KB about 2.3 KB; within
    /// 3/8 every turn can read all a camera sent, key frames mostly included, so the recording
    /// keeps up. More stalls a TCP camera instead (its window fills during every nap and Linux
    /// does not grow it; BENCHMARKS.md, "what is fixed at 4 cameras") and makes a UDP one lose
    /// packets. Linux's defaults give 48 KiB (98 ms of a 4 Mbit/s camera), the image's 384 KiB.
    pub fn nap_budget(&self) -> u64 {
        self.tcp.min(self.udp) / 8 * 3
    }
}

/// The middle of `net.ipv4.tcp_rmem`'s three values (min, default, max).
fn tcp_rmem_default(text: &str) -> Option<u64> {
    let values: Vec<u64> = text.split_whitespace().map(str::parse).collect::<Result<_, _>>().ok()?;
    match values[..] {
        [_min, default, _max] => Some(default),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_rmem_gives_its_middle_value_and_anything_else_none() {
        assert_eq!(tcp_rmem_default("4096\t131072\t6291456\n"), Some(131_072));
        assert_eq!(tcp_rmem_default("4096 1048576 6291456"), Some(1_048_576));
        for bad in ["", "4096", "4096 131072", "4096 x 6291456", "1 2 3 4", "-1 2 3"] {
            assert_eq!(tcp_rmem_default(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_budget_is_three_eighths_of_the_smaller_buffer() {
        assert_eq!(ReceiveBuffers::LINUX_DEFAULT.nap_budget(), 48 * 1024);
        assert_eq!(ReceiveBuffers::IMAGE.nap_budget(), 384 * 1024);
        // A small UDP buffer bounds it even when TCP's is large.
        assert_eq!(ReceiveBuffers { tcp: 1_048_576, udp: 212_992 }.nap_budget(), 79_872);
        // This machine's values read as numbers.
        let here = ReceiveBuffers::of_this_system();
        assert!(here.tcp > 0 && here.udp > 0, "{here:?}");
    }
}
