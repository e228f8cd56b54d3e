//! A global allocator that starts every large buffer on a cache line.
//!
//! The system allocator (glibc) aligns blocks to 16 bytes only; one it maps with
//! `mmap` starts 16 bytes past a page. A `Matrix` is a `Vec<f32>`, so its rows
//! usually start 16, 32 or 48 bytes into a 64-byte cache line, and every 64-byte load
//! of a row (an AVX-512 register; every other 32-byte one with AVX2) spans two lines,
//! which costs the core two loads. [`Aligned`] gives every block of [`LARGE`] bytes or more
//! 64-byte alignment and leaves smaller ones as they are. It changes no result (no
//! kernel's arithmetic depends on where its data lies); it makes the sparse products
//! about a fifth faster (BENCHMARKS.md).
//!
//! The `nnlab` binary installs it; a program that uses the library installs it with
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOC: nnlab::alloc::Aligned = nnlab::alloc::Aligned;
//! ```

use std::alloc::{GlobalAlloc, Layout, System};

/// Blocks of at least this many bytes start on a cache line.
pub const LARGE: usize = 512;

/// Cache-line size on x86-64 and most other CPUs.
pub const LINE: usize = 64;

/// The system allocator, with every block of [`LARGE`] bytes or more aligned to
/// [`LINE`] bytes.
pub struct Aligned;

/// The layout `Aligned` hands the system allocator for a request of layout `l`.
#[inline]
fn widened(l: Layout) -> Layout {
    if l.size() >= LARGE && l.align() < LINE {
        // LINE is a power of two and the size is unchanged, so this cannot fail.
        Layout::from_size_align(l.size(), LINE).unwrap_or(l)
    } else {
        l
    }
}

// SAFETY: every call is passed on to `System` with the layout widened the same way
// for the same request, so each block is freed with the layout it was allocated with;
// a widened layout only asks for more alignment, which satisfies the caller's.
unsafe impl GlobalAlloc for Aligned {
    #[inline]
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        unsafe { System.alloc(widened(l)) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        unsafe { System.alloc_zeroed(widened(l)) }
    }

    #[inline]
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, widened(l)) }
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        let (old, new) = (
            widened(l),
            widened(unsafe {
                // SAFETY: the caller guarantees `new_size`, rounded up to `l.align()`,
                // does not overflow `isize`.
                Layout::from_size_align_unchecked(new_size, l.align())
            }),
        );
        if old.align() == new.align() {
            return unsafe { System.realloc(p, old, new_size) };
        }
        // The block crosses LARGE: move it to a block with the new alignment.
        let q = unsafe { System.alloc(new) };
        if !q.is_null() {
            unsafe {
                std::ptr::copy_nonoverlapping(p, q, l.size().min(new_size));
                System.dealloc(p, old);
            }
        }
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_blocks_start_on_a_line_and_keep_their_bytes() {
        let a = Aligned;
        unsafe {
            for (size, align) in [
                (8, 4),
                (LARGE - 4, 4),
                (LARGE, 4),
                (1 << 20, 16),
                (4096, 128),
            ] {
                let l = Layout::from_size_align(size, align).unwrap();
                let p = a.alloc(l);
                assert!(!p.is_null());
                assert_eq!(p as usize % align, 0);
                if size >= LARGE {
                    assert_eq!(p as usize % LINE, 0, "{size} bytes");
                }
                a.dealloc(p, l);
            }
            // growing across LARGE and shrinking back keeps the contents
            let l = Layout::from_size_align(64, 4).unwrap();
            let p = a.alloc(l);
            for i in 0..64 {
                *p.add(i) = i as u8;
            }
            let p = a.realloc(p, l, 1 << 16);
            assert_eq!(p as usize % LINE, 0);
            let big = Layout::from_size_align(1 << 16, 4).unwrap();
            let p = a.realloc(p, big, 100);
            for i in 0..64 {
                assert_eq!(*p.add(i), i as u8);
            }
            a.dealloc(p, Layout::from_size_align(100, 4).unwrap());
            let z = Layout::from_size_align(4096, 4).unwrap();
            let p = a.alloc_zeroed(z);
            assert_eq!(p as usize % LINE, 0);
            assert!((0..4096).all(|i| *p.add(i) == 0));
            a.dealloc(p, z);
        }
    }
}
