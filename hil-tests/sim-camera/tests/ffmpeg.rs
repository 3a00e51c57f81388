//! ffprobe and ffmpeg (if installed) against the simulated camera.

mod common;

use std::path::Path;
use std::process::Stdio;

use common::TestServer;
use tokio::process::Command;

const FFPROBE: &str = "/usr/bin/ffprobe";
const FFMPEG: &str = "/usr/bin/ffmpeg";

fn have(tool: &str) -> bool {
    if Path::new(tool).exists() {
        true
    } else {
        println!("skipping: {tool} is not installed");
        false
    }
}

#[tokio::test]
async fn ffprobe_sees_h264_640x360() {
    if !have(FFPROBE) {
        return;
    }
    let server = TestServer::start(common::config()).await;
    let url = server.url("/cam");
    let out = Command::new(FFPROBE)
        .args(["-v", "error", "-rtsp_transport", "tcp", "-i", url.as_str()])
        .args(["-show_streams", "-of", "default=noprint_wrappers=1"])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .expect("run ffprobe");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ffprobe failed: {stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    for want in ["codec_name=h264", "width=640", "height=360", "profile=Main"] {
        assert!(lines.contains(&want), "missing {want} in:\n{stdout}\n{stderr}");
    }
    server.stop().await;
}

#[tokio::test]
async fn ffmpeg_decodes_across_a_loop_without_errors() {
    if !have(FFMPEG) {
        return;
    }
    // 250 fps: 230 frames cover the loop point of the 200-frame clip in about a second.
    let server = TestServer::start(common::config().with_frame_rate(250)).await;
    let url = server.url("/cam");
    let out = Command::new(FFMPEG)
        .args(["-nostdin", "-v", "error", "-rtsp_transport", "tcp", "-i", url.as_str()])
        // Passthrough: the clip's SPS says 25 fps; do not drop frames to match it.
        .args(["-vsync", "0", "-frames:v", "230", "-f", "framemd5", "-"])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .expect("run ffmpeg");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ffmpeg failed: {stderr}");
    assert!(stderr.trim().is_empty(), "ffmpeg reported: {stderr}");
    let frames = stdout.lines().filter(|l| !l.starts_with('#')).count();
    assert_eq!(frames, 230, "{stdout}");
    server.stop().await;
}
