//! Convolutional and recurrent models: saved files hold PyTorch's names and shapes and
//! load back to identical logits; the LSTM and GRU match an independent computation
//! of PyTorch's equations (`scripts/recurrent_golden.py`).

mod common;

use nnlab::Runtime;
use nnlab::config::TrainConfig;
use nnlab::io::{ModelMeta, load_model, save_model};
use nnlab::layers::{Features, Gru, Layer, Lstm, Mode, Pass};
use nnlab::model::Model;
use nnlab::rng::Rng;
use nnlab::tensor::Matrix;

const IMAGE: Features = Features::Image { c: 1, h: 28, w: 28 };

fn meta(cfg: &TrainConfig) -> ModelMeta {
    ModelMeta {
        config: cfg.clone(),
        dataset: "mnist".into(),
        input_shape: (28, 28),
        class_names: (0..10).map(|c| c.to_string()).collect(),
        metrics: Default::default(),
    }
}

/// The names and shapes of a safetensors file's tensors, read by the safetensors crate.
fn tensors(path: &std::path::Path) -> Vec<(String, Vec<usize>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut out: Vec<_> = st
        .tensors()
        .into_iter()
        .map(|(n, t)| (n, t.shape().to_vec()))
        .collect();
    out.sort();
    out
}

#[test]
fn saved_cnn_and_lstm_load_to_identical_logits_under_pytorch_names() {
    type Names<'a> = &'a [(&'a str, &'a [usize])];
    let expect: [(&str, Names); 3] = [
        (
            // nn.Sequential(Conv2d, ReLU, MaxPool2d, Dropout, ..., Flatten, Linear, ...)
            "cnn",
            &[
                ("0.bias", &[32]),
                ("0.weight", &[32, 1, 3, 3]),
                ("13.bias", &[625]),
                ("13.weight", &[625, 2048]),
                ("16.bias", &[10]),
                ("16.weight", &[10, 625]),
                ("4.bias", &[64]),
                ("4.weight", &[64, 32, 3, 3]),
                ("8.bias", &[128]),
                ("8.weight", &[128, 64, 3, 3]),
            ],
        ),
        (
            "lstm",
            &[
                ("0.bias_hh_l0", &[512]),
                ("0.bias_ih_l0", &[512]),
                ("0.weight_hh_l0", &[512, 128]),
                ("0.weight_ih_l0", &[512, 28]),
                ("1.bias", &[10]),
                ("1.weight", &[10, 128]),
            ],
        ),
        (
            // the convolutions' and the classifier's weights, at the indices of
            // `scripts/torch_cnn_best.py`'s nn.Sequential (biases and batch norm's
            // tensors sit beside them; here they must round-trip)
            "cnn-best",
            &[
                ("0.weight", &[32, 1, 3, 3]),
                ("10.weight", &[64, 32, 3, 3]),
                ("13.weight", &[64, 64, 3, 3]),
                ("16.weight", &[64, 64, 5, 5]),
                ("20.weight", &[128, 64, 4, 4]),
                ("25.weight", &[10, 128]),
                ("3.weight", &[32, 32, 3, 3]),
                ("6.weight", &[32, 32, 5, 5]),
            ],
        ),
    ];
    let rt = Runtime::default();
    for (preset, names) in expect {
        let cfg = TrainConfig::preset(preset).unwrap();
        let mut m = Model::build(&cfg.model, IMAGE, 10, &mut Rng::new(3)).unwrap();
        let mut r = Rng::new(9);
        let x = Matrix::from_vec(5, 784, (0..5 * 784).map(|_| r.uniform()).collect());
        // a training step moves batch-norm statistics away from their initial values
        m.forward(&x, Mode::Train, &mut Rng::new(1), &rt);
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("m.safetensors");
        save_model(&p, &mut m, &meta(&cfg)).unwrap();
        let want: Vec<(String, Vec<usize>)> = names
            .iter()
            .map(|(n, s)| (n.to_string(), s.to_vec()))
            .collect();
        let mut have = tensors(&p);
        if preset == "cnn-best" {
            have.retain(|(_, shape)| shape.len() > 1);
        }
        assert_eq!(have, want, "{preset}");
        let mut loaded = load_model(&p).unwrap();
        assert_eq!(loaded.model.input, IMAGE);
        let a = m.forward(&x, Mode::Eval, &mut Rng::new(0), &rt).clone();
        let b = loaded
            .model
            .forward(&x, Mode::Eval, &mut Rng::new(0), &rt)
            .clone();
        assert_eq!(a, b, "{preset}");
    }
}

