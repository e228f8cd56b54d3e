//! How long a cache line takes to go from one core to the other and back: two threads
//! hand a counter back and forth 200,000 times through one line, and the mean round
//! trip is printed. Between two chiplets of an AMD EPYC (which share no third-level
//! cache) it takes several times as long as within one. The threads are not pinned:
//! on a 2-core machine they run on the two cores.
//!
//! The project's 2-core KVM machines have "slow phases" in which a two-thread
//! `nnlab lab xavier` takes twice as long; this probe, run beside nnlab, tells them
//! apart (BENCHMARKS.md, "Slow phases: the two cores on different chiplets", has the
//! figures).
//!
//! `cargo run --release --example core_to_core`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// One counter on a cache line of its own.
#[repr(align(128))]
struct Line(AtomicU64);

fn main() {
    const TRIPS: u64 = 200_000;
    let line = Arc::new(Line(AtomicU64::new(0)));
    let other = line.clone();
    // the other thread answers each odd value with the next even one
    let answer = std::thread::spawn(move || {
        for i in 0..TRIPS {
            while other.0.load(Ordering::Acquire) != 2 * i + 1 {}
            other.0.store(2 * i + 2, Ordering::Release);
        }
    });
    let start = Instant::now();
    for i in 0..TRIPS {
        line.0.store(2 * i + 1, Ordering::Release);
        while line.0.load(Ordering::Acquire) != 2 * i + 2 {}
    }
    let seconds = start.elapsed().as_secs_f64();
    answer.join().expect("the answering thread ends");
    println!(
        "core-to-core round trip: {:.0} ns (mean of {TRIPS})",
        seconds / TRIPS as f64 * 1e9
    );
}
