#!/usr/bin/env python3
"""Independent judge for the Rust tests: the reference onnx package and ONNX Runtime inspect what precisiond
writes, so a bug shared by the project's own reader and writer cannot pass its own tests.

Every subcommand prints exactly one JSON object on stdout and exits 0; on a usage or I/O error it prints a
message on stderr and exits 1. A model that fails a check is a result ({"ok": false, ...}), not an error.

  judge.py equal A.onnx B.onnx
  judge.py check M.onnx
  judge.py count M.onnx
  judge.py run M.onnx IN.npz OUT.npz [--opt none|basic|extended|all]
  judge.py accuracy M.onnx X.npy Y.npy [--opt none|basic|extended|all]
  judge.py versions
  judge.py prometheus FILE|-          (Prometheus text exposition, parsed by prometheus_client's own parser)
"""
import argparse
import json
import os
import sys


class JudgeError(Exception):
    pass


def _need_file(path):
    if not os.path.isfile(path):
        raise JudgeError(f"no such file: {path}")


def _load(path):
    import onnx

    _need_file(path)
    try:
        # External data stays unloaded: equality and counting are about the ModelProto the project wrote,
        # and a missing or huge sidecar file must not turn into a different answer.
        return onnx.load(path, load_external_data=False)
    except Exception as e:  # a DecodeError names no file; say which one
        raise JudgeError(f"cannot parse {path} as an ONNX model: {e}") from e


# --- equal ---------------------------------------------------------------------------------------------------

def _label(msg):
    """A readable tag for a repeated element, so a path says graph.node[12](conv1) rather than only [12]."""
    name = getattr(msg, "name", "") if "name" in msg.DESCRIPTOR.fields_by_name else ""
    return f"({name})" if isinstance(name, str) and name else ""


def _is_repeated(fd):
    # protobuf 7 dropped FieldDescriptor.label in favour of is_repeated; older releases have only label.
    rep = getattr(fd, "is_repeated", None)
    return rep if rep is not None else fd.label == fd.LABEL_REPEATED


def _first_difference(a, b, path):
    from google.protobuf.descriptor import FieldDescriptor

    for fd in sorted(a.DESCRIPTOR.fields, key=lambda f: f.number):
        here = f"{path}.{fd.name}" if path else fd.name
        is_msg = fd.type == FieldDescriptor.TYPE_MESSAGE
        if _is_repeated(fd):
            va, vb = getattr(a, fd.name), getattr(b, fd.name)
            for i in range(min(len(va), len(vb))):
                if is_msg:
                    if va[i] != vb[i]:
                        return _first_difference(va[i], vb[i], f"{here}[{i}]{_label(va[i])}") \
                            or f"{here}[{i}]{_label(va[i])}"
                elif va[i] != vb[i]:
                    return f"{here}[{i}]"
            if len(va) != len(vb):
                return f"{here} (length {len(va)} vs {len(vb)})"
            continue
        # proto2 presence: a field set to its default value is still different from an unset one.
        has_a, has_b = a.HasField(fd.name), b.HasField(fd.name)
        if has_a != has_b:
            return f"{here} (set in {'first' if has_a else 'second'} only)"
        if not has_a:
            continue
        va, vb = getattr(a, fd.name), getattr(b, fd.name)
        if is_msg:
            if va != vb:
                return _first_difference(va, vb, here) or here
        elif va != vb:
            return here
    return None


def cmd_equal(args):
    a, b = _load(args.a), _load(args.b)
    with open(args.a, "rb") as fa, open(args.b, "rb") as fb:
        bytes_equal = fa.read() == fb.read()
    equal = a == b
    diff = None
    if not equal:
        # Unknown fields (fields of a newer schema) take part in == but have no descriptor to walk.
        diff = _first_difference(a, b, "") or "(unknown fields or field order; no known field differs)"
    return {"equal": equal, "bytes_equal": bytes_equal, "first_difference": diff}


# --- check ---------------------------------------------------------------------------------------------------

def cmd_check(args):
    import onnx

    _need_file(args.model)
    try:
        # The path form lets the checker resolve external data next to the model and handle > 2 GB files.
        onnx.checker.check_model(args.model, full_check=True)
    except Exception as e:
        return {"ok": False, "error": f"{type(e).__name__}: {e}"}
    return {"ok": True, "error": None}


# --- count ---------------------------------------------------------------------------------------------------

def _value_infos(values):
    import onnx

    out = []
    for v in values:
        t = v.type
        entry = {"name": v.name, "shape": None, "elem_type": None, "elem_type_name": None}
        if t.HasField("tensor_type"):
            tt = t.tensor_type
            entry["elem_type"] = tt.elem_type
            entry["elem_type_name"] = onnx.TensorProto.DataType.Name(tt.elem_type)
            if tt.HasField("shape"):
                entry["shape"] = [d.dim_value if d.HasField("dim_value")
                                  else (d.dim_param if d.HasField("dim_param") else None)
                                  for d in tt.shape.dim]
        out.append(entry)
    return out


def _subgraph_nodes(nodes):
    n = 0
    for node in nodes:
        for attr in node.attribute:
            for g in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                n += len(g.node) + _subgraph_nodes(g.node)
    return n


def cmd_count(args):
    m = _load(args.model)
    g = m.graph
    ops = {}
    for node in g.node:
        # Non-default domains keep their prefix, so a contrib op (com.microsoft::QLinearAdd) cannot pass for
        # a standard one.
        key = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"
        ops[key] = ops.get(key, 0) + 1
    opset = next((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), None)
    return {
        "nodes": len(g.node),
        "ops": dict(sorted(ops.items())),
        "initializers": len(g.initializer),
        "inputs": _value_infos(g.input),
        "outputs": _value_infos(g.output),
        "opset": opset,
        "opsets": {(o.domain or "ai.onnx"): o.version for o in m.opset_import},
        "ir_version": m.ir_version,
        "unnamed_nodes": sum(1 for n in g.node if not n.name),
        "value_info": len(g.value_info),
        "subgraph_nodes": _subgraph_nodes(g.node),
    }


