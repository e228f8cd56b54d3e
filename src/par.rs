//! Fork-join for the training loop: [`join`] runs one closure on the calling thread and
//! the other on an idle worker of a small pool whose workers wait for work by spinning
//! (then yielding) for a few milliseconds before they sleep.
//!
//! Why not `rayon::join` (which nnlab used before, and still uses for coarse work such as
//! training ensemble members): a rayon worker with nothing to do yields about 32 times
//! and then sleeps, and waking it takes tens of microseconds. A training step forks a
//! few dozen times, often after a stretch of work on one thread (a batch's copy, the
//! loss, a layer's elementwise pass); whenever that stretch outlasts rayon's spinning,
//! the other half of the next fork starts late (`examples/fork_cost.rs` measures it;
//! BENCHMARKS.md has the figures). OpenMP runtimes spin for a long while before they
//! sleep for the same reason. Rayon has no setting for how long its workers stay
//! awake (its maintainers declined to expose one: rayon-rs/rayon pull request 684), so
//! the training loop's forks use this instead: a pool of one worker per core but one,
//! each with a mailbox for one job, no queue and no stealing, which is all a fork into
//! equal halves needs.
//!
//! The waiting loops are plain loads, without the `spin_loop()` hint. On this project's
//! machines (KVM guests) a pool spinning on PAUSE instructions fell, in most 15-epoch
//! xavier runs, into phases where the whole process ran at half speed for seconds
//! (BENCHMARKS.md, "Slow phases are back", has what was measured).
//!
//! The other half of a fork runs in the forking thread's floating-point mode
//! ([`crate::fpmode`]): the worker takes the forking thread's MXCSR with the job.
//!
//! Thread budgets live here too: [`join_products`] splits a [`Runtime`]'s threads
//! between two pieces of work, and [`fork_blocks`] runs one block per thread.

use crate::runtime::Runtime;
use std::cell::UnsafeCell;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// How long an idle worker keeps looking for work before it sleeps.
const STAY_AWAKE: Duration = Duration::from_millis(5);

/// How long it spins before it starts yielding its core between looks (so that other
/// threads, such as a second ensemble member's, get the core when they need it).
const SPIN_ONLY: Duration = Duration::from_micros(50);

/// Most workers the pool starts (the rest of a fork runs on the calling thread).
const MAX_WORKERS: usize = 63;

/// A worker's mailbox, on its own cache lines.
#[repr(align(128))]
struct Worker {
    /// Held by the thread that has handed (or is handing) this worker a job, from the
    /// claim until the job has run.
    claimed: AtomicBool,
    /// The job to run; null when there is none.
    job: AtomicPtr<JobRef>,
    /// Whether the worker is asleep (or about to be), so needs waking.
    sleeping: AtomicBool,
    thread: OnceLock<Thread>,
}

#[allow(clippy::declare_interior_mutable_const)] // a template for the array below
const IDLE: Worker = Worker {
    claimed: AtomicBool::new(false),
    job: AtomicPtr::new(std::ptr::null_mut()),
    sleeping: AtomicBool::new(false),
    thread: OnceLock::new(),
};

static WORKERS: [Worker; MAX_WORKERS] = [IDLE; MAX_WORKERS];

/// How many workers have been started (they are never stopped).
static STARTED: AtomicUsize = AtomicUsize::new(0);
static STARTING: Mutex<()> = Mutex::new(());

/// Type-erased pointer to a job on the forking thread's stack.
#[derive(Clone, Copy)]
struct JobRef {
    data: *const (),
    /// Runs the job and stores its result; does not signal completion.
    run: unsafe fn(*const ()),
    done: *const AtomicBool,
    /// The forking thread's floating-point control word, for the worker to run in.
    csr: u32,
}

/// The second closure of a `join`, its result, and whether it has finished.
struct StackJob<F, R> {
    f: UnsafeCell<Option<F>>,
    result: UnsafeCell<Option<std::thread::Result<R>>>,
    done: AtomicBool,
}

impl<F: FnOnce() -> R, R> StackJob<F, R> {
    /// # Safety
    /// `data` points to a live `StackJob<F, R>` whose closure has not been taken, and
    /// no other thread touches it until `done` is set.
    unsafe fn run(data: *const ()) {
        let job = unsafe { &*(data as *const Self) };
        let f = unsafe { (*job.f.get()).take() }.expect("a job runs once");
        let r = catch_unwind(AssertUnwindSafe(f));
        unsafe { *job.result.get() = Some(r) };
    }
}

