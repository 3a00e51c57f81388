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
a=$1 b=$2 rounds=${4:-6}
work=/dev/shm/edge-pair
rm -rf "$work" && mkdir -p "$work"
# shellcheck source=scripts/bench_cameras.sh
. "$(dirname "$0")/bench_cameras.sh"
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
start_cameras "$work" "$a" "${3:-4}"
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
