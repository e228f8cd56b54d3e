//! `--precision bf16`: training in bf16 products on real MNIST, where the CPU has
//! AVX512-BF16 (elsewhere the runtime falls back to f32 and says why), and one
//! convolution's and one recurrent layer's products in bf16 on random data (on the
//! portable kernel where the instructions are missing).

mod common;

use nnlab::Runtime;
use nnlab::config::TrainConfig;
use nnlab::runtime::Precision;
use nnlab::tensor::bf16;

fn bf16_runtime(threads: usize) -> Option<Runtime> {
    let (rt, why) = Runtime::default()
        .with_threads(threads)
        .with_precision(Precision::Bf16);
    match why {
        Some(why) => {
            assert!(!bf16::available());
            assert!(why.contains("AVX512-BF16"), "{why}");
            assert_eq!(rt.precision, Precision::F32);
            eprintln!("skipped: {why}");
            None
        }
        None => {
            assert_eq!(rt.precision, Precision::Bf16);
            Some(rt)
        }
    }
}

/// The `deep` lab's net (four hidden layers of 512, dense products in the hidden
/// layers), one epoch in bf16: >= 95% on the 10,000 test images, within a point of
/// the same run in f32.
#[test]
fn deep_lab_one_epoch_in_bf16_reaches_95_percent() {
    let Some(rt) = bf16_runtime(0) else { return };
    let m = common::mnist();
    let mut cfg = TrainConfig::preset("deep").unwrap();
    cfg.epochs = 1;
    let run = |rt: Runtime| {
        let mut t = nnlab::train::Trainer::new(&cfg, 784, 10, rt).unwrap();
        common::fit(&mut t, &m.train).unwrap();
        t.model.evaluate(&m.test, &t.rt).accuracy
    };
    let (low, full) = (run(rt), run(Runtime::default()));
    eprintln!("one epoch of the deep net: bf16 {low}, f32 {full}");
    assert!(low >= 0.95, "bf16 test accuracy {low} (f32: {full})");
    assert!((low - full).abs() < 0.01, "bf16 {low} against f32 {full}");
}

/// In bf16 as in f32 the bits do not depend on the thread count, and they differ
/// from f32's (the products did run in bf16): an MLP with dropout, the course's
/// first CNN (whose convolutions run in bf16 too), and the LSTM, GRU and RNN (their
/// steps too).
#[test]
fn bf16_training_is_the_same_at_any_thread_count() {
    let Some(one) = bf16_runtime(1) else { return };
    let m = common::mnist();
    let small = m.train.slice(0..2000, "small");
    for preset in ["dropout", "cnn1", "lstm", "gru", "rnn"] {
        let mut cfg = TrainConfig::preset(preset).unwrap();
        cfg.epochs = 1;
        let run = |rt: Runtime| {
            let mut t = nnlab::train::Trainer::new(&cfg, small.shape(), 10, rt).unwrap();
            common::fit(&mut t, &small).unwrap();
            common::weights(&mut t.model.net)
        };
        let bits = run(one);
        assert!(
            bits == run(bf16_runtime(2).unwrap()),
            "{preset}: 1 and 2 threads differ"
        );
        assert!(
            bits == run(bf16_runtime(3).unwrap()),
            "{preset}: 1 and 3 threads differ"
        );
        assert!(
            bits != run(Runtime::single()),
            "{preset}: bf16 gave f32's bits"
        );
    }
}

/// The course's first CNN, one epoch on 10,000 training images with its convolutions
/// in bf16: >= 90% on the test images, within a point of the same run in f32.
#[test]
fn cnn_in_bf16_learns_as_in_f32() {
    learns_as_in_f32("cnn1", 10_000, 0.90);
}

