#!/usr/bin/env bash
# `make demo`: the pipeline as far as it goes today, on a real model, with the CPU backend and local files only.
# PP-OCRv4's text detector: inspect it, make a bundle of real text crops, seal it, calibrate INT8 scales, predict
# the accuracy of all-INT8, search the layers that must leave INT8, and export the strongly typed ONNX.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release/precisiond
WORK=.cache/demo
rm -rf "$WORK" && mkdir -p "$WORK"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "inspect: PP-OCRv4 det, at 1x3x320x320"
"$BIN" inspect .cache/assets/models/det.onnx --shape x=1,3,320,320 | tail -n 9

step "a bundle: the model, a precision spec, 16 calibration and 8 evaluation crops of a scanned page"
.venv/bin/python scripts/make_bundles.py "$WORK/bundles" --only det >/dev/null
sed -n '/^\[budget\]/,/^$/p' "$WORK/bundles/det/precision.toml"
"$BIN" bundle seal "$WORK/bundles/det"

step "calibrate: entropy calibration, streamed (scales.json + a TensorRT calibration cache)"
"$BIN" calibrate "$WORK/bundles/det" --out "$WORK/out"
head -n 3 "$WORK/out/calib.cache"

step "simulate: every quantizable layer in INT8, predicted on the CPU against FP32"
"$BIN" simulate "$WORK/bundles/det" --scales "$WORK/out/scales.json" 2>/dev/null

step "export: the strongly typed ONNX (Q/DQ for INT8 layers) that TensorRT builds"
"$BIN" export "$WORK/bundles/det" --scales "$WORK/out/scales.json" --out "$WORK/out/det.int8.onnx"

step "search: the layers that must leave INT8 for the budget (cosine >= 0.99, mask IoU >= 0.95)"
"$BIN" search "$WORK/bundles/det" --scales "$WORK/out/scales.json" --out "$WORK/search"

step "export: the chosen mixed plan"
"$BIN" export "$WORK/bundles/det" --scales "$WORK/out/scales.json" --plan "$WORK/search/plan.toml" --out "$WORK/out/det.mixed.onnx"

printf '\nOpen %s in a browser for the per-layer sensitivity and the plans tried.\n' "$WORK/search/report.html"
printf 'Building and verifying the engine on the device (tensorrt or cpu backend) comes next: `precisiond build`.\n'
