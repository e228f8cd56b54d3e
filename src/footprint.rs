//! What a net and its training take in memory, estimated from a config's shapes
//! before anything is built (see `memory` for the check against the machine).

use crate::config::{HiddenUnit, LayerSpec, ModelConfig};
use crate::error::Result;
use crate::layers::Features;

/// Bytes of one `f32`.
const F32: f64 = 4.0;

/// Bytes any run takes besides its net's buffers: packing buffers of the matrix
/// products, per-thread scratch, the evaluation's predictions.
const OVERHEAD: f64 = 16e6;

/// Parameters and the largest per-example activation (in floats) of a layer list.
#[derive(Clone, Copy, Debug, Default)]
struct Cost {
    params: f64,
    /// Sum over layers of each output's width (activations and their gradients are
    /// kept for every layer), per example of the largest batch a net sees.
    acts: f64,
    /// Buffers that only backpropagation allocates, per example of the training
    /// batch.
    grads: f64,
    /// Buffers each thread keeps whatever the batch (a convolution's columns of one
    /// image and their bf16 packing).
    scratch: f64,
}

impl Cost {
    fn add(self, o: Cost) -> Cost {
        Cost {
            params: self.params + o.params,
            acts: self.acts + o.acts,
            grads: self.grads + o.grads,
            scratch: self.scratch + o.scratch,
        }
    }
}

/// Elements of one example of `shape`, as a float (no overflow).
fn size(shape: Features) -> f64 {
    match shape {
        Features::Vector(n) => n as f64,
        Features::Image { c, h, w } => c as f64 * h as f64 * w as f64,
        Features::Sequence { t, f } => t as f64 * f as f64,
    }
}

/// The cost of `spec` on examples of shape `input`, and its output shape; `path`
/// names it in errors (a spec that cannot take `input`).
fn spec_cost(spec: &LayerSpec, input: Features, path: &str) -> Result<(Cost, Features)> {
    let list = |specs: &[LayerSpec], s: Features, p: &str| {
        specs
            .iter()
            .enumerate()
            .try_fold((Cost::default(), s), |(c, s), (i, spec)| {
                let (d, s) = spec_cost(spec, s, &format!("{p}[{i}]"))?;
                Ok::<_, crate::error::Error>((c.add(d), s))
            })
    };
    let out = spec.out_shape(input, path)?;
    let (width, o) = (size(input), size(out));
    let cost = match spec {
        LayerSpec::Dense { .. } => Cost {
            params: (width + 1.0) * o,
            acts: o,
            grads: 0.0,
            scratch: 0.0,
        },
        // the k pieces' outputs and their gradients are kept too
        LayerSpec::Maxout { k, .. } => Cost {
            params: (width + 1.0) * o * *k as f64,
            acts: o + 2.0 * o * *k as f64,
            grads: 0.0,
            scratch: 0.0,
        },
        LayerSpec::Activation { .. } | LayerSpec::Dropout { .. } | LayerSpec::Flatten => Cost {
            params: 0.0,
            acts: 2.0 * width,
            grads: 0.0,
            scratch: 0.0,
        },
        LayerSpec::Batchnorm => {
            let features = match input {
                Features::Image { c, .. } => c as f64,
                _ => width,
            };
            Cost {
                params: 4.0 * features,
                acts: 3.0 * width,
                grads: 0.0,
                scratch: 0.0,
            }
        }
        // the output, in training also its gradient; per thread one image's patches
        // (or their gradient) and their bf16 packing, half as many words (counted in
        // f32 too; a narrow product's packing, padded to whole panels, may take a few
        // words more: both are small beside `OVERHEAD`)
        LayerSpec::Conv { kernel, .. } => {
            let (c_in, pixels) = match (input, out) {
                (Features::Image { c, .. }, Features::Image { h, w, .. }) => {
                    (c as f64, h as f64 * w as f64)
                }
                _ => (width, 1.0),
            };
            let patch = c_in * (*kernel as f64).powi(2);
            let c_out = o / pixels;
            Cost {
                params: (patch + 1.0) * c_out,
                acts: o,
                grads: o,
                scratch: 1.5 * pixels * patch,
            }
        }
        LayerSpec::Maxpool { .. } | LayerSpec::Avgpool { .. } => Cost {
            params: 0.0,
            acts: 3.0 * o,
            grads: 0.0,
            scratch: 0.0,
        },
        LayerSpec::Rnn { .. } | LayerSpec::Lstm { .. } | LayerSpec::Gru { .. } => {
            let gates = match spec {
                LayerSpec::Lstm { .. } => 4.0,
                LayerSpec::Gru { .. } => 3.0,
                _ => 1.0,
            };
            let (t, f) = match input {
                Features::Sequence { t, f } => (t as f64, f as f64),
                Features::Image { h, w, .. } => (h as f64, w as f64),
                Features::Vector(n) => (1.0, n as f64),
            };
            Cost {
                params: gates * o * (f + o + 2.0),
                // every step's input, projected and activated gates and states; in
                // training also their gradients
                acts: t * (f + 2.0 * gates * o + 3.0 * o) + 2.0 * o,
                grads: t * (f + gates * o + 2.0 * o),
                scratch: 0.0,
            }
        }
        LayerSpec::Residual { layers } => {
            let (c, _) = list(layers, input, &format!("{path}.layers"))?;
            let proj = if o != width { width * o } else { 0.0 };
            c.add(Cost {
                params: proj,
                acts: 2.0 * width,
                grads: 0.0,
                scratch: 0.0,
            })
        }
        LayerSpec::Branch { branches, .. } => {
            let mut total = Cost::default();
            for (k, b) in branches.iter().enumerate() {
                total = total.add(list(b, input, &format!("{path}.branches[{k}]"))?.0);
            }
            total.add(Cost {
                params: 0.0,
                acts: o + width,
                grads: 0.0,
                scratch: 0.0,
            })
        }
    };
    Ok((cost, out))
}

