// Convoy central's operator page: plain JavaScript over the REST API (/api/openapi.json).
"use strict";

const $ = id => document.getElementById(id);
function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}
const enc = encodeURIComponent;
const camPath = (unit, camera) => `/api/units/${enc(unit)}/cameras/${enc(camera)}`;
const iso = ms => new Date(ms).toISOString();
const sleep = ms => new Promise(r => setTimeout(r, ms));
async function errorText(r) {
  try { return (await r.json()).error || r.statusText; } catch (_) { return `${r.status} ${r.statusText}`; }
}
// cannotPlay, MsePlayer and LivePlayer come from /live-player.js (crate live-view), shared
// with the unit's page.

// ---- Fleet overview and camera grid. ----
const tiles = new Map(); // "unit/camera" → { tile element, live }
let selected = null;     // { unit, camera }

function since(secs) {
  if (!secs) return "never";
  return new Date(secs * 1000).toLocaleString();
}

function renderUnits(units) {
  if (!units.length) return;
  const table = el("table");
  const head = el("tr");
  for (const t of ["Unit", "Link", "Storage", "Cameras", "Live now", "Viewers", "Retrievals in progress", "Settings"]) head.append(el("th", t));
  table.append(head);
  for (const u of units) {
    const tr = el("tr"); tr.dataset.unit = u.id;
    const link = el("td");
    link.append(el("span", u.connected ? "connected" : "offline", "badge " + (u.connected ? "up" : "down")),
      el("span", u.connected ? ` since ${since(u.last_hello)}` : ` last connected ${since(u.last_hello)}`, "muted"));
    if (u.link) link.append(el("span", ` ${u.link.kind}${u.link.metered ? " (metered)" : ""}`, "linktype"));
    const named = el("td", u.name && u.name !== u.id ? `${u.name} (${u.id})` : u.id);
    named.className = "unit-name";
    tr.append(named, link, storageCell(u.storage), el("td", u.cameras.length, "num"),
      el("td", u.cameras.filter(c => c.live).length, "num"),
      el("td", u.cameras.reduce((n, c) => n + c.viewers, 0), "num"),
      el("td", pendingRetrievals.get(u.id) || 0, "num pending"),
      el("td", u.settings_note ? u.settings_note : `settings: ${u.settings_up_to_date ? "up to date" : "pending"}`,
        "settings " + (u.settings_up_to_date ? "up" : "pending")));
    table.append(tr);
  }
  $("units").replaceChildren(table);
}

// A unit's storage health: ok, warning or fault (the unit's message on hover and beside it),
// and how far back its recordings reach.
function storageCell(st) {
  const td = el("td", undefined, "storage");
  if (!st) return td;
  const badge = el("span", st.state, "badge " + (st.state === "ok" ? "up" : st.state === "fault" ? "down" : "warn"));
  if (st.reason) badge.title = st.reason + (st.since ? ` (since ${new Date(st.since).toLocaleString()})` : "");
  td.append(badge);
  if (st.reason) td.append(el("span", ` ${st.reason}`, "reason"));
  td.append(el("span", st.oldest ? ` recordings from ${new Date(st.oldest).toLocaleString()}` : " no catalog yet", "muted oldest"));
  return td;
}

function renderGrid(units) {
  for (const u of units) for (const c of u.cameras) {
    const key = `${u.id}/${c.id}`;
    let t = tiles.get(key);
    if (!t) {
      const tile = el("div", undefined, "tile");
      tile.dataset.unit = u.id; tile.dataset.camera = c.id;
      const h = el("h3"); const name = el("span"); const state = el("span", "", "badge");
      h.append(name, state);
      const screen = el("div", "Press Live to watch", "screen");
      const note = el("div", "", "note muted");
      const stream = el("div", "", "note muted stream");
      const live = el("button", "Live"); live.className = "live";
      const rec = el("button", "Recordings"); rec.className = "recordings";
      const buttons = el("div", undefined, "row"); buttons.append(live, rec);
      tile.append(h, screen, note, stream, buttons);
      $("grid").append(tile);
      t = { tile, name, state, screen, note, stream, live: null, button: live };
      live.onclick = () => toggleLive(u.id, c.id, t);
      rec.onclick = () => selectCamera(u.id, c.id, c.name);
      tiles.set(key, t);
    }
    t.sub = c.sub_stream || null;
    t.name.textContent = `${u.name || u.id} · ${c.name}`;
    t.state.textContent = c.live ? "streaming" : (c.state || (u.connected ? "idle" : "offline"));
    t.state.className = "badge " + (c.live ? "up" : c.state === "down" ? "down" : "idle");
    t.state.title = c.reason || "";
  }
}

