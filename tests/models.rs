//! Models that last: safetensors round trips, a numpy check of the file, foreign files,
//! checkpoints and bit-identical resume, bad model files, and `predict`'s image path.

mod common;

use nnlab::config::TrainConfig;
use nnlab::io::model_file::{check_writable, load_checkpoint, save_checkpoint};
use nnlab::io::{ModelMeta, load_model, save_model};
use nnlab::layers::{Layer, Mode};
use nnlab::model::Model;
use nnlab::rng::Rng;
use nnlab::tensor::Matrix;
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

fn weights(net: &mut dyn Layer) -> Vec<u32> {
    let mut w = Vec::new();
    net.visit_params(&mut |p| w.extend(p.value.iter().map(|v| v.to_bits())));
    w
}

/// `Sequential::infer` (what evaluation runs: dropout layers skipped, each ReLU folded
/// into the dense layer before it) gives the same logits, bit for bit, as an
/// evaluation-mode `run` through every layer, on dense inputs and on mostly-zero ones
/// (the sparse products), and a training forward still works after it.
#[test]
fn infer_skips_dropout_and_folds_relu_with_the_same_bits() {
    let mostly_zero = mostly_zero(37, 4);
    for preset in ["xavier", "dropout", "deep-bn"] {
        let (_, mut m) = small_model(preset);
        for x in [inputs(37), mostly_zero.clone()] {
            let want = m.net.run(&x, Mode::Eval, &mut Rng::new(0)).clone();
            let got = m.net.infer(&x, &mut Rng::new(0)).clone();
            assert_eq!(
                got.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                want.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "{preset}"
            );
            // a training forward after it still works
            let t = m.forward(&x, Mode::Train, &mut Rng::new(1)).clone();
            assert!(t.data.iter().all(|v| v.is_finite()));
        }
    }
}

/// A net with wide hidden layers (so that a dense layer lists its output's nonzero
/// entries for the next one, `layers::Handoff`), its biases lowered by `shift`, which
/// makes its ReLUs' outputs sparser.
fn wide_model(shift: f32) -> Model {
    let mut cfg = TrainConfig::preset("dropout").unwrap();
    cfg.model.hidden = vec![512, 256, 192];
    let mut m = Model::build(&cfg.model, 784, 10, &mut Rng::new(5)).unwrap();
    m.net.visit_params(&mut |p| {
        if p.name.ends_with("bias") {
            p.value.iter_mut().for_each(|v| *v -= shift);
        }
    });
    m
}

/// The share of nonzero entries in each ReLU's output after an evaluation `run`.
fn relu_densities(m: &mut Model, x: &Matrix) -> Vec<f64> {
    m.net.run(x, Mode::Eval, &mut Rng::new(0));
    let relus: Vec<usize> = (0..m.net.layers.len())
        .filter(|&i| m.net.layers[i].describe().starts_with("relu"))
        .collect();
    relus
        .iter()
        .map(|&i| {
            let y = &m.net.outputs()[i];
            y.data.iter().filter(|v| **v != 0.0).count() as f64 / y.data.len() as f64
        })
        .collect()
}

/// Where a dense layer's input entries come listed by the dense layer before it (the
/// hidden layers here), `infer` still gives `run`'s logits bit for bit: with sparse
/// hidden outputs (read from the lists) and with dense ones (the lists are too full,
/// and the next layer takes the dense product instead). And `infer` on a batch cut
/// into chunks of rows gives each row the same bits as on the whole batch, as
/// `Model::evaluate` relies on.
#[test]
fn infer_reads_listed_entries_and_chunks_with_the_same_bits() {
    let x = mostly_zero(300, 11);
    let bits = |m: &Matrix| m.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    for (shift, sparse_hidden) in [(0.0, false), (1.0, true)] {
        let mut m = wide_model(shift);
        let dens = relu_densities(&mut m, &x);
        assert_eq!(dens.len(), 3);
        // the case this is meant to cover: hidden outputs within the sparse limit or not
        let within = dens[..2].iter().all(|&d| d > 0.0 && d <= 0.3);
        assert_eq!(within, sparse_hidden, "densities {dens:?}");
        for xs in [x.clone(), inputs(300)] {
            let want = m.net.run(&xs, Mode::Eval, &mut Rng::new(0)).clone();
            let got = m.net.infer(&xs, &mut Rng::new(0)).clone();
            assert!(bits(&got) == bits(&want), "shift {shift}");
            // (300 rows cut into pieces of these sizes; no piece of one row, where the
            // dense product takes another path, as evaluation's chunks never are
            // unless the whole batch is one row)
            for chunk in [150, 100, 64, 37, 16, 15, 11, 9, 8, 7, 5, 4, 3, 2] {
                assert_ne!(xs.rows % chunk, 1);
                let mut pieces = Vec::new();
                for r0 in (0..xs.rows).step_by(chunk) {
                    let rows = chunk.min(xs.rows - r0);
                    let c =
                        Matrix::from_vec(rows, 784, xs.data[r0 * 784..(r0 + rows) * 784].to_vec());
                    pieces.extend(bits(m.net.infer(&c, &mut Rng::new(0))));
                }
                let first = pieces.iter().zip(bits(&want)).position(|(a, b)| *a != b);
                assert_eq!(
                    first, None,
                    "shift {shift}, chunks of {chunk}: first difference"
                );
            }
        }
    }
}

