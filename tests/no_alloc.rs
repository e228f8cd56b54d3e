//! "No allocation in the training loop": after a warm-up step has sized every buffer,
//! nnlab's training steps (forward, loss, backward, optimiser update, dropout masks)
//! make no heap allocation of their own, on one thread and on two. Counted by a
//! wrapping global allocator. The one exception is inside the `gemm` crate, which
//! allocates its packing buffers on every call (at most 2 per call, see
//! `tensor::gemm_calls`); the test allows exactly that and nothing more.

use nnlab::config::TrainConfig;
use nnlab::model::Model;
use nnlab::optim::Optimizer;
use nnlab::rng::Rng;
use nnlab::tensor::Matrix;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

struct Counting;
static COUNT: AtomicUsize = AtomicUsize::new(0);
static ON: AtomicBool = AtomicBool::new(false);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if ON.load(Ordering::Relaxed) {
            COUNT.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        if ON.load(Ordering::Relaxed) {
            COUNT.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

#[test]
fn training_steps_do_not_allocate() {
    for threads in [1, 2] {
        nnlab::tensor::set_threads(threads);
        for preset in ["xavier", "dropout"] {
            let cfg = TrainConfig::preset(preset).unwrap();
            let mut rng = Rng::new(1);
            let mut model = Model::build(&cfg.model, 784, 10, &mut rng).unwrap();
            let mut opt = Optimizer::new(cfg.optimizer.clone(), &mut model.net);
            let x = Matrix::from_vec(
                100,
                784,
                (0..78_400).map(|i| (i % 255) as f32 / 255.0).collect(),
            );
            let labels: Vec<u8> = (0..100).map(|i| (i % 10) as u8).collect();
            for _ in 0..3 {
                model.train_step(&x, &labels, &mut opt, 1e-3, &mut rng);
            }
            COUNT.store(0, Ordering::Relaxed);
            let calls_before = nnlab::tensor::gemm_calls();
            ON.store(true, Ordering::Relaxed);
            for _ in 0..10 {
                model.train_step(&x, &labels, &mut opt, 1e-3, &mut rng);
            }
            ON.store(false, Ordering::Relaxed);
            let n = COUNT.load(Ordering::Relaxed);
            let calls = nnlab::tensor::gemm_calls() - calls_before;
            assert!(calls > 0);
            assert!(
                n <= 2 * calls,
                "{preset} on {threads} thread(s): {n} allocations in 10 steps, {calls} GEMM calls"
            );
        }
    }
}
