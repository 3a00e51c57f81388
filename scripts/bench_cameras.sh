# Sourced by the edge benchmark scripts: K simulated 4 Mbit/s cameras and edges that record them.
#
#   start_cameras WORK SIM_CAMERA_DIR K   # sets `url` (rtsp://…, no trailing /) and `k`; adds to `pids`
#   start_edge NAME EDGE_DIR              # an edge recording cam0…cam(K-1), store in WORK/NAME; adds to `pids`
#
# The caller kills "${pids[@]}" on exit.

pids=()

# The clip `record_bench` makes (hil-tests/src/bench_clip.rs): 10 s, 4 Mbit/s, a key frame every
# 2 s, served on K mounts out of step (`--stagger`).
start_cameras() {
  work=$1 k=$3
  local clip=$work/clip.h264 mounts=() i
  ffmpeg -y -nostdin -loglevel error -f lavfi -i "testsrc2=size=1280x720:rate=25:duration=10,noise=alls=12:allf=t" \
    -c:v libx264 -pix_fmt yuv420p -profile:v main -preset veryfast \
    -x264-params keyint=50:min-keyint=50:scenecut=0:bframes=0:aud=1:slices=1 \
    -b:v 4000k -maxrate 4000k -bufsize 4000k -bsf:v h264_mp4toannexb -f h264 "$clip"
  for i in $(seq 0 $((k - 1))); do mounts+=(--mount "/cam$i"); done
  "$2/sim-camera" --listen 127.0.0.1:0 --clip "$clip" --stagger "${mounts[@]}" >"$work/sim-camera.log" 2>&1 &
  pids+=($!)
  url=""
  for _ in $(seq 1 100); do
    url=$(grep -o 'rtsp://[^ ]*' "$work/sim-camera.log" | head -1 || true)
    [ -n "$url" ] && break
    sleep 0.1
  done
  [ -n "$url" ] || { echo "sim-camera did not start:" >&2; cat "$work/sim-camera.log" >&2; exit 1; }
  url=${url%/}
}

start_edge() {
  local i
  mkdir -p "$work/$1"
  {
    printf 'unit_id = "%s"\n[store]\npath = "%s/store"\nsegment_bytes = 33554432\n[web]\nlisten = "127.0.0.1:0"\n' "$1" "$work/$1"
    for i in $(seq 0 $((k - 1))); do printf '[[camera]]\nid = "cam%d"\nurl = "%s/cam%d"\n' "$i" "$url" "$i"; done
  } >"$work/$1/edge.toml"
  "$2/edge" run --config "$work/$1/edge.toml" >"$work/$1/edge.log" 2>&1 &
  pids+=($!)
}
