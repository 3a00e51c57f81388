//! Starting each kind of process the tests and the demo use, on loopback ports they pick.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context;

use crate::central_api::CentralApi;
use crate::netns::Netns;
use crate::process::{Proc, bin_path};

/// A command for `program`, inside `ns` when given.
fn command_in(program: impl AsRef<std::ffi::OsStr>, ns: Option<&Netns>) -> Command {
    match ns {
        Some(ns) => ns.command(program),
        None => Command::new(program),
    }
}

/// How long a process may take to print its listening line.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The committed test clip, served by `sim-camera`.
pub fn clip_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("clips/testsrc-640x360-25fps.h264")
}

/// Starts our simulated camera serving `mounts`; returns it with its base URL
/// (`rtsp://127.0.0.1:PORT`).
pub fn sim_camera(dir: &Path, mounts: &[&str], port: u16) -> anyhow::Result<(Proc, String)> {
    sim_camera_in(dir, mounts, port, None)
}

/// [`sim_camera`] inside a network namespace (its loopback) when `ns` is given.
pub fn sim_camera_in(dir: &Path, mounts: &[&str], port: u16, ns: Option<&Netns>) -> anyhow::Result<(Proc, String)> {
    sim_camera_with(dir, mounts, port, ns, &[])
}

/// [`sim_camera_in`] with more of `sim-camera`'s options (e.g. `--drop-every 50`).
pub fn sim_camera_with(
    dir: &Path,
    mounts: &[&str],
    port: u16,
    ns: Option<&Netns>,
    extra_args: &[&str],
) -> anyhow::Result<(Proc, String)> {
    let mut cmd = command_in(bin_path("sim-camera")?, ns);
    cmd.arg("--listen").arg(format!("127.0.0.1:{port}")).arg("--clip").arg(clip_path()).args(extra_args);
    for m in mounts {
        cmd.arg("--mount").arg(format!("/{m}"));
    }
    let mut proc = Proc::spawn("sim-camera", cmd, &dir.join("sim-camera.log"))?;
    let line = proc.wait_line("listening on rtsp://", START_TIMEOUT)?;
    let url = line.rsplit(' ').next().context("no URL")?.trim_end_matches('/').to_owned();
    Ok((proc, url))
}

/// Starts GStreamer's RTSP server (Debian's gst-rtsp-server, a camera we did not write)
/// serving live H.264 test video on `mounts`; returns it with its base URL.
pub fn gst_camera(dir: &Path, mounts: &[&str], extra_args: &[&str]) -> anyhow::Result<(Proc, String)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/gst_rtsp_camera.py");
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.arg(script).arg("--port").arg("0").args(extra_args);
    for m in mounts {
        cmd.arg("--mount").arg(m);
    }
    let mut proc = Proc::spawn("gst-rtsp-server", cmd, &dir.join("gst-rtsp-server.log"))
        .context("GStreamer's RTSP server is needed: ./dev setup installs it")?;
    let line = proc.wait_line("ready rtsp://", START_TIMEOUT)?;
    let url = line.trim_start_matches("ready ").to_owned();
    Ok((proc, url))
}

/// A running `central`.
pub struct CentralProc {
    /// The process.
    pub proc: Proc,
    /// `http://127.0.0.1:PORT`.
    pub web: String,
    /// `127.0.0.1:PORT` (UDP).
    pub quic: String,
    /// Its CA certificate's fingerprint.
    pub fingerprint: String,
    /// Its configuration file.
    pub config: PathBuf,
    /// Its API as the first administrator (`admin`), with a bearer token.
    pub api: CentralApi,
    /// Its data directory.
    pub store: PathBuf,
}

impl CentralProc {
    /// Starts central with its data in `dir/central`, QUIC on `quic_port` (0: any).
    pub fn start(dir: &Path, quic_port: u16) -> anyhow::Result<CentralProc> {
        Self::start_on(dir, quic_port, 0)
    }

    /// Starts central with given QUIC and web ports (0: any).
    pub fn start_on(dir: &Path, quic_port: u16, web_port: u16) -> anyhow::Result<CentralProc> {
        Self::launch(dir, None, &format!("127.0.0.1:{quic_port}"), web_port, "")
    }

