//! Models that last: safetensors round trips, a check of the file by Python's standard library, foreign files,
//! checkpoints and bit-identical resume, bad model files, and `predict`'s image path.

mod common;

use nnlab::Runtime;
use nnlab::config::TrainConfig;
use nnlab::files::check_writable;
use nnlab::io::{ModelMeta, load_model, save_model};
use nnlab::layers::{Layer, Mode};
use nnlab::model::Model;
use nnlab::rng::Rng;
use nnlab::tensor::Matrix;
use nnlab::train::checkpoint::{load_checkpoint, save_checkpoint};
use nnlab::train::{EpochStats, Trainer};
use proptest::prelude::*;
use std::process::Command;

fn meta(cfg: &TrainConfig) -> ModelMeta {
    ModelMeta {
        config: cfg.clone(),
        dataset: "mnist".into(),
        input_shape: (28, 28),
        class_names: (0..10).map(|c| c.to_string()).collect(),
        metrics: [("test_accuracy".to_string(), 0.5f32)]
            .into_iter()
            .collect(),
    }
}

fn small_model(preset: &str) -> (TrainConfig, Model) {
    let mut cfg = TrainConfig::preset(preset).unwrap();
    cfg.model.hidden = vec![32, 16];
    let m = Model::build(&cfg.model, 784, 10, &mut Rng::new(3)).unwrap();
    (cfg, m)
}

fn inputs(rows: usize) -> Matrix {
    let mut r = Rng::new(9);
    Matrix::from_vec(rows, 784, (0..rows * 784).map(|_| r.uniform()).collect())
}

/// `rows` MNIST-sized inputs, 80% of them exact zeros like an image's background (the
/// sparse products' case).
fn mostly_zero(rows: usize, seed: u64) -> Matrix {
    let mut r = Rng::new(seed);
    let data = (0..rows * 784)
        .map(|_| if r.uniform() < 0.8 { 0.0 } else { r.uniform() })
        .collect();
    Matrix::from_vec(rows, 784, data)
}

/// A net whose layers do not fit is refused when it is built, and the error names
/// both layers and both shapes.
#[test]
fn layers_that_do_not_fit_are_refused_naming_both() {
    use nnlab::init::Init;
    use nnlab::layers::{Activation, ActivationLayer, Dense, Features, Sequential};
    let mut rng = Rng::new(1);
    let mut net = Sequential::new(784);
    net.push(Box::new(Dense::new(
        784,
        256,
        Init::XavierUniform,
        Init::Zeros,
        &mut rng,
    )))
    .unwrap();
    net.push(Box::new(ActivationLayer::new(Activation::Relu, 256)))
        .unwrap();
    let e = net
        .push(Box::new(Dense::new(
            128,
            10,
            Init::XavierUniform,
            Init::Zeros,
            &mut rng,
        )))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("layer 2 (dense 128 -> 10)")
            && e.contains("a vector of 128")
            && e.contains("layer 1 (relu)")
            && e.contains("a vector of 256"),
        "{e}"
    );
    // the first layer against the input, and shapes of the same size that differ: an
    // image feeds a dense layer of as many inputs (flattened), but not an image layer
    // of another shape
    let mut net = Sequential::new(Features::Image { c: 1, h: 28, w: 28 });
    let e = net
        .push(Box::new(ActivationLayer::new(
            Activation::Relu,
            Features::Image { c: 2, h: 14, w: 28 },
        )))
        .unwrap_err()
        .to_string();
    assert!(e.contains("the input gives an image of 1x28x28"), "{e}");
    assert_eq!(net.layers().len(), 0, "nothing was added");
    net.push(Box::new(Dense::new(
        784,
        10,
        Init::Zeros,
        Init::Zeros,
        &mut rng,
    )))
    .unwrap();
}

