#!/usr/bin/env bash
# `make aarch64`: the Jetson binary, target/aarch64-unknown-linux-gnu/release/precisiond, for glibc >= 2.31
# (JetPack 5), built on an x86 machine with cargo-zigbuild and zig from PyPI (cross/README.md says why).
# Installs its tools into .cache/tools first (scripts/package-tools.sh; idempotent). Incremental like any cargo
# build: a second run with nothing changed takes seconds.
#
# env:
#   AARCH64_GLIBC   the glibc floor passed to zig (default 2.31; JetPack 5 = Ubuntu 20.04)
#   CARGO           cargo to run (default cargo)
set -euo pipefail

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=../scripts/package-tools.sh
source scripts/package-tools.sh

GLIBC=${AARCH64_GLIBC:-2.31}
TARGET=$AARCH64_TARGET
BIN=target/$TARGET/release/precisiond
# Its own cargo target dir: every artifact of this build differs from the x86 builds' anyway (other triple; build
# scripts and proc macros without the x86 rustflags), and a separate dir means a separate cargo lock, so a 15-minute
# cold cross build never blocks `cargo build`/`cargo test` in target/ (or waits for them). The binary is then copied
# to the path the Makefile contract names.
CROSS_TARGET_DIR=${PRECISIOND_CROSS_TARGET_DIR:-target/cross}
BUILT=$CROSS_TARGET_DIR/$TARGET/release/precisiond
LOG=.cache/logs/aarch64-build.log
mkdir -p .cache/logs

ensure_zigbuild
export PATH="$ZIG_VENV/bin:$PATH"

echo "aarch64: cargo zigbuild --release --locked --target $TARGET.$GLIBC in $CROSS_TARGET_DIR (log: $LOG)"
start=$(date +%s)
# - No RUSTFLAGS of any kind from the environment: .cargo/config.toml's x86 flags (+avx2,+fma,+f16c) are scoped to
#   [target.x86_64-unknown-linux-gnu] and so never reach this target, and a RUSTFLAGS exported for x86 work in the
#   caller's shell must not either (it would also apply to the aarch64 crates).
# - Symbols stripped at link time (the .deb ships this file as is; there is no aarch64 `strip` on an x86 host).
set +e
env -u RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS -u CARGO_BUILD_RUSTFLAGS \
  -u CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS -u CARGO_BUILD_TARGET \
  CARGO_TARGET_DIR="$CROSS_TARGET_DIR" CARGO_PROFILE_RELEASE_STRIP=symbols \
  "${CARGO:-cargo}" zigbuild -v --release --locked --bin precisiond --target "$TARGET.$GLIBC" >"$LOG" 2>&1
rc=$?
set -e
grep -E '^\s*(Compiling|Finished)|^(warning|error)' "$LOG" | grep -v '^\s*Compiling' | tail -n 5 || true
if [[ $rc != 0 ]]; then
  echo "error: the aarch64 build failed (exit $rc); last lines of $LOG:" >&2
  # The compiler's messages, without cargo's -v command lines (thousands of characters each).
  grep -vE '^\s+Running `|process didn.t exit successfully|^Caused by:' "$LOG" | tail -n 30 | cut -c1-300 | sed 's/^/  | /' >&2
  exit 2
fi
# The x86 target features must not have reached any aarch64 compilation.
if grep -E -- "--target $TARGET" "$LOG" | grep -qE 'target-feature=[^ ]*\+(avx2|fma|f16c)'; then
  echo "error: x86 target features (+avx2/+fma/+f16c) were passed to an aarch64 compilation; see $LOG" >&2
  exit 2
fi
[[ -x $BUILT ]] || { echo "error: the build finished but $BUILT is missing" >&2; exit 2; }
if ! cmp -s "$BUILT" "$BIN"; then
  mkdir -p "$(dirname -- "$BIN")"
  cp -p "$BUILT" "$BIN.tmp" && mv -f "$BIN.tmp" "$BIN"
fi
echo "aarch64: $BIN ($(stat -c %s "$BIN") bytes) in $(( $(date +%s) - start )) s"
