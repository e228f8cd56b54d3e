//! Experiments that check the lecture's claims on real data, one function each, each
//! with a quick form (small, for tests) and a full form. Each returns a table; the
//! binary prints it and tests assert the direction of each effect.

use crate::config::{HiddenUnit, ModelConfig, TrainConfig};
use crate::data::Dataset;
use crate::ensemble::{argmax_rows, average};
use crate::error::Result;
use crate::init::Init;
use crate::layers::{Activation, Layer};
use crate::loss::softmax_cross_entropy;
use crate::optim::{OptimConfig, OptimizerKind};
use crate::rng::Rng;
use crate::runtime::Runtime;
use crate::tensor::Matrix;
use crate::train::{EpochStats, RunData, Trainer};

/// One row of a study's table: a label and named numbers.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Row {
    pub label: String,
    pub values: Vec<(String, f64)>,
    /// Per-epoch or per-layer series behind the row (cost per epoch, gradient norm per
    /// layer, ...), for plots and JSON.
    pub series: Vec<(String, Vec<f64>)>,
}

impl Row {
    /// The value named `key`.
    pub fn get(&self, key: &str) -> Option<f64> {
        self.values.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }
}

/// A study's result.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Table {
    pub title: String,
    pub setup: String,
    pub rows: Vec<Row>,
    /// One line: what this run says about the lecture's claim.
    pub conclusion: String,
}

impl Table {
    /// The table as aligned text.
    pub fn render(&self) -> String {
        let mut s = format!("{}\n{}\n\n", self.title, self.setup);
        let Some(first) = self.rows.first() else {
            return s;
        };
        s += &format!("{:<28}", "");
        for (k, _) in &first.values {
            s += &format!("{k:>14}");
        }
        s.push('\n');
        for r in &self.rows {
            s += &format!("{:<28}", r.label);
            for (_, v) in &r.values {
                s += &format!("{:>14}", number(*v));
            }
            s.push('\n');
        }
        s + &format!("\n{}\n", self.conclusion)
    }

    /// The row labelled `label`.
    pub fn row(&self, label: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.label == label)
    }
}

/// A table's number as printed: four decimals, or three significant digits in
/// scientific notation when smaller than 0.001.
pub fn number(v: f64) -> String {
    if v.abs() >= 1e-3 || v == 0.0 {
        format!("{v:.4}")
    } else {
        format!("{v:.3e}")
    }
}

/// The row with the largest (or, `max` false, smallest) `key`, with that value.
fn extreme<'a>(rows: &'a [Row], key: &str, max: bool) -> Option<(&'a Row, f64)> {
    let mut best: Option<(&Row, f64)> = None;
    for r in rows {
        if let Some(v) = r.get(key)
            && best.is_none_or(|(_, b)| if max { v > b } else { v < b })
        {
            best = Some((r, v));
        }
    }
    best
}

fn verdict(holds: bool) -> &'static str {
    if holds {
        "the lecture's claim holds in this run"
    } else {
        "this run does not show the lecture's claim"
    }
}

/// The data a study trains and tests on.
pub struct StudyData<'a> {
    pub train: &'a Dataset,
    pub test: &'a Dataset,
}

/// Study settings shared by all experiments.
#[derive(Clone, Copy, Debug)]
pub struct StudyOptions {
    pub quick: bool,
    pub seed: u64,
    /// How the experiments use the machine.
    pub rt: Runtime,
}

fn config(
    o: &StudyOptions,
    model: ModelConfig,
    optimizer: OptimConfig,
    epochs: usize,
) -> TrainConfig {
    TrainConfig {
        model,
        optimizer,
        epochs,
        seed: o.seed,
        validation: 0,
        ..TrainConfig::default()
    }
}

fn adam() -> OptimConfig {
    OptimConfig::default()
}

fn sgd(lr: f32) -> OptimConfig {
    OptimConfig {
        kind: OptimizerKind::Sgd,
        lr,
        ..OptimConfig::default()
    }
}

/// Trains and returns the trainer, its per-epoch history, and the test accuracy.
fn train(
    o: &StudyOptions,
    cfg: &TrainConfig,
    data: &StudyData<'_>,
    with_test: bool,
) -> Result<(Trainer, f64)> {
    let mut t = Trainer::new(cfg, data.train.shape(), data.train.classes(), o.rt)?;
    t.fit(
        &RunData {
            train: data.train,
            val: None,
            test: with_test.then_some(data.test),
        },
        None,
        &mut |_: &EpochStats| {},
    )?;
    let acc = t.model.evaluate(data.test, &o.rt).accuracy as f64;
    Ok((t, acc))
}

