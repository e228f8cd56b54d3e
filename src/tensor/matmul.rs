//! Matrix products through the `gemm` crate, in the three layouts backprop needs.
//! Transposes are expressed as strides, never copied. A naive triple loop stays beside
//! them as the reference the tests compare against.

use super::Matrix;
use gemm::Parallelism;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

static THREADS: AtomicUsize = AtomicUsize::new(1);

/// Sets how many threads matrix products and optimiser updates use (`0` = one per
/// core): how many pieces work is cut into, so `1` runs everything on the calling
/// thread. Rayon's pool is built once, by the first call (one worker per core, or `n`
/// if larger) or, failing that, on first use (one per core, as `on_pool` does), so a
/// count above the pool's size cuts work finer without adding workers.
pub fn set_threads(n: usize) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let n = if n == 0 { cores } else { n };
    THREADS.store(n, Ordering::Relaxed);
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(n.max(cores))
        .build_global();
}

/// Runs `f` on a worker thread of rayon's global pool (building the pool, one worker
/// per core, if `set_threads` has not) and waits for it; runs it in place when already
/// on a worker. Work that forks many times, such as training, should run this way: a
/// `rayon::join` made on a pool worker pushes its second half for the other workers to
/// steal, while one made from outside the pool is injected as a job that the caller
/// then sleeps on, two thread wake-ups per product. The `nnlab` binary runs every
/// command through this (in an A/B, xavier 0.97 -> 0.78 and deep 4.34 -> 3.96 s/epoch;
/// BENCHMARKS.md). Since the products and updates fork through `crate::par::join`
/// instead, this matters only with `NNLAB_POOL=rayon` and for the `gemm` crate's own
/// threading (`Split::Internal`).
pub fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() {
        f()
    } else {
        rayon::scope(|_| f())
    }
}

thread_local! {
    /// This thread's share of the threads while it runs one side of `join_products`
    /// (0: none, use `THREADS`).
    static LOCAL_THREADS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The thread count `set_threads` set (what `threads` gives outside `join_products`).
pub fn max_threads() -> usize {
    THREADS.load(Ordering::Relaxed)
}

/// Threads used by matrix products (on this thread: within `join_products`, its share).
pub fn threads() -> usize {
    match LOCAL_THREADS.with(|c| c.get()) {
        0 => THREADS.load(Ordering::Relaxed),
        n => n,
    }
}

/// Runs `f` with this thread's product thread count set to `n`, then restores it.
pub(super) fn with_threads<R>(n: usize, f: impl FnOnce() -> R) -> R {
    let _restore = Restore::set(&LOCAL_THREADS, n);
    f()
}

/// Sets a thread-local cell and puts its old value back when dropped, so that a panic
/// unwinding through `with_threads`, `untimed` or a `gemm` call leaves the pool thread
/// as it was.
struct Restore<T: Copy + 'static>(&'static std::thread::LocalKey<std::cell::Cell<T>>, T);

impl<T: Copy + 'static> Restore<T> {
    fn set(key: &'static std::thread::LocalKey<std::cell::Cell<T>>, value: T) -> Self {
        Restore(key, key.with(|c| c.replace(value)))
    }
}

impl<T: Copy + 'static> Drop for Restore<T> {
    fn drop(&mut self) {
        let before = self.1;
        self.0.with(|c| c.set(before));
    }
}

/// Runs two independent pieces of work (typically a layer's two gradient products,
/// `dW = xᵀ dy` and `dx = dy Wᵀ`) at the same time, each on half the threads, so that
/// one fork-join replaces one per product. With one thread they run one after the
/// other. Each product's result is the same bits either way (a product's sums do not
/// depend on how its columns are shared out; tested).
pub fn join_products(a: impl FnOnce() + Send, b: impl FnOnce() + Send) {
    let t = threads();
    if t < 2 {
        a();
        b();
        return;
    }
    // Time the pair once, as wall clock; the products inside do not add their own.
    let _timer = ProductTimer::start();
    let ta = t / 2;
    crate::par::join(
        || with_threads(ta, || untimed(a)),
        || with_threads(t - ta, || untimed(b)),
    );
}

