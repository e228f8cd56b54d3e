//! Model files and checkpoints in safetensors.
//!
//! Tensors follow PyTorch's `nn.Sequential` `state_dict` names: layer `i` of the
//! network stores `i.weight` `(out, in)` and `i.bias` `(out,)`, so
//! `nn.Sequential(Linear, ReLU, Linear, ...).load_state_dict(load_file(path))` works.
//! The metadata (string to string, as the format allows) holds the full training
//! config (`config`, JSON), `dataset`, `input_shape`, `class_names`, `metrics` and
//! `nnlab_version`. A checkpoint (`train::checkpoint`) adds the optimiser state and
//! the trainer's, through the helpers here. Every write is a temp file + rename.

use crate::config::{HiddenUnit, ModelConfig, TrainConfig};
use crate::error::{Error, Result};
use crate::files::write_atomic;
use crate::layers::{Activation, Layer};
use crate::model::Model;
use crate::rng::Rng;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Identifies files written by nnlab.
pub const FORMAT: &str = "nnlab-model/1";

/// What a model file says about its model beside the tensors.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelMeta {
    /// The full training config the model came from.
    pub config: TrainConfig,
    /// Dataset name (`mnist`, `fashion-mnist`, or a folder).
    pub dataset: String,
    /// `(height, width)` of the input images.
    pub input_shape: (usize, usize),
    pub class_names: Vec<String>,
    /// Final figures, e.g. `test_accuracy`.
    pub metrics: BTreeMap<String, f32>,
}

/// A model read from a file, with what was assumed when the file had no nnlab
/// metadata.
pub struct LoadedModel {
    pub model: Model,
    pub meta: ModelMeta,
    pub path: PathBuf,
    /// Assumptions made for a foreign file (empty for nnlab's own).
    pub warnings: Vec<String>,
}

