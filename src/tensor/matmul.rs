//! Matrix products through the `gemm` crate, in the three layouts backprop needs.
//! Transposes are expressed as strides ([`View`]), never copied. Each product is cut
//! into one block of whole 16-column panels per thread, each block a one-thread `gemm`
//! call that reads only its columns of the right operand (the weights); a product's
//! sums do not depend on the cut, so the bits do not depend on the thread count. A
//! naive triple loop stays beside them as the reference the tests compare against.

use super::Matrix;
use super::bf16::Packs;
use crate::par::fork_blocks;
use crate::runtime::{Precision, Runtime};
use gemm::Parallelism;

/// A read-only matrix operand: `rows x cols` elements of `data`, element `(i, j)` at
/// `data[i * rs + j * cs]` (a row-major matrix has `rs = cols, cs = 1`; its transpose
/// swaps the strides).
#[derive(Clone, Copy, Debug)]
pub struct View<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a> View<'a> {
    /// The matrix as it is stored.
    pub fn of(m: &'a Matrix) -> Self {
        View {
            data: &m.data,
            rows: m.rows,
            cols: m.cols,
            rs: m.cols,
            cs: 1,
        }
    }

    /// The matrix's transpose, without copying.
    pub fn transposed(m: &'a Matrix) -> Self {
        View {
            data: &m.data,
            rows: m.cols,
            cols: m.rows,
            rs: 1,
            cs: m.cols,
        }
    }

    /// This view's transpose (strides swapped).
    pub fn transpose(self) -> Self {
        View {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    /// Whether every element the shape and strides name lies inside `data` (with no
    /// overflow on the way).
    pub(crate) fn in_bounds(&self) -> bool {
        if self.rows == 0 || self.cols == 0 {
            return true;
        }
        let last = (self.rows - 1)
            .checked_mul(self.rs)
            .and_then(|r| (self.cols - 1).checked_mul(self.cs)?.checked_add(r));
        last.is_some_and(|i| i < self.data.len())
    }
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

/// Clears `IN_GEMM` when dropped, so that a panic unwinding out of `gemm` leaves the
/// thread as it was.
struct InGemm;

impl InGemm {
    fn enter() -> Self {
        IN_GEMM.with(|c| c.set(true));
        InGemm
    }
}

impl Drop for InGemm {
    fn drop(&mut self) {
        IN_GEMM.with(|c| c.set(false));
    }
}

/// A raw pointer that may cross to another thread.
///
/// # Safety
/// Whoever sends one promises that the threads holding copies touch disjoint parts of
/// what it points to (here: each block of a product writes its own columns of `dst`
/// and only reads the operands), and that it outlives them (the fork-join waits).
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: see the type's doc; the product's blocks write disjoint columns.
unsafe impl Send for SendPtr {}
// SAFETY: as above; shared copies are only read or written at disjoint elements.
unsafe impl Sync for SendPtr {}

/// `out (+)= a · b`: the one entry to the `gemm` crate, and, in bf16
/// (`Runtime::precision`), to [`super::bf16`].
///
/// # Shapes
/// `a: (m, k)`, `b: (k, n)`, `out: (m, n)`. With `accumulate` the product is added to
/// `out`, otherwise `out` is overwritten.
///
/// # Panics
/// If the shapes do not fit or a view's strides reach past its data.
pub fn gemm(rt: &Runtime, a: View<'_>, b: View<'_>, out: &mut Matrix, accumulate: bool) {
    gemm_in(rt, a, b, out, accumulate, None)
}

/// [`gemm`], packing a bf16 product's operands into `packs` (a layer's own buffers,
/// so that its steps allocate nothing) instead of buffers kept by the thread.
pub fn gemm_in(
    rt: &Runtime,
    a: View<'_>,
    b: View<'_>,
    out: &mut Matrix,
    accumulate: bool,
    packs: Option<&mut Packs>,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "gemm: inner dims");
    assert_eq!((out.rows, out.cols), (m, n), "gemm: out shape");
    assert_eq!(
        out.data.len(),
        m * n,
        "gemm: out's data does not match its shape"
    );
    assert!(
        a.in_bounds() && b.in_bounds(),
        "gemm: a view reaches past its data"
    );
    if super::nothing_to_sum(m, k, n, &mut out.data, accumulate) {
        return;
    }
    let _timer = crate::timers::Timer::start(&crate::timers::PRODUCTS);
    if super::bf16::takes(rt.precision, n) {
        return super::bf16::gemm_bf16(rt, a, b, out, accumulate, packs);
    }
    let dst = SendPtr(out.data.as_mut_ptr());
    let (lhs, rhs) = (
        SendPtr(a.data.as_ptr() as *mut f32),
        SendPtr(b.data.as_ptr() as *mut f32),
    );
    // SAFETY: the asserts above put every element a block reads inside `a` and `b`,
    // and every one it writes inside `out` (row stride n, columns j0..j0+nb < n);
    // blocks write disjoint columns; `out` does not alias `a` or `b` (borrows).
    let block = |j0: usize, nb: usize| unsafe {
        let (dst, lhs, rhs) = (dst, lhs, rhs);
        let _inside = InGemm::enter();
        gemm::gemm(
            m,
            nb,
            k,
            dst.0.add(j0),
            1,
            n as isize,
            accumulate,
            lhs.0,
            a.cs as isize,
            a.rs as isize,
            rhs.0.add(j0 * b.cs),
            b.cs as isize,
            b.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            Parallelism::None,
        )
    };
    // Tiny products are faster on one thread than split.
    let t = if m * n * k < 64 * 64 * 64 {
        1
    } else {
        rt.threads.max(1)
    };
    fork_blocks(0, n, column_block(m, n, t), &block);
}

/// [`gemm_here`] in `precision`: in bf16, a product of at least 16 columns runs on
/// the bf16 kernel, its operands packed into `packs` (as [`gemm`] routes products).
///
/// # Shapes
/// `a: (m, k)`, `b: (k, n)`, `out: (m·n,)`, a row-major `(m, n)`.
///
/// # Panics
/// If the shapes do not fit or a view reaches past its data.
pub fn gemm_here_in(
    precision: Precision,
    a: View<'_>,
    b: View<'_>,
    out: &mut [f32],
    accumulate: bool,
    packs: &mut Packs,
) {
    if super::bf16::takes(precision, b.cols) {
        super::bf16::gemm_bf16_here(a, b, out, accumulate, packs)
    } else {
        gemm_here(a, b, out, accumulate)
    }
}

/// `out (+)= a · b` on this thread alone, in f32, into a row-major `(a.rows, b.cols)`
/// slice: for the products of a parallel loop's block (a convolution's, one image
/// each; a recurrent step's, one group of examples each).
///
/// # Panics
/// If the shapes do not fit or a view reaches past its data.
pub fn gemm_here(a: View<'_>, b: View<'_>, out: &mut [f32], accumulate: bool) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "gemm_here: inner dims");
    assert_eq!(out.len(), m * n, "gemm_here: out's length");
    assert!(
        a.in_bounds() && b.in_bounds(),
        "gemm_here: a view reaches past its data"
    );
    if super::nothing_to_sum(m, k, n, out, accumulate) {
        return;
    }
    let _inside = InGemm::enter();
    // SAFETY: the asserts put every element read inside `a` and `b` and every one
    // written inside `out` (row stride n); `out` does not alias them (borrows).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            Parallelism::None,
        )
    }
}

