#!/usr/bin/env bash
# Fetches everything the tests and demos need that must not live in git: a pinned Python venv for the
# external judges, real models and images taken out of PyPI wheels, and the project's own digits model,
# trained here. Safe to re-run: each step keeps a stamp and is skipped, silently, while its inputs are unchanged.
#
# usage: scripts/fetch-assets.sh [--force] [--verify]
#   --force   redo every step even when its stamp matches
#   --verify  also re-hash the cached wheels and every asset against the recorded sums
# env:
#   PRECISIOND_VENV    venv to create/use          (default .venv)
#   PRECISIOND_ASSETS  where the assets go         (default .cache/assets)
#   PYTHON             interpreter for the venv    (default python3; must be >= 3.11)
set -euo pipefail

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
SELF=$ROOT/scripts/$(basename -- "${BASH_SOURCE[0]}")
# Relative PRECISIOND_* paths then mean the same here as in `cargo test`, which also runs from the root.
cd "$ROOT"

VENV=${PRECISIOND_VENV:-.venv}
ASSETS=${PRECISIOND_ASSETS:-.cache/assets}
WHEELS=.cache/wheels
LOGS=.cache/logs
PYTHON=${PYTHON:-python3}
REQS=scripts/requirements-test.txt
TRAIN=scripts/train_digits.py

# spec, file name, sha256 as seen on PyPI on 2026-11-26. A changed hash means PyPI serves different bytes
# under the same name: investigate before updating it.
WHEEL_PINS=(
  "rapidocr-onnxruntime==1.4.4 rapidocr_onnxruntime-1.4.4-py3-none-any.whl 971d7d5f223a7a808662229df1ef69893809d8457d834e6373d3854bc1782cbf"
  "scikit-image==0.26.0 scikit_image-0.26.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl 74aa5518ccea28121f57a95374581d3b979839adc25bb03f289b1bc9b99c58af"
  "scikit-learn==1.9.1 scikit_learn-1.9.1-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl 52a0703bbc07ad27f560fa63fa68e4c54dd735bfbbf65b4dd3c225dc7547b6df"
)
# We only take data files out of these wheels, so one fixed platform everywhere (an aarch64 Jetson included)
# means one file and one hash to pin; --only-binary stops pip from ever falling back to an sdist build.
PIP_DL_PLATFORM=(--only-binary=:all: --platform manylinux_2_28_x86_64 --python-version 3.11
                 --implementation cp --abi cp311)

FORCE=0
VERIFY=0
for arg in "$@"; do
  case $arg in
    --force) FORCE=1 ;;
    --verify) VERIFY=1 ;;
    -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$SELF"; exit 0 ;;
    *) echo "error: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

say() { echo "fetch-assets: $*"; }
die() { echo "error: $*" >&2; exit 1; }
sha256_of() { sha256sum -- "$1" | cut -d' ' -f1; }

# Shows why a logged command failed, and names the likely cause when it is the network.
fail_with_log() {
  local what=$1 log=$2
  echo "error: $what failed; last lines of $log:" >&2
  tail -n 15 "$log" | sed 's/^/  | /' >&2
  if grep -qiE 'NewConnectionError|Failed to establish|Name or service not known|Temporary failure in name resolution|ConnectTimeout|ReadTimeout|ProxyError|SSLError|Network is unreachable|No matching distribution|Could not find a version' "$log"; then
    echo "hint: PyPI looks unreachable (or does not serve the pinned version). Check the network, proxy" \
         "(HTTPS_PROXY) or PIP_INDEX_URL; wheels placed in $WHEELS/ by hand are used if their sha256 matches." >&2
  fi
  exit 1
}

TMPDIRS=()
cleanup() { local d; for d in "${TMPDIRS[@]+"${TMPDIRS[@]}"}"; do rm -rf -- "$d"; done; }
trap cleanup EXIT

command -v sha256sum >/dev/null || die "sha256sum not found (coreutils)"
mkdir -p .cache "$LOGS"
if command -v flock >/dev/null; then
  # make test and make demo may start this at the same time; the second waits instead of racing the first.
  exec 9>.cache/fetch-assets.lock
  flock 9
fi

