#!/usr/bin/env bash
# Two edge builds recording the same K simulated cameras at the same time: each round prints
# both processes' CPU milliseconds and time slices over 20 s, summed over their threads from
# /proc/PID/task/*/schedstat (nanoseconds, not clock ticks).
#
#   scripts/edge_pair_bench.sh DIR_A DIR_B [K] [ROUNDS]     (K = 4, ROUNDS = 6)
#
# DIR_A and DIR_B each hold an `edge` binary (e.g. `cargo build --profile unit -p edge` of two
# commits); DIR_A also holds `sim-camera` (`cargo build --release -p sim-camera`). The cameras
# send a 4 Mbit/s 1280x720 clip out of step (`--stagger`); stores go to /dev/shm.
#
# Why pairs: on this machine the same build's CPU for the same work moves by up to a third from
# one minute to the next (the host), far more than most changes; both edges in one window see
# the same host, so their ratio holds where back-to-back runs do not.
set -euo pipefail
a=$1 b=$2 k=${3:-4} rounds=${4:-6}
work=/dev/shm/edge-pair
rm -rf "$work" && mkdir -p "$work"
clip=$work/clip.h264
# The clip `record_bench` makes (hil-tests/src/bench_clip.rs): 10 s, 4 Mbit/s, a key frame every 2 s.
ffmpeg -y -nostdin -loglevel error -f lavfi -i "testsrc2=size=1280x720:rate=25:duration=10,noise=alls=12:allf=t" \
  -c:v libx264 -pix_fmt yuv420p -profile:v main -preset veryfast \
  -x264-params keyint=50:min-keyint=50:scenecut=0:bframes=0:aud=1:slices=1 \
  -b:v 4000k -maxrate 4000k -bufsize 4000k -bsf:v h264_mp4toannexb -f h264 "$clip"

mounts=()
for i in $(seq 0 $((k - 1))); do mounts+=(--mount "/cam$i"); done
"$a/sim-camera" --listen 127.0.0.1:0 --clip "$clip" --stagger "${mounts[@]}" >"$work/sim-camera.log" 2>&1 &
pids=($!)
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
url=""
for _ in $(seq 1 100); do
  url=$(grep -o 'rtsp://[^ ]*' "$work/sim-camera.log" | head -1 || true)
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || { echo "sim-camera did not start:" >&2; cat "$work/sim-camera.log" >&2; exit 1; }
url=${url%/}

start_edge() { # NAME DIR
  mkdir -p "$work/$1"
  {
    printf 'unit_id = "%s"\n[store]\npath = "%s/store"\nsegment_bytes = 33554432\n[web]\nlisten = "127.0.0.1:0"\n' "$1" "$work/$1"
    for i in $(seq 0 $((k - 1))); do printf '[[camera]]\nid = "cam%d"\nurl = "%s/cam%d"\n' "$i" "$url" "$i"; done
  } >"$work/$1/edge.toml"
  "$2/edge" run --config "$work/$1/edge.toml" >"$work/$1/edge.log" 2>&1 &
  pids+=($!)
}
start_edge a "$a"
pid_a=${pids[-1]}
start_edge b "$b"
pid_b=${pids[-1]}
sleep $((12 + k / 4)) # every camera streaming, rates measured, naps on

# Nanoseconds on CPU and time slices, summed over PID's threads.
usage() { cat /proc/"$1"/task/*/schedstat | awk '{ns += $1; slices += $3} END {printf "%.0f %.0f\n", ns, slices}'; }

echo "| time (UTC) | cameras | A: CPU ms / slices in 20 s | B: CPU ms / slices in 20 s | B / A |"
echo "|---|---:|---:|---:|---:|"
for _ in $(seq 1 "$rounds"); do
  read -r a0 as0 < <(usage "$pid_a")
  read -r b0 bs0 < <(usage "$pid_b")
  sleep 20
  read -r a1 as1 < <(usage "$pid_a")
  read -r b1 bs1 < <(usage "$pid_b")
  awk -v t="$(date -u +%H:%M:%S)" -v k="$k" -v a=$((a1 - a0)) -v as=$((as1 - as0)) -v b=$((b1 - b0)) -v bs=$((bs1 - bs0)) \
    'BEGIN {printf "| %s | %d | %.1f / %d | %.1f / %d | %.3f |\n", t, k, a / 1e6, as, b / 1e6, bs, b / a}'
done
for p in "$pid_a" "$pid_b"; do kill -0 "$p" 2>/dev/null || { echo "an edge exited early; see $work/*/edge.log" >&2; exit 1; }; done
