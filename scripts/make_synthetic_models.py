#!/usr/bin/env python3
"""Writes ONNX models that exercise every part of the schema precisiond decodes, for the round-trip tests.

The real test models (PP-OCR, digits_cnn) are IR 7-8 and use a small part of the schema. These models set the fields
that only newer IRs have, and set fields to their default value on purpose (`i: 0`, `f: 0.0`, `domain: ""`), because
those are what a proto3 or older schema loses on a round trip. They are not meant to run: they only have to decode.

Usage: make_synthetic_models.py OUT_DIR

The output is the same bytes on every run (no random data, no timestamps), so a failing test can be reproduced from
the files alone. Together the two models set every field of the schema the installed onnx package declares; the
script fails when they do not, which is how a schema update gets noticed.
"""

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import (
    AttributeProto,
    DeviceConfigurationProto,
    ModelProto,
    NodeDeviceConfigurationProto,
    StringStringEntryProto,
    TensorProto,
    TypeProto,
    helper,
)

CUSTOM = "com.precisiond.test"


def props(**kv: str) -> list:
    return [StringStringEntryProto(key=k, value=v) for k, v in kv.items()]


def with_props(message, **kv: str):
    message.metadata_props.extend(props(**kv))
    return message


def tensors(ir14: bool) -> list:
    """Initializers in every storage form: raw_data, each typed *_data field, external, and the packed sub-byte
    types."""
    out = [
        helper.make_tensor("w_f32", TensorProto.FLOAT, [2, 3], np.arange(6, dtype=np.float32) - 2.5, raw=True),
        helper.make_tensor("w_f32_typed", TensorProto.FLOAT, [3], [0.0, -0.0, 1.5]),
        helper.make_tensor("w_f16", TensorProto.FLOAT16, [4], np.array([0, 1, -2, 65504], dtype=np.float16)),
        helper.make_tensor("w_bf16", TensorProto.BFLOAT16, [2], [1.0, -3.0]),
        helper.make_tensor("w_f8", TensorProto.FLOAT8E4M3FN, [3], [0.5, -1.0, 448.0]),
        helper.make_tensor("w_i4", TensorProto.INT4, [5], [-8, -1, 0, 3, 7]),
        helper.make_tensor("w_i8", TensorProto.INT8, [3], [-128, 0, 127]),
        helper.make_tensor("w_i64", TensorProto.INT64, [3], [-(2**63), 0, 2**63 - 1]),
        helper.make_tensor("w_u64", TensorProto.UINT64, [2], [0, 2**64 - 1]),
        helper.make_tensor("w_f64", TensorProto.DOUBLE, [2], [3.141592653589793, -1e300]),
        helper.make_tensor("w_str", TensorProto.STRING, [3], ["", "ascii", "ünïcödé ✓"]),
        helper.make_tensor("w_bool", TensorProto.BOOL, [2], [True, False]),
        helper.make_tensor("w_scalar", TensorProto.FLOAT, [], [2.0]),
        helper.make_tensor("w_empty", TensorProto.FLOAT, [0, 4], []),
        # A length prefix longer than one byte.
        helper.make_tensor("w_big", TensorProto.UINT8, [300], bytes(range(256)) + bytes(44), raw=True),
    ]
    with_props(out[0], origin="synthetic", note="metadata on a tensor")
    out[0].doc_string = "tensor doc"

    # Explicit defaults: presence of an enum at 0 and of an empty raw_data.
    explicit = helper.make_tensor("w_explicit_defaults", TensorProto.UINT8, [0], b"", raw=True)
    explicit.data_location = TensorProto.DEFAULT
    out.append(explicit)

    segmented = helper.make_tensor("w_segment", TensorProto.INT32, [2], [-1, 2147483647])
    segmented.segment.begin = 0
    segmented.segment.end = 2
    out.append(segmented)

    external = TensorProto()
    external.name = "w_external"
    external.data_type = TensorProto.FLOAT
    external.dims.extend([4])
    external.data_location = TensorProto.EXTERNAL
    for key, value in [("location", "weights.bin"), ("offset", "0"), ("length", "16"), ("checksum", "none")]:
        entry = external.external_data.add()
        entry.key = key
        entry.value = value
    out.append(external)

    if ir14:
        out += [
            helper.make_tensor("w_f4", TensorProto.FLOAT4E2M1, [3], [0.5, -6.0, 1.0]),
            helper.make_tensor("w_f8e8m0", TensorProto.FLOAT8E8M0, [2], [1.0, 256.0]),
            helper.make_tensor("w_i2", TensorProto.INT2, [5], [-2, -1, 0, 1, 1]),
            helper.make_tensor("w_u2", TensorProto.UINT2, [4], np.array([0, 1, 2, 3], dtype=np.uint8), raw=True),
            helper.make_tensor("w_f6", TensorProto.FLOAT6E2M3, [4], bytes([0x01, 0x23, 0x45]), raw=True),
            helper.make_tensor("w_f6e3m2", TensorProto.FLOAT6E3M2, [1], bytes([0x3F]), raw=True),
        ]
        # A data type from the future: the schema declares data_type as int32, so it must survive.
        future = helper.make_tensor("w_future_type", TensorProto.UINT8, [2], bytes([1, 2]), raw=True)
        future.data_type = 99
        out.append(future)
    return out


