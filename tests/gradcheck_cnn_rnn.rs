//! Finite-difference gradient checks (see `nnlab::gradcheck` for the tolerance) of the
//! convolutional and recurrent layers at awkward sizes (stride 2, padding 0/1/2,
//! `SAME`, non-square images, 1 and 3 channels, 5+ steps), and of a small conv net and
//! a small LSTM net end to end; plus convolution against a direct convolution.

use nnlab::gradcheck::{check_layer, check_layer_at};
use nnlab::init::Init;
use nnlab::layers::{
    Activation, ActivationLayer, AvgPool2d, BatchNorm, Conv2d, Dense, Features, Flatten, Gru,
    Layer, Lstm, MaxPool2d, Mode, Pass, Rnn, Sequential,
};
use nnlab::rng::Rng;
use nnlab::runtime::Runtime;
use nnlab::tensor::Matrix;
use nnlab::tensor::im2col::{Axis, Window};

fn ok(layer: &mut dyn Layer, batch: usize, mode: Mode, seed: u64) {
    let rep = check_layer(layer, batch, 1.0, mode, seed, 40)
        .unwrap_or_else(|e| panic!("{}: {e}", layer.describe()));
    assert!(rep.compared > 0, "{}", layer.describe());
}

/// (channels, h, w, kernel, stride, pad): square and not, 1 and 3 channels, stride
/// 1 and 2, padding 0, 1 and 2.
const CONVS: [(usize, usize, usize, usize, usize, usize); 6] = [
    (1, 5, 5, 3, 1, 1),
    (3, 6, 4, 3, 2, 0),
    (1, 7, 5, 3, 2, 2),
    (3, 5, 7, 2, 1, 1),
    (2, 4, 6, 1, 1, 0),
    (1, 8, 3, 5, 2, 2),
];

fn window(c: usize, h: usize, w: usize, k: usize, s: usize, p: usize) -> Window {
    Window {
        channels: c,
        y: Axis::padded(h, k, s, p).unwrap(),
        x: Axis::padded(w, k, s, p).unwrap(),
    }
}

#[test]
fn conv2d() {
    for (i, &(c, h, w, k, s, p)) in CONVS.iter().enumerate() {
        let mut rng = Rng::new(i as u64);
        let g = window(c, h, w, k, s, p);
        let mut l = Conv2d::new(g, 4, Init::Normal(0.4), Init::Normal(0.4), &mut rng);
        ok(&mut l, 1 + i % 3, Mode::Train, 100 + i as u64);
    }
}