/// Columns per block when an `(m, n)` product is cut for `t` threads: whole panels of
/// 16, every block as wide as the others but the last, and every block taking the
/// path through `gemm` that the whole product would take, so that the sums, and so
/// the bits, do not depend on the cut. `gemm` (gemm-common 0.19, `gemm.rs`) sends a
/// product with `m * n <= 256` to dot-product kernels, one with a single row or column
/// to matrix-vector kernels, and one with `m <= 64` and `n <= 64` through the inner
/// dimension in chunks of 512 where larger ones take equal chunks; within a path each
/// element's sum runs over the inner dimension in the same order. Returns `n` (one
/// block) when no cut keeps every block on the whole product's path.
fn column_block(m: usize, n: usize, t: usize) -> usize {
    // the path a block of `nb` columns takes, as `gemm` chooses it
    let path = |nb: usize| {
        if m * nb <= 256 {
            0 // dot products
        } else if m <= 1 || nb <= 1 {
            1 // matrix-vector
        } else if m <= 64 && nb <= 64 {
            2 // small: inner chunks of 512
        } else {
            3 // blocked: equal inner chunks
        }
    };
    let whole = path(n);
    if whole < 3 {
        return n;
    }
    for t in (2..=t).rev() {
        let per = n.div_ceil(t).div_ceil(16) * 16;
        let last = n - (n.div_ceil(per) - 1) * per;
        if per < n && path(per) == whole && path(last) == whole {
            return per;
        }
    }
    n
}

