//! `nnlab rbm`: one RBM trained by contrastive divergence on a dataset's training
//! images, with its reconstruction error per epoch.

use super::load_dataset;
use super::outln;
use crate::cli::RbmArgs;
use nnlab::rbm::{Rbm, RbmConfig};

pub fn run(args: &RbmArgs) -> anyhow::Result<()> {
    let cfg = RbmConfig {
        epochs: args.epochs,
        batch: args.batch,
        lr: args.lr,
        momentum: args.momentum,
        weight_decay: args.weight_decay,
        k: args.k,
    };
    cfg.validate()?;
    if args.hidden == 0 {
        anyhow::bail!("invalid --hidden 0: an RBM needs at least one hidden unit");
    }
    let rt = args.rt.runtime();
    let _fp = rt.enter();
    let s = load_dataset(&args.dataset, &args.data, false)?;
    let mut rng = nnlab::Rng::new(args.seed);
    let mut rbm = Rbm::new(s.train.features(), args.hidden, &mut rng);
    outln!(
        "RBM {}-{} on {} ({}), CD-{}, lr {}, batch {}",
        s.train.features(),
        args.hidden,
        s.train.name,
        super::plural(s.train.len(), "image"),
        args.k,
        args.lr,
        args.batch
    );
    let start = std::time::Instant::now();
    rbm.train(&rt, &s.train.images, &cfg, &mut rng, None, &mut |e, err| {
        outln!(
            "epoch {e:>3}: reconstruction error {err:.6}  ({:.1} s)",
            start.elapsed().as_secs_f64()
        )
    })?;
    Ok(())
}
