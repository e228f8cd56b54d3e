//! The two sparse products, `y = b + x W` (a dense layer's forward) and `dW = xᵀ dy`
//! (its weight gradient), from a [`Nonzeros`] listing of `x`. Each sums one panel of
//! 64 columns at a time in registers (compiled for AVX2 too, `simd_fn!`), and
//! each cuts its work over the runtime's threads by columns (the forward, so each
//! thread reads only its part of `W`) or by rows of `dW` with equal numbers of entries.

use super::{Nonzeros, PANEL, SendPtr, Start};
use crate::par::{fork_blocks, join};
use crate::runtime::Runtime;
use crate::simd::simd_fn;
use crate::tensor::Matrix;

/// `out = b + x · w` (every row of `out` overwritten), with `x` given by its gathered
/// entries: an affine layer's forward.
///
/// Each thread owns a block of output columns (a 10-class output layer, too narrow to
/// share out, is cut by rows instead), so the part of `w` it reads stays in its core's
/// cache; each row's sums are the same whoever computes them.
///
/// # Shapes
/// `x: (m, k)` (as `e`), `w: (k, n)`, `b: (n,)`, `out: (m, n)`.
pub fn sparse_affine(rt: &Runtime, e: &Nonzeros, w: &Matrix, b: &[f32], out: &mut Matrix) {
    assert_eq!(b.len(), w.cols, "sparse_affine: bias length");
    assert_eq!(w.rows, e.cols, "sparse_affine: inner dims");
    assert_eq!(
        (out.rows, out.cols),
        (e.rows, w.cols),
        "sparse_affine: out shape"
    );
    // (the kernels index `w` and `out` unchecked: their buffers must hold their shapes)
    assert_eq!(w.data.len(), w.rows * w.cols, "sparse_affine: w's data");
    assert_eq!(
        out.data.len(),
        out.rows * out.cols,
        "sparse_affine: out's data"
    );
    let _timer = crate::timers::Timer::start(&crate::timers::PRODUCTS);
    let (m, n, t) = (e.rows, w.cols, rt.threads.max(1));
    let dst = SendPtr(out.data.as_mut_ptr());
    let start = Start::Bias(b);
    let level = rt.simd;
    if n.div_ceil(PANEL) >= t {
        let per = n.div_ceil(t).div_ceil(PANEL) * PANEL;
        fork_blocks(0, n, per, &|j0, nb| {
            forward_block(level, e, w, start, dst, 0..m, j0..j0 + nb)
        });
    } else {
        fork_blocks(0, m, m.div_ceil(t).max(16), &|r0, rb| {
            forward_block(level, e, w, start, dst, r0..r0 + rb, 0..n)
        });
    }
}

simd_fn! {
    /// Columns `cols` of rows `rows` of `out = start + x · w`, `out` given by `dst`.
    ///
    /// Row by row, each panel of 64 of the row's sums held in registers over the row's
    /// nonzeros (pixels ascending, from 0), then added to `start` and stored.
    fn forward_block(
        level: Level,
        e: &Nonzeros,
        w: &Matrix,
        start: Start<'_>,
        dst: SendPtr<f32>,
        rows: std::ops::Range<usize>,
        cols: std::ops::Range<usize>,
    ) {
        let (n, j0, nb) = (w.cols, cols.start, cols.len());
        assert!(rows.end <= e.rows && cols.end <= n);
        for r in rows {
            // SAFETY: r < out.rows and `j0 .. j0 + nb` lies inside `out`'s columns
            // (out is (e.rows, w.cols), `sparse_affine` checked); blocks on other
            // threads write other columns or other rows.
            let out = unsafe { std::slice::from_raw_parts_mut(dst.0.add(r * n + j0), nb) };
            let (ks, vs) = e.row(r);
            sum_scaled_rows(ks, vs, w, j0, out, start);
        }
    }
}

/// `dw = xᵀ · dy` (overwriting `dw`), with `x` given by its gathered entries (by
/// column: `Nonzeros::gather`).
///
/// # Shapes
/// `x: (m, k)` (as `e`), `dy: (m, n)`, `dw: (k, n)`.
pub fn sparse_matmul_tn(rt: &Runtime, e: &mut Nonzeros, dy: &Matrix, dw: &mut Matrix) {
    assert_eq!(dy.rows, e.rows, "sparse_matmul_tn: inner dims");
    assert!(e.columns, "sparse_matmul_tn: entries gathered by row only");
    assert_eq!(
        (dw.rows, dw.cols),
        (e.cols, dy.cols),
        "sparse_matmul_tn: out shape"
    );
    assert_eq!(
        dw.data.len(),
        dw.rows * dw.cols,
        "sparse_matmul_tn: dw's data"
    );
    assert_eq!(
        dy.data.len(),
        dy.rows * dy.cols,
        "sparse_matmul_tn: dy's data"
    );
    let _timer = crate::timers::Timer::start(&crate::timers::PRODUCTS);
    let pieces = rt.threads.max(1);
    // one `dy` panel buffer per piece, kept in `e` (`gather` made room in them)
    let mut panels = std::mem::take(&mut e.panels);
    if panels.len() < pieces {
        panels.resize_with(pieces, || Matrix::zeros(0, 0));
    }
    let (lists, panel) = (&*e, SendPtr(panels.as_mut_ptr()));
    let dst = SendPtr(dw.data.as_mut_ptr());
    let level = rt.simd;
    let block = |p: usize, k0: usize, k1: usize| {
        // SAFETY: p < pieces, and blocks running at once have different pieces.
        let panel = unsafe { &mut *panel.ptr().add(p) };
        weight_grad_rows(level, lists, dy, dst, k0, k1, panel)
    };
    fork_by_entries(lists, 0, lists.cols, 0, pieces, &block);
    e.panels = panels;
}

