//! Products in bfloat16 with f32 sums (`--precision bf16`): `out (+)= a · b` where
//! every element of `a` and `b` is first rounded to bf16 (f32's sign, exponent and top
//! 7 mantissa bits, round to nearest even), each product of two bf16 is exact in f32,
//! and the sums are f32. The operands are rounded where the product reads them; what
//! the layers keep (weights, activations, gradients) and the optimiser stay f32.
//!
//! No maintained crate delivers this where nnlab needs it: `gemm` has no bf16 type,
//! and `gemmkit` (0.1) writes a bf16 product's result in bf16. So this is nnlab's one
//! GEMM kernel of its own, in two files:
//! - here: the packing, the cut over threads, and the portable kernel (the reference,
//!   and what tests compare the fast one with);
//! - `avx512`: the kernel on AVX512-BF16's `vdpbf16ps`, which multiplies 16 pairs of
//!   bf16 pairs and adds each pair's two products to an f32 lane, and the packing of
//!   the two layouts products meet, on `vcvtne2ps2bf16`.
//!
//! # Layout
//! `vdpbf16ps` sums along pairs of the inner dimension, so both operands are packed
//! in pairs of `k`: each `u32` holds the bf16 of `k = 2p` (low half) and `k = 2p + 1`
//! (high half), an odd `k` padded with a zero.
//! - `a` in panels of [`MR`] rows: panel `i`, pair `p`, row `r` at
//!   `(i * kp + p) * MR + r` (`kp` pairs); rows past `m` are zeros.
//! - `b` in panels of [`NR`] columns: panel `j`, pair `p`, column `c` at
//!   `(j * kp + p) * NR + c`; columns past the block are zeros.
//!
//! The kernel holds an `MR x NR` tile of sums in registers (20 of the 32 `zmm`) and,
//! for each pair, broadcasts one row's pair against two vectors of 16 columns.
//!
//! # Rounding
//! `out[i, j]` is the f32 sum, over pairs `p` ascending from 0, of the pair's two
//! exact products; with `accumulate`, that sum is then added to `out[i, j]`. The
//! order does not depend on how columns are shared over threads, so neither do the
//! bits. Within a pair, the portable kernel adds the `2p` product first; `vdpbf16ps`
//! may round a pair differently (Intel's description adds `2p + 1` first, and treats
//! subnormal inputs and results as zero), so the two kernels agree to f32 rounding,
//! not to the bit (tested).

#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(test)]
mod tests;

use super::{Matrix, View};
use crate::par::{Disjoint, fork_blocks};
use crate::runtime::{Precision, Runtime};
use std::cell::RefCell;

/// Rows of a tile.
pub const MR: usize = 10;
/// Columns of a tile (two 16-lane vectors).
pub const NR: usize = 32;

/// Whether a product with `n` output columns runs on the bf16 kernel in `precision`:
/// in bf16, from half a tile (16 columns) up. A narrower product stays f32: most of
/// each tile would be padding (BENCHMARKS.md: the 10-class layer's forward and weight
/// gradient; its input gradient is as wide as the layer below and runs in bf16).
pub fn takes(precision: Precision, n: usize) -> bool {
    precision == Precision::Bf16 && n >= NR / 2
}

/// Whether this CPU runs the bf16 kernel (AVX512-F, -BW and -BF16).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `x` rounded to the nearest bf16 (ties to even), as its 16 bits, as
/// `vcvtne2ps2bf16` rounds: a subnormal `x` becomes a zero of its sign, NaNs stay NaNs.
#[inline]
pub fn to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return ((bits >> 16) | 0x40) as u16; // quiet
    }
    if bits & 0x7f80_0000 == 0 {
        return (bits >> 16) as u16 & 0x8000; // zero or subnormal: a signed zero
    }
    let round = 0x7fff + ((bits >> 16) & 1);
    (bits.wrapping_add(round) >> 16) as u16
}

