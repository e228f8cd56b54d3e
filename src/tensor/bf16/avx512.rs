//! The bf16 tile on AVX512-BF16: `vdpbf16ps` multiplies 16 pairs of bf16 by 16 pairs
//! and adds each lane's two products to its f32 sum. Twin of `tile_portable` (mod.rs).

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
/// `k` converted, then spread over the panel). Returns false, having written nothing,
/// for any other layout (no product packs one; the portable loop does). The same
/// bits as the portable loop (both round to nearest even; `vcvtne2ps2bf16` also reads
/// subnormals as zero).
///
/// # Safety
/// The CPU has AVX512-F, -BW and -BF16; `src` reads inside its data at every `(p, l)`
/// with `p < k`, `l < lanes`; `dst` holds `lanes.div_ceil(w) * k.div_ceil(2) * w`
/// zeros.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
pub unsafe fn pack(src: super::Strided<'_>, w: usize, dst: &mut [u32]) -> bool {
    let kp = src.k.div_ceil(2);
    let mask = |lanes: usize| -> __mmask16 { ((1u32 << lanes.min(16)) - 1) as __mmask16 };
    let base = src.data.as_ptr();
    let out = dst.as_mut_ptr();
    let panels = src.lanes.div_ceil(w);
    assert!(dst.len() >= panels * kp * w);
    if src.sl == 1 {
        // word 2j from the first row's lane j, word 2j + 1 from the second's
        let idx: [i16; 32] = std::array::from_fn(|i| (i / 2 + (i % 2) * 16) as i16);
        // SAFETY: an unaligned load of the 64 bytes of `idx`.
        let idx = unsafe { _mm512_loadu_si512(idx.as_ptr().cast()) };
        for i in 0..panels {
            let lanes = w.min(src.lanes - i * w);
            for p in 0..kp {
                // SAFETY: rows 2p (< k) and 2p + 1 (read only when < k), lanes
                // i*w .. + lanes: inside the data (the caller's promise); the masks keep
                // to the lanes; `d` is pair p of panel i, inside `dst` (asserted).
                unsafe {
                    let r0 = base.add(2 * p * src.sp + src.l0 + i * w);
                    let d = out.add((i * kp + p) * w);
                    let mut c = 0;
                    while c < lanes {
                        let m = mask(lanes - c);
                        let v0 = _mm512_maskz_loadu_ps(m, r0.add(c));
                        let v1 = if 2 * p + 1 < src.k {
                            _mm512_maskz_loadu_ps(m, r0.add(src.sp + c))
                        } else {
                            _mm512_setzero_ps()
                        };
                        let words: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(v1, v0));
                        let pairs = _mm512_permutexvar_epi16(idx, words);
                        _mm512_mask_storeu_epi32(d.add(c).cast(), m, pairs);
                        c += 16;
                    }
                }
            }
        }
    } else if src.sp == 1 {
        for i in 0..panels {
            let lanes = w.min(src.lanes - i * w);
            for l in 0..lanes {
                // SAFETY: lane i*w + l's run of k values lies inside the data (the
                // caller's promise), the masks keep to it; each pair p < kp lands at
                // (i*kp + p)*w + l, inside `dst` (asserted).
                unsafe {
                    let run = base.add((src.l0 + i * w + l) * src.sl);
                    let mut v = 0;
                    while v < src.k {
                        let n = (src.k - v).min(32);
                        let lo = _mm512_maskz_loadu_ps(mask(n), run.add(v));
                        let hi = _mm512_maskz_loadu_ps(
                            mask(n.saturating_sub(16)),
                            run.wrapping_add(v + 16),
                        );
                        let words: [u32; 16] = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
                        let p0 = v / 2;
                        for (q, &word) in words.iter().enumerate().take(n.div_ceil(2)) {
                            *out.add((i * kp + p0 + q) * w + l) = word;
                        }
                        v += 32;
                    }
                }
            }
        }
    } else {
        return false;
    }
    true
}
