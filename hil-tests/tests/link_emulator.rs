//! Checks `link-emu` against tools we did not write before anyone trusts it: `ping` (iputils)
//! for delay, jitter, loss and outage, the kernel's TCP for the rate limit.
//!
//! Needs root, /dev/net/tun, iproute2 and iputils-ping; skips (saying why) without root or TUN.
//! `cargo test -p hil-tests --test link_emulator -- --ignored --nocapture bench` measures TCP
//! goodput through the link (see hil-tests/link-emu/README.md).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use hil_tests::netns::{EmulatedLink, LinkDir, LinkParams, Netns, unsupported_reason};

/// A unit namespace and a central namespace joined by the emulator. Fields drop in order: the
/// emulator first, then the namespaces.
struct Fixture {
    link: EmulatedLink,
    unit: Netns,
    central: Netns,
}

/// The fixture, or `None` (with the reason printed) where namespaces cannot be made.
fn fixture(test: &str, params: &LinkParams) -> Option<Fixture> {
    if let Some(why) = unsupported_reason() {
        // Straight to the process's stderr: the test harness would capture eprintln!.
        let _ = writeln!(std::io::stderr(), "SKIPPED link_emulator::{test}: {why}");
        return None;
    }
    let unit = Netns::create("unit").unwrap();
    let central = Netns::create("central").unwrap();
    let link = EmulatedLink::start(&unit, &central, params).unwrap();
    Some(Fixture { link, unit, central })
}

/// What `ping` saw.
#[derive(Debug)]
struct Ping {
    transmitted: u32,
    received: u32,
    rtts_ms: Vec<f64>,
}

impl Ping {
    fn median(&self) -> f64 {
        let mut v = self.rtts_ms.clone();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }
    fn min(&self) -> f64 {
        self.rtts_ms.iter().copied().fold(f64::INFINITY, f64::min)
    }
    fn max(&self) -> f64 {
        self.rtts_ms.iter().copied().fold(0.0, f64::max)
    }
}