/// `out (+)= a · bᵀ`.
///
/// # Shapes
/// `a: (m, k)`, `b: (n, k)`, `out: (m, n)`.
pub fn matmul_nt(rt: &Runtime, a: &Matrix, b: &Matrix, out: &mut Matrix, accumulate: bool) {
    gemm(rt, View::of(a), View::transposed(b), out, accumulate)
}

/// `out (+)= a · b`.
///
/// # Shapes
/// `a: (m, k)`, `b: (k, n)`, `out: (m, n)`.
pub fn matmul_nn(rt: &Runtime, a: &Matrix, b: &Matrix, out: &mut Matrix, accumulate: bool) {
    gemm(rt, View::of(a), View::of(b), out, accumulate)
}

/// `out (+)= aᵀ · b`.
///
/// # Shapes
/// `a: (k, m)`, `b: (k, n)`, `out: (m, n)`.
pub fn matmul_tn(rt: &Runtime, a: &Matrix, b: &Matrix, out: &mut Matrix, accumulate: bool) {
    gemm(rt, View::transposed(a), View::of(b), out, accumulate)
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
    use crate::par::join_products;
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

    /// Every layout at every awkward size (0..9 in each dim, plus a few large ones),
    /// overwrite and accumulate, at 1, 2 and 3 threads, against the naive product; and
    /// the same bits at every thread count.
    #[test]
    fn all_layouts_match_naive_at_any_thread_count() {
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
            // small batches against inner dimensions over 512, where `gemm` chunks
            // the sums by the block's shape
            (64, 100, 784),
            (4, 512, 784),
            (16, 130, 600),
            (2, 300, 1030),
            (64, 129, 513),
            (1, 700, 784),
        ]);
        for &(m, n, k) in &sizes {
            let a = random(m, k, &mut rng);
            let b = random(k, n, &mut rng);
            let want = naive_matmul(&a, &b);
            let (at, bt) = (transpose(&a), transpose(&b));
            let mut first: Option<Vec<f32>> = None;
            for threads in [1, 2, 3, 8] {
                let rt = Runtime::single().with_threads(threads);
                let mut out = Matrix::zeros(m, n);
                matmul_nn(&rt, &a, &b, &mut out, false);
                close(&out, &want, k);
                let bits = first.get_or_insert_with(|| out.data.clone());
                assert_eq!(&out.data, bits, "{m}x{k}x{n} at {threads} threads");
                out.fill(7.0);
                matmul_nt(&rt, &a, &bt, &mut out, false);
                close(&out, &want, k);
                out.fill(0.0);
                matmul_tn(&rt, &at, &b, &mut out, false);
                close(&out, &want, k);
                // accumulate adds to what is there
                matmul_tn(&rt, &at, &b, &mut out, true);
                let twice = Matrix::from_vec(m, n, want.data.iter().map(|x| 2.0 * x).collect());
                close(&out, &twice, k);
            }
        }
    }

    /// A layer's two gradient products run as a pair give the same bits as each run
    /// alone on one thread, at every thread count.
    #[test]
    fn paired_products_match_single_thread() {
        let mut rng = Rng::new(9);
        for (inp, out) in [(512, 512), (256, 256), (512, 10), (37, 513)] {
            let x = random(100, inp, &mut rng);
            let w = random(inp, out, &mut rng);
            let dy = random(100, out, &mut rng);
            let (mut dw1, mut dx1) = (Matrix::zeros(inp, out), Matrix::zeros(100, inp));
            let one = Runtime::single();
            matmul_tn(&one, &x, &dy, &mut dw1, false);
            matmul_nt(&one, &dy, &w, &mut dx1, false);
            for t in [1, 2, 3, 4] {
                let (mut dw, mut dx) = (Matrix::zeros(inp, out), Matrix::zeros(100, inp));
                join_products(
                    &Runtime::single().with_threads(t),
                    |rt| matmul_tn(rt, &x, &dy, &mut dw, false),
                    |rt| matmul_nt(rt, &dy, &w, &mut dx, false),
                );
                assert_eq!(dw.data, dw1.data, "dW, {t} threads, {inp}->{out}");
                assert_eq!(dx.data, dx1.data, "dx, {t} threads, {inp}->{out}");
            }
        }
    }

    #[test]
    #[should_panic(expected = "reaches past its data")]
    fn a_view_past_its_data_is_refused() {
        let a = Matrix::zeros(2, 3);
        let bad = View {
            data: &a.data,
            rows: 3,
            cols: 3,
            rs: 3,
            cs: 1,
        };
        let mut out = Matrix::zeros(3, 3);
        gemm(
            &Runtime::single(),
            bad,
            View::of(&Matrix::zeros(3, 3)),
            &mut out,
            false,
        );
    }
}