/// `Model::evaluate` and `predict_proba` cut each batch of 1,000 into chunks of rows
/// (`Model::eval_chunk_rows`); the results are the same bits as with one chunk a
/// batch, over 1,003 images (a batch of 1,000 in 4 chunks, then one of 3).
#[test]
fn evaluation_in_chunks_gives_the_same_bits() {
    let x = mostly_zero(1003, 12);
    let data = nnlab::data::Dataset {
        name: "mostly zero".into(),
        images: x,
        labels: (0..1003).map(|i| (i % 10) as u8).collect(),
        height: 28,
        width: 28,
        class_names: (0..10).map(|c| c.to_string()).collect(),
    };
    let mut m = wide_model(1.0);
    assert_eq!(m.eval_chunk_rows(), 256);
    let chunked = (m.evaluate(&data), m.predict_proba(&data));
    m.eval_chunk_floats = usize::MAX; // one chunk a batch
    assert_eq!(m.eval_chunk_rows(), 1000);
    let whole = (m.evaluate(&data), m.predict_proba(&data));
    assert_eq!(chunked.0.predictions, whole.0.predictions);
    assert_eq!(
        (chunked.0.accuracy.to_bits(), chunked.0.loss.to_bits()),
        (whole.0.accuracy.to_bits(), whole.0.loss.to_bits())
    );
    let bits = |m: &Matrix| m.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert!(bits(&chunked.1) == bits(&whole.1), "probabilities differ");
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
        let a = m.forward(&x, Mode::Eval, &mut Rng::new(0)).clone();
        let b = loaded
            .model
            .forward(&x, Mode::Eval, &mut Rng::new(0))
            .clone();
        assert_eq!(a, b);
        // no temp file left beside it
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }
}

#[test]
fn numpy_reads_the_file_and_matches_the_logits() {
    let (cfg, mut m) = small_model("xavier");
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("m.safetensors");
    save_model(&p, &mut m, &meta(&cfg)).unwrap();
    let x = inputs(5);
    let logits = m.forward(&x, Mode::Eval, &mut Rng::new(0)).clone();
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
        .expect("python3 must be installed (.ci/run installs numpy and safetensors)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "numpy check failed (pip install numpy safetensors):\n{text}"
    );
    assert!(text.contains("max |numpy - nnlab|"), "{text}");
}

#[test]
fn a_foreign_file_that_fits_an_mlp_loads_with_warnings() {
    use safetensors::tensor::{Dtype, TensorView};
    let (_, mut m) = small_model("xavier");
    // write the tensors alone, as PyTorch's save_file(model.state_dict()) would
    let mut bufs = Vec::new();
    for (i, l) in m.net.layers.iter_mut().enumerate() {
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
        m.forward(&x, Mode::Eval, &mut Rng::new(0)).clone(),
        loaded
            .model
            .forward(&x, Mode::Eval, &mut Rng::new(0))
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
/// bit for bit (dropout net: masks, shuffles and Adam state all continue exactly).
#[test]
fn resume_equals_uninterrupted_bit_for_bit() {
    let mnist = common::mnist();
    let train = mnist.train.slice(0..2000, "small");
    let mut cfg = TrainConfig::preset("dropout").unwrap();
    cfg.model.hidden = vec![48, 24];
    cfg.epochs = 3;
    let mut full = Trainer::new(&cfg, 784, 10).unwrap();
    common::fit(&mut full, &train).unwrap();

    let d = tempfile::tempdir().unwrap();
    let mut first = cfg.clone();
    first.epochs = 1;
    let mut t = Trainer::new(&first, 784, 10).unwrap();
    t.checkpoint = Some((d.path().to_path_buf(), meta(&first)));
    common::fit(&mut t, &train).unwrap();
    drop(t);
    let mut resumed = load_checkpoint(d.path(), &cfg).unwrap();
    assert_eq!(resumed.history.len(), 1);
    common::fit(&mut resumed, &train).unwrap();
    assert_eq!(
        weights(&mut resumed.model.net),
        weights(&mut full.model.net)
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
    let e = load_checkpoint(d.path(), &other).err().unwrap().to_string();
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
    let mut t = Trainer::new(&cfg, 784, 10).unwrap();
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
            )
            .argmax_row(0);
        let b = t
            .model
            .forward(
                &Matrix::from_vec(1, 784, prepared),
                Mode::Eval,
                &mut Rng::new(0),
            )
            .argmax_row(0);
        same += (a == b) as usize;
    }
    // MNIST digits were themselves boxed to 20x20 and centred by mass, so redoing it
    // reproduces them up to resampling: all but at most one of 50 agree.
    assert!(same >= n - 1, "{same} of {n} agree");
}
