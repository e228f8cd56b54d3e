//! Finite-difference gradient checks (see `nnlab::gradcheck` for the tolerance) for
//! every layer, every activation, maxout, dropout with a fixed mask, a whole
//! network, and the loss; on several shapes including batch 1 and odd widths.

use nnlab::gradcheck::{check_layer, check_layer_at};
use nnlab::init::Init;
use nnlab::layers::{Activation, ActivationLayer, Dense, Dropout, Layer, Maxout, Mode, Sequential};
use nnlab::loss::softmax_cross_entropy;
use nnlab::rng::Rng;
use nnlab::tensor::Matrix;

const SHAPES: [(usize, usize, usize); 4] = [(1, 3, 2), (3, 7, 5), (4, 1, 9), (5, 13, 11)];

fn ok(layer: &mut dyn Layer, batch: usize, mode: Mode, seed: u64) {
    let rep = check_layer(layer, batch, 1.0, mode, seed, 60)
        .unwrap_or_else(|e| panic!("{}: {e}", layer.describe()));
    assert!(rep.compared > 0);
}

#[test]
fn dense() {
    for (i, &(batch, inp, out)) in SHAPES.iter().enumerate() {
        let mut rng = Rng::new(i as u64);
        let mut l = Dense::new(inp, out, Init::Normal(0.5), Init::Normal(0.5), &mut rng);
        ok(&mut l, batch, Mode::Train, i as u64);
    }
}

/// Mostly-zero inputs (as MNIST's are) take the sparse products: the gradients hold
/// there too, including at the zeros.
#[test]
fn dense_on_a_sparse_input() {
    for (i, &(batch, inp, out)) in [(1, 9, 2), (6, 40, 70), (20, 33, 129)].iter().enumerate() {
        let mut rng = Rng::new(40 + i as u64);
        let mut l = Dense::new(inp, out, Init::Normal(0.5), Init::Normal(0.5), &mut rng);
        let x = Matrix::from_vec(
            batch,
            inp,
            (0..batch * inp)
                .map(|_| {
                    if rng.uniform() < 0.15 {
                        rng.normal()
                    } else {
                        0.0
                    }
                })
                .collect(),
        );
        // evaluation mode gathers the entries by row only; a backward pass after it
        // must still be right
        for mode in [Mode::Train, Mode::Eval] {
            let rep = check_layer_at(&mut l, x.clone(), mode, 40 + i as u64, 80)
                .unwrap_or_else(|e| panic!("{} ({mode:?}): {e}", l.describe()));
            assert!(rep.compared > 0);
            assert!(l.last_input_was_sparse());
        }
    }
}

#[test]
fn activations() {
    let acts = [
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::Relu,
        Activation::LeakyRelu(0.01),
        Activation::LeakyRelu(0.1),
        Activation::Elu(1.0),
        Activation::Elu(0.5),
        Activation::Identity,
    ];
    for act in acts {
        for (i, &(batch, dim, _)) in SHAPES.iter().enumerate() {
            let mut l = ActivationLayer::new(act, dim);
            ok(&mut l, batch, Mode::Train, 10 + i as u64);
        }
    }
}

#[test]
fn maxout() {
    for k in [1, 2, 3] {
        for (i, &(batch, inp, out)) in SHAPES.iter().enumerate() {
            let mut rng = Rng::new(i as u64);
            let mut l = Maxout::new(inp, out, k, Init::Normal(0.5), Init::Normal(0.5), &mut rng);
            ok(&mut l, batch, Mode::Train, 20 + i as u64);
        }
    }
}

#[test]
fn dropout_with_fixed_mask() {
    for (i, &(batch, dim, _)) in SHAPES.iter().enumerate() {
        let mut l = Dropout::new(0.7, dim);
        l.frozen = true; // the same mask in every forward of the check
        ok(&mut l, batch, Mode::Train, 30 + i as u64);
        // some units were really dropped, so the check covered zeros and 1/keep
        if batch * dim > 10 {
            assert!(l.mask.data.contains(&0.0));
        }
        ok(&mut l, batch, Mode::Eval, 30 + i as u64);
    }
}

