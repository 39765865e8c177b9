use std::fmt::Write as _;
use std::path::PathBuf;

use crate::error::Failure;
use crate::inspect::Inspection;
use crate::model::Model;
use crate::tensor::shape_string;

/// List a model's layers: op, output shape, MACs, and which can run in INT8.
///
/// Quantizable layers are Conv, ConvTranspose, Gemm and MatMul. Unnamed nodes get stable names (`<Op>_<index>`),
/// the names precision specs and trtexec flags use. Shapes and MACs need concrete input shapes: the model's own,
/// or `--shape`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The ONNX model.
    model: PathBuf,
    /// Fix an input's shape, e.g. `--shape x=1,3,640,640` (repeat for several inputs).
    #[arg(long = "shape", value_name = "NAME=DIMS", value_parser = super::parse_shape_arg)]
    shapes: Vec<(String, Vec<usize>)>,
    /// Print JSON (stable: `layers[] {name, op, quantizable, macs, output_shape}`, `summary {nodes, quantizable, macs}`).
    #[arg(long)]
    json: bool,
    /// Also list Constant nodes in the table (JSON always lists every node).
    #[arg(long)]
    all: bool,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let model = Model::load(&args.model)?;
    let inspection = crate::inspect::inspect(&model, &args.shapes)?;
    if args.json {
        let json = serde_json::to_string_pretty(&inspection).expect("plain data serializes");
        return super::print(&(json + "\n"));
    }
    super::print(&render_table(&inspection, args.all))
}

fn render_table(inspection: &Inspection, all: bool) -> String {
    let shown: Vec<_> = inspection.layers.iter().filter(|l| all || l.op != "Constant").collect();
    let name_width = shown.iter().map(|l| l.name.len()).max().unwrap_or(4).clamp(4, 48);
    let op_width = shown.iter().map(|l| l.op.len()).max().unwrap_or(2).max(2);
    let mut out = String::new();
    let _ = writeln!(out, "{:<name_width$}  {:<op_width$}  {:<18}  {:>14}  INT8", "NAME", "OP", "OUTPUT", "MACS");
    for layer in &shown {
        let shape = layer.output_shape.as_deref().map(shape_string).unwrap_or_else(|| "?".into());
        let macs = layer.macs.map(group_thousands).unwrap_or_else(|| if layer.quantizable { "?".into() } else { String::new() });
        let _ = writeln!(
            out,
            "{:<name_width$}  {:<op_width$}  {:<18}  {:>14}  {}",
            layer.name,
            layer.op,
            shape,
            macs,
            if layer.quantizable { "yes" } else { "" }
        );
    }
    let s = &inspection.summary;
    let _ = writeln!(out);
    let _ = writeln!(out, "model:        {}", inspection.model);
    let _ = writeln!(
        out,
        "format:       IR {}, opset {}{}",
        inspection.ir_version.map_or("?".into(), |v| v.to_string()),
        inspection.opset.map_or("?".into(), |v| v.to_string()),
        inspection.producer.as_deref().filter(|p| !p.is_empty()).map_or(String::new(), |p| format!(", from {p}"))
    );
    for input in &inspection.inputs {
        let declared: Vec<String> = input.declared.iter().map(|d| d.map_or("?".into(), |d| d.to_string())).collect();
        let used = input.shape.as_deref().map_or(String::new(), |s| format!(" (inspected at {})", shape_string(s)));
        let _ = writeln!(
            out,
            "input:        {} {} [{}]{used}",
            input.name,
            input.dtype.as_deref().unwrap_or("?"),
            declared.join(",")
        );
    }
    let _ = writeln!(out, "outputs:      {}", inspection.outputs.join(", "));
    let by_op: Vec<String> = s.quantizable_by_op.iter().map(|(op, n)| format!("{n} {op}")).collect();
    let _ = writeln!(out, "nodes:        {}", s.nodes);
    let _ = writeln!(
        out,
        "quantizable:  {}{}",
        s.quantizable,
        if by_op.is_empty() { String::new() } else { format!(" ({})", by_op.join(" + ")) }
    );
    let _ = writeln!(out, "MACs:         {}", s.macs.map(group_thousands).unwrap_or_else(|| "unknown".into()));
    let hidden = inspection.layers.len() - shown.len();
    if hidden > 0 {
        let _ = writeln!(out, "({hidden} Constant nodes not listed; --all lists them)");
    }
    if !inspection.duplicate_names.is_empty() {
        let _ = writeln!(
            out,
            "warning: node names used more than once (later ones are addressed as NAME__2, …): {}",
            inspection.duplicate_names.join(", ")
        );
    }
    for note in &inspection.notes {
        let _ = writeln!(out, "note: {note}");
    }
    out
}

fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push('_');
        }
        out.push(c);
    }
    out
}
