#!/usr/bin/env bash
# aarch64 (64-bit ARM edge boards): cross-build `edge`, run the edge crates' tests under
# qemu-user, and smoke-run the real aarch64 binary recording a real RTSP camera on loopback.
#
#   scripts/aarch64.sh            setup, build, test, smoke (what CI runs)
#   scripts/aarch64.sh build test only those phases (any of: setup build test smoke)
#
# Installs what it needs when missing (Debian packages via apt, using sudo when not root; the
# Rust target via rustup). Honours CARGO_TARGET_DIR. The runner and linker come from
# .cargo/config.toml. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=aarch64-unknown-linux-gnu
SYSROOT=/usr/aarch64-linux-gnu
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
out_dir="$target_dir/$TARGET"

# Cross toolchain (gcc-aarch64-linux-gnu), emulator (qemu-user), strip
# (binutils-aarch64-linux-gnu); the GStreamer RTSP server is the smoke run's camera, ffmpeg
# makes and checks media in mp4-export's tests.
APT_PACKAGES=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross binutils-aarch64-linux-gnu qemu-user
  gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-tools python3-gst-1.0 ffmpeg curl)

# C code in the dependency tree (bundled SQLite, ring, blake3's assembly, …) builds with the
# cross compiler. cc-rs would guess these names too; saying them keeps a host `cc` from being used.
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
export QEMU_LD_PREFIX="$SYSROOT"

# Tests skipped under qemu-user (none so far). Each entry is a `cargo test` filter passed as
# `--skip`; say why next to it.
SKIP_TESTS=()

SMOKE_FRAMES=${AARCH64_SMOKE_FRAMES:-50}        # wait until the camera has recorded more than this
SMOKE_TIMEOUT_S=${AARCH64_SMOKE_TIMEOUT_S:-90}  # … for at most this long

step() { printf '\n==> %s\n' "$*"; }
die() { printf '\naarch64: FAILED: %s\n' "$*" >&2; exit 1; }
now() { printf '%s' "$EPOCHREALTIME"; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", b - a }'; }

declare -A PHASE_S=()
PHASES_RUN=()
timed() { # timed NAME FUNCTION: runs it, records its wall time
  local name=$1 t0
  t0=$(now)
  "$2"
  PHASE_S[$name]=$(secs "$t0" "$(now)")
  PHASES_RUN+=("$name")
}

# ---------------------------------------------------------------------------------------- setup
setup() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    step "installing Debian packages: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  rustup target list --installed | grep -qx "$TARGET" || { step "adding Rust target $TARGET"; rustup target add "$TARGET"; }
  for tool in aarch64-linux-gnu-gcc aarch64-linux-gnu-strip qemu-aarch64 /usr/bin/python3 curl; do
    command -v "$tool" >/dev/null || die "$tool is missing after setup"
  done
  [ -e "$SYSROOT/lib/ld-linux-aarch64.so.1" ] || die "$SYSROOT/lib/ld-linux-aarch64.so.1 is missing (libc6-arm64-cross)"
}

# ---------------------------------------------------------------------------------------- build
STRIPPED_BYTES=""
build() {
  step "cargo build --release --target $TARGET -p edge"
  cargo build --locked --release --target "$TARGET" -p edge
  local bin="$out_dir/release/edge"
  file_is_aarch64 "$bin"
  aarch64-linux-gnu-strip -o "$bin.stripped" "$bin"
  STRIPPED_BYTES=$(stat -c %s "$bin.stripped")
  printf 'edge for %s: %s bytes unstripped, %s bytes (%s MiB) stripped (%s)\n' "$TARGET" \
    "$(stat -c %s "$bin")" "$STRIPPED_BYTES" "$(mib "$STRIPPED_BYTES")" "$bin.stripped"
  # The binary starts at all under emulation.
  qemu-aarch64 -L "$SYSROOT" "$bin" --version
}

file_is_aarch64() {
  # ELF header: e_machine (offset 18, little-endian) is 0xB7 for AArch64.
  [ "$(od -An -tx1 -j18 -N2 "$1" | tr -d ' \n')" = "b700" ] || die "$1 is not an AArch64 ELF binary"
}

mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }

# ----------------------------------------------------------------------------------------- test
TEST_CRATES=(-p media-store -p edge -p mp4-export -p protocol -p link)
TESTS_PASSED=""
TESTS_IGNORED=""
test_build() {
  step "cargo test --no-run --target $TARGET ${TEST_CRATES[*]}"
  cargo test --locked --target "$TARGET" "${TEST_CRATES[@]}" --no-run
}

