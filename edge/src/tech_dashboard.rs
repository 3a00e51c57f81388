//! `GET /api/dashboard`: everything the technician's page shows at a glance: the unit, its
//! software, uptime, board temperature, storage with an estimate of the retention, the link to
//! central, the I/O board and the cameras.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

use crate::central_link::CentralLink;
use crate::config::EdgeConfig;
use crate::recorder::DurableLogs;
use crate::status::{StatusJson, UnitStatus};

/// What the dashboard needs of the running unit.
pub struct Dashboard {
    /// The unit's live status.
    pub status: Arc<UnitStatus>,
    /// The store directory.
    pub store: PathBuf,
    /// `[store] max_bytes`.
    pub max_bytes: Option<u64>,
    /// `[store] min_free_bytes`.
    pub min_free_bytes: Option<u64>,
    /// The largest `max_age_days` when every camera has one.
    pub max_age_days: Option<f64>,
    /// `[central] address`, if configured.
    pub central: Option<String>,
    /// When the process started.
    pub started: Instant,
    /// SHA-256 of the page's HTTPS certificate, when it serves HTTPS.
    pub https_fingerprint: Option<String>,
    /// What the uplink knows of central, and the store as durable (for the bytes pending).
    pub link: Option<(Arc<CentralLink>, DurableLogs)>,
    /// The cameras shared with central.
    pub shared: Vec<String>,
    /// The bytes pending and when they were measured (at most every [`DISK_FIGURES_MAX_AGE`]).
    pending: std::sync::Mutex<Option<(Instant, Result<u64, String>)>>,
    /// The store's size and oldest frame, and when they were measured (a walk of every segment
    /// file and a catalog query: at most every [`DISK_FIGURES_MAX_AGE`]).
    disk: std::sync::Mutex<Option<(Instant, u64, Option<i64>)>>,
}

/// How long the store's size and oldest frame are reused.
pub const DISK_FIGURES_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(10);

impl Dashboard {
    /// The dashboard of the unit configured by `config`, started now.
    pub fn new(config: &EdgeConfig, status: Arc<UnitStatus>) -> Dashboard {
        let ages: Option<Vec<f64>> = config.cameras.iter().map(|c| c.max_age_days).collect();
        Dashboard {
            status,
            store: config.store.path.clone(),
            max_bytes: config.store.max_bytes,
            min_free_bytes: config.store.min_free_bytes,
            max_age_days: ages.filter(|a| !a.is_empty()).map(|a| a.into_iter().fold(0.0, f64::max)),
            central: config.central.as_ref().map(|c| c.address.clone()),
            started: Instant::now(),
            https_fingerprint: None,
            link: None,
            shared: crate::sub_stream::shared_ids(&config.cameras),
            pending: std::sync::Mutex::new(None),
            disk: std::sync::Mutex::new(None),
        }
    }

    /// `GET /api/dashboard`.
    pub fn routes(self: Arc<Self>) -> Router {
        Router::new().route("/api/dashboard", get(dashboard)).with_state(self)
    }
}

/// `GET /api/dashboard`: a stable contract; fields are only ever added.
#[derive(Debug, Serialize)]
pub struct DashboardJson {
    /// The unit's id.
    pub unit_id: String,
    /// The edge software's version.
    pub version: &'static str,
    /// The operating system image (`PRETTY_NAME` of /etc/os-release), if known.
    pub image: Option<String>,
    /// Seconds since `edge run` started.
    pub uptime_s: u64,
    /// Seconds since the system booted, if known.
    pub system_uptime_s: Option<u64>,
    /// The hottest thermal zone the board reports, °C (null when it reports none).
    pub temperature_c: Option<f64>,
    /// The store.
    pub storage: StorageJson,
    /// The link to central.
    pub central: CentralJson,
    /// Everything `GET /api/status` says (cameras with state and reason, board, I/O, power).
    pub status: StatusJson,
    /// SHA-256 of the page's HTTPS certificate (`AA:BB:…`; null without `https_listen`), for
    /// the technician to compare with what the browser shows.
    pub https_fingerprint: Option<String>,
}

