#!/usr/bin/env bash
# `make deb`: precisiond_<version>-1_amd64.deb and precisiond_<version>-1_arm64.deb with cargo-deb (pinned in
# scripts/package-tools.sh, built into .cache/tools/bin on first use) from binaries that are already built:
#   amd64  target/release/precisiond                          (`make build`: x86 with +avx2,+fma,+f16c)
#   arm64  target/aarch64-unknown-linux-gnu/release/precisiond (`make aarch64`: zigbuild, glibc >= 2.31)
# The Makefile builds both first; this script only packages (cargo deb --no-build) and says where the files are.
# What goes in the packages: [package.metadata.deb] in Cargo.toml; why: packaging/README.md.
#
# usage: packaging/build-deb.sh [amd64|arm64]...   (default: both)
# env:
#   DEB_MAINTAINER   "Name <address>" for the Maintainer field, for a fleet that ships its own build (default:
#                    Cargo.toml's [package.metadata.deb] maintainer, the project's)
set -euo pipefail

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=../scripts/package-tools.sh
source scripts/package-tools.sh

# Checked before anything is built: dpkg takes any text, and a malformed field is only found by lintian later.
if [[ -n ${DEB_MAINTAINER:-} && ! $DEB_MAINTAINER =~ ^[^\<\>]+\ \<[^@\<\>\ ]+@[^@\<\>\ ]+\>$ ]]; then
  echo "error: DEB_MAINTAINER='$DEB_MAINTAINER' is not 'Name <user@host>'" >&2
  exit 2
fi

ensure_cargo_deb
export PATH="$TOOLS/bin:$PATH"
mkdir -p .cache/logs

arches=("$@")
[[ ${#arches[@]} -gt 0 ]] || arches=(amd64 arm64)

package() {
  local arch=$1 bin triple_args=() out log=.cache/logs/deb-$1.log
  case $arch in
    amd64) bin=target/release/precisiond ;;
    # The aarch64 binary is stripped at link time and this host's strip cannot read it: --no-strip.
    arm64) bin=target/$AARCH64_TARGET/release/precisiond
           triple_args=(--target "$AARCH64_TARGET" --variant arm64 --no-strip) ;;
    *) echo "error: unknown architecture '$arch' (amd64, arm64)" >&2; exit 2 ;;
  esac
  [[ -x $bin ]] || { echo "error: $bin not found; run 'make deb' (it builds it) or 'make build'/'make aarch64'" >&2; exit 2; }
  # --fast: add_md5sums repacks the package with xz anyway, so the first compression is only thrown away.
  if ! out=$(cargo deb --no-build --locked --fast "${triple_args[@]}" 2>"$log"); then
    echo "error: cargo deb ($arch) failed; last lines of $log:" >&2
    tail -n 20 "$log" | sed 's/^/  | /' >&2
    exit 2
  fi
  # cargo-deb prints the path of the .deb it wrote on stdout; warnings go to the log.
  out=$(tail -n1 <<<"$out")
  [[ -f $out ]] || { echo "error: cargo deb ($arch) reported '$out', which is not a file; see $log" >&2; exit 2; }
  if grep -q '^warning' "$log"; then sed 's/^/  deb '"$arch"': /' "$log" | grep 'warning' >&2 || true; fi
  add_md5sums "$out"
  echo "deb: ${out#"$ROOT"/} ($(stat -c %s "$out") bytes)"
}

# cargo-deb writes no DEBIAN/md5sums; dpkg and debsums use it to verify installed files (debsums -c precisiond on a
# device tells whether the binary or the unit was altered). Repacked with the same members, owners and compression
# (and DEB_MAINTAINER's Maintainer field where set).
add_md5sums() {
  local deb=$1 dir
  dir=$(mktemp -d)
  dpkg-deb -R "$deb" "$dir/pkg"
  (cd "$dir/pkg" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) \
    >"$dir/pkg/DEBIAN/md5sums"
  chmod 644 "$dir/pkg/DEBIAN/md5sums"
  if [[ -n ${DEB_MAINTAINER:-} ]]; then
    local control=$dir/pkg/DEBIAN/control
    awk -v m="$DEB_MAINTAINER" '/^Maintainer:/ { print "Maintainer: " m; next } { print }' "$control" >"$control.new"
    mv "$control.new" "$control"
  fi
  # The same timestamps as cargo-deb gave every member (its SOURCE_DATE_EPOCH), the top folder included.
  local epoch
  epoch=$(stat -c %Y "$dir/pkg/etc/precisiond/config.toml")
  find "$dir/pkg" -path "$dir/pkg/DEBIAN" -prune -o -exec touch -h -d "@$epoch" {} +
  SOURCE_DATE_EPOCH=$epoch dpkg-deb --root-owner-group -Zxz -b "$dir/pkg" "$deb" >/dev/null
  rm -rf "$dir"
}

for arch in "${arches[@]}"; do package "$arch"; done
