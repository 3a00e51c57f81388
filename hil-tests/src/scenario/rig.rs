//! The processes of a scenario: central in a network namespace of its own; per unit a
//! namespace with its camera server, its simulated I/O board (`io-sim`) and its edge, joined
//! to central's namespace by a `link-emu` link of its own.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;

use super::file::{CameraServer, LinkKind, LinkPhase, Scenario, Unit};
use crate::netns::{EmulatedLink, LinkParams, Netns};
use crate::process::{Proc, bin_path, wait_until};
use crate::services::{CentralProc, EdgeProc, edge_enroll_in, gst_camera_in, sim_camera_in};

/// Where the edge listens for its board, and the board for the edge, inside a unit's namespace.
const EDGE_IO: &str = "127.0.0.1:47900";
const BOARD_IO: &str = "127.0.0.1:47800";
/// The edge's `[generic_events]` TCP listener, in the unit's namespace.
pub const GENERIC_EVENTS: &str = "127.0.0.1:47910";
/// The edge rule that turns the runner's generic events into an alarm at central.
pub const GENERIC_RULE: &str = "generic";
/// How long a process may take to come up or go down.
pub const T: Duration = Duration::from_secs(60);

/// One unit and its vehicle. Fields drop in order: processes before the namespace.
pub struct UnitRig {
    /// The unit's id.
    pub name: String,
    /// Its cameras.
    pub cameras: Vec<String>,
    /// The running edge, if it is up.
    pub edge: Option<EdgeProc>,
    /// The simulated I/O board (stdin: `input ignition 0`, …).
    pub board: Proc,
    _camera: Proc,
    /// Its link to central.
    pub link: EmulatedLink,
    /// Its store directory.
    pub store: PathBuf,
    /// Its link file (`[central] link_file`), which the link phases write.
    pub link_file: PathBuf,
    dir: PathBuf,
    config: String,
    /// Its namespace.
    pub ns: Netns,
}

/// Everything of a scenario that runs.
pub struct Rig {
    /// The units, in the file's order.
    pub units: Vec<UnitRig>,
    /// Central.
    pub central: CentralProc,
    /// Central's data directory.
    pub central_store: PathBuf,
    /// Central's namespace.
    pub central_ns: Netns,
}

/// The link-emu numbers of a phase: its kind's defaults, then what it sets.
pub fn link_params(phase: &LinkPhase) -> LinkParams {
    let base = match phase.kind {
        LinkKind::Wifi => LinkParams { delay_ms: 5.0, jitter_ms: 1.0, rate_kbit: 50_000, ..Default::default() },
        LinkKind::Cellular => {
            LinkParams { delay_ms: 60.0, jitter_ms: 15.0, loss_pct: 1.0, rate_kbit: 4_000, ..Default::default() }
        }
        LinkKind::Tunnel | LinkKind::Custom => LinkParams::default(),
    };
    LinkParams {
        delay_ms: phase.delay_ms.unwrap_or(base.delay_ms),
        jitter_ms: phase.jitter_ms.unwrap_or(base.jitter_ms),
        loss_pct: phase.loss_pct.unwrap_or(base.loss_pct),
        rate_kbit: phase.rate_kbit.unwrap_or(base.rate_kbit),
        ..base
    }
}

/// `GET url` from inside `ns`.
pub fn get_in(ns: &Netns, url: &str) -> Option<Value> {
    let url = url.to_owned();
    ns.call(move || crate::get_json(&url).ok()).ok().flatten()
}