/// A whole lab-style network: dense, activations, dropout, dense.
#[test]
fn network() {
    let mut rng = Rng::new(3);
    let mut net = Sequential::new(6);
    net.push(Box::new(Dense::new(
        6,
        8,
        Init::XavierUniform,
        Init::Normal(0.1),
        &mut rng,
    )))
    .unwrap();
    net.push(Box::new(ActivationLayer::new(Activation::Tanh, 8)))
        .unwrap();
    let mut d = Dropout::new(0.8, 8);
    d.frozen = true;
    net.push(Box::new(d)).unwrap();
    net.push(Box::new(Maxout::new(
        8,
        5,
        2,
        Init::XavierUniform,
        Init::Normal(0.1),
        &mut rng,
    )))
    .unwrap();
    net.push(Box::new(Dense::new(
        5,
        3,
        Init::XavierUniform,
        Init::Normal(0.1),
        &mut rng,
    )))
    .unwrap();
    ok(&mut net, 4, Mode::Train, 40);
    ok(&mut net, 1, Mode::Train, 41);
}

/// The fused softmax cross-entropy against central differences of its own value,
/// including logits in the hundreds (lab 10-1's first steps).
#[test]
fn softmax_cross_entropy_gradient() {
    let mut rng = Rng::new(9);
    for &(batch, classes, scale) in &[
        (1usize, 2usize, 1.0f32),
        (3, 10, 1.0),
        (5, 7, 3.0),
        (4, 10, 200.0),
    ] {
        let mut z = Matrix::from_vec(
            batch,
            classes,
            (0..batch * classes).map(|_| scale * rng.normal()).collect(),
        );
        let labels: Vec<u8> = (0..batch).map(|_| rng.below(classes) as u8).collect();
        let mut d = Matrix::zeros(batch, classes);
        let loss = softmax_cross_entropy(&z, &labels, &mut d);
        assert!(loss.is_finite());
        let analytic = d.clone();
        let h = 1e-2 * scale.max(1.0).sqrt();
        for i in 0..z.data.len() {
            let orig = z.data[i];
            z.data[i] = orig + h;
            let lp = softmax_cross_entropy(&z, &labels, &mut d) as f64;
            z.data[i] = orig - h;
            let lm = softmax_cross_entropy(&z, &labels, &mut d) as f64;
            z.data[i] = orig;
            let num = (lp - lm) / (2.0 * h as f64);
            let ana = analytic.data[i] as f64;
            assert!(
                (num - ana).abs() < 2e-3 + 2e-2 * ana.abs(),
                "dz[{i}] {ana} vs {num} (scale {scale})"
            );
        }
    }
}

