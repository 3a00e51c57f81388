#!/usr/bin/env bash
# One edge recording K simulated cameras: CPU milliseconds and time slices of each of its
# threads (by name) over SECONDS, from /proc/PID/task/*/schedstat (nanoseconds, not clock
# ticks). With PERF=1, `perf record -g` runs over the same window (perf.data in the work dir).
#
#   scripts/edge_thread_cpu.sh DIR [K] [SECONDS]     (K = 4, SECONDS = 30)
#
# DIR holds `edge` (e.g. `cargo build --profile unit -p edge`) and `sim-camera`. The cameras
# send a 4 Mbit/s 1280x720 clip out of step (`--stagger`); the store goes to /dev/shm. The
# window starts 12 s + K/4 s after the edge, past its cameras' first seconds (no naps then).
set -euo pipefail
d=$1 k=${2:-4} secs=${3:-30}
work=/dev/shm/edge-thread-cpu
rm -rf "$work" && mkdir -p "$work"
clip=$work/clip.h264
# The clip `record_bench` makes (hil-tests/src/bench_clip.rs): 10 s, 4 Mbit/s, a key frame every 2 s.
ffmpeg -y -nostdin -loglevel error -f lavfi -i "testsrc2=size=1280x720:rate=25:duration=10,noise=alls=12:allf=t" \
  -c:v libx264 -pix_fmt yuv420p -profile:v main -preset veryfast \
  -x264-params keyint=50:min-keyint=50:scenecut=0:bframes=0:aud=1:slices=1 \
  -b:v 4000k -maxrate 4000k -bufsize 4000k -bsf:v h264_mp4toannexb -f h264 "$clip"
mounts=()
for i in $(seq 0 $((k - 1))); do mounts+=(--mount "/cam$i"); done
"$d/sim-camera" --listen 127.0.0.1:0 --clip "$clip" --stagger "${mounts[@]}" >"$work/sim-camera.log" 2>&1 &
pids=($!)
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
url=""
for _ in $(seq 1 100); do
  url=$(grep -o 'rtsp://[^ ]*' "$work/sim-camera.log" | head -1 || true)
  [ -n "$url" ] && break
  sleep 0.1
done
url=${url%/}
{
  printf 'unit_id = "threads"\n[store]\npath = "%s/store"\nsegment_bytes = 33554432\n[web]\nlisten = "127.0.0.1:0"\n' "$work"
  for i in $(seq 0 $((k - 1))); do printf '[[camera]]\nid = "cam%d"\nurl = "%s/cam%d"\n' "$i" "$url" "$i"; done
} >"$work/edge.toml"
"$d/edge" run --config "$work/edge.toml" >"$work/edge.log" 2>&1 &
pid=$!
pids+=("$pid")
sleep $((12 + k / 4))
# Thread name, nanoseconds run, time slices; summed over threads of the same name.
snap() {
  for t in /proc/"$pid"/task/*; do echo "$(tr ' ' _ <"$t/comm") $(cat "$t/schedstat")"; done |
    awk '{ns[$1] += $2; sl[$1] += $4} END {for (n in ns) print n, ns[n], sl[n]}' | sort
}
snap >"$work/s0"
if [ -n "${PERF:-}" ]; then
  perf record -F 20000 -g -p "$pid" -o "$work/perf.data" -- sleep "$secs" >/dev/null 2>&1
else
  sleep "$secs"
fi
snap >"$work/s1"
join "$work/s0" "$work/s1" | awk '{ms = ($4 - $2) / 1e6; s = $5 - $3; tm += ms; ts += s; printf "%-20s %8.1f ms %6d slices\n", $1, ms, s}
  END {printf "%-20s %8.1f ms %6d slices\n", "TOTAL", tm, ts}'