test_run() {
  step "cargo test --target $TARGET ${TEST_CRATES[*]} (under qemu-aarch64)"
  local log="$out_dir/aarch64-test.log" skip=()
  mkdir -p "$out_dir"
  for t in "${SKIP_TESTS[@]}"; do skip+=(--skip "$t"); done
  # --no-fail-fast: one failing crate does not hide the others' results.
  if ! cargo test --locked --target "$TARGET" "${TEST_CRATES[@]}" --no-fail-fast -- "${skip[@]}" 2>&1 | tee "$log"; then
    grep -E '^(test .* FAILED|failures:|    [a-z_:]+$)' "$log" | head -40 >&2 || true
    die "tests failed under qemu-aarch64 (full log: $log)"
  fi
  TESTS_PASSED=$(awk '/^test result:/ { for (i = 1; i <= NF; i++) if ($(i+1) ~ /^passed/) s += $i } END { print s + 0 }' "$log")
  TESTS_IGNORED=$(awk '/^test result:/ { for (i = 1; i <= NF; i++) if ($(i+1) ~ /^ignored/) s += $i } END { print s + 0 }' "$log")
  [ "$TESTS_PASSED" -gt 0 ] || die "no tests ran (log: $log)"
}

# ---------------------------------------------------------------------------------------- smoke
SMOKE_FRAMES_SEEN=""
SMOKE_VERIFY_FRAMES=""
smoke_dir=""
cam_pid=""
edge_pid=""

