//! Wall-clock timers for `nnlab bench`'s breakdown of a training step (the share of
//! products and of the optimiser). Compiled in only with the `timers` feature
//! (`cargo run --release --features timers -- bench`); without it a [`Timer`] is an
//! empty value and every total reads 0, so the training loop pays nothing.

use std::sync::atomic::AtomicU64;
#[cfg(feature = "timers")]
use std::sync::atomic::Ordering;

/// Whether this build keeps the timers.
pub const ENABLED: bool = cfg!(feature = "timers");

/// A running total of nanoseconds.
#[cfg_attr(not(feature = "timers"), allow(dead_code))]
pub struct Total(AtomicU64);

/// Time spent inside matrix products (wall clock, threads included; a pair of products
/// run at once on two threads counts once).
pub static PRODUCTS: Total = Total(AtomicU64::new(0));

/// Time spent in optimiser steps.
pub static OPTIMISER: Total = Total(AtomicU64::new(0));

impl Total {
    /// Nanoseconds added so far (0 without the `timers` feature).
    pub fn nanos(&self) -> u64 {
        #[cfg(feature = "timers")]
        return self.0.load(Ordering::Relaxed);
        #[cfg(not(feature = "timers"))]
        0
    }
}

#[cfg(feature = "timers")]
thread_local! {
    /// Set while this thread runs one side of a pair that is timed as a whole.
    static UNTIMED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` without adding its timers' time to their totals (one side of a pair of
/// products that `par::join_products` times as a whole, as wall clock).
pub fn untimed<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(feature = "timers")]
    {
        struct Reset(bool);
        impl Drop for Reset {
            fn drop(&mut self) {
                let before = self.0;
                UNTIMED.with(|c| c.set(before));
            }
        }
        let _reset = Reset(UNTIMED.with(|c| c.replace(true)));
        f()
    }
    #[cfg(not(feature = "timers"))]
    f()
}

/// Adds the time from its start to a total when dropped (unless started inside
/// [`untimed`]).
pub struct Timer {
    #[cfg(feature = "timers")]
    started: Option<(std::time::Instant, &'static Total)>,
}

impl Timer {
    /// Starts timing for `total`.
    #[inline]
    pub fn start(total: &'static Total) -> Self {
        #[cfg(feature = "timers")]
        return Timer {
            started: (!UNTIMED.with(|c| c.get())).then(|| (std::time::Instant::now(), total)),
        };
        #[cfg(not(feature = "timers"))]
        {
            let _ = total;
            Timer {}
        }
    }
}

#[cfg(feature = "timers")]
impl Drop for Timer {
    fn drop(&mut self) {
        let Some((t0, total)) = self.started else {
            return;
        };
        total
            .0
            .fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }
}
