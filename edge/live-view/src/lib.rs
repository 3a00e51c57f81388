//! Live video in a browser, the same on central's operator page and on the unit's technician
//! page: a camera's live messages ([`link::live::LiveSubscription`]) become fragmented MP4 over a
//! WebSocket ([`forward`], [`LiveMuxer`]), and [`PLAYER_JS`] plays them through Media Source
//! Extensions, kept at the live edge. Only H.264 plays: an H.265 camera gets one
//! `unsupported` message, which the player shows in place of the picture.
//!
//! Socket messages: a text message `{"type":"init","mime":"video/mp4; codecs=\"avc1.64001f\"",
//! "codec":"avc1.64001f","width":W,"height":H}` followed by one binary message, the init
//! segment (again whenever the codec parameters change, or the camera's clock restarts); then
//! one binary message per frame, a media segment (`moof` + `mdat`; a frame goes out when the
//! next one arrives, since that fixes its duration). A camera whose video is not H.264 gets one
//! text message `{"type":"unsupported","codec":"hvc1…","message":"…"}` and the socket closes.

mod muxer;
mod socket;

pub use muxer::{LiveMuxError, LiveMuxer, Out};
pub use socket::forward;

/// The browser side (a classic script that defines `MsePlayer`, `LivePlayer` and `cannotPlay`
/// for the page's own script, loaded before it). Serve it as `text/javascript`.
pub const PLAYER_JS: &str = include_str!("player.js");