pub(crate) fn f32_bytes(xs: &[f32]) -> Vec<u8> {
    xs.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Every tensor of the network as `(name, shape, little-endian bytes)`.
pub(crate) fn network_tensors(model: &mut Model) -> Vec<(String, Vec<usize>, Vec<u8>)> {
    let mut out = Vec::new();
    for (i, layer) in model.net.layers_mut().iter_mut().enumerate() {
        layer.visit_params(&mut |p| {
            out.push((
                format!("{i}.{}", p.name),
                p.shape.as_slice().to_vec(),
                f32_bytes(&p.to_row_major()),
            ))
        });
        layer.visit_buffers(&mut |name, v| {
            out.push((format!("{i}.{name}"), vec![v.len()], f32_bytes(v)))
        });
    }
    out
}

pub(crate) fn base_metadata(meta: &ModelMeta) -> HashMap<String, String> {
    let mut m = HashMap::new();
    m.insert("format".into(), FORMAT.into());
    m.insert("nnlab_version".into(), env!("CARGO_PKG_VERSION").into());
    m.insert(
        "config".into(),
        serde_json::to_string(&meta.config).expect("config serialises"),
    );
    m.insert("dataset".into(), meta.dataset.clone());
    m.insert(
        "input_shape".into(),
        format!("[{}, {}]", meta.input_shape.0, meta.input_shape.1),
    );
    m.insert(
        "class_names".into(),
        serde_json::to_string(&meta.class_names).expect("names serialise"),
    );
    m.insert(
        "metrics".into(),
        serde_json::to_string(&meta.metrics).expect("metrics serialise"),
    );
    m
}

pub(crate) fn serialize(
    tensors: &[(String, Vec<usize>, Vec<u8>)],
    metadata: HashMap<String, String>,
    path: &Path,
) -> Result<Vec<u8>> {
    let views = tensors
        .iter()
        .map(|(n, s, b)| {
            Ok((
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), b)
                    .map_err(|e| Error::format(path, e.to_string()))?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize(views, Some(metadata)).map_err(|e| Error::format(path, e.to_string()))
}

/// Whether `path` is a file nnlab wrote (a model or a checkpoint: its safetensors
/// metadata says `format = nnlab-model/1`), reading only its header.
pub fn is_nnlab_file(path: &Path) -> bool {
    use std::io::Read;
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    let mut len = [0u8; 8];
    if f.read_exact(&mut len).is_err() {
        return false;
    }
    let n = u64::from_le_bytes(len);
    if n > 100 << 20 {
        return false;
    }
    let mut header = vec![0u8; n as usize];
    if f.read_exact(&mut header).is_err() {
        return false;
    }
    serde_json::from_slice::<serde_json::Value>(&header)
        .ok()
        .and_then(|v| {
            v.get("__metadata__")?
                .get("format")?
                .as_str()
                .map(|s| s == FORMAT)
        })
        .unwrap_or(false)
}

/// Saves a model and its metadata to `path` (atomically).
pub fn save_model(path: &Path, model: &mut Model, meta: &ModelMeta) -> Result<()> {
    let bytes = serialize(&network_tensors(model), base_metadata(meta), path)?;
    write_atomic(path, &bytes)
}

/// Reads a safetensors file: its tensors and metadata.
pub(crate) fn read(path: &Path) -> Result<(Vec<u8>, HashMap<String, String>)> {
    let bytes = crate::files::read_regular(path, "a .safetensors model file")?;
    let (_, md) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| Error::format(path, format!("not a valid safetensors file ({e})")))?;
    let meta = md.metadata().clone().unwrap_or_default();
    Ok((bytes, meta))
}

pub(crate) fn tensor_f32(
    st: &SafeTensors<'_>,
    name: &str,
    shape: &[usize],
    path: &Path,
) -> Result<Vec<f32>> {
    let t = st
        .tensor(name)
        .map_err(|_| Error::format(path, format!("missing tensor {name} (shape {shape:?})")))?;
    if t.dtype() != Dtype::F32 {
        return Err(Error::format(
            path,
            format!("tensor {name} is {:?}, expected F32", t.dtype()),
        ));
    }
    if t.shape() != shape {
        return Err(Error::format(
            path,
            format!(
                "tensor {name} has shape {:?}, the model needs {shape:?}",
                t.shape()
            ),
        ));
    }
    let values: Vec<f32> = t
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if let Some((i, v)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(Error::format(
            path,
            format!(
                "tensor {name} holds {v} at element {i}: a model's values must be finite \
                 (the file is corrupt, or saved from a run that diverged)"
            ),
        ));
    }
    Ok(values)
}

/// Copies the file's tensors into a freshly built model, checking names and shapes.
pub(crate) fn fill_model(model: &mut Model, st: &SafeTensors<'_>, path: &Path) -> Result<()> {
    let mut err = None;
    model.net.visit_params(&mut |mut p| {
        if err.is_none() {
            match tensor_f32(st, p.name, p.shape.as_slice(), path) {
                Ok(v) => p.set_row_major(&v),
                Err(e) => err = Some(e),
            }
        }
    });
    model.net.visit_buffers(&mut |name, v| {
        if err.is_none() {
            match tensor_f32(st, name, &[v.len()], path) {
                Ok(x) => v.copy_from_slice(&x),
                Err(e) => err = Some(e),
            }
        }
    });
    err.map_or(Ok(()), Err)
}

pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    meta: &HashMap<String, String>,
    key: &str,
    path: &Path,
) -> Result<T> {
    let text = meta
        .get(key)
        .ok_or_else(|| Error::format(path, format!("metadata lacks '{key}'")))?;
    serde_json::from_str(text)
        .map_err(|e| Error::format(path, format!("metadata '{key}' is not valid: {e}")))
}

pub(crate) fn meta_from(md: &HashMap<String, String>, path: &Path) -> Result<ModelMeta> {
    let config: TrainConfig = parse_json(md, "config", path)?;
    config
        .validate()
        .map_err(|e| Error::format(path, format!("its config is invalid: {e}")))?;
    let shape: Vec<usize> = parse_json(md, "input_shape", path)?;
    let [h, w] = shape[..] else {
        return Err(Error::format(
            path,
            format!("input_shape {shape:?} is not [height, width]"),
        ));
    };
    Ok(ModelMeta {
        config,
        dataset: md.get("dataset").cloned().unwrap_or_default(),
        input_shape: (h, w),
        class_names: parse_json(md, "class_names", path)?,
        metrics: md
            .get("metrics")
            .and_then(|m| serde_json::from_str(m).ok())
            .unwrap_or_default(),
    })
}

/// Loads a model file: nnlab's own (with metadata), or a foreign safetensors file
/// whose tensors describe an MLP as `nn.Sequential` would store it.
pub fn load_model(path: &Path) -> Result<LoadedModel> {
    let (bytes, md) = read(path)?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| Error::format(path, format!("not a valid safetensors file ({e})")))?;
    if md.contains_key("config") {
        let meta = meta_from(&md, path)?;
        let (h, w) = meta.input_shape;
        let classes = meta.class_names.len();
        let mut model = Model::build(
            &meta.config.model,
            crate::layers::Features::Image { c: 1, h, w },
            classes,
            &mut Rng::new(0),
        )
        .map_err(|e| Error::format(path, format!("cannot build the model it describes: {e}")))?;
        fill_model(&mut model, &st, path)?;
        return Ok(LoadedModel {
            model,
            meta,
            path: path.to_path_buf(),
            warnings: Vec::new(),
        });
    }
    load_foreign(&st, path)
}

