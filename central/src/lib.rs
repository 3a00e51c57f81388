//! Convoy's central site: accepts edge units over QUIC, keeps the fleet registry, receives
//! live video, and serves the operator page and REST API.
//!
//! The binary (`central run --config FILE.toml`) wires these parts together; see
//! ARCHITECTURE.md.

pub mod accounts;
pub mod alarm_carry;
pub mod alarm_poll;
mod alarm_writes;
pub mod alarms;
pub mod api_alarms;
pub mod api_auth;
pub mod api_events;
pub mod api_locks;
pub mod api_options;
pub mod api_playback;
pub mod api_profiles;
pub mod api_retrieval;
pub mod api_retrieval_list;
pub mod api_stream;
pub mod api_unit_admin;
pub mod api_user_admin;
pub mod api_webhooks;
pub mod audit;
pub mod auth;
mod batches;
pub mod catalog;
pub mod central_recording;
pub mod config;
pub mod enrollment;
pub mod evidence;
pub mod export_audio;
pub mod fleet;
pub mod hellos;
pub mod interconnect;
pub mod live_datagrams;
pub mod live_events;
pub mod live_fmp4;
pub mod live_ws;
pub mod lock_apply;
pub mod lock_catalog;
pub mod metrics;
pub mod password;
pub mod playback;
pub mod profiles;
pub mod recording_options;
pub mod registry;
pub mod relay;
pub mod retrieved;
#[cfg(test)]
mod retrieved_audio_tests;
pub mod sessions;
pub mod storage_health;
pub mod sub_streams;
pub mod sync_hub;
pub mod sync_reads;
pub mod sync_writes;
pub mod time;
pub mod unit_traffic;
pub mod web;
pub mod webhook_config;
pub mod webhook_outbox;
pub mod webhooks;