/// Trains `preset` for one epoch on the first `images` training images in bf16 (where
/// the CPU has the instructions) and in f32: the bf16 run reaches `floor` on the test
/// images and lands within a point of the f32 run.
fn learns_as_in_f32(preset: &str, images: usize, floor: f32) {
    let Some(rt) = bf16_runtime(0) else { return };
    let m = common::mnist();
    let part = m.train.slice(0..images, "part");
    let mut cfg = TrainConfig::preset(preset).unwrap();
    cfg.epochs = 1;
    let run = |rt: Runtime| {
        let mut t = nnlab::train::Trainer::new(&cfg, part.shape(), 10, rt).unwrap();
        common::fit(&mut t, &part).unwrap();
        t.model.evaluate(&m.test, &t.rt).accuracy
    };
    let (low, full) = (run(rt), run(Runtime::default()));
    eprintln!("{preset}, one epoch of {images} images: bf16 {low}, f32 {full}");
    assert!(
        low >= floor,
        "{preset}: bf16 test accuracy {low} (f32: {full})"
    );
    assert!(
        (low - full).abs() < 0.01,
        "{preset}: bf16 {low} against f32 {full}"
    );
}

/// One convolution's three products in bf16 (each at least 16 columns wide, so each
/// takes the bf16 kernel; the portable one on a CPU without AVX512-BF16): forward,
/// weight gradient (25 images: three chunks over two blocks) and input gradient
/// match products of the bf16-rounded operands summed in f64, and differ from the
/// unrounded ones by more than f32's rounding could (so none fell back to f32).
#[test]
fn conv2d_products_take_the_bf16_kernel() {
    use nnlab::init::Init;
    use nnlab::layers::{Conv2d, Layer, Mode, Pass};
    use nnlab::rng::Rng;
    use nnlab::tensor::Matrix;
    use nnlab::tensor::im2col::{Axis, Window, col2im, im2col};

    // set directly, not through `with_precision`, so that a CPU without the
    // instructions runs it too
    let rt = Runtime {
        precision: Precision::Bf16,
        ..Runtime::default().with_threads(2)
    };
    let r = |v: f32| bf16::from_bf16(bf16::to_bf16(v)) as f64;
    let exact = |v: f32| v as f64;
    // 3 channels of 6x7, 3x3, padding 1: patch 27, 42 pixels, 20 filters
    let g = Window {
        channels: 3,
        y: Axis::padded(6, 3, 1, 1).unwrap(),
        x: Axis::padded(7, 3, 1, 1).unwrap(),
    };
    let (batch, out, patch, pix) = (25, 20, g.patch(), g.out_pixels());
    let mut rng = Rng::new(31);
    let mut l = Conv2d::new(g, out, Init::Normal(1.0), Init::Normal(1.0), &mut rng);
    let random = |rows: usize, cols: usize, rng: &mut Rng| {
        Matrix::from_vec(rows, cols, (0..rows * cols).map(|_| rng.normal()).collect())
    };
    let x = random(batch, g.in_size(), &mut rng);
    let dy = random(batch, out * pix, &mut rng);
    let mut y = Matrix::zeros(batch, out * pix);
    let mut dx = Matrix::zeros(batch, g.in_size());
    l.forward(
        &x,
        &mut y,
        &mut Pass::new(Mode::Train, &mut Rng::new(0), &rt),
    );
    l.backward(&x, &y, &dy, Some(&mut dx), &rt);

    // the references, from each image's columns
    let mut cols = vec![0.0; patch * pix];
    let mut dw = [vec![0f64; out * patch], vec![0f64; out * patch]];
    let (mut worst, mut off) = ([0f64; 3], [0f64; 3]);
    let mut note = |i: usize, got: f32, rounded: f64, unrounded: f64| {
        worst[i] = worst[i].max((got as f64 - rounded).abs() / (1.0 + rounded.abs()));
        off[i] = off[i].max((got as f64 - unrounded).abs());
    };
    for b in 0..batch {
        im2col(&g, x.row(b), &mut cols);
        let dyb = &dy.row(b);
        for o in 0..out {
            for p in 0..pix {
                let sum = |f: &dyn Fn(f32) -> f64| {
                    (0..patch)
                        .map(|k| f(l.w.data[o * patch + k]) * f(cols[k * pix + p]))
                        .sum::<f64>()
                        + l.b[o] as f64
                };
                note(0, y.row(b)[o * pix + p], sum(&r), sum(&exact));
            }
            for k in 0..patch {
                for (s, f) in dw.iter_mut().zip([&r as &dyn Fn(f32) -> f64, &exact]) {
                    s[o * patch + k] += (0..pix)
                        .map(|p| f(dyb[o * pix + p]) * f(cols[k * pix + p]))
                        .sum::<f64>();
                }
            }
        }
        // dcols = Wᵀ dy_b, then folded back onto the image
        let fold = |f: &dyn Fn(f32) -> f64| {
            let dcols: Vec<f32> = (0..patch * pix)
                .map(|i| {
                    let (k, p) = (i / pix, i % pix);
                    (0..out)
                        .map(|o| f(l.w.data[o * patch + k]) * f(dyb[o * pix + p]))
                        .sum::<f64>() as f32
                })
                .collect();
            let mut img = vec![0.0; g.in_size()];
            col2im(&g, &dcols, &mut img);
            img
        };
        let (rounded, unrounded) = (fold(&r), fold(&exact));
        for i in 0..g.in_size() {
            note(2, dx.row(b)[i], rounded[i] as f64, unrounded[i] as f64);
        }
    }
    for ((&got, &rounded), &unrounded) in l.dw.data.iter().zip(&dw[0]).zip(&dw[1]) {
        note(1, got, rounded, unrounded);
    }
    for (i, name) in ["forward", "weight gradient", "input gradient"]
        .iter()
        .enumerate()
    {
        eprintln!(
            "{name}: off the rounded reference by {:.1e} (relative), off the unrounded by {:.1e}",
            worst[i], off[i]
        );
        assert!(worst[i] < 1e-5, "{name} is not the bf16 product");
        assert!(off[i] > 1e-3, "{name} matches the unrounded product: f32?");
    }
}