function toggleLive(unit, camera, t) {
  if (t.live) {
    t.live.stop(); t.live = null;
    const screen = el("div", "Press Live to watch", "screen");
    t.tile.querySelector(".screen, video").replaceWith(screen);
    t.note.textContent = ""; t.note.classList.remove("error"); t.stream.textContent = "";
    t.button.textContent = "Live";
    return;
  }
  startLive(unit, camera, t, null);
  t.button.textContent = "Stop";
}

// Plays `camera` live in tile `t`. A camera whose codec this browser cannot play (H.265) and
// whose unit shares its sub stream plays that instead (`mainCodec`: the codec it replaces).
function startLive(unit, camera, t, mainCodec) {
  const video = el("video"); video.muted = true; video.autoplay = true; video.playsInline = true;
  t.tile.querySelector(".screen, video").replaceWith(video);
  t.note.classList.remove("error");
  t.tile.dataset.stream = mainCodec ? "sub" : "main";
  t.stream.textContent = mainCodec ? `Sub stream: this browser cannot play the main stream (${mainCodec}).` : "";
  t.live = new LivePlayer(`${camPath(unit, camera)}/live.fmp4`, video, t.note);
  t.live.onFail = () => { t.live = null; t.button.textContent = "Live"; };
  const sub = t.sub;
  if (!mainCodec && sub) t.live.onUnplayable = codec => { startLive(unit, sub, t, codec); return true; };
}

async function refreshFleet() {
  try {
    const r = await fetch("/api/units", { cache: "no-store" });
    if (r.status === 401) { showLogin(); return; }
    if (!r.ok) throw new Error(await errorText(r));
    const units = await r.json();
    renderUnits(units); renderGrid(units);
    $("updated").textContent = "Updated " + new Date().toLocaleTimeString();
  } catch (e) {
    $("updated").textContent = "Cannot reach central: " + e.message;
  }
}

const pendingRetrievals = new Map(); // unit → retrievals queued or running

async function refreshRetrievals() {
  try {
    const r = await fetch("/api/retrievals", { cache: "no-store" });
    if (!r.ok) return;
    pendingRetrievals.clear();
    for (const x of await r.json()) {
      if (x.state === "queued" || x.state === "running") pendingRetrievals.set(x.unit, (pendingRetrievals.get(x.unit) || 0) + 1);
    }
  } catch (_) { /* shown by the fleet refresh */ }
}

