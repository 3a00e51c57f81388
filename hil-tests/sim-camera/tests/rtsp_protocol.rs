//! Raw RTSP over TCP: status codes, CSeq echo, keepalives and RTCP during PLAY.

mod common;

use std::time::Duration;

use common::TestServer;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// A parsed response.
#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// What the server sent next.
#[derive(Debug)]
enum Item {
    Response(Resp),
    Rtp { channel: u8, packet: Vec<u8> },
}

/// A hand-driven RTSP client connection.
struct Client {
    rd: BufReader<OwnedReadHalf>,
    wr: OwnedWriteHalf,
    base: String,
}

impl Client {
    async fn connect(server: &TestServer) -> Self {
        let stream = TcpStream::connect(server.addr).await.expect("connect");
        let (rd, wr) = stream.into_split();
        Self { rd: BufReader::new(rd), wr, base: format!("rtsp://{}", server.addr) }
    }

    async fn send(&mut self, raw: &str) {
        self.wr.write_all(raw.as_bytes()).await.expect("write");
    }

    async fn request(&mut self, method: &str, path: &str, cseq: u32, extra: &str) {
        let raw = format!("{method} {}{path} RTSP/1.0\r\nCSeq: {cseq}\r\n{extra}\r\n", self.base);
        self.send(&raw).await;
    }

    /// Reads the next response or interleaved frame.
    async fn next(&mut self) -> Option<Item> {
        let first = match self.rd.fill_buf().await {
            Ok([]) | Err(_) => return None,
            Ok(b) => b[0],
        };
        if first == b'$' {
            let mut head = [0u8; 4];
            self.rd.read_exact(&mut head).await.ok()?;
            let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
            let mut packet = vec![0; len];
            self.rd.read_exact(&mut packet).await.ok()?;
            return Some(Item::Rtp { channel: head[1], packet });
        }
        let mut line = String::new();
        self.rd.read_line(&mut line).await.ok()?;
        let status = line
            .strip_prefix("RTSP/1.0 ")
            .and_then(|s| s.get(..3))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {line:?}"));
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            self.rd.read_line(&mut h).await.ok()?;
            let h = h.trim_end_matches(['\r', '\n']);
            if h.is_empty() {
                break;
            }
            let (n, v) = h.split_once(':').expect("header line");
            headers.push((n.trim().to_owned(), v.trim().to_owned()));
        }
        let len = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.parse().unwrap())
            .unwrap_or(0);
        let mut body = vec![0; len];
        self.rd.read_exact(&mut body).await.ok()?;
        Some(Item::Response(Resp { status, headers, body }))
    }

    /// Reads the next response, skipping (and counting) RTP frames.
    async fn response(&mut self) -> (Resp, usize) {
        let mut skipped = 0;
        loop {
            match self.next().await.expect("connection closed") {
                Item::Response(r) => return (r, skipped),
                Item::Rtp { .. } => skipped += 1,
            }
        }
    }

    /// SETUP (TCP interleaved 0-1) then PLAY; returns the session id and the PLAY response.
    async fn setup_and_play(&mut self) -> (String, Resp) {
        self.request("SETUP", "/cam/trackID=0", 1, "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n").await;
        let (setup, _) = self.response().await;
        assert_eq!(setup.status, 200);
        let session = setup.header("Session").unwrap();
        let (id, timeout) = session.split_once(';').unwrap();
        assert_eq!(timeout, "timeout=60");
        let id = id.to_owned();
        self.request("PLAY", "/cam/", 2, &format!("Session: {id}\r\nRange: npt=0.000-\r\n")).await;
        let (play, _) = self.response().await;
        (id, play)
    }

    /// Waits for the server to close the connection, skipping whatever it still sends.
    async fn closed(&mut self) {
        while self.next().await.is_some() {}
    }
}

fn rtp_seq(p: &[u8]) -> u16 {
    u16::from_be_bytes([p[2], p[3]])
}

fn rtp_ts(p: &[u8]) -> u32 {
    u32::from_be_bytes([p[4], p[5], p[6], p[7]])
}

#[tokio::test]
async fn options_and_describe() {
    let server = TestServer::start(common::config()).await;
    let mut c = Client::connect(&server).await;
    c.send("OPTIONS * RTSP/1.0\r\nCSeq: 41\r\nUser-Agent: test\r\n\r\n").await;
    let (r, _) = c.response().await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("CSeq"), Some("41"));
    let public = r.header("Public").unwrap();
    for m in ["OPTIONS", "DESCRIBE", "SETUP", "PLAY", "TEARDOWN", "GET_PARAMETER"] {
        assert!(public.contains(m), "{public}");
    }

    c.request("DESCRIBE", "/cam", 42, "Accept: application/sdp\r\n").await;
    let (r, _) = c.response().await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("CSeq"), Some("42"));
    assert_eq!(r.header("Content-Type"), Some("application/sdp"));
    assert_eq!(r.header("Content-Base").unwrap(), format!("rtsp://{}/cam/", server.addr));
    let sdp = String::from_utf8(r.body).unwrap();
    assert!(sdp.contains("m=video 0 RTP/AVP 96\r\n"), "{sdp}");
    assert!(sdp.contains("a=rtpmap:96 H264/90000\r\n"), "{sdp}");

    // Unknown mount and unknown track.
    c.request("DESCRIBE", "/rear", 43, "").await;
    let (r, _) = c.response().await;
    assert_eq!((r.status, r.header("CSeq")), (404, Some("43")));
    c.request("SETUP", "/cam/trackID=1", 44, "Transport: RTP/AVP/TCP;interleaved=0-1\r\n").await;
    let (r, _) = c.response().await;
    assert_eq!(r.status, 404);
    server.stop().await;
}

