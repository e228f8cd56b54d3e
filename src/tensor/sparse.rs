//! Products whose left operand is mostly exact zeros. MNIST's pixels are 81% zeros (150
//! of 784 are ink), so the first layer's forward product `y = x W` and its weight
//! gradient `dW = xᵀ dy` need only the nonzero entries of `x`. With `W: (in, out)`
//! (how `Dense` stores it) each nonzero `x[r, k]` becomes one row update:
//!
//! ```text
//!   y[r, :]  += x[r, k] · W[k, :]        (forward)
//!   dW[k, :] += x[r, k] · dy[r, :]       (weight gradient)
//! ```
//!
//! Each is computed one 64-column panel at a time (128 in the forward, with AVX-512)
//! with the panel's sums in registers (see `forward_block` and `weight_grad_rows`).
//! On a training batch of 100 MNIST images this is a fifth of the dense products'
//! arithmetic, done at a third to a half of `gemm`'s speed (no fused multiply-adds,
//! one pass per nonzero): about 60-70% of the dense products' time, gathering the
//! nonzeros included (BENCHMARKS.md; `examples/sparse_first_layer.rs` and
//! `examples/sparse_hidden.rs` compare them by density).
//!
//! Rounding is fixed: `y[r, j]` adds `x[r, k] · W[k, j]` over `k` ascending, starting
//! from 0, and adds that sum to `y` (in the last `n % 64` columns it adds straight into
//! `y`); `dW[k, j]` adds `x[r, k] · dy[r, j]` over `r` ascending from 0. This order
//! holds however the work is split over threads, so results do not depend on the
//! thread count (a test pins the order). They differ from the dense products' only in rounding.
//!
//! In evaluation (with AVX-512), each dense layer's input is listed by pairs of like
//! rows (`Nonzeros::gather_pairs`): the columns where either row is nonzero, with both
//! rows' values, so that the forward reads each row of `W` once for two rows of `y`.
//! A row's missing entries are zeros in its pair's list, and adding their zero
//! products leaves every sum's bits as they were. Without pairs, a layer followed by a
//! ReLU and another dense layer lists its output's nonzero entries as it stores each
//! row (`sparse_affine_relu_listing`), and the next layer reads them from that list
//! instead of gathering them from the output (`layers::Handoff`): the same entries in
//! the same order, so the same bits.

use super::Matrix;
use super::matmul::{ProductTimer, SendPtr, fork_blocks, threads};
use crate::simd::{simd_fn, simd_fn_wide};
use std::sync::atomic::{AtomicU8, Ordering};

/// The largest share of nonzero entries at which `Dense` uses these products instead
/// of the dense ones. Measured on two threads (BENCHMARKS.md): at MNIST's 19% they
/// take 626 µs against 869 for 784 -> 512, gathering included; the two meet near 35%
/// (Fashion-MNIST thinned to 37% nonzero: 1304 against 1283 µs), and at 52% sparse
/// takes 1451 against 853.
pub const MAX_DENSITY: f32 = 0.3;

/// A process-wide switch, on unless the environment variable `var` says `off` (read
/// once), which benchmarks and tests may also set.
struct Switch {
    /// 0 = not yet read, 1 = on, 2 = off.
    state: AtomicU8,
    var: &'static str,
}

impl Switch {
    const fn new(var: &'static str) -> Self {
        Switch {
            state: AtomicU8::new(0),
            var,
        }
    }

    fn get(&self) -> bool {
        match self.state.load(Ordering::Relaxed) {
            1 => true,
            2 => false,
            _ => {
                let on = std::env::var(self.var).as_deref() != Ok("off");
                self.set(on);
                on
            }
        }
    }

    fn set(&self, on: bool) {
        self.state.store(if on { 1 } else { 2 }, Ordering::Relaxed);
    }
}

static SPARSE: Switch = Switch::new("NNLAB_SPARSE");
static PAIRS: Switch = Switch::new("NNLAB_PAIRS");

/// Whether `Dense` may use the sparse products (default yes; `NNLAB_SPARSE=off` in
/// the environment or [`set_sparse`] turns them off, for benchmarks and tests).
pub fn sparse_enabled() -> bool {
    SPARSE.get()
}

/// Turns the sparse products on or off for this process.
pub fn set_sparse(on: bool) {
    SPARSE.set(on)
}

/// Whether evaluation lists each dense layer's input by pairs of rows
/// ([`Nonzeros::gather_pairs`]; default yes; `NNLAB_PAIRS=off` in the environment or
/// [`set_pairing`] turns it off, for benchmarks and tests). The results are the same
/// either way.
pub fn pairing_enabled() -> bool {
    PAIRS.get()
}

/// Turns the pairing of rows on or off for this process.
pub fn set_pairing(on: bool) {
    PAIRS.set(on)
}

/// Whether [`Nonzeros::gather_pairs`] pairs rows: [`pairing_enabled`] and the forward
/// can sum pairs (AVX-512); otherwise it lists them one by one, as `gather_rows`.
pub fn pairs_used() -> bool {
    crate::simd::level() == crate::simd::Level::Avx512 && pairing_enabled()
}

/// The nonzero entries of a `(rows, cols)` matrix, listed twice: by row (columns
/// ascending; row `r`'s are `by_row_col[i]`, `by_row_val[i]` for `i` in
/// `row_start[r]..row_start[r + 1]`) for the forward product, and by column (rows
/// ascending; column `k`'s are `row[i]`, `val[i]` for `i` in `start[k]..start[k + 1]`)
/// for the weight gradient. (Or, for evaluation, by row as a forward listed them, or
/// by pairs of rows: `parts`, `pairs`.) Its buffers are reused, so gathering a batch of
/// the same size again does not allocate.
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
    /// Whether the by-column lists were built too (`gather`, not `gather_rows`).
    columns: bool,
    /// The weight gradient's per-piece copies of a `dy` panel (`weight_grad_rows`).
    panels: Vec<Matrix>,
    /// The entries as a forward listed them while storing its output
    /// (`sparse_affine_relu_listing`), used instead of the by-row lists when `listed > 0`:
    /// one part per block of columns, each holding its block's entries of each row in
    /// a slot of that row's own. Row `r`'s entries are part 0's, then part 1's, and so
    /// on: columns ascending, as the by-row lists hold them.
    parts: Vec<Part>,
    /// How many of `parts` hold the entries (0: the by-row lists do).
    listed: usize,
    /// The entries as `gather_pairs` lists them, by pairs of rows, used instead of the
    /// by-row lists when `pairs.on`.
    pairs: Pairs,
}

/// Whether listing a layer's matrices by pairs of rows (`Nonzeros::gather_pairs`) has
/// paid lately, kept by the layer that lists them: a guard for nets whose rows pair
/// badly (unrelated rows 15% nonzero pair at about 185%). After a matrix whose
/// pairs' columns outnumber `PAIRS_PAY` percent of half their rows' nonzeros, the next
/// `PAIRS_REST` are listed one row at a time, then pairs are tried again. Either way
/// the results are the same.
#[derive(Clone, Copy, Debug, Default)]
pub struct PairChoice {
    rest: u32,
}

/// The most a pair's columns may outnumber half its rows' nonzeros, in percent, for
/// pairs to be kept (`PairChoice`). A guard, not a tuned figure: the kernel alone costs
/// about 1.3 times one row's nonzero per pair's column (BENCHMARKS.md), so pairs near
/// 156% would only break even, but the trained dropout net's first hidden layer, paired
/// at about 156%, still paid in the whole evaluation: always pairing won 17 of 20 and
/// 16 of 20 rounds against resting from pairs above 145% (a probe, alternating in one
/// process; best 0.0500 against 0.0523 s). Its other layers pair at 115-140%.
const PAIRS_PAY: usize = 170;

/// How many matrices `PairChoice` lists one row at a time after pairs did not pay.
const PAIRS_REST: u32 = 16;

impl PairChoice {
    /// Whether to list the next matrix by pairs.
    pub fn pairs(&mut self) -> bool {
        if !pairs_used() {
            return false;
        }
        if self.rest > 0 {
            self.rest -= 1;
            return false;
        }
        true
    }

    /// After `e` was listed: if by pairs and they did not pay, rest from them.
    pub fn judge(&mut self, e: &Nonzeros) {
        if !e.pairs_paid() {
            self.rest = PAIRS_REST;
        }
    }
}

/// A matrix's rows in pairs of like rows, each pair's entries listed once for both
/// (`Nonzeros::gather_pairs`): the columns where either row is nonzero, with each
/// row's values there, zero where that row has none.
#[derive(Clone, Debug, Default)]
struct Pairs {
    /// Whether these hold the entries.
    on: bool,
    /// (pairs,): each pair's rows; with an odd number of rows the last is paired with
    /// itself.
    rows: Vec<[u32; 2]>,
    /// (rows,): row `r` is side `of[r] & 1` of pair `of[r] >> 1`.
    of: Vec<u32>,
    /// Pair `i`'s columns are `col[i * width ..][.. len[i]]`, its rows' values
    /// `val[side][i * width ..][.. len[i]]` (`width`: the matrix's columns and 16 more,
    /// room for every one and for `list_pair_avx512`'s whole-register stores).
    width: usize,
    /// (pairs,)
    len: Vec<u32>,
    /// (pairs * width,)
    col: Vec<u32>,
    val: [Vec<f32>; 2],
    /// (rows,): each row's signature (high half) and row number, sorted to pair them.
    keys: Vec<u64>,
    /// How many nonzero entries the rows have (their own, not the pairs' columns).
    nonzeros: usize,
}

impl Pairs {
    /// Pair `i`'s entries: its columns, and each of its rows' values there.
    #[inline(always)]
    fn run(&self, i: usize) -> (&[u32], [&[f32]; 2]) {
        let (a, len) = (i * self.width, self.len[i] as usize);
        let vals = [&self.val[0][a..a + len], &self.val[1][a..a + len]];
        (&self.col[a..a + len], vals)
    }
}

/// One block of columns' entries, each row's in a slot of its own (see
/// `Nonzeros::parts`), so that rows can be listed in any order, by any thread.
#[derive(Clone, Debug, Default)]
struct Part {
    /// The block's columns: row `r`'s slot is `col[r * width ..][.. width]` (room for
    /// every entry), its entries the first `len[r]`.
    width: usize,
    /// (rows,)
    len: Vec<u32>,
    /// (rows * width,)
    col: Vec<u32>,
    val: Vec<f32>,
}

impl Part {
    /// Where a forward writes this part's rows (see `list_row`).
    fn slots(&mut self, rows: usize) -> Slots {
        assert!(self.len.len() >= rows && self.col.len().min(self.val.len()) >= rows * self.width);
        Slots {
            rows,
            width: self.width,
            len: SendPtr(self.len.as_mut_ptr()),
            col: SendPtr(self.col.as_mut_ptr()),
            val: SendPtr(self.val.as_mut_ptr()),
        }
    }

    /// Row `r`'s entries.
    #[inline(always)]
    fn row(&self, r: usize) -> (&[u32], &[f32]) {
        let (a, len) = (r * self.width, self.len[r] as usize);
        (&self.col[a..a + len], &self.val[a..a + len])
    }
}

/// A `Part`'s buffers, for the threads that list its rows (each row by one thread).
#[derive(Clone, Copy)]
struct Slots {
    rows: usize,
    width: usize,
    len: SendPtr<u32>,
    col: SendPtr<u32>,
    val: SendPtr<f32>,
}

/// The most parts a listing forward cuts its output into (its thread count, capped:
/// each row's entries are read as at most this many runs).
const MAX_PARTS: usize = 8;

/// A row's entries as runs of `(columns, values)`, columns ascending through the
/// runs: one run from the by-row lists, or one per part from a listing forward.
#[derive(Clone, Copy)]
struct Runs<'a> {
    len: usize,
    runs: [(&'a [u32], &'a [f32]); MAX_PARTS],
}

impl<'a> Runs<'a> {
    fn one(run: (&'a [u32], &'a [f32])) -> Self {
        let mut runs = [(&[][..], &[][..]); MAX_PARTS];
        runs[0] = run;
        Runs { len: 1, runs }
    }