/// A recurrent layer's step products, `h W_hhᵀ` forward and `dg W_hh` backward, run
/// on the bf16 kernel in bf16 (each within 1e-5, relative, of the product of the
/// bf16-rounded operands, and off the unrounded one by 1e-3 or more) and in f32
/// otherwise (within 1e-5 of the unrounded one).
#[test]
fn recurrent_steps_take_the_bf16_kernel() {
    use nnlab::init::Init;
    use nnlab::layers::recurrent::{RecurrentParams, RowsPtr};
    use nnlab::rng::Rng;
    use nnlab::tensor::Matrix;

    let (steps, features, hidden, gates, batch) = (2, 3, 20, 4, 25);
    let gh = gates * hidden;
    let mut rng = Rng::new(41);
    let mut p = RecurrentParams::new(
        steps,
        features,
        hidden,
        gates,
        Some(Init::Normal(1.0)),
        &mut rng,
    );
    let mut random = |rows: usize, cols: usize| {
        Matrix::from_vec(rows, cols, (0..rows * cols).map(|_| rng.normal()).collect())
    };
    let (mut hs, dg) = (random(steps * batch, hidden), random(batch, gh));
    let r = |v: f32| bf16::from_bf16(bf16::to_bf16(v)) as f64;
    let exact = |v: f32| v as f64;
    let w = p.w_hh.data.clone();
    // out[b, j] = Σ_u h_0[b, u] W_hh[j, u];  dh[b, u] = Σ_j dg[b, j] W_hh[j, u]
    let forward = |f: &dyn Fn(f32) -> f64, b: usize, j: usize| {
        (0..hidden)
            .map(|u| f(hs.data[b * hidden + u]) * f(w[j * hidden + u]))
            .sum::<f64>()
    };
    let backward = |f: &dyn Fn(f32) -> f64, b: usize, u: usize| {
        (0..gh)
            .map(|j| f(dg.data[b * gh + j]) * f(w[j * hidden + u]))
            .sum::<f64>()
    };
    let (fw, bw): (Vec<_>, Vec<_>) = (
        [&r as &dyn Fn(f32) -> f64, &exact]
            .iter()
            .map(|f| {
                (0..batch * gh)
                    .map(|e| forward(f, e / gh, e % gh))
                    .collect::<Vec<_>>()
            })
            .collect(),
        [&r as &dyn Fn(f32) -> f64, &exact]
            .iter()
            .map(|f| {
                (0..batch * hidden)
                    .map(|e| backward(f, e / hidden, e % hidden))
                    .collect::<Vec<_>>()
            })
            .collect(),
    );
    let hs_ptr = RowsPtr::rows_of(&mut hs);
    for precision in [Precision::Bf16, Precision::F32] {
        let rt = Runtime {
            precision,
            ..Runtime::default().with_threads(2)
        };
        p.ready_forward(&rt, true);
        p.ready_backward(&rt);
        let mut packs = bf16::Packs::default();
        let mut out = vec![0.0; batch * gh];
        // SAFETY: `hs` is read through this pointer alone
        unsafe { p.add_previous(hs_ptr, 1, batch, 0, batch, &mut out, &mut packs) };
        let mut dh = vec![0.0; batch * hidden];
        p.back_through(&dg.data, &mut dh, false, &mut packs);
        for (name, got, refs) in [("h W_hhᵀ", &out, &fw), ("dg W_hh", &dh, &bw)] {
            let off = |want: &[f64]| {
                got.iter()
                    .zip(want)
                    .map(|(&g, &w)| (g as f64 - w).abs() / (1.0 + w.abs()))
                    .fold(0.0, f64::max)
            };
            let (rounded, unrounded) = (off(&refs[0]), off(&refs[1]));
            eprintln!(
                "{precision:?} {name}: off the rounded product by {rounded:.1e}, the unrounded by {unrounded:.1e}"
            );
            match precision {
                Precision::Bf16 => {
                    assert!(rounded < 1e-5, "{name} is not the bf16 product");
                    assert!(
                        unrounded > 1e-3,
                        "{name} matches the unrounded product: f32?"
                    );
                }
                Precision::F32 => assert!(unrounded < 1e-5, "{name} is not the f32 product"),
            }
        }
    }
}

