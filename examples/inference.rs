//! Times a saved model's evaluation over the 10,000 MNIST test images (what `nnlab bench`
//! reports as inference, but on a fully trained model), four ways, alternating: the
//! sparse products at the best SIMD level (AVX-512 where the CPU has it) with the first
//! layer's rows in pairs (the default) and one row at a time, the sparse products
//! capped at AVX2, and dense products only; prints each way's best and median of
//! ROUNDS, and checks that pairing leaves the loss's bits. Then, with the sparse
//! products at the best level, each layer's share, paired and not: the mean time of
//! its forward over the test set in chunks of rows, as `Model::evaluate` runs it, and
//! the share of nonzero entries in its input.
//!
//! `cargo run --release --example inference MODEL.safetensors [ROUNDS]`
//! (e.g. from `nnlab lab dropout --save-dir DIR`)

use nnlab::data::fetch::default_data_dir;
use nnlab::data::{DatasetRef, FetchOptions};
use nnlab::io::load_model;
use nnlab::layers::Mode;
use nnlab::simd::{Level, detected, set_level};
use nnlab::tensor::sparse::{set_pairing, set_sparse};
use nnlab::tensor::{Matrix, on_pool, set_threads};
use std::time::Instant;

/// Large buffers start on a cache line, as in the `nnlab` binary (`nnlab::alloc`).
#[global_allocator]
static ALLOC: nnlab::alloc::Aligned = nnlab::alloc::Aligned;

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .expect("usage: inference MODEL.safetensors [ROUNDS]");
    let rounds: usize = args.next().map_or(10, |s| s.parse().expect("ROUNDS"));
    set_threads(0);
    let mut o = FetchOptions::new(default_data_dir(None));
    o.quiet = true;
    let s = DatasetRef::parse("mnist").unwrap().load(&o).unwrap();
    let mut m = load_model(std::path::Path::new(&path)).unwrap().model;
    // (sparse products, rows paired, SIMD level)
    let ways = [
        (true, true, Level::Avx512),
        (true, false, Level::Avx512),
        (true, false, Level::Avx2),
        (false, false, Level::Avx512),
    ];
    let mut times = [const { Vec::new() }; 4];
    let mut acc = [0.0; 4];
    let mut loss = [0.0; 4];
    on_pool(|| {
        for _ in 0..rounds {
            for (i, (sparse, pairs, level)) in ways.into_iter().enumerate() {
                set_sparse(sparse);
                set_pairing(pairs);
                set_level(level);
                let t = Instant::now();
                let r = m.evaluate(&s.test);
                times[i].push(t.elapsed().as_secs_f64());
                (acc[i], loss[i]) = (r.accuracy, r.loss);
            }
        }
    });
    set_level(detected());
    set_pairing(true);
    assert_eq!(
        loss[0].to_bits(),
        loss[1].to_bits(),
        "pairing rows changed the loss"
    );
    for (i, name) in [
        "sparse products, rows paired, best SIMD level",
        "sparse products, one row at a time, best level",
        "sparse products, one row at a time, AVX2 at most ",
        "dense products only                            ",
    ]
    .iter()
    .enumerate()
    {
        let t = &mut times[i];
        t.sort_by(f64::total_cmp);
        println!(
            "{name}: best {:.4} s, median {:.4} s per 10,000 images (accuracy {:.4})",
            t[0],
            t[t.len() / 2],
            acc[i]
        );
    }
    per_layer(&mut m, &s.test, rounds);
}

/// Each layer's mean forward time over the test set in chunks of rows as
/// `Model::evaluate` runs them (`Model::eval_chunk_rows`; `Sequential::infer`: dropout
/// skipped, each ReLU folded into the dense layer before it, nonzeros passed from a
/// dense layer to the next), and the share of nonzero entries in its input.
fn per_layer(m: &mut nnlab::Model, test: &nnlab::data::Dataset, rounds: usize) {
    set_sparse(true);
    let rows = m.eval_chunk_rows();
    let net = &mut m.net;
    let n = net.layers.len();
    let feat = test.features();
    let mut x = Matrix::zeros(rows, feat);
    // [rows paired, one row at a time], alternating round by round
    let mut secs = [vec![0f64; n], vec![0f64; n]];
    let (mut nonzero, mut ran) = (vec![0usize; n], vec![false; n]);
    let mut rng = nnlab::Rng::new(0);
    on_pool(|| {
        for round in 0..2 * rounds {
            set_pairing(round % 2 == 0);
            for chunk in test.images.data.chunks(rows * feat) {
                x.reshape_for(chunk.len() / feat, feat);
                x.data.copy_from_slice(chunk);
                net.infer_observed(&x, &mut rng, &mut |i, input, run| {
                    if round == 0 {
                        nonzero[i] += input.data.iter().filter(|&&v| v != 0.0).count();
                    }
                    let t = Instant::now();
                    run();
                    secs[round % 2][i] += t.elapsed().as_secs_f64();
                    ran[i] = true;
                });
            }
        }
    });
    set_pairing(true);
    println!(
        "per layer, sparse products on, mean of {rounds} passes over the test images \
         in chunks of {rows} rows each way, alternating:"
    );
    println!("  {:28} {:>9} {:>9}", "", "paired", "one row");
    let ms = |s: f64| s / rounds as f64 * 1e3;
    for (i, l) in net.layers.iter().enumerate() {
        if ran[i] {
            println!(
                "  {:28} {:6.2} ms {:6.2} ms   input {:4.1}% nonzero",
                l.describe(),
                ms(secs[0][i]),
                ms(secs[1][i]),
                100.0 * nonzero[i] as f64 / (test.len() * l.in_dim()) as f64
            );
        } else if l.passes_through(Mode::Eval) {
            println!("  {:28} skipped", l.describe());
        } else {
            println!("  {:28} folded into the layer before", l.describe());
        }
    }
    println!(
        "  all layers                   {:6.2} ms {:6.2} ms",
        ms(secs[0].iter().sum::<f64>()),
        ms(secs[1].iter().sum::<f64>())
    );
}
