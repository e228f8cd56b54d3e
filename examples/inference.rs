//! Times a saved model's evaluation over the 10,000 MNIST test images (what `nnlab bench`
//! reports as inference, but on a fully trained model), three ways, alternating: the
//! sparse products at the best SIMD level (AVX-512 where the CPU has it), the sparse
//! products capped at AVX2, and dense products only; prints each way's best and
//! median of ROUNDS.
//!
//! `cargo run --release --example inference MODEL.safetensors [ROUNDS]`
//! (e.g. from `nnlab lab dropout --save-dir DIR`)

use nnlab::data::fetch::default_data_dir;
use nnlab::data::{DatasetRef, FetchOptions};
use nnlab::io::load_model;
use nnlab::simd::{Level, detected, set_level};
use nnlab::tensor::sparse::set_sparse;
use nnlab::tensor::{on_pool, set_threads};
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
}
