//! Board descriptions (`boards/<board>/board.toml`): what the edge needs to know about the box it
//! runs on — its storage, hardware watchdog, ignition sense, status LEDs, the link to the I/O
//! companion and the image's partition layout. The edge reads its board at start with
//! [`Board::load`] and checks the devices with [`Board::check`]: a missing device is a clear
//! message, never a crash.
//!
//! The committed descriptions live in `boards/<board>/board.toml`; the tests at the end of this
//! file load each of them.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;

/// A board description.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Board {
    /// What the board is.
    pub board: BoardInfo,
    /// Where the media store lives.
    pub storage: Storage,
    /// The hardware watchdog the edge feeds.
    pub watchdog: Watchdog,
    /// Where the ignition state comes from.
    pub ignition: Ignition,
    /// Status LEDs by role (`status`, `fault`, …): each a `/sys/class/leds/NAME` directory.
    #[serde(default)]
    pub leds: BTreeMap<String, PathBuf>,
    /// The link to the I/O companion board.
    pub companion: Companion,
    /// The image's partitions, in disk order.
    pub partitions: Vec<Partition>,
}

/// What the board is.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardInfo {
    /// Short name, the same as the board's folder (`rpi-cm4`).
    pub name: String,
    /// The product, in words.
    pub model: String,
    /// The system on chip.
    pub soc: String,
}

/// The media store's file system.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Storage {
    /// The block device holding it (the `data` partition).
    pub device: PathBuf,
    /// Where it is mounted.
    pub mount: PathBuf,
    /// Its file system type.
    pub filesystem: String,
}

/// The hardware watchdog.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Watchdog {
    /// Its character device.
    pub device: PathBuf,
    /// The timeout the edge sets, in seconds.
    pub timeout_s: u32,
}

/// Where the ignition state comes from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "source", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Ignition {
    /// The I/O companion's `Ignition` input.
    Companion,
    /// A GPIO line the edge reads itself (through an opto-isolator).
    Gpio {
        /// The GPIO chip's character device.
        chip: PathBuf,
        /// The line's offset on the chip.
        line: u32,
        /// Whether a low level means ignition on.
        #[serde(default)]
        active_low: bool,
    },
}

/// The link to the I/O companion board.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "link", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Companion {
    /// UDP over Ethernet (what `boards/io-firmware` speaks).
    Udp {
        /// The network interface the companion is on.
        interface: String,
        /// The companion's address and port.
        board: SocketAddr,
        /// Where the edge listens for the companion's messages.
        listen: SocketAddr,
    },
    /// A serial line.
    Uart {
        /// The serial device.
        device: PathBuf,
        /// Its speed.
        baud: u32,
    },
}

/// What a partition is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartitionRole {
    /// Boot files (firmware, kernel or boot script).
    Boot,
    /// Root file system, slot A.
    RootfsA,
    /// Root file system, slot B.
    RootfsB,
    /// The data partition: the media store, never touched by an image update.
    Data,
}

/// One partition of the image.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Partition {
    /// What it is for.
    pub role: PartitionRole,
    /// Its file system label.
    pub label: String,
    /// Its block device on the running system.
    pub device: PathBuf,
    /// Its file system type.
    pub filesystem: String,
    /// Its size; absent for the last partition, which takes the rest of the disk.
    pub size_mib: Option<u32>,
}

/// Why a board description could not be used.
#[derive(Debug, thiserror::Error)]
pub enum BoardError {
    /// The file could not be read.
    #[error("cannot read the board description {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a valid board description.
    #[error("the board description {path} is not valid TOML for a board: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: toml::de::Error,
    },
    /// The description parses but does not hold together.
    #[error("the board description {path} is inconsistent: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// A device the board description names that the running system lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingDevice {
    /// What the device is for ("storage device", "watchdog", "LED status", …).
    pub what: String,
    /// The path that does not exist.
    pub path: PathBuf,
    /// Whether the edge cannot record without it (otherwise it runs with less).
    pub required: bool,
    /// What to do about it.
    pub hint: String,
}

impl fmt::Display for MissingDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} is missing: {}", self.what, self.path.display(), self.hint)
    }
}

impl FromStr for Board {
    type Err = BoardError;

    /// Parses and validates a description held in memory (errors name the path `<string>`).
    fn from_str(text: &str) -> Result<Board, BoardError> {
        Board::parse(text, Path::new("<string>"))
    }
}

impl Board {
    /// Reads, parses and validates a board description.
    pub fn load(path: impl AsRef<Path>) -> Result<Board, BoardError> {
        let path = path.as_ref();
        let text =
            std::fs::read_to_string(path).map_err(|source| BoardError::Read { path: path.to_owned(), source })?;
        Board::parse(&text, path)
    }

