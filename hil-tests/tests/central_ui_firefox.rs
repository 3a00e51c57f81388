//! Central's operator page in a real headless Firefox (Debian's `firefox-esr`, driven over
//! WebDriver BiDi by `hil_tests::firefox`), with a real edge and GStreamer's RTSP server as the
//! cameras: the operator logs in by typing into the form, sees the unit connected, watches a
//! live H.264 camera (fMP4 over a WebSocket into Media Source Extensions) advance at the live
//! edge, is told plainly that an H.265 camera cannot be played here, selects a range by
//! dragging on the timeline, retrieves it, plays it back from central's store and exports it
//! (ffprobe reads the MP4 Firefox saves), and acknowledges a unit's alarm pushed to the page. A
//! Firefox without the system's FFmpeg (no H.264 decoder) says so in the tile. The administrator
//! saves and assigns a fleet profile, searches the audit log, adds a viewer with a token and a
//! unit; viewers see no control they cannot use, and a viewer of another unit never sees the
//! unit (the same steps as the Chromium twin, `central_ui.rs`).

use std::path::Path;
use std::time::{Duration, Instant};

use hil_tests::central_page::{administer_then_view, log_in, tile_video, wait_js, wait_js_logs};
use hil_tests::firefox::{Firefox, download_prefs};
use hil_tests::media::ffprobe;
use hil_tests::web_page::WebPage;
use hil_tests::{CentralProc, EdgeProc, edge_config, gst_camera, timeline_us, wait_until};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(30);

fn now_us() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as i64
}

fn rfc3339(us: i64) -> String {
    jiff::Timestamp::from_microsecond(us).unwrap().to_string()
}

/// The first video stream of an MP4 as ffprobe reads it, frames counted.
fn ffprobe_video(path: &Path) -> Value {
    let all = ffprobe(path);
    all["streams"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["codec_type"] == "video"))
        .cloned()
        .unwrap_or(Value::Null)
}

