#!/usr/bin/env python3
"""Writes the real-model bundles used by `make bench` (and by anyone who wants a realistic bundle to try):

    .venv/bin/python scripts/make_bundles.py OUT_DIR [--only NAME]

NAME is one of det, det32, rec, cls, digits. Each OUT_DIR/NAME/ gets model.onnx (a copy), precision.toml,
calib/ and eval/, unsealed: `precisiond bundle seal OUT_DIR/NAME` writes bundle.toml afterwards. An existing
OUT_DIR/NAME is replaced as a whole, so no file of an older run lingers in it.

Inputs come from scripts/fetch-assets.sh (`make assets`): models in $PRECISIOND_ASSETS/models, scikit-image's
images in .../images, the digits arrays in .../data ($PRECISIOND_ASSETS defaults to .cache/assets). Every crop,
scale and split is fixed below, so the same assets and the same pinned Pillow/numpy give the same bytes.

Before writing, the FP32 model (ONNX Runtime) is run on each OCR bundle's eval set: an eval set on which the
detector finds no text, or the recogniser reads nothing, would make the accuracy budget meaningless, and that
is an error here rather than a puzzling metric later.
"""

import argparse
import os
import shutil
import sys

import numpy as np

try:
    from PIL import Image, ImageFilter
except ImportError:
    sys.exit("error: Pillow is missing from this venv (scripts/requirements-test.txt pins it; run `make assets`)")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAMES = ("det", "det32", "rec", "cls", "digits")

DET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
DET_STD = np.array([0.229, 0.224, 0.225], np.float32)
SCALE = "0.00392156862745098"  # 1/255 as the spec's example spells it


class Failure(Exception):
    pass


def assets_dir():
    d = os.environ.get("PRECISIOND_ASSETS", ".cache/assets")
    # Relative means relative to the repository root, as in fetch-assets.sh and `cargo test`.
    return d if os.path.isabs(d) else os.path.join(ROOT, d)


def asset(*parts):
    path = os.path.join(assets_dir(), *parts)
    if not os.path.isfile(path):
        raise Failure(f"missing asset {path}\nhint: run `make assets` (scripts/fetch-assets.sh) first")
    return path


def load_image(name):
    with Image.open(asset("images", name)) as im:
        im.load()
        return im.copy()


def save_npy(path, a):
    # Explicit little-endian float32 and C order: the header, and so the file's bytes, never depend on the
    # array's history.
    np.save(path, np.ascontiguousarray(a, dtype="<f4"), allow_pickle=False)


def save_png(path, im):
    # No text chunks and a fixed compression level: the bytes depend only on the pixels and Pillow's zlib.
    im.save(path, format="PNG", optimize=False, compress_level=6)


def image_tensor(im, mean, std):
    """8-bit image (L or RGB) → [1,3,H,W] float32: pixel/255, then (v - mean)/std per channel."""
    a = np.asarray(im.convert("RGB"), dtype=np.float32).transpose(2, 0, 1) / np.float32(255.0)
    return ((a - mean[:, None, None]) / std[:, None, None])[None].astype(np.float32)


def letterbox(im, height, width, mean, std):
    """PP-OCR's rec/cls preprocessing, which is also the spec's resize = "letterbox": aspect kept, image at the
    top-left, the rest 0 after normalisation."""
    s = min(height / im.height, width / im.width)
    h = min(height, max(1, round(im.height * s)))
    w = min(width, max(1, round(im.width * s)))
    t = image_tensor(im.resize((w, h), Image.BILINEAR), mean, std)
    out = np.zeros((1, 3, height, width), np.float32)
    out[:, :, :h, :w] = t
    return out


# --- text lines of page.png -------------------------------------------------------------------------------------

def ink_map(im):
    """Dark-on-light ink, robust to page.png's uneven lighting: a pixel is ink when it is clearly darker than the
    brightest pixel around it (the local paper colour)."""
    a = np.asarray(im, dtype=np.int16)
    paper = np.asarray(im.filter(ImageFilter.MaxFilter(15)), dtype=np.int16)
    return (paper - a) > 40


