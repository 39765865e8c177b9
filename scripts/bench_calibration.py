#!/usr/bin/env python3
"""The ONNX Runtime baseline of the calibration benchmark (scripts/bench.sh runs it next to `precisiond calibrate`):

    .venv/bin/python scripts/bench_calibration.py BUNDLE [--keep-model FILE]

Quantizes BUNDLE/model.onnx with onnxruntime.quantization.quantize_static over BUNDLE/calib/*.npy: entropy
calibration, QDQ format, per-channel weights, symmetric QInt8 activations and weights, the settings that match
what precisiond computes for TensorRT. Prints one JSON line:

    {"tool": "onnxruntime", "wall_s": ..., "peak_rss_mb": ..., "samples": ..., ...}

wall_s and peak_rss_mb measure one child process that loads the model, reads the calibration files, runs
quantize_static and writes the quantized model: the same work `precisiond calibrate` does, process start-up
included. peak_rss_mb is the child's ru_maxrss / 1024 (MiB, as /usr/bin/time's %M / 1024); cpu_s its user + system
CPU time, which a busy shared machine inflates less than wall time. quantize_s is the quantize_static call alone,
as the child measured it.

Not timed: a pre-processing step done here first. Paddle exports (det, rec, cls) are opset 11/12 and keep every
weight in a Constant node. quantize_static neither raises the opset (per-channel Q/DQ needs the `axis` of opset 13)
nor treats a Constant's output as a weight: run on the raw file it quantizes every weight per tensor, with scales
calibrated like an activation's, and writes an opset 12 model, which is not the method being compared. So the
model is converted to opset 13 (onnx.version_converter) and passed through ORT's own quant_pre_process, whose
optimizer turns the Constants into initializers; ORT's documentation asks for that step anyway. Symbolic shape
inference is skipped (it needs sympy, which the venv does not pin; ONNX shape inference covers these CNNs).

A .npy of shape [K, ...] where the model input has batch 1 counts as K samples, as the bundle loader reads it.
"""

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

EXIT_INPUT, EXIT_ENV = 1, 2


class Failure(Exception):
    def __init__(self, message, code=EXIT_INPUT):
        super().__init__(message)
        self.code = code


def calib_files(bundle):
    calib = os.path.join(bundle, "calib")
    if not os.path.isdir(calib):
        raise Failure(f"{bundle} has no calib/ folder")
    others = sorted(f for f in os.listdir(calib) if not f.endswith(".npy") and not f.startswith("."))
    if others:
        # Images would need the spec's recipe, which only precisiond implements; a partial comparison would
        # quietly calibrate the two tools on different data.
        raise Failure(f"{calib} holds {others[0]} (and {len(others) - 1} more) that is not .npy; this baseline "
                      "reads .npy tensors only")
    files = sorted(glob.glob(os.path.join(calib, "*.npy")))
    if not files:
        raise Failure(f"{calib} holds no .npy files")
    return files


def samples_of(files, shape):
    """Splits the calibration files into per-sample arrays matching the model input's rank and batch 1."""
    import numpy as np

    for path in files:
        a = np.load(path, allow_pickle=False)
        if a.dtype != np.float32:
            raise Failure(f"{path}: dtype {a.dtype}, the model input is float32")
        if len(shape) == a.ndim and a.shape[0] != 1 and shape[0] in (1, None):
            for k in range(a.shape[0]):
                yield a[k:k + 1]
        else:
            yield a


def input_shape(model):
    inp = model.graph.input
    inits = {t.name for t in model.graph.initializer}
    real = [i for i in inp if i.name not in inits]
    if len(real) != 1:
        raise Failure(f"the model has {len(real)} inputs; this baseline feeds exactly one")
    dims = real[0].type.tensor_type.shape.dim
    return real[0].name, [d.dim_value if d.HasField("dim_value") else None for d in dims]


# --- the timed child -------------------------------------------------------------------------------------------