/// Sets a recurrent layer's four tensors as `scripts/recurrent_golden.py` does and
/// returns its last hidden states for the script's input.
fn golden_run(layer: &mut dyn Layer, t: usize, f: usize, h: usize) -> Vec<f32> {
    let mut offset = 0.0f32;
    layer.visit_params(&mut |p| {
        let v: Vec<f32> = (0..p.value.len())
            .map(|k| 0.5 * (0.37 * k as f32 + offset).sin())
            .collect();
        let mut p = p;
        p.set_row_major(&v);
        offset += 1.0;
    });
    let b = 2;
    let x = Matrix::from_vec(
        b,
        t * f,
        (0..b * t * f).map(|k| (0.5 * k as f32).cos()).collect(),
    );
    let mut y = Matrix::zeros(b, h);
    let rt = Runtime::default();
    layer.forward(
        &x,
        &mut y,
        &mut Pass::new(Mode::Eval, &mut Rng::new(0), &rt),
    );
    y.data
}

/// Output of `python3 scripts/recurrent_golden.py`.
#[allow(clippy::excessive_precision)]
const LSTM_GOLDEN: [f32; 8] = [
    -0.290255291,
    -0.545188927,
    -0.365344197,
    0.143261130, //
    -0.226561449,
    -0.309525804,
    -0.201904442,
    0.272060753,
];
#[allow(clippy::excessive_precision)]
const GRU_GOLDEN: [f32; 8] = [
    -0.409914318,
    -0.851818197,
    -0.488064384,
    0.175077263, //
    -0.467585141,
    -0.680687284,
    -0.273958222,
    0.192908306,
];

#[test]
fn lstm_and_gru_match_pytorchs_equations_computed_independently() {
    let mut rng = Rng::new(1);
    let got = golden_run(&mut Lstm::new(5, 3, 4, None, &mut rng), 5, 3, 4);
    for (g, e) in got.iter().zip(LSTM_GOLDEN) {
        assert!((g - e).abs() < 1e-5, "lstm {got:?} vs {LSTM_GOLDEN:?}");
    }
    let got = golden_run(&mut Gru::new(5, 3, 4, None, &mut rng), 5, 3, 4);
    for (g, e) in got.iter().zip(GRU_GOLDEN) {
        assert!((g - e).abs() < 1e-5, "gru {got:?} vs {GRU_GOLDEN:?}");
    }
}

/// The same seed gives the same bits at any thread count, for a conv net and an LSTM.
#[test]
fn conv_and_lstm_steps_do_not_depend_on_the_thread_count() {
    use nnlab::optim::Optimizer;
    for preset in ["cnn1", "lstm"] {
        let cfg = TrainConfig::preset(preset).unwrap();
        let mut r = Rng::new(4);
        let x = Matrix::from_vec(20, 784, (0..20 * 784).map(|_| r.uniform()).collect());
        let labels: Vec<u8> = (0..20).map(|i| (i % 10) as u8).collect();
        let run = |threads: usize| {
            let rt = Runtime::new(threads);
            let mut m = Model::build(&cfg.model, IMAGE, 10, &mut Rng::new(3)).unwrap();
            let mut opt = Optimizer::new(cfg.optimizer.clone(), &mut m.net);
            let mut rng = Rng::new(5);
            for _ in 0..2 {
                m.train_step(&x, &labels, &mut opt, 1e-3, &mut rng, &rt);
            }
            m.forward(&x, Mode::Eval, &mut rng, &rt).data.clone()
        };
        let one = run(1);
        for t in [2, 3] {
            assert!(
                one.iter()
                    .zip(run(t))
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{preset} at {t} threads"
            );
        }
    }
}

