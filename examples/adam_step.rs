//! One Adam step over a lab net's parameters, with nothing else touching them: the
//! median of 2,000 `Optimizer::step` calls, in µs. BENCHMARKS.md ("Slow phases")
//! compares it with the same step inside training.
//!
//! `cargo run --release --example adam_step -- [PRESET] [THREADS]` (default: xavier, 2)

#[global_allocator]
static ALLOC: nnlab::alloc::Aligned = nnlab::alloc::Aligned;

use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let preset = args.first().map_or("xavier", String::as_str);
    let threads: usize = args
        .get(1)
        .map_or(2, |s| s.parse().expect("THREADS: a number"));
    let rt = nnlab::Runtime::new(threads);
    let cfg = nnlab::TrainConfig::preset(preset).expect("a preset");
    let mut rng = nnlab::Rng::new(1);
    let mut model =
        nnlab::model::Model::build(&cfg.model, 784, 10, &mut rng).expect("an MLP preset");
    let mut opt = nnlab::optim::Optimizer::new(cfg.optimizer.clone(), &mut model.net);
    let mut micros: Vec<f64> = (0..2000)
        .map(|_| {
            let t = Instant::now();
            opt.step(&mut model.net, 1e-3, &rt);
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    micros.sort_by(f64::total_cmp);
    println!(
        "{preset}: Adam step over {} parameters on {threads} thread(s): median {:.1} µs",
        model.param_count(),
        micros[micros.len() / 2]
    );
}
