//! Times a convolution layer's passes and a max pool's on the `cnn` preset's shapes
//! (batch 100).
//! `cargo run --release --example conv_parts`
use nnlab::init::Init;
use nnlab::layers::{Conv2d, Layer, MaxPool2d, Mode, Pass};
use nnlab::rng::Rng;
use nnlab::runtime::Runtime;
use nnlab::tensor::Matrix;
use nnlab::tensor::im2col::{Axis, Window};
use std::time::Instant;

fn time(name: &str, reps: usize, mut f: impl FnMut()) {
    f();
    let t = Instant::now();
    for _ in 0..reps {
        f();
    }
    println!(
        "{name:<28} {:8.3} ms",
        t.elapsed().as_secs_f64() * 1e3 / reps as f64
    );
}

fn main() {
    let rt = Runtime::default();
    let mut rng = Rng::new(1);
    for (c, hw, o) in [(1usize, 28usize, 32usize), (32, 14, 64), (64, 7, 128)] {
        println!("-- conv {c} -> {o} on {hw}x{hw}, batch 100");
        let g = Window {
            channels: c,
            y: Axis::padded(hw, 3, 1, 1).unwrap(),
            x: Axis::padded(hw, 3, 1, 1).unwrap(),
        };
        let x = Matrix::from_vec(
            100,
            g.in_size(),
            (0..100 * g.in_size()).map(|_| rng.normal()).collect(),
        );
        let mut conv = Conv2d::new(g, o, Init::Normal(0.1), Init::Zeros, &mut rng);
        let mut y = Matrix::zeros(100, o * g.out_pixels());
        time("conv forward", 20, || {
            conv.forward(
                &x,
                &mut y,
                &mut Pass::new(Mode::Train, &mut Rng::new(0), &rt),
            )
        });
        let mut dx = Matrix::zeros(100, g.in_size());
        time("conv backward (dW only)", 20, || {
            conv.backward(&x, &y, &y, None, &rt)
        });
        time("conv backward (dW, dx)", 20, || {
            conv.backward(&x, &y, &y, Some(&mut dx), &rt)
        });
        let pg = Window {
            channels: o,
            y: Axis::padded(hw, 2, 2, 0).unwrap(),
            x: Axis::padded(hw, 2, 2, 0).unwrap(),
        };
        let mut pool = MaxPool2d::new(pg);
        let mut py = Matrix::zeros(100, o * pg.out_pixels());
        time("maxpool forward", 20, || {
            pool.forward(
                &y,
                &mut py,
                &mut Pass::new(Mode::Train, &mut Rng::new(0), &rt),
            )
        });
        let mut dyy = Matrix::zeros(100, y.cols);
        time("maxpool backward", 20, || {
            pool.backward(&y, &py, &py, Some(&mut dyy), &rt)
        });
    }
}