def sparse_initializer():
    values = helper.make_tensor("sp_values", TensorProto.FLOAT, [2], [1.0, 2.0])
    indices = helper.make_tensor("sp_indices", TensorProto.INT64, [2], [1, 5])
    return helper.make_sparse_tensor(values, indices, [2, 3])


def value_types(ir14: bool) -> list:
    """Value infos of every TypeProto kind, including nested and shape-less ones."""
    dyn = helper.make_tensor_type_proto(TensorProto.FLOAT, ["batch", None, 0, 3])
    dyn.tensor_type.shape.dim[0].denotation = "DATA_BATCH"
    dyn.tensor_type.shape.dim[3].denotation = "DATA_CHANNEL"
    shapeless = helper.make_tensor_type_proto(TensorProto.FLOAT, None)
    scalar = helper.make_tensor_type_proto(TensorProto.INT64, [])
    seq = helper.make_sequence_type_proto(helper.make_tensor_type_proto(TensorProto.FLOAT, [2]))
    opt = helper.make_optional_type_proto(helper.make_sequence_type_proto(scalar))
    mapping = helper.make_map_type_proto(TensorProto.STRING, helper.make_tensor_type_proto(TensorProto.INT64, [1]))
    sparse = helper.make_sparse_tensor_type_proto(TensorProto.FLOAT, [2, "n"])
    denoted = helper.make_tensor_type_proto(TensorProto.UINT8, [1, 3, 8, 8])
    denoted.denotation = "IMAGE"
    infos = [
        helper.make_value_info("v_dyn", dyn, doc_string="value doc"),
        helper.make_value_info("v_shapeless", shapeless),
        helper.make_value_info("v_scalar", scalar),
        helper.make_value_info("v_seq", seq),
        helper.make_value_info("v_opt", opt),
        helper.make_value_info("v_map", mapping),
        helper.make_value_info("v_sparse", sparse),
        helper.make_value_info("v_denoted", denoted),
        helper.make_value_info("v_untyped", TypeProto()),
    ]
    with_props(infos[0], role="metadata on a value_info")
    if ir14:
        # Fields after `denotation` (6): opaque (7) and optional (9). Canonical order writes denotation first.
        opaque = TypeProto()
        opaque.opaque_type.domain = CUSTOM
        opaque.opaque_type.name = "Handle"
        opaque.denotation = "OPAQUE"
        opt_denoted = helper.make_optional_type_proto(helper.make_tensor_type_proto(TensorProto.FLOAT, [1]))
        opt_denoted.denotation = "MAYBE"
        sparse_denoted = helper.make_sparse_tensor_type_proto(TensorProto.FLOAT, [4])
        sparse_denoted.denotation = "SPARSE"
        empty_opaque = TypeProto()
        empty_opaque.opaque_type.SetInParent()
        infos += [
            helper.make_value_info("v_opaque", opaque),
            helper.make_value_info("v_opt_denoted", opt_denoted),
            helper.make_value_info("v_sparse_denoted", sparse_denoted),
            helper.make_value_info("v_empty_opaque", empty_opaque),
        ]
    return infos