def child(model_path, bundle, out_path, input_name):
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    _, shape = input_shape(onnx.load(model_path, load_external_data=False))
    files = calib_files(bundle)

    class Reader(CalibrationDataReader):
        # Reads each file when ORT asks for it, as a streaming reader over a device's bundle would.
        def __init__(self):
            self.it = samples_of(files, shape)

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {input_name: x}

    t0 = time.perf_counter()
    quantize_static(model_path, out_path, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.Entropy,
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
    print(json.dumps({"quantize_s": round(time.perf_counter() - t0, 3)}))


# --- the parent ------------------------------------------------------------------------------------------------

def preprocess(src, dst):
    import onnx
    from onnx import version_converter
    from onnxruntime.quantization.shape_inference import quant_pre_process

    model = onnx.load(src)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    steps = []
    if opset is not None and opset < 13:
        model = version_converter.convert_version(model, 13)
        steps.append(f"opset {opset} -> 13")
    upgraded = dst + ".opset13.onnx"
    onnx.save(model, upgraded)
    quant_pre_process(upgraded, dst, skip_symbolic_shape=True)
    os.remove(upgraded)
    steps.append("quant_pre_process (skip_symbolic_shape)")
    return steps


def measure(argv, log_path):
    """Runs argv as a child; returns (wall seconds, peak RSS in KiB, user + system CPU seconds, stdout). os.wait4
    reports that one child's own rusage, so nothing else this process ran (the pre-processing) leaks into it."""
    with open(log_path, "wb") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log)
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        with open(log_path, "rb") as log:
            tail = log.read().decode(errors="replace").splitlines()[-15:]
        raise Failure("quantize_static failed (exit %d); last lines of its log:\n%s"
                      % (proc.returncode, "\n".join("  | " + l for l in tail)), EXIT_ENV)
    return wall, usage.ru_maxrss, usage.ru_utime + usage.ru_stime, out


def main(argv):
    if argv[:1] == ["--child"]:
        child(*argv[1:5])
        return 0
    ap = argparse.ArgumentParser(prog="bench_calibration.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("bundle", help="a bundle folder with model.onnx and calib/*.npy")
    ap.add_argument("--keep-model", metavar="FILE", help="also keep the quantized model here")
    args = ap.parse_args(argv)

    try:
        try:
            import numpy  # noqa: F401
            import onnx
            import onnxruntime
        except ImportError as e:
            raise Failure(f"{e.name} is not installed in {sys.executable}; run `make assets` and use .venv/bin/python",
                          EXIT_ENV)
        model = os.path.join(args.bundle, "model.onnx")
        if not os.path.isfile(model):
            raise Failure(f"{args.bundle} has no model.onnx")
        files = calib_files(args.bundle)
        name, shape = input_shape(onnx.load(model, load_external_data=False))
        n_samples = sum(1 for _ in samples_of(files, shape))

        with tempfile.TemporaryDirectory(prefix="bench-calibration.") as tmp:
            pre = os.path.join(tmp, "model.pre.onnx")
            t0 = time.perf_counter()
            steps = preprocess(model, pre)
            pre_s = time.perf_counter() - t0
            out = os.path.join(tmp, "model.qdq.onnx")
            wall, rss_kib, cpu_s, child_out = measure(
                [sys.executable, os.path.abspath(__file__), "--child", pre, args.bundle, out,
                 name], os.path.join(tmp, "child.log"))
            if not os.path.isfile(out):
                raise Failure("quantize_static returned but wrote no model", EXIT_ENV)
            if args.keep_model:
                shutil.copyfile(out, args.keep_model)
        quantize_s = json.loads(child_out.decode().strip().splitlines()[-1])["quantize_s"]
    except Failure as e:
        print(f"error: {e}", file=sys.stderr)
        return e.code
    print(json.dumps({
        "tool": "onnxruntime",
        "wall_s": round(wall, 3),
        "peak_rss_mb": round(rss_kib / 1024, 1),
        "cpu_s": round(cpu_s, 3),
        "samples": n_samples,
        "quantize_s": quantize_s,
        "untimed_preprocess_s": round(pre_s, 3),
        "preprocess": steps,
        "onnxruntime": onnxruntime.__version__,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
