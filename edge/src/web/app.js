"use strict";
const $ = id => document.getElementById(id);
let timer = null, events = [], lastEvent = 0, ticks = 0;

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}
function badge(text, cls) { return el("span", text, "badge " + (cls || text)); }
function fill(dl, rows) {
  dl.replaceChildren(...rows.flatMap(([k, v]) => {
    const dd = el("dd");
    if (v instanceof Node) dd.append(v); else dd.textContent = v === null || v === undefined ? "–" : v;
    return [el("dt", k), dd];
  }));
}
function bytes(n) {
  if (n === null || n === undefined) return "–";
  const u = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < u.length - 1) { n /= 1000; i++; }
  return n.toFixed(i ? 1 : 0) + " " + u[i];
}
function duration(s) {
  if (s === null || s === undefined) return "–";
  const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
  return (d ? d + " d " : "") + (d || h ? h + " h " : "") + m + " min";
}
function when(t) { return t ? new Date(t).toLocaleString() : "–"; }
async function api(path, body) {
  const opts = body === undefined ? { cache: "no-store" } :
    { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const r = await fetch(path, opts);
  let json = {};
  try { json = await r.json(); } catch (e) { /* empty body */ }
  if (!r.ok) { const err = new Error(json.error || r.statusText); err.status = r.status; err.json = json; throw err; }
  return json;
}
function show(view) {
  for (const id of ["login", "password", "noaccount", "dash"]) $(id).hidden = id !== view;
  $("logout").hidden = view === "login" || view === "noaccount";
  if (timer) { clearInterval(timer); timer = null; }
  if (view === "dash") { refresh(); timer = setInterval(refresh, 2000); }
  if (view === "dash") { refreshRecordings(); refreshLogs(); }
}
async function start() {
  try {
    const s = await api("/api/session");
    show(s.must_change_password ? "password" : "dash");
    if (s.account === false) $("updated").dataset.note = "No technician account on this unit yet: this page works only from the unit itself. Set one with `edge technician set --config FILE`.";
  } catch (e) {
    if (e.json && e.json.account === false) { $("noaccount").textContent = e.message; show("noaccount"); }
    else show("login");
  }
}
function formSubmit(id, path, after) {
  $(id).addEventListener("submit", async ev => {
    ev.preventDefault();
    const f = ev.target, out = f.querySelector(".err");
    out.textContent = "";
    try { after(await api(path, Object.fromEntries(new FormData(f)))); f.reset(); }
    catch (e) { out.textContent = e.message; }
  });
}
formSubmit("login", "/api/login", s => show(s.must_change_password ? "password" : "dash"));
formSubmit("password", "/api/password", () => show("dash"));
$("logout").addEventListener("click", async () => { await api("/api/logout", {}).catch(() => {}); show("login"); });
$("evfilter").addEventListener("input", drawEvents);
$("logfilter").addEventListener("input", () => refreshLogs());

function localInput(d) {
  const p = n => String(n).padStart(2, "0");
  return d.getFullYear() + "-" + p(d.getMonth() + 1) + "-" + p(d.getDate()) + "T" + p(d.getHours()) + ":" + p(d.getMinutes()) + ":" + p(d.getSeconds());
}
function exportUrl() {
  const f = new FormData($("export"));
  const start = new Date(f.get("start")), end = new Date(f.get("end"));
  if (!(end > start)) { $("exporterr").textContent = "The end must be after the start."; return null; }
  $("exporterr").textContent = "";
  return "/api/recordings/" + encodeURIComponent(f.get("camera")) + "/export.mp4?start=" +
    encodeURIComponent(start.toISOString()) + "&end=" + encodeURIComponent(end.toISOString());
}
$("playbtn").addEventListener("click", () => {
  const url = exportUrl();
  if (!url) return;
  const v = $("player");
  v.hidden = false;
  v.src = url;
  v.play().catch(() => {});
});
$("export").addEventListener("submit", ev => {
  ev.preventDefault();
  const url = exportUrl();
  if (!url) return;
  const a = el("a");
  a.href = url;
  a.download = "";
  document.body.append(a);
  a.click();
  a.remove();
});
$("lockbtn").addEventListener("click", async () => {
  const f = new FormData($("export"));
  const reason = prompt("Why lock this recording? (kept 30 days)");
  if (!reason) return;
  try {
    await api("/api/recordings/" + encodeURIComponent(f.get("camera")) + "/lock", { reason,
      start: new Date(f.get("start")).toISOString(), end: new Date(f.get("end")).toISOString() });
    $("exporterr").textContent = "";
    refreshRecordings();
  } catch (e) { $("exporterr").textContent = e.message; }
});
const addForm = document.querySelector("#addcam form");
function cameraFields() {
  const f = Object.fromEntries(new FormData(addForm));
  for (const k of Object.keys(f)) if (f[k] === "") delete f[k];
  return f;
}
$("probebtn").addEventListener("click", async () => {
  const f = cameraFields();
  $("probeout").textContent = "Probing…";
  try {
    const r = await api("/api/cameras/probe", { url: f.url, username: f.username, password: f.password });
    const v = r.video || {};
    $("probeout").textContent = v.codec ? "Probe: " + v.codec + " " + v.width + "×" + v.height + ", " +
      (v.fps || 0).toFixed(1) + " fps, " + ((v.bitrate_bps || 0) / 1e6).toFixed(2) + " Mb/s" : JSON.stringify(r);
  } catch (e) { $("probeout").textContent = e.message; }
});
function applied(r) {
  const a = r.applied;
  if (!a) return "it applies when the unit next starts.";
  const parts = [["started", a.added], ["restarted", a.changed], ["stopped", a.removed]].filter(([, l]) => l.length)
    .map(([w, l]) => w + " " + l.join(", "));
  return "applied now" + (parts.length ? ": " + parts.join("; ") : "") + ".";
}
addForm.addEventListener("submit", async ev => {
  ev.preventDefault();
  const editing = addForm.dataset.edit;
  try {
    let r;
    if (editing) {
      const f = cameraFields();
      delete f.id;
      // A sub stream shown and then emptied is removed (other empty fields stay as they are).
      if (addForm.dataset.sub && !f.sub_url) f.sub_url = "";
      const res = await fetch("/api/cameras/" + encodeURIComponent(editing), { method: "PATCH",
        headers: { "Content-Type": "application/json" }, body: JSON.stringify(f) });
      r = await res.json().catch(() => ({}));
      if (!res.ok) throw new Error(r.error || res.statusText);
    } else r = await api("/api/cameras", cameraFields());
    $("probeout").textContent = "Camera " + r.camera + (editing ? " changed, " : " added, ") + applied(r) +
      (r.overridden_by_central && r.overridden_by_central.length ? "; overridden by central: " + r.overridden_by_central.join(", ") : "");
    $("restart").hidden = !r.restart_required;
    endEdit();
    refresh();
  } catch (e) { $("probeout").textContent = e.message; }
});
function endEdit() {
  delete addForm.dataset.edit;
  delete addForm.dataset.sub;
  addForm.reset();
  addForm.elements.id.readOnly = false;
  addForm.elements.url.required = true;
  $("addcam").querySelector("summary").textContent = "Add a camera";
}
async function editCamera(id) {
  try {
    const c = (await api("/api/cameras")).cameras.find(x => x.id === id);
    if (!c) return;
    endEdit();
    addForm.dataset.edit = id;
    const f = addForm.elements;
    f.id.value = id; f.id.readOnly = true; f.name.value = c.name;
    // A password in the URL is shown redacted: leave the URL empty to keep it as it is.
    f.url.value = c.url.includes("redacted@") ? "" : c.url;
    f.url.required = false;
    // A redacted sub stream URL is left empty too, and kept; removing it needs the page that
    // shows it (edge.toml) or PATCH {"sub_url": ""}.
    f.sub_url.value = c.sub_url && !c.sub_url.includes("redacted@") ? c.sub_url : "";
    if (f.sub_url.value) addForm.dataset.sub = "1";
    $("addcam").open = true;
    $("addcam").querySelector("summary").textContent = "Edit camera " + id + " (empty fields stay as they are)";
    $("probeout").textContent = "";
  } catch (e) { alert(e.message); }
}
async function removeCamera(id) {
  if (!confirm("Remove camera " + id + " from the configuration? Its recordings stay on the unit.")) return;
  const r = await fetch("/api/cameras/" + encodeURIComponent(id), { method: "DELETE" });
  const j = await r.json().catch(() => ({}));
  if (!r.ok) alert(j.error || r.statusText);
  else { $("restart").hidden = !j.restart_required; $("probeout").textContent = "Camera " + id + " removed, " + applied(j); refresh(); }
}
async function refreshLogs() {
  try {
    const r = await api("/api/logs?limit=200&filter=" + encodeURIComponent($("logfilter").value));
    $("logs").textContent = r.lines.join("\n");
  } catch (e) { $("logs").textContent = e.message; }
}
async function refreshRecordings() {
  api("/api/cameras").then(c => {
    $("restart").hidden = !c.restart_required;
    for (const cam of c.cameras) centralSet.set(cam.id, cam.central);
    const notices = (c.notices || []).slice(-5).reverse();
    $("central-notices").replaceChildren(...notices.map(n => el("li", n.text)));
    $("central-notices").hidden = !notices.length;
  }, () => {});
  try {
    const t = await api("/api/recordings"), now = Date.now();
    let from = now;
    for (const c of t.cameras) for (const r of c.runs) from = Math.min(from, Date.parse(r[0]));
    const span = Math.max(now - from, 60000);
    const pos = (a, b) => "left:" + ((Date.parse(a) - from) / span * 100).toFixed(2) + "%;width:" +
      Math.max((Date.parse(b) - Date.parse(a)) / span * 100, 0.3).toFixed(2) + "%";
    $("timeline").replaceChildren(...t.cameras.flatMap(c => {
      const bar = el("div", null, "tl");
      bar.dataset.camera = c.id;
      for (const r of c.runs) { const s = el("span"); s.style.cssText = pos(r[0], r[1]); s.title = when(r[0]) + " – " + when(r[1]); bar.append(s); }
      for (const l of c.locks) { const s = el("span", null, "lock"); s.style.cssText = pos(l.start, l.end); s.title = "locked: " + l.reason; bar.append(s); }
      return [el("div", c.id + " · " + c.runs.length + " runs since " + when(c.runs.length ? c.runs[0][0] : null), "muted"), bar];
    }));
    const sel = $("export").elements.camera, keep = sel.value;
    sel.replaceChildren(...t.cameras.map(c => { const o = el("option", c.id); o.value = c.id; return o; }));
    if (keep) sel.value = keep;
    const f = $("export").elements;
    if (!f.start.value) { f.start.value = localInput(new Date(now - 60000)); f.end.value = localInput(new Date(now)); }
  } catch (e) { $("timeline").textContent = e.message; }
}

// What central's settings set of each camera (from /api/cameras), shown on its card.
const centralSet = new Map(); // id → { profile, fields, label, recording_off } or null
// Camera cards stay in place between refreshes, so a live view keeps playing.
const cards = new Map(); // id → { d, head, fmt, rec, reason, view, note, live, liveBtn, snapBtn }
function cameraCard(c) {
  let k = cards.get(c.id);
  if (!k) {
    const d = el("div", null, "cam");
    d.dataset.camera = c.id;
    k = { d, head: el("div"), fmt: el("div", null, "muted"), rec: el("div", null, "muted"), reason: el("div", null, "reason"),
      sub: el("div", null, "sub muted"), subText: el("span"),
      central: el("div", null, "central muted"),
      view: el("div", null, "view"), note: el("div", null, "note muted"), live: null };
    k.view.hidden = true;
    const buttons = el("div", null, "row");
    k.liveBtn = el("button", "Live", "small live");
    k.liveBtn.addEventListener("click", () => toggleLive(c.id));
    k.snapBtn = el("button", "Snapshot", "small snapshot");
    k.snapBtn.hidden = true;
    k.snapBtn.addEventListener("click", () => snapshot(c.id));
    const edit = el("button", "Edit", "small edit");
    edit.addEventListener("click", () => editCamera(c.id));
    const rm = el("button", "Remove", "small remove");
    rm.addEventListener("click", () => removeCamera(c.id));
    buttons.append(k.liveBtn, k.snapBtn, edit, rm);
    k.subBtn = el("button", "Live", "small live-sub");
    k.subBtn.addEventListener("click", () => toggleLive(c.id, true));
    k.sub.append(k.subText, " ", k.subBtn);
    d.append(k.head, k.fmt, k.rec, k.reason, k.sub, k.central, k.view, buttons);
    cards.set(c.id, k);
  }
  k.d.dataset.state = c.state;
  k.head.replaceChildren(el("strong", c.name + (c.name !== c.id ? " (" + c.id + ")" : "")), " ", badge(c.state));
  k.fmt.textContent = c.codec ? c.codec + " " + c.width + "×" + c.height + (c.fps ? ", " + c.fps + " fps" : "") +
    (c.bitrate_bps ? ", " + (c.bitrate_bps / 1e6).toFixed(2) + " Mb/s" : "") +
    (c.audio ? ", audio " + c.audio.codec + " " + c.audio.sample_rate / 1000 + " kHz" : "") : "no stream yet";
  k.rec.textContent = c.mode + (c.recording ? ", recording" : ", not recording") + " · " +
    bytes(c.bytes_recorded) + " recorded" + (c.frames_lost ? " · " + c.frames_lost + " frames lost" : "") +
    (c.packets_lost ? " · " + c.packets_lost + " packets lost on the way" : "");
  const set = centralSet.get(c.id);
  k.central.textContent = set ? set.label + ": " + set.fields.join(", ") : "";
  k.central.hidden = !set;
  k.reason.textContent = c.recording_reason || (c.reason && c.state !== "streaming" ? c.reason : c.audio_reason || c.metadata_reason || "");
  k.reason.hidden = !k.reason.textContent;
  drawSub(k, c.sub);
  return k.d;
}
// A camera's sub stream (sub_url): its state, format and recording, on the camera's card, and
// a button to watch it live there.
function drawSub(k, s) {
  k.sub.hidden = !s;
  if (!s) return;
  k.sub.dataset.state = s.state;
  const fmt = s.codec ? ` ${s.codec} ${s.width}×${s.height}` + (s.fps ? `, ${s.fps} fps` : "") : "";
  const rec = ` · ${s.mode}${s.recording ? ", recording" : ", not recording"} · ${bytes(s.bytes_recorded)} recorded`;
  const why = s.reason && s.state !== "streaming" ? ` · ${s.reason}` : "";
  k.subText.replaceChildren("Sub stream ", badge(s.state), fmt + rec + why);
}
function drawCameras(list) {
  const ids = new Set(list.map(c => c.id));
  for (const [id, k] of cards) if (!ids.has(id)) { if (k.live) k.live.stop(); cards.delete(id); }
  const nodes = list.map(cameraCard);
  const box = $("cameras");
  if (nodes.length !== box.children.length || nodes.some((n, i) => box.children[i] !== n)) box.replaceChildren(...nodes);
}
function stopLive(k) {
  if (k.live) k.live.stop();
  k.live = null;
  k.view.replaceChildren(); k.view.hidden = true;
  k.liveBtn.textContent = "Live"; k.snapBtn.hidden = true; k.subBtn.textContent = "Live";
}
// Starts or stops a camera's live view (`sub`: its sub stream's) on its card.
function toggleLive(id, sub) {
  const k = cards.get(id);
  if (!k) return;
  const was = k.live && k.liveSub;
  if (k.live) { stopLive(k); if (was === !!sub) return; }
  const video = el("video");
  video.muted = true; video.autoplay = true; video.playsInline = true;
  k.view.replaceChildren(video, k.note); k.view.hidden = false;
  k.liveSub = !!sub;
  k.view.dataset.stream = sub ? "sub" : "main";
  const path = "/api/cameras/" + encodeURIComponent(id) + "/live.fmp4" + (sub ? "?stream=sub" : "");
  k.live = new LivePlayer(path, video, k.note);
  k.live.onFail = () => { k.live = null; k.liveBtn.textContent = "Live"; k.subBtn.textContent = "Live"; k.snapBtn.hidden = true; };
  (sub ? k.subBtn : k.liveBtn).textContent = "Stop"; k.snapBtn.hidden = false;
}
function snapshot(id) {
  const k = cards.get(id), video = k && k.view.querySelector("video");
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  if (!video || !snapshotPng(video, id + "-" + stamp + ".png")) k.note.textContent = "No picture yet: wait for the video to play.";
}
function draw(d) {
  const s = d.status;
  $("unit").textContent = d.unit_id;
  fill($("unitinfo"), [["Unit id", d.unit_id], ["Software", "edge " + d.version], ["Image", d.image],
    ["Uptime", duration(d.uptime_s)], ["System up", duration(d.system_uptime_s)],
    ["Board", s.board ? s.board.model + (s.board.missing.length ? " (missing: " + s.board.missing.join(", ") + ")" : "") : "not described"],
    ["Temperature", d.temperature_c === null ? "not reported" : d.temperature_c.toFixed(1) + " °C"],
    ["HTTPS", d.https_fingerprint ? "certificate SHA-256 " + d.https_fingerprint : "off"]]);
  const st = d.storage;
  fill($("storage"), [["Used", bytes(st.used_bytes) + (st.max_bytes ? " of " + bytes(st.max_bytes) : "")],
    ["Disk", bytes(st.fs_free_bytes) + " free of " + bytes(st.fs_size_bytes)],
    ["Oldest", when(st.oldest_recording)], ["Recording at", (st.recording_bps / 1e6).toFixed(2) + " Mb/s"],
    ["Retention", st.estimated_retention_days === null ? "–" : "≈ " + st.estimated_retention_days + " days"],
    ["Write errors", st.store_error ? badge(st.store_error, "down") : st.frames_lost + " frames lost"]]);
  const c = d.central;
  fill($("central"), [["State", badge(c.state, c.state === "not configured" ? "off" : c.state)], ["Address", c.address],
    ["Link", c.link], ["Link type", c.link_type ? c.link_type.kind + (c.link_type.metered ? " (metered)" : " (unmetered)") : "unknown"],
    ["Last connected", when(c.last_connected)],
    ["Not yet at central", c.pending_error ? c.pending_error : c.pending_bytes === null ? "–" : bytes(c.pending_bytes)],
    ["Error", c.error]]);
  $("linktest").hidden = c.state === "not configured";
  if (s.io) {
    const inputs = el("div");
    for (const i of s.io.inputs) inputs.append(badge(i.name, i.active ? "on" : "off"), " ");
    fill($("io"), [["Link", badge(s.io.link_up ? "up" : "down")], ["Inputs", inputs],
      ["Outputs on", s.io.outputs_on.length ? s.io.outputs_on.join(", ") : "none"],
      ["Supply", s.io.supply_mv ? (s.io.supply_mv / 1000).toFixed(2) + " V" + (s.io.power_low ? " (low)" : "") : "–"],
      ["Firmware", s.io.firmware]]);
    drawOutputs(s.io);
  } else fill($("io"), [["Board", "no I/O companion configured"]]);
  drawCameras(s.cameras);
}
$("linktest").addEventListener("click", async () => {
  const out = $("linkresult"), button = $("linktest");
  button.disabled = true;
  out.textContent = "Testing the link to central (a few seconds)…";
  delete out.dataset.done;
  try {
    const r = await api("/api/link-test", {});
    out.textContent = "Latency " + r.ping_ms.toFixed(1) + " ms (QUIC RTT " + r.quic_rtt_ms.toFixed(1) + " ms) · upload " +
      (r.upload_bps / 1e6).toFixed(2) + " Mb/s (" + bytes(r.upload_bytes) + " in " + r.upload_seconds.toFixed(2) + " s)" +
      (r.download_bps != null
        ? " · download " + (r.download_bps / 1e6).toFixed(2) + " Mb/s (" + bytes(r.download_bytes) + " in " + r.download_seconds.toFixed(2) + " s)"
        : " · download not measured: " + r.download_error) +
      (r.lost_packets ? " · " + r.lost_packets + " packets lost" : "");
    out.dataset.done = "ok";
  } catch (e) { out.textContent = e.message; out.dataset.done = "error"; }
  button.disabled = false;
});
function drawOutputs(io) {
  const on = new Set(io.outputs_on), count = Math.max(4, ...io.outputs_on.map(n => n + 1));
  $("outputs").replaceChildren(...Array.from({ length: count }, (_, n) => {
    const b = el("button", "Output " + n + (on.has(n) ? ": on" : ": off"));
    b.dataset.output = n;
    b.addEventListener("click", () => api("/api/outputs/" + n, { on: !on.has(n) }).then(refresh, e => alert(e.message)));
    return b;
  }));
}
function describe(k) {
  if (typeof k === "string") return k;
  const [name, v] = Object.entries(k)[0];
  return name + " " + Object.entries(v).map(([a, b]) => a + "=" + (typeof b === "object" ? JSON.stringify(b) : b)).join(" ");
}
function drawEvents() {
  const q = $("evfilter").value.toLowerCase();
  const shown = events.map(e => new Date(e.time_us / 1000).toLocaleString() + "  " + describe(e.kind))
    .filter(t => t.toLowerCase().includes(q)).slice(-200).reverse();
  $("events").replaceChildren(...shown.map(t => el("li", t)));
}
async function refresh() {
  try {
    draw(await api("/api/dashboard"));
    const fresh = await api("/api/events?since=" + lastEvent);
    if (fresh.length) {
      events = events.concat(fresh).slice(-1000);
      lastEvent = fresh[fresh.length - 1].id;
      drawEvents();
    }
    if (++ticks % 5 === 0) { refreshRecordings(); refreshLogs(); }
    $("updated").textContent = ($("updated").dataset.note || "") + " Updated " + new Date().toLocaleTimeString();
  } catch (e) {
    if (e.status === 401) show("login");
    else $("updated").textContent = "Cannot reach the unit: " + e.message;
  }
}
start();