def text_lines(im):
    """Finds the text lines of a gray page with a horizontal projection profile.

    Returns [(top, bottom, core_top, core_bottom)]: the core is where the row profile is dense (the x-height
    band), the line runs from the valley above to the valley below, clipped to 0.6 core heights either side so
    that a rule or a far-away line does not join it. page.png is a photo of a slightly curved page, so valleys
    between lines never reach zero: they are taken at the profile's minimum between two cores.
    """
    ink = ink_map(im)
    profile = np.convolve(ink.sum(axis=1).astype(np.float64), np.ones(3) / 3, mode="same")
    dense = profile > 0.2 * profile.max()
    cores, y = [], 0
    while y < len(dense):
        if not dense[y]:
            y += 1
            continue
        y0 = y
        while y < len(dense) and dense[y]:
            y += 1
        if y - y0 >= 5:  # thinner dense bands are horizontal rules, not text
            cores.append((y0, y))
    lines = []
    for i, (c0, c1) in enumerate(cores):
        if i == 0:
            top = c0
            while top > 0 and profile[top - 1] > 2:
                top -= 1
        else:
            p1 = cores[i - 1][1]
            top = p1 + int(np.argmin(profile[p1:c0]))
        if i == len(cores) - 1:
            bottom = c1
            while bottom < len(profile) and profile[bottom] > 2:
                bottom += 1
        else:
            n0 = cores[i + 1][0]
            bottom = c1 + int(np.argmin(profile[c1:n0]))
        margin = int(0.6 * (c1 - c0))
        lines.append((max(top, c0 - margin), min(bottom, c1 + margin), c0, c1))
    return lines, ink


def line_pieces(ink, line, max_aspect):
    """Cuts one line into pieces at most max_aspect × its height wide, so that each fills its tensor as far as
    it can: the cut goes into the rightmost word space (a run of empty columns at least a quarter of the
    x-height wide) in the allowed width, else into its widest gap. Returns [(x0, x1)]."""
    top, bottom, c0, c1 = line
    cols = ink[c0:c1].sum(axis=0)
    inked = np.nonzero(cols)[0]
    if len(inked) == 0:
        return []
    start, end = int(inked[0]), int(inked[-1]) + 1
    cap = int(max_aspect * (bottom - top)) - 4  # 2 px of paper kept on each side
    word_space = max(3, round(0.25 * (c1 - c0)))
    pieces = []
    while start < end:
        if end - start <= cap:
            pieces.append((start, end))
            break
        lo, hi = start + cap // 3, start + cap
        runs, x = [], lo
        while x <= hi:
            if cols[x] == 0:
                x0 = x
                while x <= hi and cols[x] == 0:
                    x += 1
                runs.append((x0, x))
            x += 1
        spaces = [r for r in runs if r[1] - r[0] >= word_space]
        if spaces:
            cut = spaces[-1]
        elif runs:
            cut = max(runs, key=lambda r: r[1] - r[0])
        else:  # letters touch all the way: cut at the least inked column
            x = lo + int(np.argmin(cols[lo:hi + 1]))
            cut = (x, x + 1)
        pieces.append((start, cut[0]))
        nxt = np.nonzero(cols[cut[1]:end])[0]
        start = cut[1] + int(nxt[0]) if len(nxt) else end
    return pieces


def crop_piece(im, line, piece):
    top, bottom, _, _ = line
    x0, x1 = piece
    return im.crop((max(0, x0 - 2), top, min(im.width, x1 + 2), bottom))


# page.png's lines, top to bottom: 0 the title, 1-5 the paragraph, 6 the code line. Eval reads lines the
# calibration never saw (the title and two paragraph lines), so calib and eval share no text at all.
REC_EVAL_LINES = (0, 2, 4)
REC_CALIB_LINES = (1, 3, 5, 6)
# A second, blurrier copy of each calibration piece: downscaled to this share of its pixels before the resize
# to height 48, as text photographed from further away. It doubles the calibration set without new text.
REC_LOWRES = 0.6


def page_lines():
    page = load_image("page.png").convert("L")
    lines, ink = text_lines(page)
    if len(lines) != 7:
        raise Failure(f"expected 7 text lines in page.png, found {len(lines)}: {lines} "
                      "(has the scikit-image wheel changed?)")
    return page, lines, ink


