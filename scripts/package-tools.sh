#!/usr/bin/env bash
# Installs, into the project (.cache/tools/), the pinned tools that `make aarch64`, `make deb` and the package
# checks need, and nothing globally except the Rust standard library for aarch64 (rustup keeps targets per
# toolchain). Every step is idempotent: a tool whose stamp names the pinned version is left alone, silently.
#
# usage: scripts/package-tools.sh STEP...        (or `source` it and call the functions)
#   zigbuild      rustup target aarch64-unknown-linux-gnu + a venv with PyPI ziglang and cargo-zigbuild
#   cargo-deb     cargo-deb from crates.io, built into .cache/tools/bin
#   qemu          qemu-aarch64 (Debian qemu-user-static) and the aarch64 glibc (Debian libc6-arm64-cross),
#                 unpacked from their .debs into .cache/tools/debs/root (no dpkg install)
#   lintian       Debian's lintian with the Perl modules it lacks, unpacked into .cache/tools/lintian/root
#   print-env     the PATH additions, for `eval "$(scripts/package-tools.sh print-env)"`
# Sourced, it also gives the check scripts their pass/fail/section/version_le/checks_result helpers.
# env:
#   PRECISIOND_TOOLS   where the tools go (default .cache/tools)
#   PYTHON             interpreter for the zig venv (default python3)
set -euo pipefail

