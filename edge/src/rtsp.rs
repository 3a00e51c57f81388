//! Opening a camera's video over RTSP with `retina`, shared by recording and probing:
//! credentials out of the URL, DESCRIBE, choice of the video stream, SETUP over TCP or UDP
//! with MP4 framing, PLAY; each request bounded in time. Errors are reasons a person can read,
//! and a refused login is told apart from other failures.

use std::time::Duration;

use retina::client::{
    Credentials, Demuxed, Described, InitialTimestampPolicy, PlayOptions, Session, SessionOptions, SetupOptions,
    TcpTransportOptions, Transport, UdpTransportOptions,
};
use retina::codec::FrameFormat;

use crate::config::RtspTransport;

/// RTSP requests (DESCRIBE, SETUP, PLAY) that take longer than this fail.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a camera could not be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum RtspError {
    /// The camera refused the credentials (RTSP 401), or asked for some and none were given.
    #[error(
        "authentication failed: the camera refused {0}; check this camera's username and password in the \
         configuration (camera said: {1})"
    )]
    Unauthorized(&'static str, String),
    /// Anything else: refused, timed out, a bad answer or stream.
    #[error("{0}")]
    Failed(String),
}

impl RtspError {
    /// True when retrying cannot help until someone changes the credentials.
    pub fn is_auth(&self) -> bool {
        matches!(self, RtspError::Unauthorized(..))
    }

    fn from_retina(e: retina::Error, had_credentials: bool) -> RtspError {
        tracing::debug!("RTSP request failed: {e}");
        if e.status_code() == Some(401) {
            let what =
                if had_credentials { "the username and password" } else { "to play without a username and password" };
            return RtspError::Unauthorized(what, first_line(&e));
        }
        RtspError::Failed(first_line(&e))
    }

    /// A failure of the running stream (retina's error), logged in full, kept short as a reason.
    pub fn stream(e: &retina::Error, camera: &str) -> RtspError {
        tracing::info!(camera, "stream failed: {e}");
        RtspError::Failed(first_line(e))
    }
}

/// The first line of retina's error: what went wrong. The rest (connection, packet, a hex
/// dump) is for the log, not for a camera's state.
fn first_line(e: &retina::Error) -> String {
    let text = e.to_string();
    text.lines().next().unwrap_or_default().trim_end_matches(':').to_owned()
}

impl From<RtspError> for String {
    fn from(e: RtspError) -> String {
        e.to_string()
    }
}

/// A described camera: its session, the URL without credentials, what it offers.
pub struct DescribedCamera {
    /// The session after DESCRIBE.
    pub session: Session<Described>,
    /// The URL, credentials removed.
    pub url: url::Url,
    /// Every stream, as `media/encoding` (e.g. `video/h264`).
    pub streams: Vec<String>,
    /// The video stream Convoy records (H.264 or H.265), if there is one.
    pub video: Option<usize>,
    /// The audio stream Convoy records beside it (AAC or G.711), or why it records none of
    /// the camera's audio (`Ok(None)`: the camera offers no audio).
    pub audio: Result<Option<usize>, String>,
    /// The ONVIF metadata stream Convoy records (uncompressed), or why none of the camera's
    /// metadata is recorded (`Ok(None)`: it offers none), see
    /// [`crate::onvif_metadata::choose_metadata`].
    pub metadata: Result<Option<usize>, String>,
}

/// Audio encodings Convoy records, as SDP names them: AAC, G.711 µ-law and A-law.
pub const AUDIO_ENCODINGS: [&str; 3] = ["mpeg4-generic", "pcmu", "pcma"];

