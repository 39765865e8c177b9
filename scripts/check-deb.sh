#!/usr/bin/env bash
# Checks the packages `make deb` wrote (target/debian/precisiond_<version>-1_{amd64,arm64}.deb):
#   control   Package, Version (= Cargo.toml's version + "-1" = packaging/debian/changelog's top entry),
#             Architecture, Maintainer, Depends (arm64: libc6 (>= 2.31) exactly, and every NEEDED library
#             covered; amd64: libc6 from dpkg-shlibdeps), conffiles (exactly /etc/precisiond/config.toml),
#             md5sums (every file, and they match), maintainer scripts (present, executable, `sh -n` clean,
#             creating the user with systemd-sysusers and enabling the unit)
#   contents  exactly the expected paths, modes and root:root ownership; the binary's ELF machine matches the
#             architecture (arm64: the very file scripts/check-aarch64.sh checked); unit, config and sysusers
#             byte-identical to systemd/ and packaging/
#   runs      the packaged binary (arm64 under qemu-aarch64): --version, and check-config on the packaged
#             config where the binary has that command
#   unit      systemd-analyze verify on the packaged unit inside the unpacked package (exit 0 and no message,
#             man page found in the package); the properties that GPU access and the daemon rely on; the
#             exposure score of systemd-analyze security (reported)
#   install   packaging/install.sh (`make install`) into a DESTDIR: the files, the unit's paths, systemd-analyze
#             verify, an edited config kept on reinstall
#   lintian   no E: or W: tag left (the accepted ones are overridden in packaging/lintian-overrides and shown
#             as O:); I: tags reported. Skipped, with the reason, when lintian cannot be had.
# The exit status is 1 if any assertion failed.
#
# usage: scripts/check-deb.sh [amd64|arm64]...   (default: both)
# env:
#   AARCH64_GLIBC   the arm64 glibc floor (default 2.31)
set -euo pipefail

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=package-tools.sh
source scripts/package-tools.sh