/// The f32 that a bf16's bits stand for (exact).
#[inline]
pub fn from_bf16(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// Two bf16 in one `u32`: `lo` in the low half.
#[inline]
fn pair(lo: f32, hi: f32) -> u32 {
    to_bf16(lo) as u32 | (to_bf16(hi) as u32) << 16
}

/// The length of `a`'s packing (`m x k`, panels of `MR` rows).
fn packed_len_a(m: usize, k: usize) -> usize {
    m.div_ceil(MR) * k.div_ceil(2) * MR
}

/// The length of `b`'s packing (`k x n`, panels of `NR` columns).
fn packed_len_b(k: usize, n: usize) -> usize {
    n.div_ceil(NR) * k.div_ceil(2) * NR
}

/// Packs `a` (`m x k`) into panels of `MR` rows (module docs), into `dst`
/// (`packed_len_a(m, k)` long).
fn pack_a(a: View<'_>, dst: &mut [u32], fast: bool) {
    pack(Strided::pairs_along_columns(a, 0, a.rows), MR, dst, fast)
}

/// Packs columns `j0 .. j0 + nb` of `b` (`k x n`) into panels of `NR` columns (module
/// docs), into `dst` (`packed_len_b(k, nb)` long).
fn pack_b(b: View<'_>, j0: usize, nb: usize, dst: &mut [u32], fast: bool) {
    pack(
        Strided::pairs_along_columns(b.transpose(), j0, nb),
        NR,
        dst,
        fast,
    )
}

/// What a packing reads: `k` values along the pairs' dimension for each of `lanes`
/// lanes, value `(p, l)` at `data[p * sp + (l0 + l) * sl]`.
#[derive(Clone, Copy)]
struct Strided<'a> {
    data: &'a [f32],
    k: usize,
    sp: usize,
    l0: usize,
    lanes: usize,
    sl: usize,
}

impl<'a> Strided<'a> {
    /// Rows `l0 .. l0 + lanes` of `v` as lanes, its columns paired.
    fn pairs_along_columns(v: View<'a>, l0: usize, lanes: usize) -> Self {
        Strided {
            data: v.data,
            k: v.cols,
            sp: v.cs,
            l0,
            lanes,
            sl: v.rs,
        }
    }
}

/// Packs `src` into panels of `w` lanes: lane `l` of panel `i`, pair `p` at
/// `dst[(i * kp + p) * w + l]`, zeros past the lanes and past `k`. On the AVX512 copy
/// when `fast` (where [`available`]), else the portable loop; both give the same bits
/// (tested, subnormals and NaNs included).
fn pack(src: Strided<'_>, w: usize, dst: &mut [u32], fast: bool) {
    let kp = src.k.div_ceil(2);
    assert_eq!(
        dst.len(),
        src.lanes.div_ceil(w) * kp * w,
        "bf16 pack: dst's length"
    );
    if src.k == 0 || src.lanes == 0 {
        return;
    }
    let last = (src.k - 1)
        .checked_mul(src.sp)
        .zip((src.l0 + src.lanes - 1).checked_mul(src.sl))
        .and_then(|(p, l)| p.checked_add(l));
    assert!(
        last.is_some_and(|last| last < src.data.len()),
        "bf16 pack: reaches past its data"
    );
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the CPU has the instructions (`fast`); every index read is at most
    // `last` (asserted), every one written inside `dst` (its length asserted).
    if fast && unsafe { avx512::pack(src, w, dst) } {
        return;
    }
    let _ = fast;
    dst.fill(0);
    let at = |p: usize, l: usize| {
        if p < src.k {
            src.data[p * src.sp + (src.l0 + l) * src.sl]
        } else {
            0.0
        }
    };
    for (i, panel) in dst.chunks_exact_mut(kp * w).enumerate() {
        for l in 0..w.min(src.lanes - i * w) {
            for p in 0..kp {
                panel[p * w + l] = pair(at(2 * p, i * w + l), at(2 * p + 1, i * w + l));
            }
        }
    }
}

/// Where a tile's sums go: `rows x cols` elements from `ptr` at row stride `ld`;
/// with `accumulate` added to what is there, else written over it.
#[derive(Clone, Copy)]
pub struct TileOut {
    pub ptr: *mut f32,
    pub ld: usize,
    pub rows: usize,
    pub cols: usize,
    pub accumulate: bool,
}

/// One tile: `out[r, c] (+)= Σ_p` pair products, for `r < out.rows`, `c < out.cols`;
/// `ap` is one panel of packed `a` and `bp` one of packed `b`, both `kp` pairs long.
/// The portable kernel.
///
/// # Safety
/// `out.ptr` must reach `rows` rows of `cols` elements at stride `ld`, and no other
/// reference may touch them.
pub unsafe fn tile_portable(kp: usize, ap: &[u32], bp: &[u32], out: TileOut) {
    let TileOut {
        ptr: out,
        ld,
        rows,
        cols,
        accumulate,
    } = out;
    let mut acc = [[0f32; NR]; MR];
    for p in 0..kp {
        let b = &bp[p * NR..(p + 1) * NR];
        for (r, sums) in acc.iter_mut().enumerate().take(rows) {
            let a = ap[p * MR + r];
            let (a0, a1) = (from_bf16(a as u16), from_bf16((a >> 16) as u16));
            for (s, &bv) in sums.iter_mut().zip(b) {
                let (b0, b1) = (from_bf16(bv as u16), from_bf16((bv >> 16) as u16));
                *s = *s + a0 * b0 + a1 * b1;
            }
        }
    }
    for (r, sums) in acc.iter().enumerate().take(rows) {
        // SAFETY: the caller's promise on `out`.
        let row = unsafe { std::slice::from_raw_parts_mut(out.add(r * ld), cols) };
        for (o, &s) in row.iter_mut().zip(sums) {
            *o = if accumulate { *o + s } else { s };
        }
    }
}

