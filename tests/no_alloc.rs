//! "No allocation in the training loop": after a warm-up step has sized every buffer,
//! nnlab's training steps (forward, loss, backward, optimiser update, dropout masks)
//! make no heap allocation of their own, on one thread and on two, nor does a preset's
//! on-the-fly augmentation (with the elastic field on). Counted by a
//! wrapping global allocator. The one exception is inside the `gemm` crate, which
//! allocates its packing buffers on every call: allocations made while the thread is
//! inside `gemm` (`tensor::inside_gemm`) are counted apart, and nothing else may
//! allocate. The training input is a batch of real-looking sparse images and one of
//! dense ones, so both kinds of first-layer products run; the nets are the MLP labs',
//! the CNNs' and the recurrent ones'. A plain `main` (no libtest harness): nothing
//! but the training may run while allocations are counted.

use nnlab::Runtime;
use nnlab::config::TrainConfig;
use nnlab::data::augment::{Augment, Scratch};
use nnlab::model::Model;
use nnlab::optim::Optimizer;
use nnlab::rng::Rng;
use nnlab::tensor::Matrix;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

struct Counting;
static COUNT: AtomicUsize = AtomicUsize::new(0);
static GEMM_COUNT: AtomicUsize = AtomicUsize::new(0);

fn count() {
    if ON.load(Ordering::Relaxed) {
        if nnlab::tensor::inside_gemm() {
            GEMM_COUNT.fetch_add(1, Ordering::Relaxed);
        } else {
            COUNT.fetch_add(1, Ordering::Relaxed);
        }
    }
}
static ON: AtomicBool = AtomicBool::new(false);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

/// Runs without libtest's harness (Cargo.toml: `harness = false`), whose own thread
/// may allocate while the steps are counted.
fn main() {
    training_steps_do_not_allocate();
    println!("no_alloc: training steps made no allocation outside gemm");
}

fn training_steps_do_not_allocate() {
    for threads in [1, 2] {
        let rt = Runtime::default().with_threads(threads);
        steps(
            rt,
            &["xavier", "dropout", "cnn", "cnn-best", "lstm", "gru", "rnn"],
            false,
        );
        // the bf16 products' packing buffers (where the CPU has them)
        if let (bf16, None) = rt.with_precision(nnlab::runtime::Precision::Bf16) {
            steps(
                bf16,
                &["xavier", "dropout", "deep", "cnn", "lstm", "gru", "rnn"],
                false,
            );
        }
    }
    // steps switching between one thread and two, as the thread tuner switches them
    // (`train::threads`; it starts with all threads, as the warm-up here does)
    steps(
        Runtime::default().with_threads(2),
        &["xavier", "dropout", "cnn", "cnn-best", "lstm", "gru", "rnn"],
        true,
    );
}

/// Until the pool's worker has run a job: a thread's first steps (std's start-up of a
/// spawned thread) allocate, and on a busy machine a worker spawned in the warm-up
/// may not have been scheduled before the counted steps begin.
fn worker_has_started() {
    let here = std::thread::current().id();
    for _ in 0..2000 {
        let pause = || std::thread::sleep(std::time::Duration::from_millis(1));
        let (_, there) = nnlab::par::join(pause, || std::thread::current().id());
        if there != here {
            return;
        }
    }
    panic!("the pool's worker never ran a job in 2000 tries");
}

/// Warm-up steps, then 10 counted steps of each preset on `rt`; with `alternate`, every
/// other counted step on one thread.
fn steps(rt: Runtime, presets: &[&str], alternate: bool) {
    let threads = rt.threads;
    if threads > 1 && nnlab::runtime::cores() > 1 {
        worker_has_started();
    }
    for &preset in presets {
        let cfg = TrainConfig::preset(preset).unwrap();
        let mut rng = Rng::new(1);
        let input = nnlab::layers::Features::Image { c: 1, h: 28, w: 28 };
        let mut model = Model::build(&cfg.model, input, 10, &mut rng).unwrap();
        let mut opt = Optimizer::new(cfg.optimizer.clone(), &mut model.net);
        // dense pixels, and images 80% zeros like MNIST's (sparse products)
        let dense = Matrix::from_vec(
            100,
            784,
            (0..78_400).map(|i| (i % 255) as f32 / 255.0).collect(),
        );
        let sparse = Matrix::from_vec(
            100,
            784,
            (0..78_400)
                .map(|i| {
                    if i % 5 == 0 {
                        (i % 255) as f32 / 255.0
                    } else {
                        0.0
                    }
                })
                .collect(),
        );
        let labels: Vec<u8> = (0..100).map(|i| (i % 10) as u8).collect();
        // a preset's augmentation runs too, with the elastic field on
        let augment = cfg.augment.map(|a| Augment { elastic: 34.0, ..a });
        let (mut batch, mut scratch) = (dense.clone(), Scratch::default());
        let mut step = |x: &Matrix, seed: u64, rng: &mut Rng, rt: &Runtime| {
            batch.data.copy_from_slice(&x.data);
            if let Some(a) = &augment {
                a.apply(rt, seed, 28, 28, &mut batch, &mut scratch);
            }
            model.train_step(&batch, &labels, &mut opt, 1e-3, rng, rt);
        };
        for (seed, x) in [&dense, &sparse, &dense].into_iter().enumerate() {
            step(x, seed as u64, &mut rng, &rt);
        }
        COUNT.store(0, Ordering::Relaxed);
        GEMM_COUNT.store(0, Ordering::Relaxed);
        ON.store(true, Ordering::Relaxed);
        for i in 0..10 {
            let x = if i % 2 == 0 { &sparse } else { &dense };
            let rt = if alternate && i % 4 < 2 {
                rt.with_threads(1)
            } else {
                rt
            };
            step(x, 10 + i, &mut rng, &rt);
        }
        ON.store(false, Ordering::Relaxed);
        let (n, in_gemm) = (
            COUNT.load(Ordering::Relaxed),
            GEMM_COUNT.load(Ordering::Relaxed),
        );
        assert!(in_gemm > 0, "the count of gemm's own allocations works");
        assert_eq!(
            n,
            0,
            "{preset} on {threads} thread(s){}: {n} allocations in 10 steps outside gemm \
                 ({in_gemm} inside)",
            if alternate {
                ", two steps in four on one thread"
            } else {
                ""
            }
        );
    }
}