/// Makes sure `n` workers run (at most `MAX_WORKERS`): one per core but the forking
/// thread's, started by the first fork.
fn start_workers(n: usize) {
    let n = n.min(MAX_WORKERS);
    if STARTED.load(Ordering::Acquire) >= n {
        return;
    }
    let _one_at_a_time = STARTING.lock().unwrap_or_else(|e| e.into_inner());
    let mut started = STARTED.load(Ordering::Acquire);
    while started < n {
        let w = &WORKERS[started];
        let spawned = std::thread::Builder::new()
            .name(format!("nnlab-worker-{started}"))
            .spawn(move || work(w));
        if spawned.is_err() {
            return; // no thread, no worker: forks run on the calling thread
        }
        started += 1;
        STARTED.store(started, Ordering::Release);
    }
}

/// A worker's life: look for a job, run it, repeat; sleep after `STAY_AWAKE` idle.
fn work(w: &'static Worker) {
    // set before this worker can first sleep, so whoever sees it asleep can wake it
    let _ = w.thread.set(std::thread::current());
    loop {
        let since = Instant::now();
        let mut looks = 0u32;
        let job = loop {
            // look, then take: the forking thread may take the job back meanwhile
            if !w.job.load(Ordering::Relaxed).is_null() {
                let p = w.job.swap(std::ptr::null_mut(), Ordering::Acquire);
                if !p.is_null() {
                    break p;
                }
            }
            looks = looks.wrapping_add(1);
            if looks.is_multiple_of(64) {
                let idle = since.elapsed();
                if idle > STAY_AWAKE {
                    w.sleeping.store(true, Ordering::SeqCst);
                    // checked after announcing sleep, so a job posted meanwhile either
                    // is seen here or sees `sleeping` and wakes us
                    if w.job.load(Ordering::SeqCst).is_null() {
                        std::thread::park();
                    }
                    w.sleeping.store(false, Ordering::SeqCst);
                    break std::ptr::null_mut();
                } else if idle > SPIN_ONLY {
                    std::thread::yield_now();
                }
            }
            // (no `spin_loop()` hint: its PAUSE instructions, run back to back, are what
            // a KVM host watches for to take the core away; see the module docs)
        };
        if job.is_null() {
            continue; // woken (or spuriously): look again, from a fresh start
        }
        // SAFETY: the forking thread keeps the `JobRef` and its job alive until `done`.
        let job = unsafe { *job };
        // SAFETY: `job.csr` is the forking thread's control word (`control_word`), so
        // the job computes as it would have there.
        unsafe { crate::fpmode::set_control_word(job.csr) };
        unsafe { (job.run)(job.data) };
        // free for the next fork before the forking thread hears this one is done, so
        // that its next fork finds this worker idle
        w.claimed.store(false, Ordering::Release);
        unsafe { (*job.done).store(true, Ordering::Release) };
    }
}

/// Claims an idle worker, starting the pool's workers first if need be.
fn claim() -> Option<&'static Worker> {
    static CORES: OnceLock<usize> = OnceLock::new();
    start_workers(*CORES.get_or_init(crate::runtime::cores) - 1);
    let started = STARTED.load(Ordering::Acquire);
    WORKERS[..started].iter().find(|w| {
        w.claimed
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    })
}

