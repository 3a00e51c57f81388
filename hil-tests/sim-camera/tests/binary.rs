//! The `sim-camera` binary: announces its port on stdout and serves RTSP.

use std::process::Stdio;

use futures::StreamExt;
use retina::client::{PlayOptions, Session, SessionOptions, SetupOptions, Transport};
use retina::codec::CodecItem;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

#[tokio::test]
async fn binary_prints_its_address_and_serves_each_mount() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sim-camera"))
        .args(["--listen", "127.0.0.1:0", "--mount", "/front", "--mount", "rear"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn sim-camera");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let line = lines.next_line().await.unwrap().expect("a line on stdout");
    let base =
        line.strip_prefix("sim-camera listening on rtsp://").unwrap_or_else(|| panic!("unexpected line {line:?}"));
    let addr: std::net::SocketAddr = base.parse().expect("address");
    assert_ne!(addr.port(), 0);

    for mount in ["/front", "/rear"] {
        let url = url::Url::parse(&format!("rtsp://{addr}{mount}")).unwrap();
        let mut session = Session::describe(url, SessionOptions::default()).await.expect("DESCRIBE");
        session.setup(0, SetupOptions::default().transport(Transport::Tcp(Default::default()))).await.expect("SETUP");
        let mut demuxed = session.play(PlayOptions::default()).await.expect("PLAY").demuxed().expect("demuxed");
        let mut n = 0;
        while n < 3 {
            if let CodecItem::VideoFrame(f) = demuxed.next().await.unwrap().unwrap() {
                assert_eq!(n == 0, f.is_random_access_point());
                n += 1;
            }
        }
    }
    // Nothing else is printed to stdout.
    child.start_kill().unwrap();
    assert_eq!(lines.next_line().await.unwrap(), None);
    child.wait().await.unwrap();
}

#[tokio::test]
async fn binary_rejects_a_bad_clip() {
    let dir = std::env::temp_dir().join(format!("sim-camera-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.h264");
    std::fs::write(&bad, b"definitely not h264").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sim-camera"))
        .args(["--listen", "127.0.0.1:0", "--clip"])
        .arg(&bad)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Annex-B"), "{stderr}");
}
