//! Simulated IP camera for Convoy: a small RTSP 1.0 server that loops an
//! H.264 Annex-B clip over RTP interleaved in the RTSP TCP connection.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use sim_camera::{Clip, ServerConfig};
//!
//! let clip = Arc::new(Clip::from_file("front.h264")?);
//! let config = ServerConfig::new().with_mount("/front", clip);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8554").await?;
//! sim_camera::serve(listener, config, async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await?;
//! # Ok(())
//! # }
//! ```

pub mod clip;
pub mod config;
mod connection;
pub mod error;
pub mod nal;
pub mod rtp;
mod rtsp;
pub mod sdp;
mod server;
pub mod stats;
pub mod streamer;

pub use clip::{AccessUnit, Clip, ClipError};
pub use config::ServerConfig;
pub use error::Error;
pub use rtp::H264Packetizer;
pub use server::serve;
pub use stats::ServedStats;
pub use streamer::{ClipStreamer, Frame};

/// The H.264 clip committed with this crate (640x360, 25 fps, 200 frames).
pub const DEFAULT_CLIP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../clips/testsrc-640x360-25fps.h264");
