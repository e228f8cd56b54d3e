//! Runtime CPU dispatch for nnlab's own loops (Adam, activations, dropout, the sparse
//! products).
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
//! The sparse products, which only load, multiply and add, are the exception:
//! `simd_fn_wide!` adds an AVX-512 copy, and the forward product sums 128 columns in
//! eight 512-bit registers instead of 64 in eight 256-bit ones, half the instructions
//! per nonzero. A trained dropout net's 10,000-image evaluation took 0.107-0.116 s
//! against 0.120-0.129 with AVX2 (`examples/inference.rs`, alternating, BENCHMARKS.md).
//!
//! The results do not depend on the level: Rust never contracts `a * b + c` into a
//! fused multiply-add, and no kernel here reorders a sum by level (the elementwise
//! ones have none; the sparse products sum in an order fixed by the data), so each
//! lane computes exactly the scalar expression. `tests/training.rs`
//! (`simd_level_does_not_change_results`) checks this bit for bit, and
//! `tensor::sparse`'s tests pin the sparse products' bits at every level.

use std::sync::atomic::{AtomicU8, Ordering};

/// Instruction-set level the elementwise kernels run at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// SSE2, what every x86-64 CPU has (and the only level elsewhere).
    Baseline = 1,
    /// AVX2 (256-bit vectors).
    Avx2 = 2,
    /// AVX-512 (512-bit vectors) and POPCNT, used only by the kernels defined with
    /// `simd_fn_wide!` and the sparse products' listing; the rest run at AVX2 on such
    /// CPUs.
    Avx512 = 3,
}

/// 0 = not yet detected.
static LEVEL: AtomicU8 = AtomicU8::new(0);

/// The best level this CPU supports.
pub fn detected() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        // (POPCNT too, which the sparse products' listing counts entries with; every
        // AVX-512 CPU has it)
        if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("popcnt") {
            return Level::Avx512;
        }
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
        3 => Level::Avx512,
        _ => {
            // NNLAB_SIMD=baseline or =avx2 caps it from outside (benchmarks).
            let cap = match std::env::var("NNLAB_SIMD").as_deref() {
                Ok("baseline") => Level::Baseline,
                Ok("avx2") => Level::Avx2,
                _ => Level::Avx512,
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
            if $crate::simd::level() >= $crate::simd::Level::Avx2 {
                // SAFETY: `level()` never exceeds what `detected()` found on this CPU.
                return unsafe { avx2($($arg),*) };
            }
            kernel($($arg),*)
        }
    };
}
pub(crate) use simd_fn;

/// Like `simd_fn!`, with a third copy compiled for AVX-512 (`avx512f`), run when
/// the level is [`Level::Avx512`].
macro_rules! simd_fn_wide {
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
            #[target_feature(enable = "avx512f")]
            unsafe fn avx512($($arg: $ty),*) $(-> $ret)? {
                kernel($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            match $crate::simd::level() {
                // SAFETY: `level()` never exceeds what `detected()` found on this CPU.
                $crate::simd::Level::Avx512 => return unsafe { avx512($($arg),*) },
                $crate::simd::Level::Avx2 => return unsafe { avx2($($arg),*) },
                $crate::simd::Level::Baseline => {}
            }
            kernel($($arg),*)
        }
    };
}
pub(crate) use simd_fn_wide;

/// Held by the library's tests that change the level, so that none sees another's.
#[cfg(test)]
pub(crate) static LEVEL_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_capped_by_the_cpu() {
        let _one_at_a_time = LEVEL_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let d = detected();
        set_level(Level::Avx512);
        assert_eq!(level(), d);
        set_level(Level::Avx2);
        assert_eq!(level(), d.min(Level::Avx2));
        set_level(Level::Baseline);
        assert_eq!(level(), Level::Baseline);
        set_level(d);
    }
}