    fn as_slice(&self) -> &[(&'a [u32], &'a [f32])] {
        &self.runs[..self.len]
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

impl Nonzeros {
    /// Gathers the nonzero entries of `x` if at most `max_density` of its entries are
    /// nonzero, and returns whether it did. A counting sort, its rows cut into one
    /// piece per thread: each piece counts its nonzeros per column; then each lists
    /// its rows' entries by row and copies them to their places in the column lists
    /// (a column holds piece 0's entries, then piece 1's, ..., so rows stay ascending).
    pub fn gather(&mut self, x: &Matrix, max_density: f32) -> bool {
        self.gather_in_pieces(x, max_density, threads(), true)
    }

    /// `gather` without the by-column lists, which only the weight gradient reads: for
    /// a forward pass with no backward pass after it (evaluation), it skips copying
    /// every entry to its column's list.
    pub fn gather_rows(&mut self, x: &Matrix, max_density: f32) -> bool {
        self.gather_in_pieces(x, max_density, threads(), false)
    }

    /// `gather` with the rows cut into `pieces` pieces (fewer if a piece would have
    /// under 16 rows), the by-column lists built only if `columns`.
    fn gather_in_pieces(
        &mut self,
        x: &Matrix,
        max_density: f32,
        pieces: usize,
        columns: bool,
    ) -> bool {
        let (n, d) = (x.rows, x.cols);
        let pieces = self.count_by_piece(x, pieces, 1);
        let per = self.per;
        // Each piece's start in the by-row lists; the last is the number of nonzeros.
        room(&mut self.piece_start, pieces + 1);
        self.piece_start.clear();
        self.piece_start.push(0);
        for p in 0..pieces {
            let in_piece: u32 = self.cursor[p * d..(p + 1) * d].iter().sum();
            let last = *self.piece_start.last().unwrap();
            self.piece_start.push(last + in_piece);
        }
        let nnz = *self.piece_start.last().unwrap() as usize;
        // Room for as many entries as any accepted matrix of this shape can have, so a
        // later batch that is sparse when this one was not does not allocate.
        let most = most_entries(max_density, n, d);
        room(&mut self.row, most);
        room(&mut self.by_row_col, most);
        room(&mut self.val, most);
        room(&mut self.by_row_val, most);
        room(&mut self.start, d + 1);
        room(&mut self.row_start, n + 1);
        if columns {
            // and the weight gradient's `dy` panels, one per piece it may be cut into
            let most_pieces = threads().max(super::max_threads()).max(1);
            if self.panels.len() < most_pieces {
                self.panels.resize_with(most_pieces, || Matrix::zeros(0, 0));
            }
            for p in &mut self.panels {
                room(&mut p.data, n * PANEL);
            }
        }
        if nnz > most {
            return false;
        }
        self.start.clear();
        self.start.push(0);
        if columns {
            // Column starts, and each piece's first slot in each column (its cursors).
            for k in 0..d {
                let mut at = *self.start.last().unwrap();
                for p in 0..pieces {
                    let c = &mut self.cursor[p * d + k];
                    (at, *c) = (at + *c, at);
                }
                self.start.push(at);
            }
            self.row.resize(nnz, 0);
            self.val.resize(nnz, 0.0);
        }
        self.by_row_col.resize(nnz, 0);
        self.by_row_val.resize(nnz, 0.0);
        self.row_start.resize(n + 1, 0);
        self.row_start[n] = nnz as u32;
        let out = Lists {
            cursor: SendPtr(self.cursor.as_mut_ptr()),
            row: SendPtr(self.row.as_mut_ptr()),
            val: SendPtr(self.val.as_mut_ptr()),
            row_start: SendPtr(self.row_start.as_mut_ptr()),
            by_row_col: SendPtr(self.by_row_col.as_mut_ptr()),
            by_row_val: SendPtr(self.by_row_val.as_mut_ptr()),
        };
        let piece_start = &self.piece_start;
        fork_blocks(0, n, per, &|r0, nb| {
            let (p, out) = (r0 / per, out);
            // SAFETY: piece p writes its own cursors, its rows' row_start, its range
            // of the by-row lists, and the column slots its cursors hand out, which
            // the counts made disjoint from every other piece's.
            unsafe { list_piece(x, r0, nb, p, piece_start[p] as usize, out, columns) }
        });
        self.columns = columns;
        true
    }

    /// Takes `x`'s shape and counts the nonzeros per column of every `step`th row (row
    /// numbers a multiple of `step`), in `pieces` pieces of rows (fewer if a piece
    /// would have under 16 rows): piece `p`'s counts are `cursor[p * cols ..][..
    /// cols]`. Forgets any earlier lists. Returns the number of pieces (of `per` rows).
    fn count_by_piece(&mut self, x: &Matrix, pieces: usize, step: usize) -> usize {
        let (n, d) = (x.rows, x.cols);
        (self.rows, self.cols) = (n, d);
        self.columns = false;
        self.listed = 0;
        self.pairs.on = false;
        self.per = n.div_ceil(pieces.clamp(1, n.div_ceil(16).max(1))).max(1);
        let pieces = n.div_ceil(self.per);
        self.cursor.clear();
        self.cursor.resize(pieces * d, 0);
        let (counts, per) = (SendPtr(self.cursor.as_mut_ptr()), self.per);
        fork_blocks(0, n, per, &|r0, nb| {
            // SAFETY: piece r0 / per owns counts[(r0 / per) * d ..][.. d].
            let c = unsafe { std::slice::from_raw_parts_mut(counts.ptr().add(r0 / per * d), d) };
            if step == 1 {
                return count_nonzeros(x, r0, nb, c);
            }
            for r in (r0.next_multiple_of(step)..r0 + nb).step_by(step) {
                count_nonzeros(x, r, 1, c);
            }
        });
        pieces
    }

    /// `gather_rows` by pairs of like rows, for evaluation (each dense layer's input):
    /// each pair's entries listed once, at the columns where either row is nonzero,
    /// with both rows' values (zero where a row has none). The forward then sums a
    /// pair's two rows together, reading each row of `w` once for both
    /// (`forward_pairs`). Adding a zero product leaves a sum's bits as they were (see
    /// `sum_pair_panels` and `sum_tail`), so the results are those of `gather_rows`, bit
    /// for bit.
    ///
    /// It pays when a pair's columns are few against its rows' nonzeros: each of the
    /// pair's columns costs about 1.3 times one row's nonzero. Rows are paired by a
    /// signature: whether each is nonzero in the `SIGNATURE` columns that are nonzero
    /// in nearest half the rows, sorted. On MNIST's test images in chunks of 256 a
    /// pair's columns number 1.37 times a row's nonzeros (neighbouring rows: 1.50);
    /// on the trained dropout net's hidden layers 1.56, 1.40 and 1.21, the deeper
    /// layers' rows more alike (a probe in numpy; BENCHMARKS.md).
    ///
    /// Only where [`pairs_used`]; else this is `gather_rows`.
    pub fn gather_pairs(&mut self, x: &Matrix, max_density: f32) -> bool {
        if !pairs_used() || x.rows < 2 {
            return self.gather_rows(x, max_density);
        }
        let (n, d) = (x.rows, x.cols);
        // nonzeros per column in every `SAMPLE`th row: enough to choose the signature's
        // columns
        let pieces = self.count_by_piece(x, threads(), SAMPLE);
        let sampled = n.div_ceil(SAMPLE);
        let seen: usize = self.cursor.iter().map(|&c| c as usize).sum();
        if seen * n > most_entries(max_density, n, d) * sampled {
            // likely too dense: let `gather_rows` count every entry and decide
            return self.gather_rows(x, max_density);
        }
        let (count, width) = (n.div_ceil(2), d + 16);
        let p = &mut self.pairs;
        // room for any batch of this shape, so later ones do not allocate
        room(&mut p.rows, count);
        room(&mut p.of, n);
        room(&mut p.len, count);
        room(&mut p.keys, n);
        room(&mut p.col, count * width);
        for v in &mut p.val {
            room(v, count * width);
        }
        // the signature's columns: nonzero in nearest half the sampled rows
        let mut picked = [(usize::MAX, 0usize); SIGNATURE];
        for k in 0..d {
            let f: usize = (0..pieces).map(|q| self.cursor[q * d + k] as usize).sum();
            let miss = (2 * f).abs_diff(sampled);
            if miss < picked[SIGNATURE - 1].0 {
                let mut i = SIGNATURE - 1;
                while i > 0 && picked[i - 1].0 > miss {
                    picked[i] = picked[i - 1];
                    i -= 1;
                }
                picked[i] = (miss, k);
            }
        }
        // each row's key, by the piece that counted it (its rows are in that core's
        // cache; on one thread this took 2.5 ms of a 60 ms evaluation)
        p.keys.clear();
        p.keys.resize(n, 0);
        let keys = SendPtr(p.keys.as_mut_ptr());
        fork_blocks(0, n, self.per, &|r0, nb| {
            // SAFETY: this piece alone writes keys r0 .. r0 + nb (< n).
            let keys = unsafe { std::slice::from_raw_parts_mut(keys.ptr().add(r0), nb) };
            for (r, key) in (r0..).zip(keys) {
                let row = x.row(r);
                let sig = picked
                    .iter()
                    .enumerate()
                    .filter(|&(_, &(miss, k))| miss != usize::MAX && row[k] != 0.0)
                    .fold(0u64, |s, (i, _)| s | 1 << i);
                *key = sig << 32 | r as u64;
            }
        });
        p.keys.sort_unstable();
        p.rows.clear();
        p.rows.extend(p.keys.chunks(2).map(|c| {
            let a = c[0] as u32;
            [a, c.get(1).map_or(a, |&b| b as u32)]
        }));
        p.of.clear();
        p.of.resize(n, 0);
        for (i, &[a, b]) in p.rows.iter().enumerate() {
            p.of[b as usize] = 2 * i as u32 + 1;
            p.of[a as usize] = 2 * i as u32;
        }
        p.width = width;
        p.len.clear();
        p.len.resize(count, 0);
        if p.col.len() < count * width {
            // (never shrunk: a short last batch would have the next one refill them)
            p.col.resize(count * width, 0);
            for v in &mut p.val {
                v.resize(count * width, 0.0);
            }
        }
        let (len, col) = (SendPtr(p.len.as_mut_ptr()), SendPtr(p.col.as_mut_ptr()));
        let [v0, v1] = &mut p.val;
        let val = [SendPtr(v0.as_mut_ptr()), SendPtr(v1.as_mut_ptr())];
        let rows = &p.rows;
        // the rows' own nonzeros, counted as they are listed
        let nonzeros = std::sync::atomic::AtomicUsize::new(0);
        fork_blocks(0, count, count.div_ceil(threads().max(1)), &|i0, nb| {
            let mut own = 0;
            for (i, pair) in rows.iter().enumerate().skip(i0).take(nb) {
                let [a, b] = pair.map(|r| x.row(r as usize));
                // SAFETY: pair i's slot, written by this block alone, has room for
                // every column and 16 more; `pairs_used()` found the level at
                // AVX-512, so the CPU has AVX-512F and POPCNT (`level()` never exceeds
                // what it has).
                unsafe {
                    let at = i * width;
                    let (q, both) = list_pair_avx512(
                        a,
                        b,
                        col.ptr().add(at),
                        [val[0].ptr().add(at), val[1].ptr().add(at)],
                    );
                    *len.ptr().add(i) = q as u32;
                    // (the odd row out is paired with itself: its own are the pair's)
                    own += if pair[0] == pair[1] { q } else { both };
                }
            }
            nonzeros.fetch_add(own, Ordering::Relaxed);
        });
        p.nonzeros = nonzeros.into_inner();
        p.on = p.nonzeros <= most_entries(max_density, n, d);
        p.on
    }

    /// Whether the entries are listed by pairs whose columns number at most
    /// `PAIRS_PAY` percent of half their rows' nonzeros (true if not by pairs).
    pub fn pairs_paid(&self) -> bool {
        let p = &self.pairs;
        let columns: usize = p.len.iter().map(|&l| l as usize).sum();
        !p.on || 2 * columns * 100 <= PAIRS_PAY * p.nonzeros
    }

    /// Whether the by-column lists, which the weight gradient reads, were built
    /// (`gather`; `gather_rows` skips them).
    pub fn has_columns(&self) -> bool {
        self.columns
    }

    /// How many nonzero entries were gathered (or listed).
    pub fn nonzeros(&self) -> usize {
        if self.pairs.on {
            return self.pairs.nonzeros;
        }
        if self.listed == 0 {
            return self.by_row_col.len();
        }
        let rows = self.rows;
        self.parts[..self.listed]
            .iter()
            .map(|p| p.len[..rows].iter().map(|&l| l as usize).sum::<usize>())
            .sum()
    }

    /// Whether at most `max_density` of the entries are nonzero, the test `gather` applies.
    pub fn within(&self, max_density: f32) -> bool {
        self.nonzeros() <= most_entries(max_density, self.rows, self.cols)
    }

    /// Row `r`'s entries as runs of `(columns, values)`.
    #[inline(always)]
    fn row(&self, r: usize) -> Runs<'_> {
        if self.pairs.on {
            // its pair's columns, with its own values (zeros where it has none)
            let (i, side) = (self.pairs.of[r] as usize / 2, self.pairs.of[r] as usize % 2);
            let (cols, vals) = self.pairs.run(i);
            return Runs::one((cols, vals[side]));
        }
        if self.listed == 0 {
            let (a, b) = (self.row_start[r] as usize, self.row_start[r + 1] as usize);
            return Runs::one((&self.by_row_col[a..b], &self.by_row_val[a..b]));
        }
        let mut runs = Runs::one((&[], &[]));
        for (run, p) in runs.runs.iter_mut().zip(&self.parts[..self.listed]) {
            *run = p.row(r);
        }
        runs.len = self.listed;
        runs
    }

    /// Column `k`'s entries as `(rows, values)` (built by `gather`, not `gather_rows`).
    #[inline]
    fn column(&self, k: usize) -> (&[u32], &[f32]) {
        let (a, b) = (self.start[k] as usize, self.start[k + 1] as usize);
        (&self.row[a..b], &self.val[a..b])
    }
}

/// The buffers `list_piece` writes.
#[derive(Clone, Copy)]
struct Lists {
    cursor: SendPtr<u32>,
    row: SendPtr<u32>,
    val: SendPtr<f32>,
    row_start: SendPtr<u32>,
    by_row_col: SendPtr<u32>,
    by_row_val: SendPtr<f32>,
}

simd_fn! {
    /// `counts[k] += 1` for each nonzero `x[r, k]`, `r` in `r0 .. r0 + nb`.
    fn count_nonzeros(x: &Matrix, r0: usize, nb: usize, counts: &mut [u32]) {
        for r in r0..r0 + nb {
            for (c, &v) in counts.iter_mut().zip(x.row(r)) {
                *c += (v != 0.0) as u32;
            }
        }
    }
}

/// Lists the nonzeros of rows `r0 .. r0 + nb` (piece `p`) by row from `q0` on, then,
/// if `columns`, copies each to the slot its column's cursor gives.
///
/// # Safety
/// The buffers must be sized as `gather` sizes them and no other thread may write
/// the parts this piece writes.
unsafe fn list_piece(
    x: &Matrix,
    r0: usize,
    nb: usize,
    p: usize,
    q0: usize,
    out: Lists,
    columns: bool,
) {
    let d = x.cols;
    let mut q = q0;
    for r in r0..r0 + nb {
        unsafe {
            *out.row_start.0.add(r) = q as u32;
            // the counts left room for each of the row's nonzeros from q on
            q += list_nonzeros(
                x.row(r),
                0,
                out.by_row_col.0.add(q),
                out.by_row_val.0.add(q),
            );
        }
    }
    if !columns {
        return;
    }
    let cursor = unsafe { std::slice::from_raw_parts_mut(out.cursor.0.add(p * d), d) };
    for r in r0..r0 + nb {
        // the row's end: the next row's start, or this piece's end for its last row
        // (the next row's start belongs to another piece, being written meanwhile)
        let a = unsafe { *out.row_start.0.add(r) as usize };
        let b = if r + 1 == r0 + nb {
            q
        } else {
            unsafe { *out.row_start.0.add(r + 1) as usize }
        };
        for i in a..b {
            unsafe {
                let (k, v) = (*out.by_row_col.0.add(i) as usize, *out.by_row_val.0.add(i));
                let slot = cursor[k] as usize;
                *out.row.0.add(slot) = r as u32;
                *out.val.0.add(slot) = v;
                cursor[k] += 1;
            }
        }
    }
}

/// Writes the nonzero entries of `v` (NaN counts as nonzero), columns ascending
/// from `first`, at `col` and `val`; returns how many.
///
/// # Safety
/// `col` and `val` must have room for as many entries as `v` has nonzeros.
#[inline(always)]
unsafe fn list_nonzeros(v: &[f32], first: usize, col: *mut u32, val: *mut f32) -> usize {
    #[cfg(target_arch = "x86_64")]
    if crate::simd::level() == crate::simd::Level::Avx512 {
        // SAFETY: `level()` never exceeds what the CPU has; the caller gives the room.
        return unsafe { list_nonzeros_avx512(v, first, col, val) };
    }
    let mut q = 0;
    for (c, chunk) in v.chunks(32).enumerate() {
        let mut mask = nonzero_mask(chunk);
        while mask != 0 {
            let j = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            // SAFETY: q counts the nonzeros so far, within the room the caller gives.
            unsafe {
                *col.add(q) = (first + c * 32 + j) as u32;
                *val.add(q) = chunk[j];
            }
            q += 1;
        }
    }
    q
}

/// `list_nonzeros` with AVX-512, 16 entries at a time with no branch per entry: a
/// compress packs the nonzero values (and, from a vector of column numbers, their
/// columns) to the front of a register, and a masked store writes just those. (Entry
/// by entry, the branches mispredict: listing a layer's output that way took about as
/// long as the gathering it replaced.)
///
/// # Safety
/// As `list_nonzeros`, on a CPU with AVX-512F and POPCNT (which `Level::Avx512`
/// requires).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,popcnt")]
unsafe fn list_nonzeros_avx512(v: &[f32], first: usize, col: *mut u32, val: *mut f32) -> usize {
    use std::arch::x86_64::*;
    let lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    let (mut q, mut c) = (0, 0);
    while c < v.len() {
        let left = v.len() - c;
        let inside: __mmask16 = if left >= 16 { !0 } else { (1 << left) - 1 };
        // SAFETY: the load reads only the lanes in `inside`, which lie in `v`; the
        // stores write the next `count` entries, within the room the caller gives.
        unsafe {
            let x = _mm512_maskz_loadu_ps(inside, v.as_ptr().add(c));
            let nz = _mm512_mask_cmp_ps_mask::<_CMP_NEQ_UQ>(inside, x, _mm512_setzero_ps());
            let count = nz.count_ones() as usize;
            let head = ((1u32 << count) - 1) as __mmask16;
            let cols = _mm512_add_epi32(lanes, _mm512_set1_epi32((first + c) as i32));
            _mm512_mask_storeu_ps(val.add(q), head, _mm512_maskz_compress_ps(nz, x));
            let packed = _mm512_maskz_compress_epi32(nz, cols);
            _mm512_mask_storeu_epi32(col.add(q).cast(), head, packed);
            q += count;
        }
        c += 16;
    }
    q
}

/// `gather_pairs` counts nonzeros per column in every `SAMPLE`th row to choose the
/// signature's columns. (On the trained dropout net's activations, in numpy, every 4th
/// row chose columns that pair as well as every row: a pair's columns 1.370, 1.555,
/// 1.397, 1.225 and 1.149 times a row's nonzeros, layer by layer, against 1.371, 1.557,
/// 1.400, 1.219 and 1.147.)
const SAMPLE: usize = 4;

/// Columns `gather_pairs` pairs rows by (at most as many as the matrix has).
const SIGNATURE: usize = 12;

/// `list_nonzeros_avx512` for a pair of rows: writes the columns where `a` or `b` is
/// nonzero (NaN counts as nonzero) ascending at `col`, and each row's values there at
/// `val[0]` (`a`'s) and `val[1]` (`b`'s); returns how many, and how many nonzeros `a`
/// and `b` have together.
///
/// Each store writes a whole register (the lanes past the entries are overwritten by
/// the next store or left past the end), which is faster than a masked store of just
/// the entries.
///
/// # Safety
/// On a CPU with AVX-512F and POPCNT (which `Level::Avx512` requires); `a` and `b`
/// have the same length, and `col` and both `val` have room for that many entries and
/// 16 more.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,popcnt")]
unsafe fn list_pair_avx512(
    a: &[f32],
    b: &[f32],
    col: *mut u32,
    val: [*mut f32; 2],
) -> (usize, usize) {
    use std::arch::x86_64::*;
    assert_eq!(a.len(), b.len());
    let lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    let (mut q, mut c, mut own) = (0, 0, 0);
    while c < a.len() {
        let left = a.len() - c;
        let inside: __mmask16 = if left >= 16 { !0 } else { (1 << left) - 1 };
        // SAFETY: the loads read only the lanes in `inside`, which lie in `a` and `b`;
        // the stores write 16 entries from the next, q <= c of them so far: within
        // the room the caller gives.
        unsafe {
            let x = _mm512_maskz_loadu_ps(inside, a.as_ptr().add(c));
            let y = _mm512_maskz_loadu_ps(inside, b.as_ptr().add(c));
            let zero = _mm512_setzero_ps();
            let (nx, ny) = (
                _mm512_mask_cmp_ps_mask::<_CMP_NEQ_UQ>(inside, x, zero),
                _mm512_mask_cmp_ps_mask::<_CMP_NEQ_UQ>(inside, y, zero),
            );
            own += (nx.count_ones() + ny.count_ones()) as usize;
            let nz = nx | ny;
            let cols = _mm512_add_epi32(lanes, _mm512_set1_epi32(c as i32));
            _mm512_storeu_ps(val[0].add(q), _mm512_maskz_compress_ps(nz, x));
            _mm512_storeu_ps(val[1].add(q), _mm512_maskz_compress_ps(nz, y));
            let packed = _mm512_maskz_compress_epi32(nz, cols);
            _mm512_storeu_si512(col.add(q).cast(), packed);
            q += nz.count_ones() as usize;
        }
        c += 16;
    }
    (q, own)
}

/// Bit `j` set where `chunk[j] != 0` (`chunk` at most 32 long; NaN counts as nonzero).
#[inline(always)]
fn nonzero_mask(chunk: &[f32]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if let Ok(c) = <&[f32; 32]>::try_from(chunk) {
        use std::arch::x86_64::{_mm_cmpneq_ps, _mm_loadu_ps, _mm_movemask_ps, _mm_setzero_ps};
        let mut mask = 0u32;
        for g in 0..8 {
            // SAFETY: SSE2 is part of every x86-64 CPU; 4 * g + 4 <= 32 = c.len().
            let bits = unsafe {
                let v = _mm_loadu_ps(c.as_ptr().add(4 * g));
                _mm_movemask_ps(_mm_cmpneq_ps(v, _mm_setzero_ps()))
            };
            mask |= (bits as u32) << (4 * g);
        }
        return mask;
    }
    chunk
        .iter()
        .enumerate()
        .fold(0, |m, (j, &v)| m | ((v != 0.0) as u32) << j)
}

/// `y += a · x`, elementwise (vectorised by the compiler).
#[inline(always)]
fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

/// `out += x · w`, with `x` given by its gathered entries.
///
/// Each thread owns a block of output columns and sums them 64 at a time (see
/// `forward_block`); the part of `w` it reads stays in its core's cache.
///
/// # Shapes
/// `x: (m, k)` (as `e`), `w: (k, n)`, `out: (m, n)`.
pub fn sparse_matmul_nn_acc(e: &Nonzeros, w: &Matrix, out: &mut Matrix) {
    sparse_forward(e, w, Start::Out, false, out, None);
}

/// `out = b + x · w` (every row of `out` overwritten), with `x` given by its gathered
/// entries: an affine layer's forward. The same bits as writing `b` into every row
/// and then `sparse_matmul_nn_acc`, without that pass over `out` or reading `out`
/// back (for an evaluation batch of 1,000 it is 2 MB, beyond the core's cache).
///
/// # Shapes
/// `x: (m, k)` (as `e`), `w: (k, n)`, `b: (n,)`, `out: (m, n)`.
pub fn sparse_affine(e: &Nonzeros, w: &Matrix, b: &[f32], out: &mut Matrix) {
    assert_eq!(b.len(), w.cols, "sparse_affine: bias length");
    sparse_forward(e, w, Start::Bias(b), false, out, None);
}

/// `out = max(0, b + x · w)`: `sparse_affine` followed by a ReLU, applied to the sums
/// in registers before each row is stored, which saves the activation layer's pass
/// over `out` in evaluation. The same bits as the two apart.
///
/// # Shapes
/// `x: (m, k)` (as `e`), `w: (k, n)`, `b: (n,)`, `out: (m, n)`.
pub fn sparse_affine_relu(e: &Nonzeros, w: &Matrix, b: &[f32], out: &mut Matrix) {
    assert_eq!(b.len(), w.cols, "sparse_affine_relu: bias length");
    sparse_forward(e, w, Start::Bias(b), true, out, None);
}

/// `sparse_affine_relu`, also listing the nonzero entries of `out` in `list` as each
/// row is stored (still in the core's first-level cache), so that the next layer's
/// forward can read them from `list` instead of gathering them from `out`: the same
/// entries in the same order, so the same bits. It lists when the layer's columns are
/// shared out between the threads (a hidden layer, not a 10-class output), in at most
/// `MAX_PARTS` blocks; returns whether it did (if not, `list` is left as it was).
///
/// # Shapes
/// `x: (m, k)` (as `e`), `w: (k, n)`, `b: (n,)`, `out: (m, n)`; `list` then holds
/// `(m, n)`.
pub fn sparse_affine_relu_listing(
    e: &Nonzeros,
    w: &Matrix,
    b: &[f32],
    out: &mut Matrix,
    list: &mut Nonzeros,
) -> bool {
    assert_eq!(b.len(), w.cols, "sparse_affine_relu_listing: bias length");
    sparse_forward(e, w, Start::Bias(b), true, out, Some(list))
}

/// `out = start + x · w`, then `max(0, out)` if `relu`; lists `out`'s entries in
/// `list` where it can (see `sparse_affine_relu_listing`), and returns whether it did.
///
/// The columns are cut into one block per thread, and each thread takes its block's
/// rows `CLAIM_ROWS` at a time; when they are gone it takes the rows left of the other
/// blocks. Each row's sums are the same whoever computes them; only the split of the
/// work follows the threads' speed. (With each block's rows all on its own thread, one
/// thread often waited for the other: on this project's machines one of the two
/// cores is often slower by 20-25% for seconds at a time, a probe of the pool found
/// (BENCHMARKS.md). Taking rows as they go, a trained dropout net's 10,000-image
/// evaluation won 29 of 30 rounds against fixed blocks, alternating in one process,
/// median 0.0882 against 0.0930 s in a busy minute.)
fn sparse_forward(
    e: &Nonzeros,
    w: &Matrix,
    start: Start<'_>,
    relu: bool,
    out: &mut Matrix,
    list: Option<&mut Nonzeros>,
) -> bool {
    assert_eq!(w.rows, e.cols, "sparse forward product: inner dims");
    assert_eq!(
        (out.rows, out.cols),
        (e.rows, w.cols),
        "sparse forward product: out shape"
    );
    let _timer = ProductTimer::start();
    let (m, n) = (e.rows, w.cols);
    let t = threads().max(1);
    let dst = SendPtr(out.data.as_mut_ptr());
    // both rows of each pair at once (`gather_pairs`, `forward_pairs`)
    let paired = e.pairs.on && crate::simd::level() == crate::simd::Level::Avx512;
    if n.div_ceil(PANEL) >= t {
        // each thread a block of whole panels, and the block's rows a few at a time;
        // a thread done with its own block's rows takes the others' that are left
        let per = n.div_ceil(t).div_ceil(PANEL) * PANEL;
        let blocks = n.div_ceil(per);
        let mut slots = [None; MAX_PARTS];
        let listing = relu && blocks <= MAX_PARTS && list.is_some();
        if let Some(list) = list.filter(|_| listing) {
            list.make_parts(m, n, per);
            for (s, p) in slots.iter_mut().zip(&mut list.parts[..blocks]) {
                *s = Some(p.slots(m));
            }
        }
        let claims: [Claim; MAX_CLAIMS] = Default::default();
        let stealing = blocks <= MAX_CLAIMS;
        // the units of work in a block: its rows, or pairs of rows (`gather_pairs`)
        let (m, take) = if paired {
            (e.pairs.rows.len(), CLAIM_ROWS / 2)
        } else {
            (m, CLAIM_ROWS)
        };
        let block = |b0: usize, nb: usize| {
            let run = |b: usize, units: std::ops::Range<usize>| {
                let cols = b * per..n.min((b + 1) * per);
                let list = slots.get(b).copied().flatten();
                #[cfg(target_arch = "x86_64")]
                if paired {
                    // SAFETY: the level is AVX-512, and `e.pairs.on`.
                    return unsafe { forward_pairs(e, w, start, relu, dst, units, cols, list) };
                }
                forward_block(e, w, start, relu, dst, units, cols, list)
            };
            if !stealing {
                return (b0..b0 + nb).for_each(|b| run(b, 0..m));
            }
            #[cfg(test)]
            let stalled = b0 == 0 && tests::STALL.get();
            #[cfg(test)]
            if stalled {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            for b in (b0..blocks).chain(0..b0) {
                loop {
                    let r0 = claims[b].0.fetch_add(take, Ordering::Relaxed);
                    #[cfg(test)]
                    if stalled && ((b == b0 && r0 > 0) || (b != b0 && r0 < m)) {
                        // another thread took rows of this block, or this one another's
                        tests::TAKEN.set(true);
                    }
                    if r0 >= m {
                        break;
                    }
                    run(b, r0..m.min(r0 + take));
                }
            }
        };
        fork_blocks(0, blocks, 1, &block);
        listing
    } else {
        // too few columns to share out (a 10-class output layer): each thread a block
        // of rows (or of pairs), every column
        #[cfg(target_arch = "x86_64")]
        if paired {
            let pairs = e.pairs.rows.len();
            let block = |i0: usize, nb: usize| {
                // SAFETY: the level is AVX-512, and `e.pairs.on`.
                unsafe { forward_pairs(e, w, start, relu, dst, i0..i0 + nb, 0..n, None) }
            };
            fork_blocks(0, pairs, pairs.div_ceil(t).max(8), &block);
            return false;
        }
        let per = m.div_ceil(t).max(16);
        let block =
            |r0: usize, rb: usize| forward_block(e, w, start, relu, dst, r0..r0 + rb, 0..n, None);
        fork_blocks(0, m, per, &block);
        false
    }
}

/// Rows a thread takes at a time from a block of columns in `sparse_forward`.
const CLAIM_ROWS: usize = 8;

/// The most blocks of columns whose rows `sparse_forward` shares out as they go (more
/// blocks, more threads than that: each block's rows on its own thread).
const MAX_CLAIMS: usize = 16;

/// The next row of a block of columns to take, on a cache line of its own (each is
/// taken from mostly by one thread).
#[derive(Default)]
#[repr(align(128))]
struct Claim(std::sync::atomic::AtomicUsize);

impl Nonzeros {
    /// Makes this hold the (to be listed) entries of an `(m, n)` matrix in parts of
    /// `per` columns, each with a slot a row for all of its block's entries.
    fn make_parts(&mut self, m: usize, n: usize, per: usize) {
        let blocks = n.div_ceil(per);
        (self.rows, self.cols, self.columns) = (m, n, false);
        if self.parts.len() < blocks {
            self.parts.resize_with(blocks, Part::default);
        }
        for (b, p) in self.parts[..blocks].iter_mut().enumerate() {
            p.width = per.min(n - b * per);
            p.len.resize(m, 0);
            let room = m * p.width; // every entry of the block
            if p.col.len() < room {
                p.col.resize(room, 0);
                p.val.resize(room, 0.0);
            }
        }
        self.listed = blocks;
        self.pairs.on = false;
    }
}

/// Lists the nonzero entries of `out` (row `r`'s columns `j0 ..` of a block) in the
/// row's slot of `slots`.
///
/// # Safety
/// No other thread may touch row `r`'s slot meanwhile.
#[inline(always)]
unsafe fn list_row(slots: Slots, r: usize, out: &[f32], j0: usize) {
    assert!(r < slots.rows && out.len() <= slots.width);
    let at = r * slots.width;
    // SAFETY: `Part::slots` checked the buffers hold `rows` slots of `width` entries;
    // the row's slot has room for every column of `out`.
    unsafe {
        let count = list_nonzeros(out, j0, slots.col.0.add(at), slots.val.0.add(at));
        *slots.len.0.add(r) = count as u32;
    }
}

/// What a sum of scaled rows starts from: zero, what `out` holds, or a bias row
/// (columns `j0 ..` of it for the columns `j0 ..`).
#[derive(Clone, Copy)]
enum Start<'a> {
    Zero,
    Out,
    Bias(&'a [f32]),
}

simd_fn_wide! {
    /// Columns `cols` of rows `rows` of `out = start + x · w` (then `max(0, out)` if
    /// `relu`), `out` given by `dst`.
    ///
    /// Row by row, each panel of the row's sums (128 columns with AVX-512, else 64)
    /// held in registers over the row's nonzeros (pixels ascending, from 0), then
    /// added to `start` and stored.
    ///
    /// (An earlier version kept each panel's sums for the whole batch in a 25 kB
    /// buffer in the first-level cache, with the pixels outermost, so that each panel
    /// of `w` was read once per batch. Measured against this in one process,
    /// alternating, on the same inputs, it was 15-25% slower: every update loads and
    /// stores its sums, where here only `w` is loaded; `examples/sparse_hidden.rs`,
    /// BENCHMARKS.md. Both give the same bits.)
    #[allow(clippy::too_many_arguments)]
    fn forward_block(
        e: &Nonzeros,
        w: &Matrix,
        start: Start<'_>,
        relu: bool,
        dst: SendPtr,
        rows: std::ops::Range<usize>,
        cols: std::ops::Range<usize>,
        list: Option<Slots>,
    ) {
        for r in rows {
            forward_row(e, w, start, relu, dst, r, cols.clone(), list);
        }
    }
}

/// Row `r` of `forward_block`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn forward_row(
    e: &Nonzeros,
    w: &Matrix,
    start: Start<'_>,
    relu: bool,
    dst: SendPtr,
    r: usize,
    cols: std::ops::Range<usize>,
    list: Option<Slots>,
) {
    let (n, j0, nb) = (w.cols, cols.start, cols.len());
    assert!(r < e.rows && cols.end <= n);
    // SAFETY: r < out.rows and `j0 .. j0 + nb` lies inside `out`'s columns (out is
    // (e.rows, w.cols), `sparse_forward` checked); blocks on other threads write other
    // columns or other rows.
    let out = unsafe { std::slice::from_raw_parts_mut(dst.0.add(r * n + j0), nb) };
    let runs = e.row(r);
    // 128 columns in eight 512-bit registers, 64 in eight 256-bit ones
    if crate::simd::level() == crate::simd::Level::Avx512 {
        sum_scaled_rows::<{ 2 * PANEL }, true>(runs.as_slice(), w, j0, out, start, relu);
    } else {
        sum_scaled_rows::<PANEL, true>(runs.as_slice(), w, j0, out, start, relu);
    }
    if let Some(slots) = list {
        // SAFETY: whoever claimed row r of this block (`sparse_forward`) owns that row
        // of the block's part, as it owns the block's columns of row r of `out`.
        unsafe { list_row(slots, r, out, j0) };
    }
}

/// `forward_block` for pairs `pairs` of `e`'s rows, listed by `gather_pairs`: both
/// rows of a pair summed at once, 128 columns of each in sixteen registers, from the
/// pair's entries, so that each row of `w` is read once for both. Each row's sums are
/// those of `forward_block` (see `sum_pair_panels`); its output is listed on its own.
///
/// (On one thread over a block of 256 columns of `w`, for MNIST's 10,000 test images
/// in chunks of 256, a probe kernel took 15.7 ms paired against 18.0 one row at a
/// time; the trained dropout net's third and fourth layers 0.89 and 0.77 of the time,
/// its second no faster; BENCHMARKS.md.)
///
/// # Safety
/// On a CPU with AVX-512F; `e.pairs.on`, and otherwise as `forward_block`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn forward_pairs(
    e: &Nonzeros,
    w: &Matrix,
    start: Start<'_>,
    relu: bool,
    dst: SendPtr,
    pairs: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
    list: Option<Slots>,
) {
    let (n, j0, nb) = (w.cols, cols.start, cols.len());
    let p = &e.pairs;
    assert!(p.on && cols.end <= n);
    for i in pairs {
        let [a, b] = p.rows[i].map(|r| r as usize);
        if a == b {
            // the odd row out
            forward_row(e, w, start, relu, dst, a, cols.clone(), list);
            continue;
        }
        assert!(a < e.rows && b < e.rows);
        // SAFETY: a != b are rows of `out` ((e.rows, w.cols), `sparse_forward`
        // checked), `j0 .. j0 + nb` inside its columns; whoever claimed pair i of this
        // block owns these columns of both rows.
        let (oa, ob) = unsafe {
            (
                std::slice::from_raw_parts_mut(dst.0.add(a * n + j0), nb),
                std::slice::from_raw_parts_mut(dst.0.add(b * n + j0), nb),
            )
        };
        let (ks, vals) = p.run(i);
        sum_scaled_pair(ks, vals, w, j0, [&mut *oa, &mut *ob], start, relu);
        if let Some(slots) = list {
            // SAFETY: as in `forward_row`, for both rows.
            unsafe {
                list_row(slots, a, oa, j0);
                list_row(slots, b, ob, j0);
            }
        }
    }
}

