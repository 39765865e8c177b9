#!/usr/bin/env bash
# Checks the Jetson binary that `make aarch64` built (target/aarch64-unknown-linux-gnu/release/precisiond):
#   1. it is an AArch64 ELF with the standard interpreter (/lib/ld-linux-aarch64.so.1);
#   2. no GLIBC_x.y symbol version above the floor (2.31: JetPack 5 / Ubuntu 20.04), read with readelf (and
#      objdump -T where this objdump reads AArch64);
#   3. NEEDED holds only glibc's own libraries and libgcc_s: no libcuda/libnvinfer (dlopen'ed at run time),
#      no libstdc++, no OpenSSL;
#   4. it runs under qemu-aarch64 (Debian qemu-user-static and libc6-arm64-cross, unpacked into .cache/tools by
#      scripts/package-tools.sh): `--version`, `device --json` (exit 0, "gpus": []), and `inspect` on a real model
#      (.cache/assets/models/cls.onnx with a concrete shape: tract's shape inference runs), whose summary must equal
#      the x86 binary's where target/release/precisiond exists.
# Every failed assertion prints what was expected and what was found; the exit status is 1 if any failed.
#
# usage: scripts/check-aarch64.sh [BINARY]
# env:
#   AARCH64_GLIBC   the glibc floor (default 2.31)
set -euo pipefail

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=package-tools.sh
source scripts/package-tools.sh

BIN=${1:-target/$AARCH64_TARGET/release/precisiond}
FLOOR=${AARCH64_GLIBC:-2.31}
MODEL=.cache/assets/models/cls.onnx
MODEL_SHAPE=x=1,3,48,192
X86_BIN=target/release/precisiond
# glibc's libraries (2.31 still has libpthread/libdl/librt as separate files), the loader, and libgcc_s (unwinding).
ALLOWED_NEEDED="libc.so.6 libm.so.6 libpthread.so.0 libdl.so.2 librt.so.1 libutil.so.1 libgcc_s.so.1 ld-linux-aarch64.so.1"


[[ -f $BIN ]] || { echo "error: $BIN not found" >&2; echo "hint: run 'make aarch64' first" >&2; exit 2; }
command -v readelf >/dev/null || { echo "error: readelf not found (Debian binutils)" >&2; exit 2; }
echo "check-aarch64: $BIN ($(stat -c %s "$BIN") bytes)"

section "ELF header"
header=$(readelf -h "$BIN")
machine=$(awk -F: '/Machine:/ {gsub(/^ +/, "", $2); print $2}' <<<"$header")
class=$(awk -F: '/Class:/ {gsub(/^ +/, "", $2); print $2}' <<<"$header")
[[ $machine == AArch64 ]] && pass "machine AArch64" || fail "machine: expected AArch64, found '$machine'"
[[ $class == ELF64 ]] && pass "class ELF64" || fail "class: expected ELF64, found '$class'"
interp=$(readelf -l "$BIN" | sed -n 's/.*\[Requesting program interpreter: \(.*\)\]/\1/p')
[[ $interp == /lib/ld-linux-aarch64.so.1 ]] && pass "interpreter $interp" \
  || fail "interpreter: expected /lib/ld-linux-aarch64.so.1, found '${interp:-none (static?)}'"

