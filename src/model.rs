//! A classifier: a `Sequential` network built from a `ModelConfig`, with the fused
//! softmax cross-entropy loss, a training step and batched evaluation.

use crate::config::{HiddenUnit, LayerSpec, ModelConfig, window};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::layers::{
    ActivationLayer, AvgPool2d, BatchNorm, Branch, Conv2d, Dense, Dropout, Features, Flatten, Gru,
    Layer, Lstm, MaxPool2d, Maxout, Mode, Pass, Residual, Rnn, Sequential,
};
use crate::loss::{softmax, softmax_cross_entropy};
use crate::optim::Optimizer;
use crate::rng::Rng;
use crate::runtime::Runtime;
use crate::tensor::{Matrix, for_each_piece};

/// Builds one layer (or block) of an explicit layer list for examples of shape
/// `input`; `path` names it in errors. The spec's fields were checked by
/// `ModelConfig::validate`; whether it can take `input` is checked here.
fn build_layer(
    spec: &LayerSpec,
    input: Features,
    path: &str,
    cfg: &ModelConfig,
    rng: &mut Rng,
) -> Result<Box<dyn Layer>> {
    spec.out_shape(input, path)?;
    let list = |specs: &[LayerSpec], input: Features, p: &str, rng: &mut Rng| {
        let mut s = Sequential::new(input);
        for (i, spec) in specs.iter().enumerate() {
            let l = build_layer(spec, s.output(), &format!("{p}[{i}]"), cfg, rng)?;
            s.push(l)?;
        }
        Ok::<_, Error>(s)
    };
    let width = input.size();
    let seq = |input: Features| match input {
        Features::Sequence { t, f } => (t, f),
        Features::Image { h, w, .. } => (h, w),
        Features::Vector(n) => (1, n),
    };
    Ok(match spec {
        LayerSpec::Dense {
            units,
            init,
            bias_init,
        } => Box::new(Dense::new(
            width,
            *units,
            init.unwrap_or(cfg.init),
            bias_init.unwrap_or(cfg.bias_init),
            rng,
        )),
        LayerSpec::Activation { name } => Box::new(ActivationLayer::new(*name, input)),
        LayerSpec::Maxout { units, k } => {
            Box::new(Maxout::new(width, *units, *k, cfg.init, cfg.bias_init, rng))
        }
        LayerSpec::Dropout { keep } => Box::new(Dropout::new(*keep, input)),
        LayerSpec::Batchnorm => Box::new(BatchNorm::new(input)),
        LayerSpec::Residual { layers } => {
            let f = list(layers, input, &format!("{path}.layers"), rng)?;
            Box::new(Residual::new(f, rng))
        }
        LayerSpec::Branch { merge, branches } => {
            let bs = branches
                .iter()
                .enumerate()
                .map(|(k, b)| list(b, input, &format!("{path}.branches[{k}]"), rng))
                .collect::<Result<_>>()?;
            Box::new(Branch::new(bs, *merge))
        }
        LayerSpec::Conv {
            channels,
            kernel,
            stride,
            padding,
            init,
            bias_init,
        } => Box::new(Conv2d::new(
            window(input, *kernel, *stride, *padding, path)?,
            *channels,
            init.unwrap_or(cfg.init),
            bias_init.unwrap_or(cfg.bias_init),
            rng,
        )),
        LayerSpec::Maxpool {
            size,
            stride,
            padding,
        } => Box::new(MaxPool2d::new(window(
            input,
            *size,
            stride.unwrap_or(*size),
            *padding,
            path,
        )?)),
        LayerSpec::Avgpool {
            size,
            stride,
            padding,
        } => Box::new(AvgPool2d::new(window(
            input,
            *size,
            stride.unwrap_or(*size),
            *padding,
            path,
        )?)),
        LayerSpec::Flatten => Box::new(Flatten::new(input)),
        LayerSpec::Rnn { units, init } => {
            let (t, f) = seq(input);
            Box::new(Rnn::new(t, f, *units, *init, rng))
        }
        LayerSpec::Lstm { units, init } => {
            let (t, f) = seq(input);
            Box::new(Lstm::new(t, f, *units, *init, rng))
        }
        LayerSpec::Gru { units, init } => {
            let (t, f) = seq(input);
            Box::new(Gru::new(t, f, *units, *init, rng))
        }
    })
}

/// Examples per batch in evaluation: the loss is averaged over each batch, then over
/// the batches.
pub const EVAL_BATCH: usize = 1000;