def every_attribute_kind() -> list:
    small_graph = helper.make_graph(
        [helper.make_node("Identity", ["a"], ["b"])],
        "attr_graph",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("b", TensorProto.FLOAT, [1])],
    )
    attrs = [
        helper.make_attribute("a_int_zero", 0),
        helper.make_attribute("a_float_zero", 0.0),
        helper.make_attribute("a_int_neg", -(2**63)),
        helper.make_attribute("a_float_negzero", -0.0),
        helper.make_attribute("a_string_empty", b""),
        helper.make_attribute("a_string", "ünïcödé"),
        helper.make_attribute("a_tensor", helper.make_tensor("t", TensorProto.FLOAT, [1], [1.0])),
        helper.make_attribute("a_graph", small_graph),
        helper.make_attribute("a_sparse", sparse_initializer()),
        helper.make_attribute("a_type", helper.make_tensor_type_proto(TensorProto.FLOAT, [1])),
        helper.make_attribute("a_floats", [0.0, -1.5, 3.25]),
        helper.make_attribute("a_ints", [0, -1, 2**40]),
        helper.make_attribute("a_strings", [b"", b"x"]),
        helper.make_attribute("a_tensors", [helper.make_tensor("t2", TensorProto.INT64, [1], [0])]),
        helper.make_attribute("a_graphs", [small_graph, small_graph]),
        helper.make_attribute("a_sparses", [sparse_initializer()]),
        helper.make_attribute(
            "a_types", [helper.make_tensor_type_proto(TensorProto.INT8, [2]), TypeProto()]
        ),
        helper.make_attribute("a_ints_empty", [], attr_type=AttributeProto.INTS),
    ]
    attrs[0].doc_string = "attribute doc"
    return attrs


def if_node():
    def branch(name: str, value: float):
        const = helper.make_node("Constant", [], [name + "_out"], value_float=value)
        return helper.make_graph(
            [const], name, [], [helper.make_tensor_value_info(name + "_out", TensorProto.FLOAT, [])]
        )

    return helper.make_node(
        "If", ["cond"], ["if_out"], name="branch", then_branch=branch("then", 1.0), else_branch=branch("else", 0.0)
    )