/// Infers an MLP from `i.weight` / `i.bias` tensors laid out as nnlab (and PyTorch's
/// `nn.Sequential(Linear, ReLU[, Dropout], ...)`) lays them out.
fn load_foreign(st: &SafeTensors<'_>, path: &Path) -> Result<LoadedModel> {
    let mut weights: Vec<(usize, Vec<usize>)> = st
        .tensors()
        .into_iter()
        .filter_map(|(name, t)| {
            let idx = name.strip_suffix(".weight")?.parse::<usize>().ok()?;
            Some((idx, t.shape().to_vec()))
        })
        .collect();
    weights.sort();
    let describe = "expected an nnlab model file, or tensors 0.weight, 0.bias, 2.weight, ... of 2-D \
                    Linear layers (PyTorch nn.Sequential of Linear and ReLU, optionally Dropout)";
    if weights.is_empty() || weights.iter().any(|(_, s)| s.len() != 2) {
        return Err(Error::format(
            path,
            format!("no nnlab metadata and no usable Linear weights: {describe}"),
        ));
    }
    let gaps: Vec<usize> = weights.windows(2).map(|w| w[1].0 - w[0].0).collect();
    let step = gaps.first().copied().unwrap_or(2);
    if weights[0].0 != 0 || gaps.iter().any(|&g| g != step) || !(step == 2 || step == 3) {
        let idx: Vec<usize> = weights.iter().map(|w| w.0).collect();
        return Err(Error::format(
            path,
            format!("Linear layers at indices {idx:?} do not match an MLP layout: {describe}"),
        ));
    }
    for w in weights.windows(2) {
        if w[1].1[1] != w[0].1[0] {
            return Err(Error::format(
                path,
                format!(
                    "layer {} outputs {} features but layer {} takes {}",
                    w[0].0, w[0].1[0], w[1].0, w[1].1[1]
                ),
            ));
        }
    }
    let in_dim = weights[0].1[1];
    let classes = weights.last().expect("non-empty").1[0];
    let side = (in_dim as f64).sqrt().round() as usize;
    let input_shape = if side * side == in_dim {
        (side, side)
    } else {
        (1, in_dim)
    };
    let mut warnings =
        vec!["no nnlab metadata: assuming ReLU between the Linear layers".to_string()];
    let model_cfg = ModelConfig {
        hidden: weights[..weights.len() - 1]
            .iter()
            .map(|w| w.1[0])
            .collect(),
        activation: HiddenUnit::Act(Activation::Relu),
        keep_prob: if step == 3 { 0.5 } else { 1.0 },
        ..ModelConfig::default()
    };
    if step == 3 {
        warnings.push("a layer after each ReLU taken as dropout (no effect at evaluation)".into());
    }
    let mut model = Model::build(&model_cfg, in_dim, classes, &mut Rng::new(0))
        .map_err(|e| Error::format(path, e.to_string()))?;
    fill_model(&mut model, st, path)?;
    let config = TrainConfig {
        model: model_cfg,
        ..TrainConfig::default()
    };
    Ok(LoadedModel {
        model,
        meta: ModelMeta {
            config,
            dataset: String::new(),
            input_shape,
            class_names: (0..classes).map(|c| c.to_string()).collect(),
            metrics: BTreeMap::new(),
        },
        path: path.to_path_buf(),
        warnings,
    })
}
