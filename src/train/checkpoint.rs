//! Checkpoints: the trainer's model, optimiser moments, RNG and history in one
//! safetensors file (`DIR/checkpoint.safetensors`), written atomically after every
//! epoch, from which a run resumes to the same bits as an uninterrupted one. The
//! runtime is not saved: a run may resume at another thread count or SIMD level to
//! the same bits (`--dense-only` or `--keep-subnormals` switched between the parts
//! change the rounding from there on; see `runtime`).

use super::early_stop::Snapshot;
use super::{EpochStats, Trainer};
use crate::config::TrainConfig;
use crate::error::{Error, Result};
use crate::files::write_atomic;
use crate::io::ModelMeta;
use crate::io::model_file::{
    base_metadata, f32_bytes, fill_model, meta_from, network_tensors, parse_json, read, serialize,
    tensor_f32,
};
use crate::layers::Layer;
use crate::model::Model;
use crate::rng::Rng;
use crate::runtime::Runtime;
use safetensors::tensor::SafeTensors;
use std::path::{Path, PathBuf};

/// Trainer state saved beside the tensors of a checkpoint.
#[derive(serde::Serialize, serde::Deserialize)]
struct CheckpointState {
    t: u64,
    rng: Rng,
    history: Vec<EpochStats>,
    /// The epoch of the best weights saved as `best.J` (early stopping's restore_best).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    best_epoch: Option<usize>,
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
    if let Some(best) = &trainer.best {
        for (j, v) in best.values.iter().enumerate() {
            tensors.push((format!("best.{j}"), vec![v.len()], f32_bytes(v)));
        }
    }
    let mut md = base_metadata(meta);
    let state = CheckpointState {
        t: trainer.opt.t,
        rng: trainer.rng.clone(),
        history: trainer.history.clone(),
        best_epoch: trainer.best.as_ref().map(|b| b.epoch),
    };
    md.insert(
        "checkpoint".into(),
        serde_json::to_string(&state).expect("state serialises"),
    );
    let bytes = serialize(&tensors, md, &path)?;
    write_atomic(&path, &bytes)
}

/// Rebuilds a trainer from `dir/checkpoint.safetensors`, to run under `rt`. `cfg` is
/// the run asked for: it must equal the checkpoint's config in everything but `epochs`
/// (which may grow).
pub fn load_checkpoint(dir: &Path, cfg: &TrainConfig, rt: Runtime) -> Result<Trainer> {
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
    let mut trainer = Trainer::new(
        cfg,
        crate::layers::Features::Image { c: 1, h, w },
        meta.class_names.len(),
        rt,
    )?;
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
    if let Some(epoch) = state.best_epoch {
        let lengths = Snapshot::lengths(&mut trainer.model.net);
        let values = (0..lengths.len())
            .map(|j| tensor_f32(&st, &format!("best.{j}"), &[lengths[j]], &path))
            .collect::<Result<Vec<_>>>()?;
        trainer.best = Some(Snapshot { epoch, values });
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
                    None => out.push(format!("{p}: {va} vs none")),
                }
            }
            for (k, vb) in y.iter().filter(|(k, _)| !x.contains_key(*k)) {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.push(format!("{p}: none vs {vb}"));
            }
            out
        }
        _ if a != b => vec![format!("{prefix}: {a} vs {b}")],
        _ => Vec::new(),
    }
}
