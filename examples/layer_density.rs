//! How many of each layer's outputs are nonzero, on the test images, after training a
//! lab net: the share that decides whether the next `Dense` takes the sparse products
//! (at most `tensor::sparse::MAX_DENSITY`). Trains with the lab's settings, then
//! prints, per layer, the mean share of nonzero outputs and the share of 100-image
//! batches at or under the limit, in training mode (dropout on) and in evaluation mode.
//!
//! `cargo run --release --example layer_density [PRESET] [EPOCHS]` (default: dropout 15)

use nnlab::config::TrainConfig;
use nnlab::data::fetch::default_data_dir;
use nnlab::data::{DatasetRef, FetchOptions};
use nnlab::layers::Mode;
use nnlab::tensor::sparse::MAX_DENSITY;
use nnlab::tensor::{Matrix, on_pool, set_threads};
use nnlab::train::{RunData, Trainer};

/// Large buffers start on a cache line, as in the `nnlab` binary (`nnlab::alloc`).
#[global_allocator]
static ALLOC: nnlab::alloc::Aligned = nnlab::alloc::Aligned;

fn main() {
    let mut args = std::env::args().skip(1);
    let preset = args.next().unwrap_or_else(|| "dropout".into());
    let epochs: usize = args.next().map_or(15, |s| s.parse().expect("EPOCHS"));
    let mut cfg = TrainConfig::preset(&preset).expect("a lab preset");
    cfg.epochs = epochs;
    set_threads(cfg.threads);
    let mut o = FetchOptions::new(default_data_dir(None));
    o.quiet = true;
    let s = DatasetRef::parse("mnist").unwrap().load(&o).unwrap();
    let mut t = Trainer::new(&cfg, s.train.features(), s.train.classes()).unwrap();
    on_pool(|| {
        t.fit(
            &RunData {
                train: &s.train,
                val: None,
                test: None,
            },
            None,
            &mut |_: &nnlab::train::EpochStats| {},
        )
        .unwrap()
    });
    let feat = s.test.features();
    let names: Vec<String> = t.model.net.layers.iter().map(|l| l.describe()).collect();
    for mode in [Mode::Train, Mode::Eval] {
        println!("{mode:?} mode, test images in batches of 100:");
        let n = names.len();
        let (mut share, mut under) = (vec![0f64; n], vec![0usize; n]);
        let batches = s.test.len() / 100;
        let mut rng = nnlab::Rng::new(3);
        for b in 0..batches {
            let x = Matrix::from_vec(
                100,
                feat,
                s.test.images.data[b * 100 * feat..(b + 1) * 100 * feat].to_vec(),
            );
            t.model.forward(&x, mode, &mut rng);
            for (i, out) in t.model.net.outputs().iter().enumerate() {
                let d =
                    out.data.iter().filter(|&&v| v != 0.0).count() as f64 / out.data.len() as f64;
                share[i] += d / batches as f64;
                under[i] += (d <= MAX_DENSITY as f64) as usize;
            }
        }
        for i in 0..n {
            println!(
                "  {:>2} {:28} nonzero {:5.1}%   batches at or under {:.0}%: {:5.1}%",
                i,
                names[i],
                100.0 * share[i],
                100.0 * MAX_DENSITY,
                100.0 * under[i] as f64 / batches as f64
            );
        }
    }
}
