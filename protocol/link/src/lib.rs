//! The QUIC link between an edge unit and central, shared by both binaries: TLS identities
//! and certificate pinning ([`identity`]), endpoint construction ([`endpoint`]), and
//! length-prefixed postcard messages on QUIC streams ([`messages`]); also the Prometheus text
//! format both serve at `/metrics` ([`prometheus`]).

pub mod backoff;
pub mod congestion;
pub mod durable;
pub mod endpoint;
pub mod identity;
pub mod live;
pub mod live_reassembly;
pub mod live_sender;
mod live_splice;
pub mod live_window;
pub mod messages;
pub mod pki;
pub mod prometheus;
pub mod signals;

mod error;
pub use error::LinkError;
