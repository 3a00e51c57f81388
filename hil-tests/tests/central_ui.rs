//! Central's operator page in a real headless Chromium, with a real edge and real cameras:
//! a live tile plays (fMP4 over a WebSocket into Media Source Extensions) at the live edge, an
//! H.265 camera says plainly that the browser cannot play it, a range is retrieved from the
//! timeline with a progress bar, played back with speed and seek, and exported as an MP4 that
//! ffprobe accepts with the frames central holds. A unit's alarm appears at once (pushed over
//! `/api/stream`) and is acknowledged on the page with a comment, which says by whom and when;
//! the fleet overview shows each unit's storage health. The
//! administrator logs in through the page's form, finds the audit entries, saves and assigns a
//! fleet profile, adds a viewer, makes its bearer token and adds a unit on the page; viewers
//! see no control they cannot use, and a viewer of another unit never sees this one.

use std::time::{Duration, Instant};

use hil_tests::browser::Browser;
use hil_tests::central_page::{administer_then_view, log_in, tile_video, wait_js, wait_js_logs};
use hil_tests::media::{ffprobe, ffprobe_number};
use hil_tests::{CentralProc, EdgeProc, edge_config, gst_camera, sim_camera, timeline_us, wait_until};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(45);

fn now_us() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as i64
}

fn rfc3339(us: i64) -> String {
    jiff::Timestamp::from_microsecond(us).unwrap().to_string()
}

const PLAYER: &str = "(() => { const v = document.getElementById('player'); return { t: v.currentTime, w: v.videoWidth, \
                      rate: v.playbackRate, origin: Number(v.dataset.origin || 0), asked: Number(v.dataset.asked || 0) }; })()";

/// GET as central's administrator: status and JSON body, whatever the status.
fn get_answer(central: &CentralProc, url: &str) -> (u16, Value) {
    let mut r = central.get(url).config().http_status_as_error(false).build().call().unwrap();
    (r.status().as_u16(), r.body_mut().read_json().unwrap_or(Value::Null))
}

