#!/usr/bin/env bash
# `make demo`: the whole pipeline on a real model, with the CPU backend and local files only. PP-OCRv4's text
# detector and real crops of a scanned page become a sealed bundle; the daemon runs in a temporary folder, takes
# the bundle from its inbox, calibrates, searches the layers that must leave INT8, builds, verifies against FP32 and
# publishes the engine to live/<model>; the status endpoint shows it; then the daemon stops.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="$PWD/target/release/precisiond"
WORK="$PWD/.cache/demo"
PORT="${PRECISIOND_DEMO_PORT:-19464}"
rm -rf "$WORK" && mkdir -p "$WORK"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "inspect: PP-OCRv4 det, at 1x3x320x320"
"$BIN" inspect .cache/assets/models/det.onnx --shape x=1,3,320,320 | tail -n 9

step "a bundle: the model, a precision spec, 16 calibration and 8 evaluation crops of a scanned page"
.venv/bin/python scripts/make_bundles.py "$WORK/bundles" --only det >/dev/null
sed -n '/^\[budget\]/,/^$/p' "$WORK/bundles/det/precision.toml"
"$BIN" bundle seal "$WORK/bundles/det"

step "the daemon: cpu backend, state in $WORK/state, status on 127.0.0.1:$PORT"
cat >"$WORK/config.toml" <<EOF
inbox = "inbox"
state_dir = "state"
backend = "cpu"
[status]
listen = "127.0.0.1:$PORT"
EOF
"$BIN" check-config "$WORK/config.toml" | head -n 1
"$BIN" run --config "$WORK/config.toml" 2>"$WORK/daemon.log" &
DAEMON=$!
trap 'kill "$DAEMON" 2>/dev/null || true' EXIT
for _ in $(seq 50); do grep -q '^precisiond: ready' "$WORK/daemon.log" && break; sleep 0.2; done
grep '^precisiond: ready' "$WORK/daemon.log"

step "drop the bundle into the inbox; the daemon calibrates, searches, builds, verifies and publishes"
mv "$WORK/bundles/det" "$WORK/inbox/det"
tail -n +2 -f "$WORK/daemon.log" &
TAIL=$!
for _ in $(seq 1200); do
    [ -e "$WORK/state/live/det" ] && break
    grep -q 'det: job .* failed' "$WORK/daemon.log" && break
    sleep 0.5
done
sleep 0.3
kill "$TAIL" 2>/dev/null || true
wait "$TAIL" 2>/dev/null || true
if [ ! -e "$WORK/state/live/det" ]; then
    echo "the job did not go live; see $WORK/daemon.log" >&2
    exit 1
fi

step "status endpoint (precisiond status)"
"$BIN" status --url "http://127.0.0.1:$PORT"

step "stop the daemon (SIGTERM)"
kill -TERM "$DAEMON"
wait "$DAEMON" || true
trap - EXIT

LIVE="$WORK/state/live/det"
VERDICT=$(.venv/bin/python -c 'import json,sys; v=json.load(open(sys.argv[1])); m=v["metrics"]; print(v["verdict"], "- cosine %.4f, mask IoU %s" % (m["cosine"], "%.4f" % m["mask_iou"] if m.get("mask_iou") is not None else "n/a"))' "$LIVE/verify.json")
printf '\nlive engine:   %s -> %s\n' "$LIVE/model.onnx" "$(readlink -f "$LIVE")"
printf 'verdict:       %s\n' "$VERDICT"
printf 'search report: %s (open report.html beside it in a browser)\n' "$(readlink -f "$LIVE")/report.svg"