// Alarms: state, who changed it and when; operators acknowledge and close them here.
async function refreshAlarms() {
  try {
    const r = await fetch("/api/alarms", { cache: "no-store" });
    if (!r.ok) return;
    const alarms = await r.json();
    if (!alarms.length) return;
    const operator = me && ROLES.indexOf(me.role) >= ROLES.indexOf("operator");
    // Comments being typed survive the refresh that a new alarm brings.
    const typed = new Map();
    let focused = null;
    for (const i of document.querySelectorAll("#alarms input.comment")) {
      const tr = i.closest("tr"), key = `${tr.dataset.unit}/${tr.dataset.event}`;
      if (i.value) typed.set(key, i.value);
      if (document.activeElement === i) focused = key;
    }
    const table = el("table");
    const head = el("tr");
    for (const t of ["When", "Unit", "What", "Cameras", "State", "By", "Changed", "Comment", ""]) head.append(el("th", t));
    table.append(head);
    for (const a of alarms) {
      const tr = el("tr"); tr.dataset.unit = a.unit; tr.dataset.event = a.event_id; tr.dataset.state = a.state;
      const state = el("td", a.state.replace("_", " "), "state");
      const actions = el("td", undefined, "actions");
      if (operator && a.state !== "closed") {
        const comment = el("input", undefined, "comment");
        comment.placeholder = "comment"; comment.maxLength = 1000; comment.size = 16;
        comment.value = typed.get(`${a.unit}/${a.event_id}`) || "";
        actions.append(comment);
        if (a.state === "new") actions.append(alarmButton(a, "in_progress", "Acknowledge", "ack", comment));
        actions.append(alarmButton(a, "closed", "Close", "close", comment));
      }
      tr.append(el("td", new Date(a.time).toLocaleString()), el("td", a.unit), el("td", alarmWhat(a.kind)),
        el("td", (a.cameras || []).join(", ")), state, el("td", a.changed_by || "", "by"),
        el("td", a.changed_at ? new Date(a.changed_at).toLocaleString() : "", "changed"), el("td", a.comment || "", "said"), actions);
      tr.children[2].title = JSON.stringify(a.kind);
      table.append(tr);
    }
    $("alarms").replaceChildren(table);
    if (focused) for (const tr of table.querySelectorAll("tr")) {
      if (`${tr.dataset.unit}/${tr.dataset.event}` === focused) tr.querySelector("input.comment")?.focus();
    }
  } catch (_) { /* shown by the fleet refresh */ }
}

// An event's kind in a few words: "Generic: rule:panic", "DigitalInput 1 on", "Motion".
function alarmWhat(kind) {
  if (!kind || typeof kind !== "object") return String(kind);
  const name = Object.keys(kind)[0] || JSON.stringify(kind), v = kind[name] || {};
  if (v.name !== undefined) return `${name}: ${v.name}`;
  if (v.input !== undefined) return `${name} ${v.input} ${v.active ? "on" : "off"}`;
  return name;
}

// A button that moves alarm `a` to `state`, with what is typed in `comment` (if anything).
function alarmButton(a, state, label, cls, comment) {
  const b = el("button", label, cls);
  b.onclick = async () => {
    b.disabled = true;
    const body = { state };
    if (comment && comment.value.trim()) body.comment = comment.value.trim();
    const r = await fetch(`/api/units/${enc(a.unit)}/alarms/${a.event_id}`, {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
    }).catch(e => ({ ok: false, statusText: e.message, json: async () => ({}) }));
    if (!r.ok) { b.disabled = false; b.title = await errorText(r); b.classList.add("error"); return; }
    if (comment) comment.value = "";
    refreshAlarms(); refreshAudit();
  };
  return b;
}

// ---- Timeline, retrieval, playback and export of one camera. ----
let view = { start: 0, end: 0 };
let drag = null;

function selectCamera(unit, camera, name) {
  selected = { unit, camera };
  $("detail").hidden = false;
  $("detail-title").textContent = `${unit} · ${name || camera}`;
  $("from").value = ""; $("to").value = "";
  $("selection").hidden = true;
  refreshTimeline(); refreshLocks();
  $("detail").scrollIntoView({ behavior: "smooth" });
}

async function refreshTimeline() {
  if (!selected) return;
  const now = Date.now();
  const next = { start: now - Number($("span").value) * 1000, end: now };
  const r = await fetch(`${camPath(selected.unit, selected.camera)}/timeline?start=${iso(next.start)}&end=${iso(next.end)}`, { cache: "no-store" });
  if (!r.ok) { status(await errorText(r), true); return; }
  const t = await r.json();
  view = next; // the bar and the times it maps to change together
  const bar = $("timeline");
  bar.dataset.start = String(view.start); bar.dataset.end = String(view.end);
  bar.querySelectorAll(".seg").forEach(s => s.remove());
  const width = view.end - view.start;
  for (const kind of ["missing", "remote_only", "central"]) {
    for (const [s, e] of t[kind]) {
      const a = Date.parse(s), b = Date.parse(e);
      const seg = el("div", undefined, "seg " + kind);
      seg.style.left = `${((a - view.start) / width) * 100}%`;
      seg.style.width = `${Math.max(((b - a) / width) * 100, 0.15)}%`;
      seg.title = `${kind.replace("_", " ")}: ${new Date(a).toLocaleTimeString()} – ${new Date(b).toLocaleTimeString()}`;
      bar.insertBefore(seg, $("selection"));
    }
  }
  $("axis-start").textContent = new Date(view.start).toLocaleString();
  $("axis-end").textContent = "now";
  showSelection();
}