/// Evaluation with the sparse products (a trained ReLU net's hidden activations are
/// mostly zeros, as here with its biases lowered) gives the dense products' logits up
/// to rounding, and a training forward still works after it.
#[test]
fn sparse_evaluation_matches_dense_up_to_rounding() {
    let mut cfg = TrainConfig::preset("dropout").unwrap();
    cfg.model.hidden = vec![512, 256, 192];
    let mut m = Model::build(&cfg.model, 784, 10, &mut Rng::new(5)).unwrap();
    m.net.visit_params(&mut |p| {
        if p.name.ends_with("bias") {
            p.value.iter_mut().for_each(|v| *v -= 1.0);
        }
    });
    let x = mostly_zero(300, 11);
    let sparse = Runtime::default();
    let dense = Runtime {
        sparse: false,
        ..Runtime::default()
    };
    let a = m.forward(&x, Mode::Eval, &mut Rng::new(0), &sparse).clone();
    // the case this is meant to cover: hidden outputs within the sparse limit
    let relu_density = |m: &Model, i: usize| {
        let y = &m.net.outputs()[i];
        y.data.iter().filter(|v| **v != 0.0).count() as f64 / y.data.len() as f64
    };
    assert!(relu_density(&m, 1) <= 0.3 && relu_density(&m, 4) <= 0.3);
    let b = m.forward(&x, Mode::Eval, &mut Rng::new(0), &dense).clone();
    for (u, v) in a.data.iter().zip(&b.data) {
        assert!((u - v).abs() <= 1e-4 * (1.0 + v.abs()), "{u} vs {v}");
    }
    let t = m
        .forward(&x, Mode::Train, &mut Rng::new(1), &sparse)
        .clone();
    assert!(t.data.iter().all(|v| v.is_finite()));
}

#[test]
fn save_load_round_trip_gives_identical_logits() {
    for preset in ["xavier", "dropout"] {
        let (cfg, mut m) = small_model(preset);
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("m.safetensors");
        save_model(&p, &mut m, &meta(&cfg)).unwrap();
        let mut loaded = load_model(&p).unwrap();
        assert!(loaded.warnings.is_empty());
        assert_eq!(loaded.meta, meta(&cfg));
        let x = inputs(7);
        let a = m
            .forward(&x, Mode::Eval, &mut Rng::new(0), &Runtime::default())
            .clone();
        let b = loaded
            .model
            .forward(&x, Mode::Eval, &mut Rng::new(0), &Runtime::default())
            .clone();
        assert_eq!(a, b);
        // no temp file left beside it
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }
}

#[test]
fn python_reads_the_file_and_matches_the_logits() {
    let (cfg, mut m) = small_model("xavier");
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("m.safetensors");
    save_model(&p, &mut m, &meta(&cfg)).unwrap();
    let x = inputs(5);
    let logits = m
        .forward(&x, Mode::Eval, &mut Rng::new(0), &Runtime::default())
        .clone();
    let raw = |v: &[f32]| v.iter().flat_map(|f| f.to_le_bytes()).collect::<Vec<u8>>();
    std::fs::write(d.path().join("x.f32"), raw(&x.data)).unwrap();
    std::fs::write(d.path().join("y.f32"), raw(&logits.data)).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/check_safetensors.py");
    let out = Command::new("python3")
        .args([script, p.to_str().unwrap()])
        .arg(d.path().join("x.f32"))
        .arg(d.path().join("y.f32"))
        .arg("5")
        .output()
        .expect("python3 must be installed (the script uses its standard library only)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "the standard-library reader disagrees:\n{text}"
    );
    assert!(text.contains("max |python - nnlab|"), "{text}");
}

#[test]
fn a_foreign_file_that_fits_an_mlp_loads_with_warnings() {
    use safetensors::tensor::{Dtype, TensorView};
    let (_, mut m) = small_model("xavier");
    // write the tensors alone, as PyTorch's save_file(model.state_dict()) would
    let mut bufs = Vec::new();
    for (i, l) in m.net.layers_mut().iter_mut().enumerate() {
        l.visit_params(&mut |p| {
            bufs.push((
                format!("{i}.{}", p.name),
                p.shape.as_slice().to_vec(),
                p.to_row_major()
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect::<Vec<u8>>(),
            ))
        });
    }
    let views: Vec<_> = bufs
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).unwrap(),
            )
        })
        .collect();
    let bytes = safetensors::serialize(views, None).unwrap();
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("torch.safetensors");
    std::fs::write(&p, &bytes).unwrap();
    let mut loaded = load_model(&p).unwrap();
    assert!(loaded.warnings[0].contains("ReLU"));
    assert_eq!(loaded.meta.input_shape, (28, 28));
    let x = inputs(3);
    assert_eq!(
        m.forward(&x, Mode::Eval, &mut Rng::new(0), &Runtime::default())
            .clone(),
        loaded
            .model
            .forward(&x, Mode::Eval, &mut Rng::new(0), &Runtime::default())
            .clone()
    );

    // tensors that describe no MLP: a clear message of what is missing
    let w = vec![0u8; 4 * 6];
    let views = vec![(
        "encoder.weight".to_string(),
        TensorView::new(Dtype::F32, vec![2, 3], &w).unwrap(),
    )];
    std::fs::write(&p, safetensors::serialize(views, None).unwrap()).unwrap();
    let e = load_model(&p).err().unwrap().to_string();
    assert!(
        e.contains("0.weight") && e.contains("torch.safetensors"),
        "{e}"
    );
}

