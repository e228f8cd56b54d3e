//! Runtime CPU dispatch for nnlab's own loops (Adam, activations, dropout, the sparse
//! products).
//!
//! The crate is compiled for the baseline x86-64 (SSE2), so it runs on any x86-64 CPU;
//! the `gemm` crate already picks its kernels at run time. The hot loops are written
//! once, as plain Rust, inside `simd_fn!`, which compiles each twice and calls the
//! AVX2 copy when the CPU has it, so LLVM vectorises the same source 8 lanes wide
//! instead of 4. (An AVX-512 build of the same loops was measured slower on the
//! Zen 4 machines this project runs on, whose 512-bit square roots and divisions are
//! split into two halves: Adam was slower at AVX-512 than at AVX2, BENCHMARKS.md.)
//!
//! An AVX-512 build of the sparse products (128 columns in eight 512-bit registers,
//! and intrinsics for listing nonzeros and the last columns) won less on a whole
//! dropout lab on this project's Zen 4 machines than the 10% a special path must
//! win, so it was removed (BENCHMARKS.md, 2026-12-05); `Level::Avx512` is detected
//! and may be asked for, and runs the AVX2 code.
//!
//! The level is part of the [`Runtime`](crate::runtime::Runtime) (`--simd` caps it),
//! passed to each kernel as its first argument; no setting is global.
//!
//! The results do not depend on the level: Rust never contracts `a * b + c` into a
//! fused multiply-add, and no kernel here reorders a sum by level (the elementwise
//! ones have none; the sparse products sum in an order fixed by the data), so each
//! lane computes exactly the scalar expression. `tests/training.rs`
//! (`simd_level_does_not_change_results`) checks this bit for bit, and
//! `tensor::sparse`'s tests pin the sparse products' bits at every level.

/// Instruction-set level the elementwise kernels run at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// SSE2, what every x86-64 CPU has (and the only level elsewhere).
    Baseline = 1,
    /// AVX2 (256-bit vectors).
    Avx2 = 2,
    /// AVX-512 (512-bit vectors): detected, and runs the AVX2 code (none of these
    /// loops has an AVX-512 copy; see the module docs). The bf16 products' AVX512-BF16
    /// kernel (`tensor::bf16`) is chosen by `--precision`, not by this level.
    Avx512 = 3,
}

/// The best level this CPU supports (detected once).
pub fn detected() -> Level {
    static DETECTED: std::sync::OnceLock<Level> = std::sync::OnceLock::new();
    *DETECTED.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") {
                return Level::Avx512;
            }
            if is_x86_feature_detected!("avx2") {
                return Level::Avx2;
            }
        }
        Level::Baseline
    })
}

impl std::str::FromStr for Level {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "baseline" | "sse2" => Ok(Level::Baseline),
            "avx2" => Ok(Level::Avx2),
            "avx512" => Ok(Level::Avx512),
            _ => Err(format!("unknown SIMD level `{s}` (baseline, avx2, avx512)")),
        }
    }
}

/// Defines a function whose body is compiled twice, for the baseline and with AVX2,
/// and runs the version its first parameter, a [`Level`] (the runtime's), allows; a
/// level above the CPU's is never passed (`Runtime` caps it). The body becomes an
/// `#[inline(always)]` function called straight from a `#[target_feature(enable =
/// "avx2")]` one, so it is always compiled with AVX2. (An earlier version passed a
/// closure to a generic AVX2 function; LLVM inlined short closures into it but left
/// longer ones, such as the activations' and the sparse products', outside at SSE2.)
///
/// ```ignore
/// simd_fn! {
///     /// Doc.
///     pub fn scale(level: Level, x: &mut [f32], a: f32) { for v in x { *v *= a } }
/// }
/// ```
macro_rules! simd_fn {
    ($(#[$m:meta])* $vis:vis fn $name:ident($lvl:ident: Level, $($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$m])*
        $vis fn $name($lvl: $crate::simd::Level, $($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            #[allow(unused_variables)]
            fn kernel($lvl: $crate::simd::Level, $($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2")]
            unsafe fn avx2($lvl: $crate::simd::Level, $($arg: $ty),*) $(-> $ret)? {
                kernel($lvl, $($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            if $lvl >= $crate::simd::Level::Avx2 && $crate::simd::detected() >= $crate::simd::Level::Avx2 {
                // SAFETY: the CPU has AVX2 (checked just above).
                return unsafe { avx2($lvl, $($arg),*) };
            }
            kernel($lvl, $($arg),*)
        }
    };
}
pub(crate) use simd_fn;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_and_order() {
        assert_eq!("avx2".parse::<Level>(), Ok(Level::Avx2));
        assert!("avx9".parse::<Level>().unwrap_err().contains("avx9"));
        assert!(Level::Baseline < Level::Avx2 && Level::Avx2 < Level::Avx512);
        assert!(detected() >= Level::Baseline);
    }
}
