#!/usr/bin/env python3
"""Small old-opset models, one per operator whose meaning or signature changed between opset 7 and 21, for the
opset-upgrade tests (src/model/opset.rs). The reference `onnx` helpers build them and ONNX Runtime defines what they
compute, so the upgrade is judged by tools that share no code with it.

  make_opset_cases.py write DIR     writes DIR/NAME.onnx, DIR/NAME.K.npz (inputs) and DIR/manifest.json
  make_opset_cases.py compare DIR   for every DIR/NAME@TARGET.onnx the test wrote: onnx's full check, its opset,
                                    and ONNX Runtime's outputs against the original's on the same inputs

`compare` prints one JSON object, {"results": [...]}, and exits 0; a usage or I/O error exits 1. The same bytes
come out on every run (seeded inputs, no timestamps).
"""
import json
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

F = TensorProto.FLOAT


def vi(name, shape, elem=F):
    return helper.make_tensor_value_info(name, elem, shape)


def init(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def model(opset, nodes, inputs, outputs, inits=()):
    graph = helper.make_graph(nodes, "case", inputs, outputs, list(inits))
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="make_opset_cases")
    # The lowest IR that declares the opset, but 4 at least so that initializers need not be graph inputs.
    m.ir_version = max(4, {9: 4, 10: 5, 11: 6, 12: 7, 13: 7, 16: 8, 17: 8}.get(opset, 4))
    return m