/// The convolution against its definition, `y[b,o,i,j] = bias[o] + Σ_{c,u,v}
/// W[o,c,u,v] x[b, c, i·s - p + u, j·s - p + v]` (zero outside), in f64.
#[test]
fn conv2d_matches_a_direct_convolution() {
    for (i, &(c, h, w, k, s, p)) in CONVS.iter().enumerate() {
        let mut rng = Rng::new(200 + i as u64);
        let g = window(c, h, w, k, s, p);
        let o = 3;
        let mut l = Conv2d::new(g, o, Init::Normal(1.0), Init::Normal(1.0), &mut rng);
        let batch = 3;
        let x = Matrix::from_vec(
            batch,
            g.in_size(),
            (0..batch * g.in_size()).map(|_| rng.normal()).collect(),
        );
        let (oh, ow) = (g.y.output, g.x.output);
        let mut y = Matrix::zeros(batch, o * oh * ow);
        for threads in [1, 3] {
            let rt = Runtime::new(threads);
            l.forward(
                &x,
                &mut y,
                &mut Pass::new(Mode::Eval, &mut Rng::new(0), &rt),
            );
            for b in 0..batch {
                for oc in 0..o {
                    for yi in 0..oh {
                        for xj in 0..ow {
                            let mut sum = l.b[oc] as f64;
                            for cc in 0..c {
                                for u in 0..k {
                                    for v in 0..k {
                                        let (iy, ix) = (
                                            (yi * s + u) as isize - p as isize,
                                            (xj * s + v) as isize - p as isize,
                                        );
                                        if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize
                                        {
                                            continue;
                                        }
                                        let xv = x.data[b * g.in_size()
                                            + cc * h * w
                                            + iy as usize * w
                                            + ix as usize];
                                        let wv = l.w.data[oc * c * k * k + cc * k * k + u * k + v];
                                        sum += xv as f64 * wv as f64;
                                    }
                                }
                            }
                            let got = y.data[b * o * oh * ow + oc * oh * ow + yi * ow + xj];
                            assert!(
                                (got as f64 - sum).abs() < 1e-4 * (1.0 + sum.abs()),
                                "case {i}: y[{b},{oc},{yi},{xj}] = {got}, direct {sum}"
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn pools() {
    let cases = [
        // (c, h, w, size, stride, axes): PyTorch padding, SAME, non-square, overlapping
        (2, 4, 4, 2, 2, None),
        (1, 7, 7, 2, 2, Some(1)),
        (3, 7, 5, 2, 2, Some(usize::MAX)), // SAME
        (1, 5, 6, 3, 2, Some(1)),
        (2, 3, 5, 3, 1, None),
    ];
    for (i, &(c, h, w, k, s, pad)) in cases.iter().enumerate() {
        let axis = |n| match pad {
            None => Axis::padded(n, k, s, 0).unwrap(),
            Some(usize::MAX) => Axis::same(n, k, s).unwrap(),
            Some(p) => Axis::padded(n, k, s, p).unwrap(),
        };
        let g = Window {
            channels: c,
            y: axis(h),
            x: axis(w),
        };
        ok(&mut MaxPool2d::new(g), 3, Mode::Train, 300 + i as u64);
        ok(&mut AvgPool2d::new(g), 3, Mode::Train, 310 + i as u64);
    }
}

/// Lab 11-2's third pool: 7x7 to 4x4, the last window of each row and column half
/// padding, which never wins.
#[test]
fn same_padded_max_pool_takes_7_to_4() {
    let g = Window {
        channels: 1,
        y: Axis::same(7, 2, 2).unwrap(),
        x: Axis::same(7, 2, 2).unwrap(),
    };
    let mut pool = MaxPool2d::new(g);
    assert_eq!(pool.output(), Features::Image { c: 1, h: 4, w: 4 });
    let x = Matrix::from_vec(1, 49, (0..49).map(|v| -(v as f32)).collect());
    let mut y = Matrix::zeros(1, 16);
    let rt = Runtime::single();
    pool.forward(
        &x,
        &mut y,
        &mut Pass::new(Mode::Eval, &mut Rng::new(0), &rt),
    );
    // each window's top-left pixel is its largest; padding (which would be 0) never wins
    let expect: Vec<f32> = (0..4)
        .flat_map(|i| (0..4).map(move |j| -((2 * i * 7 + 2 * j) as f32)))
        .collect();
    assert_eq!(y.data, expect);
}

#[test]
fn batch_norm_over_channels() {
    let mut l = BatchNorm::new(Features::Image { c: 3, h: 2, w: 3 });
    ok(&mut l, 4, Mode::Train, 400);
    ok(&mut l, 4, Mode::Eval, 401);
    assert_eq!(l.gamma.len(), 3);
    // planes of 35 pixels: summed in 16 partial sums, then the last 3
    let mut l = BatchNorm::new(Features::Image { c: 3, h: 5, w: 7 });
    ok(&mut l, 3, Mode::Train, 402);
}

#[test]
fn flatten() {
    ok(
        &mut Flatten::new(Features::Image { c: 2, h: 3, w: 2 }),
        2,
        Mode::Train,
        450,
    );
}

#[test]
fn recurrent_layers_over_several_steps() {
    for (i, &(t, f, h, batch)) in [(5, 3, 4, 2), (6, 2, 3, 1), (7, 4, 5, 3)]
        .iter()
        .enumerate()
    {
        let s = 500 + 10 * i as u64;
        let mut rng = Rng::new(s);
        let init = Some(Init::Uniform(0.6));
        ok(
            &mut Rnn::new(t, f, h, init, &mut rng),
            batch,
            Mode::Train,
            s,
        );
        ok(
            &mut Lstm::new(t, f, h, init, &mut rng),
            batch,
            Mode::Train,
            s + 1,
        );
        ok(
            &mut Gru::new(t, f, h, init, &mut rng),
            batch,
            Mode::Train,
            s + 2,
        );
        // PyTorch's default initialisation (biases too)
        ok(
            &mut Lstm::new(t, f, h, None, &mut rng),
            batch,
            Mode::Train,
            s + 3,
        );
        ok(
            &mut Gru::new(t, f, h, None, &mut rng),
            batch,
            Mode::Train,
            s + 4,
        );
    }
}

/// A small conv net end to end: conv, batch norm, tanh, average pool (`SAME`), conv
/// (stride 2), flatten, dense.
#[test]
fn small_conv_net() {
    let mut rng = Rng::new(600);
    let mut net = Sequential::new(Features::Image { c: 1, h: 6, w: 5 });
    let g1 = window(1, 6, 5, 3, 1, 1);
    net.push(Box::new(Conv2d::new(
        g1,
        3,
        Init::Normal(0.5),
        Init::Normal(0.2),
        &mut rng,
    )))
    .unwrap();
    net.push(Box::new(BatchNorm::new(net.output()))).unwrap();
    net.push(Box::new(ActivationLayer::new(
        Activation::Tanh,
        net.output(),
    )))
    .unwrap();
    let pg = Window {
        channels: 3,
        y: Axis::same(6, 2, 2).unwrap(),
        x: Axis::same(5, 2, 2).unwrap(),
    };
    net.push(Box::new(AvgPool2d::new(pg))).unwrap();
    let g2 = window(3, 3, 3, 2, 2, 1);
    net.push(Box::new(Conv2d::new(
        g2,
        2,
        Init::Normal(0.5),
        Init::Normal(0.2),
        &mut rng,
    )))
    .unwrap();
    net.push(Box::new(Flatten::new(net.output()))).unwrap();
    let n = net.output().size();
    net.push(Box::new(Dense::new(
        n,
        3,
        Init::Normal(0.5),
        Init::Normal(0.2),
        &mut rng,
    )))
    .unwrap();
    ok(&mut net, 3, Mode::Train, 601);
}

/// Max pooling inside a net: a max pool (PyTorch-padded) reading well-separated
/// inputs, then conv, ReLU, conv, dense. (A max pool after a convolution sees near-ties
/// closer than any finite-difference step somewhere in a batch; the pool itself is
/// checked alone above.)
#[test]
fn small_net_with_a_max_pool() {
    let mut rng = Rng::new(610);
    let mut net = Sequential::new(Features::Image { c: 2, h: 5, w: 6 });
    let pg = Window {
        channels: 2,
        y: Axis::padded(5, 2, 2, 1).unwrap(),
        x: Axis::padded(6, 2, 2, 1).unwrap(),
    };
    net.push(Box::new(MaxPool2d::new(pg))).unwrap();
    let g = window(2, 3, 4, 3, 1, 1);
    net.push(Box::new(Conv2d::new(
        g,
        3,
        Init::Normal(0.5),
        Init::Normal(0.2),
        &mut rng,
    )))
    .unwrap();
    net.push(Box::new(ActivationLayer::new(
        Activation::Relu,
        net.output(),
    )))
    .unwrap();
    let g = window(3, 3, 4, 2, 2, 0);
    net.push(Box::new(Conv2d::new(
        g,
        2,
        Init::Normal(0.5),
        Init::Normal(0.2),
        &mut rng,
    )))
    .unwrap();
    let n = net.output().size();
    net.push(Box::new(Dense::new(
        n,
        2,
        Init::Normal(0.5),
        Init::Normal(0.2),
        &mut rng,
    )))
    .unwrap();
    // distinct inputs 0.1 apart, shuffled
    let batch = 3;
    let mut values: Vec<f32> = (0..batch * 60).map(|v| 0.1 * v as f32 - 9.0).collect();
    rng.shuffle(&mut values);
    let rep = check_layer_at(
        &mut net,
        Matrix::from_vec(batch, 60, values),
        Mode::Train,
        611,
        60,
    )
    .unwrap_or_else(|e| panic!("{}: {e}", net.describe()));
    assert!(rep.compared > 50, "{rep:?}");
}

/// A small LSTM net end to end: an image read as its rows, an LSTM, a dense layer.
#[test]
fn small_lstm_net() {
    let mut rng = Rng::new(700);
    let mut net = Sequential::new(Features::Image { c: 1, h: 6, w: 4 });
    net.push(Box::new(Lstm::new(6, 4, 5, None, &mut rng)))
        .unwrap();
    net.push(Box::new(Dense::new(
        5,
        3,
        Init::Normal(0.5),
        Init::Normal(0.2),
        &mut rng,
    )))
    .unwrap();
    ok(&mut net, 2, Mode::Train, 701);
}

/// Shapes that do not fit are refused by name: a convolution after a flatten.
#[test]
fn a_conv_after_flatten_is_refused() {
    let mut rng = Rng::new(1);
    let mut net = Sequential::new(Features::Image { c: 1, h: 4, w: 4 });
    net.push(Box::new(Flatten::new(net.output()))).unwrap();
    let e = net
        .push(Box::new(Conv2d::new(
            window(1, 4, 4, 3, 1, 1),
            2,
            Init::Zeros,
            Init::Zeros,
            &mut rng,
        )))
        .unwrap_err()
        .to_string();
    assert!(e.contains("conv") && e.contains("a vector of 16"), "{e}");
}
