#!/usr/bin/env python3
"""Reference image preprocessing for precisiond's [inputs.NAME] recipe, written independently in numpy.

    python scripts/preprocess_ref.py IMAGE RECIPE.json OUT.npy

RECIPE.json holds the keys of the spec's [inputs.NAME] table (shape, layout, channels, scale, mean, std, resize);
OUT.npy receives the float32 tensor. The algorithm is the one documented in src/inputs/image.rs; this file
re-derives it from that text, not from the Rust code, and tests/it/inputs.rs checks that both agree.

Pillow is used only to decode 8-bit images. Pillow reduces 16-bit colour PNGs to 8 bits, so PNGs with 16-bit
samples are decoded here (zlib + PNG row filters), keeping all 16 bits as the Rust side does.
"""

import json
import math
import struct
import sys
import zlib

import numpy as np

try:
    from PIL import Image
except ImportError:
    sys.exit("preprocess_ref: Pillow is missing from this venv (scripts/requirements-test.txt pins it; run `make assets`)")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LAYOUTS = ("NCHW", "NHWC")
CHANNELS = {"RGB": 3, "BGR": 3, "GRAY": 1}
RESIZES = ("stretch", "letterbox")


def fail(message):
    sys.exit(f"preprocess_ref: {message}")


def load_recipe(path):
    with open(path, encoding="utf-8") as f:
        raw = json.load(f)
    known = {"shape", "layout", "channels", "scale", "mean", "std", "resize"}
    unknown = set(raw) - known
    if unknown:
        fail(f"{path}: unknown keys {sorted(unknown)}")
    if "shape" not in raw:
        fail(f"{path}: 'shape' is required")
    recipe = {
        "shape": [int(d) for d in raw["shape"]],
        "layout": raw.get("layout", "NCHW"),
        "channels": raw.get("channels", "RGB"),
        "scale": float(raw.get("scale", 1.0 / 255.0)),
        "mean": [float(v) for v in raw.get("mean", [0.0])],
        "std": [float(v) for v in raw.get("std", [1.0])],
        "resize": raw.get("resize", "stretch"),
    }
    if recipe["layout"] not in LAYOUTS or recipe["channels"] not in CHANNELS or recipe["resize"] not in RESIZES:
        fail(f"{path}: bad layout, channels or resize value")
    shape = recipe["shape"]
    if len(shape) != 4 or shape[0] != 1:
        fail(f"{path}: shape must be [1, ., ., .], got {shape}")
    c, h, w = (shape[1], shape[2], shape[3]) if recipe["layout"] == "NCHW" else (shape[3], shape[1], shape[2])
    if c != CHANNELS[recipe["channels"]] or h < 1 or w < 1:
        fail(f"{path}: shape {shape} does not fit {recipe['layout']} {recipe['channels']}")
    for key in ("mean", "std"):
        if len(recipe[key]) not in (1, c):
            fail(f"{path}: {key} needs 1 or {c} values")
    if any(s == 0.0 for s in recipe["std"]):
        fail(f"{path}: std must be non-zero")
    recipe["chw"] = (c, h, w)
    return recipe


def png_bit_depth(path):
    with open(path, "rb") as f:
        head = f.read(33)
    if len(head) < 33 or head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR":
        return None
    return head[24]


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def decode_png16(path):
    """Samples of a non-interlaced 16-bit PNG as uint16, shape (h, w, samples per pixel)."""
    with open(path, "rb") as f:
        data = f.read()
    pos, idat, ihdr = 8, [], None
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    width, height, depth, color_type, _, _, interlace = ihdr
    if interlace != 0:
        fail(f"{path}: interlaced 16-bit PNGs are not covered by this reference")
    samples = {0: 1, 2: 3, 4: 2, 6: 4}[color_type]
    bpp = 2 * samples
    stride = width * bpp
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), dtype=np.uint8)
    rows = raw.reshape(height, stride + 1)
    out = np.zeros((height, stride), dtype=np.int64)
    prior = np.zeros(stride, dtype=np.int64)
    for y in range(height):
        kind, line = rows[y, 0], rows[y, 1:].astype(np.int64)
        if kind == 0:
            recon = line
        elif kind == 1:  # Sub: running sum per byte position within a pixel, modulo 256
            recon = np.cumsum(line.reshape(width, bpp), axis=0).reshape(stride) % 256
        elif kind == 2:
            recon = (line + prior) % 256
        elif kind in (3, 4):
            recon = np.zeros(stride, dtype=np.int64)
            left = np.zeros(bpp, dtype=np.int64)
            up_left = np.zeros(bpp, dtype=np.int64)
            for x in range(width):
                s = slice(x * bpp, (x + 1) * bpp)
                up = prior[s]
                pred = (left + up) // 2 if kind == 3 else paeth(left, up, up_left)
                recon[s] = (line[s] + pred) % 256
                left, up_left = recon[s], up
        else:
            fail(f"{path}: bad PNG filter type {kind}")
        out[y] = recon
        prior = recon
    pixels = out.astype(np.uint8).reshape(height, width, samples, 2)
    return pixels[..., 0].astype(np.uint16) * 256 + pixels[..., 1]