/// Parameters and summed activation widths of the net `cfg` builds for `in_dim`
/// inputs and `classes` outputs.
fn net_cost(cfg: &ModelConfig, input: Features, classes: usize) -> Result<Cost> {
    let mut cost = Cost::default();
    let mut width = size(input);
    if cfg.layers.is_empty() {
        for &h in &cfg.hidden {
            let h = h as f64;
            let unit = match cfg.activation {
                HiddenUnit::Act(_) => Cost {
                    params: (width + 1.0) * h,
                    acts: 3.0 * h,
                    grads: 0.0,
                    scratch: 0.0,
                },
                HiddenUnit::Maxout(k) => {
                    let k = k as f64;
                    Cost {
                        params: (width + 1.0) * h * k,
                        acts: h + 2.0 * h * k,
                        grads: 0.0,
                        scratch: 0.0,
                    }
                }
            };
            cost = cost.add(unit);
            if cfg.batch_norm {
                cost = cost.add(Cost {
                    params: 4.0 * h,
                    acts: 2.0 * h,
                    grads: 0.0,
                    scratch: 0.0,
                });
            }
            if cfg.keep_prob < 1.0 {
                cost = cost.add(Cost {
                    params: 0.0,
                    acts: 2.0 * h,
                    grads: 0.0,
                    scratch: 0.0,
                });
            }
            width = h;
        }
    } else {
        let mut shape = input;
        for (i, spec) in cfg.layers.iter().enumerate() {
            let (c, s) = spec_cost(spec, shape, &format!("model.layers[{i}]"))?;
            cost = cost.add(c);
            shape = s;
        }
        width = size(shape);
    }
    let classes = classes as f64;
    Ok(cost.add(Cost {
        params: (width + 1.0) * classes,
        acts: classes,
        grads: 0.0,
        scratch: 0.0,
    }))
}

/// Bytes a model of `cfg` takes to hold and to evaluate `rows` examples at once on
/// `threads` threads: parameters and their gradients, each layer's output and its
/// gradient, each thread's buffers. Errors when a layer of the list cannot take what
/// the one before gives.
pub fn model_bytes(
    cfg: &ModelConfig,
    input: impl Into<Features>,
    classes: usize,
    rows: usize,
    threads: usize,
) -> Result<f64> {
    let input = input.into();
    let c = net_cost(cfg, input, classes)?;
    // the input batch and its copies (sparse lists, a transposed view), the
    // evaluation's and the products' scratch, the layers' buffers on each thread
    let threads = threads.max(1) as f64;
    let fixed = F32 * (2.0 * size(input) * rows as f64 + c.scratch * threads) + OVERHEAD;
    Ok(F32 * (2.0 * c.params + c.acts * rows as f64) + fixed)
}