fn parallelism(m: usize, n: usize, k: usize) -> Parallelism {
    let t = threads();
    // Tiny products are faster on one thread than split.
    if t <= 1 || m * n * k < 64 * 64 * 64 {
        Parallelism::None
    } else {
        Parallelism::Rayon(t)
    }
}

/// How a product is spread over threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// The `gemm` crate's own rayon parallelism.
    Internal,
    /// Output columns cut into one block per thread, each a single-threaded product
    /// (each thread reads only its part of the right operand: the weights).
    Columns,
    /// Output rows cut into one block per thread.
    Rows,
}

static SPLIT: AtomicUsize = AtomicUsize::new(1);

/// Chooses how products use threads (for benchmarks; the default is `Columns`,
/// chosen by measurement, see BENCHMARKS.md).
pub fn set_split(s: Split) {
    SPLIT.store(s as usize, Ordering::Relaxed);
}

fn split_mode() -> Split {
    match SPLIT.load(Ordering::Relaxed) {
        0 => Split::Internal,
        1 => Split::Columns,
        _ => Split::Rows,
    }
}

static GEMM_CALLS: AtomicUsize = AtomicUsize::new(0);

/// How many calls into the `gemm` crate this process has made.
pub fn gemm_calls() -> usize {
    GEMM_CALLS.load(Ordering::Relaxed)
}