/// Buffers for a bf16 product's packed operands. A layer owns its own (`Dense` one
/// per product, [`super::gemm_in`]; `Conv2d` one per block of images, shared by its
/// three products; a recurrent layer one per group of examples, for its steps), so that its training steps allocate nothing (the buffers grow to
/// their products' size in the first step); other callers use one kept by their
/// thread.
#[derive(Clone, Debug, Default)]
pub struct Packs {
    a: Vec<u32>,
    b: Vec<u32>,
}

impl Packs {
    /// Room for the packs of an `(m, k) · (k, n)` product, so that a later product of
    /// that shape allocates nothing (for a layer whose products are not all computed
    /// in its first step).
    pub fn reserve(&mut self, m: usize, k: usize, n: usize) {
        let room = |v: &mut Vec<u32>, len: usize| v.reserve(len.saturating_sub(v.len()));
        room(&mut self.a, packed_len_a(m, k));
        room(&mut self.b, packed_len_b(k, n));
    }
}

thread_local! {
    /// The packing buffers of products whose caller owns none.
    static PACKS: RefCell<Packs> = RefCell::new(Packs::default());
}

/// Columns per block when an `n`-column product is cut for `t` threads: whole panels.
fn column_block(n: usize, t: usize) -> usize {
    n.div_ceil(t.max(1)).div_ceil(NR) * NR
}

/// `out (+)= a · b` in bf16 with f32 sums (module docs), cut by columns over the
/// runtime's threads, packed into `packs` (or, for `None`, buffers kept by this
/// thread). The calling thread packs `a`; each block packs its own panels of `b`.
/// Runs the AVX512-BF16 kernel where the CPU has it, else the portable one.
///
/// # Shapes
/// `a: (m, k)`, `b: (k, n)`, `out: (m, n)`.
///
/// # Panics
/// If the shapes do not fit or a view reaches past its data.
pub fn gemm_bf16(
    rt: &Runtime,
    a: View<'_>,
    b: View<'_>,
    out: &mut Matrix,
    accumulate: bool,
    packs: Option<&mut Packs>,
) {
    assert_eq!(
        (out.rows, out.cols, out.data.len()),
        (a.rows, b.cols, a.rows * b.cols),
        "gemm_bf16: out's shape"
    );
    let (threads, fast) = (rt.threads, available());
    match packs {
        Some(packs) => product(threads, a, b, &mut out.data, accumulate, fast, packs),
        None => PACKS.with_borrow_mut(|packs| {
            product(threads, a, b, &mut out.data, accumulate, fast, packs)
        }),
    }
}

/// [`gemm_bf16`] on this thread alone, into a row-major `(a.rows, b.cols)` slice: for
/// the products of a parallel loop's block (a convolution's, one image each).
///
/// # Shapes
/// `a: (m, k)`, `b: (k, n)`, `out: (m·n,)`.
///
/// # Panics
/// If the shapes do not fit or a view reaches past its data.
pub fn gemm_bf16_here(
    a: View<'_>,
    b: View<'_>,
    out: &mut [f32],
    accumulate: bool,
    packs: &mut Packs,
) {
    product(1, a, b, out, accumulate, available(), packs)
}

/// [`gemm_bf16`] on the fast kernel when `fast` (only where [`available`]), else on
/// the portable one.
///
/// # Shapes
/// `a: (m, k)`, `b: (k, n)`, `out: (m·n,)`, a row-major `(m, n)`.
fn product(
    threads: usize,
    a: View<'_>,
    b: View<'_>,
    out: &mut [f32],
    accumulate: bool,
    fast: bool,
    packs: &mut Packs,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "gemm_bf16: inner dims");
    assert_eq!(out.len(), m * n, "gemm_bf16: out's length");
    assert!(
        a.in_bounds() && b.in_bounds(),
        "gemm_bf16: a view reaches past its data"
    );
    assert!(!fast || available(), "gemm_bf16: no AVX512-BF16 here");
    if super::nothing_to_sum(m, k, n, out, accumulate) {
        return;
    }
    let kp = k.div_ceil(2);
    packs.a.resize(packed_len_a(m, k), 0);
    packs.b.resize(packed_len_b(k, n), 0);
    pack_a(a, &mut packs.a, fast);
    let packed_a: &[u32] = &packs.a;
    let (dst, panels) = (Disjoint::of(out, n), Disjoint::of(&mut packs.b, kp * NR));
    let block = |j0: usize, nb: usize| {
        // SAFETY: blocks start at whole panels (`column_block`), so this block's
        // panels j0/NR .. are its own.
        let packed_b = unsafe { panels.rows(j0 / NR, nb.div_ceil(NR)) };
        pack_b(b, j0, nb, packed_b, fast);
        tiles(kp, m, packed_a, (j0, nb), packed_b, dst, accumulate, fast);
    };
    let t = if m * n * k < 64 * 64 * 64 { 1 } else { threads };
    fork_blocks(0, n, column_block(n, t), &block);
}