section "symbol versions (floor GLIBC_$FLOOR)"
# .gnu.version_r lists every version the binary needs, per library: the authoritative list.
mapfile -t glibc_versions < <(readelf -V -W "$BIN" | grep -oE 'Name: GLIBC_[0-9.]+' | sed 's/Name: GLIBC_//' | sort -uV)
[[ ${#glibc_versions[@]} -gt 0 ]] || fail "no GLIBC_ versions found in .gnu.version_r (not a glibc binary?)"
if [[ ${#glibc_versions[@]} -gt 0 ]]; then
  max=${glibc_versions[-1]}
  echo "        GLIBC versions needed: ${glibc_versions[*]}"
  if version_le "$max" "$FLOOR"; then
    pass "highest GLIBC version is $max (<= $FLOOR)"
  else
    over=()
    for v in "${glibc_versions[@]}"; do version_le "$v" "$FLOOR" || over+=("$v"); done
    fail "GLIBC versions above $FLOOR: ${over[*]}; symbols:"
    readelf --dyn-syms -W "$BIN" | grep -E "@GLIBC_($(IFS='|'; echo "${over[*]//./\\.}"))( |$)" | grep -oE '[^ ]+@GLIBC_[0-9.]+' | sort -u | head -n 20 | sed 's/^/          /'
  fi
fi
others=$(readelf -V -W "$BIN" | grep -oE 'Name: [A-Z_]+[0-9.]+' | sed 's/Name: //' | grep -v '^GLIBC_' | sort -uV | tr '\n' ' ' || true)
[[ -n $others ]] && echo "        other versions needed: $others"
# objdump -T is the second opinion where this binutils reads AArch64 (Debian's x86 binutils usually does not).
if objdump_out=$(objdump -T "$BIN" 2>/dev/null); then
  omax=$(grep -oE 'GLIBC_[0-9.]+' <<<"$objdump_out" | sed 's/GLIBC_//' | sort -uV | tail -n1)
  if [[ -n $omax ]] && version_le "$omax" "$FLOOR"; then pass "objdump -T agrees: highest GLIBC_$omax"
  else fail "objdump -T: highest GLIBC version '$omax' is above $FLOOR"; fi
else
  echo "        (objdump -T cannot read AArch64 here; readelf's list above is the check)"
fi

section "NEEDED libraries"
mapfile -t needed < <(readelf -d "$BIN" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
echo "        NEEDED: ${needed[*]}"
for lib in "${needed[@]}"; do
  if [[ " $ALLOWED_NEEDED " == *" $lib "* ]]; then pass "$lib"
  else fail "$lib is not one of the expected system libraries ($ALLOWED_NEEDED)"; fi
done
[[ " ${needed[*]} " == *" libc.so.6 "* ]] && pass "links glibc (libc.so.6)" || fail "libc.so.6 is not NEEDED"

section "runs under qemu-aarch64"
ensure_qemu
QEMU=$(qemu_aarch64) || { echo "error: no qemu-aarch64 after scripts/package-tools.sh qemu" >&2; exit 2; }
SYSROOT=$(aarch64_sysroot)
[[ -e $SYSROOT/lib/ld-linux-aarch64.so.1 ]] || { echo "error: $SYSROOT/lib/ld-linux-aarch64.so.1 missing" >&2; exit 2; }
echo "        qemu: ${QEMU#"$ROOT"/} ($("$QEMU" --version | head -n1)); glibc: ${SYSROOT#"$ROOT"/}"
run_arm() { QEMU_LD_PREFIX=$SYSROOT "$QEMU" -L "$SYSROOT" "$BIN" "$@"; }

expected_version=$(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n1)
if out=$(run_arm --version 2>&1); then
  [[ $out == "precisiond $expected_version" ]] && pass "--version: $out" \
    || fail "--version: expected 'precisiond $expected_version', got '$out'"
else
  fail "--version exited $?: $out"
fi

set +e
dev_json=$(run_arm device --json 2>/tmp/check-aarch64-device.$$)
dev_rc=$?
set -e
dev_err=$(cat /tmp/check-aarch64-device.$$); rm -f /tmp/check-aarch64-device.$$
if [[ $dev_rc == 0 ]]; then pass "device --json exits 0"; else fail "device --json exited $dev_rc: $dev_err"; fi
if gpus=$(python3 -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps(d["gpus"]))' <<<"$dev_json" 2>&1); then
  [[ $gpus == "[]" ]] && pass 'device --json: "gpus": [] (no CUDA driver under qemu)' \
    || fail "device --json: expected \"gpus\": [], got $gpus"
else
  fail "device --json: not JSON with a gpus key: $(tail -n1 <<<"$gpus")"
fi

if [[ ! -f $MODEL ]]; then
  fail "$MODEL missing (run 'bash scripts/fetch-assets.sh' or 'make assets')"
else
  start=$(date +%s%N)
  set +e
  arm_json=$(run_arm inspect "$MODEL" --shape "$MODEL_SHAPE" --json 2>&1)
  arm_rc=$?
  set -e
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  secs=$((ms / 1000)).$(( (ms % 1000) / 100 ))
  if [[ $arm_rc != 0 ]]; then
    fail "inspect $MODEL exited $arm_rc: $(tail -n 5 <<<"$arm_json")"
  else
    pass "inspect $MODEL --shape $MODEL_SHAPE exits 0 (${secs} s under qemu)"
    summary=$(python3 -c '
import json, sys
d = json.load(sys.stdin)
s = d["summary"]
assert s["nodes"] > 0 and s["quantizable"] > 0 and isinstance(s["macs"], int) and s["macs"] > 0, s
print(json.dumps(s, sort_keys=True))' <<<"$arm_json" 2>&1) \
      && pass "inspect: $summary" || fail "inspect: unexpected summary: $summary"
    if [[ -x $X86_BIN ]]; then
      x86_summary=$("$X86_BIN" inspect "$MODEL" --shape "$MODEL_SHAPE" --json 2>/dev/null \
        | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["summary"], sort_keys=True))' 2>/dev/null || true)
      if [[ -z $x86_summary ]]; then
        echo "        ($X86_BIN could not inspect the model; no cross-architecture comparison)"
      elif [[ $x86_summary == "$summary" ]]; then
        pass "inspect summary equals the x86 binary's"
      else
        fail "inspect summary differs from $X86_BIN's: aarch64 $summary, x86 $x86_summary (a stale x86 build? run 'make build')"
      fi
    fi
  fi
fi

echo
checks_result scripts/check-aarch64.sh
if [[ $failures == 0 ]]; then
  echo "check-aarch64: all checks passed (highest GLIBC_${max:-?}, NEEDED: ${needed[*]})"
else
  echo "check-aarch64: $failures check(s) failed"
  exit 1
fi