#[tokio::test]
async fn error_statuses() {
    let server = TestServer::start(common::config()).await;
    let mut c = Client::connect(&server).await;

    // UDP is not offered.
    c.request("SETUP", "/cam/trackID=0", 1, "Transport: RTP/AVP;unicast;client_port=5000-5001\r\n").await;
    let (r, _) = c.response().await;
    assert_eq!((r.status, r.header("CSeq")), (461, Some("1")));

    // Unknown session.
    c.request("PLAY", "/cam/", 2, "Session: DOESNOTEXIST\r\n").await;
    let (r, _) = c.response().await;
    assert_eq!((r.status, r.header("CSeq")), (454, Some("2")));
    c.request("PLAY", "/cam/", 3, "").await;
    let (r, _) = c.response().await;
    assert_eq!(r.status, 454);
    c.request("TEARDOWN", "/cam/", 4, "Session: 1234\r\n").await;
    let (r, _) = c.response().await;
    assert_eq!(r.status, 454);

    // Not implemented, wrong version, missing CSeq.
    c.request("RECORD", "/cam/", 5, "").await;
    let (r, _) = c.response().await;
    assert_eq!((r.status, r.header("CSeq")), (501, Some("5")));
    c.send(&format!("OPTIONS {}/cam RTSP/2.0\r\nCSeq: 6\r\n\r\n", c.base)).await;
    let (r, _) = c.response().await;
    assert_eq!((r.status, r.header("CSeq")), (505, Some("6")));
    c.send("OPTIONS * RTSP/1.0\r\n\r\n").await;
    let (r, _) = c.response().await;
    assert_eq!((r.status, r.header("CSeq")), (400, None));

    // A framed but malformed request gets 400 and the connection goes on.
    c.send("THIS IS NOT RTSP\r\nCSeq: 7\r\n\r\n").await;
    let (r, _) = c.response().await;
    assert_eq!((r.status, r.header("CSeq")), (400, Some("7")));
    c.send("OPTIONS * RTSP/1.0\r\nCSeq: 8\r\n\r\n").await;
    let (r, _) = c.response().await;
    assert_eq!((r.status, r.header("CSeq")), (200, Some("8")));

    // Unframeable garbage gets 400 and the connection is closed.
    c.send("garbage\n\n").await;
    let (r, _) = c.response().await;
    assert_eq!(r.status, 400);
    c.closed().await;

    // An oversized header section is refused too.
    let mut c = Client::connect(&server).await;
    let huge = format!("OPTIONS * RTSP/1.0\r\nCSeq: 9\r\nX-Pad: {}", "a".repeat(20_000));
    c.send(&huge).await;
    let (r, _) = c.response().await;
    assert_eq!((r.status, r.header("CSeq")), (400, Some("9")));
    c.closed().await;
    server.stop().await;
}

