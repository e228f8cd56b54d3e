//! Times a convolution layer's passes and a max pool's on the `cnn` preset's shapes and
//! the earlier `cnn-best` design's (3x3, padding 1), batch 100: the convolutions in f32
//! and, where the CPU has AVX512-BF16, in bf16 (`--precision bf16`), alternating, the
//! best of 5 rounds each.
//! `cargo run --release --example conv_parts [THREADS]`
use nnlab::init::Init;
use nnlab::layers::{Conv2d, Layer, MaxPool2d, Mode, Pass};
use nnlab::rng::Rng;
use nnlab::runtime::{Precision, Runtime};
use nnlab::tensor::Matrix;
use nnlab::tensor::im2col::{Axis, Window};
use std::time::Instant;

/// Milliseconds per call of `f`, over `reps` calls after one untimed.
fn time(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let t = Instant::now();
    for _ in 0..reps {
        f();
    }
    t.elapsed().as_secs_f64() * 1e3 / reps as f64
}

fn main() {
    let threads = std::env::args()
        .nth(1)
        .map_or(0, |t| t.parse().expect("THREADS: a number"));
    let rt = Runtime::new(threads);
    let mut precisions = vec![(Precision::F32, rt)];
    if let (bf16, None) = rt.with_precision(Precision::Bf16) {
        precisions.push((Precision::Bf16, bf16));
    }
    let mut rng = Rng::new(1);
    println!("{} thread(s); ms per call, best of 5 rounds", rt.threads);
    let shapes = [
        (1usize, 28usize, 32usize),
        (32, 14, 64),
        (64, 7, 128),
        (32, 28, 32),
        (64, 14, 64),
    ];
    for (c, hw, o) in shapes {
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
        let mut dx = Matrix::zeros(100, g.in_size());
        let mut best = vec![[f64::INFINITY; 2]; precisions.len()];
        for _round in 0..5 {
            for (p, (_, rt)) in precisions.iter().enumerate() {
                let fwd = time(10, || {
                    let mut rng = Rng::new(0);
                    conv.forward(&x, &mut y, &mut Pass::new(Mode::Train, &mut rng, rt))
                });
                let bwd = time(10, || conv.backward(&x, &y, &y, Some(&mut dx), rt));
                best[p][0] = best[p][0].min(fwd);
                best[p][1] = best[p][1].min(bwd);
            }
        }
        for ((p, _), [fwd, bwd]) in precisions.iter().zip(&best) {
            println!("conv {p:?}: forward {fwd:8.3}, backward (dW, dx) {bwd:8.3}");
        }
        let pg = Window {
            channels: o,
            y: Axis::padded(hw, 2, 2, 0).unwrap(),
            x: Axis::padded(hw, 2, 2, 0).unwrap(),
        };
        let mut pool = MaxPool2d::new(pg);
        let mut py = Matrix::zeros(100, o * pg.out_pixels());
        let fwd = time(20, || {
            let mut rng = Rng::new(0);
            pool.forward(&y, &mut py, &mut Pass::new(Mode::Train, &mut rng, &rt))
        });
        let mut dyy = Matrix::zeros(100, y.cols);
        let bwd = time(20, || pool.backward(&y, &py, &py, Some(&mut dyy), &rt));
        println!("maxpool: forward {fwd:8.3}, backward {bwd:8.3}");
    }
}
