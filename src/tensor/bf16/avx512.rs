//! The bf16 tile and the operands' packing on AVX-512: `vdpbf16ps` multiplies 16
//! pairs of bf16 by 16 pairs and adds each lane's two products to its f32 sum (twin of
//! `tile_portable`, mod.rs); `vcvtne2ps2bf16` rounds 32 floats to bf16 at once (twin of
//! the portable loop in mod.rs's `pack`).

use super::{MR, NR};
use std::arch::x86_64::*;

/// As [`super::tile_portable`], with the `MR x NR` sums in 20 registers.
///
/// # Safety
/// The CPU has AVX512-F and AVX512-BF16; `ap` holds `kp * MR` pairs and `bp` `kp * NR`;
/// `out.ptr` reaches `rows <= MR` rows of `cols <= NR` elements at stride `ld`, which no
/// other reference touches.
#[target_feature(enable = "avx512f,avx512bf16")]
pub unsafe fn tile(kp: usize, ap: &[u32], bp: &[u32], out: super::TileOut) {
    let super::TileOut {
        ptr: out,
        ld,
        rows,
        cols,
        accumulate,
    } = out;
    assert!(ap.len() >= kp * MR && bp.len() >= kp * NR && rows <= MR && cols <= NR);
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    let (a, b) = (ap.as_ptr(), bp.as_ptr());
    for p in 0..kp {
        // SAFETY: p < kp, inside `ap` and `bp` (asserted); unaligned loads.
        unsafe {
            let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.add(p * NR).cast()));
            let b1: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.add(p * NR + 16).cast()));
            for (r, sums) in acc.iter_mut().enumerate() {
                let av: __m512bh =
                    std::mem::transmute(_mm512_set1_epi32(*a.add(p * MR + r) as i32));
                sums[0] = _mm512_dpbf16_ps(sums[0], av, b0);
                sums[1] = _mm512_dpbf16_ps(sums[1], av, b1);
            }
        }
    }
    let mask = |lanes: usize| -> __mmask16 { ((1u32 << lanes.min(16)) - 1) as __mmask16 };
    let (m0, m1) = (mask(cols), mask(cols.saturating_sub(16)));
    for (r, sums) in acc.iter().enumerate().take(rows) {
        // SAFETY: row r < rows; the masks keep to its first `cols` elements (the
        // caller's promise), and masked-off lanes are neither read nor written.
        unsafe {
            let o = out.add(r * ld);
            let o1 = o.wrapping_add(16);
            let (mut v0, mut v1) = (sums[0], sums[1]);
            if accumulate {
                v0 = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, o), v0);
                v1 = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, o1), v1);
            }
            _mm512_mask_storeu_ps(o, m0, v0);
            _mm512_mask_storeu_ps(o1, m1, v1);
        }
    }
}