/// L2 norm of each weight matrix's gradient on one batch of `data`, from the first
/// layer to the last (no update is made).
pub fn weight_gradient_norms(trainer: &mut Trainer, data: &Dataset, batch: usize) -> Vec<f64> {
    let n = batch.min(data.len());
    let x = Matrix::from_vec(
        n,
        data.features(),
        data.images.data[..n * data.features()].to_vec(),
    );
    let mut rng = Rng::new(0);
    let rt = trainer.rt;
    let mut pass = crate::layers::Pass::new(crate::layers::Mode::Train, &mut rng, &rt);
    let logits = trainer.model.net.run(&x, &mut pass);
    let mut d = Matrix::zeros(0, logits.cols);
    softmax_cross_entropy(logits, &data.labels[..n], &mut d);
    trainer.model.net.backprop(&x, &d, None, &rt);
    let mut norms = Vec::new();
    trainer.model.net.visit_params(&mut |p| {
        if p.shape.rank == 2 {
            norms.push(
                p.grad
                    .iter()
                    .map(|&g| (g as f64) * (g as f64))
                    .sum::<f64>()
                    .sqrt(),
            );
        }
    });
    norms
}

fn history_series(t: &Trainer) -> Vec<(String, Vec<f64>)> {
    vec![
        (
            "cost".into(),
            t.history.iter().map(|h| h.cost as f64).collect(),
        ),
        (
            "train_acc".into(),
            t.history.iter().map(|h| h.train_acc as f64).collect(),
        ),
        (
            "test_acc".into(),
            t.history
                .iter()
                .filter_map(|h| h.test_acc.map(|a| a as f64))
                .collect(),
        ),
    ]
}

/// A row of test accuracy, first and last cost, with the run's curves.
fn accuracy_and_cost_row(label: &str, t: &Trainer, acc: f64) -> Row {
    Row {
        label: label.into(),
        values: vec![
            ("test acc".into(), acc),
            ("cost ep1".into(), t.history[0].cost as f64),
            (
                "cost last".into(),
                t.history.last().expect("epochs >= 1").cost as f64,
            ),
        ],
        series: history_series(t),
    }
}

/// Vanishing gradients: sigmoid, tanh and ReLU MLPs of growing depth, trained with
/// plain SGD and with Adam; gradient norm of each layer at initialisation.
pub fn depth(data: &StudyData<'_>, o: &StudyOptions) -> Result<Table> {
    let (depths, width, epochs): (&[usize], usize, usize) = if o.quick {
        (&[2, 16], 128, 2)
    } else {
        (&[2, 4, 8, 16], 256, 3)
    };
    let mut rows = Vec::new();
    for act in [Activation::Sigmoid, Activation::Tanh, Activation::Relu] {
        for &d in depths {
            // each activation with the initialiser made for it: Glorot & Bengio's for the
            // saturating ones, He et al.'s for ReLU
            let init = if act == Activation::Relu {
                Init::HeNormal
            } else {
                Init::XavierUniform
            };
            let model = ModelConfig {
                hidden: vec![width; d],
                activation: HiddenUnit::Act(act),
                init,
                bias_init: Init::Zeros,
                ..ModelConfig::default()
            };
            let (_, acc_sgd) = train(o, &config(o, model.clone(), sgd(0.1), epochs), data, false)?;
            let (_, acc_adam) = train(o, &config(o, model.clone(), adam(), epochs), data, false)?;
            // gradient norms at initialisation (a fresh, untrained net with the same seed)
            let mut fresh = Trainer::new(
                &config(o, model, sgd(0.1), epochs),
                data.train.shape(),
                data.train.classes(),
                o.rt,
            )?;
            let norms = weight_gradient_norms(&mut fresh, data.train, 100);
            let first = norms[0];
            let last = *norms.last().expect("at least one layer");
            rows.push(Row {
                label: format!("{act} depth {d}"),
                values: vec![
                    ("test acc SGD".into(), acc_sgd),
                    ("test acc Adam".into(), acc_adam),
                    ("|dW| first".into(), first),
                    ("|dW| last".into(), last),
                    ("first/last".into(), first / last),
                ],
                series: vec![("grad_norm_per_layer".into(), norms)],
            });
        }
    }
    Ok(Table {
        title:
            "depth: vanishing gradients (lecture: deep sigmoid nets do not train; ReLU fixes it)"
                .into(),
        setup: format!(
            "width {width}, depths {depths:?}, Xavier-uniform init (He-normal for ReLU), zero biases, {epochs} epoch(s) on {} images; SGD lr 0.1 and Adam lr 0.001; \
             gradient norms of each weight matrix on the first batch of 100 at initialisation",
            data.train.len()
        ),
        conclusion: depth_conclusion(&rows, depths),
        rows,
    })
}

