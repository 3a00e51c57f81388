//! Live frames as datagrams over a real QUIC connection (the endpoints both binaries use): the
//! sender drops some datagrams on purpose (one per group: parity rebuilds them; two in one
//! group of one frame: central's request brings them again over the control stream), and the
//! receiver hands out every frame whole, byte for byte, in order, after its parameters.

use std::time::{Duration, Instant};

use link::identity::Identity;
use link::live_reassembly::{Reassembled, Reassembler, ReassemblyConfig};
use link::live_sender::LiveSender;
use link::messages;
use link::pki::{CertificateAuthority, UnitIdentity, unit_key_and_request};
use protocol::interconnect::{CentralMessage, LiveMessage, MediaFrame, VideoParameters};

const SLOT: u32 = 1;
const FRAMES: u32 = 40;
/// The frame that loses two datagrams of one group.
const DOUBLE_LOSS: u32 = 17;

fn frame(n: u32) -> MediaFrame {
    // 1 to ~9 datagrams per frame, content that differs per frame and byte.
    let len = 300 + (n as usize * 977) % 9000;
    MediaFrame {
        pts: i64::from(n) * 3600,
        clock_rate: 90_000,
        wall_clock_us: 1_700_000_000_000_000 + i64::from(n) * 40_000,
        keyframe: n.is_multiple_of(10),
        data: (0..len).map(|i| (i as u32).wrapping_mul(2_654_435_761).wrapping_add(n) as u8).collect(),
    }
}

fn params() -> VideoParameters {
    VideoParameters { rfc6381_codec: "avc1.4d401e".into(), width: 640, height: 360, extra_data: vec![1, 2, 3] }
}

#[tokio::test]
async fn frames_arrive_whole_and_in_order_through_parity_and_a_resend() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, _) = CertificateAuthority::load_or_create(dir.path()).unwrap();
    let server =
        link::endpoint::server("127.0.0.1:0".parse().unwrap(), &ca.server_identity(dir.path()).unwrap()).unwrap();
    let addr = server.local_addr().unwrap();
    let (key, csr) = unit_key_and_request("bus-1").unwrap();
    let unit =
        UnitIdentity { identity: Identity { cert: ca.issue_unit(&csr, "bus-1").unwrap(), key }, ca: ca.cert().clone() };
    let client = link::endpoint::client(addr, &unit).unwrap();

    let central = tokio::spawn(async move {
        let conn = server.accept().await.unwrap().await.unwrap();
        let (mut send, mut recv) = conn.accept_bi().await.unwrap();
        let Some(LiveMessage::Parameters(p)) = messages::read::<LiveMessage>(&mut recv).await.unwrap() else {
            panic!("parameters first");
        };
        let mut rx = Reassembler::new(SLOT, ReassemblyConfig::default());
        rx.parameters(Instant::now(), p);
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while out.iter().filter(|r| matches!(r, Reassembled::Frame(_))).count() < FRAMES as usize {
            assert!(Instant::now() < deadline, "frames missing after 20 s: {:?}", rx.stats());
            let wake = rx.deadline().unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
            tokio::select! {
                d = conn.read_datagram() => { rx.datagram(Instant::now(), &d.unwrap()).unwrap(); }
                () = tokio::time::sleep_until(wake.into()) => rx.tick(Instant::now()),
            }
            while let Some(r) = rx.poll() {
                if let Reassembled::Nack { frame, fragments } = &r {
                    let nack = CentralMessage::LiveNack { slot: SLOT, frame: *frame, fragments: fragments.clone() };
                    messages::write(&mut send, &nack).await.unwrap();
                }
                out.push(r);
            }
        }
        conn.close(0u32.into(), b"done");
        (out, rx.stats())
    });

    let conn = client.connect(addr, link::identity::SERVER_NAME).unwrap().await.unwrap();
    let max = conn.max_datagram_size().expect("datagrams are enabled on both ends");
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    messages::write(&mut send, &LiveMessage::Parameters(params())).await.unwrap();
    let mut sender = LiveSender::new(SLOT, 4, 1 << 20);
    sender.parameters_sent();
    let (nack_tx, mut nack_rx) = tokio::sync::mpsc::channel(8);
    tokio::spawn(async move {
        while let Ok(Some(msg)) = messages::read::<CentralMessage>(&mut recv).await {
            let _ = nack_tx.send(msg).await;
        }
    });
    let mut dropped = 0;
    for n in 0..FRAMES {
        let datagrams = sender.frame(&frame(n), max).unwrap();
        for (i, d) in datagrams.into_iter().enumerate() {
            // One lost datagram per frame (parity's job); two of the first group of one frame.
            let lose = (n % 3 == 1 && i == 0) || (n == DOUBLE_LOSS && (i == 1 || i == 2));
            if lose {
                dropped += 1;
            } else {
                conn.send_datagram(d).unwrap();
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut resent = 0;
    loop {
        tokio::select! {
            msg = nack_rx.recv() => match msg {
                Some(CentralMessage::LiveNack { slot, frame, fragments }) => {
                    assert_eq!((slot, frame), (SLOT, DOUBLE_LOSS), "only the double loss is asked again");
                    for d in sender.resend(frame, &fragments) {
                        conn.send_datagram(d).unwrap();
                        resent += 1;
                    }
                }
                Some(other) => panic!("unexpected {other:?}"),
                None => break,
            },
            e = conn.closed() => { let _ = e; break; }
        }
    }
    let (out, stats) = central.await.unwrap();
    assert_eq!(out[0], Reassembled::Parameters(params()));
    let frames: Vec<MediaFrame> = out
        .iter()
        .filter_map(|r| match r {
            Reassembled::Frame(f) => Some(f.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(frames, (0..FRAMES).map(frame).collect::<Vec<_>>(), "byte-identical frames, in order");
    assert_eq!(resent, 2, "the two fragments parity could not rebuild");
    assert_eq!(stats.nacks, 1);
    assert_eq!(stats.given_up, 0);
    // Every single loss rebuilt by parity, and of the double loss the second fragment too, once
    // the first came again.
    assert_eq!(stats.rebuilt, dropped - 1, "{stats:?}");
}
