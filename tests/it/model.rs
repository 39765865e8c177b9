//! The model layer on real models, judged by the Python `onnx` package, and on small hand-built graphs.

use std::path::Path;

use precisiond::model::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TypeProto, ValueInfoProto,
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto, type_proto,
};
use precisiond::model::{Model, ModelError};

use crate::support::{self, judge};

#[test]
fn node_and_quantizable_counts_equal_python_onnx() {
    for name in support::REAL_MODELS {
        let path = support::model(name);
        let model = Model::load(&path).unwrap();
        let graph = model.graph();
        let python = judge(&[&"count", &path]);
        assert_eq!(graph.len() as u64, python["nodes"].as_u64().unwrap(), "{name}: node count");
        for op in ["Conv", "ConvTranspose", "Gemm", "MatMul"] {
            let ours = graph.quantizable().filter(|&i| graph.node(i).op_type == op).count() as u64;
            let theirs = python["ops"][op].as_u64().unwrap_or(0);
            assert_eq!(ours, theirs, "{name}: {op} count");
        }
    }
}

#[test]
fn pp_ocr_det_has_672_nodes_and_64_quantizable_layers() {
    let model = Model::load(&support::model("det")).unwrap();
    let graph = model.graph();
    assert_eq!(graph.len(), 672);
    let ops: Vec<&str> = graph.quantizable().map(|i| graph.node(i).op_type.as_str()).collect();
    assert_eq!(ops.len(), 64);
    assert_eq!(ops.iter().filter(|o| **o == "Conv").count(), 62);
    assert_eq!(ops.iter().filter(|o| **o == "ConvTranspose").count(), 2);
    assert_eq!(Model::load(&support::model("rec")).unwrap().graph().len(), 860);
}

#[test]
fn load_then_save_is_lossless_and_passes_the_checker() {
    let dir = support::tempdir();
    for name in support::REAL_MODELS {
        let original = support::model(name);
        let model = Model::load(&original).unwrap();
        assert!(!model.reencode_differs(), "{name}: re-encoding is not canonical");
        let saved = dir.path().join(format!("{name}.onnx"));
        model.save(&saved).unwrap();
        assert_eq!(std::fs::read(&original).unwrap(), std::fs::read(&saved).unwrap(), "{name}: bytes differ");
        let verdict = judge(&[&"equal", &original, &saved]);
        assert_eq!(verdict["equal"], true, "{name}: {verdict}");
        let check = judge(&[&"check", &saved]);
        assert_eq!(check["ok"], true, "{name}: {check}");
    }
}

#[test]
fn real_model_weights_are_found_in_constant_nodes() {
    // The Paddle exports keep every weight in Constant nodes: each Conv must still find its weight tensor.
    let model = Model::load(&support::model("cls")).unwrap();
    let graph = model.graph();
    let mut found = 0;
    for index in graph.quantizable() {
        let node = graph.node(index);
        let weight = precisiond::model::weights::find(model.graph_proto(), &graph, &node.inputs[1])
            .unwrap_or_else(|| panic!("no weight for {}", node.name));
        let values = precisiond::model::weights::to_f32(weight.tensor()).unwrap();
        assert!(values.iter().all(|v| v.is_finite()) && values.iter().any(|v| *v != 0.0));
        found += 1;
    }
    assert!(found > 50, "{found} quantizable layers with weights");
}

#[test]
fn names_are_stable_across_loads_and_unique() {
    for name in support::REAL_MODELS {
        let path = support::model(name);
        let a: Vec<String> = Model::load(&path).unwrap().graph().nodes().iter().map(|n| n.name.clone()).collect();
        let b: Vec<String> = Model::load(&path).unwrap().graph().nodes().iter().map(|n| n.name.clone()).collect();
        assert_eq!(a, b);
        let unique: std::collections::HashSet<&String> = a.iter().collect();
        assert_eq!(unique.len(), a.len(), "{name}: names are not unique");
    }
}

// ---- hand-built graphs -------------------------------------------------------------------------------------