/// `"storage"` in [`DashboardJson`].
#[derive(Debug, Serialize, Default)]
pub struct StorageJson {
    /// The store directory.
    pub path: String,
    /// Size of its file system, bytes.
    pub fs_size_bytes: Option<u64>,
    /// Free space on it, bytes.
    pub fs_free_bytes: Option<u64>,
    /// Disk space the recordings take (allocated, so pre-allocated segments count whole;
    /// measured at most every 10 s, like `oldest_recording`).
    pub used_bytes: u64,
    /// `[store] max_bytes`, if set.
    pub max_bytes: Option<u64>,
    /// The oldest recorded frame in a sealed segment, RFC 3339 (null before the first seal).
    pub oldest_recording: Option<String>,
    /// Frames received but not recorded since start, all cameras.
    pub frames_lost: u64,
    /// The last store failure, if it is failing.
    pub store_error: Option<String>,
    /// The cameras' bit rates together, now (bits/s).
    pub recording_bps: u64,
    /// Days of video the store holds at `recording_bps` (its budget: `max_bytes`, or what the
    /// file system has beyond `min_free_bytes`; capped by the cameras' `max_age_days`); null
    /// while nothing streams.
    pub estimated_retention_days: Option<f64>,
    /// Why a figure is missing (the file system or catalog could not be read).
    pub error: Option<String>,
}

/// `"central"` in [`DashboardJson`].
#[derive(Debug, Serialize)]
pub struct CentralJson {
    /// Central's address (null when the unit records locally only).
    pub address: Option<String>,
    /// `connected`, `disconnected` or `not configured`.
    pub state: &'static str,
    /// Why the link is down.
    pub error: Option<String>,
    /// When the link last came up since start, RFC 3339.
    pub last_connected: Option<String>,
    /// The transport: QUIC with mutual TLS.
    pub link: &'static str,
    /// The unit's link type (`{ "kind", "metered" }`, as `/api/status` `"link"`), null while
    /// unknown.
    pub link_type: Option<crate::link_type::LinkJson>,
    /// Bytes of the shared cameras' recordings on the unit that central has not acknowledged
    /// holding, as far as the unit knows (central retrieves what it wants of them; null when
    /// no central is configured). Measured at most every 10 s.
    pub pending_bytes: Option<u64>,
    /// Why `pending_bytes` could not be measured.
    pub pending_error: Option<String>,
}

/// The store's budget in days at `bitrate_bps`: the smaller of `max_bytes` and what the store
/// uses plus the free space above `min_free_bytes`, capped at `max_age_days`.
pub fn retention_days(
    used_bytes: u64,
    fs_free_bytes: u64,
    max_bytes: Option<u64>,
    min_free_bytes: Option<u64>,
    max_age_days: Option<f64>,
    bitrate_bps: u64,
) -> Option<f64> {
    if bitrate_bps == 0 {
        return None;
    }
    let mut budget = used_bytes.saturating_add(fs_free_bytes.saturating_sub(min_free_bytes.unwrap_or(0)));
    if let Some(max) = max_bytes {
        budget = budget.min(max);
    }
    let days = budget as f64 * 8.0 / bitrate_bps as f64 / 86_400.0;
    let days = max_age_days.map_or(days, |cap| days.min(cap));
    Some((days * 10.0).round() / 10.0)
}

fn statvfs(path: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    // SAFETY: `statvfs` is plain old data, for which all zero bytes is a valid value.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `s` a valid out-pointer for the call.
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let frag = s.f_frsize as u64;
    Ok((s.f_blocks as u64 * frag, s.f_bavail as u64 * frag))
}

fn allocated_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => allocated_bytes(&e.path()),
            Ok(m) => m.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}

fn oldest_recording(store: &Path) -> Result<Option<i64>, media_store::StoreError> {
    let path = media_store::catalog_path(store);
    if !path.exists() {
        return Ok(None);
    }
    let catalog = media_store::catalog::Catalog::open_read_only(&path)?;
    Ok(catalog.all_segments()?.iter().filter_map(|s| s.time_range.map(|r| r.0)).min())
}