# --- step 1: venv -------------------------------------------------------------------------------------------
VPY=$VENV/bin/python
venv_stamp=$VENV/.precisiond-venv-stamp
py_version='import sys; print("%d.%d.%d" % sys.version_info[:3])'
# Asks the venv's interpreter, not $PYTHON: a pyenv shim costs ~0.3 s a call, and the venv's python still
# reports an in-place upgrade of the base interpreter.
venv_key() { echo "$(sha256_of "$REQS") $PYTHON python-$("$VPY" -c "$py_version" 2>/dev/null || echo none)"; }
if [[ $FORCE == 1 || ! -x $VPY || ! -f $venv_stamp || $(<"$venv_stamp") != "$(venv_key)" ]]; then
  py_ver=$("$PYTHON" -c "$py_version" 2>/dev/null) \
    || die "cannot run '$PYTHON'; install Python >= 3.11 or set PYTHON=/path/to/python3.11"
  "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "'$PYTHON' is Python $py_ver; the pinned test packages (numpy 2.4) need >= 3.11 (set PYTHON=python3.11)"
  say "creating venv $VENV (Python $py_ver) from $REQS"
  # Rebuild from empty so a package dropped from the requirements does not linger; but never wipe a venv
  # we did not create (PRECISIOND_VENV may name the user's own).
  clear=(--clear)
  if [[ -e $VENV && ! -f $venv_stamp && -n ${PRECISIOND_VENV:-} ]]; then
    say "  $VENV was not made by this script: installing into it without clearing"
    clear=()
  fi
  "$PYTHON" -m venv "${clear[@]+"${clear[@]}"}" "$VENV" >"$LOGS/venv.log" 2>&1 || {
    grep -qi ensurepip "$LOGS/venv.log" && echo "hint: on Debian/Ubuntu: apt-get install python3-venv" >&2
    fail_with_log "creating the venv $VENV" "$LOGS/venv.log"
  }
  "$VPY" -m pip install --disable-pip-version-check --no-input --only-binary=:all: -r "$REQS" \
    >"$LOGS/pip-install.log" 2>&1 || fail_with_log "pip install -r $REQS" "$LOGS/pip-install.log"
  # A wheel can install yet not load (too old a glibc, missing CPU feature); find out now, not in a test.
  "$VPY" -c 'import numpy, onnx, onnxruntime, prometheus_client' >"$LOGS/venv-import.log" 2>&1 \
    || fail_with_log "importing the test packages in $VENV" "$LOGS/venv-import.log"
  venv_key >"$venv_stamp"
fi
venv_key=$(<"$venv_stamp")

# --- steps 2-3: wheels and extraction -----------------------------------------------------------------------
extract_stamp=$ASSETS/.extract-stamp
train_stamp=$ASSETS/.train-stamp
sums=$ASSETS/SHA256SUMS
# The script's own hash stands in for "how to extract": changing the pins or the layout re-extracts.
extract_key=$(sha256_of "$SELF")

