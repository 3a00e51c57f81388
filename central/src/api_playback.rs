//! Playback and export of central's store, a stable contract:
//!
//! - `GET /api/units/{unit}/cameras/{camera}/playback.fmp4?start=RFC3339&end=RFC3339` → a
//!   fragmented MP4 (init segment, then a `moof`/`mdat` per GOP), chunked, from the key frame at
//!   or before `start` to `end`; header `X-Convoy-Start` is the wall-clock time (RFC 3339) of
//!   its first frame, at media time 0; `X-Convoy-Mime` the type for `addSourceBuffer`. Holes are
//!   shortened to one second.
//! - `GET /api/units/{unit}/cameras/{camera}/export.mp4?start=…&end=…` → a standard MP4
//!   download of the same frames (`Content-Disposition: attachment`, `X-Convoy-Frames`: how
//!   many); where the codec parameters change, the track goes on under a second sample entry.
//!   Audio central retrieved (AAC or G.711, from units of protocol version 4) goes into an audio
//!   track beside the video (`X-Convoy-Audio-Frames`: how many audio frames; 0 without audio).
//!
//! `from`/`to` are accepted for `start`/`end`. Errors are JSON `{ "error": "…" }` saying what to
//! do: 400 (bad times), 404 (unknown camera, or nothing held at central: retrieve it first),
//! 415 (not H.264), 500.

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use mp4_export::{FragmentWriter, Mp4Writer, Sample};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;

use crate::accounts::Account;
use crate::playback::{PlaybackError, RangeReader, TimedFrame, track_of};
use crate::time::{parse_rfc3339, rfc3339};
use crate::web::{WebState, shares_camera};

/// `?start=…&end=…` (or `from`/`to`).
#[derive(Debug, Deserialize)]
pub struct RangeQuery {
    #[serde(alias = "from")]
    start: String,
    #[serde(alias = "to")]
    end: String,
}

fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

