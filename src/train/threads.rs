//! How many threads each training step uses, chosen as training goes: all of the
//! runtime's, or one, whichever steps are measured faster.
//!
//! Why: on the project's 2-core virtual machines the host sometimes runs the two
//! cores on different chiplets, which share no cache. A two-thread step then pays for
//! every cache line one thread hands the other, and a small net (`lab xavier`) trains
//! slower on two threads than on one (BENCHMARKS.md, "Slow phases: the two cores on
//! different chiplets"). These phases come and go within seconds and cannot be seen
//! beforehand, so the tuner measures. It runs a window of steps with the better
//! setting, then a short probe with the other, and moves to the probed setting when its
//! steps were clearly faster. After each probe that loses, the windows double (up to
//! [`RUN_MAX`] steps), so a net that keeps gaining from its setting seldom pays for a
//! probe (each also moves the net's data between the cores' caches).
//!
//! The bits do not depend on the thread count (every layer's products and updates are
//! cut so that each sum runs in the same order; `tests/training.rs` checks every
//! preset), so the choice changes how long training takes, never what it computes.
//! The tuner only acts when the runtime allows it ([`Runtime::adapt`]: the CLI's
//! default, off with an explicit `--threads`).

use crate::runtime::Runtime;

/// Steps a probe measures (after one step to wake the other setting's threads).
pub const PROBE: usize = 16;
/// Steps in a window with the better setting, at first and after a probe that won.
pub const RUN_MIN: usize = 64;
/// The most steps between probes.
pub const RUN_MAX: usize = 1024;
/// A probe must be this much faster per step to take over (noise between windows, and
/// the cost of moving a net's data to the other core's caches and back).
const MARGIN: f64 = 0.1;

/// Chooses each step's thread count; see the module docs.
#[derive(Clone, Debug)]
pub struct ThreadTuner {
    /// The runtime's thread count (the other setting is 1); tuning is off when 1.
    most: usize,
    on: bool,
    /// The setting of the current window.
    current: usize,
    probing: bool,
    /// Steps left in the current window.
    left: usize,
    /// Steps in the next window with the better setting.
    run_len: usize,
    /// Seconds of the last `PROBE` steps of the current run window, and of the probe.
    run_tail: f64,
    probe: f64,
}

impl ThreadTuner {
    /// A tuner for training under `rt` (it starts with all of `rt`'s threads).
    pub fn new(rt: &Runtime) -> Self {
        ThreadTuner {
            most: rt.threads,
            on: rt.adapt && rt.threads > 1,
            current: rt.threads,
            probing: false,
            left: RUN_MIN,
            run_len: RUN_MIN,
            run_tail: 0.0,
            probe: 0.0,
        }
    }

    /// The runtime for the next step: `rt` with this window's thread count.
    pub fn runtime(&self, rt: &Runtime) -> Runtime {
        if self.current == rt.threads {
            *rt
        } else {
            rt.with_threads(self.current)
        }
    }

    /// Records that the step just taken (with [`ThreadTuner::runtime`]'s threads) took
    /// `seconds`, and moves to the next window when this one is done.
    pub fn record(&mut self, seconds: f64) {
        if !self.on {
            return;
        }
        self.left -= 1;
        if !self.probing {
            if self.left < PROBE {
                self.run_tail += seconds;
            }
            if self.left == 0 {
                // probe the other setting: one step to wake its threads, then PROBE
                self.probing = true;
                self.current = self.other();
                self.left = PROBE + 1;
                self.probe = 0.0;
            }
            return;
        }
        if self.left < PROBE {
            self.probe += seconds;
        } else {
            return; // the waking step is not measured
        }
        if self.left > 0 {
            return;
        }
        let (probe, run) = (self.probe, self.run_tail);
        if probe < run * (1.0 - MARGIN) {
            // the probed setting is faster: it runs the next window
            self.run_len = RUN_MIN;
        } else {
            // it lost: back, and probe half as often (a net that gains from the second
            // thread, even a little, soon pays for a probe only every RUN_MAX steps)
            self.current = self.other();
            self.run_len = (self.run_len * 2).min(RUN_MAX);
        }
        self.probing = false;
        self.left = self.run_len;
        self.run_tail = 0.0;
    }

    fn other(&self) -> usize {
        if self.current == 1 { self.most } else { 1 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drives a tuner with step times given by `cost(threads)` for `steps` steps and
    /// returns how many steps ran at each setting (one thread, all).
    fn drive(rt: &Runtime, steps: usize, cost: impl Fn(usize, usize) -> f64) -> (usize, usize) {
        let mut t = ThreadTuner::new(rt);
        let (mut one, mut all) = (0, 0);
        for s in 0..steps {
            let n = t.runtime(rt).threads;
            assert!(n == 1 || n == rt.threads);
            if n == 1 {
                one += 1
            } else {
                all += 1
            }
            t.record(cost(s, n));
        }
        (one, all)
    }

    fn adaptive(threads: usize) -> Runtime {
        Runtime {
            adapt: true,
            ..Runtime::new(threads)
        }
    }

    /// Two threads twice as fast: almost every step runs on both, and probes thin out
    /// (windows double up to RUN_MAX).
    #[test]
    fn keeps_all_threads_while_they_are_faster() {
        let (one, all) = drive(&adaptive(2), 20_000, |_, n| if n == 1 { 2.0 } else { 1.0 });
        assert!(one < 20_000 / 40, "{one} steps on one thread of 20000");
        assert!(all > 0);
    }

    /// One thread faster (a slow phase): after the first window and probe, the steps
    /// run on one thread but for the probes.
    #[test]
    fn drops_to_one_thread_while_it_is_faster() {
        let (one, all) = drive(&adaptive(2), 5_000, |_, n| if n == 1 { 1.0 } else { 1.3 });
        assert!(all < 5_000 / 4, "{all} steps on two threads of 5000");
        assert!(one > 3 * 5_000 / 4);
    }

    /// The phase changes half-way: the tuner follows it within a few windows.
    #[test]
    fn follows_a_change_of_phase() {
        let slow_second_half = |s: usize, n: usize| match (s < 10_000, n) {
            (true, 1) => 2.0,
            (true, _) => 1.0,
            (false, 1) => 1.0,
            (false, _) => 1.6,
        };
        let mut t = ThreadTuner::new(&adaptive(2));
        let rt = adaptive(2);
        let mut late_one = 0;
        for s in 0..20_000 {
            let n = t.runtime(&rt).threads;
            if s >= 10_000 + 2 * RUN_MAX && n == 1 {
                late_one += 1;
            }
            t.record(slow_second_half(s, n));
        }
        assert!(late_one > 9 * (10_000 - 2 * RUN_MAX) / 10, "{late_one}");
    }

    /// Off unless the runtime allows it, and with one thread there is nothing to tune.
    #[test]
    fn fixed_thread_counts_stay_fixed() {
        for rt in [Runtime::new(2), adaptive(1)] {
            let (one, all) = drive(&rt, 3_000, |_, n| if n == 1 { 1.0 } else { 9.0 });
            if rt.threads == 1 {
                assert_eq!(one, 3_000);
            } else {
                assert_eq!(all, 3_000);
            }
        }
    }
}
