//! Convoy's edge unit: pulls cameras over RTSP, records every frame to the local media store,
//! serves the technician's page and API, and syncs with central over QUIC.
//!
//! The binary (`edge run --config FILE.toml`) wires these parts together; see ARCHITECTURE.md.

pub mod auth;
pub mod auth_session;
pub mod auth_web;
pub mod board;
pub mod camera;
pub mod camera_supervisor;
pub mod central_link;
pub mod central_settings;
pub mod config;
pub mod enroll;
pub mod event_budget;
pub mod event_config;
pub mod events;
pub mod first_burst;
pub mod frame_clock;
pub mod generic_events;
pub mod h265_key_frames;
pub mod ingest_runtimes;
pub mod io_link;
pub mod link_test;
pub mod link_type;
pub mod live;
pub mod live_datagrams;
pub mod live_start;
pub mod metadata_ingest;
pub mod metrics;
pub mod onvif_metadata;
pub mod power;
pub mod probe;
pub mod queue_share;
pub mod receive_buffers;
pub mod recorder;
pub mod recording;
pub mod retention_warning;
pub mod rtsp;
pub mod rules;
pub mod sd_notify;
pub mod status;
pub mod store_cli;
pub mod sub_stream;
pub mod sync_link;
pub mod tech_cameras;
pub mod tech_dashboard;
pub mod tech_live;
pub mod tech_logs;
pub mod tech_recordings;
pub mod tech_support;
pub mod udp_buffer;
pub mod uplink;
pub mod uplink_traffic;
pub mod vehicle;
pub mod web;
pub mod web_tls;