/// As `mod.rs`'s portable `pack`, for the two layouts products meet: lanes contiguous
/// (`sl == 1`: two runs of lanes interleaved) or pairs contiguous (`sp == 1`: runs of
/// `k` converted 16 lanes at a time, then transposed). Either writes every word of
/// `dst`, lanes past the source's as zeros, so `dst` needs no clearing first. Returns
/// false, having written nothing, for any other layout (no product packs one; the
/// portable loop does). The same bits as the portable loop (both round to nearest
/// even; `vcvtne2ps2bf16` also reads subnormals as zero).
///
/// # Safety
/// The CPU has AVX512-F, -BW and -BF16; `src` reads inside its data at every `(p, l)`
/// with `p < k`, `l < lanes`; `dst` is `lanes.div_ceil(w) * k.div_ceil(2) * w` long.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
pub unsafe fn pack(src: super::Strided<'_>, w: usize, dst: &mut [u32]) -> bool {
    let kp = src.k.div_ceil(2);
    let mask = |lanes: usize| -> __mmask16 { ((1u32 << lanes.min(16)) - 1) as __mmask16 };
    let base = src.data.as_ptr();
    let out = dst.as_mut_ptr();
    let panels = src.lanes.div_ceil(w);
    assert_eq!(dst.len(), panels * kp * w);
    if src.sl == 1 {
        // word 2j from the first row's lane j, word 2j + 1 from the second's
        let idx: [i16; 32] = std::array::from_fn(|i| (i / 2 + (i % 2) * 16) as i16);
        // SAFETY: an unaligned load of the 64 bytes of `idx`.
        let idx = unsafe { _mm512_loadu_si512(idx.as_ptr().cast()) };
        for i in 0..panels {
            let lanes = w.min(src.lanes - i * w);
            for p in 0..kp {
                // SAFETY: rows 2p (< k) and 2p + 1 (read only when < k), lanes
                // i*w .. + lanes: inside the data (the caller's promise); the load
                // masks keep to the lanes (past them the words are zeros), and the
                // addresses past them (`wrapping_add`) are read under a zero mask only;
                // `d` is pair p of panel i, inside `dst` (asserted), and the store masks
                // keep to its `w` lanes.
                unsafe {
                    let r0 = base.add(2 * p * src.sp + src.l0 + i * w);
                    let d = out.add((i * kp + p) * w);
                    let mut c = 0;
                    while c < w {
                        let m = mask(lanes.saturating_sub(c));
                        let v0 = _mm512_maskz_loadu_ps(m, r0.wrapping_add(c));
                        let v1 = if 2 * p + 1 < src.k {
                            _mm512_maskz_loadu_ps(m, r0.wrapping_add(src.sp + c))
                        } else {
                            _mm512_setzero_ps()
                        };
                        let words: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(v1, v0));
                        let pairs = _mm512_permutexvar_epi16(idx, words);
                        _mm512_mask_storeu_epi32(d.add(c).cast(), mask(w - c), pairs);
                        c += 16;
                    }
                }
            }
        }
    } else if src.sp == 1 {
        // Each lane's run of `k` converted 32 values (16 pairs) at a time, for 16 lanes
        // at once, then transposed in registers so that each pair's 16 lanes are stored
        // as one vector. Lanes past the source's (in the last panel) are zeros, and
        // every word of `dst` is written. `g0`: a group's first lane in the panel
        // (`width` of the panel's lanes in it, `here` of the source's); `p0`: a block's
        // first pair, `v = 2 p0` its first value, `n` the values left in each run.
        for i in 0..panels {
            let lanes = w.min(src.lanes - i * w);
            for g0 in (0..w).step_by(16) {
                let (width, here) = ((w - g0).min(16), lanes.saturating_sub(g0).min(16));
                for p0 in (0..kp).step_by(16) {
                    let v = 2 * p0;
                    let (n, pairs) = (src.k - v, (kp - p0).min(16));
                    let mut rows = [_mm512_setzero_si512(); 16];
                    for (l, row) in rows.iter_mut().enumerate().take(here) {
                        // SAFETY: g0 + l < lanes, so source lane i*w + g0 + l is inside
                        // the data, and so are its values v .. v + min(n, 32) (the
                        // caller's promise), which the masks keep to; `run + 16`, past
                        // the data when n <= 16, is read under a zero mask only.
                        unsafe {
                            let run = base.add((src.l0 + i * w + g0 + l) * src.sl + v);
                            let lo = _mm512_maskz_loadu_ps(mask(n), run);
                            let hi = _mm512_maskz_loadu_ps(
                                mask(n.saturating_sub(16)),
                                run.wrapping_add(16),
                            );
                            *row = std::mem::transmute::<__m512bh, __m512i>(_mm512_cvtne2ps_pbh(
                                hi, lo,
                            ));
                        }
                    }
                    let columns = transpose16(rows);
                    for (q, column) in columns.iter().enumerate().take(pairs) {
                        // SAFETY: pair p0 + q < kp of panel i, lanes g0 .. g0 + width
                        // (<= w): inside `dst` (asserted).
                        unsafe {
                            let d = out.add((i * kp + p0 + q) * w + g0);
                            _mm512_mask_storeu_epi32(d.cast(), mask(width), *column);
                        }
                    }
                }
            }
        }
    } else {
        return false;
    }
    true
}

/// The 16 x 16 matrix of 32-bit words whose rows are `r`, transposed: word `c` of
/// row `l` becomes word `l` of row `c`. Interleaves words, then pairs of words,
/// then 128-bit blocks, twice.
#[target_feature(enable = "avx512f")]
fn transpose16(r: [__m512i; 16]) -> [__m512i; 16] {
    // block k of t[2j]: words 4k, 4k + 1 of rows 2j, 2j + 1, interleaved; of t[2j + 1]:
    // words 4k + 2, 4k + 3
    let t: [__m512i; 16] = std::array::from_fn(|i| {
        let (a, b) = (r[i & !1], r[i | 1]);
        if i % 2 == 0 {
            _mm512_unpacklo_epi32(a, b)
        } else {
            _mm512_unpackhi_epi32(a, b)
        }
    });
    // block k of u[4q + s]: word 4k + s of rows 4q .. 4q + 4
    let u: [__m512i; 16] = std::array::from_fn(|i| {
        let (r0, s) = (i / 4 * 4, i % 4);
        let (a, b) = (t[r0 + s / 2], t[r0 + 2 + s / 2]);
        if s % 2 == 0 {
            _mm512_unpacklo_epi64(a, b)
        } else {
            _mm512_unpackhi_epi64(a, b)
        }
    });
    // block q of out[4k + s] (row 4k + s of the transpose) is block k of u[4q + s]
    let mut out = [_mm512_setzero_si512(); 16];
    for s in 0..4 {
        let x0 = _mm512_shuffle_i32x4::<0x88>(u[s], u[4 + s]);
        let x1 = _mm512_shuffle_i32x4::<0xdd>(u[s], u[4 + s]);
        let y0 = _mm512_shuffle_i32x4::<0x88>(u[8 + s], u[12 + s]);
        let y1 = _mm512_shuffle_i32x4::<0xdd>(u[8 + s], u[12 + s]);
        out[s] = _mm512_shuffle_i32x4::<0x88>(x0, y0);
        out[s + 8] = _mm512_shuffle_i32x4::<0xdd>(x0, y0);
        out[s + 4] = _mm512_shuffle_i32x4::<0x88>(x1, y1);
        out[s + 12] = _mm512_shuffle_i32x4::<0xdd>(x1, y1);
    }
    out
}
