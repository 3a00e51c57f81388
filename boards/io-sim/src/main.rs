//! A host simulator of the I/O companion board: the firmware's logic (`io-logic`) behind a std
//! UDP socket, so system tests can drive inputs into a running edge unit and see the commands it
//! sends back.
//!
//! Control on stdin, one command a line:
//! `input ignition 0|1`, `input door N 0|1`, `input panic 0|1`, `supply MILLIVOLTS`, `quit`
//! (end of input also quits). Input levels are raw: they are debounced like on the board.
//!
//! Lines on stdout: `ready ADDR` once the socket is bound (ADDR is where it listens), then
//! `output N on|off` and `keepalive` for every command from the unit, `rejected output N` for a
//! command naming an output the board lacks, `garbage REASON` for a datagram that did not decode,
//! `ignored ADDR` for a datagram from anywhere but the unit's IP address, `link lost` when the
//! unit-link watchdog put the outputs in their safe state, and `error MESSAGE` for a bad control
//! line.

use std::io::{self, BufRead, Write};
use std::net::{SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::sync::mpsc::{self, TryRecvError};
use std::time::{Duration, Instant};

use clap::Parser;
use io_logic::{Board, Config, Error, Input, MAX_DATAGRAM, UnitCommand};

/// The simulated board's inputs, the same as the firmware's.
const INPUTS: [Input; 6] =
    [Input::Ignition, Input::Door(0), Input::Door(1), Input::Door(2), Input::Door(3), Input::Panic];

/// How long one wait for a datagram lasts: the simulated board's time resolution.
const TICK: Duration = Duration::from_millis(1);

/// Simulates the I/O companion board on UDP; control on stdin (see the crate docs).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Where the edge unit listens for board messages.
    #[arg(long)]
    unit: SocketAddr,
    /// Where the board listens for unit commands (port 0 picks one; the `ready` line says which).
    #[arg(long, default_value = "127.0.0.1:47800")]
    listen: SocketAddr,
    /// How many relay outputs the board has.
    #[arg(long, default_value_t = 4)]
    outputs: u8,
    /// Input debounce time.
    #[arg(long, default_value_t = 20)]
    debounce_ms: u32,
    /// Heartbeat (and status) period.
    #[arg(long, default_value_t = 1000)]
    heartbeat_ms: u32,
    /// Outputs go safe (all off) after this long without a unit command; 0 never.
    #[arg(long, default_value_t = 10_000)]
    link_timeout_ms: u32,
    /// A supply below this is a power warning.
    #[arg(long, default_value_t = 9000)]
    power_low_mv: u16,
    /// The supply must come back to the threshold plus this to count as restored.
    #[arg(long, default_value_t = 1000)]
    power_hysteresis_mv: u16,
    /// The supply voltage at start.
    #[arg(long, default_value_t = 12_600)]
    supply_mv: u16,
}

/// A control line.
#[derive(Debug, PartialEq, Eq)]
enum Control {
    Input(Input, bool),
    Supply(u16),
    Quit,
    Nothing,
}

fn parse_control(line: &str) -> Result<Control, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let level = |word: &str| match word {
        "0" => Ok(false),
        "1" => Ok(true),
        other => Err(format!("level must be 0 or 1, not {other:?}")),
    };
    match words[..] {
        [] => Ok(Control::Nothing),
        [word, ..] if word.starts_with('#') => Ok(Control::Nothing),
        ["input", "ignition", l] => Ok(Control::Input(Input::Ignition, level(l)?)),
        ["input", "panic", l] => Ok(Control::Input(Input::Panic, level(l)?)),
        ["input", "door", n, l] => {
            let n = n.parse().map_err(|_| format!("bad door number {n:?}"))?;
            Ok(Control::Input(Input::Door(n), level(l)?))
        }
        ["supply", mv] => Ok(Control::Supply(mv.parse().map_err(|_| format!("bad millivolts {mv:?}"))?)),
        ["quit"] => Ok(Control::Quit),
        _ => Err(format!("unknown command {line:?} (input ignition|panic 0|1, input door N 0|1, supply MV, quit)")),
    }
}

