//! One camera's ingest: RTSP over TCP or UDP with `retina`, every frame to the recorder and then
//! the live hub (video only; in that order, so that a live start can read the recorded frames,
//! `live_start.rs`), its AAC or G.711 audio and ONVIF metadata to the recorder (through the same
//! gate, pre-buffer included), reconnecting with backoff whatever the camera does.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use link::backoff::Backoff;
use media_store::{MediaKind, Record, StoredAudioParameters, StoredFrame, StoredParameters};
use protocol::interconnect::{CameraStateKind, MediaFrame, VideoParameters};
use retina::client::Demuxed;
use retina::codec::{CodecItem, ParametersRef, VideoParameters as CameraVideoParameters};
use tokio_util::sync::CancellationToken;

use crate::config::{CameraConfig, RtspTransport};
use crate::events::EventKind;
use crate::first_burst::FirstBurst;
use crate::frame_clock::FrameClock;
use crate::live::LiveHub;
use crate::metadata_ingest::{MetadataGuard, MetadataIngest};
use crate::recorder::RecorderTx;
use crate::recording::CameraRecording;
use crate::recording::motion::{MotionChange, MotionDetector};
use crate::recording::triggers::UNTIL_ENDED;
use crate::rtsp::{self, RtspError};
use crate::status::{AudioJson, UnitStatus};

/// A camera that sends no frame for this long is reconnected.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(10);

/// After a refused login the next attempt waits at least this long: wrong credentials do not
/// fix themselves, and many cameras lock an account after a few failed logins in a row.
pub const AUTH_RETRY_FLOOR: Duration = Duration::from_secs(10);

/// Everything a camera task needs.
pub struct CameraTask {
    /// The camera's configuration.
    pub config: CameraConfig,
    /// Its index in the unit's status.
    pub index: usize,
    /// The unit's status.
    pub status: Arc<UnitStatus>,
    /// Where frames are recorded.
    pub recorder: RecorderTx,
    /// Where frames are published live.
    pub live: Arc<LiveHub>,
    /// Which frames are recorded (mode, schedule, triggers) and motion detection.
    pub recording: CameraRecording,
}