fn depth_conclusion(rows: &[Row], depths: &[usize]) -> String {
    let d = *depths.last().expect("depths");
    let get = |act: &str, key: &str| {
        rows.iter()
            .find(|r| r.label == format!("{act} depth {d}"))
            .and_then(|r| r.get(key))
            .unwrap_or(f64::NAN)
    };
    let (sig, relu) = (get("sigmoid", "test acc SGD"), get("relu", "test acc SGD"));
    format!(
        "Conclusion: at depth {d} with SGD, sigmoid reached {sig:.4} and ReLU {relu:.4}; \
         sigmoid's first-layer gradient is {:.2e} times its last layer's, ReLU's {:.2e}: {}.",
        get("sigmoid", "first/last"),
        get("relu", "first/last"),
        verdict(relu > sig + 0.05)
    )
}

/// Initialisation: the same deep ReLU net from each initialiser.
pub fn init(data: &StudyData<'_>, o: &StudyOptions) -> Result<Table> {
    let (hidden, epochs, pre) = if o.quick {
        (vec![128; 3], 2, 1)
    } else {
        (vec![512; 4], 5, 3)
    };
    let inits: Vec<(&str, Init, usize)> = vec![
        ("zeros", Init::Zeros, 0),
        ("normal:1", Init::Normal(1.0), 0),
        ("normal:0.01", Init::Normal(0.01), 0),
        ("xavier-uniform", Init::XavierUniform, 0),
        ("he-normal", Init::HeNormal, 0),
        ("rbm (DBN pre-training)", Init::XavierUniform, pre),
    ];
    let mut rows = Vec::new();
    for (label, init, pretrain) in inits {
        let model = ModelConfig {
            hidden: hidden.clone(),
            activation: HiddenUnit::Act(Activation::Relu),
            init,
            bias_init: Init::Zeros,
            pretrain_epochs: pretrain,
            ..ModelConfig::default()
        };
        let (t, acc) = train(o, &config(o, model, adam(), epochs), data, true)?;
        rows.push(accuracy_and_cost_row(label, &t, acc));
    }
    Ok(Table {
        title: "init: weight initialisation (lecture: zero init kills the signal; RBM, Xavier, He fix it)".into(),
        setup: format!("ReLU MLP {hidden:?}, zero biases, Adam lr 0.001, {epochs} epochs on {} images", data.train.len()),
        conclusion: {
            let zeros = rows[0].get("test acc").unwrap_or(f64::NAN);
            let (best, acc) = extreme(&rows, "test acc", true).expect("rows");
            format!(
                "Conclusion: zero init reached {zeros:.4}, {} {acc:.4}: {}.",
                best.label,
                verdict(acc > zeros + 0.05)
            )
        },
        rows,
    })
}

/// Activations on the same net.
pub fn activation(data: &StudyData<'_>, o: &StudyOptions) -> Result<Table> {
    let (hidden, epochs) = if o.quick {
        (vec![128; 2], 2)
    } else {
        (vec![256; 4], 5)
    };
    let units = [
        HiddenUnit::Act(Activation::Sigmoid),
        HiddenUnit::Act(Activation::Tanh),
        HiddenUnit::Act(Activation::Relu),
        HiddenUnit::Act(Activation::LeakyRelu(0.01)),
        HiddenUnit::Act(Activation::Elu(1.0)),
        HiddenUnit::Maxout(2),
    ];
    let mut rows = Vec::new();
    for unit in units {
        let model = ModelConfig {
            hidden: hidden.clone(),
            activation: unit,
            init: Init::XavierUniform,
            bias_init: Init::Zeros,
            ..ModelConfig::default()
        };
        let (t, acc) = train(o, &config(o, model, adam(), epochs), data, true)?;
        rows.push(accuracy_and_cost_row(&unit.to_string(), &t, acc));
    }
    Ok(Table {
        title: "activation: the same net with each activation".into(),
        setup: format!(
            "MLP {hidden:?}, Xavier-uniform, zero biases, Adam lr 0.001, {epochs} epochs on {} images",
            data.train.len()
        ),
        conclusion: {
            let (best, hi) = extreme(&rows, "test acc", true).expect("rows");
            let (worst, lo) = extreme(&rows, "test acc", false).expect("rows");
            format!(
                "Conclusion: {} did best ({hi:.4}), {} worst ({lo:.4}), {:.2} points apart.",
                best.label,
                worst.label,
                (hi - lo) * 100.0
            )
        },
        rows,
    })
}