def rand(rng, *shape, scale=3.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def cases(rng):
    """(name, model, [input dicts], targets). Each case changes at its highest target at least."""
    out = []

    def add(name, m, feeds, targets=(13, 18, 21)):
        out.append((name, m, feeds, [t for t in targets if t > m.opset_import[0].version]))

    x3 = [rand(rng, 2, 3, 4)]
    for name, op, opset, axis in [
        ("softmax_axis1_rank3", "Softmax", 11, 1),
        ("logsoftmax_axis0", "LogSoftmax", 12, 0),
        ("hardmax_axis1", "Hardmax", 12, 1),
        ("softmax_axis_minus2", "Softmax", 11, -2),
    ]:
        node = helper.make_node(op, ["x"], ["y"], axis=axis)
        add(name, model(opset, [node], [vi("x", [2, 3, 4])], [vi("y", [2, 3, 4])]), [{"x": x3[0]}])
    # Reshape to a shape known only at run time hides the rank; the default axis (1 before opset 13) applies.
    add("softmax_default_unknown_rank", model(11, [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Reshape", ["x", "shape"], ["r"]),
        helper.make_node("Softmax", ["r"], ["y"]),
    ], [vi("x", [2, 3, 4])], [vi("y", [2, 3, 4])]), [{"x": x3[0]}])
    add("softmax_default_rank2",
        model(12, [helper.make_node("Softmax", ["x"], ["y"])], [vi("x", [2, 5])], [vi("y", [2, 5])]),
        [{"x": rand(rng, 2, 5)}])

    x = rand(rng, 2, 4, 3)
    add("split_sizes", model(12, [helper.make_node("Split", ["x"], ["a", "b"], axis=1, split=[1, 3])],
                             [vi("x", [2, 4, 3])], [vi("a", [2, 1, 3]), vi("b", [2, 3, 3])]), [{"x": x}])
    add("split_equal", model(11, [helper.make_node("Split", ["x"], ["a", "b"], axis=1)],
                             [vi("x", [2, 4, 3])], [vi("a", [2, 2, 3]), vi("b", [2, 2, 3])]), [{"x": x}])

    add("squeeze_unsqueeze", model(11, [
        helper.make_node("Squeeze", ["x"], ["s"], axes=[0, 2]),
        helper.make_node("Squeeze", ["x"], ["all"]),
        helper.make_node("Unsqueeze", ["s"], ["u"], axes=[-1, 0]),
    ], [vi("x", [1, 3, 1, 2])], [vi("s", [3, 2]), vi("all", [3, 2]), vi("u", [1, 3, 2, 1])]), [{"x": rand(rng, 1, 3, 1, 2)}])

    add("reductions", model(12, [
        helper.make_node("ReduceSum", ["x"], ["sum"], axes=[1], keepdims=0),
        helper.make_node("ReduceMean", ["x"], ["mean"], axes=[-1]),
        helper.make_node("ReduceMax", ["x"], ["max"], axes=[0, 2], keepdims=0),
        helper.make_node("ReduceL2", ["x"], ["l2"]),
        helper.make_node("ReduceSum", ["x"], ["all"], keepdims=0),
    ], [vi("x", [2, 3, 4])], [vi("sum", [2, 4]), vi("mean", [2, 3, 1]), vi("max", [3]), vi("l2", [1, 1, 1]), vi("all", [])]), [{"x": x3[0]}])

    add("clip6", model(10, [
        helper.make_node("Mul", ["x", "k"], ["m"]),
        helper.make_node("Clip", ["m"], ["relu6"], min=0.0, max=6.0),
        helper.make_node("Clip", ["m"], ["upper"], max=1.5),
        helper.make_node("Clip", ["m"], ["open"]),
    ], [vi("x", [2, 8])], [vi(n, [2, 8]) for n in ["relu6", "upper", "open"]], [init("k", np.float32(3.0))]),
        [{"x": rand(rng, 2, 8)}])

    add("pad2", model(10, [
        helper.make_node("Pad", ["x"], ["c"], pads=[0, 1, 1, 2], value=1.5),
        helper.make_node("Pad", ["x"], ["z"], pads=[1, 0, 0, 1]),
        helper.make_node("Pad", ["x"], ["r"], pads=[0, 2, 0, 1], mode="reflect"),
    ], [vi("x", [2, 3])], [vi("c", [3, 6]), vi("z", [3, 4]), vi("r", [2, 6])]), [{"x": rand(rng, 2, 3)}])

    add("slice1_topk1", model(9, [
        helper.make_node("Slice", ["x"], ["s"], starts=[1, 0], ends=[1000, -1], axes=[0, 1]),
        helper.make_node("Slice", ["x"], ["t"], starts=[0], ends=[2]),
        helper.make_node("TopK", ["x"], ["v", "i"], k=3),
    ], [vi("x", [3, 6])], [vi("s", [2, 5]), vi("t", [2, 6]), vi("v", [3, 3]), vi("i", [3, 3], TensorProto.INT64)]),
        [{"x": rand(rng, 3, 6)}])

    for opset in (9, 11):
        add(f"dropout_{opset}", model(opset, [
            helper.make_node("Dropout", ["x"], ["y", "mask"], ratio=0.3),
            helper.make_node("Relu", ["y"], ["out"]),
        ], [vi("x", [2, 5])], [vi("out", [2, 5])]), [{"x": rand(rng, 2, 5)}])

    x4 = rand(rng, 1, 2, 4, 6)
    add("resize10_linear", model(10, [helper.make_node("Resize", ["x", "s"], ["y"], mode="linear")],
                                 [vi("x", [1, 2, 4, 6])], [vi("y", [1, 2, 8, 9])],
                                 [init("s", np.array([1, 1, 2, 1.5], np.float32))]), [{"x": x4}])
    add("resize10_nearest", model(10, [helper.make_node("Resize", ["x", "s"], ["y"], mode="nearest")],
                                  [vi("x", [1, 2, 4, 6])], [vi("y", [1, 2, 8, 18])],
                                  [init("s", np.array([1, 1, 2, 3], np.float32))]), [{"x": x4}])
    roi = init("roi", np.zeros([0], np.float32))
    scales = init("s", np.array([1, 1, 0.6, 1.7], np.float32))
    add("resize_tf_half_pixel_for_nn", model(12, [
        helper.make_node("Resize", ["x", "roi", "s"], ["floor"], mode="nearest",
                         coordinate_transformation_mode="tf_half_pixel_for_nn", nearest_mode="floor"),
        helper.make_node("Resize", ["x", "roi", "s"], ["default"], mode="nearest",
                         coordinate_transformation_mode="tf_half_pixel_for_nn"),
    ], [vi("x", [1, 2, 4, 6])], [vi("floor", [1, 2, 2, 10]), vi("default", [1, 2, 2, 10])], [roi, scales]), [{"x": x4}])

    add("scatter", model(10, [helper.make_node("Scatter", ["x", "i", "u"], ["y"], axis=1)],
                         [vi("x", [2, 4]), vi("u", [2, 2])], [vi("y", [2, 4])],
                         [init("i", np.array([[1, 3], [0, 2]], np.int64))]),
        [{"x": rand(rng, 2, 4), "u": rand(rng, 2, 2)}])

    add("batchnorm_spatial", model(8, [
        helper.make_node("BatchNormalization", ["x", "sc", "b", "m", "v"], ["y"], spatial=1, epsilon=1e-3),
    ], [vi("x", [2, 3, 2, 2])], [vi("y", [2, 3, 2, 2])], [
        init("sc", np.array([1.0, 0.5, 2.0], np.float32)), init("b", np.array([0.1, -0.2, 0.0], np.float32)),
        init("m", np.array([0.3, 0.0, -1.0], np.float32)), init("v", np.array([1.0, 4.0, 0.25], np.float32)),
    ]), [{"x": rand(rng, 2, 3, 2, 2)}])

    add("upsample7", model(8, [helper.make_node("Upsample", ["x"], ["y"], scales=[1.0, 1.0, 2.0, 3.0])],
                           [vi("x", [1, 2, 2, 3])], [vi("y", [1, 2, 4, 9])]), [{"x": rand(rng, 1, 2, 2, 3)}], targets=(9,))

    add("roialign10", model(10, [helper.make_node("RoiAlign", ["x", "rois", "bi"], ["y"], output_height=2,
                                                  output_width=2, sampling_ratio=2)],
                            [vi("x", [1, 2, 6, 6])], [vi("y", [2, 2, 2, 2])],
                            [init("rois", np.array([[0.5, 1.0, 4.0, 5.5], [1.2, 0.3, 3.3, 2.8]], np.float32)),
                             init("bi", np.array([0, 0], np.int64))]),
        [{"x": rand(rng, 1, 2, 6, 6)}], targets=(16, 21))

    add("gridsample16", model(16, [
        helper.make_node("GridSample", ["x", "g"], ["bilinear"], align_corners=0),
        helper.make_node("GridSample", ["x", "g"], ["bicubic"], mode="bicubic"),
    ], [vi("x", [1, 1, 4, 5]), vi("g", [1, 3, 3, 2])], [vi("bilinear", [1, 1, 3, 3]), vi("bicubic", [1, 1, 3, 3])]),
        [{"x": rand(rng, 1, 1, 4, 5), "g": rng.uniform(-1, 1, (1, 3, 3, 2)).astype(np.float32)}], targets=(20, 21))

    add("dft17", model(17, [helper.make_node("DFT", ["x"], ["y"])], [vi("x", [1, 8, 1])], [vi("y", [1, 8, 2])]),
        [{"x": rand(rng, 1, 8, 1)}], targets=(20, 21))

    # Subgraphs: an If whose branches hold a Softmax on a non-last axis, Squeeze and ReduceSum with attributes.
    then_branch = helper.make_graph([
        helper.make_node("Squeeze", ["x"], ["t_sq"], axes=[0]),
        helper.make_node("Softmax", ["t_sq"], ["t_out"], axis=0),
    ], "then", [], [vi("t_out", [3, 4])])
    else_branch = helper.make_graph([
        helper.make_node("ReduceSum", ["x"], ["e_out"], axes=[0], keepdims=0),
    ], "else", [], [vi("e_out", [3, 4])])
    add("if_branches", model(12, [helper.make_node("If", ["c"], ["y"], then_branch=then_branch,
                                                   else_branch=else_branch)],
                             [vi("c", [], TensorProto.BOOL), vi("x", [1, 3, 4])], [vi("y", [3, 4])]),
        [{"c": np.array(c), "x": rand(rng, 1, 3, 4)} for c in (True, False)])

    # A Loop body whose carried value goes through Unsqueeze, a Softmax on a non-last axis and Squeeze.
    body = helper.make_graph([
        helper.make_node("Unsqueeze", ["v_in"], ["u"], axes=[0]),
        helper.make_node("Softmax", ["u"], ["s"], axis=1),
        helper.make_node("Squeeze", ["s"], ["sq"], axes=[0]),
        helper.make_node("Add", ["sq", "v_in"], ["v_out"]),
        helper.make_node("Identity", ["cond_in"], ["cond_out"]),
    ], "body", [vi("i", [], TensorProto.INT64), vi("cond_in", [], TensorProto.BOOL), vi("v_in", [2, 3])],
        [vi("cond_out", [], TensorProto.BOOL), vi("v_out", [2, 3])])
    add("loop_body", model(11, [helper.make_node("Loop", ["n", "", "v"], ["y"], body=body)],
                           [vi("v", [2, 3])], [vi("y", [2, 3])], [init("n", np.array(3, np.int64))]),
        [{"v": rand(rng, 2, 3)}])
    return out


def write(directory):
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20240613)
    manifest = []
    for name, m, feeds, targets in cases(rng):
        onnx.checker.check_model(m, full_check=True)
        onnx.save(m, str(directory / f"{name}.onnx"))
        inputs = []
        for k, feed in enumerate(feeds):
            path = directory / f"{name}.{k}.npz"
            with open(path, "wb") as f:
                np.savez(f, **feed)
            inputs.append(path.name)
        manifest.append({"name": name, "opset": m.opset_import[0].version, "targets": targets, "inputs": inputs})
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return {"cases": len(manifest)}


