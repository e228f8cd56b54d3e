//! Kernel micro-benchmarks: the matrix products of the lab nets' training step (dense,
//! and the first layer's sparse ones), the
//! fused softmax cross-entropy, one Adam step over the deep net's parameters, the
//! dropout mask and ReLU, gathering a batch, under the default runtime (every core).
//! Run: `cargo bench --bench kernels`.
//! Whole-epoch speed is `nnlab bench`'s job (BENCHMARKS.md).

use criterion::{Criterion, criterion_group, criterion_main};
use nnlab::layers::{Activation, ActivationLayer, Dropout, Layer, Mode, Pass};
use nnlab::optim::{AdamStep, adam_update};
use nnlab::tensor::sparse::{MAX_DENSITY, Nonzeros, sparse_affine, sparse_matmul_tn};
use nnlab::tensor::{Matrix, matmul_nn, matmul_nt, matmul_tn};
use nnlab::{Rng, Runtime, loss};
use std::hint::black_box;

/// Large buffers start on a cache line, as in the `nnlab` binary (`nnlab::alloc`).
#[global_allocator]
static ALLOC: nnlab::alloc::Aligned = nnlab::alloc::Aligned;

fn filled(rows: usize, cols: usize, rng: &mut Rng) -> Matrix {
    Matrix::from_vec(rows, cols, (0..rows * cols).map(|_| rng.normal()).collect())
}

fn kernels(c: &mut Criterion) {
    let rt = Runtime::default();
    let _fp = rt.enter();
    let mut rng = Rng::new(1);
    // forward y = x W, weight gradient dW = xᵀ dy, input gradient dx = dy Wᵀ, batch 100,
    // W stored (in, out) as `Dense` stores it
    for &(inp, out) in &[
        (784usize, 256usize),
        (256, 256),
        (784, 512),
        (512, 512),
        (512, 10),
    ] {
        let x = filled(100, inp, &mut rng);
        let w = filled(inp, out, &mut rng);
        let dy = filled(100, out, &mut rng);
        let mut y = Matrix::zeros(100, out);
        let mut dw = Matrix::zeros(inp, out);
        let mut dx = Matrix::zeros(100, inp);
        c.bench_function(&format!("matmul_nn forward 100x{inp} . {inp}x{out}"), |b| {
            b.iter(|| matmul_nn(&rt, black_box(&x), &w, &mut y, false))
        });
        c.bench_function(&format!("matmul_tn dW {inp}x100 . 100x{out}"), |b| {
            b.iter(|| matmul_tn(&rt, black_box(&x), &dy, &mut dw, false))
        });
        c.bench_function(&format!("matmul_nt dx 100x{out} . {out}x{inp}"), |b| {
            b.iter(|| matmul_nt(&rt, black_box(&dy), &w, &mut dx, false))
        });
        if inp == 784 {
            // the first layer's sparse products, on an input 19% nonzero as MNIST's
            // (random positions here; real batches: examples/sparse_first_layer.rs)
            let xs = Matrix::from_vec(
                100,
                784,
                (0..78_400)
                    .map(|_| {
                        if rng.uniform() < 0.19 {
                            rng.uniform()
                        } else {
                            0.0
                        }
                    })
                    .collect(),
            );
            let mut e = Nonzeros::default();
            c.bench_function("sparse gather 100x784 (19% nonzero)", |b| {
                b.iter(|| assert!(e.gather(&rt, black_box(&xs), MAX_DENSITY)))
            });
            let bias = vec![0.1; out];
            c.bench_function(&format!("sparse forward 100x784 . 784x{out}"), |b| {
                b.iter(|| sparse_affine(&rt, black_box(&e), &w, &bias, &mut y))
            });
            c.bench_function(&format!("sparse dW 784x100 . 100x{out}"), |b| {
                b.iter(|| sparse_matmul_tn(&rt, black_box(&mut e), &dy, &mut dw))
            });
        }
    }
    let logits = filled(100, 10, &mut rng);
    let labels: Vec<u8> = (0..100).map(|i| (i % 10) as u8).collect();
    let mut d = Matrix::zeros(100, 10);
    c.bench_function("softmax_cross_entropy 100x10", |b| {
        b.iter(|| loss::softmax_cross_entropy(black_box(&logits), &labels, &mut d))
    });
    // one Adam step over the deep net's 1.19 M parameters
    let n = 784 * 512 + 3 * 512 * 512 + 512 * 10;
    let mut p = vec![0.1f32; n];
    let g = vec![0.01f32; n];
    let (mut m, mut v) = (vec![0f32; n], vec![0f32; n]);
    let mut t = 0;
    c.bench_function("adam_update 1.19M params (one thread)", |b| {
        b.iter(|| {
            t += 1;
            let s = AdamStep {
                lr: 1e-3,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                t,
                l2: 0.0,
                weight_decay: 0.0,
            };
            adam_update(rt.simd, &mut p, &g, &mut m, &mut v, s)
        })
    });
    // the optimiser's whole step over the deep lab net, threads as set above
    let cfg = nnlab::TrainConfig::preset("deep").unwrap();
    let mut model = nnlab::model::Model::build(&cfg.model, 784, 10, &mut rng).unwrap();
    let mut opt = nnlab::optim::Optimizer::new(cfg.optimizer.clone(), &mut model.net);
    c.bench_function("optimizer step, deep net (Adam, all threads)", |b| {
        b.iter(|| opt.step(&mut model.net, 1e-3, &rt))
    });
    let x = filled(100, 512, &mut rng);
    let mut y = Matrix::zeros(100, 512);
    let mut drop = Dropout::new(0.7, 512);
    c.bench_function("dropout mask + apply 100x512", |b| {
        b.iter(|| {
            drop.forward(
                black_box(&x),
                &mut y,
                &mut Pass::new(Mode::Train, &mut rng, &rt),
            )
        })
    });
    let mut relu = ActivationLayer::new(Activation::Relu, 512);
    c.bench_function("relu forward 100x512", |b| {
        b.iter(|| {
            relu.forward(
                black_box(&x),
                &mut y,
                &mut Pass::new(Mode::Train, &mut rng, &rt),
            )
        })
    });
    // one training batch: 100 scattered rows of a 55,000 x 784 training set, on one
    // thread and on all
    let n = 55_000;
    let data = nnlab::data::Dataset {
        name: "synthetic".into(),
        images: Matrix::from_vec(n, 784, (0..n * 784).map(|i| (i % 255) as f32).collect()),
        labels: (0..n).map(|i| (i % 10) as u8).collect(),
        height: 28,
        width: 28,
        class_names: (0..10).map(|c| c.to_string()).collect(),
    };
    let mut batcher = nnlab::data::Batcher::new(n, 784, 100);
    for threads in [1, rt.threads] {
        let rt = rt.with_threads(threads);
        batcher.shuffle(&mut rng);
        c.bench_function(
            &format!("batch gather 100 x 784 (threads {threads})"),
            |b| {
                b.iter(|| {
                    if !batcher.next_batch(&rt, &data) {
                        batcher.shuffle(&mut rng);
                        batcher.next_batch(&rt, &data);
                    }
                })
            },
        );
    }
}

criterion_group!(benches, kernels);
criterion_main!(benches);
