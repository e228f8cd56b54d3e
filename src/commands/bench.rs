//! `nnlab bench`: seconds per epoch, inference time and GFLOP/s of the lab networks,
//! beside the GEMM's speed measured in the same run.

use super::load_dataset;
use super::outln;
use crate::cli::BenchArgs;
use nnlab::bench::bench_config;
use nnlab::config::TrainConfig;

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let splits = load_dataset("mnist", &args.data, true)?;
    let (train, _) = splits.train.split_validation(nnlab::data::LAB_VALIDATION)?;
    // bench measures the code at one thread count, the one it reports: no tuner
    let rt = nnlab::Runtime {
        adapt: false,
        ..args.rt.runtime()
    };
    let mut reports = Vec::new();
    for p in &args.presets {
        let cfg = TrainConfig::preset(p)?;
        let r = bench_config(
            p,
            &cfg,
            &train,
            &splits.test,
            args.warmup,
            args.epochs.max(1),
            &rt,
        )?;
        if !args.json {
            let shares = if nnlab::timers::ENABLED {
                format!(
                    "products {:.0}% of the time at {:.1} GFLOP/s, optimiser {:.0}%",
                    100.0 * r.products_share,
                    r.products_gflops,
                    100.0 * r.optimizer_share
                )
            } else {
                "(build with --features timers for the products' and optimiser's shares)".into()
            };
            outln!(
                "{:<8} {:>7.3} s/epoch  {:>8.0} samples/s  inference {:>6.4} s/{}  {:>6.1} GFLOP/epoch (dense)  {:>6.1} GFLOP/s = {:>4.0}% of GEMM on these shapes ({:.1} GFLOP/s; 2048³: {:.1})  {}  peak RSS {:.0} MB  [{} threads; epoch seconds {}: {:?}]",
                r.preset,
                r.median_epoch_s,
                r.samples_per_s,
                r.inference_s,
                r.test_examples,
                r.flop_per_epoch / 1e9,
                r.achieved_gflops,
                100.0 * r.fraction_of_gemm,
                r.gemm_shapes_gflops,
                r.gemm_square_gflops,
                shares,
                r.peak_rss_mb,
                r.threads,
                match (r.warmup_epochs + 1, r.warmup_epochs + r.epoch_seconds.len()) {
                    (a, b) if a == b => format!("{a}"),
                    (a, b) => format!("{a}-{b}"),
                },
                r.epoch_seconds
                    .iter()
                    .map(|s| (s * 1000.0).round() / 1000.0)
                    .collect::<Vec<_>>()
            );
        }
        reports.push(r);
    }
    if args.json {
        let v = nnlab::report::tidy(serde_json::to_value(&reports)?);
        outln!("{}", serde_json::to_string_pretty(&v)?);
    }
    Ok(())
}
