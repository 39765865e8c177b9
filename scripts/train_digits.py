#!/usr/bin/env python3
"""Train the project's own labelled test model: a small CNN on scikit-learn's digits.

The PP-OCR models have no labels we can score against, so INT8/FP16 decisions on them can only be judged
by agreement with FP32. This model gives the tests a real top-1 accuracy to protect.

Usage: train_digits.py DIGITS_CSV_GZ ASSETS_DIR

Writes, under ASSETS_DIR:
  models/digits_cnn.onnx   x f32 [N,1,8,8] (pixel/16) -> logits f32 [N,10], opset 13, weights as initializers
  models/digits_cnn.json   {"heldout_accuracy", "n_test", ...}
  data/digits_train_x.npy  f32 [256,1,8,8]  calibration inputs (training split only)
  data/digits_test_x.npy   f32 [N,1,8,8]    held-out inputs, never seen by training or calibration
  data/digits_test_y.npy   i64 [N]          held-out labels

Determinism: the same bytes on every run on the same machine with the pinned numpy (seeded PCG64, fixed
epochs and batch order, OpenBLAS forced to one thread below). Across machines it is NOT guaranteed bit-for-bit:
OpenBLAS picks its matmul kernel from the CPU it finds, and a different summation order changes low-order bits
that training then carries into the weights. Tests must read digits_cnn.json rather than hard-code a hash or
an accuracy.
"""
import os

# Must precede the numpy import: OpenBLAS reads these once, and a multi-threaded GEMM may split work
# differently from run to run on a loaded machine.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import gzip
import hashlib
import json
import sys
import time

import numpy as np

SEED = 20261126
EPOCHS = 15
BATCH = 32
LR = 3e-3
TEST_FRACTION = 0.2
N_CALIB = 256
C1, C2, HIDDEN = 8, 16, 32
OPSET = 13
# IR 8 rather than the onnx package's newest: opset 13 needs only IR 7, and older parsers (TensorRT 8.5 on
# JetPack 5, older ORT builds) reject IR versions newer than they know even when nothing newer is used.
IR_VERSION = 8

F32 = np.float32


def load_digits(path):
    with gzip.open(path, "rt") as f:
        raw = np.loadtxt(f, delimiter=",", dtype=np.float64)
    if raw.ndim != 2 or raw.shape[1] != 65:
        raise ValueError(f"{path}: expected rows of 64 pixels + label, got shape {raw.shape}")
    x = (raw[:, :64] / 16.0).astype(F32).reshape(-1, 1, 8, 8)
    y = raw[:, 64].astype(np.int64)
    return x, y


# --- numpy model -------------------------------------------------------------------------------------------
# Convolutions are im2col + one matmul: the column order (c, kh, kw) matches W.reshape(out, -1), so the
# trained tensors go into ONNX as they are.

def im2col3x3(x):
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    cols = np.empty((n, h, w, c, 3, 3), dtype=x.dtype)
    for i in range(3):
        for j in range(3):
            cols[..., i, j] = xp[:, :, i:i + h, j:j + w].transpose(0, 2, 3, 1)
    return cols.reshape(n * h * w, c * 9)


def col2im3x3(dcols, shape):
    n, c, h, w = shape
    d = dcols.reshape(n, h, w, c, 3, 3)
    dxp = np.zeros((n, c, h + 2, w + 2), dtype=dcols.dtype)
    for i in range(3):
        for j in range(3):
            dxp[:, :, i:i + h, j:j + w] += d[..., i, j].transpose(0, 3, 1, 2)
    return dxp[:, :, 1:-1, 1:-1]


def conv_fwd(x, w, b):
    n, _, h, wd = x.shape
    cols = im2col3x3(x)
    out = cols @ w.reshape(w.shape[0], -1).T + b
    return out.reshape(n, h, wd, -1).transpose(0, 3, 1, 2), cols


def conv_bwd(dout, cols, w, xshape):
    o = w.shape[0]
    d2 = dout.transpose(0, 2, 3, 1).reshape(-1, o)
    dw = (d2.T @ cols).reshape(w.shape)
    db = d2.sum(axis=0)
    dx = col2im3x3(d2 @ w.reshape(o, -1), xshape)
    return dx, dw, db