# --- det ---------------------------------------------------------------------------------------------------------

def det_crops():
    """(calib32, eval): lists of (file stem, image name, box). page.png is 384×191, so square crops of 112-190
    px are upscaled to 320 (text lines 25-50 px high, as in a phone photo of a page). Eval uses a crop size that
    no calibration crop has, so no eval tensor equals a calibration tensor. text.png (handwritten formulas on a
    slanted sheet) holds real strokes but no print: PP-OCRv4 det finds no text in it at any scale, so its crops
    are calibration negatives only; an eval tensor without text would make mask_iou meaningless."""
    groups = [
        ("page.png", 112, (0, 68, 136, 204, 272), (0, 60)),
        ("page.png", 128, (0, 85, 171, 256), (0, 63)),
        ("page.png", 160, (0, 75, 149, 224), (0, 31)),
        ("page.png", 190, (0, 97, 194), (0,)),
        ("text.png", 172, (0, 138, 276), (0,)),
    ]
    calib = [(f"{img[:-4]}_s{s}_x{x}_y{y}", img, (x, y, x + s, y + s))
             for img, s, xs, ys in groups for y in ys for x in xs]
    evals = [(f"page_s144_x{x}_y{y}", "page.png", (x, y, x + 144, y + 144))
             for y in (0, 47) for x in (0, 80, 160, 240)]
    return calib, evals


def det_tensor(img, box):
    return image_tensor(img.crop(box).resize((320, 320), Image.BILINEAR), DET_MEAN, DET_STD)


def make_det(out, name, checks):
    calib32, evals = det_crops()
    # det's 16 are every other one of det32's 32: the same mix of scales, and a text.png negative, in both.
    calib = calib32 if name == "det32" else calib32[::2]
    images = {n: load_image(n).convert("L") for n in ("page.png", "text.png")}
    files = {}
    for part, crops in (("calib", calib), ("eval", evals)):
        for i, (stem, img, box) in enumerate(crops):
            t = det_tensor(images[img], box)
            ink = ink_map(images[img].crop(box)).mean()
            if ink < 0.03:
                raise Failure(f"det crop {stem} of {img} holds almost no ink ({ink:.3f}); move the crop")
            files[f"{part}/{i:03d}_{stem}.npy"] = t
    coverage = checks.det_coverage([files[k] for k in sorted(files) if k.startswith("eval/")])
    spec = f"""\
# PP-OCRv4 text detector (DBNet). Written by scripts/make_bundles.py; sealed by `precisiond bundle seal`.
# Tensors: square crops of scikit-image's page.png (and, for calibration only, text.png) resized to 320×320.
[precision]
default = "int8"
mode = "search"

[calibration]
method = "entropy"
samples = {len(calib)}

[budget]
cosine = 0.99
mask_iou = {{ min = 0.95, threshold = 0.3 }}

[inputs.x]
shape = [1, 3, 320, 320]
layout = "NCHW"
channels = "RGB"
scale = {SCALE}
mean = [0.485, 0.456, 0.406]
std = [0.229, 0.224, 0.225]
resize = "stretch"
"""
    write_bundle(out, name, "det.onnx", spec, files)
    return (f"{len(calib)} calib, {len(evals)} eval tensors 1x3x320x320; FP32 text mask (p > 0.3) covers "
            f"{min(coverage):.0%}-{max(coverage):.0%} of each eval tensor")


# --- rec ---------------------------------------------------------------------------------------------------------

REC_MEAN = np.full(3, 0.5, np.float32)
REC_STD = np.full(3, 0.5, np.float32)