/// Bytes a training run of `cfg` on `threads` threads takes: the model at the batch
/// size (or at `eval_rows`, the evaluation batch, if larger), plus the optimiser's two
/// moments per parameter (Adam's; fewer for the others).
pub fn training_bytes(
    cfg: &ModelConfig,
    input: impl Into<Features>,
    classes: usize,
    batch: usize,
    eval_rows: usize,
    threads: usize,
) -> Result<f64> {
    let input = input.into();
    let c = net_cost(cfg, input, classes)?;
    Ok(
        model_bytes(cfg, input, classes, batch.max(eval_rows), threads)?
            + F32 * (2.0 * c.params + c.grads * batch as f64),
    )
}

/// Bytes early stopping's `restore_best` holds besides: the values (parameters and
/// batch norm's statistics) of the best epoch so far, kept from that epoch on. 0
/// without it.
pub fn snapshot_bytes(
    cfg: &crate::config::TrainConfig,
    input: impl Into<Features>,
    classes: usize,
) -> Result<f64> {
    if !cfg.early_stop.is_some_and(|e| e.restore_best) {
        return Ok(0.0);
    }
    Ok(F32 * net_cost(&cfg.model, input.into(), classes)?.params)
}

/// Bytes a training run of `cfg` takes on `threads` threads, everything counted:
/// `training_bytes` at the run's batch and evaluation batch, plus `restore_best`'s
/// snapshot (what `Trainer::new` checks before it allocates).
pub fn run_bytes(
    cfg: &crate::config::TrainConfig,
    input: impl Into<Features>,
    classes: usize,
    threads: usize,
) -> Result<f64> {
    let input = input.into();
    Ok(training_bytes(
        &cfg.model,
        input,
        classes,
        cfg.batch,
        crate::model::EVAL_BATCH,
        threads,
    )? + snapshot_bytes(cfg, input, classes)?)
}

/// Bytes an ensemble of `members` runs of `cfg` takes when `at_once` of them train at
/// the same time on `threads` threads each: those hold `run_bytes`, the finished ones
/// only their values (released as each finishes) and their `restore_best` snapshot.
/// `at_once` counts at most `members`; no members take nothing.
pub fn ensemble_bytes(
    cfg: &crate::config::TrainConfig,
    input: impl Into<Features>,
    classes: usize,
    members: usize,
    at_once: usize,
    threads: usize,
) -> Result<f64> {
    if members == 0 {
        return Ok(0.0);
    }
    let input = input.into();
    let at_once = at_once.clamp(1, members);
    let training = run_bytes(cfg, input, classes, threads)?;
    let resting = resting_bytes(&cfg.model, input, classes)? + snapshot_bytes(cfg, input, classes)?;
    Ok(at_once as f64 * training + members.saturating_sub(at_once) as f64 * resting)
}