#[test]
fn corrupt_and_truncated_files_give_clear_errors() {
    let (cfg, mut m) = small_model("xavier");
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("m.safetensors");
    save_model(&p, &mut m, &meta(&cfg)).unwrap();
    let good = std::fs::read(&p).unwrap();
    for bad in [
        good[..good.len() / 2].to_vec(),
        good[..5].to_vec(),
        b"hello world, not a model".to_vec(),
        Vec::new(),
    ] {
        std::fs::write(&p, &bad).unwrap();
        let e = load_model(&p).err().unwrap().to_string();
        assert!(
            e.contains("m.safetensors") && e.contains("safetensors"),
            "{e}"
        );
    }
    let e = load_model(&d.path().join("none.safetensors"))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("none.safetensors"), "{e}");
    let e = load_model(d.path()).err().unwrap().to_string();
    assert!(e.contains("is a folder"), "{e}");
    // --save into a missing folder is refused up front
    let e = check_writable(&d.path().join("no/such/m.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not exist"), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]
    /// Arbitrary bytes, and valid files with arbitrary bytes flipped, never panic the loader.
    #[test]
    fn loader_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8)) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f.safetensors");
        std::fs::write(&p, &bytes).unwrap();
        let _ = load_model(&p);
        let (cfg, mut m) = small_model("xavier");
        save_model(&p, &mut m, &meta(&cfg)).unwrap();
        let mut good = std::fs::read(&p).unwrap();
        let n = good.len();
        for (i, b) in flips { good[i % n.min(600)] ^= b; }
        std::fs::write(&p, &good).unwrap();
        let _ = load_model(&p);
    }
}

