//! `nnlab study <experiment>`: the lecture's claims, checked on MNIST.

use super::load_dataset;
use crate::cli::{Experiment, StudyArgs};
use nnlab::study::{self, StudyData, StudyOptions};

pub fn run(args: &StudyArgs) -> anyhow::Result<()> {
    nnlab::tensor::set_threads(args.threads);
    let s = load_dataset("mnist", &args.data, args.json)?;
    // quick: the first 5,000 training images; full: the lab's 55,000
    let (train, _) = s.train.split_validation(nnlab::data::LAB_VALIDATION)?;
    let train = if args.quick {
        train.slice(0..5000, "mnist train (5,000)")
    } else {
        train
    };
    let data = StudyData {
        train: &train,
        test: &s.test,
    };
    let o = StudyOptions {
        quick: args.quick,
        seed: args.seed,
        threads: args.threads,
    };
    let start = std::time::Instant::now();
    let table = match args.experiment {
        Experiment::Depth => study::depth(&data, &o)?,
        Experiment::Init => study::init(&data, &o)?,
        Experiment::Activation => study::activation(&data, &o)?,
        Experiment::Dropout => study::dropout(&data, &o)?,
        Experiment::Ensemble => study::ensemble(&data, &o)?,
    };
    if args.json {
        println!("{}", serde_json::to_string(&table)?);
    } else {
        print!("{}", table.render());
        println!("\n({:.0} s)", start.elapsed().as_secs_f64());
    }
    Ok(())
}