#[test]
fn the_operator_page_works_in_firefox() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let (_h264, h264) = gst_camera(dir.path(), &["front"], &[]).unwrap();
    let (_h265, h265) = gst_camera(dir.path(), &["cab"], &["--codec", "h265"]).unwrap();
    let central = CentralProc::start(dir.path(), 0).unwrap();
    let config = format!(
        "{}[generic_events]\nudp = \"127.0.0.1:0\"\n\
         [[generic_events.pattern]]\nname = \"fare\"\nregex = \"^FARE EVASION$\"\n\
         [[rule]]\nname = \"fare\"\ntrigger = \"generic\"\nnotify_central = true\n",
        edge_config(
            "bus-7",
            &dir.path().join("store"),
            Some((&central.quic, &central.fingerprint)),
            &[("front", &format!("{h264}/front")), ("cab", &format!("{h265}/cab"))],
        )
    );
    let mut edge = EdgeProc::start_enrolled(dir.path(), "edge", &config, "bus-7", &central).unwrap();
    let udp: std::net::SocketAddr =
        edge.proc.wait_line("generic events udp listening on", T).unwrap().rsplit(' ').next().unwrap().parse().unwrap();
    let t0 = now_us();

    let downloads = dir.path().join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    let mut b = Firefox::launch_with_prefs(1280, 1000, &download_prefs(&downloads)).unwrap();
    let browser = b.browser_name();
    eprintln!("{browser} started {:?} into the test", started.elapsed());
    b.goto(&format!("{}/", central.web)).unwrap();
    log_in(&mut b, "admin", &central.admin_password().unwrap());

    // The unit is listed as connected, its cameras as tiles.
    wait_js(
        &mut b,
        "bus-7 is listed as connected",
        "(() => { const r = document.querySelector('#units tr[data-unit=\"bus-7\"] .badge'); return !!r && r.textContent === 'connected'; })()",
    );
    wait_js(&mut b, "the camera tiles", "!!document.querySelector('.tile[data-camera=\"cab\"] button.live')");

    // Live H.264: Firefox decodes it through the system's libavcodec (ffmpeg's package).
    let mime = b.eval("MediaSource.isTypeSupported('video/mp4; codecs=\"avc1.64001f\"')").unwrap();
    assert_eq!(mime, json!(true), "{browser} cannot decode H.264 in MSE: is libavcodec installed (Debian ffmpeg)?");
    b.click(".tile[data-camera=\"front\"] button.live").unwrap();
    let clicked = Instant::now();
    let first = wait_js_logs(
        &mut b,
        "the live tile plays",
        &format!(
            "(() => {{ const s = {}; return s && (s.unsupported || s.error || (s.t > 1 && s.w > 0)) ? s : null; }})()",
            tile_video("front")
        ),
        &[&edge.proc, &central.proc],
    );
    assert_eq!((first["w"].as_u64(), first["h"].as_u64()), (Some(640), Some(360)), "{browser}: {first}");
    let to_first_second = clicked.elapsed();
    let t1 = first["t"].as_f64().unwrap();
    let later = wait_js_logs(
        &mut b,
        "live video keeps advancing",
        &format!("(() => {{ const s = {}; return s.t > {} ? s : null; }})()", tile_video("front"), t1 + 2.0),
        &[&edge.proc, &central.proc],
    );
    assert!(later["behind"].as_f64().unwrap() < 1.5, "the tile stays near the live edge: {later}");
    eprintln!(
        "{browser}: 1 s of live video played {to_first_second:?} after the click; {:.2} s buffered ahead",
        later["behind"].as_f64().unwrap()
    );

    // H.265: the tile says so where the picture would be, every time (the message comes just
    // before the server closes the socket, which Firefox used to lose).
    let cab_tile = "document.querySelector('.tile[data-camera=\"cab\"]')";
    for attempt in 0..5 {
        // The previous attempt's message is marked, so only a new one counts.
        b.eval(&format!("{cab_tile}.querySelectorAll('.screen').forEach(s => s.dataset.old = '1'); true")).unwrap();
        b.click(".tile[data-camera=\"cab\"] button.live").unwrap();
        let cab = wait_js_logs(
            &mut b,
            "the H.265 tile explains itself",
            &format!(
                "(() => {{ const t = {cab_tile}; const u = t.querySelector('.screen.unsupported:not([data-old])'); \
                 const v = t.querySelector('video'); const note = t.querySelector('.note').textContent; \
                 if (u) return {{ unsupported: u.textContent }}; \
                 return v && (v.error || v.currentTime > 1 || note.includes('ended')) ? {{ note, t: v.currentTime }} : null; }})()"
            ),
            &[&edge.proc, &central.proc],
        );
        let note = cab["unsupported"].as_str().unwrap_or_else(|| panic!("{browser}, attempt {attempt}: {cab}"));
        assert!(note.contains("cannot play H.265") && note.contains("H.264"), "{note}");
    }

    // Recordings: the timeline shows what only the unit holds; a range is selected by
    // dragging over it, retrieved, and played back from central's store.
    let recorded = wait_until("9 s of recording shows at central as remote only", T, || {
        let t = central
            .get_json(&format!(
                "{}/api/units/bus-7/cameras/front/timeline?start={}&end={}",
                central.web,
                rfc3339(t0 - 60_000_000),
                rfc3339(now_us())
            ))
            .ok()?;
        (timeline_us(&t["remote_only"]) > 9_000_000).then_some(t)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", edge.proc.log_tail()));
    let first_us = recorded["remote_only"][0][0].as_str().unwrap().parse::<jiff::Timestamp>().unwrap().as_microsecond();
    b.click(".tile[data-camera=\"front\"] button.recordings").unwrap();
    wait_js(
        &mut b,
        "the timeline shows what only the unit holds",
        "!!document.querySelector('#timeline .seg.remote_only')",
    );
    let (from_ms, to_ms) = ((first_us / 1000 + 2_000) as f64, (first_us / 1000 + 7_000) as f64);
    let bar = b
        .eval(
            "(() => { const t = document.getElementById('timeline'); t.scrollIntoView({block: 'center'}); const r = t.getBoundingClientRect(); \
             return [r.left, r.top + r.height / 2, r.width, Number(t.dataset.start), Number(t.dataset.end)]; })()",
        )
        .unwrap();
    let [left, y, width, vs, ve] = [0, 1, 2, 3, 4].map(|i| bar[i].as_f64().unwrap());
    let x = |ms: f64| left + width * (ms - vs) / (ve - vs);
    b.drag((x(from_ms), y), (x(to_ms), y)).unwrap();
    let chosen = b
        .eval("[Date.parse(document.getElementById('from').value), Date.parse(document.getElementById('to').value), !document.getElementById('selection').hidden]")
        .unwrap();
    // A pixel of a 10-minute timeline is about half a second.
    let ms_per_px = (ve - vs) / width;
    let (got_from, got_to) = (chosen[0].as_f64().unwrap(), chosen[1].as_f64().unwrap());
    assert!(
        (got_from - from_ms).abs() <= 2.0 * ms_per_px
            && (got_to - to_ms).abs() <= 2.0 * ms_per_px
            && chosen[2] == json!(true),
        "the drag selects {from_ms}..{to_ms}: {chosen}"
    );
    b.click("#retrieve").unwrap();
    wait_until("the retrieval finishes in the page", T, || {
        let s = b.eval("document.getElementById('status').dataset.retrieval || null").ok()?;
        (s == "done" || s == "failed").then_some(s)
    })
    .map(|s| assert_eq!(s, "done"))
    .unwrap_or_else(|e| panic!("{e}\n{}", central.proc.log_tail()));
    wait_js(&mut b, "the timeline shows what central now holds", "!!document.querySelector('#timeline .seg.central')");
    b.click("#play").unwrap();
    let played = wait_js(
        &mut b,
        "playback plays",
        "(() => { const v = document.getElementById('player'); \
         return v.error ? { error: v.error.message } : v.currentTime > 1 && v.videoWidth > 0 ? \
         { t: v.currentTime, w: v.videoWidth, origin: Number(v.dataset.origin) } : null; })()",
    );
    assert_eq!(played["w"], 640, "{browser}: {played}");
    let origin = played["origin"].as_f64().unwrap();
    assert!(
        origin <= got_from && origin > got_from - 2_500.0,
        "from the key frame before the start (2 s GOPs): {played}"
    );

    // Export from the page: Firefox saves the MP4, which ffprobe reads with every frame.
    b.click("#export").unwrap();
    let frames = wait_js(&mut b, "the export finishes", "document.getElementById('status').dataset.exported || null");
    let frames: u64 = frames.as_str().unwrap().parse().unwrap();
    let file = wait_until("Firefox saved the download", T, || {
        let entry = std::fs::read_dir(&downloads)
            .ok()?
            .filter_map(Result::ok)
            .find(|e| e.file_name().to_string_lossy().ends_with(".mp4") && e.metadata().is_ok_and(|m| m.len() > 0))?;
        Some(entry.path())
    })
    .unwrap();
    let probe = ffprobe_video(&file);
    assert_eq!(probe["codec_name"], "h264", "{probe:#}");
    assert_eq!(probe["nb_read_frames"].as_str().and_then(|n| n.parse::<u64>().ok()), Some(frames), "{probe:#}");

    // A unit's alarm appears in the open page (pushed over /api/stream) and is acknowledged.
    let fare_row =
        "[...document.querySelectorAll('#alarms tr[data-event]')].find(r => r.children[2].title.includes('rule:fare'))";
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().send_to(b"FARE EVASION", udp).unwrap();
    let event = wait_js(
        &mut b,
        "the alarm is listed as new",
        &format!(
            "(() => {{ const r = {fare_row}; return r && r.dataset.state === 'new' ? r.dataset.event : null; }})()"
        ),
    );
    b.click(&format!("#alarms tr[data-event=\"{}\"] button.ack", event.as_str().unwrap())).unwrap();
    let acked = wait_js(
        &mut b,
        "the alarm is acknowledged, by whom",
        &format!(
            "(() => {{ const r = {fare_row}; return r && r.dataset.state === 'in_progress' ? \
             {{ by: r.querySelector('.by').textContent, close: !!r.querySelector('button.close') }} : null; }})()"
        ),
    );
    assert_eq!((&acked["by"], &acked["close"]), (&json!("admin"), &json!(true)), "{acked}");

    // A screenshot of the whole page is a PNG at least as wide as the viewport.
    let shot = dir.path().join("central-firefox.png");
    b.eval("window.scrollTo(0, 0); true").unwrap();
    b.screenshot(&shot).unwrap();
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    let png_width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    assert!(png_width >= 1200, "screenshot {png_width} px wide");
    if let Some(to) = std::env::var_os("CONVOY_SCREENSHOT_FIREFOX") {
        std::fs::copy(&shot, to).unwrap();
    }
    drop(b);

    // Firefox has no H.264 decoder of its own on Linux: it loads the system's libavcodec
    // (Debian's ffmpeg package). Without it the tile says so plainly, not a black box.
    let mut b = Firefox::launch_with_prefs(1280, 1000, &[("media.ffmpeg.enabled", json!(false))]).unwrap();
    b.goto(&format!("{}/", central.web)).unwrap();
    log_in(&mut b, "admin", &central.admin_password().unwrap());
    assert_eq!(b.eval("MediaSource.isTypeSupported('video/mp4; codecs=\"avc1.64001f\"')").unwrap(), json!(false));
    b.click(".tile[data-camera=\"front\"] button.live").unwrap();
    let front = wait_js(
        &mut b,
        "the tile says this Firefox cannot play H.264",
        &format!(
            "(() => {{ const s = {}; return s && (s.unsupported || s.error || s.t > 1) ? s : null; }})()",
            tile_video("front")
        ),
    );
    let note = front["unsupported"].as_str().unwrap_or_else(|| panic!("{front}"));
    assert!(note.contains("cannot play H.264") && note.contains("libavcodec"), "{note}");

    // The administration panels, then what viewers see (shared with the Chromium test).
    administer_then_view(&mut b, &central, "bus-7");
    eprintln!("central UI in {browser} took {:?}", started.elapsed());
}
