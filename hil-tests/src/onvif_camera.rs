//! A camera with an ONVIF metadata stream (GStreamer's RTSP server, `fixtures/gst_onvif_camera.py`)
//! whose motion events the test switches, what it sent, and every record of a camera's log.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use media_store::{Record, SegmentReader, list_segments, log_dir};

use crate::process::Proc;

/// A running camera with ONVIF metadata.
pub struct OnvifCamera {
    /// The RTSP server (stdin takes `motion on` / `motion off`).
    pub proc: Proc,
    /// Its mount's URL.
    pub url: String,
    /// The file where it logs each message it sends.
    pub log: PathBuf,
}

impl OnvifCamera {
    /// Starts it in `dir` serving `mount`, with `extra_args` (e.g. `--audio aac`).
    pub fn start(dir: &Path, mount: &str, extra_args: &[&str]) -> anyhow::Result<OnvifCamera> {
        let dir = dir.join(mount);
        std::fs::create_dir_all(&dir)?;
        let log = dir.join("sent-metadata.b64");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/gst_onvif_camera.py");
        let mut cmd = std::process::Command::new("/usr/bin/python3");
        cmd.arg(script).args(["--port", "0", "--mount", mount, "--log"]).arg(&log).args(extra_args);
        let mut proc = Proc::spawn_with_stdin("gst-onvif-camera", cmd, &dir.join("gst-onvif-camera.log"))
            .context("GStreamer's RTSP server is needed: ./dev setup installs it")?;
        let line = proc.wait_line("ready rtsp://", Duration::from_secs(30))?;
        let url = format!("{}/{mount}", line.trim_start_matches("ready "));
        Ok(OnvifCamera { proc, url, log })
    }

    /// Puts a motion event (`IsMotion` = `on`) in the next message and waits until it is sent.
    pub fn motion(&mut self, on: bool) -> anyhow::Result<()> {
        self.proc.send_line(if on { "motion on" } else { "motion off" })?;
        self.proc.wait_line(&format!("sent motion {on}"), Duration::from_secs(10))?;
        Ok(())
    }

    /// Every message sent so far, in order.
    pub fn sent(&self) -> anyhow::Result<Vec<Vec<u8>>> {
        let text = std::fs::read_to_string(&self.log)?;
        let b64 = base64::engine::general_purpose::STANDARD;
        text.lines().map(|l| b64.decode(l).context("a line of the camera's log is not base64")).collect()
    }
}

/// Every record of `camera`'s log, in log order (the store's writer stopped or not).
pub fn stored_records(store: &Path, camera: &str) -> anyhow::Result<Vec<Record>> {
    let mut out = Vec::new();
    for (_, path) in list_segments(&log_dir(store, camera))? {
        let mut reader = SegmentReader::open(&path)?;
        while let Some((_, record)) = reader.next_record()? {
            out.push(record);
        }
    }
    Ok(out)
}