/// Prints one line and flushes it, so a test reading the pipe sees it at once.
fn say(line: std::fmt::Arguments<'_>) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn run(args: Args) -> io::Result<()> {
    let config = Config {
        debounce_ms: args.debounce_ms,
        heartbeat_ms: args.heartbeat_ms,
        power_low_mv: args.power_low_mv,
        power_hysteresis_mv: args.power_hysteresis_mv,
        link_timeout_ms: args.link_timeout_ms,
        outputs: args.outputs,
        ..Config::default()
    };
    let socket = UdpSocket::bind(args.listen)?;
    socket.set_read_timeout(Some(TICK))?;
    let start = Instant::now();
    let now = || u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
    let mut board = Board::new(config, INPUTS, concat!("io-sim ", env!("CARGO_PKG_VERSION")), now());
    board.measure_supply(args.supply_mv, now());

    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    say(format_args!("ready {}", socket.local_addr()?));

    let mut buf = [0u8; 2048];
    let mut out = [0u8; MAX_DATAGRAM];
    let mut link_lost = false;
    loop {
        loop {
            let line = match lines.try_recv() {
                Ok(line) => line,
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return Ok(()),
            };
            match parse_control(&line) {
                Ok(Control::Input(input, active)) => {
                    if !board.set_input_by_name(input, active, now()) {
                        say(format_args!("error the board has no input {input:?}"));
                    }
                }
                Ok(Control::Supply(mv)) => board.measure_supply(mv, now()),
                Ok(Control::Quit) => return Ok(()),
                Ok(Control::Nothing) => {}
                Err(e) => say(format_args!("error {e}")),
            }
        }

        match socket.recv_from(&mut buf) {
            Ok((_, from)) if from.ip() != args.unit.ip() => say(format_args!("ignored {from}")),
            Ok((len, _)) => match board.handle_datagram(&buf[..len], now()) {
                Ok(UnitCommand::SetOutput { output, on }) => {
                    say(format_args!("output {output} {}", if on { "on" } else { "off" }))
                }
                Ok(UnitCommand::KeepAlive) => say(format_args!("keepalive")),
                Err(Error::NoSuchOutput { output, .. }) => say(format_args!("rejected output {output}")),
                Err(e) => say(format_args!("garbage {e}")),
            },
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
            // An ICMP error from an earlier send (nobody listening at the unit's port yet).
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
            Err(e) => return Err(e),
        }

        board.poll(now());
        if board.link_lost() && !link_lost {
            say(format_args!("link lost"));
        }
        link_lost = board.link_lost();
        while let Some(datagram) = board.next_datagram(&mut out) {
            match socket.send_to(datagram, args.unit) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
                Err(e) => eprintln!("io-sim: cannot send to {}: {e}", args.unit),
            }
        }
    }
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("io-sim: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_lines_parse() {
        assert_eq!(parse_control("input ignition 1"), Ok(Control::Input(Input::Ignition, true)));
        assert_eq!(parse_control("  input door 2 0 "), Ok(Control::Input(Input::Door(2), false)));
        assert_eq!(parse_control("input panic 1"), Ok(Control::Input(Input::Panic, true)));
        assert_eq!(parse_control("supply 11800"), Ok(Control::Supply(11_800)));
        assert_eq!(parse_control("quit"), Ok(Control::Quit));
        assert_eq!(parse_control(""), Ok(Control::Nothing));
        assert_eq!(parse_control("# comment"), Ok(Control::Nothing));
        for bad in ["input ignition 2", "input door x 1", "supply -1", "supply 70000", "jump", "input door 1"] {
            assert!(parse_control(bad).is_err(), "{bad}");
        }
    }
}