    /// Starts central on loopback with `settings` (top-level keys, then tables such as
    /// `[[unit]]`) put before its `[web]`, `[quic]` and `[store]` tables.
    pub fn start_with(dir: &Path, settings: &str) -> anyhow::Result<CentralProc> {
        Self::launch(dir, None, "127.0.0.1:0", 0, settings)
    }

    /// Starts central inside `ns` with QUIC on `quic` (`ADDR:PORT`, port 0: any) and its web
    /// server on that namespace's loopback.
    pub fn start_in(dir: &Path, ns: &Netns, quic: &str) -> anyhow::Result<CentralProc> {
        Self::launch(dir, Some(ns), quic, 0, "")
    }

    /// Starts central on loopback with `env` set in its environment (e.g.
    /// `CONVOY_LIVE_DATAGRAMS=0`).
    pub fn start_with_env(dir: &Path, env: &[(&str, &str)]) -> anyhow::Result<CentralProc> {
        Self::launch_with_env(dir, None, "127.0.0.1:0", 0, "", env)
    }

    fn launch(
        dir: &Path,
        ns: Option<&Netns>,
        quic: &str,
        web_port: u16,
        settings: &str,
    ) -> anyhow::Result<CentralProc> {
        Self::launch_with_env(dir, ns, quic, web_port, settings, &[])
    }

    fn launch_with_env(
        dir: &Path,
        ns: Option<&Netns>,
        quic: &str,
        web_port: u16,
        settings: &str,
        env: &[(&str, &str)],
    ) -> anyhow::Result<CentralProc> {
        let config = dir.join("central.toml");
        std::fs::write(
            &config,
            format!(
                "{settings}\n[web]\nlisten = \"127.0.0.1:{web_port}\"\n[quic]\nlisten = \"{quic}\"\n[store]\npath = \
                 {:?}\n",
                dir.join("central")
            ),
        )?;
        let mut cmd = command_in(bin_path("central")?, ns);
        cmd.arg("run").arg("--config").arg(&config).envs(env.iter().copied());
        let mut proc = Proc::spawn("central", cmd, &dir.join("central.log"))?;
        let fingerprint = last_word(&proc.wait_line("CA fingerprint", START_TIMEOUT)?);
        let quic = last_word(&proc.wait_line("QUIC listening on", START_TIMEOUT)?);
        let web = last_word(&proc.wait_line("web listening on", START_TIMEOUT)?);
        let mut central = CentralProc {
            proc,
            api: CentralApi { web: web.clone(), token: String::new() },
            web,
            quic,
            fingerprint,
            config,
            store: dir.join("central"),
        };
        central.api.token = central.create_token("admin")?;
        Ok(central)
    }