FLOOR=${AARCH64_GLIBC:-2.31}
VERSION=$(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n1)
DEB_VERSION=$VERSION-1
arches=("$@")
[[ ${#arches[@]} -gt 0 ]] || arches=(amd64 arm64)

# Every path the package holds, with its mode; nothing else may be in it.
EXPECTED_CONTENTS=(
  "drwxr-xr-x ./"
  "drwxr-xr-x ./etc/"
  "drwxr-xr-x ./etc/precisiond/"
  "-rw-r--r-- ./etc/precisiond/config.toml"
  "drwxr-xr-x ./lib/"
  "drwxr-xr-x ./lib/systemd/"
  "drwxr-xr-x ./lib/systemd/system/"
  "-rw-r--r-- ./lib/systemd/system/precisiond.service"
  "drwxr-xr-x ./usr/"
  "drwxr-xr-x ./usr/bin/"
  "-rwxr-xr-x ./usr/bin/precisiond"
  "drwxr-xr-x ./usr/lib/"
  "drwxr-xr-x ./usr/lib/sysusers.d/"
  "-rw-r--r-- ./usr/lib/sysusers.d/precisiond.conf"
  "drwxr-xr-x ./usr/share/"
  "drwxr-xr-x ./usr/share/doc/"
  "drwxr-xr-x ./usr/share/doc/precisiond/"
  "-rw-r--r-- ./usr/share/doc/precisiond/README.md"
  "-rw-r--r-- ./usr/share/doc/precisiond/changelog.Debian.gz"
  "-rw-r--r-- ./usr/share/doc/precisiond/copyright"
  "drwxr-xr-x ./usr/share/lintian/"
  "drwxr-xr-x ./usr/share/lintian/overrides/"
  "-rw-r--r-- ./usr/share/lintian/overrides/precisiond"
  "drwxr-xr-x ./usr/share/man/"
  "drwxr-xr-x ./usr/share/man/man1/"
  "-rw-r--r-- ./usr/share/man/man1/precisiond.1.gz"
)
# NEEDED library -> the Debian package that must be in Depends for it. libgcc_s.so.1 is exempt: libgcc-s1 is
# Protected and present on every Debian and Ubuntu system, and cargo-deb runs dpkg-shlibdeps with -xlibgcc.
declare -A LIB_PACKAGE=(
  [libc.so.6]=libc6 [libm.so.6]=libc6 [libpthread.so.0]=libc6 [libdl.so.2]=libc6 [librt.so.1]=libc6
  [libutil.so.1]=libc6 [ld-linux-aarch64.so.1]=libc6 [ld-linux-x86-64.so.2]=libc6 [libgcc_s.so.1]=-
)

field() { sed -n "s/^ *$1: //p" <<<"$2" | head -n1; }

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

check_changelog() {
  local top
  top=$(sed -n '1s/^precisiond (\([^)]*\)).*/\1/p' packaging/debian/changelog)
  [[ $top == "$DEB_VERSION" ]] && pass "packaging/debian/changelog's top entry is $DEB_VERSION" \
    || fail "packaging/debian/changelog's top entry is '$top', Cargo.toml says $DEB_VERSION: add an entry"
}

check_deb() {
  local arch=$1 deb=target/debian/precisiond_${DEB_VERSION}_$1.deb
  local root=$WORK/$arch/root ctl=$WORK/$arch/control info contents
  section "$arch: ${deb}"
  if [[ ! -f $deb ]]; then
    fail "$deb not found (run 'make deb')"
    return
  fi
  mkdir -p "$root" "$ctl"
  dpkg-deb -x "$deb" "$root"
  dpkg-deb -e "$deb" "$ctl"
  info=$(dpkg-deb --info "$deb")
  contents=$(dpkg-deb --contents "$deb")

  # --- control fields
  local v
  [[ $(field Package "$info") == precisiond ]] && pass "Package: precisiond" || fail "Package: '$(field Package "$info")'"
  v=$(field Version "$info")
  [[ $v == "$DEB_VERSION" ]] && pass "Version: $v" || fail "Version: expected $DEB_VERSION, found '$v'"
  v=$(field Architecture "$info")
  [[ $v == "$arch" ]] && pass "Architecture: $v" || fail "Architecture: expected $arch, found '$v'"
  v=$(field Maintainer "$info")
  local maintainer=${DEB_MAINTAINER:-$(sed -n 's/^maintainer *= *"\(.*\)"/\1/p' Cargo.toml | head -n1)}
  [[ $v == "$maintainer" && $v == *"<"*"@"*">" ]] && pass "Maintainer: $v" \
    || fail "Maintainer: expected '$maintainer' (DEB_MAINTAINER, else Cargo.toml), found '$v'"
  local depends libc_min
  depends=$(field Depends "$info")
  echo "        Depends: ${depends:-<none>}"
  libc_min=$(sed -n 's/.*libc6 (>= \([0-9.]*\)).*/\1/p' <<<"$depends")
  if [[ -z $libc_min ]]; then
    fail "Depends has no 'libc6 (>= X)'"
  elif [[ $arch == arm64 ]]; then
    [[ $libc_min == "$FLOOR" ]] && pass "Depends: libc6 (>= $FLOOR), the JetPack 5 floor" \
      || fail "arm64 Depends: expected libc6 (>= $FLOOR), found libc6 (>= $libc_min)"
  else
    pass "Depends: libc6 (>= $libc_min) (dpkg-shlibdeps; this build host's glibc sets it)"
  fi
  local lib pkg needed uncovered=0
  needed=$(readelf -d "$root/usr/bin/precisiond" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
  for lib in $needed; do
    pkg=${LIB_PACKAGE[$lib]:-}
    if [[ -z $pkg ]]; then fail "NEEDED $lib: no known Debian package provides it"; uncovered=1
    elif [[ $pkg == - || " ${depends//,/ } " == *" $pkg "* ]]; then :
    else fail "NEEDED $lib needs '$pkg' in Depends ($depends)"; uncovered=1; fi
  done
  [[ $uncovered == 0 ]] && pass "NEEDED ($needed) all covered by Depends"

  # --- conffiles, md5sums, maintainer scripts
  v=$(cat "$ctl/conffiles" 2>/dev/null || true)
  [[ $v == /etc/precisiond/config.toml ]] && pass "conffiles: /etc/precisiond/config.toml" \
    || fail "conffiles: expected exactly /etc/precisiond/config.toml, found '${v//$'\n'/ }'"
  if [[ -f $ctl/md5sums ]]; then
    local files sums
    files=$(cd "$root" && find . -type f -printf '%P\n' | sort)
    sums=$(awk '{print $2}' "$ctl/md5sums" | sort)
    [[ $files == "$sums" ]] && pass "md5sums lists every file" || fail "md5sums does not list exactly the files"
    (cd "$root" && md5sum --quiet -c "$ctl/md5sums" >/dev/null 2>&1) && pass "md5sums match" || fail "md5sums do not match the files"
  else
    fail "no md5sums control member"
  fi
  local s
  for s in postinst prerm postrm; do
    if [[ -x $ctl/$s ]] && sh -n "$ctl/$s"; then pass "$s: executable, sh -n clean"
    else fail "$s: missing, not executable or not valid sh"; fi
  done
  grep -q 'systemd-sysusers /usr/lib/sysusers.d/precisiond.conf' "$ctl/postinst" \
    && grep -q 'deb-systemd-helper enable' "$ctl/postinst" && grep -q 'deb-systemd-invoke' "$ctl/postinst" \
    && pass "postinst creates the user (systemd-sysusers), enables and starts/restarts the unit" \
    || fail "postinst lacks systemd-sysusers, deb-systemd-helper enable or deb-systemd-invoke"
  grep -q 'deb-systemd-invoke stop' "$ctl/prerm" && pass "prerm stops the unit on removal" || fail "prerm does not stop the unit"

  # --- contents
  local got expected_sorted
  got=$(awk '{print $1, $6}' <<<"$contents" | sort -k2)
  expected_sorted=$(printf '%s\n' "${EXPECTED_CONTENTS[@]}" | sort -k2)
  if [[ $got == "$expected_sorted" ]]; then
    pass "contents: exactly the ${#EXPECTED_CONTENTS[@]} expected paths and modes"
  else
    fail "contents differ from the expected list (< expected, > found):"
    diff <(echo "$expected_sorted") <(echo "$got") | grep '^[<>]' | sed 's/^/          /'
  fi
  v=$(awk '$2 != "root/root" {print $6}' <<<"$contents")
  [[ -z $v ]] && pass "every path owned by root/root" || fail "not owned by root/root: $v"
  local machine want_machine
  machine=$(readelf -h "$root/usr/bin/precisiond" | awk -F: '/Machine:/ {gsub(/^ +/, "", $2); print $2}')
  case $arch in amd64) want_machine="Advanced Micro Devices X86-64" ;; arm64) want_machine=AArch64 ;; esac
  [[ $machine == "$want_machine" ]] && pass "usr/bin/precisiond is $machine" || fail "usr/bin/precisiond machine: '$machine', expected '$want_machine'"
  if [[ $arch == arm64 ]]; then
    cmp -s "$root/usr/bin/precisiond" "target/$AARCH64_TARGET/release/precisiond" \
      && pass "usr/bin/precisiond is target/$AARCH64_TARGET/release/precisiond (what check-aarch64.sh checks)" \
      || fail "usr/bin/precisiond differs from target/$AARCH64_TARGET/release/precisiond (stale package? run 'make deb')"
  fi
  local pair
  for pair in "lib/systemd/system/precisiond.service:systemd/precisiond.service" \
              "etc/precisiond/config.toml:packaging/config.toml" \
              "usr/lib/sysusers.d/precisiond.conf:packaging/precisiond.sysusers"; do
    cmp -s "$root/${pair%%:*}" "${pair#*:}" && pass "${pair%%:*} = ${pair#*:}" \
      || fail "${pair%%:*} differs from ${pair#*:} (stale package? run 'make deb')"
  done
  grep -qE '^u precisiond ' "$root/usr/lib/sysusers.d/precisiond.conf" && grep -qE '^m precisiond video$' "$root/usr/lib/sysusers.d/precisiond.conf" \
    && pass "sysusers: system user precisiond, member of video" || fail "sysusers.d file lacks 'u precisiond' or 'm precisiond video'"

  # --- the packaged binary runs
  local run=("$root/usr/bin/precisiond")
  if [[ $arch == arm64 ]]; then
    ensure_qemu
    run=("$(qemu_aarch64)" -L "$(aarch64_sysroot)" "$root/usr/bin/precisiond")
  fi
  v=$("${run[@]}" --version 2>&1 || true)
  [[ $v == "precisiond $VERSION" ]] && pass "runs: --version = $v" || fail "--version: expected 'precisiond $VERSION', got '$v'"
  if "${run[@]}" --help 2>/dev/null | grep -qE '^ +check-config '; then
    if v=$("${run[@]}" check-config "$root/etc/precisiond/config.toml" 2>&1); then
      pass "check-config accepts the packaged /etc/precisiond/config.toml"
    else
      fail "check-config rejects the packaged config: $(tail -n 5 <<<"$v")"
    fi
  else
    echo "        (this build has no check-config command yet: the packaged config is not checked by it)"
  fi

  check_unit "$arch" "$root"
  run_lintian "$deb"
}

check_unit() {
  local arch=$1 root=$2 unit=$2/lib/systemd/system/precisiond.service vroot=$WORK/$1/verify out
  # A root for `systemd-analyze verify --root`: the host's units (sysinit.target and the like), /bin/kill for
  # ExecReload, then the package on top; the man page for Documentation= is looked up in the package.
  mkdir -p "$vroot/lib/systemd" "$vroot/bin"
  cp -a /lib/systemd/system "$vroot/lib/systemd/"
  cp /bin/kill "$vroot/bin/kill"
  cp -a "$root/." "$vroot/"
  if ! command -v systemd-analyze >/dev/null; then
    fail "systemd-analyze not found (Debian package systemd): the unit is not verified"
    return
  fi
  if out=$(MANPATH=$vroot/usr/share/man systemd-analyze verify --root="$vroot" precisiond.service 2>&1) && [[ -z $out ]]; then
    pass "systemd-analyze verify: clean ($(systemd-analyze --version | head -n1))"
  else
    fail "systemd-analyze verify:"; sed 's/^/          /' <<<"$out"
  fi
  local exposure
  exposure=$(systemd-analyze security --offline=yes --root="$vroot" precisiond.service 2>/dev/null | sed -n 's/.*Overall exposure level for precisiond.service: //p' || true)
  [[ -n $exposure ]] && echo "        systemd-analyze security: exposure $exposure"
  # The properties the daemon and the GPU rely on (deployment-anchors.md §4).
  local want
  for want in "Type=notify" "NotifyAccess=main" "User=precisiond" "SupplementaryGroups=video" \
              "StateDirectory=precisiond" "ExecReload=/bin/kill -HUP \$MAINPID" "Restart=on-failure" \
              "KillMode=mixed" "ExecStartPre=/usr/bin/precisiond check-config /etc/precisiond/config.toml" \
              "ExecStart=/usr/bin/precisiond run --config /etc/precisiond/config.toml"; do
    grep -qxF "$want" "$unit" && pass "unit: $want" || fail "unit: missing '$want'"
  done
  grep -qE '^WatchdogSec=[1-9]' "$unit" && pass "unit: $(grep -E '^WatchdogSec=' "$unit")" || fail "unit: no WatchdogSec="
  grep -qE '^TimeoutStopSec=' "$unit" && pass "unit: $(grep -E '^TimeoutStopSec=' "$unit")" || fail "unit: no TimeoutStopSec="
  # Each of these would cut the service off the GPU device nodes (/dev/nvmap, /dev/nvhost-*, /dev/nvidia*).
  local bad
  bad=$(grep -E '^(PrivateDevices=(yes|true|1)|DevicePolicy=(closed|strict)|DeviceAllow=|ProtectClock=(yes|true|1)|PrivateUsers=(yes|true|1)|DynamicUser=(yes|true|1))' "$unit" || true)
  [[ -z $bad ]] && pass "unit: nothing that hides the GPU (PrivateDevices, DevicePolicy, DeviceAllow, ProtectClock, PrivateUsers)" \
    || fail "unit: options that cut off the GPU device nodes: $bad"
}

LINTIAN_STATE=unknown
run_lintian() {
  local deb=$1 out tags
  if [[ $LINTIAN_STATE == unknown ]]; then
    if ensure_lintian 2>"$WORK/lintian-setup.log"; then LINTIAN_STATE=ok
    else LINTIAN_STATE=unavailable; fi
  fi
  if [[ $LINTIAN_STATE != ok ]]; then
    echo "        lintian: skipped, it could not be had here ($(tail -n1 "$WORK/lintian-setup.log"))"
    return
  fi
  out=$("${LINTIAN[@]}" --display-info --display-experimental --pedantic --show-overrides --no-tag-display-limit "$deb" 2>&1 \
    | grep -vE '^N:|running with root privileges' || true)
  tags=$(grep -E '^[EW]: ' <<<"$out" || true)
  if [[ -z $tags ]]; then
    pass "lintian ($("${LINTIAN[@]}" --version 2>/dev/null)): no error or warning"
  else
    fail "lintian errors/warnings:"; sed 's/^/          /' <<<"$tags"
  fi
  grep -E '^[IPX]: ' <<<"$out" | sed 's/^/        lintian /' || true
  local overridden
  overridden=$(grep -c '^O: ' <<<"$out" || true)
  echo "        lintian: $overridden accepted finding(s) overridden (packaging/lintian-overrides)"
}

# `make install` into a staging root (DESTDIR): the files land under PREFIX, the unit names the installed binary
# and passes systemd-analyze verify there, and a second install keeps an edited configuration.
check_install() {
  local dest=$WORK/install bin=target/release/precisiond out unit
  section "make install (DESTDIR, PREFIX=/usr/local)"
  [[ -x $bin ]] || bin=target/$AARCH64_TARGET/release/precisiond
  if ! out=$(PREFIX=/usr/local DESTDIR=$dest BIN=$bin bash packaging/install.sh 2>&1); then
    fail "packaging/install.sh failed: $(tail -n 3 <<<"$out")"
    return
  fi
  local f
  for f in usr/local/bin/precisiond usr/local/lib/systemd/system/precisiond.service \
           usr/local/lib/sysusers.d/precisiond.conf usr/local/share/man/man1/precisiond.1 etc/precisiond/config.toml; do
    [[ -f $dest/$f ]] && pass "$f" || fail "$f not installed"
  done
  unit=$dest/usr/local/lib/systemd/system/precisiond.service
  grep -qxF "ExecStart=/usr/local/bin/precisiond run --config /etc/precisiond/config.toml" "$unit" \
    && pass "unit runs /usr/local/bin/precisiond" || fail "unit does not name /usr/local/bin/precisiond"
  mkdir -p "$dest/lib/systemd" "$dest/bin"
  cp -a /lib/systemd/system "$dest/lib/systemd/"
  cp /bin/kill "$dest/bin/kill"
  if out=$(MANPATH=$dest/usr/local/share/man systemd-analyze verify --root="$dest" precisiond.service 2>&1) && [[ -z $out ]]; then
    pass "systemd-analyze verify: clean"
  else
    fail "systemd-analyze verify:"; sed 's/^/          /' <<<"$out"
  fi
  echo "# edited" >>"$dest/etc/precisiond/config.toml"
  PREFIX=/usr/local DESTDIR=$dest BIN=$bin bash packaging/install.sh >/dev/null 2>&1
  if tail -n1 "$dest/etc/precisiond/config.toml" | grep -qx '# edited' && [[ -f $dest/etc/precisiond/config.toml.example ]]; then
    pass "a second install keeps the edited config.toml (example beside it)"
  else
    fail "a second install overwrote config.toml or wrote no config.toml.example"
  fi
}

section "changelog"
check_changelog
for arch in "${arches[@]}"; do check_deb "$arch"; done
check_install

echo
checks_result scripts/check-deb.sh
if [[ $failures == 0 ]]; then
  echo "check-deb: all checks passed (${arches[*]})"
else
  echo "check-deb: $failures check(s) failed"
  exit 1
fi
