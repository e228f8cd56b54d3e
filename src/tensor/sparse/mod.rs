//! Products whose left operand is mostly exact zeros. MNIST's pixels are mostly zeros
//! (the ink is a small part of each image), and a trained ReLU net's hidden
//! activations are mostly zeros too,
//! so a dense layer's forward product `y = x W` and its weight gradient `dW = xᵀ dy`
//! need only the nonzero entries of `x`. With `W: (in, out)` (how `Dense` stores it)
//! each nonzero `x[r, k]` becomes one row update:
//!
//! ```text
//!   y[r, :]  += x[r, k] · W[k, :]        (forward)
//!   dW[k, :] += x[r, k] · dy[r, :]       (weight gradient)
//! ```
//!
//! The folder, by what each part does:
//! - here: [`Nonzeros`], the entries listed by row and by column;
//! - `gather`: listing them, a counting sort cut by rows over threads;
//! - `products`: the two products, cut by columns over threads, each
//!   panel of sums held in registers;
//! - `kernels`: listing a row's nonzeros, and a product's last columns.
//!
//! Rounding is fixed: `y[r, j]` adds `x[r, k] · W[k, j]` over `k` ascending, starting
//! from 0, and adds that sum to the bias (in the last `n % 64` columns it starts from
//! the bias and adds each product to it); `dW[k, j]` adds `x[r, k] · dy[r, j]` over `r`
//! ascending from 0. This order holds however the work is split over threads and at
//! every SIMD level, so results do not depend on either (a test pins the order). They
//! differ from the dense products' only in rounding.
//!
//! `Dense` uses these products when at most [`MAX_DENSITY`] of its input is nonzero and
//! the runtime allows it (`Runtime::sparse`); BENCHMARKS.md has what they win on whole
//! labs and on `eval` (the reason they are kept).

mod gather;
mod kernels;
mod products;
#[cfg(test)]
mod tests;

pub use products::{sparse_affine, sparse_matmul_tn};

use super::Matrix;

/// The largest share of nonzero entries at which `Dense` uses these products instead
/// of the dense ones: a little under where the two took the same time for a 784 ->
/// 512 layer on batches of 100 (BENCHMARKS.md, 2026-11-27: near 35%).
pub const MAX_DENSITY: f32 = 0.3;

/// Columns summed in registers at once (8 AVX2 registers).
const PANEL: usize = 64;

/// What a sum of scaled rows starts from: zero, or a bias row (columns `j0 ..` of it
/// for the columns `j0 ..`).
#[derive(Clone, Copy)]
enum Start<'a> {
    Zero,
    Bias(&'a [f32]),
}

/// The nonzero entries of a `(rows, cols)` matrix, listed by row (columns ascending;
/// row `r`'s are `by_row_col[i]`, `by_row_val[i]` for `i` in
/// `row_start[r]..row_start[r + 1]`) for the forward product, and, when gathered with
/// columns, by column (rows ascending; column `k`'s are `row[i]`, `val[i]` for `i` in
/// `start[k]..start[k + 1]`) for the weight gradient. Its buffers are reused, so
/// gathering a batch of the same size again does not allocate.
#[derive(Clone, Debug, Default)]
pub struct Nonzeros {
    /// Shape of the matrix the entries came from.
    pub rows: usize,
    pub cols: usize,
    /// (cols + 1,)
    start: Vec<u32>,
    /// Rows per piece: the rows are gathered in pieces, one per thread.
    per: usize,
    /// (pieces * cols,): each piece's count of nonzeros per column, then where its
    /// next entry of each column goes.
    cursor: Vec<u32>,
    /// (pieces + 1,): where each piece's entries start in the by-row lists.
    piece_start: Vec<u32>,
    /// (nonzeros,)
    row: Vec<u32>,
    /// (nonzeros,)
    val: Vec<f32>,
    /// (rows + 1,)
    row_start: Vec<u32>,
    /// (nonzeros,)
    by_row_col: Vec<u32>,
    /// (nonzeros,)
    by_row_val: Vec<f32>,
    /// Whether the by-column lists were built too.
    columns: bool,
    /// The weight gradient's per-piece copies of a `dy` panel (`products`).
    panels: Vec<Matrix>,
}

impl Nonzeros {
    /// Whether the by-column lists, which the weight gradient reads, were built.
    pub fn has_columns(&self) -> bool {
        self.columns
    }

    /// How many nonzero entries were gathered.
    pub fn nonzeros(&self) -> usize {
        self.by_row_col.len()
    }

    /// Row `r`'s entries as `(columns, values)`.
    #[inline(always)]
    fn row(&self, r: usize) -> (&[u32], &[f32]) {
        let (a, b) = (self.row_start[r] as usize, self.row_start[r + 1] as usize);
        (&self.by_row_col[a..b], &self.by_row_val[a..b])
    }

    /// Column `k`'s entries as `(rows, values)` (built only with columns).
    #[inline]
    fn column(&self, k: usize) -> (&[u32], &[f32]) {
        let (a, b) = (self.start[k] as usize, self.start[k + 1] as usize);
        (&self.row[a..b], &self.val[a..b])
    }
}

/// The most nonzero entries a `(rows, cols)` matrix may have for the sparse products at
/// `max_density`.
fn most_entries(max_density: f32, rows: usize, cols: usize) -> usize {
    (max_density.clamp(0.0, 1.0) as f64 * (rows * cols) as f64) as usize
}

/// Makes room in `v` for `n` elements in all, so growing it to `n` will not allocate.
fn room<T>(v: &mut Vec<T>, n: usize) {
    v.reserve(n.saturating_sub(v.len()));
}

/// A raw pointer that may cross to another thread.
///
/// # Safety
/// Whoever sends one promises that the threads holding copies write disjoint
/// elements of what it points to (each piece of a gather its own rows' lists, each
/// block of a product its own rows or columns of the result), and that it outlives
/// them (the fork-join waits).
struct SendPtr<T>(*mut T);
// (by hand: derived, they would need `T: Copy`)
impl<T> Clone for SendPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for SendPtr<T> {}
// SAFETY: see the type's doc.
unsafe impl<T> Send for SendPtr<T> {}
// SAFETY: see the type's doc.
unsafe impl<T> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// The pointer (a method, so that closures capture the whole `SendPtr`).
    fn ptr(self) -> *mut T {
        self.0
    }
}