function timeAt(ev) {
  const r = $("timeline").getBoundingClientRect();
  const f = Math.min(Math.max((ev.clientX - r.left) / r.width, 0), 1);
  return view.start + f * (view.end - view.start);
}

function showSelection() {
  const a = Date.parse($("from").value), b = Date.parse($("to").value);
  const s = $("selection");
  if (!(a < b)) { s.hidden = true; return; }
  const width = view.end - view.start;
  s.hidden = false;
  s.style.left = `${((a - view.start) / width) * 100}%`;
  s.style.width = `${((b - a) / width) * 100}%`;
}

function status(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "muted";
}

function range() {
  const a = Date.parse($("from").value), b = Date.parse($("to").value);
  if (!(a < b)) { status("Select a range on the timeline (or type From and to) first.", true); return null; }
  return { start: iso(a), end: iso(b) };
}

async function retrieve() {
  const r = range();
  if (!r || !selected) return;
  const res = await fetch(`${camPath(selected.unit, selected.camera)}/retrieve`, {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(r),
  });
  if (!res.ok) { status(await errorText(res), true); return; }
  const { id } = await res.json();
  const bar = $("progress");
  bar.hidden = false; bar.value = 0;
  for (;;) {
    const s = await fetch(`/api/retrievals/${id}`, { cache: "no-store" }).then(x => x.json());
    bar.max = Math.max(s.bytes_total, 1); bar.value = s.bytes_done;
    const pct = s.bytes_total ? Math.round((100 * s.bytes_done) / s.bytes_total) : 0;
    status(`Retrieval ${id}: ${s.state}, ${pct}% (${(s.bytes_done / 1e6).toFixed(1)} of ${(s.bytes_total / 1e6).toFixed(1)} MB)`);
    $("status").dataset.retrieval = s.state;
    if (s.state === "done" || s.state === "failed") break;
    await sleep(500);
    refreshTimeline();
  }
  refreshTimeline();
}

async function lockEvidence() {
  const r = range();
  if (!r || !selected) return;
  const res = await fetch(`${camPath(selected.unit, selected.camera)}/lock`, {
    method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ ...r, reason: $("lock-reason").value }),
  });
  if (!res.ok) { status(await errorText(res), true); return; }
  const l = await res.json();
  status(`Evidence lock ${l.id}: ${l.central.state} at central, ${l.unit_store.state} on the unit`);
  refreshLocks();
}

// The selected camera's evidence locks and where each stands.
async function refreshLocks() {
  if (!selected) return;
  const r = await fetch(`/api/locks?unit=${enc(selected.unit)}&limit=50`, { cache: "no-store" });
  if (!r.ok) return;
  const locks = (await r.json()).locks.filter(l => l.camera === selected.camera);
  const box = $("locks");
  box.replaceChildren();
  for (const l of locks) {
    const when = `${new Date(Date.parse(l.start)).toLocaleString()} – ${new Date(Date.parse(l.end)).toLocaleTimeString()}`;
    const line = el("p", `🔒 ${when} “${l.reason}”: central ${l.central.state}, unit ${l.unit_store.state}` +
      (l.unit_store.error ? ` (${l.unit_store.error})` : "") + `, kept until ${new Date(Date.parse(l.expires)).toLocaleDateString()}`,
      "lock " + l.unit_store.state);
    line.dataset.lock = String(l.id);
    box.append(line);
  }
}

let playback = null;

// The default rate too: loading a new source (a seek) resets the rate to it.
function setSpeed() {
  const v = $("player"), rate = Number($("speed").value);
  v.defaultPlaybackRate = rate; v.playbackRate = rate;
}