def run(path, feeds):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    # The operators as written, not what the optimizer makes of them.
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, feeds)))


def compare_one(directory, case, target):
    path = directory / f"{case['name']}@{target}.onnx"
    result = {"case": case["name"], "target": target, "ok": False, "error": None, "max_diff": None}
    if not path.exists():
        result["error"] = "not written"
        return result
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as e:
        result["error"] = f"check: {type(e).__name__}: {e}"
        return result
    opset = next(o.version for o in onnx.load(str(path)).opset_import if o.domain in ("", "ai.onnx"))
    if opset != target:
        result["error"] = f"declares opset {opset}"
        return result
    worst = 0.0
    for inputs in case["inputs"]:
        with np.load(directory / inputs, allow_pickle=False) as z:
            feeds = {k: z[k] for k in z.files}
        try:
            before = run(directory / f"{case['name']}.onnx", feeds)
            after = run(path, feeds)
        except Exception as e:
            result["error"] = f"onnxruntime: {type(e).__name__}: {e}"
            return result
        if sorted(before) != sorted(after):
            result["error"] = f"outputs {sorted(before)} became {sorted(after)}"
            return result
        for name, a in before.items():
            b = after[name]
            if a.shape != b.shape or a.dtype != b.dtype:
                result["error"] = f"{name}: {a.dtype}{list(a.shape)} became {b.dtype}{list(b.shape)}"
                return result
            if a.size:
                worst = max(worst, float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))))
    result["ok"] = True
    result["max_diff"] = worst
    return result


def compare(directory):
    manifest = json.loads((directory / "manifest.json").read_text())
    return {"results": [compare_one(directory, case, t) for case in manifest for t in case["targets"]]}


def main(argv):
    if len(argv) != 2 or argv[0] not in ("write", "compare"):
        print(__doc__, file=sys.stderr)
        return 1
    directory = Path(argv[1])
    try:
        result = write(directory) if argv[0] == "write" else compare(directory)
    except (OSError, ValueError) as e:
        print(f"make_opset_cases.py {argv[0]}: {e}", file=sys.stderr)
        return 1
    json.dump(result, sys.stdout, allow_nan=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