/// `sum_scaled_rows` for two rows at once, from their pair's entries: the columns
/// `ks` where either row is nonzero, each row's values (zero where it has none) in
/// `vals`. The panels sum both rows from each row of `m` as it is loaded, and so do
/// the last `len % 64` columns (`sum_tail_pair`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
fn sum_scaled_pair(
    ks: &[u32],
    vals: [&[f32]; 2],
    m: &Matrix,
    j0: usize,
    out: [&mut [f32]; 2],
    start: Start<'_>,
    relu: bool,
) {
    let [oa, ob] = out;
    let len = oa.len();
    assert!(ob.len() == len && vals.iter().all(|v| v.len() == ks.len()));
    assert!(
        j0 + len <= m.cols,
        "sum_scaled_pair: columns past the matrix"
    );
    assert!(
        within_rows(ks, m.rows),
        "sum_scaled_pair: row past the matrix"
    );
    const WIDE: usize = 2 * PANEL;
    let (wide, narrow) = (len / WIDE * WIDE, len / PANEL * PANEL);
    let (ha, ra) = oa.split_at_mut(narrow);
    let (hb, rb) = ob.split_at_mut(narrow);
    let (wa, na) = ha.split_at_mut(wide);
    let (wb, nb) = hb.split_at_mut(wide);
    sum_pair_panels::<WIDE>(ks, vals, m, j0, [wa, wb], start, relu);
    sum_pair_panels::<PANEL>(ks, vals, m, j0 + wide, [na, nb], start, relu);
    if let Start::Bias(b) = start {
        assert!(
            j0 + len <= b.len(),
            "sum_scaled_pair: bias shorter than the columns"
        );
    }
    sum_tail_pair(ks, vals, m, j0 + narrow, [&mut *ra, &mut *rb], start);
    if relu {
        for o in ra.iter_mut().chain(rb) {
            *o = o.max(0.0); // as `Activation::Relu`
        }
    }
}