async function play(fromMs) {
  if (!selected) return;
  const r = range();
  if (!r) return;
  const start = fromMs !== undefined ? iso(fromMs) : r.start;
  if (playback) playback.stop();
  const video = $("player");
  const url = `${camPath(selected.unit, selected.camera)}/playback.fmp4?start=${start}&end=${r.end}`;
  const res = await fetch(url);
  if (!res.ok) { status(await errorText(res), true); return; }
  const mime = res.headers.get("x-convoy-mime");
  if (!window.MediaSource || !MediaSource.isTypeSupported(mime)) { status(cannotPlay(mime || "this codec"), true); return; }
  const origin = Date.parse(res.headers.get("x-convoy-start"));
  const mse = new MsePlayer(video);
  // Drop what was watched more than 30 s ago, so long playbacks stay within the buffer quota.
  mse.afterAppend = () => {
    const b = video.buffered;
    if (b.length && video.currentTime - b.start(0) > 60) mse.sb.remove(0, video.currentTime - 30);
  };
  const reader = res.body.getReader();
  // Cancelling the reader closes the connection, which ends the server's stream too.
  const me = { stopped: false, stop() { this.stopped = true; reader.cancel().catch(() => {}); mse.close(); } };
  playback = me;
  await mse.setType(mime);
  setSpeed();
  video.dataset.origin = String(origin);
  video.dataset.asked = String(Date.parse(start));
  status(`Playing from ${new Date(origin).toLocaleTimeString()} (stored at central)`);
  video.play().catch(() => {});
  for (;;) {
    const { done, value } = await reader.read().catch(() => ({ done: true }));
    if (done || me.stopped) break;
    mse.append(value);
    // Stay at most a minute ahead of the picture.
    while (!me.stopped && mse.bufferedEnd() - video.currentTime > 60) await sleep(500);
  }
  if (!me.stopped) {
    const finish = () => { if (mse.ms.readyState === "open" && !mse.sb.updating && !mse.queue.length) mse.ms.endOfStream(); else setTimeout(finish, 100); };
    finish();
  }
}

async function exportMp4() {
  const r = range();
  if (!r || !selected) return;
  const url = `${camPath(selected.unit, selected.camera)}/export.mp4?start=${r.start}&end=${r.end}`;
  $("export").dataset.url = url;
  status("Exporting…");
  const res = await fetch(url);
  if (!res.ok) { status(await errorText(res), true); return; }
  const name = (/filename="([^"]+)"/.exec(res.headers.get("content-disposition") || "") || [])[1] || "export.mp4";
  const frames = res.headers.get("x-convoy-frames");
  const blob = await res.blob();
  const a = el("a"); a.href = URL.createObjectURL(blob); a.download = name;
  document.body.append(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 60000);
  status(`Exported ${name}: ${frames} frames, ${(blob.size / 1e6).toFixed(1)} MB`);
  $("status").dataset.exported = frames;
}

function wire() {
  const bar = $("timeline");
  bar.addEventListener("mousedown", ev => { drag = { from: timeAt(ev), moved: false }; });
  window.addEventListener("mousemove", ev => {
    if (!drag) return;
    const t = timeAt(ev);
    if (Math.abs(t - drag.from) > (view.end - view.start) / 500) drag.moved = true;
    if (drag.moved) {
      $("from").value = iso(Math.min(drag.from, t)); $("to").value = iso(Math.max(drag.from, t));
      showSelection();
    }
  });
  window.addEventListener("mouseup", ev => {
    if (!drag) return;
    const clicked = !drag.moved, at = drag.from;
    drag = null;
    // A click seeks: play from there (to the selection's end, or the view's end).
    if (clicked) {
      if (!(Date.parse($("to").value) > at)) $("to").value = iso(view.end);
      if (!(Date.parse($("from").value) <= at)) $("from").value = iso(at);
      showSelection();
      play(at);
    }
  });
  for (const id of ["from", "to"]) $(id).addEventListener("change", showSelection);
  $("span").addEventListener("change", refreshTimeline);
  $("retrieve").onclick = retrieve;
  $("play").onclick = () => play();
  $("export").onclick = exportMp4;
  $("lock").onclick = lockEvidence;
  $("speed").addEventListener("change", setSpeed);
  $("player").addEventListener("timeupdate", () => {
    const v = $("player"), origin = Number(v.dataset.origin);
    if (!origin) return;
    const at = origin + v.currentTime * 1000;
    $("player-time").textContent = `At ${new Date(at).toLocaleTimeString()} · speed ${v.playbackRate}×`;
    const p = $("playhead"), width = view.end - view.start;
    p.hidden = !(at >= view.start && at <= view.end);
    p.style.left = `${((at - view.start) / width) * 100}%`;
  });
}

