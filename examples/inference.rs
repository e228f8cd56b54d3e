//! Times a saved model's evaluation over the 10,000 MNIST test images (what `nnlab bench`
//! reports as inference, but on a fully trained model), three ways, alternating: the
//! sparse products at the best SIMD level (AVX-512 where the CPU has it), the sparse
//! products capped at AVX2, and dense products only; prints each way's best and
//! median of ROUNDS. Then, with the sparse products at the best level, each layer's
//! share: the mean time of its forward over the test set in chunks of rows, as
//! `Model::evaluate` runs it, and the share of nonzero entries in its input.
//!
//! `cargo run --release --example inference MODEL.safetensors [ROUNDS]`
//! (e.g. from `nnlab lab dropout --save-dir DIR`)

use nnlab::data::fetch::default_data_dir;
use nnlab::data::{DatasetRef, FetchOptions};
use nnlab::io::load_model;
use nnlab::layers::Mode;
use nnlab::simd::{Level, detected, set_level};
use nnlab::tensor::sparse::set_sparse;
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
    let ways = [
        (true, Level::Avx512),
        (true, Level::Avx2),
        (false, Level::Avx512),
    ];
    let mut times = [Vec::new(), Vec::new(), Vec::new()];
    let mut acc = [0.0; 3];
    on_pool(|| {
        for _ in 0..rounds {
            for (i, (sparse, level)) in ways.into_iter().enumerate() {
                set_sparse(sparse);
                set_level(level);
                let t = Instant::now();
                acc[i] = m.evaluate(&s.test).accuracy;
                times[i].push(t.elapsed().as_secs_f64());
            }
        }
    });
    set_level(detected());
    for (i, name) in [
        "sparse products on, best SIMD level",
        "sparse products on, AVX2 at most   ",
        "dense products only                ",
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
    let (mut secs, mut nonzero, mut ran) = (vec![0f64; n], vec![0usize; n], vec![false; n]);
    let mut rng = nnlab::Rng::new(0);
    on_pool(|| {
        for round in 0..rounds {
            for chunk in test.images.data.chunks(rows * feat) {
                x.reshape_for(chunk.len() / feat, feat);
                x.data.copy_from_slice(chunk);
                net.infer_observed(&x, &mut rng, &mut |i, input, run| {
                    if round == 0 {
                        nonzero[i] += input.data.iter().filter(|&&v| v != 0.0).count();
                    }
                    let t = Instant::now();
                    run();
                    secs[i] += t.elapsed().as_secs_f64();
                    ran[i] = true;
                });
            }
        }
    });
    println!(
        "per layer, sparse products on, mean of {rounds} passes over the test images \
         in chunks of {rows} rows:"
    );
    for (i, l) in net.layers.iter().enumerate() {
        if ran[i] {
            println!(
                "  {:28} {:6.2} ms   input {:4.1}% nonzero",
                l.describe(),
                secs[i] / rounds as f64 * 1e3,
                100.0 * nonzero[i] as f64 / (test.len() * l.in_dim()) as f64
            );
        } else if l.passes_through(Mode::Eval) {
            println!("  {:28} skipped", l.describe());
        } else {
            println!("  {:28} folded into the layer before", l.describe());
        }
    }
    println!(
        "  all layers                   {:6.2} ms",
        secs.iter().sum::<f64>() / rounds as f64 * 1e3
    );
}