/// Training 3 epochs in one go equals 1 epoch, a checkpoint, and a resumed run to 3,
/// bit for bit (dropout net: masks, shuffles and Adam state all continue exactly),
/// though each part runs at another thread count (2, then 1, then 3): the thread count
/// is not part of a run.
#[test]
fn resume_equals_uninterrupted_bit_for_bit() {
    let mnist = common::mnist();
    let train = mnist.train.slice(0..2000, "small");
    let mut cfg = TrainConfig::preset("dropout").unwrap();
    cfg.model.hidden = vec![48, 24];
    cfg.epochs = 3;
    let threads = |n| Runtime::default().with_threads(n);
    let mut full = Trainer::new(&cfg, 784, 10, threads(2)).unwrap();
    common::fit(&mut full, &train).unwrap();

    let d = tempfile::tempdir().unwrap();
    let mut first = cfg.clone();
    first.epochs = 1;
    let mut t = Trainer::new(&first, 784, 10, threads(1)).unwrap();
    t.checkpoint = Some((d.path().to_path_buf(), meta(&first)));
    common::fit(&mut t, &train).unwrap();
    drop(t);
    let mut resumed = load_checkpoint(d.path(), &cfg, threads(3)).unwrap();
    assert_eq!(resumed.rt.threads, 3);
    assert_eq!(resumed.history.len(), 1);
    common::fit(&mut resumed, &train).unwrap();
    assert_eq!(
        common::weights(&mut resumed.model.net),
        common::weights(&mut full.model.net)
    );
    let key = |h: &[EpochStats]| {
        h.iter()
            .map(|s| (s.epoch, s.cost.to_bits(), s.train_acc.to_bits()))
            .collect::<Vec<_>>()
    };
    assert_eq!(key(&resumed.history), key(&full.history));

    // a checkpoint from a different config is refused, naming the field
    let mut other = cfg.clone();
    other.optimizer.lr = 0.01;
    let e = load_checkpoint(d.path(), &other, Runtime::default())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("optimizer.lr"), "{e}");
    // saving a checkpoint again overwrites atomically
    save_checkpoint(d.path(), &mut resumed, &meta(&cfg)).unwrap();
    assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);

    // the first layer's Adam moment is saved in its weight's (out, in) order, as the
    // weight is, whatever order the layer keeps it in
    let bytes = std::fs::read(d.path().join("checkpoint.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let m0: Vec<f32> = st
        .tensor("optimizer.m.0")
        .unwrap()
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let mut expected = None;
    let stored = &resumed.opt.m[0];
    resumed.model.net.visit_params(&mut |p| {
        if expected.is_none() {
            assert_eq!(p.shape.as_slice(), [48, 784]);
            assert!(p.transposed, "Dense keeps its weight (in, out)");
            expected = Some(nnlab::layers::row_major(stored, p.shape, p.transposed));
        }
    });
    assert_eq!(m0, expected.unwrap());
    assert_ne!(&m0, stored);
}

/// `predict`'s preprocessing on test digits written out as PNG (scaled up 3x, and
/// inverted to dark ink on white) gives the class predicted from the IDX data.
#[test]
fn predict_from_png_matches_predict_from_idx() {
    let mnist = common::mnist();
    let (train, _) = mnist.train.split_validation(5000).unwrap();
    let mut cfg = TrainConfig::preset("xavier").unwrap();
    cfg.epochs = 1;
    let mut t = Trainer::new(&cfg, 784, 10, Runtime::default()).unwrap();
    common::fit(&mut t, &train).unwrap();
    let d = tempfile::tempdir().unwrap();
    let n = 50;
    let mut same = 0;
    for i in 0..n {
        let px = mnist.test.images.row(i);
        let img = image::GrayImage::from_fn(84, 84, |x, y| {
            image::Luma([255 - (px[(y / 3 * 28 + x / 3) as usize] * 255.0).round() as u8])
        });
        let p = d.path().join(format!("{i}.png"));
        img.save(&p).unwrap();
        let prepared =
            nnlab::io::image_input::load_digit(&p, nnlab::io::image_input::Invert::Auto).unwrap();
        let a = t
            .model
            .forward(
                &Matrix::from_vec(1, 784, px.to_vec()),
                Mode::Eval,
                &mut Rng::new(0),
                &t.rt,
            )
            .argmax_row(0);
        let b = t
            .model
            .forward(
                &Matrix::from_vec(1, 784, prepared),
                Mode::Eval,
                &mut Rng::new(0),
                &t.rt,
            )
            .argmax_row(0);
        same += (a == b) as usize;
    }
    // MNIST digits were themselves boxed to 20x20 and centred by mass, so redoing it
    // reproduces them up to resampling: all but at most one of 50 agree.
    assert!(same >= n - 1, "{same} of {n} agree");
}

/// A model file holding NaN or infinity is refused at load, naming the tensor.
#[test]
fn non_finite_weights_are_refused_at_load() {
    for bad in [f32::NAN, f32::INFINITY] {
        let (cfg, mut m) = small_model("xavier");
        m.net.visit_params(&mut |p| {
            if p.name == "2.bias" {
                p.value[3] = bad;
            }
        });
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("m.safetensors");
        save_model(&p, &mut m, &meta(&cfg)).unwrap();
        let e = load_model(&p).err().expect("refused").to_string();
        assert!(
            e.contains("tensor 2.bias holds") && e.contains("element 3"),
            "{e}"
        );
    }
}

/// A model file whose metadata claims an absurd input is refused before the net is
/// built, with the memory it would take.
#[test]
fn an_absurd_declared_input_is_refused_before_allocating() {
    let (cfg, mut m) = small_model("xavier");
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("m.safetensors");
    let mut claims = meta(&cfg);
    claims.input_shape = (1_000_000, 1_000_000);
    save_model(&p, &mut m, &claims).unwrap();
    let e = load_model(&p).err().expect("refused").to_string();
    assert!(e.contains("would take") && e.contains("available"), "{e}");
}