/// The tiles of columns `j0 .. j0 + nb` of an `m`-row product with `kp` pairs: every
/// panel of `packed_a` against every panel of `packed_b` (which holds those columns),
/// into `dst`, the product's output, row-major.
#[allow(clippy::too_many_arguments)]
fn tiles(
    kp: usize,
    m: usize,
    packed_a: &[u32],
    (j0, nb): (usize, usize),
    packed_b: &[u32],
    dst: Disjoint<f32>,
    accumulate: bool,
    fast: bool,
) {
    let n = dst.width();
    for (jp, bp) in packed_b.chunks_exact(kp * NR).enumerate() {
        let cols = NR.min(nb - jp * NR);
        for (ip, ap) in packed_a.chunks_exact(kp * MR).enumerate() {
            let rows = MR.min(m - ip * MR);
            let tile = TileOut {
                ptr: dst.tile(ip * MR, j0 + jp * NR, rows, cols),
                ld: n,
                rows,
                cols,
                accumulate,
            };
            // SAFETY: `tile` checked the tile lies inside `out`; the caller's block
            // alone writes these columns.
            unsafe { run_tile(fast, kp, ap, bp, tile) };
        }
    }
}

/// A `b` operand packed once for many products (module docs' layout, all its
/// columns): a recurrent layer's `W_hh`, which every step of a pass multiplies.
#[derive(Clone, Debug, Default)]
pub struct PackedB {
    data: Vec<u32>,
    k: usize,
    n: usize,
}

impl PackedB {
    /// Packs `b` (`k x n`) in place of what was held (allocating only to grow).
    pub fn pack(&mut self, b: View<'_>) {
        assert!(
            b.in_bounds(),
            "PackedB::pack: the view reaches past its data"
        );
        (self.k, self.n) = (b.rows, b.cols);
        self.data.resize(packed_len_b(b.rows, b.cols), 0);
        pack_b(b, 0, b.cols, &mut self.data, available());
    }
}

/// [`gemm_bf16_here`] with `b` packed beforehand, `a` packed into `packs`: the same
/// bits as `gemm_bf16_here` on the unpacked `b`.
///
/// # Shapes
/// `a: (m, k)`, `b: (k, n)`, `out: (m·n,)`, a row-major `(m, n)`.
///
/// # Panics
/// If the shapes do not fit or `a` reaches past its data.
pub fn gemm_bf16_packed_here(
    a: View<'_>,
    b: &PackedB,
    out: &mut [f32],
    accumulate: bool,
    packs: &mut Packs,
) {
    let (m, k, n) = (a.rows, a.cols, b.n);
    assert_eq!(b.k, k, "gemm_bf16_packed_here: inner dims");
    assert_eq!(out.len(), m * n, "gemm_bf16_packed_here: out's length");
    assert!(
        a.in_bounds(),
        "gemm_bf16_packed_here: a reaches past its data"
    );
    if super::nothing_to_sum(m, k, n, out, accumulate) {
        return;
    }
    let fast = available();
    packs.a.resize(packed_len_a(m, k), 0);
    pack_a(a, &mut packs.a, fast);
    let dst = Disjoint::of(out, n);
    tiles(
        k.div_ceil(2),
        m,
        &packs.a,
        (0, n),
        &b.data,
        dst,
        accumulate,
        fast,
    );
}

/// One tile on the fast kernel when `fast`, else the portable one.
///
/// # Safety
/// As [`tile_portable`]; `fast` only where [`available`].
unsafe fn run_tile(fast: bool, kp: usize, ap: &[u32], bp: &[u32], out: TileOut) {
    #[cfg(target_arch = "x86_64")]
    if fast {
        // SAFETY: the CPU has AVX512-BF16 (`fast`); the caller's promise on `out`.
        return unsafe { avx512::tile(kp, ap, bp, out) };
    }
    let _ = fast;
    // SAFETY: the caller's promise on `out`.
    unsafe { tile_portable(kp, ap, bp, out) }
}