fn refuse_playback(e: PlaybackError) -> Response {
    let status = match &e {
        PlaybackError::NotHeld { .. } => StatusCode::NOT_FOUND,
        PlaybackError::NotH264 { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        PlaybackError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    refuse(status, e.to_string())
}

/// Checks the range and the camera, then opens the range in central's store.
async fn open(
    state: &WebState,
    unit: &str,
    camera: &str,
    q: &RangeQuery,
) -> Result<(RangeReader, Vec<TimedFrame>), Response> {
    let start = parse_rfc3339(&q.start).map_err(|e| refuse(StatusCode::BAD_REQUEST, e))?;
    let end = parse_rfc3339(&q.end).map_err(|e| refuse(StatusCode::BAD_REQUEST, e))?;
    if end <= start {
        return Err(refuse(StatusCode::BAD_REQUEST, "end must be after start"));
    }
    match shares_camera(state, unit, camera).await {
        Ok(true) => {}
        Ok(false) => {
            return Err(refuse(StatusCode::NOT_FOUND, format!("no unit {unit:?} with a shared camera {camera:?}")));
        }
        Err(e) => return Err(refuse(StatusCode::INTERNAL_SERVER_ERROR, e)),
    }
    let dir = state.hub.store().dir().to_owned();
    let (unit, camera) = (unit.to_owned(), camera.to_owned());
    let opened = tokio::task::spawn_blocking(move || RangeReader::open(&dir, &unit, &camera, start, end))
        .await
        .map_err(|e| refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let (reader, first) = opened.map_err(refuse_playback)?;
    if let Some(f) = first.first() {
        track_of(&f.frame).map_err(refuse_playback)?;
    }
    Ok((reader, first))
}

/// A response body fed by a blocking producer through a small channel (backpressure: the
/// producer waits while the client is slow).
fn channel_body() -> (mpsc::Sender<Result<Bytes, std::io::Error>>, Body) {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let stream = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    (tx, Body::from_stream(stream))
}

/// `GET /api/units/{unit}/cameras/{camera}/playback.fmp4`.
pub async fn playback(
    State(state): State<WebState>,
    Extension(who): Extension<Account>,
    Path((unit, camera)): Path<(String, String)>,
    Query(q): Query<RangeQuery>,
) -> Response {
    let (reader, first) = match open(&state, &unit, &camera, &q).await {
        Ok(r) => r,
        Err(refusal) => return refusal,
    };
    state.auth.record_about(&who, "playback", &unit, &camera, format!("{} to {}", q.start, q.end)).await;
    let start = first.first().map(|f| rfc3339(f.frame.frame.wall_clock_us)).unwrap_or_default();
    let mime = first
        .first()
        .and_then(|f| f.frame.parameters.as_ref())
        .map(|p| format!("video/mp4; codecs=\"{}\"", p.rfc6381_codec))
        .unwrap_or_default();
    let (tx, body) = channel_body();
    tokio::task::spawn_blocking(move || {
        if let Err(e) = stream_fmp4(reader, first, &tx) {
            tracing::warn!("playback of {unit}/{camera}: {e}");
            let _ = tx.blocking_send(Err(std::io::Error::other(e)));
        }
    });
    (
        [(header::CONTENT_TYPE, "video/mp4"), (header::CACHE_CONTROL, "no-store")],
        [("x-convoy-start", start), ("x-convoy-mime", mime)],
        body,
    )
        .into_response()
}

/// Writes the range as fMP4 into `tx`: a new init segment whenever the parameters change.
fn stream_fmp4(
    mut reader: RangeReader,
    mut frames: Vec<TimedFrame>,
    tx: &mpsc::Sender<Result<Bytes, std::io::Error>>,
) -> Result<(), String> {
    let send = |bytes: Vec<u8>| tx.blocking_send(Ok(Bytes::from(bytes))).map_err(|_| "the viewer went away".to_owned());
    let mut writer: Option<FragmentWriter> = None;
    while !frames.is_empty() {
        for f in frames {
            if let Some(track) = track_of(&f.frame).map_err(|e| e.to_string())? {
                match &mut writer {
                    Some(w) if w.check_parameters(&track).is_ok() => {}
                    Some(w) => {
                        let (last, init) = w.restart(track).map_err(|e| e.to_string())?;
                        if let Some(last) = last {
                            send(last)?;
                        }
                        send(init)?;
                    }
                    None => {
                        let w = FragmentWriter::new(track).map_err(|e| e.to_string())?;
                        send(w.init_segment().map_err(|e| e.to_string())?)?;
                        writer = Some(w);
                    }
                }
            }
            let Some(w) = &mut writer else { continue };
            let sample = Sample { pts: f.ticks, keyframe: f.frame.frame.keyframe, data: &f.frame.frame.data };
            match w.push(sample) {
                Ok(Some(fragment)) => send(fragment)?,
                Ok(None) => {}
                Err(e) if e.is_rejection() => tracing::debug!("playback skips a frame: {e}"),
                Err(e) => return Err(e.to_string()),
            }
        }
        frames = reader.next_window().map_err(|e| e.to_string())?;
    }
    if let Some(last) = writer.as_mut().map(FragmentWriter::flush).transpose().map_err(|e| e.to_string())?.flatten() {
        send(last)?;
    }
    Ok(())
}

/// `GET /api/units/{unit}/cameras/{camera}/export.mp4`.
pub async fn export(
    State(state): State<WebState>,
    Extension(who): Extension<Account>,
    Path((unit, camera)): Path<(String, String)>,
    Query(q): Query<RangeQuery>,
) -> Response {
    let (reader, first) = match open(&state, &unit, &camera, &q).await {
        Ok(r) => r,
        Err(refusal) => return refusal,
    };
    state.auth.record_about(&who, "export", &unit, &camera, format!("{} to {}", q.start, q.end)).await;
    let stamp = first.first().map(|f| rfc3339(f.frame.frame.wall_clock_us)).unwrap_or_default();
    let name = format!("{unit}-{camera}-{stamp}.mp4").replace([':', '/', '"', '\\'], "-");
    let audio = crate::export_audio::ExportAudio::new(state.hub.store().dir().to_owned(), &unit, &camera);
    let written = tokio::task::spawn_blocking(move || write_export(reader, first, audio)).await;
    let (file, summary) = match written {
        Ok(Ok(w)) => w,
        Ok(Err(e)) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, e),
        Err(e) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let length = summary.bytes;
    let (tx, body) = channel_body();
    tokio::task::spawn_blocking(move || send_file(file, &tx));
    (
        [
            (header::CONTENT_TYPE, "video/mp4".to_owned()),
            (header::CONTENT_LENGTH, length.to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
        ],
        [
            ("x-convoy-frames", summary.samples.to_string()),
            ("x-convoy-audio-frames", summary.audio_samples.to_string()),
        ],
        body,
    )
        .into_response()
}

/// Writes the range as a progressive MP4 into an unnamed temporary file (an MP4's index comes
/// after its media, so it is finished before the download starts). Where the codec parameters
/// change (a camera that changed its resolution), the track goes on under a second sample entry
/// ([`Mp4Writer::change_parameters`]), so the export covers the whole range. Each window's
/// audio follows its video in the file.
fn write_export(
    mut reader: RangeReader,
    mut frames: Vec<TimedFrame>,
    mut audio: crate::export_audio::ExportAudio,
) -> Result<(std::fs::File, mp4_export::ExportSummary), String> {
    use std::io::{Seek, SeekFrom};
    let mut file = tempfile::tempfile().map_err(|e| format!("cannot make a temporary file for the export: {e}"))?;
    let mut out = std::io::BufWriter::new(&mut file);
    let mut writer: Option<Mp4Writer<&mut std::io::BufWriter<&mut std::fs::File>>> = None;
    'read: while !frames.is_empty() {
        for f in &frames {
            if let Some(track) = track_of(&f.frame).map_err(|e| e.to_string())? {
                match &mut writer {
                    Some(w) if w.check_parameters(&track).is_err() => {
                        let (width, height) = (track.width, track.height);
                        w.change_parameters(track)
                            .map_err(|e| format!("the camera's parameters changed to {width}x{height}: {e}"))?;
                    }
                    Some(_) => {}
                    None => writer = Some(Mp4Writer::new(&mut out, track).map_err(|e| e.to_string())?),
                }
            }
            let Some(w) = &mut writer else { continue };
            match w.push(Sample { pts: f.ticks, keyframe: f.frame.frame.keyframe, data: &f.frame.frame.data }) {
                Ok(()) => {}
                Err(mp4_export::Mp4Error::ParametersChanged(_)) => break 'read,
                Err(e) if e.is_rejection() => tracing::debug!("export skips a frame: {e}"),
                Err(e) => return Err(e.to_string()),
            }
        }
        if let Some(w) = &mut writer {
            audio.window(w, &frames).map_err(|e| e.to_string())?;
        }
        frames = reader.next_window().map_err(|e| e.to_string())?;
    }
    let summary = writer.ok_or("no frame with codec parameters in the range")?.finish().map_err(|e| e.to_string())?;
    drop(out);
    file.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
    Ok((file, summary))
}

/// Streams a file into a response body in 256 KiB pieces.
fn send_file(mut file: std::fs::File, tx: &mpsc::Sender<Result<Bytes, std::io::Error>>) {
    use std::io::Read;
    loop {
        let mut buf = vec![0u8; 256 * 1024];
        let item = match file.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                buf.truncate(n);
                Ok(Bytes::from(buf))
            }
            Err(e) => Err(e),
        };
        let failed = item.is_err();
        if tx.blocking_send(item).is_err() || failed {
            return;
        }
    }
}