def make_rec(out, name, checks):
    page, lines, ink = page_lines()
    files = {}
    n_calib = n_eval = 0
    for li, line in enumerate(lines):
        # 320/48: a piece resized to height 48 fits the tensor's width without being squeezed.
        for pi, piece in enumerate(line_pieces(ink, line, 320 / 48)):
            crop = crop_piece(page, line, piece)
            stem = f"page_line{li}_piece{pi}"
            if li in REC_EVAL_LINES:
                files[f"eval/{n_eval:03d}_{stem}.npy"] = letterbox(crop, 48, 320, REC_MEAN, REC_STD)
                n_eval += 1
            elif li in REC_CALIB_LINES:
                files[f"calib/{n_calib:03d}_{stem}.npy"] = letterbox(crop, 48, 320, REC_MEAN, REC_STD)
                n_calib += 1
                small = crop.resize((max(1, round(crop.width * REC_LOWRES)), max(1, round(crop.height * REC_LOWRES))),
                                    Image.BILINEAR)
                files[f"calib/{n_calib:03d}_{stem}_lowres.npy"] = letterbox(small, 48, 320, REC_MEAN, REC_STD)
                n_calib += 1
            else:
                raise Failure(f"page.png line {li} is neither in REC_EVAL_LINES nor in REC_CALIB_LINES")
    if n_eval < 8 or n_calib < 16:
        raise Failure(f"rec: only {n_calib} calib and {n_eval} eval pieces (need 16 and 8)")
    texts = checks.rec_decode([files[k] for k in sorted(files) if k.startswith("eval/")])
    spec = f"""\
# PP-OCRv4 text recogniser. Written by scripts/make_bundles.py; sealed by `precisiond bundle seal`.
# Tensors: pieces of scikit-image's page.png text lines, height 48, padded right to 320 (PP-OCR's padding).
# Eval and calib come from different lines; FP32 reads the eval pieces correctly.
[precision]
default = "int8"
mode = "search"

[calibration]
method = "entropy"
samples = {n_calib}

[budget]
argmax_agreement = 0.995

[inputs.x]
shape = [1, 3, 48, 320]
layout = "NCHW"
channels = "RGB"
scale = {SCALE}
mean = [0.5, 0.5, 0.5]
std = [0.5, 0.5, 0.5]
resize = "letterbox"
"""
    write_bundle(out, name, "rec.onnx", spec, files)
    summary = f"{n_calib} calib, {n_eval} eval tensors 1x3x48x320; FP32 reads the eval pieces as:"
    return summary + "".join(f"\n    eval {i}: {t!r}" for i, t in enumerate(texts))


# --- cls ---------------------------------------------------------------------------------------------------------

# Photos without text, as horizontal strips (crop box in the source image). The classifier only ever sees
# text crops in PP-OCR, but a fleet's calibration data is rarely that clean, and the odd aspect ratios
# exercise the letterbox padding.
CLS_PHOTOS_CALIB = (
    ("astronaut.png", (96, 40, 416, 140)),
    ("rocket.jpg", (40, 240, 600, 380)),
    ("chelsea.png", (60, 60, 420, 170)),
    ("camera.png", (0, 60, 512, 200)),
    ("motorcycle_left.png", (20, 150, 720, 380)),
    ("coins.png", (0, 100, 384, 200)),
)
# Eval strips where FP32 leans clearly to one class (p >= 0.9): with 8 eval inputs one argmax flip is 12.5 %,
# so a coin-toss input would make argmax_agreement measure noise rather than quantization damage.
CLS_PHOTOS_EVAL = (
    ("coffee.png", (0, 25, 600, 175)),
    ("china.jpg", (0, 133, 640, 293)),
)


