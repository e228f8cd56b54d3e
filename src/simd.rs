//! Runtime CPU dispatch for nnlab's own loops (Adam, activations, dropout, the sparse
//! first-layer products).
//!
//! The crate is compiled for the baseline x86-64 (SSE2), so it runs on any x86-64 CPU;
//! the `gemm` crate already picks its kernels at run time. The hot loops are written
//! once, as plain Rust, inside `simd_fn!`, which compiles each twice and calls the
//! AVX2 copy when the CPU has it, so LLVM vectorises the same source 8 lanes wide
//! instead of 4. (An AVX-512 build of the same loops was measured slower on the
//! Zen 4 machines this project runs on, whose 512-bit square roots and divisions are
//! split into two halves: Adam over 1.19 M parameters took 1.06 ms against 0.62 ms
//! with AVX2 and 0.87 ms with SSE2, `cargo bench --bench kernels -- adam`.)
//!
//! The results do not depend on the level: Rust never contracts `a * b + c` into a
//! fused multiply-add, and no kernel here reorders a sum by level (the elementwise
//! ones have none; the sparse products sum in an order fixed by the data), so each
//! lane computes exactly the scalar expression. `tests/training.rs`
//! (`simd_level_does_not_change_results`) checks this bit for bit.

use std::sync::atomic::{AtomicU8, Ordering};

/// Instruction-set level the elementwise kernels run at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// SSE2, what every x86-64 CPU has (and the only level elsewhere).
    Baseline = 1,
    /// AVX2 (256-bit vectors).
    Avx2 = 2,
}

/// 0 = not yet detected.
static LEVEL: AtomicU8 = AtomicU8::new(0);

/// The best level this CPU supports.
pub fn detected() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx2") {
            return Level::Avx2;
        }
    }
    Level::Baseline
}

/// The level in use: the detected one unless [`set_level`] lowered it.
#[inline]
pub fn level() -> Level {
    match LEVEL.load(Ordering::Relaxed) {
        1 => Level::Baseline,
        2 => Level::Avx2,
        _ => {
            // NNLAB_SIMD=baseline caps it from outside (benchmarks).
            let cap = match std::env::var("NNLAB_SIMD").as_deref() {
                Ok("baseline") => Level::Baseline,
                _ => Level::Avx2,
            };
            let l = detected().min(cap);
            LEVEL.store(l as u8, Ordering::Relaxed);
            l
        }
    }
}

/// Caps the level (for tests and benchmarks); a level above what the CPU supports is
/// lowered to the detected one.
pub fn set_level(l: Level) {
    LEVEL.store(l.min(detected()) as u8, Ordering::Relaxed);
}

/// Defines a function whose body is compiled twice, for the baseline and with AVX2,
/// and runs the version the current [`level`] allows. The body becomes an
/// `#[inline(always)]` function called straight from a `#[target_feature(enable =
/// "avx2")]` one, so it is always compiled with AVX2. (An earlier version passed a
/// closure to a generic AVX2 function; LLVM inlined short closures into it but left
/// longer ones, such as the activations' and the sparse products', outside at SSE2.)
///
/// ```ignore
/// simd_fn! {
///     /// Doc.
///     pub fn scale(x: &mut [f32], a: f32) { for v in x { *v *= a } }
/// }
/// ```
macro_rules! simd_fn {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$m])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn kernel($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2")]
            unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                kernel($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            if $crate::simd::level() == $crate::simd::Level::Avx2 {
                // SAFETY: `level()` never exceeds what `detected()` found on this CPU.
                return unsafe { avx2($($arg),*) };
            }
            kernel($($arg),*)
        }
    };
}
pub(crate) use simd_fn;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_capped_by_the_cpu() {
        let d = detected();
        set_level(Level::Avx2);
        assert_eq!(level(), d);
        set_level(Level::Baseline);
        assert_eq!(level(), Level::Baseline);
        set_level(d);
    }
}