/// `sum_tail_avx512` for two rows at once from their pair's entries: each 16 columns
/// summed for both rows in two masked registers from one load of each row of `m`. Each
/// row's lanes compute what `sum_tail_avx512`'s do over its own entries: its start, then
/// `+ v · x` for each, a zero `v` (an entry the row lacks) adding nothing. (A 10-class
/// output layer is all tail.)
///
/// The caller (`sum_scaled_pair`) has checked the entries' rows, the columns `j ..
/// j + out.len()`, the bias's length and the values' lengths.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
fn sum_tail_pair(
    ks: &[u32],
    vals: [&[f32]; 2],
    m: &Matrix,
    j: usize,
    out: [&mut [f32]; 2],
    start: Start<'_>,
) {
    use std::arch::x86_64::*;
    let [oa, ob] = out;
    let (n, len, base) = (m.cols, oa.len(), m.data.as_ptr());
    let mut c = 0;
    while c < len {
        let left = len - c;
        let inside: __mmask16 = if left >= 16 { !0 } else { (1 << left) - 1 };
        // SAFETY: every load and the stores touch only the lanes in `inside`, which lie
        // inside both rows of `out`, the bias and each entry's row of `m`, as the
        // caller checked.
        unsafe {
            let from = |o: &[f32]| match start {
                Start::Zero => _mm512_setzero_ps(),
                Start::Out => _mm512_maskz_loadu_ps(inside, o.as_ptr().add(c)),
                Start::Bias(b) => _mm512_maskz_loadu_ps(inside, b.as_ptr().add(j + c)),
            };
            let (mut sa, mut sb) = (from(oa), from(ob));
            for (&k, (&va, &vb)) in ks.iter().zip(vals[0].iter().zip(vals[1])) {
                let x = _mm512_maskz_loadu_ps(inside, base.add(k as usize * n + j + c));
                // as in `sum_tail_avx512`: a zero value adds nothing
                let (ka, kb) = (
                    if va != 0.0 { inside } else { 0 },
                    if vb != 0.0 { inside } else { 0 },
                );
                sa = _mm512_mask_add_ps(sa, ka, sa, _mm512_mul_ps(_mm512_set1_ps(va), x));
                sb = _mm512_mask_add_ps(sb, kb, sb, _mm512_mul_ps(_mm512_set1_ps(vb), x));
            }
            _mm512_mask_storeu_ps(oa.as_mut_ptr().add(c), inside, sa);
            _mm512_mask_storeu_ps(ob.as_mut_ptr().add(c), inside, sb);
        }
        c += 16;
    }
}