#[test]
fn the_operator_page_plays_live_retrieves_plays_back_and_exports() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let (_cam, rtsp) = sim_camera(dir.path(), &["front"], 0).unwrap();
    let (_h265, h265) = gst_camera(dir.path(), &["cab"], &["--codec", "h265"]).unwrap();
    let central = CentralProc::start(dir.path(), 0).unwrap();
    let store = dir.path().join("store");
    let config = format!(
        "{}[generic_events]\nudp = \"127.0.0.1:0\"\n\
         [[generic_events.pattern]]\nname = \"fare\"\nregex = \"^FARE EVASION$\"\n\
         [[rule]]\nname = \"fare\"\ntrigger = \"generic\"\nnotify_central = true\n",
        edge_config(
            "bus-7",
            &store,
            Some((&central.quic, &central.fingerprint)),
            &[("front", &format!("{rtsp}/front")), ("cab", &format!("{h265}/cab"))],
        )
    );
    let mut edge = EdgeProc::start_enrolled(dir.path(), "edge", &config, "bus-7", &central).unwrap();
    let udp: std::net::SocketAddr =
        edge.proc.wait_line("generic events udp listening on", T).unwrap().rsplit(' ').next().unwrap().parse().unwrap();
    let t0 = now_us();

    let mut b = Browser::launch(1280, 1000).unwrap();
    let downloads = dir.path().join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    b.allow_downloads(&downloads).unwrap();
    b.goto(&format!("{}/", central.web)).unwrap();
    log_in(&mut b, "admin", &central.admin_password().unwrap());

    // Live: nothing streams from the unit until the tile is started.
    wait_js(&mut b, "the camera tiles", "!!document.querySelector('.tile[data-camera=\"cab\"] button.live')");
    let units = central.get_json(&format!("{}/api/units", central.web)).unwrap();
    assert_eq!(units[0]["cameras"][0]["upstreams"], 0, "no live stream before anyone watches: {units}");
    b.click(".tile[data-camera=\"front\"] button.live").unwrap();
    let clicked = Instant::now();
    let first = wait_js_logs(
        &mut b,
        "the live tile plays",
        &format!("(() => {{ const s = {}; return s && s.t > 1 && s.w > 0 ? s : null; }})()", tile_video("front")),
        &[&edge.proc, &central.proc],
    );
    let to_first_second = clicked.elapsed();
    assert_eq!((first["w"].as_u64(), first["h"].as_u64()), (Some(640), Some(360)), "{first}");
    let t1 = first["t"].as_f64().unwrap();
    let later = wait_js_logs(
        &mut b,
        "live video keeps advancing",
        &format!("(() => {{ const s = {}; return s.t > {} ? s : null; }})()", tile_video("front"), t1 + 2.0),
        &[&edge.proc, &central.proc],
    );
    assert!(later["behind"].as_f64().unwrap() < 1.5, "the tile stays near the live edge: {later}");
    eprintln!(
        "live tile: 1 s of video played {:?} after the click; {:.2} s buffered ahead of the picture",
        to_first_second,
        later["behind"].as_f64().unwrap()
    );
    let units = central.get_json(&format!("{}/api/units", central.web)).unwrap();
    assert_eq!(units[0]["cameras"][0]["viewers"], 1, "{units}");

    // H.265: said plainly, not a black box.
    b.click(".tile[data-camera=\"cab\"] button.live").unwrap();
    let cab = wait_js_logs(
        &mut b,
        "the H.265 tile explains itself",
        &format!("(() => {{ const s = {}; return s && s.unsupported ? s : null; }})()", tile_video("cab")),
        &[&edge.proc, &central.proc],
    );
    let note = cab["unsupported"].as_str().unwrap();
    assert!(note.contains("cannot play H.265") && note.contains("H.264"), "{note}");

    // Wait for 14 s of recording in the unit's catalog, then retrieve 10 s of it from the page,
    // starting 2 s in (so the key frame before the start was recorded too: 1 s GOPs).
    let timeline = |start: i64, end: i64| {
        central
            .get_json(&format!(
                "{}/api/units/bus-7/cameras/front/timeline?start={}&end={}",
                central.web,
                rfc3339(start),
                rfc3339(end)
            ))
            .ok()
    };
    let recorded = wait_until("14 s of recording shows at central as remote only", T, || {
        let t = timeline(t0 - 60_000_000, now_us())?;
        (timeline_us(&t["remote_only"]) > 14_000_000).then_some(t)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", edge.proc.log_tail()));
    let first_us = recorded["remote_only"][0][0].as_str().unwrap().parse::<jiff::Timestamp>().unwrap().as_microsecond();
    // Whole milliseconds: the page's times are JavaScript dates.
    let (start, end) = ((first_us / 1000 + 2_000) * 1000, (first_us / 1000 + 12_000) * 1000);
    // `from`/`to` work as well as `start`/`end`; a range central does not hold says what to do.
    let (status, refused) = get_answer(
        &central,
        &format!(
            "{}/api/units/bus-7/cameras/front/export.mp4?from={}&to={}",
            central.web,
            rfc3339(start),
            rfc3339(end)
        ),
    );
    assert_eq!(status, 404, "{refused}");
    assert!(refused["error"].as_str().unwrap().contains("retrieve the range"), "not held yet: {refused}");

    b.click(".tile[data-camera=\"front\"] button.recordings").unwrap();
    wait_js(
        &mut b,
        "the timeline shows what only the unit holds",
        "!!document.querySelector('#timeline .seg.remote_only')",
    );
    // The fleet overview shows the unit's storage health and how far back its recordings reach.
    let storage = wait_js(
        &mut b,
        "the fleet overview shows the unit's storage",
        "(() => { const c = document.querySelector('#units tr[data-unit=\"bus-7\"] td.storage'); \
         return c && c.querySelector('.oldest').textContent.includes('recordings from') ? \
         c.querySelector('.badge').textContent : null; })()",
    );
    assert_eq!(storage, json!("ok"));
    b.eval(&format!(
        "document.getElementById('from').value = {}; document.getElementById('to').value = {}; \
         document.getElementById('to').dispatchEvent(new Event('change')); true",
        json!(rfc3339(start)),
        json!(rfc3339(end))
    ))
    .unwrap();
    b.click("#retrieve").unwrap();
    let mut progress = Vec::new();
    wait_until("the retrieval finishes in the page", T, || {
        let s = b.eval("[document.getElementById('status').dataset.retrieval, document.getElementById('progress').value, document.getElementById('progress').max]").ok()?;
        progress.push(s[1].as_f64()?);
        (s[0] == "done" || s[0] == "failed").then_some(s)
    })
    .map(|s| {
        assert_eq!(s[0], "done", "{s}");
        assert_eq!(s[1], s[2], "the progress bar is full: {s}");
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", central.proc.log_tail()));
    assert!(progress.windows(2).all(|w| w[0] <= w[1]), "the progress bar never goes back: {progress:?}");
    wait_js(&mut b, "the timeline shows what central now holds", "!!document.querySelector('#timeline .seg.central')");
    let listed = central.get_json(&format!("{}/api/retrievals", central.web)).unwrap();
    assert_eq!(
        (&listed[0]["unit"], &listed[0]["camera"], &listed[0]["state"], &listed[0]["start"]),
        (&json!("bus-7"), &json!("front"), &json!("done"), &json!(rfc3339(start))),
        "the newest retrieval is the page's: {listed}"
    );

    // Evidence lock of the selected range from the page: at central at once, then on the unit.
    b.eval("document.getElementById('lock-reason').value = 'incident 9'; true").unwrap();
    b.click("#lock").unwrap();
    let line = wait_js(
        &mut b,
        "the lock is listed and the unit holds it",
        "(() => { const p = document.querySelector('#locks p[data-lock]'); \
           return p && p.textContent.includes('unit locked') ? p.textContent : null; })()",
    );
    let line = line.as_str().unwrap();
    assert!(line.contains("incident 9") && line.contains("central locked"), "{line}");

    // Playback from central's store, at 4× speed, then a seek by clicking the timeline.
    b.click("#play").unwrap();
    let p = wait_js(
        &mut b,
        "playback plays",
        &format!("(() => {{ const s = {PLAYER}; return s.t > 0.5 && s.w > 0 ? s : null; }})()"),
    );
    let origin = p["origin"].as_f64().unwrap() as i64 * 1000;
    assert!(origin <= start && origin > start - 3_000_000, "starts at the key frame before the start: {p}");
    b.eval("const s = document.getElementById('speed'); s.value = '4'; s.dispatchEvent(new Event('change')); true")
        .unwrap();
    let (from_t, wall) = (b.eval(PLAYER).unwrap()["t"].as_f64().unwrap(), Instant::now());
    let fast = wait_js(
        &mut b,
        "playback advances 3 s",
        &format!("(() => {{ const s = {PLAYER}; return s.t > {} ? s : null; }})()", from_t + 3.0),
    );
    assert_eq!(fast["rate"], 4.0);
    assert!(wall.elapsed() < Duration::from_millis(2500), "3 s of video took {:?} at 4×", wall.elapsed());

    let seek_to = start + 6_000_000;
    let (x, y) = {
        let r = b
            .eval("(() => { const t = document.getElementById('timeline'); t.scrollIntoView({block: 'center'}); const r = t.getBoundingClientRect(); \
                   return [r.left, r.top + r.height / 2, r.width, Number(t.dataset.start), Number(t.dataset.end)]; })()")
            .unwrap();
        let [left, y, width, vs, ve] = [0, 1, 2, 3, 4].map(|i| r[i].as_f64().unwrap());
        (left + width * ((seek_to / 1000) as f64 - vs) / (ve - vs), y)
    };
    b.click_at(x, y).unwrap();
    let sought = wait_js(
        &mut b,
        "playback restarts where the timeline was clicked",
        &format!(
            "(() => {{ const s = {PLAYER}; return s.origin * 1000 > {} && s.t > 0.2 ? s : null; }})()",
            start + 1_000_000
        ),
    );
    // The view moves on with the clock (the page refreshes it), so the time clicked is near,
    // not at, the time aimed at; playback starts at the key frame (1 s GOP) at or before it.
    let (origin, asked) = (sought["origin"].as_f64().unwrap(), sought["asked"].as_f64().unwrap());
    let aimed = (seek_to / 1000) as f64;
    assert!(asked >= aimed - 1000.0 && asked <= aimed + 6000.0, "clicked at {asked}, aimed at {aimed}");
    assert!(origin <= asked && origin > asked - 1200.0, "from the key frame before the click: {sought}");
    assert_eq!(sought["rate"], 4.0, "the speed stays across a seek");

    // Export from the page: the browser's download is an MP4 of exactly the frames held.
    b.click("#export").unwrap();
    let frames = wait_js(&mut b, "the export finishes", "document.getElementById('status').dataset.exported || null");
    let frames: u64 = frames.as_str().unwrap().parse().unwrap();
    let file = wait_until("the browser saved the download", T, || {
        let entry = std::fs::read_dir(&downloads).ok()?.filter_map(Result::ok).find(|e| {
            !e.file_name().to_string_lossy().ends_with(".crdownload") && e.metadata().is_ok_and(|m| m.len() > 0)
        })?;
        Some(entry.path())
    })
    .unwrap();
    let held =
        central::retrieved::read_held(&dir.path().join("central"), "bus-7", "front", start - 20_000_000, end).unwrap();
    let key = held
        .iter()
        .rposition(|f| f.frame.keyframe && f.frame.wall_clock_us <= start)
        .expect("a key frame before the start");
    let want: Vec<_> = held[key..].iter().map(|f| &f.frame).collect();
    assert_eq!(
        frames,
        want.len() as u64,
        "the export holds every frame from the key frame to the end: range {start}..{end}, held {} frames from {} to \
         {}, key frame at {}",
        held.len(),
        held[0].frame.wall_clock_us,
        held[held.len() - 1].frame.wall_clock_us,
        want[0].wall_clock_us
    );
    let probe = ffprobe(&file);
    let stream = &probe["streams"][0];
    assert_eq!(stream["codec_name"], "h264", "{probe:#}");
    assert_eq!(ffprobe_number(&stream["nb_read_frames"]) as u64, frames, "{probe:#}");
    // The camera's clock: first to last frame, and the last one lasts as long as the one before.
    let (first, last, before) = (want[0], want[want.len() - 1], want[want.len() - 2]);
    let span = ((last.pts - first.pts) + (last.pts - before.pts)) as f64 / f64::from(first.clock_rate);
    let duration = ffprobe_number(&probe["format"]["duration"]);
    assert!((duration - span).abs() < 0.05, "duration {duration} s for {span} s of video");

    // Stopping the tile ends the unit's live stream when nobody else watches.
    b.click(".tile[data-camera=\"front\"] button.live").unwrap();
    wait_until("the unit's live stream stops with the last viewer", T, || {
        let units = central.get_json(&format!("{}/api/units", central.web)).ok()?;
        let front = units[0]["cameras"].as_array()?.iter().find(|c| c["id"] == "front")?.clone();
        (front["viewers"] == 0 && front["upstreams"] == 0).then_some(())
    })
    .unwrap();

    // H.265 recordings cannot be exported to a browser-friendly MP4: a plain answer, not a
    // broken file.
    let cab_recorded = wait_until("4.5 s of the H.265 camera's recording at the unit", T, || {
        let t = central
            .get_json(&format!(
                "{}/api/units/bus-7/cameras/cab/timeline?start={}&end={}",
                central.web,
                rfc3339(t0 - 60_000_000),
                rfc3339(now_us())
            ))
            .ok()?;
        let first = t["remote_only"].get(0)?;
        let at = |i: usize| Some(first[i].as_str()?.parse::<jiff::Timestamp>().ok()?.as_microsecond());
        (at(1)? - at(0)? > 4_500_000).then(|| at(0)).flatten()
    })
    .unwrap();
    let (start, end) = (cab_recorded + 500_000, cab_recorded + 4_000_000); // 2 s GOPs
    let cab = central
        .post(&format!("{}/api/units/bus-7/cameras/cab/retrieve", central.web))
        .send_json(json!({ "start": rfc3339(start), "end": rfc3339(end) }))
        .unwrap()
        .body_mut()
        .read_json::<Value>()
        .unwrap();
    let id = cab["id"].as_i64().unwrap();
    wait_until("the H.265 retrieval finishes", T, || {
        (central.get_json(&format!("{}/api/retrievals/{id}", central.web)).ok()?["state"] == "done").then_some(())
    })
    .unwrap();
    let (status, refused) = get_answer(
        &central,
        &format!(
            "{}/api/units/bus-7/cameras/cab/export.mp4?start={}&end={}",
            central.web,
            rfc3339(start),
            rfc3339(end)
        ),
    );
    assert_eq!(status, 415, "{refused}");
    assert!(refused["error"].as_str().unwrap().contains("only H.264"), "{refused}");

    // The API the page uses is documented.
    let doc = central.get_json(&format!("{}/api/openapi.json", central.web)).unwrap();
    assert!(doc["paths"]["/api/units/{unit}/cameras/{camera}/export.mp4"]["get"].is_object());
    // The audit log recorded the live views, the playback and the export, and the page's audit
    // panel finds them.
    let audit = central.get_json(&format!("{}/api/audit?limit=1000", central.web)).unwrap();
    for action in ["login", "live_view", "retrieval_requested", "playback", "export"] {
        assert!(audit.as_array().unwrap().iter().any(|e| e["action"] == action), "{action} in {audit}");
    }
    b.click("#audit-q").unwrap();
    b.page("Input.insertText", json!({ "text": "export" })).unwrap();
    wait_js(
        &mut b,
        "the audit panel shows only the exports",
        "(() => { const rows = [...document.querySelectorAll('#audit tr[data-action]')]; \
         return rows.length > 0 && rows.every(r => r.dataset.action === 'export'); })()",
    );

    // A unit's alarm appears in the open page (pushed over /api/stream), and the operator
    // acknowledges it there: the list says who and when.
    let fare_row =
        "[...document.querySelectorAll('#alarms tr[data-event]')].find(r => r.children[2].title.includes('rule:fare'))";
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().send_to(b"FARE EVASION", udp).unwrap();
    let raised = Instant::now();
    wait_js(
        &mut b,
        "the alarm is listed as new",
        &format!("(() => {{ const r = {fare_row}; return !!r && r.dataset.state === 'new'; }})()"),
    );
    eprintln!("alarm: listed in the page {:?} after the unit's input", raised.elapsed());
    b.eval(&format!("{fare_row}.scrollIntoView({{block: 'center'}}); true")).unwrap();
    let event = b.eval(&format!("{fare_row}.dataset.event")).unwrap();
    // The operator's comment goes with the acknowledgement.
    b.click(&format!("#alarms tr[data-event=\"{}\"] input.comment", event.as_str().unwrap())).unwrap();
    b.page("Input.insertText", json!({ "text": "driver called" })).unwrap();
    b.click(&format!("#alarms tr[data-event=\"{}\"] button.ack", event.as_str().unwrap())).unwrap();
    let acked = wait_js(
        &mut b,
        "the alarm is acknowledged, by whom and when",
        &format!(
            "(() => {{ const r = {fare_row}; return r && r.dataset.state === 'in_progress' ? \
             {{ state: r.querySelector('.state').textContent, by: r.querySelector('.by').textContent, \
             at: r.querySelector('.changed').textContent, ack: !!r.querySelector('button.ack'), \
             close: !!r.querySelector('button.close'), said: r.querySelector('.said').textContent }} : null; }})()"
        ),
    );
    assert_eq!(
        (&acked["state"], &acked["by"], &acked["ack"], &acked["close"], &acked["said"]),
        (&json!("in progress"), &json!("admin"), &json!(false), &json!(true), &json!("driver called")),
        "{acked}"
    );
    assert!(!acked["at"].as_str().unwrap().is_empty(), "{acked}");
    let alarms = central.get_json(&format!("{}/api/alarms?state=in_progress", central.web)).unwrap();
    assert!(
        alarms.as_array().unwrap().iter().any(|a| a["kind"]["Generic"]["name"] == "rule:fare"
            && a["changed_by"] == "admin"
            && a["comment"] == "driver called"),
        "{alarms}"
    );

    // The page as the README shows it: live, recordings, the acknowledged alarm.
    b.click(".tile[data-camera=\"front\"] button.live").unwrap();
    wait_js(
        &mut b,
        "the live tile plays again",
        &format!("(() => {{ const s = {}; return s && s.t > 1; }})()", tile_video("front")),
    );
    let shot = dir.path().join("central.png");
    b.eval("window.scrollTo(0, 0); true").unwrap();
    b.screenshot(&shot).unwrap();
    if let Some(to) = std::env::var_os("CONVOY_SCREENSHOT") {
        std::fs::copy(&shot, to).unwrap();
    }
    b.click(".tile[data-camera=\"front\"] button.live").unwrap();

    // The administration panels, then what viewers see (shared with the Firefox test).
    administer_then_view(&mut b, &central, "bus-7");
    eprintln!("central UI test took {:?}", started.elapsed());
}