// ---- Login, the user's role, and the audit log. ----
const ROLES = ["viewer", "operator", "administrator"];
let me = null;      // { name, role, units }
let started = false;

function showLogin() {
  me = null;
  $("app").hidden = true; $("logout").hidden = true; $("whoami").textContent = "";
  $("login").hidden = false;
  // Firefox restores form fields on the reload after a logout: start empty.
  $("login-name").value = ""; $("login-password").value = "";
  $("login-name").focus();
}

// Controls the role cannot use are hidden (central refuses them anyway).
function showApp() {
  $("login").hidden = true; $("app").hidden = false; $("logout").hidden = false;
  const units = me.units ? ` · units ${me.units.join(", ")}` : "";
  $("whoami").textContent = `${me.name} · ${me.role}${units}`;
  for (const e of document.querySelectorAll("[data-role]")) {
    e.hidden = ROLES.indexOf(me.role) < ROLES.indexOf(e.dataset.role);
  }
  if (!started) { started = true; begin(); }
  refreshFleet(); refreshAlarms(); refreshRetrievals(); refreshAudit(); refreshUsers(); refreshProfiles();
}

async function logIn(ev) {
  ev.preventDefault();
  $("login-error").textContent = "";
  try {
    const r = await fetch("/api/login", {
      method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: $("login-name").value, password: $("login-password").value }),
    });
    if (!r.ok) { $("login-error").textContent = await errorText(r); return; }
    me = await r.json();
    $("login-password").value = "";
    showApp();
  } catch (e) {
    $("login-error").textContent = "Cannot reach central: " + e.message;
  }
}

async function logOut() {
  await fetch("/api/logout", { method: "POST" }).catch(() => {});
  location.reload();
}

async function refreshAudit() {
  if (!me || me.role !== "administrator") return;
  try {
    const r = await fetch(`/api/audit?limit=200&q=${enc($("audit-q").value)}`, { cache: "no-store" });
    if (!r.ok) return;
    const entries = await r.json();
    if (!entries.length) { $("audit").replaceChildren(el("p", "No entry matches.", "muted")); return; }
    const table = el("table");
    const head = el("tr");
    for (const t of ["When", "User", "Action", "Unit", "Camera", "Detail", "From"]) head.append(el("th", t));
    table.append(head);
    for (const e of entries) {
      const tr = el("tr"); tr.dataset.action = e.action;
      tr.append(el("td", new Date(e.time).toLocaleString()), el("td", e.user), el("td", e.action.replaceAll("_", " ")),
        el("td", e.unit || ""), el("td", e.camera || ""), el("td", e.detail), el("td", e.client || ""));
      table.append(tr);
    }
    $("audit").replaceChildren(table);
  } catch (_) { /* shown by the fleet refresh */ }
}

// Shows the page if the browser's session is valid, else the login form.
async function refreshUsers() {
  if (!me || me.role !== "administrator") return;
  try {
    const r = await fetch("/api/users", { cache: "no-store" });
    if (!r.ok) return;
    const table = el("table");
    const head = el("tr");
    for (const t of ["Name", "Role", "Units", ""]) head.append(el("th", t));
    table.append(head);
    for (const u of await r.json()) {
      const tr = el("tr"); tr.dataset.user = u.name;
      const actions = el("td", undefined, "actions");
      actions.append(userButton(u.name, "New token", "token", "POST", "/tokens",
        x => `Token for ${u.name} (shown once; send as Authorization: Bearer): ${x.token}`));
      actions.append(userButton(u.name, "Revoke tokens", "revoke-tokens", "DELETE", "/tokens",
        x => `Revoked ${x.revoked} token(s) of ${u.name}.`));
      if (u.name !== me.name) actions.append(userButton(u.name, "Remove", "remove", "DELETE", "", () => `Removed ${u.name}.`));
      tr.append(el("td", u.name), el("td", u.role), el("td", u.units ? u.units.join(", ") : "all"), actions);
      table.append(tr);
    }
    $("users").replaceChildren(table);
  } catch (_) { /* shown by the fleet refresh */ }
}