    /// Runs `central ARGS --config …` with `stdin` as its standard input, to completion: its
    /// output, or an error with it.
    pub fn command(&self, args: &[&str], stdin: &str) -> anyhow::Result<String> {
        use std::io::Write;
        let mut child = Command::new(bin_path("central")?)
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()?;
        // A command that refuses its arguments exits without reading its input.
        match child.stdin.take().context("stdin")?.write_all(stdin.as_bytes()) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e.into()),
            _ => {}
        }
        let out = child.wait_with_output()?;
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        anyhow::ensure!(out.status.success(), "central {args:?} failed: {text}");
        Ok(text)
    }

    /// `central user add NAME --role ROLE [--unit U]…` with `password` on standard input.
    pub fn add_user(&self, name: &str, role: &str, password: &str, units: &[&str]) -> anyhow::Result<String> {
        let mut args = vec!["user", "add", name, "--role", role];
        for u in units {
            args.extend(["--unit", u]);
        }
        self.command(&args, &format!("{password}\n"))
    }

    /// `central token create --user NAME`: the token (the last word printed).
    pub fn create_token(&self, user: &str) -> anyhow::Result<String> {
        Ok(last_word(self.command(&["token", "create", "--user", user], "")?.trim()))
    }

    /// The first administrator's password, as central wrote it on its first start.
    pub fn admin_password(&self) -> anyhow::Result<String> {
        let path = self.store.join("initial-admin-password");
        Ok(std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?.trim().to_owned())
    }

    /// `GET url` as the administrator: the JSON answer.
    pub fn get_json(&self, url: &str) -> anyhow::Result<serde_json::Value> {
        self.api.get_json(url)
    }

    /// `GET url` as the administrator.
    pub fn get(&self, url: &str) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
        self.api.get(url)
    }

    /// `POST url` as the administrator.
    pub fn post(&self, url: &str) -> ureq::RequestBuilder<ureq::typestate::WithBody> {
        self.api.post(url)
    }

    /// `PUT url` as the administrator.
    pub fn put(&self, url: &str) -> ureq::RequestBuilder<ureq::typestate::WithBody> {
        self.api.put(url)
    }

    /// `DELETE url` as the administrator.
    pub fn delete(&self, url: &str) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
        self.api.delete(url)
    }

    /// Runs `central unit ARGS --config …` to completion; its output, or an error with it.
    pub fn unit_command(&self, args: &[&str]) -> anyhow::Result<String> {
        let out =
            Command::new(bin_path("central")?).arg("unit").args(args).arg("--config").arg(&self.config).output()?;
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        anyhow::ensure!(out.status.success(), "central unit {args:?} failed: {text}");
        Ok(text)
    }

    /// `central unit add --name NAME`: the enrollment token (the last word printed).
    pub fn add_unit(&self, name: &str) -> anyhow::Result<String> {
        Ok(last_word(self.unit_command(&["add", "--name", name])?.trim()))
    }

    /// `central unit revoke --name NAME`.
    pub fn revoke_unit(&self, name: &str) -> anyhow::Result<()> {
        self.unit_command(&["revoke", "--name", name]).map(drop)
    }

    /// `GET /api/units`.
    pub fn units(&self) -> anyhow::Result<serde_json::Value> {
        self.get_json(&format!("{}/api/units", self.web))
    }
}

/// A running `edge`.
pub struct EdgeProc {
    /// The process.
    pub proc: Proc,
    /// `http://127.0.0.1:PORT`.
    pub web: String,
}

/// Runs `edge enroll --config CONFIG --central ADDRESS --token TOKEN`; its output, or an error
/// with it.
pub fn edge_enroll(config: &Path, central: &str, token: &str) -> anyhow::Result<String> {
    edge_enroll_in(config, central, token, None)
}

/// [`edge_enroll`] from inside a network namespace when `ns` is given.
pub fn edge_enroll_in(config: &Path, central: &str, token: &str, ns: Option<&Netns>) -> anyhow::Result<String> {
    let out = command_in(bin_path("edge")?, ns)
        .arg("enroll")
        .arg("--config")
        .arg(config)
        .args(["--central", central, "--token", token])
        .output()?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    anyhow::ensure!(out.status.success(), "edge enroll failed: {text}");
    Ok(text)
}

impl EdgeProc {
    /// Writes this config text to `dir/NAME.toml`, adds unit `unit_id` at `central` and
    /// enrolls it with the token, as an installer would, then starts the unit.
    pub fn start_enrolled(
        dir: &Path,
        name: &str,
        config_text: &str,
        unit_id: &str,
        central: &CentralProc,
    ) -> anyhow::Result<EdgeProc> {
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(&config, config_text)?;
        edge_enroll(&config, &central.quic, &central.add_unit(unit_id)?)?;
        Self::start(dir, name, config_text)
    }

    /// Starts an edge unit with this config text (written to `dir/NAME.toml`).
    pub fn start(dir: &Path, name: &str, config_text: &str) -> anyhow::Result<EdgeProc> {
        Self::start_in(dir, name, config_text, None)
    }

    /// [`EdgeProc::start`] inside a network namespace when `ns` is given.
    pub fn start_in(dir: &Path, name: &str, config_text: &str, ns: Option<&Netns>) -> anyhow::Result<EdgeProc> {
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(&config, config_text)?;
        let mut cmd = command_in(bin_path("edge")?, ns);
        cmd.arg("run").arg("--config").arg(&config);
        let mut proc = Proc::spawn(name, cmd, &dir.join(format!("{name}.log")))?;
        let web = last_word(&proc.wait_line("web listening on", START_TIMEOUT)?);
        Ok(EdgeProc { proc, web })
    }