def make_cls(out, name, checks):
    page, lines, ink = page_lines()
    pieces = {"calib": [], "eval": []}
    for li, line in enumerate(lines):
        part = "eval" if li in REC_EVAL_LINES else "calib"
        for pi, piece in enumerate(line_pieces(ink, line, 192 / 48)):
            pieces[part].append((f"page_line{li}_piece{pi}", crop_piece(page, line, piece)))
    files = {}
    # calib: 4 upright and 4 upside-down text PNGs (PP-OCR's two classes), 6 photo PNGs, 2 text .npy.
    # eval:  3 upright and 2 upside-down text PNGs, 2 photo PNGs, 1 text .npy.
    for part, roles, photos in (("calib", ["png"] * 4 + ["rot"] * 4 + ["npy", "npy_rot"], CLS_PHOTOS_CALIB),
                                ("eval", ["png"] * 3 + ["rot"] * 2 + ["npy"], CLS_PHOTOS_EVAL)):
        items = pieces[part]
        # Candidates spread over all lines first (not one line's pieces), then the rest in page order.
        spread = list(dict.fromkeys(np.linspace(0, len(items) - 1, len(roles)).round().astype(int).tolist()))
        order = iter(spread + [i for i in range(len(items)) if i not in spread])
        k = 0
        for role in roles:
            for i in order:
                stem, crop = items[i]
                if role.endswith("rot"):
                    stem, crop = stem + "_rot180", crop.rotate(180)
                # Same reason as CLS_PHOTOS_EVAL: an eval input FP32 is unsure about (a piece that caught too
                # much of the neighbouring lines) is skipped.
                if part == "eval" and not checks.cls_decisive(letterbox(crop, 48, 192, REC_MEAN, REC_STD)):
                    continue
                break
            else:
                raise Failure(f"cls: not enough text pieces on page.png for the {part} set")
            if role.startswith("npy"):
                files[f"{part}/{k:03d}_{stem}.npy"] = letterbox(crop, 48, 192, REC_MEAN, REC_STD)
            else:
                # Gray PNG at the photo's own resolution: the recipe's gray→RGB and upscaling paths run on it.
                files[f"{part}/{k:03d}_{stem}.png"] = crop
            k += 1
        for img, box in photos:
            strip = load_image(img).convert("RGB").crop(box)
            # Stored at most 96 px high: the recipe still downscales it, and the bundle stays small.
            if strip.height > 96:
                strip = strip.resize((round(strip.width * 96 / strip.height), 96), Image.BILINEAR)
            files[f"{part}/{k:03d}_{img.rsplit('.', 1)[0]}.png"] = strip
            k += 1
    n_calib = sum(1 for f in files if f.startswith("calib/"))
    n_eval = len(files) - n_calib
    if (n_calib, n_eval) != (16, 8):
        raise Failure(f"cls: made {n_calib} calib and {n_eval} eval inputs, expected 16 and 8")
    spec = f"""\
# PP-OCR mobile v2.0 text-direction classifier (0° / 180°). Written by scripts/make_bundles.py; sealed by
# `precisiond bundle seal`. Inputs: PNG text crops of page.png (upright and rotated 180°), photo strips
# without text, and a few ready-made .npy tensors; PNGs become tensors by [inputs.x] below.
[precision]
default = "int8"
mode = "search"

[calibration]
method = "entropy"
samples = {n_calib}

[budget]
cosine = 0.995
argmax_agreement = 0.99

[inputs.x]
shape = [1, 3, 48, 192]
layout = "NCHW"
channels = "RGB"
scale = {SCALE}
mean = [0.5, 0.5, 0.5]
std = [0.5, 0.5, 0.5]
resize = "letterbox"
"""
    write_bundle(out, name, "cls.onnx", spec, files)
    n_png = sum(f.endswith(".png") for f in files)
    return f"{n_calib} calib, {n_eval} eval inputs for 1x3x48x192 ({n_png} of them PNG, the rest .npy)"


# --- digits ------------------------------------------------------------------------------------------------------

def make_digits(out, name, checks):
    train, test = asset("data", "digits_train_x.npy"), asset("data", "digits_test_x.npy")
    shapes = []
    for path, want_n in ((train, None), (test, None)):
        a = np.load(path, allow_pickle=False)
        if a.ndim != 4 or a.shape[1:] != (1, 8, 8) or a.dtype != np.float32:
            raise Failure(f"{path}: expected float32 [K,1,8,8], found {a.dtype} {list(a.shape)}")
        shapes.append(a.shape[0])
    files = {"calib/digits_train_x.npy": train, "eval/digits_test_x.npy": test}
    spec = f"""\
# The project's digits CNN (scripts/train_digits.py). Written by scripts/make_bundles.py; sealed by
# `precisiond bundle seal`. calib/ and eval/ each hold one [K,1,8,8] array: K samples for the [1,1,8,8] input.
# eval is the trainer's held-out split, never seen in training or calibration.
[precision]
default = "int8"
mode = "search"

[calibration]
method = "entropy"
samples = {shapes[0]}

[budget]
argmax_agreement = 0.99
cosine = 0.99

[inputs.x]
shape = [1, 1, 8, 8]
"""
    write_bundle(out, name, "digits_cnn.onnx", spec, files)
    return f"{shapes[0]} calib, {shapes[1]} eval samples 1x1x8x8 (one .npy each)"