/// `sum_panels` for two rows from their pair's entries (`sum_scaled_pair`): each
/// panel's sums for both rows in registers, `x` (one load of a row of `m`) times each
/// row's value added to its sums. A row's sums start from 0 and add its products in
/// column order, with a product of 0 where it has no entry. Adding 0 (or -0) to a sum
/// that started from 0 leaves its bits: `s + 0 = s` for every `s` but -0, and a sum
/// started from +0 is never -0 (in round-to-nearest, `x + y` is -0 only when both
/// are), so each row's sums are those of `sum_panels` over its own entries. (With
/// finite `m`: a zero times an infinity would be NaN.) Written with intrinsics: from
/// arrays, as `sum_panels` is, the compiler stored some of the 16 sums to memory
/// after every entry.
///
/// The caller (`sum_scaled_pair`) has checked that every entry's row lies in `m`, the
/// columns `j0 .. j0 + out.len()` too, and the lengths.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
fn sum_pair_panels<const P: usize>(
    ks: &[u32],
    vals: [&[f32]; 2],
    m: &Matrix,
    j0: usize,
    out: [&mut [f32]; 2],
    start: Start<'_>,
    relu: bool,
) {
    use std::arch::x86_64::*;
    const { assert!(P.is_multiple_of(16) && P <= 128) };
    let n = m.cols;
    let base = m.data.as_ptr();
    let [oa, ob] = out;
    let mut j = j0;
    for (pa, pb) in oa.chunks_exact_mut(P).zip(ob.chunks_exact_mut(P)) {
        let mut sa = [_mm512_setzero_ps(); 8];
        let mut sb = [_mm512_setzero_ps(); 8];
        for (i, (&k, (&va, &vb))) in ks.iter().zip(vals[0].iter().zip(vals[1])).enumerate() {
            if let Some(&ahead) = ks.get(i + PREFETCH) {
                prefetch_row::<P>(base.wrapping_add(ahead as usize * n + j));
            }
            let (xa, xb) = (_mm512_set1_ps(va), _mm512_set1_ps(vb));
            for v in 0..P / 16 {
                // SAFETY: k < m.rows and j + P <= n (checked by the caller), so the P
                // floats from k * n + j lie in `m.data`.
                let x = unsafe { _mm512_loadu_ps(base.add(k as usize * n + j + 16 * v)) };
                sa[v] = _mm512_add_ps(sa[v], _mm512_mul_ps(xa, x));
                sb[v] = _mm512_add_ps(sb[v], _mm512_mul_ps(xb, x));
            }
        }
        let mut acc = [[0f32; P]; 2];
        for v in 0..P / 16 {
            // SAFETY: 16 * v + 16 <= P, inside each array.
            unsafe {
                _mm512_storeu_ps(acc[0].as_mut_ptr().add(16 * v), sa[v]);
                _mm512_storeu_ps(acc[1].as_mut_ptr().add(16 * v), sb[v]);
            }
        }
        store_panel(pa, &acc[0], start, j, relu);
        store_panel(pb, &acc[1], start, j, relu);
        j += P;
    }
}

/// Stores a panel's sums `acc` (columns `j ..`) into `op`: added to `start`, then
/// the ReLU if `relu`.
#[inline(always)]
fn store_panel<const P: usize>(
    op: &mut [f32],
    acc: &[f32; P],
    start: Start<'_>,
    j: usize,
    relu: bool,
) {
    // the ReLU (as `Activation::Relu`) on the sums in registers, before the store
    let end = |v: f32| if relu { v.max(0.0) } else { v };
    match start {
        Start::Zero => op.iter_mut().zip(acc).for_each(|(o, &a)| *o = end(a)),
        Start::Out => op.iter_mut().zip(acc).for_each(|(o, &a)| *o = end(*o + a)),
        Start::Bias(b) => {
            let b: &[f32; P] = b[j..j + P].try_into().unwrap();
            op.iter_mut()
                .zip(b.iter().zip(acc))
                .for_each(|(o, (&b, &a))| *o = end(b + a));
        }
    }
}

/// Columns summed in registers at once (8 AVX2 registers; the AVX-512 forward sums
/// two panels at once, in 8 AVX-512 registers).
const PANEL: usize = 64;

/// `out = start + Σ_i vals[i] · m[rows[i], j0 .. j0 + out.len()]`, the entries
/// `(rows, vals)` given as runs read one after another. Each panel of
/// `WIDE` (then 64) columns is summed in registers from 0 over all the entries (in
/// their order), then added to `start` and stored once; the last `len % 64` columns
/// start from `start` and add the entries' products to it one by one (`sum_tail`).
/// Every column gets the same sum in the same order whatever the panel width, so
/// `WIDE` does not change the bits. With `FETCH` (the forward, whose rows of `m` come
/// from the second-level cache) each entry also asks for the row `PREFETCH` entries
/// ahead; the weight gradient's panel is already in the first-level cache.
#[inline(always)]
fn sum_scaled_rows<const WIDE: usize, const FETCH: bool>(
    runs: &[(&[u32], &[f32])],
    m: &Matrix,
    j0: usize,
    out: &mut [f32],
    start: Start<'_>,
    relu: bool,
) {
    assert!(
        j0 + out.len() <= m.cols,
        "sum_scaled_rows: columns past the matrix"
    );
    assert!(
        runs.iter().all(|(rows, _)| within_rows(rows, m.rows)),
        "sum_scaled_rows: row past the matrix"
    );
    let wide = out.len() / WIDE * WIDE;
    let narrow = out.len() / PANEL * PANEL;
    let (head, rest) = out.split_at_mut(narrow);
    let (wide_part, narrow_part) = head.split_at_mut(wide);
    sum_panels::<WIDE, FETCH>(runs, m, j0, wide_part, start, relu);
    sum_panels::<PANEL, FETCH>(runs, m, j0 + wide, narrow_part, start, relu);
    sum_tail(runs, m, j0 + narrow, rest, start);
    if relu {
        for o in rest {
            *o = o.max(0.0); // as `Activation::Relu`
        }
    }
}