impl Rig {
    /// Starts central and every unit (enrolled, recording, connected) in `dir`.
    pub fn start(scenario: &Scenario, dir: &Path) -> anyhow::Result<Rig> {
        let central_ns = Netns::create("sc-central")?;
        let mut extra = String::new();
        for u in &scenario.units {
            extra += &format!("[[unit]]\nname = {:?}\n", u.name);
            if let Some(metered) = u.metered {
                extra += &format!("metered = {metered}\n");
            }
            for c in &u.cameras {
                extra += &format!("[[unit.camera]]\nid = {c:?}\nevent_window_s = {:?}\n", scenario.event_window_s);
            }
        }
        let central = CentralProc::start_with_config(dir, Some(&central_ns), "0.0.0.0:0", &extra)?;
        let port = central.quic.rsplit(':').next().context("central's QUIC port")?.to_owned();
        let mut units = Vec::new();
        for (i, u) in scenario.units.iter().enumerate() {
            let index = u8::try_from(i + 1).ok().filter(|&n| n < 255).context("at most 254 units")?;
            let unit = UnitRig::start(scenario, u, index, dir, &central_ns, &central, &port)
                .with_context(|| format!("starting unit {}", u.name))?;
            units.push(unit);
        }
        for u in &units {
            u.wait_connected()?;
        }
        let central_store = dir.join("central");
        Ok(Rig { units, central, central_store, central_ns })
    }

    /// `GET {central}{path}` from central's namespace.
    pub fn central_get(&self, path: &str) -> Option<Value> {
        let (api, url) = (self.central.api.clone(), format!("{}{path}", self.central.web));
        self.central_ns.call(move || api.get_json(&url).ok()).ok().flatten()
    }

    /// `POST {central}{path}` with a JSON body from central's namespace: status and answer.
    pub fn central_post(&self, path: &str, body: Value) -> anyhow::Result<(u16, Value)> {
        let (api, url) = (self.central.api.clone(), format!("{}{path}", self.central.web));
        self.central_ns.call(move || -> anyhow::Result<(u16, Value)> {
            let mut r = api.post(&url).config().http_status_as_error(false).build().send_json(body).context("POST")?;
            Ok((r.status().as_u16(), r.body_mut().read_json().unwrap_or(Value::Null)))
        })?
    }
}

impl UnitRig {
    fn start(
        scenario: &Scenario,
        u: &Unit,
        index: u8,
        dir: &Path,
        central_ns: &Netns,
        central: &CentralProc,
        port: &str,
    ) -> anyhow::Result<UnitRig> {
        let dir = dir.join(&u.name);
        std::fs::create_dir_all(&dir)?;
        let ns = Netns::create("sc-unit")?;
        let first = u.links.first().filter(|l| l.at.secs() == 0.0);
        let params = first.map_or_else(
            || {
                link_params(&LinkPhase {
                    at: Default::default(),
                    kind: LinkKind::Wifi,
                    delay_ms: None,
                    jitter_ms: None,
                    loss_pct: None,
                    rate_kbit: None,
                    metered: None,
                })
            },
            link_params,
        );
        let link = EmulatedLink::start_numbered(&ns, central_ns, &params, u64::from(index), index)?;
        if first.is_some_and(|l| l.kind == LinkKind::Tunnel) {
            link.down()?;
        }
        let mounts: Vec<&str> = u.cameras.iter().map(String::as_str).collect();
        let (camera, rtsp) = match u.camera_server {
            CameraServer::Sim => sim_camera_in(&dir, &mounts, 0, Some(&ns))?,
            CameraServer::Gst => gst_camera_in(&dir, &mounts, &["--width", "320", "--height", "180"], Some(&ns))?,
        };
        let mut cmd = ns.command(bin_path("io-sim")?);
        cmd.args(["--unit", EDGE_IO, "--listen", BOARD_IO]);
        let mut board = Proc::spawn_with_stdin("io-sim", cmd, &dir.join("io-sim.log"))?;
        board.wait_line("ready ", T)?;
        board.send_line("input ignition 1")?;
        let store = dir.join("store");
        let link_file = dir.join("link");
        // The link type the unit starts with (a route starting in a tunnel: none yet).
        match first.map_or(Some("wifi".to_owned()), LinkPhase::link_file_line) {
            Some(line) => write_link_file(&link_file, &line)?,
            None => {
                let _ = std::fs::remove_file(&link_file);
            }
        }
        let central_addr = format!("{}:{port}", link.central_addr());
        let mut config = format!(
            "unit_id = {:?}\n[store]\npath = {store:?}\nsegment_bytes = 16777216\n[web]\nlisten = \"127.0.0.1:0\"\n\
             [central]\naddress = {central_addr:?}\nfingerprint = {:?}\nlink_file = {link_file:?}\n[io]\nlisten = {EDGE_IO:?}\nboard = \
             {BOARD_IO:?}\n[power]\nrun_on_s = {}\n",
            u.name,
            central.fingerprint,
            scenario.run_on_real_s(u)
        );
        for c in &u.cameras {
            config += &format!("[[camera]]\nid = {c:?}\nurl = \"{rtsp}/{c}\"\n");
        }
        // Generic events from the runner become an alarm at central naming every camera.
        config += &format!(
            "[generic_events]\ntcp = {GENERIC_EVENTS:?}\n[[generic_events.pattern]]\nname = \"scenario\"\nregex = \
             \"^{} [A-Za-z0-9_-]+$\"\n[[rule]]\nname = {GENERIC_RULE:?}\ntrigger = \"generic\"\npattern = \"scenario\"\n\
             record = {:?}\nnotify_central = true\n",
            super::player::GENERIC_PREFIX,
            u.cameras
        );
        let config_path = dir.join("edge.toml");
        std::fs::write(&config_path, &config)?;
        edge_enroll_in(&config_path, &central_addr, &central.add_unit(&u.name)?, Some(&ns))?;
        let mut unit = UnitRig {
            name: u.name.clone(),
            cameras: u.cameras.clone(),
            edge: None,
            board,
            _camera: camera,
            link,
            store,
            link_file,
            dir,
            config,
            ns,
        };
        unit.start_edge()?;
        Ok(unit)
    }