cleanup() {
  local rc=$?
  for pid in $edge_pid $cam_pid; do
    kill -0 "$pid" 2>/dev/null && { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
  done
  if [ -n "$smoke_dir" ]; then
    if [ $rc -eq 0 ]; then rm -rf "$smoke_dir"; else echo "smoke run's files kept in $smoke_dir" >&2; fi
  fi
}
trap cleanup EXIT

# wait_line FILE PATTERN TIMEOUT_S PID: the first line of FILE matching PATTERN, while PID lives.
wait_line() {
  local file=$1 pattern=$2 timeout=$3 pid=$4 deadline=$((SECONDS + $3)) line
  while [ $SECONDS -lt $deadline ]; do
    line=$(grep -m1 -- "$pattern" "$file" 2>/dev/null || true)
    [ -n "$line" ] && { printf '%s' "$line"; return 0; }
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.2
  done
  return 1
}

edge_log_tail() {
  echo "---- last lines of the edge's log ($smoke_dir/edge.log) ----" >&2
  tail -n 30 "$smoke_dir/edge.log" >&2 || true
}

smoke() {
  local bin="$out_dir/release/edge" line url web status frames
  [ -x "$bin" ] || die "$bin is missing: run the build phase first"
  step "smoke: aarch64 edge under qemu records GStreamer's RTSP server on loopback"
  smoke_dir=$(mktemp -d "${TMPDIR:-/tmp}/convoy-aarch64-smoke.XXXXXX")

  # The fixture's third mount shows `snow` (noise): a full-bitrate stream (~5 KB a frame), so
  # the small segments below fill and get sealed. The first two are never played (not encoded).
  /usr/bin/python3 hil-tests/fixtures/gst_rtsp_camera.py --port 0 --mount unused-ball --mount unused-smpte \
    --mount cam >"$smoke_dir/camera.log" 2>&1 &
  cam_pid=$!
  line=$(wait_line "$smoke_dir/camera.log" "^ready rtsp://" 30 "$cam_pid") || {
    tail -n 20 "$smoke_dir/camera.log" >&2
    die "GStreamer's RTSP server did not start (log above)"
  }
  url="${line#ready }/cam"
  echo "camera: $url"

  # Small segments (the minimum, 64 KiB) so the run seals several: the BLAKE3 chain and
  # Ed25519 signatures run on aarch64 and `store verify` checks them.
  cat >"$smoke_dir/edge.toml" <<EOF
unit_id = "aarch64-smoke"
[store]
path = "$smoke_dir/store"
segment_bytes = 65536
[web]
listen = "127.0.0.1:0"
[[camera]]
id = "cam"
url = "$url"
EOF
  NO_COLOR=1 qemu-aarch64 -L "$SYSROOT" "$bin" run --config "$smoke_dir/edge.toml" >"$smoke_dir/edge.log" 2>&1 &
  edge_pid=$!
  line=$(wait_line "$smoke_dir/edge.log" "web listening on http://" 60 "$edge_pid") || {
    edge_log_tail
    die "the aarch64 edge did not start its web server"
  }
  web=${line##* }
  echo "edge (aarch64, qemu): $web"

  local deadline=$((SECONDS + SMOKE_TIMEOUT_S))
  frames=0
  while :; do
    kill -0 "$edge_pid" 2>/dev/null || { edge_log_tail; die "the aarch64 edge exited during the smoke run"; }
    status=$(curl -fsS --max-time 5 "$web/api/status" 2>/dev/null || true)
    if [ -n "$status" ]; then
      frames=$(printf '%s' "$status" | /usr/bin/python3 -c '
import json, sys
cams = [c for c in json.load(sys.stdin).get("cameras", []) if c["id"] == "cam"]
print(cams[0]["frames_recorded"] if cams else 0)')
    fi
    [ "$frames" -gt "$SMOKE_FRAMES" ] && break
    if [ $SECONDS -ge $deadline ]; then
      echo "last /api/status: ${status:-<no answer>}" >&2
      edge_log_tail
      die "camera 'cam' recorded only $frames frames in ${SMOKE_TIMEOUT_S}s (wanted > $SMOKE_FRAMES)"
    fi
    sleep 1
  done
  SMOKE_FRAMES_SEEN=$frames
  echo "status: cam recorded $frames frames; stopping the edge with SIGTERM"

  kill -TERM "$edge_pid"
  local rc=0 waited=0
  while kill -0 "$edge_pid" 2>/dev/null && [ $waited -lt 300 ]; do sleep 0.1; waited=$((waited + 1)); done
  if kill -0 "$edge_pid" 2>/dev/null; then edge_log_tail; die "the aarch64 edge did not exit within 30 s of SIGTERM"; fi
  wait "$edge_pid" || rc=$?
  edge_pid=""
  [ $rc -eq 0 ] || { edge_log_tail; die "the aarch64 edge exited with status $rc after SIGTERM"; }
  kill "$cam_pid" 2>/dev/null || true
  wait "$cam_pid" 2>/dev/null || true
  cam_pid=""

  step "smoke: aarch64 edge store verify --json"
  local report
  report=$(qemu-aarch64 -L "$SYSROOT" "$bin" store verify "$smoke_dir/store" --json) || {
    printf '%s\n' "$report" >&2
    die "edge store verify failed on the smoke run's store"
  }
  # ok, frames > 0, and every frame the status counted before the orderly stop is there.
  local verdict
  verdict=$(printf '%s' "$report" | /usr/bin/python3 -c '
import json, sys
r, seen = json.load(sys.stdin), int(sys.argv[1])
if r.get("ok") is not True or not r.get("frames", 0) > 0 or r["frames"] < seen:
    sys.exit("verify report: ok=%r frames=%r (status counted %d)" % (r.get("ok"), r.get("frames"), seen))
print(r["frames"], r["segments"])' "$SMOKE_FRAMES_SEEN") || {
    printf '%s\n' "$report" >&2
    die "edge store verify: the smoke run's store is not ok, empty or missing frames"
  }
  SMOKE_VERIFY_FRAMES=${verdict% *}
  echo "verify: ok, $SMOKE_VERIFY_FRAMES frames in ${verdict#* } segments"
}

# ----------------------------------------------------------------------------------------- main
phases=("$@")
[ ${#phases[@]} -gt 0 ] || phases=(setup build test smoke)
t_start=$(now)
for p in "${phases[@]}"; do
  case "$p" in
    setup) timed setup setup ;;
    build) timed "release build" build ;;
    test) timed "test build" test_build; timed "tests (qemu)" test_run ;;
    smoke) timed smoke smoke ;;
    *) die "unknown phase '$p' (phases: setup build test smoke)" ;;
  esac
done
total=$(secs "$t_start" "$(now)")

printf '\n==> aarch64 summary (%s, CARGO_TARGET_DIR=%s)\n' "$TARGET" "$target_dir"
printf '  %-28s %s\n' "stripped edge binary" "${STRIPPED_BYTES:+$STRIPPED_BYTES bytes ($(mib "$STRIPPED_BYTES") MiB)}"
printf '  %-28s %s\n' "tests passed under qemu" "${TESTS_PASSED:+$TESTS_PASSED passed, $TESTS_IGNORED ignored, ${#SKIP_TESTS[@]} skipped}"
printf '  %-28s %s\n' "smoke frames" "${SMOKE_FRAMES_SEEN:+$SMOKE_FRAMES_SEEN recorded, $SMOKE_VERIFY_FRAMES verified}"
for p in "${PHASES_RUN[@]}"; do printf '  %-28s %ss\n' "time: $p" "${PHASE_S[$p]}"; done
printf '  %-28s %ss\n' "time: total" "$total"