impl Dashboard {
    /// The store's file system (size, free bytes), what the recordings take on it, and the
    /// start of the oldest recording in a sealed segment (µs); the last two reused for up to
    /// [`DISK_FIGURES_MAX_AGE`].
    pub fn disk_figures(&self) -> DiskFigures {
        let mut errors = Vec::new();
        let fs =
            statvfs(&self.store).map_err(|e| errors.push(format!("file system of {}: {e}", self.store.display()))).ok();
        let mut cache = self.disk.lock().unwrap_or_else(|p| p.into_inner());
        let (used_bytes, oldest) = match *cache {
            Some((at, used, oldest)) if at.elapsed() < DISK_FIGURES_MAX_AGE => (used, oldest),
            _ => {
                let used = allocated_bytes(&media_store::logs_dir(&self.store));
                match oldest_recording(&self.store) {
                    Ok(oldest) => {
                        *cache = Some((Instant::now(), used, oldest));
                        (used, oldest)
                    }
                    Err(e) => {
                        errors.push(format!("catalog: {e}"));
                        (used, None)
                    }
                }
            }
        };
        DiskFigures { fs, used_bytes, oldest_us: oldest, errors }
    }
}

/// What [`Dashboard::disk_figures`] reports.
#[derive(Debug, Clone)]
pub struct DiskFigures {
    /// The file system's size and free bytes, if it could be read.
    pub fs: Option<(u64, u64)>,
    /// Disk space the recordings take (allocated).
    pub used_bytes: u64,
    /// Start of the oldest recording in a sealed segment, µs since the Unix epoch.
    pub oldest_us: Option<i64>,
    /// Which figures are missing, and why.
    pub errors: Vec<String>,
}

fn storage(d: &Dashboard, status: &StatusJson) -> StorageJson {
    let DiskFigures { fs, used_bytes, oldest_us: oldest, errors } = d.disk_figures();
    // Every stream: each camera's main stream and its sub stream.
    let streams =
        || status.cameras.iter().flat_map(|c| std::iter::once(&c.stream).chain(c.sub.as_ref().map(|s| &s.stream)));
    let recording_bps = streams().filter_map(|s| s.bitrate_bps).sum();
    StorageJson {
        path: d.store.display().to_string(),
        fs_size_bytes: fs.map(|f| f.0),
        fs_free_bytes: fs.map(|f| f.1),
        used_bytes,
        max_bytes: d.max_bytes,
        oldest_recording: oldest.and_then(rfc3339),
        frames_lost: streams().map(|s| s.frames_lost).sum(),
        store_error: status.store_error.clone(),
        recording_bps,
        estimated_retention_days: fs.and_then(|(_, free)| {
            retention_days(used_bytes, free, d.max_bytes, d.min_free_bytes, d.max_age_days, recording_bps)
        }),
        error: (!errors.is_empty()).then(|| errors.join("; ")),
    }
}

/// The bytes pending for central, measured again when older than [`DISK_FIGURES_MAX_AGE`].
fn pending(d: &Dashboard) -> Option<Result<u64, String>> {
    let (link, durable) = d.link.as_ref()?;
    let mut cache = d.pending.lock().unwrap_or_else(|p| p.into_inner());
    match &*cache {
        Some((at, value)) if at.elapsed() < DISK_FIGURES_MAX_AGE => Some(value.clone()),
        _ => {
            let value = link.pending_bytes(&d.store, durable, &d.shared).map_err(|e| format!("store: {e}"));
            *cache = Some((Instant::now(), value.clone()));
            Some(value)
        }
    }
}

fn rfc3339(us: i64) -> Option<String> {
    jiff::Timestamp::from_microsecond(us).ok().map(|t| t.to_string())
}

fn system_uptime_s() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/uptime").ok()?;
    text.split_whitespace().next()?.parse::<f64>().ok().map(|s| s as u64)
}