/// Chooses the audio stream to record among `streams` (`(media, encoding, parameters
/// readable)`): the first AAC or G.711 stream retina can depacketize. `Err` says why none
/// when the camera offers audio.
pub fn choose_audio(streams: &[(&str, &str, bool)]) -> Result<Option<usize>, String> {
    let audio: Vec<(usize, &str, bool)> = streams
        .iter()
        .enumerate()
        .filter(|(_, (media, _, _))| *media == "audio")
        .map(|(i, (_, encoding, ok))| (i, *encoding, *ok))
        .collect();
    if let Some((i, _, _)) = audio.iter().find(|(_, e, ok)| *ok && AUDIO_ENCODINGS.contains(e)) {
        return Ok(Some(*i));
    }
    match audio.first() {
        None => Ok(None),
        Some((_, encoding, _)) if AUDIO_ENCODINGS.contains(encoding) => Err(format!(
            "audio/{encoding} not recorded: its parameters in the camera's SDP cannot be read; recording video only"
        )),
        Some(_) => Err(format!(
            "audio ({}) not recorded: Convoy records AAC (mpeg4-generic) and G.711 (PCMU, PCMA) audio; \
             recording video only",
            audio.iter().map(|(_, e, _)| format!("audio/{e}")).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// DESCRIBEs `url`. Credentials come from `username`/`password`, else from the URL.
pub async fn describe(
    url: &url::Url,
    username: Option<&str>,
    password: Option<&str>,
    user_agent: String,
) -> Result<DescribedCamera, RtspError> {
    check_scheme(url)?;
    let mut clean = url.clone();
    let creds = match username {
        Some(u) => Some((u.to_owned(), password.unwrap_or_default().to_owned())),
        None if !url.username().is_empty() => {
            Some((url.username().to_owned(), url.password().unwrap_or_default().to_owned()))
        }
        None => None,
    };
    let _ = clean.set_username("");
    let _ = clean.set_password(None);
    let had_credentials = creds.is_some();
    let options = SessionOptions::default()
        .creds(creds.map(|(username, password)| Credentials { username, password }))
        .user_agent(user_agent);
    let session = timed("DESCRIBE", Session::describe(clean.clone(), options), had_credentials).await?;
    let streams = session.streams().iter().map(|s| format!("{}/{}", s.media(), s.encoding_name())).collect();
    let video =
        session.streams().iter().position(|s| s.media() == "video" && matches!(s.encoding_name(), "h264" | "h265"));
    let offered: Vec<(&str, &str, bool)> =
        session.streams().iter().map(|s| (s.media(), s.encoding_name(), s.parameters().is_some())).collect();
    let audio = choose_audio(&offered);
    let kinds: Vec<(&str, &str)> = offered.iter().map(|(media, encoding, _)| (*media, *encoding)).collect();
    let metadata = crate::onvif_metadata::choose_metadata(&kinds);
    Ok(DescribedCamera { session, url: clean, streams, video, audio, metadata })
}

/// SETUPs stream `video` over TCP interleaved (MP4 framing: AVCC frames, parameters out of
/// band) and PLAYs it.
pub async fn play(session: Session<Described>, video: usize) -> Result<Demuxed, String> {
    Ok(play_over(session, video, None, None, RtspTransport::Tcp).await?.0)
}

/// [`play`] with RTP over `transport`, and streams `audio` and `metadata` too when given (MP4
/// framing: raw AAC access units; whole ONVIF metadata messages). Timestamps are taken as they
/// come (no `rtptime` needed in PLAY's answer: relays such as rtsp-server-perl leave it out).
/// An audio or metadata SETUP the camera refuses does not stop the video: the second and third
/// values say why audio or metadata is not played.
pub async fn play_over(
    mut session: Session<Described>,
    video: usize,
    audio: Option<usize>,
    metadata: Option<usize>,
    transport: RtspTransport,
) -> Result<(Demuxed, Option<String>, Option<String>), RtspError> {
    let setup = || {
        let transport = match transport {
            RtspTransport::Tcp => Transport::Tcp(TcpTransportOptions::default()),
            RtspTransport::Udp => Transport::Udp(UdpTransportOptions::default()),
        };
        SetupOptions::default().transport(transport).frame_format(FrameFormat::MP4)
    };
    timed("SETUP", session.setup(video, setup()), true).await?;
    let mut audio_failed = None;
    if let Some(audio) = audio
        && let Err(e) = timed("SETUP", session.setup(audio, setup()), true).await
    {
        audio_failed = Some(format!("audio not recorded: the camera refused its SETUP ({e}); recording video only"));
    }
    let mut metadata_failed = None;
    if let Some(metadata) = metadata
        && let Err(e) = timed("SETUP", session.setup(metadata, setup()), true).await
    {
        metadata_failed =
            Some(format!("metadata not recorded: the camera refused its SETUP ({e}); recording video only"));
    }
    let options = PlayOptions::default().initial_timestamp(InitialTimestampPolicy::Permissive);
    let playing = timed("PLAY", session.play(options), true).await?;
    let demuxed = playing.demuxed().map_err(|e| RtspError::Failed(first_line(&e)))?;
    Ok((demuxed, audio_failed, metadata_failed))
}

/// Refuses what the RTSP client cannot open, saying so (retina 0.4 has no TLS).
fn check_scheme(url: &url::Url) -> Result<(), RtspError> {
    match url.scheme() {
        "rtsp" => Ok(()),
        "rtsps" => Err(RtspError::Failed(
            "RTSPS (RTSP over TLS) is not supported by this unit's RTSP client yet; use the camera's rtsp:// URL"
                .into(),
        )),
        other => Err(RtspError::Failed(format!("{other}:// is not RTSP; the URL must start with rtsp://"))),
    }
}

async fn timed<T>(
    what: &str,
    fut: impl Future<Output = Result<T, retina::Error>>,
    had_credentials: bool,
) -> Result<T, RtspError> {
    match tokio::time::timeout(REQUEST_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(RtspError::from_retina(e, had_credentials)),
        Err(_) => Err(RtspError::Failed(format!("{what} got no answer in {} s", REQUEST_TIMEOUT.as_secs()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_is_chosen_when_retina_can_read_it_and_otherwise_says_why() {
        let v = ("video", "h264", true);
        assert_eq!(choose_audio(&[v]), Ok(None));
        assert_eq!(choose_audio(&[v, ("audio", "mpeg4-generic", true)]), Ok(Some(1)));
        assert_eq!(choose_audio(&[("audio", "pcma", true), v]), Ok(Some(0)));
        assert_eq!(choose_audio(&[v, ("audio", "opus", false), ("audio", "pcmu", true)]), Ok(Some(2)));
        let why = choose_audio(&[v, ("audio", "opus", false)]).unwrap_err();
        assert!(why.contains("audio/opus") && why.contains("AAC") && why.contains("video only"), "{why}");
        // Retina knows G.722 but Convoy does not record it.
        let why = choose_audio(&[v, ("audio", "g722", true)]).unwrap_err();
        assert!(why.contains("audio/g722"), "{why}");
        let why = choose_audio(&[v, ("audio", "mpeg4-generic", false)]).unwrap_err();
        assert!(why.contains("cannot be read"), "{why}");
    }

    #[test]
    fn rtsps_is_refused_with_what_to_do() {
        assert!(check_scheme(&"rtsp://10.0.0.5/s".parse().unwrap()).is_ok());
        let e = check_scheme(&"rtsps://10.0.0.5/s".parse().unwrap()).unwrap_err().to_string();
        assert!(e.contains("RTSPS") && e.contains("rtsp://"), "{e}");
        assert!(!RtspError::Failed(e).is_auth());
    }
}
