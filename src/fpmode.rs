//! The calling thread's floating-point mode: whether subnormal numbers are flushed to
//! zero.
//!
//! Changing it is `unsafe`: Rust (like LLVM) compiles on the assumption that the
//! default mode holds, so a value the compiler folds at build time may differ from the
//! same expression computed at run time under flushing. nnlab accepts that for its
//! numeric kernels (a flushed subnormal is the point); the mode is set and restored
//! only around computations, by [`crate::runtime::Runtime::enter`]. On x86-64 these are two bits of the SSE control register MXCSR: FTZ (bit 15,
//! subnormal results become zero) and DAZ (bit 6, subnormal operands are read as
//! zero). Each thread has its own MXCSR; [`crate::par`] hands the forking thread's to
//! the worker that runs the other half of a fork. Elsewhere there is no such mode:
//! the functions do nothing and report it off.

/// MXCSR's FTZ and DAZ bits.
#[cfg(target_arch = "x86_64")]
const FLUSH_BITS: u32 = (1 << 15) | (1 << 6);

/// The calling thread's control word (0 where there is none).
#[inline]
pub fn control_word() -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        let mut csr = 0u32;
        // SAFETY: `stmxcsr` stores the 32-bit MXCSR to the given address, a local.
        unsafe {
            std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack, preserves_flags));
        }
        csr
    }
    #[cfg(not(target_arch = "x86_64"))]
    0
}

/// Sets the calling thread's control word (as read by [`control_word`] on some
/// thread); does nothing where there is none, or where it is already `csr`.
///
/// # Safety
/// `csr` must come from [`control_word`], or differ from such a value only in the
/// FTZ/DAZ bits; and the caller accepts the module's caveat on a non-default mode.
#[inline]
pub unsafe fn set_control_word(csr: u32) {
    #[cfg(target_arch = "x86_64")]
    if control_word() != csr {
        // SAFETY: `ldmxcsr` loads MXCSR from a local; `csr` came from `stmxcsr` or
        // differs from such a value in the FTZ/DAZ bits only, so no reserved bit is
        // set (which would fault).
        unsafe {
            std::arch::asm!("ldmxcsr [{}]", in(reg) &csr, options(nostack, readonly, preserves_flags));
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = csr;
}

/// Turns flushing of subnormals on or off for the calling thread.
///
/// # Safety
/// As [`set_control_word`]: the caller accepts the module's caveat.
pub unsafe fn set_flush_to_zero(on: bool) {
    #[cfg(target_arch = "x86_64")]
    {
        let csr = control_word();
        let flags = if on {
            csr | FLUSH_BITS
        } else {
            csr & !FLUSH_BITS
        };
        // SAFETY: `csr` came from `control_word`; only FTZ/DAZ change; the caller's.
        unsafe { set_control_word(flags) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = on;
}

/// Whether the calling thread flushes subnormals to zero.
pub fn flushes_to_zero() -> bool {
    #[cfg(target_arch = "x86_64")]
    return control_word() & FLUSH_BITS == FLUSH_BITS;
    #[cfg(not(target_arch = "x86_64"))]
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hint::black_box;

    /// The smallest positive normal f32 halved: a subnormal.
    const SUB: f32 = f32::MIN_POSITIVE / 2.0;

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn subnormals_are_flushed_only_when_asked() {
        let before = control_word();
        // SAFETY: a test of the mode itself, restored at the end.
        unsafe { set_flush_to_zero(false) };
        assert!(!flushes_to_zero());
        assert_eq!(black_box(SUB) * black_box(1.0), SUB);
        unsafe { set_flush_to_zero(true) };
        assert!(flushes_to_zero());
        // DAZ: a subnormal operand reads as zero; FTZ: a subnormal result becomes zero
        assert_eq!(black_box(SUB) * black_box(1.0), 0.0);
        assert_eq!(black_box(f32::MIN_POSITIVE) * black_box(0.5), 0.0);
        // normal numbers are untouched
        assert_eq!(black_box(1.5f32) * black_box(2.0), 3.0);
        unsafe { set_control_word(before) };
        assert_eq!(control_word(), before);
    }
}