// A button on a user's row: calls /api/users/NAME{suffix} and says what happened.
function userButton(name, label, cls, method, suffix, said) {
  const b = el("button", label, cls);
  b.onclick = async () => {
    const s = $("user-status");
    const r = await fetch(`/api/users/${enc(name)}${suffix}`, { method });
    if (!r.ok) { s.textContent = await errorText(r); s.className = "error"; return; }
    s.textContent = said(r.status === 204 ? {} : await r.json()); s.className = "muted";
    refreshUsers(); refreshAudit();
  };
  return b;
}

// Fleet profiles: each as editable JSON, with the units that have it; a unit's assignment.
async function refreshProfiles() {
  if (!me || me.role !== "administrator") return;
  try {
    const r = await fetch("/api/profiles", { cache: "no-store" });
    if (!r.ok) return;
    const { profiles } = await r.json();
    if (!profiles.length) { $("profiles").replaceChildren(el("p", "No profile yet.", "muted")); return; }
    const table = el("table");
    const head = el("tr");
    for (const t of ["Profile", "Camera settings", "Units", ""]) head.append(el("th", t));
    table.append(head);
    for (const p of profiles) {
      const tr = el("tr"); tr.dataset.profile = p.name;
      const edit = el("button", "Edit", "edit");
      edit.onclick = () => { $("profile-name").value = p.name; $("profile-body").value = JSON.stringify({ cameras: p.cameras }, null, 1); };
      const del = el("button", "Delete", "delete");
      del.onclick = async () => {
        const d = await fetch(`/api/profiles/${enc(p.name)}`, { method: "DELETE" });
        profileSaid(d.ok ? `Deleted ${p.name}.` : await errorText(d), !d.ok);
        refreshProfiles(); refreshAudit();
      };
      const actions = el("td", undefined, "actions"); actions.append(edit, del);
      tr.append(el("td", p.name), el("td", JSON.stringify(p.cameras), "json"), el("td", p.units.join(", ")), actions);
      table.append(tr);
    }
    $("profiles").replaceChildren(table);
  } catch (_) { /* shown by the fleet refresh */ }
}

function profileSaid(text, error) {
  $("profile-status").textContent = text; $("profile-status").className = error ? "error" : "muted";
}

function parsed(text, what) {
  try { return JSON.parse(text); } catch (e) { profileSaid(`${what} is not JSON: ${e.message}`, true); return null; }
}

async function saveProfile(ev) {
  ev.preventDefault();
  const name = $("profile-name").value.trim(), body = parsed($("profile-body").value, "The camera settings");
  if (!name || !body) return;
  const r = await fetch(`/api/profiles/${enc(name)}`, { method: "PUT", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  if (!r.ok) { profileSaid(await errorText(r), true); return; }
  const p = await r.json();
  profileSaid(`Saved ${p.name}; ${p.units.length} unit(s) get it when they next connect.`, false);
  refreshProfiles(); refreshFleet(); refreshAudit();
}

async function assignProfile(ev) {
  ev.preventDefault();
  const unit = $("assign-unit").value.trim(), overrides = parsed($("assign-overrides").value || "{}", "The overrides");
  if (!unit || !overrides) return;
  const profile = $("assign-profile").value.trim() || null;
  const r = await fetch(`/api/units/${enc(unit)}/profile`, { method: "PUT", headers: { "content-type": "application/json" }, body: JSON.stringify({ profile, overrides }) });
  if (!r.ok) { profileSaid(await errorText(r), true); return; }
  const s = await r.json();
  profileSaid(s.note ? `${unit}: ${s.note}.` : `${unit}: revision ${s.revision}, ${s.up_to_date ? "up to date" : "pending until the unit applies it (at once if connected, else when it next connects)"}.`, false);
  refreshProfiles(); refreshFleet(); refreshAudit();
}

// Unit administration: a one-time enrollment token for a new unit, or a unit revoked.
async function unitAction(ev, revoke) {
  ev.preventDefault();
  const name = $("unit-name").value.trim(), s = $("unit-status");
  if (!name) return;
  const r = revoke
    ? await fetch(`/api/units/${enc(name)}/revoke`, { method: "POST" })
    : await fetch("/api/units", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ name }) });
  if (!r.ok) { s.textContent = await errorText(r); s.className = "error"; return; }
  const x = await r.json();
  s.className = "muted";
  s.textContent = revoke ? `Unit ${name} revoked: cut off now and refused from now on.`
    : `Enrollment token for ${x.unit} (one use, until ${new Date(x.expires).toLocaleString()}); on the unit run ` +
      `edge enroll --config EDGE.toml --central HOST:PORT --token ${x.token}`;
  s.dataset.token = revoke ? "" : x.token;
  $("unit-name").value = "";
  refreshFleet(); refreshAudit();
}

