#!/usr/bin/env bash
# The benchmarks behind `make bench`. Builds nothing: it needs target/release/precisiond (`make build`) and the
# assets and venv of scripts/fetch-assets.sh (`make assets`).
#
# 1. Calibration: `precisiond calibrate` against ONNX Runtime's quantize_static (scripts/bench_calibration.py:
#    entropy, per-channel, symmetric INT8) on the det32 bundle, PP-OCRv4 det with 32 calibration tensors
#    1x3x320x320. Each tool runs REPS times, interleaved (the order flips every repetition, so a change of
#    machine load over the run hits both alike); the table shows medians of wall time and peak RSS.
# 2. Simulation: plans per second of `simulate` on the det bundle (benches/simulate.rs), with the scales of step 1.
#
# usage: scripts/bench.sh [--reps N]
# env:
#   PRECISIOND_VENV    the venv of fetch-assets.sh  (default .venv)
#   PRECISIOND_ASSETS  the assets folder            (default .cache/assets)
#   PRECISIOND_BIN     the binary to measure        (default target/release/precisiond)
set -euo pipefail

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
SELF=$ROOT/scripts/$(basename -- "${BASH_SOURCE[0]}")
cd "$ROOT"

VENV=${PRECISIOND_VENV:-.venv}
VPY=$VENV/bin/python
BIN=${PRECISIOND_BIN:-target/release/precisiond}
BENCH=.cache/bench
BUNDLES=$BENCH/bundles
LOGS=$BENCH/logs
REPS=3

while [[ $# -gt 0 ]]; do
  case $1 in
    --reps) [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || { echo "error: --reps needs a positive integer" >&2; exit 2; }
            REPS=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$SELF"; exit 0 ;;
    *) echo "error: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done

say() { echo "bench: $*" >&2; }
die() { echo "error: $*" >&2; exit 1; }

# Runs a step with its output in a log; on failure shows why and stops the whole benchmark.
step() {
  local what=$1 log=$2; shift 2
  "$@" >"$log" 2>&1 || {
    local rc=$?
    echo "error: $what failed (exit $rc): $*" >&2
    echo "caused by: last lines of $log:" >&2
    tail -n 15 "$log" | sed 's/^/  | /' >&2
    exit 1
  }
}

[[ -x $BIN ]] || die "$BIN not found or not executable (run \`make build\` first, or set PRECISIOND_BIN)"
[[ -x $VPY ]] || die "$VPY not found (run \`make assets\`: it creates the venv and fetches the models)"
mkdir -p "$BENCH" "$LOGS"

# GNU /usr/bin/time is in most Debian/Ubuntu images, but not in every container; the fallback takes the same
# numbers (the child's wall time, ru_maxrss in KiB, user and system CPU seconds) from os.wait4.
if [[ -x /usr/bin/time ]] && /usr/bin/time -f '%e %M' -o /dev/null true 2>/dev/null; then
  timed() { local out=$1; shift; /usr/bin/time -f '%e %M %U %S' -o "$out" "$@"; }
  TIMER="/usr/bin/time -f '%e %M %U %S'"
else
  timed() {
    local out=$1; shift
    "$VPY" -c '
import os, subprocess, sys, time
t = time.perf_counter()
p = subprocess.Popen(sys.argv[2:])
_, status, ru = os.wait4(p.pid, 0)
with open(sys.argv[1], "w") as f:
    f.write("%.2f %d %.2f %.2f\n" % (time.perf_counter() - t, ru.ru_maxrss, ru.ru_utime, ru.ru_stime))
sys.exit(os.waitstatus_to_exitcode(status))' "$out" "$@"
  }
  TIMER="os.wait4 wrapper (no GNU /usr/bin/time here)"
fi

# --- the machine ------------------------------------------------------------------------------------------------
cpu_model=$(grep -m1 '^model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//' || true)
mem_total=$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo 2>/dev/null || true)
echo "precisiond benchmark, $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "machine: $(nproc) CPUs, ${cpu_model:-unknown CPU}, ${mem_total:-unknown memory}"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "precisiond: $("$BIN" --version 2>/dev/null || echo "$BIN")$(git rev-parse --short HEAD 2>/dev/null | sed 's/^/, commit /')$(git diff --quiet HEAD -- 2>/dev/null || echo ' (uncommitted changes)')"
echo "onnxruntime: $("$VPY" -c 'import onnxruntime; print(onnxruntime.__version__)')"
echo