/// A network that maps `(batch, in_dim)` inputs to `(batch, classes)` logits.
pub struct Model {
    pub net: Sequential,
    pub config: ModelConfig,
    /// The shape of one example (an image `(1, h, w)` for the datasets here).
    pub input: Features,
    /// Elements per example: `input.size()`.
    pub in_dim: usize,
    pub classes: usize,
    /// (batch, classes): gradient of the loss w.r.t. the logits.
    dlogits: Matrix,
    /// (EVAL_BATCH, in_dim): evaluation input buffer.
    eval_x: Matrix,
}

/// Accuracy and loss of a model on a dataset.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Evaluation {
    pub accuracy: f32,
    pub loss: f32,
    /// Predicted class of each example.
    #[serde(skip)]
    pub predictions: Vec<u8>,
}

impl Model {
    /// Builds the network of `cfg` for examples of shape `input` (an image `(1, h, w)`,
    /// or a vector of features) and `classes` outputs, drawing every initial parameter
    /// from `rng`, layer by layer.
    pub fn build(
        cfg: &ModelConfig,
        input: impl Into<Features>,
        classes: usize,
        rng: &mut Rng,
    ) -> Result<Model> {
        cfg.validate()?;
        let input = input.into();
        let in_dim = input.size();
        if in_dim == 0 || classes < 2 {
            return Err(Error::Shape {
                op: "Model::build",
                expected: "at least 1 input feature and 2 classes".into(),
                got: format!("{in_dim} features, {classes} classes"),
            });
        }
        crate::memory::check_fits(
            &format!("a net of {in_dim} inputs and {classes} classes with these layers"),
            // building takes no runtime: a default one's threads
            crate::footprint::model_bytes(
                cfg,
                input,
                classes,
                EVAL_BATCH,
                crate::runtime::cores(),
            )?,
            "use fewer or narrower layers",
        )?;
        Self::assemble(cfg, input, classes, rng)
    }

    /// [`Model::build`] without its checks of the config and of the machine's memory:
    /// for a copy of a model that exists (its config was checked when it was built),
    /// which must not be refused because memory is short at the moment.
    pub(crate) fn assemble(
        cfg: &ModelConfig,
        input: Features,
        classes: usize,
        rng: &mut Rng,
    ) -> Result<Model> {
        let in_dim = input.size();
        let mut net = Sequential::new(input);
        let mut width = in_dim;
        if cfg.layers.is_empty() {
            for &h in &cfg.hidden {
                match cfg.activation {
                    HiddenUnit::Act(act) => {
                        net.push(Box::new(Dense::new(width, h, cfg.init, cfg.bias_init, rng)))?;
                        if cfg.batch_norm {
                            net.push(Box::new(BatchNorm::new(h)))?;
                        }
                        net.push(Box::new(ActivationLayer::new(act, h)))?;
                    }
                    HiddenUnit::Maxout(k) => {
                        net.push(Box::new(Maxout::new(
                            width,
                            h,
                            k,
                            cfg.init,
                            cfg.bias_init,
                            rng,
                        )))?;
                        if cfg.batch_norm {
                            net.push(Box::new(BatchNorm::new(h)))?;
                        }
                    }
                }
                if cfg.keep_prob < 1.0 {
                    net.push(Box::new(Dropout::new(cfg.keep_prob, h)))?;
                }
                width = h;
            }
        } else {
            for (i, spec) in cfg.layers.iter().enumerate() {
                let path = format!("model.layers[{i}]");
                let layer = build_layer(spec, net.output(), &path, cfg, rng)?;
                width = layer.out_dim();
                net.push(layer)?;
            }
        }
        net.push(Box::new(Dense::new(
            width,
            classes,
            cfg.init,
            cfg.bias_init,
            rng,
        )))?;
        Ok(Model {
            net,
            config: cfg.clone(),
            input,
            in_dim,
            classes,
            dlogits: Matrix::zeros(0, classes),
            eval_x: Matrix::zeros(0, in_dim),
        })
    }

    /// Logits for a batch.
    ///
    /// # Shapes
    /// `x: (batch, in_dim)` -> `(batch, classes)`.
    pub fn forward(&mut self, x: &Matrix, mode: Mode, rng: &mut Rng, rt: &Runtime) -> &Matrix {
        let _fp = rt.enter();
        self.net.run(x, &mut Pass::new(mode, rng, rt))
    }

    /// One optimisation step on a batch: forward (training mode), loss, backward,
    /// update. Returns the batch's mean loss and how many it classified correctly.
    pub fn train_step(
        &mut self,
        x: &Matrix,
        labels: &[u8],
        opt: &mut Optimizer,
        lr: f32,
        rng: &mut Rng,
        rt: &Runtime,
    ) -> (f32, usize) {
        let _fp = rt.enter();
        let logits = self.net.run(x, &mut Pass::new(Mode::Train, rng, rt));
        let correct = (0..logits.rows)
            .filter(|&r| logits.argmax_row(r) == labels[r] as usize)
            .count();
        let loss = softmax_cross_entropy(logits, labels, &mut self.dlogits);
        self.net.backprop(x, &self.dlogits, None, rt);
        opt.step(&mut self.net, lr, rt);
        (loss, correct)
    }