async function addUser(ev) {
  ev.preventDefault();
  const units = $("user-units").value.split(",").map(u => u.trim()).filter(u => u && u !== "all");
  const body = { name: $("user-name").value, role: $("user-role").value, password: $("user-password").value,
    units: units.length ? units : null };
  const r = await fetch("/api/users", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const s = $("user-status");
  if (!r.ok) { s.textContent = await errorText(r); s.className = "error"; return; }
  s.textContent = `Added ${body.name}.`; s.className = "muted";
  $("user-password").value = ""; $("user-name").value = ""; $("user-units").value = "";
  refreshUsers(); refreshAudit();
}

async function checkSession() {
  try {
    const r = await fetch("/api/me", { cache: "no-store" });
    if (r.status === 401) { showLogin(); return; }
    if (!r.ok) throw new Error(await errorText(r));
    me = await r.json();
    showApp();
  } catch (e) {
    $("updated").textContent = "Cannot reach central: " + e.message;
    setTimeout(checkSession, 2000);
  }
}

// Live updates (/api/stream): refresh the part that changed at once. EventSource reconnects by
// itself; after a reconnect ("ready") everything is reloaded, as events may have been missed.
function listen() {
  const stream = new EventSource("/api/stream");
  stream.addEventListener("ready", () => { $("live-updates").textContent = "live updates on"; refreshAll(); });
  stream.addEventListener("resync", refreshAll);
  stream.addEventListener("alarm", () => { refreshAlarms(); refreshAudit(); });
  stream.addEventListener("unit", refreshFleet);
  stream.addEventListener("retrieval", () => {
    refreshRetrievals().then(refreshFleet);
    if (selected) refreshTimeline();
  });
  stream.onerror = () => { $("live-updates").textContent = "live updates reconnecting"; };
}

function refreshAll() {
  refreshFleet(); refreshAlarms(); refreshRetrievals(); refreshAudit(); refreshUsers(); refreshProfiles();
}

// Starts the page's refreshes, once, after the first login.
function begin() {
  wire();
  listen();
  setInterval(refreshFleet, 1000);
  setInterval(refreshAlarms, 15000); // a fallback: /api/stream says when alarms change
  setInterval(refreshRetrievals, 2000);
  setInterval(refreshAudit, 5000);
  setInterval(() => { if (selected) { refreshTimeline(); refreshLocks(); } }, 5000);
}

$("login-form").addEventListener("submit", logIn);
$("logout").onclick = logOut;
$("user-form").addEventListener("submit", addUser);
$("unit-form").addEventListener("submit", ev => unitAction(ev, false));
$("unit-revoke").onclick = ev => unitAction(ev, true);
$("profile-form").addEventListener("submit", saveProfile);
$("assign-form").addEventListener("submit", assignProfile);
let searchTimer = null;
$("audit-q").addEventListener("input", () => { clearTimeout(searchTimer); searchTimer = setTimeout(refreshAudit, 250); });
checkSession();