/// Runs `a` and `b`, `b` on an idle worker if there is one, and returns both results.
/// If no worker is idle, or the one handed `b` has not started it by the time `a` is
/// done, `b` runs here after `a` (as `rayon::join` takes back a job nobody stole). A
/// panic in either is raised here, after both have finished.
pub fn join<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    let Some(w) = claim() else {
        // no idle worker: both here, and `b` still runs if `a` panics
        let ra = catch_unwind(AssertUnwindSafe(a));
        return both(ra, catch_unwind(AssertUnwindSafe(b)));
    };
    let job = StackJob {
        f: UnsafeCell::new(Some(b)),
        result: UnsafeCell::new(None),
        done: AtomicBool::new(false),
    };
    let job_ref = JobRef {
        data: &job as *const StackJob<B, RB> as *const (),
        run: StackJob::<B, RB>::run,
        done: &job.done,
        csr: crate::fpmode::control_word(),
    };
    w.job
        .store(&job_ref as *const JobRef as *mut JobRef, Ordering::SeqCst);
    if w.sleeping.load(Ordering::SeqCst)
        && let Some(t) = w.thread.get()
    {
        t.unpark();
    }
    let ra = catch_unwind(AssertUnwindSafe(a));
    let posted = &job_ref as *const JobRef as *mut JobRef;
    let rb = if w
        .job
        .compare_exchange(
            posted,
            std::ptr::null_mut(),
            Ordering::Acquire,
            Ordering::Relaxed,
        )
        .is_ok()
    {
        // The worker has not started it (asleep, or its core taken by another
        // thread or by the machine's host): run it here rather than wait.
        w.claimed.store(false, Ordering::Release);
        let b = job.f.into_inner().expect("a job runs once");
        catch_unwind(AssertUnwindSafe(b))
    } else {
        // `job` and `job_ref` live on this stack: wait for the worker whatever happened
        let since = Instant::now();
        while !job.done.load(Ordering::Acquire) {
            if since.elapsed() > SPIN_ONLY {
                std::thread::yield_now();
            }
        }
        job.result.into_inner().expect("the worker stored a result")
    };
    both(ra, rb)
}

/// Runs two independent products (typically a layer's two gradient products,
/// `dW = xᵀ dy` and `dx = dy Wᵀ`) at the same time, each given half of `rt`'s threads,
/// so that one fork-join replaces one per product. With one thread they run one after
/// the other. A product's bits do not depend on its thread count (tested), so neither
/// do the results. Timed as one product (`timers`).
pub fn join_products(
    rt: &Runtime,
    a: impl FnOnce(&Runtime) + Send,
    b: impl FnOnce(&Runtime) + Send,
) {
    let t = rt.threads;
    if t < 2 {
        a(rt);
        b(rt);
        return;
    }
    let _timer = crate::timers::Timer::start(&crate::timers::PRODUCTS);
    let (ra, rb) = (rt.with_threads(t / 2), rt.with_threads(t - t / 2));
    join(
        || crate::timers::untimed(|| a(&ra)),
        || crate::timers::untimed(|| b(&rb)),
    );
}

/// Runs `block(j0, nb)` over `[lo, hi)` cut into pieces of `per` (the last may be
/// shorter), in parallel by recursive halving with [`join`] (which, unlike a scope's
/// spawn, does not allocate).
pub fn fork_blocks(lo: usize, hi: usize, per: usize, block: &(impl Fn(usize, usize) + Sync)) {
    if hi <= lo {
        return;
    }
    let per = per.max(1);
    let blocks = (hi - lo).div_ceil(per);
    if blocks <= 1 {
        return block(lo, hi - lo);
    }
    let mid = lo + blocks / 2 * per;
    join(
        || fork_blocks(lo, mid, per, block),
        || fork_blocks(mid, hi, per, block),
    );
}

/// Both results, or the first panic raised again.
fn both<RA, RB>(ra: std::thread::Result<RA>, rb: std::thread::Result<RB>) -> (RA, RB) {
    match (ra, rb) {
        (Ok(ra), Ok(rb)) => (ra, rb),
        (Err(p), _) | (_, Err(p)) => resume_unwind(p),
    }
}

/// A buffer that the blocks of one fork-join write at disjoint places (each its own
/// images, rows or elements): a pointer that may cross threads, with the buffer's length
/// and row width, so that every slice taken is checked to lie inside.
///
/// # Safety
/// Whoever takes a slice promises that no other live reference reaches the same
/// elements (the blocks' parts are disjoint) and that the buffer outlives the fork-join
/// and does not move meanwhile.
pub struct Disjoint<T> {
    ptr: *mut T,
    len: usize,
    width: usize,
}

// (by hand: derived, they would need `T: Copy`)
impl<T> Clone for Disjoint<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Disjoint<T> {}
// SAFETY: see the type's doc: blocks reach disjoint elements, within the fork-join.
unsafe impl<T: Send> Send for Disjoint<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Disjoint<T> {}