/// Whether every row number in `ks` is under `rows`: the check that makes the sums'
/// unchecked loads sound. As a maximum, which the compiler vectorises (16 numbers an
/// instruction); checked one by one with an early exit it took about 3% of an
/// evaluation (`perf`).
#[inline(always)]
fn within_rows(ks: &[u32], rows: usize) -> bool {
    ks.iter().copied().max().is_none_or(|k| (k as usize) < rows)
}

/// The last `len % 64` (< 64) columns of `sum_scaled_rows`, `j ..`: each column's
/// start, then every entry's product added to it in turn. Eight columns at a time in
/// registers; the last eight end at the last column, so they may repeat a few
/// columns of the eight before, which computes them again from the same start in
/// the same order, to the same bits. (A 10-class output layer is all tail; adding
/// in place in `out`, entry by entry, it took 5.6 ms of a 10,000-image evaluation.)
/// Entries of value 0 (a paired row's missing ones, `gather_pairs`) are skipped, so
/// that a start of -0 stays -0 as it would without them.
#[inline(always)]
fn sum_tail(runs: &[(&[u32], &[f32])], m: &Matrix, j: usize, out: &mut [f32], start: Start<'_>) {
    const LANES: usize = 8;
    let (n, len) = (m.cols, out.len());
    if len == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if crate::simd::level() == crate::simd::Level::Avx512 {
        if let Start::Bias(b) = start {
            assert!(
                j + len <= b.len(),
                "sum_tail: bias shorter than the columns"
            );
        }
        // SAFETY: `level()` never exceeds what the CPU has; the caller checked the
        // entries' rows and the columns, and the bias's are checked above.
        return unsafe { sum_tail_avx512(runs, m, j, out, start) };
    }
    let mut from = [0f32; PANEL];
    match start {
        Start::Zero => {}
        Start::Out => from[..len].copy_from_slice(out),
        Start::Bias(b) => from[..len].copy_from_slice(&b[j..j + len]),
    }
    if len < LANES {
        out.copy_from_slice(&from[..len]);
        for (&k, &v) in runs.iter().flat_map(|(rows, vals)| rows.iter().zip(*vals)) {
            if v == 0.0 {
                // a paired row's missing entry (`gather_pairs`) adds nothing: the
                // start may be -0, which + 0 would turn to +0
                continue;
            }
            let at = k as usize * n + j;
            axpy(out, v, &m.data[at..at + len]);
        }
        return;
    }
    let mut sums = [0f32; PANEL];
    let mut c = 0;
    while c < len {
        let c0 = c.min(len - LANES);
        let mut acc: [f32; LANES] = from[c0..c0 + LANES].try_into().unwrap();
        for (&k, &v) in runs.iter().flat_map(|(rows, vals)| rows.iter().zip(*vals)) {
            if v == 0.0 {
                continue; // as above
            }
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

/// `sum_tail` with AVX-512: 16 columns at a time in one register, the columns past
/// the end masked off, so a 10-class output layer takes one pass over a row's entries
/// instead of two overlapping passes of eight. Each lane computes what `sum_tail`'s
/// does (its start, then `+ v · x` for each entry in turn; no fused multiply-add), so
/// the same bits. (The 512 -> 10 layer of a 10,000-image evaluation took 0.8-0.9 ms
/// against 1.6-2.3 with the eight-lane loop; BENCHMARKS.md.)
///
/// # Safety
/// On a CPU with AVX-512F; every entry's row lies in `m`, the columns
/// `j .. j + out.len()` too, and in `start`'s bias if it has one.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn sum_tail_avx512(
    runs: &[(&[u32], &[f32])],
    m: &Matrix,
    j: usize,
    out: &mut [f32],
    start: Start<'_>,
) {
    use std::arch::x86_64::*;
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
                Start::Out => _mm512_maskz_loadu_ps(inside, out.as_ptr().add(c)),
                Start::Bias(b) => _mm512_maskz_loadu_ps(inside, b.as_ptr().add(j + c)),
            };
            for &(rows, vals) in runs {
                for (&k, &v) in rows.iter().zip(vals) {
                    let x = _mm512_maskz_loadu_ps(inside, base.add(k as usize * n + j + c));
                    // a zero value (a pair's row without this entry) adds nothing:
                    // the start may be -0, which + 0 would turn to +0
                    let add = if v != 0.0 { inside } else { 0 };
                    acc = _mm512_mask_add_ps(acc, add, acc, _mm512_mul_ps(_mm512_set1_ps(v), x));
                }
            }
            _mm512_mask_storeu_ps(out.as_mut_ptr().add(c), inside, acc);
        }
        c += 16;
    }
}

/// How many entries ahead `sum_panels` asks for the row it will read. Measured on one
/// thread, the forward alone on random inputs, against the same build without the
/// prefetch (a probe, not kept; BENCHMARKS.md): 784 -> 512 at 19% nonzero, 3.52-3.54
/// against 3.56-3.63 ms per 1,000 rows; 512 -> 512 at 16%, 1.89-1.92 against
/// 1.98-2.01 (2 ahead: the same within the noise; 8 ahead: slower).
const PREFETCH: usize = 4;

/// `sum_panels` asks for one cache line in every `FETCH_EVERY` of the row it will read
/// (one per 256 bytes); the core's own prefetchers bring the lines between. Asking for
/// every line cost a load slot per 64 bytes loaded: a trained dropout net's 10,000-image
/// evaluation won 25 of 40 alternating rounds against every line (best 0.0766 against
/// 0.0779 s in a busy hour; in a quiet one, medians 0.0545 against 0.0599), every
/// second line was about as fast, no prefetch as slow as every line (a probe build,
/// not kept; BENCHMARKS.md).
const FETCH_EVERY: usize = 4;

/// Asks the core to bring the `P` floats from `p` into its first-level cache, one line
/// in every `FETCH_EVERY` (a hint: no fault if `p` lies outside any buffer).
#[inline(always)]
fn prefetch_row<const P: usize>(p: *const f32) {
    #[cfg(target_arch = "x86_64")]
    for line in (0..P / 16).step_by(FETCH_EVERY) {
        // SAFETY: a prefetch reads nothing the program can see and cannot fault.
        unsafe {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(16 * line) as *const i8);
        }
    }
}

/// `sum_scaled_rows` over `out.len()` (a multiple of `P`) columns, `P` at a time.
///
/// The caller (`sum_scaled_rows`) has checked that every entry's row lies in `m` and
/// the columns `j0 .. j0 + out.len()` too.
#[inline(always)]
fn sum_panels<const P: usize, const FETCH: bool>(
    runs: &[(&[u32], &[f32])],
    m: &Matrix,
    j0: usize,
    out: &mut [f32],
    start: Start<'_>,
    relu: bool,
) {
    let n = m.cols;
    let base = m.data.as_ptr();
    let mut j = j0;
    for op in out.chunks_exact_mut(P) {
        let mut acc = [0f32; P];
        for &(rows, vals) in runs {
            for (i, (&k, &v)) in rows.iter().zip(vals).enumerate() {
                if FETCH && let Some(&ahead) = rows.get(i + PREFETCH) {
                    prefetch_row::<P>(base.wrapping_add(ahead as usize * n + j));
                }
                // SAFETY: k < m.rows and j + P <= n (checked by the caller), so the
                // P floats from k * n + j lie in `m.data`.
                let mk = unsafe { &*(base.add(k as usize * n + j) as *const [f32; P]) };
                for (a, &x) in acc.iter_mut().zip(mk) {
                    *a += v * x;
                }
            }
        }
        store_panel(op, &acc, start, j, relu);
        j += P;
    }
}

/// `dw = xᵀ · dy` (overwriting `dw`), with `x` given by its gathered entries.
///
/// # Shapes
/// `x: (m, k)` (as `e`), `dy: (m, n)`, `dw: (k, n)`.
pub fn sparse_matmul_tn(e: &mut Nonzeros, dy: &Matrix, dw: &mut Matrix) {
    assert_eq!(dy.rows, e.rows, "sparse_matmul_tn: inner dims");
    assert!(e.columns, "sparse_matmul_tn: entries gathered by row only");
    assert_eq!(
        (dw.rows, dw.cols),
        (e.cols, dy.cols),
        "sparse_matmul_tn: out shape"
    );
    let _timer = ProductTimer::start();
    let pieces = threads().max(1);
    // one `dy` panel buffer per piece, kept in `e` (`gather` made room in them)
    let mut panels = std::mem::take(&mut e.panels);
    if panels.len() < pieces {
        panels.resize_with(pieces, || Matrix::zeros(0, 0));
    }
    let (lists, panel) = (&*e, SendPtr(panels.as_mut_ptr()));
    let dst = SendPtr(dw.data.as_mut_ptr());
    let block = |p: usize, k0: usize, k1: usize| {
        // SAFETY: p < pieces, and blocks running at once have different pieces.
        let panel = unsafe { &mut *panel.ptr().add(p) };
        weight_grad_rows(lists, dy, dst, k0, k1, panel)
    };
    fork_by_entries(lists, 0, lists.cols, 0, pieces, &block);
    e.panels = panels;
}