/// Dropout: a large net trained long on few images overfits; dropout narrows the gap
/// between training and test accuracy.
pub fn dropout(data: &StudyData<'_>, o: &StudyOptions) -> Result<Table> {
    let (n_train, hidden, epochs) = if o.quick {
        (2000, vec![256; 2], 12)
    } else {
        (10000, vec![1024; 3], 30)
    };
    let small = data
        .train
        .slice(0..n_train.min(data.train.len()), "train subset");
    let sub = StudyData {
        train: &small,
        test: data.test,
    };
    let mut rows = Vec::new();
    for keep in [1.0f32, 0.9, 0.7, 0.5] {
        let model = ModelConfig {
            hidden: hidden.clone(),
            init: Init::XavierUniform,
            bias_init: Init::Zeros,
            keep_prob: keep,
            ..ModelConfig::default()
        };
        let mut cfg = config(o, model, adam(), epochs);
        cfg.eval_train = true;
        let (t, acc) = train(o, &cfg, &sub, true)?;
        let train_acc = t.history.last().expect("epochs >= 1").train_acc as f64;
        rows.push(Row {
            label: format!("keep {keep}"),
            values: vec![
                ("train acc".into(), train_acc),
                ("test acc".into(), acc),
                ("gap".into(), train_acc - acc),
            ],
            series: history_series(&t),
        });
    }
    Ok(Table {
        title: "dropout: the overfitting gap (lecture: dropout fixes overfitting)".into(),
        setup: format!(
            "ReLU MLP {hidden:?}, Xavier, Adam lr 0.001, {epochs} epochs on the first {n_train} training images; train accuracy over the whole (sub)set in evaluation mode"
        ),
        conclusion: {
            let plain = rows[0].get("gap").unwrap_or(f64::NAN);
            let (least, gap) = extreme(&rows, "gap", false).expect("rows");
            format!(
                "Conclusion: without dropout training accuracy is {plain:.4} above test accuracy, with {} {gap:.4}: {}.",
                least.label,
                verdict(gap < plain)
            )
        },
        rows,
    })
}

/// Ensembles: test accuracy of the average of the first m members, m = 1..N.
pub fn ensemble(data: &StudyData<'_>, o: &StudyOptions) -> Result<Table> {
    let (members, hidden, epochs) = if o.quick {
        (3, vec![128; 2], 2)
    } else {
        (6, vec![512; 4], 15)
    };
    let model = ModelConfig {
        hidden: hidden.clone(),
        init: Init::XavierUniform,
        bias_init: Init::Normal(1.0),
        keep_prob: 0.7,
        ..ModelConfig::default()
    };
    let cfg = config(o, model, adam(), epochs);
    let run = RunData {
        train: data.train,
        val: None,
        test: None,
    };
    let parallel = o.rt.threads != 1;
    // each member's test probabilities as it finishes, before it lets go of its
    // buffers (computed afterwards, every member would grow them again at once)
    let finished = std::sync::Mutex::new(vec![Matrix::default(); members]);
    crate::ensemble::train_members(
        &cfg,
        members,
        &run,
        &o.rt,
        parallel,
        crate::ensemble::Hooks {
            stop: None,
            epoch: &|_, _| {},
            done: &|i, t| {
                let p = t.model.predict_proba(data.test, &t.rt);
                finished.lock().expect("no member panicked")[i] = p;
                Ok(())
            },
        },
    )?;
    let probs = finished.into_inner().expect("no member panicked");
    let acc = |p: &[u8]| {
        p.iter()
            .zip(&data.test.labels)
            .filter(|(a, b)| a == b)
            .count() as f64
            / data.test.len() as f64
    };
    let mut rows = Vec::new();
    for m in 1..=members {
        let member = acc(&argmax_rows(&probs[m - 1]));
        let ens = acc(&argmax_rows(&average(&probs[..m])));
        rows.push(Row {
            label: format!("{m} member(s)"),
            values: vec![
                ("member m acc".into(), member),
                ("ensemble acc".into(), ens),
            ],
            series: vec![],
        });
    }
    Ok(Table {
        title: "ensemble: accuracy against the number of members (lecture: combine several models)"
            .into(),
        setup: format!(
            "dropout-lab style MLP {hidden:?} keep 0.7, Adam, {epochs} epochs each on {} images, seeds {}..{}, probabilities averaged",
            data.train.len(),
            o.seed,
            o.seed + members as u64 - 1
        ),
        conclusion: {
            let one = rows[0].get("ensemble acc").unwrap_or(f64::NAN);
            let all = rows
                .last()
                .and_then(|r| r.get("ensemble acc"))
                .unwrap_or(f64::NAN);
            format!(
                "Conclusion: one member reached {one:.4}, all {members} together {all:.4} ({:+.2} points): {}.",
                (all - one) * 100.0,
                verdict(all > one)
            )
        },
        rows,
    })
}
