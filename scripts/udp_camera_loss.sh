#!/usr/bin/env bash
# One camera over RTP/UDP recorded by an edge: GStreamer's RTSP server (the test fixture) sends
# 1280x720 noise at 4 Mbit/s; after SECONDS the edge's `packets_lost` (/api/status) and the
# kernel's drop count of its UDP sockets (/proc/PID/net/udp) are printed, and the edge's advice
# about net.core.rmem_default if it logged one.
#
#   scripts/udp_camera_loss.sh EDGE_BINARY SECONDS [VAR=VALUE ...]   (e.g. CONVOY_INGEST_NAP_MS=0)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
edge=$1; secs=$2; shift 2
w=/dev/shm/udpcheck-$$; rm -rf $w; mkdir -p $w
/usr/bin/python3 "$here/hil-tests/fixtures/gst_rtsp_camera.py" --port 0 --width 1280 --height 720 --kbps 4000 --mount a --mount b --mount snow > $w/gst.log 2>&1 &
gp=$!
ep=
trap 'kill $gp $ep 2>/dev/null || true; rm -rf $w' EXIT
for _ in $(seq 1 100); do url=$(grep -o 'rtsp://[^ ]*' $w/gst.log | head -1 || true); [ -n "$url" ] && break; sleep 0.1; done
port=$((18000 + $$ % 900))
printf 'unit_id = "u"\n[store]\npath = "%s/store"\n[web]\nlisten = "127.0.0.1:%d"\n[[camera]]\nid = "cam"\nurl = "%s/snow"\ntransport = "udp"\n' $w $port "$url" > $w/edge.toml
env "$@" $edge run --config $w/edge.toml > $w/edge.log 2>&1 &
ep=$!
sleep $secs
inodes=$(ls -l /proc/$ep/fd 2>/dev/null | grep -o 'socket:\[[0-9]*\]' | tr -dc '0-9\n' | sort -u)
drops=$(awk -v inodes="$inodes" 'BEGIN{n=split(inodes,a,"\n"); for(i=1;i<=n;i++) want[a[i]]=1} NR>1 && ($10 in want) {d+=$NF} END{print d+0}' /proc/$ep/net/udp)
curl -s 127.0.0.1:$port/api/status | python3 -c "import json,sys; s=json.load(sys.stdin); c=s['cameras'][0]; print('env=${*:-default}', 'state', c['state'], 'frames', c.get('frames_recorded'), 'packets_lost', c.get('packets_lost'), 'Mbit/s', (c.get('bitrate_bps') or 0)/1e6, 'socket drops', $drops)"
# The edge's advice, when it gave one (a UDP camera that lost packets at a small rmem_default).
grep -m1 -o 'RTP packets lost over UDP.*' $w/edge.log || echo "no advice in the edge's log"
