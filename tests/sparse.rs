//! The sparse first-layer products (`tensor::sparse`) on real MNIST: they agree with
//! the dense products up to rounding, give the same bits on any thread count, and
//! train as well. Each test sets process-wide switches, so they take turns.

mod common;

use nnlab::config::TrainConfig;
use nnlab::init::Init;
use nnlab::layers::{Dense, Layer, Mode};
use nnlab::rng::Rng;
use nnlab::tensor::sparse::set_sparse;
use nnlab::tensor::{Matrix, set_threads};
use nnlab::train::Trainer;
use std::sync::Mutex;

static TURN: Mutex<()> = Mutex::new(());

/// A batch of 100 MNIST training images.
fn batch() -> Matrix {
    let m = common::mnist();
    let mut x = Matrix::zeros(100, 784);
    for r in 0..100 {
        x.row_mut(r).copy_from_slice(m.train.images.row(r * 7));
    }
    x
}

/// `(y, dW, db)` of a 784 -> 300 layer on the batch, at `threads` threads.
fn pass(threads: usize, sparse: bool) -> (Vec<f32>, Vec<f32>, Vec<f32>, bool) {
    set_threads(threads);
    set_sparse(sparse);
    let x = batch();
    let mut rng = Rng::new(3);
    let mut l = Dense::new(784, 300, Init::XavierUniform, Init::Normal(0.1), &mut rng);
    let mut y = Matrix::zeros(100, 300);
    l.forward(&x, &mut y, Mode::Train, &mut rng);
    let dy = Matrix::from_vec(100, 300, (0..30000).map(|_| rng.normal()).collect());
    l.backward(&x, &y, &dy, None);
    let used = l.last_input_was_sparse();
    set_threads(1);
    set_sparse(true);
    (y.data, l.dw.data.clone(), l.db.clone(), used)
}

#[test]
fn sparse_products_match_dense_and_ignore_the_thread_count() {
    let _turn = TURN.lock().unwrap();
    let one = pass(1, true);
    assert!(
        one.3,
        "MNIST is 81% zeros: the sparse products should be taken"
    );
    for t in [2, 3] {
        assert_eq!(one, pass(t, true), "{t} threads");
    }
    let dense = pass(2, false);
    assert!(!dense.3);
    for (a, b) in [(&one.0, &dense.0), (&one.1, &dense.1), (&one.2, &dense.2)] {
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= 1e-5 * (1.0 + y.abs()), "{x} vs {y}");
        }
    }
}

#[test]
fn sparse_and_dense_first_layers_train_alike() {
    let _turn = TURN.lock().unwrap();
    let m = common::mnist();
    let small = m.train.slice(0..10000, "small");
    let run = |sparse: bool| {
        set_sparse(sparse);
        let mut cfg = TrainConfig::preset("xavier").unwrap();
        cfg.epochs = 1;
        let mut t = Trainer::new(&cfg, 784, 10).unwrap();
        common::fit(&mut t, &small).unwrap();
        set_sparse(true);
        t.model.evaluate(&m.test).accuracy
    };
    let (s, d) = (run(true), run(false));
    assert!(s > 0.9 && (s - d).abs() < 0.01, "sparse {s}, dense {d}");
}
