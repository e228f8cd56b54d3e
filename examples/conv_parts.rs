//! Times the parts of a convolution layer's step on the `cnn1` shapes: im2col,
//! col2im, the layout moves, the three products and a max pool.
//! `cargo run --release --example conv_parts`
use nnlab::layers::{Layer, MaxPool2d, Mode, Pass};
use nnlab::rng::Rng;
use nnlab::runtime::Runtime;
use nnlab::tensor::im2col::{Axis, Window, col2im, im2col, pixels_to_planes, planes_to_pixels};
use nnlab::tensor::{Matrix, matmul_nn, matmul_nt, matmul_tn};
use std::time::Instant;

fn time(name: &str, reps: usize, mut f: impl FnMut()) {
    f();
    let t = Instant::now();
    for _ in 0..reps {
        f();
    }
    println!("{name:<28} {:8.3} ms", t.elapsed().as_secs_f64() * 1e3 / reps as f64);
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
        let x = Matrix::from_vec(100, g.in_size(), (0..100 * g.in_size()).map(|_| rng.normal()).collect());
        let mut p = Matrix::default();
        time("im2col", 20, || im2col(&rt, &g, &x, &mut p));
        let mut dx = Matrix::zeros(100, g.in_size());
        time("col2im", 20, || col2im(&rt, &g, &p, &mut dx));
        let w = Matrix::from_vec(o, g.patch(), (0..o * g.patch()).map(|_| rng.normal()).collect());
        let mut z = Matrix::zeros(p.rows, o);
        time("Z = P Wt", 20, || matmul_nt(&rt, &p, &w, &mut z, false));
        let mut y = Matrix::zeros(100, o * g.out_pixels());
        time("pixels_to_planes", 20, || pixels_to_planes(&rt, &z, None, &mut y));
        time("planes_to_pixels", 20, || planes_to_pixels(&rt, &y, o, &mut z));
        let mut dw = Matrix::zeros(o, g.patch());
        time("dW = dZt P", 20, || matmul_tn(&rt, &z, &p, &mut dw, false));
        let mut dp = Matrix::zeros(p.rows, p.cols);
        time("dP = dZ W", 20, || matmul_nn(&rt, &z, &w, &mut dp, false));
        let pg = Window {
            channels: o,
            y: Axis::padded(hw, 2, 2, 0).unwrap(),
            x: Axis::padded(hw, 2, 2, 0).unwrap(),
        };
        let mut pool = MaxPool2d::new(pg);
        let mut py = Matrix::zeros(100, o * pg.out_pixels());
        time("maxpool forward", 20, || {
            pool.forward(&y, &mut py, &mut Pass::new(Mode::Train, &mut Rng::new(0), &rt))
        });
        let mut dyy = Matrix::zeros(100, y.cols);
        time("maxpool backward", 20, || pool.backward(&y, &py, &py, Some(&mut dyy), &rt));
    }
}
