//! A packet-level link emulator for system tests: two TUN devices, one in each of two network
//! namespaces, and threads that carry IP packets between them with per-direction delay,
//! jitter, random loss, a rate-limited drop-tail queue and outage. The kernel this project's
//! tests run on has no netem, so this is how QUIC and a TCP baseline cross the same bad link.
//!
//! The `link-emu` binary is the way in (see README.md); the library holds its parts so they
//! can be tested without root.

pub mod control;
pub mod engine;
pub mod params;
pub mod shaper;
pub mod tun;