# --- bundles ----------------------------------------------------------------------------------------------------
say "making the det and det32 bundles in $BUNDLES"
step "making the bundles" "$LOGS/make_bundles.log" "$VPY" scripts/make_bundles.py "$BUNDLES" --only det --only det32
for b in det det32; do
  step "sealing $BUNDLES/$b" "$LOGS/seal-$b.log" "$BIN" bundle seal "$BUNDLES/$b"
done

# --- calibration benchmark --------------------------------------------------------------------------------------
median() { sort -g | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

run_precisiond() {
  local rep=$1 out=$BENCH/calibrate-out/rep$1 tf=$LOGS/time-precisiond-$1.txt
  rm -rf "$out"
  step "precisiond calibrate (repetition $rep)" "$LOGS/calibrate-$rep.log" \
    timed "$tf" "$BIN" calibrate "$BUNDLES/det32" --out "$out"
  [[ -s $out/scales.json && -s $out/calib.cache ]] || die "precisiond calibrate wrote no scales.json/calib.cache in $out"
  local wall kib user sys cpu
  read -r wall kib user sys <"$tf" && [[ -n $sys ]] || die "cannot read the measurement in $tf: $(cat "$tf")"
  cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN {printf "%.2f", u + s}')
  echo "$wall $((kib / 1024)) $cpu" >>"$LOGS/precisiond.tsv"
  say "  precisiond calibrate #$rep: ${wall} s, $((kib / 1024)) MiB, ${cpu} CPU s"
}

run_onnxruntime() {
  local rep=$1 json
  step "bench_calibration.py (repetition $rep)" "$LOGS/ort-$rep.log" "$VPY" scripts/bench_calibration.py "$BUNDLES/det32"
  json=$(tail -n 1 "$LOGS/ort-$rep.log")
  "$VPY" -c 'import json, sys; d = json.loads(sys.argv[1]); print(d["wall_s"], int(d["peak_rss_mb"]), d["cpu_s"], d["samples"])' \
    "$json" >>"$LOGS/onnxruntime.tsv" || die "bench_calibration.py printed no JSON result: $json"
  say "  onnxruntime quantize_static #$rep: $(tail -n 1 "$LOGS/onnxruntime.tsv" | awk '{print $1 " s, " $2 " MiB, " $3 " CPU s"}')"
}

say "calibration: $REPS repetitions of each tool on det32, interleaved; measured with $TIMER"
rm -f "$LOGS/precisiond.tsv" "$LOGS/onnxruntime.tsv"
for ((rep = 1; rep <= REPS; rep++)); do
  if ((rep % 2)); then run_precisiond "$rep"; run_onnxruntime "$rep"; else run_onnxruntime "$rep"; run_precisiond "$rep"; fi
done

p_wall=$(cut -d' ' -f1 "$LOGS/precisiond.tsv" | median)
p_mem=$(cut -d' ' -f2 "$LOGS/precisiond.tsv" | median)
o_wall=$(cut -d' ' -f1 "$LOGS/onnxruntime.tsv" | median)
o_mem=$(cut -d' ' -f2 "$LOGS/onnxruntime.tsv" | median)
p_cpu=$(cut -d' ' -f3 "$LOGS/precisiond.tsv" | median)
o_cpu=$(cut -d' ' -f3 "$LOGS/onnxruntime.tsv" | median)
samples=$(cut -d' ' -f4 "$LOGS/onnxruntime.tsv" | head -n 1)

echo "## Calibration: PP-OCRv4 det, $samples tensors 1x3x320x320, entropy, INT8 (median of $REPS runs)"
printf '%-30s %10s %16s %12s\n' "tool" "wall (s)" "peak RSS (MiB)" "CPU (s)"
printf '%-30s %10s %16s %12s\n' "precisiond calibrate" "$p_wall" "$p_mem" "$p_cpu"
printf '%-30s %10s %16s %12s\n' "onnxruntime quantize_static" "$o_wall" "$o_mem" "$o_cpu"
awk -v pw="$p_wall" -v ow="$o_wall" -v pm="$p_mem" -v om="$o_mem" -v pc="$p_cpu" -v oc="$o_cpu" '
  function ratio(label, p, o, verb) {
    if (p > 0 && o > 0)
      printf "%-12s precisiond / onnxruntime = %.3f  (onnxruntime %s %.1fx)\n", label, p / o, verb, o / p
    else
      printf "%-12s n/a (a zero measurement: precisiond %s, onnxruntime %s)\n", label, p, o
  }
  BEGIN {
    ratio("time ratio", pw, ow, "takes")
    ratio("memory ratio", pm, om, "peaks at")
    ratio("CPU ratio", pc, oc, "uses")
  }'
echo "per run [wall s, peak MiB, CPU s]:"
echo "  precisiond  $(awk '{printf "[%s %s %s] ", $1, $2, $3}' "$LOGS/precisiond.tsv")"
echo "  onnxruntime $(awk '{printf "[%s %s %s] ", $1, $2, $3}' "$LOGS/onnxruntime.tsv")"
echo "onnxruntime's pre-processing (opset 13, quant_pre_process) is done before its clock starts: see scripts/bench_calibration.py"
echo

# --- simulation benchmark ---------------------------------------------------------------------------------------
# Plans per second of the CPU accuracy simulation on the det bundle (8 eval tensors 1x3x320x320): the bench target
# benches/simulate.rs evaluates 12 plans (all-INT8, all-FP16, seeded random mixes), each compiled and run over
# every eval tensor, with the scales of the last calibration run above. One line of JSON per repetition.
say "simulation: $REPS repetitions of 12 plans on det"
rm -f "$LOGS/simulate.jsonl"
for ((rep = 1; rep <= REPS; rep++)); do
  step "simulation benchmark (repetition $rep)" "$LOGS/simulate-$rep.log" \
    cargo bench --quiet --locked --bench simulate -- "$BUNDLES/det" "$BENCH/calibrate-out/rep1/scales.json" 12
  grep '^{"bench":"simulate"' "$LOGS/simulate-$rep.log" >>"$LOGS/simulate.jsonl" || die "no result line in $LOGS/simulate-$rep.log"
done
"$VPY" - "$LOGS/simulate.jsonl" <<'PY'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
pps = statistics.median(r["plans_per_s"] for r in runs)
med = statistics.median(r["median_plan_s"] for r in runs)
ref = statistics.median(r["references_s"] for r in runs)
print(f"## Simulation: PP-OCRv4 det, {runs[0]['samples']} eval tensors 1x3x320x320, {runs[0]['plans']} plans (median of {len(runs)} runs)")
print(f"plans per second: {pps:.2f}   (median time per plan {med:.3f} s, compile + {runs[0]['samples']} runs; FP32 references once: {ref:.2f} s)")
print("per run plans/s:", " ".join(f"{r['plans_per_s']:.2f}" for r in runs))
PY
echo
# --- search benchmark ---------------------------------------------------------------------------------------------
# The three strategies on the det bundle (budget cosine >= 0.99, mask IoU >= 0.95), with the scales of step 1:
# simulated evaluations, INT8 share of MACs, wall time. One run each (the evaluation counts are deterministic).
say "search: the three strategies on det"
echo "## Search: PP-OCRv4 det, 16 calib + 8 eval tensors 1x3x320x320, budget cosine >= 0.99 and mask IoU >= 0.95"
printf '%-12s %12s %8s %14s %10s %10s\n' "strategy" "evaluations" "probes" "INT8 of MACs" "wall (s)" "budget"
for strategy in sensitivity sequential bisect; do
  out=$BENCH/search-$strategy
  step "search --strategy $strategy" "$LOGS/search-$strategy.log" \
    "$BIN" search "$BUNDLES/det" --strategy "$strategy" --scales "$BENCH/calibrate-out/rep1/scales.json" --out "$out" --json
  "$VPY" - "$LOGS/search-$strategy.log" <<'PY'
import json, sys
text = open(sys.argv[1]).read()
r = json.loads(text[text.index("{"):])
f = r["plan"]["int8_mac_fraction"]
print(f'{r["strategy"]:<12} {r["evaluations"]:>12} {r["probes"]:>8} {f * 100 if f is not None else float("nan"):>13.1f}% {r["wall_s"]:>10.1f} {"met" if r["budget_met"] else "MISSED":>10}')
PY
done
echo

echo "== daemon at rest (scripts/bench_daemon.sh)"
bash scripts/bench_daemon.sh
echo

echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
