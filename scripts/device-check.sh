#!/usr/bin/env bash
# Checks `precisiond device --json` against nvidia-smi on a machine with an NVIDIA GPU and driver (no Rust needed:
# copy a release binary there). For each GPU: name, compute capability, total memory, driver version and UUID,
# each printed as MATCH or MISMATCH; the exit status is 1 on any mismatch, 2 when a tool is missing or fails.
#
#   scripts/device-check.sh [PATH/TO/precisiond]      (default: target/release/precisiond, or $PRECISIOND)
#
# Only POSIX tools (awk, sed): such machines may have no Python or jq.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-${PRECISIOND:-target/release/precisiond}}

# nvidia-smi's memory.total counts what the driver reserves for itself (memory.reserved: 480 MiB on an H100 with
# driver 580), which cuDeviceTotalMem leaves out. Where nvidia-smi reports memory.reserved, total - reserved must
# equal our bytes to the MiB; where it does not (older drivers), a difference up to this much is the same memory.
MEM_TOLERANCE_MIB=${MEM_TOLERANCE_MIB:-1024}

[ -z "${PRECISIOND_FAKE_FINGERPRINT:-}" ] || echo "note: PRECISIOND_FAKE_FINGERPRINT is set: checking that file, not this GPU" >&2
[ -x "$BIN" ] || { echo "error: no precisiond binary at $BIN" >&2; exit 2; }
command -v nvidia-smi >/dev/null || { echo "error: nvidia-smi is not on PATH" >&2; exit 2; }

# CUDA orders devices fastest first and obeys CUDA_VISIBLE_DEVICES; nvidia-smi lists every GPU by PCI bus id.
ours=$(env -u CUDA_VISIBLE_DEVICES CUDA_DEVICE_ORDER=PCI_BUS_ID "$BIN" device --json) || {
    echo "error: $BIN device --json failed" >&2
    exit 2
}
smi=$(nvidia-smi --query-gpu=name,compute_cap,memory.total,driver_version,uuid --format=csv,noheader) || {
    echo "error: nvidia-smi failed" >&2
    exit 2
}

reserved=$(nvidia-smi --query-gpu=memory.reserved --format=csv,noheader,nounits 2>/dev/null) || reserved=""

echo "== precisiond device --json"
printf '%s\n' "$ours"
echo "== nvidia-smi --query-gpu=name,compute_cap,memory.total,driver_version,uuid --format=csv,noheader"
printf '%s\n' "$smi"
echo "== comparison"

# One line per GPU from the JSON, fields separated by tabs: name, cc, bytes, driver, uuid. The document is
# serde_json's pretty print: one key per line; `name` opens each GPU object (no other object has that key).
ours_table=$(printf '%s\n' "$ours" | awk '
    function value(line) {
        sub(/^[^:]*:[ \t]*/, "", line); sub(/,[ \t]*$/, "", line)
        if (line == "null") return "null"
        gsub(/^"|"$/, "", line); return line
    }
    /^    [ ]*"name":/               { if (n++) print row; row = value($0) }
    /^    [ ]*"compute_capability":/ { row = row "\t" value($0) }
    /^    [ ]*"memory_total_bytes":/ { row = row "\t" value($0) }
    /^    [ ]*"driver_version":/     { drv = value($0) }
    /^    [ ]*"uuid":/               { row = row "\t" drv "\t" value($0) }
    END { if (n) print row }
')

n_ours=$(printf '%s' "$ours_table" | grep -c . || true)
n_smi=$(printf '%s' "$smi" | grep -c . || true)
mismatches=0
report() { # field, ours, theirs, verdict
    printf '%-8s %-20s precisiond=%-44s nvidia-smi=%s\n' "$4" "$1" "$2" "$3"
    [ "$4" = MATCH ] || mismatches=$((mismatches + 1))
}
if [ "$n_ours" = "$n_smi" ]; then report "gpu count" "$n_ours" "$n_smi" MATCH; else report "gpu count" "$n_ours" "$n_smi" MISMATCH; fi

trim() { sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//'; }
i=0
while IFS= read -r line; do
    [ -n "$line" ] || continue
    IFS=',' read -r s_name s_cc s_mem s_drv s_uuid <<<"$line"
    s_name=$(printf '%s' "$s_name" | trim); s_cc=$(printf '%s' "$s_cc" | trim)
    s_mem=$(printf '%s' "$s_mem" | trim); s_drv=$(printf '%s' "$s_drv" | trim); s_uuid=$(printf '%s' "$s_uuid" | trim)
    row=$(printf '%s\n' "$ours_table" | sed -n "$((i + 1))p")
    IFS=$'\t' read -r o_name o_cc o_bytes o_drv o_uuid <<<"${row:-}"
    echo "-- GPU $i"
    verdict() { if [ "$1" = "$2" ]; then echo MATCH; else echo MISMATCH; fi; }
    report "name" "${o_name:-}" "$s_name" "$(verdict "${o_name:-}" "$s_name")"
    report "compute_capability" "${o_cc:-}" "$s_cc" "$(verdict "${o_cc:-}" "$s_cc")"
    s_mib=${s_mem%% *}
    s_reserved=$(printf '%s\n' "$reserved" | sed -n "$((i + 1))p" | trim)
    if [[ "${o_bytes:-}" =~ ^[0-9]+$ && "$s_mib" =~ ^[0-9]+$ ]]; then
        o_mib=$((o_bytes / 1048576))
        if [[ "$s_reserved" =~ ^[0-9]+$ ]]; then
            diff=$((s_mib - s_reserved - o_mib)); diff=${diff#-}
            v=MISMATCH; [ "$diff" -le 1 ] && v=MATCH
            report "memory" "${o_bytes} B = ${o_mib} MiB" "$s_mem - $s_reserved MiB reserved" "$v"
        else
            diff=$((s_mib - o_mib)); diff=${diff#-}
            v=MISMATCH; [ "$diff" -le "$MEM_TOLERANCE_MIB" ] && v=MATCH
            report "memory" "${o_bytes} B = ${o_mib} MiB" "$s_mem (no memory.reserved; differ by ${diff} MiB)" "$v"
        fi
    else
        report "memory" "${o_bytes:-}" "$s_mem" MISMATCH
    fi
    report "driver_version" "${o_drv:-}" "$s_drv" "$(verdict "${o_drv:-}" "$s_drv")"
    s_uuid_lc=$(printf '%s' "$s_uuid" | tr 'A-F' 'a-f')
    report "uuid" "${o_uuid:-}" "$s_uuid" "$(verdict "${o_uuid:-}" "$s_uuid_lc")"
    i=$((i + 1))
done <<<"$smi"

if [ "$mismatches" -ne 0 ]; then
    echo "$mismatches MISMATCH(ES)"
    exit 1
fi
echo "all fields MATCH"