fn value_info(name: &str, dims: &[i64]) -> ValueInfoProto {
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            tensor_type: Some(type_proto::Tensor {
                elem_type: Some(DataType::Float as i32),
                shape: Some(precisiond::model::proto::TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|&d| tensor_shape_proto::Dimension {
                            value: Some(tensor_shape_proto::dimension::Value::DimValue(d)),
                            ..Default::default()
                        })
                        .collect(),
                }),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn node(name: &str, op: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
    NodeProto {
        name: (!name.is_empty()).then(|| name.to_owned()),
        op_type: Some(op.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn float_tensor(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(DataType::Float as i32),
        raw_data: Some(values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>().into()),
        ..Default::default()
    }
}

fn ints_attr(name: &str, ints: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Ints as i32),
        ints: ints.to_vec(),
        ..Default::default()
    }
}

/// x[1,3,8,8] → Conv(4 filters 3x3, pad 1) → Relu → Flatten → Gemm(256→10) → y, with unnamed and duplicate names.
pub fn small_model() -> ModelProto {
    let mut conv = node("", "Conv", &["x", "w", "b"], &["c"]);
    conv.attribute = vec![ints_attr("kernel_shape", &[3, 3]), ints_attr("pads", &[1, 1, 1, 1])];
    let w: Vec<f32> = (0..4 * 3 * 9).map(|i| ((i % 7) as f32 - 3.0) * 0.05).collect();
    let g: Vec<f32> = (0..256 * 10).map(|i| ((i % 11) as f32 - 5.0) * 0.01).collect();
    ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(13) }],
        producer_name: Some("precisiond-tests".into()),
        graph: Some(GraphProto {
            name: Some("small".into()),
            node: vec![
                conv,
                node("act", "Relu", &["c"], &["r"]),
                node("act", "Flatten", &["r"], &["f"]),
                node("", "Gemm", &["f", "g", "gb"], &["y"]),
            ],
            initializer: vec![
                float_tensor("w", &[4, 3, 3, 3], &w),
                float_tensor("b", &[4], &[0.1, -0.1, 0.2, 0.0]),
                float_tensor("g", &[256, 10], &g),
                float_tensor("gb", &[10], &[0.0; 10]),
            ],
            input: vec![value_info("x", &[1, 3, 8, 8])],
            output: vec![value_info("y", &[1, 10])],
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn unnamed_nodes_get_op_index_names_and_duplicates_are_reported() {
    let model = Model::from_proto(small_model(), Path::new("small.onnx")).unwrap();
    let graph = model.graph();
    let names: Vec<&str> = graph.nodes().iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["Conv_0", "act", "act__2", "Gemm_3"]);
    assert_eq!(graph.duplicate_names(), ["act"]);
}

#[test]
fn an_assigned_name_never_takes_a_name_from_the_file() {
    let mut proto = small_model();
    let graph = proto.graph.as_mut().unwrap();
    graph.node[3].name = Some("Conv_0".into());
    let model = Model::from_proto(proto, Path::new("m.onnx")).unwrap();
    let names: Vec<String> = model.graph().nodes().iter().map(|n| n.name.clone()).collect();
    assert_eq!(names, ["Conv_0__2", "act", "act__2", "Conv_0"]);
}

#[test]
fn topological_order_sorts_a_shuffled_graph_and_keeps_a_sorted_one() {
    let model = Model::from_proto(small_model(), Path::new("m.onnx")).unwrap();
    assert_eq!(model.graph().order(), [0, 1, 2, 3]);
    let mut proto = small_model();
    proto.graph.as_mut().unwrap().node.reverse();
    let model = Model::from_proto(proto, Path::new("m.onnx")).unwrap();
    let graph = model.graph();
    let ops: Vec<&str> = graph.order().iter().map(|&i| graph.node(i).op_type.as_str()).collect();
    assert_eq!(ops, ["Conv", "Relu", "Flatten", "Gemm"]);
}

#[test]
fn macs_of_conv_and_gemm_are_counted_from_shapes() {
    let model = Model::from_proto(small_model(), Path::new("m.onnx")).unwrap();
    let inspection = precisiond::inspect::inspect(&model, &[]).unwrap();
    let macs: Vec<(String, Option<u64>)> =
        inspection.layers.iter().filter(|l| l.quantizable).map(|l| (l.op.clone(), l.macs)).collect();
    // Conv: 4 out channels x 8x8 positions x (3 in channels x 3x3 kernel); Gemm: 10 outputs x 256.
    assert_eq!(macs, [("Conv".into(), Some(4 * 64 * 27)), ("Gemm".into(), Some(2560))]);
    assert_eq!(inspection.summary.macs, Some(4 * 64 * 27 + 2560));
    assert_eq!(inspection.layers[0].output_shape.as_deref(), Some(&[1, 4, 8, 8][..]));
}

#[test]
fn a_cycle_is_refused_naming_a_node() {
    let mut proto = small_model();
    // Relu now reads the Flatten output, which depends on Relu.
    proto.graph.as_mut().unwrap().node[1].input = vec!["f".into()];
    let err = Model::from_proto(proto, Path::new("cyclic.onnx")).unwrap_err();
    assert!(matches!(err, ModelError::Graph { .. }), "{err}");
    assert!(err.to_string().contains("cycle"), "{err}");
}

#[test]
fn a_dangling_input_is_refused_naming_node_and_tensor() {
    let mut proto = small_model();
    proto.graph.as_mut().unwrap().node[1].input = vec!["nowhere".into()];
    let err = Model::from_proto(proto, Path::new("dangling.onnx")).unwrap_err().to_string();
    assert!(err.contains("dangling.onnx") && err.contains("`act`") && err.contains("`nowhere`"), "{err}");
}

#[test]
fn external_data_is_refused_with_a_hint() {
    let mut proto = small_model();
    let w = &mut proto.graph.as_mut().unwrap().initializer[0];
    w.raw_data = None;
    w.data_location = Some(1);
    w.external_data = vec![precisiond::model::proto::StringStringEntryProto {
        key: Some("location".into()),
        value: Some("weights.bin".into()),
    }];
    let err = Model::from_proto(proto, Path::new("ext.onnx")).unwrap_err();
    assert!(err.to_string().contains("`w`") && err.to_string().contains("weights.bin"), "{err}");
    let failure = precisiond::error::Failure::from(err);
    assert!(failure.to_string().contains("hint: "), "{failure}");
}
