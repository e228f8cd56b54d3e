//! `Matrix`: a row-major `f32` matrix that owns its buffer, and the matrix products
//! that every layer uses: dense ones computed by the `gemm` crate (no GEMM
//! micro-kernels of our own), and, in [`sparse`], the products of a layer whose input
//! is mostly zeros, which are not GEMMs but one row update per nonzero input.
//! Elementwise maths lives in the layers, next to its derivative.

pub mod bf16;
pub mod gates;
pub mod im2col;
mod matmul;
pub mod sparse;

use crate::runtime::Runtime;
pub use matmul::{
    View, gemm, gemm_here, gemm_here_in, gemm_in, inside_gemm, matmul_nn, matmul_nt, matmul_tn,
    naive_matmul, transpose,
};

/// A row-major matrix of `f32`.
///
/// # Shapes
/// `data.len() == rows * cols`; element `(i, j)` is `data[i * cols + j]`.
///
/// A buffer can shrink and grow its row count within the capacity it was made with,
/// without allocating (`set_rows`): that is how a last, smaller batch reuses the
/// buffers of the full-size ones.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f32>,
}

impl Matrix {
    /// A `rows x cols` matrix of zeros.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Matrix {
            rows,
            cols,
            data: vec![0.0; rows * cols],
        }
    }

    /// Wraps `data` (row-major, `rows * cols` long).
    ///
    /// # Panics
    /// If the length does not match; callers check user data before this.
    pub fn from_vec(rows: usize, cols: usize, data: Vec<f32>) -> Self {
        assert_eq!(data.len(), rows * cols, "Matrix::from_vec: length mismatch");
        Matrix { rows, cols, data }
    }

    /// Changes the row count, keeping `cols`. Does not allocate when
    /// `rows * cols` fits the capacity the buffer already has.
    pub fn set_rows(&mut self, rows: usize) {
        self.rows = rows;
        self.data.resize(rows * self.cols, 0.0);
    }

    /// Makes this a `rows x cols` matrix (contents unspecified), reusing the buffer.
    pub fn reshape_for(&mut self, rows: usize, cols: usize) {
        self.rows = rows;
        self.cols = cols;
        self.data.resize(rows * cols, 0.0);
    }

    /// Row `i` as a slice of length `cols`.
    #[inline]
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// Row `i`, mutable.
    #[inline]
    pub fn row_mut(&mut self, i: usize) -> &mut [f32] {
        &mut self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// `(rows, cols)`.
    pub fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// Sets every element to `v`.
    pub fn fill(&mut self, v: f32) {
        self.data.fill(v);
    }

    /// Index of the largest element of row `i` (first one on ties).
    pub fn argmax_row(&self, i: usize) -> usize {
        argmax(self.row(i))
    }
}

/// Buffers shorter than this (in elements) are passed over on one thread by
/// [`for_each_piece`]: a training batch's activations (100 x 512 = 51,200) stay on
/// one thread, where a fork would cost about what it saves; an evaluation batch's
/// are cut up.
pub const PIECE_MIN: usize = 1 << 16;

/// Runs `f(at, piece)` over `out` cut into one piece per thread of `rt` (`piece` is
/// `out[at .. at + piece.len()]`), in parallel, when `out` has at least
/// [`PIECE_MIN`] elements; otherwise `f(0, out)` here. For elementwise passes, whose
/// results do not depend on the cut; `f` reads its inputs at the same offsets.
pub fn for_each_piece(rt: &Runtime, out: &mut [f32], f: &(impl Fn(usize, &mut [f32]) + Sync)) {
    fn split(at: usize, out: &mut [f32], pieces: usize, f: &(impl Fn(usize, &mut [f32]) + Sync)) {
        if pieces <= 1 {
            return f(at, out);
        }
        let half = pieces / 2;
        // cut on a cache line (16 floats), in proportion to the pieces each side gets
        let mid = (out.len() * half / pieces) / 16 * 16;
        let (a, b) = out.split_at_mut(mid);
        crate::par::join(
            || split(at, a, half, f),
            || split(at + mid, b, pieces - half, f),
        );
    }
    let pieces = if out.len() < PIECE_MIN {
        1
    } else {
        rt.threads.max(1)
    };
    split(0, out, pieces, f)
}

/// Settles a product `out (m x n) (+)= a (m x k) · b (k x n)` that sums nothing:
/// `true` when `out` is already final, with no rows or columns, or with `k == 0`
/// (then `out` is zeroed unless accumulating). Every product's first check.
pub(crate) fn nothing_to_sum(
    m: usize,
    k: usize,
    n: usize,
    out: &mut [f32],
    accumulate: bool,
) -> bool {
    if m == 0 || n == 0 {
        return true;
    }
    if k == 0 && !accumulate {
        out.fill(0.0);
    }
    k == 0
}

/// Index of the largest element (first on ties); 0 for an empty slice.
pub fn argmax(xs: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in xs.iter().enumerate() {
        if x > xs[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pieces cover the buffer exactly once, each told its offset, at every
    /// thread count, for short buffers (one piece) and long ones (one per thread).
    #[test]
    fn pieces_cover_the_buffer_once_at_their_offsets() {
        for len in [0, 1, 1000, PIECE_MIN - 1, PIECE_MIN, 3 * PIECE_MIN + 7] {
            for t in [1, 2, 3, 4] {
                let mut out = vec![-1.0f32; len];
                let calls = std::sync::atomic::AtomicUsize::new(0);
                let rt = Runtime::single().with_threads(t);
                for_each_piece(&rt, &mut out, &|at, piece| {
                    calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    for (i, v) in piece.iter_mut().enumerate() {
                        assert_eq!(*v, -1.0, "written twice");
                        *v = (at + i) as f32;
                    }
                });
                assert!(out.iter().enumerate().all(|(i, &v)| v == i as f32));
                let want = if len < PIECE_MIN { 1 } else { t };
                assert_eq!(calls.into_inner(), want, "{len} elements, {t} threads");
            }
        }
    }
}