impl CameraTask {
    /// Runs until `shutdown`: connect, stream, and on any failure report why and retry.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        let id = self.config.id.clone();
        let mut motion = None;
        let mut metadata_guard = MetadataGuard::default();
        let mut last_stamps = LastStamps::default();
        // While connecting again, the status still says why the camera went down.
        let mut last_reason = None;
        loop {
            self.status.set_camera_state(self.index, CameraStateKind::Connecting, last_reason.take());
            let result = tokio::select! {
                r = self.stream(&mut backoff, &mut motion, &mut last_stamps, &mut metadata_guard) => r,
                () = shutdown.cancelled() => return,
            };
            let (reason, floor) = match result {
                Ok(()) => ("the camera ended the stream".to_owned(), Duration::ZERO),
                Err(e) if e.is_auth() => (e.to_string(), AUTH_RETRY_FLOOR),
                Err(e) => (e.to_string(), Duration::ZERO),
            };
            tracing::warn!(camera = %id, "camera down: {reason}");
            // Motion cannot go on without video: end it (and the recording it holds).
            if motion.take().is_some_and(|m: MotionDetector| m.active()) {
                self.motion(MotionChange::Stopped, now_us());
            }
            self.status.set_camera_state(self.index, CameraStateKind::Down, Some(reason.clone()));
            last_reason = Some(reason);
            tokio::select! {
                () = tokio::time::sleep(backoff.next_delay().max(floor)) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }

    /// One RTSP session, from DESCRIBE until the stream fails. Errors are user-facing reasons.
    async fn stream(
        &self,
        backoff: &mut Backoff,
        motion: &mut Option<MotionDetector>,
        last_stamps: &mut LastStamps,
        metadata_guard: &mut MetadataGuard,
    ) -> Result<(), RtspError> {
        let cam = &self.config;
        let agent = format!("Convoy edge {}", env!("CARGO_PKG_VERSION"));
        // No naps while connecting: each RTSP round trip would wait for the thread's next turn,
        // and a camera that encodes from DESCRIBE on sends all of that at PLAY.
        crate::ingest_runtimes::camera_rate(None);
        let described = rtsp::describe(&cam.url, cam.username.as_deref(), cam.password.as_deref(), agent).await?;
        let video = described.video.ok_or_else(|| {
            RtspError::Failed(format!(
                "no H.264 or H.265 video stream (the camera offers: {})",
                described.streams.join(", ")
            ))
        })?;
        let (audio, mut audio_reason) = match described.audio {
            Ok(audio) => (audio, None),
            Err(why) => (None, Some(why)),
        };
        let offered = if cam.metadata { described.metadata } else { Ok(None) };
        let (metadata, metadata_reason) = metadata_guard.session(offered);
        let (mut demuxed, refused, metadata_refused) =
            rtsp::play_over(described.session, video, audio, metadata, cam.transport).await?;
        let audio = if refused.is_some() { None } else { audio };
        audio_reason = refused.or(audio_reason);
        if let Some(why) = &audio_reason {
            tracing::warn!(camera = %cam.id, "{why}");
        }
        self.status.set_audio(self.index, None, audio_reason);
        let metadata = if metadata_refused.is_some() { None } else { metadata };
        let metadata_reason = metadata_refused.or(metadata_reason);
        if let Some(why) = &metadata_reason {
            tracing::warn!(camera = %cam.id, "{why}");
        }
        let encoding = metadata.map(|_| crate::onvif_metadata::ENCODING);
        self.status.set_metadata(self.index, encoding, metadata_reason);
        let mut metadata_ingest = MetadataIngest::new(cam.id.clone(), self.index);
        let mut audio_clock = FrameClock::after(last_stamps.audio);
        let mut have_audio_parameters = false;
        // Audio does not keep a camera whose video stalled alive. One timer per session, moved
        // on only when it fires early (not re-armed per frame, which cost a timer-wheel
        // insertion and removal for every item).
        let mut last_video = tokio::time::Instant::now();
        let stall = tokio::time::sleep_until(last_video + STALL_TIMEOUT);
        tokio::pin!(stall);
        let mut have_parameters = false;
        // retina marks only IDR pictures of H.265 as random access (`h265_key_frames`).
        let h265 = demuxed.streams()[video].encoding_name() == "h265";
        // Said once a session: the socket buffer is the likely cause of UDP loss.
        let mut udp_advised = false;
        let camera = self.config.id.clone();
        let mut gate = self.recording.gate();
        let mut clock = FrameClock::after(last_stamps.video);
        // Sizes of a new session say nothing about the old one's.
        *motion = self.recording.motion.map(MotionDetector::new);
        self.status.set_mode(self.index, self.recording.mode.as_str());
        self.status.set_recording(self.index, false);
        // The session's first burst waits until it has been read whole (`first_burst.rs`).
        let mut first_burst = FirstBurst::new();
        let mut burst_parameters = false;
        // How the stream ended: returned once what the first burst held is recorded.
        let mut ended: Option<Result<(), RtspError>> = None;
        loop {
            let Read { item, received_us, arrived, parameters } = match first_burst.release() {
                Some(read) => read,
                None => {
                    if let Some(end) = ended.take() {
                        if let Err(e) = &end
                            && metadata.is_some()
                        {
                            metadata_guard.failed(&e.to_string());
                        }
                        return end;
                    }
                    let next = match first_burst.deadline() {
                        Some(deadline) => tokio::select! {
                            biased;
                            next = next_item(&mut demuxed, stall.as_mut(), last_video, &camera) => next,
                            () = tokio::time::sleep_until(deadline.into()) => {
                                first_burst.end();
                                continue;
                            }
                        },
                        None => next_item(&mut demuxed, stall.as_mut(), last_video, &camera).await,
                    };
                    let (received_us, arrived) = (now_us(), crate::ingest_runtimes::arrived_since());
                    let item = match next {
                        Ok(Some(item)) => item,
                        end => {
                            // Returned above once what is held (if anything) is recorded.
                            ended = Some(end.map(|_| ()));
                            first_burst.end();
                            continue;
                        }
                    };
                    if !first_burst.is_over() {
                        // Not napping meanwhile: the camera's rate is not measured yet.
                        crate::ingest_runtimes::camera_rate(None);
                        let mut parameters = None;
                        let in_burst = match &item {
                            CodecItem::VideoFrame(f) if f.stream_id() == video => {
                                // retina has the newest parameters by now: the frame keeps its own.
                                if !burst_parameters || f.has_new_parameters() {
                                    parameters = video_parameters(&demuxed, video);
                                    burst_parameters = true;
                                }
                                let t = f.timestamp();
                                clock.seen(t.timestamp() as u32, t.clock_rate().get(), received_us)
                            }
                            CodecItem::AudioFrame(f) if Some(f.stream_id()) == audio => {
                                let t = f.timestamp();
                                audio_clock.seen(t.timestamp() as u32, t.clock_rate().get(), received_us);
                                true
                            }
                            CodecItem::MessageFrame(m) if Some(m.stream_id()) == metadata => {
                                metadata_ingest.seen(m.timestamp(), received_us);
                                true
                            }
                            _ => true,
                        };
                        first_burst.hold(Read { item, received_us, arrived, parameters }, in_burst, Instant::now());
                        continue;
                    }
                    Read { item, received_us, arrived, parameters: None }
                }
            };
            let frame = match item {
                CodecItem::VideoFrame(frame) => frame,
                CodecItem::AudioFrame(frame) if Some(frame.stream_id()) == audio && have_parameters => {
                    self.status.count_packets_lost(self.index, frame.loss());
                    if !have_audio_parameters {
                        let stream = &demuxed.streams()[frame.stream_id()];
                        let Some(ParametersRef::Audio(p)) = stream.parameters() else { continue };
                        let (stored, json) = audio_parameters(&camera, stream.encoding_name(), p);
                        tracing::info!(camera = %camera, codec = stored.codec, rate = stored.sample_rate, "camera audio");
                        self.recorder.send_arrived(self.index, arrived, Record::AudioParameters(stored));
                        self.status.set_audio(self.index, Some(json), None);
                        have_audio_parameters = true;
                    }
                    let timestamp = frame.timestamp();
                    let clock_rate = timestamp.clock_rate().get();
                    let stamp = audio_clock.frame(timestamp.timestamp() as u32, clock_rate, received_us);
                    last_stamps.audio = Some(stamp.wall_clock_us);
                    // Audio follows the video's gate: recorded while it records, else kept in
                    // the pre-buffer beside it.
                    let audio_frame = StoredFrame {
                        camera: camera.clone(),
                        stream: 0,
                        parameters_seq: 0,
                        kind: MediaKind::Audio,
                        keyframe: true,
                        pts: timestamp.elapsed(),
                        clock_rate,
                        wall_clock_us: stamp.wall_clock_us,
                        data: frame.data().to_vec(),
                    };
                    gate.side_frame(audio_frame, |f| self.recorder.send_arrived(self.index, arrived, Record::Frame(f)));
                    continue;
                }
                CodecItem::MessageFrame(m) if Some(m.stream_id()) == metadata && have_parameters => {
                    self.status.count_packets_lost(self.index, m.loss());
                    let f = metadata_ingest.message(m.data(), m.timestamp(), received_us, &self.status);
                    // Metadata follows the video's gate like audio.
                    gate.side_frame(f, |f| self.recorder.send_arrived(self.index, arrived, Record::Frame(f)));
                    continue;
                }
                CodecItem::Rtcp(rtcp) if Some(rtcp.stream_id()) == metadata => {
                    for packet in rtcp.pkts() {
                        if let Ok(Some(report)) = packet.as_sender_report() {
                            metadata_ingest.sender_report(report.rtp_timestamp(), report.ntp_timestamp().0);
                        }
                    }
                    continue;
                }
                CodecItem::Rtcp(rtcp) if rtcp.stream_id() == video || Some(rtcp.stream_id()) == audio => {
                    let clock = if rtcp.stream_id() == video { &mut clock } else { &mut audio_clock };
                    for packet in rtcp.pkts() {
                        if let Ok(Some(report)) = packet.as_sender_report() {
                            clock.sender_report(report.rtp_timestamp(), report.ntp_timestamp().0);
                        }
                    }
                    continue;
                }
                _ => continue,
            };
            if frame.stream_id() != video {
                continue;
            }
            last_video = tokio::time::Instant::now();
            self.status.count_packets_lost(self.index, frame.loss());
            if frame.loss() > 0 && cam.transport == RtspTransport::Udp && !udp_advised {
                udp_advised = true;
                if let Some(advice) = crate::udp_buffer::advice(crate::udp_buffer::rmem_default()) {
                    tracing::warn!(camera = %camera, "{advice}");
                }
            }
            if !have_parameters || frame.has_new_parameters() {
                let Some(p) = parameters.or_else(|| video_parameters(&demuxed, video)) else {
                    // No parameter sets yet: nothing recorded can be decoded without them.
                    continue;
                };
                let (width, height) = p.pixel_dimensions();
                let stored = StoredParameters {
                    camera: camera.clone(),
                    rfc6381_codec: p.rfc6381_codec().to_owned(),
                    width,
                    height,
                    extra_data: p.extra_data().to_vec(),
                };
                let live = VideoParameters {
                    rfc6381_codec: stored.rfc6381_codec.clone(),
                    width,
                    height,
                    extra_data: stored.extra_data.clone(),
                };
                // Buffered frames belong to the old parameters.
                gate.restart();
                // Recorded before published, like frames (see below).
                self.recorder.send_arrived(self.index, arrived, Record::Parameters(stored));
                self.live.publish_parameters(live);
                self.status.set_stream_format(self.index, p.rfc6381_codec(), width, height);
                if !have_parameters {
                    tracing::info!(camera = %camera, codec = p.rfc6381_codec(), width, height, "camera streaming");
                    self.status.set_camera_state(self.index, CameraStateKind::Streaming, None);
                    backoff.reset();
                } else {
                    tracing::info!(camera = %camera, codec = p.rfc6381_codec(), width, height, "codec parameters changed");
                }
                have_parameters = true;
            }
            let keyframe = crate::h265_key_frames::is_key_frame(&frame, h265);
            let timestamp = frame.timestamp();
            let pts = timestamp.elapsed();
            let clock_rate = timestamp.clock_rate().get();
            // The low 32 bits of retina's unwrapped timestamp are the packet's RTP timestamp.
            let stamp = clock.frame(timestamp.timestamp() as u32, clock_rate, received_us);
            if stamp.jumped {
                tracing::warn!(camera = %camera, "the camera's clock jumped; its timeline goes on from the last frame");
            }
            let wall_clock_us = stamp.wall_clock_us;
            last_stamps.video = Some(wall_clock_us);
            let data = frame.into_data();
            let bits_per_second = self.status.observe_frame(self.index, wall_clock_us, data.len());
            crate::ingest_runtimes::camera_rate(bits_per_second);
            if let Some(change) = motion.as_mut().and_then(|m| m.frame(data.len(), keyframe, wall_clock_us)) {
                self.motion(change, wall_clock_us);
            }
            let want = self.recording.want(wall_clock_us);
            // Queued to the recorder before it is published live: a live subscription that
            // begins meanwhile starts from the recordings, which then hold it (`live_start.rs`).
            let live_data = {
                let passing = self.live.begin_frame();
                let live_data = passing.watched().then(|| data.clone());
                gate.frame(
                    StoredFrame {
                        camera: camera.clone(),
                        stream: 0,
                        // Filled in by the recorder, which knows the parameters' sequence number.
                        parameters_seq: 0,
                        kind: MediaKind::Video,
                        keyframe,
                        pts,
                        clock_rate,
                        wall_clock_us,
                        data,
                    },
                    want,
                    |f| self.recorder.send_arrived(self.index, arrived, Record::Frame(f)),
                );
                passing.passed(wall_clock_us);
                live_data
            };
            if let Some(data) = live_data {
                crate::ingest_runtimes::watched_live();
                self.live.publish_frame(MediaFrame { pts, clock_rate, wall_clock_us, keyframe, data });
            }
            self.status.set_recording(self.index, gate.recording());
        }
    }

    /// Raises the motion event; the camera's own motion holds its recording (event and
    /// schedule modes).
    fn motion(&self, change: MotionChange, time_us: i64) {
        let camera = self.config.id.clone();
        let (kind, until_us) = match change {
            MotionChange::Started => (EventKind::MotionStarted { camera }, UNTIL_ENDED),
            MotionChange::Stopped => (EventKind::MotionStopped { camera }, time_us),
        };
        self.recording.holds.hold("motion", until_us);
        self.status.events.emit_at(time_us, kind);
    }
}

/// A camera's audio parameters as the store keeps them and as `/api/status` shows them;
/// `encoding` is the SDP's (`mpeg4-generic`, `pcmu` or `pcma`, see [`rtsp::AUDIO_ENCODINGS`]).
pub(crate) fn audio_parameters(
    camera: &str,
    encoding: &str,
    p: &retina::codec::AudioParameters,
) -> (StoredAudioParameters, AudioJson) {
    let (codec, name) = match encoding {
        "pcmu" => ("ulaw".to_owned(), "pcmu"),
        "pcma" => ("alaw".to_owned(), "pcma"),
        _ => (p.rfc6381_codec().unwrap_or("mp4a.40.2").to_owned(), "aac"),
    };
    let stored = StoredAudioParameters {
        camera: camera.to_owned(),
        codec,
        sample_rate: p.clock_rate(),
        channels: p.channels().get(),
        extra_data: p.extra_data().to_vec(),
    };
    let json = AudioJson { codec: name, sample_rate: stored.sample_rate, channels: stored.channels };
    (stored, json)
}

/// The last stamps of a camera's previous session: the next one's come after them.
#[derive(Debug, Default)]
struct LastStamps {
    video: Option<i64>,
    audio: Option<i64>,
}

/// An item as read from the camera: when (wall clock, and for the durability window the
/// earliest its bytes can have arrived), and for a video frame held in the first burst the
/// video parameters retina had as it was read.
struct Read {
    item: CodecItem,
    received_us: i64,
    arrived: Instant,
    parameters: Option<CameraVideoParameters>,
}

/// The next item of the session's stream, `None` when the camera ended it; an error when it
/// failed or no video frame came for [`STALL_TIMEOUT`] after `last_video`.
async fn next_item(
    demuxed: &mut Demuxed,
    mut stall: Pin<&mut tokio::time::Sleep>,
    last_video: tokio::time::Instant,
    camera: &str,
) -> Result<Option<CodecItem>, RtspError> {
    loop {
        tokio::select! {
            biased;
            next = demuxed.next() => {
                return match next {
                    None => Ok(None),
                    Some(Err(e)) => Err(RtspError::stream(&e, camera)),
                    Some(Ok(item)) => Ok(Some(item)),
                };
            }
            () = &mut stall => {
                let deadline = last_video + STALL_TIMEOUT;
                if tokio::time::Instant::now() >= deadline {
                    return Err(RtspError::Failed(format!("no frame for {} s", STALL_TIMEOUT.as_secs())));
                }
                stall.as_mut().reset(deadline);
            }
        }
    }
}

/// The video stream's parameters as retina has them now.
fn video_parameters(demuxed: &Demuxed, video: usize) -> Option<CameraVideoParameters> {
    match demuxed.streams()[video].parameters() {
        Some(ParametersRef::Video(p)) => Some(p.clone()),
        _ => None,
    }
}

/// Microseconds since the Unix epoch.
pub fn now_us() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}