assets_complete() {
  [[ -f $sums ]] || return 1
  local _h f
  while read -r _h f; do [[ -f $ASSETS/${f#\*} ]] || return 1; done <"$sums"
}

fetch_wheel() {
  local spec=$1 file=$2 want=$3 dest=$WHEELS/$2 got tmpd
  if [[ -f $dest ]]; then
    got=$(sha256_of "$dest")
    [[ $got == "$want" ]] && return 0
    say "cached $dest has sha256 $got, expected $want: downloading again"
  fi
  say "downloading $spec"
  tmpd=$(mktemp -d "$WHEELS/.download.XXXXXX")
  TMPDIRS+=("$tmpd")
  "$VPY" -m pip download --disable-pip-version-check --no-input --no-deps "${PIP_DL_PLATFORM[@]}" \
    -d "$tmpd" "$spec" >"$LOGS/pip-download.log" 2>&1 || fail_with_log "pip download $spec" "$LOGS/pip-download.log"
  [[ -f $tmpd/$file ]] || die "pip download $spec produced '$(ls "$tmpd" | tr '\n' ' ')', expected $file"
  got=$(sha256_of "$tmpd/$file")
  [[ $got == "$want" ]] || die "sha256 mismatch for $file (from $spec): expected $want, got $got"
  mv -f -- "$tmpd/$file" "$dest"
}

if [[ $FORCE == 1 || ! -f $extract_stamp || $(<"$extract_stamp") != "$extract_key" ]] || ! assets_complete; then
  mkdir -p "$WHEELS" "$ASSETS/models" "$ASSETS/images" "$ASSETS/data"
  for pin in "${WHEEL_PINS[@]}"; do
    # shellcheck disable=SC2086
    fetch_wheel $pin
  done
  say "extracting models, images and digits data into $ASSETS"
  wheel_files=()
  for pin in "${WHEEL_PINS[@]}"; do read -r _ f _ <<<"$pin"; wheel_files+=("$WHEELS/$f"); done
  "$VPY" - "$ASSETS" "${wheel_files[@]}" >"$LOGS/extract.log" 2>&1 <<'PY' || fail_with_log "extraction" "$LOGS/extract.log"
import os, sys, zipfile

assets, rapidocr, skimage, sklearn = sys.argv[1:5]
IMAGE_EXT = (".png", ".jpg", ".jpeg", ".gif", ".tif", ".tiff", ".bmp")
plan = {}  # destination -> (wheel, member)

def want(wheel, member, dest):
    if dest in plan:
        sys.exit(f"two sources for {dest}: {plan[dest]} and {(wheel, member)}")
    plan[dest] = (wheel, member)

for name, dest in [("ch_PP-OCRv4_det_infer.onnx", "det.onnx"), ("ch_PP-OCRv4_rec_infer.onnx", "rec.onnx"),
                   ("ch_ppocr_mobile_v2.0_cls_infer.onnx", "cls.onnx")]:
    want(rapidocr, "rapidocr_onnxruntime/models/" + name, "models/" + dest)
with zipfile.ZipFile(skimage) as z:
    found = [n for n in z.namelist() if n.startswith("skimage/data/") and n.count("/") == 2
             and n.lower().endswith(IMAGE_EXT)]
for n in sorted(found):
    want(skimage, n, "images/" + n.rsplit("/", 1)[1])
# A sudden drop means the wheel's layout changed, and the tests would silently lose inputs.
if len(found) < 25 or "images/page.png" not in plan:
    sys.exit(f"expected >= 25 images including page.png in skimage/data/, found {len(found)}")
for n, dest in [("sklearn/datasets/images/china.jpg", "images/china.jpg"),
                ("sklearn/datasets/images/flower.jpg", "images/flower.jpg"),
                ("sklearn/datasets/data/digits.csv.gz", "data/digits.csv.gz")]:
    want(sklearn, n, dest)

zips = {}
for dest, (wheel, member) in sorted(plan.items()):
    z = zips.setdefault(wheel, zipfile.ZipFile(wheel))
    try:
        data = z.read(member)
    except KeyError:
        sys.exit(f"{os.path.basename(wheel)} has no {member}")
    path = os.path.join(assets, dest)
    with open(path + ".tmp", "wb") as f:
        f.write(data)
    os.replace(path + ".tmp", path)

with open(os.path.join(assets, "SOURCES.txt"), "w") as f:
    f.write("# Where each asset came from (wheel: member). Licences: see each project's wheel metadata;\n"
            "# skimage/data/README.txt lists the image sources.\n")
    for dest, (wheel, member) in sorted(plan.items()):
        f.write(f"{dest}\t{os.path.basename(wheel)}: {member}\n")
print(f"extracted {len(plan)} files")
PY
  printf '%s\n' "$extract_key" >"$extract_stamp"
  did_work=1
fi

# --- step 4: the digits model -------------------------------------------------------------------------------
train_outputs=(models/digits_cnn.onnx models/digits_cnn.json data/digits_train_x.npy data/digits_test_x.npy
               data/digits_test_y.npy)
train_key="$(sha256_of "$TRAIN") $(sha256_of "$ASSETS/data/digits.csv.gz") $venv_key"
need_train=$FORCE
[[ -f $train_stamp && $(<"$train_stamp") == "$train_key" ]] || need_train=1
for f in "${train_outputs[@]}"; do [[ -f $ASSETS/$f ]] || need_train=1; done
if [[ $need_train == 1 ]]; then
  say "training the digits CNN ($TRAIN)"
  "$VPY" "$TRAIN" "$ASSETS/data/digits.csv.gz" "$ASSETS" >"$LOGS/train.log" 2>&1 \
    || fail_with_log "training the digits CNN" "$LOGS/train.log"
  say "  $(grep -m1 'held-out accuracy' "$LOGS/train.log" | sed 's/^ *//')"
  printf '%s\n' "$train_key" >"$train_stamp"
  did_work=1
fi

if [[ ${did_work:-0} == 1 ]]; then
  # Lists everything in the asset folder so --verify (and a curious human) can tell a damaged cache.
  (cd "$ASSETS" && find . -type f ! -name '.*' ! -name SHA256SUMS ! -name '*.tmp' -printf '%P\n' | LC_ALL=C sort \
     | xargs -d '\n' sha256sum >SHA256SUMS.tmp && mv -f SHA256SUMS.tmp SHA256SUMS)
  say "assets ready in $ASSETS ($(wc -l <"$sums") files)"
fi

if [[ $VERIFY == 1 ]]; then
  for pin in "${WHEEL_PINS[@]}"; do
    read -r spec f want <<<"$pin"
    [[ -f $WHEELS/$f ]] || { say "verify: $WHEELS/$f not cached (only needed to re-extract)"; continue; }
    got=$(sha256_of "$WHEELS/$f")
    [[ $got == "$want" ]] || die "sha256 mismatch for $WHEELS/$f: expected $want, got $got"
  done
  (cd "$ASSETS" && sha256sum --quiet -c SHA256SUMS) >&2 || die "assets in $ASSETS do not match $sums (run with --force)"
  say "verify: wheels and $(wc -l <"$sums") assets match their sha256"
fi