    /// Accuracy, mean loss and predictions on a whole dataset (evaluation mode).
    pub fn evaluate(&mut self, data: &Dataset, rt: &Runtime) -> Evaluation {
        let mut correct = 0;
        let mut loss = 0f64;
        let mut predictions = Vec::with_capacity(data.len());
        self.for_each_batch(data, rt, |start, logits, dlogits| {
            let n = logits.rows;
            let labels = &data.labels[start..start + n];
            loss += softmax_cross_entropy(logits, labels, dlogits) as f64 * n as f64;
            for (r, &label) in labels.iter().enumerate() {
                let p = logits.argmax_row(r);
                predictions.push(p as u8);
                correct += (p == label as usize) as usize;
            }
        });
        Evaluation {
            accuracy: correct as f32 / data.len().max(1) as f32,
            loss: (loss / data.len().max(1) as f64) as f32,
            predictions,
        }
    }

    /// Class probabilities for every example.
    ///
    /// # Shapes
    /// -> `(data.len(), classes)`.
    pub fn predict_proba(&mut self, data: &Dataset, rt: &Runtime) -> Matrix {
        let mut out = Matrix::zeros(data.len(), self.classes);
        let mut probs = Matrix::zeros(0, self.classes);
        let c = self.classes;
        self.for_each_batch(data, rt, |start, logits, _| {
            softmax(logits, &mut probs);
            out.data[start * c..(start + logits.rows) * c].copy_from_slice(&probs.data);
        });
        out
    }

    /// Runs evaluation-mode forward passes over `data` in batches of `EVAL_BATCH`,
    /// calling `f(first_index, logits, scratch)` for each.
    fn for_each_batch(
        &mut self,
        data: &Dataset,
        rt: &Runtime,
        mut f: impl FnMut(usize, &Matrix, &mut Matrix),
    ) {
        let _fp = rt.enter();
        let mut rng = Rng::new(0); // evaluation draws nothing
        let feat = data.features();
        let mut scratch = std::mem::take(&mut self.dlogits);
        let mut x = std::mem::take(&mut self.eval_x);
        let mut start = 0;
        while start < data.len() {
            let n = EVAL_BATCH.min(data.len() - start);
            let images = &data.images.data[start * feat..(start + n) * feat];
            x.reshape_for(n, feat);
            for_each_piece(rt, &mut x.data, &|at, x| {
                x.copy_from_slice(&images[at..at + x.len()])
            });
            let logits = self.net.run(&x, &mut Pass::new(Mode::Eval, &mut rng, rt));
            f(start, logits, &mut scratch);
            start += n;
        }
        self.dlogits = scratch;
        self.eval_x = x;
    }

    /// Whether every parameter is finite; otherwise the name of the first bad tensor
    /// and a bad value.
    pub fn check_finite(&mut self) -> std::result::Result<(), (String, f32)> {
        let mut bad = None;
        let mut i = 0;
        self.net.visit_params(&mut |p| {
            if bad.is_none()
                && let Some(&v) = p.value.iter().find(|v| !v.is_finite())
            {
                bad = Some((format!("parameter #{i} ({})", p.name), v));
            }
            i += 1;
        });
        bad.map_or(Ok(()), Err)
    }

    /// Number of trainable scalars.
    pub fn param_count(&mut self) -> usize {
        self.net.param_count()
    }

    /// Sets the hidden dense layers' weights and biases from a pre-trained RBM stack
    /// (RBM k's `W: (hidden, visible)` and `b_h` become hidden layer k's weight and bias).
    pub fn load_rbm_stack(&mut self, stack: &[crate::rbm::Rbm]) {
        let mut k = 0;
        let mut pending_bias = false;
        self.net.visit_params(&mut |mut p| {
            if k >= stack.len() {
                return;
            }
            if p.name.ends_with(".weight")
                && p.shape.rank == 2
                && p.value.len() == stack[k].w.data.len()
            {
                p.set_row_major(&stack[k].w.data);
                pending_bias = true;
            } else if pending_bias
                && p.name.ends_with(".bias")
                && p.value.len() == stack[k].b_h.len()
            {
                p.value.copy_from_slice(&stack[k].b_h);
                pending_bias = false;
                k += 1;
            }
        });
    }

    /// One line per layer.
    pub fn summary(&self) -> String {
        self.net
            .layers()
            .iter()
            .map(|l| format!("  {}", l.describe()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}
