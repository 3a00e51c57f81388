// Convoy's live player, shared by central's operator page and the unit's technician page
// (crate live-view): fragmented MP4 over a WebSocket into Media Source Extensions.
"use strict";

// What to say instead of a picture when the browser cannot play the camera's codec (an RFC 6381
// codec or a whole MIME type). A browser without H.264 is told apart: Firefox on Linux decodes
// it with the system's FFmpeg (libavcodec) and has none when that is not installed.
const cannotPlay = codec => /avc[13]/.test(codec)
  ? `This browser cannot play H.264 (${codec}): it has no H.264 decoder. ` +
    "Firefox on Linux uses the system's FFmpeg libraries (libavcodec) for it."
  : `This browser cannot play ${/hvc1|hev1/.test(codec) ? "H.265" : codec} (${codec}). ` +
    "Give the camera an H.264 stream (e.g. its sub stream) to watch it here.";

// Appends fMP4 segments to a <video>, in order.
class MsePlayer {
  constructor(video) {
    this.video = video;
    this.queue = [];
    this.sb = null;
    this.mime = null;
    this.ms = new MediaSource();
    this.opened = new Promise(resolve => this.ms.addEventListener("sourceopen", resolve, { once: true }));
    video.src = URL.createObjectURL(this.ms);
  }
  async setType(mime) {
    await this.opened;
    if (!this.sb) {
      this.sb = this.ms.addSourceBuffer(mime);
      this.sb.addEventListener("updateend", () => this.pump());
    } else if (mime !== this.mime && this.sb.changeType) {
      this.sb.changeType(mime);
    }
    this.mime = mime;
  }
  append(bytes) { this.queue.push(bytes); this.pump(); }
  pump() {
    if (!this.sb || this.sb.updating || this.ms.readyState !== "open") return;
    if (this.afterAppend) this.afterAppend();
    if (this.sb.updating) return;
    const next = this.queue.shift();
    if (next) {
      try { this.sb.appendBuffer(next); } catch (e) { this.onError && this.onError(e); }
    }
  }
  bufferedEnd() { const b = this.video.buffered; return b.length ? b.end(b.length - 1) : 0; }
  close() {
    this.queue = [];
    try { if (this.ms.readyState === "open") this.ms.endOfStream(); } catch (_) { /* already ended */ }
    URL.revokeObjectURL(this.video.src);
    this.video.removeAttribute("src");
    this.video.load();
  }
}

// A camera's live video from the WebSocket at `path` (same host), kept at the live edge;
// `note` shows the format or what went wrong. `onFail` is called when it cannot play.
// `onUnplayable(codec)`, if set, is asked first when the browser cannot play the codec: when it
// returns true (the page plays something else, e.g. the camera's H.264 sub stream) this
// player just stops.
class LivePlayer {
  constructor(path, video, note) {
    this.video = video; this.note = note;
    this.mse = new MsePlayer(video);
    this.mse.onError = e => this.fail("Cannot play this stream: " + e.message);
    this.mse.afterAppend = () => this.keepLive();
    this.ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${path}`);
    this.ws.binaryType = "arraybuffer";
    this.ws.onmessage = ev => this.message(ev.data);
    this.ws.onclose = () => { if (!this.failed && !this.stopped) this.note.textContent = "The live stream ended (unit or camera gone)."; };
    this.note.textContent = "Waiting for the video…";
  }
  message(data) {
    if (typeof data !== "string") { if (!this.failed) this.mse.append(data); return; }
    const m = JSON.parse(data);
    if (m.type === "init") {
      if (!window.MediaSource || !MediaSource.isTypeSupported(m.mime)) return this.unplayable(m.codec);
      this.mse.setType(m.mime).then(() => this.mse.pump());
      this.note.textContent = `${m.width}×${m.height} ${m.codec}`;
    } else if (m.type === "unsupported") {
      if (m.codec) this.unplayable(m.codec); else this.fail(m.message);
    }
  }
  unplayable(codec) {
    if (this.onUnplayable && this.onUnplayable(codec)) { this.failed = true; this.stop(); return; }
    this.fail(cannotPlay(codec));
  }
  keepLive() {
    const v = this.video, end = this.mse.bufferedEnd(), b = v.buffered;
    if (!b.length) return;
    if (v.paused && v.readyState >= 2) v.play().catch(() => {});
    // Jump to the live edge when more than a second behind; keep ~10 s in the buffer.
    const behind = end - v.currentTime;
    if (behind > 1.0) v.currentTime = Math.max(b.start(b.length - 1), end - 0.2);
    // Less behind (a start from a past key frame, a short stall): catch up at 1.5× until near.
    else if (behind > 0.5) v.playbackRate = 1.5;
    else if (behind < 0.25) v.playbackRate = 1.0;
    if (end - b.start(0) > 15 && !this.mse.sb.updating) this.mse.sb.remove(0, end - 10);
  }
  fail(text) {
    this.failed = true;
    this.stop();
    // Say it where the picture would be, not as a black box.
    const screen = document.createElement("div");
    screen.textContent = text;
    screen.className = "screen unsupported";
    this.video.replaceWith(screen);
    this.note.textContent = ""; this.note.classList.remove("error");
    if (this.onFail) this.onFail();
  }
  stop() { this.stopped = true; try { this.ws.close(); } catch (_) { /* closed */ } this.mse.close(); }
}

// Saves the picture `video` shows now as a PNG download named `name` (drawn in the browser:
// the unit decodes nothing). Returns false while there is no picture yet.
function snapshotPng(video, name) {
  if (!video.videoWidth || video.readyState < 2) return false;
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth; canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0);
  canvas.toBlob(blob => {
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob); a.download = name;
    document.body.append(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 60000);
  }, "image/png");
  return true;
}
