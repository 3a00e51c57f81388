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
    Ok(DescribedCamera { session, url: clean, streams, video })
}

/// SETUPs stream `video` over TCP interleaved (MP4 framing: AVCC frames, parameters out of
/// band) and PLAYs it.
pub async fn play(session: Session<Described>, video: usize) -> Result<Demuxed, String> {
    Ok(play_over(session, video, RtspTransport::Tcp).await?)
}

/// [`play`] with RTP over `transport`. Timestamps are taken as they come (no `rtptime` needed
/// in PLAY's answer: relays such as rtsp-server-perl leave it out).
pub async fn play_over(
    mut session: Session<Described>,
    video: usize,
    transport: RtspTransport,
) -> Result<Demuxed, RtspError> {
    let transport = match transport {
        RtspTransport::Tcp => Transport::Tcp(TcpTransportOptions::default()),
        RtspTransport::Udp => Transport::Udp(UdpTransportOptions::default()),
    };
    let setup = SetupOptions::default().transport(transport).frame_format(FrameFormat::MP4);
    timed("SETUP", session.setup(video, setup), true).await?;
    let options = PlayOptions::default().initial_timestamp(InitialTimestampPolicy::Permissive);
    let playing = timed("PLAY", session.play(options), true).await?;
    playing.demuxed().map_err(|e| RtspError::Failed(first_line(&e)))
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
    fn rtsps_is_refused_with_what_to_do() {
        assert!(check_scheme(&"rtsp://10.0.0.5/s".parse().unwrap()).is_ok());
        let e = check_scheme(&"rtsps://10.0.0.5/s".parse().unwrap()).unwrap_err().to_string();
        assert!(e.contains("RTSPS") && e.contains("rtsp://"), "{e}");
        assert!(!RtspError::Failed(e).is_auth());
    }
}