    /// Starts the edge (first boot, or again after a power cut or a shutdown).
    pub fn start_edge(&mut self) -> anyhow::Result<()> {
        let edge = EdgeProc::start_in(&self.dir, "edge", &self.config, Some(&self.ns))?;
        self.edge = Some(edge);
        Ok(())
    }

    /// Writes the unit's link file (atomically: the edge never reads half a line).
    pub fn set_link_type(&self, line: &str) -> anyhow::Result<()> {
        write_link_file(&self.link_file, line)
    }

    /// `GET {edge}{path}` from the unit's namespace, if the edge is up.
    pub fn edge_get(&self, path: &str) -> Option<Value> {
        get_in(&self.ns, &format!("{}{path}", self.edge.as_ref()?.web))
    }

    /// Waits until every camera records and the unit is connected to central.
    pub fn wait_connected(&self) -> anyhow::Result<()> {
        wait_until(&format!("{} records every camera and is connected", self.name), T, || {
            let s = self.edge_get("/api/status")?;
            let cams = s["cameras"].as_array()?;
            let recording =
                cams.len() == self.cameras.len() && cams.iter().all(|c| c["frames_recorded"].as_u64().unwrap_or(0) > 0);
            (recording && s["central_connected"] == true).then_some(())
        })
        .with_context(|| self.edge.as_ref().map(|e| e.proc.log_tail()).unwrap_or_default())
    }

    /// `edge store verify --json` of the unit's store (the edge must be stopped).
    pub fn verify(&self) -> anyhow::Result<Value> {
        let out = Command::new(bin_path("edge")?).args(["store", "verify", "--json"]).arg(&self.store).output()?;
        serde_json::from_slice(&out.stdout)
            .with_context(|| format!("verify printed no JSON: {}", String::from_utf8_lossy(&out.stderr)))
    }
}

/// Replaces `path` with `line` (written beside it, then renamed over it).
fn write_link_file(path: &Path, line: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{line}\n"))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}