    fn parse(text: &str, path: &Path) -> Result<Board, BoardError> {
        let board: Board =
            toml::from_str(text).map_err(|source| BoardError::Parse { path: path.to_owned(), source })?;
        board.validate().map_err(|reason| BoardError::Invalid { path: path.to_owned(), reason })?;
        Ok(board)
    }

    fn validate(&self) -> Result<(), String> {
        for role in [PartitionRole::Boot, PartitionRole::RootfsA, PartitionRole::RootfsB, PartitionRole::Data] {
            let count = self.partitions.iter().filter(|p| p.role == role).count();
            if count != 1 {
                return Err(format!("needs exactly one {role:?} partition, has {count}"));
            }
        }
        let data = self.partitions.iter().find(|p| p.role == PartitionRole::Data).expect("checked above");
        if data.device != self.storage.device {
            return Err(format!(
                "storage device {} is not the data partition {}",
                self.storage.device.display(),
                data.device.display()
            ));
        }
        if let Some(p) = self.partitions.iter().rev().skip(1).find(|p| p.size_mib.is_none()) {
            return Err(format!("partition {} has no size_mib but is not the last", p.label));
        }
        let mut paths = vec![&self.storage.device, &self.storage.mount, &self.watchdog.device];
        paths.extend(self.leds.values());
        paths.extend(self.partitions.iter().map(|p| &p.device));
        if let Ignition::Gpio { chip, .. } = &self.ignition {
            paths.push(chip);
        }
        if let Companion::Uart { device, .. } = &self.companion {
            paths.push(device);
        }
        if let Some(p) = paths.iter().find(|p| !p.is_absolute()) {
            return Err(format!("path {} is not absolute", p.display()));
        }
        if self.watchdog.timeout_s == 0 {
            return Err("watchdog timeout_s must be at least 1".into());
        }
        Ok(())
    }

    /// The devices this board names that do not exist here. Empty when all is well; the edge
    /// refuses to start on a `required` one and logs the others.
    ///
    /// A block device or watchdog under `/dev` also counts as present when sysfs lists it
    /// (`/sys/class/block/NAME`, `/sys/class/watchdog/NAME`): systemd's `PrivateDevices=yes`
    /// hides the `/dev` node from the edge, not the device.
    pub fn check(&self) -> Vec<MissingDevice> {
        self.check_under(Path::new("/"))
    }

    /// [`Board::check`] with every absolute path taken under `root` (for tests and images).
    pub fn check_under(&self, root: &Path) -> Vec<MissingDevice> {
        let mut missing = Vec::new();
        let under_root = |path: &Path| root.join(path.strip_prefix("/").unwrap_or(path));
        let in_sysfs = |path: &Path| {
            path.parent() == Some(Path::new("/dev"))
                && path.file_name().is_some_and(|name| {
                    ["sys/class/block", "sys/class/watchdog"].iter().any(|class| root.join(class).join(name).exists())
                })
        };
        let mut need = |what: String, path: &Path, required: bool, hint: String| {
            if !under_root(path).exists() && !in_sysfs(path) {
                missing.push(MissingDevice { what, path: path.to_owned(), required, hint });
            }
        };
        need(
            "storage device".into(),
            &self.storage.device,
            true,
            format!(
                "the data partition (label {}) is not there: is this the right board file, and was the image \
                 written whole?",
                self.data_label()
            ),
        );
        need(
            "storage mount point".into(),
            &self.storage.mount,
            true,
            format!("create it in the image and mount {} there", self.storage.device.display()),
        );
        need(
            "watchdog".into(),
            &self.watchdog.device,
            false,
            "enable the SoC's watchdog driver in the kernel; without it a hung unit is not reset".into(),
        );
        if let Ignition::Gpio { chip, line, .. } = &self.ignition {
            need(
                "ignition GPIO chip".into(),
                chip,
                false,
                format!("ignition (line {line}) cannot be read: enable the GPIO character device in the kernel"),
            );
        }
        for (role, path) in &self.leds {
            need(
                format!("{role} LED"),
                path,
                false,
                "the device tree names this LED differently: fix `leds` in the board file".into(),
            );
        }
        match &self.companion {
            Companion::Udp { interface, board, .. } => need(
                "I/O companion network interface".into(),
                &Path::new("/sys/class/net").join(interface),
                false,
                format!("no inputs, outputs or power warning until {interface} exists to reach the board at {board}"),
            ),
            Companion::Uart { device, .. } => need(
                "I/O companion serial port".into(),
                device,
                false,
                "no inputs, outputs or power warning: enable the UART in the device tree".into(),
            ),
        }
        for p in &self.partitions {
            if p.role != PartitionRole::Data {
                need(
                    format!("{:?} partition", p.role),
                    &p.device,
                    false,
                    format!("label {}: image updates to this slot will fail", p.label),
                );
            }
        }
        missing
    }

