//! The sparse products' kernels written with x86-64 intrinsics, each the twin of a
//! plain-Rust kernel in `portable` and tested against it. Callers run them only where
//! `simd::detected()` reports the instructions they use.

use super::Start;
use crate::tensor::Matrix;
use std::arch::x86_64::*;

/// `portable::list_nonzeros` with AVX-512, 16 entries at a time with no branch per
/// entry: a compress packs the nonzero values (and, from a vector of column numbers,
/// their columns) to the front of a register, and a masked store writes just those.
/// (Entry by entry, the branches mispredict: listing a layer's output that way took
/// about as long as gathering it.)
///
/// # Safety
/// On a CPU with AVX-512F and POPCNT; `col` and `val` have room for `room` entries.
///
/// # Panics
/// If `v` has more than `room` nonzeros (before writing past them).
#[target_feature(enable = "avx512f,popcnt")]
pub(super) unsafe fn list_nonzeros_avx512(
    v: &[f32],
    col: *mut u32,
    val: *mut f32,
    room: usize,
) -> usize {
    let lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    let (mut q, mut c) = (0, 0);
    while c < v.len() {
        let left = v.len() - c;
        let inside: __mmask16 = if left >= 16 { !0 } else { (1 << left) - 1 };
        // SAFETY: the load reads only the lanes in `inside`, which lie in `v`; the
        // stores write the next `count` entries, q + count <= room (checked).
        unsafe {
            let x = _mm512_maskz_loadu_ps(inside, v.as_ptr().add(c));
            let nz = _mm512_mask_cmp_ps_mask::<_CMP_NEQ_UQ>(inside, x, _mm512_setzero_ps());
            let count = nz.count_ones() as usize;
            assert!(
                q + count <= room,
                "list_nonzeros: more nonzeros than counted"
            );
            let head = ((1u32 << count) - 1) as __mmask16;
            let cols = _mm512_add_epi32(lanes, _mm512_set1_epi32(c as i32));
            _mm512_mask_storeu_ps(val.add(q), head, _mm512_maskz_compress_ps(nz, x));
            let packed = _mm512_maskz_compress_epi32(nz, cols);
            _mm512_mask_storeu_epi32(col.add(q).cast(), head, packed);
            q += count;
        }
        c += 16;
    }
    q
}

/// `portable::sum_tail` with AVX-512: 16 columns at a time in one register, the
/// columns past the end masked off, so a 10-class output layer takes one pass over a
/// row's entries instead of two overlapping passes of eight. Each lane computes what
/// the portable kernel's does (its start, then `+ v · x` for each entry in turn; no
/// fused multiply-add), so the same bits.
///
/// # Safety
/// On a CPU with AVX-512F; every entry's row lies in `m`, the columns
/// `j .. j + out.len()` too, and in `start`'s bias if it has one.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn sum_tail_avx512(
    rows: &[u32],
    vals: &[f32],
    m: &Matrix,
    j: usize,
    out: &mut [f32],
    start: Start<'_>,
) {
    let (n, len, base) = (m.cols, out.len(), m.data.as_ptr());
    let mut c = 0;
    while c < len {
        let left = len - c;
        let inside: __mmask16 = if left >= 16 { !0 } else { (1 << left) - 1 };
        // SAFETY: every load and the store touch only the lanes in `inside`, which
        // lie inside `out`, the bias and each entry's row of `m`, as the caller
        // promises.
        unsafe {
            let mut acc = match start {
                Start::Zero => _mm512_setzero_ps(),
                Start::Bias(b) => _mm512_maskz_loadu_ps(inside, b.as_ptr().add(j + c)),
            };
            for (&k, &v) in rows.iter().zip(vals) {
                let x = _mm512_maskz_loadu_ps(inside, base.add(k as usize * n + j + c));
                acc = _mm512_add_ps(acc, _mm512_mul_ps(_mm512_set1_ps(v), x));
            }
            _mm512_mask_storeu_ps(out.as_mut_ptr().add(c), inside, acc);
        }
        c += 16;
    }
}

/// Asks the core to bring the `P` floats from `p` into its first-level cache, one
/// line in every `every` (a hint: no fault if `p` lies outside any buffer).
#[inline(always)]
pub(super) fn prefetch<const P: usize>(p: *const f32, every: usize) {
    for line in (0..P / 16).step_by(every) {
        // SAFETY: a prefetch reads nothing the program can see and cannot fault.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(16 * line) as *const i8) };
    }
}