impl<T> Disjoint<T> {
    /// The elements of `buf`, in rows of `width` (1: a flat buffer).
    pub fn of(buf: &mut [T], width: usize) -> Self {
        Disjoint {
            ptr: buf.as_mut_ptr(),
            len: buf.len(),
            width: width.max(1),
        }
    }

    /// The width of its rows.
    pub fn width(self) -> usize {
        self.width
    }

    /// Elements `at..at + len`.
    ///
    /// # Safety
    /// No other live reference to them (see the type's doc).
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn slice<'a>(self, at: usize, len: usize) -> &'a mut [T] {
        assert!(
            at.checked_add(len).is_some_and(|end| end <= self.len),
            "Disjoint::slice: elements {at}+{len} of {}",
            self.len
        );
        // SAFETY: inside the buffer (asserted); exclusivity is the caller's promise.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(at), len) }
    }

    /// Rows `r0..r0 + n`, as one slice.
    ///
    /// # Safety
    /// As for [`Disjoint::slice`].
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn rows<'a>(self, r0: usize, n: usize) -> &'a mut [T] {
        let (at, len) = (r0.checked_mul(self.width), n.checked_mul(self.width));
        let (Some(at), Some(len)) = (at, len) else {
            panic!("Disjoint::rows: rows {r0}+{n} of width {}", self.width)
        };
        // SAFETY: the caller's promise, passed on.
        unsafe { self.slice(at, len) }
    }

    /// Row `r`.
    ///
    /// # Safety
    /// As for [`Disjoint::slice`].
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn row<'a>(self, r: usize) -> &'a mut [T] {
        // SAFETY: the caller's promise, passed on.
        unsafe { self.rows(r, 1) }
    }

    /// The first element of the `rows x cols` tile at row `r0`, column `c0` (rows of
    /// the buffer's width), checked to lie inside (an empty tile is refused). A raw pointer, not a slice: the
    /// tile's rows are not contiguous, and the elements between them belong to other
    /// blocks. Whoever writes through it promises to stay inside the tile, which no
    /// other live reference reaches.
    pub fn tile(self, r0: usize, c0: usize, rows: usize, cols: usize) -> *mut T {
        let fits = rows > 0
            && cols > 0
            && c0.checked_add(cols).is_some_and(|end| end <= self.width)
            && r0
                .checked_add(rows)
                .and_then(|end| end.checked_mul(self.width))
                .is_some_and(|end| end <= self.len);
        assert!(
            fits,
            "Disjoint::tile: rows {r0}+{rows}, columns {c0}+{cols} of {} x {}",
            self.len / self.width,
            self.width
        );
        // SAFETY: inside the buffer (asserted).
        unsafe { self.ptr.add(r0 * self.width + c0) }
    }
}

impl Disjoint<f32> {
    /// The rows of `m`.
    pub fn rows_of(m: &mut crate::tensor::Matrix) -> Self {
        let cols = m.cols;
        Disjoint::of(&mut m.data, cols)
    }
}

#[cfg(test)]
mod tests {

    /// Blocks write their own rows of one buffer through `Disjoint`; a slice past its
    /// end is refused.
    #[test]
    fn disjoint_rows_are_written_by_their_blocks_and_checked() {
        let mut m = crate::tensor::Matrix::zeros(7, 3);
        let d = Disjoint::rows_of(&mut m);
        fork_blocks(0, 7, 2, &|r0, n| {
            for r in r0..r0 + n {
                // SAFETY: row r belongs to this block alone.
                unsafe { d.row(r) }.fill(r as f32);
            }
        });
        assert!((0..7).all(|r| m.row(r).iter().all(|&v| v == r as f32)));
        let mut buf = [0u32; 5];
        let d = Disjoint::of(&mut buf, 1);
        let past = std::panic::catch_unwind(|| unsafe { d.slice(3, 3) }.len());
        assert!(past.is_err(), "elements 3..6 of 5 are refused");
        // SAFETY: the only slice of `buf` taken.
        assert_eq!(unsafe { d.slice(3, 2) }.len(), 2);
    }

    use super::*;

