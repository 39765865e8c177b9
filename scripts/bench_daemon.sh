#!/usr/bin/env bash
# The daemon at rest (`make bench`): resident memory and CPU time while idle, right after start and after one job
# (the digits bundle, cpu backend), and how long a complete bundle takes to be accepted after it lands.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="$PWD/target/release/precisiond"
WORK=$(mktemp -d)
trap 'kill "$PID" 2>/dev/null || true; rm -rf "$WORK"' EXIT
printf 'inbox = "inbox"\nstate_dir = "state"\nbackend = "cpu"\n[status]\nlisten = "off"\n' >"$WORK/config.toml"
"$BIN" run --config "$WORK/config.toml" 2>"$WORK/log" &
PID=$!
for _ in $(seq 50); do grep -q 'ready:' "$WORK/log" && break; sleep 0.1; done
rss() { awk '/VmRSS/ {print $2}' "/proc/$PID/status"; }
# Anonymous (the heap: what the daemon holds) and file-backed (the binary's code pages, shared and reclaimable).
split() { awk '/RssAnon/ {a=$2} /RssFile/ {f=$2} END {printf "anonymous %d kB, file-backed %d kB", a, f}' "/proc/$PID/status"; }
ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
sleep 2
RSS_IDLE=$(rss); T0=$(ticks); sleep 10; T1=$(ticks)
echo "idle after start:  RSS $((RSS_IDLE / 1024)) MiB ($RSS_IDLE kB: $(split)); CPU $((T1 - T0)) ticks in 10 s"
.venv/bin/python scripts/make_bundles.py "$WORK/bundles" --only digits >/dev/null
"$BIN" bundle seal "$WORK/bundles/digits" >/dev/null
LANDED=$(date +%s.%N)
mv "$WORK/bundles/digits" "$WORK/inbox/digits"
for _ in $(seq 600); do grep -q 'digits: bundle .* accepted' "$WORK/log" && break; sleep 0.01; done
ACCEPTED=$(date +%s.%N)
for _ in $(seq 600); do [ -e "$WORK/state/live/digits" ] && break; sleep 0.1; done
echo "bundle landed -> accepted: $(awk "BEGIN { printf \"%.2f\", $ACCEPTED - $LANDED }") s (debounce 0.5 s); live: $([ -e "$WORK/state/live/digits" ] && echo yes || echo NO)"
sleep 2
RSS_AFTER=$(rss); T0=$(ticks); sleep 10; T1=$(ticks)
echo "idle after a job:  RSS $((RSS_AFTER / 1024)) MiB ($RSS_AFTER kB: $(split)); CPU $((T1 - T0)) ticks in 10 s"