# --- run / accuracy ------------------------------------------------------------------------------------------

def _session(path, opt):
    import onnxruntime as ort

    _need_file(path)
    so = ort.SessionOptions()
    # One thread: results must not depend on how many cores the test machine has.
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    if opt is not None:
        so.graph_optimization_level = {
            "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[opt]
    try:
        return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise JudgeError(f"onnxruntime cannot load {path}: {e}") from e


def _run(sess, feeds, path):
    try:
        return sess.run(None, feeds)
    except Exception as e:
        raise JudgeError(f"onnxruntime failed running {path}: {e}") from e


def cmd_run(args):
    import numpy as np

    sess = _session(args.model, args.opt)
    _need_file(args.inputs)
    with np.load(args.inputs, allow_pickle=False) as z:
        feeds = {k: z[k] for k in z.files}
    names = [i.name for i in sess.get_inputs()]
    # Strict both ways: a misspelt array name must fail loudly instead of leaving an input at some default.
    extra = sorted(set(feeds) - set(names))
    missing = [n for n in names if n not in feeds]
    if extra or missing:
        raise JudgeError(f"{args.inputs} does not match the model inputs {names}: "
                         f"missing {missing}, unexpected {extra}")
    outs = _run(sess, feeds, args.model)
    out_names = [o.name for o in sess.get_outputs()]
    result = dict(zip(out_names, outs))
    # A file object, because np.savez appends ".npz" to a path that lacks it.
    with open(args.outputs, "wb") as f:
        np.savez(f, **result)
    return {"outputs": {k: list(v.shape) for k, v in result.items()},
            "dtypes": {k: str(v.dtype) for k, v in result.items()}}


def cmd_accuracy(args):
    import numpy as np

    sess = _session(args.model, args.opt)
    for p in (args.x, args.y):
        _need_file(p)
    x = np.load(args.x, allow_pickle=False)
    y = np.load(args.y, allow_pickle=False)
    inputs = sess.get_inputs()
    if len(inputs) != 1:
        raise JudgeError(f"accuracy needs a model with one input, {args.model} has {[i.name for i in inputs]}")
    if len(x) != len(y) or y.ndim != 1:
        raise JudgeError(f"X has {len(x)} rows but Y has shape {list(y.shape)}")
    logits = _run(sess, {inputs[0].name: x}, args.model)[0]
    if logits.ndim != 2 or logits.shape[0] != len(y):
        raise JudgeError(f"expected output [N,classes] with N={len(y)}, got {list(logits.shape)}")
    top1 = float((logits.argmax(axis=1) == y).mean()) if len(y) else 0.0
    return {"top1": top1, "n": int(len(y))}


def cmd_versions(_args):
    import numpy
    import onnx
    import onnxruntime

    return {"onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__, "numpy": numpy.__version__,
            "python": sys.version.split()[0]}


def _number(v):
    # JSON has no Inf/NaN; the exposition format does.
    return v if v == v and v not in (float("inf"), float("-inf")) else repr(v)


def cmd_prometheus(args):
    from prometheus_client.parser import text_string_to_metric_families

    if args.file == "-":
        text = sys.stdin.read()
    else:
        _need_file(args.file)
        with open(args.file, encoding="utf-8") as f:
            text = f.read()
    families = []
    for fam in text_string_to_metric_families(text):
        samples = [{"name": s.name, "labels": dict(s.labels), "value": _number(s.value)} for s in fam.samples]
        families.append({"name": fam.name, "type": fam.type, "help": fam.documentation, "samples": samples})
    return {"families": families}


def main(argv):
    ap = argparse.ArgumentParser(prog="judge.py", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("equal")
    p.add_argument("a")
    p.add_argument("b")
    p.set_defaults(fn=cmd_equal)
    for name, fn in (("check", cmd_check), ("count", cmd_count)):
        p = sub.add_parser(name)
        p.add_argument("model")
        p.set_defaults(fn=fn)
    opt = dict(choices=["none", "basic", "extended", "all"], default=None,
               help="ORT graph optimization level (default: ORT's own default, i.e. all)")
    p = sub.add_parser("run")
    p.add_argument("model")
    p.add_argument("inputs")
    p.add_argument("outputs")
    p.add_argument("--opt", **opt)
    p.set_defaults(fn=cmd_run)
    p = sub.add_parser("accuracy")
    p.add_argument("model")
    p.add_argument("x")
    p.add_argument("y")
    p.add_argument("--opt", **opt)
    p.set_defaults(fn=cmd_accuracy)
    p = sub.add_parser("versions")
    p.set_defaults(fn=cmd_versions)
    p = sub.add_parser("prometheus")
    p.add_argument("file", help="the exposition text, or - for stdin")
    p.set_defaults(fn=cmd_prometheus)

    try:
        args = ap.parse_args(argv)
    except SystemExit as e:
        # argparse exits 2 on bad usage; the tests' contract is 0 or 1.
        return 0 if e.code == 0 else 1
    try:
        result = args.fn(args)
    except JudgeError as e:
        print(f"judge.py {args.cmd}: {e}", file=sys.stderr)
        return 1
    except Exception as e:
        print(f"judge.py {args.cmd}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    json.dump(result, sys.stdout, allow_nan=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
