//! A live view's cold start on the unit (issue 6): with a camera that sends a key frame every
//! 2 s, a viewer who joins while nobody watches gets, from the unit, the last key frame the
//! camera sent *before* the viewer came (read back from the unit's recordings, instead of
//! waiting for the camera's next one), then every frame after it once, in order. The
//! technician page's live socket starts the same way.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hil_tests::bench_clip::camera_clip_with_gop;
use hil_tests::recording_media::sim_camera_with_clip;
use hil_tests::{CentralProc, EdgeProc, LiveViewer, edge_config, wait_until};
use serde_json::Value;

const T: Duration = Duration::from_secs(60);
/// 90 kHz ticks per frame at 25 fps.
const FRAME_TICKS: i64 = 3600;
/// Frames per group of pictures: a key frame every 2 s.
const GOP: u32 = 50;

fn now_us() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64)
}

/// The `mdat` payload size of a media segment (`moof` + `mdat`); `None` for other messages.
fn mdat_len(segment: &[u8]) -> Option<usize> {
    let mut at = 0;
    while at + 8 <= segment.len() {
        let size = u32::from_be_bytes(segment[at..at + 4].try_into().ok()?) as usize;
        if &segment[at + 4..at + 8] == b"mdat" {
            return size.checked_sub(8);
        }
        at += size.max(8);
    }
    None
}

/// Central's view of the unit's camera `front`.
fn camera(central: &CentralProc) -> Option<Value> {
    let units = central.units().ok()?;
    let u = units.as_array()?.iter().find(|u| u["id"] == "bus-6")?;
    (u["connected"] == true).then(|| u["cameras"][0].clone())
}

#[test]
fn a_cold_live_view_starts_at_the_last_recorded_key_frame_then_every_frame_once() {
    let dir = tempfile::tempdir().unwrap();
    let (clip, _) = camera_clip_with_gop(dir.path(), 640, 360, 800, 10, GOP).unwrap();
    let (_cam, rtsp) = sim_camera_with_clip(dir.path(), &clip, &["front"]).unwrap();
    let central = CentralProc::start(dir.path(), 0).unwrap();
    let config = edge_config(
        "bus-6",
        &dir.path().join("store"),
        Some((&central.quic, &central.fingerprint)),
        &[("front", &format!("{rtsp}/front"))],
    );
    let edge = EdgeProc::start_enrolled(dir.path(), "edge", &config, "bus-6", &central).unwrap();
    wait_until("the unit is connected", T, || (edge.status().ok()?["central_connected"] == true).then_some(()))
        .unwrap();
    // More than a group recorded, so that a key frame lies behind whenever the viewer comes.
    wait_until("the unit records a few seconds", T, || {
        (edge.status().ok()?["cameras"][0]["frames_recorded"].as_u64()? > u64::from(GOP) * 2).then_some(())
    })
    .unwrap();

    // Three joins at different points of the group, each from cold (nobody watching).
    for round in 0..3 {
        let idle = camera(&central).unwrap();
        assert_eq!(idle["upstreams"].as_u64(), Some(0), "round {round}: cold: {idle}");
        let opened_us = now_us();
        let viewer = LiveViewer::open(&central.api, "bus-6", "front").unwrap();
        wait_until("a group and more of frames", T, || (viewer.frames() > u64::from(GOP) + 10).then_some(()))
            .unwrap_or_else(|e| panic!("{e}\n{}", edge.proc.log_tail()));
        let seen = viewer.seen();
        let (first_pts, first_key, _) = seen.frames[0];
        let (first_wall, _) = seen.sizes[0];
        assert!(first_key, "round {round}: the stream starts on a key frame");
        assert!(
            first_wall < opened_us,
            "round {round}: the first frame is one the camera sent {} ms after the viewer came: the unit waited for \
             the next key frame instead of starting from its recordings",
            (first_wall - opened_us) / 1000
        );
        assert!(
            opened_us - first_wall <= 2_200_000,
            "round {round}: started {} ms in the past, more than a group",
            (opened_us - first_wall) / 1000
        );
        let steps: Vec<i64> = seen.frames.windows(2).map(|w| w[1].0 - w[0].0).collect();
        let bad: Vec<(usize, i64)> = steps.iter().copied().enumerate().filter(|&(_, s)| s != FRAME_TICKS).collect();
        assert!(
            bad.is_empty(),
            "round {round}: frames missing or doubled after pts {first_pts}: (index, step) {bad:?}"
        );
        let keys: Vec<usize> = seen.frames.iter().enumerate().filter(|(_, f)| f.1).map(|(i, _)| i).collect();
        assert!(keys.windows(2).all(|w| w[1] - w[0] == GOP as usize), "round {round}: key frames at {keys:?}");
        if round == 0 {
            // Later rounds also get the parameters central's channel kept from the round before.
            assert_eq!(seen.parameters, 1, "the unit sends the parameters once");
        }
        drop(viewer);
        wait_until("the unit's stream stops", T, || (camera(&central)?["upstreams"] == 0).then_some(())).unwrap();
        // The next join comes at another point of the group (not a synchronisation).
        std::thread::sleep(Duration::from_millis(650));
    }

    // The technician's live socket: its frames are matched by size to those a viewer at central
    // gets (with their times) in the same while.
    let viewer = LiveViewer::open(&central.api, "bus-6", "front").unwrap();
    wait_until("central's viewer gets frames", T, || (viewer.frames() > 5).then_some(())).unwrap();
    let opened_us = now_us();
    let ws = edge.web.replace("http://", "ws://");
    let (mut socket, _) = tungstenite::connect(format!("{ws}/api/cameras/front/live.fmp4")).unwrap();
    let mut sizes = Vec::new();
    while sizes.len() < 12 {
        if let tungstenite::Message::Binary(b) = socket.read().unwrap() {
            sizes.extend(mdat_len(&b));
        }
    }
    drop(socket);
    wait_until("central's viewer has the same frames", T, || {
        let seen = viewer.seen();
        let at = seen.sizes.windows(sizes.len()).position(|w| w.iter().map(|f| f.1).eq(sizes.iter().copied()))?;
        Some((seen.sizes[at].0, seen.frames[at].1))
    })
    .map(|(first_wall, first_key)| {
        assert!(first_key, "the technician's view starts on a key frame");
        assert!(
            first_wall < opened_us,
            "the technician's view starts {} ms after it opened: not from the recordings",
            (first_wall - opened_us) / 1000
        );
    })
    .unwrap_or_else(|e| panic!("{e}: sizes {sizes:?}"));
}
