//! The sparse products' innermost kernels that are not a panel of sums: listing a
//! row's nonzero entries, and the last (fewer than 64) columns of a product. Plain
//! Rust; the loops that call them are compiled for AVX2 too (`simd_fn!`). (Versions
//! with AVX-512 intrinsics won less on a whole dropout lab than the 10% a fast path
//! must win; BENCHMARKS.md.)

use super::Start;
use crate::tensor::Matrix;

/// Writes the nonzero entries of `v` (NaN counts as nonzero), columns ascending from
/// 0, at `col` and `val`; returns how many.
///
/// # Safety
/// `col` and `val` must have room for `room` entries.
///
/// # Panics
/// If `v` has more than `room` nonzeros (before writing past them).
#[inline(always)]
pub(super) unsafe fn list_nonzeros(v: &[f32], col: *mut u32, val: *mut f32, room: usize) -> usize {
    let mut q = 0;
    for (c, chunk) in v.chunks(32).enumerate() {
        let mut mask = chunk
            .iter()
            .enumerate()
            .fold(0u32, |m, (j, &x)| m | ((x != 0.0) as u32) << j);
        while mask != 0 {
            let j = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            assert!(q < room, "list_nonzeros: more nonzeros than counted");
            // SAFETY: q < room, the room the caller gives.
            unsafe {
                *col.add(q) = (c * 32 + j) as u32;
                *val.add(q) = chunk[j];
            }
            q += 1;
        }
    }
    q
}

/// `out[c] = start[j + c] + Σ_i vals[i] · m[rows[i], j + c]` for the (fewer than 64)
/// columns of `out`, each column's start first, then every entry's product added to it
/// in turn. Eight columns at a time in registers; the last eight end at the last
/// column, so they may repeat a few columns of the eight before, which computes them
/// again from the same start in the same order, to the same bits.
///
/// The caller has checked that every entry's row lies in `m`, the columns
/// `j .. j + out.len()` too, and in `start`'s bias if it has one.
#[inline(always)]
pub(super) fn sum_tail(
    rows: &[u32],
    vals: &[f32],
    m: &Matrix,
    j: usize,
    out: &mut [f32],
    start: Start<'_>,
) {
    const LANES: usize = 8;
    const MOST: usize = super::PANEL;
    let (n, len) = (m.cols, out.len());
    assert!(len < MOST, "sum_tail: {len} columns");
    if len == 0 {
        return;
    }
    let mut from = [0f32; MOST];
    match start {
        Start::Zero => {}
        Start::Bias(b) => from[..len].copy_from_slice(&b[j..j + len]),
    }
    if len < LANES {
        out.copy_from_slice(&from[..len]);
        for (&k, &v) in rows.iter().zip(vals) {
            let at = k as usize * n + j;
            for (o, &x) in out.iter_mut().zip(&m.data[at..at + len]) {
                *o += v * x;
            }
        }
        return;
    }
    let mut sums = [0f32; MOST];
    let mut c = 0;
    while c < len {
        let c0 = c.min(len - LANES);
        let mut acc: [f32; LANES] = from[c0..c0 + LANES].try_into().unwrap();
        for (&k, &v) in rows.iter().zip(vals) {
            let mk: &[f32; LANES] = m.data[k as usize * n + j + c0..][..LANES]
                .try_into()
                .unwrap();
            for (a, &x) in acc.iter_mut().zip(mk) {
                *a += v * x;
            }
        }
        sums[c0..c0 + LANES].copy_from_slice(&acc);
        c += LANES;
    }
    out.copy_from_slice(&sums[..len]);
}
