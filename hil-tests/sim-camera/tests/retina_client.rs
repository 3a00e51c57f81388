//! The real `retina` RTSP client against the simulated camera.

mod common;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use retina::client::{PlayOptions, Session, SessionGroup, SessionOptions, SetupOptions, Transport};
use retina::codec::{CodecItem, ParametersRef, VideoFrame};

use common::TestServer;

/// Describes, sets up stream 0 over TCP, plays, and returns the demuxed stream.
async fn open(url: url::Url) -> retina::client::Demuxed {
    open_with(url, SessionOptions::default()).await
}

async fn open_with(url: url::Url, options: SessionOptions) -> retina::client::Demuxed {
    let mut session = Session::describe(url, options).await.expect("DESCRIBE");
    assert_eq!(session.streams().len(), 1);
    let stream = &session.streams()[0];
    assert_eq!(stream.media(), "video");
    assert_eq!(stream.encoding_name(), "h264");
    assert_eq!(stream.clock_rate_hz(), 90_000);
    session.setup(0, SetupOptions::default().transport(Transport::Tcp(Default::default()))).await.expect("SETUP");
    session.play(PlayOptions::default()).await.expect("PLAY").demuxed().expect("demuxed")
}

/// Reads `n` video frames, ignoring other items.
async fn frames(demuxed: &mut retina::client::Demuxed, n: usize) -> Vec<VideoFrame> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let item = demuxed.next().await.expect("stream ended early").expect("stream error");
        if let CodecItem::VideoFrame(f) = item {
            out.push(f);
        }
    }
    out
}

#[tokio::test]
async fn retina_receives_key_frame_first_and_increasing_timestamps() {
    let server = TestServer::start(common::config()).await;
    let group = Arc::new(SessionGroup::default());
    let options = SessionOptions::default().session_group(group.clone());
    let mut demuxed = open_with(server.url("/cam"), options).await;
    let got = frames(&mut demuxed, 30).await;

    assert!(got[0].is_random_access_point(), "first frame is a key frame");
    assert_eq!(got[0].timestamp().elapsed(), 0);
    for w in got.windows(2) {
        assert_eq!(w[1].timestamp().elapsed() - w[0].timestamp().elapsed(), 3600);
    }
    // GOP 25: frames 0 and 25 are key frames, the others are not.
    let keys: Vec<usize> = got.iter().enumerate().filter(|(_, f)| f.is_random_access_point()).map(|(i, _)| i).collect();
    assert_eq!(keys, [0, 25]);
    assert!(got.iter().all(|f| f.loss() == 0));

    match demuxed.streams()[0].parameters() {
        Some(ParametersRef::Video(v)) => {
            assert_eq!(v.pixel_dimensions(), (640, 360));
            assert_eq!(v.rfc6381_codec(), "avc1.4D401E");
        }
        other => panic!("expected video parameters, got {other:?}"),
    }
    // Dropping the session makes retina send TEARDOWN on the same
    // connection, while media is still flowing; the server must answer it.
    drop(demuxed);
    group.await_teardown().await.expect("TEARDOWN succeeded");
    server.stop().await;
}

#[tokio::test]
async fn paced_in_real_time() {
    let server = TestServer::start(common::config()).await;
    let mut demuxed = open(server.url("/cam")).await;
    let start = tokio::time::Instant::now();
    let got = frames(&mut demuxed, 26).await;
    let elapsed = start.elapsed();
    // 25 frame periods of 40 ms after the first frame: about one second, not faster.
    assert!(elapsed >= Duration::from_millis(900), "26 frames took only {elapsed:?}");
    assert_eq!(got.len(), 26);
    drop(demuxed);
    server.stop().await;
}

#[tokio::test]
async fn loops_with_monotonic_timestamps() {
    // A fast frame rate makes two full loops of the 200-frame clip quick.
    let server = TestServer::start(common::config().with_frame_rate(500)).await;
    let mut demuxed = open(server.url("/cam")).await;
    let got = frames(&mut demuxed, 450).await;
    for (i, f) in got.iter().enumerate() {
        assert_eq!(f.timestamp().elapsed(), i as i64 * 180, "frame {i}");
        assert_eq!(f.is_random_access_point(), (i % 200).is_multiple_of(25), "frame {i}");
        assert_eq!(f.loss(), 0);
    }
    drop(demuxed);
    server.stop().await;
}

#[tokio::test]
async fn many_clients_on_one_mount_and_several_mounts() {
    let config = common::config().with_mount("/front", common::clip());
    let server = TestServer::start(config.with_frame_rate(100)).await;
    let mut clients = Vec::new();
    for i in 0..6u32 {
        let path = if i.is_multiple_of(2) { "/cam" } else { "/front" };
        let url = server.url(path);
        clients.push(tokio::spawn(async move {
            let mut demuxed = open(url).await;
            let got = frames(&mut demuxed, 40).await;
            assert!(got[0].is_random_access_point());
            got.windows(2).all(|w| w[1].timestamp().elapsed() > w[0].timestamp().elapsed())
        }));
    }
    for c in clients {
        assert!(c.await.expect("client task"));
    }
    server.stop().await;
}

#[tokio::test]
async fn keepalives_keep_a_short_session_alive() {
    // Retina sends a keepalive every timeout/2 = 1 s; the server drops
    // connections that send nothing for 2 s. Three seconds of frames prove
    // the keepalives arrive and are answered while media flows.
    let config = common::config().with_frame_rate(50).with_session_timeout(Duration::from_secs(2));
    let server = TestServer::start(config).await;
    let mut demuxed = open(server.url("/cam")).await;
    let got = frames(&mut demuxed, 150).await;
    assert_eq!(got.len(), 150);
    drop(demuxed);
    server.stop().await;
}

#[tokio::test]
async fn unknown_mount_fails_describe() {
    let server = TestServer::start(common::config()).await;
    let err = Session::describe(server.url("/nope"), SessionOptions::default())
        .await
        .err()
        .expect("DESCRIBE of an unknown mount fails");
    assert!(err.to_string().contains("404"), "{err}");
    server.stop().await;
}