/// Bytes a trained model of `cfg` keeps once its buffers are released
/// (`Trainer::release_buffers`): its parameters, their gradients and the optimiser's
/// two moments.
pub fn resting_bytes(cfg: &ModelConfig, input: impl Into<Features>, classes: usize) -> Result<f64> {
    Ok(F32 * 4.0 * net_cost(cfg, input.into(), classes)?.params + OVERHEAD)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TrainConfig;
    use crate::layers::Layer;
    use crate::model::Model;

    /// A finished member at rest holds its values (weights, gradients, two moments) and
    /// less than it took to train.
    #[test]
    fn a_resting_model_is_its_values_and_less_than_a_training_one() {
        for preset in ["xavier", "cnn-best", "lstm"] {
            let cfg = TrainConfig::preset(preset).unwrap().model;
            let input = Features::Image { c: 1, h: 28, w: 28 };
            let mut m = Model::build(&cfg, input, 10, &mut crate::rng::Rng::new(1)).unwrap();
            let params = m.param_count() as f64;
            let resting = resting_bytes(&cfg, input, 10).unwrap();
            let training = training_bytes(&cfg, input, 10, 100, 1000, 2).unwrap();
            // weights, gradients and two moments (batch norm's statistics counted with
            // its parameters: within 1%)
            let values = resting - OVERHEAD;
            assert!(
                (values / (16.0 * params) - 1.0).abs() < 0.01,
                "{preset}: {values} for {params}"
            );
            assert!(resting < training, "{preset}: {resting} against {training}");
        }
    }

    /// `restore_best`'s snapshot is counted as what `Snapshot::take` keeps (within 1%:
    /// batch norm's statistics are counted with the parameters), and only with it.
    #[test]
    fn restore_best_counts_its_snapshot() {
        let input = Features::Image { c: 1, h: 28, w: 28 };
        for preset in ["xavier", "cnn-best"] {
            let mut cfg = TrainConfig::preset(preset).unwrap();
            assert_eq!(snapshot_bytes(&cfg, input, 10).unwrap(), 0.0);
            cfg.early_stop = Some(crate::train::early_stop::EarlyStop {
                patience: 2,
                restore_best: true,
            });
            let mut m = Model::build(&cfg.model, input, 10, &mut crate::rng::Rng::new(1)).unwrap();
            let snap = crate::train::early_stop::Snapshot::take(&mut m.net, 1);
            let held = 4.0 * snap.values.iter().map(Vec::len).sum::<usize>() as f64;
            let counted = snapshot_bytes(&cfg, input, 10).unwrap();
            assert!(
                (counted / held - 1.0).abs() < 0.01,
                "{preset}: {counted} for {held}"
            );
            // what a run and an ensemble check before they allocate include it
            let without = TrainConfig {
                early_stop: None,
                ..cfg.clone()
            };
            let run = run_bytes(&cfg, input, 10, 2).unwrap();
            assert_eq!(run, run_bytes(&without, input, 10, 2).unwrap() + counted);
            let ens =
                |c: &TrainConfig, at_once| ensemble_bytes(c, input, 10, 5, at_once, 1).unwrap();
            // two training at once and three at rest, each with its snapshot
            let resting = resting_bytes(&cfg.model, input, 10).unwrap() + counted;
            let one = run_bytes(&cfg, input, 10, 1).unwrap();
            assert_eq!(ens(&cfg, 2), 2.0 * one + 3.0 * resting);
            assert!((ens(&cfg, 2) - ens(&without, 2) - 5.0 * counted).abs() < 1.0);
            // at most all five at once; none take nothing
            assert_eq!(ens(&cfg, 9), 5.0 * one);
            assert_eq!(ensemble_bytes(&cfg, input, 10, 0, 2, 1).unwrap(), 0.0);
        }
    }

    /// The estimate counts the parameters exactly for the lab nets, maxout and blocks.
    #[test]
    fn parameters_are_counted_as_the_model_has_them() {
        let mut cfgs: Vec<ModelConfig> = ["xavier", "dropout", "deep-bn"]
            .iter()
            .map(|p| TrainConfig::preset(p).unwrap().model)
            .collect();
        let mut maxout = cfgs[0].clone();
        maxout.activation = HiddenUnit::Maxout(3);
        cfgs.push(maxout);
        let blocks = TrainConfig::from_toml(
            r#"
[model]
[[model.layers]]
type = "dense"
units = 30
[[model.layers]]
type = "residual"
layers = [{ type = "dense", units = 20 }, { type = "activation", name = "relu" }]
[[model.layers]]
type = "branch"
merge = "concat"
branches = [[{ type = "dense", units = 7 }], [{ type = "maxout", units = 5, k = 2 }]]
"#,
            "blocks.toml",
        )
        .unwrap();
        cfgs.push(blocks.model);
        for cfg in cfgs {
            let mut m = Model::build(&cfg, 784, 10, &mut crate::rng::Rng::new(1)).unwrap();
            let mut params = 0usize;
            let mut buffers = 0usize;
            m.net.visit_params(&mut |p| params += p.value.len());
            m.net.visit_buffers(&mut |_, v| buffers += v.len());
            // batch-norm buffers (running statistics) are counted with its parameters
            assert_eq!(
                net_cost(&cfg, Features::Vector(784), 10).unwrap().params as usize,
                params + buffers,
                "{cfg:?}"
            );
        }
    }

    #[test]
    fn absurd_sizes_do_not_overflow_and_are_refused() {
        let mut cfg = TrainConfig::preset("xavier").unwrap().model;
        cfg.hidden = vec![usize::MAX];
        let need = training_bytes(&cfg, 784, 10, 100, 1000, 1).unwrap();
        assert!(need > 1e20);
        if crate::memory::available_bytes().is_some() {
            let e = crate::memory::check_fits("training this net", need, "use fewer units")
                .unwrap_err();
            let e = e.to_string();
            assert!(
                e.contains("training this net") && e.contains("available"),
                "{e}"
            );
        }
        assert!(crate::memory::check_fits("a small thing", 1000.0, "").is_ok());
    }
}