    fn data_label(&self) -> &str {
        self.partitions.iter().find(|p| p.role == PartitionRole::Data).map_or("?", |p| p.label.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
[board]
name = "test"
model = "A test board"
soc = "none"

[storage]
device = "/dev/mmcblk0p4"
mount = "/var/lib/convoy"
filesystem = "ext4"

[watchdog]
device = "/dev/watchdog0"
timeout_s = 15

[ignition]
source = "gpio"
chip = "/dev/gpiochip0"
line = 17
active_low = true

[leds]
status = "/sys/class/leds/ACT"

[companion]
link = "udp"
interface = "eth0"
board = "192.168.77.2:47800"
listen = "192.168.77.1:47801"

[[partitions]]
role = "boot"
label = "boot"
device = "/dev/mmcblk0p1"
filesystem = "vfat"
size_mib = 128

[[partitions]]
role = "rootfs-a"
label = "rootfsA"
device = "/dev/mmcblk0p2"
filesystem = "ext4"
size_mib = 1024

[[partitions]]
role = "rootfs-b"
label = "rootfsB"
device = "/dev/mmcblk0p3"
filesystem = "ext4"
size_mib = 1024

[[partitions]]
role = "data"
label = "convoy-data"
device = "/dev/mmcblk0p4"
filesystem = "ext4"
"#;

    fn invalid(text: &str) -> String {
        match text.parse::<Board>() {
            Err(e @ (BoardError::Invalid { .. } | BoardError::Parse { .. })) => e.to_string(),
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn parses_every_part() {
        let board: Board = EXAMPLE.parse().unwrap();
        assert_eq!(board.storage.mount, Path::new("/var/lib/convoy"));
        assert_eq!(board.ignition, Ignition::Gpio { chip: "/dev/gpiochip0".into(), line: 17, active_low: true });
        assert_eq!(board.leds["status"], Path::new("/sys/class/leds/ACT"));
        let Companion::Udp { board: addr, .. } = &board.companion else { panic!() };
        assert_eq!(addr.port(), 47800);
        assert_eq!(board.partitions.len(), 4);
        assert_eq!(board.partitions[3].size_mib, None);
    }

    #[test]
    fn companion_ignition_and_uart_parse() {
        let text = EXAMPLE
            .replace(
                "source = \"gpio\"\nchip = \"/dev/gpiochip0\"\nline = 17\nactive_low = true",
                "source = \"companion\"",
            )
            .replace(
                "link = \"udp\"\ninterface = \"eth0\"\nboard = \"192.168.77.2:47800\"\nlisten = \"192.168.77.1:47801\"",
                "link = \"uart\"\ndevice = \"/dev/ttyAMA1\"\nbaud = 115200",
            );
        let board: Board = text.parse().unwrap();
        assert_eq!(board.ignition, Ignition::Companion);
        assert_eq!(board.companion, Companion::Uart { device: "/dev/ttyAMA1".into(), baud: 115_200 });
    }

    #[test]
    fn inconsistent_descriptions_are_refused_with_a_reason() {
        let e = invalid(&EXAMPLE.replace("device = \"/dev/mmcblk0p4\"\nmount", "device = \"/dev/sda1\"\nmount"));
        assert!(e.contains("storage device /dev/sda1 is not the data partition /dev/mmcblk0p4"), "{e}");
        let e = invalid(&EXAMPLE.replace("role = \"rootfs-b\"", "role = \"rootfs-a\""));
        assert!(e.contains("exactly one RootfsA partition, has 2"), "{e}");
        let e = invalid(&EXAMPLE.replace(
            "size_mib = 1024\n\n[[partitions]]\nrole = \"rootfs-b\"",
            "\n[[partitions]]\nrole = \"rootfs-b\"",
        ));
        assert!(e.contains("partition rootfsA has no size_mib"), "{e}");
        let e = invalid(&EXAMPLE.replace("\"/sys/class/leds/ACT\"", "\"leds/ACT\""));
        assert!(e.contains("path leds/ACT is not absolute"), "{e}");
        let e = invalid(&EXAMPLE.replace("timeout_s = 15", "timeout_s = 0"));
        assert!(e.contains("timeout_s"), "{e}");
        let e = invalid(&EXAMPLE.replace("soc = \"none\"", "soc = \"none\"\ncolour = \"red\""));
        assert!(e.contains("colour"), "unknown fields are errors: {e}");
        let e = invalid(&EXAMPLE.replace("board = \"192.168.77.2:47800\"", "board = \"nowhere\""));
        assert!(e.contains("not valid TOML for a board"), "{e}");
    }

    #[test]
    fn load_names_the_file() {
        let e = Board::load("/nonexistent/board.toml").unwrap_err();
        assert!(matches!(e, BoardError::Read { .. }));
        assert!(e.to_string().contains("/nonexistent/board.toml"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("board.toml");
        std::fs::write(&path, "[board]\nname = 1\n").unwrap();
        let e = Board::load(&path).unwrap_err();
        assert!(matches!(e, BoardError::Parse { .. }) && e.to_string().contains(&*path.to_string_lossy()), "{e}");
        std::fs::write(&path, EXAMPLE).unwrap();
        assert_eq!(Board::load(&path).unwrap(), EXAMPLE.parse().unwrap());
    }

    #[test]
    fn check_reports_each_missing_device_with_what_to_do() {
        let board: Board = EXAMPLE.parse().unwrap();
        let root = tempfile::tempdir().unwrap();
        let all = [
            "dev/mmcblk0p1",
            "dev/mmcblk0p2",
            "dev/mmcblk0p3",
            "dev/mmcblk0p4",
            "dev/watchdog0",
            "dev/gpiochip0",
            "sys/class/leds/ACT/brightness",
            "sys/class/net/eth0/address",
            "var/lib/convoy/.keep",
        ];
        for file in all {
            let path = root.path().join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, b"").unwrap();
        }
        assert_eq!(board.check_under(root.path()), []);

        std::fs::remove_file(root.path().join("dev/watchdog0")).unwrap();
        std::fs::remove_file(root.path().join("dev/mmcblk0p4")).unwrap();
        std::fs::remove_dir_all(root.path().join("sys/class/leds/ACT")).unwrap();
        std::fs::remove_dir_all(root.path().join("sys/class/net/eth0")).unwrap();
        let missing = board.check_under(root.path());
        let lines: Vec<String> = missing.iter().map(ToString::to_string).collect();
        assert_eq!(missing.len(), 4, "{lines:#?}");
        assert_eq!(missing.iter().filter(|m| m.required).count(), 1);
        assert!(
            lines[0].starts_with("storage device /dev/mmcblk0p4 is missing: the data partition (label convoy-data)")
        );
        assert!(lines[1].starts_with("watchdog /dev/watchdog0 is missing: enable"));
        assert!(lines[2].starts_with("status LED /sys/class/leds/ACT is missing"));
        assert!(lines[3].starts_with("I/O companion network interface /sys/class/net/eth0 is missing"));
        assert!(lines[3].contains("192.168.77.2:47800"));
    }

    #[test]
    fn a_device_hidden_from_dev_but_in_sysfs_is_present() {
        let board: Board = EXAMPLE.parse().unwrap();
        let root = tempfile::tempdir().unwrap();
        for dir in ["var/lib/convoy", "sys/class/block/mmcblk0p4", "sys/class/watchdog/watchdog0"] {
            std::fs::create_dir_all(root.path().join(dir)).unwrap();
        }
        let missing = board.check_under(root.path());
        assert!(missing.iter().all(|m| !m.required), "{missing:#?}");
        assert!(!missing.iter().any(|m| m.what == "watchdog"), "{missing:#?}");
        assert!(missing.iter().any(|m| m.path == Path::new("/dev/mmcblk0p1")), "{missing:#?}");
    }

    fn committed(name: &str) -> Board {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../boards").join(name).join("board.toml");
        Board::load(&path).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_committed_boards_load() {
        for name in ["rpi-cm4", "imx8mp"] {
            let board = committed(name);
            assert_eq!(board.board.name, name);
            assert_eq!(board.storage.mount, Path::new("/var/lib/convoy"));
            assert!(board.partitions.iter().any(|p| p.role == PartitionRole::Data && p.label == "convoy-data"));
            assert!(matches!(board.companion, Companion::Udp { board, .. } if board.port() == 47800));
        }
        assert!(matches!(committed("rpi-cm4").ignition, Ignition::Gpio { line: 17, .. }));
        assert_eq!(committed("imx8mp").ignition, Ignition::Companion);
    }

    #[test]
    fn on_an_empty_root_everything_is_reported_missing_not_a_crash() {
        let root = std::env::temp_dir().join("convoy-board-test-empty-root-that-does-not-exist");
        let missing = committed("imx8mp").check_under(&root);
        let required: Vec<_> = missing.iter().filter(|m| m.required).map(|m| m.path.clone()).collect();
        assert_eq!(required, [Path::new("/dev/mmcblk2p4"), Path::new("/var/lib/convoy")]);
        assert_eq!(missing.len(), 8, "{missing:#?}");
        // And on this machine, whatever it has: a list, not a crash.
        for m in committed("rpi-cm4").check() {
            assert!(m.to_string().contains(" is missing: "));
        }
    }
}