/// A CNN and an LSTM written as layer lists in TOML build and run; a layer that cannot
/// take what comes before is refused naming its place in the list and both shapes.
#[test]
fn layer_lists_in_toml_build_and_misfits_are_named() {
    let cnn = r#"
[model]
[[model.layers]]
type = "conv"
channels = 4
kernel = 5
stride = 2
padding = "same"
[[model.layers]]
type = "batchnorm"
[[model.layers]]
type = "activation"
name = "relu"
[[model.layers]]
type = "avgpool"
size = 2
[[model.layers]]
type = "flatten"
[[model.layers]]
type = "dense"
units = 16
"#;
    let cfg = TrainConfig::from_toml(cnn, "cnn.toml").unwrap();
    let mut m = Model::build(&cfg.model, IMAGE, 10, &mut Rng::new(1)).unwrap();
    assert_eq!(
        m.net.layers()[0].output(),
        Features::Image { c: 4, h: 14, w: 14 }
    );
    assert_eq!(
        m.net.layers()[3].output(),
        Features::Image { c: 4, h: 7, w: 7 }
    );
    let x = Matrix::zeros(2, 784);
    let rt = Runtime::single();
    assert_eq!(m.forward(&x, Mode::Eval, &mut Rng::new(0), &rt).cols, 10);

    let lstm = "[model]\n[[model.layers]]\ntype = \"gru\"\nunits = 8\n";
    let cfg = TrainConfig::from_toml(lstm, "gru.toml").unwrap();
    let m = Model::build(&cfg.model, IMAGE, 10, &mut Rng::new(1)).unwrap();
    assert_eq!(m.net.layers()[0].describe(), "gru 8 over 28 steps of 28");

    let bad = "[model]\n[[model.layers]]\ntype = \"flatten\"\n[[model.layers]]\ntype = \"maxpool\"\nsize = 2\n";
    let cfg = TrainConfig::from_toml(bad, "bad.toml").unwrap();
    let e = Model::build(&cfg.model, IMAGE, 10, &mut Rng::new(1))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("model.layers[1]") && e.contains("a vector of 784"),
        "{e}"
    );
    let bad = "[model]\n[[model.layers]]\ntype = \"conv\"\nchannels = 2\nkernel = 40\n";
    let cfg = TrainConfig::from_toml(bad, "big.toml").unwrap();
    let e = Model::build(&cfg.model, IMAGE, 10, &mut Rng::new(1))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("model.layers[0]") && e.contains("40x40"), "{e}");
    let e = TrainConfig::from_toml(
        "[model]\n[[model.layers]]\ntype = \"conv\"\nchannels = 0\nkernel = 3\n",
        "zero.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("model.layers[0].channels"), "{e}");
    let e = TrainConfig::from_toml(
        "[model]\n[[model.layers]]\ntype = \"maxpool\"\nsize = 2\npadding = \"full\"\n",
        "pad.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("full"), "{e}");
}

/// A run stopped after its first epoch and resumed from the checkpoint (at another
/// thread count) ends with the same bits as one run straight through: a small CNN
/// with batch norm, dropout and augmentation, and a small LSTM.
#[test]
fn cnn_and_lstm_resume_bit_for_bit() {
    use nnlab::train::Trainer;
    use nnlab::train::checkpoint::load_checkpoint;
    let mnist = common::mnist();
    let train = mnist.train.slice(0..600, "small");
    let cnn = r#"
epochs = 2
batch = 50
[augment]
shift = 2
rotate = 8.0
scale = 0.1
[model]
[[model.layers]]
type = "conv"
channels = 4
kernel = 3
padding = 1
[[model.layers]]
type = "batchnorm"
[[model.layers]]
type = "activation"
name = "relu"
[[model.layers]]
type = "maxpool"
size = 2
[[model.layers]]
type = "dropout"
keep = 0.8
"#;
    let lstm = "epochs = 2\nbatch = 50\n[model]\n[[model.layers]]\ntype = \"lstm\"\nunits = 16\n";
    for (name, text) in [("cnn", cnn), ("lstm", lstm)] {
        let cfg = TrainConfig::from_toml(text, name).unwrap();
        let mut full = Trainer::new(&cfg, IMAGE, 10, Runtime::new(2)).unwrap();
        common::fit(&mut full, &train).unwrap();
        let d = tempfile::tempdir().unwrap();
        let mut first = cfg.clone();
        first.epochs = 1;
        let mut t = Trainer::new(&first, IMAGE, 10, Runtime::new(1)).unwrap();
        t.checkpoint = Some((d.path().to_path_buf(), meta(&first)));
        common::fit(&mut t, &train).unwrap();
        drop(t);
        let mut resumed = load_checkpoint(d.path(), &cfg, Runtime::new(3)).unwrap();
        common::fit(&mut resumed, &train).unwrap();
        let bits = |m: &mut Model| {
            let mut w = Vec::new();
            m.net
                .visit_params(&mut |p| w.extend(p.value.iter().map(|v| v.to_bits())));
            m.net
                .visit_buffers(&mut |_, v| w.extend(v.iter().map(|v| v.to_bits())));
            w
        };
        assert_eq!(bits(&mut resumed.model), bits(&mut full.model), "{name}");
        assert_eq!(
            resumed.history.last().unwrap().cost.to_bits(),
            full.history.last().unwrap().cost.to_bits(),
            "{name}"
        );
    }
}

/// A finished model that lets go of its buffers (`Trainer::release_buffers`, as an
/// ensemble's members do) gives the same bits: a CNN with batch norm (its running
/// statistics must come across) and an LSTM.
#[test]
fn released_models_predict_the_same_bits() {
    use nnlab::train::Trainer;
    let mnist = common::mnist();
    let train = mnist.train.slice(0..600, "small");
    let test = mnist.test.slice(0..300, "small");
    let cnn = "epochs = 1\nbatch = 50\n[model]\n[[model.layers]]\ntype = \"conv\"\nchannels = 4\nkernel = 3\npadding = 1\n[[model.layers]]\ntype = \"batchnorm\"\n[[model.layers]]\ntype = \"activation\"\nname = \"relu\"\n[[model.layers]]\ntype = \"maxpool\"\nsize = 2\n";
    let lstm = "epochs = 1\nbatch = 50\n[model]\n[[model.layers]]\ntype = \"lstm\"\nunits = 16\n";
    for (name, text) in [("cnn", cnn), ("lstm", lstm)] {
        let cfg = TrainConfig::from_toml(text, name).unwrap();
        let rt = Runtime::new(2);
        let mut t = Trainer::new(&cfg, IMAGE, 10, rt).unwrap();
        common::fit(&mut t, &train).unwrap();
        let bits = |t: &mut Trainer| {
            let p = t.model.predict_proba(&test, &rt);
            p.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        };
        let before = bits(&mut t);
        t.release_buffers().unwrap();
        let after = bits(&mut t);
        let differ = after.iter().zip(&before).filter(|(a, b)| a != b).count();
        assert_eq!(
            differ,
            0,
            "{name}: {differ} of {} probabilities differ",
            before.len()
        );
    }
}

/// Accuracy floors on real digits: `cnn1` and an LSTM of 32 units after two epochs on
/// 5,000 images (each far above chance, 0.1, and below what full runs reach).
#[test]
fn cnn_and_lstm_learn_real_digits() {
    use nnlab::train::Trainer;
    let mnist = common::mnist();
    let train = mnist.train.slice(0..5000, "5k");
    let test = mnist.test.slice(0..2000, "2k");
    let mut cnn = TrainConfig::preset("cnn1").unwrap();
    cnn.epochs = 2;
    let mut lstm = TrainConfig::from_toml(
        "epochs = 2\n[model]\ninit = \"fan-in-uniform\"\nbias_init = \"fan-in-uniform\"\n[[model.layers]]\ntype = \"lstm\"\nunits = 32\n",
        "lstm",
    )
    .unwrap();
    lstm.optimizer.lr = 0.003;
    for (name, cfg, floor) in [("cnn1", cnn, 0.85), ("lstm", lstm, 0.5)] {
        let mut t = Trainer::new(&cfg, IMAGE, 10, Runtime::default()).unwrap();
        common::fit(&mut t, &train).unwrap();
        let acc = t.model.evaluate(&test, &Runtime::default()).accuracy;
        eprintln!("{name}: {acc}");
        assert!(acc >= floor, "{name}: {acc} < {floor}");
    }
}
