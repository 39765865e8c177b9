//! ONNX in and out without loss, and a read-only view of the graph.
//!
//! The model is kept as the decoded message tree ([`proto::ModelProto`], the project's own prost structs) and written
//! back from it: nothing is re-derived on save, so a load followed by a save gives the same bytes. Everything the
//! rest of precisiond needs to know about the graph (stable node names, producers, consumers, order, weights, MACs)
//! is a view computed from it ([`graph::Graph`]); rewrites (export) build a new tree.

pub mod graph;
pub mod opset;
pub mod proto;
pub mod weights;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use prost::Message;

use crate::error::{Diagnose, Fault};
pub use graph::Graph;
use proto::ModelProto;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot read {}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{} is not a valid ONNX model (protobuf decoding failed; is the file truncated?)", path.display())]
    Decode { path: PathBuf, source: prost::DecodeError },
    #[error("{} is an ONNX model without a graph", path.display())]
    NoGraph { path: PathBuf },
    #[error("{}: tensor `{tensor}` keeps its data in an external file ({location})", path.display())]
    ExternalData { path: PathBuf, tensor: String, location: String },
    #[error("{}: {source}", path.display())]
    Graph { path: PathBuf, source: graph::GraphError },
    #[error("cannot write {}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
}

impl Diagnose for ModelError {
    fn fault(&self) -> Fault {
        match self {
            ModelError::Write { .. } => Fault::Environment,
            _ => Fault::Input,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            ModelError::ExternalData { .. } => Some(
                "precisiond needs the weights inside the model file: in Python, \
                 `onnx.save(onnx.load(path), out, save_as_external_data=False)` merges them (models up to 2 GB)"
                    .into(),
            ),
            ModelError::Decode { .. } => {
                Some("check that the file is a complete .onnx model (its size, and that the copy finished)".into())
            }
            _ => None,
        }
    }
}

/// A loaded ONNX model.
#[derive(Clone, Debug)]
pub struct Model {
    proto: ModelProto,
    path: PathBuf,
    /// Set when re-encoding would not give the same bytes (fields unknown to this schema, or a non-canonical
    /// writer). Not an error: the model still loads, but a save may differ from the input.
    reencode_differs: bool,
}

impl Model {
    /// Loads and checks a model: decodable, has a graph, keeps no external data, every node input is produced by
    /// something, no cycle.
    pub fn load(path: &Path) -> Result<Model, ModelError> {
        let bytes = fs::read(path).map_err(|source| ModelError::Read { path: path.to_owned(), source })?;
        Model::from_bytes(bytes::Bytes::from(bytes), path)
    }

    /// `path` names the model in messages.
    pub fn from_bytes(bytes: bytes::Bytes, path: &Path) -> Result<Model, ModelError> {
        let len = bytes.len();
        let proto =
            ModelProto::decode(bytes).map_err(|source| ModelError::Decode { path: path.to_owned(), source })?;
        let model = Model { reencode_differs: proto.encoded_len() != len, proto, path: path.to_owned() };
        model.check()?;
        Ok(model)
    }

    /// Wraps a message tree built in memory (an export); checked like a loaded file.
    pub fn from_proto(proto: ModelProto, path: &Path) -> Result<Model, ModelError> {
        let model = Model { proto, path: path.to_owned(), reencode_differs: false };
        model.check()?;
        Ok(model)
    }

    fn check(&self) -> Result<(), ModelError> {
        let path = || self.path.clone();
        let graph = self.proto.graph.as_ref().ok_or_else(|| ModelError::NoGraph { path: path() })?;
        if let Some((tensor, location)) = weights::first_external_tensor(graph) {
            return Err(ModelError::ExternalData { path: path(), tensor, location });
        }
        Graph::new(graph).map_err(|source| ModelError::Graph { path: path(), source })?;
        Ok(())
    }

    pub fn proto(&self) -> &ModelProto {
        &self.proto
    }

    pub fn into_proto(self) -> ModelProto {
        self.proto
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True when saving this model unchanged would not reproduce the input bytes (see the field's comment).
    pub fn reencode_differs(&self) -> bool {
        self.reencode_differs
    }

    pub fn graph_proto(&self) -> &proto::GraphProto {
        self.proto.graph.as_ref().expect("checked at load")
    }

    /// The graph view. Cheap enough to rebuild; callers that need it often keep it.
    pub fn graph(&self) -> Graph {
        Graph::new(self.graph_proto()).expect("checked at load")
    }

    /// The default-domain opset the model declares.
    pub fn opset(&self) -> Option<i64> {
        self.proto
            .opset_import
            .iter()
            .find(|o| matches!(o.domain(), "" | "ai.onnx"))
            .map(|o| o.version())
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.proto.encode_to_vec()
    }

    /// Writes the model atomically: a temporary file in the same folder, fsynced, then renamed over `path`.
    pub fn save(&self, path: &Path) -> Result<(), ModelError> {
        write_atomically(path, &self.to_bytes()).map_err(|source| ModelError::Write { path: path.to_owned(), source })
    }
}

/// Writes `bytes` to `path` so that a reader sees either the old file or the whole new one, never a part.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