# --- FP32 checks -------------------------------------------------------------------------------------------------

class Checks:
    """ONNX Runtime on the FP32 models, one thread (the machine is shared, and the results must not depend on
    the core count)."""

    def __init__(self):
        self._sessions = {}

    def _session(self, model):
        if model not in self._sessions:
            import onnxruntime as ort
            so = ort.SessionOptions()
            so.intra_op_num_threads = 1
            so.inter_op_num_threads = 1
            so.log_severity_level = 3
            self._sessions[model] = ort.InferenceSession(asset("models", model), so,
                                                         providers=["CPUExecutionProvider"])
        return self._sessions[model]

    def det_coverage(self, tensors):
        s = self._session("det.onnx")
        cov = [float((s.run(None, {"x": t})[0] > 0.3).mean()) for t in tensors]
        if min(cov) < 0.02:
            raise Failure(f"det: FP32 finds (almost) no text in an eval tensor (mask coverage {cov})")
        return cov

    def cls_decisive(self, tensor):
        p = self._session("cls.onnx").run(None, {"x": tensor})[0][0]
        return float(abs(p[0] - p[1])) >= 0.5

    def rec_decode(self, tensors):
        import onnx
        meta = {p.key: p.value for p in onnx.load(asset("models", "rec.onnx")).metadata_props}
        if "character" not in meta:
            raise Failure("rec.onnx has no 'character' metadata; cannot decode")
        # PaddleOCR's CTC table: index 0 is the blank, then the dictionary, then a space (use_space_char).
        chars = [""] + meta["character"].split("\n") + [" "]
        s = self._session("rec.onnx")
        texts = []
        for t in tensors:
            probs = s.run(None, {"x": t})[0][0]
            if probs.shape[-1] != len(chars):
                raise Failure(f"rec output has {probs.shape[-1]} classes, the dictionary {len(chars)}")
            prev, out = 0, []
            for i in probs.argmax(axis=-1):
                if i != prev and i != 0:
                    out.append(chars[i])
                prev = i
            texts.append("".join(out))
        if sum(len(t.strip()) >= 3 for t in texts) < len(texts):
            raise Failure(f"rec: FP32 reads (almost) nothing in some eval pieces: {texts}")
        return texts


# --- writing -----------------------------------------------------------------------------------------------------

def write_bundle(out, name, model, spec, files):
    """Builds the bundle in a sibling temp folder and swaps it in, so a reader never sees half a bundle and
    no stale file of an earlier run survives."""
    final = os.path.join(out, name)
    tmp = os.path.join(out, f".{name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.join(tmp, "calib"))
    os.makedirs(os.path.join(tmp, "eval"))
    shutil.copyfile(asset("models", model), os.path.join(tmp, "model.onnx"))
    with open(os.path.join(tmp, "precision.toml"), "w", encoding="utf-8", newline="\n") as f:
        f.write(spec)
    for rel, data in sorted(files.items()):
        path = os.path.join(tmp, rel)
        if isinstance(data, str):
            shutil.copyfile(data, path)
        elif isinstance(data, np.ndarray):
            save_npy(path, data)
        else:
            save_png(path, data)
    old = os.path.join(out, f".{name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if os.path.exists(final):
        os.rename(final, old)
    os.rename(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


MAKERS = {"det": make_det, "det32": make_det, "rec": make_rec, "cls": make_cls, "digits": make_digits}


def main(argv):
    ap = argparse.ArgumentParser(prog="make_bundles.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--only", choices=NAMES, action="append",
                    help="make only this bundle (repeatable); default: all of " + ", ".join(NAMES))
    args = ap.parse_args(argv)
    names = args.only or list(NAMES)
    checks = Checks()
    try:
        os.makedirs(args.out_dir, exist_ok=True)
        for name in names:
            summary = MAKERS[name](args.out_dir, name, checks)
            print(f"{name}: {os.path.join(args.out_dir, name)}: {summary}")
    except Failure as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # stdout closed early (`| head`): nothing left to report to
        return 1
    except OSError as e:
        print(f"error: cannot write the bundles under {args.out_dir}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