def decode(path):
    """Pixels as float64 on the 0-255 scale, shape (h, w, 1 or 3), alpha dropped."""
    if png_bit_depth(path) == 16:
        samples = decode_png16(path)
        keep = 1 if samples.shape[2] <= 2 else 3
        return samples[..., :keep].astype(np.float64) / 257.0
    with Image.open(path) as im:
        im.load()
        if im.mode in ("P", "PA", "1"):
            im = im.convert("RGBA" if im.mode != "1" else "L")
        if im.mode not in ("L", "LA", "RGB", "RGBA"):
            fail(f"{path}: Pillow mode {im.mode} is not covered by this reference")
        arr = np.asarray(im).astype(np.float64)
    if arr.ndim == 2:
        arr = arr[..., None]
    keep = 1 if arr.shape[2] <= 2 else 3
    return arr[..., :keep]


def to_channels(img, channels):
    if channels == "GRAY":
        if img.shape[2] == 1:
            return img
        r, g, b = img[..., 0], img[..., 1], img[..., 2]
        return ((299.0 * r + 587.0 * g + 114.0 * b) / 1000.0)[..., None]
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    return img[..., ::-1] if channels == "BGR" else img


def axis_weights(n_in, n_out):
    """Half-pixel source coordinates, clamped to the border, as (low index, high index, fraction)."""
    s = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    s = np.clip(s, 0.0, n_in - 1)
    lo = np.floor(s).astype(np.int64)
    hi = np.minimum(lo + 1, n_in - 1)
    return lo, hi, s - lo


def resize(img, out_h, out_w):
    y0, y1, fy = axis_weights(img.shape[0], out_h)
    x0, x1, fx = axis_weights(img.shape[1], out_w)
    fy = fy[:, None, None]
    rows = img[y0] * (1.0 - fy) + img[y1] * fy
    fx = fx[None, :, None]
    return rows[:, x0] * (1.0 - fx) + rows[:, x1] * fx


def round_half_up(x):
    """Halves away from zero for x >= 0; Python's round() would send halves to the even neighbour."""
    whole = math.floor(x)
    return whole + (1 if x - whole >= 0.5 else 0)


def preprocess(img, recipe):
    c, h, w = recipe["chw"]
    img = to_channels(img, recipe["channels"])
    if recipe["resize"] == "stretch":
        rh, rw = h, w
    else:
        s = min(h / img.shape[0], w / img.shape[1])
        rh = min(max(round_half_up(img.shape[0] * s), 1), h)
        rw = min(max(round_half_up(img.shape[1] * s), 1), w)
    resized = resize(img, rh, rw)
    mean = np.broadcast_to(np.asarray(recipe["mean"], dtype=np.float64), (c,))
    std = np.broadcast_to(np.asarray(recipe["std"], dtype=np.float64), (c,))
    hwc = np.zeros((h, w, c), dtype=np.float64)  # letterbox padding: 0 after normalisation, top-left placement
    hwc[:rh, :rw] = (resized * recipe["scale"] - mean) / std
    out = hwc.transpose(2, 0, 1) if recipe["layout"] == "NCHW" else hwc
    return np.ascontiguousarray(out[None].astype(np.float32))


def main(argv):
    if len(argv) != 4:
        sys.exit(__doc__)
    _, image_path, recipe_path, out_path = argv
    recipe = load_recipe(recipe_path)
    np.save(out_path, preprocess(decode(image_path), recipe))


if __name__ == "__main__":
    main(sys.argv)
