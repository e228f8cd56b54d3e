//! The runtime: how a computation may use this machine. One value, built from the
//! command line, passed explicitly to whatever computes (the trainer, a model's
//! evaluation, the server): there are no process-wide settings to set and restore.
//!
//! None of it is part of a model's or a run's identity. The thread count and the SIMD
//! level never change a bit: each product's sums, and each elementwise pass, do not
//! depend on how the work is shared out or how wide the registers are (tested), so a
//! run resumed at another thread count ends where the uninterrupted one would. The
//! two fast-path switches may change rounding: `sparse` sums a layer's products in
//! another order than the dense ones, and `ftz` turns subnormal values into zeros; a
//! run resumed with either switched goes on correctly but not to the same bits.
//! `precision` changes more than rounding: in bf16 the products' operands keep 8 bits
//! of their mantissas (the labs stay in their ranges, RESULTS.md); a run resumed in
//! the other precision goes on, in that precision.

use crate::simd::Level;

/// How a computation may use the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Runtime {
    /// How many pieces products and updates are cut into (at least 1; 1 runs
    /// everything on the calling thread). More than the cores cuts work finer without
    /// adding cores.
    pub threads: usize,
    /// The instruction-set level of nnlab's own loops ([`crate::simd`]): the best the
    /// CPU has, or lower (to compare levels). Never above what the CPU has.
    pub simd: Level,
    /// Whether a dense layer computes from its input's nonzero entries alone when few
    /// of them are nonzero (`tensor::sparse::MAX_DENSITY`), as the first layer of every
    /// lab does on MNIST's images. Off: always the dense product.
    pub sparse: bool,
    /// Whether subnormal floats are flushed to zero (MXCSR's FTZ and DAZ bits) on the
    /// threads that compute. On Intel cores each subnormal operand or result costs a
    /// microcode assist, and trained ReLU nets make many (their small gradients);
    /// BENCHMARKS.md has what it costs.
    pub ftz: bool,
    /// What the dense products (every product through [`crate::tensor::gemm`])
    /// compute in. Bf16 only where the CPU has it ([`Precision::Bf16`]).
    pub precision: Precision,
    /// Whether training may run steps on one thread while they are measured faster
    /// than on `threads` ([`crate::train::threads`]); the bits do not change.
    pub adapt: bool,
}

/// What the dense products compute in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    /// f32 operands and sums (the `gemm` crate).
    #[default]
    F32,
    /// Operands rounded to bfloat16, f32 sums, on AVX512-BF16's `vdpbf16ps`
    /// ([`crate::tensor::bf16`]), for every product through `gemm` or a convolution's
    /// `gemm_here_in` and every recurrent step's product, each at least 16 columns wide
    /// ([`crate::tensor::bf16::takes`]); weights, activations, gradients and the
    /// optimiser stay f32, and so do the sparse products.
    Bf16,
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" => Ok(Precision::F32),
            "bf16" => Ok(Precision::Bf16),
            _ => Err(format!("unknown precision `{s}` (f32, bf16)")),
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        })
    }
}

impl Default for Runtime {
    /// One thread per core, the CPU's best level, every fast path on.
    fn default() -> Self {
        Runtime::new(0)
    }
}

impl Runtime {
    /// `threads` threads (0 = one per core), the CPU's best level, fast paths on.
    pub fn new(threads: usize) -> Self {
        Runtime {
            threads: if threads == 0 { cores() } else { threads },
            simd: crate::simd::detected(),
            sparse: true,
            ftz: true,
            precision: Precision::F32,
            adapt: false,
        }
    }

    /// Everything on the calling thread (tests, and each member of an ensemble trained
    /// in parallel).
    pub fn single() -> Self {
        Runtime::new(1)
    }

    /// The same runtime with `n` threads (at least 1).
    pub fn with_threads(self, n: usize) -> Self {
        Runtime {
            threads: n.max(1),
            ..self
        }
    }

    /// The same runtime with the SIMD level capped at `level` (never above the CPU's).
    pub fn with_simd(self, level: Level) -> Self {
        Runtime {
            simd: level.min(crate::simd::detected()),
            ..self
        }
    }

    /// The same runtime computing its products in `precision`, or, where that is bf16
    /// and the CPU lacks AVX512-BF16, in f32 with the reason why.
    pub fn with_precision(self, precision: Precision) -> (Self, Option<String>) {
        if precision == Precision::Bf16 && !crate::tensor::bf16::available() {
            let why = "--precision bf16 needs AVX512-BF16 (the vdpbf16ps instruction), which \
                       this CPU lacks; computing in f32";
            return (self, Some(why.to_string()));
        }
        (Runtime { precision, ..self }, None)
    }

    /// Readies the calling thread to compute under this runtime until the returned
    /// guard is dropped: sets its floating-point mode (see `ftz`), and puts the one it
    /// had back on drop. Work forked from this thread ([`crate::par`]) runs in the same
    /// mode. Training (`Trainer::fit`), a model's evaluation and forward pass, and the
    /// commands enter their runtime this way.
    #[must_use = "the mode lasts while the guard lives"]
    pub fn enter(&self) -> Entered {
        let before = crate::fpmode::control_word();
        // SAFETY: flushing subnormals is what `ftz` asks for; the guard restores the
        // thread's mode (fpmode's caveat is accepted for nnlab's kernels).
        unsafe { crate::fpmode::set_flush_to_zero(self.ftz) };
        Entered { before }
    }
}

/// While it lives, the thread computes in its runtime's floating-point mode
/// ([`Runtime::enter`]).
pub struct Entered {
    before: u32,
}

impl Drop for Entered {
    fn drop(&mut self) {
        // SAFETY: `before` came from `control_word` on this thread.
        unsafe { crate::fpmode::set_control_word(self.before) };
    }
}

/// The cores this process may use.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
