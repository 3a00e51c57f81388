#!/usr/bin/env bash
# One edge recording K simulated cameras: CPU milliseconds and time slices of each of its
# threads (by name) over SECONDS, from /proc/PID/task/*/schedstat (nanoseconds, not clock
# ticks), with their minor page faults, and its resident memory at the end. With PERF=1, `perf record -g` runs over the same
# window (perf.data in the work dir).
#
#   scripts/edge_thread_cpu.sh DIR [K] [SECONDS]     (K = 4, SECONDS = 30)
#
# DIR holds `edge` (e.g. `cargo build --profile unit -p edge`) and `sim-camera`. The cameras
# send a 4 Mbit/s 1280x720 clip out of step (`--stagger`); the store goes to /dev/shm. The
# window starts 12 s + K/4 s after the edge, past its cameras' first seconds (no naps then).
set -euo pipefail
d=$1 secs=${3:-30}
work=/dev/shm/edge-thread-cpu
rm -rf "$work" && mkdir -p "$work"
# shellcheck source=scripts/bench_cameras.sh
. "$(dirname "$0")/bench_cameras.sh"
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
start_cameras "$work" "$d" "${2:-4}"
start_edge threads "$d"
pid=${pids[-1]}
sleep $((12 + k / 4))
# Thread name, nanoseconds run, time slices, minor page faults (`stat` field 10, counted after
# the name's closing parenthesis); summed over threads of the same name.
snap() {
  for t in /proc/"$pid"/task/*; do
    echo "$(tr ' ' _ <"$t/comm") $(cat "$t/schedstat") $(sed 's/.*) //' "$t/stat" | cut -d' ' -f8)"
  done | awk '{ns[$1] += $2; sl[$1] += $4; pf[$1] += $5} END {for (n in ns) print n, ns[n], sl[n], pf[n]}' | sort
}
snap >"$work/s0"
if [ -n "${PERF:-}" ]; then
  perf record -F 20000 -g -p "$pid" -o "$work/perf.data" -- sleep "$secs" >/dev/null 2>&1
else
  sleep "$secs"
fi
snap >"$work/s1"
rss=$(awk '/^(VmRSS|RssAnon|RssFile):/ {printf "%s %.1f MB  ", $1, $2 / 1024}' /proc/"$pid"/status)
join "$work/s0" "$work/s1" |
  awk '{ms = ($5 - $2) / 1e6; s = $6 - $3; f = $7 - $4; tm += ms; ts += s; tf += f
        printf "%-20s %8.1f ms %6d slices %7d page faults\n", $1, ms, s, f}
    END {printf "%-20s %8.1f ms %6d slices %7d page faults\n", "TOTAL", tm, ts, tf}'
echo "at the end: $rss"