#[tokio::test]
async fn requests_and_rtcp_while_playing() {
    let server = TestServer::start(common::config().with_frame_rate(100)).await;
    let mut c = Client::connect(&server).await;
    let (id, play) = c.setup_and_play().await;
    assert_eq!(play.status, 200);
    assert_eq!(play.header("Range"), Some("npt=0.000-"));
    let rtp_info = play.header("RTP-Info").unwrap().to_owned();
    assert!(rtp_info.starts_with(&format!("url={}/cam/trackID=0;seq=", c.base)), "{rtp_info}");
    let seq: u16 = rtp_info.split(';').find_map(|p| p.strip_prefix("seq=")).unwrap().parse().unwrap();
    let rtptime: u32 = rtp_info.split(';').find_map(|p| p.strip_prefix("rtptime=")).unwrap().parse().unwrap();

    // The first packet matches RTP-Info; packets then count up by one.
    let mut expected_seq = seq;
    let mut last_ts = rtptime;
    let mut markers: u32 = 0;
    let mut rtcp_sent = false;
    let mut cseq = 10;
    while markers < 60 {
        match c.next().await.expect("media") {
            Item::Rtp { channel, packet } => {
                assert_eq!(channel, 0);
                assert_eq!(packet[0], 0x80);
                assert_eq!(packet[1] & 0x7f, 96);
                assert_eq!(rtp_seq(&packet), expected_seq);
                expected_seq = expected_seq.wrapping_add(1);
                let ts = rtp_ts(&packet);
                assert!(ts.wrapping_sub(last_ts) < 90_000, "timestamp moves forward");
                last_ts = ts;
                if packet[1] & 0x80 != 0 {
                    markers += 1;
                    if markers.is_multiple_of(10) {
                        // Interleave client RTCP (a receiver report) and keepalives.
                        let rr = [0x80u8, 201, 0, 1, 1, 2, 3, 4];
                        let mut frame = vec![b'$', 1, 0, rr.len() as u8];
                        frame.extend_from_slice(&rr);
                        c.wr.write_all(&frame).await.unwrap();
                        rtcp_sent = true;
                        cseq += 1;
                        let method = if markers.is_multiple_of(20) { "GET_PARAMETER" } else { "OPTIONS" };
                        c.request(method, "/cam/", cseq, &format!("Session: {id}\r\n")).await;
                    }
                }
            }
            Item::Response(r) => {
                assert_eq!(r.status, 200);
                assert_eq!(r.header("CSeq"), Some(cseq.to_string().as_str()));
            }
        }
    }
    assert!(rtcp_sent);

    // PAUSE stops media: the only thing after the PAUSE response is the next response.
    cseq += 1;
    c.request("PAUSE", "/cam/", cseq, &format!("Session: {id}\r\n")).await;
    loop {
        match c.next().await.unwrap() {
            // Frames already on the way before PAUSE was handled.
            Item::Rtp { packet, .. } => {
                assert_eq!(rtp_seq(&packet), expected_seq);
                expected_seq = expected_seq.wrapping_add(1);
                last_ts = rtp_ts(&packet);
            }
            Item::Response(r) if r.header("CSeq") == Some(cseq.to_string().as_str()) => {
                assert_eq!(r.status, 200);
                break;
            }
            Item::Response(r) => assert_eq!(r.status, 200),
        }
    }
    cseq += 1;
    c.request("GET_PARAMETER", "/cam/", cseq, &format!("Session: {id}\r\n")).await;
    match c.next().await.unwrap() {
        Item::Response(r) => assert_eq!(r.header("CSeq"), Some(cseq.to_string().as_str())),
        Item::Rtp { .. } => panic!("media flowed while paused"),
    }

    // PLAY again resumes where it left off: no jump back in seq or time.
    cseq += 1;
    c.request("PLAY", "/cam/", cseq, &format!("Session: {id}\r\n")).await;
    let (r, _) = c.response().await;
    let info = r.header("RTP-Info").unwrap();
    let resumed_seq: u16 = info.split(';').find_map(|p| p.strip_prefix("seq=")).unwrap().parse().unwrap();
    assert_eq!(resumed_seq, expected_seq);
    match c.next().await.unwrap() {
        Item::Rtp { packet, .. } => {
            assert_eq!(rtp_seq(&packet), expected_seq);
            assert!(rtp_ts(&packet).wrapping_sub(last_ts) <= 900);
        }
        Item::Response(r) => panic!("unexpected {r:?}"),
    }

    // TEARDOWN ends the session; the id is then unknown.
    cseq += 1;
    c.request("TEARDOWN", "/cam/", cseq, &format!("Session: {id}\r\n")).await;
    let (r, _) = c.response().await;
    assert_eq!(r.status, 200);
    cseq += 1;
    c.request("PLAY", "/cam/", cseq, &format!("Session: {id}\r\n")).await;
    let (r, _) = c.response().await;
    assert_eq!(r.status, 454);
    server.stop().await;
}

#[tokio::test]
async fn idle_session_times_out() {
    let config = common::config().with_session_timeout(Duration::from_secs(1));
    let server = TestServer::start(config).await;
    let mut c = Client::connect(&server).await;
    c.request("SETUP", "/cam/trackID=0", 1, "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n").await;
    let (r, _) = c.response().await;
    assert_eq!(r.header("Session").unwrap().split_once(';').unwrap().1, "timeout=1");
    let started = tokio::time::Instant::now();
    // No keepalive: the server closes the connection after the timeout.
    c.closed().await;
    assert!(started.elapsed() >= Duration::from_millis(900));
    server.stop().await;
}

#[tokio::test]
async fn stalled_client_does_not_block_others_and_shutdown_ends_sessions() {
    let server = TestServer::start(common::config().with_frame_rate(500)).await;
    // One client plays but never reads, with a tiny receive buffer so the
    // server's writes to it block soon.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(server.addr).await.expect("connect");
    let (rd, wr) = stream.into_split();
    let mut stalled = Client { rd: BufReader::new(rd), wr, base: format!("rtsp://{}", server.addr) };
    let (_, play) = stalled.setup_and_play().await;
    assert_eq!(play.status, 200);

    // Another client still gets its media: 1000 frames (two seconds, about
    // 5 MB, more than the stalled connection's buffers can hold).
    let mut c = Client::connect(&server).await;
    c.setup_and_play().await;
    let mut markers = 0;
    while markers < 1000 {
        if let Some(Item::Rtp { packet, .. }) = c.next().await
            && packet[1] & 0x80 != 0
        {
            markers += 1;
        }
    }
    // A client that disconnects just goes away.
    drop(c);
    // Shutdown closes every connection promptly, even one whose writes are stuck.
    tokio::time::timeout(Duration::from_secs(5), server.stop())
        .await
        .expect("shutdown did not wait for the stalled client's write timeout");
    stalled.closed().await;
}