simd_fn_wide! {
    /// Rows `k0 .. k1` of `dw = xᵀ · dy`, `dw` given by `dst`. One 64-column panel at
    /// a time, copied into `panel` (this piece's buffer), so that it (25 kB for a
    /// batch of 100) stays in the first-level cache while every pixel's sum is taken
    /// from it in registers. (Read in place, the panel's rows lie `n` floats apart: at
    /// n = 512, 2 kB, all of them map to 8 of the cache's 64 sets and evict each other.
    /// The copy made the product 10-30% faster, same bits; BENCHMARKS.md.)
    fn weight_grad_rows(
        e: &Nonzeros,
        dy: &Matrix,
        dst: SendPtr,
        k0: usize,
        k1: usize,
        panel: &mut Matrix,
    ) {
        let n = dy.cols;
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
                sum_scaled_rows::<PANEL, false>(&[e.column(k)], panel, 0, dk, Start::Zero, false);
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
    crate::par::join(
        || fork_by_entries(e, lo, mid, first, half, block),
        || fork_by_entries(e, mid, hi, first + half, pieces - half, block),
    );
}

#[cfg(test)]
mod tests {
    use super::super::matmul::with_threads;
    use super::*;
    use crate::rng::Rng;
    use std::cell::Cell;

    thread_local! {
        /// Whether `sparse_forward` holds back the first block's thread when that is
        /// this thread (a slow core). Per thread, so that tests running meanwhile on
        /// other threads are neither held back nor counted.
        pub(super) static STALL: Cell<bool> = const { Cell::new(false) };
        /// Set by that held-back thread if rows changed hands: another thread took rows
        /// of its block, or it took rows of another's.
        pub(super) static TAKEN: Cell<bool> = const { Cell::new(false) };
    }
    use crate::tensor::naive_matmul;
    use crate::tensor::transpose;

    /// A matrix's entries' bits, for comparing results exactly.
    fn bits(a: &Matrix) -> Vec<u32> {
        a.data.iter().map(|v| v.to_bits()).collect()
    }

    /// A `(rows, cols)` matrix with about `density` of its entries nonzero.
    fn sparse(rows: usize, cols: usize, density: f32, rng: &mut Rng) -> Matrix {
        Matrix::from_vec(
            rows,
            cols,
            (0..rows * cols)
                .map(|_| {
                    let v = rng.normal();
                    if rng.uniform() < density { v } else { 0.0 }
                })
                .collect(),
        )
    }

    fn close(a: &Matrix, b: &Matrix) {
        assert_eq!(a.shape(), b.shape());
        for (x, y) in a.data.iter().zip(&b.data) {
            assert!((x - y).abs() <= 1e-4 * (1.0 + y.abs()), "{x} vs {y}");
        }
    }

    #[test]
    fn products_match_the_definition() {
        let mut rng = Rng::new(5);
        for &(m, k, n) in &[
            (1, 1, 1),
            (7, 33, 5),
            (100, 70, 48),
            (3, 64, 100),
            (130, 97, 200),
        ] {
            let x = sparse(m, k, 0.2, &mut rng);
            let w = Matrix::from_vec(k, n, (0..k * n).map(|_| rng.normal()).collect());
            let dy = Matrix::from_vec(m, n, (0..m * n).map(|_| rng.normal()).collect());
            let mut e = Nonzeros::default();
            assert!(e.gather(&x, 1.0));
            assert_eq!(e.nonzeros(), x.data.iter().filter(|v| **v != 0.0).count());
            // the lists do not depend on how the rows were cut
            for pieces in [2, 3, 8] {
                let mut f = Nonzeros::default();
                assert!(f.gather_in_pieces(&x, 1.0, pieces, true));
                assert_eq!((&f.start, &f.row, &f.val), (&e.start, &e.row, &e.val));
                assert_eq!((&f.row_start, &f.by_row_col), (&e.row_start, &e.by_row_col));
                assert_eq!(f.by_row_val, e.by_row_val);
            }
            let mut y = Matrix::from_vec(m, n, vec![0.5; m * n]);
            sparse_matmul_nn_acc(&e, &w, &mut y);
            let mut want = naive_matmul(&x, &w);
            want.data.iter_mut().for_each(|v| *v += 0.5);
            close(&y, &want);
            let mut dw = Matrix::from_vec(k, n, vec![9.0; k * n]); // overwritten
            sparse_matmul_tn(&mut e, &dy, &mut dw);
            close(&dw, &naive_matmul(&transpose(&x), &dy));
        }
    }

    /// The products' rounding is pinned: each sum runs over the nonzeros in ascending
    /// order from 0.0 (the forward adds it to `out` at the end, except in the last
    /// `n % 64` columns, where it adds straight into `out`; the affine forward gives
    /// the same bits as starting from `out = b`). Any faster version of the
    /// kernels must keep these bits, or every recorded result would move. Checked at
    /// every SIMD level this CPU has (AVX-512 sums 128 columns at a time, AVX2 64).
    #[test]
    fn products_sum_in_the_documented_order() {
        use crate::simd::{LEVEL_LOCK, Level, detected, set_level};
        let _one_at_a_time = LEVEL_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let mut rng = Rng::new(9);
        let shapes = [
            (100, 784, 256),
            (37, 50, 300),
            (130, 97, 70),
            (20, 40, 200),
            (250, 300, 10),
            (64, 30, 3),
            (90, 60, 77),
            (300, 150, 200),
            (257, 70, 130),
        ];
        let levels = [Level::Baseline, Level::Avx2, Level::Avx512];
        for (&(m, k, n), level) in shapes.iter().flat_map(|s| levels.map(|l| (s, l))) {
            set_level(level);
            let x = sparse(m, k, 0.2, &mut rng);
            let w = Matrix::from_vec(k, n, (0..k * n).map(|_| rng.normal()).collect());
            let dy = Matrix::from_vec(m, n, (0..m * n).map(|_| rng.normal()).collect());
            let y0 = Matrix::from_vec(m, n, (0..m * n).map(|_| rng.normal()).collect());
            let mut e = Nonzeros::default();
            assert!(e.gather(&x, 1.0));
            let mut y = y0.clone();
            sparse_matmul_nn_acc(&e, &w, &mut y);
            let mut dw = Matrix::zeros(k, n);
            sparse_matmul_tn(&mut e, &dy, &mut dw);
            // the affine forward writes what `out = b` then `out += x w` leaves
            let b: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
            let mut from_b = Matrix::from_vec(m, n, b.repeat(m));
            sparse_matmul_nn_acc(&e, &w, &mut from_b);
            let mut affine = Matrix::from_vec(m, n, vec![f32::NAN; m * n]); // overwritten
            sparse_affine(&e, &w, &b, &mut affine);
            assert_eq!(bits(&affine), bits(&from_b), "{m}x{k}x{n} at {level:?}");
            // and with the ReLU folded in, what the two apart give
            let mut fused = Matrix::from_vec(m, n, vec![f32::NAN; m * n]);
            sparse_affine_relu(&e, &w, &b, &mut fused);
            let mut apart = affine.clone();
            crate::layers::Activation::Relu.forward_slice(&affine.data, &mut apart.data);
            assert_eq!(bits(&fused), bits(&apart), "relu {m}x{k}x{n} at {level:?}");
            let full = n - n % 64;
            for r in 0..m {
                for j in 0..n {
                    let mut acc = if j < full { 0.0f32 } else { y0.data[r * n + j] };
                    for kk in 0..k {
                        let v = x.data[r * k + kk];
                        if v != 0.0 {
                            acc += v * w.data[kk * n + j];
                        }
                    }
                    let want = if j < full {
                        y0.data[r * n + j] + acc
                    } else {
                        acc
                    };
                    assert_eq!(
                        y.data[r * n + j].to_bits(),
                        want.to_bits(),
                        "y[{r},{j}] at {level:?}"
                    );
                }
            }
            for kk in 0..k {
                for j in 0..n {
                    let mut acc = 0.0f32;
                    for r in 0..m {
                        let v = x.data[r * k + kk];
                        if v != 0.0 {
                            acc += v * dy.data[r * n + j];
                        }
                    }
                    assert_eq!(dw.data[kk * n + j].to_bits(), acc.to_bits(), "dw[{kk},{j}]");
                }
            }
        }
        set_level(detected());
    }

    #[test]
    fn too_dense_is_refused() {
        let mut rng = Rng::new(6);
        let x = sparse(10, 50, 0.9, &mut rng);
        let mut e = Nonzeros::default();
        assert!(!e.gather(&x, MAX_DENSITY));
        assert!(e.gather(&x, 1.0));
        let zeros = Matrix::zeros(4, 9);
        assert!(e.gather(&zeros, 0.0));
        assert_eq!(e.nonzeros(), 0);
        // no columns at all, in several pieces
        assert!(e.gather_in_pieces(&Matrix::zeros(40, 0), 0.3, 2, true));
        assert_eq!(e.nonzeros(), 0);
    }

    /// A thread done with its own block's rows takes what is left of the others':
    /// with the first block's thread held back, the other does that block's rows, to
    /// the same sums and the same lists as one thread doing everything.
    #[test]
    fn rows_taken_from_a_slow_block_give_the_same_bits() {
        let mut rng = Rng::new(33);
        let (m, k, n) = (200, 300, 256);
        let x = sparse(m, k, 0.2, &mut rng);
        let w = Matrix::from_vec(k, n, (0..k * n).map(|_| rng.normal()).collect());
        let b: Vec<f32> = (0..n).map(|_| rng.normal() - 1.0).collect();
        let mut e = Nonzeros::default();
        assert!(e.gather_rows(&x, 1.0));
        let (mut want, mut want_list) = (Matrix::zeros(m, n), Nonzeros::default());
        assert!(with_threads(1, || {
            sparse_affine_relu_listing(&e, &w, &b, &mut want, &mut want_list)
        }));
        let (mut y, mut list) = (Matrix::zeros(m, n), Nonzeros::default());
        STALL.set(true);
        TAKEN.set(false);
        let listed = with_threads(2, || {
            sparse_affine_relu_listing(&e, &w, &b, &mut y, &mut list)
        });
        STALL.set(false);
        assert!(listed && list.listed == 2);
        assert!(TAKEN.get(), "no rows changed hands");
        assert_eq!(bits(&y), bits(&want));
        assert_eq!(list.nonzeros(), want_list.nonzeros());
        for r in 0..m {
            let flat = |l: &Nonzeros| {
                let runs = l.row(r);
                let s = runs.as_slice();
                let cols: Vec<u32> = s.iter().flat_map(|r| r.0).copied().collect();
                let vals: Vec<u32> = s.iter().flat_map(|r| r.1).map(|v| v.to_bits()).collect();
                (cols, vals)
            };
            assert_eq!(flat(&list), flat(&want_list), "row {r}");
        }
    }

    /// A forward that lists its output's entries lists exactly what gathering them from
    /// the output finds, in the same order, so the next layer's forward from the list
    /// has the same bits; with any thread count (one part per thread's block of
    /// columns) and at every SIMD level. A 10-class layer (rows shared out) lists nothing.
    #[test]
    fn listing_forward_lists_what_gathering_finds() {
        use crate::simd::{LEVEL_LOCK, Level, detected, set_level};
        let _one_at_a_time = LEVEL_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let mut rng = Rng::new(21);
        for &(m, k, n, threads) in &[
            (100, 512, 512, 2),
            (37, 784, 256, 3),
            (300, 200, 200, 2),
            (5, 64, 130, 1),
            (64, 96, 1000, 8),
            (40, 30, 10, 2),
        ] {
            for level in [Level::Baseline, Level::Avx2, Level::Avx512] {
                set_level(level);
                let x = sparse(m, k, 0.2, &mut rng);
                let w = Matrix::from_vec(k, n, (0..k * n).map(|_| rng.normal()).collect());
                // biases below zero, so that the ReLU leaves a fifth or so nonzero
                let b: Vec<f32> = (0..n).map(|_| rng.normal() - 1.0).collect();
                let n2 = 70;
                let w2 = Matrix::from_vec(n, n2, (0..n * n2).map(|_| rng.normal()).collect());
                let b2: Vec<f32> = (0..n2).map(|_| rng.normal()).collect();
                let mut e = Nonzeros::default();
                assert!(e.gather_rows(&x, 1.0));
                let (mut y, mut want_y) = (Matrix::zeros(m, n), Matrix::zeros(m, n));
                let mut list = Nonzeros::default();
                let listed = super::super::matmul::with_threads(threads, || {
                    sparse_affine_relu_listing(&e, &w, &b, &mut y, &mut list)
                });
                sparse_affine_relu(&e, &w, &b, &mut want_y);
                assert_eq!(bits(&y), bits(&want_y), "{m}x{k}x{n} at {level:?}");
                assert_eq!(listed, n >= 64 * threads, "{m}x{k}x{n}, {threads} threads");
                if !listed {
                    assert_eq!(list.listed, 0);
                    continue;
                }
                let mut gathered = Nonzeros::default();
                assert!(gathered.gather_rows(&y, 1.0));
                assert_eq!(list.nonzeros(), gathered.nonzeros());
                assert!(list.listed > 0 && !list.has_columns());
                assert_eq!((list.rows, list.cols), (m, n));
                for r in 0..m {
                    let runs = list.row(r);
                    let cols: Vec<u32> =
                        runs.as_slice().iter().flat_map(|r| r.0).copied().collect();
                    let vals: Vec<f32> =
                        runs.as_slice().iter().flat_map(|r| r.1).copied().collect();
                    let want = gathered.row(r);
                    assert_eq!((&cols[..], &vals[..]), want.as_slice()[0], "row {r}");
                }
                // the next layer's forward from the list, against from gathering
                let (mut z, mut want_z) = (Matrix::zeros(m, n2), Matrix::zeros(m, n2));
                sparse_affine(&list, &w2, &b2, &mut z);
                sparse_affine(&gathered, &w2, &b2, &mut want_z);
                assert_eq!(
                    bits(&z),
                    bits(&want_z),
                    "next layer, {m}x{k}x{n} at {level:?}"
                );
                assert_eq!(
                    list.within(0.3),
                    gathered.nonzeros() <= (0.3 * (m * n) as f64) as usize
                );
                // a gather after a listing holds the gathered entries again
                assert!(list.gather_rows(&y, 1.0) && list.listed == 0);
                assert_eq!(list.row(0).as_slice()[0], gathered.row(0).as_slice()[0]);
            }
        }
        set_level(detected());
    }

    /// Gathering by row only gives the same row lists, so the same forward product,
    /// bit for bit, and the same decision at the limit; the weight gradient refuses it.
    #[test]
    fn gathering_rows_only_gives_the_same_forward() {
        let mut rng = Rng::new(14);
        for &(m, k, n) in &[(100, 512, 512), (1000, 784, 70), (3, 9, 5)] {
            let x = sparse(m, k, 0.15, &mut rng);
            let w = Matrix::from_vec(k, n, (0..k * n).map(|_| rng.normal()).collect());
            let (mut full, mut rows) = (Nonzeros::default(), Nonzeros::default());
            assert!(full.gather(&x, MAX_DENSITY));
            assert!(rows.gather_rows(&x, MAX_DENSITY));
            assert_eq!(
                (&full.row_start, &full.by_row_col),
                (&rows.row_start, &rows.by_row_col)
            );
            assert_eq!(full.by_row_val, rows.by_row_val);
            assert_eq!(rows.nonzeros(), full.nonzeros());
            assert!(full.has_columns() && !rows.has_columns());
            let (mut y1, mut y2) = (Matrix::zeros(m, n), Matrix::zeros(m, n));
            sparse_matmul_nn_acc(&full, &w, &mut y1);
            sparse_matmul_nn_acc(&rows, &w, &mut y2);
            assert_eq!(y1.data, y2.data);
            let dense = sparse(m, k, 0.9, &mut rng);
            assert!(!rows.gather_rows(&dense, MAX_DENSITY));
        }
        let x = sparse(10, 20, 0.2, &mut rng);
        let mut rows = Nonzeros::default();
        assert!(rows.gather_rows(&x, 1.0));
        let dy = Matrix::zeros(10, 4);
        let refused = std::panic::catch_unwind(move || {
            sparse_matmul_tn(&mut rows, &dy, &mut Matrix::zeros(20, 4));
        });
        assert!(refused.is_err());
    }

    /// A row's entries, flattened from its runs: columns and value bits.
    fn flat_row(e: &Nonzeros, r: usize) -> (Vec<u32>, Vec<u32>) {
        let runs = e.row(r);
        let s = runs.as_slice();
        let cols = s.iter().flat_map(|r| r.0).copied().collect();
        let vals = s.iter().flat_map(|r| r.1).map(|v| v.to_bits()).collect();
        (cols, vals)
    }

    /// Gathering by pairs puts every row in one pair, and lists each pair at exactly
    /// the columns where one of its rows is nonzero, ascending, with each row's own
    /// values: its nonzero ones are `gather_rows`' entries of that row, the rest 0.
    #[test]
    fn pairs_list_every_row_once_with_its_own_entries() {
        use crate::simd::{LEVEL_LOCK, Level, detected, set_level};
        let _one_at_a_time = LEVEL_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        if detected() < Level::Avx512 {
            return; // no pairs to check: `gather_pairs` is `gather_rows`
        }
        set_level(Level::Avx512);
        set_pairing(true);
        let mut rng = Rng::new(41);
        for &(m, k) in &[(256, 784), (37, 300), (2, 5), (3, 20), (101, 7), (40, 0)] {
            let x = sparse(m, k, 0.2, &mut rng);
            let (mut pairs, mut rows) = (Nonzeros::default(), Nonzeros::default());
            assert!(pairs.gather_pairs(&x, 1.0) && rows.gather_rows(&x, 1.0));
            assert!(pairs.pairs.on && !pairs.has_columns());
            assert_eq!(pairs.nonzeros(), rows.nonzeros());
            let p = &pairs.pairs;
            assert_eq!(p.rows.len(), m.div_ceil(2));
            let mut seen = vec![0; m];
            for (i, &[a, b]) in p.rows.iter().enumerate() {
                seen[a as usize] += 1;
                if b != a {
                    seen[b as usize] += 1;
                } else {
                    assert!(m % 2 == 1, "a row paired with itself, {m} rows");
                }
                assert_eq!(p.of[a as usize], 2 * i as u32);
                if a != b {
                    assert_eq!(p.of[b as usize], 2 * i as u32 + 1);
                }
                let (ra, rb) = (x.row(a as usize), x.row(b as usize));
                let either: Vec<u32> = (0..k as u32)
                    .filter(|&j| ra[j as usize] != 0.0 || rb[j as usize] != 0.0)
                    .collect();
                assert_eq!(flat_row(&pairs, a as usize).0, either, "pair {i}'s columns");
            }
            assert!(seen.iter().all(|&c| c == 1), "{seen:?}");
            for r in 0..m {
                let (cols, vals) = flat_row(&pairs, r);
                let own: (Vec<u32>, Vec<u32>) = cols
                    .iter()
                    .zip(&vals)
                    .filter(|&(_, &v)| f32::from_bits(v) != 0.0)
                    .map(|(&c, &v)| (c, v))
                    .unzip();
                assert_eq!(own, flat_row(&rows, r), "row {r}");
                for (&c, &v) in cols.iter().zip(&vals) {
                    assert_eq!(v, x.row(r)[c as usize].to_bits());
                }
            }
            let dense = sparse(m, k, 0.9, &mut rng);
            assert_eq!(
                pairs.gather_pairs(&dense, MAX_DENSITY),
                rows.gather_rows(&dense, MAX_DENSITY)
            );
        }
        // the density decision is `gather_rows`', exactly, though only every
        // `SAMPLE`th row is counted first: sampled rows empty and the rest dense (too
        // dense: 68%), and the other way round (23%: sparse enough, unpaired)
        for sampled_dense in [false, true] {
            let mut x = sparse(64, 100, 0.9, &mut rng);
            for r in 0..64 {
                if (r % SAMPLE == 0) != sampled_dense {
                    x.row_mut(r).fill(0.0);
                }
            }
            let (mut pairs, mut rows) = (Nonzeros::default(), Nonzeros::default());
            let want = rows.gather_rows(&x, MAX_DENSITY);
            assert_eq!(want, sampled_dense);
            assert_eq!(pairs.gather_pairs(&x, MAX_DENSITY), want);
            if want {
                assert_eq!(pairs.nonzeros(), rows.nonzeros());
                for r in 0..64 {
                    assert_eq!(flat_row(&pairs, r), flat_row(&rows, r));
                }
            }
        }
        set_level(detected());
    }

    /// The forward from pairs gives the bits of the forward row by row, in every kind
    /// of product (plain, affine, with the ReLU, listing its output), on every path:
    /// the paired panels, the last `n % 64` columns, a 10-class layer's rows shared
    /// out, and at AVX2 (one row at a time from the pairs' lists). The biases are -0
    /// and one row is all zeros, paired with a row that is not (first in its pair, or
    /// second): its sums over the last columns must stay -0, not turn +0 by adding its
    /// missing entries' zeros.
    #[test]
    fn pairs_give_the_same_bits_as_rows() {
        use crate::simd::{LEVEL_LOCK, Level, detected, set_level};
        let _one_at_a_time = LEVEL_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        if detected() < Level::Avx512 {
            return; // `gather_pairs` is `gather_rows` (the other tests cover it)
        }
        set_pairing(true);
        let mut rng = Rng::new(43);
        for &(m, k, n, threads) in &[
            (256, 784, 512, 2),
            (37, 300, 200, 3),
            (101, 97, 10, 2),
            (64, 50, 77, 1),
            (3, 20, 130, 2),
            (2, 40, 10, 2),
            (2, 40, 300, 2),
            (3, 40, 10, 2),
            (3, 40, 300, 2),
        ] {
            let mut x = sparse(m, k, 0.2, &mut rng);
            let zero = if (m, k) == (3, 40) {
                // the all-zero row second in its pair: row 0 is nonzero only in a column
                // past the signature's (row 2's first twelve), so it sorts first
                x.data.fill(0.0);
                x.row_mut(0)[39] = 0.5;
                x.row_mut(2)[..20].fill(1.5);
                1
            } else {
                x.row_mut(0).fill(0.0);
                x.row_mut(m - 1)[0] = 1.0;
                0
            };
            let w = Matrix::from_vec(
                k,
                n,
                (0..k * n)
                    .map(|_| {
                        if rng.uniform() < 0.1 {
                            0.0
                        } else {
                            rng.normal()
                        }
                    })
                    .collect(),
            );
            let b: Vec<f32> = (0..n)
                .map(|j| if j % 3 == 0 { -0.0 } else { rng.normal() })
                .collect();
            let y0 = Matrix::from_vec(m, n, (0..m * n).map(|_| rng.normal()).collect());
            set_level(Level::Avx512);
            let (mut pairs, mut rows) = (Nonzeros::default(), Nonzeros::default());
            assert!(pairs.gather_pairs(&x, 1.0) && rows.gather_rows(&x, 1.0));
            assert!(pairs.pairs.on);
            let side = pairs.pairs.of[zero] % 2;
            assert!(
                pairs.pairs.rows[pairs.pairs.of[zero] as usize / 2][1 - side as usize]
                    != zero as u32
            );
            if zero == 1 {
                assert_eq!(side, 1, "the all-zero row second in its pair");
            }
            for level in [Level::Avx512, Level::Avx2] {
                set_level(level);
                let at = format!("{m}x{k}x{n}, {threads} threads, {level:?}");
                let run = |e: &Nonzeros| {
                    with_threads(threads, || {
                        let mut acc = y0.clone();
                        sparse_matmul_nn_acc(e, &w, &mut acc);
                        let mut affine = Matrix::zeros(m, n);
                        sparse_affine(e, &w, &b, &mut affine);
                        let mut relu = Matrix::zeros(m, n);
                        sparse_affine_relu(e, &w, &b, &mut relu);
                        let (mut listed, mut list) = (Matrix::zeros(m, n), Nonzeros::default());
                        let did = sparse_affine_relu_listing(e, &w, &b, &mut listed, &mut list);
                        let lists: Vec<_> =
                            (0..m).map(|r| did.then(|| flat_row(&list, r))).collect();
                        [bits(&acc), bits(&affine), bits(&relu), bits(&listed)]
                            .map(|v| (v, lists.clone()))
                    })
                };
                let (got, want) = (run(&pairs), run(&rows));
                for (kind, (g, w)) in ["acc", "affine", "relu", "listing"]
                    .iter()
                    .zip(got.iter().zip(&want))
                {
                    assert_eq!(g, w, "{kind}, {at}");
                }
                // the all-zero row's last columns: the bias, -0 where it is
                if n % 64 != 0 {
                    let j = n - n % 64;
                    let j = (j..n).find(|j| j % 3 == 0).unwrap();
                    assert_eq!(want[1].0[zero * n + j], (-0.0f32).to_bits(), "{at}");
                }
            }
        }
        set_level(detected());
    }

    /// Pairs that do not pay (random rows: a pair's columns near twice a row's
    /// nonzeros) make the layer list one row at a time for `PAIRS_REST` matrices, then
    /// try pairs again; pairs of identical rows pay.
    #[test]
    fn pairs_that_do_not_pay_are_rested() {
        use crate::simd::{LEVEL_LOCK, Level, detected, set_level};
        let _one_at_a_time = LEVEL_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        if detected() < Level::Avx512 {
            return; // no pairs: `PairChoice::pairs` is always false
        }
        set_level(Level::Avx512);
        set_pairing(true);
        let mut rng = Rng::new(47);
        let random = sparse(200, 512, 0.15, &mut rng);
        let mut twins = sparse(200, 512, 0.15, &mut rng);
        for r in (0..200).step_by(2) {
            let row = twins.row(r).to_vec();
            twins.row_mut(r + 1).copy_from_slice(&row);
        }
        let mut e = Nonzeros::default();
        let mut choice = PairChoice::default();
        assert!(choice.pairs());
        assert!(e.gather_pairs(&twins, MAX_DENSITY) && e.pairs_paid());
        choice.judge(&e);
        assert!(choice.pairs());
        assert!(e.gather_pairs(&random, MAX_DENSITY) && !e.pairs_paid());
        choice.judge(&e);
        for _ in 0..PAIRS_REST {
            assert!(!choice.pairs());
        }
        assert!(choice.pairs());
        assert!(e.gather_rows(&random, MAX_DENSITY) && e.pairs_paid());
        set_pairing(false);
        assert!(!choice.pairs());
        set_pairing(true);
        set_level(detected());
    }

    /// The check behind the sums' unchecked loads: every row number under the bound.
    #[test]
    fn row_numbers_are_checked_against_the_matrix() {
        assert!(within_rows(&[], 0));
        assert!(within_rows(&[0, 5, 3], 6));
        assert!(!within_rows(&[0, 6, 3], 6));
        let many: Vec<u32> = (0..100).collect();
        assert!(within_rows(&many, 100) && !within_rows(&many, 99));
        let w = Matrix::zeros(4, 64);
        let mut out = vec![0f32; 64];
        let past = std::panic::catch_unwind(move || {
            sum_scaled_rows::<64, false>(
                &[(&[4u32][..], &[1.0f32][..])],
                &w,
                0,
                &mut out,
                Start::Zero,
                false,
            )
        });
        assert!(past.is_err(), "a row past the matrix was read");
    }
}
