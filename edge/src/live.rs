//! Live fan-out inside the unit: one [`LiveHub`] per camera (shared with central's relay; see
//! `link::live`).

pub use link::live::{LiveHub, LiveSubscription};
