//! Advice for a camera over RTP/UDP that loses packets while the kernel's default socket
//! receive buffer is small. retina opens a UDP camera's sockets itself, so their buffer is
//! `net.core.rmem_default`; Linux's 208 KB overflows in a 4 Mbit/s 720p camera's key-frame
//! burst (BENCHMARKS.md, "Cameras over UDP"). The unit's image raises it to 2 MiB (Yocto:
//! `90-convoy-camera-receive-buffers.conf`); elsewhere the log says what to do.

/// The default socket receive buffer the unit's image sets, and below which a UDP camera that
/// loses packets gets the advice.
pub const ADVISED_RMEM_DEFAULT: u64 = 2 * 1024 * 1024;

const RMEM_DEFAULT_PATH: &str = "/proc/sys/net/core/rmem_default";

/// `net.core.rmem_default` in bytes, if it can be read.
pub fn rmem_default() -> Option<u64> {
    std::fs::read_to_string(RMEM_DEFAULT_PATH).ok()?.trim().parse().ok()
}

/// What to do about a UDP camera that lost packets, when `rmem_default` (bytes; `None`: not
/// known) is below [`ADVISED_RMEM_DEFAULT`]; `None` when the buffer is not the likely cause.
pub fn advice(rmem_default: Option<u64>) -> Option<String> {
    let rmem = rmem_default?;
    (rmem < ADVISED_RMEM_DEFAULT).then(|| {
        format!(
            "RTP packets lost over UDP with net.core.rmem_default = {rmem} bytes: a key frame's burst can overflow \
             the socket's buffer; set net.core.rmem_default = {ADVISED_RMEM_DEFAULT} (a file in /etc/sysctl.d/) \
             or the camera's transport = \"tcp\""
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_buffer_gets_advice_that_names_the_setting_and_a_large_one_none() {
        let said = advice(Some(212_992)).unwrap();
        assert!(said.contains("net.core.rmem_default = 212992 bytes"), "{said}");
        assert!(said.contains("net.core.rmem_default = 2097152") && said.contains("transport = \"tcp\""), "{said}");
        assert_eq!(advice(Some(ADVISED_RMEM_DEFAULT)), None);
        assert_eq!(advice(None), None, "unknown: no guess");
        // This machine's value reads as a number.
        assert!(rmem_default().is_some_and(|b| b > 0));
    }
}