fn image() -> Option<String> {
    let text = std::fs::read_to_string("/etc/os-release").ok()?;
    text.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=")).map(|v| v.trim_matches('"').to_owned())
}

/// The hottest thermal zone under `root` (`/sys/class/thermal`), °C.
pub fn temperature_c(root: &Path) -> Option<f64> {
    std::fs::read_dir(root)
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("thermal_zone"))
        .filter_map(|e| std::fs::read_to_string(e.path().join("temp")).ok())
        .filter_map(|t| t.trim().parse::<i64>().ok())
        .map(|milli| milli as f64 / 1000.0)
        .reduce(f64::max)
}

fn build(d: &Dashboard) -> DashboardJson {
    let status = d.status.snapshot();
    let (connected, error, last) = d.status.central();
    let central = CentralJson {
        address: d.central.clone(),
        state: match (&d.central, connected) {
            (None, _) => "not configured",
            (Some(_), true) => "connected",
            (Some(_), false) => "disconnected",
        },
        error,
        last_connected: last.and_then(rfc3339),
        link: "QUIC, mutual TLS",
        link_type: status.link.clone(),
        pending_bytes: None,
        pending_error: None,
    };
    let central = match (&d.central, pending(d)) {
        (Some(_), Some(Ok(bytes))) => CentralJson { pending_bytes: Some(bytes), ..central },
        (Some(_), Some(Err(e))) => CentralJson { pending_error: Some(e), ..central },
        _ => central,
    };
    DashboardJson {
        unit_id: status.unit_id.clone(),
        version: env!("CARGO_PKG_VERSION"),
        image: image(),
        uptime_s: d.started.elapsed().as_secs(),
        system_uptime_s: system_uptime_s(),
        temperature_c: temperature_c(Path::new("/sys/class/thermal")),
        storage: storage(d, &status),
        central,
        status,
        https_fingerprint: d.https_fingerprint.clone(),
    }
}

async fn dashboard(State(d): State<Arc<Dashboard>>) -> Response {
    match tokio::task::spawn_blocking(move || build(&d)).await {
        Ok(json) => axum::Json(json).into_response(),
        Err(e) => {
            let body = serde_json::json!({ "error": format!("cannot gather the dashboard: {e}") });
            (axum::http::StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body)).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_is_the_budget_over_the_bitrate() {
        const GB: u64 = 1_000_000_000;
        // 4 Mb/s = 43.2 GB a day.
        let bps = 4_000_000;
        assert_eq!(retention_days(0, 432 * GB, None, None, None, bps), Some(10.0));
        assert_eq!(retention_days(216 * GB, 216 * GB, None, None, None, bps), Some(10.0), "used space counts");
        assert_eq!(retention_days(0, 432 * GB, Some(43_200_000_000), None, None, bps), Some(1.0), "max_bytes caps");
        assert_eq!(retention_days(0, 432 * GB, None, Some(216 * GB), None, bps), Some(5.0), "min_free is kept");
        assert_eq!(retention_days(0, 432 * GB, None, None, Some(3.0), bps), Some(3.0), "max_age caps");
        assert_eq!(retention_days(0, GB, None, Some(2 * GB), None, bps), Some(0.0), "no negative budget");
        assert_eq!(retention_days(0, 432 * GB, None, None, None, 0), None, "nothing streams");
    }

    #[test]
    fn temperature_is_the_hottest_zone() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(temperature_c(dir.path()), None);
        for (zone, milli) in [("thermal_zone0", "41500\n"), ("thermal_zone1", "57250\n"), ("cooling_device0", "9")] {
            std::fs::create_dir(dir.path().join(zone)).unwrap();
            std::fs::write(dir.path().join(zone).join("temp"), milli).unwrap();
        }
        std::fs::create_dir(dir.path().join("thermal_zone2")).unwrap();
        std::fs::write(dir.path().join("thermal_zone2/temp"), "garbage").unwrap();
        assert_eq!(temperature_c(dir.path()), Some(57.25));
    }
}