/// Runs iputils `ping` inside `ns`: `count` echo requests `interval` seconds apart, waiting at
/// most `wait_s` for each reply.
fn ping(ns: &Netns, dst: Ipv4Addr, count: u32, interval: f64, wait_s: u32) -> Ping {
    let out = ns
        .command("ping")
        .args(["-n", "-c", &count.to_string(), "-i", &interval.to_string(), "-W", &wait_s.to_string()])
        .arg(dst.to_string())
        .output()
        .expect("running ping (Debian package iputils-ping)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("packets transmitted"),
        "ping failed (is iputils-ping installed?): {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rtts_ms = text
        .lines()
        .filter_map(|l| l.split_once(" time=")?.1.split_whitespace().next()?.parse().ok())
        .collect::<Vec<f64>>();
    let summary = text.lines().find(|l| l.contains("packets transmitted")).unwrap();
    let number_before = |what: &str| -> u32 {
        let words: Vec<&str> = summary.split([' ', ',']).filter(|w| !w.is_empty()).collect();
        let i = words.iter().position(|w| *w == what).unwrap();
        words[i - 1].parse().unwrap()
    };
    let (transmitted, received) = (number_before("packets"), number_before("received"));
    assert_eq!(received as usize, rtts_ms.len(), "{text}");
    Ping { transmitted, received, rtts_ms }
}

/// A TCP transfer of `bytes` from the unit side to central's side through the link, with the
/// sender's congestion control `cc` (`None`: the system's default, `bbr` on the test machines);
/// returns the goodput in Mbit/s measured by the receiver from its first byte to the sender's close.
fn tcp_goodput(f: &Fixture, bytes: usize, cc: Option<String>) -> f64 {
    let central_addr = f.link.central_addr();
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    let receiver = f
        .central
        .spawn(move || {
            let listener = TcpListener::bind((central_addr, 0)).unwrap();
            port_tx.send(listener.local_addr().unwrap().port()).unwrap();
            let (mut conn, _) = listener.accept().unwrap();
            let mut buf = vec![0u8; 256 * 1024];
            let mut total = 0usize;
            let mut first = None;
            loop {
                let n = conn.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                first.get_or_insert_with(Instant::now);
                total += n;
            }
            (total, first.unwrap().elapsed())
        })
        .unwrap();
    let port = port_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let sender = f
        .unit
        .spawn(move || {
            let mut conn =
                TcpStream::connect_timeout(&SocketAddr::from((central_addr, port)), Duration::from_secs(10)).unwrap();
            if let Some(cc) = cc {
                set_congestion_control(&conn, &cc);
            }
            let chunk = vec![0x5au8; 64 * 1024];
            let mut left = bytes;
            while left > 0 {
                let n = left.min(chunk.len());
                conn.write_all(&chunk[..n]).unwrap();
                left -= n;
            }
            conn.shutdown(std::net::Shutdown::Write).unwrap();
        })
        .unwrap();
    sender.join().unwrap();
    let (total, took) = receiver.join().unwrap();
    assert_eq!(total, bytes);
    total as f64 * 8.0 / took.as_secs_f64() / 1e6
}

/// Sets a TCP socket's congestion control (`cubic`, `bbr`, `reno`).
fn set_congestion_control(conn: &TcpStream, cc: &str) {
    use std::os::fd::AsRawFd;
    // SAFETY: setsockopt reads `cc.len()` bytes from a live buffer.
    let r = unsafe {
        libc::setsockopt(
            conn.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_CONGESTION,
            cc.as_ptr().cast(),
            cc.len() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "TCP_CONGESTION {cc}: {}", std::io::Error::last_os_error());
}

#[test]
fn delay_and_jitter_match_ping() {
    let params = LinkParams { delay_ms: 50.0, ..Default::default() };
    let Some(f) = fixture("delay_and_jitter_match_ping", &params) else { return };
    let p = ping(&f.unit, f.link.central_addr(), 20, 0.05, 2);
    println!("delay 50 ms each way: ping RTT min {:.2} median {:.2} max {:.2} ms", p.min(), p.median(), p.max());
    assert_eq!(p.received, 20, "{p:?}");
    // The link can never be faster than its delay; the scheduler must keep within ~1 ms per way.
    assert!(p.min() >= 99.5, "{p:?}");
    assert!(p.median() <= 105.0, "{p:?}");

    // ±10 ms uniform jitter each way: RTT within 80–120 ms (+ scheduling), and really spread.
    f.link.set(&LinkParams { jitter_ms: 10.0, ..params }).unwrap();
    let p = ping(&f.unit, f.link.central_addr(), 40, 0.05, 2);
    let mean = p.rtts_ms.iter().sum::<f64>() / p.rtts_ms.len() as f64;
    let sd = (p.rtts_ms.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / p.rtts_ms.len() as f64).sqrt();
    println!("with ±10 ms jitter: RTT min {:.2} mean {mean:.2} max {:.2} sd {sd:.2} ms", p.min(), p.max());
    assert_eq!(p.received, 40, "{p:?}");
    assert!(p.min() >= 79.5 && p.max() <= 125.0, "{p:?}");
    // Two independent uniform ±10 ms: sd ≈ 8.2 ms.
    assert!((4.0..=12.0).contains(&sd), "sd {sd}: {p:?}");
    assert!((95.0..=105.0).contains(&mean), "mean {mean}: {p:?}");
}

#[test]
fn loss_matches_ping() {
    let Some(f) = fixture("loss_matches_ping", &LinkParams::default()) else { return };
    // 10 % loss on the way out only, so a lost echo is one emulator drop.
    f.link.set_dir(LinkDir::UnitToCentral, &LinkParams { loss_pct: 10.0, ..Default::default() }).unwrap();
    let n = 1000;
    let p = ping(&f.unit, f.link.central_addr(), n, 0.004, 1);
    let lost = p.transmitted - p.received;
    let pct = 100.0 * f64::from(lost) / f64::from(p.transmitted);
    let c = f.link.counters().unwrap();
    println!("10 % loss: ping lost {lost} of {} ({pct:.1} %); emulator dropped {}", p.transmitted, c.u2c.drop_loss);
    assert_eq!(p.transmitted, n);
    // Binomial(1000, 0.1): σ ≈ 9.5 packets; ±4σ.
    assert!((62..=138).contains(&lost), "{lost} lost of {n}");
    assert_eq!(u64::from(lost), c.u2c.drop_loss, "{c:?}");
    assert_eq!((c.c2u.drop_loss, c.u2c.drop_queue, c.u2c.drop_outage), (0, 0, 0), "{c:?}");
    assert_eq!(c.c2u.packets, u64::from(p.received), "{c:?}");
}

#[test]
fn rate_limit_matches_tcp() {
    let params = LinkParams { delay_ms: 10.0, rate_kbit: 10_000, ..Default::default() };
    let Some(f) = fixture("rate_limit_matches_tcp", &params) else { return };
    let started = Instant::now();
    let mbit = tcp_goodput(&f, 4_000_000, None);
    let c = f.link.counters().unwrap();
    let wire_mbit = c.u2c.bytes as f64 * 8.0 / started.elapsed().as_secs_f64() / 1e6;
    println!(
        "10 Mbit/s, 20 ms RTT: TCP goodput {mbit:.2} Mbit/s; on the link {wire_mbit:.2} Mbit/s; queue drops {}",
        c.u2c.drop_queue
    );
    // Payload is ~96.5 % of the IP bytes (1448 of 1500 with TCP timestamps).
    assert!((8.0..=10.5).contains(&mbit), "goodput {mbit} Mbit/s; {c:?}");
    assert!(wire_mbit <= 10.1, "{wire_mbit} Mbit/s on a 10 Mbit/s link");
}

#[test]
fn outage_stops_everything_until_up() {
    let params = LinkParams { delay_ms: 5.0, ..Default::default() };
    let Some(f) = fixture("outage_stops_everything_until_up", &params) else { return };
    let dst = f.link.central_addr();
    assert_eq!(ping(&f.unit, dst, 3, 0.05, 2).received, 3);

    f.link.down().unwrap();
    f.link.reset_counters().unwrap();
    let p = ping(&f.unit, dst, 10, 0.05, 1);
    let c = f.link.counters().unwrap();
    println!("down: {} of 10 echoes answered; emulator dropped {} for outage", p.received, c.u2c.drop_outage);
    assert_eq!(p.received, 0, "{p:?}");
    assert_eq!(c.u2c.drop_outage, 10, "{c:?}");
    assert_eq!(c.c2u.received, 0, "{c:?}");
    // The other way too.
    assert_eq!(ping(&f.central, f.link.unit_addr(), 3, 0.05, 1).received, 0);

    f.link.up().unwrap();
    let p = ping(&f.unit, dst, 5, 0.05, 2);
    assert_eq!(p.received, 5, "{p:?}");
    assert!(p.min() >= 9.5, "{p:?}");
}

/// Measures TCP goodput through the link, for comparisons with QUIC. Parameters come from
/// `LINK_EMU_BENCH` (control-protocol words; default: 10 Mbit/s, 100 ms RTT, 1 % loss),
/// `LINK_EMU_BENCH_MB` (default 5) and `LINK_EMU_BENCH_CC` (comma-separated congestion
/// controls; default `cubic,bbr`).
#[test]
#[ignore = "benchmark: run with --ignored --nocapture"]
fn bench_tcp_goodput() {
    let Some(f) = fixture("bench_tcp_goodput", &LinkParams::default()) else { return };
    let words = std::env::var("LINK_EMU_BENCH").unwrap_or_else(|_| "delay_ms=50 rate_kbit=10000 loss=1".into());
    let mb: usize = std::env::var("LINK_EMU_BENCH_MB").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let ccs = std::env::var("LINK_EMU_BENCH_CC").unwrap_or_else(|_| "cubic,bbr".into());
    // Unshaped first: what the emulator itself carries.
    let raw = tcp_goodput(&f, 500_000_000, None);
    let c = f.link.counters().unwrap();
    println!(
        "unshaped: TCP goodput {raw:.0} Mbit/s ({} packets, {} bytes through the emulator)",
        c.u2c.packets, c.u2c.bytes
    );
    f.link.command(&format!("set {words}")).unwrap();
    for cc in ccs.split(',') {
        f.link.reset_counters().unwrap();
        let mbit = tcp_goodput(&f, mb * 1_000_000, Some(cc.to_owned()));
        let c = f.link.counters().unwrap();
        println!(
            "{words}, TCP {cc}: goodput {mbit:.2} Mbit/s over {mb} MB; u2c dropped {} by loss, {} by queue",
            c.u2c.drop_loss, c.u2c.drop_queue
        );
    }
}