simd_fn! {
    /// Rows `k0 .. k1` of `dw = xᵀ · dy`, `dw` given by `dst`. One 64-column panel at
    /// a time, copied into `panel` (this piece's buffer), so that it (25 kB for a
    /// batch of 100) stays in the first-level cache while every pixel's sum is taken
    /// from it in registers. (Read in place, the panel's rows lie `n` floats apart: at
    /// n = 512, 2 kB, all of them map to 8 of the cache's 64 sets and evict each other.
    /// The copy made the product faster, same bits; BENCHMARKS.md.)
    fn weight_grad_rows(
        level: Level,
        e: &Nonzeros,
        dy: &Matrix,
        dst: SendPtr<f32>,
        k0: usize,
        k1: usize,
        panel: &mut Matrix,
    ) {
        let n = dy.cols;
        assert!(k1 <= e.cols);
        let mut j = 0;
        while j < n {
            let len = PANEL.min(n - j);
            panel.reshape_for(dy.rows, len);
            for r in 0..dy.rows {
                panel.row_mut(r).copy_from_slice(&dy.row(r)[j..j + len]);
            }
            for k in k0..k1 {
                // SAFETY: k < dw.rows and j + len <= n; blocks on other threads own
                // other rows.
                let dk = unsafe { std::slice::from_raw_parts_mut(dst.0.add(k * n + j), len) };
                let (rs, vs) = e.column(k);
                sum_scaled_rows(rs, vs, panel, 0, dk, Start::Zero);
            }
            j += len;
        }
    }
}

/// Runs `block(p, k0, k1)` over the columns `[lo, hi)` cut into `pieces` ranges holding
/// about equal numbers of entries (MNIST's border pixels are nearly always zero, so
/// equal column counts would not balance), forked by recursive halving.
fn fork_by_entries(
    e: &Nonzeros,
    lo: usize,
    hi: usize,
    first: usize,
    pieces: usize,
    block: &(impl Fn(usize, usize, usize) + Sync),
) {
    if pieces <= 1 || hi - lo <= 1 {
        return block(first, lo, hi);
    }
    let (a, b) = (e.start[lo] as usize, e.start[hi] as usize);
    let target = a + (b - a) * (pieces / 2) / pieces;
    let mid =
        (lo + e.start[lo..hi].partition_point(|&s| (s as usize) < target)).clamp(lo + 1, hi - 1);
    let half = pieces / 2;
    join(
        || fork_by_entries(e, lo, mid, first, half, block),
        || fork_by_entries(e, mid, hi, first + half, pieces - half, block),
    );
}

/// `out = start + Σ_i vals[i] · m[rows[i], j0 .. j0 + out.len()]`. Each panel of 64
/// columns is summed in registers from 0 over all the entries (in their order), then
/// added to `start` and stored once; the last `len % 64` columns start from `start`
/// and add the entries' products to it one by one (`kernels::sum_tail`).
#[inline(always)]
pub(super) fn sum_scaled_rows(
    rows: &[u32],
    vals: &[f32],
    m: &Matrix,
    j0: usize,
    out: &mut [f32],
    start: Start<'_>,
) {
    assert!(
        j0 + out.len() <= m.cols,
        "sum_scaled_rows: columns past the matrix"
    );
    assert_eq!(m.data.len(), m.rows * m.cols, "sum_scaled_rows: m's data");
    assert_eq!(rows.len(), vals.len(), "sum_scaled_rows: entries");
    // as a maximum, which the compiler vectorises
    assert!(
        rows.iter()
            .copied()
            .max()
            .is_none_or(|k| (k as usize) < m.rows),
        "sum_scaled_rows: row past the matrix"
    );
    if let Start::Bias(b) = start {
        assert!(
            j0 + out.len() <= b.len(),
            "sum_scaled_rows: bias shorter than the columns"
        );
    }
    let narrow = out.len() / PANEL * PANEL;
    let (head, rest) = out.split_at_mut(narrow);
    sum_panels(rows, vals, m, j0, head, start);
    super::kernels::sum_tail(rows, vals, m, j0 + narrow, rest, start);
}

/// `sum_scaled_rows` over `out.len()` (a multiple of `PANEL`) columns, `PANEL` at a
/// time.
///
/// The caller (`sum_scaled_rows`) has checked that every entry's row lies in `m` and
/// the columns `j0 .. j0 + out.len()` too.
#[inline(always)]
fn sum_panels(
    rows: &[u32],
    vals: &[f32],
    m: &Matrix,
    j0: usize,
    out: &mut [f32],
    start: Start<'_>,
) {
    let n = m.cols;
    let base = m.data.as_ptr();
    let mut j = j0;
    for op in out.chunks_exact_mut(PANEL) {
        let mut acc = [0f32; PANEL];
        for (&k, &v) in rows.iter().zip(vals) {
            // SAFETY: k < m.rows and j + PANEL <= n (checked by the caller), so the
            // PANEL floats from k * n + j lie in `m.data`.
            let mk = unsafe { &*(base.add(k as usize * n + j) as *const [f32; PANEL]) };
            for (a, &x) in acc.iter_mut().zip(mk) {
                *a += v * x;
            }
        }
        match start {
            Start::Zero => op.copy_from_slice(&acc),
            Start::Bias(b) => {
                let b: &[f32; PANEL] = b[j..j + PANEL].try_into().unwrap();
                op.iter_mut()
                    .zip(b.iter().zip(&acc))
                    .for_each(|(o, (&b, &a))| *o = b + a);
            }
        }
        j += PANEL;
    }
}
