//! What a net and its training take in memory, estimated from a config's shapes
//! before anything is built (see `memory` for the check against the machine).

use crate::config::{HiddenUnit, LayerSpec, ModelConfig};

/// Bytes of one `f32`.
const F32: f64 = 4.0;

/// Parameters and the largest per-example activation (in floats) of a layer list.
#[derive(Clone, Copy, Debug, Default)]
struct Cost {
    params: f64,
    /// Sum over layers of each output's width (activations and their gradients are
    /// kept for every layer).
    acts: f64,
}

impl Cost {
    fn add(self, o: Cost) -> Cost {
        Cost {
            params: self.params + o.params,
            acts: self.acts + o.acts,
        }
    }
}

/// The cost of `spec` on an input of `width` features, and its output width.
fn spec_cost(spec: &LayerSpec, width: f64) -> (Cost, f64) {
    let list = |specs: &[LayerSpec], w: f64| {
        specs.iter().fold((Cost::default(), w), |(c, w), s| {
            let (d, w) = spec_cost(s, w);
            (c.add(d), w)
        })
    };
    match spec {
        LayerSpec::Dense { units, .. } => {
            let u = *units as f64;
            (
                Cost {
                    params: (width + 1.0) * u,
                    acts: u,
                },
                u,
            )
        }
        LayerSpec::Maxout { units, k } => {
            let (u, k) = (*units as f64, *k as f64);
            // the k pieces' outputs and their gradients are kept too
            (
                Cost {
                    params: (width + 1.0) * u * k,
                    acts: u + 2.0 * u * k,
                },
                u,
            )
        }
        LayerSpec::Activation { .. } | LayerSpec::Dropout { .. } => (
            Cost {
                params: 0.0,
                acts: 2.0 * width,
            },
            width,
        ),
        LayerSpec::Batchnorm => (
            Cost {
                params: 4.0 * width,
                acts: 2.0 * width,
            },
            width,
        ),
        LayerSpec::Residual { layers } => {
            let (c, out) = list(layers, width);
            let proj = if out != width { width * out } else { 0.0 };
            (
                c.add(Cost {
                    params: proj,
                    acts: 2.0 * width,
                }),
                out,
            )
        }
        LayerSpec::Branch { branches, .. } => {
            let mut total = Cost::default();
            let mut out = 0.0f64;
            for b in branches {
                let (c, o) = list(b, width);
                total = total.add(c);
                out += o;
            }
            (
                total.add(Cost {
                    params: 0.0,
                    acts: out + width,
                }),
                out,
            )
        }
    }
}

/// Parameters and summed activation widths of the net `cfg` builds for `in_dim`
/// inputs and `classes` outputs.
fn net_cost(cfg: &ModelConfig, in_dim: usize, classes: usize) -> Cost {
    let mut cost = Cost::default();
    let mut width = in_dim as f64;
    if cfg.layers.is_empty() {
        for &h in &cfg.hidden {
            let h = h as f64;
            let unit = match cfg.activation {
                HiddenUnit::Act(_) => Cost {
                    params: (width + 1.0) * h,
                    acts: 3.0 * h,
                },
                HiddenUnit::Maxout(k) => {
                    let k = k as f64;
                    Cost {
                        params: (width + 1.0) * h * k,
                        acts: h + 2.0 * h * k,
                    }
                }
            };
            cost = cost.add(unit);
            if cfg.batch_norm {
                cost = cost.add(Cost {
                    params: 4.0 * h,
                    acts: 2.0 * h,
                });
            }
            if cfg.keep_prob < 1.0 {
                cost = cost.add(Cost {
                    params: 0.0,
                    acts: 2.0 * h,
                });
            }
            width = h;
        }
    } else {
        for spec in &cfg.layers {
            let (c, w) = spec_cost(spec, width);
            cost = cost.add(c);
            width = w;
        }
    }
    let classes = classes as f64;
    cost.add(Cost {
        params: (width + 1.0) * classes,
        acts: classes,
    })
}

/// Bytes a model of `cfg` takes to hold and to evaluate `rows` examples at once:
/// parameters and their gradients, each layer's output and its gradient.
pub fn model_bytes(cfg: &ModelConfig, in_dim: usize, classes: usize, rows: usize) -> f64 {
    let c = net_cost(cfg, in_dim, classes);
    F32 * (2.0 * c.params + 2.0 * c.acts * rows as f64)
}

/// Bytes a training run of `cfg` takes: the model at the batch size (or at
/// `eval_rows`, the evaluation batch, if larger), plus the optimiser's two moments per
/// parameter (Adam's; fewer for the others).
pub fn training_bytes(
    cfg: &ModelConfig,
    in_dim: usize,
    classes: usize,
    batch: usize,
    eval_rows: usize,
) -> f64 {
    let c = net_cost(cfg, in_dim, classes);
    model_bytes(cfg, in_dim, classes, batch.max(eval_rows)) + F32 * 2.0 * c.params
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TrainConfig;
    use crate::layers::Layer;
    use crate::model::Model;

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
                net_cost(&cfg, 784, 10).params as usize,
                params + buffers,
                "{cfg:?}"
            );
        }
    }

    #[test]
    fn absurd_sizes_do_not_overflow_and_are_refused() {
        let mut cfg = TrainConfig::preset("xavier").unwrap().model;
        cfg.hidden = vec![usize::MAX];
        let need = training_bytes(&cfg, 784, 10, 100, 1000);
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