TOOLS_ROOT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS=${PRECISIOND_TOOLS:-$TOOLS_ROOT_DIR/.cache/tools}
case $TOOLS in /*) ;; *) TOOLS=$TOOLS_ROOT_DIR/$TOOLS ;; esac

# Pins. ziglang and cargo-zigbuild are what shared/reference/crates.md verified (glibc floor by target suffix).
ZIGLANG_VERSION=0.17.1
CARGO_ZIGBUILD_VERSION=0.24.1
CARGO_DEB_VERSION=3.8.0
AARCH64_TARGET=aarch64-unknown-linux-gnu
# Debian packages unpacked (not installed) for the aarch64 checks: a static qemu-aarch64 needs no libraries of its
# own, and libc6-arm64-cross brings ld-linux-aarch64.so.1, libc, libm and friends for `qemu-aarch64 -L`.
QEMU_DEBS=(qemu-user-static libc6-arm64-cross libgcc-s1-arm64-cross)

ZIG_VENV=$TOOLS/zig-venv
DEB_DIR=$TOOLS/debs
DEB_ROOT=$DEB_DIR/root
TOOLS_LOGS=$TOOLS/logs

tools_say() { echo "tools: $*" >&2; }
tools_die() { echo "error: $*" >&2; exit 2; }

# Runs a command with its output in a log; on failure shows the log's tail and stops.
tools_logged() {
  local what=$1 log=$2; shift 2
  mkdir -p "$(dirname -- "$log")"
  if ! "$@" >"$log" 2>&1; then
    echo "error: $what failed; last lines of $log:" >&2
    tail -n 20 "$log" | sed 's/^/  | /' >&2
    exit 2
  fi
}

ensure_rust_target() {
  command -v rustup >/dev/null || tools_die "rustup not found: the aarch64 standard library comes from rustup"
  if ! rustup target list --installed | grep -qx "$AARCH64_TARGET"; then
    tools_say "rustup target add $AARCH64_TARGET"
    tools_logged "rustup target add $AARCH64_TARGET" "$TOOLS_LOGS/rustup-target.log" \
      rustup target add "$AARCH64_TARGET"
  fi
}

ensure_zigbuild() {
  ensure_rust_target
  local want="ziglang==$ZIGLANG_VERSION cargo-zigbuild==$CARGO_ZIGBUILD_VERSION"
  if [[ -f $ZIG_VENV/.stamp && $(cat "$ZIG_VENV/.stamp") == "$want" && -x $ZIG_VENV/bin/cargo-zigbuild ]]; then
    return 0
  fi
  tools_say "installing $want into ${ZIG_VENV#"$TOOLS_ROOT_DIR"/}"
  rm -rf "$ZIG_VENV"
  tools_logged "python venv" "$TOOLS_LOGS/zig-venv.log" "${PYTHON:-python3}" -m venv "$ZIG_VENV"
  # --only-binary: both ship as platform wheels (zig's release tarball and the cargo-zigbuild binary inside);
  # an sdist fallback would try to download zig or build a Rust crate.
  tools_logged "pip install $want" "$TOOLS_LOGS/zig-pip.log" \
    "$ZIG_VENV/bin/python" -m pip install --disable-pip-version-check --only-binary=:all: \
    "ziglang==$ZIGLANG_VERSION" "cargo-zigbuild==$CARGO_ZIGBUILD_VERSION"
  echo "$want" >"$ZIG_VENV/.stamp"
}

ensure_cargo_deb() {
  local want="cargo-deb $CARGO_DEB_VERSION"
  if [[ -f $TOOLS/bin/.cargo-deb.stamp && $(cat "$TOOLS/bin/.cargo-deb.stamp") == "$want" && -x $TOOLS/bin/cargo-deb ]]; then
    return 0
  fi
  tools_say "building $want into ${TOOLS#"$TOOLS_ROOT_DIR"/}/bin (a few minutes on 2 cores, once)"
  # Its own temporary target dir (cargo install removes it), never the project's. Run from / so that the
  # project's .cargo/config.toml (x86 rustflags) is not picked up: cargo reads config from the current dir up.
  mkdir -p "$TOOLS" "$TOOLS_LOGS"
  (cd / && env -u RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS -u CARGO_TARGET_DIR \
    cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked --root "$TOOLS" >"$TOOLS_LOGS/cargo-deb.log" 2>&1) || {
    echo "error: cargo install cargo-deb failed; last lines of $TOOLS_LOGS/cargo-deb.log:" >&2
    tail -n 20 "$TOOLS_LOGS/cargo-deb.log" | sed 's/^/  | /' >&2
    exit 2
  }
  echo "$want" >"$TOOLS/bin/.cargo-deb.stamp"
}

# Downloads Debian packages by name with apt-get download (no install) and unpacks them with dpkg-deb -x into
# DIR/root. The stamp lists the packages unpacked. usage: ensure_debs DIR PKG...
ensure_debs() {
  command -v apt-get >/dev/null || tools_die "apt-get not found: these tools come from Debian's packages"
  local dir=$1; shift
  local stamp=$dir/.stamp want="$*" pkg deb
  if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
    return 0
  fi
  mkdir -p "$dir/archives" "$TOOLS_LOGS"
  local log
  log=$TOOLS_LOGS/apt-download-$(basename -- "$dir").log
  if ! (cd "$dir/archives" && apt-get download "$@") >"$log" 2>&1; then
    # A fresh machine has no package lists yet: apt-get update once (root only), then try again.
    if [[ $(id -u) == 0 ]]; then
      tools_say "apt-get update (package lists missing or stale)"
      tools_logged "apt-get update" "$TOOLS_LOGS/apt-update.log" apt-get update
      tools_logged "apt-get download $*" "$log" bash -c 'cd "$0" && apt-get download "$@"' "$dir/archives" "$@"
    else
      echo "error: apt-get download failed; last lines of $log:" >&2
      tail -n 10 "$log" | sed 's/^/  | /' >&2
      echo "hint: run 'apt-get update' as root, then again" >&2
      exit 2
    fi
  fi
  rm -rf "$dir/root"
  mkdir -p "$dir/root"
  for pkg in "$@"; do
    deb=$(ls -t "$dir/archives/${pkg}_"*.deb 2>/dev/null | head -n1)
    [[ -n $deb ]] || tools_die "apt-get download left no .deb for $pkg in $dir/archives"
    dpkg-deb -x "$deb" "$dir/root"
  done
  echo "$want" >"$stamp"
}

ensure_qemu() {
  ensure_debs "$DEB_DIR" "${QEMU_DEBS[@]}"
  # qemu-user-static holds one emulator per architecture (400 MB); only AArch64 is used, and the .debs are not
  # needed once unpacked (the stamp decides).
  find "$DEB_ROOT/usr/bin" -name 'qemu-*' ! -name 'qemu-aarch64-static' -delete 2>/dev/null || true
  rm -f "$DEB_DIR"/archives/*.deb
}

# lintian: the system's if installed; else Debian's lintian and the Perl modules it needs that are not installed
# (apt-get's own dependency resolution, simulated), unpacked into .cache/tools/lintian and run with PERL5LIB
# pointing there. Perl itself is the system's (the same Debian release, so the XS modules match its ABI).
# Sets the array LINTIAN to the command to run; returns 1 (and says why) when it cannot be had.
ensure_lintian() {
  if command -v lintian >/dev/null; then LINTIAN=(lintian); return 0; fi
  local dir=$TOOLS/lintian pkgs
  if [[ ! -f $dir/.stamp ]]; then
    if ! apt-get install -s --no-install-recommends lintian >"$TOOLS_LOGS/lintian-resolve.log" 2>&1 \
        && [[ $(id -u) == 0 ]]; then
      tools_logged "apt-get update" "$TOOLS_LOGS/apt-update.log" apt-get update
    fi
    mkdir -p "$TOOLS_LOGS"
    pkgs=$(apt-get install -s --no-install-recommends lintian 2>>"$TOOLS_LOGS/lintian-resolve.log" \
      | awk '/^Inst/ {print $2}' | grep -vE '^(perl|perl-base|perl-modules-[0-9.]+|libperl[0-9.]+)$' || true)
    if [[ -z $pkgs ]]; then
      tools_say "lintian: apt-get cannot resolve it (see $TOOLS_LOGS/lintian-resolve.log)"
      return 1
    fi
    tools_say "unpacking lintian and $(( $(wc -w <<<"$pkgs") - 1 )) Perl packages into ${dir#"$TOOLS_ROOT_DIR"/}"
    # shellcheck disable=SC2086
    ensure_debs "$dir" $pkgs >&2
  fi
  local perl5lib=$dir/root/usr/share/perl5 xs
  for xs in "$dir"/root/usr/lib/*/perl5/*; do [[ -d $xs ]] && perl5lib+=:$xs; done
  # shellcheck disable=SC2034 # read by the scripts that source this file
  LINTIAN=(env "PERL5LIB=$perl5lib" "PATH=$dir/root/usr/bin:$PATH" perl "$dir/root/usr/share/lintian/bin/lintian")
}

# The qemu-aarch64 to use: one on PATH wins (a developer may have qemu-user installed), else the unpacked one.
qemu_aarch64() {
  local q
  for q in qemu-aarch64 qemu-aarch64-static; do
    if command -v "$q" >/dev/null; then command -v "$q"; return 0; fi
  done
  for q in "$DEB_ROOT/usr/bin/qemu-aarch64-static" "$DEB_ROOT/usr/bin/qemu-aarch64"; do
    if [[ -x $q ]]; then echo "$q"; return 0; fi
  done
  return 1
}

# The aarch64 glibc root for qemu -L (ld-linux-aarch64.so.1 is looked up under it as /lib/...).
aarch64_sysroot() {
  echo "$DEB_ROOT/usr/aarch64-linux-gnu"
}

# --- for the check scripts (scripts/check-aarch64.sh, scripts/check-deb.sh) ---------------------------------------
failures=0
passes=0
pass() { echo "  ok    $*"; passes=$((passes + 1)); }
fail() { echo "  FAIL  $*"; failures=$((failures + 1)); }
section() { echo "== $*"; }
# version_le A B: A <= B in version order
version_le() { [[ $(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n1) == "$1" ]]; }
# The checks' result in cargo's words, so that make test's summary line counts them too. usage: checks_result NAME
checks_result() {
  echo "test result: $([[ $failures == 0 ]] && echo ok || echo FAILED). $passes passed; $failures failed ($1)"
}

print_env() {
  echo "export PATH=\"$ZIG_VENV/bin:$TOOLS/bin:\$PATH\""
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  [[ $# -gt 0 ]] || { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 2; }
  for step in "$@"; do
    case $step in
      zigbuild) ensure_zigbuild ;;
      cargo-deb) ensure_cargo_deb ;;
      qemu) ensure_qemu ;;
      lintian) ensure_lintian ;;
      print-env) print_env ;;
      *) tools_die "unknown step '$step' (zigbuild, cargo-deb, qemu, lintian, print-env)" ;;
    esac
  done
fi
