//! Opening a camera's video over RTSP with `retina`, shared by recording and probing:
//! credentials out of the URL, DESCRIBE, choice of the video stream, SETUP over TCP with MP4
//! framing, PLAY; each request bounded in time. Errors are reasons a person can read.

use std::time::Duration;

use retina::client::{
    Credentials, Demuxed, Described, PlayOptions, Session, SessionOptions, SetupOptions, TcpTransportOptions, Transport,
};
use retina::codec::FrameFormat;

/// RTSP requests (DESCRIBE, SETUP, PLAY) that take longer than this fail.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

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
) -> Result<DescribedCamera, String> {
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
    let options = SessionOptions::default()
        .creds(creds.map(|(username, password)| Credentials { username, password }))
        .user_agent(user_agent);
    let session = timed("DESCRIBE", Session::describe(clean.clone(), options)).await?;
    let streams = session.streams().iter().map(|s| format!("{}/{}", s.media(), s.encoding_name())).collect();
    let video =
        session.streams().iter().position(|s| s.media() == "video" && matches!(s.encoding_name(), "h264" | "h265"));
    Ok(DescribedCamera { session, url: clean, streams, video })
}

/// SETUPs stream `video` over TCP interleaved (MP4 framing: AVCC frames, parameters out of
/// band) and PLAYs it.
pub async fn play(mut session: Session<Described>, video: usize) -> Result<Demuxed, String> {
    let setup = SetupOptions::default()
        .transport(Transport::Tcp(TcpTransportOptions::default()))
        .frame_format(FrameFormat::MP4);
    timed("SETUP", session.setup(video, setup)).await?;
    let playing = timed("PLAY", session.play(PlayOptions::default())).await?;
    playing.demuxed().map_err(|e| e.to_string())
}

async fn timed<T>(what: &str, fut: impl Future<Output = Result<T, retina::Error>>) -> Result<T, String> {
    match tokio::time::timeout(REQUEST_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("{what} got no answer in {} s", REQUEST_TIMEOUT.as_secs())),
    }
}