def local_function():
    """A model-local function with the IR 10 fields: overload, attribute defaults, value_info, metadata, and a body
    attribute that refers to the caller's."""
    scale_ref = helper.make_attribute_ref("alpha", AttributeProto.FLOAT)
    scale_ref.ref_attr_name = "scale"
    body = [helper.make_node("LeakyRelu", ["x"], ["y"], name="body_relu")]
    body[0].attribute.append(scale_ref)
    fn = helper.make_function(
        CUSTOM,
        "ScaledRelu",
        ["x"],
        ["y"],
        body,
        [helper.make_opsetid("", 21)],
        attributes=["unused"],
        attribute_protos=[helper.make_attribute("scale", 0.0)],
        doc_string="function doc",
        overload="v2",
        value_info=[helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"])],
    )
    return with_props(fn, kind="metadata on a function")


def training_info():
    init = helper.make_graph([helper.make_node("Constant", [], ["w0"], value_int=0)], "init", [], [])
    algo = helper.make_graph(
        [helper.make_node("Add", ["w_f32", "w_f32"], ["w_f32_next"])],
        "algo",
        [],
        [helper.make_tensor_value_info("w_f32_next", TensorProto.FLOAT, [2, 3])],
    )
    return helper.make_training_info(algo, [("w_f32", "w_f32_next")], init, [("w_f32", "w0")])


def sharding(node):
    """IR 11 device and sharding fields, with explicit zeros where the schema has presence."""
    cfg = NodeDeviceConfigurationProto()
    cfg.configuration_id = "mesh"
    cfg.pipeline_stage = 0
    spec = cfg.sharding_spec.add()
    spec.tensor_name = "x"
    spec.device.extend([0, 1, -1])
    group = spec.index_to_device_group_map.add()
    group.key = 0
    group.value.extend([0, 1])
    dim = spec.sharded_dim.add()
    dim.axis = 0
    simple = dim.simple_sharding.add()
    simple.dim_value = 0
    simple.num_shards = 2
    symbolic = dim.simple_sharding.add()
    symbolic.dim_param = "n"
    dim.simple_sharding.add()
    node.device_configurations.append(cfg)


def build(ir14: bool) -> ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])
    cond = helper.make_tensor_value_info("cond", TensorProto.BOOL, [])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])

    relu = helper.make_node("ScaledRelu", ["x"], ["y"], name="relu", domain=CUSTOM, scale=0.5)
    relu.overload = "v2"
    with_props(relu, note="metadata on a node")
    every = helper.make_node("Custom", ["x"], ["custom_out"], name="every_attr", domain=CUSTOM, doc_string="node doc")
    every.attribute.extend(every_attribute_kind())
    # Attribute names out of order and an input left empty (optional input skipped): both must stay as written.
    clip = helper.make_node("Clip", ["x", "", "w_scalar"], ["clipped"], name="clip")
    flatten = helper.make_node("Flatten", ["x"], ["flat"], name="flatten", axis=0)
    nodes = [relu, every, if_node(), clip, flatten]
    if ir14:
        sharding(relu)

    graph = helper.make_graph(
        nodes,
        "synthetic",
        [x, cond],
        [y],
        initializer=tensors(ir14),
        doc_string="graph doc",
        value_info=value_types(ir14),
        sparse_initializer=[sparse_initializer()],
    )
    with_props(graph, note="metadata on a graph")
    annotation = graph.quantization_annotation.add()
    annotation.tensor_name = "y"
    annotation.quant_parameter_tensor_names.extend(props(SCALE_TENSOR="w_scalar", ZERO_POINT_TENSOR="w_i8"))

    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid(CUSTOM, 1)],
        functions=[local_function()],
        producer_name="precisiond make_synthetic_models.py",
        producer_version="1",
        domain="",
        model_version=0,
        doc_string="model doc ✓",
    )
    model.ir_version = 14 if ir14 else 10
    model.training_info.append(training_info())
    with_props(model, purpose="round-trip test", empty="")
    if ir14:
        device = DeviceConfigurationProto()
        device.name = "mesh"
        device.num_devices = 2
        device.device.extend(["cuda:0", "cuda:1"])
        model.configuration.append(device)
        model.opset_import.append(helper.make_opsetid("ai.onnx.ml", 5))
    return model


def unset_fields(models: list) -> list:
    """Schema fields that none of the models sets. The round-trip test only proves what the models contain, so a
    newer onnx package with new fields must fail here rather than pass unnoticed."""
    from google.protobuf.descriptor import FieldDescriptor

    schema = set()

    def declare(desc):
        schema.update((desc.full_name, f.name) for f in desc.fields)
        for nested in desc.nested_types:
            declare(nested)

    for desc in ModelProto.DESCRIPTOR.file.message_types_by_name.values():
        declare(desc)

    seen = set()

    def visit(message):
        for field, value in message.ListFields():
            seen.add((message.DESCRIPTOR.full_name, field.name))
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                # protobuf 7 has only is_repeated; older releases have only label.
                repeated = getattr(field, "is_repeated", None)
                if repeated is None:
                    repeated = field.label == FieldDescriptor.LABEL_REPEATED
                for item in value if repeated else [value]:
                    visit(item)

    for model in models:
        visit(model)
    return sorted(f"{m}.{f}" for m, f in schema - seen)


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: make_synthetic_models.py OUT_DIR")
    models = {"ir10_features": build(ir14=False), "ir14_features": build(ir14=True)}
    missing = unset_fields(list(models.values()))
    if missing:
        sys.exit(
            f"onnx {onnx.__version__} (IR {onnx.IR_VERSION}) has fields these models do not set: {', '.join(missing)}."
            " Set them in scripts/make_synthetic_models.py and declare them in src/model/proto.rs."
        )
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for name, model in models.items():
        # SerializeToString, not onnx.save: save would try to resolve the external-data tensor against the folder.
        (out / f"{name}.onnx").write_bytes(model.SerializeToString())


if __name__ == "__main__":
    main()