/// A deliberately wrong gradient is caught: the check can fail.
#[test]
fn the_check_catches_a_wrong_gradient() {
    struct Wrong(Dense);
    impl Layer for Wrong {
        fn describe(&self) -> String {
            "wrong".into()
        }
        fn input(&self) -> nnlab::layers::Features {
            self.0.input()
        }
        fn output(&self) -> nnlab::layers::Features {
            self.0.output()
        }
        fn forward(&mut self, x: &Matrix, y: &mut Matrix, pass: &mut nnlab::layers::Pass<'_>) {
            self.0.forward(x, y, pass)
        }
        fn backward(
            &mut self,
            x: &Matrix,
            y: &Matrix,
            dy: &Matrix,
            dx: Option<&mut Matrix>,
            rt: &nnlab::Runtime,
        ) {
            self.0.backward(x, y, dy, dx, rt);
            self.0.db.iter_mut().for_each(|g| *g *= 1.1); // a 10% error in db
        }
        fn visit_params(&mut self, f: &mut dyn FnMut(nnlab::layers::Param<'_>)) {
            self.0.visit_params(f)
        }
    }
    let mut rng = Rng::new(1);
    let mut w = Wrong(Dense::new(
        4,
        3,
        Init::Normal(0.5),
        Init::Normal(0.5),
        &mut rng,
    ));
    assert!(check_layer(&mut w, 5, 1.0, Mode::Train, 1, 50).is_err());
}

/// Backward overwrites gradients (the documented convention): two identical
/// backward passes leave the same gradient, not twice it.
#[test]
fn gradients_overwrite() {
    let mut rng = Rng::new(2);
    let mut l = Dense::new(4, 3, Init::Normal(0.5), Init::Normal(0.5), &mut rng);
    let x = Matrix::from_vec(2, 4, (0..8).map(|i| i as f32 * 0.1).collect());
    let mut y = Matrix::zeros(2, 3);
    let rt = nnlab::Runtime::default();
    l.forward(
        &x,
        &mut y,
        &mut nnlab::layers::Pass::new(Mode::Train, &mut rng, &rt),
    );
    let dy = Matrix::from_vec(2, 3, vec![1.0; 6]);
    l.backward(&x, &y, &dy, None, &rt);
    let first = (l.dw.clone(), l.db.clone());
    l.backward(&x, &y, &dy, None, &rt);
    assert_eq!((l.dw.clone(), l.db.clone()), first);
}

#[test]
fn batch_norm_train_and_eval() {
    use nnlab::layers::BatchNorm;
    for (i, &(batch, dim, _)) in SHAPES.iter().enumerate() {
        if batch < 2 {
            continue; // batch statistics need two rows
        }
        let mut l = BatchNorm::new(dim);
        // non-trivial scale and shift
        l.visit_params(&mut |p| {
            p.value
                .iter_mut()
                .enumerate()
                .for_each(|(k, v)| *v += 0.3 * k as f32 - 0.2)
        });
        ok(&mut l, batch, Mode::Train, 50 + i as u64);
        ok(&mut l, batch, Mode::Eval, 50 + i as u64);
    }
}

fn mlp(inp: usize, widths: &[usize], act: Activation, rng: &mut Rng) -> Sequential {
    let mut s = Sequential::new(inp);
    let mut w = inp;
    for &o in widths {
        s.push(Box::new(Dense::new(
            w,
            o,
            Init::Normal(0.5),
            Init::Normal(0.2),
            rng,
        )))
        .unwrap();
        s.push(Box::new(ActivationLayer::new(act, o))).unwrap();
        w = o;
    }
    s
}

#[test]
fn residual_blocks() {
    use nnlab::layers::Residual;
    let mut rng = Rng::new(4);
    // identity shortcut
    let mut r = Residual::new(mlp(6, &[5, 6], Activation::Tanh, &mut rng), &mut rng);
    assert!(r.proj.is_none());
    ok(&mut r, 3, Mode::Train, 60);
    ok(&mut r, 1, Mode::Train, 61);
    // projection shortcut (width 6 -> 4)
    let mut r = Residual::new(mlp(6, &[4], Activation::Sigmoid, &mut rng), &mut rng);
    assert!(r.proj.is_some());
    ok(&mut r, 3, Mode::Train, 62);
}

#[test]
fn branch_blocks_and_nesting() {
    use nnlab::layers::{Branch, Merge, Residual};
    let mut rng = Rng::new(5);
    let mut sum = Branch::new(
        vec![
            mlp(5, &[4], Activation::Tanh, &mut rng),
            mlp(5, &[3, 4], Activation::Elu(1.0), &mut rng),
        ],
        Merge::Sum,
    );
    ok(&mut sum, 3, Mode::Train, 70);
    let mut cat = Branch::new(
        vec![
            mlp(5, &[2], Activation::Tanh, &mut rng),
            mlp(5, &[3], Activation::Sigmoid, &mut rng),
        ],
        Merge::Concat,
    );
    assert_eq!(cat.out_dim(), 5);
    ok(&mut cat, 4, Mode::Train, 71);
    ok(&mut cat, 1, Mode::Train, 72);
    // a branch inside a residual block inside a network
    let mut net = Sequential::new(5);
    net.push(Box::new(Residual::new(
        {
            let mut s = Sequential::new(5);
            s.push(Box::new(Branch::new(
                vec![
                    mlp(5, &[5], Activation::Tanh, &mut rng),
                    mlp(5, &[5], Activation::Tanh, &mut rng),
                ],
                Merge::Sum,
            )))
            .unwrap();
            s
        },
        &mut rng,
    )))
    .unwrap();
    net.push(Box::new(Dense::new(
        5,
        3,
        Init::Normal(0.5),
        Init::Zeros,
        &mut rng,
    )))
    .unwrap();
    ok(&mut net, 3, Mode::Train, 73);
    // nested names are unique and state_dict-like
    let mut names = Vec::new();
    net.visit_params(&mut |p| names.push(p.name.to_string()));
    assert!(
        names.contains(&"0.f.0.branches.1.0.weight".to_string()),
        "{names:?}"
    );
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), names.len());
}