    #[test]
    fn both_sides_run_and_return() {
        let mut hits = [0u32; 2];
        let (left, right) = hits.split_at_mut(1);
        for i in 0..1000u32 {
            let (a, b) = join(|| i * 2, || i + 1);
            assert_eq!((a, b), (i * 2, i + 1));
            join(|| left[0] += 1, || right[0] += 1);
        }
        assert_eq!(hits, [1000, 1000]);
    }

    #[test]
    fn nested_joins_finish() {
        fn sum(v: &[u64]) -> u64 {
            if v.len() < 8 {
                return v.iter().sum();
            }
            let (l, r) = v.split_at(v.len() / 2);
            let (a, b) = join(|| sum(l), || sum(r));
            a + b
        }
        let v: Vec<u64> = (0..10_000).collect();
        assert_eq!(sum(&v), 10_000 * 9_999 / 2);
    }

    /// Both with a worker to take the second half and with none idle (every worker
    /// claimed here first), where both halves run on this thread.
    #[test]
    fn a_panic_on_either_side_reaches_the_caller_after_both_finish() {
        panics_reach_the_caller_after_both_finish();
        let mut held = Vec::new();
        while let Some(w) = claim() {
            held.push(w);
        }
        panics_reach_the_caller_after_both_finish();
        for w in held {
            w.claimed.store(false, Ordering::Release);
        }
    }

    fn panics_reach_the_caller_after_both_finish() {
        for side in 0..2 {
            let other_finished = AtomicBool::new(false);
            let r = catch_unwind(AssertUnwindSafe(|| {
                join(
                    || {
                        if side == 0 {
                            panic!("left");
                        }
                        std::thread::sleep(Duration::from_millis(5));
                        other_finished.store(true, Ordering::SeqCst);
                    },
                    || {
                        if side == 1 {
                            panic!("right");
                        }
                        std::thread::sleep(Duration::from_millis(5));
                        other_finished.store(true, Ordering::SeqCst);
                    },
                )
            }));
            assert!(r.is_err());
            assert!(other_finished.load(Ordering::SeqCst), "side {side}");
        }
        // the pool still works
        assert_eq!(join(|| 1, || 2), (1, 2));
    }

    /// The other half of a fork computes in the forking thread's floating-point mode,
    /// whichever mode the worker ran its last job in.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn the_other_half_runs_in_the_forking_threads_mode() {
        let before = crate::fpmode::control_word();
        for ftz in [true, false, true] {
            // SAFETY: a test of the mode, restored at the end.
            unsafe { crate::fpmode::set_flush_to_zero(ftz) };
            for _ in 0..50 {
                let sub = std::hint::black_box(f32::MIN_POSITIVE / 2.0);
                let (a, b) = join(crate::fpmode::flushes_to_zero, || {
                    (
                        crate::fpmode::flushes_to_zero(),
                        sub * std::hint::black_box(1.0),
                    )
                });
                assert_eq!((a, b.0), (ftz, ftz));
                assert_eq!(b.1 == 0.0, ftz, "a subnormal operand, flush {ftz}");
            }
        }
        unsafe { crate::fpmode::set_control_word(before) };
    }

    /// A worker that has gone to sleep is woken by the next fork and runs its second
    /// half (had the wake-up been lost, the forking thread would take the half back and
    /// run it itself). Other tests fork too and may hold the worker, so a few tries.
    #[test]
    fn a_sleeping_worker_is_woken() {
        let _ = join(|| (), || ());
        if STARTED.load(Ordering::Acquire) == 0 {
            return; // one core: no workers
        }
        let woken = (0..5).any(|_| {
            let asleep = Instant::now();
            while !WORKERS[0].sleeping.load(Ordering::SeqCst) {
                if asleep.elapsed() > Duration::from_secs(1) {
                    return false;
                }
                std::thread::sleep(STAY_AWAKE);
            }
            let started = AtomicBool::new(false);
            let (_, on) = join(
                || {
                    // give the worker a second to wake and start the other half
                    let t = Instant::now();
                    while !started.load(Ordering::SeqCst) && t.elapsed() < Duration::from_secs(1) {
                        std::thread::yield_now();
                    }
                },
                || {
                    started.store(true, Ordering::SeqCst);
                    std::thread::current().name().map(str::to_owned)
                },
            );
            on.is_some_and(|n| n.starts_with("nnlab-worker"))
        });
        assert!(woken, "no fork reached a sleeping worker");
    }
}