    /// `GET /api/status`.
    pub fn status(&self) -> anyhow::Result<serde_json::Value> {
        crate::get_json(&format!("{}/api/status", self.web))
    }
}

/// An edge config for `unit_id` with its store in `store`, optionally linked to central,
/// recording `cameras` as `(id, url)`.
pub fn edge_config(unit_id: &str, store: &Path, central: Option<(&str, &str)>, cameras: &[(&str, &str)]) -> String {
    let mut s = format!("unit_id = {unit_id:?}\n[store]\npath = {store:?}\n[web]\nlisten = \"127.0.0.1:0\"\n");
    if let Some((address, fingerprint)) = central {
        s += &format!("[central]\naddress = {address:?}\nfingerprint = {fingerprint:?}\n");
    }
    for (id, url) in cameras {
        s += &format!("[[camera]]\nid = {id:?}\nurl = {url:?}\n");
    }
    s
}

/// The last word of a line a process printed (an address, a token).
pub fn last_word(line: &str) -> String {
    line.rsplit(' ').next().unwrap_or_default().to_owned()
}

/// [`gst_camera`] inside a network namespace (its loopback) when `ns` is given.
pub fn gst_camera_in(
    dir: &Path,
    mounts: &[&str],
    extra_args: &[&str],
    ns: Option<&Netns>,
) -> anyhow::Result<(Proc, String)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/gst_rtsp_camera.py");
    let mut cmd = command_in("/usr/bin/python3", ns);
    cmd.arg(script).arg("--port").arg("0").args(extra_args);
    for m in mounts {
        cmd.arg("--mount").arg(m);
    }
    let mut proc = Proc::spawn("gst-rtsp-server", cmd, &dir.join("gst-rtsp-server.log"))
        .context("GStreamer's RTSP server is needed: ./dev setup installs it")?;
    let line = proc.wait_line("ready rtsp://", START_TIMEOUT)?;
    Ok((proc, line.trim_start_matches("ready ").to_owned()))
}

impl CentralProc {
    /// [`CentralProc::start_in`] (or on the host's loopback without `ns`) with `extra` TOML
    /// in central's config (top-level keys, then tables such as `[[unit]]`), as
    /// [`CentralProc::start_with`] puts it.
    pub fn start_with_config(dir: &Path, ns: Option<&Netns>, quic: &str, extra: &str) -> anyhow::Result<CentralProc> {
        Self::launch(dir, ns, quic, 0, extra)
    }

    /// Asks central to retrieve `unit`'s `camera` between two times (µs since the Unix epoch):
    /// `POST /api/units/{unit}/cameras/{camera}/retrieve`; the retrieval's id.
    pub fn retrieve(&self, unit: &str, camera: &str, start_us: i64, end_us: i64) -> anyhow::Result<i64> {
        let time = |us: i64| jiff::Timestamp::from_microsecond(us).map(|t| t.to_string());
        let answer: serde_json::Value = self
            .post(&format!("{}/api/units/{unit}/cameras/{camera}/retrieve", self.web))
            .send_json(serde_json::json!({ "start": time(start_us)?, "end": time(end_us)? }))?
            .body_mut()
            .read_json()?;
        answer["id"].as_i64().with_context(|| format!("central answered the retrieval with {answer}"))
    }

    /// Polls `GET /api/retrievals/{id}` until the retrieval is `done` or `failed` (or `timeout`
    /// passes); its last status.
    pub fn wait_retrieval(&self, id: i64, timeout: Duration) -> anyhow::Result<serde_json::Value> {
        crate::wait_until("the retrieval finishes", timeout, || {
            let s = self.get_json(&format!("{}/api/retrievals/{id}", self.web)).ok()?;
            (s["state"] == "done" || s["state"] == "failed").then_some(s)
        })
        .map_err(|e| anyhow::anyhow!("{e}"))
    }
}