thread_local! {
    static IN_GEMM: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this thread is inside a call into the `gemm` crate. The crate allocates
/// its packing buffers on each call (gemm-common 0.19, `gemm.rs`: a `MemBuffer`, and
/// in gemm 0.19 `gemm.rs` a small `Vec`); the no-allocation test uses this to tell
/// those from nnlab's own allocations.
pub fn inside_gemm() -> bool {
    IN_GEMM.with(|c| c.get())
}

static GEMM_NANOS: AtomicU64 = AtomicU64::new(0);

/// Wall-clock nanoseconds this process has spent inside matrix products (threads and
/// fork-join included), so `bench` can tell the products' share of a training step.
pub fn gemm_nanos() -> u64 {
    GEMM_NANOS.load(Ordering::Relaxed)
}

thread_local! {
    /// Set while this thread runs inside a pair that `join_products` times as a whole.
    static UNTIMED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` without adding its products' time to `GEMM_NANOS`.
fn untimed<R>(f: impl FnOnce() -> R) -> R {
    let _restore = Restore::set(&UNTIMED, true);
    f()
}

/// Adds the time from its creation to `GEMM_NANOS` when dropped (at any return),
/// unless created inside `untimed`.
pub(super) struct ProductTimer(Option<std::time::Instant>);

impl ProductTimer {
    pub(super) fn start() -> Self {
        ProductTimer((!UNTIMED.with(|c| c.get())).then(std::time::Instant::now))
    }
}

impl Drop for ProductTimer {
    fn drop(&mut self) {
        if let Some(t0) = self.0 {
            GEMM_NANOS.fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
        }
    }
}

/// A raw pointer that may cross to another thread: each thread writes a disjoint block.
pub(super) struct SendPtr<T = f32>(pub(super) *mut T);
// (by hand: derived, they would need `T: Copy`)
impl<T> Clone for SendPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for SendPtr<T> {}
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// The pointer (a method, so that closures capture the whole `SendPtr`).
    pub(super) fn ptr(self) -> *mut T {
        self.0
    }
}

/// Raw call: `dst = [dst +] lhs * rhs`, each operand given as a pointer with
/// (row stride, column stride); `dst` has column stride 1.
///
/// # Safety
/// Every operand must cover the index range its shape and strides imply, and `dst`
/// must not alias `lhs` or `rhs`.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_ptr(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: isize,
    accumulate: bool,
    lhs: *const f32,
    lhs_rs: isize,
    lhs_cs: isize,
    rhs: *const f32,
    rhs_rs: isize,
    rhs_cs: isize,
    par: Parallelism,
) {
    GEMM_CALLS.fetch_add(1, Ordering::Relaxed);
    let _inside = Restore::set(&IN_GEMM, true);
    unsafe {
        gemm::gemm(
            m, n, k, dst, 1, dst_rs, accumulate, lhs, lhs_cs, lhs_rs, rhs, rhs_cs, rhs_rs, 1.0,
            1.0, false, false, false, par,
        );
    }
}

/// Runs `block(j0, nb)` over `[lo, hi)` cut into pieces of `per` (the last may be
/// shorter), in parallel by recursive halving with `crate::par::join`.
pub(super) fn fork_blocks(
    lo: usize,
    hi: usize,
    per: usize,
    block: &(impl Fn(usize, usize) + Sync),
) {
    let blocks = (hi - lo).div_ceil(per);
    if blocks <= 1 {
        return block(lo, hi - lo);
    }
    let mid = lo + blocks / 2 * per;
    crate::par::join(
        || fork_blocks(lo, mid, per, block),
        || fork_blocks(mid, hi, per, block),
    );
}

/// Checked entry: `dst = [dst +] lhs * rhs`, spread over threads as `set_split` says.
#[allow(clippy::too_many_arguments)]
fn gemm_raw(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    dst_rs: usize,
    accumulate: bool,
    lhs: &[f32],
    lhs_rs: isize,
    lhs_cs: isize,
    rhs: &[f32],
    rhs_rs: isize,
    rhs_cs: isize,
) {
    if m == 0 || n == 0 {
        return;
    }
    let _timer = ProductTimer::start();
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return;
    }
    let t = threads();
    let big = m * n * k >= 64 * 64 * 64;
    let (dp, lp, rp) = (
        SendPtr(dst.as_mut_ptr()),
        SendPtr(lhs.as_ptr() as *mut f32),
        SendPtr(rhs.as_ptr() as *mut f32),
    );
    let dst_rs = dst_rs as isize;
    // SAFETY (all calls below): the public wrappers assert every operand's shape, so
    // each pointer range is inside its slice; blocks write disjoint parts of `dst`.
    match (split_mode(), t > 1 && big) {
        (Split::Internal, _) | (_, false) => unsafe {
            gemm_ptr(
                m,
                n,
                k,
                dp.0,
                dst_rs,
                accumulate,
                lp.0,
                lhs_rs,
                lhs_cs,
                rp.0,
                rhs_rs,
                rhs_cs,
                parallelism(m, n, k),
            )
        },
        (Split::Columns, true) => {
            // Blocks of whole 16-column panels, one per thread, forked by nested
            // `par::join` (which, unlike `scope.spawn`, does not allocate).
            let per = n.div_ceil(t).div_ceil(16) * 16;
            let block = |j0: usize, nb: usize| unsafe {
                let (dp, lp, rp) = (dp, lp, rp);
                gemm_ptr(
                    m,
                    nb,
                    k,
                    dp.0.add(j0),
                    dst_rs,
                    accumulate,
                    lp.0,
                    lhs_rs,
                    lhs_cs,
                    rp.0.offset(j0 as isize * rhs_cs),
                    rhs_rs,
                    rhs_cs,
                    Parallelism::None,
                )
            };
            fork_blocks(0, n, per, &block);
        }
        (Split::Rows, true) => {
            let per = m.div_ceil(t).div_ceil(8) * 8;
            rayon::scope(|s| {
                let mut i0 = 0;
                while i0 < m {
                    let mb = per.min(m - i0);
                    s.spawn(move |_| unsafe {
                        let (dp, lp, rp) = (dp, lp, rp);
                        gemm_ptr(
                            mb,
                            n,
                            k,
                            dp.0.offset(i0 as isize * dst_rs),
                            dst_rs,
                            accumulate,
                            lp.0.offset(i0 as isize * lhs_rs),
                            lhs_rs,
                            lhs_cs,
                            rp.0,
                            rhs_rs,
                            rhs_cs,
                            Parallelism::None,
                        )
                    });
                    i0 += mb;
                }
            });
        }
    }
}

/// `out (+)= a · bᵀ`.
///
/// # Shapes
/// `a: (m, k)`, `b: (n, k)`, `out: (m, n)`. With `accumulate` the product is added to
/// `out`, otherwise `out` is overwritten.
pub fn matmul_nt(a: &Matrix, b: &Matrix, out: &mut Matrix, accumulate: bool) {
    let (m, k, n) = (a.rows, a.cols, b.rows);
    assert_eq!(b.cols, k, "matmul_nt: inner dims");
    assert_eq!((out.rows, out.cols), (m, n), "matmul_nt: out shape");
    gemm_raw(
        m,
        n,
        k,
        &mut out.data,
        n,
        accumulate,
        &a.data,
        k as isize,
        1,
        &b.data,
        1,
        k as isize,
    );
}

/// `out (+)= a · b`.
///
/// # Shapes
/// `a: (m, k)`, `b: (k, n)`, `out: (m, n)`.
pub fn matmul_nn(a: &Matrix, b: &Matrix, out: &mut Matrix, accumulate: bool) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "matmul_nn: inner dims");
    assert_eq!((out.rows, out.cols), (m, n), "matmul_nn: out shape");
    gemm_raw(
        m,
        n,
        k,
        &mut out.data,
        n,
        accumulate,
        &a.data,
        k as isize,
        1,
        &b.data,
        n as isize,
        1,
    );
}

/// `out (+)= aᵀ · b`.
///
/// # Shapes
/// `a: (k, m)`, `b: (k, n)`, `out: (m, n)`.
pub fn matmul_tn(a: &Matrix, b: &Matrix, out: &mut Matrix, accumulate: bool) {
    let (k, m, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "matmul_tn: inner dims");
    assert_eq!((out.rows, out.cols), (m, n), "matmul_tn: out shape");
    gemm_raw(
        m,
        n,
        k,
        &mut out.data,
        n,
        accumulate,
        &a.data,
        1,
        m as isize,
        &b.data,
        n as isize,
        1,
    );
}

/// Reference product `a · b` by the definition, in f64 accumulation; for tests.
///
/// # Shapes
/// `a: (m, k)`, `b: (k, n)` -> `(m, n)`.
pub fn naive_matmul(a: &Matrix, b: &Matrix) -> Matrix {
    let mut out = Matrix::zeros(a.rows, b.cols);
    for i in 0..a.rows {
        for j in 0..b.cols {
            let mut s = 0f64;
            for p in 0..a.cols {
                s += a.data[i * a.cols + p] as f64 * b.data[p * b.cols + j] as f64;
            }
            out.data[i * b.cols + j] = s as f32;
        }
    }
    out
}

/// The transpose, as a new matrix; for tests and one-off conversions.
pub fn transpose(a: &Matrix) -> Matrix {
    let mut t = Matrix::zeros(a.cols, a.rows);
    for i in 0..a.rows {
        for j in 0..a.cols {
            t.data[j * a.rows + i] = a.data[i * a.cols + j];
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn random(rows: usize, cols: usize, rng: &mut Rng) -> Matrix {
        Matrix::from_vec(rows, cols, (0..rows * cols).map(|_| rng.normal()).collect())
    }

    fn close(a: &Matrix, b: &Matrix, k: usize) {
        assert_eq!(a.shape(), b.shape());
        for (x, y) in a.data.iter().zip(&b.data) {
            assert!(
                (x - y).abs() <= 1e-4 * (k as f32).sqrt() + 1e-5,
                "{x} vs {y}"
            );
        }
    }

    /// Held by the tests that change the global product split, or need it left alone.
    static SPLIT_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

    /// Every layout at every awkward size (0..9 in each dim, plus a few large ones),
    /// overwrite and accumulate, one and two threads, against the naive product.
    #[test]
    fn all_layouts_match_naive() {
        let _one_at_a_time = SPLIT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let mut rng = Rng::new(5);
        let mut sizes: Vec<(usize, usize, usize)> = Vec::new();
        for m in 0..9 {
            for n in 0..9 {
                for k in [0, 1, 2, 3, 7, 8] {
                    sizes.push((m, n, k));
                }
            }
        }
        sizes.extend([
            (100, 257, 131),
            (65, 70, 300),
            (128, 10, 784),
            (37, 513, 29),
            (513, 37, 100),
        ]);
        for (threads_n, split) in [
            (1, Split::Columns),
            (2, Split::Internal),
            (2, Split::Columns),
            (2, Split::Rows),
            (3, Split::Columns),
        ] {
            THREADS.store(threads_n, Ordering::Relaxed);
            set_split(split);
            for &(m, n, k) in &sizes {
                let a = random(m, k, &mut rng);
                let b = random(k, n, &mut rng);
                let want = naive_matmul(&a, &b);
                let mut out = Matrix::zeros(m, n);
                matmul_nn(&a, &b, &mut out, false);
                close(&out, &want, k);
                let bt = transpose(&b);
                out.fill(7.0);
                matmul_nt(&a, &bt, &mut out, false);
                close(&out, &want, k);
                let at = transpose(&a);
                out.fill(0.0);
                matmul_tn(&at, &b, &mut out, false);
                close(&out, &want, k);
                // accumulate adds to what is there
                matmul_tn(&at, &b, &mut out, true);
                let twice = Matrix::from_vec(m, n, want.data.iter().map(|x| 2.0 * x).collect());
                close(&out, &twice, k);
            }
        }
        THREADS.store(1, Ordering::Relaxed);
        set_split(Split::Columns);
    }

    /// A layer's two gradient products run as a pair give the same bits as each run
    /// alone on one thread, at every thread count, and leave the thread count as it was.
    #[test]
    fn paired_products_match_single_thread() {
        // (`all_layouts_match_naive` switches to `gemm`'s own threading, whose sums
        // may run in another order)
        let _one_at_a_time = SPLIT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let mut rng = Rng::new(9);
        for (inp, out) in [(512, 512), (256, 256), (512, 10), (37, 513)] {
            let x = random(100, inp, &mut rng);
            let w = random(inp, out, &mut rng);
            let dy = random(100, out, &mut rng);
            let (mut dw1, mut dx1) = (Matrix::zeros(inp, out), Matrix::zeros(100, inp));
            with_threads(1, || {
                matmul_tn(&x, &dy, &mut dw1, false);
                matmul_nt(&dy, &w, &mut dx1, false);
            });
            for t in [1, 2, 3, 4] {
                let (mut dw, mut dx) = (Matrix::zeros(inp, out), Matrix::zeros(100, inp));
                with_threads(t, || {
                    join_products(
                        || matmul_tn(&x, &dy, &mut dw, false),
                        || matmul_nt(&dy, &w, &mut dx, false),
                    );
                    assert_eq!(threads(), t);
                });
                assert_eq!(dw.data, dw1.data, "dW, {t} threads, {inp}->{out}");
                assert_eq!(dx.data, dx1.data, "dx, {t} threads, {inp}->{out}");
            }
        }
    }

    /// A panic inside one side of a pair leaves the thread's count and timing as they
    /// were (the pool's threads outlive it).
    #[test]
    fn a_panic_restores_the_thread_locals() {
        let r = std::panic::catch_unwind(|| with_threads(7, || untimed(|| panic!("boom"))));
        assert!(r.is_err());
        assert_eq!(LOCAL_THREADS.with(|c| c.get()), 0);
        assert!(!UNTIMED.with(|c| c.get()));
    }
}
