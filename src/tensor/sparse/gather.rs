//! Listing a matrix's nonzero entries: a counting sort, its rows cut into one piece
//! per thread. Each piece counts its nonzeros per column; then each lists its rows'
//! entries by row and, for the weight gradient, copies them to their places in the
//! column lists (a column holds piece 0's entries, then piece 1's, ..., so rows stay
//! ascending). The lists do not depend on the cut (tested).

use super::kernels::list_nonzeros;
use super::{Nonzeros, SendPtr, most_entries, room};
use crate::par::fork_blocks;
use crate::runtime::Runtime;
use crate::simd::{Level, simd_fn};
use crate::tensor::Matrix;

impl Nonzeros {
    /// Gathers the nonzero entries of `x` by row and by column if at most
    /// `max_density` of its entries are nonzero, and returns whether it did.
    ///
    /// # Shapes
    /// `x: (rows, cols)`; the entries then describe a `(rows, cols)` matrix.
    pub fn gather(&mut self, rt: &Runtime, x: &Matrix, max_density: f32) -> bool {
        self.gather_in_pieces(rt, x, max_density, rt.threads, true)
    }

    /// `gather` without the by-column lists, which only the weight gradient reads: for
    /// a forward pass with no backward pass after it (evaluation).
    ///
    /// # Shapes
    /// As `gather`.
    pub fn gather_rows(&mut self, rt: &Runtime, x: &Matrix, max_density: f32) -> bool {
        self.gather_in_pieces(rt, x, max_density, rt.threads, false)
    }

    /// `gather` with the rows cut into `pieces` pieces (fewer if a piece would have
    /// under 16 rows), the by-column lists built only if `columns`.
    pub(super) fn gather_in_pieces(
        &mut self,
        rt: &Runtime,
        x: &Matrix,
        max_density: f32,
        pieces: usize,
        columns: bool,
    ) -> bool {
        let (n, d) = (x.rows, x.cols);
        assert_eq!(
            x.data.len(),
            n * d,
            "gather: x's data does not match its shape"
        );
        let pieces = self.count_by_piece(rt.simd, x, pieces);
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
            let most_pieces = rt.threads.max(1);
            if self.panels.len() < most_pieces {
                self.panels.resize_with(most_pieces, || Matrix::zeros(0, 0));
            }
            for p in &mut self.panels {
                room(&mut p.data, n * super::PANEL);
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
            let slots = piece_start[p] as usize..piece_start[p + 1] as usize;
            // SAFETY: piece p writes its own cursors, its rows' row_start, its range
            // of the by-row lists (the listing checks it stays inside), and the column
            // slots its cursors hand out, which the counts made disjoint from every
            // other piece's.
            unsafe { list_piece(x, r0, nb, p, slots, out, columns) }
        });
        self.columns = columns;
        true
    }

    /// Takes `x`'s shape and counts the nonzeros per column, in `pieces` pieces of
    /// rows (fewer if a piece would have under 16 rows): piece `p`'s counts are
    /// `cursor[p * cols ..][.. cols]`. Forgets any earlier lists. Returns the number of
    /// pieces (of `per` rows).
    fn count_by_piece(&mut self, level: Level, x: &Matrix, pieces: usize) -> usize {
        let (n, d) = (x.rows, x.cols);
        (self.rows, self.cols) = (n, d);
        self.columns = false;
        self.per = n.div_ceil(pieces.clamp(1, n.div_ceil(16).max(1))).max(1);
        let pieces = n.div_ceil(self.per);
        self.cursor.clear();
        self.cursor.resize(pieces * d, 0);
        let (counts, per) = (SendPtr(self.cursor.as_mut_ptr()), self.per);
        fork_blocks(0, n, per, &|r0, nb| {
            // SAFETY: piece r0 / per owns counts[(r0 / per) * d ..][.. d].
            let c = unsafe { std::slice::from_raw_parts_mut(counts.ptr().add(r0 / per * d), d) };
            count_nonzeros(level, x, r0, nb, c)
        });
        pieces
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
    fn count_nonzeros(level: Level, x: &Matrix, r0: usize, nb: usize, counts: &mut [u32]) {
        for r in r0..r0 + nb {
            for (c, &v) in counts.iter_mut().zip(x.row(r)) {
                *c += (v != 0.0) as u32;
            }
        }
    }
}

/// Lists the nonzeros of rows `r0 .. r0 + nb` (piece `p`) by row into `slots` of the
/// by-row lists, then, if `columns`, copies each to the slot its column's cursor gives.
///
/// # Safety
/// The buffers must be sized as `gather` sizes them and no other thread may write
/// the parts this piece writes.
///
/// # Panics
/// If the rows hold more nonzeros than `slots` (the counting pass saw fewer: a bug,
/// caught before any write past the slots).
unsafe fn list_piece(
    x: &Matrix,
    r0: usize,
    nb: usize,
    p: usize,
    slots: std::ops::Range<usize>,
    out: Lists,
    columns: bool,
) {
    let d = x.cols;
    let mut q = slots.start;
    for r in r0..r0 + nb {
        unsafe {
            *out.row_start.0.add(r) = q as u32;
            q += list_nonzeros(
                x.row(r),
                out.by_row_col.0.add(q),
                out.by_row_val.0.add(q),
                slots.end - q,
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
