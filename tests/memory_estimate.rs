//! The memory a run is estimated to need (`footprint::training_bytes`, checked against
//! the machine's free memory before a run or an ensemble starts) against what it
//! takes: the peak of live heap bytes while a net trains a batch of 100 and evaluates
//! 1,000 test images, measured by a wrapping global allocator. The estimate must not
//! fall short (a run that does not fit would start), nor be more than twice the peak
//! (runs that fit would be refused, as 5 `cnn-best` members once were).

mod common;

use nnlab::Runtime;
use nnlab::config::TrainConfig;
use nnlab::footprint::training_bytes;
use nnlab::model::{EVAL_BATCH, Model};
use nnlab::optim::Optimizer;
use nnlab::rng::Rng;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Peak;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(n: usize) {
    let now = LIVE.fetch_add(n, Ordering::Relaxed) + n;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

unsafe impl GlobalAlloc for Peak {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        grew(l.size());
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        // a moving realloc holds both blocks for a moment
        grew(n);
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Peak = Peak;

#[test]
fn estimates_cover_the_peak_and_stay_within_twice_it() {
    let mnist = common::mnist();
    let test = mnist.test.slice(0..EVAL_BATCH, "1000 test images");
    let batch = mnist.train.slice(0..100, "a batch of 100, every preset's");
    let rt = Runtime::default().with_threads(2);
    let mut report = Vec::new();
    for preset in [
        "xavier", "dropout", "deep-bn", "cnn1", "cnn", "cnn-best", "lstm", "gru",
    ] {
        let cfg = TrainConfig::preset(preset).unwrap();
        assert_eq!(cfg.batch, batch.len());
        let base = LIVE.load(Ordering::Relaxed);
        PEAK.store(base, Ordering::Relaxed);
        {
            let mut rng = Rng::new(1);
            let mut model = Model::build(&cfg.model, test.shape(), 10, &mut rng).unwrap();
            let mut opt = Optimizer::new(cfg.optimizer.clone(), &mut model.net);
            for _ in 0..2 {
                model.train_step(&batch.images, &batch.labels, &mut opt, 1e-3, &mut rng, &rt);
            }
            model.evaluate(&test, &rt);
        }
        let used = (PEAK.load(Ordering::Relaxed) - base) as f64;
        let estimate = training_bytes(
            &cfg.model,
            test.shape(),
            10,
            cfg.batch,
            EVAL_BATCH,
            rt.threads,
        )
        .unwrap();
        let ok = estimate >= used && estimate <= 2.0 * used;
        report.push(format!(
            "{preset}: estimated {:.0} MB, the peak was {:.0} MB{}",
            estimate / 1e6,
            used / 1e6,
            if ok { "" } else { "  <- out of bounds" }
        ));
    }
    let report = report.join("\n");
    assert!(!report.contains("<-"), "{report}");
    println!("{report}");
}
