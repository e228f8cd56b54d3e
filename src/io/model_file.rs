//! Model files and checkpoints in safetensors.
//!
//! Tensors follow PyTorch's `nn.Sequential` `state_dict` names: layer `i` of the
//! network stores `i.weight` `(out, in)` and `i.bias` `(out,)`, so
//! `nn.Sequential(Linear, ReLU, Linear, ...).load_state_dict(load_file(path))` works.
//! The metadata (string to string, as the format allows) holds the full training
//! config (`config`, JSON), `dataset`, `input_shape`, `class_names`, `metrics` and
//! `nnlab_version`. A checkpoint adds the optimiser state (`optimizer.m.J`,
//! `optimizer.v.J`) and the trainer state (`checkpoint`: epoch, step, RNG, history).
//! Every write is a temp file + rename.

use crate::config::{HiddenUnit, ModelConfig, TrainConfig};
use crate::data::fetch::write_atomic;
use crate::error::{Error, Result};
use crate::layers::{Activation, Layer};
use crate::model::Model;
use crate::rng::Rng;
use crate::train::{EpochStats, Trainer};
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

fn f32_bytes(xs: &[f32]) -> Vec<u8> {
    xs.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Every tensor of the network as `(name, shape, little-endian bytes)`.
fn network_tensors(model: &mut Model) -> Vec<(String, Vec<usize>, Vec<u8>)> {
    let mut out = Vec::new();
    for (i, layer) in model.net.layers.iter_mut().enumerate() {
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

fn base_metadata(meta: &ModelMeta) -> HashMap<String, String> {
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

fn serialize(
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

/// Checks, before a long run, that `path` can be written: its folder exists and
/// accepts a file.
pub fn check_writable(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(Error::format(
            &dir,
            "folder does not exist (create it first, or choose another --save path)",
        ));
    }
    if path.is_dir() {
        return Err(Error::format(
            path,
            "is a folder; --save takes a file path such as model.safetensors",
        ));
    }
    let probe = dir.join(format!(".nnlab-write-probe-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| Error::io("writing into", &dir, e))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Saves a model and its metadata to `path` (atomically).
pub fn save_model(path: &Path, model: &mut Model, meta: &ModelMeta) -> Result<()> {
    let bytes = serialize(&network_tensors(model), base_metadata(meta), path)?;
    write_atomic(path, &bytes)
}

/// Reads a safetensors file: its tensors and metadata.
fn read(path: &Path) -> Result<(Vec<u8>, HashMap<String, String>)> {
    if path.is_dir() {
        return Err(Error::format(
            path,
            "is a folder, expected a .safetensors model file",
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io("reading", path, e))?;
    let (_, md) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| Error::format(path, format!("not a valid safetensors file ({e})")))?;
    let meta = md.metadata().clone().unwrap_or_default();
    Ok((bytes, meta))
}

fn tensor_f32(st: &SafeTensors<'_>, name: &str, shape: &[usize], path: &Path) -> Result<Vec<f32>> {
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
    Ok(t.data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// Copies the file's tensors into a freshly built model, checking names and shapes.
fn fill_model(model: &mut Model, st: &SafeTensors<'_>, path: &Path) -> Result<()> {
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

fn parse_json<T: serde::de::DeserializeOwned>(
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

fn meta_from(md: &HashMap<String, String>, path: &Path) -> Result<ModelMeta> {
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
        let mut model = Model::build(&meta.config.model, h * w, classes, &mut Rng::new(0))
            .map_err(|e| {
                Error::format(path, format!("cannot build the model it describes: {e}"))
            })?;
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

/// Trainer state saved beside the tensors of a checkpoint.
#[derive(serde::Serialize, serde::Deserialize)]
struct CheckpointState {
    t: u64,
    rng: Rng,
    history: Vec<EpochStats>,
}

/// The checkpoint file inside a checkpoint folder.
pub fn checkpoint_path(dir: &Path) -> PathBuf {
    dir.join("checkpoint.safetensors")
}

/// Each parameter's shape and whether it is stored transposed, in visiting order.
fn param_layouts(model: &mut Model) -> Vec<(crate::layers::Shape, bool)> {
    let mut v = Vec::new();
    model
        .net
        .visit_params(&mut |p| v.push((p.shape, p.transposed)));
    v
}

/// Writes the trainer's model, optimiser state, RNG and history to
/// `dir/checkpoint.safetensors`, atomically.
pub fn save_checkpoint(dir: &Path, trainer: &mut Trainer, meta: &ModelMeta) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("creating checkpoint folder", dir, e))?;
    let path = checkpoint_path(dir);
    let mut tensors = network_tensors(&mut trainer.model);
    // The moments are laid out like their parameters; saved in the parameters'
    // row-major order, as the parameters are, so the file does not depend on how a
    // layer stores its weights.
    let layouts = param_layouts(&mut trainer.model);
    for (kind, bufs) in [("m", &trainer.opt.m), ("v", &trainer.opt.v)] {
        for (j, buf) in bufs.iter().enumerate().filter(|(_, b)| !b.is_empty()) {
            let (shape, transposed) = layouts[j];
            let values = crate::layers::row_major(buf, shape, transposed);
            tensors.push((
                format!("optimizer.{kind}.{j}"),
                vec![buf.len()],
                f32_bytes(&values),
            ));
        }
    }
    let mut md = base_metadata(meta);
    let state = CheckpointState {
        t: trainer.opt.t,
        rng: trainer.rng.clone(),
        history: trainer.history.clone(),
    };
    md.insert(
        "checkpoint".into(),
        serde_json::to_string(&state).expect("state serialises"),
    );
    let bytes = serialize(&tensors, md, &path)?;
    write_atomic(&path, &bytes)
}

/// Rebuilds a trainer from `dir/checkpoint.safetensors`. `cfg` is the run asked for:
/// it must equal the checkpoint's config in everything but `epochs` (which may grow).
pub fn load_checkpoint(dir: &Path, cfg: &TrainConfig) -> Result<Trainer> {
    let path = checkpoint_path(dir);
    let (bytes, md) = read(&path)?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| Error::format(&path, format!("not a valid safetensors file ({e})")))?;
    let meta = meta_from(&md, &path)?;
    let state: CheckpointState = parse_json(&md, "checkpoint", &path)?;
    let mut saved = meta.config.clone();
    saved.epochs = cfg.epochs;
    if &saved != cfg {
        let a = serde_json::to_value(&saved).expect("json");
        let b = serde_json::to_value(cfg).expect("json");
        let differ = diff_keys(&a, &b, "");
        return Err(Error::format(
            &path,
            format!(
                "was made with a different config ({}); resume with the same settings, or start a new run",
                differ.join(", ")
            ),
        ));
    }
    if state.history.len() > cfg.epochs {
        return Err(Error::config(
            "epochs",
            cfg.epochs,
            format!("the checkpoint already has {} epochs", state.history.len()),
        ));
    }
    let (h, w) = meta.input_shape;
    let mut trainer = Trainer::new(cfg, h * w, meta.class_names.len())?;
    fill_model(&mut trainer.model, &st, &path)?;
    let layouts = param_layouts(&mut trainer.model);
    let opt = &mut trainer.opt;
    for (j, (m, v)) in opt.m.iter_mut().zip(opt.v.iter_mut()).enumerate() {
        for (buf, kind) in [(m, "m"), (v, "v")] {
            if !buf.is_empty() {
                let values =
                    tensor_f32(&st, &format!("optimizer.{kind}.{j}"), &[buf.len()], &path)?;
                let (shape, transposed) = layouts[j];
                crate::layers::set_from_row_major(buf, &values, shape, transposed);
            }
        }
    }
    trainer.opt.t = state.t;
    trainer.rng = state.rng;
    trainer.history = state.history;
    Ok(trainer)
}

/// Dotted paths of the fields where two JSON objects differ.
fn diff_keys(a: &serde_json::Value, b: &serde_json::Value, prefix: &str) -> Vec<String> {
    match (a, b) {
        (serde_json::Value::Object(x), serde_json::Value::Object(y)) => {
            let mut out = Vec::new();
            for (k, va) in x {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match y.get(k) {
                    Some(vb) => out.extend(diff_keys(va, vb, &p)),
                    None => out.push(p),
                }
            }
            out
        }
        _ if a != b => vec![format!("{prefix}: {a} vs {b}")],
        _ => Vec::new(),
    }
}