/// The weights the bf16 steps read are packed again by every pass: a layer whose
/// `W_hh` changed after a forward and backward (as an optimiser step changes it)
/// computes what a layer built with the new weights computes, to the bit, forward and
/// backward; and differently from before the change.
#[test]
fn recurrent_steps_in_bf16_read_the_current_weights() {
    use nnlab::init::Init;
    use nnlab::layers::{Layer, Lstm, Mode, Pass};
    use nnlab::rng::Rng;
    use nnlab::tensor::Matrix;

    let rt = Runtime {
        precision: Precision::Bf16,
        ..Runtime::default().with_threads(2)
    };
    let (steps, features, hidden, batch) = (5, 4, 16, 9);
    let mut rng = Rng::new(43);
    let mut random = |rows: usize, cols: usize| {
        Matrix::from_vec(rows, cols, (0..rows * cols).map(|_| rng.normal()).collect())
    };
    let (x, dy, w2) = (
        random(batch, steps * features),
        random(batch, hidden),
        random(4 * hidden, hidden),
    );
    let new = || {
        Lstm::new(
            steps,
            features,
            hidden,
            Some(Init::Normal(0.5)),
            &mut Rng::new(7),
        )
    };
    let pass = |l: &mut Lstm| {
        let mut y = Matrix::zeros(batch, hidden);
        let mut dx = Matrix::zeros(batch, steps * features);
        l.forward(
            &x,
            &mut y,
            &mut Pass::new(Mode::Train, &mut Rng::new(0), &rt),
        );
        l.backward(&x, &y, &dy, Some(&mut dx), &rt);
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        (bits(&y.data), bits(&dx.data), bits(&l.p.dw_hh.data))
    };
    let mut changed = new();
    let before = pass(&mut changed);
    changed.p.w_hh.data.copy_from_slice(&w2.data);
    let after = pass(&mut changed);
    let mut fresh = new();
    fresh.p.w_hh.data.copy_from_slice(&w2.data);
    assert!(
        after == pass(&mut fresh),
        "a pass read weights packed before the change"
    );
    assert!(
        after.0 != before.0 && after.1 != before.1,
        "the change changed nothing"
    );
}

/// An LSTM, one epoch on 20,000 training images with all its products in bf16 (its
/// steps' included, so `h` is rounded at each of 28 steps): within a point of the
/// same run in f32 on the test images.
#[test]
fn lstm_in_bf16_learns_as_in_f32() {
    learns_as_in_f32("lstm", 20_000, 0.85);
}
