//! Runs the simulator as a process, plays the unit on a UDP socket and drives it through stdin.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use io_logic::{BoardMessage, Input, MAX_DATAGRAM, UnitCommand, decode, encode};

const WAIT: Duration = Duration::from_secs(10);

struct Sim {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    unit: UdpSocket,
    board: SocketAddr,
}

impl Sim {
    fn start(extra: &[&str]) -> Sim {
        let unit = UdpSocket::bind("127.0.0.1:0").unwrap();
        unit.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_io-sim"))
            .args(["--unit", &unit.local_addr().unwrap().to_string(), "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let ready = lines.recv_timeout(WAIT).expect("no ready line");
        let board = ready.strip_prefix("ready ").expect(&ready).parse().unwrap();
        Sim { child, stdin, lines, unit, board }
    }

    fn control(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
    }

    fn line(&self) -> String {
        self.lines.recv_timeout(WAIT).expect("no line from io-sim")
    }

    fn command(&self, command: UnitCommand) {
        let mut buf = [0u8; MAX_DATAGRAM];
        self.unit.send_to(encode(&command, &mut buf).unwrap(), self.board).unwrap();
    }

    /// Waits for the first board message `pick` accepts, skipping others.
    fn expect<T>(&self, what: &str, mut pick: impl FnMut(BoardMessage) -> Option<T>) -> T {
        let deadline = Instant::now() + WAIT;
        let mut buf = [0u8; 2048];
        while Instant::now() < deadline {
            let Ok((len, from)) = self.unit.recv_from(&mut buf) else { continue };
            assert_eq!(from, self.board);
            let msg = decode::<BoardMessage>(&buf[..len]).expect("board sent an undecodable datagram");
            if let Some(found) = pick(msg) {
                return found;
            }
        }
        panic!("no {what} from io-sim within {WAIT:?}");
    }

    fn expect_msg(&self, want: BoardMessage) {
        self.expect(&format!("{want:?}"), |m| (m == want).then_some(()));
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn inputs_power_and_outputs_round_trip_through_the_simulator() {
    let mut sim = Sim::start(&["--heartbeat-ms", "100", "--outputs", "4"]);

    let (first_seq, firmware) = sim.expect("heartbeat", |m| match m {
        BoardMessage::Heartbeat { seq, firmware, .. } => Some((seq, firmware)),
        _ => None,
    });
    assert!(firmware.starts_with("io-sim "), "{firmware}");
    let next_seq = sim.expect("next heartbeat", |m| match m {
        BoardMessage::Heartbeat { seq, .. } => Some(seq),
        _ => None,
    });
    assert_eq!(next_seq, first_seq + 1);

    sim.control("input ignition 1");
    sim.expect_msg(BoardMessage::InputChanged { input: Input::Ignition, active: true });
    sim.control("input door 2 1");
    sim.expect_msg(BoardMessage::InputChanged { input: Input::Door(2), active: true });
    sim.control("input panic 1");
    sim.expect_msg(BoardMessage::InputChanged { input: Input::Panic, active: true });
    sim.control("input ignition 0");
    sim.expect_msg(BoardMessage::InputChanged { input: Input::Ignition, active: false });

    sim.control("supply 8200");
    sim.expect_msg(BoardMessage::PowerWarning { millivolts: 8200 });
    sim.expect("low status", |m| match m {
        BoardMessage::Status { power_low: true, millivolts: 8200, .. } => Some(()),
        _ => None,
    });
    sim.control("supply 12100");
    sim.expect_msg(BoardMessage::PowerRestored { millivolts: 12100 });

    sim.command(UnitCommand::SetOutput { output: 1, on: true });
    assert_eq!(sim.line(), "output 1 on");
    let (outputs, active) = sim.expect("status with output 1 on", |m| match m {
        BoardMessage::Status { outputs, inputs, .. } if outputs & 0b10 != 0 => {
            Some((outputs, inputs.iter().filter(|s| s.active).map(|s| s.input).collect::<Vec<_>>()))
        }
        _ => None,
    });
    assert_eq!(outputs, 0b10);
    assert_eq!(active, [Input::Door(2), Input::Panic]);

    sim.command(UnitCommand::KeepAlive);
    assert_eq!(sim.line(), "keepalive");
    sim.command(UnitCommand::SetOutput { output: 9, on: true });
    assert_eq!(sim.line(), "rejected output 9");
    sim.unit.send_to(&[0xff, 0xff, 0xff], sim.board).unwrap();
    assert!(sim.line().starts_with("garbage "));
    sim.expect("status counting the garbage", |m| match m {
        BoardMessage::Status { decode_errors: 1, .. } => Some(()),
        _ => None,
    });

    sim.control("bogus");
    assert!(sim.line().starts_with("error unknown command"));
    sim.control("quit");
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if let Some(status) = sim.child.try_wait().unwrap() {
            assert!(status.success());
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("io-sim did not quit");
}

#[test]
fn outputs_go_safe_when_the_unit_goes_quiet() {
    let sim = Sim::start(&["--heartbeat-ms", "50", "--link-timeout-ms", "500"]);
    sim.command(UnitCommand::SetOutput { output: 0, on: true });
    // A slow start may trip the watchdog once before the command arrives: wait for the trip after it.
    while sim.line() != "output 0 on" {}
    assert_eq!(sim.line(), "link lost");
    sim.expect("status acknowledging output 0", |m| match m {
        BoardMessage::Status { outputs: 1, .. } => Some(()),
        _ => None,
    });
    sim.expect("status with outputs safe", |m| match m {
        BoardMessage::Status { outputs: 0, .. } => Some(()),
        _ => None,
    });
}
