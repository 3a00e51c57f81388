#!/usr/bin/env bash
# CI for boards/: io-logic's host tests and its no_std build for the MCU, io-sim's tests (the
# simulator as a process), then the firmware (its own workspace): fmt, clippy, release build,
# size. The board description parser and the committed board files are tested by the edge crate
# (edge/src/board.rs).
# Run from anywhere; honours CARGO_TARGET_DIR (the firmware then builds under it too).
set -euo pipefail
cd "$(dirname "$0")/.."

target=thumbv7em-none-eabihf
rustup target list --installed | grep -qx "$target" || rustup target add "$target"

# Host tests of io-logic, io-sim and the board files (edge) run with the workspace's `cargo test`
# (`./dev test`).
cargo build -p io-logic --target "$target"

(
    cd boards/io-firmware
    cargo fmt --check
    cargo clippy --locked --release -- -D warnings
    cargo build --locked --release
)

elf="${CARGO_TARGET_DIR:-boards/io-firmware/target}/$target/release/io-firmware"
llvm_size="$(rustc --print sysroot)/lib/rustlib/x86_64-unknown-linux-gnu/bin/llvm-size"
if command -v llvm-size >/dev/null; then
    llvm-size "$elf"
elif [ -x "$llvm_size" ]; then
    "$llvm_size" "$elf"
else
    readelf -SW "$elf" | grep -E ' \.(vector_table|text|rodata|data|bss|uninit) '
fi
echo "flash = text + data, RAM = data + bss (+ stack); STM32F429ZI: 2048 KiB flash, 192 KiB RAM"