def pool_fwd(x):
    n, c, h, w = x.shape
    win = x.reshape(n, c, h // 2, 2, w // 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, h // 2, w // 2, 4)
    # argmax (first occurrence) rather than an equality mask, so ties do not receive the gradient twice.
    idx = win.argmax(axis=-1)
    return np.take_along_axis(win, idx[..., None], axis=-1)[..., 0], idx


def pool_bwd(dout, idx, xshape):
    n, c, h, w = xshape
    dwin = np.zeros((n, c, h // 2, w // 2, 4), dtype=dout.dtype)
    np.put_along_axis(dwin, idx[..., None], dout[..., None], axis=-1)
    return dwin.reshape(n, c, h // 2, w // 2, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(xshape)


def init_params(rng):
    def he(shape, fan_in):
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(F32)

    return {
        "conv1.weight": he((C1, 1, 3, 3), 9), "conv1.bias": np.zeros(C1, F32),
        "conv2.weight": he((C2, C1, 3, 3), C1 * 9), "conv2.bias": np.zeros(C2, F32),
        "fc1.weight": he((HIDDEN, C2 * 16), C2 * 16), "fc1.bias": np.zeros(HIDDEN, F32),
        "fc2.weight": he((10, HIDDEN), HIDDEN), "fc2.bias": np.zeros(10, F32),
    }


def forward(p, x, keep=False):
    c1, cols1 = conv_fwd(x, p["conv1.weight"], p["conv1.bias"])
    r1 = np.maximum(c1, 0)
    p1, pidx = pool_fwd(r1)
    c2, cols2 = conv_fwd(p1, p["conv2.weight"], p["conv2.bias"])
    r2 = np.maximum(c2, 0)
    f = r2.reshape(len(x), -1)
    h = f @ p["fc1.weight"].T + p["fc1.bias"]
    r3 = np.maximum(h, 0)
    logits = r3 @ p["fc2.weight"].T + p["fc2.bias"]
    if keep:
        return logits, (x, c1, cols1, r1, p1, pidx, c2, cols2, f, h, r3)
    return logits


def backward(p, cache, dlogits):
    x, c1, cols1, r1, p1, pidx, c2, cols2, f, h, r3 = cache
    g = {}
    g["fc2.weight"] = dlogits.T @ r3
    g["fc2.bias"] = dlogits.sum(0)
    dh = (dlogits @ p["fc2.weight"]) * (h > 0)
    g["fc1.weight"] = dh.T @ f
    g["fc1.bias"] = dh.sum(0)
    dc2 = (dh @ p["fc1.weight"]).reshape(c2.shape) * (c2 > 0)
    dp1, g["conv2.weight"], g["conv2.bias"] = conv_bwd(dc2, cols2, p["conv2.weight"], p1.shape)
    dc1 = pool_bwd(dp1, pidx, r1.shape) * (c1 > 0)
    _, g["conv1.weight"], g["conv1.bias"] = conv_bwd(dc1, cols1, p["conv1.weight"], x.shape)
    return g


def train(p, x, y, rng):
    # Adam: plain SGD needs far more epochs on this tiny net to clear 95 %.
    b1, b2, eps = 0.9, 0.999, 1e-8
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v = {k: np.zeros_like(v) for k, v in p.items()}
    t = 0
    for epoch in range(EPOCHS):
        order = rng.permutation(len(x))
        total = 0.0
        for s in range(0, len(x), BATCH):
            bi = order[s:s + BATCH]
            logits, cache = forward(p, x[bi], keep=True)
            z = logits - logits.max(axis=1, keepdims=True)
            e = np.exp(z)
            prob = e / e.sum(axis=1, keepdims=True)
            total += float(-np.log(prob[np.arange(len(bi)), y[bi]] + 1e-12).sum())
            dlogits = prob
            dlogits[np.arange(len(bi)), y[bi]] -= 1
            dlogits = (dlogits / len(bi)).astype(F32)
            g = backward(p, cache, dlogits)
            t += 1
            lr_t = float(LR * np.sqrt(1 - b2 ** t) / (1 - b1 ** t))
            for k in p:
                m[k] = b1 * m[k] + (1 - b1) * g[k]
                v[k] = b2 * v[k] + (1 - b2) * g[k] * g[k]
                p[k] = (p[k] - lr_t * m[k] / (np.sqrt(v[k]) + eps)).astype(F32)
        if epoch % 5 == 4 or epoch == EPOCHS - 1:
            print(f"  epoch {epoch + 1:3d}/{EPOCHS}  train loss {total / len(x):.4f}", flush=True)
    return p


# --- ONNX export -----------------------------------------------------------------------------------------

def export(p, path):
    from onnx import TensorProto, checker, helper, numpy_helper

    inits = [numpy_helper.from_array(np.ascontiguousarray(v, dtype=F32), name=k) for k, v in p.items()]
    conv = dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1])
    nodes = [
        helper.make_node("Conv", ["x", "conv1.weight", "conv1.bias"], ["conv1_out"], name="conv1", **conv),
        helper.make_node("Relu", ["conv1_out"], ["relu1_out"], name="relu1"),
        helper.make_node("MaxPool", ["relu1_out"], ["pool1_out"], name="pool1",
                         kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["pool1_out", "conv2.weight", "conv2.bias"], ["conv2_out"], name="conv2", **conv),
        helper.make_node("Relu", ["conv2_out"], ["relu2_out"], name="relu2"),
        helper.make_node("Flatten", ["relu2_out"], ["flat"], name="flatten", axis=1),
        helper.make_node("Gemm", ["flat", "fc1.weight", "fc1.bias"], ["fc1_out"], name="fc1", transB=1),
        helper.make_node("Relu", ["fc1_out"], ["relu3_out"], name="relu3"),
        helper.make_node("Gemm", ["relu3_out", "fc2.weight", "fc2.bias"], ["logits"], name="fc2", transB=1),
    ]
    graph = helper.make_graph(
        nodes, "digits_cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        initializer=inits,
        doc_string="sklearn digits; input is pixel/16 in [0,1]",
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="precisiond-train-digits", producer_version="1")
    model.ir_version = IR_VERSION
    checker.check_model(model, full_check=True)
    data = model.SerializeToString(deterministic=True)
    atomic_write(path, data)
    return data


def atomic_write(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def save_npy(path, arr):
    tmp = path + ".tmp.npy"
    np.save(tmp, arr)
    os.replace(tmp, path)


def main(argv):
    if len(argv) != 3:
        print(__doc__.split("\n\n")[2], file=sys.stderr)
        return 2
    csv, out = argv[1], argv[2]
    os.makedirs(os.path.join(out, "models"), exist_ok=True)
    os.makedirs(os.path.join(out, "data"), exist_ok=True)

    t0 = time.perf_counter()
    x, y = load_digits(csv)
    rng = np.random.default_rng(SEED)
    perm = rng.permutation(len(x))
    n_test = int(round(len(x) * TEST_FRACTION))
    tr, te = perm[:-n_test], perm[-n_test:]
    xtr, ytr, xte, yte = x[tr], y[tr], x[te], y[te]

    p = train(init_params(rng), xtr, ytr, rng)
    np_logits = forward(p, xte)
    np_acc = float((np_logits.argmax(1) == yte).mean())

    onnx_path = os.path.join(out, "models", "digits_cnn.onnx")
    data = export(p, onnx_path)

    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
    ort_logits = sess.run(["logits"], {"x": xte})[0]
    ort_acc = float((ort_logits.argmax(1) == yte).mean())
    max_diff = float(np.abs(ort_logits - np_logits).max())
    print(f"  held-out accuracy: numpy {np_acc:.4f}, onnxruntime {ort_acc:.4f} "
          f"(n={n_test}, max |logit diff| {max_diff:.2e})")
    # The two forwards are independent implementations; disagreement means the export is wrong.
    if max_diff > 1e-3 or np_acc != ort_acc:
        print("error: numpy and onnxruntime forwards disagree; the ONNX export does not match the trained net",
              file=sys.stderr)
        return 1

    save_npy(os.path.join(out, "data", "digits_train_x.npy"), np.ascontiguousarray(xtr[:N_CALIB]))
    save_npy(os.path.join(out, "data", "digits_test_x.npy"), np.ascontiguousarray(xte))
    save_npy(os.path.join(out, "data", "digits_test_y.npy"), np.ascontiguousarray(yte))
    meta = {
        "heldout_accuracy": ort_acc,
        "n_test": int(n_test),
        "numpy_accuracy": np_acc,
        "max_abs_logit_diff_numpy_vs_ort": max_diff,
        "n_train": int(len(tr)),
        "n_calib": N_CALIB,
        "input": "x float32 [N,1,8,8] = pixel/16",
        "seed": SEED,
        "epochs": EPOCHS,
        "onnx_sha256": hashlib.sha256(data).hexdigest(),
    }
    atomic_write(os.path.join(out, "models", "digits_cnn.json"),
                 (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode())
    print(f"  trained in {time.perf_counter() - t0:.1f}s; wrote {onnx_path} ({len(data)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
