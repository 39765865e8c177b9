#!/usr/bin/env bash
# `make test` (and so CI): every check of the project, ending on one line that sums them all:
#   summary: N passed, M failed[, K skipped: reason]
#
#   1. The real assets and the Python judges (scripts/fetch-assets.sh, as `make assets`), then
#      cargo test --release --locked: the unit tests and the integration binary (tests/it/).
#   2. The Jetson binary and the packages (issue 8's "tested"): `make aarch64`'s build, `make deb`, then
#      scripts/check-aarch64.sh (glibc floor, NEEDED, runs under qemu-aarch64) and scripts/check-deb.sh (contents,
#      control, unit, install, lintian). Their checks print cargo's `test result:` line, so the summary counts them.
#
# The aarch64 build and the package tools start first, in the background at the lowest CPU priority: they take
# the CPU that step 1 leaves idle (rustc's single-threaded front end on the big crates, tests that wait on child
# processes and timers) and yield it whenever step 1 wants it, so step 1's timings are not disturbed and the
# whole run costs a few minutes more instead of the cold cross build's ten.
#
# Logs: .cache/test.log (everything counted), .cache/logs/package-build.log (the background part).
# env:
#   PRECISIOND_SKIP_PACKAGES=1   step 2 is left out (said in the summary); for a quick local loop only.
set -uo pipefail

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
mkdir -p .cache/logs
LOG=.cache/test.log
PACKAGE_LOG=.cache/logs/package-build.log
: >"$LOG"
skipped=()

# A failure that produced no `test result:` line of its own (a build that did not finish, a script that stopped
# before its checks) still counts, once, under its name.
count_failure() {
  echo "test result: FAILED. 0 passed; 1 failed ($1)" | tee -a "$LOG"
}

# --- the background part: tools, then the aarch64 build ----------------------------------------------------------
package_pid=
if [[ ${PRECISIOND_SKIP_PACKAGES:-} == 1 ]]; then
  skipped+=("package checks: PRECISIOND_SKIP_PACKAGES=1")
else
  echo "test: the aarch64 build and the package tools run in the background at nice 19 (log: $PACKAGE_LOG)"
  # Its own process group (job control on for this one launch), so that an interrupted make test takes the whole
  # cross build down with it: a non-interactive shell's background jobs ignore SIGINT, and the build would otherwise
  # go on alone. Not setsid: a new session is a new scheduler autogroup, where nice 19 no longer yields to step 1.
  set -m
  nice -n 19 bash -c '
    set -euo pipefail
    source scripts/package-tools.sh
    ensure_zigbuild
    bash cross/build-aarch64.sh
    ensure_cargo_deb
    ensure_qemu
    ensure_lintian || true
  ' >"$PACKAGE_LOG" 2>&1 &
  package_pid=$!
  set +m
  trap 'kill -TERM -- "-$package_pid" 2>/dev/null || true' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
fi

# --- step 1 --------------------------------------------------------------------------------------------------------
# The assets (`make assets`) after the background part has started: their download overlaps the cross build's.
if ! bash scripts/fetch-assets.sh; then
  count_failure "scripts/fetch-assets.sh: the test assets could not be fetched, see above"
fi
"${CARGO:-cargo}" test --release --locked 2>&1 | tee -a "$LOG"
cargo_rc=${PIPESTATUS[0]}
# A build error or a test binary that crashed prints no failed `test result:`; the summary must still count it.
if [[ $cargo_rc != 0 ]] && ! grep -q '^test result: FAILED' "$LOG"; then
  count_failure "cargo test exited $cargo_rc without a failed test: a build error or a crashed test binary, see above"
fi

# --- step 2 --------------------------------------------------------------------------------------------------------
# Runs a check script; its own `test result:` line is counted, or one failure if it stopped without one.
check() {
  local name=$1; shift
  local before
  before=$(grep -c '^test result:' "$LOG" || true)
  "$@" 2>&1 | tee -a "$LOG"
  local rc=${PIPESTATUS[0]}
  if [[ $rc != 0 && $(grep -c '^test result:' "$LOG" || true) == "$before" ]]; then
    count_failure "$name stopped with exit $rc, see above"
  fi
}

if [[ -n $package_pid ]]; then
  echo
  echo "test: waiting for the aarch64 build (log: $PACKAGE_LOG)"
  if wait "$package_pid"; then
    tail -n 3 "$PACKAGE_LOG"
    check "make deb" bash packaging/build-deb.sh
    check scripts/check-aarch64.sh bash scripts/check-aarch64.sh
    check scripts/check-deb.sh bash scripts/check-deb.sh
  elif grep -q 'rustup target add .* failed' "$PACKAGE_LOG"; then
    # The only part fetched from outside the four registries (static.rust-lang.org): where that is closed the
    # project cannot build for aarch64 at all, so the checks are skipped and the summary says why.
    tail -n 12 "$PACKAGE_LOG"
    skipped+=("package checks: rustup could not fetch the aarch64 standard library (see $PACKAGE_LOG)")
  else
    echo "the background part failed; last lines of $PACKAGE_LOG:"
    tail -n 30 "$PACKAGE_LOG" | sed 's/^/  | /'
    count_failure "the aarch64 build or the package tools"
  fi
fi

# --- the summary ---------------------------------------------------------------------------------------------------
read -r passed failed < <(awk '/^test result:/ {
    for (i = 1; i < NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i }
  } END { printf "%d %d\n", p, f }' "$LOG")
line="summary: $passed passed, $failed failed"
if [[ ${#skipped[@]} -gt 0 ]]; then
  line+=", ${#skipped[@]} skipped: $(IFS=';'; echo "${skipped[*]}")"
fi
echo
echo "$line"
[[ $failed == 0 && $cargo_rc == 0 ]]
