//! Compiles the board description parser (`boards/board.rs`, to move into the edge crate), runs
//! its unit tests and checks that the committed board files load.

#[path = "../../board.rs"]
mod board;

use std::path::Path;

use board::{Board, Companion, Ignition, PartitionRole};

fn load(name: &str) -> Board {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(name).join("board.toml");
    Board::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn the_committed_boards_load() {
    for name in ["rpi-cm4", "imx8mp"] {
        let board = load(name);
        assert_eq!(board.board.name, name);
        assert_eq!(board.storage.mount, Path::new("/var/lib/convoy"));
        assert!(board.partitions.iter().any(|p| p.role == PartitionRole::Data && p.label == "convoy-data"));
        assert!(matches!(board.companion, Companion::Udp { board, .. } if board.port() == 47800));
    }
    assert!(matches!(load("rpi-cm4").ignition, Ignition::Gpio { line: 17, .. }));
    assert_eq!(load("imx8mp").ignition, Ignition::Companion);
}

#[test]
fn on_an_empty_root_everything_is_reported_missing_not_a_crash() {
    let root = std::env::temp_dir().join("convoy-board-test-empty-root-that-does-not-exist");
    let missing = load("imx8mp").check_under(&root);
    let required: Vec<_> = missing.iter().filter(|m| m.required).map(|m| m.path.clone()).collect();
    assert_eq!(required, [Path::new("/dev/mmcblk2p4"), Path::new("/var/lib/convoy")]);
    assert_eq!(missing.len(), 8, "{missing:#?}");
    // And on this machine, whatever it has: a list, not a crash.
    for m in load("rpi-cm4").check() {
        assert!(m.to_string().contains(" is missing: "));
    }
}
