//! Times a saved model's evaluation over the 10,000 MNIST test images with the batches
//! run through the net in chunks of several sizes (`Model::eval_chunk_floats`),
//! alternating in one process, and prints each size's best and median of ROUNDS.
//! Every size gives the same accuracy and loss (checked).
//!
//! `cargo run --release --example eval_chunks MODEL.safetensors [ROUNDS] [ROWS...]`
//! (ROWS: chunk sizes in rows of the widest layer; default 1000 400 256 200 100)

use nnlab::data::fetch::default_data_dir;
use nnlab::data::{DatasetRef, FetchOptions};
use nnlab::io::load_model;
use nnlab::tensor::{on_pool, set_threads};
use std::time::Instant;

/// Large buffers start on a cache line, as in the `nnlab` binary (`nnlab::alloc`).
#[global_allocator]
static ALLOC: nnlab::alloc::Aligned = nnlab::alloc::Aligned;

fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: eval_chunks MODEL.safetensors [ROUNDS] [ROWS...]";
    let path = args.next().expect(usage);
    let rounds: usize = args.next().map_or(10, |s| s.parse().expect(usage));
    let mut rows: Vec<usize> = args.map(|s| s.parse().expect(usage)).collect();
    if rows.is_empty() {
        rows = vec![1000, 400, 256, 200, 100];
    }
    set_threads(0);
    let mut o = FetchOptions::new(default_data_dir(None));
    o.quiet = true;
    let s = DatasetRef::parse("mnist").unwrap().load(&o).unwrap();
    let mut m = load_model(std::path::Path::new(&path)).unwrap().model;
    let widest = m.net.layers.iter().map(|l| l.out_dim()).max().unwrap_or(1);
    let mut times = vec![Vec::new(); rows.len()];
    let mut results = vec![(0.0, 0.0); rows.len()];
    on_pool(|| {
        for _ in 0..rounds {
            for (i, &r) in rows.iter().enumerate() {
                m.eval_chunk_floats = r * widest;
                let t = Instant::now();
                let e = m.evaluate(&s.test);
                times[i].push(t.elapsed().as_secs_f64());
                results[i] = (e.accuracy, e.loss);
            }
        }
    });
    println!("widest layer {widest}; {rounds} rounds, alternating");
    for (i, r) in rows.iter().enumerate() {
        let t = &mut times[i];
        t.sort_by(f64::total_cmp);
        let (acc, loss) = results[i];
        assert_eq!(
            (acc.to_bits(), loss.to_bits()),
            (results[0].0.to_bits(), results[0].1.to_bits()),
            "the chunk changed the result"
        );
        println!(
            "chunks of {r:5} rows: best {:.4} s, median {:.4} s (accuracy {acc:.4}, loss {loss:.6})",
            t[0],
            t[t.len() / 2]
        );
    }
}
