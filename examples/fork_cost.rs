//! What a fork-join costs after a stretch of one-thread work: GAP µs of spinning on
//! the calling thread, then a join of two 20 µs halves, 2,000 times (best of 3), with
//! `nnlab::par::join` and with `rayon::join`, on two threads. A worker that has gone to
//! sleep during the gap starts its half late; the overhead column shows it.
//!
//! `cargo run --release --example fork_cost`

use std::time::{Duration, Instant};

fn spin(us: f64) {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs_f64(us * 1e-6) {
        std::hint::spin_loop();
    }
}

fn main() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let half = 20.0;
    let rounds = 2000;
    println!("gap (µs)   per round and overhead (µs): nnlab::par::join | rayon::join");
    pool.install(|| {
        for gap in [0.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 1000.0] {
            let mut per = [f64::MAX; 2];
            for _ in 0..3 {
                for (i, p) in per.iter_mut().enumerate() {
                    let t = Instant::now();
                    for _ in 0..rounds {
                        spin(gap);
                        if i == 0 {
                            nnlab::par::join(|| spin(half), || spin(half));
                        } else {
                            rayon::join(|| spin(half), || spin(half));
                        }
                    }
                    *p = p.min(t.elapsed().as_secs_f64() / rounds as f64 * 1e6);
                }
            }
            println!(
                "{gap:8.0}   {:7.1} {:5.1}  |  {:7.1} {:5.1}",
                per[0],
                per[0] - gap - half,
                per[1],
                per[1] - gap - half
            );
        }
    });
}
